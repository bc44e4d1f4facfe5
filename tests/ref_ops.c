/* ref_ops.c — the double-precision CPU references of the ops kernels (ref_ops.h).
 * Plain loops written for obviousness, not speed; each backward is the analytic
 * derivative of its forward (tests check it against finite differences). */
#include "ref_ops.h"

#include <math.h>

/* ---- RMSNorm -------------------------------------------------------------- */

void ref_rmsnorm_fwd(double *out, double *rstd, const float *inp, const float *weight,
                     uint32_t N, uint32_t C, float eps) {
  for (uint32_t i = 0; i < N; ++i) {
    const float *x = inp + (size_t)i * C;
    double ss = 0;
    for (uint32_t c = 0; c < C; ++c) ss += (double)x[c] * x[c];
    double r = 1.0 / sqrt(ss / C + eps);
    for (uint32_t c = 0; c < C; ++c) out[(size_t)i * C + c] = x[c] * r * weight[c];
    rstd[i] = r;
  }
}

/* y_j = w_j x_j r, r = (sum x^2 / C + eps)^(-1/2), dr/dx_k = -r^3 x_k / C:
 * dx_k = r w_k dy_k - (r^3 / C) x_k sum_j dy_j w_j x_j;  dw_j = sum_i dy_ij x_ij r_i. */
void ref_rmsnorm_bwd(double *dinp, double *dweight, const float *dout, const float *inp,
                     const float *weight, const double *rstd, uint32_t N, uint32_t C) {
  for (uint32_t i = 0; i < N; ++i) {
    const float *x = inp + (size_t)i * C, *g = dout + (size_t)i * C;
    double r = rstd[i], dot = 0;
    for (uint32_t c = 0; c < C; ++c) dot += (double)g[c] * weight[c] * x[c];
    for (uint32_t c = 0; c < C; ++c) {
      if (dinp) dinp[(size_t)i * C + c] = r * weight[c] * g[c] - r * r * r / C * x[c] * dot;
      if (dweight) dweight[c] += (double)g[c] * x[c] * r;
    }
  }
}

/* ---- RoPE ----------------------------------------------------------------- */

static void rope(double *out, const float *x, const int32_t *pos, const float *inv_freq,
                 uint32_t N, uint32_t H, uint32_t D, dtr_rope_style style, double sign) {
  uint32_t half = D / 2;
  for (uint32_t n = 0; n < N; ++n)
    for (uint32_t h = 0; h < H; ++h)
      for (uint32_t i = 0; i < half; ++i) {
        size_t base = ((size_t)n * H + h) * D;
        size_t ia = style == DTR_ROPE_NEOX ? base + i : base + 2 * i;
        size_t ib = style == DTR_ROPE_NEOX ? ia + half : ia + 1;
        float ang = (float)pos[n] * inv_freq[i]; /* fp32 product, as on the device */
        double c = cos((double)ang), s = sign * sin((double)ang);
        double a = x[ia], b = x[ib];
        out[ia] = a * c - b * s;
        out[ib] = a * s + b * c;
      }
}

void ref_rope_fwd(double *out, const float *x, const int32_t *pos, const float *inv_freq,
                  uint32_t N, uint32_t H, uint32_t D, dtr_rope_style style) {
  rope(out, x, pos, inv_freq, N, H, D, style, 1.0);
}

/* Each pair is rotated by R(theta); the gradient is R(theta)^T dout = R(-theta) dout. */
void ref_rope_bwd(double *dx, const float *dout, const int32_t *pos, const float *inv_freq,
                  uint32_t N, uint32_t H, uint32_t D, dtr_rope_style style) {
  rope(dx, dout, pos, inv_freq, N, H, D, style, -1.0);
}

/* ---- SwiGLU --------------------------------------------------------------- */

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

void ref_swiglu_fwd(double *out, const float *gate, const float *up, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

/* d(g s(g))/dg = s + g s (1 - s). */
void ref_swiglu_bwd(double *dgate, double *dup, const float *dout, const float *gate,
                    const float *up, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    double g = gate[i], s = sigmoid(g);
    dgate[i] = dout[i] * (double)up[i] * (s + g * s * (1 - s));
    dup[i] = dout[i] * g * s;
  }
}

