/* tests of src/nn ops: each fast path and naive reference against PyTorch fixtures
 * (tools/nn_fixtures.py -> tests/fixtures/nn/ops.safetensors), then finite differences of
 * L = sum(y * dy) against every backward. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"
#include "nn/nn_train.h"

#define FIX "tests/fixtures/nn/ops.safetensors"

static nn_safetensors g_st;

static void open_fixtures(void) {
  char err[SP_ERRLEN];
  nn_init(2);
  cr_assert_eq(nn_st_open(&g_st, FIX, err), 0, "%s", err);
}
static void close_fixtures(void) { nn_st_close(&g_st); }

/* fixture tensor by "case.name"; asserts presence and element count */
static const float *fx(const char *c, const char *name, size_t want) {
  char key[256];
  snprintf(key, sizeof key, "%s.%s", c, name);
  size_t n = 0;
  const float *p = nn_st_f32(&g_st, key, &n);
  cr_assert(p != NULL, "fixture tensor %s missing", key);
  cr_assert_eq(n, want, "fixture %s has %zu elements, test expects %zu", key, n, want);
  return p;
}

static float *dup(const float *p, size_t n) {
  float *q = malloc(n * sizeof(float));
  memcpy(q, p, n * sizeof(float));
  return q;
}
static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* max abs and max relative error; fails with both printed */
static void expect_close(const char *what, const float *got, const float *want, size_t n,
                         float atol, float rtol) {
  double maxa = 0, maxr = 0;
  size_t worst = 0;
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    double a = fabs((double)got[i] - want[i]), r = a / (fabs(want[i]) + 1e-12);
    if (!(a <= atol + rtol * fabs(want[i]))) {
      if (!bad || a > maxa) worst = i;
      bad = 1;
    }
    if (a > maxa || isnan(a)) maxa = a;
    if (a > atol && r > maxr) maxr = r;
  }
  cr_expect(!bad, "%s: max abs err %.3g, max rel err %.3g (worst at %zu: got %.7g want %.7g)", what,
            maxa, maxr, worst, got[worst], want[worst]);
}

/* ---------------------------------------------------------------------------------------------
 * finite differences: loss(ctx) = sum(y * dy) in double after a forward; compare a sample of
 * elements of buf against the analytic gradient grad */
typedef double (*loss_fn)(void *ctx);

