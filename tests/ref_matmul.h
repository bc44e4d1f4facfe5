/* ref_matmul.h — double-precision references of the matmul kernels (see ref.h). */
#ifndef DTR_REF_MATMUL_H
#define DTR_REF_MATMUL_H
#include <stddef.h>
#include <stdint.h>

#include "dtr_ops.h"

/* The extent in elements of each operand for a desc (what a view must hold). */
size_t ref_matmul_size_a(const dtr_matmul_desc *d);
size_t ref_matmul_size_b(const dtr_matmul_desc *d);
size_t ref_matmul_size_c(const dtr_matmul_desc *d);

/* C[b] = alpha op(A[b]) op(B[b]) + beta C[b] (+ bias): C holds C's initial values
 * on entry (read only when beta != 0). C (batch: stride_c, M, N), A (M, K) or
 * (K, M), B (K, N) or (N, K), bias (N) or NULL. b_f16 is ignored: pass B's
 * values as floats. */
void ref_matmul(double *C, const float *A, const float *B, const float *bias,
                const dtr_matmul_desc *d);
/* dA = alpha dC op(B)^T (written, summed over batches sharing A),
 * dB += alpha op(A)^T dC (in B's layout), dbias (N) += column sums of dC.
 * Any output may be NULL. */
void ref_matmul_bwd(double *dA, double *dB, double *dbias, const float *dC, const float *A,
                    const float *B, const dtr_matmul_desc *d);

#endif
