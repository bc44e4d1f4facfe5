/* model.c — the decoder-only transformer of model.h: the weight table (one
 * device buffer per checkpoint tensor), load / create / save, layer replacement
 * by student blocks, and the inference session (packed prefill, decode steps).
 *
 * One forward over Ttot packed tokens of B sequences (sequence b has n_b new
 * tokens at positions len_b .. len_b + n_b - 1) per layer:
 *   h = rmsnorm(x);  full attention: q,k,v = h W^T (+b) [Qwen3: per-head norm],
 *   RoPE at the positions, k/v copied into the cache, attention run per sequence
 *   (lengths differ, so each has its own Tk), o = att Wo^T (+bo);  student:
 *   o = block(h) (prefill over the packed offsets, or one decode step);
 *   x += o;  h = rmsnorm(x);  x += down(silu(gate h) * up h).
 * Prefill and decode are the same code: decode is n_b = 1 for every b. */
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dtr_ops.h"
#include "safetensors.h"

#define MAX_NAME 160

typedef struct layer {
  dtr_buf *ln1, *ln2;
  dtr_buf *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *qn, *kn; /* full attention */
  dtr_buf *wg, *wu, *wd;
  dtr_block *blk; /* student, or NULL */
} layer;

/* A (V, hidden) table bigger than one storage binding is kept as row chunks of
 * at most MAX_CHUNKS buffers. */
#define MAX_CHUNKS 64
typedef struct chunked {
  dtr_buf *b[MAX_CHUNKS];
  uint32_t n, rows; /* buffers; rows per buffer (the last may hold fewer) */
} chunked;

struct dtr_model {
  dtr_ctx *ctx;
  dtr_model_config cfg;
  uint32_t max_tokens;
  chunked embed, lm_head; /* lm_head.n == 0 when tied */
  dtr_buf *norm;
  layer *layers;
  dtr_buf *inv_freq; /* (D/2) */
};

/* One dense tensor of the checkpoint: name, shape (cols 0: a vector of rows),
 * and where its buffer lives. */
typedef struct tinfo {
  char name[MAX_NAME];
  uint32_t rows, cols;
  dtr_buf **slot;
  chunked *ch; /* instead of slot: a table that may be split by rows */
} tinfo;

static size_t tnumel(const tinfo *t) { return (size_t)t->rows * (t->cols ? t->cols : 1); }

/* The dense tensors cfg implies, in checkpoint order; returns the count (fills
 * at most max; pass NULL to count). */
static uint32_t tensors(dtr_model *m, tinfo *out, uint32_t max) {
  const dtr_model_config *c = &m->cfg;
  uint32_t n = 0, Hd = c->hidden_size, D = c->head_dim;
  uint32_t QD = c->num_attention_heads * D, KD = c->num_key_value_heads * D;
#define ADD(nm, r, cl, sl)                                                                   \
  do {                                                                                       \
    if (out && n < max) {                                                                    \
      out[n].rows = (r);                                                                     \
      out[n].cols = (cl);                                                                    \
      out[n].slot = (sl);                                                                    \
      out[n].ch = NULL;                                                                      \
      snprintf(out[n].name, MAX_NAME, "%s", nm);                                             \
    }                                                                                        \
    n++;                                                                                     \
  } while (0)
  char nm[MAX_NAME];
  ADD("model.embed_tokens.weight", c->vocab_size, Hd, NULL);
  if (out && n <= max) out[n - 1].ch = &m->embed;
  for (uint32_t L = 0; L < c->num_hidden_layers; L++) {
    layer *ly = &m->layers[L];
    int full = c->layer_types[L] == DTR_LAYER_FULL_ATTENTION;
#define LT(suffix, r, cl, sl)                                                                \
  do {                                                                                       \
    snprintf(nm, sizeof nm, "model.layers.%u.%s", L, suffix);                                \
    ADD(nm, r, cl, sl);                                                                      \
  } while (0)
    LT("input_layernorm.weight", Hd, 0, &ly->ln1);
    if (full) {
      LT("self_attn.q_proj.weight", QD, Hd, &ly->wq);
      if (c->attention_bias) LT("self_attn.q_proj.bias", QD, 0, &ly->bq);
      LT("self_attn.k_proj.weight", KD, Hd, &ly->wk);
      if (c->attention_bias) LT("self_attn.k_proj.bias", KD, 0, &ly->bk);
      LT("self_attn.v_proj.weight", KD, Hd, &ly->wv);
      if (c->attention_bias) LT("self_attn.v_proj.bias", KD, 0, &ly->bv);
      LT("self_attn.o_proj.weight", Hd, QD, &ly->wo);
      if (c->o_proj_bias) LT("self_attn.o_proj.bias", Hd, 0, &ly->bo);
      if (c->qk_norm) {
        LT("self_attn.q_norm.weight", D, 0, &ly->qn);
        LT("self_attn.k_norm.weight", D, 0, &ly->kn);
      }
    }
    LT("post_attention_layernorm.weight", Hd, 0, &ly->ln2);
    LT("mlp.gate_proj.weight", c->intermediate_size, Hd, &ly->wg);
    LT("mlp.up_proj.weight", c->intermediate_size, Hd, &ly->wu);
    LT("mlp.down_proj.weight", Hd, c->intermediate_size, &ly->wd);
#undef LT
  }
  ADD("model.norm.weight", Hd, 0, &m->norm);
  if (!c->tie_word_embeddings) {
    ADD("lm_head.weight", c->vocab_size, Hd, NULL);
    if (out && n <= max) out[n - 1].ch = &m->lm_head;
  }
#undef ADD
  return n;
}

static tinfo *tensor_list(dtr_model *m, uint32_t *n) {
  *n = tensors(m, NULL, 0);
  tinfo *t = calloc(*n ? *n : 1, sizeof *t);
  if (t) tensors(m, t, *n);
  return t;
}

static int is_norm(const char *name) { return strstr(name, "norm.weight") != NULL; }

static dtr_block_config block_cfg(const dtr_model_config *c, dtr_block_kind k) {
  const dtr_linear_config *lc = &c->linear[k];
  dtr_block_config b = dtr_block_config_default(k, c->hidden_size, lc->num_heads);
  b.head_dim = lc->head_dim;
  b.norm_eps = (float)lc->norm_eps;
  b.chunk = lc->chunk;
  b.gla_gate_rank = lc->gla_gate_rank;
  b.gla_normalizer = (float)lc->gla_normalizer;
  return b;
}

static uint32_t block_seqs(const dtr_model *m) { return m->max_tokens < 64 ? m->max_tokens : 64; }

/* The model shell: config copied, layers allocated, inv_freq uploaded. */
static dtr_model *shell(dtr_ctx *ctx, const dtr_model_config *cfg, uint32_t max_tokens,
                        dtr_status *st, char *err, size_t errlen) {
  dtr_model *m = calloc(1, sizeof *m);
  if (!m) { *st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); return NULL; }
  m->ctx = ctx;
  m->cfg = *cfg;
  m->max_tokens = max_tokens ? max_tokens : 512;
  m->layers = calloc(cfg->num_hidden_layers, sizeof *m->layers);
  uint32_t D = cfg->head_dim;
  float *inv = calloc(D / 2 ? D / 2 : 1, sizeof *inv);
  if (!m->layers || !inv) {
    free(inv);
    dtr_model_destroy(m);
    *st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
    return NULL;
  }
  dtr_rope_scaling sc = {0};
  if (cfg->rope_scaling.type == DTR_ROPE_SCALING_LLAMA3) {
    sc.factor = (float)cfg->rope_scaling.factor;
    sc.low_freq_factor = (float)cfg->rope_scaling.low_freq_factor;
    sc.high_freq_factor = (float)cfg->rope_scaling.high_freq_factor;
    sc.original_max_position = cfg->rope_scaling.original_max_position_embeddings;
  }
  dtr_rope_inv_freq(inv, D, cfg->rope_theta, &sc);
  m->inv_freq = dtr_buf_create(ctx, (D / 2) * sizeof(float));
  *st = m->inv_freq ? dtr_buf_upload(ctx, m->inv_freq, 0, inv, (D / 2) * sizeof(float))
                    : DTR_ERR_OOM;
  free(inv);
  if (*st) {
    dtr_errf(err, errlen, *st, "uploading RoPE frequencies: %s", dtr_ctx_error(ctx));
    dtr_model_destroy(m);
    return NULL;
  }
  return m;
}

