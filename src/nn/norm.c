/* norm.c: group norm, batch norm (each fused with the activation after it), layer norm, and the
 * pointwise activations. Fused backward recomputes the pre-activation from x, mean and rstd, so
 * a GroupNorm+SiLU pair stores only its input. */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"

/* ---------------------------------------------------------------------------------------------
 * activations */

static inline float softplusf(float x) { return x > 20.f ? x : log1pf(expf(x)); }

float nn_act_value(float x, nn_act act) {
  switch (act) {
  case NN_ACT_SILU: return x / (1.f + expf(-x));
  case NN_ACT_MISH: return x * tanhf(softplusf(x));
  case NN_ACT_RELU: return x > 0.f ? x : 0.f;
  case NN_ACT_GELU: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
  default: return x;
  }
}

float nn_act_deriv(float x, nn_act act) {
  switch (act) {
  case NN_ACT_SILU: {
    float s = 1.f / (1.f + expf(-x));
    return s * (1.f + x * (1.f - s));
  }
  case NN_ACT_MISH: {
    float tsp = tanhf(softplusf(x)), s = 1.f / (1.f + expf(-x));
    return tsp + x * s * (1.f - tsp * tsp);
  }
  case NN_ACT_RELU: return x > 0.f ? 1.f : 0.f;
  case NN_ACT_GELU: {
    float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
    float pdf = 0.3989422804014327f * expf(-0.5f * x * x);
    return cdf + x * pdf;
  }
  default: return 1.f;
  }
}

void nn_act_forward(float *out, const float *x, size_t n, nn_act act) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n > 32768)
  for (size_t i = 0; i < n; i++) out[i] = nn_act_value(x[i], act);
}

void nn_act_backward(float *dx, const float *dout, const float *x, size_t n, nn_act act) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n > 32768)
  for (size_t i = 0; i < n; i++) dx[i] += dout[i] * nn_act_deriv(x[i], act);
}

/* ---------------------------------------------------------------------------------------------
 * group norm */

/* mean and rstd of n floats, accumulated in double (one pass of sum and sum of squares is fine
 * in double for the magnitudes of activations) */
static void moments(const float *x, size_t n, float eps, float *mean, float *rstd) {
  double s = 0.0, q = 0.0;
  for (size_t i = 0; i < n; i++) {
    s += x[i];
    q += (double)x[i] * x[i];
  }
  double m = s / n, v = q / n - m * m;
  if (v < 0) v = 0;
  *mean = (float)m;
  *rstd = (float)(1.0 / sqrt(v + eps));
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
      const float *xc = xg + (size_t)cc * S;
      float *oc = og + (size_t)cc * S;
      switch (act) {
      case NN_ACT_NONE:
        for (int i = 0; i < S; i++) oc[i] = xc[i] * sc + sh;
        break;
      case NN_ACT_SILU:
        for (int i = 0; i < S; i++) {
          float z = xc[i] * sc + sh;
          oc[i] = z / (1.f + expf(-z));
        }
        break;
      default:
        for (int i = 0; i < S; i++) oc[i] = nn_act_value(xc[i] * sc + sh, act);
      }
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
        const float *xc = xg + (size_t)cc * S, *dc = dg + (size_t)cc * S;
        float gm = gamma[c], bt = beta[c];
        float a1 = 0.f, a2 = 0.f;  // sum dz, sum dz*xhat for this channel
        for (int i = 0; i < S; i++) {
          float xh = (xc[i] - m) * r;
          float dz = dc[i];
          if (act != NN_ACT_NONE) dz *= nn_act_deriv(xh * gm + bt, act);
          a1 += dz;
          a2 += dz * xh;
        }
        if (dbeta) dbeta[c] += a1;
        if (dgamma) dgamma[c] += a2;
        s1 += (double)a1 * gm;
        s2 += (double)a2 * gm;
      }
      if (!dx) continue;
      float k1 = (float)(s1 / gs), k2 = (float)(s2 / gs);
      float *dxg = dx + (size_t)bg * gs;
      for (int cc = 0; cc < Cg; cc++) {
        int c = g * Cg + cc;
        const float *xc = xg + (size_t)cc * S, *dc = dg + (size_t)cc * S;
        float *dxc = dxg + (size_t)cc * S;
        float gm = gamma[c], bt = beta[c];
        for (int i = 0; i < S; i++) {
          float xh = (xc[i] - m) * r;
          float dz = dc[i];
          if (act != NN_ACT_NONE) dz *= nn_act_deriv(xh * gm + bt, act);
          dxc[i] += r * (dz * gm - k1 - xh * k2);
        }
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
    double s = 0.0, q = 0.0;
    for (int b = 0; b < B; b++) {
      const float *xc = x + ((size_t)b * C + c) * S;
      float fs = 0.f, fq = 0.f;
      for (int i = 0; i < S; i++) {
        fs += xc[i];
        fq += xc[i] * xc[i];
      }
      s += fs;
      q += fq;
    }
    size_t n = (size_t)B * S;
    double m = s / n, v = q / n - m * m;
    if (v < 0) v = 0;
    float r = (float)(1.0 / sqrt(v + eps));
    mean[c] = (float)m;
    rstd[c] = r;
    if (run_mean) run_mean[c] = (1.f - momentum) * run_mean[c] + momentum * (float)m;
    if (run_var) run_var[c] = (1.f - momentum) * run_var[c] + momentum * (float)(v * n / (n > 1 ? n - 1 : 1));
    float sc = r * gamma[c], sh = beta[c] - (float)m * sc;
    for (int b = 0; b < B; b++) {
      const float *xc = x + ((size_t)b * C + c) * S;
      float *oc = out + ((size_t)b * C + c) * S;
      if (act == NN_ACT_RELU)
        for (int i = 0; i < S; i++) {
          float z = xc[i] * sc + sh;
          oc[i] = z > 0.f ? z : 0.f;
        }
      else
        for (int i = 0; i < S; i++) oc[i] = nn_act_value(xc[i] * sc + sh, act);
    }
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
      const float *xc = x + ((size_t)b * C + c) * S, *dc = dout + ((size_t)b * C + c) * S;
      float f1 = 0.f, f2 = 0.f;
      for (int i = 0; i < S; i++) {
        float xh = (xc[i] - m) * r, dz = dc[i];
        if (act == NN_ACT_RELU) dz = xh * gm + bt > 0.f ? dz : 0.f;
        else if (act != NN_ACT_NONE) dz *= nn_act_deriv(xh * gm + bt, act);
        f1 += dz;
        f2 += dz * xh;
      }
      a1 += f1;
      a2 += f2;
    }
    if (dbeta) dbeta[c] += (float)a1;
    if (dgamma) dgamma[c] += (float)a2;
    if (!dx) continue;
    size_t n = (size_t)B * S;
    float k1 = (float)(a1 * gm / n), k2 = (float)(a2 * gm / n);
    for (int b = 0; b < B; b++) {
      const float *xc = x + ((size_t)b * C + c) * S, *dc = dout + ((size_t)b * C + c) * S;
      float *dxc = dx + ((size_t)b * C + c) * S;
      for (int i = 0; i < S; i++) {
        float xh = (xc[i] - m) * r, dz = dc[i];
        if (act == NN_ACT_RELU) dz = xh * gm + bt > 0.f ? dz : 0.f;
        else if (act != NN_ACT_NONE) dz *= nn_act_deriv(xh * gm + bt, act);
        dxc[i] += r * (dz * gm - k1 - xh * k2);
      }
    }
  }
}
