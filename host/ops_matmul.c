/* ops_matmul.c — dtr_op_matmul and dtr_op_matmul_bwd on the matmul kernels.
 *
 * Owns: argument validation, the mapping of every transpose case (and of the
 * backward's products) onto one strided kernel, splitting a problem whose
 * operand is larger than one binding can see (maxStorageBufferRange), the tile
 * choice per device, and the deterministic bias-gradient kernel.
 *
 * Everything is expressed as a "gemm": C(m, n) = alpha sum_k opA(m, k) opB(k, n)
 * + beta C(m, n) (+ bias) with explicit leading dimensions and output strides,
 * so a transposed operand or a transposed output is just other strides.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtr_ops.h"
#include "dtr_push.h"

typedef struct operand {
  dtr_buf *buf;
  size_t off; /* bytes */
} operand;

typedef struct gemm {
  uint32_t M, N, K, batch;
  int ta, tb;        /* A stored (K, M); B stored (N, K) */
  int b_f16;         /* B holds fp16 */
  int bias_mode;     /* 0 none, 1 per column, 2 per row */
  size_t lda, ldb;   /* leading dimensions of the stored A, B (elements) */
  size_t scm, scn;   /* C(m, n) at m*scm + n*scn (elements) */
  size_t sa, sb, sc; /* batch strides (elements) */
  float alpha, beta;
  operand a, b, c, bias;
} gemm;

/* Tile shape of the matmul kernel: workgroup (wgx, wgy) invocations, each owning
 * rm x cn elements of C. */
typedef struct tiles {
  uint32_t wgx, wgy, rm, cn;
} tiles;

static size_t ext_a(const gemm *g) {
  size_t e = g->ta ? (size_t)(g->K - 1) * g->lda + g->M : (size_t)(g->M - 1) * g->lda + g->K;
  return e + (size_t)(g->batch - 1) * g->sa;
}
static size_t ext_b(const gemm *g) {
  size_t e = g->tb ? (size_t)(g->N - 1) * g->ldb + g->K : (size_t)(g->K - 1) * g->ldb + g->N;
  return e + (size_t)(g->batch - 1) * g->sb;
}
static size_t ext_c(const gemm *g) {
  return (size_t)(g->M - 1) * g->scm + (size_t)(g->N - 1) * g->scn + 1 +
         (size_t)(g->batch - 1) * g->sc;
}

/* A view covering extent elements of size esize from o, starting at the device's
 * alignment at or below o; *res gets o's position in it, in elements. */
static dtr_view bind(dtr_ctx *ctx, operand o, size_t extent, size_t esize, uint32_t *res) {
  size_t align = dtr_ctx_device(ctx)->min_storage_offset_align;
  if (align < 4) align = 4;
  size_t start = o.off - o.off % align;
  size_t size = (o.off - start) + extent * esize;
  size = (size + 3) & ~(size_t)3; /* fp16 operands: whole words */
  size_t avail = dtr_buf_size(o.buf) - start;
  if (size > avail) size = avail;
  *res = (uint32_t)((o.off - start) / esize);
  return (dtr_view){o.buf, start, size};
}

static size_t bound_bytes(dtr_ctx *ctx, operand o, size_t extent, size_t esize) {
  uint32_t res;
  return bind(ctx, o, extent, esize, &res).size;
}

