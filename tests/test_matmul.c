/* test_matmul.c — dtr_op_matmul and dtr_op_matmul_bwd against the double
 * reference: every transpose case, batches with padded and broadcast (0)
 * strides, odd sizes, edge tiles, M/N/K = 1, bias, alpha/beta, each kernel path
 * (texel matmul_tex and its matrix-vector variant, forced with
 * DTR_MATMUL_TEXEL=1; the storage-buffer kernel's vec4 and scalar paths with
 * DTR_MATMUL_TEXEL=0; which kernel ran is checked through the profiler), fp16 B,
 * the K split, the binding-range split, argument errors; and the reference's
 * gradients against finite differences of its forward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref.h"

/* stride modes for batch > 1 */
enum { ST_DENSE, ST_PADDED, ST_BCAST_A, ST_BCAST_B };

typedef struct tcase {
  uint32_t M, N, K, batch;
  int ta, tb, bias, smode;
  float alpha, beta;
} tcase;

static dtr_matmul_desc make_desc(const tcase *c) {
  dtr_matmul_desc d = {.M = c->M,
                       .N = c->N,
                       .K = c->K,
                       .batch = c->batch,
                       .trans_a = c->ta,
                       .trans_b = c->tb,
                       .alpha = c->alpha,
                       .beta = c->beta};
  size_t mk = (size_t)c->M * c->K, kn = (size_t)c->K * c->N, mn = (size_t)c->M * c->N;
  size_t pad = c->smode == ST_PADDED ? 12 : 0; /* keeps vec4 alignment */
  d.stride_a = c->smode == ST_BCAST_A ? 0 : mk + pad;
  d.stride_b = c->smode == ST_BCAST_B ? 0 : kn + pad;
  d.stride_c = mn + pad;
  return d;
}

/* fp16 bits of a random value that is exact in fp16 (and so in float). */
static uint16_t rand_half(float *val) {
  int e = -(int)th_randint(6); /* exponent in [-5, 0] */
  uint32_t m = th_randint(1024), s = th_randint(2);
  *val = (s ? -1.0f : 1.0f) * ldexpf(1.0f + (float)m / 1024.0f, e) * 0.5f;
  return (uint16_t)((s << 15) | ((uint32_t)(e - 1 + 15) << 10) | m);
}

/* Gathers the valid (batch, M, N) elements of a strided C into a dense array. */
static void gather_c(const dtr_matmul_desc *d, const float *src, float *dst) {
  for (uint32_t b = 0; b < d->batch; b++)
    memcpy(dst + (size_t)b * d->M * d->N, src + b * d->stride_c, (size_t)d->M * d->N * sizeof *dst);
}
static void gather_cd(const dtr_matmul_desc *d, const double *src, double *dst) {
  for (uint32_t b = 0; b < d->batch; b++)
    memcpy(dst + (size_t)b * d->M * d->N, src + b * d->stride_c, (size_t)d->M * d->N * sizeof *dst);
}

/* Absolute tolerance for a sum of K products of values in [-1, 1]: a random
 * walk of roundings, plus a term linear in K for the long sums (K ~ 33000) whose
 * partial sums grow large and round coarsely in fp32. */
static double tol_atol(uint32_t K) { return 1e-6 * (4.0 + sqrt((double)K)) + 2e-8 * K; }

/* Which kernel a forward must run: any, matmul_tex, matmul_tex_mv, or none of
 * the texel ones (the storage-buffer matmul). */
enum { P_ANY, P_TEX, P_MV, P_SSBO };

/* The profiler's per-kernel report since the last call (empty if off). */
static void kernels_ran(dtr_ctx *ctx, char *out, size_t n) {
  out[0] = 0;
  FILE *f = tmpfile();
  if (!f) return;
  dtr_ctx_profile_report(ctx, f);
  rewind(f);
  size_t r = fread(out, 1, n - 1, f);
  out[r] = 0;
  fclose(f);
}

