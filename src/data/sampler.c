/* sampler.c: video clips and policy samples from a dataset (contract in sampler.h). */
#include "data/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "core/log.h"

void sp_sampler_cfg_default(sp_sampler_cfg *c) {
  c->clip_frames = 8;
  c->clip_random_start = 1;
  c->use_fine = 0;
  c->goal_min = 1;
  c->goal_max = 16;
  c->horizon = 4;
  c->include_recovery = 1;
  c->expert_only = 1;
  c->holdout = 0;
  c->split = SP_SPLIT_ALL;
}

/* 1 when episode i is among the `holdout` highest demonstration seeds of its (task, camera) */
static int held_out(const sp_dataset *ds, int i, int holdout) {
  if (holdout <= 0) return 0;
  const sp_dataset_ep *e = sp_dataset_episode(ds, i);
  int higher = 0;
  for (int j = 0; j < sp_dataset_count(ds); j++) {
    const sp_dataset_ep *o = sp_dataset_episode(ds, j);
    if (o->task == e->task && o->cam == e->cam && !o->recovery && o->seed > e->seed) higher++;
  }
  return higher < holdout;
}

struct sp_sampler {
  sp_dataset *ds;
  sp_sampler_cfg cfg;
  sp_mt19937 rng;
  int *eps;       // usable episode indices
  int neps;
  int **tpos;     // per usable episode: the frames t a policy sample may start at
  int *ntpos;
  sp_action_norm norm;
  double amin[SP_ACT_DIM], amax[SP_ACT_DIM];  // the normaliser's limits (executed range)
  uint8_t *rgb;   // (SP_CLIP_MAX x sz x sz x 3) scratch
  char *path;     // the dataset file
  double **tgt;   // per dataset episode: target_pos (n x 2 x 3), read by sp_sampler_load_targets
};

void sp_action_norm_init(sp_action_norm *n, const double amin[SP_ACT_DIM], const double amax[SP_ACT_DIM]) {
  for (int j = 0; j < SP_ACT_DIM; j++) {
    double range = amax[j] - amin[j];
    n->scale[j] = range < 1e-4 ? 1.0 : 2.0 / range;
    n->offset[j] = -1.0 - n->scale[j] * amin[j];
  }
}

void sp_action_normalize(const sp_action_norm *n, const double *a, float *out) {
  for (int j = 0; j < SP_ACT_DIM; j++) out[j] = (float)(a[j] * n->scale[j] + n->offset[j]);
}

void sp_action_unnormalize(const sp_action_norm *n, const float *x, double *out) {
  for (int j = 0; j < SP_ACT_DIM; j++) out[j] = ((double)x[j] - n->offset[j]) / n->scale[j];
}

