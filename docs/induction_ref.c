/* docs/induction_ref.c: an independent CPU trainer, for checking `dtr train` on
 * the recall and induction data (docs/BENCHMARKS.md, 2026-12-08). It shares
 * no code with dtr. The model is a Llama of the same shape: RMSNorm, RoPE in
 * the NEOX pairing, multi-head attention, SwiGLU, tied embeddings, the same
 * init (o_proj and down_proj scaled by 1/sqrt(2 layers)). AdamW runs with
 * dtr's defaults: betas 0.9/0.95, weight decay 0.1 on the matrices, clip 1, 50
 * warm-up steps. Forward and backward are written out by hand in float. Text
 * is split on spaces into words; the recall files use one-token words, so the
 * task is the same as dtr's. Every window of T+1 tokens starts at a document.
 *   cc -O2 -std=c11 -o induction_ref docs/induction_ref.c -lm
 *   ./induction_ref FILE STEPS [lr=3e-3] [batch=8] [fdcheck=0]
 * Environment: D (hidden, 64), L (layers, 2), H (heads, 2), F (ffn, 128),
 * T (window, 128), WD (0.1), INIT (init std, 0.02), SEED. Every 50 steps it
 * prints the loss and, for files with "query:", the argmax accuracy on the
 * answers (the token after each key of the query section). fdcheck=1 instead
 * compares 8 gradients with central differences. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int V, D = 64, L = 2, H = 2, HD, F = 128, T = 128, B = 8;
static double LR = 3e-3, WD = 0.1, B1 = 0.9, B2 = 0.95, EPS = 1e-8, CLIP = 1.0;
static int WARM = 50;
static double INIT = 0.02;
static float NEPS = 1e-5f;

/* ---- vocabulary ---- */
static char **words;
static int nwords, capw;
static int word_id(const char *w) {
  for (int i = 0; i < nwords; i++)
    if (!strcmp(words[i], w)) return i;
  if (nwords == capw) {
    capw = capw ? 2 * capw : 64;
    words = realloc(words, capw * sizeof *words);
  }
  size_t len = strlen(w) + 1;
  words[nwords] = malloc(len);
  memcpy(words[nwords], w, len);
  return nwords++;
}

static uint64_t rs = 88172645463325252ull;
static uint64_t xr(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return rs;
}
static double unif(void) { return (xr() >> 11) * (1.0 / 9007199254740992.0); }
static double gauss(void) {
  double u = unif(), v = unif();
  if (u < 1e-300) u = 1e-300;
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* ---- parameters ---- */
typedef struct {
  float *ln1, *wq, *wk, *wv, *wo, *ln2, *wg, *wu, *wd;
} layer_p;
static float *P, *G, *M, *Vv;
static size_t NP;
static float *emb, *lnf;
static layer_p lp[8], lg[8];
static float *gemb, *glnf;

static float *carve(float *base, size_t *off, size_t n) {
  float *p = base + *off;
  *off += n;
  return p;
}
static void layout(float *base, float **e, float **nf, layer_p *l) {
  size_t off = 0;
  *e = carve(base, &off, (size_t)V * D);
  for (int i = 0; i < L; i++) {
    l[i].ln1 = carve(base, &off, D);
    l[i].wq = carve(base, &off, (size_t)D * D);
    l[i].wk = carve(base, &off, (size_t)D * D);
    l[i].wv = carve(base, &off, (size_t)D * D);
    l[i].wo = carve(base, &off, (size_t)D * D);
    l[i].ln2 = carve(base, &off, D);
    l[i].wg = carve(base, &off, (size_t)F * D);
    l[i].wu = carve(base, &off, (size_t)F * D);
    l[i].wd = carve(base, &off, (size_t)D * F);
  }
  *nf = carve(base, &off, D);
  NP = off;
}

/* y[n][o] = sum_i x[n][i] W[o][i] */
static void mm(float *y, const float *x, const float *W, int N, int O, int I) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < O; o++) {
      float s = 0;
      const float *a = x + (size_t)n * I, *w = W + (size_t)o * I;
      for (int i = 0; i < I; i++) s += a[i] * w[i];
      y[(size_t)n * O + o] = s;
    }
}
/* dx += dy W ; dW += dy^T x */
static void mm_bwd(float *dx, float *dW, const float *dy, const float *x, const float *W, int N,
                   int O, int I) {
  for (int n = 0; n < N; n++) {
    const float *g = dy + (size_t)n * O;
    float *dxn = dx + (size_t)n * I;
    const float *xn = x + (size_t)n * I;
    for (int o = 0; o < O; o++) {
      float go = g[o];
      const float *w = W + (size_t)o * I;
      float *dw = dW + (size_t)o * I;
      for (int i = 0; i < I; i++) {
        dxn[i] += go * w[i];
        dw[i] += go * xn[i];
      }
    }
  }
}