static void check_path(dtr_ctx *ctx, int path, const char *what) {
  char rep[2048];
  kernels_ran(ctx, rep, sizeof rep);
  if (path == P_ANY || !dtr_ctx_profiling(ctx)) return;
  int tex = strstr(rep, "matmul_tex ") != NULL, mv = strstr(rep, "matmul_tex_mv") != NULL;
  int ok = path == P_TEX ? tex && !mv : path == P_MV ? mv : !tex && !mv;
  th_expect(ok, "%s ran %s", what,
            path == P_TEX ? "matmul_tex" : path == P_MV ? "matmul_tex_mv" : "no texel kernel");
}

static void test_forward(dtr_ctx *ctx, const tcase *c, int f16, const char *path, int want) {
  dtr_matmul_desc d = make_desc(c);
  d.b_f16 = f16;
  size_t na = ref_matmul_size_a(&d), nb = ref_matmul_size_b(&d), nc = ref_matmul_size_c(&d);
  float *A = th_alloc(na), *B = th_alloc(nb), *C0 = th_alloc(nc), *bias = th_alloc(c->N);
  uint16_t *Bh = malloc(nb * sizeof *Bh + 2);
  if (!Bh) return;
  Bh[nb] = 0;
  th_rand(A, na, -1, 1);
  th_rand(C0, nc, -1, 1);
  th_rand(bias, c->N, -1, 1);
  if (f16)
    for (size_t i = 0; i < nb; i++)
      Bh[i] = rand_half(&B[i]);
  else
    th_rand(B, nb, -1, 1);
  double *ref = th_dalloc(nc);
  for (size_t i = 0; i < nc; i++)
    ref[i] = C0[i];
  ref_matmul(ref, A, B, c->bias ? bias : NULL, &d);

  dtr_buf *bA = th_buf(ctx, A, na * 4);
  dtr_buf *bB = f16 ? th_buf(ctx, Bh, nb * 2 + 2) : th_buf(ctx, B, nb * 4);
  dtr_buf *bbias = th_buf(ctx, bias, c->N * 4);
  dtr_buf *bC = c->beta != 0 ? th_buf(ctx, C0, nc * 4) : th_poison(ctx, nc * 4);
  char rep[2048];
  kernels_ran(ctx, rep, sizeof rep); /* forget earlier kernels */
  th_ok(ctx,
        dtr_op_matmul(ctx, dtr_whole(bC), dtr_whole(bA), dtr_whole(bB),
                      c->bias ? dtr_whole(bbias) : DTR_NONE, &d),
        "dtr_op_matmul");
  float *got = th_alloc(nc);
  th_get(ctx, bC, got, nc * 4);
  size_t n = (size_t)c->batch * c->M * c->N;
  float *g2 = th_alloc(n);
  double *r2 = th_dalloc(n);
  gather_c(&d, got, g2);
  gather_cd(&d, ref, r2);
  char what[200];
  snprintf(what, sizeof what,
           "matmul%s %s M=%u N=%u K=%u batch=%u ta=%d tb=%d bias=%d "
           "strides=%d alpha=%g beta=%g",
           f16 ? " b_f16" : "", path, c->M, c->N, c->K, c->batch, c->ta, c->tb, c->bias, c->smode,
           c->alpha, c->beta);
  th_check(what, g2, r2, n, 1e-5, tol_atol(c->K), 1e-4);
  check_path(ctx, want, what);
  dtr_buf_destroy(ctx, bA);
  dtr_buf_destroy(ctx, bB);
  dtr_buf_destroy(ctx, bbias);
  dtr_buf_destroy(ctx, bC);
  free(A), free(B), free(C0), free(bias), free(Bh), free(ref), free(got), free(g2), free(r2);
}

