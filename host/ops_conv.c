/* ops_conv.c — host side of the convolutions and the gated RMSNorm of
 * dtr_linear.h: the short causal depthwise conv (GDN's q/k/v conv), JetBlock's
 * dynamic conv with per-token kernels, their decode steps, and the gated RMSNorm
 * output. Each wrapper checks its arguments, fills dtr_pc_conv or
 * dtr_pc_gated_rmsnorm (shaders/push_conv.h) and records its dispatches. The
 * kernels are shaders/shortconv_*.comp, dynconv_*.comp (bodies in
 * shortconv_common.glsl) and gated_rmsnorm_*.comp. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dtr_linear.h"
#include "dtr_push.h"

#define MAX_GROUPS 65535u
#define CONV_WG 64u     /* channels per workgroup (fwd, dynconv bwd, decode, cache) */
#define CONV_TB_FWD 16u /* tokens walked per invocation in the forward */
#define CONV_TB_BWD 32u /* ... in the dynconv backward (3 of look-ahead on top) */
#define SC_BWD_COLS 32u /* shortconv_bwd: channels per workgroup (see the shader) */
#define NORM_WG 64u     /* gated RMSNorm: rows per workgroup */

static uint32_t ceil_div(uint64_t a, uint64_t b) {
  uint64_t q = (a + b - 1) / b;
  return q > UINT32_MAX ? UINT32_MAX : (uint32_t)q;
}

/* view v of op must hold count floats (or int32). */
static dtr_status need(dtr_ctx *ctx, const char *op, const char *name, dtr_view v, uint64_t count) {
  if (count > SIZE_MAX / 4)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: %s is too large", op, name);
  return dtr_check_view(ctx, op, name, v, (size_t)count * 4);
}
#define NEED(name, v, count)                                                                       \
  do {                                                                                             \
    dtr_status st_ = need(ctx, OP, name, v, (uint64_t)(count));                                    \
    if (st_ != DTR_OK) return st_;                                                                 \
  } while (0)

/* Views bound as vec4 arrays (w, kern, dw, dkern) start on 16 bytes. */
#define ALIGN16(name, v)                                                                           \
  do {                                                                                             \
    if ((v).offset % 16)                                                                           \
      return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,                                               \
                               "%s: %s offset %zu is not a multiple "                              \
                               "of 16 bytes (it is read as vec4)",                                 \
                               OP, name, (v).offset);                                              \
  } while (0)

static size_t view_end(dtr_view v) { return v.size ? v.offset + v.size : dtr_buf_size(v.buf); }
static int overlap(dtr_view a, dtr_view b) {
  return a.buf && a.buf == b.buf && a.offset < view_end(b) && b.offset < view_end(a);
}
#define NO_ALIAS(na, a, nb, b)                                                                     \
  do {                                                                                             \
    if (overlap(a, b))                                                                             \
      return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: %s overlaps %s", OP, na, nb);            \
  } while (0)

static dtr_status run(dtr_ctx *ctx, const char *kernel, const uint32_t *spec, uint32_t nspec,
                      const dtr_arg *args, uint32_t nargs, const void *push, uint32_t push_size,
                      const uint32_t groups[3]) {
  dtr_dispatch_desc d = {kernel, spec, nspec,     args,
                         nargs,  push, push_size, {groups[0], groups[1], groups[2]}};
  return dtr_dispatch(ctx, &d);
}

/* The "vec4" kernel variants move 4 channels per access: they need C % 4 == 0
 * and the activation views on 16 bytes (absent views are ignored). */
static int vec4_ok(uint32_t C, const dtr_view *v, int n) {
  if (C % 4) return 0;
  for (int i = 0; i < n; i++)
    if (v[i].buf && v[i].offset % 16) return 0;
  return 1;
}
/* kernel name, or kernel_vec4 (buf holds 48 bytes). */
static const char *variant(char *buf, const char *kernel, int vec4) {
  snprintf(buf, 48, "%s%s", kernel, vec4 ? "_vec4" : "");
  return buf;
}

/* Channels in x, runs of tb tokens in y (then z beyond 65535). */
static void conv_grid(uint32_t nc, uint32_t Ttot, uint32_t tb, uint32_t g[3]) {
  uint32_t runs = ceil_div(Ttot, tb);
  g[0] = ceil_div(nc, CONV_WG);
  g[1] = runs < MAX_GROUPS ? (runs ? runs : 1) : MAX_GROUPS;
  g[2] = ceil_div(runs, MAX_GROUPS);
  if (!g[2]) g[2] = 1;
}

/* Checks shared by the forward and backward of both convs. dyn: 0 for static
 * w (C, 4), 1 for kern (Ttot, C, 4). */
static dtr_status conv_check(dtr_ctx *ctx, const char *OP, dtr_view x, dtr_view taps,
                             dtr_view cache_in, dtr_view offsets, uint32_t B, uint32_t Ttot,
                             uint32_t C, int dyn) {
  if (B == 0 || C == 0)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: B = %u and C = %u must be > 0", OP, B, C);
  if ((uint64_t)Ttot * C > UINT32_MAX / 4 || (uint64_t)B * 3 * C > UINT32_MAX)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: Ttot * C = %llu is over the kernels' 32-bit indexing", OP,
                             (unsigned long long)Ttot * C);
  NEED("x", x, (uint64_t)Ttot * C);                                   // (Ttot, C)
  NEED(dyn ? "kern" : "w", taps, (dyn ? (uint64_t)Ttot * C : C) * 4); // (Ttot, C, 4) | (C, 4)
  ALIGN16(dyn ? "kern" : "w", taps);
  if (dtr_view_present(cache_in)) NEED("cache_in", cache_in, (uint64_t)B * 3 * C); // (B, 3, C)
  NEED("offsets", offsets, (uint64_t)B + 1);                                       // (B+1) int32
  return DTR_OK;
}

