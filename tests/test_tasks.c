/* test_tasks.c — models/tasks.c: `tasks make` on a small synthetic data directory
 * (train.txt, test.txt, wordnet_examples.tsv as dtr data prepare writes them):
 * every task file parses with the reader; recall golds name the value paired
 * with the queried key and the training mix answers every key correctly; cloze
 * items are test-split sentences cut before the headword with 4 distinct choices
 * of which gold is the headword; lm targets are test documents. The reader
 * rejects malformed lines naming the file and line number, and empty / non-UTF-8
 * files. No GPU, no npm packages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corpus.h"
#include "harness.h"
#include "tasks.h"

static char g_dir[512];

static void put(const char *name, const char *text) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s", g_dir, name);
  FILE *f = fopen(p, "wb");
  if (!f) { th_expect(0, "cannot write %s", p); return; }
  fputs(text, f);
  fclose(f);
}

static const char *NOUNS[] = {"garden", "window", "river", "candle", "basket", "ladder", "mirror",
                              "castle", "pillow", "kettle", "saddle", "anchor"};
#define NN (sizeof NOUNS / sizeof NOUNS[0])

static void make_data(void) {
  /* train.txt: every noun several times so it counts as a candidate */
  char *t = malloc(1 << 16);
  size_t n = 0;
  for (int d = 0; d < 4; d++) {
    for (size_t i = 0; i < NN; i++)
      for (int r = 0; r < 3; r++) n += (size_t)sprintf(t + n, "The %s is here. ", NOUNS[i]);
    n += (size_t)sprintf(t + n, "\n" DTR_CORPUS_EOT "\n");
  }
  put("train.txt", t);
  put("test.txt", "Test document one: the old river ran past the mill.\n" DTR_CORPUS_EOT "\n"
                  "Test document two, with a second line\nand more words.\n" DTR_CORPUS_EOT "\n");
  n = 0;
  for (size_t i = 0; i < NN; i++) {
    n += (size_t)sprintf(t + n, "test\tnoun\t%s\twe walked to the old %s at dawn\n", NOUNS[i], NOUNS[i]);
    n += (size_t)sprintf(t + n, "train\tnoun\t%s\tthe %s was not for the test split\n", NOUNS[i], NOUNS[i]);
  }
  n += (size_t)sprintf(t + n, "test\tnoun\triver\triver first: too few words before\n");
  put("wordnet_examples.tsv", t);
  free(t);
}

