/* page.c: sp report: evaluation runs (and training logs) as one self-contained HTML page.
 *
 * Everything the page shows is read from the runs' results.json (per-episode records, counts,
 * time sums, config) and gifs/, and from the trainers' train.jsonl; charts are inline SVG and the
 * GIFs are re-encoded as small thumbnails embedded as data: URIs, so the page opens offline as a
 * single file. The paper's reported numbers (Table 1, Tables 2-5) are quoted for reference. */
#include <cjson/cJSON.h>
#include <gif_lib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "eval/eval_internal.h"

void sp_report_config_default(sp_report_config *c) {
  memset(c, 0, sizeof *c);
  c->gif_seed = -1;
  c->gif_step = 4;
  c->gif_scale = 2;
  c->title = "sp report";
}

/* ---- text ---- */

typedef struct {
  char *s;
  size_t len, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *p, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (b->len + n + 1 > cap) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) { b->oom = 1; return; }
    b->s = s;
    b->cap = cap;
  }
  memcpy(b->s + b->len, p, n);
  b->len += n;
  b->s[b->len] = 0;
}

/* a string literal, its length counted by the compiler */
#define SB_LIT(b, lit) sb_put((b), lit, sizeof lit - 1)

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) { sb_put(b, tmp, (size_t)n); return; }
  char *big = malloc((size_t)n + 1);
  if (!big) { b->oom = 1; return; }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb_put(b, big, (size_t)n);
  free(big);
}

/* text as HTML (element content and attribute values) */
static void sb_esc(sbuf *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '<': SB_LIT(b, "&lt;"); break;
      case '>': SB_LIT(b, "&gt;"); break;
      case '&': SB_LIT(b, "&amp;"); break;
      case '"': SB_LIT(b, "&quot;"); break;
      case '\'': SB_LIT(b, "&#39;"); break;
      default: sb_put(b, s, 1);
    }
  }
}

static void sb_base64(sbuf *b, const unsigned char *p, size_t n) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char q[4];
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    q[0] = t[v >> 18 & 63];
    q[1] = t[v >> 12 & 63];
    q[2] = i + 1 < n ? t[v >> 6 & 63] : '=';
    q[3] = i + 2 < n ? t[v & 63] : '=';
    sb_put(b, q, 4);
  }
}

/* seconds for people: "12.3 ms", "4.56 s", "0 s" */
static void fmt_secs(char *buf, size_t cap, double v) {
  if (v <= 0) snprintf(buf, cap, "0 s");
  else if (v < 1e-3) snprintf(buf, cap, "%.3f ms", 1e3 * v);
  else if (v < 1) snprintf(buf, cap, "%.1f ms", 1e3 * v);
  else snprintf(buf, cap, "%.2f s", v);
}

/* ---- the paper's numbers (Spatial Policy, Table 1 and Tables 2-5), percent ---- */

/* Table 1, tasks in sp's order (that of the paper's table), then Overall */
static const struct {
  const char *method;
  double rate[SP_NTASK + 1];
} k_table1[] = {
    {"AVDC", {30.7, 28.0, 21.3, 8.0, 34.7, 17.3, 12.0, 17.3, 41.3, 0.0, 5.3, 19.6}},
    {"AVDC-R", {72.0, 89.3, 37.3, 18.7, 60.0, 24.0, 53.3, 24.0, 81.3, 8.0, 6.7, 43.1}},
    {"VA", {40.0, 29.3, 13.3, 9.3, 38.7, 18.7, 46.7, 12.0, 36.0, 0.0, 1.3, 22.3}},
    {"VA-OR", {82.7, 97.3, 40.0, 26.7, 73.3, 44.0, 74.7, 46.7, 86.7, 8.0, 10.7, 53.7}},
    {"SP", {98.6, 100.0, 66.7, 80.0, 94.7, 96.0, 93.3, 89.3, 100.0, 74.7, 24.0, 83.4}},
    {"SP-R", {98.6, 100.0, 73.3, 92.0, 96.0, 98.6, 92.0, 96.0, 100.0, 73.3, 32.0, 86.7}},
};

/* Appendix C's difficulty of each task (sp's order) */
enum { LV_EASY, LV_MEDIUM, LV_HARD, LV_VERY_HARD, NLEVEL };
static const char *const k_level_name[NLEVEL] = {"Easy", "Medium", "Hard", "Very Hard"};
static const int k_level[SP_NTASK] = {
    LV_EASY,       // door-open
    LV_EASY,       // door-close
    LV_MEDIUM,     // basketball
    LV_VERY_HARD,  // shelf-place
    LV_EASY,       // button-press
    LV_EASY,       // button-press-topdown
    LV_EASY,       // faucet-close
    LV_EASY,       // faucet-open
    LV_EASY,       // handle-press
    LV_MEDIUM,     // hammer
    LV_HARD,       // assembly
};

