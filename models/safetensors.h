/* safetensors.h — reading and writing Hugging Face .safetensors checkpoints.
 *
 * Owns: the dtype list, exact F16/BF16 <-> F32 conversions, a read-only reader
 * that mmaps one .safetensors file or every shard of a sharded checkpoint named
 * by model.safetensors.index.json, and a writer that saves a list of tensors as
 * one file or as HF-style shards + index, each file written atomically
 * (NAME.tmp, fsync, rename).
 *
 * The format: 8 bytes little-endian N, then N bytes of JSON header
 *   {"__metadata__": {"k": "v", ...},
 *    "name": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [b, e]}, ...}
 * (padded with spaces), then the data; offsets are relative to the end of the
 * header. Tensor data is little-endian, row-major and NOT necessarily aligned
 * (safetensors forbids holes, so a writer cannot pad): copy it, or use
 * dtr_st_tensor_to_f32(), rather than casting the pointer.
 *
 * Errors: every function returning dtr_status writes one line naming the file
 * into err (size errlen; err may be NULL): DTR_ERR_IO for a file that cannot be
 * opened, read or written, DTR_ERR_FORMAT for a malformed file,
 * DTR_ERR_UNSUPPORTED for a valid tensor of a dtype dtr cannot convert,
 * DTR_ERR_INVALID for a bad argument. Nothing here touches a device. */
#ifndef DTR_SAFETENSORS_H
#define DTR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtr_runtime.h" /* dtr_status only */

/* ---- dtypes ------------------------------------------------------------------ */

typedef enum dtr_dtype {
  DTR_DTYPE_F32 = 0,
  DTR_DTYPE_F16,
  DTR_DTYPE_BF16,
  /* Known to the format (sizes validated) but not convertible by dtr: */
  DTR_DTYPE_F64,
  DTR_DTYPE_I64,
  DTR_DTYPE_I32,
  DTR_DTYPE_I16,
  DTR_DTYPE_I8,
  DTR_DTYPE_U64,
  DTR_DTYPE_U32,
  DTR_DTYPE_U16,
  DTR_DTYPE_U8,
  DTR_DTYPE_BOOL,
  DTR_DTYPE_F8_E4M3,
  DTR_DTYPE_F8_E5M2,
  /* A dtype string this reader does not know: its size cannot be checked, and
   * accessing the tensor's values fails (the name is kept in dtype_name). */
  DTR_DTYPE_UNKNOWN,
} dtr_dtype;

const char *dtr_dtype_name(dtr_dtype t);  /* "F32", "BF16", ...; "?" for UNKNOWN */
size_t dtr_dtype_size(dtr_dtype t);       /* bytes per element; 0 for UNKNOWN */
dtr_dtype dtr_dtype_parse(const char *s); /* DTR_DTYPE_UNKNOWN when not known */

/* Exact widening conversions (every F16 and BF16 value, subnormals, infinities
 * and NaN payloads included, is representable in F32) and the narrowing ones
 * with round-to-nearest-even (overflow gives infinity, NaN stays a quiet NaN). */
float dtr_f16_to_f32(uint16_t h);
float dtr_bf16_to_f32(uint16_t b);
uint16_t dtr_f32_to_f16(float f);
uint16_t dtr_f32_to_bf16(float f);

/* ---- reading ----------------------------------------------------------------- */

#define DTR_ST_MAX_DIMS 8

typedef struct dtr_st_tensor {
  const char *name;
  dtr_dtype dtype;
  const char *dtype_name; /* as written in the header */
  uint32_t ndim;          /* 0 for a scalar */
  uint64_t shape[DTR_ST_MAX_DIMS];
  uint64_t numel;   /* product of shape (1 for a scalar) */
  uint64_t nbytes;  /* data_offsets[1] - data_offsets[0] */
  const void *data; /* into the read-only mapping; may be unaligned */
  const char *file; /* the .safetensors file that holds it */
} dtr_st_tensor;

typedef struct dtr_safetensors dtr_safetensors;

