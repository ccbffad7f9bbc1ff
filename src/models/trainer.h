/* trainer.h: the one training loop every model of src/models uses.
 *
 * A job (video diffusion, policy, ...) hands the trainer an sp_trainable: its parameter table
 * and a step function that draws the batch of a given optimizer step (from randomness seeded by
 * (seed, step) alone), runs forward and backward and accumulates gradients. The trainer owns the
 * rest: AdamW, cosine LR with warm-up, gradient clipping, EMA (fixed decay every N steps, or
 * Diffusion Policy's power schedule), validation every N steps, a JSONL log, a loss-curve PNG,
 * atomic checkpoints every N minutes / steps and at the end, and --resume.
 *
 * Files in the output directory:
 *   last.safetensors   weights + AdamW moments + EMA + trainer state: what --resume reads
 *   model.safetensors  the weights to use (the EMA weights when EMA is on), no training state
 *   train.jsonl        one JSON object per logged step and per validation
 *   loss.svg           the loss curve (smoothed) and the validation metric, refreshed as it goes
 *   (the job may add pictures, e.g. the video job's val_<step>.png strips)
 *
 * Resume is bit-identical: the state after step s is a function of the checkpoint at s alone
 * (weights, moments, EMA, step), because every draw of step s+1 is seeded from (seed, s+1).
 * A NaN or inf loss or gradient norm stops the run with a message naming the step; the last
 * good checkpoint stays as it was. */
#ifndef SP_MODELS_TRAINER_H
#define SP_MODELS_TRAINER_H

#include <signal.h>

#include "models/model.h"

enum { SP_EMA_NONE = 0, SP_EMA_FIXED, SP_EMA_POWER };
enum { SP_LR_COSINE = 0, SP_LR_CONSTANT };

typedef struct {
  int steps;           // optimizer steps in all (a resumed run continues to this)
  int batch;           // samples per step
  float lr;            // peak learning rate
  int lr_sched;        // SP_LR_COSINE (warm-up then half-cosine to 0) or SP_LR_CONSTANT (after warm-up)
  int warmup;          // warm-up steps
  float beta1, beta2;  // AdamW
  float weight_decay;
  float clip;          // gradient-norm clip (0: off)
  int ema;             // SP_EMA_NONE, SP_EMA_FIXED (decay every ema_every steps), SP_EMA_POWER
  float ema_decay;     // fixed decay; the power schedule's maximum
  int ema_every;       // fixed: update every N steps
  float ema_power;     // power schedule: decay = 1 - (1 + step)^-power
  int seed;            // every random draw of the run derives from (seed, step)
  int threads;         // nn threads (<= the machine's cores unless allowed)
  float ckpt_minutes;  // checkpoint every N minutes (0: off)
  int ckpt_steps;      // checkpoint every N steps (0: off)
  int val_every;       // validate every N steps (0: only at the end)
  int log_every;       // log every N steps
} sp_train_cfg;

extern const sp_cf sp_train_fields[];
void sp_train_cfg_default(sp_train_cfg *c);

typedef struct {
  const char *model;    // model kind for the checkpoint ("vunet", "policy")
  const char *preset;   // preset name the model config started from
  char *config;         // the model's config JSON (sp_cf_to_json)
  char *job_config;     // the job's own config JSON (diffusion settings etc.), compared on resume
  char *data;           // data provenance text
  nn_params *ps;        // the parameters (the trainer allocates their training state)
  void *self;
  /* draw the batch of optimizer step `step` (1-based) from (seed, step), forward, backward:
   * gradients accumulate into ps->grad, which the trainer zeroed; *loss gets the batch loss */
  int (*step)(void *self, long step, float *loss, char *err);
  /* validation on held-out data with the weights in ps->data (the trainer swaps in the EMA
   * weights); writes a JSON object of metrics into json and the headline metric (higher is
   * better) into *metric, named by metric_name. May be NULL. */
  int (*validate)(void *self, long step, char *json, size_t cap, double *metric, char *err);
  const char *metric_name;
  const char *out_dir;  // set by sp_train_run: the run directory (a job may write pictures there)
} sp_trainable;

typedef struct {
  const char *out;                 // output directory
  int resume;                      // continue from out/last.safetensors
  volatile sig_atomic_t *stop;     // set by a signal handler: checkpoint and return 130
  int quiet;                       // no per-step lines on stderr
} sp_train_io;

/* 0 done, 130 interrupted (checkpointed), -1 with err */
int sp_train_run(const sp_train_cfg *c, sp_trainable *t, const sp_train_io *io, char *err);

/* 32-bit seed of a (run seed, step, stream) triple (splitmix64 of the three) */
unsigned sp_train_seed(int seed, long step, int stream);

#endif
