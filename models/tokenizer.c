/* tokenizer.c — Hugging Face tokenizer.json BPE tokenizers (see tokenizer.h).
 *
 * Owns: parsing tokenizer.json, the encode pipeline (added-token split ->
 * normalizers -> pre-tokenizers -> BPE per pre-token -> post-processor) and the
 * decode pipeline (ids -> token strings -> decoders -> lossy UTF-8), each step
 * reproducing the behaviour of the Rust `tokenizers` crate.
 *
 * Speed: merges live in a hash map (pair of ids -> rank, merged id); one word is
 * merged with a binary heap over a linked list of symbols (lowest rank first,
 * leftmost on ties, as HF does), and the ids of each distinct pre-token are
 * cached, so running text costs mostly a regex scan and a cache lookup.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"

#include <jansson.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- utilities */

typedef struct {
  char *p;
  size_t n, cap;
} sbuf; /* growable byte string */

static int sb_reserve(sbuf *b, size_t extra) {
  if (b->n + extra + 1 <= b->cap) return 1;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->n + extra + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return 0;
  b->p = p;
  b->cap = cap;
  return 1;
}
static int sb_add(sbuf *b, const void *s, size_t n) {
  if (!sb_reserve(b, n)) return 0;
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 1;
}

static uint64_t hash_bytes(const void *s, size_t n) {
  /* FNV-1a; keys are short (tokens, words). */
  const uint8_t *p = s;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}
static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

/* Length of the UTF-8 sequence starting with byte c (1 for invalid leads, which
 * validated text never has). */
static int u8len(uint8_t c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid (the Unicode
 * well-formed table: no overlongs, surrogates or values above U+10FFFF). */
static int u8valid(const uint8_t *s, size_t n) {
  uint8_t c = s[0];
  if (c < 0x80) return 1;
  int len;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else return 0;
  if (n < (size_t)len) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (int i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return len;
}

/* Appends s with invalid sequences replaced by U+FFFD, one per maximal invalid
 * subpart (what Rust's String::from_utf8_lossy does). */
static int sb_add_lossy(sbuf *b, const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    int l = u8valid(s + i, n - i);
    if (l) {
      if (!sb_add(b, s + i, (size_t)l)) return 0;
      i += (size_t)l;
      continue;
    }
    /* Skip the longest prefix of a would-be valid sequence, at least one byte. */
    uint8_t c = s[i];
    size_t skip = 1;
    int want = (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
             : (c >= 0xF0 && c <= 0xF4) ? 4 : 1;
    for (int k = 1; k < want && i + (size_t)k < n; k++) {
      uint8_t lo = 0x80, hi = 0xBF, d = s[i + (size_t)k];
      if (k == 1) {
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
      }
      if (d < lo || d > hi) break;
      skip++;
    }
    if (!sb_add(b, "\xEF\xBF\xBD", 3)) return 0;
    i += skip;
  }
  return 1;
}

static int utf8_check(const uint8_t *s, size_t n, size_t *bad) {
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) { i++; continue; }
    int l = u8valid(s + i, n - i);
    if (!l) { *bad = i; return 0; }
    i += (size_t)l;
  }
  return 1;
}

static int u8encode(uint32_t cp, char *o) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 63));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 63));
    o[2] = (char)(0x80 | (cp & 63));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 63));
  o[2] = (char)(0x80 | ((cp >> 6) & 63));
  o[3] = (char)(0x80 | (cp & 63));
  return 4;
}
static uint32_t u8decode(const uint8_t *s, int *len) {
  int l = u8len(s[0]);
  *len = l;
  if (l == 1) return s[0];
  uint32_t cp = s[0] & (0x7F >> l);
  for (int i = 1; i < l; i++) cp = (cp << 6) | (s[i] & 63);
  return cp;
}

/* Unicode White_Space (Rust's char::is_whitespace), for lstrip/rstrip. */
static int is_ws_cp(uint32_t c) {
  return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

/* ------------------------------------------------------------- hash tables */

/* String -> id, keys owned elsewhere (the vocab arena). Open addressing. */
typedef struct {
  int32_t *slot; /* id or -1 */
  uint32_t mask;
  const char *const *key;
  const uint32_t *klen;
} strmap;

static int sm_init(strmap *m, size_t n, const char *const *key, const uint32_t *klen) {
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  m->slot = malloc(cap * sizeof *m->slot);
  if (!m->slot) return 0;
  memset(m->slot, 0xFF, cap * sizeof *m->slot);
  m->mask = (uint32_t)(cap - 1);
  m->key = key;
  m->klen = klen;
  return 1;
}
static int32_t sm_get(const strmap *m, const char *s, size_t n) {
  if (!m->slot) return -1;
  for (uint32_t i = (uint32_t)hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
    int32_t id = m->slot[i];
    if (id < 0) return -1;
    if (m->klen[id] == n && memcmp(m->key[id], s, n) == 0) return id;
  }
}
/* Inserts id (its key already stored at key[id]); returns the id already
 * holding that key, or -1 when inserted. */
static int32_t sm_put(strmap *m, int32_t id) {
  const char *s = m->key[id];
  size_t n = m->klen[id];
  for (uint32_t i = (uint32_t)hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
    int32_t o = m->slot[i];
    if (o < 0) { m->slot[i] = id; return -1; }
    if (m->klen[o] == n && memcmp(m->key[o], s, n) == 0) return o;
  }
}

/* (left id, right id) -> (rank, merged id). */
typedef struct {
  uint64_t *key; /* UINT64_MAX = empty */
  uint64_t *val; /* rank << 32 | merged id */
  uint32_t mask;
} pairmap;

static int pm_init(pairmap *m, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  m->key = malloc(cap * sizeof *m->key);
  m->val = malloc(cap * sizeof *m->val);
  if (!m->key || !m->val) return 0;
  memset(m->key, 0xFF, cap * sizeof *m->key);
  m->mask = (uint32_t)(cap - 1);
  return 1;
}
static void pm_put(pairmap *m, uint64_t k, uint64_t v) {
  for (uint32_t i = (uint32_t)hash_u64(k) & m->mask;; i = (i + 1) & m->mask) {
    if (m->key[i] == UINT64_MAX || m->key[i] == k) {
      m->key[i] = k; /* a repeated pair keeps the later rank, as HF's map does */
      m->val[i] = v;
      return;
    }
  }
}
static int pm_get(const pairmap *m, int32_t a, int32_t b, uint64_t *v) {
  uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
  for (uint32_t i = (uint32_t)hash_u64(k) & m->mask;; i = (i + 1) & m->mask) {
    if (m->key[i] == k) { *v = m->val[i]; return 1; }
    if (m->key[i] == UINT64_MAX) return 0;
  }
}

/* Word cache: pre-token bytes -> ids. Cleared wholesale when full. */
typedef struct {
  uint64_t hash;
  uint32_t koff, klen, ioff, nid; /* klen == UINT32_MAX: empty */
} centry;
#define CACHE_SLOTS (1u << 17)
#define CACHE_MAX (CACHE_SLOTS / 2)
typedef struct {
  centry *e;
  sbuf keys;
  int32_t *ids;
  size_t nids, capids, count;
} wcache;

static void wc_clear(wcache *c) {
  for (size_t i = 0; i < CACHE_SLOTS; i++) c->e[i].klen = UINT32_MAX;
  c->keys.n = 0;
  c->nids = 0;
  c->count = 0;
}
static const centry *wc_get(const wcache *c, const char *s, size_t n, uint64_t h) {
  for (uint32_t i = (uint32_t)h & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
    const centry *e = &c->e[i];
    if (e->klen == UINT32_MAX) return NULL;
    if (e->hash == h && e->klen == n && memcmp(c->keys.p + e->koff, s, n) == 0) return e;
  }
}
static void wc_put(wcache *c, const char *s, size_t n, uint64_t h, const int32_t *ids,
                   size_t nid) {
  if (n > 256 || nid > 256) return; /* long words are rare; not worth the space */
  if (c->count >= CACHE_MAX || c->keys.n + n > UINT32_MAX / 2 || c->nids + nid > (1u << 26))
    wc_clear(c);
  if (c->nids + nid > c->capids) {
    size_t cap = c->capids ? c->capids * 2 : 4096;
    while (cap < c->nids + nid) cap *= 2;
    int32_t *p = realloc(c->ids, cap * sizeof *p);
    if (!p) return;
    c->ids = p;
    c->capids = cap;
  }
  size_t koff = c->keys.n;
  if (!sb_add(&c->keys, s, n)) return;
  memcpy(c->ids + c->nids, ids, nid * sizeof *ids);
  uint32_t i = (uint32_t)h & (CACHE_SLOTS - 1);
  while (c->e[i].klen != UINT32_MAX) i = (i + 1) & (CACHE_SLOTS - 1);
  c->e[i] = (centry){h, (uint32_t)koff, (uint32_t)n, (uint32_t)c->nids, (uint32_t)nid};
  c->nids += nid;
  c->count++;
}

/* ------------------------------------------------------------ the pipeline */

enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_PREV, SPLIT_NEXT, SPLIT_CONTIG };
enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE, PRE_DIGITS };
enum { NORM_NFC, NORM_PREPEND, NORM_REPLACE };
enum { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };

