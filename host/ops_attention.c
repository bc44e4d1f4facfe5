/* ops_attention.c — causal grouped-query attention, forward and backward
 * (dtr_op_attention_fwd / dtr_op_attention_bwd of dtr_ops.h): argument checks,
 * the per-device tile choice and the dispatches of shaders/attention_*.comp.
 *
 * The forward is one kernel (online softmax, one lane per query row). The
 * backward is two independent kernels: attention_bwd_dq (one lane per query
 * row, walking keys) and attention_bwd_dkdv (one lane per key, walking the
 * query rows of all heads sharing that kv head), so every gradient element is
 * summed by one invocation in a fixed order: deterministic, no atomics, no
 * scratch, memory linear in the sequence length.
 *
 * Every kernel has a twin *_tex: the plain ones read storage buffers and share
 * keys (rows) across a subgroup (the GPU path); the _tex ones read q, k, v
 * (and dout, out) as vec4 texel buffers with each lane walking keys on its
 * own and its rows' head-dim vectors in registers, chosen on CPU devices
 * because llvmpipe loads storage buffers lane by lane but fetches texels with
 * one vector gather (see shaders/attention_fwd_tex.comp). DTR_ATTN_TEXEL=0/1
 * forces the choice (the tests run both); the texel path is only taken where
 * the views meet the device's texel alignment and size limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtr_ops.h"
#include "dtr_push.h"

#define ATTN_MAX_D 256

/* Tile parameters, specialization constants of the kernels. */
typedef struct attn_tile {
  uint32_t wg;   /* invocations per workgroup */
  uint32_t kb;   /* keys (queries) per block, shared by subgroupBroadcast */
  uint32_t rows; /* rows (keys) each invocation owns */
} attn_tile;

/* CPU devices (lavapipe) run a workgroup as a loop over SIMD chunks, so one
 * subgroup per workgroup and register blocking over two rows per lane win;
 * GPUs want wider workgroups and one row per lane to keep registers low.
 * DTR_ATTN_TILE="wg,rows" overrides (for tuning). kb must not exceed the
 * smallest subgroup the device may run, hence subgroup_min. */
static attn_tile attn_pick_tile(dtr_ctx *ctx, uint32_t D) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  uint32_t sg = di->subgroup_min ? di->subgroup_min : di->subgroup_size;
  if (sg == 0) sg = 1;
  attn_tile t;
  t.kb = sg < 16 ? sg : 16;
  if (di->type == DTR_DEVICE_CPU) {
    t.wg = di->subgroup_size ? di->subgroup_size : sg;
    t.rows = D <= 128 ? 2 : 1;
  } else {
    t.wg = 64;
    t.rows = 1;
  }
  const char *env = getenv("DTR_ATTN_TILE");
  if (env) {
    char *end;
    unsigned long w = strtoul(env, &end, 10);
    unsigned long r = (*end == ',') ? strtoul(end + 1, NULL, 10) : t.rows;
    if (w >= t.kb && w <= 1024 && w % t.kb == 0) t.wg = (uint32_t)w;
    if (r >= 1 && r <= 8) t.rows = (uint32_t)r;
  }
  if (t.wg > di->max_workgroup_invocations) t.wg = di->max_workgroup_invocations;
  return t;
}

/* Tile of the *_tex kernels: wg lanes owning `rows` consecutive rows (keys
 * for dkdv) each, walking keys (rows) in blocks of kb. More rows per lane
 * share each texel fetch among more rows but hold more D/4-vec4 register
 * arrays (fwd 2 per row, bwd_dq 3, bwd_dkdv 4), which spill and stretch
 * llvmpipe's pipeline compile; the defaults were measured on lavapipe at
 * D = 64 and 128. The environment variable env ("wg,rows,kb") overrides (for
 * tuning). */
static attn_tile attn_pick_tex_tile(dtr_ctx *ctx, uint32_t rows, const char *env_name) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  attn_tile t;
  t.wg = di->subgroup_size ? di->subgroup_size : 8;
  t.rows = rows;
  t.kb = 4;
  const char *env = getenv(env_name);
  if (env) {
    char *end;
    unsigned long w = strtoul(env, &end, 10);
    unsigned long r = (*end == ',') ? strtoul(end + 1, &end, 10) : t.rows;
    unsigned long k = (*end == ',') ? strtoul(end + 1, NULL, 10) : t.kb;
    if (w >= 1 && w <= 1024) t.wg = (uint32_t)w;
    if (r >= 1 && r <= 8) t.rows = (uint32_t)r;
    if (k >= 1 && k <= 16) t.kb = (uint32_t)k;
  }
  if (t.wg > di->max_workgroup_invocations) t.wg = di->max_workgroup_invocations;
  return t;
}

/* The view of the first n floats of v, for binding as a texel buffer. */
static dtr_view tex_view(dtr_view v, uint64_t n) { return (dtr_view){v.buf, v.offset, n * 4}; }

/* True when the texel kernels should run: DTR_ATTN_TEXEL=0/1 if set, else on
 * CPU devices; and only if every view (of n[i] floats) can be a texel buffer. */