static void rms_fwd(float *y, float *rstd, const float *x, const float *g, int N) {
  for (int n = 0; n < N; n++) {
    double s = 0;
    for (int i = 0; i < D; i++) s += (double)x[n * D + i] * x[n * D + i];
    float r = (float)(1.0 / sqrt(s / D + NEPS));
    rstd[n] = r;
    for (int i = 0; i < D; i++) y[n * D + i] = x[n * D + i] * r * g[i];
  }
}
/* dx += ..., dg += ... */
static void rms_bwd(float *dx, float *dg, const float *dy, const float *x, const float *g,
                    const float *rstd, int N) {
  for (int n = 0; n < N; n++) {
    float r = rstd[n];
    double dot = 0;
    for (int i = 0; i < D; i++) {
      dg[i] += dy[n * D + i] * x[n * D + i] * r;
      dot += (double)dy[n * D + i] * g[i] * x[n * D + i];
    }
    for (int i = 0; i < D; i++)
      dx[n * D + i] += r * dy[n * D + i] * g[i] - (float)(dot * r * r * r / D) * x[n * D + i];
  }
}

static float *cosb, *sinb;
static void rope(float *x, int N, int sign) { /* x (N, H, HD), pos = n */
  int h2 = HD / 2;
  for (int n = 0; n < N; n++)
    for (int h = 0; h < H; h++) {
      float *p = x + ((size_t)n * H + h) * HD;
      for (int i = 0; i < h2; i++) {
        float c = cosb[n * h2 + i], s = sign * sinb[n * h2 + i];
        float a = p[i], b = p[i + h2];
        p[i] = a * c - b * s;
        p[i + h2] = b * c + a * s;
      }
    }
}

typedef struct {
  float *res, *ln1, *r1, *q, *k, *v, *pr, *att, *mid, *ln2, *r2, *g, *u, *h;
} acts;
static acts A[8];
static float *resf, *lnff, *rf, *logits;

static float *al(size_t n) { return calloc(n, sizeof(float)); }

