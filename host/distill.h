/* distill.h — blockwise local distillation (../shared/spec/METHOD.md, phase 1):
 * every selected full-attention layer of a frozen teacher gets a student block
 * (host/blocks.h) trained on MSE(student(x_l), y_l), where x_l is the layer's
 * attention input after its input norm and y_l its attention output after
 * o_proj.
 *
 * One teacher forward per batch feeds every student: the forward runs layer by
 * layer with dtr_layer_hooks, and at each selected layer the student's forward,
 * MSE, backward and AdamW step are recorded right there, before the teacher
 * goes on with its own output. No gradient crosses layers and the teacher is
 * never updated; activations live in the teacher's session (one layer at a
 * time) and in each student's own workspace.
 *
 * Data: a token stream; a step draws batch windows of seq_len tokens at seeded
 * random offsets (splitmix64, its state saved in checkpoints). Held-out
 * relative error ||y_hat - y|| / ||y|| is measured on fixed windows of a
 * separate valid stream.
 *
 * Checkpoints (one safetensors file, written atomically): every student's
 * parameters and both AdamW moments, the step, the sampler state, the options
 * that must not change on resume, and the loss curves so far; N steps, resume,
 * then M steps give the same bits as N + M steps on the same device.
 *
 * Output directory (dtr_distiller_save):
 *   students.safetensors  model.layers.<L>.linear_attn.<param> (F32), the names
 *                         a hybrid checkpoint uses
 *   students.json         {"block", "layers", "teacher": {layers, hidden, heads,
 *                         kv_heads, head_dim, vocab}, "block_config", "tokens",
 *                         "steps", "seq_len", "batch", "final": per layer
 *                         {"valid_loss", "rel_err"}}
 *   losses.json           {"train": [{"step", "loss": [per layer]}],
 *                          "valid": [{"step", "loss": [...], "rel_err": [...]}],
 *                          "layers": [...]}
 */
#ifndef DTR_DISTILL_H
#define DTR_DISTILL_H

#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "model.h"

typedef struct dtr_distill_opts {
  dtr_block_kind kind;      /* gdn */
  uint32_t seq_len;         /* 512 (spec, peer default) */
  uint32_t batch;           /* sequences per step: 8 (the peer's 96 suits GPUs) */
  uint32_t steps;           /* optimizer steps (the CLI derives them from --tokens) */
  double lr;                /* 1e-3 peak, cosine to min_lr_fraction * lr */
  double min_lr_fraction;   /* 0.1 */
  uint32_t warmup;          /* warmup steps (the CLI: 5% of steps) */
  double weight_decay;      /* 0.01, matrices only */
  double clip;              /* 1.0, per student's global gradient norm */
  double beta1, beta2, eps; /* 0.9, 0.95, 1e-8 */
  uint32_t eval_batches;    /* held-out windows per evaluation (4) */
  uint64_t seed;            /* students' init and the sampler (1234) */
  uint8_t layer_on[256];    /* which layers get a student (all full ones by default) */
} dtr_distill_opts;

/* Defaults, every layer selected. */
void dtr_distill_opts_default(dtr_distill_opts *o);

typedef struct dtr_distiller dtr_distiller;

/* teacher: loaded with max_tokens >= batch * seq_len (the distiller makes its
 * session of batch x seq_len). Students are made from the teacher's layers
 * (dtr_model_new_student). Layers selected that are not full attention, or
 * past the model, fail. */
dtr_distiller *dtr_distiller_create(dtr_model *teacher, const dtr_distill_opts *o, char *err,
                                    size_t errlen);
void dtr_distiller_destroy(dtr_distiller *d);
/* Referenced, not copied; valid may be NULL (then no held-out evaluation).
 * Streams must hold more than seq_len tokens, and ids < vocab. */
dtr_status dtr_distiller_set_data(dtr_distiller *d, const int32_t *train, size_t ntrain,
                                  const int32_t *valid, size_t nvalid, char *err,
                                  size_t errlen);
uint32_t dtr_distiller_steps_done(const dtr_distiller *d);
uint32_t dtr_distiller_nlayers(const dtr_distiller *d);          /* selected */
uint32_t dtr_distiller_layer(const dtr_distiller *d, uint32_t i); /* i-th selected */
dtr_block *dtr_distiller_student(dtr_distiller *d, uint32_t i);

/* The learning rate of 1-based step s. */
double dtr_distill_lr(const dtr_distill_opts *o, uint32_t s);

/* One step: a batch, the teacher forward with every student's step. losses
 * (nlayers) receives each student's MSE on this batch (before its update). A
 * NaN/Inf loss fails naming the step and the layer. */
dtr_status dtr_distiller_step(dtr_distiller *d, double *losses, char *err, size_t errlen);
/* Held-out: per selected layer the mean MSE and ||y_hat - y|| / ||y|| over
 * eval_batches fixed windows of the valid stream. Recorded in the curves. */
dtr_status dtr_distiller_eval(dtr_distiller *d, double *loss, double *rel_err, char *err,
                              size_t errlen);

dtr_status dtr_distiller_save_checkpoint(dtr_distiller *d, const char *path, char *err,
                                         size_t errlen);
/* Refuses a checkpoint of other options (kind, layers, sizes, seed, schedule). */
dtr_status dtr_distiller_load_checkpoint(dtr_distiller *d, const char *path, char *err,
                                         size_t errlen);
/* Writes students.safetensors, students.json and losses.json into dir
 * (existing), each atomically. tokens: training tokens seen. */
dtr_status dtr_distiller_save(dtr_distiller *d, const char *dir, char *err, size_t errlen);

/* ---- reading a students directory ---------------------------------------------- */

/* Loads dir's students for model m: checks that they were made for a model of
 * m's shape (layers, hidden, heads, head_dim) and makes one block per listed
 * layer (workspace for the model's max_tokens). blocks (m's layers) receives
 * a block or NULL per layer; *kind the block kind. Errors name the file and
 * what does not match. */
dtr_status dtr_students_load(dtr_model *m, const char *dir, dtr_block **blocks,
                             dtr_block_kind *kind, char *err, size_t errlen);

#endif
