/* harness.c — the shared test harness (see harness.h): a validated context,
 * seeded random inputs, poisoned outputs, comparisons, finite differences, and
 * the closing "N passed, M failed" line. */
#include "harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

static int n_pass, n_fail;
static dtr_ctx *g_ctx;
static uint64_t rng_state;

static uint64_t next_u64(void) {
  /* splitmix64: good enough and identical everywhere. */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double th_randu(void) { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }
uint32_t th_randint(uint32_t n) { return n ? (uint32_t)(next_u64() % n) : 0; }

void th_rand(float *x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; i++) x[i] = lo + (float)(th_randu() * (double)(hi - lo));
}

static void die(const char *msg) {
  fprintf(stderr, "FATAL: %s\n", msg);
  printf("%d passed, %d failed\n", n_pass, n_fail + 1);
  exit(1);
}

float *th_alloc(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  if (!p) die("out of host memory");
  return p;
}
double *th_dalloc(size_t n) {
  double *p = calloc(n ? n : 1, sizeof *p);
  if (!p) die("out of host memory");
  return p;
}

dtr_ctx *th_ctx(void) {
  if (g_ctx) return g_ctx;
  const char *s = getenv("TH_SEED");
  uint64_t seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)clock();
  rng_state = seed;
  printf("seed %llu (repeat with TH_SEED=%llu)\n", (unsigned long long)seed,
         (unsigned long long)seed);
  dtr_ctx_options o = DTR_CTX_DEFAULTS;
  o.validate = 1; /* always: a validation message fails the test */
  char err[512];
  dtr_status st;
  g_ctx = dtr_ctx_create(&o, &st, err, sizeof err);
  if (!g_ctx) {
    char msg[600];
    snprintf(msg, sizeof msg, "cannot create a Vulkan context: %s", err);
    die(msg);
  }
  printf("device: %s (%s)\n", dtr_ctx_device(g_ctx)->name,
         dtr_device_type_name(dtr_ctx_device(g_ctx)->type));
  return g_ctx;
}

void th_ok(dtr_ctx *ctx, dtr_status st, const char *what) {
  if (st == DTR_OK) return;
  char msg[1400];
  snprintf(msg, sizeof msg, "%s: %s: %s", what, dtr_status_name(st), dtr_ctx_error(ctx));
  die(msg);
}

dtr_buf *th_buf(dtr_ctx *ctx, const void *data, size_t bytes) {
  dtr_buf *b = dtr_buf_create(ctx, bytes);
  if (!b) th_ok(ctx, DTR_ERR_OOM, "dtr_buf_create");
  if (data) th_ok(ctx, dtr_buf_upload(ctx, b, 0, data, bytes), "dtr_buf_upload");
  return b;
}

/* A quiet NaN with a recognisable payload. */
#define POISON 0x7fc0dead

dtr_buf *th_poison(dtr_ctx *ctx, size_t bytes) {
  dtr_buf *b = dtr_buf_create(ctx, bytes);
  if (!b) th_ok(ctx, DTR_ERR_OOM, "dtr_buf_create");
  th_ok(ctx, dtr_buf_fill(ctx, b, 0, dtr_buf_size(b), POISON), "dtr_buf_fill");
  return b;
}

void th_submit(dtr_ctx *ctx) { th_ok(ctx, dtr_ctx_submit(ctx), "dtr_ctx_submit"); }

void th_get(dtr_ctx *ctx, dtr_buf *b, void *dst, size_t bytes) {
  th_ok(ctx, dtr_buf_download(ctx, b, 0, dst, bytes), "dtr_buf_download");
}

void th_expect(int cond, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s ", cond ? "ok  " : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  if (cond) n_pass++;
  else n_fail++;
}

int th_check(const char *what, const float *got, const double *ref, size_t n, double rel,
             double atol, double rel_elem) {
  double num = 0, den = 0, worst = 0;
  size_t bad = 0, worst_i = 0, first_bad = (size_t)-1;
  for (size_t i = 0; i < n; i++) {
    double g = got[i], r = ref[i], e = fabs(g - r);
    if (!(e <= atol + rel_elem * fabs(r))) { /* NaN lands here too */
      if (bad++ == 0) first_bad = i;
    }
    if (isnan(g) || isinf(g)) e = INFINITY;
    num += e * e;
    den += r * r;
    if (e > worst || isinf(e)) { worst = e; worst_i = i; }
  }
  double relerr = den > 0 ? sqrt(num / den) : sqrt(num);
  /* The norm criterion carries the absolute floor too, so a reference that nearly
   * cancels (a bias gradient summing to ~0) is not judged by relative error alone. */
  int ok = bad == 0 && (relerr < rel || sqrt(num) <= atol * sqrt((double)n));
  if (ok) {
    printf("ok   %-48s n=%zu rel=%.2e max|err|=%.2e\n", what, n, relerr, worst);
    n_pass++;
  } else {
    printf("FAIL %-48s n=%zu rel=%.2e (limit %.1e) max|err|=%.2e at %zu; %zu elements out "
           "of tolerance",
           what, n, relerr, rel, worst, worst_i, bad);
    if (bad) printf(", first at %zu: got %.9g want %.9g", first_bad, got[first_bad],
                    ref[first_bad]);
    printf("\n");
    n_fail++;
  }
  return ok;
}

int th_check_d(const char *what, const double *got, const double *ref, size_t n,
               double rel) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double e = got[i] - ref[i];
    num += e * e;
    den += ref[i] * ref[i];
  }
  double relerr = den > 0 ? sqrt(num / den) : sqrt(num);
  int ok = relerr < rel; /* NaN compares false */
  printf("%s %-48s n=%zu rel=%.2e (limit %.1e)\n", ok ? "ok  " : "FAIL", what, n, relerr, rel);
  if (ok) n_pass++;
  else n_fail++;
  return ok;
}

