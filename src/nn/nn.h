/* nn.h: the numerical core's layer ops, float32, PyTorch tensor order (NCHW, NCTHW, NCT).
 *
 * Every layer is a pair of plain functions in the style of llm.c:
 *   nn_x_forward(out, ..., in, params, dims, scratch)
 *   nn_x_backward(din, dparams, ..., dout, in, params, dims, scratch)
 * Backward ACCUMULATES (+=) into every gradient it is given; a NULL gradient pointer skips that
 * gradient (e.g. din of the first layer). No op allocates: the heavy ops take a `scratch`
 * buffer whose size (in floats) their nn_x_scratch() function reports; a model sizes one buffer
 * for the largest op at init (see nn_arena). The fast paths use OpenBLAS sgemm (always run
 * single-threaded) under an OpenMP team of nn_threads() threads; each has a naive reference
 * (suffix _ref) that tests compare the fast path against.
 *
 * Other topics: nn_train.h (parameters, AdamW, EMA, checkpoints), nn_diffusion.h (schedules and
 * samplers), nn_blocks.h (composite blocks of the reference networks). */
#ifndef SP_NN_NN_H
#define SP_NN_NN_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * threads, GEMM, arena */

/* set the OpenMP team size for nn ops (<= 0: keep OMP default) and pin OpenBLAS to 1 thread;
 * call once before using any op (ops also call it lazily with the default). The convolution
 * algorithms are chosen by nn_conv2d_set_winograd and nn_conv1d_set_winograd alone (models set
 * them from their config's winograd field; nothing in nn reads the environment). */
void nn_init(int nthreads);
int nn_threads(void);

/* row-major C = alpha * op(A) @ op(B) + beta * C, (M x N) = (M x K)(K x N); when called outside
 * a parallel region the work is split over the nn team along N (or M), each part one
 * single-threaded cblas_sgemm call. */
void nn_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* x[0..n) = 0, split over the nn team when large (gradient buffers before a backward pass) */
void nn_zero(float *x, size_t n);

/* bump allocator over one buffer. With base == NULL it only measures: allocate everything once
 * against a measuring arena, then nn_arena_init() with cap = measuring arena's used, then
 * allocate again for real. Returns 64-byte aligned pointers; SP_ASSERTs on overflow. */
typedef struct {
  char *base;   // NULL while measuring
  size_t cap;   // bytes
  size_t used;  // bytes handed out
} nn_arena;

int nn_arena_init(nn_arena *a, size_t cap_bytes);  // 0 or -1 (out of memory)
void nn_arena_free(nn_arena *a);
float *nn_arena_floats(nn_arena *a, size_t n);      // NULL (but counted) while measuring
void nn_arena_reset(nn_arena *a);

/* Frozen weights, for inference. Between nn_weights_freeze(w, n) and a thaw, the n floats at w
 * must not change; convolutions whose weights lie inside the range then keep derived forms of
 * them (the Winograd transform, 4x the weight's size) across calls instead of rebuilding them
 * every call. nn_weights_thaw(p, n) unfreezes every range overlapping [p, p+n) and frees what
 * was kept for it; nn_adamw_step, nn_ema_update, nn_params_init_default, nn_checkpoint_load
 * and nn_params_free thaw the buffers they write, so only direct writes need an explicit
 * thaw. freeze returns 0, or -1 (with a warning, nothing cached) past 16 frozen ranges. */
int nn_weights_freeze(const float *w, size_t n);
void nn_weights_thaw(const float *w, size_t n);

/* ---------------------------------------------------------------------------------------------
 * convolutions */

/* 2D convolution: in (B, Cin, H, W), weight (Cout, Cin, KH, KW), bias (Cout) or NULL,
 * out (B, Cout, Ho, Wo), Ho = (H + 2 pad - KH) / stride + 1. */
typedef struct {
  int B, Cin, H, W;
  int Cout, KH, KW;
  int stride, pad;
  int Ho, Wo;  // derived
} nn_conv2d_dims;

