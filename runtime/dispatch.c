/* dispatch.c — kernels from the embedded SPIR-V table, pipelines keyed by
 * (kernel, specialization constants), command recording with automatic
 * barriers, submission, and timestamp profiling.
 *
 * Barriers: the context keeps an epoch that advances at every barrier; each
 * buffer remembers the epoch of its last write and last read. A command that
 * reads or writes a buffer written in the current epoch, or writes one read in
 * it, gets one global memory barrier first. Independent dispatches therefore
 * run back to back without barriers between them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct dtr_kernel_blob {
  const char *name;
  const uint32_t *code;
  const size_t *size;
};
extern const struct dtr_kernel_blob dtr_kernel_table[];

static const struct dtr_kernel_blob *find_kernel(const char *name) {
  for (const struct dtr_kernel_blob *k = dtr_kernel_table; k->name; k++)
    if (!strcmp(k->name, name)) return k;
  return NULL;
}

int dtr_kernel_exists(const char *name) { return find_kernel(name) != NULL; }

/* The set and pipeline layout for nargs bindings, texmask marking the uniform
 * texel buffers among them; made on first use and kept. */
static dtr_status get_layout(dtr_ctx *ctx, uint32_t nargs, uint32_t texmask,
                             const struct dtr_layout **out) {
  for (uint32_t i = 0; i < ctx->nlayouts; i++)
    if (ctx->layouts[i].nargs == nargs && ctx->layouts[i].texmask == texmask) {
      *out = &ctx->layouts[i];
      return DTR_OK;
    }
  if (ctx->nlayouts == sizeof ctx->layouts / sizeof ctx->layouts[0])
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED, "too many distinct binding layouts");
  VkDescriptorSetLayoutBinding b[DTR_MAX_ARGS];
  for (uint32_t i = 0; i < nargs; i++)
    b[i] = (VkDescriptorSetLayoutBinding){
        i, (texmask >> i) & 1 ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                              : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
        1, VK_SHADER_STAGE_COMPUTE_BIT, NULL};
  uint32_t push = ctx->info.max_push_constants < 128 ? ctx->info.max_push_constants : 128;
  VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, push};
  struct dtr_layout *l = &ctx->layouts[ctx->nlayouts];
  VkDescriptorSetLayoutCreateInfo li = {
      .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
      .bindingCount = nargs,
      .pBindings = b};
  VK_TRY(ctx, vkCreateDescriptorSetLayout(ctx->device, &li, NULL, &l->set));
  VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                    .setLayoutCount = 1,
                                    .pSetLayouts = &l->set,
                                    .pushConstantRangeCount = 1,
                                    .pPushConstantRanges = &pr};
  VkResult r = vkCreatePipelineLayout(ctx->device, &pli, NULL, &l->pipe);
  if (r != VK_SUCCESS) {
    vkDestroyDescriptorSetLayout(ctx->device, l->set, NULL);
    return dtr_vk_fail(ctx, r, "vkCreatePipelineLayout", __FILE__, __LINE__);
  }
  l->nargs = nargs;
  l->texmask = texmask;
  ctx->nlayouts++;
  *out = l;
  return DTR_OK;
}

static uint32_t tex_mask(const dtr_dispatch_desc *d) {
  uint32_t m = 0;
  for (uint32_t i = 0; i < d->nargs; i++)
    if (d->args[i].texel) m |= 1u << i;
  return m;
}

void dtr_views_release(dtr_ctx *ctx) {
  for (uint32_t i = 0; i < ctx->nviews; i++) vkDestroyBufferView(ctx->device, ctx->views[i], NULL);
  ctx->nviews = 0;
}

void dtr_pipelines_destroy(dtr_ctx *ctx) {
  for (uint32_t i = 0; i < ctx->npipes; i++)
    vkDestroyPipeline(ctx->device, ctx->pipes[i].pipeline, NULL);
  free(ctx->pipes);
  ctx->pipes = NULL;
  ctx->npipes = ctx->cap_pipes = 0;
}

