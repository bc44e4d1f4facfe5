/* ref_gdn.h — double-precision references of the Gated DeltaNet kernels (see
 * ref_linear.h): the recurrent form (the oracle of the chunked kernels and of
 * decode), its hand-derived per-token reverse recurrence, the gates and the L2
 * norm. Same argument order as dtr_op_gdn_*() / dtr_op_l2norm_*() in
 * host/dtr_linear.h; NULL stands for an absent optional array. */
#ifndef DTR_REF_GDN_H
#define DTR_REF_GDN_H
#include <stddef.h>
#include <stdint.h>

/* Per sequence b in [offsets[b], offsets[b+1]) and head:
 *   S' = e^{g_t} S;  u = beta_t (v_t - S'^T k_t);  S = S' + k_t u^T;  o_t = S^T (scale q_t)
 * o (Ttot, H, V); state_out, state_in (B, H, K, V); q, k (Ttot, H, K);
 * v (Ttot, H, V); g, beta (Ttot, H); offsets (B + 1). */
void ref_gdn_chunk_fwd(double *o, double *state_out, const double *q, const double *k,
                       const double *v, const double *g, const double *beta,
                       const double *state_in, const int32_t *offsets, int B, int H, int K,
                       int V, double scale);
/* Gradients of the above: dq, dk (Ttot, H, K), dv (Ttot, H, V), dg, dbeta (Ttot, H),
 * dstate_in (B, H, K, V) written (dstate_in may be NULL); dout (Ttot, H, V) and
 * dstate_out (B, H, K, V, may be NULL) given. */
void ref_gdn_chunk_bwd(double *dq, double *dk, double *dv, double *dg, double *dbeta,
                       double *dstate_in, const double *dout, const double *dstate_out,
                       const double *q, const double *k, const double *v, const double *g,
                       const double *beta, const double *state_in, const int32_t *offsets,
                       int B, int H, int K, int V, double scale);
/* One token per sequence: q, k (B, H, K), v, o (B, H, V), g, beta (B, H); state
 * (B, H, K, V) updated in place. */
void ref_gdn_decode(double *o, double *state, const double *q, const double *k,
                    const double *v, const double *g, const double *beta, int B, int H,
                    int K, int V, double scale);
/* g = -exp(A_log[h]) softplus(a + dt_bias[h]); beta = sigmoid(b); a, b, g, beta (N, H).
 * Backward: da, db written; dA_log, ddt_bias (H) accumulated. */
void ref_gdn_gate_fwd(double *g, double *beta, const double *a, const double *b,
                      const double *A_log, const double *dt_bias, size_t N, int H);
void ref_gdn_gate_bwd(double *da, double *db, double *dA_log, double *ddt_bias,
                      const double *dg, const double *dbeta, const double *a, const double *b,
                      const double *A_log, const double *dt_bias, size_t N, int H);
/* out = x / sqrt(sum(x^2) + eps) per row of C; dx written. */
void ref_l2norm_fwd(double *out, const double *x, size_t N, int C, double eps);
void ref_l2norm_bwd(double *dx, const double *dout, const double *x, size_t N, int C,
                    double eps);

#endif
