/* generate.c: `sp generate` (contract in generate.h). */
#include "agent/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "agent/imagine.h"
#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/collect.h"
#include "models/model.h"
#include "models/video_train.h"
#include "plan/plan.h"
#include "sim/render.h"

void sp_generate_cfg_default(sp_generate_cfg *c) {
  memset(c, 0, sizeof *c);
  c->task = -1;
  c->cam = 0;
  c->plan = "rule";
  c->steps = 20;
  c->guidance = -1.f;
}

static int load_plan(const sp_generate_cfg *c, const double obs[SP_OBS_DIM], const double tcp[3], sp_plan *p,
                     char *err) {
  if (!strcmp(c->plan, "rule")) return sp_plan_rule(c->task, tcp, obs + SP_OBS_OBJ, obs + SP_OBS_GOAL, NULL, p, err);
  size_t len;
  char *text = sp_file_read(c->plan, &len, err);
  if (!text) return -1;
  char perr[SP_ERRLEN];
  int rc = sp_plan_parse(text, len, SP_PLAN_PARSE_TRUNCATE, p, perr);
  free(text);
  return rc ? sp_errf(err, "%s: %s", c->plan, perr) : 0;
}

/* Appendix G's masking: a rectangle of the given area fraction, aspect in [0.5, 2], placed at
 * random (seeded), painted mid-grey */
static void mask_frame(uint8_t *rgb, int R, double frac, uint32_t seed) {
  if (frac <= 0) return;
  sp_mt19937 r;
  sp_mt_seed(&r, seed);
  double aspect = sp_mt_uniform(&r, 0.5, 2.0);
  int h = (int)(R * sqrt(frac / aspect) + 0.5), w = (int)(R * sqrt(frac * aspect) + 0.5);
  if (h > R) h = R;
  if (w > R) w = R;
  int y0 = (int)sp_mt_uniform(&r, 0, R - h + 1), x0 = (int)sp_mt_uniform(&r, 0, R - w + 1);
  for (int y = y0; y < y0 + h && y < R; y++) memset(rgb + ((size_t)y * R + x0) * 3, 128, (size_t)w * 3);
}

static int write_html(const char *dir, const sp_generate_cfg *c, const char *ckpt, const char *plan_text,
                      const sp_video_model *v, float w, char *err) {
  char path[4200], *html = malloc(16384), variant[64];
  if (!html) return sp_errf(err, "out of memory");
  sp_cf_format(sp_cf_find(sp_vunet_fields, "cond"), &v->m.cfg, variant, sizeof variant);
  int n = snprintf(html, 16384,
                   "<!doctype html><meta charset=utf-8><title>sp generate: %s %s seed %ld</title>"
                   "<style>body{font-family:sans-serif;margin:2em}img{image-rendering:pixelated}"
                   "pre{background:#f4f4f4;padding:1em;display:inline-block}</style>"
                   "<h1>%s, camera %s, seed %ld</h1><p><img src=strip.png alt=strip></p>"
                   "<p><img src=video.gif width=%d alt=video></p><h2>Plan table (%s)</h2><pre>%s</pre>"
                   "<p>checkpoint <code>%s</code> (variant %s, %d px, %d frames); DDIM %d steps, guidance %.2f, "
                   "mask %.2f. Frame 0 is the condition.</p>",
                   sp_task_name(c->task), sp_camera_name(c->cam), c->seed, sp_task_name(c->task),
                   sp_camera_name(c->cam), c->seed, 4 * v->m.cfg.res, c->plan, plan_text, ckpt,
                   variant, v->m.cfg.res, v->m.cfg.frames, c->steps,
                   w, c->mask);
  snprintf(path, sizeof path, "%s/index.html", dir);
  int rc = n > 0 && n < 16384 ? sp_file_write_atomic(path, html, (size_t)n, err) : sp_errf(err, "page too long");
  free(html);
  return rc;
}

