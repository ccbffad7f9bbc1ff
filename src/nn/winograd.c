/* winograd.c: 3x3 stride-1 pad-1 convolutions by Winograd's minimal filtering F(4x4, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), AVX2 + FMA.
 *
 * The output is cut into 4x4 tiles; tile p reads a 6x6 input patch d. With the transforms
 *   V = B^T d B (input), U = G g G^T (weight), Y = A^T M A (output),
 * the 36 products per tile become 36 independent GEMMs over channels,
 *   M[xi] (Cout, tiles) = U[xi] (Cout, Cin) V[xi] (Cin, tiles),
 * which need 36 / 16 = 2.25 multiplies per output and input channel instead of 9.
 *
 * Backward: din is the forward convolution of dout with the flipped, transposed weight (same
 * kernels, U built from the flipped weight). dW is exact by the chain rule through the same
 * identity: dW = G^T [sum over tiles of (A dY A^T) . V] G, i.e. 36 GEMMs reducing over tiles.
 *
 * Layout: tiles run in SIMD lanes. A block of NB tiles (a multiple of 16) is transformed into
 * V (36, Cin, NB), multiplied into M (36, Coutp, NB) by a 6x16 register-blocked kernel, and
 * transformed back, so each block stays in L2. Patches that cross the image border are copied
 * into a small zero-padded buffer first; lanes past the last tile read a zero patch. */
#pragma GCC optimize("O3", "no-math-errno", "no-trapping-math")  // vectorise the plain loops
#include <omp.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"
#include "nn/nn_winograd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define WINO_TARGET __attribute__((target("avx2,fma")))
#define WINO_OK 1
#else
#define WINO_TARGET
#define WINO_OK 0
#endif

enum { MR = 6, NR = 16, PATCH = 6 * 8 };  // kernel rows (channels), lanes (tiles), patch floats

static int g_mode = -1;  // -1 unset, 0 off, 1 where it pays, 2 every 3x3 stride-1 pad-1

