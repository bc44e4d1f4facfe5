/* push_attention.h — push constants of the attention kernels (see dtr_push.h):
 * attention_fwd, attention_bwd_dq, attention_bwd_dkdv.
 *
 * The kernels see the G = Hq/Hkv query heads of one kv head as one set of
 * Tq*G "rows": row r is query position r / G of query head hk*G + r % G, so
 * the heads sharing a kv head share every k/v load (GQA, decode). */
#ifndef DTR_PUSH_ATTENTION_H
#define DTR_PUSH_ATTENTION_H
#include "push_common.h"

DTR_PUSH_STRUCT(dtr_pc_attention) {
  DTR_U32 B;
  DTR_U32 Tq;
  DTR_U32 Tk;
  DTR_U32 kv_cap;  /* tokens per sequence in the k/v cache (batch stride / (Hkv*D)) */
  DTR_U32 Hkv;
  DTR_U32 G;       /* query heads per kv head, Hq / Hkv */
  DTR_U32 rows_per_group; /* rows one workgroup owns (workgroup size * rows per lane) */
  DTR_F32 scale;   /* score scale, usually 1/sqrt(D) */
};

#endif
