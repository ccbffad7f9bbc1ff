/* sp.c: the Spatial Policy agent (paper, Algorithm 1 and Appendix A), three variants:
 *
 *   sp-nr  plan -> imagine -> follow; no validation, no replanning (Table 5's NR)
 *   sp     + validation: an imagined video the validator rejects is generated again from the same
 *          condition with new noise, up to SP_REGEN_BUDGET times (the paper's SP, Table 5's GR)
 *   sp-r   + execution replanning: when the hand stagnates (AVDC: SP_STALL_STEPS steps in which it
 *          moved less than SP_STALL_MM) or the follower has passed the last imagined frame, a fresh
 *          plan from the new offset and a new video from the current frame, at most
 *          SP_REPLAN_BUDGET times (SP-R, Table 5's GR&ER)
 *
 * plan: the rule planner on the current end-effector/object/goal state (plan/plan.h), or with a
 * VLM (--vlm) its plan table for the current view, the rule plan being the fallback;
 * imagine: the checkpoint's video variant from the current view (imagine.h); validate: the
 * offline validator (below), or the VLM's Accept/Reject (Appendix E) with the offline validator
 * as the fallback; act: the follower (follow.h) over [current view, frames 1..F]. Every VLM call
 * that fell back counts as a vlm_failure.
 * Noise is seeded from the episode's agent seed and the video count, so records do not depend
 * on --jobs. */
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "agent/follow.h"
#include "agent/imagine.h"
#include "agent/validate.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/collect.h"
#include "match/match.h"
#include "plan/plan.h"
#include "plan/vlm.h"
#include "sim/render.h"

#define SP_DDIM_STEPS 20
#define SP_REGEN_BUDGET 3     // regenerations of a rejected video (sp, sp-r)
#define SP_REPLAN_BUDGET 5    // AVDC's replans
/* the offline validator: agent/validate.h */

enum { MODE_NR = 0, MODE_GR, MODE_GR_ER };

typedef struct {
  sp_follow_model fm;
  sp_video_model vm;
  int vm_ok;
  sp_vlm_config vlm;            // used when has_vlm
  int has_vlm;
  float guidance;               // of the imagined videos
} sp_model_pair;

typedef struct {
  const sp_model_pair *m;
  int mode;
  sp_follower f;
  sp_imaginer im;
  int im_ok;
  sp_vlm *vlm;                  // this worker's client (NULL: offline)
  char plan_text[SP_PLAN_TEXT_MAX];  // the current plan table (for the GIFs)
  sp_validator val;             // the offline validator, judging against the current plan
  int val_ok;
  uint8_t *frames;              // (F + 1) x R x R x 3: the current view and the imagined frames
  int nframes;
  sp_stall stall;                // the hand's last positions (follow.h)
  uint32_t seed;
  int task;
  sp_agent_events ev;
  sp_agent_timing begin_tm;     // the first plan and video (made in begin), reported by the first act
} sp_agent;

void *sp_sp_load(const sp_agent_opts *o, char *err) {
  const char *checkpoint = o->checkpoint, *policy_checkpoint = o->policy_checkpoint;
  sp_model_pair *m = calloc(1, sizeof *m);
  if (!m) { sp_errf(err, "out of memory"); return NULL; }
  if (o->vlm) {
    m->vlm = *o->vlm;
    m->has_vlm = 1;
  }
  if (sp_follow_model_load(&m->fm, policy_checkpoint, o->action_steps, o->goal_steps, err)) { free(m); return NULL; }
  m->fm.episode_noise = o->episode_noise;
  if (sp_video_model_load(&m->vm, checkpoint, err)) goto fail;
  m->vm_ok = 1;
  m->guidance = o->guidance >= 0 ? (float)o->guidance : m->vm.dc.guidance;
  if (m->vm.m.cfg.res != m->fm.pol.cfg.frame) {
    sp_errf(err, "%s makes %d px frames but the policy %s takes %d px", checkpoint, m->vm.m.cfg.res,
            policy_checkpoint, m->fm.pol.cfg.frame);
    goto fail;
  }
  return m;
fail:
  if (m->vm_ok) sp_video_model_free(&m->vm);
  sp_follow_model_free(&m->fm);
  free(m);
  return NULL;
}

void sp_sp_unload(void *model) {
  sp_model_pair *m = model;
  if (!m) return;
  sp_video_model_free(&m->vm);
  sp_follow_model_free(&m->fm);
  free(m);
}

void sp_sp_destroy(void *state) {
  sp_agent *a = state;
  if (!a) return;
  sp_follower_free(&a->f);
  if (a->im_ok) sp_imaginer_free(&a->im);
  sp_vlm_free(a->vlm);
  if (a->val_ok) sp_validator_free(&a->val);
  free(a->frames);
  free(a);
}

