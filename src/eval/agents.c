/* agents.c: the table of agents the harness knows; later modules add their rows here. */
#include <string.h>

#include "eval/eval.h"

/* the scripted expert: reads the state observation only */
static void *expert_create(const char *checkpoint, char *err) {
  (void)checkpoint; (void)err;
  static int dummy;
  return &dummy;
}
static void expert_destroy(void *s) { (void)s; }
static int expert_begin(void *s, const sp_env *e, int cam, uint32_t seed, char *err) {
  (void)s; (void)e; (void)cam; (void)seed; (void)err;
  return 0;
}
static int expert_act(void *s, const sp_env *e, const double obs[SP_OBS_DIM], const uint8_t *rgb,
                      int w, int h, double action[SP_ACT_DIM], sp_eval_timing *tm, char *err) {
  (void)s; (void)rgb; (void)w; (void)h; (void)tm; (void)err;
  sp_expert_act(e->em->task, obs, action);
  return 0;
}

static const sp_agent_api g_agents[] = {
    {"expert", 0, expert_create, expert_destroy, expert_begin, expert_act, 0},
};

const sp_agent_api *sp_agent_find(const char *name) {
  for (size_t i = 0; i < sizeof g_agents / sizeof g_agents[0]; i++)
    if (!strcmp(name, g_agents[i].name)) return &g_agents[i];
  return NULL;
}

const char *sp_agent_names(void) { return "expert"; }
