/* train.c — the training graph of dtr's small Llama teacher (see train.h):
 * config, parameter layout, forward/backward on the device ops, AdamW,
 * sampler, checkpoints and the Hugging Face export. */
#include "train.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dtr_ops.h"
#include "safetensors.h"

#define TR_PI 3.14159265358979323846

/* ---- config ------------------------------------------------------------------ */

void dtr_train_config_default(dtr_train_config *c) {
  memset(c, 0, sizeof *c);
  c->hidden = 256;
  c->layers = 4;
  c->heads = 8;
  c->kv_heads = 2;
  c->intermediate = 688;
  c->max_seq_len = 256;
  c->rope_theta = 10000.0;
  c->norm_eps = 1e-5;
  c->init_std = 0.02;
  c->recall_fraction = 0.0;
  strcpy(c->recall_loss, "all");
  strcpy(c->recall_windows, "any");
  c->lr = 3e-3;
  c->min_lr_fraction = 0.1;
  c->weight_decay = 0.1;
  c->clip = 1.0;
  c->beta1 = 0.9;
  c->beta2 = 0.95;
  c->eps = 1e-8;
  c->warmup = 100;
  c->steps = 1000;
  c->batch = 8;
  c->seq_len = 256;
  c->eval_interval = 100;
  c->eval_batches = 8;
  c->checkpoint_interval = 100;
  c->log_interval = 10;
  c->seed = 1234;
}

static const char *cfg_name(const dtr_train_config *c) {
  return c->source[0] ? c->source : "train config";
}

dtr_status dtr_train_config_validate(const dtr_train_config *c, char *err, size_t errlen) {
  const char *f = cfg_name(c);
#define BAD(...) return dtr_errf(err, errlen, DTR_ERR_FORMAT, __VA_ARGS__)
  if (!c->layers) BAD("%s: model.layers must be at least 1", f);
  if (!c->hidden || !c->heads || !c->kv_heads || !c->intermediate)
    BAD("%s: model.hidden, heads, kv_heads and intermediate must be positive", f);
  if (c->hidden % c->heads)
    BAD("%s: model.heads=%u does not divide model.hidden=%u", f, c->heads, c->hidden);
  if (c->heads % c->kv_heads)
    BAD("%s: model.kv_heads=%u does not divide model.heads=%u", f, c->kv_heads, c->heads);
  uint32_t D = c->hidden / c->heads;
  if (D % 4 || D > 256)
    BAD("%s: head dim hidden/heads=%u must be a multiple of 4 and at most 256", f, D);
  if (!c->max_seq_len || !c->seq_len || c->seq_len > c->max_seq_len)
    BAD("%s: optim.seq_len=%u must be in 1..model.max_seq_len=%u", f, c->seq_len,
        c->max_seq_len);
  if (!(c->rope_theta > 0) || !(c->norm_eps > 0) || !(c->init_std > 0))
    BAD("%s: model.rope_theta, norm_eps and init_std must be positive", f);
  if (!c->batch || !c->steps) BAD("%s: optim.batch and optim.steps must be at least 1", f);
  if (!(c->lr > 0) || !(c->min_lr_fraction >= 0 && c->min_lr_fraction <= 1))
    BAD("%s: optim.lr must be positive and min_lr_fraction in [0, 1]", f);
  if (!(c->weight_decay >= 0) || !(c->clip >= 0) || !(c->beta1 >= 0 && c->beta1 < 1) ||
      !(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps > 0))
    BAD("%s: optim.weight_decay, clip, beta1, beta2 or eps out of range", f);
  if (!(c->recall_fraction >= 0 && c->recall_fraction <= 1))
    BAD("%s: data.recall_fraction must be in [0, 1]", f);
  if (strcmp(c->recall_loss, "all") && strcmp(c->recall_loss, "answers"))
    BAD("%s: data.recall_loss is \"%s\"; use \"all\" or \"answers\"", f, c->recall_loss);
  if (strcmp(c->recall_windows, "any") && strcmp(c->recall_windows, "start"))
    BAD("%s: data.recall_windows is \"%s\"; use \"any\" or \"start\"", f, c->recall_windows);
  if (c->recall_only_steps > c->steps)
    BAD("%s: data.recall_only_steps=%u exceeds optim.steps=%u", f, c->recall_only_steps,
        c->steps);
  if ((uint64_t)c->batch * c->seq_len > (1u << 24))
    BAD("%s: optim.batch * seq_len is too large", f);
#undef BAD
  return DTR_OK;
}

/* Reads one object's keys into the config through a table. */
typedef struct {
  const char *key;
  char kind; /* 'u' uint32, 'd' double, 's' path, 'q' uint64 */
  void *dst;
} cfg_field;

static dtr_status read_fields(json_t *obj, const char *where, const cfg_field *fs, size_t nf,
                              const char *file, char *err, size_t errlen) {
  if (!json_is_object(obj))
    return dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: \"%s\" must be an object", file, where);
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (key[0] == '_') continue;
    size_t i;
    for (i = 0; i < nf; i++)
      if (!strcmp(fs[i].key, key)) break;
    if (i == nf)
      return dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: unknown key \"%s%s%s\"", file,
                  where[0] ? where : "", where[0] ? "." : "", key);
    const cfg_field *fd = &fs[i];
    if (fd->kind == 's') {
      if (!json_is_string(v) || strlen(json_string_value(v)) >= 512)
        return dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: %s.%s must be a string of under 512 bytes", file,
                    where, key);
      snprintf((char *)fd->dst, 512, "%s", json_string_value(v));
    } else if (fd->kind == 'd') {
      if (!json_is_number(v))
        return dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: %s%s%s must be a number", file, where,
                    where[0] ? "." : "", key);
      *(double *)fd->dst = json_number_value(v);
    } else {
      if (!json_is_integer(v) || json_integer_value(v) < 0 ||
          (fd->kind == 'u' && json_integer_value(v) > (json_int_t)UINT32_MAX))
        return dtr_errf(err, errlen, DTR_ERR_FORMAT,
                    "%s: %s%s%s must be a non-negative integer", file, where,
                    where[0] ? "." : "", key);
      if (fd->kind == 'u')
        *(uint32_t *)fd->dst = (uint32_t)json_integer_value(v);
      else
        *(uint64_t *)fd->dst = (uint64_t)json_integer_value(v);
    }
  }
  return DTR_OK;
}