static void test_backward(dtr_ctx *ctx, const tcase *c, const char *path) {
  dtr_matmul_desc d = make_desc(c);
  size_t na = ref_matmul_size_a(&d), nb = ref_matmul_size_b(&d), nc = ref_matmul_size_c(&d);
  float *A = th_alloc(na), *B = th_alloc(nb), *dC = th_alloc(nc);
  float *dB0 = th_alloc(nb), *db0 = th_alloc(c->N);
  th_rand(A, na, -1, 1);
  th_rand(B, nb, -1, 1);
  th_rand(dC, nc, -1, 1);
  th_rand(dB0, nb, -1, 1);
  th_rand(db0, c->N, -1, 1);
  double *rdA = th_dalloc(na), *rdB = th_dalloc(nb), *rdb = th_dalloc(c->N);
  for (size_t i = 0; i < nb; i++)
    rdB[i] = dB0[i];
  for (size_t i = 0; i < c->N; i++)
    rdb[i] = db0[i];
  ref_matmul_bwd(rdA, rdB, rdb, dC, A, B, &d);

  dtr_buf *bA = th_buf(ctx, A, na * 4), *bB = th_buf(ctx, B, nb * 4);
  dtr_buf *bdC = th_buf(ctx, dC, nc * 4);
  dtr_buf *bdA = th_poison(ctx, na * 4);
  dtr_buf *bdB = th_buf(ctx, dB0, nb * 4), *bdb = th_buf(ctx, db0, c->N * 4);
  th_ok(ctx,
        dtr_op_matmul_bwd(ctx, dtr_whole(bdA), dtr_whole(bdB), dtr_whole(bdb), dtr_whole(bdC),
                          dtr_whole(bA), dtr_whole(bB), &d),
        "dtr_op_matmul_bwd");
  float *gA = th_alloc(na), *gB = th_alloc(nb), *gb = th_alloc(c->N);
  th_get(ctx, bdA, gA, na * 4);
  th_get(ctx, bdB, gB, nb * 4);
  th_get(ctx, bdb, gb, c->N * 4);
  /* Padding between batches is never written: compare it as "unchanged". */
  if (c->smode == ST_PADDED) {
    for (uint32_t b = 0; b + 1 < c->batch; b++)
      for (size_t i = (size_t)c->M * c->K; i < d.stride_a; i++) {
        size_t j = b * d.stride_a + i;
        rdA[j] = 0, gA[j] = isnan(gA[j]) ? 0.0f : 1.0f; /* poison must stay (NaN) */
      }
  }
  char what[200];
  snprintf(what, sizeof what, "%s M=%u N=%u K=%u batch=%u ta=%d tb=%d strides=%d alpha=%g", path,
           c->M, c->N, c->K, c->batch, c->ta, c->tb, c->smode, c->alpha);
  char w2[260];
  snprintf(w2, sizeof w2, "matmul_bwd dA %s", what);
  th_check(w2, gA, rdA, na, 1e-5, tol_atol(c->N * c->batch), 1e-4);
  snprintf(w2, sizeof w2, "matmul_bwd dB+= %s", what);
  th_check(w2, gB, rdB, nb, 1e-5, tol_atol(c->M * c->batch), 1e-4);
  snprintf(w2, sizeof w2, "matmul_bwd dbias+= %s", what);
  th_check(w2, gb, rdb, c->N, 1e-5, tol_atol(c->M * c->batch), 1e-4);
  dtr_buf_destroy(ctx, bA), dtr_buf_destroy(ctx, bB), dtr_buf_destroy(ctx, bdC);
  dtr_buf_destroy(ctx, bdA), dtr_buf_destroy(ctx, bdB), dtr_buf_destroy(ctx, bdb);
  free(A), free(B), free(dC), free(dB0), free(db0), free(rdA), free(rdB), free(rdb);
  free(gA), free(gB), free(gb);
}

/* ---- the reference's gradients against finite differences ---------------- */
typedef struct fd_ud {
  dtr_matmul_desc d;
  double *A, *B, *bias; /* perturbed by th_fd */
  const float *W;       /* L = sum W .* C */
  size_t na, nb, nc;
} fd_ud;

