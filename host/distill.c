/* distill.c — blockwise local distillation: one teacher forward per batch, each
 * selected layer's student stepped inside it through the layer hooks. The
 * contract is in distill.h. */
#define _POSIX_C_SOURCE 200809L
#include "distill.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtr_ops.h"
#include "safetensors.h"
#include "train.h"

typedef struct student {
  uint32_t layer;
  dtr_block *blk;
  dtr_buf *m, *v; /* AdamW moments, the parameter buffer's layout */
} student;

struct dtr_distiller {
  dtr_model *teacher;
  dtr_ctx *ctx;
  dtr_distill_opts o;
  uint32_t nl, nsel, top; /* teacher layers; selected; last selected + 1 */
  student *st;
  int *slot;              /* (nl) index into st, -1 if not selected */
  dtr_session *sess;
  dtr_buf *offs, *ys, *dys, *partial, *scal;
  size_t salign;          /* bytes between per-layer scalars */
  const int32_t *train, *valid;
  size_t ntrain, nvalid;
  uint64_t rng;
  uint32_t step;
  int mode;               /* 0: train step, 1: eval */
  json_t *curves;         /* {"train": [...], "valid": [...]} */
  int32_t *win;           /* (batch * seq_len) */
};

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void dtr_distill_opts_default(dtr_distill_opts *o) {
  memset(o, 0, sizeof *o);
  o->kind = DTR_BLOCK_GDN;
  o->seq_len = 512;
  o->batch = 8;
  o->steps = 100;
  o->lr = 1e-3;
  o->min_lr_fraction = 0.1;
  o->warmup = 5;
  o->weight_decay = 0.01;
  o->clip = 1.0;
  o->beta1 = 0.9;
  o->beta2 = 0.95;
  o->eps = 1e-8;
  o->eval_batches = 4;
  o->seed = 1234;
  memset(o->layer_on, 1, sizeof o->layer_on);
}

double dtr_distill_lr(const dtr_distill_opts *o, uint32_t s) {
  return dtr_cosine_lr(o->lr, o->min_lr_fraction, o->warmup, o->steps, s);
}

void dtr_distiller_destroy(dtr_distiller *d) {
  if (!d) return;
  for (uint32_t i = 0; d->st && i < d->nsel; i++) {
    dtr_block_destroy(d->st[i].blk);
    dtr_buf_destroy(d->ctx, d->st[i].m);
    dtr_buf_destroy(d->ctx, d->st[i].v);
  }
  dtr_session_destroy(d->sess);
  dtr_buf *b[] = {d->offs, d->ys, d->dys, d->partial, d->scal};
  for (size_t i = 0; i < sizeof b / sizeof *b; i++) dtr_buf_destroy(d->ctx, b[i]);
  json_decref(d->curves);
  free(d->st);
  free(d->slot);
  free(d->win);
  free(d);
}

