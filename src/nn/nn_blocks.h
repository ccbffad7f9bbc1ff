/* nn_blocks.h: composite blocks of the reference networks, built from nn ops, with parameter
 * names equal to the PyTorch twins' state-dict keys (../shared/bench/torch_baseline.py):
 *   nn_resblock   video U-Net ResBlock: GN+SiLU, conv3x3, + Linear(temb), GN+SiLU, conv3x3, skip
 *   nn_attnblock  U-Net attention: GN, 1x1 qkv conv, multi-head attention, 1x1 out conv, residual
 *   nn_crb1d      Diffusion Policy ConditionalResidualBlock1D (conv1d GN Mish, FiLM, conv1d GN Mish)
 *   nn_bblock     ResNet-18 BasicBlock with GroupNorm or BatchNorm (nn_norm2d) and ReLU
 * A block struct holds the config and parameter offsets (const during forward/backward); its
 * activations for one batch shape live in an _act struct carved from an nn_arena. backward takes
 * a shared `work` buffer (transient gradients, sized by _work()) and a `scratch` buffer for the
 * convolutions (sized by _scratch()); both can be shared by all blocks of a model. */
#ifndef SP_NN_BLOCKS_H
#define SP_NN_BLOCKS_H

#include "nn/nn.h"
#include "nn/nn_train.h"

#define NN_NONE ((size_t)-1)

/* ---------------------------------------------------------------------------------------------
 * video U-Net ResBlock: x (B, cin, H, W), temb (B, tdim) -> out (B, cout, H, W) */
typedef struct {
  int cin, cout, tdim, groups;
  size_t n1w, n1b, c1w, c1b, tw, tb, n2w, n2b, c2w, c2b, skw, skb;  // skw == NN_NONE: identity
} nn_resblock;

typedef struct {
  int B, H, W;
  float *m1, *r1, *a1;  // GN1 stats (B, G), silu(gn1(x)) (B, cin, S)
  float *e;             // (B, cout) time projection
  float *h1;            // (B, cout, S) conv1(a1) + e
  float *m2, *r2, *a2;  // GN2 stats, silu(gn2(h1))
  float *out;           // (B, cout, S)
} nn_resblock_act;

void nn_resblock_init(nn_resblock *r, nn_params *ps, const char *prefix, int cin, int cout,
                      int tdim, int groups);
void nn_resblock_act_alloc(nn_resblock_act *a, const nn_resblock *r, nn_arena *ar, int B, int H,
                           int W);
size_t nn_resblock_scratch(const nn_resblock *r, int B, int H, int W);
size_t nn_resblock_work(const nn_resblock *r, int B, int H, int W);
void nn_resblock_forward(const nn_resblock *r, const nn_params *ps, nn_resblock_act *a,
                         const float *x, const float *temb, float *scratch);
/* dx, dtemb accumulate (may be NULL); parameter grads accumulate into ps->grad */
void nn_resblock_backward(const nn_resblock *r, nn_params *ps, const nn_resblock_act *a,
                          float *dx, float *dtemb, const float *dout, const float *x,
                          const float *temb, float *work, float *scratch);

/* ---------------------------------------------------------------------------------------------
 * attention block: x (B, C, H, W) -> x + o(attn(qkv(GN(x)))) */
typedef struct {
  int C, heads, groups;
  size_t nw, nb, qkvw, qkvb, ow, ob;
} nn_attnblock;

typedef struct {
  int B, H, W;
  float *m, *r, *hn;  // GN stats, GN(x) (B, C, S)
  float *qkv;         // (B, 3C, S)
  float *prob;        // (B, heads, S, S)
  float *y;           // (B, C, S) attention output
  float *out;         // (B, C, S)
} nn_attnblock_act;

void nn_attnblock_init(nn_attnblock *b, nn_params *ps, const char *prefix, int C, int heads,
                       int groups);
void nn_attnblock_act_alloc(nn_attnblock_act *a, const nn_attnblock *b, nn_arena *ar, int B,
                            int H, int W);
size_t nn_attnblock_scratch(const nn_attnblock *b, int B, int H, int W);
size_t nn_attnblock_work(const nn_attnblock *b, int B, int H, int W);
void nn_attnblock_forward(const nn_attnblock *b, const nn_params *ps, nn_attnblock_act *a,
                          const float *x, float *scratch);
void nn_attnblock_backward(const nn_attnblock *b, nn_params *ps, const nn_attnblock_act *a,
                           float *dx, const float *dout, const float *x, float *work,
                           float *scratch);

/* ---------------------------------------------------------------------------------------------
 * Diffusion Policy ConditionalResidualBlock1D with FiLM (scale and bias):
 * x (B, cin, T), cond (B, cdim) -> out (B, cout, T) */
typedef struct {
  int cin, cout, cdim, K, groups;
  size_t c0w, c0b, g0w, g0b, c1w, c1b, g1w, g1b, lw, lb, rw, rb;  // rw == NN_NONE: identity
} nn_crb1d;

typedef struct {
  int B, T;
  float *h0, *m0, *r0, *a0;  // conv0 out, GN0 stats, mish(gn0)
  float *mc, *sb;            // mish(cond) (B, cdim), FiLM [scale | bias] (B, 2 cout)
  float *f;                  // FiLM output (B, cout, T)
  float *h1, *m1, *r1;       // conv1 out, GN1 stats
  float *out;
} nn_crb1d_act;