static int cpu_ok(void) {
#if WINO_OK
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

int nn_conv2d_set_winograd(int mode) {
  g_mode = cpu_ok() ? (mode < 0 ? 0 : mode > 2 ? 2 : mode) : 0;
  return g_mode;
}

int nn_wino_possible(const nn_conv2d_dims *d) {
  return cpu_ok() && d->KH == 3 && d->KW == 3 && d->stride == 1 && d->pad == 1;
}

/* Winograd saves 2 (9 HW - 36 tiles) multiply-adds per image and channel pair, and costs a
 * transformed weight of 36 floats per channel pair, written and read once per call. On small
 * images with many channels (ResNet's last stage: 3x3, 512 channels, a 38 MB transformed
 * weight for 600 MFLOP saved) the memory traffic eats the saving, so those stay on im2col. */
int nn_wino_applies(const nn_conv2d_dims *d) {
  if (g_mode < 0) g_mode = cpu_ok();
  if (!g_mode || d->KH != 3 || d->KW != 3 || d->stride != 1 || d->pad != 1) return 0;
  if (g_mode == 2) return 1;
  double tiles = (double)d->B * ((d->H + 3) / 4) * ((d->W + 3) / 4);
  return 9.0 * d->B * d->H * d->W - 36.0 * tiles >= 2048.0;
}

static int rup(int x, int m) { return (x + m - 1) / m * m; }

typedef struct {
  int th, tw, P;  // tiles per column, per row, in all
  int nb;         // tiles per block (multiple of NR)
  int Hp, Wp;     // padded input plane: 1 row/column of zeros before, enough after for 8-wide reads
} wino_geom;

/* block size: V and M of one block in about 384 KB (Zen 3 L2 is 512 KB), 1 to 8 kernel widths */
static wino_geom geom(const nn_conv2d_dims *d, int cin, int cout) {
  wino_geom g;
  g.th = (d->H + 3) / 4;
  g.tw = (d->W + 3) / 4;
  g.P = d->B * g.th * g.tw;
  g.Hp = 4 * g.th + 2;
  g.Wp = 4 * g.tw + 4;
  int per = 36 * (cin + rup(cout, MR)) * NR;  // floats per kernel width of tiles
  int k = 98304 / per;
  k = k < 1 ? 1 : k > 8 ? 8 : k;
  int need = (g.P + NR - 1) / NR;
  g.nb = (k < need ? k : need) * NR;
  return g;
}

/* per-thread floats of a forward pass with cin -> cout */
static size_t fwd_thread(const nn_conv2d_dims *d, int cin, int cout) {
  wino_geom g = geom(d, cin, cout);
  return (size_t)36 * (cin + rup(cout, MR)) * g.nb + PATCH + 64;
}
/* floats after U that the kernel may read (zeros) */
static size_t u_slack(int cin, int cout) { return (size_t)MR * (cin + cout) + 64; }
static size_t u_size(int cin, int cout) { return (size_t)36 * cout * cin + u_slack(cin, cout); }
/* shared: U, then the padded input */
static size_t fwd_shared(const nn_conv2d_dims *d, int cin, int cout) {
  wino_geom g = geom(d, cin, cout);
  return u_size(cin, cout) + (size_t)d->B * cin * g.Hp * g.Wp + 64;
}

/* weight gradient: row stride of the output-gradient block (the 6-row kernel may read past
 * Cout, the 8-channel transposes write up to a multiple of 8) and per-thread floats */
static int bwd_ldd(int Cout) { return rup(Cout, 8) > rup(Cout, MR) ? rup(Cout, 8) : rup(Cout, MR); }
static size_t bwd_thread_floats(void) { return (size_t)PATCH + 8 * 36 * 8 + 64; }

/* weight-gradient block (shared by the team): tiles per block */
static int bwd_nb(const nn_conv2d_dims *d) {
  wino_geom g = geom(d, d->Cin, d->Cout);
  int nb = 4194304 / (36 * (rup(d->Cin, NR) + bwd_ldd(d->Cout)));
  nb = nb / NR * NR;
  nb = nb < NR ? NR : nb > 128 ? 128 : nb;
  int all = rup(g.P, NR);
  return nb < all ? nb : all;
}

size_t nn_wino_scratch(const nn_conv2d_dims *d) {
  int nt = nn_threads();
  wino_geom g = geom(d, d->Cin, d->Cout);
  size_t f = fwd_shared(d, d->Cin, d->Cout) + nt * fwd_thread(d, d->Cin, d->Cout);
  size_t b = fwd_shared(d, d->Cout, d->Cin) + nt * fwd_thread(d, d->Cout, d->Cin);
  int nb = bwd_nb(d);
  size_t ldv = rup(d->Cin, NR);
  size_t w = 36 * (rup(d->Cout, MR) * ldv + nb * (ldv + bwd_ldd(d->Cout))) +
             (size_t)d->B * g.Wp * (d->Cin * g.Hp + d->Cout * 4 * g.th) + nt * bwd_thread_floats() + 64;
  size_t m = f > b ? f : b;
  return m > w ? m : w;
}

#if WINO_OK

/* ---------------------------------------------------------------------------------------------
 * 1D transforms (applied along rows, then columns) */

/* B^T x: 6 -> 6 */
#define WINO_BT(x, y)                                                                           \
  do {                                                                                          \
    __m256 t1_ = _mm256_fnmadd_ps(four, x[2], x[4]), t2_ = _mm256_fnmadd_ps(four, x[1], x[3]);  \
    __m256 t3_ = _mm256_sub_ps(x[4], x[2]), t4_ = _mm256_mul_ps(two, _mm256_sub_ps(x[3], x[1])); \
    y[0] = _mm256_fmadd_ps(four, x[0], _mm256_fnmadd_ps(five, x[2], x[4]));                      \
    y[1] = _mm256_add_ps(t1_, t2_);                                                             \
    y[2] = _mm256_sub_ps(t1_, t2_);                                                             \
    y[3] = _mm256_add_ps(t3_, t4_);                                                             \
    y[4] = _mm256_sub_ps(t3_, t4_);                                                             \
    y[5] = _mm256_fmadd_ps(four, x[1], _mm256_fnmadd_ps(five, x[3], x[5]));                      \
  } while (0)

/* A^T m: 6 -> 4 */
#define WINO_AT(m, o)                                                                   \
  do {                                                                                  \
    __m256 a_ = _mm256_add_ps(m[1], m[2]), b_ = _mm256_sub_ps(m[1], m[2]);              \
    __m256 c_ = _mm256_add_ps(m[3], m[4]), d_ = _mm256_sub_ps(m[3], m[4]);              \
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], a_), c_);                                  \
    o[1] = _mm256_fmadd_ps(two, d_, b_);                                                \
    o[2] = _mm256_fmadd_ps(four, c_, a_);                                               \
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(eight, d_, b_), m[5]);                         \
  } while (0)

/* A e: 4 -> 6 (transform of an output-gradient tile) */
#define WINO_A(e, z)                                                                          \
  do {                                                                                        \
    __m256 p_ = _mm256_add_ps(e[0], e[2]), q_ = _mm256_add_ps(e[1], e[3]);                    \
    __m256 r_ = _mm256_fmadd_ps(four, e[2], e[0]), s_ = _mm256_fmadd_ps(four, e[3], e[1]);    \
    z[0] = e[0];                                                                              \
    z[1] = _mm256_add_ps(p_, q_);                                                             \
    z[2] = _mm256_sub_ps(p_, q_);                                                             \
    z[3] = _mm256_fmadd_ps(two, s_, r_);                                                      \
    z[4] = _mm256_fnmadd_ps(two, s_, r_);                                                     \
    z[5] = e[3];                                                                              \
  } while (0)

/* 8x8 transpose of r[0..7] in place */
WINO_TARGET static inline void tr8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* ---------------------------------------------------------------------------------------------
 * patches: where tile p of a plane reads from */

/* dst (n, Hp, Wp) = src (n, H, W) placed at row top, column left; zeros elsewhere. Every tile
 * window (6 or 4 rows of 8 floats) then lies inside a plane: no border cases in the kernels. */
/* no-tree-loop-distribute-patterns: GCC would turn the 1-3 float zero runs and the short row
 * copies into memset and memcpy calls (6 % of a U-Net forward in call overhead) */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void pad_planes(float *dst, const float *src, int n, int H, int W, int Hp, int Wp, int top,
                       int left) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
  for (int i = 0; i < n; i++) {
    float *o = dst + (size_t)i * Hp * Wp;
    const float *sp = src + (size_t)i * H * W;
    /* plain loops: rows are short, library calls per row cost more than the copy */
    for (int y = 0; y < Hp; y++) {
      float *r = o + (size_t)y * Wp;
      int sy = y - top;
      if (sy < 0 || sy >= H) {
        for (int x = 0; x < Wp; x++) r[x] = 0.f;
        continue;
      }
      const float *srow = sp + (size_t)sy * W;
      for (int x = 0; x < left; x++) r[x] = 0.f;
      for (int x = 0; x < W; x++) r[left + x] = srow[x];
      for (int x = left + W; x < Wp; x++) r[x] = 0.f;
    }
  }
}

