/* follow.c: the goal follower shared by oracle-policy and the SP agent (contract in follow.h). */
#include "agent/follow.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "models/model.h"

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

int sp_follow_model_load(sp_follow_model *m, const char *ckpt, char *err) {
  memset(m, 0, sizeof *m);
  if (sp_policy_load(&m->pol, ckpt, err)) return -1;
  if (m->pol.cfg.unet.horizon > SP_HORIZON_MAX) {
    sp_errf(err, "%s: horizon %d above %d", ckpt, m->pol.cfg.unet.horizon, SP_HORIZON_MAX);
    sp_policy_free(&m->pol);
    return -1;
  }
  if (view_from_ckpt(ckpt, &m->view, m->pol.cfg.frame, err)) {
    sp_policy_free(&m->pol);
    return -1;
  }
  m->view.rgb_only = 1;  // an agent reads the frames alone
  return 0;
}

void sp_follow_model_free(sp_follow_model *m) { sp_policy_free(&m->pol); }

void sp_follower_free(sp_follower *f) {
  for (int t = 0; t < SP_NTASK; t++) sp_renderer_free(f->rend[t]);
  sp_match_ws_free(f->mws);
  if (f->ws_ok) sp_policy_ws_free(&f->ws);
  free(f->cur);
  free(f->gray_cur);
  free(f->gray_goal);
  memset(f, 0, sizeof *f);
}

int sp_follower_init(sp_follower *f, const sp_follow_model *m, char *err) {
  memset(f, 0, sizeof *f);
  f->m = m;
  f->sz = m->pol.cfg.frame;
  if (sp_policy_ws_init(&f->ws, &m->pol, 1, 0, err)) return -1;
  f->ws_ok = 1;
  sp_match_cfg_default(&f->mcfg);
  size_t px = (size_t)f->sz * f->sz;
  f->cur = malloc(px * 3);
  f->gray_cur = malloc(px);
  f->gray_goal = malloc(px);
  if (!f->cur || !f->gray_cur || !f->gray_goal) {
    sp_follower_free(f);
    return sp_errf(err, "out of memory");
  }
  if (!(f->mws = sp_match_ws_new(&f->mcfg, f->sz, f->sz, err))) {
    sp_follower_free(f);
    return -1;
  }
  return 0;
}

sp_renderer *sp_follower_renderer(sp_follower *f, const sp_env_model *em, char *err) {
  int t = em->task;
  if (!f->rend[t]) f->rend[t] = sp_renderer_create_q(em, f->sz, f->sz, f->m->view.shadow_size, f->m->view.msaa, err);
  return f->rend[t];
}

int sp_follower_view(sp_follower *f, const sp_env *e, int cam, char *err) {
  sp_renderer *r = sp_follower_renderer(f, e->em, err);
  if (!r) return -1;
  int task = e->em->task, cid = e->em->cam_id[cam];
  sp_crop c = sp_crop_lookup(task, cam, f->m->view.render_w, f->m->view.render_h, NULL, 0);
  double fovy = e->m->cam_fovy[cid];
  e->m->cam_fovy[cid] = sp_crop_fovy(e->em, cam, &c, f->m->view.render_h);
  int rc = sp_render(r, e, cam, f->sz, f->sz, f->cur, NULL, NULL, err);
  e->m->cam_fovy[cid] = fovy;
  return rc;
}

static const uint8_t *goal_frame(const sp_follower *f) {
  return f->goals[f->mt.goal < f->ngoal ? f->mt.goal : f->ngoal - 1];
}

static void set_goal(sp_follower *f) {
  sp_match_rgb_to_gray(goal_frame(f), f->sz, f->sz, f->gray_goal);
  sp_match_set_goal(&f->mcfg, f->mws, f->gray_goal, NULL);
}

void sp_follower_start(sp_follower *f, const uint8_t *const *goals, int n, int cam, uint32_t seed) {
  if (n > SP_FOLLOW_MAX_GOALS) n = SP_FOLLOW_MAX_GOALS;
  memcpy(f->goals, goals, sizeof *goals * (size_t)n);
  f->ngoal = n;
  sp_matcher_init(&f->mt, n, 1, f->mcfg.threshold, f->mcfg.max_steps);
  if (n > 1) set_goal(f);
  f->chunk_len = f->chunk_pos = 0;
  f->seed = seed;
  f->cam = cam;
}

int sp_follower_done(const sp_follower *f) { return f->mt.goal >= f->ngoal; }

int sp_follower_step(sp_follower *f, const sp_env *e, double action[SP_ACT_DIM], sp_agent_timing *tm,
                     sp_agent_events *ev, char *err) {
  double t0 = sp_time_now();
  if (sp_follower_view(f, e, f->cam, err)) return -1;
  double t1 = sp_time_now();
  tm->render += t1 - t0;
  if (f->mt.goal < f->ngoal) {
    sp_match_result r;
    sp_match_rgb_to_gray(f->cur, f->sz, f->sz, f->gray_cur);
    sp_match_obs(&f->mcfg, f->mws, f->gray_cur, &r, NULL, NULL);
    sp_matcher_event me = sp_matcher_step(&f->mt, r.composite);
    if (me == SP_MATCHER_ADVANCE) ev->goals_matched++;
    if (me == SP_MATCHER_FORCED) ev->goals_forced++;
    if ((me == SP_MATCHER_ADVANCE || me == SP_MATCHER_FORCED) && f->mt.goal < f->ngoal) set_goal(f);
  }
  double t2 = sp_time_now();
  tm->matching += t2 - t1;
  if (f->chunk_pos == f->chunk_len) {
    double ee[3];
    sp_env_tcp(e, ee);
    uint32_t s = f->seed ^ (0x9E3779B9u * (uint32_t)(ev->chunks + 1));
    sp_policy_act(&f->m->pol, &f->ws, f->cur, goal_frame(f), ee, s, f->chunk);
    f->chunk_len = f->m->pol.cfg.unet.horizon;
    f->chunk_pos = 0;
    ev->chunks++;
    tm->policy += sp_time_now() - t2;
  }
  memcpy(action, f->chunk + SP_ACT_DIM * f->chunk_pos++, sizeof(double) * SP_ACT_DIM);
  return 0;
}
