/* test_gdn.c — Gated DeltaNet kernels against the recurrent oracle (ref_gdn.c):
 * the oracle's analytic backward against finite differences; the chunked forward
 * (both forms) and backward (texel and storage-buffer kernels) against the oracle
 * over awkward shapes (T not a multiple of the chunk, T < chunk, T = 1, several
 * heads, varlen batches, initial and final states, value columns not filling a
 * workgroup, a backward longer than one texel dispatch); decode token by token
 * and prefill then decode against one long forward; a long sequence stays finite;
 * the chunked ops again with fp16 q, k, v (io_f16); the gates and the L2 norm
 * with their gradients. Decays exp(g) are drawn in [0.5, 0.999]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dtr_linear.h"
#include "harness.h"
#include "ref.h"

static double *to_d(const float *x, size_t n) {
  double *d = th_dalloc(n);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

/* Random L2-normalised rows (as the layer feeds q and k). */
static void rand_unit_rows(float *x, size_t rows, int C) {
  th_rand(x, rows * C, -1, 1);
  for (size_t r = 0; r < rows; r++) {
    double s = 0;
    for (int c = 0; c < C; c++) s += (double)x[r * C + c] * x[r * C + c];
    for (int c = 0; c < C; c++) x[r * C + c] = (float)(x[r * C + c] / sqrt(s + 1e-6));
  }
}
static void rand_gates(float *g, float *beta, size_t n) {
  for (size_t i = 0; i < n; i++) {
    g[i] = (float)log(0.5 + 0.499 * th_randu());
    beta[i] = (float)(0.02 + 0.96 * th_randu());
  }
}

/* Compare with an element tolerance scaled to the reference's largest value. */
static int check(const char *what, const float *got, const double *ref, size_t n, double rel) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(ref[i]));
  return th_check(what, got, ref, n, rel, 20 * rel * m, 20 * rel);
}

/* ---- the oracle's gradients vs finite differences ------------------------ */
typedef struct fd_case {
  int B, H, K, V;
  int32_t off[4];
  double scale;
  double *q, *k, *v, *g, *beta, *s0, *w, *ws; /* ws weighs state_out in the loss */
  double *o, *s1;
} fd_case;

static double fd_loss(void *ud) {
  fd_case *c = ud;
  int T = c->off[c->B];
  ref_gdn_chunk_fwd(c->o, c->s1, c->q, c->k, c->v, c->g, c->beta, c->s0, c->off, c->B, c->H,
                    c->K, c->V, c->scale);
  double L = 0;
  for (int i = 0; i < T * c->H * c->V; i++) L += c->o[i] * c->w[i];
  for (int i = 0; i < c->B * c->H * c->K * c->V; i++) L += c->s1[i] * c->ws[i];
  return L;
}

static double *drand(size_t n, double lo, double hi) {
  double *x = th_dalloc(n);
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * th_randu();
  return x;
}

static void test_ref_fd(void) {
  fd_case c = {.B = 2, .H = 2, .K = 4, .V = 3, .off = {0, 6, 9}, .scale = 0.5};
  int T = c.off[c.B];
  size_t tk = (size_t)T * c.H * c.K, tv = (size_t)T * c.H * c.V, th = (size_t)T * c.H;
  size_t sn = (size_t)c.B * c.H * c.K * c.V;
  c.q = drand(tk, -1, 1);
  c.k = drand(tk, -0.6, 0.6);
  c.v = drand(tv, -1, 1);
  c.g = th_dalloc(th);
  c.beta = th_dalloc(th);
  for (size_t i = 0; i < th; i++) {
    c.g[i] = log(0.5 + 0.499 * th_randu());
    c.beta[i] = 0.05 + 0.9 * th_randu();
  }
  c.s0 = drand(sn, -0.5, 0.5);
  c.w = drand(tv, -1, 1);
  c.ws = drand(sn, -1, 1);
  c.o = th_dalloc(tv);
  c.s1 = th_dalloc(sn);
  double *dq = th_dalloc(tk), *dk = th_dalloc(tk), *dv = th_dalloc(tv), *dg = th_dalloc(th);
  double *db = th_dalloc(th), *ds0 = th_dalloc(sn);
  ref_gdn_chunk_bwd(dq, dk, dv, dg, db, ds0, c.w, c.ws, c.q, c.k, c.v, c.g, c.beta, c.s0, c.off,
                    c.B, c.H, c.K, c.V, c.scale);
  struct { const char *name; double *x, *an; size_t n; } in[] = {
      {"dq", c.q, dq, tk}, {"dk", c.k, dk, tk}, {"dv", c.v, dv, tv},
      {"dg", c.g, dg, th}, {"dbeta", c.beta, db, th}, {"dstate_in", c.s0, ds0, sn}};
  for (size_t a = 0; a < sizeof in / sizeof in[0]; a++) {
    double *fd = th_dalloc(in[a].n);
    th_fd(fd_loss, &c, in[a].x, in[a].n, 1e-5, fd);
    char what[96];
    snprintf(what, sizeof what, "ref_gdn_chunk_bwd %s vs finite differences", in[a].name);
    th_check_d(what, in[a].an, fd, in[a].n, 1e-7);
    free(fd);
  }
  /* Without dstate_out the state term is absent from the loss. */
  memset(c.ws, 0, sn * sizeof(double));
  double *dq2 = th_dalloc(tk), *fd = th_dalloc(tk);
  ref_gdn_chunk_bwd(dq2, dk, dv, dg, db, NULL, c.w, NULL, c.q, c.k, c.v, c.g, c.beta, c.s0,
                    c.off, c.B, c.H, c.K, c.V, c.scale);
  th_fd(fd_loss, &c, c.k, tk, 1e-5, fd);
  th_check_d("ref_gdn_chunk_bwd dk (no dstate_out) vs finite differences", dk, fd, tk, 1e-7);
  free(dq2); free(fd);
  free(dq); free(dk); free(dv); free(dg); free(db); free(ds0);
  free(c.q); free(c.k); free(c.v); free(c.g); free(c.beta); free(c.s0); free(c.w);
  free(c.ws); free(c.o); free(c.s1);
}

/* Gates and L2 norm: the references' gradients vs finite differences. */
typedef struct gate_case { size_t N; int H; double *a, *b, *al, *dt, *wg, *wb, *g, *beta; } gate_case;
static double gate_loss(void *ud) {
  gate_case *c = ud;
  ref_gdn_gate_fwd(c->g, c->beta, c->a, c->b, c->al, c->dt, c->N, c->H);
  double L = 0;
  for (size_t i = 0; i < c->N * c->H; i++) L += c->g[i] * c->wg[i] + c->beta[i] * c->wb[i];
  return L;
}
typedef struct l2_case { size_t N; int C; double *x, *w, *y; } l2_case;
static double l2_loss(void *ud) {
  l2_case *c = ud;
  ref_l2norm_fwd(c->y, c->x, c->N, c->C, 1e-6);
  double L = 0;
  for (size_t i = 0; i < c->N * c->C; i++) L += c->y[i] * c->w[i];
  return L;
}

