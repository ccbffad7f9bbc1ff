/* tests of the built-in scenes (src/sim/scenes): every scene loads through sp_env_model_load,
 * has the names, joints, qpos layout, gripper, weld, options and cameras the task code relies
 * on, and is built from primitives only. Where the original Meta-World assets are present
 * (../shared/metaworld/assets_v2 or $SP_METAWORLD_ASSETS), the reset observations of seeds 0-24
 * (object position obs[4:7], goal obs[36:39]) must equal those of the Meta-World scenes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "sim/env.h"
#include "skip_note.h"

extern const struct { const char *name; const char *text; size_t size; } sp_builtin_files[];
extern const int sp_builtin_nfiles;

/* ---- helpers ---- */

static sp_env_model *load_builtin(int task) {
  char err[SP_ERRLEN] = "";
  sp_env_model *em = sp_env_model_load(task, SP_SCENES_BUILTIN, NULL, err);
  cr_assert(em, "built-in scene of %s does not load: %s", sp_task_name(task), err);
  return em;
}

static int expect_name(const mjModel *m, int type, const char *name, const char *task) {
  int id = mj_name2id(m, type, name);
  cr_expect(id >= 0, "%s: no %s named '%s'", task,
            type == mjOBJ_BODY    ? "body"
            : type == mjOBJ_JOINT ? "joint"
            : type == mjOBJ_SITE  ? "site"
            : type == mjOBJ_GEOM  ? "geom"
                                  : "camera",
            name);
  return id;
}

/* a joint by name: type, qpos address and range */
static void expect_joint(const mjModel *m, const char *task, const char *name, int type, int qadr,
                         double lo, double hi) {
  int j = expect_name(m, mjOBJ_JOINT, name, task);
  if (j < 0) return;
  cr_expect_eq(m->jnt_type[j], type, "%s: joint %s type %d, want %d", task, name, m->jnt_type[j],
               type);
  cr_expect_eq(m->jnt_qposadr[j], qadr, "%s: joint %s at qpos %d, want %d", task, name,
               m->jnt_qposadr[j], qadr);
  if (type == mjJNT_FREE) return;
  cr_expect(m->jnt_limited[j], "%s: joint %s is not limited", task, name);
  cr_expect(fabs(m->jnt_range[2 * j] - lo) < 1e-9 && fabs(m->jnt_range[2 * j + 1] - hi) < 1e-9,
            "%s: joint %s range [%g, %g], want [%g, %g]", task, name, m->jnt_range[2 * j],
            m->jnt_range[2 * j + 1], lo, hi);
}

/* the joint of a body (for the unnamed free joints and the handle-press slide) */
static void expect_body_joint(const mjModel *m, const char *task, const char *body, int type,
                              int qadr, double lo, double hi) {
  int b = expect_name(m, mjOBJ_BODY, body, task);
  if (b < 0) return;
  int j = -1;
  for (int i = 0; i < m->njnt && j < 0; i++)
    for (int p = m->jnt_bodyid[i]; p > 0; p = m->body_parentid[p])
      if (p == b) { j = i; break; }
  cr_expect(j >= 0, "%s: no joint under body %s", task, body);
  if (j < 0) return;
  cr_expect_eq(m->jnt_type[j], type, "%s: joint under %s type %d, want %d", task, body,
               m->jnt_type[j], type);
  cr_expect_eq(m->jnt_qposadr[j], qadr, "%s: joint under %s at qpos %d, want %d", task, body,
               m->jnt_qposadr[j], qadr);
  if (type != mjJNT_FREE)
    cr_expect(fabs(m->jnt_range[2 * j] - lo) < 1e-9 && fabs(m->jnt_range[2 * j + 1] - hi) < 1e-9,
              "%s: joint under %s range [%g, %g], want [%g, %g]", task, body, m->jnt_range[2 * j],
              m->jnt_range[2 * j + 1], lo, hi);
}

/* ---- what every scene shares ---- */

