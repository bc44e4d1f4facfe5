/* test_config.c — models/config.{c,h} without a GPU: the config.json texts of
 * Llama-3.2-1B-Instruct, Qwen2.5-0.5B and Qwen3-0.6B parsed field by field,
 * save -> load round trips (plain and hybrid), every invalid config giving the
 * right status and a message naming the file, and the tensor check of small
 * synthetic checkpoints (all three architectures, hybrid GLA/GDN/Jet layers)
 * with a missing tensor, a wrong shape, a wrong dtype. The expected tensor
 * lists here are written from the HF layouts and host/blocks.c independently
 * of models/config.c. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"

static char tmpdir[64];
static char err[1024];

static char *pth(const char *name) {
  static char buf[64][512]; /* rotating, so a few results can be held at once */
  static int k;
  char *p = buf[k++ & 63];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  return p;
}


static void write_text(const char *path, const char *s) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(s, 1, strlen(s), f) != strlen(s)) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
  fclose(f);
}

/* ---- the real configs -------------------------------------------------------- */

static const char *llama32_1b = "{\n"
                                "  \"architectures\": [\"LlamaForCausalLM\"],\n"
                                "  \"attention_bias\": false,\n"
                                "  \"attention_dropout\": 0.0,\n"
                                "  \"bos_token_id\": 128000,\n"
                                "  \"eos_token_id\": [128001, 128008, 128009],\n"
                                "  \"head_dim\": 64,\n"
                                "  \"hidden_act\": \"silu\",\n"
                                "  \"hidden_size\": 2048,\n"
                                "  \"initializer_range\": 0.02,\n"
                                "  \"intermediate_size\": 8192,\n"
                                "  \"max_position_embeddings\": 131072,\n"
                                "  \"mlp_bias\": false,\n"
                                "  \"model_type\": \"llama\",\n"
                                "  \"num_attention_heads\": 32,\n"
                                "  \"num_hidden_layers\": 16,\n"
                                "  \"num_key_value_heads\": 8,\n"
                                "  \"pretraining_tp\": 1,\n"
                                "  \"rms_norm_eps\": 1e-05,\n"
                                "  \"rope_scaling\": {\n"
                                "    \"factor\": 32.0,\n"
                                "    \"high_freq_factor\": 4.0,\n"
                                "    \"low_freq_factor\": 1.0,\n"
                                "    \"original_max_position_embeddings\": 8192,\n"
                                "    \"rope_type\": \"llama3\"\n"
                                "  },\n"
                                "  \"rope_theta\": 500000.0,\n"
                                "  \"tie_word_embeddings\": true,\n"
                                "  \"torch_dtype\": \"bfloat16\",\n"
                                "  \"transformers_version\": \"4.45.0.dev0\",\n"
                                "  \"use_cache\": true,\n"
                                "  \"vocab_size\": 128256\n"
                                "}\n";

static const char *qwen25_05b = "{\n"
                                "  \"architectures\": [\"Qwen2ForCausalLM\"],\n"
                                "  \"attention_dropout\": 0.0,\n"
                                "  \"bos_token_id\": 151643,\n"
                                "  \"eos_token_id\": 151643,\n"
                                "  \"hidden_act\": \"silu\",\n"
                                "  \"hidden_size\": 896,\n"
                                "  \"initializer_range\": 0.02,\n"
                                "  \"intermediate_size\": 4864,\n"
                                "  \"max_position_embeddings\": 32768,\n"
                                "  \"max_window_layers\": 24,\n"
                                "  \"model_type\": \"qwen2\",\n"
                                "  \"num_attention_heads\": 14,\n"
                                "  \"num_hidden_layers\": 24,\n"
                                "  \"num_key_value_heads\": 2,\n"
                                "  \"rms_norm_eps\": 1e-06,\n"
                                "  \"rope_theta\": 1000000.0,\n"
                                "  \"sliding_window\": 32768,\n"
                                "  \"tie_word_embeddings\": true,\n"
                                "  \"torch_dtype\": \"bfloat16\",\n"
                                "  \"transformers_version\": \"4.40.1\",\n"
                                "  \"use_cache\": true,\n"
                                "  \"use_mrope\": false,\n"
                                "  \"use_sliding_window\": false,\n"
                                "  \"vocab_size\": 151936\n"
                                "}\n";

