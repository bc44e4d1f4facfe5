/* matmul_tex.comp — the CPU-device matmul: C = alpha * op(A) op(B) + beta * C
 * (+ bias), batched, with A and B read as uniform texel buffers of vec4
 * (RGBA32F) texels (same push constants and indexing as matmul.comp, see
 * push_matmul.h).
 *
 * Why texels: lavapipe compiles a storage-buffer load with a non-uniform address
 * into a loop over the SIMD lanes, but a texelFetch into one vector gather, so
 * the same register-blocked loop runs several times faster. Each invocation owns
 * an RM x RN block of C in registers; every step of the K loop fetches the
 * RM x 4 slice of op(A) and the 4 x RN slice of op(B) as texels along whichever
 * dimension is contiguous (k for a row-major A / transposed B, m for a
 * transposed A, n for a row-major B) and does 4*RM*RN FMAs. llvmpipe keeps
 * vectors as one register per component (SoA), so regrouping a texel's
 * components into per-row k-vectors is free and one accumulation form (dot over
 * k) serves all four transpose cases. The only loop is over K/4 (the others are
 * unrolled), which keeps llvmpipe's per-invocation loop budget for K up to
 * the host's K split.
 *
 * The host guarantees: K, the contiguous extents (M with TA, N without TB), the
 * leading dimensions, batch strides and the a/b offsets are multiples of 4 (so a
 * texel index is element index / 4). Rows and columns past M, N fetch clamped
 * (valid) texels and are not stored, so edge tiles need no other care.
 *
 * The _mv variant is the matrix-vector shape (M = 1, B stored (N, K)): c(n) =
 * sum_k a(k) B(n, k). A subgroup of SG lanes (one row of the workgroup) shares
 * RN output rows and splits K between its lanes texel by texel, so the lanes'
 * fetches of a row are contiguous, then subgroupAdd combines them.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
//! variant mv -DMV=1
#ifdef MV
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
#include "dtr_push.h"

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 2) const uint RM = 4; /* rows of C per invocation */
layout(constant_id = 3) const uint RN = 4; /* columns of C per invocation */
layout(constant_id = 4) const uint TA = 0; /* A stored (K, M) */
layout(constant_id = 5) const uint TB = 0; /* B stored (N, K) */

layout(push_constant) uniform PC { dtr_pc_matmul p; };

layout(std430, binding = 0) buffer Cbuf { float C[]; };
layout(binding = 1) uniform samplerBuffer A;
layout(binding = 2) uniform samplerBuffer B;
layout(std430, binding = 3) readonly buffer Biasbuf { float bias[]; };

/* C(m, n) = alpha * acc + beta * C(m, n) + bias, for in-range elements. */
void store(uint m, uint n, float acc) {
  if (m >= p.M || n >= p.N) return;
  const uint ci = p.c_off + gl_WorkGroupID.z * p.stride_c + m * p.scm + n * p.scn;
  float v = p.alpha * acc;
  if (p.beta != 0.0) v += p.beta * C[ci]; /* beta = 0 never reads C */
  if (p.bias_mode == 1) v += bias[p.bias_off + n];
  else if (p.bias_mode == 2) v += bias[p.bias_off + m];
  C[ci] = v;
}