Test(scenes_builtin, robot_gripper_weld_and_options) {
  static const char *arm[7] = {"right_j0", "right_j1", "right_j2", "right_j3",
                               "right_j4", "right_j5", "right_j6"};
  static const double arm_lim[7] = {3.0503, 3.8, 3.0426, 3.0439, 2.9761, 2.9761, 4.7124};
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_model *em = load_builtin(t);
    const mjModel *m = em->m0;
    const char *tn = sp_task_name(t);
    int q0 = t == SP_TASK_BASKETBALL ? 7 : 0;  /* basketball: the ball's free joint comes first */
    for (int i = 0; i < 7; i++) {
      double lo = i == 1 ? -3.8 : -arm_lim[i], hi = i == 1 ? -0.5 : arm_lim[i];
      expect_joint(m, tn, arm[i], mjJNT_HINGE, q0 + i, lo, hi);
      int j = mj_name2id(m, mjOBJ_JOINT, arm[i]);
      if (j >= 0) cr_expect_eq(m->dof_damping[m->jnt_dofadr[j]], 10.0, "%s: %s damping", tn, arm[i]);
    }
    expect_joint(m, tn, "r_close", mjJNT_SLIDE, q0 + 7, 0.0, 0.04);
    expect_joint(m, tn, "l_close", mjJNT_SLIDE, q0 + 8, -0.03, 0.0);
    for (int k = 0; k < 2; k++) {
      int j = mj_name2id(m, mjOBJ_JOINT, k ? "l_close" : "r_close");
      if (j < 0) continue;
      cr_expect_eq(m->dof_armature[m->jnt_dofadr[j]], 100.0, "%s: finger armature", tn);
      cr_expect_eq(m->dof_damping[m->jnt_dofadr[j]], 1000.0, "%s: finger damping", tn);
    }
    const char *bodies[] = {"hand", "mocap", "rightclaw", "leftclaw", "rightpad", "leftpad",
                            "right_hand", "right_l6", 0};
    for (int i = 0; bodies[i]; i++) expect_name(m, mjOBJ_BODY, bodies[i], tn);
    const char *sites[] = {"rightEndEffector", "leftEndEffector", "endEffector", 0};
    for (int i = 0; sites[i]; i++) expect_name(m, mjOBJ_SITE, sites[i], tn);
    const char *geoms[] = {"rightpad_geom", "leftpad_geom", "rightclaw_it", "leftclaw_it", 0};
    for (int i = 0; geoms[i]; i++) expect_name(m, mjOBJ_GEOM, geoms[i], tn);
    int mb = mj_name2id(m, mjOBJ_BODY, "mocap");
    cr_expect(mb >= 0 && m->body_mocapid[mb] >= 0, "%s: body mocap is not a mocap body", tn);

    /* the gripper: two position actuators on the fingers, kp 400, ctrl in [-1, 1] */
    cr_expect_eq(m->nu, 2, "%s: %d actuators", tn, m->nu);
    for (int u = 0; u < m->nu && u < 2; u++) {
      int j = m->actuator_trnid[2 * u];
      const char *want = u ? "l_close" : "r_close";
      cr_expect_str_eq(mj_id2name(m, mjOBJ_JOINT, j), want, "%s: actuator %d", tn, u);
      cr_expect_eq(m->actuator_gainprm[mjNGAIN * u], 400.0, "%s: actuator %d kp", tn, u);
      cr_expect_eq(m->actuator_biasprm[mjNBIAS * u + 1], -400.0, "%s: actuator %d bias", tn, u);
      cr_expect(m->actuator_ctrllimited[u] && m->actuator_ctrlrange[2 * u] == -1 &&
                    m->actuator_ctrlrange[2 * u + 1] == 1,
                "%s: actuator %d ctrlrange", tn, u);
    }
    /* the mocap weld */
    cr_expect(m->neq == 1 && m->eq_type[0] == mjEQ_WELD, "%s: no single weld", tn);
    if (m->neq == 1) {
      cr_expect_eq(m->eq_obj1id[0], mb, "%s: weld body1", tn);
      cr_expect_eq(m->eq_obj2id[0], mj_name2id(m, mjOBJ_BODY, "hand"), "%s: weld body2", tn);
      cr_expect(m->eq_solref[0] == 0.02 && m->eq_solref[1] == 1, "%s: weld solref", tn);
    }
    /* physics options */
    cr_expect_eq(m->opt.timestep, 0.0025, "%s: timestep", tn);
    cr_expect_eq(m->opt.iterations, 50, "%s: iterations", tn);
    cr_expect_eq(m->opt.tolerance, 1e-10, "%s: tolerance", tn);
    cr_expect_eq(m->opt.solver, mjSOL_NEWTON, "%s: solver", tn);
    cr_expect_eq(m->opt.jacobian, mjJAC_DENSE, "%s: jacobian", tn);
    cr_expect_eq(m->opt.cone, mjCONE_ELLIPTIC, "%s: cone", tn);
    /* primitives only */
    cr_expect_eq(m->nmesh, 0, "%s: %d meshes", tn, m->nmesh);
    cr_expect_eq(m->nhfield, 0, "%s: height fields", tn);
    sp_env_model_free(em);
  }
}

