/* test_gla.c — the GLA kernels against the recurrent double-precision oracle
 * (tests/ref_gla.c): chunked forward (ragged chunks, T < chunk, T = 1, several
 * heads, varlen batches, initial state, strong decays), decode token by token,
 * prefill then decode, the backward's every gradient, the same with fp16 q, k, v
 * (io_f16), the oracle's analytic gradients against finite differences, the
 * gate, a long sequence, bad args. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtr_linear.h"
#include "harness.h"
#include "ref_gla.h"

typedef struct gcase {
  const char *name;
  int B, H, K, V;
  int lens[8];
  int state_in, dstate_out;
  uint32_t chunk;
  double glo, ghi; /* per-token decay drawn in [glo, ghi) */
} gcase;

/* Inputs of one case, in float (device) and double (oracle). */
typedef struct inputs {
  int B, H, K, V, Ttot;
  int32_t off[9];
  size_t nk, nv, ns;
  float *q, *k, *v, *g, *s0, *dout, *dsT;
  double *dq_, *dk_, *dv_, *dg_, *ds0_, *ddout, *ddsT;
} inputs;

static double *to_d(const float *x, size_t n) {
  double *d = th_dalloc(n);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

static float *randf(size_t n, float lo, float hi) {
  float *x = th_alloc(n);
  th_rand(x, n, lo, hi);
  return x;
}

static void make_inputs(inputs *in, const gcase *c) {
  memset(in, 0, sizeof *in);
  in->B = c->B, in->H = c->H, in->K = c->K, in->V = c->V;
  in->off[0] = 0;
  for (int b = 0; b < c->B; b++) in->off[b + 1] = in->off[b] + c->lens[b];
  in->Ttot = in->off[c->B];
  in->nk = (size_t)in->Ttot * c->H * c->K;
  in->nv = (size_t)in->Ttot * c->H * c->V;
  in->ns = (size_t)c->B * c->H * c->K * c->V;
  in->q = randf(in->nk, -1, 1);
  in->k = randf(in->nk, -1, 1);
  in->v = randf(in->nv, -1, 1);
  in->g = th_alloc(in->nk);
  for (size_t i = 0; i < in->nk; i++)
    in->g[i] = (float)log(c->glo + (c->ghi - c->glo) * th_randu());
  in->s0 = randf(in->ns, -1, 1);
  in->dout = randf(in->nv, -1, 1);
  in->dsT = randf(in->ns, -1, 1);
}

static void free_inputs(inputs *in) {
  free(in->q), free(in->k), free(in->v), free(in->g), free(in->s0), free(in->dout),
      free(in->dsT);
}

static dtr_lin_desc desc_of(const inputs *in, uint32_t chunk) {
  return (dtr_lin_desc){(uint32_t)in->B, (uint32_t)in->Ttot, (uint32_t)in->H, (uint32_t)in->K,
                        (uint32_t)in->V, (float)(1.0 / sqrt(in->K)), chunk, 0, 0};
}

static void check(const char *what, const float *got, const double *ref, size_t n,
                  double rel) {
  double mx = 0;
  for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
  th_check(what, got, ref, n, rel, rel * 10 * mx + 1e-30, 1e-2);
}

/* Forward and backward of one case against the oracle. With f16, q, k and v are
 * packed fp16 (io_f16) and the oracle runs on them rounded to fp16, at the same
 * tolerances; and the packed buffers read as fp32 must miss the oracle. */
static void run_case(dtr_ctx *ctx, const gcase *c, int backward, int f16) {
  inputs in;
  make_inputs(&in, c);
  dtr_lin_desc d = desc_of(&in, c->chunk);
  d.io_f16 = (uint32_t)f16;
  const char *tag = f16 ? " (fp16 q, k, v)" : "";
  size_t nk = in.nk, nv = in.nv, ns = in.ns;
  double *q, *k, *v, *g = to_d(in.g, nk);
  dtr_buf *bq, *bk, *bv;
  if (f16) { /* fp32-sized, zeros after the halves: room for the fp32 read below */
    bq = th_buf_f16(ctx, in.q, nk, nk * 4, &q);
    bk = th_buf_f16(ctx, in.k, nk, nk * 4, &k);
    bv = th_buf_f16(ctx, in.v, nv, nv * 4, &v);
  } else {
    q = to_d(in.q, nk), k = to_d(in.k, nk), v = to_d(in.v, nv);
    bq = th_buf(ctx, in.q, nk * 4), bk = th_buf(ctx, in.k, nk * 4), bv = th_buf(ctx, in.v, nv * 4);
  }
  double *s0 = to_d(in.s0, ns), *dout = to_d(in.dout, nv), *dsT = to_d(in.dsT, ns);
  double *o = th_dalloc(nv), *sT = th_dalloc(ns);
  ref_gla_chunk_fwd(o, sT, q, k, v, g, c->state_in ? s0 : NULL, in.off, in.B, in.H, in.K,
                    in.V, d.scale);

  dtr_buf *bg = th_buf(ctx, in.g, nk * 4), *bs0 = th_buf(ctx, in.s0, ns * 4),
          *boff = th_buf(ctx, in.off, (in.B + 1) * 4);
  dtr_buf *bo = th_poison(ctx, nv * 4 + 4), *bsT = th_poison(ctx, ns * 4);
  th_ok(ctx,
        dtr_op_gla_chunk_fwd(ctx, dtr_whole(bo), dtr_whole(bsT), dtr_whole(bq), dtr_whole(bk),
                             dtr_whole(bv), dtr_whole(bg),
                             c->state_in ? dtr_whole(bs0) : DTR_NONE, dtr_whole(boff), &d),
        "gla_chunk_fwd");
  float *got = th_alloc(nv > ns ? nv : ns);
  char what[160];
  th_get(ctx, bo, got, nv * 4);
  snprintf(what, sizeof what, "fwd o %s%s", c->name, tag);
  check(what, got, o, nv, 1e-4);
  th_get(ctx, bsT, got, ns * 4);
  snprintf(what, sizeof what, "fwd state_out %s%s", c->name, tag);
  check(what, got, sT, ns, 1e-4);
  if (f16) { /* the oracle on unrounded inputs; the halves read as fp32 (io_f16 = 0) */
    double *q32 = to_d(in.q, nk), *k32 = to_d(in.k, nk), *v32 = to_d(in.v, nv);
    double *o32 = th_dalloc(nv);
    ref_gla_chunk_fwd(o32, NULL, q32, k32, v32, g, c->state_in ? s0 : NULL, in.off, in.B, in.H,
                      in.K, in.V, d.scale);
    float *got32 = th_alloc(nv);
    dtr_lin_desc d32 = d;
    d32.io_f16 = 0;
    th_get(ctx, bo, got, nv * 4);
    th_ok(ctx,
          dtr_op_gla_chunk_fwd(ctx, dtr_whole(bo), dtr_whole(bsT), dtr_whole(bq),
                               dtr_whole(bk), dtr_whole(bv), dtr_whole(bg),
                               c->state_in ? dtr_whole(bs0) : DTR_NONE, dtr_whole(boff), &d32),
          "gla_chunk_fwd reading the halves as fp32");
    th_get(ctx, bo, got32, nv * 4);
    snprintf(what, sizeof what, "fwd o %s", c->name);
    th_expect_f16(what, got, got32, o, o32, nv);
    free(q32), free(k32), free(v32), free(o32), free(got32);
  }

  if (backward) {
    double *dq = th_dalloc(nk), *dk = th_dalloc(nk), *dv = th_dalloc(nv), *dg = th_dalloc(nk),
           *ds0 = th_dalloc(ns);
    ref_gla_chunk_bwd(dq, dk, dv, dg, ds0, dout, c->dstate_out ? dsT : NULL, q, k, v, g,
                      c->state_in ? s0 : NULL, in.off, in.B, in.H, in.K, in.V, d.scale);
    dtr_buf *bdout = th_buf(ctx, in.dout, nv * 4), *bdsT = th_buf(ctx, in.dsT, ns * 4);
    dtr_buf *bdq = th_poison(ctx, nk * 4), *bdk = th_poison(ctx, nk * 4),
            *bdv = th_poison(ctx, nv * 4), *bdg = th_poison(ctx, nk * 4),
            *bds0 = th_poison(ctx, ns * 4);
    size_t wsb = dtr_op_gla_chunk_bwd_workspace(&d);
    dtr_buf *bws = th_poison(ctx, wsb);
    th_ok(ctx,
          dtr_op_gla_chunk_bwd(ctx, dtr_whole(bdq), dtr_whole(bdk), dtr_whole(bdv),
                               dtr_whole(bdg), dtr_whole(bds0), dtr_whole(bdout),
                               c->dstate_out ? dtr_whole(bdsT) : DTR_NONE, dtr_whole(bq),
                               dtr_whole(bk), dtr_whole(bv), dtr_whole(bg),
                               c->state_in ? dtr_whole(bs0) : DTR_NONE, dtr_whole(boff),
                               dtr_whole(bws), &d),
          "gla_chunk_bwd");
    float *gg = th_alloc(nk > nv ? (nk > ns ? nk : ns) : (nv > ns ? nv : ns));
    struct { const char *n; dtr_buf *b; double *r; size_t len; } outs[] = {
        {"dq", bdq, dq, nk}, {"dk", bdk, dk, nk}, {"dv", bdv, dv, nv},
        {"dgk", bdg, dg, nk}, {"dstate_in", bds0, ds0, ns}};
    for (int i = 0; i < 5; i++) {
      th_get(ctx, outs[i].b, gg, outs[i].len * 4);
      snprintf(what, sizeof what, "bwd %s %s%s", outs[i].n, c->name, tag);
      /* Gradients get 5e-4: dgk is a reverse cumulative sum over the sequence, and
       * with decays of e^-8 its fp32 rounding reached 1.3e-4 relative on some
       * seeds while every element stayed within its own tolerance. */
      check(what, gg, outs[i].r, outs[i].len, 5e-4);
    }
    free(gg), free(dq), free(dk), free(dv), free(dg), free(ds0);
    dtr_buf *bb[] = {bdout, bdsT, bdq, bdk, bdv, bdg, bds0, bws};
    for (int i = 0; i < 8; i++) dtr_buf_destroy(ctx, bb[i]);
  }
  dtr_buf *bb[] = {bq, bk, bv, bg, bs0, boff, bo, bsT};
  for (int i = 0; i < 8; i++) dtr_buf_destroy(ctx, bb[i]);
  free(got), free(q), free(k), free(v), free(g), free(s0), free(dout), free(dsT), free(o),
      free(sT);
  free_inputs(&in);
}

/* fp16 q, k, v on a device without RGBA16F texel views: the texel path must fall
 * back to the storage kernels (an RGBA16F view there would fail the dispatch).
 * The ops consult the device info, so clearing its flag makes this device one. */
static void test_no_texel_f16(dtr_ctx *ctx, const gcase *c) {
  int had = th_set_texel_f16(ctx, 0);
  printf("fp16 q, k, v without RGBA16F texel views (this device: %s)\n", had ? "has them" : "none");
  run_case(ctx, c, 1, 1);
  th_set_texel_f16(ctx, had);
}

/* The inputs of decode step t of every sequence, (B, H, K|V) each, into the host
 * arrays sq, sk, sv, sg and their device buffers dev[0..3]. */
static void load_step(dtr_ctx *ctx, const inputs *in, int t, float *sq, float *sk, float *sv,
                      float *sg, dtr_buf *const dev[4]) {
  size_t hk = (size_t)in->H * in->K, hv = (size_t)in->H * in->V;
  for (int b = 0; b < in->B; b++) {
    size_t src = (size_t)(in->off[b] + t);
    memcpy(sq + b * hk, in->q + src * hk, hk * 4);
    memcpy(sk + b * hk, in->k + src * hk, hk * 4);
    memcpy(sg + b * hk, in->g + src * hk, hk * 4);
    memcpy(sv + b * hv, in->v + src * hv, hv * 4);
  }
  th_ok(ctx, dtr_buf_upload(ctx, dev[0], 0, sq, in->B * hk * 4), "upload");
  th_ok(ctx, dtr_buf_upload(ctx, dev[1], 0, sk, in->B * hk * 4), "upload");
  th_ok(ctx, dtr_buf_upload(ctx, dev[2], 0, sv, in->B * hv * 4), "upload");
  th_ok(ctx, dtr_buf_upload(ctx, dev[3], 0, sg, in->B * hk * 4), "upload");
}

/* One device decode step (dd) on state S from the inputs in dev[0..3] (q, k, v,
 * gk), the output (B, H, V) through dob/so scattered into all at token t of
 * each sequence. dob is poisoned first, so an unwritten output fails. */
static void device_step(dtr_ctx *ctx, const inputs *in, int t, const dtr_lin_desc *dd,
                        dtr_view S, dtr_buf *const dev[4], dtr_buf *dob, float *so,
                        float *all, const char *what) {
  size_t hv = (size_t)in->H * in->V;
  th_ok(ctx, dtr_buf_fill(ctx, dob, 0, in->B * hv * 4, 0x7fc0dead), "fill");
  th_ok(ctx,
        dtr_op_gla_decode(ctx, dtr_whole(dob), S, dtr_whole(dev[0]), dtr_whole(dev[1]),
                          dtr_whole(dev[2]), dtr_whole(dev[3]), dd),
        what);
  th_get(ctx, dob, so, in->B * hv * 4);
  for (int b = 0; b < in->B; b++)
    memcpy(all + (size_t)(in->off[b] + t) * hv, so + b * hv, hv * 4);
}

/* The fp16 decode state (gla_decode_s16, dtr_lin_desc.state_f16): a state packed
 * by dtr_op_pack_f16 holds exactly the host's round-to-nearest-even halves and
 * unpacks to them; then T decode steps against the oracle whose state is
 * rounded to fp16 after every step, as the kernel stores it, and (looser)
 * against the fp32 oracle: what the halved state costs. */
static void test_decode_f16(dtr_ctx *ctx) {
  const int B = 2, H = 3, K = 16, V = 24, T = 40;
  gcase c = {"decode f16", B, H, K, V, {T, T}, 1, 0, 16, 0.5, 0.999};
  inputs in;
  make_inputs(&in, &c);
  dtr_lin_desc dd = desc_of(&in, 16);
  dd.Ttot = B;
  dd.state_f16 = 1;
  size_t ns = in.ns, nv = in.nv, hk = (size_t)H * K, hv = (size_t)H * V;
  dtr_buf *b32 = th_buf(ctx, in.s0, ns * 4), *bS = th_poison(ctx, ns * 2),
          *bback = th_poison(ctx, ns * 4);
  th_ok(ctx, dtr_op_pack_f16(ctx, dtr_whole(bS), dtr_whole(b32), (uint32_t)ns), "pack_f16");
  th_ok(ctx, dtr_op_unpack_f16(ctx, dtr_whole(bback), dtr_whole(bS), (uint32_t)ns),
        "unpack_f16");
  uint16_t *words = malloc(ns * 2);
  float *back = th_alloc(ns);
  th_get(ctx, bS, words, ns * 2);
  th_get(ctx, bback, back, ns * 4);
  double *S16 = th_dalloc(ns), *S32 = to_d(in.s0, ns);
  size_t badw = 0, badu = 0;
  for (size_t i = 0; i < ns; i++) {
    S16[i] = th_half(in.s0[i]);
    badw += th_unhalf(words[i]) != S16[i];
    badu += (double)back[i] != S16[i];
  }
  th_expect(badw == 0 && badu == 0,
            "pack_f16 == host halves (%zu of %zu differ), unpack_f16 == them (%zu differ)", badw,
            ns, badu);
  dtr_buf *dq = th_buf(ctx, NULL, B * hk * 4), *dk = th_buf(ctx, NULL, B * hk * 4),
          *dv = th_buf(ctx, NULL, B * hv * 4), *dg = th_buf(ctx, NULL, B * hk * 4),
          *dob = th_poison(ctx, B * hv * 4);
  float *sq = th_alloc(B * hk), *sk = th_alloc(B * hk), *sv = th_alloc(B * hv),
        *sg = th_alloc(B * hk), *so = th_alloc(B * hv), *all = th_alloc(nv);
  double *qd = th_dalloc(B * hk), *kd = th_dalloc(B * hk), *vd = th_dalloc(B * hv),
         *gd = th_dalloc(B * hk), *od = th_dalloc(B * hv), *o16 = th_dalloc(nv),
         *o32 = th_dalloc(nv);
  dtr_buf *const dev[4] = {dq, dk, dv, dg};
  for (int t = 0; t < T; t++) {
    load_step(ctx, &in, t, sq, sk, sv, sg, dev);
    for (size_t i = 0; i < B * hk; i++) qd[i] = sq[i], kd[i] = sk[i], gd[i] = sg[i];
    for (size_t i = 0; i < B * hv; i++) vd[i] = sv[i];
    ref_gla_decode(od, S16, qd, kd, vd, gd, B, H, K, V, dd.scale);
    for (size_t i = 0; i < ns; i++) S16[i] = th_half(S16[i]);
    for (int b = 0; b < B; b++)
      memcpy(o16 + (size_t)(in.off[b] + t) * hv, od + b * hv, hv * sizeof(double));
    ref_gla_decode(od, S32, qd, kd, vd, gd, B, H, K, V, dd.scale);
    for (int b = 0; b < B; b++)
      memcpy(o32 + (size_t)(in.off[b] + t) * hv, od + b * hv, hv * sizeof(double));
    device_step(ctx, &in, t, &dd, dtr_whole(bS), dev, dob, so, all, "gla_decode_s16");
  }
  check("fp16 state: decode == oracle with an fp16 state", all, o16, nv, 1e-4);
  check("fp16 state: decode == fp32 oracle (looser)", all, o32, nv, 3e-3);
  th_ok(ctx, dtr_op_unpack_f16(ctx, dtr_whole(bback), dtr_whole(bS), (uint32_t)ns), "unpack");
  th_get(ctx, bback, back, ns * 4);
  check("fp16 state: final state == oracle's fp16 state", back, S16, ns, 1e-4);
  /* an fp32-sized state view is accepted, a smaller one than the halves is not */
  dtr_view small = {bS, 0, ns * 2 - 4};
  th_expect(dtr_op_gla_decode(ctx, dtr_whole(dob), small, dtr_whole(dq), dtr_whole(dk),
                              dtr_whole(dv), dtr_whole(dg), &dd) == DTR_ERR_INVALID,
            "an fp16 state view short of B H K V halves is refused");
  dtr_buf *bb[] = {b32, bS, bback, dq, dk, dv, dg, dob};
  for (int i = 0; i < 8; i++) dtr_buf_destroy(ctx, bb[i]);
  free(words), free(back), free(S16), free(S32), free(sq), free(sk), free(sv), free(sg),
      free(so), free(all), free(qd), free(kd), free(vd), free(gd), free(od), free(o16),
      free(o32);
  free_inputs(&in);
}

/* Decode token by token equals the chunked forward; and a prefill (forward with
 * state_out) followed by decode steps equals one forward over the whole text. */
static void test_decode(dtr_ctx *ctx) {
  const int B = 2, H = 3, K = 16, V = 24, T = 21, P = 13; /* P prefill tokens */
  gcase c = {"decode", B, H, K, V, {T, T}, 1, 0, 16, 0.5, 0.999};
  inputs in;
  make_inputs(&in, &c);
  dtr_lin_desc d = desc_of(&in, 16);
  size_t nk = in.nk, nv = in.nv, ns = in.ns;
  double *q = to_d(in.q, nk), *k = to_d(in.k, nk), *v = to_d(in.v, nv), *g = to_d(in.g, nk);
  double *s0 = to_d(in.s0, ns), *o = th_dalloc(nv), *sT = th_dalloc(ns);
  ref_gla_chunk_fwd(o, sT, q, k, v, g, s0, in.off, B, H, K, V, d.scale);

  /* device: prefill the first P tokens of each sequence, then decode the rest.
   * Packed layout: sequence b's token t is row off[b] + t. */
  int32_t poff[3] = {0, P, 2 * P};
  size_t hk = (size_t)H * K, hv = (size_t)H * V;
  float *pq = th_alloc(2 * P * hk), *pk = th_alloc(2 * P * hk), *pv = th_alloc(2 * P * hv),
        *pg = th_alloc(2 * P * hk);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < P; t++) {
      size_t src = (size_t)(in.off[b] + t), dst = (size_t)(b * P + t);
      memcpy(pq + dst * hk, in.q + src * hk, hk * 4);
      memcpy(pk + dst * hk, in.k + src * hk, hk * 4);
      memcpy(pg + dst * hk, in.g + src * hk, hk * 4);
      memcpy(pv + dst * hv, in.v + src * hv, hv * 4);
    }
  dtr_lin_desc dp = d;
  dp.Ttot = 2 * P;
  dtr_buf *bq = th_buf(ctx, pq, 2 * P * hk * 4), *bk = th_buf(ctx, pk, 2 * P * hk * 4),
          *bv = th_buf(ctx, pv, 2 * P * hv * 4), *bg = th_buf(ctx, pg, 2 * P * hk * 4),
          *boff = th_buf(ctx, poff, sizeof poff), *bs0 = th_buf(ctx, in.s0, ns * 4);
  dtr_buf *bo = th_poison(ctx, 2 * P * hv * 4), *bS = th_poison(ctx, ns * 4);
  th_ok(ctx,
        dtr_op_gla_chunk_fwd(ctx, dtr_whole(bo), dtr_whole(bS), dtr_whole(bq), dtr_whole(bk),
                             dtr_whole(bv), dtr_whole(bg), dtr_whole(bs0), dtr_whole(boff),
                             &dp),
        "prefill");
  float *po = th_alloc(2 * P * hv), *all = th_alloc(nv);
  th_get(ctx, bo, po, 2 * P * hv * 4);
  for (int b = 0; b < B; b++)
    memcpy(all + (size_t)(in.off[b]) * hv, po + (size_t)b * P * hv, P * hv * 4);
  /* decode steps: q etc. (B, H, K) per step */
  dtr_lin_desc dd = d;
  dd.Ttot = B;
  dtr_buf *dq = th_buf(ctx, NULL, B * hk * 4), *dk = th_buf(ctx, NULL, B * hk * 4),
          *dv = th_buf(ctx, NULL, B * hv * 4), *dg = th_buf(ctx, NULL, B * hk * 4),
          *dob = th_poison(ctx, B * hv * 4);
  float *sq = th_alloc(B * hk), *sk = th_alloc(B * hk), *sv = th_alloc(B * hv),
        *sg = th_alloc(B * hk), *so = th_alloc(B * hv);
  dtr_buf *const dev[4] = {dq, dk, dv, dg};
  for (int t = P; t < T; t++) {
    load_step(ctx, &in, t, sq, sk, sv, sg, dev);
    device_step(ctx, &in, t, &dd, dtr_whole(bS), dev, dob, so, all, "gla_decode");
  }
  check("prefill + decode o == one forward", all, o, nv, 1e-4);
  float *st = th_alloc(ns);
  th_get(ctx, bS, st, ns * 4);
  check("prefill + decode state == forward state_out", st, sT, ns, 1e-4);

  /* decode alone from state_in, every token: against the oracle's decode */
  double *S = to_d(in.s0, ns), *od = th_dalloc(B * hv), *ods = th_dalloc(nv);
  th_ok(ctx, dtr_buf_upload(ctx, bS, 0, in.s0, ns * 4), "upload");
  double *dqd = th_dalloc(B * hk), *dkd = th_dalloc(B * hk), *dvd = th_dalloc(B * hv),
         *dgd = th_dalloc(B * hk);
  for (int t = 0; t < T; t++) {
    load_step(ctx, &in, t, sq, sk, sv, sg, dev);
    for (size_t i = 0; i < B * hk; i++) dqd[i] = sq[i], dkd[i] = sk[i], dgd[i] = sg[i];
    for (size_t i = 0; i < B * hv; i++) dvd[i] = sv[i];
    ref_gla_decode(od, S, dqd, dkd, dvd, dgd, B, H, K, V, d.scale);
    for (int b = 0; b < B; b++)
      memcpy(ods + (size_t)(in.off[b] + t) * hv, od + b * hv, hv * sizeof(double));
    device_step(ctx, &in, t, &dd, dtr_whole(bS), dev, dob, so, all, "gla_decode");
  }
  check("decode every token == oracle decode", all, ods, nv, 1e-4);
  check("oracle decode == oracle forward", all, o, nv, 1e-4);
  th_get(ctx, bS, st, ns * 4);
  check("decode state == oracle state", st, S, ns, 1e-4);

  dtr_buf *bb[] = {bq, bk, bv, bg, boff, bs0, bo, bS, dq, dk, dv, dg, dob};
  for (int i = 0; i < 13; i++) dtr_buf_destroy(ctx, bb[i]);
  free(pq), free(pk), free(pv), free(pg), free(po), free(all), free(sq), free(sk), free(sv),
      free(sg), free(so), free(st), free(S), free(od), free(ods), free(dqd), free(dkd),
      free(dvd), free(dgd);
  free(q), free(k), free(v), free(g), free(s0), free(o), free(sT);
  free_inputs(&in);
}

