/* test_model.c — host/model.c against tests/ref_model.c: tiny models of each
 * family (Qwen2 q/k/v biases, Qwen3 q/k norms + tied head, Llama 3 rope
 * scaling) built here; full-forward logits vs the double reference, KV-cache
 * decode vs the reference's full re-forward, batched prefill of different
 * lengths vs separate runs (Qwen3 and Llama with the embedding / head split
 * into row chunks, as a big vocabulary is), save -> load round trip (byte-identical tensors), a
 * hybrid (layer 1 a Gated DeltaNet student) prefill vs decode consistency and
 * round trip, and bad checkpoints (clear one-line errors naming the file, and a
 * non-zero exit from `dtr generate` when argv[1] is the dtr binary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "model.h"
#include "ref_model.h"
#include "safetensors.h"

#define V 97
#define MAXT 64

static const char *dtr_bin;

/* ---- weights as a host table for the reference ---- */
typedef struct wtab {
  uint32_t n;
  char name[128][160];
  float *data[128];
  size_t numel[128];
} wtab;

static const float *weight_get(void *ud, const char *name) {
  wtab *t = ud;
  for (uint32_t i = 0; i < t->n; i++)
    if (!strcmp(t->name[i], name)) return t->data[i];
  return NULL;
}

static void wfree(wtab *t) {
  for (uint32_t i = 0; i < t->n; i++) free(t->data[i]);
  t->n = 0;
}

/* Downloads every tensor of m into t. */
static void wload(dtr_model *m, wtab *t) {
  t->n = 0;
  char nm[160];
  size_t k;
  for (uint32_t i = 0; dtr_model_tensor_at(m, i, nm, sizeof nm, &k) == DTR_OK && i < 128; i++) {
    snprintf(t->name[i], 160, "%s", nm);
    t->numel[i] = k;
    t->data[i] = th_alloc(k);
    th_ok(dtr_model_ctx(m), dtr_model_get_tensor(m, nm, t->data[i], k), nm);
    t->n++;
  }
}

/* Gives every dense tensor of m values of a useful size (0.02 gives logits too
 * flat to see a wrong layer). */
static void randomize(dtr_model *m) {
  char nm[160];
  size_t k;
  for (uint32_t i = 0; dtr_model_tensor_at(m, i, nm, sizeof nm, &k) == DTR_OK; i++) {
    if (strstr(nm, "linear_attn.")) continue;
    float *x = th_alloc(k);
    if (strstr(nm, "norm.weight")) th_rand(x, k, 0.7f, 1.3f);
    else if (strstr(nm, "bias")) th_rand(x, k, -0.2f, 0.2f);
    else if (strstr(nm, "embed")) th_rand(x, k, -1.0f, 1.0f);
    else th_rand(x, k, -0.25f, 0.25f);
    th_ok(dtr_model_ctx(m), dtr_model_set_tensor(m, nm, x, k), nm);
    free(x);
  }
}

static dtr_model_config tiny(dtr_arch a) {
  dtr_model_config c;
  memset(&c, 0, sizeof c);
  c.architecture = a;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = V;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = a == DTR_ARCH_LLAMA ? 500000 : 10000;
  c.bos_token_id = 1;
  c.eos_token_id[0] = 2;
  c.n_eos = 1;
  if (a == DTR_ARCH_QWEN2) c.attention_bias = 1;
  if (a == DTR_ARCH_QWEN3) { c.qk_norm = 1; c.tie_word_embeddings = 1; }
  if (a == DTR_ARCH_LLAMA) {
    c.rope_scaling.type = DTR_ROPE_SCALING_LLAMA3;
    c.rope_scaling.factor = 8;
    c.rope_scaling.low_freq_factor = 1;
    c.rope_scaling.high_freq_factor = 4;
    c.rope_scaling.original_max_position_embeddings = 16;
  }
  snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
  dtr_model_config_default_linear(&c);
  return c;
}

static void rand_ids(int32_t *ids, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) ids[i] = (int32_t)th_randint(V);
}

