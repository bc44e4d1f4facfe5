/* tasks.c — generating the recall / cloze / lm task files and reading task files
 * back with line-level checks (see tasks.h for the formats). */
#include "tasks.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "corpus.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------ reader */

static void item_free(dtr_task_item *it) {
  free(it->context);
  for (size_t k = 0; k < it->nchoices; k++) free(it->choices[k]);
  free(it->choices);
  free(it->target);
}

void dtr_task_free(dtr_task *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) item_free(&t->items[i]);
  free(t->items);
  free(t->name);
  free(t);
}

/* Checks one parsed line; fills it. Returns NULL or the problem. */
static const char *parse_item(json_t *j, dtr_task_item *it) {
  memset(it, 0, sizeof *it);
  it->gold = -1;
  if (!json_is_object(j)) return "not a JSON object";
  json_t *c = json_object_get(j, "context"), *ch = json_object_get(j, "choices"),
         *g = json_object_get(j, "gold"), *t = json_object_get(j, "target");
  if (c && !json_is_string(c)) return "\"context\" is not a string";
  if (ch && t) return "has both \"choices\" and \"target\"";
  if (!ch && !t) return "has neither \"choices\" nor \"target\"";
  if (t) {
    if (!json_is_string(t)) return "\"target\" is not a string";
    if (json_string_length(t) == 0) return "\"target\" is empty";
    if (g) return "\"gold\" without \"choices\"";
  } else {
    if (!c) return "multiple-choice example without \"context\"";
    if (!json_is_array(ch) || json_array_size(ch) < 2) return "\"choices\" is not a list of 2 or more strings";
    for (size_t k = 0; k < json_array_size(ch); k++)
      if (!json_is_string(json_array_get(ch, k))) return "\"choices\" holds a non-string";
    if (!json_is_integer(g)) return "\"gold\" is missing or not an integer";
    json_int_t gv = json_integer_value(g);
    if (gv < 0 || (size_t)gv >= json_array_size(ch)) return "\"gold\" is outside the choices";
  }
  it->context = strdup(c ? json_string_value(c) : "");
  if (t) it->target = strdup(json_string_value(t));
  else {
    it->nchoices = json_array_size(ch);
    it->choices = calloc(it->nchoices, sizeof *it->choices);
    if (it->choices)
      for (size_t k = 0; k < it->nchoices; k++)
        it->choices[k] = strdup(json_string_value(json_array_get(ch, k)));
    it->gold = (int)json_integer_value(g);
  }
  return NULL;
}

dtr_status dtr_task_load(const char *path, dtr_task **out, char *err, size_t errlen) {
  *out = NULL;
  char *buf;
  size_t len;
  dtr_status st = dtr_read_text_file(path, 1, &buf, &len, err, errlen);
  if (st != DTR_OK) return st;
  dtr_task *t = calloc(1, sizeof *t);
  if (!t) { free(buf); seterr(err, errlen, "%s: out of memory", path); return DTR_ERR_OOM; }
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t bl = strlen(base);
  if (bl > 6 && !strcmp(base + bl - 6, ".jsonl")) bl -= 6;
  t->name = strndup(base, bl);
  t->multiple_choice = -1;
  size_t cap = 0, lineno = 0;
  char *p = buf;
  while (st == DTR_OK && *p) {
    char *e = strchr(p, '\n');
    size_t ll = e ? (size_t)(e - p) : strlen(p);
    lineno++;
    int blank = 1;
    for (size_t i = 0; i < ll; i++)
      if (!isspace((unsigned char)p[i])) { blank = 0; break; }
    if (!blank) {
      json_error_t je;
      json_t *j = json_loadb(p, ll, 0, &je);
      if (!j) {
        seterr(err, errlen, "%s:%zu: not valid JSON: %s", path, lineno, je.text);
        st = DTR_ERR_FORMAT;
        break;
      }
      if (t->n == cap) {
        cap = cap ? cap * 2 : 256;
        dtr_task_item *ni = realloc(t->items, cap * sizeof *ni);
        if (!ni) { json_decref(j); st = DTR_ERR_OOM; seterr(err, errlen, "%s: out of memory", path); break; }
        t->items = ni;
      }
      dtr_task_item *it = &t->items[t->n];
      const char *why = parse_item(j, it);
      json_decref(j);
      if (!why) {
        int mc = it->choices != NULL;
        if (t->multiple_choice >= 0 && t->multiple_choice != mc)
          why = mc ? "multiple-choice example in a file of target examples"
                   : "target example in a file of multiple-choice examples";
        t->multiple_choice = mc;
      }
      t->n++;
      if (why) {
        seterr(err, errlen, "%s:%zu: %s", path, lineno, why);
        st = DTR_ERR_FORMAT;
        break;
      }
    }
    if (!e) break;
    p = e + 1;
  }
  free(buf);
  if (st == DTR_OK && t->n == 0) {
    seterr(err, errlen, "%s: no examples", path);
    st = DTR_ERR_FORMAT;
  }
  if (st != DTR_OK) {
    dtr_task_free(t);
    return st;
  }
  *out = t;
  return DTR_OK;
}