static tiles choose_tiles(dtr_ctx *ctx, const gemm *g) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  tiles t;
  if (di->type == DTR_DEVICE_CPU) {
    /* lavapipe: every non-constant load is a loop over the SIMD lanes, so large
     * register blocks (many FMAs per load) win even though the accumulators
     * spill; 16x8 measured best (1024^3: 16x8 1.4x faster than 8x8, 4x8 2x
     * slower). Workgroups stay small so both threads get work. */
    t = (tiles){8, 8, 16, 8};
  } else {
    t = (tiles){16, 16, 4, 4};
  }
  /* DTR_MATMUL_TILES="wgx,wgy,rm,cn" overrides the choice (tuning). */
  const char *env = getenv("DTR_MATMUL_TILES");
  unsigned x, y, r, c;
  if (env && sscanf(env, "%u,%u,%u,%u", &x, &y, &r, &c) == 4 && x && y && r && c && r <= 16 &&
      c <= 16 && x * y <= di->max_workgroup_invocations)
    t = (tiles){x, y, r, c};
  if (g->M <= 2) {
    /* Matrix-vector shape: one row, lanes along the columns. */
    t.rm = 1;
    t.wgx *= t.wgy;
    t.wgy = 1;
    t.cn = 4;
  }
  return t;
}

/* True when the vec4 path's alignment conditions hold for this gemm and tiles. */
static int can_vec(const gemm *g, const tiles *t, uint32_t ra, uint32_t rb) {
  if (g->K % 4 || ra % 4 || rb % 4 || g->lda % 4 || g->ldb % 4) return 0;
  if (g->batch > 1 && (g->sa % 4 || g->sb % 4)) return 0;
  if (g->ta && (g->M % 4 || t->rm % 4)) return 0;
  if (!g->tb && (g->N % 4 || t->cn % 4)) return 0;
  return 1;
}

static uint32_t ceil_div(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

/* ---- texel path (CPU devices) ----------------------------------------------
 * matmul_tex reads A and B as vec4 texel buffers (lavapipe gathers texels as
 * vectors but loads storage buffers lane by lane, see matmul_tex.comp). It
 * needs every texel it reads to hold 4 consecutive elements of one row (or
 * column), so K, the contiguous extents, leading dimensions, batch strides and
 * offsets must be multiples of 4; fp32 B only. Elsewhere matmul.comp runs. */

/* Whether to take the texel path where it applies: on CPU devices, unless
 * DTR_MATMUL_TEXEL=0/1 says otherwise (tests force each path). */
static int texel_wanted(dtr_ctx *ctx) {
  const char *e = getenv("DTR_MATMUL_TEXEL");
  if (e && *e) return *e == '1';
  return dtr_ctx_device(ctx)->type == DTR_DEVICE_CPU;
}

static int can_tex(const gemm *g) {
  if (g->b_f16 || g->K % 4 || g->lda % 4 || g->ldb % 4) return 0;
  if (g->batch > 1 && (g->sa % 4 || g->sb % 4)) return 0;
  if (g->ta && g->M % 4) return 0;
  if (!g->tb && g->N % 4) return 0;
  return 1;
}

/* A texel view of extent fp32 elements from o: its start at the device's texel
 * offset alignment (and at least 16 bytes) at or below o, o's position in it in
 * elements in *res (must be a multiple of 4), its size whole texels inside the
 * buffer and the binding limit. 0 when that is impossible. */
static int bind_tex(dtr_ctx *ctx, operand o, size_t extent, dtr_view *v, uint32_t *res) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  size_t align = di->min_texel_offset_align < 16 ? 16 : di->min_texel_offset_align;
  size_t start = o.off - o.off % align;
  size_t size = (o.off - start) + extent * 4;
  size = (size + 15) & ~(size_t)15;
  if ((o.off - start) % 16 || size > dtr_buf_size(o.buf) - start ||
      size / 16 > di->max_texel_buffer_elements)
    return 0;
  *res = (uint32_t)((o.off - start) / 4);
  *v = (dtr_view){o.buf, start, size};
  return 1;
}

/* Tiles of matmul_tex: workgroup (wgx, wgy), each invocation rm x cn of C.
 * 8x8 blocks in 16x4 workgroups (32 x 128 of C each) measured best for 1024^3
 * on lavapipe (NT 27 GFLOP/s in a quiet moment; 16x4 blocks ~0.75x, 8x8
 * workgroups ~0.5x, a wgx under the SIMD width of 8 halves the speed). The
 * machine was busy: re-tune with DTR_MATMUL_TEX_TILES on a quiet one. */
