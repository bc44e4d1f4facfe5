/* train.h — training dtr's own small Llama teacher from scratch on the device.
 *
 * Owns: the training config (train.json), the training graph (as in llm.c: all
 * parameters in one buffer carved by a size table, gradients and the two AdamW
 * moments in buffers of the same layout, activations allocated once at create
 * so a step never allocates), forward and backward through every op
 * (embedding, RMSNorm, q/k/v projections, NeoX RoPE, causal GQA flash
 * attention, o projection, SwiGLU MLP, final norm, tied lm head,
 * cross-entropy), global gradient-norm clipping and AdamW with linear warmup
 * and cosine decay, the data sampler (seeded random windows of a token
 * stream, mixing in the recall stream at a fixed fraction), resumable
 * checkpoints and the final Hugging Face Llama directory.
 *
 * Determinism: the device ops are deterministic, the sampler's only state is
 * a splitmix64 word saved in the checkpoint with the step, the parameters and
 * both moments, so N steps + resume + N steps gives the same bits as 2N steps
 * on the same device.
 *
 * train.json (relative paths are taken from the working directory):
 *   {"model": {"hidden": 256, "layers": 4, "heads": 8, "kv_heads": 2,
 *              "intermediate": 688, "max_seq_len": 256, "rope_theta": 10000,
 *              "norm_eps": 1e-5, "init_std": 0.02},
 *    "data": {"tokenizer": "data/tokenizer.json", "train": "data/train.txt",
 *             "valid": "data/valid.txt", "recall": "tasks/recall_train.txt",
 *             "recall_fraction": 0.1, "recall_loss": "answers"},
 *    "optim": {"lr": 3e-3, "min_lr_fraction": 0.1, "warmup": 100, "steps": 2000,
 *              "batch": 8, "seq_len": 256, "weight_decay": 0.1, "clip": 1.0,
 *              "beta1": 0.9, "beta2": 0.95, "eps": 1e-8},
 *    "eval_interval": 200, "eval_batches": 8, "checkpoint_interval": 200,
 *    "log_interval": 10, "seed": 1234}
 * data.recall_loss "answers" scores only the recall rows' answers (the tokens
 * of every value word after " query:"; the CLI marks them, see
 * dtr_trainer_set_recall_mask) instead of every token ("all"), and of
 * those only the ones the window can answer (the key followed by the same
 * value earlier in the row; a window that cut a pair off cannot).
 * data.recall_windows "start": a recall window begins where a document does
 * (the CLI finds them, see dtr_trainer_set_recall_starts), so a row opens with
 * its sequence's pairs as an evaluation context does, and a sequence at least a
 * window long fills the row alone; "any" (default): at any token.
 * data.recall_curriculum N (0 = off): the recall file is ordered easiest first
 * (`dtr tasks make` writes it by pair count); at step s < N recall windows are
 * drawn from its first (s/N)^2 share only (at least one window), then from all:
 * a long stay on the one-pair head, where the copy is learnt first.
 * data.recall_only_steps N (0 = off): steps 1..N draw every row from the recall
 * stream; recall_fraction applies after. The copy by content that recall needs
 * (an induction head) formed only after millions of tokens of easy recall rows
 * in the runs docs/BENCHMARKS.md reports, so a teacher can learn it first and
 * text after.
 * Keys starting with "_" are comments; any other unknown key is refused.
 * The vocabulary size comes from the tokenizer. */
#ifndef DTR_TRAIN_H
#define DTR_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "dtr_runtime.h"

typedef struct dtr_train_config {
  /* model */
  uint32_t hidden, layers, heads, kv_heads, intermediate, vocab, max_seq_len;
  double rope_theta, norm_eps, init_std;
  /* data (paths as written in the config) */
  char tokenizer[512], train[512], valid[512], recall[512];
  double recall_fraction;
  char recall_loss[512]; /* "all" (default) or "answers": see below */
  uint32_t recall_curriculum; /* steps over which recall windows widen: see below */
  uint32_t recall_only_steps; /* the first N steps draw only recall rows: see below */
  char recall_windows[512];   /* "any" (default) or "start": see below */
  /* optimizer */
  double lr, min_lr_fraction, weight_decay, clip, beta1, beta2, eps;
  uint32_t warmup, steps, batch, seq_len;
  uint32_t eval_interval, eval_batches, checkpoint_interval, log_interval;
  uint64_t seed;
  char source[512]; /* the file it came from, for messages */
} dtr_train_config;

/* Defaults for every field (vocab 0: set from the tokenizer). */
void dtr_train_config_default(dtr_train_config *c);
/* Reads path; checks sizes (not the data files). One line naming the file in err. */
dtr_status dtr_train_config_load(const char *path, dtr_train_config *c, char *err,
                                 size_t errlen);
/* Checks that every data file named by c can be opened (one line naming the
 * config, the key and the file otherwise). */
dtr_status dtr_train_config_check_files(const dtr_train_config *c, char *err, size_t errlen);
/* Checks the sizes of c (heads divide hidden, kv_heads divide heads, ...). */
dtr_status dtr_train_config_validate(const dtr_train_config *c, char *err, size_t errlen);

/* One parameter tensor of the layout: its Hugging Face name, shape (dim1 = 0 for
 * a vector), offset in floats into the parameter buffer, element count, and
 * whether weight decay applies (matrices yes, norm weights no). */