nn_conv2d_dims nn_conv2d_make(int B, int Cin, int H, int W, int Cout, int K, int stride, int pad);
/* 3x3 stride-1 pad-1 convolutions run by Winograd F(4x4, 3x3) when the CPU has AVX2 + FMA.
 * mode 1 (the default): where it pays (not on tiny images with many channels); 2: for every such
 * convolution; 0: never (im2col + sgemm). Returns the mode now in force (0 without AVX2 + FMA).
 * Set it before sizing scratch buffers: the two paths need different amounts. */
int nn_conv2d_set_winograd(int mode);
size_t nn_conv2d_scratch(const nn_conv2d_dims *d);  // floats, forward and backward
void nn_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                       const nn_conv2d_dims *d, float *scratch);
/* out += conv2d(in) + b */
void nn_conv2d_forward_acc(float *out, const float *in, const float *w, const float *b,
                           const nn_conv2d_dims *d, float *scratch);
void nn_conv2d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const nn_conv2d_dims *d, float *scratch);
void nn_conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                           const nn_conv2d_dims *d);
void nn_conv2d_backward_ref(float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const nn_conv2d_dims *d);

/* 1D convolution: in (B, Cin, T), weight (Cout, Cin, K), out (B, Cout, To),
 * To = (T + 2 pad - K) / stride + 1. Transposed (PyTorch ConvTranspose1d): weight (Cin, Cout, K),
 * To = (T - 1) stride - 2 pad + K. */
typedef struct {
  int B, Cin, T;
  int Cout, K;
  int stride, pad;
  int To;  // derived
} nn_conv1d_dims;

nn_conv1d_dims nn_conv1d_make(int B, int Cin, int T, int Cout, int K, int stride, int pad);
/* stride-1 "same" conv1d with kernel 3 or 5 (Diffusion Policy's) runs by Winograd F(4, K):
 * mode 1 (the default) when Cin * Cout >= 4096 and there are at least 128 tiles of 4 outputs
 * (B * ceil(To / 4)), 2 for every such shape, 0 never (im2col).
 * Returns the mode. Set it before sizing scratch buffers. */
int nn_conv1d_set_winograd(int mode);
nn_conv1d_dims nn_convt1d_make(int B, int Cin, int T, int Cout, int K, int stride, int pad);
size_t nn_conv1d_scratch(const nn_conv1d_dims *d);
size_t nn_convt1d_scratch(const nn_conv1d_dims *d);
void nn_conv1d_forward(float *out, const float *in, const float *w, const float *b,
                       const nn_conv1d_dims *d, float *scratch);
void nn_conv1d_forward_acc(float *out, const float *in, const float *w, const float *b,
                           const nn_conv1d_dims *d, float *scratch);  // out += conv1d(in) + b
void nn_conv1d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const nn_conv1d_dims *d, float *scratch);
void nn_conv1d_forward_ref(float *out, const float *in, const float *w, const float *b,
                           const nn_conv1d_dims *d);
void nn_conv1d_backward_ref(float *din, float *dw, float *db, const float *dout, const float *in,
                            const float *w, const nn_conv1d_dims *d);
void nn_convt1d_forward(float *out, const float *in, const float *w, const float *b,
                        const nn_conv1d_dims *d, float *scratch);
void nn_convt1d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, const nn_conv1d_dims *d, float *scratch);
void nn_convt1d_forward_ref(float *out, const float *in, const float *w, const float *b,
                            const nn_conv1d_dims *d);
void nn_convt1d_backward_ref(float *din, float *dw, float *db, const float *dout,
                             const float *in, const float *w, const nn_conv1d_dims *d);

/* temporal part of the factorised space-time conv (PyTorch Conv3d with kernel (K,1,1),
 * padding (K/2,0,0)): in (B, Cin, T, HW), weight (Cout, Cin, K), out (B, Cout, T, HW).
 * The spatial part is nn_conv2d on frames after nn_frames_to_batch. */
size_t nn_tconv_scratch(int Cin, int Cout, int K);
void nn_tconv_forward(float *out, const float *in, const float *w, const float *b, int B, int Cin,
                      int T, int HW, int Cout, int K, float *scratch);
void nn_tconv_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                       const float *w, int B, int Cin, int T, int HW, int Cout, int K,
                       float *scratch);
