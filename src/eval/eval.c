/* eval.c: the evaluation runner: episode list, worker threads, AVDC's loop, resume and merge. */
#include "eval/eval.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "eval/eval_internal.h"
#include "nn/nn.h"
#include "sim/render.h"

#define SUCCESS_RULE                                                                          \
  "AVDC: after the first success step, run until 10 successful steps or the first later "     \
  "failure; success iff the episode produced <= 500 frames (1 at reset + 1 per step)"

void sp_eval_config_default(sp_eval_config *c) {
  memset(c, 0, sizeof *c);
  c->agent = "expert";
  c->width = 320;
  c->height = 240;
  c->jobs = 1;
  c->shard_n = 1;
  c->render_timeout = 120;
  c->guidance = -1;
}

int sp_eval_config_check(const sp_eval_config *c, char *err) {
  if (!sp_agent_find(c->agent))
    return sp_errf(err, "unknown agent '%s' (known: %s)", c->agent ? c->agent : "(none)", sp_agent_names());
  if (c->ntask < 1 || c->ntask > SP_NTASK) return sp_errf(err, "no tasks to evaluate (--tasks)");
  if (c->ncam < 1 || c->ncam > SP_NCAMERA) return sp_errf(err, "no cameras to evaluate (--cameras)");
  if (c->nseed < 1 || !c->seeds) return sp_errf(err, "no seeds to evaluate (--seeds)");
  if (c->jobs < 1 || c->jobs > 64) return sp_errf(err, "--jobs %d outside 1..64", c->jobs);
  if (c->shard_n < 1 || c->shard_i < 0 || c->shard_i >= c->shard_n)
    return sp_errf(err, "bad shard %d/%d (expected I/N with 0 <= I < N)", c->shard_i, c->shard_n);
  if (c->width < 1 || c->width > SP_RENDER_MAX_W || c->height < 1 || c->height > SP_RENDER_MAX_H)
    return sp_errf(err, "--width %d --height %d: the render size must lie within 1..%d x 1..%d",
                   c->width, c->height, SP_RENDER_MAX_W, SP_RENDER_MAX_H);
  if (!(c->render_timeout >= 1 && c->render_timeout <= 86400))
    return sp_errf(err, "--render-timeout %g outside 1..86400 seconds", c->render_timeout);
  if (!(c->guidance <= 100) || (c->guidance < 0 && c->guidance != -1))
    return sp_errf(err, "--guidance %g outside 0..100", c->guidance);
  if (c->action_steps < 0)  // the upper bound, the policy's horizon, is checked when it loads
    return sp_errf(err, "--action-steps %d is negative", c->action_steps);
  if (c->goal_steps < 0) return sp_errf(err, "--goal-steps %d is negative", c->goal_steps);
  if (!(c->flow_check >= 0 && c->flow_check <= 100))
    return sp_errf(err, "--flow-check %g outside 0..100 px", c->flow_check);
  if (!c->out_dir || !*c->out_dir) return sp_errf(err, "no output directory (--out DIR)");
  return 0;
}

int sp_parse_seeds(const char *spec, long **out, char *err) {
  *out = NULL;
  if (!spec || !*spec) return sp_errf(err, "empty seed list");
  long *v = NULL;
  int n = 0, cap = 0;
  const char *p = spec;
  while (*p) {
    char *end;
    errno = 0;
    long a = strtol(p, &end, 10), b;
    if (end == p || errno || a < 0 || a > 0xffffffffL) goto bad;
    p = end;
    b = a;
    if (*p == '-') {
      p++;
      b = strtol(p, &end, 10);
      if (end == p || errno || b < a || b > 0xffffffffL) goto bad;
      p = end;
    }
    if (b - a + 1 + n > SP_EVAL_MAX_SEEDS) {
      free(v);
      return sp_errf(err, "seed list '%s' is longer than %d", spec, SP_EVAL_MAX_SEEDS);
    }
    for (long s = a; s <= b; s++) {
      for (int i = 0; i < n; i++)
        if (v[i] == s) { free(v); return sp_errf(err, "seed %ld listed twice in '%s'", s, spec); }
      if (n == cap) { cap = cap ? 2 * cap : 64; v = realloc(v, sizeof *v * (size_t)cap); }
      v[n++] = s;
    }
    if (*p == ',') { p++; if (!*p) goto bad; continue; }
    if (*p) goto bad;
  }
  *out = v;
  return n;
bad:
  free(v);
  return sp_errf(err, "bad seed list '%s' (expected e.g. 0-24 or 0,3,5-9; seeds are 0..2^32-1)", spec);
}

/* ---- shared run state ---- */

typedef struct {
  int task, cam;
  long seed;
} job;