static dtr_status conv_fwd(dtr_ctx *ctx, const char *OP, const char *kernel, dtr_view out,
                           dtr_view cache_out, dtr_view x, dtr_view taps, dtr_view cache_in,
                           dtr_view offsets, uint32_t B, uint32_t Ttot, uint32_t C, int silu,
                           int dyn) {
  dtr_status st = conv_check(ctx, OP, x, taps, cache_in, offsets, B, Ttot, C, dyn);
  if (st) return st;
  NEED("out", out, (uint64_t)Ttot * C); // (Ttot, C)
  NO_ALIAS("out", out, "x", x);
  NO_ALIAS("out", out, "cache_in", cache_in);
  if (dtr_view_present(cache_out)) {
    NEED("cache_out", cache_out, (uint64_t)B * 3 * C); // (B, 3, C)
    NO_ALIAS("cache_out", cache_out, "x", x);
    NO_ALIAS("cache_out", cache_out, "out", out);
  }
  int has_cache = dtr_view_present(cache_in);
  dtr_pc_conv pc = {B, Ttot, C, silu != 0, (uint32_t)has_cache, 0, 0};
  dtr_view cin = has_cache ? cache_in : x; /* a placeholder binding, never read */
  dtr_view vs[] = {out, x, cache_in, cache_out};
  int vec4 = vec4_ok(C, vs, 4);
  uint32_t nc = vec4 ? C / 4 : C; /* channel groups, one per invocation */
  char name[48];
  if (Ttot) {
    uint32_t spec[2] = {CONV_WG, CONV_TB_FWD}, g[3];
    conv_grid(nc, Ttot, CONV_TB_FWD, g);
    dtr_arg a[] = {DTR_OUT(out), DTR_IN(x), DTR_IN(taps), DTR_IN(cin), DTR_IN(offsets)};
    if ((st = run(ctx, variant(name, kernel, vec4), spec, 2, a, 5, &pc, sizeof pc, g))) return st;
  }
  if (dtr_view_present(cache_out)) {
    /* After the forward (which reads cache_in): cache_out may be cache_in. */
    uint32_t spec = CONV_WG, g[3];
    dtr_grid_1d(B * nc, CONV_WG, g);
    dtr_arg a[] = {DTR_OUT(cache_out), DTR_IN(x), DTR_IN(cin), DTR_IN(offsets)};
    if ((st = run(ctx, variant(name, "shortconv_cache", vec4), &spec, 1, a, 4, &pc, sizeof pc, g)))
      return st;
  }
  return DTR_OK;
}

