/* flow.c: dense optical flow by polynomial expansion (Farneback 2003, "Two-frame motion estimation
 * based on polynomial expansion").
 *
 * The method, per pyramid level from coarse to fine:
 *   1. polynomial expansion: around every pixel fit f(x) ~ x^T A x + b^T x + c by weighted least
 *      squares with a Gaussian applicability (poly_n, poly_sigma), done as separable correlations
 *      with g, x g, x^2 g and the closed-form inverse of the (sparse) Gram matrix;
 *   2. displacement: with the current estimate d, compare the expansion of prev at x with that of
 *      next at x + d:  A = (A1 + A2(x+d)) / 2,  db = -(b2(x+d) - b1) / 2 + A d;  accumulate
 *      G = A^T A and h = A^T db, average them over a window (box or Gaussian, winsize) and solve
 *      G d = h per pixel; repeat `iterations` times;
 *   3. the flow is upsampled to the next finer level and scaled by 1 / pyr_scale.
 * The details follow OpenCV's calcOpticalFlowFarneback so the two agree to a small fraction of a
 * pixel: each level is the full-resolution image blurred with sigma (1/scale - 1)/2 (reflect-101
 * border) and resized bilinearly; borders replicate; the five outermost rows and columns have their
 * G, h down-weighted; det(G) gets +1e-3; levels stop before a side would fall under 32 pixels.
 * flow_ref.c holds a naive twin of every step for the tests. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "match/flow_internal.h"
#include "match/match.h"

void sp_flow_cfg_default(sp_flow_cfg *c) {
  c->pyr_scale = 0.5;
  c->levels = 3;
  c->winsize = 15;
  c->iterations = 3;
  c->poly_n = 5;
  c->poly_sigma = 1.2;
  c->gaussian = 0;
}

int sp_flow_cfg_check(const sp_flow_cfg *c, char *err) {
  if (!(c->pyr_scale > 0 && c->pyr_scale < 1))
    return sp_errf(err, "flow: pyr_scale %g must be in (0, 1)", c->pyr_scale);
  if (c->levels < 0 || c->levels > 16) return sp_errf(err, "flow: levels %d must be in 0..16", c->levels);
  if (c->winsize < 1 || c->winsize > 101) return sp_errf(err, "flow: winsize %d must be in 1..101", c->winsize);
  if (c->iterations < 1 || c->iterations > 100)
    return sp_errf(err, "flow: iterations %d must be in 1..100", c->iterations);
  if (c->poly_n < 1 || c->poly_n > 15) return sp_errf(err, "flow: poly_n %d must be in 1..15", c->poly_n);
  if (!(c->poly_sigma >= 0 && c->poly_sigma < 10))
    return sp_errf(err, "flow: poly_sigma %g must be in [0, 10)", c->poly_sigma);
  return 0;
}

/* ---- shared helpers (also used by flow_ref.c) ---- */

int sp_flow__nlevels(const sp_flow_cfg *c, int w, int h) {
  double scale = 1;
  int k;
  for (k = 0; k < c->levels; k++) {
    scale *= c->pyr_scale;
    if (w * scale < SP_FLOW_MIN_SIZE || h * scale < SP_FLOW_MIN_SIZE) break;
  }
  return k;
}

void sp_flow__level_geom(const sp_flow_cfg *c, int w, int h, int k, sp_flow_level *L) {
  double scale = 1;
  for (int i = 0; i < k; i++) scale *= c->pyr_scale;
  L->scale = scale;
  L->sigma = (1.0 / scale - 1) * 0.5;
  int ks = (int)lrint(L->sigma * 5) | 1;
  L->ksize = ks < 3 ? 3 : ks;
  L->w = (int)lrint(w * scale);
  L->h = (int)lrint(h * scale);
}

/* Gaussian taps as OpenCV's getGaussianKernel: sigma <= 0 and ksize <= 7 use the binomial table */
void sp_flow__blur_kernel(int ksize, double sigma, double *k) {
  static const double tab[4][7] = {{1}, {0.25, 0.5, 0.25}, {0.0625, 0.25, 0.375, 0.25, 0.0625},
                                   {0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125}};
  int fixed = ksize % 2 == 1 && ksize <= 7 && sigma <= 0;
  double sx = sigma > 0 ? sigma : ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8, s = 0;
  for (int i = 0; i < ksize; i++) {
    double x = i - (ksize - 1) * 0.5;
    k[i] = fixed ? tab[ksize >> 1][i] : exp(-0.5 / (sx * sx) * x * x);
    s += k[i];
  }
  for (int i = 0; i < ksize; i++) k[i] /= s;
}

/* applicability g and the inverse-Gram entries of the polynomial expansion (basis 1, x, y, x^2, y^2,
 * xy under weights g(x) g(y)): only these four entries of G^-1 are non-zero off the trivial ones */