void nn_crb1d_init(nn_crb1d *r, nn_params *ps, const char *prefix, int cin, int cout, int cdim,
                   int K, int groups);
void nn_crb1d_act_alloc(nn_crb1d_act *a, const nn_crb1d *r, nn_arena *ar, int B, int T);
size_t nn_crb1d_scratch(const nn_crb1d *r, int B, int T);
size_t nn_crb1d_work(const nn_crb1d *r, int B, int T);
void nn_crb1d_forward(const nn_crb1d *r, const nn_params *ps, nn_crb1d_act *a, const float *x,
                      const float *cond, float *scratch);
void nn_crb1d_backward(const nn_crb1d *r, nn_params *ps, const nn_crb1d_act *a, float *dx,
                       float *dcond, const float *dout, const float *x, const float *cond,
                       float *work, float *scratch);

/* fill registered parameters like PyTorch's default init (kaiming-uniform-style bounds
 * 1/sqrt(fan_in) for weights and biases; norm weights 1, biases 0), deterministic from seed */
void nn_params_init_default(nn_params *ps, unsigned seed);

/* ---------------------------------------------------------------------------------------------
 * ResNet norm layer and BasicBlock with a choice of norm, torchvision parameter names
 * (conv1, bn1, conv2, bn2, downsample.0, downsample.1):
 *   NN_NORM_GROUP  GroupNorm(groups, C) (Diffusion Policy's swap): no running statistics, the
 *                  same computation in training and eval mode;
 *   NN_NORM_BATCH  BatchNorm2d (eps 1e-5, momentum 0.1) with running statistics: training mode
 *                  normalises with the batch statistics (biased variance) and updates the
 *                  running ones (unbiased variance) as PyTorch; eval mode normalises with the
 *                  running ones.
 * Running statistics are buffers, not parameters: they live in a second table `stats`
 * (<name>.running_mean, <name>.running_var) that no optimizer or EMA touches; forward takes
 * its data pointer `run` (NULL for GroupNorm). Backward follows a training-mode forward. */
typedef enum { NN_NORM_GROUP = 0, NN_NORM_BATCH } nn_norm_kind;

typedef struct {
  int kind, C, groups;  // groups: GroupNorm only
  size_t w, b;          // affine weight and bias (C) in the parameter table
  size_t rm, rv;        // running mean and variance (C) in the stats table; NN_NONE for GroupNorm
} nn_norm2d;

/* name: the layer's full prefix, e.g. "enc.layer1.0.bn1"; stats may be NULL for GroupNorm */
void nn_norm2d_init(nn_norm2d *n, nn_params *ps, nn_params *stats, const char *name,
                    nn_norm_kind kind, int C, int groups);
size_t nn_norm2d_nstat(const nn_norm2d *n, int B);  // floats of each saved statistic
/* x (B, C, S) -> out = act(norm(x)); mean/rstd (nstat) saved for backward */
void nn_norm2d_forward(const nn_norm2d *n, const nn_params *ps, float *run, int train,
                       float *out, float *mean, float *rstd, const float *x, int B, int S,
                       nn_act act);
void nn_norm2d_backward(const nn_norm2d *n, nn_params *ps, float *dx, const float *dout,
                        const float *x, const float *mean, const float *rstd, int B, int S,
                        nn_act act);

/* BasicBlock: x (B, cin, H, W) -> out = relu(n2(conv2(relu(n1(conv1(x))))) + shortcut(x)),
 * (B, cout, H/s, W/s); shortcut = nd(downsample(x)) when stride != 1 or cin != cout */
typedef struct {
  int cin, cout, stride;
  size_t c1w, c2w, dw;  // conv1, conv2, downsample.0 weights (no biases); dw == NN_NONE: identity
  nn_norm2d n1, n2, nd;
} nn_bblock;

typedef struct {
  int B, H, W, Ho, Wo;
  float *h1, *m1, *r1, *a1;  // conv1 out, n1 stats, relu(n1)
  float *h2, *m2, *r2;       // conv2 out, n2 stats
  float *hs, *ms, *rs, *zs;  // downsample conv out, its norm stats, nd(hs)
  float *out;                // (B, cout, Ho, Wo)
} nn_bblock_act;

/* gsize: channels per GroupNorm group (cout % gsize == 0) */
void nn_bblock_init(nn_bblock *b, nn_params *ps, nn_params *stats, const char *prefix, int cin,
                    int cout, int stride, nn_norm_kind kind, int gsize);
/* sized for batch B; a forward may then run any batch <= B after setting a->B */
void nn_bblock_act_alloc(nn_bblock_act *a, const nn_bblock *b, nn_arena *ar, int B, int H, int W);
size_t nn_bblock_scratch(const nn_bblock *b, int B, int H, int W);
size_t nn_bblock_work(const nn_bblock *b, int B, int H, int W);
void nn_bblock_forward(const nn_bblock *b, const nn_params *ps, float *run, int train,
                       nn_bblock_act *a, const float *x, float *scratch);
void nn_bblock_backward(const nn_bblock *b, nn_params *ps, const nn_bblock_act *a, float *dx,
                        const float *dout, const float *x, float *work, float *scratch);

#endif
