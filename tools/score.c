/* score.c — `dtr score`: per-token log-likelihoods of a text file under a model,
 * with the total NLL and perplexity. Long files are cut into windows of --ctx
 * tokens that overlap by one token, so every token after the first is scored
 * exactly once, given the tokens before it in its window. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "tokenizer.h"

static void help(FILE *f) {
  fprintf(f,
          "usage: dtr score --model DIR --file F [flags]\n"
          "  --model DIR   model directory: config.json, *.safetensors, tokenizer.json\n"
          "  --file F      the text to score (UTF-8)\n"
          "  --ctx N       window length in tokens (default: the model's\n"
          "                max_position_embeddings, at most 512)\n"
          "  --device N    Vulkan device (default: DTR_DEVICE, else the first GPU)\n"
          "Prints one line per scored token: index, token text, log-probability (natural\n"
          "log); then the total NLL, the mean NLL per token and the perplexity.\n");
}

/* The token's text with control characters escaped, for one line. */
static void print_token(dtr_tokenizer *tok, int32_t id) {
  char *t;
  size_t n;
  if (dtr_tokenizer_decode(tok, &id, 1, 0, &t, &n) != DTR_OK) { printf("<%d>", id); return; }
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)t[i];
    if (ch == '\n') printf("\\n");
    else if (ch == '\t') printf("\\t");
    else if (ch == '\r') printf("\\r");
    else if (ch == '\\') printf("\\\\");
    else if (ch < 0x20) printf("\\x%02x", ch);
    else putchar(ch);
  }
  free(t);
}

int cmd_score(int argc, char **argv) {
  const char *dir = NULL, *file = NULL;
  long ctxlen = 0, device = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); return 0; }
    int ok = 1;
    if (!strcmp(a, "--model")) dir = v;
    else if (!strcmp(a, "--file")) file = v;
    else if (!strcmp(a, "--ctx")) ok = cli_int(a, v, &ctxlen);
    else if (!strcmp(a, "--device")) ok = cli_int(a, v, &device);
    else {
      fprintf(stderr, "dtr score: unknown flag '%s'\n", a);
      help(stderr);
      return 2;
    }
    if (!ok) return 2;
    if (!v) { fprintf(stderr, "dtr score: %s needs a value\n", a); return 2; }
    i++;
  }
  if (!dir || !file) {
    fprintf(stderr, "dtr score: --model and --file are required\n");
    help(stderr);
    return 2;
  }
  if (ctxlen < 0 || ctxlen == 1 || ctxlen > 65536) {
    fprintf(stderr, "dtr score: --ctx must be 2..65536\n");
    return 2;
  }
  FILE *f = fopen(file, "rb");
  if (!f) { fprintf(stderr, "dtr: %s: cannot open\n", file); return 1; }
  char *text = NULL;
  size_t tl = 0, cap = 0;
  for (;;) {
    if (tl + 65536 > cap) {
      cap = cap ? 2 * cap : 1 << 20;
      char *nt = realloc(text, cap);
      if (!nt) { free(text); fclose(f); fprintf(stderr, "dtr: out of memory\n"); return 1; }
      text = nt;
    }
    size_t r = fread(text + tl, 1, cap - tl, f);
    if (!r) break;
    tl += r;
  }
  fclose(f);
  dtr_ctx *ctx = cli_ctx((int)device);
  if (!ctx) { free(text); return 1; }
  int rc = 1;
  char err[1024];
  dtr_status st;
  dtr_tokenizer *tok = NULL;
  dtr_model *m = NULL;
  dtr_session *s = NULL;
  int32_t *ids = NULL;
  float *logits = NULL;
  dtr_model_config cfg;
  if (dtr_model_config_load(dir, &cfg, err, sizeof err)) { fprintf(stderr, "dtr: %s\n", err); goto done; }
  if (!ctxlen) ctxlen = cfg.max_position_embeddings < 512 ? cfg.max_position_embeddings : 512;
  if (ctxlen < 2) ctxlen = 2;
  m = dtr_model_load(ctx, dir, (uint32_t)ctxlen, &st, err, sizeof err);
  if (!m) { fprintf(stderr, "dtr: %s\n", err); goto done; }
  char tp[4096];
  snprintf(tp, sizeof tp, "%s/tokenizer.json", dir);
  tok = dtr_tokenizer_load(tp, &st, err, sizeof err);
  if (!tok) { fprintf(stderr, "dtr: %s\n", err); goto done; }
  size_t n;
  if (dtr_tokenizer_encode(tok, text, tl, 1, &ids, &n)) {
    fprintf(stderr, "dtr: %s: %s\n", file, dtr_tokenizer_error(tok));
    goto done;
  }
  uint32_t V = cfg.vocab_size;
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || (uint32_t)ids[i] >= V) {
      fprintf(stderr, "dtr: %s: token %d is outside the model's vocabulary (%u)\n", tp, ids[i], V);
      goto done;
    }
  if (n < 2) { fprintf(stderr, "dtr: %s: fewer than 2 tokens, nothing to score\n", file); goto done; }
  s = dtr_session_create(m, 1, (uint32_t)ctxlen);
  logits = malloc((size_t)ctxlen * V * 4);
  if (!s || !logits) { fprintf(stderr, "dtr: %s\n", dtr_ctx_error(ctx)); goto done; }
  double nll = 0;
  size_t scored = 0;
  double t0 = cli_now();
  for (size_t w0 = 0; w0 + 1 < n; w0 += (size_t)ctxlen - 1) {
    uint32_t len = (uint32_t)(n - w0 < (size_t)ctxlen ? n - w0 : (size_t)ctxlen);
    const int32_t *p = ids + w0;
    if (dtr_session_reset(s) || dtr_session_prefill(s, &p, &len, logits, 1)) {
      fprintf(stderr, "dtr: %s\n", dtr_ctx_error(ctx));
      goto done;
    }
    for (uint32_t i = 1; i < len; i++) {
      const float *row = logits + (size_t)(i - 1) * V;
      double mx = row[0], sum = 0;
      for (uint32_t j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
      for (uint32_t j = 0; j < V; j++) sum += exp(row[j] - mx);
      double lp = row[p[i]] - mx - log(sum);
      printf("%zu\t", w0 + i);
      print_token(tok, p[i]);
      printf("\t%.6f\n", lp);
      nll -= lp;
      scored++;
    }
  }
  double t1 = cli_now();
  printf("tokens %zu  total NLL %.4f  mean NLL %.6f  perplexity %.4f\n", scored, nll,
         nll / scored, exp(nll / scored));
  fprintf(stderr, "scored %zu tokens in %.2f s (%.1f tokens/s), windows of %ld\n", scored,
          t1 - t0, scored / (t1 - t0 > 0 ? t1 - t0 : 1), ctxlen);
  rc = 0;
done:
  free(text);
  free(ids);
  free(logits);
  dtr_session_destroy(s);
  dtr_tokenizer_free(tok);
  dtr_model_destroy(m);
  dtr_ctx_destroy(ctx);
  return rc;
}
