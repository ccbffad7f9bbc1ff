/* rule.c: the rule-based spatial planner (offline default for the VLM of the paper).
 *
 * Every task is one row of templates: a chain of waypoints that starts at the hand; each motion
 * step goes from the previous waypoint to its own, so its direction is the sign of that offset
 * (dead zone) and its distance the offset's length rounded to 0.01 m. Step 1 is always "move" from
 * the hand to the task object (obs[4:7]). Waypoints are the object, the goal (obs[36:39]) or the
 * goal plus a fixed world-frame offset that accounts for where the manipulated part sits on the
 * object (e.g. the hammer head 0.16 m along +x of the handle). The plans are conditioning hints
 * for the video model, not an executable policy (the scripted experts live in src/sim). */
#include <math.h>
#include <stddef.h>

#include "core/log.h"
#include "plan/plan.h"
#include "sim/env.h"

typedef enum { WP_NONE = 0, WP_OBJ, WP_GOAL } wp_base;

typedef struct {
  int action;     // sp_plan_action
  wp_base base;   // WP_NONE: no motion (grasp, release)
  double off[3];  // added to the base point, world frame, metres
} tpl_step;

#define TPL_MAX 6
typedef struct {
  int task;
  const char *describe;
  tpl_step step[TPL_MAX];  // terminated by action 0 with base WP_NONE (move never lacks a base)
} tpl;

/* one row per task, in sp_task order */
static const tpl g_tpl[] = {
    {SP_TASK_DOOR_OPEN, "move to the door handle, pull it to the goal",
     {{SP_PLAN_MOVE, WP_OBJ, {0}}, {SP_PLAN_PULL, WP_GOAL, {0}}}},
    {SP_TASK_DOOR_CLOSE, "move to the door handle, push it to the goal",
     {{SP_PLAN_MOVE, WP_OBJ, {0}}, {SP_PLAN_PUSH, WP_GOAL, {0}}}},
    /* paper figure: move, grasp, slide, release; the ball is released 0.1 m above the hoop */
    {SP_TASK_BASKETBALL, "move to the ball, grasp, slide it above the hoop, release",
     {{SP_PLAN_MOVE, WP_OBJ, {0}},
      {SP_PLAN_GRASP, WP_NONE, {0}},
      {SP_PLAN_SLIDE, WP_GOAL, {0, 0, 0.10}},
      {SP_PLAN_RELEASE, WP_NONE, {0}}}},
    /* paper figure: move, grasp, slide */
    {SP_TASK_SHELF_PLACE, "move to the block, grasp, slide it onto the shelf goal",
     {{SP_PLAN_MOVE, WP_OBJ, {0}}, {SP_PLAN_GRASP, WP_NONE, {0}}, {SP_PLAN_SLIDE, WP_GOAL, {0}}}},
    {SP_TASK_BUTTON_PRESS, "move to the button, push it in to the goal",
     {{SP_PLAN_MOVE, WP_OBJ, {0}}, {SP_PLAN_PUSH, WP_GOAL, {0}}}},
    {SP_TASK_BUTTON_PRESS_TOPDOWN, "move above onto the button, push it down to the goal",
     {{SP_PLAN_MOVE, WP_OBJ, {0}}, {SP_PLAN_PUSH, WP_GOAL, {0}}}},
    {SP_TASK_FAUCET_CLOSE, "move to the faucet handle, rotate it to the goal",
     {{SP_PLAN_MOVE, WP_OBJ, {0}}, {SP_PLAN_ROTATE, WP_GOAL, {0}}}},
    {SP_TASK_FAUCET_OPEN, "move to the faucet handle, rotate it to the goal",
     {{SP_PLAN_MOVE, WP_OBJ, {0}}, {SP_PLAN_ROTATE, WP_GOAL, {0}}}},
    {SP_TASK_HANDLE_PRESS, "move to the handle, push it down to the goal",
     {{SP_PLAN_MOVE, WP_OBJ, {0}}, {SP_PLAN_PUSH, WP_GOAL, {0}}}},
    /* the head is 0.16 m along +x of the hammer body; bring it 0.1 m in front of the nail
     * (-y), then strike along +y until it reaches the nail */
    {SP_TASK_HAMMER, "move to the hammer handle, grasp, slide the head before the nail, strike",
     {{SP_PLAN_MOVE, WP_OBJ, {0}},
      {SP_PLAN_GRASP, WP_NONE, {0}},
      {SP_PLAN_SLIDE, WP_GOAL, {-0.16, -0.10, 0}},
      {SP_PLAN_STRIKE, WP_GOAL, {-0.16, 0, 0}}}},
    /* obs[4:7] is the wrench handle (site RoundNut-8), 0.13 m along +x of the nut centre at the
     * reset orientation; bring the nut 0.1 m above the peg top, push it down 0.15 m, release */
    {SP_TASK_ASSEMBLY, "move to the wrench handle, grasp, slide the nut above the peg, push down, "
                       "release",
     {{SP_PLAN_MOVE, WP_OBJ, {0}},
      {SP_PLAN_GRASP, WP_NONE, {0}},
      {SP_PLAN_SLIDE, WP_GOAL, {0.13, 0, 0.10}},
      {SP_PLAN_PUSH, WP_GOAL, {0.13, 0, -0.05}},
      {SP_PLAN_RELEASE, WP_NONE, {0}}}},
};

