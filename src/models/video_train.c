/* video_train.c: the video diffusion job and its sampler (contract in video_train.h). */
#include "models/video_train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/sampler.h"
#include "match/match.h"
#include "models/clip.h"
#include "models/goalset.h"
#include "models/model.h"
#include "plan/plan.h"
#include "sim/env.h"

static const char *const g_pred_names[] = {"eps", "v", NULL};
static const char *const g_sched_names[] = {"linear", "cosine", NULL};

#define DF(f) offsetof(sp_vdiff_cfg, f)
const sp_cf sp_vdiff_fields[] = {
    {"pred", SP_CF_ENUM, DF(pred), 0, 0, g_pred_names, 0, 0, "training target: eps or v (AVDC, SP)"},
    {"sched", SP_CF_ENUM, DF(sched), 0, 0, g_sched_names, 0, 0, "noise schedule: linear (1e-4..0.02) or cosine (AVDC)"},
    {"diffusion_steps", SP_CF_INT, DF(T), 2, NN_SCHED_MAX_T, NULL, 0, 0, "diffusion steps T"},
    {"min_snr", SP_CF_FLOAT, DF(min_snr), 0, 1e3, NULL, 0, 0, "min-SNR-gamma loss weight (0: off)"},
    {"cond_drop", SP_CF_FLOAT, DF(cond_drop), 0, 1, NULL, 0, 0, "probability of the null condition in training (text, plan, distance dropped together)"},
    {"random_start", SP_CF_INT, DF(random_start), 0, 1, NULL, 0, 0, "1: AVDC's random clip start; 0: the first frame"},
    {"use_fine", SP_CF_INT, DF(use_fine), 0, 1, NULL, 0, 0, "1: clips over the dataset's fine-interval indices (SP)"},
    {"holdout", SP_CF_INT, DF(holdout), 1, 1000, NULL, 0, 0, "held-out demonstrations per (task, camera)"},
    {"val_clips", SP_CF_INT, DF(val_clips), 1, 10000, NULL, 0, 0, "validation clips"},
    {"val_steps", SP_CF_INT, DF(val_steps), 1, NN_SCHED_MAX_T, NULL, 0, 0, "DDIM steps of validation sampling"},
    {"guidance", SP_CF_FLOAT, DF(guidance), 0, 100, NULL, 0, 0, "classifier-free guidance of validation sampling"},
    {"refine_frac", SP_CF_FLOAT, DF(refine_frac), 0, 1, NULL, 0, 0,
     "with --refine: share of training samples that are refinement pairs (an imagined video as the condition)"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL}};

void sp_vdiff_cfg_default(sp_vdiff_cfg *c) {
  *c = (sp_vdiff_cfg){.pred = NN_PRED_V, .sched = NN_SCHED_COSINE, .T = 100, .min_snr = 5.f, .cond_drop = 0.1f,
                      .random_start = 1, .use_fine = 0, .holdout = 1, .val_clips = 16, .val_steps = 20,
                      .guidance = 0.f, .refine_frac = 0.5f};
}

/* ---------------------------------------------------------------------------------------------
 * sampling */

void sp_video_sample(const sp_vunet *m, sp_vunet_ws *w, const nn_sched *s, int pred, int steps, float guidance,
                     float *out, const float *cond, const sp_vcond *vc, int B, unsigned seed, float *work) {
  const int F = m->cfg.frames, R = m->cfg.res;
  const size_t n = (size_t)B * 3 * F * R * R;
  float *x = work, *mo = work + n, *mu = work + 2 * n, *x0 = work + 3 * n, *eps = work + 4 * n;
  /* the null condition: every sample null (no words, no plan, no distance term), the same one
   * training drops to */
  uint8_t all_null[64];
  SP_ASSERT(B <= 64);
  memset(all_null, 1, sizeof all_null);
  sp_vcond uc = {.text = vc->text, .clip = vc->clip, .null = all_null};
  sp_mt19937 r;
  sp_mt_seed(&r, seed);
  for (size_t i = 0; i < n; i++) x[i] = (float)sp_mt_normal(&r);
  int ts[NN_SCHED_MAX_T + 1];
  nn_ddim_timesteps(ts, steps, s->T);
  float tb[64];
  for (int i = 0; i < steps; i++) {
    for (int b = 0; b < B; b++) tb[b] = (float)ts[i];
    sp_vunet_forward_c(m, w, mo, x, cond, tb, vc, B);
    if (guidance > 0) {
      sp_vunet_forward_c(m, w, mu, x, cond, tb, &uc, B);
      nn_cfg_combine(mo, mo, mu, guidance, (int)n);
    }
    float *dst = i + 1 == steps ? out : x;
    nn_ddim_step(dst, mo, x, NULL, s, ts[i], ts[i + 1], 0.f, (int)n, (nn_pred)pred, 1, x0, eps);
  }
}

/* ---------------------------------------------------------------------------------------------
 * the job */

struct sp_video_job {
  sp_vunet model;
  sp_vunet_ws ws;
  sp_vunet_cfg mc;
  sp_vdiff_cfg dc;
  sp_train_cfg tc;
  nn_sched sched;
  sp_sampler *train, *val;
  sp_trainable tr;
  int B, F, R;
  size_t per;                       // 3 F R R
  float *clip;                      // (3, F+1, R, R)
  float *x0, *cond, *xt, *noise, *target, *out, *dout, *wt, *tf;  // batch buffers
  int32_t *ids;                     // (B, SP_TEXT_WORDS)
  int32_t *crow;                    // (B) text_enc clip: the CLIP cache row of each clip's task text
  float *data0;                     // the weights' buffer (the trainer swaps the EMA's in to validate)
  int cache_ok;                     // clip: the cache was found filled
  sp_plan_enc *plans;               // (B) the rule planner's plan of each clip's first frame
  float *dvec;                      // (B, SP_VCOND_DVEC) gripper, object, goal at the first frame
  uint8_t *null;                    // (B) 1: the null condition (dropped)
  sp_vcond vc;                      // the batch's conditions (points at the above)
  float *work;                      // sampler work (5 per)
  sp_ssim_ws *ssim;
  uint8_t *ga, *gb;                 // grey frames (R x R)
  size_t cper;                      // a sample's condition: 3 R R, or 3 F R R (video_cond)
  /* VideoAgent's refinement pairs (sp_video_job_set_refine): imagined videos of training clips */
  sp_goalset gs;
  int has_gs;
  long drawn, refined;              // training samples drawn, and those conditioned on a video
  char refine_path[1024], init_path[1024], data_path[1024];
};

