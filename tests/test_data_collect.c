/* tests of sp collect end to end on real rollouts (tiny: few frames, small images): every field
 * of a collected episode checked against independent recomputation, h5dump reading the file,
 * a kill -9 in the middle of a run followed by --resume, and the refusals (eval seeds, existing
 * output, foreign file). Uses the built-in scenes, else ../shared/metaworld/assets_v2; skipped
 * with a visible message when neither loads. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "skip_note.h"
#include "core/fileio.h"
#include "core/log.h"
#include "data/collect.h"
#include "data/dataset.h"
#include "sim/render.h"

static const char *assets_dir(void) {
  const char *e = getenv("SP_METAWORLD_ASSETS");
  return e && *e ? e : "../shared/metaworld/assets_v2";
}

/* pick a scene source that loads task; 0 ok, -1 none (the test skips) */
static int pick_source(int task, sp_scene_source *src) {
  char err[SP_ERRLEN];
  sp_env_model *em = sp_env_model_load(task, SP_SCENES_BUILTIN, NULL, err);
  if (em) { sp_env_model_free(em); *src = SP_SCENES_BUILTIN; return 0; }
  em = sp_env_model_load(task, SP_SCENES_METAWORLD, assets_dir(), err);
  if (em) { sp_env_model_free(em); *src = SP_SCENES_METAWORLD; return 0; }
  return -1;
}

#define NEED_SCENE(task, src)                                                                     \
  do {                                                                                            \
    if (pick_source(task, &(src))) {                                                              \
      SP_SKIP_NOTE("neither built-in scenes nor Meta-World assets (%s) load", assets_dir()); \
      cr_skip_test("no scenes");                                                                  \
    }                                                                                             \
  } while (0)

static long g_seeds[8] = {1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007};

static void tiny_cfg(sp_collect_config *c, int task, int cam, sp_scene_source src, const char *out) {
  sp_collect_config_default(c);
  c->tasks[0] = task;
  c->ntask = 1;
  c->cams[0] = cam;
  c->ncam = 1;
  c->seeds = g_seeds;
  c->nseed = 1;
  c->out = out;
  c->source = src;
  c->assets = assets_dir();
  c->size = 64;
  c->max_steps = 4;
  c->keep_failures = 1;
  c->shadow_size = 256;
  c->checkpoint_s = 0;
}

static void rm_rf(const char *path) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.parts' '%s.tmp'", path, path, path);
  if (system(cmd)) {}
}

static void out_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "/tmp/sp_test_collect_%d_%s.h5", (int)getpid(), name);
  rm_rf(buf);
}

