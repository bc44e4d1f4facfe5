/* model.h — a decoder-only transformer on the runtime: Llama, Qwen2 (q/k/v
 * biases), Qwen3 (per-head q/k RMSNorm) with GQA, NeoX RoPE (theta, llama3
 * scaling), SwiGLU MLP, tied or untied lm_head; each layer is either full
 * attention or a linear-attention student block (host/blocks.h), as a dtr hybrid
 * config.json says. Owns: loading a checkpoint directory (config.json +
 * safetensors, every weight uploaded as fp32), random creation, saving, layer
 * replacement, and inference sessions (KV cache + block decode states, batched
 * prefill of prompts of different lengths, one-token decode steps, one submit
 * per step) plus seeded sampling.
 *
 * Limits: a storage binding sees at most maxStorageBufferRange bytes (128 MiB on
 * lavapipe). The embedding table and lm_head are split into row chunks that fit
 * (the embedding sums per-chunk lookups, the head runs one matmul per chunk);
 * any other tensor that does not fit fails to load with a message saying so.
 * DTR_MODEL_MAX_BINDING=bytes lowers the limit for those two tables (tests
 * exercise the split with it). */
#ifndef DTR_MODEL_H
#define DTR_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "config.h"
#include "dtr_runtime.h"

typedef struct dtr_model dtr_model;

/* max_tokens: the most packed tokens one forward (prefill) may hold; it sizes
 * the student blocks' workspaces (0: 512). */
/* Loads dir (config.json + model.safetensors or a sharded index). On failure
 * returns NULL, *st (may be NULL) and one line naming the file in err. */
dtr_model *dtr_model_load(dtr_ctx *ctx, const char *dir, uint32_t max_tokens, dtr_status *st,
                          char *err, size_t errlen);
/* A randomly initialised model of cfg (validated): weights N(0, 0.02), biases 0,
 * norm weights 1, student blocks as dtr_block_create initialises them. */
dtr_model *dtr_model_create(dtr_ctx *ctx, const dtr_model_config *cfg, uint32_t max_tokens,
                            uint64_t seed, dtr_status *st, char *err, size_t errlen);
void dtr_model_destroy(dtr_model *m); /* NULL is a no-op */
/* Writes dir/config.json (torch_dtype "float32") and dir/model.safetensors (F32)
 * into the existing directory dir. */
dtr_status dtr_model_save(dtr_model *m, const char *dir, char *err, size_t errlen);

const dtr_model_config *dtr_model_cfg(const dtr_model *m);
dtr_ctx *dtr_model_ctx(dtr_model *m);
uint32_t dtr_model_max_tokens(const dtr_model *m);
uint64_t dtr_model_param_count(const dtr_model *m);
/* The student block of layer L, NULL for a full-attention layer. */
dtr_block *dtr_model_block(dtr_model *m, uint32_t layer);

/* Host copies of one dense tensor by its checkpoint name (e.g.
 * "model.layers.0.self_attn.q_proj.weight"; students: "...linear_attn.<param>").
 * n must equal the tensor's element count. */
/* The i-th tensor (dense ones in checkpoint order, then student parameters):
 * its name into name (cap bytes) and element count; DTR_ERR_INVALID past the end. */
dtr_status dtr_model_tensor_at(dtr_model *m, uint32_t i, char *name, size_t cap, size_t *numel);
dtr_status dtr_model_get_tensor(dtr_model *m, const char *name, float *dst, size_t n);
dtr_status dtr_model_set_tensor(dtr_model *m, const char *name, const float *src, size_t n);

/* Replaces layer L's attention by blk (its config must match the model's width;
 * its workspace must hold the model's max_tokens) and takes ownership of blk,
 * also on failure. The layer's attention weights are freed; config.json gains
 * dtr_layer_types. */
dtr_status dtr_model_replace_layer(dtr_model *m, uint32_t layer, dtr_block *blk);
/* The same with a fresh block of kind (hyper-parameters from the config's
 * dtr_linear, defaults otherwise) initialised from layer L's q/k/v/o. */
dtr_status dtr_model_replace_layer_kind(dtr_model *m, uint32_t layer, dtr_block_kind kind,
                                        uint64_t seed);

/* A fresh student of kind for full-attention layer L (hyper-parameters as
 * dtr_model_replace_layer_kind chooses them), initialised from its q/k/v/o;
 * workspace for max_tokens packed tokens in max_seqs sequences (0: the
 * model's). The model keeps the layer. NULL with the ctx error on failure. */
