/* config.c: config field tables (contract in config.h). */
#include "core/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

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
    case SP_CF_FLOAT: {
      /* the shortest text that reads back as the same float */
      float v = *CFIELD(cfg, f, float);
      for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, cap, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
      }
      break;
    }
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
        sp_cf_format(f, cfg, buf, sizeof buf);
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

