/* tests of the Winograd F(4x4, 3x3) path of conv2d (src/nn/winograd.c): forward (plain and
 * accumulating, with bias), backward data and weight (accumulating), against the double
 * precision reference, over shapes that exercise every edge: images smaller than a tile,
 * sizes not a multiple of 4, channel counts not a multiple of the kernel blocks (6, 8, 16), more
 * tiles than one block, and rows of 8 or more tiles (the deinterleaving fast path). The im2col path is checked on the same shapes. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_train.h"
#include "nn/nn_winograd.h"

static float *rnd(size_t n, unsigned seed) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)((seed >> 8) & 0xffff) / 32768.f - 1.f;
  }
  return p;
}

/* |got - want| <= tol * max|want| everywhere */
static void expect_near(const char *what, const float *got, const float *want, size_t n,
                        double tol) {
  double scale = 0, worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < n; i++)
    if (fabs(want[i]) > scale) scale = fabs(want[i]);
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - want[i]);
    if (!(e <= worst)) worst = e, wi = i;
  }
  cr_expect(worst <= tol * scale, "%s: max abs err %.3g at %zu (got %.7g want %.7g), scale %.3g",
            what, worst, wi, got[wi], want[wi], scale);
}

static void check(int wino, int B, int Cin, int H, int W, int Cout) {
  /* mode 2: Winograd on every shape, not only where it pays */
  cr_assert_eq(nn_conv2d_set_winograd(wino ? 2 : 0), wino ? 2 : 0, "Winograd unavailable");
  nn_conv2d_dims d = nn_conv2d_make(B, Cin, H, W, Cout, 3, 1, 1);
  size_t nx = (size_t)B * Cin * H * W, ny = (size_t)B * Cout * H * W, nw = (size_t)Cout * Cin * 9;
  float *x = rnd(nx, 1), *w = rnd(nw, 2), *b = rnd(Cout, 3), *dy = rnd(ny, 4);
  float *y0 = rnd(ny, 5), *y = malloc(ny * sizeof(float)), *yr = malloc(ny * sizeof(float));
  float *s = rnd(nn_conv2d_scratch(&d), 6);  // scratch starts as garbage, not zeros
  char what[128];
  snprintf(what, sizeof what, "%s B=%d Cin=%d %dx%d Cout=%d", wino ? "winograd" : "im2col", B, Cin,
           H, W, Cout);

  nn_conv2d_forward(y, x, w, b, &d, s);
  nn_conv2d_forward_ref(yr, x, w, b, &d);
  expect_near(what, y, yr, ny, 2e-5);
  /* accumulate: y0 += conv(x) + b */
  memcpy(y, y0, ny * sizeof(float));
  nn_conv2d_forward_acc(y, x, w, b, &d, s);
  for (size_t i = 0; i < ny; i++) yr[i] += y0[i];
  expect_near(what, y, yr, ny, 2e-5);

  /* backward accumulates into non-zero gradients */
  /* rnd is deterministic: the same seed gives the reference path the same starting gradients */
  float *dx = rnd(nx, 7), *dxr = rnd(nx, 7), *dw = rnd(nw, 8), *dwr = rnd(nw, 8);
  float *db = rnd(Cout, 9), *dbr = rnd(Cout, 9);
  nn_conv2d_backward(dx, dw, db, dy, x, w, &d, s);
  nn_conv2d_backward_ref(dxr, dwr, dbr, dy, x, w, &d);
  expect_near(what, dx, dxr, nx, 2e-5);
  expect_near(what, dw, dwr, nw, 2e-5);
  expect_near(what, db, dbr, Cout, 2e-5);
  /* one gradient at a time gives the same */
  float *dw2 = rnd(nw, 8), *dx2 = rnd(nx, 7);
  nn_conv2d_backward(NULL, dw2, NULL, dy, x, w, &d, s);
  nn_conv2d_backward(dx2, NULL, NULL, dy, x, w, &d, s);
  expect_near(what, dw2, dwr, nw, 2e-5);
  expect_near(what, dx2, dxr, nx, 2e-5);

  free(x), free(w), free(b), free(dy), free(y0), free(y), free(yr), free(s);
  free(dx), free(dxr), free(dw), free(dwr), free(db), free(dbr), free(dw2), free(dx2);
}

