/* ops_misc.c — host side of every op of dtr_ops.h except matmul and attention:
 * RMSNorm, RoPE (and the inv_freq helper), SwiGLU, embedding, softmax
 * cross-entropy, MSE, the deterministic sum, add and AdamW. Each wrapper checks
 * its arguments (views large enough for the shapes, shape constraints), fills the
 * push constants of shaders/push_ops.h and records the dispatches; nothing waits.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "dtr_ops.h"
#include "dtr_push.h"

#define MAX_GROUPS 65535u     /* the smallest maxComputeWorkGroupCount Vulkan allows */
#define GRID_GROUPS 4096u     /* grid-strided kernels: enough groups to fill a GPU */
#define WG_ELEM 256u          /* workgroup size of the elementwise kernels */
#define MSE_MAX_PARTIALS 256u /* the final pass is one workgroup: keep it short */

static uint32_t ceil_div(uint64_t a, uint64_t b) {
  uint64_t q = (a + b - 1) / b;
  return q > UINT32_MAX ? UINT32_MAX : (uint32_t)q;
}
static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }
/* Workgroups for a grid-strided kernel over n items with wg invocations each. */
static uint32_t grid(uint64_t n, uint32_t wg) { return min_u32(ceil_div(n, wg), GRID_GROUPS); }

/* Checks that view v (named name, of op) holds at least count 4-byte elements. */
static dtr_status need(dtr_ctx *ctx, const char *op, const char *name, dtr_view v,
                       uint64_t count) {
  if (count > SIZE_MAX / 4)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: %s needs %llu elements, too many", op,
                             name, (unsigned long long)count);
  return dtr_check_view(ctx, op, name, v, (size_t)count * 4);
}
#define NEED(name, v, count)                                   \
  do {                                                         \
    dtr_status st_ = need(ctx, OP, name, v, (uint64_t)(count)); \
    if (st_ != DTR_OK) return st_;                             \
  } while (0)

/* Element indices are 32-bit in the kernels. */
#define FITS32(what, count)                                                              \
  do {                                                                                   \
    if ((uint64_t)(count) > UINT32_MAX)                                                  \
      return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: %s has %llu elements, over 2^32", \
                               OP, what, (unsigned long long)(count));                   \
  } while (0)

static dtr_status run(dtr_ctx *ctx, const char *kernel, const dtr_arg *args, uint32_t nargs,
                      const void *push, uint32_t push_size, uint32_t gx, uint32_t gy) {
  dtr_dispatch_desc d = {kernel, NULL, 0, args, nargs, push, push_size, {gx, gy, 1}};
  return dtr_dispatch(ctx, &d);
}

/* ---- RMSNorm -------------------------------------------------------------- */

dtr_status dtr_op_rmsnorm_fwd(dtr_ctx *ctx, dtr_view out, dtr_view rstd, dtr_view inp,
                              dtr_view weight, uint32_t N, uint32_t C, float eps) {
#define OP "rmsnorm_fwd"
  uint64_t nc = (uint64_t)N * C;
  FITS32("inp", nc);
  if (C == 0) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": C is 0");
  if (!(eps >= 0.0f)) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": eps %g < 0", eps);
  NEED("out", out, nc);        // (N, C)
  NEED("rstd", rstd, N);       // (N)
  NEED("inp", inp, nc);        // (N, C)
  NEED("weight", weight, C);   // (C)
  if (N == 0) return DTR_OK;
  dtr_pc_rmsnorm pc = {N, C, eps};
  dtr_arg a[] = {DTR_OUT(out), DTR_OUT(rstd), DTR_IN(inp), DTR_IN(weight)};
  return run(ctx, "rmsnorm_fwd", a, 4, &pc, sizeof pc, min_u32(N, MAX_GROUPS), 1);
#undef OP
}

