/* context.c — instance, device choice and capability query, device creation,
 * the validation messenger, and error reporting.
 *
 * Device choice: opt->device, else DTR_DEVICE, else the first discrete GPU, else
 * integrated, else virtual, else CPU (lavapipe). Validation (opt->validate or
 * DTR_VALIDATE=1) loads VK_LAYER_KHRONOS_validation with a debug-utils messenger
 * that counts every warning and error; dtr_ctx_submit() then fails on any. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *dtr_status_name(dtr_status s) {
  switch (s) {
  case DTR_OK: return "DTR_OK";
  case DTR_ERR_VULKAN: return "DTR_ERR_VULKAN";
  case DTR_ERR_OOM: return "DTR_ERR_OOM";
  case DTR_ERR_IO: return "DTR_ERR_IO";
  case DTR_ERR_FORMAT: return "DTR_ERR_FORMAT";
  case DTR_ERR_UNSUPPORTED: return "DTR_ERR_UNSUPPORTED";
  case DTR_ERR_INVALID: return "DTR_ERR_INVALID";
  }
  return "DTR_ERR_?";
}

const char *dtr_device_type_name(dtr_device_type t) {
  switch (t) {
  case DTR_DEVICE_INTEGRATED: return "integrated GPU";
  case DTR_DEVICE_DISCRETE: return "discrete GPU";
  case DTR_DEVICE_VIRTUAL: return "virtual GPU";
  case DTR_DEVICE_CPU: return "CPU";
  default: return "other";
  }
}

const char *dtr_vk_result_name(VkResult r) {
  switch (r) {
#define R(x) case x: return #x;
    R(VK_SUCCESS) R(VK_NOT_READY) R(VK_TIMEOUT) R(VK_INCOMPLETE)
    R(VK_ERROR_OUT_OF_HOST_MEMORY) R(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    R(VK_ERROR_INITIALIZATION_FAILED) R(VK_ERROR_DEVICE_LOST)
    R(VK_ERROR_MEMORY_MAP_FAILED) R(VK_ERROR_LAYER_NOT_PRESENT)
    R(VK_ERROR_EXTENSION_NOT_PRESENT) R(VK_ERROR_FEATURE_NOT_PRESENT)
    R(VK_ERROR_INCOMPATIBLE_DRIVER) R(VK_ERROR_TOO_MANY_OBJECTS)
    R(VK_ERROR_FORMAT_NOT_SUPPORTED) R(VK_ERROR_FRAGMENTED_POOL)
    R(VK_ERROR_UNKNOWN) R(VK_ERROR_OUT_OF_POOL_MEMORY)
    R(VK_ERROR_INVALID_EXTERNAL_HANDLE) R(VK_ERROR_FRAGMENTATION)
    R(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS) R(VK_PIPELINE_COMPILE_REQUIRED)
#undef R
  default: return "VK_ERROR_(unlisted)";
  }
}

static void set_errv(char *dst, size_t n, const char *fmt, va_list ap) {
  if (dst && n) vsnprintf(dst, n, fmt, ap);
}

dtr_status dtr_errf(char *err, size_t errlen, dtr_status st, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return st;
}

dtr_status dtr_ctx_set_error(dtr_ctx *ctx, dtr_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (ctx) set_errv(ctx->err, sizeof ctx->err, fmt, ap);
  va_end(ap);
  return st;
}

dtr_status dtr_vk_fail(dtr_ctx *ctx, VkResult r, const char *call, const char *file,
                       int line) {
  /* Keep just the function name of the call text. */
  char fn[96];
  size_t i = 0;
  while (call[i] && call[i] != '(' && i + 1 < sizeof fn) { fn[i] = call[i]; i++; }
  fn[i] = 0;
  dtr_status st = (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
                      ? DTR_ERR_OOM : DTR_ERR_VULKAN;
  dtr_ctx_set_error(ctx, st, "%s failed: %s on device '%s' (%s:%d)", fn,
                    dtr_vk_result_name(r), ctx ? ctx->info.name : "?", file, line);
  return st;
}