static const int SHAPES[][5] = {
    {1, 1, 1, 1, 1},    {2, 3, 7, 6, 4},     {3, 27, 13, 9, 10}, {2, 20, 34, 18, 13},
    {1, 70, 10, 10, 33}, {4, 16, 4, 4, 64},  {2, 9, 3, 17, 7},   {5, 40, 8, 8, 24},
    /* row groups (8 tiles side by side): whole, clipped at the right and bottom edges */
    {2, 5, 30, 33, 7},   {1, 8, 8, 64, 9},
};

Test(nn_winograd, against_reference) {
  nn_init(2);
  for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
    check(1, SHAPES[i][0], SHAPES[i][1], SHAPES[i][2], SHAPES[i][3], SHAPES[i][4]);
}

Test(nn_winograd, im2col_path_against_reference) {
  nn_init(2);
  for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
    check(0, SHAPES[i][0], SHAPES[i][1], SHAPES[i][2], SHAPES[i][3], SHAPES[i][4]);
}

Test(nn_winograd, default_mode_picks_by_size) {
  nn_init(2);
  cr_assert_eq(nn_conv2d_set_winograd(1), 1);
  nn_conv2d_dims big = nn_conv2d_make(8, 32, 32, 32, 32, 3, 1, 1);
  nn_conv2d_dims tiny = nn_conv2d_make(32, 512, 3, 3, 512, 3, 1, 1);
  cr_expect(nn_wino_applies(&big), "32x32 images should use Winograd");
  cr_expect(!nn_wino_applies(&tiny), "3x3 images with 512 channels should use im2col");
  nn_conv2d_set_winograd(0);
  cr_expect(!nn_wino_applies(&big), "mode 0 never uses Winograd");
  nn_conv2d_set_winograd(2);
  cr_expect(nn_wino_applies(&tiny), "mode 2 uses Winograd on every 3x3 stride-1 shape");
  nn_conv2d_set_winograd(1);
}

Test(nn_winograd, one_thread) {
  nn_init(1);
  check(1, 3, 27, 13, 9, 10);
  check(1, 2, 20, 34, 18, 13);
}

/* ---------------------------------------------------------------------------------------------
 * conv1d, Winograd F(4, K) for K = 3 and 5 */

static void check1d(int wino, int B, int Cin, int T, int Cout, int K, double tol) {
  cr_assert_eq(nn_conv1d_set_winograd(wino ? 2 : 0), wino ? 2 : 0);
  nn_conv1d_dims d = nn_conv1d_make(B, Cin, T, Cout, K, 1, K / 2);
  size_t nx = (size_t)B * Cin * T, ny = (size_t)B * Cout * d.To, nw = (size_t)Cout * Cin * K;
  float *x = rnd(nx, 11), *w = rnd(nw, 12), *b = rnd(Cout, 13), *dy = rnd(ny, 14);
  float *y = malloc(ny * sizeof(float)), *yr = malloc(ny * sizeof(float)), *y0 = rnd(ny, 15);
  float *s = rnd(nn_conv1d_scratch(&d), 16);
  char what[128];
  snprintf(what, sizeof what, "conv1d %s B=%d Cin=%d T=%d Cout=%d K=%d", wino ? "winograd" : "im2col",
           B, Cin, T, Cout, K);
  nn_conv1d_forward(y, x, w, b, &d, s);
  nn_conv1d_forward_ref(yr, x, w, b, &d);
  expect_near(what, y, yr, ny, tol);
  memcpy(y, y0, ny * sizeof(float));
  nn_conv1d_forward_acc(y, x, w, b, &d, s);
  for (size_t i = 0; i < ny; i++) yr[i] += y0[i];
  expect_near(what, y, yr, ny, tol);
  /* rnd is deterministic: the same seed gives the reference path the same starting gradients */
  float *dx = rnd(nx, 17), *dxr = rnd(nx, 17), *dw = rnd(nw, 18), *dwr = rnd(nw, 18);
  float *db = rnd(Cout, 19), *dbr = rnd(Cout, 19);
  nn_conv1d_backward(dx, dw, db, dy, x, w, &d, s);
  nn_conv1d_backward_ref(dxr, dwr, dbr, dy, x, w, &d);
  expect_near(what, dx, dxr, nx, tol);
  expect_near(what, dw, dwr, nw, tol);
  expect_near(what, db, dbr, Cout, tol);
  free(x), free(w), free(b), free(dy), free(y), free(yr), free(y0), free(s);
  free(dx), free(dxr), free(dw), free(dwr), free(db), free(dbr);
}

