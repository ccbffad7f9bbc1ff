/* videoeval.c: `sp videoeval` (contract in eval.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/imagine.h"
#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/collect.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "eval/eval.h"
#include "match/match.h"
#include "models/model.h"
#include "plan/plan.h"
#include "sim/render.h"

#define VE_MAX_CKPT 8
#define VE_MAX_F 16

void sp_videoeval_config_default(sp_videoeval_config *c) {
  memset(c, 0, sizeof *c);
  c->steps = 20;
  c->guidance = -1.f;
  c->knn = 5;
}

/* ---- the gripper locator: k-NN over a dataset's frames of one (task, camera) ---- */

typedef struct {
  uint8_t *rgb;    // (n x R x R x 3)
  float *px;       // (n x 2) the tcp's pixel
  int n, cap;
} loc_db;

static int db_add(loc_db *db, const sp_demo *d, char *err) {
  const size_t fb = (size_t)d->size * d->size * 3;
  if (db->n + d->n > db->cap) {
    int cap = db->cap ? db->cap : 1024;
    while (cap < db->n + d->n) cap *= 2;
    uint8_t *rgb = realloc(db->rgb, fb * (size_t)cap);
    if (!rgb) return sp_errf(err, "out of memory (locator frames)");
    db->rgb = rgb;
    float *px = realloc(db->px, sizeof(float) * 2 * (size_t)cap);
    if (!px) return sp_errf(err, "out of memory (locator frames)");
    db->px = px;
    db->cap = cap;
  }
  memcpy(db->rgb + fb * db->n, d->rgb, fb * (size_t)d->n);
  for (int k = 0; k < d->n; k++) {
    db->px[2 * (db->n + k)] = d->gripper_px[(size_t)SP_DATA_NGRIP * 2 * k];
    db->px[2 * (db->n + k) + 1] = d->gripper_px[(size_t)SP_DATA_NGRIP * 2 * k + 1];
  }
  db->n += d->n;
  return 0;
}

/* the mean tcp pixel of the k frames nearest to img (squared RGB difference) */
static void locate(const loc_db *db, int R, int knn, const uint8_t *img, double out[2]) {
  enum { KMAX = 32 };
  uint64_t best[KMAX];
  int bi[KMAX], nb = 0;
  const size_t fb = (size_t)R * R * 3;
  if (knn > KMAX) knn = KMAX;
  for (int i = 0; i < db->n; i++) {
    const uint8_t *f = db->rgb + fb * i;
    uint64_t s = 0;
    for (size_t p = 0; p < fb; p++) {
      int d = (int)f[p] - (int)img[p];
      s += (uint64_t)(d * d);
    }
    if (nb == knn && s >= best[nb - 1]) continue;
    int j = nb < knn ? nb++ : nb - 1;
    while (j > 0 && best[j - 1] > s) { best[j] = best[j - 1]; bi[j] = bi[j - 1]; j--; }
    best[j] = s;
    bi[j] = i;
  }
  out[0] = out[1] = 0;
  for (int j = 0; j < nb; j++) { out[0] += db->px[2 * bi[j]]; out[1] += db->px[2 * bi[j] + 1]; }
  if (nb) { out[0] /= nb; out[1] /= nb; }
}

static double dist2d(const double a[2], const float *b) { return hypot(a[0] - b[0], a[1] - b[1]); }

/* ---- per-episode scores ---- */

typedef struct {
  double psnr, ssim, grip7, grip_mean;   // means over frames 1..F; gripper error of frame F and mean
} ve_score;

typedef struct {
  int done, expert_success, n;
  ve_score m[VE_MAX_CKPT];
  ve_score copy;          // the first frame repeated (a video that does not move)
  double loc_real7;       // the locator on the expert's frame F
  double loc_real_mean;   // ... over frames 1..F
} ve_ep;

static double psnr8(const uint8_t *a, const uint8_t *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    s += d * d;
  }
  s /= (double)n;
  return s > 0 ? 10.0 * log10(255.0 * 255.0 / s) : 100.0;
}

typedef struct {
  int R, F, knn;
  sp_ssim_ws *ssim;
  uint8_t *ga, *gb;
  const loc_db *db;
} ve_ctx;

