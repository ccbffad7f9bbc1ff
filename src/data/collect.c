/* collect.c: sp collect: rollouts, rendering, annotations, recovery episodes, worker threads,
 * part files, checkpoints and resume (contract in collect.h, layout in docs/dataset.md). */
#include "data/collect.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "plan/plan.h"
#include "sim/render.h"

#define MAX_MASK_GEOMS 64
#define MAX_FRAMES (SP_MAX_PATH + 1)

void sp_collect_config_default(sp_collect_config *c) {
  memset(c, 0, sizeof *c);
  c->size = 128;
  c->render_w = 320;
  c->render_h = 240;
  /* fast by default, with the look kept (docs/dataset.md, Performance): the crop window rendered
   * directly at the stored size, shadow map 1024 instead of the scene's 4096 */
  c->render_crop = 1;
  c->shadow_size = 1024;
  c->demos = 5;  // AVDC's 5 demonstrations per (task, camera), however many seeds fail
  c->recovery_tries = 3;
  c->jobs = 1;
  c->deflate = 4;
  c->checkpoint_s = 30;
  c->msaa = -1;
  sp_fine_cfg_default(&c->fine);
}

/* ---- one episode ---- */

static int uniform_int(sp_mt19937 *r, int lo, int hi) {  // lo..hi inclusive
  return lo + (int)(sp_mt_double(r) * (hi - lo + 1));
}

static int has_free_object(int task) {
  return task == SP_TASK_SHELF_PLACE || task == SP_TASK_HAMMER || task == SP_TASK_ASSEMBLY ||
         task == SP_TASK_BASKETBALL;
}

static void project(const double K[9], const double R[9], const double t[3], const double p[3], float uv[2]) {
  double X = R[0] * p[0] + R[1] * p[1] + R[2] * p[2] + t[0];
  double Y = R[3] * p[0] + R[4] * p[1] + R[5] * p[2] + t[1];
  double Z = R[6] * p[0] + R[7] * p[1] + R[8] * p[2] + t[2];
  if (Z <= 1e-9) { uv[0] = uv[1] = NAN; return; }
  uv[0] = (float)(K[2] + K[0] * X / Z);
  uv[1] = (float)(K[5] + K[4] * Y / Z);
}

static double dist3(const double *a, const double *b) {
  double dx = a[0] - b[0], dy = a[1] - b[1], dz = a[2] - b[2];
  return sqrt(dx * dx + dy * dy + dz * dz);
}

/* scratch for one worker's renders */
typedef struct {
  uint8_t *rgb;
  float *depth;
  int32_t *seg;
  uint8_t *mask;
} render_scratch;

static __thread render_scratch g_scr;
static __thread int g_scr_cap = 0;

static void scratch_free(void) {
  free(g_scr.rgb); free(g_scr.depth); free(g_scr.seg); free(g_scr.mask);
  memset(&g_scr, 0, sizeof g_scr);
  g_scr_cap = 0;
}

static int scratch_ensure(int w, int h) {
  int cap = g_scr_cap;
  if (cap >= w * h) return 0;
  free(g_scr.rgb); free(g_scr.depth); free(g_scr.seg); free(g_scr.mask);
  g_scr.rgb = malloc((size_t)w * h * 3);
  g_scr.depth = malloc(sizeof(float) * (size_t)w * h);
  g_scr.seg = malloc(sizeof(int32_t) * (size_t)w * h);
  g_scr.mask = malloc((size_t)w * h);
  g_scr_cap = g_scr.rgb && g_scr.depth && g_scr.seg && g_scr.mask ? w * h : 0;
  return g_scr_cap ? 0 : -1;
}

static int record_frame(const sp_collect_config *cfg, sp_env *e, sp_renderer *rend,
                        const int *mask_geoms, int nmask, int cam, const sp_crop *crop,
                        const double obs[SP_OBS_DIM], int success, sp_demo *d, int k,
                        double *t_render, char *err) {
  const int sz = d->size;
  memcpy(d->obs + (size_t)k * SP_OBS_DIM, obs, sizeof(double) * SP_OBS_DIM);
  double grip[SP_DATA_NGRIP][3], tgt[SP_DATA_NTARGET][3];
  sp_env_tcp(e, grip[0]);
  memcpy(grip[1], e->d->site_xpos + 3 * e->em->site_right_pad, sizeof grip[1]);
  memcpy(grip[2], e->d->site_xpos + 3 * e->em->site_left_pad, sizeof grip[2]);
  memcpy(tgt[0], obs + SP_OBS_OBJ, sizeof tgt[0]);
  memcpy(tgt[1], obs + SP_OBS_GOAL, sizeof tgt[1]);
  memcpy(d->ee_pos + 3 * k, grip[0], sizeof grip[0]);
  memcpy(d->finger_pos + 6 * k, grip[1], sizeof grip[1]);
  memcpy(d->finger_pos + 6 * k + 3, grip[2], sizeof grip[2]);
  for (int j = 0; j < SP_DATA_NTARGET; j++) {
    memcpy(d->target_pos + (size_t)(SP_DATA_NTARGET * k + j) * 3, tgt[j], sizeof tgt[j]);
    project(d->K, d->R, d->tvec, tgt[j], d->target_px + (size_t)(SP_DATA_NTARGET * k + j) * 2);
  }
  for (int g = 0; g < SP_DATA_NGRIP; g++) {
    project(d->K, d->R, d->tvec, grip[g], d->gripper_px + (size_t)(SP_DATA_NGRIP * k + g) * 2);
    for (int j = 0; j < SP_DATA_NTARGET; j++)
      d->distance[(size_t)(SP_DATA_NGRIP * k + g) * SP_DATA_NTARGET + j] = (float)dist3(grip[g], tgt[j]);
  }
  /* the fine-interval signal: the closest gripper point to either target (grasping the object,
   * pushing it, or placing it at the goal are all close-contact phases) */
  double dmin = INFINITY;
  for (int g = 0; g < SP_DATA_NGRIP; g++)
    for (int j = 0; j < SP_DATA_NTARGET; j++) {
      double v = dist3(grip[g], tgt[j]);
      if (v < dmin) dmin = v;
    }
  d->fine_distance[k] = dmin;
  d->success[k] = (uint8_t)(success != 0);
  if (!rend) return 0;
  /* render the full view and crop it, or the crop window directly */
  int rw = cfg->render_crop ? sz : cfg->render_w, rh = cfg->render_crop ? sz : cfg->render_h;
  if (scratch_ensure(rw, rh)) return sp_errf(err, "out of memory for render buffers");
  double t0 = sp_time_now();
  const int all = !cfg->rgb_only;
  if (sp_render(rend, e, cam, rw, rh, g_scr.rgb, all ? g_scr.depth : NULL, all ? g_scr.seg : NULL, err)) return -1;
  *t_render += sp_time_now() - t0;
  for (int i = 0; all && i < rw * rh; i++) {
    int32_t id = g_scr.seg[i];
    uint8_t v = 0;
    for (int q = 0; q < nmask && !v; q++) v = id == mask_geoms[q] ? 255 : 0;
    g_scr.mask[i] = v;
  }
  size_t px = (size_t)sz * sz;
  if (cfg->render_crop) {
    memcpy(d->rgb + px * 3 * k, g_scr.rgb, px * 3);
    if (all) memcpy(d->depth + px * k, g_scr.depth, px * sizeof(float));
    if (all) memcpy(d->mask + px * k, g_scr.mask, px);
  } else {
    sp_crop_resize_rgb(g_scr.rgb, rw, crop, sz, d->rgb + px * 3 * k);
    if (all) sp_crop_resize_f32(g_scr.depth, rw, crop, sz, d->depth + px * k);
    if (all) sp_crop_resize_u8(g_scr.mask, rw, crop, sz, d->mask + px * k);
  }
  return 0;
}