dtr_distiller *dtr_distiller_create(dtr_model *teacher, const dtr_distill_opts *o, char *err,
                                    size_t errlen) {
  const dtr_model_config *c = dtr_model_cfg(teacher);
  dtr_ctx *ctx = dtr_model_ctx(teacher);
  if (!o->seq_len || !o->batch || !o->steps || !(o->lr > 0) || o->clip < 0 ||
      o->weight_decay < 0 || !(o->beta1 >= 0 && o->beta1 < 1) ||
      !(o->beta2 >= 0 && o->beta2 < 1) || !(o->min_lr_fraction >= 0)) {
    dtr_errf(err, errlen, DTR_ERR_INVALID,
         "need seq_len, batch, steps >= 1, lr > 0, clip and weight decay >= 0, "
         "betas in [0, 1)");
    return NULL;
  }
  uint64_t T = (uint64_t)o->batch * o->seq_len;
  if (T > dtr_model_max_tokens(teacher)) {
    dtr_errf(err, errlen, DTR_ERR_INVALID,
         "%u x %u tokens per batch; the teacher was loaded for %u", o->batch,
         o->seq_len, dtr_model_max_tokens(teacher));
    return NULL;
  }
  if (o->seq_len > c->max_position_embeddings) {
    dtr_errf(err, errlen, DTR_ERR_INVALID,
         "sequence length %u exceeds the teacher's max_position_embeddings %u (set --seq-len)",
         o->seq_len, c->max_position_embeddings);
    return NULL;
  }
  dtr_distiller *d = calloc(1, sizeof *d);
  if (!d) { dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); return NULL; }
  d->teacher = teacher;
  d->ctx = ctx;
  d->o = *o;
  d->nl = c->num_hidden_layers;
  d->rng = o->seed ^ 0xD157111ull;
  d->st = calloc(d->nl, sizeof *d->st);
  d->slot = malloc(d->nl * sizeof *d->slot);
  d->win = malloc(T * sizeof *d->win);
  d->curves = json_pack("{s:[],s:[]}", "train", "valid");
  if (!d->st || !d->slot || !d->win || !d->curves) {
    dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
    goto bad;
  }
  for (uint32_t L = 0; L < d->nl; L++) {
    d->slot[L] = -1;
    if (!o->layer_on[L]) continue;
    if (c->layer_types[L] != DTR_LAYER_FULL_ATTENTION) {
      dtr_errf(err, errlen, DTR_ERR_INVALID, "layer %u is not full attention", L);
      goto bad;
    }
    student *s = &d->st[d->nsel];
    s->layer = L;
    s->blk = dtr_model_new_student(teacher, L, o->kind, (uint32_t)T, o->batch,
                                   o->seed + 7919ull * (L + 1));
    if (!s->blk) {
      dtr_errf(err, errlen, DTR_ERR_INVALID, "layer %u: %s", L, dtr_ctx_error(ctx));
      goto bad;
    }
    d->slot[L] = (int)d->nsel++;
    size_t pb = dtr_block_param_bytes(s->blk);
    s->m = dtr_buf_create(ctx, pb);
    s->v = dtr_buf_create(ctx, pb);
    if (!s->m || !s->v || dtr_buf_fill(ctx, s->m, 0, pb, 0) || dtr_buf_fill(ctx, s->v, 0, pb, 0)) {
      dtr_errf(err, errlen, DTR_ERR_OOM, "optimizer state: %s", dtr_ctx_error(ctx));
      goto bad;
    }
    d->top = L + 1;
  }
  if (!d->nsel) {
    dtr_errf(err, errlen, DTR_ERR_INVALID, "no layer selected");
    goto bad;
  }
  size_t align = dtr_ctx_device(ctx)->min_storage_offset_align;
  d->salign = align > 16 ? align : 16;
  size_t n = (size_t)T * c->hidden_size;
  int32_t *offs = malloc((o->batch + 1) * sizeof *offs);
  if (!offs) { dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); goto bad; }
  for (uint32_t b = 0; b <= o->batch; b++) offs[b] = (int32_t)(b * o->seq_len);
  d->offs = dtr_buf_create(ctx, (o->batch + 1) * 4);
  d->ys = dtr_buf_create(ctx, n * 4);
  d->dys = dtr_buf_create(ctx, n * 4);
  d->partial = dtr_buf_create(ctx, (size_t)dtr_op_mse_partials((uint32_t)n) * 4);
  d->scal = dtr_buf_create(ctx, d->salign * 4 * d->nsel);
  d->sess = dtr_session_create(teacher, o->batch, o->seq_len);
  dtr_status st = (d->offs && d->ys && d->dys && d->partial && d->scal && d->sess)
                      ? dtr_buf_upload(ctx, d->offs, 0, offs, (o->batch + 1) * 4)
                      : DTR_ERR_OOM;
  free(offs);
  if (st) {
    dtr_errf(err, errlen, st, "buffers: %s", dtr_ctx_error(ctx));
    goto bad;
  }
  return d;
bad:
  dtr_distiller_destroy(d);
  return NULL;
}

uint32_t dtr_distiller_steps_done(const dtr_distiller *d) { return d->step; }
uint32_t dtr_distiller_nlayers(const dtr_distiller *d) { return d->nsel; }
uint32_t dtr_distiller_layer(const dtr_distiller *d, uint32_t i) {
  return i < d->nsel ? d->st[i].layer : 0;
}
dtr_block *dtr_distiller_student(dtr_distiller *d, uint32_t i) {
  return i < d->nsel ? d->st[i].blk : NULL;
}