/* score frames 1..F of video (F + 1 frames) against the true frames; tpx: the true tcp pixels */
static void score_video(ve_ctx *c, const uint8_t *video, const uint8_t *truth, const float *tpx, ve_score *s,
                        double loc[VE_MAX_F][2]) {
  const size_t fb = (size_t)c->R * c->R * 3;
  memset(s, 0, sizeof *s);
  for (int f = 1; f <= c->F; f++) {
    const uint8_t *g = video + fb * f, *t = truth + fb * f;
    s->psnr += psnr8(g, t, fb) / c->F;
    sp_match_rgb_to_gray(g, c->R, c->R, c->ga);
    sp_match_rgb_to_gray(t, c->R, c->R, c->gb);
    s->ssim += sp_ssim_gray(c->ssim, c->ga, c->gb) / c->F;
    double p[2];
    locate(c->db, c->R, c->knn, g, p);
    if (loc) memcpy(loc[f], p, sizeof p);
    double e = dist2d(p, tpx + 2 * f);
    s->grip_mean += e / c->F;
    if (f == c->F) s->grip7 = e;
  }
}

/* ---- figures: true video and each model's, x2, with the true (green) and located (red) tcp ---- */

static void dot(uint8_t *img, int W, int H, double u, double v, const uint8_t col[3]) {
  int cx = (int)lround(u), cy = (int)lround(v);
  for (int y = cy - 1; y <= cy + 1; y++)
    for (int x = cx - 1; x <= cx + 1; x++)
      if (x >= 0 && y >= 0 && x < W && y < H) memcpy(img + ((size_t)y * W + x) * 3, col, 3);
}

static int write_strip(const char *path, int R, int F, int rows, const uint8_t **videos,
                       double (*loc)[VE_MAX_F][2], const float *tpx, char *err) {
  const int S = 2, W = S * R * (F + 1), H = S * R * rows;
  uint8_t *img = calloc((size_t)W * H, 3);
  if (!img) return sp_errf(err, "out of memory");
  static const uint8_t green[3] = {0, 230, 0}, red[3] = {255, 0, 0};
  for (int r = 0; r < rows; r++)
    for (int f = 0; f <= F; f++) {
      const uint8_t *fr = videos[r] + (size_t)R * R * 3 * f;
      for (int y = 0; y < S * R; y++)
        for (int x = 0; x < S * R; x++)
          memcpy(img + ((size_t)(r * S * R + y) * W + (size_t)f * S * R + x) * 3,
                 fr + ((size_t)(y / S) * R + x / S) * 3, 3);
      if (f == 0) continue;
      double ox = (double)f * S * R + 0.5 * (S - 1), oy = (double)r * S * R + 0.5 * (S - 1);
      dot(img, W, H, ox + S * tpx[2 * f], oy + S * tpx[2 * f + 1], green);
      if (r > 0) dot(img, W, H, ox + S * loc[r - 1][f][0], oy + S * loc[r - 1][f][1], red);
    }
  int rc = sp_png_write(path, img, W, H, 3, err);
  free(img);
  return rc;
}

/* ---- records ---- */

static cJSON *score_json(const ve_score *s) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "psnr", s->psnr);
  cJSON_AddNumberToObject(o, "ssim", s->ssim);
  cJSON_AddNumberToObject(o, "grip7", s->grip7);
  cJSON_AddNumberToObject(o, "grip_mean", s->grip_mean);
  return o;
}

static int score_from_json(const cJSON *o, ve_score *s) {
  const char *k[4] = {"psnr", "ssim", "grip7", "grip_mean"};
  double *v[4] = {&s->psnr, &s->ssim, &s->grip7, &s->grip_mean};
  for (int i = 0; i < 4; i++) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k[i]);
    if (!cJSON_IsNumber(x)) return -1;
    *v[i] = x->valuedouble;
  }
  return 0;
}