static int attn_use_texel(dtr_ctx *ctx, const dtr_view *v, const uint64_t *n, int count) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  const char *env = getenv("DTR_ATTN_TEXEL");
  int want = env && *env ? *env != '0' : di->type == DTR_DEVICE_CPU;
  if (!want) return 0;
  uint32_t align = di->min_texel_offset_align ? di->min_texel_offset_align : 1;
  for (int i = 0; i < count; i++)
    if (v[i].offset % align || n[i] / 4 > di->max_texel_buffer_elements) return 0;
  return 1;
}

static size_t view_bytes(dtr_view v) {
  size_t total = dtr_buf_size(v.buf);
  if (v.offset > total) return 0;
  return v.size ? v.size : total - v.offset;
}

/* Checks that view v (named name) is present and holds at least n floats. */
static dtr_status need_view(dtr_ctx *ctx, dtr_view v, const char *name, uint64_t n) {
  if (!dtr_view_present(v))
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "attention: %s is missing", name);
  size_t have = view_bytes(v);
  if ((uint64_t)have < n * 4)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "attention: %s view holds %zu bytes, the shape needs %llu",
                             name, have, (unsigned long long)(n * 4));
  if (n * 4 > dtr_ctx_device(ctx)->max_storage_buffer_range)
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                             "attention: %s needs %llu bytes, more than one binding "
                             "can see (%llu)", name, (unsigned long long)(n * 4),
                             (unsigned long long)dtr_ctx_device(ctx)->max_storage_buffer_range);
  return DTR_OK;
}

static dtr_status check_desc(dtr_ctx *ctx, const dtr_attn_desc *d) {
  if (!d) return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "attention: desc is NULL");
  if (!d->B || !d->Tq || !d->Tk || !d->Hq || !d->Hkv || !d->D)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "attention: B=%u Tq=%u Tk=%u Hq=%u Hkv=%u D=%u: every size "
                             "must be >= 1", d->B, d->Tq, d->Tk, d->Hq, d->Hkv, d->D);
  if (d->Tq > d->Tk)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "attention: Tq=%u > Tk=%u (queries are the last Tq of the Tk "
                             "positions)", d->Tq, d->Tk);
  if (d->kv_cap < d->Tk)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "attention: kv_cap=%u < Tk=%u",
                             d->kv_cap, d->Tk);
  if (d->Hq % d->Hkv)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "attention: Hq=%u is not a multiple of Hkv=%u", d->Hq, d->Hkv);
  if (d->D % 4 || d->D > ATTN_MAX_D)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                             "attention: head dim D=%u must be a multiple of 4 and <= %d",
                             d->D, ATTN_MAX_D);
  /* Row indices (Tq * G) and offsets are 32-bit in the kernels. */
  if ((uint64_t)d->B * d->kv_cap * d->Hkv * d->D >= (1ull << 32) ||
      (uint64_t)d->B * d->Tq * d->Hq * d->D >= (1ull << 32))
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                             "attention: tensors of 2^32 elements or more");
  return DTR_OK;
}

typedef struct attn_sizes {
  uint64_t qn;  /* floats of q, out, dout, dq */
  uint64_t kvn; /* floats of k, v, dk, dv the op touches (last sequence up to Tk) */
  uint64_t ln;  /* floats of lse */
} attn_sizes;

static attn_sizes attn_sizes_of(const dtr_attn_desc *d) {
  attn_sizes s;
  s.qn = (uint64_t)d->B * d->Tq * d->Hq * d->D;
  s.kvn = ((uint64_t)(d->B - 1) * d->kv_cap + d->Tk) * d->Hkv * d->D;
  s.ln = (uint64_t)d->B * d->Hq * d->Tq;
  return s;
}

static dtr_status attn_dispatch(dtr_ctx *ctx, const char *kernel, const dtr_attn_desc *d,
                                attn_tile tile, uint32_t items, const dtr_arg *args,
                                uint32_t nargs) {
  const dtr_device_info *di = dtr_ctx_device(ctx);
  const attn_tile *t = &tile;
  dtr_pc_attention pc = {d->B, d->Tq, d->Tk, d->kv_cap, d->Hkv, d->Hq / d->Hkv,
                         t->wg * t->rows, d->scale};
  uint32_t groups = (items + pc.rows_per_group - 1) / pc.rows_per_group;
  if (groups > di->max_workgroup_count[0] || d->Hkv > di->max_workgroup_count[1] ||
      d->B > di->max_workgroup_count[2])
    return dtr_ctx_set_error(ctx, DTR_ERR_UNSUPPORTED,
                             "attention: grid %u x %u x %u exceeds the device's limits",
                             groups, d->Hkv, d->B);
  uint32_t spec[4] = {t->wg, d->D, t->kb, t->rows};
  dtr_dispatch_desc dd = {kernel, spec, 4, args, nargs, &pc, sizeof pc,
                          {groups, d->Hkv, d->B}};
  return dtr_dispatch(ctx, &dd);
}

