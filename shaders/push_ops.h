/* push_ops.h — push constants of the ops kernels (see dtr_push.h): RMSNorm,
 * RoPE, SwiGLU, embedding, cross-entropy, MSE, sum, add, AdamW. */
#ifndef DTR_PUSH_OPS_H
#define DTR_PUSH_OPS_H
#include "push_common.h"

/* rmsnorm_fwd, rmsnorm_bwd, rmsnorm_bwd_dweight: N rows of C. */
DTR_PUSH_STRUCT(dtr_pc_rmsnorm) {
  DTR_U32 N;
  DTR_U32 C;
  DTR_F32 eps;
};

/* rope: x (N, H, D); sign +1 rotates by the angle (forward), -1 by its negative
 * (backward). style 0 NEOX pairs (i, i + D/2), 1 GPTJ pairs (2i, 2i + 1). */
DTR_PUSH_STRUCT(dtr_pc_rope) {
  DTR_U32 N;
  DTR_U32 H;
  DTR_U32 D;
  DTR_U32 style;
  DTR_F32 sign;
};

/* Elementwise kernels (swiglu_fwd, swiglu_bwd, add, mse_bwd): n elements;
 * scale is used by mse_bwd only. */
DTR_PUSH_STRUCT(dtr_pc_elementwise) {
  DTR_U32 n;
  DTR_F32 scale;
};

/* embedding_fwd, embedding_bwd: N tokens, rows of C, V rows in the table. */
DTR_PUSH_STRUCT(dtr_pc_embedding) {
  DTR_U32 N;
  DTR_U32 C;
  DTR_U32 V;
};

/* crossentropy_fwd, crossentropy_bwd: N rows of V logits. */
DTR_PUSH_STRUCT(dtr_pc_crossentropy) {
  DTR_U32 N;
  DTR_U32 V;
  DTR_F32 scale;
};

/* mse_fwd (partial sums of (y - t)^2): n elements, one partial per workgroup. */
DTR_PUSH_STRUCT(dtr_pc_mse) {
  DTR_U32 n;
};

/* sum: out[0] = (accumulate ? out[0] : 0) + scale * sum f(x), f = x or x^2. */
DTR_PUSH_STRUCT(dtr_pc_sum) {
  DTR_U32 n;
  DTR_U32 squares;
  DTR_U32 accumulate;
  DTR_F32 scale;
};

/* adamw: bc1 = 1 - beta1^step, bc2 = 1 - beta2^step (computed on the host in
 * double); clipping when has_gnorm2 and clip > 0. */
DTR_PUSH_STRUCT(dtr_pc_adamw) {
  DTR_U32 n;
  DTR_U32 has_gnorm2;
  DTR_F32 lr;
  DTR_F32 beta1;
  DTR_F32 beta2;
  DTR_F32 eps;
  DTR_F32 weight_decay;
  DTR_F32 clip;
  DTR_F32 bc1;
  DTR_F32 bc2;
};

#endif
