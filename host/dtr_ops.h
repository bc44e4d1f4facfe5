/* dtr_ops.h — the dense transformer ops, forward and backward, on the runtime.
 *
 * Every op records its dispatches into the context (nothing waits); call
 * dtr_ctx_submit() to run them. Tensors are fp32, row-major, passed as views;
 * shapes are in the comments. A kernel keeps one base name everywhere:
 * shaders/<name>.comp <-> dtr_op_<name>() <-> ref_<name>() (tests/ref.h), same
 * argument order. Backward ops that produce parameter gradients ACCUMULATE into
 * them (+=), so gradients of a step sum over calls; input gradients are written.
 * Reductions are deterministic: the same inputs give the same bits on a device.
 */
#ifndef DTR_OPS_H
#define DTR_OPS_H

#include "dtr_runtime.h"

/* An absent optional view. */
#define DTR_NONE ((dtr_view){0, 0, 0})
static inline int dtr_view_present(dtr_view v) { return v.buf != 0; }

/* ---- matmul -------------------------------------------------------------
 * For b in [0, batch):  C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] (+ bias)
 * op(A) is (M, K): A is stored (M, K), or (K, M) when trans_a.
 * op(B) is (K, N): B is stored (K, N), or (N, K) when trans_b.
 * A linear layer y = x W^T with W (out, in) as Hugging Face stores it is
 * M = rows, N = out, K = in, trans_b = 1. Batch strides are in elements
 * (0 broadcasts). bias (N) is optional and added to every row. b_f16: B is
 * stored as fp16 (needs dtr_device_info.fp16_storage; else DTR_ERR_UNSUPPORTED). */
typedef struct dtr_matmul_desc {
  uint32_t M, N, K, batch;
  int trans_a, trans_b;
  size_t stride_a, stride_b, stride_c; /* batch strides, elements */
  float alpha, beta;
  int b_f16;
} dtr_matmul_desc;

dtr_status dtr_op_matmul(dtr_ctx *ctx, dtr_view C, dtr_view A, dtr_view B, dtr_view bias,
                         const dtr_matmul_desc *d);
/* Gradients of the above with beta = 0: dA = alpha dC op(B)^T (written),
 * dB += alpha op(A)^T dC (accumulated, in B's storage layout), dbias += column
 * sums of dC. Any of dA, dB, dbias may be DTR_NONE. */
dtr_status dtr_op_matmul_bwd(dtr_ctx *ctx, dtr_view dA, dtr_view dB, dtr_view dbias,
                             dtr_view dC, dtr_view A, dtr_view B,
                             const dtr_matmul_desc *d);

/* ---- causal attention with grouped-query heads (flash style) ------------
 * q (B, Tq, Hq, D), k and v (B, Tk, Hkv, D) inside a cache of kv_cap tokens per
 * sequence (batch stride kv_cap*Hkv*D; kv_cap = Tk when there is no cache).
 * Query i sits at position Tk - Tq + i and sees keys 0..Tk-Tq+i. Hq % Hkv == 0;
 * query head h reads kv head h / (Hq/Hkv). out (B, Tq, Hq, D); lse (B, Hq, Tq)
 * is the log-sum-exp of each row's scaled scores, kept for the backward. */
typedef struct dtr_attn_desc {
  uint32_t B, Tq, Tk, kv_cap, Hq, Hkv, D;
  float scale; /* usually 1/sqrt(D) */
} dtr_attn_desc;

dtr_status dtr_op_attention_fwd(dtr_ctx *ctx, dtr_view out, dtr_view lse, dtr_view q,
                                dtr_view k, dtr_view v, const dtr_attn_desc *d);
/* dq, dk, dv written (not accumulated); needs out and lse from the forward. */
dtr_status dtr_op_attention_bwd(dtr_ctx *ctx, dtr_view dq, dtr_view dk, dtr_view dv,
                                dtr_view dout, dtr_view q, dtr_view k, dtr_view v,
                                dtr_view out, dtr_view lse, const dtr_attn_desc *d);