typedef struct dtr_train_tensor {
  char name[96];
  uint64_t shape[2];
  size_t offset, numel;
  int decay;
} dtr_train_tensor;

typedef struct dtr_trainer dtr_trainer;

/* Allocates everything for c (vocab must be set) and initializes the parameters
 * from c->seed (normal(0, init_std); o_proj and down_proj scaled by
 * 1/sqrt(2 layers); norm weights 1). NULL on failure with a message in err. */
dtr_trainer *dtr_trainer_create(dtr_ctx *ctx, const dtr_train_config *c, char *err,
                                size_t errlen);
void dtr_trainer_destroy(dtr_trainer *t);

size_t dtr_trainer_ntensors(const dtr_trainer *t);
const dtr_train_tensor *dtr_trainer_tensor(const dtr_trainer *t, size_t i);
size_t dtr_trainer_nparams(const dtr_trainer *t);   /* real parameters */
size_t dtr_trainer_buf_floats(const dtr_trainer *t); /* the padded layout */

/* The token streams the sampler draws from (referenced, not copied; recall and
 * valid may be NULL/0). Every id must be < vocab. */
dtr_status dtr_trainer_set_data(dtr_trainer *t, const int32_t *train, size_t ntrain,
                                const int32_t *recall, size_t nrecall, const int32_t *valid,
                                size_t nvalid, char *err, size_t errlen);

/* Optional: which recall tokens are scored as targets (mask[i] != 0 for token
 * i; referenced, not copied, nrecall entries). Rows drawn from the recall
 * stream then train on those tokens alone, e.g. the answers of the queries,
 * not the random keys and values before them; a marked target is scored only
 * if its input token followed by the target occurs earlier in the row (it can
 * be copied from the window). NULL scores every token. */
void dtr_trainer_set_recall_mask(dtr_trainer *t, const uint8_t *mask);
/* Optional (data.recall_windows "start"): the n offsets in the recall stream,
 * ascending, where recall windows may begin (referenced, not copied). With a
 * curriculum, step s draws from the first (s/N)^2 of them. NULL: any token. */
void dtr_trainer_set_recall_starts(dtr_trainer *t, const size_t *starts, size_t n);

/* Forward + backward of one batch (batch x seq_len inputs and targets): grads
 * are zeroed first; *loss = mean cross-entropy, *gnorm = global grad norm. */
dtr_status dtr_trainer_forward_backward(dtr_trainer *t, const int32_t *inputs,
                                        const int32_t *targets, double *loss, double *gnorm,
                                        char *err, size_t errlen);
/* Mean loss of one batch, forward only. */
dtr_status dtr_trainer_loss(dtr_trainer *t, const int32_t *inputs, const int32_t *targets,
                            double *loss, char *err, size_t errlen);

typedef struct dtr_train_stats {
  uint32_t step; /* 1-based, the step just taken */
  double loss, lr, gnorm;
} dtr_train_stats;

/* The learning rate of 1-based step s: linear warmup, then cosine down to
 * min_lr_fraction * lr at the last step. */
double dtr_train_lr(const dtr_train_config *c, uint32_t s);
/* The same schedule from its numbers (distillation uses it too). */
double dtr_cosine_lr(double lr, double min_lr_fraction, uint32_t warmup, uint32_t steps,
                     uint32_t s);
/* One optimizer step: samples a batch, forward, backward, clip, AdamW. A NaN or
 * infinite loss or gradient norm fails with DTR_ERR_INVALID naming the step
 * (the parameters are then not updated). */
dtr_status dtr_trainer_step(dtr_trainer *t, dtr_train_stats *st, char *err, size_t errlen);
uint32_t dtr_trainer_steps_done(const dtr_trainer *t);
/* Mean loss over eval_batches fixed consecutive windows of the valid stream. */
dtr_status dtr_trainer_eval(dtr_trainer *t, double *loss, char *err, size_t errlen);

/* Host copies of the whole padded layout (dtr_trainer_buf_floats floats). */
dtr_status dtr_trainer_get_params(dtr_trainer *t, float *dst, char *err, size_t errlen);
dtr_status dtr_trainer_set_params(dtr_trainer *t, const float *src, char *err, size_t errlen);
dtr_status dtr_trainer_get_grads(dtr_trainer *t, float *dst, char *err, size_t errlen);

/* Checkpoint: one safetensors file (written atomically) with the parameters,
 * both moments, and the step and sampler state in its metadata. Loading checks
 * that the layout matches this trainer. */
dtr_status dtr_trainer_save_checkpoint(dtr_trainer *t, const char *path, char *err,
                                       size_t errlen);
dtr_status dtr_trainer_load_checkpoint(dtr_trainer *t, const char *path, char *err,
                                       size_t errlen);
/* Writes dir/config.json (LlamaForCausalLM, tied embeddings, float32),
 * dir/model.safetensors and, when tokenizer_path is set, a copy of it as
 * dir/tokenizer.json. dir must exist. eos_id < 0: none. */
dtr_status dtr_trainer_save_hf(dtr_trainer *t, const char *dir, const char *tokenizer_path,
                               int32_t eos_id, char *err, size_t errlen);

#endif