/* Bytes one binding may see: the device's limit, or for the splittable tables
 * DTR_MODEL_MAX_BINDING when set and smaller (tests use it to exercise the split
 * on small models). */
static uint64_t binding_limit(const dtr_model *m, int table) {
  uint64_t r = dtr_ctx_device(m->ctx)->max_storage_buffer_range;
  const char *e = table ? getenv("DTR_MODEL_MAX_BINDING") : NULL;
  if (e && strtoull(e, NULL, 10) > 0 && strtoull(e, NULL, 10) < r) r = strtoull(e, NULL, 10);
  return r;
}

/* Host <-> device copy of a whole tensor (chunk by chunk for a split table). */
static dtr_status xfer(dtr_model *m, const tinfo *t, float *h, int up) {
  if (!t->ch)
    return up ? dtr_buf_upload(m->ctx, *t->slot, 0, h, tnumel(t) * 4)
              : dtr_buf_download(m->ctx, *t->slot, 0, h, tnumel(t) * 4);
  for (uint32_t i = 0; i < t->ch->n; i++) {
    size_t bytes = dtr_buf_size(t->ch->b[i]), off = (size_t)i * t->ch->rows * t->cols;
    dtr_status st = up ? dtr_buf_upload(m->ctx, t->ch->b[i], 0, h + off, bytes)
                       : dtr_buf_download(m->ctx, t->ch->b[i], 0, h + off, bytes);
    if (st) return st;
  }
  return DTR_OK;
}

/* Creates a tensor's buffer after checking it fits one storage binding. */
static dtr_status tensor_buf(dtr_model *m, const tinfo *t, const char *file, char *err,
                             size_t errlen) {
  size_t bytes = tnumel(t) * 4;
  uint64_t range = binding_limit(m, t->ch != NULL);
  if (t->ch) {
    /* rows per chunk: as many as fit, a multiple of align/4 so that a chunk's
     * logits start at an aligned offset for any row count */
    size_t align = dtr_ctx_device(m->ctx)->min_storage_offset_align, step = align > 4 ? align / 4 : 1;
    size_t rows = range / ((size_t)t->cols * 4) / step * step;
    if (rows >= t->rows) rows = t->rows;
    uint32_t n = rows ? (uint32_t)((t->rows + rows - 1) / rows) : 0;
    if (!rows || n > MAX_CHUNKS)
      return dtr_errf(err, errlen, DTR_ERR_UNSUPPORTED,
                   "%s: tensor '%s' (%.1f MiB as fp32) needs more than %d chunks of this device's "
                   "storage binding limit (%.1f MiB)",
                   file, t->name, bytes / 1048576.0, MAX_CHUNKS, range / 1048576.0);
    t->ch->rows = (uint32_t)rows;
    for (t->ch->n = 0; t->ch->n < n; t->ch->n++) {
      size_t r = t->rows - (size_t)t->ch->n * rows < rows ? t->rows - (size_t)t->ch->n * rows : rows;
      if (!(t->ch->b[t->ch->n] = dtr_buf_create(m->ctx, r * t->cols * 4)))
        return dtr_errf(err, errlen, DTR_ERR_OOM, "%s: no device memory for '%s': %s", file, t->name,
                     dtr_ctx_error(m->ctx));
    }
    return DTR_OK;
  }
  if (bytes > range)
    return dtr_errf(err, errlen, DTR_ERR_UNSUPPORTED,
                 "%s: tensor '%s' is %.1f MiB as fp32, more than this device's storage "
                 "binding limit (%.1f MiB); splitting it is not implemented",
                 file, t->name, bytes / 1048576.0, range / 1048576.0);
  *t->slot = dtr_buf_create(m->ctx, bytes);
  if (!*t->slot)
    return dtr_errf(err, errlen, DTR_ERR_OOM, "%s: no device memory for '%s' (%zu bytes): %s", file,
                 t->name, bytes, dtr_ctx_error(m->ctx));
  return DTR_OK;
}

static void gauss_fill(float *x, size_t n, float std, uint64_t *s) {
  for (size_t i = 0; i < n; i += 2) {
    /* splitmix64 -> two uniforms -> Box-Muller */
    uint64_t z[2];
    for (int j = 0; j < 2; j++) {
      uint64_t v = (*s += 0x9E3779B97F4A7C15ull);
      v = (v ^ (v >> 30)) * 0xBF58476D1CE4E5B9ull;
      v = (v ^ (v >> 27)) * 0x94D049BB133111EBull;
      z[j] = v ^ (v >> 31);
    }
    double u1 = ((z[0] >> 11) + 1.0) / 9007199254740993.0, u2 = (z[1] >> 11) / 9007199254740992.0;
    double r = sqrt(-2 * log(u1));
    x[i] = (float)(std * r * cos(6.283185307179586 * u2));
    if (i + 1 < n) x[i + 1] = (float)(std * r * sin(6.283185307179586 * u2));
  }
}

static dtr_status make_blocks(dtr_model *m, uint64_t seed, char *err, size_t errlen) {
  const dtr_model_config *c = &m->cfg;
  for (uint32_t L = 0; L < c->num_hidden_layers; L++) {
    if (c->layer_types[L] == DTR_LAYER_FULL_ATTENTION) continue;
    dtr_block_config bc = block_cfg(c, (dtr_block_kind)(c->layer_types[L] - 1));
    m->layers[L].blk = dtr_block_create(m->ctx, &bc, m->max_tokens, block_seqs(m), seed + L);
    if (!m->layers[L].blk)
      return dtr_errf(err, errlen, DTR_ERR_INVALID, "%s: layer %u (%s): %s",
                   c->source[0] ? c->source : "model", L,
                   dtr_layer_type_name((dtr_layer_type)c->layer_types[L]),
                   dtr_ctx_error(m->ctx));
  }
  return DTR_OK;
}

dtr_model *dtr_model_create(dtr_ctx *ctx, const dtr_model_config *cfg, uint32_t max_tokens,
                            uint64_t seed, dtr_status *st, char *err, size_t errlen) {
  dtr_status s0;
  if (!st) st = &s0;
  if ((*st = dtr_model_config_validate(cfg, err, errlen))) return NULL;
  dtr_model *m = shell(ctx, cfg, max_tokens, st, err, errlen);
  if (!m) return NULL;
  uint32_t n;
  tinfo *t = tensor_list(m, &n);
  uint64_t rng = seed * 0x2545F4914F6CDD1Dull + 1;
  *st = t ? DTR_OK : dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
  for (uint32_t i = 0; i < n && !*st; i++) {
    size_t k = tnumel(&t[i]);
    float *h = malloc(k * sizeof *h);
    if (!h) { *st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); break; }
    if (is_norm(t[i].name))
      for (size_t j = 0; j < k; j++) h[j] = 1.0f;
    else if (!t[i].cols)
      memset(h, 0, k * sizeof *h); /* biases */
    else
      gauss_fill(h, k, 0.02f, &rng);
    *st = tensor_buf(m, &t[i], "model", err, errlen);
    if (!*st && (*st = xfer(m, &t[i], h, 1)))
      dtr_errf(err, errlen, *st, "uploading '%s': %s", t[i].name, dtr_ctx_error(ctx));
    free(h);
  }
  free(t);
  if (!*st) *st = make_blocks(m, seed, err, errlen);
  if (*st) { dtr_model_destroy(m); return NULL; }
  return m;
}

