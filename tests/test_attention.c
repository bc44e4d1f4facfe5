/* test_attention.c — causal GQA attention forward and backward on the device
 * against the double reference (tests/ref_attention.c), the reference's
 * analytic gradients against finite differences, argument checks, and (with
 * DTR_ATTN_BENCH=1) a timing loop printing GFLOP/s.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "ref_attention.h"

/* The kernel path under test ("ssbo" or "texel"), named in every check. */
static const char *g_path = "";

static size_t qn_of(const dtr_attn_desc *d) { return (size_t)d->B * d->Tq * d->Hq * d->D; }
static size_t kn_of(const dtr_attn_desc *d) { return (size_t)d->B * d->kv_cap * d->Hkv * d->D; }
static size_t ln_of(const dtr_attn_desc *d) { return (size_t)d->B * d->Hq * d->Tq; }

static dtr_attn_desc mk(uint32_t B, uint32_t Tq, uint32_t Tk, uint32_t kv_cap, uint32_t Hq,
                        uint32_t Hkv, uint32_t D) {
  dtr_attn_desc d = {B, Tq, Tk, kv_cap, Hq, Hkv, D, (float)(1.0 / sqrt((double)D))};
  return d;
}

/* Copies the rows < Tk of each sequence of a (B, kv_cap, Hkv, D) tensor, float
 * or double, into a compact (B, Tk, Hkv, D) array of the same type. */
static void compact_f(float *dst, const float *src, const dtr_attn_desc *d) {
  size_t row = (size_t)d->Hkv * d->D;
  for (uint32_t b = 0; b < d->B; b++)
    memcpy(dst + (size_t)b * d->Tk * row, src + (size_t)b * d->kv_cap * row,
           (size_t)d->Tk * row * sizeof *dst);
}
static void compact_d(double *dst, const double *src, const dtr_attn_desc *d) {
  size_t row = (size_t)d->Hkv * d->D;
  for (uint32_t b = 0; b < d->B; b++)
    memcpy(dst + (size_t)b * d->Tk * row, src + (size_t)b * d->kv_cap * row,
           (size_t)d->Tk * row * sizeof *dst);
}

/* True when every cache row >= Tk still holds the poison (NaN): the op must not
 * touch the cache beyond the keys it was given. */
static int tail_untouched(const float *x, const dtr_attn_desc *d) {
  size_t row = (size_t)d->Hkv * d->D;
  for (uint32_t b = 0; b < d->B; b++)
    for (size_t i = (size_t)d->Tk * row; i < (size_t)d->kv_cap * row; i++)
      if (!isnan(x[(size_t)b * d->kv_cap * row + i])) return 0;
  return 1;
}

