/* gla_chunk_prep_tex.comp — first pass of the GLA backward on CPU devices: per
 * chunk the in-chunk cumulative log-decays b (wsB, as gla_chunk_states writes
 * them) and, for the passes after it, q e^{b} (wsQ) and k e^{-b} (wsK), all
 * (Ttot, H, K). These hold the only exponentials the token pairs need (the later
 * passes split e^{b_t - b_j} as e^{b_t} e^{-b_j} where that cannot overflow, and
 * never read wsK elsewhere: it overflows where a chunk decays past e^{-88}).
 * One workgroup per (chunk slot, head) as gla_chunk_bwd lays them out, four k
 * per invocation, a sequential sum over the chunk's tokens (same order as
 * gla_chunk_states); q, k, gk read as RGBA32F texel buffers.
 */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 16; /* >= K / 4 */
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint K = 64;
layout(constant_id = 3) const uint V = 64;
const uint K4 = K / 4;

layout(push_constant) uniform PC { dtr_pc_gla_chunk p; };

layout(std430, binding = 0) writeonly buffer WBbuf { vec4 wsB4[]; };
layout(std430, binding = 1) writeonly buffer WQbuf { vec4 wsQ4[]; };
layout(std430, binding = 2) writeonly buffer WKbuf { vec4 wsK4[]; };
layout(binding = 3) uniform samplerBuffer Qt; /* (Ttot, H, K) */
layout(binding = 4) uniform samplerBuffer Kt; /* (Ttot, H, K) */
layout(binding = 5) uniform samplerBuffer Gt; /* (Ttot, H, K) */
layout(std430, binding = 6) readonly buffer Offbuf { int offs[]; };

void main() {
  const uint x = gl_WorkGroupID.x, h = gl_WorkGroupID.y, kq = gl_LocalInvocationID.x;
  if (kq >= K4) return;
  const uint H = p.H;
  /* which sequence and chunk: the largest b with floor(offs[b]/C) + b <= x */
  uint lo = 0, hi = p.B - 1;
  while (lo < hi) {
    const uint mid = (lo + hi + 1) / 2;
    if (uint(offs[mid]) / C + mid <= x) lo = mid;
    else hi = mid - 1;
  }
  const uint b = lo, t0 = uint(offs[b]), T = uint(offs[b + 1]) - t0;
  const uint n = x - (t0 / C + b);
  if (n * C >= T) return; /* a slot past this sequence's chunks */
  vec4 g = vec4(0.0);
  for (uint t = n * C; t < min(n * C + C, T); ++t) {
    const uint r = ((t0 + t) * H + h) * K4 + kq;
    g += texelFetch(Gt, int(r));
    wsB4[r] = g;
    wsQ4[r] = texelFetch(Qt, int(r)) * exp(g);
    wsK4[r] = texelFetch(Kt, int(r)) * exp(-g);
  }
}