static dtr_status get_pipeline(dtr_ctx *ctx, const dtr_dispatch_desc *d, VkPipeline *out) {
  char key[160];
  int len = snprintf(key, sizeof key, "%s/%u/%x", d->kernel, d->nargs, tex_mask(d));
  for (uint32_t i = 0; i < d->nspec && len < (int)sizeof key; i++)
    len += snprintf(key + len, sizeof key - (size_t)len, ",%u", d->spec[i]);
  if (len >= (int)sizeof key)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "kernel key too long for '%s'", d->kernel);
  for (uint32_t i = 0; i < ctx->npipes; i++)
    if (!strcmp(ctx->pipes[i].key, key)) { *out = ctx->pipes[i].pipeline; return DTR_OK; }

  const struct dtr_kernel_blob *k = find_kernel(d->kernel);
  if (!k)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "no kernel named '%s' is embedded in this build", d->kernel);
  const struct dtr_layout *lay;
  dtr_status st = get_layout(ctx, d->nargs, tex_mask(d), &lay);
  if (st) return st;
  VkShaderModuleCreateInfo smi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                  .codeSize = *k->size,
                                  .pCode = k->code};
  VkShaderModule mod;
  VK_TRY(ctx, vkCreateShaderModule(ctx->device, &smi, NULL, &mod));
  VkSpecializationMapEntry me[DTR_MAX_SPEC];
  for (uint32_t i = 0; i < d->nspec; i++) me[i] = (VkSpecializationMapEntry){i, 4 * i, 4};
  VkSpecializationInfo si = {d->nspec, me, 4 * (size_t)d->nspec, d->spec};
  VkComputePipelineCreateInfo ci = {
      .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = mod,
                .pName = "main",
                .pSpecializationInfo = d->nspec ? &si : NULL},
      .layout = lay->pipe};
  VkPipeline p;
  VkResult r = vkCreateComputePipelines(ctx->device, ctx->pipe_cache, 1, &ci, NULL, &p);
  vkDestroyShaderModule(ctx->device, mod, NULL);
  if (r != VK_SUCCESS) {
    dtr_vk_fail(ctx, r, "vkCreateComputePipelines", __FILE__, __LINE__);
    size_t l = strlen(ctx->err);
    snprintf(ctx->err + l, sizeof ctx->err - l, " for kernel '%s'", d->kernel);
    return DTR_ERR_VULKAN;
  }
  if (ctx->npipes == ctx->cap_pipes) {
    uint32_t cap = ctx->cap_pipes ? 2 * ctx->cap_pipes : 32;
    dtr_pipeline *np = realloc(ctx->pipes, cap * sizeof *np);
    if (!np) {
      vkDestroyPipeline(ctx->device, p, NULL);
      return dtr_ctx_set_error(ctx, DTR_ERR_OOM, "out of host memory");
    }
    ctx->pipes = np;
    ctx->cap_pipes = cap;
  }
  dtr_pipeline *e = &ctx->pipes[ctx->npipes++];
  snprintf(e->key, sizeof e->key, "%s", key);
  e->pipeline = p;
  e->nargs = d->nargs;
  *out = p;
  return DTR_OK;
}

static void global_barrier(dtr_ctx *ctx, VkPipelineStageFlags src, VkAccessFlags src_access,
                           VkPipelineStageFlags dst, VkAccessFlags dst_access) {
  VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                        .srcAccessMask = src_access,
                        .dstAccessMask = dst_access};
  vkCmdPipelineBarrier(ctx->cmd, src, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

#define DEV_STAGES (VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT)
#define DEV_WRITES (VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT)
#define DEV_ACCESS                                                                     \
  (VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT | \
   VK_ACCESS_TRANSFER_WRITE_BIT)

dtr_status dtr_rec_begin(dtr_ctx *ctx) {
  if (ctx->recording) return DTR_OK;
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  VK_TRY(ctx, vkBeginCommandBuffer(ctx->cmd, &bi));
  ctx->recording = 1;
  ctx->recorded = 0;
  ctx->epoch++;
  /* Host writes and the previous submission's device writes become visible. */
  global_barrier(ctx, VK_PIPELINE_STAGE_HOST_BIT | DEV_STAGES,
                 VK_ACCESS_HOST_WRITE_BIT | DEV_WRITES, DEV_STAGES, DEV_ACCESS);
  if (ctx->profile) {
    vkCmdResetQueryPool(ctx->cmd, ctx->query_pool, 0, DTR_MAX_QUERIES);
    ctx->nqueries = 0;
  }
  return DTR_OK;
}

void dtr_rec_hazard(dtr_ctx *ctx, dtr_buf *const *bufs, const int *write, uint32_t n) {
  int conflict = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (bufs[i]->w_epoch == ctx->epoch) conflict = 1;           /* RAW, WAW */
    if (write[i] && bufs[i]->r_epoch == ctx->epoch) conflict = 1; /* WAR */
  }
  if (conflict) {
    global_barrier(ctx, DEV_STAGES, DEV_WRITES, DEV_STAGES, DEV_ACCESS);
    ctx->epoch++;
  }
  for (uint32_t i = 0; i < n; i++) {
    if (write[i]) bufs[i]->w_epoch = ctx->epoch;
    else bufs[i]->r_epoch = ctx->epoch;
  }
}

