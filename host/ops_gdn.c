/* ops_gdn.c — the Gated DeltaNet ops of dtr_linear.h: chunked forward and
 * backward (shaders/gdn_chunk_*.comp, math in gdn_common.glsl), the one-token
 * decode step, the gates (g, beta from projections) and the per-row L2 norm.
 *
 * The backward runs three passes: the forward again in its "save" variant (state
 * checkpoints S_n per chunk and the transformed values Vn into the workspace),
 * gdn_chunk_bwd_dv (dS walked backwards over chunks, dv, dR and the dS_{n+1}
 * checkpoints), then gdn_chunk_bwd_dqk (dq, dk, dbeta, dg, every chunk in
 * parallel). Nothing uses float atomics, so results are deterministic.
 *
 * Each backward kernel has a twin *_tex reading q, k, v, dout and the workspace
 * as vec4 texel buffers, taken on CPU devices: llvmpipe loads storage buffers
 * (and shared memory) lane by lane but fetches a texel with one vector gather.
 * The first two twins also walk the tokens one by one instead of building the
 * chunk matrices in shared memory (see gdn_chunk_fwd_save_tex.comp), in
 * dispatches of a bounded number of chunks (lavapipe's loop limit); all three
 * fill the same workspace. The recurrent forward has a texel twin too
 * (gdn_recurrent_fwd_tex, four value columns per invocation). DTR_GDN_TEXEL=0/1
 * forces the choice (the tests run both); the texel path is only taken where the
 * shapes and views allow it.
 *
 * With desc->io_f16 the chunked ops read q, k, v as packed fp16: the storage
 * kernels' h16 variants (shaders/qkv_load.glsl), or RGBA16F texel views for the
 * *_tex kernels where the device binds them (else the storage kernels run). */
#include "dtr_linear.h"
#include "dtr_push.h"

#include <stdlib.h>
#include <string.h>

#define GDN_WG 64u
#define GDN_MAX_C 64u
#define GDN_MAX_DIM 256u

/* Checkpoint slots per head: sequence b's chunk n (n <= its chunk count) uses
 * floor(bos_b / C) + 2b + n, which never overlaps the next sequence's slots. */
static size_t gdn_slots(const dtr_lin_desc *d, uint32_t C) {
  return (size_t)d->Ttot / C + 2u * (size_t)d->B;
}

static uint32_t gdn_chunk(const dtr_lin_desc *d) { return d->chunk ? d->chunk : 64u; }

/* Value columns per workgroup of the column-owner kernels (fwd, bwd_dv): shared
 * memory holds M (C*C), one C-column per invocation (C*WG) and gam, beta (2C),
 * within 32 KiB, the least any device here offers. */
static uint32_t gdn_cols(uint32_t C) {
  uint32_t wg = 64;
  while (wg > 8 && 4u * ((size_t)C * C + (size_t)C * wg + 2u * C) > 32768u) wg /= 2;
  return wg;
}

size_t dtr_op_gdn_chunk_bwd_workspace(const dtr_lin_desc *d) {
  uint32_t C = gdn_chunk(d);
  size_t kv = (size_t)d->H * d->K * d->V;
  return 4 * (2 * gdn_slots(d, C) * kv + 2 * (size_t)d->Ttot * d->H * d->V);
}

static dtr_status check_desc(dtr_ctx *ctx, const char *op, const dtr_lin_desc *d) {
  if (!d || !d->B || !d->H || !d->K || !d->V)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: empty shape", op);
  if (d->K > GDN_MAX_DIM || d->V > GDN_MAX_DIM)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: K=%u, V=%u; at most %u supported",
                             op, d->K, d->V, GDN_MAX_DIM);
  uint32_t C = gdn_chunk(d);
  if (C > GDN_MAX_C)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: chunk %u > %u", op, C, GDN_MAX_C);
  return DTR_OK;
}

/* q, k (Ttot, H, K); v (Ttot, H, V) (packed fp16 with d->io_f16); g, beta
 * (Ttot, H); offsets (B+1). */
