/* ops_gla.c — GLA (gated linear attention) on the runtime: the chunked forward,
 * the backward (states pass, reverse dS pass, per-chunk gradients, gate
 * gradient), the one-token decode step and the log-sigmoid gate. The math and
 * the kernels' derivations are in shaders/gla_*.comp; the contract in
 * host/dtr_linear.h. On CPU devices the chunked forward and backward run on
 * texel-buffer twins (shaders/gla_chunk_*_tex.comp; see use_texel below).
 * With desc->io_f16 the chunked ops read q, k, v as packed fp16: the storage
 * kernels' h16 variants, or RGBA16F texel views for the twins. */
#include <stdio.h>
#include <stdlib.h>

#include "dtr_linear.h"
#include "dtr_push.h"

#define GLA_SUB 16 /* secondary chunking of the forward (rows per sub-chunk) */

/* Shared memory of gla_chunk_fwd and gla_chunk_bwd_dh for chunk C. */
static size_t fwd_shared(uint32_t C, uint32_t K) {
  return 4 * ((size_t)C * K + 2 * GLA_SUB * K + GLA_SUB * C + K + 1);
}
static size_t dh_shared(uint32_t C, uint32_t K) { return 4 * (size_t)C * K; }

/* The chunk a desc asks for: d->chunk, or 64, halved until the kernels fit in
 * 32 KiB of shared memory (K = 128 gets 16). Independent of the device, so the
 * workspace size is known before a context exists. */
static uint32_t pick_chunk(const dtr_lin_desc *d) {
  if (d->chunk) return d->chunk;
  const size_t smem = 32768;
  for (uint32_t C = 64; C > GLA_SUB; C /= 2)
    if (fwd_shared(C, d->K) <= smem && dh_shared(C, d->K) <= smem) return C;
  return GLA_SUB;
}

/* Chunks per dispatch: lavapipe ends an invocation silently after 65535 loop
 * iterations in all (see push_gla.h), and the kernels spend a few K/4 of them
 * per token, so one dispatch walks at most about 16384 / (K/4) tokens. */
static uint32_t window_chunks(const dtr_lin_desc *d, uint32_t C) {
  uint32_t w = 16384u / (d->K / 4) / C;
  return w ? w : 1;
}

static dtr_status check_desc(dtr_ctx *ctx, const char *op, const dtr_lin_desc *d,
                             uint32_t *chunk) {
  if (!d || !d->B || !d->H || !d->K || !d->V)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: B, H, K and V must be positive", op);
  if (d->K % 4 || d->V % 4 || d->K > 256 || d->V > 256)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: K = %u and V = %u must be multiples of 4, at most 256", op,
                             d->K, d->V);
  uint32_t C = pick_chunk(d);
  if (C % GLA_SUB || C > 256)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: chunk %u must be a multiple of %u, at most 256", op, C,
                             GLA_SUB);
  uint32_t smem = dtr_ctx_device(ctx)->max_shared_memory;
  if (fwd_shared(C, d->K) > smem || dh_shared(C, d->K) > smem)
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                             "%s: chunk %u with K = %u needs more shared memory than the "
                             "device's %u bytes; use a smaller chunk", op, C, d->K, smem);
  *chunk = C;
  return DTR_OK;
}

/* Checks the packed tensors every chunked op shares (q, k, v in fp16 halves
 * with d->io_f16). */
static dtr_status check_seq(dtr_ctx *ctx, const char *op, const dtr_lin_desc *d,
                            dtr_view q, dtr_view k, dtr_view v, dtr_view gk,
                            dtr_view offsets) {
  size_t nk = (size_t)d->Ttot * d->H * d->K, nv = (size_t)d->Ttot * d->H * d->V;
  int h = d->io_f16 != 0;
  dtr_status st;
  if ((st = dtr_check_io_view(ctx, op, "q", q, nk, h)) ||
      (st = dtr_check_io_view(ctx, op, "k", k, nk, h)) ||
      (st = dtr_check_io_view(ctx, op, "v", v, nv, h)) ||
      (st = dtr_check_view(ctx, op, "gk", gk, nk * 4)) ||
      (st = dtr_check_view(ctx, op, "offsets", offsets, ((size_t)d->B + 1) * 4)))
    return st;
  return DTR_OK;
}

static size_t state_bytes(const dtr_lin_desc *d) {
  return (size_t)d->B * d->H * d->K * d->V * 4;
}