const char *dtr_ctx_error(const dtr_ctx *ctx) { return ctx ? ctx->err : "no context"; }
const dtr_device_info *dtr_ctx_device(const dtr_ctx *ctx) { return &ctx->info; }
uint32_t dtr_ctx_validation_messages(const dtr_ctx *ctx) { return ctx->vmsgs; }
int dtr_ctx_profiling(const dtr_ctx *ctx) { return ctx->profile; }

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(
    VkDebugUtilsMessageSeverityFlagBitsEXT sev, VkDebugUtilsMessageTypeFlagsEXT type,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
  (void)type;
  dtr_ctx *ctx = user;
  if (sev >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
    ctx->vmsgs++;
    fprintf(stderr, "dtr: validation %s: %s\n",
            sev >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "error" : "warning",
            data->pMessage);
  }
  return VK_FALSE;
}

static int env_int(const char *name, int dflt) {
  const char *s = getenv(name);
  if (!s || !*s) return dflt;
  char *end;
  long v = strtol(s, &end, 10);
  return *end ? dflt : (int)v;
}

static int has_ext(const VkExtensionProperties *ex, uint32_t n, const char *name) {
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(ex[i].extensionName, name)) return 1;
  return 0;
}

/* Fills info from a physical device; needs only an instance. */
static void query_device(VkPhysicalDevice pd, uint32_t index, dtr_device_info *info) {
  memset(info, 0, sizeof *info);
  info->index = index;
  VkPhysicalDeviceProperties props;
  vkGetPhysicalDeviceProperties(pd, &props);
  VkPhysicalDeviceDriverProperties drv = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDeviceSubgroupProperties sg = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &drv};
  VkPhysicalDeviceSubgroupSizeControlProperties sgc = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES,
      .pNext = &sg};
  VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                    .pNext = props.apiVersion >= VK_API_VERSION_1_3
                                                 ? (void *)&sgc : (void *)&sg};
  vkGetPhysicalDeviceProperties2(pd, &p2);
  snprintf(info->name, sizeof info->name, "%s", props.deviceName);
  snprintf(info->driver_name, sizeof info->driver_name, "%s", drv.driverName);
  snprintf(info->driver_info, sizeof info->driver_info, "%s", drv.driverInfo);
  switch (props.deviceType) {
  case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: info->type = DTR_DEVICE_INTEGRATED; break;
  case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: info->type = DTR_DEVICE_DISCRETE; break;
  case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: info->type = DTR_DEVICE_VIRTUAL; break;
  case VK_PHYSICAL_DEVICE_TYPE_CPU: info->type = DTR_DEVICE_CPU; break;
  default: info->type = DTR_DEVICE_OTHER;
  }
  info->vendor_id = props.vendorID;
  info->device_id = props.deviceID;
  info->api_version = props.apiVersion;
  info->subgroup_size = sg.subgroupSize;
  info->subgroup_min = info->subgroup_max = sg.subgroupSize;
  if (props.apiVersion >= VK_API_VERSION_1_3) {
    info->subgroup_min = sgc.minSubgroupSize;
    info->subgroup_max = sgc.maxSubgroupSize;
  }
  const VkPhysicalDeviceLimits *L = &props.limits;
  info->max_shared_memory = L->maxComputeSharedMemorySize;
  info->max_workgroup_invocations = L->maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; i++) {
    info->max_workgroup_size[i] = L->maxComputeWorkGroupSize[i];
    info->max_workgroup_count[i] = L->maxComputeWorkGroupCount[i];
  }
  info->max_storage_buffer_range = L->maxStorageBufferRange;
  info->min_storage_offset_align = (uint32_t)L->minStorageBufferOffsetAlignment;
  info->max_push_constants = L->maxPushConstantsSize;
  info->max_texel_buffer_elements = L->maxTexelBufferElements;
  info->min_texel_offset_align = (uint32_t)L->minTexelBufferOffsetAlignment;
  /* RGBA16F texel views, checked rather than assumed: ops that would read fp16
   * inputs through them fall back to storage buffers where the bit is missing. */
  VkFormatProperties fp16 = {0};
  vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R16G16B16A16_SFLOAT, &fp16);
  info->texel_f16 = !!(fp16.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT);
  info->timestamps = L->timestampComputeAndGraphics;
  info->timestamp_period_ns = L->timestampPeriod;

  VkPhysicalDeviceMaintenance3Properties m3 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  VkPhysicalDeviceProperties2 p3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                    .pNext = &m3};
  vkGetPhysicalDeviceProperties2(pd, &p3);
  info->max_buffer_size = m3.maxMemoryAllocationSize;

  VkPhysicalDeviceVulkan11Features f11 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features f12 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, .pNext = &f11};
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                  .pNext = &f12};
  if (props.apiVersion >= VK_API_VERSION_1_2) {
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    info->fp16_storage = f11.storageBuffer16BitAccess;
    info->fp16_arith = f12.shaderFloat16;
    info->int8_storage = f12.storageBuffer8BitAccess;
    info->int8_arith = f12.shaderInt8;
  }

  uint32_t next = 0;
  vkEnumerateDeviceExtensionProperties(pd, NULL, &next, NULL);
  VkExtensionProperties *ex = calloc(next ? next : 1, sizeof *ex);
  if (ex) {
    vkEnumerateDeviceExtensionProperties(pd, NULL, &next, ex);
    info->coopmat = has_ext(ex, next, "VK_KHR_cooperative_matrix");
    free(ex);
  }

  VkPhysicalDeviceMemoryProperties mp;
  vkGetPhysicalDeviceMemoryProperties(pd, &mp);
  info->heap_count = mp.memoryHeapCount < DTR_MAX_HEAPS ? mp.memoryHeapCount : DTR_MAX_HEAPS;
  for (uint32_t i = 0; i < info->heap_count; i++) {
    info->heap_size[i] = mp.memoryHeaps[i].size;
    info->heap_device_local[i] = !!(mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT);
  }
  /* Unified: integrated/CPU devices whose device-local memory is host-visible.
   * Discrete GPUs keep device-local memory and a staging ring even with ReBAR. */
  if (info->type == DTR_DEVICE_INTEGRATED || info->type == DTR_DEVICE_CPU) {
    for (uint32_t i = 0; i < mp.memoryTypeCount; i++) {
      VkMemoryPropertyFlags f = mp.memoryTypes[i].propertyFlags;
      if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) &&
          (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
          (f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT))
        info->unified_memory = 1;
    }
  }
}