/* ---- embedding ------------------------------------------------------------ */

void ref_embedding_fwd(double *out, const int32_t *ids, const float *table, uint32_t N,
                       uint32_t C, uint32_t V) {
  for (uint32_t t = 0; t < N; ++t)
    for (uint32_t c = 0; c < C; ++c)
      out[(size_t)t * C + c] =
          ids[t] >= 0 && (uint32_t)ids[t] < V ? table[(size_t)ids[t] * C + c] : 0.0;
}

void ref_embedding_bwd(double *dtable, const float *dout, const int32_t *ids, uint32_t N,
                       uint32_t C, uint32_t V) {
  for (uint32_t t = 0; t < N; ++t)
    if (ids[t] >= 0 && (uint32_t)ids[t] < V)
      for (uint32_t c = 0; c < C; ++c) dtable[(size_t)ids[t] * C + c] += dout[(size_t)t * C + c];
}

/* ---- softmax cross-entropy ------------------------------------------------ */

void ref_crossentropy_fwd(double *losses, double *lse, const float *logits,
                          const int32_t *targets, uint32_t N, uint32_t V) {
  for (uint32_t i = 0; i < N; ++i) {
    const float *x = logits + (size_t)i * V;
    double m = -INFINITY, s = 0;
    for (uint32_t c = 0; c < V; ++c) m = x[c] > m ? x[c] : m;
    for (uint32_t c = 0; c < V; ++c) s += exp(x[c] - m);
    lse[i] = m + log(s);
    int32_t t = targets[i];
    losses[i] = t < 0 ? 0.0 : (uint32_t)t < V ? lse[i] - x[t] : NAN;
  }
}

/* d(lse - x_t)/dx_c = softmax_c - [c == t]. */
void ref_crossentropy_bwd(double *dlogits, const float *logits, const int32_t *targets,
                          const double *lse, uint32_t N, uint32_t V, float scale) {
  for (uint32_t i = 0; i < N; ++i)
    for (uint32_t c = 0; c < V; ++c) {
      size_t k = (size_t)i * V + c;
      int32_t t = targets[i];
      dlogits[k] = t < 0 ? 0.0 : scale * (exp(logits[k] - lse[i]) - ((uint32_t)t == c));
    }
}

/* ---- MSE ------------------------------------------------------------------ */

void ref_mse_fwd(double *loss, const float *y, const float *t, uint32_t n) {
  double s = 0;
  for (uint32_t i = 0; i < n; ++i) s += ((double)y[i] - t[i]) * ((double)y[i] - t[i]);
  loss[0] = s / n;
}

void ref_mse_bwd(double *dy, const float *y, const float *t, uint32_t n, float scale) {
  for (uint32_t i = 0; i < n; ++i) dy[i] = scale * 2.0 * ((double)y[i] - t[i]) / n;
}

/* ---- reductions, add ------------------------------------------------------ */

void ref_sum(double *out, const float *x, uint32_t n, int squares, int accumulate) {
  double s = 0;
  for (uint32_t i = 0; i < n; ++i) s += squares ? (double)x[i] * x[i] : x[i];
  out[0] = accumulate ? out[0] + s : s;
}

void ref_add(double *out, const float *a, const float *b, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) out[i] = (double)a[i] + b[i];
}

/* ---- AdamW ---------------------------------------------------------------- */

void ref_adamw(double *param, const float *grad, double *m, double *v, const double *gnorm2,
               uint32_t n, const dtr_adamw_desc *d) {
  double c = 1;
  if (gnorm2 && d->clip > 0 && sqrt(*gnorm2) > d->clip) c = d->clip / sqrt(*gnorm2);
  double bc1 = 1 - pow(d->beta1, d->step), bc2 = 1 - pow(d->beta2, d->step);
  for (uint32_t i = 0; i < n; ++i) {
    double g = grad[i] * c;
    m[i] = d->beta1 * m[i] + (1 - (double)d->beta1) * g;
    v[i] = d->beta2 * v[i] + (1 - (double)d->beta2) * g * g;
    param[i] -= d->lr * (m[i] / bc1 / (sqrt(v[i] / bc2) + d->eps) + d->weight_decay * param[i]);
  }
}
