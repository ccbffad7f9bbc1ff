/* tests of src/match: SSIM (self, monotone in noise, scikit-image fixture, fast vs naive), block
 * statistics, SIFT shape score, the composite score and the frame matcher. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/image.h"
#include "core/log.h"
#include "core/rng.h"
#include "match/match.h"

#define FIX "tests/fixtures/match/"

static void load_gray(const char *name, sp_image *img) {
  char err[SP_ERRLEN], path[256];
  snprintf(path, sizeof path, FIX "%s.png", name);
  cr_assert_eq(sp_png_read(path, 1, img, err), 0, "%s", err);
}

/* the ssim column of cases.txt */
static double fixture_ssim(const char *name) {
  FILE *f = fopen(FIX "cases.txt", "r");
  cr_assert(f);
  char line[512], nm[64];
  double v = NAN;
  while (fgets(line, sizeof line, f)) {
    double t[10];
    int w, h;
    if (line[0] == '#') continue;
    if (sscanf(line, "%63s %d %d %lf %lf %lf %lf %lf %lf %lf %lf", nm, &w, &h, &t[0], &t[1], &t[2], &t[3],
               &t[4], &t[5], &t[6], &t[7]) == 11 && !strcmp(nm, name))
      v = t[7];
  }
  fclose(f);
  cr_assert(!isnan(v), "no ssim for %s", name);
  return v;
}

static void add_noise(const uint8_t *src, uint8_t *dst, int n, double sigma, uint32_t seed) {
  sp_mt19937 r;
  sp_mt_seed(&r, seed);
  for (int i = 0; i < n; i++) {
    double v = src[i] + sigma * sp_mt_normal(&r);
    dst[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrint(v));
  }
}

/* ---- SSIM ---- */

Test(match_ssim, self_is_one_and_noise_lowers_it_monotonically) {
  sp_image a;
  load_gray("scene_a", &a);
  char err[SP_ERRLEN];
  sp_ssim_ws *ws = sp_ssim_ws_new(a.w, a.h, err);
  cr_assert(ws, "%s", err);
  cr_expect_float_eq(sp_ssim_gray(ws, a.px, a.px), 1.0, 1e-6);
  uint8_t *b = malloc(a.w * a.h);
  double prev = 1.0;
  const double sig[] = {1, 2, 4, 8, 16, 32, 64};
  for (int i = 0; i < 7; i++) {
    add_noise(a.px, b, a.w * a.h, sig[i], 11);
    double s = sp_ssim_gray(ws, a.px, b);
    cr_expect_lt(s, prev, "sigma %g: ssim %.5f not below %.5f", sig[i], s, prev);
    cr_expect_gt(s, -1.0);
    prev = s;
  }
  cr_expect_lt(prev, 0.3, "heavy noise still scores %.3f", prev);
  free(b);
  sp_ssim_ws_free(ws);
  sp_image_free(&a);
}

static void check_skimage(const char *name) {
  char a_name[64], b_name[64], err[SP_ERRLEN];
  snprintf(a_name, sizeof a_name, "%s_a", name);
  snprintf(b_name, sizeof b_name, "%s_b", name);
  sp_image a, b;
  load_gray(a_name, &a);
  load_gray(b_name, &b);
  sp_ssim_ws *ws = sp_ssim_ws_new(a.w, a.h, err);
  cr_assert(ws, "%s", err);
  double s = sp_ssim_gray(ws, a.px, b.px), want = fixture_ssim(name);
  double r = sp_ssim_gray_ref(a.px, b.px, a.w, a.h);
  cr_log_info("ssim %s: fast %.8f naive %.8f skimage %.8f", name, s, r, want);
  cr_expect_lt(fabs(s - want), 1e-3, "%s: %.6f vs skimage %.6f", name, s, want);
  cr_expect_lt(fabs(r - want), 1e-6, "%s: naive %.8f vs skimage %.8f", name, r, want);
  cr_expect_lt(fabs(s - r), 1e-5, "%s: fast %.8f vs naive %.8f", name, s, r);
  sp_ssim_ws_free(ws);
  sp_image_free(&a);
  sp_image_free(&b);
}