static void test_ref_fd_gates(void) {
  gate_case c = {.N = 5, .H = 3};
  size_t n = c.N * c.H;
  c.a = drand(n, -4, 3); c.b = drand(n, -4, 4); c.al = drand(c.H, -1, 2.5);
  c.dt = drand(c.H, -6, 1); c.wg = drand(n, -1, 1); c.wb = drand(n, -1, 1);
  c.g = th_dalloc(n); c.beta = th_dalloc(n);
  double *da = th_dalloc(n), *db = th_dalloc(n), *dal = th_dalloc(c.H), *ddt = th_dalloc(c.H);
  ref_gdn_gate_bwd(da, db, dal, ddt, c.wg, c.wb, c.a, c.b, c.al, c.dt, c.N, c.H);
  double *fd = th_dalloc(n);
  th_fd(gate_loss, &c, c.a, n, 1e-6, fd);
  th_check_d("ref_gdn_gate_bwd da vs finite differences", da, fd, n, 1e-7);
  th_fd(gate_loss, &c, c.b, n, 1e-6, fd);
  th_check_d("ref_gdn_gate_bwd db vs finite differences", db, fd, n, 1e-7);
  th_fd(gate_loss, &c, c.al, c.H, 1e-6, fd);
  th_check_d("ref_gdn_gate_bwd dA_log vs finite differences", dal, fd, c.H, 1e-7);
  th_fd(gate_loss, &c, c.dt, c.H, 1e-6, fd);
  th_check_d("ref_gdn_gate_bwd ddt_bias vs finite differences", ddt, fd, c.H, 1e-7);
  free(fd); free(da); free(db); free(dal); free(ddt);
  free(c.a); free(c.b); free(c.al); free(c.dt); free(c.wg); free(c.wb); free(c.g); free(c.beta);

  l2_case l = {.N = 4, .C = 7};
  size_t m = l.N * l.C;
  l.x = drand(m, -1, 1); l.w = drand(m, -1, 1); l.y = th_dalloc(m);
  double *dx = th_dalloc(m), *fx = th_dalloc(m);
  ref_l2norm_bwd(dx, l.w, l.x, l.N, l.C, 1e-6);
  th_fd(l2_loss, &l, l.x, m, 1e-6, fx);
  th_check_d("ref_l2norm_bwd dx vs finite differences", dx, fx, m, 1e-7);
  free(dx); free(fx); free(l.x); free(l.w); free(l.y);
}

/* ---- device chunked forward and backward vs the oracle ------------------- */
typedef struct gdn_case {
  const char *name;
  int B, H, K, V, chunk;
  int lens[4];
  int has_s0, has_dsout;
} gdn_case;

/* With f16, q, k and v are packed fp16 (io_f16) and the oracle runs on them
 * rounded to fp16, at the same tolerances; and the packed buffers read as fp32
 * must miss the oracle. */