static const char *qwen3_06b = "{\n"
                               "  \"architectures\": [\"Qwen3ForCausalLM\"],\n"
                               "  \"attention_bias\": false,\n"
                               "  \"attention_dropout\": 0.0,\n"
                               "  \"bos_token_id\": 151643,\n"
                               "  \"eos_token_id\": 151645,\n"
                               "  \"head_dim\": 128,\n"
                               "  \"hidden_act\": \"silu\",\n"
                               "  \"hidden_size\": 1024,\n"
                               "  \"initializer_range\": 0.02,\n"
                               "  \"intermediate_size\": 3072,\n"
                               "  \"max_position_embeddings\": 40960,\n"
                               "  \"max_window_layers\": 28,\n"
                               "  \"model_type\": \"qwen3\",\n"
                               "  \"num_attention_heads\": 16,\n"
                               "  \"num_hidden_layers\": 28,\n"
                               "  \"num_key_value_heads\": 8,\n"
                               "  \"rms_norm_eps\": 1e-06,\n"
                               "  \"rope_scaling\": null,\n"
                               "  \"rope_theta\": 1000000,\n"
                               "  \"sliding_window\": null,\n"
                               "  \"tie_word_embeddings\": true,\n"
                               "  \"torch_dtype\": \"bfloat16\",\n"
                               "  \"transformers_version\": \"4.51.0\",\n"
                               "  \"use_cache\": true,\n"
                               "  \"use_sliding_window\": false,\n"
                               "  \"vocab_size\": 151936\n"
                               "}\n";

/* Every field but source. */
static int same_config(const dtr_model_config *a, const dtr_model_config *b) {
  int ok = a->architecture == b->architecture && a->hidden_size == b->hidden_size &&
           a->intermediate_size == b->intermediate_size &&
           a->num_hidden_layers == b->num_hidden_layers &&
           a->num_attention_heads == b->num_attention_heads &&
           a->num_key_value_heads == b->num_key_value_heads && a->head_dim == b->head_dim &&
           a->vocab_size == b->vocab_size &&
           a->max_position_embeddings == b->max_position_embeddings &&
           a->rms_norm_eps == b->rms_norm_eps && a->rope_theta == b->rope_theta &&
           !memcmp(&a->rope_scaling, &b->rope_scaling, sizeof a->rope_scaling) &&
           a->attention_bias == b->attention_bias && a->o_proj_bias == b->o_proj_bias &&
           a->qk_norm == b->qk_norm && a->tie_word_embeddings == b->tie_word_embeddings &&
           a->bos_token_id == b->bos_token_id && a->n_eos == b->n_eos &&
           a->eos_is_list == b->eos_is_list && !strcmp(a->torch_dtype, b->torch_dtype) &&
           a->hybrid == b->hybrid && !memcmp(a->layer_types, b->layer_types, a->num_hidden_layers);
  for (uint32_t i = 0; i < a->n_eos && ok; i++)
    ok = a->eos_token_id[i] == b->eos_token_id[i];
  for (int k = 0; k < 3 && ok && a->hybrid; k++) {
    const dtr_linear_config *x = &a->linear[k], *y = &b->linear[k];
    ok = x->num_heads == y->num_heads && x->head_dim == y->head_dim && x->norm_eps == y->norm_eps &&
         x->chunk == y->chunk &&
         (k != 0 ||
          (x->gla_gate_rank == y->gla_gate_rank && x->gla_normalizer == y->gla_normalizer)) &&
         (k == 0 || x->conv_size == y->conv_size);
  }
  return ok;
}

static void roundtrip(const dtr_model_config *c, const char *name) {
  char *p = pth(name);
  dtr_model_config back;
  dtr_status s = dtr_model_config_save(c, p, err, sizeof err);
  th_expect(!s, "%s: save: %s", name, s ? err : "ok");
  s = dtr_model_config_load(p, &back, err, sizeof err);
  th_expect(!s && same_config(c, &back), "%s: save -> load round trip %s", name, s ? err : "");
}