dtr_status dtr_train_config_load(const char *path, dtr_train_config *c, char *err,
                                 size_t errlen) {
  dtr_train_config_default(c);
  snprintf(c->source, sizeof c->source, "%s", path);
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  if (!root) {
    FILE *f = fopen(path, "rb");
    if (!f)
      return dtr_errf(err, errlen, DTR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(f);
    return dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s:%d: not valid JSON: %s", path, je.line,
                je.text);
  }
  const cfg_field model[] = {
      {"hidden", 'u', &c->hidden},         {"layers", 'u', &c->layers},
      {"heads", 'u', &c->heads},           {"kv_heads", 'u', &c->kv_heads},
      {"intermediate", 'u', &c->intermediate}, {"max_seq_len", 'u', &c->max_seq_len},
      {"rope_theta", 'd', &c->rope_theta}, {"norm_eps", 'd', &c->norm_eps},
      {"init_std", 'd', &c->init_std}};
  const cfg_field data[] = {{"tokenizer", 's', c->tokenizer},
                            {"train", 's', c->train},
                            {"valid", 's', c->valid},
                            {"recall", 's', c->recall},
                            {"recall_fraction", 'd', &c->recall_fraction},
                            {"recall_loss", 's', c->recall_loss},
                            {"recall_curriculum", 'u', &c->recall_curriculum},
                            {"recall_only_steps", 'u', &c->recall_only_steps},
                            {"recall_windows", 's', c->recall_windows}};
  const cfg_field optim[] = {
      {"lr", 'd', &c->lr},       {"min_lr_fraction", 'd', &c->min_lr_fraction},
      {"warmup", 'u', &c->warmup}, {"steps", 'u', &c->steps},
      {"batch", 'u', &c->batch}, {"seq_len", 'u', &c->seq_len},
      {"weight_decay", 'd', &c->weight_decay}, {"clip", 'd', &c->clip},
      {"beta1", 'd', &c->beta1}, {"beta2", 'd', &c->beta2},
      {"eps", 'd', &c->eps}};
  const cfg_field top[] = {{"eval_interval", 'u', &c->eval_interval},
                           {"eval_batches", 'u', &c->eval_batches},
                           {"checkpoint_interval", 'u', &c->checkpoint_interval},
                           {"log_interval", 'u', &c->log_interval},
                           {"seed", 'q', &c->seed}};
  dtr_status st = DTR_OK;
  if (!json_is_object(root)) {
    st = dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: the top level must be an object", path);
    goto done;
  }
  static const char *sections[] = {"model", "data", "optim"};
  for (int s = 0; s < 3; s++)
    if (!json_object_get(root, sections[s])) {
      st = dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: missing section \"%s\"", path, sections[s]);
      goto done;
    }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (key[0] == '_') continue;
    if (!strcmp(key, "model"))
      st = read_fields(v, "model", model, sizeof model / sizeof *model, path, err, errlen);
    else if (!strcmp(key, "data"))
      st = read_fields(v, "data", data, sizeof data / sizeof *data, path, err, errlen);
    else if (!strcmp(key, "optim"))
      st = read_fields(v, "optim", optim, sizeof optim / sizeof *optim, path, err, errlen);
    else {
      json_t *one = json_object();
      json_object_set(one, key, v);
      st = read_fields(one, "", top, sizeof top / sizeof *top, path, err, errlen);
      json_decref(one);
    }
    if (st) goto done;
  }
  if (!c->tokenizer[0] || !c->train[0]) {
    st = dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: data.tokenizer and data.train are required",
              path);
    goto done;
  }
  if ((c->recall_fraction > 0 || c->recall_only_steps) && !c->recall[0]) {
    st = dtr_errf(err, errlen, DTR_ERR_FORMAT,
              "%s: data.recall_fraction > 0 or recall_only_steps needs data.recall", path);
    goto done;
  }
  st = dtr_train_config_validate(c, err, errlen);
done:
  json_decref(root);
  return st;
}

dtr_status dtr_train_config_check_files(const dtr_train_config *c, char *err, size_t errlen) {
  const char *files[4] = {c->tokenizer, c->train, c->valid, c->recall};
  static const char *what[4] = {"data.tokenizer", "data.train", "data.valid", "data.recall"};
  for (int k = 0; k < 4; k++) {
    if (!files[k][0]) continue;
    FILE *f = fopen(files[k], "rb");
    if (!f)
      return dtr_errf(err, errlen, DTR_ERR_IO, "%s: %s file %s cannot be read: %s", cfg_name(c),
                  what[k], files[k], strerror(errno));
    fclose(f);
  }
  return DTR_OK;
}

double dtr_cosine_lr(double lr, double min_lr_fraction, uint32_t warmup, uint32_t steps,
                     uint32_t s) {
  if (warmup && s <= warmup) return lr * s / warmup;
  double min_lr = lr * min_lr_fraction;
  if (steps <= warmup) return lr;
  double p = (double)(s - warmup) / (double)(steps - warmup);
  if (p > 1) p = 1;
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(TR_PI * p));
}

double dtr_train_lr(const dtr_train_config *c, uint32_t s) {
  return dtr_cosine_lr(c->lr, c->min_lr_fraction, c->warmup, c->steps, s);
}

/* ---- the trainer --------------------------------------------------------------- */

/* Per layer tensor indices in the table (after the embedding). */
enum { P_LN1, P_Q, P_K, P_V, P_O, P_LN2, P_GATE, P_UP, P_DOWN, P_PER_LAYER };

/* Activations one layer keeps for its backward. */
typedef struct {
  dtr_view res;  /* (N, C) the layer's input residual */
  dtr_view ln1, rstd1;       /* (N, C), (N) */
  dtr_view q, k, v;          /* (N, Hq D), (N, Hkv D) x2; q and k after RoPE */
  dtr_view att, lse;         /* (N, Hq D), (B, Hq, T) */
  dtr_view mid;              /* (N, C) residual after attention */
  dtr_view ln2, rstd2;       /* (N, C), (N) */
  dtr_view gate, up, h;      /* (N, F) */
} layer_act;