static dtr_status check_opt(dtr_ctx *ctx, const char *op, const char *arg, dtr_view x,
                            size_t bytes) {
  return dtr_view_present(x) ? dtr_check_view(ctx, op, arg, x, bytes) : DTR_OK;
}

/* ---- texel path (CPU devices) ---------------------------------------------
 * The *_tex twins read their big inputs as vec4 texel buffers: llvmpipe loads
 * storage buffers (and shared memory) lane by lane but fetches a texel with one
 * vector gather. The token-walking twins keep four state columns per invocation
 * in registers and walk the sequence token by token, with no shared memory and
 * no barrier. DTR_GLA_TEXEL=0/1 forces the choice (the tests run both); the texel
 * path is only taken where it applies: K <= 128 (unrolled K/4-trip loops hold
 * the state in registers), a non-empty input, fp16 q, k, v only where the
 * device binds RGBA16F texel views, and every texel view (count of them, n[i]
 * values each) at the texel offset alignment and within the device's
 * texel-buffer limit. K and V are multiples of 4 already (check_desc). */
static int use_texel(dtr_ctx *ctx, const dtr_lin_desc *d, const dtr_view *v, const size_t *n,
                     int count) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  const char *e = getenv("DTR_GLA_TEXEL");
  int want = e && *e ? *e != '0' : di->type == DTR_DEVICE_CPU;
  if (!want || d->K > 128 || !d->Ttot || (d->io_f16 && !di->texel_f16)) return 0;
  uint32_t align = di->min_texel_offset_align ? di->min_texel_offset_align : 1;
  for (int i = 0; i < count; i++)
    if (v[i].offset % align || n[i] / 4 > di->max_texel_buffer_elements) return 0;
  return 1;
}

/* Invocations per workgroup of the token-walking twins: one subgroup (they share
 * nothing between lanes, so small workgroups only spread the load). */
static uint32_t tex_wg(dtr_ctx *ctx) {
  uint32_t sg = dtr_ctx_device(ctx)->subgroup_size;
  return sg ? sg : 8;
}

/* Chunks per dispatch of a token-walking twin that spends `per_token` loop
 * iterations per token: half of lavapipe's 65535 leaves a margin.
 * DTR_GLA_TEX_WINDOW=N (chunks, smaller only) lets the tests walk several. */
static uint32_t tex_window(uint32_t C, uint32_t per_token) {
  uint32_t w = 32768u / per_token / C;
  const char *e = getenv("DTR_GLA_TEX_WINDOW");
  long n = e ? strtol(e, NULL, 10) : 0;
  if (n > 0 && (uint32_t)n < w) w = (uint32_t)n;
  return w ? w : 1;
}

/* One dispatch of kernel, or of its "h16" variant (fp16 q, k, v) when h16. */
static dtr_status run(dtr_ctx *ctx, const char *kernel, int h16, const uint32_t *spec,
                      uint32_t nspec, const dtr_arg *args, uint32_t nargs, const void *pc,
                      uint32_t pcsize, uint32_t gx, uint32_t gy) {
  char kname[64];
  dtr_dispatch_desc dd = {.kernel = dtr_kernel_h16(kname, sizeof kname, kernel, h16),
                          .spec = spec, .nspec = nspec, .args = args,
                          .nargs = nargs, .push = pc, .push_size = pcsize,
                          .groups = {gx, gy, 1}};
  return dtr_dispatch(ctx, &dd);
}

