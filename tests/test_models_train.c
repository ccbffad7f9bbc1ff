/* tests of the shared trainer and `sp train video` end to end on a tiny dataset (16x16 frames,
 * built-in scenes): the held-out split, bit-identical resume after kill -9, refusals (an
 * occupied run directory, a mismatching config on --resume, NaN), the config field tables, the
 * conditioning variants and the CLIP text encoder (a small random-weight text tower written
 * here). */
#include <cjson/cJSON.h>
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
#include "models/clip.h"
#include "models/trainer.h"
#include "models/video_train.h"
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

/* ---------------------------------------------------------------------------------------------
 * text_enc clip end to end: a random-weight CLIP text tower of a small config written here (CI
 * has no Python), `sp train video --text-enc clip --clip-file F`, `sp generate` with the result,
 * the cache round trip, kill -9 and --resume without the CLIP file, and the refusals */

/* a CLIP text-tower file sp_clip_load reads: width 32, 2 layers, 2 heads, context 32, the BPE
 * alphabet and one merge (every task text stays under 32 tokens), weights from a hash */
static void write_small_clip(const char *path) {
  sp_clip_config c = {.width = 32, .layers = 2, .heads = 2, .context = 32, .vocab = 515, .embed_dim = 16,
                      .quick_gelu = 1};
  const char merges[] = "\"bpe_simple_vocab_16e6.txt#version: 0.2\no p\n";
  const size_t mlen = sizeof merges - 1;
  cJSON *h = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(h, "__metadata__");
  char *cj = sp_cf_to_json(sp_clip_config_table, &c);
  cJSON_AddStringToObject(meta, "format", SP_CLIP_FORMAT);
  cJSON_AddStringToObject(meta, "version", SP_CLIP_VERSION);
  cJSON_AddStringToObject(meta, "config", cj);
  free(cj);
  int nt = sp_clip_tensor_count(&c);
  size_t off = 0;
  for (int i = 0; i < nt; i++) {
    char name[NN_NAME_MAX];
    int64_t r, cc;
    sp_clip_tensor_info(&c, i, name, sizeof name, &r, &cc);
    cJSON *e = cJSON_AddObjectToObject(h, name), *sh = cJSON_AddArrayToObject(e, "shape");
    cJSON_AddStringToObject(e, "dtype", "F32");
    cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)r));
    if (cc) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)cc));
    cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    off += 4 * (size_t)(r * (cc ? cc : 1));
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
  }
  cJSON *e = cJSON_AddObjectToObject(h, SP_CLIP_MERGES_TENSOR), *sh = cJSON_AddArrayToObject(e, "shape");
  cJSON_AddStringToObject(e, "dtype", "U8");
  cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)mlen));
  cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
  cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
  cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + mlen)));
  char *js = cJSON_PrintUnformatted(h);
  cJSON_Delete(h);
  size_t hl = strlen(js), pad = (8 - hl % 8) % 8;
  uint64_t n8 = hl + pad;
  unsigned char le[8];
  for (int k = 0; k < 8; k++) le[k] = (unsigned char)(n8 >> (8 * k));
  FILE *f = fopen(path, "wb");
  cr_assert(f, "cannot write %s", path);
  fwrite(le, 1, 8, f);
  fwrite(js, 1, hl, f);
  fwrite("        ", 1, pad, f);
  free(js);
  uint32_t s = 12345;
  for (int i = 0; i < nt; i++) {
    char name[NN_NAME_MAX];
    int64_t r, cc;
    sp_clip_tensor_info(&c, i, name, sizeof name, &r, &cc);
    size_t len = strlen(name);
    /* layer-norm gains near 1, biases and matrices near 0 */
    int gain = len > 7 && !strcmp(name + len - 7, ".weight") && strstr(name, "ln_");
    int vec = !cc && !gain;
    for (int64_t k = 0; k < r * (cc ? cc : 1); k++) {
      s = s * 1664525u + 1013904223u;
      float u = (float)(s >> 8) / 16777216.f * 2.f - 1.f;
      float v = gain ? 1.f + 0.1f * u : vec ? 0.1f * u : 0.3f * u;
      fwrite(&v, 4, 1, f);
    }
  }
  fwrite(merges, 1, mlen, f);
  cr_assert_eq(fclose(f), 0);
}

