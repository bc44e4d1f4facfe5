/* test_blocks.c — whole GLA, Gated DeltaNet and JetBlock layers (host/blocks.c)
 * against a token-by-token recurrent reference in double precision written here
 * from LINEAR_ATTENTION.md, independent of the per-kernel references:
 * the forward over a batch of packed sequences of different lengths, every
 * parameter's and the input's gradient against central finite differences of
 * the reference, prefill-then-decode against one long forward, token-by-token
 * decode against the forward, and initialisation from a GQA teacher. A block
 * that keeps q, k, v in fp16 (io_f16) is checked against the reference that
 * rounds them the same way (gradients: finite differences of it with the
 * rounding residuals frozen), also through prefill then decode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "harness.h"

/* ---- the reference layer ---------------------------------------------------- */

typedef struct refblk {
  const dtr_block_config *c;
  const dtr_param_info *tab;
  uint32_t np;
  double *p; /* parameters in the block's table layout (floats -> double) */
  /* io_f16: q, k, v's fp16 rounding residuals half(x) - x (3 T HD), recorded by
   * each call, or with frozen set added as they were recorded */
  double *res;
  int frozen;
} refblk;

static const double *rp(const refblk *r, const char *name) {
  for (uint32_t i = 0; i < r->np; i++)
    if (!strcmp(r->tab[i].name, name)) return r->p + r->tab[i].offset / 4;
  fprintf(stderr, "no parameter %s\n", name);
  exit(1);
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }
static double silu(double x) { return x * sigm(x); }
static double softplus(double x) { return x > 20 ? x : log1p(exp(x)); }

/* out (T, N) = x (T, K) W^T (+ bias) */
static void proj(double *out, const double *x, const double *W, const double *bias, int T,
                 int N, int K) {
  for (int t = 0; t < T; t++)
    for (int n = 0; n < N; n++) {
      double s = bias ? bias[n] : 0;
      for (int k = 0; k < K; k++) s += x[(size_t)t * K + k] * W[(size_t)n * K + k];
      out[(size_t)t * N + n] = s;
    }
}

static void l2norm_rows(double *x, int rows, int C) {
  for (int r = 0; r < rows; r++) {
    double s = 0;
    for (int c = 0; c < C; c++) s += x[r * C + c] * x[r * C + c];
    double inv = 1.0 / sqrt(s + 1e-6);
    for (int c = 0; c < C; c++) x[r * C + c] *= inv;
  }
}

