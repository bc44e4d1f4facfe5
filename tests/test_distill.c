/* test_distill.c — distillation (host/distill.h), the greedy replacement
 * (host/replace.h) and their commands, on tiny random models with the
 * harness's byte-level tokenizer.
 *
 * Checked:
 *   - a short distillation brings every student's held-out relative error far
 *     below where it starts, and to a low value;
 *   - N steps + checkpoint + resume in a new distiller gives the same bits as
 *     N + M steps, and the same loss curves;
 *   - the greedy loop on a constructed case: layers 0 and 2 of the teacher add
 *     nothing through attention (o_proj zero) and their students output zero,
 *     layer 1's student is garbage; on a perplexity task with tolerance 0 the
 *     search must replace 0, then 2 (the same bits as the teacher), and keep 1;
 *   - the accelerated search (residual cache, small and large budgets, and
 *     early stop) and the plain one give identical trajectories, for accuracy
 *     and for perplexity, and the accelerated one runs fewer layer-forwards;
 *   - a search resumed from the state written mid-way (as a kill would leave
 *     it) ends with the same trajectory as an uninterrupted one;
 *   - through the dtr binary (argv[1]): distill stopped and resumed, or killed
 *     with SIGKILL mid-run and resumed, equals an uninterrupted run byte for
 *     byte; replace writes a loadable hybrid and the
 *     trajectory files; bad input (students of another model, a task without
 *     examples, a negative or non-numeric tolerance) fails clearly. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "distill.h"
#include "eval.h"
#include "harness.h"
#include "model.h"
#include "replace.h"
#include "tasks.h"
#include "tokenizer.h"

#define V 260
#define MAXT 128

static dtr_ctx *ctx;
static char dir[256];
static dtr_tokenizer *tok;

static dtr_model_config tiny(uint32_t layers) {
  dtr_model_config c;
  memset(&c, 0, sizeof c);
  c.architecture = DTR_ARCH_LLAMA;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 16;
  c.vocab_size = V;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  c.tie_word_embeddings = 1;
  c.bos_token_id = 256;
  c.eos_token_id[0] = 256;
  c.n_eos = 1;
  snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
  return c;
}

/* Deterministic uniform numbers from a seed, so a model can be rebuilt. */
static float urand(uint64_t *s, float lo, float hi) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return lo + (hi - lo) * (float)((z >> 11) * (1.0 / 9007199254740992.0));
}

static dtr_model *make_model(uint32_t layers, uint64_t seed) {
  dtr_model_config c = tiny(layers);
  dtr_status st;
  char err[512];
  dtr_model *m = dtr_model_create(ctx, &c, MAXT, seed, &st, err, sizeof err);
  th_expect(m != NULL, "model: %s", m ? "created" : err);
  if (!m) return NULL;
  char nm[160];
  size_t k;
  uint64_t s = seed * 7919 + 1;
  for (uint32_t i = 0; dtr_model_tensor_at(m, i, nm, sizeof nm, &k) == DTR_OK; i++) {
    float *x = th_alloc(k);
    float a = strstr(nm, "embed") ? 1.0f : 0.3f;
    for (size_t j = 0; j < k; j++)
      x[j] = strstr(nm, "norm.weight") ? urand(&s, 0.8f, 1.2f) : urand(&s, -a, a);
    th_ok(ctx, dtr_model_set_tensor(m, nm, x, k), nm);
    free(x);
  }
  return m;
}

/* Students from the teacher's layers, perturbed deterministically so they
 * differ from it by layer. */
static void make_students(dtr_model *m, dtr_block **stu, uint64_t seed, float noise) {
  uint32_t nl = dtr_model_cfg(m)->num_hidden_layers;
  uint64_t s = seed;
  for (uint32_t L = 0; L < nl; L++) {
    stu[L] = dtr_model_new_student(m, L, DTR_BLOCK_GDN, 0, 0, seed + L);
    th_expect(stu[L] != NULL, "student %u: %s", L, stu[L] ? "made" : dtr_ctx_error(ctx));
    if (!stu[L] || noise == 0) continue;
    size_t n = dtr_block_param_bytes(stu[L]) / 4;
    float *p = th_alloc(n);
    th_ok(ctx, dtr_block_get_params(stu[L], p), "get params");
    for (size_t i = 0; i < n; i++) p[i] += urand(&s, -noise, noise) * (1.0f + L);
    th_ok(ctx, dtr_block_set_params(stu[L], p), "set params");
    free(p);
  }
}

