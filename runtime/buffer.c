/* buffer.c — storage buffers, their memory, host transfers, fills and copies.
 *
 * Unified-memory devices (integrated GPUs, lavapipe) get host-visible coherent
 * device-local memory that stays mapped: uploads and downloads are memcpy after
 * the pending work is submitted. Other devices get device-local memory and
 * transfers go through one staging buffer owned by the context, in chunks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define STAGING_CHUNK ((size_t)64 << 20)

uint32_t dtr_find_memory(dtr_ctx *ctx, uint32_t type_bits, VkMemoryPropertyFlags want,
                         VkMemoryPropertyFlags avoid) {
  for (uint32_t i = 0; i < ctx->memprops.memoryTypeCount; i++) {
    VkMemoryPropertyFlags f = ctx->memprops.memoryTypes[i].propertyFlags;
    if ((type_bits & (1u << i)) && (f & want) == want && !(f & avoid)) return i;
  }
  return UINT32_MAX;
}

static dtr_status make_buffer(dtr_ctx *ctx, size_t size, VkMemoryPropertyFlags want,
                              VkMemoryPropertyFlags fallback, VkBuffer *buf,
                              VkDeviceMemory *mem, void **map) {
  VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                            .size = size,
                            .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                     VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                                     VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                     VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                            .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
  VK_TRY(ctx, vkCreateBuffer(ctx->device, &bci, NULL, buf));
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(ctx->device, *buf, &req);
  uint32_t type = dtr_find_memory(ctx, req.memoryTypeBits, want, 0);
  if (type == UINT32_MAX) type = dtr_find_memory(ctx, req.memoryTypeBits, fallback, 0);
  if (type == UINT32_MAX) {
    vkDestroyBuffer(ctx->device, *buf, NULL);
    *buf = VK_NULL_HANDLE;
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                             "device '%s' has no suitable memory type for a buffer",
                             ctx->info.name);
  }
  VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                              .allocationSize = req.size,
                              .memoryTypeIndex = type};
  VkResult r = vkAllocateMemory(ctx->device, &mai, NULL, mem);
  if (r != VK_SUCCESS) {
    vkDestroyBuffer(ctx->device, *buf, NULL);
    *buf = VK_NULL_HANDLE;
    dtr_vk_fail(ctx, r, "vkAllocateMemory", __FILE__, __LINE__);
    size_t l = strlen(ctx->err);
    snprintf(ctx->err + l, sizeof ctx->err - l, " while allocating %zu bytes", size);
    return r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY
               ? DTR_ERR_OOM : DTR_ERR_VULKAN;
  }
  VK_TRY(ctx, vkBindBufferMemory(ctx->device, *buf, *mem, 0));
  *map = NULL;
  if (ctx->memprops.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)
    VK_TRY(ctx, vkMapMemory(ctx->device, *mem, 0, VK_WHOLE_SIZE, 0, map));
  return DTR_OK;
}

dtr_buf *dtr_buf_create(dtr_ctx *ctx, size_t size) {
  if (size == 0) size = 4;
  size = (size + 3) & ~(size_t)3;
  if (ctx->info.max_buffer_size && size > ctx->info.max_buffer_size) {
    dtr_ctx_set_error(ctx, DTR_ERR_OOM,
                      "buffer of %zu bytes exceeds device '%s' maximum allocation of %llu",
                      size, ctx->info.name, (unsigned long long)ctx->info.max_buffer_size);
    return NULL;
  }
  dtr_buf *b = calloc(1, sizeof *b);
  if (!b) { dtr_ctx_set_error(ctx, DTR_ERR_OOM, "out of host memory"); return NULL; }
  VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                             VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  dtr_status st;
  if (ctx->info.unified_memory)
    st = make_buffer(ctx, size, hv | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, hv, &b->buffer,
                     &b->memory, &b->mapped);
  else
    st = make_buffer(ctx, size, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0, &b->buffer,
                     &b->memory, &b->mapped);
  if (st) { free(b); return NULL; }
  b->size = size;
  return b;
}

void dtr_buf_destroy(dtr_ctx *ctx, dtr_buf *b) {
  if (!b) return;
  /* The buffer may be referenced by recorded work: finish it first. */
  if (ctx->recording) dtr_ctx_submit(ctx);
  if (b->mapped) vkUnmapMemory(ctx->device, b->memory);
  vkDestroyBuffer(ctx->device, b->buffer, NULL);
  vkFreeMemory(ctx->device, b->memory, NULL);
  free(b);
}

size_t dtr_buf_size(const dtr_buf *b) { return b ? b->size : 0; }

void dtr_staging_destroy(dtr_ctx *ctx) {
  if (!ctx->staging) return;
  vkUnmapMemory(ctx->device, ctx->staging_mem);
  vkDestroyBuffer(ctx->device, ctx->staging, NULL);
  vkFreeMemory(ctx->device, ctx->staging_mem, NULL);
  ctx->staging = VK_NULL_HANDLE;
}

