/* ops_common.c — what every op wrapper shares: the 1D grid, view checks, and
 * axpy, the smallest op (also the runtime's barrier and specialization test). */
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
  size_t have = v.size ? v.size : (v.offset <= dtr_buf_size(v.buf)
                                       ? dtr_buf_size(v.buf) - v.offset : 0);
  if (have < bytes)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: %s holds %zu bytes but the shape needs %zu", op, arg, have,
                             bytes);
  return DTR_OK;
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