/* Finite differences of the oracle: L = <W, o> + <W2, S_T> in double. */
typedef struct fdctx {
  double *q, *k, *v, *g, *s0, *W, *W2, *o, *sT;
  int32_t off[3];
  int B, H, K, V;
  double scale;
} fdctx;

static double fd_loss(void *ud) {
  fdctx *f = ud;
  ref_gla_chunk_fwd(f->o, f->sT, f->q, f->k, f->v, f->g, f->s0, f->off, f->B, f->H, f->K,
                    f->V, f->scale);
  int T = f->off[f->B];
  double L = 0;
  for (size_t i = 0; i < (size_t)T * f->H * f->V; i++) L += f->W[i] * f->o[i];
  for (size_t i = 0; i < (size_t)f->B * f->H * f->K * f->V; i++) L += f->W2[i] * f->sT[i];
  return L;
}

static void test_fd(void) {
  fdctx f = {.B = 2, .H = 2, .K = 3, .V = 4, .off = {0, 5, 9}, .scale = 0.6};
  int T = 9;
  size_t nk = (size_t)T * f.H * f.K, nv = (size_t)T * f.H * f.V,
         ns = (size_t)f.B * f.H * f.K * f.V;
  double *arr[] = {f.q = th_dalloc(nk), f.k = th_dalloc(nk), f.v = th_dalloc(nv),
                   f.g = th_dalloc(nk), f.s0 = th_dalloc(ns), f.W = th_dalloc(nv),
                   f.W2 = th_dalloc(ns)};
  size_t lens[] = {nk, nk, nv, nk, ns, nv, ns};
  for (int a = 0; a < 7; a++)
    for (size_t i = 0; i < lens[a]; i++) arr[a][i] = 2 * th_randu() - 1;
  for (size_t i = 0; i < nk; i++) f.g[i] = log(0.5 + 0.499 * th_randu());
  f.o = th_dalloc(nv), f.sT = th_dalloc(ns);
  double *dq = th_dalloc(nk), *dk = th_dalloc(nk), *dv = th_dalloc(nv), *dg = th_dalloc(nk),
         *ds0 = th_dalloc(ns);
  ref_gla_chunk_bwd(dq, dk, dv, dg, ds0, f.W, f.W2, f.q, f.k, f.v, f.g, f.s0, f.off, f.B,
                    f.H, f.K, f.V, f.scale);
  double *an[] = {dq, dk, dv, dg, ds0};
  double *xs[] = {f.q, f.k, f.v, f.g, f.s0};
  size_t xl[] = {nk, nk, nv, nk, ns};
  const char *nm[] = {"oracle dq vs finite differences", "oracle dk vs finite differences",
                      "oracle dv vs finite differences", "oracle dgk vs finite differences",
                      "oracle dstate_in vs finite differences"};
  for (int a = 0; a < 5; a++) {
    double *num = th_dalloc(xl[a]);
    th_fd(fd_loss, &f, xs[a], xl[a], 1e-5, num);
    th_check_d(nm[a], an[a], num, xl[a], 1e-7);
    free(num);
  }
  for (int a = 0; a < 7; a++) free(arr[a]);
  free(f.o), free(f.sT), free(dq), free(dk), free(dv), free(dg), free(ds0);
}

