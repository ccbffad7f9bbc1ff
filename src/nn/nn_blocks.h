/* nn_blocks.h: composite blocks of the reference networks, built from nn ops, with parameter
 * names equal to the PyTorch twins' state-dict keys (../shared/bench/torch_baseline.py):
 *   nn_resblock   video U-Net ResBlock: GN+SiLU, conv3x3, + Linear(temb), GN+SiLU, conv3x3, skip
 *   nn_attnblock  U-Net attention: GN, 1x1 qkv conv, multi-head attention, 1x1 out conv, residual
 *   nn_crb1d      Diffusion Policy ConditionalResidualBlock1D (conv1d GN Mish, FiLM, conv1d GN Mish)
 *   nn_basicblock ResNet-18 BasicBlock with BatchNorm (training mode) and ReLU
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

/* ---------------------------------------------------------------------------------------------
 * ResNet BasicBlock (BatchNorm, training mode): x (B, cin, H, W) -> out (B, cout, H/s, W/s) */
typedef struct {
  int cin, cout, stride;
  size_t c1w, b1w, b1b, c2w, b2w, b2b, scw, sbw, sbb;  // scw == NN_NONE: identity shortcut
} nn_basicblock;

typedef struct {
  int B, H, W, Ho, Wo;
  float *h1, *m1, *r1, *a1;  // conv1 out, BN1 stats, relu(bn1)
  float *h2, *m2, *r2;       // conv2 out, BN2 stats
  float *hs, *ms, *rs, *zs;  // shortcut conv out, its BN stats, BN(shortcut)
  float *out;                // relu(bn2(h2) + shortcut)
} nn_basicblock_act;

void nn_basicblock_init(nn_basicblock *b, nn_params *ps, const char *prefix, int cin, int cout,
                        int stride);
void nn_basicblock_act_alloc(nn_basicblock_act *a, const nn_basicblock *b, nn_arena *ar, int B,
                             int H, int W);
size_t nn_basicblock_scratch(const nn_basicblock *b, int B, int H, int W);
size_t nn_basicblock_work(const nn_basicblock *b, int B, int H, int W);
void nn_basicblock_forward(const nn_basicblock *b, const nn_params *ps, nn_basicblock_act *a,
                           const float *x, float *scratch);
void nn_basicblock_backward(const nn_basicblock *b, nn_params *ps, const nn_basicblock_act *a,
                            float *dx, const float *dout, const float *x, float *work,
                            float *scratch);

/* fill registered parameters like PyTorch's default init (kaiming-uniform-style bounds
 * 1/sqrt(fan_in) for weights and biases; norm weights 1, biases 0), deterministic from seed */
void nn_params_init_default(nn_params *ps, unsigned seed);

#endif
