/* bench_linear.c — `dtr bench linear`: the token mixers of the three student
 * blocks against full causal attention, for training (forward, forward+backward
 * over whole sequences) and for decoding (one token against a KV cache of the
 * context length, or against a linear block's fixed-size state).
 *
 * A mixer is what differs between the blocks; the projections around it
 * (q/k/v/o, gates) are dense matmuls that every variant shares and are left
 * out. attn = flash attention; gla = GLA chunk kernel; gdn = three short convs,
 * two L2 norms and the Gated DeltaNet chunk kernel; jet = two SiLUs, the
 * dynamic conv, two L2 norms and the same chunk kernel. A linear mixer's
 * training rows are timed again with its chunk kernels reading q, k, v as
 * packed fp16 (dtr_lin_desc.io_f16). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dtr_linear.h"

enum { M_ATTN, M_GLA, M_GDN, M_JET, M_COUNT };
static const char *mixer_name[M_COUNT] = {"attn", "gla", "gdn", "jet"};

/* Buffers of one shape; every tensor is (T, H, D) unless noted. */
typedef struct lb {
  dtr_ctx *ctx;
  int mixer;
  uint32_t T, H, D, steps, f16; /* f16: decode with packed fp16 states */
  uint32_t io16; /* the chunk kernels read q16, k16, v16 (packed fp16 q, k, v) */
  dtr_buf *q, *k, *v, *o, *q0, *k0, *v0, *gk, *g, *beta, *lse, *kern, *wconv;
  dtr_buf *dq, *dk, *dv, *dout, *dgk, *dg, *dbeta, *dq0, *dk0, *dv0, *dkern, *dwconv;
  dtr_buf *off, *ws, *state, *q16, *k16, *v16, *cq, *ck, *cv;
} lb;

static dtr_view W(dtr_buf *b) { return dtr_whole(b); }
/* q, k or v as the chunk kernels read it: x32, or its packed copy x16 */
static dtr_view IO(const lb *b, dtr_buf *x32, dtr_buf *x16) { return W(b->io16 ? x16 : x32); }

static dtr_lin_desc desc_of(const lb *b, uint32_t T) {
  dtr_lin_desc d = {.B = 1, .Ttot = T, .H = b->H, .K = b->D, .V = b->D,
                    .scale = 1.0f / sqrtf((float)b->D), .chunk = 64, .io_f16 = b->io16};
  return d;
}

static dtr_status rec_fwd(void *ud) {
  lb *b = ud;
  dtr_ctx *c = b->ctx;
  uint32_t T = b->T, H = b->H, D = b->D, n = T * H * D, C = H * D;
  dtr_lin_desc d = desc_of(b, T);
  dtr_status st;
  switch (b->mixer) {
  case M_ATTN: {
    dtr_attn_desc a = {1, T, T, T, H, H, D, d.scale};
    return dtr_op_attention_fwd(c, W(b->o), W(b->lse), W(b->q), W(b->k), W(b->v), &a);
  }
  case M_GLA:
    /* state_out: GLA carries its state through it on devices where a long
     * sequence takes several dispatches (lavapipe's loop limit) */
    return dtr_op_gla_chunk_fwd(c, W(b->o), W(b->state), IO(b, b->q, b->q16),
                                IO(b, b->k, b->k16), IO(b, b->v, b->v16), W(b->gk), DTR_NONE,
                                W(b->off), &d);
  case M_GDN:
    if ((st = dtr_op_shortconv_fwd(c, W(b->dq0), DTR_NONE, W(b->q0), W(b->wconv), DTR_NONE,
                                   W(b->off), 1, T, C, 1)) ||
        (st = dtr_op_shortconv_fwd(c, W(b->dk0), DTR_NONE, W(b->k0), W(b->wconv), DTR_NONE,
                                   W(b->off), 1, T, C, 1)) ||
        (st = dtr_op_shortconv_fwd(c, W(b->v), DTR_NONE, W(b->v0), W(b->wconv), DTR_NONE,
                                   W(b->off), 1, T, C, 1)))
      return st;
    break;
  case M_JET:
    if ((st = dtr_op_silu_fwd(c, W(b->dq0), W(b->q0), n)) ||
        (st = dtr_op_silu_fwd(c, W(b->dk0), W(b->k0), n)) ||
        (st = dtr_op_dynconv_fwd(c, W(b->v), DTR_NONE, W(b->v0), W(b->kern), DTR_NONE,
                                 W(b->off), 1, T, C, 1)))
      return st;
    break;
  }
  if ((st = dtr_op_l2norm_fwd(c, W(b->q), W(b->dq0), T * H, D, 1e-6f)) ||
      (st = dtr_op_l2norm_fwd(c, W(b->k), W(b->dk0), T * H, D, 1e-6f)))
    return st;
  /* with io16 the convs and norms still write q, k, v in fp32 (the same work);
   * the chunk kernel reads the copies packed from them before timing */
  return dtr_op_gdn_chunk_fwd(c, W(b->o), W(b->state), IO(b, b->q, b->q16), IO(b, b->k, b->k16),
                              IO(b, b->v, b->v16), W(b->g), W(b->beta), DTR_NONE, W(b->off),
                              &d);
}

