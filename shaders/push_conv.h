/* push_conv.h — push constants of the conv kernels (see dtr_push.h): the short
 * and dynamic causal convs (shortconv_*, dynconv_*) and the gated RMSNorm. */
#ifndef DTR_PUSH_CONV_H
#define DTR_PUSH_CONV_H
#include "push_common.h"

/* shortconv_* and dynconv_*: B sequences packed into Ttot tokens of C channels.
 * silu: apply SiLU to the conv output; has_cache: cache_in is bound (else zero
 * history); has_dx / has_dw: the backward writes dx / dw (or dkern). */
DTR_PUSH_STRUCT(dtr_pc_conv) {
  DTR_U32 B;
  DTR_U32 Ttot;
  DTR_U32 C;
  DTR_U32 silu;
  DTR_U32 has_cache;
  DTR_U32 has_dx;
  DTR_U32 has_dw;
};

/* gated_rmsnorm_*: N rows of C; has_dinp / has_dgate select the backward's outputs. */
DTR_PUSH_STRUCT(dtr_pc_gated_rmsnorm) {
  DTR_U32 N;
  DTR_U32 C;
  DTR_F32 eps;
  DTR_U32 has_dinp;
  DTR_U32 has_dgate;
};

#endif
