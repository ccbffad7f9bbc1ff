/* goalgen.c: `sp imagine` (contract in goalgen.h). */
#include "agent/goalgen.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/agent_internal.h"
#include "agent/imagine.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/sampler.h"
#include "models/goalset.h"
#include "models/video_train.h"
#include "nn/nn.h"
#include "plan/plan.h"
#include "sim/task.h"

void sp_goalgen_cfg_default(sp_goalgen_cfg *c) {
  *c = (sp_goalgen_cfg){.per_demo = 2, .holdout = 1, .steps = 20, .guidance = -1, .seed = 0, .jobs = 2};
}

/* one video to make: its conditions, and where its frames go */
typedef struct {
  int task;
  sp_plan plan;
  double tcp[3], obs[SP_OBS_DIM];
  uint32_t noise;
} job;

typedef struct {
  const sp_video_model *v;
  const job *jobs;
  uint8_t *frames;  // (n, F + 1, R, R, 3), frame 0 filled
  int n, steps;
  float guidance;
  int next;         // the next job to take
  int failed;
  char err[SP_ERRLEN];
  pthread_mutex_t lock;
  sp_progress prog;
} pool;

static void *worker(void *arg) {
  pool *p = arg;
  const size_t per = (size_t)(p->v->m.cfg.frames + 1) * p->v->m.cfg.res * p->v->m.cfg.res * 3;
  sp_imaginer im;
  char err[SP_ERRLEN];
  if (sp_imaginer_init(&im, p->v, err)) {
    pthread_mutex_lock(&p->lock);
    p->failed = 1;
    snprintf(p->err, sizeof p->err, "%s", err);
    pthread_mutex_unlock(&p->lock);
    return NULL;
  }
  for (;;) {
    pthread_mutex_lock(&p->lock);
    int i = p->failed ? p->n : p->next++;
    pthread_mutex_unlock(&p->lock);
    if (i >= p->n) break;
    const job *jb = &p->jobs[i];
    sp_imagine(&im, p->v, jb->task, &jb->plan, jb->tcp, jb->obs, p->steps, p->guidance, jb->noise,
               p->frames + per * (size_t)i);
    sp_progress_add(&p->prog, 1);
  }
  sp_imaginer_free(&im);
  return NULL;
}

/* the jobs: per usable episode, per_demo starts, the condition frame read into frames */
static int plan_jobs(const sp_goalgen_cfg *c, sp_sampler *s, int F, int R, int use_fine, int ndemo, job *jobs,
                     int32_t *episode, int32_t *idx, uint8_t *frames, char *err) {
  const sp_dataset *ds = sp_sampler_dataset(s);
  const size_t px = (size_t)R * R, per = (size_t)(F + 1) * px * 3;
  float *clip = malloc(sizeof(float) * 3 * (size_t)(F + 1) * px);
  if (!clip) return sp_errf(err, "out of memory");
  int n = 0, ix[SP_CLIP_MAX];
  for (int k = 0; k < ndemo; k++) {
    int ei;
    if (sp_sampler_clip_at(s, k, 0, clip, &ei, ix, err)) goto fail;
    const sp_dataset_ep *e = sp_dataset_episode(ds, ei);
    int len = use_fine && e->nfine >= 2 ? e->nfine : e->n, smax = len - (F + 1) > 0 ? len - (F + 1) : 0;
    sp_mt19937 r;
    sp_mt_seed(&r, sp_seed_derive(sp_task_name(e->task), sp_camera_name(e->cam), (long)c->seed * 1000003L + ei,
                                  "imagine-start"));
    for (int v = 0; v < c->per_demo; v++, n++) {
      int start = v == 0 ? 0 : (int)(sp_mt_double(&r) * (smax + 1));
      if (start > smax) start = smax;
      if (sp_sampler_clip_at(s, k, start, clip, &ei, ix, err)) goto fail;
      job *jb = &jobs[n];
      jb->task = e->task;
      double obj[3], goal[3];
      if (sp_sampler_positions(s, ei, ix[0], jb->tcp, obj, goal)) {
        sp_errf(err, "%s: no positions for episode %d frame %d", c->data, ei, ix[0]);
        goto fail;
      }
      memset(jb->obs, 0, sizeof jb->obs);
      memcpy(jb->obs + SP_OBS_OBJ, obj, sizeof obj);
      memcpy(jb->obs + SP_OBS_GOAL, goal, sizeof goal);
      char perr[SP_ERRLEN];
      if (sp_plan_rule(e->task, jb->tcp, obj, goal, NULL, &jb->plan, perr)) {
        sp_errf(err, "%s episode %d frame %d: plan: %s", c->data, ei, ix[0], perr);
        goto fail;
      }
      jb->noise = sp_seed_derive(sp_task_name(e->task), sp_camera_name(e->cam),
                                 (long)c->seed * 1000003L + ei * 64L + v, "imagine-noise");
      episode[n] = ei;
      for (int f = 0; f <= F; f++) idx[(size_t)n * (F + 1) + f] = ix[f];
      uint8_t *fr = frames + per * (size_t)n;  // the condition: the clip's frame 0, back to RGB bytes
      for (size_t i = 0; i < px; i++)
        for (int ch = 0; ch < 3; ch++) {
          float x = (clip[ch * (size_t)(F + 1) * px + i] + 1.f) * 127.5f + 0.5f;
          fr[i * 3 + ch] = (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x);
        }
    }
  }
  free(clip);
  return 0;
fail:
  free(clip);
  return -1;
}

