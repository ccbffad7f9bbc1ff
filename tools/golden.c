/* golden: write the golden thumbnails and expert trajectories of the built-in scenes (and, with
 * --assets DIR, the trajectories of the Meta-World scenes) under tests/fixtures/golden/.
 *
 *   make build/tools/golden && build/tools/golden [--assets DIR]
 *
 * Rerun it only when a scene or the physics changes on purpose, and say so in the commit. */
#include <stdio.h>
#include <string.h>

#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "sim/golden.h"

static int write_traj(const char *path, sp_scene_source src, const char *assets) {
  char err[SP_ERRLEN];
  FILE *f = fopen(path, "w");
  if (!f) { fprintf(stderr, "golden: cannot write %s\n", path); return -1; }
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_model *em = sp_env_model_load(t, src, assets, err);
    double o[SP_GOLDEN_NSTEP * 18];
    if (!em || sp_golden_trajectory(em, o, err)) { fprintf(stderr, "golden: %s\n", err); fclose(f); return -1; }
    for (int k = 0; k < SP_GOLDEN_NSTEP; k++) {
      fprintf(f, "%s %d", sp_task_name(t), sp_golden_steps[k]);
      for (int i = 0; i < 18; i++) fprintf(f, " %.10f", o[18 * k + i]);
      fprintf(f, "\n");
    }
    sp_env_model_free(em);
  }
  fclose(f);
  return 0;
}

int main(int argc, char **argv) {
  const char *assets = NULL;
  if (argc == 3 && !strcmp(argv[1], "--assets")) assets = argv[2];
  else if (argc != 1) { fprintf(stderr, "usage: golden [--assets DIR]\n"); return 2; }
  char err[SP_ERRLEN], path[512];
  if (sp_mkdir_p("tests/fixtures/golden", err)) { fprintf(stderr, "golden: %s\n", err); return 1; }
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_model *em = sp_env_model_load(t, SP_SCENES_BUILTIN, NULL, err);
    if (!em) { fprintf(stderr, "golden: %s\n", err); return 1; }
    for (int c = 0; c < 3; c++) {
      uint8_t th[SP_GOLDEN_THUMB * SP_GOLDEN_THUMB * 3];
      if (sp_golden_thumbnail(em, c, th, err)) { fprintf(stderr, "golden: %s\n", err); return 1; }
      snprintf(path, sizeof path, "tests/fixtures/golden/builtin_%s_%s.png", sp_task_name(t), sp_camera_name(c));
      if (sp_png_write(path, th, SP_GOLDEN_THUMB, SP_GOLDEN_THUMB, 3, err)) { fprintf(stderr, "golden: %s\n", err); return 1; }
    }
    sp_env_model_free(em);
  }
  if (write_traj("tests/fixtures/golden/trajectories_builtin.txt", SP_SCENES_BUILTIN, NULL)) return 1;
  if (assets && write_traj("tests/fixtures/golden/trajectories_metaworld.txt", SP_SCENES_METAWORLD, assets)) return 1;
  printf("golden: wrote tests/fixtures/golden/\n");
  return 0;
}