static int episode(const sp_collect_config *cfg, sp_env *e, struct sp_renderer *rend, const int *mask_geoms, int nmask,
                   int cam, long seed, int attempt, void *pstate, const sp_env *start, sp_demo *d, double *t_render,
                   char *err);

int sp_collect_episode_by(const sp_collect_config *cfg, sp_env *e, struct sp_renderer *rend,
                          const int *mask_geoms, int nmask, int cam, long seed, int attempt, void *pstate,
                          sp_demo *d, double *t_render, char *err) {
  return episode(cfg, e, rend, mask_geoms, nmask, cam, seed, attempt, pstate, NULL, d, t_render, err);
}

int sp_collect_episode_from(const sp_collect_config *cfg, sp_env *e, struct sp_renderer *rend, int cam,
                            const sp_env *start, sp_demo *d, double *t_render, char *err) {
  sp_collect_config c = *cfg;
  c.policy = NULL;
  return episode(&c, e, rend, NULL, 0, cam, start->seed, -1, NULL, start, d, t_render, err);
}

int sp_collect_episode(const sp_collect_config *cfg, sp_env *e, struct sp_renderer *rend,
                       const int *mask_geoms, int nmask, int cam, long seed, int attempt,
                       sp_demo *d, double *t_render, char *err) {
  sp_collect_config c = *cfg;
  c.policy = NULL;
  return sp_collect_episode_by(&c, e, rend, mask_geoms, nmask, cam, seed, attempt, NULL, d, t_render, err);
}

/* one episode from a reset for seed, or (start not NULL) from start's state on */
static int episode(const sp_collect_config *cfg, sp_env *e, struct sp_renderer *rend, const int *mask_geoms, int nmask,
                   int cam, long seed, int attempt, void *pstate, const sp_env *start, sp_demo *d, double *t_render,
                   char *err) {
  const sp_collect_policy *pol = cfg->policy;
  if (pol && attempt >= 0) return sp_errf(err, "recovery episodes are the expert's");
  const int task = e->em->task, sz = cfg->size;
  if (d->cap < MAX_FRAMES || d->size != sz) return sp_errf(err, "episode buffer too small");
  sp_crop crop = sp_crop_lookup(task, cam, cfg->render_w, cfg->render_h, cfg->crops, cfg->ncrop);
  if (crop.row + crop.h > cfg->render_h || crop.col + crop.w > cfg->render_w)
    return sp_errf(err, "%s/%s: crop window %d,%d,%d,%d does not fit the %dx%d render",
                   sp_task_name(task), sp_camera_name(cam), crop.row, crop.col, crop.h, crop.w,
                   cfg->render_w, cfg->render_h);
  if (crop.h > 63 * sz || crop.w > 63 * sz) return sp_errf(err, "crop window more than 63x the stored size");
  d->task = task;
  d->cam = cam;
  d->seed = seed;
  d->attempt = attempt;
  d->recovery = attempt >= 0;
  d->crop[0] = crop.row; d->crop[1] = crop.col; d->crop[2] = crop.h; d->crop[3] = crop.w;
  d->render_w = cfg->render_w;
  d->render_h = cfg->render_h;
  d->render_crop = cfg->render_crop;
  d->perturb[0] = 0;
  double obs[SP_OBS_DIM], act[SP_ACT_DIM];
  if (start) {
    sp_env_copy_state(e, start);
    memcpy(obs, e->obs, sizeof obs);
  } else {
    sp_env_reset(e, seed, obs);
  }
  const int cid = e->em->cam_id[cam];
  sp_camera_matrix cm;
  if (cfg->render_crop) {
    if (crop.h != crop.w || 2 * crop.row + crop.h != cfg->render_h || 2 * crop.col + crop.w != cfg->render_w)
      return sp_errf(err, "%s/%s: --render-crop needs a centred square crop window (have %d,%d,%d,%d)",
                     sp_task_name(task), sp_camera_name(cam), crop.row, crop.col, crop.h, crop.w);
    /* the same pinhole camera with a narrower field: a sz x sz render equals the crop resized */
    e->m->cam_fovy[cid] = sp_crop_fovy(e->em, cam, &crop, cfg->render_h);
    sp_camera_get(e, cam, sz, sz, &cm);
    memcpy(d->K, cm.K, sizeof d->K);
  } else {
    e->m->cam_fovy[cid] = e->em->m0->cam_fovy[cid];
    sp_camera_get(e, cam, cfg->render_w, cfg->render_h, &cm);
    sp_crop_intrinsics(cm.K, &crop, sz, d->K);
  }
  memcpy(d->R, cm.R, sizeof d->R);
  memcpy(d->tvec, cm.t, sizeof d->tvec);
  memcpy(d->cam_pos, cm.pos, sizeof d->cam_pos);

  /* the spatial plan table of the reset state (rule planner) */
  sp_plan plan;
  char perr[SP_ERRLEN];
  d->plan[0] = 0;
  if (!sp_plan_rule(task, obs + SP_OBS_HAND, obs + SP_OBS_OBJ, obs + SP_OBS_GOAL, NULL, &plan, perr))
    sp_plan_format(&plan, 0, d->plan, sizeof d->plan);

  /* recovery: a perturbation drawn from the episode's own generator */
  sp_mt19937 rng;
  int p_start = -1, p_len = 0, displace = 0;
  double disp[2] = {0, 0};
  if (attempt >= 0) {
    char purpose[64];
    snprintf(purpose, sizeof purpose, "recovery %d", attempt);
    sp_mt_seed(&rng, sp_seed_derive(sp_task_name(task), sp_camera_name(cam), seed, purpose));
    p_start = uniform_int(&rng, 3, 40);
    displace = has_free_object(task) && sp_mt_double(&rng) < 0.5;
    if (displace) {
      disp[0] = sp_mt_uniform(&rng, -0.05, 0.05);
      disp[1] = sp_mt_uniform(&rng, -0.05, 0.05);
      snprintf(d->perturb, sizeof d->perturb, "object displaced by (%.3f, %.3f) m at step %d",
               disp[0], disp[1], p_start);
    } else {
      p_len = uniform_int(&rng, 5, 25);
      snprintf(d->perturb, sizeof d->perturb, "random actions for steps %d..%d", p_start,
               p_start + p_len - 1);
    }
  }

  /* takeover: the expert finishes what the policy started, from a step drawn per episode */
  int takeover = -1;
  if (pol && cfg->takeover_max > 0) {
    sp_mt19937 trng;
    sp_mt_seed(&trng, sp_seed_derive(sp_task_name(task), sp_camera_name(cam), seed, "takeover"));
    takeover = uniform_int(&trng, cfg->takeover_min, cfg->takeover_max);
    snprintf(d->perturb, sizeof d->perturb, "%s acted for steps 0..%d, then the expert", pol->name, takeover - 1);
  }

  if (pol && pol->begin(pstate, e, cam, seed, err)) return -1;
  double t_r = 0;
  if (record_frame(cfg, e, rend, mask_geoms, nmask, cam, &crop, obs, sp_env_evaluate(e, obs), d, 0,
                   &t_r, err))
    return -1;
  sp_episode_rule rule;
  sp_episode_rule_init(&rule);
  const int base = start ? start->t : 0;  // frames before the first recorded one
  rule.frames += base;                    // the episode's frame budget goes on from start's
  int steps = 0;
  while (sp_episode_rule_more(&rule, cfg->max_steps)) {
    if (cfg->stop && *cfg->stop) return sp_errf(err, "interrupted");
    int expert = 1;
    if (attempt >= 0 && steps == p_start && displace) {
      e->d->qpos[e->em->qpos_obj] += disp[0];
      e->d->qpos[e->em->qpos_obj + 1] += disp[1];
      for (int j = 0; j < 6; j++) e->d->qvel[e->em->qvel_obj + j] = 0;
      mj_forward(e->m, e->d);
    }
    if (attempt >= 0 && !displace && steps >= p_start && steps < p_start + p_len) {
      for (int j = 0; j < SP_ACT_DIM; j++) act[j] = sp_mt_uniform(&rng, -1, 1);
      expert = 0;
    } else if (pol && (takeover < 0 || steps < takeover)) {
      if (pol->act(pstate, e, obs, act, err)) return -1;
      expert = pol->expert;
    } else {
      sp_expert_act(task, cfg->grasp, obs, act);
    }
    int done = sp_env_step(e, act, obs);
    if (!sp_episode_rule_step(&rule, done)) break;
    memcpy(d->actions + (size_t)steps * SP_ACT_DIM, act, sizeof act);
    d->expert[steps] = (uint8_t)expert;
    steps++;
    if (record_frame(cfg, e, rend, mask_geoms, nmask, cam, &crop, obs, done, d, rule.frames - 1 - base, &t_r, err))
      return -1;
    if (sp_episode_rule_over(&rule)) break;
  }
  d->n = rule.frames - base;
  d->ep_success = sp_episode_rule_success(&rule);
  sp_fine_phases(&cfg->fine, d->fine_distance, d->n, d->fine_flag);
  d->nfine = sp_fine_sample(&cfg->fine, d->fine_flag, d->n, d->fine_idx);
  if (t_render) *t_render += t_r;
  return 0;
}

