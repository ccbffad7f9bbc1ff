/* cmd_match.c: `sp match A.png B.png [--flow out.png]`: compare two frames with the four
 * similarities of Appendix F and print each component and the composite score. A is the
 * observation, B the goal frame; the flow is A -> B. Colour PNGs are converted to gray with
 * OpenCV's BT.601 weights. Exit 0 whether or not the frames match, 1 when a file cannot be read
 * or the frames differ in size, 2 on a bad command line (the convention of every command). */
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/image.h"
#include "core/log.h"
#include "match/match.h"

static int read_gray(const char *path, sp_image *g, char *err) {
  sp_image rgb;
  if (sp_png_read(path, 3, &rgb, err)) return -1;
  if (sp_image_alloc(g, rgb.w, rgb.h, 1, err)) {
    sp_image_free(&rgb);
    return -1;
  }
  sp_match_rgb_to_gray(rgb.px, rgb.w, rgb.h, g->px);
  sp_image_free(&rgb);
  return 0;
}

int sp_cmd_match(int argc, char **argv) {
  sp_match_cfg cfg;
  sp_match_cfg_default(&cfg);
  const char *flow_out = NULL;
  double flow_max = 0;
  int quiet_cfg = 0;
  const sp_arg rows[] = {
      {"flow", SP_ARG_STR, &flow_out, "write the A -> B flow as a Middlebury colour-wheel PNG"},
      {"flow-max", SP_ARG_DOUBLE, &flow_max, "flow magnitude (px) at full saturation; 0: the field's maximum"},
      {"w-shape", SP_ARG_DOUBLE, &cfg.w_shape, "weight of the SIFT shape similarity"},
      {"w-block", SP_ARG_DOUBLE, &cfg.w_block, "weight of the block-statistics similarity"},
      {"w-ssim", SP_ARG_DOUBLE, &cfg.w_ssim, "weight of SSIM"},
      {"w-flow", SP_ARG_DOUBLE, &cfg.w_flow, "weight of the inverse flow magnitude"},
      {"threshold", SP_ARG_DOUBLE, &cfg.threshold, "match when the composite score is >= this"},
      {"flow-scale", SP_ARG_DOUBLE, &cfg.flow_scale_px, "s_flow = 1 / (1 + mean|flow| / this), px"},
      {"com-scale", SP_ARG_DOUBLE, &cfg.com_scale_px, "s_com = exp(-centre-of-mass shift / this), px"},
      {"block-grid", SP_ARG_INT, &cfg.block_grid, "blocks per side for the block statistics"},
      {"mean-scale", SP_ARG_DOUBLE, &cfg.block_mean_scale, "s_mean = exp(-mean block-mean difference / this), gray levels"},
      {"sift-ratio", SP_ARG_DOUBLE, &cfg.sift_ratio, "Lowe's ratio test for SIFT matches"},
      {"sift-octave", SP_ARG_INT, &cfg.sift_first_octave, "first SIFT octave: -1 upsampled, 0 full, 1 half resolution"},
      {"sift-max", SP_ARG_INT, &cfg.sift_max_feats, "SIFT features kept per frame, strongest first"},
      {"sift-peak", SP_ARG_DOUBLE, &cfg.sift_peak_thresh, "SIFT DoG peak threshold (0..255 intensities)"},
      {"pyr-scale", SP_ARG_DOUBLE, &cfg.flow.pyr_scale, "Farneback pyramid scale"},
      {"levels", SP_ARG_INT, &cfg.flow.levels, "Farneback pyramid levels above the original"},
      {"winsize", SP_ARG_INT, &cfg.flow.winsize, "Farneback averaging window"},
      {"iterations", SP_ARG_INT, &cfg.flow.iterations, "Farneback iterations per level"},
      {"poly-n", SP_ARG_INT, &cfg.flow.poly_n, "Farneback polynomial neighbourhood half-size"},
      {"poly-sigma", SP_ARG_DOUBLE, &cfg.flow.poly_sigma, "Farneback applicability sigma"},
      {"gaussian", SP_ARG_FLAG, &cfg.flow.gaussian, "Gaussian instead of box averaging window"},
      {"no-config", SP_ARG_FLAG, &quiet_cfg, "do not echo the effective config"},
      {NULL, 0, NULL, NULL},
  };
  const char *pos[2];
  int npos = 0;
  int rc = sp_args_parse("match", "A.png B.png [options]", rows, argc, argv, pos, 2, &npos);
  if (rc) return rc > 0 ? 0 : 2;
  if (npos != 2) {
    sp_log(SP_LOG_ERROR, "match: expects two PNG files, got %d (see sp match --help)", npos);
    return 2;
  }
  char err[SP_ERRLEN];
  if (sp_match_cfg_check(&cfg, err)) {
    sp_log(SP_LOG_ERROR, "%s", err);
    return 2;
  }
  sp_image a = {0}, b = {0};
  if (read_gray(pos[0], &a, err) || read_gray(pos[1], &b, err)) {
    sp_log(SP_LOG_ERROR, "match: %s", err);
    sp_image_free(&a);
    return 1;
  }
  int status = 1;
  sp_match_ws *ws = NULL;
  float *flow = NULL;
  uint8_t *rgb = NULL;
  if (a.w != b.w || a.h != b.h) {
    sp_log(SP_LOG_ERROR, "match: frames differ in size: %s is %dx%d, %s is %dx%d", pos[0], a.w, a.h,
           pos[1], b.w, b.h);
    goto done;
  }
  if (!(ws = sp_match_ws_new(&cfg, a.w, a.h, err))) {
    sp_log(SP_LOG_ERROR, "%s", err);
    goto done;
  }
  flow = malloc(sizeof(float) * 2 * (size_t)a.w * a.h);
  if (!flow) {
    sp_log(SP_LOG_ERROR, "match: out of memory");
    goto done;
  }
  sp_match_result r;
  sp_match_timing t;
  sp_match_pair(&cfg, ws, a.px, b.px, &r, flow, &t);
  if (!quiet_cfg) sp_match_cfg_print(&cfg, stdout);
  printf("frames     %s vs %s (%dx%d)\n", pos[0], pos[1], a.w, a.h);
  printf("shape      %.4f  (SIFT: %d and %d features, %d mutual ratio-test matches)\n", r.shape, r.nfeat_a,
         r.nfeat_b, r.nmatch);
  printf("block      %.4f  (means %.4f, spreads %.4f, centre of mass %.4f: shift %.3f px)\n", r.block,
         r.block_parts.mean, r.block_parts.var, r.block_parts.com, r.com_shift_px);
  printf("ssim       %.4f\n", r.ssim);
  printf("flow       %.4f  (mean |flow| %.3f px)\n", r.flow, r.flow_mean_px);
  printf("composite  %.4f  (%s at threshold %g)\n", r.composite, r.matched ? "match" : "no match", cfg.threshold);
  printf("time       %.2f ms (shape %.2f, block %.2f, ssim %.2f, flow %.2f)\n",
         1e3 * (t.shape + t.block + t.ssim + t.flow), 1e3 * t.shape, 1e3 * t.block, 1e3 * t.ssim, 1e3 * t.flow);
  if (flow_out) {
    rgb = malloc(3 * (size_t)a.w * a.h);
    if (!rgb) {
      sp_log(SP_LOG_ERROR, "match: out of memory");
      goto done;
    }
    sp_flow_to_rgb(flow, a.w, a.h, flow_max, rgb);
    if (sp_png_write(flow_out, rgb, a.w, a.h, 3, err)) {
      sp_log(SP_LOG_ERROR, "match: %s", err);
      goto done;
    }
    printf("flow image %s\n", flow_out);
  }
  status = 0;
done:
  free(rgb);
  free(flow);
  sp_match_ws_free(ws);
  sp_image_free(&a);
  sp_image_free(&b);
  return status;
}
