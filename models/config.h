/* config.h — a model's config.json: reading, validating and writing the
 * Hugging Face configs of LlamaForCausalLM, Qwen2ForCausalLM and
 * Qwen3ForCausalLM, dtr's hybrid extension of them, and checking a loaded
 * checkpoint's tensors (names, shapes, dtypes) against a config.
 *
 * Hugging Face fields read (defaults are those of transformers' config classes):
 *   architectures[0] (or model_type when absent), hidden_size, intermediate_size,
 *   num_hidden_layers, num_attention_heads, vocab_size (required);
 *   num_key_value_heads (= num_attention_heads), head_dim (hidden/heads; Qwen3's
 *   class default is 128), max_position_embeddings (Llama 2048, Qwen 32768),
 *   rms_norm_eps (1e-6), rope_theta (10000), rope_scaling (null, or
 *   {"rope_type"|"type": "llama3", factor, low_freq_factor, high_freq_factor,
 *   original_max_position_embeddings}; "default" means none; other types are
 *   unsupported), attention_bias (Llama/Qwen3: false; biases q,k,v and o; Qwen2
 *   always has q,k,v biases and no o bias), tie_word_embeddings (false),
 *   bos_token_id / eos_token_id (int, list or null), torch_dtype (or "dtype").
 *   hidden_act must be "silu"; mlp_bias and use_sliding_window must be false.
 *
 * dtr's hybrid extension (ignored by Hugging Face loaders):
 *   "dtr_layer_types": ["full_attention" | "gla" | "gdn" | "jet", ...]
 *       one entry per layer (length num_hidden_layers). A layer other than
 *       full_attention holds a linear-attention student, whose tensors are
 *       model.layers.N.linear_attn.<param> (see host/blocks.c); its self_attn
 *       tensors may be absent.
 *   "dtr_linear": {"gla": {...}, "gdn": {...}, "jet": {...}}
 *       per-kind hyper-parameters; every key optional, unknown keys refused:
 *       "num_heads"      (num_attention_heads)   all kinds
 *       "head_dim"       (the config's head_dim)  all kinds
 *       "norm_eps"       (1e-5)  gated RMSNorm eps, all kinds
 *       "chunk"          (64)    chunk length of the chunked kernels, all kinds
 *       "gla_gate_rank"  (16)    gla only: rank of gk_proj
 *       "gla_normalizer" (16)    gla only: gate logit normalizer
 *       "conv_size"      (4)     gdn and jet only: short-convolution taps
 *                                (only 4 is supported)
 *   A jet block needs num_heads*head_dim divisible by 8 (its generator's width).
 *
 * Errors (one line naming the file into err): DTR_ERR_IO (cannot read/write),
 * DTR_ERR_FORMAT (not JSON, a missing or mistyped required field, impossible
 * sizes, a bad layer list), DTR_ERR_UNSUPPORTED (an architecture, rope scaling,
 * activation or option dtr does not implement). No device is touched here. */
#ifndef DTR_CONFIG_H
#define DTR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "dtr_runtime.h" /* dtr_status only */
#include "safetensors.h"

typedef enum dtr_arch { DTR_ARCH_LLAMA = 0, DTR_ARCH_QWEN2, DTR_ARCH_QWEN3 } dtr_arch;
const char *dtr_arch_name(dtr_arch a);       /* "LlamaForCausalLM", ... */
const char *dtr_arch_model_type(dtr_arch a); /* "llama", "qwen2", "qwen3" */

typedef enum dtr_layer_type {
  DTR_LAYER_FULL_ATTENTION = 0,
  DTR_LAYER_GLA,
  DTR_LAYER_GDN,
  DTR_LAYER_JET,
} dtr_layer_type;
const char *dtr_layer_type_name(dtr_layer_type t); /* "full_attention", "gla", ... */
int dtr_layer_type_parse(const char *s);           /* -1 when unknown */

typedef enum dtr_rope_scaling_type {
  DTR_ROPE_SCALING_NONE = 0,
  DTR_ROPE_SCALING_LLAMA3
} dtr_rope_scaling_type;

typedef struct dtr_rope_scaling_config {
  dtr_rope_scaling_type type;
  double factor, low_freq_factor, high_freq_factor;
  uint32_t original_max_position_embeddings;
} dtr_rope_scaling_config;