dtr_status dtr_distiller_set_data(dtr_distiller *d, const int32_t *train, size_t ntrain,
                                  const int32_t *valid, size_t nvalid, char *err,
                                  size_t errlen) {
  uint32_t V = dtr_model_cfg(d->teacher)->vocab_size;
  const int32_t *s[2] = {train, valid};
  size_t n[2] = {ntrain, valid ? nvalid : 0};
  static const char *nm[2] = {"training", "held-out"};
  for (int k = 0; k < 2; k++) {
    if (k == 1 && !n[k]) continue;
    if (n[k] <= d->o.seq_len)
      return dtr_errf(err, errlen, DTR_ERR_INVALID,
                  "the %s stream has %zu tokens; a window needs %u", nm[k], n[k],
                  d->o.seq_len + 1);
    for (size_t i = 0; i < n[k]; i++)
      if (s[k][i] < 0 || (uint32_t)s[k][i] >= V)
        return dtr_errf(err, errlen, DTR_ERR_INVALID,
                    "%s token %zu is %d, outside the vocabulary (%u)", nm[k], i,
                    s[k][i], V);
  }
  d->train = train;
  d->ntrain = ntrain;
  d->valid = n[1] ? valid : NULL;
  d->nvalid = n[1];
  return DTR_OK;
}

static dtr_view scal(const dtr_distiller *d, uint32_t i, int k) {
  return (dtr_view){d->scal, (size_t)(4 * i + k) * d->salign, 4};
}

/* after_mixer hook: x is the layer's normed input, y the teacher's output. In
 * training: the student's forward, MSE (slot 0), dy, backward (gradients), and
 * the squared gradient norm (slot 1). In eval: forward, MSE (slot 0) and
 * sum y^2 (slot 2). */
static dtr_status on_mixer(void *ud, uint32_t L, dtr_view x, dtr_view y, uint32_t Ttot) {
  dtr_distiller *d = ud;
  if (L >= d->nl || d->slot[L] < 0) return DTR_OK;
  uint32_t i = (uint32_t)d->slot[L];
  student *s = &d->st[i];
  dtr_ctx *ctx = d->ctx;
  uint32_t n = Ttot * dtr_model_cfg(d->teacher)->hidden_size;
  dtr_view ys = {d->ys, 0, (size_t)n * 4}, dys = {d->dys, 0, (size_t)n * 4};
  dtr_view part = dtr_whole(d->partial);
  dtr_status st = dtr_block_forward(s->blk, ys, x, dtr_whole(d->offs), d->o.batch, Ttot);
  if (!st) st = dtr_op_mse_fwd(ctx, scal(d, i, 0), part, ys, y, n);
  if (d->mode == 1) {
    if (!st) st = dtr_op_sum(ctx, scal(d, i, 2), y, n, 1, 0);
    return st;
  }
  if (!st) st = dtr_op_mse_bwd(ctx, dys, ys, y, n, 1.0f);
  if (!st) st = dtr_block_zero_grad(s->blk);
  if (!st) st = dtr_block_backward(s->blk, DTR_NONE, dys);
  if (!st)
    st = dtr_op_sum(ctx, scal(d, i, 1), dtr_whole(dtr_block_grad_buf(s->blk)),
                    (uint32_t)(dtr_block_param_bytes(s->blk) / 4), 1, 0);
  return st;
}

/* The teacher forward over the windows in d->win with the hooks. */
static dtr_status run_teacher(dtr_distiller *d) {
  const int32_t *ptr[4096];
  uint32_t lens[4096];
  for (uint32_t b = 0; b < d->o.batch; b++) {
    ptr[b] = d->win + (size_t)b * d->o.seq_len;
    lens[b] = d->o.seq_len;
  }
  dtr_layer_hooks hk;
  memset(&hk, 0, sizeof hk);
  hk.stop_layer = d->top;
  hk.after_mixer = on_mixer;
  hk.ud = d;
  dtr_status st = dtr_session_reset(d->sess);
  if (!st) st = dtr_session_prefill_hooked(d->sess, ptr, lens, NULL, 0, &hk);
  if (!st) st = dtr_ctx_submit(d->ctx);
  return st;
}

static dtr_status read_scalars(dtr_distiller *d, float *h) {
  float *raw = malloc(d->salign * 4 * d->nsel);
  if (!raw) return dtr_ctx_set_error(d->ctx, DTR_ERR_OOM, "out of host memory");
  dtr_status st = dtr_buf_download(d->ctx, d->scal, 0, raw, d->salign * 4 * d->nsel);
  for (uint32_t i = 0; !st && i < d->nsel; i++)
    for (int k = 0; k < 4; k++) h[4 * i + k] = raw[(4 * i + k) * d->salign / 4];
  free(raw);
  return st;
}

