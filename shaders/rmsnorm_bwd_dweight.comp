/* rmsnorm_bwd_dweight.comp — dweight_j += sum_i dy_ij x_ij r_i (y = w x r).
 * No atomics: a workgroup owns 32 columns; its 8 row slices each sum rows
 * s, s+8, ... in order, then slice 0 adds the 8 partials in a fixed order. The
 * summation order depends only on N, so the result is bitwise reproducible. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define COLS 32u
#define SLICES 8u
layout(local_size_x = 32, local_size_y = 8) in;
layout(push_constant) uniform PC { dtr_pc_rmsnorm p; };
layout(std430, binding = 0) buffer Dw { float dweight[]; };         // (C), accumulated
layout(std430, binding = 1) readonly buffer Dout { float dout[]; }; // (N, C)
layout(std430, binding = 2) readonly buffer Inp { float inp[]; };   // (N, C)
layout(std430, binding = 3) readonly buffer Rstd { float rstd[]; }; // (N)

shared float part[SLICES][COLS];

void main() {
  uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
  uint c = gl_WorkGroupID.x * COLS + lx;
  float acc = 0.0;
  if (c < p.C)
    for (uint i = ly; i < p.N; i += SLICES) acc += dout[i * p.C + c] * inp[i * p.C + c] * rstd[i];
  part[ly][lx] = acc;
  barrier();
  if (ly == 0u && c < p.C) {
    float s = part[0][lx];
    for (uint k = 1u; k < SLICES; ++k) s += part[k][lx];
    dweight[c] += s;
  }
}
