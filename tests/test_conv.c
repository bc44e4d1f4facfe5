/* test_conv.c — the short conv, dynamic conv and gated RMSNorm of dtr_linear.h
 * on the device against the double references (tests/ref_conv.c): forward and
 * backward over varlen batches (lengths 0, 1, 2 and longer, runs crossing
 * sequence boundaries), with and without cache_in, decode token by token ==
 * forward, prefill (cache_out, also in place) then decode == one long forward,
 * odd and large C; the references' analytic gradients against finite
 * differences; deterministic dw; argument checks. DTR_CONV_BENCH=1 adds timings.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dtr_linear.h"
#include "harness.h"
#include "ref_conv.h"

static float *frand(size_t n, float lo, float hi) {
  float *p = th_alloc(n ? n : 1);
  th_rand(p, n, lo, hi);
  return p;
}
static double *dup_d(const float *x, size_t n) {
  double *d = th_dalloc(n ? n : 1);
  for (size_t i = 0; i < n; i++)
    d[i] = x[i];
  return d;
}
/* Device buffers never have 0 bytes. */
static dtr_buf *up(dtr_ctx *ctx, const void *p, size_t bytes) {
  return th_buf(ctx, p, bytes ? bytes : 4);
}
static dtr_buf *poison(dtr_ctx *ctx, size_t bytes) { return th_poison(ctx, bytes ? bytes : 4); }
static float *down(dtr_ctx *ctx, dtr_buf *b, size_t n) {
  float *p = th_alloc(n ? n : 1);
  if (n) th_get(ctx, b, p, n * 4);
  return p;
}
static double maxabs(const double *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fmax(m, fabs(x[i]));
  return m;
}
/* fp32 against double: relative error 1e-5 overall, and per element within
 * 1e-5 of the largest magnitude plus 1e-5 relative. */
static int chk(const char *what, const float *got, const double *ref, size_t n) {
  return th_check(what, got, ref, n, 1e-5, 1e-5 * maxabs(ref, n) + 1e-30, 1e-5);
}
static int32_t *offsets_of(const uint32_t *lens, uint32_t B, uint32_t *Ttot) {
  int32_t *o = malloc(sizeof *o * (B + 1));
  if (!o) abort();
  o[0] = 0;
  for (uint32_t b = 0; b < B; b++)
    o[b + 1] = o[b] + (int32_t)lens[b];
  *Ttot = (uint32_t)o[B];
  return o;
}
static void lens_str(char *s, size_t n, const uint32_t *lens, uint32_t B) {
  size_t k = 0;
  s[0] = 0;
  for (uint32_t b = 0; b < B && k + 12 < n; b++)
    k += (size_t)snprintf(s + k, n - k, "%s%u", b ? "," : "", lens[b]);
}

/* ---- forward and backward against the reference --------------------------- */