dtr_status dtr_op_gla_chunk_fwd(dtr_ctx *ctx, dtr_view o, dtr_view state_out, dtr_view q,
                                dtr_view k, dtr_view v, dtr_view gk, dtr_view state_in,
                                dtr_view offsets, const dtr_lin_desc *d) {
  const char *op = "gla_chunk_fwd";
  uint32_t C = 0;
  dtr_status st;
  if ((st = check_desc(ctx, op, d, &C)) || (st = check_seq(ctx, op, d, q, k, v, gk, offsets)) ||
      (st = dtr_check_view(ctx, op, "o", o, (size_t)d->Ttot * d->H * d->V * 4)) ||
      (st = check_opt(ctx, op, "state_out", state_out, state_bytes(d))) ||
      (st = check_opt(ctx, op, "state_in", state_in, state_bytes(d))))
    return st;
  uint32_t maxch = (d->Ttot + C - 1) / C, wch = window_chunks(d, C);
  uint32_t nwin = maxch > wch ? (maxch + wch - 1) / wch : 1;
  if (nwin > 1 && !dtr_view_present(state_out))
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                             "%s: %u tokens take %u dispatches here and the state is "
                             "carried between them through state_out: pass one", op,
                             d->Ttot, nwin);
  size_t nk = (size_t)d->Ttot * d->H * d->K, nv = (size_t)d->Ttot * d->H * d->V;
  int h16 = d->io_f16 != 0;
  dtr_view tvw[4] = {q, k, v, gk};
  size_t tn[4] = {nk, nk, nv, nk};
  if (use_texel(ctx, d, tvw, tn, 4)) {
    /* The windows are the twin's own (longer); state_out is still required
     * wherever the storage path would need it, so the contract stays one. */
    uint32_t wg = tex_wg(ctx), tw = tex_window(C, 1);
    uint32_t tnwin = maxch > tw ? (maxch + tw - 1) / tw : 1;
    uint32_t spec[4] = {wg, C, d->K, d->V};
    for (uint32_t w = 0; w < tnwin; w++) {
      dtr_pc_gla_chunk pc = {d->B, d->H, d->Ttot, d->scale, 0, d->K / 4, d->V / 4,
                             w * tw, w + 1 < tnwin ? (w + 1) * tw : 0xffffffffu};
      dtr_view sin = w ? state_out : state_in;
      if (dtr_view_present(sin)) pc.flags |= DTR_GLA_STATE_IN;
      if (dtr_view_present(state_out)) pc.flags |= DTR_GLA_STATE_OUT;
      dtr_arg args[8] = {DTR_OUT(o),
                         dtr_view_present(state_out) ? DTR_OUT(state_out) : DTR_IN(offsets),
                         dtr_tex_arg(q, nk, h16), dtr_tex_arg(k, nk, h16),
                         dtr_tex_arg(v, nv, h16), dtr_tex_arg(gk, nk, 0),
                         DTR_IN(dtr_view_present(sin) ? sin : offsets), DTR_IN(offsets)};
      dtr_dispatch_desc dd = {.kernel = "gla_chunk_fwd_tex", .spec = spec, .nspec = 4,
                              .args = args, .nargs = 8, .push = &pc, .push_size = sizeof pc,
                              .groups = {(d->V / 4 + wg - 1) / wg, d->H, d->B}};
      if ((st = dtr_dispatch(ctx, &dd))) return st;
    }
    return DTR_OK;
  }
  uint32_t spec[4] = {d->V / 4, C, d->K, d->V};
  for (uint32_t w = 0; w < nwin; w++) {
    dtr_pc_gla_chunk pc = {d->B, d->H, d->Ttot, d->scale, 0, d->K / 4, d->V / 4,
                           w * wch, w + 1 < nwin ? (w + 1) * wch : 0xffffffffu};
    /* window 0 starts from state_in; later ones from what the previous left in
     * state_out. Absent optional views bind q, read-only and never touched. */
    dtr_view sin = w ? state_out : state_in;
    if (dtr_view_present(sin)) pc.flags |= DTR_GLA_STATE_IN;
    if (dtr_view_present(state_out)) pc.flags |= DTR_GLA_STATE_OUT;
    dtr_arg args[8] = {DTR_OUT(o),
                       dtr_view_present(state_out) ? DTR_OUT(state_out) : DTR_IN(q),
                       DTR_IN(q), DTR_IN(k), DTR_IN(v), DTR_IN(gk),
                       DTR_IN(dtr_view_present(sin) ? sin : q), DTR_IN(offsets)};
    if ((st = run(ctx, "gla_chunk_fwd", h16, spec, 4, args, 8, &pc, sizeof pc, d->H, d->B)))
      return st;
  }
  return DTR_OK;
}

/* Workspace of the backward: the state entering every chunk and each sequence's
 * final state (wsS), their gradients (wsD), both in slots (see push_gla.h), the
 * in-chunk cumulative log-decays (wsB, like gk), and for the texel path q e^{b}
 * (wsQ) and k e^{-b} (wsK), like gk too. Parts are 256-byte aligned. */
typedef struct gla_ws {
  size_t s_off, s_size, d_off, d_size, b_off, b_size, q_off, k_off, total;
} gla_ws;

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