/* Tables 2-5: Easy, Medium, Hard, Very Hard, Overall */
static const struct {
  const char *table, *method;
  double rate[NLEVEL + 1];
} k_levels_paper[] = {
    {"Table 2 (video model)", "AVDC", {75.0, 48.7, 26.7, 48.0, 63.4}},
    {"Table 2 (video model)", "Distance", {93.5, 56.7, 25.3, 81.3, 79.4}},
    {"Table 2 (video model)", "Subplan", {96.8, 63.3, 24.0, 78.7, 82.4}},
    {"Table 3 (action model)", "Flow", {25.9, 10.7, 5.3, 8.0, 19.6}},
    {"Table 3 (action model)", "Ours", {75.0, 48.7, 26.7, 48.0, 63.4}},
    {"Table 4 (plan injection)", "Global Cond", {96.8, 63.3, 24.0, 78.7, 82.4}},
    {"Table 4 (plan injection)", "Local Cond", {99.0, 62.0, 29.3, 80.0, 84.3}},
    {"Table 5 (replanning)", "NR", {96.8, 63.3, 24.0, 78.7, 82.4}},
    {"Table 5 (replanning)", "GR", {96.0, 70.7, 24.0, 80.0, 83.4}},
    {"Table 5 (replanning)", "GR&ER", {97.3, 73.3, 32.0, 92.0, 86.7}},
};

/* ---- one evaluation run ---- */

typedef struct {
  int k, n;
} tally;

typedef struct {
  int task, cam, success, frames;
  long seed;
} ep_lite;

typedef struct {
  char dir[1024], label[256], agent[128], scenes[32], quality[16], gl[256], checkpoint[256];
  int width, height;
  tally task[SP_NTASK], cam[SP_NCAMERA], level[NLEVEL], all;
  long nan, warn, errors, vlm_fallbacks;
  int has_vlm;  // some record carries a vlm_fallbacks count
  double t[7];  // time sums: physics, render, planning, video, policy, matching, other
  ep_lite *eps;
  int n;
} run_data;

static const char *const k_time_name[7] = {"physics", "render", "planning", "video", "policy", "matching", "other"};
static const char *const k_time_colour[7] = {"#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#e15759", "#76b7b2", "#bab0ac"};

static const char *str_of(const cJSON *o, const char *k, const char *dflt) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(x) ? x->valuestring : dflt;
}

static double num_of(const cJSON *o, const char *k, double dflt) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(x) ? x->valuedouble : dflt;
}

/* read DIR/results.json into r; 0, or -1 with err */
static int run_load(const char *dir, const char *label, run_data *r, char *err) {
  memset(r, 0, sizeof *r);
  snprintf(r->dir, sizeof r->dir, "%s", dir);
  char path[1200];
  snprintf(path, sizeof path, "%s/results.json", dir);
  char *txt = sp_file_read(path, NULL, err);
  if (!txt) return sp_errf(err, "%s: no results.json (is it an sp eval directory? a run that did not finish has none)", dir);
  cJSON *o = cJSON_Parse(txt);
  free(txt);
  const cJSON *eps = o ? cJSON_GetObjectItemCaseSensitive(o, "episodes") : NULL;
  const cJSON *conf = o ? cJSON_GetObjectItemCaseSensitive(o, "config") : NULL;
  if (!cJSON_IsArray(eps) || !cJSON_IsObject(conf)) {
    cJSON_Delete(o);
    return sp_errf(err, "%s: not an sp eval results.json (no episodes or config)", path);
  }
  snprintf(r->agent, sizeof r->agent, "%s", str_of(o, "agent", "?"));
  snprintf(r->scenes, sizeof r->scenes, "%s", str_of(conf, "scenes", "?"));
  snprintf(r->quality, sizeof r->quality, "%s", str_of(conf, "render_quality", "?"));
  snprintf(r->checkpoint, sizeof r->checkpoint, "%s", str_of(conf, "checkpoint", "none"));
  r->width = (int)num_of(conf, "width", 0);
  r->height = (int)num_of(conf, "height", 0);
  if (label && *label) {
    snprintf(r->label, sizeof r->label, "%s", label);
  } else {
    /* the directory's last component */
    char d[1024];
    snprintf(d, sizeof d, "%s", dir);
    size_t L = strlen(d);
    while (L > 1 && d[L - 1] == '/') d[--L] = 0;
    const char *b = strrchr(d, '/');
    snprintf(r->label, sizeof r->label, "%s", b ? b + 1 : d);
  }
  const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "timing_seconds");
  snprintf(r->gl, sizeof r->gl, "%s", str_of(ts, "gl_renderer", "?"));
  for (int i = 0; i < 7; i++) r->t[i] = num_of(ts, k_time_name[i], 0);
  int n = cJSON_GetArraySize(eps);
  r->eps = calloc((size_t)(n ? n : 1), sizeof *r->eps);
  if (!r->eps) { cJSON_Delete(o); return sp_errf(err, "out of memory"); }
  const cJSON *e;
  cJSON_ArrayForEach(e, eps) {
    int t = sp_task_find(str_of(e, "task", "")), c = sp_camera_find(str_of(e, "camera", ""));
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "success");
    if (t < 0 || c < 0 || !cJSON_IsBool(s)) {
      cJSON_Delete(o);
      return sp_errf(err, "%s: episode record %d has no valid task, camera or success", path, r->n + 1);
    }
    int ok = cJSON_IsTrue(s);
    r->eps[r->n++] = (ep_lite){t, c, ok, (int)num_of(e, "frames", 0), (long)num_of(e, "seed", -1)};
    r->task[t].k += ok; r->task[t].n++;
    r->cam[c].k += ok; r->cam[c].n++;
    r->level[k_level[t]].k += ok; r->level[k_level[t]].n++;
    r->all.k += ok; r->all.n++;
    r->nan += (long)num_of(e, "nan_count", 0);
    r->warn += (long)num_of(e, "mujoco_warnings", 0);
    r->errors += cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "error"));
    const cJSON *vf = cJSON_GetObjectItemCaseSensitive(e, "vlm_fallbacks");
    if (cJSON_IsNumber(vf)) { r->has_vlm = 1; r->vlm_fallbacks += (long)vf->valuedouble; }
  }
  cJSON_Delete(o);
  if (!r->n) return sp_errf(err, "%s: no episodes", path);
  return 0;
}