/* ---- the run ---- */

typedef struct {
  int task, cam;
  long seed;      // demonstration seed; unused for recovery jobs
  int recovery;   // 1: the recovery series of (task, cam)
  int frames;     // planned frames (progress units, scheduling)
  int known_ok;   // the dry run already showed that this episode is kept
  long order;     // scheduling key: the task's planned frames, then this job's
} job;

typedef struct {
  const sp_collect_config *cfg;
  sp_env_model *models[SP_NTASK];
  int mask[SP_NTASK][MAX_MASK_GEOMS], nmask[SP_NTASK];
  job *jobs;
  int njobs;
  atomic_int next;
  char parts_dir[4096];
  sp_dataset_meta meta;
  char *config_json;
  /* names already done (present in OUT or parts, or failed): "task/cam/name" */
  char **done;
  int ndone;
  pthread_mutex_t lock;
  sp_progress progress;
  atomic_int failed;
  char fail_msg[SP_ERRLEN];
  atomic_int workers_left;
  sp_collect_stats st;
  char failed_list[16384];  // "task/cam/name,..." of episodes that failed (kept in the dataset)
  int mean_frames[SP_NTASK]; // of the task's planned demonstrations (recovery progress units)
} run_state;

static void fail_run(run_state *rs, const char *msg) {
  pthread_mutex_lock(&rs->lock);
  if (!atomic_load(&rs->failed)) snprintf(rs->fail_msg, sizeof rs->fail_msg, "%s", msg);
  atomic_store(&rs->failed, 1);
  pthread_mutex_unlock(&rs->lock);
}

static int is_done(run_state *rs, int task, int cam, const char *name) {
  char key[160];
  snprintf(key, sizeof key, "%s/%s/%s", sp_task_name(task), sp_camera_name(cam), name);
  pthread_mutex_lock(&rs->lock);
  int have = 0;
  for (int i = 0; i < rs->ndone && !have; i++) have = !strcmp(rs->done[i], key);
  pthread_mutex_unlock(&rs->lock);
  return have;
}

static void add_done(run_state *rs, const char *key) {
  pthread_mutex_lock(&rs->lock);
  rs->done = realloc(rs->done, sizeof(char *) * (size_t)(rs->ndone + 1));
  rs->done[rs->ndone++] = strdup(key);
  pthread_mutex_unlock(&rs->lock);
}

static void add_failed(run_state *rs, int task, int cam, const char *name) {
  char key[160];
  snprintf(key, sizeof key, "%s/%s/%s", sp_task_name(task), sp_camera_name(cam), name);
  add_done(rs, key);
  pthread_mutex_lock(&rs->lock);
  size_t L = strlen(rs->failed_list);
  if (L + strlen(key) + 2 < sizeof rs->failed_list)
    snprintf(rs->failed_list + L, sizeof rs->failed_list - L, "%s%s", L ? "," : "", key);
  pthread_mutex_unlock(&rs->lock);
}

/* was task/cam/name recorded as failed? */
static int is_failed(run_state *rs, int task, int cam, const char *name) {
  char key[160];
  snprintf(key, sizeof key, "%s/%s/%s", sp_task_name(task), sp_camera_name(cam), name);
  size_t L = strlen(key);
  pthread_mutex_lock(&rs->lock);
  int hit = 0;
  for (const char *f = rs->failed_list; !hit && (f = strstr(f, key)); f++)
    hit = (f == rs->failed_list || f[-1] == ',') && (f[L] == ',' || f[L] == 0);
  pthread_mutex_unlock(&rs->lock);
  return hit;
}

static void part_path(const run_state *rs, const sp_demo *d, char *buf, size_t cap) {
  char nm[64];
  sp_demo_name(d, nm, sizeof nm);
  snprintf(buf, cap, "%.3800s/%s.%s.%s.h5", rs->parts_dir, sp_task_name(d->task), sp_camera_name(d->cam), nm);
}

/* a failure marker keeps resume from retrying a deterministic failure */
static void write_failed_marker(run_state *rs, int task, int cam, const char *name) {
  char p[4096], e2[SP_ERRLEN];
  snprintf(p, sizeof p, "%.3800s/%s.%s.%s.failed", rs->parts_dir, sp_task_name(task), sp_camera_name(cam), name);
  sp_file_write_atomic(p, "", 0, e2);
  add_failed(rs, task, cam, name);
}

static int save_episode(run_state *rs, const sp_demo *d, char *err) {
  char p[4096];
  part_path(rs, d, p, sizeof p);
  double t0 = sp_time_now();
  int rc = sp_demo_save_part(p, d, &rs->meta, rs->cfg->deflate, err);
  pthread_mutex_lock(&rs->lock);
  rs->st.write_s += sp_time_now() - t0;
  if (!rc) {
    rs->st.frames += d->n;
    if (d->recovery) rs->st.recovery_kept++;
    else rs->st.episodes_done++;
  }
  pthread_mutex_unlock(&rs->lock);
  return rc;
}

typedef struct {
  sp_env *env[SP_NTASK];
  sp_renderer *rend;
  int rend_task;
  sp_demo d;
  void *pstate;  // cfg->policy's state
} worker;

static int worker_env(run_state *rs, worker *w, int task, char *err) {
  if (!w->env[task]) {
    w->env[task] = sp_env_create(rs->models[task], err);
    if (!w->env[task]) return -1;
  }
  if (w->rend_task != task) {
    sp_renderer_free(w->rend);
    w->rend = NULL;
    int rw = rs->cfg->render_crop ? rs->cfg->size : rs->cfg->render_w;
    int rh = rs->cfg->render_crop ? rs->cfg->size : rs->cfg->render_h;
    w->rend = sp_renderer_create_q(rs->models[task], rw, rh, rs->cfg->shadow_size, rs->cfg->msaa, err);
    if (!w->rend) return -1;
    w->rend_task = task;
  }
  return 0;
}