struct dtr_trainer {
  dtr_ctx *ctx;
  dtr_train_config c;
  uint32_t B, T, N, C, Hq, Hkv, D, F, V, L;
  dtr_train_tensor *tens;
  size_t ntens, nparams, nfloats;
  dtr_buf *params, *grads, *m, *v;
  dtr_buf *acts; /* every activation, carved */
  layer_act *la;
  dtr_view res_out, lnf, rstdf, logits, dlogits, losses, ce_lse;
  dtr_view d_res, d_mid, d_tmp, d_ln, d_ln2, d_att, d_q, d_k, d_v, d_h, d_gate, d_up;
  dtr_buf *ids, *targets, *pos, *inv_freq, *scalars; /* scalars: loss, gnorm2 */
  int32_t *h_in, *h_tg;
  const int32_t *train, *recall, *valid;
  const uint8_t *recall_mask; /* NULL: every recall token is a target */
  const size_t *recall_starts; /* NULL: windows start anywhere */
  size_t nstarts;
  size_t ntrain, nrecall, nvalid;
  uint32_t step;
  uint64_t rng;
  float *host; /* nfloats of staging for checkpoints */
  size_t salign; /* byte offset of gnorm2 in scalars (the storage alignment) */
};

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static double rng_unif(uint64_t *s) { return (splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }
static double rng_normal(uint64_t *s) {
  double u1 = rng_unif(s), u2 = rng_unif(s);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * TR_PI * u2);
}

static dtr_view P(const dtr_trainer *t, dtr_buf *b, size_t i) {
  return (dtr_view){b, t->tens[i].offset * 4, t->tens[i].numel * 4};
}
static size_t lidx(uint32_t l, int k) { return 1 + (size_t)l * P_PER_LAYER + (size_t)k; }

size_t dtr_trainer_ntensors(const dtr_trainer *t) { return t->ntens; }
const dtr_train_tensor *dtr_trainer_tensor(const dtr_trainer *t, size_t i) {
  return i < t->ntens ? &t->tens[i] : NULL;
}
size_t dtr_trainer_nparams(const dtr_trainer *t) { return t->nparams; }
size_t dtr_trainer_buf_floats(const dtr_trainer *t) { return t->nfloats; }
uint32_t dtr_trainer_steps_done(const dtr_trainer *t) { return t->step; }

void dtr_trainer_destroy(dtr_trainer *t) {
  if (!t) return;
  dtr_buf *bufs[] = {t->params, t->grads, t->m,   t->v,        t->acts,
                     t->ids,    t->targets, t->pos, t->inv_freq, t->scalars};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) dtr_buf_destroy(t->ctx, bufs[i]);
  free(t->tens);
  free(t->la);
  free(t->h_in);
  free(t->h_tg);
  free(t->host);
  free(t);
}

/* Carves every activation view out of t->acts (NULL on the sizing pass);
 * returns the floats needed. */
static size_t carve_acts(dtr_trainer *t, size_t afl) {
  size_t aoff = 0;
  uint32_t N = t->N, C = t->C, QD = t->Hq * t->D, KD = t->Hkv * t->D, F = t->F;
#define CARVE(view, n)                                                         \
  do {                                                                         \
    (view) = (dtr_view){t->acts, aoff * 4, (size_t)(n) * 4};                   \
    aoff += align_up((size_t)(n), afl);                                        \
  } while (0)
  for (uint32_t l = 0; l < t->L; l++) {
    layer_act *a = &t->la[l];
    CARVE(a->res, (size_t)N * C);
    CARVE(a->ln1, (size_t)N * C);
    CARVE(a->rstd1, N);
    CARVE(a->q, (size_t)N * QD);
    CARVE(a->k, (size_t)N * KD);
    CARVE(a->v, (size_t)N * KD);
    CARVE(a->att, (size_t)N * QD);
    CARVE(a->lse, (size_t)t->B * t->Hq * t->T);
    CARVE(a->mid, (size_t)N * C);
    CARVE(a->ln2, (size_t)N * C);
    CARVE(a->rstd2, N);
    CARVE(a->gate, (size_t)N * F);
    CARVE(a->up, (size_t)N * F);
    CARVE(a->h, (size_t)N * F);
  }
  CARVE(t->res_out, (size_t)N * C);
  CARVE(t->lnf, (size_t)N * C);
  CARVE(t->rstdf, N);
  CARVE(t->logits, (size_t)N * t->V);
  CARVE(t->dlogits, (size_t)N * t->V);
  CARVE(t->losses, N);
  CARVE(t->ce_lse, N);
  CARVE(t->d_res, (size_t)N * C);
  CARVE(t->d_mid, (size_t)N * C);
  CARVE(t->d_tmp, (size_t)N * C);
  CARVE(t->d_ln, (size_t)N * C);
  CARVE(t->d_ln2, (size_t)N * C);
  CARVE(t->d_att, (size_t)N * QD);
  CARVE(t->d_q, (size_t)N * QD);
  CARVE(t->d_k, (size_t)N * KD);
  CARVE(t->d_v, (size_t)N * KD);
  CARVE(t->d_h, (size_t)N * F);
  CARVE(t->d_gate, (size_t)N * F);
  CARVE(t->d_up, (size_t)N * F);
#undef CARVE
  return aoff;
}

dtr_trainer *dtr_trainer_create(dtr_ctx *ctx, const dtr_train_config *c, char *err,
                                size_t errlen) {
  if (dtr_train_config_validate(c, err, errlen)) return NULL;
  if (c->vocab < 2) {
    dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: vocabulary size %u (from the tokenizer) too small",
         cfg_name(c), c->vocab);
    return NULL;
  }
  dtr_trainer *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->ctx = ctx;
  t->c = *c;
  t->B = c->batch;
  t->T = c->seq_len;
  t->N = t->B * t->T;
  t->C = c->hidden;
  t->Hq = c->heads;
  t->Hkv = c->kv_heads;
  t->D = c->hidden / c->heads;
  t->F = c->intermediate;
  t->V = c->vocab;
  t->L = c->layers;
  t->rng = c->seed ^ 0x5851f42d4c957f2dull;
  size_t align = dtr_ctx_device(ctx)->min_storage_offset_align;
  if (align < 16) align = 16;
  size_t afl = align / 4; /* alignment in floats */

  /* The size table. */
  t->ntens = 2 + (size_t)t->L * P_PER_LAYER;
  t->tens = calloc(t->ntens, sizeof *t->tens);
  t->la = calloc(t->L, sizeof *t->la);
  if (!t->tens || !t->la) goto oom;
  size_t off = 0;
  uint32_t C = t->C, QD = t->Hq * t->D, KD = t->Hkv * t->D, F = t->F;