static void prof_add(dtr_ctx *ctx, const char *name, double ms) {
  for (uint32_t i = 0; i < ctx->nprof; i++)
    if (!strcmp(ctx->prof[i].name, name)) {
      ctx->prof[i].calls++;
      ctx->prof[i].ms += ms;
      return;
    }
  if (ctx->nprof < DTR_MAX_PROF_KERNELS)
    ctx->prof[ctx->nprof++] = (dtr_kernel_prof){name, 1, ms};
}

dtr_status dtr_ctx_submit(dtr_ctx *ctx) {
  if (ctx->recording) {
    ctx->recording = 0;
    global_barrier(ctx, DEV_STAGES, DEV_WRITES, VK_PIPELINE_STAGE_HOST_BIT,
                   VK_ACCESS_HOST_READ_BIT);
    VK_TRY(ctx, vkEndCommandBuffer(ctx->cmd));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                       .commandBufferCount = 1,
                       .pCommandBuffers = &ctx->cmd};
    VK_TRY(ctx, vkQueueSubmit(ctx->queue, 1, &si, ctx->fence));
    VK_TRY(ctx, vkWaitForFences(ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX));
    VK_TRY(ctx, vkResetFences(ctx->device, 1, &ctx->fence));
    VK_TRY(ctx, vkResetCommandPool(ctx->device, ctx->cmd_pool, 0));
    VK_TRY(ctx, vkResetDescriptorPool(ctx->device, ctx->desc_pool, 0));
    dtr_views_release(ctx);
    if (ctx->profile && ctx->nqueries) {
      uint64_t ts[DTR_MAX_QUERIES];
      VK_TRY(ctx, vkGetQueryPoolResults(ctx->device, ctx->query_pool, 0, ctx->nqueries,
                                        sizeof ts, ts, sizeof ts[0],
                                        VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT));
      for (uint32_t q = 0; q + 1 < ctx->nqueries; q += 2)
        prof_add(ctx, ctx->query_kernel[q / 2],
                 (double)(ts[q + 1] - ts[q]) * ctx->info.timestamp_period_ns * 1e-6);
      ctx->nqueries = 0;
    }
  }
  if (ctx->vmsgs != ctx->vmsgs_reported) {
    uint32_t n = ctx->vmsgs - ctx->vmsgs_reported;
    ctx->vmsgs_reported = ctx->vmsgs;
    return dtr_ctx_set_error(ctx, DTR_ERR_VULKAN,
                             "%u Vulkan validation message(s) (printed above) on device '%s'",
                             n, ctx->info.name);
  }
  return DTR_OK;
}

void dtr_ctx_profile_report(dtr_ctx *ctx, void *file) {
  FILE *f = file ? file : stderr;
  if (!ctx->profile || !ctx->nprof) return;
  double total = 0;
  for (uint32_t i = 0; i < ctx->nprof; i++) total += ctx->prof[i].ms;
  fprintf(f, "%-32s %10s %12s %10s %6s\n", "kernel", "calls", "total ms", "ms/call", "%");
  for (uint32_t i = 0; i < ctx->nprof; i++) {
    const dtr_kernel_prof *p = &ctx->prof[i];
    fprintf(f, "%-32s %10llu %12.3f %10.4f %6.1f\n", p->name, (unsigned long long)p->calls,
            p->ms, p->ms / (double)p->calls, total > 0 ? 100.0 * p->ms / total : 0.0);
  }
  ctx->nprof = 0;
}