/* an episode in two passes: physics only (cheap) to learn its outcome, then, when it is kept,
 * the same rollout again with rendering (resets re-seed everything, so the replay is exact; a
 * mismatch is reported). Failed episodes thus cost no rendering. *kept says which happened. */
static int episode_two_pass(run_state *rs, worker *w, const job *jb, long seed, int attempt,
                            int keep_failures, int *kept, char *err) {
  const sp_collect_config *cfg = rs->cfg;
  sp_env *e = w->env[jb->task];
  double tr = 0, t0 = sp_time_now();
  int n0 = jb->frames, ok0 = 1;
  const int dry = !jb->known_ok && !cfg->policy;  // a policy's episode is rolled out once
  if (dry) {
    if (sp_collect_episode(cfg, e, NULL, NULL, 0, jb->cam, seed, attempt, &w->d, NULL, err)) return -1;
    n0 = w->d.n;
    ok0 = w->d.ep_success;
  }
  *kept = ok0 || keep_failures;
  if (*kept) {
    if (sp_collect_episode_by(cfg, e, w->rend, rs->mask[jb->task], rs->nmask[jb->task], jb->cam, seed,
                              attempt, w->pstate, &w->d, &tr, err))
      return -1;
    if (dry && (w->d.n != n0 || (w->d.ep_success != ok0 && !keep_failures)))
      sp_log(SP_LOG_WARN, "collect: %s %s seed %ld: the rendered replay differs from the dry run "
             "(%d vs %d frames); keeping the rendered one", sp_task_name(jb->task),
             sp_camera_name(jb->cam), seed, w->d.n, n0);
    *kept = w->d.ep_success || keep_failures;
  }
  pthread_mutex_lock(&rs->lock);
  rs->st.render_s += tr;
  rs->st.physics_s += sp_time_now() - t0 - tr;
  pthread_mutex_unlock(&rs->lock);
  return 0;
}

/* one demonstration; *kept = 1 when it is (or already was) in the dataset */
static int run_demo(run_state *rs, worker *w, const job *jb, int *kept, char *err) {
  const sp_collect_config *cfg = rs->cfg;
  char nm[64];
  snprintf(nm, sizeof nm, "seed_%ld", jb->seed);
  *kept = 0;
  if (is_done(rs, jb->task, jb->cam, nm)) {
    *kept = !is_failed(rs, jb->task, jb->cam, nm);
    return 0;
  }
  if (worker_env(rs, w, jb->task, err)) return -1;
  if (episode_two_pass(rs, w, jb, jb->seed, -1, cfg->keep_failures, kept, err)) return -1;
  if (!*kept) {
    sp_log(SP_LOG_WARN, "collect: %s failed on %s %s seed %ld (%d frames); not kept",
           cfg->policy ? cfg->policy->name : "expert", sp_task_name(jb->task), sp_camera_name(jb->cam), jb->seed,
           w->d.n);
    write_failed_marker(rs, jb->task, jb->cam, nm);
    pthread_mutex_lock(&rs->lock);
    rs->st.episodes_failed++;
    pthread_mutex_unlock(&rs->lock);
    return 0;
  }
  return save_episode(rs, &w->d, err);
}

/* the recovery series of (task, cam): attempts 0, 1, ... until cfg->recovery are kept */
static int run_recovery(run_state *rs, worker *w, const job *jb, char *err) {
  const sp_collect_config *cfg = rs->cfg;
  int kept = 0, max_att = cfg->recovery * (cfg->recovery_tries > 0 ? cfg->recovery_tries : 1);
  for (int a = 0; a < max_att && kept < cfg->recovery; a++) {
    if (atomic_load(&rs->failed) || (cfg->stop && *cfg->stop)) return 0;
    char nm[64];
    snprintf(nm, sizeof nm, "recovery_%d", a);
    if (is_done(rs, jb->task, jb->cam, nm)) {
      /* done: kept unless it is in the failure list */
      if (!is_failed(rs, jb->task, jb->cam, nm)) {
        kept++;
        sp_progress_add(&rs->progress, rs->mean_frames[jb->task]);
      }
      continue;
    }
    if (worker_env(rs, w, jb->task, err)) return -1;
    long seed = cfg->seeds[a % cfg->nseed];
    int ok;
    if (episode_two_pass(rs, w, jb, seed, a, 0, &ok, err)) return -1;
    pthread_mutex_lock(&rs->lock);
    rs->st.recovery_tries++;
    pthread_mutex_unlock(&rs->lock);
    if (!ok) {
      write_failed_marker(rs, jb->task, jb->cam, nm);
      continue;
    }
    if (save_episode(rs, &w->d, err)) return -1;
    kept++;
    sp_progress_add(&rs->progress, rs->mean_frames[jb->task]);
  }
  if (kept < cfg->recovery) sp_progress_add(&rs->progress, (long)(cfg->recovery - kept) * rs->mean_frames[jb->task]);
  if (kept < cfg->recovery)
    sp_log(SP_LOG_WARN, "collect: %s %s: only %d of %d recovery episodes succeeded in %d attempts",
           sp_task_name(jb->task), sp_camera_name(jb->cam), kept, cfg->recovery, max_att);
  return 0;
}

static void *worker_main(void *p) {
  run_state *rs = p;
  char err[SP_ERRLEN] = "";
  worker w;
  memset(&w, 0, sizeof w);
  w.rend_task = -1;
  const sp_collect_policy *pol = rs->cfg->policy;
  if (sp_demo_alloc(&w.d, MAX_FRAMES, rs->cfg->size, err) || (pol && !(w.pstate = pol->create(pol->ctx, err)))) {
    fail_run(rs, err);
    sp_demo_free(&w.d);
    atomic_fetch_sub(&rs->workers_left, 1);
    return NULL;
  }
  for (;;) {
    if (atomic_load(&rs->failed) || (rs->cfg->stop && *rs->cfg->stop)) break;
    int k = atomic_fetch_add(&rs->next, 1);
    if (k >= rs->njobs) break;
    const job *jb = &rs->jobs[k];
    int kept = 0;
    int rc = jb->recovery ? run_recovery(rs, &w, jb, err) : run_demo(rs, &w, jb, &kept, err);
    if (rc) {
      if (rs->cfg->stop && *rs->cfg->stop) break;  // an interrupted episode is dropped
      char msg[SP_ERRLEN];
      snprintf(msg, sizeof msg, "%s %s %s: %.400s", sp_task_name(jb->task), sp_camera_name(jb->cam),
               jb->recovery ? "recovery" : "demonstration", err);
      fail_run(rs, msg);
      break;
    }
    if (!jb->recovery) sp_progress_add(&rs->progress, jb->frames);
  }
  sp_renderer_free(w.rend);
  for (int t = 0; t < SP_NTASK; t++) sp_env_free(w.env[t]);
  sp_demo_free(&w.d);
  if (pol) pol->destroy(w.pstate);
  scratch_free();
  atomic_fetch_sub(&rs->workers_left, 1);
  return NULL;
}

/* ---- planning ---- */

static int job_cmp(const void *a, const void *b) {
  const job *x = a, *y = b;
  return x->order > y->order ? -1 : x->order < y->order;  // qsort is not stable: keys are unique
}