static char *episode_json(const sp_videoeval_config *c, const char **labels, int task, int cam, long seed,
                          const ve_ep *ep) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "task", sp_task_name(task));
  cJSON_AddStringToObject(o, "camera", sp_camera_name(cam));
  cJSON_AddNumberToObject(o, "seed", (double)seed);
  cJSON_AddBoolToObject(o, "expert_success", ep->expert_success);
  cJSON_AddNumberToObject(o, "expert_frames", ep->n);
  cJSON_AddNumberToObject(o, "locator_real7", ep->loc_real7);
  cJSON_AddNumberToObject(o, "locator_real_mean", ep->loc_real_mean);
  cJSON_AddItemToObject(o, "copy", score_json(&ep->copy));
  cJSON *m = cJSON_AddObjectToObject(o, "models");
  for (int i = 0; i < c->nckpt; i++) cJSON_AddItemToObject(m, labels[i], score_json(&ep->m[i]));
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static int index_of(const int *v, int n, int x) {
  for (int i = 0; i < n; i++)
    if (v[i] == x) return i;
  return -1;
}

/* --resume: fill eps from OUT/episodes.jsonl (every line must parse and carry every label) */
static int load_done(const sp_videoeval_config *c, const char **labels, const char *path, ve_ep *eps, char *err) {
  size_t len;
  char e2[SP_ERRLEN];
  char *text = sp_file_read(path, &len, e2);
  if (!text) return 0;
  int line = 0, rc = 0;
  for (char *s = text, *nl; *s && !rc; s = nl ? nl + 1 : s + strlen(s)) {
    nl = strchr(s, '\n');
    if (nl) *nl = 0;
    line++;
    if (!*s) continue;
    cJSON *o = cJSON_Parse(s);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "task"), *ca = cJSON_GetObjectItemCaseSensitive(o, "camera"),
                *se = cJSON_GetObjectItemCaseSensitive(o, "seed"), *m = cJSON_GetObjectItemCaseSensitive(o, "models");
    int ti = cJSON_IsString(t) ? index_of(c->tasks, c->ntask, sp_task_find(t->valuestring)) : -1;
    int ci = cJSON_IsString(ca) ? index_of(c->cams, c->ncam, sp_camera_find(ca->valuestring)) : -1;
    int si = -1;
    if (cJSON_IsNumber(se))
      for (int k = 0; k < c->nseed; k++)
        if (c->seeds[k] == (long)se->valuedouble) si = k;
    if (ti < 0 || ci < 0 || si < 0 || !cJSON_IsObject(m)) {
      rc = sp_errf(err, "%s:%d: not an episode of this run", path, line);
    } else {
      ve_ep *ep = eps + ((size_t)ti * c->ncam + ci) * c->nseed + si;
      const cJSON *x;
      ep->expert_success = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "expert_success"));
      ep->n = (x = cJSON_GetObjectItemCaseSensitive(o, "expert_frames")) && cJSON_IsNumber(x) ? x->valueint : 0;
      ep->loc_real7 = (x = cJSON_GetObjectItemCaseSensitive(o, "locator_real7")) && cJSON_IsNumber(x) ? x->valuedouble : NAN;
      ep->loc_real_mean =
          (x = cJSON_GetObjectItemCaseSensitive(o, "locator_real_mean")) && cJSON_IsNumber(x) ? x->valuedouble : NAN;
      int bad = score_from_json(cJSON_GetObjectItemCaseSensitive(o, "copy"), &ep->copy);
      for (int i = 0; i < c->nckpt && !bad; i++)
        bad = score_from_json(cJSON_GetObjectItemCaseSensitive(m, labels[i]), &ep->m[i]);
      if (bad) rc = sp_errf(err, "%s:%d: a record without every model's scores (another run's directory?)", path, line);
      else ep->done = 1;
    }
    cJSON_Delete(o);
  }
  free(text);
  return rc;
}

/* ---- summary ---- */

typedef struct {
  double sum, sq;
  int n;
} acc;
static void acc_add(acc *a, double v) { a->sum += v; a->sq += v * v; a->n++; }
static double acc_mean(const acc *a) { return a->n ? a->sum / a->n : NAN; }
static double acc_sd(const acc *a) {
  if (a->n < 2) return 0;
  double m = a->sum / a->n, v = (a->sq - a->n * m * m) / (a->n - 1);
  return v > 0 ? sqrt(v) : 0;
}

/* rows: every model, then "copy first frame" (index nckpt) */
static const ve_score *row_score(const ve_ep *ep, int r, int nckpt) { return r < nckpt ? &ep->m[r] : &ep->copy; }

