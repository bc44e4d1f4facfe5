/* test_ops.c — every op of ops_misc.c (RMSNorm, RoPE, SwiGLU, embedding,
 * cross-entropy, MSE, sum, add, AdamW) against its double reference in
 * ref_ops.c on fresh random inputs and awkward sizes (1, not multiples of the
 * workgroup, 77, vocabularies of 1000 to 152k), backward outputs against the
 * references' analytic gradients, those against central finite differences, sum
 * and MSE determinism, and argument checking. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref.h"

static dtr_ctx *ctx;

/* ---- helpers -------------------------------------------------------------- */

static dtr_buf *upf(const float *x, size_t n) { return th_buf(ctx, x, n * 4); }
static dtr_buf *upi(const int32_t *x, size_t n) { return th_buf(ctx, x, n * 4); }
static float *getf(dtr_buf *b, size_t n) {
  float *x = th_alloc(n);
  th_get(ctx, b, x, n * 4);
  return x;
}
static float *randf(size_t n, float lo, float hi) {
  float *x = th_alloc(n);
  th_rand(x, n, lo, hi);
  return x;
}
static double maxabs(const double *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = fabs(x[i]) > m ? fabs(x[i]) : m;
  return m;
}
/* fp32 against the double reference: relative error 1e-5 overall, and each element
 * within 1e-5 of the largest reference magnitude (cancellation makes small
 * elements' own relative error meaningless). */
static int chk(const char *what, const float *got, const double *ref, size_t n) {
  return th_check(what, got, ref, n, 1e-5, 1e-5 * maxabs(ref, n) + 1e-30, 1e-5);
}
static double *todouble(const float *x, size_t n) {
  double *d = th_dalloc(n);
  for (size_t i = 0; i < n; ++i) d[i] = x[i];
  return d;
}
#define OK(call) th_ok(ctx, (call), #call)
#define V(b) dtr_whole(b)

/* ---- finite differences ----------------------------------------------------
 * The references take float inputs, so the perturbed operand lives as doubles
 * (xd) mirrored into floats (xf) before each evaluation. Inputs are quantised to
 * multiples of 2^-12 and h = 2^-10, so x +- h is exact in float and the central
 * difference sees exactly the perturbation it divides by. */
#define FD_H (1.0 / 1024)
typedef struct fdop {
  double *xd;
  float *xf;
  size_t n;
  double (*eval)(struct fdop *self);
} fdop;
static double fd_eval(void *ud) {
  fdop *o = ud;
  for (size_t i = 0; i < o->n; ++i) o->xf[i] = (float)o->xd[i];
  return o->eval(o);
}
static void quant(float *x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = roundf(x[i] * 4096.0f) / 4096.0f;
}
/* Checks analytic (n) against the finite-difference gradient of o over xf. */
static void fd_check(const char *what, fdop *o, float *xf, size_t n, const double *analytic) {
  o->xf = xf;
  o->n = n;
  o->xd = todouble(xf, n);
  double *fd = th_dalloc(n);
  th_fd(fd_eval, o, o->xd, n, FD_H, fd);
  for (size_t i = 0; i < n; ++i) xf[i] = (float)o->xd[i];
  th_check_d(what, analytic, fd, n, 1e-6);
  free(fd);
  free(o->xd);
}
/* sum_i g_i y_i: a scalar whose gradient wrt y is g. */
static double dot(const double *g, const double *y, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += g[i] * y[i];
  return s;
}

/* ---- RMSNorm -------------------------------------------------------------- */

static void test_rmsnorm(uint32_t N, uint32_t C) {
  char w[96];
  size_t nc = (size_t)N * C;
  float eps = 1e-5f;
  float *inp = randf(nc, -2, 2), *wt = randf(C, 0.5f, 1.5f), *dout = randf(nc, -1, 1);
  float *dw0 = randf(C, -1, 1);
  dtr_buf *b_inp = upf(inp, nc), *b_w = upf(wt, C), *b_dout = upf(dout, nc);
  dtr_buf *b_out = th_poison(ctx, nc * 4), *b_rstd = th_poison(ctx, N * 4);
  dtr_buf *b_dinp = th_poison(ctx, nc * 4), *b_dw = upf(dw0, C);
  OK(dtr_op_rmsnorm_fwd(ctx, V(b_out), V(b_rstd), V(b_inp), V(b_w), N, C, eps));
  OK(dtr_op_rmsnorm_bwd(ctx, V(b_dinp), V(b_dw), V(b_dout), V(b_inp), V(b_w), V(b_rstd), N, C));
  float *out = getf(b_out, nc), *rstd = getf(b_rstd, N), *dinp = getf(b_dinp, nc),
        *dw = getf(b_dw, C);
  double *r_out = th_dalloc(nc), *r_rstd = th_dalloc(N), *r_dinp = th_dalloc(nc);
  double *r_dw = todouble(dw0, C);
  ref_rmsnorm_fwd(r_out, r_rstd, inp, wt, N, C, eps);
  ref_rmsnorm_bwd(r_dinp, r_dw, dout, inp, wt, r_rstd, N, C);
  snprintf(w, sizeof w, "rmsnorm_fwd out N=%u C=%u", N, C);
  chk(w, out, r_out, nc);
  snprintf(w, sizeof w, "rmsnorm_fwd rstd N=%u C=%u", N, C);
  chk(w, rstd, r_rstd, N);
  snprintf(w, sizeof w, "rmsnorm_bwd dinp N=%u C=%u", N, C);
  chk(w, dinp, r_dinp, nc);
  snprintf(w, sizeof w, "rmsnorm_bwd dweight (accumulated) N=%u C=%u", N, C);
  chk(w, dw, r_dw, C);
  dtr_buf *bufs[] = {b_inp, b_w, b_dout, b_out, b_rstd, b_dinp, b_dw};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) dtr_buf_destroy(ctx, bufs[i]);
  free(inp), free(wt), free(dout), free(dw0), free(out), free(rstd), free(dinp), free(dw);
  free(r_out), free(r_rstd), free(r_dinp), free(r_dw);
}