/* y (T, hid) of the block on packed sequences off (B+1). */
static void ref_block(const refblk *r, double *y, const double *x, const int *off, int B) {
  const dtr_block_config *c = r->c;
  int hid = (int)c->hidden, H = (int)c->heads, D = (int)c->head_dim, HD = H * D, T = off[B];
  double scale = 1.0 / sqrt((double)D);
  double *q = calloc((size_t)T * HD, 8), *k = calloc((size_t)T * HD, 8),
         *v = calloc((size_t)T * HD, 8), *gt = calloc((size_t)T * HD, 8),
         *o = calloc((size_t)T * HD, 8), *tmp = calloc((size_t)T * 4 * HD, 8),
         *tmp2 = calloc((size_t)T * HD, 8), *gk = calloc((size_t)T * HD, 8),
         *g = calloc((size_t)T * H, 8), *beta = calloc((size_t)T * H, 8),
         *S = calloc((size_t)D * D, 8);
  proj(q, x, rp(r, "q_proj.weight"), NULL, T, HD, hid);
  proj(k, x, rp(r, "k_proj.weight"), NULL, T, HD, hid);
  proj(v, x, rp(r, "v_proj.weight"), NULL, T, HD, hid);
  proj(gt, x, rp(r, "g_proj.weight"), NULL, T, HD, hid);
  if (c->kind == DTR_BLOCK_GLA) {
    int R = (int)c->gla_gate_rank;
    proj(tmp, x, rp(r, "gk_proj.0.weight"), NULL, T, R, hid);
    proj(gk, tmp, rp(r, "gk_proj.1.weight"), rp(r, "gk_proj.1.bias"), T, HD, R);
    for (size_t i = 0; i < (size_t)T * HD; i++)
      gk[i] = -softplus(-gk[i]) / c->gla_normalizer; /* logsigmoid / normalizer */
  } else {
    if (c->kind == DTR_BLOCK_GDN) {
      double *src[3] = {q, k, v};
      const char *wn[3] = {"q_conv1d.weight", "k_conv1d.weight", "v_conv1d.weight"};
      for (int m = 0; m < 3; m++) {
        const double *w = rp(r, wn[m]);
        memcpy(tmp2, src[m], (size_t)T * HD * 8);
        for (int b = 0; b < B; b++)
          for (int t = off[b]; t < off[b + 1]; t++)
            for (int ch = 0; ch < HD; ch++) {
              double s = 0;
              for (int i = 0; i < 4; i++) {
                int tt = t - 3 + i;
                if (tt >= off[b]) s += w[ch * 4 + i] * tmp2[(size_t)tt * HD + ch];
              }
              src[m][(size_t)t * HD + ch] = silu(s);
            }
      }
    } else {
      for (size_t i = 0; i < (size_t)T * HD; i++) { q[i] = silu(q[i]); k[i] = silu(k[i]); }
      int R = HD / 8;
      double *h1 = calloc((size_t)T * R, 8);
      proj(h1, x, rp(r, "dynamic_conv.w1.weight"), NULL, T, R, hid);
      for (size_t i = 0; i < (size_t)T * R; i++) h1[i] = silu(h1[i]);
      proj(tmp, h1, rp(r, "dynamic_conv.w2.weight"), rp(r, "dynamic_conv.w2.bias"), T, 4 * HD,
           R);
      free(h1);
      memcpy(tmp2, v, (size_t)T * HD * 8);
      for (int b = 0; b < B; b++)
        for (int t = off[b]; t < off[b + 1]; t++)
          for (int ch = 0; ch < HD; ch++) {
            double s = 0;
            for (int i = 0; i < 4; i++) {
              int tt = t - 3 + i;
              if (tt >= off[b]) s += tmp[(size_t)t * 4 * HD + ch * 4 + i] * tmp2[(size_t)tt * HD + ch];
            }
            v[(size_t)t * HD + ch] = silu(s);
          }
    }
    l2norm_rows(q, T * H, D);
    l2norm_rows(k, T * H, D);
    proj(g, x, rp(r, "a_proj.weight"), NULL, T, H, hid);
    proj(beta, x, rp(r, "b_proj.weight"), NULL, T, H, hid);
    const double *Al = rp(r, "A_log"), *dtb = rp(r, "dt_bias");
    for (int t = 0; t < T; t++)
      for (int h = 0; h < H; h++) {
        g[t * H + h] = -exp(Al[h]) * softplus(g[t * H + h] + dtb[h]);
        beta[t * H + h] = sigm(beta[t * H + h]);
      }
  }
  /* io_f16: the chunked kernels see q, k, v rounded to fp16. Rounding with
   * its residual frozen is smooth, and its finite differences are the
   * gradients the block's backward computes (it passes a gradient through
   * the rounding unchanged). */
  if (c->io_f16) {
    double *qkv[3] = {q, k, v};
    size_t n = (size_t)T * HD;
    for (int m = 0; m < 3; m++)
      for (size_t i = 0; i < n; i++) {
        double *e = &r->res[m * n + i];
        if (!r->frozen) *e = th_half(qkv[m][i]) - qkv[m][i];
        qkv[m][i] += *e;
      }
  }
  /* The recurrences, per sequence and head. */
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      memset(S, 0, (size_t)D * D * 8);
      for (int t = off[b]; t < off[b + 1]; t++) {
        const double *qt = q + (size_t)t * HD + h * D, *kt = k + (size_t)t * HD + h * D,
                     *vt = v + (size_t)t * HD + h * D;
        if (c->kind == DTR_BLOCK_GLA) {
          const double *gt_ = gk + (size_t)t * HD + h * D;
          for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++)
              S[i * D + j] = exp(gt_[i]) * S[i * D + j] + kt[i] * vt[j];
        } else {
          double a = exp(g[t * H + h]), bt = beta[t * H + h];
          for (int i = 0; i < D * D; i++) S[i] *= a;
          for (int j = 0; j < D; j++) {
            double sk = 0;
            for (int i = 0; i < D; i++) sk += S[i * D + j] * kt[i];
            double u = bt * (vt[j] - sk);
            for (int i = 0; i < D; i++) S[i * D + j] += kt[i] * u;
          }
        }
        for (int j = 0; j < D; j++) {
          double s = 0;
          for (int i = 0; i < D; i++) s += S[i * D + j] * qt[i] * scale;
          o[(size_t)t * HD + h * D + j] = s;
        }
      }
    }
  /* Gated RMSNorm per head, then o_proj. */
  const double *w = rp(r, "o_norm.weight");
  for (int row = 0; row < T * H; row++) {
    double ms = 0;
    for (int j = 0; j < D; j++) ms += o[row * D + j] * o[row * D + j];
    double rstd = 1.0 / sqrt(ms / D + c->norm_eps);
    for (int j = 0; j < D; j++)
      tmp2[row * D + j] = o[row * D + j] * rstd * w[j] * silu(gt[row * D + j]);
  }
  proj(y, tmp2, rp(r, "o_proj.weight"), NULL, T, hid, HD);
  free(q); free(k); free(v); free(gt); free(o); free(tmp); free(tmp2); free(gk); free(g);
  free(beta); free(S);
}