static tiles choose_tex_tiles(dtr_ctx *ctx, const gemm *g) {
  tiles t = {16, 4, 8, 8};
  const char *env = getenv("DTR_MATMUL_TEX_TILES"); /* "wgx,wgy,rm,cn" (tuning, tests) */
  unsigned x, y, r, c;
  if (env && sscanf(env, "%u,%u,%u,%u", &x, &y, &r, &c) == 4 && x && y && r && c && r <= 16 &&
      c <= 16 && r % 4 == 0 && c % 4 == 0 &&
      x * y <= dtr_ctx_device(ctx)->max_workgroup_invocations)
    t = (tiles){x, y, r, c};
  if (g->M == 1) t = (tiles){t.wgx * t.wgy, 1, 1, 4}; /* one row: lanes along n */
  return t;
}

/* Records g on matmul_tex (or its matrix-vector variant); 1 if it did (or
 * failed, *st says), 0 if this gemm cannot take the texel path. */
static int dispatch_tex(dtr_ctx *ctx, const gemm *g, dtr_status *st) {
  if (!texel_wanted(ctx) || !can_tex(g)) return 0;
  dtr_pc_matmul pc;
  memset(&pc, 0, sizeof pc);
  dtr_view va, vb;
  if (!bind_tex(ctx, g->a, ext_a(g), &va, &pc.a_off) ||
      !bind_tex(ctx, g->b, ext_b(g), &vb, &pc.b_off) || pc.a_off % 4 || pc.b_off % 4)
    return 0;
  dtr_arg args[4];
  args[0] = DTR_OUT(bind(ctx, g->c, ext_c(g), 4, &pc.c_off));
  args[1] = DTR_TEX(va);
  args[2] = DTR_TEX(vb);
  if (g->bias_mode)
    args[3] = DTR_IN(bind(ctx, g->bias, g->bias_mode == 1 ? g->N : g->M, 4, &pc.bias_off));
  else
    args[3] = args[0]; /* unused binding: any valid storage view */
  pc.M = g->M, pc.N = g->N, pc.K = g->K;
  pc.lda = (uint32_t)g->lda, pc.ldb = (uint32_t)g->ldb;
  pc.scm = (uint32_t)g->scm, pc.scn = (uint32_t)g->scn;
  pc.stride_a = (uint32_t)g->sa, pc.stride_b = (uint32_t)g->sb, pc.stride_c = (uint32_t)g->sc;
  pc.alpha = g->alpha, pc.beta = g->beta;
  pc.bias_mode = (uint32_t)g->bias_mode;

  /* Matrix-vector (one row, B stored (N, K)): a subgroup splits K of RN rows of
   * B; needs the subgroup to be exactly one workgroup row (fixed size). */
  const dtr_device_info *di = dtr_ctx_device(ctx);
  uint32_t sg = di->subgroup_size;
  const char *nomv = getenv("DTR_MATMUL_NOMV");
  int mv = g->M == 1 && g->tb && sg >= 2 && di->subgroup_min == sg && di->subgroup_max == sg &&
           sg * 8 <= di->max_workgroup_invocations && !(nomv && *nomv == '1');
  dtr_dispatch_desc dd = {.args = args, .nargs = 4, .push = &pc, .push_size = sizeof pc};
  uint32_t spec[6];
  dd.spec = spec, dd.nspec = 6;
  if (mv) {
    const uint32_t wgy = 8, rn = 4;
    uint32_t s[6] = {sg, wgy, 1, rn, 0, 1};
    memcpy(spec, s, sizeof s);
    dd.kernel = "matmul_tex_mv";
    dd.groups[0] = 1, dd.groups[1] = ceil_div(g->N, wgy * rn), dd.groups[2] = g->batch;
  } else {
    tiles t = choose_tex_tiles(ctx, g);
    uint32_t s[6] = {t.wgx, t.wgy, t.rm, t.cn, (uint32_t)g->ta, (uint32_t)g->tb};
    memcpy(spec, s, sizeof s);
    dd.kernel = "matmul_tex";
    dd.groups[0] = ceil_div(g->N, t.wgx * t.cn), dd.groups[1] = ceil_div(g->M, t.wgy * t.rm);
    dd.groups[2] = g->batch;
  }
  *st = dtr_dispatch(ctx, &dd);
  return 1;
}

