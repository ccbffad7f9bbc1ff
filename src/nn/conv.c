/* conv.c: 2D, 1D, transposed 1D and temporal convolutions (im2col + sgemm), with naive
 * references. Layouts: conv2d in (B, Cin, H, W), weight (Cout, Cin, KH, KW); the column matrix of
 * one sample is (Cin*KH*KW, Ho*Wo), rows ordered (c, kh, kw) as the weight's inner dims. */
#pragma GCC optimize("O3", "no-math-errno", "no-trapping-math")  // vectorise the loops
#include <omp.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"
#include "nn/nn_fast.h"
#include "nn/nn_winograd.h"

/* ---------------------------------------------------------------------------------------------
 * conv2d */

nn_conv2d_dims nn_conv2d_make(int B, int Cin, int H, int W, int Cout, int K, int stride, int pad) {
  nn_conv2d_dims d = {B, Cin, H, W, Cout, K, K, stride, pad, 0, 0};
  d.Ho = (H + 2 * pad - K) / stride + 1;
  d.Wo = (W + 2 * pad - K) / stride + 1;
  return d;
}

static int conv2d_is_pointwise(const nn_conv2d_dims *d) {
  return d->KH == 1 && d->KW == 1 && d->stride == 1 && d->pad == 0;
}

/* stride-1 "same" convolutions get din as a convolution of dout with the flipped, transposed
 * weight (one well-shaped GEMM with inner dimension Cout*K*K) instead of W^T dout (inner dimension
 * Cout) followed by col2im */
static int conv2d_flip_bwd(const nn_conv2d_dims *d) {
  return d->stride == 1 && d->KH == d->KW && d->KH % 2 == 1 && d->KH > 1 && d->pad == d->KH / 2;
}

static int conv2d_batched(const nn_conv2d_dims *d);
static size_t conv2d_batched_scratch(const nn_conv2d_dims *d);

static size_t conv2d_col_size(const nn_conv2d_dims *d) {
  if (conv2d_is_pointwise(d)) return 0;
  size_t kk = (size_t)d->KH * d->KW, N = (size_t)d->Ho * d->Wo;
  size_t c = conv2d_flip_bwd(d) && d->Cout > d->Cin ? d->Cout : d->Cin;
  return c * kk * N;
}

/* stride 2 on the per-sample path: the input rows are first split into their even and odd
 * columns, so that im2col copies contiguous runs instead of gathering every other float */
static int conv2d_split(const nn_conv2d_dims *d) {
  return d->stride == 2 && !conv2d_is_pointwise(d) && !conv2d_batched(d);
}

/* per thread: column matrix + private dW + private db + split input */
static size_t conv2d_per_thread(const nn_conv2d_dims *d) {
  size_t K = (size_t)d->Cin * d->KH * d->KW;
  size_t split = conv2d_split(d) ? (size_t)d->Cin * d->H * d->W : 0;
  return (conv2d_col_size(d) + (size_t)d->Cout * K + d->Cout + split + 15) / 16 * 16;
}

/* the split-input slot of a thread's block my (NULL when the dims do not use one) */
static float *conv2d_split_buf(float *my, const nn_conv2d_dims *d) {
  size_t K = (size_t)d->Cin * d->KH * d->KW;
  return conv2d_split(d) ? my + conv2d_col_size(d) + (size_t)d->Cout * K + d->Cout : NULL;
}

/* sp (rows, W) = each row of in (rows, W) as its even columns, then its odd columns */
NN_HOT static void split_cols(float *sp, const float *in, size_t rows, int W) {
  int we = (W + 1) / 2, wo = W / 2;
  for (size_t r = 0; r < rows; r++) {
    const float *i = in + r * W;
    float *e = sp + r * W, *o = e + we;
    for (int x = 0; x < wo; x++) {
      e[x] = i[2 * x];
      o[x] = i[2 * x + 1];
    }
    if (W & 1) e[wo] = i[W - 1];
  }
}

/* the largest of the paths any Winograd mode could pick for this shape, so that a buffer sized
 * before a mode change (nn_conv2d_set_winograd) is never overrun after it */
size_t nn_conv2d_scratch(const nn_conv2d_dims *d) {
  size_t n;
  if (conv2d_batched(d)) {
    n = conv2d_batched_scratch(d);
  } else {
    size_t wf = conv2d_flip_bwd(d) ? (size_t)d->Cin * d->Cout * d->KH * d->KW : 0;
    n = (size_t)nn_threads() * conv2d_per_thread(d) + wf + 16;
  }
  if (nn_wino_possible(d) && nn_wino_scratch(d) > n) n = nn_wino_scratch(d);
  return n;
}

/* col (K, Ho*Wo) from one sample in (Cin, H, W), rows [oh0, oh1) of the output only: col
 * (K, (oh1-oh0)*Wo) with rows ld apart; in is split_cols' layout when split (stride 2 only) */
