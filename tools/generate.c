/* generate.c — `dtr generate`: text in, text out. Tokenizes the prompt with the
 * model directory's tokenizer.json, prefills it, then decodes one token per step
 * (greedy, or temperature / top-p sampling with a seed), streaming the text to
 * stdout as tokens arrive; stops at EOS or --max-tokens. tokens/s to stderr. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model.h"
#include "tokenizer.h"

static void help(FILE *f) {
  fprintf(f,
          "usage: dtr generate --model DIR --prompt TEXT [flags]\n"
          "  --model DIR        model directory: config.json, *.safetensors, tokenizer.json\n"
          "  --prompt TEXT      the prompt (special tokens of the tokenizer's template added)\n"
          "  --max-tokens N     most tokens to generate (default 64)\n"
          "  --temperature T    0 = greedy (default 0)\n"
          "  --top-p P          nucleus sampling mass, 1 = off (default 1)\n"
          "  --seed S           sampling seed (default 0)\n"
          "  --device N         Vulkan device (default: DTR_DEVICE, else the first GPU)\n"
          "Streams the text to stdout; tokens/s to stderr. Stops at the model's EOS.\n");
}

int cli_float(const char *flag, const char *s, double *out) {
  char *end;
  errno = 0;
  double v = s ? strtod(s, &end) : 0;
  if (!s || !*s || *end || errno) {
    fprintf(stderr, "dtr: %s needs a number, got '%s'\n", flag, s ? s : "(nothing)");
    return 0;
  }
  *out = v;
  return 1;
}

int cmd_generate(int argc, char **argv) {
  const char *dir = NULL, *prompt = NULL;
  long max_tokens = 64, seed = 0, device = -1;
  double temp = 0, top_p = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); return 0; }
    int ok = 1;
    if (!strcmp(a, "--model")) dir = v;
    else if (!strcmp(a, "--prompt")) prompt = v;
    else if (!strcmp(a, "--max-tokens")) ok = cli_int(a, v, &max_tokens);
    else if (!strcmp(a, "--temperature")) ok = cli_float(a, v, &temp);
    else if (!strcmp(a, "--top-p")) ok = cli_float(a, v, &top_p);
    else if (!strcmp(a, "--seed")) ok = cli_int(a, v, &seed);
    else if (!strcmp(a, "--device")) ok = cli_int(a, v, &device);
    else {
      fprintf(stderr, "dtr generate: unknown flag '%s'\n", a);
      help(stderr);
      return 2;
    }
    if (!ok) return 2;
    if (!v) { fprintf(stderr, "dtr generate: %s needs a value\n", a); return 2; }
    i++;
  }
  if (!dir || !prompt) {
    fprintf(stderr, "dtr generate: --model and --prompt are required\n");
    help(stderr);
    return 2;
  }
  if (max_tokens < 0 || max_tokens > 1000000 || temp < 0 || top_p <= 0 || top_p > 1) {
    fprintf(stderr, "dtr generate: need --max-tokens >= 0, --temperature >= 0, 0 < --top-p <= 1\n");
    return 2;
  }
  dtr_ctx *ctx = cli_ctx((int)device);
  if (!ctx) return 1;
  char err[1024];
  dtr_status st;
  int rc = 1;
  dtr_tokenizer *tok = NULL;
  dtr_session *s = NULL;
  int32_t *ids = NULL, *gen = NULL;
  float *logits = NULL;
  char *printed = NULL;
  /* the prompt length bounds the prefill; 1024 tokens of room is plenty here */
  dtr_model *m = dtr_model_load(ctx, dir, 1024, &st, err, sizeof err);
  if (!m) { fprintf(stderr, "dtr: %s\n", err); goto done; }
  char tp[4096];
  snprintf(tp, sizeof tp, "%s/tokenizer.json", dir);
  tok = dtr_tokenizer_load(tp, &st, err, sizeof err);
  if (!tok) { fprintf(stderr, "dtr: %s\n", err); goto done; }
  const dtr_model_config *c = dtr_model_cfg(m);
  size_t n;
  if (dtr_tokenizer_encode(tok, prompt, strlen(prompt), 1, &ids, &n)) {
    fprintf(stderr, "dtr: prompt: %s\n", dtr_tokenizer_error(tok));
    goto done;
  }
  if (n == 0 && c->bos_token_id >= 0) { ids[0] = c->bos_token_id; n = 1; }
  if (n == 0 || n > 1024) {
    fprintf(stderr, "dtr: the prompt has %zu tokens; 1..1024 are supported\n", n);
    goto done;
  }
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || (uint32_t)ids[i] >= c->vocab_size) {
      fprintf(stderr, "dtr: %s: token %d of the prompt is outside the model's vocabulary (%u)\n",
              tp, ids[i], c->vocab_size);
      goto done;
    }
  s = dtr_session_create(m, 1, (uint32_t)(n + (size_t)max_tokens + 1));
  logits = malloc((size_t)c->vocab_size * 4);
  gen = malloc(((size_t)max_tokens + 1) * sizeof *gen);
  if (!s || !logits || !gen) { fprintf(stderr, "dtr: %s\n", dtr_ctx_error(ctx)); goto done; }
  uint32_t len = (uint32_t)n;
  const int32_t *p = ids;
  double t0 = cli_now();
  if (dtr_session_prefill(s, &p, &len, logits, 0)) {
    fprintf(stderr, "dtr: prefill: %s\n", dtr_ctx_error(ctx));
    goto done;
  }
  double t1 = cli_now();
  uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
  size_t ng = 0, nprinted = 0;
  for (long step = 0; step < max_tokens; step++) {
    int32_t t = dtr_sample(logits, c->vocab_size, (float)temp, (float)top_p, &rng);
    int eos = 0;
    for (uint32_t e = 0; e < c->n_eos; e++) eos |= t == c->eos_token_id[e];
    if (eos) break;
    gen[ng++] = t;
    /* print what the whole generation decodes to beyond what is out, holding back
     * a trailing U+FFFD (a multi-byte character not complete yet) */
    char *text;
    size_t tl;
    if (dtr_tokenizer_decode(tok, gen, ng, 1, &text, &tl) == DTR_OK) {
      size_t keep = tl;
      if (keep >= 3 && !memcmp(text + keep - 3, "\xEF\xBF\xBD", 3)) keep -= 3;
      if (keep > nprinted) {
        fwrite(text + nprinted, 1, keep - nprinted, stdout);
        fflush(stdout);
        nprinted = keep;
      }
      free(text);
    }
    if (step + 1 == max_tokens) break;
    if (dtr_session_decode(s, &t, logits)) {
      fprintf(stderr, "\ndtr: decode: %s\n", dtr_ctx_error(ctx));
      goto done;
    }
  }
  {
    char *text;
    size_t tl;
    if (ng && dtr_tokenizer_decode(tok, gen, ng, 1, &text, &tl) == DTR_OK) {
      if (tl > nprinted) fwrite(text + nprinted, 1, tl - nprinted, stdout);
      free(text);
    }
  }
  printf("\n");
  fflush(stdout);
  double t2 = cli_now();
  fprintf(stderr, "prompt %zu tokens in %.1f ms; generated %zu tokens in %.2f s (%.1f tokens/s)\n",
          n, 1e3 * (t1 - t0), ng, t2 - t1, ng > 0 && t2 > t1 ? ng / (t2 - t1) : 0.0);
  if (dtr_ctx_profiling(ctx)) dtr_ctx_profile_report(ctx, stderr);
  rc = 0;
done:
  (void)printed;
  free(ids);
  free(gen);
  free(logits);
  dtr_session_destroy(s);
  dtr_tokenizer_free(tok);
  dtr_model_destroy(m);
  dtr_ctx_destroy(ctx);
  return rc;
}