static int32_t *random_tokens(size_t n, uint64_t seed) {
  int32_t *t = malloc(n * sizeof *t);
  uint64_t s = seed;
  for (size_t i = 0; i < n; i++) t[i] = (int32_t)(urand(&s, 0, 1) * 255.99f);
  return t;
}

/* ---- distillation --------------------------------------------------------------- */

static dtr_distill_opts dopts(uint32_t steps) {
  dtr_distill_opts o;
  dtr_distill_opts_default(&o);
  o.kind = DTR_BLOCK_GDN;
  o.seq_len = 32;
  o.batch = 4;
  o.steps = steps;
  o.lr = 1e-2;
  o.warmup = 2;
  o.eval_batches = 2;
  o.seed = 77;
  return o;
}

static void distill_learns(void) {
  dtr_model *m = make_model(2, 11);
  if (!m) return;
  int32_t *tr = random_tokens(6000, 5), *va = random_tokens(1500, 6);
  /* q and k scaled down: softer attention, which a linear student can follow */
  for (int L = 0; L < 2; L++)
    for (int j = 0; j < 2; j++) {
      char nm[128];
      size_t n = j ? 16 * 32 : 32 * 32;
      snprintf(nm, sizeof nm, "model.layers.%d.self_attn.%s.weight", L, j ? "k_proj" : "q_proj");
      float *x = th_alloc(n);
      th_ok(ctx, dtr_model_get_tensor(m, nm, x, n), nm);
      for (size_t i = 0; i < n; i++) x[i] *= 0.3f;
      th_ok(ctx, dtr_model_set_tensor(m, nm, x, n), nm);
      free(x);
    }
  dtr_distill_opts o = dopts(400);
  char err[512];
  dtr_distiller *d = dtr_distiller_create(m, &o, err, sizeof err);
  th_expect(d != NULL, "distiller: %s", d ? "created" : err);
  if (d) {
    th_expect(dtr_distiller_set_data(d, tr, 6000, va, 1500, err, sizeof err) == DTR_OK,
              "set data: %s", err);
    double l0[2], r0[2], l1[2], r1[2], loss[2];
    th_expect(dtr_distiller_eval(d, l0, r0, err, sizeof err) == DTR_OK, "eval: %s", err);
    int ok = 1;
    for (uint32_t s = 0; s < o.steps && ok; s++)
      ok = dtr_distiller_step(d, loss, err, sizeof err) == DTR_OK;
    th_expect(ok, "400 steps: %s", ok ? "ok" : err);
    th_expect(dtr_distiller_eval(d, l1, r1, err, sizeof err) == DTR_OK, "eval: %s", err);
    for (int i = 0; i < 2; i++)
      th_expect(r1[i] < 0.6 * r0[i] && r1[i] < 0.6,
                "layer %d: held-out relative error %.4f -> %.4f (mse %.3g -> %.3g)", i, r0[i],
                r1[i], l0[i], l1[i]);
  }
  dtr_distiller_destroy(d);
  dtr_model_destroy(m);
  free(tr);
  free(va);
}

static void get_all(dtr_distiller *d, float *out) {
  size_t off = 0;
  for (uint32_t i = 0; i < dtr_distiller_nlayers(d); i++) {
    dtr_block *b = dtr_distiller_student(d, i);
    th_ok(ctx, dtr_block_get_params(b, out + off), "params");
    off += dtr_block_param_bytes(b) / 4;
  }
}