static void check_conv(dtr_ctx *ctx, int dyn, uint32_t C, uint32_t B, const uint32_t *lens,
                       int silu, int has_cache) {
  uint32_t T;
  int32_t *off = offsets_of(lens, B, &T);
  char ls[128], name[256], what[320];
  lens_str(ls, sizeof ls, lens, B);
  snprintf(name, sizeof name, "%s C=%u lens=%s silu=%d cache=%d", dyn ? "dynconv" : "shortconv", C,
           ls, silu, has_cache);
  size_t nx = (size_t)T * C, nt = dyn ? nx * 4 : (size_t)C * 4, nc = (size_t)B * 3 * C;
  float *x = frand(nx, -1, 1), *taps = frand(nt, -0.8f, 0.8f), *cin = frand(nc, -1, 1);
  float *dout = frand(nx, -1, 1), *dw0 = frand(nt, -1, 1);
  dtr_buf *bx = up(ctx, x, nx * 4), *bt = up(ctx, taps, nt * 4), *bc = up(ctx, cin, nc * 4),
          *boff = up(ctx, off, (B + 1) * 4), *bdo = up(ctx, dout, nx * 4);
  dtr_buf *bo = poison(ctx, nx * 4), *bco = poison(ctx, nc * 4), *bdx = poison(ctx, nx * 4);
  dtr_buf *bdt = dyn ? poison(ctx, nt * 4) : up(ctx, dw0, nt * 4);
  dtr_view vcin = has_cache ? dtr_whole(bc) : DTR_NONE;
  dtr_status st;
  if (dyn) {
    st = dtr_op_dynconv_fwd(ctx, dtr_whole(bo), dtr_whole(bco), dtr_whole(bx), dtr_whole(bt), vcin,
                            dtr_whole(boff), B, T, C, silu);
    th_ok(ctx, st, "dtr_op_dynconv_fwd");
    st = dtr_op_dynconv_bwd(ctx, dtr_whole(bdx), dtr_whole(bdt), dtr_whole(bdo), dtr_whole(bx),
                            dtr_whole(bt), vcin, dtr_whole(boff), B, T, C, silu);
    th_ok(ctx, st, "dtr_op_dynconv_bwd");
  } else {
    st = dtr_op_shortconv_fwd(ctx, dtr_whole(bo), dtr_whole(bco), dtr_whole(bx), dtr_whole(bt),
                              vcin, dtr_whole(boff), B, T, C, silu);
    th_ok(ctx, st, "dtr_op_shortconv_fwd");
    st = dtr_op_shortconv_bwd(ctx, dtr_whole(bdx), dtr_whole(bdt), dtr_whole(bdo), dtr_whole(bx),
                              dtr_whole(bt), vcin, dtr_whole(boff), B, T, C, silu);
    th_ok(ctx, st, "dtr_op_shortconv_bwd");
  }
  /* dx alone (no dw / dkern): the absent output's binding must stay unwritten. */
  dtr_buf *bdx2 = poison(ctx, nx * 4);
  st = (dyn ? dtr_op_dynconv_bwd
            : dtr_op_shortconv_bwd)(ctx, dtr_whole(bdx2), DTR_NONE, dtr_whole(bdo), dtr_whole(bx),
                                    dtr_whole(bt), vcin, dtr_whole(boff), B, T, C, silu);
  th_ok(ctx, st, "conv bwd, dx only");
  th_submit(ctx);
  float *o = down(ctx, bo, nx), *co = down(ctx, bco, nc), *dx = down(ctx, bdx, nx),
        *dt = down(ctx, bdt, nt), *dx2 = down(ctx, bdx2, nx);
  th_expect(!memcmp(dx, dx2, nx * 4), "%s: dx alone == dx with %s", name, dyn ? "dkern" : "dw");
  dtr_buf_destroy(ctx, bdx2);
  free(dx2);

  double *dxx = dup_d(x, nx), *dtp = dup_d(taps, nt), *dci = dup_d(cin, nc), *ddo = dup_d(dout, nx);
  double *ro = th_dalloc(nx), *rco = th_dalloc(nc), *rdx = th_dalloc(nx);
  double *rdt = dyn ? th_dalloc(nt) : dup_d(dw0, nt);
  const double *rcin = has_cache ? dci : NULL;
  if (dyn) {
    ref_dynconv_fwd(ro, rco, dxx, dtp, rcin, off, B, T, C, silu);
    ref_dynconv_bwd(rdx, rdt, ddo, dxx, dtp, rcin, off, B, T, C, silu);
  } else {
    ref_shortconv_fwd(ro, rco, dxx, dtp, rcin, off, B, T, C, silu);
    ref_shortconv_bwd(rdx, rdt, ddo, dxx, dtp, rcin, off, B, T, C, silu);
  }
  snprintf(what, sizeof what, "%s: out", name);
  if (nx) chk(what, o, ro, nx);
  snprintf(what, sizeof what, "%s: cache_out", name);
  chk(what, co, rco, nc);
  snprintf(what, sizeof what, "%s: dx", name);
  if (nx) chk(what, dx, rdx, nx);
  snprintf(what, sizeof what, "%s: %s", name, dyn ? "dkern" : "dw (accumulated)");
  if (nt) chk(what, dt, rdt, nt);

  dtr_buf *bufs[] = {bx, bt, bc, boff, bdo, bo, bco, bdx, bdt};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    dtr_buf_destroy(ctx, bufs[i]);
  void *ptrs[] = {off, x,   taps, cin, dout, dw0, o,   co,  dx,
                  dt,  dxx, dtp,  dci, ddo,  ro,  rco, rdx, rdt};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
    free(ptrs[i]);
}

/* ---- prefill then decode == one long forward -------------------------------
 * Sequence b has P[b] prefill tokens (the forward with cache_out) and then D
 * decode steps; the outputs and the final cache must match the reference forward
 * over all P[b] + D tokens. With P all zero this is decode token by token ==
 * forward (the prefill is skipped and the decode starts from cache_in, or zero).
 * inplace: the prefill writes cache_out over cache_in. */
static size_t pad256(size_t bytes) { return (bytes + 255) / 256 * 256; }

