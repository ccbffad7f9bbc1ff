/* policy_train.c: the policy job (contract in policy_train.h). */
#include "models/policy_train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "data/sampler.h"
#include "models/goalset.h"

#define JF(f) offsetof(sp_ptrain_cfg, f)
const sp_cf sp_ptrain_fields[] = {
    {"holdout", SP_CF_INT, JF(holdout), 1, 1000, NULL, 0, 0, "held-out demonstrations per (task, camera), for validation"},
    {"goal_min", SP_CF_INT, JF(goal_min), 1, 10000, NULL, 0, 0, "goal frame at least this many frames ahead"},
    {"goal_max", SP_CF_INT, JF(goal_max), 1, 10000, NULL, 0, 0, "goal frame at most this many frames ahead (paper's narrow ablation: 17-20)"},
    {"random_crop", SP_CF_INT, JF(random_crop), 0, 1, NULL, 0, 0, "1: Diffusion Policy's random crop in training; 0: the centre"},
    {"recovery", SP_CF_INT, JF(recovery), 0, 1, NULL, 0, 0, "1: train on recovery episodes too (sp collect --recovery)"},
    {"val_samples", SP_CF_INT, JF(val_samples), 1, 100000, NULL, 0, 0, "held-out samples per validation"},
    {"imagined_frac", SP_CF_FLOAT, JF(imagined_frac), 0, 1, NULL, 0, 0, "with --imagined: share of samples whose goal is an imagined frame"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL}};

void sp_ptrain_cfg_default(sp_ptrain_cfg *c) {
  *c = (sp_ptrain_cfg){.holdout = 1, .goal_min = 1, .goal_max = 16, .random_crop = 1, .recovery = 0,
                       .val_samples = 64, .imagined_frac = 0.5f};
}

void sp_policy_train_defaults(sp_train_cfg *c) {
  sp_train_cfg_default(c);
  c->steps = 20000;
  c->batch = 32;
  c->lr = 1e-4f;
  c->lr_sched = SP_LR_COSINE;
  c->warmup = 500;
  c->beta1 = 0.95f;
  c->beta2 = 0.999f;
  c->weight_decay = 1e-6f;
  c->clip = 0.f;
  c->ema = SP_EMA_POWER;
  c->ema_decay = 0.9999f;
  c->ema_power = 0.75f;
  c->val_every = 1000;
  c->log_every = 50;
}

/* ---------------------------------------------------------------------------------------------
 * the job */

struct sp_policy_job {
  sp_policy model;
  sp_policy_ws ws;
  sp_policy_cfg mc;
  sp_ptrain_cfg jc;
  sp_train_cfg tc;
  sp_sampler *train, *val;
  sp_trainable tr;
  int B, F, R, H;
  size_t per, nimg;                     // H * 4, 6 R R
  float *cur, *goal;                    // (3, F, F) one sample's frames
  float *img, *ee, *a0, *xt, *noise, *target, *tf, *out, *dout;  // batch buffers
  int *ts;
  double *raw;                          // (val_samples, H, 4) the expert's actions
  sp_goalset gs;                        // imagined goals (gs.n 0: none)
  int *gs_first, *gs_next;              // per dataset episode its first video, per video the next
  long drawn, imagined;                 // training samples drawn, and those with an imagined goal
};

/* end-effector limits (tcp xyz, gripper opening) over every frame of every episode */
static void ee_limits(const sp_dataset *ds, double lo[SP_POLICY_EE_MAX], double hi[SP_POLICY_EE_MAX]) {
  for (int j = 0; j < SP_POLICY_EE_MAX; j++) lo[j] = INFINITY, hi[j] = -INFINITY;
  for (int i = 0; i < sp_dataset_count(ds); i++) {
    const sp_dataset_ep *e = sp_dataset_episode(ds, i);
    for (int t = 0; t < e->n; t++)
      for (int j = 0; j < SP_POLICY_EE_MAX; j++) {
        double v = j < 3 ? e->ee_pos[3 * t + j] : e->grip[t];
        if (v < lo[j]) lo[j] = v;
        if (v > hi[j]) hi[j] = v;
      }
  }
}