Test(match_ssim, skimage_fixture_shift) { check_skimage("shift"); }
Test(match_ssim, skimage_fixture_scene) { check_skimage("scene"); }
Test(match_ssim, skimage_fixture_gauss) { check_skimage("gauss"); }
Test(match_ssim, skimage_fixture_big) { check_skimage("big"); }
Test(match_ssim, skimage_fixture_non_square) { check_skimage("rect"); }
Test(match_ssim, skimage_fixture_render) { check_skimage("render"); }

Test(match_ssim, too_small_is_refused) {
  char err[SP_ERRLEN];
  cr_expect_null(sp_ssim_ws_new(10, 64, err));
  cr_expect(strstr(err, "smaller") != NULL, "%s", err);
}

/* ---- block statistics ---- */

Test(match_block, identical_is_one_and_com_shift_is_measured) {
  int w = 64, h = 64;
  uint8_t *a = calloc(w * h, 1), *b = calloc(w * h, 1);
  for (int y = 20; y < 30; y++)
    for (int x = 10; x < 20; x++) {
      a[y * w + x] = 200;
      b[y * w + x + 4] = 200;   // the square moved 4 px right
    }
  sp_block_parts p;
  cr_expect_float_eq(sp_block_score(a, a, w, h, 8, 4.0, 2.0, &p), 1.0, 1e-12);
  cr_expect_float_eq(p.com_shift_px, 0.0, 1e-12);
  double s = sp_block_score(a, b, w, h, 8, 4.0, 2.0, &p);
  cr_expect_float_eq(p.com_shift_px, 4.0, 1e-9, "shift %.6f", p.com_shift_px);
  cr_expect_float_eq(p.com, exp(-2.0), 1e-9);
  cr_expect_lt(p.mean, 1.0);
  cr_expect_lt(p.var, 1.0);
  cr_expect(s > 0 && s < 1, "score %.4f", s);
  /* a larger move scores lower */
  uint8_t *c = calloc(w * h, 1);
  for (int y = 20; y < 30; y++)
    for (int x = 40; x < 50; x++) c[y * w + x] = 200;
  cr_expect_lt(sp_block_score(a, c, w, h, 8, 4.0, 2.0, NULL), s);
  /* grid that does not divide the size, and black frames */
  memset(c, 0, w * h);
  cr_expect_float_eq(sp_block_score(c, c, w, h, 7, 4.0, 2.0, NULL), 1.0, 1e-12);
  free(a);
  free(b);
  free(c);
}

/* a global brightness offset changes neither the layout of the block means nor the centre of mass
 * of the deviation from the median; black vs white is left to SSIM */
Test(match_block, invariant_to_a_brightness_offset) {
  sp_image a;
  load_gray("scene_a", &a);
  uint8_t *b = malloc(a.w * a.h);
  int lo = 255, hi = 0;
  for (int i = 0; i < a.w * a.h; i++) {
    lo = a.px[i] < lo ? a.px[i] : lo;
    hi = a.px[i] > hi ? a.px[i] : hi;
  }
  cr_assert_leq(hi + 20, 255, "fixture too bright for the test (max %d)", hi);
  for (int i = 0; i < a.w * a.h; i++) b[i] = (uint8_t)(a.px[i] + 20);
  sp_block_parts p;
  cr_expect_float_eq(sp_block_score(a.px, b, a.w, a.h, 8, 4.0, 0.25, &p), 1.0, 1e-9);
  cr_expect_float_eq(p.com_shift_px, 0.0, 1e-9);
  cr_expect_float_eq(p.mean_diff, 0.0, 1e-9);
  uint8_t *c = malloc(a.w * a.h), *d = malloc(a.w * a.h);
  memset(c, 0, a.w * a.h);
  memset(d, 255, a.w * a.h);
  double s = sp_block_score(c, d, a.w, a.h, 8, 4.0, 0.25, &p);
  cr_expect(s >= 0 && s <= 1);
  free(b);
  free(c);
  free(d);
  sp_image_free(&a);
}

/* ---- SIFT shape ---- */

typedef struct {
  sp_shape_ws *ws;
  sp_shape_feats fa, fb;
} shape_fx;

static void shape_setup(shape_fx *s, int w, int h, int first_octave) {
  char err[SP_ERRLEN];
  sp_match_cfg c;
  sp_match_cfg_default(&c);
  s->ws = sp_shape_ws_new(w, h, first_octave, c.sift_max_feats, c.sift_peak_thresh, c.sift_edge_thresh, err);
  cr_assert(s->ws, "%s", err);
  cr_assert_eq(sp_shape_feats_alloc(&s->fa, c.sift_max_feats, err), 0);
  cr_assert_eq(sp_shape_feats_alloc(&s->fb, c.sift_max_feats, err), 0);
}

