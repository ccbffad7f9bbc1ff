/* safetensors.c: reading and validating safetensors files; atomic checkpoint writes. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "nn/nn.h"
#include "nn/nn_train.h"

static size_t dtype_size(const char *dt) {
  if (!strcmp(dt, "F32") || !strcmp(dt, "I32") || !strcmp(dt, "U32")) return 4;
  if (!strcmp(dt, "F64") || !strcmp(dt, "I64") || !strcmp(dt, "U64")) return 8;
  if (!strcmp(dt, "F16") || !strcmp(dt, "BF16") || !strcmp(dt, "I16")) return 2;
  if (!strcmp(dt, "U8") || !strcmp(dt, "I8") || !strcmp(dt, "BOOL")) return 1;
  return 0;
}

void nn_st_close(nn_safetensors *st) {
  if (st->json) cJSON_Delete((cJSON *)st->json);
  free(st->buf);
  free(st->t);
  memset(st, 0, sizeof(*st));
}

int nn_st_open(nn_safetensors *st, const char *path, char *err) {
  memset(st, 0, sizeof(*st));
  char e2[SP_ERRLEN];
  st->buf = sp_file_read(path, &st->len, e2);
  if (!st->buf) return sp_errf(err, "cannot read safetensors file %s: %s", path, e2);
  if (st->len < 8) {
    sp_errf(err, "%s is not a safetensors file (only %zu bytes)", path, st->len);
    nn_st_close(st);
    return -1;
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | (unsigned char)st->buf[i];
  if (n < 2 || n > st->len - 8 || n > (100u << 20)) {
    size_t len = st->len;
    sp_errf(err, "%s is not a safetensors file or is truncated: header length %llu, file %zu bytes",
                   path, (unsigned long long)n, len);
    nn_st_close(st);
    return -1;
  }
  st->data_off = 8 + n;
  size_t dlen = st->len - st->data_off;
  cJSON *root = cJSON_ParseWithLength(st->buf + 8, n);
  if (!root || !cJSON_IsObject(root)) {
    if (root) cJSON_Delete(root);
    sp_errf(err, "%s: safetensors header is not valid JSON (corrupt file?)", path);
    nn_st_close(st);
    return -1;
  }
  st->json = root;
  int cnt = cJSON_GetArraySize(root);
  st->t = calloc(cnt ? cnt : 1, sizeof(nn_st_tensor));
  SP_ASSERT(st->t);
  for (cJSON *it = root->child; it; it = it->next) {
    if (!strcmp(it->string, "__metadata__")) {
      if (!cJSON_IsObject(it)) goto bad_meta;
      st->meta = it;
      continue;
    }
    nn_st_tensor *t = &st->t[st->n];
    if (strlen(it->string) >= NN_NAME_MAX) {
      sp_errf(err, "%s: tensor name too long: %.40s...", path, it->string);
      nn_st_close(st);
      return -1;
    }
    strcpy(t->name, it->string);
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
        cJSON_GetArraySize(off) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) ||
        !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) || cJSON_GetArraySize(sh) > NN_MAX_DIMS ||
        strlen(dt->valuestring) >= sizeof(t->dtype)) {
      sp_errf(err, "%s: malformed entry for tensor '%s'", path, t->name);
      nn_st_close(st);
      return -1;
    }
    strcpy(t->dtype, dt->valuestring);
    size_t numel = 1;
    t->ndim = 0;
    for (cJSON *d = sh->child; d; d = d->next) {
      if (!cJSON_IsNumber(d) || d->valuedouble < 0) {
        sp_errf(err, "%s: bad shape for tensor '%s'", path, t->name);
        nn_st_close(st);
        return -1;
      }
      t->shape[t->ndim++] = (int64_t)d->valuedouble;
      numel *= (size_t)d->valuedouble;
    }
    double b = cJSON_GetArrayItem(off, 0)->valuedouble, e = cJSON_GetArrayItem(off, 1)->valuedouble;
    size_t es = dtype_size(t->dtype);
    if (b < 0 || e < b || e > (double)dlen || (es && (size_t)(e - b) != numel * es)) {
      sp_errf(err, "%s: tensor '%s' has data offsets [%.0f, %.0f] inconsistent with its shape or the "
                     "file size (%zu data bytes): truncated or corrupt file", path, it->string, b, e, dlen);
      nn_st_close(st);
      return -1;
    }
    t->begin = (size_t)b;
    t->end = (size_t)e;
    st->n++;
  }
  return 0;
bad_meta:
  sp_errf(err, "%s: __metadata__ is not an object", path);
  nn_st_close(st);
  return -1;
}

const nn_st_tensor *nn_st_find(const nn_safetensors *st, const char *name) {
  for (int i = 0; i < st->n; i++)
    if (!strcmp(st->t[i].name, name)) return &st->t[i];
  return NULL;
}

static const void *st_data(const nn_safetensors *st, const char *name, const char *dtype,
                           size_t *numel) {
  const nn_st_tensor *t = nn_st_find(st, name);
  if (!t || strcmp(t->dtype, dtype)) return NULL;
  const char *p = st->buf + st->data_off + t->begin;
  if ((uintptr_t)p % 4) return NULL;  // writers pad the header to 8 bytes
  if (numel) *numel = (t->end - t->begin) / dtype_size(dtype);
  return p;
}

const float *nn_st_f32(const nn_safetensors *st, const char *name, size_t *numel) {
  return st_data(st, name, "F32", numel);
}

const int32_t *nn_st_i32(const nn_safetensors *st, const char *name, size_t *numel) {
  return st_data(st, name, "I32", numel);
}

const uint8_t *nn_st_u8(const nn_safetensors *st, const char *name, size_t *numel) {
  return st_data(st, name, "U8", numel);
}

const char *nn_st_meta(const nn_safetensors *st, const char *key) {
  if (!st->meta) return NULL;
  cJSON *v = cJSON_GetObjectItemCaseSensitive((cJSON *)st->meta, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---------------------------------------------------------------------------------------------
 * checkpoints */

