// silu_bwd.comp — dx = dout * silu'(x), silu'(x) = s (1 + x (1 - s)), s = sigmoid(x).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer DX { float dx[]; };
layout(std430, binding = 1) readonly buffer DO { float dout[]; };
layout(std430, binding = 2) readonly buffer X { float x[]; };
layout(push_constant) uniform PC { dtr_pc_axpy p; };

void main() {
  uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (i >= p.n) return;
  float v = x[i];
  float s = 1.0 / (1.0 + exp(-v));
  dx[i] = dout[i] * s * (1.0 + v * (1.0 - s));
}
