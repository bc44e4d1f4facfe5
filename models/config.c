/* config.c — config.json for Llama / Qwen2 / Qwen3 and dtr's hybrid extension:
 * parsing with transformers' defaults, validation, atomic saving, and the check
 * of a checkpoint's tensors against a config. See config.h for the fields. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static dtr_status fail(char *err, size_t errlen, dtr_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static dtr_status fail(char *err, size_t errlen, dtr_status s, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
      if (*p == '\n' || *p == '\r') *p = ' ';
  }
  return s;
}

static const char *const arch_names[] = {"LlamaForCausalLM", "Qwen2ForCausalLM",
                                         "Qwen3ForCausalLM"};
static const char *const arch_types[] = {"llama", "qwen2", "qwen3"};
static const char *const layer_names[] = {"full_attention", "gla", "gdn", "jet"};

const char *dtr_arch_name(dtr_arch a) { return (unsigned)a < 3 ? arch_names[a] : "?"; }
const char *dtr_arch_model_type(dtr_arch a) { return (unsigned)a < 3 ? arch_types[a] : "?"; }
const char *dtr_layer_type_name(dtr_layer_type t) { return (unsigned)t < 4 ? layer_names[t] : "?"; }
int dtr_layer_type_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (s && !strcmp(s, layer_names[i])) return i;
  return -1;
}

static const char *src(const dtr_model_config *c) { return c->source[0] ? c->source : "config"; }

/* ---- field readers ----------------------------------------------------------- */

/* A field that is absent or JSON null takes its default. */
static json_t *field(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_null(v) ? NULL : v;
}

static dtr_status get_u32(json_t *o, const char *key, int required, uint32_t def, uint32_t *out,
                          const char *fn, char *err, size_t errlen) {
  json_t *v = field(o, key);
  if (!v) {
    if (required)
      return fail(err, errlen, DTR_ERR_FORMAT, "%s: missing required field \"%s\"", fn, key);
    *out = def;
    return DTR_OK;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"%s\" is not a non-negative 32-bit integer", fn,
                key);
  *out = (uint32_t)json_integer_value(v);
  return DTR_OK;
}

static dtr_status get_num(json_t *o, const char *key, double def, double *out, const char *fn,
                          char *err, size_t errlen) {
  json_t *v = field(o, key);
  if (!v) {
    *out = def;
    return DTR_OK;
  }
  if (!json_is_number(v))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"%s\" is not a number", fn, key);
  *out = json_number_value(v);
  return DTR_OK;
}

static dtr_status get_bool(json_t *o, const char *key, int def, int *out, const char *fn, char *err,
                           size_t errlen) {
  json_t *v = field(o, key);
  if (!v) {
    *out = def;
    return DTR_OK;
  }
  if (!json_is_boolean(v))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"%s\" is not true or false", fn, key);
  *out = json_is_true(v);
  return DTR_OK;
}

static int token_id(json_t *v, int32_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
    return 0;
  *out = (int32_t)json_integer_value(v);
  return 1;
}

/* rope_scaling (or transformers 5's rope_parameters): o is the object. */
static dtr_status parse_rope(json_t *o, const char *key, dtr_rope_scaling_config *rs,
                             const char *fn, char *err, size_t errlen) {
  memset(rs, 0, sizeof *rs);
  if (!json_is_object(o))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"%s\" is not an object or null", fn, key);
  json_t *t = field(o, "rope_type");
  if (!t) t = field(o, "type");
  const char *ty = json_string_value(t);
  if (!ty || !strcmp(ty, "default")) {
    if (t && !ty)
      return fail(err, errlen, DTR_ERR_FORMAT, "%s: %s.rope_type is not a string", fn, key);
    return DTR_OK;
  }
  if (strcmp(ty, "llama3"))
    return fail(err, errlen, DTR_ERR_UNSUPPORTED,
                "%s: %s type '%s' is not supported (supported: llama3, or null)", fn, key, ty);
  rs->type = DTR_ROPE_SCALING_LLAMA3;
  dtr_status s;
  if ((s = get_num(o, "factor", 0, &rs->factor, fn, err, errlen)) ||
      (s = get_num(o, "low_freq_factor", 0, &rs->low_freq_factor, fn, err, errlen)) ||
      (s = get_num(o, "high_freq_factor", 0, &rs->high_freq_factor, fn, err, errlen)) ||
      (s = get_u32(o, "original_max_position_embeddings", 1, 0,
                   &rs->original_max_position_embeddings, fn, err, errlen)))
    return s;
  if (!field(o, "factor") || !field(o, "low_freq_factor") || !field(o, "high_freq_factor"))
    return fail(err, errlen, DTR_ERR_FORMAT,
                "%s: llama3 %s needs factor, low_freq_factor and high_freq_factor", fn, key);
  return DTR_OK;
}

