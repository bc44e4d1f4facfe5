/* gla_chunk_states.comp — the GLA backward's recompute pass: the state entering
 * every chunk (and each sequence's final state) into workspace slots (see
 * push_gla.h), and the in-chunk cumulative log-decays b to wsB (Ttot, H, K).
 * One workgroup per (head, sequence), four state columns per invocation. Per chunk
 *   S <- diag(e^{b_L}) S + sum_j (k_j e^{b_L - b_j}) v_j^T
 * with b_L - b_j summed backwards from the chunk's end (always <= 0: no overflow).
 * No barriers and no shared memory: lavapipe runs barriers as coroutines, and a
 * coroutine frame holding the register state compiles very slowly.
 * Variant h16: k and v are read as packed fp16 (qkv_load.glsl). */
#version 450
#extension GL_GOOGLE_include_directive : require
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

layout(std430, binding = 0) buffer WSbuf { vec4 wsS4[]; };
layout(std430, binding = 1) writeonly buffer WBbuf { vec4 wsB4[]; };
layout(std430, binding = 2) readonly buffer Kbuf { QKV_VEC4 k4[]; };
layout(std430, binding = 3) readonly buffer Vbuf { QKV_VEC4 v4[]; };
layout(std430, binding = 4) readonly buffer Gbuf { vec4 g4[]; };
layout(std430, binding = 5) readonly buffer SIbuf { vec4 si4[]; };
layout(std430, binding = 6) readonly buffer Offbuf { int offs[]; };

void main() {
  const uint h = gl_WorkGroupID.x, b = gl_WorkGroupID.y, i = gl_LocalInvocationID.x;
  const uint H = p.H, V4 = V / 4, vq = i;
  const uint t0 = uint(offs[b]), T = uint(offs[b + 1]) - t0;
  const uint nchunks = (T + C - 1) / C, slot0 = t0 / C + 2u * b;

  /* b, four k per invocation, a forward cumulative sum inside each chunk */
  for (uint kq = i; kq < p.nk4; kq += NT)
    for (uint n = p.n_begin; n < min(nchunks, p.n_end); ++n) {
      vec4 g = vec4(0.0);
      for (uint t = n * C; t < min(n * C + C, T); ++t) {
        const uint r = ((t0 + t) * H + h) * K4 + kq;
        g += g4[r];
        wsB4[r] = g;
      }
    }

  vec4 S[K];
  for (uint k = 0; k < 4u * p.nk4; ++k) S[k] = vec4(0.0);
  const uint sbase = (b * H + h) * K * V4 + vq;
  const uint nb = min(p.n_begin, nchunks), ne = min(p.n_end, nchunks);
  if ((p.flags & DTR_GLA_CARRY) != 0u)
    for (uint k = 0; k < 4u * p.nk4; ++k) S[k] = wsS4[((slot0 + nb) * H + h) * K * V4 + k * V4 + vq];
  else if ((p.flags & DTR_GLA_STATE_IN) != 0u)
    for (uint k = 0; k < 4u * p.nk4; ++k) S[k] = si4[sbase + k * V4];
  vec4 a[K4];
  for (uint n = nb; n < ne; ++n) {
    const uint c0 = n * C, Tc = min(C, T - c0);
    for (uint k = 0; k < 4u * p.nk4; ++k) wsS4[((slot0 + n) * H + h) * K * V4 + k * V4 + vq] = S[k];
    for (uint kq = 0; kq < p.nk4; ++kq) {
      vec4 tot = vec4(0.0);
      for (uint t = 0; t < Tc; ++t) tot += g4[((t0 + c0 + t) * H + h) * K4 + kq];
      const vec4 d = exp(tot);
      S[4 * kq] *= d.x;
      S[4 * kq + 1] *= d.y;
      S[4 * kq + 2] *= d.z;
      S[4 * kq + 3] *= d.w;
      a[kq] = vec4(0.0);
    }
    for (uint j = Tc; j-- > 0;) {
      const uint r = (t0 + c0 + j) * H + h;
      const vec4 vj = QKV_LD4(v4, r * V4 + vq);
      for (uint kq = 0; kq < p.nk4; ++kq) {
        const vec4 ke = QKV_LD4(k4, r * K4 + kq) * exp(a[kq]); /* a = b_L - b_j */
        S[4 * kq] += ke.x * vj;
        S[4 * kq + 1] += ke.y * vj;
        S[4 * kq + 2] += ke.z * vj;
        S[4 * kq + 3] += ke.w * vj;
        a[kq] += g4[r * K4 + kq];
      }
    }
  }
  for (uint k = 0; k < 4u * p.nk4; ++k) wsS4[((slot0 + ne) * H + h) * K * V4 + k * V4 + vq] = S[k];
}