/* Meta-World's camera table (metaworld-tasks.md section 1), compiled values in MuJoCo 2.2.2 */
Test(scenes_builtin, cameras_match_metaworld_table) {
  static const struct {
    const char *name;
    int mode;
    double pos[3], quat[4], fovy;
  } cams[6] = {
      {"topview", mjCAMLIGHT_FIXED, {0, 0.5, 1.5}, {1, 0, 0, 0}, 45},
      {"corner", mjCAMLIGHT_FIXED, {-1.1, -0.4, 0.6}, {0.3052, -0.2309, -0.5573, 0.7368}, 45},
      {"corner2", mjCAMLIGHT_FIXED, {1.3, -0.2, 1.1}, {-0.3950, 0.2627, -0.4349, 0.7654}, 60},
      {"corner3", mjCAMLIGHT_FIXED, {0.9, 0, 1.5}, {-0.4946, 0.1057, -0.2559, 0.8238}, 45},
      {"behindGripper", mjCAMLIGHT_TRACK, {0, 0, -0.5}, {0, 1, 0, 0}, 60},
      {"gripperPOV", mjCAMLIGHT_TRACK, {0, -0.1, 0}, {-0.6097, -0.7926, 0, 0}, 90},
  };
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_model *em = load_builtin(t);
    const mjModel *m = em->m0;
    cr_expect_eq(m->ncam, 6, "%s: %d cameras", sp_task_name(t), m->ncam);
    for (int c = 0; c < 6; c++) {
      int id = expect_name(m, mjOBJ_CAMERA, cams[c].name, sp_task_name(t));
      if (id < 0) continue;
      cr_expect_eq(id, c, "%s: camera %s has id %d, want %d", sp_task_name(t), cams[c].name, id, c);
      const char *body = mj_id2name(m, mjOBJ_BODY, m->cam_bodyid[id]);
      cr_expect_str_eq(body ? body : "world", c < 4 ? "world" : "hand", "%s: camera %s body",
                       sp_task_name(t), cams[c].name);
      cr_expect_eq(m->cam_mode[id], cams[c].mode, "%s: camera %s mode", sp_task_name(t),
                   cams[c].name);
      cr_expect_eq(m->cam_fovy[id], cams[c].fovy, "%s: camera %s fovy", sp_task_name(t),
                   cams[c].name);
      double dp = 0, dq = 0;
      for (int k = 0; k < 3; k++) dp += fabs(m->cam_pos[3 * id + k] - cams[c].pos[k]);
      for (int k = 0; k < 4; k++) dq += fabs(m->cam_quat[4 * id + k] - cams[c].quat[k]);
      cr_expect(dp < 1e-9, "%s: camera %s pos off by %g", sp_task_name(t), cams[c].name, dp);
      cr_expect(dq < 4e-4, "%s: camera %s quat off by %g", sp_task_name(t), cams[c].name, dq);
    }
    sp_env_model_free(em);
  }
}

