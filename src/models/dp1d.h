/* dp1d.h: the policy's denoiser, Diffusion Policy's ConditionalUnet1D (FiLM with scale and bias):
 * noisy actions x (B, horizon, adim), diffusion step t (B), global condition g (B, gdim) ->
 * out (B, horizon, adim) (the predicted noise or sample; the caller decides).
 *
 *   step     sinusoid(t) (step_dim, sin first) -> Linear(step_dim, 4 step_dim) -> Mish ->
 *            Linear(4 step_dim, step_dim); cond = [step embedding | g] (cdim = step_dim + gdim)
 *   encoder  per level i (channels down_dims[i]): 2 ConditionalResidualBlock1D (nn_crb1d: conv
 *            GN Mish, FiLM from Mish -> Linear(cond), conv GN Mish, 1x1 residual when the
 *            channels change), then Conv1d(3, stride 2, pad 1) except at the last level
 *   middle   2 blocks at the widest level
 *   decoder  levels - 1 stages: [h | skip] -> 2 blocks -> ConvTranspose1d(4, stride 2, pad 1)
 *   head     Conv1d(kernel) GN Mish at down_dims[0], then 1x1 Conv1d to adim
 * The horizon halves levels - 1 times, so it must be divisible by 2^(levels - 1) (SP's 4 with 3
 * levels: 4, 2, 1).
 *
 * Parameter names (the twin tools/twin_policy.py uses the same): temb.0/2, down.<i>.0/1 (blocks),
 * down.<i>.2 (Conv1d), mid.0/1, up.<j>.0/1, up.<j>.2 (ConvTranspose1d), final.0.b.0/1, final.1;
 * inside a block nn_crb1d's b0.b.0, b0.b.1, b1.b.0, b1.b.1, cond.1, res. Diffusion Policy's own
 * checkpoints name the same tensors diffusion_step_encoder.1/3, down_modules.<i>.<k>,
 * mid_modules, up_modules, final_conv, blocks.<k>.block.<n>, cond_encoder.1, residual_conv.
 *
 * Model and data as resnet.h: sp_dp1d holds config and offsets into the caller's parameter table;
 * sp_dp1d_ws holds a batch's activations (and gradients when train = 1). */
#ifndef SP_MODELS_DP1D_H
#define SP_MODELS_DP1D_H

#include "models/model.h"
#include "nn/nn_blocks.h"

#define SP_DP1D_MAX_LEVELS 4

typedef struct {
  int adim;                           // action dimension (4: xyz move + gripper)
  int horizon;                        // actions per sample (4)
  int down_dims[SP_DP1D_MAX_LEVELS];  // channels per level
  int levels;                         // entries of down_dims
  int kernel;                         // conv kernel, odd (5)
  int groups;                         // GroupNorm groups (8)
  int step_dim;                       // diffusion-step embedding width, even
  int gdim;                           // global condition width (encoder features + end-effector xyz)
} sp_dp1d_cfg;

extern const sp_cf sp_dp1d_fields[];
/* tiny: 8,16,24, groups 4, step 16, gdim 35 (tests); cpu: 256,512,1024, step 128, gdim 515;
 * paper (Diffusion Policy's image config): 512,1024,2048, step 128, gdim 515; all kernel 5,
 * horizon 4, adim 4. gdim is the caller's to set. */
void sp_dp1d_cfg_preset(sp_dp1d_cfg *c, sp_preset p);
/* table bounds, then: horizon divisible by 2^(levels - 1), kernel odd, step_dim even and >= 4,
 * every width divisible by groups; -1 with err naming the field */
int sp_dp1d_cfg_check(const sp_dp1d_cfg *c, char *err);

typedef struct {
  nn_crb1d r1, r2;
  size_t sw, sb;  // down: Conv1d(c, c, 3, 2, 1); up: ConvTranspose1d(c, c, 4, 2, 1); NN_NONE if none
  int T;          // time steps at this level's blocks
  int c;          // the blocks' output channels
} sp_dp1d_level;

typedef struct {
  sp_dp1d_cfg cfg;
  int cdim;                                  // step_dim + gdim
  size_t t0w, t0b, t2w, t2b;                 // step MLP
  sp_dp1d_level down[SP_DP1D_MAX_LEVELS];    // encoder, levels entries
  sp_dp1d_level up[SP_DP1D_MAX_LEVELS - 1];  // decoder, levels - 1 entries
  nn_crb1d mid[2];
  size_t f0w, f0b, fgw, fgb, f1w, f1b;       // head: conv, GroupNorm, 1x1 conv
  size_t p0, p1;                             // this model's range [p0, p1) in the parameter table
} sp_dp1d;

/* check the config and register the parameters into ps under prefix ("" for none); the caller
 * allocates and initialises ps. 0 or -1 with err. */
int sp_dp1d_init(sp_dp1d *m, const sp_dp1d_cfg *c, nn_params *ps, const char *prefix, char *err);

typedef struct {
  nn_crb1d_act a1, a2;
  float *sout;   // resampler output: down (B, c, T/2), up (B, c, 2T)
  float *cat;    // up: (B, 2 c_in, T) = [h | skip]
  /* gradients (train) */
  float *d1, *d2;  // of a1.out and a2.out
  float *dsout;    // of sout
  float *dcat;     // of cat
} sp_dp1d_level_ws;

typedef struct {
  sp_ws base;
  int B;                       // batch of the last forward
  float *xt;                   // (B, adim, H) input, channels first
  float *e0, *z1, *mz1, *te;   // step MLP: sinusoid (B, sd), (B, 4 sd) pre- and post-Mish, (B, sd)
  float *cond;                 // (B, cdim) [te | g]
  sp_dp1d_level_ws down[SP_DP1D_MAX_LEVELS], up[SP_DP1D_MAX_LEVELS - 1];
  nn_crb1d_act ma[2];
  float *f0, *fm, *fr, *fa;    // head: conv out (B, d0, H), GN stats (B, groups), mish(gn) (B, d0, H)
  float *y;                    // (B, adim, H) head output, channels first
  /* gradients (train = 1 only; NULL otherwise) */
  float *dy, *dfa, *df0, *dcond, *dte, *dmz1, *dz1, *dmid[2];
} sp_dp1d_ws;

/* sized for batches up to maxB; train = 0: inference only (no gradient buffers) */
int sp_dp1d_ws_init(sp_dp1d_ws *w, const sp_dp1d *m, int maxB, int train, char *err);
void sp_dp1d_ws_free(sp_dp1d_ws *w);

/* x (B, horizon, adim), t (B) diffusion steps (as floats), g (B, gdim) -> out (B, horizon, adim) */
void sp_dp1d_forward(const sp_dp1d *m, const nn_params *ps, sp_dp1d_ws *w, float *out, const float *x,
                     const float *t, const float *g, int B);
/* after a forward of the same batch on a train = 1 workspace: parameter gradients accumulate
 * (+=) into ps->grad from dout (B, horizon, adim); dg (B, gdim), if not NULL, accumulates the
 * condition's gradient (so it reaches the encoder). The input x gets none. */
void sp_dp1d_backward(const sp_dp1d *m, nn_params *ps, sp_dp1d_ws *w, float *dg, const float *dout, int B);
/* forward FLOPs (convs and linears, 2 per multiply-add) of a batch of B */
double sp_dp1d_flops(const sp_dp1d *m, int B);

#endif