/* ------------------------------------------------------------------ recall */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static size_t rnd(uint64_t *s, size_t n) { return (size_t)(splitmix(s) % n); }

/* Keys are concrete nouns and values adjectives, each one token (with its
 * leading space) under the byte-level BPE that `dtr tokenizer train` builds
 * from the corpus at 4096 entries: a query is answered by copying the one
 * token that followed the key, the plainest form of in-context recall. (Numbers
 * made poor values: that tokenizer splits " 75" into " ", "7", "5".) */
static const char *KEYS[] = {
    "river", "house",  "tree",   "water", "table",  "door",    "horse",  "bird",   "fish",
    "mountain", "road", "book",  "paper", "letter", "ship",    "car",    "field",  "forest",
    "flower", "grass", "sand",   "wind",  "fire",   "bell",    "coin",   "boat",   "island",
    "star",   "sun",   "city",   "market", "church", "school", "king",   "teacher", "child",
    "mother", "father", "friend", "dog",  "cat",    "bear",    "wine",   "glass",  "box",
    "wall",   "floor", "bed",    "flag",  "saw",    "engine",  "well",   "rock",   "port"};
static const char *VALS[] = {
    "red",   "blue",  "green",  "black", "white", "brown",  "yellow", "old",   "new",
    "big",   "small", "long",   "short", "dark",  "light",  "cold",   "hot",   "warm",
    "dry",   "soft",  "hard",   "rich",  "poor",  "young",  "high",   "low",   "deep",
    "free",  "full",  "open",   "heavy", "fast",  "slow",   "sweet",  "clean", "strong",
    "wild",  "fine",  "good",   "bad",   "great", "little", "true",   "real",  "late",
    "early", "round", "flat",   "thin",  "thick", "bright", "wide",   "narrow", "fair"};
#define NVALS (sizeof VALS / sizeof VALS[0])
#define NKEYS (sizeof KEYS / sizeof KEYS[0])

/* Keys for a training stream: a window of it holds several sequences, and a key
 * that came back from the sequence before with another value would make "the
 * token after the earlier occurrence of this key" ambiguous. So each key is
 * drawn among the quarter of the keys that went unused longest (last[k]: the
 * clock at k's last use), which puts at least 3/4 of NKEYS key draws (some 170
 * tokens; 99% of reuses are over 128 tokens apart) between two uses of a key. */
#define RECENT_POOL (NKEYS / 4)
#define FILL_WORDS 126 /* a training sequence's words by default: some 128 tokens */
static size_t stale_key(uint64_t *rng, const uint64_t *last, const size_t *taken, size_t ntaken) {
  size_t pool[NKEYS], np = 0;
  for (size_t k = 0; k < NKEYS; k++) {
    int used = 0;
    for (size_t j = 0; j < ntaken; j++) used |= taken[j] == k;
    if (!used) pool[np++] = k;
  }
  for (size_t i = 1; i < np; i++) /* oldest first; ties keep key order */
    for (size_t j = i; j > 0 && last[pool[j]] < last[pool[j - 1]]; j--) {
      size_t t = pool[j];
      pool[j] = pool[j - 1];
      pool[j - 1] = t;
    }
  return pool[rnd(rng, np < RECENT_POOL ? np : RECENT_POOL)];
}