static double fd_loss(void *p) {
  fd_ud *u = p;
  float *A = th_alloc(u->na), *B = th_alloc(u->nb), *bias = th_alloc(u->d.N);
  for (size_t i = 0; i < u->na; i++)
    A[i] = (float)u->A[i];
  for (size_t i = 0; i < u->nb; i++)
    B[i] = (float)u->B[i];
  for (size_t i = 0; i < u->d.N; i++)
    bias[i] = (float)u->bias[i];
  double *C = th_dalloc(u->nc);
  ref_matmul(C, A, B, bias, &u->d);
  double L = 0;
  for (uint32_t b = 0; b < u->d.batch; b++)
    for (size_t i = 0; i < (size_t)u->d.M * u->d.N; i++)
      L += u->W[b * u->d.stride_c + i] * C[b * u->d.stride_c + i];
  free(A), free(B), free(bias), free(C);
  return L;
}

/* Values k/1024 in [-1, 1] and a step of 1/64 keep x and x +- h exact in float,
 * so the (linear) loss's central differences are exact up to double rounding. */
static void rand_exact(double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = ((double)th_randint(2049) - 1024.0) / 1024.0;
}

static void test_fd(const tcase *c) {
  fd_ud u = {.d = make_desc(c)};
  u.na = ref_matmul_size_a(&u.d), u.nb = ref_matmul_size_b(&u.d), u.nc = ref_matmul_size_c(&u.d);
  u.A = th_dalloc(u.na), u.B = th_dalloc(u.nb), u.bias = th_dalloc(c->N);
  rand_exact(u.A, u.na), rand_exact(u.B, u.nb), rand_exact(u.bias, c->N);
  float *W = th_alloc(u.nc);
  th_rand(W, u.nc, -1, 1);
  u.W = W;
  float *A = th_alloc(u.na), *B = th_alloc(u.nb);
  for (size_t i = 0; i < u.na; i++)
    A[i] = (float)u.A[i];
  for (size_t i = 0; i < u.nb; i++)
    B[i] = (float)u.B[i];
  double *dA = th_dalloc(u.na), *dB = th_dalloc(u.nb), *db = th_dalloc(c->N);
  ref_matmul_bwd(dA, dB, db, W, A, B, &u.d);
  double *fA = th_dalloc(u.na), *fB = th_dalloc(u.nb), *fb = th_dalloc(c->N);
  const double h = 1.0 / 64;
  th_fd(fd_loss, &u, u.A, u.na, h, fA);
  th_fd(fd_loss, &u, u.B, u.nb, h, fB);
  th_fd(fd_loss, &u, u.bias, c->N, h, fb);
  /* Padding elements get no gradient either way (both zero). */
  char what[160];
  snprintf(what, sizeof what,
           "ref_matmul_bwd vs fd: M=%u N=%u K=%u batch=%u ta=%d tb=%d "
           "strides=%d",
           c->M, c->N, c->K, c->batch, c->ta, c->tb, c->smode);
  char w2[200];
  snprintf(w2, sizeof w2, "%s dA", what);
  th_check_d(w2, dA, fA, u.na, 1e-9);
  snprintf(w2, sizeof w2, "%s dB", what);
  th_check_d(w2, dB, fB, u.nb, 1e-9);
  snprintf(w2, sizeof w2, "%s dbias", what);
  th_check_d(w2, db, fb, c->N, 1e-9);
  free(u.A), free(u.B), free(u.bias), free(W), free(A), free(B);
  free(dA), free(dB), free(db), free(fA), free(fB), free(fb);
}

/* An operand larger than one binding (maxStorageBufferRange): the op splits it.
 * A (M, K) of just over the range with N = 1, a matrix-vector product. */