static void run_case(dtr_ctx *ctx, const gdn_case *tc, int backward, int f16) {
  int B = tc->B, H = tc->H, K = tc->K, V = tc->V;
  int32_t off[5] = {0};
  for (int b = 0; b < B; b++) off[b + 1] = off[b] + tc->lens[b];
  int T = off[B];
  size_t tk = (size_t)T * H * K, tv = (size_t)T * H * V, th = (size_t)T * H;
  size_t sn = (size_t)B * H * K * V;
  float *q = th_alloc(tk), *k = th_alloc(tk), *v = th_alloc(tv), *g = th_alloc(th);
  float *beta = th_alloc(th), *s0 = th_alloc(sn), *dout = th_alloc(tv), *dso = th_alloc(sn);
  rand_unit_rows(q, (size_t)T * H, K);
  rand_unit_rows(k, (size_t)T * H, K);
  th_rand(v, tv, -1, 1);
  rand_gates(g, beta, th);
  th_rand(s0, sn, -0.5f, 0.5f);
  th_rand(dout, tv, -1, 1);
  th_rand(dso, sn, -1, 1);
  double *dq_, *dk_, *dv_, *dg_ = to_d(g, th);
  double *db_ = to_d(beta, th), *ds0_ = to_d(s0, sn), *ddo = to_d(dout, tv), *ddso = to_d(dso, sn);
  double scale = 1.0 / sqrt((double)K);
  dtr_lin_desc d = {(uint32_t)B, (uint32_t)T, (uint32_t)H, (uint32_t)K, (uint32_t)V,
                    (float)scale, (uint32_t)tc->chunk, 0, (uint32_t)f16};
  const char *tag = f16 ? ", fp16 q, k, v" : "";

  dtr_buf *bq, *bk, *bv;
  if (f16) { /* fp32-sized, zeros after the halves: room for the fp32 read below */
    bq = th_buf_f16(ctx, q, tk, tk * 4, &dq_);
    bk = th_buf_f16(ctx, k, tk, tk * 4, &dk_);
    bv = th_buf_f16(ctx, v, tv, tv * 4, &dv_);
  } else {
    dq_ = to_d(q, tk), dk_ = to_d(k, tk), dv_ = to_d(v, tv);
    bq = th_buf(ctx, q, tk * 4), bk = th_buf(ctx, k, tk * 4), bv = th_buf(ctx, v, tv * 4);
  }
  dtr_buf *bg = th_buf(ctx, g, th * 4), *bb = th_buf(ctx, beta, th * 4);
  dtr_buf *bs0 = th_buf(ctx, s0, sn * 4), *boff = th_buf(ctx, off, (size_t)(B + 1) * 4);
  dtr_view s0v = tc->has_s0 ? dtr_whole(bs0) : DTR_NONE;
  char what[160];

  if (!backward) {
    double *ro = th_dalloc(tv), *rs1 = th_dalloc(sn);
    ref_gdn_chunk_fwd(ro, rs1, dq_, dk_, dv_, dg_, db_, tc->has_s0 ? ds0_ : NULL, off, B, H, K, V,
                      scale);
    dtr_buf *bo = th_poison(ctx, tv * 4), *bs1 = th_poison(ctx, sn * 4);
    th_ok(ctx, dtr_op_gdn_chunk_fwd(ctx, dtr_whole(bo), dtr_whole(bs1), dtr_whole(bq),
                                    dtr_whole(bk), dtr_whole(bv), dtr_whole(bg), dtr_whole(bb),
                                    s0v, dtr_whole(boff), &d), "gdn_chunk_fwd");
    th_submit(ctx);
    float *o = th_alloc(tv), *s1 = th_alloc(sn);
    th_get(ctx, bo, o, tv * 4);
    th_get(ctx, bs1, s1, sn * 4);
    snprintf(what, sizeof what, "gdn_chunk_fwd o [%s%s]", tc->name, tag);
    check(what, o, ro, tv, 1e-4);
    snprintf(what, sizeof what, "gdn_chunk_fwd state_out [%s%s]", tc->name, tag);
    check(what, s1, rs1, sn, 1e-4);
    if (f16) { /* the oracle on unrounded inputs; the halves read as fp32 (io_f16 = 0) */
      double *q32 = to_d(q, tk), *k32 = to_d(k, tk), *v32 = to_d(v, tv), *o32 = th_dalloc(tv);
      ref_gdn_chunk_fwd(o32, NULL, q32, k32, v32, dg_, db_, tc->has_s0 ? ds0_ : NULL, off, B, H,
                        K, V, scale);
      float *o_32 = th_alloc(tv);
      dtr_lin_desc d32 = d;
      d32.io_f16 = 0;
      th_ok(ctx, dtr_op_gdn_chunk_fwd(ctx, dtr_whole(bo), dtr_whole(bs1), dtr_whole(bq),
                                      dtr_whole(bk), dtr_whole(bv), dtr_whole(bg),
                                      dtr_whole(bb), s0v, dtr_whole(boff), &d32),
            "gdn_chunk_fwd reading the halves as fp32");
      th_get(ctx, bo, o_32, tv * 4);
      snprintf(what, sizeof what, "gdn_chunk_fwd o [%s]", tc->name);
      th_expect_f16(what, o, o_32, ro, o32, tv);
      free(q32); free(k32); free(v32); free(o32); free(o_32);
    }
    free(o); free(s1); free(ro); free(rs1);
    dtr_buf_destroy(ctx, bo);
    dtr_buf_destroy(ctx, bs1);
  } else {
    double *rdq = th_dalloc(tk), *rdk = th_dalloc(tk), *rdv = th_dalloc(tv), *rdg = th_dalloc(th);
    double *rdb = th_dalloc(th), *rds0 = th_dalloc(sn);
    ref_gdn_chunk_bwd(rdq, rdk, rdv, rdg, rdb, rds0, ddo, tc->has_dsout ? ddso : NULL, dq_, dk_,
                      dv_, dg_, db_, tc->has_s0 ? ds0_ : NULL, off, B, H, K, V, scale);
    dtr_buf *bdo = th_buf(ctx, dout, tv * 4), *bdso = th_buf(ctx, dso, sn * 4);
    dtr_buf *gq = th_poison(ctx, tk * 4), *gk = th_poison(ctx, tk * 4), *gv = th_poison(ctx, tv * 4);
    dtr_buf *gg = th_poison(ctx, th * 4), *gb = th_poison(ctx, th * 4), *gs = th_poison(ctx, sn * 4);
    dtr_buf *ws = th_poison(ctx, dtr_op_gdn_chunk_bwd_workspace(&d));
    th_ok(ctx, dtr_op_gdn_chunk_bwd(ctx, dtr_whole(gq), dtr_whole(gk), dtr_whole(gv),
                                    dtr_whole(gg), dtr_whole(gb), dtr_whole(gs), dtr_whole(bdo),
                                    tc->has_dsout ? dtr_whole(bdso) : DTR_NONE, dtr_whole(bq),
                                    dtr_whole(bk), dtr_whole(bv), dtr_whole(bg), dtr_whole(bb),
                                    s0v, dtr_whole(boff), dtr_whole(ws), &d), "gdn_chunk_bwd");
    th_submit(ctx);
    struct { const char *n; dtr_buf *b; double *r; size_t len; } outs[] = {
        {"dq", gq, rdq, tk}, {"dk", gk, rdk, tk}, {"dv", gv, rdv, tv},
        {"dg", gg, rdg, th}, {"dbeta", gb, rdb, th}, {"dstate_in", gs, rds0, sn}};
    for (size_t i = 0; i < 6; i++) {
      float *got = th_alloc(outs[i].len);
      th_get(ctx, outs[i].b, got, outs[i].len * 4);
      snprintf(what, sizeof what, "gdn_chunk_bwd %s [%s%s]", outs[i].n, tc->name, tag);
      check(what, got, outs[i].r, outs[i].len, 2e-4);
      free(got);
      dtr_buf_destroy(ctx, outs[i].b);
      free(outs[i].r);
    }
    dtr_buf_destroy(ctx, ws);
    dtr_buf_destroy(ctx, bdo);
    dtr_buf_destroy(ctx, bdso);
  }
  dtr_buf_destroy(ctx, bq); dtr_buf_destroy(ctx, bk); dtr_buf_destroy(ctx, bv);
  dtr_buf_destroy(ctx, bg); dtr_buf_destroy(ctx, bb); dtr_buf_destroy(ctx, bs0);
  dtr_buf_destroy(ctx, boff);
  free(q); free(k); free(v); free(g); free(beta); free(s0); free(dout); free(dso);
  free(dq_); free(dk_); free(dv_); free(dg_); free(db_); free(ds0_); free(ddo); free(ddso);
}

static const gdn_case cases[] = {
    {"T=200 H=3 K=V=64 state_in", 1, 3, 64, 64, 0, {200}, 1, 1},
    {"T=37<C H=2 K=V=64", 1, 2, 64, 64, 0, {37}, 0, 0},
    {"T=1 H=2 state_in", 1, 2, 64, 64, 0, {1}, 1, 1},
    {"varlen 70,1,130,64 H=2 K=32 V=48 state_in", 4, 2, 32, 48, 0, {70, 1, 130, 64}, 1, 1},
    {"varlen 50,29 H=2 K=16 V=80 chunk=16", 2, 2, 16, 80, 16, {50, 29}, 1, 0},
};

/* A backward longer than one dispatch of the token-walking texel kernels (32768
 * tokens, lavapipe's loop limit): the state and its gradient cross dispatches
 * through the workspace checkpoints; the short sequence ends in the first. Texel
 * path only: the storage-buffer kernels walk a sequence in one invocation, which
 * lavapipe's loop limit cuts short at this length. */
static const gdn_case long_bwd_case = {"varlen 33000,70 H=2 K=V=8 state_in", 2, 2, 8, 8, 0,
                                       {33000, 70}, 1, 1};

