/* flow_vis.c: the Middlebury optical-flow colour coding (Baker et al. 2011, "A Database and
 * Evaluation Methodology for Optical Flow"). Hue is the direction on a 55-colour wheel
 * (red-yellow 15, yellow-green 6, green-cyan 4, cyan-blue 11, blue-magenta 13, magenta-red 6),
 * saturation the magnitude relative to max_mag: white is no motion; beyond max_mag colours dim. */
#include <math.h>

#include "match/match.h"

#define NCOLS 55

static void wheel(double cw[NCOLS][3]) {
  const int seg[6] = {15, 6, 4, 11, 13, 6};
  int k = 0;
  for (int s = 0; s < 6; s++)
    for (int i = 0; i < seg[s]; i++, k++) {
      double t = (double)i / seg[s];
      double r = 0, g = 0, b = 0;
      switch (s) {
        case 0: r = 1; g = t; break;           // red -> yellow
        case 1: r = 1 - t; g = 1; break;       // yellow -> green
        case 2: g = 1; b = t; break;           // green -> cyan
        case 3: g = 1 - t; b = 1; break;       // cyan -> blue
        case 4: b = 1; r = t; break;           // blue -> magenta
        case 5: b = 1 - t; r = 1; break;       // magenta -> red
      }
      cw[k][0] = r;
      cw[k][1] = g;
      cw[k][2] = b;
    }
}

void sp_flow_to_rgb(const float *flow, int w, int h, double max_mag, uint8_t *rgb) {
  double cw[NCOLS][3];
  wheel(cw);
  if (max_mag <= 0) {
    max_mag = 0;
    for (int i = 0; i < w * h; i++) {
      double m = hypot(flow[2 * i], flow[2 * i + 1]);
      if (m > max_mag) max_mag = m;
    }
  }
  if (max_mag < 1e-9) max_mag = 1;
  for (int i = 0; i < w * h; i++) {
    double u = flow[2 * i] / max_mag, v = flow[2 * i + 1] / max_mag;
    double rad = sqrt(u * u + v * v), a = atan2(-v, -u) / M_PI;
    double fk = (a + 1) / 2 * (NCOLS - 1);
    int k0 = (int)floor(fk), k1 = (k0 + 1) % NCOLS;
    double f = fk - k0;
    for (int c = 0; c < 3; c++) {
      double col = (1 - f) * cw[k0][c] + f * cw[k1][c];
      col = rad <= 1 ? 1 - rad * (1 - col) : col * 0.75;
      rgb[3 * i + c] = (uint8_t)lrint(255 * col);
    }
  }
}
