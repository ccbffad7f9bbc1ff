/* policy_train.h: the policy job (`sp train policy`) on the shared trainer.
 *
 * Training (one optimizer step, every draw seeded from (seed, step)): B samples of the training
 * split of an `sp collect` dataset (data/sampler.h's policy samples: a frame t whose action came
 * from the expert, a goal frame min(t + k, n - 1) with k uniform in [goal_min, goal_max], the end
 * effector at t, the next H expert actions normalised by the dataset's limits); current and goal
 * frame stacked and cropped to the encoder's side (Diffusion Policy's random crop, one window for
 * both frames, or the centre with random_crop 0); diffusion head: t uniform in [0, T), x_t =
 * q_sample(chunk, eps), MSE to eps (or to the chunk with target x0); mlp head: MSE of the
 * regressed chunk. recovery 1 also draws from the recovery episodes (`sp collect --recovery`),
 * still only at frames whose action came from the expert. With an imagined goal set (`sp
 * imagine`: videos the video model made from the training demonstrations), a share imagined_frac
 * of the samples take their goal from those videos instead: among the imagined frames of the
 * sample's episode that stand for a frame within [t + goal_min, t + goal_max] (of a video started
 * at or before t), one at random, else the first one ahead of t; a sample no video covers keeps
 * its demonstration goal. The SP agent's policy acts towards imagined frames (docs/training.md).
 *
 * Validation (with the EMA weights): val_samples fixed held-out samples (the demonstrations of
 * highest seed per task and camera, never trained on; the same draws every time), centre crop,
 * DDIM from fixed noise, unnormalised; the mean squared error against the expert's actions per
 * action element (also xyz and gripper apart), beside the trivial prediction "the middle of the
 * limits" (normalised 0), which a model must beat, and the MSE of what the robot executes (both
 * clipped to [-1, 1] as Meta-World clips actions; the expert's raw actions reach 20). The headline
 * metric is the raw MSE (lower is better). */
#ifndef SP_MODELS_POLICY_TRAIN_H
#define SP_MODELS_POLICY_TRAIN_H

#include "models/policy.h"
#include "models/trainer.h"

typedef struct {
  int holdout;       // held-out demonstrations per (task, camera), for validation
  int goal_min;      // goal frame offset window [goal_min, goal_max] frames ahead
  int goal_max;      //   (the paper's narrow ablation: 17..20)
  int random_crop;   // 1: Diffusion Policy's random crop in training; 0: the centre
  int recovery;      // 1: draw from recovery episodes too (expert actions only)
  int val_samples;   // held-out samples per validation
  float imagined_frac;  // with an imagined goal set: the share of training samples whose goal is
                        // an imagined frame (when one covers the sample's frame)
} sp_ptrain_cfg;

extern const sp_cf sp_ptrain_fields[];
void sp_ptrain_cfg_default(sp_ptrain_cfg *c);
/* the trainer's defaults for the policy, Diffusion Policy's: AdamW lr 1e-4, betas (0.95, 0.999),
 * weight decay 1e-6, cosine LR with 500 warm-up steps, no gradient clipping, EMA with the power
 * schedule (0.75, at most 0.9999) */
void sp_policy_train_defaults(sp_train_cfg *c);

typedef struct sp_policy_job sp_policy_job;

/* where a run's weights and limits start (all NULL / 0: fresh weights from tc->seed, limits from
 * the dataset). Fine-tuning (`--init`) takes both from a policy checkpoint; a resumed fine-tuning
 * run keeps the limits it started with and names its init without loading it again. */
typedef struct {
  const char *init;              // a policy checkpoint: recorded in the data provenance
  int load;                      // 1: load init's weights (a fresh fine-tuning run)
  const sp_policy_limits *lim;   // the limits to use instead of the dataset's (NULL: the dataset's)
  const char *imagined;          // an imagined goal set of the dataset (models/goalset.h, sp imagine),
                                 // recorded in the provenance; NULL: goals from the demonstrations only
} sp_policy_start;

/* open the dataset (training and held-out splits), build the model from mc (weights and limits
 * as st says; st may be NULL) and a workspace for tc->batch. Given limits must have the dataset's
 * action limits (the sampler normalises the expert's actions with those). NULL with err. */
sp_policy_job *sp_policy_job_open(const char *data, const sp_policy_cfg *mc, const char *preset,
                                  const sp_ptrain_cfg *jc, const sp_train_cfg *tc, const sp_policy_start *st,
                                  char *err);
sp_trainable *sp_policy_job_trainable(sp_policy_job *j);
const sp_policy *sp_policy_job_model(const sp_policy_job *j);
void sp_policy_job_close(sp_policy_job *j);
/* one validation with the weights in the model now: the JSON of metrics and the MSE */
int sp_policy_job_validate(sp_policy_job *j, char *json, size_t cap, double *mse, char *err);

/* the model config, limits and preset of a policy checkpoint (a run's model.safetensors or a
 * committed one): what fine-tuning (`--init`) starts from. -1 with err on a missing or foreign file. */
int sp_policy_ckpt_settings(const char *ckpt, sp_policy_cfg *mc, sp_policy_limits *lim, char *preset, size_t pcap,
                            char *err);
/* what a run was started from, besides its configs ("" when none) */
typedef struct {
  char preset[32];
  char data[1024];      // the dataset
  char init[1024];      // the init checkpoint of a fine-tuning run
  char imagined[1024];  // the imagined goal set
} sp_policy_run_files;
/* the settings of the run whose resumable checkpoint is ckpt (OUT/last.safetensors): model, job
 * and training configs, the limits and the files it was started from, so `--resume` needs no
 * other option. -1 with err on a missing, foreign or unreadable checkpoint. */
int sp_policy_run_settings(const char *ckpt, sp_policy_cfg *mc, sp_ptrain_cfg *jc, sp_train_cfg *tc,
                           sp_policy_limits *lim, sp_policy_run_files *files, char *err);

#endif