/* replace the sample's goal by an imagined frame of its episode (policy_train.h's rule) */
static void imagined_goal(sp_policy_job *j, const sp_policy_sample *ps, sp_mt19937 *r) {
  const int F = j->gs.F;
  int nin = 0, pick_v = -1, pick_f = -1, ahead_v = -1, ahead_f = -1, ahead = 0;
  for (int v = j->gs_first[ps->episode]; v >= 0; v = j->gs_next[v]) {
    const int32_t *ix = j->gs.idx + (size_t)v * (F + 1);
    if (ix[0] > ps->t) continue;
    for (int f = 1; f <= F; f++) {
      int d = ix[f] - ps->t;
      if (d <= 0) continue;
      if (d >= j->jc.goal_min && d <= j->jc.goal_max && sp_mt_u32(r) % (uint32_t)++nin == 0) pick_v = v, pick_f = f;
      if (ahead_v < 0 || d < ahead) ahead_v = v, ahead_f = f, ahead = d;
    }
  }
  if (pick_v < 0) pick_v = ahead_v, pick_f = ahead_f;
  if (pick_v < 0) return;
  const uint8_t *fr = sp_goalset_frame(&j->gs, pick_v, pick_f);
  const size_t px = (size_t)j->F * j->F;
  for (size_t i = 0; i < px; i++)
    for (int ch = 0; ch < 3; ch++) j->goal[ch * px + i] = fr[i * 3 + ch] / 127.5f - 1.f;
  j->imagined++;
}

/* one sample into row b of the batch: frames stacked and cropped at (y0, x0), ee normalised,
 * the normalised chunk into a0 (and the raw one into raw when not NULL) */
static int draw(sp_policy_job *j, sp_sampler *s, int b, int random_crop, sp_mt19937 *r, double *raw, char *err) {
  sp_policy_sample ps = {.cur = j->cur, .goal_img = j->goal, .actions = j->a0 + b * j->per};
  if (sp_sampler_policy(s, &ps, err)) return -1;
  if (r && j->gs.n) {
    j->drawn++;
    if (sp_mt_double(r) < j->jc.imagined_frac) imagined_goal(j, &ps, r);
  }
  int span = j->F - j->R + 1, y0 = (j->F - j->R) / 2, x0 = y0;
  if (random_crop) {
    y0 = (int)(sp_mt_u32(r) % (uint32_t)span);
    x0 = (int)(sp_mt_u32(r) % (uint32_t)span);
  }
  sp_policy_stack(&j->model, j->cur, j->goal, y0, x0, j->img + b * j->nimg);
  double ee[SP_POLICY_EE_MAX] = {ps.ee[0], ps.ee[1], ps.ee[2], ps.grip};
  sp_policy_norm_ee(&j->model, ee, j->ee + j->model.nee * b);
  if (raw) memcpy(raw, ps.raw_actions, sizeof(double) * j->per);
  return 0;
}

static int job_step(void *self, long step, float *loss, char *err) {
  sp_policy_job *j = self;
  const int B = j->B;
  sp_sampler_reseed(j->train, sp_train_seed(j->tc.seed, step, 0));
  sp_mt19937 r;
  sp_mt_seed(&r, sp_train_seed(j->tc.seed, step, 1));
  for (int b = 0; b < B; b++) {
    if (draw(j, j->train, b, j->jc.random_crop, &r, NULL, err)) return -1;
    j->ts[b] = (int)(sp_mt_u32(&r) % (uint32_t)j->mc.T);
    j->tf[b] = (float)j->ts[b];
  }
  const size_t n = (size_t)B * j->per;
  const float *target = j->a0;
  if (j->mc.head == SP_POLICY_HEAD_DIFFUSION) {
    for (size_t i = 0; i < n; i++) j->noise[i] = (float)sp_mt_normal(&r);
    nn_q_sample(j->xt, j->a0, j->noise, &j->model.sched, j->ts, B, (int)j->per);
    nn_diffusion_target(j->target, j->a0, j->noise, &j->model.sched, j->ts, B, (int)j->per,
                        j->mc.target == SP_POLICY_TARGET_X0 ? NN_PRED_X0 : NN_PRED_EPS);
    target = j->target;
  }
  sp_policy_forward(&j->model, &j->ws, j->out, j->xt, j->tf, j->img, j->ee, B);
  *loss = nn_mse_forward(j->out, target, NULL, B, j->per);
  nn_mse_backward(j->dout, j->out, target, NULL, B, j->per, 1.f);
  sp_policy_backward(&j->model, &j->ws, j->dout, B);
  return 0;
}

