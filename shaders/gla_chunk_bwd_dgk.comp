/* gla_chunk_bwd_dgk.comp — GLA backward, the log-gate gradient. Writing
 * B_t = sum_{u<=t} gk_u (over the whole sequence), the forward depends on gk only
 * through q_t e^{B_t}, k_t e^{-B_t} and the final state's factor e^{B_T}, so
 *   dB_t = q_t dq_t - k_t dk_t  (+ <dS_T[k,:], S_T[k,:]> at t = T)
 *   dgk_t = sum_{u>=t} dB_u
 * a reverse cumulative sum plus the state term (zero without dstate_out). One
 * workgroup per (head, sequence), four k per invocation, a sequential sum:
 * deterministic. Needs dq, dk from gla_chunk_bwd and S_T from the states pass.
 * Variant h16: q and k are read as packed fp16 (qkv_load.glsl). */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#include "qkv_load.glsl"
//! variant h16 -DDTR_QKV_F16=1

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint NT = 16; /* >= K / 4 */
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint K = 64;
layout(constant_id = 3) const uint V = 64;

layout(push_constant) uniform PC { dtr_pc_gla_chunk p; };

layout(std430, binding = 0) writeonly buffer DGbuf { vec4 dg4[]; };
layout(std430, binding = 1) readonly buffer Qbuf { QKV_VEC4 q4[]; };
layout(std430, binding = 2) readonly buffer Kbuf { QKV_VEC4 k4[]; };
layout(std430, binding = 3) readonly buffer DQbuf { vec4 dq4[]; };
layout(std430, binding = 4) readonly buffer DKbuf { vec4 dk4[]; };
layout(std430, binding = 5) readonly buffer DSObuf { vec4 dso4[]; };
layout(std430, binding = 6) readonly buffer WSbuf { vec4 wsS4[]; };
layout(std430, binding = 7) readonly buffer Offbuf { int offs[]; };

void main() {
  const uint h = gl_WorkGroupID.x, b = gl_WorkGroupID.y, kq = gl_LocalInvocationID.x;
  const uint H = p.H, K4 = K / 4, V4 = V / 4;
  if (kq >= K4) return;
  const uint t0 = uint(offs[b]), T = uint(offs[b + 1]) - t0;
  const uint nchunks = (T + C - 1) / C, slot = t0 / C + 2u * b + nchunks;
  vec4 acc = vec4(0.0);
  if ((p.flags & DTR_GLA_DSTATE_OUT) != 0u) {
    const uint sb = (b * H + h) * K * V4, wb = (slot * H + h) * K * V4;
    for (uint c = 0; c < 4; ++c) {
      const uint k = 4 * kq + c;
      float a = 0.0;
      for (uint vq = 0; vq < V4; ++vq)
        a += dot(dso4[sb + k * V4 + vq], wsS4[wb + k * V4 + vq]);
      acc[c] = a;
    }
  }
  for (uint t = T; t-- > 0;) {
    const uint r = ((t0 + t) * H + h) * K4 + kq;
    acc += QKV_LD4(q4, r) * dq4[r] - QKV_LD4(k4, r) * dk4[r];
    dg4[r] = acc;
  }
}