/* nq: answered queries of a training sequence (with_answers). */
static char *recall_sequence(uint64_t *rng, size_t npairs, size_t nq, int with_answers,
                             char ***choices, int *gold, uint64_t *last, uint64_t *clock) {
  if (npairs < 1 || npairs > NKEYS || npairs > NVALS || npairs > 100) return NULL;
  size_t key[100], val[100];
  for (size_t i = 0; i < npairs; i++) { /* distinct keys and values */
    int dup;
    if (last) {
      key[i] = stale_key(rng, last, key, i);
      last[key[i]] = ++*clock;
    } else
      do {
        key[i] = rnd(rng, NKEYS);
        dup = 0;
        for (size_t k = 0; k < i; k++) dup |= key[k] == key[i];
      } while (dup);
    do {
      val[i] = rnd(rng, NVALS);
      dup = 0;
      for (size_t k = 0; k < i; k++) dup |= val[k] == val[i];
    } while (dup);
  }
  size_t cap = 64 + (npairs + nq) * 48, n = 0;
  char *s = malloc(cap);
  if (!s) return NULL;
  n += (size_t)snprintf(s + n, cap - n, "recall:");
  for (size_t i = 0; i < npairs; i++)
    n += (size_t)snprintf(s + n, cap - n, " %s %s", KEYS[key[i]], VALS[val[i]]);
  n += (size_t)snprintf(s + n, cap - n, " query:");
  if (with_answers) {
    /* queries drawn with replacement: neither "the value not asked yet" nor
     * the position of a pair answers one; only its key does */
    for (size_t i = 0; i < nq; i++) {
      size_t q = rnd(rng, npairs);
      n += (size_t)snprintf(s + n, cap - n, " %s %s", KEYS[key[q]], VALS[val[q]]);
    }
    return s;
  }
  size_t q = rnd(rng, npairs);
  snprintf(s + n, cap - n, " %s", KEYS[key[q]]);
  if (choices) {
    *choices = calloc(npairs, sizeof **choices);
    if (!*choices) { free(s); return NULL; }
    for (size_t i = 0; i < npairs; i++) {
      (*choices)[i] = strdup(VALS[val[i]]);
    }
  }
  if (gold) *gold = (int)q;
  return s;
}

char *dtr_recall_sequence(uint64_t *rng, size_t npairs, int with_answers, char ***choices,
                          int *gold) {
  return recall_sequence(rng, npairs, npairs, with_answers, choices, gold, NULL, NULL);
}

/* ------------------------------------------------------------ word counts */

typedef struct {
  char **w;
  long *c;
  size_t n, cap; /* cap: power of two slots */
} wcount;

static uint64_t fnv(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static long *wc_slot(wcount *m, const char *w, size_t n, int create) {
  if (create && (m->n + 1) * 2 > m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 1 << 16;
    char **nw = calloc(nc, sizeof *nw);
    long *ncnt = calloc(nc, sizeof *ncnt);
    if (!nw || !ncnt) { free(nw); free(ncnt); return NULL; }
    for (size_t i = 0; i < m->cap; i++)
      if (m->w[i]) {
        size_t h = fnv(m->w[i], strlen(m->w[i])) & (nc - 1);
        while (nw[h]) h = (h + 1) & (nc - 1);
        nw[h] = m->w[i];
        ncnt[h] = m->c[i];
      }
    free(m->w);
    free(m->c);
    m->w = nw;
    m->c = ncnt;
    m->cap = nc;
  }
  if (!m->cap) return NULL;
  size_t h = fnv(w, n) & (m->cap - 1);
  while (m->w[h]) {
    if (strlen(m->w[h]) == n && !memcmp(m->w[h], w, n)) return &m->c[h];
    h = (h + 1) & (m->cap - 1);
  }
  if (!create) return NULL;
  m->w[h] = strndup(w, n);
  if (!m->w[h]) return NULL;
  m->n++;
  return &m->c[h];
}

static void wc_free(wcount *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->w[i]);
  free(m->w);
  free(m->c);
}

