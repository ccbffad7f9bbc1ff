/* resnet.h: the policy's image encoder, a ResNet-18 trunk without its fc layer (Diffusion
 * Policy's "plain image encoder"): x (B, in_ch, res, res) -> features (B, feat).
 *
 *   stem     conv1 7x7/2 (no bias) -> bn1 -> ReLU -> max-pool 3/2 (pad 1)
 *   stages   `stages` stages of `blocks` BasicBlocks; widths width, 2 width, 4 width, 8 width;
 *            every stage after the first starts with stride 2 (1x1 downsample shortcut)
 *   head     global average pool -> feat = width << (stages - 1) features (512 for ResNet-18)
 *
 * Norm: `group` (GroupNorm with channels / gn_size groups, Diffusion Policy's swap; the default)
 * or `batch` (BatchNorm with running statistics). Parameter names are torchvision's
 * (conv1.weight, bn1.weight, layer1.0.conv1.weight, layer2.0.downsample.0.weight, ...) behind the
 * caller's prefix, so a torchvision checkpoint maps one to one (sp_resnet_load_torchvision).
 *
 * Model and data (STYLE.md): sp_resnet holds the config and parameter offsets; the weights live
 * in the caller's nn_params table (one table can hold encoder and U-Net). BatchNorm's running
 * statistics are buffers, not parameters: they live in the model's own table `stats` (names
 * <prefix>.bn1.running_mean, ...), which the optimizer and EMA never touch and which a
 * training-mode forward updates (the one piece of the model a forward writes). The workspace
 * sp_resnet_ws holds everything of a batch: activations, and gradients when train = 1. */
#ifndef SP_MODELS_RESNET_H
#define SP_MODELS_RESNET_H

#include "models/model.h"
#include "nn/nn_blocks.h"

enum { SP_RESNET_NORM_GROUP = NN_NORM_GROUP, SP_RESNET_NORM_BATCH = NN_NORM_BATCH };
#define SP_RESNET_MAX_BLOCKS 16  // stages (<= 4) x blocks (<= 4)

typedef struct {
  int in_ch;    // input channels (6: current and goal RGB frames stacked)
  int res;      // input height = width
  int width;    // stem and first-stage channels (64 = ResNet-18)
  int stages;   // 1..4; the features are width << (stages - 1)
  int blocks;   // BasicBlocks per stage (2 = ResNet-18)
  int norm;     // SP_RESNET_NORM_GROUP or SP_RESNET_NORM_BATCH
  int gn_size;  // channels per GroupNorm group (16: Diffusion Policy's num_features // 16)
} sp_resnet_cfg;

extern const sp_cf sp_resnet_fields[];
/* tiny: width 8, 3 stages, res 32, gn_size 4 (tests); cpu: ResNet-18 at res 96; paper: at 128 */
void sp_resnet_cfg_preset(sp_resnet_cfg *c, sp_preset p);
/* table bounds, then the cross-field rules (every width divisible by gn_size for GroupNorm;
 * res large enough for a 1x1 last stage); -1 with err naming the field */
int sp_resnet_cfg_check(const sp_resnet_cfg *c, char *err);

typedef struct {
  sp_resnet_cfg cfg;
  int feat;                             // output features
  int H0, Hp;                           // stem output and max-pool output sizes
  int nblk;                             // stages x blocks
  size_t stem_w;                        // conv1.weight (width, in_ch, 7, 7)
  nn_norm2d stem_n;                     // bn1
  nn_bblock blk[SP_RESNET_MAX_BLOCKS];  // layer<s+1>.<j>
  int Hin[SP_RESNET_MAX_BLOCKS];        // each block's input size
  size_t p0, p1;                        // this model's range [p0, p1) in the parameter table
  nn_params stats;                      // BatchNorm running statistics (no entries for GroupNorm)
} sp_resnet;

/* check the config, register the parameters into ps under prefix ("" for none) and allocate
 * the running statistics (mean 0, variance 1). The caller allocates and initialises ps
 * (nn_params_alloc, nn_params_init_default or a checkpoint). 0 or -1 with err. */
int sp_resnet_init(sp_resnet *m, const sp_resnet_cfg *c, nn_params *ps, const char *prefix,
                   char *err);
void sp_resnet_free(sp_resnet *m);  // the running statistics

typedef struct {
  sp_ws base;
  int eval;        // BatchNorm mode of the next forward: 1 running statistics, 0 batch statistics
                   // (updating the running ones). Starts as !train; a training workspace may set
                   // it for an eval-mode forward (no backward may follow that one).
  int B;           // batch of the last forward
  int fwd_train;   // the last forward ran in training mode
  const float *x;  // the last forward's input, by pointer: keep it unchanged until backward
  float *h0;       // (B, width, H0, H0) conv1 output
  float *m0, *r0;  // stem norm statistics
  float *a0;       // (B, width, H0, H0) relu(bn1(h0))
  float *p0;       // (B, width, Hp, Hp) max-pool output
  int32_t *arg;    // (B, width, Hp, Hp) max-pool argmax
  nn_bblock_act ba[SP_RESNET_MAX_BLOCKS];
  /* gradients (train = 1 only; NULL otherwise) */
  float *dp0;                         // (B, width, Hp, Hp)
  float *da0;                         // (B, width, H0, H0)
  float *dblk[SP_RESNET_MAX_BLOCKS];  // each block's output gradient
} sp_resnet_ws;

/* sized for batches up to maxB; train = 0: inference only (no gradient buffers, eval mode) */
int sp_resnet_ws_init(sp_resnet_ws *w, const sp_resnet *m, int maxB, int train, char *err);
void sp_resnet_ws_free(sp_resnet_ws *w);

/* x (B, in_ch, res, res) -> feat (B, feat), B <= maxB. With BatchNorm in training mode
 * (w->eval == 0) the running statistics in m->stats are updated. */
void sp_resnet_forward(const sp_resnet *m, const nn_params *ps, sp_resnet_ws *w, float *feat,
                       const float *x, int B);
/* after a training-mode forward of the same batch: parameter gradients accumulate (+=) into
 * ps->grad from dfeat (B, feat); the input gets no gradient */
void sp_resnet_backward(const sp_resnet *m, nn_params *ps, sp_resnet_ws *w, const float *dfeat,
                        int B);
/* forward FLOPs (convolutions, 2 per multiply-add) of a batch of B */
double sp_resnet_flops(const sp_resnet *m, int B);

/* load torchvision resnet18 weights from a safetensors file (keys conv1.weight, bn1.weight,
 * layer1.0.conv1.weight, ..., fc.* ignored): every conv and norm of the model must be there
 * with the same shape. The 3-channel stem is copied into each group of 3 input channels and
 * divided by in_ch / 3 (6 channels: both halves, halved), so an image stacked with itself gives
 * the pretrained response. BatchNorm weight/bias become the norm's affine parameters; with
 * norm = batch running_mean/var go into m->stats; GroupNorm has no running statistics, so
 * they are dropped (the pretrained trunk then sees differently normalised activations: a
 * starting point for fine-tuning, not the pretrained function). in_ch must be a multiple of 3.
 * 0 or -1 with err naming the key. */
int sp_resnet_load_torchvision(sp_resnet *m, nn_params *ps, const char *path, char *err);

#endif