/* (3, F+1, R, R) clip -> condition (3, R, R), or (3, F, R, R) the first frame repeated for a
 * video_cond model (rep = F), and target frames (3, F, R, R) */
static void split_clip(const float *clip, int F, int R, int rep, float *cond, float *x0) {
  size_t px = (size_t)R * R;
  for (int c = 0; c < 3; c++) {
    const float *src = clip + (size_t)c * (F + 1) * px;
    for (int f = 0; f < rep; f++) memcpy(cond + ((size_t)c * rep + f) * px, src, px * sizeof(float));
    memcpy(x0 + (size_t)c * F * px, src + px, (size_t)F * px * sizeof(float));
  }
}

/* video v of the refinement set as a condition (3, F, R, R) in [-1, 1]: its imagined frames */
static void refine_cond(const sp_goalset *g, int v, float *cond) {
  const size_t px = (size_t)g->R * g->R;
  for (int f = 0; f < g->F; f++) {
    const uint8_t *src = sp_goalset_frame(g, v, f + 1);
    for (size_t i = 0; i < px; i++)
      for (int c = 0; c < 3; c++) cond[((size_t)c * g->F + f) * px + i] = src[3 * i + c] / 127.5f - 1.f;
  }
}

static void task_ids(const sp_dataset *ds, int episode, int32_t *ids) {
  sp_text_ids(sp_task_name(sp_dataset_episode(ds, episode)->task), ids);
}

/* ---------------------------------------------------------------------------------------------
 * the CLIP cache (text_enc clip) */

static size_t cache_floats(const sp_vunet *m) {
  return m->cache == NN_NONE ? 0 : (size_t)m->cfg.clip_n * m->clip_tok * m->cfg.clip_dim;
}

/* every task text through the text tower of `path`: mc's cache description, and *feat (malloc'd,
 * (clip_n, max length, width), rows past a text's length zero) */
static int clip_encode(const char *path, sp_vunet_cfg *mc, float **feat, char *err) {
  sp_clip_model cm;
  sp_clip_ws cw;
  char e2[SP_ERRLEN];
  double t0 = sp_time_now();
  if (sp_clip_load(&cm, path, err)) return -1;
  if (sp_clip_ws_init(&cw, &cm.cfg, err)) {
    sp_clip_free(&cm);
    return -1;
  }
  const int K = cm.cfg.width, ctx = cm.cfg.context, eot = SP_CLIP_EOT(cm.cfg.vocab);
  float *tok = malloc(sizeof(float) * (size_t)ctx * K), *emb = malloc(sizeof(float) * (size_t)cm.cfg.embed_dim);
  float *all = malloc(sizeof(float) * (size_t)SP_NTASK * ctx * K);
  int32_t *ids = malloc(sizeof(int32_t) * (size_t)ctx);
  int rc = 0, maxlen = 0;
  if (!tok || !emb || !all || !ids) rc = sp_errf(err, "out of memory for the CLIP text cache");
  SP_ASSERT(SP_NTASK <= SP_VUNET_CLIP_MAX);
  for (int t = 0; t < SP_NTASK && !rc; t++) {
    char *text = mc->clip_text[t];
    if (sp_text_normalize(sp_task_name(t), text, SP_VUNET_CLIP_TEXT) < 1) {
      rc = sp_errf(err, "task name '%s' gives no text for CLIP", sp_task_name(t));
      break;
    }
    int pos = sp_clip_encode_text(&cm, &cw, text, ids, emb, tok, 0, e2);
    if (pos < 0 || ids[pos] != eot) {
      rc = sp_errf(err, "%s: encoding '%s': %s", path, text, pos < 0 ? e2 : "no end-of-text token");
      break;
    }
    mc->clip_len[t] = pos + 1;  // sot .. eot inclusive
    if (pos + 1 > maxlen) maxlen = pos + 1;
    memcpy(all + (size_t)t * ctx * K, tok, sizeof(float) * (size_t)(pos + 1) * K);
  }
  if (!rc) {
    mc->clip_n = SP_NTASK;
    mc->clip_dim = K;
    *feat = calloc((size_t)SP_NTASK * maxlen * K, sizeof(float));
    if (!*feat) rc = sp_errf(err, "out of memory for the CLIP text cache");
    for (int t = 0; t < SP_NTASK && !rc; t++)
      memcpy(*feat + (size_t)t * maxlen * K, all + (size_t)t * ctx * K, sizeof(float) * (size_t)mc->clip_len[t] * K);
  }
  if (!rc)
    sp_log(SP_LOG_INFO, "train: CLIP text cache from %s: %d task texts of up to %d tokens, width %d, in %.2f s", path,
           SP_NTASK, maxlen, K, sp_time_now() - t0);
  free(tok);
  free(emb);
  free(all);
  free(ids);
  sp_clip_ws_free(&cw);
  sp_clip_free(&cm);
  return rc;
}

/* the cache is filled (a checkpoint was loaded, or it was encoded): each text's first token, the
 * start-of-text token's features after ln_final, is never all zero */