static double dotd(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

static void fd_check(const char *what, loss_fn f, void *ctx, float *buf, const float *grad,
                     size_t n, float eps, double tol) {
  int samples = n < 24 ? (int)n : 24, bad = 0;
  double worst = 0;
  size_t wi = 0;
  double wnum = 0;
  for (int k = 0; k < samples; k++) {
    size_t i = n < 24 ? (size_t)k : ((size_t)k * 7919 + 13) % n;
    float v = buf[i];
    buf[i] = v + eps;
    double lp = f(ctx);
    buf[i] = v - eps;
    double lm = f(ctx);
    buf[i] = v;
    double num = (lp - lm) / (2.0 * eps), e = fabs(num - grad[i]) / (1.0 + fabs(grad[i]));
    if (e > worst) {
      worst = e;
      wi = i;
      wnum = num;
    }
    if (e > tol) bad = 1;
  }
  cr_expect(!bad, "%s: finite-difference mismatch %.3g at %zu (numeric %.6g, analytic %.6g)", what,
            worst, wi, wnum, grad[wi]);
}

/* ---------------------------------------------------------------------------------------------
 * conv2d */

typedef struct {
  nn_conv2d_dims d;
  float *x, *w, *b, *y, *scratch;
  const float *dy;
  size_t ny;
} conv2d_ctx;

static double conv2d_loss(void *p) {
  conv2d_ctx *c = p;
  nn_conv2d_forward(c->y, c->x, c->w, c->b, &c->d, c->scratch);
  return dotd(c->y, c->dy, c->ny);
}

static void run_conv2d(const char *nm, int B, int Ci, int H, int W, int Co, int K, int s, int pd) {
  conv2d_ctx c = {.d = nn_conv2d_make(B, Ci, H, W, Co, K, s, pd)};
  size_t nx = (size_t)B * Ci * H * W, nw = (size_t)Co * Ci * K * K;
  c.ny = (size_t)B * Co * c.d.Ho * c.d.Wo;
  c.x = dup(fx(nm, "x", nx), nx);
  c.w = dup(fx(nm, "w", nw), nw);
  c.b = dup(fx(nm, "b", Co), Co);
  c.dy = fx(nm, "dy", c.ny);
  c.y = zeros(c.ny);
  c.scratch = zeros(nn_conv2d_scratch(&c.d));
  char what[128];
  nn_conv2d_forward(c.y, c.x, c.w, c.b, &c.d, c.scratch);
  snprintf(what, sizeof what, "%s forward", nm);
  expect_close(what, c.y, fx(nm, "y", c.ny), c.ny, 1e-5f, 1e-4f);
  nn_conv2d_forward_ref(c.y, c.x, c.w, c.b, &c.d);
  snprintf(what, sizeof what, "%s forward ref", nm);
  expect_close(what, c.y, fx(nm, "y", c.ny), c.ny, 1e-5f, 1e-4f);
  for (int ref = 0; ref < 2; ref++) {
    float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(Co);
    if (ref) nn_conv2d_backward_ref(dx, dw, db, c.dy, c.x, c.w, &c.d);
    else nn_conv2d_backward(dx, dw, db, c.dy, c.x, c.w, &c.d, c.scratch);
    snprintf(what, sizeof what, "%s%s dx", nm, ref ? " ref" : "");
    expect_close(what, dx, fx(nm, "dx", nx), nx, 1e-4f, 1e-4f);
    snprintf(what, sizeof what, "%s%s dw", nm, ref ? " ref" : "");
    expect_close(what, dw, fx(nm, "dw", nw), nw, 1e-4f, 1e-4f);
    snprintf(what, sizeof what, "%s%s db", nm, ref ? " ref" : "");
    expect_close(what, db, fx(nm, "db", Co), Co, 1e-4f, 1e-4f);
    if (!ref) {
      /* backward accumulates: a second call doubles the gradients */
      nn_conv2d_backward(dx, dw, db, c.dy, c.x, c.w, &c.d, c.scratch);
      float *w2 = dup(fx(nm, "dw", nw), nw);
      for (size_t i = 0; i < nw; i++) w2[i] *= 2.f;
      snprintf(what, sizeof what, "%s dw accumulates", nm);
      expect_close(what, dw, w2, nw, 2e-4f, 1e-4f);
      free(w2);
      /* finite differences against the (now matched) analytic gradients */
      snprintf(what, sizeof what, "%s fd x", nm);
      fd_check(what, conv2d_loss, &c, c.x, fx(nm, "dx", nx), nx, 1e-2f, 2e-3);
      snprintf(what, sizeof what, "%s fd w", nm);
      fd_check(what, conv2d_loss, &c, c.w, fx(nm, "dw", nw), nw, 1e-2f, 2e-3);
      snprintf(what, sizeof what, "%s fd b", nm);
      fd_check(what, conv2d_loss, &c, c.b, fx(nm, "db", Co), Co, 1e-2f, 2e-3);
    }
    free(dx);
    free(dw);
    free(db);
  }
  free(c.x);
  free(c.w);
  free(c.b);
  free(c.y);
  free(c.scratch);
}

TestSuite(nn_ops, .init = open_fixtures, .fini = close_fixtures);

Test(nn_ops, conv2d) {
  run_conv2d("conv2d_a", 2, 3, 7, 6, 4, 3, 1, 1);
  run_conv2d("conv2d_s2", 2, 3, 8, 8, 5, 3, 2, 1);
  run_conv2d("conv2d_1x1", 2, 6, 5, 5, 3, 1, 1, 0);
  run_conv2d("conv2d_k7", 2, 2, 12, 12, 3, 7, 2, 3);
}

Test(nn_ops, conv2d_single_thread_and_batch1) {
  /* the B < threads path (sequential samples, split GEMM) must agree with the reference */
  nn_conv2d_dims d = nn_conv2d_make(1, 5, 9, 11, 7, 3, 1, 1);
  size_t nx = 5 * 9 * 11, nw = 7 * 5 * 9, ny = 7 * 9 * 11;
  float *x = zeros(nx), *w = zeros(nw), *b = zeros(7), *y = zeros(ny), *y2 = zeros(ny);
  for (size_t i = 0; i < nx; i++) x[i] = sinf(0.37f * i);
  for (size_t i = 0; i < nw; i++) w[i] = cosf(0.11f * i);
  for (int i = 0; i < 7; i++) b[i] = 0.1f * i;
  float *s = zeros(nn_conv2d_scratch(&d));
  nn_conv2d_forward(y, x, w, b, &d, s);
  nn_conv2d_forward_ref(y2, x, w, b, &d);
  expect_close("conv2d B=1", y, y2, ny, 1e-4f, 1e-4f);
  float *dx = zeros(nx), *dx2 = zeros(nx), *dw = zeros(nw), *dw2 = zeros(nw), *db = zeros(7), *db2 = zeros(7);
  nn_conv2d_backward(dx, dw, db, y2, x, w, &d, s);
  nn_conv2d_backward_ref(dx2, dw2, db2, y2, x, w, &d);
  expect_close("conv2d B=1 dx", dx, dx2, nx, 1e-3f, 1e-4f);
  expect_close("conv2d B=1 dw", dw, dw2, nw, 1e-3f, 1e-4f);
  expect_close("conv2d B=1 db", db, db2, 7, 1e-3f, 1e-4f);
  free(x); free(w); free(b); free(y); free(y2); free(s); free(dx); free(dx2); free(dw); free(dw2); free(db); free(db2);
}

/* one shape through the default dispatch against the double reference: forward, and backward
 * accumulated onto non-zero gradients (every path adds, none overwrites) */
static void conv2d_vs_ref(int B, int Ci, int H, int W, int Co, int K, int s, int pd) {
  nn_conv2d_dims d = nn_conv2d_make(B, Ci, H, W, Co, K, s, pd);
  size_t nx = (size_t)B * Ci * H * W, nw = (size_t)Co * Ci * K * K, ny = (size_t)B * Co * d.Ho * d.Wo;
  float *x = zeros(nx), *w = zeros(nw), *b = zeros(Co), *y = zeros(ny), *y2 = zeros(ny), *dy = zeros(ny);
  for (size_t i = 0; i < nx; i++) x[i] = sinf(0.37f * i + 0.1f);
  for (size_t i = 0; i < nw; i++) w[i] = cosf(0.11f * i) / K;
  for (int i = 0; i < Co; i++) b[i] = 0.1f * i;
  for (size_t i = 0; i < ny; i++) dy[i] = cosf(0.23f * i);
  float *sc = zeros(nn_conv2d_scratch(&d));
  char what[96];
  nn_conv2d_forward(y, x, w, b, &d, sc);
  nn_conv2d_forward_ref(y2, x, w, b, &d);
  snprintf(what, sizeof what, "conv2d B%d C%d %dx%d ->%d k%d s%d p%d fwd", B, Ci, H, W, Co, K, s, pd);
  expect_close(what, y, y2, ny, 1e-4f, 1e-4f);
  float *g[2][3];
  for (int r = 0; r < 2; r++) {
    g[r][0] = zeros(nx), g[r][1] = zeros(nw), g[r][2] = zeros(Co);
    for (size_t i = 0; i < nx; i++) g[r][0][i] = 0.5f;
    for (size_t i = 0; i < nw; i++) g[r][1][i] = -0.25f;
  }
  nn_conv2d_backward(g[0][0], g[0][1], g[0][2], dy, x, w, &d, sc);
  nn_conv2d_backward_ref(g[1][0], g[1][1], g[1][2], dy, x, w, &d);
  const char *nm[3] = {"dx", "dw", "db"};
  size_t n[3] = {nx, nw, (size_t)Co};
  for (int k = 0; k < 3; k++) {
    snprintf(what, sizeof what, "conv2d B%d C%d %dx%d ->%d k%d s%d p%d %s", B, Ci, H, W, Co, K, s, pd, nm[k]);
    expect_close(what, g[0][k], g[1][k], n[k], 1e-3f, 1e-4f);
    free(g[0][k]);
    free(g[1][k]);
  }
  free(x); free(w); free(b); free(y); free(y2); free(dy); free(sc);
}

Test(nn_ops, conv2d_paths) {
  /* per-sample path, stride 2 on split columns: even and odd widths, the stem's 7x7 */
  conv2d_vs_ref(3, 3, 18, 18, 5, 3, 2, 1);
  conv2d_vs_ref(3, 2, 19, 21, 4, 7, 2, 3);
  conv2d_vs_ref(1, 2, 17, 20, 3, 5, 2, 1);
  /* whole-batch path through the tap table: 3x3 images, stride 2, 1x1 stride 2 */
  conv2d_vs_ref(4, 6, 3, 3, 5, 3, 1, 1);
  conv2d_vs_ref(3, 4, 11, 9, 6, 3, 2, 1);
  conv2d_vs_ref(3, 4, 9, 9, 6, 1, 2, 0);
  /* whole-batch path with a table too big for the stack: 9x9 kernel, 8x8 output */
  conv2d_vs_ref(2, 2, 8, 8, 3, 9, 1, 4);
}

/* ---------------------------------------------------------------------------------------------
 * conv1d and transposed conv1d */

typedef struct {
  nn_conv1d_dims d;
  int transposed;
  float *x, *w, *b, *y, *scratch;
  const float *dy;
  size_t ny;
} conv1d_ctx;

static double conv1d_loss(void *p) {
  conv1d_ctx *c = p;
  if (c->transposed) nn_convt1d_forward(c->y, c->x, c->w, c->b, &c->d, c->scratch);
  else nn_conv1d_forward(c->y, c->x, c->w, c->b, &c->d, c->scratch);
  return dotd(c->y, c->dy, c->ny);
}

static void run_conv1d(const char *nm, int tr, int B, int Ci, int L, int Co, int K, int s, int pd) {
  conv1d_ctx c = {.transposed = tr};
  c.d = tr ? nn_convt1d_make(B, Ci, L, Co, K, s, pd) : nn_conv1d_make(B, Ci, L, Co, K, s, pd);
  size_t nx = (size_t)B * Ci * L, nw = (size_t)Co * Ci * K;
  c.ny = (size_t)B * Co * c.d.To;
  c.x = dup(fx(nm, "x", nx), nx);
  c.w = dup(fx(nm, "w", nw), nw);
  c.b = dup(fx(nm, "b", Co), Co);
  c.dy = fx(nm, "dy", c.ny);
  c.y = zeros(c.ny);
  c.scratch = zeros(tr ? nn_convt1d_scratch(&c.d) : nn_conv1d_scratch(&c.d));
  char what[128];
  for (int ref = 0; ref < 2; ref++) {
    if (tr) ref ? nn_convt1d_forward_ref(c.y, c.x, c.w, c.b, &c.d) : nn_convt1d_forward(c.y, c.x, c.w, c.b, &c.d, c.scratch);
    else ref ? nn_conv1d_forward_ref(c.y, c.x, c.w, c.b, &c.d) : nn_conv1d_forward(c.y, c.x, c.w, c.b, &c.d, c.scratch);
    snprintf(what, sizeof what, "%s%s forward", nm, ref ? " ref" : "");
    expect_close(what, c.y, fx(nm, "y", c.ny), c.ny, 1e-5f, 1e-4f);
    float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(Co);
    if (tr) ref ? nn_convt1d_backward_ref(dx, dw, db, c.dy, c.x, c.w, &c.d) : nn_convt1d_backward(dx, dw, db, c.dy, c.x, c.w, &c.d, c.scratch);
    else ref ? nn_conv1d_backward_ref(dx, dw, db, c.dy, c.x, c.w, &c.d) : nn_conv1d_backward(dx, dw, db, c.dy, c.x, c.w, &c.d, c.scratch);
    snprintf(what, sizeof what, "%s%s dx", nm, ref ? " ref" : "");
    expect_close(what, dx, fx(nm, "dx", nx), nx, 1e-4f, 1e-4f);
    snprintf(what, sizeof what, "%s%s dw", nm, ref ? " ref" : "");
    expect_close(what, dw, fx(nm, "dw", nw), nw, 1e-4f, 1e-4f);
    snprintf(what, sizeof what, "%s%s db", nm, ref ? " ref" : "");
    expect_close(what, db, fx(nm, "db", Co), Co, 1e-4f, 1e-4f);
    if (!ref) {
      snprintf(what, sizeof what, "%s fd x", nm);
      fd_check(what, conv1d_loss, &c, c.x, dx, nx, 1e-2f, 2e-3);
      snprintf(what, sizeof what, "%s fd w", nm);
      fd_check(what, conv1d_loss, &c, c.w, dw, nw, 1e-2f, 2e-3);
      snprintf(what, sizeof what, "%s fd b", nm);
      fd_check(what, conv1d_loss, &c, c.b, db, Co, 1e-2f, 2e-3);
    }
    free(dx); free(dw); free(db);
  }
  free(c.x); free(c.w); free(c.b); free(c.y); free(c.scratch);
}

Test(nn_ops, conv1d) {
  run_conv1d("conv1d_k5", 0, 3, 4, 8, 6, 5, 1, 2);
  run_conv1d("conv1d_s2", 0, 2, 5, 8, 5, 3, 2, 1);
  /* transposed: Cin 5 -> Cout 3, weight (Cin, Cout, K) = (5, 3, 4) has the same count */
  run_conv1d("convt1d", 1, 2, 5, 4, 3, 4, 2, 1);
}

/* ---------------------------------------------------------------------------------------------
 * temporal conv (B, C, T, H, W) = (2, 3, 4, 2, 3), 5 out channels, kernel 3 */

typedef struct {
  float *x, *w, *b, *y, *s;
  const float *dy;
} tconv_ctx;

static double tconv_loss(void *p) {
  tconv_ctx *c = p;
  nn_tconv_forward(c->y, c->x, c->w, c->b, 2, 3, 4, 6, 5, 3, c->s);
  return dotd(c->y, c->dy, 2 * 5 * 4 * 6);
}

Test(nn_ops, temporal_conv_and_frames) {
  size_t nx = 2 * 3 * 4 * 6, ny = 2 * 5 * 4 * 6, nw = 5 * 3 * 3;
  tconv_ctx c = {dup(fx("tconv", "x", nx), nx), dup(fx("tconv", "w", nw), nw), dup(fx("tconv", "b", 5), 5),
                 zeros(ny), zeros(nn_tconv_scratch(3, 5, 3)), fx("tconv", "dy", ny)};
  nn_tconv_forward(c.y, c.x, c.w, c.b, 2, 3, 4, 6, 5, 3, c.s);
  expect_close("tconv forward", c.y, fx("tconv", "y", ny), ny, 1e-5f, 1e-4f);
  float *dx = zeros(nx), *dw = zeros(nw), *db = zeros(5);
  nn_tconv_backward(dx, dw, db, c.dy, c.x, c.w, 2, 3, 4, 6, 5, 3, c.s);
  expect_close("tconv dx", dx, fx("tconv", "dx", nx), nx, 1e-4f, 1e-4f);
  expect_close("tconv dw", dw, fx("tconv", "dw", nw), nw, 1e-4f, 1e-4f);
  expect_close("tconv db", db, fx("tconv", "db", 5), 5, 1e-4f, 1e-4f);
  fd_check("tconv fd x", tconv_loss, &c, c.x, dx, nx, 1e-2f, 2e-3);
  fd_check("tconv fd w", tconv_loss, &c, c.w, dw, nw, 1e-2f, 2e-3);
  /* frames <-> batch permutes round-trip, and their accumulating forms are adjoint */
  float *fb = zeros(nx), *back = zeros(nx);
  nn_frames_to_batch(fb, c.x, 2, 3, 4, 6);
  nn_batch_to_frames(back, fb, 2, 3, 4, 6);
  expect_close("frames round trip", back, c.x, nx, 0, 0);
  cr_expect_eq(fb[(size_t)(1 * 4 + 2) * 3 * 6 + 1 * 6 + 5], c.x[((size_t)(1 * 3 + 1) * 4 + 2) * 6 + 5]);
  memset(back, 0, nx * sizeof(float));
  nn_batch_to_frames_acc(back, fb, 2, 3, 4, 6);
  expect_close("frames acc", back, c.x, nx, 0, 0);
  memset(fb, 0, nx * sizeof(float));
  nn_frames_to_batch_acc(fb, back, 2, 3, 4, 6);
  nn_batch_to_frames(back, fb, 2, 3, 4, 6);
  expect_close("frames acc 2", back, c.x, nx, 0, 0);
  free(c.x); free(c.w); free(c.b); free(c.y); free(c.s); free(dx); free(dw); free(db); free(fb); free(back);
}

/* ---------------------------------------------------------------------------------------------
 * linear */

typedef struct {
  float *x, *w, *b, *y;
  const float *dy;
} lin_ctx;
static double lin_loss(void *p) {
  lin_ctx *c = p;
  nn_linear_forward(c->y, c->x, c->w, c->b, 5, 7, 4);
  return dotd(c->y, c->dy, 20);
}

Test(nn_ops, linear) {
  lin_ctx c = {dup(fx("linear", "x", 35), 35), dup(fx("linear", "w", 28), 28), dup(fx("linear", "b", 4), 4), zeros(20),
               fx("linear", "dy", 20)};
  for (int ref = 0; ref < 2; ref++) {
    if (ref) nn_linear_forward_ref(c.y, c.x, c.w, c.b, 5, 7, 4);
    else nn_linear_forward(c.y, c.x, c.w, c.b, 5, 7, 4);
    expect_close(ref ? "linear ref y" : "linear y", c.y, fx("linear", "y", 20), 20, 1e-5f, 1e-4f);
    float *dx = zeros(35), *dw = zeros(28), *db = zeros(4);
    if (ref) nn_linear_backward_ref(dx, dw, db, c.dy, c.x, c.w, 5, 7, 4);
    else nn_linear_backward(dx, dw, db, c.dy, c.x, c.w, 5, 7, 4);
    expect_close("linear dx", dx, fx("linear", "dx", 35), 35, 1e-5f, 1e-4f);
    expect_close("linear dw", dw, fx("linear", "dw", 28), 28, 1e-5f, 1e-4f);
    expect_close("linear db", db, fx("linear", "db", 4), 4, 1e-5f, 1e-4f);
    if (!ref) {
      fd_check("linear fd x", lin_loss, &c, c.x, dx, 35, 1e-2f, 2e-3);
      fd_check("linear fd w", lin_loss, &c, c.w, dw, 28, 1e-2f, 2e-3);
      fd_check("linear fd b", lin_loss, &c, c.b, db, 4, 1e-2f, 2e-3);
    }
    free(dx); free(dw); free(db);
  }
  free(c.x); free(c.w); free(c.b); free(c.y);
}

/* ---------------------------------------------------------------------------------------------
 * group norm (+ SiLU / Mish), layer norm, batch norm (+ ReLU) */

typedef struct {
  int kind;  // 0 gn, 1 ln, 2 bn
  nn_act act;
  float *x, *g, *b, *y, *mean, *rstd;
  const float *dy;
  size_t n;
} norm_ctx;

static double norm_loss(void *p) {
  norm_ctx *c = p;
  if (c->kind == 0) nn_groupnorm_forward(c->y, c->mean, c->rstd, c->x, c->g, c->b, 2, 8, 12, 4, 1e-5f, c->act);
  else if (c->kind == 1) nn_layernorm_forward(c->y, c->mean, c->rstd, c->x, c->g, c->b, 4, 6, 1e-5f);
  else nn_batchnorm_forward(c->y, c->mean, c->rstd, NULL, NULL, c->x, c->g, c->b, 3, 4, 9, 1e-5f, 0.1f, c->act);
  return dotd(c->y, c->dy, c->n);
}

static void run_norm(const char *nm, int kind, nn_act act, size_t n, int C) {
  norm_ctx c = {kind, act, dup(fx(nm, "x", n), n), dup(fx(nm, "g", C), C), dup(fx(nm, "b", C), C), zeros(n),
                zeros(64), zeros(64), fx(nm, "dy", n), n};
  char what[128];
  norm_loss(&c);
  snprintf(what, sizeof what, "%s forward", nm);
  expect_close(what, c.y, fx(nm, "y", n), n, 1e-5f, 1e-4f);
  if (kind == 0) {
    float *y2 = zeros(n);
    nn_groupnorm_forward_ref(y2, c.x, c.g, c.b, 2, 8, 12, 4, 1e-5f, act);
    snprintf(what, sizeof what, "%s forward ref", nm);
    expect_close(what, y2, fx(nm, "y", n), n, 1e-5f, 1e-4f);
    free(y2);
  }
  float *dx = zeros(n), *dg = zeros(C), *db = zeros(C);
  if (kind == 0) nn_groupnorm_backward(dx, dg, db, c.dy, c.x, c.mean, c.rstd, c.g, c.b, 2, 8, 12, 4, act);
  else if (kind == 1) nn_layernorm_backward(dx, dg, db, c.dy, c.x, c.mean, c.rstd, c.g, 4, 6);
  else nn_batchnorm_backward(dx, dg, db, c.dy, c.x, c.mean, c.rstd, c.g, c.b, 3, 4, 9, act);
  snprintf(what, sizeof what, "%s dx", nm);
  expect_close(what, dx, fx(nm, "dx", n), n, 1e-4f, 1e-3f);
  snprintf(what, sizeof what, "%s dgamma", nm);
  expect_close(what, dg, fx(nm, "dg", C), C, 1e-4f, 1e-4f);
  snprintf(what, sizeof what, "%s dbeta", nm);
  expect_close(what, db, fx(nm, "db", C), C, 1e-4f, 1e-4f);
  snprintf(what, sizeof what, "%s fd x", nm);
  fd_check(what, norm_loss, &c, c.x, dx, n, 1e-2f, 5e-3);
  snprintf(what, sizeof what, "%s fd gamma", nm);
  fd_check(what, norm_loss, &c, c.g, dg, C, 1e-2f, 5e-3);
  snprintf(what, sizeof what, "%s fd beta", nm);
  fd_check(what, norm_loss, &c, c.b, db, C, 1e-2f, 5e-3);
  free(dx); free(dg); free(db);
  free(c.x); free(c.g); free(c.b); free(c.y); free(c.mean); free(c.rstd);
}

Test(nn_ops, norms) {
  run_norm("gn", 0, NN_ACT_NONE, 2 * 8 * 12, 8);
  run_norm("gn_silu", 0, NN_ACT_SILU, 2 * 8 * 12, 8);
  run_norm("gn_mish", 0, NN_ACT_MISH, 2 * 8 * 12, 8);
  run_norm("ln", 1, NN_ACT_NONE, 24, 6);
  run_norm("bn_relu", 2, NN_ACT_RELU, 3 * 4 * 9, 4);
}

/* ---------------------------------------------------------------------------------------------
 * activations */

typedef struct {
  nn_act act;
  float *x, *y;
  const float *dy;
} act_ctx;
static double act_loss(void *p) {
  act_ctx *c = p;
  nn_act_forward(c->y, c->x, 50, c->act);
  return dotd(c->y, c->dy, 50);
}

Test(nn_ops, activations) {
  const char *names[4] = {"silu", "mish", "gelu", "relu"};
  nn_act acts[4] = {NN_ACT_SILU, NN_ACT_MISH, NN_ACT_GELU, NN_ACT_RELU};
  for (int k = 0; k < 4; k++) {
    act_ctx c = {acts[k], dup(fx(names[k], "x", 50), 50), zeros(50), fx(names[k], "dy", 50)};
    act_loss(&c);
    expect_close(names[k], c.y, fx(names[k], "y", 50), 50, 1e-6f, 1e-5f);
    float *dx = zeros(50);
    nn_act_backward(dx, c.dy, c.x, 50, acts[k]);
    expect_close(names[k], dx, fx(names[k], "dx", 50), 50, 1e-5f, 1e-4f);
    fd_check(names[k], act_loss, &c, c.x, dx, 50, 1e-3f, 5e-3);
    free(dx); free(c.x); free(c.y);
  }
}

/* ---------------------------------------------------------------------------------------------
 * attention */

typedef struct {
  nn_attn_dims d;
  float *q, *k, *v, *y, *prob;
  const float *dy;
} attn_ctx;
static double attn_loss(void *p) {
  attn_ctx *c = p;
  nn_attention_forward(c->y, c->prob, c->q, c->k, c->v, &c->d);
  return dotd(c->y, c->dy, (size_t)c->d.B * c->d.nh * c->d.hd * c->d.Nq);
}

static void run_attn(const char *nm, int Nk) {
  attn_ctx c;
  c.d = (nn_attn_dims){2, 2, 4, 6, Nk, 8 * 6, (size_t)8 * Nk, (size_t)8 * Nk, 0.5f};
  size_t nq = 96, nk = (size_t)16 * Nk;
  c.q = dup(fx(nm, "q", nq), nq);
  c.k = dup(fx(nm, "k", nk), nk);
  c.v = dup(fx(nm, "v", nk), nk);
  c.y = zeros(nq);
  c.prob = zeros((size_t)4 * 6 * Nk);
  c.dy = fx(nm, "dy", nq);
  char what[128];
  attn_loss(&c);
  snprintf(what, sizeof what, "%s forward", nm);
  expect_close(what, c.y, fx(nm, "y", nq), nq, 1e-5f, 1e-4f);
  float *y2 = zeros(nq);
  nn_attention_forward_ref(y2, c.q, c.k, c.v, &c.d);
  snprintf(what, sizeof what, "%s forward ref", nm);
  expect_close(what, y2, fx(nm, "y", nq), nq, 1e-5f, 1e-4f);
  float *dq = zeros(nq), *dk = zeros(nk), *dv = zeros(nk), *s = zeros(nn_attention_scratch(&c.d));
  nn_attention_backward(dq, dk, dv, c.dy, c.prob, c.q, c.k, c.v, &c.d, s);
  snprintf(what, sizeof what, "%s dq", nm);
  expect_close(what, dq, fx(nm, "dq", nq), nq, 1e-5f, 1e-4f);
  snprintf(what, sizeof what, "%s dk", nm);
  expect_close(what, dk, fx(nm, "dk", nk), nk, 1e-5f, 1e-4f);
  snprintf(what, sizeof what, "%s dv", nm);
  expect_close(what, dv, fx(nm, "dv", nk), nk, 1e-5f, 1e-4f);
  fd_check("attn fd q", attn_loss, &c, c.q, dq, nq, 1e-2f, 3e-3);
  fd_check("attn fd k", attn_loss, &c, c.k, dk, nk, 1e-2f, 3e-3);
  fd_check("attn fd v", attn_loss, &c, c.v, dv, nk, 1e-2f, 3e-3);
  free(c.q); free(c.k); free(c.v); free(c.y); free(c.prob); free(y2); free(dq); free(dk); free(dv); free(s);
}

Test(nn_ops, attention) {
  run_attn("attn_self", 6);
  run_attn("attn_cross", 5);
}

/* ---------------------------------------------------------------------------------------------
 * embeddings */

typedef struct {
  const int32_t *ids;
  float *table, *y;
  const float *dy;
} emb_ctx;
static double emb_loss(void *p) {
  emb_ctx *c = p;
  nn_embedding_forward(c->y, c->ids, c->table, 5, 4);
  return dotd(c->y, c->dy, 20);
}

typedef struct {
  float *a;
  const float *t, *w;
} mse_ctx;
static double mse_loss(void *p) {
  mse_ctx *c = p;
  return nn_mse_forward(c->a, c->t, c->w, 3, 8);
}

Test(nn_ops, embeddings) {
  size_t n;
  const int32_t *ids = nn_st_i32(&g_st, "emb.ids", &n);
  cr_assert(ids && n == 5);
  float y[20], dt[40] = {0};
  nn_embedding_forward(y, ids, fx("emb", "table", 40), 5, 4);
  expect_close("embedding", y, fx("emb", "y", 20), 20, 0, 0);
  nn_embedding_backward(dt, fx("emb", "dy", 20), ids, 5, 4);
  expect_close("embedding grad", dt, fx("emb", "dtable", 40), 40, 1e-6f, 1e-6f);
  emb_ctx ec = {ids, dup(fx("emb", "table", 40), 40), zeros(20), fx("emb", "dy", 20)};
  fd_check("embedding fd", emb_loss, &ec, ec.table, dt, 40, 1e-2f, 2e-3);
  free(ec.table);
  free(ec.y);
  const float *t = fx("temb", "t", 5);
  float e[5 * 32];
  nn_timestep_embedding(e, t, 5, 32, 1, 1);
  expect_close("timestep emb (DP)", e, fx("temb", "dp", 160), 160, 2e-4f, 1e-4f);
  nn_timestep_embedding(e, t, 5, 32, 0, 0);
  expect_close("timestep emb (AVDC)", e, fx("temb", "avdc", 160), 160, 2e-4f, 1e-4f);
}

/* ---------------------------------------------------------------------------------------------
 * resampling, pooling, spatial softmax, FiLM, MSE */

typedef struct {
  int op;
  float *x, *y, *aux;
  int32_t *arg;
  const float *dy;
  size_t ny;
} pool_ctx;

static double pool_loss(void *p) {
  pool_ctx *c = p;
  switch (c->op) {
  case 0: nn_upsample2x_forward(c->y, c->x, 6, 3, 4); break;
  case 1: nn_avgpool_forward(c->y, c->x, 6, 4, 6, 2); break;
  case 2: nn_gap_forward(c->y, c->x, 6, 20); break;
  case 3: nn_maxpool_forward(c->y, c->arg, c->x, 6, 7, 8, 3, 2, 1, 4, 4); break;
  case 4: nn_spatial_softmax_forward(c->y, c->aux, c->x, 2, 3, 4, 5); break;
  }
  return dotd(c->y, c->dy, c->ny);
}

static void run_pool(const char *nm, int op, size_t nx, size_t ny) {
  pool_ctx c = {op, dup(fx(nm, "x", nx), nx), zeros(ny), zeros(nx), calloc(ny, 4), fx(nm, "dy", ny), ny};
  pool_loss(&c);
  char what[128];
  snprintf(what, sizeof what, "%s forward", nm);
  expect_close(what, c.y, fx(nm, "y", ny), ny, 1e-6f, 1e-5f);
  float *dx = zeros(nx);
  switch (op) {
  case 0: nn_upsample2x_backward(dx, c.dy, 6, 3, 4); break;
  case 1: nn_avgpool_backward(dx, c.dy, 6, 4, 6, 2); break;
  case 2: nn_gap_backward(dx, c.dy, 6, 20); break;
  case 3: nn_maxpool_backward(dx, c.dy, c.arg, 6, 7, 8, 4, 4); break;
  case 4: nn_spatial_softmax_backward(dx, c.dy, c.aux, 2, 3, 4, 5); break;
  }
  snprintf(what, sizeof what, "%s dx", nm);
  expect_close(what, dx, fx(nm, "dx", nx), nx, 1e-5f, 1e-4f);
  snprintf(what, sizeof what, "%s fd", nm);
  fd_check(what, pool_loss, &c, c.x, dx, nx, 1e-3f, 3e-3);
  free(dx); free(c.x); free(c.y); free(c.aux); free(c.arg);
}

Test(nn_ops, resample_pool_softmax) {
  run_pool("up2x", 0, 72, 288);
  run_pool("avgpool", 1, 144, 36);
  run_pool("gap", 2, 120, 6);
  run_pool("maxpool", 3, 2 * 3 * 56, 2 * 3 * 16);
  run_pool("ssm", 4, 120, 12);
  /* strided subsample = every 2nd pixel */
  float x[16], y[4], dx[16] = {0};
  for (int i = 0; i < 16; i++) x[i] = (float)i;
  nn_subsample_forward(y, x, 1, 4, 4, 2);
  cr_expect(y[0] == 0 && y[1] == 2 && y[2] == 8 && y[3] == 10);
  nn_subsample_backward(dx, y, 1, 4, 4, 2);
  cr_expect(dx[10] == 10 && dx[1] == 0);
}

typedef struct {
  float *h, *sb, *y;
  const float *dy;
} film_ctx;
static double film_loss(void *p) {
  film_ctx *c = p;
  nn_film_forward(c->y, c->h, c->sb, 2, 3, 4);
  return dotd(c->y, c->dy, 24);
}

Test(nn_ops, film_concat_add_mse) {
  film_ctx c = {dup(fx("film", "h", 24), 24), dup(fx("film", "sb", 12), 12), zeros(24), fx("film", "dy", 24)};
  film_loss(&c);
  expect_close("film", c.y, fx("film", "y", 24), 24, 1e-6f, 1e-5f);
  float dh[24] = {0}, dsb[12] = {0};
  nn_film_backward(dh, dsb, c.dy, c.h, c.sb, 2, 3, 4);
  expect_close("film dh", dh, fx("film", "dh", 24), 24, 1e-5f, 1e-4f);
  expect_close("film dsb", dsb, fx("film", "dsb", 12), 12, 1e-5f, 1e-4f);
  fd_check("film fd h", film_loss, &c, c.h, dh, 24, 1e-2f, 2e-3);
  fd_check("film fd sb", film_loss, &c, c.sb, dsb, 12, 1e-2f, 2e-3);
  free(c.h); free(c.sb); free(c.y);

  /* concat: (2, 1, 3) + (2, 2, 3) */
  float a[6] = {1, 2, 3, 4, 5, 6}, b[12], o[18], da[6] = {0}, db[12] = {0};
  for (int i = 0; i < 12; i++) b[i] = 10.f + i;
  nn_concat_forward(o, a, b, 2, 1, 2, 3);
  cr_expect(o[0] == 1 && o[3] == 10 && o[8] == 15 && o[9] == 4 && o[12] == 16);
  nn_concat_backward(da, db, o, 2, 1, 2, 3);
  expect_close("concat back a", da, a, 6, 0, 0);
  expect_close("concat back b", db, b, 12, 0, 0);
  float s[6], ga[6] = {0}, gb[6] = {0};
  nn_add_forward(s, a, a, 6);
  cr_expect(s[5] == 12.f);
  nn_add_backward(ga, gb, a, 6);
  expect_close("add back", gb, a, 6, 0, 0);
  float e[2] = {1.f, -1.f}, x[6] = {0}, de[2] = {0};
  nn_add_bc_forward(x, e, 1, 2, 3);
  cr_expect(x[2] == 1.f && x[3] == -1.f);
  nn_add_bc_backward(de, a, 1, 2, 3);
  cr_expect(de[0] == 6.f && de[1] == 15.f);

  /* weighted MSE: loss = mean_b w_b mean_i (a - t)^2, upstream gradient dy (scalar) */
  const float *pa = fx("mse", "a", 24), *pt = fx("mse", "t", 24), *pw = fx("mse", "w", 3);
  float l = nn_mse_forward(pa, pt, pw, 3, 8), want = fx("mse", "y", 1)[0];
  cr_expect(fabsf(l - want) <= 1e-5f * fabsf(want), "mse %g want %g", l, want);
  float g[24];
  nn_mse_backward(g, pa, pt, pw, 3, 8, fx("mse", "dy", 1)[0]);
  expect_close("mse grad", g, fx("mse", "da", 24), 24, 1e-6f, 1e-5f);
  float g1[24];
  nn_mse_backward(g1, pa, pt, pw, 3, 8, 1.f);
  mse_ctx mc = {dup(pa, 24), pt, pw};
  fd_check("mse fd", mse_loss, &mc, mc.a, g1, 24, 1e-3f, 2e-3);
  free(mc.a);
  float l0 = nn_mse_forward(pa, pt, NULL, 3, 8);
  cr_expect(l0 > 0.f && l0 != l);
}
