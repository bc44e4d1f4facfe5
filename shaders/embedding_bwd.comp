/* embedding_bwd.comp — dtable[ids[t], :] += dout[t, :] for t = 0..N-1 in order.
 * Tokens sharing an id hit the same row, so instead of atomics one invocation owns
 * one column and walks the tokens in order: a fixed summation order, bitwise
 * reproducible. Ids outside [0, V) are skipped. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
layout(local_size_x = 64) in;
layout(push_constant) uniform PC { dtr_pc_embedding p; };
layout(std430, binding = 0) buffer Dtable { float dtable[]; };     // (V, C), accumulated
layout(std430, binding = 1) readonly buffer Dout { float dout[]; }; // (N, C)
layout(std430, binding = 2) readonly buffer Ids { int ids[]; };     // (N)

void main() {
  uint c = gl_GlobalInvocationID.x;
  if (c >= p.C) return;
  for (uint t = 0u; t < p.N; ++t) {
    int id = ids[t];
    if (id >= 0 && uint(id) < p.V) dtable[uint(id) * p.C + c] += dout[t * p.C + c];
  }
}