NN_HOT static void im2col_ld(float *col, size_t ld, const float *in, const nn_conv2d_dims *d, int oh0,
                             int oh1, int split) {
  const int H = d->H, W = d->W, Wo = d->Wo, s = d->stride, p = d->pad;
  for (int c = 0; c < d->Cin; c++) {
    const float *ic = in + (size_t)c * H * W;
    for (int kh = 0; kh < d->KH; kh++) {
      for (int kw = 0; kw < d->KW; kw++) {
        float *row = col + ((size_t)(c * d->KH + kh) * d->KW + kw) * ld - (size_t)oh0 * Wo;
        int ow0, ow1;
        nn_valid_range(W, Wo, s, p, kw, &ow0, &ow1);
        for (int oh = oh0; oh < oh1; oh++) {
          int ih = oh * s - p + kh;
          float *r = row + (size_t)oh * Wo;
          if (ih < 0 || ih >= H) {
            memset(r, 0, sizeof(float) * Wo);
            continue;
          }
          const float *ir = ic + (size_t)ih * W;
          for (int ow = 0; ow < ow0; ow++) r[ow] = 0.f;
          if (s == 1) {
            memcpy(r + ow0, ir + ow0 - p + kw, sizeof(float) * (ow1 - ow0));
          } else if (split) {
            /* column 2 ow - p + kw has parity q = (kw - p) mod 2: entry ow + (kw - p - q) / 2
             * of that half */
            int q = (kw - p) & 1;
            const float *h = ir + (q ? (W + 1) / 2 : 0) + (kw - p - q) / 2;
            memcpy(r + ow0, h + ow0, sizeof(float) * (ow1 - ow0));
          } else {
            for (int ow = ow0; ow < ow1; ow++) r[ow] = ir[ow * s - p + kw];
          }
          for (int ow = ow1; ow < Wo; ow++) r[ow] = 0.f;
        }
      }
    }
  }
}

static inline void im2col_rows(float *col, const float *in, const nn_conv2d_dims *d, int oh0,
                               int oh1, int split) {
  im2col_ld(col, (size_t)(oh1 - oh0) * d->Wo, in, d, oh0, oh1, split);
}

/* output rows per tile, so that one tile of the column matrix (about 512 KB, Zen 3's L2) stays in L2
 * between im2col and the GEMM's packing */
static int conv2d_tile_rows(const nn_conv2d_dims *d, int K) {
  int r = 131072 / (K * d->Wo);
  return r < 1 ? 1 : r > d->Ho ? d->Ho : r;
}

/* din (Cin, H, W) += col2im(col), col rows of stride ld */
NN_HOT static void col2im_add(float *in, const float *col, size_t ld, const nn_conv2d_dims *d) {
  const int H = d->H, W = d->W, Ho = d->Ho, Wo = d->Wo, s = d->stride, p = d->pad;
  for (int c = 0; c < d->Cin; c++) {
    float *ic = in + (size_t)c * H * W;
    for (int kh = 0; kh < d->KH; kh++) {
      for (int kw = 0; kw < d->KW; kw++) {
        const float *row = col + ((size_t)(c * d->KH + kh) * d->KW + kw) * ld;
        int ow0, ow1;
        nn_valid_range(W, Wo, s, p, kw, &ow0, &ow1);
        for (int oh = 0; oh < Ho; oh++) {
          int ih = oh * s - p + kh;
          if (ih < 0 || ih >= H) continue;
          float *ir = ic + (size_t)ih * W;
          const float *r = row + (size_t)oh * Wo;
          if (s == 1) {
            float *o = ir - p + kw;
            for (int ow = ow0; ow < ow1; ow++) o[ow] += r[ow];
          } else {
            for (int ow = ow0; ow < ow1; ow++) ir[ow * s - p + kw] += r[ow];
          }
        }
      }
    }
  }
}

/* small outputs (ResNet's 6x6 and 3x3 stages, 1x1 shortcuts): a GEMM per sample would have
 * only Ho*Wo columns, so the whole batch goes into one column matrix col (K, B*N), column
 * b*N + n, and one GEMM; the result is permuted to (B, Cout, N). */
static int conv2d_batched(const nn_conv2d_dims *d) { return d->B > 1 && d->Ho * d->Wo <= 64; }

static size_t conv2d_batched_scratch(const nn_conv2d_dims *d) {
  size_t K = (size_t)d->Cin * d->KH * d->KW, BN = (size_t)d->B * d->Ho * d->Wo;
  return K * BN + (size_t)d->Cout * BN + 16;
}

/* db (Cout) += dout (B, Cout, Ho*Wo) summed over the batch and pixels */
static void conv2d_bias_grad(float *db, const float *dout, const nn_conv2d_dims *d) {
  size_t N = (size_t)d->Ho * d->Wo;
#pragma omp parallel for schedule(static) num_threads(nn_threads())
  for (int o = 0; o < d->Cout; o++) {
    float s = 0.f;
    for (int bi = 0; bi < d->B; bi++) s += nn_fsum(dout + ((size_t)bi * d->Cout + o) * N, N);
    db[o] += s;
  }
}

/* Tap table of a small output: tab[k N + n] is the offset in its input plane of the pixel that
 * tap k (= kh KW + kw) of output pixel n reads, or H W (one past the plane: a zero slot in the
 * caller's copy of the plane) in the padding. With a few output pixels per row, im2col and
 * col2im as row copies spend their time on loop overhead; one flat table per call replaces the
 * per-row bounds and makes the loops branch-free. Returns 0 when the table or the plane copy
 * would not fit in TAPS_MAX. */
enum { TAPS_MAX = 4096 };
static int tap_table(int *tab, const nn_conv2d_dims *d) {
  int N = d->Ho * d->Wo;
  if (d->KH * d->KW * N > TAPS_MAX || d->H * d->W + 1 > TAPS_MAX) return 0;
  for (int kh = 0; kh < d->KH; kh++)
    for (int kw = 0; kw < d->KW; kw++)
      for (int oh = 0; oh < d->Ho; oh++)
        for (int ow = 0; ow < d->Wo; ow++) {
          int ih = oh * d->stride - d->pad + kh, iw = ow * d->stride - d->pad + kw;
          int ok = ih >= 0 && ih < d->H && iw >= 0 && iw < d->W;
          tab[(kh * d->KW + kw) * N + oh * d->Wo + ow] = ok ? ih * d->W + iw : d->H * d->W;
        }
  return 1;
}

/* col (K, B*N) of the whole batch. Through the tap table, by input channel: the KK rows of a
 * channel are written front to back over the batch (sample by sample, the column matrix would be
 * swept once per sample), each plane copied with a zero after it. */