sp_sampler *sp_sampler_open(const char *path, const sp_sampler_cfg *cfg, uint32_t seed, char *err) {
  if (cfg->clip_frames < 2 || cfg->clip_frames > SP_CLIP_MAX) {
    sp_errf(err, "clip_frames %d outside 2..%d", cfg->clip_frames, SP_CLIP_MAX);
    return NULL;
  }
  if (cfg->horizon < 1 || cfg->horizon > SP_HORIZON_MAX) {
    sp_errf(err, "horizon %d outside 1..%d", cfg->horizon, SP_HORIZON_MAX);
    return NULL;
  }
  if (cfg->split < SP_SPLIT_ALL || cfg->split > SP_SPLIT_VAL || cfg->holdout < 0) {
    sp_errf(err, "split %d / holdout %d: split must be all, train or val and holdout >= 0", cfg->split, cfg->holdout);
    return NULL;
  }
  if (cfg->goal_min < 1 || cfg->goal_max < cfg->goal_min) {
    sp_errf(err, "goal range %d..%d must satisfy 1 <= min <= max", cfg->goal_min, cfg->goal_max);
    return NULL;
  }
  sp_dataset *ds = sp_dataset_open(path, err);
  if (!ds) return NULL;
  sp_sampler *s = calloc(1, sizeof *s);
  s->ds = ds;
  s->cfg = *cfg;
  sp_mt_seed(&s->rng, seed);
  s->eps = malloc(sizeof(int) * (size_t)(sp_dataset_count(ds) + 1));
  for (int i = 0; i < sp_dataset_count(ds); i++) {
    const sp_dataset_ep *e = sp_dataset_episode(ds, i);
    if (e->n < 2) continue;  // a policy sample needs an action
    if (e->recovery && !cfg->include_recovery) continue;
    if (cfg->split != SP_SPLIT_ALL && held_out(ds, i, cfg->holdout) != (cfg->split == SP_SPLIT_VAL)) continue;
    s->eps[s->neps++] = i;
  }
  s->tpos = calloc((size_t)(s->neps + 1), sizeof(int *));
  s->ntpos = calloc((size_t)(s->neps + 1), sizeof(int));
  int keep = 0;
  for (int k = 0; k < s->neps; k++) {
    const sp_dataset_ep *e = sp_dataset_episode(ds, s->eps[k]);
    int *v = malloc(sizeof(int) * (size_t)e->n), m = 0;
    for (int t = 0; t + 1 < e->n; t++)
      if (!cfg->expert_only || e->expert[t]) v[m++] = t;
    if (!m) { free(v); continue; }  // nothing to learn from in this episode
    s->eps[keep] = s->eps[k];
    s->tpos[keep] = v;
    s->ntpos[keep] = m;
    keep++;
  }
  s->neps = keep;
  if (!s->neps) {
    sp_errf(err, "%s: no episode has an expert action to sample a policy target from%s", path,
            cfg->split == SP_SPLIT_VAL ? " in the held-out split (raise --holdout?)" : "");
    sp_sampler_close(s);
    return NULL;
  }
  if (!s->neps) {
    sp_errf(err, "%s: no episode with at least 2 frames to sample from", path);
    sp_sampler_close(s);
    return NULL;
  }
  double amin[SP_ACT_DIM], amax[SP_ACT_DIM];
  sp_dataset_action_stats(ds, amin, amax);
  sp_action_executed(amin, s->amin);
  sp_action_executed(amax, s->amax);
  sp_action_norm_init(&s->norm, s->amin, s->amax);
  int sz = sp_dataset_size(ds);
  s->rgb = malloc((size_t)SP_CLIP_MAX * sz * sz * 3);
  s->path = strdup(path);
  return s;
}

void sp_sampler_close(sp_sampler *s) {
  if (!s) return;
  for (int k = 0; k < s->neps; k++) free(s->tpos[k]);
  free(s->tpos);
  free(s->ntpos);
  if (s->tgt)
    for (int i = 0; i < sp_dataset_count(s->ds); i++) free(s->tgt[i]);
  free(s->tgt);
  free(s->path);
  free(s->eps);
  free(s->rgb);
  sp_dataset_close(s->ds);
  free(s);
}

int sp_sampler_size(const sp_sampler *s) { return sp_dataset_size(s->ds); }
const sp_dataset *sp_sampler_dataset(const sp_sampler *s) { return s->ds; }
const sp_action_norm *sp_sampler_norm(const sp_sampler *s) { return &s->norm; }

void sp_sampler_action_limits(const sp_sampler *s, double amin[SP_ACT_DIM], double amax[SP_ACT_DIM]) {
  memcpy(amin, s->amin, sizeof s->amin);
  memcpy(amax, s->amax, sizeof s->amax);
}

void sp_sampler_set_action_limits(sp_sampler *s, const double amin[SP_ACT_DIM], const double amax[SP_ACT_DIM]) {
  memcpy(s->amin, amin, sizeof s->amin);
  memcpy(s->amax, amax, sizeof s->amax);
  sp_action_norm_init(&s->norm, s->amin, s->amax);
}

void sp_action_executed(const double *a, double *out) {
  for (int j = 0; j < SP_ACT_DIM; j++) out[j] = a[j] < -SP_ACT_LIMIT ? -SP_ACT_LIMIT : a[j] > SP_ACT_LIMIT ? SP_ACT_LIMIT : a[j];
}

