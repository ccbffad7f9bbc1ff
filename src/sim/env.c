/* env.c: loading a task's scene, AVDC's construct-then-reset, stepping, observations, success.
 *
 * Facts: ../shared/spec/metaworld-tasks.md. The per-task table is in task.c; the task-specific
 * parts (reset edits, object observation, success test) are the three switch statements below. */
#include "sim/env.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "sim/task.h"

static const char *g_cameras[SP_NCAMERA] = {"corner", "corner2", "corner3",
                                            "topview", "behindGripper", "gripperPOV"};

const char *sp_task_name(int task) {
  return task >= 0 && task < SP_NTASK ? sp_task_specs[task].name : "?";
}

int sp_task_find(const char *name) {
  for (int i = 0; i < SP_NTASK; i++)
    if (!strcmp(name, sp_task_specs[i].name)) return i;
  /* also accept Meta-World's env names, e.g. door-open-v2-goal-observable */
  for (int i = 0; i < SP_NTASK; i++) {
    size_t n = strlen(sp_task_specs[i].name);
    if (!strncmp(name, sp_task_specs[i].name, n) && !strncmp(name + n, "-v2", 3)) return i;
  }
  return -1;
}

const char *sp_task_scene_file(int task) { return sp_task_specs[task].scene; }

const char *sp_scene_source_name(sp_scene_source s) {
  return s == SP_SCENES_METAWORLD ? "metaworld" : "builtin";
}

const char *sp_camera_name(int cam) { return cam >= 0 && cam < SP_NCAMERA ? g_cameras[cam] : "?"; }

int sp_camera_find(const char *name) {
  for (int i = 0; i < SP_NCAMERA; i++)
    if (!strcmp(name, g_cameras[i])) return i;
  return -1;
}

/* ---- loading ---- */

/* task-specific ids in em->aux */
enum { AUX_A = 0, AUX_B, AUX_C, AUX_D, AUX_E, AUX_F };

extern const struct { const char *name; const char *text; size_t size; } sp_builtin_files[];
extern const int sp_builtin_nfiles;

static mjModel *load_builtin(const char *scene, char *err) {
  mjVFS *vfs = malloc(sizeof *vfs);
  if (!vfs) { sp_errf(err, "out of memory for the virtual file system"); return NULL; }
  mj_defaultVFS(vfs);
  int found = 0;
  for (int i = 0; i < sp_builtin_nfiles; i++) {
    const char *nm = sp_builtin_files[i].name;
    if (mj_makeEmptyFileVFS(vfs, nm, (int)sp_builtin_files[i].size) != 0) {
      mj_deleteVFS(vfs); free(vfs);
      sp_errf(err, "builtin scenes: cannot add %s to the virtual file system", nm);
      return NULL;
    }
    int k = mj_findFileVFS(vfs, nm);
    memcpy(vfs->filedata[k], sp_builtin_files[i].text, sp_builtin_files[i].size);
    if (!strcmp(nm, scene)) found = 1;
  }
  if (!found) {
    mj_deleteVFS(vfs); free(vfs);
    sp_errf(err, "builtin scene %s is not compiled into this sp (use --scenes metaworld --assets DIR)",
            scene);
    return NULL;
  }
  char merr[1000] = "";
  mjModel *m = mj_loadXML(scene, vfs, merr, sizeof merr);
  mj_deleteVFS(vfs);
  free(vfs);
  if (!m) sp_errf(err, "builtin scene %s: %s", scene, merr);
  return m;
}

static mjModel *load_metaworld(const char *dir, const char *scene, char *err) {
  char path[2048];
  if (!dir || !*dir) {
    sp_errf(err, "metaworld scenes need an assets directory (--assets DIR or SP_METAWORLD_ASSETS)");
    return NULL;
  }
  snprintf(path, sizeof path, "%s/sawyer_xyz/%s", dir, scene);
  if (!sp_file_exists(path)) {
    sp_errf(err, "%s: not found; --assets must name Meta-World's assets_v2 directory", path);
    return NULL;
  }
  char merr[1000] = "";
  mjModel *m = mj_loadXML(path, NULL, merr, sizeof merr);
  if (!m) sp_errf(err, "%s: %s", path, merr);
  return m;
}

static int need_id(const mjModel *m, int type, const char *name, const char *what, int *id,
                   char *err) {
  *id = mj_name2id(m, type, name);
  if (*id < 0) return sp_errf(err, "scene has no %s named '%s'", what, name);
  return 0;
}

