/* test_train.c — the training graph of host/train.h: every parameter's gradient
 * (sampled entries of every tensor) against central finite differences of a
 * double-precision CPU forward of the same Llama model, a short run on
 * synthetic tokens whose loss must fall, checkpoint + resume giving the same
 * bits as an uninterrupted run, the learning-rate schedule, and bad configs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "safetensors.h"
#include "train.h"

/* ---- double reference of the model's forward + mean cross-entropy ------------- */

typedef struct {
  const dtr_train_config *c;
  const dtr_trainer *t;
  double *w; /* the padded parameter layout in double */
  const int32_t *in, *tg;
} ref_model;

static const double *T_(const ref_model *r, size_t i) {
  return r->w + dtr_trainer_tensor(r->t, i)->offset;
}

static void ref_rmsnorm(double *out, const double *x, const double *w, int n, int C,
                        double eps) {
  for (int i = 0; i < n; i++) {
    double ss = 0;
    for (int j = 0; j < C; j++) ss += x[i * C + j] * x[i * C + j];
    double r = 1.0 / sqrt(ss / C + eps);
    for (int j = 0; j < C; j++) out[i * C + j] = x[i * C + j] * r * w[j];
  }
}
/* y (n, out) = x (n, in) W^T, W (out, in) */
static void ref_linear(double *y, const double *x, const double *W, int n, int out, int in) {
  for (int i = 0; i < n; i++)
    for (int o = 0; o < out; o++) {
      double s = 0;
      for (int k = 0; k < in; k++) s += x[i * in + k] * W[o * in + k];
      y[i * out + o] = s;
    }
}
/* NeoX rotation of x (n, H, D), position of row i is i % T. */
static void ref_rope(double *x, int n, int H, int D, int T, double theta) {
  for (int i = 0; i < n; i++)
    for (int h = 0; h < H; h++)
      for (int j = 0; j < D / 2; j++) {
        double f = pow(theta, -2.0 * j / D), a = (i % T) * f;
        double *p = x + ((size_t)i * H + h) * D;
        double x1 = p[j], x2 = p[j + D / 2];
        p[j] = x1 * cos(a) - x2 * sin(a);
        p[j + D / 2] = x2 * cos(a) + x1 * sin(a);
      }
}

