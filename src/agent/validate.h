/* validate.h: the offline video validator, the SP agents' stand-in for the VLM's Accept/Reject
 * (paper, Appendix E) and VideoAgent's (docs/deviations.md). An imagined video (frames[0] the
 * current view) is accepted when no frame is blank (mean within [8, 247]), its last frame differs
 * from the first by at least SP_VALID_MIN_DIFF gray levels on average (the imagined motion is
 * visible), and the imagined arm starts the way the plan's first step goes: the mean optical flow
 * (Farneback) from frame 0 to frame SP_VALID_FLOW_FRAME within SP_VALID_RADIUS pixels of the
 * tcp's projection has a positive component along the image direction of that step (the
 * projection of SP_VALID_PROBE metres along it). A step whose image direction is shorter than
 * SP_VALID_MIN_PX (it points along the camera axis) is not judged. */
#ifndef SP_AGENT_VALIDATE_H
#define SP_AGENT_VALIDATE_H

#include <stdint.h>

#include "agent/agent.h"
#include "data/collect.h"
#include "match/match.h"
#include "plan/plan.h"
#include "plan/vlm.h"

#define SP_VALID_MIN_DIFF 2.0
#define SP_VALID_FLOW_FRAME 2
#define SP_VALID_RADIUS 8
#define SP_VALID_PROBE 0.05
#define SP_VALID_MIN_PX 0.5
#define SP_VALID_MAX_FRAMES 65  // the current view and at most 64 generated (vunet_cfg's bound)

/* one worker's validator for R x R videos */
typedef struct {
  int R;
  double tcp_px[2], plan_px[2];  // the plan's first step seen from the camera
  int plan_judged;               // 0: no direction to judge (no step, or along the camera axis)
  sp_flow_cfg fcfg;
  sp_flow_ws *fws;
  uint8_t *g0, *g1;
  float *flow;
} sp_validator;

int sp_validator_init(sp_validator *v, int R, char *err);
void sp_validator_free(sp_validator *v);
/* the plan the next videos are judged against: its first step's direction from the tcp, seen by
 * the camera of view (the videos' view) */
void sp_validator_plan(sp_validator *v, const sp_agent_sense *s, const sp_collect_config *view, const double tcp[3],
                       const sp_plan *plan);
/* 1 accept, 0 reject: frames (nframes x R x R x 3), frames[0] the current view */
int sp_validator_judge(sp_validator *v, const uint8_t *frames, int nframes);
/* the video's verdict: the VLM's Accept/Reject when vlm is not NULL and answers, else (offline, or
 * the VLM failed: *vlm_failures counts it) sp_validator_judge's */
int sp_validator_verdict(sp_validator *v, sp_vlm *vlm, int task, const uint8_t *frames, int nframes,
                         int *vlm_failures);

#endif