typedef struct {
  const char *prefix;
  const float *buf;
} ckpt_part;

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

/* IEEE 754 binary16, round to nearest even; |x| above the largest half (65504, after rounding)
 * becomes infinity, NaN stays NaN */
uint16_t nn_half_from_float(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t exp = (u >> 23) & 0xFFu, man = u & 0x7FFFFFu;
  if (exp == 0xFF) return (uint16_t)(sign | 0x7C00u | (man ? 0x200u : 0));
  int e = (int)exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7C00u);
  if (e <= 0) {  // subnormal half (or zero): shift the full mantissa, round to nearest even
    if (e < -10) return sign;
    uint32_t m = man | 0x800000u;
    int shift = 14 - e;
    uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;  // a carry into the exponent is right
  return (uint16_t)(sign | h);
}

float nn_float_from_half(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, u;
  if (exp == 0x1F) u = sign | 0x7F800000u | (man << 13);
  else if (exp) u = sign | ((exp - 15 + 127) << 23) | (man << 13);
  else if (!man) u = sign;
  else {  // subnormal: normalise
    int e = -1;
    do { man <<= 1; e++; } while (!(man & 0x400u));
    u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FFu) << 13);
  }
  float x;
  memcpy(&x, &u, 4);
  return x;
}

int nn_checkpoint_to_f16(const char *in, const char *out, char *err) {
  nn_safetensors st;
  if (nn_st_open(&st, in, err)) return -1;
  const char *fmt = nn_st_meta(&st, "format");
  if (!fmt || strcmp(fmt, NN_CKPT_FORMAT)) {
    nn_st_close(&st);
    return sp_errf(err, "%s is not an sp checkpoint (metadata format '%s')", in, fmt ? fmt : "(none)");
  }
  cJSON *root = cJSON_CreateObject();
  cJSON *meta = cJSON_Duplicate((cJSON *)st.meta, 1);
  cJSON_ReplaceItemInObject(meta, "optim", cJSON_CreateString("none"));
  cJSON_AddItemToObject(root, "__metadata__", meta);
  size_t off = 0;
  int rc = 0;
  for (int i = 0; i < st.n && !rc; i++) {
    const nn_st_tensor *t = &st.t[i];
    if (!strncmp(t->name, "optim.", 6) || !strncmp(t->name, "ema.", 4)) continue;  // training state
    if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "F16")) {
      rc = sp_errf(err, "%s: tensor '%s' has dtype %s (F32 or F16 only)", in, t->name, t->dtype);
      break;
    }
    size_t numel = (t->end - t->begin) / dtype_size(t->dtype);
    cJSON *o = cJSON_AddObjectToObject(root, t->name);
    cJSON_AddStringToObject(o, "dtype", "F16");
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
    cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + numel * 2)));
    off += numel * 2;
  }
  char *hdr = rc ? NULL : cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (rc) { nn_st_close(&st); return -1; }
  size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
  char *buf = malloc(8 + padded + off);
  if (!buf) { free(hdr); nn_st_close(&st); return sp_errf(err, "out of memory"); }
  for (int i = 0; i < 8; i++) buf[i] = (char)(unsigned char)((uint64_t)padded >> (8 * i));
  memcpy(buf + 8, hdr, hl);
  memset(buf + 8 + hl, ' ', padded - hl);
  free(hdr);
  uint16_t *dst = (uint16_t *)(buf + 8 + padded);
  for (int i = 0; i < st.n && !rc; i++) {
    const nn_st_tensor *t = &st.t[i];
    if (!strncmp(t->name, "optim.", 6) || !strncmp(t->name, "ema.", 4)) continue;
    const char *src = st.buf + st.data_off + t->begin;
    size_t numel = (t->end - t->begin) / dtype_size(t->dtype);
    for (size_t k = 0; k < numel; k++) {
      float x;
      uint16_t h;
      if (!strcmp(t->dtype, "F16")) {
        memcpy(&h, src + 2 * k, 2);
      } else {
        memcpy(&x, src + 4 * k, 4);
        h = nn_half_from_float(x);
        if ((h & 0x7C00u) == 0x7C00u) {
          rc = sp_errf(err, "%s: tensor '%s' element %zu (%g) does not fit a half float", in, t->name, k, x);
          break;
        }
      }
      memcpy(dst++, &h, 2);
    }
  }
  if (!rc) rc = sp_file_write_atomic(out, buf, 8 + padded + off, err);
  free(buf);
  nn_st_close(&st);
  return rc;
}