typedef struct {
  const sp_eval_config *cfg;
  const sp_agent_api *agent;
  sp_env_model *models[SP_NTASK];
  job *jobs;
  int njobs;
  atomic_int next;
  pthread_mutex_t io_lock;
  char jsonl_path[4096];
  sp_progress progress;
  char gl_name[256];
  atomic_int failed;           // a worker hit an error that stops the run
  char fail_msg[SP_ERRLEN];
  /* watchdog: per worker, the monotonic time a render started (0 when idle) */
  double *render_started;
  job *render_job;
  atomic_int done;
  char ckpt_hash[32];          // FNV-1a 64 of the checkpoint file, or "none"
  const char *ckpt;            // the checkpoint the agent loads: cfg's or the agent's default (NULL: none)
  char ckpt_path[4096];
  const char *pckpt;           // the policy checkpoint of agents that take one (NULL: none)
  char pckpt_path[4096];
  void *agent_model;           // the agent's constant part, loaded once, shared by the workers
} run_state;

typedef struct {
  run_state *rs;
  int id;
} worker_arg;

static void fail_run(run_state *rs, const char *msg) {
  pthread_mutex_lock(&rs->io_lock);
  if (!atomic_load(&rs->failed)) snprintf(rs->fail_msg, sizeof rs->fail_msg, "%s", msg);
  atomic_store(&rs->failed, 1);
  pthread_mutex_unlock(&rs->io_lock);
}

/* one episode with AVDC's loop. Returns 0, or -1 when the run must stop (err set). */
/* an agent's GIF: the camera frame with the agent's current goal frame beside it (scaled to the
 * frame's height, grey when it has none), and the log of its plan tables */
typedef struct {
  uint8_t *comp;      // (h x (w + h) x 3); NULL: the camera frame alone
  char *plans;        // "frame N:\n<plan table>\n" per new plan
  size_t plen;
  char last[SP_PLAN_TEXT_MAX];
} gif_side;

static void gif_side_free(gif_side *s) {
  free(s->comp);
  free(s->plans);
  memset(s, 0, sizeof *s);
}

static int gif_frame(sp_gif *gif, gif_side *s, const sp_agent_api *ag, void *state, const uint8_t *rgb, int w, int h,
                     int frame, char *err) {
  if (!s->comp) return sp_gif_add(gif, rgb, err);
  int side = 0;
  const char *plan = NULL;
  const uint8_t *goal = ag->goal(state, &side, &plan);
  const int W = w + h;
  for (int y = 0; y < h; y++) {
    memcpy(s->comp + (size_t)y * W * 3, rgb + (size_t)y * w * 3, (size_t)w * 3);
    uint8_t *row = s->comp + ((size_t)y * W + w) * 3;
    if (!goal || side < 1) { memset(row, 96, (size_t)h * 3); continue; }
    const uint8_t *src = goal + (size_t)(y * side / h) * side * 3;
    for (int x = 0; x < h; x++) memcpy(row + (size_t)x * 3, src + (size_t)(x * side / h) * 3, 3);
  }
  if (plan && strcmp(plan, s->last)) {
    snprintf(s->last, sizeof s->last, "%s", plan);
    size_t add = strlen(plan) + 32;
    char *p = realloc(s->plans, s->plen + add);
    if (!p) return sp_errf(err, "out of memory");
    s->plans = p;
    s->plen += (size_t)snprintf(p + s->plen, add, "frame %d:\n%s\n", frame, plan);
  }
  return sp_gif_add(gif, s->comp, err);
}

/* the GL renderer's name for results.json, from the first renderer any worker made */
static void note_gl_name(run_state *rs, const sp_renderer *r) {
  pthread_mutex_lock(&rs->io_lock);
  if (!rs->gl_name[0]) {
    snprintf(rs->gl_name, sizeof rs->gl_name, "%s", sp_renderer_gl_name(r));
    sp_log(SP_LOG_INFO, "rendering with %s", rs->gl_name);
  }
  pthread_mutex_unlock(&rs->io_lock);
}

