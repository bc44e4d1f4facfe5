/* gated_rmsnorm_bwd_dw.comp — dw_j += sum_n dout_nj o_nj rstd_n silu(gate_nj).
 * No atomics: a workgroup owns COLS column groups (one float, or 4 with VEC4);
 * its SLICES row slices each sum rows s, s+SLICES, ... in order, then slice 0
 * adds the partials in a fixed order, so the bits depend only on N and C. */
//! variant vec4 -DVEC4=1
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#ifndef VEC4
#define VEC4 0
#endif
#if VEC4
#define VT vec4
#define NV (p.C / 4u)
#define COLS 16u
#define SLICES 16u
layout(local_size_x = 16, local_size_y = 16) in;
#else
#define VT float
#define NV p.C
#define COLS 32u
#define SLICES 8u
layout(local_size_x = 32, local_size_y = 8) in;
#endif
layout(push_constant) uniform PC { dtr_pc_gated_rmsnorm p; };
layout(std430, binding = 0) buffer Dw { VT dw[]; };                 // (C), accumulated
layout(std430, binding = 1) readonly buffer Dout { VT dout[]; };    // (N, C)
layout(std430, binding = 2) readonly buffer O { VT o[]; };          // (N, C)
layout(std430, binding = 3) readonly buffer G { VT gate[]; };       // (N, C)
layout(std430, binding = 4) readonly buffer Rstd { float rstd[]; }; // (N)

shared VT part[SLICES][COLS];

void main() {
  uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
  uint c = gl_WorkGroupID.x * COLS + lx;
  VT acc = VT(0.0);
  if (c < NV)
    for (uint n = ly; n < p.N; n += SLICES) {
      uint i = n * NV + c;
      VT g = gate[i];
      acc += dout[i] * o[i] * rstd[n] * (g / (1.0 + exp(-g)));
    }
  part[ly][lx] = acc;
  barrier();
  if (ly == 0u && c < NV) {
    VT s = part[0][lx];
    for (uint k = 1u; k < SLICES; ++k) s += part[k][lx];
    dw[c] += s;
  }
}