static void test_real(void) {
  dtr_model_config c;
  dtr_status s = dtr_model_config_parse(llama32_1b, strlen(llama32_1b), "llama/config.json", &c,
                                        err, sizeof err);
  th_expect(!s, "Llama-3.2-1B parses: %s", s ? err : "ok");
  th_expect(c.architecture == DTR_ARCH_LLAMA && c.hidden_size == 2048 &&
                c.intermediate_size == 8192 && c.num_hidden_layers == 16 &&
                c.num_attention_heads == 32 && c.num_key_value_heads == 8 && c.head_dim == 64 &&
                c.vocab_size == 128256 && c.max_position_embeddings == 131072,
            "Llama-3.2-1B sizes");
  th_expect(c.rms_norm_eps == 1e-5 && c.rope_theta == 500000.0 &&
                c.rope_scaling.type == DTR_ROPE_SCALING_LLAMA3 && c.rope_scaling.factor == 32 &&
                c.rope_scaling.low_freq_factor == 1 && c.rope_scaling.high_freq_factor == 4 &&
                c.rope_scaling.original_max_position_embeddings == 8192,
            "Llama-3.2-1B rope (llama3 scaling)");
  th_expect(!c.attention_bias && !c.o_proj_bias && !c.qk_norm && c.tie_word_embeddings &&
                c.bos_token_id == 128000 && c.n_eos == 3 && c.eos_is_list &&
                c.eos_token_id[0] == 128001 && c.eos_token_id[1] == 128008 &&
                c.eos_token_id[2] == 128009 && !strcmp(c.torch_dtype, "bfloat16") && !c.hybrid,
            "Llama-3.2-1B flags, tokens, dtype");
  roundtrip(&c, "llama.json");

  s = dtr_model_config_parse(qwen25_05b, strlen(qwen25_05b), "qwen2/config.json", &c, err,
                             sizeof err);
  th_expect(!s, "Qwen2.5-0.5B parses: %s", s ? err : "ok");
  th_expect(c.architecture == DTR_ARCH_QWEN2 && c.hidden_size == 896 &&
                c.intermediate_size == 4864 && c.num_hidden_layers == 24 &&
                c.num_attention_heads == 14 && c.num_key_value_heads == 2 && c.head_dim == 64 &&
                c.vocab_size == 151936 && c.max_position_embeddings == 32768,
            "Qwen2.5-0.5B sizes (head_dim = 896/14 = 64)");
  th_expect(c.rms_norm_eps == 1e-6 && c.rope_theta == 1e6 &&
                c.rope_scaling.type == DTR_ROPE_SCALING_NONE && c.attention_bias &&
                !c.o_proj_bias && !c.qk_norm && c.tie_word_embeddings && c.bos_token_id == 151643 &&
                c.n_eos == 1 && !c.eos_is_list && c.eos_token_id[0] == 151643,
            "Qwen2.5-0.5B: q/k/v biases, no o bias, tied, tokens");
  roundtrip(&c, "qwen2.json");

  s = dtr_model_config_parse(qwen3_06b, strlen(qwen3_06b), "qwen3/config.json", &c, err,
                             sizeof err);
  th_expect(!s, "Qwen3-0.6B parses: %s", s ? err : "ok");
  th_expect(c.architecture == DTR_ARCH_QWEN3 && c.hidden_size == 1024 &&
                c.intermediate_size == 3072 && c.num_hidden_layers == 28 &&
                c.num_attention_heads == 16 && c.num_key_value_heads == 8 && c.head_dim == 128 &&
                c.vocab_size == 151936 && c.max_position_embeddings == 40960,
            "Qwen3-0.6B sizes (explicit head_dim 128 != 1024/16)");
  th_expect(c.rms_norm_eps == 1e-6 && c.rope_theta == 1e6 &&
                c.rope_scaling.type == DTR_ROPE_SCALING_NONE && !c.attention_bias &&
                !c.o_proj_bias && c.qk_norm && c.tie_word_embeddings && c.eos_token_id[0] == 151645,
            "Qwen3-0.6B: qk_norm, no biases, integer rope_theta");
  roundtrip(&c, "qwen3.json");

  /* a directory holding config.json, and defaults of absent fields */
  mkdir(pth("dir"), 0755);
  write_text(pth("dir/config.json"),
             "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
             " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100}");
  s = dtr_model_config_load(pth("dir"), &c, err, sizeof err);
  th_expect(!s && c.num_key_value_heads == 4 && c.head_dim == 16 && c.rope_theta == 10000 &&
                c.rms_norm_eps == 1e-6 && c.max_position_embeddings == 2048 &&
                !c.tie_word_embeddings && c.bos_token_id == -1 && c.n_eos == 0 &&
                c.rope_scaling.type == DTR_ROPE_SCALING_NONE && strstr(c.source, "dir/config.json"),
            "directory load, model_type only, transformers' defaults %s", s ? err : "");
  roundtrip(&c, "minimal.json");
}

static const char *hybrid_json =
    "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\","
    " \"hidden_size\": 64, \"intermediate_size\": 96, \"num_hidden_layers\": 5,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 16,"
    " \"vocab_size\": 50, \"tie_word_embeddings\": false, \"rms_norm_eps\": 1e-06,"
    " \"rope_theta\": 1000000.0, \"torch_dtype\": \"float32\","
    " \"dtr_layer_types\": [\"full_attention\", \"gla\", \"gdn\", \"jet\", \"full_attention\"],"
    " \"dtr_linear\": {\"gla\": {\"gla_gate_rank\": 8, \"gla_normalizer\": 12.5, \"chunk\": 32},"
    "                 \"jet\": {\"num_heads\": 2, \"head_dim\": 32, \"norm_eps\": 1e-06}}}";