/* second (column) pass of the input transform: h[r][k] (row r already transformed) -> V[xi]
 * lanes at dst + xi * xs */
WINO_TARGET static inline void in_cols(float *dst, size_t xs, __m256 h[6][6]) {
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), five = _mm256_set1_ps(5.f);
  for (int k = 0; k < 6; k++) {
    __m256 x[6], y[6];
    for (int r = 0; r < 6; r++) x[r] = h[r][k];
    WINO_BT(x, y);
    for (int r = 0; r < 6; r++) _mm256_storeu_ps(dst + (size_t)(r * 6 + k) * xs, y[r]);
  }
}

/* second pass of the output-gradient transform: h[r][k], 4 rows -> 36 lanes */
WINO_TARGET static inline void dy_cols(float *dst, size_t xs, __m256 h[4][6]) {
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f);
  for (int k = 0; k < 6; k++) {
    __m256 x[4], y[6];
    for (int r = 0; r < 4; r++) x[r] = h[r][k];
    WINO_A(x, y);
    for (int r = 0; r < 6; r++) _mm256_storeu_ps(dst + (size_t)(r * 6 + k) * xs, y[r]);
  }
}

/* input transform of 8 tiles: src[t] is the 6x8 window of tile t (row stride ld[t]);
 * writes V[xi] lanes to dst + xi * xs */
WINO_TARGET static void in8(float *dst, size_t xs, const float *const src[8], const int ld[8]) {
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), five = _mm256_set1_ps(5.f);
  __m256 h[6][6];
  for (int r = 0; r < 6; r++) {
    __m256 v[8];
    for (int t = 0; t < 8; t++) v[t] = _mm256_loadu_ps(src[t] + (size_t)r * ld[t]);
    tr8(v);  // v[c]: column c of row r, tiles in lanes
    WINO_BT(v, h[r]);
  }
  in_cols(dst, xs, h);
}

/* output-gradient transform of 8 tiles: src[t] the 4x8 window (4 used) -> 36 lanes */
WINO_TARGET static void dy8(float *dst, size_t xs, const float *const src[8], const int ld[8]) {
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f);
  __m256 h[4][6];
  for (int r = 0; r < 4; r++) {
    __m256 v[8];
    for (int t = 0; t < 8; t++) v[t] = _mm256_loadu_ps(src[t] + (size_t)r * ld[t]);
    tr8(v);
    WINO_A(v, h[r]);
  }
  dy_cols(dst, xs, h);
}

/* row groups: 8 tiles side by side in one tile row. Their windows are one strip of the padded
 * plane, so a stride-4 deinterleave (8 shuffles) replaces the 8x8 transposes. The lanes then
 * hold the tiles in the order ROW_ORDER; the output side interleaves them back. */
static const int ROW_ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* 32 floats at p -> x[q] = p[4 t + q] for the tiles t in ROW_ORDER */
#define WINO_DEINT(p, x)                                                                  \
  do {                                                                                    \
    __m256 v0_ = _mm256_loadu_ps(p), v1_ = _mm256_loadu_ps((p) + 8);                      \
    __m256 v2_ = _mm256_loadu_ps((p) + 16), v3_ = _mm256_loadu_ps((p) + 24);              \
    __m256 t0_ = _mm256_unpacklo_ps(v0_, v1_), t1_ = _mm256_unpackhi_ps(v0_, v1_);        \
    __m256 t2_ = _mm256_unpacklo_ps(v2_, v3_), t3_ = _mm256_unpackhi_ps(v2_, v3_);        \
    x[0] = _mm256_shuffle_ps(t0_, t2_, 0x44);                                             \
    x[1] = _mm256_shuffle_ps(t0_, t2_, 0xEE);                                             \
    x[2] = _mm256_shuffle_ps(t1_, t3_, 0x44);                                             \
    x[3] = _mm256_shuffle_ps(t1_, t3_, 0xEE);                                             \
  } while (0)

/* lanes in ROW_ORDER, shifted to the next tile; e: the value for the lane of tile 8 */
WINO_TARGET static inline __m256 next_tile(__m256 x, __m128 e) {
  __m128 lo = _mm256_castps256_ps128(x), hi = _mm256_extractf128_ps(x, 1);
  __m128 sh = _mm_castsi128_ps(_mm_alignr_epi8(_mm_castps_si128(e), _mm_castps_si128(lo), 4));
  return _mm256_insertf128_ps(_mm256_castps128_ps256(hi), sh, 1);
}

/* input transform of a row group: src at the strip's first window (row stride ld) */
WINO_TARGET static void in8_row(float *dst, size_t xs, const float *src, int ld) {
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), five = _mm256_set1_ps(5.f);
  __m256 h[6][6];
  for (int r = 0; r < 6; r++) {
    const float *p = src + (size_t)r * ld;
    __m256 x[6];
    WINO_DEINT(p, x);
    __m128 e = _mm_loadu_ps(p + 32);  // columns 32, 33: the first two of a ninth tile
    x[4] = next_tile(x[0], e);
    x[5] = next_tile(x[1], _mm_castsi128_ps(_mm_srli_si128(_mm_castps_si128(e), 4)));
    WINO_BT(x, h[r]);
  }
  in_cols(dst, xs, h);
}

