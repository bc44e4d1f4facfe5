/* blocks.c — GLA, Gated DeltaNet and JetBlock layers on the ops of dtr_ops.h
 * and dtr_linear.h (see blocks.h).
 *
 * Owns: each kind's parameter table (names as flash-linear-attention and
 * Jet-Nemotron call them), the fresh and teacher initialisations, the
 * activation buffers sized once at creation (forward and backward never
 * allocate; with io_f16 the q, k, v slots hold packed fp16 halves), and the op
 * sequences of forward, backward, prefill and decode.
 *
 * Shapes: T packed tokens, H heads of D = head_dim, HD = H*D, hid = hidden.
 * Every projection is y = x W^T with W (out, in) as Hugging Face stores it. */
#include "blocks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TRY(x)                                                                 \
  do {                                                                         \
    dtr_status try_st_ = (x);                                                  \
    if (try_st_ != DTR_OK) return try_st_;                                     \
  } while (0)

enum { MAX_PARAMS = 20, MAX_ACT = 24, ALIGN = 256 };

/* Activation slots (each its own buffer, so independent kernels need no
 * barrier between them). Not every kind uses every slot. */
enum act {
  A_Q0, A_K0, A_V0,   /* projections before conv / silu */
  A_QC, A_KC, A_VC,   /* after conv or silu */
  A_Q, A_K,           /* L2-normalised (GDN, Jet); GLA uses A_Q0, A_K0, A_V0 directly */
  A_A, A_B, A_G, A_BETA, /* GDN gates (T, H) */
  A_GK1, A_GKPRE, A_GK,  /* GLA gate path */
  A_H1, A_S1, A_KERN,    /* Jet dynamic-conv generator */
  A_O, A_GATE, A_RSTD, A_ON,
  A_QKV, A_AB,           /* one-sequence decode: [q | k | v] and [a | b] of one matmul */
  A_COUNT
};

struct dtr_block {
  dtr_ctx *ctx;
  dtr_block_config cfg;
  uint32_t max_tokens, max_seqs;
  dtr_param_info params[MAX_PARAMS];
  uint32_t nparams;
  size_t param_bytes;
  dtr_buf *p, *g; /* parameters, gradients */
  dtr_buf *act[A_COUNT], *dact[A_COUNT];
  size_t act_bytes[A_COUNT];
  dtr_buf *ws; /* backward workspace of the chunk kernel */
  dtr_buf *scratch_state; /* final states of a plain forward: GLA carries its state
                           * through it when lavapipe's loop limit splits a long
                           * sequence into several dispatches */
  /* what the last forward saw */
  dtr_view x, offsets;
  uint32_t B, T;
};

struct dtr_block_state {
  uint32_t nseq;
  uint32_t f16;                 /* S is packed fp16 (cfg.state_f16 at creation) */
  dtr_buf *S;                   /* (nseq, H, D, D) */
  dtr_buf *cq, *ck, *cv;        /* conv caches (nseq, 3, HD) */
  size_t bytes;
};

const char *dtr_block_kind_name(dtr_block_kind k) {
  switch (k) {
  case DTR_BLOCK_GLA: return "gla";
  case DTR_BLOCK_GDN: return "gdn";
  case DTR_BLOCK_JET: return "jet";
  }
  return "?";
}

int dtr_block_kind_parse(const char *s) {
  for (int k = 0; k <= DTR_BLOCK_JET; k++)
    if (!strcmp(s, dtr_block_kind_name((dtr_block_kind)k))) return k;
  return -1;
}

dtr_block_config dtr_block_config_default(dtr_block_kind kind, uint32_t hidden,
                                          uint32_t heads) {
  dtr_block_config c = {.kind = kind, .hidden = hidden, .heads = heads,
                        .head_dim = heads ? hidden / heads : 0, .norm_eps = 1e-5f,
                        .gla_gate_rank = 16, .gla_normalizer = 16.0f, .chunk = 64};
  const char *e = getenv("DTR_STATE_F16");
  c.state_f16 = e && *e == '1';
  e = getenv("DTR_IO_F16");
  c.io_f16 = e && *e == '1';
  return c;
}

const dtr_block_config *dtr_block_cfg(const dtr_block *b) { return &b->cfg; }
void dtr_block_set_state_f16(dtr_block *b, int on) { b->cfg.state_f16 = on != 0; }

/* ---- parameter table ------------------------------------------------------ */

static void add_param(dtr_block *b, const char *name, uint32_t rows, uint32_t cols) {
  dtr_param_info *p = &b->params[b->nparams++];
  p->name = name;
  p->rows = rows;
  p->cols = cols;
  p->offset = b->param_bytes;
  size_t bytes = (size_t)rows * cols * 4;
  b->param_bytes += (bytes + ALIGN - 1) / ALIGN * ALIGN;
}

static void build_table(dtr_block *b) {
  const dtr_block_config *c = &b->cfg;
  uint32_t hid = c->hidden, H = c->heads, D = c->head_dim, HD = H * D;
  add_param(b, "q_proj.weight", HD, hid);
  add_param(b, "k_proj.weight", HD, hid);
  add_param(b, "v_proj.weight", HD, hid);
  if (c->kind == DTR_BLOCK_GLA) {
    add_param(b, "gk_proj.0.weight", c->gla_gate_rank, hid);
    add_param(b, "gk_proj.1.weight", HD, c->gla_gate_rank);
    add_param(b, "gk_proj.1.bias", HD, 1);
  } else {
    add_param(b, "a_proj.weight", H, hid);
    add_param(b, "b_proj.weight", H, hid);
    add_param(b, "A_log", H, 1);
    add_param(b, "dt_bias", H, 1);
    if (c->kind == DTR_BLOCK_GDN) {
      add_param(b, "q_conv1d.weight", HD, 4);
      add_param(b, "k_conv1d.weight", HD, 4);
      add_param(b, "v_conv1d.weight", HD, 4);
    } else {
      add_param(b, "dynamic_conv.w1.weight", HD / 8, hid);
      add_param(b, "dynamic_conv.w2.weight", 4 * HD, HD / 8);
      add_param(b, "dynamic_conv.w2.bias", 4 * HD, 1);
    }
  }
  add_param(b, "g_proj.weight", HD, hid);
  add_param(b, "o_norm.weight", D, 1);
  add_param(b, "o_proj.weight", hid, HD);
}