static int cache_check(sp_video_job *j, char *err) {
  const sp_vunet *m = &j->model;
  if (m->cache == NN_NONE || j->cache_ok) return 0;
  const size_t per = (size_t)m->clip_tok * m->cfg.clip_dim;
  for (int r = 0; r < m->cfg.clip_n; r++) {
    const float *f = j->data0 + m->cache + r * per;
    int any = 0;
    for (int k = 0; k < m->cfg.clip_dim; k++) any |= f[k] != 0.f;
    if (!any)
      return sp_errf(err, "the model's CLIP cache holds nothing for '%s' (start the run with --clip-file FILE, or load "
                     "a checkpoint)", m->cfg.clip_text[r]);
  }
  j->cache_ok = 1;
  return 0;
}

/* the cache is a constant among the parameters: the EMA's copy (rounding in d e + (1 - d) x can
 * move it by an ulp) and, while the trainer validates with the EMA swapped in, the weights in
 * use are set back to the weights' own copy, which AdamW leaves bit for bit (zero gradient, no
 * weight decay) */
static void cache_sync(sp_video_job *j) {
  sp_vunet *m = &j->model;
  size_t n = cache_floats(m);
  if (!n) return;
  const float *src = j->data0 + m->cache;
  if (m->ps.ema) {
    nn_weights_thaw(m->ps.ema + m->cache, n);
    memcpy(m->ps.ema + m->cache, src, n * sizeof(float));
  }
  if (m->ps.data != j->data0) {
    nn_weights_thaw(m->ps.data + m->cache, n);
    memcpy(m->ps.data + m->cache, src, n * sizeof(float));
  }
}

/* the conditions of batch slot b for a clip of `episode` that starts at frame `start`: the task
 * text, and (variants beyond text) the rule planner's plan of the start state from the dataset's
 * positions and the 9-d vector (tcp, object, goal); not null */
static int clip_cond(sp_video_job *j, const sp_sampler *smp, int episode, int start, int b, char *err) {
  const sp_dataset *ds = sp_sampler_dataset(smp);
  task_ids(ds, episode, j->ids + b * SP_TEXT_WORDS);
  j->null[b] = 0;
  if (j->crow) {
    const char *name = sp_task_name(sp_dataset_episode(ds, episode)->task);
    if ((j->crow[b] = sp_vunet_clip_find(&j->model.cfg, name)) < 0)
      return sp_errf(err, "task text '%s' is not in the model's CLIP cache", name);
  }
  if (j->mc.cond == SP_VCOND_TEXT) return 0;
  double ee[3], obj[3], goal[3];
  if (sp_sampler_positions(smp, episode, start, ee, obj, goal))
    return sp_errf(err, "episode %d frame %d: no positions loaded", episode, start);
  sp_plan plan;
  if (sp_plan_rule(sp_dataset_episode(ds, episode)->task, ee, obj, goal, NULL, &plan, err)) return -1;
  sp_plan_encode(&plan, &j->plans[b]);
  float *v = j->dvec + (size_t)b * SP_VCOND_DVEC;
  for (int k = 0; k < 3; k++) {
    v[k] = (float)ee[k];
    v[3 + k] = (float)obj[k];
    v[6 + k] = (float)goal[k];
  }
  return 0;
}

static int job_step(void *self, long step, float *loss, char *err) {
  sp_video_job *j = self;
  const int B = j->B, F = j->F, R = j->R;
  const size_t per = j->per;
  sp_sampler_reseed(j->train, sp_train_seed(j->tc.seed, step, 0));
  sp_mt19937 r;
  sp_mt_seed(&r, sp_train_seed(j->tc.seed, step, 1));
  int ts[256], idx[SP_CLIP_MAX];
  if (cache_check(j, err)) return -1;
  cache_sync(j);
  const int rep = j->mc.video_cond ? F : 1;
  for (int b = 0; b < B; b++) {
    int ep;
    float *cond = j->cond + (size_t)b * j->cper;
    j->drawn++;
    if (j->has_gs && sp_mt_double(&r) < j->dc.refine_frac) {  // an imagined video -> the true frames
      int v = (int)(sp_mt_u32(&r) % (uint32_t)j->gs.n);
      ep = j->gs.episode[v];
      for (int f = 0; f <= F; f++) idx[f] = j->gs.idx[(size_t)v * (F + 1) + f];
      if (sp_sampler_frames(j->train, ep, idx, F + 1, j->clip, err)) return -1;
      split_clip(j->clip, F, R, rep, cond, j->x0 + b * per);
      refine_cond(&j->gs, v, cond);
      j->refined++;
    } else {
      if (sp_sampler_clip(j->train, j->clip, &ep, idx, err)) return -1;
      split_clip(j->clip, F, R, rep, cond, j->x0 + b * per);
    }
    if (clip_cond(j, j->train, ep, idx[0], b, err)) return -1;
    if (sp_mt_double(&r) < j->dc.cond_drop) {  // the null condition, as the sampler's guidance uses
      j->null[b] = 1;
      for (int k = 0; k < SP_TEXT_WORDS; k++) j->ids[b * SP_TEXT_WORDS + k] = -1;
      if (j->crow) j->crow[b] = -1;
    }
    ts[b] = (int)(sp_mt_u32(&r) % (uint32_t)j->dc.T);
    j->tf[b] = (float)ts[b];
    j->wt[b] = j->dc.min_snr > 0 ? nn_min_snr_weight(&j->sched, ts[b], (nn_pred)j->dc.pred, j->dc.min_snr) : 1.f;
  }
  for (size_t i = 0; i < (size_t)B * per; i++) j->noise[i] = (float)sp_mt_normal(&r);
  nn_q_sample(j->xt, j->x0, j->noise, &j->sched, ts, B, (int)per);
  nn_diffusion_target(j->target, j->x0, j->noise, &j->sched, ts, B, (int)per, (nn_pred)j->dc.pred);
  sp_vunet_forward_c(&j->model, &j->ws, j->out, j->xt, j->cond, j->tf, &j->vc, B);
  *loss = nn_mse_forward(j->out, j->target, j->wt, B, per);
  nn_mse_backward(j->dout, j->out, j->target, j->wt, B, per, 1.f);
  sp_vunet_backward(&j->model, &j->ws, j->dout, B);
  return 0;
}

