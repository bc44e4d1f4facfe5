/* ref_attention.h — double-precision references of the attention kernels (see ref.h). */
#ifndef DTR_REF_ATTENTION_H
#define DTR_REF_ATTENTION_H
#include <stddef.h>
#include <stdint.h>

#include "dtr_ops.h"

/* Causal GQA attention as dtr_op_attention_fwd: out (B, Tq, Hq, D), lse
 * (B, Hq, Tq); q (B, Tq, Hq, D); k, v (B, kv_cap, Hkv, D), rows < Tk used. */
void ref_attention_fwd(double *out, double *lse, const float *q, const float *k,
                       const float *v, const dtr_attn_desc *d);
/* The same on double inputs (for finite differences). */
void ref_attention_fwd_d(double *out, double *lse, const double *q, const double *k,
                         const double *v, const dtr_attn_desc *d);
/* Analytic gradients: dq (B, Tq, Hq, D); dk, dv (B, kv_cap, Hkv, D), rows >= Tk
 * of each sequence set to 0. out and lse are recomputed, so unlike the op this
 * takes neither. */
void ref_attention_bwd(double *dq, double *dk, double *dv, const float *dout,
                       const float *q, const float *k, const float *v,
                       const dtr_attn_desc *d);
void ref_attention_bwd_d(double *dq, double *dk, double *dv, const double *dout,
                         const double *q, const double *k, const double *v,
                         const dtr_attn_desc *d);

#endif