static void *create(const void *model, int mode, char *err) {
  sp_agent *a = calloc(1, sizeof *a);
  if (!a) { sp_errf(err, "out of memory"); return NULL; }
  a->m = model;
  a->mode = mode;
  const int R = a->m->vm.m.cfg.res;
  a->nframes = a->m->vm.m.cfg.frames + 1;
  a->frames = malloc((size_t)R * R * 3 * (size_t)a->nframes);
  if (!a->frames) { sp_errf(err, "out of memory"); goto fail; }
  if (sp_follower_init(&a->f, &a->m->fm, err)) goto fail;
  if (sp_imaginer_init(&a->im, &a->m->vm, err)) goto fail;
  a->im_ok = 1;
  if (a->m->has_vlm && !(a->vlm = sp_vlm_create(&a->m->vlm, err))) goto fail;
  if (sp_validator_init(&a->val, R, err)) goto fail;
  a->val_ok = 1;
  return a;
fail:
  sp_sp_destroy(a);
  return NULL;
}
void *sp_spnr_create(const void *model, char *err) { return create(model, MODE_NR, err); }
void *sp_sp_create(const void *model, char *err) { return create(model, MODE_GR, err); }
void *sp_spr_create(const void *model, char *err) { return create(model, MODE_GR_ER, err); }

static sp_image frame_image(const sp_agent *a, int f) {
  const int R = a->m->vm.m.cfg.res;
  sp_image im = {R, R, 3, a->frames + (size_t)R * R * 3 * f};
  return im;
}

/* the plan table: the VLM's for the current view, else (offline, or the VLM failed) the rule
 * planner's */
static int make_plan(sp_agent *a, int task, const double tcp[3], const double obs[SP_OBS_DIM], sp_plan *plan,
                     char *err) {
  if (a->vlm) {
    sp_image cur = frame_image(a, 0);
    int r = sp_vlm_plan(a->vlm, task, tcp, obs + SP_OBS_OBJ, obs + SP_OBS_GOAL, &cur, plan, err);
    if (r == 1) a->ev.vlm_failures++;
    return r < 0 ? -1 : 0;
  }
  return sp_plan_rule(task, tcp, obs + SP_OBS_OBJ, obs + SP_OBS_GOAL, NULL, plan, err);
}

/* plan from the current state, imagine from the current view (validated and regenerated in the
 * GR modes), and follow the new video */
static int replan(sp_agent *a, const sp_agent_sense *s, sp_agent_timing *tm, char *err) {
  double t0 = sp_time_now();
  const double *tcp = s->tcp, *obs = s->obs;
  if (sp_follower_view(&a->f, s, err)) return -1;
  const int R = a->m->vm.m.cfg.res;
  memcpy(a->frames, a->f.cur, (size_t)R * R * 3);
  double t1 = sp_time_now();
  tm->render += t1 - t0;
  sp_plan plan;
  char perr[SP_ERRLEN];
  if (make_plan(a, s->task, tcp, obs, &plan, perr)) return sp_errf(err, "plan: %s", perr);
  sp_validator_plan(&a->val, s, &a->m->fm.view, tcp, &plan);
  a->ev.plans++;
  if (sp_plan_format(&plan, 1, a->plan_text, sizeof a->plan_text) < 0) a->plan_text[0] = 0;
  double t2 = sp_time_now();
  tm->planning += t2 - t1;
  int tries = a->mode == MODE_NR ? 1 : 1 + SP_REGEN_BUDGET;
  for (int k = 0; k < tries; k++) {
    uint32_t ns = a->seed ^ (0x85EBCA6Bu * (uint32_t)(a->ev.videos + 1));
    sp_imagine(&a->im, &a->m->vm, s->task, &plan, tcp, obs, SP_DDIM_STEPS, a->m->guidance, ns, a->frames);
    a->ev.videos++;
    if (a->mode == MODE_NR ||
        sp_validator_verdict(&a->val, a->vlm, a->task, a->frames, a->nframes, &a->ev.vlm_failures))
      break;
    a->ev.rejected++;  // the last try is followed even when rejected
  }
  tm->video += sp_time_now() - t2;
  const size_t fb = (size_t)R * R * 3;
  const uint8_t *goals[SP_FOLLOW_MAX_GOALS];
  for (int f = 0; f < a->nframes; f++) goals[f] = a->frames + fb * f;
  sp_follower_start(&a->f, goals, a->nframes, a->seed ^ (0xC2B2AE35u * (uint32_t)a->ev.plans));
  a->stall.n = 0;
  return 0;
}

int sp_sp_begin(void *state, const sp_agent_sense *s, uint32_t seed, char *err) {
  sp_agent *a = state;
  memset(&a->ev, 0, sizeof a->ev);
  a->seed = seed;
  a->task = s->task;
  memset(&a->begin_tm, 0, sizeof a->begin_tm);
  return replan(a, s, &a->begin_tm, err);
}

int sp_sp_act(void *state, const sp_agent_sense *s, const uint8_t *rgb, int w, int h, double action[SP_ACT_DIM],
              sp_agent_timing *tm, char *err) {
  (void)rgb; (void)w; (void)h;
  sp_agent *a = state;
  sp_agent_timing_take(tm, &a->begin_tm);
  if (a->mode == MODE_GR_ER && a->ev.replans < SP_REPLAN_BUDGET &&
      (sp_stall_push(&a->stall, s->obs + SP_OBS_HAND) || sp_follower_done(&a->f))) {
    a->ev.replans++;
    if (replan(a, s, tm, err)) return -1;
  }
  return sp_follower_step(&a->f, s, action, tm, &a->ev, err);
}

void sp_sp_end(void *state, sp_agent_events *ev) { *ev = ((sp_agent *)state)->ev; }

const uint8_t *sp_sp_goal(void *state, int *side, const char **plan_text) {
  sp_agent *a = state;
  *side = a->f.sz;
  *plan_text = a->plan_text[0] ? a->plan_text : NULL;
  return a->f.ngoal ? sp_follower_goal(&a->f) : NULL;
}
