/* eval.h — scoring a task (models/tasks.h) with a model (host/model.h), as
 * lm-evaluation-harness does, for `dtr eval` and for the greedy replacement
 * (which scores the same task many times on a model whose layers change).
 *
 * Owns: tokenizing a task once into requests (dtr_eval_set), batched scoring
 * of those requests with a model (several sequences per prefill), the metrics
 * and their 95% confidence intervals, per-example results in task order, and
 * early stopping once a threshold can no longer be met.
 *
 * Tokenization (lm-eval v0.4 HFLM._encode_pair, no BOS/special tokens added):
 *   multiple choice: continuation = " " + choice; trailing whitespace of the
 *   context moves to the front of the continuation; then
 *   ctx = encode(context), whole = encode(context + continuation), and the
 *   sequence is ctx followed by whole[len(ctx):] (the continuation tokens are
 *   those of the joint encoding past the context's length, so a merge across
 *   the boundary is scored as lm-eval scores it). If whole is not longer than
 *   ctx, the continuation is encoded on its own instead.
 *   An empty context becomes the prefix token (config bos_token_id, else the
 *   first eos, else "<|endoftext|>" — lm-eval's prefix_token_id).
 *   target examples: the same with continuation = target (no delimiter).
 *
 * Scoring: the sum of log p(token | everything before it) over the
 * continuation tokens. A sequence longer than the window W is scored in
 * lm-eval's rolling windows: the scored tokens are cut into chunks of W; each
 * chunk is predicted by one forward of the W tokens just before its last token
 * (so the first chunk sees as much of the context as fits, later chunks the W
 * tokens before them). Choices of one example whose input (the sequence minus
 * its last token) is a prefix of another choice's input share that forward
 * (e.g. one-token choices cost one forward per example); a batch whose rows
 * are all last positions downloads only those rows.
 *
 * Metrics:
 *   multiple choice: acc = argmax of the sums is gold; acc_norm = argmax of
 *   sum / (choice length in characters, i.e. UTF-8 code points, without the
 *   delimiter) — lm-eval's acc_norm. First index wins a tie. 95% CI: the Wilson
 *   score interval (z = 1.959964), which stays inside [0, 1] for small n.
 *   perplexity: nll = total NLL / total target tokens (token-weighted over all
 *   documents), ppl = exp(nll), bits/byte = total NLL / (target bytes * ln 2).
 *   95% CI: per-document (cluster) standard error of that ratio estimator,
 *   se = sqrt(n/(n-1) * sum_d (N_d - r T_d)^2) / sum_d T_d (N_d the document's
 *   NLL, T_d its tokens or bytes), nll +- 1.96 se, ppl = exp of the bounds
 *   (NaN bounds for fewer than 2 documents).
 */
#ifndef DTR_EVAL_H
#define DTR_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "tasks.h"
#include "tokenizer.h"

/* A task tokenized for one tokenizer; reusable with every model of that
 * vocabulary (layers replaced or not). */
typedef struct dtr_eval_set dtr_eval_set;

/* Tokenizes the first limit examples of t (0: all) with tok. prefix_token
 * conditions empty contexts (see dtr_eval_prefix_token; -1: an empty context
 * is an error). Errors name the task and the example (1-based). */
dtr_status dtr_eval_prepare(const dtr_task *t, dtr_tokenizer *tok, int32_t prefix_token,
                            size_t limit, dtr_eval_set **out, char *err, size_t errlen);
void dtr_eval_set_free(dtr_eval_set *s); /* NULL is a no-op */
size_t dtr_eval_set_count(const dtr_eval_set *s);
int dtr_eval_set_multiple_choice(const dtr_eval_set *s);
/* Scored tokens (continuations / targets) over all examples. */
size_t dtr_eval_set_tokens(const dtr_eval_set *s);

/* lm-eval's prefix token: bos_token_id, else eos_token_id[0], else the
 * tokenizer's "<|endoftext|>"; -1 if none. */
int32_t dtr_eval_prefix_token(const dtr_model_config *cfg, const dtr_tokenizer *tok);

/* One example's result. */
typedef struct dtr_eval_example {
  /* multiple choice (nchoices 0 for target examples) */
  size_t nchoices;
  double *loglik;     /* (nchoices) sum of log p over the continuation tokens */
  uint32_t *ntokens;  /* (nchoices) continuation tokens */
  int gold, pred, pred_norm;
  /* target examples (and, for multiple choice, nll = -loglik[gold]) */
  double nll;         /* -sum of log p over the target tokens */
  size_t tokens;      /* target tokens */
  size_t bytes;       /* target bytes (UTF-8) */
} dtr_eval_example;

