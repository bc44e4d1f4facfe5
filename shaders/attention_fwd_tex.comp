#version 450
/* attention_fwd_tex.comp — causal GQA attention forward reading q, k, v as
 * RGBA32F texel buffers (one texel = 4 consecutive floats of the head dim),
 * the path chosen on CPU devices (see host/ops_attention.c).
 *
 * Why a second kernel: llvmpipe turns every storage-buffer load with a
 * per-lane address into a per-lane loop with a bounds check, while a texel
 * fetch is one vector gather. So here nothing is shared between lanes at all:
 * each invocation owns ROWS consecutive rows (attention_common.glsl's row
 * numbering, so the G query heads of one position sit side by side and share
 * keys) and keeps their pre-scaled queries and output accumulators in
 * registers as D/4 vec4 each. It walks the keys in blocks of KB, fetching each
 * key's and value's D/4 texels once for all its ROWS rows: per block the KB
 * scores of each row (base 2: q is scaled by scale*log2 e), one online-softmax
 * update (running max m, running sum l, rescale of the accumulator by
 * alpha = 2^(m_old - m_new)), then the p-weighted values. Keys past a row's
 * causal limit get p = 0. lse = (m + log2 l) ln 2 is kept for the backward.
 */
#include "attention_common.glsl"

layout(binding = 0) writeonly buffer Out { vec4 o[]; };   // (B, Tq, Hq, D)
layout(binding = 1) writeonly buffer Lse { float lse[]; }; // (B, Hq, Tq)
layout(binding = 2) uniform samplerBuffer Q;               // (B, Tq, Hq, D)
layout(binding = 3) uniform samplerBuffer K;               // (B, kv_cap, Hkv, D)
layout(binding = 4) uniform samplerBuffer V;               // (B, kv_cap, Hkv, D)

void main() {
  const uint hk = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint nrows = p.Tq * p.G;
  const uint rbase = gl_WorkGroupID.x * p.rows_per_group + gl_LocalInvocationID.x * ROWS;
  const float qscale = p.scale * LOG2E;

  vec4 qr[ROWS][D4], acc[ROWS][D4];
  float m[ROWS], l[ROWS];
  uint last[ROWS];
  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    const uint row = min(rbase + r, nrows - 1); /* tail rows compute, never store */
    const uint qo = row_off(b, hk, row);
    [[unroll]] for (uint d = 0; d < D4; d++) {
      qr[r][d] = texelFetch(Q, int(qo + d)) * qscale;
      acc[r][d] = vec4(0.0);
    }
    m[r] = -1.0 / 0.0;
    l[r] = 0.0;
    last[r] = row_last_key(row);
  }
  /* Rows grow along the lane, so its last row sees the most keys. */
  const uint jend = last[ROWS - 1] + 1;

  for (uint j0 = 0; j0 < jend; j0 += KB) {
    int ko[KB];
    [[unroll]] for (uint jj = 0; jj < KB; jj++)
      ko[jj] = int(key_off(b, hk, min(j0 + jj, p.Tk - 1)));
    float s[ROWS][KB];
    [[unroll]] for (uint r = 0; r < ROWS; r++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) s[r][jj] = 0.0;
    [[unroll]] for (uint d = 0; d < D4; d++)
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        const vec4 kt = texelFetch(K, ko[jj] + int(d));
        [[unroll]] for (uint r = 0; r < ROWS; r++) s[r][jj] += dot(qr[r][d], kt);
      }
    float alpha[ROWS];
    [[unroll]] for (uint r = 0; r < ROWS; r++) {
      float mn = m[r];
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        s[r][jj] = (j0 + jj > last[r]) ? -1.0 / 0.0 : s[r][jj];
        mn = max(mn, s[r][jj]);
      }
      alpha[r] = exp2(m[r] - mn); /* first block: 2^-inf = 0 on a zero accumulator */
      float sum = 0.0;
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        s[r][jj] = exp2(s[r][jj] - mn);
        sum += s[r][jj];
      }
      l[r] = l[r] * alpha[r] + sum;
      m[r] = mn;
    }
    [[unroll]] for (uint d = 0; d < D4; d++) {
      [[unroll]] for (uint r = 0; r < ROWS; r++) acc[r][d] *= alpha[r];
      [[unroll]] for (uint jj = 0; jj < KB; jj++) {
        const vec4 vt = texelFetch(V, ko[jj] + int(d));
        [[unroll]] for (uint r = 0; r < ROWS; r++) acc[r][d] += s[r][jj] * vt;
      }
    }
  }

  [[unroll]] for (uint r = 0; r < ROWS; r++) {
    const uint row = rbase + r;
    if (row < nrows) {
      const uint qo = row_off(b, hk, row);
      const float inv = 1.0 / l[r];
      [[unroll]] for (uint d = 0; d < D4; d++) o[qo + d] = acc[r][d] * inv;
      lse[lse_idx(b, hk, row)] = (m[r] + log2(l[r])) * LN2;
    }
  }
}
