/* ops.c: linear, shape and pooling ops, embeddings, spatial softmax, MSE loss. */
#pragma GCC optimize("O3", "no-math-errno", "no-trapping-math")  // vectorise the loops
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"
#include "nn/nn_fast.h"

#define NN_PAR_IF(n) if ((size_t)(n) > 32768)

/* ---------------------------------------------------------------------------------------------
 * linear */

void nn_linear_forward(float *out, const float *in, const float *w, const float *b, int N,
                       int In, int Out) {
  /* out (N, Out) = in (N, In) @ W^T */
  nn_sgemm(0, 1, N, Out, In, 1.f, in, In, w, In, 0.f, out, Out);
  if (b)
    for (int n = 0; n < N; n++)
      for (int o = 0; o < Out; o++) out[(size_t)n * Out + o] += b[o];
}

void nn_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int N, int In, int Out) {
  if (din) nn_sgemm(0, 0, N, In, Out, 1.f, dout, Out, w, In, 1.f, din, In);
  if (dw) nn_sgemm(1, 0, Out, In, N, 1.f, dout, Out, in, In, 1.f, dw, In);
  if (db)
    for (int n = 0; n < N; n++)
      for (int o = 0; o < Out; o++) db[o] += dout[(size_t)n * Out + o];
}

void nn_linear_forward_ref(float *out, const float *in, const float *w, const float *b, int N,
                           int In, int Out) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < Out; o++) {
      double s = b ? b[o] : 0.0;
      for (int i = 0; i < In; i++) s += (double)in[(size_t)n * In + i] * w[(size_t)o * In + i];
      out[(size_t)n * Out + o] = (float)s;
    }
}

void nn_linear_backward_ref(float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *w, int N, int In, int Out) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < Out; o++) {
      float g = dout[(size_t)n * Out + o];
      if (db) db[o] += g;
      for (int i = 0; i < In; i++) {
        if (dw) dw[(size_t)o * In + i] += g * in[(size_t)n * In + i];
        if (din) din[(size_t)n * In + i] += g * w[(size_t)o * In + i];
      }
    }
}

/* ---------------------------------------------------------------------------------------------
 * elementwise and broadcast */

void nn_add_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF(n)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void nn_add_backward(float *da, float *db, const float *dout, size_t n) {
  if (da)
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF(n)
    for (size_t i = 0; i < n; i++) da[i] += dout[i];
  if (db)
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF(n)
    for (size_t i = 0; i < n; i++) db[i] += dout[i];
}

void nn_add_bc_forward(float *x, const float *e, int B, int C, int S) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF((size_t)B * C * S)
  for (int bc = 0; bc < B * C; bc++) {
    float *r = x + (size_t)bc * S, v = e[bc];
    for (int i = 0; i < S; i++) r[i] += v;
  }
}

void nn_add_bc_backward(float *de, const float *dout, int B, int C, int S) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF((size_t)B * C * S)
  for (int bc = 0; bc < B * C; bc++) {
    de[bc] += nn_fsum(dout + (size_t)bc * S, S);
  }
}

void nn_film_forward(float *out, const float *h, const float *sb, int B, int C, int S) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      float sc = sb[(size_t)b * 2 * C + c], bi = sb[(size_t)b * 2 * C + C + c];
      const float *hr = h + ((size_t)b * C + c) * S;
      float *o = out + ((size_t)b * C + c) * S;
      for (int i = 0; i < S; i++) o[i] = sc * hr[i] + bi;
    }
}

void nn_film_backward(float *dh, float *dsb, const float *dout, const float *h, const float *sb,
                      int B, int C, int S) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++) {
      float sc = sb[(size_t)b * 2 * C + c];
      const float *hr = h + ((size_t)b * C + c) * S, *d = dout + ((size_t)b * C + c) * S;
      float s1 = 0.f, s2 = 0.f;
      for (int i = 0; i < S; i++) {
        s1 += d[i] * hr[i];
        s2 += d[i];
        if (dh) dh[((size_t)b * C + c) * S + i] += sc * d[i];
      }
      if (dsb) {
        dsb[(size_t)b * 2 * C + c] += s1;
        dsb[(size_t)b * 2 * C + C + c] += s2;
      }
    }
}

void nn_concat_forward(float *out, const float *a, const float *b, int B, int Ca, int Cb, int S) {
  size_t na = (size_t)Ca * S, nb = (size_t)Cb * S;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF(B * (na + nb))
  for (int i = 0; i < B; i++) {
    memcpy(out + i * (na + nb), a + i * na, sizeof(float) * na);
    memcpy(out + i * (na + nb) + na, b + i * nb, sizeof(float) * nb);
  }
}

void nn_concat_backward(float *da, float *db, const float *dout, int B, int Ca, int Cb, int S) {
  size_t na = (size_t)Ca * S, nb = (size_t)Cb * S;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF(B * (na + nb))
  for (int i = 0; i < B; i++) {
    const float *d = dout + i * (na + nb);
    if (da)
      for (size_t j = 0; j < na; j++) da[i * na + j] += d[j];
    if (db)
      for (size_t j = 0; j < nb; j++) db[i * nb + j] += d[na + j];
  }
}

