/* nn_train.h: the parameter table (one buffer each for weights, grads, AdamW moments, EMA),
 * AdamW, gradient clipping, learning-rate and EMA schedules, safetensors files and checkpoints.
 *
 * Parameters are registered by name (the PyTorch state-dict key of the twin model) and shape;
 * each gets an offset into the flat buffers, so zero-grad is one memset, the optimizer is one
 * loop and a checkpoint is the table written out. */
#ifndef SP_NN_TRAIN_H
#define SP_NN_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#define NN_NAME_MAX 128
#define NN_MAX_DIMS 6

typedef struct {
  char name[NN_NAME_MAX];  // PyTorch state-dict key
  int ndim;
  int64_t shape[NN_MAX_DIMS];
  size_t offset;  // into the flat buffers, in floats (64-byte aligned)
  size_t numel;
} nn_param;

typedef struct {
  nn_param *p;  // (n) table
  int n, cap;
  size_t total;  // floats in each flat buffer
  float *data;   // (total) weights
  float *grad;   // (total) gradients
  float *m, *v;  // (total) AdamW first and second moments
  float *ema;    // (total) EMA weights, or NULL
} nn_params;

void nn_params_init(nn_params *ps);
/* register a tensor; returns its offset (floats). Call before nn_params_alloc. */
size_t nn_params_add(nn_params *ps, const char *name, int ndim, const int64_t *shape);
size_t nn_params_add4(nn_params *ps, const char *name, int64_t d0, int64_t d1, int64_t d2,
                      int64_t d3);  // trailing zeros end the shape
/* allocate the (zeroed) weights only: what inference needs. 0 or -1 with err. */
int nn_params_alloc(nn_params *ps, char *err);
/* the weights (if not yet there) plus the training state: grad, m, v and, if with_ema, ema
 * (zeroed). Only trainers call this. 0 or -1 with err (everything freed). */
int nn_params_alloc_train(nn_params *ps, int with_ema, char *err);
void nn_params_free(nn_params *ps);
int nn_params_find(const nn_params *ps, const char *name);  // index or -1
void nn_params_zero_grad(nn_params *ps);

/* AdamW as torch.optim.AdamW (decoupled weight decay, bias correction); step counts from 1 */
typedef struct {
  float beta1, beta2, eps, weight_decay;
} nn_adamw_cfg;
nn_adamw_cfg nn_adamw_defaults(void);  // 0.9, 0.999, 1e-8, 1e-2 (PyTorch's)
void nn_adamw_step(nn_params *ps, const nn_adamw_cfg *c, float lr, long step);
/* total L2 norm of all grads; if above max_norm (> 0), scale grads by max_norm/(norm+1e-6) as
 * torch.nn.utils.clip_grad_norm_. Returns the norm before clipping. */
float nn_grad_clip(nn_params *ps, float max_norm);
/* linear warm-up then half-cosine decay to 0 (diffusers get_cosine_schedule_with_warmup) */
float nn_lr_cosine(float base_lr, long step, long warmup, long total);

/* EMA: ema = decay ema + (1 - decay) data. nn_ema_init copies data into ema. */
void nn_ema_init(nn_params *ps);
void nn_ema_update(nn_params *ps, float decay);
/* fixed decay every `every` steps (ema_pytorch style, as AVDC/SP: 0.999 every 10): returns the
 * decay to apply at optimizer step `step` (1-based) or -1 when no update is due */
float nn_ema_fixed_decay(long step, int every, float decay);
/* Diffusion Policy's EMAModel.get_decay: s = max(0, step - update_after - 1),
 * decay = 1 - (1 + s/inv_gamma)^-power clamped to [min, max]; 0 when s <= 0 */
float nn_ema_power_decay(long step, long update_after, float inv_gamma, float power,
                         float min_decay, float max_decay);

/* ---------------------------------------------------------------------------------------------
 * safetensors: 8-byte little-endian header length N, N bytes of JSON
 * {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}, data. */

typedef struct {
  char name[NN_NAME_MAX];
  char dtype[8];  // "F32", "I32", "I64", ...
  int ndim;
  int64_t shape[NN_MAX_DIMS];
  size_t begin, end;  // byte offsets into the data section
} nn_st_tensor;

typedef struct {
  char *buf;  // whole file
  size_t len;
  size_t data_off;  // 8 + N
  nn_st_tensor *t;
  int n;
  void *meta;  // cJSON object of __metadata__ (or NULL)
  void *json;  // cJSON root
} nn_safetensors;

/* read and validate a whole file; -1 with a message naming the file and the defect */
int nn_st_open(nn_safetensors *st, const char *path, char *err);
void nn_st_close(nn_safetensors *st);
const nn_st_tensor *nn_st_find(const nn_safetensors *st, const char *name);
/* pointer to a tensor's data when its dtype matches, else NULL; numel out if non-NULL */
const float *nn_st_f32(const nn_safetensors *st, const char *name, size_t *numel);
const int32_t *nn_st_i32(const nn_safetensors *st, const char *name, size_t *numel);
const uint8_t *nn_st_u8(const nn_safetensors *st, const char *name, size_t *numel);
const char *nn_st_meta(const nn_safetensors *st, const char *key);  // NULL when absent

/* a tensor to write: name, dtype ("F32", "I32", "U8", ...), shape, and its data (C order) */
typedef struct {
  char name[NN_NAME_MAX + 32];
  const char *dtype;
  int ndim;
  int64_t shape[NN_MAX_DIMS];
  const void *data;
} nn_st_out;
/* write n tensors, in order, and the string metadata meta (key, value, ..., NULL; may be NULL) to
 * PATH.tmp, fsync and rename: a crash never leaves a broken PATH. 0 or -1 with err. */
int nn_st_save(const char *path, const nn_st_out *t, int n, const char *const *meta, char *err);

/* checkpoint = safetensors of the parameters under their names, plus (with_optim) the AdamW
 * moments as "optim.exp_avg.<name>" / "optim.exp_avg_sq.<name>" and (if ps->ema) "ema.<name>";
 * metadata: format "sp-nn-checkpoint", version "1", step, config (the caller's JSON text).
 * Written to PATH.tmp, fsynced and renamed, so a crash never leaves a broken PATH. */
#define NN_CKPT_FORMAT "sp-nn-checkpoint"
#define NN_CKPT_VERSION "1"
int nn_checkpoint_save(const char *path, const nn_params *ps, const char *config_json, long step,
                       int with_optim, char *err);
/* IEEE binary16 <-> float (round to nearest even; out of range: infinity) */
uint16_t nn_half_from_float(float x);
float nn_float_from_half(uint16_t h);
/* a checkpoint's parameters stored as F16 (half the size; the training state dropped): IN to
 * OUT atomically, the metadata kept. nn_checkpoint_load reads F16 parameters back to float.
 * -1 with err on a foreign file or a value beyond the half range (65504). */
int nn_checkpoint_to_f16(const char *in, const char *out, char *err);
/* load every registered parameter (and moments/EMA when present and allocated); shapes must
 * match. step (may be NULL) receives the saved step; config (may be NULL) receives a malloc'd
 * copy of the config JSON. -1 with err on a missing, foreign, corrupt or mismatched file. */
int nn_checkpoint_load(const char *path, nn_params *ps, long *step, char **config, char *err);

#endif
