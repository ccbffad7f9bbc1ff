/* oracle_policy.c: the policy driven by perfect goals (issue: "a closed loop on oracle goal frames").
 *
 * At begin the scripted expert rolls out from the episode's initial state in a private copy of the
 * env, recorded exactly as `sp collect` records a demonstration (sp_collect_episode: same camera,
 * crop window, size and render settings as the policy's training data). Every `stride`-th of its
 * frames, and its last, make the "video" of goal frames. In the loop the agent renders the
 * harness's env the same way each step, the frame matcher (match.h: composite score, hard switch
 * after max_steps) advances the goal, and the policy predicts a chunk of H actions towards the
 * current goal whenever the previous chunk is spent. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/collect.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "match/match.h"
#include "models/model.h"
#include "models/policy.h"
#include "sim/render.h"

#define ORACLE_STRIDE 8  // expert steps between goal frames (the policy trains on goals 1..16 ahead)
#define MAX_VIDEO (SP_MAX_PATH / ORACLE_STRIDE + 2)

/* the constant part, shared by the workers */
typedef struct {
  sp_policy pol;
  sp_collect_config view;         // how the policy's training frames were rendered
} oracle_model;

/* one worker's state */
typedef struct {
  const oracle_model *m;
  sp_policy_ws ws;
  int ws_ok;
  int sz;                         // frame side: the policy's
  sp_env *priv[SP_NTASK];         // private rollouts for the expert
  sp_renderer *rend[SP_NTASK];    // sz x sz crop-window renderers
  sp_demo demo;                   // the expert's recorded rollout
  sp_match_cfg mcfg;
  sp_match_ws *mws;
  sp_matcher mt;
  int video[MAX_VIDEO], nvideo;   // demo frame index of each goal frame
  uint8_t *cur, *gray_cur, *gray_goal;
  double chunk[SP_HORIZON_MAX * SP_ACT_DIM];
  int chunk_len, chunk_pos;
  uint32_t seed;
  int cam;
  sp_agent_events ev;
} oracle;

void sp_oracle_destroy(void *state) {
  oracle *o = state;
  if (!o) return;
  for (int t = 0; t < SP_NTASK; t++) {
    sp_renderer_free(o->rend[t]);
    sp_env_free(o->priv[t]);
  }
  sp_demo_free(&o->demo);
  sp_match_ws_free(o->mws);
  if (o->ws_ok) sp_policy_ws_free(&o->ws);
  free(o->cur);
  free(o->gray_cur);
  free(o->gray_goal);
  free(o);
}

/* the render settings of the policy's training data, from the checkpoint's data provenance
 * ("collect": {"compat": ...} of the dataset); a checkpoint without them gets collect's defaults */
static int view_from_ckpt(const char *path, sp_collect_config *v, int frame, char *err) {
  sp_collect_config_default(v);
  v->size = frame;
  sp_ckpt_info info;
  if (sp_ckpt_info_read(path, &info, err)) return -1;
  cJSON *d = info.data ? cJSON_Parse(info.data) : NULL;
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "collect"), "compat");
  int rc = 0;
  if (!cJSON_IsObject(c)) {
    sp_log(SP_LOG_WARN, "%s: no dataset render settings in the checkpoint; rendering with sp collect's defaults", path);
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
    if (size != frame)
      rc = sp_errf(err, "%s: the policy takes %d px frames but its dataset holds %d px", path, frame, size);
    else if (!v->render_crop)
      rc = sp_errf(err, "%s: trained on frames cropped from a full render (--full-render); the agent renders "
                   "the crop window directly", path);
    else if (cJSON_GetArraySize(ov) > 0)
      rc = sp_errf(err, "%s: trained on a dataset with --crop overrides; the agent renders the built-in windows", path);
  }
  cJSON_Delete(d);
  sp_ckpt_info_free(&info);
  return rc;
}

/* render the harness's env as the training frames were: the crop window at sz x sz (the camera's
 * field narrowed for the call, then restored) */
static int render_view(oracle *o, const sp_env *e, int cam, uint8_t *rgb, char *err) {
  int task = e->em->task, cid = e->em->cam_id[cam];
  sp_crop c = sp_crop_lookup(task, cam, o->m->view.render_w, o->m->view.render_h, NULL, 0);
  double fovy = e->m->cam_fovy[cid];
  e->m->cam_fovy[cid] = sp_crop_fovy(e->em, cam, &c, o->m->view.render_h);
  int rc = sp_render(o->rend[task], e, cam, o->sz, o->sz, rgb, NULL, NULL, err);
  e->m->cam_fovy[cid] = fovy;
  return rc;
}

void *sp_oracle_load(const char *checkpoint, char *err) {
  oracle_model *m = calloc(1, sizeof *m);
  if (!m) { sp_errf(err, "out of memory"); return NULL; }
  if (sp_policy_load(&m->pol, checkpoint, err)) { free(m); return NULL; }
  if (m->pol.cfg.unet.horizon > SP_HORIZON_MAX) {
    sp_errf(err, "%s: horizon %d above %d", checkpoint, m->pol.cfg.unet.horizon, SP_HORIZON_MAX);
    sp_oracle_unload(m);
    return NULL;
  }
  if (view_from_ckpt(checkpoint, &m->view, m->pol.cfg.frame, err)) { sp_oracle_unload(m); return NULL; }
  m->view.rgb_only = 1;  // the goal frames are all the agent reads
  return m;
}