static void check_decode(dtr_ctx *ctx, int dyn, uint32_t C, uint32_t B, const uint32_t *P,
                         uint32_t D, int silu, int has_cache, int inplace) {
  uint32_t *L = malloc(sizeof *L * B), Tp, Tf;
  for (uint32_t b = 0; b < B; b++)
    L[b] = P[b] + D;
  int32_t *offp = offsets_of(P, B, &Tp), *offf = offsets_of(L, B, &Tf);
  int prefill = Tp > 0;
  char ls[128], name[256], what[320];
  lens_str(ls, sizeof ls, P, B);
  snprintf(name, sizeof name, "%s C=%u %s%s+%u decode silu=%d cache=%d%s",
           dyn ? "dynconv" : "shortconv", C, prefill ? "prefill=" : "", prefill ? ls : "", D, silu,
           has_cache, inplace ? " in-place" : "");
  size_t nf = (size_t)Tf * C, nc = (size_t)B * 3 * C, ntf = dyn ? nf * 4 : (size_t)C * 4;
  float *x = frand(nf, -1, 1), *taps = frand(ntf, -0.8f, 0.8f), *cin = frand(nc, -1, 1);
  if (!has_cache) memset(cin, 0, nc * 4); /* the decode's cache starts at zero */

  /* Reference: one forward over the full sequences. */
  double *dxf = dup_d(x, nf), *dtf = dup_d(taps, ntf), *dci = dup_d(cin, nc);
  double *ro = th_dalloc(nf), *rco = th_dalloc(nc);
  if (dyn)
    ref_dynconv_fwd(ro, rco, dxf, dtf, has_cache ? dci : NULL, offf, B, Tf, C, silu);
  else
    ref_shortconv_fwd(ro, rco, dxf, dtf, has_cache ? dci : NULL, offf, B, Tf, C, silu);

  dtr_buf *bw = dyn ? NULL : up(ctx, taps, (size_t)C * 16);
  dtr_buf *bcache; /* the decode's cache */
  dtr_buf *bcin = up(ctx, cin, nc * 4);
  if (prefill) {
    /* Pack the first P[b] tokens of each sequence. */
    size_t np = (size_t)Tp * C;
    float *xp = th_alloc(np ? np : 1), *kp = th_alloc(dyn ? np * 4 : 1);
    for (uint32_t b = 0; b < B; b++) {
      memcpy(xp + (size_t)offp[b] * C, x + (size_t)offf[b] * C, (size_t)P[b] * C * 4);
      if (dyn)
        memcpy(kp + (size_t)offp[b] * C * 4, taps + (size_t)offf[b] * C * 4, (size_t)P[b] * C * 16);
    }
    dtr_buf *bxp = up(ctx, xp, np * 4), *bkp = dyn ? up(ctx, kp, np * 16) : bw,
            *boff = up(ctx, offp, (B + 1) * 4), *bop = poison(ctx, np * 4);
    bcache = inplace ? bcin : poison(ctx, nc * 4);
    dtr_view vcin = has_cache ? dtr_whole(bcin) : DTR_NONE;
    dtr_status st =
        dyn ? dtr_op_dynconv_fwd(ctx, dtr_whole(bop), dtr_whole(bcache), dtr_whole(bxp),
                                 dtr_whole(bkp), vcin, dtr_whole(boff), B, Tp, C, silu)
            : dtr_op_shortconv_fwd(ctx, dtr_whole(bop), dtr_whole(bcache), dtr_whole(bxp),
                                   dtr_whole(bkp), vcin, dtr_whole(boff), B, Tp, C, silu);
    th_ok(ctx, st, "prefill forward");
    float *op = down(ctx, bop, np);
    double *rop = th_dalloc(np ? np : 1);
    for (uint32_t b = 0; b < B; b++)
      memcpy(rop + (size_t)offp[b] * C, ro + (size_t)offf[b] * C, (size_t)P[b] * C * 8);
    snprintf(what, sizeof what, "%s: prefill out", name);
    chk(what, op, rop, np);
    dtr_buf_destroy(ctx, bxp);
    if (dyn) dtr_buf_destroy(ctx, bkp);
    dtr_buf_destroy(ctx, boff);
    dtr_buf_destroy(ctx, bop);
    free(xp);
    free(kp);
    free(op);
    free(rop);
  } else {
    bcache = bcin; /* cache_in, or zeros */
  }

  /* D decode steps, recorded back to back; step j's tensors sit at 256-byte
   * aligned offsets of one buffer each. */
  size_t sx = pad256((size_t)B * C * 4), sk = pad256((size_t)B * C * 16);
  float *xs = calloc(D * sx, 1), *ks = calloc(dyn ? D * sk : 4, 1);
  for (uint32_t j = 0; j < D; j++)
    for (uint32_t b = 0; b < B; b++) {
      size_t t = (size_t)offf[b] + P[b] + j;
      memcpy((char *)xs + j * sx + (size_t)b * C * 4, x + t * C, (size_t)C * 4);
      if (dyn) memcpy((char *)ks + j * sk + (size_t)b * C * 16, taps + t * C * 4, (size_t)C * 16);
    }
  dtr_buf *bxs = up(ctx, xs, D * sx), *bks = dyn ? up(ctx, ks, D * sk) : NULL,
          *bos = poison(ctx, D * sx);
  for (uint32_t j = 0; j < D; j++) {
    dtr_view vo = {bos, j * sx, (size_t)B * C * 4}, vx = {bxs, j * sx, (size_t)B * C * 4};
    dtr_status st;
    if (dyn) {
      dtr_view vk = {bks, j * sk, (size_t)B * C * 16};
      st = dtr_op_dynconv_decode(ctx, vo, dtr_whole(bcache), vx, vk, B, C, silu);
    } else {
      st = dtr_op_shortconv_decode(ctx, vo, dtr_whole(bcache), vx, dtr_whole(bw), B, C, silu);
    }
    th_ok(ctx, st, "decode");
  }
  th_submit(ctx);
  float *os = calloc(D * sx, 1), *cache = down(ctx, bcache, nc);
  th_get(ctx, bos, os, D * sx);
  /* Gather the decode outputs and the reference rows, step by step. */
  size_t nd = (size_t)D * B * C;
  float *god = th_alloc(nd ? nd : 1);
  double *rod = th_dalloc(nd ? nd : 1);
  for (uint32_t j = 0; j < D; j++)
    for (uint32_t b = 0; b < B; b++) {
      size_t t = (size_t)offf[b] + P[b] + j, r = ((size_t)j * B + b) * C;
      memcpy(god + r, (char *)os + j * sx + (size_t)b * C * 4, (size_t)C * 4);
      memcpy(rod + r, ro + t * C, (size_t)C * 8);
    }
  snprintf(what, sizeof what, "%s: decode out", name);
  chk(what, god, rod, nd);
  snprintf(what, sizeof what, "%s: final cache", name);
  chk(what, cache, rco, nc);

  dtr_buf_destroy(ctx, bxs);
  dtr_buf_destroy(ctx, bks);
  dtr_buf_destroy(ctx, bos);
  if (bcache != bcin) dtr_buf_destroy(ctx, bcache);
  dtr_buf_destroy(ctx, bcin);
  dtr_buf_destroy(ctx, bw);
  void *ptrs[] = {L, offp, offf, x, taps, cin, dxf, dtf, dci, ro, rco, xs, ks, os, cache, god, rod};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
    free(ptrs[i]);
}

