/* bpe_train.h — trains a byte-level BPE tokenizer and writes it as tokenizer.json.
 *
 * Owns: the trainer behind `dtr tokenizer train`. The output is a standard Hugging
 * Face tokenizer.json (GPT-2 byte-to-unicode alphabet, Split(Regex, Isolated) +
 * ByteLevel(use_regex=false) pre-tokenizer with the Llama 3 regex, ByteLevel
 * decoder, BPE model with "a b" merges, special tokens as added tokens) that the
 * `tokenizers` library and models/tokenizer.h both load and agree on.
 * Ids: the special tokens first (0, 1, ...), then the 256 byte tokens in byte
 * order, then one id per merge (a merge whose result already exists reuses it).
 *
 * Algorithm: special tokens are cut out of the text, the rest is pre-tokenized
 * with the regex (PCRE2) and the distinct pieces counted; merges then work on
 * the distinct pieces: pair counts weighted by piece frequency, a max-heap of
 * pairs with lazy invalidation, and per pair the list of pieces that hold it, so
 * one merge only touches the pieces containing its pair. Ties go to the pair
 * with the smaller ids (deterministic).
 * Knows files and formats only: no device code.
 */
#ifndef DTR_BPE_TRAIN_H
#define DTR_BPE_TRAIN_H

#include <stddef.h>

#include "dtr_runtime.h" /* dtr_status only */

/* The Llama 3 pre-tokenizer regex (as in its tokenizer.json). */
#define DTR_BPE_REGEX                                                               \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "        \
  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct {
  size_t vocab_size;          /* total ids, specials included (>= nspecial + 256) */
  const char *const *special; /* NULL: {"<|endoftext|>", "<|pad|>"} */
  size_t nspecial;
  size_t min_frequency;       /* a pair seen fewer times is never merged (default 2) */
  int verbose;                /* progress lines on stdout */
} dtr_bpe_opts;

void dtr_bpe_opts_default(dtr_bpe_opts *o);

/* Trains on len bytes of UTF-8 text and writes out_path (tokenizer.json). The
 * vocabulary may end smaller than asked when the text runs out of pairs.
 * *final_vocab (may be NULL) receives the size reached. src names the text in
 * error messages. */
dtr_status dtr_bpe_train_text(const char *text, size_t len, const char *src,
                              const dtr_bpe_opts *o, const char *out_path,
                              size_t *final_vocab, char *err, size_t errlen);

/* The same on a file (empty or non-UTF-8 input is an error naming it). */
dtr_status dtr_bpe_train_file(const char *in_path, const dtr_bpe_opts *o,
                              const char *out_path, size_t *final_vocab, char *err,
                              size_t errlen);

#endif
