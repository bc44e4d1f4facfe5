/* add.comp — out = a + b elementwise, grid-strided; out may alias a (or b). */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_elementwise p; };
layout(std430, binding = 0) writeonly buffer Out { float out_[]; }; // (n)
layout(std430, binding = 1) readonly buffer A { float a[]; };       // (n)
layout(std430, binding = 2) readonly buffer B { float b[]; };       // (n)

void main() {
  for (uint e = gl_GlobalInvocationID.x; e < p.n; e += gl_NumWorkGroups.x * WG)
    out_[e] = a[e] + b[e];
}
