/* gla_decode.comp — one GLA token per sequence, the state updated in place:
 *   S = diag(e^{gk}) S + k v^T ;  o = S^T (s q)
 * One workgroup per (head, sequence); each invocation owns four columns of S and
 * streams its rows once (read, update, write, accumulate o). The s16 variant
 * keeps S as packed fp16 (state_store.glsl). */
//! variant s16 -DS16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint NT = 16; /* = V / 4 */
layout(constant_id = 1) const uint K = 64;
layout(constant_id = 2) const uint V = 64;

layout(push_constant) uniform PC { dtr_pc_gla_decode p; };

layout(std430, binding = 0) writeonly buffer Obuf { vec4 o4[]; };
#include "state_store.glsl"
layout(std430, binding = 2) readonly buffer Qbuf { vec4 q4[]; };
layout(std430, binding = 3) readonly buffer Kbuf { vec4 k4[]; };
layout(std430, binding = 4) readonly buffer Vbuf { vec4 v4[]; };
layout(std430, binding = 5) readonly buffer Gbuf { vec4 g4[]; };

void main() {
  const uint h = gl_WorkGroupID.x, b = gl_WorkGroupID.y, vq = gl_LocalInvocationID.x;
  const uint K4 = K / 4, V4 = V / 4, row = b * p.H + h;
  const vec4 vv = v4[row * V4 + vq];
  const uint sb = row * K * V4 + vq;
  vec4 o = vec4(0.0);
  for (uint kq = 0; kq < K4; ++kq) {
    const vec4 a = exp(g4[row * K4 + kq]), kk = k4[row * K4 + kq], qq = q4[row * K4 + kq];
    for (uint c = 0; c < 4; ++c) {
      const uint i = 4u * (sb + (4 * kq + c) * V4);
      const vec4 s = a[c] * state_ld4(i) + kk[c] * vv;
      state_st4(i, s);
      o += qq[c] * s;
    }
  }
  o4[row * V4 + vq] = p.scale * o;
}