static int uniform_int(sp_mt19937 *r, int lo, int hi) {  // lo..hi inclusive
  int v = lo + (int)(sp_mt_double(r) * (hi - lo + 1));
  return v > hi ? hi : v;
}

void sp_clip_indices(const int32_t *cand, int len, int start, int k, int *idx) {
  int last = len - 1;
  for (int i = 0; i < k; i++) {
    /* linspace(start, last, k).astype(int): truncation of start + i (last - start) / (k - 1) */
    int p = start + (int)((double)i * (last - start) / (k - 1));
    idx[i] = cand ? cand[p] : p;
  }
}

/* uint8 (h x w x 3) -> float (3 x [T x] h x w) channel planes with stride */
static void to_chw(const uint8_t *src, int sz, float *dst, size_t plane_stride) {
  size_t px = (size_t)sz * sz;
  for (size_t i = 0; i < px; i++)
    for (int c = 0; c < 3; c++) dst[c * plane_stride + i] = src[3 * i + c] / 127.5f - 1.0f;
}

int sp_sampler_count(const sp_sampler *s) { return s->neps; }
void sp_sampler_reseed(sp_sampler *s, uint32_t seed) { sp_mt_seed(&s->rng, seed); }

/* frames idx[0..k) of dataset episode ei into out as (3, k, sz, sz) planes */
static int frames_read(sp_sampler *s, int ei, const int *idx, int k, float *out, char *err) {
  if (sp_dataset_read_frames(s->ds, ei, idx, k, s->rgb, NULL, NULL, err)) return -1;
  int sz = sp_dataset_size(s->ds);
  size_t px = (size_t)sz * sz;
  for (int t = 0; t < k; t++) to_chw(s->rgb + px * 3 * t, sz, out + px * t, px * k);
  return 0;
}

/* one clip of dataset episode ei: random start (drawn here) or the given one, clamped */
static int clip_read(sp_sampler *s, int ei, int start, int random_start, float *out, int *episode, int *idx,
                     char *err) {
  const sp_dataset_ep *e = sp_dataset_episode(s->ds, ei);
  const int k = s->cfg.clip_frames;
  const int32_t *cand = NULL;
  int len = e->n;
  if (s->cfg.use_fine && e->nfine >= 2) {
    cand = e->fine_idx;
    len = e->nfine;
  }
  /* a start that leaves k candidates when there are enough (no repeated frames) */
  int smax = len - k > 0 ? len - k : 0;
  if (random_start) start = uniform_int(&s->rng, 0, smax);
  else if (start > smax) start = smax;
  sp_clip_indices(cand, len, start, k, idx);
  if (frames_read(s, ei, idx, k, out, err)) return -1;
  if (episode) *episode = ei;
  return 0;
}

int sp_sampler_clip(sp_sampler *s, float *out, int *episode, int *idx, char *err) {
  int ei = s->eps[uniform_int(&s->rng, 0, s->neps - 1)];
  return clip_read(s, ei, 0, s->cfg.clip_random_start, out, episode, idx, err);
}

int sp_sampler_clip_at(sp_sampler *s, int k, int start, float *out, int *episode, int *idx, char *err) {
  if (k < 0 || k >= s->neps) return sp_errf(err, "clip of episode %d: the sampler holds %d", k, s->neps);
  return clip_read(s, s->eps[k], start < 0 ? 0 : start, 0, out, episode, idx, err);
}

int sp_sampler_index_of(const sp_sampler *s, int episode) {
  for (int k = 0; k < s->neps; k++)
    if (s->eps[k] == episode) return k;
  return -1;
}

int sp_sampler_frames(sp_sampler *s, int episode, const int *idx, int k, float *out, char *err) {
  if (episode < 0 || episode >= sp_dataset_count(s->ds))
    return sp_errf(err, "episode %d: the dataset holds %d", episode, sp_dataset_count(s->ds));
  if (k > s->cfg.clip_frames) return sp_errf(err, "%d frames: the sampler's clips hold %d", k, s->cfg.clip_frames);
  const sp_dataset_ep *e = sp_dataset_episode(s->ds, episode);
  for (int t = 0; t < k; t++)
    if (idx[t] < 0 || idx[t] >= e->n) return sp_errf(err, "episode %d: frame %d of %d", episode, idx[t], e->n);
  return frames_read(s, episode, idx, k, out, err);
}