dtr_model *dtr_model_load(dtr_ctx *ctx, const char *dir, uint32_t max_tokens, dtr_status *st,
                          char *err, size_t errlen) {
  dtr_status s0;
  if (!st) st = &s0;
  dtr_model_config cfg;
  if ((*st = dtr_model_config_load(dir, &cfg, err, errlen))) return NULL;
  dtr_safetensors *sf = NULL;
  if ((*st = dtr_safetensors_open(dir, &sf, err, errlen))) return NULL;
  if ((*st = dtr_model_config_check_tensors(&cfg, sf, 0, err, errlen))) {
    dtr_safetensors_close(sf);
    return NULL;
  }
  dtr_model *m = shell(ctx, &cfg, max_tokens, st, err, errlen);
  if (!m) { dtr_safetensors_close(sf); return NULL; }
  uint32_t n;
  tinfo *t = tensor_list(m, &n);
  float *h = NULL;
  size_t hcap = 0;
  *st = t ? DTR_OK : dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory");
  for (uint32_t i = 0; i < n && !*st; i++) {
    const dtr_st_tensor *tt;
    if ((*st = dtr_safetensors_get(sf, t[i].name, &tt, err, errlen))) break;
    size_t k = tnumel(&t[i]);
    if (tt->numel != k) {
      *st = dtr_errf(err, errlen, DTR_ERR_FORMAT, "%s: tensor '%s' has %llu elements, expected %zu",
                  tt->file, t[i].name, (unsigned long long)tt->numel, k);
      break;
    }
    if (k > hcap) {
      free(h);
      h = malloc(k * sizeof *h);
      hcap = h ? k : 0;
      if (!h) { *st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); break; }
    }
    if ((*st = dtr_st_tensor_to_f32(tt, h, k, err, errlen))) break;
    if ((*st = tensor_buf(m, &t[i], tt->file, err, errlen))) break;
    if ((*st = xfer(m, &t[i], h, 1)))
      dtr_errf(err, errlen, *st, "%s: uploading '%s': %s", tt->file, t[i].name, dtr_ctx_error(ctx));
  }
  free(t);
  if (!*st) *st = make_blocks(m, 0, err, errlen);
  for (uint32_t L = 0; L < cfg.num_hidden_layers && !*st; L++) {
    dtr_block *b = m->layers[L].blk;
    if (!b) continue;
    const dtr_param_info *pt;
    uint32_t np = dtr_block_params(b, &pt);
    for (uint32_t i = 0; i < np && !*st; i++) {
      char nm[MAX_NAME];
      snprintf(nm, sizeof nm, "model.layers.%u.linear_attn.%s", L, pt[i].name);
      const dtr_st_tensor *tt;
      if ((*st = dtr_safetensors_get(sf, nm, &tt, err, errlen))) break;
      size_t k = (size_t)pt[i].rows * pt[i].cols;
      if (tt->numel != k) {
        *st = dtr_errf(err, errlen, DTR_ERR_FORMAT,
                    "%s: tensor '%s' has %llu elements, the block expects %u x %u", tt->file, nm,
                    (unsigned long long)tt->numel, pt[i].rows, pt[i].cols);
        break;
      }
      if (k > hcap) {
        free(h);
        h = malloc(k * sizeof *h);
        hcap = h ? k : 0;
        if (!h) { *st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); break; }
      }
      if ((*st = dtr_st_tensor_to_f32(tt, h, k, err, errlen))) break;
      if ((*st = dtr_block_set_param(b, pt[i].name, h)))
        dtr_errf(err, errlen, *st, "%s: setting '%s': %s", tt->file, nm, dtr_ctx_error(ctx));
    }
  }
  free(h);
  dtr_safetensors_close(sf);
  if (*st) { dtr_model_destroy(m); return NULL; }
  return m;
}

void dtr_model_destroy(dtr_model *m) {
  if (!m) return;
  if (m->layers) {
    uint32_t n;
    tinfo *t = tensor_list(m, &n);
    for (uint32_t i = 0; t && i < n; i++)
      if (!t[i].ch) dtr_buf_destroy(m->ctx, *t[i].slot);
    for (uint32_t i = 0; i < m->embed.n; i++) dtr_buf_destroy(m->ctx, m->embed.b[i]);
    for (uint32_t i = 0; i < m->lm_head.n; i++) dtr_buf_destroy(m->ctx, m->lm_head.b[i]);
    free(t);
    for (uint32_t L = 0; L < m->cfg.num_hidden_layers; L++) dtr_block_destroy(m->layers[L].blk);
  }
  dtr_buf_destroy(m->ctx, m->inv_freq);
  free(m->layers);
  free(m);
}

const dtr_model_config *dtr_model_cfg(const dtr_model *m) { return &m->cfg; }
dtr_ctx *dtr_model_ctx(dtr_model *m) { return m->ctx; }
uint32_t dtr_model_max_tokens(const dtr_model *m) { return m->max_tokens; }
dtr_block *dtr_model_block(dtr_model *m, uint32_t L) {
  return L < m->cfg.num_hidden_layers ? m->layers[L].blk : NULL;
}

uint64_t dtr_model_param_count(const dtr_model *m) {
  uint32_t n;
  tinfo *t = tensor_list((dtr_model *)m, &n);
  uint64_t c = 0;
  for (uint32_t i = 0; t && i < n; i++) c += tnumel(&t[i]);
  free(t);
  for (uint32_t L = 0; L < m->cfg.num_hidden_layers; L++)
    if (m->layers[L].blk) c += dtr_block_param_count(m->layers[L].blk);
  return c;
}

/* Finds name: a dense tensor (*ti filled) or a student parameter (*blk, *pi). */
static dtr_status find_tensor(dtr_model *m, const char *name, tinfo *ti, dtr_block **blk,
                              const dtr_param_info **pi) {
  uint32_t n;
  tinfo *t = tensor_list(m, &n);
  if (!t) return dtr_ctx_set_error(m->ctx, DTR_ERR_OOM, "out of host memory");
  *blk = NULL;
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(t[i].name, name)) {
      *ti = t[i];
      free(t);
      return DTR_OK;
    }
  free(t);
  unsigned L;
  int off = 0;
  if (sscanf(name, "model.layers.%u.linear_attn.%n", &L, &off) == 1 && off > 0 &&
      L < m->cfg.num_hidden_layers && m->layers[L].blk) {
    const dtr_param_info *pt;
    uint32_t np = dtr_block_params(m->layers[L].blk, &pt);
    for (uint32_t i = 0; i < np; i++)
      if (!strcmp(pt[i].name, name + off)) {
        *blk = m->layers[L].blk;
        *pi = &pt[i];
        return DTR_OK;
      }
  }
  return dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID, "the model has no tensor '%s'", name);
}

static dtr_status tensor_io(dtr_model *m, const char *name, float *dst, const float *src,
                            size_t n) {
  tinfo ti = {0};
  dtr_block *b = NULL;
  const dtr_param_info *pi = NULL;
  dtr_status st = find_tensor(m, name, &ti, &b, &pi);
  if (st) return st;
  size_t k = b ? (size_t)pi->rows * pi->cols : tnumel(&ti);
  if (k != n)
    return dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID, "tensor '%s' has %zu elements, not %zu",
                             name, k, n);
  if (b) {
    if (src) return dtr_block_set_param(b, name + strlen(name) - strlen(pi->name), src);
    return dtr_buf_download(m->ctx, dtr_block_param_buf(b), pi->offset, dst, k * 4);
  }
  return src ? xfer(m, &ti, (float *)src, 1) : xfer(m, &ti, dst, 0);
}