/* the task objects: names, joints and qpos layout of each scene */
Test(scenes_builtin, task_objects) {
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_model *em = load_builtin(t);
    const mjModel *m = em->m0;
    const char *tn = sp_task_name(t);
    switch (t) {
      case SP_TASK_DOOR_OPEN:
      case SP_TASK_DOOR_CLOSE:
        expect_name(m, mjOBJ_BODY, "door", tn);
        expect_name(m, mjOBJ_BODY, "door_link", tn);
        expect_name(m, mjOBJ_GEOM, "handle", tn);
        expect_name(m, mjOBJ_SITE, "goal", tn);
        expect_joint(m, tn, "doorjoint", mjJNT_HINGE, 9, -2, 0);
        cr_expect_eq(m->nq, 10, "%s: nq %d", tn, m->nq);
        break;
      case SP_TASK_BASKETBALL:
        expect_body_joint(m, tn, "bsktball", mjJNT_FREE, 0, 0, 0);
        expect_name(m, mjOBJ_BODY, "basket_goal", tn);
        expect_name(m, mjOBJ_BODY, "hooplink", tn);
        expect_name(m, mjOBJ_GEOM, "objGeom", tn);
        expect_name(m, mjOBJ_SITE, "goal", tn);
        cr_expect_eq(m->nq, 16, "%s: nq %d", tn, m->nq);
        break;
      case SP_TASK_SHELF_PLACE: {
        expect_joint(m, tn, "objjoint", mjJNT_FREE, 9, 0, 0);
        expect_name(m, mjOBJ_BODY, "obj", tn);
        expect_name(m, mjOBJ_BODY, "shelf", tn);
        expect_name(m, mjOBJ_SITE, "goal", tn);
        int g = expect_name(m, mjOBJ_GEOM, "objGeom", tn);
        if (g >= 0) cr_expect_eq(m->geom_size[3 * g], 0.02, "%s: block half size", tn);
        int b = mj_name2id(m, mjOBJ_BODY, "obj");
        if (b >= 0) cr_expect_eq(m->body_mass[b], 0.01, "%s: block mass", tn);
        cr_expect_eq(m->nq, 16, "%s: nq %d", tn, m->nq);
        break;
      }
      case SP_TASK_BUTTON_PRESS:
      case SP_TASK_BUTTON_PRESS_TOPDOWN:
        expect_name(m, mjOBJ_BODY, "box", tn);
        expect_name(m, mjOBJ_BODY, "button", tn);
        expect_name(m, mjOBJ_SITE, "hole", tn);
        expect_name(m, mjOBJ_SITE, "buttonStart", tn);
        expect_joint(m, tn, "btnbox_joint", mjJNT_SLIDE, 9, -0.06, 0);
        cr_expect_eq(m->nq, 10, "%s: nq %d", tn, m->nq);
        break;
      case SP_TASK_FAUCET_OPEN:
      case SP_TASK_FAUCET_CLOSE:
        expect_name(m, mjOBJ_BODY, "faucetBase", tn);
        expect_name(m, mjOBJ_SITE, "handleStartOpen", tn);
        expect_name(m, mjOBJ_SITE, "handleStartClose", tn);
        expect_name(m, mjOBJ_SITE, "goal_open", tn);
        expect_name(m, mjOBJ_SITE, "goal_close", tn);
        expect_joint(m, tn, "knob_Joint_1", mjJNT_HINGE, 9, -1.57, 1.57);
        cr_expect_eq(m->nq, 10, "%s: nq %d", tn, m->nq);
        break;
      case SP_TASK_HANDLE_PRESS:
        expect_name(m, mjOBJ_BODY, "box", tn);
        expect_name(m, mjOBJ_SITE, "handleStart", tn);
        expect_name(m, mjOBJ_SITE, "goalPress", tn);
        expect_body_joint(m, tn, "handle_link", mjJNT_SLIDE, 9, -0.1, 0);
        cr_expect_eq(m->nq, 10, "%s: nq %d", tn, m->nq);
        break;
      case SP_TASK_HAMMER:
        expect_name(m, mjOBJ_BODY, "box", tn);
        expect_name(m, mjOBJ_BODY, "hammer", tn);
        expect_name(m, mjOBJ_BODY, "nail_link", tn);
        expect_name(m, mjOBJ_GEOM, "HammerHandle", tn);
        expect_name(m, mjOBJ_SITE, "goal", tn);
        expect_body_joint(m, tn, "hammerbody", mjJNT_FREE, 9, 0, 0);
        expect_joint(m, tn, "NailSlideJoint", mjJNT_SLIDE, 16, 0, 0.1);
        cr_expect_eq(m->nq, 17, "%s: nq %d", tn, m->nq);
        break;
      case SP_TASK_ASSEMBLY:
        expect_body_joint(m, tn, "RoundNut", mjJNT_FREE, 9, 0, 0);
        expect_name(m, mjOBJ_SITE, "RoundNut", tn);
        expect_name(m, mjOBJ_SITE, "RoundNut-8", tn);
        expect_name(m, mjOBJ_BODY, "peg", tn);
        expect_name(m, mjOBJ_SITE, "pegTop", tn);
        expect_name(m, mjOBJ_GEOM, "WrenchHandle", tn);
        cr_expect_eq(m->nq, 16, "%s: nq %d", tn, m->nq);
        break;
    }
    sp_env_model_free(em);
  }
}