static double ref_loss(void *ud) {
  const ref_model *r = ud;
  const dtr_train_config *c = r->c;
  int B = c->batch, T = c->seq_len, N = B * T, C = c->hidden, Hq = c->heads,
      Hkv = c->kv_heads, D = C / Hq, F = c->intermediate, V = c->vocab, L = c->layers;
  double *x = malloc(sizeof(double) * N * C), *ln = malloc(sizeof(double) * N * C);
  double *q = malloc(sizeof(double) * N * Hq * D), *k = malloc(sizeof(double) * N * Hkv * D);
  double *v = malloc(sizeof(double) * N * Hkv * D), *att = malloc(sizeof(double) * N * Hq * D);
  double *o = malloc(sizeof(double) * N * C), *g = malloc(sizeof(double) * N * F);
  double *u = malloc(sizeof(double) * N * F), *lg = malloc(sizeof(double) * N * V);
  double *sc = malloc(sizeof(double) * T);
  const double *E = T_(r, 0);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < C; j++) x[i * C + j] = E[(size_t)r->in[i] * C + j];
  for (int l = 0; l < L; l++) {
    size_t b = 1 + (size_t)l * 9;
    ref_rmsnorm(ln, x, T_(r, b + 0), N, C, c->norm_eps);
    ref_linear(q, ln, T_(r, b + 1), N, Hq * D, C);
    ref_linear(k, ln, T_(r, b + 2), N, Hkv * D, C);
    ref_linear(v, ln, T_(r, b + 3), N, Hkv * D, C);
    ref_rope(q, N, Hq, D, T, c->rope_theta);
    ref_rope(k, N, Hkv, D, T, c->rope_theta);
    for (int bb = 0; bb < B; bb++)
      for (int h = 0; h < Hq; h++) {
        int kh = h / (Hq / Hkv);
        for (int i = 0; i < T; i++) {
          const double *qi = q + ((size_t)(bb * T + i) * Hq + h) * D;
          double mx = -1e300, den = 0;
          for (int j = 0; j <= i; j++) {
            const double *kj = k + ((size_t)(bb * T + j) * Hkv + kh) * D;
            double s = 0;
            for (int d = 0; d < D; d++) s += qi[d] * kj[d];
            sc[j] = s / sqrt((double)D);
            if (sc[j] > mx) mx = sc[j];
          }
          for (int j = 0; j <= i; j++) den += (sc[j] = exp(sc[j] - mx));
          double *ai = att + ((size_t)(bb * T + i) * Hq + h) * D;
          for (int d = 0; d < D; d++) {
            double s = 0;
            for (int j = 0; j <= i; j++) s += sc[j] * v[((size_t)(bb * T + j) * Hkv + kh) * D + d];
            ai[d] = s / den;
          }
        }
      }
    ref_linear(o, att, T_(r, b + 4), N, C, Hq * D);
    for (int i = 0; i < N * C; i++) x[i] += o[i];
    ref_rmsnorm(ln, x, T_(r, b + 5), N, C, c->norm_eps);
    ref_linear(g, ln, T_(r, b + 6), N, F, C);
    ref_linear(u, ln, T_(r, b + 7), N, F, C);
    for (int i = 0; i < N * F; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
    ref_linear(o, g, T_(r, b + 8), N, C, F);
    for (int i = 0; i < N * C; i++) x[i] += o[i];
  }
  ref_rmsnorm(ln, x, T_(r, 1 + (size_t)L * 9), N, C, c->norm_eps);
  ref_linear(lg, ln, E, N, V, C);
  double loss = 0;
  for (int i = 0; i < N; i++) {
    double mx = -1e300, s = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, lg[i * V + j]);
    for (int j = 0; j < V; j++) s += exp(lg[i * V + j] - mx);
    loss += mx + log(s) - lg[i * V + r->tg[i]];
  }
  free(x), free(ln), free(q), free(k), free(v), free(att), free(o), free(g), free(u);
  free(lg), free(sc);
  return loss / N;
}

/* ---- helpers ---------------------------------------------------------------------- */

static void tiny_config(dtr_train_config *c) {
  dtr_train_config_default(c);
  c->hidden = 32;
  c->layers = 2;
  c->heads = 4;
  c->kv_heads = 2;
  c->intermediate = 40;
  c->vocab = 24;
  c->max_seq_len = 16;
  c->seq_len = 8;
  c->batch = 2;
  c->rope_theta = 100.0;
  c->warmup = 5;
  c->steps = 60;
  c->lr = 1e-2;
  c->seed = 7;
}

/* A learnable synthetic stream: t' = (5 t + 3) mod V, with a random restart
 * every so often. */
static int32_t *synth_stream(size_t n, uint32_t V) {
  int32_t *s = malloc(n * 4);
  int32_t x = 1;
  for (size_t i = 0; i < n; i++) {
    if (th_randint(16) == 0) x = (int32_t)th_randint(V);
    s[i] = x;
    x = (int32_t)((5u * (uint32_t)x + 3u) % V);
  }
  return s;
}

