/* bpe_train.c — byte-level BPE training (see bpe_train.h for the format and the
 * algorithm). */
#include "bpe_train.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "corpus.h" /* dtr_utf8_valid, dtr_read_text_file */

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
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dtr_bpe_opts_default(dtr_bpe_opts *o) {
  memset(o, 0, sizeof *o);
  o->vocab_size = 4096;
  o->min_frequency = 2;
}

static uint64_t fnv(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* --------------------------------------------- distinct pre-tokenized pieces */

typedef struct {
  char *arena;      /* piece bytes, back to back */
  size_t an, acap;
  size_t *off, *len; /* per piece */
  int64_t *count;
  size_t n, cap;
  uint32_t *slot; /* open addressing: piece index + 1, 0 = empty */
  size_t nslot;
} wordmap;

static int wm_grow(wordmap *m) {
  size_t ns = m->nslot ? m->nslot * 2 : 1 << 16;
  uint32_t *s = calloc(ns, sizeof *s);
  if (!s) return 0;
  for (size_t i = 0; i < m->n; i++) {
    size_t h = fnv(m->arena + m->off[i], m->len[i]) & (ns - 1);
    while (s[h]) h = (h + 1) & (ns - 1);
    s[h] = (uint32_t)(i + 1);
  }
  free(m->slot);
  m->slot = s;
  m->nslot = ns;
  return 1;
}

static int wm_add(wordmap *m, const char *w, size_t n) {
  if ((m->n + 1) * 2 > m->nslot && !wm_grow(m)) return 0;
  size_t h = fnv(w, n) & (m->nslot - 1);
  while (m->slot[h]) {
    size_t i = m->slot[h] - 1;
    if (m->len[i] == n && !memcmp(m->arena + m->off[i], w, n)) {
      m->count[i]++;
      return 1;
    }
    h = (h + 1) & (m->nslot - 1);
  }
  if (m->n == m->cap) {
    size_t c = m->cap ? m->cap * 2 : 1 << 14;
    size_t *o = realloc(m->off, c * sizeof *o), *l = o ? realloc(m->len, c * sizeof *l) : NULL;
    if (o) m->off = o;
    if (l) m->len = l;
    int64_t *k = l ? realloc(m->count, c * sizeof *k) : NULL;
    if (!k) return 0;
    m->count = k;
    m->cap = c;
  }
  if (m->an + n > m->acap) {
    size_t c = m->acap ? m->acap * 2 : 1 << 20;
    while (m->an + n > c) c *= 2;
    char *a = realloc(m->arena, c);
    if (!a) return 0;
    m->arena = a;
    m->acap = c;
  }
  memcpy(m->arena + m->an, w, n);
  m->off[m->n] = m->an;
  m->len[m->n] = n;
  m->count[m->n] = 1;
  m->an += n;
  m->slot[h] = (uint32_t)(++m->n);
  return 1;
}

static void wm_free(wordmap *m) {
  free(m->arena);
  free(m->off);
  free(m->len);
  free(m->count);
  free(m->slot);
}

/* ---------------------------------------------------------- pair statistics */

typedef struct {
  uint64_t key; /* a << 32 | b; UINT64_MAX = empty */
  int64_t count;
  uint32_t *where; /* pieces holding the pair (may hold stale entries) */
  uint32_t nw, wcap;
} pair;

typedef struct {
  pair *p;
  size_t n, cap; /* cap: power of two */
} pairmap;

static pair *pm_find(pairmap *m, uint64_t key, int create);

static int pm_grow(pairmap *m) {
  size_t nc = m->cap ? m->cap * 2 : 1 << 16;
  pair *np = malloc(nc * sizeof *np);
  if (!np) return 0;
  for (size_t i = 0; i < nc; i++) np[i].key = UINT64_MAX;
  pair *old = m->p;
  size_t oc = m->cap;
  m->p = np;
  m->cap = nc;
  for (size_t i = 0; i < oc; i++)
    if (old[i].key != UINT64_MAX) {
      size_t h = mix64(old[i].key) & (nc - 1);
      while (np[h].key != UINT64_MAX) h = (h + 1) & (nc - 1);
      np[h] = old[i];
    }
  free(old);
  return 1;
}

static pair *pm_find(pairmap *m, uint64_t key, int create) {
  if (create && (m->n + 1) * 2 > m->cap && !pm_grow(m)) return NULL;
  if (!m->cap) return NULL;
  size_t h = mix64(key) & (m->cap - 1);
  while (m->p[h].key != UINT64_MAX) {
    if (m->p[h].key == key) return &m->p[h];
    h = (h + 1) & (m->cap - 1);
  }
  if (!create) return NULL;
  pair *p = &m->p[h];
  memset(p, 0, sizeof *p);
  p->key = key;
  m->n++;
  return p;
}

static int pair_where(pair *p, uint32_t w) {
  if (p->nw && p->where[p->nw - 1] == w) return 1;
  if (p->nw == p->wcap) {
    uint32_t c = p->wcap ? p->wcap * 2 : 4;
    uint32_t *nw = realloc(p->where, c * sizeof *nw);
    if (!nw) return 0;
    p->where = nw;
    p->wcap = c;
  }
  p->where[p->nw++] = w;
  return 1;
}

typedef struct {
  int64_t count;
  uint64_t key;
} hent;

typedef struct {
  hent *h;
  size_t n, cap;
} heap;

static int h_before(const hent *a, const hent *b) { /* a pops first */
  return a->count > b->count || (a->count == b->count && a->key < b->key);
}

static int h_push(heap *q, int64_t count, uint64_t key) {
  if (q->n == q->cap) {
    size_t c = q->cap ? q->cap * 2 : 1 << 16;
    hent *nh = realloc(q->h, c * sizeof *nh);
    if (!nh) return 0;
    q->h = nh;
    q->cap = c;
  }
  size_t i = q->n++;
  q->h[i] = (hent){count, key};
  while (i) {
    size_t p = (i - 1) / 2;
    if (!h_before(&q->h[i], &q->h[p])) break;
    hent t = q->h[i];
    q->h[i] = q->h[p];
    q->h[p] = t;
    i = p;
  }
  return 1;
}

static hent h_pop(heap *q) {
  hent top = q->h[0];
  q->h[0] = q->h[--q->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, b = i;
    if (l < q->n && h_before(&q->h[l], &q->h[b])) b = l;
    if (r < q->n && h_before(&q->h[r], &q->h[b])) b = r;
    if (b == i) break;
    hent t = q->h[i];
    q->h[i] = q->h[b];
    q->h[b] = t;
    i = b;
  }
  return top;
}

/* ------------------------------------------------------------ token table */

typedef struct {
  char **str; /* byte-level spelling, NUL-terminated */
  size_t n, cap;
  uint32_t *slot; /* string -> id + 1 */
  size_t nslot;
} toktab;

static int tt_lookup(const toktab *t, const char *s) {
  size_t h = fnv(s, strlen(s)) & (t->nslot - 1);
  while (t->slot[h]) {
    if (!strcmp(t->str[t->slot[h] - 1], s)) return (int)t->slot[h] - 1;
    h = (h + 1) & (t->nslot - 1);
  }
  return -1;
}

/* Adds s (taking ownership) as the next id; the table never holds duplicates. */
static int tt_add(toktab *t, char *s) {
  if (t->n == t->cap) {
    size_t c = t->cap ? t->cap * 2 : 1024;
    char **ns = realloc(t->str, c * sizeof *ns);
    if (!ns) return 0;
    t->str = ns;
    t->cap = c;
  }
  if ((t->n + 1) * 2 > t->nslot) {
    size_t nsl = t->nslot ? t->nslot * 2 : 4096;
    uint32_t *sl = calloc(nsl, sizeof *sl);
    if (!sl) return 0;
    for (size_t i = 0; i < t->n; i++) {
      size_t h = fnv(t->str[i], strlen(t->str[i])) & (nsl - 1);
      while (sl[h]) h = (h + 1) & (nsl - 1);
      sl[h] = (uint32_t)(i + 1);
    }
    free(t->slot);
    t->slot = sl;
    t->nslot = nsl;
  }
  size_t h = fnv(s, strlen(s)) & (t->nslot - 1);
  while (t->slot[h]) h = (h + 1) & (t->nslot - 1);
  t->str[t->n] = s;
  t->slot[h] = (uint32_t)(++t->n);
  return 1;
}

static void tt_free(toktab *t) {
  for (size_t i = 0; i < t->n; i++) free(t->str[i]);
  free(t->str);
  free(t->slot);
}

/* GPT-2's byte -> code point map: printable Latin-1 bytes map to themselves, the
 * others to U+0100 upwards, so every byte has a visible, non-space character. */
static void byte_unicode(uint32_t cp[256]) {
  int n = 0;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
  }
}