#ifdef MV
void main() {
  /* Workgroup (SG, WGY): row y of the workgroup is one subgroup and owns RN
   * consecutive rows of B; lane x takes texels x, x + SG, ... of each. */
  const uint lane = gl_LocalInvocationID.x, SG = gl_WorkGroupSize.x;
  const uint n0 = gl_GlobalInvocationID.y * RN;
  const uint z = gl_WorkGroupID.z;
  const uint K4 = p.K >> 2;
  const uint a4 = (p.a_off + z * p.stride_a) >> 2;
  uint brow[RN];
  [[unroll]] for (uint j = 0; j < RN; ++j)
    brow[j] = (p.b_off + z * p.stride_b + min(n0 + j, p.N - 1) * p.ldb) >> 2;
  vec4 acc[RN];
  [[unroll]] for (uint j = 0; j < RN; ++j) acc[j] = vec4(0.0);
  for (uint k = lane; k < K4; k += SG) {
    const vec4 a = texelFetch(A, int(a4 + k));
    [[unroll]] for (uint j = 0; j < RN; ++j) acc[j] = fma(a, texelFetch(B, int(brow[j] + k)), acc[j]);
  }
  [[unroll]] for (uint j = 0; j < RN; ++j) {
    /* The horizontal sums go into one subgroupAdd per row. */
    const float s = subgroupAdd((acc[j].x + acc[j].y) + (acc[j].z + acc[j].w));
    if (lane == 0) store(0, n0 + j, s);
  }
}
#else
void main() {
  const uint z = gl_WorkGroupID.z;
  const uint m0 = gl_GlobalInvocationID.y * RM;
  const uint n0 = gl_GlobalInvocationID.x * RN;
  const uint M = p.M, N = p.N, K4 = p.K >> 2;
  const uint abase = p.a_off + z * p.stride_a;
  const uint bbase = p.b_off + z * p.stride_b;

  /* Texel index of each fetch at k4 = 0 and its step per k4:
   * TA == 0: a[i] = A row m0+i, texel k4 (step 1);
   * TA == 1: texel (k, m0+4q..+3) for k = 4 k4 + t, step lda (in texels). */
  uint ai[RM], bi[RN];
  if (TA == 0) {
    [[unroll]] for (uint i = 0; i < RM; ++i) ai[i] = (abase + min(m0 + i, M - 1) * p.lda) >> 2;
  } else {
    [[unroll]] for (uint t = 0; t < 4; ++t)
      [[unroll]] for (uint q = 0; q < RM / 4; ++q)
        ai[4 * q + t] = (abase + t * p.lda + min(m0 + 4 * q, M - 4)) >> 2;
  }
  if (TB != 0) {
    [[unroll]] for (uint j = 0; j < RN; ++j) bi[j] = (bbase + min(n0 + j, N - 1) * p.ldb) >> 2;
  } else {
    [[unroll]] for (uint t = 0; t < 4; ++t)
      [[unroll]] for (uint q = 0; q < RN / 4; ++q)
        bi[4 * q + t] = (bbase + t * p.ldb + min(n0 + 4 * q, N - 4)) >> 2;
  }
  const uint astep = TA == 0 ? 1 : p.lda; /* texels per k4: 4 rows of lda/4 */
  const uint bstep = TB != 0 ? 1 : p.ldb;

  float acc[RM][RN];
  [[unroll]] for (uint i = 0; i < RM; ++i)
    [[unroll]] for (uint j = 0; j < RN; ++j) acc[i][j] = 0.0;


  /* With B stored (N, K) the lanes of a SIMD row read different rows of B;
   * each lane starts K at its own cache line (4 texels) and wraps around, as
   * with a power-of-two row stride those rows would otherwise all fall into
   * the same L1 set at every step (1024^3 NT measured ~1.3x faster). Without
   * TB the lanes read neighbouring texels of one row: no skew (it measured
   * 2.5x slower there). */
  const uint kskew = TB != 0 ? (gl_LocalInvocationID.x * 4) % K4 : 0;
  for (uint kk = 0; kk < K4; ++kk) {
    const uint k4 = kk + kskew < K4 ? kk + kskew : kk + kskew - K4;
    vec4 a[RM]; /* a[i][t] = op(A)(m0 + i, 4 k4 + t) */
    vec4 b[RN]; /* b[j][t] = op(B)(4 k4 + t, n0 + j) */
    if (TA == 0) {
      [[unroll]] for (uint i = 0; i < RM; ++i) a[i] = texelFetch(A, int(ai[i] + k4 * astep));
    } else {
      [[unroll]] for (uint t = 0; t < 4; ++t)
        [[unroll]] for (uint q = 0; q < RM / 4; ++q) {
          const vec4 v = texelFetch(A, int(ai[4 * q + t] + k4 * astep));
          a[4 * q + 0][t] = v.x;
          a[4 * q + 1][t] = v.y;
          a[4 * q + 2][t] = v.z;
          a[4 * q + 3][t] = v.w;
        }
    }
    if (TB != 0) {
      [[unroll]] for (uint j = 0; j < RN; ++j) b[j] = texelFetch(B, int(bi[j] + k4 * bstep));
    } else {
      [[unroll]] for (uint t = 0; t < 4; ++t)
        [[unroll]] for (uint q = 0; q < RN / 4; ++q) {
          const vec4 v = texelFetch(B, int(bi[4 * q + t] + k4 * bstep));
          b[4 * q + 0][t] = v.x;
          b[4 * q + 1][t] = v.y;
          b[4 * q + 2][t] = v.z;
          b[4 * q + 3][t] = v.w;
        }
    }
    [[unroll]] for (uint i = 0; i < RM; ++i)
      [[unroll]] for (uint j = 0; j < RN; ++j) acc[i][j] += dot(a[i], b[j]);
  }

  [[unroll]] for (uint i = 0; i < RM; ++i)
    [[unroll]] for (uint j = 0; j < RN; ++j) store(m0 + i, n0 + j, acc[i][j]);
}
#endif