int sp_policy_job_validate(sp_policy_job *j, char *json, size_t cap, double *metric, char *err) {
  const int B = j->B, K = j->jc.val_samples, H = j->H;
  /* the same held-out draws and noise every time */
  sp_sampler_reseed(j->val, sp_train_seed(j->tc.seed, 0, 7));
  sp_mt19937 r;
  sp_mt_seed(&r, sp_train_seed(j->tc.seed, 0, 8));
  double se = 0, se_xyz = 0, se_g = 0, se_mid = 0, mid[SP_POLICY_ADIM];
  for (int d = 0; d < SP_POLICY_ADIM; d++) mid[d] = -j->model.a_off[d] / j->model.a_scale[d];  // normalised 0
  double *pred = malloc(sizeof(double) * j->per);
  if (!pred) return sp_errf(err, "out of memory for validation");
  for (int k0 = 0; k0 < K; k0 += B) {
    int nb = K - k0 < B ? K - k0 : B;
    for (int b = 0; b < nb; b++)
      if (draw(j, j->val, b, 0, NULL, j->raw + (size_t)(k0 + b) * j->per, err)) {
        free(pred);
        return -1;
      }
    for (size_t i = 0; i < (size_t)nb * j->per; i++) j->noise[i] = (float)sp_mt_normal(&r);
    sp_policy_predict(&j->model, &j->ws, j->out, j->img, j->ee, j->noise, nb);
    for (int b = 0; b < nb; b++) {
      const double *truth = j->raw + (size_t)(k0 + b) * j->per;
      sp_policy_unnorm_actions(&j->model, j->out + b * j->per, pred);
      for (int h = 0; h < H; h++) {
        for (int d = 0; d < SP_POLICY_ADIM; d++) {
          double e = pred[h * SP_POLICY_ADIM + d] - truth[h * SP_POLICY_ADIM + d], em = mid[d] - truth[h * SP_POLICY_ADIM + d];
          se += e * e;
          se_mid += em * em;
          if (d < 3) se_xyz += e * e;
          else se_g += e * e;
        }
      }
    }
  }
  free(pred);
  double nel = (double)K * H;
  *metric = se / (nel * SP_POLICY_ADIM);
  snprintf(json, cap,
           "{\"mse\":%.6g,\"mse_xyz\":%.6g,\"mse_gripper\":%.6g,\"mid_mse\":%.6g,\"samples\":%d,"
           "\"episodes\":%d,\"ddim_steps\":%d}",
           *metric, se_xyz / (nel * 3), se_g / nel, se_mid / (nel * SP_POLICY_ADIM), K,
           sp_sampler_count(j->val),
           j->mc.ddim_steps);
  return 0;
}

static int job_validate(void *self, long step, char *json, size_t cap, double *metric, char *err) {
  (void)step;
  return sp_policy_job_validate(self, json, cap, metric, err);
}

static float *falloc(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64); }

/* the limits st gives; the dataset's actions (amin, amax) must lie within them, and both samplers
 * normalise with them from now on, so the targets are in the units of the model's output */
static int start_limits(sp_policy_job *j, const sp_policy_start *st, const double amin[SP_ACT_DIM],
                        const double amax[SP_ACT_DIM], const char *data, sp_policy_limits *lim, char *err) {
  *lim = *st->lim;
  for (int d = 0; d < SP_POLICY_ADIM; d++)
    if (amin[d] < lim->act_min[d] - 1e-9 || amax[d] > lim->act_max[d] + 1e-9)
      return sp_errf(err, "%s: action %d spans [%g, %g], outside the %s policy's limits [%g, %g] (fine-tuning keeps them)",
                     data, d, amin[d], amax[d], st->init ? st->init : "run's", lim->act_min[d], lim->act_max[d]);
  sp_sampler_set_action_limits(j->train, lim->act_min, lim->act_max);
  sp_sampler_set_action_limits(j->val, lim->act_min, lim->act_max);
  return 0;
}

/* fine-tuning: the weights of the policy checkpoint `path`. One without the gripper input widens
 * into a model with it: ee.0.weight's new column starts at zero, so the network computes what the
 * checkpoint did until training moves it. *grip: the checkpoint's ee_grip. */