static gla_ws ws_layout(const dtr_lin_desc *d, uint32_t C) {
  gla_ws w;
  size_t slots = (size_t)d->Ttot / C + 2 * (size_t)d->B;
  w.s_size = slots * d->H * d->K * d->V * 4;
  w.d_size = w.s_size;
  w.b_size = (size_t)d->Ttot * d->H * d->K * 4;
  w.s_off = 0;
  w.d_off = align256(w.s_size);
  w.b_off = w.d_off + align256(w.d_size);
  w.q_off = w.b_off + align256(w.b_size ? w.b_size : 4);
  w.k_off = w.q_off + align256(w.b_size ? w.b_size : 4);
  w.total = w.k_off + align256(w.b_size ? w.b_size : 4);
  return w;
}

size_t dtr_op_gla_chunk_bwd_workspace(const dtr_lin_desc *d) {
  uint32_t C = pick_chunk(d);
  return ws_layout(d, C ? C : GLA_SUB).total;
}

static dtr_view sub(dtr_view w, size_t off, size_t size) {
  return (dtr_view){w.buf, w.offset + off, size};
}

/* Step 4 of the backward, shared by both paths: dgk, the reverse cumulative sum
 * of q dq - k dk plus the final-state term (q, k packed fp16 when h16). */
static dtr_status bwd_dgk(dtr_ctx *ctx, dtr_view dgk, dtr_view q, dtr_view k, dtr_view dq,
                          dtr_view dk, dtr_view dstate_out, dtr_view wsS, dtr_view offsets,
                          const dtr_pc_gla_chunk *pc, uint32_t C, int h16) {
  dtr_arg a4[8] = {DTR_OUT(dgk), DTR_IN(q), DTR_IN(k), DTR_IN(dq), DTR_IN(dk),
                   DTR_IN(dtr_view_present(dstate_out) ? dstate_out : q), DTR_IN(wsS),
                   DTR_IN(offsets)};
  uint32_t spec4[4] = {pc->nk4, C, 4 * pc->nk4, 4 * pc->nv4};
  return run(ctx, "gla_chunk_bwd_dgk", h16, spec4, 4, a4, 8, pc, sizeof *pc, pc->H, pc->B);
}

/* The backward on the *_tex twins (arguments already checked; pc as the storage
 * path builds it; q, k, v RGBA16F views when h16): a prep pass (b and the split
 * exponentials q e^{b}, k e^{-b}), the states and dS token by token in windows
 * of their own, the per-chunk gradients reading texels, then the shared dgk
 * step. */
