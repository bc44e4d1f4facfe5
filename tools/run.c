/* run.c — `dtr run`, the main job: distil every attention layer of the shipped
 * default teacher into students (`dtr distill`), then greedily replace layers
 * on the default task (`dtr replace`), all into one output directory. Each
 * step is the command of the same name, run in process with the arguments
 * printed, so any step can be rerun alone. An interrupted run resumes where it
 * stopped (the distillation from its checkpoint, the search from its state). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: dtr run [flags]\n"
          "  The main job on the shipped default teacher: distil every layer, greedily\n"
          "  replace on the task, print the trajectory and the decode speedup table.\n"
          "  Needs the data from tools/quickstart (or: dtr data prepare, dtr tasks make).\n"
          "  --model DIR       teacher (models/dtr-tiny)\n"
          "  --data FILE       distillation text, the training split (build/data/train.txt)\n"
          "  --task FILE       task for the search (build/data/tasks/lm.jsonl: held-out\n"
          "                    perplexity; tasks/cloze.jsonl, and tasks2/recall.jsonl\n"
          "                    at the 2 pairs the shipped teacher recalls)\n"
          "  --block KIND      gdn, gla or jet (gdn)\n"
          "  --tokens N        distillation tokens (393216)\n"
          "  --seq-len N       distillation sequence length (the teacher's\n"
          "                    max_position_embeddings, at most 512)\n"
          "  --batch N         distillation sequences per step (8)\n"
          "  --tolerance X     allowed loss on the task: absolute, or X%% of the base (10%%)\n"
          "  --limit N         task examples scored by the search (80; 0: all)\n"
          "  --out DIR         everything goes here (build/run): students/, hybrid/\n"
          "  --fresh           start over instead of resuming what DIR holds\n"
          "  --device N        Vulkan device (see dtr info)\n");
}

static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

static int call(int (*cmd)(int, char **), char **argv) {
  int argc = 0;
  printf("\n$ dtr");
  while (argv[argc]) printf(" %s", argv[argc++]);
  printf("\n");
  fflush(stdout);
  return cmd(argc, argv);
}

static int rm_rf(const char *dir) {
  char cmd[4400];
  if (strchr(dir, '\'')) return 0;
  snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
  return system(cmd) == 0;
}

int cmd_run(int argc, char **argv) {
  const char *model = "models/dtr-tiny", *data = "build/data/train.txt";
  const char *task = "build/data/tasks/lm.jsonl", *block = "gdn", *out = "build/run";
  const char *tokens = "393216", *seq = NULL, *batch = "8", *tol = "10%", *limit = "80";
  const char *device = NULL;
  int fresh = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
    if (!strcmp(a, "--fresh")) { fresh = 1; continue; }
    const char **dst = !strcmp(a, "--model")       ? &model
                       : !strcmp(a, "--data")      ? &data
                       : !strcmp(a, "--task")      ? &task
                       : !strcmp(a, "--block")     ? &block
                       : !strcmp(a, "--tokens")    ? &tokens
                       : !strcmp(a, "--seq-len")   ? &seq
                       : !strcmp(a, "--batch")     ? &batch
                       : !strcmp(a, "--tolerance") ? &tol
                       : !strcmp(a, "--limit")     ? &limit
                       : !strcmp(a, "--out")       ? &out
                       : !strcmp(a, "--device")    ? &device
                                                   : NULL;
    if (!dst) {
      fprintf(stderr, "dtr run: unknown flag %s (see dtr run --help)\n", a);
      return 2;
    }
    if (!v) {
      fprintf(stderr, "dtr run: %s needs a value\n", a);
      return 2;
    }
    *dst = v;
    i++;
  }
  char mcfg[4200];
  snprintf(mcfg, sizeof mcfg, "%s/model.safetensors", model);
  if (!exists(mcfg)) {
    fprintf(stderr,
            "dtr run: %s: no model.safetensors; the default teacher ships in models/dtr-tiny "
            "(or rebuild it: models/dtr-tiny/reproduce.sh)\n",
            model);
    return 1;
  }
  const char *need[2] = {data, task};
  for (int i = 0; i < 2; i++)
    if (!exists(need[i])) {
      fprintf(stderr,
              "dtr run: %s is missing: prepare the data first (tools/quickstart does it: "
              "dtr data prepare, then dtr tasks make)\n",
              need[i]);
      return 1;
    }
  if (fresh && exists(out) && !rm_rf(out)) {
    fprintf(stderr, "dtr run: cannot remove %s\n", out);
    return 1;
  }
  if (!cli_mkdirs("dtr run", out)) return 1;
  char stud[4200], hyb[4200], ck[4300], sst[4300];
  snprintf(stud, sizeof stud, "%s/students", out);
  snprintf(hyb, sizeof hyb, "%s/hybrid", out);
  snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", stud);
  snprintf(sst, sizeof sst, "%s/search_state.json", hyb);
  double t0 = cli_now();
  printf("dtr run: distil every layer of %s into %s students on %s, then replace greedily on "
         "%s (tolerance %s); output in %s\n",
         model, block, data, task, tol, out);

  char *dv[32];
  int n = 0;
  dv[n++] = "distill";
  dv[n++] = "--model";   dv[n++] = (char *)model;
  dv[n++] = "--data";    dv[n++] = (char *)data;
  dv[n++] = "--block";   dv[n++] = (char *)block;
  dv[n++] = "--tokens";  dv[n++] = (char *)tokens;
  if (seq) { dv[n++] = "--seq-len"; dv[n++] = (char *)seq; }
  dv[n++] = "--batch";   dv[n++] = (char *)batch;
  dv[n++] = "--out";     dv[n++] = stud;
  if (device) { dv[n++] = "--device"; dv[n++] = (char *)device; }
  if (exists(ck)) dv[n++] = "--resume";
  dv[n] = NULL;
  int rc = call(cmd_distill, dv);
  if (rc) return rc;
  double t1 = cli_now();

  char *rv[32];
  n = 0;
  rv[n++] = "replace";
  rv[n++] = "--model";     rv[n++] = (char *)model;
  rv[n++] = "--students";  rv[n++] = stud;
  rv[n++] = "--task";      rv[n++] = (char *)task;
  rv[n++] = "--tolerance"; rv[n++] = (char *)tol;
  rv[n++] = "--out";       rv[n++] = hyb;
  rv[n++] = "--limit";     rv[n++] = (char *)limit;
  if (device) { rv[n++] = "--device"; rv[n++] = (char *)device; }
  if (exists(sst)) rv[n++] = "--resume";
  rv[n] = NULL;
  rc = call(cmd_replace, rv);
  if (rc) return rc;
  double t2 = cli_now();
  printf("\ndtr run: done in %.1f min (distillation %.1f, replacement %.1f)\n"
         "  students:  %s (students.json: per-layer relative error; losses.json)\n"
         "  hybrid:    %s (try: dtr generate --model %s --prompt \"The\")\n"
         "  trajectory: %s/trajectory.json, %s/trajectory.svg\n",
         (t2 - t0) / 60, (t1 - t0) / 60, (t2 - t1) / 60, stud, hyb, hyb, hyb, hyb);
  return 0;
}