static dtr_status load_vulkan(char *err, size_t errlen) {
  static int loaded = 0;
  if (loaded) return DTR_OK;
  if (volkInitialize() != VK_SUCCESS) {
    snprintf(err, errlen,
             "no Vulkan loader found (libvulkan.so.1): install libvulkan1 and a driver "
             "(mesa-vulkan-drivers gives the lavapipe CPU device)");
    return DTR_ERR_UNSUPPORTED;
  }
  loaded = 1;
  return DTR_OK;
}

static dtr_status make_instance(int validate, VkInstance *out, int *portability, char *err,
                                size_t errlen) {
  dtr_status st = load_vulkan(err, errlen);
  if (st) return st;
  if (volkGetInstanceVersion() < VK_API_VERSION_1_2) {
    snprintf(err, errlen, "the Vulkan loader is older than 1.2; dtr needs Vulkan 1.2");
    return DTR_ERR_UNSUPPORTED;
  }
  uint32_t n = 0;
  vkEnumerateInstanceExtensionProperties(NULL, &n, NULL);
  VkExtensionProperties *ex = calloc(n ? n : 1, sizeof *ex);
  if (!ex) return DTR_ERR_OOM;
  vkEnumerateInstanceExtensionProperties(NULL, &n, ex);
  const char *exts[4];
  uint32_t next = 0;
  *portability = has_ext(ex, n, "VK_KHR_portability_enumeration");
  if (*portability) exts[next++] = "VK_KHR_portability_enumeration";
  if (validate) {
    if (!has_ext(ex, n, VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
      free(ex);
      snprintf(err, errlen, "validation requested but VK_EXT_debug_utils is missing");
      return DTR_ERR_UNSUPPORTED;
    }
    exts[next++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
  }
  free(ex);
  const char *layers[1] = {"VK_LAYER_KHRONOS_validation"};
  if (validate) {
    uint32_t nl = 0;
    vkEnumerateInstanceLayerProperties(&nl, NULL);
    VkLayerProperties *lp = calloc(nl ? nl : 1, sizeof *lp);
    if (!lp) return DTR_ERR_OOM;
    vkEnumerateInstanceLayerProperties(&nl, lp);
    int found = 0;
    for (uint32_t i = 0; i < nl; i++) found |= !strcmp(lp[i].layerName, layers[0]);
    free(lp);
    if (!found) {
      snprintf(err, errlen,
               "DTR_VALIDATE=1 but VK_LAYER_KHRONOS_validation is not installed "
               "(Debian: apt-get install vulkan-validationlayers)");
      return DTR_ERR_UNSUPPORTED;
    }
  }
  VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                           .pApplicationName = "dtr",
                           .apiVersion = VK_API_VERSION_1_2};
  VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                             .flags = *portability
                                          ? VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR
                                          : 0,
                             .pApplicationInfo = &app,
                             .enabledLayerCount = validate ? 1 : 0,
                             .ppEnabledLayerNames = layers,
                             .enabledExtensionCount = next,
                             .ppEnabledExtensionNames = exts};
  VkResult r = vkCreateInstance(&ci, NULL, out);
  if (r != VK_SUCCESS) {
    snprintf(err, errlen, "vkCreateInstance failed: %s", dtr_vk_result_name(r));
    return DTR_ERR_VULKAN;
  }
  volkLoadInstanceOnly(*out);
  return DTR_OK;
}

