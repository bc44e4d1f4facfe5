/* tasks.h — evaluation tasks in the lm-evaluation-harness style: generating them
 * (`dtr tasks make`) and reading them back, line-checked (`dtr eval`).
 *
 * A task file is JSONL, one example a line, in one of two forms:
 *   {"context": "...", "choices": ["a", "b", ...], "gold": i}   multiple choice
 *   {"context": "...", "target": "..."}                        (context optional)
 * Multiple choice is scored as lm-eval does: the log-likelihood of " " + choice
 * (one space, lm-eval's target_delimiter) after the context; the highest wins
 * (acc), and also per byte of the choice (acc_norm). Target examples are scored
 * as the log-likelihood (perplexity) of target after the context (with an
 * empty context the evaluator decides how the first token is conditioned, e.g.
 * on <|endoftext|>). Extra fields (e.g.
 * "rest" in cloze) are allowed and ignored by the reader.
 *
 * The generated tasks (dtr_tasks_make, from a `dtr data prepare` directory):
 *   recall.jsonl     multi-query associative recall (MQAR): "recall: apple 42
 *                    river 7 ... query: river", choices = the values of the
 *                    context ("42", "7", ...), gold = the one paired with the key.
 *   recall_train.txt training mix of the same format (2 to 2x pairs per sequence)
 *                    with answered queries drawn with replacement ("... query:
 *                    river 7 apple 42 river 7 ..."; by default as many as make
 *                    the sequence about 128 tokens, so a training window holds
 *                    mostly one sequence and many answers), documents separated
 *                    like train.txt, easiest first; mix into pretraining.
 *   cloze.jsonl      WordNet example sentences from the TEST split with the
 *                    headword blanked: context = the sentence up to the headword
 *                    (at least 3 words), choices = the headword and 3 distractor
 *                    lemmas of the same part of speech with the nearest training
 *                    frequency; scoring stops at the blank (lm-eval style), the
 *                    rest of the sentence is kept in "rest" for full-sentence
 *                    scoring by a caller that wants it.
 *   lm.jsonl         {"target": doc} for test-split documents (cut at a word
 *                    boundary to at most lm_max_bytes): held-out perplexity.
 * Knows files and formats only: no device code.
 */
#ifndef DTR_TASKS_H
#define DTR_TASKS_H

#include <stddef.h>
#include <stdint.h>

#include "dtr_runtime.h" /* dtr_status only */

typedef struct {
  char *context;  /* "" when absent */
  char **choices; /* NULL for target examples */
  size_t nchoices;
  int gold;       /* -1 for target examples */
  char *target;   /* NULL for multiple-choice examples */
} dtr_task_item;

typedef struct {
  char *name; /* file name without directory and .jsonl */
  dtr_task_item *items;
  size_t n;
  int multiple_choice; /* 1 when every item has choices, 0 when every item has a target */
} dtr_task;

/* Reads and checks a task file. A line that is not a JSON object of one of the
 * two forms, a gold outside the choices, fewer than 2 choices, a file mixing the
 * two forms or holding no examples fails with "path:line: what". Blank lines are
 * skipped. */
dtr_status dtr_task_load(const char *path, dtr_task **out, char *err, size_t errlen);
void dtr_task_free(dtr_task *t);

typedef struct {
  uint64_t seed;
  size_t recall_n;       /* recall.jsonl examples (default 300) */
  size_t recall_pairs;   /* key-value pairs per recall example (default 8) */
  size_t recall_train;   /* recall_train.txt sequences (default 50000; 0: no file) */
  size_t recall_queries; /* answered queries per training sequence, at least its
                            pair count (default 0: fill to about 128 tokens) */
  size_t cloze_n;        /* cloze.jsonl examples, at most (default 500) */
  size_t lm_n;           /* lm.jsonl documents, at most (default 200) */
  size_t lm_max_bytes;   /* per lm document (default 2000) */
} dtr_tasks_opts;

void dtr_tasks_opts_default(dtr_tasks_opts *o);

/* Writes recall.jsonl, recall_train.txt, cloze.jsonl and lm.jsonl into out_dir
 * from data_dir (train.txt, test.txt, wordnet_examples.tsv of dtr data prepare). */
dtr_status dtr_tasks_make(const char *data_dir, const char *out_dir, const dtr_tasks_opts *o,
                          char *err, size_t errlen);

/* One recall sequence into a malloc'd string: npairs distinct keys with distinct
 * values. with_answers: the full training form; else the eval context ending in
 * "query: KEY" with *choices (malloc'd array of npairs malloc'd strings) and
 * *gold. rng: splitmix64 state. Returns NULL on OOM. */
char *dtr_recall_sequence(uint64_t *rng, size_t npairs, int with_answers, char ***choices,
                          int *gold);

#endif