static double forward(const int *x, const int *y, int N) {
  for (int n = 0; n < N; n++) memcpy(A[0].res + n * D, emb + (size_t)x[n] * D, D * 4);
  float sc = 1.0f / sqrtf((float)HD);
  for (int l = 0; l < L; l++) {
    acts *a = &A[l];
    layer_p *w = &lp[l];
    float *next = l + 1 < L ? A[l + 1].res : resf;
    rms_fwd(a->ln1, a->r1, a->res, w->ln1, N);
    mm(a->q, a->ln1, w->wq, N, D, D);
    mm(a->k, a->ln1, w->wk, N, D, D);
    mm(a->v, a->ln1, w->wv, N, D, D);
    rope(a->q, N, 1);
    rope(a->k, N, 1);
    for (int h = 0; h < H; h++)
      for (int t = 0; t < N; t++) {
        float *pr = a->pr + ((size_t)h * N + t) * N;
        const float *qt = a->q + ((size_t)t * H + h) * HD;
        float mx = -1e30f;
        for (int s = 0; s <= t; s++) {
          const float *ks = a->k + ((size_t)s * H + h) * HD;
          float d = 0;
          for (int i = 0; i < HD; i++) d += qt[i] * ks[i];
          pr[s] = d * sc;
          if (pr[s] > mx) mx = pr[s];
        }
        double z = 0;
        for (int s = 0; s <= t; s++) z += (pr[s] = expf(pr[s] - mx));
        for (int s = 0; s <= t; s++) pr[s] = (float)(pr[s] / z);
        float *o = a->att + ((size_t)t * H + h) * HD;
        for (int i = 0; i < HD; i++) o[i] = 0;
        for (int s = 0; s <= t; s++) {
          const float *vs = a->v + ((size_t)s * H + h) * HD;
          for (int i = 0; i < HD; i++) o[i] += pr[s] * vs[i];
        }
      }
    mm(a->mid, a->att, w->wo, N, D, D);
    for (int i = 0; i < N * D; i++) a->mid[i] += a->res[i];
    rms_fwd(a->ln2, a->r2, a->mid, w->ln2, N);
    mm(a->g, a->ln2, w->wg, N, F, D);
    mm(a->u, a->ln2, w->wu, N, F, D);
    for (int i = 0; i < N * F; i++) {
      float g = a->g[i];
      a->h[i] = g / (1 + expf(-g)) * a->u[i];
    }
    mm(next, a->h, w->wd, N, D, F);
    for (int i = 0; i < N * D; i++) next[i] += a->mid[i];
  }
  rms_fwd(lnff, rf, resf, lnf, N);
  mm(logits, lnff, emb, N, V, D);
  double loss = 0;
  for (int n = 0; n < N; n++) {
    float *lg_ = logits + (size_t)n * V, mx = -1e30f;
    for (int j = 0; j < V; j++)
      if (lg_[j] > mx) mx = lg_[j];
    double z = 0;
    for (int j = 0; j < V; j++) z += exp(lg_[j] - mx);
    double lse = mx + log(z);
    loss += lse - lg_[y[n]];
    for (int j = 0; j < V; j++) lg_[j] = (float)exp(lg_[j] - lse); /* probs */
  }
  return loss;
}

static float *dres, *dln, *dmid, *dq, *dk, *dv, *datt, *dg, *du, *dh, *dlog;

