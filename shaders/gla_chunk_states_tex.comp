/* gla_chunk_states_tex.comp — the GLA backward's recompute pass on CPU devices:
 * the twin of gla_chunk_states (same state slots up to rounding), reading k, v,
 * gk and the prep pass's b and k e^{-b} as RGBA32F texel buffers (see
 * gla_chunk_fwd_tex.comp for why). Writes the state entering every chunk and each
 * sequence's final state into workspace slots (push_gla.h). Each invocation owns
 * four columns of S in registers and walks the tokens, no shared memory, no
 * barrier. Per chunk, with L its last token, where e^{-b_j} <= e^{-b_L} <= e^{60}
 * in every k (the same for all invocations):
 *   S <- diag(e^{b_L}) (S + sum_j (k_j e^{-b_j}) v_j^T)
 * (one multiply-add per state element and token, no exponential); otherwise the
 * recurrent form S_t = diag(e^{gk_t}) S_{t-1} + k_t v_t^T. A dispatch takes chunks
 * [p.n_begin, p.n_end) (lavapipe's loop limit; the host sizes the window) and,
 * with DTR_GLA_CARRY, starts from the slot the previous one wrote.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 8;
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint K = 64;
layout(constant_id = 3) const uint V = 64;
const uint K4 = K / 4;

layout(push_constant) uniform PC { dtr_pc_gla_chunk p; };

layout(std430, binding = 0) buffer WSbuf { vec4 wsS4[]; };
layout(binding = 1) uniform samplerBuffer Kt;  /* (Ttot, H, K) */
layout(binding = 2) uniform samplerBuffer Vt;  /* (Ttot, H, V) */
layout(binding = 3) uniform samplerBuffer Gt;  /* (Ttot, H, K) */
layout(std430, binding = 4) readonly buffer SIbuf { vec4 si4[]; };
layout(std430, binding = 5) readonly buffer Offbuf { int offs[]; };
layout(binding = 6) uniform samplerBuffer Bt;  /* wsB (Ttot, H, K) */
layout(binding = 7) uniform samplerBuffer KEt; /* wsK = k e^{-b} (Ttot, H, K) */

vec4 S[K]; /* row k of S, my four columns */

void main() {
  const uint h = gl_WorkGroupID.y, b = gl_WorkGroupID.z;
  const uint vq = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x;
  const uint H = p.H, V4 = V / 4;
  const uint t0 = uint(offs[b]), T = uint(offs[b + 1]) - t0;
  const uint nchunks = (T + C - 1) / C, slot0 = t0 / C + 2u * b;
  const uint nb = min(p.n_begin, nchunks), ne = min(p.n_end, nchunks);

  if (vq >= V4) return;
  if ((p.flags & DTR_GLA_CARRY) != 0u) {
    const uint cb = ((slot0 + nb) * H + h) * K * V4 + vq;
    [[unroll]] for (uint x = 0; x < K4; ++x)
      [[unroll]] for (uint c = 0; c < 4; ++c) S[4 * x + c] = wsS4[cb + (4 * x + c) * V4];
  } else if ((p.flags & DTR_GLA_STATE_IN) != 0u) {
    const uint sb = (b * H + h) * K * V4 + vq;
    [[unroll]] for (uint x = 0; x < K4; ++x)
      [[unroll]] for (uint c = 0; c < 4; ++c) S[4 * x + c] = si4[sb + (4 * x + c) * V4];
  } else {
    [[unroll]] for (uint x = 0; x < K4; ++x)
      [[unroll]] for (uint c = 0; c < 4; ++c) S[4 * x + c] = vec4(0.0);
  }
  for (uint n = nb; n < ne; ++n) {
    const uint cb = ((slot0 + n) * H + h) * K * V4 + vq;
    [[unroll]] for (uint x = 0; x < K4; ++x)
      [[unroll]] for (uint c = 0; c < 4; ++c) wsS4[cb + (4 * x + c) * V4] = S[4 * x + c];
    const uint c0 = t0 + n * C, c1 = t0 + min(n * C + C, T);
    const uint lrow = ((c1 - 1) * H + h) * K4;
    vec4 bmin = vec4(0.0);
    [[unroll]] for (uint x = 0; x < K4; ++x) bmin = min(bmin, texelFetch(Bt, int(lrow + x)));
    if (all(greaterThanEqual(bmin, vec4(-60.0)))) {
      /* S <- diag(e^{b_L}) (S + sum_j (k_j e^{-b_j}) v_j^T): e^{-b_j} <= e^{60} */
      for (uint t = c0; t < c1; ++t) {
        const uint r = t * H + h;
        const vec4 vt = texelFetch(Vt, int(r * V4 + vq));
        [[unroll]] for (uint x = 0; x < K4; ++x) {
          const vec4 ke = texelFetch(KEt, int(r * K4 + x));
          S[4 * x] += ke.x * vt;
          S[4 * x + 1] += ke.y * vt;
          S[4 * x + 2] += ke.z * vt;
          S[4 * x + 3] += ke.w * vt;
        }
      }
      [[unroll]] for (uint x = 0; x < K4; ++x) {
        const vec4 d = exp(texelFetch(Bt, int(lrow + x)));
        S[4 * x] *= d.x;
        S[4 * x + 1] *= d.y;
        S[4 * x + 2] *= d.z;
        S[4 * x + 3] *= d.w;
      }
    } else {
      /* token by token: S <- diag(e^{gk_t}) S + k_t v_t^T */
      for (uint t = c0; t < c1; ++t) {
        const uint r = t * H + h;
        const vec4 vt = texelFetch(Vt, int(r * V4 + vq));
        [[unroll]] for (uint x = 0; x < K4; ++x) {
          const int ri = int(r * K4 + x);
          const vec4 a = exp(texelFetch(Gt, ri)), kt = texelFetch(Kt, ri);
          S[4 * x] = a.x * S[4 * x] + kt.x * vt;
          S[4 * x + 1] = a.y * S[4 * x + 1] + kt.y * vt;
          S[4 * x + 2] = a.z * S[4 * x + 2] + kt.z * vt;
          S[4 * x + 3] = a.w * S[4 * x + 3] + kt.w * vt;
        }
      }
    }
  }
  const uint fb = ((slot0 + ne) * H + h) * K * V4 + vq;
  [[unroll]] for (uint x = 0; x < K4; ++x)
    [[unroll]] for (uint c = 0; c < 4; ++c) wsS4[fb + (4 * x + c) * V4] = S[4 * x + c];
}