/* Opens path, which is one of: a .safetensors file; a
 * model.safetensors.index.json (its weight_map names the shard of every tensor;
 * shards are mapped once each); a directory holding model.safetensors or, when
 * that is absent, model.safetensors.index.json. Every header is validated
 * before *out is set. With an index, the tensors are exactly those of the
 * weight_map. */
dtr_status dtr_safetensors_open(const char *path, dtr_safetensors **out, char *err, size_t errlen);
void dtr_safetensors_close(dtr_safetensors *st); /* NULL is a no-op */

const char *dtr_safetensors_path(const dtr_safetensors *st); /* as given to open */
/* Iteration: tensors are ordered by file (shard order), then data offset (an
 * empty tensor before the one that begins where it sits), so saving them in
 * this order reproduces the data section byte for byte. */
size_t dtr_safetensors_count(const dtr_safetensors *st);
const dtr_st_tensor *dtr_safetensors_at(const dtr_safetensors *st, size_t i);
/* Lookup by name; NULL when absent. */
const dtr_st_tensor *dtr_safetensors_find(const dtr_safetensors *st, const char *name);
/* Lookup that fails with DTR_ERR_FORMAT ("PATH: no tensor 'NAME'"). */
dtr_status dtr_safetensors_get(const dtr_safetensors *st, const char *name,
                               const dtr_st_tensor **out, char *err, size_t errlen);
/* A "__metadata__" string value (of the first file that has the key), or NULL. */
const char *dtr_safetensors_metadata(const dtr_safetensors *st, const char *key);

/* Converts a tensor's values to F32 into dst (n must equal t->numel):
 * F32 copied, F16/BF16 widened exactly; any other dtype gives
 * DTR_ERR_UNSUPPORTED naming the file, the tensor and the dtype. */
dtr_status dtr_st_tensor_to_f32(const dtr_st_tensor *t, float *dst, size_t n, char *err,
                                size_t errlen);
/* The same by name. */
dtr_status dtr_safetensors_read_f32(const dtr_safetensors *st, const char *name, float *dst,
                                    size_t n, char *err, size_t errlen);

/* ---- writing ----------------------------------------------------------------- */

typedef struct dtr_st_writer dtr_st_writer;

dtr_st_writer *dtr_st_writer_create(void);    /* NULL on OOM */
void dtr_st_writer_destroy(dtr_st_writer *w); /* NULL is a no-op */

/* Adds a tensor. The data (numel * dtype size bytes, little-endian) is
 * referenced, not copied: it must stay valid until the last save. Names must be
 * unique and not "__metadata__"; DTR_DTYPE_UNKNOWN is refused. */
dtr_status dtr_st_writer_add(dtr_st_writer *w, const char *name, dtr_dtype dtype, uint32_t ndim,
                             const uint64_t *shape, const void *data, char *err, size_t errlen);
/* The same, but the writer keeps its own copy of the data. */
dtr_status dtr_st_writer_add_copy(dtr_st_writer *w, const char *name, dtr_dtype dtype,
                                  uint32_t ndim, const uint64_t *shape, const void *data, char *err,
                                  size_t errlen);
/* Adds (or replaces) a "__metadata__" entry, e.g. ("format", "pt"). */
dtr_status dtr_st_writer_set_metadata(dtr_st_writer *w, const char *key, const char *value);

/* Writes one .safetensors file at path: header with __metadata__ first (when
 * any) and the tensors in the order added, data in that order, no gaps. */
dtr_status dtr_st_writer_save(const dtr_st_writer *w, const char *path, char *err, size_t errlen);
/* Writes into the existing directory dir as Hugging Face's save_pretrained
 * does: when the tensor bytes total at most max_shard_bytes (or it is 0), one
 * dir/model.safetensors; otherwise shards dir/model-0000i-of-0000N.safetensors
 * filled greedily in the order added (a tensor larger than the limit gets a
 * shard of its own) and dir/model.safetensors.index.json
 * ({"metadata": {"total_size": bytes}, "weight_map": {name: shard}}). Files of
 * the other layout (a stale index or model.safetensors, shards of another
 * count) are removed after the new files are in place. */
dtr_status dtr_st_writer_save_dir(const dtr_st_writer *w, const char *dir, uint64_t max_shard_bytes,
                                  char *err, size_t errlen);

#endif