void sp_flow__poly_setup(int n, double sigma, double *g, double *xg, double *xxg, double ig[4]) {
  if (sigma < 1.19e-7) sigma = n * 0.3;
  double s = 0;
  for (int x = -n; x <= n; x++) {
    g[x + n] = exp(-x * x / (2 * sigma * sigma));
    s += g[x + n];
  }
  for (int x = -n; x <= n; x++) {
    g[x + n] /= s;
    xg[x + n] = x * g[x + n];
    xxg[x + n] = (double)x * x * g[x + n];
  }
  /* moments of the separable weight: m2 = sum g x^2, m4 = sum g x^4 (sum g = 1) */
  double m2 = 0, m4 = 0;
  for (int x = -n; x <= n; x++) {
    m2 += g[x + n] * x * x;
    m4 += g[x + n] * (double)x * x * x * x;
  }
  /* block of (1, x^2, y^2): [[1, m2, m2], [m2, m4, m2^2], [m2, m2^2, m4]]; invert it (adjugate) */
  double B[3][3] = {{1, m2, m2}, {m2, m4, m2 * m2}, {m2, m2 * m2, m4}}, b = m2 * m2;
  double det = B[0][0] * (B[1][1] * B[2][2] - B[1][2] * B[2][1]) -
               B[0][1] * (B[1][0] * B[2][2] - B[1][2] * B[2][0]) +
               B[0][2] * (B[1][0] * B[2][1] - B[1][1] * B[2][0]);
  ig[0] = 1 / m2;                                                      // x, y
  ig[1] = -(B[1][0] * B[2][2] - B[1][2] * B[2][0]) / det;              // inverse (1, x^2)
  ig[2] = (B[0][0] * B[2][2] - B[0][2] * B[2][0]) / det;               // inverse (x^2, x^2)
  ig[3] = 1 / b;                               // xy: sum g x^2 g y^2
}

/* ---- the fast path ----
 * Planar layouts (one plane per coefficient) so that every inner loop runs over contiguous x and
 * the compiler can vectorise it; the window sums and the 2x2 solves stay in double like OpenCV's. */

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")   // vectorise the x loops (the project builds at -O2)
#endif

/* planes of one array are PLANE_SKEW floats apart beyond their size, and the three 5-plane arrays
 * are offset from each other, so that the 13 streams update_matrices touches at one (x, y) do not
 * fall into the same cache sets (plane sizes are often powers of two: 128 x 128 x 4 bytes) */
#define PLANE_SKEW 80