/* the job list. Physics does not depend on the camera, so one dry run per (task, seed) tells
 * which seeds succeed (failures are recorded for every camera and never rendered; --demos picks
 * the first N successes) and how many frames each episode has. Jobs are then ordered by task,
 * the task with the most frames first, and within a task longest episode first, so workers keep
 * their renderer and finish together. Returns the planned frames, or -1 with err. */
static long plan_jobs(run_state *rs, char *err) {
  const sp_collect_config *cfg = rs->cfg;
  sp_collect_config dcfg = *cfg;
  dcfg.size = 8;
  dcfg.stop = NULL;  // a dry run is short: finish it, then stop between seeds
  sp_demo dry;
  if (sp_demo_alloc(&dry, MAX_FRAMES, 8, err)) return -1;
  rs->jobs = calloc((size_t)(cfg->ntask * cfg->ncam * (cfg->nseed + 1)), sizeof(job));
  long todo = 0;
  int task_first = 0;
  for (int i = 0; i < cfg->ntask; i++) {
    int t = cfg->tasks[i], kept = 0, nsum = 0;
    long sum = 0;
    sp_env *e = sp_env_create(rs->models[t], err);
    if (!e) { sp_demo_free(&dry); return -1; }
    task_first = rs->njobs;
    for (int k = 0; k < cfg->nseed && (cfg->demos <= 0 || kept < cfg->demos); k++) {
      if (cfg->stop && *cfg->stop) break;
      long seed = cfg->seeds[k];
      char nm[64];
      snprintf(nm, sizeof nm, "seed_%ld", seed);
      int ndone = 0, nfail = 0;
      for (int c = 0; c < cfg->ncam; c++) {
        ndone += is_done(rs, t, cfg->cams[c], nm);
        nfail += is_failed(rs, t, cfg->cams[c], nm);
      }
      if (nfail) continue;  // recorded by an earlier run
      int n = 0;
      if (ndone < cfg->ncam && cfg->policy) {  // no dry run: the outcome depends on the camera
        n = SP_MAX_PATH / 2;  // a guess for the progress bar and the order
        sum += n;
        nsum++;
        for (int c = 0; c < cfg->ncam; c++) {
          if (is_done(rs, t, cfg->cams[c], nm)) { rs->st.skipped_resume++; continue; }
          rs->jobs[rs->njobs++] = (job){t, cfg->cams[c], seed, 0, n, 0, 0};
          todo += n;
        }
        continue;
      }
      if (ndone < cfg->ncam) {
        double t0 = sp_time_now();
        int rc = sp_collect_episode(&dcfg, e, NULL, NULL, 0, cfg->cams[0], seed, -1, &dry, NULL, err);
        rs->st.physics_s += sp_time_now() - t0;
        if (rc) { sp_env_free(e); sp_demo_free(&dry); return -1; }
        n = dry.n;
        if (!dry.ep_success && !cfg->keep_failures) {
          sp_log(SP_LOG_WARN, "collect: expert failed on %s seed %ld (%d frames); not kept",
                 sp_task_name(t), seed, n);
          for (int c = 0; c < cfg->ncam; c++)
            if (!is_done(rs, t, cfg->cams[c], nm)) {
              write_failed_marker(rs, t, cfg->cams[c], nm);
              rs->st.episodes_failed++;
            }
          continue;
        }
        sum += n;
        nsum++;
      }
      kept++;
      for (int c = 0; c < cfg->ncam; c++) {
        if (is_done(rs, t, cfg->cams[c], nm)) { rs->st.skipped_resume++; continue; }
        rs->jobs[rs->njobs++] = (job){t, cfg->cams[c], seed, 0, n, 1, 0};
        todo += n;
      }
    }
    sp_env_free(e);
    if (cfg->demos > 0 && kept < cfg->demos && cfg->nseed >= cfg->demos)
      sp_log(SP_LOG_WARN, "collect: %s: only %d of %d demonstrations succeed over the %d seeds",
             sp_task_name(t), kept, cfg->demos, cfg->nseed);
    rs->mean_frames[t] = nsum ? (int)(sum / nsum) : 150;
    if (cfg->recovery > 0)
      for (int c = 0; c < cfg->ncam; c++) {
        int f = cfg->recovery * rs->mean_frames[t];
        rs->jobs[rs->njobs++] = (job){t, cfg->cams[c], 0, 1, f, 0, 0};
        todo += f;
      }
    /* scheduling keys: the task's total frames, then the job's, then its position */
    long task_total = 0;
    for (int q = task_first; q < rs->njobs; q++) task_total += rs->jobs[q].frames;
    for (int q = task_first; q < rs->njobs; q++)
      rs->jobs[q].order = (task_total << 32) + ((long)rs->jobs[q].frames << 16) + (0xffff - q);
  }
  sp_demo_free(&dry);
  qsort(rs->jobs, (size_t)rs->njobs, sizeof(job), job_cmp);
  return todo;
}

/* ---- configuration record, parts and merging ---- */

static char *config_json(const sp_collect_config *cfg, sp_env_model **models) {
  cJSON *o = cJSON_CreateObject();
  cJSON *c = cJSON_AddObjectToObject(o, "compat");  // must match on --resume
  cJSON_AddNumberToObject(c, "format_version", SP_DATA_VERSION);
  cJSON_AddStringToObject(c, "scenes", sp_scene_source_name(cfg->source));
  cJSON_AddNumberToObject(c, "size", cfg->size);
  cJSON_AddNumberToObject(c, "render_width", cfg->render_w);
  cJSON_AddNumberToObject(c, "render_height", cfg->render_h);
  cJSON_AddNumberToObject(c, "render_crop", cfg->render_crop);
  cJSON_AddNumberToObject(c, "shadow_size", cfg->shadow_size);
  cJSON_AddNumberToObject(c, "msaa", cfg->msaa);
  cJSON_AddNumberToObject(c, "max_steps", cfg->max_steps);
  cJSON_AddNumberToObject(c, "keep_failures", cfg->keep_failures);
  if (cfg->grasp != SP_GRASP_METAWORLD)  // absent for Meta-World's: older datasets stay compatible
    cJSON_AddStringToObject(c, "grasp", sp_grasp_name(cfg->grasp));
  char fine[512];
  sp_fine_cfg_format(&cfg->fine, fine, sizeof fine);
  cJSON_AddStringToObject(c, "fine", fine);
  cJSON *cr = cJSON_AddArrayToObject(c, "crop_overrides");
  for (int i = 0; i < cfg->ncrop; i++) {
    char b[160];
    const sp_crop *k = &cfg->crops[i];
    snprintf(b, sizeof b, "%s/%s=%d,%d,%d,%d", k->task < 0 ? "*" : sp_task_name(k->task),
             k->cam < 0 ? "*" : sp_camera_name(k->cam), k->row, k->col, k->h, k->w);
    cJSON_AddItemToArray(cr, cJSON_CreateString(b));
  }
  cJSON *r = cJSON_AddObjectToObject(o, "run");  // informative
  cJSON_AddStringToObject(r, "policy", cfg->policy ? cfg->policy->name : "expert");
  if (cfg->takeover_max) {
    int tk[2] = {cfg->takeover_min, cfg->takeover_max};
    cJSON_AddItemToObject(r, "takeover", cJSON_CreateIntArray(tk, 2));
  }
  cJSON *t = cJSON_AddArrayToObject(r, "tasks");
  for (int i = 0; i < cfg->ntask; i++) cJSON_AddItemToArray(t, cJSON_CreateString(sp_task_name(cfg->tasks[i])));
  cJSON *cm = cJSON_AddArrayToObject(r, "cameras");
  for (int i = 0; i < cfg->ncam; i++) cJSON_AddItemToArray(cm, cJSON_CreateString(sp_camera_name(cfg->cams[i])));
  cJSON *s = cJSON_AddArrayToObject(r, "seeds");
  for (int i = 0; i < cfg->nseed; i++) cJSON_AddItemToArray(s, cJSON_CreateNumber((double)cfg->seeds[i]));
  cJSON_AddNumberToObject(r, "demos", cfg->demos);
  cJSON_AddNumberToObject(r, "recovery", cfg->recovery);
  cJSON_AddNumberToObject(r, "recovery_tries", cfg->recovery_tries);
  cJSON_AddNumberToObject(r, "deflate", cfg->deflate);
  cJSON *h = cJSON_AddObjectToObject(r, "scene_hash");
  for (int i = 0; i < cfg->ntask; i++) {
    char b[32];
    snprintf(b, sizeof b, "%016llx", (unsigned long long)models[cfg->tasks[i]]->scene_hash);
    cJSON_AddStringToObject(h, sp_task_name(cfg->tasks[i]), b);
  }
  char *txt = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return txt;
}

