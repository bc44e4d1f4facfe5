/* push_gdn.h — push constants of the Gated DeltaNet kernels (gdn_*.comp) and the
 * per-row L2 norm (l2norm_*.comp); see dtr_push.h. */
#ifndef DTR_PUSH_GDN_H
#define DTR_PUSH_GDN_H
#include "push_common.h"

/* gdn_chunk_fwd, gdn_chunk_bwd_dv, gdn_chunk_bwd_dqk and their *_tex twins. The
 * workspace (floats) holds state checkpoints S_n and dS_{n+1} at ws_s / ws_ds
 * (nslots slots per head of K*V; sequence b's chunk n uses slot
 * floor(bos_b / C) + 2b + n), then the chunks' transformed values Vn and
 * dVn-solves dR at ws_vn / ws_dr, both (Ttot, H, V). The token-walking *_tex
 * kernels of the first two passes take each sequence's chunks [n0, n1) per
 * dispatch (lavapipe's loop limit); the others ignore n0, n1. */
DTR_PUSH_STRUCT(dtr_pc_gdn_chunk) {
  DTR_U32 B;
  DTR_U32 Ttot;
  DTR_U32 H;
  DTR_U32 K;
  DTR_U32 V;
  DTR_F32 scale;
  DTR_U32 has_in;  /* state_in (fwd) / dstate_out (bwd) present */
  DTR_U32 has_out; /* state_out (fwd) / dstate_in (bwd) present */
  DTR_U32 nslots;
  DTR_U32 ws_s;
  DTR_U32 ws_ds;
  DTR_U32 ws_vn;
  DTR_U32 ws_dr;
  DTR_U32 n0;
  DTR_U32 n1;
};

/* gdn_decode: one token per sequence. */
DTR_PUSH_STRUCT(dtr_pc_gdn_decode) {
  DTR_U32 B;
  DTR_U32 H;
  DTR_U32 K;
  DTR_U32 V;
  DTR_F32 scale;
};

/* gdn_decode_fused: a whole GDN decode step of one sequence; off_* are float
 * offsets into the block's parameter buffer. */
DTR_PUSH_STRUCT(dtr_pc_gdn_decode_fused) {
  DTR_U32 H;
  DTR_U32 off_conv;  /* q_conv1d, k_conv1d, v_conv1d weights, back to back */
  DTR_U32 off_alog;
  DTR_U32 off_dtb;
  DTR_U32 off_onorm;
  DTR_F32 scale;
  DTR_F32 l2_eps;
  DTR_F32 norm_eps;
};

/* gdn_gate_fwd / gdn_gate_bwd over (N, H). */
DTR_PUSH_STRUCT(dtr_pc_gdn_gate) {
  DTR_U32 N;
  DTR_U32 H;
};

/* l2norm_fwd / l2norm_bwd over rows of C. */
DTR_PUSH_STRUCT(dtr_pc_l2norm) {
  DTR_U32 N;
  DTR_U32 C;
  DTR_F32 eps;
};
#endif