/* Counts lower-case ASCII letter runs (case folded) of text. */
static int count_words(wcount *m, const char *s) {
  char w[64];
  while (*s) {
    while (*s && !isalpha((unsigned char)*s)) s++;
    size_t n = 0;
    while (isalpha((unsigned char)*s)) {
      if (n < sizeof w) w[n] = (char)tolower((unsigned char)*s);
      n++;
      s++;
    }
    if (n && n <= sizeof w) {
      long *c = wc_slot(m, w, n, 1);
      if (!c) return 0;
      (*c)++;
    }
  }
  return 1;
}

static long freq(wcount *m, const char *w) {
  long *c = wc_slot(m, w, strlen(w), 0);
  return c ? *c : 0;
}

/* ------------------------------------------------------------------ cloze */

typedef struct {
  char split[8], pos[12];
  char *lemma, *sent;
} exline;

typedef struct {
  const char *lemma;
  long f;
} cand;

static int cmp_cand(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->f != y->f) return x->f < y->f ? -1 : 1;
  /* equal frequency: a hash order, so neighbours do not share a prefix */
  uint64_t hx = fnv(x->lemma, strlen(x->lemma)), hy = fnv(y->lemma, strlen(y->lemma));
  if (hx != hy) return hx < hy ? -1 : 1;
  return strcmp(x->lemma, y->lemma);
}

static long find_word(const char *s, const char *w) {
  size_t wl = strlen(w);
  for (const char *p = strstr(s, w); p; p = strstr(p + 1, w)) {
    int lb = p == s || !(isalpha((unsigned char)p[-1]) || p[-1] == '-' || p[-1] == '\'');
    int rb = !(isalpha((unsigned char)p[wl]) || p[wl] == '-');
    if (lb && rb) return (long)(p - s);
  }
  return -1;
}

static int write_line(FILE *f, json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  if (!s) return 0;
  fputs(s, f);
  fputc('\n', f);
  free(s);
  return 1;
}