/* Records one dispatch of a gemm whose operands all fit a binding. */
static dtr_status dispatch_gemm(dtr_ctx *ctx, const gemm *g0) {
  gemm g = *g0;
  /* A one-column product runs as its transpose (C^T = opB^T opA^T), a one-row
   * product, which puts the long dimension across the lanes. */
  if (g.N == 1 && g.M > 1 && !g.b_f16) {
    gemm t = g;
    t.M = g.N, t.N = g.M;
    t.ta = !g.tb, t.tb = !g.ta;
    t.lda = g.ldb, t.ldb = g.lda;
    t.sa = g.sb, t.sb = g.sa;
    t.a = g.b, t.b = g.a;
    t.scm = g.scn, t.scn = g.scm;
    t.bias_mode = g.bias_mode == 1 ? 2 : g.bias_mode == 2 ? 1 : 0;
    g = t;
  }
  /* A single row (column) is contiguous whichever way it is stored when its
   * leading dimension is 1; say so, so the vec4 path applies. */
  if (g.M == 1 && g.ta && g.lda == 1) g.ta = 0, g.lda = g.K;
  if (g.N == 1 && !g.tb && g.ldb == 1) g.tb = 1, g.ldb = g.K;
  dtr_status tst;
  if (dispatch_tex(ctx, &g, &tst)) return tst;
  size_t besize = g.b_f16 ? 2 : 4;
  dtr_pc_matmul pc;
  memset(&pc, 0, sizeof pc);
  dtr_arg args[4];
  args[0] = DTR_OUT(bind(ctx, g.c, ext_c(&g), 4, &pc.c_off));
  args[1] = DTR_IN(bind(ctx, g.a, ext_a(&g), 4, &pc.a_off));
  args[2] = DTR_IN(bind(ctx, g.b, ext_b(&g), besize, &pc.b_off));
  if (g.bias_mode)
    args[3] = DTR_IN(bind(ctx, g.bias, g.bias_mode == 1 ? g.N : g.M, 4, &pc.bias_off));
  else
    args[3] = args[1]; /* unused binding: any valid view */
  pc.M = g.M, pc.N = g.N, pc.K = g.K;
  pc.lda = (uint32_t)g.lda, pc.ldb = (uint32_t)g.ldb;
  pc.scm = (uint32_t)g.scm, pc.scn = (uint32_t)g.scn;
  pc.stride_a = (uint32_t)g.sa, pc.stride_b = (uint32_t)g.sb, pc.stride_c = (uint32_t)g.sc;
  pc.alpha = g.alpha, pc.beta = g.beta;
  pc.bias_mode = (uint32_t)g.bias_mode;

  tiles t = choose_tiles(ctx, &g);
  uint32_t vec = (uint32_t)can_vec(&g, &t, pc.a_off, pc.b_off);
  const char *env = getenv("DTR_MATMUL_NOVEC"); /* tests force the scalar path */
  if (env && *env == '1') vec = 0;
  /* Sharing the A slice over a subgroup needs its lanes in one row of the
   * workgroup; only on CPU devices, whose subgroup ops are register moves (and
   * whose subgroup size is fixed). */
  const dtr_device_info *di = dtr_ctx_device(ctx);
  uint32_t sg = di->subgroup_size;
  int share = vec && di->type == DTR_DEVICE_CPU && sg >= 4 && di->subgroup_min == sg &&
              di->subgroup_max == sg && t.wgx % sg == 0;
  const char *nosg = getenv("DTR_MATMUL_NOSG");
  if (nosg && *nosg == '1') share = 0;
  uint32_t spec[8] = {t.wgx,          t.wgy,          t.rm, t.cn,
                      (uint32_t)g.ta, (uint32_t)g.tb, vec,  share ? sg : 0};
  const char *kernel =
      g.b_f16 ? (share ? "matmul_b_f16_sg" : "matmul_b_f16") : (share ? "matmul_sg" : "matmul");
  dtr_dispatch_desc dd = {
      .kernel = kernel,
      .spec = spec,
      .nspec = 8,
      .args = args,
      .nargs = 4,
      .push = &pc,
      .push_size = sizeof pc,
      .groups = {ceil_div(g.N, t.wgx * t.cn), ceil_div(g.M, t.wgy * t.rm), g.batch}};
  return dtr_dispatch(ctx, &dd);
}