#define ADD(i, nm, r, cl, dec)                                                 \
  do {                                                                         \
    dtr_train_tensor *e = &t->tens[i];                                         \
    snprintf(e->name, sizeof e->name, "%s", nm);                               \
    e->shape[0] = (r);                                                         \
    e->shape[1] = (cl);                                                        \
    e->numel = (size_t)(r) * ((cl) ? (cl) : 1);                                \
    e->offset = off;                                                           \
    e->decay = dec;                                                            \
    off = align_up(off + e->numel, afl);                                       \
    t->nparams += e->numel;                                                    \
  } while (0)
  ADD(0, "model.embed_tokens.weight", t->V, C, 1);
  for (uint32_t l = 0; l < t->L; l++) {
    char nm[96];
    static const char *names[P_PER_LAYER] = {
        "input_layernorm",   "self_attn.q_proj", "self_attn.k_proj",
        "self_attn.v_proj",  "self_attn.o_proj", "post_attention_layernorm",
        "mlp.gate_proj",     "mlp.up_proj",      "mlp.down_proj"};
    const uint64_t shp[P_PER_LAYER][2] = {{C, 0}, {QD, C}, {KD, C}, {KD, C}, {C, QD},
                                          {C, 0}, {F, C},  {F, C},  {C, F}};
    for (int k = 0; k < P_PER_LAYER; k++) {
      snprintf(nm, sizeof nm, "model.layers.%u.%s.weight", l, names[k]);
      ADD(lidx(l, k), nm, shp[k][0], shp[k][1], shp[k][1] != 0);
    }
  }
  ADD(t->ntens - 1, "model.norm.weight", C, 0, 0);
#undef ADD
  t->nfloats = off;
  if (t->nfloats >= (1ull << 32)) {
    dtr_errf(err, errlen, DTR_ERR_UNSUPPORTED, "%s: model too large (%zu parameters)",
         cfg_name(c), t->nfloats);
    goto fail_out;
  }
  size_t pb = t->nfloats * 4;
  t->params = dtr_buf_create(ctx, pb);
  t->grads = dtr_buf_create(ctx, pb);
  t->m = dtr_buf_create(ctx, pb);
  t->v = dtr_buf_create(ctx, pb);
  if (!t->params || !t->grads || !t->m || !t->v) goto dev_err;

  /* Activations: one buffer carved like the parameters; sized by a dry run. */
  uint32_t N = t->N, T = t->T;
  size_t total = carve_acts(t, afl);
  t->acts = dtr_buf_create(ctx, total * 4);
  if (!t->acts) goto dev_err;
  carve_acts(t, afl);

  t->ids = dtr_buf_create(ctx, (size_t)N * 4);
  t->targets = dtr_buf_create(ctx, (size_t)N * 4);
  t->pos = dtr_buf_create(ctx, (size_t)N * 4);
  t->inv_freq = dtr_buf_create(ctx, (size_t)t->D / 2 * 4);
  t->salign = align;
  t->scalars = dtr_buf_create(ctx, 2 * align);
  t->h_in = malloc((size_t)N * 4);
  t->h_tg = malloc((size_t)N * 4);
  t->host = malloc(pb);
  if (!t->h_in || !t->h_tg || !t->host) goto oom;
  if (!t->ids || !t->targets || !t->pos || !t->inv_freq || !t->scalars) goto dev_err;
  for (uint32_t n = 0; n < N; n++) t->h_in[n] = (int32_t)(n % T);
  float *inv = malloc((size_t)t->D / 2 * 4);
  if (!inv) goto oom;
  dtr_rope_inv_freq(inv, t->D, c->rope_theta, NULL);
  if (dtr_buf_upload(ctx, t->pos, 0, t->h_in, (size_t)N * 4) ||
      dtr_buf_upload(ctx, t->inv_freq, 0, inv, (size_t)t->D / 2 * 4)) {
    free(inv);
    goto dev_err;
  }
  free(inv);

  /* Initialization: every value from the seed, padding zero. */
  memset(t->host, 0, pb);
  uint64_t irng = c->seed * 0x2545f4914f6cdd1dull + 1;
  double proj_scale = 1.0 / sqrt(2.0 * t->L);
  for (size_t i = 0; i < t->ntens; i++) {
    dtr_train_tensor *e = &t->tens[i];
    float *p = t->host + e->offset;
    if (!e->shape[1]) {
      for (size_t j = 0; j < e->numel; j++) p[j] = 1.0f;
      continue;
    }
    double sd = c->init_std;
    if (strstr(e->name, "o_proj") || strstr(e->name, "down_proj")) sd *= proj_scale;
    for (size_t j = 0; j < e->numel; j++) p[j] = (float)(sd * rng_normal(&irng));
  }
  if (dtr_buf_upload(ctx, t->params, 0, t->host, pb)) goto dev_err;
  if (dtr_buf_fill(ctx, t->m, 0, pb, 0) || dtr_buf_fill(ctx, t->v, 0, pb, 0) ||
      dtr_buf_fill(ctx, t->grads, 0, pb, 0) || dtr_ctx_submit(ctx))
    goto dev_err;
  return t;
oom:
  dtr_errf(err, errlen, DTR_ERR_OOM, "train: out of host memory");
  goto fail_out;
dev_err:
  dtr_errf(err, errlen, DTR_ERR_OOM, "train: cannot allocate device memory (%s)",
       dtr_ctx_error(ctx));
fail_out:
  dtr_trainer_destroy(t);
  return NULL;
}

dtr_status dtr_trainer_set_data(dtr_trainer *t, const int32_t *train, size_t ntrain,
                                const int32_t *recall, size_t nrecall, const int32_t *valid,
                                size_t nvalid, char *err, size_t errlen) {
  const int32_t *s[3] = {train, recall, valid};
  size_t n[3] = {ntrain, nrecall, nvalid};
  static const char *nm[3] = {"train", "recall", "valid"};
  for (int k = 0; k < 3; k++) {
    if (n[k] && n[k] <= t->T)
      return dtr_errf(err, errlen, DTR_ERR_INVALID,
                  "train: the %s stream has %zu tokens, fewer than seq_len+1 = %u", nm[k],
                  n[k], t->T + 1);
    for (size_t i = 0; i < n[k]; i++)
      if (s[k][i] < 0 || (uint32_t)s[k][i] >= t->V)
        return dtr_errf(err, errlen, DTR_ERR_INVALID,
                    "train: %s token %zu has id %d outside the vocabulary of %u", nm[k], i,
                    s[k][i], t->V);
  }
  if (!ntrain) return dtr_errf(err, errlen, DTR_ERR_INVALID, "train: the train stream is empty");
  t->train = train;
  t->ntrain = ntrain;
  t->recall = nrecall ? recall : NULL;
  t->nrecall = nrecall;
  t->recall_mask = NULL;
  t->recall_starts = NULL;
  t->nstarts = 0;
  t->valid = nvalid ? valid : NULL;
  t->nvalid = nvalid;
  return DTR_OK;
}