/* ---- RMSNorm -------------------------------------------------------------
 * out = inp / sqrt(mean(inp^2) + eps) * weight, per row of C. rstd (N) keeps
 * 1/sqrt(mean+eps) for the backward. Qwen3's q/k norm is this with N = tokens *
 * heads and C = head dim. */
dtr_status dtr_op_rmsnorm_fwd(dtr_ctx *ctx, dtr_view out, dtr_view rstd, dtr_view inp,
                              dtr_view weight, uint32_t N, uint32_t C, float eps);
dtr_status dtr_op_rmsnorm_bwd(dtr_ctx *ctx, dtr_view dinp, dtr_view dweight,
                              dtr_view dout, dtr_view inp, dtr_view weight,
                              dtr_view rstd, uint32_t N, uint32_t C);

/* ---- RoPE -----------------------------------------------------------------
 * x (N, H, D) rotated in place or into out; pos (N) int32 positions; inv_freq
 * (D/2) the per-pair frequencies, computed by the host from theta and any
 * rope_scaling (llama3 etc.), so the kernel needs no knowledge of either.
 * style NEOX pairs (i, i + D/2) (Hugging Face Llama, Qwen2, Qwen3);
 * style GPTJ pairs (2i, 2i + 1) (Meta's original Llama). The backward is the
 * rotation by the negative angle. */
typedef enum { DTR_ROPE_NEOX = 0, DTR_ROPE_GPTJ = 1 } dtr_rope_style;
dtr_status dtr_op_rope_fwd(dtr_ctx *ctx, dtr_view out, dtr_view x, dtr_view pos,
                           dtr_view inv_freq, uint32_t N, uint32_t H, uint32_t D,
                           dtr_rope_style style);
dtr_status dtr_op_rope_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dout, dtr_view pos,
                           dtr_view inv_freq, uint32_t N, uint32_t H, uint32_t D,
                           dtr_rope_style style);
/* Host helper: inv_freq[i] = theta^(-2i/D), then llama3 scaling when factor > 0. */
typedef struct dtr_rope_scaling {
  float factor; /* 0: none */
  float low_freq_factor, high_freq_factor;
  uint32_t original_max_position;
} dtr_rope_scaling;
void dtr_rope_inv_freq(float *inv_freq, uint32_t D, double theta,
                       const dtr_rope_scaling *scaling);

/* ---- SwiGLU: out = silu(gate) * up, all (N) elements ---------------------- */
dtr_status dtr_op_swiglu_fwd(dtr_ctx *ctx, dtr_view out, dtr_view gate, dtr_view up,
                             uint32_t n);
dtr_status dtr_op_swiglu_bwd(dtr_ctx *ctx, dtr_view dgate, dtr_view dup, dtr_view dout,
                             dtr_view gate, dtr_view up, uint32_t n);

/* ---- embedding: out (N, C) = table[ids] with table (V, C), ids (N) int32 --- */
dtr_status dtr_op_embedding_fwd(dtr_ctx *ctx, dtr_view out, dtr_view ids, dtr_view table,
                                uint32_t N, uint32_t C, uint32_t V);
/* dtable += scatter of dout by ids (deterministic: fixed summation order). */
dtr_status dtr_op_embedding_bwd(dtr_ctx *ctx, dtr_view dtable, dtr_view dout,
                                dtr_view ids, uint32_t N, uint32_t C, uint32_t V);

/* ---- softmax cross-entropy ------------------------------------------------
 * logits (N, V), targets (N) int32, a target < 0 is ignored (loss 0, no grad).
 * losses (N) = logsumexp(row) - row[target]; lse (N) kept for the backward.
 * The backward writes dlogits = scale * (softmax(row) - onehot(target)). */
dtr_status dtr_op_crossentropy_fwd(dtr_ctx *ctx, dtr_view losses, dtr_view lse,
                                   dtr_view logits, dtr_view targets, uint32_t N,
                                   uint32_t V);
dtr_status dtr_op_crossentropy_bwd(dtr_ctx *ctx, dtr_view dlogits, dtr_view logits,
                                   dtr_view targets, dtr_view lse, uint32_t N,
                                   uint32_t V, float scale);

