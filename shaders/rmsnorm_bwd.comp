/* rmsnorm_bwd.comp — dinp of RMSNorm (written). dweight is rmsnorm_bwd_dweight.
 * Forward: y_j = w_j x_j r with r = (sum_k x_k^2 / C + eps)^(-1/2), so
 * dr/dx_k = -r^3 x_k / C and
 *   dx_k = sum_j dy_j w_j (delta_jk r + x_j dr/dx_k)
 *        = r w_k dy_k - (r^3 / C) x_k sum_j dy_j w_j x_j.
 * One workgroup of 32 per row (few barriers: lavapipe pays dearly for them); the
 * dot product uses the deterministic tree sum. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 32u
layout(local_size_x = 32) in;
layout(push_constant) uniform PC { dtr_pc_rmsnorm p; };
layout(std430, binding = 0) writeonly buffer Dinp { float dinp[]; }; // (N, C)
layout(std430, binding = 1) readonly buffer Dout { float dout[]; };  // (N, C)
layout(std430, binding = 2) readonly buffer Inp { float inp[]; };    // (N, C)
layout(std430, binding = 3) readonly buffer Wt { float weight[]; };  // (C)
layout(std430, binding = 4) readonly buffer Rstd { float rstd[]; };  // (N)
#include "ops_common.glsl"

void main() {
  uint t = gl_LocalInvocationID.x;
  for (uint row = gl_WorkGroupID.x; row < p.N; row += gl_NumWorkGroups.x) {
    uint base = row * p.C;
    float dot = 0.0;
    for (uint c = t; c < p.C; c += WG) dot += dout[base + c] * weight[c] * inp[base + c];
    dot = ops_wg_sum(dot);
    float r = rstd[row];
    float k = r * r * r * dot / float(p.C);
    for (uint c = t; c < p.C; c += WG)
      dinp[base + c] = r * weight[c] * dout[base + c] - k * inp[base + c];
  }
}
