/* ref_gla.c — the GLA oracle: the recurrent form in double, token by token, and
 * its analytic backward (a reverse recurrence over stored per-token states). */
#include "ref_gla.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One token of one head: S = diag(exp(g)) S + k v^T ; o = S^T (scale q). */
static void step(double *o, double *S, const double *q, const double *k, const double *v,
                 const double *g, int K, int V, double scale) {
  for (int i = 0; i < K; i++) {
    double a = exp(g[i]);
    for (int j = 0; j < V; j++) S[i * V + j] = a * S[i * V + j] + k[i] * v[j];
  }
  for (int j = 0; j < V; j++) {
    double acc = 0;
    for (int i = 0; i < K; i++) acc += q[i] * S[i * V + j];
    o[j] = scale * acc;
  }
}

void ref_gla_chunk_fwd(double *o, double *state_out, const double *q, const double *k,
                       const double *v, const double *gk, const double *state_in,
                       const int32_t *offsets, int B, int H, int K, int V, double scale) {
  double *S = malloc(sizeof(double) * K * V);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      size_t sb = ((size_t)b * H + h) * K * V;
      if (state_in) memcpy(S, state_in + sb, sizeof(double) * K * V);
      else memset(S, 0, sizeof(double) * K * V);
      for (int t = offsets[b]; t < offsets[b + 1]; t++) {
        size_t qk = ((size_t)t * H + h) * K, vo = ((size_t)t * H + h) * V;
        step(o + vo, S, q + qk, k + qk, v + vo, gk + qk, K, V, scale);
      }
      if (state_out) memcpy(state_out + sb, S, sizeof(double) * K * V);
    }
  free(S);
}

/* Reverse recurrence, dS the loss gradient w.r.t. S_t gathered from later steps:
 *   o_t = scale S_t^T q_t          ->  dS += scale q_t do_t^T,  dq_t = scale S_t do_t
 *   S_t = diag(a_t) S_{t-1} + k v^T ->  dk_t = dS v_t,  dv_t = dS^T k_t,
 *                                       dgk_t[i] = a_t[i] <dS[i,:], S_{t-1}[i,:]>,
 *                                       dS_{t-1} = diag(a_t) dS.  (a_t = exp(gk_t)) */
void ref_gla_chunk_bwd(double *dq, double *dk, double *dv, double *dgk, double *dstate_in,
                       const double *dout, const double *dstate_out, const double *q,
                       const double *k, const double *v, const double *gk,
                       const double *state_in, const int32_t *offsets, int B, int H, int K,
                       int V, double scale) {
  size_t KV = (size_t)K * V;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      int t0 = offsets[b], T = offsets[b + 1] - t0;
      size_t sb = ((size_t)b * H + h) * KV;
      /* states S_0 .. S_T of this sequence and head */
      double *S = calloc((size_t)(T + 1) * KV, sizeof(double));
      double *dS = malloc(sizeof(double) * KV);
      double *otmp = malloc(sizeof(double) * V);
      if (state_in) memcpy(S, state_in + sb, sizeof(double) * KV);
      for (int t = 0; t < T; t++) {
        size_t qk = ((size_t)(t0 + t) * H + h) * K, vo = ((size_t)(t0 + t) * H + h) * V;
        memcpy(S + (t + 1) * KV, S + t * KV, sizeof(double) * KV);
        step(otmp, S + (t + 1) * KV, q + qk, k + qk, v + vo, gk + qk, K, V, scale);
      }
      if (dstate_out) memcpy(dS, dstate_out + sb, sizeof(double) * KV);
      else memset(dS, 0, sizeof(double) * KV);
      for (int t = T - 1; t >= 0; t--) {
        size_t qk = ((size_t)(t0 + t) * H + h) * K, vo = ((size_t)(t0 + t) * H + h) * V;
        const double *St = S + (t + 1) * KV, *Sp = S + t * KV;
        const double *qt = q + qk, *kt = k + qk, *vt = v + vo, *dot = dout + vo;
        for (int i = 0; i < K; i++) {
          double acc = 0;
          for (int j = 0; j < V; j++) {
            dS[i * V + j] += scale * qt[i] * dot[j];
            acc += St[i * V + j] * dot[j];
          }
          dq[qk + i] = scale * acc;
        }
        for (int i = 0; i < K; i++) {
          double acc = 0, ag = 0, a = exp(gk[qk + i]);
          for (int j = 0; j < V; j++) {
            acc += dS[i * V + j] * vt[j];
            ag += dS[i * V + j] * Sp[i * V + j];
          }
          dk[qk + i] = acc;
          dgk[qk + i] = a * ag;
        }
        for (int j = 0; j < V; j++) {
          double acc = 0;
          for (int i = 0; i < K; i++) acc += dS[i * V + j] * kt[i];
          dv[vo + j] = acc;
        }
        for (int i = 0; i < K; i++) {
          double a = exp(gk[qk + i]);
          for (int j = 0; j < V; j++) dS[i * V + j] *= a;
        }
      }
      if (dstate_in) memcpy(dstate_in + sb, dS, sizeof(double) * KV);
      free(S);
      free(dS);
      free(otmp);
    }
}

void ref_gla_decode(double *o, double *state, const double *q, const double *k,
                    const double *v, const double *gk, int B, int H, int K, int V,
                    double scale) {
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      size_t i = (size_t)b * H + h;
      step(o + i * V, state + i * K * V, q + i * K, k + i * K, v + i * V, gk + i * K, K, V,
           scale);
    }
}

/* logsigmoid(x) = min(x, 0) - log1p(exp(-|x|)), finite for any x. */
void ref_gla_gate_fwd(double *gk, const double *x, size_t n, double normalizer) {
  for (size_t i = 0; i < n; i++)
    gk[i] = (fmin(x[i], 0.0) - log1p(exp(-fabs(x[i])))) / normalizer;
}

/* d logsigmoid(x)/dx = 1 - sigmoid(x) = sigmoid(-x). */
void ref_gla_gate_bwd(double *dx, const double *dgk, const double *x, size_t n,
                      double normalizer) {
  for (size_t i = 0; i < n; i++) dx[i] = dgk[i] / (1.0 + exp(x[i])) / normalizer;
}