/* ---- GIF thumbnails ---- */

/* every step-th frame (and the last) of an sp GIF, downscaled by scale (box filter), as GIF
 * bytes in *out (malloc'd). tmp is a scratch path. 0, or -1 with err */
static int gif_thumb(const char *path, int step, int scale, const char *tmp, unsigned char **out,
                     size_t *outlen, char *err) {
  int gerr = 0;
  GifFileType *g = DGifOpenFileName(path, &gerr);
  if (!g) return sp_errf(err, "%s: cannot open GIF (%s)", path, GifErrorString(gerr));
  if (DGifSlurp(g) == GIF_ERROR || g->ImageCount < 1 || g->SWidth < scale || g->SHeight < scale) {
    sp_errf(err, "%s: cannot read GIF (%s)", path, GifErrorString(g->Error));
    DGifCloseFile(g, &gerr);
    return -1;
  }
  const int W = g->SWidth, H = g->SHeight, w = W / scale, h = H / scale;
  uint8_t *canvas = calloc((size_t)W * H * 3, 1), *small = malloc((size_t)w * h * 3);
  int delay = 4;
  GraphicsControlBlock gcb;
  if (DGifSavedExtensionToGCB(g, 0, &gcb) == GIF_OK && gcb.DelayTime > 0) delay = gcb.DelayTime;
  sp_gif *o = canvas && small ? sp_gif_open(tmp, w, h, delay * step, err) : NULL;
  int rc = o ? 0 : -1;
  if (!canvas || !small) sp_errf(err, "out of memory");
  for (int f = 0; f < g->ImageCount && !rc; f++) {
    const SavedImage *im = &g->SavedImages[f];
    const ColorMapObject *map = im->ImageDesc.ColorMap ? im->ImageDesc.ColorMap : g->SColorMap;
    int trans = -1;
    if (DGifSavedExtensionToGCB(g, f, &gcb) == GIF_OK) trans = gcb.TransparentColor;
    const GifImageDesc *d = &im->ImageDesc;
    for (int y = 0; y < d->Height && map; y++)
      for (int x = 0; x < d->Width; x++) {
        int X = d->Left + x, Y = d->Top + y, ci = im->RasterBits[(size_t)y * d->Width + x];
        if (X >= W || Y >= H || ci == trans || ci >= map->ColorCount) continue;
        uint8_t *p = canvas + ((size_t)Y * W + X) * 3;
        p[0] = map->Colors[ci].Red;
        p[1] = map->Colors[ci].Green;
        p[2] = map->Colors[ci].Blue;
      }
    if (f % step && f != g->ImageCount - 1) continue;
    sp_image_crop_resize(canvas, W, H, 3, 0, 0, w * scale, h * scale, small, w, h);
    rc = sp_gif_add(o, small, err);
  }
  DGifCloseFile(g, &gerr);
  free(canvas);
  free(small);
  if (o) {
    char e2[SP_ERRLEN];
    if (sp_gif_close(o, e2) && !rc) rc = sp_errf(err, "%s", e2);
  }
  if (rc) { unlink(tmp); return -1; }
  char *bytes = sp_file_read(tmp, outlen, err);
  unlink(tmp);
  if (!bytes) return -1;
  *out = (unsigned char *)bytes;
  return 0;
}

/* ---- SVG charts ---- */

typedef struct {
  const char *name;
  const double *x, *y;
  int n;
} series;

static const char *const k_line_colour[] = {"#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#9c755f"};

static double nice_step(double range) {
  double e = pow(10, floor(log10(range > 0 ? range : 1))), f = range / e;
  return (f <= 1.5 ? 0.2 : f <= 3.5 ? 0.5 : f <= 7.5 ? 1 : 2) * e;
}