static double maxabs(const double *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

/* Forward and backward of one shape against the reference. */
static void check_case(dtr_ctx *ctx, const dtr_attn_desc *d) {
  char name[160], what[200];
  snprintf(name, sizeof name, "[%s] B=%u Tq=%u Tk=%u cap=%u Hq=%u Hkv=%u D=%u", g_path, d->B,
           d->Tq, d->Tk, d->kv_cap, d->Hq, d->Hkv, d->D);
  size_t qn = qn_of(d), kn = kn_of(d), ln = ln_of(d);
  size_t kc = (size_t)d->B * d->Tk * d->Hkv * d->D; /* compact k rows */
  float *q = th_alloc(qn), *k = th_alloc(kn), *v = th_alloc(kn), *dout = th_alloc(qn);
  /* Scores of a few units so the softmax is neither flat nor one-hot. */
  th_rand(q, qn, -2, 2);
  th_rand(k, kn, -2, 2);
  th_rand(v, kn, -1, 1);
  th_rand(dout, qn, -1, 1);

  dtr_buf *bq = th_buf(ctx, q, qn * 4), *bk = th_buf(ctx, k, kn * 4),
          *bv = th_buf(ctx, v, kn * 4), *bdo = th_buf(ctx, dout, qn * 4);
  dtr_buf *bo = th_poison(ctx, qn * 4), *bl = th_poison(ctx, ln * 4);
  th_ok(ctx, dtr_op_attention_fwd(ctx, dtr_whole(bo), dtr_whole(bl), dtr_whole(bq),
                                  dtr_whole(bk), dtr_whole(bv), d),
        "dtr_op_attention_fwd");
  float *o = th_alloc(qn), *l = th_alloc(ln);
  th_get(ctx, bo, o, qn * 4);
  th_get(ctx, bl, l, ln * 4);
  double *ro = th_dalloc(qn), *rl = th_dalloc(ln);
  ref_attention_fwd(ro, rl, q, k, v, d);
  snprintf(what, sizeof what, "fwd out %s", name);
  th_check(what, o, ro, qn, 1e-5, 1e-5, 1e-4);
  snprintf(what, sizeof what, "fwd lse %s", name);
  th_check(what, l, rl, ln, 1e-5, 1e-5, 1e-5);

  dtr_buf *bdq = th_poison(ctx, qn * 4), *bdk = th_poison(ctx, kn * 4),
          *bdv = th_poison(ctx, kn * 4);
  th_ok(ctx, dtr_op_attention_bwd(ctx, dtr_whole(bdq), dtr_whole(bdk), dtr_whole(bdv),
                                  dtr_whole(bdo), dtr_whole(bq), dtr_whole(bk),
                                  dtr_whole(bv), dtr_whole(bo), dtr_whole(bl), d),
        "dtr_op_attention_bwd");
  float *gq = th_alloc(qn), *gk = th_alloc(kn), *gv = th_alloc(kn);
  float *gkc = th_alloc(kc), *gvc = th_alloc(kc);
  th_get(ctx, bdq, gq, qn * 4);
  th_get(ctx, bdk, gk, kn * 4);
  th_get(ctx, bdv, gv, kn * 4);
  double *rq = th_dalloc(qn), *rk = th_dalloc(kn), *rv = th_dalloc(kn);
  double *rkc = th_dalloc(kc), *rvc = th_dalloc(kc);
  ref_attention_bwd(rq, rk, rv, dout, q, k, v, d);
  compact_f(gkc, gk, d);
  compact_f(gvc, gv, d);
  compact_d(rkc, rk, d);
  compact_d(rvc, rv, d);
  /* fp32 sums over up to Tk terms: 1e-4 relative in norm, elements within
   * 1e-4 of the largest gradient. */
  snprintf(what, sizeof what, "bwd dq %s", name);
  th_check(what, gq, rq, qn, 1e-4, 1e-4 * maxabs(rq, qn), 1e-3);
  snprintf(what, sizeof what, "bwd dk %s", name);
  th_check(what, gkc, rkc, kc, 1e-4, 1e-4 * maxabs(rkc, kc), 1e-3);
  snprintf(what, sizeof what, "bwd dv %s", name);
  th_check(what, gvc, rvc, kc, 1e-4, 1e-4 * maxabs(rvc, kc), 1e-3);
  if (d->kv_cap > d->Tk)
    th_expect(tail_untouched(gk, d) && tail_untouched(gv, d),
              "bwd leaves dk/dv cache rows >= Tk alone (%s)", name);

  free(q); free(k); free(v); free(dout); free(o); free(l); free(ro); free(rl);
  free(gq); free(gk); free(gv); free(gkc); free(gvc);
  free(rq); free(rk); free(rv); free(rkc); free(rvc);
  dtr_buf *bufs[] = {bq, bk, bv, bdo, bo, bl, bdq, bdk, bdv};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) dtr_buf_destroy(ctx, bufs[i]);
}

