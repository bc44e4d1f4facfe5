// gdn_chunk_bwd_dqk.comp — Gated DeltaNet backward, pass 2 of 2: dq, dk, dbeta and
// dg, every chunk independently (one workgroup per (chunk, head), one row i = token
// per invocation). Reads from the workspace the forward's S_n, S_{n+1} and Vn and
// pass 1's dS_{n+1} and dR. With Gam_ij = exp(gam_i - gam_j), A and P as in
// gdn_common.glsl, dA_ij = -dR_i . Vn_j (j < i; from Vn = (I+A)^{-1} B, dA =
// -(I+A)^{-T} dVn Vn^T) and dP_ij = dO_i . Vn_j (j <= i; from O = P Vn):
//   dq_i = s e^gam_i S dO_i + s sum_{j<=i} dP_ij Gam_ij k_j
//   dk_i = -beta_i e^gam_i S dR_i + e^{gam_C-gam_i} dS_{n+1} Vn_i
//          + sum_{j<i} dA_ij beta_i Gam_ij k_j + sum_{j>i} dA_ji beta_j Gam_ji k_j
//          + s sum_{j>=i} dP_ji Gam_ji q_j
//   dbeta_i = dR_i . R_i + sum_{j<i} dA_ij (k_i . k_j) Gam_ij,
//             dR_i . R_i = dR_i . v_i - e^gam_i k_i . (S dR_i)
//   dgam_i = s e^gam_i q_i.(S dO_i) - beta_i e^gam_i k_i.(S dR_i)
//            - e^{gam_C-gam_i} k_i.(dS_{n+1} Vn_i) + sum_j<i (dA_ij A_ij + dP_ij P_ij)
//            - sum_j>i (dA_ji A_ji + dP_ji P_ji)
//            + [i last] <dS_{n+1}, S_{n+1}>   (every term of S_{n+1} carries e^{gam_C})
// and dg is the in-chunk reverse cumulative sum of dgam (gam = cumsum g).
// Variant h16: q, k and v are read as packed fp16 (qkv_load.glsl).
#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "dtr_push.h"
#include "qkv_load.glsl"
//! variant h16 -DDTR_QKV_F16=1

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint C = 64;
layout(constant_id = 2) const uint KD = 64;
layout(constant_id = 3) const uint VD = 64;
layout(local_size_x_id = 0) in;

layout(std430, binding = 0) writeonly buffer DQ { float dq[]; };
layout(std430, binding = 1) writeonly buffer DK { float dk[]; };
layout(std430, binding = 2) writeonly buffer DG { float dg[]; };
layout(std430, binding = 3) writeonly buffer DB { float dbeta[]; };
layout(std430, binding = 4) readonly buffer WS { float ws[]; };
layout(std430, binding = 5) readonly buffer DO { float dout[]; };
layout(std430, binding = 6) readonly buffer Q { QKV_FLOAT q[]; };
layout(std430, binding = 7) readonly buffer Kb { QKV_FLOAT k[]; };
layout(std430, binding = 8) readonly buffer Vb { QKV_FLOAT v[]; };
layout(std430, binding = 9) readonly buffer G { float g[]; };
layout(std430, binding = 10) readonly buffer Be { float beta_[]; };
layout(std430, binding = 11) readonly buffer Off { int offsets[]; };
layout(push_constant) uniform PC { dtr_pc_gdn_chunk p; };

