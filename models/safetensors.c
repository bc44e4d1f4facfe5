/* safetensors.c — the .safetensors reader (mmap, validation, lookup, F32
 * conversion) and writer (single file and HF-style shards + index, each file
 * written atomically). See safetensors.h for the format and the contracts. */
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "safetensors data is little-endian; dtr assumes a little-endian host"
#endif

/* A header larger than this is refused (the Rust reference uses the same cap),
 * so a corrupt length cannot make the JSON parser walk gigabytes. */
#define ST_MAX_HEADER (100u << 20)

static dtr_status fail(char *err, size_t errlen, dtr_status s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static dtr_status fail(char *err, size_t errlen, dtr_status s, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    /* one line: a message built from JSON error text must not break it */
    for (char *p = err; *p; p++)
      if (*p == '\n' || *p == '\r') *p = ' ';
  }
  return s;
}

/* ---- dtypes ------------------------------------------------------------------ */

static const struct {
  const char *name;
  size_t size;
} dtypes[] = {
    [DTR_DTYPE_F32] = {"F32", 4},         [DTR_DTYPE_F16] = {"F16", 2},
    [DTR_DTYPE_BF16] = {"BF16", 2},       [DTR_DTYPE_F64] = {"F64", 8},
    [DTR_DTYPE_I64] = {"I64", 8},         [DTR_DTYPE_I32] = {"I32", 4},
    [DTR_DTYPE_I16] = {"I16", 2},         [DTR_DTYPE_I8] = {"I8", 1},
    [DTR_DTYPE_U64] = {"U64", 8},         [DTR_DTYPE_U32] = {"U32", 4},
    [DTR_DTYPE_U16] = {"U16", 2},         [DTR_DTYPE_U8] = {"U8", 1},
    [DTR_DTYPE_BOOL] = {"BOOL", 1},       [DTR_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [DTR_DTYPE_F8_E5M2] = {"F8_E5M2", 1}, [DTR_DTYPE_UNKNOWN] = {"?", 0},
};

const char *dtr_dtype_name(dtr_dtype t) {
  return (unsigned)t <= DTR_DTYPE_UNKNOWN ? dtypes[t].name : "?";
}
size_t dtr_dtype_size(dtr_dtype t) { return (unsigned)t <= DTR_DTYPE_UNKNOWN ? dtypes[t].size : 0; }
dtr_dtype dtr_dtype_parse(const char *s) {
  for (int i = 0; i < DTR_DTYPE_UNKNOWN; i++)
    if (s && !strcmp(s, dtypes[i].name)) return (dtr_dtype)i;
  return DTR_DTYPE_UNKNOWN;
}

static float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

float dtr_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

float dtr_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13)); /* inf, NaN (payload kept) */
  if (e) return bits_f32(sign | ((e + 112) << 23) | (m << 13));   /* rebias 15 -> 127 */
  if (!m) return bits_f32(sign);
  /* subnormal m * 2^-24: normalise so the leading 1 reaches bit 10; each shift
   * lowers the exponent of the (would-be) normal number 2^-14 by one */
  e = 113;
  while (!(m & 0x400)) {
    m <<= 1;
    e--;
  }
  return bits_f32(sign | (e << 23) | ((m & 0x3ff) << 13));
}

uint16_t dtr_f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
  x += 0x7fffu + ((x >> 16) & 1); /* round to nearest, ties to even; overflow -> inf */
  return (uint16_t)(x >> 16);
}

