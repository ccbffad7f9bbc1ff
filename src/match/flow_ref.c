/* flow_ref.c: naive twin of flow.c for the tests. The same method written the plain way, in double:
 * direct 2D blur and window sums instead of separable passes and running sums, and the polynomial
 * expansion as a full 6x6 weighted least-squares solve per pixel instead of the closed-form inverse.
 * Allocates per call; slow; never used on a hot path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "match/flow_internal.h"
#include "match/match.h"

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static int refl101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

/* invert a 6x6 matrix by Gauss-Jordan with partial pivoting */
static void inv6(const double A[6][6], double Ai[6][6]) {
  double a[6][12];
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 12; j++) a[i][j] = j < 6 ? A[i][j] : (j - 6 == i);
  for (int c = 0; c < 6; c++) {
    int p = c;
    for (int r = c + 1; r < 6; r++)
      if (fabs(a[r][c]) > fabs(a[p][c])) p = r;
    for (int j = 0; j < 12; j++) {
      double t = a[c][j];
      a[c][j] = a[p][j];
      a[p][j] = t;
    }
    double d = a[c][c];
    for (int j = 0; j < 12; j++) a[c][j] /= d;
    for (int r = 0; r < 6; r++)
      if (r != c) {
        double f = a[r][c];
        for (int j = 0; j < 12; j++) a[r][j] -= f * a[c][j];
      }
  }
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 6; j++) Ai[i][j] = a[i][j + 6];
}

/* weighted least-squares quadratic fit around every pixel; R (h x w x 5): b_y, b_x, a_yy, a_xx, a_xy */
static void poly_exp_ref(const double *I, int w, int h, int n, double sigma, double *R) {
  if (sigma < 1.19e-7) sigma = n * 0.3;
  double g[64], s = 0;
  for (int u = -n; u <= n; u++) s += g[u + n] = exp(-u * u / (2 * sigma * sigma));
  for (int u = -n; u <= n; u++) g[u + n] /= s;
  double G[6][6] = {{0}}, Gi[6][6];
  for (int v = -n; v <= n; v++)
    for (int u = -n; u <= n; u++) {
      double phi[6] = {1, u, v, (double)u * u, (double)v * v, (double)u * v}, wt = g[u + n] * g[v + n];
      for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) G[i][j] += wt * phi[i] * phi[j];
    }
  inv6(G, Gi);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double b[6] = {0};
      for (int v = -n; v <= n; v++)
        for (int u = -n; u <= n; u++) {
          double val = I[clampi(y + v, 0, h - 1) * w + clampi(x + u, 0, w - 1)];
          double phi[6] = {1, u, v, (double)u * u, (double)v * v, (double)u * v};
          double wt = g[u + n] * g[v + n] * val;
          for (int i = 0; i < 6; i++) b[i] += wt * phi[i];
        }
      double c[6] = {0};
      for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) c[i] += Gi[i][j] * b[j];
      double *r = R + ((size_t)y * w + x) * 5;
      r[0] = c[2];   // y
      r[1] = c[1];   // x
      r[2] = c[4];   // y^2
      r[3] = c[3];   // x^2
      r[4] = c[5];   // xy
    }
}

static double bilin(const double *src, int sw, int sh, int c, int ch, double fx, double fy) {
  int x0 = (int)floor(fx), y0 = (int)floor(fy);
  fx -= x0;
  fy -= y0;
  if (x0 < 0) x0 = 0, fx = 0;
  if (x0 >= sw - 1) x0 = sw - 1, fx = 0;
  if (y0 < 0) y0 = 0, fy = 0;
  if (y0 >= sh - 1) y0 = sh - 1, fy = 0;
  int x1 = x0 + 1 < sw ? x0 + 1 : x0, y1 = y0 + 1 < sh ? y0 + 1 : y0;
  return (src[((size_t)y0 * sw + x0) * c + ch] * (1 - fx) + src[((size_t)y0 * sw + x1) * c + ch] * fx) * (1 - fy) +
         (src[((size_t)y1 * sw + x0) * c + ch] * (1 - fx) + src[((size_t)y1 * sw + x1) * c + ch] * fx) * fy;
}

static void resize_ref(const double *src, int sw, int sh, double *dst, int dw, int dh, int c) {
  for (int y = 0; y < dh; y++)
    for (int x = 0; x < dw; x++)
      for (int ch = 0; ch < c; ch++)
        dst[((size_t)y * dw + x) * c + ch] = bilin(src, sw, sh, c, ch, (x + 0.5) * sw / dw - 0.5,
                                                   (y + 0.5) * sh / dh - 0.5);
}

/* the level image: full-resolution frame blurred (direct 2D, reflect-101) and resized */
static void level_ref(const uint8_t *img, int w, int h, const sp_flow_level *L, double *tmp, double *out) {
  double k[256];
  sp_flow__blur_kernel(L->ksize, L->sigma, k);
  int r = L->ksize / 2;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double s = 0;
      for (int v = -r; v <= r; v++)
        for (int u = -r; u <= r; u++)
          s += k[v + r] * k[u + r] * img[refl101(y + v, h) * w + refl101(x + u, w)];
      tmp[y * w + x] = s;
    }
  resize_ref(tmp, w, h, out, L->w, L->h, 1);
}

