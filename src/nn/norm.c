/* norm.c: group norm, batch norm (each fused with the activation after it), layer norm, and the
 * pointwise activations. Fused backward recomputes the pre-activation from x, mean and rstd, so
 * a GroupNorm+SiLU pair stores only its input. */
#pragma GCC optimize("O3", "no-trapping-math")  // before the includes, so inlines share it
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"
#include "nn/nn_fast.h"


/* ---------------------------------------------------------------------------------------------
 * activations */


float nn_act_value(float x, nn_act act) {
  switch (act) {
  case NN_ACT_SILU: return nn_fsilu(x);
  case NN_ACT_MISH: return nn_fmish(x);
  case NN_ACT_RELU: return x > 0.f ? x : 0.f;
  case NN_ACT_GELU: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
  default: return x;
  }
}

float nn_act_deriv(float x, nn_act act) {
  switch (act) {
  case NN_ACT_SILU: return nn_fsilu_d(x);
  case NN_ACT_MISH: return nn_fmish_d(x);
  case NN_ACT_RELU: return x > 0.f ? 1.f : 0.f;
  case NN_ACT_GELU: {
    float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
    float pdf = 0.3989422804014327f * expf(-0.5f * x * x);
    return cdf + x * pdf;
  }
  default: return 1.f;
  }
}

NN_HOT_ACT static void act_fwd_kernel(float *restrict out, const float *restrict x, size_t n, nn_act act) {
  switch (act) {
  case NN_ACT_SILU:
    for (size_t i = 0; i < n; i++) out[i] = nn_fsilu(x[i]);
    break;
  case NN_ACT_MISH:
    for (size_t i = 0; i < n; i++) out[i] = nn_fmish(x[i]);
    break;
  case NN_ACT_RELU:
    for (size_t i = 0; i < n; i++) out[i] = x[i] > 0.f ? x[i] : 0.f;
    break;
  default:
    for (size_t i = 0; i < n; i++) out[i] = nn_act_value(x[i], act);
  }
}

NN_HOT_ACT static void act_bwd_kernel(float *restrict dx, const float *restrict dout,
                                  const float *restrict x, size_t n, nn_act act) {
  switch (act) {
  case NN_ACT_SILU:
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * nn_fsilu_d(x[i]);
    break;
  case NN_ACT_MISH:
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * nn_fmish_d(x[i]);
    break;
  default:
    for (size_t i = 0; i < n; i++) dx[i] += dout[i] * nn_act_deriv(x[i], act);
  }
}

void nn_act_forward(float *out, const float *x, size_t n, nn_act act) {
  int nt = n > 32768 ? nn_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int t = omp_get_thread_num(), k = omp_get_num_threads();
    size_t lo = n * t / k, hi = n * (t + 1) / k;
    act_fwd_kernel(out + lo, x + lo, hi - lo, act);
  }
}

void nn_act_backward(float *dx, const float *dout, const float *x, size_t n, nn_act act) {
  int nt = n > 32768 ? nn_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int t = omp_get_thread_num(), k = omp_get_num_threads();
    size_t lo = n * t / k, hi = n * (t + 1) / k;
    act_bwd_kernel(dx + lo, dout + lo, x + lo, hi - lo, act);
  }
}

/* ---------------------------------------------------------------------------------------------
 * group norm */

/* mean and sum of squared deviations of n floats: two passes over 8 float lanes (vectorised;
 * the second sums squared deviations, so there is no cancellation) */
NN_HOT static void mean_m2(const float *restrict x, size_t n, float *mean, double *m2) {
  float s[8] = {0}, q[8] = {0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) s[l] += x[i + l];
  double tot = 0.0;
  for (int l = 0; l < 8; l++) tot += s[l];
  for (; i < n; i++) tot += x[i];
  float m = (float)(tot / n);
  for (i = 0; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; l++) {
      float d = x[i + l] - m;
      q[l] += d * d;
    }
  double v = 0.0;
  for (int l = 0; l < 8; l++) v += q[l];
  for (; i < n; i++) v += (double)(x[i] - m) * (x[i] - m);
  *mean = m;
  *m2 = v;
}

static void moments(const float *x, size_t n, float eps, float *mean, float *rstd) {
  double m2;
  mean_m2(x, n, mean, &m2);
  *rstd = (float)(1.0 / sqrt(m2 / n + eps));
}

