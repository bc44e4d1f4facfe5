/* train.c — `dtr train`: trains the small Llama teacher from a train.json
 * (host/train.h) and writes a Hugging Face model directory. Owns the command
 * line, the token caches (each text file tokenized once into OUT/cache/), the
 * progress and evaluation lines, periodic checkpoints and --resume. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "corpus.h"
#include "tokenizer.h"
#include "train.h"

/* What a recall stream's tokens are, by id, for marking answers and finding
 * documents: a word start (its text starts with a space), a line end (it holds
 * a newline, or is end-of-text), end-of-text itself, or newlines only. */
enum { TK_WORD = 1, TK_LINE_END = 2, TK_EOT = 4, TK_BLANK = 8 };
static uint8_t *token_kinds(dtr_tokenizer *tok) {
  size_t V = dtr_tokenizer_vocab_size(tok);
  uint8_t *kind = calloc(V ? V : 1, 1);
  for (size_t id = 0; kind && id < V; id++) {
    char *txt = NULL;
    int32_t i32 = (int32_t)id;
    if (dtr_tokenizer_decode(tok, &i32, 1, 0, &txt, NULL) == DTR_OK) {
      int eot = !strcmp(txt, DTR_CORPUS_EOT), nl = strchr(txt, '\n') != NULL;
      kind[id] = (uint8_t)((txt[0] == ' ' ? TK_WORD : 0) | (nl || eot ? TK_LINE_END : 0) |
                           (eot ? TK_EOT : 0) | (nl && !txt[strspn(txt, "\n")] ? TK_BLANK : 0));
    }
    free(txt);
  }
  return kind;
}

/* The answers of a recall stream, for data.recall_loss "answers": in every
 * document, the tokens of each second word after the " query:" marker (the
 * values; the keys are the words between), up to the end of the line. ids
 * are in the vocabulary (dtr_trainer_set_data checked them). NULL (after a
 * message) when the stream has no answers or memory runs out. */
static uint8_t *recall_answers(dtr_tokenizer *tok, const uint8_t *kind, const char *path,
                               const int32_t *ids, size_t n) {
  size_t nm = 0, nans = 0;
  uint8_t *mask = calloc(n ? n : 1, 1);
  int32_t *mk = NULL;
  if (!mask) {
    fprintf(stderr, "dtr train: %s: out of memory marking the answers\n", path);
    return NULL;
  }
  if (dtr_tokenizer_encode(tok, " query:", 7, 0, &mk, &nm) != DTR_OK || !nm) {
    fprintf(stderr, "dtr train: %s: cannot encode the \" query:\" marker: %s\n", path,
            dtr_tokenizer_error(tok));
    free(mask), free(mk);
    return NULL;
  }
  for (size_t i = 0; i + nm <= n;) {
    if (memcmp(ids + i, mk, nm * 4)) {
      i++;
      continue;
    }
    size_t word = 0;
    for (i += nm; i < n && !(kind[ids[i]] & TK_LINE_END); i++) {
      word += (kind[ids[i]] & TK_WORD) != 0;
      if (word && word % 2 == 0) mask[i] = 1, nans++;
    }
  }
  free(mk);
  if (!nans) {
    fprintf(stderr, "dtr train: %s: data.recall_loss is \"answers\" but no document has "
            "\" query:\" followed by key value pairs\n", path);
    free(mask);
    return NULL;
  }
  fprintf(stderr, "dtr train: %s: %zu answer tokens of %zu are scored\n", path, nans, n);
  return mask;
}

/* Where the documents of a token stream begin (data.recall_windows "start"):
 * offset 0 and the first token after each end-of-text token and the newlines
 * after it (ids in the vocabulary). NULL (after a message) when memory runs out. */