int nn_st_save(const char *path, const nn_st_out *t, int n, const char *const *meta, char *err) {
  cJSON *root = cJSON_CreateObject();
  cJSON *mo = cJSON_AddObjectToObject(root, "__metadata__");
  for (int i = 0; meta && meta[i]; i += 2) cJSON_AddStringToObject(mo, meta[i], meta[i + 1] ? meta[i + 1] : "");
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    size_t es = dtype_size(t[i].dtype), numel = 1;
    SP_ASSERT(es && t[i].ndim >= 0 && t[i].ndim <= NN_MAX_DIMS);
    for (int d = 0; d < t[i].ndim; d++) numel *= (size_t)t[i].shape[d];
    cJSON *o = cJSON_AddObjectToObject(root, t[i].name);
    cJSON_AddStringToObject(o, "dtype", t[i].dtype);
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; d < t[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[d]));
    cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + numel * es)));
    off += numel * es;
  }
  char *hdr = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  SP_ASSERT(hdr);
  size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
    free(hdr);
    return sp_errf(err, "path too long: %s", path);
  }
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    free(hdr);
    return sp_errf(err, "cannot create %s: %s", tmp, strerror(errno));
  }
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  int rc = write_all(f, len8, 8) || write_all(f, hdr, hl);
  for (size_t i = hl; i < padded && !rc; i++) rc = write_all(f, " ", 1);
  free(hdr);
  for (int i = 0; i < n && !rc; i++) {
    size_t numel = 1;
    for (int d = 0; d < t[i].ndim; d++) numel *= (size_t)t[i].shape[d];
    rc = write_all(f, t[i].data, numel * dtype_size(t[i].dtype));
  }
  if (!rc) rc = fflush(f) || fsync(fileno(f));
  if (fclose(f)) rc = -1;
  if (rc) {
    int e = errno;
    unlink(tmp);
    return sp_errf(err, "writing %s failed: %s (old file left untouched)", tmp, strerror(e));
  }
  if (rename(tmp, path)) {
    int e = errno;
    unlink(tmp);
    return sp_errf(err, "cannot rename %s to %s: %s", tmp, path, strerror(e));
  }
  return 0;
}

int nn_checkpoint_save(const char *path, const nn_params *ps, const char *config_json, long step,
                       int with_optim, char *err) {
  ckpt_part parts[4];
  int np = 0;
  parts[np++] = (ckpt_part){"", ps->data};
  if (with_optim && ps->m && ps->v) {
    parts[np++] = (ckpt_part){"optim.exp_avg.", ps->m};
    parts[np++] = (ckpt_part){"optim.exp_avg_sq.", ps->v};
  }
  if (with_optim && ps->ema) parts[np++] = (ckpt_part){"ema.", ps->ema};
  nn_st_out *t = calloc((size_t)np * (size_t)ps->n + 1, sizeof *t);
  if (!t) return sp_errf(err, "out of memory writing checkpoint %s", path);
  int n = 0;
  for (int k = 0; k < np; k++)
    for (int i = 0; i < ps->n; i++, n++) {
      const nn_param *p = &ps->p[i];
      snprintf(t[n].name, sizeof t[n].name, "%s%s", parts[k].prefix, p->name);
      t[n].dtype = "F32";
      t[n].ndim = p->ndim;
      for (int d = 0; d < p->ndim; d++) t[n].shape[d] = p->shape[d];
      t[n].data = parts[k].buf + p->offset;
    }
  char sbuf[32];
  snprintf(sbuf, sizeof sbuf, "%ld", step);
  const char *meta[] = {"format", NN_CKPT_FORMAT, "version", NN_CKPT_VERSION, "step", sbuf,
                        "config", config_json ? config_json : "{}", "optim", np > 1 ? "adamw" : "none", NULL};
  int rc = nn_st_save(path, t, n, meta, err);
  free(t);
  return rc;
}