static void distill_resume(void) {
  dtr_model *m = make_model(3, 12);
  if (!m) return;
  int32_t *tr = random_tokens(3000, 8);
  dtr_distill_opts o = dopts(8);
  memset(o.layer_on, 0, sizeof o.layer_on);
  o.layer_on[0] = o.layer_on[2] = 1; /* a subset: layer 1 keeps no student */
  char err[512], ck[512];
  snprintf(ck, sizeof ck, "%s/ck.safetensors", dir);
  dtr_distiller *a = dtr_distiller_create(m, &o, err, sizeof err);
  dtr_distiller *b = dtr_distiller_create(m, &o, err, sizeof err);
  th_expect(a && b, "distillers: %s", a && b ? "created" : err);
  if (a && b) {
    th_expect(dtr_distiller_nlayers(a) == 2 && dtr_distiller_layer(a, 1) == 2,
              "--layers 0,2 selects two students");
    dtr_distiller_set_data(a, tr, 3000, NULL, 0, err, sizeof err);
    dtr_distiller_set_data(b, tr, 3000, NULL, 0, err, sizeof err);
    int ok = 1;
    for (int s = 0; s < 8 && ok; s++) ok = !dtr_distiller_step(a, NULL, err, sizeof err);
    for (int s = 0; s < 4 && ok; s++) ok = !dtr_distiller_step(b, NULL, err, sizeof err);
    ok = ok && !dtr_distiller_save_checkpoint(b, ck, err, sizeof err);
    dtr_distiller_destroy(b);
    b = dtr_distiller_create(m, &o, err, sizeof err);
    ok = ok && b && !dtr_distiller_set_data(b, tr, 3000, NULL, 0, err, sizeof err) &&
         !dtr_distiller_load_checkpoint(b, ck, err, sizeof err);
    th_expect(ok && dtr_distiller_steps_done(b) == 4, "checkpoint at step 4 reloaded: %s",
              ok ? "ok" : err);
    double la[2], lb[2];
    for (int s = 0; s < 4 && ok; s++) ok = !dtr_distiller_step(b, lb, err, sizeof err);
    th_expect(ok, "resumed steps: %s", ok ? "ok" : err);
    size_t n = 0;
    for (uint32_t i = 0; i < 2; i++) n += dtr_block_param_bytes(dtr_distiller_student(a, i)) / 4;
    float *pa = th_alloc(n), *pb = th_alloc(n);
    get_all(a, pa);
    get_all(b, pb);
    th_expect(!memcmp(pa, pb, n * 4), "4 + resume + 4 steps == 8 steps, bit for bit");
    free(pa);
    free(pb);
    (void)la;
    /* a checkpoint of other options is refused */
    dtr_distill_opts o2 = o;
    o2.lr *= 2;
    dtr_distiller *c = dtr_distiller_create(m, &o2, err, sizeof err);
    err[0] = 0;
    th_expect(c && dtr_distiller_load_checkpoint(c, ck, err, sizeof err) != DTR_OK &&
                  strstr(err, "other options"),
              "a checkpoint of another lr is refused: %s", err);
    dtr_distiller_destroy(c);
  }
  dtr_distiller_destroy(a);
  dtr_distiller_destroy(b);
  dtr_model_destroy(m);
  free(tr);
}

/* ---- the greedy search ------------------------------------------------------------- */

static void write_task(const char *path, int n, int mc, const int *gold, uint64_t seed) {
  FILE *f = fopen(path, "w");
  uint64_t s = seed;
  static const char *ch[4] = {"a", "b", "c", "ab"};
  for (int i = 0; f && i < n; i++) {
    char ctxs[64];
    int g = (int)urand(&s, 0, 3.99f); /* drawn either way: the same contexts with any gold */
    int len = 6 + (int)urand(&s, 0, 10);
    for (int j = 0; j < len; j++) ctxs[j] = (char)('a' + (int)urand(&s, 0, 3.99f));
    ctxs[len] = 0;
    if (mc)
      fprintf(f, "{\"context\": \"%s:\", \"choices\": [\"%s\", \"%s\", \"%s\", \"%s\"], "
                 "\"gold\": %d}\n", ctxs, ch[0], ch[1], ch[2], ch[3],
              gold ? gold[i] : g);
    else
      fprintf(f, "{\"context\": \"\", \"target\": \"%s %s\"}\n", ctxs, ctxs);
  }
  if (f) fclose(f);
}

static dtr_eval_set *load_set(const char *path, dtr_model *m) {
  dtr_task *t = NULL;
  dtr_eval_set *set = NULL;
  char err[512];
  if (dtr_task_load(path, &t, err, sizeof err) ||
      dtr_eval_prepare(t, tok, dtr_eval_prefix_token(dtr_model_cfg(m), tok), 0, &set, err,
                       sizeof err))
    th_expect(0, "task %s: %s", path, err);
  dtr_task_free(t);
  return set;
}

