// gdn_chunk_bwd_dv.comp — Gated DeltaNet backward, pass 1 of 2: the state gradient
// walked backwards over chunks, and dv. One workgroup per (sequence, head, block
// of WG value columns); each invocation owns column v of dS (K floats), which,
// like S in the forward, never mixes with other columns. Per chunk (A, P of
// gdn_common.glsl rebuilt, dS = the gradient w.r.t. the state leaving the chunk):
//   dVn = P^T dO + (K e^{gam_C - gam}) dS     (Vn feeds O through P and S_{n+1})
//   dR  = (I + A)^{-T} dVn                    back substitution; Vn = (I+A)^{-1} beta R
//   dv  = beta dR                             R = V - e^gam K S_n
//   dS <- e^{gam_C} dS + scale (Q e^gam)^T dO - (K e^gam)^T (beta dR)
// dS_{n+1} checkpoints and dR go to the workspace for pass 2 (gdn_chunk_bwd_dqk),
// which needs whole rows across all columns.
// Variant h16: q and k are read as packed fp16 (qkv_load.glsl).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"
#include "qkv_load.glsl"
//! variant h16 -DDTR_QKV_F16=1

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint KD = 64;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) writeonly buffer DV { float dv[]; };
layout(std430, binding = 1) writeonly buffer WS { float ws[]; };
layout(std430, binding = 2) writeonly buffer DSI { float dstate_in[]; };
layout(std430, binding = 3) readonly buffer DO { float dout[]; };
layout(std430, binding = 4) readonly buffer DSO { float dstate_out[]; };
layout(std430, binding = 5) readonly buffer Q { QKV_FLOAT q[]; };
layout(std430, binding = 6) readonly buffer Kb { QKV_FLOAT k[]; };
layout(std430, binding = 7) readonly buffer G { float g[]; };
layout(std430, binding = 8) readonly buffer Be { float beta_[]; };
layout(std430, binding = 9) readonly buffer Off { int offsets[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_chunk p; };

#include "gdn_common.glsl"


void main() {
  uint b = gl_WorkGroupID.z, h = gl_WorkGroupID.y, lid = gl_LocalInvocationID.x;
  uint c = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x;
  bool own = c < p.V;
  uint bos, eos, slot0;
  gdn_seq(b, bos, eos, slot0);
  uint nch = (eos - bos + C - 1) / C;
  uint sbase = (b * p.H + h) * p.K * p.V + c;

  float dS[KD];
  [[unroll]] for (uint x = 0; x < KD; x++)
    dS[x] = (own && p.has_in != 0u) ? dstate_out[sbase + x * p.V] : 0.0;

  for (uint m = 0; m < nch; m++) {
    uint n = nch - 1u - m;
    uint t0 = bos + n * C, cn = min(C, eos - t0);
    barrier();
    gdn_load_gates(t0, cn, h);
    gdn_build_chunk(t0, cn, h);
    if (own) {
      uint cp = p.ws_ds + ((slot0 + n) * p.H + h) * p.K * p.V + c;
      [[unroll]] for (uint x = 0; x < KD; x++) ws[cp + x * p.V] = dS[x];
      float gC = gam[cn - 1];
      for (uint ii = 0; ii < cn; ii++) {
        uint i = cn - 1u - ii;
        uint ri = ((t0 + i) * p.H + h) * p.K;
        float a = 0.0;
        [[unroll]] for (uint x = 0; x < KD; x++) a += QKV_LD(k, ri + x) * dS[x];
        float d = exp(gC - gam[i]) * a;
        [[unroll]] for (uint j = 0; j < C; j++)
          if (j >= i && j < cn) d += M[j * C + i] * dout[((t0 + j) * p.H + h) * p.V + c];
        [[unroll]] for (uint j = 0; j < C; j++)
          if (j > i && j < cn) d -= M[i * C + j] * VN[j * WG + lid];
        VN[i * WG + lid] = d;
        uint tv = ((t0 + i) * p.H + h) * p.V + c;
        dv[tv] = bet[i] * d;
        ws[p.ws_dr + tv] = d;
      }
      float dC = exp(gC);
      [[unroll]] for (uint x = 0; x < KD; x++) dS[x] *= dC;
      for (uint i = 0; i < cn; i++) {
        uint ri = ((t0 + i) * p.H + h) * p.K;
        float e = exp(gam[i]);
        float wq = p.scale * e * dout[((t0 + i) * p.H + h) * p.V + c];
        float wk = e * bet[i] * VN[i * WG + lid];
        [[unroll]] for (uint x = 0; x < KD; x++) dS[x] += QKV_LD(q, ri + x) * wq - QKV_LD(k, ri + x) * wk;
      }
    }
  }
  if (own && p.has_out != 0u)
    [[unroll]] for (uint x = 0; x < KD; x++) dstate_in[sbase + x * p.V] = dS[x];
}
