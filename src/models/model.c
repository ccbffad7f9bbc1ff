/* model.c: presets, config field tables, workspace base, checkpoints (contract in model.h). */
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
 * config field tables */

#define FIELD(cfg, f, T) ((T *)((char *)(cfg) + (f)->off))
#define CFIELD(cfg, f, T) ((const T *)((const char *)(cfg) + (f)->off))

static int enum_count(const sp_cf *f) {
  int n = 0;
  while (f->names && f->names[n]) n++;
  return n;
}

const sp_cf *sp_cf_find(const sp_cf *t, const char *key) {
  for (; t->key; t++)
    if (!strcmp(t->key, key)) return t;
  return NULL;
}

/* the value of one field as text (enum names, comma lists) */
void sp_cf_format(const sp_cf *f, const void *cfg, char *buf, size_t cap) {
  switch (f->kind) {
    case SP_CF_INT: snprintf(buf, cap, "%d", *CFIELD(cfg, f, int)); break;
    case SP_CF_FLOAT: snprintf(buf, cap, "%.9g", (double)*CFIELD(cfg, f, float)); break;
    case SP_CF_ENUM: {
      int v = *CFIELD(cfg, f, int);
      snprintf(buf, cap, "%s", v >= 0 && v < enum_count(f) ? f->names[v] : "?");
      break;
    }
    case SP_CF_INTLIST: {
      const int *a = CFIELD(cfg, f, int);
      int n = *(const int *)((const char *)cfg + f->off2);
      size_t k = 0;
      buf[0] = 0;
      for (int i = 0; i < n && i < f->maxn && k + 16 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, i ? ",%d" : "%d", a[i]);
      break;
    }
  }
}

int sp_cf_check(const sp_cf *t, const void *cfg, const char *what, char *err) {
  for (const sp_cf *f = t; f->key; f++) {
    double v = 0;
    switch (f->kind) {
      case SP_CF_INT: v = *CFIELD(cfg, f, int); break;
      case SP_CF_FLOAT:
        v = *CFIELD(cfg, f, float);
        if (!isfinite(v)) return sp_errf(err, "%s: %s = %g is not finite", what, f->key, v);
        break;
      case SP_CF_ENUM: {
        int e = *CFIELD(cfg, f, int), n = enum_count(f);
        if (e < 0 || e >= n) return sp_errf(err, "%s: %s = %d is not a known value", what, f->key, e);
        continue;
      }
      case SP_CF_INTLIST: {
        const int *a = CFIELD(cfg, f, int);
        int n = *(const int *)((const char *)cfg + f->off2);
        if (n < 1 || n > f->maxn)
          return sp_errf(err, "%s: %s has %d entries, want 1..%d", what, f->key, n, f->maxn);
        for (int i = 0; i < n; i++)
          if (a[i] < f->lo || a[i] > f->hi)
            return sp_errf(err, "%s: %s[%d] = %d outside [%g, %g]", what, f->key, i, a[i], f->lo, f->hi);
        continue;
      }
    }
    if (v < f->lo || v > f->hi) return sp_errf(err, "%s: %s = %g outside [%g, %g]", what, f->key, v, f->lo, f->hi);
  }
  return 0;
}

void sp_cf_print(FILE *out, const sp_cf *t, const void *cfg, const char *indent) {
  char buf[256];
  for (const sp_cf *f = t; f->key; f++) {
    sp_cf_format(f, cfg, buf, sizeof buf);
    fprintf(out, "%s%-16s = %s\n", indent ? indent : "", f->key, buf);
  }
}

