/* agent.h: closed-loop policies the harness (eval/) runs, and the table that names them.
 *
 * An agent is a table of functions. `load` reads its constant part once per run (checkpoints,
 * configs), shared read-only by every worker; `create` makes one worker's mutable state over it
 * (workspaces, private envs); `begin` starts an episode on a freshly reset env; `act` maps what
 * it senses now (and, for agents that declare needs_rgb, the harness's camera frame) to one
 * action; `end` reports the episode's counted events. Agents never see the harness's env: they
 * get an sp_agent_sense, the state vector, the end effector, and camera views (RGB, depth,
 * segmentation, the camera matrix) rendered by the harness when the agent asks for one.
 *
 * Layers: agent sits above models, plan and match and below eval. */
#ifndef SP_AGENT_AGENT_H
#define SP_AGENT_AGENT_H

#include <stdint.h>

#include "data/collect.h"
#include "plan/vlm.h"
#include "sim/env.h"
#include "sim/render.h"

/* where an episode's wall time went (seconds), in the order records list it */
#define SP_AGENT_TIMES(X) X(physics) X(render) X(planning) X(video) X(policy) X(matching) X(other) X(total)
typedef struct {
#define SP_AGENT_TIME_FIELD(name) double name;
  SP_AGENT_TIMES(SP_AGENT_TIME_FIELD)
#undef SP_AGENT_TIME_FIELD
} sp_agent_timing;

/* events an agent counts over one episode (the record's "events", written for agents with an `end`):
 * chunks         action chunks a policy predicted
 * goals_matched  goal frames left because the frame matcher matched them
 * goals_forced   goal frames left by the hard switch (max steps on one goal)
 * plans, videos, rejected, replans, vlm_failures  the SP agent's loop */
#define SP_AGENT_EVENTS(X) \
  X(chunks) X(goals_matched) X(goals_forced) X(plans) X(videos) X(rejected) X(replans) X(vlm_failures)
typedef struct {
#define SP_AGENT_EVENT_FIELD(name) int name;
  SP_AGENT_EVENTS(SP_AGENT_EVENT_FIELD)
#undef SP_AGENT_EVENT_FIELD
} sp_agent_events;

/* ---------------------------------------------------------------------------------------------
 * what an agent senses. The harness binds one to its env for an episode (sp_sense_bind) and
 * refreshes it before every act (sp_sense_update); the views are rendered on request. */
#define SP_SENSE_MAX_RENDERERS 24  // two views for each of the 11 tasks, and two more

/* one worker's renderers for the views its agent asks for, made on first use; the harness's */
typedef struct {
  sp_renderer *r[SP_SENSE_MAX_RENDERERS];
  int task[SP_SENSE_MAX_RENDERERS], size[SP_SENSE_MAX_RENDERERS], shadow[SP_SENSE_MAX_RENDERERS],
      msaa[SP_SENSE_MAX_RENDERERS];
  int n;
} sp_sense_renderers;
void sp_sense_renderers_free(sp_sense_renderers *rc);

typedef struct {
  int task, cam;
  long seed;                    // the episode's env seed (AVDC's construct-then-reset seeding)
  const double *obs;            // (SP_OBS_DIM) the observation now: hand, gripper, object, goal
  double tcp[3];                // the end effector (tcp centre) now, metres
  const sp_env_model *scene;    // the scene, constant: geom names (masks of the task object), and
                                // for the oracle agents the model of a private env in which they
                                // replay the episode's reset
  const void *env_;             // the harness's env and renderers: sp_sense_view's and
  sp_sense_renderers *rend_;    //   sp_sense_camera's alone
} sp_agent_sense;

void sp_sense_bind(sp_agent_sense *s, const sp_env *e, int cam, const double *obs, sp_sense_renderers *rc);
void sp_sense_update(sp_agent_sense *s);  // the end effector after a step (obs is read in place)
/* the harness's env itself, read only: for the oracle agents' privileged replays alone */
const sp_env *sp_sense_env(const sp_agent_sense *s);
/* the camera view v of the state now as `sp collect` records frames (the crop window of v's
 * render at v->size x v->size, its shadow and multisampling settings): rgb (size x size x 3),
 * depth (metres) and seg (geom ids, -1 background), each NULL to skip. 0, or -1 with err. */
int sp_sense_view(const sp_agent_sense *s, const sp_collect_config *v, uint8_t *rgb, float *depth, int32_t *seg,
                  char *err);