static void shape_teardown(shape_fx *s) {
  sp_shape_ws_free(s->ws);
  sp_shape_feats_free(&s->fa);
  sp_shape_feats_free(&s->fb);
}

static double shape_of(shape_fx *s, const uint8_t *a, const uint8_t *b, int *nm) {
  sp_shape_extract(s->ws, a, &s->fa);
  sp_shape_extract(s->ws, b, &s->fb);
  return sp_shape_score(s->ws, &s->fa, &s->fb, 0.8, nm);
}

/* full resolution (first octave 0) and the default half resolution (1) */
static void check_shape(int first_octave, int min_feats) {
  sp_image a, b, c;
  load_gray("scene_a", &a);
  load_gray("scene_b", &b);
  load_gray("shift_a", &c);
  shape_fx s;
  shape_setup(&s, a.w, a.h, first_octave);
  int nm;
  double self = shape_of(&s, a.px, a.px, &nm);
  cr_log_info("shape (octave %d): scene self %.3f (%d features, %d matches)", first_octave, self, s.fa.n, nm);
  cr_expect_geq(s.fa.n, min_feats, "the scene should have features, got %d", s.fa.n);
  cr_expect_gt(self, 0.95, "self %.3f", self);
  double moved = shape_of(&s, a.px, b.px, &nm);
  double other = shape_of(&s, a.px, c.px, &nm);
  cr_log_info("shape (octave %d): scene moved %.3f, unrelated texture %.3f", first_octave, moved, other);
  cr_expect_gt(moved, other + 0.3, "moved %.3f vs unrelated %.3f", moved, other);
  cr_expect_lt(other, 0.2, "unrelated frames score %.3f", other);
  shape_teardown(&s);
  sp_image_free(&a);
  sp_image_free(&b);
  sp_image_free(&c);
}

Test(match_shape, identical_shifted_and_different_full_res) { check_shape(0, 15); }
Test(match_shape, identical_shifted_and_different_half_res) { check_shape(1, 4); }

/* VLFeat keeps the last described octave's gradients across frames; a frame that stops early (cap
 * reached in its first octave) must not leak them into the next frame's descriptors */
Test(match_shape, capped_frame_does_not_leak_into_the_next) {
  sp_image a, b;
  load_gray("shift_a", &a);
  load_gray("shift_b", &b);
  char err[SP_ERRLEN];
  sp_shape_feats fresh, after;
  cr_assert_eq(sp_shape_feats_alloc(&fresh, 8, err), 0);
  cr_assert_eq(sp_shape_feats_alloc(&after, 8, err), 0);
  sp_shape_ws *w1 = sp_shape_ws_new(a.w, a.h, 1, 8, 3.0, 10.0, err), *w2 = sp_shape_ws_new(a.w, a.h, 1, 8, 3.0, 10.0, err);
  cr_assert(w1 && w2, "%s", err);
  sp_shape_extract(w1, a.px, &fresh);
  sp_shape_extract(w2, b.px, &after);   // stops in the first octave: 8 features
  cr_assert_eq(after.n, 8);
  sp_shape_extract(w2, a.px, &after);
  cr_assert_eq(after.n, fresh.n);
  cr_expect_eq(memcmp(after.desc, fresh.desc, sizeof(float) * SP_SHAPE_DESC * fresh.n), 0,
               "descriptors of a depend on the frame extracted before");
  sp_shape_ws_free(w1);
  sp_shape_ws_free(w2);
  sp_shape_feats_free(&fresh);
  sp_shape_feats_free(&after);
  sp_image_free(&a);
  sp_image_free(&b);
}

