/* crop.c: crop windows per task and camera, crop + resize of frames, stored-image intrinsics,
 * and the geoms of each task's object mask. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "data/collect.h"

/* The built-in table: AVDC's centre crop for every task and camera. The paper (Appendix D) crops
 * "based on task-specific visual layouts" with manually chosen windows it does not publish; a
 * row here (or --crop) sets one. Values are for a 320 x 240 render and scale with it. */
static const sp_crop g_crop_table[] = {
    {-1, -1, SP_CROP_AVDC_ROW, SP_CROP_AVDC_COL, SP_CROP_AVDC_SIZE, SP_CROP_AVDC_SIZE},
};

sp_crop sp_crop_lookup(int task, int cam, int render_w, int render_h, const sp_crop *over, int nover) {
  for (int i = nover - 1; i >= 0; i--)
    if ((over[i].task < 0 || over[i].task == task) && (over[i].cam < 0 || over[i].cam == cam))
      return over[i];
  sp_crop c = g_crop_table[0];
  int n = (int)(sizeof g_crop_table / sizeof g_crop_table[0]);
  for (int i = n - 1; i >= 0; i--)
    if ((g_crop_table[i].task < 0 || g_crop_table[i].task == task) &&
        (g_crop_table[i].cam < 0 || g_crop_table[i].cam == cam)) {
      c = g_crop_table[i];
      break;
    }
  double sx = render_w / 320.0, sy = render_h / 240.0;
  c.task = task;
  c.cam = cam;
  c.row = (int)lround(c.row * sy);
  c.h = (int)lround(c.h * sy);
  c.col = (int)lround(c.col * sx);
  c.w = (int)lround(c.w * sx);
  return c;
}

int sp_crop_parse(const char *spec, sp_crop *out, int cap, char *err) {
  int n = 0;
  const char *p = spec;
  while (p && *p) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[256];
    if (len >= sizeof item) return sp_errf(err, "crop '%.*s' too long", (int)len, p);
    memcpy(item, p, len);
    item[len] = 0;
    p = end ? end + 1 : NULL;
    if (!len) continue;
    char *eq = strchr(item, '='), *sl = strchr(item, '/');
    if (!eq || !sl || sl > eq)
      return sp_errf(err, "crop '%s': expected TASK/CAMERA=ROW,COL,H,W ('*' for any task or camera)", item);
    *eq = 0;
    *sl = 0;
    sp_crop c;
    c.task = strcmp(item, "*") ? sp_task_find(item) : -1;
    c.cam = strcmp(sl + 1, "*") ? sp_camera_find(sl + 1) : -1;
    if (c.task < 0 && strcmp(item, "*")) return sp_errf(err, "crop: unknown task '%s'", item);
    if (c.cam < 0 && strcmp(sl + 1, "*")) return sp_errf(err, "crop: unknown camera '%s'", sl + 1);
    char tail;
    if (sscanf(eq + 1, "%d,%d,%d,%d%c", &c.row, &c.col, &c.h, &c.w, &tail) != 4 || c.row < 0 ||
        c.col < 0 || c.h < 1 || c.w < 1)
      return sp_errf(err, "crop '%s': window '%s' is not ROW,COL,H,W with H, W >= 1", item, eq + 1);
    if (n == cap) return sp_errf(err, "more than %d crop windows", cap);
    out[n++] = c;
  }
  return n;
}

/* area weights of one axis: output i covers source [o + i*s, o + (i+1)*s) with s = len/sz */
typedef struct {
  int first, ntap;
  float w[64];
} taps;

static void axis_taps(int off, int len, int sz, int i, taps *t) {
  double s = (double)len / sz, a = off + i * s, b = off + (i + 1) * s;
  int k0 = (int)floor(a), k1 = (int)ceil(b) - 1;
  if (k1 - k0 + 1 > 64) k1 = k0 + 63;  // sz >= len / 64 is checked by the caller
  t->first = k0;
  t->ntap = k1 - k0 + 1;
  double tot = 0;
  for (int k = k0; k <= k1; k++) {
    double lo = a > k ? a : k, hi = b < k + 1 ? b : k + 1;
    t->w[k - k0] = (float)(hi - lo);
    tot += hi - lo;
  }
  for (int k = 0; k < t->ntap; k++) t->w[k] = (float)(t->w[k] / tot);
}

