/* flow_internal.h: helpers shared by the fast Farneback (flow.c) and its naive twin (flow_ref.c).
 * Not part of the public interface. */
#ifndef SP_MATCH_FLOW_INTERNAL_H
#define SP_MATCH_FLOW_INTERNAL_H

#include "match/match.h"

#define SP_FLOW_MIN_SIZE 32   // no pyramid level with a side under this (OpenCV's rule)

typedef struct {
  double scale;   // pyr_scale^k
  double sigma;   // pre-blur of the full-resolution frame: (1/scale - 1) / 2
  int ksize;      // its taps: round(5 sigma) | 1, at least 3
  int w, h;       // level size: round(w scale), round(h scale)
} sp_flow_level;

/* pyramid levels above the original actually used for a w x h frame */
int sp_flow__nlevels(const sp_flow_cfg *c, int w, int h);
void sp_flow__level_geom(const sp_flow_cfg *c, int w, int h, int k, sp_flow_level *L);
/* ksize Gaussian taps (sigma <= 0: OpenCV's rule from ksize) */
void sp_flow__blur_kernel(int ksize, double sigma, double *k);
/* applicability (2n+1 taps of g, x g, x^2 g) and the inverse-Gram entries: 1/m2, (1,x^2), (x^2,x^2), xy */
void sp_flow__poly_setup(int n, double sigma, double *g, double *xg, double *xxg, double ig[4]);
/* bilinear resize, pixel-centre convention, clamped; c interleaved channels */
void sp_flow__resize(const float *src, int sw, int sh, float *dst, int dw, int dh, int c);
/* down-weighting of the 5 outermost rows and columns */
float sp_flow__border_scale(int x, int y, int w, int h);

#endif