/* ---- decode ------------------------------------------------------------- */
/* Prefill P tokens with the chunked forward (state_out), then decode the remaining
 * tokens one at a time; the outputs and the final state must match one long
 * forward. Decode alone from state_in is checked against the oracle step. */
static void test_decode(dtr_ctx *ctx) {
  const int B = 2, H = 3, K = 64, V = 64, T = 40, P = 29;
  size_t n = (size_t)B * T; /* token-major per sequence: we pack sequences varlen */
  int32_t off[3] = {0, T, 2 * T};
  size_t tk = n * H * K, tv = n * H * V, th = n * H, sn = (size_t)B * H * K * V;
  float *q = th_alloc(tk), *k = th_alloc(tk), *v = th_alloc(tv), *g = th_alloc(th), *beta = th_alloc(th);
  float *s0 = th_alloc(sn);
  rand_unit_rows(q, n * H, K);
  rand_unit_rows(k, n * H, K);
  th_rand(v, tv, -1, 1);
  rand_gates(g, beta, th);
  th_rand(s0, sn, -0.5f, 0.5f);
  double scale = 0.125;
  double *ro = th_dalloc(tv), *rs = th_dalloc(sn);
  {
    double *a = to_d(q, tk), *b = to_d(k, tk), *c = to_d(v, tv), *e = to_d(g, th), *f = to_d(beta, th);
    double *s = to_d(s0, sn);
    ref_gdn_chunk_fwd(ro, rs, a, b, c, e, f, s, off, B, H, K, V, scale);
    free(a); free(b); free(c); free(e); free(f); free(s);
  }
  /* Prefill: the first P tokens of each sequence. */
  size_t pk = (size_t)B * P * H * K, pv = (size_t)B * P * H * V, ph = (size_t)B * P * H;
  float *pq = th_alloc(pk), *pkk = th_alloc(pk), *pvv = th_alloc(pv), *pg = th_alloc(ph), *pb = th_alloc(ph);
  for (int b = 0; b < B; b++) {
    size_t src = (size_t)b * T, dst = (size_t)b * P;
    memcpy(pq + dst * H * K, q + src * H * K, (size_t)P * H * K * 4);
    memcpy(pkk + dst * H * K, k + src * H * K, (size_t)P * H * K * 4);
    memcpy(pvv + dst * H * V, v + src * H * V, (size_t)P * H * V * 4);
    memcpy(pg + dst * H, g + src * H, (size_t)P * H * 4);
    memcpy(pb + dst * H, beta + src * H, (size_t)P * H * 4);
  }
  int32_t poff[3] = {0, P, 2 * P};
  dtr_lin_desc d = {B, B * P, H, K, V, (float)scale, 0, 0, 0};
  dtr_buf *bq = th_buf(ctx, pq, pk * 4), *bk = th_buf(ctx, pkk, pk * 4), *bv = th_buf(ctx, pvv, pv * 4);
  dtr_buf *bg = th_buf(ctx, pg, ph * 4), *bb = th_buf(ctx, pb, ph * 4), *bs0 = th_buf(ctx, s0, sn * 4);
  dtr_buf *boff = th_buf(ctx, poff, 12), *bo = th_poison(ctx, pv * 4), *state = th_poison(ctx, sn * 4);
  th_ok(ctx, dtr_op_gdn_chunk_fwd(ctx, dtr_whole(bo), dtr_whole(state), dtr_whole(bq), dtr_whole(bk),
                                  dtr_whole(bv), dtr_whole(bg), dtr_whole(bb), dtr_whole(bs0),
                                  dtr_whole(boff), &d), "prefill");
  /* Decode the rest: one token per sequence per step. */
  dtr_lin_desc dd = {B, B, H, K, V, (float)scale, 0, 0, 0};
  float *o = th_alloc(tv);
  double *ref_o = th_dalloc(tv);
  memcpy(ref_o, ro, tv * sizeof(double));
  dtr_buf *sq = th_buf(ctx, NULL, (size_t)B * H * K * 4), *sk = th_buf(ctx, NULL, (size_t)B * H * K * 4);
  dtr_buf *sv = th_buf(ctx, NULL, (size_t)B * H * V * 4), *sg = th_buf(ctx, NULL, (size_t)B * H * 4);
  dtr_buf *sb = th_buf(ctx, NULL, (size_t)B * H * 4), *so = th_buf(ctx, NULL, (size_t)B * H * V * 4);
  th_get(ctx, bo, o, pv * 4); /* prefill outputs: place them token-major per sequence */
  float *full_o = th_alloc(tv);
  for (int b = 0; b < B; b++)
    memcpy(full_o + (size_t)b * T * H * V, o + (size_t)b * P * H * V, (size_t)P * H * V * 4);
  for (int t = P; t < T; t++) {
    for (int b = 0; b < B; b++) {
      size_t src = (size_t)b * T + t;
      th_ok(ctx, dtr_buf_upload(ctx, sq, (size_t)b * H * K * 4, q + src * H * K, (size_t)H * K * 4), "up");
      th_ok(ctx, dtr_buf_upload(ctx, sk, (size_t)b * H * K * 4, k + src * H * K, (size_t)H * K * 4), "up");
      th_ok(ctx, dtr_buf_upload(ctx, sv, (size_t)b * H * V * 4, v + src * H * V, (size_t)H * V * 4), "up");
      th_ok(ctx, dtr_buf_upload(ctx, sg, (size_t)b * H * 4, g + src * H, (size_t)H * 4), "up");
      th_ok(ctx, dtr_buf_upload(ctx, sb, (size_t)b * H * 4, beta + src * H, (size_t)H * 4), "up");
    }
    th_ok(ctx, dtr_buf_fill(ctx, so, 0, (size_t)B * H * V * 4, 0x7fc0dead), "poison");
    th_ok(ctx, dtr_op_gdn_decode(ctx, dtr_whole(so), dtr_whole(state), dtr_whole(sq), dtr_whole(sk),
                                 dtr_whole(sv), dtr_whole(sg), dtr_whole(sb), &dd), "gdn_decode");
    float *step = th_alloc((size_t)B * H * V);
    th_get(ctx, so, step, (size_t)B * H * V * 4);
    for (int b = 0; b < B; b++)
      memcpy(full_o + ((size_t)b * T + t) * H * V, step + (size_t)b * H * V, (size_t)H * V * 4);
    free(step);
  }
  check("prefill (chunked) then decode: outputs == one long forward", full_o, ref_o, tv, 1e-4);
  float *st = th_alloc(sn);
  th_get(ctx, state, st, sn * 4);
  check("prefill then decode: final state == one long forward", st, rs, sn, 1e-4);

  /* Decode token by token from an initial state == chunked forward of T tokens, and
   * one decode step == the oracle's step. */
  {
    dtr_buf *st2 = th_buf(ctx, s0, sn * 4);
    for (int t = 0; t < T; t++) {
      for (int b = 0; b < B; b++) {
        size_t src = (size_t)b * T + t;
        th_ok(ctx, dtr_buf_upload(ctx, sq, (size_t)b * H * K * 4, q + src * H * K, (size_t)H * K * 4), "up");
        th_ok(ctx, dtr_buf_upload(ctx, sk, (size_t)b * H * K * 4, k + src * H * K, (size_t)H * K * 4), "up");
        th_ok(ctx, dtr_buf_upload(ctx, sv, (size_t)b * H * V * 4, v + src * H * V, (size_t)H * V * 4), "up");
        th_ok(ctx, dtr_buf_upload(ctx, sg, (size_t)b * H * 4, g + src * H, (size_t)H * 4), "up");
        th_ok(ctx, dtr_buf_upload(ctx, sb, (size_t)b * H * 4, beta + src * H, (size_t)H * 4), "up");
      }
      th_ok(ctx, dtr_op_gdn_decode(ctx, dtr_whole(so), dtr_whole(st2), dtr_whole(sq), dtr_whole(sk),
                                   dtr_whole(sv), dtr_whole(sg), dtr_whole(sb), &dd), "gdn_decode");
      float *step = th_alloc((size_t)B * H * V);
      th_get(ctx, so, step, (size_t)B * H * V * 4);
      for (int b = 0; b < B; b++)
        memcpy(full_o + ((size_t)b * T + t) * H * V, step + (size_t)b * H * V, (size_t)H * V * 4);
      free(step);
    }
    check("decode token by token: outputs == chunked-form oracle", full_o, ro, tv, 1e-4);
    th_get(ctx, st2, st, sn * 4);
    check("decode token by token: final state", st, rs, sn, 1e-4);
    dtr_buf_destroy(ctx, st2);
  }
  free(st); free(o); free(full_o); free(ref_o); free(ro); free(rs);
  free(q); free(k); free(v); free(g); free(beta); free(s0);
  free(pq); free(pkk); free(pvv); free(pg); free(pb);
  dtr_buf *bufs[] = {bq, bk, bv, bg, bb, bs0, boff, bo, state, sq, sk, sv, sg, sb, so};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dtr_buf_destroy(ctx, bufs[i]);
}