static void backward(const int *x, const int *y, int N, float scale) {
  for (int n = 0; n < N; n++) {
    for (int j = 0; j < V; j++) dlog[(size_t)n * V + j] = logits[(size_t)n * V + j] * scale;
    dlog[(size_t)n * V + y[n]] -= scale;
  }
  memset(dln, 0, N * D * 4);
  mm_bwd(dln, gemb, dlog, lnff, emb, N, V, D);
  memset(dres, 0, N * D * 4);
  rms_bwd(dres, glnf, dln, resf, lnf, rf, N);
  float sc = 1.0f / sqrtf((float)HD);
  for (int l = L - 1; l >= 0; l--) {
    acts *a = &A[l];
    layer_p *w = &lp[l], *gw = &lg[l];
    memset(dh, 0, N * F * 4);
    mm_bwd(dh, gw->wd, dres, a->h, w->wd, N, D, F);
    for (int i = 0; i < N * F; i++) {
      float g = a->g[i], sg = 1 / (1 + expf(-g));
      float silu = g * sg;
      du[i] = dh[i] * silu;
      dg[i] = dh[i] * a->u[i] * (sg * (1 + g * (1 - sg)));
    }
    memset(dln, 0, N * D * 4);
    mm_bwd(dln, gw->wg, dg, a->ln2, w->wg, N, F, D);
    mm_bwd(dln, gw->wu, du, a->ln2, w->wu, N, F, D);
    memcpy(dmid, dres, N * D * 4);
    rms_bwd(dmid, gw->ln2, dln, a->mid, w->ln2, a->r2, N);
    memset(datt, 0, N * D * 4);
    mm_bwd(datt, gw->wo, dmid, a->att, w->wo, N, D, D);
    memset(dq, 0, N * D * 4);
    memset(dk, 0, N * D * 4);
    memset(dv, 0, N * D * 4);
    for (int h = 0; h < H; h++)
      for (int t = 0; t < N; t++) {
        const float *pr = a->pr + ((size_t)h * N + t) * N;
        const float *dot = datt + ((size_t)t * H + h) * HD;
        float dp[1024];
        double sum = 0;
        for (int s = 0; s <= t; s++) {
          const float *vs = a->v + ((size_t)s * H + h) * HD;
          float *dvs = dv + ((size_t)s * H + h) * HD;
          float d = 0;
          for (int i = 0; i < HD; i++) {
            d += dot[i] * vs[i];
            dvs[i] += pr[s] * dot[i];
          }
          dp[s] = d;
          sum += (double)pr[s] * d;
        }
        const float *qt = a->q + ((size_t)t * H + h) * HD;
        float *dqt = dq + ((size_t)t * H + h) * HD;
        for (int s = 0; s <= t; s++) {
          float ds = pr[s] * (dp[s] - (float)sum) * sc;
          const float *ks = a->k + ((size_t)s * H + h) * HD;
          float *dks = dk + ((size_t)s * H + h) * HD;
          for (int i = 0; i < HD; i++) {
            dqt[i] += ds * ks[i];
            dks[i] += ds * qt[i];
          }
        }
      }
    rope(dq, N, -1);
    rope(dk, N, -1);
    memset(dln, 0, N * D * 4);
    mm_bwd(dln, gw->wq, dq, a->ln1, w->wq, N, D, D);
    mm_bwd(dln, gw->wk, dk, a->ln1, w->wk, N, D, D);
    mm_bwd(dln, gw->wv, dv, a->ln1, w->wv, N, D, D);
    memcpy(dres, dmid, N * D * 4);
    rms_bwd(dres, gw->ln1, dln, a->res, w->ln1, a->r1, N);
  }
  for (int n = 0; n < N; n++)
    for (int i = 0; i < D; i++) gemb[(size_t)x[n] * D + i] += dres[n * D + i];
}