/* compare the "compat" parts of two config texts */
static int compat_equal(const char *a, const char *b) {
  cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
  int eq = x && y && cJSON_Compare(cJSON_GetObjectItemCaseSensitive(x, "compat"),
                                   cJSON_GetObjectItemCaseSensitive(y, "compat"), 1);
  cJSON_Delete(x);
  cJSON_Delete(y);
  return eq;
}

static int has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

/* list OUT.parts/ files ending in suffix (malloc'd paths) */
static int list_parts(const char *dir, const char *suffix, char ***out) {
  *out = NULL;
  DIR *dp = opendir(dir);
  if (!dp) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dp))) {
    if (!has_suffix(de->d_name, suffix)) continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    *out = realloc(*out, sizeof(char *) * (size_t)(n + 1));
    (*out)[n++] = strdup(p);
  }
  closedir(dp);
  return n;
}

static void free_list(char **v, int n) {
  for (int i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* "task.camera.name.suffix" -> "task/camera/name" */
static int part_key(const char *path, const char *suffix, char *key, size_t cap) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  char tmp[256];
  snprintf(tmp, sizeof tmp, "%s", b);
  size_t L = strlen(tmp), S = strlen(suffix);
  if (L <= S) return -1;
  tmp[L - S] = 0;
  char *d1 = strchr(tmp, '.');
  char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  if (!d1 || !d2) return -1;
  *d1 = '/';
  *d2 = '/';
  snprintf(key, cap, "%s", tmp);
  return 0;
}

static int checkpoint(run_state *rs, int final, char *err) {
  char **parts;
  int np = list_parts(rs->parts_dir, ".h5", &parts);
  int have_out = sp_file_exists(rs->cfg->out);
  char failed[sizeof rs->failed_list];
  pthread_mutex_lock(&rs->lock);
  snprintf(failed, sizeof failed, "%s", rs->failed_list);
  pthread_mutex_unlock(&rs->lock);
  /* failures are listed in the config record so that resume does not retry them */
  cJSON *o = cJSON_Parse(rs->config_json);
  cJSON_AddStringToObject(o, "failed", failed);
  char *cj = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  sp_dataset_meta meta = rs->meta;
  meta.config_json = cj;
  int rc = 0;
  if (np || !have_out || final)
    rc = sp_dataset_merge(rs->cfg->out, have_out ? rs->cfg->out : NULL, (const char **)parts, np, &meta, err);
  free(cj);
  if (!rc) {
    /* merged parts are in OUT now */
    for (int i = 0; i < np; i++) unlink(parts[i]);
    if (final) {
      char **fl;
      int nf = list_parts(rs->parts_dir, ".failed", &fl);
      for (int i = 0; i < nf; i++) unlink(fl[i]);
      free_list(fl, nf);
      char **tl;
      int nt = list_parts(rs->parts_dir, ".tmp", &tl);
      for (int i = 0; i < nt; i++) unlink(tl[i]);
      free_list(tl, nt);
      rmdir(rs->parts_dir);
    }
  }
  free_list(parts, np);
  return rc;
}

/* what a previous run left: OUT's episodes and failures, and OUT.parts/ */
static int load_done(run_state *rs, char *err) {
  const sp_collect_config *cfg = rs->cfg;
  if (sp_file_exists(cfg->out)) {
    sp_dataset *ds = sp_dataset_open(cfg->out, err);
    if (!ds) return -1;
    if (!compat_equal(sp_dataset_config_json(ds), rs->config_json)) {
      sp_dataset_close(ds);
      return sp_errf(err, "%s was collected with other settings (size, render, crops, scenes, fine "
                     "parameters or step cap: see its 'config' attribute); resume needs the same "
                     "ones, or use a new --out", cfg->out);
    }
    for (int i = 0; i < sp_dataset_count(ds); i++) {
      const sp_dataset_ep *e = sp_dataset_episode(ds, i);
      add_done(rs, e->path + strlen("/episodes/"));
    }
    cJSON *o = cJSON_Parse(sp_dataset_config_json(ds));
    const cJSON *f = o ? cJSON_GetObjectItemCaseSensitive(o, "failed") : NULL;
    if (cJSON_IsString(f) && f->valuestring[0]) {
      char *s = strdup(f->valuestring), *save = NULL;
      for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char t[64], c[64], nm[64];
        if (sscanf(tok, "%63[^/]/%63[^/]/%63s", t, c, nm) == 3 && sp_task_find(t) >= 0 && sp_camera_find(c) >= 0)
          add_failed(rs, sp_task_find(t), sp_camera_find(c), nm);
      }
      free(s);
    }
    cJSON_Delete(o);
    int nep = sp_dataset_count(ds);
    sp_dataset_close(ds);
    /* its episodes are copied on without inflating them: read every block back first */
    double t0 = sp_time_now();
    char e2[SP_ERRLEN];
    if (sp_dataset_verify(cfg->out, e2))
      return sp_errf(err, "%.300s; nothing was changed: move %s away (it cannot be extended) or "
                     "start a new --out", e2, cfg->out);
    sp_log(SP_LOG_INFO, "resume: %s holds %d episodes (all read back in %.1f s)", cfg->out, nep,
           sp_time_now() - t0);
  }
  /* leftovers of a kill: .tmp files are incomplete writes */
  char **tl;
  int nt = list_parts(rs->parts_dir, ".tmp", &tl);
  for (int i = 0; i < nt; i++) unlink(tl[i]);
  free_list(tl, nt);
  char **parts;
  int np = list_parts(rs->parts_dir, ".h5", &parts);
  int good = 0;
  char *pc = malloc(65536);
  for (int i = 0; i < np; i++) {
    /* parts are renamed into place only after a complete write, so each one is whole; they
     * must come from a run with the same settings */
    char key[160];
    if (part_key(parts[i], ".h5", key, sizeof key)) continue;
    int unreadable = sp_dataset_part_config(parts[i], pc, 65536, err) != 0;
    if (unreadable || !compat_equal(pc, rs->config_json)) {
      if (!unreadable)
        sp_errf(err, "%s was collected with other settings (size, render, crops, scenes, fine "
                "parameters or step cap); resume with those, or remove %s", parts[i], rs->parts_dir);
      free(pc);
      free_list(parts, np);
      return -1;
    }
    char e2[SP_ERRLEN];
    if (sp_dataset_verify(parts[i], e2)) {
      sp_errf(err, "%.300s; remove that part file and resume again (its episode is collected anew)", e2);
      free(pc);
      free_list(parts, np);
      return -1;
    }
    add_done(rs, key);
    good++;
  }
  free(pc);
  free_list(parts, np);
  char **fl;
  int nf = list_parts(rs->parts_dir, ".failed", &fl);
  for (int i = 0; i < nf; i++) {
    char key[160], t[64], c[64], nm[64];
    if (part_key(fl[i], ".failed", key, sizeof key)) continue;
    if (sscanf(key, "%63[^/]/%63[^/]/%63s", t, c, nm) == 3 && sp_task_find(t) >= 0 && sp_camera_find(c) >= 0)
      add_failed(rs, sp_task_find(t), sp_camera_find(c), nm);
  }
  free_list(fl, nf);
  if (good || nf) sp_log(SP_LOG_INFO, "resume: %s holds %d finished and %d failed episodes", rs->parts_dir, good, nf);
  return 0;
}

