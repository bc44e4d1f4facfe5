/* replace.h — greedy validation-guided layer replacement
 * (../shared/spec/METHOD.md, phase 2), forward passes only:
 *
 *   H = teacher; P_base = metric(H)
 *   repeat: for each layer l still full attention: P_l = metric(H, l -> student)
 *           l* = the best P_l (the lowest layer on a tie)
 *           stop if P_l* misses the threshold; else H = H with l* replaced
 *   until no full layer is left
 *
 * The metric is the task's: acc (or acc_norm) for multiple choice, higher is
 * better; perplexity for target tasks, lower is better. The threshold is
 * P_base - tolerance (acc) or P_base + tolerance (perplexity), with a relative
 * tolerance P_base * (1 -+ tolerance), or given.
 *
 * Beyond the plain algorithm, and with exactly its trajectory:
 *   (a) a candidate at layer l starts from the cached residual stream entering
 *       layer l of the current model (host/eval.h dtr_hcache, sized by a byte
 *       budget; what does not fit is recomputed from the nearest cached layer
 *       below), and the winner's recorded streams refresh the cache;
 *   (b) a candidate stops early once even a perfect score on its remaining
 *       examples could not beat the best candidate so far (nor reach the
 *       threshold); its row then holds that bound, marked "stopped";
 *   (c) layer-forwards are counted, next to what the plain algorithm needs.
 * plain = 1 turns (a) and (b) off.
 *
 * Resume: after every candidate the trajectory so far is written (atomically)
 * to state_path when set; a run given the same path continues from it,
 * re-applying the replaced layers and reusing the scored candidates, and ends
 * with the same trajectory as an uninterrupted run. */
#ifndef DTR_REPLACE_H
#define DTR_REPLACE_H

#include <stddef.h>
#include <stdint.h>

#include "eval.h"
#include "model.h"

typedef struct dtr_replace_cand {
  uint32_t layer;
  double score;     /* the metric, or the bound when stopped */
  int stopped;      /* early stop: score is the best still possible */
  size_t examples;  /* examples scored */
  double lo, hi;    /* 95% CI of score (NaN when stopped) */
  size_t layer_forwards;
  double seconds;
} dtr_replace_cand;

typedef struct dtr_replace_step {
  uint32_t ncand;
  dtr_replace_cand *cand; /* in layer order */
  int32_t chosen;         /* the layer replaced, -1 when the search stopped here */
  double score;           /* the metric of the best candidate */
} dtr_replace_step;

typedef struct dtr_replace_result {
  int higher_better;      /* 1: acc, 0: perplexity */
  const char *metric;     /* "acc", "acc_norm" or "ppl" */
  double base, threshold;
  double base_lo, base_hi; /* 95% CI of the base score */
  double final, final_lo, final_hi; /* the hybrid's */
  uint32_t nsteps;
  dtr_replace_step *steps;
  uint32_t nreplaced;
  uint32_t *replaced;     /* in order */
  size_t layer_forwards, plain_layer_forwards;
  size_t forwards_per_eval; /* prefills of one full evaluation */
  double seconds;
} dtr_replace_result;

typedef struct dtr_replace_opts {
  double tolerance;     /* used when !use_threshold; >= 0 */
  int relative;         /* tolerance is a fraction of the base score */
  double threshold;
  int use_threshold;
  int use_norm;         /* acc_norm instead of acc */
  int plain;            /* the plain algorithm: no cache, no early stop */
  size_t cache_bytes;   /* residual cache budget (0: 1 GiB) */
  uint32_t batch, window; /* as dtr_eval_opts */
  const char *state_path; /* resumable trajectory (NULL: none) */
  /* progress: the base score, each candidate as it finishes, each step's choice */
  void (*on_base)(void *ud, const dtr_eval_result *r, double threshold);
  void (*on_candidate)(void *ud, uint32_t step, const dtr_replace_cand *c, double best);
  void (*on_step)(void *ud, uint32_t step, const dtr_replace_step *s);
  void *ud;
} dtr_replace_opts;

/* Runs the search on m (full-attention layers with a student in students[L]
 * are the candidates; students[L] NULL: the layer stays). On return the
 * chosen layers of m are replaced by their students, whose ownership moves to
 * m (students[L] is set to NULL for them); the others stay the caller's. */
dtr_status dtr_replace_run(dtr_model *m, dtr_block **students, const dtr_eval_set *set,
                           const dtr_replace_opts *o, dtr_replace_result *r, char *err,
                           size_t errlen);
void dtr_replace_result_free(dtr_replace_result *r);
/* The trajectory as JSON text (malloc'd): base, threshold, metric, steps with
 * every candidate, the replaced order, layer-forward counts. */
char *dtr_replace_json(const dtr_replace_result *r);
/* trajectory.svg: the score against the number of replaced layers, base and
 * threshold lines, each point labelled with its layer. */
dtr_status dtr_replace_svg(const dtr_replace_result *r, const char *title, const char *path,
                           char *err, size_t errlen);

#endif