dtr_status dtr_distiller_step(dtr_distiller *d, double *losses, char *err, size_t errlen) {
  if (!d->train) return dtr_errf(err, errlen, DTR_ERR_INVALID, "no training data set");
  if (d->step >= d->o.steps)
    return dtr_errf(err, errlen, DTR_ERR_INVALID, "all %u steps are done", d->o.steps);
  if (d->o.batch > 4096) return dtr_errf(err, errlen, DTR_ERR_INVALID, "batch > 4096");
  uint32_t s = d->step + 1;
  uint64_t rng_before = d->rng;
  for (uint32_t b = 0; b < d->o.batch; b++) {
    size_t a = (size_t)(splitmix64(&d->rng) % (d->ntrain - d->o.seq_len));
    memcpy(d->win + (size_t)b * d->o.seq_len, d->train + a, d->o.seq_len * sizeof *d->win);
  }
  d->mode = 0;
  float *h = malloc(sizeof *h * 4 * d->nsel);
  if (!h) return dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
  dtr_status st = run_teacher(d);
  if (!st) st = read_scalars(d, h);
  if (st) {
    d->rng = rng_before;
    free(h);
    return dtr_errf(err, errlen, st, "step %u: %s", s, dtr_ctx_error(d->ctx));
  }
  for (uint32_t i = 0; i < d->nsel; i++) {
    if (!isfinite(h[4 * i]) || !isfinite(h[4 * i + 1])) {
      d->rng = rng_before;
      double bad = isfinite(h[4 * i]) ? h[4 * i + 1] : h[4 * i];
      free(h);
      return dtr_errf(err, errlen, DTR_ERR_INVALID,
                  "step %u: layer %u: %s is %g (not finite); stopping without "
                  "updating the students",
                  s, d->st[i].layer, isfinite(bad) ? "loss" : "gradient norm", bad);
    }
    if (losses) losses[i] = h[4 * i];
  }
  free(h);
  double lr = dtr_distill_lr(&d->o, s);
  for (uint32_t i = 0; i < d->nsel && !st; i++) {
    student *sd = &d->st[i];
    const dtr_param_info *pt;
    uint32_t np = dtr_block_params(sd->blk, &pt);
    for (uint32_t k = 0; k < np && !st; k++) {
      size_t nb = (size_t)pt[k].rows * pt[k].cols * 4;
      dtr_adamw_desc ad = {(float)lr,
                           (float)d->o.beta1,
                           (float)d->o.beta2,
                           (float)d->o.eps,
                           pt[k].cols > 1 && pt[k].rows > 1 ? (float)d->o.weight_decay : 0.0f,
                           (float)d->o.clip,
                           s};
      dtr_view p = {dtr_block_param_buf(sd->blk), pt[k].offset, nb};
      dtr_view g = {dtr_block_grad_buf(sd->blk), pt[k].offset, nb};
      dtr_view m = {sd->m, pt[k].offset, nb}, v = {sd->v, pt[k].offset, nb};
      st = dtr_op_adamw(d->ctx, p, g, m, v, d->o.clip > 0 ? scal(d, i, 1) : DTR_NONE,
                        (uint32_t)(nb / 4), &ad);
    }
  }
  if (!st) st = dtr_ctx_submit(d->ctx);
  if (st) return dtr_errf(err, errlen, st, "step %u: %s", s, dtr_ctx_error(d->ctx));
  d->step = s;
  if (losses) {
    json_t *row = json_pack("{s:i,s:[]}", "step", (json_int_t)s, "loss");
    for (uint32_t i = 0; row && i < d->nsel; i++)
      json_array_append_new(json_object_get(row, "loss"), json_real(losses[i]));
    if (row) json_array_append_new(json_object_get(d->curves, "train"), row);
  }
  return DTR_OK;
}