/* dinp is written, dweight accumulated; either may be DTR_NONE. */
dtr_status dtr_op_rmsnorm_bwd(dtr_ctx *ctx, dtr_view dinp, dtr_view dweight, dtr_view dout,
                              dtr_view inp, dtr_view weight, dtr_view rstd, uint32_t N,
                              uint32_t C) {
#define OP "rmsnorm_bwd"
  uint64_t nc = (uint64_t)N * C;
  FITS32("inp", nc);
  if (C == 0) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": C is 0");
  if (dtr_view_present(dinp)) NEED("dinp", dinp, nc);           // (N, C)
  if (dtr_view_present(dweight)) NEED("dweight", dweight, C);   // (C)
  NEED("dout", dout, nc);                                        // (N, C)
  NEED("inp", inp, nc);                                          // (N, C)
  if (dtr_view_present(dinp)) NEED("weight", weight, C);        // (C)
  NEED("rstd", rstd, N);                                         // (N)
  if (N == 0) return DTR_OK;
  dtr_pc_rmsnorm pc = {N, C, 0.0f};
  dtr_status st = DTR_OK;
  if (dtr_view_present(dinp)) {
    dtr_arg a[] = {DTR_OUT(dinp), DTR_IN(dout), DTR_IN(inp), DTR_IN(weight), DTR_IN(rstd)};
    st = run(ctx, "rmsnorm_bwd", a, 5, &pc, sizeof pc, min_u32(N, MAX_GROUPS), 1);
    if (st != DTR_OK) return st;
  }
  if (dtr_view_present(dweight)) {
    dtr_arg a[] = {DTR_OUT(dweight), DTR_IN(dout), DTR_IN(inp), DTR_IN(rstd)};
    st = run(ctx, "rmsnorm_bwd_dweight", a, 4, &pc, sizeof pc, ceil_div(C, 32), 1);
  }
  return st;
#undef OP
}

/* ---- RoPE ----------------------------------------------------------------- */

static dtr_status rope(dtr_ctx *ctx, const char *OP, dtr_view out, dtr_view x, dtr_view pos,
                       dtr_view inv_freq, uint32_t N, uint32_t H, uint32_t D,
                       dtr_rope_style style, float sign) {
  uint64_t total = (uint64_t)N * H * D;
  FITS32("x", total);
  if (D == 0 || D % 2)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: head dim D = %u must be even and > 0",
                             OP, D);
  if (style != DTR_ROPE_NEOX && style != DTR_ROPE_GPTJ)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: unknown style %d", OP, (int)style);
  NEED("out", out, total);         // (N, H, D)
  NEED("x", x, total);             // (N, H, D)
  NEED("pos", pos, N);             // (N) int32
  NEED("inv_freq", inv_freq, D / 2); // (D/2)
  if (total == 0) return DTR_OK;
  dtr_pc_rope pc = {N, H, D, (uint32_t)style, sign};
  dtr_arg a[] = {DTR_OUT(out), DTR_IN(x), DTR_IN(pos), DTR_IN(inv_freq)};
  return run(ctx, "rope", a, 4, &pc, sizeof pc, grid(total / 2, WG_ELEM), 1);
}

dtr_status dtr_op_rope_fwd(dtr_ctx *ctx, dtr_view out, dtr_view x, dtr_view pos,
                           dtr_view inv_freq, uint32_t N, uint32_t H, uint32_t D,
                           dtr_rope_style style) {
  return rope(ctx, "rope_fwd", out, x, pos, inv_freq, N, H, D, style, 1.0f);
}

/* The forward is a rotation R(theta) of each pair, so dx = R(theta)^T dout =
 * R(-theta) dout: the same kernel with the sine negated. */
dtr_status dtr_op_rope_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dout, dtr_view pos,
                           dtr_view inv_freq, uint32_t N, uint32_t H, uint32_t D,
                           dtr_rope_style style) {
  return rope(ctx, "rope_bwd", dx, dout, pos, inv_freq, N, H, D, style, -1.0f);
}

/* inv_freq[i] = theta^(-2i/D), then, when scaling->factor > 0, Hugging Face's
 * llama3 rope_scaling (transformers' _compute_llama3_parameters): with
 * wavelen = 2 pi / f, wavelengths below original_max / high_freq_factor keep f,
 * those above original_max / low_freq_factor get f / factor, and those between
 * interpolate with s = (original_max / wavelen - low) / (high - low):
 * f' = (1 - s) f / factor + s f. Computed in double and rounded once (transformers
 * computes in fp32, so the two can differ in the last bit). */
