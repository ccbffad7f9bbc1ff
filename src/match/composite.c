/* composite.c: the composite similarity of Appendix F, eq. (7):
 *   S = w_shape s_shape + w_block s_block + w_ssim SSIM + w_flow s_flow,
 *   s_flow = 1 / (1 + mean |flow| / flow_scale_px),
 * with the config (defaults, check, printer) and the workspace that holds every buffer the four
 * similarities need for one frame size. The paper's text lost the numeric weights and threshold;
 * docs/match.md says how the defaults here were chosen. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "match/match.h"

/* the paper's weights, threshold and switch period did not survive its text extraction; these are
 * the values chosen and calibrated in docs/match.md */
void sp_match_cfg_default(sp_match_cfg *c) {
  c->w_shape = 0.25;
  c->w_block = 0.25;
  c->w_ssim = 0.25;
  c->w_flow = 0.25;
  c->threshold = 0.78;
  c->max_steps = 20;
  sp_flow_cfg_default(&c->flow);
  c->flow_scale_px = 1.0;
  c->block_grid = 8;
  c->block_mean_scale = 4.0;
  c->com_scale_px = 0.25;
  c->sift_ratio = 0.8;
  c->sift_peak_thresh = 3.0;
  c->sift_edge_thresh = 10.0;
  c->sift_max_feats = 24;
  c->sift_first_octave = 1;
}

int sp_match_cfg_check(const sp_match_cfg *c, char *err) {
  const double wts[4] = {c->w_shape, c->w_block, c->w_ssim, c->w_flow};
  double sum = 0;
  for (int i = 0; i < 4; i++) {
    if (!(wts[i] >= 0)) return sp_errf(err, "match: weights must be >= 0");
    sum += wts[i];
  }
  if (!(sum > 0)) return sp_errf(err, "match: at least one weight must be > 0");
  if (!(c->threshold >= 0 && c->threshold <= sum))
    return sp_errf(err, "match: threshold %g must be in [0, sum of weights = %g]", c->threshold, sum);
  if (c->max_steps < 1) return sp_errf(err, "match: max_steps %d must be >= 1", c->max_steps);
  if (!(c->flow_scale_px > 0)) return sp_errf(err, "match: flow_scale_px must be > 0");
  if (c->block_grid < 1 || c->block_grid > 64) return sp_errf(err, "match: block_grid %d must be in 1..64", c->block_grid);
  if (!(c->com_scale_px > 0)) return sp_errf(err, "match: com_scale_px must be > 0");
  if (!(c->block_mean_scale > 0)) return sp_errf(err, "match: block_mean_scale must be > 0");
  if (!(c->sift_ratio > 0 && c->sift_ratio <= 1)) return sp_errf(err, "match: sift_ratio must be in (0, 1]");
  if (!(c->sift_peak_thresh >= 0) || !(c->sift_edge_thresh > 0))
    return sp_errf(err, "match: sift thresholds must be >= 0 (peak) and > 0 (edge)");
  if (c->sift_max_feats < 1 || c->sift_max_feats > 100000)
    return sp_errf(err, "match: sift_max_feats %d must be in 1..100000", c->sift_max_feats);
  if (c->sift_first_octave < -1 || c->sift_first_octave > 1)
    return sp_errf(err, "match: sift_first_octave %d must be -1, 0 or 1", c->sift_first_octave);
  return sp_flow_cfg_check(&c->flow, err);
}

void sp_match_cfg_print(const sp_match_cfg *c, FILE *f) {
  fprintf(f, "match config: weights shape %g block %g ssim %g flow %g; threshold %g; max_steps %d\n",
          c->w_shape, c->w_block, c->w_ssim, c->w_flow, c->threshold, c->max_steps);
  fprintf(f, "  flow: pyr_scale %g levels %d winsize %d iterations %d poly_n %d poly_sigma %g %s; scale %g px\n",
          c->flow.pyr_scale, c->flow.levels, c->flow.winsize, c->flow.iterations, c->flow.poly_n,
          c->flow.poly_sigma, c->flow.gaussian ? "gaussian" : "box", c->flow_scale_px);
  fprintf(f, "  block: grid %d mean_scale %g com_scale %g px; sift: ratio %g peak %g edge %g max_feats %d first_octave %d\n",
          c->block_grid, c->block_mean_scale, c->com_scale_px, c->sift_ratio, c->sift_peak_thresh, c->sift_edge_thresh,
          c->sift_max_feats, c->sift_first_octave);
}

struct sp_match_ws {
  int w, h;
  sp_ssim_ws *ssim;
  sp_flow_ws *flow;
  sp_shape_ws *shape;
  sp_shape_feats fa, fb;   // features of the observation and of the goal
  const uint8_t *goal;     // (h x w) the caller's goal frame, set by sp_match_set_goal
  float *fl;               // (h x w x 2)
};