static void test_gradients(dtr_ctx *ctx, const dtr_train_config *cfg) {
  dtr_train_config c = *cfg;
  char err[512];
  dtr_trainer *t = dtr_trainer_create(ctx, &c, err, sizeof err);
  th_expect(t != NULL, "trainer create: %s", t ? "ok" : err);
  if (!t) return;
  size_t nf = dtr_trainer_buf_floats(t), N = (size_t)c.batch * c.seq_len;
  float *p = th_alloc(nf), *g = th_alloc(nf);
  /* Parameters of order one, so every path carries a visible gradient. */
  dtr_trainer_get_params(t, p, err, sizeof err);
  for (size_t i = 0; i < dtr_trainer_ntensors(t); i++) {
    const dtr_train_tensor *e = dtr_trainer_tensor(t, i);
    if (e->shape[1])
      th_rand(p + e->offset, e->numel, -0.4f, 0.4f);
    else
      th_rand(p + e->offset, e->numel, 0.6f, 1.4f);
  }
  th_expect(dtr_trainer_set_params(t, p, err, sizeof err) == DTR_OK, "set params");
  int32_t *in = malloc(N * 4), *tg = malloc(N * 4);
  for (size_t i = 0; i < N; i++) {
    in[i] = (int32_t)th_randint(c.vocab);
    tg[i] = (int32_t)th_randint(c.vocab);
  }
  double loss, gnorm;
  dtr_status st = dtr_trainer_forward_backward(t, in, tg, &loss, &gnorm, err, sizeof err);
  th_expect(st == DTR_OK, "forward_backward: %s", st ? err : "ok");
  dtr_trainer_get_grads(t, g, err, sizeof err);
  ref_model r = {&c, t, th_dalloc(nf), in, tg};
  for (size_t i = 0; i < nf; i++) r.w[i] = p[i];
  double lref = ref_loss(&r);
  th_expect(fabs(loss - lref) <= 1e-5 * fabs(lref), "loss device %.8f vs reference %.8f", loss,
            lref);
  double g2 = 0;
  for (size_t i = 0; i < nf; i++) g2 += (double)g[i] * g[i];
  th_expect(fabs(gnorm - sqrt(g2)) <= 1e-4 * sqrt(g2), "grad norm %.6f vs host %.6f", gnorm,
            sqrt(g2));
  /* Sampled entries of every tensor against central differences. */
  enum { S = 10 };
  for (size_t i = 0; i < dtr_trainer_ntensors(t); i++) {
    const dtr_train_tensor *e = dtr_trainer_tensor(t, i);
    double got[S], fd[S];
    for (int s = 0; s < S; s++) {
      size_t j = e->offset + th_randint((uint32_t)e->numel);
      double x0 = r.w[j], h = 1e-4;
      r.w[j] = x0 + h;
      double lp = ref_loss(&r);
      r.w[j] = x0 - h;
      double lm = ref_loss(&r);
      r.w[j] = x0;
      fd[s] = (lp - lm) / (2 * h);
      got[s] = g[j];
    }
    char what[160];
    snprintf(what, sizeof what, "grad %s vs finite differences", e->name);
    th_check_d(what, got, fd, S, 2e-3);
  }
  free(in), free(tg), free(p), free(g), free(r.w);
  dtr_trainer_destroy(t);
}

static void test_loss_falls(dtr_ctx *ctx) {
  dtr_train_config c;
  tiny_config(&c);
  char err[512];
  dtr_trainer *t = dtr_trainer_create(ctx, &c, err, sizeof err);
  th_expect(t != NULL, "trainer create: %s", t ? "ok" : err);
  if (!t) return;
  size_t n = 4096;
  int32_t *s = synth_stream(n, c.vocab), *va = synth_stream(1024, c.vocab);
  th_expect(dtr_trainer_set_data(t, s, n, NULL, 0, va, 1024, err, sizeof err) == DTR_OK,
            "set data");
  double v0 = 0, v1 = 0, first = 0, last = 0;
  dtr_trainer_eval(t, &v0, err, sizeof err);
  for (uint32_t k = 0; k < c.steps; k++) {
    dtr_train_stats ss;
    dtr_status st = dtr_trainer_step(t, &ss, err, sizeof err);
    if (st) {
      th_expect(0, "step %u: %s", k + 1, err);
      break;
    }
    if (k == 0) first = ss.loss;
    last = ss.loss;
  }
  dtr_trainer_eval(t, &v1, err, sizeof err);
  printf("loss: first step %.4f last step %.4f; valid %.4f -> %.4f (ln V = %.4f)\n", first,
         last, v0, v1, log((double)c.vocab));
  th_expect(v1 < 0.6 * v0, "valid loss falls: %.4f -> %.4f", v0, v1);
  th_expect(last < 0.6 * first, "train loss falls: %.4f -> %.4f", first, last);
  free(s), free(va);
  dtr_trainer_destroy(t);
}