static void test_hybrid(void) {
  dtr_model_config c;
  dtr_status s =
      dtr_model_config_parse(hybrid_json, strlen(hybrid_json), "hybrid.json", &c, err, sizeof err);
  th_expect(!s, "hybrid config parses: %s", s ? err : "ok");
  th_expect(c.hybrid && c.layer_types[0] == DTR_LAYER_FULL_ATTENTION &&
                c.layer_types[1] == DTR_LAYER_GLA && c.layer_types[2] == DTR_LAYER_GDN &&
                c.layer_types[3] == DTR_LAYER_JET && c.layer_types[4] == DTR_LAYER_FULL_ATTENTION,
            "layer types");
  const dtr_linear_config *g = &c.linear[0], *d = &c.linear[1], *j = &c.linear[2];
  th_expect(g->num_heads == 4 && g->head_dim == 16 && g->gla_gate_rank == 8 &&
                g->gla_normalizer == 12.5 && g->chunk == 32 && g->norm_eps == 1e-5,
            "gla hyper-parameters (given and defaults)");
  th_expect(d->num_heads == 4 && d->head_dim == 16 && d->conv_size == 4 && d->chunk == 64 &&
                d->norm_eps == 1e-5,
            "gdn hyper-parameters (defaults from the attention shape)");
  th_expect(j->num_heads == 2 && j->head_dim == 32 && j->norm_eps == 1e-6, "jet hyper-parameters");
  roundtrip(&c, "hybrid_saved.json");
  /* a config built in code */
  c.layer_types[4] = DTR_LAYER_GDN;
  c.linear[1].chunk = 16;
  roundtrip(&c, "hybrid_edited.json");
  FILE *f = fopen(pth("hybrid_edited.json"), "rb");
  char text[8192] = {0};
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f) fclose(f);
  th_expect(n && strstr(text, "\"dtr_layer_types\"") && strstr(text, "\"gla_gate_rank\": 8") &&
                strstr(text, "\"architectures\"") && strstr(text, "\"model_type\": \"qwen3\"") &&
                strstr(text, "\"rms_norm_eps\": 1e-6"),
            "saved JSON has the HF fields, the dtr fields, and short reals");
}

/* ---- invalid configs ------------------------------------------------------------ */

static const char *base =
    "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 4, \"vocab_size\": 100";

static void bad(const char *name, const char *json, dtr_status want, const char *needle,
                const char *what) {
  char *p = pth(name);
  write_text(p, json);
  dtr_model_config c;
  err[0] = 0;
  dtr_status s = dtr_model_config_load(p, &c, err, sizeof err);
  th_expect(s == want && strstr(err, p) && (!needle || strstr(err, needle)) && !strchr(err, '\n'),
            "%s -> %s: %s", what, dtr_status_name(s), err);
}