uint16_t dtr_f32_to_f16(float f) {
  uint32_t x = f32_bits(f), sign = (x >> 16) & 0x8000;
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((x >> 13) & 0x3ff));
  if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);        /* >= 65520 rounds to inf */
  if (x >= 0x38800000u) {                                        /* normal: >= 2^-14 */
    uint32_t r = x - 0x38000000u, h = r >> 13, rem = r & 0x1fff; /* rebias 127 -> 15 */
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t e = x >> 23;
  if (e < 102) return (uint16_t)sign; /* below 2^-25: rounds to zero */
  /* subnormal: count of 2^-24 units = m * 2^(e-150) / 2^-24 = m >> (126 - e) */
  uint32_t m = (x & 0x7fffff) | 0x800000, sh = 126 - e;
  uint32_t h = m >> sh, rem = m & ((1u << sh) - 1), half = 1u << (sh - 1);
  if (rem > half || (rem == half && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

/* ---- reader ------------------------------------------------------------------ */

typedef struct st_file {
  char *path;
  void *map;
  size_t size;
  json_t *header; /* keeps tensor names and dtype strings alive */
  json_t *meta;   /* borrowed "__metadata__" or NULL */
  const uint8_t *data;
  uint64_t data_size;
} st_file;

struct dtr_safetensors {
  char *path;
  st_file *files;
  size_t nfiles;
  dtr_st_tensor *t; /* by file, then offset */
  dtr_st_tensor **by_name;
  size_t n;
};

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
  if (a && b > UINT64_MAX / a) return 0;
  *out = a * b;
  return 1;
}

static void shape_str(char *s, size_t n, const uint64_t *shape, uint32_t ndim) {
  size_t k = (size_t)snprintf(s, n, "[");
  for (uint32_t i = 0; i < ndim && k < n; i++)
    k += (size_t)snprintf(s + k, n - k, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
  if (k < n) snprintf(s + k, n - k, "]");
}

static int get_u64(json_t *v, uint64_t *out) {
  if (!json_is_integer(v) || json_integer_value(v) < 0) return 0;
  *out = (uint64_t)json_integer_value(v);
  return 1;
}

/* Validates one header entry of file f and describes it in *t. */
static dtr_status parse_tensor(const st_file *f, const char *name, json_t *v, dtr_st_tensor *t,
                               uint64_t *begin, char *err, size_t errlen) {
  const char *fn = f->path;
  if (!json_is_object(v))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", fn,
                name);
  json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
         *off = json_object_get(v, "data_offsets");
  if (!json_is_string(dt))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: tensor '%s' has no dtype string", fn, name);
  if (!json_is_array(sh))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: tensor '%s' has no shape array", fn, name);
  if (!json_is_array(off) || json_array_size(off) != 2)
    return fail(err, errlen, DTR_ERR_FORMAT,
                "%s: tensor '%s' has no data_offsets array of two integers", fn, name);
  memset(t, 0, sizeof *t);
  t->name = name;
  t->file = f->path;
  t->dtype_name = json_string_value(dt);
  t->dtype = dtr_dtype_parse(t->dtype_name);
  size_t nd = json_array_size(sh);
  if (nd > DTR_ST_MAX_DIMS)
    return fail(err, errlen, DTR_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions (max %d)", fn,
                name, nd, DTR_ST_MAX_DIMS);
  t->ndim = (uint32_t)nd;
  t->numel = 1;
  for (size_t i = 0; i < nd; i++) {
    if (!get_u64(json_array_get(sh, i), &t->shape[i]))
      return fail(err, errlen, DTR_ERR_FORMAT,
                  "%s: tensor '%s': shape[%zu] is not a non-negative integer", fn, name, i);
    if (!mul_ok(t->numel, t->shape[i], &t->numel))
      return fail(err, errlen, DTR_ERR_FORMAT, "%s: tensor '%s': shape overflows", fn, name);
  }
  uint64_t b, e;
  if (!get_u64(json_array_get(off, 0), &b) || !get_u64(json_array_get(off, 1), &e))
    return fail(err, errlen, DTR_ERR_FORMAT,
                "%s: tensor '%s': data_offsets are not non-negative integers", fn, name);
  if (b > e)
    return fail(err, errlen, DTR_ERR_FORMAT,
                "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", fn, name,
                (unsigned long long)b, (unsigned long long)e);
  if (e > f->data_size)
    return fail(err, errlen, DTR_ERR_FORMAT,
                "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section of %llu "
                "bytes",
                fn, name, (unsigned long long)b, (unsigned long long)e,
                (unsigned long long)f->data_size);
  size_t es = dtr_dtype_size(t->dtype);
  uint64_t need;
  if (es && (!mul_ok(t->numel, es, &need) || need != e - b)) {
    char s[160];
    shape_str(s, sizeof s, t->shape, t->ndim);
    return fail(err, errlen, DTR_ERR_FORMAT,
                "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape %s of %s "
                "needs %llu",
                fn, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)(e - b),
                s, t->dtype_name, (unsigned long long)(t->numel * es));
  }
  t->nbytes = e - b;
  t->data = f->data + b;
  *begin = b;
  return DTR_OK;
}

/* Maps path into f and validates its whole header. */
static dtr_status open_file(const char *path, st_file *f, char *err, size_t errlen) {
  memset(f, 0, sizeof *f);
  if (!(f->path = strdup(path))) return fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, errlen, DTR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
    close(fd);
    return fail(err, errlen, DTR_ERR_IO, "%s: not a regular file", path);
  }
  if (sb.st_size < 8) {
    close(fd);
    return fail(err, errlen, DTR_ERR_FORMAT,
                "%s: file is %lld bytes, shorter than the 8-byte header length", path,
                (long long)sb.st_size);
  }
  f->size = (size_t)sb.st_size;
  void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (m == MAP_FAILED)
    return fail(err, errlen, DTR_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
  f->map = m;
  const uint8_t *p = m;
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = hl << 8 | p[i];
  if (hl > f->size - 8)
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: header length %llu exceeds file size %zu", path,
                (unsigned long long)hl, f->size);
  if (hl > ST_MAX_HEADER)
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit",
                path, (unsigned long long)hl, ST_MAX_HEADER);
  f->data = p + 8 + hl;
  f->data_size = f->size - 8 - hl;
  json_error_t je;
  f->header = json_loadb((const char *)p + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
  if (!f->header)
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: header is not valid JSON (%s at byte %d)", path,
                je.text, je.position);
  if (!json_is_object(f->header))
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: header is not a JSON object", path);
  const char *k;
  json_t *v;
  json_object_foreach(f->header, k, v) {
    if (!strcmp(k, "__metadata__")) {
      if (!json_is_object(v))
        return fail(err, errlen, DTR_ERR_FORMAT, "%s: __metadata__ is not an object", path);
      const char *mk;
      json_t *mv;
      json_object_foreach(v, mk, mv) {
        if (!json_is_string(mv))
          return fail(err, errlen, DTR_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string",
                      path, mk);
      }
      f->meta = v;
      continue;
    }
    dtr_st_tensor t;
    uint64_t b;
    dtr_status s = parse_tensor(f, k, v, &t, &b, err, errlen);
    if (s) return s;
  }
  return DTR_OK;
}

