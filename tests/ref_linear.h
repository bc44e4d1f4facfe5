/* ref_linear.h — double-precision references of the linear-attention kernels:
 * the recurrent forms of LINEAR_ATTENTION.md are the oracles; ref_<kernel>() has
 * the argument order of dtr_op_<kernel>() (host/dtr_linear.h), all arrays double. */
#ifndef DTR_REF_LINEAR_H
#define DTR_REF_LINEAR_H
#include "ref_gla.h"
#include "ref_gdn.h"
#include "ref_conv.h"
#endif