typedef struct {
  fdop o;
  float *inp, *wt;
  const double *g;
  uint32_t N, C;
  double *out, *rstd;
} fd_rms;
static double eval_rms(fdop *self) {
  fd_rms *s = (fd_rms *)self;
  ref_rmsnorm_fwd(s->out, s->rstd, s->inp, s->wt, s->N, s->C, 1e-5f);
  return dot(s->g, s->out, (size_t)s->N * s->C);
}
static void fd_rmsnorm(void) {
  uint32_t N = 3, C = 7;
  size_t nc = (size_t)N * C;
  fd_rms s = {{0}, randf(nc, -2, 2), randf(C, 0.5f, 1.5f), NULL, N, C, th_dalloc(nc),
              th_dalloc(N)};
  quant(s.inp, nc), quant(s.wt, C);
  double *g = th_dalloc(nc), *dinp = th_dalloc(nc), *dw = th_dalloc(C), *rstd = th_dalloc(N);
  float *gf = randf(nc, -1, 1);
  for (size_t i = 0; i < nc; ++i) g[i] = gf[i];
  s.g = g;
  s.o.eval = eval_rms;
  ref_rmsnorm_fwd(s.out, rstd, s.inp, s.wt, N, C, 1e-5f);
  memset(dw, 0, C * sizeof *dw);
  ref_rmsnorm_bwd(dinp, dw, gf, s.inp, s.wt, rstd, N, C);
  fd_check("ref rmsnorm dinp vs finite differences", &s.o, s.inp, nc, dinp);
  fd_check("ref rmsnorm dweight vs finite differences", &s.o, s.wt, C, dw);
  free(s.inp), free(s.wt), free(s.out), free(s.rstd), free(g), free(gf), free(dinp), free(dw),
      free(rstd);
}

/* ---- RoPE ----------------------------------------------------------------- */

static void test_rope(uint32_t N, uint32_t H, uint32_t D, dtr_rope_style style,
                      int32_t maxpos, double theta, const dtr_rope_scaling *sc) {
  char w[128];
  const char *sn = style == DTR_ROPE_NEOX ? "neox" : "gptj";
  size_t n = (size_t)N * H * D;
  float *x = randf(n, -1, 1), *dout = randf(n, -1, 1), *freq = th_alloc(D / 2);
  int32_t *pos = malloc(N * sizeof *pos);
  for (uint32_t i = 0; i < N; ++i) pos[i] = (int32_t)th_randint((uint32_t)maxpos);
  if (N > 1) pos[N - 1] = maxpos - 1;
  dtr_rope_inv_freq(freq, D, theta, sc);
  dtr_buf *b_x = upf(x, n), *b_dout = upf(dout, n), *b_pos = upi(pos, N),
          *b_f = upf(freq, D / 2);
  dtr_buf *b_out = th_poison(ctx, n * 4), *b_dx = th_poison(ctx, n * 4);
  dtr_buf *b_inpl = upf(x, n);
  OK(dtr_op_rope_fwd(ctx, V(b_out), V(b_x), V(b_pos), V(b_f), N, H, D, style));
  OK(dtr_op_rope_bwd(ctx, V(b_dx), V(b_dout), V(b_pos), V(b_f), N, H, D, style));
  OK(dtr_op_rope_fwd(ctx, V(b_inpl), V(b_inpl), V(b_pos), V(b_f), N, H, D, style));
  float *out = getf(b_out, n), *dx = getf(b_dx, n), *inpl = getf(b_inpl, n);
  double *r_out = th_dalloc(n), *r_dx = th_dalloc(n);
  ref_rope_fwd(r_out, x, pos, freq, N, H, D, style);
  ref_rope_bwd(r_dx, dout, pos, freq, N, H, D, style);
  snprintf(w, sizeof w, "rope_fwd %s N=%u H=%u D=%u maxpos=%d", sn, N, H, D, maxpos);
  chk(w, out, r_out, n);
  snprintf(w, sizeof w, "rope_fwd in place %s N=%u H=%u D=%u", sn, N, H, D);
  chk(w, inpl, r_out, n);
  snprintf(w, sizeof w, "rope_bwd %s N=%u H=%u D=%u maxpos=%d", sn, N, H, D, maxpos);
  chk(w, dx, r_dx, n);
  dtr_buf *bufs[] = {b_x, b_dout, b_pos, b_f, b_out, b_dx, b_inpl};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) dtr_buf_destroy(ctx, bufs[i]);
  free(x), free(dout), free(freq), free(pos), free(out), free(dx), free(inpl), free(r_out),
      free(r_dx);
}