static const int SHAPES1D[][5] = {
    {3, 5, 16, 7, 5}, {2, 9, 4, 11, 5}, {4, 3, 8, 6, 3}, {1, 2, 13, 3, 5}, {2, 64, 9, 70, 5},
    {5, 33, 1, 17, 5}, {2, 16, 6, 8, 3},
};

Test(nn_winograd, conv1d_against_reference) {
  nn_init(2);
  for (size_t i = 0; i < sizeof SHAPES1D / sizeof SHAPES1D[0]; i++) {
    const int *v = SHAPES1D[i];
    check1d(1, v[0], v[1], v[2], v[3], v[4], 2e-5);
    check1d(0, v[0], v[1], v[2], v[3], v[4], 2e-5);
  }
}

/* frozen weights: the kept transform gives the same output as a fresh one, and an optimizer
 * step (which thaws) or an explicit thaw makes the next call see the new weights */
Test(nn_winograd, frozen_weights_cache) {
  cr_assert_eq(nn_conv2d_set_winograd(2), 2, "Winograd unavailable");
  nn_params ps;
  nn_params_init(&ps);
  size_t ow = nn_params_add4(&ps, "conv.weight", 12, 10, 3, 3);
  char err[512];
  cr_assert_eq(nn_params_alloc_train(&ps, 0, err), 0, "%s", err);
  nn_conv2d_dims d = nn_conv2d_make(2, 10, 9, 11, 12, 3, 1, 1);
  size_t nx = (size_t)2 * 10 * 9 * 11, ny = (size_t)2 * 12 * 9 * 11, nw = 12 * 10 * 9;
  float *w = ps.data + ow, *x = rnd(nx, 11), *src = rnd(nw, 12);
  float *y = malloc(ny * sizeof(float)), *yf = malloc(ny * sizeof(float)), *yr = malloc(ny * sizeof(float));
  float *s = rnd(nn_conv2d_scratch(&d), 13);
  memcpy(w, src, nw * sizeof(float));
  nn_conv2d_forward(y, x, w, NULL, &d, s);
  cr_assert_eq(nn_weights_freeze(ps.data, ps.total), 0);
  for (int k = 0; k < 2; k++) {  // first call builds, second reuses
    nn_conv2d_forward(yf, x, w, NULL, &d, s);
    cr_expect_eq(memcmp(y, yf, ny * sizeof(float)), 0, "frozen call %d differs from unfrozen", k);
  }
  /* AdamW moves the weights and thaws them */
  for (size_t i = 0; i < ps.total; i++) ps.grad[i] = 0.5f - (float)(i % 7) / 7.f;
  nn_adamw_cfg cfg = nn_adamw_defaults();
  nn_adamw_step(&ps, &cfg, 0.1f, 1);
  nn_conv2d_forward(yf, x, w, NULL, &d, s);
  nn_conv2d_forward_ref(yr, x, w, NULL, &d);
  expect_near("after AdamW on frozen weights", yf, yr, ny, 2e-5);
  /* freeze again, then thaw explicitly before writing */
  cr_assert_eq(nn_weights_freeze(ps.data, ps.total), 0);
  nn_conv2d_forward(yf, x, w, NULL, &d, s);
  nn_weights_thaw(w, 1);
  memcpy(w, src, nw * sizeof(float));
  nn_conv2d_forward(yf, x, w, NULL, &d, s);
  cr_expect_eq(memcmp(y, yf, ny * sizeof(float)), 0, "after thaw and rewrite");
  nn_params_free(&ps);
  nn_conv2d_set_winograd(1);
  free(x), free(src), free(y), free(yf), free(yr), free(s);
}

/* conv1d with frozen weights takes Winograd even where the default rule would not (a small
 * batch): same result as the im2col path within the Winograd tolerance, and a thaw goes back */
