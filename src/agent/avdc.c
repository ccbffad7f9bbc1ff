/* avdc.c: AVDC (Ko et al. 2023) as agents: the text-conditioned video model's imagined video ->
 * optical flow between consecutive frames -> the object's 3D motion and the subgoals of its grasp
 * point (flowplan.h) -> AVDC's scripted controller. Facts: ../shared/spec/reference-models.md 2.4
 * and AVDC_experiments' MyPolicy_CL, whose behaviour this follows, quirks included:
 *
 *   mode     from the first plan's subgoals: "grasp" if two consecutive ones among 1..n-2 differ
 *            in height by more than 0.1 m, else "push" (subgoals lowered AVDC_PUSH_DROP; the
 *            grasp point moved AVDC_PUSH_BACK back, in xy, from the first subgoal more than
 *            AVDC_PUSH_FAR away); replans keep the mode and do not lower their subgoals
 *   target   not grasped: AVDC_ABOVE above the grasp point until the xy error is at most
 *            AVDC_XY_TOL, then down to it until the height error is at most AVDC_Z_TOL, then
 *            "grasped"; then the subgoals in turn, each left within AVDC_TOL_GRASP (grasp) or
 *            AVDC_TOL_PUSH (push) metres; the last one is held
 *   action   xyz = AVDC_GAIN x (target - hand) (the env clips to [-1, 1]); gripper +0.8 when
 *            grasped, in push mode, or within AVDC_GRIP_Z of the grasp point's height, else -0.8
 *   replan   avdc-r: a counter drops on every step the hand moved less than 1 mm (since the
 *            last plan, not necessarily in a row); at 0 a new video from the current view and
 *            a new plan; at most AVDC_REPLANS times. A replan in grasp mode keeps "grasped".
 *
 * The flow is the project's Farneback (AVDC: GMFlow, whose weights cannot be had here) between the
 * video's frames upsampled (bilinear) from the model's side to AVDC_PLAN_SIDE, the 128-pixel crop
 * of AVDC's 320 x 240 render at its own resolution, where the mask and depth are rendered too.
 * Sampling: DDIM (AVDC_DDIM_STEPS) without guidance (AVDC: 100 DDPM steps, no guidance). Any
 * video checkpoint serves: a plan-conditioned one gets the rule plan of the current state, as the
 * SP agents make it, so `--checkpoint` with SP's video model gives the paper's Table 3 row "SP's
 * video, AVDC's flow controller".
 *
 * avdc-oracle (the pipeline alone): the "video" is the scripted expert's own rollout from the
 * episode's initial state, rendered as the video model's frames and sampled as AVDC samples its
 * training clips (8 frames evenly spaced over the episode, the last included); no replanning.
 *
 * videoagent (VideoAgent, Soni et al. 2024; reference-models.md 3.2): the video model is a
 * refinement model (video_cond: `sp train video --video-cond 1 --refine`), whose first video is
 * conditioned on the current view repeated; while the validator rejects the video, it is
 * generated again conditioned on the last one (self-conditioning consistency), at most
 * VA_REFINES times, and the last is used; then AVDC's pipeline. The validator is the VLM's
 * Accept/Reject with --vlm, else the SP agents' offline one (validate.h) on the rule plan.
 * docs/baselines.md. */
#include <math.h>
#include <mujoco/mujoco.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "agent/flowplan.h"
#include "agent/imagine.h"
#include "agent/validate.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/collect.h"
#include "data/dataset.h"
#include "match/match.h"
#include "models/model.h"
#include "plan/plan.h"
#include "sim/render.h"

#define AVDC_PLAN_SIDE 128
#define AVDC_DDIM_STEPS 20
#define AVDC_ORACLE_SIDE 64   // avdc-oracle: frames at the committed video models' side
#define AVDC_ORACLE_FRAMES 8
#define AVDC_REPLANS 5
#define AVDC_STALL_STEPS 15
#define AVDC_STALL_M 0.001
#define AVDC_GAIN 20.0
#define AVDC_ABOVE 0.2
#define AVDC_XY_TOL 0.02
#define AVDC_Z_TOL 0.04
#define AVDC_TOL_GRASP 0.04
#define AVDC_TOL_PUSH 0.12
#define AVDC_GRIP_Z 0.08
#define AVDC_GRIP 0.8
#define AVDC_LIFT_DZ 0.1
#define AVDC_PUSH_DROP 0.03
#define AVDC_PUSH_BACK 0.08
#define AVDC_PUSH_FAR 0.1
#define AVDC_MAX_MASK 64
#define AVDC_MAX_FRAMES (SP_FP_MAX_FLOWS + 1)
#define VA_REFINES 4          // VideoAgent's benchmark: up to 4 refinements