static double norm3(const double *a, const double *b) {
  return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

Test(data_collect, every_field_of_a_real_episode, .timeout = 120) {
  sp_scene_source src;
  NEED_SCENE(SP_TASK_SHELF_PLACE, src);
  char out[512], err[SP_ERRLEN];
  out_path(out, sizeof out, "fields");
  sp_collect_config c;
  tiny_cfg(&c, SP_TASK_SHELF_PLACE, 0, src, out);
  c.render_crop = 0;  // AVDC's way first: the full frame, cropped (compared with the default below)
  sp_collect_stats st;
  cr_assert_eq(sp_collect_run(&c, &st, err), 0, "%s", err);
  cr_expect_eq(st.episodes_done, 1);
  struct stat sb;
  cr_expect(stat(out, &sb) == 0);
  cr_expect(access(out, F_OK) == 0);
  char parts[600];
  snprintf(parts, sizeof parts, "%s.parts", out);
  cr_expect(stat(parts, &sb) != 0, "the parts directory is removed after a complete run");

  sp_dataset *ds = sp_dataset_open(out, err);
  cr_assert(ds, "%s", err);
  cr_assert_eq(sp_dataset_count(ds), 1);
  const long *seeds;
  cr_assert_eq(sp_dataset_seeds(ds, &seeds), 1);
  cr_expect_eq(seeds[0], 1000);
  sp_demo d;
  cr_assert_eq(sp_dataset_load(ds, 0, &d, err), 0, "%s", err);
  cr_expect_eq(d.task, SP_TASK_SHELF_PLACE);
  cr_expect_eq(d.cam, 0);
  cr_expect_eq(d.seed, 1000);
  cr_expect_eq(d.recovery, 0);
  cr_expect_eq(d.n, 5, "4 steps: 5 frames");
  cr_expect_eq(d.ep_success, 0, "4 steps cannot finish shelf-place");
  cr_expect(d.crop[0] == 56 && d.crop[1] == 96 && d.crop[2] == 128 && d.crop[3] == 128);
  cr_expect(d.render_w == 320 && d.render_h == 240);
  cr_expect(strstr(d.plan, "1. move") != NULL, "plan: '%s'", d.plan);
  cr_expect_str_eq(d.perturb, "");

  /* the replay of the same seed reproduces observations and actions (determinism) */
  sp_env_model *em = sp_env_model_load(SP_TASK_SHELF_PLACE, src, assets_dir(), err);
  cr_assert(em, "%s", err);
  sp_env *e = sp_env_create(em, err);
  double obs[SP_OBS_DIM], act[SP_ACT_DIM];
  sp_env_reset(e, 1000, obs);
  for (int t = 0; t < d.n; t++) {
    for (int j = 0; j < SP_OBS_DIM; j++)
      cr_expect_float_eq(d.obs[SP_OBS_DIM * t + j], obs[j], 1e-12, "obs %d %d", t, j);
    double tcp[3];
    sp_env_tcp(e, tcp);
    for (int j = 0; j < 3; j++) cr_expect_float_eq(d.ee_pos[3 * t + j], tcp[j], 1e-12);
    if (t == d.n - 1) break;
    sp_expert_act(SP_TASK_SHELF_PLACE, SP_GRASP_METAWORLD, obs, act);
    for (int j = 0; j < SP_ACT_DIM; j++) cr_expect_float_eq(d.actions[4 * t + j], act[j], 1e-12);
    cr_expect_eq(d.expert[t], 1);
    sp_env_step(e, act, obs);
  }
  sp_env_free(e);
  sp_env_model_free(em);

  /* the camera: its centre maps to 0, K is the cropped render's */
  for (int i = 0; i < 3; i++) {
    double x = d.R[3 * i] * d.cam_pos[0] + d.R[3 * i + 1] * d.cam_pos[1] + d.R[3 * i + 2] * d.cam_pos[2] + d.tvec[i];
    cr_expect(fabs(x) < 1e-9);
  }
  cr_expect_float_eq(d.K[2], 31.5, 1e-9);  // (63.5 + 0.5) * 0.5 - 0.5
  cr_expect_float_eq(d.K[5], 31.5, 1e-9);

  const int sz = d.size;
  size_t px = (size_t)sz * sz;
  int mask_px = 0, hit = 0;
  for (int t = 0; t < d.n; t++) {
    const double *g[3] = {d.ee_pos + 3 * t, d.finger_pos + 6 * t, d.finger_pos + 6 * t + 3};
    const double *obj = d.target_pos + 6 * t, *goal = d.target_pos + 6 * t + 3;
    /* tcp is the pads' midpoint; targets are obs[4:7] and obs[36:39] */
    for (int j = 0; j < 3; j++) {
      cr_expect_float_eq(g[0][j], 0.5 * (g[1][j] + g[2][j]), 1e-9);
      cr_expect_float_eq(obj[j], d.obs[SP_OBS_DIM * t + 4 + j], 0);
      cr_expect_float_eq(goal[j], d.obs[SP_OBS_DIM * t + 36 + j], 0);
    }
    double dmin = INFINITY;
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 2; b++) {
        double v = norm3(g[a], b ? goal : obj);
        cr_expect_float_eq(d.distance[6 * t + 2 * a + b], (float)v, 1e-6);
        dmin = fmin(dmin, v);
      }
    cr_expect_float_eq(d.fine_distance[t], dmin, 1e-12);
    /* 2D projections through the stored camera */
    for (int b = 0; b < 2; b++) {
      const double *p = b ? goal : obj;
      double X = d.R[0] * p[0] + d.R[1] * p[1] + d.R[2] * p[2] + d.tvec[0];
      double Y = d.R[3] * p[0] + d.R[4] * p[1] + d.R[5] * p[2] + d.tvec[1];
      double Z = d.R[6] * p[0] + d.R[7] * p[1] + d.R[8] * p[2] + d.tvec[2];
      cr_expect_float_eq(d.target_px[4 * t + 2 * b], (float)(d.K[2] + d.K[0] * X / Z), 1e-3);
      cr_expect_float_eq(d.target_px[4 * t + 2 * b + 1], (float)(d.K[5] + d.K[4] * Y / Z), 1e-3);
      if (b == 0) {
        /* the block is in the mask at its projected pixel (within 2 px) and the depth there is
         * the block's camera distance (its near face is 2 cm closer than its centre) */
        int u = (int)lround(d.target_px[4 * t]), v = (int)lround(d.target_px[4 * t + 1]);
        int found = 0;
        double best = INFINITY;
        for (int dv = -2; dv <= 2; dv++)
          for (int du = -2; du <= 2; du++) {
            int x = u + du, y = v + dv;
            if (x < 0 || y < 0 || x >= sz || y >= sz) continue;
            if (d.mask[px * t + (size_t)y * sz + x] == 255) {
              found = 1;
              best = fmin(best, fabs(d.depth[px * t + (size_t)y * sz + x] - Z));
            }
          }
        hit += found;
        if (found) cr_expect(best < 0.05, "depth at the block %g m off its camera distance", best);
      }
    }
    for (size_t i = 0; i < px; i++) {
      uint8_t m = d.mask[px * t + i];
      cr_expect(m == 0 || m == 255);
      mask_px += m == 255;
      float z = d.depth[px * t + i];
      cr_expect(isfinite(z) && z > 0.05f && z < 1000.0f, "depth %g", z);  // background: the far plane
    }
    cr_expect_eq(d.success[t], 0);
  }
  cr_expect_eq(hit, d.n, "the object's projection falls on its mask in every frame");
  cr_expect(mask_px > 0);
  /* frames are images, not constants */
  int lo = 255, hi = 0;
  for (size_t i = 0; i < px * 3; i++) { lo = d.rgb[i] < lo ? d.rgb[i] : lo; hi = d.rgb[i] > hi ? d.rgb[i] : hi; }
  cr_expect(hi - lo > 50);
  /* fine indices: sorted, within the episode, ending at the last frame */
  cr_assert(d.nfine >= 1);
  for (int i = 1; i < d.nfine; i++) cr_expect(d.fine_idx[i] > d.fine_idx[i - 1]);
  cr_expect_eq(d.fine_idx[d.nfine - 1], d.n - 1);
  sp_demo_free(&d);
  sp_dataset_close(ds);

  /* the same run rendering the crop window directly gives (nearly) the same images */
  char out2[512];
  out_path(out2, sizeof out2, "fields_rc");
  c.out = out2;
  c.render_crop = 1;
  c.max_steps = 1;
  cr_assert_eq(sp_collect_run(&c, &st, err), 0, "%s", err);
  sp_dataset *ds2 = sp_dataset_open(out2, err);
  cr_assert(ds2, "%s", err);
  sp_demo d2, d1;
  ds = sp_dataset_open(out, err);
  cr_assert_eq(sp_dataset_load(ds2, 0, &d2, err), 0, "%s", err);
  cr_assert_eq(sp_dataset_load(ds, 0, &d1, err), 0, "%s", err);
  for (int i = 0; i < 9; i++) cr_expect_float_eq(d2.K[i], d1.K[i], 1e-9, "K[%d]", i);
  double mad = 0;
  for (size_t i = 0; i < px * 3; i++) mad += fabs((double)d2.rgb[i] - d1.rgb[i]);
  mad /= (double)(px * 3);
  cr_expect(mad < 12.0, "render-crop differs from crop+resize by %.1f grey levels on average", mad);
  size_t agree = 0;
  for (size_t i = 0; i < px; i++) agree += d2.mask[i] == d1.mask[i];
  cr_expect(agree > px * 95 / 100, "masks agree on %zu of %zu pixels", agree, px);
  sp_demo_free(&d1);
  sp_demo_free(&d2);
  sp_dataset_close(ds);
  sp_dataset_close(ds2);
  rm_rf(out);
  rm_rf(out2);
}

