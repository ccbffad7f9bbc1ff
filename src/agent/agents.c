/* agents.c: the table of agents, the scripted expert, and where committed checkpoints live. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "core/log.h"
#include "core/rng.h"
#include "nn/nn.h"

/* the scripted expert: reads the state observation only; its model and state are its grasp */
static void *expert_load(const sp_agent_opts *o, char *err) {
  sp_grasp *g = malloc(sizeof *g);
  if (!g) { sp_errf(err, "out of memory"); return NULL; }
  *g = o->grasp;
  return g;
}
static void expert_unload(void *m) { free(m); }
static void *expert_create(const void *model, char *err) {
  (void)err;
  return (void *)model;
}
static void expert_destroy(void *s) { (void)s; }
static int expert_begin(void *st, const sp_agent_sense *s, uint32_t seed, char *err) {
  (void)st; (void)s; (void)seed; (void)err;
  return 0;
}
static int expert_act(void *st, const sp_agent_sense *s, const uint8_t *rgb, int w, int h, double action[SP_ACT_DIM],
                      sp_agent_timing *tm, char *err) {
  (void)rgb; (void)w; (void)h; (void)tm; (void)err;
  sp_expert_act(s->task, *(const sp_grasp *)st, s->obs, action);
  return 0;
}

static const sp_agent_api g_agents[] = {
    {"expert", "Meta-World's scripted policy on the state (the data collector)", NULL, NULL, 0, expert_load,
     expert_unload, expert_create, expert_destroy, expert_begin, expert_act, NULL, 0, 0, NULL},
    {"oracle-policy",
     "the diffusion policy towards goal frames of the expert's own rollout, advanced by the frame matcher",
     SP_CKPT_POLICY_IMAGINED, NULL, 0, sp_oracle_load, sp_oracle_unload, sp_oracle_create, sp_oracle_destroy,
     sp_oracle_begin, sp_oracle_act, sp_oracle_end, 0, 0, sp_oracle_goal},
    {"oracle-policy-r",
     "oracle-policy with sp-r's replanning: the expert rolls out again from the current state when the hand "
     "stagnates or the goals run out",
     SP_CKPT_POLICY_IMAGINED, NULL, 0, sp_oracle_load, sp_oracle_unload, sp_oracler_create, sp_oracle_destroy,
     sp_oracle_begin, sp_oracle_act, sp_oracle_end, 5, 0, sp_oracle_goal},
    {"sp-nr", "Spatial Policy without validation or replanning (Table 5's NR)", SP_CKPT_VIDEO,
     SP_CKPT_POLICY_IMAGINED, 0, sp_sp_load, sp_sp_unload, sp_spnr_create, sp_sp_destroy, sp_sp_begin, sp_sp_act,
     sp_sp_end, 0, 1, sp_sp_goal},
    {"sp", "Spatial Policy: plan, imagine, validate and regenerate, follow (the paper's SP; Table 5's GR)",
     SP_CKPT_VIDEO, SP_CKPT_POLICY_IMAGINED, 0, sp_sp_load, sp_sp_unload, sp_sp_create, sp_sp_destroy, sp_sp_begin,
     sp_sp_act, sp_sp_end, 0, 1, sp_sp_goal},
    {"sp-r", "Spatial Policy with execution replanning on stagnation (SP-R; Table 5's GR&ER)", SP_CKPT_VIDEO,
     SP_CKPT_POLICY_IMAGINED, 0, sp_sp_load, sp_sp_unload, sp_spr_create, sp_sp_destroy, sp_sp_begin, sp_sp_act,
     sp_sp_end, 5, 1, sp_sp_goal},
    {"avdc", "AVDC: the text-only video model, optical flow -> object motion -> scripted controller", SP_CKPT_VIDEO_TEXT,
     NULL, 0, sp_avdc_load, sp_avdc_unload, sp_avdc_create, sp_avdc_destroy, sp_avdc_begin, sp_avdc_act, sp_avdc_end,
     0, 0, sp_avdc_goal},
    {"avdc-r", "AVDC-Replan: avdc with replanning when the hand stalls", SP_CKPT_VIDEO_TEXT, NULL, 0, sp_avdc_load,
     sp_avdc_unload, sp_avdcr_create, sp_avdc_destroy, sp_avdc_begin, sp_avdc_act, sp_avdc_end, 5, 0, sp_avdc_goal},
    {"avdc-oracle", "AVDC's flow -> action pipeline on the expert's own frames (no video model)", NULL, NULL, 0,
     sp_avdc_oracle_load, sp_avdc_unload, sp_avdc_create, sp_avdc_destroy, sp_avdc_begin, sp_avdc_act, sp_avdc_end, 0,
     0, sp_avdc_goal},
    {"videoagent",
     "VideoAgent: avdc with its refinement model, a rejected video re-generated conditioned on itself (up to 4 times)",
     SP_CKPT_VIDEO_REFINE, NULL, 0, sp_va_load, sp_avdc_unload, sp_avdc_create, sp_avdc_destroy, sp_avdc_begin,
     sp_avdc_act, sp_avdc_end, 0, 1, sp_avdc_goal},
    {"va-or",
     "VideoAgent-Online-Replan: videoagent with AVDC's replanning, on the model fine-tuned on its own successes "
     "(scripts/va-online.sh)",
     SP_CKPT_VIDEO_ONLINE, NULL, 0, sp_va_load, sp_avdc_unload, sp_avdcr_create, sp_avdc_destroy, sp_avdc_begin,
     sp_avdc_act, sp_avdc_end, 5, 1, sp_avdc_goal},
};
#define NAGENT (int)(sizeof g_agents / sizeof g_agents[0])