/* a copy of the checkpoint src with its config JSON edited by edit(), written to dst */
static void rewrite_config(const char *src, const char *dst, void (*edit)(cJSON *cfg)) {
  char err[SP_ERRLEN];
  sp_video_model v;
  cr_assert_eq(sp_video_model_load(&v, src, err), 0, "%s", err);
  sp_ckpt_info info;
  cr_assert_eq(sp_ckpt_info_read(src, &info, err), 0, "%s", err);
  cJSON *cfg = cJSON_Parse(info.config);
  edit(cfg);
  char *js = cJSON_PrintUnformatted(cfg);
  sp_ckpt_meta meta = {info.model, info.preset, js, info.data, info.step};
  cr_assert_eq(sp_model_save(dst, &v.m.ps, &meta, 0, info.trainer, err), 0, "%s", err);
  free(js);
  cJSON_Delete(cfg);
  sp_ckpt_info_free(&info);
  sp_video_model_free(&v);
}

static void drop_hammer(cJSON *cfg) {  // the cache no longer covers "hammer"
  cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "clip"), "texts");
  for (int i = 0; i < cJSON_GetArraySize(t); i++)
    if (!strcmp(cJSON_GetArrayItem(t, i)->valuestring, "hammer"))
      cJSON_ReplaceItemInArray(t, i, cJSON_CreateString("hammer time"));
}

static void drop_clip(cJSON *cfg) { cJSON_DeleteItemFromObjectCaseSensitive(cfg, "clip"); }

#define CLIP_ARGS \
  "--preset tiny --cond plan --text-enc clip --steps 20 --batch 2 --warmup 2 --lr 1e-3 --ckpt-steps 2 " \
  "--ckpt-minutes 0 --val-every 10 --val-clips 2 --val-steps 2 --guidance 1 --log-every 1 --threads 1"