static int bind_ids(sp_env_model *em, char *err) {
  const mjModel *m = em->m0;
  int *a = em->aux;
  for (int i = 0; i < 8; i++) a[i] = -1;
  if (need_id(m, mjOBJ_BODY, "hand", "body", &em->body_hand, err) ||
      need_id(m, mjOBJ_SITE, "rightEndEffector", "site", &em->site_right_pad, err) ||
      need_id(m, mjOBJ_SITE, "leftEndEffector", "site", &em->site_left_pad, err))
    return -1;
  int mocap_body;
  if (need_id(m, mjOBJ_BODY, "mocap", "body", &mocap_body, err)) return -1;
  em->mocap_id = m->body_mocapid[mocap_body];
  if (em->mocap_id < 0) return sp_errf(err, "body 'mocap' is not a mocap body");
  if (m->neq < 1 || m->eq_type[0] != mjEQ_WELD) return sp_errf(err, "scene has no mocap weld");
  if (m->nu != 2) return sp_errf(err, "scene must have the 2 gripper actuators, has %d", m->nu);
  for (int c = 0; c < SP_NCAMERA; c++) {
    em->cam_id[c] = mj_name2id(m, mjOBJ_CAMERA, g_cameras[c]);
    if (em->cam_id[c] < 0 && c < 3) return sp_errf(err, "scene has no camera '%s'", g_cameras[c]);
  }
  /* the task joint or free joint follows the arm (7) and fingers (2); basketball's ball is first */
  em->qpos_obj = em->task == SP_TASK_BASKETBALL ? 0 : 9;
  em->qvel_obj = em->qpos_obj;
  int rc = 0;
  switch (em->task) {
    case SP_TASK_DOOR_OPEN:
    case SP_TASK_DOOR_CLOSE:
      rc = need_id(m, mjOBJ_BODY, "door", "body", &a[AUX_A], err) ||
           need_id(m, mjOBJ_GEOM, "handle", "geom", &a[AUX_B], err) ||
           need_id(m, mjOBJ_SITE, "goal", "site", &a[AUX_C], err);
      break;
    case SP_TASK_BASKETBALL:
      rc = need_id(m, mjOBJ_BODY, "bsktball", "body", &a[AUX_A], err) ||
           need_id(m, mjOBJ_BODY, "basket_goal", "body", &a[AUX_B], err) ||
           need_id(m, mjOBJ_SITE, "goal", "site", &a[AUX_C], err);
      break;
    case SP_TASK_SHELF_PLACE:
      rc = need_id(m, mjOBJ_BODY, "obj", "body", &a[AUX_A], err) ||
           need_id(m, mjOBJ_GEOM, "objGeom", "geom", &a[AUX_B], err) ||
           need_id(m, mjOBJ_BODY, "shelf", "body", &a[AUX_C], err) ||
           need_id(m, mjOBJ_SITE, "goal", "site", &a[AUX_D], err);
      break;
    case SP_TASK_BUTTON_PRESS:
    case SP_TASK_BUTTON_PRESS_TOPDOWN:
      rc = need_id(m, mjOBJ_BODY, "box", "body", &a[AUX_A], err) ||
           need_id(m, mjOBJ_BODY, "button", "body", &a[AUX_B], err) ||
           need_id(m, mjOBJ_SITE, "hole", "site", &a[AUX_C], err);
      break;
    case SP_TASK_FAUCET_OPEN:
    case SP_TASK_FAUCET_CLOSE:
      rc = need_id(m, mjOBJ_BODY, "faucetBase", "body", &a[AUX_A], err) ||
           need_id(m, mjOBJ_SITE, em->task == SP_TASK_FAUCET_OPEN ? "handleStartOpen"
                                                                   : "handleStartClose",
                   "site", &a[AUX_B], err) ||
           need_id(m, mjOBJ_SITE, "goal_open", "site", &a[AUX_C], err) ||
           need_id(m, mjOBJ_SITE, "goal_close", "site", &a[AUX_D], err);
      break;
    case SP_TASK_HANDLE_PRESS:
      rc = need_id(m, mjOBJ_BODY, "box", "body", &a[AUX_A], err) ||
           need_id(m, mjOBJ_SITE, "handleStart", "site", &a[AUX_B], err) ||
           need_id(m, mjOBJ_SITE, "goalPress", "site", &a[AUX_C], err);
      break;
    case SP_TASK_HAMMER:
      rc = need_id(m, mjOBJ_BODY, "box", "body", &a[AUX_A], err) ||
           need_id(m, mjOBJ_BODY, "hammer", "body", &a[AUX_B], err) ||
           need_id(m, mjOBJ_BODY, "nail_link", "body", &a[AUX_C], err) ||
           need_id(m, mjOBJ_SITE, "goal", "site", &a[AUX_D], err) ||
           need_id(m, mjOBJ_JOINT, "NailSlideJoint", "joint", &a[AUX_E], err);
      if (!rc) a[AUX_E] = m->jnt_qposadr[a[AUX_E]];
      break;
    case SP_TASK_ASSEMBLY:
      rc = need_id(m, mjOBJ_BODY, "RoundNut", "body", &a[AUX_A], err) ||
           need_id(m, mjOBJ_SITE, "RoundNut-8", "site", &a[AUX_B], err) ||
           need_id(m, mjOBJ_SITE, "RoundNut", "site", &a[AUX_C], err) ||
           need_id(m, mjOBJ_BODY, "peg", "body", &a[AUX_D], err) ||
           need_id(m, mjOBJ_SITE, "pegTop", "site", &a[AUX_E], err);
      break;
  }
  if (rc) return -1;
  int need_q = em->task == SP_TASK_BASKETBALL ? 16 : em->qpos_obj + 1;
  if (m->nq < need_q) return sp_errf(err, "scene has %d qpos, task needs at least %d", m->nq, need_q);
  return 0;
}