/* a line chart of ns series (x ascending); logy when asked and every y > 0 */
static void svg_lines(sbuf *b, const char *title, const char *xlabel, const series *s, int ns, int logy) {
  const int W = 600, H = 280, L = 64, R = 16, T = 28, B = 44;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int k = 0; k < ns; k++)
    for (int i = 0; i < s[k].n; i++) {
      if (!isfinite(s[k].y[i])) continue;
      x0 = fmin(x0, s[k].x[i]); x1 = fmax(x1, s[k].x[i]);
      y0 = fmin(y0, s[k].y[i]); y1 = fmax(y1, s[k].y[i]);
      if (s[k].y[i] <= 0) logy = 0;
    }
  sb_printf(b, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\"><title>", W, H, W, H);
  sb_esc(b, title);
  sb_printf(b, "</title><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><text x=\"%d\" y=\"18\" class=\"ct\">", W, H, L);
  sb_esc(b, title);
  SB_LIT(b, "</text>");
  if (!(x0 <= x1) || !(y0 <= y1)) {
    sb_printf(b, "<text x=\"%d\" y=\"%d\">no data</text></svg>", L, H / 2);
    return;
  }
  if (x1 == x0) {  // one point: centre it
    double h = fmax(1.0, 0.1 * fabs(x0));
    x0 -= h;
    x1 += h;
  }
  double ly0 = logy ? log10(y0) : y0, ly1 = logy ? log10(y1) : y1;
  if (ly1 - ly0 < 1e-12) {
    double h = logy ? 0.5 : fmax(1e-6, 0.1 * fabs(ly0));
    ly0 -= h;
    ly1 += h;
  } else {  // a margin above and below the data
    double h = 0.05 * (ly1 - ly0);
    ly0 -= h;
    ly1 += h;
  }
  const double pw = W - L - R, ph = H - T - B;
#define PX(v) (L + pw * ((v) - x0) / (x1 - x0))
#define PY(v) (T + ph * (1 - ((logy ? log10(v) : (v)) - ly0) / (ly1 - ly0)))
  /* grid: y ticks */
  if (logy) {
    const double mult[3] = {1, 2, 5};
    int nm = ly1 - ly0 < 2.5 ? 3 : 1;  // 1-2-5 ticks over a short range, decades over a long one
    for (int e = (int)floor(ly0); e <= (int)ceil(ly1); e++)
      for (int m = 0; m < nm; m++) {
        double v = mult[m] * pow(10, e);
        if (log10(v) < ly0 - 1e-9 || log10(v) > ly1 + 1e-9) continue;
        sb_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/><text x=\"%d\" y=\"%.1f\" "
                  "text-anchor=\"end\">%g</text>", L, W - R, PY(v), PY(v), L - 4, PY(v) + 4, v);
      }
  } else {
    double st = nice_step(ly1 - ly0);
    for (double v = ceil(ly0 / st) * st; v <= ly1 + 1e-9 * st; v += st)
      sb_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/><text x=\"%d\" y=\"%.1f\" "
                "text-anchor=\"end\">%.4g</text>", L, W - R, PY(v), PY(v), L - 4, PY(v) + 4, fabs(v) < 1e-12 * st ? 0.0 : v);
  }
  double st = nice_step(x1 - x0);
  for (double v = ceil(x0 / st) * st; v <= x1 + 1e-9 * st; v += st)
    sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.6g</text>", PX(v), H - B + 16, v);
  sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", L + pw / 2, H - 8);
  sb_esc(b, xlabel);
  SB_LIT(b, "</text>");
  sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#888\"/>", L, T, pw, ph);
  for (int k = 0; k < ns; k++) {
    const char *col = k_line_colour[k % 8];
    sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col);
    for (int i = 0; i < s[k].n; i++)
      if (isfinite(s[k].y[i])) sb_printf(b, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
    SB_LIT(b, "\"/>");
    if (s[k].n == 1 && isfinite(s[k].y[0]))
      sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", PX(s[k].x[0]), PY(s[k].y[0]), col);
    sb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">",
              W - R - 200, T + 6 + 16 * k, col, W - R - 186, T + 15 + 16 * k);
    sb_esc(b, s[k].name);
    SB_LIT(b, "</text>");
  }
#undef PX
#undef PY
  SB_LIT(b, "</svg>");
}

/* mean seconds per episode of each run, as horizontal stacked bars */
static void svg_time_split(sbuf *b, const run_data *runs, int nrun) {
  size_t longest = 0;
  for (int i = 0; i < nrun; i++) longest = strlen(runs[i].label) > longest ? strlen(runs[i].label) : longest;
  const int L = 20 + (int)fmin(420.0, 6.5 * (double)longest), R = 20, bar = 22, gap = 12, T = 34, W = L + 620;
  const int H = T + nrun * (bar + gap) + 40;
  double mx = 0;
  for (int i = 0; i < nrun; i++) {
    double s = 0;
    for (int k = 0; k < 7; k++) s += runs[i].t[k] / runs[i].n;
    mx = fmax(mx, s);
  }
  if (mx <= 0) mx = 1;
  const double pw = W - L - R;
  sb_printf(b, "<svg class=\"chart\" id=\"time-chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\"><title>time per episode</title>"
            "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>", W, H, W, H, W, H);
  for (int k = 0; k < 7; k++)
    sb_printf(b, "<rect x=\"%d\" y=\"8\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"17\">%s</text>",
              L + 84 * k, k_time_colour[k], L + 84 * k + 14, k_time_name[k]);
  for (int i = 0; i < nrun; i++) {
    int y = T + i * (bar + gap);
    sb_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", L - 8, y + bar / 2 + 4);
    sb_esc(b, runs[i].label);
    SB_LIT(b, "</text>");
    double x = L, sum = 0;
    for (int k = 0; k < 7; k++) {
      double v = runs[i].t[k] / runs[i].n, wv = pw * v / mx;
      sum += v;
      char t[32];
      fmt_secs(t, sizeof t, v);
      if (wv > 0.05)
        sb_printf(b, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"><title>%s %s</title></rect>",
                  x, y, wv, bar, k_time_colour[k], k_time_name[k], t);
      x += wv;
    }
    char t[32];
    fmt_secs(t, sizeof t, sum);
    sb_printf(b, "<text x=\"%.1f\" y=\"%d\">%s</text>", fmin(x + 4, W - R - 50.0), y + bar / 2 + 4, t);
  }
  sb_printf(b, "<text x=\"%d\" y=\"%d\">mean seconds per episode (wall time of one worker)</text></svg>", L, H - 10);
}

