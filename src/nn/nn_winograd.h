/* nn_winograd.h (internal): 3x3 stride-1 pad-1 conv2d by Winograd F(4x4, 3x3), used by
 * nn_conv2d_* when it applies (AVX2 + FMA present and not switched off), and the 1D
 * counterpart used by nn_conv1d_*. */
#ifndef SP_NN_WINOGRAD_H
#define SP_NN_WINOGRAD_H

#include <stddef.h>

#include "nn/nn.h"

/* 1 when d is a 3x3, stride-1, pad-1 convolution, the CPU has AVX2 + FMA, and the mode
 * (nn_conv2d_set_winograd) says so for this shape */
int nn_wino_applies(const nn_conv2d_dims *d);
/* the shape and CPU allow Winograd under some mode (scratch sizing takes every such path) */
int nn_wino_possible(const nn_conv2d_dims *d);
/* floats of scratch for forward and backward */
size_t nn_wino_scratch(const nn_conv2d_dims *d);
/* out (=, or += with acc) conv2d(in) + b */
void nn_wino_forward(float *out, const float *in, const float *w, const float *b,
                     const nn_conv2d_dims *d, float *scratch, int acc);
/* din += and dw += (either may be NULL); db is the caller's */
void nn_wino_backward(float *din, float *dw, const float *dout, const float *in, const float *w,
                      const nn_conv2d_dims *d, float *scratch);

/* stride-1 "same" conv1d with an odd kernel of 3 or 5 by Winograd F(4, K) (winograd1d.c):
 * eligible = the shape and mode allow it; applies = the mode's rule picks it for every call */
int nn_wino1d_eligible(const nn_conv1d_dims *d);
int nn_wino1d_possible(const nn_conv1d_dims *d);  // eligible under some mode
int nn_wino1d_applies(const nn_conv1d_dims *d);
/* forward of an eligible shape whose weights are frozen (the transform comes from the weight
 * cache, scratch needs only nn_wino1d_frozen_scratch floats): 0 when done, -1 (nothing done)
 * when wt is not frozen */
size_t nn_wino1d_frozen_scratch(const nn_conv1d_dims *d);
int nn_wino1d_forward_frozen(float *out, const float *in, const float *wt, const float *b,
                             const nn_conv1d_dims *d, float *scratch, int acc);
size_t nn_wino1d_scratch(const nn_conv1d_dims *d);
void nn_wino1d_forward(float *out, const float *in, const float *w, const float *b,
                       const nn_conv1d_dims *d, float *scratch, int acc);
void nn_wino1d_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, const nn_conv1d_dims *d, float *scratch);

/* derived weights of frozen ranges (wcache.c): the buffer of usize floats that build made from
 * the nw floats at w for key (tag, d0, d1), built on first use; NULL when w is not inside a
 * frozen range (or memory ran out): the caller then derives into its scratch as usual */
typedef void (*nn_wcache_build)(float *u, const float *w, int d0, int d1);
const float *nn_wcache_get(const float *w, size_t nw, int tag, int d0, int d1, size_t usize,
                           nn_wcache_build build);

#endif
