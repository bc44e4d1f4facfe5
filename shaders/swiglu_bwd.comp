/* swiglu_bwd.comp — gradients of out = g s(g) u with s the sigmoid:
 * s' = s (1 - s), so d(g s)/dg = s + g s (1 - s) = s (1 + g (1 - s)), hence
 *   dgate = dout u s (1 + g (1 - s)),   dup = dout g s   (both written). */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_elementwise p; };
layout(std430, binding = 0) writeonly buffer Dgate { float dgate[]; }; // (n)
layout(std430, binding = 1) writeonly buffer Dup { float dup[]; };     // (n)
layout(std430, binding = 2) readonly buffer Dout { float dout[]; };    // (n)
layout(std430, binding = 3) readonly buffer Gate { float gate[]; };    // (n)
layout(std430, binding = 4) readonly buffer Up { float up[]; };        // (n)

void main() {
  for (uint e = gl_GlobalInvocationID.x; e < p.n; e += gl_NumWorkGroups.x * WG) {
    float g = gate[e], u = up[e], d = dout[e];
    float s = 1.0 / (1.0 + exp(-g));
    dgate[e] = d * u * s * (1.0 + g * (1.0 - s));
    dup[e] = d * g * s;
  }
}
