/* dtr_linear.h — the linear-attention kernels (GLA, Gated DeltaNet, JetBlock's
 * parts) on the runtime: chunked forward and backward for training, prefill that
 * returns the final state, and one-token decode steps. The math is in
 * ../shared/spec/LINEAR_ATTENTION.md.
 *
 * Layout: sequences of different lengths are packed one after another (varlen,
 * as flash-linear-attention's cu_seqlens): offsets (B+1) int32 holds where each
 * sequence starts, offsets[B] = Ttot. Per token and head:
 *   q, k (Ttot, H, K); v, o (Ttot, H, V); GLA's gk (Ttot, H, K) log-decays <= 0;
 *   GDN's g (Ttot, H) log-decay <= 0 and beta (Ttot, H) in (0,1).
 * States S (B, H, K, V), row-major per head (S[k][v]). State views are optional
 * (DTR_NONE): an absent state_in is zero, an absent state_out is not written.
 * Decode views hold one token per sequence: q, k (B, H, K), v, o (B, H, V).
 * Gradients of inputs are written; parameter gradients accumulate (+=), as in
 * dtr_ops.h. Every kernel has ref_<kernel>() in tests/ref_linear.h. */
#ifndef DTR_LINEAR_H
#define DTR_LINEAR_H

#include "dtr_ops.h"

typedef struct dtr_lin_desc {
  uint32_t B;     /* sequences */
  uint32_t Ttot;  /* tokens over all sequences (= offsets[B]) */
  uint32_t H, K, V;
  float scale;    /* usually K^-1/2 */
  uint32_t chunk; /* chunk size, 0 = default (64) */
  uint32_t state_f16; /* decode ops: the state is packed fp16, two halves a word
                         (dtr_op_pack_f16), half the bytes; the math stays fp32.
                         The chunked ops keep fp32 states; their fp16 storage is
                         io_f16's. */
  uint32_t io_f16;    /* chunked ops (GLA and GDN, forward and backward): q, k and
                         v are packed fp16, two halves a word as dtr_op_pack_f16
                         writes them (element 2i in the low half of word i), so
                         their views need only half the bytes (a block keeps
                         these three for its backward; the rest stay fp32). Every
                         device has it (storage-buffer kernels unpack the words;
                         texel kernels read RGBA16F views where the device binds
                         them, else the storage kernels run). Gates, states,
                         outputs and gradients stay fp32, and so does the math.
                         The decode ops ignore it. */
} dtr_lin_desc;

/* Scratch a backward needs (bytes), given the sequences' total length; the caller
 * owns the workspace so ops never allocate. */
size_t dtr_op_gla_chunk_bwd_workspace(const dtr_lin_desc *d);
size_t dtr_op_gdn_chunk_bwd_workspace(const dtr_lin_desc *d);

/* ---- GLA -------------------------------------------------------------------
 * S_t = diag(exp(gk_t)) S_{t-1} + k_t v_t^T ;  o_t = S_t^T (scale q_t) */
dtr_status dtr_op_gla_chunk_fwd(dtr_ctx *ctx, dtr_view o, dtr_view state_out, dtr_view q,
                                dtr_view k, dtr_view v, dtr_view gk, dtr_view state_in,
                                dtr_view offsets, const dtr_lin_desc *d);
/* dstate_out (optional) is the loss gradient w.r.t. the final state; dstate_in
 * (optional) receives the gradient w.r.t. the initial state. */
dtr_status dtr_op_gla_chunk_bwd(dtr_ctx *ctx, dtr_view dq, dtr_view dk, dtr_view dv,
                                dtr_view dgk, dtr_view dstate_in, dtr_view dout,
                                dtr_view dstate_out, dtr_view q, dtr_view k, dtr_view v,
                                dtr_view gk, dtr_view state_in, dtr_view offsets,
                                dtr_view workspace, const dtr_lin_desc *d);
/* One token per sequence; state (B, H, K, V) updated in place. d->Ttot = B. */
dtr_status dtr_op_gla_decode(dtr_ctx *ctx, dtr_view o, dtr_view state, dtr_view q,
                             dtr_view k, dtr_view v, dtr_view gk, const dtr_lin_desc *d);
/* GLA's gate: gk = logsigmoid(x) / normalizer over n elements (normalizer 16). */
dtr_status dtr_op_gla_gate_fwd(dtr_ctx *ctx, dtr_view gk, dtr_view x, uint32_t n,
                               float normalizer);
dtr_status dtr_op_gla_gate_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dgk, dtr_view x,
                               uint32_t n, float normalizer);

/* ---- Gated DeltaNet --------------------------------------------------------
 * S' = exp(g_t) S_{t-1};  S_t = S' + beta_t k_t (v_t - S'^T k_t)^T;
 * o_t = S_t^T (scale q_t). q and k are expected L2-normalised (dtr_op_l2norm). */
dtr_status dtr_op_gdn_chunk_fwd(dtr_ctx *ctx, dtr_view o, dtr_view state_out, dtr_view q,
                                dtr_view k, dtr_view v, dtr_view g, dtr_view beta,
                                dtr_view state_in, dtr_view offsets, const dtr_lin_desc *d);
dtr_status dtr_op_gdn_chunk_bwd(dtr_ctx *ctx, dtr_view dq, dtr_view dk, dtr_view dv,
                                dtr_view dg, dtr_view dbeta, dtr_view dstate_in,
                                dtr_view dout, dtr_view dstate_out, dtr_view q, dtr_view k,
                                dtr_view v, dtr_view g, dtr_view beta, dtr_view state_in,
                                dtr_view offsets, dtr_view workspace, const dtr_lin_desc *d);