/* 4 floats (SSE2 on x86-64, NEON on arm64) through GCC/Clang vector extensions; unaligned loads */
typedef float v4f __attribute__((vector_size(16)));
static inline v4f ld4(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void st4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

static inline size_t plane_stride(int w, int h) { return (size_t)w * h + PLANE_SKEW; }

struct sp_flow_ws {
  int w, h, nlev;
  int n, m;                // poly_n, winsize / 2
  float *img0, *img1;      // (h x w) frames as float
  float *blur, *tmp;       // (h x w) blurred frame, separable-blur scratch
  float *lev;              // (h x w) one level's image
  float *R0, *R1;          // (5 x h x w) expansions: b_y, b_x, a_yy, a_xx, a_xy planes
  float *M;                // (5 x h x w) G_yy, G_xy, G_xx, h_y, h_x planes
  float *fx, *fy;          // (h x w) flow of the current level
  float *cx, *cy;          // (h x w) flow of the coarser level
  float *pad;              // (w + 2 max(n, r) + 8) padded row for the horizontal passes
  float *vrow;             // (3 x (w + 2 n)) vertical poly sums, padded by n
  float *brow;             // (6 x w) horizontal poly sums
  double *vsum;            // (5 x (w + 2 m + 2)) window sums per plane, padded by m + 1
  double *hsum;            // (5 x w)
  double *bk;              // (max blur ksize) pyramid blur taps
  int *rx;                 // (2 x w) resize: left and right source column per output column
  float *rfx;              // (w) resize: weight of the right column
  int bk_cap, pad_r;
  double g[32], xg[32], xxg[32], ig[4];
  double wk[64];           // Gaussian window taps (m + 1)
};

sp_flow_ws *sp_flow_ws_new(const sp_flow_cfg *cfg, int w, int h, char *err) {
  if (sp_flow_cfg_check(cfg, err)) return NULL;
  if (w < 8 || h < 8) {
    sp_errf(err, "flow: frame %dx%d is smaller than 8x8", w, h);
    return NULL;
  }
  sp_flow_ws *ws = calloc(1, sizeof *ws);
  if (!ws) {
    sp_errf(err, "flow: out of memory");
    return NULL;
  }
  ws->w = w;
  ws->h = h;
  ws->n = cfg->poly_n;
  ws->m = cfg->winsize / 2;
  ws->nlev = sp_flow__nlevels(cfg, w, h);
  int m = ws->m, n = ws->n;
  sp_flow_level L;
  sp_flow__level_geom(cfg, w, h, ws->nlev, &L);
  ws->bk_cap = L.ksize;
  ws->pad_r = L.ksize / 2 > m ? L.ksize / 2 : m;
  if (ws->pad_r < n) ws->pad_r = n;
  size_t px = (size_t)w * h;
  size_t pl = 5 * (px + PLANE_SKEW) + 64;   // one 5-plane array, skewed
  size_t nf = px * 9 + 3 * pl + (size_t)(w + 2 * ws->pad_r + 8) + 3 * (size_t)(w + 2 * n) + 6 * (size_t)w;
  float *f = malloc(sizeof(float) * nf);
  ws->vsum = malloc(sizeof(double) * (5 * (size_t)(w + 2 * m + 2) + 5 * (size_t)w + ws->bk_cap));
  ws->rx = malloc(sizeof(int) * 2 * (size_t)w + sizeof(float) * (size_t)w);
  if (!f || !ws->vsum || !ws->rx) {
    free(f);
    sp_flow_ws_free(ws);
    sp_errf(err, "flow: out of memory for %dx%d", w, h);
    return NULL;
  }
  ws->img0 = f; f += px;
  ws->img1 = f; f += px;
  ws->blur = f; f += px;
  ws->tmp = f; f += px;
  ws->lev = f; f += px;
  ws->R0 = f; f += pl;
  ws->R1 = f + 24; f += pl;
  ws->M = f + 40; f += pl;
  ws->fx = f; f += px;
  ws->fy = f; f += px;
  ws->cx = f; f += px;
  ws->cy = f; f += px;
  ws->pad = f; f += w + 2 * ws->pad_r + 8;
  ws->vrow = f; f += 3 * (size_t)(w + 2 * n);
  ws->brow = f;
  ws->hsum = ws->vsum + 5 * (size_t)(w + 2 * m + 2);
  ws->bk = ws->hsum + 5 * (size_t)w;
  ws->rfx = (float *)(ws->rx + 2 * (size_t)w);
  sp_flow__poly_setup(n, cfg->poly_sigma, ws->g, ws->xg, ws->xxg, ws->ig);
  /* Gaussian window: sigma = 0.3 m, taps 0..m normalised over -m..m */
  double sigma = m * 0.3, s = 1;
  ws->wk[0] = 1;
  for (int i = 1; i <= m && i < 64; i++) {
    ws->wk[i] = exp(-i * i / (2 * sigma * sigma));
    s += 2 * ws->wk[i];
  }
  for (int i = 0; i <= m && i < 64; i++) ws->wk[i] /= s;
  return ws;
}

void sp_flow_ws_free(sp_flow_ws *ws) {
  if (!ws) return;
  free(ws->img0);
  free(ws->vsum);
  free(ws->rx);
  free(ws);
}

static inline int reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

/* separable Gaussian blur (h x w) with reflect-101 borders */
static void blur_sep(sp_flow_ws *ws, const float *src, float *dst, int w, int h, const double *k, int ks) {
  const int r = ks / 2;
  float kf[256];
  for (int i = 0; i < ks; i++) kf[i] = (float)k[i];
  float *restrict pad = ws->pad + r;
  float *restrict tmp = ws->tmp;
  for (int y = 0; y < h; y++) {
    const float *s = src + (size_t)y * w;
    for (int x = -r; x < w + r; x++) pad[x] = s[x >= 0 && x < w ? x : reflect101(x, w)];
    float *restrict t = tmp + (size_t)y * w;
    for (int x = 0; x < w; x++) t[x] = kf[0] * pad[x - r];
    for (int i = 1; i < ks; i++) {
      const float ki = kf[i];
      const float *p = pad - r + i;
      for (int x = 0; x < w; x++) t[x] += ki * p[x];
    }
  }
  for (int y = 0; y < h; y++) {
    float *restrict d = dst + (size_t)y * w;
    const float *t0 = tmp + (size_t)reflect101(y - r, h) * w;
    for (int x = 0; x < w; x++) d[x] = kf[0] * t0[x];
    for (int i = 1; i < ks; i++) {
      const float *restrict t = tmp + (size_t)reflect101(y - r + i, h) * w;
      const float ki = kf[i];
      for (int x = 0; x < w; x++) d[x] += ki * t[x];
    }
  }
}

/* bilinear resize with OpenCV's pixel-centre convention and clamped borders; c channels */
void sp_flow__resize(const float *src, int sw, int sh, float *dst, int dw, int dh, int c) {
  double sx_scale = (double)sw / dw, sy_scale = (double)sh / dh;
  for (int y = 0; y < dh; y++) {
    float fy = (float)((y + 0.5) * sy_scale - 0.5);
    int y0 = (int)floorf(fy);
    fy -= y0;
    if (y0 < 0) y0 = 0, fy = 0;
    if (y0 >= sh - 1) y0 = sh - 1, fy = 0;
    int y1 = y0 + 1 < sh ? y0 + 1 : y0;
    for (int x = 0; x < dw; x++) {
      float fx = (float)((x + 0.5) * sx_scale - 0.5);
      int x0 = (int)floorf(fx);
      fx -= x0;
      if (x0 < 0) x0 = 0, fx = 0;
      if (x0 >= sw - 1) x0 = sw - 1, fx = 0;
      int x1 = x0 + 1 < sw ? x0 + 1 : x0;
      for (int ch = 0; ch < c; ch++) {
        float a = src[((size_t)y0 * sw + x0) * c + ch] * (1 - fx) + src[((size_t)y0 * sw + x1) * c + ch] * fx;
        float b = src[((size_t)y1 * sw + x0) * c + ch] * (1 - fx) + src[((size_t)y1 * sw + x1) * c + ch] * fx;
        dst[((size_t)y * dw + x) * c + ch] = a * (1 - fy) + b * fy;
      }
    }
  }
}

/* the same resize for one channel, with the column positions and weights tabulated once */
static void resize1(sp_flow_ws *ws, const float *src, int sw, int sh, float *dst, int dw, int dh) {
  const double sx_scale = (double)sw / dw, sy_scale = (double)sh / dh;
  int *restrict x0t = ws->rx, *restrict x1t = ws->rx + dw;
  float *restrict ft = ws->rfx;
  for (int x = 0; x < dw; x++) {
    float fx = (float)((x + 0.5) * sx_scale - 0.5);
    int x0 = (int)floorf(fx);
    fx -= x0;
    if (x0 < 0) x0 = 0, fx = 0;
    if (x0 >= sw - 1) x0 = sw - 1, fx = 0;
    x0t[x] = x0;
    x1t[x] = x0 + 1 < sw ? x0 + 1 : x0;
    ft[x] = fx;
  }
  for (int y = 0; y < dh; y++) {
    float fy = (float)((y + 0.5) * sy_scale - 0.5);
    int y0 = (int)floorf(fy);
    fy -= y0;
    if (y0 < 0) y0 = 0, fy = 0;
    if (y0 >= sh - 1) y0 = sh - 1, fy = 0;
    const float *s0 = src + (size_t)y0 * sw, *s1 = src + (size_t)(y0 + 1 < sh ? y0 + 1 : y0) * sw;
    float *restrict d = dst + (size_t)y * dw;
    for (int x = 0; x < dw; x++) {
      float fx = ft[x];
      float a = s0[x0t[x]] * (1 - fx) + s0[x1t[x]] * fx;
      float b = s1[x0t[x]] * (1 - fx) + s1[x1t[x]] * fx;
      d[x] = a * (1 - fy) + b * fy;
    }
  }
}

/* polynomial expansion of src (h x w) into the five planes of R: separable correlations with g,
 * x g, x^2 g (vertical into three padded rows, then horizontal), replicated borders */
static void poly_exp(sp_flow_ws *ws, const float *src, int w, int h, float *R) {
  const int n = ws->n, W = w + 2 * n;
  float g[16], xg[16], xxg[16];
  for (int k = 0; k <= n; k++) {
    g[k] = (float)ws->g[n + k];
    xg[k] = (float)ws->xg[n + k];
    xxg[k] = (float)ws->xxg[n + k];
  }
  float *restrict v0 = ws->vrow + n, *restrict v1 = v0 + W, *restrict v2 = v1 + W;
  float *restrict b1 = ws->brow, *restrict b2 = b1 + w, *restrict b3 = b2 + w, *restrict b4 = b3 + w,
                  *restrict b5 = b4 + w, *restrict b6 = b5 + w;
  for (int y = 0; y < h; y++) {
    const float *s0 = src + (size_t)y * w;
    for (int x = 0; x < w; x++) {
      v0[x] = s0[x] * g[0];
      v1[x] = v2[x] = 0;
    }
    for (int k = 1; k <= n; k++) {
      const float *restrict sm = src + (size_t)(y - k < 0 ? 0 : y - k) * w;
      const float *restrict sp = src + (size_t)(y + k > h - 1 ? h - 1 : y + k) * w;
      const float g0 = g[k], g1 = xg[k], g2 = xxg[k];
      for (int x = 0; x < w; x++) {
        float p = sm[x] + sp[x];
        v0[x] += g0 * p;
        v1[x] += g1 * (sp[x] - sm[x]);
        v2[x] += g2 * p;
      }
    }
    for (int x = 1; x <= n; x++) {   // replicate the first and last columns
      v0[-x] = v0[0]; v1[-x] = v1[0]; v2[-x] = v2[0];
      v0[w - 1 + x] = v0[w - 1]; v1[w - 1 + x] = v1[w - 1]; v2[w - 1 + x] = v2[w - 1];
    }
    for (int x = 0; x < w; x++) {
      b1[x] = v0[x] * g[0];
      b2[x] = 0;
      b3[x] = v1[x] * g[0];
      b4[x] = 0;
      b5[x] = v2[x] * g[0];
      b6[x] = 0;
    }
    for (int k = 1; k <= n; k++) {
      const float gk = g[k], xk = xg[k], xxk = xxg[k];
      const v4f gk4 = {gk, gk, gk, gk}, xk4 = {xk, xk, xk, xk}, xxk4 = {xxk, xxk, xxk, xxk};
      int x = 0;
      for (; x + 4 <= w; x += 4) {
        v4f a0 = ld4(v0 + x + k), c0 = ld4(v0 + x - k), a1 = ld4(v1 + x + k), c1 = ld4(v1 + x - k),
            a2 = ld4(v2 + x + k), c2 = ld4(v2 + x - k), t = a0 + c0;
        st4(b1 + x, ld4(b1 + x) + t * gk4);
        st4(b4 + x, ld4(b4 + x) + t * xxk4);
        st4(b2 + x, ld4(b2 + x) + (a0 - c0) * xk4);
        st4(b3 + x, ld4(b3 + x) + (a1 + c1) * gk4);
        st4(b6 + x, ld4(b6 + x) + (a1 - c1) * xk4);
        st4(b5 + x, ld4(b5 + x) + (a2 + c2) * gk4);
      }
      for (; x < w; x++) {
        float a0 = v0[x + k], c0 = v0[x - k], a1 = v1[x + k], c1 = v1[x - k], a2 = v2[x + k], c2 = v2[x - k];
        float t = a0 + c0;
        b1[x] += t * gk;
        b4[x] += t * xxk;
        b2[x] += (a0 - c0) * xk;
        b3[x] += (a1 + c1) * gk;
        b6[x] += (a1 - c1) * xk;
        b5[x] += (a2 + c2) * gk;
      }
    }
    const float ig0 = (float)ws->ig[0], ig1 = (float)ws->ig[1], ig2 = (float)ws->ig[2], ig3 = (float)ws->ig[3];
    float *restrict d = R + (size_t)y * w * 5;   // interleaved: update_matrices gathers all 5 at once
    for (int x = 0; x < w; x++) {
      d[5 * x + 0] = b3[x] * ig0;
      d[5 * x + 1] = b2[x] * ig0;
      d[5 * x + 2] = b1[x] * ig1 + b5[x] * ig2;
      d[5 * x + 3] = b1[x] * ig1 + b4[x] * ig2;
      d[5 * x + 4] = b6[x] * ig3;
    }
  }
}

/* border down-weighting of G, h on the 5 outermost rows/columns (as OpenCV) */
static const float k_border[5] = {0.14f, 0.14f, 0.4472f, 0.4472f, 0.4472f};

float sp_flow__border_scale(int x, int y, int w, int h) {
  float s = 1;
  if (x < 5) s *= k_border[x];
  if (x >= w - 5) s *= k_border[w - x - 1];
  if (y < 5) s *= k_border[y];
  if (y >= h - 5) s *= k_border[h - y - 1];
  return s;
}

/* per-pixel G = A^T A and h = A^T db from the two expansions (interleaved, 5 per pixel) and the
 * current flow (planar), into the five planes of M. One pixel: */
static inline void um_one(const float *R0, const float *R1, const float *fxr, const float *fyr, float *const m[5],
                          int x, int y, int w, int h) {
  const float *r0 = R0 + ((size_t)y * w + x) * 5;
  float dx = fxr[x], dy = fyr[x];
  float fx = x + dx, fy = y + dy;
  int x1 = (int)floorf(fx), y1 = (int)floorf(fy);
  float r2, r3, r4, r5, r6;
  fx -= x1;
  fy -= y1;
  if ((unsigned)x1 < (unsigned)(w - 1) && (unsigned)y1 < (unsigned)(h - 1)) {
    /* channels 0-3 of the four neighbours as 4-vectors, channel 4 apart */
    const float *p = R1 + ((size_t)y1 * w + x1) * 5, *q = p + (size_t)w * 5;
    float a00 = (1 - fx) * (1 - fy), a01 = fx * (1 - fy), a10 = (1 - fx) * fy, a11 = fx * fy;
    v4f r1 = a00 * ld4(p) + a01 * ld4(p + 5) + a10 * ld4(q) + a11 * ld4(q + 5);
    r6 = a00 * p[4] + a01 * p[9] + a10 * q[4] + a11 * q[9];
    const v4f sgn = {-0.5f, -0.5f, 0.5f, 0.5f};
    v4f v = ld4(r0) * 0.5f + r1 * sgn;   // (b0 - b1) / 2 and (A0 + A1) / 2
    r2 = v[0];
    r3 = v[1];
    r4 = v[2];
    r5 = v[3];
    r6 = (r0[4] + r6) * 0.25f;   // mean, halved: the off-diagonal of A is a_xy / 2
  } else {                       // x + d outside: A from the first frame only
    r4 = r0[2];
    r5 = r0[3];
    r6 = r0[4] * 0.5f;
    r2 = r0[0] * 0.5f;
    r3 = r0[1] * 0.5f;
  }
  r2 += r4 * dy + r6 * dx;
  r3 += r6 * dy + r5 * dx;
  if (x < 5 || y < 5 || x >= w - 5 || y >= h - 5) {
    float s = sp_flow__border_scale(x, y, w, h);
    r2 *= s; r3 *= s; r4 *= s; r5 *= s; r6 *= s;
  }
  m[0][x] = r4 * r4 + r6 * r6;   // G_yy
  m[1][x] = (r4 + r5) * r6;      // G_xy
  m[2][x] = r5 * r5 + r6 * r6;   // G_xx
  m[3][x] = r4 * r2 + r6 * r3;   // h_y
  m[4][x] = r6 * r2 + r5 * r3;   // h_x
}

typedef int v4i __attribute__((vector_size(16)));

/* all pixels; away from the 5-pixel border, four at a time: positions, floors and weights as
 * vectors, the gathers per lane, a 4x4 transpose to channel vectors, and the rest vectorised with
 * the same operations in the same order as um_one (so both give the same bits) */
static void update_matrices(const float *R0, const float *R1, const float *fxp, const float *fyp, float *M,
                            int w, int h) {
  const size_t P = plane_stride(w, h);
  for (int y = 0; y < h; y++) {
    const float *fxr = fxp + (size_t)y * w, *fyr = fyp + (size_t)y * w;
    float *const m[5] = {M + (size_t)y * w, M + P + (size_t)y * w, M + 2 * P + (size_t)y * w,
                         M + 3 * P + (size_t)y * w, M + 4 * P + (size_t)y * w};
    int x = 0;
    if (y >= 5 && y < h - 5) {
      for (; x < 5; x++) um_one(R0, R1, fxr, fyr, m, x, y, w, h);
      const v4f yv = {(float)y, (float)y, (float)y, (float)y};
      for (; x + 4 <= w - 5; x += 4) {
        v4f dx = ld4(fxr + x), dy = ld4(fyr + x);
        v4f X = (v4f){(float)x, (float)(x + 1), (float)(x + 2), (float)(x + 3)} + dx, Y = yv + dy;
        v4i xi = __builtin_convertvector(X, v4i), yi = __builtin_convertvector(Y, v4i);
        xi += (v4i)(__builtin_convertvector(xi, v4f) > X);   // truncation -> floor
        yi += (v4i)(__builtin_convertvector(yi, v4f) > Y);
        v4f fx = X - __builtin_convertvector(xi, v4f), fy = Y - __builtin_convertvector(yi, v4f);
        int inside = 1;
        for (int l = 0; l < 4; l++)
          inside &= (unsigned)xi[l] < (unsigned)(w - 1) && (unsigned)yi[l] < (unsigned)(h - 1);
        if (!inside) {
          for (int l = 0; l < 4; l++) um_one(R0, R1, fxr, fyr, m, x + l, y, w, h);
          continue;
        }
        v4f a00 = (1 - fx) * (1 - fy), a01 = fx * (1 - fy), a10 = (1 - fx) * fy, a11 = fx * fy;
        v4f L[4], Z[4];
        float c4[4], z4[4];
        for (int l = 0; l < 4; l++) {
          const float *p = R1 + ((size_t)yi[l] * w + xi[l]) * 5, *q = p + (size_t)w * 5;
          L[l] = a00[l] * ld4(p) + a01[l] * ld4(p + 5) + a10[l] * ld4(q) + a11[l] * ld4(q + 5);
          c4[l] = a00[l] * p[4] + a01[l] * p[9] + a10[l] * q[4] + a11[l] * q[9];
          const float *r0 = R0 + ((size_t)y * w + x + l) * 5;
          Z[l] = ld4(r0);
          z4[l] = r0[4];
        }
        v4f l0 = {L[0][0], L[1][0], L[2][0], L[3][0]}, l1 = {L[0][1], L[1][1], L[2][1], L[3][1]},
            l2 = {L[0][2], L[1][2], L[2][2], L[3][2]}, l3 = {L[0][3], L[1][3], L[2][3], L[3][3]};
        v4f z0 = {Z[0][0], Z[1][0], Z[2][0], Z[3][0]}, z1 = {Z[0][1], Z[1][1], Z[2][1], Z[3][1]},
            z2 = {Z[0][2], Z[1][2], Z[2][2], Z[3][2]}, z3 = {Z[0][3], Z[1][3], Z[2][3], Z[3][3]};
        v4f c = {c4[0], c4[1], c4[2], c4[3]}, z = {z4[0], z4[1], z4[2], z4[3]};
        v4f r2 = z0 * 0.5f + l0 * -0.5f, r3 = z1 * 0.5f + l1 * -0.5f;
        v4f r4 = z2 * 0.5f + l2 * 0.5f, r5 = z3 * 0.5f + l3 * 0.5f, r6 = (z + c) * 0.25f;
        r2 += r4 * dy + r6 * dx;
        r3 += r6 * dy + r5 * dx;
        st4(m[0] + x, r4 * r4 + r6 * r6);
        st4(m[1] + x, (r4 + r5) * r6);
        st4(m[2] + x, r5 * r5 + r6 * r6);
        st4(m[3] + x, r4 * r2 + r6 * r3);
        st4(m[4] + x, r6 * r2 + r5 * r3);
      }
    }
    for (; x < w; x++) um_one(R0, R1, fxr, fyr, m, x, y, w, h);
  }
}

/* d = G^-1 h per pixel from the window-averaged planes; det gets +1e-3 as in OpenCV */
static void solve_row(const double *restrict s0, const double *restrict s1, const double *restrict s2,
                      const double *restrict s3, const double *restrict s4, double scale, float *restrict fx,
                      float *restrict fy, int w) {
  for (int x = 0; x < w; x++) {
    double g11 = s0[x] * scale, g12 = s1[x] * scale, g22 = s2[x] * scale, h1 = s3[x] * scale, h2 = s4[x] * scale;
    double idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
    fx[x] = (float)((g11 * h2 - g12 * h1) * idet);
    fy[x] = (float)((g22 * h1 - g12 * h2) * idet);
  }
}

/* box average of the M planes over winsize x winsize (replicated borders): vertical running sums
 * per plane, horizontal running sums, then the solve */
static void update_flow_box(sp_flow_ws *ws, const float *M, float *fx, float *fy, int w, int h, int bs) {
  const int m = bs / 2, W = w + 2 * m + 2;
  const size_t P = plane_stride(w, h);
  const double scale = 1.0 / ((double)bs * bs);
  double *vs[5];
  for (int c = 0; c < 5; c++) {
    vs[c] = ws->vsum + (size_t)c * W + m + 1;
    const float *M0 = M + c * P;
    double *restrict v = vs[c];
    for (int x = 0; x < w; x++) v[x] = M0[x] * (double)(m + 2);
    for (int y = 1; y < m; y++) {
      const float *restrict r = M0 + (size_t)(y < h - 1 ? y : h - 1) * w;
      for (int x = 0; x < w; x++) v[x] += r[x];
    }
  }
  for (int y = 0; y < h; y++) {
    const size_t o0 = (size_t)(y - m - 1 > 0 ? y - m - 1 : 0) * w, o1 = (size_t)(y + m < h - 1 ? y + m : h - 1) * w;
    double s[5];
    for (int c = 0; c < 5; c++) {
      double *restrict v = vs[c];
      const float *restrict r0 = M + c * P + o0, *restrict r1 = M + c * P + o1;
      for (int x = 0; x < w; x++) v[x] += (double)r1[x] - (double)r0[x];
      for (int x = 1; x <= m + 1; x++) {
        v[-x] = v[0];
        v[w - 1 + x] = v[w - 1];
      }
      s[c] = v[0] * (m + 2);
      for (int x = 1; x < m; x++) s[c] += v[x];
    }
    /* the five horizontal running sums advance together: five independent add chains */
    const double *v0 = vs[0], *v1 = vs[1], *v2 = vs[2], *v3 = vs[3], *v4 = vs[4];
    float *fxr = fx + (size_t)y * w, *fyr = fy + (size_t)y * w;
    for (int x = 0; x < w; x++) {
      s[0] += v0[x + m] - v0[x - m - 1];
      s[1] += v1[x + m] - v1[x - m - 1];
      s[2] += v2[x + m] - v2[x - m - 1];
      s[3] += v3[x + m] - v3[x - m - 1];
      s[4] += v4[x + m] - v4[x - m - 1];
      double g11 = s[0] * scale, g12 = s[1] * scale, g22 = s[2] * scale, h1 = s[3] * scale, h2 = s[4] * scale;
      double idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
      fxr[x] = (float)((g11 * h2 - g12 * h1) * idet);
      fyr[x] = (float)((g22 * h1 - g12 * h2) * idet);
    }
  }
}

/* Gaussian average (sigma 0.3 m) of the M planes, separable, replicated borders, then the solve */
static void update_flow_gauss(sp_flow_ws *ws, const float *M, float *fx, float *fy, int w, int h, int bs) {
  const int m = bs / 2, W = w + 2 * m + 2;
  const size_t P = plane_stride(w, h);
  float k[64];
  for (int i = 0; i <= m; i++) k[i] = (float)ws->wk[i];
  double *hs[5];
  for (int y = 0; y < h; y++) {
    for (int c = 0; c < 5; c++) {
      const float *M0 = M + c * P;
      double *restrict v = ws->vsum + (size_t)c * W + m + 1;
      /* vertical in float, as OpenCV does (vsum is float there) */
      float *restrict vf = ws->pad + ws->pad_r;
      const float *restrict rc = M0 + (size_t)y * w;
      for (int x = 0; x < w; x++) vf[x] = rc[x] * k[0];
      for (int i = 1; i <= m; i++) {
        const float *restrict rm = M0 + (size_t)(y - i > 0 ? y - i : 0) * w;
        const float *restrict rp = M0 + (size_t)(y + i < h - 1 ? y + i : h - 1) * w;
        const float ki = k[i];
        for (int x = 0; x < w; x++) vf[x] += (rp[x] + rm[x]) * ki;
      }
      for (int x = 0; x < w; x++) v[x] = vf[x];
      for (int x = 1; x <= m; x++) {
        v[-x] = v[0];
        v[w - 1 + x] = v[w - 1];
      }
      double *restrict hsr = ws->hsum + (size_t)c * w;
      hs[c] = hsr;
      for (int x = 0; x < w; x++) hsr[x] = v[x] * k[0];
      for (int i = 1; i <= m; i++) {
        const double ki = k[i];
        const double *restrict vp = v + i, *restrict vm = v - i;
        for (int x = 0; x < w; x++) hsr[x] += ki * (vp[x] + vm[x]);
      }
      for (int x = 0; x < w; x++) hsr[x] = (float)hsr[x];   // OpenCV keeps hsum in float
    }
    solve_row(hs[0], hs[1], hs[2], hs[3], hs[4], 1.0, fx + (size_t)y * w, fy + (size_t)y * w, w);
  }
}

static void level_image(sp_flow_ws *ws, const float *img, const sp_flow_level *L) {
  sp_flow__blur_kernel(L->ksize, L->sigma, ws->bk);
  blur_sep(ws, img, ws->blur, ws->w, ws->h, ws->bk, L->ksize);
  resize1(ws, ws->blur, ws->w, ws->h, ws->lev, L->w, L->h);
}

void sp_flow_farneback(const sp_flow_cfg *cfg, sp_flow_ws *ws, const uint8_t *prev,
                       const uint8_t *next, float *flow) {
  SP_ASSERT(cfg->poly_n == ws->n && cfg->winsize / 2 == ws->m);
  const int w = ws->w, h = ws->h;
  for (int i = 0; i < w * h; i++) {
    ws->img0[i] = prev[i];
    ws->img1[i] = next[i];
  }
  int pw = 0, ph = 0;
  for (int k = ws->nlev; k >= 0; k--) {
    sp_flow_level L;
    sp_flow__level_geom(cfg, w, h, k, &L);
    const int n = L.w * L.h;
    if (k == ws->nlev) {
      memset(ws->fx, 0, sizeof(float) * n);
      memset(ws->fy, 0, sizeof(float) * n);
    } else {
      resize1(ws, ws->cx, pw, ph, ws->fx, L.w, L.h);
      resize1(ws, ws->cy, pw, ph, ws->fy, L.w, L.h);
      const float up = (float)(1.0 / cfg->pyr_scale);
      for (int i = 0; i < n; i++) {
        ws->fx[i] *= up;
        ws->fy[i] *= up;
      }
    }
    level_image(ws, ws->img0, &L);
    poly_exp(ws, ws->lev, L.w, L.h, ws->R0);
    level_image(ws, ws->img1, &L);
    poly_exp(ws, ws->lev, L.w, L.h, ws->R1);
    update_matrices(ws->R0, ws->R1, ws->fx, ws->fy, ws->M, L.w, L.h);
    for (int it = 0; it < cfg->iterations; it++) {
      if (cfg->gaussian)
        update_flow_gauss(ws, ws->M, ws->fx, ws->fy, L.w, L.h, cfg->winsize);
      else
        update_flow_box(ws, ws->M, ws->fx, ws->fy, L.w, L.h, cfg->winsize);
      if (it < cfg->iterations - 1) update_matrices(ws->R0, ws->R1, ws->fx, ws->fy, ws->M, L.w, L.h);
    }
    float *t = ws->cx;   // this level's flow becomes the coarse one
    ws->cx = ws->fx;
    ws->fx = t;
    t = ws->cy;
    ws->cy = ws->fy;
    ws->fy = t;
    pw = L.w;
    ph = L.h;
  }
  for (int i = 0; i < w * h; i++) {   // the finest level's flow, now in cx/cy, interleaved
    flow[2 * i] = ws->cx[i];
    flow[2 * i + 1] = ws->cy[i];
  }
}

double sp_flow_mean_mag(const float *flow, int w, int h) {
  double s = 0;
  for (int i = 0; i < w * h; i++) {
    double u = flow[2 * i], v = flow[2 * i + 1];
    s += sqrt(u * u + v * v);
  }
  return w > 0 && h > 0 ? s / ((double)w * h) : 0;
}