void dtr_rope_inv_freq(float *inv_freq, uint32_t D, double theta,
                       const dtr_rope_scaling *scaling) {
  const double pi = 3.14159265358979323846;
  for (uint32_t i = 0; i < D / 2; ++i) {
    double f = pow(theta, -(double)(2 * i) / (double)D);
    if (scaling && scaling->factor > 0) {
      double factor = scaling->factor, lo = scaling->low_freq_factor,
             hi = scaling->high_freq_factor, old = scaling->original_max_position;
      double low_wavelen = old / lo, high_wavelen = old / hi;
      double wavelen = 2 * pi / f;
      if (wavelen > low_wavelen) {
        f = f / factor;
      } else if (!(wavelen < high_wavelen) && hi != lo) {
        double s = (old / wavelen - lo) / (hi - lo);
        f = (1 - s) * f / factor + s * f;
      }
    }
    inv_freq[i] = (float)f;
  }
}

/* ---- SwiGLU --------------------------------------------------------------- */

dtr_status dtr_op_swiglu_fwd(dtr_ctx *ctx, dtr_view out, dtr_view gate, dtr_view up,
                             uint32_t n) {
#define OP "swiglu_fwd"
  NEED("out", out, n);   // (n)
  NEED("gate", gate, n); // (n)
  NEED("up", up, n);     // (n)
  if (n == 0) return DTR_OK;
  dtr_pc_elementwise pc = {n, 0.0f};
  dtr_arg a[] = {DTR_OUT(out), DTR_IN(gate), DTR_IN(up)};
  return run(ctx, "swiglu_fwd", a, 3, &pc, sizeof pc, grid(n, WG_ELEM), 1);
#undef OP
}

dtr_status dtr_op_swiglu_bwd(dtr_ctx *ctx, dtr_view dgate, dtr_view dup, dtr_view dout,
                             dtr_view gate, dtr_view up, uint32_t n) {
#define OP "swiglu_bwd"
  NEED("dgate", dgate, n); // (n)
  NEED("dup", dup, n);     // (n)
  NEED("dout", dout, n);   // (n)
  NEED("gate", gate, n);   // (n)
  NEED("up", up, n);       // (n)
  if (n == 0) return DTR_OK;
  dtr_pc_elementwise pc = {n, 0.0f};
  dtr_arg a[] = {DTR_OUT(dgate), DTR_OUT(dup), DTR_IN(dout), DTR_IN(gate), DTR_IN(up)};
  return run(ctx, "swiglu_bwd", a, 5, &pc, sizeof pc, grid(n, WG_ELEM), 1);
#undef OP
}

/* ---- embedding ------------------------------------------------------------ */

dtr_status dtr_op_embedding_fwd(dtr_ctx *ctx, dtr_view out, dtr_view ids, dtr_view table,
                                uint32_t N, uint32_t C, uint32_t V) {
#define OP "embedding_fwd"
  FITS32("out", (uint64_t)N * C);
  FITS32("table", (uint64_t)V * C);
  NEED("out", out, (uint64_t)N * C);     // (N, C)
  NEED("ids", ids, N);                   // (N) int32
  NEED("table", table, (uint64_t)V * C); // (V, C)
  if ((uint64_t)N * C == 0) return DTR_OK;
  dtr_pc_embedding pc = {N, C, V};
  dtr_arg a[] = {DTR_OUT(out), DTR_IN(ids), DTR_IN(table)};
  return run(ctx, "embedding_fwd", a, 3, &pc, sizeof pc, grid((uint64_t)N * C, WG_ELEM), 1);
#undef OP
}

dtr_status dtr_op_embedding_bwd(dtr_ctx *ctx, dtr_view dtable, dtr_view dout, dtr_view ids,
                                uint32_t N, uint32_t C, uint32_t V) {
#define OP "embedding_bwd"
  FITS32("dout", (uint64_t)N * C);
  FITS32("dtable", (uint64_t)V * C);
  NEED("dtable", dtable, (uint64_t)V * C); // (V, C), accumulated
  NEED("dout", dout, (uint64_t)N * C);     // (N, C)
  NEED("ids", ids, N);                     // (N) int32
  if ((uint64_t)N * C == 0) return DTR_OK;
  dtr_pc_embedding pc = {N, C, V};
  dtr_arg a[] = {DTR_OUT(dtable), DTR_IN(dout), DTR_IN(ids)};
  return run(ctx, "embedding_bwd", a, 3, &pc, sizeof pc, ceil_div(C, 64), 1);
#undef OP
}

