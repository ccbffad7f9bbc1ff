/* cmd_plan.c: sp plan: the spatial plan table of an episode's initial state (rule planner, or a
 * VLM when --vlm-url/--vlm-model or SP_VLM_URL/SP_VLM_MODEL are given), or parse a plan file. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/scene_args.h"
#include "core/fileio.h"
#include "core/log.h"
#include "plan/plan.h"
#include "plan/vlm.h"
#include "sim/env.h"
#include "sim/render.h"

static cJSON *vec3(const double v[3]) { return cJSON_CreateDoubleArray(v, 3); }

/* the plan as JSON: steps (n real ones) and the fixed-length encoding */
static cJSON *plan_json(const sp_plan *p) {
  cJSON *o = cJSON_CreateObject();
  char text[SP_PLAN_TEXT_MAX];
  sp_plan_format(p, 0, text, sizeof text);
  cJSON_AddStringToObject(o, "text", text);
  cJSON *steps = cJSON_AddArrayToObject(o, "steps");
  for (int i = 0; i < p->n; i++) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "action", sp_plan_action_name(p->step[i].action));
    cJSON_AddItemToObject(s, "dir", cJSON_CreateIntArray(p->step[i].dir, 3));
    cJSON_AddNumberToObject(s, "dist", p->step[i].dist);
    cJSON_AddItemToArray(steps, s);
  }
  sp_plan_enc e;
  sp_plan_encode(p, &e);
  cJSON_AddItemToObject(o, "action_id", cJSON_CreateIntArray(e.action_id, SP_PLAN_MAX));
  cJSON_AddItemToObject(o, "dir_id", cJSON_CreateIntArray(e.dir_id, SP_PLAN_MAX));
  cJSON_AddItemToObject(o, "dist", cJSON_CreateFloatArray(e.dist, SP_PLAN_MAX));
  return o;
}

static void print_json(cJSON *o) {
  char *s = cJSON_Print(o);
  if (s) printf("%s\n", s);
  free(s);
  cJSON_Delete(o);
}

static int cmd_parse(const char *path, int truncate, int json) {
  char err[SP_ERRLEN];
  size_t len = 0;
  char *text = NULL;
  if (!strcmp(path, "-")) {  // stdin, up to 1 MiB
    size_t cap = 1 << 20;
    text = malloc(cap + 1);
    if (text) {
      len = fread(text, 1, cap, stdin);
      text[len] = 0;
    }
  } else {
    text = sp_file_read(path, &len, err);
  }
  if (!text) {
    sp_log(SP_LOG_ERROR, "plan: %s", strcmp(path, "-") ? err : "out of memory");
    return 1;
  }
  sp_plan p;
  int rc = sp_plan_parse(text, len, truncate ? SP_PLAN_PARSE_TRUNCATE : 0, &p, err);
  free(text);
  if (rc) {
    /* "line N: reason" -> "path:N: reason", the compiler-style location */
    int ln = !strncmp(err, "line ", 5);
    sp_log(SP_LOG_ERROR, "plan: %s:%s%s", path, ln ? "" : " ", ln ? err + 5 : err);
    return 1;
  }
  if (json) {
    print_json(plan_json(&p));
  } else {
    char buf[SP_PLAN_TEXT_MAX];
    sp_plan_format(&p, 1, buf, sizeof buf);
    fputs(buf, stdout);
  }
  return 0;
}

