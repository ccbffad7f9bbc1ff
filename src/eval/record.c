/* record.c: episode records as one JSON line each, and back. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "eval/eval_internal.h"

static cJSON *vec(const double *v, int n) { return cJSON_CreateDoubleArray(v, n); }

void sp_episode_json_head(cJSON *o, const sp_episode *ep) {
  cJSON_AddStringToObject(o, "task", sp_task_name(ep->task));
  cJSON_AddStringToObject(o, "camera", sp_camera_name(ep->cam));
  cJSON_AddNumberToObject(o, "seed", (double)ep->seed);
  cJSON_AddBoolToObject(o, "success", ep->success);
  cJSON_AddNumberToObject(o, "steps", ep->steps);
  cJSON_AddNumberToObject(o, "frames", ep->frames);
  cJSON_AddItemToObject(o, "hand_init", vec(ep->hand_init, 3));
  cJSON_AddItemToObject(o, "obj_init", vec(ep->obj_init, 3));
  cJSON_AddItemToObject(o, "goal", vec(ep->goal, 3));
}

void sp_episode_json_health(cJSON *o, const sp_episode *ep) {
  cJSON_AddNumberToObject(o, "nan_count", ep->nan_count);
  cJSON_AddNumberToObject(o, "mujoco_warnings", ep->warn_count);
  if (ep->error[0]) cJSON_AddStringToObject(o, "error", ep->error);
  else cJSON_AddNullToObject(o, "error");
}

void sp_timing_json(cJSON *o, const sp_agent_timing *tm) {
#define TM(name) cJSON_AddNumberToObject(o, #name, tm->name);
  SP_AGENT_TIMES(TM)
#undef TM
}

char *sp_episode_to_json(const sp_episode *ep, const char *agent, const sp_env_model *em,
                         const char *checkpoint_hash) {
  cJSON *o = cJSON_CreateObject();
  sp_episode_json_head(o, ep);
  cJSON_AddItemToObject(o, "rand_vec", vec(ep->rand_vec, ep->rand_vec_len));
  cJSON_AddStringToObject(o, "agent", agent);
  cJSON_AddStringToObject(o, "checkpoint_hash", checkpoint_hash ? checkpoint_hash : "none");
  cJSON_AddStringToObject(o, "scenes", sp_scene_source_name(em->source));
  char h[32];
  snprintf(h, sizeof h, "%016llx", (unsigned long long)em->scene_hash);
  cJSON_AddStringToObject(o, "scene_hash", h);
  sp_episode_json_health(o, ep);
  const sp_agent_api *ag = sp_agent_find(agent);
  if (ag && ag->end) {
    const sp_agent_events *ev = &ep->events;
    cJSON *v = cJSON_AddObjectToObject(o, "events");
#define EV(name) cJSON_AddNumberToObject(v, #name, ev->name);
    SP_AGENT_EVENTS(EV)
#undef EV
  }
  /* timing last, so tools can strip it: sed 's/,"time":{[^}]*}//' */
  sp_timing_json(cJSON_AddObjectToObject(o, "time"), &ep->time);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static int get_vec(const cJSON *o, const char *k, double *v, int max) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!cJSON_IsArray(a)) return -1;
  int n = cJSON_GetArraySize(a);
  if (n > max) return -1;
  for (int i = 0; i < n; i++) {
    const cJSON *x = cJSON_GetArrayItem(a, i);
    if (!cJSON_IsNumber(x)) return -1;
    v[i] = x->valuedouble;
  }
  return n;
}

static double num(const cJSON *o, const char *k, int *bad) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
  if (!cJSON_IsNumber(x)) { *bad = 1; return 0; }
  return x->valuedouble;
}

int sp_episode_from_json(const char *line, sp_episode *ep) {
  memset(ep, 0, sizeof *ep);
  cJSON *o = cJSON_Parse(line);
  if (!o) return -1;
  int bad = 0;
  const cJSON *task = cJSON_GetObjectItemCaseSensitive(o, "task");
  const cJSON *cam = cJSON_GetObjectItemCaseSensitive(o, "camera");
  const cJSON *succ = cJSON_GetObjectItemCaseSensitive(o, "success");
  if (!cJSON_IsString(task) || !cJSON_IsString(cam) || !cJSON_IsBool(succ)) bad = 1;
  if (!bad) {
    ep->task = sp_task_find(task->valuestring);
    ep->cam = sp_camera_find(cam->valuestring);
    if (ep->task < 0 || ep->cam < 0) bad = 1;
    ep->success = cJSON_IsTrue(succ);
  }
  ep->seed = (long)num(o, "seed", &bad);
  ep->steps = (int)num(o, "steps", &bad);
  ep->frames = (int)num(o, "frames", &bad);
  ep->nan_count = (int)num(o, "nan_count", &bad);
  ep->warn_count = (int)num(o, "mujoco_warnings", &bad);
  if (get_vec(o, "hand_init", ep->hand_init, 3) != 3 || get_vec(o, "obj_init", ep->obj_init, 3) != 3 ||
      get_vec(o, "goal", ep->goal, 3) != 3)
    bad = 1;
  ep->rand_vec_len = get_vec(o, "rand_vec", ep->rand_vec, 6);
  if (ep->rand_vec_len < 0) bad = 1;
  const cJSON *er = cJSON_GetObjectItemCaseSensitive(o, "error");
  if (cJSON_IsString(er)) snprintf(ep->error, sizeof ep->error, "%s", er->valuestring);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "events");
  if (cJSON_IsObject(v)) {
    int b2 = 0;
#define EV(name) ep->events.name = (int)num(v, #name, &b2);
    SP_AGENT_EVENTS(EV)
#undef EV
    if (b2) bad = 1;
  }
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "time");
  if (cJSON_IsObject(t)) {
    int b2 = 0;
#define TM(name) ep->time.name = num(t, #name, &b2);
    SP_AGENT_TIMES(TM)
#undef TM
  }
  cJSON_Delete(o);
  return bad ? -1 : 0;
}

/* read DIR/episodes.jsonl; a torn last line (kill -9 while appending) is dropped and the file
 * truncated to its last complete record. Returns the count or -1. */
int sp_episodes_load(const char *path, sp_episode **out, int repair, char *err) {
  *out = NULL;
  FILE *f = fopen(path, "r+");
  if (!f) return 0;  // no records yet
  int cap = 256, n = 0;
  sp_episode *eps = malloc(sizeof *eps * (size_t)cap);
  char *line = NULL;
  size_t lcap = 0;
  long good_end = 0;
  ssize_t len;
  int lineno = 0;
  while ((len = getline(&line, &lcap, f)) > 0) {
    lineno++;
    int complete = line[len - 1] == '\n';
    if (n == cap) { cap *= 2; eps = realloc(eps, sizeof *eps * (size_t)cap); }
    if (complete && sp_episode_from_json(line, &eps[n]) == 0) {
      n++;
      good_end = ftell(f);
      continue;
    }
    /* only the very last line may be torn */
    int c = fgetc(f);
    if (c != EOF || complete) {
      free(line); free(eps); fclose(f);
      return sp_errf(err, "%s:%d: corrupt episode record (not a torn last line); move the file "
                     "away or start a new --out", path, lineno);
    }
    if (repair) {
      sp_log(SP_LOG_WARN, "%s: dropping a torn last record (interrupted run)", path);
      if (ftruncate(fileno(f), good_end)) {
        free(line); free(eps); fclose(f);
        return sp_errf(err, "%s: cannot truncate the torn last record", path);
      }
    }
    break;
  }
  free(line);
  fclose(f);
  *out = eps;
  return n;
}
