/* ref_attention.c — the double-precision reference of causal GQA attention,
 * forward and analytic backward, written the plain way (a full score row per
 * query) to be obviously right rather than fast. */
#include "ref_attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t q_at(const dtr_attn_desc *d, uint32_t b, uint32_t i, uint32_t h) {
  return (((size_t)b * d->Tq + i) * d->Hq + h) * d->D;
}
static size_t k_at(const dtr_attn_desc *d, uint32_t b, uint32_t j, uint32_t hk) {
  return (((size_t)b * d->kv_cap + j) * d->Hkv + hk) * d->D;
}

static double *to_double(const float *x, size_t n) {
  double *y = malloc(n * sizeof *y);
  for (size_t i = 0; i < n; i++) y[i] = x[i];
  return y;
}

/* P_ij for row (b, i, h) into p[0..nk), nk = keys seen; returns lse. */
static double softmax_row(double *p, const double *q, const double *k,
                          const dtr_attn_desc *d, uint32_t b, uint32_t i, uint32_t h,
                          uint32_t *nk) {
  uint32_t hk = h / (d->Hq / d->Hkv);
  uint32_t n = d->Tk - d->Tq + i + 1;
  const double *qi = q + q_at(d, b, i, h);
  double mx = -INFINITY;
  for (uint32_t j = 0; j < n; j++) {
    const double *kj = k + k_at(d, b, j, hk);
    double s = 0;
    for (uint32_t c = 0; c < d->D; c++) s += qi[c] * kj[c];
    p[j] = s * d->scale;
    if (p[j] > mx) mx = p[j];
  }
  double sum = 0;
  for (uint32_t j = 0; j < n; j++) sum += (p[j] = exp(p[j] - mx));
  for (uint32_t j = 0; j < n; j++) p[j] /= sum;
  *nk = n;
  return mx + log(sum);
}

void ref_attention_fwd_d(double *out, double *lse, const double *q, const double *k,
                         const double *v, const dtr_attn_desc *d) {
  double *p = malloc(d->Tk * sizeof *p);
  uint32_t G = d->Hq / d->Hkv;
  for (uint32_t b = 0; b < d->B; b++)
    for (uint32_t h = 0; h < d->Hq; h++)
      for (uint32_t i = 0; i < d->Tq; i++) {
        uint32_t n;
        double l = softmax_row(p, q, k, d, b, i, h, &n);
        if (lse) lse[((size_t)b * d->Hq + h) * d->Tq + i] = l;
        double *o = out + q_at(d, b, i, h);
        memset(o, 0, d->D * sizeof *o);
        for (uint32_t j = 0; j < n; j++) {
          const double *vj = v + k_at(d, b, j, h / G);
          for (uint32_t c = 0; c < d->D; c++) o[c] += p[j] * vj[c];
        }
      }
  free(p);
}

void ref_attention_fwd(double *out, double *lse, const float *q, const float *k,
                       const float *v, const dtr_attn_desc *d) {
  size_t qn = (size_t)d->B * d->Tq * d->Hq * d->D;
  size_t kn = (size_t)d->B * d->kv_cap * d->Hkv * d->D;
  double *qd = to_double(q, qn), *kd = to_double(k, kn), *vd = to_double(v, kn);
  ref_attention_fwd_d(out, lse, qd, kd, vd, d);
  free(qd); free(kd); free(vd);
}

/* With S = scale q k^T, P = softmax(S) per row, O = P v and the upstream dO:
 * dv_j += P_ij dO_i; dP_ij = dO_i . v_j; dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik);
 * dq_i = scale sum_j dS_ij k_j; dk_j += scale dS_ij q_i. A kv head's dk, dv
 * sum over the G query heads that read it. */
void ref_attention_bwd_d(double *dq, double *dk, double *dv, const double *dout,
                         const double *q, const double *k, const double *v,
                         const dtr_attn_desc *d) {
  size_t qn = (size_t)d->B * d->Tq * d->Hq * d->D;
  size_t kn = (size_t)d->B * d->kv_cap * d->Hkv * d->D;
  memset(dq, 0, qn * sizeof *dq);
  memset(dk, 0, kn * sizeof *dk);
  memset(dv, 0, kn * sizeof *dv);
  double *p = malloc(d->Tk * sizeof *p), *dp = malloc(d->Tk * sizeof *dp);
  uint32_t G = d->Hq / d->Hkv;
  for (uint32_t b = 0; b < d->B; b++)
    for (uint32_t h = 0; h < d->Hq; h++)
      for (uint32_t i = 0; i < d->Tq; i++) {
        uint32_t n, hk = h / G;
        softmax_row(p, q, k, d, b, i, h, &n);
        const double *doi = dout + q_at(d, b, i, h), *qi = q + q_at(d, b, i, h);
        double dot = 0;
        for (uint32_t j = 0; j < n; j++) {
          const double *vj = v + k_at(d, b, j, hk);
          double s = 0;
          for (uint32_t c = 0; c < d->D; c++) s += doi[c] * vj[c];
          dp[j] = s;
          dot += p[j] * s;
        }
        double *dqi = dq + q_at(d, b, i, h);
        for (uint32_t j = 0; j < n; j++) {
          size_t ko = k_at(d, b, j, hk);
          double ds = p[j] * (dp[j] - dot) * d->scale;
          for (uint32_t c = 0; c < d->D; c++) {
            dv[ko + c] += p[j] * doi[c];
            dqi[c] += ds * k[ko + c];
            dk[ko + c] += ds * qi[c];
          }
        }
      }
  free(p);
  free(dp);
}

void ref_attention_bwd(double *dq, double *dk, double *dv, const float *dout,
                       const float *q, const float *k, const float *v,
                       const dtr_attn_desc *d) {
  size_t qn = (size_t)d->B * d->Tq * d->Hq * d->D;
  size_t kn = (size_t)d->B * d->kv_cap * d->Hkv * d->D;
  double *dod = to_double(dout, qn), *qd = to_double(q, qn), *kd = to_double(k, kn),
         *vd = to_double(v, kn);
  ref_attention_bwd_d(dq, dk, dv, dod, qd, kd, vd, d);
  free(dod); free(qd); free(kd); free(vd);
}
