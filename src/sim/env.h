/* env.h: the 11 Meta-World v2 tasks on MuJoCo 2.2.2, with AVDC's seeding and success protocol.
 *
 * Model vs data (STYLE.md): sp_env_model is the compiled scene of one task (never modified after
 * load; share it between threads). sp_env is one rollout: its own copy of the mjModel (task resets
 * edit body_pos, as Meta-World does), the mjData, the seeded RNG and the step counter.
 *
 * Observation (39): hand(3) grip(1) obj(14) prev_frame(18) goal(3); see docs/environment.md.
 * Action (4): a[0:3] clipped to [-1,1], mocap += 0.01*a clipped to the hand bounds; a[3] gripper
 * effort (+1 closes). One step = 5 mj_step of 0.0025 s. */
#ifndef SP_SIM_ENV_H
#define SP_SIM_ENV_H

#include <mujoco/mujoco.h>
#include <stdint.h>

#include "core/rng.h"

#define SP_OBS_DIM 39
/* where each part of the observation starts (the layout above) */
#define SP_OBS_HAND 0   // hand (tcp) xyz
#define SP_OBS_GRIP 3   // gripper opening
#define SP_OBS_OBJ 4    // first object's xyz (then its quaternion, then the second object's 7)
#define SP_OBS_PREV 18  // the previous frame's first 18 numbers
#define SP_OBS_GOAL 36  // goal xyz
#define SP_ACT_DIM 4
#define SP_ACT_LIMIT 1.0  // every executed action element lies in [-1, 1] (xyz clipped here, gripper by ctrlrange)
#define SP_MAX_PATH 500  // AVDC: an episode succeeds iff it produced <= 500 frames
/* every scene's offscreen buffer is at least this large: the largest render a command accepts */
#define SP_RENDER_MAX_W 640
#define SP_RENDER_MAX_H 480

typedef enum {
  SP_TASK_DOOR_OPEN = 0,
  SP_TASK_DOOR_CLOSE,
  SP_TASK_BASKETBALL,
  SP_TASK_SHELF_PLACE,
  SP_TASK_BUTTON_PRESS,
  SP_TASK_BUTTON_PRESS_TOPDOWN,
  SP_TASK_FAUCET_CLOSE,
  SP_TASK_FAUCET_OPEN,
  SP_TASK_HANDLE_PRESS,
  SP_TASK_HAMMER,
  SP_TASK_ASSEMBLY,
  SP_NTASK
} sp_task;

typedef enum { SP_SCENES_BUILTIN = 0, SP_SCENES_METAWORLD } sp_scene_source;

const char *sp_task_name(int task);     // "door-open", ...
int sp_task_find(const char *name);     // -1 if unknown
const char *sp_task_scene_file(int task);  // top-level MJCF name, e.g. "sawyer_door_pull.xml"
const char *sp_scene_source_name(sp_scene_source s);

/* the benchmark cameras (corner, corner2, corner3) and the others every scene has */
#define SP_NCAMERA 6
const char *sp_camera_name(int cam);    // index in the scene's camera list
int sp_camera_find(const char *name);   // -1 if unknown

/* the compiled scene of one task: constant after load */
typedef struct {
  int task;
  sp_scene_source source;
  char assets_dir[1024];   // for SP_SCENES_METAWORLD
  mjModel *m0;             // compiled scene, never modified
  uint64_t scene_hash;     // hash of the scene files' bytes
  double hand_low[3], hand_high[3];
  int cam_id[SP_NCAMERA];  // MuJoCo camera ids, by sp camera index
  /* ids the task code uses (-1 when a task does not use them) */
  int body_hand, site_right_pad, site_left_pad, mocap_id;
  int qpos_obj, qvel_obj;  // free joint / task joint addresses (after the arm)
  int aux[8];              // task-specific ids (bodies, sites, joints), see env.c
} sp_env_model;

/* load a task's scene. source BUILTIN uses the scenes compiled into sp; METAWORLD reads
 * <assets_dir>/sawyer_xyz/<scene file>. Returns NULL with a one-line message in err. */
sp_env_model *sp_env_model_load(int task, sp_scene_source source, const char *assets_dir,
                                char *err);
void sp_env_model_free(sp_env_model *em);

