/* embedding_fwd.comp — out[t, :] = table[ids[t], :]; an id outside [0, V) gives a
 * zero row (ids live on the device, the host cannot check them). Grid-strided over
 * the N*C outputs. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_embedding p; };
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };  // (N, C)
layout(std430, binding = 1) readonly buffer Ids { int ids[]; };      // (N)
layout(std430, binding = 2) readonly buffer Table { float table[]; }; // (V, C)

void main() {
  uint total = p.N * p.C;
  for (uint e = gl_GlobalInvocationID.x; e < total; e += gl_NumWorkGroups.x * WG) {
    uint t = e / p.C, c = e - t * p.C;
    int id = ids[t];
    out_[e] = (id >= 0 && uint(id) < p.V) ? table[uint(id) * p.C + c] : 0.0;
  }
}