static void test_big(dtr_ctx *ctx) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  if (di->max_storage_buffer_range > ((uint64_t)512 << 20)) {
    th_expect(1, "binding-range split: range %llu too large to exercise cheaply",
              (unsigned long long)di->max_storage_buffer_range);
    return;
  }
  uint32_t K = 16384;
  uint32_t M = (uint32_t)(di->max_storage_buffer_range / (4ull * K)) + 64;
  tcase c = {M, 1, K, 1, 0, 0, 1, ST_DENSE, 1.0f, 0.0f};
  dtr_matmul_desc d = make_desc(&c);
  size_t na = (size_t)M * K;
  float *A = th_alloc(na), *B = th_alloc(K), *bias = th_alloc(1);
  th_rand(A, na, -1, 1);
  th_rand(B, K, -1, 1);
  bias[0] = 0.5f;
  double *ref = th_dalloc(M);
  ref_matmul(ref, A, B, bias, &d);
  dtr_buf *bA = th_buf(ctx, A, na * 4), *bB = th_buf(ctx, B, K * 4);
  dtr_buf *bb = th_buf(ctx, bias, 4), *bC = th_poison(ctx, M * 4);
  dtr_status st =
      dtr_op_matmul(ctx, dtr_whole(bC), dtr_whole(bA), dtr_whole(bB), dtr_whole(bb), &d);
  if (st == DTR_ERR_UNSUPPORTED) {
    th_expect(strstr(dtr_ctx_error(ctx), "maxStorageBufferRange") != NULL,
              "big matmul refused with a clear message: %s", dtr_ctx_error(ctx));
  } else {
    th_ok(ctx, st, "dtr_op_matmul (A over the binding range)");
    float *got = th_alloc(M);
    th_get(ctx, bC, got, M * 4);
    char what[120];
    snprintf(what, sizeof what, "matmul A of %zu bytes > binding range %llu, M=%u N=1 K=%u", na * 4,
             (unsigned long long)di->max_storage_buffer_range, M, K);
    th_check(what, got, ref, M, 1e-5, tol_atol(K), 1e-4);
    free(got);
  }
  dtr_buf_destroy(ctx, bA), dtr_buf_destroy(ctx, bB), dtr_buf_destroy(ctx, bb);
  dtr_buf_destroy(ctx, bC);
  free(A), free(B), free(bias), free(ref);

  /* A (1, K) row alone larger than a binding cannot be split: refused clearly.
   * The views claim sizes the buffers do not have, so nothing big is allocated;
   * argument validation must catch the too-small view first (INVALID). */
  dtr_buf *small = th_poison(ctx, 4096);
  dtr_matmul_desc dd = {.M = 1,
                        .N = 1,
                        .K = (uint32_t)(di->max_storage_buffer_range / 4) + 4,
                        .batch = 1,
                        .alpha = 1};
  st = dtr_op_matmul(ctx, dtr_whole(small), dtr_whole(small), dtr_whole(small), DTR_NONE, &dd);
  th_expect(st == DTR_ERR_INVALID, "view too small for the shape -> INVALID (%s): %s",
            dtr_status_name(st), dtr_ctx_error(ctx));
  dtr_buf_destroy(ctx, small);
}