Test(data_collect, h5dump_reads_the_dataset, .timeout = 120) {
  if (system("command -v h5dump >/dev/null 2>&1")) {
    SP_SKIP_NOTE("h5dump not installed (hdf5-tools, see scripts/install-deps.sh)");
    cr_skip_test("no h5dump");
  }
  sp_scene_source src;
  NEED_SCENE(SP_TASK_BUTTON_PRESS, src);
  char out[512], err[SP_ERRLEN], cmd[1200];
  out_path(out, sizeof out, "dump");
  sp_collect_config c;
  tiny_cfg(&c, SP_TASK_BUTTON_PRESS, 2, src, out);
  c.size = 16;
  c.max_steps = 2;
  cr_assert_eq(sp_collect_run(&c, NULL, err), 0, "%s", err);
  snprintf(cmd, sizeof cmd, "h5dump -H '%s' 2>&1", out);
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = 0;
  cr_expect_eq(pclose(p), 0, "h5dump -H failed:\n%s", buf);
  cr_expect(strstr(buf, "GROUP \"seed_1000\"") != NULL);
  cr_expect(strstr(buf, "DATASET \"rgb\"") != NULL);
  cr_expect(strstr(buf, "( 3, 16, 16, 3 )") != NULL, "rgb shape");
  cr_expect(strstr(buf, "\"sp-dataset\"") != NULL || strstr(buf, "ATTRIBUTE \"format\"") != NULL);
  snprintf(cmd, sizeof cmd, "h5dump -d /episodes/button-press/corner3/seed_1000/actions -A 0 '%s' 2>&1", out);
  p = popen(cmd, "r");
  n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = 0;
  cr_expect_eq(pclose(p), 0, "h5dump -d failed:\n%s", buf);
  cr_expect(strstr(buf, "( 2, 4 )") != NULL, "actions shape in:\n%s", buf);
  rm_rf(out);
}