static int run_episode(run_state *rs, int wid, sp_env *env, sp_renderer **rend, sp_sense_renderers *srend,
                       void *agent_state, const job *jb, sp_episode *ep, uint8_t *rgb, char *err) {
  const sp_eval_config *cfg = rs->cfg;
  const sp_agent_api *ag = rs->agent;
  memset(ep, 0, sizeof *ep);
  ep->task = jb->task;
  ep->cam = jb->cam;
  ep->seed = jb->seed;
  double t_start = sp_time_now(), t0;
  double obs[SP_OBS_DIM], act[SP_ACT_DIM];
  t0 = sp_time_now();
  sp_env_reset(env, jb->seed, obs);
  ep->time.physics += sp_time_now() - t0;
  memcpy(ep->hand_init, obs + SP_OBS_HAND, sizeof ep->hand_init);
  memcpy(ep->obj_init, obs + SP_OBS_OBJ, sizeof ep->obj_init);
  memcpy(ep->goal, obs + SP_OBS_GOAL, sizeof ep->goal);
  ep->rand_vec_len = env->rand_vec_len;
  memcpy(ep->rand_vec, env->rand_vec, sizeof ep->rand_vec);

  int want_gif = cfg->gif;
  if (want_gif && cfg->gif_seeds) {
    want_gif = 0;
    for (int i = 0; i < cfg->ngif_seed; i++) want_gif |= cfg->gif_seeds[i] == jb->seed;
  }
  int need_frames = want_gif || ag->needs_rgb;
  const int w = cfg->width, h = cfg->height;
  if (need_frames && !*rend) {
    *rend = sp_renderer_create(env->em, w, h, err);
    if (!*rend) return -1;
    sp_renderer_set_quality(*rend, cfg->render_fast ? SP_RENDER_FAST : SP_RENDER_FULL);
    note_gl_name(rs, *rend);
  }
  sp_gif *gif = NULL;
  char gif_path[4096];
  gif_side side = {0};
  if (want_gif) {
    snprintf(gif_path, sizeof gif_path, "%s/gifs/%s_%s_%ld.gif", cfg->out_dir,
             sp_task_name(jb->task), sp_camera_name(jb->cam), jb->seed);
    if (ag->goal && !(side.comp = malloc((size_t)(w + h) * h * 3))) return sp_errf(err, "out of memory");
    gif = sp_gif_open(gif_path, side.comp ? w + h : w, h, 4, err);
    if (!gif) { free(side.comp); return -1; }
  }
  uint32_t aseed = sp_agent_seed(jb->task, jb->cam, jb->seed);
  char aerr[SP_ERRLEN] = "";
  sp_agent_sense sense;  // what the agent reads of env
  sp_sense_bind(&sense, env, jb->cam, obs, srend);
  if (ag->begin(agent_state, &sense, aseed, aerr))
    snprintf(ep->error, sizeof ep->error, "agent: %s", aerr);

#define RENDER_FRAME()                                                                      \
  do {                                                                                      \
    if (need_frames) {                                                                      \
      t0 = sp_time_now();                                                                   \
      rs->render_job[wid] = *jb;                                                            \
      rs->render_started[wid] = t0;                                                         \
      int rrc = sp_render(*rend, env, jb->cam, w, h, rgb, NULL, NULL, err);                \
      rs->render_started[wid] = 0;                                                          \
      ep->time.render += sp_time_now() - t0;                                                \
      if (rrc) { if (gif) { char e2[SP_ERRLEN]; sp_gif_close(gif, e2); gif_side_free(&side); } return -1; } \
      if (gif && gif_frame(gif, &side, ag, agent_state, rgb, w, h, frames, err)) {           \
        char e2[SP_ERRLEN]; sp_gif_close(gif, e2); gif_side_free(&side); return -1;           \
      }                                                                                     \
    }                                                                                       \
  } while (0)

  int frames = 0;  // the frame being rendered (the GIF's index)
  RENDER_FRAME();
  sp_episode_rule rule;
  sp_episode_rule_init(&rule);
  int steps = 0;
  while (!ep->error[0] && sp_episode_rule_more(&rule, 0)) {
    sp_agent_timing tm = {0};
    t0 = sp_time_now();
    sp_sense_update(&sense);
    if (ag->act(agent_state, &sense, need_frames ? rgb : NULL, w, h, act, &tm, aerr)) {
      snprintf(ep->error, sizeof ep->error, "agent: %s", aerr);
      break;
    }
    double t_act = sp_time_now() - t0;
    double accounted = tm.planning + tm.video + tm.policy + tm.matching + tm.render;
    ep->time.planning += tm.planning; ep->time.video += tm.video; ep->time.policy += tm.policy;
    ep->time.matching += tm.matching; ep->time.render += tm.render;
    ep->time.policy += t_act > accounted ? t_act - accounted : 0;
    t0 = sp_time_now();
    int done = sp_env_step(env, act, obs);
    ep->time.physics += sp_time_now() - t0;
    steps++;
    if (!sp_episode_rule_step(&rule, done)) break;
    frames = rule.frames - 1;
    RENDER_FRAME();
    if (sp_episode_rule_over(&rule)) break;
  }
#undef RENDER_FRAME
  if (ag->end) ag->end(agent_state, &ep->events);
  if (srend->n) note_gl_name(rs, srend->r[0]);  // agents that render their own views
  ep->steps = steps;
  ep->frames = rule.frames;
  ep->success = !ep->error[0] && sp_episode_rule_success(&rule);
  ep->nan_count = env->nan_count;
  ep->warn_count = env->warn_count;
  if (gif) {
    int grc = sp_gif_close(gif, err);
    if (!grc && side.plans) {  // the plan tables the GIF's agent made, at the frames they began
      char pp[4200];
      snprintf(pp, sizeof pp, "%.*s.plans.txt", (int)(strlen(gif_path) - 4), gif_path);
      grc = sp_file_write_atomic(pp, side.plans, side.plen, err);
    }
    gif_side_free(&side);
    if (grc) return -1;
  }
  ep->time.total = sp_time_now() - t_start;
  double acc = ep->time.physics + ep->time.render + ep->time.planning + ep->time.video +
               ep->time.policy + ep->time.matching;
  ep->time.other = ep->time.total > acc ? ep->time.total - acc : 0;
  return 0;
}