/* [-1, 1] float (3, F, R, R) frame f -> grey uint8 (R x R), BT.601 weights */
static void to_grey(const float *v, int F, int f, int R, uint8_t *g) {
  size_t px = (size_t)R * R;
  for (size_t i = 0; i < px; i++) {
    float c[3];
    for (int k = 0; k < 3; k++) {
      float u = (v[((size_t)k * F + f) * px + i] + 1.f) * 127.5f;
      c[k] = u < 0 ? 0 : u > 255 ? 255 : u;
    }
    g[i] = (uint8_t)lrintf(0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2]);
  }
}

/* PSNR (data range 2 in [-1, 1], i.e. 255 in 8 bits) of two (3, F, R, R) videos, frame-averaged MSE */
static double psnr(const float *a, const float *b, size_t n) {
  double se = 0;
  for (size_t i = 0; i < n; i++) {
    double ca = a[i] < -1 ? -1 : a[i] > 1 ? 1 : a[i], d = ca - b[i];
    se += d * d;
  }
  double mse = se / (double)n;
  return 10.0 * log10(4.0 / (mse > 1e-12 ? mse : 1e-12));
}

static int job_validate(void *self, long step, char *json, size_t cap, double *metric, char *err) {
  sp_video_job *j = self;
  const int B = j->B, F = j->F, R = j->R, K = j->dc.val_clips, nep = sp_sampler_count(j->val);
  const size_t per = j->per, px = (size_t)R * R;
  double p_sum = 0, s_sum = 0, pc_sum = 0, sc_sum = 0;
  int idx[SP_CLIP_MAX];
  if (cache_check(j, err)) return -1;
  cache_sync(j);
  for (int k0 = 0; k0 < K; k0 += B) {
    int nb = K - k0 < B ? K - k0 : B;
    for (int b = 0; b < nb; b++) {
      int ep, k = (int)((long)(k0 + b) * nep / K);  // spread over the held-out episodes
      if (sp_sampler_clip_at(j->val, k % nep, 0, j->clip, &ep, idx, err)) return -1;
      split_clip(j->clip, F, R, j->mc.video_cond ? F : 1, j->cond + b * j->cper, j->x0 + b * per);
      if (clip_cond(j, j->val, ep, idx[0], b, err)) return -1;
    }
    sp_video_sample(&j->model, &j->ws, &j->sched, j->dc.pred, j->dc.val_steps, j->dc.guidance, j->out, j->cond,
                    &j->vc, nb, sp_train_seed(j->tc.seed, 0, 1000 + k0), j->work);
    for (int b = 0; b < nb; b++) {
      const float *gen = j->out + b * per, *truth = j->x0 + b * per, *c0 = j->cond + b * j->cper;
      const size_t cst = j->cper / 3;  // a condition plane: px, or F px (video_cond, the first frame repeated)
      p_sum += psnr(gen, truth, per);
      /* the copy baseline: every frame = the first */
      for (int c = 0; c < 3; c++)
        for (int f = 0; f < F; f++) memcpy(j->noise + ((size_t)c * F + f) * px, c0 + c * cst, px * sizeof(float));
      pc_sum += psnr(j->noise, truth, per);
      for (int f = 0; f < F; f++) {
        to_grey(truth, F, f, R, j->gb);
        to_grey(gen, F, f, R, j->ga);
        s_sum += sp_ssim_gray(j->ssim, j->ga, j->gb) / F;
        to_grey(j->noise, F, f, R, j->ga);
        sc_sum += sp_ssim_gray(j->ssim, j->ga, j->gb) / F;
      }
    }
  }
  if (j->tr.out_dir) {
    char png[1200];
    snprintf(png, sizeof png, "%s/val_%06ld.png", j->tr.out_dir, step);
    if (sp_video_job_strip(j, png, 4, err)) return -1;
  }
  *metric = p_sum / K;
  snprintf(json, cap,
           "{\"psnr\":%.4f,\"ssim\":%.5f,\"copy_psnr\":%.4f,\"copy_ssim\":%.5f,\"clips\":%d,\"episodes\":%d,"
           "\"ddim_steps\":%d,\"guidance\":%g}",
           p_sum / K, s_sum / K, pc_sum / K, sc_sum / K, K, nep, j->dc.val_steps, (double)j->dc.guidance);
  return 0;
}

/* the model config JSON of checkpoints and logs; the text variant's leaves out the fields of the
 * spatial variants (cond, plan_dim, and scale_shift unless it is on), so it reads exactly as before they existed and runs started
 * then resume (the trainer compares the two JSON texts field by field; an absent cond is text).
 * Likewise text_enc appears only when it is clip (with the cache's description, "clip"), and
 * video_cond only when it is 1. */
static char *model_json(const sp_vunet_cfg *mc) {
  char *js = sp_vunet_cfg_to_json(mc);
  if (mc->cond != SP_VCOND_TEXT && mc->text_enc == SP_VUNET_TEXT_CLIP && mc->video_cond) return js;
  cJSON *o = cJSON_Parse(js);
  free(js);
  if (!mc->video_cond) cJSON_DeleteItemFromObjectCaseSensitive(o, "video_cond");
  if (mc->text_enc != SP_VUNET_TEXT_CLIP) cJSON_DeleteItemFromObjectCaseSensitive(o, "text_enc");
  if (mc->cond == SP_VCOND_TEXT) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, "cond");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "plan_dim");
    if (!sp_vunet_cfg_scale_shift(mc)) cJSON_DeleteItemFromObjectCaseSensitive(o, "scale_shift");
  }
  js = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return js;
}

