/* bench_ops.c — `dtr bench ops`: times the dense kernels (matmul, causal
 * attention forward and backward) on the device and, in the same run, a native
 * CPU baseline: OpenBLAS sgemm for matmul, and for attention a plain
 * multithreaded C implementation (pthreads over heads, cblas_sgemm for QK^T and
 * PV per head, causal masking). Prints a table or, with --json, one object.
 *
 * A timed run records the op's dispatches and submits (waiting for the result);
 * warm-up runs first compile the pipelines. Flops: matmul 2MNK; causal attention
 * forward 4*B*H*D*T(T+1)/2 (only the causal half), backward 2.5x forward.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dtr_ops.h"
#ifdef DTR_HAVE_CBLAS
#include <cblas.h>
#endif

typedef struct row {
  char op[32], shape[64];
  double ms, gflops, base_gflops; /* base_gflops < 0: no baseline */
} row;

typedef struct bench {
  dtr_ctx *ctx;
  int repeat;
  row rows[32];
  int nrows;
  int failed;
} bench;

static void fill_rand(float *x, size_t n, unsigned seed) {
  uint32_t s = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)((s >> 8) * (1.0 / 16777216.0) - 0.5);
  }
}

static dtr_buf *upload(dtr_ctx *ctx, const float *x, size_t n) {
  dtr_buf *b = dtr_buf_create(ctx, n * sizeof(float));
  if (b && dtr_buf_upload(ctx, b, 0, x, n * sizeof(float))) {
    dtr_buf_destroy(ctx, b);
    return NULL;
  }
  return b;
}

/* Median seconds of `repeat` runs of fn after two warm-ups; < 0 on failure. */
typedef dtr_status (*dev_fn)(dtr_ctx *ctx, void *ud);
static double time_dev(bench *bn, dev_fn fn, void *ud) {
  double t[64];
  int n = bn->repeat < 64 ? bn->repeat : 64;
  for (int i = -2; i < n; i++) {
    double t0 = cli_now();
    dtr_status st = fn(bn->ctx, ud);
    if (!st) st = dtr_ctx_submit(bn->ctx);
    if (st) {
      fprintf(stderr, "dtr bench ops: %s\n", dtr_ctx_error(bn->ctx));
      return -1;
    }
    if (i >= 0) t[i] = cli_now() - t0;
  }
  return cli_median(t, n);
}

typedef void (*cpu_fn)(void *ud);
static double time_cpu(int repeat, cpu_fn fn, void *ud) {
  double t[64];
  int n = repeat < 64 ? repeat : 64;
  for (int i = -1; i < n; i++) {
    double t0 = cli_now();
    fn(ud);
    if (i >= 0) t[i] = cli_now() - t0;
  }
  return cli_median(t, n);
}

static void add_row(bench *bn, const char *op, const char *shape, double sec, double flops,
                    double base_sec) {
  if (bn->nrows >= (int)(sizeof bn->rows / sizeof *bn->rows)) return;
  row *r = &bn->rows[bn->nrows++];
  snprintf(r->op, sizeof r->op, "%s", op);
  snprintf(r->shape, sizeof r->shape, "%s", shape);
  r->ms = sec * 1e3;
  r->gflops = sec > 0 ? flops / sec * 1e-9 : 0;
  r->base_gflops = base_sec > 0 ? flops / base_sec * 1e-9 : -1;
}

/* ---- matmul ---------------------------------------------------------------- */
typedef struct mm_ud {
  dtr_buf *a, *b, *c;
  dtr_matmul_desc d;
  const float *ha, *hb;
  float *hc;
} mm_ud;

static dtr_status mm_dev(dtr_ctx *ctx, void *p) {
  mm_ud *u = p;
  return dtr_op_matmul(ctx, dtr_whole(u->c), dtr_whole(u->a), dtr_whole(u->b), DTR_NONE, &u->d);
}