/* hash of the compiled scene: sizes, kinematics, geometry, meshes, textures, cameras, timestep.
 * (mj_saveModel's bytes are not reproducible between loads, so the arrays are hashed one by one) */
static uint64_t scene_hash(const mjModel *m) {
  uint64_t h = 0;
#define H(ptr, n) h = sp_hash64(h, (ptr), sizeof *(ptr) * (size_t)(n))
  const int sizes[] = {m->nq, m->nv, m->nu, m->nbody, m->njnt, m->ngeom, m->nsite, m->ncam,
                       m->nmesh, m->nmeshvert, m->ntex, m->ntexdata, m->neq};
  H(sizes, sizeof sizes / sizeof sizes[0]);
  H(m->body_parentid, m->nbody); H(m->body_pos, 3 * m->nbody); H(m->body_quat, 4 * m->nbody);
  H(m->body_mass, m->nbody); H(m->body_inertia, 3 * m->nbody);
  H(m->jnt_type, m->njnt); H(m->jnt_pos, 3 * m->njnt); H(m->jnt_axis, 3 * m->njnt);
  H(m->jnt_range, 2 * m->njnt); H(m->dof_damping, m->nv); H(m->dof_armature, m->nv);
  H(m->geom_type, m->ngeom); H(m->geom_size, 3 * m->ngeom); H(m->geom_pos, 3 * m->ngeom);
  H(m->geom_quat, 4 * m->ngeom); H(m->geom_friction, 3 * m->ngeom); H(m->geom_rgba, 4 * m->ngeom);
  H(m->geom_contype, m->ngeom); H(m->geom_conaffinity, m->ngeom);
  H(m->site_pos, 3 * m->nsite); H(m->cam_pos, 3 * m->ncam); H(m->cam_quat, 4 * m->ncam);
  H(m->cam_fovy, m->ncam); H(m->mesh_vert, 3 * m->nmeshvert); H(m->tex_rgb, m->ntexdata);
  H(m->eq_data, mjNEQDATA * m->neq); H(m->actuator_gainprm, mjNGAIN * m->nu);
  H(&m->opt.timestep, 1);
#undef H
  return h;
}

