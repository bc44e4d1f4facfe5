/* ops_common.c — what every op wrapper shares: the 1D grid, view checks, the
 * fp16-input helpers, and axpy, the smallest op (also the runtime's barrier and
 * specialization test). */
#include <stdio.h>

#include "dtr_ops.h"
#include "dtr_push.h"

void dtr_grid_1d(uint32_t n, uint32_t wg, uint32_t groups[3]) {
  uint32_t g = (n + wg - 1) / wg;
  groups[0] = g < 65535 ? (g ? g : 1) : 65535;
  groups[1] = (g + 65534) / 65535;
  if (!groups[1]) groups[1] = 1;
  groups[2] = 1;
}

dtr_status dtr_check_view(dtr_ctx *ctx, const char *op, const char *arg, dtr_view v,
                          size_t bytes) {
  if (!v.buf) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: %s is missing", op, arg);
  size_t bsize = dtr_buf_size(v.buf);
  if (v.offset > bsize)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: %s offset %zu is past its buffer of %zu bytes", op, arg,
                             v.offset, bsize);
  if (v.size && v.size > bsize - v.offset)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: %s (offset %zu, size %zu) overruns its buffer of %zu bytes",
                             op, arg, v.offset, v.size, bsize);
  size_t have = v.size ? v.size : bsize - v.offset;
  if (have < bytes)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: %s holds %zu bytes but the shape needs %zu", op, arg, have,
                             bytes);
  return DTR_OK;
}

size_t dtr_io_bytes(size_t n, int f16) { return f16 ? (n + 1) / 2 * 4 : n * 4; }

dtr_status dtr_check_io_view(dtr_ctx *ctx, const char *op, const char *arg, dtr_view v,
                             size_t n, int f16) {
  char name[64];
  snprintf(name, sizeof name, "%s%s", arg, f16 ? " (packed fp16)" : "");
  return dtr_check_view(ctx, op, name, v, dtr_io_bytes(n, f16));
}

dtr_arg dtr_tex_arg(dtr_view v, size_t n, int f16) {
  dtr_view t = {v.buf, v.offset, dtr_io_bytes(n, f16)};
  return f16 ? DTR_TEX16(t) : DTR_TEX(t);
}

const char *dtr_kernel_h16(char *buf, size_t len, const char *base, int f16) {
  if (!f16) return base;
  snprintf(buf, len, "%s_h16", base);
  return buf;
}

dtr_status dtr_op_axpy(dtr_ctx *ctx, dtr_view y, dtr_view x, float a, uint32_t n) {
  dtr_status st;
  if ((st = dtr_check_view(ctx, "axpy", "y", y, (size_t)n * 4)) ||
      (st = dtr_check_view(ctx, "axpy", "x", x, (size_t)n * 4)))
    return st;
  const uint32_t wg = 256;
  dtr_pc_axpy pc = {n, a};
  dtr_arg args[2] = {DTR_OUT(y), DTR_IN(x)};
  dtr_dispatch_desc d = {.kernel = "axpy", .spec = &wg, .nspec = 1, .args = args,
                         .nargs = 2, .push = &pc, .push_size = sizeof pc};
  dtr_grid_1d(n, wg, d.groups);
  return dtr_dispatch(ctx, &d);
}

/* silu_fwd / silu_bwd reuse axpy's push layout (n; a unused). */
static dtr_status elementwise(dtr_ctx *ctx, const char *kernel, const dtr_arg *args,
                              uint32_t nargs, uint32_t n) {
  dtr_status st;
  for (uint32_t i = 0; i < nargs; i++)
    if ((st = dtr_check_view(ctx, kernel, i ? "input" : "output", args[i].v, (size_t)n * 4)))
      return st;
  const uint32_t wg = 256;
  dtr_pc_axpy pc = {n, 0.0f};
  dtr_dispatch_desc d = {.kernel = kernel, .spec = &wg, .nspec = 1, .args = args,
                         .nargs = nargs, .push = &pc, .push_size = sizeof pc};
  dtr_grid_1d(n, wg, d.groups);
  return dtr_dispatch(ctx, &d);
}

dtr_status dtr_op_silu_fwd(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t n) {
  dtr_arg args[2] = {DTR_OUT(out), DTR_IN(x)};
  return elementwise(ctx, "silu_fwd", args, 2, n);
}

dtr_status dtr_op_silu_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dout, dtr_view x, uint32_t n) {
  dtr_arg args[3] = {DTR_OUT(dx), DTR_IN(dout), DTR_IN(x)};
  return elementwise(ctx, "silu_bwd", args, 3, n);
}

/* n floats (n even) <-> n/2 words of packed fp16, n/2 invocations. */
static dtr_status pack(dtr_ctx *ctx, const char *kernel, dtr_view out, dtr_view in, uint32_t n,
                       size_t out_bytes, size_t in_bytes) {
  dtr_status st;
  if (n % 2)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: n = %u must be even", kernel, n);
  if ((st = dtr_check_view(ctx, kernel, "output", out, out_bytes)) ||
      (st = dtr_check_view(ctx, kernel, "input", in, in_bytes)))
    return st;
  const uint32_t wg = 256;
  dtr_pc_axpy pc = {n / 2, 0.0f};
  dtr_arg args[2] = {DTR_OUT(out), DTR_IN(in)};
  dtr_dispatch_desc d = {.kernel = kernel, .spec = &wg, .nspec = 1, .args = args,
                         .nargs = 2, .push = &pc, .push_size = sizeof pc};
  dtr_grid_1d(n / 2, wg, d.groups);
  return dtr_dispatch(ctx, &d);
}

dtr_status dtr_op_pack_f16(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t n) {
  return pack(ctx, "pack_f16", out, x, n, (size_t)n * 2, (size_t)n * 4);
}

dtr_status dtr_op_unpack_f16(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t n) {
  return pack(ctx, "pack_f16_unpack", out, x, n, (size_t)n * 4, (size_t)n * 2);
}
