/* ref_gdn.c — the Gated DeltaNet oracles in double precision (ref_gdn.h): the
 * token-by-token recurrence of LINEAR_ATTENTION.md and its reverse recurrence
 * (the spec's backward option (b), with every state kept), the gates, the L2 norm. */
#include "ref_gdn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One step on one head's state S (K, V): returns u in u (V) and writes o (V). */
static void gdn_step(double *S, double *u, double *o, const double *q, const double *k,
                     const double *v, double g, double beta, int K, int V, double scale) {
  double a = exp(g);
  for (int i = 0; i < K * V; i++) S[i] *= a;
  for (int c = 0; c < V; c++) {
    double s = 0;
    for (int x = 0; x < K; x++) s += S[x * V + c] * k[x];
    u[c] = beta * (v[c] - s);
  }
  for (int x = 0; x < K; x++)
    for (int c = 0; c < V; c++) S[x * V + c] += k[x] * u[c];
  if (o)
    for (int c = 0; c < V; c++) {
      double s = 0;
      for (int x = 0; x < K; x++) s += S[x * V + c] * q[x];
      o[c] = scale * s;
    }
}

void ref_gdn_chunk_fwd(double *o, double *state_out, const double *q, const double *k,
                       const double *v, const double *g, const double *beta,
                       const double *state_in, const int32_t *offsets, int B, int H, int K,
                       int V, double scale) {
  double *S = malloc(sizeof(double) * K * V), *u = malloc(sizeof(double) * V);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      size_t sb = ((size_t)b * H + h) * K * V;
      for (int i = 0; i < K * V; i++) S[i] = state_in ? state_in[sb + i] : 0;
      for (int t = offsets[b]; t < offsets[b + 1]; t++) {
        size_t th = (size_t)t * H + h;
        gdn_step(S, u, o + th * V, q + th * K, k + th * K, v + th * V, g[th], beta[th], K, V,
                 scale);
      }
      if (state_out) memcpy(state_out + sb, S, sizeof(double) * K * V);
    }
  free(S);
  free(u);
}

/* Reverse recurrence, dS the loss gradient w.r.t. S_t from later steps:
 *   o_t = scale S_t^T q_t:   dS += scale q_t do_t^T;  dq_t = scale S_t do_t
 *   S_t = S' + k u^T:        du = dS^T k_t;  dk_t = dS u_t
 *   u = beta (v - S'^T k):   dv = beta du;  dbeta = du . r (r = v - S'^T k);
 *                            dS' = dS - beta k du^T;  dk_t -= beta S' du
 *   S' = alpha S_{t-1}:      dalpha = <dS', S_{t-1}>;  dS_{t-1} = alpha dS';
 *                            dg = dalpha alpha. */
void ref_gdn_chunk_bwd(double *dq, double *dk, double *dv, double *dg, double *dbeta,
                       double *dstate_in, const double *dout, const double *dstate_out,
                       const double *q, const double *k, const double *v, const double *g,
                       const double *beta, const double *state_in, const int32_t *offsets,
                       int B, int H, int K, int V, double scale) {
  size_t kv = (size_t)K * V;
  double *dS = malloc(sizeof(double) * kv), *Sp = malloc(sizeof(double) * kv);
  double *u = malloc(sizeof(double) * V), *du = malloc(sizeof(double) * V);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      int t0 = offsets[b], T = offsets[b + 1] - offsets[b];
      size_t sb = ((size_t)b * H + h) * kv;
      double *S = malloc(sizeof(double) * kv * (T + 1)); /* S[0] = S_in, S[t+1] = S_t */
      for (size_t i = 0; i < kv; i++) S[i] = state_in ? state_in[sb + i] : 0;
      for (int t = 0; t < T; t++) {
        size_t th = (size_t)(t0 + t) * H + h;
        memcpy(S + (t + 1) * kv, S + t * kv, sizeof(double) * kv);
        gdn_step(S + (t + 1) * kv, u, NULL, NULL, k + th * K, v + th * V, g[th], beta[th], K,
                 V, scale);
      }
      for (size_t i = 0; i < kv; i++) dS[i] = dstate_out ? dstate_out[sb + i] : 0;
      for (int t = T - 1; t >= 0; t--) {
        size_t th = (size_t)(t0 + t) * H + h;
        const double *St = S + (t + 1) * kv, *Sm = S + t * kv;
        const double *qt = q + th * K, *kt = k + th * K, *vt = v + th * V, *dot = dout + th * V;
        double al = exp(g[th]), bt = beta[th];
        for (size_t i = 0; i < kv; i++) Sp[i] = al * Sm[i];
        for (int x = 0; x < K; x++) {
          double s = 0;
          for (int c = 0; c < V; c++) {
            dS[x * V + c] += scale * qt[x] * dot[c];
            s += St[x * V + c] * dot[c];
          }
          dq[th * K + x] = scale * s;
        }
        double db = 0;
        for (int c = 0; c < V; c++) {
          double s = 0, d = 0;
          for (int x = 0; x < K; x++) {
            s += Sp[x * V + c] * kt[x];
            d += dS[x * V + c] * kt[x];
          }
          double r = vt[c] - s;
          u[c] = bt * r;
          du[c] = d;
          dv[th * V + c] = bt * d;
          db += d * r;
        }
        dbeta[th] = db;
        double da = 0;
        for (int x = 0; x < K; x++) {
          double s = 0;
          for (int c = 0; c < V; c++) {
            s += dS[x * V + c] * u[c] - bt * Sp[x * V + c] * du[c];
            double dsp = dS[x * V + c] - bt * kt[x] * du[c];
            da += dsp * Sm[x * V + c];
            dS[x * V + c] = al * dsp;
          }
          dk[th * K + x] = s;
        }
        dg[th] = da * al;
      }
      if (dstate_in) memcpy(dstate_in + sb, dS, sizeof(double) * kv);
      free(S);
    }
  free(dS);
  free(Sp);
  free(u);
  free(du);
}