/* ---------------------------------------------------------------------------------------------
 * resampling and pooling */

void nn_upsample2x_forward(float *out, const float *in, int N, int H, int W) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF((size_t)N * H * W * 4)
  for (int n = 0; n < N; n++)
    for (int h = 0; h < H; h++) {
      const float *r = in + ((size_t)n * H + h) * W;
      float *o = out + ((size_t)n * 2 * H + 2 * h) * 2 * W;
      for (int w = 0; w < W; w++) o[2 * w] = o[2 * w + 1] = r[w];
      memcpy(o + 2 * W, o, sizeof(float) * 2 * W);
    }
}

void nn_upsample2x_backward(float *din, const float *dout, int N, int H, int W) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF((size_t)N * H * W * 4)
  for (int n = 0; n < N; n++)
    for (int h = 0; h < H; h++) {
      const float *o = dout + ((size_t)n * 2 * H + 2 * h) * 2 * W;
      float *r = din + ((size_t)n * H + h) * W;
      for (int w = 0; w < W; w++) r[w] += o[2 * w] + o[2 * w + 1] + o[2 * W + 2 * w] + o[2 * W + 2 * w + 1];
    }
}

void nn_avgpool_forward(float *out, const float *in, int N, int H, int W, int k) {
  int Ho = H / k, Wo = W / k;
  float inv = 1.f / (k * k);
  for (int n = 0; n < N; n++)
    for (int oh = 0; oh < Ho; oh++)
      for (int ow = 0; ow < Wo; ow++) {
        float s = 0.f;
        for (int i = 0; i < k; i++)
          for (int j = 0; j < k; j++) s += in[((size_t)n * H + oh * k + i) * W + ow * k + j];
        out[((size_t)n * Ho + oh) * Wo + ow] = s * inv;
      }
}

void nn_avgpool_backward(float *din, const float *dout, int N, int H, int W, int k) {
  int Ho = H / k, Wo = W / k;
  float inv = 1.f / (k * k);
  for (int n = 0; n < N; n++)
    for (int oh = 0; oh < Ho; oh++)
      for (int ow = 0; ow < Wo; ow++) {
        float g = dout[((size_t)n * Ho + oh) * Wo + ow] * inv;
        for (int i = 0; i < k; i++)
          for (int j = 0; j < k; j++) din[((size_t)n * H + oh * k + i) * W + ow * k + j] += g;
      }
}

void nn_gap_forward(float *out, const float *in, int N, int S) {
  for (int n = 0; n < N; n++) {
    out[n] = nn_fsum(in + (size_t)n * S, S) / S;
  }
}

void nn_gap_backward(float *din, const float *dout, int N, int S) {
  for (int n = 0; n < N; n++) {
    float g = dout[n] / S;
    float *r = din + (size_t)n * S;
    for (int i = 0; i < S; i++) r[i] += g;
  }
}

/* one output row of max pooling: each output starts from its first valid input, then every
 * window tap runs over the outputs it is valid for, so the inner loop is a plain (strided)
 * compare-and-select that vectorises. Ties and NaNs as the per-window loop: the first maximum in
 * (row, column) order wins; a NaN first element stays. */
NN_HOT_ACT static void maxpool_row(float *o, int32_t *a, const float *in, int H, int W, int k, int s,
                               int p, int oh, int Wo) {
  for (int ow = 0; ow < Wo; ow++) {
    int ih = oh * s - p, iw = ow * s - p;
    ih = ih < 0 ? 0 : ih;
    iw = iw < 0 ? 0 : iw;
    o[ow] = in[(size_t)ih * W + iw];
    a[ow] = ih * W + iw;
  }
  for (int i = 0; i < k; i++) {
    int ih = oh * s - p + i;
    if (ih < 0 || ih >= H) continue;
    const float *ir = in + (size_t)ih * W;
    for (int j = 0; j < k; j++) {
      int ow0, ow1;
      nn_valid_range(W, Wo, s, p, j, &ow0, &ow1);
      for (int ow = ow0; ow < ow1; ow++) {
        int iw = ow * s - p + j;
        float v = ir[iw];
        int32_t idx = ih * W + iw;
        int take = v > o[ow];
        o[ow] = take ? v : o[ow];
        a[ow] = take ? idx : a[ow];
      }
    }
  }
}

void nn_maxpool_forward(float *out, int32_t *arg, const float *in, int N, int H, int W, int k,
                        int s, int p, int Ho, int Wo) {
#pragma omp parallel for collapse(2) schedule(static) num_threads(nn_threads()) NN_PAR_IF((size_t)N * Ho * Wo * k * k)
  for (int n = 0; n < N; n++)
    for (int oh = 0; oh < Ho; oh++)
      maxpool_row(out + ((size_t)n * Ho + oh) * Wo, arg + ((size_t)n * Ho + oh) * Wo,
                  in + (size_t)n * H * W, H, W, k, s, p, oh, Wo);
}