typedef struct {
  sp_video_model vm;
  int has_vm;                 // 0: avdc-oracle
  sp_collect_config view;     // the video's frames (rgb_only)
  int R, nframes;
  float guidance;             // of the video (AVDC: none)
  int refines;                // videoagent: refinements of a rejected video (0: avdc)
  sp_vlm_config vlm;          // videoagent with --vlm: its Accept/Reject (has_vlm)
  int has_vlm;
  sp_fp_cfg fpc;              // the flow plan's settings: AVDC's, with --flow-check's occlusion test
} avdc_model;

typedef struct {
  const avdc_model *m;
  int max_replans, oracle;
  sp_imaginer im;
  int im_ok;
  sp_renderer *rend[SP_NTASK];  // avdc-oracle: the renderers of its private envs
  int mask_ids[SP_NTASK][AVDC_MAX_MASK], nmask[SP_NTASK];
  sp_env *priv[SP_NTASK];     // avdc-oracle: the expert's rollout
  sp_demo demo;
  int demo_ok;
  uint8_t *frames;            // nframes x R x R x 3
  uint8_t *gray, *up[2];      // R x R, and two frames at the plan side
  float *flow[SP_FP_MAX_FLOWS];
  float *bflow[SP_FP_MAX_FLOWS];  // --flow-check: the backward flows
  float *depth;
  int32_t *seg;
  uint8_t *mask, *mask_raw;
  sp_flow_cfg fcfg;
  sp_flow_ws *fws;
  sp_fp_ws *fpw;
  sp_validator val;           // videoagent
  int val_ok;
  sp_vlm *vlm;                // videoagent with --vlm: this worker's client
  /* the controller */
  int push, grasped;
  double grasp[3], sub[AVDC_MAX_FRAMES][3];
  int nsub, cur;
  int countdown, plans_left;
  double last[3];
  uint32_t seed;
  sp_agent_events ev;
  sp_agent_timing begin_tm;
} avdc;

static void *load(const sp_agent_opts *o, int oracle, int refines, char *err) {
  avdc_model *m = calloc(1, sizeof *m);
  if (!m) { sp_errf(err, "out of memory"); return NULL; }
  if (oracle) {
    sp_collect_config_default(&m->view);
    m->view.size = m->R = AVDC_ORACLE_SIDE;
    m->nframes = AVDC_ORACLE_FRAMES;
  } else {
    if (sp_video_model_load(&m->vm, o->checkpoint, err)) { free(m); return NULL; }
    m->has_vm = 1;
    m->R = m->vm.m.cfg.res;
    m->nframes = m->vm.m.cfg.frames + 1;
    sp_ckpt_info info;
    int rc = sp_ckpt_info_read(o->checkpoint, &info, err);
    if (!rc) {
      rc = sp_collect_view_from_json(info.data, m->R, o->checkpoint, &m->view, err);
      sp_ckpt_info_free(&info);
    }
    if (rc >= 0 && m->nframes > AVDC_MAX_FRAMES) rc = sp_errf(err, "%s: %d frames, at most %d", o->checkpoint, m->nframes - 1, AVDC_MAX_FRAMES - 1);
    if (rc < 0) {
      sp_video_model_free(&m->vm);
      free(m);
      return NULL;
    }
  }
  m->view.rgb_only = 1;
  m->guidance = o->guidance > 0 ? (float)o->guidance : 0.f;
  m->refines = refines;
  sp_fp_cfg_default(&m->fpc);
  m->fpc.fb_px = o->flow_check;
  if (refines && !m->vm.m.cfg.video_cond) {
    sp_errf(err, "%s is not a refinement model (videoagent needs a video-conditioned one: sp train video "
                 "--video-cond 1 --refine, docs/baselines.md)", o->checkpoint);
    sp_video_model_free(&m->vm);
    free(m);
    return NULL;
  }
  if (refines && o->vlm) {
    m->vlm = *o->vlm;
    m->has_vlm = 1;
  }
  return m;
}
void *sp_avdc_load(const sp_agent_opts *o, char *err) { return load(o, 0, 0, err); }
void *sp_avdc_oracle_load(const sp_agent_opts *o, char *err) { return load(o, 1, 0, err); }
void *sp_va_load(const sp_agent_opts *o, char *err) { return load(o, 0, VA_REFINES, err); }

