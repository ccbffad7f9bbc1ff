/* policy.h: the goal-conditioned diffusion policy (paper, "Spatial Based Action Prediction";
 * Diffusion Policy's CNN policy, reference-models.md section 4) as one network:
 *
 *   image    the current frame and the goal frame stacked into 6 channels, (B, 6, crop, crop)
 *            in [-1, 1] -> sp_resnet (GroupNorm) -> feat = enc_width << (enc_stages - 1)
 *   ee       end-effector xyz (and with ee_grip the gripper opening, obs[3]), normalised to
 *            [-1, 1] by the dataset's limits -> Linear(nee, ee_hidden) -> Mish ->
 *            Linear(ee_hidden, ee_dim), nee = 3 + ee_grip
 *   g        [feat | ee] (B, gdim = feat + ee_dim), the global condition
 *   head     diffusion: sp_dp1d (ConditionalUnet1D with FiLM) over x (B, H, 4) noisy normalised
 *            actions at step t -> the predicted noise (target eps) or chunk (target x0);
 *            mlp (the paper's ablation, direct regression): Linear(gdim, mlp_hidden) -> Mish ->
 *            Linear(mlp_hidden, mlp_hidden) -> Mish -> Linear(mlp_hidden, H * 4) -> the chunk
 *   noise    DDPM squaredcos_cap_v2 over diffusion_steps (100); inference by DDIM (eta 0, the
 *            time grid of nn_ddim_timesteps, x0 clipped to [-1, 1] as clip_sample) in
 *            ddim_steps steps; the encoder runs once per chunk, the U-Net once per step.
 *   actions  normalised to [-1, 1] per dimension by the dataset's limits (Diffusion Policy's
 *            "limits" normaliser, data/sampler.h); sp_policy_act unnormalises.
 *
 * One parameter table holds everything, under the twin's names (tools/twin_policy.py):
 * enc.<torchvision resnet names>, ee.0/ee.2, unet.<dp1d names> (diffusion head) or
 * head.0/head.2/head.4 (mlp head). The limits travel in the config JSON (sp_policy_config_json:
 * the table's fields plus "limits"), so a checkpoint is a whole policy.
 *
 * Model and data (STYLE.md): sp_policy (config, weights, limits) is constant at inference and may
 * serve many threads; each thread owns an sp_policy_ws sized for a largest batch (train = 0: no
 * gradient buffers). Forward, backward, predict and act never allocate. */
#ifndef SP_MODELS_POLICY_H
#define SP_MODELS_POLICY_H

#include <stdint.h>

#include "models/dp1d.h"
#include "models/resnet.h"
#include "nn/nn_diffusion.h"

enum { SP_POLICY_HEAD_DIFFUSION = 0, SP_POLICY_HEAD_MLP };
enum { SP_POLICY_TARGET_EPS = 0, SP_POLICY_TARGET_X0 };
#define SP_POLICY_EE_MAX 4  // end-effector input: tcp xyz, then the gripper opening (ee_grip)
#define SP_POLICY_ADIM 4  // xyz move + gripper (SP_ACT_DIM)
#define SP_POLICY_IN_CH 6

typedef struct {
  int frame;          // side of the frames the policy takes (the dataset's)
  sp_resnet_cfg enc;  // the encoder: table keys crop (= res), enc_width, enc_stages, enc_blocks,
                      // enc_gn_size; in_ch 6 and GroupNorm are fixed
  int ee_hidden;      // end-effector MLP hidden width
  int ee_dim;         // end-effector features
  int ee_grip;        // 1: the gripper opening (obs[3]) joins the end-effector input (a deviation,
                      // docs/deviations.md: Diffusion Policy's robomimic policies see the gripper)
  sp_dp1d_cfg unet;   // the diffusion head: horizon, down_dims, kernel, groups, step_dim;
                      // adim 4 and gdim = features + ee_dim are derived
  int head;           // SP_POLICY_HEAD_DIFFUSION or SP_POLICY_HEAD_MLP
  int mlp_hidden;     // mlp head width
  int target;         // SP_POLICY_TARGET_EPS or SP_POLICY_TARGET_X0 (diffusion head)
  int T;              // diffusion steps (table key diffusion_steps)
  int ddim_steps;     // DDIM steps at inference
} sp_policy_cfg;

