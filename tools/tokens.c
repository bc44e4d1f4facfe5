/* tokens.c — token streams for the commands that train (train, distill): a
 * text file tokenized once and cached as DIR/NAME.tokens (a small header naming
 * the text and tokenizer files' sizes and times, then int32 ids), reused while
 * both files are unchanged. A path that is itself such a .tokens file is read
 * as it is. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "corpus.h"
#include "tokenizer.h"

#define TOKCACHE_MAGIC "DTRTOK01"

typedef struct {
  char magic[8];
  uint64_t src_size, tok_size;
  int64_t src_mtime, tok_mtime;
  uint64_t n;
} tokcache_hdr;

static int file_stat(const char *path, uint64_t *size, int64_t *mtime) {
  struct stat sb;
  if (stat(path, &sb) || !S_ISREG(sb.st_mode)) return 0;
  *size = (uint64_t)sb.st_size;
  *mtime = (int64_t)sb.st_mtime;
  return 1;
}

/* Tokenizes path (documents separated by <|endoftext|> lines) into *ids,
 * reading OUT/cache/NAME.tokens when it was made from the same text and
 * tokenizer files, else writing it (atomically). */
int cli_load_tokens(const char *prog, dtr_tokenizer *tok, const char *tok_path, const char *path,
                       const char *cache_dir, const char *name, int32_t **ids, size_t *n) {
  tokcache_hdr h, want;
  size_t pl = strlen(path);
  if (pl > 7 && !strcmp(path + pl - 7, ".tokens")) { /* already tokenized */
    FILE *f = fopen(path, "rb");
    if (!f) {
      fprintf(stderr, "%s: %s: cannot read (%s)\n", prog, path, strerror(errno));
      return 0;
    }
    int ok = fread(&h, sizeof h, 1, f) == 1 && !memcmp(h.magic, TOKCACHE_MAGIC, 8) &&
             h.n < ((size_t)1 << 40) && (*ids = malloc((h.n ? h.n : 1) * 4)) != NULL;
    if (ok && fread(*ids, 4, h.n, f) != h.n) {
      free(*ids);
      ok = 0;
    }
    fclose(f);
    if (!ok) {
      fprintf(stderr, "%s: %s: not a dtr token file (header " TOKCACHE_MAGIC
              ", then int32 ids), or truncated\n", prog, path);
      return 0;
    }
    *n = h.n;
    fprintf(stderr, "%s: %s: %zu tokens\n", prog, path, *n);
    return 1;
  }
  memset(&want, 0, sizeof want);
  memcpy(want.magic, TOKCACHE_MAGIC, 8);
  if (!file_stat(path, &want.src_size, &want.src_mtime)) {
    fprintf(stderr, "%s: %s: cannot read (%s)\n", prog, path, strerror(errno));
    return 0;
  }
  file_stat(tok_path, &want.tok_size, &want.tok_mtime);
  char cpath[1200], tmp[1300];
  snprintf(cpath, sizeof cpath, "%s/%s.tokens", cache_dir, name);
  FILE *f = fopen(cpath, "rb");
  if (f) {
    if (fread(&h, sizeof h, 1, f) == 1 && !memcmp(h.magic, want.magic, 8) &&
        h.src_size == want.src_size && h.src_mtime == want.src_mtime &&
        h.tok_size == want.tok_size && h.tok_mtime == want.tok_mtime) {
      *ids = malloc((h.n ? h.n : 1) * 4);
      if (*ids && fread(*ids, 4, h.n, f) == h.n) {
        fclose(f);
        *n = h.n;
        fprintf(stderr, "%s: %s: %zu tokens (cached in %s)\n", prog, path, *n, cpath);
        return 1;
      }
      free(*ids);
    }
    fclose(f);
  }
  char *text, err[512];
  size_t len;
  if (dtr_read_text_file(path, 1, &text, &len, err, sizeof err)) {
    fprintf(stderr, "%s: %s\n", prog, err);
    return 0;
  }
  double t0 = cli_now();
  size_t cap = len / 2 + 1024, cnt = 0;
  int32_t *out = malloc(cap * 4);
  const char *sep = DTR_CORPUS_EOT "\n";
  size_t pos = 0;
  int ok = out != NULL;
  while (ok && pos < len) {
    /* Chunks of about 256 KiB cut just after a document separator. */
    size_t end = pos + 262144;
    if (end >= len)
      end = len;
    else {
      const char *e = strstr(text + end, sep);
      end = e ? (size_t)(e - text) + strlen(sep) : len;
    }
    int32_t *piece;
    size_t np;
    if (dtr_tokenizer_encode(tok, text + pos, end - pos, 0, &piece, &np)) {
      fprintf(stderr, "%s: %s: %s\n", prog, path, dtr_tokenizer_error(tok));
      ok = 0;
      break;
    }
    if (cnt + np > cap) {
      while (cnt + np > cap) cap *= 2;
      int32_t *o2 = realloc(out, cap * 4);
      if (!o2) ok = 0;
      else out = o2;
    }
    if (ok) memcpy(out + cnt, piece, np * 4);
    cnt += ok ? np : 0;
    free(piece);
    pos = end;
  }
  free(text);
  if (!ok) {
    free(out);
    return 0;
  }
  fprintf(stderr, "%s: %s: %zu tokens (tokenized in %.1f s)\n", prog, path, cnt,
          cli_now() - t0);
  want.n = cnt;
  snprintf(tmp, sizeof tmp, "%s.tmp", cpath);
  f = fopen(tmp, "wb");
  if (f && fwrite(&want, sizeof want, 1, f) == 1 && fwrite(out, 4, cnt, f) == cnt &&
      fclose(f) == 0) {
    if (rename(tmp, cpath)) fprintf(stderr, "%s: warning: cannot write %s\n", prog, cpath);
  } else {
    if (f) fclose(f);
    fprintf(stderr, "%s: warning: cannot write the token cache %s\n", prog, cpath);
  }
  *ids = out;
  *n = cnt;
  return 1;
}

