/* expert.c: the scripted experts (Meta-World's Sawyer<Task>V2Policy, with AVDC's assembly grip),
 * and a late-grasp variant of the four grasping tasks (env.h).
 *
 * Each maps the observation to a target for the hand and a grip effort; the action is
 * p * (target - hand) followed by the grip (policies do not clip; the env does). */
#include <math.h>
#include <string.h>

#include "sim/env.h"

static double xy_dist(const double *a, const double *b) {
  return hypot(a[0] - b[0], a[1] - b[1]);
}

static void set3(double *o, double x, double y, double z) { o[0] = x; o[1] = y; o[2] = z; }

const char *sp_grasp_name(sp_grasp g) { return g == SP_GRASP_LATE ? "late" : "metaworld"; }

int sp_grasp_parse(const char *s, sp_grasp *g) {
  if (!s) return -1;
  if (!strcmp(s, "metaworld")) *g = SP_GRASP_METAWORLD;
  else if (!strcmp(s, "late")) *g = SP_GRASP_LATE;
  else return -1;
  return 0;
}

void sp_expert_act(int task, sp_grasp grasp, const double obs[SP_OBS_DIM], double action[SP_ACT_DIM]) {
  const double *hand = obs + SP_OBS_HAND, *obj = obs + SP_OBS_OBJ, *goal = obs + SP_OBS_GOAL;
  double to[3], grip = 0, p = 25;
  const double g = obs[SP_OBS_GRIP], gp = obs[SP_OBS_PREV + SP_OBS_GRIP];
  /* late grasp: the grip closes only within a few cm of the object, and the hand holds still
   * while the fingers close (open, or still moving by more than 0.005 a step) */
  const int late = grasp == SP_GRASP_LATE;
  const int settling = late && (g > 0.95 || fabs(g - gp) > 0.005);
  switch (task) {
    case SP_TASK_DOOR_OPEN: {
      double dd[3] = {obj[0] - 0.05, obj[1], obj[2]};
      if (xy_dist(hand, dd) > 0.12) set3(to, dd[0] + 0.06, dd[1] + 0.02, dd[2] + 0.2);
      else if (fabs(hand[2] - dd[2]) > 0.04) set3(to, dd[0] + 0.06, dd[1] + 0.02, dd[2]);
      else memcpy(to, dd, sizeof dd);
      grip = 1;
      break;
    }
    case SP_TASK_DOOR_CLOSE:
      memcpy(to, goal, sizeof to);
      grip = 1;
      break;
    case SP_TASK_BASKETBALL: {
      double b[3] = {obj[0], obj[1], obj[2] + 0.01};
      double hoop[3] = {goal[0], 0.875, 0.35};
      if (xy_dist(hand, b) > 0.04) set3(to, b[0], b[1], b[2] + 0.3);
      else if (fabs(hand[2] - b[2]) > 0.025) memcpy(to, b, sizeof b);
      else if (settling) memcpy(to, hand, sizeof to);
      else if (fabs(b[2] - 0.35) > 0.025) set3(to, hand[0], hand[1], 0.35);
      else memcpy(to, hoop, sizeof hoop);
      grip = (xy_dist(hand, obj) > 0.04 || fabs(hand[2] - obj[2]) > (late ? 0.05 : 0.15)) ? -1.0 : 0.6;
      break;
    }
    case SP_TASK_SHELF_PLACE: {
      double b[3] = {obj[0] - 0.005, obj[1], obj[2] + 0.015};
      double sx = goal[0];
      if (xy_dist(hand, b) > 0.04) set3(to, b[0], b[1], b[2] + 0.3);
      else if (fabs(hand[2] - b[2]) > 0.04) memcpy(to, b, sizeof b);
      else if (settling) memcpy(to, hand, sizeof to);
      else if (fabs(hand[0] - sx) > 0.02) set3(to, sx, hand[1], 0.3);
      else if (hand[2] < 0.30) set3(to, hand[0], hand[1], hand[2] + 0.3);
      else set3(to, hand[0], hand[1] + 0.05, hand[2]);
      grip = (xy_dist(hand, obj) > 0.04 || fabs(hand[2] - obj[2]) > (late ? 0.07 : 0.15)) ? -1.0 : 0.7;
      break;
    }
    case SP_TASK_BUTTON_PRESS: {
      double b[3] = {obj[0], obj[1], obj[2] - 0.07};
      /* numpy isclose(hand, b, atol=0.02): |a - b| <= atol + rtol * |b| */
      int cx = fabs(hand[0] - b[0]) <= 0.02 + 1e-5 * fabs(b[0]);
      int cz = fabs(hand[2] - b[2]) <= 0.02 + 1e-5 * fabs(b[2]);
      if (!(cx && cz)) set3(to, b[0], hand[1] - 0.1, b[2]);
      else set3(to, b[0], b[1] + 0.02, b[2]);
      grip = 0;
      break;
    }
    case SP_TASK_BUTTON_PRESS_TOPDOWN:
      if (xy_dist(hand, obj) > 0.04) set3(to, obj[0], obj[1], obj[2] + 0.1);
      else memcpy(to, obj, sizeof to);
      grip = 1;
      break;
    case SP_TASK_FAUCET_OPEN:
    case SP_TASK_FAUCET_CLOSE: {
      int open = task == SP_TASK_FAUCET_OPEN;
      double f[3] = {obj[0] + (open ? -0.04 : 0.04), obj[1], obj[2] + 0.03};
      if (xy_dist(hand, f) > 0.04) set3(to, f[0], f[1], f[2] + 0.1);
      else if (fabs(hand[2] - f[2]) > 0.04) memcpy(to, f, sizeof f);
      else set3(to, f[0] + (open ? 0.1 : -0.1), f[1] + 0.05, f[2]);
      grip = 1;
      break;
    }
    case SP_TASK_HANDLE_PRESS: {
      double b[3] = {obj[0], obj[1] - 0.02, obj[2]};
      if (xy_dist(hand, b) > 0.02) set3(to, b[0], b[1], b[2] + 0.2);
      else set3(to, b[0], b[1], b[2] - 0.5);
      grip = -1;
      break;
    }
    case SP_TASK_HAMMER: {
      double k[3] = {obj[0] - 0.04, obj[1], obj[2] - 0.01};
      const double G[3] = {0.05, 0.71, 0.16};
      if (xy_dist(hand, k) > 0.04) set3(to, k[0], k[1], k[2] + 0.1);
      else if (fabs(hand[2] - k[2]) > 0.05 && k[2] < 0.03) set3(to, k[0], k[1], k[2] + 0.03);
      else if (settling && k[2] < 0.03) memcpy(to, hand, sizeof to);
      else if (hypot(hand[0] - G[0], hand[2] - G[2]) > 0.02) set3(to, G[0], hand[1], G[2]);
      else memcpy(to, G, sizeof to);
      grip = (xy_dist(hand, k) > 0.04 || fabs(hand[2] - k[2]) > (late ? 0.06 : 0.1)) ? 0.0 : 0.8;
      p = 10;
      break;
    }
    case SP_TASK_ASSEMBLY: {
      double w[3] = {obj[0] - 0.02, obj[1], obj[2]};
      double P[3] = {goal[0] + 0.12, goal[1], goal[2] + 0.14};
      if (xy_dist(hand, w) > 0.02) set3(to, w[0], w[1], w[2] + 0.1);
      else if (xy_dist(hand, P) <= 0.02) set3(to, P[0], P[1], P[2] - 0.2);
      else if (fabs(hand[2] - w[2]) > 0.05) set3(to, w[0], w[1], w[2] + 0.03);
      else if (settling) memcpy(to, hand, sizeof to);
      else if (fabs(hand[2] - P[2]) > 0.04) set3(to, hand[0], hand[1], P[2]);
      else memcpy(to, P, sizeof to);
      grip = (xy_dist(hand, w) > 0.02 || fabs(hand[2] - w[2]) > (late ? 0.06 : 0.12)) ? 0.0 : 0.2;
      p = 10;
      break;
    }
    default:
      memcpy(to, hand, sizeof to);
      break;
  }
  for (int i = 0; i < 3; i++) action[i] = p * (to[i] - hand[i]);
  action[3] = grip;
}
