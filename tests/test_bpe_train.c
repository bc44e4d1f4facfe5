/* test_bpe_train.c — models/bpe_train.c: a tokenizer trained on a small generated
 * text is loaded back by models/tokenizer.c AND by the Hugging Face tokenizers
 * library (tests/tokenizer/oracle.js via node), which must agree id for id and
 * decode for decode on held-out lines; decode(encode(x)) == x; special tokens
 * get ids 0 and 1; the vocabulary reaches the size asked; training is
 * deterministic; and empty / non-UTF-8 input and a too-small vocabulary fail
 * with clear messages. Also prints the training speed on ~4 MB.
 *
 * The npm packages live in $DTR_NPM_DIR (default: npm/ in the build directory,
 * as for test_tokenizer; tools/test installs them). Missing node or packages
 * FAIL the test, saying so.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bpe_train.h"
#include "harness.h"
#include "tokenizer.h"

static uint64_t g_rng = 0xB9E5EEDull;
static uint32_t rnd(uint32_t n) {
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (uint32_t)((z ^ (z >> 31)) % n);
}

static const char *W[] = {"the", "whale", "ship", "captain", "sea", "of", "and", "a", "to",
                          "in", "was", "he", "his", "that", "it", "with", "Ishmael", "Ahab",
                          "harpoon", "boat", "crew", "deck", "water", "white", "great", "old",
                          "said", "would", "could", "there", "upon", "nantucket", "sailed",
                          "jury", "election", "county", "government", "people", "states",
                          "caf\xc3\xa9", "na\xc3\xafve", "\xe2\x80\x94", "don't", "it's",
                          "1851", "42", "3.14", "U.S.", "Mr.", "(see", "below)", "\"quoted\""};

/* A line of pseudo-English; sometimes punctuation, numbers, tabs, specials. */
static void gen_line(char *b, size_t cap) {
  size_t n = 0;
  uint32_t k = 3 + rnd(14);
  for (uint32_t i = 0; i < k && n + 40 < cap; i++) {
    static const char *SYL[] = {"ka", "lo", "mi", "ren", "to", "sa", "ver", "quin", "ba", "dor",
                                "el", "fi", "gu", "har", "is", "jo", "nu", "pe", "ri", "stu",
                                "tha", "ul", "wen", "xo", "yar", "ze", "an", "or", "ing", "ed"};
    char sw[64];
    const char *w = W[rnd(sizeof W / sizeof W[0])];
    if (rnd(3) == 0) { /* an invented word: variety for the merges */
      size_t m = 0;
      for (uint32_t k2 = 1 + rnd(4); k2 > 0; k2--)
        m += (size_t)snprintf(sw + m, sizeof sw - m, "%s", SYL[rnd(sizeof SYL / sizeof SYL[0])]);
      w = sw;
    }
    if (i) n += (size_t)snprintf(b + n, cap - n, "%s", rnd(15) ? " " : rnd(2) ? "  " : "\t");
    n += (size_t)snprintf(b + n, cap - n, "%s", w);
    if (rnd(8) == 0) n += (size_t)snprintf(b + n, cap - n, "%s", rnd(2) ? "," : ";");
  }
  snprintf(b + n, cap - n, "%s", rnd(4) ? "." : rnd(2) ? "?" : "!");
}

static char g_npm[1100], g_src[1024];

static int file_exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *build_text(size_t lines, size_t *len, size_t eot_every) {
  size_t cap = lines * 200 + 64, n = 0;
  char *t = malloc(cap), line[512];
  for (size_t i = 0; i < lines; i++) {
    gen_line(line, sizeof line);
    n += (size_t)snprintf(t + n, cap - n, "%s\n", line);
    if (eot_every && i % eot_every == eot_every - 1) n += (size_t)snprintf(t + n, cap - n, "<|endoftext|>\n");
  }
  *len = n;
  return t;
}

static void test_errors(void) {
  char err[512];
  dtr_bpe_opts o;
  dtr_bpe_opts_default(&o);
  FILE *f = fopen("bpe_empty.txt", "wb");
  if (f) fclose(f);
  dtr_status st = dtr_bpe_train_file("bpe_empty.txt", &o, "bpe_x.json", NULL, err, sizeof err);
  th_expect(st != DTR_OK && strstr(err, "bpe_empty.txt") && strstr(err, "empty"), "empty input: '%s'", err);
  f = fopen("bpe_latin1.txt", "wb");
  if (f) { fputs("caf\xe9 au lait\n", f); fclose(f); }
  st = dtr_bpe_train_file("bpe_latin1.txt", &o, "bpe_x.json", NULL, err, sizeof err);
  th_expect(st != DTR_OK && strstr(err, "bpe_latin1.txt") && strstr(err, "UTF-8"), "non-UTF-8 input: '%s'", err);
  st = dtr_bpe_train_file("bpe_missing.txt", &o, "bpe_x.json", NULL, err, sizeof err);
  th_expect(st != DTR_OK && strstr(err, "bpe_missing.txt"), "missing input: '%s'", err);
  o.vocab_size = 200;
  st = dtr_bpe_train_text("abc", 3, "t", &o, "bpe_x.json", NULL, err, sizeof err);
  th_expect(st == DTR_ERR_INVALID && strstr(err, "vocab size"), "vocab 200 < 258: '%s'", err);
}