static dtr_status parse_linear(json_t *o, dtr_model_config *c, const char *fn, char *err,
                               size_t errlen) {
  if (!json_is_object(o))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"dtr_linear\" is not an object", fn);
  const char *kind;
  json_t *kv;
  json_object_foreach(o, kind, kv) {
    int t = dtr_layer_type_parse(kind);
    if (t <= 0)
      return fail(err, errlen, DTR_ERR_FORMAT,
                  "%s: dtr_linear has unknown kind '%s' (expected gla, gdn or jet)", fn, kind);
    if (!json_is_object(kv))
      return fail(err, errlen, DTR_ERR_FORMAT, "%s: dtr_linear.%s is not an object", fn, kind);
    dtr_linear_config *l = &c->linear[t - 1];
    const char *k;
    json_t *v;
    json_object_foreach(kv, k, v) {
      int ok =
          !strcmp(k, "num_heads") || !strcmp(k, "head_dim") || !strcmp(k, "norm_eps") ||
          !strcmp(k, "chunk") ||
          (t == DTR_LAYER_GLA && (!strcmp(k, "gla_gate_rank") || !strcmp(k, "gla_normalizer"))) ||
          (t != DTR_LAYER_GLA && !strcmp(k, "conv_size"));
      if (!ok)
        return fail(err, errlen, DTR_ERR_FORMAT, "%s: dtr_linear.%s has unknown key '%s'", fn, kind,
                    k);
    }
    dtr_status s;
    if ((s = get_u32(kv, "num_heads", 0, l->num_heads, &l->num_heads, fn, err, errlen)) ||
        (s = get_u32(kv, "head_dim", 0, l->head_dim, &l->head_dim, fn, err, errlen)) ||
        (s = get_num(kv, "norm_eps", l->norm_eps, &l->norm_eps, fn, err, errlen)) ||
        (s = get_u32(kv, "chunk", 0, l->chunk, &l->chunk, fn, err, errlen)) ||
        (s = get_u32(kv, "gla_gate_rank", 0, l->gla_gate_rank, &l->gla_gate_rank, fn, err,
                     errlen)) ||
        (s = get_num(kv, "gla_normalizer", l->gla_normalizer, &l->gla_normalizer, fn, err,
                     errlen)) ||
        (s = get_u32(kv, "conv_size", 0, l->conv_size, &l->conv_size, fn, err, errlen)))
      return s;
  }
  return DTR_OK;
}

void dtr_model_config_default_linear(dtr_model_config *c) {
  for (int i = 0; i < 3; i++)
    c->linear[i] = (dtr_linear_config){.num_heads = c->num_attention_heads,
                                       .head_dim = c->head_dim,
                                       .norm_eps = 1e-5,
                                       .chunk = 64,
                                       .gla_gate_rank = 16,
                                       .gla_normalizer = 16,
                                       .conv_size = 4};
}

