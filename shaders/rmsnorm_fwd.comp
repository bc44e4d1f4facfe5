/* rmsnorm_fwd.comp — out = inp * rstd * weight per row, rstd = 1/sqrt(mean(inp^2)
 * + eps). One workgroup of 32 per row (a warp's worth: few barriers, which lavapipe
 * pays dearly for); rows are strided by the group count, so N may exceed the
 * dispatch limit. The sum of squares goes through the fixed tree of ops_wg_sum, so
 * it is deterministic. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 32u
layout(local_size_x = 32) in;
layout(push_constant) uniform PC { dtr_pc_rmsnorm p; };
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };  // (N, C)
layout(std430, binding = 1) writeonly buffer Rstd { float rstd[]; }; // (N)
layout(std430, binding = 2) readonly buffer Inp { float inp[]; };    // (N, C)
layout(std430, binding = 3) readonly buffer Wt { float weight[]; };  // (C)
#include "ops_common.glsl"

void main() {
  uint t = gl_LocalInvocationID.x;
  for (uint row = gl_WorkGroupID.x; row < p.N; row += gl_NumWorkGroups.x) {
    uint base = row * p.C;
    float ss = 0.0;
    for (uint c = t; c < p.C; c += WG) {
      float x = inp[base + c];
      ss += x * x;
    }
    ss = ops_wg_sum(ss);
    float r = inversesqrt(ss / float(p.C) + p.eps);
    for (uint c = t; c < p.C; c += WG) out_[base + c] = inp[base + c] * r * weight[c];
    if (t == 0u) rstd[row] = r;
  }
}