/* Hyper-parameters of one kind of linear-attention layer (see "dtr_linear"). */
typedef struct dtr_linear_config {
  uint32_t num_heads, head_dim;
  double norm_eps;
  uint32_t chunk;
  uint32_t gla_gate_rank;
  double gla_normalizer;
  uint32_t conv_size;
} dtr_linear_config;

#define DTR_CONFIG_MAX_LAYERS 512
#define DTR_CONFIG_MAX_EOS 4

typedef struct dtr_model_config {
  dtr_arch architecture;
  uint32_t hidden_size, intermediate_size, num_hidden_layers;
  uint32_t num_attention_heads, num_key_value_heads, head_dim;
  uint32_t vocab_size, max_position_embeddings;
  double rms_norm_eps, rope_theta;
  dtr_rope_scaling_config rope_scaling;
  int attention_bias; /* q_proj, k_proj, v_proj have biases */
  int o_proj_bias;    /* o_proj has a bias (Llama/Qwen3 attention_bias) */
  int qk_norm;        /* per-head RMSNorm of q and k (Qwen3) */
  int tie_word_embeddings;
  int32_t bos_token_id; /* -1 when absent or null */
  int32_t eos_token_id[DTR_CONFIG_MAX_EOS];
  uint32_t n_eos;       /* how many of eos_token_id are set (0: none) */
  int eos_is_list;      /* config.json gave a list (kept when saving) */
  char torch_dtype[16]; /* "bfloat16", "float32", ... or "" */
  /* hybrid extension */
  int hybrid;                                 /* dtr_layer_types present */
  uint8_t layer_types[DTR_CONFIG_MAX_LAYERS]; /* dtr_layer_type per layer */
  dtr_linear_config linear[3];                /* indexed by dtr_layer_type - 1 (gla, gdn, jet) */
  char source[512]; /* the file it was read from, for messages ("" if built) */
} dtr_model_config;

/* Reads and validates path (a config.json, or a directory holding one). */
dtr_status dtr_model_config_load(const char *path, dtr_model_config *cfg, char *err, size_t errlen);
/* The same from JSON text; name stands for the file in messages. */
dtr_status dtr_model_config_parse(const char *json, size_t len, const char *name,
                                  dtr_model_config *cfg, char *err, size_t errlen);
/* Validates a config built or edited in code (the checks load applies). */
dtr_status dtr_model_config_validate(const dtr_model_config *cfg, char *err, size_t errlen);
/* Defaults for the linear-attention hyper-parameters of every kind, derived
 * from the attention shape (heads, head_dim) of cfg. */
void dtr_model_config_default_linear(dtr_model_config *cfg);
/* Writes cfg as a config.json at path atomically (path.tmp, fsync, rename):
 * architectures, model_type, every field above, hidden_act "silu", and the
 * dtr_ fields when cfg->hybrid. */
dtr_status dtr_model_config_save(const dtr_model_config *cfg, const char *path, char *err,
                                 size_t errlen);

/* Check flags. */
#define DTR_CHECK_STRICT_DTYPE 1u /* every tensor's dtype must match torch_dtype */

/* Checks that st holds every tensor cfg implies with the expected shape and a
 * dtype dtr can read (F32, F16, BF16; with DTR_CHECK_STRICT_DTYPE the one
 * torch_dtype names): embeddings, per layer the norms, the attention
 * (full_attention: self_attn.*; other kinds: linear_attn.*, with self_attn.*
 * optional but shape-checked when present) and the MLP, the final norm, and
 * lm_head unless tied. Fails on the first problem, naming the tensor, its file
 * and both shapes (DTR_ERR_FORMAT; DTR_ERR_UNSUPPORTED for a dtype). Tensors
 * cfg does not imply are ignored. */
dtr_status dtr_model_config_check_tensors(const dtr_model_config *cfg, const dtr_safetensors *st,
                                          unsigned flags, char *err, size_t errlen);

/* The tensors of one student layer: fills up to max entries of names (the
 * suffix after "model.layers.N.linear_attn.") and shapes (2 dims; dim1 = 0
 * for a vector) for kind t with hyper-parameters lc at width hidden; returns
 * the count (0 for full_attention). */
uint32_t dtr_linear_tensors(dtr_layer_type t, const dtr_linear_config *lc, uint32_t hidden,
                            const char **names, uint64_t (*shapes)[2], uint32_t max);

#endif
