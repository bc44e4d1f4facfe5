/* attention_common.glsl — what the attention kernels share: the tile
 * specialization constants, the push constants and the row/key addressing.
 *
 * Work layout (all three kernels): workgroup (x, hk, b) takes the rows of kv
 * head hk of sequence b (row r = query position r / G of query head
 * hk*G + r % G, see push_attention.h). Keys are visited in blocks of KB: in a
 * block, lane l of a subgroup loads key j0 + l (every lane loads a different
 * row, so no load is wasted) and subgroupBroadcast hands each key to the whole
 * subgroup. On lavapipe that is the cheap way to share data between lanes: a
 * load whose address is the same for all lanes still costs one scalar load
 * per lane, shared memory needs barriers (coroutines there), while a broadcast
 * from a constant lane is one extract and one splat. KB must not exceed the
 * subgroup size, so the host passes the device's minimum subgroup size.
 *
 * Head-dim loops stay rolled and the per-row state that spans the head dim
 * (output and gradient accumulators) lives in the output buffer itself, read
 * and rewritten once per block by the lane that owns it: on lavapipe (LLVM 15)
 * compile time explodes with the size of fully unrolled head-dim code (tens of
 * seconds at D = 64, minutes at 128), and a rolled loop cannot index register
 * arrays cheaply. Only the block loops (KB keys x ROWS rows) are unrolled.
 *
 * The *_tex kernels (texel-buffer inputs, the CPU path) differ: no subgroup
 * sharing, each lane owns ROWS consecutive rows (or keys) and holds their
 * head-dim vectors in registers as D/4 vec4 with the head-dim loops unrolled;
 * the host keeps ROWS small enough at large D that the compile stays at a few
 * seconds per pipeline.
 */
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_EXT_control_flow_attributes : require

#include "dtr_push.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 64;   /* head dim, multiple of 4 */
layout(constant_id = 2) const uint KB = 8;   /* keys (or queries) per block, <= subgroup size */
layout(constant_id = 3) const uint ROWS = 1; /* rows each lane owns */
const uint D4 = D / 4;

layout(push_constant) uniform PC { dtr_pc_attention p; };

/* Offset in vec4 of row r (query position r / G, head hk*G + r % G) of a
 * (B, Tq, Hq, D) tensor. */
uint row_off(uint b, uint hk, uint r) {
  uint i = r / p.G, hg = r - i * p.G;
  return (((b * p.Tq + i) * p.Hkv + hk) * p.G + hg) * D4;
}
/* Index of row r in lse (B, Hq, Tq). */
uint lse_idx(uint b, uint hk, uint r) {
  uint i = r / p.G, hg = r - i * p.G;
  return ((b * p.Hkv + hk) * p.G + hg) * p.Tq + i;
}
/* Offset in vec4 of key j of kv head hk in a (B, kv_cap, Hkv, D) cache. */
uint key_off(uint b, uint hk, uint j) { return ((b * p.kv_cap + j) * p.Hkv + hk) * D4; }
/* The last key row r sees (causal, with Tk - Tq cached tokens before the queries). */
uint row_last_key(uint r) { return p.Tk - p.Tq + r / p.G; }

const float LOG2E = 1.4426950408889634;
const float LN2 = 0.6931471805599453;