static dtr_status parse_root(json_t *r, const char *fn, dtr_model_config *c, char *err,
                             size_t errlen) {
  if (!json_is_object(r)) return fail(err, errlen, DTR_ERR_FORMAT, "%s: not a JSON object", fn);
  /* architecture: architectures[0], else model_type */
  const char *an = NULL;
  json_t *archs = field(r, "architectures");
  if (archs && (!json_is_array(archs) ||
                (json_array_size(archs) && !json_is_string(json_array_get(archs, 0)))))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"architectures\" is not a list of names", fn);
  if (archs && json_array_size(archs)) an = json_string_value(json_array_get(archs, 0));
  const char *mt = json_string_value(field(r, "model_type"));
  int a = -1;
  for (int i = 0; i < 3; i++)
    if (an ? !strcmp(an, arch_names[i]) : (mt && !strcmp(mt, arch_types[i]))) a = i;
  if (!an && !mt)
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: neither \"architectures\" nor \"model_type\"",
                fn);
  if (a < 0)
    return fail(err, errlen, DTR_ERR_UNSUPPORTED,
                "%s: unknown architecture '%s' (supported: LlamaForCausalLM, Qwen2ForCausalLM, "
                "Qwen3ForCausalLM)",
                fn, an ? an : mt);
  c->architecture = (dtr_arch)a;
  int llama = a == DTR_ARCH_LLAMA, qwen2 = a == DTR_ARCH_QWEN2, qwen3 = a == DTR_ARCH_QWEN3;

  dtr_status s;
  if ((s = get_u32(r, "hidden_size", 1, 0, &c->hidden_size, fn, err, errlen)) ||
      (s = get_u32(r, "intermediate_size", 1, 0, &c->intermediate_size, fn, err, errlen)) ||
      (s = get_u32(r, "num_hidden_layers", 1, 0, &c->num_hidden_layers, fn, err, errlen)) ||
      (s = get_u32(r, "num_attention_heads", 1, 0, &c->num_attention_heads, fn, err, errlen)) ||
      (s = get_u32(r, "vocab_size", 1, 0, &c->vocab_size, fn, err, errlen)) ||
      (s = get_u32(r, "num_key_value_heads", 0, c->num_attention_heads, &c->num_key_value_heads, fn,
                   err, errlen)) ||
      (s = get_u32(r, "max_position_embeddings", 0, llama ? 2048 : 32768,
                   &c->max_position_embeddings, fn, err, errlen)) ||
      (s = get_num(r, "rms_norm_eps", 1e-6, &c->rms_norm_eps, fn, err, errlen)) ||
      (s = get_bool(r, "tie_word_embeddings", 0, &c->tie_word_embeddings, fn, err, errlen)) ||
      (s = get_bool(r, "attention_bias", 0, &c->attention_bias, fn, err, errlen)))
    return s;
  /* head_dim: explicit, else hidden/heads (Qwen3Config's own default is 128) */
  if (field(r, "head_dim")) {
    if ((s = get_u32(r, "head_dim", 1, 0, &c->head_dim, fn, err, errlen))) return s;
  } else if (qwen3) {
    c->head_dim = 128;
  } else {
    if (!c->num_attention_heads || c->hidden_size % c->num_attention_heads)
      return fail(err, errlen, DTR_ERR_FORMAT,
                  "%s: num_attention_heads %u does not divide hidden_size %u and head_dim is "
                  "absent",
                  fn, c->num_attention_heads, c->hidden_size);
    c->head_dim = c->hidden_size / c->num_attention_heads;
  }
  /* q/k/v biases: Qwen2 always, no o_proj bias; Llama and Qwen3 bias all four
   * projections when attention_bias is set */
  c->o_proj_bias = qwen2 ? 0 : c->attention_bias;
  if (qwen2) c->attention_bias = 1;
  c->qk_norm = qwen3;

  /* rope: rope_theta / rope_scaling, or transformers 5's rope_parameters */
  json_t *rp = field(r, "rope_parameters");
  double theta_def = 10000;
  if (rp && json_is_object(rp) && json_is_number(field(rp, "rope_theta")))
    theta_def = json_number_value(field(rp, "rope_theta"));
  if ((s = get_num(r, "rope_theta", theta_def, &c->rope_theta, fn, err, errlen))) return s;
  json_t *rsc = field(r, "rope_scaling");
  const char *rkey = "rope_scaling";
  if (!rsc && rp) {
    rsc = rp;
    rkey = "rope_parameters";
  }
  memset(&c->rope_scaling, 0, sizeof c->rope_scaling);
  if (rsc && (s = parse_rope(rsc, rkey, &c->rope_scaling, fn, err, errlen))) return s;

  /* options dtr does not implement */
  json_t *act = field(r, "hidden_act");
  if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu")))
    return fail(err, errlen, DTR_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (silu)", fn,
                json_is_string(act) ? json_string_value(act) : "?");
  int flag;
  if ((s = get_bool(r, "mlp_bias", 0, &flag, fn, err, errlen))) return s;
  if (flag) return fail(err, errlen, DTR_ERR_UNSUPPORTED, "%s: mlp_bias true is not supported", fn);
  if ((s = get_bool(r, "use_sliding_window", 0, &flag, fn, err, errlen))) return s;
  if (flag)
    return fail(err, errlen, DTR_ERR_UNSUPPORTED, "%s: use_sliding_window true is not supported",
                fn);

  /* special tokens */
  c->bos_token_id = -1;
  json_t *bos = field(r, "bos_token_id");
  if (bos && json_is_array(bos)) bos = json_array_get(bos, 0);
  if (bos && !token_id(bos, &c->bos_token_id))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"bos_token_id\" is not a token id", fn);
  json_t *eos = field(r, "eos_token_id");
  c->n_eos = 0;
  c->eos_is_list = json_is_array(eos);
  if (c->eos_is_list) {
    for (size_t i = 0; i < json_array_size(eos); i++) {
      int32_t id;
      if (!token_id(json_array_get(eos, i), &id))
        return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"eos_token_id\"[%zu] is not a token id", fn,
                    i);
      if (c->n_eos < DTR_CONFIG_MAX_EOS) c->eos_token_id[c->n_eos++] = id;
    }
  } else if (eos) {
    if (!token_id(eos, &c->eos_token_id[0]))
      return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"eos_token_id\" is not a token id", fn);
    c->n_eos = 1;
  }
  json_t *dt = field(r, "torch_dtype");
  if (!dt) dt = field(r, "dtype");
  if (dt) {
    const char *d = json_string_value(dt);
    if (!d || strlen(d) >= sizeof c->torch_dtype)
      return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"torch_dtype\" is not a dtype name", fn);
    strcpy(c->torch_dtype, d);
  }

  /* hybrid extension */
  dtr_model_config_default_linear(c);
  json_t *lt = field(r, "dtr_layer_types");
  if (lt) {
    if (!json_is_array(lt))
      return fail(err, errlen, DTR_ERR_FORMAT, "%s: \"dtr_layer_types\" is not a list", fn);
    if (json_array_size(lt) != c->num_hidden_layers)
      return fail(err, errlen, DTR_ERR_FORMAT,
                  "%s: dtr_layer_types has %zu entries but num_hidden_layers is %u", fn,
                  json_array_size(lt), c->num_hidden_layers);
    if (c->num_hidden_layers > DTR_CONFIG_MAX_LAYERS)
      return fail(err, errlen, DTR_ERR_UNSUPPORTED, "%s: %u layers exceed dtr's limit of %d", fn,
                  c->num_hidden_layers, DTR_CONFIG_MAX_LAYERS);
    for (size_t i = 0; i < json_array_size(lt); i++) {
      const char *name = json_string_value(json_array_get(lt, i));
      int t = dtr_layer_type_parse(name);
      if (t < 0)
        return fail(err, errlen, DTR_ERR_FORMAT,
                    "%s: layer %zu has unknown layer type '%s' (expected full_attention, gla, gdn "
                    "or jet)",
                    fn, i, name ? name : "(not a string)");
      c->layer_types[i] = (uint8_t)t;
    }
    c->hybrid = 1;
  }
  json_t *lin = field(r, "dtr_linear");
  if (lin && (s = parse_linear(lin, c, fn, err, errlen))) return s;
  return dtr_model_config_validate(c, err, errlen);
}