/* dx (Ttot, C) written; dtaps is dw (C, 4) accumulated (static) or dkern
 * (Ttot, C, 4) written (dynamic). Either may be DTR_NONE. */
static dtr_status conv_bwd(dtr_ctx *ctx, const char *OP, const char *kernel, dtr_view dx,
                           dtr_view dtaps, dtr_view dout, dtr_view x, dtr_view taps,
                           dtr_view cache_in, dtr_view offsets, uint32_t B, uint32_t Ttot,
                           uint32_t C, int silu, int dyn) {
  dtr_status st = conv_check(ctx, OP, x, taps, cache_in, offsets, B, Ttot, C, dyn);
  if (st) return st;
  const char *dname = dyn ? "dkern" : "dw";
  int has_dx = dtr_view_present(dx), has_dt = dtr_view_present(dtaps);
  NEED("dout", dout, (uint64_t)Ttot * C); // (Ttot, C)
  if (has_dx) {
    NEED("dx", dx, (uint64_t)Ttot * C); // (Ttot, C)
    NO_ALIAS("dx", dx, "dout", dout);
    NO_ALIAS("dx", dx, "x", x);
    NO_ALIAS("dx", dx, dname, dtaps);
  }
  if (has_dt) {
    NEED(dname, dtaps, (dyn ? (uint64_t)Ttot * C : C) * 4);
    ALIGN16(dname, dtaps);
    NO_ALIAS(dname, dtaps, "dout", dout);
    NO_ALIAS(dname, dtaps, "x", x);
  }
  if ((!has_dx && !has_dt) || Ttot == 0) return DTR_OK;
  dtr_pc_conv pc = {B,
                    Ttot,
                    C,
                    silu != 0,
                    (uint32_t)dtr_view_present(cache_in),
                    (uint32_t)has_dx,
                    (uint32_t)has_dt};
  /* Absent outputs are bound to a present one and never written. */
  dtr_view vdx = has_dx ? dx : dtaps, vdt = has_dt ? dtaps : dx;
  dtr_view cin = dtr_view_present(cache_in) ? cache_in : x;
  dtr_arg a[] = {DTR_OUT(vdx), DTR_OUT(vdt), DTR_IN(dout),   DTR_IN(x),
                 DTR_IN(taps), DTR_IN(cin),  DTR_IN(offsets)};
  dtr_view vs[] = {dx, dout, x, cache_in};
  int vec4 = vec4_ok(C, vs, 4);
  uint32_t nc = vec4 ? C / 4 : C;
  char name[48];
  if (dyn) {
    uint32_t spec[2] = {CONV_WG, CONV_TB_BWD}, g[3];
    conv_grid(nc, Ttot, CONV_TB_BWD, g);
    return run(ctx, variant(name, kernel, vec4), spec, 2, a, 7, &pc, sizeof pc, g);
  }
  uint32_t g[3] = {ceil_div(nc, SC_BWD_COLS), 1, 1};
  return run(ctx, variant(name, kernel, vec4), NULL, 0, a, 7, &pc, sizeof pc, g);
}

static dtr_status conv_decode(dtr_ctx *ctx, const char *OP, const char *kernel, dtr_view out,
                              dtr_view cache, dtr_view x, dtr_view taps, uint32_t B, uint32_t C,
                              int silu, int dyn) {
  if (B == 0 || C == 0)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: B = %u and C = %u must be > 0", OP, B, C);
  if ((uint64_t)B * 3 * C > UINT32_MAX / 4)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: B * C is over 32-bit indexing", OP);
  NEED("out", out, (uint64_t)B * C);                               // (B, C)
  NEED("cache", cache, (uint64_t)B * 3 * C);                       // (B, 3, C)
  NEED("x", x, (uint64_t)B * C);                                   // (B, C)
  NEED(dyn ? "kern" : "w", taps, (dyn ? (uint64_t)B * C : C) * 4); // (B, C, 4) | (C, 4)
  ALIGN16(dyn ? "kern" : "w", taps);
  NO_ALIAS("out", out, "cache", cache);
  NO_ALIAS("out", out, "x", x);
  NO_ALIAS("cache", cache, "x", x);
  dtr_pc_conv pc = {B, B, C, silu != 0, 1, 0, 0};
  dtr_view vs[] = {out, cache, x};
  int vec4 = vec4_ok(C, vs, 3);
  uint32_t spec = CONV_WG, g[3];
  char name[48];
  dtr_grid_1d(B * (vec4 ? C / 4 : C), CONV_WG, g);
  dtr_arg a[] = {DTR_OUT(out), DTR_OUT(cache), DTR_IN(x), DTR_IN(taps)};
  return run(ctx, variant(name, kernel, vec4), &spec, 1, a, 4, &pc, sizeof pc, g);
}

