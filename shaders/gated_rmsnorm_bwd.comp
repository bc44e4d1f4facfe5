/* gated_rmsnorm_bwd.comp — dinp and dgate of the gated RMSNorm (written); dw is
 * gated_rmsnorm_bwd_dw. Forward: out_j = o_j r w_j silu(g_j), r = (sum_k o_k^2 / C
 * + eps)^(-1/2). Then
 *   dgate_j = dout_j o_j r w_j silu'(g_j),  silu'(g) = sg (1 + g (1 - sg));
 * and with dn_j = dout_j w_j silu(g_j), the gradient of the normalised o_j r,
 * the RMSNorm backward (dr/do_k = -r^3 o_k / C) gives
 *   dinp_k = r dn_k - (r^3 / C) o_k sum_j dn_j o_j.
 * One invocation per row: a pass for the dot product, a pass for the outputs
 * (short rows are kept in registers between the two). */
//! variant vec4 -DVEC4=1
#version 450
#extension GL_GOOGLE_include_directive : require
#ifndef VEC4
#define VEC4 0
#endif
#include "gated_rmsnorm_common.glsl"
layout(std430, binding = 0) writeonly buffer Dinp { VT dinp[]; };   // (N, C)
layout(std430, binding = 1) writeonly buffer Dgate { VT dgate[]; }; // (N, C)
layout(std430, binding = 2) readonly buffer Dout { VT dout[]; };    // (N, C)
layout(std430, binding = 3) readonly buffer O { VT o[]; };          // (N, C)
layout(std430, binding = 4) readonly buffer G { VT gate[]; };       // (N, C)
layout(std430, binding = 5) readonly buffer W { VT w[]; };          // (C)
layout(std430, binding = 6) readonly buffer Rstd { float rstd[]; }; // (N)

/* Rows of up to RC VTs (C <= 64 with VEC4) stay in registers between the two
 * passes, so each input is loaded once; longer rows are read twice. */
#define RC 16u

void main() {
  uint row = row_index();
  if (row >= p.N) return;
  uint base = row * NV;
  float r = rstd[row];
  if (NV <= RC) {
    VT dn[RC], xo[RC], ds[RC]; /* dout w silu(g), o, dout w silu'(g) */
    float dt = 0.0;
    for (uint i = 0u; i < RC; ++i)
      if (i < NV) {
        VT g = gate[base + i], d = dout[base + i] * w[i], x = o[base + i];
        VT sg = 1.0 / (1.0 + exp(-g));
        dn[i] = d * g * sg;
        xo[i] = x;
        ds[i] = d * sg * (1.0 + g * (1.0 - sg));
        dt += dot(dn[i], x);
      }
    float k = r * r * r * dt / float(p.C);
    for (uint i = 0u; i < RC; ++i)
      if (i < NV) {
        if (p.has_dinp != 0u) dinp[base + i] = r * dn[i] - k * xo[i];
        if (p.has_dgate != 0u) dgate[base + i] = ds[i] * xo[i] * r;
      }
    return;
  }
  float dt = 0.0;
  if (p.has_dinp != 0u)
    for (uint i = 0u; i < NV; ++i)
      dt += dot(dout[base + i] * w[i] * silu_(gate[base + i]), o[base + i]);
  float k = r * r * r * dt / float(p.C);
  for (uint i = 0u; i < NV; ++i) {
    VT g = gate[base + i], d = dout[base + i] * w[i], x = o[base + i];
    VT sg = 1.0 / (1.0 + exp(-g));
    if (p.has_dinp != 0u) dinp[base + i] = r * d * g * sg - k * x;
    if (p.has_dgate != 0u) dgate[base + i] = d * x * r * sg * (1.0 + g * (1.0 - sg));
  }
}
