/* ref_gdn.h — double-precision references of the gdn kernels (see ref_linear.h). */
#ifndef DTR_REF_GDN_H
#define DTR_REF_GDN_H
#include <stddef.h>
#include <stdint.h>

#endif
