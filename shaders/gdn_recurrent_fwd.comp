// gdn_recurrent_fwd.comp — Gated DeltaNet forward in the recurrent form, the choice
// on CPU devices (lavapipe): one workgroup per (sequence, head, block of WG value
// columns), each invocation owns one column of S in registers and walks the tokens:
//   S' = e^g S;  u = beta (v - S'^T k);  S = S' + k u^T;  o = S^T (scale q)
// Columns never interact, so there is no shared memory and no barrier: on a CPU
// that beats the chunked form's extra matmul flops and barriers (and avoids
// lavapipe's per-loop stack growth in barriered shaders; see gdn_common.glsl).
// Same bindings and push constants as gdn_chunk_fwd; needs K % 4 == 0.
// Variant h16: q, k and v are read as packed fp16 (qkv_load.glsl).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"
#include "qkv_load.glsl"
//! variant h16 -DDTR_QKV_F16=1

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint C = 64; // unused; keeps gdn_chunk_fwd's spec layout
layout(constant_id = 2) const uint KD = 64;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) writeonly buffer O { float o[]; };
layout(std430, binding = 1) writeonly buffer SO { float state_out[]; };
layout(std430, binding = 2) readonly buffer Q4 { QKV_VEC4 q4[]; };
layout(std430, binding = 3) readonly buffer K4 { QKV_VEC4 k4[]; };
layout(std430, binding = 4) readonly buffer Vb { QKV_FLOAT v[]; };
layout(std430, binding = 5) readonly buffer G { float g[]; };
layout(std430, binding = 6) readonly buffer Be { float beta_[]; };
layout(std430, binding = 7) readonly buffer SI { float state_in[]; };
layout(std430, binding = 8) readonly buffer Off { int offsets[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_chunk p; };

void main() {
  uint b = gl_WorkGroupID.z, h = gl_WorkGroupID.y;
  uint c = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x;
  if (c >= p.V) return;
  uint bos = uint(offsets[b]), eos = uint(offsets[b + 1]);
  uint sbase = (b * p.H + h) * p.K * p.V + c;
  // The column as KD/4 vec4: loops of at most 32 trips are unrolled by lavapipe's
  // NIR, so S stays in registers (a 64-trip loop would leave it in slow scratch).
  vec4 S[KD / 4];
  [[unroll]] for (uint x = 0; x < KD / 4; x++)
    S[x] = p.has_in != 0u ? vec4(state_in[sbase + (4 * x) * p.V], state_in[sbase + (4 * x + 1) * p.V],
                                 state_in[sbase + (4 * x + 2) * p.V], state_in[sbase + (4 * x + 3) * p.V])
                          : vec4(0.0);
  for (uint t = bos; t < eos; t++) {
    uint th = t * p.H + h, rk = (th * p.K) >> 2;
    float al = exp(g[th]);
    vec4 a = vec4(0.0);
    [[unroll]] for (uint x = 0; x < KD / 4; x++) a += S[x] * QKV_LD4(k4, rk + x);
    // u = beta (v - (al S)^T k), then S = al S + k u^T.
    float u = beta_[th] * (QKV_LD(v, th * p.V + c) - al * ((a.x + a.y) + (a.z + a.w)));
    vec4 acc = vec4(0.0);
    [[unroll]] for (uint x = 0; x < KD / 4; x++) {
      S[x] = al * S[x] + QKV_LD4(k4, rk + x) * u;
      acc += S[x] * QKV_LD4(q4, rk + x);
    }
    o[th * p.V + c] = p.scale * ((acc.x + acc.y) + (acc.z + acc.w));
  }
  if (p.has_out != 0u)
    [[unroll]] for (uint x = 0; x < KD / 4; x++) {
      state_out[sbase + (4 * x) * p.V] = S[x].x;
      state_out[sbase + (4 * x + 1) * p.V] = S[x].y;
      state_out[sbase + (4 * x + 2) * p.V] = S[x].z;
      state_out[sbase + (4 * x + 3) * p.V] = S[x].w;
    }
}