static double gate_loss_x[64], gate_loss_w[64];
static double gate_loss(void *ud) {
  (void)ud;
  double gk[64], L = 0;
  ref_gla_gate_fwd(gk, gate_loss_x, 64, 16.0);
  for (int i = 0; i < 64; i++) L += gate_loss_w[i] * gk[i];
  return L;
}

static void test_gate(dtr_ctx *ctx) {
  const uint32_t n = 5000;
  float *x = randf(n, -30, 30), *dg = randf(n, -1, 1), *got = th_alloc(n);
  double *xd = to_d(x, n), *dgd = to_d(dg, n), *r = th_dalloc(n);
  dtr_buf *bx = th_buf(ctx, x, n * 4), *bdg = th_buf(ctx, dg, n * 4),
          *bo = th_poison(ctx, n * 4);
  th_ok(ctx, dtr_op_gla_gate_fwd(ctx, dtr_whole(bo), dtr_whole(bx), n, 16.0f), "gate_fwd");
  th_get(ctx, bo, got, n * 4);
  ref_gla_gate_fwd(r, xd, n, 16.0);
  th_check("gate fwd logsigmoid(x)/16", got, r, n, 1e-5, 0, 1e-5);
  th_ok(ctx, dtr_buf_fill(ctx, bo, 0, n * 4, 0x7fc0dead), "fill");
  th_ok(ctx, dtr_op_gla_gate_bwd(ctx, dtr_whole(bo), dtr_whole(bdg), dtr_whole(bx), n, 16.0f),
        "gate_bwd");
  th_get(ctx, bo, got, n * 4);
  ref_gla_gate_bwd(r, dgd, xd, n, 16.0);
  th_check("gate bwd", got, r, n, 1e-5, 1e-12, 1e-5);
  /* the oracle's gate gradient against finite differences */
  for (int i = 0; i < 64; i++)
    gate_loss_x[i] = 20 * th_randu() - 10, gate_loss_w[i] = 2 * th_randu() - 1;
  double an[64], num[64];
  ref_gla_gate_bwd(an, gate_loss_w, gate_loss_x, 64, 16.0);
  th_fd(gate_loss, NULL, gate_loss_x, 64, 1e-5, num);
  th_check_d("oracle gate bwd vs finite differences", an, num, 64, 1e-7);
  dtr_buf_destroy(ctx, bx), dtr_buf_destroy(ctx, bdg), dtr_buf_destroy(ctx, bo);
  free(x), free(dg), free(got), free(xd), free(dgd), free(r);
}