sp_env_model *sp_env_model_load(int task, sp_scene_source source, const char *assets_dir,
                                char *err) {
  if (task < 0 || task >= SP_NTASK) {
    sp_errf(err, "unknown task id %d", task);
    return NULL;
  }
  sp_env_model *em = calloc(1, sizeof *em);
  if (!em) { sp_errf(err, "out of memory"); return NULL; }
  em->task = task;
  em->source = source;
  const sp_task_spec *ts = &sp_task_specs[task];
  if (source == SP_SCENES_METAWORLD) {
    snprintf(em->assets_dir, sizeof em->assets_dir, "%s", assets_dir ? assets_dir : "");
    em->m0 = load_metaworld(assets_dir, ts->scene, err);
  } else {
    em->m0 = load_builtin(ts->scene, err);
  }
  if (!em->m0) { free(em); return NULL; }
  if (bind_ids(em, err)) {
    char tmp[SP_ERRLEN];
    snprintf(tmp, sizeof tmp, "%s (%s scene %s)", err, sp_scene_source_name(source), ts->scene);
    snprintf(err, SP_ERRLEN, "%s", tmp);
    sp_env_model_free(em);
    return NULL;
  }
  /* the weld to a zero relative pose in the 2.2.2 eq_data layout, as mujoco-py v2 did */
  static const mjtNum weld[11] = {0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1};
  memcpy(em->m0->eq_data, weld, sizeof weld);
  /* offscreen: no multisampling (the platform notes: mean pixel change 1.2/255, 2x faster) */
  em->m0->vis.quality.offsamples = 0;
  if (em->m0->vis.global.offwidth < SP_RENDER_MAX_W) em->m0->vis.global.offwidth = SP_RENDER_MAX_W;
  if (em->m0->vis.global.offheight < SP_RENDER_MAX_H) em->m0->vis.global.offheight = SP_RENDER_MAX_H;
  memcpy(em->hand_low, ts->hand_low, sizeof em->hand_low);
  memcpy(em->hand_high, ts->hand_high, sizeof em->hand_high);
  em->scene_hash = scene_hash(em->m0);
  return em;
}

void sp_env_model_free(sp_env_model *em) {
  if (!em) return;
  if (em->m0) mj_deleteModel(em->m0);
  free(em);
}

/* ---- rollouts ---- */

sp_env *sp_env_create(const sp_env_model *em, char *err) {
  sp_env *e = calloc(1, sizeof *e);
  if (!e) { sp_errf(err, "out of memory"); return NULL; }
  e->em = em;
  e->m = mj_copyModel(NULL, em->m0);
  e->d = e->m ? mj_makeData(e->m) : NULL;
  if (!e->d) {
    sp_errf(err, "out of memory for a %s rollout", sp_task_name(em->task));
    sp_env_free(e);
    return NULL;
  }
  return e;
}

void sp_env_free(sp_env *e) {
  if (!e) return;
  if (e->d) mj_deleteData(e->d);
  if (e->m) mj_deleteModel(e->m);
  free(e);
}

void sp_env_copy_state(sp_env *dst, const sp_env *src) {
  SP_ASSERT(dst->em == src->em);
  mjModel *m = dst->m;
  mjData *d = dst->d;
  memcpy(m->body_pos, src->m->body_pos, sizeof(mjtNum) * 3 * m->nbody);  // what a reset edits
  memcpy(m->site_pos, src->m->site_pos, sizeof(mjtNum) * 3 * m->nsite);
  mj_copyData(d, m, src->d);
  *dst = *src;
  dst->m = m;
  dst->d = d;
}

void sp_env_tcp(const sp_env *e, double tcp[3]) {
  const mjtNum *r = e->d->site_xpos + 3 * e->em->site_right_pad;
  const mjtNum *l = e->d->site_xpos + 3 * e->em->site_left_pad;
  for (int i = 0; i < 3; i++) tcp[i] = 0.5 * (r[i] + l[i]);
}

static void quat_xyzw_of_mat(const mjtNum *mat, double out[4]) {
  mjtNum q[4];
  mju_mat2Quat(q, mat);
  out[0] = q[1]; out[1] = q[2]; out[2] = q[3]; out[3] = q[0];
}