/* data.recall_loss "answers": recall rows score only the masked tokens that
 * the window can answer (the input token followed by the target occurs earlier
 * in the row). The recall stream cycles through 4 distinct tokens, so in every
 * 8-token row the last 4 targets can be copied and the first 4 cannot: a mask
 * of all ones scores half the row, every other token a quarter, an empty mask
 * nothing (the loss is a sum over the row's tokens divided by their number, and
 * at step 1 every token's loss is close to ln V). */
static void test_recall_mask(dtr_ctx *ctx) {
  dtr_train_config c;
  tiny_config(&c);
  c.recall_fraction = 1.0;
  c.steps = 3;
  char err[512];
  size_t n = 1024;
  int32_t *s = synth_stream(n, c.vocab), *re = malloc(n * 4);
  uint8_t *ones = malloc(n), *none = calloc(n, 1), *half = malloc(n);
  memset(ones, 1, n);
  for (size_t i = 0; i < n; i++) half[i] = i % 2, re[i] = 3 + (int32_t)(i % 4) * 5;
  const uint8_t *masks[4] = {NULL, ones, none, half};
  double loss[4][3] = {{0}};
  for (int m = 0; m < 4; m++) {
    dtr_trainer *t = dtr_trainer_create(ctx, &c, err, sizeof err);
    if (!t || dtr_trainer_set_data(t, s, n, re, n, NULL, 0, err, sizeof err)) {
      th_expect(0, "mask run %d: %s", m, err);
      dtr_trainer_destroy(t);
      break;
    }
    dtr_trainer_set_recall_mask(t, masks[m]);
    for (int k = 0; k < 3; k++) {
      dtr_train_stats ss = {0};
      th_expect(dtr_trainer_step(t, &ss, err, sizeof err) == DTR_OK, "mask run %d step", m);
      loss[m][k] = ss.loss;
    }
    dtr_trainer_destroy(t);
  }
  double r1 = loss[1][0] / loss[0][0], r3 = loss[3][0] / loss[0][0];
  th_expect(fabs(r1 - 0.5) < 0.05, "a mask of all ones scores the copyable half: loss %.4f is "
            "%.3f of the unmasked %.4f", loss[1][0], r1, loss[0][0]);
  th_expect(loss[2][0] == 0 && loss[2][2] == 0, "an empty mask scores nothing (loss %g)",
            loss[2][0]);
  th_expect(fabs(r3 - 0.25) < 0.03, "every other token of the copyable half: loss %.4f is "
            "%.3f of the unmasked %.4f", loss[3][0], r3, loss[0][0]);
  free(s), free(re), free(ones), free(none), free(half);
}

/* data.recall_curriculum: early recall windows come from the stream's start.
 * The stream's first 64 tokens are 1, the rest 2, and only the 2s are scored:
 * with a curriculum of 1000 steps the first steps see no 2 (loss 0); without
 * one they do. */
static void test_recall_curriculum(dtr_ctx *ctx) {
  size_t n = 4096;
  int32_t *s = synth_stream(n, 24), *re = malloc(n * 4);
  uint8_t *mask = malloc(n);
  for (size_t i = 0; i < n; i++) re[i] = i < 64 ? 1 : 2, mask[i] = re[i] == 2;
  double loss[2] = {0, 0};
  for (int cur = 0; cur < 2; cur++) {
    dtr_train_config c;
    tiny_config(&c);
    c.recall_fraction = 1.0;
    c.recall_curriculum = cur ? 1000 : 0;
    char err[512];
    dtr_trainer *t = dtr_trainer_create(ctx, &c, err, sizeof err);
    if (!t || dtr_trainer_set_data(t, s, n, re, n, NULL, 0, err, sizeof err)) {
      th_expect(0, "curriculum run: %s", err);
      dtr_trainer_destroy(t);
      break;
    }
    dtr_trainer_set_recall_mask(t, mask);
    for (int k = 0; k < 4; k++) {
      dtr_train_stats ss = {0};
      th_expect(dtr_trainer_step(t, &ss, err, sizeof err) == DTR_OK, "curriculum step");
      loss[cur] += ss.loss;
    }
    dtr_trainer_destroy(t);
  }
  th_expect(loss[1] == 0 && loss[0] > 0,
            "a curriculum starts on the stream's head (loss %g), without one the tail is "
            "drawn (loss %g)", loss[1], loss[0]);
  free(s), free(re), free(mask);
}