static void test_errors(dtr_ctx *ctx) {
  dtr_buf *b = th_poison(ctx, 4096);
  dtr_matmul_desc d = {.M = 8, .N = 8, .K = 8, .batch = 1, .alpha = 1};
  dtr_status st = dtr_op_matmul(ctx, dtr_whole(b), dtr_whole(b), dtr_whole(b), DTR_NONE, NULL);
  th_expect(st == DTR_ERR_INVALID, "NULL desc -> INVALID (%s)", dtr_status_name(st));
  d.K = 0;
  st = dtr_op_matmul(ctx, dtr_whole(b), dtr_whole(b), dtr_whole(b), DTR_NONE, &d);
  th_expect(st == DTR_ERR_INVALID, "K = 0 -> INVALID (%s)", dtr_status_name(st));
  d.K = 8, d.batch = 2, d.stride_a = d.stride_b = 64, d.stride_c = 10;
  st = dtr_op_matmul(ctx, dtr_whole(b), dtr_whole(b), dtr_whole(b), DTR_NONE, &d);
  th_expect(st == DTR_ERR_INVALID, "overlapping C batches -> INVALID (%s)", dtr_status_name(st));
  d.batch = 1, d.b_f16 = 1;
  st = dtr_op_matmul_bwd(ctx, DTR_NONE, dtr_whole(b), DTR_NONE, dtr_whole(b), dtr_whole(b),
                         dtr_whole(b), &d);
  th_expect(st == DTR_ERR_UNSUPPORTED, "dB of an fp16 B -> UNSUPPORTED (%s): %s",
            dtr_status_name(st), dtr_ctx_error(ctx));
  if (!dtr_ctx_device(ctx)->fp16_storage) {
    st = dtr_op_matmul(ctx, dtr_whole(b), dtr_whole(b), dtr_whole(b), DTR_NONE, &d);
    th_expect(st == DTR_ERR_UNSUPPORTED, "b_f16 without fp16 storage -> UNSUPPORTED (%s): %s",
              dtr_status_name(st), dtr_ctx_error(ctx));
  }
  dtr_buf_destroy(ctx, b);
}

/* A's view at byte offset off inside a bigger buffer: 16-byte multiples keep
 * the texel path, other offsets must fall back to the storage-buffer kernel. */
static void test_offset(dtr_ctx *ctx, size_t off, int want) {
  tcase c = {12, 20, 24, 1, 0, 1, 1, ST_DENSE, 1.0f, 0.0f};
  dtr_matmul_desc d = make_desc(&c);
  size_t na = (size_t)c.M * c.K, nb = (size_t)c.N * c.K, nc = (size_t)c.M * c.N;
  size_t pad = off / 4;
  float *A = th_alloc(na + pad + 4), *B = th_alloc(nb), *bias = th_alloc(c.N);
  th_rand(A, na + pad + 4, -1, 1);
  th_rand(B, nb, -1, 1);
  th_rand(bias, c.N, -1, 1);
  double *ref = th_dalloc(nc);
  ref_matmul(ref, A + pad, B, bias, &d);
  dtr_buf *bA = th_buf(ctx, A, (na + pad + 4) * 4), *bB = th_buf(ctx, B, nb * 4);
  dtr_buf *bb = th_buf(ctx, bias, c.N * 4), *bC = th_poison(ctx, nc * 4);
  char rep[2048];
  kernels_ran(ctx, rep, sizeof rep);
  th_ok(ctx,
        dtr_op_matmul(ctx, dtr_whole(bC), (dtr_view){bA, off, na * 4}, dtr_whole(bB),
                      dtr_whole(bb), &d),
        "dtr_op_matmul (A at an offset)");
  float *got = th_alloc(nc);
  th_get(ctx, bC, got, nc * 4);
  char what[120];
  snprintf(what, sizeof what, "matmul NT M=%u N=%u K=%u, A view at byte offset %zu", c.M, c.N,
           c.K, off);
  th_check(what, got, ref, nc, 1e-5, tol_atol(c.K), 1e-4);
  check_path(ctx, want, what);
  dtr_buf_destroy(ctx, bA), dtr_buf_destroy(ctx, bB), dtr_buf_destroy(ctx, bb);
  dtr_buf_destroy(ctx, bC);
  free(A), free(B), free(bias), free(ref), free(got);
}

