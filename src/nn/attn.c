/* attn.c: multi-head scaled dot-product attention, channels first (as the qkv 1x1 conv of a
 * U-Net attention block produces it). Per (batch, head): Q (hd, Nq), K and V (hd, Nk);
 * S = scale Q^T K (Nq, Nk), P = softmax_rows(S), O = V P^T (hd, Nq). */
#pragma GCC optimize("O3", "no-math-errno", "no-trapping-math")  // vectorise the loops
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"

size_t nn_attention_scratch(const nn_attn_dims *d) {
  return (size_t)nn_threads() * ((size_t)d->Nq * d->Nk + 16);
}

static void softmax_rows(float *p, int rows, int n) {
  for (int r = 0; r < rows; r++) {
    float *x = p + (size_t)r * n, mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float z = 0.f;
    for (int i = 0; i < n; i++) z += (x[i] = expf(x[i] - mx));
    float inv = 1.f / z;
    for (int i = 0; i < n; i++) x[i] *= inv;
  }
}

void nn_attention_forward(float *out, float *prob, const float *q, const float *k, const float *v,
                          const nn_attn_dims *d) {
  const int hd = d->hd, Nq = d->Nq, Nk = d->Nk, nh = d->nh;
#pragma omp parallel for schedule(dynamic) num_threads(nn_threads())
  for (int bh = 0; bh < d->B * nh; bh++) {
    int b = bh / nh, h = bh % nh;
    const float *Q = q + b * d->q_bs + (size_t)h * hd * Nq;
    const float *K = k + b * d->k_bs + (size_t)h * hd * Nk;
    const float *V = v + b * d->v_bs + (size_t)h * hd * Nk;
    float *P = prob + (size_t)bh * Nq * Nk;
    float *O = out + ((size_t)b * nh + h) * hd * Nq;
    nn_sgemm(1, 0, Nq, Nk, hd, d->scale, Q, Nq, K, Nk, 0.f, P, Nk);
    softmax_rows(P, Nq, Nk);
    nn_sgemm(0, 1, hd, Nq, Nk, 1.f, V, Nk, P, Nk, 0.f, O, Nq);
  }
}

void nn_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *prob,
                           const float *q, const float *k, const float *v, const nn_attn_dims *d,
                           float *scratch) {
  const int hd = d->hd, Nq = d->Nq, Nk = d->Nk, nh = d->nh;
  size_t per = nn_attention_scratch(d) / nn_threads();
#pragma omp parallel for schedule(dynamic) num_threads(nn_threads())
  for (int bh = 0; bh < d->B * nh; bh++) {
    int b = bh / nh, h = bh % nh;
    size_t qo = b * d->q_bs + (size_t)h * hd * Nq, ko = b * d->k_bs + (size_t)h * hd * Nk,
           vo = b * d->v_bs + (size_t)h * hd * Nk;
    const float *P = prob + (size_t)bh * Nq * Nk;
    const float *dO = dout + ((size_t)b * nh + h) * hd * Nq;
    float *dP = scratch + per * omp_get_thread_num();
    if (dv) nn_sgemm(0, 0, hd, Nk, Nq, 1.f, dO, Nq, P, Nk, 1.f, dv + vo, Nk);
    nn_sgemm(1, 0, Nq, Nk, hd, 1.f, dO, Nq, v + vo, Nk, 0.f, dP, Nk);
    for (int r = 0; r < Nq; r++) {
      const float *pr = P + (size_t)r * Nk;
      float *gr = dP + (size_t)r * Nk, s = 0.f;
      for (int i = 0; i < Nk; i++) s += pr[i] * gr[i];
      for (int i = 0; i < Nk; i++) gr[i] = pr[i] * (gr[i] - s);
    }
    if (dq) nn_sgemm(0, 1, hd, Nq, Nk, d->scale, k + ko, Nk, dP, Nk, 1.f, dq + qo, Nq);
    if (dk) nn_sgemm(0, 0, hd, Nk, Nq, d->scale, q + qo, Nq, dP, Nk, 1.f, dk + ko, Nk);
  }
}

void nn_attention_forward_ref(float *out, const float *q, const float *k, const float *v,
                              const nn_attn_dims *d) {
  const int hd = d->hd, Nq = d->Nq, Nk = d->Nk, nh = d->nh;
  double s[Nk > 0 ? Nk : 1];
  for (int b = 0; b < d->B; b++)
    for (int h = 0; h < nh; h++) {
      const float *Q = q + b * d->q_bs + (size_t)h * hd * Nq;
      const float *K = k + b * d->k_bs + (size_t)h * hd * Nk;
      const float *V = v + b * d->v_bs + (size_t)h * hd * Nk;
      float *O = out + ((size_t)b * nh + h) * hd * Nq;
      for (int i = 0; i < Nq; i++) {
        double mx = -INFINITY, z = 0.0;
        for (int j = 0; j < Nk; j++) {
          double a = 0.0;
          for (int c = 0; c < hd; c++) a += (double)Q[(size_t)c * Nq + i] * K[(size_t)c * Nk + j];
          s[j] = a * d->scale;
          if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j < Nk; j++) z += (s[j] = exp(s[j] - mx));
        for (int c = 0; c < hd; c++) {
          double o = 0.0;
          for (int j = 0; j < Nk; j++) o += s[j] / z * V[(size_t)c * Nk + j];
          O[(size_t)c * Nq + i] = (float)o;
        }
      }
    }
}