/* ---- the checks --------------------------------------------------------------- */

typedef struct fdctx {
  refblk *r;
  double *x, *ry, *y;
  const int *off;
  int B;
  size_t ny;
} fdctx;

static double fd_loss(void *ud) {
  fdctx *f = ud;
  ref_block(f->r, f->y, f->x, f->off, f->B);
  double s = 0;
  for (size_t i = 0; i < f->ny; i++) s += f->y[i] * f->ry[i];
  return s;
}

/* Comparisons with the reference rounding q, k, v to fp16 keep the fp32
 * block's relative limits, with an absolute floor per element of 1e-3 (3e-3
 * for gradients): a value whose fp32 result on the device and double result
 * in the reference straddle a midpoint between halves rounds one half's
 * spacing (2^-11 relative) apart, a few of the 18k q, k, v values per run,
 * and moves the elements near it by up to a few 1e-4 (the most seen over
 * 100 seeds: y 3.3e-4, gradients 1.3e-3). */
#define IO_F16_ATOL 1e-3

/* The block's gradients (gf parameters, dxf the input's) against central
 * finite differences of f's reference loss L = sum(y * dy) at sampled
 * indices, each within atol + 2e-2 |ref|; what names the block. */
static void check_grads(const char *what, fdctx *f, const float *gf, const float *dxf,
                        double atol) {
  const refblk *r = f->r;
  char line[160];
  enum { SAMPLES = 6 };
  for (uint32_t i = 0; i < r->np; i++) {
    size_t n = (size_t)r->tab[i].rows * r->tab[i].cols;
    float got_s[SAMPLES];
    double want[SAMPLES];
    for (int s = 0; s < SAMPLES; s++) {
      size_t j = r->tab[i].offset / 4 + (n <= SAMPLES ? (size_t)s % n : th_randint((uint32_t)n));
      th_fd(fd_loss, f, r->p + j, 1, 1e-5, &want[s]);
      got_s[s] = gf[j];
    }
    snprintf(line, sizeof line, "%s d%s vs finite differences", what, r->tab[i].name);
    th_check(line, got_s, want, SAMPLES, 5e-3, atol, 2e-2);
  }
  float got_s[12];
  double want[12];
  for (int s = 0; s < 12; s++) {
    size_t j = th_randint((uint32_t)f->ny);
    th_fd(fd_loss, f, f->x + j, 1, 1e-5, &want[s]);
    got_s[s] = dxf[j];
  }
  snprintf(line, sizeof line, "%s dx vs finite differences", what);
  th_check(line, got_s, want, 12, 5e-3, atol, 2e-2);
}

/* The fp32 block blk's twin of cfg16 (io_f16 on) on its parameters pf and the
 * inputs of f (x in bx, dy in bdy, offsets in boff; y32 the fp32 block's
 * output): the forward against the reference rounding q, k, v to fp16 as the
 * twin keeps them, the gradients against finite differences of that reference
 * with the rounding residuals frozen, and the activation bytes it saves.
 * Returns the twin. */