void sp_oracle_unload(void *model) {
  oracle_model *m = model;
  if (!m) return;
  sp_policy_free(&m->pol);
  free(m);
}

void *sp_oracle_create(const void *model, char *err) {
  oracle *o = calloc(1, sizeof *o);
  if (!o) { sp_errf(err, "out of memory"); return NULL; }
  o->m = model;
  if (sp_policy_ws_init(&o->ws, &o->m->pol, 1, 0, err)) goto fail;
  o->ws_ok = 1;
  o->sz = o->m->pol.cfg.frame;
  sp_match_cfg_default(&o->mcfg);
  size_t px = (size_t)o->sz * o->sz;
  o->cur = malloc(px * 3);
  o->gray_cur = malloc(px);
  o->gray_goal = malloc(px);
  if (!o->cur || !o->gray_cur || !o->gray_goal) { sp_errf(err, "out of memory"); goto fail; }
  if (!(o->mws = sp_match_ws_new(&o->mcfg, o->sz, o->sz, err))) goto fail;
  if (sp_demo_alloc(&o->demo, SP_MAX_PATH + 1, o->sz, err)) goto fail;
  return o;
fail:
  sp_oracle_destroy(o);
  return NULL;
}

static const uint8_t *goal_frame(const oracle *o) {
  int g = o->mt.goal < o->nvideo ? o->mt.goal : o->nvideo - 1;
  return o->demo.rgb + (size_t)o->video[g] * o->sz * o->sz * 3;
}

static void set_goal(oracle *o) {
  sp_match_rgb_to_gray(goal_frame(o), o->sz, o->sz, o->gray_goal);
  sp_match_set_goal(&o->mcfg, o->mws, o->gray_goal, NULL);
}

int sp_oracle_begin(void *state, const sp_env *e, int cam, uint32_t seed, char *err) {
  oracle *o = state;
  int task = e->em->task;
  if (!o->priv[task] && !(o->priv[task] = sp_env_create(e->em, err))) return -1;
  if (!o->rend[task] &&
      !(o->rend[task] = sp_renderer_create_q(e->em, o->sz, o->sz, o->m->view.shadow_size, o->m->view.msaa, err)))
    return -1;
  double t_render = 0;
  if (sp_collect_episode(&o->m->view, o->priv[task], o->rend[task], NULL, 0, cam, e->seed, -1, &o->demo,
                         &t_render, err))
    return -1;
  o->nvideo = 0;
  for (int k = 0; k < o->demo.n - 1 && o->nvideo < MAX_VIDEO - 1; k += ORACLE_STRIDE) o->video[o->nvideo++] = k;
  o->video[o->nvideo++] = o->demo.n - 1;
  sp_matcher_init(&o->mt, o->nvideo, 1, o->mcfg.threshold, o->mcfg.max_steps);
  if (o->nvideo > 1) set_goal(o);
  o->chunk_len = o->chunk_pos = 0;
  o->seed = seed;
  o->cam = cam;
  memset(&o->ev, 0, sizeof o->ev);
  return 0;
}

int sp_oracle_act(void *state, const sp_env *e, const double obs[SP_OBS_DIM], const uint8_t *rgb, int w,
                  int h, double action[SP_ACT_DIM], sp_agent_timing *tm, char *err) {
  (void)obs; (void)rgb; (void)w; (void)h;
  oracle *o = state;
  double t0 = sp_time_now();
  if (render_view(o, e, o->cam, o->cur, err)) return -1;
  double t1 = sp_time_now();
  tm->render += t1 - t0;
  if (o->mt.goal < o->nvideo) {
    sp_match_result r;
    sp_match_rgb_to_gray(o->cur, o->sz, o->sz, o->gray_cur);
    sp_match_obs(&o->mcfg, o->mws, o->gray_cur, &r, NULL, NULL);
    sp_matcher_event ev = sp_matcher_step(&o->mt, r.composite);
    if (ev == SP_MATCHER_ADVANCE) o->ev.goals_matched++;
    if (ev == SP_MATCHER_FORCED) o->ev.goals_forced++;
    if ((ev == SP_MATCHER_ADVANCE || ev == SP_MATCHER_FORCED) && o->mt.goal < o->nvideo) set_goal(o);
  }
  double t2 = sp_time_now();
  tm->matching += t2 - t1;
  if (o->chunk_pos == o->chunk_len) {
    double ee[3];
    sp_env_tcp(e, ee);
    uint32_t s = o->seed ^ (0x9E3779B9u * (uint32_t)(o->ev.chunks + 1));
    sp_policy_act(&o->m->pol, &o->ws, o->cur, goal_frame(o), ee, s, o->chunk);
    o->chunk_len = o->m->pol.cfg.unet.horizon;
    o->chunk_pos = 0;
    o->ev.chunks++;
    tm->policy += sp_time_now() - t2;
  }
  memcpy(action, o->chunk + SP_ACT_DIM * o->chunk_pos++, sizeof(double) * SP_ACT_DIM);
  return 0;
}

void sp_oracle_end(void *state, sp_agent_events *ev) {
  *ev = ((oracle *)state)->ev;
}
