#version 450
/* attention_bwd_dq_tex.comp — causal GQA attention backward, the query side,
 * reading dO, q, k, v, O as RGBA32F texel buffers (the CPU path; see
 * attention_fwd_tex.comp for why texels, and attention_bwd_dq.comp for the
 * derivation: P = exp(S - lse), dS_ij = P_ij (dO_i . v_j - dO_i . O_i),
 * dq_i = scale sum_j dS_ij k_j).
 *
 * Each invocation owns ROWS consecutive rows with their pre-scaled q, dO and
 * the dq accumulator in registers (D/4 vec4 each) and D_i = dO_i . O_i and
 * lse; it walks the keys in blocks of KB, each k and v texel fetched once for
 * all its rows (k twice: for the scores, then for dq, rather than holding a
 * block of keys in registers).
 */
#include "attention_common.glsl"

layout(binding = 0) writeonly buffer DQ { vec4 dq[]; };   // (B, Tq, Hq, D)
layout(binding = 1) uniform samplerBuffer DO;              // (B, Tq, Hq, D)
layout(binding = 2) uniform samplerBuffer Q;               // (B, Tq, Hq, D)
layout(binding = 3) uniform samplerBuffer K;               // (B, kv_cap, Hkv, D)
layout(binding = 4) uniform samplerBuffer V;               // (B, kv_cap, Hkv, D)
layout(binding = 5) uniform samplerBuffer O;               // (B, Tq, Hq, D)
layout(binding = 6) readonly buffer Lse { float lse[]; };  // (B, Hq, Tq)

void main() {
  const uint hk = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint nrows = p.Tq * p.G;
  const uint rbase = gl_WorkGroupID.x * p.rows_per_group + gl_LocalInvocationID.x * ROWS;
  const float qscale = p.scale * LOG2E;

  vec4 qr[ROWS][D4], dor[ROWS][D4], acc[ROWS][D4];
  float lse2[ROWS], di[ROWS];
  uint last[ROWS];
  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    const uint row = min(rbase + r, nrows - 1); /* tail rows compute, never store */
    const int qo = int(row_off(b, hk, row));
    di[r] = 0.0;
    [[unroll]] for (uint d = 0; d < D4; d++) {
      qr[r][d] = texelFetch(Q, qo + int(d)) * qscale;
      dor[r][d] = texelFetch(DO, qo + int(d));
      di[r] += dot(dor[r][d], texelFetch(O, qo + int(d)));
      acc[r][d] = vec4(0.0);
    }
    lse2[r] = lse[lse_idx(b, hk, row)] * LOG2E;
    last[r] = row_last_key(row);
  }
  const uint jend = last[ROWS - 1] + 1; /* the lane's last row sees the most keys */

  for (uint j0 = 0; j0 < jend; j0 += KB) {
    int ko[KB];
    [[unroll]] for (uint jj = 0; jj < KB; jj++)
      ko[jj] = int(key_off(b, hk, min(j0 + jj, p.Tk - 1)));
    float s[ROWS][KB], dp[ROWS][KB];
    [[unroll]] for (uint r = 0; r < ROWS; r++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) { s[r][jj] = 0.0; dp[r][jj] = 0.0; }
    [[unroll]] for (uint d = 0; d < D4; d++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        const vec4 kt = texelFetch(K, ko[jj] + int(d)), vt = texelFetch(V, ko[jj] + int(d));
        [[unroll]] for (uint r = 0; r < ROWS; r++) {
          s[r][jj] += dot(qr[r][d], kt);
          dp[r][jj] += dot(dor[r][d], vt);
        }
      }
    /* s becomes scale * dS, ready to multiply k. */
    [[unroll]] for (uint r = 0; r < ROWS; r++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        const float pr = (j0 + jj <= last[r]) ? exp2(s[r][jj] - lse2[r]) : 0.0;
        s[r][jj] = pr * (dp[r][jj] - di[r]) * p.scale;
      }
    [[unroll]] for (uint d = 0; d < D4; d++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        const vec4 kt = texelFetch(K, ko[jj] + int(d));
        [[unroll]] for (uint r = 0; r < ROWS; r++) acc[r][d] += s[r][jj] * kt;
      }
  }

  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    const uint row = rbase + r;
    if (row < nrows) {
      const uint qo = row_off(b, hk, row);
      [[unroll]] for (uint d = 0; d < D4; d++) dq[qo + d] = acc[r][d];
    }
  }
}