static void close_file(st_file *f) {
  if (f->map) munmap(f->map, f->size);
  json_decref(f->header);
  free(f->path);
}

void dtr_safetensors_close(dtr_safetensors *st) {
  if (!st) return;
  for (size_t i = 0; i < st->nfiles; i++)
    close_file(&st->files[i]);
  free(st->files);
  free(st->t);
  free(st->by_name);
  free(st->path);
  free(st);
}

/* Sorting: tensors by (file, begin offset, name); the file index and the
 * offset are carried in a temporary array beside each tensor. */
typedef struct sort_item {
  dtr_st_tensor t;
  size_t fi;
  uint64_t begin;
} sort_item;
static int cmp_item(const void *a, const void *b) {
  const sort_item *x = a, *y = b;
  if (x->fi != y->fi) return x->fi < y->fi ? -1 : 1;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  /* an empty tensor sits where the next one begins: it was written first */
  if (x->t.nbytes != y->t.nbytes) return x->t.nbytes < y->t.nbytes ? -1 : 1;
  return strcmp(x->t.name, y->t.name);
}
static int cmp_name(const void *a, const void *b) {
  return strcmp((*(dtr_st_tensor *const *)a)->name, (*(dtr_st_tensor *const *)b)->name);
}
static int cmp_key(const void *key, const void *b) {
  return strcmp(key, (*(dtr_st_tensor *const *)b)->name);
}

static dtr_status add_file(dtr_safetensors *st, const char *path, size_t *fi, char *err,
                           size_t errlen) {
  st_file *nf = realloc(st->files, (st->nfiles + 1) * sizeof *nf);
  if (!nf) return fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
  st->files = nf;
  *fi = st->nfiles++;
  return open_file(path, &st->files[*fi], err, errlen);
}

static int is_dir(const char *p) {
  struct stat sb;
  return !stat(p, &sb) && S_ISDIR(sb.st_mode);
}
static int exists(const char *p) {
  struct stat sb;
  return !stat(p, &sb);
}
static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *s = malloc(a + b + 2);
  if (!s) return NULL;
  memcpy(s, dir, a);
  size_t k = a;
  if (a && dir[a - 1] != '/') s[k++] = '/';
  memcpy(s + k, name, b + 1);
  return s;
}