typedef struct {
  fdop o;
  float *x, *freq;
  int32_t *pos;
  const double *g;
  uint32_t N, H, D;
  dtr_rope_style style;
  double *out;
} fd_rope_t;
static double eval_rope(fdop *self) {
  fd_rope_t *s = (fd_rope_t *)self;
  ref_rope_fwd(s->out, s->x, s->pos, s->freq, s->N, s->H, s->D, s->style);
  return dot(s->g, s->out, (size_t)s->N * s->H * s->D);
}
static void fd_rope(dtr_rope_style style) {
  uint32_t N = 3, H = 2, D = 6;
  size_t n = (size_t)N * H * D;
  int32_t pos[3] = {0, 5, 1234};
  float freq[3];
  dtr_rope_inv_freq(freq, D, 10000.0, NULL);
  fd_rope_t s = {{0}, randf(n, -1, 1), freq, pos, NULL, N, H, D, style, th_dalloc(n)};
  quant(s.x, n);
  float *gf = randf(n, -1, 1);
  double *g = todouble(gf, n), *dx = th_dalloc(n);
  s.g = g;
  s.o.eval = eval_rope;
  ref_rope_bwd(dx, gf, pos, freq, N, H, D, style);
  fd_check(style == DTR_ROPE_NEOX ? "ref rope_bwd (neox) vs finite differences"
                                  : "ref rope_bwd (gptj) vs finite differences",
           &s.o, s.x, n, dx);
  free(s.x), free(s.out), free(gf), free(g), free(dx);
}

/* Known values: Llama 3.1 (theta 5e5, D 128, llama3 factor 8, low 1, high 4,
 * original 8192), computed independently from transformers' formula. Pair 28 has
 * a wavelength under 2048 (kept), 29 and 32 lie in the smoothed band, 35 and 63
 * beyond 8192 (divided by 8). */
static void test_rope_inv_freq(void) {
  float f[64], g[64];
  dtr_rope_scaling sc = {8.0f, 1.0f, 4.0f, 8192};
  dtr_rope_inv_freq(f, 128, 500000.0, &sc);
  dtr_rope_inv_freq(g, 128, 500000.0, NULL);
  static const struct { int i; double plain, llama3; } want[] = {
      {0, 1.0, 1.0},
      {20, 1.6560440080994446e-02, 1.6560440080994446e-02},
      {28, 3.211445995e-03, 3.211445995e-03},
      {29, 2.616099253e-03, 2.166570764e-03},
      {32, 1.414213562e-03, 5.248461610e-04},
      {35, 7.644969883e-04, 9.556212354e-05},
      {63, 2.455140791131609e-06, 3.068925988914511e-07},
  };
  int ok = 1;
  for (size_t k = 0; k < sizeof want / sizeof *want; ++k) {
    int i = want[k].i;
    if (fabs(f[i] - want[k].llama3) > 1e-6 * want[k].llama3 ||
        fabs(g[i] - want[k].plain) > 1e-6 * want[k].plain) {
      printf("  inv_freq[%d]: plain %.9e (want %.9e), llama3 %.9e (want %.9e)\n", i, g[i],
             want[k].plain, f[i], want[k].llama3);
      ok = 0;
    }
  }
  th_expect(ok, "dtr_rope_inv_freq: theta^(-2i/D) and llama3 scaling at known points");
}

/* ---- SwiGLU --------------------------------------------------------------- */

static void test_swiglu(uint32_t n) {
  char w[96];
  float *gate = randf(n, -6, 6), *up = randf(n, -2, 2), *dout = randf(n, -1, 1);
  dtr_buf *b_g = upf(gate, n), *b_u = upf(up, n), *b_d = upf(dout, n);
  dtr_buf *b_out = th_poison(ctx, n * 4), *b_dg = th_poison(ctx, n * 4),
          *b_du = th_poison(ctx, n * 4);
  OK(dtr_op_swiglu_fwd(ctx, V(b_out), V(b_g), V(b_u), n));
  OK(dtr_op_swiglu_bwd(ctx, V(b_dg), V(b_du), V(b_d), V(b_g), V(b_u), n));
  float *out = getf(b_out, n), *dg = getf(b_dg, n), *du = getf(b_du, n);
  double *r_out = th_dalloc(n), *r_dg = th_dalloc(n), *r_du = th_dalloc(n);
  ref_swiglu_fwd(r_out, gate, up, n);
  ref_swiglu_bwd(r_dg, r_du, dout, gate, up, n);
  snprintf(w, sizeof w, "swiglu_fwd n=%u", n);
  chk(w, out, r_out, n);
  snprintf(w, sizeof w, "swiglu_bwd dgate n=%u", n);
  chk(w, dg, r_dg, n);
  snprintf(w, sizeof w, "swiglu_bwd dup n=%u", n);
  chk(w, du, r_du, n);
  dtr_buf *bufs[] = {b_g, b_u, b_d, b_out, b_dg, b_du};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) dtr_buf_destroy(ctx, bufs[i]);
  free(gate), free(up), free(dout), free(out), free(dg), free(du), free(r_out), free(r_dg),
      free(r_du);
}