#ifdef DTR_HAVE_CBLAS
static void mm_cpu(void *p) {
  mm_ud *u = p;
  const dtr_matmul_desc *d = &u->d;
  cblas_sgemm(CblasRowMajor, d->trans_a ? CblasTrans : CblasNoTrans,
              d->trans_b ? CblasTrans : CblasNoTrans, (int)d->M, (int)d->N, (int)d->K, d->alpha,
              u->ha, d->trans_a ? (int)d->M : (int)d->K, u->hb, d->trans_b ? (int)d->K : (int)d->N,
              d->beta, u->hc, (int)d->N);
}
#endif

static void bench_matmul(bench *bn, uint32_t M, uint32_t N, uint32_t K, int ta, int tb) {
  size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
  float *ha = malloc(na * sizeof *ha), *hb = malloc(nb * sizeof *hb);
  float *hc = calloc(nc, sizeof *hc);
  mm_ud u = {.d = {.M = M, .N = N, .K = K, .batch = 1, .trans_a = ta, .trans_b = tb, .alpha = 1.0f},
             .ha = ha,
             .hb = hb,
             .hc = hc};
  char shape[64];
  snprintf(shape, sizeof shape, "%ux%ux%u%s", M, N, K,
           ta ? (tb ? " TT" : " TN") : (tb ? " NT" : ""));
  double sec = -1, base = -1;
  if (ha && hb && hc) {
    fill_rand(ha, na, 1), fill_rand(hb, nb, 2);
    u.a = upload(bn->ctx, ha, na), u.b = upload(bn->ctx, hb, nb);
    u.c = dtr_buf_create(bn->ctx, nc * sizeof(float));
    if (u.a && u.b && u.c) sec = time_dev(bn, mm_dev, &u);
#ifdef DTR_HAVE_CBLAS
    base = time_cpu(bn->repeat, mm_cpu, &u);
#endif
  }
  if (sec < 0) bn->failed = 1;
  add_row(bn, "matmul", shape, sec, 2.0 * M * N * K, base);
  dtr_buf_destroy(bn->ctx, u.a), dtr_buf_destroy(bn->ctx, u.b), dtr_buf_destroy(bn->ctx, u.c);
  free(ha), free(hb), free(hc);
}

/* ---- attention ------------------------------------------------------------- */
typedef struct at_ud {
  dtr_attn_desc d;
  dtr_buf *q, *k, *v, *o, *lse, *dout, *dq, *dk, *dv;
  float *hq, *hk, *hv, *ho, *hlse, *hdout, *hdq, *hdk, *hdv;
  int backward;
} at_ud;

static dtr_status at_fwd_dev(dtr_ctx *ctx, void *p) {
  at_ud *u = p;
  return dtr_op_attention_fwd(ctx, dtr_whole(u->o), dtr_whole(u->lse), dtr_whole(u->q),
                              dtr_whole(u->k), dtr_whole(u->v), &u->d);
}
static dtr_status at_bwd_dev(dtr_ctx *ctx, void *p) {
  at_ud *u = p;
  return dtr_op_attention_bwd(ctx, dtr_whole(u->dq), dtr_whole(u->dk), dtr_whole(u->dv),
                              dtr_whole(u->dout), dtr_whole(u->q), dtr_whole(u->k), dtr_whole(u->v),
                              dtr_whole(u->o), dtr_whole(u->lse), &u->d);
}

#ifdef DTR_HAVE_CBLAS
/* The CPU baseline, one head per task: rows of q, k, v of head h are strided by
 * H*D (layout (B, T, H, D)), which sgemm takes as the leading dimension. */
typedef struct at_task {
  at_ud *u;
  int first, step; /* heads first, first + step, ... */
  float *S, *P;    /* (T, T) scratch */
} at_task;