static dtr_status check_inputs(dtr_ctx *ctx, const char *op, dtr_view q, dtr_view k,
                               dtr_view v, dtr_view g, dtr_view beta, dtr_view offsets,
                               const dtr_lin_desc *d) {
  size_t tk = (size_t)d->Ttot * d->H * d->K, tv = (size_t)d->Ttot * d->H * d->V;
  size_t th = (size_t)d->Ttot * d->H * 4;
  int h = d->io_f16 != 0;
  dtr_status st;
  if ((st = dtr_check_io_view(ctx, op, "q", q, tk, h)) ||
      (st = dtr_check_io_view(ctx, op, "k", k, tk, h)) ||
      (st = dtr_check_io_view(ctx, op, "v", v, tv, h)) ||
      (st = dtr_check_view(ctx, op, "g", g, th)) ||
      (st = dtr_check_view(ctx, op, "beta", beta, th)) ||
      (st = dtr_check_view(ctx, op, "offsets", offsets, (size_t)(d->B + 1) * 4)))
    return st;
  return DTR_OK;
}

static dtr_status check_opt(dtr_ctx *ctx, const char *op, const char *arg, dtr_view s,
                            size_t bytes) {
  return dtr_view_present(s) ? dtr_check_view(ctx, op, arg, s, bytes) : DTR_OK;
}

static dtr_pc_gdn_chunk chunk_pc(const dtr_lin_desc *d, uint32_t C, int has_in, int has_out) {
  size_t kv = (size_t)d->H * d->K * d->V, ns = gdn_slots(d, C);
  dtr_pc_gdn_chunk pc = {d->B, d->Ttot, d->H, d->K, d->V, d->scale,
                         (uint32_t)has_in, (uint32_t)has_out, (uint32_t)ns, 0, 0, 0, 0, 0, 0};
  pc.ws_s = 0;
  pc.ws_ds = (uint32_t)(ns * kv);
  pc.ws_vn = (uint32_t)(2 * ns * kv);
  pc.ws_dr = (uint32_t)(2 * ns * kv + (size_t)d->Ttot * d->H * d->V);
  return pc;
}

/* A storage-buffer forward: kernel (its h16 variant with d->io_f16) writing out0. */
static dtr_status fwd_dispatch(dtr_ctx *ctx, const char *kernel, dtr_arg out0, dtr_view state_out,
                               dtr_view q, dtr_view k, dtr_view v, dtr_view g, dtr_view beta,
                               dtr_view state_in, dtr_view offsets, const dtr_lin_desc *d,
                               int save) {
  uint32_t C = gdn_chunk(d);
  int has_in = dtr_view_present(state_in), has_out = !save && dtr_view_present(state_out);
  dtr_pc_gdn_chunk pc = chunk_pc(d, C, has_in, has_out);
  /* Absent optional states bind q as a stand-in the kernel never touches. */
  dtr_arg args[9] = {out0, has_out ? DTR_OUT(state_out) : DTR_IN(q), DTR_IN(q), DTR_IN(k),
                     DTR_IN(v), DTR_IN(g), DTR_IN(beta), DTR_IN(has_in ? state_in : q),
                     DTR_IN(offsets)};
  uint32_t wg = gdn_cols(C), spec[3] = {wg, C, d->K};
  char kname[64];
  dtr_dispatch_desc dd = {.kernel = dtr_kernel_h16(kname, sizeof kname, kernel, d->io_f16 != 0),
                          .spec = spec, .nspec = 3, .args = args, .nargs = 9, .push = &pc,
                          .push_size = sizeof pc, .groups = {(d->V + wg - 1) / wg, d->H, d->B}};
  return dtr_dispatch(ctx, &dd);
}

/* ---- texel paths (CPU devices) ------------------------------------------ */

/* True when the *_tex kernels should run: DTR_GDN_TEXEL=0/1 if set, else on CPU
 * devices; and only where they apply: K and V multiples of 4 (rows and workspace
 * offsets are whole texels), K <= 128 (the token-walking kernels keep a state
 * column in registers through unrolled K/4-trip loops), fp16 q, k, v only where
 * the device binds RGBA16F texel views, and each of the count views (of n[i]
 * values) at the texel offset alignment and within the device's texel-buffer
 * limit. */