/* ---- gated RMSNorm ---------------------------------------------------------- */

static void check_norm(dtr_ctx *ctx, uint32_t N, uint32_t C) {
  char what[160];
  size_t n = (size_t)N * C;
  const float eps = 1e-5f;
  float *o = frand(n, -1, 1), *g = frand(n, -3, 3), *w = frand(C, 0.5f, 1.5f);
  float *dout = frand(n, -1, 1), *dw0 = frand(C, -1, 1);
  dtr_buf *bo = up(ctx, o, n * 4), *bg = up(ctx, g, n * 4), *bw = up(ctx, w, C * 4),
          *bdo = up(ctx, dout, n * 4), *bdw = up(ctx, dw0, C * 4);
  dtr_buf *bout = poison(ctx, n * 4), *br = poison(ctx, N * 4), *bdi = poison(ctx, n * 4),
          *bdg = poison(ctx, n * 4);
  th_ok(ctx,
        dtr_op_gated_rmsnorm_fwd(ctx, dtr_whole(bout), dtr_whole(br), dtr_whole(bo), dtr_whole(bg),
                                 dtr_whole(bw), N, C, eps),
        "dtr_op_gated_rmsnorm_fwd");
  /* The backward reads the device's rstd. */
  th_ok(ctx,
        dtr_op_gated_rmsnorm_bwd(ctx, dtr_whole(bdi), dtr_whole(bdg), dtr_whole(bdw),
                                 dtr_whole(bdo), dtr_whole(bo), dtr_whole(bg), dtr_whole(bw),
                                 dtr_whole(br), N, C),
        "dtr_op_gated_rmsnorm_bwd");
  /* One output at a time: the absent one's binding must stay unwritten. */
  dtr_buf *bdi2 = poison(ctx, n * 4), *bdg2 = poison(ctx, n * 4);
  th_ok(ctx,
        dtr_op_gated_rmsnorm_bwd(ctx, dtr_whole(bdi2), DTR_NONE, DTR_NONE, dtr_whole(bdo),
                                 dtr_whole(bo), dtr_whole(bg), dtr_whole(bw), dtr_whole(br), N, C),
        "gated_rmsnorm_bwd dinp only");
  th_ok(ctx,
        dtr_op_gated_rmsnorm_bwd(ctx, DTR_NONE, dtr_whole(bdg2), DTR_NONE, dtr_whole(bdo),
                                 dtr_whole(bo), dtr_whole(bg), dtr_whole(bw), dtr_whole(br), N, C),
        "gated_rmsnorm_bwd dgate only");
  th_submit(ctx);
  float *out = down(ctx, bout, n), *r = down(ctx, br, N), *di = down(ctx, bdi, n),
        *dg = down(ctx, bdg, n), *dw = down(ctx, bdw, C), *di2 = down(ctx, bdi2, n),
        *dg2 = down(ctx, bdg2, n);
  th_expect(!memcmp(di, di2, n * 4) && !memcmp(dg, dg2, n * 4),
            "gated_rmsnorm N=%u C=%u: dinp alone and dgate alone == both together", N, C);
  dtr_buf_destroy(ctx, bdi2);
  dtr_buf_destroy(ctx, bdg2);
  free(di2);
  free(dg2);
  double *Do = dup_d(o, n), *Dg = dup_d(g, n), *Dw = dup_d(w, C), *Ddo = dup_d(dout, n);
  double *rout = th_dalloc(n), *rr = th_dalloc(N), *rdi = th_dalloc(n), *rdg = th_dalloc(n),
         *rdw = dup_d(dw0, C);
  ref_gated_rmsnorm_fwd(rout, rr, Do, Dg, Dw, N, C, eps);
  ref_gated_rmsnorm_bwd(rdi, rdg, rdw, Ddo, Do, Dg, Dw, rr, N, C);
  snprintf(what, sizeof what, "gated_rmsnorm N=%u C=%u: out", N, C);
  chk(what, out, rout, n);
  snprintf(what, sizeof what, "gated_rmsnorm N=%u C=%u: rstd", N, C);
  chk(what, r, rr, N);
  snprintf(what, sizeof what, "gated_rmsnorm N=%u C=%u: dinp", N, C);
  chk(what, di, rdi, n);
  snprintf(what, sizeof what, "gated_rmsnorm N=%u C=%u: dgate", N, C);
  chk(what, dg, rdg, n);
  snprintf(what, sizeof what, "gated_rmsnorm N=%u C=%u: dw (accumulated)", N, C);
  chk(what, dw, rdw, C);
  dtr_buf *bufs[] = {bo, bg, bw, bdo, bdw, bout, br, bdi, bdg};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    dtr_buf_destroy(ctx, bufs[i]);
  void *ptrs[] = {o, g, w, dout, dw0, out, r, di, dg, dw, Do, Dg, Dw, Ddo, rout, rr, rdi, rdg, rdw};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
    free(ptrs[i]);
}