static void *worker_main(void *p) {
  worker_arg *wa = p;
  run_state *rs = wa->rs;
  const sp_eval_config *cfg = rs->cfg;
  char err[SP_ERRLEN] = "";
  sp_env *envs[SP_NTASK] = {0};
  sp_renderer *rends[SP_NTASK] = {0};
  sp_sense_renderers srend = {0};  // the views the agent asks for
  uint8_t *rgb = malloc((size_t)cfg->width * cfg->height * 3);
  void *ast = rs->agent->create(rs->agent_model, err);
  if (!ast || !rgb) {
    fail_run(rs, ast ? "out of memory" : err);
    free(rgb);
    return NULL;
  }
  for (;;) {
    if (atomic_load(&rs->failed)) break;
    int k = atomic_fetch_add(&rs->next, 1);
    if (k >= rs->njobs) break;
    const job *jb = &rs->jobs[k];
    if (!envs[jb->task]) {
      envs[jb->task] = sp_env_create(rs->models[jb->task], err);
      if (!envs[jb->task]) { fail_run(rs, err); break; }
    }
    sp_episode ep;
    if (run_episode(rs, wa->id, envs[jb->task], &rends[jb->task], &srend, ast, jb, &ep, rgb, err)) {
      char msg[SP_ERRLEN];
      snprintf(msg, sizeof msg, "%s %s seed %ld: %s", sp_task_name(jb->task),
               sp_camera_name(jb->cam), jb->seed, err);
      fail_run(rs, msg);
      break;
    }
    char *line = sp_episode_to_json(&ep, rs->agent->name, rs->models[jb->task], rs->ckpt_hash);
    size_t ll = strlen(line);
    line = realloc(line, ll + 2);
    line[ll] = '\n'; line[ll + 1] = 0;
    pthread_mutex_lock(&rs->io_lock);
    int rc = sp_file_append(rs->jsonl_path, line, ll + 1, err);
    pthread_mutex_unlock(&rs->io_lock);
    free(line);
    if (rc) { fail_run(rs, err); break; }
    sp_progress_add(&rs->progress, 1);
  }
  for (int t = 0; t < SP_NTASK; t++) {
    sp_renderer_free(rends[t]);
    sp_env_free(envs[t]);
  }
  sp_sense_renderers_free(&srend);
  rs->agent->destroy(ast);
  free(rgb);
  return NULL;
}

/* the watchdog: a render stuck past the timeout ends the run with a clear message (the
 * finished records stay; --resume continues). GL calls cannot be cancelled safely. */
static void *watchdog_main(void *p) {
  run_state *rs = p;
  while (!atomic_load(&rs->done)) {
    usleep(200000);
    double now = sp_time_now();
    for (int i = 0; i < rs->cfg->jobs; i++) {
      double st = rs->render_started[i];
      if (st > 0 && now - st > rs->cfg->render_timeout) {
        const job *jb = &rs->render_job[i];
        sp_log(SP_LOG_ERROR, "render of %s %s seed %ld stuck for %.0f s (renderer %s); stopping. "
               "Finished episodes are kept in %s; rerun with --resume",
               sp_task_name(jb->task), sp_camera_name(jb->cam), jb->seed, now - st,
               rs->gl_name[0] ? rs->gl_name : "?", rs->jsonl_path);
        _exit(3);
      }
    }
  }
  return NULL;
}

static cJSON *config_json(const sp_eval_config *cfg, const sp_agent_api *ag, sp_env_model **models,
                          const char *ckpt, const char *pckpt, const char *ckpt_hash) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "format", "sp-eval-1");
  cJSON_AddStringToObject(o, "agent", ag->name);
  cJSON_AddStringToObject(o, "checkpoint", ckpt ? ckpt : "none");
  if (pckpt) cJSON_AddStringToObject(o, "policy_checkpoint", pckpt);
  if (cfg->vlm) {  // the endpoint and model, never the key
    cJSON *v = cJSON_AddObjectToObject(o, "vlm");
    cJSON_AddStringToObject(v, "url", cfg->vlm->url ? cfg->vlm->url : "");
    cJSON_AddStringToObject(v, "model", cfg->vlm->model ? cfg->vlm->model : "");
  }
  if (cfg->guidance >= 0) cJSON_AddNumberToObject(o, "guidance", cfg->guidance);
  if (cfg->action_steps) cJSON_AddNumberToObject(o, "action_steps", cfg->action_steps);
  if (cfg->goal_steps) cJSON_AddNumberToObject(o, "goal_steps", cfg->goal_steps);
  if (cfg->episode_noise) cJSON_AddBoolToObject(o, "episode_noise", 1);
  if (cfg->flow_check > 0) cJSON_AddNumberToObject(o, "flow_check", cfg->flow_check);
  if (cfg->grasp != SP_GRASP_METAWORLD) cJSON_AddStringToObject(o, "grasp", sp_grasp_name(cfg->grasp));
  cJSON_AddStringToObject(o, "checkpoint_hash", ckpt_hash);
  cJSON *t = cJSON_AddArrayToObject(o, "tasks");
  for (int i = 0; i < cfg->ntask; i++) cJSON_AddItemToArray(t, cJSON_CreateString(sp_task_name(cfg->tasks[i])));
  cJSON *c = cJSON_AddArrayToObject(o, "cameras");
  for (int i = 0; i < cfg->ncam; i++) cJSON_AddItemToArray(c, cJSON_CreateString(sp_camera_name(cfg->cams[i])));
  cJSON *s = cJSON_AddArrayToObject(o, "seeds");
  for (int i = 0; i < cfg->nseed; i++) cJSON_AddItemToArray(s, cJSON_CreateNumber((double)cfg->seeds[i]));
  cJSON_AddStringToObject(o, "scenes", sp_scene_source_name(cfg->source));
  cJSON *h = cJSON_AddObjectToObject(o, "scene_hash");
  for (int i = 0; i < cfg->ntask; i++) {
    char b[32];
    snprintf(b, sizeof b, "%016llx", (unsigned long long)models[cfg->tasks[i]]->scene_hash);
    cJSON_AddStringToObject(h, sp_task_name(cfg->tasks[i]), b);
  }
  cJSON_AddNumberToObject(o, "width", cfg->width);
  cJSON_AddNumberToObject(o, "height", cfg->height);
  cJSON_AddStringToObject(o, "render_quality", cfg->render_fast ? "fast" : "full");
  cJSON_AddNumberToObject(o, "horizon", SP_MAX_PATH);
  cJSON_AddStringToObject(o, "success_rule", SUCCESS_RULE);
  cJSON_AddNumberToObject(o, "replan_budget", ag->replan_budget);
  return o;
}

