/* ref_model.c — the transformer of ref_model.h in double precision, written
 * straight from the Hugging Face modeling code's math (see host/model.c). */
#include "ref_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtr_ops.h"

static const float *W(ref_model_weight_fn w, void *ud, uint32_t L, const char *suffix) {
  char nm[192];
  snprintf(nm, sizeof nm, "model.layers.%u.%s", L, suffix);
  return w(ud, nm);
}

/* out (T, N) = x (T, K) W^T + b */
static void lin(double *out, const double *x, const float *Wt, const float *b, uint32_t T,
                uint32_t N, uint32_t K) {
  for (uint32_t t = 0; t < T; t++)
    for (uint32_t n = 0; n < N; n++) {
      double s = b ? b[n] : 0;
      for (uint32_t k = 0; k < K; k++) s += x[(size_t)t * K + k] * Wt[(size_t)n * K + k];
      out[(size_t)t * N + n] = s;
    }
}

static void rms(double *out, const double *x, const float *w, uint32_t rows, uint32_t C,
                double eps) {
  for (uint32_t r = 0; r < rows; r++) {
    double ss = 0;
    for (uint32_t c = 0; c < C; c++) ss += x[(size_t)r * C + c] * x[(size_t)r * C + c];
    double s = 1.0 / sqrt(ss / C + eps);
    for (uint32_t c = 0; c < C; c++) out[(size_t)r * C + c] = x[(size_t)r * C + c] * s * w[c];
  }
}

/* NeoX: pairs (i, i + D/2) of every head rotated by fp32(pos * inv_freq[i]). */
static void rope(double *x, uint32_t T, uint32_t H, uint32_t D, const float *inv) {
  for (uint32_t t = 0; t < T; t++)
    for (uint32_t h = 0; h < H; h++)
      for (uint32_t i = 0; i < D / 2; i++) {
        double a = (float)((float)t * inv[i]);
        double *p = x + ((size_t)t * H + h) * D;
        double x0 = p[i], x1 = p[i + D / 2];
        p[i] = x0 * cos(a) - x1 * sin(a);
        p[i + D / 2] = x1 * cos(a) + x0 * sin(a);
      }
}

void ref_model_forward(double *logits, const dtr_model_config *c, ref_model_weight_fn w,
                       void *ud, const int32_t *ids, uint32_t T) {
  uint32_t Hd = c->hidden_size, D = c->head_dim, Hq = c->num_attention_heads,
           Hkv = c->num_key_value_heads, I = c->intermediate_size, V = c->vocab_size;
  size_t QD = (size_t)Hq * D, KD = (size_t)Hkv * D;
  double eps = c->rms_norm_eps;
  double *x = calloc((size_t)T * Hd, 8), *h = calloc((size_t)T * Hd, 8),
         *q = calloc(T * QD, 8), *k = calloc(T * KD, 8), *v = calloc(T * KD, 8),
         *o = calloc(T * QD, 8), *y = calloc((size_t)T * Hd, 8), *g = calloc((size_t)T * I, 8),
         *u = calloc((size_t)T * I, 8), *sc = calloc(T, 8);
  float *inv = calloc(D / 2, 4);
  dtr_rope_scaling rs = {0};
  if (c->rope_scaling.type == DTR_ROPE_SCALING_LLAMA3) {
    rs.factor = (float)c->rope_scaling.factor;
    rs.low_freq_factor = (float)c->rope_scaling.low_freq_factor;
    rs.high_freq_factor = (float)c->rope_scaling.high_freq_factor;
    rs.original_max_position = c->rope_scaling.original_max_position_embeddings;
  }
  dtr_rope_inv_freq(inv, D, c->rope_theta, &rs);
  const float *emb = w(ud, "model.embed_tokens.weight");
  for (uint32_t t = 0; t < T; t++)
    for (uint32_t j = 0; j < Hd; j++) x[(size_t)t * Hd + j] = emb[(size_t)ids[t] * Hd + j];
  for (uint32_t L = 0; L < c->num_hidden_layers; L++) {
    rms(h, x, W(w, ud, L, "input_layernorm.weight"), T, Hd, eps);
    lin(q, h, W(w, ud, L, "self_attn.q_proj.weight"), W(w, ud, L, "self_attn.q_proj.bias"), T,
        QD, Hd);
    lin(k, h, W(w, ud, L, "self_attn.k_proj.weight"), W(w, ud, L, "self_attn.k_proj.bias"), T,
        KD, Hd);
    lin(v, h, W(w, ud, L, "self_attn.v_proj.weight"), W(w, ud, L, "self_attn.v_proj.bias"), T,
        KD, Hd);
    if (c->qk_norm) {
      rms(q, q, W(w, ud, L, "self_attn.q_norm.weight"), T * Hq, D, eps);
      rms(k, k, W(w, ud, L, "self_attn.k_norm.weight"), T * Hkv, D, eps);
    }
    rope(q, T, Hq, D, inv);
    rope(k, T, Hkv, D, inv);
    for (uint32_t hh = 0; hh < Hq; hh++) {
      uint32_t kh = hh / (Hq / Hkv);
      for (uint32_t i = 0; i < T; i++) {
        double mx = -INFINITY, sum = 0;
        for (uint32_t j = 0; j <= i; j++) {
          double s = 0;
          for (uint32_t d = 0; d < D; d++) s += q[i * QD + hh * D + d] * k[j * KD + kh * D + d];
          sc[j] = s / sqrt((double)D);
          if (sc[j] > mx) mx = sc[j];
        }
        for (uint32_t j = 0; j <= i; j++) sum += (sc[j] = exp(sc[j] - mx));
        for (uint32_t d = 0; d < D; d++) {
          double a = 0;
          for (uint32_t j = 0; j <= i; j++) a += sc[j] * v[j * KD + kh * D + d];
          o[i * QD + hh * D + d] = a / sum;
        }
      }
    }
    lin(y, o, W(w, ud, L, "self_attn.o_proj.weight"), W(w, ud, L, "self_attn.o_proj.bias"), T,
        Hd, QD);
    for (size_t i = 0; i < (size_t)T * Hd; i++) x[i] += y[i];
    rms(h, x, W(w, ud, L, "post_attention_layernorm.weight"), T, Hd, eps);
    lin(g, h, W(w, ud, L, "mlp.gate_proj.weight"), NULL, T, I, Hd);
    lin(u, h, W(w, ud, L, "mlp.up_proj.weight"), NULL, T, I, Hd);
    for (size_t i = 0; i < (size_t)T * I; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
    lin(y, g, W(w, ud, L, "mlp.down_proj.weight"), NULL, T, Hd, I);
    for (size_t i = 0; i < (size_t)T * Hd; i++) x[i] += y[i];
  }
  rms(h, x, w(ud, "model.norm.weight"), T, Hd, eps);
  const float *head = c->tie_word_embeddings ? emb : w(ud, "lm_head.weight");
  lin(logits, h, head, NULL, T, V, Hd);
  free(x); free(h); free(q); free(k); free(v); free(o); free(y); free(g); free(u); free(sc);
  free(inv);
}
