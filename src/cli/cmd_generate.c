/* cmd_generate.c: sp generate: one imagined video of an episode's first frame (agent/generate.h). */
#include <stdio.h>
#include <string.h>

#include "agent/generate.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/scene_args.h"
#include "core/log.h"

int sp_cmd_generate(int argc, char **argv) {
  sp_generate_cfg c;
  sp_generate_cfg_default(&c);
  const char *task = NULL, *camera = "corner", *scenes = NULL;
  int seed = 0;
  double guidance = -1, mask = 0;
  sp_arg rows[] = {
      {"task", SP_ARG_STR, &task, "task name (see sp tasks)"},
      {"camera", SP_ARG_STR, &camera, "camera name"},
      {"seed", SP_ARG_INT, &seed, "episode seed: the initial state (AVDC seeding), the noise and the mask"},
      {"ckpt", SP_ARG_STR, &c.ckpt, "video checkpoint of sp train video (default: checkpoints/" "video-plan-cpu.safetensors)"},
      {"plan", SP_ARG_STR, &c.plan, "rule (the rule planner on the reset state) or a plan file (sp plan's text format)"},
      {"steps", SP_ARG_INT, &c.steps, "DDIM steps"},
      {"guidance", SP_ARG_DOUBLE, &guidance, "classifier-free guidance w (default: the checkpoint's validation value)"},
      {"mask", SP_ARG_DOUBLE, &mask, "hide a random rectangle of this area fraction (0..0.9) of the first frame (paper, Appendix G)"},
      {"out", SP_ARG_STR, &c.out, "output directory: frame_*.png, video.gif, strip.png, plan.txt, index.html"},
      {"scenes", SP_ARG_STR, &scenes, "builtin or metaworld (default: builtin unless --assets)"},
      {"assets", SP_ARG_STR, &c.assets, "Meta-World assets_v2 directory (or SP_METAWORLD_ASSETS)"},
      {0}};
  int rc = sp_args_parse("generate", "--task T --camera C --seed S --out DIR [options]", rows, argc, argv, NULL, 0,
                         NULL);
  if (rc) return rc < 0 ? 2 : 0;
  if (!task || !c.out) {
    sp_log(SP_LOG_ERROR, "generate: --task and --out are required (see sp generate --help)");
    return 2;
  }
  c.task = sp_task_find(task);
  c.cam = sp_camera_find(camera);
  if (c.task < 0) { sp_log(SP_LOG_ERROR, "generate: unknown task '%s' (see sp tasks)", task); return 2; }
  if (c.cam < 0) { sp_log(SP_LOG_ERROR, "generate: unknown camera '%s' (see sp tasks)", camera); return 2; }
  if (seed < 0) { sp_log(SP_LOG_ERROR, "generate: --seed must be >= 0"); return 2; }
  if (c.steps < 1 || c.steps > 1000) { sp_log(SP_LOG_ERROR, "generate: --steps %d outside 1..1000", c.steps); return 2; }
  if (!(mask >= 0 && mask <= 0.9)) { sp_log(SP_LOG_ERROR, "generate: --mask %g outside 0..0.9", mask); return 2; }
  if (guidance != -1 && !(guidance >= 0 && guidance <= 100)) {
    sp_log(SP_LOG_ERROR, "generate: --guidance %g outside 0..100", guidance);
    return 2;
  }
  c.seed = seed;
  c.mask = mask;
  c.guidance = (float)guidance;
  if (sp_cli_scene_source("generate", scenes, &c.assets, &c.source)) return 2;
  char err[SP_ERRLEN];
  if (sp_generate_run(&c, err)) {
    sp_log(SP_LOG_ERROR, "generate: %s", err);
    return 1;
  }
  printf("generate: %s/index.html (strip.png, video.gif, frame_*.png, plan.txt)\n", c.out);
  return 0;
}