/* ---- training logs ---- */

typedef struct {
  char name[64];
  double *x, *y;
  int n, cap;
} curve;

static curve *curve_get(curve **v, int *nv, const char *name) {
  for (int i = 0; i < *nv; i++)
    if (!strcmp((*v)[i].name, name)) return &(*v)[i];
  curve *nvp = realloc(*v, sizeof **v * (size_t)(*nv + 1));
  if (!nvp) return NULL;
  *v = nvp;
  curve *c = &(*v)[(*nv)++];
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  return c;
}

static void curve_add(curve *c, double x, double y) {
  if (!c) return;
  if (c->n == c->cap) {
    int cap = c->cap ? 2 * c->cap : 64;
    double *nx = realloc(c->x, sizeof(double) * (size_t)cap), *ny = nx ? realloc(c->y, sizeof(double) * (size_t)cap) : NULL;
    if (nx) c->x = nx;
    if (!ny) return;
    c->y = ny;
    c->cap = cap;
  }
  c->x[c->n] = x;
  c->y[c->n++] = y;
}

static void curves_free(curve *v, int n) {
  for (int i = 0; i < n; i++) { free(v[i].x); free(v[i].y); }
  free(v);
}

/* one training log: loss curves and every numeric validation field, charted */
static int train_section(sbuf *b, const char *arg, char *err) {
  char path[1200];
  size_t L = strlen(arg);
  if (L > 6 && !strcmp(arg + L - 6, ".jsonl")) snprintf(path, sizeof path, "%s", arg);
  else snprintf(path, sizeof path, "%s/train.jsonl", arg);
  char *txt = sp_file_read(path, NULL, err);
  if (!txt) return sp_errf(err, "--train-log %s: no %s (a directory written by sp train, or its train.jsonl)", arg, path);
  curve *tr = NULL, *va = NULL;
  int ntr = 0, nva = 0, nlines = 0, bad = 0;
  for (char *save = NULL, *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cJSON *o = cJSON_Parse(line);
    const cJSON *st = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
    if (!cJSON_IsNumber(st)) { bad++; cJSON_Delete(o); continue; }
    nlines++;
    double x = st->valuedouble;
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(o, "val");
    if (cJSON_IsObject(val)) {
      const cJSON *f;
      cJSON_ArrayForEach(f, val) if (cJSON_IsNumber(f)) curve_add(curve_get(&va, &nva, f->string), x, f->valuedouble);
    } else {
      const char *keys[] = {"loss", "loss_avg"};
      for (int k = 0; k < 2; k++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
        if (cJSON_IsNumber(f)) curve_add(curve_get(&tr, &ntr, keys[k]), x, f->valuedouble);
      }
    }
    cJSON_Delete(o);
  }
  free(txt);
  SB_LIT(b, "<div class=\"train\"><h3>");
  sb_esc(b, path);
  sb_printf(b, "</h3><p class=\"note\">%d log lines%s", nlines, bad ? "" : ".");
  if (bad) sb_printf(b, ", %d unreadable lines skipped.", bad);
  SB_LIT(b, "</p>");
  series s[8];
  int ns = 0;
  for (int i = 0; i < ntr && ns < 8; i++) s[ns++] = (series){tr[i].name, tr[i].x, tr[i].y, tr[i].n};
  svg_lines(b, "training loss", "step", s, ns, 1);
  /* validation: each metric with its copy_ baseline when the log has one; integer fields that
   * never change (clip counts, sampler settings) are listed, not charted */
  int nconst = 0;
  for (int i = 0; i < nva; i++) {
    int constant = 1;
    for (int k = 0; k < va[i].n; k++)
      constant &= va[i].y[k] == va[i].y[0] && va[i].y[k] == floor(va[i].y[k]);
    if (constant) {
      sb_printf(b, "%s%s %g", nconst++ ? ", " : "<p class=\"note\">validation settings: ", va[i].name, va[i].y[0]);
      continue;
    }
    if (!strncmp(va[i].name, "copy_", 5)) {
      int has_main = 0;
      for (int j = 0; j < nva; j++) has_main |= !strcmp(va[j].name, va[i].name + 5);
      if (has_main) continue;  // charted with its metric
    }
    series v[2] = {{va[i].name, va[i].x, va[i].y, va[i].n}};
    int nv = 1;
    char cname[80];
    snprintf(cname, sizeof cname, "copy_%s", va[i].name);
    for (int j = 0; j < nva; j++)
      if (!strcmp(va[j].name, cname)) v[nv++] = (series){"copy-the-first-frame baseline", va[j].x, va[j].y, va[j].n};
    char t[96];
    snprintf(t, sizeof t, "validation: %s", va[i].name);
    svg_lines(b, t, "step", v, nv, 0);
  }
  if (nconst) SB_LIT(b, "</p>");
  if (!nva) SB_LIT(b, "<p class=\"note\">no validation lines in this log.</p>");
  SB_LIT(b, "</div>");
  curves_free(tr, ntr);
  curves_free(va, nva);
  return 0;
}

