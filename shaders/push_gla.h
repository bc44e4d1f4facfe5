/* push_gla.h — push constants of the gla kernels (see dtr_push.h). */
#ifndef DTR_PUSH_GLA_H
#define DTR_PUSH_GLA_H
#include "push_common.h"

/* The chunked kernels (gla_chunk_fwd, its states variant, gla_chunk_bwd_*).
 * flags: DTR_GLA_STATE_IN / STATE_OUT / DSTATE_OUT / DSTATE_IN say which optional
 * views are bound for real. Workspace slots of sequence b: floor(offsets[b]/C) + 2b + n
 * for its chunks n = 0..ceil(T_b/C) (the state entering chunk n; n = last is the
 * final state). nk4, nv4 bound the loops over register-held rows: with constant
 * bounds LLVM unrolls them and promotes the whole state array to SSA values,
 * which lavapipe's coroutine lowering then takes tens of seconds to compile.
 * Windows: lavapipe (gallivm) stops any invocation after 65535 loop iterations in
 * all (LP_MAX_TGSI_LOOP_ITERATIONS), silently, so long sequences are walked in
 * several dispatches of a window of chunks each, the state carried between them
 * (forward: through state_out; backward: through the workspace slots). */
DTR_PUSH_STRUCT(dtr_pc_gla_chunk) {
  DTR_U32 B;
  DTR_U32 H;
  DTR_U32 Ttot;
  DTR_F32 scale;
  DTR_U32 flags;
  DTR_U32 nk4; /* K / 4 and V / 4 again, as loop bounds the compiler cannot see */
  DTR_U32 nv4;
  DTR_U32 n_begin; /* this dispatch's window of chunks [n_begin, n_end) */
  DTR_U32 n_end;
};
#define DTR_GLA_STATE_IN 1u
#define DTR_GLA_STATE_OUT 2u
#define DTR_GLA_DSTATE_OUT 4u
#define DTR_GLA_DSTATE_IN 8u
#define DTR_GLA_CARRY 16u /* start from the state the previous window left */

DTR_PUSH_STRUCT(dtr_pc_gla_decode) {
  DTR_U32 B;
  DTR_U32 H;
  DTR_F32 scale;
};

/* gk = logsigmoid(x) * inv_norm (and its backward) over n elements. */
DTR_PUSH_STRUCT(dtr_pc_gla_gate) {
  DTR_U32 n;
  DTR_F32 inv_norm;
};
#endif
