/* ref_conv.c — double-precision references of the conv kernels and the gated
 * RMSNorm (ref_conv.h): plain loops over the definitions, written for clarity. */
#include "ref_conv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

/* Input of sequence b (tokens [s, ...)) at absolute position pos: before s it
 * comes from cache_in (row 3 + pos - s) or is zero. */
static double xat(const double *x, const double *cache_in, uint32_t b, int64_t s, int64_t pos,
                  uint32_t C, uint32_t c) {
  if (pos >= s) return x[pos * C + c];
  if (!cache_in) return 0.0;
  return cache_in[((size_t)b * 3 + (size_t)(3 + pos - s)) * C + c];
}

/* The conv tap i of token t, channel c: static w (C, 4) or per-token kern. */
static double tap(const double *w, const double *kern, int64_t t, uint32_t C, uint32_t c, int i) {
  return kern ? kern[((size_t)t * C + c) * 4 + i] : w[(size_t)c * 4 + i];
}

static void conv_fwd(double *out, double *cache_out, const double *x, const double *w,
                     const double *kern, const double *cache_in, const int32_t *offsets, uint32_t B,
                     uint32_t C, int silu) {
  for (uint32_t b = 0; b < B; b++) {
    int64_t s = offsets[b], e = offsets[b + 1];
    for (int64_t t = s; t < e; t++)
      for (uint32_t c = 0; c < C; c++) {
        double y = 0;
        for (int i = 0; i < 4; i++)
          y += tap(w, kern, t, C, c, i) * xat(x, cache_in, b, s, t - 3 + i, C, c);
        out[t * C + c] = silu ? y * sigmoid(y) : y;
      }
    if (cache_out) {
      /* Read all three before writing: cache_out may be cache_in. */
      double tmp[3];
      for (uint32_t c = 0; c < C; c++) {
        for (int j = 0; j < 3; j++)
          tmp[j] = xat(x, cache_in, b, s, e - 3 + j, C, c);
        for (int j = 0; j < 3; j++)
          cache_out[((size_t)b * 3 + j) * C + c] = tmp[j];
      }
    }
  }
}

/* With y_t = sum_i k_t[i] x_{t-3+i} and out = f(y): dy_t = dout_t f'(y_t),
 * dx_{t-3+i} += k_t[i] dy_t (only inside the sequence: earlier inputs are the
 * cache, whose gradient is not asked for), dk_t[i] = dy_t x_{t-3+i}. */
static void conv_bwd(double *dx, double *dw, double *dkern, const double *dout, const double *x,
                     const double *w, const double *kern, const double *cache_in,
                     const int32_t *offsets, uint32_t B, uint32_t Ttot, uint32_t C, int silu) {
  if (dx) memset(dx, 0, sizeof(double) * Ttot * C);
  for (uint32_t b = 0; b < B; b++) {
    int64_t s = offsets[b], e = offsets[b + 1];
    for (int64_t t = s; t < e; t++)
      for (uint32_t c = 0; c < C; c++) {
        double xs[4], y = 0;
        for (int i = 0; i < 4; i++) {
          xs[i] = xat(x, cache_in, b, s, t - 3 + i, C, c);
          y += tap(w, kern, t, C, c, i) * xs[i];
        }
        double dy = dout[t * C + c];
        if (silu) {
          double sg = sigmoid(y);
          dy *= sg * (1 + y * (1 - sg)); /* d/dy [y sigmoid(y)] */
        }
        for (int i = 0; i < 4; i++) {
          if (dx && t - 3 + i >= s) dx[(t - 3 + i) * C + c] += tap(w, kern, t, C, c, i) * dy;
          if (dw) dw[(size_t)c * 4 + i] += dy * xs[i];
          if (dkern) dkern[((size_t)t * C + c) * 4 + i] = dy * xs[i];
        }
      }
  }
}

static void conv_decode(double *out, double *cache, const double *x, const double *w,
                        const double *kern, uint32_t B, uint32_t C, int silu) {
  for (uint32_t b = 0; b < B; b++)
    for (uint32_t c = 0; c < C; c++) {
      double *h = cache + (size_t)b * 3 * C + c; /* rows h[0], h[C], h[2C] */
      double xs[4] = {h[0], h[C], h[2 * (size_t)C], x[(size_t)b * C + c]}, y = 0;
      for (int i = 0; i < 4; i++)
        y += (kern ? kern[((size_t)b * C + c) * 4 + i] : w[(size_t)c * 4 + i]) * xs[i];
      out[(size_t)b * C + c] = silu ? y * sigmoid(y) : y;
      h[0] = xs[1];
      h[C] = xs[2];
      h[2 * (size_t)C] = xs[3];
    }
}

