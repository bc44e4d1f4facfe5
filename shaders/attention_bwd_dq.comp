#version 450
/* attention_bwd_dq.comp — causal GQA attention backward, the query side.
 *
 * With S = scale q k^T, P = exp(S - lse) (the forward's softmax, rebuilt from
 * the saved lse) and O = P v:
 *   dP_ij = dO_i . v_j
 *   dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik) = P_ij (dP_ij - dO_i . O_i)
 *   dq_i  = scale sum_j dS_ij k_j
 * Each lane owns ROWS query rows (as in attention_fwd) and keeps
 * D_i = dO_i . O_i and lse in registers while it walks the keys in blocks of
 * KB shared by subgroupBroadcast; dq accumulates in place in its buffer
 * (attention_common.glsl says why). attention_bwd_dkdv
 * does the key side; the two are independent, so no scratch and no atomics.
 */
#include "attention_common.glsl"

layout(binding = 0) buffer DQ { vec4 dq[]; };   // (B, Tq, Hq, D)
layout(binding = 1) readonly buffer DO { vec4 dout[]; };  // (B, Tq, Hq, D)
layout(binding = 2) readonly buffer Q { vec4 q[]; };      // (B, Tq, Hq, D)
layout(binding = 3) readonly buffer K { vec4 k[]; };      // (B, kv_cap, Hkv, D)
layout(binding = 4) readonly buffer V { vec4 v[]; };      // (B, kv_cap, Hkv, D)
layout(binding = 5) readonly buffer O { vec4 o[]; };      // (B, Tq, Hq, D)
layout(binding = 6) readonly buffer Lse { float lse[]; }; // (B, Hq, Tq)

void main() {
  const uint hk = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint nrows = p.Tq * p.G;
  const uint r0 = gl_WorkGroupID.x * p.rows_per_group;
  const uint lane = gl_SubgroupInvocationID;
  const float qscale = p.scale * LOG2E;

  float lse2[ROWS], di[ROWS];
  uint last[ROWS], qo[ROWS];
  bool mine[ROWS];
  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    uint row = r0 + r * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    mine[r] = row < nrows;
    row = min(row, nrows - 1);
    qo[r] = row_off(b, hk, row);
    di[r] = 0.0;
    for (uint d = 0; d < D4; d++) di[r] += dot(dout[qo[r] + d], o[qo[r] + d]);
    lse2[r] = lse[lse_idx(b, hk, row)] * LOG2E;
    last[r] = row_last_key(row);
  }
  const uint jend = row_last_key(min(r0 + p.rows_per_group, nrows) - 1) + 1;

  for (uint j0 = 0; j0 < jend; j0 += KB) {
    const uint kofs = key_off(b, hk, min(j0 + lane, p.Tk - 1));
    float s[ROWS][KB], dp[ROWS][KB];
    [[unroll]] for (uint r = 0; r < ROWS; r++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) { s[r][jj] = 0.0; dp[r][jj] = 0.0; }
    for (uint d = 0; d < D4; d++) {
      vec4 kv = k[kofs + d], vv = v[kofs + d];
      vec4 qv[ROWS], dov[ROWS];
      [[unroll]] for (uint r = 0; r < ROWS; r++) {
        qv[r] = q[qo[r] + d];
        dov[r] = dout[qo[r] + d];
      }
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        vec4 kb = subgroupBroadcast(kv, jj);
        vec4 vb = subgroupBroadcast(vv, jj);
        [[unroll]] for (uint r = 0; r < ROWS; r++) {
          s[r][jj] += dot(qv[r], kb);
          dp[r][jj] += dot(dov[r], vb);
        }
      }
    }
    /* s becomes scale * dS, ready to multiply k. */
    [[unroll]] for (uint r = 0; r < ROWS; r++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        float pr = (j0 + jj <= last[r]) ? exp2(s[r][jj] * qscale - lse2[r]) : 0.0;
        s[r][jj] = pr * (dp[r][jj] - di[r]) * p.scale;
      }
    for (uint d = 0; d < D4; d++) {
      vec4 kv = k[kofs + d];
      vec4 acc[ROWS];
      [[unroll]] for (uint r = 0; r < ROWS; r++) acc[r] = j0 == 0 ? vec4(0.0) : dq[qo[r] + d];
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        vec4 kb = subgroupBroadcast(kv, jj);
        [[unroll]] for (uint r = 0; r < ROWS; r++) acc[r] += s[r][jj] * kb;
      }
      [[unroll]] for (uint r = 0; r < ROWS; r++)
        if (mine[r]) dq[qo[r] + d] = acc[r];
    }
  }
}