typedef struct {
  fdop o;
  float *gate, *up;
  const double *g;
  uint32_t n;
  double *out;
} fd_swiglu_t;
static double eval_swiglu(fdop *self) {
  fd_swiglu_t *s = (fd_swiglu_t *)self;
  ref_swiglu_fwd(s->out, s->gate, s->up, s->n);
  return dot(s->g, s->out, s->n);
}
static void fd_swiglu(void) {
  uint32_t n = 13;
  fd_swiglu_t s = {{0}, randf(n, -4, 4), randf(n, -2, 2), NULL, n, th_dalloc(n)};
  quant(s.gate, n), quant(s.up, n);
  float *gf = randf(n, -1, 1);
  double *g = todouble(gf, n), *dg = th_dalloc(n), *du = th_dalloc(n);
  s.g = g;
  s.o.eval = eval_swiglu;
  ref_swiglu_bwd(dg, du, gf, s.gate, s.up, n);
  fd_check("ref swiglu dgate vs finite differences", &s.o, s.gate, n, dg);
  fd_check("ref swiglu dup vs finite differences", &s.o, s.up, n, du);
  free(s.gate), free(s.up), free(s.out), free(gf), free(g), free(dg), free(du);
}

/* ---- embedding ------------------------------------------------------------ */

static void test_embedding(uint32_t N, uint32_t C, uint32_t Vv) {
  char w[96];
  size_t nc = (size_t)N * C, vc = (size_t)Vv * C;
  float *table = randf(vc, -1, 1), *dout = randf(nc, -1, 1), *dt0 = randf(vc, -1, 1);
  int32_t *ids = malloc(N * sizeof *ids);
  for (uint32_t i = 0; i < N; ++i) ids[i] = (int32_t)th_randint(Vv);
  if (N > 3) ids[1] = -1, ids[2] = (int32_t)Vv; /* out of range: zero row, no gradient */
  dtr_buf *b_t = upf(table, vc), *b_d = upf(dout, nc), *b_ids = upi(ids, N),
          *b_dt = upf(dt0, vc), *b_out = th_poison(ctx, nc * 4);
  OK(dtr_op_embedding_fwd(ctx, V(b_out), V(b_ids), V(b_t), N, C, Vv));
  OK(dtr_op_embedding_bwd(ctx, V(b_dt), V(b_d), V(b_ids), N, C, Vv));
  float *out = getf(b_out, nc), *dt = getf(b_dt, vc);
  double *r_out = th_dalloc(nc), *r_dt = todouble(dt0, vc);
  ref_embedding_fwd(r_out, ids, table, N, C, Vv);
  ref_embedding_bwd(r_dt, dout, ids, N, C, Vv);
  snprintf(w, sizeof w, "embedding_fwd N=%u C=%u V=%u", N, C, Vv);
  th_check(w, out, r_out, nc, 1e-300, 0, 0); /* a copy: exact */
  snprintf(w, sizeof w, "embedding_bwd (accumulated) N=%u C=%u V=%u", N, C, Vv);
  chk(w, dt, r_dt, vc);
  dtr_buf *bufs[] = {b_t, b_d, b_ids, b_dt, b_out};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) dtr_buf_destroy(ctx, bufs[i]);
  free(table), free(dout), free(dt0), free(ids), free(out), free(dt), free(r_out), free(r_dt);
}

typedef struct {
  fdop o;
  float *table;
  int32_t *ids;
  const double *g;
  uint32_t N, C, V;
  double *out;
} fd_emb_t;
static double eval_emb(fdop *self) {
  fd_emb_t *s = (fd_emb_t *)self;
  ref_embedding_fwd(s->out, s->ids, s->table, s->N, s->C, s->V);
  return dot(s->g, s->out, (size_t)s->N * s->C);
}
static void fd_embedding(void) {
  uint32_t N = 6, C = 3, Vv = 4;
  int32_t ids[6] = {1, 3, 1, -1, 0, 1};
  fd_emb_t s = {{0}, randf(Vv * C, -1, 1), ids, NULL, N, C, Vv, th_dalloc(N * C)};
  quant(s.table, Vv * C);
  float *gf = randf(N * C, -1, 1);
  double *g = todouble(gf, N * C), *dt = th_dalloc(Vv * C);
  memset(dt, 0, Vv * C * sizeof *dt);
  s.g = g;
  s.o.eval = eval_emb;
  ref_embedding_bwd(dt, gf, ids, N, C, Vv);
  fd_check("ref embedding dtable vs finite differences", &s.o, s.table, Vv * C, dt);
  free(s.table), free(s.out), free(gf), free(g), free(dt);
}

/* ---- cross-entropy -------------------------------------------------------- */