/* the task's object observation: obs[4:18] (pos + quat, zero padded to 14) */
static void obs_objects(const sp_env *e, double o[14]) {
  const mjModel *m = e->m;
  const mjData *d = e->d;
  const int *a = e->em->aux;
  memset(o, 0, 14 * sizeof(double));
  switch (e->em->task) {
    case SP_TASK_DOOR_OPEN:
    case SP_TASK_DOOR_CLOSE:
      memcpy(o, d->geom_xpos + 3 * a[AUX_B], 3 * sizeof(double));
      quat_xyzw_of_mat(d->geom_xmat + 9 * a[AUX_B], o + 3);
      break;
    case SP_TASK_BASKETBALL:
      memcpy(o, d->xpos + 3 * a[AUX_A], 3 * sizeof(double));
      memcpy(o + 3, d->xquat + 4 * a[AUX_A], 4 * sizeof(double));
      break;
    case SP_TASK_SHELF_PLACE:
      memcpy(o, d->xpos + 3 * a[AUX_A], 3 * sizeof(double));
      quat_xyzw_of_mat(d->geom_xmat + 9 * a[AUX_B], o + 3);
      break;
    case SP_TASK_BUTTON_PRESS:
    case SP_TASK_BUTTON_PRESS_TOPDOWN: {
      const mjtNum *p = d->xpos + 3 * a[AUX_B];
      o[0] = p[0]; o[1] = p[1]; o[2] = p[2];
      if (e->em->task == SP_TASK_BUTTON_PRESS) o[1] += -0.193;
      else o[2] += 0.193;
      memcpy(o + 3, d->xquat + 4 * a[AUX_B], 4 * sizeof(double));
      break;
    }
    case SP_TASK_FAUCET_OPEN:
    case SP_TASK_FAUCET_CLOSE: {
      const mjtNum *p = d->site_xpos + 3 * a[AUX_B];
      o[0] = p[0]; o[1] = p[1]; o[2] = p[2] - 0.01;
      memcpy(o + 3, d->xquat + 4 * a[AUX_A], 4 * sizeof(double));
      break;
    }
    case SP_TASK_HANDLE_PRESS:
      memcpy(o, d->site_xpos + 3 * a[AUX_B], 3 * sizeof(double));
      break;
    case SP_TASK_HAMMER:
      memcpy(o, d->xpos + 3 * a[AUX_B], 3 * sizeof(double));
      memcpy(o + 3, d->xquat + 4 * a[AUX_B], 4 * sizeof(double));
      memcpy(o + 7, d->xpos + 3 * a[AUX_C], 3 * sizeof(double));
      memcpy(o + 10, d->xquat + 4 * a[AUX_C], 4 * sizeof(double));
      break;
    case SP_TASK_ASSEMBLY:
      memcpy(o, d->site_xpos + 3 * a[AUX_B], 3 * sizeof(double));
      memcpy(o + 3, d->xquat + 4 * a[AUX_A], 4 * sizeof(double));
      break;
  }
  (void)m;
}

/* Meta-World's _get_obs: current 18 numbers, the previous call's 18, the goal */
static void get_obs(sp_env *e, double obs[SP_OBS_DIM]) {
  double cur[18];
  const mjData *d = e->d;
  memcpy(cur, d->xpos + 3 * e->em->body_hand, 3 * sizeof(double));
  const mjtNum *r = d->site_xpos + 3 * e->em->site_right_pad;
  const mjtNum *l = d->site_xpos + 3 * e->em->site_left_pad;
  double dx = r[0] - l[0], dy = r[1] - l[1], dz = r[2] - l[2];
  double g = sqrt(dx * dx + dy * dy + dz * dz) / 0.1;
  cur[3] = g < 0 ? 0 : g > 1 ? 1 : g;
  obs_objects(e, cur + 4);
  memcpy(obs, cur, sizeof cur);
  memcpy(obs + SP_OBS_PREV, e->prev_obs, sizeof e->prev_obs);
  memcpy(obs + SP_OBS_GOAL, e->target, 3 * sizeof(double));
  memcpy(e->prev_obs, cur, sizeof cur);
  memcpy(e->obs, obs, SP_OBS_DIM * sizeof(double));
}

static int evaluate_success(const sp_env *e, const double *obs) {
  const double *o = obs + SP_OBS_OBJ, *t = e->target;
  double dx = o[0] - t[0], dy = o[1] - t[1], dz = o[2] - t[2];
  switch (e->em->task) {
    case SP_TASK_DOOR_OPEN: return fabs(dx) <= 0.08;
    case SP_TASK_DOOR_CLOSE: return sqrt(dx * dx + dy * dy + dz * dz) <= 0.08;
    case SP_TASK_BASKETBALL: {
      double z = o[2] - 0.3;
      return sqrt(dx * dx + dy * dy + 4 * z * z) <= 0.08;
    }
    case SP_TASK_SHELF_PLACE: return sqrt(dx * dx + dy * dy + dz * dz) <= 0.07;
    case SP_TASK_BUTTON_PRESS: return fabs(dy) <= 0.02;
    case SP_TASK_BUTTON_PRESS_TOPDOWN: return fabs(dz) <= 0.02;
    case SP_TASK_FAUCET_OPEN: {
      double x = dx - 0.04, z = dz + 0.03;
      return sqrt(x * x + dy * dy + z * z) <= 0.07;
    }
    case SP_TASK_FAUCET_CLOSE: return sqrt(dx * dx + dy * dy + dz * dz) <= 0.07;
    case SP_TASK_HANDLE_PRESS: return fabs(dz) <= 0.02;
    case SP_TASK_HAMMER: return e->d->qpos[e->em->aux[AUX_E]] > 0.09;
    case SP_TASK_ASSEMBLY: {
      const mjtNum *c = e->d->site_xpos + 3 * e->em->aux[AUX_C];
      double ax = t[0] - c[0], ay = t[1] - c[1];
      return sqrt(ax * ax + ay * ay) < 0.02 && t[2] - c[2] > 0;
    }
  }
  return 0;
}

