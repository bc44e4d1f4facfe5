/* distill.c — `dtr distill`: blockwise local distillation of a teacher's
 * attention layers into linear-attention students (host/distill.h). Owns the
 * command line, the token streams, progress (tokens/s, ETA, per-layer loss),
 * held-out evaluation lines, periodic atomic checkpoints and --resume. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "distill.h"
#include "tokenizer.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: dtr distill --model DIR --data TEXT_OR_TOKENS --out STUDENTS [flags]\n"
          "  Blockwise local distillation: every selected attention layer of the teacher\n"
          "  gets a linear-attention student trained on MSE against the layer's\n"
          "  attention output, all layers from one teacher forward per batch.\n"
          "  --model DIR            the teacher (config.json, safetensors, tokenizer.json)\n"
          "  --data FILE            training text (documents separated by <|endoftext|>\n"
          "                         lines; tokenized once, cached in STUDENTS/cache) or a\n"
          "                         .tokens file\n"
          "  --out STUDENTS         output directory (created): students.safetensors,\n"
          "                         students.json, losses.json, checkpoint.safetensors\n"
          "  --block gla|gdn|jet    student block (gdn)\n"
          "  --tokens N             training tokens; steps = N / (batch x seq-len) (1048576)\n"
          "  --layers LIST          e.g. 0,2,4-5 (all layers)\n"
          "  --seq-len N            tokens per sequence (512, or the teacher's\n"
          "                         max_position_embeddings when shorter)\n"
          "  --batch N              sequences per step (8)\n"
          "  --lr X                 peak learning rate, AdamW (1e-3)\n"
          "  --min-lr-fraction X    cosine decay floor, times lr (0.1)\n"
          "  --warmup N             warmup steps (5%% of the steps)\n"
          "  --weight-decay X       on matrices (0.01)\n"
          "  --clip X               per-student gradient norm clip, 0 off (1.0)\n"
          "  --valid FILE           held-out text or .tokens (default: the last 5%% of\n"
          "                         --data, never trained on)\n"
          "  --eval-interval N      steps between held-out evaluations (steps/10)\n"
          "  --eval-batches N       held-out batches per evaluation (4)\n"
          "  --checkpoint-interval N steps between checkpoints (25)\n"
          "  --resume               continue from STUDENTS/checkpoint.safetensors exactly\n"
          "  --stop-after N         stop (with a checkpoint) after step N\n"
          "  --seed S               students' init and data order (1234)\n"
          "  --device N             Vulkan device (see dtr info)\n");
}

/* "0,2,4-5" into on[]; 0 on a bad list (printed). */
static int parse_layers(const char *s, uint8_t *on, uint32_t nl) {
  memset(on, 0, 256);
  const char *p = s;
  while (*p) {
    char *e;
    long a = strtol(p, &e, 10), b = a;
    if (e == p) goto bad;
    if (*e == '-') {
      const char *q = e + 1;
      b = strtol(q, &e, 10);
      if (e == q) goto bad;
    }
    if (a < 0 || b < a || (uint32_t)b >= nl) {
      fprintf(stderr, "dtr distill: --layers %s: layer %ld is not in this %u-layer model\n", s,
              b < 0 || a < 0 ? (a < 0 ? a : b) : b, nl);
      return 0;
    }
    for (long i = a; i <= b; i++) on[i] = 1;
    if (*e == ',') e++;
    else if (*e) goto bad;
    p = e;
  }
  return 1;
bad:
  fprintf(stderr, "dtr distill: --layers %s: expected a list like 0,2,4-5\n", s);
  return 0;
}