void dtr_trainer_set_recall_mask(dtr_trainer *t, const uint8_t *mask) { t->recall_mask = mask; }
void dtr_trainer_set_recall_starts(dtr_trainer *t, const size_t *starts, size_t n) {
  t->recall_starts = n ? starts : NULL;
  t->nstarts = n;
}

/* ---- forward / backward ----------------------------------------------------------- */

#define CK(x)                                                                  \
  do {                                                                         \
    dtr_status s_ = (x);                                                       \
    if (s_) return s_;                                                         \
  } while (0)

/* y (M, out) = x (M, in) W^T with W (out, in). */
static dtr_matmul_desc lin(uint32_t M, uint32_t out, uint32_t in) {
  dtr_matmul_desc d = {M, out, in, 1, 0, 1, 0, 0, 0, 1.0f, 0.0f, 0};
  return d;
}

static dtr_status forward(dtr_trainer *t) {
  dtr_ctx *ctx = t->ctx;
  uint32_t N = t->N, C = t->C, QD = t->Hq * t->D, KD = t->Hkv * t->D, F = t->F;
  float eps = (float)t->c.norm_eps;
  dtr_buf *W = t->params;
  dtr_attn_desc ad = {t->B, t->T, t->T, t->T, t->Hq, t->Hkv, t->D, 1.0f / sqrtf((float)t->D)};
  dtr_view posv = dtr_whole(t->pos), invf = dtr_whole(t->inv_freq);
  CK(dtr_op_embedding_fwd(ctx, t->la[0].res, dtr_whole(t->ids), P(t, W, 0), N, C, t->V));
  for (uint32_t l = 0; l < t->L; l++) {
    layer_act *a = &t->la[l];
    dtr_view next = l + 1 < t->L ? t->la[l + 1].res : t->res_out;
    dtr_matmul_desc dq = lin(N, QD, C), dk = lin(N, KD, C), dout = lin(N, C, QD);
    dtr_matmul_desc dup = lin(N, F, C), ddown = lin(N, C, F);
    CK(dtr_op_rmsnorm_fwd(ctx, a->ln1, a->rstd1, a->res, P(t, W, lidx(l, P_LN1)), N, C, eps));
    CK(dtr_op_matmul(ctx, a->q, a->ln1, P(t, W, lidx(l, P_Q)), DTR_NONE, &dq));
    CK(dtr_op_matmul(ctx, a->k, a->ln1, P(t, W, lidx(l, P_K)), DTR_NONE, &dk));
    CK(dtr_op_matmul(ctx, a->v, a->ln1, P(t, W, lidx(l, P_V)), DTR_NONE, &dk));
    CK(dtr_op_rope_fwd(ctx, a->q, a->q, posv, invf, N, t->Hq, t->D, DTR_ROPE_NEOX));
    CK(dtr_op_rope_fwd(ctx, a->k, a->k, posv, invf, N, t->Hkv, t->D, DTR_ROPE_NEOX));
    CK(dtr_op_attention_fwd(ctx, a->att, a->lse, a->q, a->k, a->v, &ad));
    CK(dtr_op_matmul(ctx, t->d_tmp, a->att, P(t, W, lidx(l, P_O)), DTR_NONE, &dout));
    CK(dtr_op_add(ctx, a->mid, a->res, t->d_tmp, N * C));
    CK(dtr_op_rmsnorm_fwd(ctx, a->ln2, a->rstd2, a->mid, P(t, W, lidx(l, P_LN2)), N, C, eps));
    CK(dtr_op_matmul(ctx, a->gate, a->ln2, P(t, W, lidx(l, P_GATE)), DTR_NONE, &dup));
    CK(dtr_op_matmul(ctx, a->up, a->ln2, P(t, W, lidx(l, P_UP)), DTR_NONE, &dup));
    CK(dtr_op_swiglu_fwd(ctx, a->h, a->gate, a->up, N * F));
    CK(dtr_op_matmul(ctx, t->d_tmp, a->h, P(t, W, lidx(l, P_DOWN)), DTR_NONE, &ddown));
    CK(dtr_op_add(ctx, next, a->mid, t->d_tmp, N * C));
  }
  CK(dtr_op_rmsnorm_fwd(ctx, t->lnf, t->rstdf, t->res_out, P(t, W, t->ntens - 1), N, C, eps));
  dtr_matmul_desc dh = lin(N, t->V, C);
  CK(dtr_op_matmul(ctx, t->logits, t->lnf, P(t, W, 0), DTR_NONE, &dh));
  CK(dtr_op_crossentropy_fwd(ctx, t->losses, t->ce_lse, t->logits, dtr_whole(t->targets), N,
                             t->V));
  dtr_view loss = {t->scalars, 0, 4};
  CK(dtr_op_sum(ctx, loss, t->losses, N, 0, 0));
  return DTR_OK;
}

