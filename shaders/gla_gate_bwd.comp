/* gla_gate_bwd.comp — backward of gk = logsigmoid(x) / normalizer:
 * d logsigmoid(x)/dx = 1 - sigmoid(x) = sigmoid(-x), so dx = dgk sigmoid(-x) / norm. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer DXbuf { float dx[]; };
layout(std430, binding = 1) readonly buffer DGbuf { float dgk[]; };
layout(std430, binding = 2) readonly buffer Xbuf { float x[]; };
layout(push_constant) uniform PC { dtr_pc_gla_gate p; };

void main() {
  uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (i >= p.n) return;
  dx[i] = dgk[i] / (1.0 + exp(x[i])) * p.inv_norm;
}
