#version 450
/* attention_bwd_dkdv_tex.comp — causal GQA attention backward, the key side,
 * reading dO, q, k, v, O as RGBA32F texel buffers (the CPU path; see
 * attention_fwd_tex.comp for why texels, and attention_bwd_dkdv.comp for the
 * derivation: dv_j = sum_i P_ij dO_i, dk_j = scale sum_i dS_ij q_i over every
 * row i of the G query heads that sees key j, in a fixed order).
 *
 * Each invocation owns ROWS consecutive keys with their k (pre-scaled by
 * scale*log2 e), v and the dk, dv accumulators in registers (D/4 vec4 each)
 * and walks the query rows that see its first key in blocks of KB, each q, dO
 * texel fetched once for all its keys. D_i = dO_i . O_i is rebuilt per row
 * from O (one more fetch per texel of dO) since the op keeps no scratch.
 */
#include "attention_common.glsl"

layout(binding = 0) writeonly buffer DK { vec4 dk[]; };   // (B, kv_cap, Hkv, D), rows < Tk
layout(binding = 1) writeonly buffer DV { vec4 dv[]; };   // (B, kv_cap, Hkv, D), rows < Tk
layout(binding = 2) uniform samplerBuffer DO;              // (B, Tq, Hq, D)
layout(binding = 3) uniform samplerBuffer Q;               // (B, Tq, Hq, D)
layout(binding = 4) uniform samplerBuffer K;               // (B, kv_cap, Hkv, D)
layout(binding = 5) uniform samplerBuffer V;               // (B, kv_cap, Hkv, D)
layout(binding = 6) uniform samplerBuffer O;               // (B, Tq, Hq, D)
layout(binding = 7) readonly buffer Lse { float lse[]; };  // (B, Hq, Tq)

void main() {
  const uint hk = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint nrows = p.Tq * p.G;
  const uint kbase = gl_WorkGroupID.x * p.rows_per_group + gl_LocalInvocationID.x * ROWS;
  const float kscale = p.scale * LOG2E;
  const uint past = p.Tk - p.Tq;

  vec4 kr[ROWS][D4], vr[ROWS][D4], ak[ROWS][D4], av[ROWS][D4];
  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    const int ko = int(key_off(b, hk, min(kbase + r, p.Tk - 1))); /* tail keys never store */
    [[unroll]] for (uint d = 0; d < D4; d++) {
      kr[r][d] = texelFetch(K, ko + int(d)) * kscale;
      vr[r][d] = texelFetch(V, ko + int(d));
      ak[r][d] = vec4(0.0);
      av[r][d] = vec4(0.0);
    }
  }
  /* Row i sees key j iff j <= past + i / G: the first row seeing the lane's
   * first key is G * (kbase - past) (0 for cached keys). */
  const uint rstart = kbase > past ? (kbase - past) * p.G : 0u;

  for (uint r0 = rstart; r0 < nrows; r0 += KB) {
    int qo[KB];
    float lb[KB], db[KB];
    [[unroll]] for (uint jj = 0; jj < KB; jj++) {
      const uint row = min(r0 + jj, nrows - 1);
      qo[jj] = int(row_off(b, hk, row));
      lb[jj] = lse[lse_idx(b, hk, row)] * LOG2E;
      db[jj] = 0.0;
    }
    float s[ROWS][KB], dp[ROWS][KB];
    [[unroll]] for (uint r = 0; r < ROWS; r++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) { s[r][jj] = 0.0; dp[r][jj] = 0.0; }
    [[unroll]] for (uint d = 0; d < D4; d++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        const vec4 qt = texelFetch(Q, qo[jj] + int(d)), dt = texelFetch(DO, qo[jj] + int(d));
        db[jj] += dot(dt, texelFetch(O, qo[jj] + int(d)));
        [[unroll]] for (uint r = 0; r < ROWS; r++) {
          s[r][jj] += dot(kr[r][d], qt);
          dp[r][jj] += dot(vr[r][d], dt);
        }
      }
    /* s becomes P, dp becomes scale * dS, ready to multiply dO and q. */
    [[unroll]] for (uint jj = 0; jj < KB; jj++) {
      const uint row = r0 + jj;
      [[unroll]] for (uint r = 0; r < ROWS; r++) {
        const bool vis = row < nrows && kbase + r <= past + row / p.G;
        const float pr = vis ? exp2(s[r][jj] - lb[jj]) : 0.0;
        s[r][jj] = pr;
        dp[r][jj] = pr * (dp[r][jj] - db[jj]) * p.scale;
      }
    }
    [[unroll]] for (uint d = 0; d < D4; d++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        const vec4 qt = texelFetch(Q, qo[jj] + int(d)), dt = texelFetch(DO, qo[jj] + int(d));
        [[unroll]] for (uint r = 0; r < ROWS; r++) {
          ak[r][d] += dp[r][jj] * qt;
          av[r][d] += s[r][jj] * dt;
        }
      }
  }

  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    const uint key = kbase + r;
    if (key < p.Tk) {
      const uint ko = key_off(b, hk, key);
      [[unroll]] for (uint d = 0; d < D4; d++) {
        dk[ko + d] = ak[r][d];
        dv[ko + d] = av[r][d];
      }
    }
  }
}