/* The fp16 decode state (gdn_decode_s16): T steps from a packed initial state
 * against the oracle whose state is rounded to fp16 after every step, as the
 * kernel stores it, and (looser) against the fp32 oracle. K = 64, V = 48:
 * each invocation owns two columns, V is not a multiple of the workgroup. */
static void test_decode_f16(dtr_ctx *ctx) {
  const int B = 2, H = 3, K = 64, V = 48, T = 40;
  size_t hk = (size_t)B * H * K, hv = (size_t)B * H * V, bh = (size_t)B * H,
         sn = (size_t)B * H * K * V;
  float *q = th_alloc(hk * T), *k = th_alloc(hk * T), *v = th_alloc(hv * T),
        *g = th_alloc(bh * T), *beta = th_alloc(bh * T), *s0 = th_alloc(sn);
  rand_unit_rows(q, bh * T, K);
  rand_unit_rows(k, bh * T, K);
  th_rand(v, hv * T, -1, 1);
  rand_gates(g, beta, bh * T);
  th_rand(s0, sn, -0.5f, 0.5f);
  double scale = 0.125;
  dtr_lin_desc dd = {B, B, H, K, V, (float)scale, 0, 1, 0};
  dtr_buf *b32 = th_buf(ctx, s0, sn * 4), *st = th_poison(ctx, sn * 2),
          *back = th_poison(ctx, sn * 4);
  th_ok(ctx, dtr_op_pack_f16(ctx, dtr_whole(st), dtr_whole(b32), (uint32_t)sn), "pack_f16");
  double *S16 = th_dalloc(sn), *S32 = to_d(s0, sn), *od = th_dalloc(hv);
  for (size_t i = 0; i < sn; i++) S16[i] = th_half(s0[i]);
  double *o16 = th_dalloc(hv * T), *o32 = th_dalloc(hv * T);
  float *o = th_alloc(hv * T), *sf = th_alloc(sn);
  dtr_buf *sq = th_buf(ctx, NULL, hk * 4), *sk = th_buf(ctx, NULL, hk * 4),
          *sv = th_buf(ctx, NULL, hv * 4), *sg = th_buf(ctx, NULL, bh * 4),
          *sb = th_buf(ctx, NULL, bh * 4), *so = th_poison(ctx, hv * 4);
  for (int t = 0; t < T; t++) { /* step t reads rows t*B*H .. of each input */
    double *a = to_d(q + t * hk, hk), *b = to_d(k + t * hk, hk), *c = to_d(v + t * hv, hv),
           *e = to_d(g + t * bh, bh), *f = to_d(beta + t * bh, bh);
    ref_gdn_decode(od, S16, a, b, c, e, f, B, H, K, V, scale);
    for (size_t i = 0; i < sn; i++) S16[i] = th_half(S16[i]);
    memcpy(o16 + t * hv, od, hv * sizeof(double));
    ref_gdn_decode(od, S32, a, b, c, e, f, B, H, K, V, scale);
    memcpy(o32 + t * hv, od, hv * sizeof(double));
    free(a), free(b), free(c), free(e), free(f);
    th_ok(ctx, dtr_buf_upload(ctx, sq, 0, q + t * hk, hk * 4), "up");
    th_ok(ctx, dtr_buf_upload(ctx, sk, 0, k + t * hk, hk * 4), "up");
    th_ok(ctx, dtr_buf_upload(ctx, sv, 0, v + t * hv, hv * 4), "up");
    th_ok(ctx, dtr_buf_upload(ctx, sg, 0, g + t * bh, bh * 4), "up");
    th_ok(ctx, dtr_buf_upload(ctx, sb, 0, beta + t * bh, bh * 4), "up");
    th_ok(ctx, dtr_op_gdn_decode(ctx, dtr_whole(so), dtr_whole(st), dtr_whole(sq), dtr_whole(sk),
                                 dtr_whole(sv), dtr_whole(sg), dtr_whole(sb), &dd),
          "gdn_decode_s16");
    th_get(ctx, so, o + t * hv, hv * 4);
  }
  check("fp16 state: decode == oracle with an fp16 state", o, o16, hv * T, 1e-4);
  check("fp16 state: decode == fp32 oracle (looser)", o, o32, hv * T, 3e-3);
  th_ok(ctx, dtr_op_unpack_f16(ctx, dtr_whole(back), dtr_whole(st), (uint32_t)sn), "unpack");
  th_get(ctx, back, sf, sn * 4);
  check("fp16 state: final state == oracle's fp16 state", sf, S16, sn, 1e-4);
  free(q), free(k), free(v), free(g), free(beta), free(s0), free(S16), free(S32), free(od),
      free(o16), free(o32), free(o), free(sf);
  dtr_buf *bufs[] = {b32, st, back, sq, sk, sv, sg, sb, so};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dtr_buf_destroy(ctx, bufs[i]);
}