dtr_status dtr_model_config_parse(const char *json, size_t len, const char *name,
                                  dtr_model_config *cfg, char *err, size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  const char *fn = name ? name : "config";
  snprintf(cfg->source, sizeof cfg->source, "%s", fn);
  json_error_t je;
  json_t *r = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!r)
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: not valid JSON (%s at line %d column %d)", fn,
                je.text, je.line, je.column);
  dtr_status s = parse_root(r, fn, cfg, err, errlen);
  json_decref(r);
  return s;
}

dtr_status dtr_model_config_load(const char *path, dtr_model_config *cfg, char *err,
                                 size_t errlen) {
  memset(cfg, 0, sizeof *cfg);
  if (!path) return fail(err, errlen, DTR_ERR_INVALID, "(null): no path given");
  struct stat sb;
  char *p = NULL;
  if (!stat(path, &sb) && S_ISDIR(sb.st_mode)) {
    size_t n = strlen(path);
    if ((p = malloc(n + 13))) snprintf(p, n + 13, "%s/config.json", path);
  } else {
    p = strdup(path);
  }
  if (!p) return fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
  FILE *f = fopen(p, "rb");
  if (!f) {
    dtr_status s = fail(err, errlen, DTR_ERR_IO, "%s: cannot open: %s", p, strerror(errno));
    free(p);
    return s;
  }
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      char *nb = realloc(buf, cap = cap ? 2 * cap : 1 << 16);
      if (!nb) {
        free(buf);
        fclose(f);
        dtr_status s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", p);
        free(p);
        return s;
      }
      buf = nb;
    }
    size_t k = fread(buf + n, 1, cap - n, f);
    n += k;
    if (k == 0) break;
  }
  int rerr = ferror(f);
  fclose(f);
  dtr_status s = rerr ? fail(err, errlen, DTR_ERR_IO, "%s: read error", p)
                      : dtr_model_config_parse(buf, n, p, cfg, err, errlen);
  free(buf);
  free(p);
  return s;
}