/* Reads the index, maps every shard it names once, and collects the tensors of
 * the weight_map into items (count *n). */
static dtr_status open_index(dtr_safetensors *st, const char *ipath, sort_item **items, size_t *n,
                             char *err, size_t errlen) {
  json_error_t je;
  json_t *idx = json_load_file(ipath, JSON_REJECT_DUPLICATES, &je);
  if (!idx) {
    if (!exists(ipath))
      return fail(err, errlen, DTR_ERR_IO, "%s: cannot open: %s", ipath, strerror(ENOENT));
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: not valid JSON (%s at line %d column %d)", ipath,
                je.text, je.line, je.column);
  }
  dtr_status s = DTR_OK;
  char *dir = strdup(ipath), *path = NULL;
  json_t *wm = json_is_object(idx) ? json_object_get(idx, "weight_map") : NULL;
  if (!dir) {
    s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", ipath);
    goto done;
  }
  char *slash = strrchr(dir, '/');
  if (slash)
    slash[1] = 0;
  else
    strcpy(dir, ".");
  if (!json_is_object(wm)) {
    s = fail(err, errlen, DTR_ERR_FORMAT, "%s: no \"weight_map\" object", ipath);
    goto done;
  }
  size_t cap = json_object_size(wm);
  *items = calloc(cap ? cap : 1, sizeof **items);
  if (!*items) {
    s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", ipath);
    goto done;
  }
  const char *name;
  json_t *v;
  json_object_foreach(wm, name, v) {
    const char *shard = json_string_value(v);
    if (!shard || !*shard || shard[0] == '/' || strstr(shard, "..")) {
      s = fail(err, errlen, DTR_ERR_FORMAT,
               "%s: weight_map entry '%s' is not a shard file name in the index's directory", ipath,
               name);
      goto done;
    }
    free(path);
    if (!(path = join(dir, shard))) {
      s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", ipath);
      goto done;
    }
    size_t fi = st->nfiles;
    for (size_t i = 0; i < st->nfiles; i++)
      if (!strcmp(st->files[i].path, path)) fi = i;
    if (fi == st->nfiles) {
      if (!exists(path)) {
        s = fail(err, errlen, DTR_ERR_IO, "%s: shard '%s' (of tensor '%s') is missing: %s", ipath,
                 shard, name, path);
        goto done;
      }
      if ((s = add_file(st, path, &fi, err, errlen))) goto done;
    }
    st_file *f = &st->files[fi];
    json_t *e = json_object_get(f->header, name);
    if (!e || !strcmp(name, "__metadata__")) {
      s = fail(err, errlen, DTR_ERR_FORMAT,
               "%s: tensor '%s' listed in %s is missing from the shard", f->path, name, ipath);
      goto done;
    }
    /* the tensor's name is taken from the shard header, which outlives idx */
    const char *key = json_object_iter_key(json_object_iter_at(f->header, name));
    sort_item *it = &(*items)[(*n)++];
    it->fi = fi;
    if ((s = parse_tensor(f, key, e, &it->t, &it->begin, err, errlen))) goto done;
  }
done:
  free(path);
  free(dir);
  json_decref(idx);
  return s;
}

