/* ref_model.h — double-precision CPU reference of host/model.c's full-attention
 * transformer (Llama / Qwen2 / Qwen3 with GQA, NeoX RoPE from the fp32
 * inv_freq of dtr_rope_inv_freq, SwiGLU, tied or untied head), one sequence at
 * a time with a causal mask. Weights come from a callback by checkpoint name. */
#ifndef DTR_REF_MODEL_H
#define DTR_REF_MODEL_H
#include <stdint.h>

#include "config.h"

/* Returns the fp32 values of tensor name (NULL when absent: a missing bias). */
typedef const float *(*ref_model_weight_fn)(void *ud, const char *name);

/* logits (T, V) of the token ids (T) at positions 0..T-1. Layers must all be
 * full attention. */
void ref_model_forward(double *logits, const dtr_model_config *cfg, ref_model_weight_fn w,
                       void *ud, const int32_t *ids, uint32_t T);
#endif