/* output-gradient transform of a row group (4 rows of the strip) */
WINO_TARGET static void dy8_row(float *dst, size_t xs, const float *src, int ld) {
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f);
  __m256 h[4][6];
  for (int r = 0; r < 4; r++) {
    __m256 x[4];
    WINO_DEINT(src + (size_t)r * ld, x);
    WINO_A(x, h[r]);
  }
  dy_cols(dst, xs, h);
}

/* first (column) pass of the output transform: 36 lanes at src + xi * xs -> t[i][k] */
WINO_TARGET static inline void out_cols(__m256 t[4][6], const float *src, size_t xs) {
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), eight = _mm256_set1_ps(8.f);
  for (int k = 0; k < 6; k++) {
    __m256 m[6], o[4];
    for (int r = 0; r < 6; r++) m[r] = _mm256_loadu_ps(src + (size_t)(r * 6 + k) * xs);
    WINO_AT(m, o);
    for (int i = 0; i < 4; i++) t[i][k] = o[i];
  }
}

/* output transform of a row group whose 8 tiles lie inside the plane: 36 lanes at src + xi * xs
 * -> rows of 32 floats at dst (row stride W), plus bias, stored or added (acc) */
WINO_TARGET static void out8_row(float *dst, int W, const float *src, size_t xs, float bias,
                                 int acc) {
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), eight = _mm256_set1_ps(8.f);
  __m256 t[4][6];
  out_cols(t, src, xs);
  const __m256 vb = _mm256_set1_ps(bias);
  for (int i = 0; i < 4; i++) {
    __m256 x[4];
    WINO_AT(t[i], x);
    /* inverse of WINO_DEINT */
    __m256 a0 = _mm256_shuffle_ps(x[0], x[1], 0x44), a2 = _mm256_shuffle_ps(x[0], x[1], 0xEE);
    __m256 a1 = _mm256_shuffle_ps(x[2], x[3], 0x44), a3 = _mm256_shuffle_ps(x[2], x[3], 0xEE);
    __m256 v[4] = {_mm256_shuffle_ps(a0, a1, 0x88), _mm256_shuffle_ps(a0, a1, 0xDD),
                   _mm256_shuffle_ps(a2, a3, 0x88), _mm256_shuffle_ps(a2, a3, 0xDD)};
    float *o = dst + (size_t)i * W;
    for (int j = 0; j < 4; j++) {
      __m256 y = _mm256_add_ps(v[j], vb);
      if (acc) y = _mm256_add_ps(y, _mm256_loadu_ps(o + 8 * j));
      _mm256_storeu_ps(o + 8 * j, y);
    }
  }
}

/* T (8 channels, 36, 8 tiles) -> dst[xi * xs + t * ld + c] for tile t, channel c */
WINO_TARGET static void scatter8(float *dst, size_t xs, size_t ld, const float *T) {
  for (int xi = 0; xi < 36; xi++) {
    __m256 v[8];
    for (int c = 0; c < 8; c++) v[c] = _mm256_loadu_ps(T + c * 288 + xi * 8);
    tr8(v);
    for (int t = 0; t < 8; t++) _mm256_storeu_ps(dst + xi * xs + t * ld, v[t]);
  }
}

/* output transform of 8 tiles: 36 lanes at src + xi * xs -> 4x4 per tile, plus bias; stores
 * (or adds, acc) into the plane at tile origins (ty[t]*4, tx[t]*4); n valid tiles */
WINO_TARGET static void out8(float *plane, int H, int W, const int *ty, const int *tx, int n,
                             const float *src, size_t xs, float bias, int acc) {
  const __m256 two = _mm256_set1_ps(2.f), four = _mm256_set1_ps(4.f), eight = _mm256_set1_ps(8.f);
  __m256 t[4][6];
  out_cols(t, src, xs);
  const __m256 vb = _mm256_set1_ps(bias);
  for (int i = 0; i < 4; i++) {
    __m256 o[8];
    WINO_AT(t[i], o);
    for (int j = 0; j < 4; j++) o[j] = _mm256_add_ps(o[j], vb);
    o[4] = o[5] = o[6] = o[7] = o[0];
    tr8(o);  // o[t] lanes 0..3: row i of tile t
    for (int q = 0; q < n; q++) {
      int y = ty[q] * 4 + i, x = tx[q] * 4;
      if (y >= H) continue;
      float *dst = plane + (size_t)y * W + x;
      if (x + 4 <= W) {
        __m128 v = _mm256_castps256_ps128(o[q]);
        if (acc) v = _mm_add_ps(v, _mm_loadu_ps(dst));
        _mm_storeu_ps(dst, v);
      } else {
        float tmp[8];
        _mm256_storeu_ps(tmp, o[q]);
        for (int c = 0; x + c < W; c++) dst[c] = acc ? dst[c] + tmp[c] : tmp[c];
      }
    }
  }
}

/* C (6 x 16, row stride ldc) = (or += with acc) A B, A (K x 6) element (k, r) at A[k ak + r ar],
 * B (K x 16, row stride ldb). Written out by hand: with an accumulator array GCC spills. */