dtr_status dtr_model_config_validate(const dtr_model_config *c, char *err, size_t errlen) {
  const char *fn = src(c);
  if ((unsigned)c->architecture > DTR_ARCH_QWEN3)
    return fail(err, errlen, DTR_ERR_INVALID, "%s: architecture %d is not one of dtr's", fn,
                (int)c->architecture);
  static const char *const req[] = {
      "hidden_size",         "intermediate_size", "num_hidden_layers", "num_attention_heads",
      "num_key_value_heads", "head_dim",          "vocab_size"};
  const uint32_t val[] = {c->hidden_size,         c->intermediate_size,   c->num_hidden_layers,
                          c->num_attention_heads, c->num_key_value_heads, c->head_dim,
                          c->vocab_size};
  for (int i = 0; i < 7; i++)
    if (!val[i]) return fail(err, errlen, DTR_ERR_FORMAT, "%s: %s is 0", fn, req[i]);
  if (c->num_hidden_layers > DTR_CONFIG_MAX_LAYERS)
    return fail(err, errlen, DTR_ERR_UNSUPPORTED, "%s: %u layers exceed dtr's limit of %d", fn,
                c->num_hidden_layers, DTR_CONFIG_MAX_LAYERS);
  if (c->num_attention_heads % c->num_key_value_heads)
    return fail(err, errlen, DTR_ERR_FORMAT,
                "%s: num_key_value_heads %u does not divide num_attention_heads %u", fn,
                c->num_key_value_heads, c->num_attention_heads);
  if (!(c->rms_norm_eps > 0) || !(c->rope_theta > 0))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: rms_norm_eps and rope_theta must be positive",
                fn);
  if (c->rope_scaling.type == DTR_ROPE_SCALING_LLAMA3) {
    const dtr_rope_scaling_config *r = &c->rope_scaling;
    if (!(r->factor > 0) || !(r->low_freq_factor > 0) ||
        !(r->high_freq_factor > r->low_freq_factor) || !r->original_max_position_embeddings)
      return fail(err, errlen, DTR_ERR_FORMAT,
                  "%s: llama3 rope_scaling needs factor > 0, 0 < low_freq_factor < "
                  "high_freq_factor and original_max_position_embeddings > 0",
                  fn);
  } else if (c->rope_scaling.type != DTR_ROPE_SCALING_NONE) {
    return fail(err, errlen, DTR_ERR_UNSUPPORTED, "%s: unknown rope scaling type", fn);
  }
  if (c->n_eos > DTR_CONFIG_MAX_EOS)
    return fail(err, errlen, DTR_ERR_INVALID, "%s: more than %d eos ids", fn, DTR_CONFIG_MAX_EOS);
  int used[4] = {0};
  for (uint32_t i = 0; i < c->num_hidden_layers; i++) {
    if (c->layer_types[i] > DTR_LAYER_JET)
      return fail(err, errlen, DTR_ERR_FORMAT, "%s: layer %u has unknown layer type %u", fn, i,
                  c->layer_types[i]);
    used[c->layer_types[i]] = 1;
  }
  for (int t = 1; t < 4; t++) {
    if (!used[t]) continue;
    const dtr_linear_config *l = &c->linear[t - 1];
    const char *k = layer_names[t];
    if (!l->num_heads || !l->head_dim || !l->chunk || !(l->norm_eps > 0))
      return fail(err, errlen, DTR_ERR_FORMAT,
                  "%s: dtr_linear.%s needs positive num_heads, head_dim, chunk and norm_eps", fn,
                  k);
    if (t == DTR_LAYER_GLA && (!l->gla_gate_rank || !(l->gla_normalizer > 0)))
      return fail(err, errlen, DTR_ERR_FORMAT,
                  "%s: dtr_linear.gla needs positive gla_gate_rank and gla_normalizer", fn);
    if (t != DTR_LAYER_GLA && l->conv_size != 4)
      return fail(err, errlen, DTR_ERR_UNSUPPORTED,
                  "%s: dtr_linear.%s conv_size %u is not supported (only 4)", fn, k, l->conv_size);
    if (t == DTR_LAYER_JET && ((uint64_t)l->num_heads * l->head_dim) % 8)
      return fail(err, errlen, DTR_ERR_FORMAT,
                  "%s: dtr_linear.jet num_heads*head_dim = %llu is not a multiple of 8", fn,
                  (unsigned long long)l->num_heads * l->head_dim);
  }
  return DTR_OK;
}

/* ---- saving ------------------------------------------------------------------ */

/* The fewest significant digits (at least 15, which keeps 500000.0 out of
 * exponent form) with which every real of the config reads back exactly. */
static int digits_for(double x, int p) {
  char s[64];
  for (; p < 17; p++) {
    snprintf(s, sizeof s, "%.*g", p, x);
    if (strtod(s, NULL) == x) break;
  }
  return p;
}

