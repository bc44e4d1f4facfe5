/* ref_gla.h — double-precision references of the gla kernels (see ref_linear.h). */
#ifndef DTR_REF_GLA_H
#define DTR_REF_GLA_H
#include <stddef.h>
#include <stdint.h>

#endif