int sp_sampler_policy(sp_sampler *s, sp_policy_sample *o, char *err) {
  int ke = uniform_int(&s->rng, 0, s->neps - 1), ei = s->eps[ke];
  const sp_dataset_ep *e = sp_dataset_episode(s->ds, ei);
  int t = s->tpos[ke][uniform_int(&s->rng, 0, s->ntpos[ke] - 1)];
  int k = uniform_int(&s->rng, s->cfg.goal_min, s->cfg.goal_max);
  int goal = t + k < e->n - 1 ? t + k : e->n - 1;
  o->episode = ei;
  o->t = t;
  o->goal = goal;
  for (int j = 0; j < 3; j++) o->ee[j] = (float)e->ee_pos[3 * t + j];
  o->grip = (float)e->grip[t];
  int nsteps = e->n - 1;
  for (int h = 0; h < s->cfg.horizon; h++) {
    int a = t + h < nsteps ? t + h : nsteps - 1;
    double *ra = o->raw_actions + SP_ACT_DIM * h;
    sp_action_executed(e->actions + SP_ACT_DIM * a, ra);
    if (o->actions) sp_action_normalize(&s->norm, ra, o->actions + SP_ACT_DIM * h);
  }
  if (o->cur || o->goal_img) {
    int idx[2] = {t, goal};
    if (sp_dataset_read_frames(s->ds, ei, idx, 2, s->rgb, NULL, NULL, err)) return -1;
    int sz = sp_dataset_size(s->ds);
    size_t px = (size_t)sz * sz;
    if (o->cur) to_chw(s->rgb, sz, o->cur, px);
    if (o->goal_img) to_chw(s->rgb + 3 * px, sz, o->goal_img, px);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * positions of the usable episodes (the video model's plan and distance conditions) */

int sp_sampler_load_targets(sp_sampler *s, char *err) {
  if (s->tgt) return 0;
  int n = sp_dataset_count(s->ds);
  s->tgt = calloc((size_t)n + 1, sizeof *s->tgt);
  if (!s->tgt) return sp_errf(err, "out of memory for the target positions of %d episodes", n);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(s->path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return sp_errf(err, "%s: cannot open it to read target_pos", s->path);
  int rc = 0;
  for (int k = 0; k < s->neps && !rc; k++) {
    const sp_dataset_ep *e = sp_dataset_episode(s->ds, s->eps[k]);
    char name[300];
    snprintf(name, sizeof name, "%s/target_pos", e->path);
    double *v = malloc(sizeof(double) * (size_t)e->n * SP_DATA_NTARGET * 3);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (!v || d < 0 || np != (hssize_t)e->n * SP_DATA_NTARGET * 3 ||
        H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
      rc = sp_errf(err, "%s: %s is missing or not (%d x %d x 3) doubles", s->path, name, e->n, SP_DATA_NTARGET);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    if (rc) free(v);
    else s->tgt[s->eps[k]] = v;
  }
  H5Fclose(f);
  return rc;
}

int sp_sampler_positions(const sp_sampler *s, int episode, int frame, double ee[3], double obj[3], double goal[3]) {
  const sp_dataset_ep *e = sp_dataset_episode(s->ds, episode);
  const double *t = s->tgt ? s->tgt[episode] : NULL;
  if (!t || frame < 0 || frame >= e->n) return -1;
  for (int j = 0; j < 3; j++) {
    ee[j] = e->ee_pos[3 * frame + j];
    obj[j] = t[(size_t)frame * SP_DATA_NTARGET * 3 + j];
    goal[j] = t[(size_t)frame * SP_DATA_NTARGET * 3 + 3 + j];
  }
  return 0;
}
