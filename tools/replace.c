/* replace.c — `dtr replace`: the greedy validation-guided replacement
 * (host/replace.h) from a teacher and its distilled students to a hybrid model
 * directory, with a live table of candidates, trajectory.json/.svg, and the
 * measured decode speedup of the result. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "distill.h"
#include "replace.h"
#include "tasks.h"
#include "tokenizer.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: dtr replace --model DIR --students STUDENTS --task FILE\n"
          "                   (--tolerance X | --threshold P) --out HYBRID [flags]\n"
          "  Greedy replacement: at each step every remaining attention layer is tried\n"
          "  with its student, the one that hurts the task least is kept, until the\n"
          "  score would fall below the threshold or no attention layer is left.\n"
          "  --model DIR         the teacher\n"
          "  --students DIR      a `dtr distill` output for this teacher\n"
          "  --task FILE         task JSONL (multiple choice: acc; targets: perplexity)\n"
          "  --tolerance X       allowed drop: threshold = base - X (acc) or base + X (ppl);\n"
          "                      X%% is relative: base * (1 - X/100), or (1 + X/100) for ppl\n"
          "  --threshold P       absolute threshold instead\n"
          "  --out HYBRID        output directory (created): the hybrid model\n"
          "                      (config.json, model.safetensors, tokenizer.json),\n"
          "                      trajectory.json, trajectory.svg, summary.json\n"
          "  --metric M          acc or acc_norm for multiple choice (acc)\n"
          "  --limit N           score the first N examples only (all)\n"
          "  --batch N           sequences per forward (8)\n"
          "  --window N          tokens per forward (the largest that fits)\n"
          "  --cache-mb N        residual-stream cache budget in MiB (1024; 0: no cache,\n"
          "                      every candidate recomputes from the embedding)\n"
          "  --plain             the plain algorithm: no cache, no early stop\n"
          "  --resume            continue an interrupted search from HYBRID/search_state.json\n"
          "  --speed-ctx LIST    contexts of the decode speedup table (2048,16384); none: skip\n"
          "  --speed-steps N     timed decode steps per context, median reported (32)\n"
          "  --max-tokens N      tokens one forward may hold (2048)\n"
          "  --device N          Vulkan device (see dtr info)\n");
}

typedef struct progress {
  uint32_t step;
  int mc;
} progress;

static void on_base(void *ud, const dtr_eval_result *r, double thr) {
  progress *p = ud;
  p->mc = r->multiple_choice;
  if (r->multiple_choice)
    printf("base: acc %.4f [%.4f, %.4f] acc_norm %.4f (%zu examples); threshold %.4f\n", r->acc,
           r->acc_lo, r->acc_hi, r->acc_norm, r->n, thr);
  else
    printf("base: perplexity %.4f [%.4f, %.4f] (%zu documents); threshold %.4f\n", r->ppl,
           r->ppl_lo, r->ppl_hi, r->n, thr);
  fflush(stdout);
}

static void on_candidate(void *ud, uint32_t step, const dtr_replace_cand *c, double best) {
  progress *p = ud;
  if (step != p->step) {
    printf("step %u:\n  layer  score     95%% CI              examples  layer-fwd  seconds\n",
           step);
    p->step = step;
  }
  if (c->stopped)
    printf("  %5u  <=%-7.4f stopped early (best %.4f)  %8zu  %9zu  %7.1f\n", c->layer, c->score,
           best, c->examples, c->layer_forwards, c->seconds);
  else
    printf("  %5u  %-8.4f  [%.4f, %.4f]  %8zu  %9zu  %7.1f\n", c->layer, c->score, c->lo, c->hi,
           c->examples, c->layer_forwards, c->seconds);
  fflush(stdout);
}

static void on_step(void *ud, uint32_t step, const dtr_replace_step *s) {
  (void)ud;
  if (s->chosen >= 0)
    printf("step %u: replace layer %d -> %.4f\n", step, s->chosen, s->score);
  else if (isfinite(s->score))
    printf("step %u: the best candidate scores %.4f, past the threshold: stop\n", step, s->score);
  else
    printf("step %u: no candidate reaches the threshold: stop\n", step);
  fflush(stdout);
}

static int parse_list(const char *s, long *out, int max) {
  int n = 0;
  if (!strcmp(s, "none")) return 0;
  const char *p = s;
  while (*p) {
    char *e;
    long v = strtol(p, &e, 10);
    if (e == p || v < 2 || n == max || (*e && *e != ',')) return -1;
    out[n++] = v;
    p = *e ? e + 1 : e;
  }
  return n;
}

static int copy_file(const char *src, const char *dst) {
  FILE *a = fopen(src, "rb");
  if (!a) return 0;
  char tmp[4400];
  snprintf(tmp, sizeof tmp, "%s.tmp", dst);
  FILE *b = fopen(tmp, "wb");
  if (!b) { fclose(a); return 0; }
  char buf[65536];
  size_t n;
  int ok = 1;
  while ((n = fread(buf, 1, sizeof buf, a)) > 0) ok &= fwrite(buf, 1, n, b) == n;
  fclose(a);
  ok &= fclose(b) == 0;
  if (!ok || rename(tmp, dst)) { remove(tmp); return 0; }
  return 1;
}

int cmd_replace(int argc, char **argv) {
  const char *model = NULL, *students = NULL, *task = NULL, *out = NULL, *metric = "acc";
  const char *speed = "2048,16384";
  double tol = NAN, thr = NAN;
  long limit = 0, batch = 8, window = 0, cache_mb = 1024, device = -1, speed_steps = 32;
  long max_tokens = 2048;
  int plain = 0, resume = 0, relative = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
    if (!strcmp(a, "--plain")) { plain = 1; continue; }
    if (!strcmp(a, "--resume")) { resume = 1; continue; }
    if (!v) {
      fprintf(stderr, "dtr replace: %s needs a value (see dtr replace --help)\n", a);
      return 2;
    }
    i++;
    long *ip = !strcmp(a, "--limit")        ? &limit
               : !strcmp(a, "--batch")      ? &batch
               : !strcmp(a, "--window")     ? &window
               : !strcmp(a, "--cache-mb")   ? &cache_mb
               : !strcmp(a, "--device")     ? &device
               : !strcmp(a, "--speed-steps") ? &speed_steps
               : !strcmp(a, "--max-tokens") ? &max_tokens
                                            : NULL;
    if (ip) {
      if (!cli_int(a, v, ip)) return 2;
      if (*ip < 0 || (ip == &batch && *ip < 1) || (ip == &speed_steps && *ip < 1) ||
          (ip == &max_tokens && *ip < 16)) {
        fprintf(stderr, "dtr replace: %s %s is out of range\n", a, v);
        return 2;
      }
      continue;
    }
    if (!strcmp(a, "--tolerance") || !strcmp(a, "--threshold")) {
      double x;
      char num[64];
      size_t vl = strlen(v);
      int pct = !strcmp(a, "--tolerance") && vl > 1 && vl < sizeof num && v[vl - 1] == '%';
      if (pct) {
        memcpy(num, v, vl - 1);
        num[vl - 1] = 0;
      }
      if (!cli_float(a, pct ? num : v, &x)) return 2;
      if (pct) {
        x /= 100;
        relative = 1;
      }
      if (!isfinite(x) || (!strcmp(a, "--tolerance") && x < 0)) {
        fprintf(stderr, "dtr replace: %s %s: must be a %snumber\n", a, v,
                !strcmp(a, "--tolerance") ? "non-negative " : "finite ");
        return 2;
      }
      *(!strcmp(a, "--tolerance") ? &tol : &thr) = x;
      continue;
    }
    if (!strcmp(a, "--model")) model = v;
    else if (!strcmp(a, "--students")) students = v;
    else if (!strcmp(a, "--task")) task = v;
    else if (!strcmp(a, "--out")) out = v;
    else if (!strcmp(a, "--metric")) metric = v;
    else if (!strcmp(a, "--speed-ctx")) speed = v;
    else {
      fprintf(stderr, "dtr replace: unknown flag %s (see dtr replace --help)\n", a);
      return 2;
    }
  }
  if (!model || !students || !task || !out) {
    fprintf(stderr, "dtr replace: --model, --students, --task and --out are required\n");
    return 2;
  }
  if (isnan(tol) == isnan(thr)) {
    fprintf(stderr, "dtr replace: give exactly one of --tolerance and --threshold\n");
    return 2;
  }
  if (strcmp(metric, "acc") && strcmp(metric, "acc_norm")) {
    fprintf(stderr, "dtr replace: --metric %s: expected acc or acc_norm\n", metric);
    return 2;
  }
  long sctx[8];
  int nsc = parse_list(speed, sctx, 8);
  if (nsc < 0) {
    fprintf(stderr, "dtr replace: --speed-ctx %s: expected a list like 2048,16384 or none\n",
            speed);
    return 2;
  }

  int rc = 1;
  char err[1024], path[4300];
  dtr_ctx *ctx = NULL;
  dtr_model *m = NULL;
  dtr_tokenizer *tok = NULL;
  dtr_task *t = NULL;
  dtr_eval_set *set = NULL;
  dtr_block **stu = NULL;
  dtr_replace_result res;
  memset(&res, 0, sizeof res);
  double base_ms[8], hyb_ms[8];
  size_t base_mem[8], hyb_mem[8];
  dtr_status st;

  if (!(ctx = cli_ctx((int)device))) return 1;
  m = dtr_model_load(ctx, model, (uint32_t)max_tokens, &st, err, sizeof err);
  if (!m) {
    fprintf(stderr, "dtr replace: %s\n", err);
    goto done;
  }
  const dtr_model_config *c = dtr_model_cfg(m);
  snprintf(path, sizeof path, "%s/tokenizer.json", model);
  if (!(tok = dtr_tokenizer_load(path, &st, err, sizeof err))) {
    fprintf(stderr, "dtr replace: %s\n", err);
    goto done;
  }
  if (dtr_task_load(task, &t, err, sizeof err)) {
    fprintf(stderr, "dtr replace: %s\n", err);
    goto done;
  }
  if (dtr_eval_prepare(t, tok, dtr_eval_prefix_token(c, tok), (size_t)limit, &set, err,
                       sizeof err)) {
    fprintf(stderr, "dtr replace: %s\n", err);
    goto done;
  }
  if (!dtr_eval_set_count(set)) {
    fprintf(stderr, "dtr replace: %s: no examples\n", task);
    goto done;
  }
  if (!dtr_eval_set_multiple_choice(set) && strcmp(metric, "acc")) {
    fprintf(stderr, "dtr replace: --metric %s needs a multiple-choice task\n", metric);
    goto done;
  }
  stu = calloc(c->num_hidden_layers, sizeof *stu);
  if (!stu) goto done;
  dtr_block_kind kind;
  if (dtr_students_load(m, students, stu, &kind, err, sizeof err)) {
    fprintf(stderr, "dtr replace: %s\n", err);
    goto done;
  }
  if (!cli_mkdirs("dtr replace", out)) goto done;
  char state[4300];
  snprintf(state, sizeof state, "%s/search_state.json", out);
  if (!resume) remove(state);
  printf("dtr replace: %s with %s students of %s on %s (%zu examples) on %s\n", model,
         dtr_block_kind_name(kind), students, task, dtr_eval_set_count(set),
         dtr_ctx_device(ctx)->name);
  for (int i = 0; i < nsc; i++) {
    base_ms[i] = cli_decode_ms(m, (uint32_t)sctx[i], (int)speed_steps, &base_mem[i]);
    if (base_ms[i] < 0) goto done;
  }
  progress pg = {0, 0};
  dtr_replace_opts o;
  memset(&o, 0, sizeof o);
  o.tolerance = isnan(tol) ? 0 : tol;
  o.relative = relative;
  o.threshold = thr;
  o.use_threshold = !isnan(thr);
  o.use_norm = !strcmp(metric, "acc_norm");
  o.plain = plain;
  o.cache_bytes = cache_mb ? (size_t)cache_mb << 20 : 1; /* 1 byte holds nothing */
  o.batch = (uint32_t)batch;
  o.window = (uint32_t)window;
  o.state_path = state;
  o.on_base = on_base;
  o.on_candidate = on_candidate;
  o.on_step = on_step;
  o.ud = &pg;
  if (dtr_replace_run(m, stu, set, &o, &res, err, sizeof err)) {
    fprintf(stderr, "dtr replace: %s\n", err);
    goto done;
  }
  if (dtr_model_save(m, out, err, sizeof err)) {
    fprintf(stderr, "dtr replace: %s\n", err);
    goto done;
  }
  char dst[4300];
  snprintf(dst, sizeof dst, "%s/tokenizer.json", out);
  if (!copy_file(path, dst)) {
    fprintf(stderr, "dtr replace: cannot copy %s to %s\n", path, dst);
    goto done;
  }
  char *js = dtr_replace_json(&res);
  snprintf(dst, sizeof dst, "%s/trajectory.json", out);
  FILE *f = js ? fopen(dst, "wb") : NULL;
  int ok = f && fputs(js, f) >= 0;
  if (f) ok &= fclose(f) == 0;
  free(js);
  if (!ok) {
    fprintf(stderr, "dtr replace: %s: cannot write\n", dst);
    goto done;
  }
  snprintf(dst, sizeof dst, "%s/trajectory.svg", out);
  char title[512];
  snprintf(title, sizeof title, "%s, %s students: %s", task, dtr_block_kind_name(kind),
           res.metric);
  if (dtr_replace_svg(&res, title, dst, err, sizeof err)) {
    fprintf(stderr, "dtr replace: %s\n", err);
    goto done;
  }
  for (int i = 0; i < nsc; i++) {
    hyb_ms[i] = cli_decode_ms(m, (uint32_t)sctx[i], (int)speed_steps, &hyb_mem[i]);
    if (hyb_ms[i] < 0) goto done;
  }
  /* summary */
  printf("\nreplaced %u of %u layers:", res.nreplaced, c->num_hidden_layers);
  for (uint32_t i = 0; i < res.nreplaced; i++) printf(" %u", res.replaced[i]);
  printf("\n%s: teacher %.4f [%.4f, %.4f] -> hybrid %.4f [%.4f, %.4f] (threshold %.4f)\n",
         res.metric, res.base, res.base_lo, res.base_hi, res.final, res.final_lo, res.final_hi,
         res.threshold);
  printf("layer-forwards: %zu; the plain algorithm: %zu (%.2fx fewer)\n", res.layer_forwards,
         res.plain_layer_forwards,
         res.layer_forwards ? (double)res.plain_layer_forwards / res.layer_forwards : 0.0);
  if (nsc) {
    printf("\n  context  teacher ms/tok  hybrid ms/tok  speedup  teacher cache  hybrid cache\n");
    for (int i = 0; i < nsc; i++)
      printf("  %7ld  %14.3f  %13.3f  %6.2fx  %10.2f MB  %9.2f MB\n", sctx[i], base_ms[i],
             hyb_ms[i], base_ms[i] / hyb_ms[i], base_mem[i] / 1e6, hyb_mem[i] / 1e6);
  }
  snprintf(dst, sizeof dst, "%s/summary.json", out);
  f = fopen(dst, "wb");
  if (f) {
    fprintf(f, "{\n \"task\": \"%s\", \"block\": \"%s\", \"metric\": \"%s\",\n", task,
            dtr_block_kind_name(kind), res.metric);
    fprintf(f, " \"base\": %.10g, \"final\": %.10g, \"threshold\": %.10g,\n \"replaced\": [",
            res.base, res.final, res.threshold);
    for (uint32_t i = 0; i < res.nreplaced; i++) fprintf(f, "%s%u", i ? ", " : "", res.replaced[i]);
    fprintf(f, "],\n \"layers\": %u, \"layer_forwards\": %zu, \"plain_layer_forwards\": %zu,\n",
            c->num_hidden_layers, res.layer_forwards, res.plain_layer_forwards);
    fprintf(f, " \"speed\": [");
    for (int i = 0; i < nsc; i++)
      fprintf(f, "%s\n  {\"context\": %ld, \"teacher_ms\": %.5g, \"hybrid_ms\": %.5g, "
              "\"speedup\": %.5g}", i ? "," : "", sctx[i], base_ms[i], hyb_ms[i],
              base_ms[i] / hyb_ms[i]);
    fprintf(f, "]\n}\n");
    fclose(f);
  }
  printf("\nwrote %s (hybrid model, trajectory.json, trajectory.svg, summary.json)\n", out);
  rc = 0;
done:
  if (ctx && dtr_ctx_profiling(ctx)) dtr_ctx_profile_report(ctx, stderr);
  if (stu)
    for (uint32_t L = 0; m && L < dtr_model_cfg(m)->num_hidden_layers; L++)
      dtr_block_destroy(stu[L]);
  free(stu);
  dtr_replace_result_free(&res);
  dtr_eval_set_free(set);
  dtr_task_free(t);
  dtr_tokenizer_free(tok);
  dtr_model_destroy(m);
  dtr_ctx_destroy(ctx);
  return rc;
}