dtr_status dtr_distiller_eval(dtr_distiller *d, double *loss, double *rel_err, char *err,
                              size_t errlen) {
  if (!d->valid) return dtr_errf(err, errlen, DTR_ERR_INVALID, "no held-out data set");
  uint32_t nb = d->o.eval_batches ? d->o.eval_batches : 1;
  double *se = calloc(d->nsel * 2, sizeof *se);
  float *h = malloc(sizeof *h * 4 * d->nsel);
  if (!se || !h) {
    free(se);
    free(h);
    return dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
  }
  size_t per = (size_t)d->o.batch * d->o.seq_len, span = d->nvalid - d->o.seq_len;
  dtr_status st = DTR_OK;
  d->mode = 1;
  for (uint32_t e = 0; e < nb && !st; e++) {
    /* fixed windows spread over the stream */
    for (uint32_t b = 0; b < d->o.batch; b++) {
      size_t k = (size_t)e * d->o.batch + b, a = (size_t)((double)k / (nb * d->o.batch) * span);
      memcpy(d->win + (size_t)b * d->o.seq_len, d->valid + a, d->o.seq_len * sizeof *d->win);
    }
    st = run_teacher(d);
    if (!st) st = read_scalars(d, h);
    for (uint32_t i = 0; !st && i < d->nsel; i++) {
      se[2 * i] += (double)h[4 * i] * per; /* MSE is a mean over per * hidden */
      se[2 * i + 1] += (double)h[4 * i + 2] / dtr_model_cfg(d->teacher)->hidden_size;
    }
  }
  d->mode = 0;
  free(h);
  if (st) {
    free(se);
    return dtr_errf(err, errlen, st, "held-out: %s", dtr_ctx_error(d->ctx));
  }
  json_t *row = json_pack("{s:i,s:[],s:[]}", "step", (json_int_t)d->step, "loss", "rel_err");
  for (uint32_t i = 0; i < d->nsel; i++) {
    double l = se[2 * i] / ((double)per * nb);
    double r = se[2 * i + 1] > 0 ? sqrt(se[2 * i] / se[2 * i + 1]) : NAN;
    if (loss) loss[i] = l;
    if (rel_err) rel_err[i] = r;
    if (row) {
      json_array_append_new(json_object_get(row, "loss"), json_real(l));
      json_array_append_new(json_object_get(row, "rel_err"), json_real(r));
    }
  }
  if (row) json_array_append_new(json_object_get(d->curves, "valid"), row);
  free(se);
  return DTR_OK;
}

/* ---- checkpoints and output ------------------------------------------------------ */

/* The options a resumed run must share, as a canonical JSON string. */
static char *identity(const dtr_distiller *d) {
  json_t *ly = json_array();
  for (uint32_t i = 0; i < d->nsel; i++) json_array_append_new(ly, json_integer(d->st[i].layer));
  json_t *j = json_pack("{s:s,s:o,s:i,s:i,s:i,s:f,s:f,s:i,s:f,s:f,s:f,s:f,s:f,s:i}", "block",
                        dtr_block_kind_name(d->o.kind), "layers", ly, "seq_len",
                        (json_int_t)d->o.seq_len, "batch", (json_int_t)d->o.batch, "steps",
                        (json_int_t)d->o.steps, "lr", d->o.lr, "min_lr_fraction",
                        d->o.min_lr_fraction, "warmup", (json_int_t)d->o.warmup,
                        "weight_decay", d->o.weight_decay, "clip", d->o.clip, "beta1",
                        d->o.beta1, "beta2", d->o.beta2, "eps", d->o.eps, "seed",
                        (json_int_t)d->o.seed);
  char *s = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
  json_decref(j);
  return s;
}

