/* blocks.h — the linear-attention student blocks (GLA, Gated DeltaNet,
 * JetBlock) as whole layers: parameters (one allocation carved by a size table),
 * their initialisation (fresh, or from a teacher attention layer), forward and
 * backward over packed sequences, and the decode state of one-token steps.
 *
 * A block maps x (Ttot, hidden) — the teacher's post-input-norm hidden state —
 * to y (Ttot, hidden), the replacement of the teacher's attention output after
 * o_proj. The math is ../shared/spec/LINEAR_ATTENTION.md. */
#ifndef DTR_BLOCKS_H
#define DTR_BLOCKS_H

#include "dtr_linear.h"

typedef enum dtr_block_kind { DTR_BLOCK_GLA = 0, DTR_BLOCK_GDN, DTR_BLOCK_JET } dtr_block_kind;
const char *dtr_block_kind_name(dtr_block_kind k);
/* Parses "gla", "gdn", "jet"; returns -1 for anything else. */
int dtr_block_kind_parse(const char *s);

typedef struct dtr_block_config {
  dtr_block_kind kind;
  uint32_t hidden;    /* model width */
  uint32_t heads;     /* H = the teacher's query heads */
  uint32_t head_dim;  /* K = V = hidden / heads for a student of a teacher */
  float norm_eps;     /* gated RMSNorm eps (1e-5) */
  uint32_t gla_gate_rank;   /* GLA gk low rank (16) */
  float gla_normalizer;     /* GLA gate logit normalizer (16) */
  uint32_t chunk;     /* chunk size of the chunked kernels (64) */
  uint32_t state_f16; /* decode states hold S as packed fp16 (half the memory
                         and traffic; the math stays fp32). Default: 1 when the
                         environment has DTR_STATE_F16=1, else 0 */
  uint32_t io_f16;    /* a forward keeps q, k, v for its backward as packed fp16
                         (dtr_lin_desc.io_f16): those three slots take half the
                         bytes (dtr_block_act_bytes; at least a decode step's fp32
                         q, k, v, which decode writes there, so a block made for
                         max_tokens <= 2 max_seqs saves nothing), and the chunked
                         kernels of both passes read the same rounded values. Fixed at
                         creation. Default: 1 when the environment has
                         DTR_IO_F16=1, else 0 */
} dtr_block_config;

/* Defaults for a kind at a given width and head count. */
dtr_block_config dtr_block_config_default(dtr_block_kind kind, uint32_t hidden, uint32_t heads);

/* One parameter tensor of a block: name (Hugging Face style, e.g. "q_proj.weight"),
 * shape (rows, cols; cols = 1 for vectors), and byte offset in the parameter
 * buffer. */
typedef struct dtr_param_info {
  const char *name;
  uint32_t rows, cols;
  size_t offset;
} dtr_param_info;

typedef struct dtr_block dtr_block;

/* Creates a block with room for max_tokens packed tokens and max_seqs sequences
 * per forward; parameters are initialised as the spec says from seed. */
dtr_block *dtr_block_create(dtr_ctx *ctx, const dtr_block_config *cfg, uint32_t max_tokens,
                            uint32_t max_seqs, uint64_t seed);
void dtr_block_destroy(dtr_block *b); /* NULL is a no-op */
const dtr_block_config *dtr_block_cfg(const dtr_block *b);

/* The parameter table and the device buffers of parameters and gradients. */
uint32_t dtr_block_params(const dtr_block *b, const dtr_param_info **table);
dtr_buf *dtr_block_param_buf(dtr_block *b);
dtr_buf *dtr_block_grad_buf(dtr_block *b);
size_t dtr_block_param_bytes(const dtr_block *b);
uint64_t dtr_block_param_count(const dtr_block *b); /* floats that are parameters */
/* Device bytes of the activation slots: what a forward keeps for its backward,
 * sized for max_tokens at creation (the gradient slots of the backward and the
 * chunk kernel's workspace are not counted). */
size_t dtr_block_act_bytes(const dtr_block *b);
/* Host copies: get/set all parameters (dtr_block_param_bytes bytes, table layout). */
dtr_status dtr_block_get_params(dtr_block *b, float *dst);
dtr_status dtr_block_set_params(dtr_block *b, const float *src);
/* Sets one named parameter (rows*cols floats). */
dtr_status dtr_block_set_param(dtr_block *b, const char *name, const float *src);

/* Initialise from a teacher attention layer: q_proj (Hq*D, hidden) and o_proj
 * (hidden, Hq*D) copied; k_proj, v_proj (Hkv*D, hidden) have each KV head
 * repeated Hq/Hkv times. Other parameters keep their fresh initialisation. */
dtr_status dtr_block_init_from_teacher(dtr_block *b, const float *q_proj, const float *k_proj,
                                       const float *v_proj, const float *o_proj,
                                       uint32_t kv_heads);

/* Forward over B packed sequences (offsets (B+1) int32 on the device, Ttot
 * tokens): y (Ttot, hidden) from x (Ttot, hidden). Keeps what the backward needs
 * (x must stay unchanged until dtr_block_backward). */
dtr_status dtr_block_forward(dtr_block *b, dtr_view y, dtr_view x, dtr_view offsets,
                             uint32_t B, uint32_t Ttot);
/* Backward of the last forward: parameter gradients accumulate into the grad
 * buffer; dx (optional) is written. */
dtr_status dtr_block_backward(dtr_block *b, dtr_view dx, dtr_view dy);
/* Zeroes the gradient buffer (recorded). */
dtr_status dtr_block_zero_grad(dtr_block *b);

/* Switches the state format of decode states created from now on (fp16 when on;
 * see dtr_block_config.state_f16). */
void dtr_block_set_state_f16(dtr_block *b, int on);
/* Decode state for nseq sequences: the recurrent state (and conv caches). */
typedef struct dtr_block_state dtr_block_state;
dtr_block_state *dtr_block_state_create(dtr_block *b, uint32_t nseq);
void dtr_block_state_destroy(dtr_block *b, dtr_block_state *s);
size_t dtr_block_state_bytes(const dtr_block_state *s);
dtr_status dtr_block_state_reset(dtr_block *b, dtr_block_state *s);
/* Prefill: forward over the packed prompts (one sequence per state slot) that
 * also leaves each sequence's final state in s. */
dtr_status dtr_block_prefill(dtr_block *b, dtr_block_state *s, dtr_view y, dtr_view x,
                             dtr_view offsets, uint32_t B, uint32_t Ttot);
/* One token for each of the s's sequences: x, y (nseq, hidden). */
dtr_status dtr_block_decode(dtr_block *b, dtr_block_state *s, dtr_view y, dtr_view x);

#endif