Test(models_train, clip_text_trains_generates_and_resumes, .timeout = 300) {
  const char *ds = sp_test_tiny_dataset("train");
  if (!sp_file_exists(sp_test_bin())) cr_skip_test("%s not built", sp_test_bin());
  char dir[256], f[300], a[300], b[300], cmd[3072], pa[400], pb[400], err[SP_ERRLEN];
  snprintf(dir, sizeof dir, "/tmp/sp_test_clipenc_%d", (int)getpid());
  sp_test_rm_rf(dir);
  snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
  cr_assert_eq(sp_test_run(cmd), 0);
  snprintf(f, sizeof f, "%s/clip.safetensors", dir);
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(b, sizeof b, "%s/b", dir);
  write_small_clip(f);
  /* train; the same run killed at a checkpoint and resumed without the CLIP file */
  snprintf(cmd, sizeof cmd, "%s train video --data %s --out %s --clip-file %s " CLIP_ARGS " > %s.log 2>&1",
           sp_test_bin(), ds, a, f, a);
  cr_assert_eq(sp_test_run(cmd), 0, "training failed: %s.log", a);
  snprintf(cmd, sizeof cmd, "exec %s train video --data %s --out %s --clip-file %s " CLIP_ARGS " > /dev/null 2>&1",
           sp_test_bin(), ds, b, f);
  double waited;
  int status = sp_test_kill_at_checkpoint(cmd, b, &waited);
  snprintf(pb, sizeof pb, "%s/model.safetensors", b);
  cr_assert(WIFSIGNALED(status) && !sp_file_exists(pb), "the kill did not land mid-run");
  snprintf(cmd, sizeof cmd, "%s train video --out %s --resume > %s.log 2>&1", sp_test_bin(), b, b);
  cr_assert_eq(sp_test_run(cmd), 0, "resume failed: %s.log", b);
  snprintf(pa, sizeof pa, "%s/last.safetensors", a);
  snprintf(pb, sizeof pb, "%s/last.safetensors", b);
  sp_test_same_tensors(pa, pb);  // weights, AdamW moments, EMA, and the cache
  /* the cache: every task text, sot..eot, bit for bit what the text tower gives, in the weights
   * and in the EMA weights (model.safetensors); the config names the texts and lengths */
  snprintf(pa, sizeof pa, "%s/model.safetensors", a);
  sp_clip_model cm;
  sp_clip_ws cw;
  cr_assert_eq(sp_clip_load(&cm, f, err), 0, "%s", err);
  cr_assert_eq(sp_clip_ws_init(&cw, &cm.cfg, err), 0, "%s", err);
  sp_video_model v;
  cr_assert_eq(sp_video_model_load(&v, pa, err), 0, "%s", err);
  cr_expect_eq(v.m.cfg.text_enc, SP_VUNET_TEXT_CLIP);
  cr_expect_eq(v.m.cfg.cond, SP_VCOND_PLAN);
  cr_assert_eq(v.m.cfg.clip_n, SP_NTASK);
  cr_expect_eq(v.m.cfg.clip_dim, 32);
  nn_safetensors st[2];
  cr_assert_eq(nn_st_open(&st[0], pa, err), 0, "%s", err);
  snprintf(pb, sizeof pb, "%s/last.safetensors", a);
  cr_assert_eq(nn_st_open(&st[1], pb, err), 0, "%s", err);
  size_t nc[2];
  const float *cache[2] = {nn_st_f32(&st[0], "text.clip_cache", &nc[0]), nn_st_f32(&st[1], "text.clip_cache", &nc[1])};
  const float *ema = nn_st_f32(&st[1], "ema.text.clip_cache", NULL);
  cr_assert(cache[0] && cache[1] && ema && nc[0] == nc[1]);
  cr_expect_eq(nc[0], (size_t)SP_NTASK * v.m.clip_tok * 32);
  float tok[32 * 32], emb[16];
  int32_t ids[32];
  for (int t = 0; t < SP_NTASK; t++) {
    char text[SP_VUNET_CLIP_TEXT];
    sp_text_normalize(sp_task_name(t), text, sizeof text);
    int r = sp_vunet_clip_find(&v.m.cfg, sp_task_name(t));
    cr_assert(r >= 0, "%s not cached", sp_task_name(t));
    cr_expect_str_eq(v.m.cfg.clip_text[r], text);
    int pos = sp_clip_encode_text(&cm, &cw, text, ids, emb, tok, 0, err);
    cr_assert(pos > 0, "%s", err);
    cr_expect_eq(v.m.cfg.clip_len[r], pos + 1, "%s: %d tokens cached, %d sot..eot", text, v.m.cfg.clip_len[r], pos + 1);
    size_t o = (size_t)r * v.m.clip_tok * 32, n = (size_t)(pos + 1) * 32;
    cr_expect(!memcmp(cache[0] + o, tok, n * 4), "%s: the EMA weights' cache differs from the text tower", text);
    cr_expect(!memcmp(cache[1] + o, tok, n * 4), "%s: the weights' cache differs from the text tower", text);
    cr_expect(!memcmp(ema + o, tok, n * 4), "%s: the EMA's cache moved", text);
    for (size_t k = o + n; k < o + (size_t)v.m.clip_tok * 32; k++) cr_expect_eq(cache[0][k], 0.f);
  }
  nn_st_close(&st[0]);
  nn_st_close(&st[1]);
  sp_video_model_free(&v);
  sp_clip_ws_free(&cw);
  sp_clip_free(&cm);
  /* sp generate needs no CLIP file */
  snprintf(cmd, sizeof cmd, "%s generate --task door-open --camera corner --seed 3 --steps 2 --guidance 1 --ckpt %s "
           "--out %s/gen > %s/gen.log 2>&1 && test -s %s/gen/frame_7.png", sp_test_bin(), pa, dir, dir, dir);
  cr_expect_eq(sp_test_run(cmd), 0, "sp generate with the clip model failed (%s/gen.log)", dir);
  /* refusals: a cache lacking a task's text, a config without the cache's description, the
   * encoder without its file, the file without the encoder, weight decay */
  snprintf(pb, sizeof pb, "%s/nohammer.safetensors", dir);
  rewrite_config(pa, pb, drop_hammer);
  cr_expect_eq(sp_video_model_load(&v, pb, err), -1, "a cache without 'hammer' was accepted");
  cr_expect(strstr(err, "lacks the task text 'hammer'"), "%s", err);
  snprintf(cmd, sizeof cmd, "%s generate --task hammer --camera corner --steps 2 --ckpt %s --out %s/x 2>&1 | "
           "grep -q \"lacks the task text 'hammer'\"", sp_test_bin(), pb, dir);
  cr_expect_eq(sp_test_run(cmd), 0, "sp generate did not refuse a cache without the task's text");
  snprintf(pb, sizeof pb, "%s/noclip.safetensors", dir);
  rewrite_config(pa, pb, drop_clip);
  cr_expect_eq(sp_video_model_load(&v, pb, err), -1, "a clip model without its cache's description was accepted");
  cr_expect(strstr(err, "CLIP cache"), "%s", err);
  snprintf(cmd, sizeof cmd, "%s train video --data %s --out %s/c " CLIP_ARGS " 2>&1 | grep -q -- '--clip-file FILE'",
           sp_test_bin(), ds, dir);
  cr_expect_eq(sp_test_run(cmd), 0, "--text-enc clip without --clip-file was not refused by name");
  snprintf(cmd, sizeof cmd, "%s train video --data %s --out %s/c " CLIP_ARGS " > /dev/null 2>&1", sp_test_bin(), ds, dir);
  cr_expect_eq(sp_test_run(cmd), 2, "--text-enc clip without --clip-file: not a command-line error");
  snprintf(cmd, sizeof cmd, "%s train video --data %s --out %s/c --preset tiny --clip-file %s 2>&1 | grep -q 'text-enc clip'",
           sp_test_bin(), ds, dir, f);
  cr_expect_eq(sp_test_run(cmd), 0, "--clip-file with the words encoder was not refused");
  snprintf(cmd, sizeof cmd, "%s train video --data %s --out %s/c --clip-file %s " CLIP_ARGS " --weight-decay 0.01 2>&1 "
           "| grep -q 'weight-decay 0'", sp_test_bin(), ds, dir, f);
  cr_expect_eq(sp_test_run(cmd), 0, "weight decay with the CLIP cache was not refused");
  snprintf(cmd, sizeof cmd, "%s train video --out %s --resume --text-enc words 2>&1 | grep -q 'started with the clip'",
           sp_test_bin(), a);
  cr_expect_eq(sp_test_run(cmd), 0, "--resume with the words encoder was not refused");
  snprintf(pb, sizeof pb, "%s/c", dir);
  cr_expect(!sp_file_exists(pb), "a refused run left %s", pb);
  sp_test_rm_rf(dir);
  unlink(ds);
}

