/* oracle_policy.c: the policy driven by perfect goals (issue: "a closed loop on oracle goal frames").
 *
 * At begin the scripted expert rolls out from the episode's initial state in a private copy of the
 * env, recorded exactly as `sp collect` records a demonstration (sp_collect_episode: same camera,
 * crop window, size and render settings as the policy's training data, RGB only). Every
 * ORACLE_STRIDE-th of its frames, and its last, are the goal frames the follower (follow.h)
 * tracks. docs/agents.md. */
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "agent/follow.h"
#include "core/log.h"
#include "data/dataset.h"

#define ORACLE_STRIDE 8  // expert steps between goal frames (the policy trains on goals 1..16 ahead)

/* one worker's state */
typedef struct {
  sp_follower f;
  sp_env *priv[SP_NTASK];         // private rollouts for the expert
  sp_demo demo;                   // the expert's recorded rollout
  sp_agent_events ev;
} oracle;

void *sp_oracle_load(const sp_agent_opts *o, char *err) {
  sp_follow_model *m = calloc(1, sizeof *m);
  if (!m) { sp_errf(err, "out of memory"); return NULL; }
  if (sp_follow_model_load(m, o->checkpoint, o->action_steps, err)) { free(m); return NULL; }
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
  for (int t = 0; t < SP_NTASK; t++) sp_env_free(o->priv[t]);
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

int sp_oracle_begin(void *state, const sp_env *e, int cam, uint32_t seed, char *err) {
  oracle *o = state;
  int task = e->em->task;
  if (!o->priv[task] && !(o->priv[task] = sp_env_create(e->em, err))) return -1;
  sp_renderer *r = sp_follower_renderer(&o->f, e->em, err);
  if (!r) return -1;
  double t_render = 0;
  if (sp_collect_episode(&o->f.m->view, o->priv[task], r, NULL, 0, cam, e->seed, -1, &o->demo, &t_render, err))
    return -1;
  const uint8_t *goals[SP_FOLLOW_MAX_GOALS];
  int n = 0;
  size_t fb = (size_t)o->demo.size * o->demo.size * 3;
  for (int k = 0; k < o->demo.n - 1 && n < SP_FOLLOW_MAX_GOALS - 1; k += ORACLE_STRIDE) goals[n++] = o->demo.rgb + fb * k;
  goals[n++] = o->demo.rgb + fb * (o->demo.n - 1);
  sp_follower_start(&o->f, goals, n, cam, seed);
  memset(&o->ev, 0, sizeof o->ev);
  return 0;
}

int sp_oracle_act(void *state, const sp_env *e, const double obs[SP_OBS_DIM], const uint8_t *rgb, int w,
                  int h, double action[SP_ACT_DIM], sp_agent_timing *tm, char *err) {
  (void)obs; (void)rgb; (void)w; (void)h;
  oracle *o = state;
  return sp_follower_step(&o->f, e, action, tm, &o->ev, err);
}

void sp_oracle_end(void *state, sp_agent_events *ev) { *ev = ((oracle *)state)->ev; }

const uint8_t *sp_oracle_goal(void *state, int *side, const char **plan_text) {
  oracle *o = state;
  *side = o->f.sz;
  *plan_text = NULL;
  return o->f.ngoal ? sp_follower_goal(&o->f) : NULL;
}
