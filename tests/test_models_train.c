/* tests of the shared trainer and `sp train video` end to end on a tiny dataset (16x16 frames,
 * built-in scenes): the held-out split, bit-identical resume after kill -9, refusals (an
 * occupied run directory, a mismatching config on --resume, NaN), the config field tables. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "data/collect.h"
#include "data/sampler.h"
#include "models/trainer.h"
#include "nn/nn_train.h"
#include "train_helpers.h"

#define TRAIN_ARGS \
  "--preset tiny --steps 40 --batch 2 --warmup 2 --lr 1e-3 --ckpt-steps 2 --ckpt-minutes 0 "      \
  "--val-every 6 --val-clips 2 --val-steps 2 --log-every 1 --threads 1"

Test(models_train, heldout_split_by_seed) {
  const char *ds = sp_test_tiny_dataset("train");
  char err[SP_ERRLEN];
  sp_sampler_cfg c;
  sp_sampler_cfg_default(&c);
  c.holdout = 1;
  c.split = SP_SPLIT_TRAIN;
  sp_sampler *tr = sp_sampler_open(ds, &c, 1, err);
  cr_assert(tr, "%s", err);
  c.split = SP_SPLIT_VAL;
  sp_sampler *va = sp_sampler_open(ds, &c, 1, err);
  cr_assert(va, "%s", err);
  cr_expect_eq(sp_sampler_count(tr), 4);
  cr_expect_eq(sp_sampler_count(va), 2);
  /* the held-out ones are the highest seed of each (task, camera) */
  float *clip = malloc(sizeof(float) * 3 * 8 * 16 * 16);
  int idx[8], ep;
  for (int k = 0; k < 2; k++) {
    cr_assert_eq(sp_sampler_clip_at(va, k, 0, clip, &ep, idx, err), 0, "%s", err);
    cr_expect_eq(sp_dataset_episode(sp_sampler_dataset(va), ep)->seed, 1002);
  }
  for (int k = 0; k < 20; k++) {
    cr_assert_eq(sp_sampler_clip(tr, clip, &ep, idx, err), 0, "%s", err);
    cr_expect_neq(sp_dataset_episode(sp_sampler_dataset(tr), ep)->seed, 1002);
  }
  free(clip);
  sp_sampler_close(tr);
  sp_sampler_close(va);
}

Test(models_train, resume_after_kill_is_bit_identical) {
  const char *ds = sp_test_tiny_dataset("train");
  if (!sp_file_exists(sp_test_bin())) cr_skip_test("%s not built", sp_test_bin());
  char a[256], b[256], cmd[2048], path[512];
  snprintf(a, sizeof a, "/tmp/sp_test_train_%d_a", (int)getpid());
  snprintf(b, sizeof b, "/tmp/sp_test_train_%d_b", (int)getpid());
  sp_test_rm_rf(a);
  sp_test_rm_rf(b);
  snprintf(cmd, sizeof cmd, "%s train video --data %s --out %s " TRAIN_ARGS " > /dev/null 2>&1", sp_test_bin(), ds, a);
  cr_assert_eq(sp_test_run(cmd), 0, "uninterrupted run failed: %s", cmd);
  /* the same run, killed with SIGKILL once a checkpoint exists, then resumed */
  snprintf(cmd, sizeof cmd, "exec %s train video --data %s --out %s " TRAIN_ARGS " > /dev/null 2>&1", sp_test_bin(), ds, b);
  snprintf(path, sizeof path, "%s/last.safetensors", b);
  double waited;
  int status = sp_test_kill_at_checkpoint(cmd, b, &waited);
  cr_assert(waited < 120, "no checkpoint appeared");
  char mpath[512];
  snprintf(mpath, sizeof mpath, "%s/model.safetensors", b);
  cr_assert(WIFSIGNALED(status) && !sp_file_exists(mpath), "the kill did not land mid-run (status %d)", status);
  snprintf(cmd, sizeof cmd, "%s train video --out %s --resume > /dev/null 2>&1", sp_test_bin(), b);
  cr_assert_eq(sp_test_run(cmd), 0, "resume failed: %s", cmd);
  char pa[512], pb[512];
  snprintf(pa, sizeof pa, "%s/last.safetensors", a);
  snprintf(pb, sizeof pb, "%s/last.safetensors", b);
  sp_test_same_tensors(pa, pb);  // weights, AdamW moments and EMA
  snprintf(pa, sizeof pa, "%s/model.safetensors", a);
  snprintf(pb, sizeof pb, "%s/model.safetensors", b);
  sp_test_same_tensors(pa, pb);
  /* the log holds each step once, and the validation ran */
  snprintf(pb, sizeof pb, "%s/train.jsonl", b);
  size_t len;
  char err[SP_ERRLEN], *log = sp_file_read(pb, &len, err);
  cr_assert(log, "%s", err);
  cr_expect(strstr(log, "\"step\":40,\"loss\""), "step 12 logged");
  cr_expect(strstr(log, "\"psnr\""), "validation logged");
  snprintf(pb, sizeof pb, "%s/val_000040.png", b);
  cr_expect(sp_file_exists(pb), "the last validation's strip %s", pb);
  int ones = 0;
  for (const char *p = log; (p = strstr(p, "{\"step\":1,\"loss\"")); p++) ones++;
  cr_expect_eq(ones, 1, "step 1 logged %d times", ones);
  free(log);
  /* a finished run's directory is not overwritten without --resume */
  snprintf(cmd, sizeof cmd, "%s train video --data %s --out %s " TRAIN_ARGS " 2>&1 | grep -q 'already holds a run'",
           sp_test_bin(), ds, a);
  cr_expect_eq(sp_test_run(cmd), 0, "a second run into the same --out was not refused");
  /* --resume with a changed setting names the field */
  snprintf(cmd, sizeof cmd, "%s train video --out %s --resume --steps 44 --min-snr 3 2>&1 | grep -q 'min_snr'", sp_test_bin(), a);
  cr_expect_eq(sp_test_run(cmd), 0, "a changed diffusion setting on --resume was not named");
  sp_test_rm_rf(a);
  sp_test_rm_rf(b);
}