typedef struct {
  int kind;
  pcre2_code *re; /* PRE_SPLIT, PRE_BYTELEVEL with use_regex */
  int behavior, invert;
  int add_prefix_space;     /* ByteLevel */
  char repl[8];             /* Metaspace replacement */
  int repl_len, prepend, split;
  int individual_digits;    /* Digits */
} pretok;

typedef struct {
  int kind;
  char *a, *b; /* Prepend: a; Replace: a -> b */
  size_t alen, blen;
} normalizer;

typedef struct {
  int kind;
  char *a, *b; /* Replace: a -> b; Strip: a = content */
  size_t alen, blen;
  int start, stop; /* Strip */
  int prepend;     /* Metaspace */
  char repl[8];
  int repl_len;
} decoder;

typedef struct {
  int32_t id;
  char *s;
  size_t len;
  int special, lstrip, rstrip, single_word;
} added_tok;

struct dtr_tokenizer {
  char path[512];
  char err[512];
  /* Model vocabulary: id -> spelling (arena), spelling -> id. */
  size_t n_ids; /* one past the largest id, model and added */
  char **vstr;
  uint32_t *vlen;
  sbuf varena;
  strmap vocab;
  pairmap merges;
  /* Added tokens, and id -> index into added (-1). */
  added_tok *added;
  size_t n_added;
  int32_t *added_of;
  uint8_t added_first[256]; /* bytes that begin some added token */
  /* BPE options. */
  int byte_level; /* the model alphabet is GPT-2's byte -> char map */
  int32_t byte_id[256];
  int byte_fallback, fuse_unk, ignore_merges;
  int32_t unk_id;
  char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix */
  size_t prefix_len, suffix_len;
  int32_t fb_id[256];
  /* Pipeline. */
  normalizer *norm;
  size_t n_norm;
  pretok *pre;
  size_t n_pre;
  decoder *dec;
  size_t n_dec;
  int has_decoder;
  int32_t *post_pre, *post_post; /* ids around the sequence when add_special */
  size_t n_post_pre, n_post_post;
  /* Scratch. */
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jstack;
  wcache cache;
};

/* GPT-2's reversible byte -> printable char map: printable Latin-1 bytes map to
 * themselves, the others to U+0100 upward in byte order. */
static uint32_t byte_to_cp(int b) {
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
    return (uint32_t)b;
  int n = 0;
  for (int c = 0; c < b; c++)
    if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) n++;
  return 256u + (uint32_t)n;
}
static int cp_to_byte(uint32_t cp) {
  if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
    return (int)cp;
  if (cp < 256 || cp >= 256 + 68) return -1;
  int n = 0;
  for (int c = 0; c < 256; c++)
    if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) {
      if (256u + (uint32_t)n == cp) return c;
      n++;
    }
  return -1;
}
static char g_b2u[256][3]; /* UTF-8 of byte_to_cp(b), length in g_b2u_len */
static int g_b2u_len[256];
static int16_t g_u2b[324]; /* code point (< 324) -> byte or -1 */
static void init_byte_tables(void) {
  static int done;
  if (done) return;
  for (int b = 0; b < 256; b++) g_b2u_len[b] = u8encode(byte_to_cp(b), g_b2u[b]);
  for (uint32_t cp = 0; cp < 324; cp++) g_u2b[cp] = (int16_t)cp_to_byte(cp);
  done = 1;
}

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ------------------------------------------------------------------ loading */

typedef struct {
  dtr_status st;
  char *err;
  size_t errlen;
  const char *path;
} lerr;

static void fail(lerr *e, dtr_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(lerr *e, dtr_status st, const char *fmt, ...) {
  if (e->st != DTR_OK) return; /* keep the first message */
  e->st = st;
  if (!e->err || !e->errlen) return;
  int k = snprintf(e->err, e->errlen, "%s: ", e->path);
  if (k < 0 || (size_t)k >= e->errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->err + k, e->errlen - (size_t)k, fmt, ap);
  va_end(ap);
}

static char *dupn(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = 0;
  }
  return p;
}

static const char *jstr(json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_string(v) ? json_string_value(v) : NULL;
}
static int jbool(json_t *o, const char *k, int dflt) {
  json_t *v = json_object_get(o, k);
  return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static pcre2_code *compile_re(lerr *e, const char *pat, size_t len, int literal,
                              const char *where) {
  int ec;
  PCRE2_SIZE off;
  uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ec, &off, NULL);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(ec, msg, sizeof msg);
    fail(e, DTR_ERR_FORMAT, "%s: regex does not compile at offset %zu: %s", where,
         (size_t)off, (const char *)msg);
    return NULL;
  }
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: interpreted if it fails */
  return re;
}

static int parse_pretok(dtr_tokenizer *t, lerr *e, json_t *j, int depth) {
  if (json_is_null(j) || !j) return 1;
  const char *type = jstr(j, "type");
  if (!type) {
    fail(e, DTR_ERR_FORMAT, "pre_tokenizer has no \"type\"");
    return 0;
  }
  if (!strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(j, "pretokenizers");
    if (!json_is_array(arr) || depth > 8) {
      fail(e, DTR_ERR_FORMAT, "pre_tokenizer Sequence has no \"pretokenizers\" list");
      return 0;
    }
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) if (!parse_pretok(t, e, x, depth + 1)) return 0;
    return 1;
  }
  pretok p;
  memset(&p, 0, sizeof p);
  if (!strcmp(type, "Split")) {
    p.kind = PRE_SPLIT;
    json_t *pat = json_object_get(j, "pattern");
    const char *rs = jstr(pat, "Regex"), *ls = jstr(pat, "String");
    if (!rs && !ls) {
      fail(e, DTR_ERR_FORMAT, "Split pre_tokenizer has no pattern {\"Regex\"|\"String\"}");
      return 0;
    }
    const char *s = rs ? rs : ls;
    p.re = compile_re(e, s, strlen(s), !rs, "Split pre_tokenizer");
    if (!p.re) return 0;
    const char *bh = jstr(j, "behavior");
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious",
                                  "MergedWithNext", "Contiguous"};
    p.behavior = -1;
    for (int k = 0; k < 5; k++)
      if (bh && !strcmp(bh, names[k])) p.behavior = k;
    if (p.behavior < 0) {
      fail(e, DTR_ERR_UNSUPPORTED, "Split pre_tokenizer behavior '%s' is not known",
           bh ? bh : "(missing)");
      pcre2_code_free(p.re);
      return 0;
    }
    p.invert = jbool(j, "invert", 0);
  } else if (!strcmp(type, "ByteLevel")) {
    p.kind = PRE_BYTELEVEL;
    p.add_prefix_space = jbool(j, "add_prefix_space", 1);
    if (jbool(j, "use_regex", 1)) {
      p.re = compile_re(e, GPT2_PATTERN, sizeof GPT2_PATTERN - 1, 0, "ByteLevel");
      if (!p.re) return 0;
    }
    p.behavior = SPLIT_ISOLATED;
    t->byte_level = 1;
  } else if (!strcmp(type, "Metaspace")) {
    p.kind = PRE_METASPACE;
    const char *r = jstr(j, "replacement");
    if (!r) r = "\xE2\x96\x81";
    p.repl_len = (int)strlen(r);
    if (p.repl_len < 1 || p.repl_len > 4) {
      fail(e, DTR_ERR_FORMAT, "Metaspace replacement must be one character");
      return 0;
    }
    memcpy(p.repl, r, (size_t)p.repl_len);
    const char *ps = jstr(j, "prepend_scheme");
    p.prepend = !ps ? (jbool(j, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER)
              : !strcmp(ps, "first") ? PREPEND_FIRST
              : !strcmp(ps, "never") ? PREPEND_NEVER : PREPEND_ALWAYS;
    p.split = jbool(j, "split", 1);
  } else if (!strcmp(type, "Digits")) {
    p.kind = PRE_DIGITS;
    p.individual_digits = jbool(j, "individual_digits", 0);
    const char *pat = p.individual_digits ? "\\p{N}" : "\\p{N}+";
    p.re = compile_re(e, pat, strlen(pat), 0, "Digits");
    if (!p.re) return 0;
    p.behavior = SPLIT_ISOLATED;
  } else {
    fail(e, DTR_ERR_UNSUPPORTED, "pre_tokenizer type '%s' is not supported", type);
    return 0;
  }
  pretok *np = realloc(t->pre, (t->n_pre + 1) * sizeof *np);
  if (!np) {
    if (p.re) pcre2_code_free(p.re);
    fail(e, DTR_ERR_OOM, "out of memory");
    return 0;
  }
  t->pre = np;
  t->pre[t->n_pre++] = p;
  return 1;
}

