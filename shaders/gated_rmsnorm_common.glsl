/* gated_rmsnorm_common.glsl — row access for gated_rmsnorm_{fwd,bwd}.comp:
 * one invocation owns one row of C and loops over it in registers (on lavapipe
 * this beats a workgroup reduction through shared memory; the sum is sequential,
 * hence deterministic). VEC4 (variant "vec4", C % 4 == 0) loads 4 floats at a time. */
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
layout(push_constant) uniform PC { dtr_pc_gated_rmsnorm p; };
layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;

#if VEC4
#define VT vec4
#define NV (p.C / 4u) /* vectors per row */
#else
#define VT float
#define NV p.C
#endif

VT silu_(VT g) { return g / (1.0 + exp(-g)); }

/* This invocation's row; a 2D grid covers N beyond 65535 workgroups. */
uint row_index() {
  return (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
         gl_LocalInvocationID.x;
}