static int use_texel(dtr_ctx *ctx, const dtr_lin_desc *d, const dtr_view *v, const size_t *n,
                     int count) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  const char *e = getenv("DTR_GDN_TEXEL");
  int want = e && *e ? *e != '0' : di->type == DTR_DEVICE_CPU;
  if (!want || d->K % 4 || d->V % 4 || d->K > 128) return 0;
  if (d->io_f16 && !di->texel_f16) return 0;
  if (!d->Ttot) return 0; /* an empty view of size 0 would bind "to the end" */
  uint32_t align = di->min_texel_offset_align ? di->min_texel_offset_align : 1;
  for (int i = 0; i < count; i++)
    if (v[i].offset % align || n[i] / 4 > di->max_texel_buffer_elements) return 0;
  return 1;
}

/* The recurrent forward's texel twin, gdn_recurrent_fwd_tex (arguments already
 * checked; taken for Ttot <= 32768, one dispatch, lavapipe's loop limit): four
 * value columns per invocation, one subgroup per workgroup. */
static dtr_status fwd_texel(dtr_ctx *ctx, dtr_view o, dtr_view state_out, dtr_view q,
                            dtr_view k, dtr_view v, dtr_view g, dtr_view beta,
                            dtr_view state_in, dtr_view offsets, const dtr_lin_desc *d) {
  uint32_t C = gdn_chunk(d);
  int has_in = dtr_view_present(state_in), has_out = dtr_view_present(state_out);
  dtr_pc_gdn_chunk pc = chunk_pc(d, C, has_in, has_out);
  size_t tk = (size_t)d->Ttot * d->H * d->K, tv = (size_t)d->Ttot * d->H * d->V;
  int h16 = d->io_f16 != 0;
  dtr_arg args[9] = {DTR_OUT(o), has_out ? DTR_OUT(state_out) : DTR_IN(offsets),
                     dtr_tex_arg(q, tk, h16), dtr_tex_arg(k, tk, h16),
                     dtr_tex_arg(v, tv, h16), DTR_IN(g), DTR_IN(beta),
                     DTR_IN(has_in ? state_in : offsets), DTR_IN(offsets)};
  const dtr_device_info *di = dtr_ctx_device(ctx);
  uint32_t wg = di->subgroup_size ? di->subgroup_size : 8, spec[3] = {wg, C, d->K};
  dtr_dispatch_desc dd = {.kernel = "gdn_recurrent_fwd_tex", .spec = spec, .nspec = 3,
                          .args = args, .nargs = 9, .push = &pc, .push_size = sizeof pc,
                          .groups = {(d->V / 4 + wg - 1) / wg, d->H, d->B}};
  return dtr_dispatch(ctx, &dd);
}

/* The forward's form: recurrent on CPU devices (no barriers, fewer flops; see
 * gdn_recurrent_fwd.comp), chunked elsewhere. DTR_GDN_FWD=chunk|recurrent
 * overrides (the tests run both). */
static int use_recurrent(dtr_ctx *ctx, const dtr_lin_desc *d) {
  const char *e = getenv("DTR_GDN_FWD");
  if (d->K % 4) return 0; /* the recurrent kernel reads k, q as vec4 */
  if (e && !strcmp(e, "chunk")) return 0;
  if (e && !strcmp(e, "recurrent")) return 1;
  return dtr_ctx_device(ctx)->type == DTR_DEVICE_CPU;
}

dtr_status dtr_op_gdn_chunk_fwd(dtr_ctx *ctx, dtr_view o, dtr_view state_out, dtr_view q,
                                dtr_view k, dtr_view v, dtr_view g, dtr_view beta,
                                dtr_view state_in, dtr_view offsets, const dtr_lin_desc *d) {
  const char *op = "gdn_chunk_fwd";
  dtr_status st;
  if ((st = check_desc(ctx, op, d)) || (st = check_inputs(ctx, op, q, k, v, g, beta, offsets, d)))
    return st;
  size_t sb = (size_t)d->B * d->H * d->K * d->V * 4;
  if ((st = dtr_check_view(ctx, op, "o", o, (size_t)d->Ttot * d->H * d->V * 4)) ||
      (st = check_opt(ctx, op, "state_out", state_out, sb)) ||
      (st = check_opt(ctx, op, "state_in", state_in, sb)))
    return st;
  int rec = use_recurrent(ctx, d);
  size_t tk = (size_t)d->Ttot * d->H * d->K, tv = (size_t)d->Ttot * d->H * d->V;
  dtr_view tvw[3] = {q, k, v};
  size_t tn[3] = {tk, tk, tv};
  if (rec && d->Ttot <= 32768u && use_texel(ctx, d, tvw, tn, 3))
    return fwd_texel(ctx, o, state_out, q, k, v, g, beta, state_in, offsets, d);
  return fwd_dispatch(ctx, rec ? "gdn_recurrent_fwd" : "gdn_chunk_fwd", DTR_OUT(o), state_out,
                      q, k, v, g, beta, state_in, offsets, d, 0);
}