static float *falloc(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64); }

/* the job config JSON: refine_frac only for a run with refinement pairs, so the runs before it
 * existed read and resume as before */
static char *job_json(const sp_video_job *j) {
  char *js = sp_cf_to_json(sp_vdiff_fields, &j->dc);
  if (j->has_gs) return js;
  cJSON *o = cJSON_Parse(js);
  free(js);
  cJSON_DeleteItemFromObjectCaseSensitive(o, "refine_frac");
  js = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return js;
}

/* the data provenance: the dataset, its splits and collect settings, and where set the
 * refinement set and the checkpoint the run started from */
static char *provenance(const sp_video_job *j, const char *data) {
  const char *dcfg = sp_dataset_config_json(sp_sampler_dataset(j->train));
  cJSON *o = cJSON_CreateObject(), *cc = cJSON_Parse(dcfg ? dcfg : "");
  cJSON_AddStringToObject(o, "dataset", data);
  cJSON_AddNumberToObject(o, "train_episodes", sp_sampler_count(j->train));
  cJSON_AddNumberToObject(o, "val_episodes", sp_sampler_count(j->val));
  cJSON_AddItemToObject(o, "collect", cc ? cc : cJSON_CreateNull());
  if (j->init_path[0]) cJSON_AddStringToObject(o, "init", j->init_path);
  if (j->refine_path[0]) cJSON_AddStringToObject(o, "refine", j->refine_path);
  char *js = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return js;
}

sp_video_job *sp_video_job_open(const char *data, const sp_vunet_cfg *mc, const char *preset,
                                const sp_vdiff_cfg *dc, const sp_train_cfg *tc, char *err) {
  return sp_video_job_open_clip(data, mc, preset, dc, tc, NULL, err);
}

sp_video_job *sp_video_job_open_clip(const char *data, const sp_vunet_cfg *mc, const char *preset,
                                     const sp_vdiff_cfg *dc, const sp_train_cfg *tc, const char *clip,
                                     char *err) {
  if (sp_vunet_cfg_check(mc, err) || sp_cf_check(sp_vdiff_fields, dc, "diffusion", err)) return NULL;
  int use_clip = mc->text_enc == SP_VUNET_TEXT_CLIP;
  if (clip && !use_clip) {
    sp_errf(err, "a CLIP file (%s) for a model whose text encoder is words (--text-enc clip to use it)", clip);
    return NULL;
  }
  if (use_clip && !clip && !mc->clip_n) {
    sp_errf(err, "--text-enc clip needs --clip-file FILE, CLIP ViT-B/32's text tower as one safetensors file "
                 "(tools/clip_to_safetensors.py, docs/clip.md)");
    return NULL;
  }
  if (use_clip && tc->weight_decay > 0) {
    sp_errf(err, "--text-enc clip keeps the CLIP features among the parameters as a constant, which weight decay "
                 "would shrink: train with --weight-decay 0");
    return NULL;
  }
  sp_video_job *j = calloc(1, sizeof *j);
  float *feat = NULL;
  j->mc = *mc;
  j->dc = *dc;
  j->tc = *tc;
  j->B = tc->batch;
  j->F = mc->frames;
  j->R = mc->res;
  j->per = (size_t)3 * j->F * j->R * j->R;
  snprintf(j->data_path, sizeof j->data_path, "%s", data);
  if (j->B > 64) {
    sp_errf(err, "batch %d: the video job takes at most 64", j->B);
    goto fail;
  }
  if (nn_sched_init(&j->sched, (nn_sched_kind)dc->sched, dc->T, 1e-4, 0.02, err)) goto fail;
  sp_sampler_cfg sc;
  sp_sampler_cfg_default(&sc);
  sc.clip_frames = j->F + 1;
  sc.clip_random_start = dc->random_start;
  sc.use_fine = dc->use_fine;
  sc.include_recovery = 0;
  sc.expert_only = 0;
  sc.holdout = dc->holdout;
  sc.split = SP_SPLIT_TRAIN;
  if (!(j->train = sp_sampler_open(data, &sc, (uint32_t)tc->seed, err))) goto fail;
  sc.split = SP_SPLIT_VAL;
  if (!(j->val = sp_sampler_open(data, &sc, (uint32_t)tc->seed, err))) goto fail;
  if (sp_sampler_size(j->train) != j->R) {
    sp_errf(err, "%s holds %dx%d frames, the model's res is %d (collect with --size %d, or set --res)", data,
            sp_sampler_size(j->train), sp_sampler_size(j->train), j->R, j->R);
    goto fail;
  }
  if (mc->cond != SP_VCOND_TEXT && (sp_sampler_load_targets(j->train, err) || sp_sampler_load_targets(j->val, err)))
    goto fail;
  if (clip && clip_encode(clip, &j->mc, &feat, err)) goto fail;
  if (sp_vunet_init(&j->model, &j->mc, (unsigned)tc->seed, err)) goto fail;
  for (int r = 0; feat && r < j->mc.clip_n; r++)
    sp_vunet_clip_fill(&j->model, r, feat + (size_t)r * j->model.clip_tok * j->mc.clip_dim);
  free(feat);
  feat = NULL;
  j->data0 = j->model.ps.data;
  if (sp_vunet_ws_init(&j->ws, &j->model, j->B, 1, err)) goto fail;
  const size_t Bp = (size_t)j->B * j->per;
  j->clip = falloc((size_t)3 * (j->F + 1) * j->R * j->R);
  j->x0 = falloc(Bp);
  j->cper = (size_t)3 * (mc->video_cond ? j->F : 1) * j->R * j->R;
  j->cond = falloc((size_t)j->B * j->cper);
  j->xt = falloc(Bp);
  j->noise = falloc(Bp);
  j->target = falloc(Bp);
  j->out = falloc(Bp);
  j->dout = falloc(Bp);
  j->wt = falloc((size_t)j->B);
  j->tf = falloc((size_t)j->B);
  j->ids = malloc(sizeof(int32_t) * (size_t)j->B * SP_TEXT_WORDS);
  j->plans = calloc((size_t)j->B, sizeof *j->plans);
  j->dvec = falloc((size_t)j->B * SP_VCOND_DVEC);
  j->null = calloc((size_t)j->B, 1);
  if (use_clip && !(j->crow = calloc((size_t)j->B, sizeof *j->crow))) {
    sp_errf(err, "out of memory");
    goto fail;
  }
  j->vc = (sp_vcond){.text = j->ids, .clip = j->crow, .plan = j->plans, .dvec = j->dvec, .null = j->null};
  j->work = falloc(5 * Bp);
  j->ga = malloc((size_t)j->R * j->R);
  j->gb = malloc((size_t)j->R * j->R);
  if (!(j->ssim = sp_ssim_ws_new(j->R, j->R, err))) goto fail;
  if (!j->clip || !j->x0 || !j->cond || !j->xt || !j->noise || !j->target || !j->out || !j->dout || !j->wt ||
      !j->tf || !j->ids || !j->plans || !j->dvec || !j->null || !j->work || !j->ga || !j->gb) {
    sp_errf(err, "out of memory for the video job's batch buffers");
    goto fail;
  }
  /* the trainable */
  sp_trainable *t = &j->tr;
  t->model = "vunet";
  t->preset = preset ? preset : "";
  t->config = model_json(&j->mc);
  t->job_config = job_json(j);
  t->data = provenance(j, data);
  t->ps = &j->model.ps;
  t->self = j;
  t->step = job_step;
  t->validate = job_validate;
  t->metric_name = "PSNR (dB)";
  return j;
fail:
  free(feat);
  sp_video_job_close(j);
  return NULL;
}