static void test_crossentropy(uint32_t N, uint32_t Vv) {
  char w[96];
  size_t nv = (size_t)N * Vv;
  float *logits = randf(nv, -5, 5);
  int32_t *tg = malloc(N * sizeof *tg);
  for (uint32_t i = 0; i < N; ++i) tg[i] = (int32_t)th_randint(Vv);
  if (N > 2) tg[1] = -100; /* ignored */
  if (N > 3) logits[3 * (size_t)Vv + th_randint(Vv)] = 30; /* a confident row */
  float scale = 1.0f / N;
  dtr_buf *b_l = upf(logits, nv), *b_t = upi(tg, N);
  dtr_buf *b_loss = th_poison(ctx, N * 4), *b_lse = th_poison(ctx, N * 4),
          *b_d = th_poison(ctx, nv * 4);
  OK(dtr_op_crossentropy_fwd(ctx, V(b_loss), V(b_lse), V(b_l), V(b_t), N, Vv));
  OK(dtr_op_crossentropy_bwd(ctx, V(b_d), V(b_l), V(b_t), V(b_lse), N, Vv, scale));
  float *loss = getf(b_loss, N), *lse = getf(b_lse, N), *d = getf(b_d, nv);
  double *r_loss = th_dalloc(N), *r_lse = th_dalloc(N), *r_d = th_dalloc(nv);
  ref_crossentropy_fwd(r_loss, r_lse, logits, tg, N, Vv);
  ref_crossentropy_bwd(r_d, logits, tg, r_lse, N, Vv, scale);
  snprintf(w, sizeof w, "crossentropy_fwd losses N=%u V=%u", N, Vv);
  chk(w, loss, r_loss, N);
  snprintf(w, sizeof w, "crossentropy_fwd lse N=%u V=%u", N, Vv);
  chk(w, lse, r_lse, N);
  snprintf(w, sizeof w, "crossentropy_bwd dlogits N=%u V=%u", N, Vv);
  chk(w, d, r_d, nv);
  /* in place: dlogits over logits */
  OK(dtr_op_crossentropy_bwd(ctx, V(b_l), V(b_l), V(b_t), V(b_lse), N, Vv, scale));
  float *d2 = getf(b_l, nv);
  snprintf(w, sizeof w, "crossentropy_bwd in place N=%u V=%u", N, Vv);
  chk(w, d2, r_d, nv);
  dtr_buf *bufs[] = {b_l, b_t, b_loss, b_lse, b_d};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) dtr_buf_destroy(ctx, bufs[i]);
  free(logits), free(tg), free(loss), free(lse), free(d), free(d2), free(r_loss), free(r_lse),
      free(r_d);
}

/* A target >= V cannot be checked on the host: its loss must come out NaN. */
static void test_crossentropy_bad_target(void) {
  float logits[2 * 5];
  th_rand(logits, 10, -1, 1);
  int32_t tg[2] = {5, 2};
  dtr_buf *b_l = upf(logits, 10), *b_t = upi(tg, 2), *b_loss = th_poison(ctx, 8),
          *b_lse = th_poison(ctx, 8);
  OK(dtr_op_crossentropy_fwd(ctx, V(b_loss), V(b_lse), V(b_l), V(b_t), 2, 5));
  float loss[2];
  th_get(ctx, b_loss, loss, 8);
  th_expect(isnan(loss[0]) && !isnan(loss[1]), "crossentropy_fwd: target >= V gives a NaN loss");
  dtr_buf_destroy(ctx, b_l), dtr_buf_destroy(ctx, b_t), dtr_buf_destroy(ctx, b_loss),
      dtr_buf_destroy(ctx, b_lse);
}

typedef struct {
  fdop o;
  float *logits;
  int32_t *tg;
  uint32_t N, V;
  float scale;
  double *loss, *lse;
} fd_ce_t;
static double eval_ce(fdop *self) {
  fd_ce_t *s = (fd_ce_t *)self;
  ref_crossentropy_fwd(s->loss, s->lse, s->logits, s->tg, s->N, s->V);
  double t = 0;
  for (uint32_t i = 0; i < s->N; ++i) t += s->loss[i];
  return s->scale * t;
}
static void fd_crossentropy(void) {
  uint32_t N = 3, Vv = 7;
  int32_t tg[3] = {2, -1, 6};
  fd_ce_t s = {{0}, randf(N * Vv, -3, 3), tg, N, Vv, 0.5f, th_dalloc(N), th_dalloc(N)};
  quant(s.logits, N * Vv);
  double *d = th_dalloc(N * Vv);
  s.o.eval = eval_ce;
  ref_crossentropy_fwd(s.loss, s.lse, s.logits, tg, N, Vv);
  ref_crossentropy_bwd(d, s.logits, tg, s.lse, N, Vv, s.scale);
  fd_check("ref crossentropy dlogits vs finite differences", &s.o, s.logits, N * Vv, d);
  free(s.logits), free(s.loss), free(s.lse), free(d);
}

/* ---- MSE ------------------------------------------------------------------ */

static void test_mse(uint32_t n) {
  char w[96];
  float *y = randf(n, -1, 1), *t = randf(n, -1, 1);
  float scale = 0.75f;
  uint32_t np = dtr_op_mse_partials(n);
  dtr_buf *b_y = upf(y, n), *b_t = upf(t, n), *b_p = th_poison(ctx, np * 4);
  dtr_buf *b_loss = th_poison(ctx, 4), *b_loss2 = th_poison(ctx, 4), *b_dy = th_poison(ctx, n * 4);
  OK(dtr_op_mse_fwd(ctx, V(b_loss), V(b_p), V(b_y), V(b_t), n));
  OK(dtr_op_mse_fwd(ctx, V(b_loss2), V(b_p), V(b_y), V(b_t), n));
  OK(dtr_op_mse_bwd(ctx, V(b_dy), V(b_y), V(b_t), n, scale));
  float loss, loss2, *dy = getf(b_dy, n);
  th_get(ctx, b_loss, &loss, 4);
  th_get(ctx, b_loss2, &loss2, 4);
  double r_loss, *r_dy = th_dalloc(n);
  ref_mse_fwd(&r_loss, y, t, n);
  ref_mse_bwd(r_dy, y, t, n, scale);
  snprintf(w, sizeof w, "mse_fwd n=%u (%u partials)", n, np);
  chk(w, &loss, &r_loss, 1);
  th_expect(memcmp(&loss, &loss2, 4) == 0, "mse_fwd n=%u twice: same bits", n);
  snprintf(w, sizeof w, "mse_bwd n=%u", n);
  chk(w, dy, r_dy, n);
  dtr_buf *bufs[] = {b_y, b_t, b_p, b_loss, b_loss2, b_dy};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) dtr_buf_destroy(ctx, bufs[i]);
  free(y), free(t), free(dy), free(r_dy);
}