static dtr_status rec_fwdbwd(void *ud) {
  lb *b = ud;
  dtr_ctx *c = b->ctx;
  uint32_t T = b->T, H = b->H, D = b->D, n = T * H * D, C = H * D;
  dtr_lin_desc d = desc_of(b, T);
  dtr_status st = rec_fwd(ud);
  if (st) return st;
  switch (b->mixer) {
  case M_ATTN: {
    dtr_attn_desc a = {1, T, T, T, H, H, D, d.scale};
    return dtr_op_attention_bwd(c, W(b->dq), W(b->dk), W(b->dv), W(b->dout), W(b->q),
                                W(b->k), W(b->v), W(b->o), W(b->lse), &a);
  }
  case M_GLA:
    return dtr_op_gla_chunk_bwd(c, W(b->dq), W(b->dk), W(b->dv), W(b->dgk), DTR_NONE,
                                W(b->dout), DTR_NONE, IO(b, b->q, b->q16), IO(b, b->k, b->k16),
                                IO(b, b->v, b->v16), W(b->gk), DTR_NONE, W(b->off), W(b->ws),
                                &d);
  }
  if ((st = dtr_op_gdn_chunk_bwd(c, W(b->dq), W(b->dk), W(b->dv), W(b->dg), W(b->dbeta),
                                 DTR_NONE, W(b->dout), DTR_NONE, IO(b, b->q, b->q16),
                                 IO(b, b->k, b->k16), IO(b, b->v, b->v16), W(b->g), W(b->beta),
                                 DTR_NONE, W(b->off), W(b->ws), &d)) ||
      (st = dtr_op_l2norm_bwd(c, W(b->dq0), W(b->dq), W(b->q0), T * H, D, 1e-6f)) ||
      (st = dtr_op_l2norm_bwd(c, W(b->dk0), W(b->dk), W(b->k0), T * H, D, 1e-6f)))
    return st;
  if (b->mixer == M_GDN) {
    if ((st = dtr_op_shortconv_bwd(c, W(b->dq), W(b->dwconv), W(b->dq0), W(b->q0),
                                   W(b->wconv), DTR_NONE, W(b->off), 1, T, C, 1)) ||
        (st = dtr_op_shortconv_bwd(c, W(b->dk), W(b->dwconv), W(b->dk0), W(b->k0),
                                   W(b->wconv), DTR_NONE, W(b->off), 1, T, C, 1)))
      return st;
    return dtr_op_shortconv_bwd(c, W(b->dv0), W(b->dwconv), W(b->dv), W(b->v0), W(b->wconv),
                                DTR_NONE, W(b->off), 1, T, C, 1);
  }
  if ((st = dtr_op_silu_bwd(c, W(b->dq), W(b->dq0), W(b->q0), n)) ||
      (st = dtr_op_silu_bwd(c, W(b->dk), W(b->dk0), W(b->k0), n)))
    return st;
  return dtr_op_dynconv_bwd(c, W(b->dv0), W(b->dkern), W(b->dv), W(b->v0), W(b->kern),
                            DTR_NONE, W(b->off), 1, T, C, 1);
}