static void test_bad(void) {
  char j[2048];
  bad("notjson.json", "{\"hidden_size\": ", DTR_ERR_FORMAT, NULL, "not JSON");
  bad("array.json", "[1]", DTR_ERR_FORMAT, NULL, "not an object");
  snprintf(j, sizeof j, "{\"architectures\": [\"MistralForCausalLM\"], %s}", base);
  bad("mistral.json", j, DTR_ERR_UNSUPPORTED, "MistralForCausalLM", "unknown architecture");
  th_expect(strstr(err, "LlamaForCausalLM") && strstr(err, "Qwen2ForCausalLM") &&
                strstr(err, "Qwen3ForCausalLM"),
            "the message lists the supported architectures");
  snprintf(j, sizeof j, "{%s}", base);
  bad("noarch.json", j, DTR_ERR_FORMAT, "architectures", "no architecture at all");
  bad("nohidden.json",
      "{\"model_type\": \"llama\", \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
      " \"num_attention_heads\": 4, \"vocab_size\": 100}",
      DTR_ERR_FORMAT, "hidden_size", "missing hidden_size");
  bad("novocab.json",
      "{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"intermediate_size\": 128,"
      " \"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
      DTR_ERR_FORMAT, "vocab_size", "missing vocab_size");
  bad("typed.json",
      "{\"model_type\": \"llama\", \"hidden_size\": \"64\", \"intermediate_size\": 128,"
      " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100}",
      DTR_ERR_FORMAT, "hidden_size", "hidden_size a string");
  bad("heads.json",
      "{\"model_type\": \"llama\", \"hidden_size\": 100, \"intermediate_size\": 128,"
      " \"num_hidden_layers\": 2, \"num_attention_heads\": 3, \"vocab_size\": 100}",
      DTR_ERR_FORMAT, "num_attention_heads", "heads not dividing hidden, no head_dim");
  snprintf(j, sizeof j, "{\"model_type\": \"llama\", %s, \"num_key_value_heads\": 3}", base);
  bad("kv.json", j, DTR_ERR_FORMAT, "num_key_value_heads", "kv heads not dividing heads");
  bad("zero.json",
      "{\"model_type\": \"qwen2\", \"hidden_size\": 64, \"intermediate_size\": 128,"
      " \"num_hidden_layers\": 0, \"num_attention_heads\": 4, \"vocab_size\": 100}",
      DTR_ERR_FORMAT, "num_hidden_layers", "zero layers");
  snprintf(j, sizeof j, "{\"model_type\": \"llama\", %s, \"dtr_layer_types\": [\"gla\"]}", base);
  bad("ltlen.json", j, DTR_ERR_FORMAT, "dtr_layer_types", "layer_types length != layers");
  snprintf(j, sizeof j,
           "{\"model_type\": \"llama\", %s, \"dtr_layer_types\": [\"gla\", \"mamba\"]}", base);
  bad("ltbad.json", j, DTR_ERR_FORMAT, "mamba", "unknown layer type");
  snprintf(j, sizeof j,
           "{\"model_type\": \"llama\", %s, \"rope_scaling\": {\"rope_type\": \"yarn\","
           " \"factor\": 4.0}}",
           base);
  bad("yarn.json", j, DTR_ERR_UNSUPPORTED, "yarn", "rope_scaling yarn");
  snprintf(j, sizeof j,
           "{\"model_type\": \"llama\", %s, \"rope_scaling\": {\"type\": \"llama3\","
           " \"factor\": 8.0}}",
           base);
  bad("llama3half.json", j, DTR_ERR_FORMAT, "original_max_position_embeddings",
      "llama3 scaling without its fields");
  snprintf(j, sizeof j, "{\"model_type\": \"llama\", %s, \"hidden_act\": \"gelu\"}", base);
  bad("gelu.json", j, DTR_ERR_UNSUPPORTED, "gelu", "hidden_act gelu");
  snprintf(j, sizeof j, "{\"model_type\": \"qwen2\", %s, \"use_sliding_window\": true}", base);
  bad("swa.json", j, DTR_ERR_UNSUPPORTED, "use_sliding_window", "sliding window");
  snprintf(j, sizeof j,
           "{\"model_type\": \"llama\", %s, \"dtr_layer_types\": [\"gdn\", \"gdn\"],"
           " \"dtr_linear\": {\"gdn\": {\"conv_size\": 3}}}",
           base);
  bad("conv3.json", j, DTR_ERR_UNSUPPORTED, "conv_size", "conv_size 3");
  snprintf(j, sizeof j,
           "{\"model_type\": \"llama\", %s, \"dtr_linear\": {\"gla\": {\"gate_rank\": 3}}}", base);
  bad("linkey.json", j, DTR_ERR_FORMAT, "gate_rank", "unknown dtr_linear key");
  snprintf(j, sizeof j,
           "{\"model_type\": \"llama\", %s, \"dtr_layer_types\": [\"jet\", \"gla\"],"
           " \"dtr_linear\": {\"jet\": {\"num_heads\": 3, \"head_dim\": 5}}}",
           base);
  bad("jet8.json", j, DTR_ERR_FORMAT, "jet", "jet width not a multiple of 8");
  snprintf(j, sizeof j, "{\"model_type\": \"llama\", %s, \"eos_token_id\": [1, -2]}", base);
  bad("eos.json", j, DTR_ERR_FORMAT, "eos_token_id", "negative eos id");
  dtr_model_config c;
  char *p = pth("absent.json");
  th_expect(dtr_model_config_load(p, &c, err, sizeof err) == DTR_ERR_IO && strstr(err, p),
            "missing file -> IO: %s", err);
}

/* ---- tensor checks --------------------------------------------------------------- */

typedef struct tlist {
  char name[256][128];
  uint64_t shape[256][2];
  int n;
} tlist;

/* Adds a tensor "rows x cols" (cols 0: a vector). */
static void tl_add(tlist *l, uint64_t r, uint64_t c, const char *fmt, int layer,
                   const char *suffix) {
  snprintf(l->name[l->n], 128, fmt, layer, suffix);
  l->shape[l->n][0] = r;
  l->shape[l->n][1] = c;
  l->n++;
}