/* the embedded files reference nothing outside themselves: no meshes, no image textures */
Test(scenes_builtin, embedded_files_are_self_contained) {
  cr_expect(sp_builtin_nfiles >= 9, "only %d embedded scene files", sp_builtin_nfiles);
  for (int t = 0; t < SP_NTASK; t++) {
    int found = 0;
    for (int i = 0; i < sp_builtin_nfiles; i++)
      if (!strcmp(sp_builtin_files[i].name, sp_task_scene_file(t))) found = 1;
    cr_expect(found, "%s: %s is not embedded", sp_task_name(t), sp_task_scene_file(t));
  }
  for (int i = 0; i < sp_builtin_nfiles; i++) {
    const char *s = sp_builtin_files[i].text, *nm = sp_builtin_files[i].name;
    cr_expect(strstr(s, "<mesh") == NULL, "%s uses a mesh", nm);
    cr_expect(strstr(s, "<hfield") == NULL, "%s uses a height field", nm);
    for (const char *p = strstr(s, "file="); p; p = strstr(p + 1, "file=")) {
      /* the only file references allowed are includes of other embedded files */
      const char *tag = p;
      while (tag > s && *tag != '<') tag--;
      cr_expect(strncmp(tag, "<include", 8) == 0, "%s: a file= outside <include>", nm);
      char inc[256] = "";
      sscanf(p, "file=\"%255[^\"]\"", inc);
      int ok = 0;
      for (int k = 0; k < sp_builtin_nfiles; k++)
        if (!strcmp(sp_builtin_files[k].name, inc)) ok = 1;
      cr_expect(ok, "%s includes '%s', which is not embedded", nm, inc);
    }
  }
}

/* the scripted experts solve every task on the built-in scenes (AVDC protocol: within 500
 * frames of the first success, 10 successful steps or a later failure), seeds 0-2; no assets
 * needed. The full figure (3 cameras x seeds 0-24) is in docs/scenes.md. */
Test(scenes_builtin, experts_succeed, .timeout = 60) {
  char err[SP_ERRLEN] = "";
  for (int t = 0; t < SP_NTASK; t++) {
    sp_env_model *em = load_builtin(t);
    sp_env *e = sp_env_create(em, err);
    cr_assert(e, "%s", err);
    for (long seed = 0; seed < 3; seed++) {
      double obs[SP_OBS_DIM], a[SP_ACT_DIM];
      sp_env_reset(e, seed, obs);
      int frames = 1, first = -1, run = 0;
      for (int k = 0; k < SP_MAX_PATH + 1; k++) {
        sp_expert_act(t, SP_GRASP_METAWORLD, obs, a);
        int s = sp_env_step(e, a, obs);
        frames++;
        if (first < 0 && s) first = k;
        if (first >= 0) {
          if (!s || ++run >= 10) break;
        }
      }
      cr_expect(first >= 0 && frames <= SP_MAX_PATH, "%s seed %ld: expert failed (%d frames)",
                sp_task_name(t), seed, frames);
      cr_expect_eq(e->nan_count, 0, "%s seed %ld: non-finite state", sp_task_name(t), seed);
    }
    sp_env_free(e);
    sp_env_model_free(em);
  }
}