static void test_make(void) {
  make_data();
  char out[600], err[1024], path[800];
  snprintf(out, sizeof out, "%s/tasks", g_dir);
  dtr_tasks_opts o;
  dtr_tasks_opts_default(&o);
  o.recall_n = 50;
  o.recall_train = 200;
  dtr_status st = dtr_tasks_make(g_dir, out, &o, err, sizeof err);
  th_expect(st == DTR_OK, "tasks make: %s", st == DTR_OK ? "ok" : err);
  if (st != DTR_OK) return;
  /* recall */
  dtr_task *t;
  snprintf(path, sizeof path, "%s/recall.jsonl", out);
  st = dtr_task_load(path, &t, err, sizeof err);
  th_expect(st == DTR_OK && t->n == 50 && t->multiple_choice, "recall.jsonl: 50 multiple-choice examples");
  int bad = 0;
  for (size_t i = 0; st == DTR_OK && i < t->n; i++) {
    const dtr_task_item *it = &t->items[i];
    const char *q = strstr(it->context, " query: ");
    if (it->nchoices != 8 || !q) { bad++; continue; }
    char key[64], pat[80];
    snprintf(key, sizeof key, "%s", q + 8);
    snprintf(pat, sizeof pat, " %s %s ", key, it->choices[it->gold]);
    if (!strstr(it->context, pat)) bad++; /* the pair "key value" is in the context */
    for (size_t a = 0; a < it->nchoices; a++)
      for (size_t b = a + 1; b < it->nchoices; b++) bad += !strcmp(it->choices[a], it->choices[b]);
  }
  th_expect(bad == 0, "recall: gold is the value paired with the queried key, choices distinct (%d bad)", bad);
  if (st == DTR_OK) dtr_task_free(t);
  /* recall training mix: every answer matches its pair */
  char **docs;
  size_t nd;
  snprintf(path, sizeof path, "%s/recall_train.txt", out);
  st = dtr_corpus_read_docs(path, &docs, &nd, err, sizeof err);
  th_expect(st == DTR_OK && nd == 200, "recall_train.txt: 200 sequences (%zu)", st == DTR_OK ? nd : 0);
  bad = 0;
  int unordered = 0, shared = 0;
  size_t last_pairs = 0, nseq_tokens = 0;
  for (size_t i = 0; st == DTR_OK && i < nd; i++) {
    char *q = strstr(docs[i], " query:");
    if (strncmp(docs[i], "recall:", 7) || !q) { bad++; continue; }
    char *copy = strdup(docs[i]); /* the pairs part, for lookups */
    copy[q - docs[i]] = 0;
    char *save = NULL, *k, *v, pat[96];
    size_t answers = 0;
    for (k = strtok_r(q + 7, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
      v = strtok_r(NULL, " ", &save);
      if (!v) { bad++; break; }
      snprintf(pat, sizeof pat, " %s %s", k, v);
      answers++;
      char *hit = strstr(copy, pat);
      char nx = hit ? hit[strlen(pat)] : 0;
      if (!hit || (nx != ' ' && nx != 0)) bad++;
    }
    /* neighbours share no key: a key of this sequence's pairs (the words at even
     * positions) is not a key of the one before */
    char *pc = strdup(copy + 7), *ks = NULL;
    int w = 0;
    for (k = strtok_r(pc, " ", &ks); k; k = strtok_r(NULL, " ", &ks), w++) {
      if (w % 2 || i == 0) continue;
      char *prev = strdup(docs[i - 1] + 7), *ps = NULL, *pk;
      *strstr(prev, " query:") = 0;
      int pw = 0;
      for (pk = strtok_r(prev, " ", &ps); pk; pk = strtok_r(NULL, " ", &ps), pw++)
        if (pw % 2 == 0 && !strcmp(pk, k)) shared++;
      free(prev);
    }
    free(pc);
    free(copy);
    size_t pairs = (size_t)w / 2;
    if (answers < pairs || pairs < 2) bad++; /* at least one query a pair */
    if (pairs < last_pairs) unordered++;     /* written easiest first */
    last_pairs = pairs;
    nseq_tokens += 2 + 2 * pairs + 2 * answers;
  }
  th_expect(unordered == 0, "recall_train: sequences ordered by pair count (%d out of order)",
            unordered);
  th_expect(bad == 0, "recall_train: every answered key has its value (%d bad)", bad);
  /* by default the queries fill a sequence to about 128 words */
  th_expect(nd && nseq_tokens / nd > 110 && nseq_tokens / nd < 140,
            "recall_train: sequences of about 128 words (%zu on average)", nd ? nseq_tokens / nd : 0);
  th_expect(shared == 0, "recall_train: no key of a sequence is in the one before (%d are)",
            shared);
  if (st == DTR_OK) dtr_corpus_docs_free(docs, nd);
  /* cloze */
  snprintf(path, sizeof path, "%s/cloze.jsonl", out);
  st = dtr_task_load(path, &t, err, sizeof err);
  th_expect(st == DTR_OK && t->n == NN, "cloze.jsonl: %zu examples (want %zu: the train-split and "
            "too-early lines dropped)", st == DTR_OK ? t->n : 0, NN);
  bad = 0;
  for (size_t i = 0; st == DTR_OK && i < t->n; i++) {
    const dtr_task_item *it = &t->items[i];
    if (it->nchoices != 4 || strcmp(it->context, "we walked to the old")) { bad++; continue; }
    for (size_t a = 0; a < 4; a++)
      for (size_t b = a + 1; b < 4; b++) bad += !strcmp(it->choices[a], it->choices[b]);
  }
  th_expect(bad == 0, "cloze: context cut before the headword, 4 distinct choices (%d bad)", bad);
  /* gold is the headword: the set of gold choices is exactly the nouns */
  int seen[NN] = {0};
  for (size_t i = 0; st == DTR_OK && i < t->n; i++)
    for (size_t k = 0; k < NN; k++) seen[k] += !strcmp(t->items[i].choices[t->items[i].gold], NOUNS[k]);
  int once = 0;
  for (size_t k = 0; k < NN; k++) once += seen[k] == 1;
  th_expect(once == (int)NN, "cloze: each headword is gold exactly once (%d of %zu)", once, NN);
  if (st == DTR_OK) dtr_task_free(t);
  /* lm */
  snprintf(path, sizeof path, "%s/lm.jsonl", out);
  st = dtr_task_load(path, &t, err, sizeof err);
  th_expect(st == DTR_OK && t->n == 2 && !t->multiple_choice, "lm.jsonl: 2 target examples");
  int found = 0;
  for (size_t i = 0; st == DTR_OK && i < t->n; i++)
    found += !strcmp(t->items[i].target, "Test document two, with a second line\nand more words.") ||
             !strcmp(t->items[i].target, "Test document one: the old river ran past the mill.");
  th_expect(found == 2, "lm targets are the test documents (%d)", found);
  if (st == DTR_OK) dtr_task_free(t);
  /* same seed, same files */
  char out2[700];
  snprintf(out2, sizeof out2, "%s/tasks2", g_dir);
  st = dtr_tasks_make(g_dir, out2, &o, err, sizeof err);
  int same = st == DTR_OK;
  static const char *F[] = {"recall.jsonl", "cloze.jsonl", "lm.jsonl", "recall_train.txt"};
  for (int k = 0; k < 4 && same; k++) {
    char a[900], b[900];
    snprintf(a, sizeof a, "%s/%s", out, F[k]);
    snprintf(b, sizeof b, "%s/%s", out2, F[k]);
    char *x, *y;
    size_t xl, yl;
    if (dtr_read_text_file(a, 0, &x, &xl, err, sizeof err) || dtr_read_text_file(b, 0, &y, &yl, err, sizeof err)) {
      same = 0;
      break;
    }
    same = xl == yl && !memcmp(x, y, xl);
    free(x);
    free(y);
  }
  th_expect(same, "same seed, same task files");
}

static void expect_bad(const char *name, const char *text, const char *want) {
  put(name, text);
  char path[700], err[1024] = "";
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  dtr_task *t = NULL;
  dtr_status st = dtr_task_load(path, &t, err, sizeof err);
  th_expect(st != DTR_OK && !t && strstr(err, name) && strstr(err, want), "%s rejected: '%s'", name, err);
}

static void test_reader(void) {
  const char *ok1 = "{\"context\": \"a\", \"choices\": [\"x\", \"y\"], \"gold\": 1}\n";
  char buf[1024];
  snprintf(buf, sizeof buf, "%s\n%s{\"context\": \"a\", \"choices\": [\"x\", \"y\"], \"gold\": 2}\n", ok1, ok1);
  expect_bad("gold_out.jsonl", buf, ":4: \"gold\" is outside the choices"); /* line 2 is blank */
  snprintf(buf, sizeof buf, "%s%s{\"context\": \"a\", \"choices\": [\"x\"", ok1, ok1);
  expect_bad("badjson.jsonl", buf, ":3: not valid JSON");
  snprintf(buf, sizeof buf, "%s{\"context\": \"a\", \"choices\": [\"x\"], \"gold\": 0}\n", ok1);
  expect_bad("onechoice.jsonl", buf, ":2: \"choices\" is not a list of 2 or more");
  snprintf(buf, sizeof buf, "%s{\"context\": \"a\"}\n", ok1);
  expect_bad("neither.jsonl", buf, ":2: has neither");
  snprintf(buf, sizeof buf, "%s{\"target\": \"text\"}\n", ok1);
  expect_bad("mixed.jsonl", buf, ":2: target example in a file of multiple-choice");
  snprintf(buf, sizeof buf, "%s[1, 2]\n", ok1);
  expect_bad("array.jsonl", buf, ":2: not a JSON object");
  snprintf(buf, sizeof buf, "%s{\"context\": \"a\", \"choices\": [\"x\", 3], \"gold\": 0}\n", ok1);
  expect_bad("nonstr.jsonl", buf, ":2: \"choices\" holds a non-string");
  snprintf(buf, sizeof buf, "%s{\"context\": \"a\", \"choices\": [\"x\", \"y\"], \"gold\": \"0\"}\n", ok1);
  expect_bad("goldstr.jsonl", buf, ":2: \"gold\" is missing or not an integer");
  expect_bad("empty.jsonl", "", "empty");
  expect_bad("blank.jsonl", "\n\n  \n", "no examples");
  expect_bad("latin1.jsonl", "{\"target\": \"caf\xe9\"}\n", "UTF-8");
  /* a good file with blank lines and extra fields */
  snprintf(buf, sizeof buf, "\n%s\n{\"context\": \"b\", \"choices\": [\"p\", \"q\", \"r\"], \"gold\": 0, \"rest\": \".\"}\n", ok1);
  put("good.jsonl", buf);
  char path[700], err[512];
  snprintf(path, sizeof path, "%s/good.jsonl", g_dir);
  dtr_task *t;
  dtr_status st = dtr_task_load(path, &t, err, sizeof err);
  th_expect(st == DTR_OK && t->n == 2 && !strcmp(t->name, "good") && t->items[1].nchoices == 3 &&
                t->items[0].gold == 1 && !strcmp(t->items[1].choices[2], "r"),
            "good file: 2 examples, fields read: %s", st == DTR_OK ? "ok" : err);
  if (st == DTR_OK) dtr_task_free(t);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "%s/dtr_tasks_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(g_dir)) {
    th_expect(0, "mkdtemp %s", g_dir);
    return th_finish();
  }
  test_make();
  test_reader();
  char cmd[700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) printf("      could not remove %s\n", g_dir);
  return th_finish();
}
