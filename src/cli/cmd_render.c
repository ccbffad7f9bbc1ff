/* cmd_render.c: sp render: one camera image (RGB, metric depth, segmentation) after reset. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/scene_args.h"
#include "core/image.h"
#include "core/log.h"
#include "sim/render.h"

int sp_cmd_render(int argc, char **argv) {
  const char *task = NULL, *camera = "corner", *out = NULL, *depth_out = NULL, *seg_out = NULL;
  const char *assets = NULL, *scenes = NULL;
  int seed = 0, width = 320, height = 240, steps = 0;
  sp_arg rows[] = {
      {"task", SP_ARG_STR, &task, "task name (see sp tasks)"},
      {"camera", SP_ARG_STR, &camera, "camera name"},
      {"seed", SP_ARG_INT, &seed, "episode seed (AVDC seeding)"},
      {"out", SP_ARG_STR, &out, "RGB PNG to write"},
      {"depth", SP_ARG_STR, &depth_out, "depth PNG to write (16-bit, millimetres)"},
      {"seg", SP_ARG_STR, &seg_out, "segmentation PNG to write (geom id + 1, 16-bit; 0 = background)"},
      {"steps", SP_ARG_INT, &steps, "expert steps to take before rendering"},
      {"width", SP_ARG_INT, &width, "image width"},
      {"height", SP_ARG_INT, &height, "image height"},
      {"scenes", SP_ARG_STR, &scenes, "builtin or metaworld (default: builtin unless --assets)"},
      {"assets", SP_ARG_STR, &assets, "Meta-World assets_v2 directory (or SP_METAWORLD_ASSETS)"},
      {0}};
  int rc = sp_args_parse("render", "--task T --camera C --seed S --out F.png [options]", rows, argc,
                         argv, NULL, 0, NULL);
  if (rc) return rc < 0 ? 2 : 0;
  if (!task || !out) {
    sp_log(SP_LOG_ERROR, "render: --task and --out are required (see sp render --help)");
    return 2;
  }
  int t = sp_task_find(task), cam = sp_camera_find(camera);
  if (t < 0) { sp_log(SP_LOG_ERROR, "render: unknown task '%s' (see sp tasks)", task); return 2; }
  if (cam < 0) { sp_log(SP_LOG_ERROR, "render: unknown camera '%s' (see sp tasks)", camera); return 2; }
  if (seed < 0) { sp_log(SP_LOG_ERROR, "render: --seed must be >= 0"); return 2; }
  if (steps < 0 || steps > SP_MAX_PATH) { sp_log(SP_LOG_ERROR, "render: --steps outside 0..%d", SP_MAX_PATH); return 2; }
  if (width < 1 || width > SP_RENDER_MAX_W || height < 1 || height > SP_RENDER_MAX_H) {
    sp_log(SP_LOG_ERROR, "render: --width %d --height %d: the image size must lie within 1..%d x 1..%d",
           width, height, SP_RENDER_MAX_W, SP_RENDER_MAX_H);
    return 2;
  }
  sp_scene_source src;
  if (sp_cli_scene_source("render", scenes, &assets, &src)) return 2;
  char err[SP_ERRLEN];
  sp_env_model *em = sp_env_model_load(t, src, assets, err);
  if (!em) { sp_log(SP_LOG_ERROR, "render: %s", err); return 1; }
  sp_env *e = sp_env_create(em, err);
  sp_renderer *r = e ? sp_renderer_create(em, width, height, err) : NULL;
  uint8_t *rgb = malloc((size_t)width * height * 3);
  float *depth = malloc(sizeof(float) * (size_t)width * height);
  int32_t *seg = malloc(sizeof(int32_t) * (size_t)width * height);
  uint16_t *px16 = malloc(sizeof(uint16_t) * (size_t)width * height);
  int status = 1;
  if (!r) goto done;
  double obs[SP_OBS_DIM], act[SP_ACT_DIM];
  sp_env_reset(e, seed, obs);
  for (int k = 0; k < steps; k++) {
    sp_expert_act(t, SP_GRASP_METAWORLD, obs, act);
    sp_env_step(e, act, obs);
  }
  if (sp_render(r, e, cam, width, height, rgb, depth_out ? depth : NULL, seg_out ? seg : NULL, err))
    goto done;
  if (sp_png_write(out, rgb, width, height, 3, err)) goto done;
  if (depth_out) {
    for (int i = 0; i < width * height; i++) {
      double mm = depth[i] * 1000.0;
      px16[i] = (uint16_t)(mm < 0 ? 0 : mm > 65535 ? 65535 : mm + 0.5);
    }
    if (sp_png_write16(depth_out, px16, width, height, err)) goto done;
  }
  if (seg_out) {
    for (int i = 0; i < width * height; i++) px16[i] = (uint16_t)(seg[i] + 1);
    if (sp_png_write16(seg_out, px16, width, height, err)) goto done;
  }
  status = 0;
done:
  if (status) sp_log(SP_LOG_ERROR, "render: %s", err);
  free(rgb); free(depth); free(seg); free(px16);
  sp_renderer_free(r);
  sp_env_free(e);
  sp_env_model_free(em);
  return status;
}
