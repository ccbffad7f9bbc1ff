/* golden tests: pinned camera names, resolution, orientation and crop (thumbnails of every task
 * and benchmark camera), and recorded expert trajectories that catch physics drift.
 * Fixtures: tests/fixtures/golden, written by tools/golden.c.
 *
 * Tolerances: a thumbnail matches when its mean absolute difference is <= 3 grey levels (of 255)
 * per channel; the vertically flipped fixture must differ by more, so orientation is pinned.
 * Trajectories match to 1e-6 m (positions) and 1e-6 (grip, quaternions). */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skip_note.h"
#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "sim/golden.h"

#define THUMB_TOL 3.0
#define TRAJ_TOL 1e-6

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, int n, int flip_b) {
  double s = 0;
  const int w = SP_GOLDEN_THUMB;
  for (int i = 0; i < n; i++) {
    int y = i / (w * 3), rest = i % (w * 3);
    int j = flip_b ? (SP_GOLDEN_THUMB - 1 - y) * w * 3 + rest : i;
    s += fabs((double)a[i] - (double)b[j]);
  }
  return s / n;
}

Test(golden, builtin_thumbnails, .timeout = 240) {
  char err[SP_ERRLEN], path[512];
  const int n = SP_GOLDEN_THUMB * SP_GOLDEN_THUMB * 3;
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_model *em = sp_env_model_load(t, SP_SCENES_BUILTIN, NULL, err);
    cr_assert(em, "%s", err);
    for (int c = 0; c < 3; c++) {
      uint8_t th[SP_GOLDEN_THUMB * SP_GOLDEN_THUMB * 3];
      cr_assert_eq(sp_golden_thumbnail(em, c, th, err), 0, "%s", err);
      snprintf(path, sizeof path, "tests/fixtures/golden/builtin_%s_%s.png", sp_task_name(t), sp_camera_name(c));
      sp_image ref;
      cr_assert_eq(sp_png_read(path, 3, &ref, err), 0, "%s", err);
      cr_assert(ref.w == SP_GOLDEN_THUMB && ref.h == SP_GOLDEN_THUMB);
      double d = mean_abs_diff(th, ref.px, n, 0), df = mean_abs_diff(th, ref.px, n, 1);
      cr_expect(d <= THUMB_TOL, "%s %s: mean |diff| %.2f > %.1f levels (camera, crop or scene changed?)",
                sp_task_name(t), sp_camera_name(c), d, THUMB_TOL);
      cr_expect(df > THUMB_TOL, "%s %s: the flipped image also matches (%.2f); orientation not pinned",
                sp_task_name(t), sp_camera_name(c), df);
      sp_image_free(&ref);
    }
    sp_env_model_free(em);
  }
}

static void check_traj(const char *file, sp_scene_source src, const char *assets) {
  char err[SP_ERRLEN];
  FILE *f = fopen(file, "r");
  cr_assert(f, "missing %s (run tools/golden)", file);
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_model *em = sp_env_model_load(t, src, assets, err);
    cr_assert(em, "%s", err);
    double o[SP_GOLDEN_NSTEP * 18];
    cr_assert_eq(sp_golden_trajectory(em, o, err), 0, "%s", err);
    for (int k = 0; k < SP_GOLDEN_NSTEP; k++) {
      char name[64];
      int step;
      cr_assert_eq(fscanf(f, "%63s %d", name, &step), 2, "%s: truncated", file);
      cr_assert_str_eq(name, sp_task_name(t));
      cr_assert_eq(step, sp_golden_steps[k]);
      for (int i = 0; i < 18; i++) {
        double v;
        cr_assert_eq(fscanf(f, "%lf", &v), 1);
        cr_expect(fabs(v - o[18 * k + i]) <= TRAJ_TOL, "%s step %d obs[%d]: %.10f vs recorded %.10f",
                  name, step, i, o[18 * k + i], v);
      }
    }
    sp_env_model_free(em);
  }
  fclose(f);
}

Test(golden, builtin_expert_trajectories, .timeout = 120) {
  check_traj("tests/fixtures/golden/trajectories_builtin.txt", SP_SCENES_BUILTIN, NULL);
}

Test(golden, metaworld_expert_trajectories, .timeout = 120) {
  const char *a = getenv("SP_METAWORLD_ASSETS");
  if (!a || !*a) a = "../shared/metaworld/assets_v2";
  char p[1024];
  snprintf(p, sizeof p, "%s/sawyer_xyz/sawyer_door_pull.xml", a);
  if (!sp_file_exists(p)) {
    SP_SKIP_NOTE("Meta-World assets not found at %s (" SP_ASSETS_HINT ")", a);
    cr_skip_test("Meta-World assets absent");
  }
  check_traj("tests/fixtures/golden/trajectories_metaworld.txt", SP_SCENES_METAWORLD, a);
}