static void cpu_head_fwd(at_ud *u, int bh, float *S) {
  const dtr_attn_desc *d = &u->d;
  int T = (int)d->Tq, D = (int)d->D, H = (int)d->Hq, ld = H * D;
  int b = bh / H, h = bh % H;
  size_t off = ((size_t)b * T * H + h) * D;
  const float *q = u->hq + off, *k = u->hk + off, *v = u->hv + off;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, d->scale, q, ld, k, ld, 0.0f, S, T);
  for (int i = 0; i < T; i++) { /* causal softmax: keys 0..i */
    float *s = S + (size_t)i * T, mx = -INFINITY, sum = 0;
    for (int j = 0; j <= i; j++)
      mx = s[j] > mx ? s[j] : mx;
    for (int j = 0; j <= i; j++)
      sum += (s[j] = expf(s[j] - mx));
    for (int j = 0; j <= i; j++)
      s[j] /= sum;
    for (int j = i + 1; j < T; j++)
      s[j] = 0;
    u->hlse[(size_t)bh * T + i] = mx + logf(sum);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, S, T, v, ld, 0.0f,
              u->ho + off, ld);
}

/* Backward of one head: P = softmax(S) recomputed; dV = P^T dO; dP = dO V^T;
 * dS = P * (dP - rowsum(dO * O)) (softmax's Jacobian); dQ = scale dS K;
 * dK = scale dS^T Q. */
static void cpu_head_bwd(at_ud *u, int bh, float *S, float *P) {
  const dtr_attn_desc *d = &u->d;
  int T = (int)d->Tq, D = (int)d->D, H = (int)d->Hq, ld = H * D;
  int b = bh / H, h = bh % H;
  size_t off = ((size_t)b * T * H + h) * D;
  const float *q = u->hq + off, *k = u->hk + off, *v = u->hv + off;
  const float *o = u->ho + off, *dO = u->hdout + off;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, d->scale, q, ld, k, ld, 0.0f, P, T);
  for (int i = 0; i < T; i++) {
    float *p = P + (size_t)i * T, l = u->hlse[(size_t)bh * T + i];
    for (int j = 0; j <= i; j++)
      p[j] = expf(p[j] - l);
    for (int j = i + 1; j < T; j++)
      p[j] = 0;
  }
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, P, T, dO, ld, 0.0f,
              u->hdv + off, ld);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dO, ld, v, ld, 0.0f, S, T);
  for (int i = 0; i < T; i++) {
    float di = 0;
    for (int c = 0; c < D; c++)
      di += dO[(size_t)i * ld + c] * o[(size_t)i * ld + c];
    float *s = S + (size_t)i * T, *p = P + (size_t)i * T;
    for (int j = 0; j < T; j++)
      s[j] = p[j] * (s[j] - di);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, d->scale, S, T, k, ld, 0.0f,
              u->hdq + off, ld);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, d->scale, S, T, q, ld, 0.0f,
              u->hdk + off, ld);
}

static void *at_worker(void *p) {
  at_task *t = p;
  int heads = (int)(t->u->d.B * t->u->d.Hq);
  for (int bh = t->first; bh < heads; bh += t->step) {
    if (t->u->backward)
      cpu_head_bwd(t->u, bh, t->S, t->P);
    else
      cpu_head_fwd(t->u, bh, t->S);
  }
  return NULL;
}

static void at_cpu(void *p) {
  at_ud *u = p;
  long nt = sysconf(_SC_NPROCESSORS_ONLN);
  int n = nt < 1 ? 1 : nt > 64 ? 64 : (int)nt;
  pthread_t th[64];
  at_task tasks[64];
  size_t tt = (size_t)u->d.Tq * u->d.Tq;
  int ok = 1, blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1); /* the threads here are the parallelism */
  for (int i = 0; i < n; i++) {
    tasks[i] = (at_task){u, i, n, malloc(tt * sizeof(float)), malloc(tt * sizeof(float))};
    if (!tasks[i].S || !tasks[i].P) ok = 0;
  }
  int started = 0;
  if (ok)
    for (; started < n; started++)
      if (pthread_create(&th[started], NULL, at_worker, &tasks[started])) break;
  for (int i = 0; i < started; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < n; i++)
    free(tasks[i].S), free(tasks[i].P);
  openblas_set_num_threads(blas_threads);
}
#endif