/* data.recall_only_steps: the first steps draw only recall rows. The recall
 * stream scores nothing (mask all 0), so a recall-only step's loss is 0 and a
 * step with a text row has loss > 0; recall_fraction 0 draws no recall row once
 * the phase is over. A phase longer than the run is refused. */
static void test_recall_only_steps(dtr_ctx *ctx) {
  size_t n = 4096;
  int32_t *s = synth_stream(n, 24), *re = synth_stream(n, 24);
  uint8_t *mask = calloc(n, 1);
  dtr_train_config c;
  tiny_config(&c);
  c.recall_fraction = 0.0;
  c.recall_only_steps = 3;
  char err[512];
  dtr_trainer *t = dtr_trainer_create(ctx, &c, err, sizeof err);
  if (!t || dtr_trainer_set_data(t, s, n, re, n, NULL, 0, err, sizeof err)) {
    th_expect(0, "recall-only run: %s", err);
  } else {
    dtr_trainer_set_recall_mask(t, mask);
    double loss[5];
    for (int k = 0; k < 5; k++) {
      dtr_train_stats ss = {0};
      th_expect(dtr_trainer_step(t, &ss, err, sizeof err) == DTR_OK, "recall-only step");
      loss[k] = ss.loss;
    }
    th_expect(loss[0] == 0 && loss[1] == 0 && loss[2] == 0 && loss[3] > 0 && loss[4] > 0,
              "steps 1..3 draw recall rows only (losses %g %g %g), then text (%g %g)",
              loss[0], loss[1], loss[2], loss[3], loss[4]);
  }
  dtr_trainer_destroy(t);
  c.recall_only_steps = c.steps + 1;
  th_expect(dtr_train_config_validate(&c, err, sizeof err) != DTR_OK &&
                strstr(err, "recall_only_steps"),
            "a recall phase longer than the run is refused: %s", err);
  free(s), free(re), free(mask);
}

/* data.recall_windows "start": recall windows begin at the given offsets. The
 * recall stream cycles through 4 tokens and only the tokens at offsets 100 m +
 * 5 are marked; a window from offset 100 m scores exactly that one (its 5th
 * target, copyable since the cycle repeats), so each of the 2 rows scores one of
 * its 8 tokens and the first step's loss is close to 2 ln V / 16. */
static void test_recall_starts(dtr_ctx *ctx) {
  dtr_train_config c;
  tiny_config(&c);
  c.recall_fraction = 1.0;
  size_t n = 4096, ns = 0, starts[64];
  int32_t *s = synth_stream(n, c.vocab), *re = malloc(n * 4);
  uint8_t *mask = malloc(n);
  for (size_t i = 0; i < n; i++) re[i] = 3 + (int32_t)(i % 4) * 5, mask[i] = i % 100 == 5;
  for (size_t i = 0; i + 100 < n && ns < 64; i += 100) starts[ns++] = i;
  char err[512];
  dtr_trainer *t = dtr_trainer_create(ctx, &c, err, sizeof err);
  if (!t || dtr_trainer_set_data(t, s, n, re, n, NULL, 0, err, sizeof err)) {
    th_expect(0, "recall starts run: %s", err);
  } else {
    dtr_trainer_set_recall_mask(t, mask);
    dtr_trainer_set_recall_starts(t, starts, ns);
    dtr_train_stats ss = {0};
    th_expect(dtr_trainer_step(t, &ss, err, sizeof err) == DTR_OK, "recall starts step");
    double want = 2 * log((double)c.vocab) / 16;
    th_expect(fabs(ss.loss - want) < 0.15 * want, "windows from the starts score one token a "
              "row: loss %.4f, about %.4f", ss.loss, want);
  }
  dtr_trainer_destroy(t);
  free(s), free(re), free(mask);
}