static int init_weights(sp_policy_job *j, const char *path, int *grip, char *err) {
  sp_policy base;
  if (sp_policy_load(&base, path, err)) return -1;
  *grip = base.cfg.ee_grip;
  nn_params *ps = &j->model.ps;
  const nn_params *bp = &base.ps;
  const int nb = base.nee, nm = j->model.nee;
  int rc = 0;
  if (nb > nm) rc = sp_errf(err, "--init %s sees the gripper opening (ee_grip 1); set --ee-grip 1", path);
  for (int i = 0; i < ps->n && !rc; i++) {
    const nn_param *p = &ps->p[i];
    int k = nn_params_find(bp, p->name);
    const float *src = k >= 0 ? bp->data + bp->p[k].offset : NULL;
    float *dst = ps->data + p->offset;
    if (k < 0) {
      rc = sp_errf(err, "--init %s lacks the tensor %s", path, p->name);
    } else if (bp->p[k].numel == p->numel) {
      memcpy(dst, src, p->numel * sizeof(float));
    } else if (!strcmp(p->name, "ee.0.weight") && bp->p[k].numel / nb == p->numel / nm) {
      for (size_t r = 0; r < p->numel / nm; r++)
        for (int c = 0; c < nm; c++) dst[r * nm + c] = c < nb ? src[r * nb + c] : 0.f;
    } else {
      rc = sp_errf(err, "--init %s: tensor %s holds %zu values, the model's %zu (another model config?)", path, p->name,
                   bp->p[k].numel, p->numel);
    }
  }
  sp_policy_free(&base);
  return rc;
}

/* the imagined goal set of the dataset, indexed by episode */
static int open_goalset(sp_policy_job *j, const char *path, const char *data, const sp_dataset *ds, char *err) {
  if (sp_goalset_open(&j->gs, path, err)) return -1;
  const int neps = sp_dataset_count(ds);
  if (j->gs.episodes != neps)
    return sp_errf(err, "%s was made from a dataset of %d episodes, %s holds %d (sp imagine --data %s)", path,
                   j->gs.episodes, data, neps, data);
  if (j->gs.R != j->F)
    return sp_errf(err, "%s holds %d px frames, the policy's frame is %d", path, j->gs.R, j->F);
  j->gs_first = malloc(sizeof(int) * (size_t)neps);
  j->gs_next = malloc(sizeof(int) * (size_t)j->gs.n);
  if (!j->gs_first || !j->gs_next) return sp_errf(err, "out of memory for %s", path);
  for (int e = 0; e < neps; e++) j->gs_first[e] = -1;
  for (int v = j->gs.n - 1; v >= 0; v--) {
    const int32_t *ix = j->gs.idx + (size_t)v * (j->gs.F + 1);
    const sp_dataset_ep *e = sp_dataset_episode(ds, j->gs.episode[v]);
    if (ix[j->gs.F] >= e->n)
      return sp_errf(err, "%s: video %d stands for frame %d of episode %d, which has %d frames (another dataset?)",
                     path, v, ix[j->gs.F], j->gs.episode[v], e->n);
    j->gs_next[v] = j->gs_first[j->gs.episode[v]];
    j->gs_first[j->gs.episode[v]] = v;
  }
  sp_log(SP_LOG_INFO, "policy job: %d imagined videos from %s, %.0f%% of the goals drawn from them where they cover",
         j->gs.n, path, 100.0 * j->jc.imagined_frac);
  return 0;
}