/* A long sequence stays finite and matches the oracle. */
static void test_long(dtr_ctx *ctx) {
  gcase c = {"T=8192 H=2 K=V=64", 1, 2, 64, 64, {8192}, 1, 1, 0, 0.5, 0.999};
  run_case(ctx, &c, 0, 0);
}

static void test_errors(dtr_ctx *ctx) {
  dtr_buf *b = th_buf(ctx, NULL, 4096);
  dtr_view w = dtr_whole(b);
  dtr_lin_desc d = {1, 16, 1, 6, 8, 0.5f, 0, 0, 0};
  dtr_status st = dtr_op_gla_chunk_fwd(ctx, w, DTR_NONE, w, w, w, w, DTR_NONE, w, &d);
  th_expect(st == DTR_ERR_INVALID, "K = 6 is refused (%s)", dtr_ctx_error(ctx));
  d.K = 8;
  d.Ttot = 1000;
  st = dtr_op_gla_chunk_fwd(ctx, w, DTR_NONE, w, w, w, w, DTR_NONE, w, &d);
  th_expect(st == DTR_ERR_INVALID, "a view too small is refused (%s)", dtr_ctx_error(ctx));
  d.Ttot = 3000;
  d.K = 64;
  dtr_buf *big = th_buf(ctx, NULL, (size_t)3000 * 64 * 8 * 4);
  dtr_view wb = dtr_whole(big);
  st = dtr_op_gla_chunk_fwd(ctx, wb, DTR_NONE, wb, wb, wb, wb, DTR_NONE, wb, &d);
  th_expect(st == DTR_ERR_UNSUPPORTED, "a long forward without state_out is refused (%s)",
            dtr_ctx_error(ctx));
  dtr_buf_destroy(ctx, big);
  d.K = 8;
  d.Ttot = 16;
  d.chunk = 24;
  st = dtr_op_gla_chunk_fwd(ctx, w, DTR_NONE, w, w, w, w, DTR_NONE, w, &d);
  th_expect(st == DTR_ERR_INVALID, "chunk 24 is refused (%s)", dtr_ctx_error(ctx));
  /* fp16 q, k, v need half the bytes, not fewer: 16 x 8 halves are 256 bytes */
  d.chunk = 0;
  d.io_f16 = 1;
  dtr_view q16 = {b, 0, 252};
  st = dtr_op_gla_chunk_fwd(ctx, w, DTR_NONE, q16, w, w, w, DTR_NONE, w, &d);
  th_expect(st == DTR_ERR_INVALID && strstr(dtr_ctx_error(ctx), "packed fp16"),
            "an fp16 q view short of its halves is refused (%s)", dtr_ctx_error(ctx));
  d.io_f16 = 0;
  st = dtr_op_gla_gate_fwd(ctx, w, w, 2000, 16.0f);
  th_expect(st == DTR_ERR_INVALID, "gate over a short view is refused (%s)",
            dtr_ctx_error(ctx));
  dtr_buf_destroy(ctx, b);
}