/* the cap keeps the strongest: a capped frame's features are a subset of the uncapped ones */
Test(match_shape, cap_keeps_a_subset) {
  sp_image a;
  load_gray("shift_a", &a);
  char err[SP_ERRLEN];
  sp_shape_feats all, few;
  cr_assert_eq(sp_shape_feats_alloc(&all, 512, err), 0);
  cr_assert_eq(sp_shape_feats_alloc(&few, 10, err), 0);
  sp_shape_ws *w1 = sp_shape_ws_new(a.w, a.h, 1, 512, 3.0, 10.0, err), *w2 = sp_shape_ws_new(a.w, a.h, 1, 10, 3.0, 10.0, err);
  cr_assert(w1 && w2, "%s", err);
  sp_shape_extract(w1, a.px, &all);
  sp_shape_extract(w2, a.px, &few);
  cr_assert_gt(all.n, 10);
  cr_assert_eq(few.n, 10);
  for (int i = 0; i < few.n; i++) {
    int found = 0;
    for (int j = 0; j < all.n && !found; j++)
      found = !memcmp(few.desc + i * SP_SHAPE_DESC, all.desc + j * SP_SHAPE_DESC, sizeof(float) * SP_SHAPE_DESC);
    cr_expect(found, "capped feature %d not among the uncapped ones", i);
  }
  sp_shape_ws_free(w1);
  sp_shape_ws_free(w2);
  sp_shape_feats_free(&all);
  sp_shape_feats_free(&few);
  sp_image_free(&a);
}

Test(match_shape, flat_frames) {
  int w = 64, h = 64;
  uint8_t *flat = malloc(w * h);
  memset(flat, 128, w * h);
  sp_image t;
  load_gray("gauss_a", &t);
  cr_assert(t.w == w && t.h == h);
  shape_fx s;
  shape_setup(&s, w, h, 0);
  cr_expect_float_eq(shape_of(&s, flat, flat, NULL), 1.0, 1e-12);
  cr_expect_eq(s.fa.n, 0);
  cr_expect_float_eq(shape_of(&s, flat, t.px, NULL), 0.0, 1e-12);
  shape_teardown(&s);
  free(flat);
  sp_image_free(&t);
}

/* ---- composite ---- */

Test(match_score, identical_matches_different_does_not) {
  sp_image a, b, c;
  load_gray("scene_a", &a);
  load_gray("scene_b", &b);
  load_gray("shift_a", &c);
  char err[SP_ERRLEN];
  sp_match_cfg cfg;
  sp_match_cfg_default(&cfg);
  sp_match_ws *ws = sp_match_ws_new(&cfg, a.w, a.h, err);
  cr_assert(ws, "%s", err);
  sp_match_result r;
  sp_match_pair(&cfg, ws, a.px, a.px, &r, NULL, NULL);
  cr_expect_gt(r.composite, 0.98, "self composite %.4f", r.composite);
  cr_expect(r.matched);
  double ws_sum = cfg.w_shape + cfg.w_block + cfg.w_ssim + cfg.w_flow;
  double want = cfg.w_shape * r.shape + cfg.w_block * r.block + cfg.w_ssim * r.ssim + cfg.w_flow * r.flow;
  cr_expect_float_eq(r.composite, want, 1e-12);
  cr_expect_leq(r.composite, ws_sum + 1e-12);
  sp_match_pair(&cfg, ws, a.px, b.px, &r, NULL, NULL);
  double moved = r.composite;
  cr_log_info("composite: scene moved %.4f (shape %.3f block %.3f ssim %.3f flow %.3f)", moved, r.shape,
              r.block, r.ssim, r.flow);
  sp_match_pair(&cfg, ws, a.px, c.px, &r, NULL, NULL);
  cr_log_info("composite: unrelated %.4f (shape %.3f block %.3f ssim %.3f flow %.3f)", r.composite, r.shape,
              r.block, r.ssim, r.flow);
  cr_expect(!r.matched, "unrelated frames matched (%.4f)", r.composite);
  cr_expect_lt(r.composite, moved);
  /* every component in [0, 1] */
  const double parts[4] = {r.shape, r.block, r.ssim, r.flow};
  for (int i = 0; i < 4; i++) cr_expect(parts[i] >= -1 && parts[i] <= 1, "component %d = %g", i, parts[i]);
  sp_match_ws_free(ws);
  sp_image_free(&a);
  sp_image_free(&b);
  sp_image_free(&c);
}

Test(match_score, config_checks) {
  char err[SP_ERRLEN];
  sp_match_cfg c;
  sp_match_cfg_default(&c);
  cr_expect_eq(sp_match_cfg_check(&c, err), 0, "%s", err);
  c.w_flow = -1;
  cr_expect_eq(sp_match_cfg_check(&c, err), -1);
  sp_match_cfg_default(&c);
  c.threshold = 5;
  cr_expect_eq(sp_match_cfg_check(&c, err), -1);
  cr_expect(strstr(err, "threshold") != NULL, "%s", err);
  sp_match_cfg_default(&c);
  c.max_steps = 0;
  cr_expect_null(sp_match_ws_new(&c, 64, 64, err));
  sp_match_cfg_default(&c);
  cr_expect_null(sp_match_ws_new(&c, 16, 64, err));
  cr_expect(strstr(err, "16x64") != NULL, "%s", err);
}