sp_policy_job *sp_policy_job_open(const char *data, const sp_policy_cfg *mc, const char *preset,
                                  const sp_ptrain_cfg *jc, const sp_train_cfg *tc, const sp_policy_start *st,
                                  char *err) {
  if (sp_policy_cfg_check(mc, err) || sp_cf_check(sp_ptrain_fields, jc, "policy job", err)) return NULL;
  if (jc->goal_max < jc->goal_min) {
    sp_errf(err, "policy job: goal_max = %d is below goal_min = %d", jc->goal_max, jc->goal_min);
    return NULL;
  }
  sp_policy_job *j = calloc(1, sizeof *j);
  j->mc = *mc;
  sp_policy_cfg_derive(&j->mc);
  j->jc = *jc;
  j->tc = *tc;
  j->B = tc->batch;
  j->F = j->mc.frame;
  j->R = j->mc.enc.res;
  j->H = j->mc.unet.horizon;
  j->per = (size_t)j->H * SP_POLICY_ADIM;
  j->nimg = (size_t)SP_POLICY_IN_CH * j->R * j->R;
  sp_sampler_cfg sc;
  sp_sampler_cfg_default(&sc);
  sc.goal_min = jc->goal_min;
  sc.goal_max = jc->goal_max;
  sc.horizon = j->H;
  sc.include_recovery = jc->recovery;
  sc.expert_only = 1;
  sc.holdout = jc->holdout;
  sc.split = SP_SPLIT_TRAIN;
  if (!(j->train = sp_sampler_open(data, &sc, (uint32_t)tc->seed, err))) goto fail;
  sc.split = SP_SPLIT_VAL;
  sc.include_recovery = 0;  // validation: the held-out demonstrations themselves
  if (!(j->val = sp_sampler_open(data, &sc, (uint32_t)tc->seed, err))) goto fail;
  if (sp_sampler_size(j->train) != j->F) {
    sp_errf(err, "%s holds %dx%d frames, the policy's frame is %d (collect with --size %d, or set --frame and --crop)",
            data, sp_sampler_size(j->train), sp_sampler_size(j->train), j->F, j->F);
    goto fail;
  }
  if (sp_policy_init(&j->model, &j->mc, (unsigned)tc->seed, err)) goto fail;
  sp_policy_limits lim, dlim;
  const sp_dataset *ds = sp_sampler_dataset(j->train);
  sp_sampler_action_limits(j->train, dlim.act_min, dlim.act_max);
  ee_limits(ds, dlim.ee_min, dlim.ee_max);
  lim = dlim;
  if (st && st->lim && start_limits(j, st, dlim.act_min, dlim.act_max, data, &lim, err)) goto fail;
  int init_grip = j->mc.ee_grip;
  if (st && st->load && init_weights(j, st->init, &init_grip, err)) goto fail;
  if (init_grip < j->mc.ee_grip) lim.ee_min[3] = dlim.ee_min[3], lim.ee_max[3] = dlim.ee_max[3];  // widened
  sp_policy_set_limits(&j->model, &lim);
  if (st && st->imagined && open_goalset(j, st->imagined, data, ds, err)) goto fail;
  if (sp_policy_ws_init(&j->ws, &j->model, j->B, 1, err)) goto fail;
  const size_t Bn = (size_t)j->B * j->per;
  j->cur = falloc((size_t)3 * j->F * j->F);
  j->goal = falloc((size_t)3 * j->F * j->F);
  j->img = falloc((size_t)j->B * j->nimg);
  j->ee = falloc((size_t)j->B * SP_POLICY_EE_MAX);
  j->a0 = falloc(Bn);
  j->xt = falloc(Bn);
  j->noise = falloc(Bn);
  j->target = falloc(Bn);
  j->out = falloc(Bn);
  j->dout = falloc(Bn);
  j->tf = falloc((size_t)j->B);
  j->ts = malloc(sizeof(int) * (size_t)j->B);
  j->raw = malloc(sizeof(double) * (size_t)jc->val_samples * j->per);
  if (!j->cur || !j->goal || !j->img || !j->ee || !j->a0 || !j->xt || !j->noise || !j->target || !j->out ||
      !j->dout || !j->tf || !j->ts || !j->raw) {
    sp_errf(err, "out of memory for the policy job's batch buffers");
    goto fail;
  }
  /* the trainable */
  sp_trainable *t = &j->tr;
  t->model = "policy";
  t->preset = preset ? preset : "";
  t->config = sp_policy_config_json(&j->model);
  t->job_config = sp_cf_to_json(sp_ptrain_fields, jc);
  const char *dcfg = sp_dataset_config_json(ds);
  cJSON *o = cJSON_CreateObject(), *cc = cJSON_Parse(dcfg ? dcfg : "");
  cJSON_AddStringToObject(o, "dataset", data);
  cJSON_AddNumberToObject(o, "train_episodes", sp_sampler_count(j->train));
  cJSON_AddNumberToObject(o, "val_episodes", sp_sampler_count(j->val));
  cJSON_AddItemToObject(o, "collect", cc ? cc : cJSON_CreateNull());
  if (st && st->init) cJSON_AddStringToObject(o, "init", st->init);
  if (st && st->imagined) cJSON_AddStringToObject(o, "imagined", st->imagined);
  t->data = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  t->ps = &j->model.ps;
  t->self = j;
  t->step = job_step;
  t->validate = job_validate;
  t->metric_name = "action MSE (lower is better)";
  return j;
fail:
  sp_policy_job_close(j);
  return NULL;
}