static dtr_status check_args(dtr_ctx *ctx, const dtr_dispatch_desc *d) {
  if (d->nargs > DTR_MAX_ARGS || d->nspec > DTR_MAX_SPEC)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "kernel '%s': %u bindings / %u spec "
                             "constants exceed the runtime's limits", d->kernel, d->nargs,
                             d->nspec);
  if (d->push_size > 128 || (d->push_size & 3))
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "kernel '%s': push constants of %u bytes",
                             d->kernel, d->push_size);
  for (int i = 0; i < 3; i++)
    if (d->groups[i] > ctx->info.max_workgroup_count[i])
      return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                               "kernel '%s': %u workgroups in dimension %d exceed device "
                               "'%s' limit %u", d->kernel, d->groups[i], i, ctx->info.name,
                               ctx->info.max_workgroup_count[i]);
  for (uint32_t i = 0; i < d->nargs; i++) {
    const dtr_view *v = &d->args[i].v;
    if (!v->buf)
      return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "kernel '%s': binding %u is NULL",
                               d->kernel, i);
    size_t range = v->size ? v->size : v->buf->size - v->offset;
    if (v->offset > v->buf->size || range > v->buf->size - v->offset)
      return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "kernel '%s': binding %u view [%zu, +%zu)"
                               " outside its buffer of %zu bytes", d->kernel, i, v->offset,
                               range, v->buf->size);
    if (v->offset % ctx->info.min_storage_offset_align)
      return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "kernel '%s': binding %u offset %zu is "
                               "not a multiple of the device's storage alignment %u",
                               d->kernel, i, v->offset, ctx->info.min_storage_offset_align);
    if (d->args[i].texel) {
      size_t ts = d->args[i].texel == DTR_TEXEL_F16 ? 8 : 16; /* bytes per texel */
      if (d->args[i].texel == DTR_TEXEL_F16 && !ctx->info.texel_f16)
        return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED, "kernel '%s': texel binding %u is "
                                 "RGBA16F, which device '%s' cannot bind as a uniform texel "
                                 "buffer", d->kernel, i, ctx->info.name);
      if (d->args[i].write || (v->offset % (ctx->info.min_texel_offset_align
                                                ? ctx->info.min_texel_offset_align : 1)) ||
          (range % ts))
        return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "kernel '%s': texel binding %u must be "
                                 "read-only, offset %zu a multiple of %u, size %zu of %zu",
                                 d->kernel, i, v->offset, ctx->info.min_texel_offset_align,
                                 range, ts);
      if (range / ts > ctx->info.max_texel_buffer_elements)
        return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED, "kernel '%s': texel binding %u has "
                                 "%zu texels, more than device '%s' allows (%u)", d->kernel, i,
                                 range / ts, ctx->info.name, ctx->info.max_texel_buffer_elements);
      continue;
    }
    if (range > ctx->info.max_storage_buffer_range)
      return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                               "kernel '%s': binding %u spans %zu bytes, more than device "
                               "'%s' can bind (maxStorageBufferRange %llu); split the tensor",
                               d->kernel, i, range, ctx->info.name,
                               (unsigned long long)ctx->info.max_storage_buffer_range);
  }
  return DTR_OK;
}