static int QID = -1, EOTID = -1;
static double acc_hit, acc_n;
static void acc_update(const int *x, int N) {
  int q0 = -1;
  for (int t = 0; t < N; t++) {
    if (x[t] == EOTID) q0 = -1;
    if (x[t] == QID) { q0 = t; continue; }
    if (q0 >= 0 && (t - q0) % 2 == 1) {
      const float *p = logits + (size_t)t * V;
      int am = 0;
      for (int j = 1; j < V; j++) if (p[j] > p[am]) am = j;
      acc_hit += am == x[t + 1 < N ? t + 1 : t] && t + 1 < N;
      acc_n += t + 1 < N;
    }
  }
}
int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: induction_ref FILE STEPS [lr] [batch] [fdcheck]\n");
    return 2;
  }
  int steps = atoi(argv[2]);
  if (argc > 3) LR = atof(argv[3]);
  if (argc > 4) B = atoi(argv[4]);
  int fd = argc > 5 ? atoi(argv[5]) : 0;
  if (getenv("D")) D = atoi(getenv("D"));
  if (getenv("L")) L = atoi(getenv("L"));
  if (getenv("H")) H = atoi(getenv("H"));
  if (getenv("F")) F = atoi(getenv("F"));
  if (getenv("T")) T = atoi(getenv("T"));
  if (getenv("WD")) WD = atof(getenv("WD"));
  if (getenv("INIT")) INIT = atof(getenv("INIT"));
  if (getenv("SEED")) rs += atoi(getenv("SEED"));
  if (L < 1 || L > 8 || H < 1 || D % H || (D / H) % 2 || T < 2 || T > 1024 || B < 1) {
    fprintf(stderr, "need 1 <= L <= 8, H dividing D into even head dims, 2 <= T <= 1024\n");
    return 2;
  }
  HD = D / H;
  /* tokenize: words, "\n" and docs; record doc starts */
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    fprintf(stderr, "%s: cannot open\n", argv[1]);
    return 1;
  }
  int cap = 1 << 20, n = 0, ns = 0, caps = 1 << 16;
  int *tok = malloc(cap * 4), *starts = malloc(caps * 4);
  char w[256];
  int c, wl = 0, atstart = 1;
  while ((c = fgetc(f)) != EOF) {
    if (c == ' ' || c == '\n') {
      if (wl) {
        w[wl] = 0;
        if (n + 2 >= cap) tok = realloc(tok, (cap *= 2) * 4);
        if (!strcmp(w, "<|endoftext|>")) {
          tok[n++] = word_id(w);
          atstart = 1;
        } else {
          if (atstart) {
            if (ns == caps) starts = realloc(starts, (caps *= 2) * 4);
            starts[ns++] = n;
            atstart = 0;
          }
          tok[n++] = word_id(w);
        }
        wl = 0;
      }
      if (c == '\n') {
        if (n + 2 >= cap) tok = realloc(tok, (cap *= 2) * 4);
        tok[n++] = word_id("\\n");
      }
    } else if (wl < 255)
      w[wl++] = (char)c;
  }
  fclose(f);
  V = nwords;
  for (int i = 0; i < nwords; i++) { if (!strcmp(words[i], "query:")) QID = i; if (!strcmp(words[i], "<|endoftext|>")) EOTID = i; }
  fprintf(stderr, "%d tokens, %d docs, vocab %d\n", n, ns, V);
  layout(NULL, &emb, &lnf, lp);
  P = al(NP), G = al(NP), M = al(NP), Vv = al(NP);
  layout(P, &emb, &lnf, lp);
  layout(G, &gemb, &glnf, lg);
  /* init */
  for (size_t i = 0; i < NP; i++) P[i] = 0;
  for (size_t i = 0; i < (size_t)V * D; i++) emb[i] = (float)(INIT * gauss());
  double ps = 1.0 / sqrt(2.0 * L);
  for (int l = 0; l < L; l++) {
    float *mats[7] = {lp[l].wq, lp[l].wk, lp[l].wv, lp[l].wo, lp[l].wg, lp[l].wu, lp[l].wd};
    size_t sz[7] = {D * D, D * D, D * D, D * D, F * D, F * D, D * F};
    for (int m = 0; m < 7; m++)
      for (size_t i = 0; i < sz[m]; i++)
        mats[m][i] = (float)(INIT * (m == 3 || m == 6 ? ps : 1) * gauss());
    for (int i = 0; i < D; i++) lp[l].ln1[i] = lp[l].ln2[i] = 1;
  }
  for (int i = 0; i < D; i++) lnf[i] = 1;
  /* acts */
  for (int l = 0; l < L; l++) {
    acts *a = &A[l];
    a->res = al(T * D), a->ln1 = al(T * D), a->r1 = al(T), a->q = al(T * D), a->k = al(T * D);
    a->v = al(T * D), a->pr = al((size_t)H * T * T), a->att = al(T * D), a->mid = al(T * D);
    a->ln2 = al(T * D), a->r2 = al(T), a->g = al(T * F), a->u = al(T * F), a->h = al(T * F);
  }
  resf = al(T * D), lnff = al(T * D), rf = al(T), logits = al((size_t)T * V);
  dres = al(T * D), dln = al(T * D), dmid = al(T * D), dq = al(T * D);
  dk = al(T * D), dv = al(T * D), datt = al(T * D), dg = al(T * F), du = al(T * F);
  dh = al(T * F), dlog = al((size_t)T * V);
  cosb = al(T * HD / 2), sinb = al(T * HD / 2);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < HD / 2; i++) {
      double inv = pow(10000.0, -2.0 * i / HD);
      cosb[t * HD / 2 + i] = (float)cos(t * inv);
      sinb[t * HD / 2 + i] = (float)sin(t * inv);
    }
  if (fd) { /* finite-difference check on one window */
    int *x = tok + starts[0], *y = tok + starts[0] + 1;
    int N = 32;
    memset(G, 0, NP * 4);
    forward(x, y, N);
    backward(x, y, N, 1.0f);
    size_t idx[8] = {5, (size_t)V * D + 3, (size_t)V * D + D + 77, (size_t)V * D + D + 5000,
                     (size_t)V * D + 4 * D * D + D + 40, NP - 3, (size_t)V * D + 2 * D * D + 9,
                     NP - D - 500};
    for (int j = 0; j < 8; j++) {
      float o = P[idx[j]];
      double h = 1e-2;
      P[idx[j]] = o + h;
      double lp1 = forward(x, y, N);
      P[idx[j]] = o - h;
      double lm1 = forward(x, y, N);
      P[idx[j]] = o;
      printf("param %zu: analytic %.6g fd %.6g\n", idx[j], G[idx[j]], (lp1 - lm1) / (2 * h));
    }
    return 0;
  }
  double ema = 0;
  for (int s = 1; s <= steps; s++) {
    memset(G, 0, NP * 4);
    double loss = 0;
    for (int b = 0; b < B; b++) {
      int st = starts[xr() % ns];
      if (st > n - T - 1) st = n - T - 1;
      loss += forward(tok + st, tok + st + 1, T);
      acc_update(tok + st, T);
      backward(tok + st, tok + st + 1, T, 1.0f / (T * B));
    }
    loss /= T * B;
    double g2 = 0;
    for (size_t i = 0; i < NP; i++) g2 += (double)G[i] * G[i];
    double gn = sqrt(g2), cl = CLIP > 0 && gn > CLIP ? CLIP / gn : 1.0;
    double lr = s <= WARM ? LR * s / WARM : LR;
    double bc1 = 1 - pow(B1, s), bc2 = 1 - pow(B2, s);
    /* decay: matrices and embedding (not norms) */
    for (size_t i = 0; i < NP; i++) {
      double g = G[i] * cl;
      M[i] = (float)(B1 * M[i] + (1 - B1) * g);
      Vv[i] = (float)(B2 * Vv[i] + (1 - B2) * g * g);
      double upd = (M[i] / bc1) / (sqrt(Vv[i] / bc2) + EPS);
      P[i] -= (float)(lr * upd);
    }
    /* weight decay on non-norm tensors */
    {
      layer_p *w = lp;
      for (size_t i = 0; i < (size_t)V * D; i++) emb[i] -= (float)(lr * WD * emb[i]);
      for (int l = 0; l < L; l++) {
        float *mats[7] = {w[l].wq, w[l].wk, w[l].wv, w[l].wo, w[l].wg, w[l].wu, w[l].wd};
        size_t sz[7] = {D * D, D * D, D * D, D * D, F * D, F * D, D * F};
        for (int m = 0; m < 7; m++)
          for (size_t i = 0; i < sz[m]; i++) mats[m][i] -= (float)(lr * WD * mats[m][i]);
      }
    }
    ema = s == 1 ? loss : 0.98 * ema + 0.02 * loss;
    if (s % 50 == 0 || s == 1) {
      printf("step %5d loss %.4f ema %.4f gnorm %.3f acc %.3f\n", s, loss, ema, gn, acc_n ? acc_hit / acc_n : 0);
      acc_hit = acc_n = 0;
      fflush(stdout);
    }
  }
  return 0;
}