/* Chunks per dispatch of the token-walking kernels: lavapipe ends an invocation
 * silently after 65535 loop iterations in all, and they spend one per token and
 * one per chunk; half of that leaves a margin. */
static uint32_t tex_window(uint32_t C) { return 32768u / C; }

/* The three passes of dtr_op_gdn_chunk_bwd on the *_tex kernels (its arguments,
 * already checked). */
static dtr_status bwd_texel(dtr_ctx *ctx, dtr_view dq, dtr_view dk, dtr_view dv, dtr_view dg,
                            dtr_view dbeta, dtr_view dstate_in, dtr_view dout,
                            dtr_view dstate_out, dtr_view q, dtr_view k, dtr_view v,
                            dtr_view g, dtr_view beta, dtr_view state_in, dtr_view offsets,
                            dtr_view workspace, const dtr_lin_desc *d) {
  uint32_t C = gdn_chunk(d);
  size_t tk = (size_t)d->Ttot * d->H * d->K, tv = (size_t)d->Ttot * d->H * d->V;
  int h16 = d->io_f16 != 0;
  dtr_arg q_t = dtr_tex_arg(q, tk, h16), k_t = dtr_tex_arg(k, tk, h16);
  dtr_arg v_t = dtr_tex_arg(v, tv, h16), do_t = dtr_tex_arg(dout, tv, 0);
  /* One invocation per value column, one subgroup per workgroup (the kernels
   * share nothing between lanes, so small workgroups only spread the load). */
  const dtr_device_info *di = dtr_ctx_device(ctx);
  uint32_t wg = di->subgroup_size ? di->subgroup_size : 8;
  uint32_t spec[3] = {wg, C, d->K}, W = tex_window(C);
  uint32_t nwin = ((d->Ttot + C - 1) / C + W - 1) / W;
  dtr_dispatch_desc dd = {.spec = spec, .nspec = 3, .push_size = sizeof(dtr_pc_gdn_chunk),
                          .groups = {(d->V + wg - 1) / wg, d->H, d->B}};
  dtr_status st;

  /* 1. checkpoints S_n and Vn, window by window. */
  int has_in = dtr_view_present(state_in);
  dtr_pc_gdn_chunk pc = chunk_pc(d, C, has_in, 0);
  dtr_arg a1[7] = {DTR_OUT(workspace), k_t, v_t, DTR_IN(g), DTR_IN(beta),
                   DTR_IN(has_in ? state_in : q), DTR_IN(offsets)};
  dd.kernel = "gdn_chunk_fwd_save_tex";
  dd.args = a1;
  dd.nargs = 7;
  dd.push = &pc;
  for (uint32_t w = 0; w < nwin; w++) {
    pc.n0 = w * W;
    pc.n1 = pc.n0 + W;
    if ((st = dtr_dispatch(ctx, &dd))) return st;
  }

  /* 2. dS over chunks in reverse (the last window first), dv, dR, dS_{n+1}. */
  int has_dso = dtr_view_present(dstate_out), has_dsi = dtr_view_present(dstate_in);
  pc = chunk_pc(d, C, has_dso, has_dsi);
  dtr_arg a2[10] = {DTR_OUT(dv), DTR_OUT(workspace),
                    has_dsi ? DTR_OUT(dstate_in) : DTR_IN(q), do_t,
                    DTR_IN(has_dso ? dstate_out : q), q_t, k_t, DTR_IN(g), DTR_IN(beta),
                    DTR_IN(offsets)};
  dd.kernel = "gdn_chunk_bwd_dv_tex";
  dd.args = a2;
  dd.nargs = 10;
  for (uint32_t w = nwin; w-- > 0;) {
    pc.n0 = w * W;
    pc.n1 = pc.n0 + W;
    if ((st = dtr_dispatch(ctx, &dd))) return st;
  }

  /* 3. dq, dk, dbeta, dg per chunk. */
  dtr_arg a3[12] = {DTR_OUT(dq), DTR_OUT(dk), DTR_OUT(dg), DTR_OUT(dbeta),
                    dtr_tex_arg(workspace, dtr_op_gdn_chunk_bwd_workspace(d) / 4, 0), do_t,
                    q_t, k_t, v_t, DTR_IN(g), DTR_IN(beta), DTR_IN(offsets)};
  uint32_t spec3[4] = {GDN_WG, C, d->K, d->V};
  dtr_dispatch_desc d3 = {.kernel = "gdn_chunk_bwd_dqk_tex", .spec = spec3, .nspec = 4,
                          .args = a3, .nargs = 12, .push = &pc, .push_size = sizeof pc,
                          .groups = {pc.nslots, d->H, 1}};
  return dtr_dispatch(ctx, &d3);
}

