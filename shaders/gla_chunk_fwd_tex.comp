/* gla_chunk_fwd_tex.comp — GLA forward on CPU devices: the twin of gla_chunk_fwd
 * (same outputs up to rounding), reading q, k, v and gk as RGBA32F texel buffers
 * (one texel = 4 consecutive floats; see host/ops_gla.c).
 *
 * Why another kernel: lavapipe (Mesa 22.3) loads storage buffers and shared
 * memory lane by lane, in a loop over the SIMD lanes, but fetches a texel with one
 * vector gather; and the chunked form leans on shared memory and barriers. So
 * this one walks the tokens one by one in the recurrent form
 *   S_t = diag(e^{gk_t}) S_{t-1} + k_t v_t^T,   o_t = S_t^T (s q_t)
 * each invocation owning four columns of S (one v texel) in registers, with no
 * shared memory and no barrier (columns never mix). Owning four columns rather
 * than one shares each token's K exponentials and its q, k, gk fetches among
 * them. No e^{b_t - b_j} is ever formed, so nothing can overflow.
 *
 * A dispatch takes chunks [p.n_begin, p.n_end) of every sequence (lavapipe ends
 * an invocation after 65535 loop iterations, one per token here) and starts from
 * state_in (flag DTR_GLA_STATE_IN) — which the host binds to state_out for
 * every window after the first. Needs K % 4 == 0, V % 4 == 0 and K <= 128 (the
 * K/4-trip loops unroll, keeping S in registers).
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 8;  /* invocations per workgroup */
layout(constant_id = 1) const uint C = 64;  /* chunk: the unit of p.n_begin, p.n_end */
layout(constant_id = 2) const uint K = 64;  /* multiple of 4 */
layout(constant_id = 3) const uint V = 64;  /* multiple of 4 */
const uint K4 = K / 4;

layout(push_constant) uniform PC { dtr_pc_gla_chunk p; };

layout(std430, binding = 0) writeonly buffer Obuf { vec4 o4[]; };    /* (Ttot, H, V) */
layout(std430, binding = 1) buffer SObuf { vec4 so4[]; };            /* (B, H, K, V) */
layout(binding = 2) uniform samplerBuffer Qt;                        /* (Ttot, H, K) */
layout(binding = 3) uniform samplerBuffer Kt;                        /* (Ttot, H, K) */
layout(binding = 4) uniform samplerBuffer Vt;                        /* (Ttot, H, V) */
layout(binding = 5) uniform samplerBuffer Gt;                        /* (Ttot, H, K) */
layout(std430, binding = 6) readonly buffer SIbuf { vec4 si4[]; };   /* (B, H, K, V) */
layout(std430, binding = 7) readonly buffer Offbuf { int offs[]; };

/* Per-invocation state at module scope (lavapipe re-allocates arrays declared
 * inside loops every iteration). S[k] = row k of S, my four columns. */
vec4 S[K];

void main() {
  const uint h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint vq = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x;
  const uint V4 = V / 4;
  if (vq >= V4) return;
  const uint H = p.H;
  const uint t0 = uint(offs[b]), T = uint(offs[b + 1]) - t0;
  const uint nchunks = (T + C - 1) / C;
  if (p.n_begin > 0u && p.n_begin >= nchunks) return; /* done by earlier windows */
  const uint sbase = (b * H + h) * K * V4 + vq;

  if ((p.flags & DTR_GLA_STATE_IN) != 0u) {
    [[unroll]] for (uint x = 0; x < K4; ++x)
      [[unroll]] for (uint c = 0; c < 4; ++c) S[4 * x + c] = si4[sbase + (4 * x + c) * V4];
  } else {
    [[unroll]] for (uint x = 0; x < K4; ++x)
      [[unroll]] for (uint c = 0; c < 4; ++c) S[4 * x + c] = vec4(0.0);
  }

  const uint tb = t0 + p.n_begin * C, te = t0 + min(T, min(p.n_end, nchunks) * C);
  const float s = p.scale;
  for (uint t = tb; t < te; ++t) {
    const uint r = t * H + h;
    const vec4 vt = texelFetch(Vt, int(r * V4 + vq));
    vec4 acc = vec4(0.0);
    [[unroll]] for (uint x = 0; x < K4; ++x) {
      const int ri = int(r * K4 + x);
      const vec4 a = exp(texelFetch(Gt, ri)), kt = texelFetch(Kt, ri), qt = texelFetch(Qt, ri);
      S[4 * x] = a.x * S[4 * x] + kt.x * vt;
      S[4 * x + 1] = a.y * S[4 * x + 1] + kt.y * vt;
      S[4 * x + 2] = a.z * S[4 * x + 2] + kt.z * vt;
      S[4 * x + 3] = a.w * S[4 * x + 3] + kt.w * vt;
      acc += qt.x * S[4 * x] + qt.y * S[4 * x + 1] + qt.z * S[4 * x + 2] + qt.w * S[4 * x + 3];
    }
    o4[r * V4 + vq] = s * acc;
  }
  if ((p.flags & DTR_GLA_STATE_OUT) != 0u)
    [[unroll]] for (uint x = 0; x < K4; ++x)
      [[unroll]] for (uint c = 0; c < 4; ++c) so4[sbase + (4 * x + c) * V4] = S[4 * x + c];
}
