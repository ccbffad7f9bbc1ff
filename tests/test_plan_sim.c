/* tests of the rule planner on the simulator: for every task and AVDC seeds 0-24, the plan of the
 * reset state starts with a move from the end-effector (obs[0:3]) towards the task object
 * (obs[4:7]): direction signs agree with the offset beyond the dead zone, and the distance is the
 * offset's length to 0.01 m. On the original Meta-World scenes (../shared/metaworld/assets_v2 or
 * SP_METAWORLD_ASSETS; skipped with a visible message where they are absent) and on sp's builtin
 * scenes. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skip_note.h"
#include "core/fileio.h"
#include "core/log.h"
#include "plan/plan.h"
#include "sim/env.h"

static const char *assets_dir(void) {
  const char *e = getenv("SP_METAWORLD_ASSETS");
  if (e && *e) return e;
  return "../shared/metaworld/assets_v2";
}

static int have_assets(void) {
  char p[2048];
  snprintf(p, sizeof p, "%s/sawyer_xyz/sawyer_door_pull.xml", assets_dir());
  return sp_file_exists(p);
}

/* one case per (task, scene source); Criterion runs them in parallel with -j2 */
typedef struct {
  int task;
  sp_scene_source source;
} sim_case;

ParameterizedTestParameters(plan_sim, first_step_points_to_object_seeds_0_24) {
  static sim_case cases[2 * SP_NTASK];
  for (int t = 0; t < SP_NTASK; t++) {
    cases[2 * t] = (sim_case){t, SP_SCENES_METAWORLD};
    cases[2 * t + 1] = (sim_case){t, SP_SCENES_BUILTIN};
  }
  return cr_make_param_array(sim_case, cases, 2 * SP_NTASK);
}

ParameterizedTest(sim_case *c, plan_sim, first_step_points_to_object_seeds_0_24, .timeout = 120) {
  const int t = c->task;
  if (c->source == SP_SCENES_METAWORLD && !have_assets()) {
    SP_SKIP_NOTE("Meta-World assets not found at %s (" SP_ASSETS_HINT ")",
                assets_dir());
    cr_skip_test("Meta-World assets absent");
  }
  const double dz = 0.01;
  sp_plan_rule_cfg cfg = {.dead_zone = dz};
  int checked = 0, nonzero_axes = 0;
  char err[SP_ERRLEN];
  sp_env_model *em = sp_env_model_load(t, c->source, assets_dir(), err);
  cr_assert(em, "load %s (%s): %s", sp_task_name(t), sp_scene_source_name(c->source), err);
  sp_env *e = sp_env_create(em, err);
  cr_assert(e, "%s", err);
  const char *src = sp_scene_source_name(c->source);
  for (int seed = 0; seed < 25; seed++) {
    double obs[SP_OBS_DIM];
    sp_env_reset(e, seed, obs);
    const double *hand = obs, *obj = obs + 4, *goal = obs + 36;
    sp_plan p;
    cr_assert_eq(sp_plan_rule(t, hand, obj, goal, &cfg, &p, err), 0, "%s", err);
    cr_assert(p.n >= 2, "%s/%s seed %d: %d steps", sp_task_name(t), src, seed, p.n);
    const sp_plan_step *s = &p.step[0];
    cr_expect_eq(s->action, SP_PLAN_MOVE, "%s/%s seed %d", sp_task_name(t), src, seed);
    double off[3], len2 = 0;
    for (int i = 0; i < 3; i++) {
      off[i] = obj[i] - hand[i];
      len2 += off[i] * off[i];
      if (fabs(off[i]) > dz) {
        nonzero_axes++;
        cr_expect_eq(s->dir[i], off[i] > 0 ? 1 : -1, "%s/%s seed %d axis %d: offset %.4f, dir %d",
                     sp_task_name(t), src, seed, i, off[i], s->dir[i]);
      } else {
        cr_expect_eq(s->dir[i], 0, "%s/%s seed %d axis %d: offset %.4f inside the dead zone",
                     sp_task_name(t), src, seed, i, off[i]);
      }
    }
    double len = sqrt(len2);
    cr_expect(fabs(s->dist - len) <= 0.005 + 1e-9, "%s/%s seed %d: distance %.2f vs offset %.4f",
              sp_task_name(t), src, seed, s->dist, len);
    cr_expect(len > 0.02, "%s/%s seed %d: the hand starts away from the object (%.4f m)",
              sp_task_name(t), src, seed, len);
    /* the goal in the observation is the task's target; the same state gives the same plan */
    for (int i = 0; i < 3; i++) cr_expect_eq(goal[i], e->target[i]);
    sp_plan q;
    double copy[SP_OBS_DIM];
    memcpy(copy, obs, sizeof copy);
    cr_assert_eq(sp_plan_rule(t, copy, copy + 4, copy + 36, &cfg, &q, err), 0);
    cr_expect(sp_plan_equal(&p, &q), "%s/%s seed %d: same state, same plan", sp_task_name(t), src,
              seed);
    checked++;
  }
  sp_env_free(e);
  sp_env_model_free(em);
  cr_expect_eq(checked, 25);
  cr_expect(nonzero_axes >= 25, "the signs were actually tested (%d axes)", nonzero_axes);
}

Test(plan_sim, task_names_match_the_simulator) {
  /* the planner's table is indexed by sp_task; each description names the object it moves to */
  cr_expect_eq(sp_plan_rule_ntask(), SP_NTASK);
  const char *want[SP_NTASK] = {"door handle", "door handle", "ball", "block", "button",
                                "button", "faucet", "faucet", "handle", "hammer", "wrench"};
  for (int t = 0; t < SP_NTASK; t++)
    cr_expect(strstr(sp_plan_rule_describe(t), want[t]) != NULL, "%s: %s", sp_task_name(t),
              sp_plan_rule_describe(t));
}
