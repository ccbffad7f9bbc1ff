/* block.c: block-wise intensity statistics and the shift of the intensity centre of mass.
 *
 * The frame is cut into grid x grid blocks (block edges at floor(i w / grid)). With m the frame's
 * mean intensity, and for block i the mean mu and standard deviation s (population), in frames a, b:
 *   mean part  exp(-D / mean_scale),  D = (1/N) sum_i |(mu_a,i - m_a) - (mu_b,i - m_b)|  (gray levels)
 *   var part   (1/N) sum_i (2 s_a,i s_b,i + C) / (s_a,i^2 + s_b,i^2 + C),  C = (0.03 * 255)^2
 *              (SSIM's contrast term per block: 1 when the spreads agree)
 *   com part   exp(-d / com_scale_px), d = shift of the intensity centre of mass once the two
 *              frames' mean brightness is matched:
 *              d = | sum_p ((I_a - m_a) - (I_b - m_b))(p) (x_p, y_p) | / (N (m_a + m_b) / 2)
 * and the block score is the mean of the three, in [0, 1]. Block means are taken relative to the
 * frame mean and the centre of mass after matching the mean brightness, so a global brightness
 * offset (as between a render and a generated frame) changes neither: a plain intensity centre of
 * mass moved by 0.65 px under a 2.5 gray-level offset on a benchmark render, where the gripper
 * moves it by ~0.02 px per px (docs/match.md). Both stay linear in the intensities, so zero-mean
 * noise and symmetric blur average out. Global brightness is left to SSIM's luminance term.
 * Integer sums (exact). */
#include <math.h>
#include <stdint.h>

#include "core/log.h"
#include "match/match.h"

#define BLOCK_MAX_GRID 64
#define BLOCK_C ((0.03 * 255) * (0.03 * 255))

typedef struct {
  uint64_t s[BLOCK_MAX_GRID * BLOCK_MAX_GRID], ss[BLOCK_MAX_GRID * BLOCK_MAX_GRID];
  double mean;     // frame mean
  double mx, my;   // first moments sum I x / N, sum I y / N
} block_stats;

static void stats(const uint8_t *img, int w, int h, int grid, const int *bxof, block_stats *st) {
  for (int i = 0; i < grid * grid; i++) st->s[i] = st->ss[i] = 0;
  uint64_t tot = 0, sx = 0, sy = 0;
  for (int y = 0; y < h; y++) {
    const uint8_t *r = img + (size_t)y * w;
    int by = (int)((int64_t)y * grid / h);
    uint64_t *s = st->s + by * grid, *ss = st->ss + by * grid;
    uint64_t rs = 0;
    for (int x = 0; x < w; x++) {
      uint32_t v = r[x];
      int bx = bxof[x];
      s[bx] += v;
      ss[bx] += v * v;
      rs += v;
      sx += (uint64_t)v * x;
    }
    tot += rs;
    sy += rs * y;
  }
  const double n = (double)w * h;
  st->mean = tot / n;
  st->mx = sx / n;
  st->my = sy / n;
}

double sp_block_score(const uint8_t *a, const uint8_t *b, int w, int h, int grid, double mean_scale,
                      double com_scale_px, sp_block_parts *parts) {
  SP_ASSERT(grid >= 1 && grid <= BLOCK_MAX_GRID && grid <= w && grid <= h && com_scale_px > 0 && mean_scale > 0);
  static _Thread_local block_stats sa, sb;   // 128 KB: kept off the stack, no allocation
  int bxof[4096];
  SP_ASSERT(w <= 4096);
  for (int x = 0; x < w; x++) bxof[x] = (int)((int64_t)x * grid / w);
  stats(a, w, h, grid, bxof, &sa);
  stats(b, w, h, grid, bxof, &sb);
  double dmean = 0, svar = 0;
  for (int by = 0; by < grid; by++) {
    int ny = (int)(((int64_t)(by + 1) * h + grid - 1) / grid) - (int)(((int64_t)by * h + grid - 1) / grid);
    for (int bx = 0; bx < grid; bx++) {
      int nx = (int)(((int64_t)(bx + 1) * w + grid - 1) / grid) - (int)(((int64_t)bx * w + grid - 1) / grid);
      double n = (double)nx * ny;
      int i = by * grid + bx;
      double ma = sa.s[i] / n, mb = sb.s[i] / n;
      double va = sa.ss[i] / n - ma * ma, vb = sb.ss[i] / n - mb * mb;
      if (va < 0) va = 0;
      if (vb < 0) vb = 0;
      dmean += fabs((ma - sa.mean) - (mb - sb.mean));
      svar += (2 * sqrt(va * vb) + BLOCK_C) / (va + vb + BLOCK_C);
    }
  }
  double nb = (double)grid * grid;
  sp_block_parts p;
  p.mean_diff = dmean / nb;
  p.mean = exp(-p.mean_diff / mean_scale);
  p.var = svar / nb;
  /* brightness-matched centre-of-mass shift: first moment of the mean-removed difference */
  const double mm = (sa.mean + sb.mean) / 2, cx0 = (w - 1) / 2.0, cy0 = (h - 1) / 2.0;
  const double dx = sa.mx - sb.mx - (sa.mean - sb.mean) * cx0, dy = sa.my - sb.my - (sa.mean - sb.mean) * cy0;
  p.com_shift_px = mm > 0 ? hypot(dx, dy) / mm : 0;
  p.com = exp(-p.com_shift_px / com_scale_px);
  if (parts) *parts = p;
  return (p.mean + p.var + p.com) / 3;
}