dtr_status dtr_model_config_save(const dtr_model_config *c, const char *path, char *err,
                                 size_t errlen) {
  if (!path) return fail(err, errlen, DTR_ERR_INVALID, "(null): no path given");
  dtr_status s = dtr_model_config_validate(c, err, errlen);
  if (s) return s;
  int llama = c->architecture == DTR_ARCH_LLAMA, qwen2 = c->architecture == DTR_ARCH_QWEN2;
  int prec = 15;
  json_t *r = json_object();
  int bad = !r;
#define SET(k, v) (bad = bad || json_object_set_new(r, k, v))
#define REAL(x) (prec = digits_for(x, prec), json_real(x))
  SET("architectures", json_pack("[s]", dtr_arch_name(c->architecture)));
  SET("model_type", json_string(dtr_arch_model_type(c->architecture)));
  SET("hidden_size", json_integer(c->hidden_size));
  SET("intermediate_size", json_integer(c->intermediate_size));
  SET("num_hidden_layers", json_integer(c->num_hidden_layers));
  SET("num_attention_heads", json_integer(c->num_attention_heads));
  SET("num_key_value_heads", json_integer(c->num_key_value_heads));
  SET("head_dim", json_integer(c->head_dim));
  SET("vocab_size", json_integer(c->vocab_size));
  SET("max_position_embeddings", json_integer(c->max_position_embeddings));
  SET("rms_norm_eps", REAL(c->rms_norm_eps));
  SET("rope_theta", REAL(c->rope_theta));
  if (c->rope_scaling.type == DTR_ROPE_SCALING_LLAMA3) {
    const dtr_rope_scaling_config *rs = &c->rope_scaling;
    json_t *o = json_object();
    bad = bad || !o || json_object_set_new(o, "rope_type", json_string("llama3")) ||
          json_object_set_new(o, "factor", REAL(rs->factor)) ||
          json_object_set_new(o, "low_freq_factor", REAL(rs->low_freq_factor)) ||
          json_object_set_new(o, "high_freq_factor", REAL(rs->high_freq_factor)) ||
          json_object_set_new(o, "original_max_position_embeddings",
                              json_integer(rs->original_max_position_embeddings));
    SET("rope_scaling", o);
  } else {
    SET("rope_scaling", json_null());
  }
  if (!qwen2) SET("attention_bias", json_boolean(c->attention_bias));
  SET("attention_dropout", json_real(0.0));
  SET("hidden_act", json_string("silu"));
  if (llama)
    SET("mlp_bias", json_false());
  else
    SET("use_sliding_window", json_false());
  SET("tie_word_embeddings", json_boolean(c->tie_word_embeddings));
  SET("bos_token_id", c->bos_token_id >= 0 ? json_integer(c->bos_token_id) : json_null());
  if (c->n_eos == 1 && !c->eos_is_list) {
    SET("eos_token_id", json_integer(c->eos_token_id[0]));
  } else if (c->n_eos) {
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < c->n_eos; i++)
      bad = bad || json_array_append_new(a, json_integer(c->eos_token_id[i]));
    SET("eos_token_id", a);
  } else {
    SET("eos_token_id", json_null());
  }
  if (c->torch_dtype[0]) SET("torch_dtype", json_string(c->torch_dtype));
  SET("use_cache", json_true());
  if (c->hybrid) {
    json_t *lt = json_array(), *lin = json_object();
    for (uint32_t i = 0; lt && i < c->num_hidden_layers; i++)
      bad = bad || json_array_append_new(lt, json_string(layer_names[c->layer_types[i]]));
    for (int t = 1; lin && t < 4; t++) {
      const dtr_linear_config *l = &c->linear[t - 1];
      json_t *o = json_object();
      bad = bad || !o || json_object_set_new(o, "num_heads", json_integer(l->num_heads)) ||
            json_object_set_new(o, "head_dim", json_integer(l->head_dim)) ||
            json_object_set_new(o, "norm_eps", REAL(l->norm_eps)) ||
            json_object_set_new(o, "chunk", json_integer(l->chunk));
      if (t == DTR_LAYER_GLA)
        bad = bad || json_object_set_new(o, "gla_gate_rank", json_integer(l->gla_gate_rank)) ||
              json_object_set_new(o, "gla_normalizer", REAL(l->gla_normalizer));
      else
        bad = bad || json_object_set_new(o, "conv_size", json_integer(l->conv_size));
      bad = bad || json_object_set_new(lin, layer_names[t], o);
    }
    SET("dtr_layer_types", lt);
    SET("dtr_linear", lin);
  }