/* [-1, 1] plane triple (3 planes px apart) -> RGB at (x0, y0) of an image w wide */
static void put_frame(uint8_t *img, int w, int x0, int y0, const float *src, size_t plane, int R) {
  for (int y = 0; y < R; y++)
    for (int x = 0; x < R; x++)
      for (int c = 0; c < 3; c++) {
        float u = (src[c * plane + (size_t)y * R + x] + 1.f) * 127.5f;
        img[((size_t)(y0 + y) * w + x0 + x) * 3 + c] = (uint8_t)(u < 0 ? 0 : u > 255 ? 255 : lrintf(u));
      }
}

int sp_video_job_strip(sp_video_job *j, const char *png, int nclips, char *err) {
  const int F = j->F, R = j->R, B = j->B, nep = sp_sampler_count(j->val), gap = 2;
  const size_t px = (size_t)R * R;
  if (nclips > B) nclips = B;
  if (nclips > nep) nclips = nep;
  const int w = (F + 1) * (R + gap) - gap, h = nclips * (2 * R + 3 * gap) - 2 * gap;
  const int K = j->dc.val_clips;
  int idx[SP_CLIP_MAX];
  if (cache_check(j, err)) return -1;
  cache_sync(j);
  for (int b = 0; b < nclips; b++) {
    int ep, k = (int)((long)b * nep / K);  // validation's first clips
    if (sp_sampler_clip_at(j->val, k % nep, 0, j->clip, &ep, idx, err)) return -1;
    split_clip(j->clip, F, R, j->mc.video_cond ? F : 1, j->cond + b * j->cper, j->x0 + b * j->per);
    if (clip_cond(j, j->val, ep, idx[0], b, err)) return -1;
  }
  sp_video_sample(&j->model, &j->ws, &j->sched, j->dc.pred, j->dc.val_steps, j->dc.guidance, j->out, j->cond, &j->vc,
                  nclips, sp_train_seed(j->tc.seed, 0, 1000), j->work);
  uint8_t *img = malloc((size_t)w * h * 3);
  if (!img) return sp_errf(err, "out of memory for a %dx%d strip", w, h);
  memset(img, 255, (size_t)w * h * 3);
  for (int b = 0; b < nclips; b++) {
    int y0 = b * (2 * R + 3 * gap);
    const float *c0 = j->cond + b * j->cper, *truth = j->x0 + b * j->per, *gen = j->out + b * j->per;
    put_frame(img, w, 0, y0, c0, j->cper / 3, R);
    put_frame(img, w, 0, y0 + R + gap, c0, j->cper / 3, R);
    for (int f = 0; f < F; f++) {
      put_frame(img, w, (f + 1) * (R + gap), y0, truth + f * px, (size_t)F * px, R);
      put_frame(img, w, (f + 1) * (R + gap), y0 + R + gap, gen + f * px, (size_t)F * px, R);
    }
  }
  int rc = sp_png_write(png, img, w, h, 3, err);
  free(img);
  return rc;
}

int sp_video_job_load(sp_video_job *j, const char *ckpt, char *err) {
  sp_ckpt_info info;
  if (sp_ckpt_info_read(ckpt, &info, err)) return -1;
  sp_vunet_cfg have = j->mc;
  have.text_enc = SP_VUNET_TEXT_WORDS;  // absent from a words model's JSON
  have.clip_n = 0;
  have.video_cond = 0;                  // absent unless 1
  int rc = sp_vunet_cfg_from_json(&have, info.config, err);
  if (!rc) rc = sp_vunet_cfg_diff(&have, &j->mc, ckpt, err);
  sp_ckpt_info_free(&info);
  if (rc) return -1;
  j->cache_ok = 0;
  return sp_model_load(ckpt, &j->model.ps, "vunet", NULL, err);
}

/* the trainable's JSON texts after a change of the job's files */
static void retext(sp_video_job *j) {
  free(j->tr.job_config);
  free(j->tr.data);
  j->tr.job_config = job_json(j);
  j->tr.data = provenance(j, j->data_path);
}