static void im2col_batch(float *col, const float *in, const nn_conv2d_dims *d) {
  size_t N = (size_t)d->Ho * d->Wo, BN = N * d->B, isz = (size_t)d->Cin * d->H * d->W;
  size_t plane = (size_t)d->H * d->W;
  int K = d->Cin * d->KH * d->KW, KK = d->KH * d->KW;
  int tab[TAPS_MAX];
  if (!conv2d_is_pointwise(d) && tap_table(tab, d)) {
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int c = 0; c < d->Cin; c++) {
      float pl[TAPS_MAX];
      for (int b = 0; b < d->B; b++) {
        memcpy(pl, in + b * isz + c * plane, plane * sizeof(float));
        pl[plane] = 0.f;
        for (int k = 0; k < KK; k++) {
          const int *t = tab + (size_t)k * N;
          float *r = col + ((size_t)c * KK + k) * BN + b * N;
          for (size_t n = 0; n < N; n++) r[n] = pl[t[n]];
        }
      }
    }
    return;
  }
#pragma omp parallel for schedule(static) num_threads(nn_threads())
  for (int b = 0; b < d->B; b++) {
    if (conv2d_is_pointwise(d)) {
      for (int c = 0; c < K; c++) memcpy(col + c * BN + b * N, in + b * isz + c * N, N * sizeof(float));
    } else {
      im2col_ld(col + b * N, BN, in + b * isz, d, 0, d->Ho, 0);
    }
  }
}

static void conv2d_forward_batched(float *out, const float *in, const float *w, const float *b,
                                   const nn_conv2d_dims *d, float *scratch, float beta) {
  size_t K = (size_t)d->Cin * d->KH * d->KW, N = (size_t)d->Ho * d->Wo, BN = N * d->B;
  float *col = scratch, *y = col + K * BN;
  im2col_batch(col, in, d);
  nn_sgemm(0, 0, d->Cout, (int)BN, (int)K, 1.f, w, (int)K, col, (int)BN, 0.f, y, (int)BN);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nn_threads())
  for (int bi = 0; bi < d->B; bi++)
    for (int o = 0; o < d->Cout; o++) {
      float *r = out + ((size_t)bi * d->Cout + o) * N;
      const float *src = y + o * BN + bi * N;
      float bo = b ? b[o] : 0.f;
      if (beta != 0.f)
        for (size_t i = 0; i < N; i++) r[i] += src[i] + bo;
      else
        for (size_t i = 0; i < N; i++) r[i] = src[i] + bo;
    }
}

static void conv2d_backward_batched(float *din, float *dw, float *db, const float *dout,
                                    const float *in, const float *w, const nn_conv2d_dims *d,
                                    float *scratch) {
  size_t K = (size_t)d->Cin * d->KH * d->KW, N = (size_t)d->Ho * d->Wo, BN = N * d->B;
  size_t isz = (size_t)d->Cin * d->H * d->W;
  float *col = scratch, *dy = col + K * BN;
  /* dy (Cout, B*N) */
#pragma omp parallel for collapse(2) schedule(static) num_threads(nn_threads())
  for (int bi = 0; bi < d->B; bi++)
    for (int o = 0; o < d->Cout; o++)
      memcpy(dy + o * BN + bi * N, dout + ((size_t)bi * d->Cout + o) * N, N * sizeof(float));
  if (db) conv2d_bias_grad(db, dout, d);
  if (dw) {
    im2col_batch(col, in, d);
    nn_sgemm(0, 1, d->Cout, (int)K, (int)BN, 1.f, dy, (int)BN, col, (int)BN, 1.f, dw, (int)K);
  }
  if (din) {
    /* col = W^T dy, then scattered back sample by sample */
    nn_sgemm(1, 0, (int)K, (int)BN, d->Cout, 1.f, w, (int)K, dy, (int)BN, 0.f, col, (int)BN);
    int tab[TAPS_MAX], KK = d->KH * d->KW;
    size_t plane = (size_t)d->H * d->W;
    if (!conv2d_is_pointwise(d) && tap_table(tab, d)) {
      /* by input channel, as im2col_batch: sums into a plane copy whose last slot takes the
       * padding taps, then added to din */
#pragma omp parallel for schedule(static) num_threads(nn_threads())
      for (int c = 0; c < d->Cin; c++) {
        float pl[TAPS_MAX];
        for (int b = 0; b < d->B; b++) {
          for (size_t i = 0; i <= plane; i++) pl[i] = 0.f;
          for (int k = 0; k < KK; k++) {
            const int *t = tab + (size_t)k * N;
            const float *r = col + ((size_t)c * KK + k) * BN + b * N;
            for (size_t n = 0; n < N; n++) pl[t[n]] += r[n];
          }
          float *ic = din + b * isz + c * plane;
          for (size_t i = 0; i < plane; i++) ic[i] += pl[i];
        }
      }
      return;
    }
#pragma omp parallel for schedule(static) num_threads(nn_threads())
    for (int b = 0; b < d->B; b++) {
      if (conv2d_is_pointwise(d)) {
        for (size_t c = 0; c < K; c++) {
          float *o = din + b * isz + c * N;
          const float *src = col + c * BN + b * N;
          for (size_t i = 0; i < N; i++) o[i] += src[i];
        }
      } else {
        col2im_add(din + b * isz, col + b * N, BN, d);
      }
    }
  }
}

