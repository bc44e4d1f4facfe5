/* gla_chunk_bwd_tex.comp — GLA backward inside one chunk on CPU devices: the twin
 * of gla_chunk_bwd (same dq, dk, dv up to rounding; the derivation is there),
 * reading every input and the workspace (b, S_n, dS_{n+1}) as RGBA32F texel
 * buffers (see gla_chunk_fwd_tex.comp for why), with the K/4- and V/4-trip loops
 * of the token pairs unrolled so a token's rows stay in registers, and the pairs'
 * decay factors split through q e^{b}, k e^{-b} from gla_chunk_states_tex where
 * that cannot overflow (see below). One workgroup per (chunk, head), one
 * invocation per token.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint C = 64; /* = invocations */
layout(constant_id = 1) const uint K = 64;
layout(constant_id = 2) const uint V = 64;
const uint K4 = K / 4, V4 = V / 4;

layout(push_constant) uniform PC { dtr_pc_gla_chunk p; };

layout(std430, binding = 0) writeonly buffer DQbuf { vec4 dq4[]; };
layout(std430, binding = 1) writeonly buffer DKbuf { vec4 dk4[]; };
layout(std430, binding = 2) writeonly buffer DVbuf { vec4 dv4[]; };
layout(binding = 3) uniform samplerBuffer Qt;  /* (Ttot, H, K) */
layout(binding = 4) uniform samplerBuffer Kt;  /* (Ttot, H, K) */
layout(binding = 5) uniform samplerBuffer Vt;  /* (Ttot, H, V) */
layout(binding = 6) uniform samplerBuffer DOt; /* (Ttot, H, V) */
layout(binding = 7) uniform samplerBuffer Bt;  /* wsB (Ttot, H, K) */
layout(binding = 8) uniform samplerBuffer St;  /* wsS slots (., H, K, V) */
layout(binding = 9) uniform samplerBuffer Dt;  /* wsD slots (., H, K, V) */
layout(std430, binding = 10) readonly buffer Offbuf { int offs[]; };
layout(binding = 11) uniform samplerBuffer QEt; /* wsQ = q e^{b} (Ttot, H, K) */
layout(binding = 12) uniform samplerBuffer KEt; /* wsK = k e^{-b} (Ttot, H, K) */