int sp_video_job_set_refine(sp_video_job *j, const char *path, char *err) {
  if (!j->mc.video_cond)
    return sp_errf(err, "--refine %s: the model is not conditioned on a video (--video-cond 1)", path);
  if (j->has_gs) return sp_errf(err, "--refine %s: the job already has a refinement set", path);
  if (sp_goalset_open(&j->gs, path, err)) return -1;
  j->has_gs = 1;
  const int nds = sp_dataset_count(sp_sampler_dataset(j->train));
  int rc = 0;
  if (j->gs.F != j->F || j->gs.R != j->R)
    rc = sp_errf(err, "%s: videos of %d frames at %d px, the model makes %d at %d px", path, j->gs.F, j->gs.R, j->F, j->R);
  else if (j->gs.episodes != nds)
    rc = sp_errf(err, "%s was made from a dataset of %d episodes, %s holds %d", path, j->gs.episodes, j->data_path, nds);
  for (int v = 0; !rc && v < j->gs.n; v++)
    if (sp_sampler_index_of(j->train, j->gs.episode[v]) < 0)
      rc = sp_errf(err, "%s: video %d is of episode %d, not a training episode of this job's split", path, v,
                   j->gs.episode[v]);
  if (rc) {
    sp_goalset_close(&j->gs);
    j->has_gs = 0;
    return -1;
  }
  snprintf(j->refine_path, sizeof j->refine_path, "%s", path);
  retext(j);
  sp_log(SP_LOG_INFO, "video job: %d refinement pairs from %s, %.0f%% of the samples", j->gs.n, path,
         100.0 * j->dc.refine_frac);
  return 0;
}

int sp_video_job_init_from(sp_video_job *j, const char *ckpt, char *err) {
  sp_ckpt_info info;
  if (sp_ckpt_info_read(ckpt, &info, err)) return -1;
  sp_vunet_cfg bc;
  sp_vunet_cfg_preset(&bc, SP_PRESET_TINY);  // fields a checkpoint predates keep a preset's value
  int rc = 0;
  if (strcmp(info.model, "vunet")) rc = sp_errf(err, "--init %s holds a '%s' model, not a video model", ckpt, info.model);
  if (!rc && sp_vunet_cfg_from_json(&bc, info.config, err)) rc = -1;
  sp_ckpt_info_free(&info);
  if (rc) return -1;
  sp_vunet_cfg same = bc;
  same.video_cond = j->mc.video_cond;
  same.winograd = j->mc.winograd;
  if (sp_vunet_cfg_diff(&same, &j->mc, ckpt, err)) return -1;
  sp_vunet base;
  if (sp_vunet_init(&base, &bc, 0, err)) return -1;
  if (sp_model_load(ckpt, &base.ps, "vunet", NULL, err)) {
    sp_vunet_free(&base);
    return -1;
  }
  const nn_params *bp = &base.ps;
  nn_params *ps = &j->model.ps;
  const int F = j->F, spread = !bc.video_cond && j->mc.video_cond && j->mc.layout == SP_VUNET_STACKED;
  for (int i = 0; i < ps->n && !rc; i++) {
    const nn_param *p = &ps->p[i];
    int k = nn_params_find(bp, p->name);
    if (k < 0) {
      rc = sp_errf(err, "--init %s lacks the tensor %s", ckpt, p->name);
    } else if (bp->p[k].numel == p->numel) {
      memcpy(ps->data + p->offset, bp->data + bp->p[k].offset, p->numel * sizeof(float));
    } else if (spread && !strcmp(p->name, "inc.weight")) {  // (cout, 3F+3, 3, 3) -> (cout, 6F, 3, 3)
      const int cin0 = 3 * F + 3, cin = 6 * F, cout = (int)(p->numel / ((size_t)cin * 9));
      const float *src = bp->data + bp->p[k].offset;
      float *dst = ps->data + p->offset;
      for (int o = 0; o < cout; o++) {
        for (int ci = 0; ci < 3 * F; ci++) memcpy(dst + ((size_t)o * cin + ci) * 9, src + ((size_t)o * cin0 + ci) * 9, 9 * sizeof(float));
        for (int c = 0; c < 3; c++)
          for (int f = 0; f < F; f++)
            for (int q = 0; q < 9; q++)
              dst[((size_t)o * cin + 3 * F + c * F + f) * 9 + q] = src[((size_t)o * cin0 + 3 * F + c) * 9 + q] / (float)F;
      }
    } else {
      rc = sp_errf(err, "--init %s: tensor %s holds %zu values, the model's %zu", ckpt, p->name, bp->p[k].numel, p->numel);
    }
  }
  sp_vunet_free(&base);
  if (rc) return -1;
  j->cache_ok = 0;
  snprintf(j->init_path, sizeof j->init_path, "%s", ckpt);
  retext(j);
  return 0;
}

void sp_video_job_note_init(sp_video_job *j, const char *ckpt) {
  snprintf(j->init_path, sizeof j->init_path, "%s", ckpt ? ckpt : "");
  retext(j);
}

int sp_video_run_files(const char *ckpt, char *init, size_t icap, char *refine, size_t rcap, char *err) {
  sp_ckpt_info info;
  if (sp_ckpt_info_read(ckpt, &info, err)) return -1;
  cJSON *dj = cJSON_Parse(info.data ? info.data : "");
  const cJSON *r = dj ? cJSON_GetObjectItemCaseSensitive(dj, "refine") : NULL;
  const cJSON *i = dj ? cJSON_GetObjectItemCaseSensitive(dj, "init") : NULL;
  snprintf(refine, rcap, "%s", cJSON_IsString(r) ? r->valuestring : "");
  snprintf(init, icap, "%s", cJSON_IsString(i) ? i->valuestring : "");
  cJSON_Delete(dj);
  sp_ckpt_info_free(&info);
  return 0;
}

