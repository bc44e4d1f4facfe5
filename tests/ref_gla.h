/* ref_gla.h — double-precision references of the gla kernels (see ref_linear.h):
 * the recurrent form of GLA (the oracle of the chunked kernels and of decode),
 * its hand-derived reverse recurrence, and the gate. Same argument order as
 * dtr_op_gla_*() in host/dtr_linear.h; NULL stands for an absent optional array. */
#ifndef DTR_REF_GLA_H
#define DTR_REF_GLA_H
#include <stddef.h>
#include <stdint.h>

/* S_t = diag(exp(gk_t)) S_{t-1} + k_t v_t^T ; o_t = S_t^T (scale q_t), per
 * sequence b in [offsets[b], offsets[b+1]) and head.
 * o (Ttot, H, V); state_out, state_in (B, H, K, V); q, k, gk (Ttot, H, K);
 * v (Ttot, H, V); offsets (B + 1). */
void ref_gla_chunk_fwd(double *o, double *state_out, const double *q, const double *k,
                       const double *v, const double *gk, const double *state_in,
                       const int32_t *offsets, int B, int H, int K, int V, double scale);
/* Gradients of the above: dq, dk, dgk (Ttot, H, K), dv (Ttot, H, V), dstate_in
 * (B, H, K, V) written; dout (Ttot, H, V) and dstate_out (B, H, K, V) given. */
void ref_gla_chunk_bwd(double *dq, double *dk, double *dv, double *dgk, double *dstate_in,
                       const double *dout, const double *dstate_out, const double *q,
                       const double *k, const double *v, const double *gk,
                       const double *state_in, const int32_t *offsets, int B, int H, int K,
                       int V, double scale);
/* One token per sequence: q, k, gk (B, H, K), v, o (B, H, V); state updated. */
void ref_gla_decode(double *o, double *state, const double *q, const double *k,
                    const double *v, const double *gk, int B, int H, int K, int V,
                    double scale);
/* gk = logsigmoid(x) / normalizer; dx = dgk * sigmoid(-x) / normalizer. */
void ref_gla_gate_fwd(double *gk, const double *x, size_t n, double normalizer);
void ref_gla_gate_bwd(double *dx, const double *dgk, const double *x, size_t n,
                      double normalizer);

#endif