void sp_avdc_unload(void *model) {
  avdc_model *m = model;
  if (!m) return;
  if (m->has_vm) sp_video_model_free(&m->vm);
  free(m);
}

void sp_avdc_destroy(void *state) {
  avdc *a = state;
  if (!a) return;
  for (int t = 0; t < SP_NTASK; t++) {
    sp_renderer_free(a->rend[t]);
    sp_env_free(a->priv[t]);
  }
  if (a->demo_ok) sp_demo_free(&a->demo);
  if (a->im_ok) sp_imaginer_free(&a->im);
  for (int f = 0; f < SP_FP_MAX_FLOWS; f++) free(a->flow[f]), free(a->bflow[f]);
  free(a->frames);
  free(a->gray);
  free(a->up[0]);
  free(a->up[1]);
  free(a->depth);
  free(a->seg);
  free(a->mask);
  free(a->mask_raw);
  sp_flow_ws_free(a->fws);
  sp_fp_ws_free(a->fpw);
  if (a->val_ok) sp_validator_free(&a->val);
  sp_vlm_free(a->vlm);
  free(a);
}

static void *create(const void *model, int max_replans, char *err) {
  const avdc_model *m = model;
  avdc *a = calloc(1, sizeof *a);
  if (!a) { sp_errf(err, "out of memory"); return NULL; }
  a->m = m;
  a->max_replans = max_replans;
  a->oracle = !m->has_vm;
  const size_t R = (size_t)m->R, P = AVDC_PLAN_SIDE;
  a->frames = malloc(R * R * 3 * (size_t)m->nframes);
  a->gray = malloc(R * R);
  a->up[0] = malloc(P * P);
  a->up[1] = malloc(P * P);
  a->depth = malloc(sizeof(float) * P * P);
  a->seg = malloc(sizeof(int32_t) * P * P);
  a->mask = malloc(P * P);
  a->mask_raw = malloc(P * P);
  int ok = a->frames && a->gray && a->up[0] && a->up[1] && a->depth && a->seg && a->mask && a->mask_raw;
  for (int f = 0; f < m->nframes - 1; f++) ok = ok && (a->flow[f] = malloc(sizeof(float) * 2 * P * P));
  for (int f = 0; f < m->nframes - 1 && m->fpc.fb_px > 0; f++)
    ok = ok && (a->bflow[f] = malloc(sizeof(float) * 2 * P * P));
  if (!ok) { sp_errf(err, "out of memory"); goto fail; }
  if (m->has_vm) {
    if (sp_imaginer_init(&a->im, &m->vm, err)) goto fail;
    a->im_ok = 1;
  } else {
    if (sp_demo_alloc(&a->demo, SP_MAX_PATH + 1, m->R, err)) goto fail;
    a->demo_ok = 1;
  }
  sp_flow_cfg_default(&a->fcfg);
  if (!(a->fws = sp_flow_ws_new(&a->fcfg, AVDC_PLAN_SIDE, AVDC_PLAN_SIDE, err))) goto fail;
  if (!(a->fpw = sp_fp_ws_new(&m->fpc, err))) goto fail;
  if (m->refines) {
    if (sp_validator_init(&a->val, m->R, err)) goto fail;
    a->val_ok = 1;
    if (m->has_vlm && !(a->vlm = sp_vlm_create(&m->vlm, err))) goto fail;
  }
  return a;
fail:
  sp_avdc_destroy(a);
  return NULL;
}
void *sp_avdc_create(const void *model, char *err) { return create(model, 0, err); }
void *sp_avdcr_create(const void *model, char *err) { return create(model, AVDC_REPLANS, err); }

/* gray (R x R) upsampled to dst (P x P) bilinearly, pixel centres aligned */
static void upsample(const uint8_t *src, int R, uint8_t *dst, int P) {
  const double s = (double)R / P;
  for (int y = 0; y < P; y++) {
    double fy = (y + 0.5) * s - 0.5;
    if (fy < 0) fy = 0;
    if (fy > R - 1) fy = R - 1;
    int y0 = (int)fy, y1 = y0 + 1 < R ? y0 + 1 : y0;
    double wy = fy - y0;
    for (int x = 0; x < P; x++) {
      double fx = (x + 0.5) * s - 0.5;
      if (fx < 0) fx = 0;
      if (fx > R - 1) fx = R - 1;
      int x0 = (int)fx, x1 = x0 + 1 < R ? x0 + 1 : x0;
      double wx = fx - x0;
      double v = (src[y0 * R + x0] * (1 - wx) + src[y0 * R + x1] * wx) * (1 - wy) +
                 (src[y1 * R + x0] * (1 - wx) + src[y1 * R + x1] * wx) * wy;
      dst[y * P + x] = (uint8_t)(v + 0.5);
    }
  }
}