/* a one-tensor model whose loss turns NaN at step 5: the trainer stops there, names the step and
 * leaves the checkpoint of step 4 as it was */
typedef struct {
  nn_params ps;
} nan_model;

static int nan_step(void *self, long step, float *loss, char *err) {
  nan_model *m = self;
  for (size_t i = 0; i < m->ps.total; i++) m->ps.grad[i] = 0.1f * (float)(i + 1);
  *loss = step == 5 ? NAN : 1.f / (float)step;
  return 0;
}

Test(models_train, nan_loss_stops_and_keeps_checkpoint) {
  char dir[256], path[300], err[SP_ERRLEN];
  snprintf(dir, sizeof dir, "/tmp/sp_test_train_%d_nan", (int)getpid());
  sp_test_rm_rf(dir);
  nan_model m;
  nn_params_init(&m.ps);
  nn_params_add4(&m.ps, "w", 4, 0, 0, 0);
  cr_assert_eq(nn_params_alloc(&m.ps, err), 0, "%s", err);
  sp_train_cfg c;
  sp_train_cfg_default(&c);
  c.steps = 10;
  c.ckpt_steps = 2;
  c.ckpt_minutes = 0;
  c.threads = 1;
  sp_trainable t = {.model = "nan", .preset = "", .config = "{}", .job_config = "{}", .data = "", .ps = &m.ps,
                    .self = &m, .step = nan_step};
  sp_train_io io = {.out = dir, .quiet = 1};
  int rc = sp_train_run(&c, &t, &io, err);
  cr_expect_eq(rc, -1);
  cr_expect(strstr(err, "step 5: the loss is nan"), "%s", err);
  cr_expect(strstr(err, "last good checkpoint"), "%s", err);
  snprintf(path, sizeof path, "%s/last.safetensors", dir);
  sp_ckpt_info info;
  cr_assert_eq(sp_ckpt_info_read(path, &info, err), 0, "%s", err);
  cr_expect_eq(info.step, 4, "the kept checkpoint is of step %ld", info.step);
  sp_ckpt_info_free(&info);
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  cr_expect(!sp_file_exists(path), "no final weights after a NaN");
  nn_params_free(&m.ps);
  sp_test_rm_rf(dir);
}

Test(models_train, config_table_roundtrip_and_errors) {
  sp_train_cfg c, d;
  sp_train_cfg_default(&c);
  char err[SP_ERRLEN];
  cr_assert_eq(sp_cf_check(sp_train_fields, &c, "train", err), 0, "%s", err);
  char *js = sp_cf_to_json(sp_train_fields, &c);
  memset(&d, 0, sizeof d);
  cr_assert_eq(sp_cf_from_json(sp_train_fields, &d, js, err), 0, "%s", err);
  cr_expect_eq(sp_cf_diff(sp_train_fields, &c, &d, "train", err), 0, "%s", err);
  free(js);
  cr_expect_eq(sp_cf_set(sp_train_fields, &d, "ema", "power", err), 0);
  cr_expect_eq(d.ema, SP_EMA_POWER);
  cr_expect_eq(sp_cf_diff(sp_train_fields, &c, &d, "train", err), -1);
  cr_expect(strstr(err, "ema is fixed, want power"), "%s", err);
  cr_expect_eq(sp_cf_set(sp_train_fields, &d, "ema", "sometimes", err), -1);
  cr_expect(strstr(err, "known: none, fixed, power"), "%s", err);
  cr_expect_eq(sp_cf_set(sp_train_fields, &d, "batch", "12x", err), -1);
  d.batch = 0;
  cr_expect_eq(sp_cf_check(sp_train_fields, &d, "train", err), -1);
  cr_expect(strstr(err, "batch = 0 outside"), "%s", err);
  cr_expect_eq(sp_cf_from_json(sp_train_fields, &d, "{\"nope\":1}", err), -1);
  cr_expect(strstr(err, "nope"), "%s", err);
}