sp_trainable *sp_video_job_trainable(sp_video_job *j) { return &j->tr; }
const sp_vunet *sp_video_job_model(const sp_video_job *j) { return &j->model; }

void sp_video_job_close(sp_video_job *j) {
  if (!j) return;
  sp_sampler_close(j->train);
  sp_sampler_close(j->val);
  sp_vunet_ws_free(&j->ws);
  sp_vunet_free(&j->model);
  sp_ssim_ws_free(j->ssim);
  if (j->has_gs) {
    if (j->drawn)
      sp_log(SP_LOG_INFO, "video job: %ld of %ld training samples were refinement pairs (%.1f%%)", j->refined, j->drawn,
             100.0 * j->refined / j->drawn);
    sp_goalset_close(&j->gs);
  }
  free(j->clip);
  free(j->x0);
  free(j->cond);
  free(j->xt);
  free(j->noise);
  free(j->target);
  free(j->out);
  free(j->dout);
  free(j->wt);
  free(j->tf);
  free(j->ids);
  free(j->crow);
  free(j->plans);
  free(j->dvec);
  free(j->null);
  free(j->work);
  free(j->ga);
  free(j->gb);
  free(j->tr.config);
  free(j->tr.job_config);
  free(j->tr.data);
  free(j);
}

int sp_video_run_settings(const char *ckpt, sp_vunet_cfg *mc, sp_vdiff_cfg *dc, sp_train_cfg *tc, char *preset,
                          size_t pcap, char *data, size_t dcap, char *err) {
  sp_ckpt_info info;
  if (sp_ckpt_info_read(ckpt, &info, err)) return -1;
  int rc = 0;
  if (strcmp(info.model, "vunet")) rc = sp_errf(err, "%s holds a '%s' model, not a video model", ckpt, info.model);
  sp_vunet_cfg_preset(mc, SP_PRESET_TINY);  // fields a checkpoint predates keep a preset's value (cond: text)
  if (!rc && sp_vunet_cfg_from_json(mc, info.config, err)) rc = -1;
  cJSON *tr = cJSON_Parse(info.trainer ? info.trainer : ""), *dj = cJSON_Parse(info.data);
  char *t = NULL, *j = NULL;
  if (!rc && (!tr || !cJSON_GetObjectItemCaseSensitive(tr, "train") || !cJSON_GetObjectItemCaseSensitive(tr, "job")))
    rc = sp_errf(err, "%s: no trainer state in the metadata (not a resumable checkpoint)", ckpt);
  if (!rc) {
    t = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tr, "train"));
    j = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(tr, "job"));
    if (sp_cf_from_json(sp_train_fields, tc, t, err) || sp_cf_from_json(sp_vdiff_fields, dc, j, err)) rc = -1;
  }
  const cJSON *ds = dj ? cJSON_GetObjectItemCaseSensitive(dj, "dataset") : NULL;
  snprintf(data, dcap, "%s", cJSON_IsString(ds) ? ds->valuestring : "");
  snprintf(preset, pcap, "%s", info.preset);
  free(t);
  free(j);
  cJSON_Delete(tr);
  cJSON_Delete(dj);
  sp_ckpt_info_free(&info);
  return rc;
}

int sp_video_model_load(sp_video_model *v, const char *ckpt, char *err) {
  memset(v, 0, sizeof *v);
  sp_ckpt_info info;
  if (sp_ckpt_info_read(ckpt, &info, err)) return -1;
  sp_vunet_cfg mc;
  sp_vunet_cfg_preset(&mc, SP_PRESET_TINY);  // fields a checkpoint predates keep a preset's value (cond: text)
  sp_vdiff_cfg_default(&v->dc);
  int rc = 0;
  if (strcmp(info.model, "vunet")) rc = sp_errf(err, "%s holds a '%s' model, not a video model", ckpt, info.model);
  if (!rc && sp_vunet_cfg_from_json(&mc, info.config, err)) rc = -1;
  if (!rc && mc.text_enc == SP_VUNET_TEXT_CLIP && !mc.clip_n)
    rc = sp_errf(err, "%s: a text_enc clip model without its CLIP cache's description (\"clip\" in the config)", ckpt);
  for (int t = 0; !rc && mc.text_enc == SP_VUNET_TEXT_CLIP && t < SP_NTASK; t++)
    if (sp_vunet_clip_find(&mc, sp_task_name(t)) < 0)
      rc = sp_errf(err, "%s: the model's CLIP cache (%d texts) lacks the task text '%s' (train with sp train video "
                   "--clip-file FILE, which caches every task's)", ckpt, mc.clip_n, sp_task_name(t));
  cJSON *tr = cJSON_Parse(info.trainer ? info.trainer : "");
  const cJSON *job = cJSON_GetObjectItemCaseSensitive(tr, "job");
  if (!rc && !cJSON_IsObject(job)) rc = sp_errf(err, "%s: no diffusion settings (\"job\") in the metadata", ckpt);
  if (!rc) {
    char *j = cJSON_PrintUnformatted(job);
    if (sp_cf_from_json(sp_vdiff_fields, &v->dc, j, err)) rc = -1;
    free(j);
  }
  cJSON_Delete(tr);
  sp_ckpt_info_free(&info);
  if (rc) return -1;
  if (nn_sched_init(&v->sched, (nn_sched_kind)v->dc.sched, v->dc.T, 1e-4, 0.02, err)) return -1;
  if (sp_vunet_init(&v->m, &mc, 0, err)) return -1;
  if (sp_model_load(ckpt, &v->m.ps, "vunet", NULL, err)) {
    sp_vunet_free(&v->m);
    return -1;
  }
  return 0;
}

void sp_video_model_free(sp_video_model *v) { sp_vunet_free(&v->m); }