typedef struct {
  fdop o;
  float *y, *t;
  uint32_t n;
} fd_mse_t;
static double eval_mse(fdop *self) {
  fd_mse_t *s = (fd_mse_t *)self;
  double l;
  ref_mse_fwd(&l, s->y, s->t, s->n);
  return 0.75 * l;
}
static void fd_mse(void) {
  uint32_t n = 11;
  fd_mse_t s = {{0}, randf(n, -1, 1), randf(n, -1, 1), n};
  quant(s.y, n), quant(s.t, n);
  double *dy = th_dalloc(n);
  s.o.eval = eval_mse;
  ref_mse_bwd(dy, s.y, s.t, n, 0.75f);
  fd_check("ref mse dy vs finite differences", &s.o, s.y, n, dy);
  free(s.y), free(s.t), free(dy);
}

/* ---- sum ------------------------------------------------------------------ */

static void test_sum(uint32_t n) {
  char w[96];
  float *x = randf(n ? n : 1, -1, 1);
  float start = 3.25f;
  dtr_buf *b_x = upf(x, n ? n : 1);
  dtr_buf *b_s = th_poison(ctx, 4), *b_s2 = th_poison(ctx, 4), *b_q = th_poison(ctx, 4),
          *b_a = upf(&start, 1);
  OK(dtr_op_sum(ctx, V(b_s), V(b_x), n, 0, 0));
  OK(dtr_op_sum(ctx, V(b_s2), V(b_x), n, 0, 0));
  OK(dtr_op_sum(ctx, V(b_q), V(b_x), n, 1, 0));
  OK(dtr_op_sum(ctx, V(b_a), V(b_x), n, 1, 1));
  OK(dtr_op_sum(ctx, V(b_a), V(b_x), n, 1, 1)); /* two tensors' worth of squares */
  float s, s2, q, a;
  th_get(ctx, b_s, &s, 4), th_get(ctx, b_s2, &s2, 4), th_get(ctx, b_q, &q, 4),
      th_get(ctx, b_a, &a, 4);
  double r_s, r_q, r_a = start;
  ref_sum(&r_s, x, n, 0, 0);
  ref_sum(&r_q, x, n, 1, 0);
  ref_sum(&r_a, x, n, 1, 1);
  ref_sum(&r_a, x, n, 1, 1);
  /* a sum of mixed signs cancels: measure its error against the sum of |x| */
  double sabs = 0;
  for (uint32_t i = 0; i < n; ++i) sabs += fabs(x[i]);
  snprintf(w, sizeof w, "sum n=%u", n);
  th_check(w, &s, &r_s, 1, INFINITY, 1e-6 * sabs + 1e-30, 0);
  snprintf(w, sizeof w, "sum of squares n=%u", n);
  chk(w, &q, &r_q, 1);
  snprintf(w, sizeof w, "sum of squares accumulated twice n=%u", n);
  chk(w, &a, &r_a, 1);
  th_expect(memcmp(&s, &s2, 4) == 0, "sum n=%u twice: same bits", n);
  dtr_buf *bufs[] = {b_x, b_s, b_s2, b_q, b_a};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) dtr_buf_destroy(ctx, bufs[i]);
  free(x);
}

/* ---- add ------------------------------------------------------------------ */

static void test_add(uint32_t n) {
  char w[96];
  float *a = randf(n, -1, 1), *b = randf(n, -1, 1);
  dtr_buf *b_a = upf(a, n), *b_b = upf(b, n), *b_o = th_poison(ctx, n * 4);
  OK(dtr_op_add(ctx, V(b_o), V(b_a), V(b_b), n));
  OK(dtr_op_add(ctx, V(b_a), V(b_a), V(b_b), n)); /* residual: in place */
  float *o = getf(b_o, n), *o2 = getf(b_a, n);
  double *r = th_dalloc(n);
  ref_add(r, a, b, n);
  snprintf(w, sizeof w, "add n=%u", n);
  chk(w, o, r, n);
  snprintf(w, sizeof w, "add in place n=%u", n);
  chk(w, o2, r, n);
  dtr_buf_destroy(ctx, b_a), dtr_buf_destroy(ctx, b_b), dtr_buf_destroy(ctx, b_o);
  free(a), free(b), free(o), free(o2), free(r);
}

/* ---- AdamW ---------------------------------------------------------------- */