/* sp_env_copy_state: an env that took another's state mid-episode (a fresh one, reset with
 * another seed first, so nothing it kept of its own can hide) steps to the same observations and
 * success flags; the expert's grasp and transport of hammer and assembly run across the copy */
Test(scenes_builtin, copied_state_steps_alike) {
  char err[SP_ERRLEN] = "";
  const int tasks[] = {SP_TASK_HAMMER, SP_TASK_ASSEMBLY, SP_TASK_DOOR_OPEN};
  for (int i = 0; i < 3; i++) {
    sp_env_model *em = load_builtin(tasks[i]);
    sp_env *a = sp_env_create(em, err), *b = sp_env_create(em, err);
    cr_assert(a && b, "%s", err);
    double oa[SP_OBS_DIM], ob[SP_OBS_DIM], act[SP_ACT_DIM];
    sp_env_reset(a, 4, oa);
    sp_env_reset(b, 9, ob);
    for (int k = 0; k < 40; k++) {
      sp_expert_act(tasks[i], SP_GRASP_METAWORLD, oa, act);
      sp_env_step(a, act, oa);
    }
    sp_env_copy_state(b, a);
    cr_expect(b->t == a->t && b->seed == 4 && !memcmp(b->obs, a->obs, sizeof oa), "%s: the copy differs",
              sp_task_name(tasks[i]));
    memcpy(ob, oa, sizeof ob);
    int same = 1, sa = 0, sb = 0;
    for (int k = 0; k < 80; k++) {
      sp_expert_act(tasks[i], SP_GRASP_METAWORLD, oa, act);
      sa += sp_env_step(a, act, oa);
      sp_expert_act(tasks[i], SP_GRASP_METAWORLD, ob, act);
      sb += sp_env_step(b, act, ob);
      same &= !memcmp(oa, ob, sizeof oa);
    }
    cr_expect(same && sa == sb, "%s: the copy stepped differently (successes %d vs %d)", sp_task_name(tasks[i]), sa, sb);
    sp_env_free(a);
    sp_env_free(b);
    sp_env_model_free(em);
  }
}

/* ---- same initial states as the Meta-World scenes ---- */

static const char *metaworld_dir(void) {
  const char *e = getenv("SP_METAWORLD_ASSETS");
  if (e && *e) return e;
  return "../shared/metaworld/assets_v2";
}

static int have_metaworld(void) {
  char p[1200];
  snprintf(p, sizeof p, "%s/sawyer_xyz/sawyer_door_pull.xml", metaworld_dir());
  return access(p, R_OK) == 0;
}

/* obs[4:7] and obs[36:39] after sp_env_reset(seed) for seeds 0..24 agree to 1e-6 m (the hand,
 * obs[0:4], as described below). Most are
 * kinematic; the basketball and assembly's nut settle under contact during the reset, which
 * the built-in scenes reproduce because they keep Meta-World's collision primitives. */
