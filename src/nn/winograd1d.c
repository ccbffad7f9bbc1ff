/* winograd1d.c: stride-1 "same" conv1d (odd kernel K, pad K/2) by Winograd's minimal filtering
 * F(4, K): tiles of 4 outputs read windows of a = K + 3 inputs, and
 *   y = A^T [(G g) . (B^T d)]
 * turns the K*4 multiplies of a tile into a, as a GEMMs over channels (Diffusion Policy's
 * kernel-5 convolutions: 8 instead of 20, the padded taps included).
 *
 * The matrices come from the Toom-Cook construction over the points 0, 1, -1, 2, -2, 1/2, -1/2
 * (the first a - 1 of them) and infinity, computed in double at each call (a few hundred flops):
 *   A^T[i][j] = p_j^i,  G[j][k] = p_j^k / prod_{l != j} (p_j - p_l),
 *   B^T[j][i] = coefficient of x^i in prod_{l != j} (x - p_l),
 * with the point at infinity adding the last row of B^T (the full product) and unit vectors
 * to A^T and G. The tests compare every path with the double-precision reference.
 *
 * Layout: tile p = b * nt + j covers outputs 4j .. 4j+3 of sample b. V (a, Cin, P),
 * M (a, Cout, P), U (a, Cout * Cin) in the weight's order; the GEMMs are nn_sgemm calls. */
#pragma GCC optimize("O3", "no-math-errno", "no-trapping-math")
#include <string.h>

#include "nn/nn.h"
#include "nn/nn_fast.h"
#include "nn/nn_winograd.h"

enum { WM = 4, WMAX = 8 };  // outputs per tile, largest window (K = 5)

typedef struct {
  int a;                                      // window = K + WM - 1
  float BT[WMAX][WMAX], G[WMAX][5], AT[WM][WMAX];
} wino1d_mats;

static void mats(wino1d_mats *w, int K, int flip) {
  static const double pts[] = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};
  int a = K + WM - 1, n = a - 1;
  w->a = a;
  memset(w->BT, 0, sizeof w->BT);
  memset(w->G, 0, sizeof w->G);
  memset(w->AT, 0, sizeof w->AT);
  for (int j = 0; j < n; j++) {
    double f = 1.0, c[WMAX + 1] = {1.0};  // coefficients of prod_{l != j} (x - p_l), low first
    int deg = 0;
    for (int l = 0; l < n; l++) {
      if (l == j) continue;
      f *= pts[j] - pts[l];
      for (int i = deg + 1; i >= 1; i--) c[i] = c[i - 1] - pts[l] * c[i];
      c[0] = -pts[l] * c[0];
      deg++;
    }
    for (int i = 0; i <= deg; i++) w->BT[j][i] = (float)c[i];
    double pk = 1.0;
    for (int k = 0; k < K; k++, pk *= pts[j]) w->G[j][flip ? K - 1 - k : k] = (float)(pk / f);
    double pi = 1.0;
    for (int i = 0; i < WM; i++, pi *= pts[j]) w->AT[i][j] = (float)pi;
  }
  double c[WMAX + 1] = {1.0};  // prod over all finite points
  for (int l = 0; l < n; l++) {
    for (int i = l + 1; i >= 1; i--) c[i] = c[i - 1] - pts[l] * c[i];
    c[0] = -pts[l] * c[0];
  }
  for (int i = 0; i <= n; i++) w->BT[n][i] = (float)c[i];
  w->G[n][flip ? 0 : K - 1] = 1.f;
  w->AT[WM - 1][n] = 1.f;
}

static int tiles(const nn_conv1d_dims *d) { return (d->To + WM - 1) / WM; }

static int g_mode = 1;  // 0 off, 1 where it pays, 2 every shape it can do

int nn_conv1d_set_winograd(int mode) {
  g_mode = mode < 0 ? 0 : mode > 2 ? 2 : mode;
  return g_mode;
}

int nn_wino1d_possible(const nn_conv1d_dims *d) {
  return d->stride == 1 && d->K % 2 == 1 && d->K >= 3 && d->K <= 5 && d->pad == d->K / 2 && d->To <= WM * 64;
}

