/* test_runtime.c — the runtime itself: transfers, fills, copies, views with
 * offsets, automatic barriers over long dependent chains, specialization
 * constants, profiling, and the errors a caller can provoke. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtr_push.h"
#include "harness.h"

static void test_transfers(dtr_ctx *ctx) {
  size_t n = 100003;
  float *x = th_alloc(n), *y = th_alloc(n);
  th_rand(x, n, -1, 1);
  dtr_buf *b = th_buf(ctx, x, n * 4);
  th_get(ctx, b, y, n * 4);
  th_expect(!memcmp(x, y, n * 4), "upload/download round trip of %zu floats", n);
  dtr_buf *c = th_poison(ctx, n * 4);
  th_ok(ctx, dtr_buf_copy(ctx, c, 16, b, 0, (n - 4) * 4), "copy");
  th_ok(ctx, dtr_buf_fill(ctx, c, 0, 16, 0x3f800000u), "fill");
  th_get(ctx, c, y, n * 4);
  int ok = y[0] == 1.0f && y[3] == 1.0f && !memcmp(y + 4, x, (n - 4) * 4);
  th_expect(ok, "recorded fill then copy land in order");
  dtr_buf_destroy(ctx, b);
  dtr_buf_destroy(ctx, c);
  free(x);
  free(y);
}

/* y = y + a_i x, 64 times, each depending on the last: any missing barrier
 * shows as a wrong sum. Then 8 independent axpys into separate slices. */
static void test_barriers(dtr_ctx *ctx) {
  uint32_t n = 70001; /* not a multiple of the workgroup */
  float *x = th_alloc(n), *y = th_alloc(n), *got = th_alloc(n);
  double *ref = th_dalloc(n);
  th_rand(x, n, -1, 1);
  th_rand(y, n, -1, 1);
  dtr_buf *bx = th_buf(ctx, x, n * 4), *by = th_buf(ctx, y, n * 4);
  for (uint32_t i = 0; i < n; i++) ref[i] = y[i];
  for (int s = 0; s < 64; s++) {
    float a = 0.01f * (float)(s % 7) - 0.02f;
    th_ok(ctx, dtr_op_axpy(ctx, dtr_whole(by), dtr_whole(bx), a, n), "axpy");
    for (uint32_t i = 0; i < n; i++) ref[i] = (double)(float)((float)a * x[i] + (float)ref[i]);
  }
  th_submit(ctx);
  th_get(ctx, by, got, n * 4);
  th_check("64 dependent axpy dispatches", got, ref, n, 1e-6, 1e-6, 1e-6);

  /* Views with offsets: slices of one buffer, aligned to the device's rule. */
  uint32_t align = dtr_ctx_device(ctx)->min_storage_offset_align / 4;
  if (align == 0) align = 1;
  uint32_t slice = ((n / 8) / align) * align;
  th_ok(ctx, dtr_buf_upload(ctx, by, 0, y, n * 4), "upload");
  for (int s = 0; s < 8; s++) {
    dtr_view v = {by, (size_t)s * slice * 4, (size_t)slice * 4};
    th_ok(ctx, dtr_op_axpy(ctx, v, dtr_whole(bx), (float)(s + 1), slice), "axpy slice");
  }
  th_submit(ctx);
  th_get(ctx, by, got, n * 4);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t s = i / slice;
    ref[i] = s < 8 ? (double)((float)(s + 1) * x[i - s * slice] + y[i]) : y[i];
  }
  th_check("8 independent axpys on views with offsets", got, ref, n, 1e-7, 0, 0);
  dtr_buf_destroy(ctx, bx);
  dtr_buf_destroy(ctx, by);
  free(x); free(y); free(got); free(ref);
}

static void test_spec_constants(dtr_ctx *ctx) {
  uint32_t n = 5000;
  float *x = th_alloc(n), *got = th_alloc(n);
  double *ref = th_dalloc(n);
  th_rand(x, n, -2, 2);
  dtr_buf *bx = th_buf(ctx, x, n * 4);
  const uint32_t sizes[3] = {32, 64, 128};
  for (int k = 0; k < 3; k++) {
    dtr_buf *by = th_buf(ctx, NULL, n * 4);
    th_ok(ctx, dtr_buf_fill(ctx, by, 0, n * 4, 0), "zero");
    dtr_pc_axpy pc = {n, 3.0f};
    dtr_arg args[2] = {DTR_OUT(dtr_whole(by)), DTR_IN(dtr_whole(bx))};
    dtr_dispatch_desc d = {.kernel = "axpy", .spec = &sizes[k], .nspec = 1, .args = args,
                           .nargs = 2, .push = &pc, .push_size = sizeof pc};
    dtr_grid_1d(n, sizes[k], d.groups);
    th_ok(ctx, dtr_dispatch(ctx, &d), "dispatch");
    th_get(ctx, by, got, n * 4);
    for (uint32_t i = 0; i < n; i++) ref[i] = 3.0 * x[i];
    char what[64];
    snprintf(what, sizeof what, "axpy with workgroup size %u (spec constant)", sizes[k]);
    th_check(what, got, ref, n, 1e-7, 0, 1e-7);
    dtr_buf_destroy(ctx, by);
  }
  dtr_buf_destroy(ctx, bx);
  free(x); free(got); free(ref);
}