/* out = act(x sc + sh) over one channel */
NN_HOT_ACT static void affine_act(float *restrict o, const float *restrict x, int S, float sc, float sh,
                              nn_act act) {
  switch (act) {
  case NN_ACT_NONE:
    for (int i = 0; i < S; i++) o[i] = x[i] * sc + sh;
    break;
  case NN_ACT_SILU:
    for (int i = 0; i < S; i++) o[i] = nn_fsilu(x[i] * sc + sh);
    break;
  case NN_ACT_MISH:
    for (int i = 0; i < S; i++) o[i] = nn_fmish(x[i] * sc + sh);
    break;
  case NN_ACT_RELU:
    for (int i = 0; i < S; i++) {
      float z = x[i] * sc + sh;
      o[i] = z > 0.f ? z : 0.f;
    }
    break;
  default:
    for (int i = 0; i < S; i++) o[i] = nn_act_value(x[i] * sc + sh, act);
  }
}

/* dz = d act'(z) for the activations the norms fuse; act is a constant at each call site, so
 * the switch folds away */
static inline __attribute__((always_inline)) float norm_dz(float d, float z, nn_act act) {
  switch (act) {
  case NN_ACT_NONE: return d;
  case NN_ACT_SILU: return d * nn_fsilu_d(z);
  case NN_ACT_MISH: return d * nn_fmish_d(z);
  case NN_ACT_RELU: return z > 0.f ? d : 0.f;
  default: return d * nn_act_deriv(z, act);
  }
}

/* sum dz and sum dz xh in 16 independent lanes (a single running sum would be a serial chain of
 * adds: without reassociation the compiler cannot vectorise it) */
static inline __attribute__((always_inline)) void bwd_sums(const float *restrict x,
                                                           const float *restrict d, int S, float m,
                                                           float r, float gm, float bt, nn_act act,
                                                           float *a1, float *a2) {
  float p1[16] = {0}, p2[16] = {0}, s1 = 0.f, s2 = 0.f;
  int i = 0;
  for (; i + 16 <= S; i += 16)
    for (int l = 0; l < 16; l++) {
      float xh = (x[i + l] - m) * r, dz = norm_dz(d[i + l], xh * gm + bt, act);
      p1[l] += dz;
      p2[l] += dz * xh;
    }
  for (; i < S; i++) {
    float xh = (x[i] - m) * r, dz = norm_dz(d[i], xh * gm + bt, act);
    s1 += dz;
    s2 += dz * xh;
  }
  for (int l = 0; l < 16; l++) s1 += p1[l], s2 += p2[l];
  *a1 = s1;
  *a2 = s2;
}

/* backward over one channel of a normalised tensor: with xh = (x - m) r and
 * dz = dout act'(xh gm + bt): returns sum dz (a1) and sum dz xh (a2) */
NN_HOT_ACT static void norm_bwd_sums(const float *restrict x, const float *restrict d, int S, float m,
                                     float r, float gm, float bt, nn_act act, float *a1, float *a2) {
  switch (act) {
  case NN_ACT_NONE: bwd_sums(x, d, S, m, r, gm, bt, NN_ACT_NONE, a1, a2); break;
  case NN_ACT_SILU: bwd_sums(x, d, S, m, r, gm, bt, NN_ACT_SILU, a1, a2); break;
  case NN_ACT_MISH: bwd_sums(x, d, S, m, r, gm, bt, NN_ACT_MISH, a1, a2); break;
  case NN_ACT_RELU: bwd_sums(x, d, S, m, r, gm, bt, NN_ACT_RELU, a1, a2); break;
  default: bwd_sums(x, d, S, m, r, gm, bt, act, a1, a2);
  }
}

