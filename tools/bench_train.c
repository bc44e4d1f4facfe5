/* bench_train.c — `dtr bench train`: training throughput of a train.json model
 * (the default teacher's unless --config says otherwise) on random tokens:
 * tokens/s and model FLOP/s, and the utilisation against the device's own
 * matmul rate measured in the same run on the model's largest matmul shape
 * (the lm head). Model FLOPs per token: 6 x the matmul parameters (forward
 * 2, backward 4, lm head included) + the causal attention's 6 x layers x
 * seq_len x hidden (QK^T and PV, forward and backward, half the square). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dtr_ops.h"
#include "train.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: dtr bench train [--config train.json] [--steps N] [--vocab N] [--json]\n"
          "  Times optimizer steps of the model a train.json describes on random tokens\n"
          "  (no data files needed) and prints tokens/s, model GFLOP/s and the\n"
          "  utilisation against the device's measured matmul rate.\n"
          "  --config F   (models/dtr-tiny/train.json)\n"
          "  --steps N    timed steps after 2 warm-up steps (10); the median is reported\n"
          "  --vocab N    vocabulary size (4096, the default tokenizer's)\n"
          "  --json       machine-readable output\n"
          "  --device N   Vulkan device (see dtr info)\n");
}

typedef struct mm {
  dtr_ctx *ctx;
  dtr_buf *a, *b, *c;
  dtr_matmul_desc d;
} mm;

static dtr_status rec_mm(void *ud) {
  mm *u = ud;
  return dtr_op_matmul(u->ctx, dtr_whole(u->c), dtr_whole(u->a), dtr_whole(u->b), DTR_NONE,
                       &u->d);
}

int cmd_bench_train(int argc, char **argv) {
  const char *config = "models/dtr-tiny/train.json";
  long steps = 10, vocab = 4096, device = -1;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
    if (!strcmp(a, "--json")) { json = 1; continue; }
    if (i + 1 >= argc) {
      fprintf(stderr, "dtr bench train: unknown or incomplete flag %s\n", a);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--config")) config = v;
    else if (!strcmp(a, "--steps")) {
      if (!cli_int(a, v, &steps) || steps < 1) return 2;
    } else if (!strcmp(a, "--vocab")) {
      if (!cli_int(a, v, &vocab) || vocab < 2) return 2;
    } else if (!strcmp(a, "--device")) {
      if (!cli_int(a, v, &device)) return 2;
    } else {
      fprintf(stderr, "dtr bench train: unknown flag %s\n", a);
      return 2;
    }
  }
  char err[1024];
  dtr_train_config c;
  if (dtr_train_config_load(config, &c, err, sizeof err)) {
    fprintf(stderr, "dtr bench train: %s\n", err);
    return 1;
  }
  c.vocab = (uint32_t)vocab;
  c.steps = (uint32_t)steps + 2;
  c.warmup = 1;
  c.recall_fraction = 0; /* random tokens only: no recall phase either */
  c.recall_only_steps = 0;
  if (dtr_train_config_validate(&c, err, sizeof err)) {
    fprintf(stderr, "dtr bench train: %s\n", err);
    return 1;
  }
  dtr_ctx *ctx = cli_ctx((int)device);
  if (!ctx) return 1;
  int rc = 1;
  dtr_trainer *t = dtr_trainer_create(ctx, &c, err, sizeof err);
  size_t n = (size_t)c.batch * c.seq_len * 64 + 1;
  int32_t *ids = malloc(n * sizeof *ids);
  double *ms = malloc(steps * sizeof *ms);
  mm u = {ctx, NULL, NULL, NULL, {0}};
  if (!t || !ids || !ms) {
    fprintf(stderr, "dtr bench train: %s\n", t ? "out of memory" : err);
    goto done;
  }
  uint64_t s = 42;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    ids[i] = (int32_t)((s >> 33) % (uint64_t)vocab);
  }
  if (dtr_trainer_set_data(t, ids, n, NULL, 0, NULL, 0, err, sizeof err)) {
    fprintf(stderr, "dtr bench train: %s\n", err);
    goto done;
  }
  dtr_train_stats st;
  for (long i = 0; i < steps + 2; i++) {
    double t0 = cli_now();
    if (dtr_trainer_step(t, &st, err, sizeof err)) {
      fprintf(stderr, "dtr bench train: %s\n", err);
      goto done;
    }
    if (i >= 2) ms[i - 2] = (cli_now() - t0) * 1e3;
  }
  double step_ms = cli_median(ms, (int)steps);
  /* model FLOPs */
  double Hd = c.hidden, I = c.intermediate, L = c.layers, T = c.seq_len;
  double kv = (double)c.kv_heads * (c.hidden / c.heads);
  double per_layer = Hd * Hd * 2 + 2 * Hd * kv + 3 * Hd * I;
  double mat_params = L * per_layer + (double)vocab * Hd;
  double tokens = (double)c.batch * c.seq_len;
  double flops = tokens * (6.0 * mat_params + 6.0 * L * T * Hd);
  double tps = tokens / (step_ms / 1e3), gflops = flops / (step_ms / 1e3) / 1e9;
  /* the device's matmul rate on the lm head's shape */
  u.d = (dtr_matmul_desc){.M = (uint32_t)tokens, .N = (uint32_t)vocab, .K = c.hidden,
                          .batch = 1, .trans_b = 1, .alpha = 1.0f};
  u.a = dtr_buf_create(ctx, (size_t)tokens * c.hidden * 4);
  u.b = dtr_buf_create(ctx, (size_t)vocab * c.hidden * 4);
  u.c = dtr_buf_create(ctx, (size_t)tokens * vocab * 4);
  if (!u.a || !u.b || !u.c || dtr_buf_fill(ctx, u.a, 0, dtr_buf_size(u.a), 0) ||
      dtr_buf_fill(ctx, u.b, 0, dtr_buf_size(u.b), 0)) {
    fprintf(stderr, "dtr bench train: %s\n", dtr_ctx_error(ctx));
    goto done;
  }
  double mm_ms = cli_time_ms(ctx, rec_mm, &u, 5);
  if (mm_ms < 0) goto done;
  double mm_gflops = 2.0 * tokens * vocab * c.hidden / (mm_ms / 1e3) / 1e9;
  double util = gflops / mm_gflops;
  if (json)
    printf("{\"device\": \"%s\", \"config\": \"%s\", \"parameters\": %zu, \"tokens_per_step\": "
           "%.0f, \"step_ms\": %.3f, \"tokens_per_s\": %.1f, \"model_gflops\": %.3f, "
           "\"matmul_gflops\": %.3f, \"utilisation\": %.4f}\n",
           dtr_ctx_device(ctx)->name, config, dtr_trainer_nparams(t), tokens, step_ms, tps,
           gflops, mm_gflops, util);
  else {
    printf("dtr bench train: %s on %s\n", config, dtr_ctx_device(ctx)->name);
    printf("  model: %u layers, hidden %u, heads %u/%u, ffn %u, vocab %ld: %.2fM parameters\n",
           c.layers, c.hidden, c.heads, c.kv_heads, c.intermediate, vocab,
           dtr_trainer_nparams(t) / 1e6);
    printf("  step of %u x %u tokens: %.1f ms (median of %ld)\n", c.batch, c.seq_len, step_ms,
           steps);
    printf("  %-28s %12.0f\n", "training tokens/s", tps);
    printf("  %-28s %12.2f\n", "model GFLOP/s", gflops);
    printf("  %-28s %12.2f  (%ux%ux%u, the lm head)\n", "device matmul GFLOP/s", mm_gflops,
           (uint32_t)tokens, (uint32_t)vocab, c.hidden);
    printf("  %-28s %11.1f%%\n", "utilisation", 100 * util);
  }
  rc = 0;
done:
  dtr_buf_destroy(ctx, u.a);
  dtr_buf_destroy(ctx, u.b);
  dtr_buf_destroy(ctx, u.c);
  dtr_trainer_destroy(t);
  free(ids);
  free(ms);
  dtr_ctx_destroy(ctx);
  return rc;
}
