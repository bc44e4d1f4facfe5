/* ref_ops.h — double-precision references of the ops kernels (see ref.h): same
 * names and argument order as dtr_op_*, inputs as float, outputs and gradients as
 * double. Parameter gradients accumulate (+=) as on the device. Exceptions to the
 * order: ref_mse_fwd has no scratch argument, ref_rmsnorm_bwd takes the
 * reference's double rstd, and ref_adamw keeps its state (param, m, v) in double. */
#ifndef DTR_REF_OPS_H
#define DTR_REF_OPS_H
#include <stddef.h>
#include <stdint.h>

#include "dtr_ops.h"

void ref_rmsnorm_fwd(double *out, double *rstd, const float *inp, const float *weight,
                     uint32_t N, uint32_t C, float eps);
/* dinp written, dweight accumulated; either may be NULL. */
void ref_rmsnorm_bwd(double *dinp, double *dweight, const float *dout, const float *inp,
                     const float *weight, const double *rstd, uint32_t N, uint32_t C);

/* The angle is fp32(float(pos) * inv_freq), as the kernel and Hugging Face form it. */
void ref_rope_fwd(double *out, const float *x, const int32_t *pos, const float *inv_freq,
                  uint32_t N, uint32_t H, uint32_t D, dtr_rope_style style);
void ref_rope_bwd(double *dx, const float *dout, const int32_t *pos, const float *inv_freq,
                  uint32_t N, uint32_t H, uint32_t D, dtr_rope_style style);

void ref_swiglu_fwd(double *out, const float *gate, const float *up, uint32_t n);
void ref_swiglu_bwd(double *dgate, double *dup, const float *dout, const float *gate,
                    const float *up, uint32_t n);

void ref_embedding_fwd(double *out, const int32_t *ids, const float *table, uint32_t N,
                       uint32_t C, uint32_t V);
void ref_embedding_bwd(double *dtable, const float *dout, const int32_t *ids, uint32_t N,
                       uint32_t C, uint32_t V);

/* losses: 0 for target < 0, NaN for target >= V (as the kernel). */
void ref_crossentropy_fwd(double *losses, double *lse, const float *logits,
                          const int32_t *targets, uint32_t N, uint32_t V);
void ref_crossentropy_bwd(double *dlogits, const float *logits, const int32_t *targets,
                          const double *lse, uint32_t N, uint32_t V, float scale);

void ref_mse_fwd(double *loss, const float *y, const float *t, uint32_t n);
void ref_mse_bwd(double *dy, const float *y, const float *t, uint32_t n, float scale);

void ref_sum(double *out, const float *x, uint32_t n, int squares, int accumulate);
void ref_add(double *out, const float *a, const float *b, uint32_t n);

/* One AdamW step; gnorm2 NULL means no clipping. */
void ref_adamw(double *param, const float *grad, double *m, double *v, const double *gnorm2,
               uint32_t n, const dtr_adamw_desc *d);

#endif