dtr_status dtr_op_gdn_decode(dtr_ctx *ctx, dtr_view o, dtr_view state, dtr_view q,
                             dtr_view k, dtr_view v, dtr_view g, dtr_view beta,
                             const dtr_lin_desc *d);
/* A whole GDN decode step of ONE sequence in one dispatch (for CPU devices,
 * where dispatches dominate a small model's decode): from qkv = [q|k|v] (3 H K)
 * and ab = [a|b] (2 H) of the token's projections, the short convs with SiLU
 * (rolling the caches cq, ck, cv (3, H K)), L2 norms (eps 1e-6), the gates, the
 * state update and the output, then out = gated RMSNorm(o) (gate (H K)). The
 * weights are read from params at float offsets: the three conv weights (H K, 4)
 * back to back at off_conv, A_log, dt_bias, o_norm.weight. K = V <= 64. */
typedef struct dtr_gdn_fused_desc {
  uint32_t H, K;
  uint32_t off_conv, off_alog, off_dtb, off_onorm;
  float scale, norm_eps;
  uint32_t state_f16; /* the state is packed fp16 (see dtr_lin_desc) */
} dtr_gdn_fused_desc;
dtr_status dtr_op_gdn_decode_fused(dtr_ctx *ctx, dtr_view out, dtr_view state, dtr_view cq,
                                   dtr_view ck, dtr_view cv, dtr_view qkv, dtr_view ab,
                                   dtr_view gate, dtr_view params, const dtr_gdn_fused_desc *d);
/* GDN's gates from the projections a = W_a x and b = W_b x, both (N, H):
 * g = -exp(A_log[h]) * softplus(a + dt_bias[h]);  beta = sigmoid(b).
 * Backward: da, db written; dA_log (H), ddt_bias (H) accumulated. */
dtr_status dtr_op_gdn_gate_fwd(dtr_ctx *ctx, dtr_view g, dtr_view beta, dtr_view a,
                               dtr_view b, dtr_view A_log, dtr_view dt_bias, uint32_t N,
                               uint32_t H);
dtr_status dtr_op_gdn_gate_bwd(dtr_ctx *ctx, dtr_view da, dtr_view db, dtr_view dA_log,
                               dtr_view ddt_bias, dtr_view dg, dtr_view dbeta, dtr_view a,
                               dtr_view b, dtr_view A_log, dtr_view dt_bias, uint32_t N,
                               uint32_t H);
/* Per-row L2 normalisation: out = x / sqrt(sum(x^2) + eps), rows of C (eps 1e-6). */
dtr_status dtr_op_l2norm_fwd(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t N, uint32_t C,
                             float eps);
dtr_status dtr_op_l2norm_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dout, dtr_view x,
                             uint32_t N, uint32_t C, float eps);

/* ---- convolutions ----------------------------------------------------------
 * Short causal depthwise conv, kernel 4, over each sequence (zero history, or
 * cache_in (B, 3, C) the last 3 inputs before the first token):
 *   y_t[c] = sum_{i<4} w[c][i] x_{t-3+i}[c];  out = silu(y) when silu, else y.
 * x, out (Ttot, C); w (C, 4). cache_out (B, 3, C) optional: the last 3 inputs. */
dtr_status dtr_op_shortconv_fwd(dtr_ctx *ctx, dtr_view out, dtr_view cache_out, dtr_view x,
                                dtr_view w, dtr_view cache_in, dtr_view offsets, uint32_t B,
                                uint32_t Ttot, uint32_t C, int silu);
dtr_status dtr_op_shortconv_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dw, dtr_view dout,
                                dtr_view x, dtr_view w, dtr_view cache_in, dtr_view offsets,
                                uint32_t B, uint32_t Ttot, uint32_t C, int silu);
/* One token per sequence: x, out (B, C); cache (B, 3, C) rolled in place. */
dtr_status dtr_op_shortconv_decode(dtr_ctx *ctx, dtr_view out, dtr_view cache, dtr_view x,
                                   dtr_view w, uint32_t B, uint32_t C, int silu);
/* JetBlock's dynamic conv: per-token kernels kern (Ttot, C, 4) (generated by the
 * host as w2 silu(w1 x) + b2):  y_t[c] = sum_i kern_t[c][i] x_{t-3+i}[c]. */
dtr_status dtr_op_dynconv_fwd(dtr_ctx *ctx, dtr_view out, dtr_view cache_out, dtr_view x,
                              dtr_view kern, dtr_view cache_in, dtr_view offsets,
                              uint32_t B, uint32_t Ttot, uint32_t C, int silu);
dtr_status dtr_op_dynconv_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dkern, dtr_view dout,
                              dtr_view x, dtr_view kern, dtr_view cache_in,
                              dtr_view offsets, uint32_t B, uint32_t Ttot, uint32_t C,
                              int silu);
dtr_status dtr_op_dynconv_decode(dtr_ctx *ctx, dtr_view out, dtr_view cache, dtr_view x,
                                 dtr_view kern, uint32_t B, uint32_t C, int silu);

/* ---- gated RMSNorm output --------------------------------------------------
 * out = RMSNorm(o) * w  ⊙ silu(gate), rows of C (per head: N = tokens * H,
 * C = V, w (C) shared by heads). rstd (N) kept for the backward. */
dtr_status dtr_op_gated_rmsnorm_fwd(dtr_ctx *ctx, dtr_view out, dtr_view rstd, dtr_view o,
                                    dtr_view gate, dtr_view w, uint32_t N, uint32_t C,
                                    float eps);
dtr_status dtr_op_gated_rmsnorm_bwd(dtr_ctx *ctx, dtr_view dinp, dtr_view dgate,
                                    dtr_view dw, dtr_view dout, dtr_view o, dtr_view gate,
                                    dtr_view w, dtr_view rstd, uint32_t N, uint32_t C);

#endif
