// gdn_common.glsl — what the Gated DeltaNet chunk kernels share: the in-chunk
// gate prefix sums and the chunk's two C x C matrices, packed in one shared array.
// The including shader declares WG, C, KD, the push block p (dtr_pc_gdn_chunk)
// and the buffers q, k (QKV_FLOAT, read through QKV_LD: qkv_load.glsl), g and beta_
// (float) before including this file.
//
// For a chunk starting at token t0 with n <= C tokens (gam = in-chunk cumulative
// sum of g, Gam_ij = exp(gam_i - gam_j)):
//   A_ij = beta_i (k_i . k_j) Gam_ij   for j < i   stored at M[j*C + i] (upper)
//   P_ij = scale (q_i . k_j) Gam_ij    for j <= i  stored at M[i*C + j] (lower)
// A is the strictly lower part of the UT transform, (I + A) Vn = beta (V - e^gam K S);
// P is the masked intra-chunk attention, O = scale e^gam Q S + P Vn.

shared float M[C * C];
// One column of C values per invocation (Vn in the forward, dR in the backward),
// in shared memory: a dynamically indexed private array inside the barriered chunk
// loop corrupts state after a few chunks on lavapipe (Mesa 22.3, LLVM 15).
shared float VN[C * WG];
float row_k[KD], row_q[KD];
shared float gam[C];
shared float bet[C];

// Gate prefix sums and betas of the chunk into gam/bet (the same summation order
// in every kernel, so forward and backward see identical gam). Ends with a barrier.
void gdn_load_gates(uint t0, uint n, uint h) {
  uint lid = gl_LocalInvocationID.x;
  for (uint i = lid; i < n; i += WG) {
    float s = 0.0;
    [[unroll]] for (uint j = 0; j < C; j++)
      if (j <= i) s += g[(t0 + j) * p.H + h];
    gam[i] = s;
    bet[i] = beta_[(t0 + i) * p.H + h];
  }
  barrier();
}

// Fills M (A and P above), one row i per invocation; k_j loads are uniform across
// the workgroup. Ends with a barrier.
void gdn_build_chunk(uint t0, uint n, uint h) {
  uint lid = gl_LocalInvocationID.x;
  for (uint i = lid; i < n; i += WG) {
    uint ri = ((t0 + i) * p.H + h) * p.K;
    [[unroll]] for (uint x = 0; x < KD; x++) {
      row_k[x] = QKV_LD(k, ri + x);
      row_q[x] = QKV_LD(q, ri + x);
    }
    float gi = gam[i], bi = bet[i];
    for (uint j = 0; j <= i; j++) {
      uint rj = ((t0 + j) * p.H + h) * p.K;
      float kk = 0.0, qk = 0.0;
      [[unroll]] for (uint x = 0; x < KD; x++) {
        float kj = QKV_LD(k, rj + x);
        kk += row_k[x] * kj;
        qk += row_q[x] * kj;
      }
      float G = exp(gi - gam[j]);
      M[i * C + j] = p.scale * qk * G;
      if (j < i) M[j * C + i] = bi * kk * G;
    }
  }
  barrier();
}

// Sequence b's bounds and its first checkpoint slot.
void gdn_seq(uint b, out uint bos, out uint eos, out uint slot0) {
  bos = uint(offsets[b]);
  eos = uint(offsets[b + 1]);
  slot0 = bos / C + 2u * b;
}