#undef SET
#undef REAL
  char *js =
      bad ? NULL : json_dumps(r, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(prec));
  json_decref(r);
  if (!js) return fail(err, errlen, DTR_ERR_OOM, "%s: out of memory building the JSON", path);
  size_t n = strlen(js), pl = strlen(path);
  js[n] = '\n'; /* the NUL becomes the closing newline */
  char *tmp = malloc(pl + 5);
  if (!tmp) {
    free(js);
    return fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
  }
  snprintf(tmp, pl + 5, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int ok = fd >= 0, e = errno;
  const char *p = js;
  size_t left = n + 1;
  while (ok && left) {
    ssize_t k = write(fd, p, left);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      ok = 0;
      e = errno;
    } else {
      p += k;
      left -= (size_t)k;
    }
  }
  if (ok && fsync(fd)) ok = 0, e = errno;
  if (fd >= 0 && close(fd) && ok) ok = 0, e = errno;
  if (ok && rename(tmp, path)) ok = 0, e = errno;
  if (!ok) {
    if (fd >= 0) unlink(tmp);
    s = fail(err, errlen, DTR_ERR_IO, "%s: cannot write: %s", path, strerror(e));
  }
  free(tmp);
  free(js);
  return s;
}

/* ---- tensor checks ----------------------------------------------------------- */

uint32_t dtr_linear_tensors(dtr_layer_type t, const dtr_linear_config *l, uint32_t hidden,
                            const char **names, uint64_t (*shapes)[2], uint32_t max) {
  if (t == DTR_LAYER_FULL_ATTENTION || (unsigned)t > DTR_LAYER_JET) return 0;
  uint64_t H = l->num_heads, D = l->head_dim, HD = H * D, h = hidden, C = l->conv_size;
  uint32_t n = 0;
#define ADD(nm, a, b)                                                                              \
  do {                                                                                             \
    if (n < max) {                                                                                 \
      names[n] = nm;                                                                               \
      shapes[n][0] = a;                                                                            \
      shapes[n][1] = b;                                                                            \
    }                                                                                              \
    n++;                                                                                           \
  } while (0)
  /* the order and shapes of host/blocks.c build_table; b = 0 marks a vector */
  ADD("q_proj.weight", HD, h);
  ADD("k_proj.weight", HD, h);
  ADD("v_proj.weight", HD, h);
  if (t == DTR_LAYER_GLA) {
    ADD("gk_proj.0.weight", l->gla_gate_rank, h);
    ADD("gk_proj.1.weight", HD, l->gla_gate_rank);
    ADD("gk_proj.1.bias", HD, 0);
  } else {
    ADD("a_proj.weight", H, h);
    ADD("b_proj.weight", H, h);
    ADD("A_log", H, 0);
    ADD("dt_bias", H, 0);
    if (t == DTR_LAYER_GDN) {
      ADD("q_conv1d.weight", HD, C);
      ADD("k_conv1d.weight", HD, C);
      ADD("v_conv1d.weight", HD, C);
    } else {
      ADD("dynamic_conv.w1.weight", HD / 8, h);
      ADD("dynamic_conv.w2.weight", C * HD, HD / 8);
      ADD("dynamic_conv.w2.bias", C * HD, 0);
    }
  }
  ADD("g_proj.weight", HD, h);
  ADD("o_norm.weight", D, 0);
  ADD("o_proj.weight", h, HD);
#undef ADD
  return n;
}

static dtr_dtype torch_to_dtype(const char *s) {
  if (!strcmp(s, "float32")) return DTR_DTYPE_F32;
  if (!strcmp(s, "float16")) return DTR_DTYPE_F16;
  if (!strcmp(s, "bfloat16")) return DTR_DTYPE_BF16;
  return DTR_DTYPE_UNKNOWN;
}

static void fmt_shape(char *s, size_t n, const uint64_t *d, uint32_t nd) {
  size_t k = (size_t)snprintf(s, n, "[");
  for (uint32_t i = 0; i < nd && k < n; i++)
    k += (size_t)snprintf(s + k, n - k, "%s%llu", i ? ", " : "", (unsigned long long)d[i]);
  if (k < n) snprintf(s + k, n - k, "]");
}