int sp_cmd_plan(int argc, char **argv) {
  const char *task = NULL, *camera = "corner", *assets = NULL, *scenes = NULL, *parse = NULL;
  const char *vlm_url = NULL, *vlm_model = NULL;
  int seed = 0, json = 0, truncate = 0, retries = 3;
  double dead_zone = 0.01, timeout = 60.0;
  sp_arg rows[] = {
      {"task", SP_ARG_STR, &task, "task name (see sp tasks)"},
      {"seed", SP_ARG_INT, &seed, "episode seed (AVDC seeding)"},
      {"camera", SP_ARG_STR, &camera, "camera whose image goes to the VLM"},
      {"scenes", SP_ARG_STR, &scenes, "builtin or metaworld (default: builtin unless --assets)"},
      {"assets", SP_ARG_STR, &assets, "Meta-World assets_v2 directory (or SP_METAWORLD_ASSETS)"},
      {"dead-zone", SP_ARG_DOUBLE, &dead_zone, "rule planner: |offset| <= this gives direction 0 (m)"},
      {"vlm-url", SP_ARG_STR, &vlm_url, "OpenAI-compatible endpoint (or SP_VLM_URL); key from "
                                         "SP_VLM_KEY / OPENAI_API_KEY"},
      {"vlm-model", SP_ARG_STR, &vlm_model, "VLM model name (or SP_VLM_MODEL)"},
      {"vlm-timeout", SP_ARG_DOUBLE, &timeout, "seconds per VLM request"},
      {"vlm-retries", SP_ARG_INT, &retries, "retries after a failed VLM request"},
      {"json", SP_ARG_FLAG, &json, "print JSON with the encoded ids"},
      {"parse", SP_ARG_STR, &parse, "parse a plan file ('-' for stdin) and print it normalised"},
      {"truncate", SP_ARG_FLAG, &truncate, "with --parse: keep the first 10 steps of a longer plan"},
      {0}};
  int rc = sp_args_parse("plan", "--task T --seed S [options] | --parse FILE", rows, argc, argv,
                         NULL, 0, NULL);
  if (rc) return rc < 0 ? 2 : 0;
  if (parse) return cmd_parse(parse, truncate, json);
  if (!task) {
    sp_log(SP_LOG_ERROR, "plan: --task or --parse is required (see sp plan --help)");
    return 2;
  }
  int t = sp_task_find(task), cam = sp_camera_find(camera);
  if (t < 0) { sp_log(SP_LOG_ERROR, "plan: unknown task '%s' (see sp tasks)", task); return 2; }
  if (cam < 0) { sp_log(SP_LOG_ERROR, "plan: unknown camera '%s' (see sp tasks)", camera); return 2; }
  if (seed < 0) { sp_log(SP_LOG_ERROR, "plan: --seed must be >= 0"); return 2; }
  if (!(dead_zone >= 0 && dead_zone < 1)) { sp_log(SP_LOG_ERROR, "plan: --dead-zone outside [0, 1)"); return 2; }

  /* the VLM is used when an endpoint and a model are known (flags or environment) */
  sp_vlm_config vc;
  sp_vlm_config_default(&vc);
  if (vlm_url) vc.url = vlm_url;
  if (vlm_model) vc.model = vlm_model;
  vc.timeout_s = timeout;
  vc.max_retries = retries;
  vc.fallback.dead_zone = dead_zone;
  int use_vlm = vc.url && *vc.url;
  char err[SP_ERRLEN];
  sp_vlm *vlm = NULL;
  if (use_vlm && !(vlm = sp_vlm_create(&vc, err))) {
    sp_log(SP_LOG_ERROR, "plan: %s", err);
    return 2;
  }

  sp_scene_source src;
  if (sp_cli_scene_source("plan", scenes, &assets, &src)) {
    sp_vlm_free(vlm);
    return 2;
  }
  sp_env_model *em = sp_env_model_load(t, src, assets, err);
  sp_env *e = em ? sp_env_create(em, err) : NULL;
  if (!e) {
    sp_log(SP_LOG_ERROR, "plan: %s", err);
    sp_env_free(e);
    sp_env_model_free(em);
    sp_vlm_free(vlm);
    return 1;
  }
  double obs[SP_OBS_DIM];
  sp_env_reset(e, seed, obs);
  const double *hand = obs + SP_OBS_HAND, *obj = obs + SP_OBS_OBJ, *goal = obs + SP_OBS_GOAL;

  sp_plan p;
  const char *source = "rule";
  int status = 0;
  if (!vlm) {
    sp_plan_rule_cfg rc2 = {.dead_zone = dead_zone};
    if (sp_plan_rule(t, hand, obj, goal, &rc2, &p, err)) status = 1;
  } else {
    /* attach the current image of the camera when it can be rendered */
    enum { W = 320, H = 240 };
    sp_image img = {W, H, 3, malloc((size_t)W * H * 3)};
    sp_renderer *r = img.px ? sp_renderer_create(em, W, H, err) : NULL;
    int have_img = r && sp_render(r, e, cam, W, H, img.px, NULL, NULL, err) == 0;
    if (!have_img) sp_log(SP_LOG_WARN, "plan: no image for the VLM: %s", err);
    sp_renderer_free(r);
    int v = sp_vlm_plan(vlm, t, hand, obj, goal, have_img ? &img : NULL, &p, err);
    free(img.px);
    if (v < 0) status = 1;
    source = v == 0 ? "vlm" : "rule (vlm fallback)";
    sp_vlm_log_stats(vlm);
  }
  if (status) {
    sp_log(SP_LOG_ERROR, "plan: %s", err);
  } else if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", sp_task_name(t));
    cJSON_AddNumberToObject(o, "seed", seed);
    cJSON_AddStringToObject(o, "scenes", sp_scene_source_name(src));
    cJSON_AddStringToObject(o, "planner", source);
    cJSON_AddNumberToObject(o, "dead_zone", dead_zone);
    cJSON_AddItemToObject(o, "hand", vec3(hand));
    cJSON_AddItemToObject(o, "obj", vec3(obj));
    cJSON_AddItemToObject(o, "goal", vec3(goal));
    cJSON_AddItemToObject(o, "plan", plan_json(&p));
    print_json(o);
  } else {
    sp_log(SP_LOG_INFO, "plan: %s seed %d (%s scenes, %s planner): hand (%.3f, %.3f, %.3f) "
           "obj (%.3f, %.3f, %.3f) goal (%.3f, %.3f, %.3f)", sp_task_name(t), seed,
           sp_scene_source_name(src), source, hand[0], hand[1], hand[2], obj[0], obj[1], obj[2],
           goal[0], goal[1], goal[2]);
    char buf[SP_PLAN_TEXT_MAX];
    sp_plan_format(&p, 1, buf, sizeof buf);
    fputs(buf, stdout);
  }
  sp_env_free(e);
  sp_env_model_free(em);
  sp_vlm_free(vlm);
  return status;
}