shared float gam[C];
shared float bet[C];
shared float dgam[C];
// Per-invocation arrays at module scope (inside a loop, lavapipe re-allocates them
// on its coroutine stack every iteration; see gdn_common.glsl).
float a1[KD], a2[KD], a3[KD], ki[KD], qi[KD], dqi[KD], dki[KD];
float doi[VD], dri[VD], vni[VD];

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
  uint KV = p.K * p.V;
  uint oS = p.ws_s + (slot * p.H + h) * KV;          // S_n
  uint oS1 = p.ws_s + ((slot + 1u) * p.H + h) * KV;  // S_{n+1}
  uint odS = p.ws_ds + (slot * p.H + h) * KV;        // dS_{n+1}

  for (uint i = lid; i < cn; i += WG) {
    float s = 0.0;
    for (uint j = 0; j <= i; j++) s += g[(t0 + j) * p.H + h];
    gam[i] = s;
    bet[i] = beta_[(t0 + i) * p.H + h];
  }
  barrier();
  float gC = gam[cn - 1];

  for (uint i = lid; i < cn; i += WG) {
    uint rk = ((t0 + i) * p.H + h) * p.K, rv = ((t0 + i) * p.H + h) * p.V;
    float gi = gam[i], bi = bet[i], ei = exp(gi);
    // S dO_i, S dR_i, dS_{n+1} Vn_i (rows of S are uniform loads).
    [[unroll]] for (uint x = 0; x < KD; x++) { a1[x] = 0.0; a2[x] = 0.0; a3[x] = 0.0; }
    float drv = 0.0; // dR_i . v_i
    for (uint y = 0; y < p.V; y++) {
      float o_ = dout[rv + y], r_ = ws[p.ws_dr + rv + y], w_ = ws[p.ws_vn + rv + y];
      drv += r_ * QKV_LD(v, rv + y);
      [[unroll]] for (uint x = 0; x < KD; x++) {
        float sv = ws[oS + x * p.V + y];
        a1[x] += sv * o_;
        a2[x] += sv * r_;
        a3[x] += ws[odS + x * p.V + y] * w_;
      }
    }
    float qa1 = 0.0, ka2 = 0.0, ka3 = 0.0;
    float fC = exp(gC - gi);
    [[unroll]] for (uint x = 0; x < KD; x++) {
      ki[x] = QKV_LD(k, rk + x);
      qi[x] = QKV_LD(q, rk + x);
      qa1 += qi[x] * a1[x];
      ka2 += ki[x] * a2[x];
      ka3 += ki[x] * a3[x];
      dqi[x] = p.scale * ei * a1[x];
      dki[x] = -bi * ei * a2[x] + fC * a3[x];
    }
    float dgi = p.scale * ei * qa1 - bi * ei * ka2 - fC * ka3;
    float dbi = drv - ei * ka2;
    [[unroll]] for (uint y = 0; y < VD; y++) {
      doi[y] = dout[rv + y];
      dri[y] = ws[p.ws_dr + rv + y];
      vni[y] = ws[p.ws_vn + rv + y];
    }
    // Pairs (i, j): j < i uses row i of dA, dP; j > i uses column i; j == i only P.
    for (uint j = 0; j < cn; j++) {
      uint jk = ((t0 + j) * p.H + h) * p.K, jv = ((t0 + j) * p.H + h) * p.V;
      float kk = 0.0, qkr = 0.0, qkc = 0.0;
      [[unroll]] for (uint x = 0; x < KD; x++) {
        float kj = QKV_LD(k, jk + x);
        kk += ki[x] * kj;
        qkr += qi[x] * kj;
        qkc += QKV_LD(q, jk + x) * ki[x];
      }
      float dPr = 0.0, dAr = 0.0, dPc = 0.0, dAc = 0.0;
      [[unroll]] for (uint y = 0; y < VD; y++) {
        float vnj = ws[p.ws_vn + jv + y];
        dPr += doi[y] * vnj;
        dAr -= dri[y] * vnj;
        dPc += dout[jv + y] * vni[y];
        dAc -= ws[p.ws_dr + jv + y] * vni[y];
      }
      float ck = 0.0, cq = 0.0, cqk = 0.0; // coefficients: k_j -> dq, k_j -> dk, q_j -> dk
      float gj = gam[j];
      if (j < i) {
        float G = exp(gi - gj);
        cq = p.scale * dPr * G;
        ck = dAr * bi * G;
        dgi += dAr * bi * kk * G + dPr * p.scale * qkr * G;
        dbi += dAr * kk * G;
      } else if (j > i) {
        float G = exp(gj - gi), bj = bet[j];
        ck = dAc * bj * G;
        cqk = p.scale * dPc * G;
        dgi -= dAc * bj * kk * G + dPc * p.scale * qkc * G;
      } else {
        cq = p.scale * dPr;
        cqk = p.scale * dPr;
      }
      [[unroll]] for (uint x = 0; x < KD; x++) {
        float kj = QKV_LD(k, jk + x);
        dqi[x] += cq * kj;
        dki[x] += ck * kj + cqk * QKV_LD(q, jk + x);
      }
    }
    if (i == cn - 1u) {
      float e = 0.0;
      for (uint x = 0; x < p.K; x++)
        for (uint y = 0; y < p.V; y++) e += ws[odS + x * p.V + y] * ws[oS1 + x * p.V + y];
      dgi += e;
    }
    [[unroll]] for (uint x = 0; x < KD; x++) {
      dq[rk + x] = dqi[x];
      dk[rk + x] = dki[x];
    }
    dbeta[(t0 + i) * p.H + h] = dbi;
    dgam[i] = dgi;
  }
  barrier();
  for (uint i = lid; i < cn; i += WG) {
    float s = 0.0;
    for (uint j = i; j < cn; j++) s += dgam[j];
    dg[(t0 + i) * p.H + h] = s;
  }
}