static int count_parts(const char *out) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s.parts", out);
  DIR *dp = opendir(dir);
  if (!dp) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dp))) {
    size_t L = strlen(de->d_name);
    n += L > 3 && !strcmp(de->d_name + L - 3, ".h5");
  }
  closedir(dp);
  return n;
}

Test(data_collect, kill_9_then_resume, .timeout = 180) {
  sp_scene_source src;
  NEED_SCENE(SP_TASK_BUTTON_PRESS, src);
  char out[512], err[SP_ERRLEN];
  out_path(out, sizeof out, "kill");
  sp_collect_config c;
  tiny_cfg(&c, SP_TASK_BUTTON_PRESS, 0, src, out);
  c.size = 16;
  c.demos = 0;
  c.nseed = 8;  // 7 episodes still to run when the first is done: the kill lands mid-run on a fast machine too
  c.max_steps = 3;
  c.checkpoint_s = 0.05;  // rebuild OUT often so the kill can land in a merge too
  /* the real command in a fresh process (fork + exec: forking this multi-threaded test process
   * and running the library in the child can deadlock on locks other threads held, e.g. under ASan) */
  const char *spbin = getenv("SP_BIN") && *getenv("SP_BIN") ? getenv("SP_BIN") : "build/sp";
  if (!sp_file_exists(spbin)) cr_skip_test("%s not built", spbin);
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "exec %s collect --tasks %s --cameras %s --seeds 1000-1007 --demos 0 --out '%s' --scenes %s %s%s "
           "--size 16 --max-steps 3 --keep-failures --shadow-size 256 --checkpoint 0.05 > /dev/null 2>&1",
           spbin, sp_task_name(SP_TASK_BUTTON_PRESS), sp_camera_name(0), out,
           src == SP_SCENES_METAWORLD ? "metaworld" : "builtin",
           src == SP_SCENES_METAWORLD ? "--assets " : "", src == SP_SCENES_METAWORLD ? assets_dir() : "");
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  /* kill once the first episode is finished (in a part file, or already merged into OUT) */
  double waited = 0;
  for (;;) {
    int have = count_parts(out);
    if (!have && sp_file_exists(out)) {
      sp_dataset *o = sp_dataset_open(out, err);
      have = o ? sp_dataset_count(o) : 0;
      sp_dataset_close(o);
    }
    if (have >= 1 || waited > 90) break;
    usleep(5000);
    waited += 0.005;
  }
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  cr_assert(waited < 90, "the child never finished an episode");
  cr_expect(WIFSIGNALED(status), "killed before it finished");
  /* OUT is absent or a valid dataset; never a torn file */
  int before = 0;
  if (sp_file_exists(out)) {
    sp_dataset *ds = sp_dataset_open(out, err);
    cr_assert(ds, "after kill -9: %s", err);
    before = sp_dataset_count(ds);
    sp_dataset_close(ds);
  }
  cr_log_info("kill: OUT %s with %d episodes, %d parts", sp_file_exists(out) ? "present" : "absent",
              before, count_parts(out));
  /* without --resume the leftovers are refused with a hint */
  cr_expect_eq(sp_collect_run(&c, NULL, err), -1);
  cr_expect(strstr(err, "--resume") != NULL, "%s", err);
  /* resume finishes the run */
  c.resume = 1;
  sp_collect_stats st;
  cr_assert_eq(sp_collect_run(&c, &st, err), 0, "%s", err);
  cr_expect(st.skipped_resume + st.episodes_done == 8, "%d skipped + %d done", st.skipped_resume, st.episodes_done);
  cr_expect(st.skipped_resume >= 1, "finished episodes are not collected again");
  sp_dataset *ds = sp_dataset_open(out, err);
  cr_assert(ds, "%s", err);
  cr_expect_eq(sp_dataset_count(ds), 8);
  const long *seeds;
  cr_expect_eq(sp_dataset_seeds(ds, &seeds), 8);
  for (int i = 0; i < 8; i++) {
    sp_demo d;
    cr_expect_eq(sp_dataset_load(ds, i, &d, err), 0, "%s", err);
    cr_expect_eq(d.n, 4);
    sp_demo_free(&d);
  }
  sp_dataset_close(ds);
  struct stat sb;
  char parts[600];
  snprintf(parts, sizeof parts, "%s.parts", out);
  cr_expect(stat(parts, &sb) != 0, "parts removed after the resumed run completes");
  rm_rf(out);
}