dtr_status dtr_model_tensor_at(dtr_model *m, uint32_t i, char *name, size_t cap, size_t *numel) {
  uint32_t n;
  tinfo *t = tensor_list(m, &n);
  if (!t) return dtr_ctx_set_error(m->ctx, DTR_ERR_OOM, "out of host memory");
  if (i < n) {
    snprintf(name, cap, "%s", t[i].name);
    *numel = tnumel(&t[i]);
    free(t);
    return DTR_OK;
  }
  free(t);
  i -= n;
  for (uint32_t L = 0; L < m->cfg.num_hidden_layers; L++) {
    if (!m->layers[L].blk) continue;
    const dtr_param_info *pt;
    uint32_t np = dtr_block_params(m->layers[L].blk, &pt);
    if (i < np) {
      snprintf(name, cap, "model.layers.%u.linear_attn.%s", L, pt[i].name);
      *numel = (size_t)pt[i].rows * pt[i].cols;
      return DTR_OK;
    }
    i -= np;
  }
  return DTR_ERR_INVALID;
}

dtr_status dtr_model_get_tensor(dtr_model *m, const char *name, float *dst, size_t n) {
  return tensor_io(m, name, dst, NULL, n);
}
dtr_status dtr_model_set_tensor(dtr_model *m, const char *name, const float *src, size_t n) {
  return tensor_io(m, name, NULL, src, n);
}

dtr_status dtr_model_save(dtr_model *m, const char *dir, char *err, size_t errlen) {
  dtr_model_config c = m->cfg;
  snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  dtr_status st = dtr_model_config_save(&c, path, err, errlen);
  if (st) return st;
  dtr_st_writer *w = dtr_st_writer_create();
  uint32_t n;
  tinfo *t = tensor_list(m, &n);
  float *h = NULL;
  if (!w || !t) { st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); goto done; }
  dtr_st_writer_set_metadata(w, "format", "pt");
  for (uint32_t i = 0; i < n && !st; i++) {
    size_t k = tnumel(&t[i]);
    h = malloc(k * 4);
    if (!h) { st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); break; }
    if ((st = xfer(m, &t[i], h, 0))) {
      dtr_errf(err, errlen, st, "%s: downloading '%s': %s", dir, t[i].name, dtr_ctx_error(m->ctx));
      break;
    }
    uint64_t shape[2] = {t[i].rows, t[i].cols};
    st = dtr_st_writer_add_copy(w, t[i].name, DTR_DTYPE_F32, t[i].cols ? 2 : 1, shape, h, err,
                                errlen);
    free(h);
    h = NULL;
  }
  for (uint32_t L = 0; L < c.num_hidden_layers && !st; L++) {
    dtr_block *b = m->layers[L].blk;
    if (!b) continue;
    const dtr_param_info *pt;
    uint32_t np = dtr_block_params(b, &pt);
    h = malloc(dtr_block_param_bytes(b));
    if (!h) { st = dtr_errf(err, errlen, DTR_ERR_OOM, "out of host memory"); break; }
    if ((st = dtr_block_get_params(b, h))) {
      dtr_errf(err, errlen, st, "%s: layer %u: %s", dir, L, dtr_ctx_error(m->ctx));
      break;
    }
    /* the config module's shapes say which parameters are vectors */
    const char *names[64];
    uint64_t shapes[64][2];
    uint32_t nt = dtr_linear_tensors((dtr_layer_type)c.layer_types[L],
                                     &c.linear[c.layer_types[L] - 1], c.hidden_size, names,
                                     shapes, 64);
    for (uint32_t i = 0; i < np && !st; i++) {
      char nm[MAX_NAME];
      snprintf(nm, sizeof nm, "model.layers.%u.linear_attn.%s", L, pt[i].name);
      uint32_t nd = pt[i].cols == 1 ? 1 : 2;
      for (uint32_t j = 0; j < nt; j++)
        if (!strcmp(names[j], pt[i].name)) nd = shapes[j][1] ? 2 : 1;
      uint64_t shape[2] = {pt[i].rows, pt[i].cols};
      st = dtr_st_writer_add_copy(w, nm, DTR_DTYPE_F32, nd, shape,
                                  (const char *)h + pt[i].offset, err, errlen);
    }
    free(h);
    h = NULL;
  }
  if (!st) st = dtr_st_writer_save_dir(w, dir, 0, err, errlen);
done:
  free(h);
  free(t);
  dtr_st_writer_destroy(w);
  return st;
}

/* ---- layer replacement ------------------------------------------------------- */

dtr_status dtr_model_replace_layer(dtr_model *m, uint32_t L, dtr_block *blk) {
  dtr_model_config *c = &m->cfg;
  if (L >= c->num_hidden_layers) {
    dtr_block_destroy(blk);
    return dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID, "replace layer %u: the model has %u layers",
                             L, c->num_hidden_layers);
  }
  const dtr_block_config *bc = dtr_block_cfg(blk);
  if (bc->hidden != c->hidden_size) {
    dtr_block_destroy(blk);
    return dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID,
                             "replace layer %u: block width %u, model width %u", L, bc->hidden,
                             c->hidden_size);
  }
  if (!c->hybrid) {
    dtr_model_config_default_linear(c);
    c->hybrid = 1;
  }
  int other = 0;
  for (uint32_t i = 0; i < c->num_hidden_layers; i++)
    if (i != L && c->layer_types[i] == bc->kind + 1) other = 1;
  dtr_linear_config *lc = &c->linear[bc->kind];
  dtr_linear_config want = *lc;
  want.num_heads = bc->heads;
  want.head_dim = bc->head_dim;
  want.norm_eps = bc->norm_eps;
  want.chunk = bc->chunk;
  if (bc->kind == DTR_BLOCK_GLA) {
    want.gla_gate_rank = bc->gla_gate_rank;
    want.gla_normalizer = bc->gla_normalizer;
  }
  if (other && (want.num_heads != lc->num_heads || want.head_dim != lc->head_dim ||
                want.chunk != lc->chunk || want.gla_gate_rank != lc->gla_gate_rank ||
                (float)want.norm_eps != (float)lc->norm_eps ||
                (float)want.gla_normalizer != (float)lc->gla_normalizer)) {
    dtr_block_destroy(blk);
    return dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID,
                             "replace layer %u: other %s layers have different hyper-parameters",
                             L, dtr_block_kind_name(bc->kind));
  }
  *lc = want;
  layer *ly = &m->layers[L];
  dtr_buf **att[] = {&ly->wq, &ly->bq, &ly->wk, &ly->bk, &ly->wv, &ly->bv,
                     &ly->wo, &ly->bo, &ly->qn, &ly->kn};
  for (size_t i = 0; i < sizeof att / sizeof *att; i++) {
    dtr_buf_destroy(m->ctx, *att[i]);
    *att[i] = NULL;
  }
  dtr_block_destroy(ly->blk);
  ly->blk = blk;
  c->layer_types[L] = (uint8_t)(bc->kind + 1);
  return DTR_OK;
}