int nn_checkpoint_load(const char *path, nn_params *ps, long *step, char **config, char *err) {
  nn_safetensors st;
  if (ps->data) nn_weights_thaw(ps->data, ps->total);
  if (ps->ema) nn_weights_thaw(ps->ema, ps->total);
  if (nn_st_open(&st, path, err)) return -1;
  const char *fmt = nn_st_meta(&st, "format"), *ver = nn_st_meta(&st, "version");
  if (!fmt || strcmp(fmt, NN_CKPT_FORMAT)) {
    sp_errf(err, "%s is a safetensors file but not an sp checkpoint (metadata format '%s', want '%s')",
                   path, fmt ? fmt : "(none)", NN_CKPT_FORMAT);
    nn_st_close(&st);
    return -1;
  }
  if (!ver || strcmp(ver, NN_CKPT_VERSION)) {
    sp_errf(err, "%s: checkpoint version '%s' not supported (this build reads version %s)", path,
                   ver ? ver : "(none)", NN_CKPT_VERSION);
    nn_st_close(&st);
    return -1;
  }
  /* validate everything before touching the caller's buffers */
  const char *prefixes[4] = {"", "optim.exp_avg.", "optim.exp_avg_sq.", "ema."};
  float *bufs[4] = {ps->data, ps->m, ps->v, ps->ema};
  char name[NN_NAME_MAX + 32];
  for (int i = 0; i < ps->n; i++) {
    const nn_param *p = &ps->p[i];
    const nn_st_tensor *t = nn_st_find(&st, p->name);
    if (!t) {
      sp_errf(err, "%s: parameter '%s' missing (checkpoint of a different model?)", path, p->name);
      nn_st_close(&st);
      return -1;
    }
    int same = t->ndim == p->ndim && (!strcmp(t->dtype, "F32") || !strcmp(t->dtype, "F16"));
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
    if (!same) {
      sp_errf(err, "%s: parameter '%s' has dtype %s and %d dims in the file, the model wants F32 with %d "
              "dims (first dim %lld vs %lld): config mismatch", path, p->name, t->dtype, t->ndim, p->ndim,
              (long long)(t->ndim ? t->shape[0] : 0), (long long)(p->ndim ? p->shape[0] : 0));
      nn_st_close(&st);
      return -1;
    }
  }
  for (int k = 0; k < 4; k++) {
    if (!bufs[k]) continue;
    for (int i = 0; i < ps->n; i++) {
      const nn_param *p = &ps->p[i];
      snprintf(name, sizeof name, "%s%s", prefixes[k], p->name);
      const nn_st_tensor *t = nn_st_find(&st, name);
      if (!t) {
        if (k == 0) SP_ASSERT(0);
        break;  // moments/EMA absent: keep the caller's (zeros)
      }
      const int f16 = !strcmp(t->dtype, "F16");
      if (t->end - t->begin != p->numel * (f16 ? 2 : 4) || (strcmp(t->dtype, "F32") && !f16)) {
        sp_errf(err, "%s: tensor '%s' has the wrong size", path, name);
        nn_st_close(&st);
        return -1;
      }
      const char *src = st.buf + st.data_off + t->begin;
      if (!f16) {
        memcpy(bufs[k] + p->offset, src, p->numel * 4);
      } else {
        for (size_t e = 0; e < p->numel; e++) {
          uint16_t h;
          memcpy(&h, src + 2 * e, 2);
          bufs[k][p->offset + e] = nn_float_from_half(h);
        }
      }
    }
  }
  if (step) {
    const char *s = nn_st_meta(&st, "step");
    *step = s ? atol(s) : 0;
  }
  if (config) {
    const char *c = nn_st_meta(&st, "config");
    *config = strdup(c ? c : "{}");
  }
  nn_st_close(&st);
  return 0;
}