static int write_config(const char *dir, const cJSON *conf, int shard_i, int shard_n, char *err) {
  cJSON *c = cJSON_Duplicate(conf, 1);
  cJSON *sh = cJSON_AddObjectToObject(c, "shard");
  cJSON_AddNumberToObject(sh, "index", shard_i);
  cJSON_AddNumberToObject(sh, "count", shard_n);
  int rc = sp_json_write(dir, "config.json", c, err);
  cJSON_Delete(c);
  return rc;
}

/* read DIR/config.json; returns the config without its shard part, and the shard */
static cJSON *read_config(const char *dir, int *shard_i, int *shard_n, char *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  char *s = sp_file_read(path, NULL, err);
  if (!s) return NULL;
  cJSON *c = cJSON_Parse(s);
  free(s);
  if (!c || !cJSON_IsObject(c)) {
    cJSON_Delete(c);
    sp_errf(err, "%s: not a valid sp eval config (corrupt JSON)", path);
    return NULL;
  }
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(c, "shard");
  const cJSON *si = sh ? cJSON_GetObjectItemCaseSensitive(sh, "index") : NULL;
  const cJSON *sn = sh ? cJSON_GetObjectItemCaseSensitive(sh, "count") : NULL;
  if (!cJSON_IsNumber(si) || !cJSON_IsNumber(sn)) {
    cJSON_Delete(c);
    sp_errf(err, "%s: no shard in config", path);
    return NULL;
  }
  *shard_i = si->valueint;
  *shard_n = sn->valueint;
  cJSON_DeleteItemFromObjectCaseSensitive(c, "shard");
  return c;
}

/* which run a record set must belong to: ids of its tasks and cameras, its seeds, its shard */
typedef struct {
  const int *tasks, *cams;
  int ntask, ncam;
  const long *seeds;
  int nseed;
  int shard_i, shard_n;
} run_lists;

typedef struct {
  long seed;
  int index;
} seed_at;

static int seed_at_cmp(const void *a, const void *b) {
  const seed_at *x = a, *y = b;
  return (x->seed > y->seed) - (x->seed < y->seed);
}

/* every record of path must be an episode of the run rl (task, camera and seed in its lists, in
 * its shard) and appear once; line numbers are 1-based record positions. 0, or -1 with err. */
static int check_records(const run_lists *rl, const sp_episode *eps, int n, const char *path, char *err) {
  long total = (long)rl->ntask * rl->ncam * rl->nseed;
  seed_at *sa = malloc(sizeof *sa * (size_t)rl->nseed);
  int *first = malloc(sizeof(int) * (size_t)(total ? total : 1));  // line + 1 of each episode's record
  if (!sa || !first) {
    free(sa);
    free(first);
    return sp_errf(err, "out of memory checking %s", path);
  }
  for (int i = 0; i < rl->nseed; i++) sa[i] = (seed_at){rl->seeds[i], i};
  qsort(sa, (size_t)rl->nseed, sizeof *sa, seed_at_cmp);
  memset(first, 0, sizeof(int) * (size_t)total);
  int rc = 0;
  for (int k = 0; k < n && !rc; k++) {
    const sp_episode *e = &eps[k];
    int ti = -1, ci = -1;
    for (int i = 0; i < rl->ntask; i++) if (rl->tasks[i] == e->task) ti = i;
    for (int i = 0; i < rl->ncam; i++) if (rl->cams[i] == e->cam) ci = i;
    seed_at key = {e->seed, 0}, *hit = bsearch(&key, sa, (size_t)rl->nseed, sizeof *sa, seed_at_cmp);
    long idx = ti < 0 || ci < 0 || !hit ? -1 : ((long)ti * rl->ncam + ci) * rl->nseed + hit->index;
    if (idx < 0 || idx % rl->shard_n != rl->shard_i) {
      rc = sp_errf(err, "%s:%d: %s %s seed %ld is not an episode of this run (%s); remove the line "
                   "or start a new --out", path, k + 1, sp_task_name(e->task), sp_camera_name(e->cam),
                   e->seed, idx < 0 ? "its config.json lists other tasks, cameras or seeds" : "another shard");
    } else if (first[idx]) {
      rc = sp_errf(err, "%s:%d: %s %s seed %ld appears twice (lines %d and %d); remove one or start "
                   "a new --out", path, k + 1, sp_task_name(e->task), sp_camera_name(e->cam), e->seed,
                   first[idx], k + 1);
    } else {
      first[idx] = k + 1;
    }
  }
  free(sa);
  free(first);
  return rc;
}

