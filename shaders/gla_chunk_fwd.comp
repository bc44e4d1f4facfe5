/* gla_chunk_fwd.comp — GLA chunked forward, one workgroup per (head, sequence).
 *
 * The workgroup walks its sequence chunk by chunk (C tokens). Each invocation owns
 * four columns of the state S (K x V) in registers, so the state never leaves
 * the workgroup and the forward needs no scratch memory. Per chunk, with b_t the
 * cumulative log-decay inside the chunk and L its last token:
 *   o_t     = s (q_t e^{b_t})^T S + sum_{j<=t} A[t][j] v_j
 *   A[t][j] = s sum_k q_t[k] k_j[k] e^{b_t[k] - b_j[k]}
 *   S      <- diag(e^{b_L}) S + sum_j (k_j e^{b_L - b_j}) v_j^T
 * Numerics: e^{b_t - b_j} is never split as e^{b_t} e^{-b_j} over a whole chunk
 * (e^{-b_j} overflows). Rows are taken in sub-chunks of 16 with the reference
 * r_I = b just before sub-chunk I: A = (q_t e^{b_t - r_I}) . (k_j e^{r_I - b_j}),
 * both factors <= 1 for j in earlier sub-chunks. On the diagonal sub-chunk the
 * second factor is >= 1 but bounded by the sub-chunk's own decay; when that decay
 * exceeds e^{60} in some k the sub-chunk is done elementwise instead.
 * Variant h16: q, k and v are read as packed fp16 (qkv_load.glsl). */
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"
#include "qkv_load.glsl"
//! variant h16 -DDTR_QKV_F16=1

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint NT = 16; /* = V / 4 invocations */
layout(constant_id = 1) const uint C = 64;  /* chunk, a multiple of 16 */
layout(constant_id = 2) const uint K = 64;  /* multiple of 4 */
layout(constant_id = 3) const uint V = 64;  /* multiple of 4 */
const uint K4 = K / 4;
const uint SUB = 16;

layout(push_constant) uniform PC { dtr_pc_gla_chunk p; };

layout(std430, binding = 0) buffer Obuf { vec4 o4[]; };
layout(std430, binding = 1) buffer SObuf { vec4 so4[]; };
layout(std430, binding = 2) readonly buffer Qbuf { QKV_VEC4 q4[]; };
layout(std430, binding = 3) readonly buffer Kbuf { QKV_VEC4 k4[]; };
layout(std430, binding = 4) readonly buffer Vbuf { QKV_VEC4 v4[]; };
layout(std430, binding = 5) readonly buffer Gbuf { float gk[]; };
layout(std430, binding = 6) readonly buffer SIbuf { vec4 si4[]; };
layout(std430, binding = 7) readonly buffer Offbuf { int offs[]; };

shared vec4 sB[C * K4];     /* b_t, later k_j e^{b_L - b_j}; row t = [t * K4, +K4) */
shared vec4 sQ[SUB * K4];   /* q_t e^{b_t - r_I}, rows of the current sub-chunk */
shared vec4 sQE[SUB * K4];  /* s q_t e^{b_t} */
shared float sA[SUB * C];   /* A rows of the current sub-chunk (zero above the diagonal) */
shared vec4 sBL[K4];        /* b_L of the chunk */
shared uint sFlag;