static int write_summary(const sp_videoeval_config *c, const char **labels, const ve_ep *eps, double seconds,
                         char *err) {
  const int NR = c->nckpt + 1;
  size_t cap = 1 << 16, len = 0;
  char *md = malloc(cap);
  if (!md) return sp_errf(err, "out of memory");
#define OUT(...)                                                                       \
  do {                                                                                 \
    int n_ = snprintf(md + len, cap - len, __VA_ARGS__);                               \
    if (n_ < 0 || (size_t)n_ >= cap - len) {                                           \
      char *m2_ = realloc(md, cap *= 4);                                               \
      if (!m2_) { free(md); cJSON_Delete(js); return sp_errf(err, "out of memory"); } \
      md = m2_;                                                                        \
      n_ = snprintf(md + len, cap - len, __VA_ARGS__);                                 \
    }                                                                                  \
    len += (size_t)n_;                                                                 \
  } while (0)
  cJSON *js = cJSON_CreateObject();
  cJSON_AddStringToObject(js, "format", "sp-videoeval-1");
  cJSON_AddNumberToObject(js, "seconds", seconds);
  int ndone = 0;
  acc loc7 = {0}, locm = {0};
  for (size_t i = 0; i < (size_t)c->ntask * c->ncam * c->nseed; i++)
    if (eps[i].done) {
      ndone++;
      acc_add(&loc7, eps[i].loc_real7);
      acc_add(&locm, eps[i].loc_real_mean);
    }
  OUT("# sp videoeval\n\n%d episodes (%d tasks x %d cameras x %d seeds), DDIM %d steps, locator k = %d, %.0f s.\n\n",
      ndone, c->ntask, c->ncam, c->nseed, c->steps, c->knn, seconds);
  OUT("Gripper locator on the expert's true frames: %.2f px at frame F, %.2f px over frames 1-F (mean).\n\n",
      acc_mean(&loc7), acc_mean(&locm));
  /* overall */
  OUT("## All episodes\n\n| model | PSNR (dB) | SSIM | gripper error, frame F (px) | gripper error, frames 1-F (px) |\n"
      "|---|---|---|---|---|\n");
  cJSON *jo = cJSON_AddObjectToObject(js, "overall");
  for (int r = 0; r < NR; r++) {
    acc p = {0}, s = {0}, g7 = {0}, gm = {0};
    for (size_t i = 0; i < (size_t)c->ntask * c->ncam * c->nseed; i++)
      if (eps[i].done) {
        const ve_score *v = row_score(&eps[i], r, c->nckpt);
        acc_add(&p, v->psnr); acc_add(&s, v->ssim); acc_add(&g7, v->grip7); acc_add(&gm, v->grip_mean);
      }
    const char *name = r < c->nckpt ? labels[r] : "copy first frame";
    OUT("| %s | %.2f | %.3f | %.2f +- %.2f | %.2f +- %.2f |\n", name, acc_mean(&p), acc_mean(&s), acc_mean(&g7),
        g7.n ? acc_sd(&g7) / sqrt(g7.n) : 0, acc_mean(&gm), gm.n ? acc_sd(&gm) / sqrt(gm.n) : 0);
    cJSON *x = cJSON_AddObjectToObject(jo, name);
    cJSON_AddNumberToObject(x, "psnr", acc_mean(&p));
    cJSON_AddNumberToObject(x, "ssim", acc_mean(&s));
    cJSON_AddNumberToObject(x, "grip7", acc_mean(&g7));
    cJSON_AddNumberToObject(x, "grip_mean", acc_mean(&gm));
  }
  OUT("\n+- is the standard error over episodes.\n\n");
  /* per camera: frame-F gripper error, its seed-to-seed spread (the standard deviation over seeds
   * of the per-seed mean over tasks) */
  OUT("## Gripper error of frame F per camera\n\nmean over tasks and seeds; in brackets the seed-to-seed spread "
      "(standard deviation over seeds of the per-seed mean over tasks).\n\n| model |");
  for (int j = 0; j < c->ncam; j++) OUT(" %s |", sp_camera_name(c->cams[j]));
  OUT("\n|---|");
  for (int j = 0; j < c->ncam; j++) OUT("---|");
  OUT("\n");
  cJSON *jc = cJSON_AddObjectToObject(js, "per_camera_grip7");
  for (int r = 0; r < NR; r++) {
    const char *name = r < c->nckpt ? labels[r] : "copy first frame";
    OUT("| %s |", name);
    cJSON *x = cJSON_AddObjectToObject(jc, name);
    for (int j = 0; j < c->ncam; j++) {
      acc all = {0}, seeds = {0};
      for (int k = 0; k < c->nseed; k++) {
        acc per = {0};
        for (int t = 0; t < c->ntask; t++) {
          const ve_ep *ep = &eps[((size_t)t * c->ncam + j) * c->nseed + k];
          if (!ep->done) continue;
          acc_add(&per, row_score(ep, r, c->nckpt)->grip7);
          acc_add(&all, row_score(ep, r, c->nckpt)->grip7);
        }
        if (per.n) acc_add(&seeds, acc_mean(&per));
      }
      OUT(" %.2f (%.2f) |", acc_mean(&all), acc_sd(&seeds));
      cJSON *y = cJSON_AddObjectToObject(x, sp_camera_name(c->cams[j]));
      cJSON_AddNumberToObject(y, "mean", acc_mean(&all));
      cJSON_AddNumberToObject(y, "seed_sd", acc_sd(&seeds));
    }
    OUT("\n");
  }
  /* per task */
  OUT("\n## Per task (all cameras)\n\nPSNR / SSIM / gripper error of frame F (px).\n\n| task |");
  for (int r = 0; r < NR; r++) OUT(" %s |", r < c->nckpt ? labels[r] : "copy first frame");
  OUT("\n|---|");
  for (int r = 0; r < NR; r++) OUT("---|");
  OUT("\n");
  for (int t = 0; t < c->ntask; t++) {
    OUT("| %s |", sp_task_name(c->tasks[t]));
    for (int r = 0; r < NR; r++) {
      acc p = {0}, s = {0}, g = {0};
      for (int j = 0; j < c->ncam; j++)
        for (int k = 0; k < c->nseed; k++) {
          const ve_ep *ep = &eps[((size_t)t * c->ncam + j) * c->nseed + k];
          if (!ep->done) continue;
          const ve_score *v = row_score(ep, r, c->nckpt);
          acc_add(&p, v->psnr); acc_add(&s, v->ssim); acc_add(&g, v->grip7);
        }
      OUT(" %.2f / %.3f / %.2f |", acc_mean(&p), acc_mean(&s), acc_mean(&g));
    }
    OUT("\n");
  }
#undef OUT
  char path[4200];
  snprintf(path, sizeof path, "%s/results.md", c->out);
  int rc = sp_file_write_atomic(path, md, len, err);
  free(md);
  char *s = rc ? NULL : cJSON_Print(js);
  cJSON_Delete(js);
  if (!rc) {
    snprintf(path, sizeof path, "%s/results.json", c->out);
    rc = s ? sp_file_write_atomic(path, s, strlen(s), err) : sp_errf(err, "out of memory");
  }
  free(s);
  return rc;
}