dtr_block *dtr_model_new_student(dtr_model *m, uint32_t L, dtr_block_kind kind,
                                 uint32_t max_tokens, uint32_t max_seqs, uint64_t seed) {
  dtr_model_config *c = &m->cfg;
  layer *ly = L < c->num_hidden_layers ? &m->layers[L] : NULL;
  if (!ly || !ly->wq) {
    dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID,
                      "student for layer %u: not a full-attention layer of this %u-layer model",
                      L, c->num_hidden_layers);
    return NULL;
  }
  dtr_model_config tmp = *c;
  if (!tmp.hybrid) dtr_model_config_default_linear(&tmp);
  dtr_block_config bc = block_cfg(&tmp, kind);
  if (bc.heads != c->num_attention_heads || bc.head_dim != c->head_dim) {
    dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID,
                      "student for layer %u: a %s block of %u heads x %u cannot start from "
                      "attention of %u heads x %u",
                      L, dtr_block_kind_name(kind), bc.heads, bc.head_dim,
                      c->num_attention_heads, c->head_dim);
    return NULL;
  }
  dtr_block *b = dtr_block_create(m->ctx, &bc, max_tokens ? max_tokens : m->max_tokens,
                                  max_seqs ? max_seqs : block_seqs(m), seed);
  if (!b) return NULL;
  size_t QD = (size_t)c->num_attention_heads * c->head_dim,
         KD = (size_t)c->num_key_value_heads * c->head_dim, Hd = c->hidden_size;
  float *q = malloc(QD * Hd * 4), *k = malloc(KD * Hd * 4), *v = malloc(KD * Hd * 4),
        *o = malloc(QD * Hd * 4);
  dtr_status st = (q && k && v && o) ? DTR_OK
                                     : dtr_ctx_set_error(m->ctx, DTR_ERR_OOM, "out of host memory");
  if (!st) st = dtr_buf_download(m->ctx, ly->wq, 0, q, QD * Hd * 4);
  if (!st) st = dtr_buf_download(m->ctx, ly->wk, 0, k, KD * Hd * 4);
  if (!st) st = dtr_buf_download(m->ctx, ly->wv, 0, v, KD * Hd * 4);
  if (!st) st = dtr_buf_download(m->ctx, ly->wo, 0, o, QD * Hd * 4);
  if (!st) st = dtr_block_init_from_teacher(b, q, k, v, o, c->num_key_value_heads);
  free(q);
  free(k);
  free(v);
  free(o);
  if (st) { dtr_block_destroy(b); return NULL; }
  return b;
}

dtr_status dtr_model_replace_layer_kind(dtr_model *m, uint32_t L, dtr_block_kind kind,
                                        uint64_t seed) {
  dtr_block *b = dtr_model_new_student(m, L, kind, 0, 0, seed);
  if (!b) return DTR_ERR_INVALID;
  return dtr_model_replace_layer(m, L, b);
}

dtr_status dtr_model_try_student(dtr_model *m, uint32_t L, dtr_block *blk, dtr_block **prev) {
  const dtr_model_config *c = &m->cfg;
  layer *ly = L < c->num_hidden_layers ? &m->layers[L] : NULL;
  if (!ly || !ly->wq)
    return dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID,
                             "try student at layer %u: not a full-attention layer of this "
                             "%u-layer model", L, c->num_hidden_layers);
  if (blk && dtr_block_cfg(blk)->hidden != c->hidden_size)
    return dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID,
                             "try student at layer %u: block width %u, model width %u", L,
                             dtr_block_cfg(blk)->hidden, c->hidden_size);
  if (prev) *prev = ly->blk;
  ly->blk = blk;
  return DTR_OK;
}

dtr_block_config dtr_model_block_config(const dtr_model *m, dtr_block_kind kind) {
  dtr_model_config tmp = m->cfg;
  if (!tmp.hybrid) dtr_model_config_default_linear(&tmp);
  return block_cfg(&tmp, kind);
}

/* ---- sessions ---------------------------------------------------------------- */

struct dtr_session {
  dtr_model *m;
  uint32_t B, kv_cap, T; /* T: token capacity of the activations */
  uint32_t *len;         /* tokens held per sequence */
  size_t kv_stride;      /* bytes between sequences in a cache buffer (aligned) */
  dtr_buf **kc, **vc;    /* per layer (full attention), else NULL */
  dtr_block_state **bs;  /* per layer (student), else NULL */
  dtr_buf *x, *h, *y, *q, *k, *v, *att, *kt, *lse, *rstd, *g, *u, *ids, *pos, *offs;
  dtr_buf *qtmp, *otmp, *last, *logits;
  uint32_t R; /* rows of last / logits */
  size_t id_stride; /* bytes between the per-chunk id lists of a split embedding */
  float *hlog;      /* host staging of split-head logits */
  size_t cache_bytes;
  int partial; /* the last prefill skipped layers: no decode until reset */
};

void dtr_session_destroy(dtr_session *s) {
  if (!s) return;
  dtr_ctx *ctx = s->m->ctx;
  for (uint32_t L = 0; L < s->m->cfg.num_hidden_layers; L++) {
    if (s->kc) dtr_buf_destroy(ctx, s->kc[L]);
    if (s->vc) dtr_buf_destroy(ctx, s->vc[L]);
    if (s->bs && s->bs[L]) dtr_block_state_destroy(s->m->layers[L].blk, s->bs[L]);
  }
  dtr_buf *b[] = {s->x,   s->h,   s->y,    s->q,    s->k,    s->v,    s->att,  s->kt,
                  s->lse, s->rstd, s->g,   s->u,    s->ids,  s->pos,  s->offs, s->qtmp,
                  s->otmp, s->last, s->logits};
  for (size_t i = 0; i < sizeof b / sizeof *b; i++) dtr_buf_destroy(ctx, b[i]);
  free(s->kc);
  free(s->vc);
  free(s->bs);
  free(s->len);
  free(s->hlog);
  free(s);
}

dtr_session *dtr_session_create(dtr_model *m, uint32_t B, uint32_t kv_cap) {
  const dtr_model_config *c = &m->cfg;
  if (!B || !kv_cap || B > m->max_tokens) {
    dtr_ctx_set_error(m->ctx, DTR_ERR_INVALID,
                      "session of %u sequences x %u tokens: need 1..%u sequences and a "
                      "positive cache", B, kv_cap, m->max_tokens);
    return NULL;
  }
  dtr_session *s = calloc(1, sizeof *s);
  if (!s) { dtr_ctx_set_error(m->ctx, DTR_ERR_OOM, "out of host memory"); return NULL; }
  s->m = m;
  s->B = B;
  s->kv_cap = kv_cap;
  s->T = m->max_tokens;
  s->R = B > 64 ? B : 64;
  if (s->R > s->T && s->T >= B) s->R = s->T;
  if (s->R > 4096) s->R = 4096;
  uint32_t nl = c->num_hidden_layers, L;
  s->len = calloc(B, sizeof *s->len);
  s->kc = calloc(nl, sizeof *s->kc);
  s->vc = calloc(nl, sizeof *s->vc);
  s->bs = calloc(nl, sizeof *s->bs);
  if (!s->len || !s->kc || !s->vc || !s->bs) goto oom;
  size_t align = dtr_ctx_device(m->ctx)->min_storage_offset_align;
  if (!align) align = 4;
  size_t KD = (size_t)c->num_key_value_heads * c->head_dim,
         QD = (size_t)c->num_attention_heads * c->head_dim, Hd = c->hidden_size, T = s->T;
  s->kv_stride = ((size_t)kv_cap * KD * 4 + align - 1) / align * align;
  for (L = 0; L < nl; L++) {
    if (m->layers[L].blk) {
      if (!(s->bs[L] = dtr_block_state_create(m->layers[L].blk, B))) goto fail;
      s->cache_bytes += dtr_block_state_bytes(s->bs[L]);
    } else {
      s->kc[L] = dtr_buf_create(m->ctx, s->kv_stride * B);
      s->vc[L] = dtr_buf_create(m->ctx, s->kv_stride * B);
      if (!s->kc[L] || !s->vc[L]) goto fail;
      s->cache_bytes += 2 * s->kv_stride * B;
    }
  }
  size_t I = c->intermediate_size, Hq = c->num_attention_heads;
#define MK(f, bytes)                                                                         \
  if (!(s->f = dtr_buf_create(m->ctx, (bytes)))) goto fail
  MK(x, T * Hd * 4);
  MK(h, T * Hd * 4);
  MK(y, T * Hd * 4);
  MK(q, T * QD * 4);
  MK(k, T * KD * 4);
  MK(v, T * KD * 4);
  MK(att, T * QD * 4);
  MK(kt, T * KD * 4);
  MK(lse, T * Hq * 4);
  MK(rstd, T * (Hq > 1 ? Hq : 1) * 4);
  MK(g, T * I * 4);
  MK(u, T * I * 4);
  s->id_stride = (T * 4 + align - 1) / align * align;
  MK(ids, s->id_stride * m->embed.n);
  MK(pos, T * 4);
  MK(offs, (B + 1) * 4);
  MK(qtmp, T * QD * 4);
  MK(otmp, T * QD * 4);
  MK(last, (size_t)s->R * Hd * 4);
  MK(logits, (size_t)s->R * c->vocab_size * 4);
#undef MK
  if (dtr_session_reset(s)) goto fail;
  return s;
oom:
  dtr_ctx_set_error(m->ctx, DTR_ERR_OOM, "out of host memory");
fail:
  if (!dtr_ctx_error(m->ctx)[0])
    dtr_ctx_set_error(m->ctx, DTR_ERR_OOM, "session: out of device memory");
  dtr_session_destroy(s);
  return NULL;
}