int sp_collect_config_check(const sp_collect_config *cfg, char *err) {
  if (cfg->rgb_only) return sp_errf(err, "collect: rgb_only is for agents' own rollouts; a dataset keeps depth and masks");
  if (!cfg->out || !*cfg->out) return sp_errf(err, "no output file (--out FILE.h5)");
  if (strlen(cfg->out) > 3700) return sp_errf(err, "--out path too long");
  if (cfg->ntask < 1 || cfg->ncam < 1 || cfg->nseed < 1 || !cfg->seeds)
    return sp_errf(err, "nothing to collect (no tasks, cameras or seeds)");
  if (cfg->size < 8 || cfg->size > SP_DATA_MAX_SIZE) return sp_errf(err, "--size %d outside 8..%d", cfg->size, SP_DATA_MAX_SIZE);
  if (cfg->render_w < 1 || cfg->render_w > SP_RENDER_MAX_W)
    return sp_errf(err, "--render-width %d outside 1..%d", cfg->render_w, SP_RENDER_MAX_W);
  if (cfg->render_h < 1 || cfg->render_h > SP_RENDER_MAX_H)
    return sp_errf(err, "--render-height %d outside 1..%d", cfg->render_h, SP_RENDER_MAX_H);
  if (cfg->render_crop && (cfg->size > SP_RENDER_MAX_W || cfg->size > SP_RENDER_MAX_H))
    return sp_errf(err, "--size %d: rendering the crop window directly renders at the stored size, "
                   "at most %d (or --full-render)", cfg->size, SP_RENDER_MAX_H);
  if (cfg->jobs < 1 || cfg->jobs > 64) return sp_errf(err, "--jobs %d outside 1..64", cfg->jobs);
  if (cfg->deflate < 0 || cfg->deflate > 9) return sp_errf(err, "--deflate %d outside 0..9", cfg->deflate);
  if (cfg->demos < 0) return sp_errf(err, "--demos %d must be >= 0", cfg->demos);
  if (cfg->policy && (cfg->demos || cfg->recovery))
    return sp_errf(err, "--agent %s: every seed is rolled out once per camera; give --demos 0 and no --recovery",
                   cfg->policy->name);
  const int takeover = cfg->takeover_min || cfg->takeover_max;
  if (takeover && !cfg->policy) return sp_errf(err, "--takeover goes with --agent (the policy the expert takes over from)");
  if (takeover && (cfg->takeover_min < 1 || cfg->takeover_max < cfg->takeover_min || cfg->takeover_max > SP_MAX_PATH))
    return sp_errf(err, "--takeover %d-%d: need 1 <= first <= last <= %d", cfg->takeover_min, cfg->takeover_max, SP_MAX_PATH);
  if (cfg->recovery < 0 || cfg->recovery > 10000) return sp_errf(err, "--recovery %d outside 0..10000", cfg->recovery);
  if (cfg->recovery_tries < 1 || cfg->recovery_tries > 1000)
    return sp_errf(err, "--recovery-tries %d outside 1..1000", cfg->recovery_tries);
  if (!(cfg->checkpoint_s >= 0)) return sp_errf(err, "--checkpoint %g must be >= 0 seconds", cfg->checkpoint_s);
  if (cfg->max_steps < 0) return sp_errf(err, "--max-steps %d must be >= 0", cfg->max_steps);
  if (sp_fine_cfg_check(&cfg->fine, err)) return -1;
  if (cfg->shadow_size < 0 || cfg->shadow_size > 16384) return sp_errf(err, "--shadow-size %d outside 0..16384", cfg->shadow_size);
  if (cfg->msaa < -1 || cfg->msaa > 16) return sp_errf(err, "--msaa %d outside -1..16", cfg->msaa);
  /* every crop window this run will use fits the render (and, rendered directly, is centred) */
  for (int i = 0; i < cfg->ntask; i++)
    for (int j = 0; j < cfg->ncam; j++) {
      int t = cfg->tasks[i], c = cfg->cams[j];
      sp_crop k = sp_crop_lookup(t, c, cfg->render_w, cfg->render_h, cfg->crops, cfg->ncrop);
      if (k.row < 0 || k.col < 0 || k.h < 1 || k.w < 1 || k.row + k.h > cfg->render_h ||
          k.col + k.w > cfg->render_w)
        return sp_errf(err, "%s/%s: crop window %d,%d,%d,%d does not fit the %dx%d render",
                       sp_task_name(t), sp_camera_name(c), k.row, k.col, k.h, k.w, cfg->render_w,
                       cfg->render_h);
      if (k.h > 63 * cfg->size || k.w > 63 * cfg->size)
        return sp_errf(err, "%s/%s: crop window more than 63x the stored size", sp_task_name(t), sp_camera_name(c));
      if (cfg->render_crop &&
          (k.h != k.w || 2 * k.row + k.h != cfg->render_h || 2 * k.col + k.w != cfg->render_w))
        return sp_errf(err, "%s/%s: crop window %d,%d,%d,%d is not a centred square, which rendering "
                       "the window directly needs; add --full-render", sp_task_name(t),
                       sp_camera_name(c), k.row, k.col, k.h, k.w);
    }
  int eval_overlap = 0;
  for (int i = 0; i < cfg->nseed; i++) eval_overlap += cfg->seeds[i] <= SP_EVAL_SEED_LAST;
  if (eval_overlap && !cfg->allow_eval_seeds)
    return sp_errf(err, "%d of the seeds lie in the evaluation range 0-%d; demonstrations must not "
                   "overlap evaluation (use e.g. --seeds 1000-1004, or --allow-eval-seeds to force)",
                   eval_overlap, SP_EVAL_SEED_LAST);
  return 0;
}