/* one run per output directory: an exclusive lock on DIR/.lock, held until the process exits or
 * the run ends (two runs appending to one episodes.jsonl would write each episode twice) */
static int lock_dir(const char *dir, char *err) {
  char p[4200];
  snprintf(p, sizeof p, "%s/.lock", dir);
  int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return sp_errf(err, "cannot open %s: %s", p, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB)) {
    int e = errno;
    close(fd);
    return e == EWOULDBLOCK ? sp_errf(err, "another sp eval is running in %s (wait for it, or use another --out)", dir)
                            : sp_errf(err, "cannot lock %s: %s", p, strerror(e));
  }
  return fd;
}

int sp_eval_run(const sp_eval_config *cfg, char *err) {
  if (sp_eval_config_check(cfg, err)) return -1;
  const sp_agent_api *ag = sp_agent_find(cfg->agent);
  if (sp_mkdir_p(cfg->out_dir, err)) return -1;
  if (cfg->gif) {
    char g[4096];
    snprintf(g, sizeof g, "%s/gifs", cfg->out_dir);
    if (sp_mkdir_p(g, err)) return -1;
  }
  int lock = lock_dir(cfg->out_dir, err);
  if (lock < 0) return -1;
  run_state *rs = calloc(1, sizeof *rs);
  rs->cfg = cfg;
  rs->agent = ag;
  pthread_mutex_init(&rs->io_lock, NULL);
  int rc = -1;
  cJSON *conf = NULL;
  sp_episode *done_eps = NULL;
  int ndone = 0;
  for (int i = 0; i < cfg->ntask; i++) {
    int t = cfg->tasks[i];
    if (rs->models[t]) continue;
    rs->models[t] = sp_env_model_load(t, cfg->source, cfg->assets, err);
    if (!rs->models[t]) goto out;
  }
  snprintf(rs->ckpt_hash, sizeof rs->ckpt_hash, "none");
  if (sp_agent_checkpoints(ag, cfg->checkpoint, cfg->policy_checkpoint, rs->ckpt_path, rs->pckpt_path,
                          sizeof rs->ckpt_path, &rs->ckpt, &rs->pckpt, err))
    goto out;
  if (cfg->vlm && !ag->uses_vlm) {
    sp_errf(err, "--vlm: agent '%s' does not use a VLM", ag->name);
    goto out;
  }
  /* one hash over the files the agent loads, in order */
  uint64_t h = 0;
  const char *files[2] = {rs->ckpt, rs->pckpt};
  for (int i = 0; i < 2; i++) {
    if (!files[i]) continue;
    size_t len;
    char *bytes = sp_file_read(files[i], &len, err);
    if (!bytes) goto out;
    h = sp_hash64(h, bytes, len);
    free(bytes);
    snprintf(rs->ckpt_hash, sizeof rs->ckpt_hash, "%016llx", (unsigned long long)h);
  }
  conf = config_json(cfg, ag, rs->models, rs->ckpt, rs->pckpt, rs->ckpt_hash);
  snprintf(rs->jsonl_path, sizeof rs->jsonl_path, "%s/episodes.jsonl", cfg->out_dir);

  /* an existing run in DIR: resume it (same config) or refuse to mix */
  if (sp_file_exists(rs->jsonl_path)) {
    if (!cfg->resume) {
      sp_errf(err, "%s already holds episodes; pass --resume to continue that run, or use a new --out",
              cfg->out_dir);
      goto out;
    }
    int si, sn;
    cJSON *old = read_config(cfg->out_dir, &si, &sn, err);
    if (!old) goto out;
    int same = cJSON_Compare(old, conf, 1) && si == cfg->shard_i && sn == cfg->shard_n;
    cJSON_Delete(old);
    if (!same) {
      sp_errf(err, "%s was run with a different configuration (see its config.json); --resume "
              "needs the same agent, tasks, cameras, seeds, scenes and shard", cfg->out_dir);
      goto out;
    }
    ndone = sp_episodes_load(rs->jsonl_path, &done_eps, 1, err);
    if (ndone < 0) goto out;
    run_lists rl = {cfg->tasks, cfg->cams, cfg->ntask, cfg->ncam, cfg->seeds, cfg->nseed,
                    cfg->shard_i, cfg->shard_n};
    if (check_records(&rl, done_eps, ndone, rs->jsonl_path, err)) goto out;
  }
  if (write_config(cfg->out_dir, conf, cfg->shard_i, cfg->shard_n, err)) goto out;

  /* the episode list, in canonical order, this shard's slice, minus finished episodes */
  long total = (long)cfg->ntask * cfg->ncam * cfg->nseed;
  rs->jobs = malloc(sizeof *rs->jobs * (size_t)(total ? total : 1));
  long idx = 0;
  for (int i = 0; i < cfg->ntask; i++)
    for (int c = 0; c < cfg->ncam; c++)
      for (int s = 0; s < cfg->nseed; s++, idx++) {
        if (idx % cfg->shard_n != cfg->shard_i) continue;
        job jb = {cfg->tasks[i], cfg->cams[c], cfg->seeds[s]};
        int have = 0;
        for (int k = 0; k < ndone && !have; k++)
          have = done_eps[k].task == jb.task && done_eps[k].cam == jb.cam && done_eps[k].seed == jb.seed;
        if (!have) rs->jobs[rs->njobs++] = jb;
      }
  if (ndone) sp_log(SP_LOG_INFO, "resuming: %d episodes done, %d to run", ndone, rs->njobs);
  free(done_eps);
  done_eps = NULL;

  sp_agent_opts ao = {.checkpoint = rs->ckpt, .policy_checkpoint = rs->pckpt, .vlm = cfg->vlm,
                      .guidance = cfg->guidance, .action_steps = cfg->action_steps, .goal_steps = cfg->goal_steps,
                      .episode_noise = cfg->episode_noise, .grasp = cfg->grasp, .flow_check = cfg->flow_check};
  if (!(rs->agent_model = ag->load(&ao, err))) goto out;
  int nw = cfg->jobs < rs->njobs ? cfg->jobs : (rs->njobs ? rs->njobs : 1);
  /* networks run on one thread each inside a run, whatever --jobs: their float sums depend on
   * the thread count (an imagined frame differed by one grey level between 1 and 2 threads), so
   * records stay identical across --jobs, and parallelism comes from the workers */
  nn_init(1);
  rs->render_started = calloc((size_t)cfg->jobs, sizeof(double));
  rs->render_job = calloc((size_t)cfg->jobs, sizeof(job));
  sp_progress_start(&rs->progress, "eval", rs->njobs);
  pthread_t wd;
  pthread_create(&wd, NULL, watchdog_main, rs);
  pthread_t th[64];
  worker_arg wa[64];
  for (int i = 0; i < nw; i++) {
    wa[i].rs = rs;
    wa[i].id = i;
    pthread_create(&th[i], NULL, worker_main, &wa[i]);
  }
  for (int i = 0; i < nw; i++) pthread_join(th[i], NULL);
  atomic_store(&rs->done, 1);
  pthread_join(wd, NULL);
  sp_progress_finish(&rs->progress);
  if (atomic_load(&rs->failed)) {
    sp_errf(err, "%s", rs->fail_msg);
    goto out;
  }
  /* results from every record of this run */
  sp_episode *eps;
  int n = sp_episodes_load(rs->jsonl_path, &eps, 0, err);
  if (n < 0) goto out;
  rc = sp_eval_write_results(cfg->out_dir, conf, eps, n, rs->gl_name[0] ? rs->gl_name : NULL, err);
  free(eps);
out:
  if (rs->agent_model) ag->unload(rs->agent_model);
  free(done_eps);
  cJSON_Delete(conf);
  for (int t = 0; t < SP_NTASK; t++) sp_env_model_free(rs->models[t]);
  free(rs->jobs);
  free(rs->render_started);
  free(rs->render_job);
  pthread_mutex_destroy(&rs->io_lock);
  free(rs);
  close(lock);
  return rc;
}