Test(data_collect, refusals) {
  char out[512], err[SP_ERRLEN];
  out_path(out, sizeof out, "refuse");
  sp_collect_config c;
  tiny_cfg(&c, SP_TASK_BUTTON_PRESS, 0, SP_SCENES_BUILTIN, out);
  long ev[2] = {24, 1000};
  c.seeds = ev;
  c.nseed = 2;
  cr_expect_eq(sp_collect_run(&c, NULL, err), -1);
  cr_expect(strstr(err, "evaluation") != NULL, "%s", err);
  cr_expect(!sp_file_exists(out));
  /* a foreign file at --out is named, not overwritten */
  FILE *f = fopen(out, "w");
  fputs("not a dataset\n", f);
  fclose(f);
  c.seeds = g_seeds;
  c.nseed = 1;
  sp_scene_source src;
  if (pick_source(SP_TASK_BUTTON_PRESS, &src) == 0) {
    c.source = src;
    cr_expect_eq(sp_collect_run(&c, NULL, err), -1);
    cr_expect(strstr(err, "not an HDF5 file") != NULL, "%s", err);
    c.resume = 1;
    cr_expect_eq(sp_collect_run(&c, NULL, err), -1);
    cr_expect(strstr(err, "not an HDF5 file") != NULL, "%s", err);
    size_t len;
    char *txt = sp_file_read(out, &len, err);
    cr_expect(txt && !strcmp(txt, "not a dataset\n"), "the foreign file is untouched");
    free(txt);
  }
  rm_rf(out);
}