/* the conditioning variants of `sp train video --cond`: each trains on the tiny preset (plan and
 * distance conditions from the dataset's positions), its checkpoint names the variant, and a run
 * killed with SIGKILL and resumed ends bit-identical to the uninterrupted one */
static void cond_variant_resume(const char *cond) {
  const char *ds = sp_test_tiny_dataset("train");
  if (!sp_file_exists(sp_test_bin())) cr_skip_test("%s not built", sp_test_bin());
  char a[256], b[256], cmd[2048], path[512], pb[512];
  snprintf(a, sizeof a, "/tmp/sp_test_cond_%s_%d_a", cond, (int)getpid());
  snprintf(b, sizeof b, "/tmp/sp_test_cond_%s_%d_b", cond, (int)getpid());
  sp_test_rm_rf(a);
  sp_test_rm_rf(b);
  snprintf(cmd, sizeof cmd, "%s train video --data %s --out %s --cond %s --guidance 1 " TRAIN_ARGS " > /dev/null 2>&1",
           sp_test_bin(), ds, a, cond);
  cr_assert_eq(sp_test_run(cmd), 0, "uninterrupted run failed: %s", cmd);
  snprintf(cmd, sizeof cmd, "exec %s train video --data %s --out %s --cond %s --guidance 1 " TRAIN_ARGS " > /dev/null 2>&1",
           sp_test_bin(), ds, b, cond);
  snprintf(path, sizeof path, "%s/last.safetensors", b);
  double waited;
  int status = sp_test_kill_at_checkpoint(cmd, b, &waited);
  snprintf(pb, sizeof pb, "%s/model.safetensors", b);
  cr_assert(WIFSIGNALED(status) && !sp_file_exists(pb), "%s: the kill did not land mid-run", cond);
  snprintf(cmd, sizeof cmd, "%s train video --out %s --resume > /dev/null 2>&1", sp_test_bin(), b);
  cr_assert_eq(sp_test_run(cmd), 0, "resume failed: %s", cmd);
  snprintf(path, sizeof path, "%s/last.safetensors", a);
  snprintf(pb, sizeof pb, "%s/last.safetensors", b);
  sp_test_same_tensors(path, pb);  // weights, AdamW moments and EMA
  /* the checkpoint's config names the variant */
  sp_ckpt_info info;
  char err[SP_ERRLEN], want[64];
  snprintf(path, sizeof path, "%s/model.safetensors", a);
  cr_assert_eq(sp_ckpt_info_read(path, &info, err), 0, "%s", err);
  snprintf(want, sizeof want, "\"cond\":\"%s\"", cond);
  cr_expect(strstr(info.config, want) != NULL, "config %s lacks %s", info.config, want);
  sp_ckpt_info_free(&info);
  sp_test_rm_rf(a);
  sp_test_rm_rf(b);
}

Test(models_train, cond_distance_trains_and_resumes) { cond_variant_resume("distance"); }
Test(models_train, cond_plan_trains_and_resumes) { cond_variant_resume("plan"); }
Test(models_train, cond_plan_local_trains_and_resumes) { cond_variant_resume("plan-local"); }

/* the video job's spatial conditions read the dataset's positions: sp_sampler_positions equals
 * the episode's stored ee_pos and target_pos (sp_dataset_load) at every frame */
Test(models_train, sampler_positions_are_the_stored_ones) {
  const char *ds = sp_test_tiny_dataset("train");
  char err[SP_ERRLEN];
  sp_sampler_cfg c;
  sp_sampler_cfg_default(&c);
  sp_sampler *s = sp_sampler_open(ds, &c, 1, err);
  cr_assert(s, "%s", err);
  double ee[3], obj[3], goal[3];
  int ep = sp_dataset_find(sp_sampler_dataset(s), SP_TASK_DOOR_OPEN, 0, "seed_1001");
  cr_assert(ep >= 0);
  cr_expect_eq(sp_sampler_positions(s, ep, 0, ee, obj, goal), -1, "positions before the load");
  cr_assert_eq(sp_sampler_load_targets(s, err), 0, "%s", err);
  sp_demo d;
  cr_assert_eq(sp_dataset_load((sp_dataset *)sp_sampler_dataset(s), ep, &d, err), 0, "%s", err);
  for (int f = 0; f < d.n; f++) {
    cr_assert_eq(sp_sampler_positions(s, ep, f, ee, obj, goal), 0);
    for (int k = 0; k < 3; k++) {
      cr_expect_eq(ee[k], d.ee_pos[3 * f + k]);
      cr_expect_eq(obj[k], d.target_pos[6 * f + k]);
      cr_expect_eq(goal[k], d.target_pos[6 * f + 3 + k]);
    }
  }
  cr_expect_eq(sp_sampler_positions(s, ep, d.n, ee, obj, goal), -1, "a frame past the end");
  sp_demo_free(&d);
  sp_sampler_close(s);
}