dtr_status dtr_safetensors_open(const char *path, dtr_safetensors **out, char *err, size_t errlen) {
  *out = NULL;
  if (!path) return fail(err, errlen, DTR_ERR_INVALID, "(null): no path given");
  dtr_safetensors *st = calloc(1, sizeof *st);
  sort_item *items = NULL;
  char *file = NULL;
  size_t n = 0;
  dtr_status s = DTR_OK;
  if (!st || !(st->path = strdup(path))) {
    s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
    goto fail;
  }
  int index = ends_with(path, ".json");
  if (is_dir(path)) {
    index = 0;
    file = join(path, "model.safetensors");
    if (file && !exists(file)) {
      free(file);
      file = join(path, "model.safetensors.index.json");
      index = 1;
      if (file && !exists(file)) {
        s = fail(err, errlen, DTR_ERR_IO,
                 "%s: directory holds neither model.safetensors nor "
                 "model.safetensors.index.json",
                 path);
        goto fail;
      }
    }
  } else {
    file = strdup(path);
  }
  if (!file) {
    s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
    goto fail;
  }
  if (index) {
    if ((s = open_index(st, file, &items, &n, err, errlen))) goto fail;
  } else {
    size_t fi;
    if ((s = add_file(st, file, &fi, err, errlen))) goto fail;
    st_file *f = &st->files[0];
    items = calloc(json_object_size(f->header) + 1, sizeof *items);
    if (!items) {
      s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", file);
      goto fail;
    }
    const char *k;
    json_t *v;
    json_object_foreach(f->header, k, v) {
      if (!strcmp(k, "__metadata__")) continue;
      items[n].fi = 0;
      if ((s = parse_tensor(f, k, v, &items[n].t, &items[n].begin, err, errlen))) goto fail;
      n++;
    }
  }
  qsort(items, n, sizeof *items, cmp_item);
  st->t = malloc((n ? n : 1) * sizeof *st->t);
  st->by_name = malloc((n ? n : 1) * sizeof *st->by_name);
  if (!st->t || !st->by_name) {
    s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    st->t[i] = items[i].t;
    st->by_name[i] = &st->t[i];
  }
  st->n = n;
  qsort(st->by_name, n, sizeof *st->by_name, cmp_name);
  free(items);
  free(file);
  *out = st;
  return DTR_OK;
fail:
  free(items);
  free(file);
  dtr_safetensors_close(st);
  return s;
}

const char *dtr_safetensors_path(const dtr_safetensors *st) { return st->path; }
size_t dtr_safetensors_count(const dtr_safetensors *st) { return st->n; }
const dtr_st_tensor *dtr_safetensors_at(const dtr_safetensors *st, size_t i) {
  return i < st->n ? &st->t[i] : NULL;
}
const dtr_st_tensor *dtr_safetensors_find(const dtr_safetensors *st, const char *name) {
  if (!name || !st->n) return NULL;
  dtr_st_tensor **p = bsearch(name, st->by_name, st->n, sizeof *st->by_name, cmp_key);
  return p ? *p : NULL;
}
dtr_status dtr_safetensors_get(const dtr_safetensors *st, const char *name,
                               const dtr_st_tensor **out, char *err, size_t errlen) {
  *out = dtr_safetensors_find(st, name);
  if (!*out)
    return fail(err, errlen, DTR_ERR_FORMAT, "%s: no tensor '%s'", st->path, name ? name : "");
  return DTR_OK;
}
const char *dtr_safetensors_metadata(const dtr_safetensors *st, const char *key) {
  for (size_t i = 0; i < st->nfiles; i++) {
    json_t *v = st->files[i].meta ? json_object_get(st->files[i].meta, key) : NULL;
    if (v) return json_string_value(v);
  }
  return NULL;
}

dtr_status dtr_st_tensor_to_f32(const dtr_st_tensor *t, float *dst, size_t n, char *err,
                                size_t errlen) {
  if (n != t->numel)
    return fail(err, errlen, DTR_ERR_INVALID,
                "%s: tensor '%s' has %llu elements, the destination holds %zu", t->file, t->name,
                (unsigned long long)t->numel, n);
  const uint8_t *p = t->data;
  switch (t->dtype) {
  case DTR_DTYPE_F32:
    memcpy(dst, p, n * 4);
    return DTR_OK;
  case DTR_DTYPE_F16:
  case DTR_DTYPE_BF16:
    for (size_t i = 0; i < n; i++) {
      uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8); /* unaligned-safe */
      dst[i] = t->dtype == DTR_DTYPE_F16 ? dtr_f16_to_f32(h) : dtr_bf16_to_f32(h);
    }
    return DTR_OK;
  default:
    return fail(err, errlen, DTR_ERR_UNSUPPORTED,
                "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 are supported", t->file,
                t->name, t->dtype_name);
  }
}

dtr_status dtr_safetensors_read_f32(const dtr_safetensors *st, const char *name, float *dst,
                                    size_t n, char *err, size_t errlen) {
  const dtr_st_tensor *t;
  dtr_status s = dtr_safetensors_get(st, name, &t, err, errlen);
  return s ? s : dtr_st_tensor_to_f32(t, dst, n, err, errlen);
}