#define KROW(r, c0, c1)                        \
  a = _mm256_broadcast_ss(A + (r) * ar);       \
  c0 = _mm256_fmadd_ps(a, b0, c0);             \
  c1 = _mm256_fmadd_ps(a, b1, c1);
#define KSTORE(r, c0, c1)                                            \
  do {                                                               \
    float *o_ = C + (size_t)(r) * ldc;                               \
    if (acc) {                                                       \
      c0 = _mm256_add_ps(c0, _mm256_loadu_ps(o_));                   \
      c1 = _mm256_add_ps(c1, _mm256_loadu_ps(o_ + 8));               \
    }                                                                \
    _mm256_storeu_ps(o_, c0);                                        \
    _mm256_storeu_ps(o_ + 8, c1);                                    \
  } while (0)
WINO_TARGET static void kern6x16(int K, const float *A, size_t ak, size_t ar, const float *B,
                                 size_t ldb, float *C, size_t ldc, int acc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int k = 0; k < K; k++) {
    __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8), a;
    KROW(0, c00, c01)
    KROW(1, c10, c11)
    KROW(2, c20, c21)
    KROW(3, c30, c31)
    KROW(4, c40, c41)
    KROW(5, c50, c51)
    A += ak;
    B += ldb;
  }
  KSTORE(0, c00, c01);
  KSTORE(1, c10, c11);
  KSTORE(2, c20, c21);
  KSTORE(3, c30, c31);
  KSTORE(4, c40, c41);
  KSTORE(5, c50, c51);
}
#undef KROW
#undef KSTORE

#endif  // WINO_OK

/* ---------------------------------------------------------------------------------------------
 * weight transforms (scalar: once per call, Cout x Cin small 3x3 kernels) */

/* constants of G */
static const float R4 = 0.25f, R6 = 1.f / 6.f, R12 = 1.f / 12.f, R24 = 1.f / 24.f;

#if WINO_OK

/* tile p -> image, tile row, tile column */
static inline void tile_of(const wino_geom *g, int p, int *b, int *ty, int *tx) {
  int per = g->th * g->tw;
  *b = p / per;
  int r = p % per;
  *ty = r / g->tw;
  *tx = r % g->tw;
}

/* the 8 tiles from p on form a row group (same image and tile row) */
static inline int row_group(const wino_geom *g, int p, int n_valid) {
  return n_valid >= 8 && p % g->tw + 8 <= g->tw;
}

/* out (B, cout, H, W) (=, or += with acc) = conv3x3(in (B, cin, H, W)) + bias, with the
 * transformed weight U (36, ...): output channel o, input channel c at U[xi][c uk + o ur] */
static void fwd_run(float *out, const float *in, const float *U, size_t uk, size_t ur,
                    const float *bias, int B, int cin, int cout, int H, int W, const wino_geom *g,
                    float *pin, float *scratch, size_t per, int acc) {
  int coutp = rup(cout, MR), nb = g->nb, nblk = (g->P + nb - 1) / nb;
  size_t plane = (size_t)H * W, pplane = (size_t)g->Hp * g->Wp;
  pad_planes(pin, in, B * cin, H, W, g->Hp, g->Wp, 1, 1);
#pragma omp parallel num_threads(nn_threads())
  {
    float *V = scratch + per * omp_get_thread_num();
    float *M = V + (size_t)36 * cin * nb;
    float *zero = M + (size_t)36 * coutp * nb;  // a zero patch for lanes past the last tile
    memset(zero, 0, PATCH * sizeof(float));
#pragma omp for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
      int p0 = blk * nb, n = g->P - p0 < nb ? g->P - p0 : nb;
      /* input transform */
      for (int q0 = 0; q0 < nb; q0 += 8) {
        int bs[8] = {0}, ys[8] = {0}, xs[8] = {0};
        for (int t = 0; t < 8; t++)
          if (q0 + t < n) tile_of(g, p0 + q0 + t, bs + t, ys + t, xs + t);
        if (row_group(g, p0 + q0, n - q0)) {
          for (int c = 0; c < cin; c++)
            in8_row(V + (size_t)c * nb + q0, (size_t)cin * nb,
                    pin + ((size_t)bs[0] * cin + c) * pplane + (size_t)ys[0] * 4 * g->Wp + xs[0] * 4, g->Wp);
          continue;
        }
        for (int c = 0; c < cin; c++) {
          const float *src[8];
          int ld[8];
          for (int t = 0; t < 8; t++) {
            if (q0 + t < n) {
              src[t] = pin + ((size_t)bs[t] * cin + c) * pplane + (size_t)ys[t] * 4 * g->Wp + xs[t] * 4;
              ld[t] = g->Wp;
            } else {
              src[t] = zero;
              ld[t] = 8;
            }
          }
          in8(V + (size_t)c * nb + q0, (size_t)cin * nb, src, ld);
        }
      }
      /* 36 GEMMs */
      for (int xi = 0; xi < 36; xi++) {
        const float *Ux = U + (size_t)xi * cout * cin, *Vx = V + (size_t)xi * cin * nb;
        float *Mx = M + (size_t)xi * coutp * nb;
        for (int cp = 0; cp < coutp; cp += MR)
          for (int q = 0; q < nb; q += NR)
            kern6x16(cin, Ux + cp * ur, uk, ur, Vx + q, nb, Mx + (size_t)cp * nb + q, nb, 0);
      }
      /* output transform */
      for (int q0 = 0; q0 < n; q0 += 8) {
        int bs[8] = {0}, ys[8] = {0}, xs[8] = {0}, m = n - q0 < 8 ? n - q0 : 8;
        for (int t = 0; t < m; t++) tile_of(g, p0 + q0 + t, bs + t, ys + t, xs + t);
        if (row_group(g, p0 + q0, n - q0)) {
          if (4 * (xs[0] + 8) <= W && 4 * ys[0] + 4 <= H) {
            for (int o = 0; o < cout; o++)
              out8_row(out + ((size_t)bs[0] * cout + o) * plane + (size_t)ys[0] * 4 * W + xs[0] * 4,
                       W, M + (size_t)o * nb + q0, (size_t)coutp * nb, bias ? bias[o] : 0.f, acc);
            continue;
          }
          for (int t = 0; t < 8; t++) xs[t] = xs[0] + ROW_ORDER[t];  // lanes in row order
        }
        /* tiles of one group may span two images: split by image */
        for (int t0 = 0; t0 < m;) {
          int t1 = t0 + 1;
          while (t1 < m && bs[t1] == bs[t0]) t1++;
          for (int o = 0; o < cout; o++) {
            float *pl = out + ((size_t)bs[t0] * cout + o) * plane;
            /* out8 stores lanes t0..t1-1: shift the source so lane t0 comes first */
            out8(pl, H, W, ys + t0, xs + t0, t1 - t0, M + (size_t)o * nb + q0 + t0,
                 (size_t)coutp * nb, bias ? bias[o] : 0.f, acc);
          }
          t0 = t1;
        }
      }
    }
  }
}