static int parse_normalizer(dtr_tokenizer *t, lerr *e, json_t *j, int depth) {
  if (json_is_null(j) || !j) return 1;
  const char *type = jstr(j, "type");
  if (!type) {
    fail(e, DTR_ERR_FORMAT, "normalizer has no \"type\"");
    return 0;
  }
  if (!strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(j, "normalizers");
    if (!json_is_array(arr) || depth > 8) {
      fail(e, DTR_ERR_FORMAT, "normalizer Sequence has no \"normalizers\" list");
      return 0;
    }
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) if (!parse_normalizer(t, e, x, depth + 1)) return 0;
    return 1;
  }
  normalizer n;
  memset(&n, 0, sizeof n);
  if (!strcmp(type, "NFC")) {
    n.kind = NORM_NFC; /* accepted, not applied: see tokenizer.h */
  } else if (!strcmp(type, "Prepend")) {
    const char *s = jstr(j, "prepend");
    if (!s) {
      fail(e, DTR_ERR_FORMAT, "Prepend normalizer has no \"prepend\"");
      return 0;
    }
    n.kind = NORM_PREPEND;
    n.a = dupn(s, n.alen = strlen(s));
  } else if (!strcmp(type, "Replace")) {
    const char *s = jstr(json_object_get(j, "pattern"), "String"), *c = jstr(j, "content");
    if (!s || !c || !*s) {
      fail(e, DTR_ERR_UNSUPPORTED,
           "Replace normalizer: only a non-empty {\"String\"} pattern with \"content\" is "
           "supported");
      return 0;
    }
    n.kind = NORM_REPLACE;
    n.a = dupn(s, n.alen = strlen(s));
    n.b = dupn(c, n.blen = strlen(c));
  } else {
    fail(e, DTR_ERR_UNSUPPORTED, "normalizer type '%s' is not supported", type);
    return 0;
  }
  normalizer *nn = realloc(t->norm, (t->n_norm + 1) * sizeof *nn);
  if (!nn) {
    fail(e, DTR_ERR_OOM, "out of memory");
    return 0;
  }
  t->norm = nn;
  t->norm[t->n_norm++] = n;
  return 1;
}

static int parse_decoder(dtr_tokenizer *t, lerr *e, json_t *j, int depth) {
  if (json_is_null(j) || !j) return 1;
  t->has_decoder = 1;
  const char *type = jstr(j, "type");
  if (!type) {
    fail(e, DTR_ERR_FORMAT, "decoder has no \"type\"");
    return 0;
  }
  if (!strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(j, "decoders");
    if (!json_is_array(arr) || depth > 8) {
      fail(e, DTR_ERR_FORMAT, "decoder Sequence has no \"decoders\" list");
      return 0;
    }
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) if (!parse_decoder(t, e, x, depth + 1)) return 0;
    return 1;
  }
  decoder d;
  memset(&d, 0, sizeof d);
  if (!strcmp(type, "ByteLevel")) d.kind = DEC_BYTELEVEL;
  else if (!strcmp(type, "ByteFallback")) d.kind = DEC_BYTEFALLBACK;
  else if (!strcmp(type, "Fuse")) d.kind = DEC_FUSE;
  else if (!strcmp(type, "Replace")) {
    const char *s = jstr(json_object_get(j, "pattern"), "String"), *c = jstr(j, "content");
    if (!s || !c || !*s) {
      fail(e, DTR_ERR_UNSUPPORTED, "Replace decoder: only a {\"String\"} pattern is supported");
      return 0;
    }
    d.kind = DEC_REPLACE;
    d.a = dupn(s, d.alen = strlen(s));
    d.b = dupn(c, d.blen = strlen(c));
  } else if (!strcmp(type, "Strip")) {
    const char *c = jstr(j, "content");
    d.kind = DEC_STRIP;
    d.a = dupn(c ? c : " ", d.alen = strlen(c ? c : " "));
    d.start = (int)json_integer_value(json_object_get(j, "start"));
    d.stop = (int)json_integer_value(json_object_get(j, "stop"));
  } else if (!strcmp(type, "Metaspace")) {
    d.kind = DEC_METASPACE;
    const char *r = jstr(j, "replacement");
    if (!r) r = "\xE2\x96\x81";
    d.repl_len = (int)strlen(r);
    if (d.repl_len < 1 || d.repl_len > 4) {
      fail(e, DTR_ERR_FORMAT, "Metaspace decoder replacement must be one character");
      return 0;
    }
    memcpy(d.repl, r, (size_t)d.repl_len);
    const char *ps = jstr(j, "prepend_scheme");
    d.prepend = !ps ? (jbool(j, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER)
              : !strcmp(ps, "never") ? PREPEND_NEVER : PREPEND_ALWAYS;
  } else {
    fail(e, DTR_ERR_UNSUPPORTED, "decoder type '%s' is not supported", type);
    return 0;
  }
  decoder *nd = realloc(t->dec, (t->n_dec + 1) * sizeof *nd);
  if (!nd) {
    fail(e, DTR_ERR_OOM, "out of memory");
    return 0;
  }
  t->dec = nd;
  t->dec[t->n_dec++] = d;
  return 1;
}

static int append_ids(int32_t **arr, size_t *n, int32_t id) {
  int32_t *p = realloc(*arr, (*n + 1) * sizeof *p);
  if (!p) return 0;
  p[(*n)++] = id;
  *arr = p;
  return 1;
}

/* The ids a post-processor puts before and after the single sequence. */
static int parse_post(dtr_tokenizer *t, lerr *e, json_t *j, int depth) {
  if (json_is_null(j) || !j) return 1;
  const char *type = jstr(j, "type");
  if (!type) {
    fail(e, DTR_ERR_FORMAT, "post_processor has no \"type\"");
    return 0;
  }
  if (!strcmp(type, "ByteLevel")) return 1; /* offsets only */
  if (!strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(j, "processors");
    if (!json_is_array(arr) || depth > 8) {
      fail(e, DTR_ERR_FORMAT, "post_processor Sequence has no \"processors\" list");
      return 0;
    }
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) if (!parse_post(t, e, x, depth + 1)) return 0;
    return 1;
  }
  if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
    json_t *cls = json_object_get(j, "cls"), *sep = json_object_get(j, "sep");
    if (!json_is_integer(json_array_get(cls, 1)) || !json_is_integer(json_array_get(sep, 1))) {
      fail(e, DTR_ERR_FORMAT, "%s needs \"cls\" and \"sep\" as [token, id]", type);
      return 0;
    }
    if (!append_ids(&t->post_pre, &t->n_post_pre,
                    (int32_t)json_integer_value(json_array_get(cls, 1))) ||
        !append_ids(&t->post_post, &t->n_post_post,
                    (int32_t)json_integer_value(json_array_get(sep, 1)))) {
      fail(e, DTR_ERR_OOM, "out of memory");
      return 0;
    }
    return 1;
  }
  if (!strcmp(type, "TemplateProcessing")) {
    json_t *single = json_object_get(j, "single"), *sp = json_object_get(j, "special_tokens");
    if (!json_is_array(single)) {
      fail(e, DTR_ERR_FORMAT, "TemplateProcessing has no \"single\" template");
      return 0;
    }
    int seen_seq = 0;
    size_t i;
    json_t *x;
    json_array_foreach(single, i, x) {
      if (json_object_get(x, "Sequence")) {
        seen_seq = 1;
        continue;
      }
      const char *name = jstr(json_object_get(x, "SpecialToken"), "id");
      json_t *ids = json_object_get(json_object_get(sp, name ? name : ""), "ids");
      if (!name || !json_is_array(ids)) {
        fail(e, DTR_ERR_FORMAT, "TemplateProcessing: special token '%s' has no ids",
             name ? name : "(unnamed)");
        return 0;
      }
      size_t k;
      json_t *id;
      json_array_foreach(ids, k, id) {
        int ok = seen_seq ? append_ids(&t->post_post, &t->n_post_post,
                                       (int32_t)json_integer_value(id))
                          : append_ids(&t->post_pre, &t->n_post_pre,
                                       (int32_t)json_integer_value(id));
        if (!ok) {
          fail(e, DTR_ERR_OOM, "out of memory");
          return 0;
        }
      }
    }
    return 1;
  }
  fail(e, DTR_ERR_UNSUPPORTED, "post_processor type '%s' is not supported", type);
  return 0;
}

