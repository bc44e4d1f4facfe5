/* eval.c — `dtr eval`: scores a task file (models/tasks.h JSONL) with a model
 * directory, lm-evaluation-harness style (host/eval.h): acc and acc_norm with
 * Wilson 95% intervals for multiple choice; perplexity, NLL per token and bits
 * per byte with per-document 95% intervals for target (perplexity) tasks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "eval.h"
#include "model.h"
#include "tasks.h"
#include "tokenizer.h"

static void help(FILE *f) {
  fprintf(f,
          "usage: dtr eval --model DIR --task FILE [flags]\n"
          "  --model DIR   model directory: config.json, *.safetensors, tokenizer.json\n"
          "  --task FILE   task JSONL: {context, choices, gold} or {context?, target} lines\n"
          "  --limit N     score only the first N examples\n"
          "  --batch N     sequences per forward (default 8)\n"
          "  --ctx N       window in tokens (default: max_position_embeddings, at most 512)\n"
          "  --tokens N    packed tokens per forward (default: max(ctx + batch - 1, 512))\n"
          "  --json        print one JSON object instead of text\n"
          "  --device N    Vulkan device (default: DTR_DEVICE, else the first GPU)\n"
          "Multiple choice: acc and acc_norm (per character of the choice) with Wilson 95%%\n"
          "intervals. Target tasks: perplexity, NLL per token and bits per byte with 95%%\n"
          "intervals from the per-document standard error.\n");
}

/* A JSON string literal of s. */
static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

/* A JSON number (null for NaN / infinity). */
static void json_num(double x) {
  if (isfinite(x)) printf("%.10g", x);
  else printf("null");
}