/* ---- the ground truth ---- */

/* the expert's rollout from the reset state of seed, physics only (demo gets everything but the
 * images), then a replay of its actions that renders only the frames at the clip indices idx
 * (F + 1 of them) into truth: the frames a rollout rendering every frame records */
static int true_video(const sp_collect_config *view, sp_env *e, sp_renderer *rend, int cam, long seed, int F,
                      sp_demo *demo, int *idx, uint8_t *truth, char *err) {
  if (sp_collect_episode(view, e, NULL, NULL, 0, cam, seed, -1, demo, NULL, err)) return -1;
  sp_clip_indices(NULL, demo->n, 0, F + 1, idx);
  const size_t fb = (size_t)view->size * view->size * 3;
  double obs[SP_OBS_DIM];
  sp_env_reset(e, seed, obs);
  int f = 0;
  for (int k = 0; k < demo->n && f <= F; k++) {
    for (; f <= F && idx[f] == k; f++)
      if (sp_collect_render_view(rend, e, cam, view, truth + fb * f, NULL, NULL, err)) return -1;
    if (f <= F) sp_env_step(e, demo->actions + (size_t)k * SP_ACT_DIM, obs);
  }
  return f == F + 1 ? 0 : sp_errf(err, "%s seed %ld: the replay ended before frame %d", sp_task_name(e->em->task), seed,
                                  idx[f < F + 1 ? f : F]);
}