dtr_status dtr_op_gdn_chunk_bwd(dtr_ctx *ctx, dtr_view dq, dtr_view dk, dtr_view dv,
                                dtr_view dg, dtr_view dbeta, dtr_view dstate_in,
                                dtr_view dout, dtr_view dstate_out, dtr_view q, dtr_view k,
                                dtr_view v, dtr_view g, dtr_view beta, dtr_view state_in,
                                dtr_view offsets, dtr_view workspace, const dtr_lin_desc *d) {
  const char *op = "gdn_chunk_bwd";
  dtr_status st;
  if ((st = check_desc(ctx, op, d)) || (st = check_inputs(ctx, op, q, k, v, g, beta, offsets, d)))
    return st;
  size_t sb = (size_t)d->B * d->H * d->K * d->V * 4;
  size_t tk = (size_t)d->Ttot * d->H * d->K * 4, tv = (size_t)d->Ttot * d->H * d->V * 4;
  size_t th = (size_t)d->Ttot * d->H * 4;
  if ((st = dtr_check_view(ctx, op, "dq", dq, tk)) || (st = dtr_check_view(ctx, op, "dk", dk, tk)) ||
      (st = dtr_check_view(ctx, op, "dv", dv, tv)) || (st = dtr_check_view(ctx, op, "dg", dg, th)) ||
      (st = dtr_check_view(ctx, op, "dbeta", dbeta, th)) ||
      (st = dtr_check_view(ctx, op, "dout", dout, tv)) ||
      (st = dtr_check_view(ctx, op, "workspace", workspace,
                           dtr_op_gdn_chunk_bwd_workspace(d))) ||
      (st = check_opt(ctx, op, "dstate_in", dstate_in, sb)) ||
      (st = check_opt(ctx, op, "dstate_out", dstate_out, sb)) ||
      (st = check_opt(ctx, op, "state_in", state_in, sb)))
    return st;
  dtr_view tvw[5] = {q, k, v, dout, workspace};
  size_t tn[5] = {tk / 4, tk / 4, tv / 4, tv / 4, dtr_op_gdn_chunk_bwd_workspace(d) / 4};
  if (use_texel(ctx, d, tvw, tn, 5))
    return bwd_texel(ctx, dq, dk, dv, dg, dbeta, dstate_in, dout, dstate_out, q, k, v, g, beta,
                     state_in, offsets, workspace, d);
  uint32_t C = gdn_chunk(d);
  int h16 = d->io_f16 != 0;
  char kname[64];

  /* 1. checkpoints S_n and Vn. */
  if ((st = fwd_dispatch(ctx, "gdn_chunk_fwd_save", DTR_OUT(workspace), DTR_NONE, q, k, v, g,
                         beta, state_in, offsets, d, 1)))
    return st;

  /* 2. dS over chunks in reverse, dv, dR, dS_{n+1} checkpoints, dstate_in. */
  int has_dso = dtr_view_present(dstate_out), has_dsi = dtr_view_present(dstate_in);
  dtr_pc_gdn_chunk pc = chunk_pc(d, C, has_dso, has_dsi);
  dtr_arg a2[10] = {DTR_OUT(dv), DTR_OUT(workspace),
                    has_dsi ? DTR_OUT(dstate_in) : DTR_IN(q), DTR_IN(dout),
                    DTR_IN(has_dso ? dstate_out : q), DTR_IN(q), DTR_IN(k), DTR_IN(g),
                    DTR_IN(beta), DTR_IN(offsets)};
  uint32_t wg = gdn_cols(C), spec2[3] = {wg, C, d->K};
  dtr_dispatch_desc d2 = {.kernel = dtr_kernel_h16(kname, sizeof kname, "gdn_chunk_bwd_dv", h16),
                          .spec = spec2, .nspec = 3, .args = a2,
                          .nargs = 10, .push = &pc, .push_size = sizeof pc,
                          .groups = {(d->V + wg - 1) / wg, d->H, d->B}};
  if ((st = dtr_dispatch(ctx, &d2))) return st;

  /* 3. dq, dk, dbeta, dg per chunk. */
  dtr_arg a3[12] = {DTR_OUT(dq), DTR_OUT(dk), DTR_OUT(dg), DTR_OUT(dbeta),
                    DTR_IN(workspace), DTR_IN(dout), DTR_IN(q), DTR_IN(k),
                    DTR_IN(v), DTR_IN(g), DTR_IN(beta), DTR_IN(offsets)};
  uint32_t spec[4] = {GDN_WG, C, d->K, d->V};
  dtr_dispatch_desc d3 = {.kernel = dtr_kernel_h16(kname, sizeof kname, "gdn_chunk_bwd_dqk", h16),
                          .spec = spec, .nspec = 4, .args = a3,
                          .nargs = 12, .push = &pc, .push_size = sizeof pc,
                          .groups = {pc.nslots, d->H, 1}};
  return dtr_dispatch(ctx, &d3);
}