static void bench_attention(bench *bn, uint32_t T, uint32_t D, uint32_t H) {
  at_ud u = {.d = {.B = 1,
                   .Tq = T,
                   .Tk = T,
                   .kv_cap = T,
                   .Hq = H,
                   .Hkv = H,
                   .D = D,
                   .scale = 1.0f / sqrtf((float)D)}};
  size_t n = (size_t)T * H * D, nl = (size_t)H * T;
  float **host[] = {&u.hq, &u.hk, &u.hv, &u.ho, &u.hdout, &u.hdq, &u.hdk, &u.hdv};
  int ok = 1;
  for (size_t i = 0; i < sizeof host / sizeof *host; i++) {
    *host[i] = malloc(n * sizeof(float));
    if (!*host[i])
      ok = 0;
    else
      fill_rand(*host[i], n, (unsigned)i + 10);
  }
  u.hlse = malloc(nl * sizeof(float));
  if (!u.hlse) ok = 0;
  dtr_ctx *ctx = bn->ctx;
  if (ok) {
    u.q = upload(ctx, u.hq, n), u.k = upload(ctx, u.hk, n), u.v = upload(ctx, u.hv, n);
    u.dout = upload(ctx, u.hdout, n);
    u.o = dtr_buf_create(ctx, n * 4), u.lse = dtr_buf_create(ctx, nl * 4);
    u.dq = dtr_buf_create(ctx, n * 4), u.dk = dtr_buf_create(ctx, n * 4);
    u.dv = dtr_buf_create(ctx, n * 4);
    ok = u.q && u.k && u.v && u.dout && u.o && u.lse && u.dq && u.dk && u.dv;
  }
  double flops = 4.0 * D * H * (double)T * (T + 1) / 2;
  char shape[64];
  snprintf(shape, sizeof shape, "B=1 T=%u H=%u D=%u", T, H, D);
  for (int bwd = 0; bwd < 2; bwd++) {
    double sec = -1, base = -1;
    if (ok) sec = time_dev(bn, bwd ? at_bwd_dev : at_fwd_dev, &u);
#ifdef DTR_HAVE_CBLAS
    u.backward = bwd;
    if (ok) base = time_cpu(bn->repeat, at_cpu, &u);
#endif
    if (sec < 0) bn->failed = 1;
    add_row(bn, bwd ? "attention_bwd" : "attention_fwd", shape, sec, bwd ? 2.5 * flops : flops,
            base);
  }
  dtr_buf *bufs[] = {u.q, u.k, u.v, u.o, u.lse, u.dout, u.dq, u.dk, u.dv};
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    dtr_buf_destroy(ctx, bufs[i]);
  for (size_t i = 0; i < sizeof host / sizeof *host; i++)
    free(*host[i]);
  free(u.hlse);
}

/* ---- output ---------------------------------------------------------------- */
static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", *s);
    else
      putchar(*s);
  }
  putchar('"');
}

static void print_rows(const bench *bn, int json) {
  const char *dev = dtr_ctx_device(bn->ctx)->name;
  if (json) {
    printf("{\"device\": ");
    json_str(dev);
    printf(", \"ops\": [");
    for (int i = 0; i < bn->nrows; i++) {
      const row *r = &bn->rows[i];
      printf("%s{\"op\": ", i ? ", " : "");
      json_str(r->op);
      printf(", \"shape\": ");
      json_str(r->shape);
      if (r->ms >= 0)
        printf(", \"ms\": %.4f, \"gflops\": %.3f", r->ms, r->gflops);
      else
        printf(", \"ms\": null, \"gflops\": null");
      if (r->base_gflops >= 0 && r->ms >= 0)
        printf(", \"baseline_gflops\": %.3f, \"ratio\": %.4f}", r->base_gflops,
               r->gflops / r->base_gflops);
      else if (r->base_gflops >= 0)
        printf(", \"baseline_gflops\": %.3f, \"ratio\": null}", r->base_gflops);
      else
        printf(", \"baseline_gflops\": null, \"ratio\": null}");
    }
    printf("]}\n");
    return;
  }
  printf("device: %s\n", dev);
  printf("%-14s %-22s %10s %10s %14s %8s\n", "op", "shape", "ms", "GFLOP/s", "baseline GF/s",
         "ratio");
  for (int i = 0; i < bn->nrows; i++) {
    const row *r = &bn->rows[i];
    char ms[32] = "-", gf[32] = "-", bg[32] = "-", ra[32] = "-";
    if (r->ms >= 0) {
      snprintf(ms, sizeof ms, "%.3f", r->ms);
      snprintf(gf, sizeof gf, "%.2f", r->gflops);
    }
    if (r->base_gflops >= 0) {
      snprintf(bg, sizeof bg, "%.2f", r->base_gflops);
      if (r->ms >= 0) snprintf(ra, sizeof ra, "%.3f", r->gflops / r->base_gflops);
    }
    printf("%-14s %-22s %10s %10s %14s %8s\n", r->op, r->shape, ms, gf, bg, ra);
  }
}