/* AVDC's masks (its name2maskid.json lists Meta-World geom ids): the datasets' mask bodies
 * (sp_mask_geoms), except where AVDC masks one part of them: the door's handle for door-open
 * (Meta-World's geom "handle"; the built-in scene's "handle_rose", "handle_stem", "handle_lever"
 * and the hidden "handle" sphere), the hammer's handle */
static const char *g_mask_geom[SP_NTASK] = {[SP_TASK_DOOR_OPEN] = "handle", [SP_TASK_HAMMER] = "HammerHandle"};

/* the mask geoms of a scene, found on first use */
static int scene(avdc *a, const sp_env_model *em, char *err) {
  const int t = em->task;
  if (a->nmask[t]) return 0;
  if (g_mask_geom[t]) {  // the geom NAME, and NAME_* (the built-in scenes' parts of it)
    const char *want = g_mask_geom[t];
    const size_t len = strlen(want);
    for (int g = 0; g < em->m0->ngeom && a->nmask[t] < AVDC_MAX_MASK; g++) {
      const char *nm = mj_id2name(em->m0, mjOBJ_GEOM, g);
      if (nm && !strncmp(nm, want, len) && (!nm[len] || nm[len] == '_')) a->mask_ids[t][a->nmask[t]++] = g;
    }
    if (!a->nmask[t]) return sp_errf(err, "%s: no geom '%s' in the scene (AVDC's mask)", sp_task_name(t), want);
  } else if ((a->nmask[t] = sp_mask_geoms(em, a->mask_ids[t], AVDC_MAX_MASK, err)) < 0) {
    a->nmask[t] = 0;
    return -1;
  }
  return 0;
}

/* the task object's mask in the plan view, median-filtered 3 x 3 as AVDC filters its segmentation */
static void object_mask(avdc *a, int task) {
  const int P = AVDC_PLAN_SIDE;
  for (int i = 0; i < P * P; i++) {
    uint8_t on = 0;
    for (int q = 0; q < a->nmask[task] && !on; q++) on = a->seg[i] == a->mask_ids[task][q];
    a->mask_raw[i] = on;
  }
  for (int y = 0; y < P; y++)
    for (int x = 0; x < P; x++) {
      int cnt = 0;  // the median of 9 binary values (edges replicated)
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          int yy = y + dy < 0 ? 0 : y + dy >= P ? P - 1 : y + dy, xx = x + dx < 0 ? 0 : x + dx >= P ? P - 1 : x + dx;
          cnt += a->mask_raw[yy * P + xx];
        }
      a->mask[y * P + x] = cnt >= 5;
    }
}

/* the video: the expert's frames (avdc-oracle) or the model's from frames[0] */
static int video(avdc *a, const sp_agent_sense *s, char *err) {
  const size_t fb = (size_t)a->m->R * a->m->R * 3;
  const int n = a->m->nframes, task = s->task;
  const double *obs = s->obs, *tcp = s->tcp;
  if (a->oracle) {
    const sp_collect_config *v = &a->m->view;
    if (!a->priv[task] && !(a->priv[task] = sp_env_create(s->scene, err))) return -1;
    if (!a->rend[task] &&
        !(a->rend[task] = sp_renderer_create_q(s->scene, a->m->R, a->m->R, v->shadow_size, v->msaa, err)))
      return -1;
    double t_render = 0;
    if (sp_collect_episode(v, a->priv[task], a->rend[task], NULL, 0, s->cam, s->seed, -1, &a->demo, &t_render, err))
      return -1;
    for (int i = 0; i < n; i++) {  // AVDC's sample_n_frames
      int k = i < n - 1 ? (int)((long)i * a->demo.n / (n - 1)) : a->demo.n - 1;
      memcpy(a->frames + fb * i, a->demo.rgb + fb * k, fb);
    }
  } else {
    uint32_t ns = a->seed ^ (0x85EBCA6Bu * (uint32_t)(a->ev.videos + 1));
    sp_plan plan;  // AVDC's model reads the text alone; a plan-conditioned one gets the rule plan
    memset(&plan, 0, sizeof plan);
    if ((a->m->vm.m.cfg.cond != SP_VCOND_TEXT || a->m->refines) &&
        sp_plan_rule(task, tcp, obs + SP_OBS_OBJ, obs + SP_OBS_GOAL, NULL, &plan, err))
      return -1;
    sp_imagine(&a->im, &a->m->vm, task, &plan, tcp, obs, AVDC_DDIM_STEPS, a->m->guidance, ns, a->frames);
    if (a->m->refines) {  // VideoAgent: refine while rejected, conditioned on the last video
      sp_validator_plan(&a->val, s, &a->m->view, tcp, &plan);
      for (int k = 0;
           k < a->m->refines && !sp_validator_verdict(&a->val, a->vlm, task, a->frames, n, &a->ev.vlm_failures); k++) {
        a->ev.rejected++;
        a->ev.videos++;
        ns = a->seed ^ (0x85EBCA6Bu * (uint32_t)(a->ev.videos + 1));
        sp_imagine_from(&a->im, &a->m->vm, task, &plan, tcp, obs, AVDC_DDIM_STEPS, a->m->guidance, ns,
                        a->frames + fb, a->frames);
      }
    }
  }
  a->ev.videos++;
  return 0;
}

