/* bench_decode.c — `dtr bench decode`: decode speed (tokens/s, batch 1) and
 * cache memory of a model at several context lengths, and with --replace the
 * same for the hybrid whose listed layers are student blocks, in the same run.
 * The KV cache is marked as holding ctx-1 tokens without computing them: the
 * cost of a decode step does not depend on what the cache holds. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"

static void help(FILE *f) {
  fprintf(f,
          "usage: dtr bench decode --model DIR [flags]\n"
          "  --model DIR       model directory (config.json + safetensors)\n"
          "  --ctx LIST        context lengths (default 512,2048,16384,65536)\n"
          "  --replace LIST    layers to replace by student blocks, e.g. 1,3 (default none)\n"
          "  --block KIND      gdn | gla | jet, the student kind for --replace (default gdn)\n"
          "  --steps N         timed decode steps per context (default 16)\n"
          "  --json            machine-readable output\n"
          "  --device N        Vulkan device (default: DTR_DEVICE, else the first GPU)\n"
          "The cache is filled to ctx-1 tokens without computing them (content does not\n"
          "affect speed); then --steps single-token steps are timed (median step).\n"
          "Memory is the KV cache + student decode states of one sequence.\n");
}

static int parse_list(const char *flag, const char *s, long *out, int max) {
  int n = 0;
  const char *p = s;
  while (p && *p) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || (*end && *end != ',') || v < 0 || n == max) {
      fprintf(stderr, "dtr bench decode: %s needs a comma-separated list of integers, got '%s'\n",
              flag, s);
      return -1;
    }
    out[n++] = v;
    p = *end ? end + 1 : end;
  }
  if (!n) fprintf(stderr, "dtr bench decode: %s is empty\n", flag);
  return n ? n : -1;
}

/* s as a JSON string body (quotes, backslashes and control characters escaped). */
static void json_str(const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
}

/* Median ms of one decode step at context ctx; memory into *bytes. */
double cli_decode_ms(dtr_model *m, uint32_t ctx, int steps, size_t *bytes) {
  dtr_ctx *c = dtr_model_ctx(m);
  dtr_session *s = dtr_session_create(m, 1, ctx + (uint32_t)steps + 2);
  if (!s) { fprintf(stderr, "dtr: ctx %u: %s\n", ctx, dtr_ctx_error(c)); return -1; }
  *bytes = dtr_session_cache_bytes(s);
  double t[256];
  int32_t tok = 0;
  /* the logits of every step come back, as in generation */
  float *logits = malloc((size_t)dtr_model_cfg(m)->vocab_size * 4);
  int ok = logits != NULL;
  /* warm-up (pipelines compile lazily), then the timed steps */
  for (int rep = 0; rep < 2 && ok; rep++) {
    ok = dtr_session_reset(s) == DTR_OK && dtr_session_set_len(s, ctx - 1) == DTR_OK;
    int n = rep ? steps : 2;
    for (int i = 0; i < n && ok; i++) {
      double t0 = cli_now();
      ok = dtr_session_decode(s, &tok, logits) == DTR_OK;
      if (rep) t[i] = 1e3 * (cli_now() - t0);
    }
  }
  dtr_session_destroy(s);
  free(logits);
  if (!ok) { fprintf(stderr, "dtr: ctx %u: %s\n", ctx, dtr_ctx_error(c)); return -1; }
  return cli_median(t, steps);
}