dtr_status dtr_dispatch(dtr_ctx *ctx, const dtr_dispatch_desc *d) {
  dtr_status st = check_args(ctx, d);
  if (st) return st;
  if (!d->groups[0] || !d->groups[1] || !d->groups[2]) return DTR_OK;
  VkPipeline pipe = VK_NULL_HANDLE;
  const struct dtr_layout *lay;
  if ((st = get_pipeline(ctx, d, &pipe)) || (st = get_layout(ctx, d->nargs, tex_mask(d), &lay)))
    return st;
  if (ctx->profile && ctx->nqueries + 2 > DTR_MAX_QUERIES && (st = dtr_ctx_submit(ctx)))
    return st;
  if ((st = dtr_rec_begin(ctx))) return st;

  VkDescriptorSet set = VK_NULL_HANDLE;
  if (d->nargs) {
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = ctx->desc_pool,
                                      .descriptorSetCount = 1,
                                      .pSetLayouts = &lay->set};
    VkResult r = vkAllocateDescriptorSets(ctx->device, &ai, &set);
    if (r == VK_ERROR_OUT_OF_POOL_MEMORY || r == VK_ERROR_FRAGMENTED_POOL) {
      /* The pool is spent for this command buffer: run what is recorded. */
      if ((st = dtr_ctx_submit(ctx)) || (st = dtr_rec_begin(ctx))) return st;
      r = vkAllocateDescriptorSets(ctx->device, &ai, &set);
    }
    if (r != VK_SUCCESS) return dtr_vk_fail(ctx, r, "vkAllocateDescriptorSets", __FILE__, __LINE__);
    VkDescriptorBufferInfo bi[DTR_MAX_ARGS];
    VkBufferView bv[DTR_MAX_ARGS];
    VkWriteDescriptorSet w[DTR_MAX_ARGS];
    for (uint32_t i = 0; i < d->nargs; i++) {
      const dtr_view *v = &d->args[i].v;
      w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                    .dstSet = set,
                                    .dstBinding = i,
                                    .descriptorCount = 1,
                                    .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                    .pBufferInfo = &bi[i]};
      if (d->args[i].texel) {
        if (ctx->nviews == ctx->cap_views) {
          uint32_t cap = ctx->cap_views ? 2 * ctx->cap_views : 256;
          VkBufferView *nv = realloc(ctx->views, cap * sizeof *nv);
          if (!nv) return dtr_ctx_set_error(ctx, DTR_ERR_OOM, "out of host memory");
          ctx->views = nv;
          ctx->cap_views = cap;
        }
        VkBufferViewCreateInfo vci = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                      .buffer = v->buf->buffer,
                                      .format = d->args[i].texel == DTR_TEXEL_F16
                                                    ? VK_FORMAT_R16G16B16A16_SFLOAT
                                                    : VK_FORMAT_R32G32B32A32_SFLOAT,
                                      .offset = v->offset,
                                      .range = v->size ? v->size : VK_WHOLE_SIZE};
        VK_TRY(ctx, vkCreateBufferView(ctx->device, &vci, NULL, &bv[i]));
        ctx->views[ctx->nviews++] = bv[i];
        w[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
        w[i].pBufferInfo = NULL;
        w[i].pTexelBufferView = &bv[i];
      } else {
        bi[i] = (VkDescriptorBufferInfo){v->buf->buffer, v->offset,
                                         v->size ? v->size : VK_WHOLE_SIZE};
      }
    }
    vkUpdateDescriptorSets(ctx->device, d->nargs, w, 0, NULL);
  }
  dtr_buf *bufs[DTR_MAX_ARGS];
  int wr[DTR_MAX_ARGS];
  for (uint32_t i = 0; i < d->nargs; i++) {
    bufs[i] = d->args[i].v.buf;
    wr[i] = d->args[i].write;
  }
  dtr_rec_hazard(ctx, bufs, wr, d->nargs);
  vkCmdBindPipeline(ctx->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
  if (d->nargs)
    vkCmdBindDescriptorSets(ctx->cmd, VK_PIPELINE_BIND_POINT_COMPUTE,
                            lay->pipe, 0, 1, &set, 0, NULL);
  if (d->push_size)
    vkCmdPushConstants(ctx->cmd, lay->pipe, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                       d->push_size, d->push);
  if (ctx->profile) {
    ctx->query_kernel[ctx->nqueries / 2] = find_kernel(d->kernel)->name;
    vkCmdWriteTimestamp(ctx->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, ctx->query_pool,
                        ctx->nqueries++);
  }
  vkCmdDispatch(ctx->cmd, d->groups[0], d->groups[1], d->groups[2]);
  if (ctx->profile)
    vkCmdWriteTimestamp(ctx->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, ctx->query_pool,
                        ctx->nqueries++);
  ctx->recorded++;
  return DTR_OK;
}