int sp_env_evaluate(const sp_env *e, const double obs[SP_OBS_DIM]) {
  return evaluate_success(e, obs);
}

void sp_episode_rule_init(sp_episode_rule *r) {
  r->frames = 1;
  r->tail = SP_EPISODE_TAIL;
}

int sp_episode_rule_more(const sp_episode_rule *r, int max_steps) {
  return r->frames <= SP_MAX_PATH && (max_steps <= 0 || r->frames - 1 < max_steps);
}

int sp_episode_rule_step(sp_episode_rule *r, int success) {
  r->tail -= success != 0;
  if (r->tail != SP_EPISODE_TAIL && !success) return 0;
  r->frames++;
  return 1;
}

int sp_episode_rule_over(const sp_episode_rule *r) { return r->tail == 0; }

int sp_episode_rule_success(const sp_episode_rule *r) {
  return r->frames <= SP_MAX_PATH && r->tail < SP_EPISODE_TAIL;
}

/* overwrite the target sites' world positions (affects rendering only), as Meta-World's step */
static void set_target_sites(sp_env *e) {
  const sp_task_spec *ts = &sp_task_specs[e->em->task];
  if (ts->target_site) {
    int s = mj_name2id(e->m, mjOBJ_SITE, ts->target_site);
    if (s >= 0) memcpy(e->d->site_xpos + 3 * s, e->target, 3 * sizeof(double));
  }
  if (ts->target_site2) {
    int s = mj_name2id(e->m, mjOBJ_SITE, ts->target_site2);
    if (s >= 0) for (int i = 0; i < 3; i++) e->d->site_xpos[3 * s + i] = 10.0;
  }
}

static int state_finite(const mjData *d, const mjModel *m) {
  for (int i = 0; i < m->nq; i++) if (!isfinite(d->qpos[i])) return 0;
  for (int i = 0; i < m->nv; i++) if (!isfinite(d->qvel[i])) return 0;
  return 1;
}

static void do_simulation(sp_env *e, double a0, double a1) {
  e->d->ctrl[0] = a0;
  e->d->ctrl[1] = a1;
  for (int k = 0; k < 5; k++) mj_step(e->m, e->d);
}

static void set_obj_xyz(sp_env *e, const double p[3]) {
  int q = e->em->qpos_obj;
  if (e->em->task == SP_TASK_BASKETBALL) q = 9;  /* v2 bug kept for AVDC fidelity: arm joints */
  for (int i = 0; i < 3; i++) e->d->qpos[q + i] = p[i];
  for (int i = 0; i < 6 && q + i < e->m->nv; i++) e->d->qvel[q + i] = 0;
}