int cmd_eval(int argc, char **argv) {
  const char *dir = NULL, *file = NULL;
  long limit = 0, batch = 8, ctxlen = 0, tokens = 0, device = -1;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); return 0; }
    if (!strcmp(a, "--json")) { json = 1; continue; }
    int ok = 1;
    if (!strcmp(a, "--model")) dir = v;
    else if (!strcmp(a, "--task")) file = v;
    else if (!strcmp(a, "--limit")) ok = cli_int(a, v, &limit);
    else if (!strcmp(a, "--batch")) ok = cli_int(a, v, &batch);
    else if (!strcmp(a, "--ctx")) ok = cli_int(a, v, &ctxlen);
    else if (!strcmp(a, "--tokens")) ok = cli_int(a, v, &tokens);
    else if (!strcmp(a, "--device")) ok = cli_int(a, v, &device);
    else {
      fprintf(stderr, "dtr eval: unknown flag '%s'\n", a);
      help(stderr);
      return 2;
    }
    if (!ok) return 2;
    if (!v) { fprintf(stderr, "dtr eval: %s needs a value\n", a); return 2; }
    i++;
  }
  if (!dir || !file) {
    fprintf(stderr, "dtr eval: --model and --task are required\n");
    help(stderr);
    return 2;
  }
  if (limit < 0) { fprintf(stderr, "dtr eval: --limit must be >= 0\n"); return 2; }
  if (batch < 1 || batch > 1024) { fprintf(stderr, "dtr eval: --batch must be 1..1024\n"); return 2; }
  if (ctxlen < 0 || ctxlen == 1 || ctxlen > 65536) {
    fprintf(stderr, "dtr eval: --ctx must be 2..65536\n");
    return 2;
  }
  if (tokens < 0 || tokens > (1 << 20)) { fprintf(stderr, "dtr eval: --tokens must be 1..1048576\n"); return 2; }

  /* everything that can fail on the host before the device starts */
  char err[1024], tp[4096];
  dtr_status st;
  dtr_task *task = NULL;
  if (dtr_task_load(file, &task, err, sizeof err)) { fprintf(stderr, "dtr: %s\n", err); return 1; }
  dtr_model_config cfg;
  if (dtr_model_config_load(dir, &cfg, err, sizeof err)) {
    fprintf(stderr, "dtr: %s\n", err);
    dtr_task_free(task);
    return 1;
  }
  snprintf(tp, sizeof tp, "%s/tokenizer.json", dir);
  struct stat sb;
  if (stat(tp, &sb)) {
    fprintf(stderr, "dtr: %s: not found (dtr eval needs the model's tokenizer.json)\n", tp);
    dtr_task_free(task);
    return 1;
  }
  dtr_tokenizer *tok = dtr_tokenizer_load(tp, &st, err, sizeof err);
  if (!tok) { fprintf(stderr, "dtr: %s\n", err); dtr_task_free(task); return 1; }
  dtr_eval_set *set = NULL;
  if (dtr_eval_prepare(task, tok, dtr_eval_prefix_token(&cfg, tok), (size_t)limit, &set, err,
                       sizeof err)) {
    fprintf(stderr, "dtr: %s\n", err);
    dtr_tokenizer_free(tok);
    dtr_task_free(task);
    return 1;
  }
  if (!ctxlen) ctxlen = cfg.max_position_embeddings < 512 ? cfg.max_position_embeddings : 512;
  if (ctxlen < 2) ctxlen = 2;
  long need = ctxlen + batch - 1;
  if (!tokens) tokens = need > 512 ? need : 512;
  if (tokens < need) tokens = need; /* a full window plus one-token pads must fit */

  int rc = 1;
  dtr_model *m = NULL;
  dtr_eval_result r;
  memset(&r, 0, sizeof r);
  dtr_ctx *ctx = cli_ctx((int)device);
  if (!ctx) goto done;
  m = dtr_model_load(ctx, dir, (uint32_t)tokens, &st, err, sizeof err);
  if (!m) { fprintf(stderr, "dtr: %s\n", err); goto done; }
  dtr_eval_opts o;
  memset(&o, 0, sizeof o);
  o.batch = (uint32_t)batch;
  o.window = (uint32_t)ctxlen;
  if (dtr_eval_run(m, set, &o, &r, err, sizeof err)) { fprintf(stderr, "dtr: %s\n", err); goto done; }
  const char *name = task->name ? task->name : file;
  if (json) {
    printf("{\"task\": ");
    json_str(name);
    printf(", \"type\": \"%s\", \"examples\": %zu", r.multiple_choice ? "multiple_choice" : "perplexity", r.n);
    if (r.multiple_choice) {
      printf(", \"acc\": "); json_num(r.acc);
      printf(", \"acc_ci\": ["); json_num(r.acc_lo); printf(", "); json_num(r.acc_hi);
      printf("], \"acc_norm\": "); json_num(r.acc_norm);
      printf(", \"acc_norm_ci\": ["); json_num(r.acc_norm_lo); printf(", "); json_num(r.acc_norm_hi);
      printf("], \"ci\": \"wilson95\"");
    } else {
      printf(", \"tokens\": %zu, \"bytes\": %zu", r.tokens, r.bytes);
      printf(", \"ppl\": "); json_num(r.ppl);
      printf(", \"ppl_ci\": ["); json_num(r.ppl_lo); printf(", "); json_num(r.ppl_hi);
      printf("], \"nll_per_token\": "); json_num(r.nll);
      printf(", \"nll_ci\": ["); json_num(r.nll_lo); printf(", "); json_num(r.nll_hi);
      printf("], \"bits_per_byte\": "); json_num(r.bpb);
      printf(", \"bpb_ci\": ["); json_num(r.bpb_lo); printf(", "); json_num(r.bpb_hi);
      printf("], \"ci\": \"per_document_se95\"");
    }
    printf(", \"window\": %ld, \"batch\": %ld, \"forwards\": %zu, \"forward_tokens\": %zu"
           ", \"seconds\": %.3f}\n", ctxlen, batch, r.forwards, r.forward_tokens, r.seconds);
  } else {
    if (r.multiple_choice) {
      printf("task %s: multiple choice, %zu examples\n", name, r.n);
      printf("acc       %.4f  95%% CI [%.4f, %.4f]  (%zu/%zu, Wilson)\n", r.acc, r.acc_lo,
             r.acc_hi, r.correct, r.n);
      printf("acc_norm  %.4f  95%% CI [%.4f, %.4f]  (%zu/%zu, Wilson)\n", r.acc_norm,
             r.acc_norm_lo, r.acc_norm_hi, r.correct_norm, r.n);
    } else {
      printf("task %s: perplexity, %zu documents, %zu tokens, %zu bytes\n", name, r.n, r.tokens,
             r.bytes);
      printf("ppl        %.4f  95%% CI [%.4f, %.4f]\n", r.ppl, r.ppl_lo, r.ppl_hi);
      printf("nll/token  %.5f  95%% CI [%.5f, %.5f]\n", r.nll, r.nll_lo, r.nll_hi);
      printf("bits/byte  %.5f  95%% CI [%.5f, %.5f]\n", r.bpb, r.bpb_lo, r.bpb_hi);
      printf("(intervals: per-document standard error of the token-weighted mean)\n");
    }
    printf("time %.2f s (%.1f examples/s; %zu forwards, %zu tokens, window %ld, batch %ld)\n",
           r.seconds, r.n / (r.seconds > 0 ? r.seconds : 1), r.forwards, r.forward_tokens,
           ctxlen, batch);
  }
  rc = 0;
done:
  dtr_eval_result_free(&r);
  dtr_eval_set_free(set);
  dtr_tokenizer_free(tok);
  dtr_task_free(task);
  dtr_model_destroy(m);
  dtr_ctx_destroy(ctx);
  return rc;
}
