/* report.c: results.json and results.md (the paper's Table 1 layout, with Wilson intervals). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "eval/eval_internal.h"

int sp_json_write(const char *dir, const char *name, const cJSON *o, char *err) {
  char *js = cJSON_Print(o), path[4096];
  if (!js) return sp_errf(err, "out of memory printing %s", name);
  size_t n = strlen(js);
  char *buf = realloc(js, n + 2);
  if (!buf) { free(js); return sp_errf(err, "out of memory printing %s", name); }
  buf[n] = '\n';
  buf[n + 1] = 0;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int rc = sp_file_write_atomic(path, buf, n + 1, err);
  free(buf);
  return rc;
}

int sp_episode_cmp(const void *a, const void *b) {
  const sp_episode *x = a, *y = b;
  if (x->task != y->task) return x->task - y->task;
  if (x->cam != y->cam) return x->cam - y->cam;
  return (x->seed > y->seed) - (x->seed < y->seed);
}

void sp_wilson95(int k, int n, double *lo, double *hi) {
  if (n == 0) { *lo = 0; *hi = 1; return; }
  const double z = 1.959963984540054;
  double p = (double)k / n, z2 = z * z;
  double c = (p + z2 / (2 * n)) / (1 + z2 / n);
  double h = z * sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / (1 + z2 / n);
  *lo = c - h < 0 ? 0 : c - h;
  *hi = c + h > 1 ? 1 : c + h;
}

typedef struct { int k, n; } tally;


static void sb_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
  va_list ap;
  for (;;) {
    va_start(ap, fmt);
    int k = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    if ((size_t)k < *cap - *len) { *len += (size_t)k; return; }
    *cap = *cap * 2 + (size_t)k;
    *buf = realloc(*buf, *cap);
  }
}

int sp_eval_write_results(const char *dir, const cJSON *config, sp_episode *eps, int n,
                          const char *gl_renderer, char *err) {
  qsort(eps, (size_t)n, sizeof *eps, sp_episode_cmp);
  tally per_task[SP_NTASK] = {{0, 0}}, per_cam[SP_NCAMERA] = {{0, 0}}, all = {0, 0};
  sp_agent_timing sum = {0};
  long nan_total = 0, warn_total = 0, errors = 0;
  for (int i = 0; i < n; i++) {
    const sp_episode *e = &eps[i];
    per_task[e->task].n++; per_task[e->task].k += e->success;
    per_cam[e->cam].n++; per_cam[e->cam].k += e->success;
    all.n++; all.k += e->success;
    nan_total += e->nan_count; warn_total += e->warn_count; errors += e->error[0] != 0;
#define TM(name) sum.name += e->time.name;
    SP_AGENT_TIMES(TM)
#undef TM
  }
  const cJSON *agent = cJSON_GetObjectItemCaseSensitive(config, "agent");
  const cJSON *rule = cJSON_GetObjectItemCaseSensitive(config, "success_rule");
  const cJSON *ckpt = cJSON_GetObjectItemCaseSensitive(config, "checkpoint");
  const cJSON *budget = cJSON_GetObjectItemCaseSensitive(config, "replan_budget");
  const cJSON *horizon = cJSON_GetObjectItemCaseSensitive(config, "horizon");
  const cJSON *scenes = cJSON_GetObjectItemCaseSensitive(config, "scenes");

  /* results.json */
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "agent", agent ? agent->valuestring : "?");
  cJSON_AddItemToObject(o, "config", cJSON_Duplicate(config, 1));
  cJSON_AddNumberToObject(o, "episode_count", n);
  cJSON_AddNumberToObject(o, "successes", all.k);
  cJSON *pt = cJSON_AddObjectToObject(o, "per_task");
  cJSON *ci = cJSON_AddObjectToObject(o, "per_task_wilson95");
  for (int t = 0; t < SP_NTASK; t++) {
    if (!per_task[t].n) continue;
    cJSON_AddNumberToObject(pt, sp_task_name(t), (double)per_task[t].k / per_task[t].n);
    double lo, hi;
    sp_wilson95(per_task[t].k, per_task[t].n, &lo, &hi);
    double v[2] = {lo, hi};
    cJSON_AddItemToObject(ci, sp_task_name(t), cJSON_CreateDoubleArray(v, 2));
  }
  cJSON *pc = cJSON_AddObjectToObject(o, "per_camera");
  for (int c = 0; c < SP_NCAMERA; c++)
    if (per_cam[c].n) cJSON_AddNumberToObject(pc, sp_camera_name(c), (double)per_cam[c].k / per_cam[c].n);
  cJSON_AddNumberToObject(o, "overall", all.n ? (double)all.k / all.n : 0);
  {
    double lo, hi;
    sp_wilson95(all.k, all.n, &lo, &hi);
    double v[2] = {lo, hi};
    cJSON_AddItemToObject(o, "overall_wilson95", cJSON_CreateDoubleArray(v, 2));
  }
  cJSON_AddNumberToObject(o, "nan_count", (double)nan_total);
  cJSON_AddNumberToObject(o, "mujoco_warnings", (double)warn_total);
  cJSON_AddNumberToObject(o, "episode_errors", (double)errors);
  cJSON *ea = cJSON_AddArrayToObject(o, "episodes");
  for (int i = 0; i < n; i++) {
    cJSON *r = cJSON_CreateObject();
    const sp_episode *e = &eps[i];
    sp_episode_json_head(r, e);
    sp_episode_json_health(r, e);
    cJSON_AddItemToArray(ea, r);
  }
  /* the timing summary is the only part that differs between identical runs; it goes last */
  cJSON *ts = cJSON_AddObjectToObject(o, "timing_seconds");
  cJSON_AddStringToObject(ts, "gl_renderer", gl_renderer ? gl_renderer : "none (no frames rendered)");
  sp_timing_json(ts, &sum);
  int rc = sp_json_write(dir, "results.json", o, err);
  cJSON_Delete(o);
  char path[4096];
  if (rc) return rc;

  /* results.md */
  size_t cap = 8192, len = 0;
  char *md = malloc(cap);
  md[0] = 0;
  const char *an = agent ? agent->valuestring : "?";
  sb_printf(&md, &len, &cap, "# Success rates: agent `%s`\n\n", an);
  sb_printf(&md, &len, &cap,
            "Metric: %s. Horizon %d steps. %d episodes. Replan budget %d. Checkpoint: %s. "
            "Scenes: %s. Brackets: 95%% Wilson interval.\n\n",
            rule ? rule->valuestring : "?", horizon ? horizon->valueint : SP_MAX_PATH, n,
            budget ? budget->valueint : 0, ckpt && cJSON_IsString(ckpt) ? ckpt->valuestring : "none",
            scenes && cJSON_IsString(scenes) ? scenes->valuestring : "?");
  int cols[SP_NTASK], nc = 0;
  for (int t = 0; t < SP_NTASK; t++) if (per_task[t].n) cols[nc++] = t;
  for (int half = 0; half < 2; half++) {
    int a = half == 0 ? 0 : (nc + 1) / 2, b = half == 0 ? (nc + 1) / 2 : nc;
    if (nc <= 6) { if (half) break; a = 0; b = nc; }
    int last = (b == nc);
    sb_printf(&md, &len, &cap, "| Method |");
    for (int i = a; i < b; i++) sb_printf(&md, &len, &cap, " %s |", sp_task_name(cols[i]));
    if (last) sb_printf(&md, &len, &cap, " Overall |");
    sb_printf(&md, &len, &cap, "\n|---|");
    for (int i = a; i < b + last; i++) sb_printf(&md, &len, &cap, "---|");
    sb_printf(&md, &len, &cap, "\n| %s |", an);
    for (int i = a; i < b; i++) {
      const tally *tl = &per_task[cols[i]];
      double lo, hi;
      sp_wilson95(tl->k, tl->n, &lo, &hi);
      sb_printf(&md, &len, &cap, " %.1f%% [%.0f, %.0f] |", 100.0 * tl->k / tl->n, 100 * lo, 100 * hi);
    }
    if (last) {
      double lo, hi;
      sp_wilson95(all.k, all.n, &lo, &hi);
      sb_printf(&md, &len, &cap, " %.1f%% [%.0f, %.0f] |", all.n ? 100.0 * all.k / all.n : 0.0,
                100 * lo, 100 * hi);
    }
    sb_printf(&md, &len, &cap, "\n\n");
  }
  sb_printf(&md, &len, &cap, "Per camera:");
  for (int c = 0; c < SP_NCAMERA; c++)
    if (per_cam[c].n)
      sb_printf(&md, &len, &cap, " %s %.1f%% (%d/%d);", sp_camera_name(c),
                100.0 * per_cam[c].k / per_cam[c].n, per_cam[c].k, per_cam[c].n);
  sb_printf(&md, &len, &cap, "\n\nNaN steps: %ld. MuJoCo warnings: %ld. Episodes with errors: %ld.\n",
            nan_total, warn_total, errors);
  snprintf(path, sizeof path, "%s/results.md", dir);
  rc = sp_file_write_atomic(path, md, len, err);
  free(md);
  if (rc) return rc;

  /* results.svg: per-task success with 95% Wilson whiskers (any browser shows it) */
  len = 0;
  cap = 8192;
  char *svg = malloc(cap);
  const int bw = 44, gap = 16, left = 50, top = 40, ph = 220, nb = nc + 1;
  const int W = left + nb * (bw + gap) + 20, H = top + ph + 130;
  sb_printf(&svg, &len, &cap,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"22\" font-size=\"15\">Success rate: agent %s, %d episodes (AVDC rule, "
            "horizon %d), 95%% Wilson intervals</text>\n",
            W, H, left, an, n, horizon ? horizon->valueint : SP_MAX_PATH);
  for (int g = 0; g <= 10; g += 2) {
    double y = top + ph - ph * g / 10.0;
    sb_printf(&svg, &len, &cap,
              "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
              "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d%%</text>\n",
              left, W - 20, y, y, left - 6, y + 4, g * 10);
  }
  for (int i = 0; i < nb; i++) {
    const tally *tl = i < nc ? &per_task[cols[i]] : &all;
    double rate = tl->n ? (double)tl->k / tl->n : 0, lo, hi;
    sp_wilson95(tl->k, tl->n, &lo, &hi);
    double x = left + gap / 2.0 + i * (bw + gap), y = top + ph - ph * rate;
    const char *name = i < nc ? sp_task_name(cols[i]) : "overall";
    sb_printf(&svg, &len, &cap,
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\"/>\n"
              "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n"
              "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">%.1f</text>\n"
              "<text transform=\"translate(%.1f,%d) rotate(45)\">%s</text>\n",
              x, y, bw, ph * rate, i < nc ? "#4878a8" : "#c0504d", x + bw / 2.0, x + bw / 2.0,
              top + ph - ph * lo, top + ph - ph * hi, x + bw / 2.0, y - 4, 100 * rate,
              x + bw / 2.0 - 4, top + ph + 12, name);
  }
  sb_printf(&svg, &len, &cap, "</svg>\n");
  snprintf(path, sizeof path, "%s/results.svg", dir);
  rc = sp_file_write_atomic(path, svg, len, err);
  free(svg);
  return rc;
}