static dtr_status bwd_texel(dtr_ctx *ctx, dtr_view dgk, dtr_view dstate_in, dtr_view dstate_out,
                            dtr_view q, dtr_view k, dtr_view v, dtr_view gk, dtr_view dout,
                            dtr_view state_in, dtr_view offsets, dtr_view wsS, dtr_view wsD,
                            dtr_view wsB, dtr_view wsQ, dtr_view wsK, dtr_view dq,
                            dtr_view dk, dtr_view dv,
                            const dtr_pc_gla_chunk *pc0, uint32_t C, int h16) {
  const uint32_t K = 4 * pc0->nk4, V = 4 * pc0->nv4, B = pc0->B, H = pc0->H;
  size_t nk = (size_t)pc0->Ttot * H * K, nv = (size_t)pc0->Ttot * H * V;
  dtr_arg q_t = dtr_tex_arg(q, nk, h16), k_t = dtr_tex_arg(k, nk, h16);
  dtr_arg v_t = dtr_tex_arg(v, nv, h16), g_t = dtr_tex_arg(gk, nk, 0);
  dtr_arg do_t = dtr_tex_arg(dout, nv, 0), b_t = dtr_tex_arg(wsB, nk, 0);
  dtr_arg qe_t = dtr_tex_arg(wsQ, nk, 0), ke_t = dtr_tex_arg(wsK, nk, 0);
  uint32_t wg = tex_wg(ctx), gx = (V / 4 + wg - 1) / wg, spec[4] = {wg, C, K, V};
  uint32_t maxch = (pc0->Ttot + C - 1) / C;
  dtr_status st;

  /* 1. b, q e^{b}, k e^{-b} per chunk, all chunks at once */
  dtr_arg a0[7] = {DTR_OUT(wsB), DTR_OUT(wsQ), DTR_OUT(wsK), q_t, k_t, g_t, DTR_IN(offsets)};
  uint32_t spec0[4] = {K / 4, C, K, V};
  if ((st = run(ctx, "gla_chunk_prep_tex", 0, spec0, 4, a0, 7, pc0, sizeof *pc0,
                pc0->Ttot / C + B, H)))
    return st;
  /* 2. the states, window by window: a step of the walk per token */
  uint32_t W1 = tex_window(C, 1), nw1 = maxch > W1 ? (maxch + W1 - 1) / W1 : 1;
  dtr_arg a1[8] = {DTR_OUT(wsS), k_t, v_t, g_t,
                   DTR_IN(dtr_view_present(state_in) ? state_in : offsets), DTR_IN(offsets),
                   b_t, ke_t};
  for (uint32_t w = 0; w < nw1; w++) {
    dtr_pc_gla_chunk p1 = *pc0;
    p1.n_begin = w * W1;
    p1.n_end = w + 1 < nw1 ? (w + 1) * W1 : 0xffffffffu;
    if (w) p1.flags |= DTR_GLA_CARRY;
    dtr_dispatch_desc dd = {.kernel = "gla_chunk_states_tex", .spec = spec, .nspec = 4,
                            .args = a1, .nargs = 8, .push = &p1, .push_size = sizeof p1,
                            .groups = {gx, H, B}};
    if ((st = dtr_dispatch(ctx, &dd))) return st;
  }
  /* 3. dS backwards over chunks, the last window first: a step per token and
   * one per chunk */
  uint32_t W2 = tex_window(C, 2), nw2 = maxch > W2 ? (maxch + W2 - 1) / W2 : 1;
  dtr_arg a2[7] = {DTR_OUT(wsD),
                   dtr_view_present(dstate_in) ? DTR_OUT(dstate_in) : DTR_IN(offsets),
                   DTR_IN(dtr_view_present(dstate_out) ? dstate_out : offsets), qe_t, do_t,
                   b_t, DTR_IN(offsets)};
  for (uint32_t w = nw2; w-- > 0;) {
    dtr_pc_gla_chunk p2 = *pc0;
    p2.n_begin = w * W2;
    p2.n_end = w + 1 < nw2 ? (w + 1) * W2 : 0xffffffffu;
    if (w + 1 < nw2) p2.flags |= DTR_GLA_CARRY;
    dtr_dispatch_desc dd = {.kernel = "gla_chunk_bwd_dh_tex", .spec = spec, .nspec = 4,
                            .args = a2, .nargs = 7, .push = &p2, .push_size = sizeof p2,
                            .groups = {gx, H, B}};
    if ((st = dtr_dispatch(ctx, &dd))) return st;
  }
  /* 4. dq, dk, dv per chunk, all chunks at once; then dgk */
  dtr_arg a3[13] = {DTR_OUT(dq), DTR_OUT(dk), DTR_OUT(dv), q_t, k_t, v_t, do_t, b_t,
                    dtr_tex_arg(wsS, wsS.size / 4, 0), dtr_tex_arg(wsD, wsD.size / 4, 0),
                    DTR_IN(offsets), qe_t, ke_t};
  uint32_t spec3[3] = {C, K, V};
  if ((st = run(ctx, "gla_chunk_bwd_tex", 0, spec3, 3, a3, 13, pc0, sizeof *pc0,
                pc0->Ttot / C + B, H)))
    return st;
  return bwd_dgk(ctx, dgk, q, k, dq, dk, dstate_out, wsS, offsets, pc0, C, h16);
}