static int parse_model(dtr_tokenizer *t, lerr *e, json_t *m) {
  if (!json_is_object(m)) {
    fail(e, DTR_ERR_FORMAT, "no \"model\" object");
    return 0;
  }
  json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
  const char *type = jstr(m, "type");
  if (!type && merges) type = "BPE"; /* HF infers BPE from the fields */
  if (!type) {
    fail(e, DTR_ERR_FORMAT, "model has no \"type\"");
    return 0;
  }
  if (strcmp(type, "BPE")) {
    fail(e, DTR_ERR_UNSUPPORTED, "model type '%s' is not supported (only BPE)", type);
    return 0;
  }
  if (!json_is_object(vocab) || !json_is_array(merges)) {
    fail(e, DTR_ERR_FORMAT, "BPE model needs a \"vocab\" object and a \"merges\" list");
    return 0;
  }
  if (json_is_true(json_object_get(m, "dropout")) ||
      (json_is_number(json_object_get(m, "dropout")) &&
       json_number_value(json_object_get(m, "dropout")) > 0)) {
    fail(e, DTR_ERR_UNSUPPORTED, "BPE dropout is not supported");
    return 0;
  }
  t->byte_fallback = jbool(m, "byte_fallback", 0);
  t->fuse_unk = jbool(m, "fuse_unk", 0);
  t->ignore_merges = jbool(m, "ignore_merges", 0);
  const char *pfx = jstr(m, "continuing_subword_prefix"), *sfx = jstr(m, "end_of_word_suffix");
  if (pfx && *pfx) t->prefix = dupn(pfx, t->prefix_len = strlen(pfx));
  if (sfx && *sfx) t->suffix = dupn(sfx, t->suffix_len = strlen(sfx));

  /* Vocabulary: ids may have holes; n_ids covers added tokens too (set later). */
  size_t nv = json_object_size(vocab), maxid = 0;
  const char *key;
  json_t *val;
  json_object_foreach(vocab, key, val) {
    if (!json_is_integer(val) || json_integer_value(val) < 0 ||
        json_integer_value(val) > 0x7FFFFFF) {
      fail(e, DTR_ERR_FORMAT, "vocab entry '%s' has no valid id", key);
      return 0;
    }
    if ((size_t)json_integer_value(val) > maxid) maxid = (size_t)json_integer_value(val);
  }
  t->n_ids = nv ? maxid + 1 : 0;
  return 1;
}

static int grow_ids(dtr_tokenizer *t, lerr *e, size_t n) {
  if (n <= t->n_ids && t->vstr) return 1;
  size_t old = t->vstr ? t->n_ids : 0;
  if (n < t->n_ids) n = t->n_ids;
  size_t na = n ? n : 1;
  char **s = realloc(t->vstr, na * sizeof *s);
  if (s) t->vstr = s;
  uint32_t *l = realloc(t->vlen, na * sizeof *l);
  if (l) t->vlen = l;
  int32_t *a = realloc(t->added_of, na * sizeof *a);
  if (a) t->added_of = a;
  if (!s || !l || !a) {
    fail(e, DTR_ERR_OOM, "out of memory");
    return 0;
  }
  t->vocab.key = (const char *const *)t->vstr; /* the map reads the moved arrays */
  t->vocab.klen = t->vlen;
  for (size_t i = old; i < n; i++) {
    t->vstr[i] = NULL;
    t->vlen[i] = 0;
    t->added_of[i] = -1;
  }
  t->n_ids = n;
  return 1;
}