/* flip bytes in the middle of the first stored (compressed) block of dataset name in file path */
static void damage_first_chunk(const char *path, const char *name) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  cr_assert(f >= 0);
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  cr_assert(d >= 0, "no dataset %s", name);
  hsize_t off[4];
  unsigned mask;
  haddr_t addr;
  hsize_t size;
  hid_t sp = H5Dget_space(d);
  cr_assert(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size) >= 0);
  H5Sclose(sp);
  H5Dclose(d);
  H5Fclose(f);
  cr_assert(size >= 16, "chunk of %llu bytes", (unsigned long long)size);
  FILE *fp = fopen(path, "r+b");
  cr_assert(fp);
  unsigned char b[8];
  fseek(fp, (long)(addr + size / 2), SEEK_SET);
  cr_assert_eq(fread(b, 1, 8, fp), 8);
  for (int i = 0; i < 8; i++) b[i] ^= 0x5a;
  fseek(fp, (long)(addr + size / 2), SEEK_SET);
  fwrite(b, 1, 8, fp);
  fclose(fp);
}

/* --resume copies the episodes of OUT without inflating them: a damaged compressed block must be
 * found and named, and OUT left as it was (it was carried into the extended dataset, exit 0) */
Test(data_collect, resume_refuses_a_damaged_block, .timeout = 120) {
  sp_scene_source src;
  NEED_SCENE(SP_TASK_BUTTON_PRESS, src);
  char out[512], err[SP_ERRLEN];
  out_path(out, sizeof out, "damaged");
  sp_collect_config c;
  tiny_cfg(&c, SP_TASK_BUTTON_PRESS, 0, src, out);
  cr_assert_eq(sp_collect_run(&c, NULL, err), 0, "%s", err);
  sp_dataset *ds = sp_dataset_open(out, err);
  cr_assert(ds, "%s", err);
  char rgb[320];
  snprintf(rgb, sizeof rgb, "%s/rgb", sp_dataset_episode(ds, 0)->path);
  sp_dataset_close(ds);
  damage_first_chunk(out, rgb);
  size_t n0, n1;
  char *before = sp_file_read(out, &n0, err);
  cr_assert(before, "%s", err);
  cr_expect_eq(sp_dataset_verify(out, err), -1, "the damage is found");
  cr_expect(strstr(err, rgb) != NULL, "%s", err);
  c.nseed = 2;
  c.resume = 1;
  cr_expect_eq(sp_collect_run(&c, NULL, err), -1, "resume over a damaged block must fail");
  cr_expect(strstr(err, rgb) != NULL && strstr(err, "damaged") != NULL, "%s", err);
  char *after = sp_file_read(out, &n1, err);
  cr_assert(after, "%s", err);
  cr_expect(n0 == n1 && !memcmp(before, after, n0), "the damaged dataset was rewritten");
  free(before);
  free(after);
  rm_rf(out);
}