dtr_status dtr_op_gla_chunk_bwd(dtr_ctx *ctx, dtr_view dq, dtr_view dk, dtr_view dv,
                                dtr_view dgk, dtr_view dstate_in, dtr_view dout,
                                dtr_view dstate_out, dtr_view q, dtr_view k, dtr_view v,
                                dtr_view gk, dtr_view state_in, dtr_view offsets,
                                dtr_view workspace, const dtr_lin_desc *d) {
  const char *op = "gla_chunk_bwd";
  uint32_t C = 0;
  dtr_status st;
  if ((st = check_desc(ctx, op, d, &C)) || (st = check_seq(ctx, op, d, q, k, v, gk, offsets)))
    return st;
  size_t nk = (size_t)d->Ttot * d->H * d->K * 4, nv = (size_t)d->Ttot * d->H * d->V * 4;
  gla_ws w = ws_layout(d, C);
  if ((st = dtr_check_view(ctx, op, "dq", dq, nk)) ||
      (st = dtr_check_view(ctx, op, "dk", dk, nk)) ||
      (st = dtr_check_view(ctx, op, "dv", dv, nv)) ||
      (st = dtr_check_view(ctx, op, "dgk", dgk, nk)) ||
      (st = dtr_check_view(ctx, op, "dout", dout, nv)) ||
      (st = check_opt(ctx, op, "dstate_in", dstate_in, state_bytes(d))) ||
      (st = check_opt(ctx, op, "dstate_out", dstate_out, state_bytes(d))) ||
      (st = check_opt(ctx, op, "state_in", state_in, state_bytes(d))) ||
      (st = dtr_check_view(ctx, op, "workspace", workspace, w.total)))
    return st;
  uint32_t align = dtr_ctx_device(ctx)->min_storage_offset_align;
  if (align && workspace.offset % align)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: workspace offset %zu is not a "
                             "multiple of the storage alignment %u", op, workspace.offset,
                             align);
  dtr_view wsS = sub(workspace, w.s_off, w.s_size), wsD = sub(workspace, w.d_off, w.d_size),
           wsB = sub(workspace, w.b_off, w.b_size ? w.b_size : 4),
           wsQ = sub(workspace, w.q_off, w.b_size ? w.b_size : 4),
           wsK = sub(workspace, w.k_off, w.b_size ? w.b_size : 4);
  dtr_pc_gla_chunk pc = {d->B, d->H, d->Ttot, d->scale, 0, d->K / 4, d->V / 4, 0,
                         0xffffffffu};
  if (dtr_view_present(state_in)) pc.flags |= DTR_GLA_STATE_IN;
  if (dtr_view_present(dstate_out)) pc.flags |= DTR_GLA_DSTATE_OUT;
  if (dtr_view_present(dstate_in)) pc.flags |= DTR_GLA_DSTATE_IN;
  dtr_view tvw[10] = {q, k, v, gk, dout, wsS, wsD, wsB, wsQ, wsK};
  size_t tn[10] = {nk / 4,       nk / 4,       nv / 4, nk / 4, nv / 4,
                   w.s_size / 4, w.d_size / 4, nk / 4, nk / 4, nk / 4};
  int h16 = d->io_f16 != 0;
  if (use_texel(ctx, d, tvw, tn, 10))
    return bwd_texel(ctx, dgk, dstate_in, dstate_out, q, k, v, gk, dout, state_in, offsets, wsS,
                     wsD, wsB, wsQ, wsK, dq, dk, dv, &pc, C, h16);
  uint32_t spec[4] = {d->V / 4, C, d->K, d->V};
  uint32_t maxch = (d->Ttot + C - 1) / C, wch = window_chunks(d, C);
  uint32_t nwin = maxch > wch ? (maxch + wch - 1) / wch : 1;

  /* 1. recompute the states entering every chunk, and b, window by window */
  dtr_arg a1[7] = {DTR_OUT(wsS), DTR_OUT(wsB), DTR_IN(k), DTR_IN(v), DTR_IN(gk),
                   DTR_IN(dtr_view_present(state_in) ? state_in : k), DTR_IN(offsets)};
  for (uint32_t w = 0; w < nwin; w++) {
    dtr_pc_gla_chunk p1 = pc;
    p1.n_begin = w * wch;
    p1.n_end = w + 1 < nwin ? (w + 1) * wch : 0xffffffffu;
    if (w) p1.flags |= DTR_GLA_CARRY;
    if ((st = run(ctx, "gla_chunk_states", h16, spec, 4, a1, 7, &p1, sizeof p1, d->H, d->B)))
      return st;
  }
  /* 2. dS backwards over chunks, the last window first; dS_0 is dstate_in */
  dtr_arg a2[7] = {DTR_OUT(wsD),
                   dtr_view_present(dstate_in) ? DTR_OUT(dstate_in) : DTR_IN(q),
                   DTR_IN(dtr_view_present(dstate_out) ? dstate_out : q), DTR_IN(q),
                   DTR_IN(dout), DTR_IN(wsB), DTR_IN(offsets)};
  for (uint32_t w = nwin; w-- > 0;) {
    dtr_pc_gla_chunk p2 = pc;
    p2.n_begin = w * wch;
    p2.n_end = w + 1 < nwin ? (w + 1) * wch : 0xffffffffu;
    if (w + 1 < nwin) p2.flags |= DTR_GLA_CARRY;
    if ((st = run(ctx, "gla_chunk_bwd_dh", h16, spec, 4, a2, 7, &p2, sizeof p2, d->H, d->B)))
      return st;
  }
  /* 3. dq, dk, dv per chunk, all chunks at once */
  dtr_arg a3[11] = {DTR_OUT(dq), DTR_OUT(dk), DTR_OUT(dv), DTR_IN(q), DTR_IN(k), DTR_IN(v),
                    DTR_IN(dout), DTR_IN(wsB), DTR_IN(wsS), DTR_IN(wsD), DTR_IN(offsets)};
  uint32_t spec3[3] = {C, d->K, d->V};
  if ((st = run(ctx, "gla_chunk_bwd", h16, spec3, 3, a3, 11, &pc, sizeof pc, d->Ttot / C + d->B,
                d->H)))
    return st;
  /* 4. dgk: reverse cumulative sum of q dq - k dk plus the final-state term */
  return bwd_dgk(ctx, dgk, q, k, dq, dk, dstate_out, wsS, offsets, &pc, C, h16);
}