/* Return nonzero to stop after this example. */
typedef int (*dtr_eval_example_fn)(void *ud, size_t index, const dtr_eval_example *ex);

/* A cache of residual streams for the greedy search: for forward f of an
 * eval run (the packing is the same on every run of one set with the same
 * batch and window) and layer L >= 1, the residual stream entering layer L.
 * Three sets share the byte budget equally: main (the current model's), pend
 * (being recorded by the run in progress) and best (a kept recording). An
 * entry that does not fit is not stored; a run then starts from the nearest
 * cached layer below, or from the embedding. */
typedef struct dtr_hcache dtr_hcache;
dtr_hcache *dtr_hcache_create(uint32_t layers, size_t budget_bytes); /* NULL on OOM */
void dtr_hcache_free(dtr_hcache *c);                                   /* NULL is a no-op */
/* pend becomes best (the previous best is dropped); pend is emptied. */
void dtr_hcache_keep_pending(dtr_hcache *c);
/* The current model changed at layer L: main entries above L are replaced by
 * best's (or dropped), best is emptied. */
void dtr_hcache_commit(dtr_hcache *c, uint32_t L);
size_t dtr_hcache_bytes(const dtr_hcache *c); /* held now, all sets */

typedef struct dtr_eval_opts {
  uint32_t batch;  /* sequences per prefill (0: 8); at most the model's max_tokens */
  uint32_t window; /* tokens per forward (0 or too big: the largest that fits, i.e.
                      min(max_position_embeddings, max_tokens - batch + 1)) */
  /* Early stop, checked after every example in order (<= 0: off).
   * multiple choice: stop once (correct so far + examples left) / total <
   * min_acc, i.e. even all remaining examples right cannot reach min_acc
   * (acc, or acc_norm with use_norm). perplexity: stop once
   * exp(NLL so far / all target tokens) > max_ppl (NLL >= 0, so the final
   * ppl can only be higher). */
  double min_acc;
  int use_norm;
  double max_ppl;
  dtr_eval_example_fn on_example; /* called in task order; may be NULL */
  void *ud;
  /* With cache: forward f starts at the highest layer <= from_layer whose
   * input main holds for f (layers below are taken as unchanged); with record,
   * the residual streams entering the layers above the start go to pend
   * (emptied first). The scores are bit-identical to a run from layer 0. */
  dtr_hcache *cache;
  uint32_t from_layer;
  int record;
} dtr_eval_opts;

typedef struct dtr_eval_result {
  int multiple_choice;
  size_t n;     /* examples scored (fewer than total when stopped) */
  size_t total; /* examples in the set */
  int stopped;  /* 1: the threshold cannot be met (found at the last example too)
                   or the callback stopped */
  double bound; /* at the stop: the best final acc / lowest final ppl still possible */
  dtr_eval_example *ex; /* (n) in task order */
  /* multiple choice (over the n scored examples) */
  size_t correct, correct_norm;
  double acc, acc_lo, acc_hi, acc_norm, acc_norm_lo, acc_norm_hi;
  /* perplexity */
  size_t tokens, bytes;
  double nll, nll_lo, nll_hi; /* mean NLL per token, natural log */
  double ppl, ppl_lo, ppl_hi, bpb, bpb_lo, bpb_hi;
  /* work */
  double seconds;
  size_t forwards;       /* prefill calls */
  size_t forward_tokens; /* tokens run through the model (padding included) */
  size_t layer_forwards; /* decoder layers run, summed over the forwards */
} dtr_eval_result;

/* Scores set with m. r is filled (free with dtr_eval_result_free, also after a
 * failure). Token ids outside the model's vocabulary fail. */
dtr_status dtr_eval_run(dtr_model *m, const dtr_eval_set *set, const dtr_eval_opts *o,
                        dtr_eval_result *r, char *err, size_t errlen);
void dtr_eval_result_free(dtr_eval_result *r);

/* prepare + run + free the set. */
dtr_status dtr_eval_task(dtr_model *m, dtr_tokenizer *tok, const dtr_task *t, size_t limit,
                         const dtr_eval_opts *o, dtr_eval_result *r, char *err, size_t errlen);

/* The 95% intervals used above, exposed for tests and callers. */
void dtr_eval_wilson(size_t k, size_t n, double *lo, double *hi);
/* Ratio sum(num)/sum(den) over n clusters and its 95% CI (NaN bounds if n < 2). */
void dtr_eval_ratio_ci(const double *num, const double *den, size_t n, double *mean,
                       double *lo, double *hi);

#endif
