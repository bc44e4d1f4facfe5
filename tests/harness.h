/* harness.h — what every test binary shares.
 *
 * A test creates its context with th_ctx() (validation forced on: any Khronos
 * validation message fails the run), draws fresh random inputs with th_rand()
 * (seed printed, TH_SEED=n repeats a run), poisons outputs with th_poison() so an
 * element a kernel never wrote fails the comparison, compares against a double
 * reference with th_check(), and ends with `return th_finish();`, which prints
 * the closing "N passed, M failed" line and returns the exit code.
 */
#ifndef DTR_TEST_HARNESS_H
#define DTR_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "dtr_ops.h"
#include "dtr_runtime.h"

dtr_ctx *th_ctx(void);
/* Uniform in [lo, hi). */
void th_rand(float *x, size_t n, float lo, float hi);
double th_randu(void); /* uniform [0,1) */
uint32_t th_randint(uint32_t n); /* uniform [0,n) */
float *th_alloc(size_t n); /* malloc'd floats, aborts the test on OOM */
double *th_dalloc(size_t n);

/* Device buffers: th_buf uploads n floats; th_poison allocates n floats filled
 * with a NaN pattern; th_get downloads (after submitting pending work). */
dtr_buf *th_buf(dtr_ctx *ctx, const void *data, size_t bytes);
dtr_buf *th_poison(dtr_ctx *ctx, size_t bytes);
void th_get(dtr_ctx *ctx, dtr_buf *b, void *dst, size_t bytes);
/* Runs all recorded work; a failed submit fails the test. */
void th_submit(dtr_ctx *ctx);
/* Fails the test (with the context's message) when st != DTR_OK. */
void th_ok(dtr_ctx *ctx, dtr_status st, const char *what);

/* x rounded to the nearest IEEE half (ties to even; subnormals kept, no
 * overflow handling), as a double: the reference of fp16 storage. */
double th_half(double x);
/* The value of an IEEE half given by its bits. */
double th_unhalf(uint16_t h);
/* x (n floats, n even) packed to fp16 on the device by dtr_op_pack_f16 into a
 * new buffer of bytes bytes (at least 2n; zeros after the halves); *ref gets
 * the values the buffer now holds as doubles, th_half(x), and a buffer whose
 * halves (read through th_unhalf) differ from them fails the test. */
dtr_buf *th_buf_f16(dtr_ctx *ctx, const float *x, size_t n, size_t bytes, double **ref);
/* ||got - ref|| / ||ref|| (NaN when got holds one; ||ref|| = 0 counts as 1). */
double th_rel_err(const float *got, const double *ref, size_t n);
/* Sets whether the context's device counts as binding RGBA16F texel views (the
 * fp16 ops consult it; clearing it makes this device one without them, to
 * exercise the fallback); returns the previous value. */
int th_set_texel_f16(dtr_ctx *ctx, int on);
/* That a comparison of an op's output on fp16 inputs (got) can fail: it sits
 * within 1e-4 of the oracle on the inputs rounded to fp16 (ref16) and ten times
 * farther from the oracle on the unrounded ones (ref32), and the same packed
 * inputs read as fp32 (got32) miss ref16 by 1e-2 or more. */
void th_expect_f16(const char *what, const float *got, const float *got32, const double *ref16,
                   const double *ref32, size_t n);

/* Compares got against ref: passes when ||got-ref||/||ref|| < rel (or, for a
 * reference that nearly cancels, ||got-ref|| <= atol sqrt(n)) and every element satisfies |got-ref| <= atol + rel_elem*|ref|
 * (NaN fails). Prints one line either way; returns 1 on pass. */
int th_check(const char *what, const float *got, const double *ref, size_t n, double rel,
             double atol, double rel_elem);
/* Compares two double arrays (an analytic gradient against finite differences). */
int th_check_d(const char *what, const double *got, const double *ref, size_t n,
               double rel);
/* Records a pass or a failure of a check that is not an array comparison. */
void th_expect(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Central finite difference of a scalar function of x at the indices idx (or at
 * all n when idx is NULL, nidx = n): grad[i] = (f(x+h e_i) - f(x-h e_i)) / 2h. */
typedef double (*th_scalar_fn)(void *ud);
void th_fd(th_scalar_fn f, void *ud, double *x, size_t n, double h, double *grad);

/* Runs "bin args" through the shell with stderr folded into out (NUL bytes a
 * program printed become '?', so the text stays searchable); returns the exit
 * code, or -1 when it did not exit normally. */
int th_run(const char *bin, const char *args, char *out, size_t cap);

/* GPT-2's byte-level alphabet: the printable character byte b maps to, as UTF-8
 * into out (3 bytes). Tests use it to write tiny tokenizer.json files. */
void th_byte_char(int b, char *out);
/* Writes dir/tokenizer.json: a byte-level BPE of the 256 bytes, <|endoftext|>
 * as id 256 and the merges " a" 257, " b" 258, " c" 259 (vocabulary 260). */
void th_write_byte_tokenizer(const char *dir);
/* Removes a directory tree a test made (files and subdirectories). */
void th_rm_tree(const char *dir);

int th_finish(void);

#endif