/* my token's rows and gradients, at module scope (see gla_chunk_fwd_tex.comp) */
vec4 bt[K4], kt[K4], ke[K4], dq[K4], dk[K4];
vec4 vt[V4], dot_[V4], dv[V4], du[V4];

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

  [[unroll]] for (uint kq = 0; kq < K4; ++kq) {
    bt[kq] = texelFetch(Bt, int(me * K4 + kq));
    kt[kq] = texelFetch(Kt, int(me * K4 + kq));
    dq[kq] = vec4(0.0);
    dk[kq] = vec4(0.0);
  }
  [[unroll]] for (uint vq = 0; vq < V4; ++vq) {
    vt[vq] = texelFetch(Vt, int(me * V4 + vq));
    dot_[vq] = texelFetch(DOt, int(me * V4 + vq));
    dv[vq] = vec4(0.0);
  }

  /* The pairs' factors e^{b_t - b_j} (t >= j): split as e^{b_t} e^{-b_j} through
   * the states pass's q e^{b} and k e^{-b} (no exponential per pair) while
   * e^{-b_j} <= e^{-b_L} <= e^{60} in every k of this chunk (the same for all
   * invocations); elementwise otherwise, as gla_chunk_bwd does. */
  const uint lrow = ((t0 + c0 + Tc - 1) * H + h) * K4;
  vec4 bmin = vec4(0.0);
  [[unroll]] for (uint kq = 0; kq < K4; ++kq) bmin = min(bmin, texelFetch(Bt, int(lrow + kq)));
  if (all(greaterThanEqual(bmin, vec4(-60.0)))) {
    [[unroll]] for (uint kq = 0; kq < K4; ++kq) ke[kq] = texelFetch(KEt, int(me * K4 + kq));
    /* dq = e^{b_t} sum_{j<=t} dA[t][j] (k_j e^{-b_j}) */
    for (uint j = 0; j <= tt; ++j) {
      const uint rj = (t0 + c0 + j) * H + h;
      float dA = 0.0;
      [[unroll]] for (uint vq = 0; vq < V4; ++vq)
        dA += dot(dot_[vq], texelFetch(Vt, int(rj * V4 + vq)));
      [[unroll]] for (uint kq = 0; kq < K4; ++kq)
        dq[kq] += dA * texelFetch(KEt, int(rj * K4 + kq));
    }
    /* dk = e^{-b_j} sum_{u>=j} dA[u][j] (q_u e^{b_u}); A[u][j] = (q_u e^{b_u}) . (k_j e^{-b_j}) */
    for (uint u = tt; u < Tc; ++u) {
      const uint ru = (t0 + c0 + u) * H + h;
      float dA = 0.0, A = 0.0;
      [[unroll]] for (uint vq = 0; vq < V4; ++vq) {
        du[vq] = texelFetch(DOt, int(ru * V4 + vq));
        dA += dot(du[vq], vt[vq]);
      }
      [[unroll]] for (uint kq = 0; kq < K4; ++kq) {
        const vec4 qe = texelFetch(QEt, int(ru * K4 + kq));
        dk[kq] += dA * qe;
        A += dot(qe, ke[kq]);
      }
      [[unroll]] for (uint vq = 0; vq < V4; ++vq) dv[vq] += A * du[vq];
    }
    [[unroll]] for (uint kq = 0; kq < K4; ++kq) {
      dq[kq] *= exp(bt[kq]);
      dk[kq] *= exp(-bt[kq]);
    }
  } else {
    /* dq, intra-chunk: sum_{j<=t} dA[t][j] k_j e^{b_t - b_j} */
    for (uint j = 0; j <= tt; ++j) {
      const uint rj = (t0 + c0 + j) * H + h;
      float dA = 0.0;
      [[unroll]] for (uint vq = 0; vq < V4; ++vq)
        dA += dot(dot_[vq], texelFetch(Vt, int(rj * V4 + vq)));
      [[unroll]] for (uint kq = 0; kq < K4; ++kq) {
        const int ri = int(rj * K4 + kq);
        dq[kq] += dA * texelFetch(Kt, ri) * exp(bt[kq] - texelFetch(Bt, ri));
      }
    }
    /* dk and dv, intra-chunk: over t >= j (I am j) */
    for (uint u = tt; u < Tc; ++u) {
      const uint ru = (t0 + c0 + u) * H + h;
      float dA = 0.0, A = 0.0;
      [[unroll]] for (uint vq = 0; vq < V4; ++vq) {
        du[vq] = texelFetch(DOt, int(ru * V4 + vq));
        dA += dot(du[vq], vt[vq]);
      }
      [[unroll]] for (uint kq = 0; kq < K4; ++kq) {
        const int ri = int(ru * K4 + kq);
        const vec4 qe = texelFetch(Qt, ri) * exp(texelFetch(Bt, ri) - bt[kq]);
        dk[kq] += dA * qe;
        A += dot(qe, kt[kq]);
      }
      [[unroll]] for (uint vq = 0; vq < V4; ++vq) dv[vq] += A * du[vq];
    }
  }

  /* inter-chunk terms through S_n and dS_{n+1} */
  const uint sb = (slot * H + h) * K * V4, db = ((slot + 1) * H + h) * K * V4;
  const float s = p.scale;
  [[unroll]] for (uint vq = 0; vq < V4; ++vq) dv[vq] *= s;
  [[unroll]] for (uint kq = 0; kq < K4; ++kq) {
    const vec4 eb = exp(bt[kq]);
    const vec4 el = exp(texelFetch(Bt, int(lrow + kq)) - bt[kq]);
    const vec4 ke = kt[kq] * el;
    vec4 sdo = vec4(0.0), dsv = vec4(0.0);
    [[unroll]] for (uint c = 0; c < 4; ++c) {
      const uint k = 4 * kq + c;
      float a = 0.0, d = 0.0;
      [[unroll]] for (uint vq = 0; vq < V4; ++vq) {
        const vec4 Sr = texelFetch(St, int(sb + k * V4 + vq)),
                   Dr = texelFetch(Dt, int(db + k * V4 + vq));
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
  [[unroll]] for (uint vq = 0; vq < V4; ++vq) dv4[me * V4 + vq] = dv[vq];
}
