/* matmul.comp — batched C = alpha * op(A) op(B) + beta * C (+ bias), register
 * blocked, no shared memory (see push_matmul.h for the indexing).
 *
 * Each invocation owns an RM x CN block of C and keeps it in registers; every
 * step of the K loop loads an RM x 4 slice of op(A) and a 4 x CN slice of op(B)
 * and does 4*RM*CN FMAs. On lavapipe every non-constant buffer load becomes a
 * loop over the SIMD lanes, so the cost is in the number of load instructions:
 * with VEC the slices are read as vec4s along whichever dimension is contiguous
 * in memory (k for a row-major A, m for a transposed A, n for a row-major B, k for
 * a transposed B), a quarter of the loads of the scalar path. VEC needs the
 * contiguous extents, offsets and strides to be multiples of 4 and K % 4 == 0;
 * the host checks that and falls back to VEC = 0, which handles any shape.
 * Out-of-range rows and columns load clamped (valid) addresses and are simply
 * not stored. Tile shape is specialization constants chosen per device.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
//! variant b_f16 -DB_F16=1
//! variant sg -DSUBGROUP=1
//! variant b_f16_sg -DB_F16=1 -DSUBGROUP=1
#ifdef SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#endif
#ifdef B_F16
#extension GL_EXT_shader_16bit_storage : require
#endif
#include "dtr_push.h"

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 2) const uint RM = 4;  /* rows of C per invocation */
layout(constant_id = 3) const uint CN = 4;  /* columns of C per invocation */
layout(constant_id = 4) const uint TA = 0;  /* A stored (K, M) */
layout(constant_id = 5) const uint TB = 0;  /* B stored (N, K) */
layout(constant_id = 6) const uint VEC = 0; /* vec4 loads (see above) */
/* The _sg variants: the subgroup size the host assumes (0: off). All lanes of a
 * subgroup share their rows (WGX % SG == 0), so instead of each lane loading the
 * whole RM x 4 slice of A, lane l loads a vec4 of it and subgroupBroadcast
 * (a register move on lavapipe) hands every lane the rest: RM/SG loads per lane
 * instead of RM. Used only when gl_SubgroupSize == SG. */
layout(constant_id = 7) const uint SG = 0;
#ifdef SUBGROUP
#define NSLOT ((RM + SG - 1) / SG)
#endif

layout(push_constant) uniform PC { dtr_pc_matmul p; };

layout(std430, binding = 0) buffer Cbuf { float C[]; };
layout(std430, binding = 1) readonly buffer Abuf { float A[]; };
layout(std430, binding = 1) readonly buffer A4buf { vec4 A4[]; };
#ifdef B_F16
layout(std430, binding = 2) readonly buffer Bbuf { float16_t B[]; };
layout(std430, binding = 2) readonly buffer B4buf { f16vec4 B4[]; };
#define LOADB(i) float(B[i])
#define LOADB4(i) vec4(B4[i])
#else
layout(std430, binding = 2) readonly buffer Bbuf { float B[]; };
layout(std430, binding = 2) readonly buffer B4buf { vec4 B4[]; };
#define LOADB(i) B[i]
#define LOADB4(i) B4[i]
#endif
layout(std430, binding = 3) readonly buffer Biasbuf { float bias[]; };

