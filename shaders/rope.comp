/* rope.comp — rotary position embedding, forward (sign +1) and backward (sign -1:
 * the transpose of a rotation is the rotation by the negative angle), for both
 * dtr_op_rope_fwd and dtr_op_rope_bwd. One invocation per rotated pair, grid-
 * strided. The angle is float(pos) * inv_freq rounded to fp32 as Hugging Face
 * computes it; ops_cossin then evaluates it accurately even for large angles.
 * out may alias x: each invocation reads its pair before writing it. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_rope p; };
layout(std430, binding = 0) writeonly buffer Out { float out_[]; };   // (N, H, D)
layout(std430, binding = 1) readonly buffer X { float x[]; };         // (N, H, D)
layout(std430, binding = 2) readonly buffer Pos { int pos[]; };       // (N)
layout(std430, binding = 3) readonly buffer Freq { float inv_freq[]; }; // (D/2)
#include "ops_common.glsl"

void main() {
  uint half_d = p.D / 2u;
  uint pairs_per_tok = p.H * half_d;
  uint total = p.N * pairs_per_tok;
  for (uint e = gl_GlobalInvocationID.x; e < total; e += gl_NumWorkGroups.x * WG) {
    uint n = e / pairs_per_tok;
    uint rem = e - n * pairs_per_tok;
    uint h = rem / half_d;
    uint i = rem - h * half_d;
    uint base = (n * p.H + h) * p.D;
    uint ia, ib; /* NEOX pairs (i, i + D/2); GPTJ pairs (2i, 2i + 1) */
    if (p.style == 0u) {
      ia = base + i;
      ib = ia + half_d;
    } else {
      ia = base + 2u * i;
      ib = ia + 1u;
    }
    /* `precise`: the rounded fp32 product is the angle (as Hugging Face has it);
     * without it the compiler may fuse it into the reduction's first step. */
    precise float ang = float(pos[n]) * inv_freq[i];
    vec2 cs = ops_cossin(ang);
    float sn = p.sign * cs.y;
    float a = x[ia], b = x[ib];
    out_[ia] = a * cs.x - b * sn;
    out_[ib] = a * sn + b * cs.x;
  }
}
