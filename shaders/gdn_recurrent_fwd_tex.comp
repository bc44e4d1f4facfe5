// gdn_recurrent_fwd_tex.comp — the Gated DeltaNet forward in the recurrent form on
// CPU devices: the twin of gdn_recurrent_fwd (same outputs up to rounding), reading
// q, k and v as RGBA32F texel buffers (one texel = 4 consecutive floats): lavapipe
// loads storage buffers lane by lane but fetches a texel with one vector gather
// (see host/ops_gdn.c). Each invocation owns four value columns of S (one v
// texel) in registers, so each token's q and k fetches serve four columns:
//   S' = e^g S;  u = beta (v - S'^T k);  S = S' + k u^T;  o = S^T (scale q)
// with u, o vec4 over my columns. No shared memory, no barrier. One dispatch
// walks whole sequences (the host takes this kernel only for Ttot <= 32768:
// lavapipe ends an invocation after 65535 loop iterations, one per token here).
// Needs K % 4 == 0, V % 4 == 0 and K <= 128 (the K/4-trip loops unroll).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 8;
layout(constant_id = 1) const uint C = 64; // unused; keeps gdn_chunk_fwd's spec layout
layout(constant_id = 2) const uint KD = 64;
layout(local_size_x_id = 0) in;
const uint K4 = KD / 4;

layout(std430, binding = 0) writeonly buffer O { vec4 o4[]; };          // (Ttot, H, V)
layout(std430, binding = 1) writeonly buffer SO { vec4 state_out4[]; }; // (B, H, K, V)
layout(binding = 2) uniform samplerBuffer Qt;                          // (Ttot, H, K)
layout(binding = 3) uniform samplerBuffer Kt;                          // (Ttot, H, K)
layout(binding = 4) uniform samplerBuffer Vt;                          // (Ttot, H, V)
layout(std430, binding = 5) readonly buffer G { float g[]; };           // (Ttot, H)
layout(std430, binding = 6) readonly buffer Be { float beta_[]; };      // (Ttot, H)
layout(std430, binding = 7) readonly buffer SI { vec4 state_in4[]; };   // (B, H, K, V)
layout(std430, binding = 8) readonly buffer Off { int offsets[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_chunk p; };

// Row k of S, my four columns; at module scope (lavapipe re-allocates arrays
// declared inside loops every iteration).
vec4 S[KD];

void main() {
  uint b = gl_WorkGroupID.z, h = gl_WorkGroupID.y;
  uint vq = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x, V4 = p.V / 4;
  if (vq >= V4) return;
  uint bos = uint(offsets[b]), eos = uint(offsets[b + 1]);
  uint sbase = (b * p.H + h) * KD * V4 + vq;
  if (p.has_in != 0u) {
    [[unroll]] for (uint x = 0; x < K4; x++)
      [[unroll]] for (uint c = 0; c < 4; c++) S[4 * x + c] = state_in4[sbase + (4 * x + c) * V4];
  } else {
    [[unroll]] for (uint x = 0; x < K4; x++)
      [[unroll]] for (uint c = 0; c < 4; c++) S[4 * x + c] = vec4(0.0);
  }
  for (uint t = bos; t < eos; t++) {
    uint th = t * p.H + h;
    float al = exp(g[th]), be = beta_[th];
    vec4 a = vec4(0.0);
    [[unroll]] for (uint x = 0; x < K4; x++) {
      vec4 kt = texelFetch(Kt, int(th * K4 + x));
      a += kt.x * S[4 * x] + kt.y * S[4 * x + 1] + kt.z * S[4 * x + 2] + kt.w * S[4 * x + 3];
    }
    // u = beta (v - (al S)^T k), then S = al S + k u^T.
    vec4 u = be * (texelFetch(Vt, int(th * V4 + vq)) - al * a);
    vec4 acc = vec4(0.0);
    [[unroll]] for (uint x = 0; x < K4; x++) {
      vec4 kt = texelFetch(Kt, int(th * K4 + x)), qt = texelFetch(Qt, int(th * K4 + x));
      S[4 * x] = al * S[4 * x] + kt.x * u;
      S[4 * x + 1] = al * S[4 * x + 1] + kt.y * u;
      S[4 * x + 2] = al * S[4 * x + 2] + kt.z * u;
      S[4 * x + 3] = al * S[4 * x + 3] + kt.w * u;
      acc += qt.x * S[4 * x] + qt.y * S[4 * x + 1] + qt.z * S[4 * x + 2] + qt.w * S[4 * x + 3];
    }
    o4[th * V4 + vq] = p.scale * acc;
  }
  if (p.has_out != 0u)
    [[unroll]] for (uint x = 0; x < K4; x++)
      [[unroll]] for (uint c = 0; c < 4; c++) state_out4[sbase + (4 * x + c) * V4] = S[4 * x + c];
}