/* (B, C, T, HW) <-> (B*T, C, HW); backward of one is the other with accumulation */
void nn_frames_to_batch(float *out, const float *in, int B, int C, int T, int HW);
void nn_batch_to_frames(float *out, const float *in, int B, int C, int T, int HW);
void nn_frames_to_batch_acc(float *out, const float *in, int B, int C, int T, int HW);
void nn_batch_to_frames_acc(float *out, const float *in, int B, int C, int T, int HW);

/* ---------------------------------------------------------------------------------------------
 * dense */

/* in (N, In), weight (Out, In), bias (Out) or NULL, out (N, Out) */
void nn_linear_forward(float *out, const float *in, const float *w, const float *b, int N,
                       int In, int Out);
void nn_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int N, int In, int Out);
void nn_linear_forward_ref(float *out, const float *in, const float *w, const float *b, int N,
                           int In, int Out);
void nn_linear_backward_ref(float *din, float *dw, float *db, const float *dout,
                            const float *in, const float *w, int N, int In, int Out);

/* ---------------------------------------------------------------------------------------------
 * normalisation, optionally fused with the activation that follows it */

typedef enum { NN_ACT_NONE = 0, NN_ACT_SILU, NN_ACT_MISH, NN_ACT_RELU, NN_ACT_GELU } nn_act;

/* group norm: x (B, C, S) with S the spatial size, gamma/beta (C), out = act(GN(x));
 * mean and rstd (B, G) are saved for backward, which recomputes the pre-activation. */
void nn_groupnorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int B, int C, int S, int G,
                          float eps, nn_act act);
void nn_groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *mean, const float *rstd,
                           const float *gamma, const float *beta, int B, int C, int S, int G,
                           nn_act act);
/* two-pass double-precision reference (no fusion: act applied afterwards) */
void nn_groupnorm_forward_ref(float *out, const float *x, const float *gamma, const float *beta,
                              int B, int C, int S, int G, float eps, nn_act act);

/* layer norm over the last dim: x (N, C), gamma/beta (C), mean/rstd (N) */
void nn_layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *gamma, const float *beta, int N, int C, float eps);
void nn_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *mean, const float *rstd,
                           const float *gamma, int N, int C);

/* batch norm in training mode (batch statistics, biased variance for normalising):
 * x (B, C, S); mean/rstd (C) saved; running stats (C) updated with momentum when non-NULL
 * (unbiased variance, as PyTorch). out = act(BN(x)). */
void nn_batchnorm_forward(float *out, float *mean, float *rstd, float *run_mean, float *run_var,
                          const float *x, const float *gamma, const float *beta, int B, int C,
                          int S, float eps, float momentum, nn_act act);
void nn_batchnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                           const float *x, const float *mean, const float *rstd,
                           const float *gamma, const float *beta, int B, int C, int S,
                           nn_act act);

/* ---------------------------------------------------------------------------------------------
 * pointwise and shape ops */

void nn_act_forward(float *out, const float *x, size_t n, nn_act act);
void nn_act_backward(float *dx, const float *dout, const float *x, size_t n, nn_act act);
float nn_act_value(float x, nn_act act);
float nn_act_deriv(float x, nn_act act);

/* out = a + b; backward: da += dout, db += dout (either may be NULL) */
void nn_add_forward(float *out, const float *a, const float *b, size_t n);
void nn_add_backward(float *da, float *db, const float *dout, size_t n);
/* x (B, C, S) += e (B, C) broadcast over S; backward de += sum over S */
void nn_add_bc_forward(float *x, const float *e, int B, int C, int S);
void nn_add_bc_backward(float *de, const float *dout, int B, int C, int S);
/* FiLM: out (B, C, S) = scale[b,c] * h + bias[b,c], with sb (B, 2C) = [scale | bias] */
void nn_film_forward(float *out, const float *h, const float *sb, int B, int C, int S);
void nn_film_backward(float *dh, float *dsb, const float *dout, const float *h, const float *sb,
                      int B, int C, int S);

/* channel concat: a (B, Ca, S), b (B, Cb, S) -> out (B, Ca+Cb, S); backward splits (+=) */
void nn_concat_forward(float *out, const float *a, const float *b, int B, int Ca, int Cb, int S);
void nn_concat_backward(float *da, float *db, const float *dout, int B, int Ca, int Cb, int S);