int nn_wino1d_eligible(const nn_conv1d_dims *d) {
  return g_mode && d->stride == 1 && d->K % 2 == 1 && d->K >= 3 && d->K <= 5 && d->pad == d->K / 2 &&
         d->To <= WM * 64;
}

/* the transformed weight (K + 3 floats per channel pair) is written and read once a call, and
 * the GEMMs have one column per tile: with fewer than 128 tiles (Diffusion Policy's 4-step level
 * at batch 64) or fewer than 64 x 64 channels that costs what it saves (measured: neutral at
 * batch 64, 25-30 % faster at batch 256). Frozen weights skip the rebuild: see
 * nn_wino1d_forward_frozen. */
int nn_wino1d_applies(const nn_conv1d_dims *d) {
  if (!nn_wino1d_eligible(d)) return 0;
  return g_mode == 2 || ((size_t)d->Cin * d->Cout >= 4096 && (size_t)d->B * tiles(d) >= 128);
}

size_t nn_wino1d_frozen_scratch(const nn_conv1d_dims *d) {
  size_t a = d->K + WM - 1, P = (size_t)d->B * tiles(d);
  return a * (size_t)(d->Cin + d->Cout) * P + 64;
}

size_t nn_wino1d_scratch(const nn_conv1d_dims *d) {
  size_t a = d->K + WM - 1, P = (size_t)d->B * tiles(d), cc = (size_t)d->Cin * d->Cout;
  /* forward: U, V (Cin), M (Cout); backward data: U, V (Cout), M (Cin); weight: X, V, D */
  return a * (cc + (size_t)(d->Cin + d->Cout) * P) + 64;
}

/* V (a, C, P): windows of x (B, C, T) starting at 4j - pad, zeros outside. The a outputs of a
 * window are one 8-lane vector: y = sum_i x_i BT[:, i] */
static void in_transform(float *V, const float *x, int B, int C, int T, int nt, int pad,
                         const wino1d_mats *w) {
  size_t P = (size_t)B * nt, xs = (size_t)C * P;
  int a = w->a, L = WM * nt + a - 1;
  float col[WMAX][WMAX];  // col[i] = BT[:, i], zero-padded to 8 lanes
  memset(col, 0, sizeof col);
  for (int i = 0; i < a; i++)
    for (int q = 0; q < a; q++) col[i][q] = w->BT[q][i];
#pragma omp parallel for schedule(static) num_threads(nn_threads())
  for (int bc = 0; bc < B * C; bc++) {
    int b = bc / C, c = bc % C;
    float row[WM * 64 + WMAX];
    const float *xr = x + (size_t)bc * T;
    for (int i = 0; i < L; i++) {
      int t = i - pad;
      row[i] = (t >= 0 && t < T) ? xr[t] : 0.f;
    }
    float *v = V + (size_t)c * P + (size_t)b * nt;
    for (int j = 0; j < nt; j++) {
      float y[WMAX] = {0};
      for (int i = 0; i < a; i++)
        for (int q = 0; q < WMAX; q++) y[q] += col[i][q] * row[WM * j + i];
      for (int q = 0; q < a; q++) v[q * xs + j] = y[q];
    }
  }
}

/* kernels [i0, i1) of weight_transform, 8 at a time: taps moved into lanes through a small
 * buffer, then one 8-wide multiply-add per tap and transformed position. NN_HOT: AVX2 + FMA
 * where the CPU has them. */
NN_HOT static void wt_range(float *U, const float *wt, size_t n, size_t i0, size_t i1, int K,
                            int a, const float (*G)[5]) {
  size_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    float t[5][8];
    for (int j = 0; j < 8; j++)
      for (int k = 0; k < K; k++) t[k][j] = wt[(i + j) * K + k];
    for (int q = 0; q < a; q++) {
      float y[8] = {0};
      for (int k = 0; k < K; k++)
        for (int j = 0; j < 8; j++) y[j] += G[q][k] * t[k][j];
      memcpy(U + q * n + i, y, sizeof y);
    }
  }
  for (; i < i1; i++)
    for (int q = 0; q < a; q++) {
      float y = 0.f;
      for (int k = 0; k < K; k++) y += G[q][k] * wt[i * K + k];
      U[q * n + i] = y;
    }
}