static void test_adamw(uint32_t n, int clip) {
  char w[96];
  dtr_adamw_desc d = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, clip ? 1.0f : 0.0f, 0};
  float *p0 = randf(n, -1, 1), *g = th_alloc(n), *zero = th_alloc(n);
  memset(zero, 0, n * 4);
  double *rp = todouble(p0, n), *rm = th_dalloc(n), *rv = th_dalloc(n);
  memset(rm, 0, n * sizeof *rm), memset(rv, 0, n * sizeof *rv);
  dtr_buf *b_p = upf(p0, n), *b_g = th_poison(ctx, n * 4), *b_m = upf(zero, n),
          *b_v = upf(zero, n), *b_n2 = th_poison(ctx, 4);
  for (uint32_t step = 1; step <= 5; ++step) {
    th_rand(g, n, -1, 1);
    OK(dtr_buf_upload(ctx, b_g, 0, g, n * 4));
    d.step = step;
    double gn2 = 0;
    ref_sum(&gn2, g, n, 1, 0);
    if (clip) {
      OK(dtr_op_sum(ctx, V(b_n2), V(b_g), n, 1, 0));
      OK(dtr_op_adamw(ctx, V(b_p), V(b_g), V(b_m), V(b_v), V(b_n2), n, &d));
    } else {
      OK(dtr_op_adamw(ctx, V(b_p), V(b_g), V(b_m), V(b_v), DTR_NONE, n, &d));
    }
    ref_adamw(rp, g, rm, rv, clip ? &gn2 : NULL, n, &d);
  }
  float *p = getf(b_p, n), *m = getf(b_m, n), *v = getf(b_v, n);
  snprintf(w, sizeof w, "adamw param after 5 steps n=%u%s", n, clip ? " clipped" : "");
  chk(w, p, rp, n);
  snprintf(w, sizeof w, "adamw m after 5 steps n=%u%s", n, clip ? " clipped" : "");
  chk(w, m, rm, n);
  snprintf(w, sizeof w, "adamw v after 5 steps n=%u%s", n, clip ? " clipped" : "");
  chk(w, v, rv, n);
  dtr_buf *bufs[] = {b_p, b_g, b_m, b_v, b_n2};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; ++i) dtr_buf_destroy(ctx, bufs[i]);
  free(p0), free(g), free(zero), free(rp), free(rm), free(rv), free(p), free(m), free(v);
}

/* ---- argument checks ------------------------------------------------------ */

static void expect_invalid(dtr_status st, const char *what) {
  th_expect(st == DTR_ERR_INVALID && dtr_ctx_error(ctx)[0], "%s -> DTR_ERR_INVALID (%s)", what,
            dtr_ctx_error(ctx));
}
static void test_args(void) {
  dtr_buf *b = th_poison(ctx, 64 * 4), *s = th_poison(ctx, 4 * 4);
  float f[4];
  expect_invalid(dtr_op_rmsnorm_fwd(ctx, V(s), V(s), V(b), V(b), 4, 16, 1e-5f),
                 "rmsnorm_fwd with out too small");
  expect_invalid(dtr_op_rmsnorm_fwd(ctx, V(b), V(s), V(b), DTR_NONE, 4, 16, 1e-5f),
                 "rmsnorm_fwd without weight");
  expect_invalid(dtr_op_rope_fwd(ctx, V(b), V(b), V(s), V(s), 2, 2, 7, DTR_ROPE_NEOX),
                 "rope_fwd with odd D");
  expect_invalid(dtr_op_rope_fwd(ctx, V(b), V(b), V(s), V(s), 2, 2, 16, DTR_ROPE_NEOX),
                 "rope_fwd with inv_freq shorter than D/2");
  expect_invalid(dtr_op_crossentropy_fwd(ctx, V(s), V(s), V(b), V(s), 4, 17),
                 "crossentropy_fwd with logits too small");
  expect_invalid(dtr_op_embedding_fwd(ctx, V(b), V(s), V(b), 4, 16, 5),
                 "embedding_fwd with table too small");
  expect_invalid(dtr_op_add(ctx, (dtr_view){b, 64, 0}, V(b), V(b), 64),
                 "add with an offset view too small");
  dtr_adamw_desc d = {1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0, 0};
  expect_invalid(dtr_op_adamw(ctx, V(b), V(b), V(b), V(b), DTR_NONE, 16, &d), "adamw step 0");
  /* the context still works after refused calls */
  OK(dtr_op_sum(ctx, V(s), V(s), 0, 0, 0));
  th_get(ctx, s, f, 4);
  th_expect(f[0] == 0.0f, "sum of nothing is 0 after refused calls");
  dtr_buf_destroy(ctx, b), dtr_buf_destroy(ctx, s);
}


/* ---- optional timings (DTR_OPS_BENCH=1): median of 7 submits, after a warm-up */

