// gdn_gate_fwd.comp — Gated DeltaNet gates over (N, H):
//   g = -exp(A_log[h]) softplus(a + dt_bias[h]);  beta = sigmoid(b)
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) writeonly buffer Gt { float g[]; };
layout(std430, binding = 1) writeonly buffer Be { float beta_[]; };
layout(std430, binding = 2) readonly buffer A { float a[]; };
layout(std430, binding = 3) readonly buffer Bb { float bb[]; };
layout(std430, binding = 4) readonly buffer AL { float A_log[]; };
layout(std430, binding = 5) readonly buffer DT { float dt_bias[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_gate p; };

#include "gdn_gate_common.glsl"

void main() {
  uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (i >= p.N * p.H) return;
  uint h = i % p.H;
  float x = a[i] + dt_bias[h];
  float sp = gdn_softplus(x);
  g[i] = -exp(A_log[h]) * sp;
  beta_[i] = 1.0 / (1.0 + exp(-bb[i]));
}
