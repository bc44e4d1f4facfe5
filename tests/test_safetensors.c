/* test_safetensors.c — models/safetensors.{c,h} without a GPU: the F16/BF16
 * conversions against values computed from the bit fields in double (all 65536
 * patterns, subnormals, infinities, NaN, rounding ties), single-file and sharded
 * write -> read -> write round trips (tensor bytes and header identical), a
 * hand-made file with unordered and overlapping offsets, and every malformed
 * input producing the right status and a one-line message naming the file. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "safetensors.h"

static char tmpdir[64];
static char err[1024];

static char *pth(const char *name) {
  static char buf[64][512]; /* rotating, so a few results can be held at once */
  static int k;
  char *p = buf[k++ & 63];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  return p;
}


static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
  fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

/* A raw file: 8-byte little-endian header length, the header text as given
 * (no padding), then data. */
static void write_raw(const char *path, const char *header, const void *data, size_t dn) {
  size_t hl = strlen(header);
  unsigned char *b = malloc(8 + hl + dn + 1);
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, header, hl);
  if (dn) memcpy(b + 8 + hl, data, dn);
  write_bytes(path, b, 8 + hl + dn);
  free(b);
}

static int files_equal(const char *a, const char *b) {
  size_t na = 0, nb = 0;
  unsigned char *x = read_bytes(a, &na), *y = read_bytes(b, &nb);
  int eq = x && y && na == nb && !memcmp(x, y, na);
  free(x);
  free(y);
  return eq;
}

/* ---- conversions --------------------------------------------------------------- */