static dtr_status make_cloze(const char *data_dir, const char *out_dir, const dtr_tasks_opts *o,
                             wcount *wc, size_t *made, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/wordnet_examples.tsv", data_dir);
  char *buf;
  size_t len;
  dtr_status st = dtr_read_text_file(path, 1, &buf, &len, err, errlen);
  if (st != DTR_OK) return st;
  exline *ex = NULL;
  size_t nex = 0, cap = 0, lineno = 0;
  char *save = NULL;
  for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    lineno++;
    char *f[4];
    f[0] = l;
    int nf = 1;
    for (char *p = l; *p && nf < 4; p++)
      if (*p == '\t') { *p = 0; f[nf++] = p + 1; }
    if (nf != 4 || strlen(f[0]) >= 8 || strlen(f[1]) >= 12) {
      seterr(err, errlen, "%s:%zu: expected split\\tpos\\tlemma\\tsentence", path, lineno);
      st = DTR_ERR_FORMAT;
      break;
    }
    if (nex == cap) {
      cap = cap ? cap * 2 : 4096;
      exline *ne = realloc(ex, cap * sizeof *ne);
      if (!ne) { st = DTR_ERR_OOM; break; }
      ex = ne;
    }
    snprintf(ex[nex].split, sizeof ex[nex].split, "%s", f[0]);
    snprintf(ex[nex].pos, sizeof ex[nex].pos, "%s", f[1]);
    ex[nex].lemma = f[2];
    ex[nex].sent = f[3];
    nex++;
  }
  /* Candidate lemmas per part of speech: distinct, seen >= 3 times in train. */
  static const char *POS[] = {"noun", "verb", "adjective", "adverb"};
  cand *cands[4] = {0};
  size_t ncand[4] = {0};
  for (int p = 0; st == DTR_OK && p < 4; p++) {
    cands[p] = malloc((nex ? nex : 1) * sizeof **cands);
    if (!cands[p]) { st = DTR_ERR_OOM; break; }
    for (size_t i = 0; i < nex; i++) {
      if (strcmp(ex[i].pos, POS[p])) continue;
      long fr = freq(wc, ex[i].lemma);
      if (fr >= 3) cands[p][ncand[p]++] = (cand){ex[i].lemma, fr};
    }
    qsort(cands[p], ncand[p], sizeof **cands, cmp_cand);
    size_t u = 0; /* dedupe (equal lemmas sort next to each other) */
    for (size_t i = 0; i < ncand[p]; i++)
      if (!u || strcmp(cands[p][u - 1].lemma, cands[p][i].lemma)) cands[p][u++] = cands[p][i];
    ncand[p] = u;
  }
  /* Test-split examples in seeded random order. */
  size_t *ord = malloc((nex ? nex : 1) * sizeof *ord), nord = 0;
  if (!ord) st = DTR_ERR_OOM;
  for (size_t i = 0; st == DTR_OK && i < nex; i++)
    if (!strcmp(ex[i].split, "test")) ord[nord++] = i;
  uint64_t rng = o->seed ^ 0xC102E0000ull;
  for (size_t i = nord; i > 1; i--) {
    size_t j = rnd(&rng, i), t = ord[i - 1];
    ord[i - 1] = ord[j];
    ord[j] = t;
  }
  FILE *out = NULL;
  if (st == DTR_OK) {
    snprintf(path, sizeof path, "%s/cloze.jsonl", out_dir);
    out = fopen(path, "wb");
    if (!out) {
      seterr(err, errlen, "%s: cannot create: %s", path, strerror(errno));
      st = DTR_ERR_IO;
    }
  }
  *made = 0;
  for (size_t k = 0; st == DTR_OK && k < nord && *made < o->cloze_n; k++) {
    exline *e = &ex[ord[k]];
    int p = 0;
    while (p < 4 && strcmp(e->pos, POS[p])) p++;
    if (p == 4 || ncand[p] < 8 || freq(wc, e->lemma) < 3) continue;
    long at = find_word(e->sent, e->lemma);
    if (at < 0) continue;
    size_t words_before = 0;
    for (long i = 0; i < at; i++)
      if (e->sent[i] != ' ' && (i == 0 || e->sent[i - 1] == ' ')) words_before++;
    if (words_before < 3) continue;
    size_t me = 0; /* the headword's rank among the candidates */
    while (me < ncand[p] && strcmp(cands[p][me].lemma, e->lemma)) me++;
    if (me == ncand[p]) continue;
    /* 3 distractors among the 10 nearest in frequency rank, not in the sentence */
    const char *pick[4] = {e->lemma, 0, 0, 0};
    int np = 1, tries = 0;
    while (np < 4 && tries++ < 200) {
      long r = (long)me + (long)rnd(&rng, 21) - 10;
      if (r < 0 || r >= (long)ncand[p] || (size_t)r == me) continue;
      const char *d = cands[p][r].lemma;
      int dup = find_word(e->sent, d) >= 0;
      for (int q = 0; q < np; q++) dup |= !strcmp(pick[q], d);
      if (!dup) pick[np++] = d;
    }
    if (np < 4) continue;
    int gold = (int)rnd(&rng, 4);
    const char *t = pick[0];
    pick[0] = pick[gold];
    pick[gold] = t;
    size_t cl = (size_t)at;
    while (cl && e->sent[cl - 1] == ' ') cl--;
    json_t *j = json_pack("{s:s%,s:[ssss],s:i,s:s,s:s}", "context", e->sent, cl, "choices",
                          pick[0], pick[1], pick[2], pick[3], "gold", gold, "rest",
                          e->sent + at + strlen(e->lemma), "pos", e->pos);
    if (!j || !write_line(out, j)) st = DTR_ERR_OOM;
    (*made)++;
  }
  if (out && fclose(out) != 0 && st == DTR_OK) {
    seterr(err, errlen, "%s: write failed", path);
    st = DTR_ERR_IO;
  }
  if (st == DTR_ERR_OOM) seterr(err, errlen, "cloze: out of memory");
  if (st == DTR_OK && *made == 0) {
    seterr(err, errlen, "%s/wordnet_examples.tsv: no usable test-split example sentences",
           data_dir);
    st = DTR_ERR_FORMAT;
  }
  for (int p = 0; p < 4; p++) free(cands[p]);
  free(ord);
  free(ex);
  free(buf);
  return st;
}