/* G x for x[0..2] -> y[0..5], lanes independent */
#define WINO_G(x, y)                                                                       \
  do {                                                                                     \
    __m256 e_ = _mm256_mul_ps(_mm256_add_ps(x[0], x[2]), r6);                              \
    __m256 f_ = _mm256_fmadd_ps(x[0], r24, _mm256_mul_ps(x[2], r6));                       \
    y[0] = _mm256_mul_ps(x[0], r4);                                                        \
    y[1] = _mm256_fnmadd_ps(x[1], r6, _mm256_sub_ps(_mm256_setzero_ps(), e_));             \
    y[2] = _mm256_fmsub_ps(x[1], r6, e_);                                                  \
    y[3] = _mm256_fmadd_ps(x[1], r12, f_);                                                 \
    y[4] = _mm256_fnmadd_ps(x[1], r12, f_);                                                \
    y[5] = x[2];                                                                           \
  } while (0)

/* U (36, cout * cin) = G g G^T for every 3x3 kernel g of w (cout, cin, 3, 3), in w's order;
 * flip: of the flipped kernels (the backward-data convolution). 8 kernels in lanes: an 8x8
 * transpose and a gather in, 36 contiguous stores out. The kernel reads U with strides, so no transposition here. */
WINO_TARGET static void pack_u(float *U, const float *w, int cout, int cin, int flip) {
  const __m256 r4 = _mm256_set1_ps(R4), r6 = _mm256_set1_ps(R6), r12 = _mm256_set1_ps(R12);
  const __m256 r24 = _mm256_set1_ps(R24);
  const __m256i vi = _mm256_setr_epi32(0, 9, 18, 27, 36, 45, 54, 63);
  size_t n = (size_t)cout * cin, n8 = n / 8 * 8;
#pragma omp parallel num_threads(nn_threads())
  {
#pragma omp for schedule(static)
    for (size_t i = 0; i < n8; i += 8) {
      const float *g = w + i * 9;
      /* taps 0..7 of the 8 kernels by an 8x8 transpose, tap 8 by a gather */
      __m256 tap[9];
      for (int j = 0; j < 8; j++) tap[j] = _mm256_loadu_ps(g + 9 * j);
      tr8(tap);
      tap[8] = _mm256_i32gather_ps(g + 8, vi, 4);
      __m256 t[6][3];
      for (int col = 0; col < 3; col++) {
        __m256 x[3], y[6];
        for (int r = 0; r < 3; r++) {
          int k = r * 3 + col;
          x[r] = tap[flip ? 8 - k : k];
        }
        WINO_G(x, y);
        for (int r = 0; r < 6; r++) t[r][col] = y[r];
      }
      for (int r = 0; r < 6; r++) {
        __m256 y[6];
        WINO_G(t[r], y);
        for (int k = 0; k < 6; k++) _mm256_storeu_ps(U + (size_t)(r * 6 + k) * n + i, y[k]);
      }
    }
#pragma omp single
    {
      /* the last n % 8 kernels, one lane each, through a buffer */
      for (size_t i = n8; i < n; i++) {
        float gb[72] = {0}, ub[36][8];
        for (int k = 0; k < 9; k++) gb[k] = w[i * 9 + k];
        __m256 t[6][3];
        for (int col = 0; col < 3; col++) {
          __m256 x[3], y[6];
          for (int r = 0; r < 3; r++) {
            int k = r * 3 + col;
            x[r] = _mm256_i32gather_ps(gb + (flip ? 8 - k : k), vi, 4);
          }
          WINO_G(x, y);
          for (int r = 0; r < 6; r++) t[r][col] = y[r];
        }
        for (int r = 0; r < 6; r++) {
          __m256 y[6];
          WINO_G(t[r], y);
          for (int k = 0; k < 6; k++) _mm256_storeu_ps(ub[r * 6 + k], y[k]);
        }
        for (int xi = 0; xi < 36; xi++) U[(size_t)xi * n + i] = ub[xi][0];
      }
      /* the 6-row kernel may read up to 5 rows past the last output channel */
      memset(U + 36 * n, 0, sizeof(float) * u_slack(cin, cout));
    }
  }
}

