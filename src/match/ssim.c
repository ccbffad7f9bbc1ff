/* ssim.c: structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004) on 8-bit gray frames.
 *
 * SSIM(x, y) = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)) with
 * local statistics under an 11x11 Gaussian window (sigma 1.5, normalised), population covariance,
 * C1 = (0.01 L)^2, C2 = (0.03 L)^2. Intensities are scaled to [0, 1] so L = 1. The frame score is
 * the mean over the (w - 10) x (h - 10) pixels whose window lies inside the frame, as Wang's
 * reference code ('valid' filtering) and scikit-image (which crops that border) do. */
#include <math.h>
#include <stdlib.h>

#include "core/log.h"
#include "match/match.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")   // vectorise the x loops (the project builds at -O2)
#endif

#define SSIM_R 5              // window radius: 11 taps
#define SSIM_N (2 * SSIM_R + 1)
#define SSIM_SIGMA 1.5
#define SSIM_C1 (0.01 * 0.01)
#define SSIM_C2 (0.03 * 0.03)

struct sp_ssim_ws {
  int w, h;
  float k[SSIM_N];   // normalised Gaussian taps
  float *in;         // (5 x h x w) a, b, a*a, b*b, a*b with a, b scaled to [0, 1]
  float *hs;         // (5 x h x ow) the same filtered horizontally; ow = w - 10
  float *vs;         // (6 x ow) one output row: the five filtered planes and the SSIM map
};

static void ssim_kernel(double *k) {
  double s = 0;
  for (int i = 0; i < SSIM_N; i++) {
    double x = i - SSIM_R;
    k[i] = exp(-x * x / (2 * SSIM_SIGMA * SSIM_SIGMA));
    s += k[i];
  }
  for (int i = 0; i < SSIM_N; i++) k[i] /= s;
}

sp_ssim_ws *sp_ssim_ws_new(int w, int h, char *err) {
  if (w < SSIM_N || h < SSIM_N) {
    sp_errf(err, "ssim: frame %dx%d is smaller than the %dx%d window", w, h, SSIM_N, SSIM_N);
    return NULL;
  }
  sp_ssim_ws *ws = calloc(1, sizeof *ws);
  int ow = w - 2 * SSIM_R;
  if (ws) {
    ws->in = malloc(sizeof(float) * 5 * (size_t)w * h);
    ws->hs = malloc(sizeof(float) * 5 * (size_t)h * ow);
    ws->vs = malloc(sizeof(float) * 6 * (size_t)ow);
  }
  if (!ws || !ws->in || !ws->hs || !ws->vs) {
    sp_ssim_ws_free(ws);
    sp_errf(err, "ssim: out of memory for %dx%d", w, h);
    return NULL;
  }
  ws->w = w;
  ws->h = h;
  double k[SSIM_N];
  ssim_kernel(k);
  for (int i = 0; i < SSIM_N; i++) ws->k[i] = (float)k[i];
  return ws;
}

void sp_ssim_ws_free(sp_ssim_ws *ws) {
  if (!ws) return;
  free(ws->in);
  free(ws->hs);
  free(ws->vs);
  free(ws);
}

static inline double ssim_pixel(double ma, double mb, double saa, double sbb, double sab) {
  return (2 * ma * mb + SSIM_C1) * (2 * sab + SSIM_C2) /
         ((ma * ma + mb * mb + SSIM_C1) * (saa + sbb + SSIM_C2));
}

/* separable: the five planes, a horizontal pass over every row, then a vertical pass that produces
 * one output row at a time; the map's row sums accumulate in double. Every inner loop runs over
 * contiguous x (vectorised). */
double sp_ssim_gray(sp_ssim_ws *ws, const uint8_t *a, const uint8_t *b) {
  const int w = ws->w, h = ws->h, ow = w - 2 * SSIM_R, oh = h - 2 * SSIM_R;
  const size_t P = (size_t)w * h, Q = (size_t)h * ow;
  const float *k = ws->k;
  const float inv = 1.0f / 255.0f;
  float *restrict pa = ws->in, *restrict pb = pa + P, *restrict paa = pb + P, *restrict pbb = paa + P,
                  *restrict pab = pbb + P;
  for (size_t i = 0; i < P; i++) {
    float va = a[i] * inv, vb = b[i] * inv;
    pa[i] = va;
    pb[i] = vb;
    paa[i] = va * va;
    pbb[i] = vb * vb;
    pab[i] = va * vb;
  }
  for (int c = 0; c < 5; c++)
    for (int y = 0; y < h; y++) {
      const float *restrict r = ws->in + c * P + (size_t)y * w;
      float *restrict o = ws->hs + c * Q + (size_t)y * ow;
      for (int x = 0; x < ow; x++) o[x] = k[0] * r[x];
      for (int t = 1; t < SSIM_N; t++) {
        const float kt = k[t];
        const float *restrict rt = r + t;
        for (int x = 0; x < ow; x++) o[x] += kt * rt[x];
      }
    }
  double total = 0;
  float *restrict vs = ws->vs, *restrict map = vs + 5 * (size_t)ow;
  for (int y = 0; y < oh; y++) {
    for (int c = 0; c < 5; c++) {
      float *restrict v = vs + (size_t)c * ow;
      const float *restrict hc = ws->hs + c * Q + (size_t)y * ow;
      for (int x = 0; x < ow; x++) v[x] = k[0] * hc[x];
      for (int t = 1; t < SSIM_N; t++) {
        const float kt = k[t];
        const float *restrict ht = hc + (size_t)t * ow;
        for (int x = 0; x < ow; x++) v[x] += kt * ht[x];
      }
    }
    const float *restrict ma = vs, *restrict mb = vs + ow, *restrict maa = mb + ow, *restrict mbb = maa + ow,
                          *restrict mab = mbb + ow;
    const float c1 = (float)SSIM_C1, c2 = (float)SSIM_C2;
    for (int x = 0; x < ow; x++) {
      float saa = maa[x] - ma[x] * ma[x], sbb = mbb[x] - mb[x] * mb[x], sab = mab[x] - ma[x] * mb[x];
      map[x] = (2 * ma[x] * mb[x] + c1) * (2 * sab + c2) /
               ((ma[x] * ma[x] + mb[x] * mb[x] + c1) * (saa + sbb + c2));
    }
    double row = 0;
    for (int x = 0; x < ow; x++) row += map[x];
    total += row;
  }
  return total / ((double)ow * oh);
}

double sp_ssim_gray_ref(const uint8_t *a, const uint8_t *b, int w, int h) {
  double k[SSIM_N];
  ssim_kernel(k);
  double total = 0;
  long n = 0;
  for (int y = SSIM_R; y < h - SSIM_R; y++)
    for (int x = SSIM_R; x < w - SSIM_R; x++) {
      double ma = 0, mb = 0, maa = 0, mbb = 0, mab = 0;
      for (int dy = -SSIM_R; dy <= SSIM_R; dy++)
        for (int dx = -SSIM_R; dx <= SSIM_R; dx++) {
          double wt = k[dy + SSIM_R] * k[dx + SSIM_R];
          double va = a[(y + dy) * w + x + dx] / 255.0, vb = b[(y + dy) * w + x + dx] / 255.0;
          ma += wt * va;
          mb += wt * vb;
          maa += wt * va * va;
          mbb += wt * vb * vb;
          mab += wt * va * vb;
        }
      total += ssim_pixel(ma, mb, maa - ma * ma, mbb - mb * mb, mab - ma * mb);
      n++;
    }
  return n ? total / n : 0;
}