int main(void) {
  setenv("DTR_PROFILE", "1", 1); /* the per-kernel report says which path ran */
  dtr_ctx *ctx = th_ctx();
  /* M N K batch ta tb bias strides alpha beta */
  static const tcase aligned[] = {
      {64, 64, 64, 1, 0, 0, 0, ST_DENSE, 1.0f, 0.0f},
      {64, 96, 32, 1, 0, 1, 1, ST_DENSE, 1.0f, 0.0f},
      {96, 64, 48, 1, 1, 0, 0, ST_DENSE, 0.5f, 0.0f},
      {40, 72, 56, 1, 1, 1, 1, ST_DENSE, 1.0f, 0.0f},
      {128, 128, 256, 1, 0, 1, 0, ST_DENSE, 1.0f, 0.0f},
      {36, 44, 28, 3, 0, 0, 1, ST_PADDED, -1.5f, 0.75f},
      {36, 44, 28, 3, 1, 1, 0, ST_PADDED, 1.0f, 1.0f},
      {32, 48, 16, 3, 0, 1, 1, ST_BCAST_B, 1.0f, 0.0f},
      {32, 48, 16, 2, 1, 0, 0, ST_BCAST_A, 1.0f, 0.0f},
      {1, 256, 512, 1, 0, 1, 1, ST_DENSE, 1.0f, 0.0f}, /* decode, weights as B */
      {256, 1, 512, 1, 0, 0, 1, ST_DENSE, 1.0f, 0.5f}, /* decode, weights as A */
      {1, 64, 32, 1, 1, 0, 0, ST_DENSE, 1.0f, 0.0f},
      {64, 1, 32, 2, 1, 1, 1, ST_PADDED, 2.0f, 0.0f},
  };
  /* The texel kernel's path for each aligned case (N = 1 runs transposed). */
  static const int aligned_tex[] = {P_TEX, P_TEX, P_TEX, P_TEX, P_TEX, P_TEX, P_TEX,
                                    P_TEX, P_TEX, P_MV,  P_MV,  P_TEX, P_TEX};
  /* Texel-path shapes over several workgroups with partial edge tiles (the
   * CPU tiles are 32 x 128 of C), each transpose case, and a matrix-vector
   * product whose N and K/4 are not multiples of the workgroup / subgroup. */
  static const tcase tex[] = {
      {260, 100, 64, 1, 0, 1, 1, ST_DENSE, 1.0f, 0.5f},
      {132, 68, 36, 2, 1, 0, 0, ST_PADDED, 1.0f, 0.0f},
      {100, 36, 20, 1, 0, 0, 1, ST_DENSE, 0.5f, -1.0f},
      {68, 260, 24, 2, 1, 1, 1, ST_BCAST_A, 1.0f, 0.0f},
      {1, 1540, 132, 2, 0, 1, 1, ST_PADDED, 1.0f, 1.0f},
  };
  static const int tex_path[] = {P_TEX, P_TEX, P_TEX, P_TEX, P_MV};
  static const tcase odd[] = {
      {37, 53, 71, 1, 0, 0, 1, ST_DENSE, 1.0f, 0.0f},
      {37, 53, 71, 1, 0, 1, 0, ST_DENSE, 1.0f, -0.5f},
      {37, 53, 71, 1, 1, 0, 1, ST_DENSE, 0.25f, 0.0f},
      {37, 53, 71, 1, 1, 1, 0, ST_DENSE, 1.0f, 0.0f},
      {17, 9, 13, 3, 0, 1, 1, ST_PADDED, 1.0f, 2.0f},
      {17, 9, 13, 3, 1, 0, 0, ST_BCAST_B, 1.0f, 0.0f},
      {17, 9, 13, 2, 0, 0, 1, ST_BCAST_A, 1.0f, 0.0f},
      {1, 1, 1, 1, 0, 0, 1, ST_DENSE, 1.0f, 1.0f},
      {1, 37, 71, 1, 0, 0, 0, ST_DENSE, 1.0f, 0.0f},
      {37, 1, 71, 1, 0, 1, 1, ST_DENSE, 1.0f, 0.0f},
      {37, 53, 1, 2, 1, 0, 1, ST_DENSE, 1.0f, 0.0f},
      {5, 3, 300, 1, 1, 1, 0, ST_DENSE, 1.0f, 0.0f},
  };
  /* K over the host's K chunk (32768): several accumulating dispatches, on
   * the texel path and on the scalar storage-buffer path. */
  static const tcase longk[] = {
      {4, 8, 33792, 1, 0, 1, 1, ST_DENSE, 1.0f, 0.5f},
      {3, 5, 33001, 1, 0, 1, 1, ST_DENSE, 1.0f, 0.5f},
  };
  size_t na = sizeof aligned / sizeof *aligned, no = sizeof odd / sizeof *odd;
  size_t nt = sizeof tex / sizeof *tex;
  /* The device's own choice on a few cases (texel kernels on CPU devices). */
  for (size_t i = 0; i < 5; i++) {
    test_forward(ctx, &aligned[i], 0, "device", P_ANY);
    if (i == 1 || i == 2) test_backward(ctx, &aligned[i], "device");
  }
  /* The texel path, forced, with its CPU tiles. */
  setenv("DTR_MATMUL_TEXEL", "1", 1);
  for (size_t i = 0; i < na; i++) {
    test_forward(ctx, &aligned[i], 0, "texel", aligned_tex[i]);
    test_backward(ctx, &aligned[i], "texel");
  }
  for (size_t i = 0; i < nt; i++) {
    test_forward(ctx, &tex[i], 0, "texel", tex_path[i]);
    test_backward(ctx, &tex[i], "texel");
  }
  setenv("DTR_MATMUL_NOMV", "1", 1); /* matrix-vector shapes on matmul_tex */
  test_forward(ctx, &aligned[9], 0, "texel no-mv", P_TEX);
  test_forward(ctx, &tex[4], 0, "texel no-mv", P_TEX);
  setenv("DTR_MATMUL_NOMV", "0", 1);
  test_forward(ctx, &longk[0], 0, "texel", P_TEX);
  test_offset(ctx, 64, P_TEX);
  test_offset(ctx, 4, P_SSBO);
  /* The storage-buffer kernel with small tiles (which also exercise the
   * subgroup sharing with fewer rows than lanes), vec4 and scalar. */
  setenv("DTR_MATMUL_TEXEL", "0", 1);
  setenv("DTR_MATMUL_TILES", "8,8,4,4", 1);
  for (size_t i = 0; i < na; i++) {
    setenv("DTR_MATMUL_NOVEC", "0", 1);
    test_forward(ctx, &aligned[i], 0, "vec4", P_SSBO);
    test_backward(ctx, &aligned[i], "vec4");
    setenv("DTR_MATMUL_NOVEC", "1", 1);
    test_forward(ctx, &aligned[i], 0, "scalar", P_SSBO);
  }
  test_forward(ctx, &longk[1], 0, "scalar", P_SSBO);
  /* Shapes the texel kernel cannot take fall back by themselves. */
  unsetenv("DTR_MATMUL_TEXEL");
  setenv("DTR_MATMUL_NOVEC", "0", 1);
  for (size_t i = 0; i < no; i++) {
    test_forward(ctx, &odd[i], 0, "any", P_SSBO);
    test_backward(ctx, &odd[i], "any");
  }
  if (dtr_ctx_device(ctx)->fp16_storage) {
    for (size_t i = 0; i < na; i += 2)
      test_forward(ctx, &aligned[i], 1, "vec4", P_SSBO);
    for (size_t i = 0; i < no; i += 3)
      test_forward(ctx, &odd[i], 1, "any", P_SSBO);
  } else {
    printf("device has no 16-bit storage: b_f16 checks only its refusal\n");
  }
  static const tcase fd[] = {
      {3, 4, 5, 1, 0, 0, 1, ST_DENSE, 1.5f, 0.0f},
      {3, 4, 5, 2, 1, 0, 1, ST_PADDED, 1.0f, 0.0f},
      {2, 3, 4, 3, 0, 1, 1, ST_BCAST_B, 0.5f, 0.0f},
      {2, 3, 4, 2, 1, 1, 1, ST_BCAST_A, 1.0f, 0.0f},
  };
  for (size_t i = 0; i < sizeof fd / sizeof *fd; i++)
    test_fd(&fd[i]);
  test_errors(ctx);
  test_big(ctx);
  return th_finish();
}
