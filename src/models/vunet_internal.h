/* vunet_internal.h: the entry points vunet_cond.c gives the network's walk in vunet.c. */
#ifndef SP_MODELS_VUNET_INTERNAL_H
#define SP_MODELS_VUNET_INTERNAL_H

#include "models/vunet.h"

/* the global condition: time embedding + text (+ plan / distance) -> w->emb, its SiLU w->semb;
 * plan-local also makes the plan tokens the cross-attention reads */
void vunet_embed_forward(const sp_vunet *m, sp_vunet_ws *w, const float *t, const sp_vcond *vc, int B);
/* from w->demb (and plan-local's token gradients) to the parameters' gradients */
void vunet_embed_backward(const sp_vunet *m, sp_vunet_ws *w, int B);
/* plan-local: the gated cross-attention of the middle activations x (B, C, T*S) into w->xout */
void vunet_xattn_forward(const sp_vunet *m, sp_vunet_ws *w, const float *x, int B, float *scratch);
/* dout (B, C, T*S) -> dx (+=), the parameters, the tokens' gradients (+=) */
void vunet_xattn_backward(const sp_vunet *m, sp_vunet_ws *w, float *dx, const float *dout, const float *x, int B,
                          float *scratch);

#endif
