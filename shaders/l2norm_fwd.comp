// l2norm_fwd.comp — out = x / sqrt(sum(x^2) + eps) per row of C; one row per
// invocation (rows are short: a head's K).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) writeonly buffer Out { float outp[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform PC { dtr_pc_l2norm p; };

void main() {
  uint r = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (r >= p.N) return;
  uint base = r * p.C;
  float ss = 0.0;
  for (uint c = 0; c < p.C; c++) ss += x[base + c] * x[base + c];
  float rs = inversesqrt(ss + p.eps);
  for (uint c = 0; c < p.C; c++) outp[base + c] = x[base + c] * rs;
}