const sp_agent_api *sp_agent_find(const char *name) {
  for (int i = 0; name && i < NAGENT; i++)
    if (!strcmp(name, g_agents[i].name)) return &g_agents[i];
  return NULL;
}

const char *sp_agent_names(void) {
  static char buf[256];
  if (!buf[0])
    for (int i = 0; i < NAGENT; i++)
      snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "", g_agents[i].name);
  return buf;
}

int sp_agent_checkpoints(const sp_agent_api *ag, const char *ckpt, const char *pckpt, char *buf, char *pbuf,
                         size_t cap, const char **ckpt_out, const char **pckpt_out, char *err) {
  if (pckpt && !ag->default_policy_ckpt)
    return sp_errf(err, "--policy-checkpoint: agent '%s' takes no policy checkpoint", ag->name);
  if (!ckpt && ag->default_ckpt) {
    if (sp_checkpoint_default(ag->default_ckpt, buf, cap, err)) return -1;
    ckpt = buf;
  }
  if (!pckpt && ag->default_policy_ckpt) {
    if (sp_checkpoint_default(ag->default_policy_ckpt, pbuf, cap, err)) return -1;
    pckpt = pbuf;
  }
  *ckpt_out = ckpt;
  *pckpt_out = pckpt;
  return 0;
}

uint32_t sp_agent_seed(int task, int cam, long seed) {
  return sp_seed_derive(sp_task_name(task), sp_camera_name(cam), seed, "agent");
}

/* ---- sp collect --agent ---- */

typedef struct {
  const sp_agent_api *ag;
  void *model;
} collect_ctx;

typedef struct {
  const sp_agent_api *ag;
  void *state;
  sp_agent_sense sense;
  sp_sense_renderers rend;
} collect_state;

static void *collect_create(void *ctx, char *err) {
  const collect_ctx *c = ctx;
  collect_state *s = calloc(1, sizeof *s);
  if (!s) { sp_errf(err, "out of memory"); return NULL; }
  s->ag = c->ag;
  if (!(s->state = c->ag->create(c->model, err))) {
    free(s);
    return NULL;
  }
  return s;
}

static void collect_destroy(void *state) {
  collect_state *s = state;
  if (!s) return;
  s->ag->destroy(s->state);
  sp_sense_renderers_free(&s->rend);
  free(s);
}

/* collect's loop hands the env it steps; the agent senses it through sense (e->obs until the
 * first act, then the observation collect passes, which is e->obs's copy) */
static int collect_begin(void *state, const sp_env *e, int cam, long seed, char *err) {
  collect_state *s = state;
  sp_sense_bind(&s->sense, e, cam, e->obs, &s->rend);
  return s->ag->begin(s->state, &s->sense, sp_agent_seed(e->em->task, cam, seed), err);
}

static int collect_act(void *state, const sp_env *e, const double obs[SP_OBS_DIM], double action[SP_ACT_DIM],
                       char *err) {
  collect_state *s = state;
  (void)e;
  s->sense.obs = obs;
  sp_sense_update(&s->sense);
  sp_agent_timing tm = {0};
  return s->ag->act(s->state, &s->sense, NULL, 0, 0, action, &tm, err);
}

int sp_agent_collect_policy(const sp_agent_api *ag, const sp_agent_opts *o, sp_collect_policy *out, char *err) {
  memset(out, 0, sizeof *out);
  if (ag->needs_rgb) return sp_errf(err, "agent '%s' reads the camera frame, which sp collect does not render", ag->name);
  collect_ctx *c = calloc(1, sizeof *c);
  if (!c) return sp_errf(err, "out of memory");
  c->ag = ag;
  if (!(c->model = ag->load(o, err))) {
    free(c);
    return -1;
  }
  /* networks on one thread each, as in sp eval: records then do not depend on --jobs and equal
   * sp eval's */
  nn_init(1);
  *out = (sp_collect_policy){ag->name, !strcmp(ag->name, "expert"), c, collect_create, collect_destroy,
                             collect_begin, collect_act};
  return 0;
}

void sp_agent_collect_policy_free(sp_collect_policy *p) {
  collect_ctx *c = p->ctx;
  if (c) {
    c->ag->unload(c->model);
    free(c);
  }
  memset(p, 0, sizeof *p);
}

int sp_checkpoint_default(const char *name, char *path, size_t cap, char *err) {
  snprintf(path, cap, "checkpoints/%s", name);
  if (access(path, R_OK) == 0) return 0;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  char alt[PATH_MAX + 64] = "";
  if (n > 0) {
    exe[n] = 0;
    char *s = strrchr(exe, '/');
    if (s) {
      *s = 0;
      snprintf(alt, sizeof alt, "%s/../checkpoints/%s", exe, name);
      if (access(alt, R_OK) == 0) {
        snprintf(path, cap, "%s", alt);
        return 0;
      }
    }
  }
  return sp_errf(err, "no committed checkpoint %s in ./checkpoints/%s%s%s (name another file on the command line)",
                 name, name, alt[0] ? " or " : "", alt);
}