/* ---- writer ------------------------------------------------------------------ */

typedef struct w_entry {
  char *name;
  dtr_dtype dtype;
  uint32_t ndim;
  uint64_t shape[DTR_ST_MAX_DIMS];
  uint64_t nbytes;
  const void *data;
  void *own; /* the copy of add_copy, else NULL */
} w_entry;

struct dtr_st_writer {
  w_entry *e;
  size_t n, cap;
  json_t *meta;
};

dtr_st_writer *dtr_st_writer_create(void) {
  dtr_st_writer *w = calloc(1, sizeof *w);
  if (w && !(w->meta = json_object())) {
    free(w);
    return NULL;
  }
  return w;
}

void dtr_st_writer_destroy(dtr_st_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) {
    free(w->e[i].name);
    free(w->e[i].own);
  }
  free(w->e);
  json_decref(w->meta);
  free(w);
}

static dtr_status writer_add(dtr_st_writer *w, const char *name, dtr_dtype dtype, uint32_t ndim,
                             const uint64_t *shape, const void *data, int copy, char *err,
                             size_t errlen) {
  const char *nm = name ? name : "(null)";
  if (!name || !*name || !strcmp(name, "__metadata__"))
    return fail(err, errlen, DTR_ERR_INVALID, "safetensors writer: invalid tensor name '%s'", nm);
  size_t es = dtr_dtype_size(dtype);
  if (!es)
    return fail(err, errlen, DTR_ERR_INVALID, "safetensors writer: tensor '%s': unknown dtype", nm);
  if (ndim > DTR_ST_MAX_DIMS || (ndim && !shape))
    return fail(err, errlen, DTR_ERR_INVALID, "safetensors writer: tensor '%s': bad shape", nm);
  uint64_t bytes = es;
  for (uint32_t i = 0; i < ndim; i++)
    if (!mul_ok(bytes, shape[i], &bytes))
      return fail(err, errlen, DTR_ERR_INVALID, "safetensors writer: tensor '%s': shape overflows",
                  nm);
  if (bytes && !data)
    return fail(err, errlen, DTR_ERR_INVALID, "safetensors writer: tensor '%s': no data", nm);
  for (size_t i = 0; i < w->n; i++)
    if (!strcmp(w->e[i].name, name))
      return fail(err, errlen, DTR_ERR_INVALID, "safetensors writer: duplicate tensor '%s'", nm);
  if (w->n == w->cap) {
    size_t nc = w->cap ? 2 * w->cap : 64;
    w_entry *ne = realloc(w->e, nc * sizeof *ne);
    if (!ne) return fail(err, errlen, DTR_ERR_OOM, "safetensors writer: out of memory");
    w->e = ne;
    w->cap = nc;
  }
  w_entry e = {.dtype = dtype, .ndim = ndim, .nbytes = bytes, .data = data};
  if (ndim) memcpy(e.shape, shape, ndim * sizeof *shape);
  e.name = strdup(name);
  if (copy && bytes) {
    if (bytes > SIZE_MAX || !(e.own = malloc((size_t)bytes))) {
      free(e.name);
      return fail(err, errlen, DTR_ERR_OOM, "safetensors writer: out of memory");
    }
    memcpy(e.own, data, (size_t)bytes);
    e.data = e.own;
  }
  if (!e.name) {
    free(e.own);
    return fail(err, errlen, DTR_ERR_OOM, "safetensors writer: out of memory");
  }
  w->e[w->n++] = e;
  return DTR_OK;
}

dtr_status dtr_st_writer_add(dtr_st_writer *w, const char *name, dtr_dtype dtype, uint32_t ndim,
                             const uint64_t *shape, const void *data, char *err, size_t errlen) {
  return writer_add(w, name, dtype, ndim, shape, data, 0, err, errlen);
}
dtr_status dtr_st_writer_add_copy(dtr_st_writer *w, const char *name, dtr_dtype dtype,
                                  uint32_t ndim, const uint64_t *shape, const void *data, char *err,
                                  size_t errlen) {
  return writer_add(w, name, dtype, ndim, shape, data, 1, err, errlen);
}
dtr_status dtr_st_writer_set_metadata(dtr_st_writer *w, const char *key, const char *value) {
  if (!key || !value) return DTR_ERR_INVALID;
  return json_object_set_new(w->meta, key, json_string(value)) ? DTR_ERR_OOM : DTR_OK;
}