dtr_status dtr_op_gla_decode(dtr_ctx *ctx, dtr_view o, dtr_view state, dtr_view q,
                             dtr_view k, dtr_view v, dtr_view gk, const dtr_lin_desc *d) {
  const char *op = "gla_decode";
  if (!d || !d->B || !d->H || !d->K || !d->V || d->K % 4 || d->V % 4)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "%s: B, H positive; K, V positive multiples of 4", op);
  size_t nk = (size_t)d->B * d->H * d->K * 4, nv = (size_t)d->B * d->H * d->V * 4;
  dtr_status st;
  if ((st = dtr_check_view(ctx, op, "o", o, nv)) ||
      (st = dtr_check_view(ctx, op, "state", state, state_bytes(d) / (d->state_f16 ? 2 : 1))) ||
      (st = dtr_check_view(ctx, op, "q", q, nk)) || (st = dtr_check_view(ctx, op, "k", k, nk)) ||
      (st = dtr_check_view(ctx, op, "v", v, nv)) || (st = dtr_check_view(ctx, op, "gk", gk, nk)))
    return st;
  dtr_pc_gla_decode pc = {d->B, d->H, d->scale};
  dtr_arg args[6] = {DTR_OUT(o), DTR_OUT(state), DTR_IN(q), DTR_IN(k), DTR_IN(v), DTR_IN(gk)};
  uint32_t spec[3] = {d->V / 4, d->K, d->V};
  return run(ctx, d->state_f16 ? "gla_decode_s16" : "gla_decode", 0, spec, 3, args, 6, &pc,
             sizeof pc, d->H, d->B);
}

static dtr_status gate(dtr_ctx *ctx, const char *kernel, dtr_arg *args, uint32_t nargs,
                       uint32_t n, float normalizer) {
  if (!(normalizer > 0))
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "%s: normalizer %g must be positive",
                             kernel, normalizer);
  for (uint32_t i = 0; i < nargs; i++) {
    dtr_status st = dtr_check_view(ctx, kernel, i == 0 ? "output" : "input", args[i].v,
                                   (size_t)n * 4);
    if (st) return st;
  }
  const uint32_t wg = 256;
  dtr_pc_gla_gate pc = {n, 1.0f / normalizer};
  dtr_dispatch_desc dd = {.kernel = kernel, .spec = &wg, .nspec = 1, .args = args,
                          .nargs = nargs, .push = &pc, .push_size = sizeof pc};
  dtr_grid_1d(n, wg, dd.groups);
  return dtr_dispatch(ctx, &dd);
}

dtr_status dtr_op_gla_gate_fwd(dtr_ctx *ctx, dtr_view gk, dtr_view x, uint32_t n,
                               float normalizer) {
  dtr_arg args[2] = {DTR_OUT(gk), DTR_IN(x)};
  return gate(ctx, "gla_gate_fwd", args, 2, n, normalizer);
}

dtr_status dtr_op_gla_gate_bwd(dtr_ctx *ctx, dtr_view dx, dtr_view dgk, dtr_view x,
                               uint32_t n, float normalizer) {
  dtr_arg args[3] = {DTR_OUT(dx), DTR_IN(dgk), DTR_IN(x)};
  return gate(ctx, "gla_gate_bwd", args, 3, n, normalizer);
}
