/* test_cli.c — the dtr command line as a user meets it: exit codes, --help,
 * clear errors for bad flags and devices, and the JSON shapes that outside
 * checks read (dtr info --json, dtr bench ops --json, dtr bench linear --json).
 * argv[1] is the dtr binary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

static const char *dtr;

static int run(const char *args, char *out, size_t cap) {
  return th_run(dtr, args, out, cap);
}

static int has_all(const char *s, const char *const *keys) {
  for (; *keys; keys++)
    if (!strstr(s, *keys)) { printf("  missing %s\n", *keys); return 0; }
  return 1;
}

/* A 1-layer train.json in dir over dir's tokenizer.json, text.txt and
 * recall.txt; data_extra: more "data" keys, after a comma. */
static void write_train_cfg(const char *path, const char *dir, const char *data_extra) {
  FILE *f = fopen(path, "w");
  if (!f) return;
  fprintf(f, "{\"model\": {\"hidden\": 32, \"layers\": 1, \"heads\": 2, \"kv_heads\": 1, "
             "\"intermediate\": 64, \"max_seq_len\": 32},\n \"data\": {\"tokenizer\": "
             "\"%s/tokenizer.json\", \"train\": \"%s/text.txt\", \"recall\": "
             "\"%s/recall.txt\", %s},\n "
             "\"optim\": {\"batch\": 2, \"seq_len\": 16, \"steps\": 3}}\n",
          dir, dir, dir, data_extra);
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: test_cli path/to/dtr\n"); return 2; }
  dtr = argv[1];
  static char out[1 << 20];
  int rc;
  rc = run("", out, sizeof out);
  th_expect(rc == 2 && strstr(out, "usage"), "dtr with no command: usage, exit 2 (got %d)", rc);
  rc = run("--help", out, sizeof out);
  th_expect(rc == 0 && strstr(out, "bench ops"), "dtr --help lists the commands (exit %d)", rc);
  rc = run("frobnicate", out, sizeof out);
  th_expect(rc == 2 && strstr(out, "unknown command 'frobnicate'"), "unknown command named (%d)", rc);
  rc = run("info", out, sizeof out);
  th_expect(rc == 0 && strstr(out, "device 0") && strstr(out, "subgroup size"),
            "dtr info lists devices with capabilities (exit %d)", rc);
  rc = run("info --json", out, sizeof out);
  const char *ikeys[] = {"{\"devices\": [", "\"type\"", "\"driver\"", "\"heaps\"",
                         "\"subgroup_size\"", "\"max_storage_buffer_range\"",
                         "\"cooperative_matrix\"", "\"fp16_storage\"", NULL};
  th_expect(rc == 0 && has_all(out, ikeys), "dtr info --json has the documented fields");
  rc = run("info --bogus", out, sizeof out);
  th_expect(rc == 2 && strstr(out, "--bogus"), "bad flag is named, exit 2 (got %d)", rc);
  rc = run("bench ops --device 99 --quick", out, sizeof out);
  th_expect(rc == 1 && strstr(out, "device 99"), "a missing device is a clear error: %s", out);
  rc = run("bench ops --quick --json --repeat 1", out, sizeof out);
  const char *okeys[] = {"\"device\"", "\"ops\"", "\"op\"", "\"shape\"", "\"ms\"", "\"gflops\"",
                         "\"baseline_gflops\"", "\"ratio\"", NULL};
  th_expect(rc == 0 && has_all(out, okeys), "dtr bench ops --quick --json (exit %d)", rc);
  if (rc != 0) printf("%s\n", out);
  rc = run("bench linear --quick --json --repeat 1 --steps 2", out, sizeof out);
  const char *lkeys[] = {"\"training\"", "\"decode\"", "\"fwd_ms\"", "\"fwdbwd_ms\"",
                         "\"ms_per_token\"", "\"mixer\": \"gla\"", "\"mixer\": \"gdn\"",
                         "\"mixer\": \"jet\"", "\"mixer\": \"attn\"", "\"fwd_ms_f16\"",
                         "\"fwdbwd_ms_f16\"", "\"f16_speedup_fwd\"", "\"f16_speedup_fwdbwd\"",
                         "\"ms_per_token_f16\"", "\"f16_speedup\"", NULL};
  th_expect(rc == 0 && has_all(out, lkeys), "dtr bench linear --quick --json (exit %d)", rc);
  if (rc != 0) printf("%s\n", out);
  /* bench train on a tiny config (no data files needed); a recall phase longer
   * than the timed steps, as the default teacher's, is not an error there */
  char cfg[128];
  snprintf(cfg, sizeof cfg, "/tmp/dtr_test_cli_%d.json", (int)getpid());
  FILE *f = fopen(cfg, "w");
  if (f) {
    fprintf(f, "{\"model\": {\"hidden\": 32, \"layers\": 2, \"heads\": 2, \"kv_heads\": 1, "
               "\"intermediate\": 64, \"max_seq_len\": 32},\n \"data\": {\"tokenizer\": "
               "\"t.json\", \"train\": \"x.txt\", \"recall\": \"r.txt\", "
               "\"recall_only_steps\": 8},\n \"optim\": {\"batch\": 2, "
               "\"seq_len\": 16, \"steps\": 10}}\n");
    fclose(f);
  }
  char args[800];
  snprintf(args, sizeof args, "bench train --config %s --steps 2 --vocab 300 --json", cfg);
  rc = run(args, out, sizeof out);
  const char *tkeys[] = {"\"tokens_per_s\"", "\"model_gflops\"", "\"matmul_gflops\"",
                         "\"utilisation\"", NULL};
  th_expect(rc == 0 && has_all(out, tkeys), "dtr bench train --json (exit %d): %.300s", rc, out);
  remove(cfg);

  /* dtr train end to end on a byte tokenizer, the recall rows scored on their
   * answers: 40 documents of 2 pairs, so 80 answers of 2 tokens each (" " and
   * the letter, with this tokenizer), 160 answer tokens */
  char dir[128], path[300];
  snprintf(dir, sizeof dir, "/tmp/dtr_test_cli_train_%d", (int)getpid());
  mkdir(dir, 0755);
  th_write_byte_tokenizer(dir);
  snprintf(path, sizeof path, "%s/text.txt", dir);
  if ((f = fopen(path, "w"))) {
    for (int i = 0; i < 200; i++) fprintf(f, "the cat sat on the mat number %d.\n", i);
    fclose(f);
  }
  snprintf(path, sizeof path, "%s/recall.txt", dir);
  if ((f = fopen(path, "w"))) {
    for (int i = 0; i < 40; i++)
      fprintf(f, "recall: %c x %c y query: %c y %c x\n<|endoftext|>\n", 'a' + i % 7,
              'h' + i % 5, 'h' + i % 5, 'a' + i % 7);
    fclose(f);
  }
  char tcfg[300];
  snprintf(tcfg, sizeof tcfg, "%s/train.json", dir);
  write_train_cfg(tcfg, dir,
                  "\"recall_fraction\": 0.5, \"recall_loss\": \"answers\", "
                  "\"recall_windows\": \"start\"");
  snprintf(args, sizeof args, "train --config %s --out %s/out", tcfg, dir);
  rc = run(args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "160 answer tokens of") && strstr(out, "wrote") &&
                strstr(out, "recall windows start at its 40 documents"),
            "dtr train with recall_loss answers, windows at document starts (exit %d): %.400s",
            rc, out);
  /* a recall phase reads the recall file even at recall_fraction 0 */
  char tcfg2[300];
  snprintf(tcfg2, sizeof tcfg2, "%s/train2.json", dir);
  write_train_cfg(tcfg2, dir, "\"recall_only_steps\": 2");
  snprintf(args, sizeof args, "train --config %s --out %s/out2", tcfg2, dir);
  rc = run(args, out, sizeof out);
  th_expect(rc == 0 && strstr(out, "recall.txt:") &&
                strstr(out, "steps 1..2 draw recall rows only"),
            "dtr train with a recall phase and recall_fraction 0 (exit %d): %.400s", rc, out);
  snprintf(args, sizeof args, "train --config %s --out %s/out", tcfg, dir);
  /* a recall file without queries is refused, naming it */
  snprintf(path, sizeof path, "%s/recall.txt", dir);
  if ((f = fopen(path, "w"))) {
    fprintf(f, "no queries here at all, just some words to fill the window up\n");
    fclose(f);
  }
  rc = run(args, out, sizeof out);
  th_expect(rc != 0 && strstr(out, path) && strstr(out, "query:"),
            "a recall file without answers is refused (exit %d): %.300s", rc, out);
  snprintf(args, sizeof args, "rm -rf %s", dir);
  th_expect(system(args) == 0, "clean up %s", dir);
  return th_finish();
}
