/* plan_enc.c: the plan encoder (contract in plan_enc.h). */
#include "models/plan_enc.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "nn/nn.h"
#include "plan/plan.h"

#define P_(o) (ps->data + (o))
#define G_(o) (ps->grad + (o))

static size_t reg(nn_params *ps, const char *pre, const char *suf, int64_t d0, int64_t d1) {
  char name[NN_NAME_MAX];
  int n = snprintf(name, sizeof name, "%s%s", pre, suf);
  SP_ASSERT(n < (int)sizeof name);
  return nn_params_add4(ps, name, d0, d1, 0, 0);
}

void sp_planenc_init(sp_planenc *e, nn_params *ps, const char *prefix, int P, int D) {
  e->P = P;
  e->D = D;
  e->act = reg(ps, prefix, ".act.weight", SP_PLAN_NACTION_ID, P);
  e->dir = reg(ps, prefix, ".dir.weight", SP_PLAN_NDIR_ID, P);
  e->d0w = reg(ps, prefix, ".dist.0.weight", P, 1);
  e->d0b = reg(ps, prefix, ".dist.0.bias", P, 0);
  e->d2w = reg(ps, prefix, ".dist.2.weight", P, P);
  e->d2b = reg(ps, prefix, ".dist.2.bias", P, 0);
  e->m0w = reg(ps, prefix, ".mlp.0.weight", 4 * P, 3 * P);
  e->m0b = reg(ps, prefix, ".mlp.0.bias", 4 * P, 0);
  e->m2w = reg(ps, prefix, ".mlp.2.weight", D, 4 * P);
  e->m2b = reg(ps, prefix, ".mlp.2.bias", D, 0);
}

/* rows of each buffer are padded to 16 floats so every buffer stays 64-byte aligned */
static size_t al(size_t n) { return (n + 15) / 16 * 16; }

size_t sp_planenc_act_floats(const sp_planenc *e, int N, int train) {
  size_t P = (size_t)e->P, n = 3 * al((size_t)N) + 2 * al(N * P) + al(N * 3 * P) + 2 * al(N * 4 * P);
  if (train) n += al(N * 3 * P) + 2 * al(N * 4 * P) + 2 * al(N * P);
  return n;
}

void sp_planenc_act_carve(sp_planenc_act *a, const sp_planenc *e, float *region, int N, int train) {
  size_t P = (size_t)e->P;
  float *p = region;
#define TAKE(n) (p += al(n), p - al(n))
  memset(a, 0, sizeof *a);
  a->N = N;
  a->aid = (int32_t *)TAKE((size_t)N);
  a->did = (int32_t *)TAKE((size_t)N);
  a->dist = TAKE((size_t)N);
  a->z0 = TAKE(N * P);
  a->dm = TAKE(N * P);
  a->cat = TAKE(N * 3 * P);
  a->z1 = TAKE(N * 4 * P);
  a->g1 = TAKE(N * 4 * P);
  if (train) {
    a->dcat = TAKE(N * 3 * P);
    a->dz1 = TAKE(N * 4 * P);
    a->dg1 = TAKE(N * 4 * P);
    a->dz0 = TAKE(N * P);
    a->dg0 = TAKE(N * P);
  }
#undef TAKE
  SP_ASSERT((size_t)(p - region) == sp_planenc_act_floats(e, N, train));
}

/* din (N, In) += dout (N, Out) @ w (Out, In), by hand: OpenBLAS's small no-transpose sgemm
 * mallocs for some of these shapes (see vunet.c, embed_backward) */
static void lin_din(float *din, const float *dout, const float *w, int N, int In, int Out) {
  for (int n = 0; n < N; n++) {
    float *g = din + (size_t)n * In;
    for (int o = 0; o < Out; o++) {
      float d = dout[(size_t)n * Out + o];
      const float *wr = w + (size_t)o * In;
      for (int i = 0; i < In; i++) g[i] += d * wr[i];
    }
  }
}

