/* push_matmul.h — push constants of the matmul kernels (see dtr_push.h). */
#ifndef DTR_PUSH_MATMUL_H
#define DTR_PUSH_MATMUL_H
#include "push_common.h"

/* matmul: C[z] = alpha * op(A[z]) @ op(B[z]) + beta * C[z] (+ bias) for z in
 * [0, batch) (the workgroup z index). Everything is in elements of the bound
 * views: element (m, k) of op(A) is A[a_off + z*stride_a + m*lda + k] (or
 * k*lda + m when the TA specialization constant is set), (k, n) of op(B) is
 * B[b_off + z*stride_b + k*ldb + n] (n*ldb + k with TB), and C (m, n) is
 * C[c_off + z*stride_c + m*scm + n*scn], so a kernel can write C transposed.
 * bias_mode: 0 none, 1 bias[bias_off + n] (per column), 2 bias[bias_off + m]. */
DTR_PUSH_STRUCT(dtr_pc_matmul) {
  DTR_U32 M;
  DTR_U32 N;
  DTR_U32 K;
  DTR_U32 lda;
  DTR_U32 ldb;
  DTR_U32 scm;
  DTR_U32 scn;
  DTR_U32 a_off;
  DTR_U32 b_off;
  DTR_U32 c_off;
  DTR_U32 bias_off;
  DTR_U32 stride_a;
  DTR_U32 stride_b;
  DTR_U32 stride_c;
  DTR_F32 alpha;
  DTR_F32 beta;
  DTR_U32 bias_mode;
};

/* matmul_colsum: out[out_off + n] += sum over z < batch, m < M of
 * x[x_off + z*stride + m*N + n] (the bias gradient), each column summed in a
 * fixed order by one invocation. */
DTR_PUSH_STRUCT(dtr_pc_matmul_colsum) {
  DTR_U32 M;
  DTR_U32 N;
  DTR_U32 batch;
  DTR_U32 x_off;
  DTR_U32 stride;
  DTR_U32 out_off;
};

#endif
