/* matmul_colsum.comp — the bias gradient of matmul: out[n] += column sum of x
 * over all rows of all batches. One invocation per column adds the rows in a
 * fixed order, so the result is deterministic (no atomics). */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(local_size_x_id = 0) in;
layout(push_constant) uniform PC { dtr_pc_matmul_colsum p; };
layout(std430, binding = 0) buffer Obuf { float outv[]; };
layout(std430, binding = 1) readonly buffer Xbuf { float x[]; };

void main() {
  const uint n = gl_GlobalInvocationID.x;
  if (n >= p.N) return;
  float s = 0.0;
  for (uint z = 0; z < p.batch; ++z) {
    uint i = p.x_off + z * p.stride + n;
    for (uint m = 0; m < p.M; ++m, i += p.N) s += x[i];
  }
  outv[p.out_off + n] += s;
}