static void check_initial_states(int task) {
  if (!have_metaworld()) {
    cr_log_info("scenes_fidelity: %s not found; skipping the Meta-World comparison for %s "
                "(" SP_ASSETS_HINT ")", metaworld_dir(), sp_task_name(task));
    printf("SKIP scenes_fidelity/%s: no Meta-World assets at %s\n", sp_task_name(task),
           metaworld_dir());
    return;
  }
  char err[SP_ERRLEN] = "";
  sp_env_model *mb = sp_env_model_load(task, SP_SCENES_BUILTIN, NULL, err);
  cr_assert(mb, "built-in %s: %s", sp_task_name(task), err);
  sp_env_model *mm = sp_env_model_load(task, SP_SCENES_METAWORLD, metaworld_dir(), err);
  cr_assert(mm, "metaworld %s: %s", sp_task_name(task), err);
  sp_env *eb = sp_env_create(mb, err), *ew = sp_env_create(mm, err);
  cr_assert(eb && ew, "%s", err);
  const double tol_obj = 1e-6;
  double worst_obj = 0, worst_goal = 0, worst_hand = 0;
  int hand_exact = 0;
  for (long seed = 0; seed < 25; seed++) {
    double ob[SP_OBS_DIM], ow[SP_OBS_DIM];
    sp_env_reset(eb, seed, ob);
    sp_env_reset(ew, seed, ow);
    for (int k = 0; k < 3; k++) {
      double dobj = fabs(ob[4 + k] - ow[4 + k]), dgoal = fabs(ob[36 + k] - ow[36 + k]);
      if (dobj > worst_obj) worst_obj = dobj;
      if (dgoal > worst_goal) worst_goal = dgoal;
      cr_expect(dobj <= tol_obj, "%s seed %ld: obs[%d] built-in %.6f vs Meta-World %.6f",
                sp_task_name(task), seed, 4 + k, ob[4 + k], ow[4 + k]);
      cr_expect(dgoal <= 1e-6, "%s seed %ld: goal obs[%d] built-in %.6f vs Meta-World %.6f",
                sp_task_name(task), seed, 36 + k, ob[36 + k], ow[36 + k]);
    }
    /* the hand and the gripper opening: the arm is the same kinematic and inertial chain, so
     * they agree exactly unless AVDC's hand noise drives the gripper into an object during the
     * reset, where the gripper base's box proxies touch differently from Sawyer's mesh */
    double dh = 0;
    for (int k = 0; k < 4; k++) dh = fmax(dh, fabs(ob[k] - ow[k]));
    if (dh > worst_hand) worst_hand = dh;
    if (dh <= 1e-6) hand_exact++;
    cr_expect(dh <= 0.02, "%s seed %ld: hand (%.4f %.4f %.4f) vs Meta-World (%.4f %.4f %.4f)",
              sp_task_name(task), seed, ob[0], ob[1], ob[2], ow[0], ow[1], ow[2]);
    /* the hammer's second object (the nail) too */
    if (task == SP_TASK_HAMMER)
      for (int k = 11; k < 14; k++)
        cr_expect(fabs(ob[k] - ow[k]) <= 1e-6, "hammer seed %ld: nail obs[%d] %.6f vs %.6f", seed,
                  k, ob[k], ow[k]);
  }
  cr_expect(hand_exact >= 18, "%s: the reset hand matches Meta-World on only %d of 25 seeds",
            sp_task_name(task), hand_exact);
  cr_log_info("scenes_fidelity/%s: worst |obj| diff %.3g m, |goal| %.3g m, |hand| %.3g m "
              "(exact on %d/25 seeds)",
              sp_task_name(task), worst_obj, worst_goal, worst_hand, hand_exact);
  sp_env_free(eb);
  sp_env_free(ew);
  sp_env_model_free(mb);
  sp_env_model_free(mm);
}

#define FIDELITY_TEST(task_enum, test_name) \
  Test(scenes_fidelity, test_name) { check_initial_states(task_enum); }

FIDELITY_TEST(SP_TASK_DOOR_OPEN, door_open)
FIDELITY_TEST(SP_TASK_DOOR_CLOSE, door_close)
FIDELITY_TEST(SP_TASK_BASKETBALL, basketball)
FIDELITY_TEST(SP_TASK_SHELF_PLACE, shelf_place)
FIDELITY_TEST(SP_TASK_BUTTON_PRESS, button_press)
FIDELITY_TEST(SP_TASK_BUTTON_PRESS_TOPDOWN, button_press_topdown)
FIDELITY_TEST(SP_TASK_FAUCET_CLOSE, faucet_close)
FIDELITY_TEST(SP_TASK_FAUCET_OPEN, faucet_open)
FIDELITY_TEST(SP_TASK_HANDLE_PRESS, handle_press)
FIDELITY_TEST(SP_TASK_HAMMER, hammer)
FIDELITY_TEST(SP_TASK_ASSEMBLY, assembly)