/* One expected tensor: rows x cols (cols 0: a vector of rows). */
static dtr_status expect(const dtr_model_config *c, const dtr_safetensors *st, const char *name,
                         int required, uint64_t rows, uint64_t cols, unsigned flags, char *err,
                         size_t errlen) {
  uint64_t want[2] = {rows, cols};
  uint32_t wnd = cols ? 2 : 1;
  char ws[64], gs[160];
  fmt_shape(ws, sizeof ws, want, wnd);
  const dtr_st_tensor *t = dtr_safetensors_find(st, name);
  if (!t) {
    if (!required) return DTR_OK;
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: missing tensor '%s' (shape %s from %s)",
                dtr_safetensors_path(st), name, ws, src(c));
  }
  if (t->ndim != wnd || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
    fmt_shape(gs, sizeof gs, t->shape, t->ndim);
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: tensor '%s' has shape %s but %s implies %s",
                t->file, name, gs, src(c), ws);
  }
  if (t->dtype != DTR_DTYPE_F32 && t->dtype != DTR_DTYPE_F16 && t->dtype != DTR_DTYPE_BF16)
    return fail(err, errlen, DTR_ERR_UNSUPPORTED,
                "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 are supported", t->file, name,
                t->dtype_name);
  if (flags & DTR_CHECK_STRICT_DTYPE) {
    dtr_dtype want_dt = torch_to_dtype(c->torch_dtype);
    if (t->dtype != want_dt)
      return fail(err, errlen, DTR_ERR_FORMAT,
                  "%s: tensor '%s' has dtype %s but %s says torch_dtype '%s'", t->file, name,
                  t->dtype_name, src(c), c->torch_dtype);
  }
  return DTR_OK;
}

dtr_status dtr_model_config_check_tensors(const dtr_model_config *c, const dtr_safetensors *st,
                                          unsigned flags, char *err, size_t errlen) {
  dtr_status s = dtr_model_config_validate(c, err, errlen);
  if (s) return s;
  uint64_t h = c->hidden_size, I = c->intermediate_size, V = c->vocab_size, D = c->head_dim;
  uint64_t QD = c->num_attention_heads * D, KD = c->num_key_value_heads * D;
  char nm[256];
#define EXPECT(req, a, b, ...)                                                                     \
  do {                                                                                             \
    snprintf(nm, sizeof nm, __VA_ARGS__);                                                          \
    if ((s = expect(c, st, nm, req, a, b, flags, err, errlen))) return s;                          \
  } while (0)
  EXPECT(1, V, h, "model.embed_tokens.weight");
  for (uint32_t L = 0; L < c->num_hidden_layers; L++) {
    dtr_layer_type lt = (dtr_layer_type)c->layer_types[L];
    int full = lt == DTR_LAYER_FULL_ATTENTION;
    const char *pre = "model.layers";
    EXPECT(1, h, 0, "%s.%u.input_layernorm.weight", pre, L);
    EXPECT(full, QD, h, "%s.%u.self_attn.q_proj.weight", pre, L);
    EXPECT(full, KD, h, "%s.%u.self_attn.k_proj.weight", pre, L);
    EXPECT(full, KD, h, "%s.%u.self_attn.v_proj.weight", pre, L);
    EXPECT(full, h, QD, "%s.%u.self_attn.o_proj.weight", pre, L);
    if (c->attention_bias) {
      EXPECT(full, QD, 0, "%s.%u.self_attn.q_proj.bias", pre, L);
      EXPECT(full, KD, 0, "%s.%u.self_attn.k_proj.bias", pre, L);
      EXPECT(full, KD, 0, "%s.%u.self_attn.v_proj.bias", pre, L);
    }
    if (c->o_proj_bias) EXPECT(full, h, 0, "%s.%u.self_attn.o_proj.bias", pre, L);
    if (c->qk_norm) {
      EXPECT(full, D, 0, "%s.%u.self_attn.q_norm.weight", pre, L);
      EXPECT(full, D, 0, "%s.%u.self_attn.k_norm.weight", pre, L);
    }
    if (!full) {
      const char *names[32];
      uint64_t shapes[32][2];
      uint32_t n = dtr_linear_tensors(lt, &c->linear[lt - 1], c->hidden_size, names, shapes, 32);
      for (uint32_t i = 0; i < n; i++)
        EXPECT(1, shapes[i][0], shapes[i][1], "%s.%u.linear_attn.%s", pre, L, names[i]);
    }
    EXPECT(1, h, 0, "%s.%u.post_attention_layernorm.weight", pre, L);
    EXPECT(1, I, h, "%s.%u.mlp.gate_proj.weight", pre, L);
    EXPECT(1, I, h, "%s.%u.mlp.up_proj.weight", pre, L);
    EXPECT(1, h, I, "%s.%u.mlp.down_proj.weight", pre, L);
  }
  EXPECT(1, h, 0, "model.norm.weight");
  EXPECT(!c->tie_word_embeddings, V, h, "lm_head.weight");
#undef EXPECT
  return DTR_OK;
}