/* recovery episodes: the perturbation is drawn from the episode's own generator (same attempt,
 * same episode), its steps are flagged non-expert, and displacement moves the object */
Test(data_collect, recovery_perturbations_are_seeded_and_flagged, .timeout = 120) {
  sp_scene_source src;
  NEED_SCENE(SP_TASK_SHELF_PLACE, src);
  char err[SP_ERRLEN];
  sp_env_model *em = sp_env_model_load(SP_TASK_SHELF_PLACE, src, assets_dir(), err);
  cr_assert(em, "%s", err);
  sp_env *e = sp_env_create(em, err);
  sp_collect_config c;
  tiny_cfg(&c, SP_TASK_SHELF_PLACE, 0, src, "/dev/null");
  c.size = 8;
  c.max_steps = 70;
  sp_demo a, b, base;
  cr_assert_eq(sp_demo_alloc(&a, SP_MAX_PATH + 1, 8, err), 0);
  cr_assert_eq(sp_demo_alloc(&b, SP_MAX_PATH + 1, 8, err), 0);
  cr_assert_eq(sp_demo_alloc(&base, SP_MAX_PATH + 1, 8, err), 0);
  cr_assert_eq(sp_collect_episode(&c, e, NULL, NULL, 0, 0, 1000, -1, &base, NULL, err), 0, "%s", err);
  int seen_random = 0, seen_displace = 0;
  for (int att = 0; att < 8; att++) {
    cr_assert_eq(sp_collect_episode(&c, e, NULL, NULL, 0, 0, 1000, att, &a, NULL, err), 0, "%s", err);
    cr_assert_eq(sp_collect_episode(&c, e, NULL, NULL, 0, 0, 1000, att, &b, NULL, err), 0, "%s", err);
    cr_expect_eq(a.recovery, 1);
    cr_expect_eq(a.attempt, att);
    cr_expect_str_eq(a.perturb, b.perturb);
    cr_assert_eq(a.n, b.n);
    cr_expect_eq(memcmp(a.actions, b.actions, sizeof(double) * 4 * (size_t)(a.n - 1)), 0, "attempt %d repeats", att);
    int p0, p1;
    double dx, dy;
    if (sscanf(a.perturb, "random actions for steps %d..%d", &p0, &p1) == 2) {
      seen_random++;
      for (int t = 0; t < a.n - 1; t++)
        cr_expect_eq(a.expert[t], !(t >= p0 && t <= p1), "attempt %d step %d", att, t);
    } else if (sscanf(a.perturb, "object displaced by (%lf, %lf) m at step %d", &dx, &dy, &p0) == 3) {
      seen_displace++;
      for (int t = 0; t < a.n - 1; t++) cr_expect_eq(a.expert[t], 1);
      /* the block moved by (dx, dy) relative to the unperturbed episode at that step */
      int t = p0 + 1;
      cr_assert(t < a.n && t < base.n);
      cr_expect(fabs(a.obs[SP_OBS_DIM * t + 4] - base.obs[SP_OBS_DIM * t + 4] - dx) < 0.01,
                "x moved %g, want %g", a.obs[SP_OBS_DIM * t + 4] - base.obs[SP_OBS_DIM * t + 4], dx);
      cr_expect(fabs(a.obs[SP_OBS_DIM * t + 5] - base.obs[SP_OBS_DIM * t + 5] - dy) < 0.01);
    } else {
      cr_assert_fail("unexpected perturbation text '%s'", a.perturb);
    }
  }
  cr_expect(seen_random > 0 && seen_displace > 0, "both kinds drawn in 8 attempts (%d, %d)", seen_random, seen_displace);
  sp_demo_free(&a);
  sp_demo_free(&b);
  sp_demo_free(&base);
  sp_env_free(e);
  sp_env_model_free(em);
}

/* the expert from another env's state mid-episode (oracle-policy-r's replanning): the rest of the
 * episode the expert would have recorded from the reset, frame for frame, to the same end; the
 * live env is left as it was */