/* ---- the run ---- */

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static int same_view(const sp_collect_config *a, const sp_collect_config *b) {
  return a->size == b->size && a->render_w == b->render_w && a->render_h == b->render_h &&
         a->render_crop == b->render_crop && a->shadow_size == b->shadow_size && a->msaa == b->msaa &&
         a->ncrop == b->ncrop && !memcmp(a->crops, b->crops, sizeof(sp_crop) * (size_t)a->ncrop);
}

static int load_db(const sp_videoeval_config *c, int R, loc_db *dbs, char *err) {
  sp_dataset *ds = sp_dataset_open(c->data, err);
  if (!ds) return -1;
  int rc = 0;
  if (sp_dataset_size(ds) != R)
    rc = sp_errf(err, "%s holds %d px frames; the models make %d px", c->data, sp_dataset_size(ds), R);
  int want = 0;
  for (int i = 0; i < sp_dataset_count(ds); i++) {
    const sp_dataset_ep *e = sp_dataset_episode(ds, i);
    want += index_of(c->tasks, c->ntask, e->task) >= 0 && index_of(c->cams, c->ncam, e->cam) >= 0;
  }
  sp_progress pr;
  sp_progress_start(&pr, "locator frames", want);
  for (int i = 0; i < sp_dataset_count(ds) && !rc; i++) {
    const sp_dataset_ep *e = sp_dataset_episode(ds, i);
    int ti = index_of(c->tasks, c->ntask, e->task), ci = index_of(c->cams, c->ncam, e->cam);
    if (ti < 0 || ci < 0) continue;
    for (int k = 0; k < c->nseed; k++)
      if (c->seeds[k] == e->seed) rc = sp_errf(err, "%s holds seed %ld, an evaluated seed", c->data, e->seed);
    sp_demo d;
    memset(&d, 0, sizeof d);
    if (!rc && !(rc = sp_dataset_load(ds, i, &d, err))) rc = db_add(&dbs[ti * c->ncam + ci], &d, err);
    sp_demo_free(&d);
    sp_progress_add(&pr, 1);
  }
  sp_progress_finish(&pr);
  for (int i = 0; i < c->ntask * c->ncam && !rc; i++)
    if (!dbs[i].n)
      rc = sp_errf(err, "%s has no frames of %s / %s for the locator", c->data, sp_task_name(c->tasks[i / c->ncam]),
                   sp_camera_name(c->cams[i % c->ncam]));
  sp_dataset_close(ds);
  return rc;
}