/* one sample: out_b (Cout, N) = W (Cout, K) col (K, N) + bias */
static void conv2d_fwd_sample(float *out, const float *in, const float *w, const float *b,
                              const nn_conv2d_dims *d, float *col, float beta) {
  int K = d->Cin * d->KH * d->KW, N = d->Ho * d->Wo;
  if (conv2d_is_pointwise(d)) {
    nn_sgemm(0, 0, d->Cout, N, K, 1.f, w, K, in, N, beta, out, N);
  } else {
    float *sp = conv2d_split_buf(col, d);
    if (sp) split_cols(sp, in, (size_t)d->Cin * d->H, d->W);
    int tr = conv2d_tile_rows(d, K);
    for (int oh0 = 0; oh0 < d->Ho; oh0 += tr) {
      int oh1 = oh0 + tr < d->Ho ? oh0 + tr : d->Ho, nt = (oh1 - oh0) * d->Wo;
      im2col_rows(col, sp ? sp : in, d, oh0, oh1, sp != NULL);
      nn_sgemm(0, 0, d->Cout, nt, K, 1.f, w, K, col, nt, beta, out + (size_t)oh0 * d->Wo, N);
    }
  }
  if (b)
    for (int o = 0; o < d->Cout; o++) {
      float *r = out + (size_t)o * N, bo = b[o];
      for (int i = 0; i < N; i++) r[i] += bo;
    }
}

static void conv2d_forward(float *out, const float *in, const float *w, const float *b,
                           const nn_conv2d_dims *d, float *scratch, float beta) {
  if (nn_wino_applies(d)) {
    nn_wino_forward(out, in, w, b, d, scratch, beta != 0.f);
    return;
  }
  if (conv2d_batched(d)) {
    conv2d_forward_batched(out, in, w, b, d, scratch, beta);
    return;
  }
  size_t K = (size_t)d->Cin * d->KH * d->KW, N = (size_t)d->Ho * d->Wo;
  size_t per = conv2d_per_thread(d);
  size_t isz = (size_t)d->Cin * d->H * d->W, osz = (size_t)d->Cout * N;
  int nt = nn_threads();
  (void)K;
  if (d->B >= nt && nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int bi = 0; bi < d->B; bi++)
      conv2d_fwd_sample(out + bi * osz, in + bi * isz, w, b, d,
                        scratch + per * omp_get_thread_num(), beta);
  } else {
    for (int bi = 0; bi < d->B; bi++)
      conv2d_fwd_sample(out + bi * osz, in + bi * isz, w, b, d, scratch, beta);
  }
}

void nn_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                       const nn_conv2d_dims *d, float *scratch) {
  conv2d_forward(out, in, w, b, d, scratch, 0.f);
}

void nn_conv2d_forward_acc(float *out, const float *in, const float *w, const float *b,
                           const nn_conv2d_dims *d, float *scratch) {
  conv2d_forward(out, in, w, b, d, scratch, 1.f);
}

/* one sample: dW += dout col^T, db += rowsum dout, din += col2im(W^T dout) */
static void conv2d_bwd_sample(float *din, float *dw, float *db, const float *dout,
                              const float *in, const float *w, const nn_conv2d_dims *d,
                              float *col, const float *wf) {
  int K = d->Cin * d->KH * d->KW, N = d->Ho * d->Wo;
  int pw = conv2d_is_pointwise(d);
  if (dw) {
    if (pw) {
      nn_sgemm(0, 1, d->Cout, K, N, 1.f, dout, N, in, N, 1.f, dw, K);
    } else {
      float *sp = conv2d_split_buf(col, d);
      if (sp) split_cols(sp, in, (size_t)d->Cin * d->H, d->W);
      int tr = conv2d_tile_rows(d, K);
      for (int oh0 = 0; oh0 < d->Ho; oh0 += tr) {
        int oh1 = oh0 + tr < d->Ho ? oh0 + tr : d->Ho, nt = (oh1 - oh0) * d->Wo;
        im2col_rows(col, sp ? sp : in, d, oh0, oh1, sp != NULL);
        nn_sgemm(0, 1, d->Cout, K, nt, 1.f, dout + (size_t)oh0 * d->Wo, N, col, nt, 1.f, dw, K);
      }
    }
  }
  if (db)
    for (int o = 0; o < d->Cout; o++) {
      db[o] += nn_fsum(dout + (size_t)o * N, N);
    }
  if (din) {
    if (pw) {
      nn_sgemm(1, 0, K, N, d->Cout, 1.f, w, K, dout, N, 1.f, din, N);
    } else if (wf) {
      /* din (Cin, HW) += Wf (Cin, Cout*KK) im2col(dout) (Cout*KK, HW) */
      nn_conv2d_dims t = *d;
      t.Cin = d->Cout;
      t.Cout = d->Cin;
      int KO = d->Cout * d->KH * d->KW, tr = conv2d_tile_rows(&t, KO);
      for (int oh0 = 0; oh0 < t.Ho; oh0 += tr) {
        int oh1 = oh0 + tr < t.Ho ? oh0 + tr : t.Ho, nt = (oh1 - oh0) * t.Wo;
        im2col_rows(col, dout, &t, oh0, oh1, 0);
        nn_sgemm(0, 0, d->Cin, nt, KO, 1.f, wf, KO, col, nt, 1.f, din + (size_t)oh0 * t.Wo, N);
      }
    } else {
      nn_sgemm(1, 0, K, N, d->Cout, 1.f, w, K, dout, N, 0.f, col, N);
      col2im_add(din, col, N, d);
    }
  }
}

