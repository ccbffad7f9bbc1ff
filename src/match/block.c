/* block.c: block-wise intensity statistics and the shift of the intensity centre of mass.
 *
 * The frame is cut into grid x grid blocks (block edges at floor(i w / grid)). For block i with
 * means mu and standard deviations s (population) in frames a and b:
 *   mean part  exp(-D / mean_scale), D = (1/N) sum_i |mu_a,i - mu_b,i| in gray levels
 *   var part   (1/N) sum_i (2 s_a,i s_b,i + C) / (s_a,i^2 + s_b,i^2 + C),  C = (0.03 * 255)^2
 *              (SSIM's contrast term per block: 1 when the spreads agree)
 *   com part   exp(-d / com_scale_px), d = distance between the intensity-weighted centres of mass
 * and the block score is the mean of the three, in [0, 1]. Integer sums: exact and fast. */
#include <math.h>
#include <stdint.h>

#include "core/log.h"
#include "match/match.h"

#define BLOCK_MAX_GRID 64
#define BLOCK_C ((0.03 * 255) * (0.03 * 255))

typedef struct {
  uint64_t s[BLOCK_MAX_GRID * BLOCK_MAX_GRID], ss[BLOCK_MAX_GRID * BLOCK_MAX_GRID];
  double cx, cy;
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
  if (tot) {
    st->cx = (double)sx / tot;
    st->cy = (double)sy / tot;
  } else {   // a black frame: its centre
    st->cx = (w - 1) / 2.0;
    st->cy = (h - 1) / 2.0;
  }
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
      dmean += fabs(ma - mb);
      svar += (2 * sqrt(va * vb) + BLOCK_C) / (va + vb + BLOCK_C);
    }
  }
  double nb = (double)grid * grid;
  sp_block_parts p;
  p.mean_diff = dmean / nb;
  p.mean = exp(-p.mean_diff / mean_scale);
  p.var = svar / nb;
  p.com_shift_px = hypot(sa.cx - sb.cx, sa.cy - sb.cy);
  p.com = exp(-p.com_shift_px / com_scale_px);
  if (parts) *parts = p;
  return (p.mean + p.var + p.com) / 3;
}
