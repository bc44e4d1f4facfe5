/* gla_chunk_bwd.comp — GLA backward inside one chunk: dq, dk, dv of its tokens
 * from the chunk's entering state S_n and the gradient dS_{n+1} of its leaving
 * state (both from the workspace). One workgroup per (chunk, head), one
 * invocation per token. With A[t][j] = sum_k q_t k_j e^{b_t - b_j} and
 * dA[t][j] = do_t . v_j (j <= t), differentiating
 *   o_t     = s (q_t e^{b_t})^T S_n + s sum_{j<=t} A[t][j] v_j
 *   S_{n+1} = diag(e^{b_L}) S_n + sum_j (k_j e^{b_L - b_j}) v_j^T
 * gives
 *   dq_t = s e^{b_t} (S_n do_t) + s sum_{j<=t} dA[t][j] (k_j e^{b_t - b_j})
 *   dk_j = s sum_{t>=j} dA[t][j] (q_t e^{b_t - b_j}) + e^{b_L - b_j} (dS_{n+1} v_j)
 *   dv_j = s sum_{t>=j} A[t][j] do_t + dS_{n+1}^T (k_j e^{b_L - b_j})
 * Every e^{b_t - b_j} has t >= j, so it is <= 1 and computed elementwise (no
 * split factors, nothing can overflow). The gate gradient needs the whole
 * sequence and is gla_chunk_bwd_dgk's job.
 * Variant h16: q, k and v are read as packed fp16 (qkv_load.glsl). */
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"
#include "qkv_load.glsl"
//! variant h16 -DDTR_QKV_F16=1

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint C = 64; /* = invocations */
layout(constant_id = 1) const uint K = 64;
layout(constant_id = 2) const uint V = 64;
const uint K4 = K / 4, V4 = V / 4;

layout(push_constant) uniform PC { dtr_pc_gla_chunk p; };

layout(std430, binding = 0) writeonly buffer DQbuf { vec4 dq4[]; };
layout(std430, binding = 1) writeonly buffer DKbuf { vec4 dk4[]; };
layout(std430, binding = 2) writeonly buffer DVbuf { vec4 dv4[]; };
layout(std430, binding = 3) readonly buffer Qbuf { QKV_VEC4 q4[]; };
layout(std430, binding = 4) readonly buffer Kbuf { QKV_VEC4 k4[]; };
layout(std430, binding = 5) readonly buffer Vbuf { QKV_VEC4 v4[]; };
layout(std430, binding = 6) readonly buffer DObuf { vec4 do4[]; };
layout(std430, binding = 7) readonly buffer WBbuf { vec4 wsB4[]; };
layout(std430, binding = 8) readonly buffer WSbuf { vec4 wsS4[]; };
layout(std430, binding = 9) readonly buffer WDbuf { vec4 wsD4[]; };
layout(std430, binding = 10) readonly buffer Offbuf { int offs[]; };

void main() {
  const uint x = gl_WorkGroupID.x, h = gl_WorkGroupID.y, tt = gl_LocalInvocationID.x;
  const uint H = p.H;
  /* which sequence and chunk: the largest b with floor(offs[b]/C) + b <= x */
  uint lo = 0, hi = p.B - 1;
  while (lo < hi) {
    const uint mid = (lo + hi + 1) / 2;
    if (uint(offs[mid]) / C + mid <= x) lo = mid;
    else hi = mid - 1;
  }
  const uint b = lo, t0 = uint(offs[b]), T = uint(offs[b + 1]) - t0;
  const uint n = x - (t0 / C + b);
  if (n * C >= T) return; /* a slot past this sequence's chunks */
  const uint c0 = n * C, Tc = min(C, T - c0);
  if (tt >= Tc) return;
  const uint slot = t0 / C + 2u * b + n;
  const uint me = (t0 + c0 + tt) * H + h; /* my token's row */

  vec4 bt[K4], kt[K4], dq[K4], dk[K4];
  vec4 vt[V4], dot_[V4], dv[V4];
  for (uint kq = 0; kq < p.nk4; ++kq) {
    bt[kq] = wsB4[me * K4 + kq];
    kt[kq] = QKV_LD4(k4, me * K4 + kq);
    dq[kq] = vec4(0.0);
    dk[kq] = vec4(0.0);
  }
  for (uint vq = 0; vq < p.nv4; ++vq) {
    vt[vq] = QKV_LD4(v4, me * V4 + vq);
    dot_[vq] = do4[me * V4 + vq];
    dv[vq] = vec4(0.0);
  }

  /* dq, intra-chunk: sum_{j<=t} dA[t][j] k_j e^{b_t - b_j} */
  for (uint j = 0; j <= tt; ++j) {
    const uint rj = (t0 + c0 + j) * H + h;
    float dA = 0.0;
    for (uint vq = 0; vq < p.nv4; ++vq) dA += dot(dot_[vq], QKV_LD4(v4, rj * V4 + vq));
    for (uint kq = 0; kq < p.nk4; ++kq)
      dq[kq] += dA * QKV_LD4(k4, rj * K4 + kq) * exp(bt[kq] - wsB4[rj * K4 + kq]);
  }
  /* dk and dv, intra-chunk: over t >= j (I am j) */
  for (uint u = tt; u < Tc; ++u) {
    const uint ru = (t0 + c0 + u) * H + h;
    float dA = 0.0, A = 0.0;
    for (uint vq = 0; vq < p.nv4; ++vq) dA += dot(do4[ru * V4 + vq], vt[vq]);
    for (uint kq = 0; kq < p.nk4; ++kq) {
      const vec4 qe = QKV_LD4(q4, ru * K4 + kq) * exp(wsB4[ru * K4 + kq] - bt[kq]);
      dk[kq] += dA * qe;
      A += dot(qe, kt[kq]);
    }
    for (uint vq = 0; vq < p.nv4; ++vq) dv[vq] += A * do4[ru * V4 + vq];
  }

  /* inter-chunk terms through S_n and dS_{n+1} */
  const uint sb = (slot * H + h) * K * V4, db = ((slot + 1) * H + h) * K * V4;
  const uint lrow = ((t0 + c0 + Tc - 1) * H + h) * K4;
  const float s = p.scale;
  for (uint vq = 0; vq < p.nv4; ++vq) dv[vq] *= s;
  for (uint kq = 0; kq < p.nk4; ++kq) {
    const vec4 eb = exp(bt[kq]);
    const vec4 el = exp(wsB4[lrow + kq] - bt[kq]);
    const vec4 ke = kt[kq] * el;
    vec4 sdo = vec4(0.0), dsv = vec4(0.0);
    for (uint c = 0; c < 4; ++c) {
      const uint k = 4 * kq + c;
      float a = 0.0, d = 0.0;
      for (uint vq = 0; vq < p.nv4; ++vq) {
        const vec4 Sr = wsS4[sb + k * V4 + vq], Dr = wsD4[db + k * V4 + vq];
        a += dot(Sr, dot_[vq]);
        d += dot(Dr, vt[vq]);
        dv[vq] += ke[c] * Dr;
      }
      sdo[c] = a;
      dsv[c] = d;
    }
    dq4[me * K4 + kq] = s * (dq[kq] + eb * sdo);
    dk4[me * K4 + kq] = s * dk[kq] + el * dsv;
  }
  for (uint vq = 0; vq < p.nv4; ++vq) dv4[me * V4 + vq] = dv[vq];
}
