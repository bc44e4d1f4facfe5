/* ref_conv.h — double-precision references of the conv kernels (see ref_linear.h):
 * the short causal depthwise conv (static weights), JetBlock's dynamic conv (a
 * kernel per token), their one-token decode steps, and the gated RMSNorm output.
 * Same argument order as host/dtr_linear.h; NULL stands for an absent view. */
#ifndef DTR_REF_CONV_H
#define DTR_REF_CONV_H
#include <stddef.h>
#include <stdint.h>

/* y_t[c] = sum_{i<4} w[c][i] x_{t-3+i}[c] per sequence, history from cache_in
 * (B, 3, C) or zero; out = silu(y) when silu. cache_out (B, 3, C) may be NULL. */
void ref_shortconv_fwd(double *out, double *cache_out, const double *x, const double *w,
                       const double *cache_in, const int32_t *offsets, uint32_t B, uint32_t Ttot,
                       uint32_t C, int silu);
/* dx (Ttot, C) written, dw (C, 4) accumulated; either may be NULL. */
void ref_shortconv_bwd(double *dx, double *dw, const double *dout, const double *x, const double *w,
                       const double *cache_in, const int32_t *offsets, uint32_t B, uint32_t Ttot,
                       uint32_t C, int silu);
/* x, out (B, C); cache (B, 3, C) rolled in place. */
void ref_shortconv_decode(double *out, double *cache, const double *x, const double *w, uint32_t B,
                          uint32_t C, int silu);

/* The same with a kernel per token: kern (Ttot, C, 4); dkern (Ttot, C, 4) written. */
void ref_dynconv_fwd(double *out, double *cache_out, const double *x, const double *kern,
                     const double *cache_in, const int32_t *offsets, uint32_t B, uint32_t Ttot,
                     uint32_t C, int silu);
void ref_dynconv_bwd(double *dx, double *dkern, const double *dout, const double *x,
                     const double *kern, const double *cache_in, const int32_t *offsets, uint32_t B,
                     uint32_t Ttot, uint32_t C, int silu);
/* kern (B, C, 4) for the one new token of each sequence. */
void ref_dynconv_decode(double *out, double *cache, const double *x, const double *kern, uint32_t B,
                        uint32_t C, int silu);

/* out = o * rstd * w * silu(gate) per row of C, rstd = 1/sqrt(mean(o^2) + eps). */
void ref_gated_rmsnorm_fwd(double *out, double *rstd, const double *o, const double *gate,
                           const double *w, uint32_t N, uint32_t C, double eps);
/* dinp, dgate (N, C) written, dw (C) accumulated; any may be NULL. */
void ref_gated_rmsnorm_bwd(double *dinp, double *dgate, double *dw, const double *dout,
                           const double *o, const double *gate, const double *w, const double *rstd,
                           uint32_t N, uint32_t C);

#endif