static size_t *doc_starts(const uint8_t *kind, const char *path, const int32_t *ids, size_t n,
                          size_t *nout) {
  size_t ns = 0, cap = 1024;
  size_t *st = malloc(cap * sizeof *st);
  for (size_t i = 0; st && i < n; i++) {
    if (i > 0 && !(kind[ids[i - 1]] & TK_EOT)) continue;
    while (i < n && (kind[ids[i]] & TK_BLANK)) i++;
    if (i >= n || (kind[ids[i]] & TK_EOT)) continue;
    if (ns == cap) {
      size_t *g = realloc(st, 2 * cap * sizeof *st);
      if (!g) {
        free(st);
        st = NULL;
        break;
      }
      st = g, cap *= 2;
    }
    st[ns++] = i;
  }
  if (!st) fprintf(stderr, "dtr train: %s: out of memory finding the documents\n", path);
  *nout = ns;
  return st;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: dtr train --config train.json --out DIR [--resume] [--device N]\n"
          "                 [--stop-after N]\n"
          "  Trains a small Llama model from scratch (host/train.h documents train.json)\n"
          "  and writes DIR/config.json, DIR/model.safetensors and DIR/tokenizer.json,\n"
          "  a Hugging Face LlamaForCausalLM directory with tied embeddings.\n"
          "  --config F      the training config (required)\n"
          "  --out DIR       output directory (created); also holds\n"
          "                  checkpoint.safetensors (weights, AdamW state, step, sampler)\n"
          "                  and cache/*.tokens (the tokenized text); config.json and\n"
          "                  model.safetensors are rewritten at every checkpoint, so\n"
          "                  DIR is a loadable model of the latest checkpoint\n"
          "  --resume        continue from DIR/checkpoint.safetensors exactly\n"
          "  --device N      Vulkan device (see dtr info)\n"
          "  --stop-after N  stop (with a checkpoint) after step N without changing the\n"
          "                  schedule, e.g. to time a run or to test --resume\n");
}