/* The value of a binary16 / bfloat16 pattern from its fields, in double. */
static double f16_ref(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
  return s ? -v : v;
}
static double bf16_ref(uint16_t b) {
  int s = b >> 15, e = (b >> 7) & 255, m = b & 127;
  double v = e == 0 ? ldexp(m, -133) : e == 255 ? (m ? NAN : INFINITY) : ldexp(128 + m, e - 134);
  return s ? -v : v;
}
static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static void test_conversions(void) {
  /* hand-computed values */
  th_expect(dtr_f16_to_f32(0x3c00) == 1.0f, "f16 0x3c00 = 1");
  th_expect(dtr_f16_to_f32(0xc000) == -2.0f, "f16 0xc000 = -2");
  th_expect(dtr_f16_to_f32(0x7bff) == 65504.0f, "f16 0x7bff = 65504 (max)");
  th_expect(dtr_f16_to_f32(0x3555) == 0.333251953125f, "f16 0x3555 = 0.333251953125");
  th_expect(dtr_f16_to_f32(0x0400) == 0x1p-14f, "f16 0x0400 = 2^-14 (min normal)");
  th_expect(dtr_f16_to_f32(0x0001) == 0x1p-24f, "f16 0x0001 = 2^-24 (min subnormal)");
  th_expect(dtr_f16_to_f32(0x03ff) == 1023 * 0x1p-24f, "f16 0x03ff = 1023*2^-24");
  th_expect(dtr_f16_to_f32(0x8200) == -0x1p-15f, "f16 0x8200 = -2^-15 (subnormal)");
  th_expect(fbits(dtr_f16_to_f32(0x8000)) == 0x80000000u, "f16 0x8000 = -0");
  th_expect(dtr_f16_to_f32(0x7c00) == INFINITY && dtr_f16_to_f32(0xfc00) == -INFINITY, "f16 +-inf");
  th_expect(isnan(dtr_f16_to_f32(0x7e00)) && isnan(dtr_f16_to_f32(0x7c01)), "f16 NaN");
  th_expect(dtr_bf16_to_f32(0x3f80) == 1.0f, "bf16 0x3f80 = 1");
  th_expect(dtr_bf16_to_f32(0x4049) == 3.140625f, "bf16 0x4049 = 3.140625");
  th_expect(dtr_bf16_to_f32(0xc2f7) == -123.5f, "bf16 0xc2f7 = -123.5");
  th_expect(dtr_bf16_to_f32(0x0080) == 0x1p-126f, "bf16 0x0080 = 2^-126 (min normal)");
  th_expect(dtr_bf16_to_f32(0x0001) == 0x1p-133f, "bf16 0x0001 = 2^-133 (min subnormal)");
  th_expect(dtr_bf16_to_f32(0x7f80) == INFINITY && dtr_bf16_to_f32(0xff80) == -INFINITY,
            "bf16 +-inf");
  th_expect(isnan(dtr_bf16_to_f32(0x7fc0)) && isnan(dtr_bf16_to_f32(0xff81)), "bf16 NaN");

  /* every pattern: widening is exact, narrowing the widened value is identity */
  int bad16 = 0, badb = 0, rt16 = 0, rtb = 0;
  for (uint32_t i = 0; i < 65536; i++) {
    uint16_t h = (uint16_t)i;
    double r = f16_ref(h), rb = bf16_ref(h);
    float f = dtr_f16_to_f32(h), fb = dtr_bf16_to_f32(h);
    if (isnan(r) ? !isnan(f) : ((double)f != r || !signbit(f) != !signbit(r))) bad16++;
    if (isnan(rb) ? !isnan(fb) : ((double)fb != rb || !signbit(fb) != !signbit(rb))) badb++;
    if (!isnan(r) && dtr_f32_to_f16(f) != h) rt16++;
    if (!isnan(rb) && dtr_f32_to_bf16(fb) != h) rtb++;
    if (isnan(r) && !isnan(dtr_f16_to_f32(dtr_f32_to_f16(f)))) rt16++;
    if (isnan(rb) && !isnan(dtr_bf16_to_f32(dtr_f32_to_bf16(fb)))) rtb++;
  }
  th_expect(!bad16, "f16 -> f32 exact for all 65536 patterns (%d wrong)", bad16);
  th_expect(!badb, "bf16 -> f32 exact for all 65536 patterns (%d wrong)", badb);
  th_expect(!rt16, "f32 -> f16 inverts f16 -> f32 (%d wrong)", rt16);
  th_expect(!rtb, "f32 -> bf16 inverts bf16 -> f32 (%d wrong)", rtb);

  /* narrowing: round to nearest, ties to even, overflow, underflow */
  th_expect(dtr_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00, "f16 tie 1+2^-11 -> 1 (even)");
  th_expect(dtr_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "f16 tie 1+3*2^-11 -> 1+2^-9 (even)");
  th_expect(dtr_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01, "f16 above tie rounds up");
  th_expect(dtr_f32_to_f16(65519.0f) == 0x7bff, "f16 65519 -> 65504");
  th_expect(dtr_f32_to_f16(65520.0f) == 0x7c00, "f16 65520 -> inf");
  th_expect(dtr_f32_to_f16(-1e9f) == 0xfc00, "f16 -1e9 -> -inf");
  th_expect(dtr_f32_to_f16(0x1p-25f) == 0x0000, "f16 2^-25 -> 0 (tie to even)");
  th_expect(dtr_f32_to_f16(0x1.0002p-25f) == 0x0001, "f16 just above 2^-25 -> 2^-24");
  th_expect(dtr_f32_to_f16(3 * 0x1p-25f) == 0x0002, "f16 3*2^-25 -> 2*2^-24 (tie to even)");
  th_expect(dtr_f32_to_f16(-0x1p-30f) == 0x8000, "f16 -2^-30 -> -0");
  th_expect(dtr_f32_to_f16(0x1.ffcp-15f) == 0x0400, "f16 subnormal rounds up to min normal");
  th_expect((dtr_f32_to_f16(NAN) & 0x7e00) == 0x7e00, "f16 NaN stays quiet NaN");
  th_expect(dtr_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "bf16 tie 1+2^-8 -> 1 (even)");
  th_expect(dtr_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82, "bf16 tie 1+3*2^-8 -> 1+2^-6");
  th_expect(dtr_f32_to_bf16(3.4028235e38f) == 0x7f80, "bf16 FLT_MAX -> inf");
  th_expect(dtr_f32_to_bf16(0x1p-130f) == 0x0008, "bf16 subnormal 2^-130");
  th_expect(dtr_f32_to_bf16(0x1p-134f) == 0x0000 && dtr_f32_to_bf16(0x1.8p-134f) == 0x0001,
            "bf16 half the smallest subnormal ties to 0, above rounds up");
  th_expect((dtr_f32_to_bf16(-NAN) & 0x7fc0) == 0x7fc0, "bf16 NaN stays quiet NaN");
}

