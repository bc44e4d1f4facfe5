// pack_f16.comp — fp32 to packed fp16: out word i = packHalf2x16(x[2i], x[2i+1])
// for i < n/2 (n even). With the unpack variant, the inverse: x[2i], x[2i+1] =
// unpackHalf2x16(word i). A decode state kept in fp16 (state_store.glsl) is
// written by a prefill in fp32 and packed by this kernel.
//! variant unpack -DUNPACK=1
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;
#ifdef UNPACK
layout(std430, binding = 0) writeonly buffer O { vec2 o[]; };
layout(std430, binding = 1) readonly buffer X { uint x[]; };
#else
layout(std430, binding = 0) writeonly buffer O { uint o[]; };
layout(std430, binding = 1) readonly buffer X { vec2 x[]; };
#endif
layout(push_constant) uniform PC { dtr_pc_axpy p; };

void main() {
  uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (i >= p.n) return;
#ifdef UNPACK
  o[i] = unpackHalf2x16(x[i]);
#else
  o[i] = packHalf2x16(x[i]);
#endif
}