static void build_u(float *U, const float *w, int cout, int cin) { pack_u(U, w, cout, cin, 0); }

void nn_wino_forward(float *out, const float *in, const float *w, const float *b,
                     const nn_conv2d_dims *d, float *scratch, int acc) {
  wino_geom g = geom(d, d->Cin, d->Cout);
  float *U = scratch, *pin = U + u_size(d->Cin, d->Cout);
  const float *Uk = nn_wcache_get(w, (size_t)d->Cout * d->Cin * 9, 2, d->Cout, d->Cin,
                                  u_size(d->Cin, d->Cout), build_u);
  if (!Uk) pack_u(U, w, d->Cout, d->Cin, 0);
  fwd_run(out, in, Uk ? Uk : U, 1, d->Cin, b, d->B, d->Cin, d->Cout, d->H, d->W, &g, pin,
          scratch + fwd_shared(d, d->Cin, d->Cout), fwd_thread(d, d->Cin, d->Cout), acc);
}

/* G^T x for x[0..5] -> y[0..2] */
#define WINO_GT(x, y)                                                                          \
  do {                                                                                         \
    __m256 s12_ = _mm256_add_ps(x[1], x[2]), s34_ = _mm256_add_ps(x[3], x[4]);                 \
    y[0] = _mm256_fmadd_ps(x[0], r4, _mm256_fmsub_ps(s34_, r24, _mm256_mul_ps(s12_, r6)));     \
    y[1] = _mm256_fmadd_ps(_mm256_sub_ps(x[2], x[1]), r6,                                      \
                           _mm256_mul_ps(_mm256_sub_ps(x[3], x[4]), r12));                     \
    y[2] = _mm256_fmadd_ps(_mm256_sub_ps(s34_, s12_), r6, x[5]);                               \
  } while (0)

/* dw (Cout, Cin, 3, 3) += G^T X G for X (36, co6, ldv); 8 input channels in lanes */
WINO_TARGET static void unpack_dw(float *dw, const float *X, int Cout, int Cin, int co6, int ldv) {
  const __m256 r4 = _mm256_set1_ps(R4), r6 = _mm256_set1_ps(R6), r12 = _mm256_set1_ps(R12);
  const __m256 r24 = _mm256_set1_ps(R24);
  int ng = (Cin + 7) / 8;
  size_t xs = (size_t)co6 * ldv;
#pragma omp for schedule(static)
  for (int job = 0; job < Cout * ng; job++) {
    int co = job / ng, c0 = job % ng * 8;
    const float *x = X + (size_t)co * ldv + c0;
    __m256 t[3][6];
    for (int k = 0; k < 6; k++) {
      __m256 v[6], y[3];
      for (int r = 0; r < 6; r++) v[r] = _mm256_loadu_ps(x + (r * 6 + k) * xs);
      WINO_GT(v, y);
      for (int r = 0; r < 3; r++) t[r][k] = y[r];
    }
    float o[9][8];
    for (int r = 0; r < 3; r++) {
      __m256 y[3];
      WINO_GT(t[r], y);
      for (int k = 0; k < 3; k++) _mm256_storeu_ps(o[r * 3 + k], y[k]);
    }
    for (int l = 0; l < 8 && c0 + l < Cin; l++) {
      float *d = dw + ((size_t)co * Cin + c0 + l) * 9;
      for (int k = 0; k < 9; k++) d[k] += o[k][l];
    }
  }
}

/* dW (Cout, Cin, 3, 3) += correlation of in with dout, by 36 GEMMs over tiles. A block of nb
 * tiles is transformed with channels contiguous per tile, V (36, nb, ldv) and D (36, nb, ldd),
 * so that X[xi] (Cout, Cin) += D[xi]^T V[xi] runs on the 6x16 kernel with K = tiles. */
