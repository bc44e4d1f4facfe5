/* sum.comp — out[0] = (accumulate ? out[0] : 0) + scale * sum f(x_i), f(x) = x or
 * x^2. The op has no scratch buffer, so one workgroup does it all: invocation t
 * sums x[t], x[t + WG], ... with Kahan compensation (`precise` keeps the compiler
 * from simplifying the compensation away), then the fixed tree of ops_wg_sum.
 * Dispatched with exactly one workgroup; deterministic by construction. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_sum p; };
layout(std430, binding = 0) buffer Out { float out_[]; };      // (1)
layout(std430, binding = 1) readonly buffer X { float x[]; };  // (n)
#include "ops_common.glsl"

void main() {
  uint t = gl_LocalInvocationID.x;
  precise float acc = 0.0, comp = 0.0;
  for (uint e = t; e < p.n; e += WG) {
    float v = x[e];
    precise float yv = (p.squares != 0u ? v * v : v) - comp;
    precise float tv = acc + yv;
    comp = (tv - acc) - yv;
    acc = tv;
  }
  float total = ops_wg_sum(acc) * p.scale;
  if (t == 0u) out_[0] = p.accumulate != 0u ? out_[0] + total : total;
}