static void test_resume(dtr_ctx *ctx) {
  dtr_train_config c;
  tiny_config(&c);
  c.steps = 12;
  char err[512], path[64];
  snprintf(path, sizeof path, "/tmp/test_train_%d.safetensors", (int)getpid());
  size_t n = 2048;
  int32_t *s = synth_stream(n, c.vocab), *re = synth_stream(512, c.vocab);
  c.recall_fraction = 0.3;
  dtr_trainer *a = dtr_trainer_create(ctx, &c, err, sizeof err);
  dtr_trainer *b = dtr_trainer_create(ctx, &c, err, sizeof err);
  th_expect(a && b, "trainers created");
  if (!a || !b) return;
  dtr_trainer_set_data(a, s, n, re, 512, NULL, 0, err, sizeof err);
  dtr_trainer_set_data(b, s, n, re, 512, NULL, 0, err, sizeof err);
  int ok = 1;
  for (int k = 0; k < 12; k++) ok &= dtr_trainer_step(a, NULL, err, sizeof err) == DTR_OK;
  for (int k = 0; k < 6; k++) ok &= dtr_trainer_step(b, NULL, err, sizeof err) == DTR_OK;
  ok &= dtr_trainer_save_checkpoint(b, path, err, sizeof err) == DTR_OK;
  dtr_trainer_destroy(b);
  dtr_trainer *r = dtr_trainer_create(ctx, &c, err, sizeof err); /* fresh init */
  ok &= r && dtr_trainer_set_data(r, s, n, re, 512, NULL, 0, err, sizeof err) == DTR_OK;
  ok &= r && dtr_trainer_load_checkpoint(r, path, err, sizeof err) == DTR_OK;
  th_expect(ok, "run, checkpoint and load: %s", ok ? "ok" : err);
  if (r) {
    th_expect(dtr_trainer_steps_done(r) == 6, "resumed at step %u", dtr_trainer_steps_done(r));
    for (int k = 0; k < 6; k++) ok &= dtr_trainer_step(r, NULL, err, sizeof err) == DTR_OK;
    size_t nf = dtr_trainer_buf_floats(a);
    float *pa = th_alloc(nf), *pr = th_alloc(nf);
    dtr_trainer_get_params(a, pa, err, sizeof err);
    dtr_trainer_get_params(r, pr, err, sizeof err);
    size_t diff = 0;
    for (size_t i = 0; i < nf; i++) diff += memcmp(&pa[i], &pr[i], 4) != 0;
    th_expect(ok && diff == 0, "12 steps vs 6 + resume + 6: %zu of %zu floats differ", diff, nf);
    /* An uninterrupted run differs from its start: the test can fail. */
    dtr_trainer *z = dtr_trainer_create(ctx, &c, err, sizeof err);
    dtr_trainer_get_params(z, pr, err, sizeof err);
    diff = 0;
    for (size_t i = 0; i < nf; i++) diff += memcmp(&pa[i], &pr[i], 4) != 0;
    th_expect(diff > nf / 2, "training changed the weights (%zu floats)", diff);
    dtr_trainer_destroy(z);
    /* A checkpoint of another shape is refused. */
    dtr_train_config c2 = c;
    c2.intermediate = 48;
    dtr_trainer *o = dtr_trainer_create(ctx, &c2, err, sizeof err);
    dtr_status st = dtr_trainer_load_checkpoint(o, path, err, sizeof err);
    th_expect(st != DTR_OK && strstr(err, path), "other layout refused: %s", err);
    dtr_trainer_destroy(o);
    /* The Hugging Face export: a config the model loader accepts and every
     * tensor it implies, holding the trained weights. */
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/test_train_hf_%d", (int)getpid());
    mkdir(dir, 0777);
    st = dtr_trainer_save_hf(a, dir, NULL, 0, err, sizeof err);
    th_expect(st == DTR_OK, "save_hf: %s", st ? err : "ok");
    dtr_model_config mc;
    dtr_safetensors *sf = NULL;
    st = dtr_model_config_load(dir, &mc, err, sizeof err);
    if (!st) st = dtr_safetensors_open(dir, &sf, err, sizeof err);
    if (!st) st = dtr_model_config_check_tensors(&mc, sf, 0, err, sizeof err);
    th_expect(st == DTR_OK && mc.architecture == DTR_ARCH_LLAMA && mc.tie_word_embeddings &&
                  mc.num_key_value_heads == c.kv_heads && mc.vocab_size == c.vocab,
              "exported config and tensors load and check: %s", st ? err : "ok");
    if (!st) {
      const dtr_train_tensor *e = dtr_trainer_tensor(a, 4); /* layer 0 o_proj */
      float *w = th_alloc(e->numel);
      st = dtr_safetensors_read_f32(sf, e->name, w, e->numel, err, sizeof err);
      th_expect(st == DTR_OK && !memcmp(w, pa + e->offset, e->numel * 4),
                "exported %s equals the trained weights", e->name);
      free(w);
    }
    dtr_safetensors_close(sf);
    char f[128];
    snprintf(f, sizeof f, "%s/config.json", dir);
    remove(f);
    snprintf(f, sizeof f, "%s/model.safetensors", dir);
    remove(f);
    rmdir(dir);
    free(pa), free(pr);
  }
  remove(path);
  dtr_trainer_destroy(a);
  dtr_trainer_destroy(r);
  free(s), free(re);
}