#include <time.h>
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
typedef void (*bench_fn)(dtr_buf **b);
static void bench(const char *what, bench_fn f, dtr_buf **b, double bytes) {
  double t[7];
  f(b), th_submit(ctx); /* warm-up: pipelines compile lazily */
  for (int i = 0; i < 7; ++i) {
    double t0 = now_ms();
    f(b), th_submit(ctx);
    t[i] = now_ms() - t0;
  }
  qsort(t, 7, sizeof *t, cmp_d);
  printf("bench %-44s %8.3f ms  %6.2f GB/s\n", what, t[3], bytes / t[3] / 1e6);
}
static void b_rms(dtr_buf **b) {
  OK(dtr_op_rmsnorm_fwd(ctx, V(b[0]), V(b[1]), V(b[2]), V(b[3]), 4096, 1024, 1e-5f));
}
static void b_rmsb(dtr_buf **b) {
  OK(dtr_op_rmsnorm_bwd(ctx, V(b[0]), V(b[3]), V(b[2]), V(b[2]), V(b[3]), V(b[1]), 4096, 1024));
}
static void b_rmsbi(dtr_buf **b) {
  OK(dtr_op_rmsnorm_bwd(ctx, V(b[0]), DTR_NONE, V(b[2]), V(b[2]), V(b[3]), V(b[1]), 4096, 1024));
}
static void b_rope(dtr_buf **b) {
  OK(dtr_op_rope_fwd(ctx, V(b[0]), V(b[2]), V(b[4]), V(b[3]), 4096, 8, 128, DTR_ROPE_NEOX));
}
static void b_swiglu(dtr_buf **b) {
  OK(dtr_op_swiglu_fwd(ctx, V(b[0]), V(b[2]), V(b[5]), 1 << 22));
}
static void b_add(dtr_buf **b) { OK(dtr_op_add(ctx, V(b[0]), V(b[2]), V(b[5]), 1 << 22)); }
static void b_sum(dtr_buf **b) { OK(dtr_op_sum(ctx, V(b[1]), V(b[2]), 1 << 22, 1, 0)); }
static void b_adamw(dtr_buf **b) {
  dtr_adamw_desc d = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 3};
  OK(dtr_op_adamw(ctx, V(b[0]), V(b[2]), V(b[5]), V(b[6]), V(b[1]), 1 << 22, &d));
}
static void b_ce(dtr_buf **b) {
  OK(dtr_op_crossentropy_fwd(ctx, V(b[1]), V(b[7]), V(b[2]), V(b[4]), 16, 151936));
}
static void b_ceb(dtr_buf **b) {
  OK(dtr_op_crossentropy_bwd(ctx, V(b[0]), V(b[2]), V(b[4]), V(b[7]), 16, 151936, 1.0f / 16));
}
static void benchmarks(void) {
  size_t n = (size_t)1 << 22; /* 4M floats, the largest operand below */
  float *x = randf(n, -1, 1);
  int32_t *pos = calloc(4096, sizeof *pos);
  for (int i = 0; i < 4096; ++i) pos[i] = i;
  dtr_buf *b[8];
  b[0] = upf(x, n), b[1] = upf(x, 4096), b[2] = upf(x, n), b[3] = upf(x, 1024);
  b[4] = upi(pos, 4096), b[5] = upf(x, n), b[6] = upf(x, n), b[7] = upf(x, 16);
  for (size_t i = 0; i < 1024; ++i) x[i] = fabsf(x[i]);
  OK(dtr_buf_upload(ctx, b[6], 0, x, 1024 * 4)); /* adamw's v must be >= 0 */
  double M = 1 << 22;
  bench("rmsnorm_fwd 4096x1024", b_rms, b, 8.0 * M);
  bench("rmsnorm_bwd 4096x1024 (dinp + dweight)", b_rmsb, b, 16.0 * M);
  bench("rmsnorm_bwd 4096x1024 (dinp only)", b_rmsbi, b, 12.0 * M);
  bench("rope_fwd 4096x8x128 neox", b_rope, b, 8.0 * M);
  bench("swiglu_fwd 4M", b_swiglu, b, 12.0 * M);
  bench("add 4M", b_add, b, 12.0 * M);
  bench("sum of squares 4M (one workgroup)", b_sum, b, 4.0 * M);
  bench("adamw 4M", b_adamw, b, 28.0 * M);
  bench("crossentropy_fwd 16x151936", b_ce, b, 4.0 * 16 * 151936);
  bench("crossentropy_bwd 16x151936", b_ceb, b, 8.0 * 16 * 151936);
  for (int i = 0; i < 8; ++i) dtr_buf_destroy(ctx, b[i]);
  free(x), free(pos);
}

int main(void) {
  ctx = th_ctx();
  if (getenv("DTR_OPS_BENCH")) benchmarks();

  fd_rmsnorm();
  fd_rope(DTR_ROPE_NEOX);
  fd_rope(DTR_ROPE_GPTJ);
  fd_swiglu();
  fd_embedding();
  fd_crossentropy();
  fd_mse();

  test_rmsnorm(1, 64);
  test_rmsnorm(7, 128);
  test_rmsnorm(33, 77);
  test_rmsnorm(257, 1024);
  test_rmsnorm(5, 4099);
  test_rmsnorm(70001, 8); /* more rows than one dispatch dimension holds */

  test_rope_inv_freq();
  dtr_rope_scaling llama3 = {8.0f, 1.0f, 4.0f, 8192};
  test_rope(1, 1, 2, DTR_ROPE_NEOX, 1, 10000.0, NULL);
  test_rope(5, 3, 64, DTR_ROPE_NEOX, 4096, 10000.0, NULL);
  test_rope(17, 4, 128, DTR_ROPE_GPTJ, 131072, 500000.0, &llama3);
  test_rope(33, 8, 128, DTR_ROPE_NEOX, 40960, 1000000.0, NULL);
  test_rope(7, 3, 6, DTR_ROPE_GPTJ, 100, 10000.0, NULL);

  test_swiglu(1);
  test_swiglu(77);
  test_swiglu(1000);
  test_swiglu(1100003); /* more than GRID_GROUPS * 256: grid-stride loop */

  test_embedding(1, 64, 5);
  test_embedding(50, 77, 13);
  test_embedding(300, 128, 1000);

  test_crossentropy(1, 1000);
  test_crossentropy(33, 77);
  test_crossentropy(7, 50000);
  test_crossentropy(3, 151936);
  test_crossentropy_bad_target();

  test_mse(1);
  test_mse(77);
  test_mse(5000);
  test_mse(1000003);

  test_sum(0);
  test_sum(1);
  test_sum(77);
  test_sum(100000);
  test_sum(3000001);

  test_add(1);
  test_add(77);
  test_add(100003);

  test_adamw(77, 0);
  test_adamw(1000, 1);
  test_adamw(77777, 1);

  test_args();
  return th_finish();
}