/* ---- the references against finite differences ----------------------------- */

typedef struct {
  int dyn, silu;
  uint32_t B, T, C;
  const int32_t *off;
  double *x, *taps, *cin, *R, *out;
} conv_fd;

/* loss = sum(out * R), so dloss/dout = R. */
static double conv_loss(void *ud) {
  conv_fd *f = ud;
  if (f->dyn)
    ref_dynconv_fwd(f->out, NULL, f->x, f->taps, f->cin, f->off, f->B, f->T, f->C, f->silu);
  else
    ref_shortconv_fwd(f->out, NULL, f->x, f->taps, f->cin, f->off, f->B, f->T, f->C, f->silu);
  double s = 0;
  for (size_t i = 0; i < (size_t)f->T * f->C; i++)
    s += f->out[i] * f->R[i];
  return s;
}

static void fd_conv(int dyn, int silu, int has_cache) {
  const uint32_t lens[] = {1, 2, 0, 5}, B = 4, C = 3;
  uint32_t T;
  int32_t *off = offsets_of(lens, B, &T);
  size_t nx = (size_t)T * C, nt = dyn ? nx * 4 : (size_t)C * 4, nc = (size_t)B * 3 * C;
  float *fx = frand(nx, -1, 1), *ft = frand(nt, -1, 1), *fc = frand(nc, -1, 1),
        *fr = frand(nx, -1, 1);
  conv_fd f = {dyn,
               silu,
               B,
               T,
               C,
               off,
               dup_d(fx, nx),
               dup_d(ft, nt),
               has_cache ? dup_d(fc, nc) : NULL,
               dup_d(fr, nx),
               th_dalloc(nx)};
  double *dx = th_dalloc(nx), *dt = th_dalloc(nt), *gx = th_dalloc(nx), *gt = th_dalloc(nt);
  if (dyn)
    ref_dynconv_bwd(dx, dt, f.R, f.x, f.taps, f.cin, off, B, T, C, silu);
  else
    ref_shortconv_bwd(dx, dt, f.R, f.x, f.taps, f.cin, off, B, T, C, silu);
  th_fd(conv_loss, &f, f.x, nx, 1e-5, gx);
  th_fd(conv_loss, &f, f.taps, nt, 1e-5, gt);
  char what[160];
  snprintf(what, sizeof what, "ref %s silu=%d cache=%d: dx vs finite differences",
           dyn ? "dynconv" : "shortconv", silu, has_cache);
  th_check_d(what, dx, gx, nx, 1e-7);
  snprintf(what, sizeof what, "ref %s silu=%d cache=%d: %s vs finite differences",
           dyn ? "dynconv" : "shortconv", silu, has_cache, dyn ? "dkern" : "dw");
  th_check_d(what, dt, gt, nt, 1e-7);
  void *ptrs[] = {off, fx, ft, fc, fr, f.x, f.taps, f.cin, f.R, f.out, dx, dt, gx, gt};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
    free(ptrs[i]);
}

typedef struct {
  uint32_t N, C;
  double *o, *g, *w, *R, *out;
} norm_fd;

static double norm_loss(void *ud) {
  norm_fd *f = ud;
  ref_gated_rmsnorm_fwd(f->out, NULL, f->o, f->g, f->w, f->N, f->C, 1e-5);
  double s = 0;
  for (size_t i = 0; i < (size_t)f->N * f->C; i++)
    s += f->out[i] * f->R[i];
  return s;
}