/* Two backward runs give the same bits. */
static void check_deterministic(dtr_ctx *ctx) {
  dtr_attn_desc d = mk(1, 45, 45, 45, 8, 2, 64);
  size_t qn = qn_of(&d), kn = kn_of(&d), ln = ln_of(&d);
  float *x = th_alloc(kn > qn ? kn : qn);
  th_rand(x, qn, -2, 2);
  dtr_buf *bq = th_buf(ctx, x, qn * 4), *bdo = th_buf(ctx, x, qn * 4);
  th_rand(x, kn, -2, 2);
  dtr_buf *bk = th_buf(ctx, x, kn * 4);
  th_rand(x, kn, -1, 1);
  dtr_buf *bv = th_buf(ctx, x, kn * 4);
  dtr_buf *bo = th_poison(ctx, qn * 4), *bl = th_poison(ctx, ln * 4);
  th_ok(ctx, dtr_op_attention_fwd(ctx, dtr_whole(bo), dtr_whole(bl), dtr_whole(bq),
                                  dtr_whole(bk), dtr_whole(bv), &d), "fwd");
  float *g[2][3];
  for (int run = 0; run < 2; run++) {
    dtr_buf *out[3] = {th_poison(ctx, qn * 4), th_poison(ctx, kn * 4), th_poison(ctx, kn * 4)};
    th_ok(ctx, dtr_op_attention_bwd(ctx, dtr_whole(out[0]), dtr_whole(out[1]),
                                    dtr_whole(out[2]), dtr_whole(bdo), dtr_whole(bq),
                                    dtr_whole(bk), dtr_whole(bv), dtr_whole(bo),
                                    dtr_whole(bl), &d), "bwd");
    size_t n[3] = {qn, kn, kn};
    for (int t = 0; t < 3; t++) {
      g[run][t] = th_alloc(n[t]);
      th_get(ctx, out[t], g[run][t], n[t] * 4);
      dtr_buf_destroy(ctx, out[t]);
    }
  }
  th_expect(!memcmp(g[0][0], g[1][0], qn * 4) && !memcmp(g[0][1], g[1][1], kn * 4) &&
                !memcmp(g[0][2], g[1][2], kn * 4),
            "[%s] bwd is deterministic (two runs, same bits)", g_path);
  for (int run = 0; run < 2; run++)
    for (int t = 0; t < 3; t++) free(g[run][t]);
  free(x);
  dtr_buf *bufs[] = {bq, bk, bv, bdo, bo, bl};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) dtr_buf_destroy(ctx, bufs[i]);
}

/* ---- the reference's analytic gradient against finite differences ---------- */
typedef struct fd_ud {
  const dtr_attn_desc *d;
  const double *q, *k, *v, *w; /* w: the upstream gradient, loss = sum(out * w) */
  double *out;
} fd_ud;

static double fd_loss(void *p) {
  fd_ud *u = p;
  ref_attention_fwd_d(u->out, NULL, u->q, u->k, u->v, u->d);
  double s = 0;
  for (size_t i = 0; i < qn_of(u->d); i++) s += u->out[i] * u->w[i];
  return s;
}

static void check_fd(const dtr_attn_desc *d) {
  size_t qn = qn_of(d), kn = kn_of(d);
  double *q = th_dalloc(qn), *k = th_dalloc(kn), *v = th_dalloc(kn), *w = th_dalloc(qn);
  for (size_t i = 0; i < qn; i++) { q[i] = 4 * th_randu() - 2; w[i] = 2 * th_randu() - 1; }
  for (size_t i = 0; i < kn; i++) { k[i] = 4 * th_randu() - 2; v[i] = 2 * th_randu() - 1; }
  double *dq = th_dalloc(qn), *dk = th_dalloc(kn), *dv = th_dalloc(kn);
  ref_attention_bwd_d(dq, dk, dv, w, q, k, v, d);
  fd_ud u = {d, q, k, v, w, th_dalloc(qn)};
  double *fq = th_dalloc(qn), *fk = th_dalloc(kn), *fv = th_dalloc(kn);
  th_fd(fd_loss, &u, q, qn, 1e-5, fq);
  th_fd(fd_loss, &u, k, kn, 1e-5, fk); /* rows >= Tk: both 0 */
  th_fd(fd_loss, &u, v, kn, 1e-5, fv);
  char what[160];
  snprintf(what, sizeof what, "ref dq vs fd B=%u Tq=%u Tk=%u cap=%u Hq=%u Hkv=%u D=%u",
           d->B, d->Tq, d->Tk, d->kv_cap, d->Hq, d->Hkv, d->D);
  th_check_d(what, dq, fq, qn, 1e-6);
  what[5] = 'k';
  th_check_d(what, dk, fk, kn, 1e-6);
  what[5] = 'v';
  th_check_d(what, dv, fv, kn, 1e-6);
  free(q); free(k); free(v); free(w); free(dq); free(dk); free(dv);
  free(u.out); free(fq); free(fk); free(fv);
}