Test(match_score, rgb_to_gray_matches_opencv) {
  /* cv2.cvtColor(np.uint8([[[r,g,b]]]), cv2.COLOR_RGB2GRAY) for these pixels: 76 150 29 255 0 128 */
  const uint8_t rgb[6 * 3] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 128, 128, 128};
  const uint8_t want[6] = {76, 150, 29, 255, 0, 128};
  uint8_t g[6];
  sp_match_rgb_to_gray(rgb, 6, 1, g);
  for (int i = 0; i < 6; i++) cr_expect_eq(g[i], want[i], "pixel %d: %d vs %d", i, g[i], want[i]);
}

/* ---- the frame matcher ---- */

Test(match_matcher, advances_on_identical_frames) {
  sp_image a;
  load_gray("scene_a", &a);
  char err[SP_ERRLEN];
  sp_match_cfg cfg;
  sp_match_cfg_default(&cfg);
  sp_match_ws *ws = sp_match_ws_new(&cfg, a.w, a.h, err);
  cr_assert(ws, "%s", err);
  sp_matcher m;
  sp_matcher_init(&m, 4, 1, cfg.threshold, cfg.max_steps);
  sp_match_result r;
  sp_match_pair(&cfg, ws, a.px, a.px, &r, NULL, NULL);
  cr_expect_eq(sp_matcher_step(&m, r.composite), SP_MATCHER_ADVANCE);
  cr_expect_eq(m.goal, 2);
  cr_expect_eq(m.n_matched, 1);
  sp_match_ws_free(ws);
  sp_image_free(&a);
}

Test(match_matcher, holds_on_different_frames_and_forces_at_the_limit) {
  sp_image a, c;
  load_gray("scene_a", &a);
  load_gray("shift_a", &c);
  char err[SP_ERRLEN];
  sp_match_cfg cfg;
  sp_match_cfg_default(&cfg);
  cfg.max_steps = 5;
  sp_match_ws *ws = sp_match_ws_new(&cfg, a.w, a.h, err);
  cr_assert(ws, "%s", err);
  sp_match_result r;
  sp_match_pair(&cfg, ws, a.px, c.px, &r, NULL, NULL);
  sp_matcher m;
  sp_matcher_init(&m, 3, 1, cfg.threshold, cfg.max_steps);
  for (int i = 0; i < 4; i++) cr_expect_eq(sp_matcher_step(&m, r.composite), SP_MATCHER_HOLD, "step %d", i);
  cr_expect_eq(m.goal, 1);
  cr_expect_eq(sp_matcher_step(&m, r.composite), SP_MATCHER_FORCED);
  cr_expect_eq(m.goal, 2);
  cr_expect_eq(m.n_forced, 1);
  cr_expect_eq(m.steps_on_goal, 0);
  /* last goal: forced again, then done for good */
  for (int i = 0; i < 4; i++) sp_matcher_step(&m, r.composite);
  cr_expect_eq(sp_matcher_step(&m, r.composite), SP_MATCHER_FORCED);
  cr_expect_eq(m.goal, 3);
  cr_expect_eq(sp_matcher_step(&m, 1.0), SP_MATCHER_DONE);
  cr_expect_eq(m.steps, 10);
  sp_match_ws_free(ws);
  sp_image_free(&a);
  sp_image_free(&c);
}

Test(match_matcher, never_deadlocks_on_random_scores) {
  sp_mt19937 rng;
  sp_mt_seed(&rng, 3);
  for (int trial = 0; trial < 200; trial++) {
    int n = 1 + (int)(sp_mt_double(&rng) * 10), k = 1 + (int)(sp_mt_double(&rng) * 30);
    double thr = sp_mt_double(&rng);
    sp_matcher m;
    sp_matcher_init(&m, n, 1, thr, k);
    int steps = 0;
    while (sp_matcher_step(&m, sp_mt_double(&rng) * thr * 1.05) != SP_MATCHER_DONE) {
      steps++;
      cr_assert_leq(steps, (n - 1) * k, "trial %d: %d steps for %d frames at limit %d", trial, steps, n, k);
      cr_assert_leq(m.steps_on_goal, k - 1);
    }
    cr_expect_eq(m.goal, n);
    cr_expect_eq(m.n_matched + m.n_forced, n - 1);
  }
}

