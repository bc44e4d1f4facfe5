/* gated_rmsnorm_fwd.comp — out = o * rstd * w * silu(gate) per row of C, with
 * rstd = 1/sqrt(mean(o^2) + eps) kept for the backward (N rows; per head, w (C)
 * shared by the heads). One invocation per row. */
//! variant vec4 -DVEC4=1
#version 450
#extension GL_GOOGLE_include_directive : require
#ifndef VEC4
#define VEC4 0
#endif
#include "gated_rmsnorm_common.glsl"
layout(std430, binding = 0) writeonly buffer Out { VT out_[]; };  // (N, C)
layout(std430, binding = 1) writeonly buffer Rstd { float rstd[]; }; // (N)
layout(std430, binding = 2) readonly buffer O { VT o[]; };         // (N, C)
layout(std430, binding = 3) readonly buffer G { VT gate[]; };      // (N, C)
layout(std430, binding = 4) readonly buffer W { VT w[]; };         // (C)

void main() {
  uint row = row_index();
  if (row >= p.N) return;
  uint base = row * NV;
  float ss = 0.0;
  for (uint i = 0u; i < NV; ++i) {
    VT v = o[base + i];
    ss += dot(v, v);
  }
  float r = inversesqrt(ss / float(p.C) + p.eps);
  rstd[row] = r;
  for (uint i = 0u; i < NV; ++i) out_[base + i] = o[base + i] * r * w[i] * silu_(gate[base + i]);
}
