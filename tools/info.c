/* info.c — `dtr info`: every Vulkan device with its type, driver, memory heaps
 * and the capabilities dtr's kernels choose between. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
  fprintf(f, "usage: dtr info [--json]\n"
             "  Lists every Vulkan device the loader sees, marks the one dtr picks\n"
             "  (first discrete GPU, else integrated, else CPU; DTR_DEVICE=N or --device N\n"
             "  on other commands overrides), and prints its capabilities.\n"
             "  --json   one JSON object instead of text\n");
}

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

int cmd_info(int argc, char **argv) {
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
    else { fprintf(stderr, "dtr info: unknown flag '%s'\n", argv[i]); usage(stderr); return 2; }
  }
  dtr_device_info devs[16];
  uint32_t n = 0;
  char err[512];
  dtr_status st = dtr_devices_list(devs, 16, &n, err, sizeof err);
  if (st) { fprintf(stderr, "dtr info: %s\n", err); return 1; }
  if (n > 16) n = 16;
  /* The default choice, as dtr_ctx_create makes it. */
  int pick = -1;
  static const int rank[] = {4, 1, 0, 2, 3}; /* by dtr_device_type */
  for (uint32_t i = 0; i < n; i++)
    if (devs[i].api_version >= ((1u << 22) | (2u << 12)) &&
        (pick < 0 || rank[devs[i].type] < rank[devs[pick].type]))
      pick = (int)i;
  if (json) printf("{\"devices\": [");
  for (uint32_t i = 0; i < n; i++) {
    const dtr_device_info *d = &devs[i];
    unsigned maj = d->api_version >> 22, min = (d->api_version >> 12) & 0x3ff,
             pat = d->api_version & 0xfff;
    if (json) {
      printf("%s{\"index\": %u, \"name\": ", i ? ", " : "", i);
      json_str(d->name);
      printf(", \"type\": \"%s\", \"default\": %s, \"api\": \"%u.%u.%u\", \"driver\": ",
             dtr_device_type_name(d->type), (int)i == pick ? "true" : "false", maj, min, pat);
      json_str(d->driver_name);
      printf(", \"driver_info\": ");
      json_str(d->driver_info);
      printf(", \"subgroup_size\": %u, \"subgroup_min\": %u, \"subgroup_max\": %u, "
             "\"shared_memory\": %u, \"max_invocations\": %u, "
             "\"max_storage_buffer_range\": %llu, \"max_buffer_size\": %llu, "
             "\"fp16_storage\": %d, \"fp16_arith\": %d, \"texel_f16\": %d, "
             "\"int8_storage\": %d, \"int8_arith\": %d, \"cooperative_matrix\": %d, "
             "\"timestamps\": %d, "
             "\"unified_memory\": %d, \"heaps\": [",
             d->subgroup_size, d->subgroup_min, d->subgroup_max, d->max_shared_memory,
             d->max_workgroup_invocations, (unsigned long long)d->max_storage_buffer_range,
             (unsigned long long)d->max_buffer_size, d->fp16_storage, d->fp16_arith,
             d->texel_f16, d->int8_storage, d->int8_arith, d->coopmat, d->timestamps,
             d->unified_memory);
      for (uint32_t h = 0; h < d->heap_count; h++)
        printf("%s{\"bytes\": %llu, \"device_local\": %d}", h ? ", " : "",
               (unsigned long long)d->heap_size[h], d->heap_device_local[h]);
      printf("]}");
      continue;
    }
    printf("device %u%s: %s\n", i, (int)i == pick ? " (default)" : "", d->name);
    printf("  type            %s, Vulkan %u.%u.%u, vendor 0x%04x device 0x%04x\n",
           dtr_device_type_name(d->type), maj, min, pat, d->vendor_id, d->device_id);
    printf("  driver          %s %s\n", d->driver_name, d->driver_info);
    for (uint32_t h = 0; h < d->heap_count; h++)
      printf("  memory heap %u   %.2f GiB%s\n", h, (double)d->heap_size[h] / (1 << 30),
             d->heap_device_local[h] ? " device-local" : "");
    printf("  memory model    %s\n", d->unified_memory ? "unified (host-visible, mapped)"
                                                       : "device-local with staging");
    printf("  subgroup size   %u (range %u..%u)\n", d->subgroup_size, d->subgroup_min,
           d->subgroup_max);
    printf("  workgroup       %u invocations, %u KiB shared memory\n",
           d->max_workgroup_invocations, d->max_shared_memory / 1024);
    printf("  buffers         %.0f MiB per binding, %.2f GiB per allocation\n",
           (double)d->max_storage_buffer_range / (1 << 20),
           (double)d->max_buffer_size / (1 << 30));
    printf("  fp16            storage %s, arithmetic %s, RGBA16F texel views %s\n",
           d->fp16_storage ? "yes" : "no", d->fp16_arith ? "yes" : "no",
           d->texel_f16 ? "yes" : "no");
    printf("  int8            storage %s, arithmetic %s\n", d->int8_storage ? "yes" : "no",
           d->int8_arith ? "yes" : "no");
    printf("  coop. matrix    %s\n", d->coopmat ? "yes (VK_KHR_cooperative_matrix)" : "no");
    printf("  timestamps      %s\n", d->timestamps ? "yes" : "no");
  }
  if (json) printf("]}\n");
  if (n == 0 && !json) printf("no Vulkan devices found\n");
  return 0;
}
