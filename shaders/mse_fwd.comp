/* mse_fwd.comp — first pass of the MSE loss: workgroup g writes
 * partial[g] = sum of (y - t)^2 over elements g*WG + lid + k*(groups*WG). The
 * host then runs `sum` over the partials with scale 1/n. Both passes have a fixed
 * order, so the loss is bitwise reproducible. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_mse p; };
layout(std430, binding = 0) writeonly buffer Partial { float partial[]; }; // (groups)
layout(std430, binding = 1) readonly buffer Y { float y[]; };              // (n)
layout(std430, binding = 2) readonly buffer T { float tg[]; };             // (n)
#include "ops_common.glsl"

void main() {
  float acc = 0.0;
  for (uint e = gl_GlobalInvocationID.x; e < p.n; e += gl_NumWorkGroups.x * WG) {
    float d = y[e] - tg[e];
    acc += d * d;
  }
  acc = ops_wg_sum(acc);
  if (gl_LocalInvocationID.x == 0u) partial[gl_WorkGroupID.x] = acc;
}