dtr_status dtr_session_reset(dtr_session *s) {
  memset(s->len, 0, s->B * sizeof *s->len);
  s->partial = 0;
  for (uint32_t L = 0; L < s->m->cfg.num_hidden_layers; L++)
    if (s->bs[L]) {
      dtr_status st = dtr_block_state_reset(s->m->layers[L].blk, s->bs[L]);
      if (st) return st;
    }
  return DTR_OK;
}

size_t dtr_session_cache_bytes(const dtr_session *s) { return s->cache_bytes; }
uint32_t dtr_session_len(const dtr_session *s, uint32_t b) { return b < s->B ? s->len[b] : 0; }

dtr_status dtr_session_set_len(dtr_session *s, uint32_t len) {
  if (len >= s->kv_cap)
    return dtr_ctx_set_error(s->m->ctx, DTR_ERR_INVALID, "length %u does not fit a cache of %u",
                             len, s->kv_cap);
  for (uint32_t b = 0; b < s->B; b++) s->len[b] = len;
  return DTR_OK;
}

static dtr_view fv(dtr_buf *b, size_t off, size_t n) {
  return (dtr_view){b, off * 4, n * 4};
}

#define TRY(x)                                                                               \
  do {                                                                                       \
    dtr_status st_ = (x);                                                                    \
    if (st_) return st_;                                                                     \
  } while (0)

/* y (M, N) = x (M, K) W^T (+ bias) */
static dtr_status linear(dtr_ctx *ctx, dtr_buf *y, dtr_buf *x, dtr_buf *W, dtr_buf *bias,
                         uint32_t M, uint32_t N, uint32_t K) {
  dtr_matmul_desc d = {.M = M, .N = N, .K = K, .batch = 1, .trans_b = 1, .alpha = 1.0f};
  return dtr_op_matmul(ctx, fv(y, 0, (size_t)M * N), fv(x, 0, (size_t)M * K), dtr_whole(W),
                       bias ? dtr_whole(bias) : DTR_NONE, &d);
}

/* Attention of one sequence: nq queries at float offset qoff in s->q, keys 0 ..
 * pos0 + nq - 1 of cache slot b, output at the same offset in s->att. A view
 * offset must be aligned; rows that are not go through qtmp/otmp. */
static dtr_status attend(dtr_session *s, uint32_t L, uint32_t b, size_t row0, uint32_t nq,
                         uint32_t pos0) {
  dtr_model *m = s->m;
  const dtr_model_config *c = &m->cfg;
  size_t QD = (size_t)c->num_attention_heads * c->head_dim,
         KD = (size_t)c->num_key_value_heads * c->head_dim;
  size_t align = dtr_ctx_device(m->ctx)->min_storage_offset_align;
  if (!align) align = 4;
  size_t off = row0 * QD * 4, n = (size_t)nq * QD;
  int direct = off % align == 0;
  dtr_attn_desc d = {.B = 1, .Tq = nq, .Tk = pos0 + nq, .kv_cap = s->kv_cap,
                     .Hq = c->num_attention_heads, .Hkv = c->num_key_value_heads,
                     .D = c->head_dim, .scale = 1.0f / sqrtf((float)c->head_dim)};
  dtr_view kview = {s->kc[L], b * s->kv_stride, (size_t)s->kv_cap * KD * 4};
  dtr_view vview = {s->vc[L], b * s->kv_stride, (size_t)s->kv_cap * KD * 4};
  dtr_view lse = fv(s->lse, 0, (size_t)nq * c->num_attention_heads);
  if (direct)
    return dtr_op_attention_fwd(m->ctx, fv(s->att, row0 * QD, n), lse, fv(s->q, row0 * QD, n),
                                kview, vview, &d);
  TRY(dtr_buf_copy(m->ctx, s->qtmp, 0, s->q, off, n * 4));
  TRY(dtr_op_attention_fwd(m->ctx, fv(s->otmp, 0, n), lse, fv(s->qtmp, 0, n), kview, vview, &d));
  return dtr_buf_copy(m->ctx, s->att, off, s->otmp, 0, n * 4);
}

/* One forward over the packed new tokens (n[b] of sequence b, Ttot in all) whose
 * ids, positions and offsets are already uploaded; decode: every n[b] == 1. */