/* U (a, n) = G w^T for n kernels of K taps, w (n, K) */
static void weight_transform(float *U, const float *wt, size_t n, int K, const wino1d_mats *w) {
  size_t chunk = 4096, nch = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
  for (size_t c = 0; c < nch; c++)
    wt_range(U, wt, n, c * chunk, (c + 1) * chunk < n ? (c + 1) * chunk : n, K, w->a, w->G);
}

NN_HOT static void wb_range(float *dw, const float *X, size_t n, size_t i0, size_t i1, int K,
                            int a, const float (*G)[5]) {
  size_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    float y[5][8] = {{0}};
    for (int q = 0; q < a; q++)
      for (int k = 0; k < K; k++)
        for (int j = 0; j < 8; j++) y[k][j] += G[q][k] * X[q * n + i + j];
    for (int j = 0; j < 8; j++)
      for (int k = 0; k < K; k++) dw[(i + j) * K + k] += y[k][j];
  }
  for (; i < i1; i++)
    for (int k = 0; k < K; k++) {
      float y = 0.f;
      for (int q = 0; q < a; q++) y += G[q][k] * X[q * n + i];
      dw[i * K + k] += y;
    }
}

/* dw (n, K) += (G^T X)^T for X (a, n) */
static void weight_back(float *dw, const float *X, size_t n, int K, const wino1d_mats *w) {
  size_t chunk = 4096, nch = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
  for (size_t c = 0; c < nch; c++)
    wb_range(dw, X, n, c * chunk, (c + 1) * chunk < n ? (c + 1) * chunk : n, K, w->a, w->G);
}

/* y (B, C, To) (=, or += with acc) from M (a, C, P), plus bias */
static void out_transform(float *y, const float *M, const float *bias, int B, int C, int To,
                          int nt, const wino1d_mats *w, int acc) {
  size_t P = (size_t)B * nt;
  int a = w->a;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
  for (int bc = 0; bc < B * C; bc++) {
    int b = bc / C, c = bc % C;
    float *yr = y + (size_t)bc * To, bo = bias ? bias[c] : 0.f;
    for (int j = 0; j < nt; j++) {
      const float *m = M + (size_t)c * P + (size_t)b * nt + j;
      float o[WM] = {0};
      for (int xi = 0; xi < a; xi++) {
        float v = m[(size_t)xi * C * P];
        for (int i = 0; i < WM; i++) o[i] += w->AT[i][xi] * v;
      }
      for (int i = 0; i < WM && WM * j + i < To; i++)
        yr[WM * j + i] = (acc ? yr[WM * j + i] : 0.f) + o[i] + bo;
    }
  }
}

/* out (B, cout, To) from in (B, cin, T) with U (a, Cout*Cin): trans = 0 reads U as (cout, cin),
 * trans = 1 as (cin, cout) transposed (the flipped backward-data convolution) */
static void fwd_core(float *out, const float *in, const float *U, int trans, const float *bias,
                     int B, int cin, int cout, int T, int To, int pad, const wino1d_mats *w,
                     float *V, float *M, int acc) {
  int nt = (To + WM - 1) / WM, P = B * nt;
  in_transform(V, in, B, cin, T, nt, pad, w);
  for (int xi = 0; xi < w->a; xi++) {
    const float *Ux = U + (size_t)xi * cin * cout;
    nn_sgemm(trans, 0, cout, P, cin, 1.f, Ux, trans ? cout : cin, V + (size_t)xi * cin * P, P, 0.f,
             M + (size_t)xi * cout * P, P);
  }
  out_transform(out, M, bias, B, cout, To, nt, w, acc);
}

/* wcache builder: U for n = cc kernels of K taps (the forward transform) */
static void build_u(float *U, const float *wt, int K, int cc) {
  wino1d_mats w;
  mats(&w, K, 0);
  weight_transform(U, wt, (size_t)cc, K, &w);
}

