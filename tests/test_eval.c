/* test_eval.c — host/eval (task scoring) and `dtr eval` on a tiny random model
 * with a byte-level tokenizer written here (bytes 0..255, <|endoftext|> 256, and
 * three merges "Ġa" 257, "Ġb" 258, "Ġc" 259, so " a" etc. are one token).
 *
 * The reference builds every token sequence from the strings by hand (bytes,
 * " a"/" b"/" c" merged, lm-eval's whitespace move, the prefix token for an
 * empty context), runs each window as its own single-sequence full forward and
 * takes the log-softmax on the host in double. Checked: per-choice sums and
 * token counts, acc and acc_norm, Wilson and per-document intervals on
 * hand-computed cases, perplexity and bits per byte, rolling windows and left
 * truncation (small windows), one-token choices (last-row mode), choices that
 * share a forward, batch sizes, a model with a replaced (GDN) layer, early stop
 * by threshold and callback, a malformed task line, and the command line when
 * the dtr binary is found (argv[1], else ../dtr next to this binary). */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eval.h"
#include "harness.h"
#include "model.h"
#include "tasks.h"
#include "tokenizer.h"

#define V 260
#define MAXT 64
#define PREFIX 256

static dtr_model_config tiny(void) {
  dtr_model_config c;
  memset(&c, 0, sizeof c);
  c.architecture = DTR_ARCH_QWEN2;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = V;
  c.max_position_embeddings = 256;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  c.attention_bias = 1;
  c.bos_token_id = PREFIX;
  c.eos_token_id[0] = PREFIX;
  c.n_eos = 1;
  snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
  dtr_model_config_default_linear(&c);
  return c;
}

/* Weights of a useful size: 0.02 gives logits too flat to tell choices apart. */
static void randomize(dtr_model *m) {
  char nm[160];
  size_t k;
  for (uint32_t i = 0; dtr_model_tensor_at(m, i, nm, sizeof nm, &k) == DTR_OK; i++) {
    if (strstr(nm, "linear_attn.")) continue;
    float *x = th_alloc(k);
    if (strstr(nm, "norm.weight")) th_rand(x, k, 0.7f, 1.3f);
    else if (strstr(nm, "bias")) th_rand(x, k, -0.2f, 0.2f);
    else if (strstr(nm, "embed")) th_rand(x, k, -1.0f, 1.0f);
    else th_rand(x, k, -0.25f, 0.25f);
    th_ok(dtr_model_ctx(m), dtr_model_set_tensor(m, nm, x, k), nm);
    free(x);
  }
}


/* ---- the reference ------------------------------------------------------------ */

/* Hand tokenization: bytes, with ' ' followed by a/b/c merged into one token. */
static uint32_t hand_tok(const char *s, size_t n, int32_t *out) {
  uint32_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' && i + 1 < n && s[i + 1] >= 'a' && s[i + 1] <= 'c') {
      out[k++] = 257 + (s[i + 1] - 'a');
      i++;
    } else {
      out[k++] = c;
    }
  }
  return k;
}

/* lm-eval's sequence for context + delim + cont: *s0 = first scored position. */
static uint32_t hand_seq(const char *context, const char *delim, const char *cont, int32_t *out,
                         uint32_t *s0) {
  size_t cl = strlen(context);
  while (cl && context[cl - 1] == ' ') cl--;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s%s%s", context, delim, cont);
  uint32_t k = 0;
  if (cl == 0) {
    out[k++] = PREFIX;
    *s0 = 1;
    return k + hand_tok(buf, strlen(buf), out + k);
  }
  /* no merge crosses the context's end here (the context does not end in a
   * space once stripped), so the joint encoding splits cleanly */
  *s0 = hand_tok(buf, cl, out);
  return *s0 + hand_tok(buf + cl, strlen(buf) - cl, out + *s0);
}

static dtr_session *ref_s;

