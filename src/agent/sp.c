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
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "agent/follow.h"
#include "agent/imagine.h"
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
#define SP_STALL_STEPS 15     // AVDC: stagnation window
#define SP_STALL_MM 1.0       // AVDC: the hand moved less than this over the window
/* the offline validator: a video is accepted when no frame is blank (mean within [8, 247]), its
 * last frame differs from the first by at least SP_VALID_MIN_DIFF gray levels on average (the
 * imagined motion is visible), and the imagined arm starts the way the plan's first step goes:
 * the mean optical flow (Farneback) from frame 0 to frame SP_VALID_FLOW_FRAME within
 * SP_VALID_RADIUS pixels of the tcp's projection has a positive component along the image
 * direction of that step (the projection of SP_VALID_PROBE metres along it). A step whose image
 * direction is shorter than SP_VALID_MIN_PX (it points along the camera axis) is not judged. */
#define SP_VALID_MIN_DIFF 2.0
#define SP_VALID_FLOW_FRAME 2
#define SP_VALID_RADIUS 8
#define SP_VALID_PROBE 0.05
#define SP_VALID_MIN_PX 0.5

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
  /* the validator's view of the current plan: the image direction of its first step from the
   * tcp's pixel; flow workspace and buffers */
  double tcp_px[2], plan_px[2];
  int plan_judged;
  sp_flow_cfg fcfg;
  sp_flow_ws *fws;
  uint8_t *g0, *g1;
  float *flow;
  uint8_t *frames;              // (F + 1) x R x R x 3: the current view and the imagined frames
  int nframes;
  double hist[SP_STALL_STEPS + 1][3];  // hand positions of the last steps (ring)
  int nhist;
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
  if (sp_follow_model_load(&m->fm, policy_checkpoint, o->action_steps, err)) { free(m); return NULL; }
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
  sp_flow_ws_free(a->fws);
  free(a->g0);
  free(a->g1);
  free(a->flow);
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
  sp_flow_cfg_default(&a->fcfg);
  a->fcfg.levels = 2;  // 64 px frames: pyramid levels of 32 and 16
  a->g0 = malloc((size_t)R * R);
  a->g1 = malloc((size_t)R * R);
  a->flow = malloc(sizeof(float) * 2 * (size_t)R * R);
  if (!a->g0 || !a->g1 || !a->flow) { sp_errf(err, "out of memory"); goto fail; }
  if (!(a->fws = sp_flow_ws_new(&a->fcfg, R, R, err))) goto fail;
  return a;
fail:
  sp_sp_destroy(a);
  return NULL;
}
void *sp_spnr_create(const void *model, char *err) { return create(model, MODE_NR, err); }
void *sp_sp_create(const void *model, char *err) { return create(model, MODE_GR, err); }
void *sp_spr_create(const void *model, char *err) { return create(model, MODE_GR_ER, err); }

/* the plan's first motion step seen from the camera: the tcp's pixel and the pixel of a point
 * SP_VALID_PROBE metres along the step's direction */
static void plan_direction(sp_agent *a, const sp_agent_sense *s, const double tcp[3], const sp_plan *plan) {
  a->plan_judged = 0;
  if (plan->n < 1) return;
  const int *d = plan->step[0].dir;
  double n = sqrt((double)(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]));
  if (n == 0) return;
  sp_camera_matrix cm;
  sp_sense_camera(s, &a->m->fm.view, &cm);
  double p[3];
  for (int k = 0; k < 3; k++) p[k] = tcp[k] + SP_VALID_PROBE * d[k] / n;
  if (sp_camera_project(&cm, tcp, &a->tcp_px[0], &a->tcp_px[1]) <= 0 ||
      sp_camera_project(&cm, p, &a->plan_px[0], &a->plan_px[1]) <= 0)
    return;
  double du = a->plan_px[0] - a->tcp_px[0], dv = a->plan_px[1] - a->tcp_px[1];
  a->plan_judged = hypot(du, dv) >= SP_VALID_MIN_PX;
}

/* the imagined arm's first motion against the plan's (see SP_VALID_FLOW_FRAME) */
static int flow_agrees(sp_agent *a) {
  if (!a->plan_judged || a->nframes <= SP_VALID_FLOW_FRAME) return 1;
  const int R = a->m->vm.m.cfg.res;
  const size_t n = (size_t)R * R * 3;
  sp_match_rgb_to_gray(a->frames, R, R, a->g0);
  sp_match_rgb_to_gray(a->frames + n * SP_VALID_FLOW_FRAME, R, R, a->g1);
  sp_flow_farneback(&a->fcfg, a->fws, a->g0, a->g1, a->flow);
  double fu = 0, fv = 0;
  int cnt = 0;
  const int cu = (int)lround(a->tcp_px[0]), cv = (int)lround(a->tcp_px[1]);
  for (int y = cv - SP_VALID_RADIUS; y <= cv + SP_VALID_RADIUS; y++)
    for (int x = cu - SP_VALID_RADIUS; x <= cu + SP_VALID_RADIUS; x++) {
      if (x < 0 || y < 0 || x >= R || y >= R) continue;
      if ((x - cu) * (x - cu) + (y - cv) * (y - cv) > SP_VALID_RADIUS * SP_VALID_RADIUS) continue;
      fu += a->flow[2 * ((size_t)y * R + x)];
      fv += a->flow[2 * ((size_t)y * R + x) + 1];
      cnt++;
    }
  if (!cnt) return 1;  // the tcp is outside the frame
  return fu * (a->plan_px[0] - a->tcp_px[0]) + fv * (a->plan_px[1] - a->tcp_px[1]) > 0;
}