void ref_shortconv_fwd(double *out, double *cache_out, const double *x, const double *w,
                       const double *cache_in, const int32_t *offsets, uint32_t B, uint32_t Ttot,
                       uint32_t C, int silu) {
  (void)Ttot;
  conv_fwd(out, cache_out, x, w, NULL, cache_in, offsets, B, C, silu);
}

void ref_shortconv_bwd(double *dx, double *dw, const double *dout, const double *x, const double *w,
                       const double *cache_in, const int32_t *offsets, uint32_t B, uint32_t Ttot,
                       uint32_t C, int silu) {
  conv_bwd(dx, dw, NULL, dout, x, w, NULL, cache_in, offsets, B, Ttot, C, silu);
}

void ref_shortconv_decode(double *out, double *cache, const double *x, const double *w, uint32_t B,
                          uint32_t C, int silu) {
  conv_decode(out, cache, x, w, NULL, B, C, silu);
}

void ref_dynconv_fwd(double *out, double *cache_out, const double *x, const double *kern,
                     const double *cache_in, const int32_t *offsets, uint32_t B, uint32_t Ttot,
                     uint32_t C, int silu) {
  (void)Ttot;
  conv_fwd(out, cache_out, x, NULL, kern, cache_in, offsets, B, C, silu);
}

void ref_dynconv_bwd(double *dx, double *dkern, const double *dout, const double *x,
                     const double *kern, const double *cache_in, const int32_t *offsets, uint32_t B,
                     uint32_t Ttot, uint32_t C, int silu) {
  conv_bwd(dx, NULL, dkern, dout, x, NULL, kern, cache_in, offsets, B, Ttot, C, silu);
}

void ref_dynconv_decode(double *out, double *cache, const double *x, const double *kern, uint32_t B,
                        uint32_t C, int silu) {
  conv_decode(out, cache, x, NULL, kern, B, C, silu);
}

void ref_gated_rmsnorm_fwd(double *out, double *rstd, const double *o, const double *gate,
                           const double *w, uint32_t N, uint32_t C, double eps) {
  for (uint32_t n = 0; n < N; n++) {
    const double *on = o + (size_t)n * C, *gn = gate + (size_t)n * C;
    double ss = 0;
    for (uint32_t c = 0; c < C; c++)
      ss += on[c] * on[c];
    double r = 1.0 / sqrt(ss / C + eps);
    if (rstd) rstd[n] = r;
    for (uint32_t c = 0; c < C; c++)
      out[(size_t)n * C + c] = on[c] * r * w[c] * gn[c] * sigmoid(gn[c]);
  }
}

/* out_j = o_j r w_j silu(g_j), r = (sum_k o_k^2 / C + eps)^(-1/2).
 * dgate_j = dout_j o_j r w_j silu'(g_j); dw_j += dout_j o_j r silu(g_j);
 * with dn_j = dout_j w_j silu(g_j) (the gradient of the normalised o_j r) the
 * RMSNorm backward gives dinp_k = r dn_k - (r^3 / C) o_k sum_j dn_j o_j. */
void ref_gated_rmsnorm_bwd(double *dinp, double *dgate, double *dw, const double *dout,
                           const double *o, const double *gate, const double *w, const double *rstd,
                           uint32_t N, uint32_t C) {
  for (uint32_t n = 0; n < N; n++) {
    const double *on = o + (size_t)n * C, *gn = gate + (size_t)n * C, *dn = dout + (size_t)n * C;
    double r = rstd[n], dot = 0;
    for (uint32_t c = 0; c < C; c++) {
      double sg = sigmoid(gn[c]), sl = gn[c] * sg;
      dot += dn[c] * w[c] * sl * on[c];
      if (dgate) dgate[(size_t)n * C + c] = dn[c] * on[c] * r * w[c] * sg * (1 + gn[c] * (1 - sg));
      if (dw) dw[c] += dn[c] * on[c] * r * sl;
    }
    if (dinp)
      for (uint32_t c = 0; c < C; c++) {
        double sl = gn[c] * sigmoid(gn[c]);
        dinp[(size_t)n * C + c] = r * dn[c] * w[c] * sl - r * r * r / C * on[c] * dot;
      }
  }
}