/* log p(seq[p] | window) for every p in [s0, len), windows of W as eval.h says. */
static double ref_score(dtr_model *m, const int32_t *seq, uint32_t len, uint32_t s0, uint32_t W) {
  static float lg[MAXT * V];
  double sum = 0;
  for (uint32_t t0 = s0; t0 < len;) {
    uint32_t t1 = len - t0 > W ? t0 + W : len;
    uint32_t a = t1 - 1 > W ? t1 - 1 - W : 0, n = t1 - 1 - a;
    const int32_t *p = seq + a;
    th_ok(dtr_model_ctx(m), dtr_session_reset(ref_s), "ref reset");
    th_ok(dtr_model_ctx(m), dtr_session_prefill(ref_s, &p, &n, lg, 1), "ref prefill");
    for (uint32_t t = t0; t < t1; t++) {
      const float *x = lg + (size_t)(t - 1 - a) * V;
      double mx = x[0], z = 0;
      for (int v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
      for (int v = 0; v < V; v++) z += exp((double)x[v] - mx);
      sum += (double)x[seq[t]] - mx - log(z);
    }
    t0 = t1;
  }
  return sum;
}

/* ---- tasks ----------------------------------------------------------------------- */

typedef struct mc_ex {
  const char *context;
  const char *choices[4];
  int n, gold;
} mc_ex;

static const mc_ex MC[] = {
    {"The cat sat on the", {"mat", "hat", "dog house"}, 3, 0},
    {"abc ", {"d", "ef"}, 2, 1},                       /* trailing space moves */
    {"Pick:", {"a", "b", "c"}, 3, 1},                  /* one-token choices */
    {"Q: x", {"ab", "a", "zz"}, 3, 0},                 /* "a" shares "ab"'s forward */
    {"", {"yes", "no"}, 2, 0},                         /* empty context: prefix */
    {"caf\xc3\xa9 is", {"na\xc3\xafve", "plain"}, 2, 0}, /* 5 chars, 6 bytes */
    {"A long context that goes on and on, well past the window of sixty tokens, to the end",
     {"yes", "no way"}, 2, 1},                          /* left truncation */
    {"Pick again:", {"c", "a"}, 2, 1},
};
#define NMC (sizeof MC / sizeof MC[0])

typedef struct lm_ex {
  const char *context, *target;
} lm_ex;

static const lm_ex LM[] = {
    {"", "hello world, a bit of text"},
    {"Title: ", "body text"},
    {"", "A longer document that runs past the window: it has to be scored in several "
         "windows, each conditioned on the tokens just before it, as lm-eval rolls them."},
};
#define NLM (sizeof LM / sizeof LM[0])

static void json_escape(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

static void write_tasks(const char *dir) {
  char p[512];
  snprintf(p, sizeof p, "%s/mc.jsonl", dir);
  FILE *f = fopen(p, "w");
  for (size_t e = 0; e < NMC; e++) {
    fprintf(f, "{\"context\": ");
    json_escape(f, MC[e].context);
    fprintf(f, ", \"choices\": [");
    for (int c = 0; c < MC[e].n; c++) {
      if (c) fprintf(f, ", ");
      json_escape(f, MC[e].choices[c]);
    }
    fprintf(f, "], \"gold\": %d}\n", MC[e].gold);
  }
  fclose(f);
  snprintf(p, sizeof p, "%s/lm.jsonl", dir);
  f = fopen(p, "w");
  for (size_t e = 0; e < NLM; e++) {
    fprintf(f, "{");
    if (*LM[e].context) { fprintf(f, "\"context\": "); json_escape(f, LM[e].context); fprintf(f, ", "); }
    fprintf(f, "\"target\": ");
    json_escape(f, LM[e].target);
    fprintf(f, "}\n");
  }
  fclose(f);
  snprintf(p, sizeof p, "%s/bad.jsonl", dir);
  f = fopen(p, "w");
  fprintf(f, "{\"context\": \"a\", \"choices\": [\"x\", \"y\"], \"gold\": 0}\n\n"
             "{\"context\": \"b\", \"choices\": [\"x\", \"y\"], \"gold\": 0\n");
  fclose(f);
}

static size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

/* Reference sums for every choice of MC (ll[e][c]) with window W. */
static void ref_mc(dtr_model *m, uint32_t W, double ll[][4], uint32_t nt[][4]) {
  int32_t seq[512];
  for (size_t e = 0; e < NMC; e++)
    for (int c = 0; c < MC[e].n; c++) {
      uint32_t s0, len = hand_seq(MC[e].context, " ", MC[e].choices[c], seq, &s0);
      ll[e][c] = ref_score(m, seq, len, s0, W);
      nt[e][c] = len - s0;
    }
}

typedef struct cb_state {
  size_t calls, next, stop_at;
} cb_state;

static int on_ex(void *ud, size_t i, const dtr_eval_example *x) {
  cb_state *s = ud;
  (void)x;
  if (i != s->next) s->next = SIZE_MAX; /* out of order: poison */
  else s->next++;
  s->calls++;
  return s->stop_at && i + 1 == s->stop_at;
}

static void check_mc(dtr_model *m, const dtr_task *mc, dtr_tokenizer *tok, uint32_t batch,
                     uint32_t window, const char *what) {
  char err[512], name[256];
  uint32_t T = dtr_model_max_tokens(m);
  uint32_t W = window ? window : T - batch + 1;
  double ll[NMC][4];
  uint32_t nt[NMC][4];
  ref_mc(m, W, ll, nt);
  dtr_eval_opts o;
  memset(&o, 0, sizeof o);
  o.batch = batch;
  o.window = window;
  cb_state cs = {0, 0, 0};
  o.on_example = on_ex;
  o.ud = &cs;
  dtr_eval_result r;
  dtr_status st = dtr_eval_task(m, tok, mc, 0, &o, &r, err, sizeof err);
  th_expect(st == DTR_OK, "%s: eval: %s", what, st ? err : "ok");
  if (st) { dtr_eval_result_free(&r); return; }
  th_expect(r.n == NMC && !r.stopped && cs.calls == NMC && cs.next == NMC,
            "%s: all %zu examples scored, callback in order (n %zu, calls %zu)", what, NMC, r.n,
            cs.calls);
  /* per-choice sums */
  float got[64];
  double ref[64];
  size_t k = 0, tok_ok = 1, correct = 0, correct_norm = 0, pred_ok = 1;
  for (size_t e = 0; e < NMC && e < r.n; e++) {
    int best = 0, bestn = 0;
    for (int c = 0; c < MC[e].n; c++) {
      got[k] = (float)r.ex[e].loglik[c];
      ref[k++] = ll[e][c];
      tok_ok &= r.ex[e].ntokens[c] == nt[e][c];
      if (ll[e][c] > ll[e][best]) best = c;
      if (ll[e][c] / utf8_chars(MC[e].choices[c]) >
          ll[e][bestn] / utf8_chars(MC[e].choices[bestn]))
        bestn = c;
    }
    correct += best == MC[e].gold;
    correct_norm += bestn == MC[e].gold;
    pred_ok &= r.ex[e].pred == best && r.ex[e].pred_norm == bestn && r.ex[e].gold == MC[e].gold;
  }
  snprintf(name, sizeof name, "%s: per-choice log-likelihood sums vs separate forwards", what);
  th_check(name, got, ref, k, 1e-5, 1e-4, 1e-4);
  th_expect(tok_ok, "%s: continuation token counts (lm-eval split, whitespace move, merges)", what);
  th_expect(pred_ok, "%s: argmax and argmax per character match the reference", what);
  double lo, hi;
  dtr_eval_wilson(correct, NMC, &lo, &hi);
  th_expect(r.correct == correct && fabs(r.acc - (double)correct / NMC) < 1e-12 &&
                fabs(r.acc_lo - lo) < 1e-12 && fabs(r.acc_hi - hi) < 1e-12,
            "%s: acc %.4f [%.4f, %.4f] = %zu/%zu", what, r.acc, r.acc_lo, r.acc_hi, correct, NMC);
  th_expect(r.correct_norm == correct_norm &&
                fabs(r.acc_norm - (double)correct_norm / NMC) < 1e-12,
            "%s: acc_norm %.4f = %zu/%zu", what, r.acc_norm, correct_norm, NMC);
  printf("  %s: acc %.3f acc_norm %.3f, %zu forwards, %zu tokens, %.3f s\n", what, r.acc,
         r.acc_norm, r.forwards, r.forward_tokens, r.seconds);
  dtr_eval_result_free(&r);
}

static void check_lm(dtr_model *m, const dtr_task *lm, dtr_tokenizer *tok, uint32_t batch,
                     uint32_t window, const char *what) {
  char err[512];
  uint32_t T = dtr_model_max_tokens(m);
  uint32_t W = window ? window : T - batch + 1;
  int32_t seq[1024];
  double nll[NLM], ntok[NLM], nbyte[NLM], sn = 0, st_ = 0, sb = 0;
  for (size_t e = 0; e < NLM; e++) {
    uint32_t s0, len = hand_seq(LM[e].context, "", LM[e].target, seq, &s0);
    nll[e] = -ref_score(m, seq, len, s0, W);
    ntok[e] = len - s0;
    nbyte[e] = (double)strlen(LM[e].target);
    sn += nll[e];
    st_ += ntok[e];
    sb += nbyte[e];
  }
  dtr_eval_opts o;
  memset(&o, 0, sizeof o);
  o.batch = batch;
  o.window = window;
  dtr_eval_result r;
  dtr_status st = dtr_eval_task(m, tok, lm, 0, &o, &r, err, sizeof err);
  th_expect(st == DTR_OK && r.n == NLM, "%s: eval: %s", what, st ? err : "ok");
  if (st) { dtr_eval_result_free(&r); return; }
  float got[NLM];
  for (size_t e = 0; e < NLM; e++) got[e] = (float)r.ex[e].nll;
  char name[256];
  snprintf(name, sizeof name, "%s: per-document NLL vs separate forwards", what);
  th_check(name, got, nll, NLM, 1e-5, 1e-4, 1e-4);
  double ppl = exp(sn / st_), bpb = sn / (sb * log(2.0));
  th_expect(r.tokens == (size_t)st_ && r.bytes == (size_t)sb, "%s: %zu tokens %zu bytes (ref %g %g)",
            what, r.tokens, r.bytes, st_, sb);
  th_expect(fabs(r.ppl - ppl) < 1e-4 * ppl && fabs(r.bpb - bpb) < 1e-4 * bpb &&
                fabs(r.nll - sn / st_) < 1e-4 * sn / st_,
            "%s: ppl %.5f (ref %.5f), bits/byte %.5f (ref %.5f)", what, r.ppl, ppl, r.bpb, bpb);
  double mean, lo, hi;
  dtr_eval_ratio_ci(nll, ntok, NLM, &mean, &lo, &hi);
  th_expect(fabs(r.nll_lo - lo) < 1e-4 && fabs(r.nll_hi - hi) < 1e-4 &&
                fabs(r.ppl_lo - exp(lo)) < 1e-3 * exp(lo) && r.ppl_lo < r.ppl && r.ppl < r.ppl_hi,
            "%s: ppl CI [%.4f, %.4f] from the per-document NLL interval", what, r.ppl_lo,
            r.ppl_hi);
  printf("  %s: ppl %.3f, bpb %.4f, %zu forwards, %.3f s\n", what, r.ppl, r.bpb, r.forwards,
         r.seconds);
  dtr_eval_result_free(&r);
}

static void intervals(void) {
  /* Wilson 95% for 3/4: centre (p + z^2/2n)/(1 + z^2/n) = 0.62753, half-width
   * z/(1 + z^2/n) sqrt(p(1-p)/n + z^2/4n^2) = 0.32689 -> [0.30064, 0.95441] */
  double lo, hi;
  dtr_eval_wilson(3, 4, &lo, &hi);
  th_expect(fabs(lo - 0.30064) < 5e-5 && fabs(hi - 0.95441) < 5e-5,
            "Wilson 3/4: [%.5f, %.5f] (hand: [0.30064, 0.95441])", lo, hi);
  dtr_eval_wilson(0, 10, &lo, &hi);
  th_expect(lo == 0 && fabs(hi - 0.27753) < 5e-5, "Wilson 0/10: [%.5f, %.5f] (hand: [0, 0.27753])",
            lo, hi);
  /* ratio: N = {2, 4}, T = {1, 3}: r = 6/4 = 1.5, residuals 0.5, -0.5, se =
   * sqrt(2/1 * 0.5) / 4 = 0.25 -> 1.5 +- 1.96 * 0.25 */
  double num[2] = {2, 4}, den[2] = {1, 3}, mean;
  dtr_eval_ratio_ci(num, den, 2, &mean, &lo, &hi);
  th_expect(fabs(mean - 1.5) < 1e-12 && fabs(lo - (1.5 - 1.959964 * 0.25)) < 1e-6 &&
                fabs(hi - (1.5 + 1.959964 * 0.25)) < 1e-6,
            "per-document ratio CI: %.6f [%.6f, %.6f] (hand: 1.5 +- 0.489991)", mean, lo, hi);
}

static void early_stop(dtr_model *m, const dtr_task *mc, const dtr_task *lm, dtr_tokenizer *tok) {
  char err[512];
  dtr_eval_set *set = NULL;
  dtr_status pst = dtr_eval_prepare(mc, tok, PREFIX, 0, &set, err, sizeof err);
  th_expect(pst == DTR_OK, "prepare mc: %s", pst ? err : "ok");
  if (!set) return;
  dtr_eval_opts o;
  memset(&o, 0, sizeof o);
  o.batch = 3;
  dtr_eval_result full, r;
  th_ok(dtr_model_ctx(m), dtr_eval_run(m, set, &o, &full, err, sizeof err), "full run");
  /* min_acc 1: stops at the first wrong example */
  size_t first_wrong = SIZE_MAX;
  for (size_t e = 0; e < full.n; e++)
    if (full.ex[e].pred != full.ex[e].gold) { first_wrong = e; break; }
  o.min_acc = 1.0;
  th_ok(dtr_model_ctx(m), dtr_eval_run(m, set, &o, &r, err, sizeof err), "min_acc run");
  if (first_wrong == SIZE_MAX)
    th_expect(r.n == NMC && !r.stopped, "min_acc 1 with every example right: no stop");
  else
    th_expect(r.n == first_wrong + 1 && r.stopped && r.bound < 1.0,
              "min_acc 1 stops after the first wrong example (#%zu): n %zu, bound %.3f",
              first_wrong + 1, r.n, r.bound);
  dtr_eval_result_free(&r);
  /* a bound that is met (the final acc itself) never stops */
  if (full.correct) {
    o.min_acc = full.acc;
    th_ok(dtr_model_ctx(m), dtr_eval_run(m, set, &o, &r, err, sizeof err), "min_acc run");
    th_expect(r.n == NMC && !r.stopped, "min_acc = the final acc %.3f does not stop (n %zu)",
              full.acc, r.n);
    dtr_eval_result_free(&r);
  }
  /* the callback stops after example 3 */
  o.min_acc = 0;
  cb_state cs = {0, 0, 3};
  o.on_example = on_ex;
  o.ud = &cs;
  th_ok(dtr_model_ctx(m), dtr_eval_run(m, set, &o, &r, err, sizeof err), "callback run");
  int same = 1;
  for (size_t e = 0; e < r.n; e++)
    for (size_t c = 0; c < r.ex[e].nchoices; c++)
      same &= fabs(r.ex[e].loglik[c] - full.ex[e].loglik[c]) < 1e-4;
  th_expect(r.n == 3 && r.stopped && cs.calls == 3 && same,
            "callback stop after example 3: n %zu, calls %zu, sums as in the full run", r.n,
            cs.calls);
  dtr_eval_result_free(&r);
  dtr_eval_result_free(&full);
  dtr_eval_set_free(set);
  /* perplexity: max_ppl just above 1 cannot hold once the first document is in */
  memset(&o, 0, sizeof o);
  o.max_ppl = 1.0001;
  th_ok(dtr_model_ctx(m), dtr_eval_task(m, tok, lm, 0, &o, &r, err, sizeof err), "max_ppl run");
  th_expect(r.n == 1 && r.stopped && r.bound > 1.0001,
            "max_ppl 1.0001 stops after the first document (n %zu, bound %.3f)", r.n, r.bound);
  dtr_eval_result_free(&r);
  /* limit */
  th_ok(dtr_model_ctx(m), dtr_eval_task(m, tok, mc, 2, &o, &r, err, sizeof err), "limit run");
  th_expect(r.n == 2 && r.total == 2, "limit 2: %zu of %zu", r.n, r.total);
  dtr_eval_result_free(&r);
}

/* ---- the command line --------------------------------------------------------------- */

static const char *dtr_bin;

static int run(const char *args, char *out, size_t cap) {
  return th_run(dtr_bin, args, out, cap);
}

static void cli(const char *dir) {
  static char out[1 << 16];
  char args[2048];
  snprintf(args, sizeof args, "eval --model %s --task %s/mc.jsonl --batch 4", dir, dir);
  int rc = run(args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "task mc") && strstr(out, "acc_norm") &&
                strstr(out, "95% CI") && strstr(out, "time"),
            "dtr eval multiple choice (exit %d): %.400s", rc, out);
  snprintf(args, sizeof args, "eval --model %s --task %s/lm.jsonl --json --limit 2", dir, dir);
  rc = run(args, out, sizeof out);
  th_expect(rc == 0 && out[0] == '{' && strstr(out, "\"ppl\"") && strstr(out, "\"bits_per_byte\"") &&
                strstr(out, "\"examples\": 2"),
            "dtr eval --json perplexity (exit %d): %.400s", rc, out);
  snprintf(args, sizeof args, "eval --model %s --task %s/bad.jsonl", dir, dir);
  rc = run(args, out, sizeof out);
  th_expect(rc == 1 && strstr(out, "bad.jsonl:3"), "dtr eval on a bad line names it (exit %d): %s",
            rc, out);
  char nodir[600];
  snprintf(nodir, sizeof nodir, "%s/notok", dir);
  mkdir(nodir, 0755);
  char cp[1400];
  snprintf(cp, sizeof cp, "cp %s/config.json %s/model.safetensors %s/", dir, dir, nodir);
  if (system(cp)) {}
  snprintf(args, sizeof args, "eval --model %s --task %s/mc.jsonl", nodir, dir);
  rc = run(args, out, sizeof out);
  th_expect(rc == 1 && strstr(out, "tokenizer.json") && strstr(out, "not found"),
            "dtr eval without tokenizer.json: clear error (exit %d): %s", rc, out);
  rc = run("eval --model /x", out, sizeof out);
  th_expect(rc == 2 && strstr(out, "--task"), "dtr eval without --task: usage error (exit %d)", rc);
}

int main(int argc, char **argv) {
  static char binbuf[4200];
  if (argc > 1) dtr_bin = argv[1];
  else {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
      self[n] = 0;
      char *sl = strrchr(self, '/');
      if (sl) {
        *sl = 0;
        snprintf(binbuf, sizeof binbuf, "%s/../dtr", self);
        if (access(binbuf, X_OK) == 0) dtr_bin = binbuf;
      }
    }
  }
  dtr_ctx *ctx = th_ctx();
  intervals();

  char dir[] = "/tmp/dtr_test_eval_XXXXXX";
  th_expect(mkdtemp(dir) != NULL, "temp dir");
  th_write_byte_tokenizer(dir);
  write_tasks(dir);
  char err[512], path[600];
  dtr_status st;
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  dtr_tokenizer *tok = dtr_tokenizer_load(path, &st, err, sizeof err);
  th_expect(tok != NULL, "tokenizer: %s", tok ? "ok" : err);
  dtr_task *mc = NULL, *lm = NULL, *bad = NULL;
  snprintf(path, sizeof path, "%s/mc.jsonl", dir);
  st = dtr_task_load(path, &mc, err, sizeof err);
  th_expect(st == DTR_OK, "mc task: %s", st ? err : "ok");
  snprintf(path, sizeof path, "%s/lm.jsonl", dir);
  st = dtr_task_load(path, &lm, err, sizeof err);
  th_expect(st == DTR_OK, "lm task: %s", st ? err : "ok");
  snprintf(path, sizeof path, "%s/bad.jsonl", dir);
  err[0] = 0;
  th_expect(dtr_task_load(path, &bad, err, sizeof err) != DTR_OK && strstr(err, "bad.jsonl:3:"),
            "malformed line 3 named: %s", err);
  dtr_task_free(bad);

  dtr_model_config c = tiny();
  dtr_model *m = dtr_model_create(ctx, &c, MAXT, 5, &st, err, sizeof err);
  th_expect(m != NULL, "model: %s", m ? "ok" : err);
  if (m && tok && mc && lm) {
    randomize(m);
    ref_s = dtr_session_create(m, 1, MAXT);
    th_expect(ref_s != NULL, "reference session");
    check_mc(m, mc, tok, 4, 0, "mc batch 4");
    check_mc(m, mc, tok, 1, 0, "mc batch 1");
    check_mc(m, mc, tok, 3, 12, "mc batch 3 window 12");
    check_lm(m, lm, tok, 4, 0, "lm batch 4");
    check_lm(m, lm, tok, 2, 16, "lm batch 2 window 16");
    early_stop(m, mc, lm, tok);
    dtr_status sst = dtr_model_save(m, dir, err, sizeof err);
    th_expect(sst == DTR_OK, "save: %s", sst ? err : "ok");
    /* a student layer: eval sees the replaced model */
    dtr_session_destroy(ref_s);
    th_ok(ctx, dtr_model_replace_layer_kind(m, 1, DTR_BLOCK_GDN, 9), "replace layer 1 by GDN");
    ref_s = dtr_session_create(m, 1, MAXT);
    check_mc(m, mc, tok, 4, 0, "hybrid (gdn layer 1) mc batch 4");
    check_lm(m, lm, tok, 3, 20, "hybrid (gdn layer 1) lm window 20");
    dtr_session_destroy(ref_s);
  }
  dtr_model_destroy(m);
  if (dtr_bin) cli(dir);
  else printf("  (dtr binary not found: command-line checks skipped)\n");
  dtr_task_free(mc);
  dtr_task_free(lm);
  dtr_tokenizer_free(tok);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
  return th_finish();
}
