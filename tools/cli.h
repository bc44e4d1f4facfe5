/* cli.h — what the dtr subcommands share: context creation from --device, and
 * the subcommand entry points (each parses its own flags and prints its --help). */
#ifndef DTR_CLI_H
#define DTR_CLI_H
#include <stdio.h>
#include "dtr_runtime.h"

/* Creates a context on device `device` (-1: default choice / DTR_DEVICE); prints
 * the error and returns NULL on failure. */
dtr_ctx *cli_ctx(int device);
/* Parses "--device N" style integers; prints an error naming flag on bad input. */
int cli_int(const char *flag, const char *s, long *out);
/* Median of n doubles (sorts in place). */
double cli_median(double *x, int n);
/* Monotonic wall clock in seconds. */
double cli_now(void);

/* Times a recorded piece of work: rec(ud) records dispatches, the context is
 * submitted; one warm-up, then the median of `repeat` runs in milliseconds.
 * Returns a negative value (and prints the error) when rec or the submit fails. */
double cli_time_ms(dtr_ctx *ctx, dtr_status (*rec)(void *ud), void *ud, int repeat);

/* Creates dir and its missing parents (mkdir -p); prints "prog: dir: why" and
 * returns 0 on failure. */
int cli_mkdirs(const char *prog, const char *dir);
/* A duration in seconds as "12m05s" or "1h03m" ("?" when unknown). */
void cli_fmt_dur(double s, char *b, size_t n);
/* Parses a float flag value; prints an error naming flag on bad input. */
int cli_float(const char *flag, const char *s, double *out);
/* Token stream of a text file (documents separated by <|endoftext|> lines)
 * tokenized with tok (loaded from tok_path), cached in cache_dir/NAME.tokens
 * while the text and tokenizer files are unchanged; a path ending in .tokens
 * is read as such a file. Progress and errors go to stderr prefixed by prog;
 * returns 0 on failure. */
struct dtr_tokenizer;
int cli_load_tokens(const char *prog, struct dtr_tokenizer *tok, const char *tok_path,
                    const char *path, const char *cache_dir, const char *name, int32_t **ids,
                    size_t *n);
/* Median ms of one batch-1 decode step of m at context ctx (the cache marked as
 * holding ctx-1 tokens), over steps steps after a warm-up; *bytes: the cache
 * and decode-state memory. Negative (error printed) on failure. */
struct dtr_model;
double cli_decode_ms(struct dtr_model *m, uint32_t ctx, int steps, size_t *bytes);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv); /* dispatches bench ops | ... */
int cmd_bench_ops(int argc, char **argv);
int cmd_bench_linear(int argc, char **argv);
int cmd_bench_decode(int argc, char **argv);
int cmd_bench_train(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_eval(int argc, char **argv);      /* eval (tools/eval.c) */
int cmd_data(int argc, char **argv);      /* data prepare (tools/data.c) */
int cmd_tokenizer(int argc, char **argv); /* tokenizer train */
int cmd_tasks(int argc, char **argv);     /* tasks make */
int cmd_train(int argc, char **argv);     /* train (tools/train.c) */
int cmd_distill(int argc, char **argv);   /* distill (tools/distill.c) */
int cmd_replace(int argc, char **argv);   /* replace (tools/replace.c) */
int cmd_run(int argc, char **argv);       /* run: the main job (tools/run.c) */
#endif
