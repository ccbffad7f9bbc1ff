/* nn_fast.h (internal): vectorisable exp, sigmoid, SiLU and Mish with derivatives, and the
 * attribute that compiles a hot kernel twice (x86-64-v3 = AVX2+FMA, and baseline x86-64, chosen at load time
 * by an ifunc), so the default build stays portable. */
#ifndef SP_NN_FAST_H
#define SP_NN_FAST_H

#include <stdint.h>

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define NN_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
/* kernels of activations and selects get an AVX-512 clone too: its mask registers replace the
 * blends of the exp's clamps and of compare-and-select (SiLU 2x, Mish 2-3x, max-pool 1.3x faster
 * on this AMD CPU); plain copies and reductions stay on AVX2, where they measured as fast or
 * faster */
#define NN_HOT_ACT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NN_HOT
#define NN_HOT_ACT
#endif

/* sum of n floats in 16 independent lanes: a single running sum is a serial chain of adds that
 * the compiler may not reorder into vectors (bias gradients, norm statistics, pooling) */
static inline __attribute__((always_inline)) float nn_fsum(const float *restrict x, size_t n) {
  float p[16] = {0}, s = 0.f;
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; l++) p[l] += x[i + l];
  for (; i < n; i++) s += x[i];
  for (int l = 0; l < 16; l++) s += p[l];
  return s;
}

/* exp(x) to about 1 ulp for x in [-87, 88] (Cephes polynomial, branch-free so loops vectorise) */
static inline __attribute__((always_inline)) float nn_fexp(float x) {
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
  float t = x * 1.44269504088896341f + 12582912.0f;  // round(x log2 e) in the mantissa
  union { float f; int32_t i; } u = {t};
  int32_t n = u.i - 0x4B400000;
  float fn = t - 12582912.0f;
  float r = x - fn * 0.693359375f - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union { float f; int32_t i; } v = {p};
  v.i += (int32_t)((uint32_t)n << 23);  // 2^n (shift as unsigned: no UB for n < 0)
  return v.f;
}

static inline __attribute__((always_inline)) float nn_fsigmoid(float x) { return 1.0f / (1.0f + nn_fexp(-x)); }
static inline __attribute__((always_inline)) float nn_fsilu(float x) { return x * nn_fsigmoid(x); }
static inline __attribute__((always_inline)) float nn_fsilu_d(float x) {
  float s = nn_fsigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}
/* mish(x) = x tanh(softplus(x)); with n = e^x: tanh(log(1+n)) = n(n+2) / (n(n+2) + 2) */
static inline __attribute__((always_inline)) float nn_fmish(float x) {
  float n = nn_fexp(x < 20.f ? x : 20.f), t = n * (n + 2.0f);
  return x * (t / (t + 2.0f));
}
static inline __attribute__((always_inline)) float nn_fmish_d(float x) {
  float n = nn_fexp(x < 20.f ? x : 20.f), t = n * (n + 2.0f), tsp = t / (t + 2.0f);
  float sig = n / (n + 1.0f);
  return tsp + x * sig * (1.0f - tsp * tsp);
}

/* outputs o in [*o0, *o1) of a window sweep (stride s, padding p, tap j) that read inside
 * an input row of W: 0 <= o s - p + j < W, clipped to [0, Wo); *o0 <= *o1 */
static inline void nn_valid_range(int W, int Wo, int s, int p, int j, int *o0, int *o1) {
  int a = p - j > 0 ? (p - j + s - 1) / s : 0;
  int b = (W - 1 + p - j) >= 0 ? (W - 1 + p - j) / s + 1 : 0;
  if (b > Wo) b = Wo;
  if (a > b) a = b;
  *o0 = a;
  *o1 = b;
}

#endif