void sp_planenc_forward(const sp_planenc *e, const nn_params *ps, sp_planenc_act *a, float *tok,
                        const int32_t *aid, const int32_t *did, const float *dist, int N) {
  SP_ASSERT(N <= a->N);
  const int P = e->P;
  memcpy(a->aid, aid, (size_t)N * sizeof *aid);
  memcpy(a->did, did, (size_t)N * sizeof *did);
  memcpy(a->dist, dist, (size_t)N * sizeof *dist);
  const float *ta = P_(e->act), *td = P_(e->dir), *w0 = P_(e->d0w), *b0 = P_(e->d0b);
  /* distance: Linear(1, P) -> GELU (into cat's third part for now) -> Linear(P, P) */
  for (int n = 0; n < N; n++)
    for (int k = 0; k < P; k++) a->z0[(size_t)n * P + k] = dist[n] * w0[k] + b0[k];
  float *g0 = a->g1;  // g1 is free until the MLP: hold GELU(z0) there
  nn_act_forward(g0, a->z0, (size_t)N * P, NN_ACT_GELU);
  nn_linear_forward(a->dm, g0, P_(e->d2w), P_(e->d2b), N, P, P);
  for (int n = 0; n < N; n++) {
    SP_ASSERT(aid[n] >= 0 && aid[n] < SP_PLAN_NACTION_ID && did[n] >= 0 && did[n] < SP_PLAN_NDIR_ID);
    float *c = a->cat + (size_t)n * 3 * P;
    memcpy(c, ta + (size_t)aid[n] * P, (size_t)P * sizeof(float));
    memcpy(c + P, td + (size_t)did[n] * P, (size_t)P * sizeof(float));
    memcpy(c + 2 * P, a->dm + (size_t)n * P, (size_t)P * sizeof(float));
  }
  nn_linear_forward(a->z1, a->cat, P_(e->m0w), P_(e->m0b), N, 3 * P, 4 * P);
  nn_act_forward(a->g1, a->z1, (size_t)N * 4 * P, NN_ACT_GELU);
  nn_linear_forward(tok, a->g1, P_(e->m2w), P_(e->m2b), N, 4 * P, e->D);
}

void sp_planenc_backward(const sp_planenc *e, nn_params *ps, sp_planenc_act *a, const float *dtok, int N) {
  SP_ASSERT(a->dcat && N <= a->N);
  const int P = e->P, D = e->D;
  /* Linear(4P, D), GELU, Linear(3P, 4P) */
  nn_linear_backward(NULL, G_(e->m2w), G_(e->m2b), dtok, a->g1, P_(e->m2w), N, 4 * P, D);
  nn_zero(a->dg1, (size_t)N * 4 * P);
  lin_din(a->dg1, dtok, P_(e->m2w), N, 4 * P, D);
  nn_zero(a->dz1, (size_t)N * 4 * P);
  nn_act_backward(a->dz1, a->dg1, a->z1, (size_t)N * 4 * P, NN_ACT_GELU);
  nn_linear_backward(NULL, G_(e->m0w), G_(e->m0b), a->dz1, a->cat, P_(e->m0w), N, 3 * P, 4 * P);
  nn_zero(a->dcat, (size_t)N * 3 * P);
  lin_din(a->dcat, a->dz1, P_(e->m0w), N, 3 * P, 4 * P);
  /* the embeddings; the distance MLP (its GELU input recomputed into dg1's room) */
  float *ga = G_(e->act), *gd = G_(e->dir), *gw0 = G_(e->d0w), *gb0 = G_(e->d0b);
  float *ddm = a->dg1, *g0 = a->dz1;  // both free now
  for (int n = 0; n < N; n++) {
    const float *c = a->dcat + (size_t)n * 3 * P;
    for (int k = 0; k < P; k++) {
      ga[(size_t)a->aid[n] * P + k] += c[k];
      gd[(size_t)a->did[n] * P + k] += c[P + k];
      ddm[(size_t)n * P + k] = c[2 * P + k];
    }
  }
  nn_act_forward(g0, a->z0, (size_t)N * P, NN_ACT_GELU);
  nn_linear_backward(NULL, G_(e->d2w), G_(e->d2b), ddm, g0, P_(e->d2w), N, P, P);
  nn_zero(a->dg0, (size_t)N * P);
  lin_din(a->dg0, ddm, P_(e->d2w), N, P, P);
  nn_zero(a->dz0, (size_t)N * P);
  nn_act_backward(a->dz0, a->dg0, a->z0, (size_t)N * P, NN_ACT_GELU);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < P; k++) {
      float g = a->dz0[(size_t)n * P + k];
      gw0[k] += g * a->dist[n];
      gb0[k] += g;
    }
}

double sp_planenc_flops(const sp_planenc *e, int N) {
  double P = e->P;
  return 2.0 * N * (P + P * P + 3 * P * 4 * P + 4 * P * e->D);
}
