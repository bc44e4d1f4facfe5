/* gla_chunk_bwd_dh.comp — GLA backward, the reverse pass over chunks: the loss
 * gradient dS_n w.r.t. the state entering chunk n. One workgroup per (head,
 * sequence); each invocation owns four columns of dS in registers. From
 *   S_{n+1} = diag(e^{b_L}) S_n + ...,   o_t = s (q_t e^{b_t})^T S_n + ...  (t in n)
 * follows  dS_n = diag(e^{b_L}) dS_{n+1} + s sum_t (q_t e^{b_t}) do_t^T,
 * starting from dS_N = dstate_out (or 0). Every dS_n is written to its workspace
 * slot (as the states variant of gla_chunk_fwd lays them out); dS_0 is dstate_in.
 * b (the in-chunk cumulative log-decay) comes from that states pass. No barriers
 * (each invocation forms q_t e^{b_t} itself): lavapipe runs barriers as
 * coroutines, and a frame holding the register-resident dS compiles very slowly.
 * Variant h16: q are read as packed fp16 (qkv_load.glsl). */
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"
#include "qkv_load.glsl"
//! variant h16 -DDTR_QKV_F16=1

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint NT = 16; /* = V / 4 */
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint K = 64;
layout(constant_id = 3) const uint V = 64;
const uint K4 = K / 4;

layout(push_constant) uniform PC { dtr_pc_gla_chunk p; };

layout(std430, binding = 0) buffer WDbuf { vec4 wsD4[]; };
layout(std430, binding = 1) buffer DSIbuf { vec4 dsi4[]; };
layout(std430, binding = 2) readonly buffer DSObuf { vec4 dso4[]; };
layout(std430, binding = 3) readonly buffer Qbuf { QKV_VEC4 q4[]; };
layout(std430, binding = 4) readonly buffer DObuf { vec4 do4[]; };
layout(std430, binding = 5) readonly buffer WBbuf { vec4 wsB4[]; };
layout(std430, binding = 6) readonly buffer Offbuf { int offs[]; };

void main() {
  const uint h = gl_WorkGroupID.x, b = gl_WorkGroupID.y, i = gl_LocalInvocationID.x;
  const uint H = p.H, V4 = V / 4, vq = i;
  const uint t0 = uint(offs[b]), T = uint(offs[b + 1]) - t0;
  const uint nchunks = (T + C - 1) / C, slot0 = t0 / C + 2u * b;
  const uint sbase = (b * H + h) * K * V4 + vq;

  vec4 D[K];
  for (uint k = 0; k < 4u * p.nk4; ++k) D[k] = vec4(0.0);
  const uint nb = min(p.n_begin, nchunks), ne = min(p.n_end, nchunks);
  if ((p.flags & DTR_GLA_CARRY) != 0u) {
    for (uint k = 0; k < 4u * p.nk4; ++k)
      D[k] = wsD4[((slot0 + ne) * H + h) * K * V4 + k * V4 + vq];
  } else {
    if ((p.flags & DTR_GLA_DSTATE_OUT) != 0u)
      for (uint k = 0; k < 4u * p.nk4; ++k) D[k] = dso4[sbase + k * V4];
    for (uint k = 0; k < 4u * p.nk4; ++k)
      wsD4[((slot0 + nchunks) * H + h) * K * V4 + k * V4 + vq] = D[k];
  }
  for (uint n = ne; n-- > nb;) {
    const uint c0 = n * C, Tc = min(C, T - c0);
    const uint lbase = ((t0 + c0 + Tc - 1) * H + h) * K4;
    for (uint kq = 0; kq < p.nk4; ++kq) {
      const vec4 d = exp(wsB4[lbase + kq]);
      D[4 * kq] *= d.x;
      D[4 * kq + 1] *= d.y;
      D[4 * kq + 2] *= d.z;
      D[4 * kq + 3] *= d.w;
    }
    for (uint t = 0; t < Tc; ++t) {
      const vec4 dot_ = do4[((t0 + c0 + t) * H + h) * V4 + vq];
      for (uint kq = 0; kq < p.nk4; ++kq) {
        const uint gi = ((t0 + c0 + t) * H + h) * K4 + kq;
        const vec4 qe = p.scale * QKV_LD4(q4, gi) * exp(wsB4[gi]);
        D[4 * kq] += qe.x * dot_;
        D[4 * kq + 1] += qe.y * dot_;
        D[4 * kq + 2] += qe.z * dot_;
        D[4 * kq + 3] += qe.w * dot_;
      }
    }
    for (uint k = 0; k < 4u * p.nk4; ++k)
      wsD4[((slot0 + n) * H + h) * K * V4 + k * V4 + vq] = D[k];
  }
  if ((p.flags & DTR_GLA_DSTATE_IN) != 0u && p.n_begin == 0u)
    for (uint k = 0; k < 4u * p.nk4; ++k) dsi4[sbase + k * V4] = D[k];
}