void nn_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const nn_conv2d_dims *d, float *scratch) {
  size_t K = (size_t)d->Cin * d->KH * d->KW, N = (size_t)d->Ho * d->Wo;
  size_t col = conv2d_col_size(d);
  size_t per = conv2d_per_thread(d);
  size_t isz = (size_t)d->Cin * d->H * d->W, osz = (size_t)d->Cout * N;
  size_t wsz = (size_t)d->Cout * K;
  int nt = nn_threads();
  if (nn_wino_applies(d)) {
    if (db) conv2d_bias_grad(db, dout, d);
    nn_wino_backward(din, dw, dout, in, w, d, scratch);
    return;
  }
  if (conv2d_batched(d)) {
    conv2d_backward_batched(din, dw, db, dout, in, w, d, scratch);
    return;
  }
  float *wf = NULL;
  if (din && conv2d_flip_bwd(d)) {
    /* Wf[c, (o, kh', kw')] = W[o, c, K-1-kh', K-1-kw'] */
    wf = scratch + (size_t)nt * per;
    int KH = d->KH, KW = d->KW;
    for (int c = 0; c < d->Cin; c++)
      for (int o = 0; o < d->Cout; o++)
        for (int kh = 0; kh < KH; kh++)
          for (int kw = 0; kw < KW; kw++)
            wf[(((size_t)c * d->Cout + o) * KH + kh) * KW + kw] =
                w[(((size_t)o * d->Cin + c) * KH + (KH - 1 - kh)) * KW + (KW - 1 - kw)];
  }
  if (d->B >= nt && nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      int t = omp_get_thread_num();
      float *my = scratch + per * t;
      /* thread 0 accumulates into the caller's gradients, the others into private copies */
      float *mdw = dw, *mdb = db;
      if (t > 0) {
        mdw = dw ? my + col : NULL;
        mdb = db ? my + col + wsz : NULL;
        if (mdw) memset(mdw, 0, sizeof(float) * wsz);
        if (mdb) memset(mdb, 0, sizeof(float) * d->Cout);
      }
#pragma omp for schedule(static)
      for (int bi = 0; bi < d->B; bi++)
        conv2d_bwd_sample(din ? din + bi * isz : NULL, mdw, mdb, dout + bi * osz, in + bi * isz,
                          w, d, my, wf);
      /* implicit barrier, then reduce the private copies */
      if (dw) {
#pragma omp for schedule(static)
        for (size_t i = 0; i < wsz; i++) {
          float s = 0.f;
          for (int u = 1; u < nt; u++) s += scratch[per * u + col + i];
          dw[i] += s;
        }
      }
      if (db) {
#pragma omp for schedule(static)
        for (int o = 0; o < d->Cout; o++) {
          float s = 0.f;
          for (int u = 1; u < nt; u++) s += scratch[per * u + col + wsz + o];
          db[o] += s;
        }
      }
    }
  } else {
    for (int bi = 0; bi < d->B; bi++)
      conv2d_bwd_sample(din ? din + bi * isz : NULL, dw, db, dout + bi * osz, in + bi * isz, w, d,
                        scratch, wf);
  }
}

void nn_conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                           const nn_conv2d_dims *d) {
  for (int bi = 0; bi < d->B; bi++)
    for (int o = 0; o < d->Cout; o++)
      for (int oh = 0; oh < d->Ho; oh++)
        for (int ow = 0; ow < d->Wo; ow++) {
          double s = b ? b[o] : 0.0;
          for (int c = 0; c < d->Cin; c++)
            for (int kh = 0; kh < d->KH; kh++)
              for (int kw = 0; kw < d->KW; kw++) {
                int ih = oh * d->stride - d->pad + kh, iw = ow * d->stride - d->pad + kw;
                if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W) continue;
                s += (double)in[(((size_t)bi * d->Cin + c) * d->H + ih) * d->W + iw] *
                     w[(((size_t)o * d->Cin + c) * d->KH + kh) * d->KW + kw];
              }
          out[(((size_t)bi * d->Cout + o) * d->Ho + oh) * d->Wo + ow] = (float)s;
        }
}

void nn_conv2d_backward_ref(float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const nn_conv2d_dims *d) {
  for (int bi = 0; bi < d->B; bi++)
    for (int o = 0; o < d->Cout; o++)
      for (int oh = 0; oh < d->Ho; oh++)
        for (int ow = 0; ow < d->Wo; ow++) {
          float g = dout[(((size_t)bi * d->Cout + o) * d->Ho + oh) * d->Wo + ow];
          if (db) db[o] += g;
          for (int c = 0; c < d->Cin; c++)
            for (int kh = 0; kh < d->KH; kh++)
              for (int kw = 0; kw < d->KW; kw++) {
                int ih = oh * d->stride - d->pad + kh, iw = ow * d->stride - d->pad + kw;
                if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W) continue;
                size_t ii = (((size_t)bi * d->Cin + c) * d->H + ih) * d->W + iw;
                size_t wi = (((size_t)o * d->Cin + c) * d->KH + kh) * d->KW + kw;
                if (dw) dw[wi] += g * in[ii];
                if (din) din[ii] += g * w[wi];
              }
        }
}

/* ---------------------------------------------------------------------------------------------
 * conv1d over the whole batch: col (Cin*K, B*To), column j = b*To + t, so one GEMM covers the
 * batch (the time axes of the Diffusion Policy U-Net are short: 16, 8, 4). */

nn_conv1d_dims nn_conv1d_make(int B, int Cin, int T, int Cout, int K, int stride, int pad) {
  nn_conv1d_dims d = {B, Cin, T, Cout, K, stride, pad, 0};
  d.To = (T + 2 * pad - K) / stride + 1;
  return d;
}

nn_conv1d_dims nn_convt1d_make(int B, int Cin, int T, int Cout, int K, int stride, int pad) {
  nn_conv1d_dims d = {B, Cin, T, Cout, K, stride, pad, 0};
  d.To = (T - 1) * stride - 2 * pad + K;
  return d;
}

/* the largest of the paths any mode could pick (see nn_conv2d_scratch); with frozen weights an
 * eligible shape always takes Winograd (no transform to pay for) */