int sp_goalgen_run(const sp_goalgen_cfg *c, char *err) {
  if (c->per_demo < 1 || c->per_demo > 64) return sp_errf(err, "--per-demo %d outside 1..64", c->per_demo);
  if (c->steps < 1 || c->steps > 1000) return sp_errf(err, "--steps %d outside 1..1000", c->steps);
  if (c->jobs < 1 || c->jobs > 64) return sp_errf(err, "--jobs %d outside 1..64", c->jobs);
  char ckpt[4096];
  if (c->ckpt) snprintf(ckpt, sizeof ckpt, "%s", c->ckpt);
  else if (sp_checkpoint_default(SP_CKPT_VIDEO, ckpt, sizeof ckpt, err)) return -1;
  sp_video_model v;
  if (sp_video_model_load(&v, ckpt, err)) return -1;
  const int R = v.m.cfg.res, F = v.m.cfg.frames;
  sp_sampler_cfg sc;
  sp_sampler_cfg_default(&sc);
  sc.clip_frames = F + 1;
  sc.use_fine = v.dc.use_fine;
  sc.include_recovery = 0;
  sc.expert_only = 0;
  sc.holdout = c->holdout;
  sc.split = SP_SPLIT_TRAIN;
  int rc = -1, n = 0;
  job *jobs = NULL;
  int32_t *episode = NULL, *idx = NULL;
  uint8_t *frames = NULL;
  sp_sampler *s = sp_sampler_open(c->data, &sc, c->seed, err);
  if (!s) goto out;
  if (sp_sampler_size(s) != R) {
    sp_errf(err, "%s holds %d px frames, the video model %s makes %d px", c->data, sp_sampler_size(s), ckpt, R);
    goto out;
  }
  if (sp_sampler_load_targets(s, err)) goto out;
  int ndemo = sp_sampler_count(s);
  if (c->limit > 0 && c->limit < ndemo) ndemo = c->limit;
  n = ndemo * c->per_demo;
  const size_t per = (size_t)(F + 1) * R * R * 3;
  jobs = calloc((size_t)n, sizeof *jobs);
  episode = malloc(sizeof(int32_t) * (size_t)n);
  idx = malloc(sizeof(int32_t) * (size_t)n * (F + 1));
  frames = malloc(per * (size_t)n);
  if (!jobs || !episode || !idx || !frames) {
    sp_errf(err, "out of memory for %d videos (%.0f MB)", n, per * (double)n / 1e6);
    goto out;
  }
  if (plan_jobs(c, s, F, R, v.dc.use_fine, ndemo, jobs, episode, idx, frames, err)) goto out;
  float w = c->guidance >= 0 ? c->guidance : v.dc.guidance;
  sp_log(SP_LOG_INFO, "imagine: %d videos (%d demonstrations x %d) of %d frames at %d px, DDIM %d, guidance %.2f, "
         "%d jobs", n, ndemo, c->per_demo, F, R, c->steps, w, c->jobs);
  nn_init(1);
  pool p = {.v = &v, .jobs = jobs, .frames = frames, .n = n, .steps = c->steps, .guidance = w};
  pthread_mutex_init(&p.lock, NULL);
  sp_progress_start(&p.prog, "imagine", n);
  double t0 = sp_time_now();
  pthread_t th[64];
  for (int i = 0; i < c->jobs; i++) pthread_create(&th[i], NULL, worker, &p);
  for (int i = 0; i < c->jobs; i++) pthread_join(th[i], NULL);
  sp_progress_finish(&p.prog);
  pthread_mutex_destroy(&p.lock);
  if (p.failed) {
    sp_errf(err, "%s", p.err);
    goto out;
  }
  sp_log(SP_LOG_INFO, "imagine: %d videos in %.1f s", n, sp_time_now() - t0);
  char sbuf[32], pbuf[32], gbuf[32], hbuf[32];
  snprintf(sbuf, sizeof sbuf, "%d", c->steps);
  snprintf(pbuf, sizeof pbuf, "%d", c->per_demo);
  snprintf(gbuf, sizeof gbuf, "%g", w);
  snprintf(hbuf, sizeof hbuf, "%d", c->holdout);
  char seed[32];
  snprintf(seed, sizeof seed, "%u", c->seed);
  const char *meta[] = {"dataset", c->data, "checkpoint", ckpt, "ddim_steps", sbuf, "guidance", gbuf, "per_demo", pbuf,
                        "holdout", hbuf, "seed", seed, NULL};
  rc = sp_goalset_save(c->out, n, F, R, sp_dataset_count(sp_sampler_dataset(s)), episode, idx, frames, meta, err);
out:
  sp_sampler_close(s);
  sp_video_model_free(&v);
  free(jobs);
  free(episode);
  free(idx);
  free(frames);
  return rc;
}