/* the task's reset_model edits for a given random vector */
static void reset_model(sp_env *e) {
  mjModel *m = e->m;
  mjData *d = e->d;
  const int *a = e->em->aux;
  const double *rv = e->rand_vec;
  switch (e->em->task) {
    case SP_TASK_DOOR_OPEN:
    case SP_TASK_DOOR_CLOSE: {
      int open = e->em->task == SP_TASK_DOOR_OPEN;
      memcpy(m->body_pos + 3 * a[AUX_A], rv, 3 * sizeof(double));
      e->target[0] = rv[0] + (open ? -0.3 : 0.2);
      e->target[1] = rv[1] + (open ? -0.45 : -0.2);
      e->target[2] = rv[2];
      memcpy(m->site_pos + 3 * a[AUX_C], e->target, 3 * sizeof(double));
      d->qpos[9] = open ? 0.0 : -1.5708;
      d->qvel[9] = 0;
      mj_forward(m, d);
      break;
    }
    case SP_TASK_BASKETBALL: {
      memcpy(m->body_pos + 3 * a[AUX_B], rv + 3, 3 * sizeof(double));
      double obj[3] = {rv[0], rv[1], 0.03};
      set_obj_xyz(e, obj);
      mj_forward(m, d);
      memcpy(e->target, d->site_xpos + 3 * a[AUX_C], 3 * sizeof(double));
      break;
    }
    case SP_TASK_SHELF_PLACE: {
      double shelf[3] = {rv[3], rv[4], rv[5] - 0.3};
      memcpy(m->body_pos + 3 * a[AUX_C], shelf, sizeof shelf);
      memcpy(e->target, rv + 3, 3 * sizeof(double));
      double obj[3] = {rv[0], rv[1], d->xpos[3 * a[AUX_A] + 2]};
      set_obj_xyz(e, obj);
      mj_forward(m, d);
      break;
    }
    case SP_TASK_BUTTON_PRESS:
    case SP_TASK_BUTTON_PRESS_TOPDOWN:
      memcpy(m->body_pos + 3 * a[AUX_A], rv, 3 * sizeof(double));
      if (e->em->task == SP_TASK_BUTTON_PRESS) { d->qpos[9] = 0; d->qvel[9] = 0; }
      mj_forward(m, d);
      memcpy(e->target, d->site_xpos + 3 * a[AUX_C], 3 * sizeof(double));
      break;
    case SP_TASK_FAUCET_OPEN:
    case SP_TASK_FAUCET_CLOSE: {
      int open = e->em->task == SP_TASK_FAUCET_OPEN;
      memcpy(m->body_pos + 3 * a[AUX_A], rv, 3 * sizeof(double));
      e->target[0] = rv[0] + (open ? 0.175 : -0.175);
      e->target[1] = rv[1];
      e->target[2] = rv[2] + 0.125;
      memcpy(m->site_pos + 3 * (open ? a[AUX_C] : a[AUX_D]), e->target, 3 * sizeof(double));
      for (int i = 0; i < 3; i++) m->site_pos[3 * (open ? a[AUX_D] : a[AUX_C]) + i] = 10.0;
      mj_forward(m, d);
      break;
    }
    case SP_TASK_HANDLE_PRESS:
      memcpy(m->body_pos + 3 * a[AUX_A], rv, 3 * sizeof(double));
      d->qpos[9] = -0.001;
      d->qvel[9] = 0;
      mj_forward(m, d);
      memcpy(e->target, d->site_xpos + 3 * a[AUX_C], 3 * sizeof(double));
      break;
    case SP_TASK_HAMMER: {
      static const double box[3] = {0.24, 0.85, 0.0};
      memcpy(m->body_pos + 3 * a[AUX_A], box, sizeof box);
      set_obj_xyz(e, rv);
      mj_forward(m, d);
      memcpy(e->target, d->site_xpos + 3 * a[AUX_D], 3 * sizeof(double));
      break;
    }
    case SP_TASK_ASSEMBLY: {
      memcpy(e->target, rv + 3, 3 * sizeof(double));
      set_obj_xyz(e, rv);
      double peg[3] = {rv[3], rv[4], rv[5] - 0.05};
      memcpy(m->body_pos + 3 * a[AUX_D], peg, sizeof peg);
      memcpy(m->site_pos + 3 * a[AUX_E], e->target, 3 * sizeof(double));
      mj_forward(m, d);
      break;
    }
  }
}

/* Meta-World's reset(): mj_resetData, _reset_hand (50 x 5 steps toward hand_init), reset_model */
static void reset_once(sp_env *e) {
  mjModel *m = e->m;
  mjData *d = e->d;
  mj_resetData(m, d);
  int mc = e->em->mocap_id;
  for (int k = 0; k < 50; k++) {
    memcpy(d->mocap_pos + 3 * mc, e->hand_init, 3 * sizeof(double));
    d->mocap_quat[4 * mc + 0] = 1; d->mocap_quat[4 * mc + 1] = 0;
    d->mocap_quat[4 * mc + 2] = 1; d->mocap_quat[4 * mc + 3] = 0;
    do_simulation(e, -1, 1);
  }
  reset_model(e);
  e->t = 0;
}