static int load_vocab(dtr_tokenizer *t, lerr *e, json_t *m) {
  json_t *vocab = json_object_get(m, "vocab");
  size_t total = 0;
  const char *key;
  json_t *val;
  json_object_foreach(vocab, key, val) total += strlen(key) + 1;
  if (!grow_ids(t, e, t->n_ids)) return 0;
  if (!sb_reserve(&t->varena, total)) {
    fail(e, DTR_ERR_OOM, "out of memory");
    return 0;
  }
  /* The arena never moves after this reserve, so pointers into it are stable. */
  json_object_foreach(vocab, key, val) {
    size_t kl = strlen(key);
    int32_t id = (int32_t)json_integer_value(val);
    if (t->vstr[id]) {
      fail(e, DTR_ERR_FORMAT, "vocab id %d is given to both '%s' and '%s'", (int)id,
           t->vstr[id], key);
      return 0;
    }
    t->vstr[id] = t->varena.p + t->varena.n;
    t->vlen[id] = (uint32_t)kl;
    memcpy(t->varena.p + t->varena.n, key, kl);
    t->varena.n += kl;
    t->varena.p[t->varena.n++] = 0;
  }
  if (!sm_init(&t->vocab, json_object_size(vocab), (const char *const *)t->vstr, t->vlen)) {
    fail(e, DTR_ERR_OOM, "out of memory");
    return 0;
  }
  for (size_t id = 0; id < t->n_ids; id++)
    if (t->vstr[id]) sm_put(&t->vocab, (int32_t)id);

  /* The model alphabet. */
  if (t->byte_level) {
    for (int b = 0; b < 256; b++) {
      t->byte_id[b] = sm_get(&t->vocab, g_b2u[b], (size_t)g_b2u_len[b]);
      if (t->byte_id[b] < 0 && !t->prefix && !t->suffix) {
        fail(e, DTR_ERR_FORMAT, "byte-level vocab lacks the token for byte 0x%02X ('%.*s')",
             b, g_b2u_len[b], g_b2u[b]);
        return 0;
      }
    }
  }
  for (int b = 0; b < 256; b++) {
    char s[8];
    snprintf(s, sizeof s, "<0x%02X>", b);
    t->fb_id[b] = sm_get(&t->vocab, s, 6);
  }
  t->unk_id = -1;
  const char *unk = jstr(m, "unk_token");
  if (unk) {
    t->unk_id = sm_get(&t->vocab, unk, strlen(unk));
    if (t->unk_id < 0) {
      fail(e, DTR_ERR_FORMAT, "unk_token '%s' is not in the vocab", unk);
      return 0;
    }
  }

  /* Merges: "a b" strings or ["a", "b"] pairs; rank = position. */
  json_t *merges = json_object_get(m, "merges");
  if (!pm_init(&t->merges, json_array_size(merges))) {
    fail(e, DTR_ERR_OOM, "out of memory");
    return 0;
  }
  sbuf cat = {0};
  size_t i;
  json_t *x;
  json_array_foreach(merges, i, x) {
    const char *a, *b;
    size_t al, bl;
    if (json_is_string(x)) {
      a = json_string_value(x);
      const char *sp = strchr(a, ' ');
      if (!sp || strchr(sp + 1, ' ')) {
        fail(e, DTR_ERR_FORMAT, "merge %zu '%s' is not two tokens separated by one space",
             i, a);
        free(cat.p);
        return 0;
      }
      al = (size_t)(sp - a);
      b = sp + 1;
      bl = strlen(b);
    } else if (json_is_array(x) && json_array_size(x) == 2 &&
               json_is_string(json_array_get(x, 0)) && json_is_string(json_array_get(x, 1))) {
      a = json_string_value(json_array_get(x, 0));
      b = json_string_value(json_array_get(x, 1));
      al = json_string_length(json_array_get(x, 0));
      bl = json_string_length(json_array_get(x, 1));
    } else {
      fail(e, DTR_ERR_FORMAT, "merge %zu is neither \"a b\" nor [\"a\", \"b\"]", i);
      free(cat.p);
      return 0;
    }
    int32_t ia = sm_get(&t->vocab, a, al), ib = sm_get(&t->vocab, b, bl);
    if (ia < 0 || ib < 0) {
      fail(e, DTR_ERR_FORMAT, "merge %zu names token '%.*s' that is not in the vocab", i,
           (int)(ia < 0 ? al : bl), ia < 0 ? a : b);
      free(cat.p);
      return 0;
    }
    /* The merged token drops b's continuing-subword prefix, as HF does. */
    size_t skip = (t->prefix && bl >= t->prefix_len &&
                   !memcmp(b, t->prefix, t->prefix_len)) ? t->prefix_len : 0;
    cat.n = 0;
    if (!sb_add(&cat, a, al) || !sb_add(&cat, b + skip, bl - skip)) {
      fail(e, DTR_ERR_OOM, "out of memory");
      free(cat.p);
      return 0;
    }
    int32_t im = sm_get(&t->vocab, cat.p, cat.n);
    if (im < 0) {
      fail(e, DTR_ERR_FORMAT, "merge %zu result '%s' is not in the vocab", i, cat.p);
      free(cat.p);
      return 0;
    }
    pm_put(&t->merges, (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib,
           (uint64_t)i << 32 | (uint32_t)im);
  }
  free(cat.p);
  return 1;
}

static int load_added(dtr_tokenizer *t, lerr *e, json_t *arr) {
  if (!arr || json_is_null(arr)) return 1;
  if (!json_is_array(arr)) {
    fail(e, DTR_ERR_FORMAT, "\"added_tokens\" is not a list");
    return 0;
  }
  size_t n = json_array_size(arr), maxid = t->n_ids ? t->n_ids - 1 : 0, i;
  json_t *x;
  json_array_foreach(arr, i, x) {
    json_t *id = json_object_get(x, "id");
    const char *c = jstr(x, "content");
    if (!json_is_integer(id) || json_integer_value(id) < 0 ||
        json_integer_value(id) > 0x7FFFFFF || !c || !*c) {
      fail(e, DTR_ERR_FORMAT, "added_tokens[%zu] needs an \"id\" and a non-empty \"content\"",
           i);
      return 0;
    }
    if ((size_t)json_integer_value(id) > maxid) maxid = (size_t)json_integer_value(id);
  }
  if (!grow_ids(t, e, maxid + 1)) return 0;
  t->added = calloc(n ? n : 1, sizeof *t->added);
  if (!t->added) {
    fail(e, DTR_ERR_OOM, "out of memory");
    return 0;
  }
  json_array_foreach(arr, i, x) {
    added_tok *a = &t->added[t->n_added];
    a->id = (int32_t)json_integer_value(json_object_get(x, "id"));
    a->len = json_string_length(json_object_get(x, "content"));
    a->s = dupn(jstr(x, "content"), a->len);
    if (!a->s) {
      fail(e, DTR_ERR_OOM, "out of memory");
      return 0;
    }
    a->special = jbool(x, "special", 0);
    a->lstrip = jbool(x, "lstrip", 0);
    a->rstrip = jbool(x, "rstrip", 0);
    a->single_word = jbool(x, "single_word", 0);
    t->added_first[(uint8_t)a->s[0]] = 1;
    t->added_of[a->id] = (int32_t)t->n_added++;
  }
  return 1;
}

dtr_tokenizer *dtr_tokenizer_load(const char *path, dtr_status *st, char *err,
                                  size_t errlen) {
  lerr e = {DTR_OK, err, errlen, path ? path : "(null)"};
  if (err && errlen) err[0] = 0;
  init_byte_tables();
  dtr_tokenizer *t = calloc(1, sizeof *t);
  json_t *root = NULL;
  if (!t) {
    fail(&e, DTR_ERR_OOM, "out of memory");
    goto out;
  }
  snprintf(t->path, sizeof t->path, "%s", e.path);
  if (!path) {
    fail(&e, DTR_ERR_INVALID, "no path given");
    goto out;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    fail(&e, DTR_ERR_IO, "cannot open");
    goto out;
  }
  fclose(f);
  json_error_t je;
  root = json_load_file(path, 0, &je);
  if (!root) {
    fail(&e, DTR_ERR_FORMAT, "not valid JSON: %s (line %d, column %d)", je.text, je.line,
         je.column);
    goto out;
  }
  if (!json_is_object(root)) {
    fail(&e, DTR_ERR_FORMAT, "top level is not a JSON object");
    goto out;
  }
  json_t *model = json_object_get(root, "model");
  /* Order matters: the pre-tokenizer decides byte_level, which the vocab needs. */
  if (!parse_model(t, &e, model) ||
      !parse_normalizer(t, &e, json_object_get(root, "normalizer"), 0) ||
      !parse_pretok(t, &e, json_object_get(root, "pre_tokenizer"), 0) ||
      !parse_decoder(t, &e, json_object_get(root, "decoder"), 0) ||
      !parse_post(t, &e, json_object_get(root, "post_processor"), 0) ||
      !load_vocab(t, &e, model) || !load_added(t, &e, json_object_get(root, "added_tokens")))
    goto out;
  for (size_t i = 0; i < t->n_post_pre + t->n_post_post; i++) {
    int32_t id = i < t->n_post_pre ? t->post_pre[i] : t->post_post[i - t->n_post_pre];
    if (id < 0 || (size_t)id >= t->n_ids) {
      fail(&e, DTR_ERR_FORMAT, "post_processor id %d is outside the vocabulary", (int)id);
      goto out;
    }
  }
  t->md = pcre2_match_data_create(4, NULL);
  t->mctx = pcre2_match_context_create(NULL);
  t->jstack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
  t->cache.e = malloc(CACHE_SLOTS * sizeof *t->cache.e);
  if (!t->md || !t->mctx || !t->jstack || !t->cache.e) {
    fail(&e, DTR_ERR_OOM, "out of memory");
    goto out;
  }
  pcre2_jit_stack_assign(t->mctx, NULL, t->jstack);
  wc_clear(&t->cache);
out:
  if (root) json_decref(root);
  if (e.st != DTR_OK) {
    dtr_tokenizer_free(t);
    t = NULL;
  }
  if (st) *st = e.st;
  return t;
}

void dtr_tokenizer_free(dtr_tokenizer *t) {
  if (!t) return;
  free(t->vstr);
  free(t->vlen);
  free(t->varena.p);
  free(t->vocab.slot);
  free(t->merges.key);
  free(t->merges.val);
  for (size_t i = 0; i < t->n_added; i++) free(t->added[i].s);
  free(t->added);
  free(t->added_of);
  free(t->prefix);
  free(t->suffix);
  for (size_t i = 0; i < t->n_norm; i++) {
    free(t->norm[i].a);
    free(t->norm[i].b);
  }
  free(t->norm);
  for (size_t i = 0; i < t->n_pre; i++)
    if (t->pre[i].re) pcre2_code_free(t->pre[i].re);
  free(t->pre);
  for (size_t i = 0; i < t->n_dec; i++) {
    free(t->dec[i].a);
    free(t->dec[i].b);
  }
  free(t->dec);
  free(t->post_pre);
  free(t->post_post);
  if (t->md) pcre2_match_data_free(t->md);
  if (t->mctx) pcre2_match_context_free(t->mctx);
  if (t->jstack) pcre2_jit_stack_free(t->jstack);
  free(t->cache.e);
  free(t->cache.keys.p);
  free(t->cache.ids);
  free(t);
}

/* ----------------------------------------------------------------- encoding */

/* A list of pre-token pieces: byte ranges of buf; first = the piece begins the
 * segment that begins the input (Metaspace's prepend_scheme "first"). */
typedef struct {
  sbuf buf;
  uint32_t *off, *len;
  uint8_t *first;
  size_t n, cap;
} pieces;

static int pc_add(pieces *p, const char *s, size_t n, int first) {
  if (n == 0) return 1; /* HF drops empty splits */
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 256;
    uint32_t *o = realloc(p->off, cap * sizeof *o);
    if (o) p->off = o;
    uint32_t *l = realloc(p->len, cap * sizeof *l);
    if (l) p->len = l;
    uint8_t *f = realloc(p->first, cap);
    if (f) p->first = f;
    if (!o || !l || !f) return 0;
    p->cap = cap;
  }
  p->off[p->n] = (uint32_t)p->buf.n;
  p->len[p->n] = (uint32_t)n;
  p->first[p->n] = (uint8_t)first;
  p->n++;
  return sb_add(&p->buf, s, n);
}
static void pc_reset(pieces *p) {
  p->buf.n = 0;
  p->n = 0;
}
static void pc_free(pieces *p) {
  free(p->buf.p);
  free(p->off);
  free(p->len);
  free(p->first);
}

static void set_err(dtr_tokenizer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(dtr_tokenizer *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->err, sizeof t->err, fmt, ap);
  va_end(ap);
}

/* HF's NormalizedString::split with a regex: matches and the gaps between them,
 * flagged, then grouped according to behavior. */
typedef struct {
  size_t s, e;
  int m;
} span;

static dtr_status split_piece(dtr_tokenizer *t, const pretok *p, const char *s, size_t n,
                              int first, pieces *out, span **sp, size_t *spcap) {
  size_t ns = 0, pos = 0, prev = 0;
#define PUSH_SPAN(a, b, mm)                                                   \
  do {                                                                        \
    if (ns + 1 > *spcap) {                                                    \
      size_t c2 = *spcap ? *spcap * 2 : 256;                                  \
      span *q = realloc(*sp, c2 * sizeof *q);                                 \
      if (!q) return DTR_ERR_OOM;                                             \
      *sp = q;                                                                \
      *spcap = c2;                                                            \
    }                                                                         \
    (*sp)[ns++] = (span){(a), (b), (mm)};                                     \
  } while (0)
  while (pos <= n) {
    int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      set_err(t, "%s: regex match failed: %s", t->path, (const char *)msg);
      return DTR_ERR_INVALID;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
    size_t ms = ov[0], me = ov[1];
    if (prev != ms) PUSH_SPAN(prev, ms, 0);
    PUSH_SPAN(ms, me, 1);
    prev = me;
    if (me == ms) { /* empty match: step one character */
      if (me >= n) break;
      pos = me + (size_t)u8len((uint8_t)s[me]);
    } else pos = me;
  }
  if (prev != n) PUSH_SPAN(prev, n, 0);
#undef PUSH_SPAN
  span *v = *sp;
  if (p->invert)
    for (size_t i = 0; i < ns; i++) v[i].m = !v[i].m;
  /* Group in place; out spans get m = 0 (kept) or 1 (removed). */
  size_t k = 0;
  int prev_match = 0;
  switch (p->behavior) {
  case SPLIT_ISOLATED:
    for (size_t i = 0; i < ns; i++) v[i].m = 0;
    k = ns;
    break;
  case SPLIT_REMOVED:
    k = ns; /* m == 1 spans are dropped below */
    break;
  case SPLIT_PREV:
    for (size_t i = 0; i < ns; i++) {
      int m = v[i].m;
      if (m && !prev_match && k) v[k - 1].e = v[i].e;
      else v[k++] = (span){v[i].s, v[i].e, 0};
      prev_match = m;
    }
    break;
  case SPLIT_CONTIG:
    for (size_t i = 0; i < ns; i++) {
      int m = v[i].m;
      if (m == prev_match && k) v[k - 1].e = v[i].e;
      else v[k++] = (span){v[i].s, v[i].e, 0};
      prev_match = m;
    }
    break;
  case SPLIT_NEXT: {
    /* Walk backwards; a match joins the group after it. Result is reversed. */
    size_t w = ns;
    for (size_t ii = ns; ii-- > 0;) {
      span cur = v[ii];
      if (cur.m && !prev_match && w < ns) v[w].s = cur.s;
      else v[--w] = (span){cur.s, cur.e, 0};
      prev_match = cur.m;
    }
    memmove(v, v + w, (ns - w) * sizeof *v);
    k = ns - w;
    break;
  }
  }
  for (size_t i = 0; i < k; i++)
    if (!v[i].m && !pc_add(out, s + v[i].s, v[i].e - v[i].s, first && v[i].s == 0))
      return DTR_ERR_OOM;
  return DTR_OK;
}