/* ---- MSE: loss (1) = mean((y - t)^2) over n elements -----------------------
 * partial is scratch of dtr_op_mse_partials(n) floats. Backward writes
 * dy = scale * 2 (y - t) / n. */
uint32_t dtr_op_mse_partials(uint32_t n);
dtr_status dtr_op_mse_fwd(dtr_ctx *ctx, dtr_view loss, dtr_view partial, dtr_view y,
                          dtr_view t, uint32_t n);
dtr_status dtr_op_mse_bwd(dtr_ctx *ctx, dtr_view dy, dtr_view y, dtr_view t, uint32_t n,
                          float scale);

/* ---- reductions (deterministic) --------------------------------------------
 * out (1) = sum of x (n), or of x^2 with squares. accumulate adds to out[0]
 * instead of overwriting (a global gradient norm over several tensors). */
dtr_status dtr_op_sum(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t n, int squares,
                      int accumulate);

/* ---- elementwise: out = a + b (residual stream); out may alias a ----------- */
dtr_status dtr_op_add(dtr_ctx *ctx, dtr_view out, dtr_view a, dtr_view b, uint32_t n);

/* ---- axpy: y = a * x + y over n elements ---------------------------------- */
dtr_status dtr_op_axpy(dtr_ctx *ctx, dtr_view y, dtr_view x, float a, uint32_t n);
/* ---- fp16 packing: out = n floats (n even) as n/2 words of two IEEE halves
 * (GLSL packHalf2x16: the even element in the low half), and back. Every
 * device has it (no 16-bit storage feature needed); round to nearest even. */
dtr_status dtr_op_pack_f16(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t n);
dtr_status dtr_op_unpack_f16(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t n);

/* ---- silu: out = x sigmoid(x) over n; the backward writes dx ------------------ */
dtr_status dtr_op_silu_fwd(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t n);
dtr_status dtr_op_silu_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dout, dtr_view x, uint32_t n);
/* Workgroup grid for n elements in groups of wg: x up to 65535, then y. */
void dtr_grid_1d(uint32_t n, uint32_t wg, uint32_t groups[3]);
/* Fails with DTR_ERR_INVALID naming op and arg when view v (size 0 = to the end of
 * its buffer) holds fewer than bytes bytes. */
dtr_status dtr_check_view(dtr_ctx *ctx, const char *op, const char *arg, dtr_view v,
                          size_t bytes);
/* Inputs an op reads as fp32, or (f16) as halves packed two a word the way
 * dtr_op_pack_f16 writes them: the bytes n values take; dtr_check_view of a
 * view of n such values (the message names the packed layout); the first n
 * values of v as a texel binding (RGBA32F, or RGBA16F when f16); and the kernel
 * to run, base or, when f16, its variant base_h16 (a "//! variant h16" line in
 * its shader) written into buf (len bytes). */
size_t dtr_io_bytes(size_t n, int f16);
dtr_status dtr_check_io_view(dtr_ctx *ctx, const char *op, const char *arg, dtr_view v,
                             size_t n, int f16);
dtr_arg dtr_tex_arg(dtr_view v, size_t n, int f16);
const char *dtr_kernel_h16(char *buf, size_t len, const char *base, int f16);

/* ---- AdamW (decoupled weight decay), one tensor of n ----------------------
 * If gnorm2 is present it holds the global sum of squared gradients and the
 * gradient is scaled by min(1, clip / sqrt(gnorm2)) in the kernel (no sync).
 * step is 1-based; bias corrections are applied. */
typedef struct dtr_adamw_desc {
  float lr, beta1, beta2, eps, weight_decay, clip;
  uint32_t step;
} dtr_adamw_desc;
dtr_status dtr_op_adamw(dtr_ctx *ctx, dtr_view param, dtr_view grad, dtr_view m,
                        dtr_view v, dtr_view gnorm2, uint32_t n,
                        const dtr_adamw_desc *d);

#endif