/* VideoAgent's refinement model: --init from a base spreads the base's condition weights over the
 * F condition frames, so that given the first frame repeated it computes what the base computes;
 * --refine trains on an sp imagine goal set of the dataset (provenance records both; resume keeps
 * the set); a refinement set without --video-cond 1 and another --refine on resume are refused */
Test(models_train, refine_model_starts_as_its_base_and_trains_on_pairs, .timeout = 300) {
  const char *ds = sp_test_tiny_dataset("refine");
  if (!sp_file_exists(sp_test_bin())) cr_skip_test("%s not built", sp_test_bin());
  char dir[256], cmd[3072], base[300], gs[300], ref[300], err[SP_ERRLEN];
  snprintf(dir, sizeof dir, "/tmp/sp_test_refine_%d", (int)getpid());
  sp_test_rm_rf(dir);
  snprintf(base, sizeof base, "%s/base/model.safetensors", dir);
  snprintf(gs, sizeof gs, "%s/gs.safetensors", dir);
  snprintf(ref, sizeof ref, "%s/ref", dir);
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s && %s train video --data %s --out %s/base --preset tiny --steps 3 --batch 2 --val-every 0 "
           "--threads 1 > %s.log 2>&1 && %s imagine --ckpt %s --data %s --out %s --per-demo 1 --jobs 1 >> %s.log 2>&1",
           dir, sp_test_bin(), ds, dir, dir, sp_test_bin(), base, ds, gs, dir);
  cr_assert_eq(sp_test_run(cmd), 0, "base model and goal set failed (%s.log)", dir);

  /* the init mapping, in process: the same output as the base on the first frame repeated */
  sp_video_model bm;
  cr_assert_eq(sp_video_model_load(&bm, base, err), 0, "%s", err);
  sp_vunet_cfg mc = bm.m.cfg;
  mc.video_cond = 1;
  sp_train_cfg tc;
  sp_train_cfg_default(&tc);
  tc.batch = 2;
  tc.threads = 1;
  nn_init(1);
  sp_video_job *j = sp_video_job_open(ds, &mc, "tiny", &bm.dc, &tc, err);
  cr_assert(j, "%s", err);
  cr_assert_eq(sp_video_job_init_from(j, base, err), 0, "%s", err);
  const int F = mc.frames, R = mc.res;
  const size_t px = (size_t)R * R, nx = 3 * F * px;
  float *x = malloc(nx * 4), *c1 = malloc(3 * px * 4), *cf = malloc(nx * 4), *ya = malloc(nx * 4), *yb = malloc(nx * 4);
  for (size_t i = 0; i < nx; i++) x[i] = sinf(0.37f * (float)i);
  for (size_t i = 0; i < 3 * px; i++) c1[i] = cosf(0.11f * (float)i);
  for (int c = 0; c < 3; c++)
    for (int f = 0; f < F; f++) memcpy(cf + ((size_t)c * F + f) * px, c1 + c * px, px * 4);
  int32_t text[SP_TEXT_WORDS];
  sp_text_ids("button-press", text);
  float t = 37.f;
  sp_vunet_ws wa, wb;
  cr_assert_eq(sp_vunet_ws_init(&wa, &bm.m, 1, 0, err), 0, "%s", err);
  cr_assert_eq(sp_vunet_ws_init(&wb, sp_video_job_model(j), 1, 0, err), 0, "%s", err);
  sp_vunet_forward(&bm.m, &wa, ya, x, c1, &t, text, 1);
  sp_vunet_forward(sp_video_job_model(j), &wb, yb, x, cf, &t, text, 1);
  double num = 0, den = 0;
  for (size_t i = 0; i < nx; i++) num += (ya[i] - yb[i]) * (ya[i] - yb[i]), den += ya[i] * ya[i];
  cr_expect(sqrt(num / den) < 1e-5, "the initialised refinement model differs from its base: rel err %.3g", sqrt(num / den));
  /* a goal set of another dataset's size is refused */
  cr_expect_eq(sp_video_job_set_refine(j, base, err), -1, "a checkpoint taken for a goal set");
  sp_vunet_ws_free(&wa);
  sp_vunet_ws_free(&wb);
  free(x); free(c1); free(cf); free(ya); free(yb);
  sp_video_job_close(j);
  sp_video_model_free(&bm);

  /* the command: trains, records init and refine, resumes with the run's set */
  snprintf(cmd, sizeof cmd,
           "%s train video --data %s --init %s --video-cond 1 --refine %s --refine-frac 0.75 --out %s --steps 4 "
           "--batch 2 --val-every 2 --val-clips 2 --val-steps 2 --threads 1 >> %s.log 2>&1",
           sp_test_bin(), ds, base, gs, ref, dir);
  cr_assert_eq(sp_test_run(cmd), 0, "refinement training failed (%s.log)", dir);
  char mp[400];
  snprintf(mp, sizeof mp, "%s/model.safetensors", ref);
  sp_ckpt_info info;
  cr_assert_eq(sp_ckpt_info_read(mp, &info, err), 0, "%s", err);
  cr_expect(strstr(info.data, "\"refine\"") && strstr(info.data, "\"init\""), "provenance: %s", info.data);
  cr_expect(strstr(info.config, "\"video_cond\":1") != NULL, "config: %s", info.config);
  sp_ckpt_info_free(&info);
  snprintf(cmd, sizeof cmd, "%s train video --out %s --resume --steps 6 --threads 1 >> %s.log 2>&1", sp_test_bin(), ref, dir);
  cr_expect_eq(sp_test_run(cmd), 0, "resume with the run's refinement set failed (%s.log)", dir);
  snprintf(cmd, sizeof cmd, "%s train video --out %s --resume --refine %s --steps 8 --threads 1 >> %s.log 2>&1",
           sp_test_bin(), ref, base, dir);
  cr_expect_eq(sp_test_run(cmd), 2, "resume with another --refine was not refused");
  snprintf(cmd, sizeof cmd,
           "%s train video --data %s --init %s --refine %s --out %s/x --steps 2 --threads 1 >> %s.log 2>&1",
           sp_test_bin(), ds, base, gs, dir, dir);
  cr_expect_eq(sp_test_run(cmd), 2, "--refine without --video-cond 1 was not refused");
  snprintf(cmd, sizeof cmd, "%s train video --data %s --init %s --preset tiny --out %s/y --steps 2 >> %s.log 2>&1",
           sp_test_bin(), ds, base, dir, dir);
  cr_expect_eq(sp_test_run(cmd), 2, "--init with --preset was not refused");
  sp_test_rm_rf(dir);
}
