// axpy.comp — y = a * x + y over n elements (gradient accumulation, SGD-like
// updates, and the runtime's own barrier and specialization tests).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(push_constant) uniform PC { dtr_pc_axpy p; };

void main() {
  // A 2D grid covers n beyond 65535 workgroups in x.
  uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (i < p.n) y[i] = p.a * x[i] + y[i];
}