static dtr_status run_pretok(dtr_tokenizer *t, const pretok *p, pieces *in, pieces *out,
                             span **sp, size_t *spcap, sbuf *tmp) {
  pc_reset(out);
  for (size_t i = 0; i < in->n; i++) {
    const char *s = in->buf.p + in->off[i];
    size_t n = in->len[i];
    int first = in->first[i];
    if (p->kind == PRE_BYTELEVEL || p->kind == PRE_METASPACE) {
      tmp->n = 0;
      if (p->kind == PRE_BYTELEVEL) {
        if (p->add_prefix_space && s[0] != ' ' && !sb_add(tmp, " ", 1)) return DTR_ERR_OOM;
        if (!sb_add(tmp, s, n)) return DTR_ERR_OOM;
      } else {
        /* Spaces become the replacement; prepend it per the scheme. */
        int pre = p->prepend == PREPEND_ALWAYS || (p->prepend == PREPEND_FIRST && first);
        if (pre && !(n >= (size_t)p->repl_len && !memcmp(s, p->repl, (size_t)p->repl_len)) &&
            !sb_add(tmp, p->repl, (size_t)p->repl_len))
          return DTR_ERR_OOM;
        for (size_t k = 0; k < n; k++)
          if (!(s[k] == ' ' ? sb_add(tmp, p->repl, (size_t)p->repl_len) : sb_add(tmp, s + k, 1)))
            return DTR_ERR_OOM;
      }
      if (p->kind == PRE_BYTELEVEL && !p->re) {
        if (!pc_add(out, tmp->p, tmp->n, first)) return DTR_ERR_OOM;
      } else if (p->kind == PRE_METASPACE) {
        if (!p->split) {
          if (!pc_add(out, tmp->p, tmp->n, first)) return DTR_ERR_OOM;
        } else { /* MergedWithNext on the replacement: each piece starts with it */
          size_t st = 0;
          for (size_t k = 1; k + (size_t)p->repl_len <= tmp->n; k++)
            if (!memcmp(tmp->p + k, p->repl, (size_t)p->repl_len)) {
              if (!pc_add(out, tmp->p + st, k - st, first && st == 0)) return DTR_ERR_OOM;
              st = k;
            }
          if (!pc_add(out, tmp->p + st, tmp->n - st, first && st == 0)) return DTR_ERR_OOM;
        }
      } else {
        dtr_status r = split_piece(t, p, tmp->p, tmp->n, first, out, sp, spcap);
        if (r) return r;
      }
    } else {
      dtr_status r = split_piece(t, p, s, n, first, out, sp, spcap);
      if (r) return r;
    }
  }
  return DTR_OK;
}

typedef struct {
  int32_t *id;
  int32_t *prev, *next;
  uint64_t *heap;
  size_t cap, hcap;
} bpe_scratch;

static int bs_reserve(bpe_scratch *b, size_t n) {
  if (n <= b->cap) return 1;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < n) cap *= 2;
  int32_t *i = realloc(b->id, cap * sizeof *i);
  if (i) b->id = i;
  int32_t *p = realloc(b->prev, cap * sizeof *p);
  if (p) b->prev = p;
  int32_t *x = realloc(b->next, cap * sizeof *x);
  if (x) b->next = x;
  if (!i || !p || !x) return 0;
  b->cap = cap;
  return 1;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
  size_t i = (*n)++;
  while (i) {
    size_t pa = (i - 1) / 2;
    if (h[pa] <= v) break;
    h[i] = h[pa];
    i = pa;
  }
  h[i] = v;
}
static uint64_t heap_pop(uint64_t *h, size_t *n) {
  uint64_t top = h[0], v = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && h[c + 1] < h[c]) c++;
    if (h[c] >= v) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = v;
  return top;
}

/* Merges the nsym symbols in b->id (lowest rank first, leftmost on ties; HF's
 * BPE::merge_word without dropout) and appends the result to out. */
static dtr_status bpe_merge(dtr_tokenizer *t, bpe_scratch *b, size_t nsym, int32_t **out,
                            size_t *nout, size_t *capout) {
  if (nsym > 1) {
    if (b->hcap < 3 * nsym) { /* live entries never exceed 2 nsym */
      uint64_t *h = realloc(b->heap, 3 * nsym * sizeof *h);
      if (!h) return DTR_ERR_OOM;
      b->heap = h;
      b->hcap = 3 * nsym;
    }
    size_t hn = 0;
    for (size_t i = 0; i < nsym; i++) {
      b->prev[i] = (int32_t)i - 1;
      b->next[i] = i + 1 < nsym ? (int32_t)i + 1 : -1;
    }
    uint64_t v;
    for (size_t i = 0; i + 1 < nsym; i++)
      if (pm_get(&t->merges, b->id[i], b->id[i + 1], &v))
        heap_push(b->heap, &hn, (v >> 32) << 32 | i);
    while (hn) {
      uint64_t top = heap_pop(b->heap, &hn);
      uint32_t rank = (uint32_t)(top >> 32), pos = (uint32_t)top;
      if (b->id[pos] < 0) continue; /* merged away */
      int32_t nx = b->next[pos];
      if (nx < 0) continue;
      if (!pm_get(&t->merges, b->id[pos], b->id[nx], &v) || (uint32_t)(v >> 32) != rank)
        continue; /* stale */
      b->id[pos] = (int32_t)(uint32_t)v;
      b->id[nx] = -1;
      b->next[pos] = b->next[nx];
      if (b->next[nx] >= 0) b->prev[b->next[nx]] = (int32_t)pos;
      int32_t pv = b->prev[pos];
      if (pv >= 0 && pm_get(&t->merges, b->id[pv], b->id[pos], &v))
        heap_push(b->heap, &hn, (v >> 32) << 32 | (uint32_t)pv);
      if (b->next[pos] >= 0 && pm_get(&t->merges, b->id[pos], b->id[b->next[pos]], &v))
        heap_push(b->heap, &hn, (v >> 32) << 32 | pos);
    }
  }
  for (int32_t i = nsym ? 0 : -1; i >= 0; i = nsym > 1 ? b->next[i] : -1) {
    if (*nout == *capout) {
      size_t c = *capout ? *capout * 2 : 1024;
      int32_t *o = realloc(*out, c * sizeof *o);
      if (!o) return DTR_ERR_OOM;
      *out = o;
      *capout = c;
    }
    (*out)[(*nout)++] = b->id[i];
  }
  return DTR_OK;
}