/* Full prefill (all logits) of one sequence. */
static void model_logits(dtr_model *m, const int32_t *ids, uint32_t T, float *out) {
  dtr_ctx *ctx = dtr_model_ctx(m);
  dtr_session *s = dtr_session_create(m, 1, 128);
  th_expect(s != NULL, "session: %s", s ? "ok" : dtr_ctx_error(ctx));
  if (!s) return;
  th_ok(ctx, dtr_session_prefill(s, &ids, &T, out, 1), "prefill all");
  dtr_session_destroy(s);
}

static void family(dtr_ctx *ctx, dtr_arch a) {
  const char *fam = dtr_arch_name(a);
  dtr_model_config c = tiny(a);
  char err[512];
  dtr_status st;
  dtr_model *m = dtr_model_create(ctx, &c, MAXT, 7, &st, err, sizeof err);
  th_expect(m != NULL, "%s: create (%s)", fam, m ? "ok" : err);
  if (!m) return;
  randomize(m);
  wtab *w = calloc(1, sizeof *w);
  wload(m, w);
  char what[256];
  /* 1. full forward vs the reference */
  enum { T = 20 };
  int32_t ids[T];
  rand_ids(ids, T);
  float *got = th_alloc((size_t)T * V);
  double *ref = th_dalloc((size_t)T * V);
  ref_model_forward(ref, &c, weight_get, w, ids, T);
  model_logits(m, ids, T, got);
  snprintf(what, sizeof what, "%s: forward logits (%d tokens) vs reference", fam, T);
  th_check(what, got, ref, (size_t)T * V, 1e-4, 1e-4, 1e-3);
  /* 2. prefill k, decode the rest: each step's logits = the full forward's row */
  {
    dtr_session *s = dtr_session_create(m, 1, 64);
    uint32_t k = 7;
    const int32_t *p = ids;
    float *step = th_alloc((size_t)T * V);
    th_ok(ctx, dtr_session_prefill(s, &p, &k, step + (size_t)(k - 1) * V, 0), "prefill k");
    for (uint32_t t = k; t < T; t++)
      th_ok(ctx, dtr_session_decode(s, &ids[t], step + (size_t)t * V), "decode");
    snprintf(what, sizeof what, "%s: prefill %u + decode %u vs reference", fam, k, T - k);
    th_check(what, step + (size_t)(k - 1) * V, ref + (size_t)(k - 1) * V, (size_t)(T - k + 1) * V,
             1e-4, 1e-4, 1e-3);
    th_expect(dtr_session_len(s, 0) == T, "%s: session length %u", fam, dtr_session_len(s, 0));
    free(step);
    dtr_session_destroy(s);
  }
  /* 3. batched prefill of 3 sequences of different lengths, then 2 decode steps,
   * vs separate reference runs */
  {
    uint32_t lens[3] = {9, 3, 14};
    int32_t seq[3][16];
    const int32_t *pp[3] = {seq[0], seq[1], seq[2]};
    for (int b = 0; b < 3; b++) rand_ids(seq[b], 16);
    dtr_session *s = dtr_session_create(m, 3, 32);
    uint32_t tot = lens[0] + lens[1] + lens[2];
    float *all = th_alloc((size_t)tot * V), *lastl = th_alloc(3 * V), *dec = th_alloc(3 * V);
    double *rall = th_dalloc((size_t)tot * V), *rlast = th_dalloc(3 * V),
           *rdec = th_dalloc(3 * V), *tmp = th_dalloc((size_t)16 * V);
    th_ok(ctx, dtr_session_prefill(s, pp, lens, all, 1), "batched prefill (all)");
    dtr_session_destroy(s);
    s = dtr_session_create(m, 3, 32);
    th_ok(ctx, dtr_session_prefill(s, pp, lens, lastl, 0), "batched prefill (last)");
    size_t r = 0;
    for (int b = 0; b < 3; b++) {
      ref_model_forward(tmp, &c, weight_get, w, seq[b], lens[b]);
      memcpy(rall + r * V, tmp, (size_t)lens[b] * V * 8);
      memcpy(rlast + (size_t)b * V, tmp + (size_t)(lens[b] - 1) * V, V * 8);
      r += lens[b];
    }
    snprintf(what, sizeof what, "%s: batched prefill of lengths 9,3,14, every position", fam);
    th_check(what, all, rall, (size_t)tot * V, 1e-4, 1e-4, 1e-3);
    snprintf(what, sizeof what, "%s: batched prefill, last positions", fam);
    th_check(what, lastl, rlast, 3 * V, 1e-4, 1e-4, 1e-3);
    for (int step = 0; step < 2; step++) {
      int32_t nx[3];
      for (int b = 0; b < 3; b++) nx[b] = seq[b][lens[b] + step];
      th_ok(ctx, dtr_session_decode(s, nx, dec), "batched decode");
      for (int b = 0; b < 3; b++) {
        ref_model_forward(tmp, &c, weight_get, w, seq[b], lens[b] + step + 1);
        memcpy(rdec + (size_t)b * V, tmp + (size_t)(lens[b] + step) * V, V * 8);
      }
      snprintf(what, sizeof what, "%s: batched decode step %d (3 lengths)", fam, step + 1);
      th_check(what, dec, rdec, 3 * V, 1e-4, 1e-4, 1e-3);
    }
    dtr_session_destroy(s);
    free(all); free(lastl); free(dec); free(rall); free(rlast); free(rdec); free(tmp);
  }
  /* 4. save -> load: identical tensors and logits */
  {
    char dir[] = "/tmp/dtr_test_model_XXXXXX";
    th_expect(mkdtemp(dir) != NULL, "temp dir");
    st = dtr_model_save(m, dir, err, sizeof err);
    th_expect(st == DTR_OK, "%s: save (%s)", fam, st ? err : "ok");
    dtr_model *m2 = dtr_model_load(ctx, dir, MAXT, &st, err, sizeof err);
    th_expect(m2 != NULL, "%s: load saved (%s)", fam, m2 ? "ok" : err);
    if (m2) {
      wtab *w2 = calloc(1, sizeof *w2);
      wload(m2, w2);
      int same = w2->n == w->n;
      for (uint32_t i = 0; same && i < w->n; i++)
        same = !strcmp(w->name[i], w2->name[i]) && w->numel[i] == w2->numel[i] &&
               !memcmp(w->data[i], w2->data[i], w->numel[i] * 4);
      th_expect(same, "%s: save -> load gives byte-identical tensors (%u)", fam, w->n);
      float *got2 = th_alloc((size_t)T * V);
      model_logits(m2, ids, T, got2);
      th_expect(!memcmp(got, got2, (size_t)T * V * 4), "%s: reloaded model, same logits", fam);
      /* and a second save of the loaded model is byte-identical file-wise */
      char dir2[] = "/tmp/dtr_test_model_XXXXXX";
      th_expect(mkdtemp(dir2) != NULL, "temp dir");
      dtr_model_save(m2, dir2, err, sizeof err);
      char cmd[256];
      snprintf(cmd, sizeof cmd, "cmp -s %s/model.safetensors %s/model.safetensors", dir, dir2);
      th_expect(system(cmd) == 0, "%s: loaded fp32 model saves to the same bytes", fam);
      snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, dir2);
      if (system(cmd)) {}
      free(got2);
      wfree(w2);
      free(w2);
      dtr_model_destroy(m2);
    }
  }
  free(got);
  free(ref);
  wfree(w);
  free(w);
  dtr_model_destroy(m);
}