/* The backward of forward(): every parameter gradient accumulates into grads. */
static dtr_status backward(dtr_trainer *t) {
  dtr_ctx *ctx = t->ctx;
  uint32_t N = t->N, C = t->C, QD = t->Hq * t->D, KD = t->Hkv * t->D, F = t->F;
  dtr_buf *W = t->params, *G = t->grads;
  dtr_attn_desc ad = {t->B, t->T, t->T, t->T, t->Hq, t->Hkv, t->D, 1.0f / sqrtf((float)t->D)};
  dtr_view posv = dtr_whole(t->pos), invf = dtr_whole(t->inv_freq);
  /* loss = mean over N rows: dlogits = (softmax - onehot) / N. */
  CK(dtr_op_crossentropy_bwd(ctx, t->dlogits, t->logits, dtr_whole(t->targets), t->ce_lse, N,
                             t->V, 1.0f / (float)N));
  dtr_matmul_desc dh = lin(N, t->V, C);
  /* logits = lnf E^T: dlnf = dlogits E, dE += dlogits^T lnf (tied head). */
  CK(dtr_op_matmul_bwd(ctx, t->d_ln, P(t, G, 0), DTR_NONE, t->dlogits, t->lnf, P(t, W, 0), &dh));
  CK(dtr_op_rmsnorm_bwd(ctx, t->d_res, P(t, G, t->ntens - 1), t->d_ln, t->res_out,
                        P(t, W, t->ntens - 1), t->rstdf, N, C));
  for (uint32_t l = t->L; l-- > 0;) {
    layer_act *a = &t->la[l];
    dtr_matmul_desc dq = lin(N, QD, C), dk = lin(N, KD, C), dout = lin(N, C, QD);
    dtr_matmul_desc dup = lin(N, F, C), ddown = lin(N, C, F);
    /* next = mid + h Wd^T: d_res flows to mid unchanged and into the MLP. */
    CK(dtr_op_matmul_bwd(ctx, t->d_h, P(t, G, lidx(l, P_DOWN)), DTR_NONE, t->d_res, a->h,
                         P(t, W, lidx(l, P_DOWN)), &ddown));
    CK(dtr_op_swiglu_bwd(ctx, t->d_gate, t->d_up, t->d_h, a->gate, a->up, N * F));
    /* ln2 feeds gate and up: its gradient is the sum of both paths. */
    CK(dtr_op_matmul_bwd(ctx, t->d_ln, P(t, G, lidx(l, P_GATE)), DTR_NONE, t->d_gate, a->ln2,
                         P(t, W, lidx(l, P_GATE)), &dup));
    CK(dtr_op_matmul_bwd(ctx, t->d_ln2, P(t, G, lidx(l, P_UP)), DTR_NONE, t->d_up, a->ln2,
                         P(t, W, lidx(l, P_UP)), &dup));
    CK(dtr_op_add(ctx, t->d_ln, t->d_ln, t->d_ln2, N * C));
    CK(dtr_op_rmsnorm_bwd(ctx, t->d_tmp, P(t, G, lidx(l, P_LN2)), t->d_ln, a->mid,
                          P(t, W, lidx(l, P_LN2)), a->rstd2, N, C));
    CK(dtr_op_add(ctx, t->d_mid, t->d_res, t->d_tmp, N * C));
    /* mid = res + att Wo^T. */
    CK(dtr_op_matmul_bwd(ctx, t->d_att, P(t, G, lidx(l, P_O)), DTR_NONE, t->d_mid, a->att,
                         P(t, W, lidx(l, P_O)), &dout));
    CK(dtr_op_attention_bwd(ctx, t->d_q, t->d_k, t->d_v, t->d_att, a->q, a->k, a->v, a->att,
                            a->lse, &ad));
    /* RoPE is a rotation: its backward rotates the gradient back, in place. */
    CK(dtr_op_rope_bwd(ctx, t->d_q, t->d_q, posv, invf, N, t->Hq, t->D, DTR_ROPE_NEOX));
    CK(dtr_op_rope_bwd(ctx, t->d_k, t->d_k, posv, invf, N, t->Hkv, t->D, DTR_ROPE_NEOX));
    /* ln1 feeds q, k and v. */
    CK(dtr_op_matmul_bwd(ctx, t->d_ln, P(t, G, lidx(l, P_Q)), DTR_NONE, t->d_q, a->ln1,
                         P(t, W, lidx(l, P_Q)), &dq));
    CK(dtr_op_matmul_bwd(ctx, t->d_ln2, P(t, G, lidx(l, P_K)), DTR_NONE, t->d_k, a->ln1,
                         P(t, W, lidx(l, P_K)), &dk));
    CK(dtr_op_add(ctx, t->d_ln, t->d_ln, t->d_ln2, N * C));
    CK(dtr_op_matmul_bwd(ctx, t->d_ln2, P(t, G, lidx(l, P_V)), DTR_NONE, t->d_v, a->ln1,
                         P(t, W, lidx(l, P_V)), &dk));
    CK(dtr_op_add(ctx, t->d_ln, t->d_ln, t->d_ln2, N * C));
    CK(dtr_op_rmsnorm_bwd(ctx, t->d_tmp, P(t, G, lidx(l, P_LN1)), t->d_ln, a->res,
                          P(t, W, lidx(l, P_LN1)), a->rstd1, N, C));
    CK(dtr_op_add(ctx, t->d_res, t->d_mid, t->d_tmp, N * C));
  }
  CK(dtr_op_embedding_bwd(ctx, P(t, G, 0), t->d_res, dtr_whole(t->ids), N, C, t->V));
  /* Global gradient norm over the whole padded layout (padding stays zero). */
  dtr_view g2 = {t->scalars, t->salign, 4};
  CK(dtr_op_sum(ctx, g2, dtr_whole(G), (uint32_t)t->nfloats, 1, 0));
  return DTR_OK;
}

static dtr_status upload_batch(dtr_trainer *t, const int32_t *in, const int32_t *tg) {
  CK(dtr_buf_upload(t->ctx, t->ids, 0, in, (size_t)t->N * 4));
  CK(dtr_buf_upload(t->ctx, t->targets, 0, tg, (size_t)t->N * 4));
  return DTR_OK;
}

static dtr_status ctx_fail(dtr_trainer *t, char *err, size_t errlen, dtr_status st) {
  return dtr_errf(err, errlen, st, "train: %s", dtr_ctx_error(t->ctx));
}

static dtr_status fwd_bwd(dtr_trainer *t, double *loss, double *gnorm, char *err,
                          size_t errlen) {
  dtr_status st;
  if ((st = dtr_buf_fill(t->ctx, t->grads, 0, t->nfloats * 4, 0)) || (st = forward(t)) ||
      (st = backward(t)) || (st = dtr_ctx_submit(t->ctx)))
    return ctx_fail(t, err, errlen, st);
  float s[2];
  if ((st = dtr_buf_download(t->ctx, t->scalars, 0, &s[0], 4)) ||
      (st = dtr_buf_download(t->ctx, t->scalars, t->salign, &s[1], 4)))
    return ctx_fail(t, err, errlen, st);
  *loss = s[0] / t->N;
  *gnorm = sqrt((double)s[1]);
  return DTR_OK;
}

dtr_status dtr_trainer_forward_backward(dtr_trainer *t, const int32_t *inputs,
                                        const int32_t *targets, double *loss, double *gnorm,
                                        char *err, size_t errlen) {
  dtr_status st = upload_batch(t, inputs, targets);
  if (st) return ctx_fail(t, err, errlen, st);
  return fwd_bwd(t, loss, gnorm, err, errlen);
}

dtr_status dtr_trainer_loss(dtr_trainer *t, const int32_t *inputs, const int32_t *targets,
                            double *loss, char *err, size_t errlen) {
  dtr_status st;
  float s;
  if ((st = upload_batch(t, inputs, targets)) || (st = forward(t)) ||
      (st = dtr_ctx_submit(t->ctx)) ||
      (st = dtr_buf_download(t->ctx, t->scalars, 0, &s, sizeof s)))
    return ctx_fail(t, err, errlen, st);
  *loss = (double)s / t->N;
  return DTR_OK;
}