int main(void) {
  dtr_ctx *ctx = th_ctx();
  /* Two kernel shapes only (C, K, V) = (64, 64, 64) and (16, 16, 24): every new
   * shape is a fresh pipeline, and lavapipe takes tens of seconds to compile the
   * backward kernels once (the Mesa disk cache keeps them for later runs). */
  const gcase cases[] = {
      {"T=150 H=1 K=V=64", 1, 1, 64, 64, {150}, 0, 0, 0, 0.5, 0.999},
      {"T=37 (< chunk) H=2 state_in", 1, 2, 64, 64, {37}, 1, 1, 0, 0.5, 0.999},
      {"T=1 H=3", 1, 3, 64, 64, {1}, 1, 1, 0, 0.5, 0.999},
      {"varlen {70,1,129,0,64} H=2", 5, 2, 64, 64, {70, 1, 129, 0, 64}, 1, 1, 0, 0.5,
       0.999},
      {"T=2500 varlen {2500,300}, windows of 1024 tokens", 2, 1, 64, 64, {2500, 300}, 1, 1,
       0, 0.5, 0.999},
      {"chunk 16, K=16 V=24, varlen {50,7} H=2", 2, 2, 16, 24, {50, 7}, 1, 1, 16, 0.5,
       0.999},
      {"strong decays e^-8..e^-4 (elementwise path)", 1, 2, 16, 24, {100}, 1, 1, 16, 3.4e-4,
       1.8e-2},
  };
  /* Both paths (the ops take the texel kernels on CPU devices); the texel one
   * once more in windows of 4 chunks, to walk the carry between dispatches. */
  const char *texel[2] = {"1", "0"};
  for (int t = 0; t < 2; t++) {
    setenv("DTR_GLA_TEXEL", texel[t], 1);
    printf("chunked kernels: %s\n", t ? "storage buffers" : "texel buffers");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(ctx, &cases[i], 1, 0);
    test_long(ctx);
    /* fp16 q, k, v: varlen, ragged chunks, two heads; K != V at chunk 16; the
     * strong decays of the elementwise path */
    run_case(ctx, &cases[3], 1, 1);
    run_case(ctx, &cases[5], 1, 1);
    run_case(ctx, &cases[6], 1, 1);
  }
  setenv("DTR_GLA_TEXEL", "1", 1);
  setenv("DTR_GLA_TEX_WINDOW", "4", 1);
  run_case(ctx, &cases[4], 1, 0);
  run_case(ctx, &cases[4], 1, 1);
  unsetenv("DTR_GLA_TEX_WINDOW");
  test_no_texel_f16(ctx, &cases[3]);
  unsetenv("DTR_GLA_TEXEL");
  test_decode(ctx);
  test_decode_f16(ctx);
  test_fd();
  test_gate(ctx);
  test_errors(ctx);
  return th_finish();
}