int sp_videoeval_run(const sp_videoeval_config *c, char *err) {
  if (c->nckpt < 1 || c->nckpt > VE_MAX_CKPT) return sp_errf(err, "--ckpt: 1 to %d checkpoints", VE_MAX_CKPT);
  if (c->knn < 1 || c->knn > 32) return sp_errf(err, "--knn %d outside 1..32", c->knn);
  if (c->steps < 1 || c->steps > 1000) return sp_errf(err, "--steps %d outside 1..1000", c->steps);
  if (!c->data) return sp_errf(err, "--data (the locator's dataset) is required");
  const char *labels[VE_MAX_CKPT];
  for (int i = 0; i < c->nckpt; i++) labels[i] = i < c->nlabel ? c->labels[i] : base_name(c->ckpts[i]);
  for (int i = 0; i < c->nckpt; i++)
    for (int j = 0; j < i; j++)
      if (!strcmp(labels[i], labels[j])) return sp_errf(err, "two rows named '%s' (use --labels)", labels[i]);
  const size_t nep = (size_t)c->ntask * c->ncam * c->nseed;
  sp_video_model vm[VE_MAX_CKPT];
  int nvm = 0, rc = -1;
  sp_collect_config view;
  loc_db *dbs = calloc((size_t)c->ntask * c->ncam, sizeof *dbs);
  ve_ep *eps = calloc(nep, sizeof *eps);
  sp_imaginer im[VE_MAX_CKPT];
  int nim = 0;
  sp_demo demo;
  memset(&demo, 0, sizeof demo);
  uint8_t *video = NULL, *truth = NULL, *store = NULL;
  ve_ctx cx = {0};
  if (!dbs || !eps) { sp_errf(err, "out of memory"); goto out; }
  for (; nvm < c->nckpt; nvm++) {
    sp_ckpt_info info;
    sp_collect_config v;
    if (sp_video_model_load(&vm[nvm], c->ckpts[nvm], err)) goto out;
    if (sp_ckpt_info_read(c->ckpts[nvm], &info, err)) { sp_video_model_free(&vm[nvm]); goto out; }
    int vr = sp_collect_view_from_json(info.data, vm[nvm].m.cfg.res, c->ckpts[nvm], &v, err);
    sp_ckpt_info_free(&info);
    if (vr < 0) { sp_video_model_free(&vm[nvm]); goto out; }
    v.rgb_only = 1;  // the ground truth needs the frames alone
    if (nvm == 0) view = v;
    else if (!same_view(&v, &view) || vm[nvm].m.cfg.frames != vm[0].m.cfg.frames) {
      sp_errf(err, "%s was trained on another view or frame count than %s", c->ckpts[nvm], c->ckpts[0]);
      sp_video_model_free(&vm[nvm]);
      goto out;
    }
  }
  const int R = vm[0].m.cfg.res, F = vm[0].m.cfg.frames;
  if (F + 1 > VE_MAX_F) { sp_errf(err, "%d frames: at most %d", F, VE_MAX_F - 1); goto out; }
  const size_t fb = (size_t)R * R * 3;
  for (; nim < c->nckpt; nim++)
    if (sp_imaginer_init(&im[nim], &vm[nim], err)) goto out;
  if (sp_mkdir_p(c->out, err)) goto out;
  char path[4200], jpath[4200];
  snprintf(jpath, sizeof jpath, "%s/episodes.jsonl", c->out);
  {
    char e2[SP_ERRLEN];
    size_t l;
    char *old = sp_file_read(jpath, &l, e2);
    int has = old && l > 0;
    free(old);
    if (has && !c->resume) { sp_errf(err, "%s holds episodes (--resume to continue)", jpath); goto out; }
    if (has && load_done(c, labels, jpath, eps, err)) goto out;
  }
  snprintf(path, sizeof path, "%s/strips", c->out);
  if (sp_mkdir_p(path, err)) goto out;
  if (load_db(c, R, dbs, err)) goto out;
  video = malloc(fb * (F + 1));
  truth = malloc(fb * (F + 1));
  store = malloc(fb * (F + 1) * c->nckpt);
  cx.ssim = sp_ssim_ws_new(R, R, err);
  cx.ga = malloc((size_t)R * R);
  cx.gb = malloc((size_t)R * R);
  if (!video || !truth || !store || !cx.ssim || !cx.ga || !cx.gb || sp_demo_alloc(&demo, SP_MAX_PATH + 1, R, err)) {
    if (!err[0]) sp_errf(err, "out of memory");
    goto out;
  }
  cx.R = R;
  cx.F = F;
  cx.knn = c->knn;
  int todo = 0;
  for (size_t i = 0; i < nep; i++) todo += !eps[i].done;
  sp_progress pr;
  sp_progress_start(&pr, "videoeval", todo);
  double t0 = sp_time_now();
  for (int ti = 0; ti < c->ntask; ti++) {
    const int task = c->tasks[ti];
    sp_env_model *em = NULL;
    sp_env *e = NULL;
    sp_renderer *rend = NULL;
    int need = 0;
    for (int j = 0; j < c->ncam * c->nseed; j++) need += !eps[(size_t)ti * c->ncam * c->nseed + j].done;
    if (!need) continue;
    if (!(em = sp_env_model_load(task, c->source, c->assets, err)) || !(e = sp_env_create(em, err)) ||
        !(rend = sp_renderer_create_q(em, R, R, view.shadow_size, view.msaa, err))) {
      sp_renderer_free(rend); sp_env_free(e); sp_env_model_free(em);
      sp_progress_finish(&pr);
      goto out;
    }
    int erc = 0;
    for (int ci = 0; ci < c->ncam && !erc; ci++) {
      cx.db = &dbs[ti * c->ncam + ci];
      for (int k = 0; k < c->nseed && !erc; k++) {
        ve_ep *ep = &eps[((size_t)ti * c->ncam + ci) * c->nseed + k];
        if (ep->done) continue;
        const int cam = c->cams[ci];
        const long seed = c->seeds[k];
        int idx[VE_MAX_F];
        float tpx[2 * VE_MAX_F];
        if ((erc = true_video(&view, e, rend, cam, seed, F, &demo, idx, truth, err))) break;
        for (int f = 0; f <= F; f++) {
          tpx[2 * f] = demo.gripper_px[(size_t)SP_DATA_NGRIP * 2 * idx[f]];
          tpx[2 * f + 1] = demo.gripper_px[(size_t)SP_DATA_NGRIP * 2 * idx[f] + 1];
        }
        ep->n = demo.n;
        ep->expert_success = demo.ep_success;
        /* the locator on the true frames, and the video that does not move */
        ep->loc_real_mean = 0;
        for (int f = 1; f <= F; f++) {
          double p[2];
          locate(cx.db, R, c->knn, truth + fb * f, p);
          double d = dist2d(p, tpx + 2 * f);
          ep->loc_real_mean += d / F;
          if (f == F) ep->loc_real7 = d;
        }
        for (int f = 1; f <= F; f++) memcpy(video + fb * f, truth, fb);
        memcpy(video, truth, fb);
        score_video(&cx, video, truth, tpx, &ep->copy, NULL);
        /* each model from the reset state's plan */
        const double *obs = demo.obs, *tcp = demo.ee_pos;
        sp_plan plan;
        if ((erc = sp_plan_rule(task, tcp, obs + SP_OBS_OBJ, obs + SP_OBS_GOAL, NULL, &plan, err))) break;
        double loc[VE_MAX_CKPT][VE_MAX_F][2];
        const uint32_t vseed = sp_seed_derive(sp_task_name(task), sp_camera_name(cam), seed, "video");
        for (int i = 0; i < c->nckpt; i++) {
          uint8_t *v = store + fb * (F + 1) * i;
          memcpy(v, truth, fb);
          float w = c->guidance >= 0 ? c->guidance : vm[i].dc.guidance;
          sp_imagine(&im[i], &vm[i], task, &plan, tcp, obs, c->steps, w, vseed, v);
          score_video(&cx, v, truth, tpx, &ep->m[i], loc[i]);
        }
        ep->done = 1;
        char *line = episode_json(c, labels, task, cam, seed, ep);
        if (!line) { erc = sp_errf(err, "out of memory"); break; }
        size_t ll = strlen(line);
        line[ll] = '\n';  // replaces the terminator; written with its length
        erc = sp_file_append(jpath, line, ll + 1, err);
        free(line);
        if (erc) break;
        if (k == 0) {  // the first seed of each (task, camera): a figure
          const uint8_t *rows[1 + VE_MAX_CKPT];
          rows[0] = truth;
          for (int i = 0; i < c->nckpt; i++) rows[1 + i] = store + fb * (F + 1) * i;
          snprintf(path, sizeof path, "%s/strips/%s_%s_%ld.png", c->out, sp_task_name(task), sp_camera_name(cam), seed);
          if ((erc = write_strip(path, R, F, 1 + c->nckpt, rows, loc, tpx, err))) break;
        }
        sp_progress_add(&pr, 1);
      }
    }
    sp_renderer_free(rend);
    sp_env_free(e);
    sp_env_model_free(em);
    if (!erc) sp_log(SP_LOG_INFO, "videoeval: %s done (%.0f s)", sp_task_name(task), sp_time_now() - t0);
    if (erc) { sp_progress_finish(&pr); goto out; }
  }
  sp_progress_finish(&pr);
  rc = write_summary(c, labels, eps, sp_time_now() - t0, err);
out:
  for (int i = 0; i < nim; i++) sp_imaginer_free(&im[i]);
  for (int i = 0; i < nvm; i++) sp_video_model_free(&vm[i]);
  if (dbs)
    for (int i = 0; i < c->ntask * c->ncam; i++) { free(dbs[i].rgb); free(dbs[i].px); }
  free(dbs);
  free(eps);
  sp_demo_free(&demo);
  sp_ssim_ws_free(cx.ssim);
  free(cx.ga);
  free(cx.gb);
  free(video);
  free(truth);
  free(store);
  return rc;
}