/* One pre-token -> ids (HF's BPE::tokenize with its cache). */
static dtr_status bpe_word(dtr_tokenizer *t, bpe_scratch *b, sbuf *tmp, const char *s,
                           size_t n, int32_t **out, size_t *nout, size_t *capout) {
  uint64_t h = hash_bytes(s, n);
  const centry *ce = wc_get(&t->cache, s, n, h);
  size_t start = *nout;
  if (ce) {
    for (uint32_t k = 0; k < ce->nid; k++) {
      if (*nout == *capout) {
        size_t c = *capout ? *capout * 2 : 1024;
        int32_t *o = realloc(*out, c * sizeof *o);
        if (!o) return DTR_ERR_OOM;
        *out = o;
        *capout = c;
      }
      (*out)[(*nout)++] = t->cache.ids[ce->ioff + k];
    }
    return DTR_OK;
  }
  /* The word in the model's alphabet (byte-level: each byte's char). */
  const char *w = s;
  size_t wn = n;
  if (t->byte_level) {
    tmp->n = 0;
    for (size_t i = 0; i < n; i++)
      if (!sb_add(tmp, g_b2u[(uint8_t)s[i]], (size_t)g_b2u_len[(uint8_t)s[i]]))
        return DTR_ERR_OOM;
    w = tmp->p;
    wn = tmp->n;
  }
  int32_t whole = t->ignore_merges ? sm_get(&t->vocab, w, wn) : -1;
  dtr_status r = DTR_OK;
  if (whole >= 0) {
    if (!bs_reserve(b, 1)) return DTR_ERR_OOM;
    b->id[0] = whole;
    r = bpe_merge(t, b, 1, out, nout, capout);
  } else {
    if (!bs_reserve(b, wn + 1)) return DTR_ERR_OOM;
    size_t ns = 0;
    if (t->byte_level && !t->prefix && !t->suffix) {
      for (size_t i = 0; i < n; i++) b->id[ns++] = t->byte_id[(uint8_t)s[i]];
    } else {
      /* Character by character, with prefix/suffix, byte fallback and unk. */
      sbuf cs = {0};
      int last_unk = 0;
      for (size_t i = 0; i < wn;) {
        size_t cl = (size_t)u8len((uint8_t)w[i]);
        if (cl > wn - i) cl = wn - i;
        cs.n = 0;
        if ((i > 0 && t->prefix && !sb_add(&cs, t->prefix, t->prefix_len)) ||
            !sb_add(&cs, w + i, cl) ||
            (i + cl == wn && t->suffix && !sb_add(&cs, t->suffix, t->suffix_len))) {
          free(cs.p);
          return DTR_ERR_OOM;
        }
        int32_t id = sm_get(&t->vocab, cs.p, cs.n);
        if (id >= 0) {
          b->id[ns++] = id;
          last_unk = 0;
        } else {
          int fb = t->byte_fallback;
          for (size_t k = 0; fb && k < cl; k++)
            if (t->fb_id[(uint8_t)w[i + k]] < 0) fb = 0;
          if (fb) {
            for (size_t k = 0; k < cl; k++) b->id[ns++] = t->fb_id[(uint8_t)w[i + k]];
            last_unk = 0;
          } else if (t->unk_id >= 0) {
            if (!(t->fuse_unk && last_unk)) b->id[ns++] = t->unk_id;
            last_unk = 1;
          }
        }
        i += cl;
      }
      free(cs.p);
    }
    r = bpe_merge(t, b, ns, out, nout, capout);
  }
  if (r == DTR_OK) wc_put(&t->cache, s, n, h, *out + start, *nout - start);
  return r;
}

/* Normalizes one segment (HF normalizes each non-added-token split). */
static int normalize(const dtr_tokenizer *t, const char *s, size_t n, sbuf *o, sbuf *tmp) {
  o->n = 0;
  if (!sb_add(o, s, n)) return 0;
  for (size_t k = 0; k < t->n_norm; k++) {
    const normalizer *nm = &t->norm[k];
    if (nm->kind == NORM_PREPEND) {
      if (o->n == 0) continue; /* HF prepends to non-empty strings only */
      tmp->n = 0;
      if (!sb_add(tmp, nm->a, nm->alen) || !sb_add(tmp, o->p, o->n)) return 0;
    } else if (nm->kind == NORM_REPLACE) {
      tmp->n = 0;
      for (size_t i = 0; i < o->n;) {
        if (i + nm->alen <= o->n && !memcmp(o->p + i, nm->a, nm->alen)) {
          if (!sb_add(tmp, nm->b, nm->blen)) return 0;
          i += nm->alen;
        } else {
          if (!sb_add(tmp, o->p + i, 1)) return 0;
          i++;
        }
      }
    } else continue; /* NFC: not applied */
    sbuf sw = *o;
    *o = *tmp;
    *tmp = sw;
  }
  return 1;
}

/* Leftmost-longest match of an added token at or after pos; returns the index
 * into t->added (or -1) and the extent [*ms, *me) including stripped spaces. */
static int find_added(const dtr_tokenizer *t, const char *s, size_t n, size_t pos,
                      size_t *ms, size_t *me) {
  for (size_t i = pos; i < n; i++) {
    if (!t->added_first[(uint8_t)s[i]]) continue;
    int best = -1;
    size_t bl = 0;
    for (size_t k = 0; k < t->n_added; k++) {
      const added_tok *a = &t->added[k];
      if (a->len > bl && a->s[0] == s[i] && a->len <= n - i && !memcmp(s + i, a->s, a->len)) {
        best = (int)k;
        bl = a->len;
      }
    }
    if (best < 0) continue;
    const added_tok *a = &t->added[best];
    size_t st = i, en = i + bl;
    if (a->single_word) {
      /* Word characters around the match disqualify it (ASCII alnum and '_'). */
      unsigned char pc = st > 0 ? (unsigned char)s[st - 1] : ' ';
      unsigned char nc = en < n ? (unsigned char)s[en] : ' ';
      int pw = (pc >= '0' && pc <= '9') || ((pc | 32) >= 'a' && (pc | 32) <= 'z') || pc == '_' || pc >= 0x80;
      int nw = (nc >= '0' && nc <= '9') || ((nc | 32) >= 'a' && (nc | 32) <= 'z') || nc == '_' || nc >= 0x80;
      if (pw || nw) continue;
    }
    if (a->lstrip)
      while (st > pos) {
        size_t k = st - 1;
        while (k > pos && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
        int l;
        if (!is_ws_cp(u8decode((const uint8_t *)s + k, &l))) break;
        st = k;
      }
    if (a->rstrip)
      while (en < n) {
        int l;
        if (!is_ws_cp(u8decode((const uint8_t *)s + en, &l))) break;
        en += (size_t)l;
      }
    *ms = st;
    *me = en;
    return best;
  }
  return -1;
}

dtr_status dtr_tokenizer_encode(dtr_tokenizer *t, const char *text, size_t len,
                                int add_special, int32_t **ids, size_t *n) {
  if (!t || !ids || !n || (!text && len)) return DTR_ERR_INVALID;
  *ids = NULL;
  *n = 0;
  t->err[0] = 0;
  size_t bad;
  if (!utf8_check((const uint8_t *)text, len, &bad)) {
    set_err(t, "%s: input text is not valid UTF-8 at byte %zu", t->path, bad);
    return DTR_ERR_INVALID;
  }
  int32_t *out = NULL;
  size_t nout = 0, capout = 0;
  pieces pa = {0}, pb = {0};
  sbuf norm = {0}, tmp = {0}, tmp2 = {0};
  span *sp = NULL;
  size_t spcap = 0;
  bpe_scratch bs = {0};
  dtr_status r = DTR_OK;
  if (add_special)
    for (size_t i = 0; i < t->n_post_pre && r == DTR_OK; i++)
      if (!append_ids(&out, &nout, t->post_pre[i])) r = DTR_ERR_OOM;
  capout = nout;
  size_t pos = 0;
  while (r == DTR_OK && pos <= len) {
    size_t ms = len, me = len;
    int a = find_added(t, text, len, pos, &ms, &me);
    if (a < 0) ms = me = len;
    if (ms > pos) {
      /* An ordinary segment: normalize, pre-tokenize, BPE each piece. */
      if (!normalize(t, text + pos, ms - pos, &norm, &tmp)) { r = DTR_ERR_OOM; break; }
      pc_reset(&pa);
      if (!pc_add(&pa, norm.p, norm.n, pos == 0)) { r = DTR_ERR_OOM; break; }
      for (size_t k = 0; k < t->n_pre && r == DTR_OK; k++) {
        r = run_pretok(t, &t->pre[k], &pa, &pb, &sp, &spcap, &tmp2);
        pieces sw = pa;
        pa = pb;
        pb = sw;
      }
      for (size_t k = 0; k < pa.n && r == DTR_OK; k++)
        r = bpe_word(t, &bs, &tmp2, pa.buf.p + pa.off[k], pa.len[k], &out, &nout, &capout);
    }
    if (a < 0 || r != DTR_OK) break;
    if (nout == capout) {
      size_t c = capout ? capout * 2 : 1024;
      int32_t *o = realloc(out, c * sizeof *o);
      if (!o) { r = DTR_ERR_OOM; break; }
      out = o;
      capout = c;
    }
    out[nout++] = t->added[a].id;
    pos = me;
    if (pos == len) break;
  }
  if (r == DTR_OK && add_special)
    for (size_t i = 0; i < t->n_post_post; i++)
      if (!append_ids(&out, &nout, t->post_post[i])) { r = DTR_ERR_OOM; break; }
  pc_free(&pa);
  pc_free(&pb);
  free(norm.p);
  free(tmp.p);
  free(tmp2.p);
  free(sp);
  free(bs.id);
  free(bs.prev);
  free(bs.next);
  free(bs.heap);
  if (r == DTR_OK && !out) {
    out = malloc(sizeof *out);
    if (!out) r = DTR_ERR_OOM;
  }
  if (r != DTR_OK) {
    if (r == DTR_ERR_OOM) set_err(t, "%s: out of memory while encoding", t->path);
    free(out);
    return r;
  }
  *ids = out;
  *n = nout;
  return DTR_OK;
}

/* ----------------------------------------------------------------- decoding */

typedef struct {
  char **s;
  size_t *len;
  size_t n, cap;
} strvec;

static int sv_push(strvec *v, const char *s, size_t n) {
  if (v->n == v->cap) {
    size_t c = v->cap ? v->cap * 2 : 64;
    char **p = realloc(v->s, c * sizeof *p);
    if (p) v->s = p;
    size_t *l = realloc(v->len, c * sizeof *l);
    if (l) v->len = l;
    if (!p || !l) return 0;
    v->cap = c;
  }
  char *d = dupn(s, n);
  if (!d) return 0;
  v->s[v->n] = d;
  v->len[v->n++] = n;
  return 1;
}
static void sv_free(strvec *v) {
  for (size_t i = 0; i < v->n; i++) free(v->s[i]);
  free(v->s);
  free(v->len);
  v->s = NULL;
  v->len = NULL;
  v->n = v->cap = 0;
}

static int replace_all(const char *s, size_t n, const char *a, size_t al, const char *b,
                       size_t bl, sbuf *o) {
  o->n = 0;
  if (!sb_reserve(o, n)) return 0;
  for (size_t i = 0; i < n;) {
    if (i + al <= n && !memcmp(s + i, a, al)) {
      if (!sb_add(o, b, bl)) return 0;
      i += al;
    } else {
      if (!sb_add(o, s + i, 1)) return 0;
      i++;
    }
  }
  return 1;
}

/* <0xXX> -> XX, else -1. */
static int fallback_byte(const char *s, size_t n) {
  if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; i++) {
    char c = s[i];
    v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -100);
  }
  return v < 0 ? -1 : v;
}

