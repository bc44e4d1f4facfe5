// gdn_chunk_bwd_dv_tex.comp — pass 2 of the Gated DeltaNet backward on CPU
// devices: the same outputs as gdn_chunk_bwd_dv (dv, dR, the dS_{n+1} checkpoints
// and dstate_in), reading dout, q and k as RGBA32F texel buffers. Like
// gdn_chunk_fwd_save_tex (which says why) it walks the tokens one by one, here
// backwards, each invocation owning column c of dS in registers. At token t,
// with dS the gradient w.r.t. S_t and a = e^g, the forward step
//   u = beta (v - a S_{t-1}^T k),  S_t = a S_{t-1} + k u^T,  o = scale S_t^T q
// gives
//   dS += scale q do_c            (o reads S_t)
//   du  = k . dS                  (the whole gradient w.r.t. u_t = Vn_t, so du is
//                                  the chunked form's dR = (I + A)^{-T} dVn)
//   dv  = beta du
//   dS <- a (dS - beta du k)      (the gradient w.r.t. S_{t-1})
//
// A dispatch takes chunks [p.n0, p.n1) of every sequence, last chunk first; the
// host runs the dispatches from the last window back. It starts from dstate_out
// when the sequence ends in its window, else from the gradient w.r.t. S_n1 that
// the later dispatch left in chunk n1 - 1's checkpoint slot. Needs K % 4 == 0,
// V % 4 == 0 and K <= 128.
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint KD = 64;
layout(local_size_x_id = 0) in;
const uint K4 = KD / 4;

layout(std430, binding = 0) writeonly buffer DV { float dv[]; };      // (Ttot, H, V)
layout(std430, binding = 1) buffer WS { float ws[]; };
layout(std430, binding = 2) writeonly buffer DSI { float dstate_in[]; }; // (B, H, K, V)
layout(binding = 3) uniform samplerBuffer DOt;                        // (Ttot, H, V)
layout(std430, binding = 4) readonly buffer DSO { float dstate_out[]; };
layout(binding = 5) uniform samplerBuffer Qt;                         // (Ttot, H, K)
layout(binding = 6) uniform samplerBuffer Kt;                         // (Ttot, H, K)
layout(std430, binding = 7) readonly buffer G { float g[]; };         // (Ttot, H)
layout(std430, binding = 8) readonly buffer Be { float beta_[]; };
layout(std430, binding = 9) readonly buffer Off { int offsets[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_chunk p; };

// Per-invocation arrays at module scope, as in gdn_chunk_bwd_dqk.comp (lavapipe
// re-allocates an array declared inside a loop on its coroutine stack every
// iteration).
vec4 dS[K4], kt[K4];

// Column c of dS at float offset base (stride V) into ws.
void store_state(uint base) {
  [[unroll]] for (uint x = 0; x < K4; x++) {
    ws[base + (4 * x) * p.V] = dS[x].x;
    ws[base + (4 * x + 1) * p.V] = dS[x].y;
    ws[base + (4 * x + 2) * p.V] = dS[x].z;
    ws[base + (4 * x + 3) * p.V] = dS[x].w;
  }
}

void main() {
  uint b = gl_WorkGroupID.z, h = gl_WorkGroupID.y;
  uint c = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x;
  if (c >= p.V) return;
  uint bos = uint(offsets[b]), eos = uint(offsets[b + 1]);
  uint nch = (eos - bos + C - 1) / C, slot0 = bos / C + 2u * b;
  if (p.n0 > 0u && p.n0 >= nch) return; // nothing of this sequence in the window
  uint KV = p.K * p.V, V4 = p.V / 4, cv = c & 3u;

  if (p.n1 < nch) {
    uint cp = p.ws_ds + ((slot0 + p.n1 - 1u) * p.H + h) * KV + c;
    [[unroll]] for (uint x = 0; x < K4; x++)
      dS[x] = vec4(ws[cp + (4 * x) * p.V], ws[cp + (4 * x + 1) * p.V],
                   ws[cp + (4 * x + 2) * p.V], ws[cp + (4 * x + 3) * p.V]);
  } else {
    uint sb = (b * p.H + h) * KV + c;
    [[unroll]] for (uint x = 0; x < K4; x++)
      dS[x] = p.has_in != 0u
                  ? vec4(dstate_out[sb + (4 * x) * p.V], dstate_out[sb + (4 * x + 1) * p.V],
                         dstate_out[sb + (4 * x + 2) * p.V], dstate_out[sb + (4 * x + 3) * p.V])
                  : vec4(0.0);
  }

  for (uint n = min(p.n1, nch); n > p.n0;) {
    n--;
    store_state(p.ws_ds + ((slot0 + n) * p.H + h) * KV + c);
    uint t0 = bos + n * C, t1 = min(t0 + C, eos);
    for (uint t = t1; t > t0;) {
      t--;
      uint th = t * p.H + h, rk = th * K4, tv = th * p.V + c;
      float w = p.scale * texelFetch(DOt, int(th * V4 + (c >> 2)))[cv];
      vec4 a = vec4(0.0);
      [[unroll]] for (uint x = 0; x < K4; x++) {
        dS[x] += texelFetch(Qt, int(rk + x)) * w;
        kt[x] = texelFetch(Kt, int(rk + x));
        a += kt[x] * dS[x];
      }
      float du = (a.x + a.y) + (a.z + a.w), bt = beta_[th], bdu = bt * du;
      dv[tv] = bdu;
      ws[p.ws_dr + tv] = du;
      float al = exp(g[th]);
      [[unroll]] for (uint x = 0; x < K4; x++) dS[x] = al * (dS[x] - kt[x] * bdu);
    }
  }
  // The gradient w.r.t. S_n0: chunk n0 - 1's checkpoint for the next dispatch, or
  // dstate_in after the first chunk.
  if (p.n0 > 0u)
    store_state(p.ws_ds + ((slot0 + p.n0 - 1u) * p.H + h) * KV + c);
  else if (p.has_out != 0u) {
    uint sb = (b * p.H + h) * KV + c;
    [[unroll]] for (uint x = 0; x < K4; x++) {
      dstate_in[sb + (4 * x) * p.V] = dS[x].x;
      dstate_in[sb + (4 * x + 1) * p.V] = dS[x].y;
      dstate_in[sb + (4 * x + 2) * p.V] = dS[x].z;
      dstate_in[sb + (4 * x + 3) * p.V] = dS[x].w;
    }
  }
}