/* ---- argument checks ------------------------------------------------------- */
static void expect_invalid(dtr_ctx *ctx, dtr_status st, const char *what) {
  const char *msg = dtr_ctx_error(ctx);
  th_expect(st == DTR_ERR_INVALID && msg && *msg, "%s is rejected (status %s: %s)", what,
            dtr_status_name(st), msg ? msg : "");
}

static void check_args(dtr_ctx *ctx) {
  dtr_attn_desc d = mk(1, 8, 8, 8, 4, 2, 64);
  dtr_buf *big = th_poison(ctx, 1 << 20), *tiny = th_poison(ctx, 64);
  dtr_view w = dtr_whole(big), t = dtr_whole(tiny);
  dtr_attn_desc e = d;
  e.Hkv = 3;
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, w, w, w, w, &e), "Hq % Hkv != 0");
  e = d;
  e.D = 66;
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, w, w, w, w, &e), "D not a multiple of 4");
  e = d;
  e.D = 260;
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, w, w, w, w, &e), "D > 256");
  e = d;
  e.Tq = 9;
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, w, w, w, w, &e), "Tq > Tk");
  e = d;
  e.kv_cap = 4;
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, w, w, w, w, &e), "kv_cap < Tk");
  e = d;
  e.B = 0;
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, w, w, w, w, &e), "B = 0");
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, w, w, t, w, &d), "a k view too small");
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, t, w, w, w, &d), "an lse view too small");
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, DTR_NONE, w, w, w, &d), "a missing lse");
  expect_invalid(ctx, dtr_op_attention_bwd(ctx, w, w, t, w, w, w, w, w, w, &d),
                 "a dv view too small");
  expect_invalid(ctx, dtr_op_attention_fwd(ctx, w, w, w, w, w, NULL), "a NULL desc");
  dtr_buf_destroy(ctx, big);
  dtr_buf_destroy(ctx, tiny);
}

/* ---- timing (DTR_ATTN_BENCH=1) -------------------------------------------- */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of reps timed runs after a warm-up. Flops of a causal forward:
 * 4 B H D T (T + 1) / 2 (two matmuls over the lower triangle); the backward is
 * counted as the usual 2.5x that (five matmuls), though it recomputes S and dP. */
static void bench(dtr_ctx *ctx, uint32_t T, uint32_t D, uint32_t H, int reps, int bwd) {
  dtr_attn_desc d = mk(1, T, T, T, H, H, D);
  size_t qn = qn_of(&d), ln = ln_of(&d);
  float *x = th_alloc(qn);
  th_rand(x, qn, -1, 1);
  dtr_buf *b[10];
  for (int i = 0; i < 10; i++) b[i] = th_buf(ctx, x, qn * 4);
  dtr_buf *bl = th_poison(ctx, ln * 4);
  double flops = 4.0 * H * D * (double)T * (T + 1) / 2;
  double tf[16], tb[16], tfirst = 0;
  for (int r = -1; r < reps; r++) {
    double t0 = now_s();
    th_ok(ctx, dtr_op_attention_fwd(ctx, dtr_whole(b[0]), dtr_whole(bl), dtr_whole(b[1]),
                                    dtr_whole(b[2]), dtr_whole(b[3]), &d), "fwd");
    th_submit(ctx);
    double t1 = now_s();
    if (bwd)
      th_ok(ctx, dtr_op_attention_bwd(ctx, dtr_whole(b[4]), dtr_whole(b[5]), dtr_whole(b[6]),
                                    dtr_whole(b[7]), dtr_whole(b[1]), dtr_whole(b[2]),
                                    dtr_whole(b[3]), dtr_whole(b[0]), dtr_whole(bl), &d),
          "bwd");
    th_submit(ctx);
    double t2 = now_s();
    if (r >= 0) { tf[r] = t1 - t0; tb[r] = t2 - t1; } else tfirst = t1 - t0;
  }
  qsort(tf, reps, sizeof *tf, cmp_d);
  qsort(tb, reps, sizeof *tb, cmp_d);
  printf("bench T=%u D=%u H=%u: fwd %.1f ms %.2f GFLOP/s (first call, compile included, "
         "%.0f ms)", T, D, H, tf[reps / 2] * 1e3, flops / tf[reps / 2] * 1e-9, tfirst * 1e3);
  if (bwd)
    printf(", bwd %.1f ms %.2f GFLOP/s", tb[reps / 2] * 1e3, 2.5 * flops / tb[reps / 2] * 1e-9);
  printf("\n");
  for (int i = 0; i < 10; i++) dtr_buf_destroy(ctx, b[i]);
  dtr_buf_destroy(ctx, bl);
  free(x);
}