/* Samples the batch of the next step: each row is a random window of seq_len+1
 * tokens, from the recall stream with probability recall_fraction (its
 * unmasked targets set to -1, which the loss skips). */
static void sample_batch(dtr_trainer *t) {
  for (uint32_t b = 0; b < t->B; b++) {
    const int32_t *s = t->train;
    size_t n = t->ntrain;
    /* rng drawn first, so recall_only_steps leaves later draws unchanged */
    if (t->nrecall &&
        (rng_unif(&t->rng) < t->c.recall_fraction || t->step < t->c.recall_only_steps)) {
      s = t->recall;
      n = t->nrecall;
    }
    double f = 1.0; /* the curriculum's easy head: a share (s/N)^2 */
    if (s == t->recall && t->step < t->c.recall_curriculum)
      f = (double)t->step / t->c.recall_curriculum;
    size_t start;
    if (s == t->recall && t->recall_starts) {
      size_t ns = 1 + (size_t)((double)(t->nstarts - 1) * f * f);
      start = t->recall_starts[splitmix64(&t->rng) % (uint64_t)ns];
      if (start > n - t->T - 1) start = n - t->T - 1;
    } else {
      if (s == t->recall) n = t->T + 1 + (size_t)((double)(n - t->T - 1) * f * f);
      start = (size_t)(splitmix64(&t->rng) % (uint64_t)(n - t->T));
    }
    int32_t *tg = t->h_tg + (size_t)b * t->T;
    memcpy(t->h_in + (size_t)b * t->T, s + start, (size_t)t->T * 4);
    memcpy(tg, s + start + 1, (size_t)t->T * 4);
    if (s == t->recall && t->recall_mask) {
      const int32_t *in = t->h_in + (size_t)b * t->T;
      for (uint32_t j = 0; j < t->T; j++) {
        if (!t->recall_mask[start + 1 + j]) {
          tg[j] = -1; /* not scored */
          continue;
        }
        /* An answer whose key and value are not earlier in the window (the
         * window cut its pair off) cannot be recalled: not scored either. */
        uint32_t i = 0;
        while (i < j && !(in[i] == in[j] && in[i + 1] == tg[j])) i++;
        if (i == j) tg[j] = -1;
      }
    }
  }
}

dtr_status dtr_trainer_step(dtr_trainer *t, dtr_train_stats *out, char *err, size_t errlen) {
  if (!t->train) return dtr_errf(err, errlen, DTR_ERR_INVALID, "train: no data set");
  uint32_t s = t->step + 1;
  uint64_t rng_before = t->rng;
  sample_batch(t);
  double loss, gnorm;
  dtr_status st = dtr_trainer_forward_backward(t, t->h_in, t->h_tg, &loss, &gnorm, err, errlen);
  if (st) {
    t->rng = rng_before;
    return st;
  }
  if (!isfinite(loss) || !isfinite(gnorm)) {
    t->rng = rng_before;
    return dtr_errf(err, errlen, DTR_ERR_INVALID,
                "train: step %u: %s is %g (not finite); stopping without updating the "
                "weights",
                s, isfinite(loss) ? "gradient norm" : "loss", isfinite(loss) ? gnorm : loss);
  }
  double lr = dtr_train_lr(&t->c, s);
  dtr_view g2 = {t->scalars, t->salign, 4};
  for (size_t i = 0; i < t->ntens; i++) {
    dtr_adamw_desc ad = {(float)lr,
                         (float)t->c.beta1,
                         (float)t->c.beta2,
                         (float)t->c.eps,
                         t->tens[i].decay ? (float)t->c.weight_decay : 0.0f,
                         (float)t->c.clip,
                         s};
    dtr_view gn = t->c.clip > 0 ? g2 : DTR_NONE;
    st = dtr_op_adamw(t->ctx, P(t, t->params, i), P(t, t->grads, i), P(t, t->m, i),
                      P(t, t->v, i), gn, (uint32_t)t->tens[i].numel, &ad);
    if (st) return ctx_fail(t, err, errlen, st);
  }
  if ((st = dtr_ctx_submit(t->ctx))) return ctx_fail(t, err, errlen, st);
  t->step = s;
  if (out) {
    out->step = s;
    out->loss = loss;
    out->lr = lr;
    out->gnorm = gnorm;
  }
  return DTR_OK;
}

dtr_status dtr_trainer_eval(dtr_trainer *t, double *loss, char *err, size_t errlen) {
  if (!t->valid) return dtr_errf(err, errlen, DTR_ERR_INVALID, "train: no valid stream");
  /* Fixed windows: consecutive, non-overlapping, wrapping around the stream. */
  size_t pos = 0;
  double sum = 0;
  uint32_t nb = t->c.eval_batches ? t->c.eval_batches : 1;
  for (uint32_t k = 0; k < nb; k++) {
    for (uint32_t b = 0; b < t->B; b++) {
      if (pos + t->T + 1 > t->nvalid) pos = 0;
      memcpy(t->h_in + (size_t)b * t->T, t->valid + pos, (size_t)t->T * 4);
      memcpy(t->h_tg + (size_t)b * t->T, t->valid + pos + 1, (size_t)t->T * 4);
      pos += t->T;
    }
    double l;
    dtr_status st = dtr_trainer_loss(t, t->h_in, t->h_tg, &l, err, errlen);
    if (st) return st;
    sum += l;
  }
  *loss = sum / nb;
  return DTR_OK;
}

/* ---- host copies, checkpoints, export -------------------------------------------------- */

static dtr_status get_buf(dtr_trainer *t, dtr_buf *b, float *dst, char *err, size_t errlen) {
  dtr_status st = dtr_buf_download(t->ctx, b, 0, dst, t->nfloats * 4);
  return st ? ctx_fail(t, err, errlen, st) : DTR_OK;
}
dtr_status dtr_trainer_get_params(dtr_trainer *t, float *dst, char *err, size_t errlen) {
  return get_buf(t, t->params, dst, err, errlen);
}
dtr_status dtr_trainer_get_grads(dtr_trainer *t, float *dst, char *err, size_t errlen) {
  return get_buf(t, t->grads, dst, err, errlen);
}
dtr_status dtr_trainer_set_params(dtr_trainer *t, const float *src, char *err, size_t errlen) {
  dtr_status st = dtr_buf_upload(t->ctx, t->params, 0, src, t->nfloats * 4);
  return st ? ctx_fail(t, err, errlen, st) : DTR_OK;
}

