/* tests of src/match flow.c: Farneback against OpenCV fixtures (tools/match_fixtures.py), against
 * the known shift, fast path against the naive twin, and the colour wheel. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "match/match.h"

#define FIX "tests/fixtures/match/"

typedef struct {
  char name[32];
  int w, h;
  sp_flow_cfg cfg;
  double ssim, dx, dy;
  sp_image a, b;
  float *ref;   // (h x w x 2) OpenCV's flow
} fixture;

static void load_fixture(const char *name, fixture *f) {
  char err[SP_ERRLEN], path[256];
  size_t len;
  char *txt = sp_file_read(FIX "cases.txt", &len, err);
  cr_assert(txt, "%s", err);
  int found = 0;
  for (char *line = strtok(txt, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#') continue;
    int flags;
    memset(f, 0, sizeof *f);
    int n = sscanf(line, "%31s %d %d %lf %d %d %d %d %lf %d %lf %lf %lf", f->name, &f->w, &f->h,
                   &f->cfg.pyr_scale, &f->cfg.levels, &f->cfg.winsize, &f->cfg.iterations,
                   &f->cfg.poly_n, &f->cfg.poly_sigma, &flags, &f->ssim, &f->dx, &f->dy);
    cr_assert_eq(n, 13, "bad cases.txt line: %s", line);
    f->cfg.gaussian = (flags & 256) != 0;
    if (!strcmp(f->name, name)) {
      found = 1;
      break;
    }
  }
  free(txt);
  cr_assert(found, "case %s not in cases.txt", name);
  snprintf(path, sizeof path, FIX "%s_a.png", name);
  cr_assert_eq(sp_png_read(path, 1, &f->a, err), 0, "%s", err);
  snprintf(path, sizeof path, FIX "%s_b.png", name);
  cr_assert_eq(sp_png_read(path, 1, &f->b, err), 0, "%s", err);
  cr_assert(f->a.w == f->w && f->a.h == f->h && f->b.w == f->w && f->b.h == f->h);
  snprintf(path, sizeof path, FIX "%s_flow.f32", name);
  char *raw = sp_file_read(path, &len, err);
  cr_assert(raw, "%s", err);
  cr_assert_eq(len, sizeof(float) * 2 * f->w * f->h, "%s: %zu bytes", path, len);
  f->ref = malloc(len);
  memcpy(f->ref, raw, len);   // little-endian float32, as written on x86
  free(raw);
}

static void free_fixture(fixture *f) {
  sp_image_free(&f->a);
  sp_image_free(&f->b);
  free(f->ref);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* median and 95th percentile endpoint error between two fields */
static void epe_stats(const float *u, const float *v, int n, double *med, double *p95, double *mean) {
  double *e = malloc(sizeof(double) * n), s = 0;
  for (int i = 0; i < n; i++) {
    e[i] = hypot(u[2 * i] - v[2 * i], u[2 * i + 1] - v[2 * i + 1]);
    s += e[i];
  }
  qsort(e, n, sizeof *e, cmp_double);
  *med = e[n / 2];
  *p95 = e[(int)(0.95 * (n - 1))];
  *mean = s / n;
  free(e);
}

static void check_against_opencv(const char *name, double max_median, double max_mean) {
  fixture f;
  load_fixture(name, &f);
  char err[SP_ERRLEN];
  sp_flow_ws *ws = sp_flow_ws_new(&f.cfg, f.w, f.h, err);
  cr_assert(ws, "%s", err);
  float *flow = malloc(sizeof(float) * 2 * f.w * f.h);
  sp_flow_farneback(&f.cfg, ws, f.a.px, f.b.px, flow);
  double med, p95, mean;
  epe_stats(flow, f.ref, f.w * f.h, &med, &p95, &mean);
  cr_log_info("flow %s vs OpenCV: EPE median %.2e mean %.2e p95 %.2e px", name, med, mean, p95);
  cr_expect_lt(med, max_median, "%s: median EPE %.4f px vs OpenCV", name, med);
  cr_expect_lt(mean, max_mean, "%s: mean EPE %.4f px vs OpenCV", name, mean);
  free(flow);
  sp_flow_ws_free(ws);
  free_fixture(&f);
}

/* the bar is a median under 0.1 px; the implementation is much closer than that */
Test(match_flow, opencv_shift) { check_against_opencv("shift", 0.01, 0.02); }
Test(match_flow, opencv_scene) { check_against_opencv("scene", 0.01, 0.02); }
Test(match_flow, opencv_gaussian_window_poly7) { check_against_opencv("gauss", 0.01, 0.02); }
Test(match_flow, opencv_big_shift_pyramid) { check_against_opencv("big", 0.01, 0.05); }
Test(match_flow, opencv_non_square) { check_against_opencv("rect", 0.01, 0.02); }
Test(match_flow, opencv_benchmark_render) { check_against_opencv("render", 0.01, 0.02); }

/* known translation: interior median flow close to the true shift. Farneback with a 15-px box window
 * underestimates this smooth shift by about 0.26 px in x, OpenCV alike (2.238 vs 2.5; a 21-px
 * window gives 2.365), so the bar is 0.3 px; the OpenCV tests above pin the exact values. */