Test(data_collect, expert_from_a_state_continues_the_episode, .timeout = 60) {
  sp_scene_source src;
  NEED_SCENE(SP_TASK_HAMMER, src);
  char err[SP_ERRLEN];
  sp_env_model *em = sp_env_model_load(SP_TASK_HAMMER, src, assets_dir(), err);
  cr_assert(em, "%s", err);
  sp_env *e = sp_env_create(em, err), *live = sp_env_create(em, err);
  cr_assert(e && live, "%s", err);
  sp_collect_config c;
  tiny_cfg(&c, SP_TASK_HAMMER, 0, src, "/dev/null");
  c.size = 8;
  c.max_steps = 0;
  sp_demo full, part;
  cr_assert_eq(sp_demo_alloc(&full, SP_MAX_PATH + 1, 8, err), 0);
  cr_assert_eq(sp_demo_alloc(&part, SP_MAX_PATH + 1, 8, err), 0);
  cr_assert_eq(sp_collect_episode(&c, e, NULL, NULL, 0, 0, 1000, -1, &full, NULL, err), 0, "%s", err);
  double obs[SP_OBS_DIM], a[SP_ACT_DIM];
  const int k = 40;
  sp_env_reset(live, 1000, obs);
  for (int t = 0; t < k; t++) {
    sp_expert_act(SP_TASK_HAMMER, c.grasp, obs, a);
    sp_env_step(live, a, obs);
  }
  cr_assert_eq(sp_collect_episode_from(&c, e, NULL, 0, live, &part, NULL, err), 0, "%s", err);
  cr_expect(full.ep_success && full.n > k + 10, "the expert's episode: success %d, %d frames", full.ep_success, full.n);
  cr_expect_eq(part.n, full.n - k, "%d frames from step %d of %d", part.n, k, full.n);
  cr_expect_eq(part.ep_success, full.ep_success);
  cr_expect_eq(part.seed, 1000);
  int n = part.n < full.n - k ? part.n : full.n - k;
  cr_expect(!memcmp(part.obs, full.obs + (size_t)k * SP_OBS_DIM, sizeof(double) * SP_OBS_DIM * (size_t)n),
            "the observations differ from the expert's own");
  cr_expect(!memcmp(part.actions, full.actions + (size_t)k * SP_ACT_DIM, sizeof(double) * SP_ACT_DIM * (size_t)(n - 1)),
            "the actions differ from the expert's own");
  cr_expect(live->t == k && !memcmp(live->obs, obs, sizeof obs), "the live env was changed");
  sp_demo_free(&full);
  sp_demo_free(&part);
  sp_env_free(e);
  sp_env_free(live);
  sp_env_model_free(em);
}

/* a model's dataset settings carry the expert's grasp to the agents (oracle-policy rolls out its
 * goals with it); absent means Meta-World's, an unknown one is refused */
Test(data_collect, view_settings_carry_the_grasp) {
  char err[SP_ERRLEN];
  sp_collect_config v;
  cr_assert_eq(sp_collect_view_from_json("{\"collect\":{\"compat\":{\"size\":64,\"grasp\":\"late\"}}}", 64, "m", &v, err), 1,
               "%s", err);
  cr_expect_eq(v.grasp, SP_GRASP_LATE);
  cr_assert_eq(sp_collect_view_from_json("{\"collect\":{\"compat\":{\"size\":64}}}", 64, "m", &v, err), 1, "%s", err);
  cr_expect_eq(v.grasp, SP_GRASP_METAWORLD);
  cr_expect_eq(sp_collect_view_from_json("{\"collect\":{\"compat\":{\"size\":64,\"grasp\":\"soft\"}}}", 64, "m.st", &v, err), -1);
  cr_expect(strstr(err, "m.st") && strstr(err, "grasp"), "%s", err);
}
