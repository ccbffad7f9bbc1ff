/* optim.c: parameter table, AdamW, gradient clipping, learning-rate and EMA schedules. */
#pragma GCC optimize("O3", "no-math-errno", "no-trapping-math")  // vectorise the loops
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"
#include "nn/nn_train.h"

void nn_params_init(nn_params *ps) { memset(ps, 0, sizeof(*ps)); }

size_t nn_params_add(nn_params *ps, const char *name, int ndim, const int64_t *shape) {
  SP_ASSERT(!ps->data);  // register everything before allocating
  SP_ASSERT(ndim >= 0 && ndim <= NN_MAX_DIMS && strlen(name) < NN_NAME_MAX);
  SP_ASSERT(nn_params_find(ps, name) < 0);
  if (ps->n == ps->cap) {
    ps->cap = ps->cap ? ps->cap * 2 : 64;
    ps->p = realloc(ps->p, sizeof(nn_param) * ps->cap);
    SP_ASSERT(ps->p);
  }
  nn_param *p = &ps->p[ps->n++];
  memset(p, 0, sizeof(*p));
  strcpy(p->name, name);
  p->ndim = ndim;
  p->numel = 1;
  for (int i = 0; i < ndim; i++) {
    p->shape[i] = shape[i];
    p->numel *= (size_t)shape[i];
  }
  p->offset = ps->total;
  ps->total += (p->numel + 15) / 16 * 16;  // 64-byte aligned tensors
  return p->offset;
}

size_t nn_params_add4(nn_params *ps, const char *name, int64_t d0, int64_t d1, int64_t d2,
                      int64_t d3) {
  int64_t s[4] = {d0, d1, d2, d3};
  int n = 0;
  while (n < 4 && s[n] > 0) n++;
  return nn_params_add(ps, name, n, s);
}

static float *alloc_floats(size_t n) {
  float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
  if (p) memset(p, 0, n * sizeof(float));
  return p;
}

int nn_params_alloc(nn_params *ps, char *err) {
  size_t n = ps->total ? ps->total : 16;
  if (!ps->data) ps->data = alloc_floats(n);
  if (!ps->data) return sp_errf(err, "out of memory allocating %zu parameters", n);
  return 0;
}

int nn_params_alloc_train(nn_params *ps, int with_ema, char *err) {
  size_t n = ps->total ? ps->total : 16;
  if (nn_params_alloc(ps, err)) return -1;
  if (!ps->grad) ps->grad = alloc_floats(n);
  if (!ps->m) ps->m = alloc_floats(n);
  if (!ps->v) ps->v = alloc_floats(n);
  if (with_ema && !ps->ema) ps->ema = alloc_floats(n);
  if (!ps->grad || !ps->m || !ps->v || (with_ema && !ps->ema)) {
    nn_params_free(ps);
    return sp_errf(err, "out of memory allocating training state for %zu parameters (x%d buffers)", n,
                   4 + !!with_ema);
  }
  return 0;
}

void nn_params_free(nn_params *ps) {
  if (ps->data) nn_weights_thaw(ps->data, ps->total);
  if (ps->ema) nn_weights_thaw(ps->ema, ps->total);
  free(ps->data);
  free(ps->grad);
  free(ps->m);
  free(ps->v);
  free(ps->ema);
  free(ps->p);
  memset(ps, 0, sizeof(*ps));
}

int nn_params_find(const nn_params *ps, const char *name) {
  for (int i = 0; i < ps->n; i++)
    if (!strcmp(ps->p[i].name, name)) return i;
  return -1;
}

void nn_params_zero_grad(nn_params *ps) {
  SP_ASSERT(ps->grad);  // training state comes from nn_params_alloc_train
  nn_zero(ps->grad, ps->total);
}

nn_adamw_cfg nn_adamw_defaults(void) { return (nn_adamw_cfg){0.9f, 0.999f, 1e-8f, 1e-2f}; }

void nn_adamw_step(nn_params *ps, const nn_adamw_cfg *c, float lr, long step) {
  SP_ASSERT(step >= 1);
  SP_ASSERT(ps->grad && ps->m && ps->v);  // nn_params_alloc_train
  /* torch: p *= 1 - lr wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
   * p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps) */
  const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
  const float bc1 = 1.f - powf(b1, (float)step), bc2s = sqrtf(1.f - powf(b2, (float)step));
  const float step_size = lr / bc1, decay = 1.f - lr * c->weight_decay;
  nn_weights_thaw(ps->data, ps->total);
  float *restrict p = ps->data, *restrict g = ps->grad, *restrict m = ps->m, *restrict v = ps->v;
  const size_t n = ps->total;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) / bc2s + eps);
  }
}

float nn_grad_clip(nn_params *ps, float max_norm) {
  double s = 0.0;
  SP_ASSERT(ps->grad);
  const float *g = ps->grad;
  const size_t n = ps->total;
#pragma omp parallel for reduction(+ : s) schedule(static) num_threads(nn_threads()) if (n > 65536)
  for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
  float norm = (float)sqrt(s);
  if (max_norm > 0.f) {
    float coef = max_norm / (norm + 1e-6f);
    if (coef < 1.f)
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n > 65536)
      for (size_t i = 0; i < n; i++) ps->grad[i] *= coef;
  }
  return norm;
}

float nn_lr_cosine(float base_lr, long step, long warmup, long total) {
  if (step < warmup) return base_lr * (float)step / (float)(warmup > 1 ? warmup : 1);
  double prog = (double)(step - warmup) / (double)(total - warmup > 1 ? total - warmup : 1);
  double f = 0.5 * (1.0 + cos(M_PI * prog));
  return (float)(base_lr * (f > 0 ? f : 0));
}

void nn_ema_init(nn_params *ps) {
  SP_ASSERT(ps->ema);
  nn_weights_thaw(ps->ema, ps->total);
  memcpy(ps->ema, ps->data, sizeof(float) * ps->total);
}

void nn_ema_update(nn_params *ps, float decay) {
  SP_ASSERT(ps->ema);
  const size_t n = ps->total;
  nn_weights_thaw(ps->ema, n);
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n > 65536)
  for (size_t i = 0; i < n; i++) ps->ema[i] = decay * ps->ema[i] + (1.f - decay) * ps->data[i];
}

float nn_ema_fixed_decay(long step, int every, float decay) {
  return (every > 0 && step % every == 0) ? decay : -1.f;
}

float nn_ema_power_decay(long step, long update_after, float inv_gamma, float power,
                         float min_decay, float max_decay) {
  long s = step - update_after - 1;
  if (s < 0) s = 0;
  if (s <= 0) return 0.f;
  double v = 1.0 - pow(1.0 + s / (double)inv_gamma, -(double)power);
  if (v > max_decay) v = max_decay;
  if (v < min_decay) v = min_decay;
  return (float)v;
}