int sp_generate_run(const sp_generate_cfg *c, char *err) {
  char ckpt[4096];
  if (c->ckpt) snprintf(ckpt, sizeof ckpt, "%s", c->ckpt);
  else if (sp_checkpoint_default(SP_CKPT_VIDEO, ckpt, sizeof ckpt, err)) return -1;
  if (c->steps < 1 || c->steps > 1000) return sp_errf(err, "--steps %d outside 1..1000", c->steps);
  if (!(c->mask >= 0 && c->mask <= 0.9)) return sp_errf(err, "--mask %g outside 0..0.9", c->mask);
  sp_video_model v;
  if (sp_video_model_load(&v, ckpt, err)) return -1;
  const int R = v.m.cfg.res, F = v.m.cfg.frames;
  const size_t px = (size_t)R * R;
  int rc = -1;
  sp_env_model *em = NULL;
  sp_env *e = NULL;
  sp_renderer *rend = NULL;
  sp_imaginer im;
  int im_ok = 0;
  uint8_t *frames = malloc(px * 3 * (size_t)(F + 1)), *strip = malloc(px * 3 * 4 * (size_t)(F + 1));
  sp_collect_config view;
  sp_ckpt_info info;
  if (!frames || !strip) { sp_errf(err, "out of memory"); goto out; }
  if (sp_ckpt_info_read(ckpt, &info, err)) goto out;
  int vr = sp_collect_view_from_json(info.data, R, ckpt, &view, err);
  sp_ckpt_info_free(&info);
  if (vr < 0) goto out;
  if (!(em = sp_env_model_load(c->task, c->source, c->assets, err)) || !(e = sp_env_create(em, err))) goto out;
  double obs[SP_OBS_DIM], tcp[3];
  sp_env_reset(e, c->seed, obs);
  sp_env_tcp(e, tcp);
  if (!(rend = sp_renderer_create_q(em, R, R, view.shadow_size, view.msaa, err))) goto out;
  if (sp_collect_render_view(rend, e, c->cam, &view, frames, NULL, NULL, err)) goto out;
  mask_frame(frames, R, c->mask, sp_seed_derive(sp_task_name(c->task), sp_camera_name(c->cam), c->seed, "mask"));
  sp_plan plan;
  if (load_plan(c, obs, tcp, &plan, err)) goto out;
  char plan_text[SP_PLAN_TEXT_MAX];
  if (sp_plan_format(&plan, 1, plan_text, sizeof plan_text) < 0) { sp_errf(err, "plan too long to print"); goto out; }
  if (sp_imaginer_init(&im, &v, err)) goto out;
  im_ok = 1;
  float w = c->guidance >= 0 ? c->guidance : v.dc.guidance;
  double t0 = sp_time_now();
  sp_imagine(&im, &v, c->task, &plan, tcp, obs, c->steps, w,
             sp_seed_derive(sp_task_name(c->task), sp_camera_name(c->cam), c->seed, "video"), frames);
  sp_log(SP_LOG_INFO, "generate: %d frames of %d px in %.2f s (DDIM %d, guidance %.2f)", F, R, sp_time_now() - t0,
         c->steps, w);
  if (sp_mkdir_p(c->out, err)) goto out;
  char path[4200];
  const int SW = 2 * R * (F + 1), SH = 2 * R;
  sp_gif *g = NULL;
  snprintf(path, sizeof path, "%s/video.gif", c->out);
  if (!(g = sp_gif_open(path, R, R, 25, err))) goto out;
  for (int f = 0; f <= F; f++) {
    const uint8_t *fr = frames + (size_t)f * px * 3;
    snprintf(path, sizeof path, "%s/frame_%d.png", c->out, f);
    if (sp_png_write(path, fr, R, R, 3, err) || sp_gif_add(g, fr, err)) {
      char e2[SP_ERRLEN];
      sp_gif_close(g, e2);
      goto out;
    }
    for (int y = 0; y < SH; y++)
      for (int x = 0; x < 2 * R; x++)
        memcpy(strip + ((size_t)y * SW + (size_t)f * 2 * R + x) * 3, fr + ((size_t)(y / 2) * R + x / 2) * 3, 3);
  }
  if (sp_gif_close(g, err)) goto out;
  snprintf(path, sizeof path, "%s/strip.png", c->out);
  if (sp_png_write(path, strip, SW, SH, 3, err)) goto out;
  snprintf(path, sizeof path, "%s/plan.txt", c->out);
  if (sp_file_write_atomic(path, plan_text, strlen(plan_text), err)) goto out;
  if (write_html(c->out, c, ckpt, plan_text, &v, w, err)) goto out;
  rc = 0;
out:
  if (im_ok) sp_imaginer_free(&im);
  sp_renderer_free(rend);
  sp_env_free(e);
  sp_env_model_free(em);
  sp_video_model_free(&v);
  free(frames);
  free(strip);
  return rc;
}