dtr_status dtr_op_shortconv_fwd(dtr_ctx *ctx, dtr_view out, dtr_view cache_out, dtr_view x,
                                dtr_view w, dtr_view cache_in, dtr_view offsets, uint32_t B,
                                uint32_t Ttot, uint32_t C, int silu) {
  return conv_fwd(ctx, "shortconv_fwd", "shortconv_fwd", out, cache_out, x, w, cache_in, offsets, B,
                  Ttot, C, silu, 0);
}

/* dx written, dw accumulated (deterministic: per-workgroup slices summed in a
 * fixed order, no atomics). The derivation is in shortconv_common.glsl. */
dtr_status dtr_op_shortconv_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dw, dtr_view dout, dtr_view x,
                                dtr_view w, dtr_view cache_in, dtr_view offsets, uint32_t B,
                                uint32_t Ttot, uint32_t C, int silu) {
  return conv_bwd(ctx, "shortconv_bwd", "shortconv_bwd", dx, dw, dout, x, w, cache_in, offsets, B,
                  Ttot, C, silu, 0);
}

dtr_status dtr_op_shortconv_decode(dtr_ctx *ctx, dtr_view out, dtr_view cache, dtr_view x,
                                   dtr_view w, uint32_t B, uint32_t C, int silu) {
  return conv_decode(ctx, "shortconv_decode", "shortconv_decode", out, cache, x, w, B, C, silu, 0);
}

dtr_status dtr_op_dynconv_fwd(dtr_ctx *ctx, dtr_view out, dtr_view cache_out, dtr_view x,
                              dtr_view kern, dtr_view cache_in, dtr_view offsets, uint32_t B,
                              uint32_t Ttot, uint32_t C, int silu) {
  return conv_fwd(ctx, "dynconv_fwd", "dynconv_fwd", out, cache_out, x, kern, cache_in, offsets, B,
                  Ttot, C, silu, 1);
}

/* dx and dkern (Ttot, C, 4) both written. */
dtr_status dtr_op_dynconv_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dkern, dtr_view dout, dtr_view x,
                              dtr_view kern, dtr_view cache_in, dtr_view offsets, uint32_t B,
                              uint32_t Ttot, uint32_t C, int silu) {
  return conv_bwd(ctx, "dynconv_bwd", "dynconv_bwd", dx, dkern, dout, x, kern, cache_in, offsets, B,
                  Ttot, C, silu, 1);
}

dtr_status dtr_op_dynconv_decode(dtr_ctx *ctx, dtr_view out, dtr_view cache, dtr_view x,
                                 dtr_view kern, uint32_t B, uint32_t C, int silu) {
  return conv_decode(ctx, "dynconv_decode", "dynconv_decode", out, cache, x, kern, B, C, silu, 1);
}

/* ---- gated RMSNorm -------------------------------------------------------- */