int nn_wino1d_forward_frozen(float *out, const float *in, const float *wt, const float *b,
                             const nn_conv1d_dims *d, float *scratch, int acc) {
  size_t cc = (size_t)d->Cin * d->Cout, P = (size_t)d->B * tiles(d), a = d->K + WM - 1;
  const float *U = nn_wcache_get(wt, cc * d->K, 1, d->K, (int)cc, a * cc, build_u);
  if (!U) return -1;
  wino1d_mats w;
  mats(&w, d->K, 0);
  float *V = scratch, *M = V + w.a * d->Cin * P;
  fwd_core(out, in, U, 0, b, d->B, d->Cin, d->Cout, d->T, d->To, d->pad, &w, V, M, acc);
  return 0;
}

void nn_wino1d_forward(float *out, const float *in, const float *wt, const float *b,
                       const nn_conv1d_dims *d, float *scratch, int acc) {
  if (!nn_wino1d_forward_frozen(out, in, wt, b, d, scratch, acc)) return;
  wino1d_mats w;
  mats(&w, d->K, 0);
  size_t cc = (size_t)d->Cin * d->Cout, P = (size_t)d->B * tiles(d);
  float *U = scratch, *V = U + w.a * cc, *M = V + w.a * d->Cin * P;
  weight_transform(U, wt, cc, d->K, &w);  // U (a, Cout*Cin) = G (a, K) w^T
  fwd_core(out, in, U, 0, b, d->B, d->Cin, d->Cout, d->T, d->To, d->pad, &w, V, M, acc);
}

void nn_wino1d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *wt, const nn_conv1d_dims *d, float *scratch) {
  size_t cc = (size_t)d->Cin * d->Cout;
  int nt = tiles(d), P = d->B * nt, To = d->To;
  if (db) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int o = 0; o < d->Cout; o++) {
      float s = 0.f;
      for (int b = 0; b < d->B; b++)
        for (int t = 0; t < To; t++) s += dout[((size_t)b * d->Cout + o) * To + t];
      db[o] += s;
    }
  }
  if (din) {
    /* din += conv1d(dout) with the flipped, transposed weight (same padding: K odd) */
    wino1d_mats w;
    mats(&w, d->K, 1);
    float *U = scratch, *V = U + w.a * cc, *M = V + (size_t)w.a * d->Cout * P;
    weight_transform(U, wt, cc, d->K, &w);
    fwd_core(din, dout, U, 1, NULL, d->B, d->Cout, d->Cin, To, d->T, d->pad, &w, V, M, 1);
  }
  if (dw) {
    wino1d_mats w;
    mats(&w, d->K, 0);
    int a = w.a;
    float *X = scratch, *V = X + a * cc, *D = V + (size_t)a * d->Cin * P;
    in_transform(V, in, d->B, d->Cin, d->T, nt, d->pad, &w);
    /* D (a, Cout, P) = A dY per tile: D[xi] = sum_i AT[i][xi] dy[4j + i] */
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int bc = 0; bc < d->B * d->Cout; bc++) {
      int b = bc / d->Cout, c = bc % d->Cout;
      const float *yr = dout + (size_t)bc * To;
      for (int j = 0; j < nt; j++) {
        float e[WM];
        for (int i = 0; i < WM; i++) e[i] = WM * j + i < To ? yr[WM * j + i] : 0.f;
        for (int xi = 0; xi < a; xi++) {
          float s = 0.f;
          for (int i = 0; i < WM; i++) s += w.AT[i][xi] * e[i];
          D[((size_t)xi * d->Cout + c) * P + (size_t)b * nt + j] = s;
        }
      }
    }
    /* X[xi] (Cout, Cin) = D[xi] V[xi]^T, then dw (Cout*Cin, K) += X^T (n, a) G (a, K) */
    for (int xi = 0; xi < a; xi++)
      nn_sgemm(0, 1, d->Cout, d->Cin, P, 1.f, D + (size_t)xi * d->Cout * P, P,
               V + (size_t)xi * d->Cin * P, P, 0.f, X + (size_t)xi * cc, d->Cin);
    weight_back(dw, X, cc, d->K, &w);
  }
}
