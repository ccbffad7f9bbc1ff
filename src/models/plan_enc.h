/* plan_enc.h: the plan encoder of SP's released video model (reference-models.md 1.3): one token
 * per plan step.
 *
 *   action id (0..9)    -> Embedding(10, P)
 *   direction id (0..26) -> Embedding(27, P)
 *   distance (metres)   -> Linear(1, P) -> GELU -> Linear(P, P)
 *   concat (3P) -> Linear(3P, 4P) -> GELU -> Linear(4P, D) = the step's token (D: text width)
 *
 * SP: P = 64, 4P = 256, D = 512. Rows are plan steps of any number of samples (N = B *
 * SP_PLAN_MAX); ids and distances come from sp_plan_encode (plan/plan.h). Parameter names are
 * "<prefix>.act.weight", ".dir.weight", ".dist.0.*", ".dist.2.*", ".mlp.0.*", ".mlp.2.*", the
 * state-dict keys of tools/twin_vunet.py. Forward/backward pairs in the llm.c manner: the caller
 * owns every buffer (sp_planenc_act), backward accumulates into ps->grad. */
#ifndef SP_MODELS_PLAN_ENC_H
#define SP_MODELS_PLAN_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nn_train.h"

typedef struct {
  int P, D;
  size_t act, dir;        // (10, P), (27, P)
  size_t d0w, d0b;        // (P, 1), (P)
  size_t d2w, d2b;        // (P, P), (P)
  size_t m0w, m0b;        // (4P, 3P), (4P)
  size_t m2w, m2b;        // (D, 4P), (D)
} sp_planenc;

/* activations of N rows; the d* buffers (gradients) only for training (else NULL) */
typedef struct {
  int N;
  int32_t *aid, *did;     // (N) copies of the ids
  float *dist;            // (N)
  float *z0, *dm;         // (N, P) distance Linear(1, P) pre-GELU, distance MLP output
  float *cat;             // (N, 3P)
  float *z1, *g1;         // (N, 4P) pre-GELU and GELU
  float *dcat, *dz1, *dg1, *dz0, *dg0;  // gradients (train)
} sp_planenc_act;

void sp_planenc_init(sp_planenc *e, nn_params *ps, const char *prefix, int P, int D);
/* floats of the activations (train: with the gradient buffers) for N rows; carve them with
 * sp_planenc_act_carve from one region of that size */
size_t sp_planenc_act_floats(const sp_planenc *e, int N, int train);
void sp_planenc_act_carve(sp_planenc_act *a, const sp_planenc *e, float *region, int N, int train);
/* aid (N) in 0..9, did (N) in 0..26, dist (N) -> tok (N, D) */
void sp_planenc_forward(const sp_planenc *e, const nn_params *ps, sp_planenc_act *a, float *tok,
                        const int32_t *aid, const int32_t *did, const float *dist, int N);
/* dtok (N, D) -> parameter gradients (+=) */
void sp_planenc_backward(const sp_planenc *e, nn_params *ps, sp_planenc_act *a, const float *dtok, int N);
double sp_planenc_flops(const sp_planenc *e, int N);

#endif
