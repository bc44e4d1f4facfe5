/* dtr_runtime.h — the Vulkan compute layer's public face.
 *
 * Owns: the status codes, the context (instance, one device, one compute queue,
 * command recording, descriptor pool, pipeline cache, validation messenger,
 * timestamp profiler), buffers, and dispatch of embedded SPIR-V kernels.
 * Knows nothing of models. No Vk* type appears here, so host/ never sees one.
 *
 * Execution model: dispatches are recorded into the context's open command
 * buffer; barriers are inserted automatically where a dispatch reads or writes a
 * buffer an earlier unbarriered dispatch wrote (or writes one it read).
 * dtr_ctx_submit() ends, submits and waits. Uploads and downloads are blocking
 * and submit pending work first, so they are always ordered after it.
 */
#ifndef DTR_RUNTIME_H
#define DTR_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

typedef enum dtr_status {
  DTR_OK = 0,
  DTR_ERR_VULKAN,
  DTR_ERR_OOM,
  DTR_ERR_IO,
  DTR_ERR_FORMAT,
  DTR_ERR_UNSUPPORTED,
  DTR_ERR_INVALID,
} dtr_status;

const char *dtr_status_name(dtr_status s);

typedef enum dtr_device_type {
  DTR_DEVICE_OTHER = 0,
  DTR_DEVICE_INTEGRATED,
  DTR_DEVICE_DISCRETE,
  DTR_DEVICE_VIRTUAL,
  DTR_DEVICE_CPU,
} dtr_device_type;

#define DTR_MAX_HEAPS 16

/* What a device can do; filled by enumeration, no device needs to be created. */
typedef struct dtr_device_info {
  uint32_t index; /* position in the loader's enumeration */
  char name[256];
  dtr_device_type type;
  uint32_t vendor_id, device_id;
  uint32_t api_version;    /* VK_MAKE_API_VERSION packed */
  char driver_name[256];   /* VkPhysicalDeviceDriverProperties */
  char driver_info[256];
  uint32_t subgroup_size;  /* default subgroup size */
  uint32_t subgroup_min, subgroup_max; /* with subgroup size control, else = default */
  uint32_t max_shared_memory;      /* bytes per workgroup */
  uint32_t max_workgroup_invocations;
  uint32_t max_workgroup_size[3];
  uint32_t max_workgroup_count[3];
  uint64_t max_storage_buffer_range; /* bytes one binding can see */
  uint64_t max_buffer_size;
  uint32_t min_storage_offset_align;
  uint32_t max_texel_buffer_elements; /* texels one texel-buffer binding can see */
  uint32_t min_texel_offset_align;
  int texel_f16; /* RGBA16F uniform texel buffers (VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) */
  uint32_t max_push_constants;
  int fp16_storage, fp16_arith, int8_storage, int8_arith;
  int coopmat; /* VK_KHR_cooperative_matrix present */
  int timestamps; double timestamp_period_ns;
  int unified_memory; /* a device-local + host-visible type exists */
  uint32_t heap_count;
  uint64_t heap_size[DTR_MAX_HEAPS];
  int heap_device_local[DTR_MAX_HEAPS];
} dtr_device_info;

const char *dtr_device_type_name(dtr_device_type t);

/* Enumerate devices without creating one. *count receives the number found; up to
 * max entries of out are filled. err (may be NULL, size errlen) receives a
 * message on failure. */
dtr_status dtr_devices_list(dtr_device_info *out, uint32_t max, uint32_t *count,
                            char *err, size_t errlen);

typedef struct dtr_ctx dtr_ctx;

typedef struct dtr_ctx_options {
  int device;   /* -1: DTR_DEVICE env, else first discrete, integrated, CPU */
  int validate; /* -1: DTR_VALIDATE env; 1: Khronos validation, messages are errors */
  int profile;  /* -1: DTR_PROFILE env; 1: per-kernel timestamps */
} dtr_ctx_options;

#define DTR_CTX_DEFAULTS ((dtr_ctx_options){-1, -1, -1})

/* Creates a context. On failure returns NULL status in *st and a message in err. */
dtr_ctx *dtr_ctx_create(const dtr_ctx_options *opt, dtr_status *st, char *err,
                        size_t errlen);
void dtr_ctx_destroy(dtr_ctx *ctx); /* NULL is a no-op */
const dtr_device_info *dtr_ctx_device(const dtr_ctx *ctx);
/* The last error's message (empty when none). */
const char *dtr_ctx_error(const dtr_ctx *ctx);
/* Formats a one-line message into err (errlen bytes; NULL/0: nothing) and
 * returns st: the error reporting of functions that take an err buffer. */