/* ---- a long sequence stays finite ------------------------------------- */
static void test_long(dtr_ctx *ctx) {
  const int T = 8192, H = 2, K = 64, V = 64;
  size_t tk = (size_t)T * H * K, tv = (size_t)T * H * V, th = (size_t)T * H;
  float *q = th_alloc(tk), *k = th_alloc(tk), *v = th_alloc(tv), *g = th_alloc(th), *beta = th_alloc(th);
  rand_unit_rows(q, (size_t)T * H, K);
  rand_unit_rows(k, (size_t)T * H, K);
  th_rand(v, tv, -1, 1);
  rand_gates(g, beta, th);
  int32_t off[2] = {0, T};
  dtr_lin_desc d = {1, T, H, K, V, 0.125f, 0, 0, 0};
  dtr_buf *bq = th_buf(ctx, q, tk * 4), *bk = th_buf(ctx, k, tk * 4), *bv = th_buf(ctx, v, tv * 4);
  dtr_buf *bg = th_buf(ctx, g, th * 4), *bb = th_buf(ctx, beta, th * 4), *boff = th_buf(ctx, off, 8);
  dtr_buf *bo = th_poison(ctx, tv * 4), *bs = th_poison(ctx, (size_t)H * K * V * 4);
  th_ok(ctx, dtr_op_gdn_chunk_fwd(ctx, dtr_whole(bo), dtr_whole(bs), dtr_whole(bq), dtr_whole(bk),
                                  dtr_whole(bv), dtr_whole(bg), dtr_whole(bb), DTR_NONE,
                                  dtr_whole(boff), &d), "gdn_chunk_fwd long");
  th_submit(ctx);
  float *o = th_alloc(tv);
  th_get(ctx, bo, o, tv * 4);
  size_t bad = 0;
  double mx = 0;
  for (size_t i = 0; i < tv; i++) {
    if (!isfinite(o[i])) bad++;
    else mx = fmax(mx, fabs(o[i]));
  }
  th_expect(bad == 0 && mx < 1e3, "T=%d H=%d forward finite (%zu non-finite, max |o| %.3g)", T, H,
            bad, mx);
  /* And it still matches the oracle on the last 64 tokens. */
  double *ro = th_dalloc(tv);
  {
    double *a = to_d(q, tk), *b = to_d(k, tk), *c = to_d(v, tv), *e = to_d(g, th), *f = to_d(beta, th);
    ref_gdn_chunk_fwd(ro, NULL, a, b, c, e, f, NULL, off, 1, H, K, V, 0.125);
    free(a); free(b); free(c); free(e); free(f);
  }
  check("T=8192 forward vs oracle", o, ro, tv, 1e-4);
  free(ro); free(o); free(q); free(k); free(v); free(g); free(beta);
  dtr_buf *bufs[] = {bq, bk, bv, bg, bb, boff, bo, bs};
  for (size_t i = 0; i < 8; i++) dtr_buf_destroy(ctx, bufs[i]);
}

