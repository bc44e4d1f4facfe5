// gdn_decode_fused.comp — a whole Gated DeltaNet decode step of one sequence in
// one dispatch, for CPU devices where each dispatch costs far more than this
// work: from the projections [q|k|v] and [a|b] of the token, per head,
//   q, k, v = silu(short conv over (cache rows, x)) (the caches roll by one),
//   q, k    = L2-normalised,  g = -exp(A_log) softplus(a + dt_bias),  beta = sigmoid(b),
//   S' = e^g S;  u = beta (v - S'^T k);  S = S' + k u^T;  o = S^T (scale q),
//   out = o rstd w silu(gate),  rstd = 1/sqrt(mean(o^2) + eps).
// The same steps as shortconv_decode, l2norm_fwd, gdn_gate_fwd, gdn_decode and
// gated_rmsnorm_fwd, in the same order of operations. One invocation per head
// owns it all: its head's vectors stay in registers, no shared memory, no barrier.
// The weights come from the block's parameter buffer at float offsets. Columns
// of the state go two at a time; the s16 variant keeps it as packed fp16
// (state_store.glsl).
//! variant s16 -DS16=1
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"
#include "gdn_gate_common.glsl"

layout(constant_id = 0) const uint WG = 8;
layout(constant_id = 1) const uint KD = 32;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) writeonly buffer Out { float out_[]; }; // (HD)
#include "state_store.glsl"                                         // (H, KD, KD)
layout(std430, binding = 2) buffer Cq { float cq[]; };              // (3, HD)
layout(std430, binding = 3) buffer Ck { float ck[]; };
layout(std430, binding = 4) buffer Cv { float cv[]; };
layout(std430, binding = 5) readonly buffer Qkv { float qkv[]; };   // [q | k | v] (3 HD)
layout(std430, binding = 6) readonly buffer Ab { float ab[]; };     // [a | b] (2 H)
layout(std430, binding = 7) readonly buffer Gt { float gate[]; };   // (HD)
layout(std430, binding = 8) readonly buffer Prm { float prm[]; };   // block parameters
layout(push_constant) uniform PC { dtr_pc_gdn_decode_fused p; };

float silu1(float y) { return y / (1.0 + exp(-y)); }

/* Channel c of input j (0 q, 1 k, 2 v): the conv over the cache rows and x, the
 * cache rolled. */
float conv_step(uint j, uint c) {
  uint HD = p.H * KD;
  float xt = qkv[j * HD + c];
  vec4 w = vec4(prm[p.off_conv + (j * HD + c) * 4u], prm[p.off_conv + (j * HD + c) * 4u + 1u],
                prm[p.off_conv + (j * HD + c) * 4u + 2u], prm[p.off_conv + (j * HD + c) * 4u + 3u]);
  float h0, h1, h2;
  if (j == 0u) { h0 = cq[c]; h1 = cq[HD + c]; h2 = cq[2u * HD + c]; cq[c] = h1; cq[HD + c] = h2; cq[2u * HD + c] = xt; }
  else if (j == 1u) { h0 = ck[c]; h1 = ck[HD + c]; h2 = ck[2u * HD + c]; ck[c] = h1; ck[HD + c] = h2; ck[2u * HD + c] = xt; }
  else { h0 = cv[c]; h1 = cv[HD + c]; h2 = cv[2u * HD + c]; cv[c] = h1; cv[HD + c] = h2; cv[2u * HD + c] = xt; }
  return silu1(w.x * h0 + w.y * h1 + w.z * h2 + w.w * xt);
}

void main() {
  uint h = gl_GlobalInvocationID.x;
  if (h >= p.H) return;
  uint c0 = h * KD;
  float q[KD], k[KD], v[KD], o[KD];
  float sq = 0.0, sk = 0.0;
  for (uint x = 0u; x < KD; x++) {
    q[x] = conv_step(0u, c0 + x);
    k[x] = conv_step(1u, c0 + x);
    v[x] = conv_step(2u, c0 + x);
    sq += q[x] * q[x];
    sk += k[x] * k[x];
  }
  float rq = inversesqrt(sq + p.l2_eps), rk = inversesqrt(sk + p.l2_eps);
  float g = -exp(prm[p.off_alog + h]) * gdn_softplus(ab[h] + prm[p.off_dtb + h]);
  float bt = 1.0 / (1.0 + exp(-ab[p.H + h]));
  float alpha = exp(g);
  for (uint x = 0u; x < KD; x++) {
    q[x] *= rq;
    k[x] *= rk;
  }
  uint sb = h * KD * KD;
  float ss = 0.0;
  for (uint c = 0u; c < KD; c += 2u) {
    vec2 a = vec2(0.0);
    for (uint x = 0u; x < KD; x++) a += alpha * state_ld2(sb + x * KD + c) * k[x];
    vec2 u = bt * (vec2(v[c], v[c + 1u]) - a), acc = vec2(0.0);
    for (uint x = 0u; x < KD; x++) {
      vec2 s = alpha * state_ld2(sb + x * KD + c) + k[x] * u;
      acc += s * q[x];
      state_st2(sb + x * KD + c, s);
    }
    o[c] = p.scale * acc.x;
    o[c + 1u] = p.scale * acc.y;
    ss += o[c] * o[c];
    ss += o[c + 1u] * o[c + 1u];
  }
  float r = inversesqrt(ss / float(KD) + p.norm_eps);
  for (uint c = 0u; c < KD; c++)
    out_[c0 + c] = o[c] * r * prm[p.off_onorm + c] * silu1(gate[c0 + c]);
}
