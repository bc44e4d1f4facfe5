/* swiglu_fwd.comp — out = silu(gate) * up = gate * sigmoid(gate) * up, elementwise,
 * grid-strided. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_elementwise p; };
layout(std430, binding = 0) writeonly buffer Out { float out_[]; }; // (n)
layout(std430, binding = 1) readonly buffer Gate { float gate[]; }; // (n)
layout(std430, binding = 2) readonly buffer Up { float up[]; };     // (n)

void main() {
  for (uint e = gl_GlobalInvocationID.x; e < p.n; e += gl_NumWorkGroups.x * WG) {
    float g = gate[e];
    out_[e] = g / (1.0 + exp(-g)) * up[e];
  }
}