int sp_collect_run(const sp_collect_config *cfg, sp_collect_stats *st_out, char *err) {
  double t_start = sp_time_now();
  if (st_out) memset(st_out, 0, sizeof *st_out);
  if (sp_collect_config_check(cfg, err)) return -1;
  int eval_overlap = 0;
  for (int i = 0; i < cfg->nseed; i++) eval_overlap += cfg->seeds[i] <= SP_EVAL_SEED_LAST;
  if (eval_overlap)
    sp_log(SP_LOG_WARN, "collect: WARNING: %d demonstration seeds overlap the evaluation seeds 0-%d; "
           "results evaluated on them are contaminated", eval_overlap, SP_EVAL_SEED_LAST);

  run_state *rs = calloc(1, sizeof *rs);
  rs->cfg = cfg;
  pthread_mutex_init(&rs->lock, NULL);
  snprintf(rs->parts_dir, sizeof rs->parts_dir, "%s.parts", cfg->out);
  int rc = -1;
  for (int i = 0; i < cfg->ntask; i++) {
    int t = cfg->tasks[i];
    if (rs->models[t]) continue;
    rs->models[t] = sp_env_model_load(t, cfg->source, cfg->assets, err);
    if (!rs->models[t]) goto out;
    rs->nmask[t] = sp_mask_geoms(rs->models[t], rs->mask[t], MAX_MASK_GEOMS, err);
    if (rs->nmask[t] < 0) goto out;
  }
  rs->config_json = config_json(cfg, rs->models);
  rs->meta.config_json = rs->config_json;
  rs->meta.scene_source = sp_scene_source_name(cfg->source);
  rs->meta.size = cfg->size;

  struct stat sb;
  int have_parts = stat(rs->parts_dir, &sb) == 0;
  if ((sp_file_exists(cfg->out) || have_parts) && !cfg->resume) {
    if (sp_file_exists(cfg->out)) {
      char e2[SP_ERRLEN];
      if (!sp_dataset_check(cfg->out, e2)) { sp_errf(err, "%s", e2); goto out; }
    }
    sp_errf(err, "%s%s already exists; pass --resume to continue or extend it, or choose a new --out",
            have_parts ? rs->parts_dir : cfg->out, have_parts ? " (an interrupted run)" : "");
    goto out;
  }
  if (cfg->resume && load_done(rs, err)) goto out;
  if (mkdir(rs->parts_dir, 0755) && errno != EEXIST) {
    sp_errf(err, "%s: cannot create: %s", rs->parts_dir, strerror(errno));
    goto out;
  }

  long todo = plan_jobs(rs, err);
  if (todo < 0) goto out;
  if (rs->st.skipped_resume) sp_log(SP_LOG_INFO, "resume: %d demonstrations already done", rs->st.skipped_resume);

  int nw = cfg->jobs < rs->njobs ? cfg->jobs : (rs->njobs ? rs->njobs : 1);
  sp_progress_start(&rs->progress, "collect (frames)", todo);
  atomic_store(&rs->workers_left, nw);
  pthread_t th[64];
  for (int i = 0; i < nw; i++) pthread_create(&th[i], NULL, worker_main, rs);
  /* checkpoints copy the whole dataset: keep them under ~10% of the run as the file grows */
  double last_ck = sp_time_now(), ck_gap = cfg->checkpoint_s;
  while (atomic_load(&rs->workers_left) > 0) {
    usleep(cfg->checkpoint_s > 0 && cfg->checkpoint_s < 0.1 ? 5000 : 100000);
    if (cfg->checkpoint_s > 0 && sp_time_now() - last_ck > ck_gap && !atomic_load(&rs->failed)) {
      char e2[SP_ERRLEN];
      double t0 = sp_time_now();
      if (checkpoint(rs, 0, e2)) sp_log(SP_LOG_WARN, "collect: checkpoint failed: %s", e2);
      last_ck = sp_time_now();
      ck_gap = fmax(cfg->checkpoint_s, 10.0 * (last_ck - t0));
      pthread_mutex_lock(&rs->lock);
      rs->st.write_s += last_ck - t0;
      pthread_mutex_unlock(&rs->lock);
    }
  }
  for (int i = 0; i < nw; i++) pthread_join(th[i], NULL);
  sp_progress_finish(&rs->progress);
  rs->st.interrupted = cfg->stop && *cfg->stop;
  int failed = atomic_load(&rs->failed);
  /* keep what finished, even after a failure */
  double t0 = sp_time_now();
  if (checkpoint(rs, !failed && !rs->st.interrupted, err)) goto out;
  rs->st.write_s += sp_time_now() - t0;
  if (failed) {
    sp_errf(err, "%s (finished episodes are in %s; rerun with --resume)", rs->fail_msg, cfg->out);
    goto out;
  }
  rc = 0;
out:
  rs->st.seconds = sp_time_now() - t_start;
  if (st_out) *st_out = rs->st;
  for (int t = 0; t < SP_NTASK; t++) sp_env_model_free(rs->models[t]);
  for (int i = 0; i < rs->ndone; i++) free(rs->done[i]);
  free(rs->done);
  free(rs->jobs);
  free(rs->config_json);
  pthread_mutex_destroy(&rs->lock);
  free(rs);
  return rc;
}

int sp_collect_view_from_json(const char *data_json, int frame, const char *what, sp_collect_config *v, char *err) {
  sp_collect_config_default(v);
  v->size = frame;
  cJSON *d = data_json ? cJSON_Parse(data_json) : NULL;
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "collect"), "compat");
  int rc = 1;
  if (!cJSON_IsObject(c)) {
    sp_log(SP_LOG_WARN, "%s: no dataset render settings; rendering with sp collect's defaults", what);
    rc = 0;
  } else {
    const cJSON *x;
#define GETI(key, dst) if (cJSON_IsNumber(x = cJSON_GetObjectItemCaseSensitive(c, key))) dst = x->valueint
    GETI("render_width", v->render_w);
    GETI("render_height", v->render_h);
    GETI("shadow_size", v->shadow_size);
    GETI("msaa", v->msaa);
    GETI("render_crop", v->render_crop);
    int size = frame;
    GETI("size", size);
#undef GETI
    const cJSON *ov = cJSON_GetObjectItemCaseSensitive(c, "crop_overrides");
    const cJSON *gr = cJSON_GetObjectItemCaseSensitive(c, "grasp");
    if (gr && (!cJSON_IsString(gr) || sp_grasp_parse(gr->valuestring, &v->grasp)))
      rc = sp_errf(err, "%s: unknown expert grasp in its dataset settings", what);
    else if (size != frame)
      rc = sp_errf(err, "%s: the model takes %d px frames but its dataset holds %d px", what, frame, size);
    else if (!v->render_crop)
      rc = sp_errf(err, "%s: trained on frames cropped from a full render (--full-render); agents render "
                   "the crop window directly", what);
    else if (cJSON_GetArraySize(ov) > 0)
      rc = sp_errf(err, "%s: trained on a dataset with --crop overrides; agents render the built-in windows", what);
  }
  cJSON_Delete(d);
  return rc;
}

/* the field of view that renders the crop window of view v directly */
static double view_fovy(const sp_env *e, int cam, const sp_collect_config *v) {
  sp_crop c = sp_crop_lookup(e->em->task, cam, v->render_w, v->render_h, NULL, 0);
  return sp_crop_fovy(e->em, cam, &c, v->render_h);
}

void sp_collect_view_camera(const sp_env *e, int cam, const sp_collect_config *v, sp_camera_matrix *cm) {
  sp_camera_get(e, cam, v->size, v->size, cm);
  double f = 0.5 * v->size / tan(0.5 * view_fovy(e, cam, v) * M_PI / 180.0);
  cm->K[0] = cm->K[4] = f;
}

int sp_collect_render_view(struct sp_renderer *r, const sp_env *e, int cam, const sp_collect_config *v, uint8_t *rgb,
                           float *depth, int32_t *seg, char *err) {
  int cid = e->em->cam_id[cam];
  double fovy = e->m->cam_fovy[cid];
  e->m->cam_fovy[cid] = view_fovy(e, cam, v);
  int rc = sp_render(r, e, cam, v->size, v->size, rgb, depth, seg, err);
  e->m->cam_fovy[cid] = fovy;
  return rc;
}