extern const sp_cf sp_policy_fields[];
/* tiny (tests: 16 px frames, 14 px crop, U-Net 32-64-64), cpu (this 2-core machine, chosen by measurement,
 * docs/models.md), paper (ResNet-18 at 112 of 128 px, Diffusion Policy's image U-Net) */
void sp_policy_cfg_preset(sp_policy_cfg *c, sp_preset p);
/* the fixed and derived fields (enc.in_ch, enc.norm, unet.adim, unet.gdim) from the others */
void sp_policy_cfg_derive(sp_policy_cfg *c);
/* table bounds, the encoder's and U-Net's rules, crop <= frame, horizon <= SP_HORIZON_MAX,
 * ddim_steps <= diffusion_steps; -1 with err naming the field */
int sp_policy_cfg_check(const sp_policy_cfg *c, char *err);

/* the limits normaliser of actions and end effector: per dimension [min, max] -> [-1, 1]
 * (a range below 1e-4: scale 1, only shifted), Diffusion Policy's "limits" */
typedef struct {
  double act_min[SP_POLICY_ADIM], act_max[SP_POLICY_ADIM];  // the dataset's actions
  double ee_min[SP_POLICY_EE_MAX], ee_max[SP_POLICY_EE_MAX];  // the dataset's end effector (m;
                                                              // the first nee are used)
} sp_policy_limits;

typedef struct {
  sp_policy_cfg cfg;  // derived fields filled
  nn_params ps;       // every weight, one table
  sp_resnet enc;
  sp_dp1d unet;                        // diffusion head (unused with the mlp head)
  size_t e0w, e0b, e2w, e2b;           // ee MLP
  size_t h0w, h0b, h2w, h2b, h4w, h4b; // mlp head (NN_NONE with the diffusion head)
  int feat, gdim;                      // encoder features, global condition width
  int nee;                             // end-effector inputs, 3 + ee_grip
  nn_sched sched;
  sp_policy_limits lim;
  double a_scale[SP_POLICY_ADIM], a_off[SP_POLICY_ADIM];  // from lim
  double e_scale[SP_POLICY_EE_MAX], e_off[SP_POLICY_EE_MAX];
} sp_policy;

/* check the config, register the parameters, allocate the weights only and fill them (PyTorch's
 * default bounds from seed); limits start as the identity ([-1, 1] everywhere). 0 or -1 with err. */
int sp_policy_init(sp_policy *m, const sp_policy_cfg *c, unsigned seed, char *err);
void sp_policy_free(sp_policy *m);
size_t sp_policy_nparams(const sp_policy *m);
void sp_policy_set_limits(sp_policy *m, const sp_policy_limits *lim);

/* the config JSON stored in checkpoints: every table field plus "limits": {act_min, act_max,
 * ee_min, ee_max}. malloc'd. */
char *sp_policy_config_json(const sp_policy *m);
/* read it back: the table's fields into c (others keep their values; not bounds-checked) and
 * the limits into lim; -1 with err on a malformed JSON, an unknown key or missing limits */
int sp_policy_config_parse(const char *json, sp_policy_cfg *c, sp_policy_limits *lim, char *err);
/* a whole policy from a checkpoint of `sp train policy` (model.safetensors or last.safetensors):
 * config, limits and weights. 0 or -1 with err (missing file, another model kind, bad config);
 * free with sp_policy_free. */
int sp_policy_load(sp_policy *m, const char *path, char *err);

/* ---------------------------------------------------------------------------------------------
 * workspace: one per thread */