dtr_status dtr_op_gdn_decode(dtr_ctx *ctx, dtr_view o, dtr_view state, dtr_view q,
                             dtr_view k, dtr_view v, dtr_view g, dtr_view beta,
                             const dtr_lin_desc *d) {
  const char *op = "gdn_decode";
  dtr_status st;
  if ((st = check_desc(ctx, op, d))) return st;
  size_t bk = (size_t)d->B * d->H * d->K * 4, bv = (size_t)d->B * d->H * d->V * 4;
  size_t bh = (size_t)d->B * d->H * 4;
  if ((st = dtr_check_view(ctx, op, "o", o, bv)) ||
      (st = dtr_check_view(ctx, op, "state", state, bk / 4 * d->V * (d->state_f16 ? 2 : 4))) ||
      (st = dtr_check_view(ctx, op, "q", q, bk)) || (st = dtr_check_view(ctx, op, "k", k, bk)) ||
      (st = dtr_check_view(ctx, op, "v", v, bv)) || (st = dtr_check_view(ctx, op, "g", g, bh)) ||
      (st = dtr_check_view(ctx, op, "beta", beta, bh)))
    return st;
  dtr_pc_gdn_decode pc = {d->B, d->H, d->K, d->V, d->scale};
  dtr_arg args[7] = {DTR_OUT(o), DTR_OUT(state), DTR_IN(q), DTR_IN(k),
                     DTR_IN(v), DTR_IN(g), DTR_IN(beta)};
  if (d->state_f16 && d->V % 2)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: an fp16 state needs an even V (%u)", op,
                             d->V);
  uint32_t spec[2] = {GDN_WG, d->K}, cols = d->state_f16 ? 2 * GDN_WG : GDN_WG;
  dtr_dispatch_desc dd = {.kernel = d->state_f16 ? "gdn_decode_s16" : "gdn_decode",
                          .spec = spec, .nspec = 2, .args = args,
                          .nargs = 7, .push = &pc, .push_size = sizeof pc,
                          .groups = {(d->V + cols - 1) / cols, d->H, d->B}};
  return dtr_dispatch(ctx, &dd);
}

