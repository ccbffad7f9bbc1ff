/* cmd_imagine.c: sp imagine: an imagined goal set of a dataset (agent/goalgen.h). */
#include <stdio.h>

#include "agent/goalgen.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/log.h"

int sp_cmd_imagine(int argc, char **argv) {
  sp_goalgen_cfg c;
  sp_goalgen_cfg_default(&c);
  int seed = 0;
  double guidance = -1;
  sp_arg rows[] = {
      {"data", SP_ARG_STR, &c.data, "dataset of sp collect, frames of the video model's side"},
      {"out", SP_ARG_STR, &c.out, "the goal set to write (safetensors; for sp train policy --imagined)"},
      {"ckpt", SP_ARG_STR, &c.ckpt, "video checkpoint (default: checkpoints/video-plan-cpu.safetensors)"},
      {"per-demo", SP_ARG_INT, &c.per_demo, "videos per training demonstration: the first from frame 0, the rest from random starts"},
      {"holdout", SP_ARG_INT, &c.holdout, "held-out demonstrations per (task, camera), left out as the policy job does"},
      {"steps", SP_ARG_INT, &c.steps, "DDIM steps"},
      {"guidance", SP_ARG_DOUBLE, &guidance, "classifier-free guidance w (default: the checkpoint's validation value)"},
      {"seed", SP_ARG_INT, &seed, "seed of the starts and the noise"},
      {"jobs", SP_ARG_INT, &c.jobs, "worker threads (the file is the same for any number)"},
      {"limit", SP_ARG_INT, &c.limit, "at most this many demonstrations (0: all)"},
      {0}};
  int rc = sp_args_parse("imagine", "--data FILE.h5 --out FILE.safetensors [options]", rows, argc, argv, NULL, 0, NULL);
  if (rc) return rc < 0 ? 2 : 0;
  if (!c.data || !c.out) {
    sp_log(SP_LOG_ERROR, "imagine: --data and --out are required (see sp imagine --help)");
    return 2;
  }
  if (seed < 0 || c.limit < 0 || c.holdout < 0) {
    sp_log(SP_LOG_ERROR, "imagine: --seed, --limit and --holdout must be >= 0");
    return 2;
  }
  if (c.per_demo < 1 || c.per_demo > 64 || c.steps < 1 || c.steps > 1000 || c.jobs < 1 || c.jobs > 64) {
    sp_log(SP_LOG_ERROR, "imagine: --per-demo %d, --steps %d, --jobs %d: want 1..64, 1..1000, 1..64", c.per_demo,
           c.steps, c.jobs);
    return 2;
  }
  if (guidance != -1 && !(guidance >= 0 && guidance <= 100)) {
    sp_log(SP_LOG_ERROR, "imagine: --guidance %g outside 0..100", guidance);
    return 2;
  }
  c.seed = (uint32_t)seed;
  c.guidance = (float)guidance;
  char err[SP_ERRLEN];
  if (sp_goalgen_run(&c, err)) {
    sp_log(SP_LOG_ERROR, "imagine: %s", err);
    return 1;
  }
  printf("imagine: %s\n", c.out);
  return 0;
}