/* NaN parameters: the step fails naming the step and leaves the weights. */
static void test_nan(dtr_ctx *ctx) {
  dtr_train_config c;
  tiny_config(&c);
  char err[512];
  dtr_trainer *t = dtr_trainer_create(ctx, &c, err, sizeof err);
  if (!t) return;
  int32_t *s = synth_stream(1024, c.vocab);
  dtr_trainer_set_data(t, s, 1024, NULL, 0, NULL, 0, err, sizeof err);
  dtr_trainer_step(t, NULL, err, sizeof err);
  size_t nf = dtr_trainer_buf_floats(t);
  float *p = th_alloc(nf);
  dtr_trainer_get_params(t, p, err, sizeof err);
  p[dtr_trainer_tensor(t, 1)->offset] = NAN; /* layer 0's input norm */
  dtr_trainer_set_params(t, p, err, sizeof err);
  dtr_status st = dtr_trainer_step(t, NULL, err, sizeof err);
  th_expect(st != DTR_OK && strstr(err, "step 2"), "NaN loss reported: %s", err);
  th_expect(dtr_trainer_steps_done(t) == 1, "no step counted after NaN");
  free(p), free(s);
  dtr_trainer_destroy(t);
}

static void test_lr(void) {
  dtr_train_config c;
  dtr_train_config_default(&c);
  c.lr = 1e-3;
  c.warmup = 10;
  c.steps = 110;
  c.min_lr_fraction = 0.1;
  th_expect(fabs(dtr_train_lr(&c, 1) - 1e-4) < 1e-12, "warmup step 1: %g", dtr_train_lr(&c, 1));
  th_expect(fabs(dtr_train_lr(&c, 10) - 1e-3) < 1e-12, "end of warmup: %g",
            dtr_train_lr(&c, 10));
  th_expect(fabs(dtr_train_lr(&c, 60) - 5.5e-4) < 1e-12, "cosine midpoint: %g",
            dtr_train_lr(&c, 60));
  th_expect(fabs(dtr_train_lr(&c, 110) - 1e-4) < 1e-12, "last step: %g",
            dtr_train_lr(&c, 110));
}

