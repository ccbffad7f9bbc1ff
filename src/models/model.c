/* model.c: presets, workspace base, checkpoints (contract in model.h). */
#include "models/model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* ---------------------------------------------------------------------------------------------
 * presets */

static const char *const g_presets[SP_PRESET_N] = {"tiny", "cpu", "paper"};

const char *sp_preset_name(sp_preset p) { return p >= 0 && p < SP_PRESET_N ? g_presets[p] : "?"; }

int sp_preset_parse(const char *s, sp_preset *p, char *err) {
  for (int i = 0; i < SP_PRESET_N; i++)
    if (s && !strcmp(s, g_presets[i])) {
      *p = (sp_preset)i;
      return 0;
    }
  return sp_errf(err, "unknown preset '%s' (known: tiny, cpu, paper)", s ? s : "");
}

/* ---------------------------------------------------------------------------------------------
 * workspace base */

void sp_ws_need_scratch(sp_ws *w, size_t n) {
  if (n > w->scratch_n) w->scratch_n = n;
}
void sp_ws_need_work(sp_ws *w, size_t n) {
  if (n > w->work_n) w->work_n = n;
}

static float *alloc_aligned(size_t n) {
  size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
  float *p = aligned_alloc(64, bytes ? bytes : 64);
  if (p) memset(p, 0, bytes);
  return p;
}

int sp_ws_commit(sp_ws *w, char *err) {
  size_t used = w->ar.used;
  if (nn_arena_init(&w->ar, used ? used : 64)) return sp_errf(err, "out of memory: workspace arena of %.1f MB", used / 1048576.0);
  w->scratch = alloc_aligned(w->scratch_n);
  w->work = alloc_aligned(w->work_n);
  if (!w->scratch || !w->work) {
    sp_ws_free(w);
    return sp_errf(err, "out of memory: workspace scratch %.1f MB, work %.1f MB", w->scratch_n * 4 / 1048576.0,
                   w->work_n * 4 / 1048576.0);
  }
  return 0;
}

void sp_ws_free(sp_ws *w) {
  nn_arena_free(&w->ar);
  free(w->scratch);
  free(w->work);
  memset(w, 0, sizeof *w);
}

float *sp_ws_floats(sp_ws *w, size_t n) { return nn_arena_floats(&w->ar, n); }

/* ---------------------------------------------------------------------------------------------
 * checkpoints: the model-layer metadata travels as one JSON object in the nn checkpoint's
 * "config" key: {"model", "preset", "config": {...}, "data", "trainer"} */

int sp_model_save(const char *path, const nn_params *ps, const sp_ckpt_meta *meta, int with_optim,
                  const char *extra, char *err) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "model", meta->model ? meta->model : "");
  cJSON_AddStringToObject(o, "preset", meta->preset ? meta->preset : "");
  cJSON *cfg = cJSON_Parse(meta->config ? meta->config : "{}");
  if (!cfg) {
    cJSON_Delete(o);
    return sp_errf(err, "%s: the model config is not valid JSON", path);
  }
  cJSON_AddItemToObject(o, "config", cfg);
  cJSON_AddStringToObject(o, "data", meta->data ? meta->data : "");
  if (extra) {
    cJSON *tr = cJSON_Parse(extra);
    if (!tr) {
      cJSON_Delete(o);
      return sp_errf(err, "%s: the trainer state is not valid JSON", path);
    }
    cJSON_AddItemToObject(o, "trainer", tr);
  }
  char *json = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  int rc = nn_checkpoint_save(path, ps, json, meta->step, with_optim, err);
  cJSON_free(json);
  return rc;
}

static char *dup_item(const cJSON *o, const char *key) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!it) return strdup("");
  if (cJSON_IsString(it)) return strdup(it->valuestring);
  char *s = cJSON_PrintUnformatted(it);
  char *r = strdup(s);
  cJSON_free(s);
  return r;
}

int sp_ckpt_info_read(const char *path, sp_ckpt_info *info, char *err) {
  memset(info, 0, sizeof *info);
  nn_safetensors st;
  if (nn_st_open(&st, path, err)) return -1;
  const char *fmt = nn_st_meta(&st, "format"), *cfg = nn_st_meta(&st, "config"), *step = nn_st_meta(&st, "step");
  if (!fmt || strcmp(fmt, NN_CKPT_FORMAT)) {
    nn_st_close(&st);
    return sp_errf(err, "%s is not an sp checkpoint (metadata format '%s')", path, fmt ? fmt : "(none)");
  }
  cJSON *o = cJSON_Parse(cfg ? cfg : "");
  if (!o || !cJSON_IsObject(o) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "model"))) {
    cJSON_Delete(o);
    nn_st_close(&st);
    return sp_errf(err, "%s: an nn checkpoint without model metadata (not written by sp train?)", path);
  }
  info->model = dup_item(o, "model");
  info->preset = dup_item(o, "preset");
  info->config = dup_item(o, "config");
  info->data = dup_item(o, "data");
  info->trainer = cJSON_GetObjectItemCaseSensitive(o, "trainer") ? dup_item(o, "trainer") : NULL;
  info->step = step ? atol(step) : 0;
  cJSON_Delete(o);
  nn_st_close(&st);
  return 0;
}

void sp_ckpt_info_free(sp_ckpt_info *info) {
  free(info->model);
  free(info->preset);
  free(info->config);
  free(info->data);
  free(info->trainer);
  memset(info, 0, sizeof *info);
}

int sp_model_load(const char *path, nn_params *ps, const char *model, long *step, char *err) {
  sp_ckpt_info info;
  if (sp_ckpt_info_read(path, &info, err)) return -1;
  if (strcmp(info.model, model)) {
    sp_errf(err, "%s holds a '%s' model, not a '%s' model", path, info.model, model);
    sp_ckpt_info_free(&info);
    return -1;
  }
  sp_ckpt_info_free(&info);
  return nn_checkpoint_load(path, ps, step, NULL, err);
}
