#version 450
/* attention_bwd_dkdv.comp — causal GQA attention backward, the key side.
 *
 * With S = scale q k^T, P = exp(S - lse), dP_ij = dO_i . v_j and
 * dS_ij = P_ij (dP_ij - dO_i . O_i) (see attention_bwd_dq.comp):
 *   dv_j = sum_i P_ij dO_i
 *   dk_j = scale sum_i dS_ij q_i
 * where i runs over every query row that sees key j, in all G query heads of
 * the kv head: the rows of attention_common.glsl already interleave those
 * heads, so the GQA sum is just the loop over rows, in a fixed order
 * (deterministic, no atomics). Each lane owns ROWS keys, whose dk and dv
 * accumulate in place in their buffers (attention_common.glsl says why);
 * query rows come in blocks of KB, lane l loading row r0 + l (q, dO, and O to
 * form its D_i = dO_i . O_i), shared by subgroupBroadcast.
 */
#include "attention_common.glsl"

layout(binding = 0) buffer DK { vec4 dk[]; };   // (B, kv_cap, Hkv, D), rows < Tk
layout(binding = 1) buffer DV { vec4 dv[]; };   // (B, kv_cap, Hkv, D), rows < Tk
layout(binding = 2) readonly buffer DO { vec4 dout[]; };  // (B, Tq, Hq, D)
layout(binding = 3) readonly buffer Q { vec4 q[]; };      // (B, Tq, Hq, D)
layout(binding = 4) readonly buffer K { vec4 k[]; };      // (B, kv_cap, Hkv, D)
layout(binding = 5) readonly buffer V { vec4 v[]; };      // (B, kv_cap, Hkv, D)
layout(binding = 6) readonly buffer O { vec4 o[]; };      // (B, Tq, Hq, D)
layout(binding = 7) readonly buffer Lse { float lse[]; }; // (B, Hq, Tq)

void main() {
  const uint hk = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint nrows = p.Tq * p.G;
  const uint j0w = gl_WorkGroupID.x * p.rows_per_group; /* first key of the workgroup */
  const uint lane = gl_SubgroupInvocationID;
  const float kscale = p.scale * LOG2E;

  uint key[ROWS], ko[ROWS];
  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    key[r] = j0w + r * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    ko[r] = key_off(b, hk, min(key[r], p.Tk - 1));
  }
  /* Row r sees key j iff j <= Tk - Tq + r / G: the first row seeing the
   * workgroup's first key is G * (j0w - (Tk - Tq)) (0 for cached keys). */
  const uint past = p.Tk - p.Tq;
  const uint rstart = j0w > past ? (j0w - past) * p.G : 0u;

  for (uint r0 = rstart; r0 < nrows; r0 += KB) {
    const uint myrow = min(r0 + lane, nrows - 1);
    const uint qo = row_off(b, hk, myrow);
    float s[ROWS][KB], dp[ROWS][KB];
    [[unroll]] for (uint r = 0; r < ROWS; r++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) { s[r][jj] = 0.0; dp[r][jj] = 0.0; }
    float di = 0.0;
    for (uint d = 0; d < D4; d++) {
      vec4 qv = q[qo + d], dov = dout[qo + d];
      di += dot(dov, o[qo + d]);
      vec4 kv[ROWS], vv[ROWS];
      [[unroll]] for (uint r = 0; r < ROWS; r++) {
        kv[r] = k[ko[r] + d];
        vv[r] = v[ko[r] + d];
      }
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        vec4 qb = subgroupBroadcast(qv, jj);
        vec4 db = subgroupBroadcast(dov, jj);
        [[unroll]] for (uint r = 0; r < ROWS; r++) {
          s[r][jj] += dot(kv[r], qb);
          dp[r][jj] += dot(vv[r], db);
        }
      }
    }
    const float lse2 = lse[lse_idx(b, hk, myrow)] * LOG2E;
    /* s becomes P, dp becomes scale * dS, ready to multiply dO and q. */
    [[unroll]] for (uint jj = 0; jj < KB; jj++) {
      const float lb = subgroupBroadcast(lse2, jj);
      const float db = subgroupBroadcast(di, jj);
      const uint row = r0 + jj;
      [[unroll]] for (uint r = 0; r < ROWS; r++) {
        bool vis = row < nrows && key[r] <= past + row / p.G;
        float pr = vis ? exp2(s[r][jj] * kscale - lb) : 0.0;
        s[r][jj] = pr;
        dp[r][jj] = pr * (dp[r][jj] - db) * p.scale;
      }
    }
    for (uint d = 0; d < D4; d++) {
      vec4 qv = q[qo + d], dov = dout[qo + d];
      vec4 ak[ROWS], av[ROWS];
      [[unroll]] for (uint r = 0; r < ROWS; r++) {
        ak[r] = r0 == rstart ? vec4(0.0) : dk[ko[r] + d];
        av[r] = r0 == rstart ? vec4(0.0) : dv[ko[r] + d];
      }
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        vec4 qb = subgroupBroadcast(qv, jj);
        vec4 db = subgroupBroadcast(dov, jj);
        [[unroll]] for (uint r = 0; r < ROWS; r++) {
          ak[r] += dp[r][jj] * qb;
          av[r] += s[r][jj] * db;
        }
      }
      [[unroll]] for (uint r = 0; r < ROWS; r++)
        if (key[r] < p.Tk) {
          dk[ko[r] + d] = ak[r];
          dv[ko[r] + d] = av[r];
        }
    }
  }
}