void th_fd(th_scalar_fn f, void *ud, double *x, size_t n, double h, double *grad) {
  for (size_t i = 0; i < n; i++) {
    double x0 = x[i];
    x[i] = x0 + h;
    double fp = f(ud);
    x[i] = x0 - h;
    double fm = f(ud);
    x[i] = x0;
    grad[i] = (fp - fm) / (2 * h);
  }
}

int th_run(const char *bin, const char *args, char *out, size_t cap) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, args);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t n = fread(out, 1, cap - 1, p);
  for (size_t i = 0; i < n; i++)
    if (!out[i]) out[i] = '?';
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void th_byte_char(int b, char *out) {
  int n = 0, cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
    for (int x = 0; x < b; x++)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) n++;
    cp = 256 + n;
  }
  if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
  else { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

void th_rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  char p[1024];
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    struct stat sb;
    if (!lstat(p, &sb) && S_ISDIR(sb.st_mode)) th_rm_tree(p);
    else unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

int th_finish(void) {
  if (g_ctx) {
    uint32_t v = dtr_ctx_validation_messages(g_ctx);
    dtr_ctx_destroy(g_ctx);
    g_ctx = NULL;
    th_expect(v == 0, "no Vulkan validation messages (%u seen)", v);
  }
  printf("%d passed, %d failed\n", n_pass, n_fail);
  return n_fail ? 1 : 0;
}

void th_write_byte_tokenizer(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) { th_expect(0, "cannot write %s", path); return; }
  fprintf(f, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 256, \"content\": "
             "\"<|endoftext|>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
             "\"normalized\": false, \"special\": true}], \"normalizer\": null, "
             "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
             "\"trim_offsets\": true, \"use_regex\": true}, \"post_processor\": null, "
             "\"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, "
             "\"trim_offsets\": true, \"use_regex\": true}, \"model\": {\"type\": \"BPE\", "
             "\"dropout\": null, \"unk_token\": null, \"fuse_unk\": false, "
             "\"byte_fallback\": false, \"vocab\": {");
  for (int b = 0; b < 256; b++) {
    char ch[4];
    th_byte_char(b, ch);
    if (ch[0] == '"' || ch[0] == '\\') fprintf(f, "%s\"\\%s\": %d", b ? ", " : "", ch, b);
    else fprintf(f, "%s\"%s\": %d", b ? ", " : "", ch, b);
  }
  fprintf(f, ", \"\xc4\xa0" "a\": 257, \"\xc4\xa0" "b\": 258, \"\xc4\xa0" "c\": 259}, "
             "\"merges\": [\"\xc4\xa0 a\", \"\xc4\xa0 b\", \"\xc4\xa0 c\"]}}\n");
  fclose(f);
}

double th_half(double x) {
  if (x == 0 || !isfinite(x)) return x;
  int e;
  frexp(x, &e); /* |x| in [2^(e-1), 2^e) */
  /* 11 significant bits; below 2^-14 the spacing stays 2^-24 */
  double q = ldexp(1.0, (e - 1 < -14 ? -14 : e - 1) - 10);
  return nearbyint(x / q) * q; /* the default rounding mode: ties to even */
}

double th_unhalf(uint16_t h) {
  int ex = (h >> 10) & 31, m = h & 1023;
  double v = ex == 0 ? ldexp(m, -24) : ex == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, ex - 25);
  return h & 0x8000 ? -v : v;
}

dtr_buf *th_buf_f16(dtr_ctx *ctx, const float *x, size_t n, size_t bytes, double **ref) {
  dtr_buf *src = th_buf(ctx, x, n * 4), *b = th_buf(ctx, NULL, bytes);
  th_ok(ctx, dtr_buf_fill(ctx, b, 0, bytes, 0), "dtr_buf_fill");
  th_ok(ctx, dtr_op_pack_f16(ctx, dtr_whole(b), dtr_whole(src), (uint32_t)n), "pack_f16");
  uint16_t *h = malloc(n * 2 + 2);
  double *r = th_dalloc(n);
  if (!h) die("out of host memory");
  th_get(ctx, b, h, n * 2); /* little-endian: element 2i is the low half of word i */
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    r[i] = th_half(x[i]);
    bad += th_unhalf(h[i]) != r[i];
  }
  if (bad) th_expect(0, "pack_f16 wrote %zu of %zu halves other than th_half's", bad, n);
  free(h);
  dtr_buf_destroy(ctx, src);
  *ref = r;
  return b;
}

double th_rel_err(const float *got, const double *ref, size_t n) {
  double e = 0, r = 0;
  for (size_t i = 0; i < n; i++) {
    e += (got[i] - ref[i]) * (got[i] - ref[i]);
    r += ref[i] * ref[i];
  }
  return sqrt(e) / sqrt(r > 0 ? r : 1);
}

int th_set_texel_f16(dtr_ctx *ctx, int on) {
  dtr_device_info *di = (dtr_device_info *)dtr_ctx_device(ctx);
  int had = di->texel_f16;
  di->texel_f16 = on;
  return had;
}

void th_expect_f16(const char *what, const float *got, const float *got32, const double *ref16,
                   const double *ref32, size_t n) {
  double e16 = th_rel_err(got, ref16, n), e32 = th_rel_err(got, ref32, n);
  th_expect(e16 < 1e-4 && 10 * e16 < e32, "%s: the oracle on fp16-rounded inputs (relative "
            "error %.3g), not on fp32 ones (%.3g)", what, e16, e32);
  double e = th_rel_err(got32, ref16, n);
  th_expect(!(e < 1e-2), "%s: the packed inputs read as fp32 miss the oracle (relative error "
            "%.3g)", what, e);
}