static void bwd_weight(float *dw, const float *dout, const float *in, const nn_conv2d_dims *d,
                       float *scratch) {
  wino_geom g = geom(d, d->Cin, d->Cout);
  int nb = bwd_nb(d), Cin = d->Cin, Cout = d->Cout, H = d->H, W = d->W;
  int ldv = rup(Cin, NR), ldd = bwd_ldd(Cout), co6 = rup(Cout, MR);
  int gin = (Cin + 7) / 8, gout = (Cout + 7) / 8, ngrp = nb / 8;
  int nblk = (g.P + nb - 1) / nb;
  float *X = scratch;                      // (36, co6, ldv)
  float *V = X + (size_t)36 * co6 * ldv;   // (36, nb, ldv)
  float *D = V + (size_t)36 * nb * ldv;    // (36, nb, ldd)
  float *pin = D + (size_t)36 * nb * ldd;  // (B, Cin, Hp, Wp) padded input
  float *pdy = pin + (size_t)d->B * Cin * g.Hp * g.Wp;  // (B, Cout, 4 th, Wp) padded dout
  float *pb = pdy + (size_t)d->B * Cout * 4 * g.th * g.Wp;  // per thread: zero patch, 8 x 36 x 8
  size_t pplane = (size_t)g.Hp * g.Wp, dplane = (size_t)4 * g.th * g.Wp;
  pad_planes(pin, in, d->B * Cin, H, W, g.Hp, g.Wp, 1, 1);
  pad_planes(pdy, dout, d->B * Cout, H, W, 4 * g.th, g.Wp, 0, 0);
#pragma omp parallel num_threads(nn_threads())
  {
    /* V and D need zeros in the columns the 8-channel transposes skip (X needs none: the first
     * block stores, later ones accumulate) */
    int cv = rup(Cin, 8), cd = rup(Cout, 8);
#pragma omp for schedule(static)
    for (int r = 0; r < 36 * nb; r++) {
      for (int c = cv; c < ldv; c++) V[(size_t)r * ldv + c] = 0.f;
      for (int c = cd; c < ldd; c++) D[(size_t)r * ldd + c] = 0.f;
    }
    float *zero = pb + bwd_thread_floats() * omp_get_thread_num(), *T = zero + PATCH;
    memset(zero, 0, PATCH * sizeof(float));
    for (int blk = 0; blk < nblk; blk++) {
      int p0 = blk * nb, n = g.P - p0 < nb ? g.P - p0 : nb;
      /* transforms, one job = 8 channels x 8 tiles */
#pragma omp for schedule(static)
      for (int job = 0; job < (gin + gout) * ngrp; job++) {
        int cg = job / ngrp, q0 = job % ngrp * 8, isin = cg < gin;
        int c0 = (isin ? cg : cg - gin) * 8, C = isin ? Cin : Cout;
        int bs[8] = {0}, ys[8] = {0}, xs[8] = {0};
        for (int t = 0; t < 8; t++)
          if (q0 + t < n) tile_of(&g, p0 + q0 + t, bs + t, ys + t, xs + t);
        int rowg = row_group(&g, p0 + q0, n - q0);
        for (int c8 = 0; c8 < 8; c8++) {
          const float *src[8];
          int ld[8], ch = c0 + c8;
          if (rowg && ch < C) {
            if (isin)
              in8_row(T + c8 * 288, 8, pin + ((size_t)bs[0] * Cin + ch) * pplane + (size_t)ys[0] * 4 * g.Wp + xs[0] * 4, g.Wp);
            else
              dy8_row(T + c8 * 288, 8, pdy + ((size_t)bs[0] * Cout + ch) * dplane + (size_t)ys[0] * 4 * g.Wp + xs[0] * 4, g.Wp);
            continue;
          }
          for (int t = 0; t < 8; t++) {
            src[t] = zero;
            ld[t] = 8;
            if (q0 + t >= n || ch >= C) continue;
            ld[t] = g.Wp;
            if (isin)
              src[t] = pin + ((size_t)bs[t] * Cin + ch) * pplane + (size_t)ys[t] * 4 * g.Wp + xs[t] * 4;
            else
              src[t] = pdy + ((size_t)bs[t] * Cout + ch) * dplane + (size_t)ys[t] * 4 * g.Wp + xs[t] * 4;
          }
          if (isin)
            in8(T + c8 * 288, 8, src, ld);
          else
            dy8(T + c8 * 288, 8, src, ld);
        }
        if (isin)
          scatter8(V + (size_t)q0 * ldv + c0, (size_t)nb * ldv, ldv, T);
        else
          scatter8(D + (size_t)q0 * ldd + c0, (size_t)nb * ldd, ldd, T);
      }
      /* 36 GEMMs, split over xi */
#pragma omp for schedule(static)
      for (int xi = 0; xi < 36; xi++) {
        const float *Dx = D + (size_t)xi * nb * ldd, *Vx = V + (size_t)xi * nb * ldv;
        float *Xx = X + (size_t)xi * co6 * ldv;
        for (int ci = 0; ci < ldv; ci += NR)
          for (int co = 0; co < co6; co += MR)
            kern6x16(n, Dx + co, ldd, 1, Vx + ci, ldv, Xx + (size_t)co * ldv + ci, ldv, blk > 0);
      }
    }
    unpack_dw(dw, X, Cout, Cin, co6, ldv);
  }
}

void nn_wino_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                      const nn_conv2d_dims *d, float *scratch) {
  if (din) {
    /* din += conv3x3(dout) with the flipped, transposed weight */
    nn_conv2d_dims t = *d;
    t.Cin = d->Cout;
    t.Cout = d->Cin;
    wino_geom g = geom(&t, t.Cin, t.Cout);
    pack_u(scratch, w, d->Cout, d->Cin, 1);
    /* input channel co, output channel ci of the flipped convolution: U[xi][co Cin + ci] */
    fwd_run(din, dout, scratch, d->Cin, 1, NULL, d->B, d->Cout, d->Cin, d->H, d->W, &g,
            scratch + u_size(d->Cout, d->Cin), scratch + fwd_shared(&t, t.Cin, t.Cout),
            fwd_thread(&t, t.Cin, t.Cout), 1);
  }
  if (dw) bwd_weight(dw, dout, in, d, scratch);
}

#else

void nn_wino_forward(float *out, const float *in, const float *w, const float *b,
                     const nn_conv2d_dims *d, float *scratch, int acc) {
  SP_ASSERT(!"winograd: no AVX2 build");
}
void nn_wino_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                      const nn_conv2d_dims *d, float *scratch) {
  SP_ASSERT(!"winograd: no AVX2 build");
}

#endif