static const dtr_param_info *find_param(const dtr_block *b, const char *name) {
  for (uint32_t i = 0; i < b->nparams; i++)
    if (!strcmp(b->params[i].name, name)) return &b->params[i];
  return NULL;
}

/* A view of a named parameter in the parameter (or gradient) buffer. */
static dtr_view pv(const dtr_block *b, dtr_buf *buf, const char *name) {
  const dtr_param_info *p = find_param(b, name);
  return (dtr_view){buf, p->offset, (size_t)p->rows * p->cols * 4};
}
#define P(name) pv(b, b->p, name)
#define G(name) pv(b, b->g, name)

/* ---- initialisation ------------------------------------------------------- */

typedef struct rng { uint64_t s; } rng;
static double rng_u(rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return ((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static double rng_n(rng *r) { /* Box-Muller */
  double u = rng_u(r), v = rng_u(r);
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void init_host(dtr_block *b, float *h, uint64_t seed) {
  rng r = {seed * 0x2545f4914f6cdd1dull + 1};
  memset(h, 0, b->param_bytes);
  for (uint32_t i = 0; i < b->nparams; i++) {
    const dtr_param_info *p = &b->params[i];
    float *w = h + p->offset / 4;
    size_t n = (size_t)p->rows * p->cols;
    const char *nm = p->name;
    if (!strcmp(nm, "o_norm.weight")) {
      for (size_t j = 0; j < n; j++) w[j] = 1.0f;
    } else if (!strcmp(nm, "A_log")) {
      /* A ~ U(0, 16), A_log = log A. */
      for (size_t j = 0; j < n; j++) w[j] = (float)log(16.0 * rng_u(&r));
    } else if (!strcmp(nm, "dt_bias")) {
      /* dt log-uniform in [1e-3, 0.1] (floor 1e-4); dt_bias = softplus^-1(dt). */
      for (size_t j = 0; j < n; j++) {
        double dt = exp(log(1e-3) + rng_u(&r) * (log(0.1) - log(1e-3)));
        if (dt < 1e-4) dt = 1e-4;
        w[j] = (float)(dt + log(-expm1(-dt)));
      }
    } else if (strstr(nm, "conv1d.weight")) {
      /* dtr's choice: the identity tap, so a student starts as its teacher's
       * projections (then SiLU). */
      for (size_t j = 0; j < n; j += 4) w[j + 3] = 1.0f;
    } else if (!strcmp(nm, "dynamic_conv.w1.weight") || !strcmp(nm, "dynamic_conv.w2.weight") ||
               !strcmp(nm, "gk_proj.1.bias")) {
      /* zero: JetBlock's generator starts as a static conv given by its bias */
    } else if (!strcmp(nm, "dynamic_conv.w2.bias")) {
      for (size_t j = 0; j < n; j++) w[j] = (float)(0.02 * rng_n(&r));
    } else {
      for (size_t j = 0; j < n; j++) w[j] = (float)(0.02 * rng_n(&r));
    }
  }
}

/* ---- creation ------------------------------------------------------------- */

static dtr_buf *mkbuf(dtr_block *b, size_t bytes) {
  return dtr_buf_create(b->ctx, bytes ? bytes : 4);
}

static size_t act_size(const dtr_block *b, int a) {
  const dtr_block_config *c = &b->cfg;
  size_t T = b->max_tokens, H = c->heads, HD = (size_t)H * c->head_dim;
  int gla = c->kind == DTR_BLOCK_GLA, gdn = c->kind == DTR_BLOCK_GDN,
      jet = c->kind == DTR_BLOCK_JET;
  switch (a) {
  case A_Q0: case A_K0: case A_V0: return T * HD;
  case A_QC: case A_KC: return gla ? 0 : T * HD;
  case A_VC: return gdn || jet ? T * HD : 0;
  case A_Q: case A_K: return gla ? 0 : T * HD;
  case A_A: case A_B: case A_G: case A_BETA: return gla ? 0 : T * H;
  case A_GK1: return gla ? T * c->gla_gate_rank : 0;
  case A_GKPRE: case A_GK: return gla ? T * HD : 0;
  case A_H1: case A_S1: return jet ? T * (HD / 8) : 0;
  case A_KERN: return jet ? T * 4 * HD : 0;
  case A_O: case A_GATE: case A_ON: return T * HD;
  case A_RSTD: return T * H;
  case A_QKV: return 3 * HD;
  case A_AB: return gla ? 0 : 2 * H;
  }
  return 0;
}

/* Whether slot a holds q, k or v as the chunked kernels read them (GLA: the
 * projections; GDN, Jet: after the convs and norms) packed in fp16. Only the
 * chunked kernels read these slots in the backward (the norm, conv and SiLU
 * backwards read their inputs, A_QC, A_KC, A_Q0, ...), so with io_f16 the
 * block keeps them at two bytes a value and no fp32 copy. */
static int packed_slot(const dtr_block *b, int a) {
  if (!b->cfg.io_f16) return 0;
  return b->cfg.kind == DTR_BLOCK_GLA ? a == A_Q0 || a == A_K0 || a == A_V0
                                      : a == A_Q || a == A_K || a == A_VC;
}

dtr_block *dtr_block_create(dtr_ctx *ctx, const dtr_block_config *cfg, uint32_t max_tokens,
                            uint32_t max_seqs, uint64_t seed) {
  if (!cfg->heads || !cfg->head_dim || !cfg->hidden || !max_tokens || !max_seqs ||
      (cfg->head_dim % 4)) {
    dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                      "block: hidden %u, heads %u, head_dim %u (a multiple of 4), "
                      "max_tokens %u, max_seqs %u must all be positive",
                      cfg->hidden, cfg->heads, cfg->head_dim, max_tokens, max_seqs);
    return NULL;
  }
  if (cfg->kind == DTR_BLOCK_JET && (cfg->heads * cfg->head_dim) % 8) {
    dtr_ctx_set_error(ctx, DTR_ERR_INVALID,
                      "jet block: heads*head_dim = %u must be a multiple of 8",
                      cfg->heads * cfg->head_dim);
    return NULL;
  }
  dtr_block *b = calloc(1, sizeof *b);
  if (!b) { dtr_ctx_set_error(ctx, DTR_ERR_OOM, "out of host memory"); return NULL; }
  b->ctx = ctx;
  b->cfg = *cfg;
  if (!b->cfg.chunk) b->cfg.chunk = 64;
  b->max_tokens = max_tokens;
  b->max_seqs = max_seqs;
  build_table(b);
  float *h = malloc(b->param_bytes);
  b->p = mkbuf(b, b->param_bytes);
  b->g = mkbuf(b, b->param_bytes);
  if (!h || !b->p || !b->g) goto fail;
  init_host(b, h, seed);
  if (dtr_buf_upload(ctx, b->p, 0, h, b->param_bytes)) goto fail;
  free(h);
  h = NULL;
  if (dtr_buf_fill(ctx, b->g, 0, b->param_bytes, 0)) goto fail;
  /* a decode step writes up to this many tokens of fp32 into a packed slot */
  size_t dec =
      (size_t)(max_seqs < max_tokens ? max_seqs : max_tokens) * cfg->heads * cfg->head_dim * 4;
  for (int a = 0; a < A_COUNT; a++) {
    size_t bytes = act_size(b, a) * 4, half = dtr_io_bytes(act_size(b, a), 1);
    if (!bytes) continue;
    b->act_bytes[a] = packed_slot(b, a) ? (half > dec ? half : dec) : bytes;
    b->act[a] = mkbuf(b, b->act_bytes[a]);
    b->dact[a] = mkbuf(b, bytes);
    if (!b->act[a] || !b->dact[a]) goto fail;
  }
  dtr_lin_desc d = {.B = max_seqs, .Ttot = max_tokens, .H = cfg->heads, .K = cfg->head_dim,
                    .V = cfg->head_dim, .chunk = b->cfg.chunk};
  size_t ws = cfg->kind == DTR_BLOCK_GLA ? dtr_op_gla_chunk_bwd_workspace(&d)
                                         : dtr_op_gdn_chunk_bwd_workspace(&d);
  if (!(b->ws = mkbuf(b, ws))) goto fail;
  if (!(b->scratch_state = mkbuf(b, (size_t)max_seqs * cfg->heads * cfg->head_dim *
                                        cfg->head_dim * 4)))
    goto fail;
  return b;
fail:
  free(h);
  dtr_block_destroy(b);
  return NULL;
}

void dtr_block_destroy(dtr_block *b) {
  if (!b) return;
  dtr_buf_destroy(b->ctx, b->p);
  dtr_buf_destroy(b->ctx, b->g);
  dtr_buf_destroy(b->ctx, b->ws);
  dtr_buf_destroy(b->ctx, b->scratch_state);
  for (int a = 0; a < A_COUNT; a++) {
    dtr_buf_destroy(b->ctx, b->act[a]);
    dtr_buf_destroy(b->ctx, b->dact[a]);
  }
  free(b);
}

uint32_t dtr_block_params(const dtr_block *b, const dtr_param_info **table) {
  if (table) *table = b->params;
  return b->nparams;
}
dtr_buf *dtr_block_param_buf(dtr_block *b) { return b->p; }
dtr_buf *dtr_block_grad_buf(dtr_block *b) { return b->g; }
size_t dtr_block_param_bytes(const dtr_block *b) { return b->param_bytes; }
size_t dtr_block_act_bytes(const dtr_block *b) {
  size_t n = 0;
  for (int a = 0; a < A_COUNT; a++) n += b->act_bytes[a];
  return n;
}
uint64_t dtr_block_param_count(const dtr_block *b) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < b->nparams; i++) n += (uint64_t)b->params[i].rows * b->params[i].cols;
  return n;
}

dtr_status dtr_block_get_params(dtr_block *b, float *dst) {
  return dtr_buf_download(b->ctx, b->p, 0, dst, b->param_bytes);
}
dtr_status dtr_block_set_params(dtr_block *b, const float *src) {
  return dtr_buf_upload(b->ctx, b->p, 0, src, b->param_bytes);
}

dtr_status dtr_block_set_param(dtr_block *b, const char *name, const float *src) {
  const dtr_param_info *p = find_param(b, name);
  if (!p)
    return dtr_ctx_set_error(b->ctx, DTR_ERR_INVALID, "%s block has no parameter '%s'",
                             dtr_block_kind_name(b->cfg.kind), name);
  return dtr_buf_upload(b->ctx, b->p, p->offset, src, (size_t)p->rows * p->cols * 4);
}

dtr_status dtr_block_init_from_teacher(dtr_block *b, const float *q_proj, const float *k_proj,
                                       const float *v_proj, const float *o_proj,
                                       uint32_t kv_heads) {
  const dtr_block_config *c = &b->cfg;
  uint32_t H = c->heads, D = c->head_dim, hid = c->hidden;
  if (!kv_heads || H % kv_heads)
    return dtr_ctx_set_error(b->ctx, DTR_ERR_INVALID,
                             "teacher has %u KV heads, which does not divide %u query heads",
                             kv_heads, H);
  TRY(dtr_block_set_param(b, "q_proj.weight", q_proj));
  TRY(dtr_block_set_param(b, "o_proj.weight", o_proj));
  /* GQA -> MHA: student head j takes teacher KV head j / (H / kv_heads). */
  size_t head = (size_t)D * hid;
  float *rep = malloc((size_t)H * head * 4);
  if (!rep) return dtr_ctx_set_error(b->ctx, DTR_ERR_OOM, "out of host memory");
  const float *src[2] = {k_proj, v_proj};
  const char *dst[2] = {"k_proj.weight", "v_proj.weight"};
  dtr_status st = DTR_OK;
  for (int m = 0; m < 2 && !st; m++) {
    for (uint32_t j = 0; j < H; j++)
      memcpy(rep + j * head, src[m] + (size_t)(j / (H / kv_heads)) * head, head * 4);
    st = dtr_block_set_param(b, dst[m], rep);
  }
  free(rep);
  return st;
}

dtr_status dtr_block_zero_grad(dtr_block *b) {
  return dtr_buf_fill(b->ctx, b->g, 0, b->param_bytes, 0);
}

/* ---- building blocks of the op sequences ----------------------------------- */

static dtr_view av(dtr_block *b, int a, size_t floats) {
  return (dtr_view){b->act[a], 0, floats * 4};
}
static dtr_view dv_(dtr_block *b, int a, size_t floats) {
  return (dtr_view){b->dact[a], 0, floats * 4};
}

/* q, k or v (slot a, n values) as the chunked kernels read it: fp32, or
 * packed fp16 halves (packed_slot). */
static dtr_view qkv_in(dtr_block *b, int a, size_t n) {
  return (dtr_view){b->act[a], 0, dtr_io_bytes(n, packed_slot(b, a))};
}
/* Where the op that makes q, k or v writes its fp32 values: the slot itself,
 * or for a packed slot the slot's gradient buffer, which nothing reads until
 * the backward overwrites it with the gradient; qkv_keep then packs the three
 * into their half-size slots. */
static dtr_view qkv_out(dtr_block *b, int a, size_t n) {
  return packed_slot(b, a) ? dv_(b, a, n) : av(b, a, n);
}
static dtr_status qkv_keep(dtr_block *b, int q, int k, int v, size_t n) {
  const int slot[3] = {q, k, v};
  for (int i = 0; i < 3; i++)
    if (packed_slot(b, slot[i]))
      TRY(dtr_op_pack_f16(b->ctx, qkv_in(b, slot[i], n), dv_(b, slot[i], n), (uint32_t)n));
  return DTR_OK;
}

/* out (T, N) = x (T, K) W^T (+ bias), W (N, K). */
static dtr_status linear(dtr_block *b, dtr_view out, dtr_view x, dtr_view W, dtr_view bias,
                         uint32_t T, uint32_t N, uint32_t K) {
  dtr_matmul_desc d = {.M = T, .N = N, .K = K, .batch = 1, .trans_b = 1, .alpha = 1.0f};
  return dtr_op_matmul(b->ctx, out, x, W, bias, &d);
}

/* Backward of linear: dW += dout^T x, dbias += colsum(dout); dx (optional) =
 * dout W, accumulated into dx when acc (several projections read one x). */
static dtr_status linear_bwd(dtr_block *b, dtr_view dx, int acc, dtr_view dW, dtr_view dbias,
                             dtr_view dout, dtr_view x, dtr_view W, uint32_t T, uint32_t N,
                             uint32_t K) {
  dtr_matmul_desc d = {.M = T, .N = N, .K = K, .batch = 1, .trans_b = 1, .alpha = 1.0f};
  TRY(dtr_op_matmul_bwd(b->ctx, DTR_NONE, dW, dbias, dout, x, W, &d));
  if (!dtr_view_present(dx)) return DTR_OK;
  dtr_matmul_desc e = {.M = T, .N = K, .K = N, .batch = 1, .alpha = 1.0f,
                       .beta = acc ? 1.0f : 0.0f};
  return dtr_op_matmul(b->ctx, dx, dout, W, DTR_NONE, &e);
}

static dtr_lin_desc lin_desc(const dtr_block *b, uint32_t B, uint32_t T) {
  const dtr_block_config *c = &b->cfg;
  dtr_lin_desc d = {.B = B, .Ttot = T, .H = c->heads, .K = c->head_dim, .V = c->head_dim,
                    .scale = 1.0f / sqrtf((float)c->head_dim), .chunk = c->chunk,
                    .io_f16 = c->io_f16 != 0}; /* the decode ops ignore io_f16 */
  return d;
}

static dtr_status check_tokens(dtr_block *b, uint32_t B, uint32_t T, const char *what) {
  if (T == 0 || T > b->max_tokens || B == 0 || B > b->max_seqs || B > T)
    return dtr_ctx_set_error(b->ctx, DTR_ERR_INVALID,
                             "%s: %u tokens in %u sequences, but the block was made for at "
                             "most %u tokens and %u sequences", what, T, B, b->max_tokens,
                             b->max_seqs);
  return DTR_OK;
}

/* The forward of every kind; with s present, final states and conv caches go
 * to s (prefill). */
static dtr_status forward(dtr_block *b, dtr_block_state *s, dtr_view y, dtr_view x,
                          dtr_view offsets, uint32_t B, uint32_t T) {
  dtr_ctx *ctx = b->ctx;
  const dtr_block_config *c = &b->cfg;
  uint32_t hid = c->hidden, H = c->heads, D = c->head_dim, HD = H * D;
  size_t n = (size_t)T * HD;
  TRY(check_tokens(b, B, T, "block forward"));
  TRY(dtr_check_view(ctx, "block forward", "x", x, (size_t)T * hid * 4));
  TRY(dtr_check_view(ctx, "block forward", "y", y, (size_t)T * hid * 4));
  b->x = x;
  b->offsets = offsets;
  b->B = B;
  b->T = T;
  dtr_lin_desc ld = lin_desc(b, B, T);
  /* the final state: into the decode state, or (fp16 states, plain forwards)
   * the fp32 scratch first */
  dtr_view S = s && !s->f16 ? dtr_whole(s->S)
                            : (dtr_view){b->scratch_state, 0, (size_t)B * H * D * D * 4};
  TRY(linear(b, qkv_out(b, A_Q0, n), x, P("q_proj.weight"), DTR_NONE, T, HD, hid));
  TRY(linear(b, qkv_out(b, A_K0, n), x, P("k_proj.weight"), DTR_NONE, T, HD, hid));
  TRY(linear(b, qkv_out(b, A_V0, n), x, P("v_proj.weight"), DTR_NONE, T, HD, hid));
  TRY(linear(b, av(b, A_GATE, n), x, P("g_proj.weight"), DTR_NONE, T, HD, hid));
  if (c->kind == DTR_BLOCK_GLA) {
    uint32_t R = c->gla_gate_rank;
    TRY(linear(b, av(b, A_GK1, (size_t)T * R), x, P("gk_proj.0.weight"), DTR_NONE, T, R, hid));
    TRY(linear(b, av(b, A_GKPRE, n), av(b, A_GK1, (size_t)T * R), P("gk_proj.1.weight"),
               P("gk_proj.1.bias"), T, HD, R));
    TRY(dtr_op_gla_gate_fwd(ctx, av(b, A_GK, n), av(b, A_GKPRE, n), (uint32_t)n,
                            c->gla_normalizer));
    TRY(qkv_keep(b, A_Q0, A_K0, A_V0, n));
    TRY(dtr_op_gla_chunk_fwd(ctx, av(b, A_O, n), S, qkv_in(b, A_Q0, n), qkv_in(b, A_K0, n),
                             qkv_in(b, A_V0, n), av(b, A_GK, n), DTR_NONE, offsets, &ld));
  } else {
    size_t nh = (size_t)T * H;
    if (c->kind == DTR_BLOCK_GDN) {
      TRY(dtr_op_shortconv_fwd(ctx, av(b, A_QC, n), s ? dtr_whole(s->cq) : DTR_NONE,
                               av(b, A_Q0, n), P("q_conv1d.weight"), DTR_NONE, offsets, B, T,
                               HD, 1));
      TRY(dtr_op_shortconv_fwd(ctx, av(b, A_KC, n), s ? dtr_whole(s->ck) : DTR_NONE,
                               av(b, A_K0, n), P("k_conv1d.weight"), DTR_NONE, offsets, B, T,
                               HD, 1));
      TRY(dtr_op_shortconv_fwd(ctx, qkv_out(b, A_VC, n), s ? dtr_whole(s->cv) : DTR_NONE,
                               av(b, A_V0, n), P("v_conv1d.weight"), DTR_NONE, offsets, B, T,
                               HD, 1));
    } else {
      uint32_t R = HD / 8;
      TRY(dtr_op_silu_fwd(ctx, av(b, A_QC, n), av(b, A_Q0, n), (uint32_t)n));
      TRY(dtr_op_silu_fwd(ctx, av(b, A_KC, n), av(b, A_K0, n), (uint32_t)n));
      TRY(linear(b, av(b, A_H1, (size_t)T * R), x, P("dynamic_conv.w1.weight"), DTR_NONE, T, R,
                 hid));
      TRY(dtr_op_silu_fwd(ctx, av(b, A_S1, (size_t)T * R), av(b, A_H1, (size_t)T * R),
                          T * R));
      TRY(linear(b, av(b, A_KERN, 4 * n), av(b, A_S1, (size_t)T * R),
                 P("dynamic_conv.w2.weight"), P("dynamic_conv.w2.bias"), T, 4 * HD, R));
      TRY(dtr_op_dynconv_fwd(ctx, qkv_out(b, A_VC, n), s ? dtr_whole(s->cv) : DTR_NONE,
                             av(b, A_V0, n), av(b, A_KERN, 4 * n), DTR_NONE, offsets, B, T,
                             HD, 1));
    }
    TRY(dtr_op_l2norm_fwd(ctx, qkv_out(b, A_Q, n), av(b, A_QC, n), T * H, D, 1e-6f));
    TRY(dtr_op_l2norm_fwd(ctx, qkv_out(b, A_K, n), av(b, A_KC, n), T * H, D, 1e-6f));
    TRY(qkv_keep(b, A_Q, A_K, A_VC, n));
    TRY(linear(b, av(b, A_A, nh), x, P("a_proj.weight"), DTR_NONE, T, H, hid));
    TRY(linear(b, av(b, A_B, nh), x, P("b_proj.weight"), DTR_NONE, T, H, hid));
    TRY(dtr_op_gdn_gate_fwd(ctx, av(b, A_G, nh), av(b, A_BETA, nh), av(b, A_A, nh),
                            av(b, A_B, nh), P("A_log"), P("dt_bias"), T, H));
    TRY(dtr_op_gdn_chunk_fwd(ctx, av(b, A_O, n), S, qkv_in(b, A_Q, n), qkv_in(b, A_K, n),
                             qkv_in(b, A_VC, n), av(b, A_G, nh), av(b, A_BETA, nh), DTR_NONE,
                             offsets, &ld));
  }
  if (s && s->f16) TRY(dtr_op_pack_f16(ctx, dtr_whole(s->S), S, B * H * D * D));
  TRY(dtr_op_gated_rmsnorm_fwd(ctx, av(b, A_ON, n), av(b, A_RSTD, (size_t)T * H),
                               av(b, A_O, n), av(b, A_GATE, n), P("o_norm.weight"), T * H, D,
                               c->norm_eps));
  return linear(b, y, av(b, A_ON, n), P("o_proj.weight"), DTR_NONE, T, hid, HD);
}

dtr_status dtr_block_forward(dtr_block *b, dtr_view y, dtr_view x, dtr_view offsets,
                             uint32_t B, uint32_t T) {
  return forward(b, NULL, y, x, offsets, B, T);
}

dtr_status dtr_block_backward(dtr_block *b, dtr_view dx, dtr_view dy) {
  dtr_ctx *ctx = b->ctx;
  const dtr_block_config *c = &b->cfg;
  uint32_t hid = c->hidden, H = c->heads, D = c->head_dim, HD = H * D, T = b->T, B = b->B;
  size_t n = (size_t)T * HD, nh = (size_t)T * H;
  if (!T)
    return dtr_ctx_set_error(ctx, DTR_ERR_INVALID, "block backward called before a forward");
  TRY(dtr_check_view(ctx, "block backward", "dy", dy, (size_t)T * hid * 4));
  if (dtr_view_present(dx))
    TRY(dtr_check_view(ctx, "block backward", "dx", dx, (size_t)T * hid * 4));
  dtr_view x = b->x, offsets = b->offsets;
  dtr_lin_desc ld = lin_desc(b, B, T);
  dtr_view ws = dtr_whole(b->ws);
  /* y = on Wo^T: don = dy Wo, dWo += dy^T on. */
  TRY(linear_bwd(b, dv_(b, A_ON, n), 0, G("o_proj.weight"), DTR_NONE, dy, av(b, A_ON, n),
                 P("o_proj.weight"), T, hid, HD));
  TRY(dtr_op_gated_rmsnorm_bwd(ctx, dv_(b, A_O, n), dv_(b, A_GATE, n), G("o_norm.weight"),
                               dv_(b, A_ON, n), av(b, A_O, n), av(b, A_GATE, n),
                               P("o_norm.weight"), av(b, A_RSTD, nh), T * H, D));
  if (c->kind == DTR_BLOCK_GLA) {
    uint32_t R = c->gla_gate_rank;
    TRY(dtr_op_gla_chunk_bwd(ctx, dv_(b, A_Q0, n), dv_(b, A_K0, n), dv_(b, A_V0, n),
                             dv_(b, A_GK, n), DTR_NONE, dv_(b, A_O, n), DTR_NONE,
                             qkv_in(b, A_Q0, n), qkv_in(b, A_K0, n), qkv_in(b, A_V0, n),
                             av(b, A_GK, n), DTR_NONE, offsets, ws, &ld));
    TRY(dtr_op_gla_gate_bwd(ctx, dv_(b, A_GKPRE, n), dv_(b, A_GK, n), av(b, A_GKPRE, n),
                            (uint32_t)n, c->gla_normalizer));
    TRY(linear_bwd(b, dv_(b, A_GK1, (size_t)T * R), 0, G("gk_proj.1.weight"),
                   G("gk_proj.1.bias"), dv_(b, A_GKPRE, n), av(b, A_GK1, (size_t)T * R),
                   P("gk_proj.1.weight"), T, HD, R));
    TRY(linear_bwd(b, dx, 0, G("gk_proj.0.weight"), DTR_NONE, dv_(b, A_GK1, (size_t)T * R), x,
                   P("gk_proj.0.weight"), T, R, hid));
  } else {
    TRY(dtr_op_gdn_chunk_bwd(ctx, dv_(b, A_Q, n), dv_(b, A_K, n), dv_(b, A_VC, n), dv_(b, A_G, nh),
                             dv_(b, A_BETA, nh), DTR_NONE, dv_(b, A_O, n), DTR_NONE,
                             qkv_in(b, A_Q, n), qkv_in(b, A_K, n), qkv_in(b, A_VC, n),
                             av(b, A_G, nh), av(b, A_BETA, nh), DTR_NONE, offsets, ws, &ld));
    TRY(dtr_op_gdn_gate_bwd(ctx, dv_(b, A_A, nh), dv_(b, A_B, nh), G("A_log"), G("dt_bias"),
                            dv_(b, A_G, nh), dv_(b, A_BETA, nh), av(b, A_A, nh),
                            av(b, A_B, nh), P("A_log"), P("dt_bias"), T, H));
    TRY(linear_bwd(b, dx, 0, G("a_proj.weight"), DTR_NONE, dv_(b, A_A, nh), x,
                   P("a_proj.weight"), T, H, hid));
    TRY(linear_bwd(b, dx, 1, G("b_proj.weight"), DTR_NONE, dv_(b, A_B, nh), x,
                   P("b_proj.weight"), T, H, hid));
    TRY(dtr_op_l2norm_bwd(ctx, dv_(b, A_QC, n), dv_(b, A_Q, n), av(b, A_QC, n), T * H, D,
                          1e-6f));
    TRY(dtr_op_l2norm_bwd(ctx, dv_(b, A_KC, n), dv_(b, A_K, n), av(b, A_KC, n), T * H, D,
                          1e-6f));
    if (c->kind == DTR_BLOCK_GDN) {
      TRY(dtr_op_shortconv_bwd(ctx, dv_(b, A_Q0, n), G("q_conv1d.weight"), dv_(b, A_QC, n),
                               av(b, A_Q0, n), P("q_conv1d.weight"), DTR_NONE, offsets, B, T,
                               HD, 1));
      TRY(dtr_op_shortconv_bwd(ctx, dv_(b, A_K0, n), G("k_conv1d.weight"), dv_(b, A_KC, n),
                               av(b, A_K0, n), P("k_conv1d.weight"), DTR_NONE, offsets, B, T,
                               HD, 1));
      TRY(dtr_op_shortconv_bwd(ctx, dv_(b, A_V0, n), G("v_conv1d.weight"), dv_(b, A_VC, n),
                               av(b, A_V0, n), P("v_conv1d.weight"), DTR_NONE, offsets, B, T,
                               HD, 1));
    } else {
      uint32_t R = HD / 8;
      size_t nr = (size_t)T * R;
      TRY(dtr_op_silu_bwd(ctx, dv_(b, A_Q0, n), dv_(b, A_QC, n), av(b, A_Q0, n), (uint32_t)n));
      TRY(dtr_op_silu_bwd(ctx, dv_(b, A_K0, n), dv_(b, A_KC, n), av(b, A_K0, n), (uint32_t)n));
      TRY(dtr_op_dynconv_bwd(ctx, dv_(b, A_V0, n), dv_(b, A_KERN, 4 * n), dv_(b, A_VC, n),
                             av(b, A_V0, n), av(b, A_KERN, 4 * n), DTR_NONE, offsets, B, T,
                             HD, 1));
      TRY(linear_bwd(b, dv_(b, A_S1, nr), 0, G("dynamic_conv.w2.weight"),
                     G("dynamic_conv.w2.bias"), dv_(b, A_KERN, 4 * n), av(b, A_S1, nr),
                     P("dynamic_conv.w2.weight"), T, 4 * HD, R));
      TRY(dtr_op_silu_bwd(ctx, dv_(b, A_H1, nr), dv_(b, A_S1, nr), av(b, A_H1, nr), T * R));
      TRY(linear_bwd(b, dx, 1, G("dynamic_conv.w1.weight"), DTR_NONE, dv_(b, A_H1, nr), x,
                     P("dynamic_conv.w1.weight"), T, R, hid));
    }
  }
  /* The four projections of x that every kind has; dx sums their parts. */
  TRY(linear_bwd(b, dx, 1, G("q_proj.weight"), DTR_NONE, dv_(b, A_Q0, n), x,
                 P("q_proj.weight"), T, HD, hid));
  TRY(linear_bwd(b, dx, 1, G("k_proj.weight"), DTR_NONE, dv_(b, A_K0, n), x,
                 P("k_proj.weight"), T, HD, hid));
  TRY(linear_bwd(b, dx, 1, G("v_proj.weight"), DTR_NONE, dv_(b, A_V0, n), x,
                 P("v_proj.weight"), T, HD, hid));
  return linear_bwd(b, dx, 1, G("g_proj.weight"), DTR_NONE, dv_(b, A_GATE, n), x,
                    P("g_proj.weight"), T, HD, hid);
}

/* ---- decode ----------------------------------------------------------------- */

dtr_block_state *dtr_block_state_create(dtr_block *b, uint32_t nseq) {
  const dtr_block_config *c = &b->cfg;
  if (!nseq || nseq > b->max_tokens || nseq > b->max_seqs) {
    dtr_ctx_set_error(b->ctx, DTR_ERR_INVALID,
                      "decode state for %u sequences; the block holds at most %u", nseq,
                      b->max_seqs < b->max_tokens ? b->max_seqs : b->max_tokens);
    return NULL;
  }
  dtr_block_state *s = calloc(1, sizeof *s);
  if (!s) { dtr_ctx_set_error(b->ctx, DTR_ERR_OOM, "out of host memory"); return NULL; }
  s->nseq = nseq;
  s->f16 = c->state_f16 != 0;
  size_t HD = (size_t)c->heads * c->head_dim;
  size_t sb = (size_t)nseq * c->heads * c->head_dim * c->head_dim * (s->f16 ? 2 : 4);
  size_t cb = nseq * 3 * HD * 4;
  s->S = mkbuf(b, sb);
  s->bytes = sb;
  int ok = s->S != NULL;
  if (c->kind == DTR_BLOCK_GDN) {
    s->cq = mkbuf(b, cb);
    s->ck = mkbuf(b, cb);
    ok = ok && s->cq && s->ck;
    s->bytes += 2 * cb;
  }
  if (c->kind != DTR_BLOCK_GLA) {
    s->cv = mkbuf(b, cb);
    ok = ok && s->cv;
    s->bytes += cb;
  }
  if (!ok || dtr_block_state_reset(b, s)) {
    dtr_block_state_destroy(b, s);
    return NULL;
  }
  return s;
}

void dtr_block_state_destroy(dtr_block *b, dtr_block_state *s) {
  if (!s) return;
  dtr_buf_destroy(b->ctx, s->S);
  dtr_buf_destroy(b->ctx, s->cq);
  dtr_buf_destroy(b->ctx, s->ck);
  dtr_buf_destroy(b->ctx, s->cv);
  free(s);
}

size_t dtr_block_state_bytes(const dtr_block_state *s) { return s->bytes; }

dtr_status dtr_block_state_reset(dtr_block *b, dtr_block_state *s) {
  dtr_buf *bufs[4] = {s->S, s->cq, s->ck, s->cv};
  for (int i = 0; i < 4; i++)
    if (bufs[i]) TRY(dtr_buf_fill(b->ctx, bufs[i], 0, dtr_buf_size(bufs[i]), 0));
  return DTR_OK;
}

dtr_status dtr_block_prefill(dtr_block *b, dtr_block_state *s, dtr_view y, dtr_view x,
                             dtr_view offsets, uint32_t B, uint32_t Ttot) {
  if (B != s->nseq)
    return dtr_ctx_set_error(b->ctx, DTR_ERR_INVALID,
                             "prefill of %u sequences into a state of %u", B, s->nseq);
  return forward(b, s, y, x, offsets, B, Ttot);
}

/* The parameters first .. first+count-1 of the table as one weight of stacked
 * rows, when they lie back to back with the same width (no padding between);
 * otherwise a view with no buffer. */
static dtr_view param_span(const dtr_block *b, const char *first, uint32_t count) {
  const dtr_param_info *p = find_param(b, first);
  uint32_t i0 = (uint32_t)(p - b->params);
  size_t end = p->offset;
  for (uint32_t i = i0; i < i0 + count; i++) {
    const dtr_param_info *q = &b->params[i];
    if (i >= b->nparams || q->offset != end || q->cols != p->cols) return (dtr_view){0};
    end += (size_t)q->rows * q->cols * 4;
  }
  return (dtr_view){b->p, p->offset, end - p->offset};
}

/* Projections of one token of one sequence: when the count weights stacked at
 * first are contiguous and the outputs' offsets (each n floats) are aligned, one
 * matmul into the fused slot writes them all (the row is [out0 | out1 | ...]),
 * saving dispatches in decode; otherwise one matmul each into slots[i]. out[i]
 * receives the view to read. */
static dtr_status project(dtr_block *b, dtr_view x, const char *first, uint32_t count,
                          int fused_slot, const int *slots, const char *const *names,
                          uint32_t M, uint32_t rows, dtr_view *out) {
  uint32_t hid = b->cfg.hidden;
  size_t n = (size_t)M * rows, al = dtr_ctx_device(b->ctx)->min_storage_offset_align;
  dtr_view w = M == 1 ? param_span(b, first, count) : (dtr_view){0};
  if (w.buf && (n * 4) % (al ? al : 4) == 0) {
    dtr_buf *f = b->act[fused_slot];
    for (uint32_t i = 0; i < count; i++) out[i] = (dtr_view){f, i * n * 4, n * 4};
    return linear(b, (dtr_view){f, 0, count * n * 4}, x, w, DTR_NONE, 1, count * rows, hid);
  }
  for (uint32_t i = 0; i < count; i++) {
    out[i] = av(b, slots[i], n);
    TRY(linear(b, out[i], x, pv(b, b->p, names[i]), DTR_NONE, M, rows, hid));
  }
  return DTR_OK;
}

/* Whether a GDN decode step runs as the one fused kernel: one sequence whose
 * q/k/v and a/b projections came out of the fused slots, short conv weights
 * back to back, head dim <= 64, on a CPU device (where dispatches dominate);
 * DTR_GDN_FUSED=0/1 forces the choice. */
static int use_fused_decode(const dtr_block *b, const dtr_view *qkv, const dtr_view *ab) {
  const dtr_block_config *c = &b->cfg;
  const char *e = getenv("DTR_GDN_FUSED");
  int want = e && *e ? *e != '0' : dtr_ctx_device(b->ctx)->type == DTR_DEVICE_CPU;
  return want && c->kind == DTR_BLOCK_GDN && c->head_dim <= 64 && c->head_dim % 4 == 0 &&
         qkv[0].buf == b->act[A_QKV] && ab[0].buf == b->act[A_AB] &&
         param_span(b, "q_conv1d.weight", 3).buf != NULL;
}

dtr_status dtr_block_decode(dtr_block *b, dtr_block_state *s, dtr_view y, dtr_view x) {
  dtr_ctx *ctx = b->ctx;
  const dtr_block_config *c = &b->cfg;
  uint32_t hid = c->hidden, H = c->heads, D = c->head_dim, HD = H * D, M = s->nseq;
  size_t n = (size_t)M * HD, nh = (size_t)M * H;
  TRY(dtr_check_view(ctx, "block decode", "x", x, (size_t)M * hid * 4));
  TRY(dtr_check_view(ctx, "block decode", "y", y, (size_t)M * hid * 4));
  dtr_lin_desc ld = lin_desc(b, M, M);
  ld.state_f16 = s->f16;
  dtr_view S = dtr_whole(s->S);
  static const int qkv_slots[3] = {A_Q0, A_K0, A_V0};
  static const char *const qkv_names[3] = {"q_proj.weight", "k_proj.weight", "v_proj.weight"};
  dtr_view qkv[3];
  TRY(project(b, x, "q_proj.weight", 3, A_QKV, qkv_slots, qkv_names, M, HD, qkv));
  TRY(linear(b, av(b, A_GATE, n), x, P("g_proj.weight"), DTR_NONE, M, HD, hid));
  if (c->kind == DTR_BLOCK_GLA) {
    uint32_t R = c->gla_gate_rank;
    TRY(linear(b, av(b, A_GK1, (size_t)M * R), x, P("gk_proj.0.weight"), DTR_NONE, M, R, hid));
    TRY(linear(b, av(b, A_GKPRE, n), av(b, A_GK1, (size_t)M * R), P("gk_proj.1.weight"),
               P("gk_proj.1.bias"), M, HD, R));
    TRY(dtr_op_gla_gate_fwd(ctx, av(b, A_GK, n), av(b, A_GKPRE, n), (uint32_t)n,
                            c->gla_normalizer));
    TRY(dtr_op_gla_decode(ctx, av(b, A_O, n), S, qkv[0], qkv[1],
                          qkv[2], av(b, A_GK, n), &ld));
  } else {
    static const int ab_slots[2] = {A_A, A_B};
    static const char *const ab_names[2] = {"a_proj.weight", "b_proj.weight"};
    dtr_view ab[2];
    TRY(project(b, x, "a_proj.weight", 2, A_AB, ab_slots, ab_names, M, H, ab));
    if (use_fused_decode(b, qkv, ab)) {
      dtr_gdn_fused_desc fd = {H,
                               D,
                               (uint32_t)(find_param(b, "q_conv1d.weight")->offset / 4),
                               (uint32_t)(find_param(b, "A_log")->offset / 4),
                               (uint32_t)(find_param(b, "dt_bias")->offset / 4),
                               (uint32_t)(find_param(b, "o_norm.weight")->offset / 4),
                               ld.scale,
                               c->norm_eps,
                               s->f16};
      TRY(dtr_op_gdn_decode_fused(ctx, av(b, A_ON, n), S, dtr_whole(s->cq), dtr_whole(s->ck),
                                  dtr_whole(s->cv), av(b, A_QKV, 3 * n), av(b, A_AB, 2 * nh),
                                  av(b, A_GATE, n), dtr_whole(b->p), &fd));
      return linear(b, y, av(b, A_ON, n), P("o_proj.weight"), DTR_NONE, M, hid, HD);
    }
    if (c->kind == DTR_BLOCK_GDN) {
      TRY(dtr_op_shortconv_decode(ctx, av(b, A_QC, n), dtr_whole(s->cq), qkv[0],
                                  P("q_conv1d.weight"), M, HD, 1));
      TRY(dtr_op_shortconv_decode(ctx, av(b, A_KC, n), dtr_whole(s->ck), qkv[1],
                                  P("k_conv1d.weight"), M, HD, 1));
      TRY(dtr_op_shortconv_decode(ctx, av(b, A_VC, n), dtr_whole(s->cv), qkv[2],
                                  P("v_conv1d.weight"), M, HD, 1));
    } else {
      uint32_t R = HD / 8;
      TRY(dtr_op_silu_fwd(ctx, av(b, A_QC, n), qkv[0], (uint32_t)n));
      TRY(dtr_op_silu_fwd(ctx, av(b, A_KC, n), qkv[1], (uint32_t)n));
      TRY(linear(b, av(b, A_H1, (size_t)M * R), x, P("dynamic_conv.w1.weight"), DTR_NONE, M, R,
                 hid));
      TRY(dtr_op_silu_fwd(ctx, av(b, A_S1, (size_t)M * R), av(b, A_H1, (size_t)M * R), M * R));
      TRY(linear(b, av(b, A_KERN, 4 * n), av(b, A_S1, (size_t)M * R),
                 P("dynamic_conv.w2.weight"), P("dynamic_conv.w2.bias"), M, 4 * HD, R));
      TRY(dtr_op_dynconv_decode(ctx, av(b, A_VC, n), dtr_whole(s->cv), qkv[2],
                                av(b, A_KERN, 4 * n), M, HD, 1));
    }
    TRY(dtr_op_l2norm_fwd(ctx, av(b, A_Q, n), av(b, A_QC, n), M * H, D, 1e-6f));
    TRY(dtr_op_l2norm_fwd(ctx, av(b, A_K, n), av(b, A_KC, n), M * H, D, 1e-6f));
    TRY(dtr_op_gdn_gate_fwd(ctx, av(b, A_G, nh), av(b, A_BETA, nh), ab[0], ab[1], P("A_log"),
                            P("dt_bias"), M, H));
    TRY(dtr_op_gdn_decode(ctx, av(b, A_O, n), S, av(b, A_Q, n), av(b, A_K, n), av(b, A_VC, n),
                          av(b, A_G, nh), av(b, A_BETA, nh), &ld));
  }
  TRY(dtr_op_gated_rmsnorm_fwd(ctx, av(b, A_ON, n), av(b, A_RSTD, nh), av(b, A_O, n),
                               av(b, A_GATE, n), P("o_norm.weight"), M * H, D, c->norm_eps));
  return linear(b, y, av(b, A_ON, n), P("o_proj.weight"), DTR_NONE, M, hid, HD);
}