/* The tensors of one layer of a HF checkpoint (and of dtr's student layers) as
 * the brief describes them, written out by hand. */
static void layer_tensors(tlist *l, const dtr_model_config *c, int L, int with_attn) {
  uint64_t h = c->hidden_size, I = c->intermediate_size, D = c->head_dim,
           Q = c->num_attention_heads * D, K = c->num_key_value_heads * D;
  const char *f = "model.layers.%d.%s";
  tl_add(l, h, 0, f, L, "input_layernorm.weight");
  tl_add(l, h, 0, f, L, "post_attention_layernorm.weight");
  tl_add(l, I, h, f, L, "mlp.gate_proj.weight");
  tl_add(l, I, h, f, L, "mlp.up_proj.weight");
  tl_add(l, h, I, f, L, "mlp.down_proj.weight");
  if (with_attn) {
    tl_add(l, Q, h, f, L, "self_attn.q_proj.weight");
    tl_add(l, K, h, f, L, "self_attn.k_proj.weight");
    tl_add(l, K, h, f, L, "self_attn.v_proj.weight");
    tl_add(l, h, Q, f, L, "self_attn.o_proj.weight");
    if (c->architecture == DTR_ARCH_QWEN2) {
      tl_add(l, Q, 0, f, L, "self_attn.q_proj.bias");
      tl_add(l, K, 0, f, L, "self_attn.k_proj.bias");
      tl_add(l, K, 0, f, L, "self_attn.v_proj.bias");
    }
    if (c->architecture == DTR_ARCH_QWEN3) {
      tl_add(l, D, 0, f, L, "self_attn.q_norm.weight");
      tl_add(l, D, 0, f, L, "self_attn.k_norm.weight");
    }
  }
  int t = c->layer_types[L];
  if (t == DTR_LAYER_FULL_ATTENTION) return;
  const dtr_linear_config *lc = &c->linear[t - 1];
  uint64_t H = lc->num_heads, HD = H * lc->head_dim;
  const char *g = "model.layers.%d.linear_attn.%s";
  tl_add(l, HD, h, g, L, "q_proj.weight");
  tl_add(l, HD, h, g, L, "k_proj.weight");
  tl_add(l, HD, h, g, L, "v_proj.weight");
  tl_add(l, HD, h, g, L, "g_proj.weight");
  tl_add(l, h, HD, g, L, "o_proj.weight");
  tl_add(l, lc->head_dim, 0, g, L, "o_norm.weight");
  if (t == DTR_LAYER_GLA) {
    tl_add(l, lc->gla_gate_rank, h, g, L, "gk_proj.0.weight");
    tl_add(l, HD, lc->gla_gate_rank, g, L, "gk_proj.1.weight");
    tl_add(l, HD, 0, g, L, "gk_proj.1.bias");
    return;
  }
  tl_add(l, H, h, g, L, "a_proj.weight");
  tl_add(l, H, h, g, L, "b_proj.weight");
  tl_add(l, H, 0, g, L, "A_log");
  tl_add(l, H, 0, g, L, "dt_bias");
  if (t == DTR_LAYER_GDN) {
    tl_add(l, HD, 4, g, L, "q_conv1d.weight");
    tl_add(l, HD, 4, g, L, "k_conv1d.weight");
    tl_add(l, HD, 4, g, L, "v_conv1d.weight");
  } else {
    tl_add(l, HD / 8, h, g, L, "dynamic_conv.w1.weight");
    tl_add(l, 4 * HD, HD / 8, g, L, "dynamic_conv.w2.weight");
    tl_add(l, 4 * HD, 0, g, L, "dynamic_conv.w2.bias");
  }
}

static void model_tensors(tlist *l, const dtr_model_config *c, int hybrid_attn) {
  l->n = 0;
  tl_add(l, c->vocab_size, c->hidden_size, "model.embed_tokens.weight%.0d%s", 0, "");
  tl_add(l, c->hidden_size, 0, "model.norm.weight%.0d%s", 0, "");
  if (!c->tie_word_embeddings)
    tl_add(l, c->vocab_size, c->hidden_size, "lm_head.weight%.0d%s", 0, "");
  for (uint32_t L = 0; L < c->num_hidden_layers; L++)
    layer_tensors(l, c, (int)L, c->layer_types[L] == DTR_LAYER_FULL_ATTENTION || hybrid_attn);
}

static float zeros[1 << 16];

/* Writes l as dir/model.safetensors, skipping tensor `skip`, with tensor `alter`
 * given shape alt (or dtype alt_dt), and checks it against c. */