int main(void) {
  dtr_ctx *ctx = th_ctx();
  const char *b = getenv("DTR_ATTN_BENCH");
  if (b && *b && *b != '0') {
    /* DTR_ATTN_BENCH=1: the standard shapes; "T,D,H" one shape.
     * DTR_ATTN_BENCH_BWD=0 times the forward only. */
    int reps = 5;
    const char *bb = getenv("DTR_ATTN_BENCH_BWD");
    int bwd = !bb || *bb != '0';
    unsigned T, D, H;
    if (sscanf(b, "%u,%u,%u", &T, &D, &H) == 3) {
      bench(ctx, T, D, H, reps, bwd);
    } else {
      bench(ctx, 512, 64, 8, reps, bwd);
      bench(ctx, 512, 128, 8, reps, bwd);
      bench(ctx, 2048, 64, 8, reps, bwd);
      bench(ctx, 2048, 128, 8, reps, bwd);
    }
    return th_finish();
  }

  dtr_attn_desc cases[] = {
      mk(1, 37, 37, 37, 4, 4, 64),    /* odd T, no GQA */
      mk(1, 37, 37, 37, 4, 2, 128),   /* D = 128, GQA 2 */
      mk(2, 64, 64, 64, 8, 2, 64),    /* B = 2, GQA 4 */
      mk(1, 1, 1, 1, 2, 1, 64),       /* T = 1 */
      mk(2, 5, 29, 40, 4, 1, 64),     /* Tq < Tk inside a larger cache, GQA 4 */
      mk(2, 1, 50, 64, 4, 2, 128),    /* decode: one query against a cache */
      mk(1, 150, 150, 150, 2, 2, 64), /* several workgroups and key blocks */
      mk(1, 19, 23, 23, 2, 1, 32),    /* another head dim */
      mk(1, 13, 13, 16, 2, 2, 256),   /* the largest head dim */
      mk(16, 128, 128, 128, 4, 2, 32), /* dtr-tiny's training batch */
  };
  /* Both kernel paths (the op reads DTR_ATTN_TEXEL on every call): storage
   * buffers (GPUs) and texel buffers (CPU devices). A DTR_ATTN_TEXEL set by
   * the caller runs that path alone. */
  const char *forced = getenv("DTR_ATTN_TEXEL");
  int path_lo = 0, path_hi = 1;
  if (forced && *forced) path_lo = path_hi = *forced != '0';
  const char *only = getenv("DTR_ATTN_ONLY"); /* run one case (debugging) */
  for (int path = path_lo; path <= path_hi; path++) {
    setenv("DTR_ATTN_TEXEL", path ? "1" : "0", 1);
    g_path = path ? "texel" : "ssbo";
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
      if (!only || (size_t)atoi(only) == i) check_case(ctx, &cases[i]);
    if (!only) check_deterministic(ctx);
  }
  if (only) return th_finish();

  dtr_attn_desc fd1 = mk(1, 3, 5, 6, 4, 2, 4);
  dtr_attn_desc fd2 = mk(2, 4, 4, 4, 2, 2, 8);
  check_fd(&fd1);
  check_fd(&fd2);
  check_args(ctx);
  return th_finish();
}