/* one rollout */
typedef struct {
  const sp_env_model *em;
  mjModel *m;                 // per-rollout copy (task resets edit body_pos)
  mjData *d;
  sp_mt19937 rng;             // NumPy-compatible, seeded by the episode seed
  long seed;
  int t;                      // env steps since reset
  double hand_init[3];        // AVDC's noisy hand start (may lie outside the bounds)
  double rand_vec[6];         // task reset vector (rand_vec_len values used)
  int rand_vec_len;
  double target[3];           // _target_pos = obs[36:39]
  double obj_init[3];         // object position at reset (task's obj_init_pos)
  double prev_obs[18];        // previous frame's first 18 numbers (Meta-World's _prev_obs)
  double obs[SP_OBS_DIM];     // last observation
  int success;                // success of the last step (the task's info['success'])
  int nan_count;              // steps whose state became non-finite (state is then reset)
  int warn_count;             // MuJoCo warnings raised during the episode
} sp_env;

sp_env *sp_env_create(const sp_env_model *em, char *err);
void sp_env_free(sp_env *e);

/* AVDC's construct-then-reset for a seed: hand noise and the task's random vector from
 * MT19937(seed), two resets with the same vector. Writes the reset observation. */
void sp_env_reset(sp_env *e, long seed, double obs[SP_OBS_DIM]);

/* dst takes src's state (the per-rollout model edits, mjData, seed, step count, target, previous
 * observation, ...): stepped alike, the two give the same observations. Both of the same scene
 * (dst made by sp_env_create on src's model). The oracle agents replay the expert from there. */
void sp_env_copy_state(sp_env *dst, const sp_env *src);

/* one env step; returns the task's success flag for the new state */
int sp_env_step(sp_env *e, const double action[SP_ACT_DIM], double obs[SP_OBS_DIM]);

/* the task's success test on an observation of this rollout (uses the rollout's target and,
 * for hammer and assembly, its current state) */
int sp_env_evaluate(const sp_env *e, const double obs[SP_OBS_DIM]);

/* AVDC's episode rule, the one place it is written (sp eval and sp collect both run it): a frame
 * at reset and one after every step; after the first successful step the episode goes on until
 * SP_EPISODE_TAIL successful steps or the first later failure, whose frame is not kept; it
 * succeeds iff it produced at most SP_MAX_PATH frames. */
#define SP_EPISODE_TAIL 10
typedef struct {
  int frames;  // frames so far (1 after reset)
  int tail;    // successful steps still to run (SP_EPISODE_TAIL until the first success)
} sp_episode_rule;

void sp_episode_rule_init(sp_episode_rule *r);
/* may another step run? (a failure is certain past SP_MAX_PATH frames: AVDC would go on to its
 * step-502 error); max_steps > 0 caps the steps */
int sp_episode_rule_more(const sp_episode_rule *r, int max_steps);
/* after a step with the task's success flag: 1 when its frame belongs to the episode (counted
 * here: record it), 0 when the episode ended without it */
int sp_episode_rule_step(sp_episode_rule *r, int success);
/* the tail is run: stop after recording the frame */
int sp_episode_rule_over(const sp_episode_rule *r);
int sp_episode_rule_success(const sp_episode_rule *r);

/* tcp_center: midpoint of the two finger pads */
void sp_env_tcp(const sp_env *e, double tcp[3]);

/* how the experts of the grasping tasks (basketball, shelf-place, hammer, assembly) grasp.
 * METAWORLD: Meta-World's scripts: the grip closes while the hand still descends (10-15 cm above
 * the object), a race the full-speed expert wins and a slower learned policy imitating it loses
 * (docs/agents.md). LATE: the grip closes only within 5-7 cm of the object, at the end of the
 * descent, and the hand holds still until the fingers have settled, then lifts. The other tasks
 * are the same under both. */
typedef enum { SP_GRASP_METAWORLD = 0, SP_GRASP_LATE = 1 } sp_grasp;
const char *sp_grasp_name(sp_grasp g);          // "metaworld", "late"
int sp_grasp_parse(const char *s, sp_grasp *g);  // 0, or -1 for an unknown name

/* scripted expert (Meta-World's Sawyer<Task>V2Policy with AVDC's changes): obs -> action */
void sp_expert_act(int task, sp_grasp grasp, const double obs[SP_OBS_DIM], double action[SP_ACT_DIM]);

#endif