static void bad_config(const char *json, const char *expect) {
  char path[64], err[512];
  snprintf(path, sizeof path, "/tmp/test_train_cfg_%d.json", (int)getpid());
  FILE *f = fopen(path, "w");
  fputs(json, f);
  fclose(f);
  dtr_train_config c;
  dtr_status st = dtr_train_config_load(path, &c, err, sizeof err);
  if (st == DTR_OK) st = dtr_train_config_check_files(&c, err, sizeof err);
  th_expect(st != DTR_OK && strstr(err, path) && strstr(err, expect) && !strchr(err, '\n'),
            "bad config refused naming the file and '%s': %s", expect, st ? err : "accepted");
  remove(path);
}

static void test_bad_configs(void) {
  char tok[64], good[600];
  snprintf(tok, sizeof tok, "/tmp/test_train_tok_%d.txt", (int)getpid());
  FILE *f = fopen(tok, "w");
  fputs("x", f);
  fclose(f);
#define CFG(model, extra)                                                             \
  (snprintf(good, sizeof good,                                                        \
            "{\"model\": {%s}, \"data\": {\"tokenizer\": \"%s\", \"train\": \"%s\"%s}, " \
            "\"optim\": {\"steps\": 10}}",                                             \
            model, tok, tok, extra),                                                  \
   good)
  bad_config(CFG("\"hidden\": 48, \"heads\": 5, \"kv_heads\": 1", ""), "does not divide");
  bad_config(CFG("\"hidden\": 64, \"heads\": 4, \"kv_heads\": 3", ""), "kv_heads=3");
  bad_config(CFG("\"layers\": 0", ""), "layers");
  bad_config(CFG("\"hidden\": 36, \"heads\": 6, \"kv_heads\": 1", ""), "head dim");
  bad_config(CFG("\"hiden\": 64", ""), "hiden");
  bad_config(CFG("\"hidden\": -4", ""), "hidden");
  bad_config(CFG("", ", \"valid\": \"/nonexistent/valid.txt\""), "/nonexistent/valid.txt");
  bad_config(CFG("", ", \"recall_fraction\": 0.5"), "recall");
  bad_config(CFG("", ", \"recall_loss\": \"values\""), "recall_loss");
  bad_config("{\"model\": {}, \"optim\": {}}", "data");
  bad_config("{\"model\": ", "JSON");
  /* A good one passes. */
  char path[64], err[512];
  snprintf(path, sizeof path, "/tmp/test_train_good_%d.json", (int)getpid());
  f = fopen(path, "w");
  fputs(CFG("\"hidden\": 64, \"heads\": 4, \"kv_heads\": 2", ""), f);
  fclose(f);
  dtr_train_config c;
  dtr_status st = dtr_train_config_load(path, &c, err, sizeof err);
  if (!st) st = dtr_train_config_check_files(&c, err, sizeof err);
  th_expect(st == DTR_OK && c.hidden == 64 && c.steps == 10, "good config accepted: %s",
            st ? err : "ok");
  remove(path);
  remove(tok);
#undef CFG
}

int main(void) {
  test_lr();
  test_bad_configs();
  dtr_ctx *ctx = th_ctx();
  if (ctx) {
    dtr_train_config c;
    tiny_config(&c);
    test_gradients(ctx, &c);
    /* dtr-tiny's head shape (4 heads of 32, 2 KV heads) at a 64-token window,
     * where the kernels take the tiles and paths of real training. */
    c.hidden = 128, c.intermediate = 96, c.vocab = 64, c.max_seq_len = 64, c.seq_len = 64;
    c.rope_theta = 10000.0;
    test_gradients(ctx, &c);
    test_loss_falls(ctx);
    test_recall_mask(ctx);
    test_recall_starts(ctx);
    test_recall_curriculum(ctx);
    test_recall_only_steps(ctx);
    test_resume(ctx);
    test_nan(ctx);
  }
  return th_finish();
}