sp_trainable *sp_policy_job_trainable(sp_policy_job *j) { return &j->tr; }
const sp_policy *sp_policy_job_model(const sp_policy_job *j) { return &j->model; }

void sp_policy_job_close(sp_policy_job *j) {
  if (!j) return;
  if (j->drawn)
    sp_log(SP_LOG_INFO, "policy job: %ld of %ld training samples had an imagined goal (%.1f%%)", j->imagined,
           j->drawn, 100.0 * j->imagined / j->drawn);
  sp_goalset_close(&j->gs);
  free(j->gs_first);
  free(j->gs_next);
  sp_sampler_close(j->train);
  sp_sampler_close(j->val);
  sp_policy_ws_free(&j->ws);
  sp_policy_free(&j->model);
  free(j->cur);
  free(j->goal);
  free(j->img);
  free(j->ee);
  free(j->a0);
  free(j->xt);
  free(j->noise);
  free(j->target);
  free(j->out);
  free(j->dout);
  free(j->tf);
  free(j->ts);
  free(j->raw);
  free(j->tr.config);
  free(j->tr.job_config);
  free(j->tr.data);
  free(j);
}

static void data_string(const cJSON *dj, const char *key, char *out, size_t cap) {
  const cJSON *v = dj ? cJSON_GetObjectItemCaseSensitive(dj, key) : NULL;
  snprintf(out, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

/* the model config and limits of a read checkpoint (mc starts from the cpu preset) */
static int ckpt_model(const char *ckpt, const sp_ckpt_info *info, sp_policy_cfg *mc, sp_policy_limits *lim, char *err) {
  if (strcmp(info->model, "policy")) return sp_errf(err, "%s holds a '%s' model, not a policy", ckpt, info->model);
  sp_policy_cfg_preset(mc, SP_PRESET_CPU);
  char e2[SP_ERRLEN];
  if (sp_policy_config_parse(info->config, mc, lim, e2)) return sp_errf(err, "%s: %s", ckpt, e2);
  return 0;
}

int sp_policy_ckpt_settings(const char *ckpt, sp_policy_cfg *mc, sp_policy_limits *lim, char *preset, size_t pcap,
                            char *err) {
  sp_ckpt_info info;
  if (sp_ckpt_info_read(ckpt, &info, err)) return -1;
  int rc = ckpt_model(ckpt, &info, mc, lim, err);
  if (!rc) snprintf(preset, pcap, "%s", info.preset);
  sp_ckpt_info_free(&info);
  return rc;
}

int sp_policy_run_settings(const char *ckpt, sp_policy_cfg *mc, sp_ptrain_cfg *jc, sp_train_cfg *tc,
                           sp_policy_limits *lim, sp_policy_run_files *files, char *err) {
  sp_ckpt_info info;
  if (sp_ckpt_info_read(ckpt, &info, err)) return -1;
  int rc = ckpt_model(ckpt, &info, mc, lim, err);
  cJSON *tr = cJSON_Parse(info.trainer ? info.trainer : ""), *dj = cJSON_Parse(info.data);
  char *t = NULL, *jj = NULL;
  if (!rc && (!tr || !cJSON_GetObjectItemCaseSensitive(tr, "train") || !cJSON_GetObjectItemCaseSensitive(tr, "job")))
    rc = sp_errf(err, "%s: no trainer state in the metadata (not a resumable checkpoint)", ckpt);
  if (!rc) {
    t = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tr, "train"));
    jj = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tr, "job"));
    if (sp_cf_from_json(sp_train_fields, tc, t, err) || sp_cf_from_json(sp_ptrain_fields, jc, jj, err)) rc = -1;
  }
  data_string(dj, "dataset", files->data, sizeof files->data);
  data_string(dj, "init", files->init, sizeof files->init);
  data_string(dj, "imagined", files->imagined, sizeof files->imagined);
  snprintf(files->preset, sizeof files->preset, "%s", info.preset);
  free(t);
  free(jj);
  cJSON_Delete(tr);
  cJSON_Delete(dj);
  sp_ckpt_info_free(&info);
  return rc;
}