static dtr_block *check_io_f16(dtr_ctx *ctx, const dtr_block_config *cfg16, dtr_block *blk,
                               const float *pf, const fdctx *f, const float *y32, dtr_buf *bx,
                               dtr_buf *bdy, dtr_buf *boff) {
  char what[128];
  const char *kn = dtr_block_kind_name(cfg16->kind);
  uint32_t B = (uint32_t)f->B, T = (uint32_t)f->off[B], HD = cfg16->heads * cfg16->head_dim;
  size_t nx = f->ny, pn = dtr_block_param_bytes(blk) / 4;
  dtr_block *b16 = dtr_block_create(ctx, cfg16, T, B, 7);
  if (!b16) th_ok(ctx, DTR_ERR_INVALID, "dtr_block_create (io_f16)");
  th_ok(ctx, dtr_block_set_params(b16, pf), "set params");
  refblk r16 = *f->r;
  r16.c = cfg16;
  r16.res = th_dalloc(3 * (size_t)T * HD);
  fdctx f16 = *f;
  f16.r = &r16;
  float *y = th_alloc(nx), *g = th_alloc(pn), *dx = th_alloc(nx);
  double *yref = th_dalloc(nx);
  dtr_buf *by = th_poison(ctx, nx * 4), *bdx = th_poison(ctx, nx * 4);
  th_ok(ctx, dtr_block_forward(b16, dtr_whole(by), dtr_whole(bx), dtr_whole(boff), B, T),
        "block forward (io_f16)");
  th_get(ctx, by, y, nx * 4);
  ref_block(&r16, yref, f->x, f->off, (int)B); /* records the residuals */
  snprintf(what, sizeof what, "%s io_f16 forward vs the fp16-rounding reference", kn);
  th_check(what, y, yref, nx, 1e-4, IO_F16_ATOL, 1e-2);
  /* the fp32 block, on unrounded q, k, v, misses that reference by more */
  th_expect(th_rel_err(y32, yref, nx) > 1e-4,
            "%s fp32 forward misses the fp16-rounding reference (rel %.2e, io_f16 %.2e)", kn,
            th_rel_err(y32, yref, nx), th_rel_err(y, yref, nx));
  r16.frozen = 1;
  th_ok(ctx, dtr_block_zero_grad(b16), "zero grad");
  th_ok(ctx, dtr_block_backward(b16, dtr_whole(bdx), dtr_whole(bdy)), "block backward (io_f16)");
  th_get(ctx, dtr_block_grad_buf(b16), g, pn * 4);
  th_get(ctx, bdx, dx, nx * 4);
  snprintf(what, sizeof what, "%s io_f16 (residuals frozen)", kn);
  check_grads(what, &f16, g, dx, IO_F16_ATOL * 3);
  size_t a32 = dtr_block_act_bytes(blk), a16 = dtr_block_act_bytes(b16);
  th_expect(a32 - a16 == 3 * (size_t)T * HD * 2,
            "%s io_f16: activations %zu bytes, fp32 %zu: saves %zu (q, k, v at two bytes a "
            "value, no fp32 copy)", kn, a16, a32, a32 - a16);
  dtr_buf_destroy(ctx, by); dtr_buf_destroy(ctx, bdx);
  free(y); free(g); free(dx); free(yref); free(r16.res);
  return b16;
}