/* a new plan from the current state: render, video, flows, subgoals; the mode on the first */
static int plan(avdc *a, const sp_agent_sense *s, sp_agent_timing *tm, char *err) {
  const int task = s->task, R = a->m->R, P = AVDC_PLAN_SIDE;
  double t0 = sp_time_now();
  if (scene(a, s->scene, err)) return -1;
  if (sp_sense_view(s, &a->m->view, a->frames, NULL, NULL, err)) return -1;
  sp_collect_config pv = a->m->view;
  pv.size = P;
  if (sp_sense_view(s, &pv, NULL, a->depth, a->seg, err)) return -1;
  object_mask(a, task);
  double t1 = sp_time_now();
  tm->render += t1 - t0;
  if (video(a, s, err)) return -1;
  double t2 = sp_time_now();
  tm->video += t2 - t1;
  const size_t fb = (size_t)R * R * 3;
  const int nflow = a->m->nframes - 1;
  for (int f = 0; f <= nflow; f++) {
    sp_match_rgb_to_gray(a->frames + fb * f, R, R, a->gray);
    upsample(a->gray, R, a->up[f & 1], P);
    if (f) sp_flow_farneback(&a->fcfg, a->fws, a->up[(f - 1) & 1], a->up[f & 1], a->flow[f - 1]);
    if (f && a->bflow[f - 1]) sp_flow_farneback(&a->fcfg, a->fws, a->up[f & 1], a->up[(f - 1) & 1], a->bflow[f - 1]);
  }
  sp_camera_matrix cm;
  sp_sense_camera(s, &pv, &cm);
  sp_fp_plan fp;
  const float *flows[SP_FP_MAX_FLOWS];
  for (int f = 0; f < nflow; f++) flows[f] = a->flow[f];
  if (sp_fp_run(&a->m->fpc, a->fpw, a->mask, a->depth, P, P, &cm, flows, (const float *const *)a->bflow, nflow,
                a->seed ^ (0x27D4EB2Fu * (uint32_t)(a->ev.plans + 1)), &fp, err))
    return -1;
  const int first = a->ev.plans == 0;
  a->ev.plans++;
  a->nsub = nflow + 1;
  memcpy(a->sub, fp.sub, sizeof(double) * 3 * (size_t)a->nsub);
  memcpy(a->grasp, fp.grasp, sizeof a->grasp);
  if (first) {
    double dz = 0;  // AVDC: consecutive subgoals among 1 .. n - 2
    for (int k = 1; k + 1 <= a->nsub - 2; k++) dz = fmax(dz, fabs(a->sub[k][2] - a->sub[k + 1][2]));
    a->push = !(dz > AVDC_LIFT_DZ);
    if (a->push)
      for (int k = 0; k < a->nsub; k++) a->sub[k][2] -= AVDC_PUSH_DROP;
  }
  a->cur = 0;
  if (first || a->push) {  // AVDC's init_grasp
    a->grasped = 0;
    if (a->push) {
      double d[2] = {0, 0};
      for (int k = 0; k < a->nsub; k++) {
        double dx = a->sub[k][0] - a->grasp[0], dy = a->sub[k][1] - a->grasp[1], nn = hypot(dx, dy);
        if (nn > 0) d[0] = dx / nn, d[1] = dy / nn;
        if (nn > AVDC_PUSH_FAR) break;
      }
      a->grasp[0] -= AVDC_PUSH_BACK * d[0];
      a->grasp[1] -= AVDC_PUSH_BACK * d[1];
    }
  }
  if (sp_log_get_level() >= SP_LOG_DEBUG) {
    char line[1024];
    int o = snprintf(line, sizeof line, "avdc: plan %d (%s%s): grasp (%.3f %.3f %.3f); subgoals", a->ev.plans,
                     a->push ? "push" : "grasp", fp.mask_empty ? ", empty mask" : "", a->grasp[0], a->grasp[1],
                     a->grasp[2]);
    for (int k = 1; k < a->nsub && o < (int)sizeof line - 80; k++)
      o += snprintf(line + o, sizeof line - (size_t)o, " (%.3f %.3f %.3f; %d fit, %d hidden, loss %.2g)", a->sub[k][0],
                    a->sub[k][1], a->sub[k][2], fp.inliers[k - 1], fp.hidden[k - 1], fp.loss[k - 1]);
    sp_log(SP_LOG_DEBUG, "%s", line);
  }
  a->countdown = AVDC_STALL_STEPS;
  a->plans_left--;
  tm->planning += sp_time_now() - t2;
  return 0;
}