/* nearest 2x upsample: in (N, H, W) -> out (N, 2H, 2W), N = B*C */
void nn_upsample2x_forward(float *out, const float *in, int N, int H, int W);
void nn_upsample2x_backward(float *din, const float *dout, int N, int H, int W);
/* average pool, kernel = stride = k: in (N, H, W) -> (N, H/k, W/k) */
void nn_avgpool_forward(float *out, const float *in, int N, int H, int W, int k);
void nn_avgpool_backward(float *din, const float *dout, int N, int H, int W, int k);
/* global average pool: in (N, S) -> out (N) */
void nn_gap_forward(float *out, const float *in, int N, int S);
void nn_gap_backward(float *din, const float *dout, int N, int S);
/* max pool (kernel k, stride s, padding p): in (N, H, W) -> out (N, Ho, Wo), argmax saved */
void nn_maxpool_forward(float *out, int32_t *arg, const float *in, int N, int H, int W, int k,
                        int s, int p, int Ho, int Wo);
void nn_maxpool_backward(float *din, const float *dout, const int32_t *arg, int N, int H, int W,
                         int Ho, int Wo);
/* strided downsample (take every s-th pixel, as a 1x1 stride-s conv without weights) */
void nn_subsample_forward(float *out, const float *in, int N, int H, int W, int s);
void nn_subsample_backward(float *din, const float *dout, int N, int H, int W, int s);

/* spatial softmax (robomimic, temperature 1): in (B, K, H, W) -> out (B, 2K) as
 * [x0, y0, x1, y1, ...], x over linspace(-1, 1, W), y over linspace(-1, 1, H);
 * prob (B, K, H*W) saved for backward */
void nn_spatial_softmax_forward(float *out, float *prob, const float *in, int B, int K, int H,
                                int W);
void nn_spatial_softmax_backward(float *din, const float *dout, const float *prob, int B, int K,
                                 int H, int W);

/* embedding lookup: ids (N) -> out (N, D) from table (V, D); backward dtable += */
void nn_embedding_forward(float *out, const int32_t *ids, const float *table, int N, int D);
void nn_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int D);

/* sinusoidal timestep embedding of t (N) -> out (N, dim), freq_i = exp(-ln(1e4) i / (half - shift))
 * for i < half = dim/2. sin_first = 1, shift = 1: Diffusion Policy / torch_baseline;
 * sin_first = 0, shift = 0: AVDC/guided-diffusion (cos first). */
void nn_timestep_embedding(float *out, const float *t, int N, int dim, int sin_first, int shift);

/* multi-head attention core, channels first: q (B, nh*hd, Nq), k and v (B, nh*hd, Nk), each with
 * its own batch stride (in floats) so q/k/v can be slices of one qkv tensor; out (B, nh*hd, Nq),
 * contiguous. Self-attention: Nq == Nk from one tensor; cross-attention: k/v from a context.
 * prob (B, nh, Nq, Nk) saved for backward. scale is usually 1/sqrt(hd). */
typedef struct {
  int B, nh, hd, Nq, Nk;
  size_t q_bs, k_bs, v_bs;  // batch strides
  float scale;
} nn_attn_dims;
size_t nn_attention_scratch(const nn_attn_dims *d);
void nn_attention_forward(float *out, float *prob, const float *q, const float *k, const float *v,
                          const nn_attn_dims *d);
void nn_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *prob,
                           const float *q, const float *k, const float *v, const nn_attn_dims *d,
                           float *scratch);
void nn_attention_forward_ref(float *out, const float *q, const float *k, const float *v,
                              const nn_attn_dims *d);

/* MSE loss over n = B * per elements: mean_b w[b] * mean_i (y - t)^2, w NULL -> 1.
 * backward writes (not accumulates) dy = dloss * d/dy. */
float nn_mse_forward(const float *y, const float *t, const float *w, int B, size_t per);
void nn_mse_backward(float *dy, const float *y, const float *t, const float *w, int B, size_t per,
                     float dloss);

#endif
