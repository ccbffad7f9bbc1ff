/* diffusion.c: schedules, targets, min-SNR weights, DDPM / DDIM steps, guidance. All schedule
 * arithmetic in double, as the reference implementations build their buffers in float64. */
#pragma GCC optimize("O3", "no-trapping-math")  // vectorise the per-element updates
#include <math.h>

#include "core/log.h"
#include "nn/nn_diffusion.h"

static double alpha_bar_cos(double t) {  // t in [0, 1]
  double c = cos((t + 0.008) / 1.008 * M_PI / 2);
  return c * c;
}

int nn_sched_init(nn_sched *s, nn_sched_kind kind, int T, double beta_start, double beta_end,
                  char *err) {
  if (T < 1 || T > NN_SCHED_MAX_T) return sp_errf(err, "diffusion steps %d out of range 1..%d", T, NN_SCHED_MAX_T);
  s->T = T;
  for (int i = 0; i < T; i++) {
    double b;
    switch (kind) {
    case NN_SCHED_LINEAR: b = T > 1 ? beta_start + (beta_end - beta_start) * i / (T - 1) : beta_start; break;
    case NN_SCHED_COSINE: {
      /* alphas_cumprod = f(x)/f(0) with x = linspace(0, T, T+1); beta = 1 - ac[i+1]/ac[i] */
      double f0 = alpha_bar_cos(0.0);
      double a0 = alpha_bar_cos((double)i / T) / f0, a1 = alpha_bar_cos((double)(i + 1) / T) / f0;
      b = 1.0 - a1 / a0;
      if (b < 0) b = 0;
      if (b > 0.999) b = 0.999;
      break;
    }
    default: {
      b = 1.0 - alpha_bar_cos((double)(i + 1) / T) / alpha_bar_cos((double)i / T);
      if (b > 0.999) b = 0.999;
    }
    }
    s->betas[i] = b;
    s->alphas_cumprod[i] = (i ? s->alphas_cumprod[i - 1] : 1.0) * (1.0 - b);
  }
  return 0;
}

double nn_sched_snr(const nn_sched *s, int t) {
  double ab = s->alphas_cumprod[t];
  return ab / (1.0 - ab);
}

float nn_min_snr_weight(const nn_sched *s, int t, nn_pred pred, float gamma) {
  if (gamma <= 0.f) return 1.f;
  double snr = nn_sched_snr(s, t), c = snr < gamma ? snr : gamma;
  switch (pred) {
  case NN_PRED_EPS: return (float)(c / snr);
  case NN_PRED_V: return (float)(c / (snr + 1.0));
  default: return (float)c;
  }
}

void nn_q_sample(float *xt, const float *x0, const float *eps, const nn_sched *s, const int *t,
                 int B, int per) {
  for (int b = 0; b < B; b++) {
    double ab = s->alphas_cumprod[t[b]];
    float ca = (float)sqrt(ab), cb = (float)sqrt(1.0 - ab);
    for (int i = 0; i < per; i++) {
      size_t k = (size_t)b * per + i;
      xt[k] = ca * x0[k] + cb * eps[k];
    }
  }
}

void nn_diffusion_target(float *target, const float *x0, const float *eps, const nn_sched *s,
                         const int *t, int B, int per, nn_pred pred) {
  for (int b = 0; b < B; b++) {
    double ab = s->alphas_cumprod[t[b]];
    float ca = (float)sqrt(ab), cb = (float)sqrt(1.0 - ab);
    for (int i = 0; i < per; i++) {
      size_t k = (size_t)b * per + i;
      target[k] = pred == NN_PRED_EPS ? eps[k] : pred == NN_PRED_X0 ? x0[k] : ca * eps[k] - cb * x0[k];
    }
  }
}

void nn_predict_x0_eps(float *x0, float *eps, const float *out, const float *xt,
                       const nn_sched *s, int t, int n, nn_pred pred, int clip) {
  double ab = s->alphas_cumprod[t];
  float sa = (float)sqrt(ab), sb = (float)sqrt(1.0 - ab);
  float ra = (float)sqrt(1.0 / ab), rm = (float)sqrt(1.0 / ab - 1.0);
  for (int i = 0; i < n; i++) {
    float x, e;
    switch (pred) {
    case NN_PRED_EPS: e = out[i]; x = ra * xt[i] - rm * e; break;
    case NN_PRED_V: x = sa * xt[i] - sb * out[i]; e = sa * out[i] + sb * xt[i]; break;
    default: x = out[i]; e = (ra * xt[i] - x) / rm;
    }
    if (clip) {
      float c = x < -1.f ? -1.f : x > 1.f ? 1.f : x;
      if (c != x) e = (ra * xt[i] - c) / rm;
      x = c;
    }
    x0[i] = x;
    eps[i] = e;
  }
}

void nn_ddpm_step(float *xprev, const float *out, const float *xt, const float *noise,
                  const nn_sched *s, int t, int n, nn_pred pred, int clip, float *x0, float *eps) {
  nn_predict_x0_eps(x0, eps, out, xt, s, t, n, pred, clip);
  double ab = s->alphas_cumprod[t], abp = t > 0 ? s->alphas_cumprod[t - 1] : 1.0, beta = s->betas[t];
  float c1 = (float)(beta * sqrt(abp) / (1.0 - ab));
  float c2 = (float)((1.0 - abp) * sqrt(1.0 - beta) / (1.0 - ab));
  float sd = (float)sqrt(beta * (1.0 - abp) / (1.0 - ab));
  for (int i = 0; i < n; i++) xprev[i] = c1 * x0[i] + c2 * xt[i] + (t > 0 ? sd * noise[i] : 0.f);
}

void nn_ddim_step(float *xprev, const float *out, const float *xt, const float *noise,
                  const nn_sched *s, int t, int t_prev, float eta, int n, nn_pred pred, int clip,
                  float *x0, float *eps) {
  nn_predict_x0_eps(x0, eps, out, xt, s, t, n, pred, clip);
  if (t_prev < 0) {
    for (int i = 0; i < n; i++) xprev[i] = x0[i];
    return;
  }
  double a = s->alphas_cumprod[t], an = s->alphas_cumprod[t_prev];
  double sigma = eta * sqrt((1.0 - a / an) * (1.0 - an) / (1.0 - a));
  float ca = (float)sqrt(an), ce = (float)sqrt(fmax(0.0, 1.0 - an - sigma * sigma)), cs = (float)sigma;
  for (int i = 0; i < n; i++) xprev[i] = ca * x0[i] + ce * eps[i] + (cs != 0.f && noise ? cs * noise[i] : 0.f);
}

void nn_ddim_timesteps(int *ts, int steps, int T) {
  for (int i = 0; i <= steps; i++) {
    double v = -1.0 + (double)T * i / steps;  // linspace(-1, T-1, steps+1)
    ts[steps - i] = (int)v;                     // truncation toward zero, as .int() / list(int)
  }
}

void nn_cfg_combine(float *out, const float *cond, const float *uncond, float w, int n) {
  for (int i = 0; i < n; i++) out[i] = (1.f + w) * cond[i] - w * uncond[i];
}