/* Rounds a split point down to a multiple of 64 where possible, so offsets of
 * the halves keep the vec4 alignment. */
static uint32_t split_point(uint32_t n) {
  uint32_t h = n / 2;
  return h >= 64 ? h & ~63u : h;
}

/* Records a gemm, splitting it while an operand is larger than one binding. */
static dtr_status run_gemm(dtr_ctx *ctx, const gemm *g) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  uint64_t lim = di->max_storage_buffer_range;
  size_t besize = g->b_f16 ? 2 : 4;
  /* llvmpipe ends an invocation's loops silently after 65535 iterations in all;
   * the kernels loop once per k (scalar path) or per 4 k, so a long K runs as
   * chunks of at most KCHUNK, each after the first accumulating (beta = 1,
   * bias added once). KCHUNK % 64 == 0 keeps the vec4 / texel alignment. */
  enum { KCHUNK = 32768 };
  if (g->K > KCHUNK) {
    for (uint32_t k = 0; k < g->K; k += KCHUNK) {
      gemm s = *g;
      s.K = g->K - k < KCHUNK ? g->K - k : KCHUNK;
      s.a.off += (g->ta ? k * g->lda : k) * 4;
      s.b.off += (g->tb ? k : k * g->ldb) * besize;
      if (k) s.beta = 1.0f, s.bias_mode = 0;
      dtr_status st = run_gemm(ctx, &s);
      if (st) return st;
    }
    return DTR_OK;
  }
  int big_a = bound_bytes(ctx, g->a, ext_a(g), 4) > lim;
  int big_b = bound_bytes(ctx, g->b, ext_b(g), besize) > lim;
  int big_c = bound_bytes(ctx, g->c, ext_c(g), 4) > lim;
  if (!big_a && !big_b && !big_c) return dispatch_gemm(ctx, g);

  if (g->batch > 1) { /* one batch at a time */
    for (uint32_t z = 0; z < g->batch; z++) {
      gemm s = *g;
      s.batch = 1;
      s.a.off += z * g->sa * 4;
      s.b.off += z * g->sb * besize;
      s.c.off += z * g->sc * 4;
      dtr_status st = run_gemm(ctx, &s);
      if (st) return st;
    }
    return DTR_OK;
  }
  /* Split rows when A or C is too big, else columns; each half is a gemm on
   * sub-views with the same strides. */
  int rows = (big_a || (big_c && g->M >= g->N)) && g->M > 1;
  int cols = !rows && (big_b || big_c) && g->N > 1;
  if (!rows && !cols)
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                             "matmul M=%u N=%u K=%u: one operand row or column spans more than "
                             "device '%s' can bind (maxStorageBufferRange %llu bytes)",
                             g->M, g->N, g->K, di->name, (unsigned long long)lim);
  gemm lo = *g, hi = *g;
  if (rows) {
    uint32_t h = split_point(g->M);
    lo.M = h, hi.M = g->M - h;
    hi.a.off += (g->ta ? h : h * g->lda) * 4;
    hi.c.off += h * g->scm * 4;
    if (g->bias_mode == 2) hi.bias.off += h * 4;
  } else {
    uint32_t h = split_point(g->N);
    lo.N = h, hi.N = g->N - h;
    hi.b.off += (g->tb ? h * g->ldb : h) * besize;
    hi.c.off += h * g->scn * 4;
    if (g->bias_mode == 1) hi.bias.off += h * 4;
  }
  dtr_status st = run_gemm(ctx, &lo);
  return st ? st : run_gemm(ctx, &hi);
}

