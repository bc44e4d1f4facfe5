// gdn_decode.comp — one Gated DeltaNet step per sequence (the recurrent form):
//   S' = e^g S;  u = beta (v - S'^T k);  S = S' + k u^T;  o = S^T (scale q)
// One workgroup per (column block, head, sequence); each invocation owns one
// column of the state in registers, updated in place. No column needs another,
// so there are no barriers. The s16 variant keeps the state as packed fp16
// (state_store.glsl); an invocation then owns two neighbouring columns (one
// word per row; V is even).
//! variant s16 -DS16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint KD = 64;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) writeonly buffer O { float o[]; };
#include "state_store.glsl"
layout(std430, binding = 2) readonly buffer Q { float q[]; };
layout(std430, binding = 3) readonly buffer Kb { float k[]; };
layout(std430, binding = 4) readonly buffer Vb { float v[]; };
layout(std430, binding = 5) readonly buffer G { float g[]; };
layout(std430, binding = 6) readonly buffer Be { float beta_[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_decode p; };

#ifdef S16
#define CT vec2
#define NC 2u
CT ld(uint i) { return state_ld2(i); }
void st(uint i, CT s) { state_st2(i, s); }
CT vin(uint i) { return vec2(v[i], v[i + 1u]); }
void oout(uint i, CT a) {
  o[i] = a.x;
  o[i + 1u] = a.y;
}
#else
#define CT float
#define NC 1u
CT ld(uint i) { return state[i]; }
void st(uint i, CT s) { state[i] = s; }
CT vin(uint i) { return v[i]; }
void oout(uint i, CT a) { o[i] = a; }
#endif

void main() {
  uint b = gl_WorkGroupID.z, h = gl_WorkGroupID.y;
  uint c = NC * (gl_WorkGroupID.x * WG + gl_LocalInvocationID.x);
  if (c >= p.V) return;
  uint bh = b * p.H + h, sb = bh * p.K * p.V + c, rk = bh * p.K;
  float alpha = exp(g[bh]), bt = beta_[bh];
  CT S[KD];
  CT a = CT(0.0);
  [[unroll]] for (uint x = 0; x < KD; x++) {
    S[x] = alpha * ld(sb + x * p.V);
    a += S[x] * k[rk + x];
  }
  CT u = bt * (vin(bh * p.V + c) - a);
  CT acc = CT(0.0);
  [[unroll]] for (uint x = 0; x < KD; x++) {
    S[x] += k[rk + x] * u;
    acc += S[x] * q[rk + x];
    st(sb + x * p.V, S[x]);
  }
  oout(bh * p.V + c, p.scale * acc);
}