/* The layout fingerprint stored with a checkpoint. */
static void layout_string(const dtr_trainer *t, char *s, size_t n) {
  snprintf(s, n, "L%u C%u Hq%u Hkv%u F%u V%u B%u T%u floats%zu", t->L, t->C, t->Hq, t->Hkv,
           t->F, t->V, t->B, t->T, t->nfloats);
}

dtr_status dtr_trainer_save_checkpoint(dtr_trainer *t, const char *path, char *err,
                                       size_t errlen) {
  size_t n = t->nfloats;
  float *buf = malloc(n * 4 * 3);
  dtr_st_writer *w = dtr_st_writer_create();
  dtr_status st = DTR_OK;
  if (!buf || !w) {
    st = dtr_errf(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
    goto done;
  }
  if ((st = get_buf(t, t->params, buf, err, errlen)) ||
      (st = get_buf(t, t->m, buf + n, err, errlen)) ||
      (st = get_buf(t, t->v, buf + 2 * n, err, errlen)))
    goto done;
  uint64_t shape[1] = {n};
  static const char *names[3] = {"params", "adam_m", "adam_v"};
  for (int k = 0; k < 3; k++)
    if ((st = dtr_st_writer_add(w, names[k], DTR_DTYPE_F32, 1, shape, buf + (size_t)k * n, err,
                                errlen)))
      goto done;
  char s[128];
  layout_string(t, s, sizeof s);
  dtr_st_writer_set_metadata(w, "dtr_layout", s);
  snprintf(s, sizeof s, "%u", t->step);
  dtr_st_writer_set_metadata(w, "dtr_step", s);
  snprintf(s, sizeof s, "%llu", (unsigned long long)t->rng);
  dtr_st_writer_set_metadata(w, "dtr_rng", s);
  st = dtr_st_writer_save(w, path, err, errlen);
done:
  dtr_st_writer_destroy(w);
  free(buf);
  return st;
}

dtr_status dtr_trainer_load_checkpoint(dtr_trainer *t, const char *path, char *err,
                                       size_t errlen) {
  dtr_safetensors *sf = NULL;
  dtr_status st = dtr_safetensors_open(path, &sf, err, errlen);
  if (st) return st;
  char want[128];
  layout_string(t, want, sizeof want);
  const char *lay = dtr_safetensors_metadata(sf, "dtr_layout");
  const char *stp = dtr_safetensors_metadata(sf, "dtr_step");
  const char *rng = dtr_safetensors_metadata(sf, "dtr_rng");
  if (!lay || !stp || !rng) {
    st = dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: not a dtr training checkpoint", path);
    goto done;
  }
  if (strcmp(lay, want)) {
    st = dtr_errf(err, errlen, DTR_ERR_FORMAT,
              "%s: checkpoint layout \"%s\" does not match the config's \"%s\"", path, lay,
              want);
    goto done;
  }
  static const char *names[3] = {"params", "adam_m", "adam_v"};
  dtr_buf *bufs[3] = {t->params, t->m, t->v};
  for (int k = 0; k < 3; k++) {
    if ((st = dtr_safetensors_read_f32(sf, names[k], t->host, t->nfloats, err, errlen)))
      goto done;
    if ((st = dtr_buf_upload(t->ctx, bufs[k], 0, t->host, t->nfloats * 4))) {
      st = ctx_fail(t, err, errlen, st);
      goto done;
    }
  }
  t->step = (uint32_t)strtoul(stp, NULL, 10);
  t->rng = strtoull(rng, NULL, 10);
done:
  dtr_safetensors_close(sf);
  return st;
}

static dtr_status copy_file(const char *src, const char *dst, char *err, size_t errlen) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", dst);
  FILE *in = fopen(src, "rb");
  if (!in) return dtr_errf(err, errlen, DTR_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
  FILE *out = fopen(tmp, "wb");
  if (!out) {
    fclose(in);
    return dtr_errf(err, errlen, DTR_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
  }
  char buf[65536];
  size_t n;
  int bad = 0;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) bad = 1;
  if (ferror(in)) bad = 1;
  fclose(in);
  if (fclose(out) || bad) {
    remove(tmp);
    return dtr_errf(err, errlen, DTR_ERR_IO, "%s: write failed", dst);
  }
  if (rename(tmp, dst))
    return dtr_errf(err, errlen, DTR_ERR_IO, "%s: cannot rename: %s", dst, strerror(errno));
  return DTR_OK;
}

dtr_status dtr_trainer_save_hf(dtr_trainer *t, const char *dir, const char *tokenizer_path,
                               int32_t eos_id, char *err, size_t errlen) {
  dtr_model_config mc;
  memset(&mc, 0, sizeof mc);
  mc.architecture = DTR_ARCH_LLAMA;
  mc.hidden_size = t->C;
  mc.intermediate_size = t->F;
  mc.num_hidden_layers = t->L;
  mc.num_attention_heads = t->Hq;
  mc.num_key_value_heads = t->Hkv;
  mc.head_dim = t->D;
  mc.vocab_size = t->V;
  mc.max_position_embeddings = t->c.max_seq_len;
  mc.rms_norm_eps = t->c.norm_eps;
  mc.rope_theta = t->c.rope_theta;
  mc.tie_word_embeddings = 1;
  mc.bos_token_id = -1;
  if (eos_id >= 0) {
    mc.eos_token_id[0] = eos_id;
    mc.n_eos = 1;
  }
  snprintf(mc.torch_dtype, sizeof mc.torch_dtype, "float32");
  dtr_status st = dtr_model_config_validate(&mc, err, errlen);
  if (st) return st;
  char path[1100];
  snprintf(path, sizeof path, "%s/config.json", dir);
  if ((st = dtr_model_config_save(&mc, path, err, errlen))) return st;
  if ((st = get_buf(t, t->params, t->host, err, errlen))) return st;
  dtr_st_writer *w = dtr_st_writer_create();
  if (!w) return dtr_errf(err, errlen, DTR_ERR_OOM, "%s: out of memory", dir);
  dtr_st_writer_set_metadata(w, "format", "pt");
  for (size_t i = 0; i < t->ntens && !st; i++) {
    const dtr_train_tensor *e = &t->tens[i];
    st = dtr_st_writer_add(w, e->name, DTR_DTYPE_F32, e->shape[1] ? 2 : 1, e->shape,
                           t->host + e->offset, err, errlen);
  }
  if (!st) st = dtr_st_writer_save_dir(w, dir, 0, err, errlen);
  dtr_st_writer_destroy(w);
  if (st) return st;
  if (tokenizer_path && tokenizer_path[0]) {
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    st = copy_file(tokenizer_path, path, err, errlen);
  }
  return st;
}
