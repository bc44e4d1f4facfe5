// gdn_chunk_bwd_dqk_tex.comp — pass 3 of the Gated DeltaNet backward on CPU
// devices: gdn_chunk_bwd_dqk (which has the derivation) with the workspace, dout,
// q, k and v read as RGBA32F texel buffers (one texel = 4 consecutive floats of a
// row): lavapipe fetches a texel with one vector gather but loads a storage
// buffer lane by lane (host/ops_gdn.c). The same work split (one workgroup per
// (chunk, head), one row i = token per invocation, its K and V vectors in
// registers as KD/4 and VD/4 vec4), but the pairs (i, j) run as two loops, row
// terms (j < i) and column terms (j > i), each fetching only the rows of j it
// needs: texel fetches are what this kernel spends its time on.
// Needs K % 4 == 0, V % 4 == 0 (every row and workspace offset whole texels).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint KD = 64;
layout(constant_id = 3) const uint VD = 64;
layout(local_size_x_id = 0) in;
const uint K4 = KD / 4, V4 = VD / 4;

layout(std430, binding = 0) writeonly buffer DQ { float dq[]; }; // (Ttot, H, K)
layout(std430, binding = 1) writeonly buffer DK { float dk[]; }; // (Ttot, H, K)
layout(std430, binding = 2) writeonly buffer DG { float dg[]; }; // (Ttot, H)
layout(std430, binding = 3) writeonly buffer DB { float dbeta[]; };
layout(binding = 4) uniform samplerBuffer WS;  // the workspace of push_gdn.h
layout(binding = 5) uniform samplerBuffer DOt; // (Ttot, H, V)
layout(binding = 6) uniform samplerBuffer Qt;  // (Ttot, H, K)
layout(binding = 7) uniform samplerBuffer Kt;  // (Ttot, H, K)
layout(binding = 8) uniform samplerBuffer Vt;  // (Ttot, H, V)
layout(std430, binding = 9) readonly buffer G { float g[]; }; // (Ttot, H)
layout(std430, binding = 10) readonly buffer Be { float beta_[]; };
layout(std430, binding = 11) readonly buffer Off { int offsets[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_chunk p; };

shared float gam[C];
shared float bet[C];
shared float dgam[C];
// Per-invocation arrays at module scope, temporaries included, as in
// gdn_chunk_bwd_dqk.comp (lavapipe re-allocates an array declared inside a loop
// on its coroutine stack every iteration).
vec4 ki[K4], qi[K4], dqi[K4], dki[K4], dsv[K4], kj[K4], qj[K4];
vec4 doi[V4], dri[V4], vni[V4];

float hsum(vec4 a) { return (a.x + a.y) + (a.z + a.w); }

void main() {
  uint slot = gl_WorkGroupID.x, h = gl_WorkGroupID.y, lid = gl_LocalInvocationID.x;
  // Which sequence and chunk this slot is (slots of sequence b: floor(bos/C) + 2b + n).
  uint bos = 0, eos = 0, n = 0;
  bool found = false;
  for (uint b = 0; b < p.B && !found; b++) {
    uint s0 = uint(offsets[b]), s1 = uint(offsets[b + 1]);
    uint first = s0 / C + 2u * b, nch = (s1 - s0 + C - 1) / C;
    if (slot >= first && slot < first + nch) {
      found = true;
      bos = s0;
      eos = s1;
      n = slot - first;
    }
  }
  if (!found) return; // uniform over the workgroup
  uint t0 = bos + n * C, cn = min(C, eos - t0);
  // Texel offsets of S_n, S_{n+1}, dS_{n+1} (KD rows of V4 texels), Vn and dR.
  uint KV4 = KD * V4;
  uint oS = p.ws_s / 4 + (slot * p.H + h) * KV4;
  uint oS1 = p.ws_s / 4 + ((slot + 1u) * p.H + h) * KV4;
  uint odS = p.ws_ds / 4 + (slot * p.H + h) * KV4;
  uint ovn = p.ws_vn / 4, odr = p.ws_dr / 4;

  for (uint i = lid; i < cn; i += WG) {
    float s = 0.0;
    for (uint j = 0; j <= i; j++) s += g[(t0 + j) * p.H + h];
    gam[i] = s;
    bet[i] = beta_[(t0 + i) * p.H + h];
  }
  barrier();
  float gC = gam[cn - 1];

  for (uint i = lid; i < cn; i += WG) {
    uint th = (t0 + i) * p.H + h, rk = th * K4, rv = th * V4;
    float gi = gam[i], bi = bet[i], ei = exp(gi), fC = exp(gC - gi);
    [[unroll]] for (uint x = 0; x < K4; x++) {
      ki[x] = texelFetch(Kt, int(rk + x));
      qi[x] = texelFetch(Qt, int(rk + x));
      dqi[x] = vec4(0.0);
      dki[x] = vec4(0.0);
      dsv[x] = vec4(0.0);
    }
    [[unroll]] for (uint y = 0; y < V4; y++) {
      doi[y] = texelFetch(DOt, int(rv + y));
      dri[y] = texelFetch(WS, int(odr + rv + y));
      vni[y] = texelFetch(WS, int(ovn + rv + y));
    }
    // S_n dO_i, S_n dR_i (in dqi, dki for now), dS_{n+1} Vn_i (dsv) and
    // dR_i . v_i, one texel column y of the states at a time (row x of a state is
    // V4 texels from x * V4).
    float drv = 0.0;
    for (uint y = 0; y < V4; y++) {
      vec4 o4 = texelFetch(DOt, int(rv + y)), r4 = texelFetch(WS, int(odr + rv + y));
      vec4 w4 = texelFetch(WS, int(ovn + rv + y));
      drv += dot(r4, texelFetch(Vt, int(rv + y)));
      [[unroll]] for (uint x = 0; x < KD; x++) {
        vec4 sv = texelFetch(WS, int(oS + x * V4 + y));
        dqi[x / 4][x % 4] += dot(sv, o4);
        dki[x / 4][x % 4] += dot(sv, r4);
        dsv[x / 4][x % 4] += dot(texelFetch(WS, int(odS + x * V4 + y)), w4);
      }
    }
    vec4 qa1 = vec4(0.0), ka2 = vec4(0.0), ka3 = vec4(0.0);
    [[unroll]] for (uint x = 0; x < K4; x++) {
      qa1 += qi[x] * dqi[x];
      ka2 += ki[x] * dki[x];
      ka3 += ki[x] * dsv[x];
      dqi[x] = p.scale * ei * dqi[x];
      dki[x] = -bi * ei * dki[x] + fC * dsv[x];
    }
    float dgi = p.scale * ei * hsum(qa1) - bi * ei * hsum(ka2) - fC * hsum(ka3);
    float dbi = drv - ei * hsum(ka2); // dR_i . R_i
    // The pair j == i: P only (A is strictly lower).
    vec4 d4 = vec4(0.0);
    [[unroll]] for (uint y = 0; y < V4; y++) d4 += doi[y] * vni[y];
    float dPii = p.scale * hsum(d4);
    [[unroll]] for (uint x = 0; x < K4; x++) {
      dqi[x] += dPii * ki[x];
      dki[x] += dPii * qi[x];
    }
    // j < i: row i of dA, dP (dA_ij = -dR_i . Vn_j, dP_ij = dO_i . Vn_j); fetches
    // k_j and Vn_j.
    for (uint j = 0; j < i; j++) {
      uint jh = (t0 + j) * p.H + h, jk = jh * K4, jv = jh * V4;
      vec4 kk4 = vec4(0.0), qk4 = vec4(0.0), dP4 = vec4(0.0), dA4 = vec4(0.0);
      [[unroll]] for (uint x = 0; x < K4; x++) {
        kj[x] = texelFetch(Kt, int(jk + x));
        kk4 += ki[x] * kj[x];
        qk4 += qi[x] * kj[x];
      }
      [[unroll]] for (uint y = 0; y < V4; y++) {
        vec4 vnj = texelFetch(WS, int(ovn + jv + y));
        dP4 += doi[y] * vnj;
        dA4 -= dri[y] * vnj;
      }
      float kk = hsum(kk4), qk = hsum(qk4), dP = hsum(dP4), dA = hsum(dA4);
      float G = exp(gi - gam[j]);
      float cq = p.scale * dP * G, ck = dA * bi * G; // k_j -> dq_i, k_j -> dk_i
      dgi += dA * bi * kk * G + dP * p.scale * qk * G;
      dbi += dA * kk * G;
      [[unroll]] for (uint x = 0; x < K4; x++) {
        dqi[x] += cq * kj[x];
        dki[x] += ck * kj[x];
      }
    }
    // j > i: column i (dA_ji = -dR_j . Vn_i, dP_ji = dO_j . Vn_i); fetches k_j, q_j,
    // dO_j and dR_j. Walked from the chunk's end, so the rows of a SIMD batch
    // fetch the same j.
    for (uint j = cn - 1u; j > i; j--) {
      uint jh = (t0 + j) * p.H + h, jk = jh * K4, jv = jh * V4;
      vec4 kk4 = vec4(0.0), qk4 = vec4(0.0), dP4 = vec4(0.0), dA4 = vec4(0.0);
      [[unroll]] for (uint x = 0; x < K4; x++) {
        kj[x] = texelFetch(Kt, int(jk + x));
        qj[x] = texelFetch(Qt, int(jk + x));
        kk4 += ki[x] * kj[x];
        qk4 += qj[x] * ki[x];
      }
      [[unroll]] for (uint y = 0; y < V4; y++) {
        dP4 += texelFetch(DOt, int(jv + y)) * vni[y];
        dA4 -= texelFetch(WS, int(odr + jv + y)) * vni[y];
      }
      float kk = hsum(kk4), qk = hsum(qk4), dP = hsum(dP4), dA = hsum(dA4);
      float G = exp(gam[j] - gi), bj = bet[j];
      float ck = dA * bj * G, cqk = p.scale * dP * G; // k_j -> dk_i, q_j -> dk_i
      dgi -= dA * bj * kk * G + dP * p.scale * qk * G;
      [[unroll]] for (uint x = 0; x < K4; x++) dki[x] += ck * kj[x] + cqk * qj[x];
    }
    if (i == cn - 1u) {
      vec4 e = vec4(0.0);
      for (uint x = 0; x < KV4; x++)
        e += texelFetch(WS, int(odS + x)) * texelFetch(WS, int(oS1 + x));
      dgi += hsum(e);
    }
    [[unroll]] for (uint x = 0; x < K4; x++) {
      uint o = 4 * (rk + x);
      dq[o] = dqi[x].x;
      dq[o + 1] = dqi[x].y;
      dq[o + 2] = dqi[x].z;
      dq[o + 3] = dqi[x].w;
      dk[o] = dki[x].x;
      dk[o + 1] = dki[x].y;
      dk[o + 2] = dki[x].z;
      dk[o + 3] = dki[x].w;
    }
    dbeta[th] = dbi;
    dgam[i] = dgi;
  }
  barrier();
  for (uint i = lid; i < cn; i += WG) {
    float s = 0.0;
    for (uint j = i; j < cn; j++) s += dgam[j];
    dg[(t0 + i) * p.H + h] = s;
  }
}