static size_t view_bytes(dtr_view v) {
  size_t n = dtr_buf_size(v.buf);
  if (v.offset > n) return 0;
  return v.size ? v.size : n - v.offset;
}

/* Checks that view v holds extent elements of esize; name says which argument. */
static dtr_status check_view(dtr_ctx *ctx, dtr_view v, size_t extent, size_t esize, const char *op,
                             const char *name) {
  if (!v.buf) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: %s is missing", op, name);
  if (v.offset % esize)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: %s offset %zu is not a multiple of %zu", op,
                             name, v.offset, esize);
  if (v.offset > dtr_buf_size(v.buf) || (v.size && v.size > dtr_buf_size(v.buf) - v.offset))
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: %s view lies outside its buffer", op, name);
  if (view_bytes(v) < extent * esize)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: %s needs %zu bytes for its shape but its view has %zu", op, name,
                             extent * esize, view_bytes(v));
  return DTR_OK;
}

/* The gemm of the forward on the user's desc (operands unset). */
static dtr_status check_desc(dtr_ctx *ctx, const dtr_matmul_desc *d, const char *op) {
  if (!d) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: desc is NULL", op);
  if (!d->M || !d->N || !d->K || !d->batch)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: M=%u N=%u K=%u batch=%u must be > 0", op,
                             d->M, d->N, d->K, d->batch);
  if (d->b_f16 && !dtr_ctx_device(ctx)->fp16_storage)
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                             "%s: b_f16 needs 16-bit storage buffers, which device '%s' lacks; "
                             "convert B to fp32",
                             op, dtr_ctx_device(ctx)->name);
  /* Element indices are 32-bit in the kernels. */
  const uint64_t lim = UINT32_MAX;
  uint64_t mk = (uint64_t)d->M * d->K, kn = (uint64_t)d->K * d->N, mn = (uint64_t)d->M * d->N;
  if (mk + (uint64_t)(d->batch - 1) * d->stride_a > lim ||
      kn + (uint64_t)(d->batch - 1) * d->stride_b > lim ||
      mn + (uint64_t)(d->batch - 1) * d->stride_c > lim)
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED, "%s: tensors over 2^32 elements", op);
  return DTR_OK;
}

static size_t ext_of(const dtr_matmul_desc *d, size_t per, size_t stride) {
  return per + (size_t)(d->batch - 1) * stride;
}