/* dx += r (dz gm - k1 - xh k2) over one channel */
NN_HOT_ACT static void norm_bwd_dx(float *restrict dx, const float *restrict x, const float *restrict d,
                               int S, float m, float r, float gm, float bt, float k1, float k2,
                               nn_act act) {
  switch (act) {
  case NN_ACT_NONE:
    for (int i = 0; i < S; i++) {
      float xh = (x[i] - m) * r;
      dx[i] += r * (d[i] * gm - k1 - xh * k2);
    }
    break;
  case NN_ACT_SILU:
    for (int i = 0; i < S; i++) {
      float xh = (x[i] - m) * r, dz = d[i] * nn_fsilu_d(xh * gm + bt);
      dx[i] += r * (dz * gm - k1 - xh * k2);
    }
    break;
  case NN_ACT_MISH:
    for (int i = 0; i < S; i++) {
      float xh = (x[i] - m) * r, dz = d[i] * nn_fmish_d(xh * gm + bt);
      dx[i] += r * (dz * gm - k1 - xh * k2);
    }
    break;
  case NN_ACT_RELU:
    for (int i = 0; i < S; i++) {
      float xh = (x[i] - m) * r, dz = xh * gm + bt > 0.f ? d[i] : 0.f;
      dx[i] += r * (dz * gm - k1 - xh * k2);
    }
    break;
  default:
    for (int i = 0; i < S; i++) {
      float xh = (x[i] - m) * r, dz = d[i] * nn_act_deriv(xh * gm + bt, act);
      dx[i] += r * (dz * gm - k1 - xh * k2);
    }
  }
}

void nn_groupnorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int B, int C, int S, int G,
                          float eps, nn_act act) {
  SP_ASSERT(C % G == 0);
  int Cg = C / G;
  size_t gs = (size_t)Cg * S;
#pragma omp parallel for schedule(dynamic) num_threads(nn_threads()) if ((size_t)B * C * S > 16384)
  for (int bg = 0; bg < B * G; bg++) {
    const float *xg = x + (size_t)bg * gs;
    float *og = out + (size_t)bg * gs;
    float m, r;
    moments(xg, gs, eps, &m, &r);
    mean[bg] = m;
    rstd[bg] = r;
    int g = bg % G;
    for (int cc = 0; cc < Cg; cc++) {
      int c = g * Cg + cc;
      float sc = r * gamma[c], sh = beta[c] - m * sc;
      affine_act(og + (size_t)cc * S, xg + (size_t)cc * S, S, sc, sh, act);
    }
  }
}

void nn_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *mean, const float *rstd,
                           const float *gamma, const float *beta, int B, int C, int S, int G,
                           nn_act act) {
  int Cg = C / G;
  size_t gs = (size_t)Cg * S;
  /* parallel over groups: each group owns its channels' dgamma/dbeta */
#pragma omp parallel for schedule(dynamic) num_threads(nn_threads()) if ((size_t)B * C * S > 16384)
  for (int g = 0; g < G; g++) {
    for (int b = 0; b < B; b++) {
      int bg = b * G + g;
      const float *xg = x + (size_t)bg * gs, *dg = dout + (size_t)bg * gs;
      float m = mean[bg], r = rstd[bg];
      double s1 = 0.0, s2 = 0.0;  // sum dz*gamma, sum dz*gamma*xhat
      for (int cc = 0; cc < Cg; cc++) {
        int c = g * Cg + cc;
        float a1, a2;
        norm_bwd_sums(xg + (size_t)cc * S, dg + (size_t)cc * S, S, m, r, gamma[c], beta[c], act, &a1, &a2);
        if (dbeta) dbeta[c] += a1;
        if (dgamma) dgamma[c] += a2;
        s1 += (double)a1 * gamma[c];
        s2 += (double)a2 * gamma[c];
      }
      if (!dx) continue;
      float k1 = (float)(s1 / gs), k2 = (float)(s2 / gs);
      float *dxg = dx + (size_t)bg * gs;
      for (int cc = 0; cc < Cg; cc++) {
        int c = g * Cg + cc;
        norm_bwd_dx(dxg + (size_t)cc * S, xg + (size_t)cc * S, dg + (size_t)cc * S, S, m, r, gamma[c], beta[c],
                    k1, k2, act);
      }
    }
  }
}

void nn_groupnorm_forward_ref(float *out, const float *x, const float *gamma, const float *beta,
                              int B, int C, int S, int G, float eps, nn_act act) {
  int Cg = C / G;
  size_t gs = (size_t)Cg * S;
  for (int bg = 0; bg < B * G; bg++) {
    const float *xg = x + (size_t)bg * gs;
    double m = 0.0, v = 0.0;
    for (size_t i = 0; i < gs; i++) m += xg[i];
    m /= gs;
    for (size_t i = 0; i < gs; i++) v += (xg[i] - m) * (xg[i] - m);
    v /= gs;
    double r = 1.0 / sqrt(v + eps);
    int g = bg % G;
    for (size_t i = 0; i < gs; i++) {
      int c = g * Cg + (int)(i / S);
      float z = (float)((xg[i] - m) * r * gamma[c] + beta[c]);
      out[(size_t)bg * gs + i] = nn_act_value(z, act);
    }
  }
}

