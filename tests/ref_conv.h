/* ref_conv.h — double-precision references of the conv kernels (see ref_linear.h). */
#ifndef DTR_REF_CONV_H
#define DTR_REF_CONV_H
#include <stddef.h>
#include <stdint.h>

#endif