/* draw the task's random vector: U(low, high) per element with float32-rounded bounds */
static void draw_rand_vec(sp_env *e) {
  const sp_task_spec *ts = &sp_task_specs[e->em->task];
  for (;;) {
    for (int i = 0; i < ts->rv_len; i++)
      e->rand_vec[i] = sp_mt_uniform(&e->rng, (double)(float)ts->rv_lo[i], (double)(float)ts->rv_hi[i]);
    if (e->em->task == SP_TASK_BASKETBALL) {
      double dx = e->rand_vec[0] - e->rand_vec[3], dy = e->rand_vec[1] - e->rand_vec[4];
      if (sqrt(dx * dx + dy * dy) < 0.15) continue;
    }
    if (e->em->task == SP_TASK_SHELF_PLACE || e->em->task == SP_TASK_ASSEMBLY) {
      double dx = e->rand_vec[0] - e->rand_vec[3], dy = e->rand_vec[1] - e->rand_vec[4];
      if (sqrt(dx * dx + dy * dy) < 0.1) continue;
    }
    break;
  }
  e->rand_vec_len = ts->rv_len;
}

void sp_env_reset(sp_env *e, long seed, double obs[SP_OBS_DIM]) {
  const sp_task_spec *ts = &sp_task_specs[e->em->task];
  /* a freshly constructed env: the compiled body and site positions */
  memcpy(e->m->body_pos, e->em->m0->body_pos, sizeof(mjtNum) * 3 * e->m->nbody);
  memcpy(e->m->site_pos, e->em->m0->site_pos, sizeof(mjtNum) * 3 * e->m->nsite);
  e->seed = seed;
  e->nan_count = 0;
  e->warn_count = 0;
  sp_mt_seed(&e->rng, (uint32_t)seed);
  /* AVDC's __init__: hand noise (float32 base + float64 noise), then discarded draws */
  for (int i = 0; i < 3; i++)
    e->hand_init[i] = (double)(float)ts->hand_base[i] +
                      sp_mt_uniform(&e->rng, ts->noise_lo[i], ts->noise_hi[i]);
  for (int i = 0; i < ts->noise_extra; i++) sp_mt_double(&e->rng);
  /* construction: _prev_obs from the fresh state */
  mj_resetData(e->m, e->d);
  mj_forward(e->m, e->d);
  memset(e->target, 0, sizeof e->target);
  double tmp[SP_OBS_DIM];
  get_obs(e, tmp);
  /* the seeded construct-then-reset: one reset drawing rand_vec, then the benchmark's reset */
  draw_rand_vec(e);
  reset_once(e);
  get_obs(e, tmp);
  reset_once(e);
  get_obs(e, obs);
  memcpy(e->obj_init, obs + SP_OBS_OBJ, sizeof e->obj_init);
  e->success = 0;
}

int sp_env_step(sp_env *e, const double action[SP_ACT_DIM], double obs[SP_OBS_DIM]) {
  mjModel *m = e->m;
  mjData *d = e->d;
  const sp_env_model *em = e->em;
  double a[4];
  for (int i = 0; i < 4; i++) {
    double v = action[i];
    if (!isfinite(v)) { v = 0; e->nan_count++; }
    a[i] = v;
  }
  int mc = em->mocap_id;
  for (int i = 0; i < 3; i++) {
    double x = a[i] < -SP_ACT_LIMIT ? -SP_ACT_LIMIT : a[i] > SP_ACT_LIMIT ? SP_ACT_LIMIT : a[i];
    double p = d->mocap_pos[3 * mc + i] + 0.01 * x;
    d->mocap_pos[3 * mc + i] = p < em->hand_low[i] ? em->hand_low[i]
                               : p > em->hand_high[i] ? em->hand_high[i] : p;
  }
  d->mocap_quat[4 * mc + 0] = 1; d->mocap_quat[4 * mc + 1] = 0;
  d->mocap_quat[4 * mc + 2] = 1; d->mocap_quat[4 * mc + 3] = 0;
  int nwarn0 = 0;
  for (int w = 0; w < mjNWARNING; w++) nwarn0 += d->warning[w].number;
  do_simulation(e, a[3], -a[3]);
  int nwarn1 = 0;
  for (int w = 0; w < mjNWARNING; w++) nwarn1 += d->warning[w].number;
  e->warn_count += nwarn1 - nwarn0;
  if (!state_finite(d, m)) {
    /* count it and keep the rollout alive from a clean state, as MuJoCo itself does */
    e->nan_count++;
    mj_resetData(m, d);
    mj_forward(m, d);
  }
  e->t++;
  set_target_sites(e);
  get_obs(e, obs);
  e->success = evaluate_success(e, obs);
  return e->success;
}