int cmd_distill(int argc, char **argv) {
  const char *model = NULL, *data = NULL, *out = NULL, *valid_path = NULL, *layers = NULL;
  long device = -1, stop_after = -1, eval_interval = -1, ckpt_interval = 25, warmup = -1;
  double tokens = 1048576;
  int resume = 0, seq_given = 0;
  dtr_distill_opts o;
  dtr_distill_opts_default(&o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    long n;
    double x;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
    if (!strcmp(a, "--resume")) { resume = 1; continue; }
    if (!v) {
      fprintf(stderr, "dtr distill: %s needs a value (see dtr distill --help)\n", a);
      return 2;
    }
    i++;
#define INT_FLAG(name, dst, lo)                                                              \
  if (!strcmp(a, name)) {                                                                    \
    if (!cli_int(name, v, &n)) return 2;                                                     \
    if (n < (lo)) {                                                                          \
      fprintf(stderr, "dtr distill: %s must be at least %d\n", name, (int)(lo));             \
      return 2;                                                                              \
    }                                                                                        \
    dst = n;                                                                                 \
    continue;                                                                                \
  }
#define FLT_FLAG(name, dst)                                                                  \
  if (!strcmp(a, name)) {                                                                    \
    if (!cli_float(name, v, &x)) return 2;                                                   \
    if (!(x >= 0)) {                                                                         \
      fprintf(stderr, "dtr distill: %s must be >= 0\n", name);                              \
      return 2;                                                                              \
    }                                                                                        \
    dst = x;                                                                                 \
    continue;                                                                                \
  }
    if (!strcmp(a, "--model")) { model = v; continue; }
    if (!strcmp(a, "--data")) { data = v; continue; }
    if (!strcmp(a, "--out")) { out = v; continue; }
    if (!strcmp(a, "--valid")) { valid_path = v; continue; }
    if (!strcmp(a, "--layers")) { layers = v; continue; }
    if (!strcmp(a, "--block")) {
      int k = dtr_block_kind_parse(v);
      if (k < 0) {
        fprintf(stderr, "dtr distill: --block %s: expected gla, gdn or jet\n", v);
        return 2;
      }
      o.kind = (dtr_block_kind)k;
      continue;
    }
    if (!strcmp(a, "--seq-len")) seq_given = 1;
    INT_FLAG("--seq-len", o.seq_len, 2)
    INT_FLAG("--batch", o.batch, 1)
    INT_FLAG("--warmup", warmup, 0)
    INT_FLAG("--eval-interval", eval_interval, 0)
    INT_FLAG("--eval-batches", o.eval_batches, 1)
    INT_FLAG("--checkpoint-interval", ckpt_interval, 0)
    INT_FLAG("--stop-after", stop_after, 1)
    INT_FLAG("--device", device, 0)
    FLT_FLAG("--tokens", tokens)
    FLT_FLAG("--lr", o.lr)
    FLT_FLAG("--min-lr-fraction", o.min_lr_fraction)
    FLT_FLAG("--weight-decay", o.weight_decay)
    FLT_FLAG("--clip", o.clip)
    if (!strcmp(a, "--seed")) {
      if (!cli_int(a, v, &n)) return 2;
      o.seed = (uint64_t)n;
      continue;
    }
    fprintf(stderr, "dtr distill: unknown flag %s (see dtr distill --help)\n", a);
    return 2;
  }
  if (!model || !data || !out) {
    fprintf(stderr, "dtr distill: --model, --data and --out are required (see --help)\n");
    return 2;
  }
  if (!(o.lr > 0)) {
    fprintf(stderr, "dtr distill: --lr must be positive\n");
    return 2;
  }

  int rc = 1;
  char err[1024], tok_path[4200], cache[4200], ckpt[4200];
  dtr_ctx *ctx = NULL;
  dtr_model *m = NULL;
  dtr_tokenizer *tok = NULL;
  dtr_distiller *d = NULL;
  int32_t *ids = NULL, *vids = NULL;
  size_t nids = 0, nv = 0;
  double *loss = NULL, *rel = NULL, *vloss = NULL;

  snprintf(cache, sizeof cache, "%s/cache", out);
  snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
  if (!cli_mkdirs("dtr distill", cache)) return 1;
  snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", model);
  if (!(ctx = cli_ctx((int)device))) return 1;
  dtr_status st;
  m = dtr_model_load(ctx, model, o.batch * o.seq_len, &st, err, sizeof err);
  if (!m) {
    fprintf(stderr, "dtr distill: %s\n", err);
    goto done;
  }
  const dtr_model_config *c = dtr_model_cfg(m);
  if (!seq_given && o.seq_len > c->max_position_embeddings) {
    o.seq_len = c->max_position_embeddings;
    fprintf(stderr, "dtr distill: --seq-len %u, the teacher's max_position_embeddings\n",
            o.seq_len);
  }
  double per_step = (double)o.batch * o.seq_len;
  if (tokens < per_step) {
    fprintf(stderr, "dtr distill: --tokens %.0f is less than one step of %u x %u tokens\n",
            tokens, o.batch, o.seq_len);
    goto done;
  }
  if (tokens / per_step > 4e9) {
    fprintf(stderr, "dtr distill: --tokens %.0f: too many steps\n", tokens);
    goto done;
  }
  o.steps = (uint32_t)(tokens / per_step);
  o.warmup = warmup >= 0 ? (uint32_t)warmup : (o.steps + 19) / 20;
  if (eval_interval < 0) eval_interval = o.steps >= 10 ? o.steps / 10 : 1;
  if (layers && !parse_layers(layers, o.layer_on, c->num_hidden_layers)) goto done;
  if (!layers)
    for (uint32_t L = 0; L < c->num_hidden_layers; L++)
      o.layer_on[L] = c->layer_types[L] == DTR_LAYER_FULL_ATTENTION;
  size_t plen = strlen(data);
  int is_tokens = plen > 7 && !strcmp(data + plen - 7, ".tokens");
  if (!is_tokens && !(tok = dtr_tokenizer_load(tok_path, &st, err, sizeof err))) {
    fprintf(stderr, "dtr distill: %s\n", err);
    goto done;
  }
  if (!cli_load_tokens("dtr distill", tok, tok_path, data, cache, "train", &ids, &nids))
    goto done;
  if (valid_path) {
    size_t vl = strlen(valid_path);
    if (!tok && !(vl > 7 && !strcmp(valid_path + vl - 7, ".tokens")) &&
        !(tok = dtr_tokenizer_load(tok_path, &st, err, sizeof err))) {
      fprintf(stderr, "dtr distill: %s\n", err);
      goto done;
    }
    if (!cli_load_tokens("dtr distill", tok, tok_path, valid_path, cache, "valid", &vids, &nv))
      goto done;
  }
  size_t ntrain = nids;
  const int32_t *vp = vids;
  if (!valid_path) { /* hold out the tail */
    nv = nids / 20;
    if (nv < (size_t)o.seq_len + 1) nv = 0;
    ntrain = nids - nv;
    vp = nv ? ids + ntrain : NULL;
  }
  d = dtr_distiller_create(m, &o, err, sizeof err);
  if (!d) {
    fprintf(stderr, "dtr distill: %s\n", err);
    goto done;
  }
  if (dtr_distiller_set_data(d, ids, ntrain, vp, nv, err, sizeof err)) {
    fprintf(stderr, "dtr distill: %s: %s\n", data, err);
    goto done;
  }
  uint32_t ns = dtr_distiller_nlayers(d);
  loss = calloc(ns, sizeof *loss);
  rel = calloc(ns, sizeof *rel);
  vloss = calloc(ns, sizeof *vloss);
  if (!loss || !rel || !vloss) goto done;
  if (resume) {
    if (dtr_distiller_load_checkpoint(d, ckpt, err, sizeof err)) {
      fprintf(stderr, "dtr distill: --resume: %s\n", err);
      goto done;
    }
    fprintf(stderr, "dtr distill: resumed from %s at step %u\n", ckpt,
            dtr_distiller_steps_done(d));
  }
  fprintf(stderr,
          "dtr distill: %s on %s: %u %s students (layers", model, dtr_ctx_device(ctx)->name, ns,
          dtr_block_kind_name(o.kind));
  for (uint32_t i = 0; i < ns; i++) fprintf(stderr, " %u", dtr_distiller_layer(d, i));
  fprintf(stderr, "), %.2fM parameters each; %u steps of %u x %u tokens; train %zu tokens, "
          "held-out %zu\n",
          dtr_block_param_count(dtr_distiller_student(d, 0)) / 1e6, o.steps, o.batch,
          o.seq_len, ntrain, nv);
  double t0 = cli_now(), tlast = t0;
  uint32_t s0 = dtr_distiller_steps_done(d), slast = s0;
  int log_every = o.steps >= 50 ? (int)(o.steps / 50) : 1;
  while (dtr_distiller_steps_done(d) < o.steps) {
    if (dtr_distiller_step(d, loss, err, sizeof err)) {
      fprintf(stderr, "dtr distill: %s\n", err);
      goto done;
    }
    uint32_t s = dtr_distiller_steps_done(d);
    int last = s == o.steps || (stop_after > 0 && s >= (uint32_t)stop_after);
    if (s == 1 || last || s % log_every == 0) {
      double now = cli_now(), all = (s - s0) * per_step / (now - t0);
      char eta[32];
      cli_fmt_dur((o.steps - s) * per_step / all, eta, sizeof eta);
      fprintf(stderr, "step %5u/%u | %.0f tok/s | ETA %s | mse", s, o.steps,
              (s - slast) * per_step / (now - tlast), eta);
      for (uint32_t i = 0; i < ns; i++) fprintf(stderr, " %.3g", loss[i]);
      fprintf(stderr, "\n");
      tlast = now;
      slast = s;
    }
    if (nv && ((eval_interval && s % eval_interval == 0) || last)) {
      double te = cli_now();
      if (dtr_distiller_eval(d, vloss, rel, err, sizeof err)) {
        fprintf(stderr, "dtr distill: %s\n", err);
        goto done;
      }
      fprintf(stderr, "eval  %5u | held-out relative error", s);
      for (uint32_t i = 0; i < ns; i++)
        fprintf(stderr, " L%u %.4f", dtr_distiller_layer(d, i), rel[i]);
      fprintf(stderr, "\n");
      double dt = cli_now() - te;
      tlast += dt;
      t0 += dt;
    }
    if ((ckpt_interval && s % ckpt_interval == 0) || last) {
      double te = cli_now();
      if (dtr_distiller_save_checkpoint(d, ckpt, err, sizeof err) ||
          dtr_distiller_save(d, out, err, sizeof err)) {
        fprintf(stderr, "dtr distill: %s\n", err);
        goto done;
      }
      double dt = cli_now() - te;
      tlast += dt;
      t0 += dt;
    }
    if (stop_after > 0 && s >= (uint32_t)stop_after && s < o.steps) {
      fprintf(stderr, "dtr distill: stopped after step %u (continue with --resume)\n", s);
      rc = 0;
      goto done;
    }
  }
  if (o.steps == s0 && dtr_distiller_save(d, out, err, sizeof err)) {
    fprintf(stderr, "dtr distill: %s\n", err);
    goto done;
  }
  fprintf(stderr, "dtr distill: wrote %s (students.safetensors, students.json, losses.json)\n",
          out);
  rc = 0;
done:
  if (ctx && dtr_ctx_profiling(ctx)) dtr_ctx_profile_report(ctx, stderr);
  dtr_distiller_destroy(d);
  dtr_model_destroy(m);
  dtr_ctx_destroy(ctx);
  dtr_tokenizer_free(tok);
  free(ids);
  free(vids);
  free(loss);
  free(rel);
  free(vloss);
  return rc;
}
