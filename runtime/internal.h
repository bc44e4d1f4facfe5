/* internal.h — the runtime's private state, shared by context.c, buffer.c and
 * dispatch.c. Nothing outside runtime/ includes this file. */
#ifndef DTR_RUNTIME_INTERNAL_H
#define DTR_RUNTIME_INTERNAL_H

#include <volk.h>

#include "dtr_runtime.h"

/* Checks a VkResult; on failure records "call: VK_ERROR_X on <device> (file:line)"
 * on the context and returns DTR_ERR_VULKAN (or DTR_ERR_OOM) from the caller. */
#define VK_TRY(ctx, call)                                                      \
  do {                                                                         \
    VkResult vk_try_r_ = (call);                                               \
    if (vk_try_r_ != VK_SUCCESS)                                               \
      return dtr_vk_fail((ctx), vk_try_r_, #call, __FILE__, __LINE__);         \
  } while (0)

dtr_status dtr_vk_fail(dtr_ctx *ctx, VkResult r, const char *call, const char *file,
                       int line);
const char *dtr_vk_result_name(VkResult r);

struct dtr_buf {
  VkBuffer buffer;
  VkDeviceMemory memory;
  void *mapped; /* non-NULL when host-visible (unified memory): stays mapped */
  size_t size;
  uint64_t w_epoch, r_epoch; /* barrier epoch of the last write / read */
};

typedef struct dtr_pipeline {
  char key[160]; /* kernel name + spec constants + nargs */
  VkPipeline pipeline;
  uint32_t nargs;
} dtr_pipeline;

typedef struct dtr_kernel_prof {
  const char *name;
  uint64_t calls;
  double ms;
} dtr_kernel_prof;

#define DTR_MAX_QUERIES 4096
#define DTR_MAX_PROF_KERNELS 256

struct dtr_ctx {
  VkInstance instance;
  VkDebugUtilsMessengerEXT messenger;
  VkPhysicalDevice phys;
  VkDevice device;
  VkQueue queue;
  uint32_t queue_family;
  dtr_device_info info;
  VkPhysicalDeviceMemoryProperties memprops;
  int validate, profile;
  uint32_t vmsgs; /* validation messages seen */
  uint32_t vmsgs_reported;
  char err[1024];

  /* recording */
  VkCommandPool cmd_pool;
  VkCommandBuffer cmd;
  VkFence fence;
  int recording;
  uint32_t recorded; /* commands in the open command buffer */
  uint64_t epoch;    /* increases at every barrier */
  VkDescriptorPool desc_pool;
  /* set and pipeline layouts by (binding count, mask of texel bindings) */
  struct dtr_layout {
    uint32_t nargs, texmask;
    VkDescriptorSetLayout set;
    VkPipelineLayout pipe;
  } layouts[64];
  uint32_t nlayouts;
  /* texel-buffer views of the open command buffer, destroyed after its submit */
  VkBufferView *views;
  uint32_t nviews, cap_views;

  /* pipelines and shader modules */
  dtr_pipeline *pipes;
  uint32_t npipes, cap_pipes;
  VkPipelineCache pipe_cache;

  /* staging for devices without unified memory */
  VkBuffer staging;
  VkDeviceMemory staging_mem;
  void *staging_map;
  size_t staging_size;

  /* profiling */
  VkQueryPool query_pool;
  uint32_t nqueries;
  const char *query_kernel[DTR_MAX_QUERIES / 2];
  dtr_kernel_prof prof[DTR_MAX_PROF_KERNELS];
  uint32_t nprof;
};

/* dispatch.c */
dtr_status dtr_rec_begin(dtr_ctx *ctx);
/* Inserts a barrier if the accesses (buffers, write flags) conflict with the
 * current epoch, then marks them. */
void dtr_rec_hazard(dtr_ctx *ctx, dtr_buf *const *bufs, const int *write, uint32_t n);
void dtr_pipelines_destroy(dtr_ctx *ctx);
void dtr_views_release(dtr_ctx *ctx);

/* buffer.c */
uint32_t dtr_find_memory(dtr_ctx *ctx, uint32_t type_bits, VkMemoryPropertyFlags want,
                         VkMemoryPropertyFlags avoid);
void dtr_staging_destroy(dtr_ctx *ctx);

#endif