dtr_status dtr_op_attention_fwd(dtr_ctx *ctx, dtr_view out, dtr_view lse, dtr_view q,
                                dtr_view k, dtr_view v, const dtr_attn_desc *d) {
  dtr_status st = check_desc(ctx, d);
  if (st) return st;
  attn_sizes s = attn_sizes_of(d);
  if ((st = need_view(ctx, out, "out", s.qn)) || (st = need_view(ctx, lse, "lse", s.ln)) ||
      (st = need_view(ctx, q, "q", s.qn)) || (st = need_view(ctx, k, "k", s.kvn)) ||
      (st = need_view(ctx, v, "v", s.kvn)))
    return st;
  dtr_view tv[3] = {q, k, v};
  uint64_t tn[3] = {s.qn, s.kvn, s.kvn};
  if (attn_use_texel(ctx, tv, tn, 3)) {
    dtr_arg args[5] = {DTR_OUT(out), DTR_OUT(lse), DTR_TEX(tex_view(q, s.qn)),
                       DTR_TEX(tex_view(k, s.kvn)), DTR_TEX(tex_view(v, s.kvn))};
    return attn_dispatch(ctx, "attention_fwd_tex", d, attn_pick_tex_tile(ctx, d->D <= 128 ? 4 : 2, "DTR_ATTN_TEX_TILE"),
                         d->Tq * (d->Hq / d->Hkv), args, 5);
  }
  attn_tile t = attn_pick_tile(ctx, d->D);
  dtr_arg args[5] = {DTR_OUT(out), DTR_OUT(lse), DTR_IN(q), DTR_IN(k), DTR_IN(v)};
  return attn_dispatch(ctx, "attention_fwd", d, t, d->Tq * (d->Hq / d->Hkv), args, 5);
}

dtr_status dtr_op_attention_bwd(dtr_ctx *ctx, dtr_view dq, dtr_view dk, dtr_view dv,
                                dtr_view dout, dtr_view q, dtr_view k, dtr_view v,
                                dtr_view out, dtr_view lse, const dtr_attn_desc *d) {
  dtr_status st = check_desc(ctx, d);
  if (st) return st;
  attn_sizes s = attn_sizes_of(d);
  if ((st = need_view(ctx, dq, "dq", s.qn)) || (st = need_view(ctx, dk, "dk", s.kvn)) ||
      (st = need_view(ctx, dv, "dv", s.kvn)) || (st = need_view(ctx, dout, "dout", s.qn)) ||
      (st = need_view(ctx, q, "q", s.qn)) || (st = need_view(ctx, k, "k", s.kvn)) ||
      (st = need_view(ctx, v, "v", s.kvn)) || (st = need_view(ctx, out, "out", s.qn)) ||
      (st = need_view(ctx, lse, "lse", s.ln)))
    return st;
  dtr_view tv[5] = {dout, q, k, v, out};
  uint64_t tn[5] = {s.qn, s.qn, s.kvn, s.kvn, s.qn};
  if (attn_use_texel(ctx, tv, tn, 5)) {
    dtr_arg dqt = DTR_TEX(tex_view(dout, s.qn)), qt = DTR_TEX(tex_view(q, s.qn)),
            kt = DTR_TEX(tex_view(k, s.kvn)), vt = DTR_TEX(tex_view(v, s.kvn)),
            ot = DTR_TEX(tex_view(out, s.qn));
    dtr_arg qa[7] = {DTR_OUT(dq), dqt, qt, kt, vt, ot, DTR_IN(lse)};
    st = attn_dispatch(ctx, "attention_bwd_dq_tex", d,
                       attn_pick_tex_tile(ctx, d->D <= 64 ? 4 : d->D <= 128 ? 2 : 1,
                                          "DTR_ATTN_TEX_TILE_DQ"),
                       d->Tq * (d->Hq / d->Hkv), qa, 7);
    if (st) return st;
    dtr_arg ka[8] = {DTR_OUT(dk), DTR_OUT(dv), dqt, qt, kt, vt, ot, DTR_IN(lse)};
    return attn_dispatch(ctx, "attention_bwd_dkdv_tex", d,
                         attn_pick_tex_tile(ctx, d->D <= 64 ? 2 : 1, "DTR_ATTN_TEX_TILE_DKDV"),
                         d->Tk, ka, 8);
  }
  attn_tile t = attn_pick_tile(ctx, d->D);
  dtr_arg qa[7] = {DTR_OUT(dq), DTR_IN(dout), DTR_IN(q),  DTR_IN(k),
                   DTR_IN(v),   DTR_IN(out),  DTR_IN(lse)};
  st = attn_dispatch(ctx, "attention_bwd_dq", d, t, d->Tq * (d->Hq / d->Hkv), qa, 7);
  if (st) return st;
  dtr_arg ka[8] = {DTR_OUT(dk), DTR_OUT(dv), DTR_IN(dout), DTR_IN(q),
                   DTR_IN(k),   DTR_IN(v),   DTR_IN(out),  DTR_IN(lse)};
  return attn_dispatch(ctx, "attention_bwd_dkdv", d, t, d->Tk, ka, 8);
}
