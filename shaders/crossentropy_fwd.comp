/* crossentropy_fwd.comp — per row of V logits: lse = log sum exp(row) and
 * loss = lse - row[target] (0 for target < 0, NaN for target >= V so that a bad
 * target cannot pass silently). One workgroup per row (rows strided by the group
 * count), so rows of any V (a 152k vocabulary) work: each invocation keeps a
 * running (max, sum exp(x - max)) over its strided elements, then the pairs merge
 * through a fixed shared-memory tree (deterministic). */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_crossentropy p; };
layout(std430, binding = 0) writeonly buffer Losses { float losses[]; }; // (N)
layout(std430, binding = 1) writeonly buffer Lse { float lse[]; };       // (N)
layout(std430, binding = 2) readonly buffer Logits { float logits[]; };  // (N, V)
layout(std430, binding = 3) readonly buffer Targets { int targets[]; };  // (N)

shared float s_max[WG];
shared float s_sum[WG];

void main() {
  const float LOWEST = -3.402823466e38;
  uint t = gl_LocalInvocationID.x;
  for (uint row = gl_WorkGroupID.x; row < p.N; row += gl_NumWorkGroups.x) {
    uint base = row * p.V;
    float m = LOWEST, s = 0.0;
    for (uint c = t; c < p.V; c += WG) {
      float x = logits[base + c];
      if (x > m) {
        s = s * exp(m - x) + 1.0;
        m = x;
      } else {
        s += exp(x - m);
      }
    }
    s_max[t] = m;
    s_sum[t] = s;
    barrier();
    for (uint h = WG / 2u; h > 0u; h >>= 1u) {
      if (t < h) {
        float m1 = s_max[t], m2 = s_max[t + h];
        float mm = max(m1, m2);
        s_sum[t] = s_sum[t] * exp(m1 - mm) + s_sum[t + h] * exp(m2 - mm);
        s_max[t] = mm;
      }
      barrier();
    }
    if (t == 0u) {
      float l = s_max[0] + log(s_sum[0]);
      lse[row] = l;
      int tg = targets[row];
      float loss = 0.0;
      if (tg >= 0)
        loss = uint(tg) < p.V ? l - logits[base + uint(tg)] : uintBitsToFloat(0x7fc00000u);
      losses[row] = loss;
    }
    barrier(); /* s_max/s_sum are reused by the next row */
  }
}