/* ---- softmax cross-entropy ------------------------------------------------ */

dtr_status dtr_op_crossentropy_fwd(dtr_ctx *ctx, dtr_view losses, dtr_view lse,
                                   dtr_view logits, dtr_view targets, uint32_t N,
                                   uint32_t V) {
#define OP "crossentropy_fwd"
  FITS32("logits", (uint64_t)N * V);
  if (V == 0) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": V is 0");
  NEED("losses", losses, N);                  // (N)
  NEED("lse", lse, N);                        // (N)
  NEED("logits", logits, (uint64_t)N * V);    // (N, V)
  NEED("targets", targets, N);                // (N) int32
  if (N == 0) return DTR_OK;
  dtr_pc_crossentropy pc = {N, V, 0.0f};
  dtr_arg a[] = {DTR_OUT(losses), DTR_OUT(lse), DTR_IN(logits), DTR_IN(targets)};
  return run(ctx, "crossentropy_fwd", a, 4, &pc, sizeof pc, min_u32(N, MAX_GROUPS), 1);
#undef OP
}

dtr_status dtr_op_crossentropy_bwd(dtr_ctx *ctx, dtr_view dlogits, dtr_view logits,
                                   dtr_view targets, dtr_view lse, uint32_t N, uint32_t V,
                                   float scale) {
#define OP "crossentropy_bwd"
  FITS32("logits", (uint64_t)N * V);
  if (V == 0) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": V is 0");
  NEED("dlogits", dlogits, (uint64_t)N * V); // (N, V)
  NEED("logits", logits, (uint64_t)N * V);   // (N, V)
  NEED("targets", targets, N);               // (N) int32
  NEED("lse", lse, N);                       // (N)
  if (N == 0) return DTR_OK;
  dtr_pc_crossentropy pc = {N, V, scale};
  dtr_arg a[] = {DTR_OUT(dlogits), DTR_IN(logits), DTR_IN(targets), DTR_IN(lse)};
  /* x covers a row in chunks of WG_ELEM*4 columns (4 per invocation), y the rows;
   * keep about GRID_GROUPS groups in all. */
  uint32_t gx = min_u32(ceil_div(V, WG_ELEM * 4), GRID_GROUPS);
  uint32_t gy = min_u32(min_u32(N, MAX_GROUPS), ceil_div(GRID_GROUPS, gx));
  return run(ctx, "crossentropy_bwd", a, 4, &pc, sizeof pc, gx, gy);
#undef OP
}

/* ---- MSE ------------------------------------------------------------------ */

/* One partial per workgroup of mse_fwd, each over about 4096+ elements. */
uint32_t dtr_op_mse_partials(uint32_t n) {
  uint32_t p = ceil_div(n, WG_ELEM * 16);
  if (p < 1) p = 1;
  return min_u32(p, MSE_MAX_PARTIALS);
}

dtr_status dtr_op_mse_fwd(dtr_ctx *ctx, dtr_view loss, dtr_view partial, dtr_view y,
                          dtr_view t, uint32_t n) {
#define OP "mse_fwd"
  uint32_t np = dtr_op_mse_partials(n);
  if (n == 0) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": n is 0 (mean of nothing)");
  NEED("loss", loss, 1);          // (1)
  NEED("partial", partial, np);   // (dtr_op_mse_partials(n))
  NEED("y", y, n);                // (n)
  NEED("t", t, n);                // (n)
  dtr_pc_mse pc = {n};
  dtr_arg a[] = {DTR_OUT(partial), DTR_IN(y), DTR_IN(t)};
  dtr_status st = run(ctx, "mse_fwd", a, 3, &pc, sizeof pc, np, 1);
  if (st != DTR_OK) return st;
  dtr_pc_sum ps = {np, 0, 0, (float)(1.0 / n)};
  dtr_arg b[] = {DTR_OUT(loss), DTR_IN(partial)};
  return run(ctx, "sum", b, 2, &ps, sizeof ps, 1, 1);