static dtr_status forward(dtr_session *s, const uint32_t *n, uint32_t Ttot, int decode,
                          const dtr_layer_hooks *hk) {
  dtr_model *m = s->m;
  dtr_ctx *ctx = m->ctx;
  const dtr_model_config *c = &m->cfg;
  uint32_t Hd = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
           Hkv = c->num_key_value_heads, I = c->intermediate_size;
  size_t QD = (size_t)Hq * D, KD = (size_t)Hkv * D, tH = (size_t)Ttot * Hd;
  float eps = (float)c->rms_norm_eps;
  /* a split table: each chunk looks up ids shifted into its rows (others give
   * zero rows), and the chunks' results add up */
  uint32_t L0 = hk ? hk->from_layer : 0, L1 = c->num_hidden_layers;
  if (hk && hk->stop_layer && hk->stop_layer < L1) L1 = hk->stop_layer;
  if (L0 > 0)
    TRY(dtr_buf_upload(ctx, s->x, 0, hk->h_in, tH * 4));
  for (uint32_t i = 0; L0 == 0 && i < m->embed.n; i++) {
    uint32_t rows = (uint32_t)(dtr_buf_size(m->embed.b[i]) / ((size_t)Hd * 4));
    dtr_view ids = {s->ids, i * s->id_stride, (size_t)Ttot * 4};
    TRY(dtr_op_embedding_fwd(ctx, fv(i ? s->y : s->x, 0, tH), ids, dtr_whole(m->embed.b[i]), Ttot,
                             Hd, rows));
    if (i) TRY(dtr_op_add(ctx, fv(s->x, 0, tH), fv(s->x, 0, tH), fv(s->y, 0, tH), tH));
  }
  for (uint32_t L = L0; L < L1; L++) {
    layer *ly = &m->layers[L];
    if (hk && hk->before_layer) TRY(hk->before_layer(hk->ud, L, fv(s->x, 0, tH), Ttot));
    TRY(dtr_op_rmsnorm_fwd(ctx, fv(s->h, 0, tH), fv(s->rstd, 0, Ttot), fv(s->x, 0, tH),
                           dtr_whole(ly->ln1), Ttot, Hd, eps));
    if (ly->blk) {
      if (decode)
        TRY(dtr_block_decode(ly->blk, s->bs[L], fv(s->y, 0, tH), fv(s->h, 0, tH)));
      else
        TRY(dtr_block_prefill(ly->blk, s->bs[L], fv(s->y, 0, tH), fv(s->h, 0, tH),
                              fv(s->offs, 0, s->B + 1), s->B, Ttot));
    } else {
      TRY(linear(ctx, c->qk_norm ? s->att : s->q, s->h, ly->wq, ly->bq, Ttot, QD, Hd));
      TRY(linear(ctx, c->qk_norm ? s->kt : s->k, s->h, ly->wk, ly->bk, Ttot, KD, Hd));
      TRY(linear(ctx, s->v, s->h, ly->wv, ly->bv, Ttot, KD, Hd));
      if (c->qk_norm) {
        TRY(dtr_op_rmsnorm_fwd(ctx, fv(s->q, 0, Ttot * QD), fv(s->rstd, 0, (size_t)Ttot * Hq),
                               fv(s->att, 0, Ttot * QD), dtr_whole(ly->qn), Ttot * Hq, D, eps));
        TRY(dtr_op_rmsnorm_fwd(ctx, fv(s->k, 0, Ttot * KD), fv(s->rstd, 0, (size_t)Ttot * Hkv),
                               fv(s->kt, 0, Ttot * KD), dtr_whole(ly->kn), Ttot * Hkv, D, eps));
      }
      TRY(dtr_op_rope_fwd(ctx, fv(s->q, 0, Ttot * QD), fv(s->q, 0, Ttot * QD), fv(s->pos, 0, Ttot),
                          dtr_whole(m->inv_freq), Ttot, Hq, D, DTR_ROPE_NEOX));
      TRY(dtr_op_rope_fwd(ctx, fv(s->k, 0, Ttot * KD), fv(s->k, 0, Ttot * KD), fv(s->pos, 0, Ttot),
                          dtr_whole(m->inv_freq), Ttot, Hkv, D, DTR_ROPE_NEOX));
      size_t row = 0;
      for (uint32_t b = 0; b < s->B; b++) {
        if (!n[b]) continue;
        size_t dst = b * s->kv_stride + (size_t)s->len[b] * KD * 4;
        TRY(dtr_buf_copy(ctx, s->kc[L], dst, s->k, row * KD * 4, n[b] * KD * 4));
        TRY(dtr_buf_copy(ctx, s->vc[L], dst, s->v, row * KD * 4, n[b] * KD * 4));
        TRY(attend(s, L, b, row, n[b], s->len[b]));
        row += n[b];
      }
      TRY(linear(ctx, s->y, s->att, ly->wo, ly->bo, Ttot, Hd, QD));
    }
    if (hk && hk->after_mixer)
      TRY(hk->after_mixer(hk->ud, L, fv(s->h, 0, tH), fv(s->y, 0, tH), Ttot));
    TRY(dtr_op_add(ctx, fv(s->x, 0, tH), fv(s->x, 0, tH), fv(s->y, 0, tH), tH));
    TRY(dtr_op_rmsnorm_fwd(ctx, fv(s->h, 0, tH), fv(s->rstd, 0, Ttot), fv(s->x, 0, tH),
                           dtr_whole(ly->ln2), Ttot, Hd, eps));
    TRY(linear(ctx, s->g, s->h, ly->wg, NULL, Ttot, I, Hd));
    TRY(linear(ctx, s->u, s->h, ly->wu, NULL, Ttot, I, Hd));
    TRY(dtr_op_swiglu_fwd(ctx, fv(s->g, 0, (size_t)Ttot * I), fv(s->g, 0, (size_t)Ttot * I),
                          fv(s->u, 0, (size_t)Ttot * I), Ttot * I));
    TRY(linear(ctx, s->y, s->g, ly->wd, NULL, Ttot, Hd, I));
    TRY(dtr_op_add(ctx, fv(s->x, 0, tH), fv(s->x, 0, tH), fv(s->y, 0, tH), tH));
  }
  if (L1 < c->num_hidden_layers) return DTR_OK;
  if (hk && hk->before_layer) TRY(hk->before_layer(hk->ud, L1, fv(s->x, 0, tH), Ttot));
  return dtr_op_rmsnorm_fwd(ctx, fv(s->h, 0, tH), fv(s->rstd, 0, Ttot), fv(s->x, 0, tH),
                            dtr_whole(m->norm), Ttot, Hd, eps);
}

/* logits of rows r[0..nr) of s->h (nr <= s->R) into dst (nr, V); NULL dst only
 * submits. */
static dtr_status head(dtr_session *s, const size_t *r, uint32_t nr, float *dst) {
  dtr_model *m = s->m;
  const dtr_model_config *c = &m->cfg;
  size_t Hd = c->hidden_size, V = c->vocab_size;
  if (!dst) return dtr_ctx_submit(m->ctx);
  for (uint32_t i = 0; i < nr; i++)
    TRY(dtr_buf_copy(m->ctx, s->last, i * Hd * 4, s->h, r[i] * Hd * 4, Hd * 4));
  const chunked *w = m->lm_head.n ? &m->lm_head : &m->embed;
  if (w->n == 1) {
    TRY(linear(m->ctx, s->logits, s->last, w->b[0], NULL, nr, V, Hd));
    return dtr_buf_download(m->ctx, s->logits, 0, dst, (size_t)nr * V * 4);
  }
  /* split head: chunk i's logits (nr, rows_i) sit at offset nr * r0 (aligned: r0 is
   * a multiple of align/4); one download, then the columns are interleaved */
  for (uint32_t i = 0; i < w->n; i++) {
    size_t r0 = (size_t)i * w->rows, rows = dtr_buf_size(w->b[i]) / (Hd * 4);
    dtr_matmul_desc d = {.M = nr, .N = (uint32_t)rows, .K = (uint32_t)Hd, .batch = 1,
                         .trans_b = 1, .alpha = 1.0f};
    TRY(dtr_op_matmul(m->ctx, fv(s->logits, nr * r0, nr * rows), fv(s->last, 0, nr * Hd),
                      dtr_whole(w->b[i]), DTR_NONE, &d));
  }
  if (!s->hlog && !(s->hlog = malloc((size_t)s->R * V * 4)))
    return dtr_ctx_set_error(m->ctx, DTR_ERR_OOM, "out of host memory");
  TRY(dtr_buf_download(m->ctx, s->logits, 0, s->hlog, (size_t)nr * V * 4));
  for (uint32_t i = 0; i < w->n; i++) {
    size_t r0 = (size_t)i * w->rows, rows = dtr_buf_size(w->b[i]) / (Hd * 4);
    for (uint32_t r = 0; r < nr; r++)
      memcpy(dst + (size_t)r * V + r0, s->hlog + nr * r0 + r * rows, rows * 4);
  }
  return DTR_OK;
}

static dtr_status upload_step(dtr_session *s, const int32_t *ids, const uint32_t *n,
                              uint32_t Ttot) {
  dtr_ctx *ctx = s->m->ctx;
  int32_t *pos = malloc(((size_t)Ttot + s->B + 1) * 4);
  if (!pos) return dtr_ctx_set_error(ctx, DTR_ERR_OOM, "out of host memory");
  int32_t *offs = pos + Ttot;
  size_t r = 0;
  offs[0] = 0;
  for (uint32_t b = 0; b < s->B; b++) {
    for (uint32_t i = 0; i < n[b]; i++) pos[r++] = (int32_t)(s->len[b] + i);
    offs[b + 1] = (int32_t)r;
  }
  dtr_status st = DTR_OK;
  const chunked *e = &s->m->embed;
  if (e->n == 1) st = dtr_buf_upload(ctx, s->ids, 0, ids, (size_t)Ttot * 4);
  for (uint32_t i = 0; e->n > 1 && i < e->n && !st; i++) {
    int32_t *sh = malloc((size_t)Ttot * 4);
    if (!sh) { st = dtr_ctx_set_error(ctx, DTR_ERR_OOM, "out of host memory"); break; }
    for (uint32_t t = 0; t < Ttot; t++) sh[t] = ids[t] - (int32_t)(i * e->rows);
    st = dtr_buf_upload(ctx, s->ids, i * s->id_stride, sh, (size_t)Ttot * 4);
    free(sh);
  }
  if (!st) st = dtr_buf_upload(ctx, s->pos, 0, pos, (size_t)Ttot * 4);
  if (!st) st = dtr_buf_upload(ctx, s->offs, 0, offs, (size_t)(s->B + 1) * 4);
  free(pos);
  return st;
}

