// silu_fwd.comp — out = x * sigmoid(x) over n elements (JetBlock's q/k/v).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer O { float o[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform PC { dtr_pc_axpy p; };

void main() {
  uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (i >= p.n) return;
  float v = x[i];
  o[i] = v / (1.0 + exp(-v));
}
