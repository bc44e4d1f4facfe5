/* eval.c — task scoring with a model: tokenizing a task into requests, packing
 * the forwards they need into batched prefills, host log-softmax of the rows
 * that are scored, metrics with 95% intervals and early stopping. The protocol
 * (tokenization, windows, metrics) is documented in eval.h. */
#define _POSIX_C_SOURCE 200809L
#include "eval.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define Z95 1.959963984540054
#define LN2 0.69314718055994530942

/* One scored sequence: tokens seq[0..len), scored positions s0..len-1. */
typedef struct req {
  int32_t *seq;
  uint32_t len, s0;
  size_t ex;
  uint32_t chars; /* multiple choice: the choice's length in code points */
} req;

struct dtr_eval_set {
  char *name;
  int mc;
  size_t n;      /* examples */
  size_t nreq;   /* requests (choices, or one per target example) */
  req *reqs;
  size_t *req0;  /* (n + 1) first request of each example */
  int *gold;     /* (n) */
  size_t *bytes; /* (n) target bytes (multiple choice: the gold choice's) */
  size_t tokens;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int32_t dtr_eval_prefix_token(const dtr_model_config *cfg, const dtr_tokenizer *tok) {
  if (cfg && cfg->bos_token_id >= 0) return cfg->bos_token_id;
  if (cfg && cfg->n_eos > 0 && cfg->eos_token_id[0] >= 0) return cfg->eos_token_id[0];
  return tok ? dtr_tokenizer_token_id(tok, "<|endoftext|>") : -1;
}

/* lm-eval's _encode_pair: fills r->seq/len/s0 for context + continuation. */
static dtr_status encode_pair(dtr_tokenizer *tok, const char *context, const char *delim,
                              const char *cont, int32_t prefix, req *r, const char *name,
                              size_t ex, char *err, size_t errlen) {
  size_t cl = strlen(context), ws = 0;
  while (ws < cl && is_space(context[cl - 1 - ws])) ws++;
  size_t kept = cl - ws, dl = strlen(delim), tl = strlen(cont);
  /* continuation = moved whitespace + delimiter + choice/target */
  size_t contl = ws + dl + tl;
  char *whole = malloc(kept + contl + 1);
  int32_t *c = NULL, *w = NULL, *k = NULL;
  size_t nc = 0, nw = 0, nk = 0;
  dtr_status st = DTR_ERR_OOM;
  if (!whole) { seterr(err, errlen, "out of host memory"); return st; }
  memcpy(whole, context, cl);
  memcpy(whole + cl, delim, dl);
  memcpy(whole + cl + dl, cont, tl);
  whole[kept + contl] = 0;
  const char *what = "";
  if (kept == 0) {
    /* empty context: the prefix token conditions the first token */
    if (prefix < 0) {
      seterr(err, errlen,
             "%s: example %zu: empty context and no prefix token (no bos/eos in config.json, "
             "no <|endoftext|>)", name, ex + 1);
      st = DTR_ERR_INVALID;
      goto done;
    }
    what = "continuation";
    if ((st = dtr_tokenizer_encode(tok, whole, contl, 0, &k, &nk))) goto tokerr;
    r->len = (uint32_t)(1 + nk);
    r->s0 = 1;
    if (!(r->seq = malloc(r->len * sizeof *r->seq))) goto oom;
    r->seq[0] = prefix;
    memcpy(r->seq + 1, k, nk * sizeof *k);
  } else {
    what = "context";
    if ((st = dtr_tokenizer_encode(tok, whole, kept, 0, &c, &nc))) goto tokerr;
    what = "context + continuation";
    if ((st = dtr_tokenizer_encode(tok, whole, kept + contl, 0, &w, &nw))) goto tokerr;
    const int32_t *ct = w + nc;
    size_t nct = nw > nc ? nw - nc : 0;
    if (nw <= nc && contl) {
      /* the joint encoding is not longer than the context's: encode apart */
      what = "continuation";
      if ((st = dtr_tokenizer_encode(tok, whole + kept, contl, 0, &k, &nk))) goto tokerr;
      ct = k;
      nct = nk;
    }
    if (nc == 0) {
      seterr(err, errlen, "%s: example %zu: the context encodes to no tokens", name, ex + 1);
      st = DTR_ERR_INVALID;
      goto done;
    }
    r->len = (uint32_t)(nc + nct);
    r->s0 = (uint32_t)nc;
    if (!(r->seq = malloc(r->len * sizeof *r->seq))) goto oom;
    memcpy(r->seq, c, nc * sizeof *c);
    memcpy(r->seq + nc, ct, nct * sizeof *ct);
  }
  st = DTR_OK;
  goto done;
tokerr:
  seterr(err, errlen, "%s: example %zu: cannot encode the %s: %s", name, ex + 1, what,
         dtr_tokenizer_error(tok));
  goto done;
oom:
  seterr(err, errlen, "out of host memory");
  st = DTR_ERR_OOM;
done:
  free(whole);
  free(c);
  free(w);
  free(k);
  return st;
}

void dtr_eval_set_free(dtr_eval_set *s) {
  if (!s) return;
  for (size_t i = 0; i < s->nreq; i++) free(s->reqs[i].seq);
  free(s->reqs);
  free(s->req0);
  free(s->gold);
  free(s->bytes);
  free(s->name);
  free(s);
}

size_t dtr_eval_set_count(const dtr_eval_set *s) { return s ? s->n : 0; }
int dtr_eval_set_multiple_choice(const dtr_eval_set *s) { return s ? s->mc : 0; }
size_t dtr_eval_set_tokens(const dtr_eval_set *s) { return s ? s->tokens : 0; }

dtr_status dtr_eval_prepare(const dtr_task *t, dtr_tokenizer *tok, int32_t prefix_token,
                            size_t limit, dtr_eval_set **out, char *err, size_t errlen) {
  *out = NULL;
  if (!t || !tok || !t->n) {
    seterr(err, errlen, "eval: no task or tokenizer, or an empty task");
    return DTR_ERR_INVALID;
  }
  dtr_eval_set *s = calloc(1, sizeof *s);
  if (!s) { seterr(err, errlen, "out of host memory"); return DTR_ERR_OOM; }
  s->mc = t->multiple_choice;
  s->n = limit && limit < t->n ? limit : t->n;
  s->name = strdup(t->name ? t->name : "task");
  s->req0 = calloc(s->n + 1, sizeof *s->req0);
  s->gold = calloc(s->n, sizeof *s->gold);
  s->bytes = calloc(s->n, sizeof *s->bytes);
  size_t nreq = 0;
  for (size_t e = 0; e < s->n; e++) nreq += s->mc ? t->items[e].nchoices : 1;
  s->reqs = calloc(nreq ? nreq : 1, sizeof *s->reqs);
  if (!s->name || !s->req0 || !s->gold || !s->bytes || !s->reqs) {
    dtr_eval_set_free(s);
    seterr(err, errlen, "out of host memory");
    return DTR_ERR_OOM;
  }
  dtr_status st;
  for (size_t e = 0; e < s->n; e++) {
    const dtr_task_item *it = &t->items[e];
    const char *ctx = it->context ? it->context : "";
    s->req0[e] = s->nreq;
    s->gold[e] = it->gold;
    if (s->mc) {
      for (size_t c = 0; c < it->nchoices; c++) {
        req *r = &s->reqs[s->nreq++];
        r->ex = e;
        r->chars = (uint32_t)utf8_chars(it->choices[c]);
        if ((st = encode_pair(tok, ctx, " ", it->choices[c], prefix_token, r, s->name, e, err,
                              errlen))) {
          dtr_eval_set_free(s);
          return st;
        }
        s->tokens += r->len - r->s0;
      }
      s->bytes[e] = strlen(it->choices[it->gold]);
    } else {
      req *r = &s->reqs[s->nreq++];
      r->ex = e;
      if ((st = encode_pair(tok, ctx, "", it->target ? it->target : "", prefix_token, r,
                            s->name, e, err, errlen))) {
        dtr_eval_set_free(s);
        return st;
      }
      s->tokens += r->len - r->s0;
      s->bytes[e] = strlen(it->target ? it->target : "");
    }
  }
  s->req0[s->n] = s->nreq;
  *out = s;
  return DTR_OK;
}

/* ---- intervals ------------------------------------------------------------ */

void dtr_eval_wilson(size_t k, size_t n, double *lo, double *hi) {
  if (!n) { *lo = NAN; *hi = NAN; return; }
  double p = (double)k / n, z2 = Z95 * Z95, d = 1 + z2 / n;
  double c = (p + z2 / (2.0 * n)) / d;
  double h = Z95 / d * sqrt(p * (1 - p) / n + z2 / (4.0 * n * n));
  *lo = c - h < 0 ? 0 : c - h;
  *hi = c + h > 1 ? 1 : c + h;
}

void dtr_eval_ratio_ci(const double *num, const double *den, size_t n, double *mean,
                       double *lo, double *hi) {
  double sn = 0, sd = 0;
  for (size_t i = 0; i < n; i++) { sn += num[i]; sd += den[i]; }
  double r = sd > 0 ? sn / sd : NAN;
  *mean = r;
  if (n < 2 || !(sd > 0)) { *lo = NAN; *hi = NAN; return; }
  /* delta method for a ratio of cluster totals: Var(r) ~ n/(n-1) * sum (N_d - r T_d)^2 / (sum T)^2 */
  double ss = 0;
  for (size_t i = 0; i < n; i++) {
    double e = num[i] - r * den[i];
    ss += e * e;
  }
  double se = sqrt(ss * n / (n - 1.0)) / sd;
  *lo = r - Z95 * se;
  *hi = r + Z95 * se;
}

/* ---- residual-stream cache ------------------------------------------------------ */

typedef struct hentry {
  float *h;
  uint32_t T;   /* tokens */
  size_t bytes; /* of h */
} hentry;
enum { HC_MAIN, HC_PEND, HC_BEST, HC_SETS };
struct dtr_hcache {
  uint32_t layers;
  size_t budget; /* per set */
  size_t nf[HC_SETS], bytes[HC_SETS];
  hentry *e[HC_SETS]; /* (nf, layers) */
};

dtr_hcache *dtr_hcache_create(uint32_t layers, size_t budget_bytes) {
  dtr_hcache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->layers = layers ? layers : 1;
  c->budget = budget_bytes / HC_SETS;
  return c;
}

static void hc_clear(dtr_hcache *c, int set) {
  for (size_t i = 0; i < c->nf[set] * c->layers; i++) free(c->e[set][i].h);
  free(c->e[set]);
  c->e[set] = NULL;
  c->nf[set] = c->bytes[set] = 0;
}

void dtr_hcache_free(dtr_hcache *c) {
  if (!c) return;
  for (int k = 0; k < HC_SETS; k++) hc_clear(c, k);
  free(c);
}

void dtr_hcache_keep_pending(dtr_hcache *c) {
  hc_clear(c, HC_BEST);
  c->e[HC_BEST] = c->e[HC_PEND];
  c->nf[HC_BEST] = c->nf[HC_PEND];
  c->bytes[HC_BEST] = c->bytes[HC_PEND];
  c->e[HC_PEND] = NULL;
  c->nf[HC_PEND] = c->bytes[HC_PEND] = 0;
}

static hentry *hc_slot(dtr_hcache *c, int set, size_t f, uint32_t L);

void dtr_hcache_commit(dtr_hcache *c, uint32_t L) {
  /* main must have room for best's forwards; out of memory, best is dropped and
   * main only loses its stale layers */
  if (c->nf[HC_BEST] && !hc_slot(c, HC_MAIN, c->nf[HC_BEST] - 1, 0)) hc_clear(c, HC_BEST);
  for (size_t f = 0; f < c->nf[HC_MAIN]; f++)
    for (uint32_t l = L + 1; l < c->layers; l++) {
      hentry *m = &c->e[HC_MAIN][f * c->layers + l];
      c->bytes[HC_MAIN] -= m->bytes;
      free(m->h);
      memset(m, 0, sizeof *m);
      if (f < c->nf[HC_BEST]) {
        hentry *b = &c->e[HC_BEST][f * c->layers + l];
        *m = *b;
        c->bytes[HC_MAIN] += m->bytes;
        c->bytes[HC_BEST] -= b->bytes;
        memset(b, 0, sizeof *b);
      }
    }
  hc_clear(c, HC_BEST);
}

/* Entry (f, L) of set, growing the set to hold forward f; NULL on OOM. */
static hentry *hc_slot(dtr_hcache *c, int set, size_t f, uint32_t L) {
  if (f >= c->nf[set]) {
    size_t nf = f + 1 > 2 * c->nf[set] ? f + 1 : 2 * c->nf[set];
    hentry *e = realloc(c->e[set], nf * c->layers * sizeof *e);
    if (!e) return NULL;
    memset(e + c->nf[set] * c->layers, 0, (nf - c->nf[set]) * c->layers * sizeof *e);
    c->e[set] = e;
    c->nf[set] = nf;
  }
  return &c->e[set][f * c->layers + L];
}

size_t dtr_hcache_bytes(const dtr_hcache *c) {
  return c->bytes[HC_MAIN] + c->bytes[HC_PEND] + c->bytes[HC_BEST];
}

/* ---- scoring ---------------------------------------------------------------- */

/* One forward's worth of scoring: input seq[a..a+n_in), scored positions
 * t0..t1-1 of request rq; host: the piece whose input is run (itself or a
 * longer choice of the same example whose input starts with this one's). */
typedef struct piece {
  size_t rq, host;
  uint32_t a, n_in, t0, t1;
  size_t next; /* next piece riding on the same host (SIZE_MAX: none) */
} piece;

void dtr_eval_result_free(dtr_eval_result *r) {
  if (!r) return;
  if (r->ex && r->total) {
    free(r->ex[0].loglik);
    free(r->ex[0].ntokens);
  }
  free(r->ex);
  memset(r, 0, sizeof *r);
}

static void metrics(const dtr_eval_set *set, dtr_eval_result *r) {
  size_t n = r->n;
  if (set->mc) {
    r->correct = r->correct_norm = 0;
    for (size_t i = 0; i < n; i++) {
      r->correct += r->ex[i].pred == r->ex[i].gold;
      r->correct_norm += r->ex[i].pred_norm == r->ex[i].gold;
    }
    r->acc = n ? (double)r->correct / n : NAN;
    r->acc_norm = n ? (double)r->correct_norm / n : NAN;
    dtr_eval_wilson(r->correct, n, &r->acc_lo, &r->acc_hi);
    dtr_eval_wilson(r->correct_norm, n, &r->acc_norm_lo, &r->acc_norm_hi);
  }
  /* NLL per token / per byte (for multiple choice: of the gold continuations) */
  double *num = calloc(n ? n : 1, sizeof *num), *den = calloc(n ? n : 1, sizeof *den);
  if (!num || !den) { free(num); free(den); return; }
  r->tokens = r->bytes = 0;
  for (size_t i = 0; i < n; i++) {
    num[i] = r->ex[i].nll;
    den[i] = (double)r->ex[i].tokens;
    r->tokens += r->ex[i].tokens;
    r->bytes += r->ex[i].bytes;
  }
  dtr_eval_ratio_ci(num, den, n, &r->nll, &r->nll_lo, &r->nll_hi);
  r->ppl = exp(r->nll);
  r->ppl_lo = exp(r->nll_lo);
  r->ppl_hi = exp(r->nll_hi);
  for (size_t i = 0; i < n; i++) den[i] = (double)r->ex[i].bytes * LN2;
  dtr_eval_ratio_ci(num, den, n, &r->bpb, &r->bpb_lo, &r->bpb_hi);
  free(num);
  free(den);
}

/* Fills example e of r from the per-request sums ll. */
static void finish_example(const dtr_eval_set *set, const double *ll, size_t e,
                           dtr_eval_example *x) {
  size_t q0 = set->req0[e], q1 = set->req0[e + 1];
  if (set->mc) {
    x->nchoices = q1 - q0;
    x->gold = set->gold[e];
    x->pred = x->pred_norm = 0;
    double best = -INFINITY, bestn = -INFINITY;
    for (size_t c = 0; c < x->nchoices; c++) {
      const req *q = &set->reqs[q0 + c];
      x->loglik[c] = ll[q0 + c];
      x->ntokens[c] = q->len - q->s0;
      double v = x->loglik[c], vn = v / (q->chars ? q->chars : 1);
      if (v > best) { best = v; x->pred = (int)c; }
      if (vn > bestn) { bestn = vn; x->pred_norm = (int)c; }
    }
    x->nll = -x->loglik[x->gold];
    x->tokens = x->ntokens[x->gold];
  } else {
    const req *q = &set->reqs[q0];
    x->nchoices = 0;
    x->gold = x->pred = x->pred_norm = -1;
    x->nll = -ll[q0];
    x->tokens = q->len - q->s0;
  }
  x->bytes = set->bytes[e];
}

/* Copies the residual stream entering each layer above start into its slot
 * of buf ((layers, T, hidden) floats), downloaded after the forward. */
typedef struct recorder {
  dtr_ctx *ctx;
  dtr_buf *buf;
  uint32_t start, T, hidden, nl;
} recorder;

static dtr_status record_layer(void *ud, uint32_t L, dtr_view resid, uint32_t Ttot) {
  recorder *r = ud;
  if (L <= r->start || L >= r->nl) return DTR_OK;
  return dtr_buf_copy(r->ctx, r->buf, (size_t)L * r->T * r->hidden * 4, resid.buf,
                      resid.offset, (size_t)Ttot * r->hidden * 4);
}

dtr_status dtr_eval_run(dtr_model *m, const dtr_eval_set *set, const dtr_eval_opts *o,
                        dtr_eval_result *r, char *err, size_t errlen) {
  dtr_eval_opts dflt;
  memset(&dflt, 0, sizeof dflt);
  if (!o) o = &dflt;
  memset(r, 0, sizeof *r);
  if (!m || !set) { seterr(err, errlen, "eval: no model or task"); return DTR_ERR_INVALID; }
  double t_start = now_s();
  const dtr_model_config *cfg = dtr_model_cfg(m);
  dtr_ctx *ctx = dtr_model_ctx(m);
  uint32_t V = cfg->vocab_size, T = dtr_model_max_tokens(m);
  uint32_t B = o->batch ? o->batch : 8;
  if (B > T) B = T;
  uint32_t Wmax = T - B + 1; /* one full window plus B-1 one-token pads fit a prefill */
  if (Wmax > cfg->max_position_embeddings) Wmax = cfg->max_position_embeddings;
  uint32_t W = o->window && o->window < Wmax ? o->window : Wmax;
  r->multiple_choice = set->mc;
  r->total = set->n;

  /* vocabulary check */
  for (size_t q = 0; q < set->nreq; q++)
    for (uint32_t i = 0; i < set->reqs[q].len; i++)
      if (set->reqs[q].seq[i] < 0 || (uint32_t)set->reqs[q].seq[i] >= V) {
        seterr(err, errlen, "%s: example %zu: token %d is outside the model's vocabulary (%u)",
               set->name, set->reqs[q].ex + 1, set->reqs[q].seq[i], V);
        return DTR_ERR_INVALID;
      }

  dtr_status st = DTR_ERR_OOM;
  piece *pc = NULL;
  size_t np = 0, cap = 0, *hosts = NULL, nh = 0;
  long *ex_last = NULL;
  double *ll = NULL, *lse = NULL;
  float *logits = NULL;
  uint32_t *lens = NULL, *roff = NULL;
  const int32_t **ptrs = NULL;
  dtr_session *s = NULL;
  int32_t pad = 0;
  recorder rec;
  memset(&rec, 0, sizeof rec);

  r->ex = calloc(set->n ? set->n : 1, sizeof *r->ex);
  ll = calloc(set->nreq ? set->nreq : 1, sizeof *ll);
  ex_last = calloc(set->n ? set->n : 1, sizeof *ex_last);
  if (!r->ex || !ll || !ex_last) goto oom;
  if (set->mc) {
    double *lb = malloc(set->nreq * sizeof *lb);
    uint32_t *nb = malloc(set->nreq * sizeof *nb);
    if (!lb || !nb) { free(lb); free(nb); goto oom; }
    for (size_t e = 0; e < set->n; e++) {
      r->ex[e].loglik = lb + set->req0[e];
      r->ex[e].ntokens = nb + set->req0[e];
    }
  }

  /* pieces, in task order */
  for (size_t q = 0; q < set->nreq; q++) {
    const req *rq = &set->reqs[q];
    for (uint32_t t0 = rq->s0; t0 < rq->len;) {
      uint32_t t1 = rq->len - t0 > W ? t0 + W : rq->len;
      if (np == cap) {
        cap = cap ? 2 * cap : 256;
        piece *npc = realloc(pc, cap * sizeof *pc);
        if (!npc) goto oom;
        pc = npc;
      }
      piece *p = &pc[np];
      p->rq = q;
      p->a = t1 - 1 > W ? t1 - 1 - W : 0;
      p->n_in = t1 - 1 - p->a;
      p->t0 = t0;
      p->t1 = t1;
      p->host = np;
      p->next = SIZE_MAX;
      np++;
      t0 = t1;
    }
  }
  /* share forwards between the choices of one example: a single-window,
   * untruncated piece rides on a longer one whose input starts with its input */
  if (set->mc) {
    size_t i0 = 0;
    while (i0 < np) {
      size_t ex = set->reqs[pc[i0].rq].ex, i1 = i0;
      while (i1 < np && set->reqs[pc[i1].rq].ex == ex) i1++;
      for (size_t i = i0; i < i1; i++) {
        piece *p = &pc[i];
        const req *rp = &set->reqs[p->rq];
        if (p->a != 0 || p->t0 != rp->s0 || p->t1 != rp->len) continue;
        /* the longest candidate host with p's input as a prefix */
        size_t best = i;
        for (size_t j = i0; j < i1; j++) {
          piece *h = &pc[j];
          const req *rh = &set->reqs[h->rq];
          if (j == i || h->a != 0 || h->t0 != rh->s0 || h->t1 != rh->len) continue;
          if (h->n_in < p->n_in || (h->n_in == p->n_in && j > i)) continue;
          if (memcmp(rh->seq, rp->seq, p->n_in * sizeof *rp->seq)) continue;
          if (best == i || h->n_in > pc[best].n_in ||
              (h->n_in == pc[best].n_in && j < best))
            best = j;
        }
        p->host = best;
      }
      /* hosts of hosts: follow to a piece that hosts itself */
      for (size_t i = i0; i < i1; i++)
        while (pc[pc[i].host].host != pc[i].host) pc[i].host = pc[pc[i].host].host;
      i0 = i1;
    }
  }
  hosts = malloc((np ? np : 1) * sizeof *hosts);
  if (!hosts) goto oom;
  for (size_t i = 0; i < np; i++)
    if (pc[i].host == i) hosts[nh++] = i;
  /* riders lists, kept in piece order; ex_last: the last host position of each example */
  {
    size_t *tail = malloc((np ? np : 1) * sizeof *tail);
    if (!tail) goto oom;
    for (size_t i = 0; i < np; i++) tail[i] = i;
    for (size_t i = 0; i < np; i++) {
      size_t h = pc[i].host;
      if (h == i) continue;
      pc[tail[h]].next = i;
      tail[h] = i;
    }
    free(tail);
    /* an example without a forward of its own (nothing to score) finishes
     * with the one before it */
    for (size_t e = 0; e < set->n; e++) ex_last[e] = -1;
    for (size_t k = 0; k < nh; k++) ex_last[set->reqs[pc[hosts[k]].rq].ex] = (long)k;
    for (size_t e = 1; e < set->n; e++)
      if (ex_last[e] < ex_last[e - 1]) ex_last[e] = ex_last[e - 1];
  }

  uint32_t nl = cfg->num_hidden_layers;
  if (o->cache && o->cache->layers != nl) {
    seterr(err, errlen, "eval: a residual cache of %u layers for a model of %u",
           o->cache->layers, nl);
    st = DTR_ERR_INVALID;
    goto fail;
  }
  dtr_layer_hooks hk;
  memset(&hk, 0, sizeof hk);
  if (o->cache && o->record) {
    hc_clear(o->cache, HC_PEND);
    rec.ctx = ctx;
    rec.T = T;
    rec.hidden = cfg->hidden_size;
    rec.nl = nl;
    rec.buf = dtr_buf_create(ctx, (size_t)nl * T * cfg->hidden_size * 4);
    if (!rec.buf) {
      seterr(err, errlen, "eval: residual recording buffer: %s", dtr_ctx_error(ctx));
      st = DTR_ERR_OOM;
      goto fail;
    }
    hk.before_layer = record_layer;
    hk.ud = &rec;
  }
  s = dtr_session_create(m, B, W);
  logits = malloc((size_t)T * V * sizeof *logits);
  lse = malloc((size_t)T * sizeof *lse);
  lens = malloc(B * sizeof *lens);
  roff = malloc(B * sizeof *roff);
  ptrs = malloc(B * sizeof *ptrs);
  if (!s) {
    seterr(err, errlen, "eval: session of %u x %u tokens: %s", B, W, dtr_ctx_error(ctx));
    st = DTR_ERR_INVALID;
    goto fail;
  }
  if (!logits || !lse || !lens || !roff || !ptrs) goto oom;

  size_t done = 0, correct = 0, left = set->n;
  double nll_so_far = 0;
  size_t total_tokens = set->tokens;
  int stop = 0;
  size_t k = 0;
  while (!stop && done < set->n) {
    size_t k1 = k;
    uint32_t nb = 0, sum = 0;
    int all = 0;
    while (k1 < nh && nb < B) {
      const piece *h = &pc[hosts[k1]];
      if (sum + h->n_in + (B - nb - 1) > T) break;
      roff[nb] = sum;
      lens[nb] = h->n_in;
      ptrs[nb] = set->reqs[h->rq].seq + h->a;
      sum += h->n_in;
      for (size_t i = hosts[k1]; i != SIZE_MAX; i = pc[i].next)
        if (pc[i].t1 - pc[i].t0 != 1 || pc[i].n_in != h->n_in) all = 1;
      nb++;
      k1++;
    }
    if (nb) {
      for (uint32_t b = nb; b < B; b++) {
        roff[b] = sum++;
        lens[b] = 1;
        ptrs[b] = &pad;
      }
      size_t f = r->forwards;
      hk.from_layer = 0;
      hk.h_in = NULL;
      for (uint32_t L = o->cache && o->from_layer < nl ? o->from_layer : 0; L >= 1; L--) {
        const hentry *e = f < o->cache->nf[HC_MAIN] ? &o->cache->e[HC_MAIN][f * nl + L] : NULL;
        if (e && e->h && e->T == sum) {
          hk.from_layer = L;
          hk.h_in = e->h;
          break;
        }
      }
      rec.start = hk.from_layer > o->from_layer ? hk.from_layer : o->from_layer;
      if ((st = dtr_session_reset(s)) ||
          (st = dtr_session_prefill_hooked(s, ptrs, lens, logits, all, &hk))) {
        seterr(err, errlen, "eval: prefill: %s", dtr_ctx_error(ctx));
        goto fail;
      }
      for (uint32_t L = rec.start + 1; rec.buf && L < nl; L++) {
        dtr_hcache *c = o->cache;
        size_t bytes = (size_t)sum * cfg->hidden_size * 4;
        if (c->bytes[HC_PEND] + bytes > c->budget) break;
        hentry *e = hc_slot(c, HC_PEND, f, L);
        if (!e || !(e->h = malloc(bytes))) goto oom;
        e->T = sum;
        e->bytes = bytes;
        c->bytes[HC_PEND] += bytes;
        if ((st = dtr_buf_download(ctx, rec.buf, (size_t)L * T * cfg->hidden_size * 4, e->h,
                                   bytes))) {
          seterr(err, errlen, "eval: %s", dtr_ctx_error(ctx));
          goto fail;
        }
      }
      r->layer_forwards += nl - hk.from_layer;
      r->forwards++;
      r->forward_tokens += sum;
      for (uint32_t i = 0; i < (all ? sum : B); i++) lse[i] = NAN;
      for (uint32_t b = 0; b < nb; b++) {
        for (size_t i = hosts[k + b]; i != SIZE_MAX; i = pc[i].next) {
          const piece *p = &pc[i];
          const int32_t *seq = set->reqs[p->rq].seq;
          double acc = 0;
          for (uint32_t t = p->t0; t < p->t1; t++) {
            /* row of position t-1 in the packed output (last-row mode: b) */
            uint32_t row = all ? roff[b] + (t - 1 - p->a) : b;
            const float *x = logits + (size_t)row * V;
            if (isnan(lse[row])) {
              float mx = x[0];
              for (uint32_t v = 1; v < V; v++) mx = x[v] > mx ? x[v] : mx;
              double se = 0;
              for (uint32_t v = 0; v < V; v++) se += expf(x[v] - mx);
              lse[row] = mx + log(se);
            }
            acc += x[seq[t]] - lse[row];
          }
          ll[p->rq] += acc;
        }
      }
    }
    k = k1;
    /* finish the examples whose forwards have all run, in order */
    while (done < set->n && ex_last[done] < (long)k) {
      dtr_eval_example *x = &r->ex[done];
      finish_example(set, ll, done, x);
      done++;
      left--;
      r->n = done;
      if (set->mc) {
        correct += (o->use_norm ? x->pred_norm : x->pred) == x->gold;
        if (o->min_acc > 0) {
          double bound = (double)(correct + left) / set->n;
          if (bound < o->min_acc) { stop = 1; r->bound = bound; }
        }
      } else {
        nll_so_far += x->nll;
        if (o->max_ppl > 0 && total_tokens) {
          double bound = exp(nll_so_far / total_tokens);
          if (bound > o->max_ppl) { stop = 1; r->bound = bound; }
        }
      }
      if (o->on_example && o->on_example(o->ud, done - 1, x)) stop = 1;
      if (stop) break;
    }
  }
  r->stopped = stop;
  metrics(set, r);
  r->seconds = now_s() - t_start;
  st = DTR_OK;
  goto fail;
oom:
  seterr(err, errlen, "out of host memory");
  st = DTR_ERR_OOM;
fail:
  dtr_session_destroy(s);
  if (rec.buf) dtr_buf_destroy(ctx, rec.buf);
  free(pc);
  free(hosts);
  free(ex_last);
  free(ll);
  free(lse);
  free(logits);
  free(lens);
  free(roff);
  free(ptrs);
  return st;
}

dtr_status dtr_eval_task(dtr_model *m, dtr_tokenizer *tok, const dtr_task *t, size_t limit,
                         const dtr_eval_opts *o, dtr_eval_result *r, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  dtr_eval_set *set = NULL;
  dtr_status st = dtr_eval_prepare(t, tok, dtr_eval_prefix_token(dtr_model_cfg(m), tok), limit,
                                   &set, err, errlen);
  if (st) return st;
  st = dtr_eval_run(m, set, o, r, err, errlen);
  dtr_eval_set_free(set);
  return st;
}
