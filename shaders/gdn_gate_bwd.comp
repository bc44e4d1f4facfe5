// gdn_gate_bwd.comp — gradients of gdn_gate_fwd. One workgroup per head h:
//   da = dg * dg/da = dg * (-exp(A_log) sigmoid(a + dt_bias))   (softplus' = sigmoid)
//   ddt_bias[h] += sum_n da;   dA_log[h] += sum_n dg * g          (dg/dA_log = g)
//   db = dbeta * beta (1 - beta)
// The sums run in a fixed order (strided partials, then a fixed shared-memory tree),
// so the result is deterministic.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) writeonly buffer DA { float da[]; };
layout(std430, binding = 1) writeonly buffer DB { float db[]; };
layout(std430, binding = 2) buffer DAL { float dA_log[]; };
layout(std430, binding = 3) buffer DDT { float ddt_bias[]; };
layout(std430, binding = 4) readonly buffer DG { float dg[]; };
layout(std430, binding = 5) readonly buffer DBe { float dbeta[]; };
layout(std430, binding = 6) readonly buffer A { float a[]; };
layout(std430, binding = 7) readonly buffer Bb { float bb[]; };
layout(std430, binding = 8) readonly buffer AL { float A_log[]; };
layout(std430, binding = 9) readonly buffer DT { float dt_bias[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_gate p; };

shared float s_al[WG];
shared float s_dt[WG];

#include "gdn_gate_common.glsl"

void main() {
  uint h = gl_WorkGroupID.x, lid = gl_LocalInvocationID.x;
  float ea = exp(A_log[h]), bias = dt_bias[h];
  float sal = 0.0, sdt = 0.0;
  for (uint n = lid; n < p.N; n += WG) {
    uint i = n * p.H + h;
    float x = a[i] + bias;
    float sp = gdn_softplus(x);
    float sg = 1.0 / (1.0 + exp(-x));
    float d = dg[i];
    float dai = -d * ea * sg;
    da[i] = dai;
    sdt += dai;
    sal += d * (-ea * sp);
    float bt = 1.0 / (1.0 + exp(-bb[i]));
    db[i] = dbeta[i] * bt * (1.0 - bt);
  }
  s_al[lid] = sal;
  s_dt[lid] = sdt;
  barrier();
  for (uint w = WG / 2u; w > 0u; w >>= 1) {
    if (lid < w) {
      s_al[lid] += s_al[lid + w];
      s_dt[lid] += s_dt[lid + w];
    }
    barrier();
  }
  if (lid == 0u) {
    dA_log[h] += s_al[0];
    ddt_bias[h] += s_dt[0];
  }
}