/* b->steps decode steps of one token (B = 1) at context b->T. */
static dtr_status rec_decode(void *ud) {
  lb *b = ud;
  dtr_ctx *c = b->ctx;
  uint32_t H = b->H, D = b->D, C = H * D;
  dtr_lin_desc d = desc_of(b, 1);
  d.state_f16 = b->f16;
  dtr_status st = DTR_OK;
  for (uint32_t s = 0; s < b->steps && !st; s++) {
    switch (b->mixer) {
    case M_ATTN: {
      dtr_attn_desc a = {1, 1, b->T, b->T, H, H, D, d.scale};
      st = dtr_op_attention_fwd(c, W(b->o), W(b->lse), W(b->q), W(b->k), W(b->v), &a);
      break;
    }
    case M_GLA:
      st = dtr_op_gla_decode(c, W(b->o), W(b->state), W(b->q), W(b->k), W(b->v), W(b->gk), &d);
      break;
    default:
      if (b->mixer == M_GDN) {
        if ((st = dtr_op_shortconv_decode(c, W(b->dq0), W(b->cq), W(b->q0), W(b->wconv), 1, C, 1)) ||
            (st = dtr_op_shortconv_decode(c, W(b->dk0), W(b->ck), W(b->k0), W(b->wconv), 1, C, 1)) ||
            (st = dtr_op_shortconv_decode(c, W(b->v), W(b->cv), W(b->v0), W(b->wconv), 1, C, 1)))
          return st;
      } else {
        if ((st = dtr_op_silu_fwd(c, W(b->dq0), W(b->q0), C)) ||
            (st = dtr_op_silu_fwd(c, W(b->dk0), W(b->k0), C)) ||
            (st = dtr_op_dynconv_decode(c, W(b->v), W(b->cv), W(b->v0), W(b->kern), 1, C, 1)))
          return st;
      }
      if ((st = dtr_op_l2norm_fwd(c, W(b->q), W(b->dq0), H, D, 1e-6f)) ||
          (st = dtr_op_l2norm_fwd(c, W(b->k), W(b->dk0), H, D, 1e-6f)))
        return st;
      st = dtr_op_gdn_decode(c, W(b->o), W(b->state), W(b->q), W(b->k), W(b->v), W(b->g),
                             W(b->beta), &d);
    }
  }
  return st;
}

static void lb_free(lb *b) {
  dtr_buf **all = &b->q;
  dtr_buf **end = &b->cv;
  for (dtr_buf **p = all; p <= end; p++) dtr_buf_destroy(b->ctx, *p), *p = NULL;
}

/* Allocates and fills with random-ish values: decays in (0.5, 1), betas in
 * (0, 1), everything else in (-1, 1). decode: T is the context; token tensors
 * hold one token, attention's k/v hold the whole cache. */
