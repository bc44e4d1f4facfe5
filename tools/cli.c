/* cli.c — helpers shared by the dtr subcommands. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

dtr_ctx *cli_ctx(int device) {
  dtr_ctx_options o = DTR_CTX_DEFAULTS;
  o.device = device;
  char err[1024];
  dtr_status st;
  dtr_ctx *ctx = dtr_ctx_create(&o, &st, err, sizeof err);
  if (!ctx) fprintf(stderr, "dtr: %s\n", err);
  return ctx;
}

int cli_int(const char *flag, const char *s, long *out) {
  char *end;
  errno = 0;
  long v = s ? strtol(s, &end, 10) : 0;
  if (!s || !*s || *end || errno) {
    fprintf(stderr, "dtr: %s needs an integer, got '%s'\n", flag, s ? s : "(nothing)");
    return 0;
  }
  *out = v;
  return 1;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double cli_median(double *x, int n) {
  if (n <= 0) return 0;
  qsort(x, (size_t)n, sizeof *x, cmp_double);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double cli_time_ms(dtr_ctx *ctx, dtr_status (*rec)(void *ud), void *ud, int repeat) {
  double t[64];
  if (repeat < 1) repeat = 1;
  if (repeat > 64) repeat = 64;
  for (int i = -1; i < repeat; i++) {
    double t0 = cli_now();
    dtr_status st = rec(ud);
    if (st == DTR_OK) st = dtr_ctx_submit(ctx);
    if (st != DTR_OK) {
      fprintf(stderr, "dtr: %s: %s\n", dtr_status_name(st), dtr_ctx_error(ctx));
      return -1;
    }
    if (i >= 0) t[i] = 1e3 * (cli_now() - t0);
  }
  return cli_median(t, repeat);
}

int cli_mkdirs(const char *prog, const char *dir) {
  char p[4096];
  size_t n = strlen(dir);
  if (!n || n >= sizeof p) {
    fprintf(stderr, "%s: '%s': not a usable directory name\n", prog, dir);
    return 0;
  }
  memcpy(p, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != 0) continue;
    char c = p[i];
    p[i] = 0;
    if (mkdir(p, 0777) && errno != EEXIST) {
      fprintf(stderr, "%s: %s: cannot create directory: %s\n", prog, p, strerror(errno));
      return 0;
    }
    p[i] = c;
  }
  struct stat sb;
  if (stat(dir, &sb) || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "%s: %s: exists and is not a directory\n", prog, dir);
    return 0;
  }
  return 1;
}

void cli_fmt_dur(double s, char *b, size_t n) {
  if (!(s >= 0) || s > 1e7) {
    snprintf(b, n, "?");
    return;
  }
  long x = (long)(s + 0.5);
  if (x >= 3600) snprintf(b, n, "%ldh%02ldm", x / 3600, x / 60 % 60);
  else snprintf(b, n, "%ldm%02lds", x / 60, x % 60);
}