static dtr_status check_case(const dtr_model_config *c, const tlist *l, int skip, int alter,
                             const uint64_t *alt, dtr_dtype alt_dt, unsigned flags) {
  dtr_st_writer *w = dtr_st_writer_create();
  for (int i = 0; i < l->n; i++) {
    if (i == skip) continue;
    uint64_t sh[2] = {l->shape[i][0], l->shape[i][1]};
    dtr_dtype dt = DTR_DTYPE_F32;
    if (i == alter && alt) memcpy(sh, alt, sizeof sh);
    if (i == alter && !alt) dt = alt_dt;
    if (sh[0] * (sh[1] ? sh[1] : 1) > (1 << 16)) {
      fprintf(stderr, "test tensor too large\n");
      exit(1);
    }
    dtr_st_writer_add(w, l->name[i], dt, sh[1] ? 2 : 1, sh, zeros, err, sizeof err);
  }
  char *p = pth("ck.safetensors");
  dtr_status s = dtr_st_writer_save(w, p, err, sizeof err);
  dtr_st_writer_destroy(w);
  dtr_safetensors *st = NULL;
  if (!s) s = dtr_safetensors_open(p, &st, err, sizeof err);
  if (!s) s = dtr_model_config_check_tensors(c, st, flags, err, sizeof err);
  dtr_safetensors_close(st);
  return s;
}

static int find(const tlist *l, const char *name) {
  for (int i = 0; i < l->n; i++)
    if (!strcmp(l->name[i], name)) return i;
  return -1;
}