dtr_status dtr_devices_list(dtr_device_info *out, uint32_t max, uint32_t *count, char *err,
                            size_t errlen) {
  char dummy[8];
  if (!err) { err = dummy; errlen = sizeof dummy; }
  VkInstance inst;
  int port;
  dtr_status st = make_instance(0, &inst, &port, err, errlen);
  if (st) return st;
  uint32_t n = 0;
  vkEnumeratePhysicalDevices(inst, &n, NULL);
  VkPhysicalDevice *pds = calloc(n ? n : 1, sizeof *pds);
  if (!pds) { vkDestroyInstance(inst, NULL); return DTR_ERR_OOM; }
  vkEnumeratePhysicalDevices(inst, &n, pds);
  for (uint32_t i = 0; i < n && i < max; i++) query_device(pds[i], i, &out[i]);
  *count = n;
  free(pds);
  vkDestroyInstance(inst, NULL);
  return DTR_OK;
}

static int type_rank(dtr_device_type t) {
  switch (t) {
  case DTR_DEVICE_DISCRETE: return 0;
  case DTR_DEVICE_INTEGRATED: return 1;
  case DTR_DEVICE_VIRTUAL: return 2;
  case DTR_DEVICE_CPU: return 3;
  default: return 4;
  }
}

static dtr_status create_device(dtr_ctx *ctx, int want, char *err, size_t errlen) {
  uint32_t n = 0;
  vkEnumeratePhysicalDevices(ctx->instance, &n, NULL);
  if (n == 0) {
    snprintf(err, errlen, "no Vulkan device found (install mesa-vulkan-drivers for the "
                          "lavapipe CPU device, or a GPU driver)");
    return DTR_ERR_UNSUPPORTED;
  }
  VkPhysicalDevice *pds = calloc(n, sizeof *pds);
  dtr_device_info *infos = calloc(n, sizeof *infos);
  if (!pds || !infos) { free(pds); free(infos); return DTR_ERR_OOM; }
  vkEnumeratePhysicalDevices(ctx->instance, &n, pds);
  int pick = -1;
  for (uint32_t i = 0; i < n; i++) query_device(pds[i], i, &infos[i]);
  if (want >= 0) {
    if ((uint32_t)want >= n) {
      snprintf(err, errlen, "device %d requested but only %u Vulkan device(s) exist "
                            "(see dtr info)", want, n);
      free(pds); free(infos);
      return DTR_ERR_INVALID;
    }
    pick = want;
  } else {
    for (uint32_t i = 0; i < n; i++) {
      if (infos[i].api_version < VK_API_VERSION_1_2) continue;
      if (pick < 0 || type_rank(infos[i].type) < type_rank(infos[pick].type)) pick = (int)i;
    }
    if (pick < 0) {
      snprintf(err, errlen, "no Vulkan 1.2 device found");
      free(pds); free(infos);
      return DTR_ERR_UNSUPPORTED;
    }
  }
  ctx->phys = pds[pick];
  ctx->info = infos[pick];
  free(pds);
  free(infos);
  if (ctx->info.api_version < VK_API_VERSION_1_2) {
    snprintf(err, errlen, "device '%s' supports Vulkan %u.%u; dtr needs 1.2", ctx->info.name,
             VK_API_VERSION_MAJOR(ctx->info.api_version),
             VK_API_VERSION_MINOR(ctx->info.api_version));
    return DTR_ERR_UNSUPPORTED;
  }
  vkGetPhysicalDeviceMemoryProperties(ctx->phys, &ctx->memprops);

  uint32_t nq = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, NULL);
  VkQueueFamilyProperties *qf = calloc(nq ? nq : 1, sizeof *qf);
  if (!qf) return DTR_ERR_OOM;
  vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, qf);
  int fam = -1;
  /* Prefer a compute family with timestamps. */
  for (uint32_t i = 0; i < nq && fam < 0; i++)
    if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && qf[i].timestampValidBits) fam = (int)i;
  for (uint32_t i = 0; i < nq && fam < 0; i++)
    if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) fam = (int)i;
  if (fam >= 0 && !qf[fam].timestampValidBits) ctx->info.timestamps = 0;
  free(qf);
  if (fam < 0) {
    snprintf(err, errlen, "device '%s' has no compute queue", ctx->info.name);
    return DTR_ERR_UNSUPPORTED;
  }
  ctx->queue_family = (uint32_t)fam;

  /* Enable the optional storage/arithmetic features the device has. */
  VkPhysicalDeviceVulkan11Features f11 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
      .storageBuffer16BitAccess = (VkBool32)ctx->info.fp16_storage};
  VkPhysicalDeviceVulkan12Features f12 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
      .pNext = &f11,
      .shaderFloat16 = (VkBool32)ctx->info.fp16_arith,
      .shaderInt8 = (VkBool32)ctx->info.int8_arith,
      .storageBuffer8BitAccess = (VkBool32)ctx->info.int8_storage};
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                  .pNext = &f12};
  float prio = 1.0f;
  VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                 .queueFamilyIndex = ctx->queue_family,
                                 .queueCount = 1,
                                 .pQueuePriorities = &prio};
  VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                            .pNext = &f2,
                            .queueCreateInfoCount = 1,
                            .pQueueCreateInfos = &qci};
  VkResult r = vkCreateDevice(ctx->phys, &dci, NULL, &ctx->device);
  if (r != VK_SUCCESS) {
    snprintf(err, errlen, "vkCreateDevice failed: %s on device '%s'", dtr_vk_result_name(r),
             ctx->info.name);
    return DTR_ERR_VULKAN;
  }
  volkLoadDevice(ctx->device);
  vkGetDeviceQueue(ctx->device, ctx->queue_family, 0, &ctx->queue);
  return DTR_OK;
}

