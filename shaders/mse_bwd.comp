/* mse_bwd.comp — loss = sum (y - t)^2 / n, so dy = scale * 2 (y - t) / n; the host
 * folds 2 scale / n into p.scale. Written, elementwise. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_elementwise p; };
layout(std430, binding = 0) writeonly buffer Dy { float dy[]; }; // (n)
layout(std430, binding = 1) readonly buffer Y { float y[]; };    // (n)
layout(std430, binding = 2) readonly buffer T { float tg[]; };   // (n)

void main() {
  for (uint e = gl_GlobalInvocationID.x; e < p.n; e += gl_NumWorkGroups.x * WG)
    dy[e] = p.scale * (y[e] - tg[e]);
}