_Static_assert(sizeof g_tpl / sizeof g_tpl[0] == SP_NTASK, "one rule template per task");

void sp_plan_rule_cfg_default(sp_plan_rule_cfg *c) { c->dead_zone = 0.01; }

int sp_plan_rule_ntask(void) { return (int)(sizeof g_tpl / sizeof g_tpl[0]); }

const char *sp_plan_rule_describe(int task) {
  return (task >= 0 && task < SP_NTASK) ? g_tpl[task].describe : "?";
}

void sp_plan_dir_of(const double off[3], double dead_zone, int dir[3]) {
  for (int i = 0; i < 3; i++) dir[i] = off[i] > dead_zone ? 1 : (off[i] < -dead_zone ? -1 : 0);
}

static int finite3(const double v[3]) {
  return isfinite(v[0]) && isfinite(v[1]) && isfinite(v[2]);
}

int sp_plan_rule(int task, const double hand[3], const double obj[3], const double goal[3],
                 const sp_plan_rule_cfg *cfg, sp_plan *out, char *err) {
  sp_plan_clear(out);
  if (task < 0 || task >= SP_NTASK) return sp_errf(err, "rule planner: unknown task %d", task);
  if (!finite3(hand) || !finite3(obj) || !finite3(goal))
    return sp_errf(err, "rule planner: non-finite position for task %d", task);
  sp_plan_rule_cfg def;
  if (!cfg) {
    sp_plan_rule_cfg_default(&def);
    cfg = &def;
  }
  const tpl *t = &g_tpl[task];
  SP_ASSERT(t->task == task);
  double at[3] = {hand[0], hand[1], hand[2]};
  for (int k = 0; k < TPL_MAX; k++) {
    const tpl_step *s = &t->step[k];
    if (s->action == SP_PLAN_MOVE && s->base == WP_NONE) break;  // end of the row
    int dir[3] = {0, 0, 0};
    double dist = 0.0;
    if (s->base != WP_NONE) {
      const double *b = s->base == WP_OBJ ? obj : goal;
      double to[3], off[3];
      for (int i = 0; i < 3; i++) {
        to[i] = b[i] + s->off[i];
        off[i] = to[i] - at[i];
        at[i] = to[i];
      }
      sp_plan_dir_of(off, cfg->dead_zone, dir);
      dist = sqrt(off[0] * off[0] + off[1] * off[1] + off[2] * off[2]);
    }
    char e2[SP_ERRLEN];
    int rc = sp_plan_push(out, s->action, dir, dist, e2);
    SP_ASSERT(rc == 0);  // templates hold at most SP_PLAN_MAX valid steps
  }
  return 0;
}