static void test_tensors(void) {
  static const char *small[3] = {
      "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 32,"
      " \"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
      " \"num_key_value_heads\": 2, \"vocab_size\": 40, \"tie_word_embeddings\": false,"
      " \"torch_dtype\": \"float32\"}",
      "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 32,"
      " \"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
      " \"num_key_value_heads\": 1, \"vocab_size\": 40, \"tie_word_embeddings\": true,"
      " \"torch_dtype\": \"bfloat16\"}",
      "{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 32, \"head_dim\": 16,"
      " \"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
      " \"num_key_value_heads\": 2, \"vocab_size\": 40, \"tie_word_embeddings\": true}",
  };
  tlist *l = malloc(sizeof *l);
  dtr_model_config c;
  for (int a = 0; a < 3; a++) {
    dtr_model_config_parse(small[a], strlen(small[a]), "small/config.json", &c, err, sizeof err);
    const char *an = dtr_arch_name(c.architecture);
    model_tensors(l, &c, 0);
    dtr_status s = check_case(&c, l, -1, -1, NULL, DTR_DTYPE_F32, 0);
    th_expect(!s, "%s: complete checkpoint passes %s", an, s ? err : "");
    /* every single missing tensor is caught and named */
    int all = 1;
    for (int i = 0; i < l->n; i++) {
      s = check_case(&c, l, i, -1, NULL, DTR_DTYPE_F32, 0);
      if (s != DTR_ERR_FORMAT || !strstr(err, l->name[i]) || !strstr(err, "missing")) {
        all = 0;
        printf("  not caught: missing %s (%s)\n", l->name[i], err);
      }
    }
    th_expect(all, "%s: each of %d missing tensors is reported by name", an, l->n);
    int k = find(l, "model.layers.1.self_attn.k_proj.weight");
    uint64_t wrong[2] = {l->shape[k][0] + 1, l->shape[k][1]};
    s = check_case(&c, l, -1, k, wrong, DTR_DTYPE_F32, 0);
    char want[64], got[64];
    snprintf(want, sizeof want, "[%llu, %llu]", (unsigned long long)l->shape[k][0],
             (unsigned long long)l->shape[k][1]);
    snprintf(got, sizeof got, "[%llu, %llu]", (unsigned long long)wrong[0],
             (unsigned long long)wrong[1]);
    th_expect(s == DTR_ERR_FORMAT && strstr(err, l->name[k]) && strstr(err, want) &&
                  strstr(err, got) && strstr(err, "small/config.json") &&
                  strstr(err, "ck.safetensors"),
              "%s: wrong k_proj shape names tensor, both shapes, both files: %s", an, err);
    k = find(l, "model.norm.weight");
    uint64_t as2d[2] = {c.hidden_size, 1};
    s = check_case(&c, l, -1, k, as2d, DTR_DTYPE_F32, 0);
    th_expect(s == DTR_ERR_FORMAT && strstr(err, "model.norm.weight"),
              "%s: a vector stored as a matrix is caught: %s", an, err);
    s = check_case(&c, l, -1, k, NULL, DTR_DTYPE_I32, 0);
    th_expect(s == DTR_ERR_UNSUPPORTED && strstr(err, "I32"), "%s: I32 tensor refused: %s", an,
              err);
    s = check_case(&c, l, -1, k, NULL, DTR_DTYPE_BF16, 0);
    th_expect(!s, "%s: mixed F32/BF16 passes without the strict flag", an);
    if (c.torch_dtype[0]) {
      s = check_case(&c, l, -1, -1, NULL, DTR_DTYPE_F32, DTR_CHECK_STRICT_DTYPE);
      int f32 = !strcmp(c.torch_dtype, "float32");
      th_expect(f32 ? !s : (s == DTR_ERR_FORMAT && strstr(err, c.torch_dtype) != NULL),
                "%s: strict dtype check against torch_dtype %s: %s", an, c.torch_dtype,
                s ? err : "ok");
    }
  }
  /* tied embeddings: lm_head optional but shape-checked if present */
  dtr_model_config_parse(small[1], strlen(small[1]), "small/config.json", &c, err, sizeof err);
  model_tensors(l, &c, 0);
  tl_add(l, c.vocab_size, c.hidden_size + 1, "lm_head.weight%.0d%s", 0, "");
  th_expect(check_case(&c, l, -1, -1, NULL, DTR_DTYPE_F32, 0) == DTR_ERR_FORMAT &&
                strstr(err, "lm_head.weight"),
            "tied: a present lm_head of the wrong shape is caught: %s", err);

  /* hybrid: layers 1..3 are gla, gdn, jet students without self_attn */
  dtr_model_config_parse(hybrid_json, strlen(hybrid_json), "hybrid/config.json", &c, err,
                         sizeof err);
  model_tensors(l, &c, 0);
  dtr_status s = check_case(&c, l, -1, -1, NULL, DTR_DTYPE_F32, 0);
  th_expect(!s, "hybrid checkpoint (gla, gdn, jet students, no self_attn) passes %s", s ? err : "");
  int all = 1;
  for (int i = 0; i < l->n; i++) {
    if (!strstr(l->name[i], "linear_attn")) continue;
    s = check_case(&c, l, i, -1, NULL, DTR_DTYPE_F32, 0);
    all &= s == DTR_ERR_FORMAT && strstr(err, l->name[i]) != NULL;
    uint64_t wr[2] = {l->shape[i][0] * 2, l->shape[i][1]};
    s = check_case(&c, l, -1, i, wr, DTR_DTYPE_F32, 0);
    all &= s == DTR_ERR_FORMAT && strstr(err, l->name[i]) != NULL;
    if (!all) printf("  not caught: %s (%s)\n", l->name[i], err);
  }
  th_expect(all, "hybrid: every student tensor missing or misshapen is caught");
  /* the teacher's self_attn kept beside the student is fine, and checked */
  model_tensors(l, &c, 1);
  th_expect(!check_case(&c, l, -1, -1, NULL, DTR_DTYPE_F32, 0),
            "hybrid with the teacher's self_attn kept passes");
  int k = find(l, "model.layers.2.self_attn.q_proj.weight");
  uint64_t wr[2] = {3, 3};
  th_expect(check_case(&c, l, -1, k, wr, DTR_DTYPE_F32, 0) == DTR_ERR_FORMAT &&
                strstr(err, "model.layers.2.self_attn.q_proj.weight"),
            "hybrid: a kept self_attn of the wrong shape is caught: %s", err);

  /* dtr_linear_tensors agrees with the hand-written lists */
  const char *names[32];
  uint64_t shapes[32][2];
  all = 1;
  for (int t = DTR_LAYER_GLA; t <= DTR_LAYER_JET; t++) {
    tlist *one = calloc(1, sizeof *one);
    dtr_model_config c2 = c;
    c2.layer_types[0] = (uint8_t)t;
    layer_tensors(one, &c2, 0, 0);
    uint32_t n =
        dtr_linear_tensors((dtr_layer_type)t, &c.linear[t - 1], c.hidden_size, names, shapes, 32);
    all &= (int)n == one->n - 5; /* the layer list also has the norms and the MLP */
    for (uint32_t i = 0; i < n; i++) {
      char full[160];
      snprintf(full, sizeof full, "model.layers.0.linear_attn.%s", names[i]);
      int x = find(one, full);
      all &= x >= 0 && one->shape[x][0] == shapes[i][0] && one->shape[x][1] == shapes[i][1];
    }
    free(one);
  }
  th_expect(all, "dtr_linear_tensors lists the brief's names and shapes");
  free(l);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/dtr_cfg_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  test_real();
  test_hybrid();
  test_bad();
  test_tensors();
  th_rm_tree(tmpdir);
  return th_finish();
}
