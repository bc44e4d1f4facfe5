// gdn_chunk_fwd_save_tex.comp — pass 1 of the Gated DeltaNet backward on CPU
// devices: writes the same workspace as gdn_chunk_fwd_save (the state checkpoints
// S_n, the final state and the transformed values Vn), reading k and v as RGBA32F
// texel buffers (one texel = 4 consecutive floats; see host/ops_gdn.c).
//
// Why another kernel: lavapipe (Mesa 22.3) loads storage buffers and shared
// memory lane by lane, in a loop over the SIMD lanes, but fetches a texel with one
// vector gather; and the chunked form leans on shared memory (the C x C matrices,
// the Vn columns) and barriers. So this one walks the tokens one by one in the
// recurrent form, each invocation owning one column c of S in registers (KD/4
// vec4), with no shared memory and no barrier (columns never mix). Per token,
// with a = e^g:
//   u = beta (v - a S^T k),   S = a S + k u^T.
// u is the chunked form's Vn: over a chunk the recurrence unrolls to
// S_{n+1} = e^{gam_C} S_n + sum_i e^{gam_C - gam_i} k_i u_i^T with
// u = (I + A)^{-1} beta (V - e^gam K S_n), the forward substitution of
// gdn_chunk_fwd, so the backward passes read the same quantities (equal up to
// rounding).
//
// A dispatch takes chunks [p.n0, p.n1) of every sequence (lavapipe ends an
// invocation after 65535 loop iterations, one per token here): it starts from
// state_in (n0 = 0) or from the checkpoint S_n0 the previous dispatch wrote.
// Needs K % 4 == 0, V % 4 == 0 and K <= 128 (the KD/4-trip loops unroll, keeping
// S in registers and the loop count at one per token).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint KD = 64;
layout(local_size_x_id = 0) in;
const uint K4 = KD / 4;

layout(std430, binding = 0) buffer WS { float ws[]; };
layout(binding = 1) uniform samplerBuffer Kt;                 // (Ttot, H, K)
layout(binding = 2) uniform samplerBuffer Vt;                 // (Ttot, H, V)
layout(std430, binding = 3) readonly buffer G { float g[]; }; // (Ttot, H)
layout(std430, binding = 4) readonly buffer Be { float beta_[]; };
layout(std430, binding = 5) readonly buffer SI { float state_in[]; }; // (B, H, K, V)
layout(std430, binding = 6) readonly buffer Off { int offsets[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_chunk p; };

// Per-invocation arrays at module scope, as in gdn_chunk_bwd_dqk.comp (lavapipe
// re-allocates an array declared inside a loop on its coroutine stack every
// iteration).
vec4 S[K4], kt[K4];

// Column c of S at float offset base (stride V) into ws.
void store_state(uint base) {
  [[unroll]] for (uint x = 0; x < K4; x++) {
    ws[base + (4 * x) * p.V] = S[x].x;
    ws[base + (4 * x + 1) * p.V] = S[x].y;
    ws[base + (4 * x + 2) * p.V] = S[x].z;
    ws[base + (4 * x + 3) * p.V] = S[x].w;
  }
}

void main() {
  uint b = gl_WorkGroupID.z, h = gl_WorkGroupID.y;
  uint c = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x;
  if (c >= p.V) return;
  uint bos = uint(offsets[b]), eos = uint(offsets[b + 1]);
  uint nch = (eos - bos + C - 1) / C, slot0 = bos / C + 2u * b;
  if (p.n0 > 0u && p.n0 >= nch) return; // done by earlier dispatches
  uint n1 = min(p.n1, nch), KV = p.K * p.V, V4 = p.V / 4, cv = c & 3u;

  if (p.n0 > 0u) {
    uint cp = p.ws_s + ((slot0 + p.n0) * p.H + h) * KV + c;
    [[unroll]] for (uint x = 0; x < K4; x++)
      S[x] = vec4(ws[cp + (4 * x) * p.V], ws[cp + (4 * x + 1) * p.V],
                  ws[cp + (4 * x + 2) * p.V], ws[cp + (4 * x + 3) * p.V]);
  } else {
    uint sb = (b * p.H + h) * KV + c;
    [[unroll]] for (uint x = 0; x < K4; x++)
      S[x] = p.has_in != 0u
                 ? vec4(state_in[sb + (4 * x) * p.V], state_in[sb + (4 * x + 1) * p.V],
                        state_in[sb + (4 * x + 2) * p.V], state_in[sb + (4 * x + 3) * p.V])
                 : vec4(0.0);
  }

  for (uint n = p.n0; n < n1; n++) {
    store_state(p.ws_s + ((slot0 + n) * p.H + h) * KV + c);
    uint t0 = bos + n * C, t1 = min(t0 + C, eos);
    for (uint t = t0; t < t1; t++) {
      uint th = t * p.H + h, rk = th * K4;
      float al = exp(g[th]);
      vec4 a = vec4(0.0);
      [[unroll]] for (uint x = 0; x < K4; x++) {
        kt[x] = texelFetch(Kt, int(rk + x));
        a += S[x] * kt[x];
      }
      float vc = texelFetch(Vt, int(th * V4 + (c >> 2)))[cv];
      float u = beta_[th] * (vc - al * ((a.x + a.y) + (a.z + a.w)));
      [[unroll]] for (uint x = 0; x < K4; x++) S[x] = al * S[x] + kt[x] * u;
      ws[p.ws_vn + th * p.V + c] = u;
    }
  }
  // The state after chunk n1 - 1: S_n1 for the next dispatch, or the final state.
  store_state(p.ws_s + ((slot0 + n1) * p.H + h) * KV + c);
}
