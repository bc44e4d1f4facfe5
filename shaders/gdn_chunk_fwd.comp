// gdn_chunk_fwd.comp — Gated DeltaNet chunkwise forward (WY/UT form of
// LINEAR_ATTENTION.md). One workgroup per (sequence, head, block of WG value
// columns); it walks the sequence's chunks in order. Per chunk the C x C matrices
// A and P are built once (gdn_common.glsl), then every invocation owns one column v
// of the K x V state S and needs nobody else's: the delta rule never mixes value
// columns, so the column phase has no barriers.
//   Vn = (I + A)^{-1} beta (V - e^gam K S)   forward substitution (= U - W S of the
//                                            spec, with Tm applied to both at once)
//   O  = scale e^gam Q S + P Vn
//   S  = e^{gam_C} S + (K e^{gam_C - gam})^T Vn
// Variant save: writes no output; instead the state checkpoints S_n (and the final
// state) and Vn go to the backward's workspace.
// Variants h16 and save_h16: q, k and v are read as packed fp16 (qkv_load.glsl).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"
#include "qkv_load.glsl"
//! variant save -DSAVE=1
//! variant h16 -DDTR_QKV_F16=1
//! variant save_h16 -DSAVE=1 -DDTR_QKV_F16=1

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint KD = 64;
layout(local_size_x_id = 0) in;

#if SAVE
layout(std430, binding = 0) writeonly buffer WS { float ws[]; };
#else
layout(std430, binding = 0) writeonly buffer O { float o[]; };
#endif
layout(std430, binding = 1) writeonly buffer SO { float state_out[]; };
layout(std430, binding = 2) readonly buffer Q { QKV_FLOAT q[]; };
layout(std430, binding = 3) readonly buffer Kb { QKV_FLOAT k[]; };
layout(std430, binding = 4) readonly buffer Vb { QKV_FLOAT v[]; };
layout(std430, binding = 5) readonly buffer G { float g[]; };
layout(std430, binding = 6) readonly buffer Be { float beta_[]; };
layout(std430, binding = 7) readonly buffer SI { float state_in[]; };
layout(std430, binding = 8) readonly buffer Off { int offsets[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_chunk p; };

#include "gdn_common.glsl"


void main() {
  uint b = gl_WorkGroupID.z, h = gl_WorkGroupID.y, lid = gl_LocalInvocationID.x;
  uint c = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x; // this invocation's column
  bool own = c < p.V;
  uint bos, eos, slot0;
  gdn_seq(b, bos, eos, slot0);
  uint nch = (eos - bos + C - 1) / C;
  uint sbase = (b * p.H + h) * p.K * p.V + c; // S[x][c] at sbase + x*V

  float S[KD];
  [[unroll]] for (uint x = 0; x < KD; x++)
    S[x] = (own && p.has_in != 0u) ? state_in[sbase + x * p.V] : 0.0;

  for (uint n = 0; n < nch; n++) {
    uint t0 = bos + n * C, cn = min(C, eos - t0);
    barrier(); // the previous chunk's column phase is done with M, gam, bet
    gdn_load_gates(t0, cn, h);
    gdn_build_chunk(t0, cn, h);
    if (own) {
#if SAVE
    uint cp = p.ws_s + ((slot0 + n) * p.H + h) * p.K * p.V + c;
    [[unroll]] for (uint x = 0; x < KD; x++) ws[cp + x * p.V] = S[x];
#endif
    // Vn by forward substitution on the unit lower-triangular I + A; row i of O
    // needs Vn_j for j <= i only, so it follows at once.
    for (uint i = 0; i < cn; i++) {
      uint ri = ((t0 + i) * p.H + h) * p.K, tv = ((t0 + i) * p.H + h) * p.V + c;
      float a = 0.0, aq = 0.0;
      [[unroll]] for (uint x = 0; x < KD; x++) {
        a += QKV_LD(k, ri + x) * S[x];
#if !SAVE
        aq += QKV_LD(q, ri + x) * S[x];
#endif
      }
      float e = exp(gam[i]);
      float r = bet[i] * (QKV_LD(v, tv) - e * a);
      [[unroll]] for (uint j = 0; j < C; j++)
        if (j < i) r -= M[j * C + i] * VN[j * WG + lid];
      VN[i * WG + lid] = r;
#if SAVE
      ws[p.ws_vn + tv] = r;
#else
      float acc = p.scale * e * aq;
      [[unroll]] for (uint j = 0; j < C; j++)
        if (j <= i) acc += M[i * C + j] * VN[j * WG + lid];
      o[tv] = acc;
#endif
    }
    float gC = gam[cn - 1], dC = exp(gC);
    [[unroll]] for (uint x = 0; x < KD; x++) S[x] *= dC;
    for (uint i = 0; i < cn; i++) {
      uint ri = ((t0 + i) * p.H + h) * p.K;
      float w = exp(gC - gam[i]) * VN[i * WG + lid];
      [[unroll]] for (uint x = 0; x < KD; x++) S[x] += QKV_LD(k, ri + x) * w;
    }
    }
  }
  if (!own) return;
#if SAVE
  uint cp = p.ws_s + ((slot0 + nch) * p.H + h) * p.K * p.V + c;
  [[unroll]] for (uint x = 0; x < KD; x++) ws[cp + x * p.V] = S[x];
#else
  if (p.has_out != 0u)
    [[unroll]] for (uint x = 0; x < KD; x++) state_out[sbase + x * p.V] = S[x];
#endif
}