/* One decoder over the token list (HF's decode_chain). */
static int run_decoder(const decoder *d, strvec *in, strvec *out) {
  sbuf b = {0};
  int ok = 1;
  if (d->kind == DEC_BYTELEVEL) {
    /* Each token's chars back to bytes; a token with a char outside the map
     * contributes its own UTF-8 bytes. The whole is then read lossily. */
    sbuf raw = {0};
    for (size_t i = 0; i < in->n && ok; i++) {
      size_t mark = raw.n;
      const uint8_t *s = (const uint8_t *)in->s[i];
      int all = 1;
      for (size_t k = 0; k < in->len[i] && ok;) {
        int l;
        uint32_t cp = u8decode(s + k, &l);
        int byte = cp < 324 ? g_u2b[cp] : -1;
        if (byte < 0) { all = 0; break; }
        uint8_t c = (uint8_t)byte;
        ok = sb_add(&raw, &c, 1);
        k += (size_t)l;
      }
      if (!all) {
        raw.n = mark;
        ok = ok && sb_add(&raw, s, in->len[i]);
      }
    }
    ok = ok && sb_reserve(&b, raw.n) && sb_add_lossy(&b, (const uint8_t *)raw.p, raw.n);
    ok = ok && sv_push(out, b.p ? b.p : "", b.n);
    free(raw.p);
  } else if (d->kind == DEC_FUSE) {
    for (size_t i = 0; i < in->n && ok; i++) ok = sb_add(&b, in->s[i], in->len[i]);
    ok = ok && sv_push(out, b.p ? b.p : "", b.n);
  } else if (d->kind == DEC_BYTEFALLBACK) {
    /* Runs of <0xXX> become their bytes when those form UTF-8, else one U+FFFD
     * per byte. */
    sbuf run = {0};
    for (size_t i = 0; i <= in->n && ok; i++) {
      int byte = i < in->n ? fallback_byte(in->s[i], in->len[i]) : -1;
      if (byte >= 0) {
        uint8_t c = (uint8_t)byte;
        ok = sb_add(&run, &c, 1);
        continue;
      }
      if (run.n) {
        size_t bad;
        if (utf8_check((const uint8_t *)run.p, run.n, &bad)) ok = sv_push(out, run.p, run.n);
        else
          for (size_t k = 0; k < run.n && ok; k++) ok = sv_push(out, "\xEF\xBF\xBD", 3);
        run.n = 0;
      }
      if (i < in->n && ok) ok = sv_push(out, in->s[i], in->len[i]);
    }
    free(run.p);
  } else {
    for (size_t i = 0; i < in->n && ok; i++) {
      const char *s = in->s[i];
      size_t n = in->len[i];
      if (d->kind == DEC_REPLACE) {
        ok = replace_all(s, n, d->a, d->alen, d->b, d->blen, &b) && sv_push(out, b.p, b.n);
      } else if (d->kind == DEC_METASPACE) {
        ok = replace_all(s, n, d->repl, (size_t)d->repl_len, " ", 1, &b);
        size_t off = (ok && i == 0 && d->prepend != PREPEND_NEVER && b.n && b.p[0] == ' ');
        ok = ok && sv_push(out, b.p + off, b.n - off);
      } else { /* DEC_STRIP: up to start leading and stop trailing copies of content */
        size_t st = 0, en = n;
        for (int k = 0; k < d->start && en - st >= d->alen && !memcmp(s + st, d->a, d->alen); k++)
          st += d->alen;
        for (int k = 0; k < d->stop && en - st >= d->alen &&
                        !memcmp(s + en - d->alen, d->a, d->alen); k++)
          en -= d->alen;
        ok = sv_push(out, s + st, en - st);
      }
    }
  }
  free(b.p);
  return ok;
}

dtr_status dtr_tokenizer_decode(dtr_tokenizer *t, const int32_t *ids, size_t n,
                                int skip_special, char **out, size_t *out_len) {
  if (!t || !out || (!ids && n)) return DTR_ERR_INVALID;
  *out = NULL;
  if (out_len) *out_len = 0;
  t->err[0] = 0;
  strvec a = {0}, b = {0};
  int ok = 1;
  for (size_t i = 0; i < n && ok; i++) {
    int32_t id = ids[i];
    if (id < 0 || (size_t)id >= t->n_ids ||
        (t->added_of[id] < 0 && !t->vstr[id])) {
      sv_free(&a);
      set_err(t, "%s: decode: id %d at position %zu is not in the vocabulary", t->path,
              (int)id, i);
      return DTR_ERR_INVALID;
    }
    if (t->added_of[id] >= 0) {
      const added_tok *at = &t->added[t->added_of[id]];
      if (skip_special && at->special) continue;
      ok = sv_push(&a, at->s, at->len);
    } else ok = sv_push(&a, t->vstr[id], t->vlen[id]);
  }
  sbuf res = {0};
  if (ok && t->has_decoder) {
    for (size_t k = 0; k < t->n_dec && ok; k++) {
      ok = run_decoder(&t->dec[k], &a, &b);
      sv_free(&a);
      a = b;
      memset(&b, 0, sizeof b);
    }
    for (size_t i = 0; i < a.n && ok; i++) ok = sb_add(&res, a.s[i], a.len[i]);
  } else {
    for (size_t i = 0; i < a.n && ok; i++) /* no decoder: HF joins with spaces */
      ok = (i == 0 || sb_add(&res, " ", 1)) && sb_add(&res, a.s[i], a.len[i]);
  }
  sv_free(&a);
  sv_free(&b);
  if (ok && !res.p) ok = sb_reserve(&res, 0);
  if (!ok) {
    free(res.p);
    set_err(t, "%s: out of memory while decoding", t->path);
    return DTR_ERR_OOM;
  }
  *out = res.p;
  if (out_len) *out_len = res.n;
  return DTR_OK;
}

/* ------------------------------------------------------------------ lookups */

const char *dtr_tokenizer_error(const dtr_tokenizer *t) { return t ? t->err : ""; }

size_t dtr_tokenizer_vocab_size(const dtr_tokenizer *t) { return t ? t->n_ids : 0; }

int32_t dtr_tokenizer_token_id(const dtr_tokenizer *t, const char *s) {
  if (!t || !s) return -1;
  size_t n = strlen(s);
  for (size_t k = 0; k < t->n_added; k++)
    if (t->added[k].len == n && !memcmp(t->added[k].s, s, n)) return t->added[k].id;
  return sm_get(&t->vocab, s, n);
}

const char *dtr_tokenizer_token_str(const dtr_tokenizer *t, int32_t id) {
  if (!t || id < 0 || (size_t)id >= t->n_ids) return NULL;
  if (t->added_of[id] >= 0) return t->added[t->added_of[id]].s;
  return t->vstr[id];
}

int dtr_tokenizer_is_special(const dtr_tokenizer *t, int32_t id) {
  if (!t || id < 0 || (size_t)id >= t->n_ids || t->added_of[id] < 0) return 0;
  return t->added[t->added_of[id]].special;
}