/* ---- the page ---- */

static void pct_cell(sbuf *b, tally t) {
  if (!t.n) { SB_LIT(b, "<td class=\"na\">&ndash;</td>"); return; }
  double lo, hi;
  sp_wilson95(t.k, t.n, &lo, &hi);
  sb_printf(b, "<td><b>%.1f%%</b><br><span class=\"ci\">[%.0f, %.0f] %d/%d</span></td>", 100.0 * t.k / t.n,
            100 * lo, 100 * hi, t.k, t.n);
}

static void run_label_cell(sbuf *b, const run_data *r) {
  SB_LIT(b, "<th class=\"run\">");
  sb_esc(b, r->label);
  SB_LIT(b, "<br><span class=\"ci\">");
  sb_esc(b, r->agent);
  SB_LIT(b, ", ");
  sb_esc(b, r->scenes);
  SB_LIT(b, " scenes</span></th>");
}

static const char k_css[] =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:8px 0;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:4px 6px;text-align:center}"
    "th.run{text-align:left}tr.paper td,tr.paper th{color:#777;background:#f7f7f7}"
    ".ci{font-size:11px;color:#666}.na{color:#aaa}.note{font-size:12px;color:#555}"
    ".grid{stroke:#eee}.ct{font-size:14px;font-weight:bold}svg.chart{font-size:11px;margin:6px 12px 6px 0}"
    "table.gifs td{vertical-align:top;padding:3px}table.gifs img{display:block}"
    "td.ok{border:3px solid #59a14f}td.fail{border:3px solid #e15759;background:#fdecec}"
    ".tag{font-size:11px}.fail .tag{color:#c00;font-weight:bold}"
    ".train{display:inline-block;vertical-align:top;margin-right:24px}";

/* the tasks any run holds, in sp's order */
static int used_tasks(const run_data *runs, int nrun, int *cols) {
  int n = 0;
  for (int t = 0; t < SP_NTASK; t++) {
    int any = 0;
    for (int i = 0; i < nrun; i++) any |= runs[i].task[t].n > 0;
    if (any) cols[n++] = t;
  }
  return n;
}

static void table1(sbuf *b, const run_data *runs, int nrun) {
  int cols[SP_NTASK], nc = used_tasks(runs, nrun, cols);
  SB_LIT(b, "<h2>Success rates (the paper's Table 1 layout)</h2>");
  sb_printf(b, "<p class=\"note\">Each cell: success rate, 95%% Wilson interval, successes/episodes (AVDC's rule: "
            "success within 500 frames). Grey rows: the rates the paper reports (Spatial Policy, Table 1; "
            "3 cameras x 25 seeds = 75 episodes per task), for reference.</p>");
  SB_LIT(b, "<table id=\"table1\"><tr><th>Method</th>");
  for (int i = 0; i < nc; i++) sb_printf(b, "<th>%s</th>", sp_task_name(cols[i]));
  SB_LIT(b, "<th>Overall</th></tr>");
  for (size_t p = 0; p < sizeof k_table1 / sizeof k_table1[0]; p++) {
    sb_printf(b, "<tr class=\"paper\"><th class=\"run\">%s (paper)</th>", k_table1[p].method);
    for (int i = 0; i < nc; i++) sb_printf(b, "<td>%.1f%%</td>", k_table1[p].rate[cols[i]]);
    sb_printf(b, "<td>%.1f%%</td></tr>", k_table1[p].rate[SP_NTASK]);
  }
  for (int r = 0; r < nrun; r++) {
    SB_LIT(b, "<tr class=\"ours\">");
    run_label_cell(b, &runs[r]);
    for (int i = 0; i < nc; i++) pct_cell(b, runs[r].task[cols[i]]);
    pct_cell(b, runs[r].all);
    SB_LIT(b, "</tr>");
  }
  SB_LIT(b, "</table>");
  if (nc < SP_NTASK)
    sb_printf(b, "<p class=\"note\">The runs hold %d of the 11 tasks; the paper's Overall covers all 11.</p>", nc);

  /* per camera */
  SB_LIT(b, "<h3>Per camera</h3><table id=\"cameras\"><tr><th>Method</th>");
  int cams[SP_NCAMERA], ncam = 0;
  for (int c = 0; c < SP_NCAMERA; c++) {
    int any = 0;
    for (int i = 0; i < nrun; i++) any |= runs[i].cam[c].n > 0;
    if (any) { cams[ncam++] = c; sb_printf(b, "<th>%s</th>", sp_camera_name(c)); }
  }
  SB_LIT(b, "</tr>");
  for (int r = 0; r < nrun; r++) {
    SB_LIT(b, "<tr>");
    run_label_cell(b, &runs[r]);
    for (int i = 0; i < ncam; i++) pct_cell(b, runs[r].cam[cams[i]]);
    SB_LIT(b, "</tr>");
  }
  SB_LIT(b, "</table>");
}

