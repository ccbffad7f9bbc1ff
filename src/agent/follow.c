/* follow.c: the goal follower shared by oracle-policy and the SP agent (contract in follow.h). */
#include "agent/follow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "models/model.h"

int sp_follow_model_load(sp_follow_model *m, const char *ckpt, int action_steps, int goal_steps, char *err) {
  memset(m, 0, sizeof *m);
  if (sp_policy_load(&m->pol, ckpt, err)) return -1;
  int H = m->pol.cfg.unet.horizon;
  int bad = H > SP_HORIZON_MAX ? sp_errf(err, "%s: horizon %d above %d", ckpt, H, SP_HORIZON_MAX)
            : action_steps < 0 || action_steps > H
                ? sp_errf(err, "--action-steps %d outside 1..%d, the horizon of %s", action_steps, H, ckpt)
                : 0;
  if (bad) {
    sp_policy_free(&m->pol);
    return -1;
  }
  m->action_steps = action_steps ? action_steps : (H + 1) / 2;
  m->goal_steps = goal_steps;
  sp_ckpt_info info;
  int rc = sp_ckpt_info_read(ckpt, &info, err);
  if (!rc) {
    rc = sp_collect_view_from_json(info.data, m->pol.cfg.frame, ckpt, &m->view, err);
    sp_ckpt_info_free(&info);
  }
  if (rc < 0) {
    sp_policy_free(&m->pol);
    return -1;
  }
  m->view.rgb_only = 1;  // an agent reads the frames alone
  return 0;
}

void sp_follow_model_free(sp_follow_model *m) { sp_policy_free(&m->pol); }

void sp_follower_free(sp_follower *f) {
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
  if (m->goal_steps > 0) f->mcfg.max_steps = m->goal_steps;
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

int sp_follower_view(sp_follower *f, const sp_agent_sense *s, char *err) {
  return sp_sense_view(s, &f->m->view, f->cur, NULL, NULL, err);
}

const uint8_t *sp_follower_goal(const sp_follower *f) {
  return f->goals[f->mt.goal < f->ngoal ? f->mt.goal : f->ngoal - 1];
}

static void set_goal(sp_follower *f) {
  sp_match_rgb_to_gray(sp_follower_goal(f), f->sz, f->sz, f->gray_goal);
  sp_match_set_goal(&f->mcfg, f->mws, f->gray_goal, NULL);
}

void sp_follower_start(sp_follower *f, const uint8_t *const *goals, int n, uint32_t seed) {
  if (n > SP_FOLLOW_MAX_GOALS) n = SP_FOLLOW_MAX_GOALS;
  memcpy(f->goals, goals, sizeof *goals * (size_t)n);
  f->ngoal = n;
  sp_matcher_init(&f->mt, n, 1, f->mcfg.threshold, f->mcfg.max_steps);
  if (n > 1) set_goal(f);
  f->chunk_len = f->chunk_pos = 0;
  f->seed = seed;
}

int sp_follower_done(const sp_follower *f) { return f->mt.goal >= f->ngoal; }

int sp_follower_step(sp_follower *f, const sp_agent_sense *s, double action[SP_ACT_DIM], sp_agent_timing *tm,
                     sp_agent_events *ev, char *err) {
  double t0 = sp_time_now();
  if (sp_follower_view(f, s, err)) return -1;
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
    uint32_t ns = f->m->episode_noise ? f->seed : f->seed ^ (0x9E3779B9u * (uint32_t)(ev->chunks + 1));
    double ee[SP_POLICY_EE_MAX] = {s->tcp[0], s->tcp[1], s->tcp[2], s->obs[SP_OBS_GRIP]};
    sp_policy_act(&f->m->pol, &f->ws, f->cur, sp_follower_goal(f), ee, ns, f->chunk);
    f->chunk_len = f->m->action_steps;
    f->chunk_pos = 0;
    ev->chunks++;
    tm->policy += sp_time_now() - t2;
  }
  memcpy(action, f->chunk + SP_ACT_DIM * f->chunk_pos++, sizeof(double) * SP_ACT_DIM);
  return 0;
}

int sp_stall_push(sp_stall *st, const double hand[3]) {
  memmove(st->hist[1], st->hist[0], sizeof st->hist[0] * SP_STALL_STEPS);
  memcpy(st->hist[0], hand, sizeof st->hist[0]);
  if (st->n < SP_STALL_STEPS + 1) st->n++;
  if (st->n <= SP_STALL_STEPS) return 0;
  for (int i = 1; i <= SP_STALL_STEPS; i++) {
    double d = 0;
    for (int k = 0; k < 3; k++) d += (st->hist[i][k] - st->hist[0][k]) * (st->hist[i][k] - st->hist[0][k]);
    if (sqrt(d) * 1000.0 >= SP_STALL_MM) return 0;
  }
  return 1;
}