static void zero_tensor(dtr_model *m, const char *name, size_t n) {
  float *z = calloc(n, sizeof *z);
  th_ok(ctx, dtr_model_set_tensor(m, name, z, n), name);
  free(z);
}

static void greedy_known(void) {
  dtr_model *m = make_model(3, 21);
  if (!m) return;
  zero_tensor(m, "model.layers.0.self_attn.o_proj.weight", 32 * 32);
  zero_tensor(m, "model.layers.2.self_attn.o_proj.weight", 32 * 32);
  dtr_block *stu[3];
  make_students(m, stu, 5, 0);
  float *z = calloc(32 * 32, sizeof *z), *big = th_alloc(32 * 32);
  uint64_t s = 3;
  for (int i = 0; i < 32 * 32; i++) big[i] = urand(&s, -3, 3);
  th_ok(ctx, dtr_block_set_param(stu[0], "o_proj.weight", z), "student 0 silent");
  th_ok(ctx, dtr_block_set_param(stu[2], "o_proj.weight", z), "student 2 silent");
  th_ok(ctx, dtr_block_set_param(stu[1], "o_proj.weight", big), "student 1 garbage");
  free(z);
  free(big);
  /* perplexity on held-out text: silent students change nothing (the same
   * bits), the garbage one raises it */
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/known.jsonl", dir);
  write_task(path, 12, 0, NULL, 99);
  dtr_eval_set *set = load_set(path, m);
  dtr_replace_opts o;
  memset(&o, 0, sizeof o);
  o.tolerance = 0;
  dtr_replace_result res;
  dtr_status st = set ? dtr_replace_run(m, stu, set, &o, &res, err, sizeof err) : DTR_ERR_INVALID;
  th_expect(st == DTR_OK, "search: %s", st ? err : "ok");
  if (!st) {
    th_expect(res.nreplaced == 2 && res.replaced[0] == 0 && res.replaced[1] == 2,
              "replaced %u layers: %u %u (want 0 then 2)", res.nreplaced,
              res.nreplaced > 0 ? res.replaced[0] : 99, res.nreplaced > 1 ? res.replaced[1] : 99);
    const dtr_model_config *c = dtr_model_cfg(m);
    th_expect(c->layer_types[1] == DTR_LAYER_FULL_ATTENTION && c->layer_types[0] != 0 &&
                  c->layer_types[2] != 0,
              "the destructive layer 1 is kept as attention");
    const dtr_replace_step *last = &res.steps[res.nsteps - 1];
    th_expect(last->chosen < 0 && last->ncand == 1 && last->cand[0].layer == 1 &&
                  last->cand[0].score > res.base,
              "the last step tries layer 1 (ppl %s%.3f, base %.3f) and stops",
              last->ncand && last->cand[0].stopped ? ">= " : "",
              last->ncand ? last->cand[0].score : -1, res.base);
    th_expect(res.final == res.base, "the hybrid keeps the teacher's perplexity exactly");
    dtr_replace_result_free(&res);
  }
  for (int L = 0; L < 3; L++) dtr_block_destroy(stu[L]);
  dtr_eval_set_free(set);
  dtr_model_destroy(m);
}

typedef struct copier {
  int n, at;
  const char *from, *to;
} copier;
static void copy_state(void *ud, uint32_t step, const dtr_replace_cand *c, double best) {
  (void)step;
  (void)c;
  (void)best;
  copier *k = ud;
  if (++k->n != k->at) return;
  /* the state as a kill at this moment leaves it (written after the previous candidate) */
  FILE *a = fopen(k->from, "rb"), *b = fopen(k->to, "wb");
  char buf[4096];
  size_t n;
  while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
  if (a) fclose(a);
  if (b) fclose(b);
}