dtr_status dtr_distiller_save_checkpoint(dtr_distiller *d, const char *path, char *err,
                                         size_t errlen) {
  dtr_st_writer *w = dtr_st_writer_create();
  char *id = identity(d), *cv = json_dumps(d->curves, JSON_COMPACT), num[64];
  float **host = calloc(3 * d->nsel, sizeof *host);
  dtr_status st = w && id && cv && host ? DTR_OK : DTR_ERR_OOM;
  if (st) dtr_errf(err, errlen, st, "out of host memory");
  for (uint32_t i = 0; i < d->nsel && !st; i++) {
    student *s = &d->st[i];
    size_t pb = dtr_block_param_bytes(s->blk);
    dtr_buf *src[3] = {dtr_block_param_buf(s->blk), s->m, s->v};
    static const char *what[3] = {"params", "exp_avg", "exp_avg_sq"};
    for (int k = 0; k < 3 && !st; k++) {
      float *hb = host[3 * i + k] = malloc(pb);
      if (!hb) { st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); break; }
      if ((st = dtr_buf_download(d->ctx, src[k], 0, hb, pb))) {
        dtr_errf(err, errlen, st, "checkpoint: %s", dtr_ctx_error(d->ctx));
        break;
      }
      char name[96];
      snprintf(name, sizeof name, "layers.%u.%s", s->layer, what[k]);
      uint64_t shape[1] = {pb / 4};
      st = dtr_st_writer_add(w, name, DTR_DTYPE_F32, 1, shape, hb, err, errlen);
    }
  }
  if (!st) {
    snprintf(num, sizeof num, "%u", d->step);
    dtr_st_writer_set_metadata(w, "step", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)d->rng);
    dtr_st_writer_set_metadata(w, "rng", num);
    dtr_st_writer_set_metadata(w, "options", id);
    dtr_st_writer_set_metadata(w, "curves", cv);
    dtr_st_writer_set_metadata(w, "format", "dtr-distill-checkpoint");
    st = dtr_st_writer_save(w, path, err, errlen);
  }
  for (uint32_t i = 0; host && i < 3 * d->nsel; i++) free(host[i]);
  free(host);
  free(id);
  free(cv);
  dtr_st_writer_destroy(w);
  return st;
}

dtr_status dtr_distiller_load_checkpoint(dtr_distiller *d, const char *path, char *err,
                                         size_t errlen) {
  dtr_safetensors *f = NULL;
  dtr_status st = dtr_safetensors_open(path, &f, err, errlen);
  if (st) return st;
  char *id = identity(d);
  const char *fid = dtr_safetensors_metadata(f, "options"),
             *fs = dtr_safetensors_metadata(f, "step"), *fr = dtr_safetensors_metadata(f, "rng"),
             *fc = dtr_safetensors_metadata(f, "curves");
  float *hb = NULL;
  if (!id) { st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); goto done; }
  if (!fid || !fs || !fr || !fc) {
    st = dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: not a dtr distill checkpoint", path);
    goto done;
  }
  if (strcmp(fid, id)) {
    st = dtr_errf(err, errlen, DTR_ERR_INVALID,
              "%s: made with other options; it has %s, this run %s", path, fid, id);
    goto done;
  }
  for (uint32_t i = 0; i < d->nsel && !st; i++) {
    student *s = &d->st[i];
    size_t pb = dtr_block_param_bytes(s->blk);
    dtr_buf *dst[3] = {dtr_block_param_buf(s->blk), s->m, s->v};
    static const char *what[3] = {"params", "exp_avg", "exp_avg_sq"};
    free(hb);
    if (!(hb = malloc(pb))) { st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); break; }
    for (int k = 0; k < 3 && !st; k++) {
      char name[96];
      snprintf(name, sizeof name, "layers.%u.%s", s->layer, what[k]);
      st = dtr_safetensors_read_f32(f, name, hb, pb / 4, err, errlen);
      if (!st && (st = dtr_buf_upload(d->ctx, dst[k], 0, hb, pb)))
        dtr_errf(err, errlen, st, "%s: %s", path, dtr_ctx_error(d->ctx));
    }
  }
  if (!st) {
    json_error_t je;
    json_t *cv = json_loads(fc, 0, &je);
    if (!cv) {
      st = dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: curves: %s", path, je.text);
      goto done;
    }
    json_decref(d->curves);
    d->curves = cv;
    d->step = (uint32_t)strtoul(fs, NULL, 10);
    d->rng = strtoull(fr, NULL, 10);
  }
done:
  free(hb);
  free(id);
  dtr_safetensors_close(f);
  return st;
}

static dtr_status write_json(json_t *j, const char *path, char *err, size_t errlen) {
  char tmp[4400];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (json_dump_file(j, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(8)) != 0 || rename(tmp, path)) {
    remove(tmp);
    return dtr_errf(err, errlen, DTR_ERR_IO, "%s: cannot write", path);
  }
  return DTR_OK;
}