static void fd_norm(void) {
  const uint32_t N = 3, C = 7;
  size_t n = (size_t)N * C;
  float *fo = frand(n, -1, 1), *fg = frand(n, -3, 3), *fw = frand(C, 0.5f, 1.5f),
        *fr = frand(n, -1, 1);
  norm_fd f = {N, C, dup_d(fo, n), dup_d(fg, n), dup_d(fw, C), dup_d(fr, n), th_dalloc(n)};
  double *rstd = th_dalloc(N), *di = th_dalloc(n), *dg = th_dalloc(n), *dw = th_dalloc(C);
  double *gi = th_dalloc(n), *gg = th_dalloc(n), *gw = th_dalloc(C);
  ref_gated_rmsnorm_fwd(f.out, rstd, f.o, f.g, f.w, N, C, 1e-5);
  ref_gated_rmsnorm_bwd(di, dg, dw, f.R, f.o, f.g, f.w, rstd, N, C);
  th_fd(norm_loss, &f, f.o, n, 1e-5, gi);
  th_fd(norm_loss, &f, f.g, n, 1e-5, gg);
  th_fd(norm_loss, &f, f.w, C, 1e-5, gw);
  th_check_d("ref gated_rmsnorm: dinp vs finite differences", di, gi, n, 1e-7);
  th_check_d("ref gated_rmsnorm: dgate vs finite differences", dg, gg, n, 1e-7);
  th_check_d("ref gated_rmsnorm: dw vs finite differences", dw, gw, C, 1e-7);
  void *ptrs[] = {fo, fg, fw, fr, f.o, f.g, f.w, f.R, f.out, rstd, di, dg, dw, gi, gg, gw};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
    free(ptrs[i]);
}

/* ---- determinism and argument checks ---------------------------------------- */

static void check_deterministic(dtr_ctx *ctx) {
  const uint32_t lens[] = {300, 1, 2, 211}, B = 4, C = 96;
  uint32_t T;
  int32_t *off = offsets_of(lens, B, &T);
  size_t nx = (size_t)T * C;
  float *x = frand(nx, -1, 1), *w = frand(C * 4, -1, 1), *dout = frand(nx, -1, 1);
  float *o = frand(nx, -1, 1), *g = frand(nx, -3, 3), *r = frand(T, 0.5f, 2);
  dtr_buf *bx = up(ctx, x, nx * 4), *bw = up(ctx, w, C * 16), *bdo = up(ctx, dout, nx * 4),
          *boff = up(ctx, off, (B + 1) * 4), *bo = up(ctx, o, nx * 4), *bg = up(ctx, g, nx * 4),
          *br = up(ctx, r, T * 4);
  dtr_buf *dw[2], *dn[2];
  for (int k = 0; k < 2; k++) {
    dw[k] = up(ctx, NULL, C * 16);
    dn[k] = up(ctx, NULL, C * 4);
    th_ok(ctx, dtr_buf_fill(ctx, dw[k], 0, C * 16, 0), "fill");
    th_ok(ctx, dtr_buf_fill(ctx, dn[k], 0, C * 4, 0), "fill");
    th_ok(ctx,
          dtr_op_shortconv_bwd(ctx, DTR_NONE, dtr_whole(dw[k]), dtr_whole(bdo), dtr_whole(bx),
                               dtr_whole(bw), DTR_NONE, dtr_whole(boff), B, T, C, 1),
          "shortconv_bwd dw only");
    th_ok(ctx,
          dtr_op_gated_rmsnorm_bwd(ctx, DTR_NONE, DTR_NONE, dtr_whole(dn[k]), dtr_whole(bdo),
                                   dtr_whole(bo), dtr_whole(bg), dtr_whole(bw), dtr_whole(br), T,
                                   C),
          "gated_rmsnorm_bwd dw only");
  }
  float *a = th_alloc(C * 4), *b = th_alloc(C * 4), *c = th_alloc(C), *d = th_alloc(C);
  th_get(ctx, dw[0], a, C * 16);
  th_get(ctx, dw[1], b, C * 16);
  th_get(ctx, dn[0], c, C * 4);
  th_get(ctx, dn[1], d, C * 4);
  int finite = 1;
  for (uint32_t i = 0; i < C * 4; i++)
    finite &= isfinite(a[i]) != 0;
  th_expect(finite && !memcmp(a, b, C * 16), "shortconv_bwd dw is finite and bitwise repeatable");
  th_expect(!memcmp(c, d, C * 4), "gated_rmsnorm_bwd dw is bitwise repeatable");
  dtr_buf *bufs[] = {bx, bw, bdo, boff, bo, bg, br, dw[0], dw[1], dn[0], dn[1]};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    dtr_buf_destroy(ctx, bufs[i]);
  void *ptrs[] = {off, x, w, dout, o, g, r, a, b, c, d};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++)
    free(ptrs[i]);
}