sp_match_ws *sp_match_ws_new(const sp_match_cfg *cfg, int w, int h, char *err) {
  if (sp_match_cfg_check(cfg, err)) return NULL;
  if (w < 32 || h < 32 || w > 4096 || h > 4096) {
    sp_errf(err, "match: frame size %dx%d must be within 32x32 .. 4096x4096", w, h);
    return NULL;
  }
  if (cfg->block_grid > w || cfg->block_grid > h) {
    sp_errf(err, "match: block_grid %d exceeds the frame %dx%d", cfg->block_grid, w, h);
    return NULL;
  }
  sp_match_ws *ws = calloc(1, sizeof *ws);
  if (!ws) {
    sp_errf(err, "match: out of memory");
    return NULL;
  }
  ws->w = w;
  ws->h = h;
  if (!(ws->ssim = sp_ssim_ws_new(w, h, err)) || !(ws->flow = sp_flow_ws_new(&cfg->flow, w, h, err)) ||
      !(ws->shape = sp_shape_ws_new(w, h, cfg->sift_first_octave, cfg->sift_max_feats, cfg->sift_peak_thresh,
                                     cfg->sift_edge_thresh, err)) ||
      sp_shape_feats_alloc(&ws->fa, cfg->sift_max_feats, err) ||
      sp_shape_feats_alloc(&ws->fb, cfg->sift_max_feats, err)) {
    sp_match_ws_free(ws);
    return NULL;
  }
  ws->fl = malloc(sizeof(float) * 2 * (size_t)w * h);
  if (!ws->fl) {
    sp_match_ws_free(ws);
    sp_errf(err, "match: out of memory");
    return NULL;
  }
  return ws;
}

void sp_match_ws_free(sp_match_ws *ws) {
  if (!ws) return;
  sp_ssim_ws_free(ws->ssim);
  sp_flow_ws_free(ws->flow);
  sp_shape_ws_free(ws->shape);
  sp_shape_feats_free(&ws->fa);
  sp_shape_feats_free(&ws->fb);
  free(ws->fl);
  free(ws);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

void sp_match_set_goal(const sp_match_cfg *cfg, sp_match_ws *ws, const uint8_t *goal, sp_match_timing *timing) {
  double t0 = now_s();
  sp_shape_extract(ws->shape, goal, &ws->fb);
  ws->goal = goal;
  if (timing) {
    memset(timing, 0, sizeof *timing);
    timing->shape = now_s() - t0;
  }
}

void sp_match_obs(const sp_match_cfg *cfg, sp_match_ws *ws, const uint8_t *a, sp_match_result *out,
                  float *flow, sp_match_timing *timing) {
  SP_ASSERT(ws->goal);
  const int w = ws->w, h = ws->h;
  const uint8_t *b = ws->goal;
  double t0 = now_s();
  sp_shape_extract(ws->shape, a, &ws->fa);
  out->shape = sp_shape_score(ws->shape, &ws->fa, &ws->fb, cfg->sift_ratio, &out->nmatch);
  out->nfeat_a = ws->fa.n;
  out->nfeat_b = ws->fb.n;
  double t1 = now_s();
  sp_block_parts bp;
  out->block = sp_block_score(a, b, w, h, cfg->block_grid, cfg->block_mean_scale, cfg->com_scale_px, &bp);
  out->com_shift_px = bp.com_shift_px;
  out->block_parts = bp;
  double t2 = now_s();
  out->ssim = sp_ssim_gray(ws->ssim, a, b);
  double t3 = now_s();
  float *fl = flow ? flow : ws->fl;
  sp_flow_farneback(&cfg->flow, ws->flow, a, b, fl);
  out->flow_mean_px = sp_flow_mean_mag(fl, w, h);
  out->flow = 1 / (1 + out->flow_mean_px / cfg->flow_scale_px);
  double t4 = now_s();
  out->composite = cfg->w_shape * out->shape + cfg->w_block * out->block + cfg->w_ssim * out->ssim +
                   cfg->w_flow * out->flow;
  out->matched = out->composite >= cfg->threshold;
  if (timing) {
    timing->shape = t1 - t0;
    timing->block = t2 - t1;
    timing->ssim = t3 - t2;
    timing->flow = t4 - t3;
  }
}

void sp_match_pair(const sp_match_cfg *cfg, sp_match_ws *ws, const uint8_t *a, const uint8_t *b,
                   sp_match_result *out, float *flow, sp_match_timing *timing) {
  sp_match_timing tg;
  sp_match_set_goal(cfg, ws, b, &tg);
  sp_match_obs(cfg, ws, a, out, flow, timing);
  if (timing) timing->shape += tg.shape;
}

void sp_match_rgb_to_gray(const uint8_t *rgb, int w, int h, uint8_t *gray) {
  for (int i = 0; i < w * h; i++) {
    const uint8_t *p = rgb + 3 * i;
    gray[i] = (uint8_t)((p[0] * 4899 + p[1] * 9617 + p[2] * 1868 + (1 << 13)) >> 14);
  }
}