/* One search on a fresh model + students from seeds. */
static int search(uint64_t seed, const char *task, int plain, size_t budget, const char *state,
                  copier *cp, dtr_replace_result *res, double tol) {
  dtr_model *m = make_model(4, seed);
  if (!m) return 0;
  dtr_block *stu[4];
  make_students(m, stu, seed + 1, 0.05f);
  dtr_eval_set *set = load_set(task, m);
  dtr_replace_opts o;
  memset(&o, 0, sizeof o);
  o.tolerance = tol;
  o.plain = plain;
  o.cache_bytes = budget;
  o.batch = 3;
  o.state_path = state;
  if (cp) {
    o.on_candidate = copy_state;
    o.ud = cp;
  }
  char err[512];
  dtr_status st = set ? dtr_replace_run(m, stu, set, &o, res, err, sizeof err) : DTR_ERR_INVALID;
  th_expect(st == DTR_OK, "search (%s, budget %zu%s): %s", plain ? "plain" : "accelerated",
            budget, state ? ", with state" : "", st ? err : "ok");
  for (int L = 0; L < 4; L++) dtr_block_destroy(stu[L]);
  dtr_eval_set_free(set);
  dtr_model_destroy(m);
  return st == DTR_OK;
}

/* Same choices and scores; candidates compared where neither stopped early. */
static int same_trajectory(const dtr_replace_result *a, const dtr_replace_result *b, int exact_rows) {
  if (a->nreplaced != b->nreplaced || a->nsteps != b->nsteps || a->base != b->base ||
      a->final != b->final)
    return 0;
  for (uint32_t i = 0; i < a->nreplaced; i++)
    if (a->replaced[i] != b->replaced[i]) return 0;
  for (uint32_t k = 0; k < a->nsteps; k++) {
    const dtr_replace_step *x = &a->steps[k], *y = &b->steps[k];
    if (x->chosen != y->chosen || x->ncand != y->ncand) return 0;
    if (!(x->score == y->score || (isnan(x->score) && isnan(y->score)))) return 0;
    for (uint32_t i = 0; i < x->ncand; i++) {
      if (x->cand[i].layer != y->cand[i].layer) return 0;
      if (exact_rows && (x->cand[i].stopped != y->cand[i].stopped ||
                         x->cand[i].score != y->cand[i].score))
        return 0;
      if (!x->cand[i].stopped && !y->cand[i].stopped && x->cand[i].score != y->cand[i].score)
        return 0;
    }
  }
  return 1;
}

static void greedy_plain_vs_fast(int mc) {
  char task[512];
  snprintf(task, sizeof task, "%s/%s.jsonl", dir, mc ? "mc" : "lm");
  write_task(task, mc ? 30 : 12, mc, NULL, mc ? 41 : 42);
  /* accuracy: accept anything (every step runs); perplexity: a loose bound */
  double tol = mc ? 1.0 : 1e9;
  dtr_replace_result p, f1, f2;
  int ok = search(31, task, 1, 0, NULL, NULL, &p, tol);
  ok &= search(31, task, 0, 0, NULL, NULL, &f1, tol);
  ok &= search(31, task, 0, 40000, NULL, NULL, &f2, tol);
  if (ok) {
    th_expect(p.nreplaced == 4, "%s: the plain search replaces all 4 layers (%u)",
              mc ? "acc" : "ppl", p.nreplaced);
    th_expect(same_trajectory(&p, &f1, 0),
              "%s: accelerated (1 GiB cache) == plain trajectory", mc ? "acc" : "ppl");
    th_expect(same_trajectory(&p, &f2, 0),
              "%s: accelerated (40 kB cache, partial) == plain trajectory", mc ? "acc" : "ppl");
    th_expect(f1.layer_forwards < p.layer_forwards && p.layer_forwards == p.plain_layer_forwards &&
                  f1.plain_layer_forwards == p.plain_layer_forwards,
              "%s: layer-forwards %zu (accelerated) < %zu (plain, as predicted %zu)",
              mc ? "acc" : "ppl", f1.layer_forwards, p.layer_forwards, p.plain_layer_forwards);
    th_expect(f2.layer_forwards >= f1.layer_forwards && f2.layer_forwards < p.layer_forwards,
              "%s: a small cache recomputes more: %zu", mc ? "acc" : "ppl", f2.layer_forwards);
  }
  dtr_replace_result_free(&p);
  dtr_replace_result_free(&f1);
  dtr_replace_result_free(&f2);
}