static int write_all(int fd, const void *buf, uint64_t n) {
  const uint8_t *p = buf;
  while (n) {
    size_t k = n > (1u << 30) ? (1u << 30) : (size_t)n;
    ssize_t r = write(fd, p, k);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += r;
    n -= (uint64_t)r;
  }
  return 0;
}

/* Durability of the rename: fsync the directory that holds path (best effort). */
static void sync_dir(const char *path) {
  char *d = strdup(path);
  if (!d) return;
  char *slash = strrchr(d, '/');
  if (slash == d)
    slash[1] = 0; /* a file in "/" */
  else if (slash)
    *slash = 0;
  int fd = open(slash ? d : ".", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(d);
}

/* Writes parts (head bytes, then entries [i0, i1)) to path.tmp, fsyncs and
 * renames it over path. */
static dtr_status write_atomic(const char *path, const void *head, size_t headlen, const w_entry *e,
                               size_t i0, size_t i1, char *err, size_t errlen) {
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 5);
  if (!tmp) return fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
  memcpy(tmp, path, pl);
  memcpy(tmp + pl, ".tmp", 5);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    dtr_status s = fail(err, errlen, DTR_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return s;
  }
  int bad = write_all(fd, head, headlen);
  for (size_t i = i0; i < i1 && !bad; i++)
    if (e[i].nbytes) bad = write_all(fd, e[i].data, e[i].nbytes);
  if (!bad) bad = fsync(fd);
  int e1 = errno;
  if (close(fd) && !bad) {
    bad = 1;
    e1 = errno;
  }
  if (!bad && rename(tmp, path)) {
    bad = 1;
    e1 = errno;
  }
  if (bad) {
    unlink(tmp);
    free(tmp);
    return fail(err, errlen, DTR_ERR_IO, "%s: write failed: %s", path, strerror(e1));
  }
  free(tmp);
  sync_dir(path);
  return DTR_OK;
}

/* Builds the 8-byte length + space-padded header of entries [i0, i1). */
static dtr_status build_header(const dtr_st_writer *w, size_t i0, size_t i1, char **out,
                               size_t *outlen, const char *path, char *err, size_t errlen) {
  json_t *h = json_object();
  int bad = !h;
  if (!bad && json_object_size(w->meta)) bad = json_object_set(h, "__metadata__", w->meta);
  uint64_t off = 0;
  for (size_t i = i0; i < i1 && !bad; i++) {
    const w_entry *e = &w->e[i];
    json_t *sh = json_array();
    bad = !sh;
    for (uint32_t d = 0; d < e->ndim && !bad; d++)
      bad = json_array_append_new(sh, json_integer((json_int_t)e->shape[d]));
    json_t *t = bad ? NULL
                    : json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtr_dtype_name(e->dtype), "shape",
                                sh, "data_offsets", (json_int_t)off, (json_int_t)(off + e->nbytes));
    if (!t) {
      if (bad) json_decref(sh);
      bad = 1;
    } else {
      bad = json_object_set_new(h, e->name, t);
    }
    off += e->nbytes;
  }
  char *js = bad ? NULL : json_dumps(h, JSON_COMPACT);
  json_decref(h);
  if (!js) return fail(err, errlen, DTR_ERR_OOM, "%s: out of memory building the header", path);
  size_t jl = strlen(js), pl = (jl + 7) & ~(size_t)7;
  char *buf = malloc(8 + pl);
  if (!buf) {
    free(js);
    return fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", path);
  }
  for (int i = 0; i < 8; i++)
    buf[i] = (char)(((uint64_t)pl >> (8 * i)) & 0xff);
  memcpy(buf + 8, js, jl);
  memset(buf + 8 + jl, ' ', pl - jl);
  free(js);
  *out = buf;
  *outlen = 8 + pl;
  return DTR_OK;
}

static dtr_status save_range(const dtr_st_writer *w, const char *path, size_t i0, size_t i1,
                             char *err, size_t errlen) {
  char *head = NULL;
  size_t hl = 0;
  dtr_status s = build_header(w, i0, i1, &head, &hl, path, err, errlen);
  if (s) return s;
  s = write_atomic(path, head, hl, w->e, i0, i1, err, errlen);
  free(head);
  return s;
}

