#version 450
/* attention_fwd.comp — causal GQA attention forward, flash style.
 *
 * Each lane owns ROWS query rows (see attention_common.glsl) with their
 * running max m and running sum l in registers (scores in base 2: the query
 * is scaled by scale*log2(e)). Keys come in blocks of KB: the block's scores,
 * one max update per block (online softmax), then the un-normalized output
 * row in `o` is rescaled by 2^(m_old - m_new) and gets the p-weighted values.
 * A last pass divides by l. Nothing T x T is stored; lse = (m + log2 l) ln 2
 * is kept for the backward.
 */
#include "attention_common.glsl"

layout(binding = 0) buffer Out { vec4 o[]; };             // (B, Tq, Hq, D)
layout(binding = 1) writeonly buffer Lse { float lse[]; }; // (B, Hq, Tq)
layout(binding = 2) readonly buffer Q { vec4 q[]; };      // (B, Tq, Hq, D)
layout(binding = 3) readonly buffer K { vec4 k[]; };      // (B, kv_cap, Hkv, D)
layout(binding = 4) readonly buffer V { vec4 v[]; };      // (B, kv_cap, Hkv, D)

void main() {
  const uint hk = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint nrows = p.Tq * p.G;
  const uint r0 = gl_WorkGroupID.x * p.rows_per_group;
  const uint lane = gl_SubgroupInvocationID;
  const float qscale = p.scale * LOG2E;

  float m[ROWS], l[ROWS];
  uint last[ROWS], qo[ROWS];
  bool mine[ROWS]; /* the lane owns a real row (tail lanes compute, never store) */
  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    uint row = r0 + r * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    mine[r] = row < nrows;
    row = min(row, nrows - 1);
    qo[r] = row_off(b, hk, row);
    m[r] = -1.0 / 0.0;
    l[r] = 0.0;
    last[r] = row_last_key(row);
  }
  /* Uniform trip count for the whole workgroup: up to the last key of its last row. */
  const uint jend = row_last_key(min(r0 + p.rows_per_group, nrows) - 1) + 1;

  for (uint j0 = 0; j0 < jend; j0 += KB) {
    const uint kofs = key_off(b, hk, min(j0 + lane, p.Tk - 1));
    float s[ROWS][KB];
    [[unroll]] for (uint r = 0; r < ROWS; r++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) s[r][jj] = 0.0;
    for (uint d = 0; d < D4; d++) {
      vec4 kv = k[kofs + d];
      vec4 qv[ROWS];
      [[unroll]] for (uint r = 0; r < ROWS; r++) qv[r] = q[qo[r] + d];
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        vec4 kb = subgroupBroadcast(kv, jj);
        [[unroll]] for (uint r = 0; r < ROWS; r++) s[r][jj] += dot(qv[r], kb);
      }
    }
    /* Online softmax: masked scores give p = 0; the block's max rescales
     * what was accumulated so far by alpha = 2^(m_old - m_new). */
    float alpha[ROWS];
    [[unroll]] for (uint r = 0; r < ROWS; r++) {
      float mn = m[r];
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        s[r][jj] = (j0 + jj > last[r]) ? -1.0 / 0.0 : s[r][jj] * qscale;
        mn = max(mn, s[r][jj]);
      }
      alpha[r] = exp2(m[r] - mn);
      float sum = 0.0;
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        s[r][jj] = exp2(s[r][jj] - mn);
        sum += s[r][jj];
      }
      l[r] = l[r] * alpha[r] + sum;
      m[r] = mn;
    }
    for (uint d = 0; d < D4; d++) {
      vec4 vv = v[kofs + d];
      vec4 acc[ROWS];
      [[unroll]] for (uint r = 0; r < ROWS; r++)
        acc[r] = j0 == 0 ? vec4(0.0) : o[qo[r] + d] * alpha[r];
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        vec4 vb = subgroupBroadcast(vv, jj);
        [[unroll]] for (uint r = 0; r < ROWS; r++) acc[r] += s[r][jj] * vb;
      }
      [[unroll]] for (uint r = 0; r < ROWS; r++)
        if (mine[r]) o[qo[r] + d] = acc[r];
    }
  }

  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    if (mine[r]) {
      float inv = 1.0 / l[r];
      for (uint d = 0; d < D4; d++) o[qo[r] + d] *= inv;
      uint row = r0 + r * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
      lse[lse_idx(b, hk, row)] = (m[r] + log2(l[r])) * LN2;
    }
  }
}