static dtr_status ensure_staging(dtr_ctx *ctx) {
  if (ctx->staging) return DTR_OK;
  VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                             VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  dtr_status st = make_buffer(ctx, STAGING_CHUNK, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, hv,
                              &ctx->staging, &ctx->staging_mem, &ctx->staging_map);
  if (st == DTR_OK) ctx->staging_size = STAGING_CHUNK;
  return st;
}

static dtr_status check_range(dtr_ctx *ctx, const dtr_buf *b, size_t off, size_t size,
                              const char *what) {
  if (!b) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: NULL buffer", what);
  if (off > b->size || size > b->size - off)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: range [%zu, %zu) outside a buffer of %zu bytes", what, off,
                             off + size, b->size);
  return DTR_OK;
}

static void copy_region(dtr_ctx *ctx, VkBuffer src, size_t so, VkBuffer dst, size_t d0,
                        size_t n) {
  VkBufferCopy c = {so, d0, n};
  vkCmdCopyBuffer(ctx->cmd, src, dst, 1, &c);
}

dtr_status dtr_buf_upload(dtr_ctx *ctx, dtr_buf *b, size_t offset, const void *src,
                          size_t size) {
  dtr_status st = check_range(ctx, b, offset, size, "dtr_buf_upload");
  if (st) return st;
  if (ctx->recording && (st = dtr_ctx_submit(ctx))) return st;
  if (b->mapped) {
    memcpy((char *)b->mapped + offset, src, size);
    return DTR_OK;
  }
  if ((st = ensure_staging(ctx))) return st;
  for (size_t done = 0; done < size; done += ctx->staging_size) {
    size_t n = size - done < ctx->staging_size ? size - done : ctx->staging_size;
    memcpy(ctx->staging_map, (const char *)src + done, n);
    if ((st = dtr_rec_begin(ctx))) return st;
    copy_region(ctx, ctx->staging, 0, b->buffer, offset + done, n);
    b->w_epoch = ctx->epoch;
    if ((st = dtr_ctx_submit(ctx))) return st;
  }
  return DTR_OK;
}

dtr_status dtr_buf_download(dtr_ctx *ctx, const dtr_buf *b, size_t offset, void *dst,
                            size_t size) {
  dtr_status st = check_range(ctx, b, offset, size, "dtr_buf_download");
  if (st) return st;
  if (ctx->recording && (st = dtr_ctx_submit(ctx))) return st;
  if (b->mapped) {
    memcpy(dst, (const char *)b->mapped + offset, size);
    return DTR_OK;
  }
  if ((st = ensure_staging(ctx))) return st;
  for (size_t done = 0; done < size; done += ctx->staging_size) {
    size_t n = size - done < ctx->staging_size ? size - done : ctx->staging_size;
    if ((st = dtr_rec_begin(ctx))) return st;
    copy_region(ctx, b->buffer, offset + done, ctx->staging, 0, n);
    if ((st = dtr_ctx_submit(ctx))) return st;
    memcpy((char *)dst + done, ctx->staging_map, n);
  }
  return DTR_OK;
}

dtr_status dtr_buf_fill(dtr_ctx *ctx, dtr_buf *b, size_t offset, size_t size,
                        uint32_t pattern) {
  dtr_status st = check_range(ctx, b, offset, size, "dtr_buf_fill");
  if (st) return st;
  if ((offset | size) & 3)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "dtr_buf_fill: offset %zu and size %zu must be multiples of 4",
                             offset, size);
  if (size == 0) return DTR_OK;
  if ((st = dtr_rec_begin(ctx))) return st;
  int w = 1;
  dtr_rec_hazard(ctx, &b, &w, 1);
  vkCmdFillBuffer(ctx->cmd, b->buffer, offset, size, pattern);
  ctx->recorded++;
  return DTR_OK;
}

dtr_status dtr_buf_copy(dtr_ctx *ctx, dtr_buf *dst, size_t dst_off, const dtr_buf *src,
                        size_t src_off, size_t size) {
  dtr_status st = check_range(ctx, dst, dst_off, size, "dtr_buf_copy (destination)");
  if (st) return st;
  if ((st = check_range(ctx, src, src_off, size, "dtr_buf_copy (source)"))) return st;
  if (size == 0) return DTR_OK;
  if ((st = dtr_rec_begin(ctx))) return st;
  dtr_buf *bufs[2] = {dst, (dtr_buf *)src};
  int w[2] = {1, 0};
  dtr_rec_hazard(ctx, bufs, w, 2);
  copy_region(ctx, src->buffer, src_off, dst->buffer, dst_off, size);
  ctx->recorded++;
  return DTR_OK;
}