static void levels_table(sbuf *b, const run_data *runs, int nrun) {
  SB_LIT(b, "<h2>By difficulty (the paper's Tables 2-5 layout)</h2>");
  SB_LIT(b, "<p class=\"note\">Difficulty as in the paper's Appendix C: Easy door-open, door-close, button-press, "
            "button-press-topdown, faucet-close, faucet-open, handle-press; Medium basketball, hammer; Hard assembly; "
            "Very Hard shelf-place. Rates pool the episodes of a level. Grey rows: the paper's ablation variants.</p>");
  SB_LIT(b, "<table id=\"levels\"><tr><th>Method</th>");
  for (int l = 0; l < NLEVEL; l++) sb_printf(b, "<th>%s</th>", k_level_name[l]);
  SB_LIT(b, "<th>Overall</th></tr>");
  for (size_t p = 0; p < sizeof k_levels_paper / sizeof k_levels_paper[0]; p++) {
    SB_LIT(b, "<tr class=\"paper\"><th class=\"run\">");
    sb_esc(b, k_levels_paper[p].method);
    sb_printf(b, " <span class=\"ci\">(paper, %s)</span></th>", k_levels_paper[p].table);
    for (int l = 0; l <= NLEVEL; l++) sb_printf(b, "<td>%.1f%%</td>", k_levels_paper[p].rate[l]);
    SB_LIT(b, "</tr>");
  }
  for (int r = 0; r < nrun; r++) {
    SB_LIT(b, "<tr class=\"ours\">");
    run_label_cell(b, &runs[r]);
    for (int l = 0; l < NLEVEL; l++) pct_cell(b, runs[r].level[l]);
    pct_cell(b, runs[r].all);
    SB_LIT(b, "</tr>");
  }
  SB_LIT(b, "</table>");
}

static void counts_table(sbuf *b, const run_data *runs, int nrun) {
  SB_LIT(b, "<h2>Runs</h2><table id=\"counts\"><tr><th>Method</th><th>directory</th><th>episodes</th>"
            "<th>episodes with errors</th><th>NaN steps</th><th>MuJoCo warnings</th><th>VLM fallbacks</th>"
            "<th>render</th><th>checkpoint</th><th>GL renderer</th></tr>");
  for (int r = 0; r < nrun; r++) {
    const run_data *x = &runs[r];
    SB_LIT(b, "<tr>");
    run_label_cell(b, x);
    SB_LIT(b, "<td>");
    sb_esc(b, x->dir);
    sb_printf(b, "</td><td>%d</td><td>%ld</td><td>%ld</td><td>%ld</td>", x->n, x->errors, x->nan, x->warn);
    if (x->has_vlm) sb_printf(b, "<td>%ld</td>", x->vlm_fallbacks);
    else SB_LIT(b, "<td class=\"na\">none (no VLM)</td>");
    sb_printf(b, "<td>%dx%d %s</td><td>", x->width, x->height, x->quality);
    sb_esc(b, x->checkpoint);
    SB_LIT(b, "</td><td>");
    sb_esc(b, x->gl);
    SB_LIT(b, "</td></tr>");
  }
  SB_LIT(b, "</table>");
}

static void time_section(sbuf *b, const run_data *runs, int nrun) {
  SB_LIT(b, "<h2>Where the time goes</h2>");
  svg_time_split(b, runs, nrun);
  SB_LIT(b, "<table id=\"timing\"><tr><th>Method</th>");
  for (int k = 0; k < 7; k++) sb_printf(b, "<th>%s</th>", k_time_name[k]);
  SB_LIT(b, "<th>total</th></tr>");
  for (int r = 0; r < nrun; r++) {
    SB_LIT(b, "<tr>");
    run_label_cell(b, &runs[r]);
    double s = 0;
    char t[32];
    for (int k = 0; k < 7; k++) {
      double v = runs[r].t[k] / runs[r].n;
      s += v;
      fmt_secs(t, sizeof t, v);
      sb_printf(b, "<td>%s</td>", t);
    }
    fmt_secs(t, sizeof t, s);
    sb_printf(b, "<td>%s</td></tr>", t);
  }
  SB_LIT(b, "</table><p class=\"note\">Mean seconds per episode, from each record's time split.</p>");
}