dtr_status dtr_op_matmul(dtr_ctx *ctx, dtr_view C, dtr_view A, dtr_view B, dtr_view bias,
                         const dtr_matmul_desc *d) {
  const char *op = "matmul";
  dtr_status st = check_desc(ctx, d, op);
  if (st) return st;
  size_t besize = d->b_f16 ? 2 : 4;
  if ((st = check_view(ctx, C, ext_of(d, (size_t)d->M * d->N, d->stride_c), 4, op, "C")) ||
      (st = check_view(ctx, A, ext_of(d, (size_t)d->M * d->K, d->stride_a), 4, op, "A")) ||
      (st = check_view(ctx, B, ext_of(d, (size_t)d->K * d->N, d->stride_b), besize, op, "B")))
    return st;
  if (dtr_view_present(bias) && (st = check_view(ctx, bias, d->N, 4, op, "bias"))) return st;
  if (d->batch > 1 && d->stride_c < (size_t)d->M * d->N)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: stride_c %zu < M*N = %zu: the batches of C would overlap", op,
                             d->stride_c, (size_t)d->M * d->N);
  gemm g = {.M = d->M,
            .N = d->N,
            .K = d->K,
            .batch = d->batch,
            .ta = !!d->trans_a,
            .tb = !!d->trans_b,
            .b_f16 = !!d->b_f16,
            .bias_mode = dtr_view_present(bias) ? 1 : 0,
            .lda = d->trans_a ? d->M : d->K,
            .ldb = d->trans_b ? d->K : d->N,
            .scm = d->N,
            .scn = 1,
            .sa = d->stride_a,
            .sb = d->stride_b,
            .sc = d->stride_c,
            .alpha = d->alpha,
            .beta = d->beta,
            .a = {A.buf, A.offset},
            .b = {B.buf, B.offset},
            .c = {C.buf, C.offset},
            .bias = {bias.buf, bias.offset}};
  return run_gemm(ctx, &g);
}

/* Runs g over its batches; when the output's batches overlap (a broadcast operand
 * whose gradient sums over batches) the batches run one after another, the first
 * with the given beta and the rest accumulating (beta = 1). */
static dtr_status run_batched(dtr_ctx *ctx, const gemm *g, size_t out_per_batch) {
  if (g->batch == 1 || g->sc >= out_per_batch) return run_gemm(ctx, g);
  for (uint32_t z = 0; z < g->batch; z++) {
    gemm s = *g;
    s.batch = 1;
    s.a.off += z * g->sa * 4;
    s.b.off += z * g->sb * (g->b_f16 ? 2 : 4);
    s.c.off += z * g->sc * 4;
    if (z) s.beta = 1.0f;
    dtr_status st = run_gemm(ctx, &s);
    if (st) return st;
  }
  return DTR_OK;
}