#undef OP
}

dtr_status dtr_op_mse_bwd(dtr_ctx *ctx, dtr_view dy, dtr_view y, dtr_view t, uint32_t n,
                          float scale) {
#define OP "mse_bwd"
  if (n == 0) return DTR_OK;
  NEED("dy", dy, n); // (n)
  NEED("y", y, n);   // (n)
  NEED("t", t, n);   // (n)
  /* d/dy of sum (y - t)^2 / n is 2 (y - t) / n; fold the constant into one factor. */
  dtr_pc_elementwise pc = {n, (float)(2.0 * scale / n)};
  dtr_arg a[] = {DTR_OUT(dy), DTR_IN(y), DTR_IN(t)};
  return run(ctx, "mse_bwd", a, 3, &pc, sizeof pc, grid(n, WG_ELEM), 1);
#undef OP
}

/* ---- reductions ----------------------------------------------------------- */

dtr_status dtr_op_sum(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t n, int squares,
                      int accumulate) {
#define OP "sum"
  NEED("out", out, 1); // (1)
  if (n) NEED("x", x, n); // (n)
  else if (!x.buf) x = out; /* a binding is needed even when nothing is read */
  dtr_pc_sum pc = {n, squares ? 1u : 0u, accumulate ? 1u : 0u, 1.0f};
  dtr_arg a[] = {DTR_OUT(out), DTR_IN(x)};
  return run(ctx, "sum", a, 2, &pc, sizeof pc, 1, 1);
#undef OP
}

/* ---- add ------------------------------------------------------------------ */

dtr_status dtr_op_add(dtr_ctx *ctx, dtr_view out, dtr_view a, dtr_view b, uint32_t n) {
#define OP "add"
  NEED("out", out, n); // (n)
  NEED("a", a, n);     // (n)
  NEED("b", b, n);     // (n)
  if (n == 0) return DTR_OK;
  dtr_pc_elementwise pc = {n, 0.0f};
  dtr_arg args[] = {DTR_OUT(out), DTR_IN(a), DTR_IN(b)};
  return run(ctx, "add", args, 3, &pc, sizeof pc, grid(n, WG_ELEM), 1);
#undef OP
}

/* ---- AdamW ---------------------------------------------------------------- */

dtr_status dtr_op_adamw(dtr_ctx *ctx, dtr_view param, dtr_view grad, dtr_view m, dtr_view v,
                        dtr_view gnorm2, uint32_t n, const dtr_adamw_desc *d) {
#define OP "adamw"
  if (!d) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": no descriptor");
  if (d->step < 1)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": step is 1-based, got 0");
  if (!(d->beta1 >= 0 && d->beta1 < 1 && d->beta2 >= 0 && d->beta2 < 1))
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": betas (%g, %g) must lie in [0, 1)",
                             d->beta1, d->beta2);
  NEED("param", param, n); // (n)
  NEED("grad", grad, n);   // (n)
  NEED("m", m, n);         // (n)
  NEED("v", v, n);         // (n)
  int has_g = dtr_view_present(gnorm2);
  if (has_g) NEED("gnorm2", gnorm2, 1); // (1)
  if (n == 0) return DTR_OK;
  dtr_pc_adamw pc = {n,
                     has_g ? 1u : 0u,
                     d->lr,
                     d->beta1,
                     d->beta2,
                     d->eps,
                     d->weight_decay,
                     d->clip,
                     (float)(1.0 - pow(d->beta1, d->step)),
                     (float)(1.0 - pow(d->beta2, d->step))};
  dtr_arg a[] = {DTR_OUT(param), DTR_IN(grad), DTR_OUT(m), DTR_OUT(v),
                 DTR_IN(has_g ? gnorm2 : grad)};
  return run(ctx, "adamw", a, 5, &pc, sizeof pc, grid(n, WG_ELEM), 1);
#undef OP
}