/* ---- gates and L2 norm on the device ----------------------------------- */
static void test_gates_l2(dtr_ctx *ctx) {
  const uint32_t N = 1000, H = 6;
  size_t n = (size_t)N * H;
  float *a = th_alloc(n), *b = th_alloc(n), *al = th_alloc(H), *dt = th_alloc(H);
  float *dg = th_alloc(n), *dbt = th_alloc(n), *acc0 = th_alloc(2 * H);
  th_rand(a, n, -5, 3);
  th_rand(b, n, -5, 5);
  for (uint32_t h = 0; h < H; h++) {
    al[h] = (float)log(16 * (0.01 + 0.99 * th_randu()));
    double dtv = exp(log(1e-3) + th_randu() * (log(0.1) - log(1e-3)));
    dt[h] = (float)(dtv + log(-expm1(-dtv)));
  }
  th_rand(dg, n, -1, 1);
  th_rand(dbt, n, -1, 1);
  th_rand(acc0, 2 * H, -1, 1);
  double *ra = to_d(a, n), *rb = to_d(b, n), *ral = to_d(al, H), *rdt = to_d(dt, H);
  double *rg = th_dalloc(n), *rbeta = th_dalloc(n);
  ref_gdn_gate_fwd(rg, rbeta, ra, rb, ral, rdt, N, (int)H);
  dtr_buf *ba = th_buf(ctx, a, n * 4), *bb = th_buf(ctx, b, n * 4), *bal = th_buf(ctx, al, H * 4);
  dtr_buf *bdt = th_buf(ctx, dt, H * 4), *bg = th_poison(ctx, n * 4), *bbeta = th_poison(ctx, n * 4);
  th_ok(ctx, dtr_op_gdn_gate_fwd(ctx, dtr_whole(bg), dtr_whole(bbeta), dtr_whole(ba), dtr_whole(bb),
                                 dtr_whole(bal), dtr_whole(bdt), N, H), "gdn_gate_fwd");
  th_submit(ctx);
  float *got = th_alloc(n);
  th_get(ctx, bg, got, n * 4);
  th_check("gdn_gate_fwd g", got, rg, n, 1e-5, 0, 1e-5);
  th_get(ctx, bbeta, got, n * 4);
  th_check("gdn_gate_fwd beta", got, rbeta, n, 1e-5, 0, 1e-5);

  /* Backward: da, db written; dA_log, ddt_bias accumulate onto their contents. */
  double *rda = th_dalloc(n), *rdb = th_dalloc(n), *rdal = th_dalloc(H), *rddt = th_dalloc(H);
  for (uint32_t h = 0; h < H; h++) { rdal[h] = acc0[h]; rddt[h] = acc0[H + h]; }
  double *rdg = to_d(dg, n), *rdbt = to_d(dbt, n);
  ref_gdn_gate_bwd(rda, rdb, rdal, rddt, rdg, rdbt, ra, rb, ral, rdt, N, (int)H);
  dtr_buf *bdg = th_buf(ctx, dg, n * 4), *bdbt = th_buf(ctx, dbt, n * 4);
  dtr_buf *bda = th_poison(ctx, n * 4), *bdb = th_poison(ctx, n * 4);
  dtr_buf *bdal = th_buf(ctx, acc0, H * 4), *bddt = th_buf(ctx, acc0 + H, H * 4);
  th_ok(ctx, dtr_op_gdn_gate_bwd(ctx, dtr_whole(bda), dtr_whole(bdb), dtr_whole(bdal),
                                 dtr_whole(bddt), dtr_whole(bdg), dtr_whole(bdbt), dtr_whole(ba),
                                 dtr_whole(bb), dtr_whole(bal), dtr_whole(bdt), N, H),
        "gdn_gate_bwd");
  th_submit(ctx);
  th_get(ctx, bda, got, n * 4);
  th_check("gdn_gate_bwd da", got, rda, n, 1e-5, 1e-7, 1e-5);
  th_get(ctx, bdb, got, n * 4);
  th_check("gdn_gate_bwd db", got, rdb, n, 1e-5, 1e-7, 1e-5);
  float hg[16], hg2[16];
  th_get(ctx, bdal, hg, H * 4);
  check("gdn_gate_bwd dA_log (accumulated)", hg, rdal, H, 1e-5);
  th_get(ctx, bddt, hg, H * 4);
  check("gdn_gate_bwd ddt_bias (accumulated)", hg, rddt, H, 1e-5);
  /* Deterministic: a second run adds exactly the same bits. */
  th_ok(ctx, dtr_buf_upload(ctx, bddt, 0, acc0 + H, H * 4), "up");
  th_ok(ctx, dtr_op_gdn_gate_bwd(ctx, dtr_whole(bda), dtr_whole(bdb), dtr_whole(bdal),
                                 dtr_whole(bddt), dtr_whole(bdg), dtr_whole(bdbt), dtr_whole(ba),
                                 dtr_whole(bb), dtr_whole(bal), dtr_whole(bdt), N, H),
        "gdn_gate_bwd");
  th_submit(ctx);
  th_get(ctx, bddt, hg2, H * 4);
  th_expect(!memcmp(hg, hg2, H * 4), "gdn_gate_bwd ddt_bias is bitwise reproducible");

  /* L2 norm over rows of 64 (and of 7: short rows). */
  const uint32_t rows[2] = {3000, 77}, cols[2] = {64, 7};
  for (int c = 0; c < 2; c++) {
    size_t m = (size_t)rows[c] * cols[c];
    float *x = th_alloc(m), *dy = th_alloc(m), *y = th_alloc(m);
    th_rand(x, m, -2, 2);
    th_rand(dy, m, -1, 1);
    double *rx = to_d(x, m), *rdy = to_d(dy, m), *ry = th_dalloc(m), *rdx = th_dalloc(m);
    ref_l2norm_fwd(ry, rx, rows[c], (int)cols[c], 1e-6);
    ref_l2norm_bwd(rdx, rdy, rx, rows[c], (int)cols[c], 1e-6);
    dtr_buf *bx = th_buf(ctx, x, m * 4), *bdy = th_buf(ctx, dy, m * 4);
    dtr_buf *by = th_poison(ctx, m * 4), *bdx = th_poison(ctx, m * 4);
    th_ok(ctx, dtr_op_l2norm_fwd(ctx, dtr_whole(by), dtr_whole(bx), rows[c], cols[c], 1e-6f), "l2");
    th_ok(ctx, dtr_op_l2norm_bwd(ctx, dtr_whole(bdx), dtr_whole(bdy), dtr_whole(bx), rows[c],
                                 cols[c], 1e-6f), "l2 bwd");
    th_submit(ctx);
    char what[64];
    th_get(ctx, by, y, m * 4);
    snprintf(what, sizeof what, "l2norm_fwd C=%u", cols[c]);
    th_check(what, y, ry, m, 1e-5, 1e-6, 1e-5);
    th_get(ctx, bdx, y, m * 4);
    snprintf(what, sizeof what, "l2norm_bwd C=%u", cols[c]);
    check(what, y, rdx, m, 1e-5);
    free(x); free(dy); free(y); free(rx); free(rdy); free(ry); free(rdx);
    dtr_buf_destroy(ctx, bx); dtr_buf_destroy(ctx, bdy); dtr_buf_destroy(ctx, by);
    dtr_buf_destroy(ctx, bdx);
  }
  /* A bad shape is an error, not a crash. */
  th_expect(dtr_op_l2norm_fwd(ctx, dtr_whole(ba), dtr_whole(bb), (uint32_t)n, 2, 1e-6f) ==
                DTR_ERR_INVALID, "l2norm_fwd rejects a view too small for the shape");
  free(a); free(b); free(al); free(dt); free(dg); free(dbt); free(acc0); free(got);
  free(ra); free(rb); free(ral); free(rdt); free(rg); free(rbeta); free(rda); free(rdb);
  free(rdal); free(rddt); free(rdg); free(rdbt);
  dtr_buf *bufs[] = {ba, bb, bal, bdt, bg, bbeta, bdg, bdbt, bda, bdb, bdal, bddt};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dtr_buf_destroy(ctx, bufs[i]);
}

/* GDN_BENCH=1: median ms of the chunked forward, forward+backward and decode
 * (H=8, K=V=64, B=1), warm-up first. Not part of the test run. */