static void greedy_resume(void) {
  char task[512], st1[512], st2[512], part[512];
  snprintf(task, sizeof task, "%s/mc.jsonl", dir);
  snprintf(st1, sizeof st1, "%s/state1.json", dir);
  snprintf(st2, sizeof st2, "%s/state2.json", dir);
  snprintf(part, sizeof part, "%s/partial.json", dir);
  remove(st1);
  remove(st2);
  dtr_replace_result a, b;
  copier cp = {0, 6, st2, part};
  int ok = search(31, task, 0, 0, st1, NULL, &a, 0.2);
  ok &= search(31, task, 0, 0, st2, &cp, &b, 0.2);
  dtr_replace_result_free(&b);
  th_expect(ok && cp.n >= 6, "a state copied after 5 candidates (%d candidates in all)", cp.n);
  if (ok) {
    rename(part, st2);
    ok = search(31, task, 0, 0, st2, NULL, &b, 0.2);
    th_expect(ok && same_trajectory(&a, &b, 1),
              "resumed from the state of a run killed at candidate 6: same trajectory (%u "
              "layers replaced)", a.nreplaced);
    dtr_replace_result_free(&b);
  }
  dtr_replace_result_free(&a);
}

/* ---- the commands ----------------------------------------------------------------- */

static const char *dtr_bin;

static int files_equal(const char *a, const char *b) {
  FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
  int eq = x && y;
  while (eq) {
    int c = fgetc(x), d = fgetc(y);
    if (c != d) eq = 0;
    if (c == EOF || d == EOF) break;
  }
  if (x) fclose(x);
  if (y) fclose(y);
  return eq;
}