void main() {
  const uint h = gl_WorkGroupID.x, b = gl_WorkGroupID.y, i = gl_LocalInvocationID.x;
  const uint H = p.H;
  const uint t0 = uint(offs[b]), T = uint(offs[b + 1]) - t0;
  const uint vq = i; /* my columns are 4 vq .. 4 vq + 3 */
  const uint V4 = V / 4;
  const float s = p.scale;

  vec4 S[K]; /* S[k] = state row k, my four columns */
  for (uint k = 0; k < 4u * p.nk4; ++k) S[k] = vec4(0.0);
  const uint sbase = (b * H + h) * K * V4 + vq; /* state (B, H, K, V) in vec4s */
  if ((p.flags & DTR_GLA_STATE_IN) != 0u)
    for (uint k = 0; k < 4u * p.nk4; ++k) S[k] = si4[sbase + k * V4];

  const uint nchunks = (T + C - 1) / C;
  for (uint n = p.n_begin; n < min(nchunks, p.n_end); ++n) {
    const uint c0 = n * C, Tc = min(C, T - c0);
    /* in-chunk cumulative log-decay b_t, one k per invocation */
    for (uint kk = i; kk < 4u * p.nk4; kk += NT) {
      float g = 0.0;
      for (uint tt = 0; tt < Tc; ++tt) {
        const uint gi = ((t0 + c0 + tt) * H + h) * K + kk;
        g += gk[gi];
        sB[tt * K4 + kk / 4][kk % 4] = g;
      }
    }
    barrier();

    const uint nsub = (Tc + SUB - 1) / SUB;
    for (uint I = 0; I < nsub; ++I) {
      const uint r0 = I * SUB, nr = min(SUB, Tc - r0), jn = r0 + nr;
      if (i == 0) sFlag = 0u;
      barrier();
      /* sub-chunk rows: q e^{b_t - r_I} and s q e^{b_t}; overflow check of the
       * diagonal factor e^{r_I - b_j} <= e^{r_I - b_last} */
      for (uint e = i; e < SUB * K4; e += NT) {
        const uint r = e / K4, kq = e % K4;
        const vec4 rI = I > 0 ? sB[(r0 - 1) * K4 + kq] : vec4(0.0);
        if (r < nr) {
          const vec4 bt = sB[(r0 + r) * K4 + kq];
          const vec4 qv = QKV_LD4(q4, ((t0 + c0 + r0 + r) * H + h) * K4 + kq);
          sQ[e] = qv * exp(bt - rI);
          sQE[e] = s * qv * exp(bt);
          if (r == nr - 1 && any(greaterThan(rI - bt, vec4(60.0)))) atomicOr(sFlag, 1u);
        } else {
          sQ[e] = vec4(0.0);
          sQE[e] = vec4(0.0);
        }
      }
      barrier();
      /* A[r][j] for j < jn, one column j per invocation */
      const bool elementwise = sFlag != 0u;
      for (uint j = i; j < jn; j += NT) {
        float acc[SUB];
        [[unroll]] for (uint r = 0; r < SUB; ++r) acc[r] = 0.0;
        const uint kbase = ((t0 + c0 + j) * H + h) * K4;
        if (!elementwise || j < r0) {
          for (uint kq = 0; kq < p.nk4; ++kq) {
            const vec4 rI = I > 0 ? sB[(r0 - 1) * K4 + kq] : vec4(0.0);
            const vec4 kn = QKV_LD4(k4, kbase + kq) * exp(rI - sB[j * K4 + kq]);
            [[unroll]] for (uint r = 0; r < SUB; ++r) acc[r] += dot(sQ[r * K4 + kq], kn);
          }
        } else {
          for (uint r = j - r0; r < nr; ++r) {
            const uint qbase = ((t0 + c0 + r0 + r) * H + h) * K4;
            float a = 0.0;
            for (uint kq = 0; kq < p.nk4; ++kq)
              a += dot(QKV_LD4(q4, qbase + kq) * QKV_LD4(k4, kbase + kq),
                       exp(sB[(r0 + r) * K4 + kq] - sB[j * K4 + kq]));
            acc[r] = a;
          }
        }
        [[unroll]] for (uint r = 0; r < SUB; ++r)
          sA[r * C + j] = (r0 + r >= j) ? s * acc[r] : 0.0;
      }
      barrier();
      /* o rows of the sub-chunk: inter-chunk part through S, intra through A */
      vec4 acc[SUB];
      [[unroll]] for (uint r = 0; r < SUB; ++r) acc[r] = vec4(0.0);
      for (uint kq = 0; kq < p.nk4; ++kq) {
        [[unroll]] for (uint r = 0; r < SUB; ++r) {
          const vec4 qe = sQE[r * K4 + kq];
          acc[r] += qe.x * S[4 * kq] + qe.y * S[4 * kq + 1] + qe.z * S[4 * kq + 2] +
                    qe.w * S[4 * kq + 3];
        }
      }
      for (uint j = 0; j < jn; ++j) {
        const vec4 vj = QKV_LD4(v4, ((t0 + c0 + j) * H + h) * V4 + vq);
        [[unroll]] for (uint r = 0; r < SUB; ++r) acc[r] += sA[r * C + j] * vj;
      }
      [[unroll]] for (uint r = 0; r < SUB; ++r)
        if (r < nr) o4[((t0 + c0 + r0 + r) * H + h) * V4 + vq] = acc[r];
      barrier();
    }

    /* state update: S <- diag(e^{b_L}) S + sum_j (k_j e^{b_L - b_j}) v_j^T */
    for (uint kq = i; kq < p.nk4; kq += NT) sBL[kq] = sB[(Tc - 1) * K4 + kq];
    barrier();
    for (uint e = i; e < Tc * K4; e += NT) {
      const uint j = e / K4, kq = e % K4;
      sB[e] = QKV_LD4(k4, ((t0 + c0 + j) * H + h) * K4 + kq) * exp(sBL[kq] - sB[e]);
    }
    barrier();
    for (uint kq = 0; kq < p.nk4; ++kq) {
      const vec4 d = exp(sBL[kq]);
      S[4 * kq] *= d.x;
      S[4 * kq + 1] *= d.y;
      S[4 * kq + 2] *= d.z;
      S[4 * kq + 3] *= d.w;
    }
    for (uint j = 0; j < Tc; ++j) {
      const vec4 vj = QKV_LD4(v4, ((t0 + c0 + j) * H + h) * V4 + vq);
      for (uint kq = 0; kq < p.nk4; ++kq) {
        const vec4 ke = sB[j * K4 + kq];
        S[4 * kq] += ke.x * vj;
        S[4 * kq + 1] += ke.y * vj;
        S[4 * kq + 2] += ke.z * vj;
        S[4 * kq + 3] += ke.w * vj;
      }
    }
    barrier();
  }
  if ((p.flags & DTR_GLA_STATE_OUT) != 0u)
    for (uint k = 0; k < 4u * p.nk4; ++k) so4[sbase + k * V4] = S[k];
}
