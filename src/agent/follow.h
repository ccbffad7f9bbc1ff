/* follow.h: the goal-conditioned policy following a sequence of goal frames, advanced by the frame
 * matcher (paper, "Spatial Based Action Prediction" and Appendix F): the closed loop that
 * oracle-policy (goals from the expert's rollout) and the SP agent (goals from the video model)
 * share.
 *
 * Each control step asks the harness for the view the policy's training frames were rendered with
 * (the crop window of the dataset's view at the policy's frame size), scores it against the current goal with the
 * composite frame score, steps the matcher (matched -> next goal; max_steps on one goal -> next
 * goal anyway; past the last goal the policy keeps acting towards it), and, when the previous
 * chunk is spent (action_steps of its H actions executed), predicts H actions from the current
 * frame, the current goal and the end effector. */
#ifndef SP_AGENT_FOLLOW_H
#define SP_AGENT_FOLLOW_H

#include "agent/agent.h"
#include "data/collect.h"
#include "data/sampler.h"
#include "match/match.h"
#include "models/policy.h"
#include "sim/render.h"

#define SP_FOLLOW_MAX_GOALS (SP_MAX_PATH + 1)

/* the constant part: the policy and how its training frames were rendered */
typedef struct {
  sp_policy pol;
  sp_collect_config view;  // from the checkpoint's dataset provenance (rgb_only set)
  int action_steps;        // actions executed of each chunk of H before predicting again
  int goal_steps;          // the matcher's hard switch: steps on one goal before the next (0: 20)
  int episode_noise;       // 1: every chunk from the same noise (the follower's seed), 0: one per chunk
} sp_follow_model;

/* the policy of a `sp train policy` checkpoint and its dataset's render settings; a policy trained
 * on --full-render or --crop data, or on frames of another size, is refused. action_steps: 1..H
 * actions executed per chunk, 0 for H / 2 (Diffusion Policy executes 8 of its 16: docs/agents.md
 * measures 1, 2 and 4 of 4). goal_steps: the hard switch (paper, Appendix F), 0 for the matcher's
 * default. 0 or -1 with err. */
int sp_follow_model_load(sp_follow_model *m, const char *ckpt, int action_steps, int goal_steps, char *err);
void sp_follow_model_free(sp_follow_model *m);

/* one worker's state */
typedef struct {
  const sp_follow_model *m;
  int sz;                                   // frame side: the policy's
  sp_policy_ws ws;
  int ws_ok;
  sp_match_cfg mcfg;
  sp_match_ws *mws;
  sp_matcher mt;
  const uint8_t *goals[SP_FOLLOW_MAX_GOALS];  // (sz x sz x 3) each, the caller's
  int ngoal;
  uint8_t *cur, *gray_cur, *gray_goal;      // the last rendered frame (sz x sz x 3) and grays
  double chunk[SP_HORIZON_MAX * SP_ACT_DIM];
  int chunk_len, chunk_pos;
  uint32_t seed;
} sp_follower;

int sp_follower_init(sp_follower *f, const sp_follow_model *m, char *err);
void sp_follower_free(sp_follower *f);
/* the view now into f->cur, as the policy's training frames were rendered */
int sp_follower_view(sp_follower *f, const sp_agent_sense *s, char *err);
/* follow goals[0..n-1]: goals[0] is the start observation, goals[1] the first goal. The frames
 * must stay valid until the next start. seed: the episode's agent seed (chunk noise). */
void sp_follower_start(sp_follower *f, const uint8_t *const *goals, int n, uint32_t seed);
/* one control step -> action; counts chunks and goal switches into ev, time into tm */
int sp_follower_step(sp_follower *f, const sp_agent_sense *s, double action[SP_ACT_DIM], sp_agent_timing *tm,
                     sp_agent_events *ev, char *err);
/* the goal frame the policy acts towards now (sz x sz x 3) */
const uint8_t *sp_follower_goal(const sp_follower *f);
/* 1 once the matcher has moved past the last goal */
int sp_follower_done(const sp_follower *f);

/* AVDC's stagnation rule, the replanning trigger of sp-r and oracle-policy-r: the hand moved less
 * than SP_STALL_MM from where it is now at every one of the last SP_STALL_STEPS steps */
#define SP_STALL_STEPS 15
#define SP_STALL_MM 1.0
typedef struct {
  double hist[SP_STALL_STEPS + 1][3];  // hand positions, newest first
  int n;                               // positions held (0 after a zeroed start)
} sp_stall;
/* this step's hand position in; 1 when the hand has stagnated */
int sp_stall_push(sp_stall *st, const double hand[3]);

#endif