int main(void) {
  const char *f = __FILE__, *slash = strrchr(f, '/');
  const char *src_env = getenv("DTR_SOURCE_DIR");
  if (src_env) snprintf(g_src, sizeof g_src, "%s/tests", src_env);
  else if (slash) snprintf(g_src, sizeof g_src, "%.*s", (int)(slash - f), f);
  else snprintf(g_src, sizeof g_src, ".");
  const char *npm = getenv("DTR_NPM_DIR");
  char exe[1024];
  ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (npm && *npm) snprintf(g_npm, sizeof g_npm, "%s", npm);
  else if (el > 0) {
    exe[el] = 0;
    for (int up = 0; up < 2; up++) {
      char *sl = strrchr(exe, '/');
      if (sl) *sl = 0;
    }
    snprintf(g_npm, sizeof g_npm, "%s/npm", exe);
  } else snprintf(g_npm, sizeof g_npm, "npm");

  test_errors();

  /* Train on 3000 lines (with <|endoftext|> separators), hold out 400. */
  size_t len;
  char *text = build_text(3000, &len, 20);
  char err[512];
  dtr_bpe_opts o;
  dtr_bpe_opts_default(&o);
  o.vocab_size = 600;
  size_t vocab = 0;
  dtr_status st = dtr_bpe_train_text(text, len, "generated", &o, "bpe_trained.json", &vocab, err, sizeof err);
  th_expect(st == DTR_OK && vocab == 600, "train vocab 600: %s (vocab %zu)", st == DTR_OK ? "ok" : err, vocab);
  /* determinism */
  st = dtr_bpe_train_text(text, len, "generated", &o, "bpe_trained2.json", NULL, err, sizeof err);
  json_t *j1 = json_load_file("bpe_trained.json", 0, NULL), *j2 = json_load_file("bpe_trained2.json", 0, NULL);
  th_expect(j1 && j2 && json_equal(j1, j2), "same text, same tokenizer.json");
  json_t *model = json_object_get(j1, "model");
  size_t nmerges = json_array_size(json_object_get(model, "merges"));
  th_expect(json_object_size(json_object_get(model, "vocab")) == 600 && nmerges >= 600 - 258,
            "vocab has 600 entries, %zu merges", nmerges);
  json_decref(j1);
  json_decref(j2);
  free(text);

  dtr_status lst;
  dtr_tokenizer *tok = dtr_tokenizer_load("bpe_trained.json", &lst, err, sizeof err);
  th_expect(tok != NULL, "our tokenizer loads it: %s", tok ? "ok" : err);
  if (!tok) return th_finish();
  th_expect(dtr_tokenizer_token_id(tok, "<|endoftext|>") == 0 && dtr_tokenizer_token_id(tok, "<|pad|>") == 1 &&
                dtr_tokenizer_is_special(tok, 0) && dtr_tokenizer_vocab_size(tok) == 600,
            "special tokens 0 and 1, vocab size 600");
  th_expect(dtr_tokenizer_token_id(tok, "Ġthe") >= 258 && dtr_tokenizer_token_id(tok, "Ġwhale") >= 258,
            "frequent words became tokens (Ġthe %d, Ġwhale %d)", dtr_tokenizer_token_id(tok, "Ġthe"),
            dtr_tokenizer_token_id(tok, "Ġwhale"));

  /* held-out lines (new stream), plus odd inputs the training text never had */
  enum { NH = 400 };
  char *held[NH + 6];
  size_t nh = 0;
  for (; nh < NH; nh++) {
    char line[512];
    gen_line(line, sizeof line);
    held[nh] = strdup(line);
  }
  held[nh++] = strdup("Unseen: \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 zebra xylophone 123456789");
  held[nh++] = strdup("a<|endoftext|>b <|pad|>  \n\n\tend");
  held[nh++] = strdup("   leading spaces and trailing   ");
  held[nh++] = strdup("\n");
  held[nh++] = strdup("x");
  held[nh++] = strdup("The whale's crew, they'll say: \"It's 3.14!\" \xe2\x80\x94 don't.");
  /* round trip with our tokenizer */
  int rt_bad = 0;
  long ntok = 0, nbytes = 0;
  for (size_t i = 0; i < nh; i++) {
    int32_t *ids;
    size_t n;
    char *dec;
    size_t dl;
    if (dtr_tokenizer_encode(tok, held[i], strlen(held[i]), 0, &ids, &n) != DTR_OK) { rt_bad++; continue; }
    ntok += (long)n;
    nbytes += (long)strlen(held[i]);
    if (dtr_tokenizer_decode(tok, ids, n, 0, &dec, &dl) != DTR_OK || strcmp(dec, held[i])) {
      if (rt_bad++ < 3) printf("      round trip: '%s' -> '%s'\n", held[i], dec);
    } else free(dec);
    free(ids);
  }
  th_expect(rt_bad == 0, "decode(encode(x)) == x on %zu held-out lines (%d bad); %.2f bytes/token", nh,
            rt_bad, (double)nbytes / (double)(ntok ? ntok : 1));

  /* the Hugging Face library must agree */
  char pkg[1200];
  snprintf(pkg, sizeof pkg, "%s/node_modules/@anush008/tokenizers/package.json", g_npm);
  int have_node = system("node --version >/dev/null 2>&1") == 0;
  th_expect(have_node && file_exists(pkg),
            "node (%s) and @anush008/tokenizers in %s (%s): run tools/test, which installs them",
            have_node ? "found" : "MISSING", g_npm, file_exists(pkg) ? "found" : "MISSING");
  if (have_node && file_exists(pkg)) {
    FILE *lf = fopen("bpe_lines.jsonl", "wb");
    for (size_t i = 0; lf && i < nh; i++) {
      json_t *s = json_string(held[i]);
      char *d = json_dumps(s, JSON_ENCODE_ANY);
      fprintf(lf, "%s\n", d);
      free(d);
      json_decref(s);
    }
    if (lf) fclose(lf);
    char cmd[4096];
    remove("bpe_oracle_out.txt");
    snprintf(cmd, sizeof cmd,
             "NODE_PATH='%s/node_modules' node '%s/tokenizer/oracle.js' bpe_trained.json bpe_lines.jsonl "
             "bpe_oracle_out.txt 0", g_npm, g_src);
    int rc = system(cmd);
    th_expect(rc == 0, "the HF tokenizers library loads the trained file (oracle exit %d)", rc);
    FILE *of = fopen("bpe_oracle_out.txt", "rb");
    size_t seen = 0, bad_ids = 0, bad_dec = 0;
    char *line = NULL;
    size_t cap = 0;
    while (of && seen < nh && getline(&line, &cap, of) > 0) {
      char *tab = strchr(line, '\t');
      if (!tab) break;
      *tab = 0;
      int32_t *ids;
      size_t n;
      if (dtr_tokenizer_encode(tok, held[seen], strlen(held[seen]), 0, &ids, &n) != DTR_OK) { bad_ids++; seen++; continue; }
      size_t k = 0;
      int same = 1;
      for (char *p = line; *p;) {
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p) break;
        if (k >= n || ids[k] != v) same = 0;
        k++;
        p = e;
      }
      if (!same || k != n) {
        if (bad_ids++ < 3) printf("      ids differ on '%s'\n", held[seen]);
      }
      json_t *d = json_loads(tab + 1, JSON_DECODE_ANY, NULL);
      char *dec;
      if (dtr_tokenizer_decode(tok, ids, n, 1, &dec, NULL) == DTR_OK) {
        if (!d || strcmp(dec, json_string_value(d))) {
          if (bad_dec++ < 3) printf("      decode differs on '%s': '%s'\n", held[seen], dec);
        }
        free(dec);
      } else bad_dec++;
      json_decref(d);
      free(ids);
      seen++;
    }
    free(line);
    if (of) fclose(of);
    th_expect(seen == nh && bad_ids == 0 && bad_dec == 0,
              "dtr == Hugging Face on %zu/%zu held-out lines: %zu id mismatches, %zu decode mismatches",
              seen, nh, bad_ids, bad_dec);
  }
  for (size_t i = 0; i < nh; i++) free(held[i]);
  dtr_tokenizer_free(tok);

  /* speed: ~4 MB, vocab 4096 */
  text = build_text(60000, &len, 50);
  o.vocab_size = 4096;
  double t0 = now_s();
  st = dtr_bpe_train_text(text, len, "generated", &o, "bpe_speed.json", &vocab, err, sizeof err);
  double dt = now_s() - t0;
  th_expect(st == DTR_OK && dt < 60, "train %.1f MB to vocab %zu in %.2f s", (double)len / 1e6, vocab, dt);
  free(text);
  return th_finish();
}
