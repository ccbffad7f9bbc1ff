/* bench_env: physics env-steps/s and rendered frames/s at 320x240, per task.
 *
 *   make build/bench/bench_env && build/bench/bench_env [--assets DIR] [--steps N] [--frames N]
 *
 * Physics: the expert acting from reset, resetting every 200 steps (reset time excluded).
 * Rendering: sp_render of RGB (and separately RGB + depth + segmentation) from corner, corner2,
 * corner3 in turn, one thread (Mesa llvmpipe itself uses both cores). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "sim/env.h"
#include "sim/render.h"

int main(int argc, char **argv) {
  const char *assets = NULL;
  int nsteps = 5000, nframes = 30, fast = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--assets") && i + 1 < argc) assets = argv[++i];
    else if (!strcmp(argv[i], "--steps") && i + 1 < argc) nsteps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--frames") && i + 1 < argc) nframes = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--fast")) fast = 1;
    else { fprintf(stderr, "usage: bench_env [--assets DIR] [--steps N] [--frames N] [--fast]\n"); return 2; }
  }
  sp_scene_source src = assets ? SP_SCENES_METAWORLD : SP_SCENES_BUILTIN;
  const int w = 320, h = 240;
  uint8_t *rgb = malloc(w * h * 3);
  float *depth = malloc(sizeof(float) * w * h);
  int32_t *seg = malloc(sizeof(int32_t) * w * h);
  char err[SP_ERRLEN];
  printf("scenes: %s, render quality: %s\n%-22s %12s %12s %14s\n", sp_scene_source_name(src),
         fast ? "fast" : "full", "task", "steps/s", "rgb fps", "rgb+d+seg fps");
  double tot_steps = 0, tot_t = 0, tot_f = 0, tot_ft = 0;
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_model *em = sp_env_model_load(t, src, assets, err);
    if (!em) { fprintf(stderr, "bench_env: %s\n", err); return 1; }
    sp_env *e = sp_env_create(em, err);
    sp_renderer *r = sp_renderer_create(em, w, h, err);
    if (!e || !r) { fprintf(stderr, "bench_env: %s\n", err); return 1; }
    sp_renderer_set_quality(r, fast ? SP_RENDER_FAST : SP_RENDER_FULL);
    double obs[SP_OBS_DIM], a[SP_ACT_DIM], phys = 0;
    for (int k = 0; k < nsteps; k++) {
      if (k % 200 == 0) sp_env_reset(e, k / 200, obs);
      sp_expert_act(t, SP_GRASP_METAWORLD, obs, a);
      double t0 = sp_time_now();
      sp_env_step(e, a, obs);
      phys += sp_time_now() - t0;
    }
    sp_render(r, e, 0, w, h, rgb, NULL, NULL, err);  // warm-up
    double t0 = sp_time_now();
    for (int k = 0; k < nframes; k++) sp_render(r, e, k % 3, w, h, rgb, NULL, NULL, err);
    double rt = sp_time_now() - t0;
    t0 = sp_time_now();
    for (int k = 0; k < nframes; k++) sp_render(r, e, k % 3, w, h, rgb, depth, seg, err);
    double rt2 = sp_time_now() - t0;
    printf("%-22s %12.0f %12.1f %14.1f\n", sp_task_name(t), nsteps / phys, nframes / rt, nframes / rt2);
    fflush(stdout);
    tot_steps += nsteps; tot_t += phys; tot_f += nframes; tot_ft += rt;
    sp_renderer_free(r);
    sp_env_free(e);
    sp_env_model_free(em);
  }
  printf("%-22s %12.0f %12.1f\n", "all", tot_steps / tot_t, tot_f / tot_ft);
  free(rgb); free(depth); free(seg);
  return 0;
}
