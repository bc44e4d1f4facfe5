/* crossentropy_bwd.comp — dlogits = scale * (softmax(row) - onehot(target)),
 * softmax = exp(x - lse) with lse from the forward; rows with target < 0 get zero
 * (ignored), a target >= V gets no one-hot. Written, not accumulated; dlogits may
 * alias logits (each element is read before it is written by the same
 * invocation). Groups: x strides a row's columns, y strides rows. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_crossentropy p; };
layout(std430, binding = 0) writeonly buffer Dlogits { float dlogits[]; }; // (N, V)
layout(std430, binding = 1) readonly buffer Logits { float logits[]; };    // (N, V)
layout(std430, binding = 2) readonly buffer Targets { int targets[]; };    // (N)
layout(std430, binding = 3) readonly buffer Lse { float lse[]; };          // (N)

void main() {
  for (uint row = gl_WorkGroupID.y; row < p.N; row += gl_NumWorkGroups.y) {
    uint base = row * p.V;
    int tg = targets[row];
    float l = lse[row];
    for (uint c = gl_GlobalInvocationID.x; c < p.V; c += gl_NumWorkGroups.x * WG) {
      float d = 0.0;
      if (tg >= 0) d = p.scale * (exp(logits[base + c] - l) - (uint(tg) == c ? 1.0 : 0.0));
      dlogits[base + c] = d;
    }
  }
}