/* the pinhole camera of that view: pixel = K (R p + t) */
void sp_sense_camera(const sp_agent_sense *s, const sp_collect_config *v, sp_camera_matrix *cm);

/* what `load` gets: the checkpoints (NULL: the agent's committed ones) and, for agents that
 * declare uses_vlm, a VLM (NULL: offline: the rule planner and the built-in validator) */
typedef struct {
  const char *checkpoint;
  const char *policy_checkpoint;  // agents with a video model and a policy: the policy
  const sp_vlm_config *vlm;
  double guidance;                // agents with a video model: classifier-free guidance w of their
                                  // videos (< 0: the agent's own default)
  int action_steps;               // agents with a policy: actions executed of each predicted chunk
                                  // (0: half the horizon, Diffusion Policy's n_action_steps)
  int goal_steps;                 // agents with a policy: steps on one goal frame before the matcher
                                  // moves on anyway (0: the matcher's default, 20)
  int episode_noise;              // agents with a policy: every chunk of a plan from one noise draw
                                  // (0: a new draw per chunk)
  sp_grasp grasp;                 // the expert agent: how it grasps (sim/env.h)
  double flow_check;              // the AVDC agents: the flow plan's occlusion test, px (0: off, AVDC's;
                                  // agent/flowplan.h)
} sp_agent_opts;

typedef struct {
  const char *name;
  const char *help;             // one line for `sp eval --help`
  const char *default_ckpt;     // checkpoint file name under checkpoints/ (NULL: takes none)
  const char *default_policy_ckpt;  // a second one, the policy, for agents with a video model too
  int needs_rgb;                // consumes the harness's camera frame each step
  /* the constant part (NULL with err on failure), checkpoints resolved by the harness */
  void *(*load)(const sp_agent_opts *o, char *err);
  void (*unload)(void *model);
  void *(*create)(const void *model, char *err);       // one worker's state over the loaded model
  void (*destroy)(void *state);
  int (*begin)(void *state, const sp_agent_sense *s, uint32_t seed, char *err);
  int (*act)(void *state, const sp_agent_sense *s, const uint8_t *rgb, int w, int h, double action[SP_ACT_DIM],
             sp_agent_timing *tm, char *err);
  void (*end)(void *state, sp_agent_events *ev);  // NULL: no events
  int replan_budget;            // reported in the results (0 for agents that never replan)
  int uses_vlm;                 // plans and validates with a VLM when one is given (--vlm)
  /* for the GIFs (NULL: none): the goal frame the agent acts towards now (side x side RGB, NULL
   * when it has none) and the text of its current plan table (NULL when none) */
  const uint8_t *(*goal)(void *state, int *side, const char **plan_text);
} sp_agent_api;

const sp_agent_api *sp_agent_find(const char *name);  // NULL if unknown
const char *sp_agent_names(void);                     // "expert, oracle-policy" for messages

/* the checkpoints ag loads: ckpt and pckpt when given, else its committed defaults (their paths
 * written to buf and pbuf, cap bytes each); a policy checkpoint for an agent that takes none is
 * refused. *ckpt_out / *pckpt_out are NULL for an agent without one. 0 or -1 with err. */
int sp_agent_checkpoints(const sp_agent_api *ag, const char *ckpt, const char *pckpt, char *buf, char *pbuf,
                         size_t cap, const char **ckpt_out, const char **pckpt_out, char *err);

/* the seed an agent's episode (task, camera, env seed) gets in `begin`: the same in sp eval and
 * sp collect --agent, so both record the same rollout */
uint32_t sp_agent_seed(int task, int cam, long seed);

/* an agent as the policy `sp collect --agent` records (data/collect.h): loads its model (opts as
 * for `load`); agents that read the harness's camera frame are refused. 0 or -1 with err;
 * sp_agent_collect_policy_free releases it. */
int sp_agent_collect_policy(const sp_agent_api *ag, const sp_agent_opts *o, sp_collect_policy *out, char *err);
void sp_agent_collect_policy_free(sp_collect_policy *p);

/* the file of a committed checkpoint: checkpoints/NAME under the working directory, else under
 * the directory above the sp binary's (build/sp -> checkpoints/). 0 with path set, or -1 with err
 * naming both places. */
int sp_checkpoint_default(const char *name, char *path, size_t cap, char *err);

#endif