static int lb_alloc(lb *b, int decode) {
  dtr_ctx *c = b->ctx;
  uint32_t T = b->T, H = b->H, D = b->D;
  size_t tok = decode ? 1 : T;
  size_t n = tok * H * D, nh = tok * H, kv = (size_t)T * H * D;
  int attn = b->mixer == M_ATTN;
  struct { dtr_buf **b; size_t floats; float lo, hi; } spec[] = {
      {&b->q, n, -1, 1}, {&b->k, attn ? kv : n, -1, 1}, {&b->v, attn ? kv : n, -1, 1},
      {&b->o, n, 0, 0}, {&b->q0, n, -1, 1}, {&b->k0, n, -1, 1}, {&b->v0, n, -1, 1},
      {&b->gk, n, -0.3f, -0.001f}, {&b->g, nh, -0.3f, -0.001f}, {&b->beta, nh, 0.1f, 0.9f},
      {&b->lse, nh, 0, 0}, {&b->kern, 4 * n, -0.5f, 0.5f}, {&b->wconv, 4 * (size_t)H * D, -0.5f, 0.5f},
      {&b->dq, n, 0, 0}, {&b->dk, n, 0, 0}, {&b->dv, n, 0, 0}, {&b->dout, n, -1, 1},
      {&b->dgk, n, 0, 0}, {&b->dg, nh, 0, 0}, {&b->dbeta, nh, 0, 0}, {&b->dq0, n, 0, 0},
      {&b->dk0, n, 0, 0}, {&b->dv0, n, 0, 0}, {&b->dkern, 4 * n, 0, 0},
      {&b->dwconv, 4 * (size_t)H * D, 0, 0}, {&b->state, (size_t)H * D * D, 0, 0},
      {&b->q16, n / 2, 0, 0}, {&b->k16, n / 2, 0, 0}, {&b->v16, n / 2, 0, 0},
      {&b->cq, 3 * (size_t)H * D, 0, 0}, {&b->ck, 3 * (size_t)H * D, 0, 0},
      {&b->cv, 3 * (size_t)H * D, 0, 0}};
  size_t big = 0;
  for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++)
    if (spec[i].floats > big) big = spec[i].floats;
  float *h = malloc(big * 4);
  if (!h) return 0;
  uint64_t s = 12345;
  for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
    *spec[i].b = dtr_buf_create(c, spec[i].floats * 4);
    if (!*spec[i].b) { free(h); return 0; }
    for (size_t j = 0; j < spec[i].floats; j++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      h[j] = spec[i].lo + (spec[i].hi - spec[i].lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
    if (dtr_buf_upload(c, *spec[i].b, 0, h, spec[i].floats * 4)) { free(h); return 0; }
  }
  free(h);
  int32_t off[2] = {0, (int32_t)tok};
  b->off = dtr_buf_create(c, sizeof off);
  if (!b->off || dtr_buf_upload(c, b->off, 0, off, sizeof off)) return 0;
  dtr_lin_desc d = desc_of(b, (uint32_t)tok);
  size_t ws = b->mixer == M_GLA ? dtr_op_gla_chunk_bwd_workspace(&d)
                                : dtr_op_gdn_chunk_bwd_workspace(&d);
  b->ws = dtr_buf_create(c, ws ? ws : 4);
  return b->ws != NULL;
}

static int parse_list(const char *flag, const char *s, uint32_t *out, int max) {
  int n = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *tok = strtok(buf, ","); tok && n < max; tok = strtok(NULL, ",")) {
    long v;
    if (!cli_int(flag, tok, &v) || v <= 0) return 0;
    out[n++] = (uint32_t)v;
  }
  return n;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: dtr bench linear [flags]\n"
          "  Times the token mixers (GLA, Gated DeltaNet, JetBlock; projections excluded,\n"
          "  they are the same for all) against full causal attention: forward and\n"
          "  forward+backward over one sequence of T tokens, and decode time per token at\n"
          "  each context length (attention reads its KV cache, a linear mixer its state);\n"
          "  a linear mixer's decode is timed again with its state packed in fp16 (half\n"
          "  the bytes; DTR_STATE_F16=1 makes models decode that way), and its training\n"
          "  rows with the chunk kernels reading q, k, v as packed fp16 (io_f16, packed\n"
          "  once before timing; DTR_IO_F16=1 makes models train that way).\n"
          "  --T LIST        training lengths, 8 heads (default 512,2048,8192)\n"
          "  --heads N       heads for the training rows (default 8); a T=512 row with 32\n"
          "                  heads is always added\n"
          "  --ctx LIST      decode contexts (default 512,2048,16384,65536)\n"
          "  --dim N         head dim (default 64)\n"
          "  --mixers LIST   of attn,gla,gdn,jet (default all)\n"
          "  --steps N       decode steps per submit (default 16)\n"
          "  --repeat N      timed runs, median reported (default 3)\n"
          "  --quick         T=128, ctx 256 (a smoke run)\n"
          "  --device N      Vulkan device (default: DTR_DEVICE or the first GPU)\n"
          "  --json          one JSON object instead of tables\n");
}

/* dec16: ms per decode token with an fp16 state; fwd16, fb16: training times
 * with fp16 q, k, v (linear mixers; 0 otherwise) */
typedef struct row {
  int mixer;
  uint32_t T, H;
  double fwd, fb, dec, dec16;
  size_t state, state16;
  double fwd16, fb16;
} row;