void main() {
  const uint z = gl_WorkGroupID.z;
  const uint m0 = gl_GlobalInvocationID.y * RM;
  const uint n0 = gl_GlobalInvocationID.x * CN;
  const uint M = p.M, N = p.N, K = p.K;
  const uint abase = p.a_off + z * p.stride_a;
  const uint bbase = p.b_off + z * p.stride_b;

  float acc[RM][CN];
  [[unroll]] for (uint i = 0; i < RM; ++i)
    [[unroll]] for (uint j = 0; j < CN; ++j) acc[i][j] = 0.0;

  if (VEC != 0) {
    /* Row/column starts, clamped so every vec4 stays inside the operand. */
    uint arow[RM];   /* TA == 0: start of row m (+k), in vec4 units after / 4 */
    uint bcol[CN];   /* TB == 1: start of row n of the stored (N, K) B */
    [[unroll]] for (uint i = 0; i < RM; ++i) arow[i] = abase + min(m0 + i, M - 1) * p.lda;
    [[unroll]] for (uint j = 0; j < CN; ++j) bcol[j] = bbase + min(n0 + j, N - 1) * p.ldb;
    uint mq[RM / 4 + 1]; /* TA == 1: first of each group of 4 rows */
    uint nq[CN / 4 + 1]; /* TB == 0: first of each group of 4 columns */
    [[unroll]] for (uint q = 0; q < RM / 4; ++q) mq[q] = min(m0 + 4 * q, M - 4);
    [[unroll]] for (uint q = 0; q < CN / 4; ++q) nq[q] = min(n0 + 4 * q, N - 4);

#ifdef SUBGROUP
    /* Shared-slice loads: this lane's vec4s v = lane + s*SG of the slice (taken
     * mod RM when RM < SG); for TA == 0 vec4 v is row v, for TA == 1 it is
     * k-row v / (RM/4), rows 4*(v % (RM/4)) .. +3. */
    const bool share = gl_SubgroupSize == SG && SG != 0;
    uint soff[NSLOT], skrow[NSLOT];
    [[unroll]] for (uint s = 0; s < NSLOT; ++s) {
      const uint v = (gl_SubgroupInvocationID + s * SG) % RM;
      if (TA == 0) {
        soff[s] = abase + min(m0 + v, M - 1) * p.lda, skrow[s] = 0;
      } else {
        soff[s] = abase + min(m0 + 4 * (v % (RM / 4)), M - 4), skrow[s] = v / (RM / 4);
      }
    }
#else
    const bool share = false;
#endif
    for (uint k = 0; k < K; k += 4) {
      vec4 a[RM]; /* a[i][t] = op(A)(m0 + i, k + t) */
      vec4 b[CN]; /* b[j][t] = op(B)(k + t, n0 + j) */
      if (share) {
#ifdef SUBGROUP
        vec4 slot[NSLOT];
        [[unroll]] for (uint s = 0; s < NSLOT; ++s)
          slot[s] = A4[(TA == 0 ? soff[s] + k : soff[s] + (k + skrow[s]) * p.lda) >> 2];
        [[unroll]] for (uint v = 0; v < RM; ++v) {
          vec4 w = subgroupBroadcast(slot[v / SG], v % SG);
          if (TA == 0) {
            a[v] = w;
          } else {
            const uint t = v / (RM / 4), q = v % (RM / 4);
            a[4 * q + 0][t] = w.x;
            a[4 * q + 1][t] = w.y;
            a[4 * q + 2][t] = w.z;
            a[4 * q + 3][t] = w.w;
          }
        }
#endif
      } else if (TA == 0) {
        [[unroll]] for (uint i = 0; i < RM; ++i) a[i] = A4[(arow[i] + k) >> 2];
      } else {
        [[unroll]] for (uint t = 0; t < 4; ++t)
          [[unroll]] for (uint q = 0; q < RM / 4; ++q) {
            vec4 v = A4[(abase + (k + t) * p.lda + mq[q]) >> 2];
            a[4 * q + 0][t] = v.x;
            a[4 * q + 1][t] = v.y;
            a[4 * q + 2][t] = v.z;
            a[4 * q + 3][t] = v.w;
          }
      }
      if (TB != 0) {
        [[unroll]] for (uint j = 0; j < CN; ++j) b[j] = LOADB4((bcol[j] + k) >> 2);
      } else {
        [[unroll]] for (uint t = 0; t < 4; ++t)
          [[unroll]] for (uint q = 0; q < CN / 4; ++q) {
            vec4 v = LOADB4((bbase + (k + t) * p.ldb + nq[q]) >> 2);
            b[4 * q + 0][t] = v.x;
            b[4 * q + 1][t] = v.y;
            b[4 * q + 2][t] = v.z;
            b[4 * q + 3][t] = v.w;
          }
      }
      [[unroll]] for (uint t = 0; t < 4; ++t)
        [[unroll]] for (uint i = 0; i < RM; ++i)
          [[unroll]] for (uint j = 0; j < CN; ++j)
            acc[i][j] = fma(a[i][t], b[j][t], acc[i][j]);
    }
  } else {
    uint am[RM], an[CN];
    [[unroll]] for (uint i = 0; i < RM; ++i) am[i] = min(m0 + i, M - 1);
    [[unroll]] for (uint j = 0; j < CN; ++j) an[j] = min(n0 + j, N - 1);
    for (uint k = 0; k < K; ++k) {
      float a[RM], b[CN];
      [[unroll]] for (uint i = 0; i < RM; ++i)
        a[i] = A[abase + (TA != 0 ? k * p.lda + am[i] : am[i] * p.lda + k)];
      [[unroll]] for (uint j = 0; j < CN; ++j)
        b[j] = LOADB(bbase + (TB != 0 ? an[j] * p.ldb + k : k * p.ldb + an[j]));
      [[unroll]] for (uint i = 0; i < RM; ++i)
        [[unroll]] for (uint j = 0; j < CN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
  }

  const uint cbase = p.c_off + z * p.stride_c;
  [[unroll]] for (uint i = 0; i < RM; ++i) {
    const uint m = m0 + i;
    [[unroll]] for (uint j = 0; j < CN; ++j) {
      const uint n = n0 + j;
      if (m < M && n < N) {
        const uint ci = cbase + m * p.scm + n * p.scn;
        float v = p.alpha * acc[i][j];
        if (p.beta != 0.0) v += p.beta * C[ci]; /* beta = 0 never reads C */
        if (p.bias_mode == 1) v += bias[p.bias_off + n];
        else if (p.bias_mode == 2) v += bias[p.bias_off + m];
        C[ci] = v;
      }
    }
  }
}