dtr_status dtr_st_writer_save(const dtr_st_writer *w, const char *path, char *err, size_t errlen) {
  if (!path) return fail(err, errlen, DTR_ERR_INVALID, "(null): no path given");
  return save_range(w, path, 0, w->n, err, errlen);
}

/* Removes files of a previous save in dir that the new layout does not use:
 * model.safetensors (keep_single 0), the index (keep_single 1), and shards
 * model-XXXXX-of-YYYYY.safetensors whose YYYYY is not nshards. */
static void remove_stale(const char *dir, int keep_single, unsigned nshards) {
  char *p = join(dir, keep_single ? "model.safetensors.index.json" : "model.safetensors");
  if (p) unlink(p);
  free(p);
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    unsigned i, n;
    int end = -1;
    if (sscanf(de->d_name, "model-%5u-of-%5u.safetensors%n", &i, &n, &end) == 2 &&
        end == (int)strlen(de->d_name) && strlen(de->d_name) == 32 && n != nshards) {
      if ((p = join(dir, de->d_name))) unlink(p);
      free(p);
    }
  }
  closedir(d);
}

dtr_status dtr_st_writer_save_dir(const dtr_st_writer *w, const char *dir, uint64_t max_shard_bytes,
                                  char *err, size_t errlen) {
  if (!dir) return fail(err, errlen, DTR_ERR_INVALID, "(null): no directory given");
  if (!is_dir(dir)) return fail(err, errlen, DTR_ERR_IO, "%s: not a directory", dir);
  uint64_t total = 0;
  for (size_t i = 0; i < w->n; i++)
    total += w->e[i].nbytes;
  dtr_status s = DTR_OK;
  char *path = NULL;
  if (!max_shard_bytes || total <= max_shard_bytes) {
    if (!(path = join(dir, "model.safetensors")))
      return fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", dir);
    s = save_range(w, path, 0, w->n, err, errlen);
    free(path);
    if (!s) remove_stale(dir, 1, 0);
    return s;
  }
  /* greedy shards: start[k] is the first entry of shard k */
  size_t *start = malloc((w->n + 1) * sizeof *start), ns = 0;
  json_t *idx = json_object(), *wm = json_object();
  if (!start || !idx || !wm) {
    s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", dir);
    goto done;
  }
  uint64_t cur = 0;
  for (size_t i = 0; i < w->n; i++) {
    if (!ns || (cur && cur + w->e[i].nbytes > max_shard_bytes)) {
      start[ns++] = i;
      cur = 0;
    }
    cur += w->e[i].nbytes;
  }
  start[ns] = w->n;
  if (ns > 99999) {
    s = fail(err, errlen, DTR_ERR_INVALID, "%s: %zu shards exceed the 5-digit shard names", dir,
             ns);
    goto done;
  }
  for (size_t k = 0; k < ns && !s; k++) {
    char name[64];
    snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, ns);
    free(path);
    if (!(path = join(dir, name))) {
      s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", dir);
      break;
    }
    s = save_range(w, path, start[k], start[k + 1], err, errlen);
    for (size_t i = start[k]; i < start[k + 1] && !s; i++)
      if (json_object_set_new(wm, w->e[i].name, json_string(name)))
        s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", dir);
  }
  if (s) goto done;
  json_t *meta = json_pack("{s:I}", "total_size", (json_int_t)total);
  if (!meta || json_object_set_new(idx, "metadata", meta) ||
      json_object_set(idx, "weight_map", wm)) {
    s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", dir);
    goto done;
  }
  char *js = json_dumps(idx, JSON_INDENT(2) | JSON_SORT_KEYS);
  free(path);
  path = join(dir, "model.safetensors.index.json");
  if (!js || !path) {
    free(js);
    s = fail(err, errlen, DTR_ERR_OOM, "%s: out of memory", dir);
    goto done;
  }
  size_t jl = strlen(js);
  js[jl] = '\n'; /* the terminating NUL becomes the closing newline */
  s = write_atomic(path, js, jl + 1, NULL, 0, 0, err, errlen);
  free(js);
  if (!s) remove_stale(dir, 0, (unsigned)ns);
done:
  free(path);
  free(start);
  json_decref(wm);
  json_decref(idx);
  return s;
}