/* the offline validator (see SP_VALID_MIN_DIFF) */
static int validate_offline(sp_agent *a) {
  const int R = a->m->vm.m.cfg.res;
  const size_t n = (size_t)R * R * 3;
  for (int f = 1; f < a->nframes; f++) {
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += a->frames[(size_t)f * n + i];
    mean /= (double)n;
    if (mean < 8 || mean > 247) return 0;
  }
  double diff = 0;
  const uint8_t *first = a->frames, *last = a->frames + (size_t)(a->nframes - 1) * n;
  for (size_t i = 0; i < n; i++) diff += abs((int)first[i] - (int)last[i]);
  return diff / (double)n >= SP_VALID_MIN_DIFF && flow_agrees(a);
}

static sp_image frame_image(const sp_agent *a, int f) {
  const int R = a->m->vm.m.cfg.res;
  sp_image im = {R, R, 3, a->frames + (size_t)R * R * 3 * f};
  return im;
}

/* the VLM's verdict on the imagined video (frames[0] the current view), else the offline one */
static int validate(sp_agent *a) {
  if (!a->vlm) return validate_offline(a);
  sp_image fr[SP_FOLLOW_MAX_GOALS];
  for (int f = 0; f < a->nframes; f++) fr[f] = frame_image(a, f);
  int accept = 1;
  if (sp_vlm_validate(a->vlm, a->task, fr, a->nframes, &accept) == 1) {
    a->ev.vlm_failures++;
    return validate_offline(a);
  }
  return accept;
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
  plan_direction(a, s, tcp, &plan);
  a->ev.plans++;
  if (sp_plan_format(&plan, 1, a->plan_text, sizeof a->plan_text) < 0) a->plan_text[0] = 0;
  double t2 = sp_time_now();
  tm->planning += t2 - t1;
  int tries = a->mode == MODE_NR ? 1 : 1 + SP_REGEN_BUDGET;
  for (int k = 0; k < tries; k++) {
    uint32_t ns = a->seed ^ (0x85EBCA6Bu * (uint32_t)(a->ev.videos + 1));
    sp_imagine(&a->im, &a->m->vm, s->task, &plan, tcp, obs, SP_DDIM_STEPS, a->m->guidance, ns, a->frames);
    a->ev.videos++;
    if (a->mode == MODE_NR || validate(a)) break;
    a->ev.rejected++;  // the last try is followed even when rejected
  }
  tm->video += sp_time_now() - t2;
  const size_t fb = (size_t)R * R * 3;
  const uint8_t *goals[SP_FOLLOW_MAX_GOALS];
  for (int f = 0; f < a->nframes; f++) goals[f] = a->frames + fb * f;
  sp_follower_start(&a->f, goals, a->nframes, a->seed ^ (0xC2B2AE35u * (uint32_t)a->ev.plans));
  a->nhist = 0;
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

/* AVDC's stagnation rule over the hand positions of the last SP_STALL_STEPS steps */
static int stalled(sp_agent *a, const double hand[3]) {
  memmove(a->hist[1], a->hist[0], sizeof a->hist[0] * SP_STALL_STEPS);
  memcpy(a->hist[0], hand, sizeof a->hist[0]);
  if (a->nhist < SP_STALL_STEPS + 1) a->nhist++;
  if (a->nhist <= SP_STALL_STEPS) return 0;
  for (int i = 1; i <= SP_STALL_STEPS; i++) {
    double d = 0;
    for (int k = 0; k < 3; k++) d += (a->hist[i][k] - a->hist[0][k]) * (a->hist[i][k] - a->hist[0][k]);
    if (sqrt(d) * 1000.0 >= SP_STALL_MM) return 0;
  }
  return 1;
}

int sp_sp_act(void *state, const sp_agent_sense *s, const uint8_t *rgb, int w, int h, double action[SP_ACT_DIM],
              sp_agent_timing *tm, char *err) {
  (void)rgb; (void)w; (void)h;
  sp_agent *a = state;
  sp_agent_timing_take(tm, &a->begin_tm);
  if (a->mode == MODE_GR_ER && a->ev.replans < SP_REPLAN_BUDGET &&
      (stalled(a, s->obs + SP_OBS_HAND) || sp_follower_done(&a->f))) {
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
