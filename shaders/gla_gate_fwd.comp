/* gla_gate_fwd.comp — GLA's log-decay gate gk = logsigmoid(x) / normalizer,
 * logsigmoid(x) = min(x, 0) - log1p(e^{-|x|}) (finite for any x). GLSL has no
 * log1p; log(u) * y / (u - 1) with u = 1 + y is the classic accurate substitute. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Gbuf { float gk[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };
layout(push_constant) uniform PC { dtr_pc_gla_gate p; };

void main() {
  uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (i >= p.n) return;
  const float xi = x[i];
  /* precise: the compiler must not fold (1 + y) - 1 into y */
  const float y = exp(-abs(xi));
  precise float u = 1.0 + y;
  precise float um1 = u - 1.0;
  const float l1p = u == 1.0 ? y : log(u) * (y / um1);
  gk[i] = (min(xi, 0.0) - l1p) * p.inv_norm;
}