int cmd_bench_decode(int argc, char **argv) {
  const char *dir = NULL, *ctxs = "512,2048,16384,65536", *repl = NULL, *kind = "gdn";
  long steps = 16, device = -1;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); return 0; }
    if (!strcmp(a, "--json")) { json = 1; continue; }
    int ok = 1;
    if (!strcmp(a, "--model")) dir = v;
    else if (!strcmp(a, "--ctx")) ctxs = v;
    else if (!strcmp(a, "--replace")) repl = v;
    else if (!strcmp(a, "--block")) kind = v;
    else if (!strcmp(a, "--steps")) ok = cli_int(a, v, &steps);
    else if (!strcmp(a, "--device")) ok = cli_int(a, v, &device);
    else {
      fprintf(stderr, "dtr bench decode: unknown flag '%s'\n", a);
      help(stderr);
      return 2;
    }
    if (!ok) return 2;
    if (!v) { fprintf(stderr, "dtr bench decode: %s needs a value\n", a); return 2; }
    i++;
  }
  if (!dir) { fprintf(stderr, "dtr bench decode: --model is required\n"); help(stderr); return 2; }
  long cl[32], rl[512];
  int nc = parse_list("--ctx", ctxs, cl, 32), nr = 0;
  if (nc < 0) return 2;
  for (int i = 0; i < nc; i++)
    if (cl[i] < 2 || cl[i] > (1L << 24)) {
      fprintf(stderr, "dtr bench decode: context %ld outside 2..16777216\n", cl[i]);
      return 2;
    }
  if (repl && (nr = parse_list("--replace", repl, rl, 512)) < 0) return 2;
  int bk = dtr_block_kind_parse(kind);
  if (bk < 0) { fprintf(stderr, "dtr bench decode: --block must be gdn, gla or jet, got '%s'\n", kind); return 2; }
  if (steps < 1 || steps > 256) { fprintf(stderr, "dtr bench decode: --steps must be 1..256\n"); return 2; }
  dtr_ctx *ctx = cli_ctx((int)device);
  if (!ctx) return 1;
  char err[1024];
  dtr_status st;
  int rc = 1;
  double base_ms[32], hyb_ms[32];
  size_t base_b[32], hyb_b[32];
  dtr_model *m = dtr_model_load(ctx, dir, 16, &st, err, sizeof err);
  if (!m) { fprintf(stderr, "dtr: %s\n", err); goto done; }
  const dtr_model_config *c = dtr_model_cfg(m);
  for (int i = 0; i < nr; i++)
    if (rl[i] >= c->num_hidden_layers) {
      fprintf(stderr, "dtr bench decode: --replace %ld: the model has %u layers\n", rl[i],
              c->num_hidden_layers);
      rc = 2;
      goto done;
    }
  for (int i = 0; i < nc; i++)
    if ((base_ms[i] = cli_decode_ms(m, (uint32_t)cl[i], (int)steps, &base_b[i])) < 0) goto done;
  for (int i = 0; i < nr; i++)
    if (c->layer_types[rl[i]] == DTR_LAYER_FULL_ATTENTION &&
        dtr_model_replace_layer_kind(m, (uint32_t)rl[i], (dtr_block_kind)bk, 1)) {
      fprintf(stderr, "dtr: %s\n", dtr_ctx_error(ctx));
      goto done;
    }
  for (int i = 0; nr && i < nc; i++)
    if ((hyb_ms[i] = cli_decode_ms(m, (uint32_t)cl[i], (int)steps, &hyb_b[i])) < 0) goto done;
  const dtr_device_info *di = dtr_ctx_device(ctx);
  if (json) {
    printf("{\"device\": \"");
    json_str(di->name);
    printf("\", \"model\": \"");
    json_str(dir);
    printf("\", \"batch\": 1, \"steps\": %ld, \"block\": \"%s\", \"replace\": [", steps, kind);
    for (int i = 0; i < nr; i++) printf("%s%ld", i ? ", " : "", rl[i]);
    printf("], \"results\": [");
    for (int i = 0; i < nc; i++) {
      printf("%s\n  {\"ctx\": %ld, \"ms_per_token\": %.4f, \"tokens_per_s\": %.2f, "
             "\"cache_bytes\": %zu",
             i ? "," : "", cl[i], base_ms[i], 1e3 / base_ms[i], base_b[i]);
      if (nr)
        printf(", \"hybrid_ms_per_token\": %.4f, \"hybrid_tokens_per_s\": %.2f, "
               "\"hybrid_cache_bytes\": %zu, \"speedup\": %.3f",
               hyb_ms[i], 1e3 / hyb_ms[i], hyb_b[i], base_ms[i] / hyb_ms[i]);
      printf("}");
    }
    printf("\n]}\n");
  } else {
    printf("dtr bench decode — %s on %s, batch 1, median of %ld steps\n", dir, di->name, steps);
    printf("(cache filled to ctx-1 tokens without computing; content does not affect speed)\n");
    if (nr) {
      printf("hybrid: layers");
      for (int i = 0; i < nr; i++) printf(" %ld", rl[i]);
      printf(" -> %s\n", kind);
    }
    printf("%10s %12s %12s", "ctx", "tokens/s", "cache MiB");
    if (nr) printf(" %14s %14s %9s", "hybrid tok/s", "hybrid MiB", "speedup");
    printf("\n");
    for (int i = 0; i < nc; i++) {
      printf("%10ld %12.1f %12.2f", cl[i], 1e3 / base_ms[i], base_b[i] / 1048576.0);
      if (nr)
        printf(" %14.1f %14.2f %8.2fx", 1e3 / hyb_ms[i], hyb_b[i] / 1048576.0,
               base_ms[i] / hyb_ms[i]);
      printf("\n");
    }
  }
  if (dtr_ctx_profiling(ctx)) dtr_ctx_profile_report(ctx, stderr);
  rc = 0;
done:
  dtr_model_destroy(m);
  dtr_ctx_destroy(ctx);
  return rc;
}
