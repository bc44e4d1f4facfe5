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

/* Parses a float flag value; prints an error naming flag on bad input. */
int cli_float(const char *flag, const char *s, double *out);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv); /* dispatches bench ops | ... */
int cmd_bench_ops(int argc, char **argv);
int cmd_bench_linear(int argc, char **argv);
int cmd_bench_decode(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_eval(int argc, char **argv);      /* eval (tools/eval.c) */
int cmd_data(int argc, char **argv);      /* data prepare (tools/data.c) */
int cmd_tokenizer(int argc, char **argv); /* tokenizer train */
int cmd_tasks(int argc, char **argv);     /* tasks make */
int cmd_train(int argc, char **argv);     /* train (tools/train.c) */
#endif