static void test_errors(dtr_ctx *ctx) {
  dtr_buf *b = th_buf(ctx, NULL, 1024);
  dtr_dispatch_desc d = {.kernel = "no_such_kernel", .groups = {1, 1, 1}};
  dtr_status st = dtr_dispatch(ctx, &d);
  th_expect(st == DTR_ERR_INVALID && strstr(dtr_ctx_error(ctx), "no_such_kernel"),
            "unknown kernel is reported by name: %s", dtr_ctx_error(ctx));
  st = dtr_op_axpy(ctx, dtr_whole(b), dtr_whole(b), 1.0f, 1000);
  th_expect(st == DTR_ERR_INVALID, "view too small for the shape: %s", dtr_ctx_error(ctx));
  float tmp[4];
  st = dtr_buf_download(ctx, b, 1020, tmp, 16);
  th_expect(st == DTR_ERR_INVALID, "download past the end: %s", dtr_ctx_error(ctx));
  uint64_t range = dtr_ctx_device(ctx)->max_storage_buffer_range;
  if (range < ((uint64_t)1 << 30)) {
    /* A tensor larger than one binding can see fails clearly (lavapipe: 128 MiB). */
    size_t big = (size_t)range + 4096;
    dtr_buf *bb = dtr_buf_create(ctx, big);
    if (bb) {
      uint32_t n = (uint32_t)(big / 4);
      st = dtr_op_axpy(ctx, dtr_whole(bb), dtr_whole(bb), 1.0f, n);
      th_expect(st == DTR_ERR_UNSUPPORTED && strstr(dtr_ctx_error(ctx), "maxStorageBufferRange"),
                "binding beyond maxStorageBufferRange: %s", dtr_ctx_error(ctx));
      dtr_buf_destroy(ctx, bb);
    }
  }
  dtr_buf_destroy(ctx, b);
}

static void test_profiling(void) {
  dtr_ctx_options o = DTR_CTX_DEFAULTS;
  o.validate = 1;
  o.profile = 1;
  char err[512];
  dtr_status st;
  dtr_ctx *ctx = dtr_ctx_create(&o, &st, err, sizeof err);
  th_expect(ctx != NULL, "second context with profiling: %s", ctx ? "created" : err);
  if (!ctx) return;
  if (!dtr_ctx_profiling(ctx)) {
    th_expect(1, "device has no timestamps; profiling off");
    dtr_ctx_destroy(ctx);
    return;
  }
  uint32_t n = 1 << 16;
  dtr_buf *x = dtr_buf_create(ctx, n * 4), *y = dtr_buf_create(ctx, n * 4);
  dtr_buf_fill(ctx, x, 0, n * 4, 0);
  dtr_buf_fill(ctx, y, 0, n * 4, 0);
  for (int i = 0; i < 10; i++) dtr_op_axpy(ctx, dtr_whole(y), dtr_whole(x), 1.0f, n);
  st = dtr_ctx_submit(ctx);
  th_expect(st == DTR_OK, "profiled submit");
  char buf[4096] = {0};
  FILE *f = fmemopen(buf, sizeof buf - 1, "w");
  dtr_ctx_profile_report(ctx, f);
  fclose(f);
  th_expect(strstr(buf, "axpy") && strstr(buf, "10"), "profile report lists axpy x10:\n%s", buf);
  th_expect(dtr_ctx_validation_messages(ctx) == 0, "profiling context: no validation messages");
  dtr_buf_destroy(ctx, x);
  dtr_buf_destroy(ctx, y);
  dtr_ctx_destroy(ctx);
}

int main(void) {
  dtr_ctx *ctx = th_ctx();
  const dtr_device_info *d = dtr_ctx_device(ctx);
  th_expect(d->subgroup_size > 0 && d->max_storage_buffer_range > 0 && d->heap_count > 0,
            "device capabilities: subgroup %u, shared %u B, binding range %llu",
            d->subgroup_size, d->max_shared_memory,
            (unsigned long long)d->max_storage_buffer_range);
  test_transfers(ctx);
  test_barriers(ctx);
  test_spec_constants(ctx);
  test_errors(ctx);
  test_profiling();
  return th_finish();
}