void ref_gdn_decode(double *o, double *state, const double *q, const double *k,
                    const double *v, const double *g, const double *beta, int B, int H,
                    int K, int V, double scale) {
  double *u = malloc(sizeof(double) * V);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      size_t bh = (size_t)b * H + h;
      gdn_step(state + bh * K * V, u, o + bh * V, q + bh * K, k + bh * K, v + bh * V, g[bh],
               beta[bh], K, V, scale);
    }
  free(u);
}

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

void ref_gdn_gate_fwd(double *g, double *beta, const double *a, const double *b,
                      const double *A_log, const double *dt_bias, size_t N, int H) {
  for (size_t n = 0; n < N; n++)
    for (int h = 0; h < H; h++) {
      size_t i = n * H + h;
      g[i] = -exp(A_log[h]) * softplus(a[i] + dt_bias[h]);
      beta[i] = sigmoid(b[i]);
    }
}

/* g = -e^{A_log} softplus(x), x = a + dt_bias: dg/dx = -e^{A_log} sigmoid(x),
 * dg/dA_log = g; beta' = beta (1 - beta). */
void ref_gdn_gate_bwd(double *da, double *db, double *dA_log, double *ddt_bias,
                      const double *dg, const double *dbeta, const double *a, const double *b,
                      const double *A_log, const double *dt_bias, size_t N, int H) {
  for (size_t n = 0; n < N; n++)
    for (int h = 0; h < H; h++) {
      size_t i = n * H + h;
      double x = a[i] + dt_bias[h], e = exp(A_log[h]);
      da[i] = -dg[i] * e * sigmoid(x);
      ddt_bias[h] += da[i];
      dA_log[h] += dg[i] * (-e * softplus(x));
      double bt = sigmoid(b[i]);
      db[i] = dbeta[i] * bt * (1 - bt);
    }
}

void ref_l2norm_fwd(double *out, const double *x, size_t N, int C, double eps) {
  for (size_t r = 0; r < N; r++) {
    double s = 0;
    for (int c = 0; c < C; c++) s += x[r * C + c] * x[r * C + c];
    double rs = 1 / sqrt(s + eps);
    for (int c = 0; c < C; c++) out[r * C + c] = x[r * C + c] * rs;
  }
}

/* y = x r, r = (sum x^2 + eps)^{-1/2}: dx = r (dout - y (y . dout)). */
void ref_l2norm_bwd(double *dx, const double *dout, const double *x, size_t N, int C,
                    double eps) {
  for (size_t r = 0; r < N; r++) {
    double s = 0, xd = 0;
    for (int c = 0; c < C; c++) {
      s += x[r * C + c] * x[r * C + c];
      xd += x[r * C + c] * dout[r * C + c];
    }
    double rs = 1 / sqrt(s + eps);
    for (int c = 0; c < C; c++) dx[r * C + c] = rs * (dout[r * C + c] - x[r * C + c] * rs * rs * xd);
  }
}