size_t nn_conv1d_scratch(const nn_conv1d_dims *d) {
  size_t cols = (size_t)d->B * d->To;
  size_t n = (size_t)d->Cin * d->K * cols + (size_t)d->Cout * cols + 16;
  if (nn_wino1d_possible(d)) {
    if (nn_wino1d_scratch(d) > n) n = nn_wino1d_scratch(d);
    if (nn_wino1d_frozen_scratch(d) > n) n = nn_wino1d_frozen_scratch(d);
  }
  return n;
}

/* col[(c*K + k), b*To + t] = in[b, c, t*s - p + k] */
static void im2col_1d(float *col, const float *in, int B, int C, int T, int K, int s, int p,
                      int To) {
  size_t ld = (size_t)B * To;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (C * K * ld > 65536)
  for (int ck = 0; ck < C * K; ck++) {
    int c = ck / K, k = ck % K;
    float *row = col + (size_t)ck * ld;
    for (int b = 0; b < B; b++) {
      const float *x = in + ((size_t)b * C + c) * T;
      float *r = row + (size_t)b * To;
      for (int t = 0; t < To; t++) {
        int i = t * s - p + k;
        r[t] = (i >= 0 && i < T) ? x[i] : 0.f;
      }
    }
  }
}

static void col2im_1d_add(float *in, const float *col, int B, int C, int T, int K, int s, int p,
                          int To) {
  size_t ld = (size_t)B * To;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (C * K * ld > 65536)
  for (int c = 0; c < C; c++)
    for (int k = 0; k < K; k++) {
      const float *row = col + ((size_t)c * K + k) * ld;
      for (int b = 0; b < B; b++) {
        float *x = in + ((size_t)b * C + c) * T;
        const float *r = row + (size_t)b * To;
        for (int t = 0; t < To; t++) {
          int i = t * s - p + k;
          if (i >= 0 && i < T) x[i] += r[t];
        }
      }
    }
}

/* (C, B*T) <-> (B, C, T) */
static void cbt_to_bct(float *out, const float *y, const float *bias, int B, int C, int T,
                       int accumulate) {
  size_t ld = (size_t)B * T;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (C * ld > 65536)
  for (int c = 0; c < C; c++)
    for (int b = 0; b < B; b++) {
      float *o = out + ((size_t)b * C + c) * T;
      const float *r = y + (size_t)c * ld + (size_t)b * T;
      float bc = bias ? bias[c] : 0.f;
      if (accumulate)
        for (int t = 0; t < T; t++) o[t] += r[t];
      else
        for (int t = 0; t < T; t++) o[t] = r[t] + bc;
    }
}

static void bct_to_cbt(float *y, const float *in, int B, int C, int T) {
  size_t ld = (size_t)B * T;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (C * ld > 65536)
  for (int c = 0; c < C; c++)
    for (int b = 0; b < B; b++) memcpy(y + (size_t)c * ld + (size_t)b * T, in + ((size_t)b * C + c) * T, sizeof(float) * T);
}

static void rowsum_add(float *db, const float *y, int C, size_t n) {
  for (int c = 0; c < C; c++) db[c] += nn_fsum(y + (size_t)c * n, n);
}

static void conv1d_forward(float *out, const float *in, const float *w, const float *b,
                           const nn_conv1d_dims *d, float *scratch, int acc) {
  if (nn_wino1d_applies(d)) {
    nn_wino1d_forward(out, in, w, b, d, scratch, acc);
    return;
  }
  if (nn_wino1d_eligible(d) && !nn_wino1d_forward_frozen(out, in, w, b, d, scratch, acc)) return;
  int KC = d->Cin * d->K, N = d->B * d->To;
  float *col = scratch, *y = scratch + (size_t)KC * N;
  const float *c = in;
  if (d->K == 1 && d->stride == 1 && d->pad == 0 && d->B == 1) {
    c = in;  // (Cin, T) is already the column matrix
  } else {
    im2col_1d(col, in, d->B, d->Cin, d->T, d->K, d->stride, d->pad, d->To);
    c = col;
  }
  nn_sgemm(0, 0, d->Cout, N, KC, 1.f, w, KC, c, N, 0.f, y, N);
  if (acc && b) {
    for (int o = 0; o < d->Cout; o++)
      for (int j = 0; j < N; j++) y[(size_t)o * N + j] += b[o];
  }
  cbt_to_bct(out, y, b, d->B, d->Cout, d->To, acc);
}

void nn_conv1d_forward(float *out, const float *in, const float *w, const float *b,
                       const nn_conv1d_dims *d, float *scratch) {
  conv1d_forward(out, in, w, b, d, scratch, 0);
}

void nn_conv1d_forward_acc(float *out, const float *in, const float *w, const float *b,
                           const nn_conv1d_dims *d, float *scratch) {
  conv1d_forward(out, in, w, b, d, scratch, 1);
}

void nn_conv1d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const nn_conv1d_dims *d, float *scratch) {
  if (nn_wino1d_applies(d)) {
    nn_wino1d_backward(din, dw, db, dout, in, w, d, scratch);
    return;
  }
  int KC = d->Cin * d->K, N = d->B * d->To;
  float *col = scratch, *y = scratch + (size_t)KC * N;
  bct_to_cbt(y, dout, d->B, d->Cout, d->To);  // dY (Cout, N)
  if (db) rowsum_add(db, y, d->Cout, N);
  if (dw) {
    im2col_1d(col, in, d->B, d->Cin, d->T, d->K, d->stride, d->pad, d->To);
    nn_sgemm(0, 1, d->Cout, KC, N, 1.f, y, N, col, N, 1.f, dw, KC);
  }
  if (din) {
    nn_sgemm(1, 0, KC, N, d->Cout, 1.f, w, KC, y, N, 0.f, col, N);
    col2im_1d_add(din, col, d->B, d->Cin, d->T, d->K, d->stride, d->pad, d->To);
  }
}