static void cli(void) {
  char mdir[300], m2[300], text[300], args[4096], out[16384], p1[400], p2[400];
  snprintf(mdir, sizeof mdir, "%s/teacher", dir);
  snprintf(m2, sizeof m2, "%s/other", dir);
  snprintf(text, sizeof text, "%s/train.txt", dir);
  mkdir(mdir, 0777);
  mkdir(m2, 0777);
  char err[512];
  dtr_model *m = make_model(2, 51), *o = make_model(3, 52);
  if (!m || !o) return;
  th_expect(!dtr_model_save(m, mdir, err, sizeof err) && !dtr_model_save(o, m2, err, sizeof err),
            "models saved");
  th_write_byte_tokenizer(mdir);
  th_write_byte_tokenizer(m2);
  dtr_model_destroy(m);
  dtr_model_destroy(o);
  FILE *f = fopen(text, "w");
  uint64_t s = 17;
  for (int i = 0; f && i < 3000; i++) fputc(i % 40 == 39 ? '\n' : 'a' + (int)urand(&s, 0, 25.99f), f);
  if (f) fclose(f);
  const char *common = "--data %s --tokens 640 --seq-len 16 --batch 4 --checkpoint-interval 2";
  char fmt[600];
  /* uninterrupted, then stopped + resumed */
  snprintf(fmt, sizeof fmt, "distill --model %%s %s --out %%s/s1", common);
  snprintf(args, sizeof args, fmt, mdir, text, dir);
  int rc = th_run(dtr_bin, args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "relative error"), "dtr distill (exit %d): %s", rc, out);
  snprintf(fmt, sizeof fmt, "distill --model %%s %s --out %%s/s2 --stop-after 5", common);
  snprintf(args, sizeof args, fmt, mdir, text, dir);
  rc = th_run(dtr_bin, args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "stopped after step 5"), "stopped at 5 (exit %d)", rc);
  snprintf(fmt, sizeof fmt, "distill --model %%s %s --out %%s/s2 --resume", common);
  snprintf(args, sizeof args, fmt, mdir, text, dir);
  rc = th_run(dtr_bin, args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "resumed from"), "resumed (exit %d): %s", rc, out);
  snprintf(p1, sizeof p1, "%s/s1/students.safetensors", dir);
  snprintf(p2, sizeof p2, "%s/s2/students.safetensors", dir);
  th_expect(files_equal(p1, p2), "stop + resume writes the same students, byte for byte");
  /* kill -9 in the middle, then resume (or start over if no checkpoint was made) */
  snprintf(fmt, sizeof fmt, "distill --model %%s %s --out %%s/s3", common);
  char cmd[4400], tail[2200];
  snprintf(tail, sizeof tail, fmt, mdir, text, dir);
  snprintf(cmd, sizeof cmd,
           "(%s %s >/dev/null 2>&1 & p=$!; sleep 0.7; kill -9 $p; wait $p) >/dev/null 2>&1",
           dtr_bin, tail);
  rc = system(cmd);
  snprintf(p2, sizeof p2, "%s/s3/checkpoint.safetensors", dir);
  int had = access(p2, R_OK) == 0;
  snprintf(args, sizeof args, "%s%s", tail, had ? " --resume" : "");
  rc = th_run(dtr_bin, args, out, sizeof out);
  snprintf(p2, sizeof p2, "%s/s3/students.safetensors", dir);
  th_expect(rc == 0 && files_equal(p1, p2),
            "kill -9 mid-run, then %s: the same students, byte for byte (exit %d)",
            had ? "--resume" : "a fresh start (no checkpoint yet)", rc);
  /* replace: a loadable hybrid and the trajectory */
  char task[400];
  snprintf(task, sizeof task, "%s/mc.jsonl", dir);
  snprintf(args, sizeof args,
           "replace --model %s --students %s/s1 --task %s --tolerance 50%% --out %s/h "
           "--speed-ctx 64 --speed-steps 2",
           mdir, dir, task, dir);
  rc = th_run(dtr_bin, args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "base: acc") && strstr(out, "layer-forwards") &&
                strstr(out, "speedup"),
            "dtr replace (exit %d): %s", rc, out);
  const char *want[] = {"config.json", "model.safetensors", "tokenizer.json", "trajectory.json",
                        "trajectory.svg", "summary.json"};
  for (int i = 0; i < 6; i++) {
    snprintf(p1, sizeof p1, "%s/h/%s", dir, want[i]);
    th_expect(access(p1, R_OK) == 0, "hybrid directory has %s", want[i]);
  }
  snprintf(args, sizeof args, "generate --model %s/h --prompt abc --max-tokens 4", dir);
  rc = th_run(dtr_bin, args, out, sizeof out);
  th_expect(rc == 0, "dtr generate loads the hybrid (exit %d): %s", rc, out);
  /* bad input */
  snprintf(args, sizeof args,
           "replace --model %s --students %s/s1 --task %s --tolerance 0.1 --out %s/h2", m2, dir,
           task, dir);
  rc = th_run(dtr_bin, args, out, sizeof out);
  th_expect(rc != 0 && strstr(out, "students.json") && strstr(out, "layers"),
            "students of another model: clear error (exit %d): %s", rc, out);
  snprintf(p1, sizeof p1, "%s/empty.jsonl", dir);
  f = fopen(p1, "w");
  if (f) fclose(f);
  snprintf(args, sizeof args,
           "replace --model %s --students %s/s1 --task %s --tolerance 0.1 --out %s/h3", mdir,
           dir, p1, dir);
  rc = th_run(dtr_bin, args, out, sizeof out);
  th_expect(rc != 0 && strstr(out, "empty.jsonl"), "a task without examples (exit %d): %s", rc,
            out);
  const char *bad[] = {"-0.1", "abc"};
  for (int i = 0; i < 2; i++) {
    snprintf(args, sizeof args,
             "replace --model %s --students %s/s1 --task %s --tolerance %s --out %s/h4", mdir,
             dir, task, bad[i], dir);
    rc = th_run(dtr_bin, args, out, sizeof out);
    th_expect(rc == 2 && strstr(out, "--tolerance"), "--tolerance %s refused (exit %d): %s",
              bad[i], rc, out);
  }
}

int main(int argc, char **argv) {
  ctx = th_ctx();
  if (!ctx) return th_finish();
  snprintf(dir, sizeof dir, "/tmp/dtr_test_distill_%d", (int)getpid());
  mkdir(dir, 0777);
  th_write_byte_tokenizer(dir);
  char path[512], err[512];
  dtr_status st;
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  tok = dtr_tokenizer_load(path, &st, err, sizeof err);
  th_expect(tok != NULL, "tokenizer: %s", tok ? "ok" : err);
  dtr_bin = argc > 1 ? argv[1] : NULL;
  if (tok) {
    distill_learns();
    distill_resume();
    greedy_known();
    greedy_plain_vs_fast(1);
    greedy_plain_vs_fast(0);
    greedy_resume();
    if (dtr_bin) cli();
    else printf("  (dtr binary not given: command-line checks skipped)\n");
  }
  dtr_tokenizer_free(tok);
  th_rm_tree(dir);
  return th_finish(); /* destroys the context */
}