dtr_status dtr_session_prefill(dtr_session *s, const int32_t *const *ids, const uint32_t *lens,
                               float *logits, int all) {
  return dtr_session_prefill_hooked(s, ids, lens, logits, all, NULL);
}

dtr_status dtr_session_prefill_hooked(dtr_session *s, const int32_t *const *ids,
                                      const uint32_t *lens, float *logits, int all,
                                      const dtr_layer_hooks *hk) {
  dtr_model *m = s->m;
  dtr_ctx *ctx = m->ctx;
  uint32_t V = m->cfg.vocab_size;
  size_t Ttot = 0;
  for (uint32_t b = 0; b < s->B; b++) {
    if (!lens[b] || s->len[b] || (size_t)lens[b] + s->len[b] > s->kv_cap)
      return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                               "prefill: sequence %u has %u tokens (needs 1..%u on a reset "
                               "session)", b, lens[b], s->kv_cap);
    Ttot += lens[b];
  }
  if (Ttot > s->T)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "prefill of %zu tokens; the model was set up for at most %u", Ttot,
                             s->T);
  int32_t *all_ids = malloc(Ttot * 4);
  if (!all_ids) return dtr_ctx_set_error(ctx, DTR_ERR_OOM, "out of host memory");
  size_t r = 0;
  for (uint32_t b = 0; b < s->B; b++)
    for (uint32_t i = 0; i < lens[b]; i++) {
      int32_t id = ids[b][i];
      if (id < 0 || (uint32_t)id >= V) {
        free(all_ids);
        return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "token id %d outside the vocabulary (%u)",
                                 id, V);
      }
      all_ids[r++] = id;
    }
  dtr_status st = upload_step(s, all_ids, lens, (uint32_t)Ttot);
  free(all_ids);
  if (!st && hk) {
    uint32_t nl = m->cfg.num_hidden_layers;
    if (hk->from_layer > nl || (hk->from_layer && !hk->h_in) ||
        (hk->stop_layer && hk->stop_layer <= hk->from_layer))
      st = dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "prefill: layers %u..%u of a %u-layer model (from needs h_in)",
                             hk->from_layer, hk->stop_layer, nl);
    else if (hk->from_layer || (hk->stop_layer && hk->stop_layer < nl))
      s->partial = 1;
  }
  if (!st) st = forward(s, lens, (uint32_t)Ttot, 0, hk);
  if (st) return st;
  for (uint32_t b = 0; b < s->B; b++) s->len[b] += lens[b];
  if (hk && hk->stop_layer && hk->stop_layer < m->cfg.num_hidden_layers)
    return logits ? dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                                      "prefill stopped at layer %u: no logits", hk->stop_layer)
                  : dtr_ctx_submit(ctx);
  size_t rows[4096];
  if (!all) {
    size_t e = 0;
    for (uint32_t b = 0; b < s->B; b += s->R) {
      uint32_t nr = s->B - b < s->R ? s->B - b : s->R;
      for (uint32_t i = 0; i < nr; i++) {
        e = 0;
        for (uint32_t j = 0; j <= b + i; j++) e += lens[j];
        rows[i] = e - 1;
      }
      TRY(head(s, rows, nr, logits ? logits + (size_t)b * V : NULL));
      if (!logits) break;
    }
    return DTR_OK;
  }
  for (size_t r0 = 0; r0 < Ttot; r0 += s->R) {
    uint32_t nr = (uint32_t)(Ttot - r0 < s->R ? Ttot - r0 : s->R);
    for (uint32_t i = 0; i < nr; i++) rows[i] = r0 + i;
    TRY(head(s, rows, nr, logits ? logits + r0 * V : NULL));
    if (!logits) break;
  }
  return DTR_OK;
}

dtr_status dtr_session_decode(dtr_session *s, const int32_t *ids, float *logits) {
  dtr_ctx *ctx = s->m->ctx;
  uint32_t V = s->m->cfg.vocab_size;
  uint32_t *one = malloc(s->B * sizeof *one);
  if (!one) return dtr_ctx_set_error(ctx, DTR_ERR_OOM, "out of host memory");
  dtr_status st = DTR_OK;
  for (uint32_t b = 0; b < s->B && !st; b++) {
    one[b] = 1;
    if (s->len[b] + 1 > s->kv_cap)
      st = dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "decode: sequence %u is full (%u tokens)", b,
                             s->kv_cap);
    else if (ids[b] < 0 || (uint32_t)ids[b] >= V)
      st = dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "token id %d outside the vocabulary (%u)",
                             ids[b], V);
  }
  if (s->partial)
    st = dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                           "decode after a prefill that skipped layers (reset the session)");
  if (!st) st = upload_step(s, ids, one, s->B);
  if (!st) st = forward(s, one, s->B, 1, NULL);
  free(one);
  if (st) return st;
  for (uint32_t b = 0; b < s->B; b++) s->len[b]++;
  size_t rows[4096];
  for (uint32_t b = 0; b < s->B; b += s->R) {
    uint32_t nr = s->B - b < s->R ? s->B - b : s->R;
    for (uint32_t i = 0; i < nr; i++) rows[i] = b + i;
    TRY(head(s, rows, nr, logits ? logits + (size_t)b * V : NULL));
    if (!logits) break;
  }
  return DTR_OK;
}

/* ---- sampling ------------------------------------------------------------------ */

static uint64_t xs(uint64_t *s) {
  uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1Dull;
}

typedef struct { float p; int32_t id; } pid;
static int cmp_pid(const void *a, const void *b) {
  const pid *x = a, *y = b;
  if (x->p != y->p) return x->p < y->p ? 1 : -1;
  return (x->id > y->id) - (x->id < y->id);
}

int32_t dtr_sample(const float *logits, uint32_t V, float temperature, float top_p,
                   uint64_t *rng) {
  int32_t best = 0;
  for (uint32_t i = 1; i < V; i++)
    if (logits[i] > logits[best]) best = (int32_t)i;
  if (temperature <= 0 || V < 2) return best;
  pid *p = malloc(V * sizeof *p);
  if (!p) return best;
  double mx = logits[best], sum = 0;
  for (uint32_t i = 0; i < V; i++) {
    p[i].p = (float)exp((logits[i] - mx) / temperature);
    p[i].id = (int32_t)i;
    sum += p[i].p;
  }
  uint32_t keep = V;
  if (top_p < 1) {
    qsort(p, V, sizeof *p, cmp_pid);
    double acc = 0;
    for (keep = 0; keep < V;) {
      acc += p[keep++].p / sum;
      if (acc >= top_p) break;
    }
    sum = 0;
    for (uint32_t i = 0; i < keep; i++) sum += p[i].p;
  }
  double u = (xs(rng) >> 11) / 9007199254740992.0 * sum, acc = 0;
  int32_t id = p[keep - 1].id;
  for (uint32_t i = 0; i < keep; i++) {
    acc += p[i].p;
    if (u < acc) { id = p[i].id; break; }
  }
  free(p);
  return id;
}