dtr_status dtr_op_gated_rmsnorm_fwd(dtr_ctx *ctx, dtr_view out, dtr_view rstd, dtr_view o,
                                    dtr_view gate, dtr_view w, uint32_t N, uint32_t C, float eps) {
#define OP "gated_rmsnorm_fwd"
  uint64_t nc = (uint64_t)N * C;
  if (C == 0) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": C is 0");
  if (nc > UINT32_MAX)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": N * C = %llu is over 2^32",
                             (unsigned long long)nc);
  if (!(eps >= 0.0f)) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": eps %g < 0", eps);
  NEED("out", out, nc);   // (N, C)
  NEED("rstd", rstd, N);  // (N)
  NEED("o", o, nc);       // (N, C)
  NEED("gate", gate, nc); // (N, C)
  NEED("w", w, C);        // (C)
  if (N == 0) return DTR_OK;
  dtr_view vs[] = {out, o, gate, w};
  const char *k = vec4_ok(C, vs, 4) ? "gated_rmsnorm_fwd_vec4" : "gated_rmsnorm_fwd";
  dtr_pc_gated_rmsnorm pc = {N, C, eps, 0, 0};
  uint32_t spec = NORM_WG, g[3];
  dtr_grid_1d(N, NORM_WG, g);
  dtr_arg a[] = {DTR_OUT(out), DTR_OUT(rstd), DTR_IN(o), DTR_IN(gate), DTR_IN(w)};
  return run(ctx, k, &spec, 1, a, 5, &pc, sizeof pc, g);
#undef OP
}

/* dinp, dgate written, dw accumulated; any may be DTR_NONE. The derivation is in
 * gated_rmsnorm_bwd.comp. */
dtr_status dtr_op_gated_rmsnorm_bwd(dtr_ctx *ctx, dtr_view dinp, dtr_view dgate, dtr_view dw,
                                    dtr_view dout, dtr_view o, dtr_view gate, dtr_view w,
                                    dtr_view rstd, uint32_t N, uint32_t C) {
#define OP "gated_rmsnorm_bwd"
  uint64_t nc = (uint64_t)N * C;
  if (C == 0) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": C is 0");
  if (nc > UINT32_MAX)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, OP ": N * C = %llu is over 2^32",
                             (unsigned long long)nc);
  int has_dinp = dtr_view_present(dinp), has_dgate = dtr_view_present(dgate);
  if (has_dinp) NEED("dinp", dinp, nc);        // (N, C)
  if (has_dgate) NEED("dgate", dgate, nc);     // (N, C)
  if (dtr_view_present(dw)) NEED("dw", dw, C); // (C)
  NEED("dout", dout, nc);                      // (N, C)
  NEED("o", o, nc);                            // (N, C)
  NEED("gate", gate, nc);                      // (N, C)
  NEED("w", w, C);                             // (C)
  NEED("rstd", rstd, N);                       // (N)
  if (N == 0) return DTR_OK;
  dtr_status st;
  if (has_dinp || has_dgate) {
    dtr_pc_gated_rmsnorm pc = {N, C, 0.0f, (uint32_t)has_dinp, (uint32_t)has_dgate};
    dtr_view vdi = has_dinp ? dinp : dgate, vdg = has_dgate ? dgate : dinp;
    dtr_view vs[] = {vdi, vdg, dout, o, gate, w};
    const char *k = vec4_ok(C, vs, 6) ? "gated_rmsnorm_bwd_vec4" : "gated_rmsnorm_bwd";
    uint32_t spec = NORM_WG, g[3];
    dtr_grid_1d(N, NORM_WG, g);
    dtr_arg a[] = {DTR_OUT(vdi), DTR_OUT(vdg), DTR_IN(dout), DTR_IN(o),
                   DTR_IN(gate), DTR_IN(w),    DTR_IN(rstd)};
    if ((st = run(ctx, k, &spec, 1, a, 7, &pc, sizeof pc, g))) return st;
  }
  if (dtr_view_present(dw)) {
    dtr_pc_gated_rmsnorm pc = {N, C, 0.0f, 0, 0};
    dtr_view vs[] = {dw, dout, o, gate};
    int vec4 = vec4_ok(C, vs, 4);
    /* The shader's column groups per workgroup: 32 floats, or 16 vec4. */
    uint32_t g[3] = {vec4 ? ceil_div(C / 4, 16) : ceil_div(C, 32), 1, 1};
    dtr_arg a[] = {DTR_OUT(dw), DTR_IN(dout), DTR_IN(o), DTR_IN(gate), DTR_IN(rstd)};
    if ((st = run(ctx, vec4 ? "gated_rmsnorm_bwd_dw_vec4" : "gated_rmsnorm_bwd_dw", NULL, 0, a, 5,
                  &pc, sizeof pc, g)))
      return st;
  }
  return DTR_OK;
#undef OP
}