dtr_status dtr_op_gdn_decode_fused(dtr_ctx *ctx, dtr_view out, dtr_view state, dtr_view cq,
                                   dtr_view ck, dtr_view cv, dtr_view qkv, dtr_view ab,
                                   dtr_view gate, dtr_view params, const dtr_gdn_fused_desc *d) {
  const char *op = "gdn_decode_fused";
  if (!d->H || !d->K || d->K > 64 || d->K % 4)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: H %u, K %u (1..64, a multiple of 4)",
                             op, d->H, d->K);
  size_t hk = (size_t)d->H * d->K * 4;
  size_t pmax = (size_t)d->off_conv + 3 * (size_t)d->H * d->K * 4;
  uint32_t offs[3] = {d->off_alog + d->H, d->off_dtb + d->H, d->off_onorm + d->K};
  for (int i = 0; i < 3; i++) pmax = offs[i] > pmax ? offs[i] : pmax;
  dtr_status st;
  if ((st = dtr_check_view(ctx, op, "out", out, hk)) ||
      (st = dtr_check_view(ctx, op, "state", state, hk * d->K / (d->state_f16 ? 2 : 1))) ||
      (st = dtr_check_view(ctx, op, "cq", cq, 3 * hk)) ||
      (st = dtr_check_view(ctx, op, "ck", ck, 3 * hk)) ||
      (st = dtr_check_view(ctx, op, "cv", cv, 3 * hk)) ||
      (st = dtr_check_view(ctx, op, "qkv", qkv, 3 * hk)) ||
      (st = dtr_check_view(ctx, op, "ab", ab, (size_t)2 * d->H * 4)) ||
      (st = dtr_check_view(ctx, op, "gate", gate, hk)) ||
      (st = dtr_check_view(ctx, op, "params", params, pmax * 4)))
    return st;
  dtr_pc_gdn_decode_fused pc = {d->H,      d->off_conv, d->off_alog, d->off_dtb,
                                d->off_onorm, d->scale, 1e-6f,      d->norm_eps};
  dtr_arg args[9] = {DTR_OUT(out), DTR_OUT(state), DTR_OUT(cq), DTR_OUT(ck), DTR_OUT(cv),
                     DTR_IN(qkv),  DTR_IN(ab),     DTR_IN(gate), DTR_IN(params)};
  uint32_t spec[2] = {8, d->K};
  dtr_dispatch_desc dd = {.kernel = d->state_f16 ? "gdn_decode_fused_s16" : "gdn_decode_fused",
                          .spec = spec, .nspec = 2, .args = args,
                          .nargs = 9, .push = &pc, .push_size = sizeof pc,
                          .groups = {(d->H + 7) / 8, 1, 1}};
  return dtr_dispatch(ctx, &dd);
}

dtr_status dtr_op_gdn_gate_fwd(dtr_ctx *ctx, dtr_view g, dtr_view beta, dtr_view a,
                               dtr_view b, dtr_view A_log, dtr_view dt_bias, uint32_t N,
                               uint32_t H) {
  const char *op = "gdn_gate_fwd";
  size_t nh = (size_t)N * H * 4;
  dtr_status st;
  if ((st = dtr_check_view(ctx, op, "g", g, nh)) || (st = dtr_check_view(ctx, op, "beta", beta, nh)) ||
      (st = dtr_check_view(ctx, op, "a", a, nh)) || (st = dtr_check_view(ctx, op, "b", b, nh)) ||
      (st = dtr_check_view(ctx, op, "A_log", A_log, (size_t)H * 4)) ||
      (st = dtr_check_view(ctx, op, "dt_bias", dt_bias, (size_t)H * 4)))
    return st;
  const uint32_t wg = 256;
  dtr_pc_gdn_gate pc = {N, H};
  dtr_arg args[6] = {DTR_OUT(g), DTR_OUT(beta), DTR_IN(a), DTR_IN(b), DTR_IN(A_log),
                     DTR_IN(dt_bias)};
  dtr_dispatch_desc dd = {.kernel = "gdn_gate_fwd", .spec = &wg, .nspec = 1, .args = args,
                          .nargs = 6, .push = &pc, .push_size = sizeof pc};
  dtr_grid_1d(N * H, wg, dd.groups);
  return dtr_dispatch(ctx, &dd);
}

