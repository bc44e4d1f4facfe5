/* ref.h — the CPU references in double precision, one per kernel, named
 * ref_<kernel>() with the kernel's argument order (all arrays double, so the
 * finite differences of a forward are exact to ~1e-8). Tests compare the device
 * against these, and check the
 * references' analytic gradients against finite differences of their forwards. */
#ifndef DTR_REF_H
#define DTR_REF_H
#include "ref_matmul.h"
#include "ref_attention.h"
#include "ref_ops.h"
#include "ref_linear.h"
#endif
