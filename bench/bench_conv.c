/* bench_conv.c: one conv2d shape, Winograd against im2col + sgemm: forward, backward-data and
 * backward-weight times (median of N) and the largest difference between the two paths.
 *
 *   build/bench/bench_conv [B Cin H W Cout [iters]]      (default: a list of the reference shapes) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/nn.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static float *buf(size_t n, unsigned seed) {
  float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)((seed >> 8) & 0xffff) / 32768.f - 1.f;
  }
  return p;
}
static double maxdiff(const float *a, const float *b, size_t n, double *scale) {
  double m = 0, s = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d > m) m = d;
    if (fabs(b[i]) > s) s = fabs(b[i]);
  }
  *scale = s;
  return m;
}

/* times[0..2]: forward, backward data, backward weight (ms, median) */
static void run(int wino, nn_conv2d_dims *d, int iters, const float *x, const float *w,
                const float *dy, float *y, float *dx, float *dw, double times[3]) {
  nn_conv2d_set_winograd(wino ? 2 : 0);  // 2: Winograd even where the default would not pick it
  float *s = buf(nn_conv2d_scratch(d), 1);
  size_t nx = (size_t)d->B * d->Cin * d->H * d->W, nw = (size_t)d->Cout * d->Cin * 9;
  double *t = malloc(sizeof(double) * 3 * iters);
  for (int it = -2; it < iters; it++) {
    double t0 = now_ms();
    nn_conv2d_forward(y, x, w, NULL, d, s);
    double t1 = now_ms();
    memset(dx, 0, nx * sizeof(float));
    nn_conv2d_backward(dx, NULL, NULL, dy, x, w, d, s);
    double t2 = now_ms();
    memset(dw, 0, nw * sizeof(float));
    nn_conv2d_backward(NULL, dw, NULL, dy, x, w, d, s);
    double t3 = now_ms();
    if (it >= 0) {
      t[it] = t1 - t0;
      t[iters + it] = t2 - t1;
      t[2 * iters + it] = t3 - t2;
    }
  }
  for (int k = 0; k < 3; k++) {
    qsort(t + k * iters, iters, sizeof(double), cmp_d);
    times[k] = t[k * iters + iters / 2];
  }
  free(t);
  free(s);
}

static void shape(int B, int Cin, int H, int W, int Cout, int iters) {
  nn_conv2d_dims d = nn_conv2d_make(B, Cin, H, W, Cout, 3, 1, 1);
  size_t nx = (size_t)B * Cin * H * W, ny = (size_t)B * Cout * H * W, nw = (size_t)Cout * Cin * 9;
  float *x = buf(nx, 2), *w = buf(nw, 3), *dy = buf(ny, 4);
  float *y[2], *dx[2], *dw[2];
  double t[2][3];
  for (int k = 0; k < 2; k++) {
    y[k] = buf(ny, 5);
    dx[k] = buf(nx, 6);
    dw[k] = buf(nw, 7);
    run(k, &d, iters, x, w, dy, y[k], dx[k], dw[k], t[k]);
  }
  double gf = 2.0 * B * Cout * H * W * (double)Cin * 9 * 1e-6;  // GFLOP per ms -> x1e-6
  double sy, sx, sw;
  double ey = maxdiff(y[1], y[0], ny, &sy), ex = maxdiff(dx[1], dx[0], nx, &sx);
  double ew = maxdiff(dw[1], dw[0], nw, &sw);
  printf("B=%d Cin=%d %dx%d Cout=%d | im2col fwd %.2f bwd_d %.2f bwd_w %.2f ms | winograd fwd %.2f "
         "(%.0f GF/s) bwd_d %.2f bwd_w %.2f ms | speedup %.2f %.2f %.2f | rel err %.1e %.1e %.1e\n",
         B, Cin, H, W, Cout, t[0][0], t[0][1], t[0][2], t[1][0], gf / t[1][0], t[1][1], t[1][2],
         t[0][0] / t[1][0], t[0][1] / t[1][1], t[0][2] / t[1][2], ey / sy, ex / sx, ew / sw);
  fflush(stdout);
  for (int k = 0; k < 2; k++) free(y[k]), free(dx[k]), free(dw[k]);
  free(x), free(w), free(dy);
}

int main(int argc, char **argv) {
  nn_init(2);
  if (argc >= 6) {
    int v[6];
    for (int i = 0; i < 6; i++) v[i] = i + 1 < argc ? atoi(argv[i + 1]) : 10;
    for (int i = 0; i < 6; i++)
      if (v[i] < 1 || v[i] > (i == 5 ? 1000 : 4096)) {
        fprintf(stderr, "bench_conv: argument %d (%s) must be a positive integer\n"
                        "usage: bench_conv [B Cin H W Cout [iters]]\n", i + 1, argv[i + 1]);
        return 2;
      }
    shape(v[0], v[1], v[2], v[3], v[4], v[5]);
    return 0;
  }
  if (argc > 1) {
    fprintf(stderr, "usage: bench_conv [B Cin H W Cout [iters]]\n");
    return 2;
  }
  static const int S[][5] = {{8, 27, 32, 32, 32},  {8, 32, 32, 32, 32},  {8, 64, 32, 32, 32},
                             {8, 64, 16, 16, 64},  {8, 128, 16, 16, 64}, {8, 128, 8, 8, 128},
                             {8, 256, 8, 8, 128},  {32, 64, 24, 24, 64}, {32, 128, 12, 12, 128},
                             {32, 256, 6, 6, 256}, {32, 512, 3, 3, 512}};
  for (size_t i = 0; i < sizeof S / sizeof S[0]; i++)
    shape(S[i][0], S[i][1], S[i][2], S[i][3], S[i][4], 10);
  return 0;
}