static dtr_status create_objects(dtr_ctx *ctx) {
  VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                 .flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT,
                                 .queueFamilyIndex = ctx->queue_family};
  VK_TRY(ctx, vkCreateCommandPool(ctx->device, &pci, NULL, &ctx->cmd_pool));
  VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                    .commandPool = ctx->cmd_pool,
                                    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                    .commandBufferCount = 1};
  VK_TRY(ctx, vkAllocateCommandBuffers(ctx->device, &ai, &ctx->cmd));
  VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VK_TRY(ctx, vkCreateFence(ctx->device, &fci, NULL, &ctx->fence));
  VkDescriptorPoolSize ps[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 4096 * 8},
                                 {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, 4096 * 4}};
  VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                    .maxSets = 4096,
                                    .poolSizeCount = 2,
                                    .pPoolSizes = ps};
  VK_TRY(ctx, vkCreateDescriptorPool(ctx->device, &dpi, NULL, &ctx->desc_pool));
  VkPipelineCacheCreateInfo cci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  VK_TRY(ctx, vkCreatePipelineCache(ctx->device, &cci, NULL, &ctx->pipe_cache));
  if (ctx->profile) {
    if (!ctx->info.timestamps) {
      fprintf(stderr, "dtr: DTR_PROFILE=1 but device '%s' has no compute timestamps; "
                      "profiling is off\n", ctx->info.name);
      ctx->profile = 0;
    } else {
      VkQueryPoolCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                   .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                   .queryCount = DTR_MAX_QUERIES};
      VK_TRY(ctx, vkCreateQueryPool(ctx->device, &qci, NULL, &ctx->query_pool));
    }
  }
  return DTR_OK;
}