int cmd_train(int argc, char **argv) {
  const char *config = NULL, *out = NULL;
  int resume = 0;
  long device = -1, stop_after = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--resume")) {
      resume = 1;
    } else if (i + 1 < argc && !strcmp(a, "--config")) {
      config = argv[++i];
    } else if (i + 1 < argc && !strcmp(a, "--out")) {
      out = argv[++i];
    } else if (i + 1 < argc && !strcmp(a, "--device")) {
      if (!cli_int(a, argv[++i], &device)) return 2;
    } else if (i + 1 < argc && !strcmp(a, "--stop-after")) {
      if (!cli_int(a, argv[++i], &stop_after)) return 2;
    } else {
      fprintf(stderr, "dtr train: unknown or incomplete flag '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!config || !out) {
    fprintf(stderr, "dtr train: --config and --out are required\n");
    usage(stderr);
    return 2;
  }
  char err[1024];
  dtr_train_config c;
  if (dtr_train_config_load(config, &c, err, sizeof err)) {
    fprintf(stderr, "dtr train: %s\n", err);
    return 1;
  }
  if (dtr_train_config_check_files(&c, err, sizeof err)) {
    fprintf(stderr, "dtr train: %s\n", err);
    return 1;
  }
  dtr_status st;
  dtr_tokenizer *tok = dtr_tokenizer_load(c.tokenizer, &st, err, sizeof err);
  if (!tok) {
    fprintf(stderr, "dtr train: %s\n", err);
    return 1;
  }
  c.vocab = (uint32_t)dtr_tokenizer_vocab_size(tok);
  int32_t eos = dtr_tokenizer_token_id(tok, DTR_CORPUS_EOT);
  char cache[1100];
  snprintf(cache, sizeof cache, "%s/cache", out);
  int32_t *tr = NULL, *va = NULL, *re = NULL;
  uint8_t *answers = NULL;
  size_t *starts = NULL, nstarts = 0;
  size_t ntr = 0, nva = 0, nre = 0;
  int rc = 1;
  dtr_ctx *ctx = NULL;
  dtr_trainer *t = NULL;
  if (!cli_mkdirs("dtr train", cache)) goto done;
  if (!cli_load_tokens("dtr train", tok, c.tokenizer, c.train, cache, "train", &tr, &ntr)) goto done;
  if (c.valid[0] && !cli_load_tokens("dtr train", tok, c.tokenizer, c.valid, cache, "valid", &va, &nva))
    goto done;
  if (c.recall[0] && (c.recall_fraction > 0 || c.recall_only_steps) &&
      !cli_load_tokens("dtr train", tok, c.tokenizer, c.recall, cache, "recall", &re, &nre))
    goto done;
  if (!(ctx = cli_ctx((int)device))) goto done;
  if (!(t = dtr_trainer_create(ctx, &c, err, sizeof err)) ||
      dtr_trainer_set_data(t, tr, ntr, re, nre, va, nva, err, sizeof err)) {
    fprintf(stderr, "dtr train: %s\n", err);
    goto done;
  }
  /* after set_data, which checked every id against the vocabulary */
  int want_answers = nre && !strcmp(c.recall_loss, "answers");
  int want_starts = nre && !strcmp(c.recall_windows, "start");
  if (want_answers || want_starts) {
    uint8_t *kind = token_kinds(tok);
    if (!kind) fprintf(stderr, "dtr train: out of memory reading the vocabulary\n");
    if (kind && want_answers) answers = recall_answers(tok, kind, c.recall, re, nre);
    if (kind && want_starts && (starts = doc_starts(kind, c.recall, re, nre, &nstarts)))
      fprintf(stderr, "dtr train: %s: recall windows start at its %zu documents\n", c.recall,
              nstarts);
    int ok = kind && (!want_answers || answers) && (!want_starts || starts);
    free(kind);
    if (!ok) goto done;
  }
  dtr_trainer_set_recall_mask(t, answers);
  dtr_trainer_set_recall_starts(t, starts, nstarts);
  char ckpt[1200];
  snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
  if (resume) {
    if (dtr_trainer_load_checkpoint(t, ckpt, err, sizeof err)) {
      fprintf(stderr, "dtr train: --resume: %s\n", err);
      goto done;
    }
    fprintf(stderr, "dtr train: resumed from %s at step %u\n", ckpt, dtr_trainer_steps_done(t));
  }
  size_t tok_per_step = (size_t)c.batch * c.seq_len;
  fprintf(stderr,
          "dtr train: %s on %s: %u layers, hidden %u, heads %u/%u, ffn %u, vocab %u: %.2fM "
          "parameters (%.1f MB fp32); %u steps of %zu tokens; train %zu tokens%s\n",
          config, dtr_ctx_device(ctx)->name, c.layers, c.hidden, c.heads, c.kv_heads,
          c.intermediate, c.vocab, dtr_trainer_nparams(t) / 1e6,
          dtr_trainer_nparams(t) * 4 / 1e6, c.steps, tok_per_step, ntr,
          nre ? ", recall mixed in" : "");
  if (nre && c.recall_only_steps)
    fprintf(stderr, "dtr train: steps 1..%u draw recall rows only, then %.0f%% recall\n",
            c.recall_only_steps, 100 * c.recall_fraction);
  double t0 = cli_now(), tlast = t0;
  uint32_t s0 = dtr_trainer_steps_done(t), slast = s0;
  while (dtr_trainer_steps_done(t) < c.steps) {
    dtr_train_stats ss;
    if (dtr_trainer_step(t, &ss, err, sizeof err)) {
      fprintf(stderr, "dtr train: %s\n", err);
      goto done;
    }
    uint32_t s = ss.step;
    int last = s == c.steps || (stop_after >= 0 && s >= (uint32_t)stop_after);
    if (s == 1 || last || (c.log_interval && s % c.log_interval == 0)) {
      double now = cli_now();
      double tps = (s - slast) * (double)tok_per_step / (now - tlast);
      double all = (s - s0) * (double)tok_per_step / (now - t0);
      char eta[32];
      cli_fmt_dur((c.steps - s) * (double)tok_per_step / all, eta, sizeof eta);
      fprintf(stderr,
              "step %5u/%u | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s | ETA %s\n", s,
              c.steps, ss.loss, ss.lr, ss.gnorm, tps, eta);
      tlast = now;
      slast = s;
    }
    if (nva && ((c.eval_interval && s % c.eval_interval == 0) || last)) {
      double vl;
      double te = cli_now();
      if (dtr_trainer_eval(t, &vl, err, sizeof err)) {
        fprintf(stderr, "dtr train: %s\n", err);
        goto done;
      }
      fprintf(stderr, "eval  %5u | valid loss %.4f | perplexity %.2f\n", s, vl, exp(vl));
      double dt = cli_now() - te; /* keep eval time out of tokens/s */
      tlast += dt;
      t0 += dt;
    }
    if ((c.checkpoint_interval && s % c.checkpoint_interval == 0) || last) {
      double te = cli_now();
      /* the checkpoint, and DIR as a loadable model of this step, so that
       * `dtr eval` can follow a long run */
      if (dtr_trainer_save_checkpoint(t, ckpt, err, sizeof err) ||
          dtr_trainer_save_hf(t, out, c.tokenizer, eos, err, sizeof err)) {
        fprintf(stderr, "dtr train: %s\n", err);
        goto done;
      }
      double dt = cli_now() - te;
      tlast += dt;
      t0 += dt;
    }
    if (stop_after >= 0 && s >= (uint32_t)stop_after && s < c.steps) {
      fprintf(stderr, "dtr train: stopped after step %u (resume with --resume)\n", s);
      rc = 0;
      goto done;
    }
  }
  /* the last step always checkpoints, which wrote the model */
  fprintf(stderr, "dtr train: wrote %s (config.json, model.safetensors, tokenizer.json)\n", out);
  rc = 0;
done:
  if (ctx && dtr_ctx_profiling(ctx)) dtr_ctx_profile_report(ctx, stderr);
  dtr_trainer_destroy(t);
  dtr_ctx_destroy(ctx);
  dtr_tokenizer_free(tok);
  free(tr);
  free(va);
  free(re);
  free(answers);
  free(starts);
  return rc;
}