static void check_args(dtr_ctx *ctx) {
  const int32_t off[3] = {0, 5, 9};
  dtr_buf *x = up(ctx, NULL, 9 * 8 * 4), *w = up(ctx, NULL, 8 * 16), *o = up(ctx, NULL, 9 * 8 * 4),
          *bo = up(ctx, off, sizeof off);
  dtr_status st = dtr_op_shortconv_fwd(ctx, dtr_whole(o), DTR_NONE, dtr_whole(x), dtr_whole(w),
                                       DTR_NONE, dtr_whole(bo), 2, 9, 9, 1);
  th_expect(st == DTR_ERR_INVALID, "shortconv_fwd rejects C too large for its views (%s)",
            dtr_ctx_error(ctx));
  st = dtr_op_dynconv_fwd(ctx, dtr_whole(o), DTR_NONE, dtr_whole(x), dtr_whole(w), DTR_NONE,
                          dtr_whole(bo), 2, 9, 8, 1);
  th_expect(st == DTR_ERR_INVALID, "dynconv_fwd rejects a kern too small (%s)", dtr_ctx_error(ctx));
  st = dtr_op_shortconv_fwd(ctx, dtr_whole(x), DTR_NONE, dtr_whole(x), dtr_whole(w), DTR_NONE,
                            dtr_whole(bo), 2, 9, 8, 1);
  th_expect(st == DTR_ERR_INVALID, "shortconv_fwd rejects out aliasing x (%s)", dtr_ctx_error(ctx));
  st =
      dtr_op_shortconv_decode(ctx, dtr_whole(o), dtr_whole(x), dtr_whole(x), dtr_whole(w), 2, 8, 0);
  th_expect(st == DTR_ERR_INVALID, "shortconv_decode rejects cache aliasing x (%s)",
            dtr_ctx_error(ctx));
  st = dtr_op_gated_rmsnorm_fwd(ctx, dtr_whole(o), dtr_whole(x), dtr_whole(x), dtr_whole(x),
                                dtr_whole(w), 9, 0, 1e-5f);
  th_expect(st == DTR_ERR_INVALID, "gated_rmsnorm_fwd rejects C = 0 (%s)", dtr_ctx_error(ctx));
  st = dtr_op_gated_rmsnorm_bwd(ctx, dtr_whole(o), DTR_NONE, DTR_NONE, dtr_whole(x), dtr_whole(x),
                                dtr_whole(x), dtr_whole(w), DTR_NONE, 9, 8);
  th_expect(st == DTR_ERR_INVALID, "gated_rmsnorm_bwd rejects a missing rstd (%s)",
            dtr_ctx_error(ctx));
  dtr_buf_destroy(ctx, x);
  dtr_buf_destroy(ctx, w);
  dtr_buf_destroy(ctx, o);
  dtr_buf_destroy(ctx, bo);
}

/* ---- timings (DTR_CONV_BENCH=1) --------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef enum {
  B_SC_FWD,
  B_SC_BWD,
  B_DC_FWD,
  B_DC_BWD,
  B_NORM_FWD,
  B_NORM_BWD,
  B_SC_DEC,
  B_AXPY
} bench_op;

static void bench(dtr_ctx *ctx) {
  const uint32_t T = 512, C = 2048, H = 32, V = 64;
  int32_t off[2] = {0, (int32_t)T};
  size_t nx = (size_t)T * C;
  float *x = frand(nx * 4, -1, 1);
  dtr_buf *bx = up(ctx, x, nx * 4), *bk = up(ctx, x, nx * 16), *bo = up(ctx, NULL, nx * 4),
          *bd = up(ctx, x, nx * 4), *bdk = up(ctx, NULL, nx * 16), *boff = up(ctx, off, 8),
          *bc = up(ctx, x, (size_t)3 * C * 4), *br = up(ctx, NULL, (size_t)T * H * 4),
          *bw = up(ctx, x, (size_t)C * 16);
  if (dtr_ctx_profiling(ctx)) { /* drop the tests' entries from the report */
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
      dtr_ctx_profile_report(ctx, devnull);
      fclose(devnull);
    }
  }
  const char *names[] = {"shortconv_fwd",    "shortconv_bwd",     "dynconv_fwd",
                         "dynconv_bwd",      "gated_rmsnorm_fwd", "gated_rmsnorm_bwd",
                         "shortconv_decode", "axpy (calibration)"};
  for (int op = 0; op <= B_AXPY; op++) {
    double ms[7];
    for (int rep = 0; rep < 8; rep++) {
      double t0 = now_ms();
      dtr_status st = DTR_OK;
      switch ((bench_op)op) {
      case B_SC_FWD:
        st = dtr_op_shortconv_fwd(ctx, dtr_whole(bo), DTR_NONE, dtr_whole(bx), dtr_whole(bw),
                                  DTR_NONE, dtr_whole(boff), 1, T, C, 1);
        break;
      case B_SC_BWD:
        st = dtr_op_shortconv_bwd(ctx, dtr_whole(bo), dtr_whole(bdk), dtr_whole(bd), dtr_whole(bx),
                                  dtr_whole(bw), DTR_NONE, dtr_whole(boff), 1, T, C, 1);
        break;
      case B_DC_FWD:
        st = dtr_op_dynconv_fwd(ctx, dtr_whole(bo), DTR_NONE, dtr_whole(bx), dtr_whole(bk),
                                DTR_NONE, dtr_whole(boff), 1, T, C, 1);
        break;
      case B_DC_BWD:
        st = dtr_op_dynconv_bwd(ctx, dtr_whole(bo), dtr_whole(bdk), dtr_whole(bd), dtr_whole(bx),
                                dtr_whole(bk), DTR_NONE, dtr_whole(boff), 1, T, C, 1);
        break;
      case B_NORM_FWD:
        st = dtr_op_gated_rmsnorm_fwd(ctx, dtr_whole(bo), dtr_whole(br), dtr_whole(bx),
                                      dtr_whole(bd), dtr_whole(bw), T * H, V, 1e-5f);
        break;
      case B_NORM_BWD:
        st = dtr_op_gated_rmsnorm_bwd(ctx, dtr_whole(bo), dtr_whole(bdk), dtr_whole(bk),
                                      dtr_whole(bd), dtr_whole(bx), dtr_whole(bx), dtr_whole(bw),
                                      dtr_whole(br), T * H, V);
        break;
      case B_AXPY:
        st = dtr_op_axpy(ctx, dtr_whole(bo), dtr_whole(bx), 0.5f, (uint32_t)nx);
        break;
      case B_SC_DEC:
        st = dtr_op_shortconv_decode(ctx, dtr_whole(bo), dtr_whole(bc), dtr_whole(bx),
                                     dtr_whole(bw), 1, C, 1);
        break;
      }
      th_ok(ctx, st, names[op]);
      th_submit(ctx);
      if (rep) ms[rep - 1] = now_ms() - t0; /* rep 0 compiles the pipeline */
    }
    qsort(ms, 7, sizeof *ms, cmp_d);
    printf("bench %-18s T=%u C=%u (norm: %u rows of %u): median %.3f ms (min %.3f)\n", names[op], T,
           C, T * H, V, ms[3], ms[0]);
  }
  if (dtr_ctx_profiling(ctx)) dtr_ctx_profile_report(ctx, stdout); /* DTR_PROFILE=1 */
  dtr_buf *bufs[] = {bx, bk, bo, bd, bdk, boff, bc, br, bw};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    dtr_buf_destroy(ctx, bufs[i]);
  free(x);
}