/* closed-loop sketch: goal frames show a dark block at x = 20 + 10 k over the shift fixture's
 * texture, degraded like generated frames (3x3 binomial blur, noise sigma 3) as in the threshold's
 * calibration (docs/match.md); the observation's block moves 1 px per step. The matcher should
 * advance by matches (no forced switch) and only once the observation is past the midpoint to its
 * goal (at most 5 of the 10 px spacing away; with this large dark block the default threshold is
 * crossed 3-5 px before the goal). SP_MATCH_DEBUG=1 logs every step's components. */
static void degrade(uint8_t *img, int w, int h, uint32_t seed) {
  uint8_t *src = malloc((size_t)w * h);
  memcpy(src, img, (size_t)w * h);
  const int k[3] = {1, 2, 1};
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int acc = 0;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          int yy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy, xx = x + dx < 0 ? 0 : x + dx >= w ? w - 1 : x + dx;
          acc += k[dy + 1] * k[dx + 1] * src[yy * w + xx];
        }
      img[y * w + x] = (uint8_t)((acc + 8) / 16);
    }
  add_noise(img, img, w * h, 3.0, seed);
  free(src);
}

static void draw_block(const uint8_t *bg, uint8_t *out, int w, int h, int bx) {
  memcpy(out, bg, (size_t)w * h);
  for (int y = 50; y < 80; y++)
    for (int x = bx; x < bx + 20 && x < w; x++) out[y * w + x] = 30;
}

Test(match_matcher, follows_a_moving_object_by_matches) {
  sp_image bg;
  load_gray("shift_a", &bg);
  const int w = bg.w, h = bg.h, nf = 8;
  char err[SP_ERRLEN];
  sp_match_cfg cfg;
  sp_match_cfg_default(&cfg);
  sp_match_ws *ws = sp_match_ws_new(&cfg, w, h, err);
  cr_assert(ws, "%s", err);
  uint8_t *goals = malloc((size_t)nf * w * h), *obs = malloc((size_t)w * h);
  for (int k = 0; k < nf; k++) {
    draw_block(bg.px, goals + (size_t)k * w * h, w, h, 20 + 10 * k);
    degrade(goals + (size_t)k * w * h, w, h, 100 + k);
  }
  sp_matcher m;
  sp_matcher_init(&m, nf, 1, cfg.threshold, cfg.max_steps);
  int pos = 20, last_goal = -1;
  sp_match_result r;
  for (int step = 0; step < 200; step++) {
    if (m.goal != last_goal) {
      if (m.goal >= nf) break;
      sp_match_set_goal(&cfg, ws, goals + (size_t)m.goal * w * h, NULL);
      last_goal = m.goal;
    }
    draw_block(bg.px, obs, w, h, pos);
    sp_match_obs(&cfg, ws, obs, &r, NULL, NULL);
    int goal_pos = 20 + 10 * m.goal;
    if (getenv("SP_MATCH_DEBUG"))
      cr_log_info("step %d goal %d dist %d: shape %.3f block %.3f ssim %.3f flow %.3f S %.3f", step, m.goal,
                  goal_pos - pos, r.shape, r.block, r.ssim, r.flow, r.composite);
    sp_matcher_event e = sp_matcher_step(&m, r.composite);
    if (e == SP_MATCHER_ADVANCE) {
      cr_log_info("matcher: goal %d matched %d px away, score %.3f", m.goal - 1, abs(pos - goal_pos), r.composite);
      cr_expect_leq(abs(pos - goal_pos), 5, "advanced at %d px from goal %d (score %.3f)", abs(pos - goal_pos),
                    m.goal - 1, r.composite);
    }
    if (pos < goal_pos) pos++;   // the robot moves toward the current goal
  }
  cr_expect_eq(m.goal, nf, "stopped at goal %d", m.goal);
  cr_expect_eq(m.n_forced, 0, "%d forced switches", m.n_forced);
  cr_expect_eq(m.n_matched, nf - 1);
  free(goals);
  free(obs);
  sp_match_ws_free(ws);
  sp_image_free(&bg);
}