static void run_kind(dtr_ctx *ctx, dtr_block_kind kind) {
  const char *kn = dtr_block_kind_name(kind);
  uint32_t hid = 64, H = 4, D = 16; /* sizes whose weights pack without padding: decode fuses */
  int lens[3] = {1, 70, 23}, B = 3; /* 70 crosses a chunk of 64 */
  int off[4] = {0};
  for (int b = 0; b < B; b++) off[b + 1] = off[b] + lens[b];
  uint32_t T = (uint32_t)off[B];
  dtr_block_config cfg = dtr_block_config_default(kind, hid, H);
  cfg.head_dim = D;
  cfg.io_f16 = 0; /* fp32 q, k, v whatever DTR_IO_F16 says; io_f16 below */
  dtr_block *blk = dtr_block_create(ctx, &cfg, T, (uint32_t)B, 7);
  if (!blk) th_ok(ctx, DTR_ERR_INVALID, "dtr_block_create");
  const dtr_param_info *tab;
  uint32_t np = dtr_block_params(blk, &tab);
  size_t pb = dtr_block_param_bytes(blk), pn = pb / 4;
  /* Fresh init, then a perturbation so no parameter is exactly zero and gates
   * are lively; A_log kept in a range whose decays span about 0.5..0.999. */
  float *pf = th_alloc(pn);
  th_ok(ctx, dtr_block_get_params(blk, pf), "get params");
  for (uint32_t i = 0; i < np; i++) {
    float *w = pf + tab[i].offset / 4;
    size_t n = (size_t)tab[i].rows * tab[i].cols;
    for (size_t j = 0; j < n; j++) {
      if (!strcmp(tab[i].name, "A_log")) w[j] = (float)(log(0.2 + 2.0 * th_randu()));
      else if (!strcmp(tab[i].name, "dt_bias")) w[j] = (float)(-3.0 + 2.0 * th_randu());
      else if (strstr(tab[i].name, "proj.weight") || strstr(tab[i].name, ".w1.") ||
               strstr(tab[i].name, ".w2.weight") || strstr(tab[i].name, "gk_proj"))
        w[j] = (float)((th_randu() - 0.5) * 0.6);
      else w[j] += (float)((th_randu() - 0.5) * 0.3);
    }
  }
  th_ok(ctx, dtr_block_set_params(blk, pf), "set params");
  refblk r = {&cfg, tab, np, th_dalloc(pn), NULL, 0};
  for (size_t i = 0; i < pn; i++) r.p[i] = pf[i];

  size_t nx = (size_t)T * hid;
  float *x = th_alloc(nx), *got = th_alloc(nx), *dyf = th_alloc(nx);
  th_rand(x, nx, -1, 1);
  th_rand(dyf, nx, -1, 1);
  double *xd = th_dalloc(nx), *yref = th_dalloc(nx), *dyd = th_dalloc(nx), *ytmp = th_dalloc(nx);
  for (size_t i = 0; i < nx; i++) { xd[i] = x[i]; dyd[i] = dyf[i]; }
  dtr_buf *bx = th_buf(ctx, x, nx * 4), *by = th_poison(ctx, nx * 4),
          *bdy = th_buf(ctx, dyf, nx * 4), *bdx = th_poison(ctx, nx * 4),
          *boff = th_buf(ctx, off, sizeof off);
  char what[128];

  /* forward */
  th_ok(ctx, dtr_block_forward(blk, dtr_whole(by), dtr_whole(bx), dtr_whole(boff), (uint32_t)B, T),
        "block forward");
  th_get(ctx, by, got, nx * 4);
  ref_block(&r, yref, xd, off, B);
  snprintf(what, sizeof what, "%s block forward, lengths 1,70,23", kn);
  th_check(what, got, yref, nx, 1e-4, 1e-5, 1e-2);

  /* backward: parameter and input gradients against finite differences of the
   * reference */
  th_ok(ctx, dtr_block_zero_grad(blk), "zero grad");
  th_ok(ctx, dtr_block_backward(blk, dtr_whole(bdx), dtr_whole(bdy)), "block backward");
  float *gf = th_alloc(pn), *dxf = th_alloc(nx);
  th_get(ctx, dtr_block_grad_buf(blk), gf, pb);
  th_get(ctx, bdx, dxf, nx * 4);
  fdctx f = {&r, xd, dyd, ytmp, off, B, nx};
  check_grads(kn, &f, gf, dxf, 1e-5);
  dtr_block_config cfg16 = cfg;
  cfg16.io_f16 = 1;
  dtr_block *blk16 = check_io_f16(ctx, &cfg16, blk, pf, &f, got, bx, bdy, boff);

  /* prefill the first tokens of each sequence, then decode the rest one token
   * at a time: equals the one long forward. Two sequences, then one (decode of
   * a single sequence fuses its projections, and on CPU devices a GDN step runs
   * as one kernel), then one with that kernel off. */
  size_t bytes32[2] = {0, 0}; /* state bytes of fp32 states of 1 and 2 sequences */
  for (int pass = 0; pass < 6; pass++) {
    /* pass 2: one sequence again with the fused GDN decode kernel turned off;
     * passes 3 and 4: two sequences, then one, with an fp16 state; pass 5: two
     * sequences on the io_f16 block, against the reference rounding its
     * prompts' q, k, v to fp16 */
    int one = pass == 1 || pass == 2 || pass == 4;
    dtr_block *db = pass == 5 ? blk16 : blk;
    if (pass == 2) setenv("DTR_GDN_FUSED", "0", 1);
    dtr_block_set_state_f16(db, pass == 3 || pass == 4);
    int P[2] = {one ? 40 : 5, 40}, L[2] = {one ? 52 : 9, 52}, nb = one ? 1 : 2;
    int poff[3] = {0, P[0], P[0] + P[1]};
    int loff[3] = {0, L[0], L[0] + L[1]};
    dtr_block_state *st = dtr_block_state_create(db, (uint32_t)nb);
    if (!st) th_ok(ctx, DTR_ERR_INVALID, "state create");
    size_t nl = (size_t)loff[nb] * hid;
    double *yl = th_dalloc(nl), *xl = th_dalloc(nl);
    float *xlf = th_alloc(nl), *yp = th_alloc(nl), *out = th_alloc(nl);
    th_rand(xlf, nl, -1, 1);
    for (size_t i = 0; i < nl; i++) xl[i] = xlf[i];
    if (pass == 5) {
      /* the io_f16 prefill rounds the prompts' q, k, v to fp16, decode steps
       * do not: the residuals of the whole sequences, cleared past the
       * prompts, then frozen */
      refblk r16 = r;
      size_t nq = (size_t)loff[nb] * H * D;
      r16.c = &cfg16;
      r16.res = th_dalloc(3 * nq);
      ref_block(&r16, yl, xl, loff, nb);
      for (int m = 0; m < 3; m++)
        for (int b = 0; b < nb; b++)
          memset(r16.res + m * nq + (size_t)(loff[b] + P[b]) * H * D, 0,
                 (size_t)(L[b] - P[b]) * H * D * 8);
      r16.frozen = 1;
      ref_block(&r16, yl, xl, loff, nb);
      free(r16.res);
    } else {
      ref_block(&r, yl, xl, loff, nb);
    }
    /* packed prompts */
    float *xp = th_alloc((size_t)poff[nb] * hid);
    for (int b = 0; b < nb; b++)
      memcpy(xp + (size_t)poff[b] * hid, xlf + (size_t)loff[b] * hid, (size_t)P[b] * hid * 4);
    dtr_buf *bxp = th_buf(ctx, xp, (size_t)poff[nb] * hid * 4),
            *byp = th_poison(ctx, (size_t)poff[nb] * hid * 4),
            *bpo = th_buf(ctx, poff, sizeof poff), *bxt = th_buf(ctx, NULL, (size_t)nb * hid * 4),
            *byt = th_poison(ctx, (size_t)nb * hid * 4);
    th_ok(ctx, dtr_block_prefill(db, st, dtr_whole(byp), dtr_whole(bxp), dtr_whole(bpo),
                                 (uint32_t)nb, (uint32_t)poff[nb]), "prefill");
    th_get(ctx, byp, yp, (size_t)poff[nb] * hid * 4);
    double *want = th_dalloc(nl);
    size_t ng = 0;
    for (int b = 0; b < nb; b++)
      for (int t = 0; t < P[b]; t++)
        for (uint32_t j = 0; j < hid; j++) {
          out[ng] = yp[(size_t)(poff[b] + t) * hid + j];
          want[ng++] = yl[(size_t)(loff[b] + t) * hid + j];
        }
    /* decode: both sequences step together while both have tokens left; the
     * steps use the longer sequence's remaining length, so the shorter one is
     * fed beyond its end only into positions that are not compared. */
    int steps = L[1] - P[1];
    float *xt = th_alloc((size_t)nb * hid), *yt = th_alloc((size_t)nb * hid);
    for (int s = 0; s < steps; s++) {
      for (int b = 0; b < nb; b++) {
        int t = P[b] + s;
        if (t < L[b]) memcpy(xt + (size_t)b * hid, xlf + (size_t)(loff[b] + t) * hid, hid * 4);
        else memset(xt + (size_t)b * hid, 0, hid * 4);
      }
      th_ok(ctx, dtr_buf_upload(ctx, bxt, 0, xt, (size_t)nb * hid * 4), "upload");
      th_ok(ctx, dtr_block_decode(db, st, dtr_whole(byt), dtr_whole(bxt)), "decode");
      th_get(ctx, byt, yt, (size_t)nb * hid * 4);
      for (int b = 0; b < nb; b++) {
        int t = P[b] + s;
        if (t >= L[b]) continue;
        for (uint32_t j = 0; j < hid; j++) {
          out[ng] = yt[(size_t)b * hid + j];
          want[ng++] = yl[(size_t)(loff[b] + t) * hid + j];
        }
      }
    }
    snprintf(what, sizeof what, "%s prefill (%s) then decode == forward (%s)%s", kn,
             one ? "40" : "5,40", one ? "52" : "9,52",
             pass == 2 ? ", unfused" : pass == 5 ? ", io_f16" : pass >= 3 ? ", fp16 state" : "");
    if (pass == 2) unsetenv("DTR_GDN_FUSED");
    /* an fp16 state rounds S to 11 bits at every token */
    if (pass == 3 || pass == 4) th_check(what, out, want, ng, 3e-3, 3e-3, 5e-2);
    else th_check(what, out, want, ng, 1e-4, pass == 5 ? IO_F16_ATOL : 1e-5, 1e-2);
    if (pass < 2) bytes32[nb - 1] = dtr_block_state_bytes(st);
    if (pass == 3 || pass == 4)
      th_expect(dtr_block_state_bytes(st) == bytes32[nb - 1] - (size_t)nb * H * D * D * 2,
                "%s fp16 state: %zu bytes, fp32 %zu: S at two bytes a value", kn,
                dtr_block_state_bytes(st), bytes32[nb - 1]);
    dtr_block_state_destroy(db, st);
    dtr_block_set_state_f16(db, 0);
    dtr_buf_destroy(ctx, bxp); dtr_buf_destroy(ctx, byp); dtr_buf_destroy(ctx, bpo);
    dtr_buf_destroy(ctx, bxt); dtr_buf_destroy(ctx, byt);
    free(yl); free(xl); free(xlf); free(yp); free(out); free(xp); free(want); free(xt); free(yt);
  }

  dtr_buf_destroy(ctx, bx); dtr_buf_destroy(ctx, by); dtr_buf_destroy(ctx, bdy);
  dtr_buf_destroy(ctx, bdx); dtr_buf_destroy(ctx, boff);
  dtr_block_destroy(blk);
  dtr_block_destroy(blk16);
  free(pf); free(r.p); free(x); free(got); free(dyf); free(xd); free(yref); free(dyd);
  free(ytmp); free(gf); free(dxf);
}

