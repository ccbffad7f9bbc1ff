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

#define SSIM_R 5              // window radius: 11 taps
#define SSIM_N (2 * SSIM_R + 1)
#define SSIM_SIGMA 1.5
#define SSIM_C1 (0.01 * 0.01)
#define SSIM_C2 (0.03 * 0.03)

struct sp_ssim_ws {
  int w, h;
  float k[SSIM_N];   // normalised Gaussian taps
  float *fa, *fb;    // (h x w) frames scaled to [0, 1]
  float *hs;         // (5 x h x ow) horizontally filtered a, b, aa, bb, ab; ow = w - 10
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
    ws->fa = malloc(sizeof(float) * (size_t)w * h * 2);
    ws->hs = malloc(sizeof(float) * 5 * (size_t)h * ow);
  }
  if (!ws || !ws->fa || !ws->hs) {
    sp_ssim_ws_free(ws);
    sp_errf(err, "ssim: out of memory for %dx%d", w, h);
    return NULL;
  }
  ws->fb = ws->fa + (size_t)w * h;
  ws->w = w;
  ws->h = h;
  double k[SSIM_N];
  ssim_kernel(k);
  for (int i = 0; i < SSIM_N; i++) ws->k[i] = (float)k[i];
  return ws;
}

void sp_ssim_ws_free(sp_ssim_ws *ws) {
  if (!ws) return;
  free(ws->fa);
  free(ws->hs);
  free(ws);
}

static inline double ssim_pixel(double ma, double mb, double saa, double sbb, double sab) {
  return (2 * ma * mb + SSIM_C1) * (2 * sab + SSIM_C2) /
         ((ma * ma + mb * mb + SSIM_C1) * (saa + sbb + SSIM_C2));
}

/* separable: horizontal pass of the five products over every row, then a vertical pass that
 * produces one output row at a time and accumulates the SSIM map's sum in double */
double sp_ssim_gray(sp_ssim_ws *ws, const uint8_t *a, const uint8_t *b) {
  const int w = ws->w, h = ws->h, ow = w - 2 * SSIM_R, oh = h - 2 * SSIM_R;
  const float *k = ws->k;
  const float inv = 1.0f / 255.0f;
  for (int i = 0; i < w * h; i++) {
    ws->fa[i] = a[i] * inv;
    ws->fb[i] = b[i] * inv;
  }
  const size_t plane = (size_t)h * ow;
  float *ha = ws->hs, *hb = ha + plane, *haa = hb + plane, *hbb = haa + plane, *hab = hbb + plane;
  for (int y = 0; y < h; y++) {
    const float *ra = ws->fa + (size_t)y * w, *rb = ws->fb + (size_t)y * w;
    float *oa = ha + (size_t)y * ow, *ob = hb + (size_t)y * ow, *oaa = haa + (size_t)y * ow,
          *obb = hbb + (size_t)y * ow, *oab = hab + (size_t)y * ow;
    for (int x = 0; x < ow; x++) {
      float sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
      for (int t = 0; t < SSIM_N; t++) {
        float va = ra[x + t], vb = rb[x + t], kt = k[t];
        sa += kt * va;
        sb += kt * vb;
        saa += kt * va * va;
        sbb += kt * vb * vb;
        sab += kt * va * vb;
      }
      oa[x] = sa; ob[x] = sb; oaa[x] = saa; obb[x] = sbb; oab[x] = sab;
    }
  }
  double total = 0;
  for (int y = 0; y < oh; y++) {
    double row = 0;
    for (int x = 0; x < ow; x++) {
      float ma = 0, mb = 0, maa = 0, mbb = 0, mab = 0;
      for (int t = 0; t < SSIM_N; t++) {
        size_t o = (size_t)(y + t) * ow + x;
        float kt = k[t];
        ma += kt * ha[o];
        mb += kt * hb[o];
        maa += kt * haa[o];
        mbb += kt * hbb[o];
        mab += kt * hab[o];
      }
      float saa = maa - ma * ma, sbb = mbb - mb * mb, sab = mab - ma * mb;
      row += (2 * ma * mb + (float)SSIM_C1) * (2 * sab + (float)SSIM_C2) /
             ((ma * ma + mb * mb + (float)SSIM_C1) * (saa + sbb + (float)SSIM_C2));
    }
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
