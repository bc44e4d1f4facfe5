/* ref_matmul.c — double-precision references of matmul and its backward, written
 * as the textbook triple loops over op(A) and op(B) element accessors. */
#include "ref_matmul.h"

#include <string.h>

/* op(A)(m, k) and op(B)(k, n) of batch b as indices into the stored arrays. */
static size_t ia(const dtr_matmul_desc *d, uint32_t b, uint32_t m, uint32_t k) {
  return b * d->stride_a + (d->trans_a ? (size_t)k * d->M + m : (size_t)m * d->K + k);
}
static size_t ib(const dtr_matmul_desc *d, uint32_t b, uint32_t k, uint32_t n) {
  return b * d->stride_b + (d->trans_b ? (size_t)n * d->K + k : (size_t)k * d->N + n);
}
static size_t ic(const dtr_matmul_desc *d, uint32_t b, uint32_t m, uint32_t n) {
  return b * d->stride_c + (size_t)m * d->N + n;
}

size_t ref_matmul_size_a(const dtr_matmul_desc *d) {
  return (d->batch - 1) * d->stride_a + (size_t)d->M * d->K;
}
size_t ref_matmul_size_b(const dtr_matmul_desc *d) {
  return (d->batch - 1) * d->stride_b + (size_t)d->K * d->N;
}
size_t ref_matmul_size_c(const dtr_matmul_desc *d) {
  return (d->batch - 1) * d->stride_c + (size_t)d->M * d->N;
}

void ref_matmul(double *C, const float *A, const float *B, const float *bias,
                const dtr_matmul_desc *d) {
  for (uint32_t b = 0; b < d->batch; b++)
    for (uint32_t m = 0; m < d->M; m++)
      for (uint32_t n = 0; n < d->N; n++) {
        double s = 0;
        for (uint32_t k = 0; k < d->K; k++)
          s += (double)A[ia(d, b, m, k)] * B[ib(d, b, k, n)];
        double *c = &C[ic(d, b, m, n)];
        *c = d->alpha * s + (d->beta != 0 ? d->beta * *c : 0.0) + (bias ? bias[n] : 0.0);
      }
}

/* With C = alpha op(A) op(B) + bias and loss L: dL/dop(A)(m,k) = alpha sum_n
 * dC(m,n) op(B)(k,n), dL/dop(B)(k,n) = alpha sum_m op(A)(m,k) dC(m,n), and
 * dL/dbias(n) = sum_m dC(m,n); a transposed operand's gradient lands at the
 * transposed index, so it keeps the operand's storage layout. */
void ref_matmul_bwd(double *dA, double *dB, double *dbias, const float *dC, const float *A,
                    const float *B, const dtr_matmul_desc *d) {
  if (dA) {
    size_t na = ref_matmul_size_a(d);
    memset(dA, 0, na * sizeof *dA);
  }
  for (uint32_t b = 0; b < d->batch; b++) {
    if (dA)
      for (uint32_t m = 0; m < d->M; m++)
        for (uint32_t k = 0; k < d->K; k++) {
          double s = 0;
          for (uint32_t n = 0; n < d->N; n++)
            s += (double)dC[ic(d, b, m, n)] * B[ib(d, b, k, n)];
          dA[ia(d, b, m, k)] += d->alpha * s;
        }
    if (dB)
      for (uint32_t k = 0; k < d->K; k++)
        for (uint32_t n = 0; n < d->N; n++) {
          double s = 0;
          for (uint32_t m = 0; m < d->M; m++)
            s += (double)A[ia(d, b, m, k)] * dC[ic(d, b, m, n)];
          dB[ib(d, b, k, n)] += d->alpha * s;
        }
    if (dbias)
      for (uint32_t n = 0; n < d->N; n++) {
        double s = 0;
        for (uint32_t m = 0; m < d->M; m++)
          s += dC[ic(d, b, m, n)];
        dbias[n] += s;
      }
  }
}