/* A hybrid: layer 1 replaced by a GDN student initialised from its attention. */
static void hybrid(dtr_ctx *ctx) {
  dtr_model_config c = tiny(DTR_ARCH_QWEN3);
  char err[512];
  dtr_status st;
  dtr_model *m = dtr_model_create(ctx, &c, MAXT, 3, &st, err, sizeof err);
  if (!m) { th_expect(0, "hybrid create: %s", err); return; }
  randomize(m);
  st = dtr_model_replace_layer_kind(m, 1, DTR_BLOCK_GDN, 5);
  th_expect(st == DTR_OK, "replace layer 1 by gdn (%s)", st ? dtr_ctx_error(ctx) : "ok");
  if (st) { dtr_model_destroy(m); return; }
  th_expect(dtr_model_cfg(m)->hybrid && dtr_model_cfg(m)->layer_types[1] == DTR_LAYER_GDN,
            "config marks layer 1 gdn");
  enum { T = 24 };
  int32_t ids[T];
  rand_ids(ids, T);
  float *full = th_alloc((size_t)T * V), *step = th_alloc((size_t)T * V);
  model_logits(m, ids, T, full);
  dtr_session *s = dtr_session_create(m, 1, 64);
  uint32_t k = 5;
  const int32_t *p = ids;
  th_ok(ctx, dtr_session_prefill(s, &p, &k, step + (size_t)(k - 1) * V, 0), "hybrid prefill");
  for (uint32_t t = k; t < T; t++)
    th_ok(ctx, dtr_session_decode(s, &ids[t], step + (size_t)t * V), "hybrid decode");
  double *fd = th_dalloc((size_t)T * V);
  for (size_t i = 0; i < (size_t)T * V; i++) fd[i] = full[i];
  th_check("hybrid (gdn layer 1): prefill 5 + decode 19 vs full forward",
           step + (size_t)(k - 1) * V, fd + (size_t)(k - 1) * V, (size_t)(T - k + 1) * V, 1e-4,
           1e-4, 1e-3);
  dtr_session_destroy(s);
  /* batched prefill of a hybrid: two lengths vs separate runs */
  {
    uint32_t lens[2] = {T, 11};
    const int32_t *pp[2] = {ids, ids + 3};
    float *lastl = th_alloc(2 * V), *one = th_alloc((size_t)T * V);
    s = dtr_session_create(m, 2, 64);
    th_ok(ctx, dtr_session_prefill(s, pp, lens, lastl, 0), "hybrid batched prefill");
    dtr_session_destroy(s);
    model_logits(m, ids + 3, 11, one);
    double r[2 * V];
    for (int i = 0; i < V; i++) {
      r[i] = full[(size_t)(T - 1) * V + i];
      r[V + i] = one[(size_t)10 * V + i];
    }
    th_check("hybrid: batched prefill (24, 11) vs separate runs", lastl, r, 2 * V, 1e-4, 1e-4,
             1e-3);
    free(lastl);
    free(one);
  }
  /* round trip of the hybrid */
  char dir[] = "/tmp/dtr_test_model_XXXXXX";
  th_expect(mkdtemp(dir) != NULL, "temp dir");
  st = dtr_model_save(m, dir, err, sizeof err);
  th_expect(st == DTR_OK, "hybrid save (%s)", st ? err : "ok");
  dtr_model *m2 = dtr_model_load(ctx, dir, MAXT, &st, err, sizeof err);
  th_expect(m2 != NULL, "hybrid load (%s)", m2 ? "ok" : err);
  if (m2) {
    float *g2 = th_alloc((size_t)T * V);
    model_logits(m2, ids, T, g2);
    th_expect(!memcmp(g2, full, (size_t)T * V * 4), "hybrid save -> load: same logits");
    free(g2);
    dtr_model_destroy(m2);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
  free(full);
  free(step);
  free(fd);
  dtr_model_destroy(m);
}

/* ---- bad checkpoints ---- */

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f) { fwrite(data, 1, n, f); fclose(f); }
}