/* ---- round trips ------------------------------------------------------------------ */

typedef struct src_tensor {
  const char *name;
  dtr_dtype dt;
  uint32_t nd;
  uint64_t shape[3];
  unsigned char *data;
  size_t bytes;
} src_tensor;

static void make_tensors(src_tensor *t, int n) {
  for (int i = 0; i < n; i++) {
    uint64_t ne = 1;
    for (uint32_t d = 0; d < t[i].nd; d++)
      ne *= t[i].shape[d];
    t[i].bytes = ne * dtr_dtype_size(t[i].dt);
    t[i].data = malloc(t[i].bytes + 1);
    for (size_t k = 0; k < t[i].bytes; k++)
      t[i].data[k] = (unsigned char)th_randint(256);
    if (t[i].dt == DTR_DTYPE_F32) /* finite values, so a float comparison is meaningful */
      th_rand((float *)t[i].data, ne, -3, 3);
  }
}

static void test_single(void) {
  src_tensor t[] = {
      {"model.embed_tokens.weight", DTR_DTYPE_F32, 2, {3, 5}, NULL, 0},
      {"odd.f16", DTR_DTYPE_F16, 1, {7}, NULL, 0},
      {"w.bf16", DTR_DTYPE_BF16, 3, {2, 3, 4}, NULL, 0},
      {"ids.i64", DTR_DTYPE_I64, 1, {4}, NULL, 0},
      {"scalar", DTR_DTYPE_F32, 0, {0}, NULL, 0},
      {"empty", DTR_DTYPE_F32, 2, {0, 4}, NULL, 0},
      {"bytes.u8", DTR_DTYPE_U8, 1, {3}, NULL, 0},
  };
  int n = (int)(sizeof t / sizeof *t);
  make_tensors(t, n);
  dtr_st_writer *w = dtr_st_writer_create();
  for (int i = 0; i < n; i++)
    th_expect(
        !dtr_st_writer_add(w, t[i].name, t[i].dt, t[i].nd, t[i].shape, t[i].data, err, sizeof err),
        "writer add %s", t[i].name);
  dtr_st_writer_set_metadata(w, "format", "pt");
  th_expect(dtr_st_writer_add(w, "odd.f16", DTR_DTYPE_F16, 1, t[1].shape, t[1].data, err,
                              sizeof err) == DTR_ERR_INVALID,
            "writer refuses a duplicate name: %s", err);
  th_expect(dtr_st_writer_add(w, "__metadata__", DTR_DTYPE_F16, 1, t[1].shape, t[1].data, err,
                              sizeof err) == DTR_ERR_INVALID,
            "writer refuses the name __metadata__");
  th_expect(dtr_st_writer_add(w, "x", DTR_DTYPE_UNKNOWN, 1, t[1].shape, t[1].data, err,
                              sizeof err) == DTR_ERR_INVALID,
            "writer refuses an unknown dtype");
  char *a = pth("a.safetensors"), *b = pth("b.safetensors");
  th_expect(!dtr_st_writer_save(w, a, err, sizeof err), "save %s", a);
  dtr_st_writer_destroy(w);
  struct stat sb;
  th_expect(stat(pth("a.safetensors.tmp"), &sb) != 0, "no .tmp left behind");

  /* the header as the format says: LE length, multiple of 8, space padded JSON */
  size_t fn;
  unsigned char *fb = read_bytes(a, &fn);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = hl << 8 | fb[i];
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += t[i].bytes;
  th_expect(hl % 8 == 0 && 8 + hl + total == fn,
            "header length %llu is a multiple of 8 and "
            "the file is 8 + header + data",
            (unsigned long long)hl);
  th_expect(fb[8] == '{' && (fb[8 + hl - 1] == '}' || fb[8 + hl - 1] == ' '),
            "header is JSON padded with spaces");
  size_t off = 8 + hl;
  int data_ok = 1;
  for (int i = 0; i < n; i++) { /* data in entry order, no gaps */
    data_ok &= !memcmp(fb + off, t[i].data, t[i].bytes);
    off += t[i].bytes;
  }
  th_expect(data_ok, "data section is the tensors in the order added");
  free(fb);

  dtr_safetensors *st;
  th_expect(!dtr_safetensors_open(a, &st, err, sizeof err), "open %s", a);
  th_expect(dtr_safetensors_count(st) == (size_t)n, "count %zu", dtr_safetensors_count(st));
  int hdr_ok = 1;
  for (int i = 0; i < n; i++) {
    const dtr_st_tensor *x = dtr_safetensors_find(st, t[i].name);
    hdr_ok &= x && x->dtype == t[i].dt && !strcmp(x->dtype_name, dtr_dtype_name(t[i].dt)) &&
              x->ndim == t[i].nd && x->nbytes == t[i].bytes && !strcmp(x->file, a);
    for (uint32_t d = 0; x && d < t[i].nd; d++)
      hdr_ok &= x->shape[d] == t[i].shape[d];
    hdr_ok &= x && !memcmp(x->data, t[i].data, t[i].bytes);
    /* iteration follows the data order, i.e. the order added */
    hdr_ok &= dtr_safetensors_at(st, (size_t)i) == x;
  }
  th_expect(hdr_ok, "names, dtypes, shapes, bytes and order round-trip");
  th_expect(dtr_safetensors_find(st, "scalar")->numel == 1 &&
                dtr_safetensors_find(st, "empty")->numel == 0,
            "scalar has 1 element, [0, 4] has none");
  th_expect(dtr_safetensors_find(st, "nope") == NULL && dtr_safetensors_at(st, 99) == NULL,
            "absent name / index give NULL");
  const dtr_st_tensor *x;
  th_expect(dtr_safetensors_get(st, "nope", &x, err, sizeof err) == DTR_ERR_FORMAT &&
                strstr(err, a) && strstr(err, "nope"),
            "get of an absent tensor names file and tensor: %s", err);
  const char *fmt = dtr_safetensors_metadata(st, "format");
  th_expect(fmt && !strcmp(fmt, "pt"), "__metadata__ format = pt");

  /* conversions to f32 */
  float f32[15], f16v[7], bfv[24];
  th_expect(!dtr_safetensors_read_f32(st, "model.embed_tokens.weight", f32, 15, err, sizeof err) &&
                !memcmp(f32, t[0].data, 60),
            "F32 read is a copy");
  int cv = !dtr_safetensors_read_f32(st, "odd.f16", f16v, 7, err, sizeof err);
  for (int i = 0; i < 7 && cv; i++) {
    uint16_t h = (uint16_t)(t[1].data[2 * i] | t[1].data[2 * i + 1] << 8);
    double r = f16_ref(h);
    cv &= isnan(r) ? isnan(f16v[i]) : (double)f16v[i] == r;
  }
  th_expect(cv, "F16 tensor (unaligned in the file) converts exactly");
  cv = !dtr_safetensors_read_f32(st, "w.bf16", bfv, 24, err, sizeof err);
  for (int i = 0; i < 24 && cv; i++) {
    uint16_t h = (uint16_t)(t[2].data[2 * i] | t[2].data[2 * i + 1] << 8);
    double r = bf16_ref(h);
    cv &= isnan(r) ? isnan(bfv[i]) : (double)bfv[i] == r;
  }
  th_expect(cv, "BF16 tensor converts exactly");
  th_expect(dtr_safetensors_read_f32(st, "ids.i64", f32, 4, err, sizeof err) ==
                    DTR_ERR_UNSUPPORTED &&
                strstr(err, a) && strstr(err, "I64") && strstr(err, "ids.i64"),
            "I64 access is unsupported, named: %s", err);
  th_expect(dtr_safetensors_read_f32(st, "odd.f16", f16v, 6, err, sizeof err) == DTR_ERR_INVALID,
            "element count mismatch is refused");

  /* read -> write again: identical file */
  w = dtr_st_writer_create();
  dtr_st_writer_set_metadata(w, "format", dtr_safetensors_metadata(st, "format"));
  for (size_t i = 0; i < dtr_safetensors_count(st); i++) {
    x = dtr_safetensors_at(st, i);
    dtr_st_writer_add(w, x->name, x->dtype, x->ndim, x->shape, x->data, err, sizeof err);
  }
  th_expect(!dtr_st_writer_save(w, b, err, sizeof err), "save again");
  dtr_st_writer_destroy(w);
  dtr_safetensors_close(st);
  th_expect(files_equal(a, b), "write -> read -> write is byte-identical");

  /* add_copy keeps its own data */
  w = dtr_st_writer_create();
  unsigned char tmp[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uint64_t s2 = 2;
  dtr_st_writer_add_copy(w, "c", DTR_DTYPE_F32, 1, &s2, tmp, err, sizeof err);
  memset(tmp, 0, sizeof tmp);
  th_expect(!dtr_st_writer_save(w, pth("c.safetensors"), err, sizeof err), "save copy");
  dtr_st_writer_destroy(w);
  th_expect(!dtr_safetensors_open(pth("c.safetensors"), &st, err, sizeof err) &&
                ((const unsigned char *)dtr_safetensors_find(st, "c")->data)[7] == 8,
            "add_copy data survives the caller's buffer");
  dtr_safetensors_close(st);
  for (int i = 0; i < n; i++)
    free(t[i].data);
}

/* A file not written by dtr: offsets out of order, one region shared by two
 * tensors, no padding, trailing spaces inside the header. */
static void test_foreign(void) {
  float d[6] = {1, 2, 3, 4, 5, 6};
  const char *h = "{\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [16, 24]},"
                  " \"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]},"
                  " \"alias\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]},"
                  " \"__metadata__\": {\"k\": \"v\"}}   ";
  char *p = pth("foreign.safetensors");
  write_raw(p, h, d, sizeof d);
  dtr_safetensors *st;
  th_expect(!dtr_safetensors_open(p, &st, err, sizeof err), "foreign file opens: %s", err);
  if (!st) return;
  const dtr_st_tensor *t0 = dtr_safetensors_at(st, 0), *t1 = dtr_safetensors_at(st, 1),
                      *t2 = dtr_safetensors_at(st, 2);
  th_expect(dtr_safetensors_count(st) == 3 && !strcmp(t0->name, "a") &&
                !strcmp(t1->name, "alias") && !strcmp(t2->name, "b"),
            "iteration is in data-offset order");
  float v[2];
  th_expect(!dtr_safetensors_read_f32(st, "alias", v, 2, err, sizeof err) && v[0] == 3 && v[1] == 4,
            "overlapping in-range offsets are allowed");
  th_expect(!dtr_safetensors_read_f32(st, "b", v, 2, err, sizeof err) && v[0] == 5 && v[1] == 6,
            "tensor b reads its bytes");
  th_expect(!strcmp(dtr_safetensors_metadata(st, "k"), "v"), "metadata k = v");
  dtr_safetensors_close(st);

  /* a dtype the reader does not know opens, and is refused on access */
  p = pth("f4.safetensors");
  write_raw(p, "{\"q\": {\"dtype\": \"F4\", \"shape\": [4], \"data_offsets\": [0, 2]}}", d, 2);
  th_expect(!dtr_safetensors_open(p, &st, err, sizeof err), "unknown dtype F4 opens");
  if (st) {
    th_expect(dtr_safetensors_read_f32(st, "q", v, 4, err, sizeof err) == DTR_ERR_UNSUPPORTED &&
                  strstr(err, "F4") && strstr(err, p),
              "F4 access: %s", err);
    th_expect(dtr_safetensors_find(st, "q")->dtype == DTR_DTYPE_UNKNOWN, "F4 is DTR_DTYPE_UNKNOWN");
    dtr_safetensors_close(st);
  }
}

static void test_sharded(void) {
  /* 6 tensors of 400, 400, 400, 1200, 100, 100 bytes; shards of at most 800:
   * [0,1] [2] [3] [4,5] (the 1200-byte one alone) */
  src_tensor t[] = {
      {"t0", DTR_DTYPE_F32, 2, {10, 10}, NULL, 0}, {"t1", DTR_DTYPE_BF16, 2, {20, 10}, NULL, 0},
      {"t2", DTR_DTYPE_F16, 1, {200}, NULL, 0},    {"t3", DTR_DTYPE_F32, 2, {30, 10}, NULL, 0},
      {"t4", DTR_DTYPE_F32, 1, {25}, NULL, 0},     {"t5", DTR_DTYPE_BF16, 1, {50}, NULL, 0},
  };
  int n = 6;
  make_tensors(t, n);
  char d1[512], d2[512]; /* pth()'s buffers rotate: keep copies */
  snprintf(d1, sizeof d1, "%s", pth("shard1"));
  snprintf(d2, sizeof d2, "%s", pth("shard2"));
  mkdir(d1, 0755);
  mkdir(d2, 0755);
  /* a stale single-file save that the sharded save must remove */
  write_bytes(pth("shard1/model.safetensors"), "stale", 5);
  dtr_st_writer *w = dtr_st_writer_create();
  for (int i = 0; i < n; i++)
    dtr_st_writer_add(w, t[i].name, t[i].dt, t[i].nd, t[i].shape, t[i].data, err, sizeof err);
  th_expect(!dtr_st_writer_save_dir(w, d1, 800, err, sizeof err), "sharded save: %s", err);
  dtr_st_writer_destroy(w);
  struct stat sb;
  const char *names[4] = {
      "shard1/model-00001-of-00004.safetensors", "shard1/model-00002-of-00004.safetensors",
      "shard1/model-00003-of-00004.safetensors", "shard1/model-00004-of-00004.safetensors"};
  int all = 1;
  for (int i = 0; i < 4; i++)
    all &= !stat(pth(names[i]), &sb);
  th_expect(all && stat(pth("shard1/model.safetensors"), &sb) != 0,
            "4 shards named model-0000i-of-00004, stale model.safetensors removed");
  size_t jn;
  unsigned char *js = read_bytes(pth("shard1/model.safetensors.index.json"), &jn);
  th_expect(js && strstr((char *)js, "\"total_size\": 2600") &&
                strstr((char *)js, "\"t3\": \"model-00003-of-00004.safetensors\"") &&
                strstr((char *)js, "\"t5\": \"model-00004-of-00004.safetensors\""),
            "index has total_size and weight_map");
  free(js);

  dtr_safetensors *st;
  th_expect(!dtr_safetensors_open(d1, &st, err, sizeof err), "open sharded dir: %s", err);
  if (!st) return;
  int ok = dtr_safetensors_count(st) == 6;
  for (int i = 0; i < n && ok; i++) {
    const dtr_st_tensor *x = dtr_safetensors_at(st, (size_t)i);
    ok &= !strcmp(x->name, t[i].name) && x->dtype == t[i].dt &&
          !memcmp(x->data, t[i].data, t[i].bytes);
  }
  th_expect(ok, "sharded tensors read back in order with their bytes");
  th_expect(strstr(dtr_safetensors_find(st, "t3")->file, "model-00003-of-00004") != NULL,
            "t3 lives in shard 3");
  w = dtr_st_writer_create();
  for (size_t i = 0; i < dtr_safetensors_count(st); i++) {
    const dtr_st_tensor *x = dtr_safetensors_at(st, i);
    dtr_st_writer_add(w, x->name, x->dtype, x->ndim, x->shape, x->data, err, sizeof err);
  }
  th_expect(!dtr_st_writer_save_dir(w, d2, 800, err, sizeof err), "re-save sharded");
  ok = files_equal(pth("shard1/model.safetensors.index.json"),
                   pth("shard2/model.safetensors.index.json"));
  for (int i = 0; i < 4; i++) {
    char b2[128];
    snprintf(b2, sizeof b2, "shard2/%s", names[i] + 7);
    ok &= files_equal(pth(names[i]), pth(b2));
  }
  th_expect(ok, "sharded write -> read -> write is byte-identical (shards and index)");
  /* the same tensors under a large limit: one file, old shards and index removed */
  th_expect(!dtr_st_writer_save_dir(w, d2, 1 << 20, err, sizeof err), "re-save as one file: %s",
            err);
  dtr_st_writer_destroy(w);
  dtr_safetensors_close(st);
  th_expect(!stat(pth("shard2/model.safetensors"), &sb) &&
                stat(pth("shard2/model.safetensors.index.json"), &sb) &&
                stat(pth("shard2/model-00001-of-00004.safetensors"), &sb),
            "single-file save removes the stale index and shards");
  th_expect(!dtr_safetensors_open(d2, &st, err, sizeof err) && dtr_safetensors_count(st) == 6,
            "single-file dir opens with 6 tensors");
  dtr_safetensors_close(st);
  /* opening the index path itself */
  th_expect(
      !dtr_safetensors_open(pth("shard1/model.safetensors.index.json"), &st, err, sizeof err) &&
          dtr_safetensors_count(st) == 6,
      "open by index path");
  dtr_safetensors_close(st);
  for (int i = 0; i < n; i++)
    free(t[i].data);
}

/* ---- malformed input ---------------------------------------------------------------- */

static void expect_bad(const char *open_path, const char *must_name, dtr_status want,
                       const char *what) {
  dtr_safetensors *st = (dtr_safetensors *)1;
  err[0] = 0;
  dtr_status s = dtr_safetensors_open(open_path, &st, err, sizeof err);
  th_expect(s == want && st == NULL && strstr(err, must_name) && !strchr(err, '\n'), "%s -> %s: %s",
            what, dtr_status_name(s), err);
  if (s == DTR_OK) dtr_safetensors_close(st);
}

static void bad_header(const char *name, const char *header, size_t dn, dtr_status want,
                       const char *what) {
  static unsigned char zeros[64];
  char *p = pth(name);
  write_raw(p, header, zeros, dn);
  expect_bad(p, p, want, what);
}

static void test_bad(void) {
  char *p = pth("short.safetensors");
  write_bytes(p, "\x05\0\0\0\0", 5);
  expect_bad(p, p, DTR_ERR_FORMAT, "5-byte file");
  p = pth("empty.safetensors");
  write_bytes(p, "", 0);
  expect_bad(p, p, DTR_ERR_FORMAT, "empty file");
  p = pth("long.safetensors");
  unsigned char b[20] = {0x7f, 0x96, 0x98, 0}; /* 9999999 */
  write_bytes(p, b, sizeof b);
  expect_bad(p, p, DTR_ERR_FORMAT, "header length 9999999 in a 20-byte file");
  th_expect(strstr(err, "9999999") != NULL, "message gives the length");
  p = pth("missing.safetensors");
  expect_bad(p, p, DTR_ERR_IO, "missing file");
  bad_header("notjson.safetensors", "{\"a\": [1, 2", 0, DTR_ERR_FORMAT, "header not JSON");
  bad_header("array.safetensors", "[1, 2]  ", 0, DTR_ERR_FORMAT, "header a JSON array");
  bad_header("dup.safetensors",
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
             " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
             4, DTR_ERR_FORMAT, "duplicate tensor name");
  bad_header("nodtype.safetensors", "{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
             DTR_ERR_FORMAT, "entry without dtype");
  bad_header("noshape.safetensors", "{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
             DTR_ERR_FORMAT, "entry without shape");
  bad_header("nooffs.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4,
             DTR_ERR_FORMAT, "entry without data_offsets");
  bad_header("notobj.safetensors", "{\"a\": 3}", 0, DTR_ERR_FORMAT, "entry not an object");
  bad_header("negdim.safetensors",
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4,
             DTR_ERR_FORMAT, "negative dimension");
  bad_header("range.safetensors",
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}", 8,
             DTR_ERR_FORMAT, "data_offsets past the end");
  bad_header("order.safetensors",
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}", 8,
             DTR_ERR_FORMAT, "data_offsets begin > end");
  bad_header("size.safetensors",
             "{\"a\": {\"dtype\": \"BF16\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8,
             DTR_ERR_FORMAT, "data_offsets not shape x dtype size");
  bad_header("meta.safetensors", "{\"__metadata__\": [1]}", 0, DTR_ERR_FORMAT,
             "__metadata__ not an object");
  bad_header("metaval.safetensors", "{\"__metadata__\": {\"n\": 1}}", 0, DTR_ERR_FORMAT,
             "__metadata__ value not a string");

  /* sharded checkpoints */
  char d[512];
  snprintf(d, sizeof d, "%s", pth("badidx"));
  mkdir(d, 0755);
  expect_bad(d, d, DTR_ERR_IO, "directory without a checkpoint");
  float v[2] = {1, 2};
  write_raw(pth("badidx/s1.safetensors"),
            "{\"x\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", v, 8);
  char *ip = pth("badidx/model.safetensors.index.json");
  const char *i1 = "{\"weight_map\": {\"x\": \"s1.safetensors\", \"y\": \"s2.safetensors\"}}";
  write_bytes(ip, i1, strlen(i1));
  expect_bad(d, ip, DTR_ERR_IO, "index naming a missing shard");
  th_expect(strstr(err, "s2.safetensors") != NULL, "message names the missing shard");
  const char *i2 = "{\"weight_map\": {\"x\": \"s1.safetensors\", \"z\": \"s1.safetensors\"}}";
  write_bytes(ip, i2, strlen(i2));
  expect_bad(ip, pth("badidx/s1.safetensors"), DTR_ERR_FORMAT,
             "tensor listed in the index but missing from its shard");
  th_expect(strstr(err, "'z'") != NULL, "message names the tensor");
  write_bytes(ip, "{\"weight_map\": ", 15);
  expect_bad(ip, ip, DTR_ERR_FORMAT, "index not JSON");
  write_bytes(ip, "{\"metadata\": {}}", 16);
  expect_bad(ip, ip, DTR_ERR_FORMAT, "index without weight_map");
  const char *i3 = "{\"weight_map\": {\"x\": \"../s1.safetensors\"}}";
  write_bytes(ip, i3, strlen(i3));
  expect_bad(ip, ip, DTR_ERR_FORMAT, "index escaping its directory");
  const char *i4 = "{\"weight_map\": {\"x\": \"s1.safetensors\"}}";
  write_bytes(ip, i4, strlen(i4));
  dtr_safetensors *st;
  th_expect(!dtr_safetensors_open(d, &st, err, sizeof err) && dtr_safetensors_count(st) == 1,
            "valid one-shard index opens");
  dtr_safetensors_close(st);
  /* a shard that is itself malformed is reported under its own name */
  char *s3 = pth("badidx/s3.safetensors");
  write_bytes(s3, "abc", 3);
  const char *i5 = "{\"weight_map\": {\"x\": \"s3.safetensors\"}}";
  write_bytes(ip, i5, strlen(i5));
  expect_bad(ip, s3, DTR_ERR_FORMAT, "malformed shard");

  /* writer errors */
  dtr_st_writer *w = dtr_st_writer_create();
  uint64_t sh = 2;
  dtr_st_writer_add(w, "x", DTR_DTYPE_F32, 1, &sh, v, err, sizeof err);
  char *np = pth("nodir/x.safetensors");
  th_expect(dtr_st_writer_save(w, np, err, sizeof err) == DTR_ERR_IO && strstr(err, "nodir"),
            "save into a missing directory: %s", err);
  th_expect(dtr_st_writer_save_dir(w, pth("nodir"), 0, err, sizeof err) == DTR_ERR_IO,
            "save_dir into a missing directory: %s", err);
  dtr_st_writer_destroy(w);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/dtr_st_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_conversions();
  test_single();
  test_foreign();
  test_sharded();
  test_bad();
  th_rm_tree(tmpdir);
  return th_finish();
}