void nn_conv1d_forward_ref(float *out, const float *in, const float *w, const float *b,
                           const nn_conv1d_dims *d) {
  for (int bi = 0; bi < d->B; bi++)
    for (int o = 0; o < d->Cout; o++)
      for (int t = 0; t < d->To; t++) {
        double s = b ? b[o] : 0.0;
        for (int c = 0; c < d->Cin; c++)
          for (int k = 0; k < d->K; k++) {
            int i = t * d->stride - d->pad + k;
            if (i < 0 || i >= d->T) continue;
            s += (double)in[((size_t)bi * d->Cin + c) * d->T + i] * w[((size_t)o * d->Cin + c) * d->K + k];
          }
        out[((size_t)bi * d->Cout + o) * d->To + t] = (float)s;
      }
}

void nn_conv1d_backward_ref(float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const nn_conv1d_dims *d) {
  for (int bi = 0; bi < d->B; bi++)
    for (int o = 0; o < d->Cout; o++)
      for (int t = 0; t < d->To; t++) {
        float g = dout[((size_t)bi * d->Cout + o) * d->To + t];
        if (db) db[o] += g;
        for (int c = 0; c < d->Cin; c++)
          for (int k = 0; k < d->K; k++) {
            int i = t * d->stride - d->pad + k;
            if (i < 0 || i >= d->T) continue;
            size_t ii = ((size_t)bi * d->Cin + c) * d->T + i, wi = ((size_t)o * d->Cin + c) * d->K + k;
            if (dw) dw[wi] += g * in[ii];
            if (din) din[ii] += g * w[wi];
          }
      }
}

/* ---------------------------------------------------------------------------------------------
 * transposed conv1d: the adjoint of conv1d(Cout -> Cin). out[b, o, t*s - p + k] += in[b, c, t] W[c, o, k].
 * colT (Cout*K, B*T) = W^T (Cout*K, Cin) X (Cin, B*T), then col2im into out (B, Cout, To). */

size_t nn_convt1d_scratch(const nn_conv1d_dims *d) {
  size_t cols = (size_t)d->B * d->T;
  return (size_t)d->Cout * d->K * cols + (size_t)d->Cin * cols + 16;
}

void nn_convt1d_forward(float *out, const float *in, const float *w, const float *b,
                        const nn_conv1d_dims *d, float *scratch) {
  int KO = d->Cout * d->K, N = d->B * d->T;
  float *col = scratch, *x = scratch + (size_t)KO * N;
  bct_to_cbt(x, in, d->B, d->Cin, d->T);
  nn_sgemm(1, 0, KO, N, d->Cin, 1.f, w, KO, x, N, 0.f, col, N);
  for (int bi = 0; bi < d->B; bi++)
    for (int o = 0; o < d->Cout; o++) {
      float *r = out + ((size_t)bi * d->Cout + o) * d->To;
      float bo = b ? b[o] : 0.f;
      for (int t = 0; t < d->To; t++) r[t] = bo;
    }
  /* out (B, Cout, To) plays the role of the conv1d input: col2im with the same geometry */
  col2im_1d_add(out, col, d->B, d->Cout, d->To, d->K, d->stride, d->pad, d->T);
}

void nn_convt1d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, const nn_conv1d_dims *d, float *scratch) {
  int KO = d->Cout * d->K, N = d->B * d->T;
  float *col = scratch, *x = scratch + (size_t)KO * N;
  if (db)
    for (int bi = 0; bi < d->B; bi++)
      for (int o = 0; o < d->Cout; o++) {
        db[o] += nn_fsum(dout + ((size_t)bi * d->Cout + o) * d->To, d->To);
      }
  im2col_1d(col, dout, d->B, d->Cout, d->To, d->K, d->stride, d->pad, d->T);  // (Cout*K, N)
  if (dw) {
    bct_to_cbt(x, in, d->B, d->Cin, d->T);
    nn_sgemm(0, 1, d->Cin, KO, N, 1.f, x, N, col, N, 1.f, dw, KO);
  }
  if (din) {
    nn_sgemm(0, 0, d->Cin, N, KO, 1.f, w, KO, col, N, 0.f, x, N);
    cbt_to_bct(din, x, NULL, d->B, d->Cin, d->T, 1);
  }
}

void nn_convt1d_forward_ref(float *out, const float *in, const float *w, const float *b,
                            const nn_conv1d_dims *d) {
  for (int bi = 0; bi < d->B; bi++)
    for (int o = 0; o < d->Cout; o++)
      for (int t = 0; t < d->To; t++) out[((size_t)bi * d->Cout + o) * d->To + t] = b ? b[o] : 0.f;
  for (int bi = 0; bi < d->B; bi++)
    for (int c = 0; c < d->Cin; c++)
      for (int t = 0; t < d->T; t++)
        for (int o = 0; o < d->Cout; o++)
          for (int k = 0; k < d->K; k++) {
            int j = t * d->stride - d->pad + k;
            if (j < 0 || j >= d->To) continue;
            out[((size_t)bi * d->Cout + o) * d->To + j] +=
                in[((size_t)bi * d->Cin + c) * d->T + t] * w[((size_t)c * d->Cout + o) * d->K + k];
          }
}

void nn_convt1d_backward_ref(float *din, float *dw, float *db, const float *dout,
                             const float *in, const float *w, const nn_conv1d_dims *d) {
  for (int bi = 0; bi < d->B; bi++)
    for (int o = 0; o < d->Cout; o++)
      for (int j = 0; j < d->To; j++)
        if (db) db[o] += dout[((size_t)bi * d->Cout + o) * d->To + j];
  for (int bi = 0; bi < d->B; bi++)
    for (int c = 0; c < d->Cin; c++)
      for (int t = 0; t < d->T; t++)
        for (int o = 0; o < d->Cout; o++)
          for (int k = 0; k < d->K; k++) {
            int j = t * d->stride - d->pad + k;
            if (j < 0 || j >= d->To) continue;
            float g = dout[((size_t)bi * d->Cout + o) * d->To + j];
            size_t ii = ((size_t)bi * d->Cin + c) * d->T + t, wi = ((size_t)c * d->Cout + o) * d->K + k;
            if (dw) dw[wi] += g * in[ii];
            if (din) din[ii] += g * w[wi];
          }
}