static char *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)sz + 1);
  *n = fread(b, 1, (size_t)sz, f);
  b[*n] = 0;
  fclose(f);
  return b;
}

static void expect_bad(dtr_ctx *ctx, const char *dir, const char *what, const char *needle) {
  char err[1024] = "";
  dtr_status st;
  dtr_model *m = dtr_model_load(ctx, dir, MAXT, &st, err, sizeof err);
  th_expect(!m && st != DTR_OK && strstr(err, dir) && !strchr(err, '\n') &&
                (!needle || strstr(err, needle)),
            "%s: load fails with one line naming the file: %s", what, err);
  dtr_model_destroy(m);
  if (dtr_bin) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' generate --model '%s' --prompt hi --max-tokens 2 >/dev/null 2>&1",
             dtr_bin, dir);
    int rc = system(cmd);
    th_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "%s: dtr generate exits 1 (got %d)", what,
              WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
  }
}

static void bad_inputs(dtr_ctx *ctx) {
  dtr_model_config c = tiny(DTR_ARCH_QWEN2);
  char err[512];
  dtr_status st;
  dtr_model *m = dtr_model_create(ctx, &c, MAXT, 1, &st, err, sizeof err);
  if (!m) { th_expect(0, "create: %s", err); return; }
  char dir[] = "/tmp/dtr_test_model_XXXXXX";
  th_expect(mkdtemp(dir) != NULL, "temp dir");
  th_expect(dtr_model_save(m, dir, err, sizeof err) == DTR_OK, "save good model");
  dtr_model_destroy(m);
  char stp[256], cfp[256];
  snprintf(stp, sizeof stp, "%s/model.safetensors", dir);
  snprintf(cfp, sizeof cfp, "%s/config.json", dir);
  size_t nst, ncf;
  char *good = read_all(stp, &nst), *cfg = read_all(cfp, &ncf);
  if (!good || !cfg) { th_expect(0, "read back saved files"); return; }
  /* a good directory loads */
  m = dtr_model_load(ctx, dir, MAXT, &st, err, sizeof err);
  th_expect(m != NULL, "good checkpoint loads (%s)", m ? "ok" : err);
  dtr_model_destroy(m);
  /* truncated header */
  write_file(stp, good, 50);
  expect_bad(ctx, dir, "truncated header", NULL);
  /* corrupt header JSON */
  {
    char *b = malloc(nst);
    memcpy(b, good, nst);
    b[8] = '[';
    b[9] = '[';
    write_file(stp, b, nst);
    expect_bad(ctx, dir, "corrupt header", NULL);
    /* truncated data: offsets run past the end of the file */
    write_file(stp, good, nst - 100);
    expect_bad(ctx, dir, "offsets out of range", NULL);
    free(b);
  }
  write_file(stp, good, nst);
  /* shape disagreeing with config.json */
  {
    char *b = malloc(ncf + 16), *p = strstr(cfg, "\"intermediate_size\": 96");
    if (!p) p = strstr(cfg, "\"intermediate_size\":96");
    th_expect(p != NULL, "config has intermediate_size 96");
    if (p) {
      size_t pre = (size_t)(p - cfg);
      char *q = strchr(p, ':') + 1;
      while (*q == ' ') q++;
      sprintf(b, "%.*s\"intermediate_size\": 80%s", (int)pre, cfg, q + 2);
      write_file(cfp, b, strlen(b));
      expect_bad(ctx, dir, "shape vs config.json", "mlp");
    }
    free(b);
  }
  write_file(cfp, cfg, ncf);
  /* unknown architecture */
  {
    char *b = malloc(ncf + 64), *p = strstr(cfg, "Qwen2ForCausalLM");
    if (p) {
      sprintf(b, "%.*sMambaForCausalLM%s", (int)(p - cfg), cfg, p + strlen("Qwen2ForCausalLM"));
      write_file(cfp, b, strlen(b));
      expect_bad(ctx, dir, "unknown architecture", "MambaForCausalLM");
    } else th_expect(0, "config names Qwen2ForCausalLM");
    free(b);
  }
  write_file(cfp, cfg, ncf);
  /* a missing tensor: rewrite without model.norm.weight */
  {
    dtr_safetensors *sf;
    st = dtr_safetensors_open(stp, &sf, err, sizeof err);
    if (!st) {
      dtr_st_writer *w = dtr_st_writer_create();
      for (size_t i = 0; i < dtr_safetensors_count(sf); i++) {
        const dtr_st_tensor *t = dtr_safetensors_at(sf, i);
        if (!strcmp(t->name, "model.norm.weight")) continue;
        dtr_st_writer_add_copy(w, t->name, t->dtype, t->ndim, t->shape, t->data, err, sizeof err);
      }
      char tmp[300];
      snprintf(tmp, sizeof tmp, "%s/x.safetensors", dir);
      dtr_st_writer_save(w, tmp, err, sizeof err);
      dtr_st_writer_destroy(w);
      dtr_safetensors_close(sf);
      rename(tmp, stp);
      expect_bad(ctx, dir, "missing tensor", "model.norm.weight");
    } else th_expect(0, "reopen: %s", err);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
  free(good);
  free(cfg);
}

/* ---- the command line on a tiny model with a byte-level tokenizer ---- */


static int run(const char *args, char *out, size_t cap) {
  return th_run(dtr_bin, args, out, cap);
}

static void cli(dtr_ctx *ctx) {
  dtr_model_config c = tiny(DTR_ARCH_QWEN2);
  c.vocab_size = 260; /* 256 bytes + <|endoftext|> (256) + room */
  c.eos_token_id[0] = 256;
  char err[512];
  dtr_status st;
  dtr_model *m = dtr_model_create(ctx, &c, MAXT, 11, &st, err, sizeof err);
  if (!m) { th_expect(0, "cli model: %s", err); return; }
  randomize(m);
  char dir[] = "/tmp/dtr_test_model_XXXXXX";
  th_expect(mkdtemp(dir) != NULL, "temp dir");
  th_expect(dtr_model_save(m, dir, err, sizeof err) == DTR_OK, "save cli model");
  dtr_model_destroy(m);
  char path[300];
  th_write_byte_tokenizer(dir);
  FILE *f;
  static char out[1 << 16];
  char args[1024];
  snprintf(args, sizeof args, "generate --model %s --prompt 'Hello, world' --max-tokens 6", dir);
  int rc = run(args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "tokens/s"), "dtr generate runs (exit %d): %.300s", rc, out);
  snprintf(args, sizeof args,
           "generate --model %s --prompt 'Hello' --max-tokens 6 --temperature 0.8 --top-p 0.9 "
           "--seed 3", dir);
  rc = run(args, out, sizeof out);
  th_expect(rc == 0, "dtr generate with sampling (exit %d)", rc);
  snprintf(path, sizeof path, "%s/text.txt", dir);
  f = fopen(path, "w");
  fprintf(f, "The quick brown fox jumps over the lazy dog.\nAnd again, the quick brown fox.\n");
  fclose(f);
  snprintf(args, sizeof args, "score --model %s --file %s --ctx 32", dir, path);
  rc = run(args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "perplexity") && strstr(out, "\tqu") == NULL,
            "dtr score runs (exit %d): %.200s", rc, out);
  snprintf(args, sizeof args, "bench decode --model %s --ctx 64,256 --replace 1 --steps 2 --json",
           dir);
  rc = run(args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "\"speedup\"") && strstr(out, "\"cache_bytes\""),
            "dtr bench decode --json (exit %d): %.300s", rc, out);
  snprintf(args, sizeof args, "generate --model %s --prompt hi --top-p 0", dir);
  rc = run(args, out, sizeof out);
  th_expect(rc == 2, "generate --top-p 0 is a usage error (exit %d)", rc);
  snprintf(args, sizeof args, "bench decode --model %s --block foo", dir);
  rc = run(args, out, sizeof out);
  th_expect(rc == 2 && strstr(out, "foo"), "bench decode --block foo named (exit %d)", rc);
  rc = run("score --model /nonexistent --file /nonexistent", out, sizeof out);
  th_expect(rc == 1 && strstr(out, "/nonexistent"), "score of a missing file: exit 1: %s", out);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
}

int main(int argc, char **argv) {
  if (argc > 1) dtr_bin = argv[1];
  dtr_ctx *ctx = th_ctx();
  family(ctx, DTR_ARCH_QWEN2);
  /* the others with embedding / lm_head split into row chunks of 8 KiB, as a
   * big vocabulary is split under the 128 MiB binding limit */
  setenv("DTR_MODEL_MAX_BINDING", "8192", 1);
  family(ctx, DTR_ARCH_QWEN3);
  family(ctx, DTR_ARCH_LLAMA);
  unsetenv("DTR_MODEL_MAX_BINDING");
  hybrid(ctx);
  bad_inputs(ctx);
  if (dtr_bin) cli(ctx);
  return th_finish();
}