static void matrices_ref(const double *R0, const double *R1, const double *flow, double *M, int w, int h) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      const double *r0 = R0 + ((size_t)y * w + x) * 5;
      double dx = flow[(y * w + x) * 2], dy = flow[(y * w + x) * 2 + 1];
      double fx = x + dx, fy = y + dy, r1[5];
      int inside = floor(fx) >= 0 && floor(fx) < w - 1 && floor(fy) >= 0 && floor(fy) < h - 1;
      double Ayy, Axx, Axy, by, bx;
      if (inside) {
        for (int c = 0; c < 5; c++) r1[c] = bilin(R1, w, h, 5, c, fx, fy);
        Ayy = (r0[2] + r1[2]) / 2;
        Axx = (r0[3] + r1[3]) / 2;
        Axy = (r0[4] + r1[4]) / 4;
        by = -(r1[0] - r0[0]) / 2;
        bx = -(r1[1] - r0[1]) / 2;
      } else {
        Ayy = r0[2];
        Axx = r0[3];
        Axy = r0[4] / 2;
        by = r0[0] / 2;
        bx = r0[1] / 2;
      }
      by += Ayy * dy + Axy * dx;
      bx += Axy * dy + Axx * dx;
      double s = sp_flow__border_scale(x, y, w, h);
      Ayy *= s; Axx *= s; Axy *= s; by *= s; bx *= s;
      double *m = M + ((size_t)y * w + x) * 5;
      m[0] = Ayy * Ayy + Axy * Axy;
      m[1] = (Ayy + Axx) * Axy;
      m[2] = Axx * Axx + Axy * Axy;
      m[3] = Ayy * by + Axy * bx;
      m[4] = Axy * by + Axx * bx;
    }
}

/* window average (direct sums, replicated borders) and the 2x2 solve */
static void flow_solve_ref(const double *M, double *flow, int w, int h, int bs, int gaussian) {
  int m = bs / 2;
  double k[128];
  if (gaussian) {
    double sg = m * 0.3, s = 0;
    for (int i = -m; i <= m; i++) s += k[i + m] = i ? exp(-i * i / (2 * sg * sg)) : 1;
    for (int i = -m; i <= m; i++) k[i + m] /= s;
  } else {
    for (int i = -m; i <= m; i++) k[i + m] = 1.0 / bs;
  }
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double s[5] = {0};
      for (int v = -m; v <= m; v++)
        for (int u = -m; u <= m; u++) {
          const double *p = M + ((size_t)clampi(y + v, 0, h - 1) * w + clampi(x + u, 0, w - 1)) * 5;
          double wt = k[v + m] * k[u + m];
          for (int c = 0; c < 5; c++) s[c] += wt * p[c];
        }
      double idet = 1.0 / (s[0] * s[2] - s[1] * s[1] + 1e-3);
      flow[(y * w + x) * 2] = (s[0] * s[4] - s[1] * s[3]) * idet;
      flow[(y * w + x) * 2 + 1] = (s[2] * s[3] - s[1] * s[4]) * idet;
    }
}

int sp_flow_farneback_ref(const sp_flow_cfg *cfg, const uint8_t *prev, const uint8_t *next, int w,
                          int h, float *flow, char *err) {
  if (sp_flow_cfg_check(cfg, err)) return -1;
  if (w < 8 || h < 8) return sp_errf(err, "flow: frame %dx%d is smaller than 8x8", w, h);
  if (cfg->winsize / 2 > 63 || cfg->poly_n > 31) return sp_errf(err, "flow ref: window too large");
  size_t px = (size_t)w * h;
  double *buf = malloc(sizeof(double) * px * (1 + 1 + 1 + 5 + 5 + 5 + 2 + 2));
  if (!buf) return sp_errf(err, "flow ref: out of memory");
  double *tmp = buf, *I0 = tmp + px, *I1 = I0 + px, *R0 = I1 + px, *R1 = R0 + 5 * px, *M = R1 + 5 * px,
         *fl = M + 5 * px, *coarse = fl + 2 * px;
  int nlev = sp_flow__nlevels(cfg, w, h), pw = 0, ph = 0;
  for (int k = nlev; k >= 0; k--) {
    sp_flow_level L;
    sp_flow__level_geom(cfg, w, h, k, &L);
    if (k == nlev) {
      memset(fl, 0, sizeof(double) * 2 * L.w * L.h);
    } else {
      resize_ref(coarse, pw, ph, fl, L.w, L.h, 2);
      for (int i = 0; i < 2 * L.w * L.h; i++) fl[i] /= cfg->pyr_scale;
    }
    level_ref(prev, w, h, &L, tmp, I0);
    level_ref(next, w, h, &L, tmp, I1);
    poly_exp_ref(I0, L.w, L.h, cfg->poly_n, cfg->poly_sigma, R0);
    poly_exp_ref(I1, L.w, L.h, cfg->poly_n, cfg->poly_sigma, R1);
    for (int it = 0; it < cfg->iterations; it++) {
      matrices_ref(R0, R1, fl, M, L.w, L.h);
      flow_solve_ref(M, fl, L.w, L.h, cfg->winsize, cfg->gaussian);
    }
    memcpy(coarse, fl, sizeof(double) * 2 * L.w * L.h);
    pw = L.w;
    ph = L.h;
  }
  for (size_t i = 0; i < 2 * px; i++) flow[i] = (float)fl[i];
  free(buf);
  return 0;
}