static size_t put_utf8(char *o, uint32_t cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  o[0] = (char)(0xC0 | cp >> 6);
  o[1] = (char)(0x80 | (cp & 63));
  return 2; /* all byte-level code points are < 0x800 */
}

/* ------------------------------------------------------------------ train */

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

typedef struct {
  int32_t *sym;
  uint32_t len;
} piece;

dtr_status dtr_bpe_train_text(const char *text, size_t len, const char *src,
                              const dtr_bpe_opts *opts, const char *out_path,
                              size_t *final_vocab, char *err, size_t errlen) {
  static const char *DEF_SPECIAL[] = {"<|endoftext|>", "<|pad|>"};
  dtr_bpe_opts o;
  if (opts) o = *opts;
  else dtr_bpe_opts_default(&o);
  if (!o.special) {
    o.special = DEF_SPECIAL;
    o.nspecial = 2;
  }
  if (o.min_frequency < 1) o.min_frequency = 1;
  if (!src) src = "input";
  if (o.vocab_size < o.nspecial + 256 || o.vocab_size > (1u << 24)) {
    seterr(err, errlen, "vocab size %zu must be between %zu (special tokens + 256 bytes) and %u",
           o.vocab_size, o.nspecial + 256, 1u << 24);
    return DTR_ERR_INVALID;
  }
  size_t bad;
  if (len == 0) {
    seterr(err, errlen, "%s: no text to train on", src);
    return DTR_ERR_FORMAT;
  }
  if (!dtr_utf8_valid(text, len, &bad)) {
    seterr(err, errlen, "%s: not valid UTF-8 (byte offset %zu)", src, bad);
    return DTR_ERR_FORMAT;
  }
  for (size_t k = 0; k < o.nspecial; k++)
    if (!o.special[k] || !*o.special[k]) {
      seterr(err, errlen, "special token %zu is empty", k);
      return DTR_ERR_INVALID;
    }
  double t0 = now_s();
  dtr_status st = DTR_OK;
  /* 1. Pre-tokenize (special tokens cut out first) and count distinct pieces. */
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)DTR_BPE_REGEX, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
  if (!re) {
    seterr(err, errlen, "pre-tokenizer regex does not compile (PCRE2 error %d)", ec);
    return DTR_ERR_UNSUPPORTED;
  }
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  wordmap wm = {0};
  size_t *next_sp = malloc((o.nspecial + 1) * sizeof *next_sp);
  if (!md || !next_sp) st = DTR_ERR_OOM;
  for (size_t k = 0; st == DTR_OK && k < o.nspecial; k++) next_sp[k] = (size_t)-1 - 1;
  size_t pos = 0, npieces = 0;
  while (st == DTR_OK && pos < len) {
    /* the next special token at or after pos (cached per token) */
    size_t seg_end = len, sp_len = 0;
    for (size_t k = 0; k < o.nspecial; k++) {
      if (next_sp[k] == (size_t)-1 - 1 || (next_sp[k] != (size_t)-1 && next_sp[k] < pos)) {
        const char *f = NULL;
        size_t sl = strlen(o.special[k]);
        for (const char *p = text + pos; p + sl <= text + len;) {
          const char *q = memchr(p, o.special[k][0], (size_t)(text + len - p));
          if (!q || q + sl > text + len) break;
          if (!memcmp(q, o.special[k], sl)) { f = q; break; }
          p = q + 1;
        }
        next_sp[k] = f ? (size_t)(f - text) : (size_t)-1;
      }
      if (next_sp[k] != (size_t)-1 && next_sp[k] < seg_end) {
        seg_end = next_sp[k];
        sp_len = strlen(o.special[k]);
      }
    }
    size_t off = pos;
    while (off < seg_end) {
      int rc = pcre2_match(re, (PCRE2_SPTR)text, seg_end, off, PCRE2_NO_UTF_CHECK, md, NULL);
      size_t ms, me;
      if (rc < 0) {
        ms = me = seg_end; /* no more matches: the rest is one piece */
      } else {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        ms = ov[0];
        me = ov[1];
      }
      if (ms > off && !wm_add(&wm, text + off, ms - off)) st = DTR_ERR_OOM; /* gap */
      if (ms > off) npieces++;
      if (me > ms) {
        if (!wm_add(&wm, text + ms, me - ms)) st = DTR_ERR_OOM;
        npieces++;
        off = me;
      } else if (rc >= 0) { /* empty match: step one character */
        size_t e = ms + 1;
        while (e < seg_end && ((unsigned char)text[e] & 0xC0) == 0x80) e++;
        if (!wm_add(&wm, text + ms, e - ms)) st = DTR_ERR_OOM;
        off = e;
      } else off = seg_end;
      if (st != DTR_OK) break;
    }
    pos = seg_end + sp_len;
  }
  free(next_sp);
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  double t1 = now_s();
  if (o.verbose && st == DTR_OK)
    printf("  pre-tokenized %zu bytes: %zu pieces, %zu distinct (%.2f s)\n", len, npieces, wm.n,
           t1 - t0);

  /* 2. Initial vocabulary: specials, then the 256 bytes. */
  toktab tt = {0};
  uint32_t bcp[256];
  byte_unicode(bcp);
  for (size_t k = 0; st == DTR_OK && k < o.nspecial; k++) {
    char *s = strdup(o.special[k]);
    if (!s || !tt_add(&tt, s)) st = DTR_ERR_OOM;
  }
  if (st == DTR_OK && tt.n != o.nspecial) {
    seterr(err, errlen, "duplicate special tokens");
    st = DTR_ERR_INVALID;
  }
  int32_t byte_id[256];
  for (int b = 0; st == DTR_OK && b < 256; b++) {
    char *s = malloc(3);
    if (!s) { st = DTR_ERR_OOM; break; }
    s[put_utf8(s, bcp[b])] = 0;
    byte_id[b] = (int32_t)tt.n;
    if (tt_lookup(&tt, s) >= 0) { /* a special spelled like a byte char: keep ids apart */
      free(s);
      seterr(err, errlen, "a special token collides with a byte token");
      st = DTR_ERR_INVALID;
      break;
    }
    if (!tt_add(&tt, s)) st = DTR_ERR_OOM;
  }

  /* 3. Pieces as byte-token sequences; pair counts and where lists. */
  piece *pc = calloc(wm.n ? wm.n : 1, sizeof *pc);
  pairmap pm = {0};
  heap hq = {0};
  if (!pc) st = DTR_ERR_OOM;
  for (size_t w = 0; st == DTR_OK && w < wm.n; w++) {
    const unsigned char *s = (const unsigned char *)wm.arena + wm.off[w];
    pc[w].len = (uint32_t)wm.len[w];
    pc[w].sym = malloc(wm.len[w] * sizeof(int32_t));
    if (!pc[w].sym) { st = DTR_ERR_OOM; break; }
    for (size_t i = 0; i < wm.len[w]; i++) pc[w].sym[i] = byte_id[s[i]];
    for (size_t i = 0; i + 1 < wm.len[w]; i++) {
      uint64_t key = (uint64_t)(uint32_t)pc[w].sym[i] << 32 | (uint32_t)pc[w].sym[i + 1];
      pair *p = pm_find(&pm, key, 1);
      if (!p || !pair_where(p, (uint32_t)w)) { st = DTR_ERR_OOM; break; }
      p->count += wm.count[w];
    }
  }
  for (size_t i = 0; st == DTR_OK && i < pm.cap; i++)
    if (pm.p[i].key != UINT64_MAX && !h_push(&hq, pm.p[i].count, pm.p[i].key)) st = DTR_ERR_OOM;

  /* 4. Merge until the vocabulary is full or no pair is frequent enough. */
  size_t nmerge = 0, mcap = 0;
  uint64_t *merges = NULL;
  uint64_t *fresh = NULL; /* pairs created by the current merge */
  size_t nfresh = 0, fcap = 0;
  uint32_t *stamp = calloc(wm.n ? wm.n : 1, sizeof *stamp);
  if (!stamp) st = DTR_ERR_OOM;
  while (st == DTR_OK && tt.n < o.vocab_size && hq.n) {
    hent top = h_pop(&hq);
    pair *p = pm_find(&pm, top.key, 0);
    if (!p || p->count != top.count) {
      if (p && p->count > 0 && !h_push(&hq, p->count, p->key)) st = DTR_ERR_OOM;
      continue;
    }
    if (p->count < (int64_t)o.min_frequency) break;
    int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(uint32_t)top.key;
    size_t la = strlen(tt.str[a]), lb = strlen(tt.str[b]);
    char *s = malloc(la + lb + 1);
    if (!s) { st = DTR_ERR_OOM; break; }
    memcpy(s, tt.str[a], la);
    memcpy(s + la, tt.str[b], lb + 1);
    int32_t c = tt_lookup(&tt, s);
    if (c < 0) {
      c = (int32_t)tt.n;
      if (!tt_add(&tt, s)) { free(s); st = DTR_ERR_OOM; break; }
    } else free(s);
    if (nmerge == mcap) {
      mcap = mcap ? mcap * 2 : 1024;
      uint64_t *nm = realloc(merges, mcap * sizeof *nm);
      if (!nm) { st = DTR_ERR_OOM; break; }
      merges = nm;
    }
    merges[nmerge++] = top.key;
    /* Detach the where list: p may move when the map grows below. */
    uint32_t *where = p->where, nw = p->nw;
    p->where = NULL;
    p->nw = p->wcap = 0;
    nfresh = 0;
    for (uint32_t k = 0; k < nw && st == DTR_OK; k++) {
      uint32_t w = where[k];
      if (stamp[w] == nmerge) continue; /* listed twice */
      stamp[w] = (uint32_t)nmerge;
      piece *q = &pc[w];
      int has = 0;
      for (uint32_t i = 0; i + 1 < q->len; i++)
        if (q->sym[i] == a && q->sym[i + 1] == b) { has = 1; break; }
      if (!has) continue;
      int64_t wc = wm.count[w];
      /* Remove the piece's pairs, merge left to right, add its pairs back: only
       * pairs next to a merge change, and the new ones all contain c. */
      for (uint32_t i = 0; i + 1 < q->len; i++) {
        pair *x = pm_find(&pm, (uint64_t)(uint32_t)q->sym[i] << 32 | (uint32_t)q->sym[i + 1], 0);
        if (x) x->count -= wc;
      }
      uint32_t j = 0;
      for (uint32_t i = 0; i < q->len;) {
        if (i + 1 < q->len && q->sym[i] == a && q->sym[i + 1] == b) {
          q->sym[j++] = c;
          i += 2;
        } else q->sym[j++] = q->sym[i++];
      }
      q->len = j;
      for (uint32_t i = 0; i + 1 < q->len; i++) {
        uint64_t key = (uint64_t)(uint32_t)q->sym[i] << 32 | (uint32_t)q->sym[i + 1];
        pair *x = pm_find(&pm, key, 1);
        if (!x) { st = DTR_ERR_OOM; break; }
        x->count += wc;
        if (q->sym[i] == c || q->sym[i + 1] == c) {
          if (!pair_where(x, w)) { st = DTR_ERR_OOM; break; }
          if (nfresh == fcap) {
            fcap = fcap ? fcap * 2 : 256;
            uint64_t *nf = realloc(fresh, fcap * sizeof *nf);
            if (!nf) { st = DTR_ERR_OOM; break; }
            fresh = nf;
          }
          fresh[nfresh++] = key;
        }
      }
    }
    free(where);
    /* Push each new pair once with its final count (pairs whose count only
     * fell stay in the heap with a stale count and are re-pushed when popped). */
    if (nfresh > 1) qsort(fresh, nfresh, sizeof *fresh, cmp_u64);
    for (size_t k = 0; k < nfresh && st == DTR_OK; k++) {
      if (k && fresh[k] == fresh[k - 1]) continue;
      pair *x = pm_find(&pm, fresh[k], 0);
      if (x && x->count > 0 && !h_push(&hq, x->count, x->key)) st = DTR_ERR_OOM;
    }
    pair *done = pm_find(&pm, top.key, 0);
    if (done) done->count = 0;
    if (o.verbose && nmerge % 1000 == 0)
      printf("  %zu merges, vocab %zu (%.2f s)\n", nmerge, tt.n, now_s() - t1);
  }
  free(stamp);
  free(fresh);
  if (o.verbose && st == DTR_OK)
    printf("  %zu merges, vocab %zu (merging %.2f s)\n", nmerge, tt.n, now_s() - t1);

  /* 5. tokenizer.json */
  if (st == DTR_OK) {
    json_t *root = json_object(), *added = json_array(), *vocab = json_object(),
           *jm = json_array();
    for (size_t k = 0; k < o.nspecial; k++)
      json_array_append_new(added, json_pack("{s:I,s:s,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)k,
                                             "content", o.special[k], "single_word", 0, "lstrip", 0,
                                             "rstrip", 0, "normalized", 0, "special", 1));
    for (size_t i = 0; i < tt.n; i++) json_object_set_new(vocab, tt.str[i], json_integer((json_int_t)i));
    for (size_t i = 0; i < nmerge; i++) {
      const char *sa = tt.str[merges[i] >> 32], *sb = tt.str[(uint32_t)merges[i]];
      char *m = malloc(strlen(sa) + strlen(sb) + 2);
      if (!m) { st = DTR_ERR_OOM; break; }
      sprintf(m, "%s %s", sa, sb);
      json_array_append_new(jm, json_string(m));
      free(m);
    }
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "truncation", json_null());
    json_object_set_new(root, "padding", json_null());
    json_object_set_new(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", json_null());
    json_object_set_new(
        root, "pre_tokenizer",
        json_pack("{s:s,s:[{s:s,s:{s:s},s:s,s:b},{s:s,s:b,s:b,s:b}]}", "type", "Sequence",
                  "pretokenizers", "type", "Split", "pattern", "Regex", DTR_BPE_REGEX,
                  "behavior", "Isolated", "invert", 0, "type", "ByteLevel",
                  "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 0));
    json_object_set_new(root, "post_processor", json_null());
    json_object_set_new(root, "decoder",
                        json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                                  "trim_offsets", 1, "use_regex", 1));
    json_t *model = json_pack("{s:s,s:n,s:n,s:n,s:n,s:b,s:b,s:b}", "type", "BPE", "dropout",
                              "unk_token", "continuing_subword_prefix", "end_of_word_suffix",
                              "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", 0);
    json_object_set_new(model, "vocab", vocab);
    json_object_set_new(model, "merges", jm);
    json_object_set_new(root, "model", model);
    if (st == DTR_OK && json_dump_file(root, out_path, JSON_INDENT(1)) != 0) {
      seterr(err, errlen, "%s: cannot write", out_path);
      st = DTR_ERR_IO;
    }
    json_decref(root);
  }
  if (st == DTR_OK && final_vocab) *final_vocab = tt.n;
  if (st == DTR_ERR_OOM) seterr(err, errlen, "%s: out of memory while training", src);
  free(merges);
  for (size_t i = 0; i < pm.cap; i++)
    if (pm.p[i].key != UINT64_MAX) free(pm.p[i].where);
  free(pm.p);
  free(hq.h);
  for (size_t w = 0; pc && w < wm.n; w++) free(pc[w].sym);
  free(pc);
  tt_free(&tt);
  wm_free(&wm);
  return st;
}

dtr_status dtr_bpe_train_file(const char *in_path, const dtr_bpe_opts *o,
                              const char *out_path, size_t *final_vocab, char *err,
                              size_t errlen) {
  char *buf;
  size_t len;
  dtr_status st = dtr_read_text_file(in_path, 1, &buf, &len, err, errlen);
  if (st != DTR_OK) return st;
  st = dtr_bpe_train_text(buf, len, in_path, o, out_path, final_vocab, err, errlen);
  free(buf);
  return st;
}