char *sp_cf_to_json(const sp_cf *t, const void *cfg) {
  cJSON *o = cJSON_CreateObject();
  char buf[256];
  for (const sp_cf *f = t; f->key; f++) {
    switch (f->kind) {
      case SP_CF_INT: cJSON_AddNumberToObject(o, f->key, *CFIELD(cfg, f, int)); break;
      case SP_CF_FLOAT:
        /* through the shortest text that reads back as the same float */
        snprintf(buf, sizeof buf, "%.9g", (double)*CFIELD(cfg, f, float));
        cJSON_AddItemToObject(o, f->key, cJSON_CreateRaw(buf));
        break;
      case SP_CF_ENUM:
        sp_cf_format(f, cfg, buf, sizeof buf);
        cJSON_AddStringToObject(o, f->key, buf);
        break;
      case SP_CF_INTLIST: {
        const int *a = CFIELD(cfg, f, int);
        int n = *(const int *)((const char *)cfg + f->off2);
        cJSON *arr = cJSON_AddArrayToObject(o, f->key);
        for (int i = 0; i < n && i < f->maxn; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(a[i]));
        break;
      }
    }
  }
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static int cf_set_enum(const sp_cf *f, void *cfg, const char *name, char *err) {
  for (int i = 0; f->names[i]; i++)
    if (!strcmp(f->names[i], name)) {
      *FIELD(cfg, f, int) = i;
      return 0;
    }
  char known[256] = "";
  for (int i = 0; f->names[i]; i++) {
    if (i) strncat(known, ", ", sizeof known - strlen(known) - 1);
    strncat(known, f->names[i], sizeof known - strlen(known) - 1);
  }
  return sp_errf(err, "%s: unknown value '%s' (known: %s)", f->key, name, known);
}

int sp_cf_from_json(const sp_cf *t, void *cfg, const char *json, char *err) {
  cJSON *o = cJSON_Parse(json ? json : "");
  if (!o || !cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return sp_errf(err, "config is not a JSON object");
  }
  int rc = 0;
  for (cJSON *it = o->child; it && !rc; it = it->next) {
    const sp_cf *f = sp_cf_find(t, it->string);
    if (!f) {
      rc = sp_errf(err, "config: unknown field '%s'", it->string);
      break;
    }
    switch (f->kind) {
      case SP_CF_INT:
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 2e9)
          rc = sp_errf(err, "config: %s must be an integer", f->key);
        else *FIELD(cfg, f, int) = (int)it->valuedouble;
        break;
      case SP_CF_FLOAT:
        if (!cJSON_IsNumber(it)) rc = sp_errf(err, "config: %s must be a number", f->key);
        else *FIELD(cfg, f, float) = (float)it->valuedouble;
        break;
      case SP_CF_ENUM:
        if (!cJSON_IsString(it)) rc = sp_errf(err, "config: %s must be a string", f->key);
        else rc = cf_set_enum(f, cfg, it->valuestring, err);
        break;
      case SP_CF_INTLIST: {
        int n = cJSON_GetArraySize(it);
        if (!cJSON_IsArray(it) || n < 1 || n > f->maxn) {
          rc = sp_errf(err, "config: %s must be a list of 1..%d integers", f->key, f->maxn);
          break;
        }
        int *a = FIELD(cfg, f, int);
        for (int i = 0; i < n && !rc; i++) {
          cJSON *e = cJSON_GetArrayItem(it, i);
          if (!cJSON_IsNumber(e)) rc = sp_errf(err, "config: %s[%d] must be an integer", f->key, i);
          else a[i] = (int)e->valuedouble;
        }
        *(int *)((char *)cfg + f->off2) = n;
        break;
      }
    }
  }
  cJSON_Delete(o);
  return rc;
}

int sp_cf_diff(const sp_cf *t, const void *a, const void *b, const char *what, char *err) {
  char va[256], vb[256];
  for (const sp_cf *f = t; f->key; f++) {
    sp_cf_format(f, a, va, sizeof va);
    sp_cf_format(f, b, vb, sizeof vb);
    if (strcmp(va, vb)) return sp_errf(err, "%s: %s is %s, want %s", what, f->key, va, vb);
  }
  return 0;
}

int sp_cf_set(const sp_cf *t, void *cfg, const char *key, const char *value, char *err) {
  const sp_cf *f = sp_cf_find(t, key);
  if (!f) return sp_errf(err, "unknown config field '%s'", key);
  char *end = NULL;
  errno = 0;
  switch (f->kind) {
    case SP_CF_INT: {
      long v = strtol(value, &end, 10);
      if (!*value || *end || errno || v < -2000000000L || v > 2000000000L)
        return sp_errf(err, "%s: '%s' is not an integer", key, value);
      *FIELD(cfg, f, int) = (int)v;
      return 0;
    }
    case SP_CF_FLOAT: {
      double v = strtod(value, &end);
      if (!*value || *end || errno || !isfinite(v)) return sp_errf(err, "%s: '%s' is not a number", key, value);
      *FIELD(cfg, f, float) = (float)v;
      return 0;
    }
    case SP_CF_ENUM: return cf_set_enum(f, cfg, value, err);
    case SP_CF_INTLIST: {
      int tmp[64], n = 0;
      const char *p = value;
      while (*p) {
        long v = strtol(p, &end, 10);
        if (end == p || errno || n >= f->maxn || n >= 64)
          return sp_errf(err, "%s: '%s' is not a comma list of at most %d integers", key, value, f->maxn);
        tmp[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return sp_errf(err, "%s: '%s' is not a comma list of integers", key, value);
      }
      if (!n) return sp_errf(err, "%s: empty list", key);
      memcpy(FIELD(cfg, f, int), tmp, (size_t)n * sizeof(int));
      *(int *)((char *)cfg + f->off2) = n;
      return 0;
    }
  }
  return -1;
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