dtr_status dtr_errf(char *err, size_t errlen, dtr_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
dtr_status dtr_ctx_set_error(dtr_ctx *ctx, dtr_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Validation messages counted since creation (errors and warnings). */
uint32_t dtr_ctx_validation_messages(const dtr_ctx *ctx);
/* Ends, submits and waits for all recorded work. */
dtr_status dtr_ctx_submit(dtr_ctx *ctx);
/* Profiling: print per-kernel totals (calls, ms) to f (a FILE*), then reset. */
void dtr_ctx_profile_report(dtr_ctx *ctx, void *file);
int dtr_ctx_profiling(const dtr_ctx *ctx);

/* Buffers. Host-visible memory is used where the device has unified memory (and
 * stays mapped); otherwise device-local memory with a staging ring. */
typedef struct dtr_buf dtr_buf;
dtr_buf *dtr_buf_create(dtr_ctx *ctx, size_t size);
void dtr_buf_destroy(dtr_ctx *ctx, dtr_buf *b); /* NULL is a no-op */
size_t dtr_buf_size(const dtr_buf *b);
dtr_status dtr_buf_upload(dtr_ctx *ctx, dtr_buf *b, size_t offset, const void *src,
                          size_t size);
dtr_status dtr_buf_download(dtr_ctx *ctx, const dtr_buf *b, size_t offset, void *dst,
                            size_t size);
/* Recorded: fill size bytes (multiple of 4) with a 32-bit pattern. */
dtr_status dtr_buf_fill(dtr_ctx *ctx, dtr_buf *b, size_t offset, size_t size,
                        uint32_t pattern);
/* Recorded: copy between buffers. */
dtr_status dtr_buf_copy(dtr_ctx *ctx, dtr_buf *dst, size_t dst_off, const dtr_buf *src,
                        size_t src_off, size_t size);

/* A view binds part of a buffer; size 0 means "to the end". offset must be a
 * multiple of the device's min_storage_offset_align. */
typedef struct dtr_view {
  dtr_buf *buf;
  size_t offset;
  size_t size;
} dtr_view;
static inline dtr_view dtr_whole(dtr_buf *b) { return (dtr_view){b, 0, 0}; }

/* How a binding is seen: a storage buffer, or a read-only uniform texel buffer
 * of vec4 texels. On devices whose storage loads are slow (lavapipe loads
 * storage buffers lane by lane, texels with a vector gather) kernels read their
 * big inputs as texels. The shader's samplerBuffer is the same for both texel
 * formats: an RGBA16F view converts fp16 halves packed two a word (as
 * dtr_op_pack_f16 writes them) to vec4 on the fetch. */
typedef enum dtr_texel {
  DTR_TEXEL_NONE = 0, /* a storage buffer */
  DTR_TEXEL_F32 = 1,  /* RGBA32F texels, 16 bytes each */
  DTR_TEXEL_F16 = 2,  /* RGBA16F texels, 8 bytes each; needs dtr_device_info.texel_f16 */
} dtr_texel;

typedef struct dtr_arg {
  dtr_view v;
  int write; /* the kernel writes this binding */
  dtr_texel texel;
} dtr_arg;
#define DTR_IN(view) ((dtr_arg){(view), 0, DTR_TEXEL_NONE})
#define DTR_OUT(view) ((dtr_arg){(view), 1, DTR_TEXEL_NONE})
#define DTR_TEX(view) ((dtr_arg){(view), 0, DTR_TEXEL_F32})
#define DTR_TEX16(view) ((dtr_arg){(view), 0, DTR_TEXEL_F16})

#define DTR_MAX_ARGS 16
#define DTR_MAX_SPEC 16

typedef struct dtr_dispatch_desc {
  const char *kernel;     /* name in the embedded table, e.g. "matmul" */
  const uint32_t *spec;   /* specialization constants, ids 0..nspec-1 */
  uint32_t nspec;
  const dtr_arg *args;    /* binding i of set 0 is args[i] */
  uint32_t nargs;
  const void *push;       /* push constants, offset 0 */
  uint32_t push_size;
  uint32_t groups[3];     /* workgroup counts */
} dtr_dispatch_desc;

dtr_status dtr_dispatch(dtr_ctx *ctx, const dtr_dispatch_desc *d);
/* True if the embedded table holds a kernel of that name. */
int dtr_kernel_exists(const char *name);

#endif
