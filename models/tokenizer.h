/* tokenizer.h — text <-> token ids from a Hugging Face tokenizer.json.
 *
 * Owns: loading tokenizer.json (jansson), encoding text to ids and decoding ids
 * back to text, the way the Hugging Face `tokenizers` library does it, for the
 * BPE model family:
 *   - byte-level BPE (GPT-2, Llama 3, Qwen2/3): Split(Regex) / ByteLevel
 *     pre-tokenizers (PCRE2, UTF + UCP, JIT when available), merges in both the
 *     "a b" and the ["a","b"] forms, ignore_merges, ByteLevel decoder;
 *   - SentencePiece-style BPE (Llama 2, TinyLlama): Prepend/Replace normalizers,
 *     Metaspace pre-tokenizer, byte_fallback <0xXX>, unk/fuse_unk, and the
 *     Replace/ByteFallback/Fuse/Strip/Metaspace decoders;
 *   - added tokens (matched in the raw text before anything else, leftmost
 *     longest; lstrip/rstrip/single_word honoured), post-processors
 *     TemplateProcessing, Bert/RobertaProcessing and ByteLevel (add_special).
 * The NFC normalizer (Qwen) is accepted but NOT applied: text that is not
 * already NFC is passed through as is (and may then tokenize differently from
 * Hugging Face). Other model types (WordPiece, Unigram, WordLevel) and other
 * normalizers/pre-tokenizers/decoders fail to load with DTR_ERR_UNSUPPORTED.
 *
 * Knows files and formats only: no device code. A tokenizer is not thread safe
 * (encode uses a per-tokenizer word cache and regex match data).
 */
#ifndef DTR_TOKENIZER_H
#define DTR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "dtr_runtime.h" /* dtr_status only */

typedef struct dtr_tokenizer dtr_tokenizer;

/* Loads path (a tokenizer.json). On failure returns NULL, sets *st (may be NULL)
 * and writes one line naming the file and the problem into err (may be NULL). */
dtr_tokenizer *dtr_tokenizer_load(const char *path, dtr_status *st, char *err,
                                  size_t errlen);
void dtr_tokenizer_free(dtr_tokenizer *tok);

/* Encodes len bytes of UTF-8 text (need not be NUL-terminated). *ids receives a
 * malloc'd array (free() it; non-NULL even when *n is 0) of *n ids. add_special
 * applies the post-processor (e.g. a BOS token) as HF's add_special_tokens does.
 * Invalid UTF-8 gives DTR_ERR_INVALID; see dtr_tokenizer_error(). */
dtr_status dtr_tokenizer_encode(dtr_tokenizer *tok, const char *text, size_t len,
                                int add_special, int32_t **ids, size_t *n);

/* Decodes n ids into a malloc'd NUL-terminated string *out (free() it); *out_len
 * (may be NULL) receives its length. skip_special drops added tokens marked
 * special. Invalid UTF-8 produced by partial byte tokens becomes U+FFFD, as in
 * HF. An id outside the vocabulary gives DTR_ERR_INVALID. */
dtr_status dtr_tokenizer_decode(dtr_tokenizer *tok, const int32_t *ids, size_t n,
                                int skip_special, char **out, size_t *out_len);

/* The message of the last failed encode/decode ("" if none). */
const char *dtr_tokenizer_error(const dtr_tokenizer *tok);

/* One past the largest id (model vocabulary and added tokens): the number of
 * rows an embedding table needs at least. */
size_t dtr_tokenizer_vocab_size(const dtr_tokenizer *tok);
/* The id of a token given in its vocabulary spelling (added tokens such as
 * "<|endoftext|>" first, then the model vocabulary, e.g. "Ġworld"); -1 if none. */
int32_t dtr_tokenizer_token_id(const dtr_tokenizer *tok, const char *s);
/* The vocabulary spelling of id (NUL-terminated, owned by tok); NULL if none. */
const char *dtr_tokenizer_token_str(const dtr_tokenizer *tok, int32_t id);
/* 1 when id is an added token marked "special" (e.g. <|im_end|>). */
int dtr_tokenizer_is_special(const dtr_tokenizer *tok, int32_t id);

#endif