dtr_status dtr_distiller_save(dtr_distiller *d, const char *dir, char *err, size_t errlen) {
  const dtr_model_config *c = dtr_model_cfg(d->teacher);
  char path[4200];
  dtr_st_writer *w = dtr_st_writer_create();
  if (!w) return dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
  dtr_status st = DTR_OK;
  float **host = calloc(d->nsel, sizeof *host);
  if (!host) st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
  for (uint32_t i = 0; i < d->nsel && !st; i++) {
    student *s = &d->st[i];
    if (!(host[i] = malloc(dtr_block_param_bytes(s->blk)))) {
      st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
      break;
    }
    if ((st = dtr_block_get_params(s->blk, host[i]))) {
      dtr_errf(err, errlen, st, "%s", dtr_ctx_error(d->ctx));
      break;
    }
    const dtr_param_info *pt;
    uint32_t np = dtr_block_params(s->blk, &pt);
    for (uint32_t k = 0; k < np && !st; k++) {
      char name[160];
      snprintf(name, sizeof name, "model.layers.%u.linear_attn.%s", s->layer, pt[k].name);
      uint64_t shape[2] = {pt[k].rows, pt[k].cols};
      st = dtr_st_writer_add(w, name, DTR_DTYPE_F32, pt[k].cols > 1 ? 2 : 1, shape,
                             host[i] + pt[k].offset / 4, err, errlen);
    }
  }
  dtr_block_config bc = dtr_model_block_config(d->teacher, d->o.kind);
  if (!st) {
    dtr_st_writer_set_metadata(w, "format", "pt");
    dtr_st_writer_set_metadata(w, "dtr_block", dtr_block_kind_name(d->o.kind));
    snprintf(path, sizeof path, "%s/students.safetensors", dir);
    st = dtr_st_writer_save(w, path, err, errlen);
  }
  for (uint32_t i = 0; host && i < d->nsel; i++) free(host[i]);
  free(host);
  dtr_st_writer_destroy(w);
  if (st) return st;

  json_t *ly = json_array(), *fin = json_object();
  json_t *last = json_array_get(json_object_get(d->curves, "valid"),
                                json_array_size(json_object_get(d->curves, "valid")) - 1);
  for (uint32_t i = 0; i < d->nsel; i++) {
    json_array_append_new(ly, json_integer(d->st[i].layer));
    if (last) {
      char k[16];
      snprintf(k, sizeof k, "%u", d->st[i].layer);
      json_object_set_new(fin, k,
                          json_pack("{s:O,s:O}", "valid_loss",
                                    json_array_get(json_object_get(last, "loss"), i), "rel_err",
                                    json_array_get(json_object_get(last, "rel_err"), i)));
    }
  }
  json_t *j = json_pack(
      "{s:s,s:O,s:{s:i,s:i,s:i,s:i,s:i,s:i},s:{s:i,s:i,s:f,s:i,s:i,s:f},s:I,s:i,s:i,s:i,s:o}",
      "block", dtr_block_kind_name(d->o.kind), "layers", ly, "teacher", "layers",
      (json_int_t)c->num_hidden_layers, "hidden", (json_int_t)c->hidden_size, "heads",
      (json_int_t)c->num_attention_heads, "kv_heads", (json_int_t)c->num_key_value_heads,
      "head_dim", (json_int_t)c->head_dim, "vocab", (json_int_t)c->vocab_size, "block_config",
      "heads", (json_int_t)bc.heads, "head_dim", (json_int_t)bc.head_dim, "norm_eps",
      (double)bc.norm_eps, "chunk", (json_int_t)bc.chunk, "gla_gate_rank",
      (json_int_t)bc.gla_gate_rank, "gla_normalizer", (double)bc.gla_normalizer, "tokens",
      (json_int_t)((uint64_t)d->step * d->o.batch * d->o.seq_len), "steps",
      (json_int_t)d->step, "seq_len", (json_int_t)d->o.seq_len, "batch",
      (json_int_t)d->o.batch, "final", fin);
  snprintf(path, sizeof path, "%s/students.json", dir);
  st = j ? write_json(j, path, err, errlen) : dtr_errf(err, errlen, DTR_ERR_OOM, "out of memory");
  json_decref(j);
  json_decref(ly);
  if (st) return st;
  json_t *cv = json_deep_copy(d->curves);
  json_t *ly2 = json_array();
  for (uint32_t i = 0; i < d->nsel; i++) json_array_append_new(ly2, json_integer(d->st[i].layer));
  json_object_set_new(cv, "layers", ly2);
  snprintf(path, sizeof path, "%s/losses.json", dir);
  st = write_json(cv, path, err, errlen);
  json_decref(cv);
  return st;
}