/* ---------------------------------------------------------------------------------------------
 * layer norm */

void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int N, int C, float eps) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if ((size_t)N * C > 16384)
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * C;
    float *o = out + (size_t)n * C;
    float m, r;
    moments(xr, C, eps, &m, &r);
    mean[n] = m;
    rstd[n] = r;
    for (int c = 0; c < C; c++) o[c] = (xr[c] - m) * r * gamma[c] + beta[c];
  }
}

void nn_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *mean, const float *rstd,
                           const float *gamma, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * C, *d = dout + (size_t)n * C;
    float m = mean[n], r = rstd[n];
    double s1 = 0.0, s2 = 0.0;
    for (int c = 0; c < C; c++) {
      float xh = (xr[c] - m) * r;
      if (dbeta) dbeta[c] += d[c];
      if (dgamma) dgamma[c] += d[c] * xh;
      s1 += d[c] * gamma[c];
      s2 += d[c] * gamma[c] * xh;
    }
    if (!dx) continue;
    float k1 = (float)(s1 / C), k2 = (float)(s2 / C);
    for (int c = 0; c < C; c++) {
      float xh = (xr[c] - m) * r;
      dx[(size_t)n * C + c] += r * (d[c] * gamma[c] - k1 - xh * k2);
    }
  }
}

/* ---------------------------------------------------------------------------------------------
 * batch norm (training mode) */

void nn_batchnorm_forward(float *out, float *mean, float *rstd, float *run_mean, float *run_var,
                          const float *x, const float *gamma, const float *beta, int B, int C,
                          int S, float eps, float momentum, nn_act act) {
#pragma omp parallel for schedule(dynamic) num_threads(nn_threads()) if ((size_t)B * C * S > 16384)
  for (int c = 0; c < C; c++) {
    /* mean and squared deviations per sample (one slice, cache-resident for its second pass),
     * merged over the batch as Chan et al.: no cancellation, one pass over x from memory */
    double mu = 0.0, q = 0.0;
    for (int b = 0; b < B; b++) {
      float m1;
      double m2;
      mean_m2(x + ((size_t)b * C + c) * S, S, &m1, &m2);
      double delta = m1 - mu;
      mu += delta / (b + 1);
      q += m2 + delta * delta * S * ((double)b / (b + 1));
    }
    size_t n = (size_t)B * S;
    float m = (float)mu;
    double v = q / n;
    float r = (float)(1.0 / sqrt(v + eps));
    mean[c] = m;
    rstd[c] = r;
    if (run_mean) run_mean[c] = (1.f - momentum) * run_mean[c] + momentum * m;
    if (run_var) run_var[c] = (1.f - momentum) * run_var[c] + momentum * (float)(v * n / (n > 1 ? n - 1 : 1));
    float sc = r * gamma[c], sh = beta[c] - m * sc;
    for (int b = 0; b < B; b++)
      affine_act(out + ((size_t)b * C + c) * S, x + ((size_t)b * C + c) * S, S, sc, sh, act);
  }
}

void nn_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *mean, const float *rstd,
                           const float *gamma, const float *beta, int B, int C, int S,
                           nn_act act) {
#pragma omp parallel for schedule(dynamic) num_threads(nn_threads()) if ((size_t)B * C * S > 16384)
  for (int c = 0; c < C; c++) {
    float m = mean[c], r = rstd[c], gm = gamma[c], bt = beta[c];
    double a1 = 0.0, a2 = 0.0;
    for (int b = 0; b < B; b++) {
      float f1, f2;
      norm_bwd_sums(x + ((size_t)b * C + c) * S, dout + ((size_t)b * C + c) * S, S, m, r, gm, bt, act, &f1, &f2);
      a1 += f1;
      a2 += f2;
    }
    if (dbeta) dbeta[c] += (float)a1;
    if (dgamma) dgamma[c] += (float)a2;
    if (!dx) continue;
    size_t n = (size_t)B * S;
    float k1 = (float)(a1 * gm / n), k2 = (float)(a2 * gm / n);
    for (int b = 0; b < B; b++)
      norm_bwd_dx(dx + ((size_t)b * C + c) * S, x + ((size_t)b * C + c) * S, dout + ((size_t)b * C + c) * S, S, m,
                  r, gm, bt, k1, k2, act);
  }
}