/* A GQA teacher (3 query heads, 1 KV head): q/o copied, k/v repeated. */
static void test_teacher_init(dtr_ctx *ctx) {
  uint32_t hid = 24, H = 3, D = 8;
  dtr_block_config cfg = dtr_block_config_default(DTR_BLOCK_GDN, hid, H);
  dtr_block *blk = dtr_block_create(ctx, &cfg, 8, 1, 1);
  if (!blk) th_ok(ctx, DTR_ERR_INVALID, "dtr_block_create");
  float *q = th_alloc(H * D * hid), *k = th_alloc(D * hid), *v = th_alloc(D * hid),
        *o = th_alloc(hid * H * D);
  th_rand(q, H * D * hid, -1, 1);
  th_rand(k, D * hid, -1, 1);
  th_rand(v, D * hid, -1, 1);
  th_rand(o, hid * H * D, -1, 1);
  th_ok(ctx, dtr_block_init_from_teacher(blk, q, k, v, o, 1), "init from teacher");
  const dtr_param_info *tab;
  uint32_t np = dtr_block_params(blk, &tab);
  float *p = th_alloc(dtr_block_param_bytes(blk) / 4);
  th_ok(ctx, dtr_block_get_params(blk, p), "get");
  int ok = 1;
  for (uint32_t i = 0; i < np; i++) {
    const float *w = p + tab[i].offset / 4;
    if (!strcmp(tab[i].name, "q_proj.weight")) ok &= !memcmp(w, q, H * D * hid * 4);
    if (!strcmp(tab[i].name, "o_proj.weight")) ok &= !memcmp(w, o, hid * H * D * 4);
    for (uint32_t h = 0; h < H; h++) {
      if (!strcmp(tab[i].name, "k_proj.weight")) ok &= !memcmp(w + h * D * hid, k, D * hid * 4);
      if (!strcmp(tab[i].name, "v_proj.weight")) ok &= !memcmp(w + h * D * hid, v, D * hid * 4);
    }
  }
  th_expect(ok, "teacher init: q_proj/o_proj copied, the one KV head repeated 3 times");
  th_expect(dtr_block_init_from_teacher(blk, q, k, v, o, 2) == DTR_ERR_INVALID,
            "teacher with 2 KV heads for 3 query heads is refused: %s", dtr_ctx_error(ctx));
  dtr_block_destroy(blk);
  free(q); free(k); free(v); free(o); free(p);
}

int main(void) {
  dtr_ctx *ctx = th_ctx();
  run_kind(ctx, DTR_BLOCK_GLA);
  run_kind(ctx, DTR_BLOCK_GDN);
  run_kind(ctx, DTR_BLOCK_JET);
  test_teacher_init(ctx);
  return th_finish();
}
