/* oracle_policy.c: the policy driven by perfect goals (issue: "a closed loop on oracle goal frames").
 *
 * At begin the scripted expert rolls out from the episode's initial state in a private copy of the
 * env, recorded exactly as `sp collect` records a demonstration (sp_collect_episode: same camera,
 * crop window, size and render settings as the policy's training data, RGB only). Every
 * ORACLE_STRIDE-th of its frames, and its last, are the goal frames the follower (follow.h)
 * tracks. oracle-policy-r replans as sp-r does: when the hand stagnates (follow.h's rule) or the
 * follower has passed the last goal, the expert rolls out again from the episode's current state
 * (sp_collect_episode_from), at most ORACLE_REPLANS times: sp-r with perfect videos.
 * docs/agents.md. */
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "agent/follow.h"
#include "core/log.h"
#include "data/dataset.h"

#define ORACLE_STRIDE 8   // expert steps between goal frames (the policy trains on goals 1..16 ahead)
#define ORACLE_REPLANS 5  // oracle-policy-r: AVDC's replanning budget, as sp-r's

/* one worker's state */
typedef struct {
  sp_follower f;
  sp_env *priv[SP_NTASK];         // private rollouts for the expert
  sp_renderer *rend[SP_NTASK];    // and their renderers (the policy's view)
  sp_demo demo;                   // the expert's recorded rollout
  int replan;                     // oracle-policy-r
  sp_stall stall;
  uint32_t seed;
  sp_agent_events ev;
} oracle;

void *sp_oracle_load(const sp_agent_opts *o, char *err) {
  sp_follow_model *m = calloc(1, sizeof *m);
  if (!m) { sp_errf(err, "out of memory"); return NULL; }
  if (sp_follow_model_load(m, o->checkpoint, o->action_steps, o->goal_steps, err)) { free(m); return NULL; }
  m->episode_noise = o->episode_noise;
  return m;
}

void sp_oracle_unload(void *model) {
  if (!model) return;
  sp_follow_model_free(model);
  free(model);
}

void sp_oracle_destroy(void *state) {
  oracle *o = state;
  if (!o) return;
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_free(o->priv[t]);
    sp_renderer_free(o->rend[t]);
  }
  sp_demo_free(&o->demo);
  sp_follower_free(&o->f);
  free(o);
}

void *sp_oracle_create(const void *model, char *err) {
  oracle *o = calloc(1, sizeof *o);
  if (!o) { sp_errf(err, "out of memory"); return NULL; }
  const sp_follow_model *m = model;
  if (sp_follower_init(&o->f, m, err) || sp_demo_alloc(&o->demo, SP_MAX_PATH + 1, m->pol.cfg.frame, err)) {
    sp_oracle_destroy(o);
    return NULL;
  }
  return o;
}

void *sp_oracler_create(const void *model, char *err) {
  oracle *o = sp_oracle_create(model, err);
  if (o) o->replan = 1;
  return o;
}

/* the expert's rollout from the episode's reset (start NULL) or from start's state, and its goals */
static int rollout(oracle *o, const sp_agent_sense *s, const sp_env *start, char *err) {
  const int task = s->task, sz = o->f.sz;
  const sp_collect_config *v = &o->f.m->view;
  if (!o->priv[task] && !(o->priv[task] = sp_env_create(s->scene, err))) return -1;
  if (!o->rend[task] && !(o->rend[task] = sp_renderer_create_q(s->scene, sz, sz, v->shadow_size, v->msaa, err)))
    return -1;
  double t_render = 0;
  int rc = start ? sp_collect_episode_from(v, o->priv[task], o->rend[task], s->cam, start, &o->demo, &t_render, err)
                 : sp_collect_episode(v, o->priv[task], o->rend[task], NULL, 0, s->cam, s->seed, -1, &o->demo,
                                      &t_render, err);
  if (rc) return -1;
  const uint8_t *goals[SP_FOLLOW_MAX_GOALS];
  int n = 0;
  size_t fb = (size_t)o->demo.size * o->demo.size * 3;
  for (int k = 0; k < o->demo.n - 1 && n < SP_FOLLOW_MAX_GOALS - 1; k += ORACLE_STRIDE) goals[n++] = o->demo.rgb + fb * k;
  goals[n++] = o->demo.rgb + fb * (o->demo.n - 1);
  sp_follower_start(&o->f, goals, n, o->seed ^ (0x85EBCA6Bu * (uint32_t)o->ev.replans));
  o->stall.n = 0;
  return 0;
}

int sp_oracle_begin(void *state, const sp_agent_sense *s, uint32_t seed, char *err) {
  oracle *o = state;
  memset(&o->ev, 0, sizeof o->ev);
  o->seed = seed;
  return rollout(o, s, NULL, err);
}

int sp_oracle_act(void *state, const sp_agent_sense *s, const uint8_t *rgb, int w, int h, double action[SP_ACT_DIM],
                  sp_agent_timing *tm, char *err) {
  (void)rgb; (void)w; (void)h;
  oracle *o = state;
  if (o->replan && o->ev.replans < ORACLE_REPLANS &&
      (sp_stall_push(&o->stall, s->obs + SP_OBS_HAND) || sp_follower_done(&o->f))) {
    o->ev.replans++;
    if (rollout(o, s, sp_sense_env(s), err)) return -1;
  }
  return sp_follower_step(&o->f, s, action, tm, &o->ev, err);
}

void sp_oracle_end(void *state, sp_agent_events *ev) { *ev = ((oracle *)state)->ev; }

const uint8_t *sp_oracle_goal(void *state, int *side, const char **plan_text) {
  oracle *o = state;
  *side = o->f.sz;
  *plan_text = NULL;
  return o->f.ngoal ? sp_follower_goal(&o->f) : NULL;
}