/* ---- loading students -------------------------------------------------------------- */

dtr_status dtr_students_load(dtr_model *m, const char *dir, dtr_block **blocks,
                             dtr_block_kind *kind, char *err, size_t errlen) {
  const dtr_model_config *c = dtr_model_cfg(m);
  char path[4200];
  for (uint32_t L = 0; L < c->num_hidden_layers; L++) blocks[L] = NULL;
  snprintf(path, sizeof path, "%s/students.json", dir);
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  if (!j)
    return dtr_errf(err, errlen, DTR_ERR_IO, "%s: %s (is %s a `dtr distill` output?)", path,
                je.text, dir);
  dtr_status st = DTR_OK;
  dtr_safetensors *f = NULL;
  float *hb = NULL;
  const char *bk = json_string_value(json_object_get(j, "block"));
  json_t *t = json_object_get(j, "teacher"), *ly = json_object_get(j, "layers");
  int k = bk ? dtr_block_kind_parse(bk) : -1;
  if (k < 0 || !json_is_object(t) || !json_is_array(ly)) {
    st = dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: needs \"block\" (gla|gdn|jet), \"teacher\" and "
                                           "\"layers\"", path);
    goto done;
  }
  *kind = (dtr_block_kind)k;
  struct {
    const char *key;
    uint32_t have;
  } chk[] = {{"layers", c->num_hidden_layers}, {"hidden", c->hidden_size},
             {"heads", c->num_attention_heads}, {"kv_heads", c->num_key_value_heads},
             {"head_dim", c->head_dim}};
  for (size_t i = 0; i < sizeof chk / sizeof *chk; i++) {
    json_int_t v = json_integer_value(json_object_get(t, chk[i].key));
    if (v != (json_int_t)chk[i].have) {
      st = dtr_errf(err, errlen, DTR_ERR_INVALID,
                "%s: the students were distilled from a model with %s %lld; this model has %u",
                path, chk[i].key, (long long)v, chk[i].have);
      goto done;
    }
  }
  snprintf(path, sizeof path, "%s/students.safetensors", dir);
  if ((st = dtr_safetensors_open(path, &f, err, errlen))) goto done;
  size_t i;
  json_t *v;
  json_array_foreach(ly, i, v) {
    json_int_t L = json_integer_value(v);
    if (!json_is_integer(v) || L < 0 || L >= (json_int_t)c->num_hidden_layers) {
      st = dtr_errf(err, errlen, DTR_ERR_INVALID, "%s/students.json: layer %lld is not in this "
                "%u-layer model", dir, (long long)L, c->num_hidden_layers);
      goto done;
    }
    if (blocks[L]) continue;
    blocks[L] = dtr_model_new_student(m, (uint32_t)L, *kind, 0, 0, 1);
    if (!blocks[L]) {
      st = dtr_errf(err, errlen, DTR_ERR_INVALID, "%s: layer %lld: %s", dir, (long long)L,
                dtr_ctx_error(dtr_model_ctx(m)));
      goto done;
    }
    const dtr_param_info *pt;
    uint32_t np = dtr_block_params(blocks[L], &pt);
    for (uint32_t p = 0; p < np && !st; p++) {
      char name[160];
      size_t n = (size_t)pt[p].rows * pt[p].cols;
      snprintf(name, sizeof name, "model.layers.%lld.linear_attn.%s", (long long)L, pt[p].name);
      float *nb = realloc(hb, n * 4);
      if (!nb) { st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); break; }
      hb = nb;
      st = dtr_safetensors_read_f32(f, name, hb, n, err, errlen);
      if (!st && (st = dtr_block_set_param(blocks[L], pt[p].name, hb)))
        dtr_errf(err, errlen, st, "%s: %s: %s", path, name, dtr_ctx_error(dtr_model_ctx(m)));
    }
    if (st) goto done;
  }
done:
  if (st)
    for (uint32_t L = 0; L < c->num_hidden_layers; L++) {
      dtr_block_destroy(blocks[L]);
      blocks[L] = NULL;
    }
  free(hb);
  dtr_safetensors_close(f);
  json_decref(j);
  return st;
}