static void check_known_shift(const char *name, double tol) {
  fixture f;
  load_fixture(name, &f);
  cr_assert(!isnan(f.dx));
  char err[SP_ERRLEN];
  sp_flow_ws *ws = sp_flow_ws_new(&f.cfg, f.w, f.h, err);
  cr_assert(ws, "%s", err);
  float *flow = malloc(sizeof(float) * 2 * f.w * f.h);
  sp_flow_farneback(&f.cfg, ws, f.a.px, f.b.px, flow);
  int m = 16, n = 0;
  double *ex = malloc(sizeof(double) * f.w * f.h), *ey = malloc(sizeof(double) * f.w * f.h);
  for (int y = m; y < f.h - m; y++)
    for (int x = m; x < f.w - m; x++, n++) {
      ex[n] = flow[2 * (y * f.w + x)];
      ey[n] = flow[2 * (y * f.w + x) + 1];
    }
  qsort(ex, n, sizeof *ex, cmp_double);
  qsort(ey, n, sizeof *ey, cmp_double);
  cr_log_info("flow %s: interior median (%.3f, %.3f), true (%.3f, %.3f)", name, ex[n / 2], ey[n / 2], f.dx, f.dy);
  cr_expect_lt(fabs(ex[n / 2] - f.dx), tol, "%s dx %.3f vs %.3f", name, ex[n / 2], f.dx);
  cr_expect_lt(fabs(ey[n / 2] - f.dy), tol, "%s dy %.3f vs %.3f", name, ey[n / 2], f.dy);
  free(ex);
  free(ey);
  free(flow);
  sp_flow_ws_free(ws);
  free_fixture(&f);
}

Test(match_flow, known_shift_subpixel) { check_known_shift("shift", 0.3); }
Test(match_flow, known_shift_large) { check_known_shift("big", 0.3); }

/* zero motion on identical frames, up to the last row and column, where (as in OpenCV) x + d has no
 * bilinear neighbour and only the first frame's expansion is used: OpenCV gives a mean of 0.0015 px */
Test(match_flow, identical_frames_zero_flow) {
  fixture f;
  load_fixture("scene", &f);
  char err[SP_ERRLEN];
  sp_flow_ws *ws = sp_flow_ws_new(&f.cfg, f.w, f.h, err);
  cr_assert(ws, "%s", err);
  float *flow = malloc(sizeof(float) * 2 * f.w * f.h);
  sp_flow_farneback(&f.cfg, ws, f.a.px, f.a.px, flow);
  double mean = sp_flow_mean_mag(flow, f.w, f.h), inner = 0;
  for (int y = 10; y < f.h - 10; y++)
    for (int x = 10; x < f.w - 10; x++) inner = fmax(inner, hypot(flow[2 * (y * f.w + x)], flow[2 * (y * f.w + x) + 1]));
  cr_expect_lt(mean, 0.01, "mean |flow| %.4f on identical frames", mean);
  cr_expect_lt(inner, 0.01, "max interior |flow| %.4f on identical frames", inner);
  free(flow);
  sp_flow_ws_free(ws);
  free_fixture(&f);
}

/* the fast path against the naive twin (different code, same method), both parameter families */
static void check_against_ref(const char *name) {
  fixture f;
  load_fixture(name, &f);
  char err[SP_ERRLEN];
  sp_flow_ws *ws = sp_flow_ws_new(&f.cfg, f.w, f.h, err);
  cr_assert(ws, "%s", err);
  float *u = malloc(sizeof(float) * 2 * f.w * f.h), *v = malloc(sizeof(float) * 2 * f.w * f.h);
  sp_flow_farneback(&f.cfg, ws, f.a.px, f.b.px, u);
  cr_assert_eq(sp_flow_farneback_ref(&f.cfg, f.a.px, f.b.px, f.w, f.h, v, err), 0, "%s", err);
  double med, p95, mean;
  epe_stats(u, v, f.w * f.h, &med, &p95, &mean);
  cr_log_info("flow %s fast vs ref: EPE median %.2e mean %.2e p95 %.2e", name, med, mean, p95);
  cr_expect_lt(med, 1e-3, "%s fast vs ref median %.2e", name, med);
  cr_expect_lt(p95, 1e-2, "%s fast vs ref p95 %.2e", name, p95);
  free(u);
  free(v);
  sp_flow_ws_free(ws);
  free_fixture(&f);
}

Test(match_flow, fast_matches_naive_box) { check_against_ref("big"); }
Test(match_flow, fast_matches_naive_gaussian) { check_against_ref("gauss"); }
Test(match_flow, fast_matches_naive_non_square) { check_against_ref("rect"); }

Test(match_flow, bad_config_is_refused) {
  char err[SP_ERRLEN];
  sp_flow_cfg c;
  sp_flow_cfg_default(&c);
  c.pyr_scale = 1.5;
  cr_expect_null(sp_flow_ws_new(&c, 64, 64, err));
  cr_expect(strstr(err, "pyr_scale") != NULL, "%s", err);
  sp_flow_cfg_default(&c);
  cr_expect_null(sp_flow_ws_new(&c, 4, 64, err));
  cr_expect(strstr(err, "smaller") != NULL, "%s", err);
}

/* colour wheel: no motion is white; +x is red-ish... per Middlebury: right = red/orange,
 * down = blue-ish/green side; opposite directions get different hues; saturates at max_mag */
Test(match_flow, colour_wheel) {
  float fl[5 * 2] = {0, 0, 1, 0, -1, 0, 0, 1, 0, -1};
  uint8_t rgb[5 * 3];
  sp_flow_to_rgb(fl, 5, 1, 1.0, rgb);
  cr_expect(rgb[0] == 255 && rgb[1] == 255 && rgb[2] == 255, "zero flow is white");
  /* Middlebury: flow to the right (+u) is red on the wheel's far side from -u (cyan-blue) */
  cr_expect(rgb[3] > rgb[5], "+x: more red than blue (%d %d %d)", rgb[3], rgb[4], rgb[5]);
  cr_expect(rgb[8] > rgb[6], "-x: more blue than red (%d %d %d)", rgb[6], rgb[7], rgb[8]);
  cr_expect(memcmp(rgb + 9, rgb + 12, 3) != 0, "up and down differ");
}