Test(nn_winograd, frozen_weights_conv1d) {
  cr_assert_eq(nn_conv1d_set_winograd(1), 1);
  for (int K = 3; K <= 5; K += 2) {
    nn_conv1d_dims d = nn_conv1d_make(2, 7, 13, 9, K, 1, K / 2);
    size_t nx = (size_t)2 * 7 * 13, ny = (size_t)2 * 9 * d.To, nw = (size_t)9 * 7 * K;
    float *x = rnd(nx, 21), *w = rnd(nw, 22), *b = rnd(9, 23), *s = rnd(nn_conv1d_scratch(&d), 24);
    float *y = malloc(ny * sizeof(float)), *yf = malloc(ny * sizeof(float)), *yr = malloc(ny * sizeof(float));
    nn_conv1d_forward(y, x, w, b, &d, s);
    nn_conv1d_forward_ref(yr, x, w, b, &d);
    expect_near("conv1d unfrozen", y, yr, ny, 2e-5);
    cr_assert_eq(nn_weights_freeze(w, nw), 0);
    nn_conv1d_forward(yf, x, w, b, &d, s);
    expect_near("conv1d frozen", yf, yr, ny, 2e-5);
    cr_expect_neq(memcmp(y, yf, ny * sizeof(float)), 0, "K=%d: frozen weights did not take Winograd", K);
    nn_weights_thaw(w, nw);
    for (size_t i = 0; i < nw; i++) w[i] *= -0.5f;
    nn_conv1d_forward(yf, x, w, b, &d, s);
    nn_conv1d_forward_ref(yr, x, w, b, &d);
    expect_near("conv1d thawed and rewritten", yf, yr, ny, 2e-5);
    free(x), free(w), free(b), free(s), free(y), free(yf), free(yr);
  }
}

/* scratch sized under one mode stays large enough after a switch to another (the hazard of a
 * buffer sized before the mode changed): the shapes that overran it, with a canary after the
 * buffer and the result against the reference */
Test(nn_winograd, scratch_sized_before_a_mode_change) {
  const float canary = 12345.f;
  for (int from = 0; from <= 2; from++)
    for (int to = 0; to <= 2; to++) {
      nn_conv2d_set_winograd(from);
      nn_conv2d_dims d = nn_conv2d_make(4, 64, 8, 8, 64, 3, 1, 1);
      size_t ns = nn_conv2d_scratch(&d);
      nn_conv2d_set_winograd(to);
      float *scratch = malloc((ns + 64) * sizeof(float));
      for (int i = 0; i < 64; i++) scratch[ns + i] = canary;
      size_t nin = (size_t)4 * 64 * 64, nw = (size_t)64 * 64 * 9;
      float *in = rnd(nin, 1), *w = rnd(nw, 2), *out = malloc(nin * 4), *ref = malloc(nin * 4);
      float *din = calloc(nin, 4), *dw = calloc(nw, 4);
      nn_conv2d_forward(out, in, w, NULL, &d, scratch);
      nn_conv2d_backward(din, dw, NULL, out, in, w, &d, scratch);
      nn_conv2d_forward_ref(ref, in, w, NULL, &d);
      expect_near("conv2d after a mode change", out, ref, nin, 1e-4);
      for (int i = 0; i < 64; i++) cr_expect_eq(scratch[ns + i], canary, "conv2d scratch overrun (%d -> %d)", from, to);
      free(scratch), free(in), free(w), free(out), free(ref), free(din), free(dw);

      nn_conv1d_set_winograd(from);
      nn_conv1d_dims e = nn_conv1d_make(1, 64, 8, 64, 5, 1, 2);
      ns = nn_conv1d_scratch(&e);
      nn_conv1d_set_winograd(to);
      scratch = malloc((ns + 64) * sizeof(float));
      for (int i = 0; i < 64; i++) scratch[ns + i] = canary;
      size_t n1 = (size_t)64 * 8, w1 = (size_t)64 * 64 * 5;
      in = rnd(n1, 3), w = rnd(w1, 4), out = malloc(n1 * 4), ref = malloc(n1 * 4);
      din = calloc(n1, 4), dw = calloc(w1, 4);
      nn_conv1d_forward(out, in, w, NULL, &e, scratch);
      nn_conv1d_backward(din, dw, NULL, out, in, w, &e, scratch);
      nn_conv1d_forward_ref(ref, in, w, NULL, &e);
      expect_near("conv1d after a mode change", out, ref, n1, 1e-4);
      for (int i = 0; i < 64; i++) cr_expect_eq(scratch[ns + i], canary, "conv1d scratch overrun (%d -> %d)", from, to);
      free(scratch), free(in), free(w), free(out), free(ref), free(din), free(dw);
    }
  nn_conv2d_set_winograd(1);
  nn_conv1d_set_winograd(1);
}