int main(void) {
  dtr_ctx *ctx = th_ctx();

  fd_conv(0, 1, 1);
  fd_conv(0, 0, 0);
  fd_conv(1, 1, 1);
  fd_conv(1, 0, 0);
  fd_norm();

  /* Varlen batches: lengths 0, 1, 2, runs of 16/32 tokens crossing boundaries. */
  const uint32_t l1[] = {37, 1, 2, 0, 20, 3}, l2[] = {100, 2, 1}, l3[] = {64, 33},
                 l4[] = {40, 1, 2, 23}, l5[] = {1}, l6[] = {2, 1}, l7[] = {517, 1, 2, 300};
  for (int dyn = 0; dyn < 2; dyn++) {
    check_conv(ctx, dyn, 77, 6, l1, 1, 1);
    check_conv(ctx, dyn, 77, 6, l1, 0, 0);
    check_conv(ctx, dyn, 64, 3, l2, 1, 0);
    check_conv(ctx, dyn, 64, 3, l2, 0, 1);
    check_conv(ctx, dyn, 128, 2, l3, 1, 1);
    check_conv(ctx, dyn, 2048, 4, l4, 1, 1);
    check_conv(ctx, dyn, 5, 1, l5, 1, 1);
    check_conv(ctx, dyn, 33, 2, l6, 0, 1);
    check_conv(ctx, dyn, 40, 4, l7, 1, 1);
  }

  /* Decode token by token == forward; prefill then decode == one long forward. */
  const uint32_t p0[] = {0, 0, 0}, p1[] = {1, 2, 5}, p2[] = {0, 1, 2, 9}, p3[] = {7};
  for (int dyn = 0; dyn < 2; dyn++) {
    check_decode(ctx, dyn, 77, 3, p0, 6, 1, 1, 0);
    check_decode(ctx, dyn, 64, 3, p0, 5, 1, 0, 0);
    check_decode(ctx, dyn, 77, 3, p1, 4, 1, 1, 0);
    check_decode(ctx, dyn, 64, 4, p2, 3, 0, 1, 1);
    check_decode(ctx, dyn, 128, 3, p1, 3, 1, 0, 0);
    check_decode(ctx, dyn, 2048, 1, p3, 2, 1, 1, 1);
  }

  check_norm(ctx, 37, 64);
  check_norm(ctx, 19, 128);
  check_norm(ctx, 11, 77);
  check_norm(ctx, 5, 2048);
  check_norm(ctx, 1000, 64);
  check_norm(ctx, 7, 5);

  check_deterministic(ctx);
  check_args(ctx);

  const char *b = getenv("DTR_CONV_BENCH");
  if (b && *b == '1') bench(ctx);
  return th_finish();
}