dtr_ctx *dtr_ctx_create(const dtr_ctx_options *opt, dtr_status *st_out, char *err,
                        size_t errlen) {
  char dummy[8];
  if (!err) { err = dummy; errlen = sizeof dummy; }
  err[0] = 0;
  dtr_ctx_options o = opt ? *opt : DTR_CTX_DEFAULTS;
  dtr_status st;
  dtr_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) { st = DTR_ERR_OOM; snprintf(err, errlen, "out of memory"); goto fail; }
  ctx->validate = o.validate >= 0 ? o.validate : env_int("DTR_VALIDATE", 0);
  ctx->profile = o.profile >= 0 ? o.profile : env_int("DTR_PROFILE", 0);
  int want = o.device >= 0 ? o.device : env_int("DTR_DEVICE", -1);
  ctx->epoch = 1;
  int port;
  st = make_instance(ctx->validate, &ctx->instance, &port, err, errlen);
  if (st) goto fail;
  if (ctx->validate) {
    VkDebugUtilsMessengerCreateInfoEXT mci = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_validation,
        .pUserData = ctx};
    if (vkCreateDebugUtilsMessengerEXT(ctx->instance, &mci, NULL, &ctx->messenger) !=
        VK_SUCCESS) {
      st = DTR_ERR_VULKAN;
      snprintf(err, errlen, "vkCreateDebugUtilsMessengerEXT failed");
      goto fail;
    }
  }
  st = create_device(ctx, want, err, errlen);
  if (st) goto fail;
  st = create_objects(ctx);
  if (st) { snprintf(err, errlen, "%s", ctx->err); goto fail; }
  if (st_out) *st_out = DTR_OK;
  return ctx;
fail:
  if (st_out) *st_out = st;
  dtr_ctx_destroy(ctx);
  return NULL;
}

void dtr_ctx_destroy(dtr_ctx *ctx) {
  if (!ctx) return;
  if (ctx->device) {
    if (ctx->recording) dtr_ctx_submit(ctx);
    vkDeviceWaitIdle(ctx->device);
    dtr_pipelines_destroy(ctx);
    dtr_staging_destroy(ctx);
    for (uint32_t i = 0; i < ctx->nlayouts; i++) {
      vkDestroyPipelineLayout(ctx->device, ctx->layouts[i].pipe, NULL);
      vkDestroyDescriptorSetLayout(ctx->device, ctx->layouts[i].set, NULL);
    }
    dtr_views_release(ctx);
    free(ctx->views);
    if (ctx->query_pool) vkDestroyQueryPool(ctx->device, ctx->query_pool, NULL);
    if (ctx->pipe_cache) vkDestroyPipelineCache(ctx->device, ctx->pipe_cache, NULL);
    if (ctx->desc_pool) vkDestroyDescriptorPool(ctx->device, ctx->desc_pool, NULL);
    if (ctx->fence) vkDestroyFence(ctx->device, ctx->fence, NULL);
    if (ctx->cmd_pool) vkDestroyCommandPool(ctx->device, ctx->cmd_pool, NULL);
    vkDestroyDevice(ctx->device, NULL);
  }
  if (ctx->messenger) vkDestroyDebugUtilsMessengerEXT(ctx->instance, ctx->messenger, NULL);
  if (ctx->instance) vkDestroyInstance(ctx->instance, NULL);
  free(ctx);
}
