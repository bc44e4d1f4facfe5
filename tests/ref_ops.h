/* ref_ops.h — double-precision references of the ops kernels (see ref.h). */
#ifndef DTR_REF_OPS_H
#define DTR_REF_OPS_H
#include <stddef.h>
#include <stdint.h>

#endif