dtr_block *dtr_model_new_student(dtr_model *m, uint32_t L, dtr_block_kind kind,
                                 uint32_t max_tokens, uint32_t max_seqs, uint64_t seed);
/* The block config a student of kind gets in this model. */
dtr_block_config dtr_model_block_config(const dtr_model *m, dtr_block_kind kind);
/* For the greedy search: routes full-attention layer L through blk (NULL: back
 * to its attention) while keeping the attention weights; *prev receives the
 * block that was routed before. The caller keeps ownership of every block and
 * must route NULL again before destroying one or the model. Sessions created
 * afterwards follow the routing. */
dtr_status dtr_model_try_student(dtr_model *m, uint32_t L, dtr_block *blk, dtr_block **prev);

/* ---- inference --------------------------------------------------------------- */

typedef struct dtr_session dtr_session;

/* A session of B sequences with a KV cache of kv_cap tokens each. */
dtr_session *dtr_session_create(dtr_model *m, uint32_t B, uint32_t kv_cap);
void dtr_session_destroy(dtr_session *s);
/* Forgets every sequence (lengths 0, states zeroed). */
dtr_status dtr_session_reset(dtr_session *s);
/* Bytes of KV cache + student decode states held. */
size_t dtr_session_cache_bytes(const dtr_session *s);
uint32_t dtr_session_len(const dtr_session *s, uint32_t b);
/* Benchmarks: pretend every sequence already holds len tokens (the cache content
 * is whatever is there; speed does not depend on it). */
dtr_status dtr_session_set_len(dtr_session *s, uint32_t len);

/* Prefill: the B prompts ids[b] of lens[b] >= 1 tokens (packed, sum <= the
 * model's max_tokens) on a reset session. logits receives (B, V) — each
 * sequence's last position — or with all, (sum lens, V) for every position in
 * packed order. logits may be NULL. */
dtr_status dtr_session_prefill(dtr_session *s, const int32_t *const *ids, const uint32_t *lens,
                               float *logits, int all);
/* Layer hooks, for distillation and the greedy search (which reuse the
 * residual stream of layers that did not change):
 *   from_layer > 0: the prefill starts at that layer from h_in (Ttot, hidden)
 *   host floats — the residual stream entering it — instead of embedding ids
 *   (ids are still needed for their count and their positions);
 *   stop_layer (0: all): only layers < stop_layer run; no final norm, no
 *   logits (pass NULL);
 *   before_layer(L): the residual stream entering layer L, for L in from_layer
 *   .. last run (and L = layers: after the last layer, before the final norm);
 *   after_mixer(L): layer L's token-mixer input (after the input norm) and its
 *   output (after o_proj, or the student's output), before the residual add.
 * Callbacks record work on the same device stream (copies, ops): the views
 * are only valid during the call. A session prefilled past layer 0 or stopped
 * early has no KV cache for the skipped layers and refuses to decode until
 * reset. NULL hooks: dtr_session_prefill. */
typedef struct dtr_layer_hooks {
  uint32_t from_layer, stop_layer;
  const float *h_in;
  dtr_status (*before_layer)(void *ud, uint32_t L, dtr_view resid, uint32_t Ttot);
  dtr_status (*after_mixer)(void *ud, uint32_t L, dtr_view x, dtr_view y, uint32_t Ttot);
  void *ud;
} dtr_layer_hooks;
dtr_status dtr_session_prefill_hooked(dtr_session *s, const int32_t *const *ids,
                                      const uint32_t *lens, float *logits, int all,
                                      const dtr_layer_hooks *hk);

/* One decode step: token ids[b] appended to every sequence; logits (B, V)
 * (may be NULL: nothing is downloaded, but the step is still submitted). */
dtr_status dtr_session_decode(dtr_session *s, const int32_t *ids, float *logits);

/* ---- sampling ------------------------------------------------------------------ */

/* Picks a token from logits (V): temperature <= 0 is greedy (argmax, lowest id
 * on ties); otherwise softmax(logits / temperature) restricted to the smallest
 * set of top tokens whose mass reaches top_p (top_p >= 1: all), drawn with the
 * xorshift state *rng (seed it non-zero). */
int32_t dtr_sample(const float *logits, uint32_t V, float temperature, float top_p,
                   uint64_t *rng);

#endif