void sp_crop_resize_rgb(const uint8_t *src, int w0, const sp_crop *c, int sz, uint8_t *dst) {
  if (c->h == sz && c->w == sz) {  // a plain crop
    for (int i = 0; i < sz; i++)
      memcpy(dst + (size_t)i * sz * 3, src + ((size_t)(c->row + i) * w0 + c->col) * 3, (size_t)sz * 3);
    return;
  }
  taps tx[SP_DATA_MAX_SIZE];
  for (int j = 0; j < sz; j++) axis_taps(c->col, c->w, sz, j, &tx[j]);
  for (int i = 0; i < sz; i++) {
    taps ty;
    axis_taps(c->row, c->h, sz, i, &ty);
    for (int j = 0; j < sz; j++) {
      float acc[3] = {0, 0, 0};
      for (int a = 0; a < ty.ntap; a++) {
        const uint8_t *row = src + (size_t)(ty.first + a) * w0 * 3;
        for (int b = 0; b < tx[j].ntap; b++) {
          float wt = ty.w[a] * tx[j].w[b];
          const uint8_t *px = row + (size_t)(tx[j].first + b) * 3;
          acc[0] += wt * px[0];
          acc[1] += wt * px[1];
          acc[2] += wt * px[2];
        }
      }
      uint8_t *o = dst + ((size_t)i * sz + j) * 3;
      for (int k = 0; k < 3; k++) {
        float v = acc[k] + 0.5f;
        o[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
      }
    }
  }
}

static int nearest(int off, int len, int sz, int i) {
  int k = off + (int)floor((i + 0.5) * len / (double)sz);
  return k < off + len ? k : off + len - 1;
}

void sp_crop_resize_f32(const float *src, int w0, const sp_crop *c, int sz, float *dst) {
  for (int i = 0; i < sz; i++) {
    int r = nearest(c->row, c->h, sz, i);
    for (int j = 0; j < sz; j++) dst[(size_t)i * sz + j] = src[(size_t)r * w0 + nearest(c->col, c->w, sz, j)];
  }
}

void sp_crop_resize_u8(const uint8_t *src, int w0, const sp_crop *c, int sz, uint8_t *dst) {
  for (int i = 0; i < sz; i++) {
    int r = nearest(c->row, c->h, sz, i);
    for (int j = 0; j < sz; j++) dst[(size_t)i * sz + j] = src[(size_t)r * w0 + nearest(c->col, c->w, sz, j)];
  }
}

double sp_crop_fovy(const sp_env_model *em, int cam, const sp_crop *c, int render_h) {
  double half = tan(0.5 * em->m0->cam_fovy[em->cam_id[cam]] * M_PI / 180.0) * c->h / render_h;
  return 2.0 * atan(half) * 180.0 / M_PI;
}

void sp_crop_intrinsics(const double K[9], const sp_crop *c, int sz, double out[9]) {
  double sx = (double)sz / c->w, sy = (double)sz / c->h;
  memset(out, 0, sizeof(double) * 9);
  out[0] = K[0] * sx;
  out[4] = K[4] * sy;
  out[2] = (K[2] - c->col + 0.5) * sx - 0.5;
  out[5] = (K[5] - c->row + 0.5) * sy - 0.5;
  out[8] = 1;
}

/* ---- masks: the manipulated object of each task (cf. AVDC's name2maskid, which lists geom ids
 * of the same objects; names keep this valid for the built-in scenes as well) ---- */
static const char *g_mask_bodies[SP_NTASK] = {
    [SP_TASK_DOOR_OPEN] = "door_link",          // door panel and handle
    [SP_TASK_DOOR_CLOSE] = "door_link",
    [SP_TASK_BASKETBALL] = "bsktball",
    [SP_TASK_SHELF_PLACE] = "obj",              // the block
    [SP_TASK_BUTTON_PRESS] = "button",
    [SP_TASK_BUTTON_PRESS_TOPDOWN] = "button",
    [SP_TASK_FAUCET_CLOSE] = "faucet_link2",    // the handle that turns
    [SP_TASK_FAUCET_OPEN] = "faucet_link2",
    [SP_TASK_HANDLE_PRESS] = "handle_link",
    [SP_TASK_HAMMER] = "hammer",
    [SP_TASK_ASSEMBLY] = "asmbly_peg",          // the nut with its handle
};

const char *sp_mask_bodies(int task) { return task >= 0 && task < SP_NTASK ? g_mask_bodies[task] : ""; }

int sp_mask_geoms(const sp_env_model *em, int *ids, int cap, char *err) {
  const mjModel *m = em->m0;
  const char *list = sp_mask_bodies(em->task);
  int n = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int b = mj_name2id(m, mjOBJ_BODY, tok);
    if (b < 0) return sp_errf(err, "%s: mask body '%s' is not in the scene", sp_task_name(em->task), tok);
    for (int g = 0; g < m->ngeom; g++) {
      int in = 0;  // the geom's body is b or lies below it
      for (int a = m->geom_bodyid[g]; a > 0 && !in; a = m->body_parentid[a]) in = a == b;
      if (in && m->geom_group[g] <= 2) {
        if (n == cap) return sp_errf(err, "%s: more than %d mask geoms", sp_task_name(em->task), cap);
        ids[n++] = g;
      }
    }
  }
  if (!n) return sp_errf(err, "%s: the mask bodies '%s' have no visible geoms", sp_task_name(em->task), list);
  return n;
}
