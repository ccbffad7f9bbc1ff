/* model.h: what every network of src/models shares.
 *
 * - Presets: tiny (tests), cpu (this 2-core machine), paper (the published sizes).
 * - Config structs are described by a table of fields (core/config.h, redis config.c style): one
 *   row per field drives the bounds check, the printer, the JSON echoed into checkpoints and logs,
 *   the JSON read back from a checkpoint, and the `sp train` options. A model's header exports
 *   its table; nothing else spells a field's name.
 * - Weights: an nn_params table whose data buffer is constant at inference. nn_params_alloc
 *   allocates data only; the trainer adds gradients, AdamW moments and EMA with
 *   nn_params_alloc_train.
 * - Workspace (sp_ws): activations carved from an arena, plus one convolution scratch and one
 *   backward work buffer, sized at init for the largest batch a caller asks for; owned by the
 *   caller, one per thread; forward and backward never allocate.
 * - Checkpoints: safetensors (nn_checkpoint_save) whose metadata holds the model kind, preset,
 *   config JSON, step and data provenance. sp_model_load refuses a checkpoint of another model
 *   kind or with a config that differs from the caller's, naming the first differing field. */
#ifndef SP_MODELS_MODEL_H
#define SP_MODELS_MODEL_H

#include <stddef.h>
#include <stdio.h>

#include "core/config.h"
#include "nn/nn.h"
#include "nn/nn_train.h"

/* ---------------------------------------------------------------------------------------------
 * presets */
typedef enum { SP_PRESET_TINY = 0, SP_PRESET_CPU, SP_PRESET_PAPER, SP_PRESET_N } sp_preset;
const char *sp_preset_name(sp_preset p);
/* "tiny" | "cpu" | "paper" -> 0, else -1 with err listing the names */
int sp_preset_parse(const char *s, sp_preset *p, char *err);

/* ---------------------------------------------------------------------------------------------
 * workspace base: an arena of activations plus shared scratch and work buffers */
typedef struct {
  nn_arena ar;
  float *scratch;   // (scratch_n) convolution scratch, shared by every layer
  float *work;      // (work_n) transient gradients of the blocks' backward
  size_t scratch_n, work_n;
  int maxB;         // the largest batch the workspace was sized for
  int train;        // 1: holds the activations and gradients backward needs
} sp_ws;

/* while measuring (ar.base == NULL) the model records its needs with these, then calls
 * sp_ws_commit to allocate the arena, scratch and work; 0 or -1 with err (out of memory) */
void sp_ws_need_scratch(sp_ws *w, size_t n);
void sp_ws_need_work(sp_ws *w, size_t n);
int sp_ws_commit(sp_ws *w, char *err);
void sp_ws_free(sp_ws *w);
float *sp_ws_floats(sp_ws *w, size_t n);  // from the arena (NULL while measuring)

/* ---------------------------------------------------------------------------------------------
 * checkpoints */
typedef struct {
  const char *model;   // model kind, e.g. "vunet", "resnet", "dp1d", "policy"
  const char *preset;  // preset the config started from ("" when none)
  const char *config;  // the config JSON (sp_cf_to_json)
  const char *data;    // data provenance: dataset path and its collection config ("" when none)
  long step;           // optimizer steps taken
} sp_ckpt_meta;

/* write PATH atomically: parameters under their PyTorch names; with_optim adds the AdamW moments
 * and EMA (training state for --resume); extra (may be NULL) is one more JSON text stored under
 * the metadata key "trainer" (the trainer's own state: RNG seeds, schedule) */
int sp_model_save(const char *path, const nn_params *ps, const sp_ckpt_meta *meta, int with_optim,
                  const char *extra, char *err);
/* read the metadata only: model kind, preset, config JSON, data, step, trainer JSON, each a
 * malloc'd string (free with sp_ckpt_info_free). -1 with err on a missing or foreign file. */
typedef struct {
  char *model, *preset, *config, *data, *trainer;
  long step;
} sp_ckpt_info;
int sp_ckpt_info_read(const char *path, sp_ckpt_info *info, char *err);
void sp_ckpt_info_free(sp_ckpt_info *info);
/* load parameters (and training state when allocated and present) into ps; the file's model
 * kind must equal `model`. The config comparison is the caller's (sp_cf_diff on the config read
 * with sp_ckpt_info_read). */
int sp_model_load(const char *path, nn_params *ps, const char *model, long *step, char *err);

#endif