/* the run lists of a config.json (tasks and cameras by name, seeds); 0, or -1 with err */
static int lists_from_config(const cJSON *conf, const char *dir, int *tasks, int *cams, long **seeds,
                             run_lists *rl, char *err) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(conf, "tasks");
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(conf, "cameras");
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(conf, "seeds");
  if (!cJSON_IsArray(t) || !cJSON_IsArray(c) || !cJSON_IsArray(s))
    return sp_errf(err, "%s/config.json: no tasks, cameras or seeds lists", dir);
  memset(rl, 0, sizeof *rl);
  const cJSON *x;
  cJSON_ArrayForEach(x, t) {
    int id = cJSON_IsString(x) ? sp_task_find(x->valuestring) : -1;
    if (id < 0 || rl->ntask >= SP_NTASK) return sp_errf(err, "%s/config.json: bad task list", dir);
    tasks[rl->ntask++] = id;
  }
  cJSON_ArrayForEach(x, c) {
    int id = cJSON_IsString(x) ? sp_camera_find(x->valuestring) : -1;
    if (id < 0 || rl->ncam >= SP_NCAMERA) return sp_errf(err, "%s/config.json: bad camera list", dir);
    cams[rl->ncam++] = id;
  }
  int ns = cJSON_GetArraySize(s);
  *seeds = malloc(sizeof(long) * (size_t)(ns ? ns : 1));
  if (!*seeds) return sp_errf(err, "out of memory");
  cJSON_ArrayForEach(x, s) {
    if (!cJSON_IsNumber(x)) return sp_errf(err, "%s/config.json: bad seed list", dir);
    (*seeds)[rl->nseed++] = (long)x->valuedouble;
  }
  rl->tasks = tasks;
  rl->cams = cams;
  rl->seeds = *seeds;
  return 0;
}