int sp_avdc_begin(void *state, const sp_agent_sense *s, uint32_t seed, char *err) {
  avdc *a = state;
  memset(&a->ev, 0, sizeof a->ev);
  memset(&a->begin_tm, 0, sizeof a->begin_tm);
  a->seed = seed;
  a->plans_left = a->max_replans + 1;
  memset(a->last, 0, sizeof a->last);
  return plan(a, s, &a->begin_tm, err);
}

static double dist3(const double a[3], const double b[3]) {
  return sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

/* AVDC's _desired_pos; may replan (and set grasped) */
static int target(avdc *a, const sp_agent_sense *s, double tgt[3], sp_agent_timing *tm, char *err) {
  const double *hand = s->obs + SP_OBS_HAND;
  if (a->countdown <= 0 && a->plans_left > 0) {
    a->ev.replans++;
    if (plan(a, s, tm, err)) return -1;
    memcpy(tgt, a->sub[a->cur], sizeof(double) * 3);
    return 0;
  }
  if (!a->grasped && hypot(hand[0] - a->grasp[0], hand[1] - a->grasp[1]) > AVDC_XY_TOL) {
    memcpy(tgt, a->grasp, sizeof(double) * 3);
    tgt[2] += AVDC_ABOVE;
    return 0;
  }
  if (!a->grasped) {
    if (fabs(hand[2] - a->grasp[2]) <= AVDC_Z_TOL) a->grasped = 1;
    memcpy(tgt, a->grasp, sizeof(double) * 3);
    return 0;
  }
  const double *sub = a->sub[a->cur];
  if (dist3(hand, sub) <= (a->push ? AVDC_TOL_PUSH : AVDC_TOL_GRASP) && a->cur + 1 < a->nsub) a->cur++;
  memcpy(tgt, a->sub[a->cur], sizeof(double) * 3);
  return 0;
}

int sp_avdc_act(void *state, const sp_agent_sense *s, const uint8_t *rgb, int w, int h, double action[SP_ACT_DIM],
                sp_agent_timing *tm, char *err) {
  (void)rgb; (void)w; (void)h;
  avdc *a = state;
  sp_agent_timing_take(tm, &a->begin_tm);
  const double *hand = s->obs + SP_OBS_HAND;
  if (dist3(hand, a->last) < AVDC_STALL_M) a->countdown--;
  memcpy(a->last, hand, sizeof a->last);
  double tgt[3];
  if (target(a, s, tgt, tm, err)) return -1;
  for (int k = 0; k < 3; k++) action[k] = AVDC_GAIN * (tgt[k] - hand[k]);
  int close = a->grasped || a->push || fabs(hand[2] - a->grasp[2]) < AVDC_GRIP_Z;
  action[3] = close ? AVDC_GRIP : -AVDC_GRIP;
  return 0;
}

void sp_avdc_end(void *state, sp_agent_events *ev) { *ev = ((avdc *)state)->ev; }

/* for the GIFs: the video frame of the subgoal the hand is heading for */
const uint8_t *sp_avdc_goal(void *state, int *side, const char **plan_text) {
  avdc *a = state;
  *side = a->m->R;
  *plan_text = NULL;
  int f = a->grasped ? a->cur : 0;
  return a->frames + (size_t)a->m->R * a->m->R * 3 * (size_t)f;
}