/* Packs b's q, k, v (as the last forward left them) into q16, k16, v16 and
 * times the forward and forward+backward again with the chunk kernels reading
 * them; the packing runs once, before and outside the timed work. */
static int time_io16(lb *b, int repeat, row *r) {
  dtr_ctx *c = b->ctx;
  uint32_t n = b->T * b->H * b->D;
  if (dtr_op_pack_f16(c, W(b->q16), W(b->q), n) || dtr_op_pack_f16(c, W(b->k16), W(b->k), n) ||
      dtr_op_pack_f16(c, W(b->v16), W(b->v), n) || dtr_ctx_submit(c)) {
    fprintf(stderr, "dtr bench linear: %s\n", dtr_ctx_error(c));
    return 0;
  }
  b->io16 = 1;
  r->fwd16 = cli_time_ms(c, rec_fwd, b, repeat);
  r->fb16 = cli_time_ms(c, rec_fwdbwd, b, repeat);
  b->io16 = 0;
  return r->fwd16 >= 0 && r->fb16 >= 0;
}

int cmd_bench_linear(int argc, char **argv) {
  uint32_t Ts[8] = {512, 2048, 8192}, ctxs[8] = {512, 2048, 16384, 65536};
  int nT = 3, nctx = 4, json = 0, use[M_COUNT] = {1, 1, 1, 1};
  long device = -1, repeat = 3, heads = 8, dim = 64, steps = 16;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--quick")) { Ts[0] = 128; nT = 1; ctxs[0] = 256; nctx = 1; }
    else if (!strcmp(a, "--T") && v) { if (!(nT = parse_list(a, v, Ts, 8))) return 2; i++; }
    else if (!strcmp(a, "--ctx") && v) { if (!(nctx = parse_list(a, v, ctxs, 8))) return 2; i++; }
    else if (!strcmp(a, "--device") && v) { if (!cli_int(a, v, &device)) return 2; i++; }
    else if (!strcmp(a, "--repeat") && v) { if (!cli_int(a, v, &repeat) || repeat < 1) return 2; i++; }
    else if (!strcmp(a, "--heads") && v) { if (!cli_int(a, v, &heads) || heads < 1) return 2; i++; }
    else if (!strcmp(a, "--dim") && v) { if (!cli_int(a, v, &dim) || dim < 4) return 2; i++; }
    else if (!strcmp(a, "--steps") && v) { if (!cli_int(a, v, &steps) || steps < 1) return 2; i++; }
    else if (!strcmp(a, "--mixers") && v) {
      memset(use, 0, sizeof use);
      char buf[128];
      snprintf(buf, sizeof buf, "%s", v);
      for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        int k = -1;
        for (int m = 0; m < M_COUNT; m++) if (!strcmp(t, mixer_name[m])) k = m;
        if (k < 0) { fprintf(stderr, "dtr bench linear: unknown mixer '%s'\n", t); return 2; }
        use[k] = 1;
      }
      i++;
    } else {
      fprintf(stderr, "dtr bench linear: unknown or incomplete flag '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  dtr_ctx *ctx = cli_ctx((int)device);
  if (!ctx) return 1;
  /* training shapes: each T at `heads` heads, plus T=512 at 32 heads */
  uint32_t shapes[10][2];
  int ns = 0;
  for (int i = 0; i < nT; i++) { shapes[ns][0] = Ts[i]; shapes[ns++][1] = (uint32_t)heads; }
  if (!(nT == 1 && Ts[0] == 128)) { shapes[ns][0] = 512; shapes[ns++][1] = 32; }
  row rows[64], drows[64];
  int nr = 0, nd = 0, fail = 0;
  if (!json)
    fprintf(stderr, "device: %s; head dim %ld; median of %ld runs\n",
            dtr_ctx_device(ctx)->name, dim, repeat);
  for (int s = 0; s < ns && !fail; s++)
    for (int m = 0; m < M_COUNT && !fail; m++) {
      if (!use[m]) continue;
      lb b = {.ctx = ctx, .mixer = m, .T = shapes[s][0], .H = shapes[s][1], .D = (uint32_t)dim};
      if (!json) fprintf(stderr, "  training %s T=%u H=%u ...\n", mixer_name[m], b.T, b.H);
      if (!lb_alloc(&b, 0)) {
        fprintf(stderr, "dtr bench linear: %s\n", dtr_ctx_error(ctx));
        fail = 1;
      } else {
        row r = {m, b.T, b.H, cli_time_ms(ctx, rec_fwd, &b, (int)repeat),
                 cli_time_ms(ctx, rec_fwdbwd, &b, (int)repeat), 0, 0, 0, 0, 0, 0};
        if (r.fwd < 0 || r.fb < 0) fail = 1;
        else if (m != M_ATTN && !time_io16(&b, (int)repeat, &r)) fail = 1;
        rows[nr++] = r;
      }
      lb_free(&b);
    }
  for (int s = 0; s < nctx && !fail; s++)
    for (int m = 0; m < M_COUNT && !fail; m++) {
      if (!use[m]) continue;
      lb b = {.ctx = ctx, .mixer = m, .T = ctxs[s], .H = (uint32_t)heads, .D = (uint32_t)dim,
              .steps = (uint32_t)steps};
      if (!json) fprintf(stderr, "  decode %s ctx=%u ...\n", mixer_name[m], b.T);
      if (!lb_alloc(&b, 1)) {
        fprintf(stderr, "dtr bench linear: %s\n", dtr_ctx_error(ctx));
        fail = 1;
      } else {
        double ms = cli_time_ms(ctx, rec_decode, &b, (int)repeat), ms16 = 0;
        if (ms < 0) fail = 1;
        size_t HD = (size_t)b.H * b.D, conv = (m == M_GDN ? 9 : m == M_JET ? 3 : 0) * HD * 4;
        size_t st = m == M_ATTN ? 2 * (size_t)b.T * HD * 4 : HD * b.D * 4 + conv, st16 = 0;
        if (m != M_ATTN && !fail) { /* the same steps with the state packed in fp16 */
          b.f16 = 1;
          if (dtr_buf_fill(ctx, b.state, 0, dtr_buf_size(b.state), 0)) fail = 1;
          else if ((ms16 = cli_time_ms(ctx, rec_decode, &b, (int)repeat)) < 0) fail = 1;
          st16 = HD * b.D * 2 + conv;
        }
        drows[nd++] = (row){m, b.T, b.H, 0, 0, ms / (double)b.steps, ms16 / (double)b.steps,
                            st, st16, 0, 0};
      }
      lb_free(&b);
    }
  if (fail) { dtr_ctx_destroy(ctx); return 1; }

  /* Speedups against attention of the same shape, when attention was run. */
  if (json) {
    printf("{\"device\": \"%s\", \"head_dim\": %ld, \"training\": [", dtr_ctx_device(ctx)->name,
           dim);
    for (int i = 0; i < nr; i++) {
      const row *r = &rows[i], *a = NULL;
      for (int j = 0; j < nr; j++)
        if (rows[j].mixer == M_ATTN && rows[j].T == r->T && rows[j].H == r->H) a = &rows[j];
      printf("%s{\"mixer\": \"%s\", \"T\": %u, \"heads\": %u, \"fwd_ms\": %.4f, "
             "\"fwdbwd_ms\": %.4f, \"speedup_fwd\": %.3f, \"speedup_fwdbwd\": %.3f",
             i ? ", " : "", mixer_name[r->mixer], r->T, r->H, r->fwd, r->fb,
             a ? a->fwd / r->fwd : 0.0, a ? a->fb / r->fb : 0.0);
      if (r->mixer != M_ATTN)
        printf(", \"fwd_ms_f16\": %.4f, \"fwdbwd_ms_f16\": %.4f, \"f16_speedup_fwd\": %.3f, "
               "\"f16_speedup_fwdbwd\": %.3f",
               r->fwd16, r->fb16, r->fwd / r->fwd16, r->fb / r->fb16);
      printf("}");
    }
    printf("], \"decode\": [");
    for (int i = 0; i < nd; i++) {
      const row *r = &drows[i], *a = NULL;
      for (int j = 0; j < nd; j++)
        if (drows[j].mixer == M_ATTN && drows[j].T == r->T) a = &drows[j];
      printf("%s{\"mixer\": \"%s\", \"ctx\": %u, \"ms_per_token\": %.5f, \"state_bytes\": %zu, "
             "\"speedup\": %.3f",
             i ? ", " : "", mixer_name[r->mixer], r->T, r->dec, r->state,
             a ? a->dec / r->dec : 0.0);
      if (r->state16)
        printf(", \"ms_per_token_f16\": %.5f, \"state_bytes_f16\": %zu, \"f16_speedup\": %.3f",
               r->dec16, r->state16, r->dec / r->dec16);
      printf("}");
    }
    printf("]}\n");
  } else {
    printf("training (one sequence, head dim %ld; speedup = attention time / this)\n", dim);
    printf("%-6s %7s %6s %12s %14s %10s %12s %12s %14s %10s %12s\n", "mixer", "T", "heads",
           "fwd ms", "fwd+bwd ms", "fwd x", "fwd+bwd x", "fp16 fwd ms", "fp16 f+b ms",
           "fp16 fwd x", "fp16 f+b x");
    for (int i = 0; i < nr; i++) {
      const row *r = &rows[i], *a = NULL;
      for (int j = 0; j < nr; j++)
        if (rows[j].mixer == M_ATTN && rows[j].T == r->T && rows[j].H == r->H) a = &rows[j];
      printf("%-6s %7u %6u %12.3f %14.3f", mixer_name[r->mixer], r->T, r->H, r->fwd, r->fb);
      if (a) printf(" %10.2f %12.2f", a->fwd / r->fwd, a->fb / r->fb);
      else printf(" %10s %12s", "-", "-");
      if (r->mixer != M_ATTN)
        printf(" %12.3f %14.3f %10.2f %12.2f\n", r->fwd16, r->fb16, r->fwd / r->fwd16,
               r->fb / r->fb16);
      else printf(" %12s %14s %10s %12s\n", "-", "-", "-", "-");
    }
    printf("(fp16: the chunk kernels read q, k, v packed in fp16 (io_f16), packed once before\n"
           " timing, so the packing is not timed; convs, norms and gates stay fp32;\n"
           " fp16 x = fp32 time / fp16 time)\n");
    printf("\ndecode (one sequence, %ld heads, %ld steps per submit)\n", heads, steps);
    printf("%-6s %8s %12s %14s %10s %14s %10s\n", "mixer", "context", "ms/token", "cache/state",
           "speedup", "fp16 ms/token", "fp16 x");
    for (int i = 0; i < nd; i++) {
      const row *r = &drows[i], *a = NULL;
      for (int j = 0; j < nd; j++)
        if (drows[j].mixer == M_ATTN && drows[j].T == r->T) a = &drows[j];
      printf("%-6s %8u %12.4f %11.2f MiB", mixer_name[r->mixer], r->T, r->dec,
             (double)r->state / (1 << 20));
      if (a) printf(" %10.2f", a->dec / r->dec);
      else printf(" %10s", "-");
      if (r->state16) printf(" %14.4f %10.2f\n", r->dec16, r->dec / r->dec16);
      else printf(" %14s %10s\n", "-", "-");
    }
    printf("(fp16: the same steps with the state packed in fp16, fp16 x = fp32 time / "
           "fp16 time)\n");
    /* Where each linear mixer overtakes attention. */
    for (int m = M_GLA; m < M_COUNT; m++) {
      if (!use[m] || !use[M_ATTN]) continue;
      uint32_t first = 0;
      for (int i = 0; i < nr && !first; i++) {
        if (rows[i].mixer != m || rows[i].H != (uint32_t)heads) continue;
        for (int j = 0; j < nr; j++)
          if (rows[j].mixer == M_ATTN && rows[j].T == rows[i].T && rows[j].H == rows[i].H &&
              rows[j].fb > rows[i].fb)
            first = rows[i].T;
      }
      if (first) printf("%s overtakes attention (forward+backward) from T = %u\n",
                        mixer_name[m], first);
      else printf("%s does not overtake attention (forward+backward) at the lengths run\n",
                  mixer_name[m]);
    }
  }
  dtr_ctx_destroy(ctx);
  return 0;
}