static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static void bench(dtr_ctx *ctx) {
  const int H = 8, K = 64, V = 64, Ts[3] = {512, 2048, 8192};
  int nT = getenv("GDN_BENCH_NT") ? atoi(getenv("GDN_BENCH_NT")) : 3;
  for (int ti = 0; ti < nT; ti++) {
    int T = Ts[ti];
    size_t tk = (size_t)T * H * K, th = (size_t)T * H;
    float *x = th_alloc(tk), *g = th_alloc(th), *b = th_alloc(th);
    rand_unit_rows(x, (size_t)T * H, K);
    rand_gates(g, b, th);
    int32_t off[2] = {0, T};
    dtr_lin_desc d = {1, T, H, K, V, 0.125f, 0, 0, 0};
    dtr_buf *bq = th_buf(ctx, x, tk * 4), *bg = th_buf(ctx, g, th * 4), *bb = th_buf(ctx, b, th * 4);
    dtr_buf *boff = th_buf(ctx, off, 8), *bo = th_buf(ctx, NULL, tk * 4), *bs = th_buf(ctx, NULL, (size_t)H * K * V * 4);
    dtr_buf *g1 = th_buf(ctx, NULL, tk * 4), *g2 = th_buf(ctx, NULL, tk * 4), *g3 = th_buf(ctx, NULL, tk * 4);
    dtr_buf *g4 = th_buf(ctx, NULL, th * 4), *g5 = th_buf(ctx, NULL, th * 4);
    dtr_buf *ws = th_buf(ctx, NULL, dtr_op_gdn_chunk_bwd_workspace(&d));
    double tf[4], tb[4];
    for (int r = 0; r < 4; r++) {
      double t0 = now_ms();
      th_ok(ctx, dtr_op_gdn_chunk_fwd(ctx, dtr_whole(bo), dtr_whole(bs), dtr_whole(bq), dtr_whole(bq),
                                      dtr_whole(bq), dtr_whole(bg), dtr_whole(bb), DTR_NONE,
                                      dtr_whole(boff), &d), "fwd");
      th_submit(ctx);
      double t1 = now_ms();
      th_ok(ctx, dtr_op_gdn_chunk_bwd(ctx, dtr_whole(g1), dtr_whole(g2), dtr_whole(g3), dtr_whole(g4),
                                      dtr_whole(g5), DTR_NONE, dtr_whole(bq), DTR_NONE, dtr_whole(bq),
                                      dtr_whole(bq), dtr_whole(bq), dtr_whole(bg), dtr_whole(bb),
                                      DTR_NONE, dtr_whole(boff), dtr_whole(ws), &d), "bwd");
      th_submit(ctx);
      double t2 = now_ms();
      tf[r] = t1 - t0;
      tb[r] = t2 - t0;
    }
    qsort(tf + 1, 3, sizeof(double), cmp_d);
    qsort(tb + 1, 3, sizeof(double), cmp_d);
    printf("bench T=%d H=%d K=V=%d: forward %.2f ms, forward+backward %.2f ms (median of 3)\n", T, H,
           K, tf[2], tb[2]);
    dtr_buf *bufs[] = {bq, bg, bb, boff, bo, bs, g1, g2, g3, g4, g5, ws};
    for (size_t i = 0; i < 12; i++) dtr_buf_destroy(ctx, bufs[i]);
    free(x); free(g); free(b);
  }
  /* decode: one token, B = 1, H = 8 */
  float q[8 * 64], gg[8], bt[8];
  rand_unit_rows(q, 8, 64);
  rand_gates(gg, bt, 8);
  dtr_lin_desc d = {1, 1, 8, 64, 64, 0.125f, 0, 0, 0};
  dtr_buf *bq = th_buf(ctx, q, sizeof q), *bg = th_buf(ctx, gg, 32), *bb = th_buf(ctx, bt, 32);
  dtr_buf *bo = th_buf(ctx, NULL, sizeof q), *st = th_buf(ctx, NULL, 8 * 64 * 64 * 4);
  th_ok(ctx, dtr_buf_fill(ctx, st, 0, 8 * 64 * 64 * 4, 0), "fill");
  double td[21];
  for (int r = 0; r < 21; r++) {
    double t0 = now_ms();
    th_ok(ctx, dtr_op_gdn_decode(ctx, dtr_whole(bo), dtr_whole(st), dtr_whole(bq), dtr_whole(bq),
                                 dtr_whole(bq), dtr_whole(bg), dtr_whole(bb), &d), "decode");
    th_submit(ctx);
    td[r] = now_ms() - t0;
  }
  qsort(td + 1, 20, sizeof(double), cmp_d);
  printf("bench decode step H=8 K=V=64 B=1: %.3f ms (median of 20, submit included)\n",
         (td[10] + td[11]) / 2);
  dtr_buf *bufs[] = {bq, bg, bb, bo, st};
  for (size_t i = 0; i < 5; i++) dtr_buf_destroy(ctx, bufs[i]);
}

int main(void) {
  dtr_ctx *ctx = th_ctx();
  if (getenv("GDN_BENCH")) {
    /* Timing without the validation layer the harness forces on. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    dtr_ctx_options opt = DTR_CTX_DEFAULTS;
    opt.validate = 0;
    char err[256];
    dtr_status st;
    dtr_ctx *bctx = dtr_ctx_create(&opt, &st, err, sizeof err);
    if (!bctx) return 1;
    bench(bctx);
    dtr_ctx_profile_report(bctx, stdout);
    dtr_ctx_destroy(bctx);
    return th_finish();
  }
  test_ref_fd();
  test_ref_fd_gates();
  /* Both forms of the forward (the op picks recurrent on CPU devices), the
   * recurrent one on storage and on texel buffers. */
  const char *forms[3] = {"chunk", "recurrent", "recurrent"}, *ftex[3] = {"0", "0", "1"};
  for (int f = 0; f < 3; f++) {
    setenv("DTR_GDN_FWD", forms[f], 1);
    setenv("DTR_GDN_TEXEL", ftex[f], 1);
    printf("forward form: %s%s\n", forms[f], f == 2 ? " (texel buffers)" : "");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(ctx, &cases[i], 0, 0);
    test_long(ctx);
    run_case(ctx, &cases[3], 0, 1); /* fp16 q, k, v: varlen, ragged chunks, two heads */
    run_case(ctx, &cases[4], 0, 1);
  }
  unsetenv("DTR_GDN_FWD");
  unsetenv("DTR_GDN_TEXEL");
  /* Both backward paths (the op takes the texel kernels on CPU devices). */
  const char *texel[2] = {"1", "0"};
  for (int t = 0; t < 2; t++) {
    setenv("DTR_GDN_TEXEL", texel[t], 1);
    printf("backward kernels: %s\n", t ? "storage buffers" : "texel buffers");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(ctx, &cases[i], 1, 0);
    if (!t) run_case(ctx, &long_bwd_case, 1, 0);
    run_case(ctx, &cases[3], 1, 1);
    run_case(ctx, &cases[4], 1, 1);
  }
  /* fp16 q, k, v on a device without RGBA16F texel views: the texel paths must
   * fall back to the storage kernels (an RGBA16F view there would fail the
   * dispatch). The ops consult the device info, so clearing its flag makes this
   * device one. */
  int had = th_set_texel_f16(ctx, 0);
  printf("fp16 q, k, v without RGBA16F texel views (this device: %s)\n", had ? "has them" : "none");
  setenv("DTR_GDN_TEXEL", "1", 1);
  setenv("DTR_GDN_FWD", "recurrent", 1);
  run_case(ctx, &cases[3], 0, 1);
  run_case(ctx, &cases[3], 1, 1);
  th_set_texel_f16(ctx, had);
  unsetenv("DTR_GDN_FWD");
  unsetenv("DTR_GDN_TEXEL");
  test_decode(ctx);
  test_decode_f16(ctx);
  test_gates_l2(ctx);
  return th_finish();
}