/* the GIF grid of one run: tasks x cameras, the chosen seed; 0, or -1 with err */
static int gif_grid(sbuf *b, const sp_report_config *c, const run_data *r, int ri, char *err) {
  char gdir[1100];
  snprintf(gdir, sizeof gdir, "%s/gifs", r->dir);
  /* the seed: asked for, else the smallest seed with any GIF */
  long seed = c->gif_seed;
  if (seed < 0) {
    for (int i = 0; i < r->n; i++) {
      char p[1400];
      snprintf(p, sizeof p, "%s/%s_%s_%ld.gif", gdir, sp_task_name(r->eps[i].task), sp_camera_name(r->eps[i].cam),
               r->eps[i].seed);
      if ((seed < 0 || r->eps[i].seed < seed) && access(p, R_OK) == 0) seed = r->eps[i].seed;
    }
  }
  if (seed < 0) return 0;  // no GIFs in this run
  int cols[SP_NTASK], nc = used_tasks(r, 1, cols), cams[SP_NCAMERA], ncam = 0;
  for (int k = 0; k < SP_NCAMERA; k++)
    if (r->cam[k].n) cams[ncam++] = k;
  sb_printf(b, "<h3>");
  sb_esc(b, r->label);
  sb_printf(b, ": seed %ld</h3><table class=\"gifs\" id=\"gifs-%d\"><tr><th></th>", seed, ri);
  for (int k = 0; k < ncam; k++) sb_printf(b, "<th>%s</th>", sp_camera_name(cams[k]));
  SB_LIT(b, "</tr>");
  char tmp[1200];
  snprintf(tmp, sizeof tmp, "%s.thumb.%d.gif", c->out, (int)getpid());
  for (int i = 0; i < nc; i++) {
    sb_printf(b, "<tr><th>%s</th>", sp_task_name(cols[i]));
    for (int k = 0; k < ncam; k++) {
      const ep_lite *e = NULL;
      for (int q = 0; q < r->n && !e; q++)
        if (r->eps[q].task == cols[i] && r->eps[q].cam == cams[k] && r->eps[q].seed == seed) e = &r->eps[q];
      char p[1400];
      snprintf(p, sizeof p, "%s/%s_%s_%ld.gif", gdir, sp_task_name(cols[i]), sp_camera_name(cams[k]), seed);
      if (!e || access(p, R_OK)) {
        SB_LIT(b, "<td class=\"na\">no GIF</td>");
        continue;
      }
      unsigned char *g = NULL;
      size_t gl = 0;
      if (gif_thumb(p, c->gif_step, c->gif_scale, tmp, &g, &gl, err)) return -1;
      sb_printf(b, "<td class=\"%s\"><img alt=\"%s %s seed %ld\" src=\"data:image/gif;base64,", e->success ? "ok" : "fail",
                sp_task_name(cols[i]), sp_camera_name(cams[k]), seed);
      sb_base64(b, g, gl);
      free(g);
      sb_printf(b, "\"><span class=\"tag\">%s, %d frames</span></td>", e->success ? "success" : "FAILED", e->frames);
    }
    SB_LIT(b, "</tr>");
  }
  SB_LIT(b, "</table>");
  return 0;
}

int sp_report_write(const sp_report_config *c, char *err) {
  if (c->nrun < 1) return sp_errf(err, "no run directories given");
  if (!c->out || !*c->out) return sp_errf(err, "no output file (--out report.html)");
  if (c->gif_step < 1 || c->gif_step > 100) return sp_errf(err, "--gif-step %d outside 1..100", c->gif_step);
  if (c->gif_scale < 1 || c->gif_scale > 16) return sp_errf(err, "--gif-scale %d outside 1..16", c->gif_scale);
  run_data *runs = calloc((size_t)c->nrun, sizeof *runs);
  if (!runs) return sp_errf(err, "out of memory");
  int rc = 0;
  for (int i = 0; i < c->nrun && !rc; i++)
    rc = run_load(c->runs[i], i < c->nlabel ? c->labels[i] : NULL, &runs[i], err);
  sbuf b = {0};
  if (!rc) {
    SB_LIT(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    sb_esc(&b, c->title);
    sb_printf(&b, "</title><style>%s</style></head><body>\n<h1>", k_css);
    sb_esc(&b, c->title);
    sb_printf(&b, "</h1><p class=\"note\">%d evaluation run%s", c->nrun, c->nrun > 1 ? "s" : "");
    if (c->ntrain) sb_printf(&b, ", %d training log%s", c->ntrain, c->ntrain > 1 ? "s" : "");
    SB_LIT(&b, ". Written by <code>sp report</code>; self-contained (no network).</p>\n");
    table1(&b, runs, c->nrun);
    if (c->nrun > 1) levels_table(&b, runs, c->nrun);
    counts_table(&b, runs, c->nrun);
    time_section(&b, runs, c->nrun);
    sbuf g = {0};
    for (int i = 0; i < c->nrun && !rc; i++) rc = gif_grid(&g, c, &runs[i], i, err);
    SB_LIT(&b, "<h2 id=\"episodes\">Episodes</h2>");
    if (g.len) {
      sb_printf(&b, "<p class=\"note\">One seed per run, every task and camera; green: success, red: failure. "
                "Thumbnails at 1/%d size, every %d%s frame.</p>", c->gif_scale, c->gif_step,
                c->gif_step == 2 ? "nd" : c->gif_step == 3 ? "rd" : "th");
      sb_put(&b, g.s, g.len);
    } else {
      SB_LIT(&b, "<p class=\"note\">No GIFs in these runs (sp eval --gif writes them).</p>");
    }
    if (g.oom) b.oom = 1;
    free(g.s);
    if (c->ntrain) {
      SB_LIT(&b, "<h2 id=\"training\">Training</h2>");
      for (int i = 0; i < c->ntrain && !rc; i++) rc = train_section(&b, c->train_logs[i], err);
    }
    SB_LIT(&b, "\n</body></html>\n");
  }
  if (!rc && b.oom) rc = sp_errf(err, "out of memory writing the page");
  if (!rc) rc = sp_file_write_atomic(c->out, b.s, b.len, err);
  free(b.s);
  for (int i = 0; i < c->nrun; i++) free(runs[i].eps);
  free(runs);
  return rc;
}