dtr_status dtr_op_matmul_bwd(dtr_ctx *ctx, dtr_view dA, dtr_view dB, dtr_view dbias, dtr_view dC,
                             dtr_view A, dtr_view B, const dtr_matmul_desc *d) {
  const char *op = "matmul_bwd";
  dtr_status st = check_desc(ctx, d, op);
  if (st) return st;
  size_t besize = d->b_f16 ? 2 : 4;
  size_t na = ext_of(d, (size_t)d->M * d->K, d->stride_a);
  size_t nb = ext_of(d, (size_t)d->K * d->N, d->stride_b);
  if ((st = check_view(ctx, dC, ext_of(d, (size_t)d->M * d->N, d->stride_c), 4, op, "dC")))
    return st;
  if (dtr_view_present(dA) && ((st = check_view(ctx, dA, na, 4, op, "dA")) ||
                               (st = check_view(ctx, B, nb, besize, op, "B"))))
    return st;
  if (dtr_view_present(dB)) {
    if (d->b_f16)
      return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                               "%s: no gradient for an fp16 B (b_f16); pass dB = DTR_NONE", op);
    if ((st = check_view(ctx, dB, nb, 4, op, "dB")) || (st = check_view(ctx, A, na, 4, op, "A")))
      return st;
  }
  if (dtr_view_present(dbias) && (st = check_view(ctx, dbias, d->N, 4, op, "dbias"))) return st;
  size_t lda = d->trans_a ? d->M : d->K, ldb = d->trans_b ? d->K : d->N;

  if (dtr_view_present(dA)) {
    /* dA(m, k) = alpha sum_n dC(m, n) opB(k, n): a gemm (M, K, inner N) with
     * dC as the left operand and opB^T on the right; opB^T(n, k) is B read with
     * the opposite transpose flag. dA keeps A's layout through its strides. */
    gemm g = {.M = d->M,
              .N = d->K,
              .K = d->N,
              .batch = d->batch,
              .ta = 0,
              .tb = !d->trans_b,
              .b_f16 = !!d->b_f16,
              .lda = d->N,
              .ldb = ldb,
              .scm = d->trans_a ? 1 : d->K,
              .scn = d->trans_a ? d->M : 1,
              .sa = d->stride_c,
              .sb = d->stride_b,
              .sc = d->stride_a,
              .alpha = d->alpha,
              .beta = 0.0f,
              .a = {dC.buf, dC.offset},
              .b = {B.buf, B.offset},
              .c = {dA.buf, dA.offset}};
    if ((st = run_batched(ctx, &g, (size_t)d->M * d->K))) return st;
  }
  if (dtr_view_present(dB)) {
    gemm g;
    if (!d->trans_b) {
      /* dB(k, n) += alpha sum_m opA(m, k) dC(m, n): (K, N, inner M), left opA^T
       * (A with the opposite flag), right dC. */
      g = (gemm){.M = d->K,
                 .N = d->N,
                 .K = d->M,
                 .batch = d->batch,
                 .ta = !d->trans_a,
                 .tb = 0,
                 .lda = lda,
                 .ldb = d->N,
                 .scm = d->N,
                 .scn = 1,
                 .sa = d->stride_a,
                 .sb = d->stride_c,
                 .sc = d->stride_b,
                 .a = {A.buf, A.offset},
                 .b = {dC.buf, dC.offset}};
    } else {
      /* B stored (N, K): dB(n, k) += alpha sum_m dC(m, n) opA(m, k): (N, K, inner
       * M), left dC^T (dC read transposed), right opA; written row-major. */
      g = (gemm){.M = d->N,
                 .N = d->K,
                 .K = d->M,
                 .batch = d->batch,
                 .ta = 1,
                 .tb = !!d->trans_a,
                 .lda = d->N,
                 .ldb = lda,
                 .scm = d->K,
                 .scn = 1,
                 .sa = d->stride_c,
                 .sb = d->stride_a,
                 .sc = d->stride_b,
                 .a = {dC.buf, dC.offset},
                 .b = {A.buf, A.offset}};
    }
    g.c = (operand){dB.buf, dB.offset};
    g.alpha = d->alpha, g.beta = 1.0f;
    if ((st = run_batched(ctx, &g, (size_t)d->K * d->N))) return st;
  }
  if (dtr_view_present(dbias)) {
    dtr_pc_matmul_colsum pc = {
        .M = d->M, .N = d->N, .batch = d->batch, .stride = (uint32_t)d->stride_c};
    size_t ext = ext_of(d, (size_t)d->M * d->N, d->stride_c);
    uint64_t lim = dtr_ctx_device(ctx)->max_storage_buffer_range;
    if (bound_bytes(ctx, (operand){dC.buf, dC.offset}, ext, 4) > lim)
      return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                               "%s: dC (%zu bytes) is larger than device '%s' can bind "
                               "(maxStorageBufferRange %llu) for the bias gradient",
                               op, ext * 4, dtr_ctx_device(ctx)->name, (unsigned long long)lim);
    dtr_arg args[2] = {DTR_OUT(bind(ctx, (operand){dbias.buf, dbias.offset}, d->N, 4, &pc.out_off)),
                       DTR_IN(bind(ctx, (operand){dC.buf, dC.offset}, ext, 4, &pc.x_off))};
    uint32_t spec[1] = {64};
    dtr_dispatch_desc dd = {.kernel = "matmul_colsum",
                            .spec = spec,
                            .nspec = 1,
                            .args = args,
                            .nargs = 2,
                            .push = &pc,
                            .push_size = sizeof pc,
                            .groups = {ceil_div(d->N, 64), 1, 1}};
    if ((st = dtr_dispatch(ctx, &dd))) return st;
  }
  return DTR_OK;
}