void nn_maxpool_backward(float *din, const float *dout, const int32_t *arg, int N, int H, int W,
                         int Ho, int Wo) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) NN_PAR_IF((size_t)N * Ho * Wo)
  for (int n = 0; n < N; n++)
    for (int i = 0; i < Ho * Wo; i++)
      din[(size_t)n * H * W + arg[(size_t)n * Ho * Wo + i]] += dout[(size_t)n * Ho * Wo + i];
}

void nn_subsample_forward(float *out, const float *in, int N, int H, int W, int s) {
  int Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  for (int n = 0; n < N; n++)
    for (int i = 0; i < Ho; i++)
      for (int j = 0; j < Wo; j++) out[((size_t)n * Ho + i) * Wo + j] = in[((size_t)n * H + i * s) * W + j * s];
}

void nn_subsample_backward(float *din, const float *dout, int N, int H, int W, int s) {
  int Ho = (H - 1) / s + 1, Wo = (W - 1) / s + 1;
  for (int n = 0; n < N; n++)
    for (int i = 0; i < Ho; i++)
      for (int j = 0; j < Wo; j++) din[((size_t)n * H + i * s) * W + j * s] += dout[((size_t)n * Ho + i) * Wo + j];
}

/* ---------------------------------------------------------------------------------------------
 * spatial softmax */

static float lin_pos(int i, int n) { return n > 1 ? -1.f + 2.f * i / (n - 1) : 0.f; }

void nn_spatial_softmax_forward(float *out, float *prob, const float *in, int B, int K, int H,
                                int W) {
  int S = H * W;
  for (int bk = 0; bk < B * K; bk++) {
    const float *x = in + (size_t)bk * S;
    float *p = prob + (size_t)bk * S;
    float mx = -INFINITY;
    for (int i = 0; i < S; i++) mx = x[i] > mx ? x[i] : mx;
    double z = 0.0;
    for (int i = 0; i < S; i++) z += (p[i] = expf(x[i] - mx));
    double ex = 0.0, ey = 0.0;
    for (int i = 0; i < S; i++) {
      p[i] = (float)(p[i] / z);
      ex += p[i] * lin_pos(i % W, W);
      ey += p[i] * lin_pos(i / W, H);
    }
    out[2 * bk] = (float)ex;
    out[2 * bk + 1] = (float)ey;
  }
}

void nn_spatial_softmax_backward(float *din, const float *dout, const float *prob, int B, int K,
                                 int H, int W) {
  int S = H * W;
  for (int bk = 0; bk < B * K; bk++) {
    const float *p = prob + (size_t)bk * S;
    float gx = dout[2 * bk], gy = dout[2 * bk + 1];
    /* d out / d x_i = p_i (g.pos_i - sum_j p_j g.pos_j) */
    double mean = 0.0;
    for (int i = 0; i < S; i++) mean += p[i] * (gx * lin_pos(i % W, W) + gy * lin_pos(i / W, H));
    float *d = din + (size_t)bk * S;
    for (int i = 0; i < S; i++)
      d[i] += p[i] * (gx * lin_pos(i % W, W) + gy * lin_pos(i / W, H) - (float)mean);
  }
}

/* ---------------------------------------------------------------------------------------------
 * embeddings */

void nn_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int D) {
  for (int n = 0; n < N; n++) memcpy(out + (size_t)n * D, table + (size_t)ids[n] * D, sizeof(float) * D);
}

void nn_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int D) {
  for (int n = 0; n < N; n++)
    for (int d = 0; d < D; d++) dtable[(size_t)ids[n] * D + d] += dout[(size_t)n * D + d];
}

void nn_timestep_embedding(float *out, const float *t, int N, int dim, int sin_first, int shift) {
  int half = dim / 2;
  for (int n = 0; n < N; n++) {
    float *o = out + (size_t)n * dim;
    for (int i = 0; i < half; i++) {
      /* float32 as torch: exp(-ln(1e4) * i / (half - shift)) then t * f */
      float f = expf(-logf(10000.f) * (float)i / (float)(half - shift));
      float a = t[n] * f;
      o[sin_first ? i : half + i] = sinf(a);
      o[sin_first ? half + i : i] = cosf(a);
    }
    if (dim % 2) o[dim - 1] = 0.f;
  }
}

/* ---------------------------------------------------------------------------------------------
 * loss */

float nn_mse_forward(const float *y, const float *t, const float *w, int B, size_t per) {
  double total = 0.0;
  for (int b = 0; b < B; b++) {
    double s = 0.0;
    const float *yb = y + b * per, *tb = t + b * per;
    for (size_t i = 0; i < per; i++) {
      double d = (double)yb[i] - tb[i];
      s += d * d;
    }
    total += (w ? w[b] : 1.0) * s / per;
  }
  return (float)(total / B);
}

void nn_mse_backward(float *dy, const float *y, const float *t, const float *w, int B, size_t per,
                     float dloss) {
  for (int b = 0; b < B; b++) {
    float k = dloss * 2.f * (w ? w[b] : 1.f) / (float)((double)B * per);
    for (size_t i = 0; i < per; i++) dy[b * per + i] = k * (y[b * per + i] - t[b * per + i]);
  }
}
