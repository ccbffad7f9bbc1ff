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

/* ---- the fast path ---- */

struct sp_flow_ws {
  int w, h, nlev;
  int n;                   // poly_n
  float *img0, *img1;      // (h x w) frames as float
  float *blur, *tmp;       // (h x w) blurred frame, separable-blur scratch
  float *lev;              // (h x w) one level's image
  float *R0, *R1;          // (h x w x 5) expansions: b_y, b_x, a_yy, a_xx, a_xy
  float *M;                // (h x w x 5) G_yy, G_xy, G_xx, h_y, h_x
  float *flowa, *flowb;    // (h x w x 2) flow of the coarser and current level
  float *rowbuf;           // ((w + 2 n) x 3)
  double *vsum;            // ((w + 2 m + 2) x 5), m = winsize / 2
  float *hsum;             // (w x 5)
  double *bk;              // (max blur ksize) pyramid blur taps
  int bk_cap;
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
  ws->nlev = sp_flow__nlevels(cfg, w, h);
  int m = cfg->winsize / 2;
  sp_flow_level L;
  sp_flow__level_geom(cfg, w, h, ws->nlev, &L);
  ws->bk_cap = L.ksize;
  size_t px = (size_t)w * h;
  float *f = malloc(sizeof(float) * (px * (5 + 5 + 5 + 2 + 2 + 5) + (size_t)(w + 2 * ws->n) * 3 +
                                     (size_t)w * 5));
  ws->vsum = malloc(sizeof(double) * ((size_t)(w + 2 * m + 2) * 5 + ws->bk_cap));
  if (!f || !ws->vsum) {
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
  ws->R0 = f; f += 5 * px;
  ws->R1 = f; f += 5 * px;
  ws->M = f; f += 5 * px;
  ws->flowa = f; f += 2 * px;
  ws->flowb = f; f += 2 * px;
  ws->rowbuf = f; f += (size_t)(w + 2 * ws->n) * 3;
  ws->hsum = f;
  ws->bk = ws->vsum + (size_t)(w + 2 * m + 2) * 5;
  sp_flow__poly_setup(ws->n, cfg->poly_sigma, ws->g, ws->xg, ws->xxg, ws->ig);
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
  free(ws);
}

static inline int reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

/* separable Gaussian blur (h x w) with reflect-101 borders */
static void blur_sep(const float *src, float *dst, float *tmp, int w, int h, const double *k, int ks) {
  int r = ks / 2;
  for (int y = 0; y < h; y++) {
    const float *s = src + (size_t)y * w;
    float *t = tmp + (size_t)y * w;
    for (int x = 0; x < w; x++) {
      float acc = 0;
      if (x >= r && x < w - r)
        for (int i = 0; i < ks; i++) acc += (float)k[i] * s[x - r + i];
      else
        for (int i = 0; i < ks; i++) acc += (float)k[i] * s[reflect101(x - r + i, w)];
      t[x] = acc;
    }
  }
  for (int y = 0; y < h; y++) {
    float *d = dst + (size_t)y * w;
    for (int x = 0; x < w; x++) d[x] = 0;
    for (int i = 0; i < ks; i++) {
      const float *t = tmp + (size_t)reflect101(y - r + i, h) * w;
      float ki = (float)k[i];
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

/* polynomial expansion of src (h x w) into R (h x w x 5): separable correlations, replicated borders */
static void poly_exp(sp_flow_ws *ws, const float *src, int w, int h, float *R) {
  const int n = ws->n;
  const double *g = ws->g + n, *xg = ws->xg + n, *xxg = ws->xxg + n;
  float *row = ws->rowbuf + 3 * n;
  for (int y = 0; y < h; y++) {
    const float *s0 = src + (size_t)y * w;
    /* vertical: sum g(k) I, sum k g(k) I, sum k^2 g(k) I over rows y +- k */
    for (int x = 0; x < w; x++) {
      row[3 * x] = s0[x] * (float)g[0];
      row[3 * x + 1] = row[3 * x + 2] = 0;
    }
    for (int k = 1; k <= n; k++) {
      const float *sm = src + (size_t)(y - k < 0 ? 0 : y - k) * w;
      const float *sp = src + (size_t)(y + k > h - 1 ? h - 1 : y + k) * w;
      float g0 = (float)g[k], g1 = (float)xg[k], g2 = (float)xxg[k];
      for (int x = 0; x < w; x++) {
        float p = sm[x] + sp[x];
        row[3 * x] += g0 * p;
        row[3 * x + 1] += g1 * (sp[x] - sm[x]);
        row[3 * x + 2] += g2 * p;
      }
    }
    for (int x = 0; x < 3 * n; x++) {   // replicate the first and last triples
      row[-1 - x] = row[2 - x % 3];
      row[3 * w + x] = row[3 * (w - 1) + x % 3];
    }
    /* horizontal */
    float *d = R + (size_t)y * w * 5;
    for (int x = 0; x < w; x++) {
      float b1 = row[3 * x] * (float)g[0], b2 = 0, b3 = row[3 * x + 1] * (float)g[0], b4 = 0,
            b5 = row[3 * x + 2] * (float)g[0], b6 = 0;
      for (int k = 1; k <= n; k++) {
        const float *rp = row + 3 * (x + k), *rm = row + 3 * (x - k);
        float t = rp[0] + rm[0];
        b1 += t * (float)g[k];
        b4 += t * (float)xxg[k];
        b2 += (rp[0] - rm[0]) * (float)xg[k];
        b3 += (rp[1] + rm[1]) * (float)g[k];
        b6 += (rp[1] - rm[1]) * (float)xg[k];
        b5 += (rp[2] + rm[2]) * (float)g[k];
      }
      d[5 * x + 0] = (float)(b3 * ws->ig[0]);                   // b_y
      d[5 * x + 1] = (float)(b2 * ws->ig[0]);                   // b_x
      d[5 * x + 2] = (float)(b1 * ws->ig[1] + b5 * ws->ig[2]);  // a_yy
      d[5 * x + 3] = (float)(b1 * ws->ig[1] + b4 * ws->ig[2]);  // a_xx
      d[5 * x + 4] = (float)(b6 * ws->ig[3]);                   // a_xy (coefficient of xy)
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

/* per-pixel G = A^T A and h = A^T db from the two expansions and the current flow */
static void update_matrices(const float *R0, const float *R1, const float *flow, float *M, int w, int h) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      const float *r0 = R0 + ((size_t)y * w + x) * 5;
      float dx = flow[((size_t)y * w + x) * 2], dy = flow[((size_t)y * w + x) * 2 + 1];
      float fx = x + dx, fy = y + dy;
      int x1 = (int)floorf(fx), y1 = (int)floorf(fy);
      float r2, r3, r4, r5, r6;
      fx -= x1;
      fy -= y1;
      if ((unsigned)x1 < (unsigned)(w - 1) && (unsigned)y1 < (unsigned)(h - 1)) {
        const float *p = R1 + ((size_t)y1 * w + x1) * 5, *q = p + (size_t)w * 5;
        float a00 = (1 - fx) * (1 - fy), a01 = fx * (1 - fy), a10 = (1 - fx) * fy, a11 = fx * fy;
        r2 = a00 * p[0] + a01 * p[5] + a10 * q[0] + a11 * q[5];
        r3 = a00 * p[1] + a01 * p[6] + a10 * q[1] + a11 * q[6];
        r4 = a00 * p[2] + a01 * p[7] + a10 * q[2] + a11 * q[7];
        r5 = a00 * p[3] + a01 * p[8] + a10 * q[3] + a11 * q[8];
        r6 = a00 * p[4] + a01 * p[9] + a10 * q[4] + a11 * q[9];
        r4 = (r0[2] + r4) * 0.5f;
        r5 = (r0[3] + r5) * 0.5f;
        r6 = (r0[4] + r6) * 0.25f;   // mean, halved: the off-diagonal of A is a_xy / 2
      } else {                       // x + d outside: no second frame, A from the first only
        r2 = r3 = 0;
        r4 = r0[2];
        r5 = r0[3];
        r6 = r0[4] * 0.5f;
      }
      r2 = (r0[0] - r2) * 0.5f;
      r3 = (r0[1] - r3) * 0.5f;
      r2 += r4 * dy + r6 * dx;
      r3 += r6 * dy + r5 * dx;
      if (x < 5 || y < 5 || x >= w - 5 || y >= h - 5) {
        float s = sp_flow__border_scale(x, y, w, h);
        r2 *= s; r3 *= s; r4 *= s; r5 *= s; r6 *= s;
      }
      float *m = M + ((size_t)y * w + x) * 5;
      m[0] = r4 * r4 + r6 * r6;   // G_yy
      m[1] = (r4 + r5) * r6;      // G_xy
      m[2] = r5 * r5 + r6 * r6;   // G_xx
      m[3] = r4 * r2 + r6 * r3;   // h_y
      m[4] = r6 * r2 + r5 * r3;   // h_x
    }
}

static inline void solve(double g11, double g12, double g22, double h1, double h2, float *flow) {
  double idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3);
  flow[0] = (float)((g11 * h2 - g12 * h1) * idet);
  flow[1] = (float)((g22 * h1 - g12 * h2) * idet);
}

/* box average of M over winsize x winsize (replicated borders) by running sums, then solve */
static void update_flow_box(sp_flow_ws *ws, const float *M, float *flow, int w, int h, int bs) {
  int m = bs / 2;
  double scale = 1.0 / ((double)bs * bs);
  double *vsum = ws->vsum + (size_t)(m + 1) * 5;
  for (int x = 0; x < w * 5; x++) vsum[x] = M[x] * (double)(m + 2);
  for (int y = 1; y < m; y++) {
    const float *r = M + (size_t)(y < h - 1 ? y : h - 1) * w * 5;
    for (int x = 0; x < w * 5; x++) vsum[x] += r[x];
  }
  for (int y = 0; y < h; y++) {
    const float *r0 = M + (size_t)(y - m - 1 > 0 ? y - m - 1 : 0) * w * 5;
    const float *r1 = M + (size_t)(y + m < h - 1 ? y + m : h - 1) * w * 5;
    for (int x = 0; x < w * 5; x++) vsum[x] += r1[x] - r0[x];
    for (int x = 0; x < (m + 1) * 5; x++) {
      vsum[-1 - x] = vsum[4 - x % 5];
      vsum[w * 5 + x] = vsum[(w - 1) * 5 + x % 5];
    }
    double s[5];
    for (int c = 0; c < 5; c++) s[c] = vsum[c] * (m + 2);
    for (int x = 1; x < m; x++)
      for (int c = 0; c < 5; c++) s[c] += vsum[x * 5 + c];
    float *f = flow + (size_t)y * w * 2;
    for (int x = 0; x < w; x++) {
      for (int c = 0; c < 5; c++) s[c] += vsum[(x + m) * 5 + c] - vsum[(x - m - 1) * 5 + c];
      solve(s[0] * scale, s[1] * scale, s[2] * scale, s[3] * scale, s[4] * scale, f + 2 * x);
    }
  }
}

/* Gaussian average (sigma 0.3 m) of M, separable, replicated borders, then solve */
static void update_flow_gauss(sp_flow_ws *ws, const float *M, float *flow, int w, int h, int bs) {
  int m = bs / 2;
  const double *k = ws->wk;
  double *vsum = ws->vsum + (size_t)(m + 1) * 5;
  float *hsum = ws->hsum;
  for (int y = 0; y < h; y++) {
    const float *c = M + (size_t)y * w * 5;
    for (int x = 0; x < w * 5; x++) vsum[x] = c[x] * (float)k[0];
    for (int i = 1; i <= m; i++) {
      const float *rm = M + (size_t)(y - i > 0 ? y - i : 0) * w * 5;
      const float *rp = M + (size_t)(y + i < h - 1 ? y + i : h - 1) * w * 5;
      float ki = (float)k[i];
      for (int x = 0; x < w * 5; x++) vsum[x] += (rp[x] + rm[x]) * ki;
    }
    for (int x = 0; x < m * 5; x++) {
      vsum[-1 - x] = vsum[4 - x % 5];
      vsum[w * 5 + x] = vsum[(w - 1) * 5 + x % 5];
    }
    for (int x = 0; x < w * 5; x++) {
      double s0 = vsum[x] * k[0];
      for (int i = 1; i <= m; i++) s0 += k[i] * (vsum[x - i * 5] + vsum[x + i * 5]);
      hsum[x] = (float)s0;
    }
    float *f = flow + (size_t)y * w * 2;
    for (int x = 0; x < w; x++)
      solve(hsum[5 * x], hsum[5 * x + 1], hsum[5 * x + 2], hsum[5 * x + 3], hsum[5 * x + 4], f + 2 * x);
  }
}

static void level_image(sp_flow_ws *ws, const float *img, const sp_flow_level *L) {
  sp_flow__blur_kernel(L->ksize, L->sigma, ws->bk);
  blur_sep(img, ws->blur, ws->tmp, ws->w, ws->h, ws->bk, L->ksize);
  sp_flow__resize(ws->blur, ws->w, ws->h, ws->lev, L->w, L->h, 1);
}

void sp_flow_farneback(const sp_flow_cfg *cfg, sp_flow_ws *ws, const uint8_t *prev,
                       const uint8_t *next, float *flow) {
  SP_ASSERT(cfg->poly_n == ws->n);
  const int w = ws->w, h = ws->h;
  for (int i = 0; i < w * h; i++) {
    ws->img0[i] = prev[i];
    ws->img1[i] = next[i];
  }
  float *cur = ws->flowa, *coarse = ws->flowb;
  int pw = 0, ph = 0;
  for (int k = ws->nlev; k >= 0; k--) {
    sp_flow_level L;
    sp_flow__level_geom(cfg, w, h, k, &L);
    float *fl = k == 0 ? flow : cur;
    if (k == ws->nlev) {
      memset(fl, 0, sizeof(float) * 2 * L.w * L.h);
    } else {
      sp_flow__resize(coarse, pw, ph, fl, L.w, L.h, 2);
      float up = (float)(1.0 / cfg->pyr_scale);
      for (int i = 0; i < 2 * L.w * L.h; i++) fl[i] *= up;
    }
    level_image(ws, ws->img0, &L);
    poly_exp(ws, ws->lev, L.w, L.h, ws->R0);
    level_image(ws, ws->img1, &L);
    poly_exp(ws, ws->lev, L.w, L.h, ws->R1);
    update_matrices(ws->R0, ws->R1, fl, ws->M, L.w, L.h);
    for (int it = 0; it < cfg->iterations; it++) {
      if (cfg->gaussian)
        update_flow_gauss(ws, ws->M, fl, L.w, L.h, cfg->winsize);
      else
        update_flow_box(ws, ws->M, fl, L.w, L.h, cfg->winsize);
      if (it < cfg->iterations - 1) update_matrices(ws->R0, ws->R1, fl, ws->M, L.w, L.h);
    }
    if (k > 0) {   // this level's flow becomes the coarse one
      float *t = coarse;
      coarse = fl;
      cur = t;
      pw = L.w;
      ph = L.h;
    }
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