int sp_eval_merge(const char **dirs, int ndir, const char *out_dir, char *err) {
  if (ndir < 1) return sp_errf(err, "--merge needs at least one directory");
  {
    char p[4096];
    snprintf(p, sizeof p, "%s/episodes.jsonl", out_dir);
    if (sp_file_exists(p))
      return sp_errf(err, "%s already holds episodes (a finished or running evaluation); merge "
                     "into a new --out", out_dir);
  }
  cJSON *conf = NULL;
  sp_episode *all = NULL;
  int nall = 0, rc = -1, shard_n = 0;
  unsigned char seen[64] = {0};
  int tasks[SP_NTASK], cams[SP_NCAMERA];
  long *seeds = NULL;
  run_lists rl;
  for (int i = 0; i < ndir; i++) {
    int si, sn;
    cJSON *c = read_config(dirs[i], &si, &sn, err);
    if (!c) goto out;
    if (!conf) {
      conf = c;
      shard_n = sn;
      if (lists_from_config(conf, dirs[i], tasks, cams, &seeds, &rl, err)) goto out;
    } else {
      int same = cJSON_Compare(conf, c, 1);
      cJSON_Delete(c);
      if (!same || sn != shard_n) {
        sp_errf(err, "%s: a different configuration from %s (agent, tasks, cameras, seeds, scenes "
                "or shard count differ); refusing to merge", dirs[i], dirs[0]);
        goto out;
      }
    }
    if (si >= 0 && si < 64) {
      if (seen[si]) { sp_errf(err, "%s: shard %d/%d given twice", dirs[i], si, sn); goto out; }
      seen[si] = 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/episodes.jsonl", dirs[i]);
    sp_episode *eps;
    int n = sp_episodes_load(path, &eps, 0, err);
    if (n < 0) goto out;
    rl.shard_i = si;
    rl.shard_n = sn;
    if (sn < 1 || si < 0 || si >= sn) {
      free(eps);
      sp_errf(err, "%s/config.json: bad shard %d/%d", dirs[i], si, sn);
      goto out;
    }
    if (check_records(&rl, eps, n, path, err)) {
      free(eps);
      goto out;
    }
    all = realloc(all, sizeof *all * (size_t)(nall + n + 1));
    memcpy(all + nall, eps, sizeof *eps * (size_t)n);
    nall += n;
    free(eps);
  }
  for (int i = 0; i < shard_n && i < 64; i++)
    if (!seen[i]) sp_log(SP_LOG_WARN, "merge: shard %d/%d is missing; the table covers fewer episodes", i, shard_n);
  qsort(all, (size_t)nall, sizeof *all, sp_episode_cmp);
  for (int i = 1; i < nall; i++)
    if (!sp_episode_cmp(&all[i - 1], &all[i])) {
      sp_errf(err, "merge: episode %s %s seed %ld appears twice", sp_task_name(all[i].task),
              sp_camera_name(all[i].cam), all[i].seed);
      goto out;
    }
  if (sp_mkdir_p(out_dir, err) || write_config(out_dir, conf, 0, 1, err)) goto out;
  /* the merged records, in canonical order */
  {
    char path[4096];
    snprintf(path, sizeof path, "%s/episodes.jsonl", out_dir);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < nall; i++) {
      const cJSON *ag = cJSON_GetObjectItemCaseSensitive(conf, "agent");
      /* merged records keep their fields; the scene hash comes from the config */
      sp_env_model fake = {0};
      const cJSON *sc = cJSON_GetObjectItemCaseSensitive(conf, "scenes");
      fake.source = sc && !strcmp(sc->valuestring, "metaworld") ? SP_SCENES_METAWORLD : SP_SCENES_BUILTIN;
      const cJSON *hs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(conf, "scene_hash"),
                                                         sp_task_name(all[i].task));
      if (hs) fake.scene_hash = strtoull(hs->valuestring, NULL, 16);
      const cJSON *ck = cJSON_GetObjectItemCaseSensitive(conf, "checkpoint_hash");
      char *line = sp_episode_to_json(&all[i], ag->valuestring, &fake,
                                      cJSON_IsString(ck) ? ck->valuestring : "none");
      size_t ll = strlen(line);
      while (len + ll + 2 > cap) { cap *= 2; buf = realloc(buf, cap); }
      memcpy(buf + len, line, ll);
      len += ll;
      buf[len++] = '\n';
      free(line);
    }
    int wrc = sp_file_write_atomic(path, buf, len, err);
    free(buf);
    if (wrc) goto out;
  }
  rc = sp_eval_write_results(out_dir, conf, all, nall, NULL, err);
out:
  cJSON_Delete(conf);
  free(all);
  free(seeds);
  return rc;
}