/* -------------------------------------------------------------------- make */

void dtr_tasks_opts_default(dtr_tasks_opts *o) {
  memset(o, 0, sizeof *o);
  o->seed = 1234;
  o->recall_n = 300;
  o->recall_pairs = 8;
  o->recall_train = 50000;
  o->cloze_n = 500;
  o->lm_n = 200;
  o->lm_max_bytes = 2000;
}

dtr_status dtr_tasks_make(const char *data_dir, const char *out_dir, const dtr_tasks_opts *opts,
                          char *err, size_t errlen) {
  dtr_tasks_opts o;
  if (opts) o = *opts;
  else dtr_tasks_opts_default(&o);
  if (o.recall_pairs < 2 || o.recall_pairs > NKEYS) {
    seterr(err, errlen, "recall pairs %zu must be between 2 and %zu", o.recall_pairs,
           (size_t)NKEYS);
    return DTR_ERR_INVALID;
  }
  if (o.recall_queries > 1000) {
    seterr(err, errlen, "recall queries %zu: at most 1000 a sequence", o.recall_queries);
    return DTR_ERR_INVALID;
  }
  if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
    seterr(err, errlen, "%s: cannot create directory: %s", out_dir, strerror(errno));
    return DTR_ERR_IO;
  }
  char path[4096];
  dtr_status st = DTR_OK;
  /* recall (eval), then the training mix with a different stream */
  snprintf(path, sizeof path, "%s/recall.jsonl", out_dir);
  FILE *f = fopen(path, "wb");
  if (!f) {
    seterr(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    return DTR_ERR_IO;
  }
  uint64_t rng = o.seed ^ 0x5EC0DE11ull;
  for (size_t i = 0; i < o.recall_n && st == DTR_OK; i++) {
    char **ch = NULL;
    int gold = 0;
    char *ctx = dtr_recall_sequence(&rng, o.recall_pairs, 0, &ch, &gold);
    if (!ctx) { st = DTR_ERR_OOM; break; }
    json_t *arr = json_array();
    for (size_t k = 0; k < o.recall_pairs; k++) {
      json_array_append_new(arr, json_string(ch[k]));
      free(ch[k]);
    }
    free(ch);
    if (!write_line(f, json_pack("{s:s,s:o,s:i}", "context", ctx, "choices", arr, "gold", gold)))
      st = DTR_ERR_OOM;
    free(ctx);
  }
  if (fclose(f) != 0 && st == DTR_OK) st = DTR_ERR_IO;
  if (st == DTR_OK && o.recall_train) {
    snprintf(path, sizeof path, "%s/recall_train.txt", out_dir);
    f = fopen(path, "wb");
    if (!f) {
      seterr(err, errlen, "%s: cannot create: %s", path, strerror(errno));
      return DTR_ERR_IO;
    }
    uint64_t r2 = o.seed ^ 0x7A11AB1Eull;
    /* From two pairs: with one, the value just before " query:" is always the
     * answer, and a model trained there first learns that position instead of
     * matching the key. */
    size_t lo = 2, hi = o.recall_pairs * 2 > NKEYS ? NKEYS : o.recall_pairs * 2;
    size_t count[NKEYS + 1] = {0};
    for (size_t i = 0; i < o.recall_train; i++) {
      /* Varying lengths so the skill does not hinge on one pair count; half
       * the sequences have 2 to 4 pairs, where the copy is found first. */
      size_t top = rnd(&r2, 2) ? hi : (hi + 7) / 8 + 2;
      count[lo + rnd(&r2, top - lo + 1)]++;
    }
    /* Written easiest first (by pair count), so a training curriculum can start
     * on a prefix of the file (data.recall_curriculum); drawn in that order so
     * that neighbours do not share keys (stale_key; guaranteed while two
     * neighbours have at most NKEYS - RECENT_POOL + 1 pairs together, which the
     * default of up to 16 pairs a sequence keeps). */
    uint64_t last[NKEYS] = {0}, clock = 0;
    for (size_t c = lo; c <= hi && st == DTR_OK; c++)
      for (size_t i = 0; i < count[c] && st == DTR_OK; i++) {
        /* "recall:", "query:" and 2 words a pair and a query: fill to FILL_WORDS
         * (c <= NKEYS < (FILL_WORDS - 2) / 2, so there is always a query) */
        size_t nq = o.recall_queries ? o.recall_queries : (FILL_WORDS - 2) / 2 - c;
        char *q = recall_sequence(&r2, c, nq < c ? c : nq, 1, NULL, NULL, last, &clock);
        if (!q) {
          st = DTR_ERR_OOM;
          break;
        }
        fputs(q, f);
        fputs("\n" DTR_CORPUS_EOT "\n", f);
        free(q);
      }
    if (fclose(f) != 0 && st == DTR_OK) st = DTR_ERR_IO;
  }
  if (st != DTR_OK) {
    if (st == DTR_ERR_IO) seterr(err, errlen, "%s: write failed", path);
    else seterr(err, errlen, "recall: out of memory");
    return st;
  }
  /* cloze: word frequencies from train.txt */
  wcount wc = {0};
  char *train;
  snprintf(path, sizeof path, "%s/train.txt", data_dir);
  st = dtr_read_text_file(path, 1, &train, NULL, err, errlen);
  if (st != DTR_OK) return st;
  if (!count_words(&wc, train)) {
    free(train);
    wc_free(&wc);
    seterr(err, errlen, "%s: out of memory", path);
    return DTR_ERR_OOM;
  }
  free(train);
  size_t ncloze = 0;
  st = make_cloze(data_dir, out_dir, &o, &wc, &ncloze, err, errlen);
  wc_free(&wc);
  if (st != DTR_OK) return st;
  /* lm: test documents */
  char **docs;
  size_t nd;
  snprintf(path, sizeof path, "%s/test.txt", data_dir);
  st = dtr_corpus_read_docs(path, &docs, &nd, err, errlen);
  if (st != DTR_OK) return st;
  size_t *ord = malloc(nd * sizeof *ord);
  if (!ord) {
    dtr_corpus_docs_free(docs, nd);
    seterr(err, errlen, "lm: out of memory");
    return DTR_ERR_OOM;
  }
  for (size_t i = 0; i < nd; i++) ord[i] = i;
  uint64_t r3 = o.seed ^ 0x1A11D0C5ull;
  for (size_t i = nd; i > 1; i--) {
    size_t j = rnd(&r3, i), t = ord[i - 1];
    ord[i - 1] = ord[j];
    ord[j] = t;
  }
  snprintf(path, sizeof path, "%s/lm.jsonl", out_dir);
  f = fopen(path, "wb");
  if (!f) {
    seterr(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    st = DTR_ERR_IO;
  }
  for (size_t i = 0; f && st == DTR_OK && i < nd && i < o.lm_n; i++) {
    char *d = docs[ord[i]];
    size_t l = strlen(d);
    if (o.lm_max_bytes && l > o.lm_max_bytes) { /* cut at the last space before the limit */
      size_t c = o.lm_max_bytes;
      while (c > 0 && d[c] != ' ' && d[c] != '\n') c--;
      l = c ? c : o.lm_max_bytes;
      while (l > 0 && ((unsigned char)d[l] & 0xC0) == 0x80) l--; /* UTF-8 boundary */
    }
    if (!write_line(f, json_pack("{s:s%}", "target", d, l))) st = DTR_ERR_OOM;
  }
  if (f && fclose(f) != 0 && st == DTR_OK) {
    seterr(err, errlen, "%s: write failed", path);
    st = DTR_ERR_IO;
  }
  if (st == DTR_ERR_OOM) seterr(err, errlen, "lm: out of memory");
  free(ord);
  dtr_corpus_docs_free(docs, nd);
  return st;
}