static void usage(FILE *f) {
  fprintf(f, "usage: dtr bench ops [flags]\n"
             "Times matmul (1024^3, 2048^3, decode 4096x1x14336) and causal attention\n"
             "forward/backward (B=1, T 512 and 2048, D 64 and 128, 8 heads) on the device,\n"
             "beside a CPU baseline (OpenBLAS sgemm; threaded C attention) in the same run.\n"
             "  --device N   device index (default: DTR_DEVICE, else the first GPU, else CPU)\n"
             "  --repeat N   timed runs per op, the median is reported (default 5)\n"
             "  --quick      a small set of shapes (for tests)\n"
             "  --json       print one JSON object instead of the table\n"
             "  --help       this text\n");
}

int cmd_bench_ops(int argc, char **argv) {
  long device = -1, repeat = 5;
  int json = 0, quick = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--device")) {
      if (!cli_int("--device", i + 1 < argc ? argv[++i] : NULL, &device)) return 2;
    } else if (!strcmp(argv[i], "--repeat")) {
      if (!cli_int("--repeat", i + 1 < argc ? argv[++i] : NULL, &repeat)) return 2;
      if (repeat < 1 || repeat > 64) {
        fprintf(stderr, "dtr bench ops: --repeat must be in 1..64\n");
        return 2;
      }
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (!strcmp(argv[i], "--quick")) {
      quick = 1;
    } else {
      fprintf(stderr, "dtr bench ops: unknown flag '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  bench bn = {.repeat = (int)repeat};
  bn.ctx = cli_ctx((int)device);
  if (!bn.ctx) return 1;
  if (quick) {
    bench_matmul(&bn, 256, 256, 256, 0, 0);
    bench_matmul(&bn, 512, 1, 1024, 0, 0);
    bench_attention(&bn, 128, 64, 2);
  } else {
    const char *only = getenv("DTR_BENCH_ONLY"); /* "matmul" or "attention" */
    if (only && !strcmp(only, "mm1024")) bench_matmul(&bn, 1024, 1024, 1024, 0, 0);
    if (only && !strcmp(only, "mm1024nt")) bench_matmul(&bn, 1024, 1024, 1024, 0, 1);
    if (only && !strcmp(only, "mm1024tn")) bench_matmul(&bn, 1024, 1024, 1024, 1, 0);
    if (only && !strcmp(only, "decode")) { /* 1-row products of model decode */
      bench_matmul(&bn, 1, 1536, 512, 0, 1);
      bench_matmul(&bn, 1, 14336, 4096, 0, 1);
    }
    if (!only || !strcmp(only, "matmul")) {
      bench_matmul(&bn, 1024, 1024, 1024, 0, 0);
      bench_matmul(&bn, 2048, 2048, 2048, 0, 0);
      bench_matmul(&bn, 4096, 1, 14336, 0, 0);
    }
    if (!only || !strcmp(only, "attention"))
      for (uint32_t T = 512; T <= 2048; T *= 4)
        for (uint32_t D = 64; D <= 128; D *= 2)
          bench_attention(&bn, T, D, 8);
  }
  print_rows(&bn, json);
  dtr_ctx_destroy(bn.ctx);
  return bn.failed ? 1 : 0;
}