/* ---------------------------------------------------------------------------------------------
 * temporal conv (Conv3d kernel (K,1,1), padding K/2): per sample and tap k,
 * out[:, t, :] += W_k (Cout, Cin) in[:, t + k - K/2, :] over the valid range of t, i.e. one GEMM
 * per tap on a contiguous column range of the (C, T*HW) matrix. scratch: W repacked (K, Cout, Cin). */

size_t nn_tconv_scratch(int Cin, int Cout, int K) { return (size_t)K * Cout * Cin + 16; }

static void tconv_pack(float *wk, const float *w, int Cin, int Cout, int K) {
  for (int o = 0; o < Cout; o++)
    for (int c = 0; c < Cin; c++)
      for (int k = 0; k < K; k++) wk[((size_t)k * Cout + o) * Cin + c] = w[((size_t)o * Cin + c) * K + k];
}

void nn_tconv_forward(float *out, const float *in, const float *w, const float *b, int B, int Cin,
                      int T, int HW, int Cout, int K, float *scratch) {
  float *wk = scratch;
  tconv_pack(wk, w, Cin, Cout, K);
  int p = K / 2, ld = T * HW;
  for (int bi = 0; bi < B; bi++) {
    float *o = out + (size_t)bi * Cout * ld;
    const float *x = in + (size_t)bi * Cin * ld;
    for (int c = 0; c < Cout; c++)
      for (int i = 0; i < ld; i++) o[(size_t)c * ld + i] = b ? b[c] : 0.f;
    for (int k = 0; k < K; k++) {
      int t0 = p - k > 0 ? p - k : 0, t1 = T + p - k < T ? T + p - k : T;  // t + k - p in [0, T)
      if (t1 <= t0) continue;
      nn_sgemm(0, 0, Cout, (t1 - t0) * HW, Cin, 1.f, wk + (size_t)k * Cout * Cin, Cin,
               x + (size_t)(t0 + k - p) * HW, ld, 1.f, o + (size_t)t0 * HW, ld);
    }
  }
}

void nn_tconv_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *w, int B, int Cin, int T, int HW, int Cout, int K,
                       float *scratch) {
  float *wk = scratch;
  int p = K / 2, ld = T * HW;
  tconv_pack(wk, w, Cin, Cout, K);
  for (int bi = 0; bi < B; bi++) {
    const float *g = dout + (size_t)bi * Cout * ld;
    const float *x = in + (size_t)bi * Cin * ld;
    if (db) rowsum_add(db, g, Cout, ld);
    for (int k = 0; k < K; k++) {
      int t0 = p - k > 0 ? p - k : 0, t1 = T + p - k < T ? T + p - k : T;
      if (t1 <= t0) continue;
      int n = (t1 - t0) * HW;
      const float *gk = g + (size_t)t0 * HW, *xk = x + (size_t)(t0 + k - p) * HW;
      if (dw) {
        /* dW[o, c, k] += sum_j g[o, j] x[c, j]: write a (Cout, Cin) product into the repack
         * buffer's tap and scatter it back */
        float *tmp = wk + (size_t)k * Cout * Cin;
        nn_sgemm(0, 1, Cout, Cin, n, 1.f, gk, ld, xk, ld, 0.f, tmp, Cin);
        for (int o = 0; o < Cout; o++)
          for (int c = 0; c < Cin; c++) dw[((size_t)o * Cin + c) * K + k] += tmp[(size_t)o * Cin + c];
        /* restore the packed weights for the din product below */
        for (int o = 0; o < Cout; o++)
          for (int c = 0; c < Cin; c++) tmp[(size_t)o * Cin + c] = w[((size_t)o * Cin + c) * K + k];
      }
      if (din)
        nn_sgemm(1, 0, Cin, n, Cout, 1.f, wk + (size_t)k * Cout * Cin, Cin, gk, ld, 1.f,
                 din + (size_t)bi * Cin * ld + (size_t)(t0 + k - p) * HW, ld);
    }
  }
}

void nn_frames_to_batch(float *out, const float *in, int B, int C, int T, int HW) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int t = 0; t < T; t++)
        memcpy(out + (((size_t)b * T + t) * C + c) * HW, in + (((size_t)b * C + c) * T + t) * HW, sizeof(float) * HW);
}

void nn_batch_to_frames(float *out, const float *in, int B, int C, int T, int HW) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int t = 0; t < T; t++)
        memcpy(out + (((size_t)b * C + c) * T + t) * HW, in + (((size_t)b * T + t) * C + c) * HW, sizeof(float) * HW);
}

void nn_frames_to_batch_acc(float *out, const float *in, int B, int C, int T, int HW) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int t = 0; t < T; t++) {
        float *o = out + (((size_t)b * T + t) * C + c) * HW;
        const float *i = in + (((size_t)b * C + c) * T + t) * HW;
        for (int j = 0; j < HW; j++) o[j] += i[j];
      }
}

void nn_batch_to_frames_acc(float *out, const float *in, int B, int C, int T, int HW) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int t = 0; t < T; t++) {
        float *o = out + (((size_t)b * C + c) * T + t) * HW;
        const float *i = in + (((size_t)b * T + t) * C + c) * HW;
        for (int j = 0; j < HW; j++) o[j] += i[j];
      }
}