typedef struct {
  sp_ws base;
  sp_resnet_ws enc;
  sp_dp1d_ws unet;          // diffusion head only
  int B;                    // batch of the last forward
  const float *ee_in;       // the last forward's end effector (B, nee), by pointer
  float *feat;              // (B, feat) encoder output
  float *ez, *ezm, *ee;     // ee MLP: (B, ee_hidden) before and after Mish, (B, ee_dim)
  float *g;                 // (B, gdim) global condition [feat | ee]
  float *hz1, *hm1, *hz2, *hm2;  // mlp head: (B, mlp_hidden) before and after each Mish
  /* gradients (train = 1 only; NULL otherwise) */
  float *dg, *dfeat, *dee, *dezm, *dez;
  float *dhm1, *dhz1, *dhm2, *dhz2;
  /* inference (predict, act) */
  float *img;               // (maxB, 6, crop, crop)
  float *een;               // (maxB, nee) normalised end effector
  float *x, *mo, *x0, *eps; // (maxB, H, 4) DDIM state, model output, work
  float *nz, *y;            // (maxB, H, 4) act's noise and normalised chunk
  float *tb;                // (maxB) timesteps
} sp_policy_ws;

/* sized for batches up to maxB; train = 0: inference only (no gradient buffers) */
int sp_policy_ws_init(sp_policy_ws *w, const sp_policy *m, int maxB, int train, char *err);
void sp_policy_ws_free(sp_policy_ws *w);

/* img (B, 6, crop, crop) in [-1, 1] (kept by pointer until backward), ee (B, nee) normalised ->
 * w->g (B, gdim) */
void sp_policy_encode(const sp_policy *m, sp_policy_ws *w, const float *img, const float *ee, int B);
/* the training forward: encode, then the head. diffusion: x (B, H, 4) noisy normalised
 * actions, t (B) steps as floats -> out (B, H, 4) the prediction (eps or x0); mlp: x and t are
 * ignored (may be NULL), out = the regressed chunk. B <= maxB. */
void sp_policy_forward(const sp_policy *m, sp_policy_ws *w, float *out, const float *x, const float *t,
                       const float *img, const float *ee, int B);
/* after sp_policy_forward on a train workspace (same B): parameter gradients accumulate (+=)
 * into m->ps.grad (allocated by the trainer) from dout (B, H, 4). The weights are not written. */
void sp_policy_backward(sp_policy *m, sp_policy_ws *w, const float *dout, int B);

/* inference: out (B, H, 4) normalised chunk from img and ee; the diffusion head runs DDIM from
 * noise (B, H, 4) (the mlp head ignores it, may be NULL) */
void sp_policy_predict(const sp_policy *m, sp_policy_ws *w, float *out, const float *img, const float *ee,
                      const float *noise, int B);

/* frames (3, frame, frame) floats in [-1, 1] -> img (6, crop, crop): the crop window at (y0, x0)
 * of both, current first (training: a random window; inference: the centre) */
void sp_policy_stack(const sp_policy *m, const float *cur, const float *goal, int y0, int x0, float *img);
/* end effector (tcp xyz in metres, gripper opening) -> normalised (nee: the opening only with ee_grip) */
void sp_policy_norm_ee(const sp_policy *m, const double ee[SP_POLICY_EE_MAX], float *out);
/* normalised chunk (H x 4) -> actions (H x 4) in the dataset's units */
void sp_policy_unnorm_actions(const sp_policy *m, const float *x, double *out);

/* one action chunk for a robot: cur and goal (frame x frame x 3) uint8 RGB as rendered, ee the
 * end effector (tcp xyz in metres, then the gripper opening obs[3], read with ee_grip only);
 * centre crop, encoder, DDIM from noise drawn from seed (MT19937, standard normals),
 * unnormalised: actions (H x 4). Uses row 0 of w (maxB >= 1). */
void sp_policy_act(const sp_policy *m, sp_policy_ws *w, const uint8_t *cur_rgb, const uint8_t *goal_rgb,
                   const double ee[SP_POLICY_EE_MAX], unsigned seed, double *actions);

/* forward FLOPs (2 per multiply-add) of one chunk at B = 1 as sp_policy_act spends them: the
 * encoder once, the head ddim_steps times (mlp: once) */
double sp_policy_act_flops(const sp_policy *m);

#endif
