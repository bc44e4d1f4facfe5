// l2norm_bwd.comp — gradient of l2norm_fwd. With r = (sum x^2 + eps)^{-1/2} and
// y = x r, dr/dx = -r^3 x, so dx = r dout - r^3 x (x . dout) = r (dout - y (y . dout)).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DO { float dout[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(push_constant) uniform PC { dtr_pc_l2norm p; };

void main() {
  uint r = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (r >= p.N) return;
  uint base = r * p.C;
  float ss = 0.0, xd = 0.0;
  for (uint c = 0; c < p.C; c++) {
    float xv = x[base + c];
    ss += xv * xv;
    xd += xv * dout[base + c];
  }
  float rs = inversesqrt(ss + p.eps);
  float yd = xd * rs; // y . dout
  for (uint c = 0; c < p.C; c++) dx[base + c] = rs * (dout[base + c] - x[base + c] * rs * yd);
}