dtr_status dtr_op_gdn_gate_bwd(dtr_ctx *ctx, dtr_view da, dtr_view db, dtr_view dA_log,
                               dtr_view ddt_bias, dtr_view dg, dtr_view dbeta, dtr_view a,
                               dtr_view b, dtr_view A_log, dtr_view dt_bias, uint32_t N,
                               uint32_t H) {
  const char *op = "gdn_gate_bwd";
  size_t nh = (size_t)N * H * 4, hb = (size_t)H * 4;
  dtr_status st;
  if ((st = dtr_check_view(ctx, op, "da", da, nh)) || (st = dtr_check_view(ctx, op, "db", db, nh)) ||
      (st = dtr_check_view(ctx, op, "dA_log", dA_log, hb)) ||
      (st = dtr_check_view(ctx, op, "ddt_bias", ddt_bias, hb)) ||
      (st = dtr_check_view(ctx, op, "dg", dg, nh)) ||
      (st = dtr_check_view(ctx, op, "dbeta", dbeta, nh)) ||
      (st = dtr_check_view(ctx, op, "a", a, nh)) || (st = dtr_check_view(ctx, op, "b", b, nh)) ||
      (st = dtr_check_view(ctx, op, "A_log", A_log, hb)) ||
      (st = dtr_check_view(ctx, op, "dt_bias", dt_bias, hb)))
    return st;
  const uint32_t wg = 64; /* a power of two: the kernel's reduction tree halves it */
  dtr_pc_gdn_gate pc = {N, H};
  dtr_arg args[10] = {DTR_OUT(da), DTR_OUT(db), DTR_OUT(dA_log), DTR_OUT(ddt_bias),
                      DTR_IN(dg), DTR_IN(dbeta), DTR_IN(a), DTR_IN(b),
                      DTR_IN(A_log), DTR_IN(dt_bias)};
  dtr_dispatch_desc dd = {.kernel = "gdn_gate_bwd", .spec = &wg, .nspec = 1, .args = args,
                          .nargs = 10, .push = &pc, .push_size = sizeof pc,
                          .groups = {H, 1, 1}};
  return dtr_dispatch(ctx, &dd);
}

dtr_status dtr_op_l2norm_fwd(dtr_ctx *ctx, dtr_view out, dtr_view x, uint32_t N, uint32_t C,
                             float eps) {
  size_t nc = (size_t)N * C * 4;
  dtr_status st;
  if ((st = dtr_check_view(ctx, "l2norm_fwd", "out", out, nc)) ||
      (st = dtr_check_view(ctx, "l2norm_fwd", "x", x, nc)))
    return st;
  const uint32_t wg = 64;
  dtr_pc_l2norm pc = {N, C, eps};
  dtr_arg args[2] = {DTR_OUT(out), DTR_IN(x)};
  dtr_dispatch_desc dd = {.kernel = "l2norm_fwd", .spec = &wg, .nspec = 1, .args = args,
                          .nargs = 2, .push = &pc, .push_size = sizeof pc};
  dtr_grid_1d(N, wg, dd.groups);
  return dtr_dispatch(ctx, &dd);
}

dtr_status dtr_op_l2norm_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dout, dtr_view x,
                             uint32_t N, uint32_t C, float eps) {
  size_t nc = (size_t)N * C * 4;
  dtr_status st;
  if ((st = dtr_check_view(ctx, "l2norm_bwd", "dx", dx, nc)) ||
      (st = dtr_check_view(ctx, "l2norm_bwd", "dout", dout, nc)) ||
      (st = dtr_check_view(ctx, "l2norm_bwd", "x", x, nc)))
    return st;
  const uint32_t wg = 64;
  dtr_pc_l2norm pc = {N, C, eps};
  dtr_arg args[3] = {DTR_OUT(dx), DTR_IN(dout), DTR_IN(x)};
  dtr_dispatch_desc dd = {.kernel = "l2norm_bwd", .spec = &wg, .nspec = 1, .args = args,
                          .nargs = 3, .push = &pc, .push_size = sizeof pc};
  dtr_grid_1d(N, wg, dd.groups);
  return dtr_dispatch(ctx, &dd);
}
