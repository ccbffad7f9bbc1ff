/* dp1d.c: Diffusion Policy's ConditionalUnet1D (contract in dp1d.h), from bench_nn.c's dp code
 * generalised to any number of levels, widths, horizon and batch. */
#include "models/dp1d.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

#define P(off) (ps->data + (off))
#define G(off) (ps->grad + (off))

/* ---------------------------------------------------------------------------------------------
 * config */

#define DF(f) offsetof(sp_dp1d_cfg, f)
const sp_cf sp_dp1d_fields[] = {
    {"adim", SP_CF_INT, DF(adim), 1, 64, NULL, 0, 0, "action dimension"},
    {"horizon", SP_CF_INT, DF(horizon), 1, 256, NULL, 0, 0, "actions per sample (divisible by 2^(levels-1))"},
    {"down_dims", SP_CF_INTLIST, DF(down_dims), 1, 8192, NULL, SP_DP1D_MAX_LEVELS, DF(levels), "U-Net channels per level"},
    {"kernel", SP_CF_INT, DF(kernel), 1, 15, NULL, 0, 0, "conv kernel (odd)"},
    {"groups", SP_CF_INT, DF(groups), 1, 256, NULL, 0, 0, "GroupNorm groups"},
    {"step_dim", SP_CF_INT, DF(step_dim), 4, 4096, NULL, 0, 0, "diffusion-step embedding width (even)"},
    {"gdim", SP_CF_INT, DF(gdim), 0, 65536, NULL, 0, 0, "global condition width (encoder features + end-effector xyz)"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL}};

void sp_dp1d_cfg_preset(sp_dp1d_cfg *c, sp_preset p) {
  *c = (sp_dp1d_cfg){.adim = 4, .horizon = 4, .down_dims = {256, 512, 1024}, .levels = 3, .kernel = 5,
                     .groups = 8, .step_dim = 128, .gdim = 515};
  if (p == SP_PRESET_TINY) {
    c->down_dims[0] = 8;
    c->down_dims[1] = 16;
    c->down_dims[2] = 24;
    c->groups = 4;
    c->step_dim = 16;
    c->gdim = 35;
  } else if (p == SP_PRESET_PAPER) {
    c->down_dims[0] = 512;
    c->down_dims[1] = 1024;
    c->down_dims[2] = 2048;
  }
}

int sp_dp1d_cfg_check(const sp_dp1d_cfg *c, char *err) {
  if (sp_cf_check(sp_dp1d_fields, c, "dp1d", err)) return -1;
  int f = 1 << (c->levels - 1);
  if (c->horizon % f)
    return sp_errf(err, "dp1d: horizon = %d is not divisible by 2^(levels-1) = %d (%d down_dims halve it %d times)",
                   c->horizon, f, c->levels, c->levels - 1);
  if (c->kernel % 2 == 0) return sp_errf(err, "dp1d: kernel = %d is even; 'same' padding needs an odd kernel", c->kernel);
  if (c->step_dim % 2) return sp_errf(err, "dp1d: step_dim = %d is odd; the sinusoid needs an even width", c->step_dim);
  for (int i = 0; i < c->levels; i++)
    if (c->down_dims[i] % c->groups)
      return sp_errf(err, "dp1d: down_dims[%d] = %d is not divisible by groups = %d", i, c->down_dims[i], c->groups);
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * model */

static size_t add(nn_params *ps, const char *pre, const char *name, int64_t d0, int64_t d1, int64_t d2) {
  char full[NN_NAME_MAX];
  int n = snprintf(full, sizeof full, "%s%s%s", pre, *pre ? "." : "", name);
  SP_ASSERT(n < (int)sizeof full);
  return nn_params_add4(ps, full, d0, d1, d2, 0);
}

static void crb(nn_crb1d *r, nn_params *ps, const char *pre, const char *name, int cin, int cout,
                const sp_dp1d *m) {
  char full[NN_NAME_MAX];
  snprintf(full, sizeof full, "%s%s%s", pre, *pre ? "." : "", name);
  nn_crb1d_init(r, ps, full, cin, cout, m->cdim, m->cfg.kernel, m->cfg.groups);
}

int sp_dp1d_init(sp_dp1d *m, const sp_dp1d_cfg *c, nn_params *ps, const char *prefix, char *err) {
  memset(m, 0, sizeof *m);
  if (sp_dp1d_cfg_check(c, err)) return -1;
  if (!prefix) prefix = "";
  m->cfg = *c;
  int sd = c->step_dim, L = c->levels, K = c->kernel;
  const int *d = c->down_dims;
  m->cdim = sd + c->gdim;
  m->p0 = ps->total;
  m->t0w = add(ps, prefix, "temb.0.weight", 4 * sd, sd, 0);
  m->t0b = add(ps, prefix, "temb.0.bias", 4 * sd, 0, 0);
  m->t2w = add(ps, prefix, "temb.2.weight", sd, 4 * sd, 0);
  m->t2b = add(ps, prefix, "temb.2.bias", sd, 0, 0);
  char name[64];
  int T = c->horizon;
  for (int i = 0; i < L; i++) {
    sp_dp1d_level *l = &m->down[i];
    snprintf(name, sizeof name, "down.%d.0", i);
    crb(&l->r1, ps, prefix, name, i ? d[i - 1] : c->adim, d[i], m);
    snprintf(name, sizeof name, "down.%d.1", i);
    crb(&l->r2, ps, prefix, name, d[i], d[i], m);
    l->T = T;
    l->c = d[i];
    l->sw = l->sb = NN_NONE;
    if (i < L - 1) {
      snprintf(name, sizeof name, "down.%d.2.weight", i);
      l->sw = add(ps, prefix, name, d[i], d[i], 3);
      snprintf(name, sizeof name, "down.%d.2.bias", i);
      l->sb = add(ps, prefix, name, d[i], 0, 0);
      T /= 2;
    }
  }
  crb(&m->mid[0], ps, prefix, "mid.0", d[L - 1], d[L - 1], m);
  crb(&m->mid[1], ps, prefix, "mid.1", d[L - 1], d[L - 1], m);
  /* decoder j pairs with encoder level k = L-1-j: [h (d[k]) | skip (d[k])] -> d[k-1] */
  for (int j = 0; j < L - 1; j++) {
    sp_dp1d_level *l = &m->up[j];
    int k = L - 1 - j, a = d[k - 1], b = d[k];
    snprintf(name, sizeof name, "up.%d.0", j);
    crb(&l->r1, ps, prefix, name, 2 * b, a, m);
    snprintf(name, sizeof name, "up.%d.1", j);
    crb(&l->r2, ps, prefix, name, a, a, m);
    snprintf(name, sizeof name, "up.%d.2.weight", j);
    l->sw = add(ps, prefix, name, a, a, 4);
    snprintf(name, sizeof name, "up.%d.2.bias", j);
    l->sb = add(ps, prefix, name, a, 0, 0);
    l->T = T;
    l->c = a;
    T *= 2;
  }
  SP_ASSERT(T == c->horizon);
  m->f0w = add(ps, prefix, "final.0.b.0.weight", d[0], d[0], K);
  m->f0b = add(ps, prefix, "final.0.b.0.bias", d[0], 0, 0);
  m->fgw = add(ps, prefix, "final.0.b.1.weight", d[0], 0, 0);
  m->fgb = add(ps, prefix, "final.0.b.1.bias", d[0], 0, 0);
  m->f1w = add(ps, prefix, "final.1.weight", c->adim, d[0], 1);
  m->f1b = add(ps, prefix, "final.1.bias", c->adim, 0, 0);
  m->p1 = ps->total;
  return 0;
}

static double crb_flops(const nn_crb1d *r, int B, int T) {
  double f = 2.0 * B * T * (double)r->K * r->cout * (r->cin + r->cout) + 2.0 * B * r->cdim * 2.0 * r->cout;
  if (r->cin != r->cout) f += 2.0 * B * T * (double)r->cin * r->cout;
  return f;
}

double sp_dp1d_flops(const sp_dp1d *m, int B) {
  const sp_dp1d_cfg *c = &m->cfg;
  int L = c->levels, H = c->horizon, d0 = c->down_dims[0];
  double f = 2.0 * B * (c->step_dim * 4.0 * c->step_dim * 2);
  for (int i = 0; i < L; i++) {
    const sp_dp1d_level *l = &m->down[i];
    f += crb_flops(&l->r1, B, l->T) + crb_flops(&l->r2, B, l->T);
    if (l->sw != NN_NONE) f += 2.0 * B * (l->T / 2) * (double)l->c * l->c * 3;
  }
  f += crb_flops(&m->mid[0], B, m->down[L - 1].T) + crb_flops(&m->mid[1], B, m->down[L - 1].T);
  for (int j = 0; j < L - 1; j++) {
    const sp_dp1d_level *l = &m->up[j];
    f += crb_flops(&l->r1, B, l->T) + crb_flops(&l->r2, B, l->T) + 2.0 * B * l->T * (double)l->c * l->c * 4;
  }
  f += 2.0 * B * H * (double)d0 * d0 * c->kernel + 2.0 * B * H * (double)d0 * c->adim;
  return f;
}

/* ---------------------------------------------------------------------------------------------
 * workspace: carve() runs twice, measuring (arena base NULL) then for real */

static float *F(sp_dp1d_ws *w, size_t n) { return sp_ws_floats(&w->base, n); }
static float *FG(sp_dp1d_ws *w, size_t n) { return w->base.train ? sp_ws_floats(&w->base, n) : NULL; }

static void carve(sp_dp1d_ws *w, const sp_dp1d *m) {
  const sp_dp1d_cfg *c = &m->cfg;
  size_t B = (size_t)w->base.maxB;
  int L = c->levels, H = c->horizon, sd = c->step_dim, d0 = c->down_dims[0];
  nn_arena *ar = &w->base.ar;
  w->xt = F(w, B * c->adim * H);
  w->e0 = F(w, B * sd);
  w->z1 = F(w, B * 4 * sd);
  w->mz1 = F(w, B * 4 * sd);
  w->te = F(w, B * sd);
  w->cond = F(w, B * m->cdim);
  for (int i = 0; i < L; i++) {
    const sp_dp1d_level *l = &m->down[i];
    sp_dp1d_level_ws *lw = &w->down[i];
    nn_crb1d_act_alloc(&lw->a1, &l->r1, ar, (int)B, l->T);
    nn_crb1d_act_alloc(&lw->a2, &l->r2, ar, (int)B, l->T);
    lw->sout = l->sw != NN_NONE ? F(w, B * l->c * (l->T / 2)) : NULL;
    lw->cat = lw->dcat = NULL;
    lw->d1 = FG(w, B * l->c * l->T);
    lw->d2 = FG(w, B * l->c * l->T);
    lw->dsout = l->sw != NN_NONE ? FG(w, B * l->c * (l->T / 2)) : NULL;
  }
  int Tm = m->down[L - 1].T, Cm = c->down_dims[L - 1];
  for (int i = 0; i < 2; i++) {
    nn_crb1d_act_alloc(&w->ma[i], &m->mid[i], ar, (int)B, Tm);
    w->dmid[i] = FG(w, B * Cm * Tm);
  }
  for (int j = 0; j < L - 1; j++) {
    const sp_dp1d_level *l = &m->up[j];
    sp_dp1d_level_ws *lw = &w->up[j];
    lw->cat = F(w, B * l->r1.cin * l->T);
    nn_crb1d_act_alloc(&lw->a1, &l->r1, ar, (int)B, l->T);
    nn_crb1d_act_alloc(&lw->a2, &l->r2, ar, (int)B, l->T);
    lw->sout = F(w, B * l->c * l->T * 2);
    lw->dcat = FG(w, B * l->r1.cin * l->T);
    lw->d1 = FG(w, B * l->c * l->T);
    lw->d2 = FG(w, B * l->c * l->T);
    lw->dsout = FG(w, B * l->c * l->T * 2);
  }
  w->f0 = F(w, B * d0 * H);
  w->fm = F(w, B * c->groups);
  w->fr = F(w, B * c->groups);
  w->fa = F(w, B * d0 * H);
  w->y = F(w, B * c->adim * H);
  w->dy = FG(w, B * c->adim * H);
  w->dfa = FG(w, B * d0 * H);
  w->df0 = FG(w, B * d0 * H);
  w->dcond = FG(w, B * m->cdim);
  w->dte = FG(w, B * sd);
  w->dmz1 = FG(w, B * 4 * sd);
  w->dz1 = FG(w, B * 4 * sd);
}

int sp_dp1d_ws_init(sp_dp1d_ws *w, const sp_dp1d *m, int maxB, int train, char *err) {
  const sp_dp1d_cfg *c = &m->cfg;
  memset(w, 0, sizeof *w);
  if (maxB < 1) return sp_errf(err, "dp1d workspace: batch %d, want >= 1", maxB);
  w->base.maxB = maxB;
  w->base.train = !!train;
  carve(w, m);
  int L = c->levels, H = c->horizon, d0 = c->down_dims[0];
  /* convolution paths (and so scratch sizes) depend on the batch: size for every batch up to maxB */
  for (int B = 1; B <= maxB; B++) {
    for (int i = 0; i < L; i++) {
      const sp_dp1d_level *l = &m->down[i];
      sp_ws_need_scratch(&w->base, nn_crb1d_scratch(&l->r1, B, l->T));
      sp_ws_need_scratch(&w->base, nn_crb1d_scratch(&l->r2, B, l->T));
      if (l->sw != NN_NONE) {
        nn_conv1d_dims d = nn_conv1d_make(B, l->c, l->T, l->c, 3, 2, 1);
        sp_ws_need_scratch(&w->base, nn_conv1d_scratch(&d));
      }
    }
    for (int i = 0; i < 2; i++) sp_ws_need_scratch(&w->base, nn_crb1d_scratch(&m->mid[i], B, m->down[L - 1].T));
    for (int j = 0; j < L - 1; j++) {
      const sp_dp1d_level *l = &m->up[j];
      sp_ws_need_scratch(&w->base, nn_crb1d_scratch(&l->r1, B, l->T));
      sp_ws_need_scratch(&w->base, nn_crb1d_scratch(&l->r2, B, l->T));
      nn_conv1d_dims d = nn_convt1d_make(B, l->c, l->T, l->c, 4, 2, 1);
      sp_ws_need_scratch(&w->base, nn_convt1d_scratch(&d));
    }
    nn_conv1d_dims f0 = nn_conv1d_make(B, d0, H, d0, c->kernel, 1, c->kernel / 2);
    nn_conv1d_dims f1 = nn_conv1d_make(B, d0, H, c->adim, 1, 1, 0);
    sp_ws_need_scratch(&w->base, nn_conv1d_scratch(&f0));
    sp_ws_need_scratch(&w->base, nn_conv1d_scratch(&f1));
  }
  if (train) {
    for (int i = 0; i < L; i++) {
      sp_ws_need_work(&w->base, nn_crb1d_work(&m->down[i].r1, maxB, m->down[i].T));
      sp_ws_need_work(&w->base, nn_crb1d_work(&m->down[i].r2, maxB, m->down[i].T));
    }
    for (int i = 0; i < 2; i++) sp_ws_need_work(&w->base, nn_crb1d_work(&m->mid[i], maxB, m->down[L - 1].T));
    for (int j = 0; j < L - 1; j++) {
      sp_ws_need_work(&w->base, nn_crb1d_work(&m->up[j].r1, maxB, m->up[j].T));
      sp_ws_need_work(&w->base, nn_crb1d_work(&m->up[j].r2, maxB, m->up[j].T));
    }
  }
  if (sp_ws_commit(&w->base, err)) return -1;
  w->base.ar.used = 0;
  carve(w, m);
  return 0;
}

void sp_dp1d_ws_free(sp_dp1d_ws *w) {
  sp_ws_free(&w->base);
  memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------------------------------------
 * forward and backward */

/* (B, T, C) -> (B, C, T) */
static void transpose(float *out, const float *in, int B, int T, int C) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) out[((size_t)b * C + c) * T + t] = in[((size_t)b * T + t) * C + c];
}

void sp_dp1d_forward(const sp_dp1d *m, const nn_params *ps, sp_dp1d_ws *w, float *out, const float *x,
                     const float *t, const float *g, int B) {
  /* x (B, H, adim), t (B), g (B, gdim) -> out (B, H, adim) */
  const sp_dp1d_cfg *c = &m->cfg;
  SP_ASSERT(B >= 1 && B <= w->base.maxB);
  float *scratch = w->base.scratch;
  int L = c->levels, H = c->horizon, sd = c->step_dim, d0 = c->down_dims[0], K = c->kernel;
  w->B = B;
  transpose(w->xt, x, B, H, c->adim);
  nn_timestep_embedding(w->e0, t, B, sd, 1, 1);
  nn_linear_forward(w->z1, w->e0, P(m->t0w), P(m->t0b), B, sd, 4 * sd);
  nn_act_forward(w->mz1, w->z1, (size_t)B * 4 * sd, NN_ACT_MISH);
  nn_linear_forward(w->te, w->mz1, P(m->t2w), P(m->t2b), B, 4 * sd, sd);
  nn_concat_forward(w->cond, w->te, g, B, sd, c->gdim, 1);
  const float *h = w->xt;
  for (int i = 0; i < L; i++) {
    const sp_dp1d_level *l = &m->down[i];
    sp_dp1d_level_ws *lw = &w->down[i];
    lw->a1.B = lw->a2.B = B;
    nn_crb1d_forward(&l->r1, ps, &lw->a1, h, w->cond, scratch);
    nn_crb1d_forward(&l->r2, ps, &lw->a2, lw->a1.out, w->cond, scratch);
    h = lw->a2.out;
    if (l->sw != NN_NONE) {
      nn_conv1d_dims d = nn_conv1d_make(B, l->c, l->T, l->c, 3, 2, 1);
      nn_conv1d_forward(lw->sout, h, P(l->sw), P(l->sb), &d, scratch);
      h = lw->sout;
    }
  }
  for (int i = 0; i < 2; i++) {
    w->ma[i].B = B;
    nn_crb1d_forward(&m->mid[i], ps, &w->ma[i], h, w->cond, scratch);
    h = w->ma[i].out;
  }
  int hc = c->down_dims[L - 1];
  for (int j = 0; j < L - 1; j++) {
    const sp_dp1d_level *l = &m->up[j], *sk = &m->down[L - 1 - j];
    sp_dp1d_level_ws *lw = &w->up[j];
    lw->a1.B = lw->a2.B = B;
    nn_concat_forward(lw->cat, h, w->down[L - 1 - j].a2.out, B, hc, sk->c, l->T);
    nn_crb1d_forward(&l->r1, ps, &lw->a1, lw->cat, w->cond, scratch);
    nn_crb1d_forward(&l->r2, ps, &lw->a2, lw->a1.out, w->cond, scratch);
    nn_conv1d_dims d = nn_convt1d_make(B, l->c, l->T, l->c, 4, 2, 1);
    nn_convt1d_forward(lw->sout, lw->a2.out, P(l->sw), P(l->sb), &d, scratch);
    h = lw->sout;
    hc = l->c;
  }
  nn_conv1d_dims f0 = nn_conv1d_make(B, d0, H, d0, K, 1, K / 2), f1 = nn_conv1d_make(B, d0, H, c->adim, 1, 1, 0);
  nn_conv1d_forward(w->f0, h, P(m->f0w), P(m->f0b), &f0, scratch);
  nn_groupnorm_forward(w->fa, w->fm, w->fr, w->f0, P(m->fgw), P(m->fgb), B, d0, H, c->groups, 1e-5f, NN_ACT_MISH);
  nn_conv1d_forward(w->y, w->fa, P(m->f1w), P(m->f1b), &f1, scratch);
  transpose(out, w->y, B, c->adim, H);  // (B, adim, H) -> (B, H, adim)
}

void sp_dp1d_backward(const sp_dp1d *m, nn_params *ps, sp_dp1d_ws *w, float *dg, const float *dout, int B) {
  /* dout (B, H, adim) -> ps->grad +=, dg (B, gdim) += */
  const sp_dp1d_cfg *c = &m->cfg;
  SP_ASSERT(w->base.train);  // a workspace made with train = 1
  SP_ASSERT(B == w->B);      // after a forward of the same batch
  SP_ASSERT(ps->grad);
  float *scratch = w->base.scratch, *work = w->base.work;
  int L = c->levels, H = c->horizon, sd = c->step_dim, d0 = c->down_dims[0], K = c->kernel;
  size_t Bz = (size_t)B;
  /* zero every activation gradient that accumulates */
  for (int i = 0; i < L; i++) {
    const sp_dp1d_level *l = &m->down[i];
    nn_zero(w->down[i].d1, Bz * l->c * l->T);
    nn_zero(w->down[i].d2, Bz * l->c * l->T);
    if (l->sw != NN_NONE) nn_zero(w->down[i].dsout, Bz * l->c * (l->T / 2));
  }
  for (int j = 0; j < L - 1; j++) {
    const sp_dp1d_level *l = &m->up[j];
    nn_zero(w->up[j].d1, Bz * l->c * l->T);
    nn_zero(w->up[j].d2, Bz * l->c * l->T);
    nn_zero(w->up[j].dcat, Bz * l->r1.cin * l->T);
    nn_zero(w->up[j].dsout, Bz * l->c * l->T * 2);
  }
  int Tm = m->down[L - 1].T, Cm = c->down_dims[L - 1];
  nn_zero(w->dmid[0], Bz * Cm * Tm);
  nn_zero(w->dmid[1], Bz * Cm * Tm);
  nn_zero(w->dfa, Bz * d0 * H);
  nn_zero(w->df0, Bz * d0 * H);
  nn_zero(w->dcond, Bz * m->cdim);
  nn_zero(w->dte, Bz * sd);
  nn_zero(w->dmz1, Bz * 4 * sd);
  nn_zero(w->dz1, Bz * 4 * sd);
  /* head */
  transpose(w->dy, dout, B, H, c->adim);
  nn_conv1d_dims f0 = nn_conv1d_make(B, d0, H, d0, K, 1, K / 2), f1 = nn_conv1d_make(B, d0, H, c->adim, 1, 1, 0);
  nn_conv1d_backward(w->dfa, G(m->f1w), G(m->f1b), w->dy, w->fa, P(m->f1w), &f1, scratch);
  nn_groupnorm_backward(w->df0, G(m->fgw), G(m->fgb), w->dfa, w->f0, w->fm, w->fr, P(m->fgw), P(m->fgb), B, d0, H,
                        c->groups, NN_ACT_MISH);
  /* the head's input: the last decoder stage's output, or (one level) the middle's */
  float *dh = L > 1 ? w->up[L - 2].dsout : w->dmid[1];
  const float *hin = L > 1 ? w->up[L - 2].sout : w->ma[1].out;
  nn_conv1d_backward(dh, G(m->f0w), G(m->f0b), w->df0, hin, P(m->f0w), &f0, scratch);
  /* decoder */
  for (int j = L - 2; j >= 0; j--) {
    const sp_dp1d_level *l = &m->up[j], *sk = &m->down[L - 1 - j];
    sp_dp1d_level_ws *lw = &w->up[j];
    float *dprev = j ? w->up[j - 1].dsout : w->dmid[1];
    int pc = j ? m->up[j - 1].c : Cm;
    nn_conv1d_dims d = nn_convt1d_make(B, l->c, l->T, l->c, 4, 2, 1);
    nn_convt1d_backward(lw->d2, G(l->sw), G(l->sb), lw->dsout, lw->a2.out, P(l->sw), &d, scratch);
    nn_crb1d_backward(&l->r2, ps, &lw->a2, lw->d1, w->dcond, lw->d2, lw->a1.out, w->cond, work, scratch);
    nn_crb1d_backward(&l->r1, ps, &lw->a1, lw->dcat, w->dcond, lw->d1, lw->cat, w->cond, work, scratch);
    nn_concat_backward(dprev, w->down[L - 1 - j].d2, lw->dcat, B, pc, sk->c, l->T);
  }
  /* middle: mid[0]'s input is the last level's second block output (no resampler there) */
  nn_crb1d_backward(&m->mid[1], ps, &w->ma[1], w->dmid[0], w->dcond, w->dmid[1], w->ma[0].out, w->cond, work,
                    scratch);
  nn_crb1d_backward(&m->mid[0], ps, &w->ma[0], w->down[L - 1].d2, w->dcond, w->dmid[0], w->down[L - 1].a2.out,
                    w->cond, work, scratch);
  /* encoder */
  for (int i = L - 1; i >= 0; i--) {
    const sp_dp1d_level *l = &m->down[i];
    sp_dp1d_level_ws *lw = &w->down[i];
    if (l->sw != NN_NONE) {  // the next level's first block wrote this level's dsout
      nn_conv1d_dims d = nn_conv1d_make(B, l->c, l->T, l->c, 3, 2, 1);
      nn_conv1d_backward(lw->d2, G(l->sw), G(l->sb), lw->dsout, lw->a2.out, P(l->sw), &d, scratch);
    }
    nn_crb1d_backward(&l->r2, ps, &lw->a2, lw->d1, w->dcond, lw->d2, lw->a1.out, w->cond, work, scratch);
    float *dx = i ? w->down[i - 1].dsout : NULL;
    const float *x = i ? w->down[i - 1].sout : w->xt;
    nn_crb1d_backward(&l->r1, ps, &lw->a1, dx, w->dcond, lw->d1, x, w->cond, work, scratch);
  }
  /* cond = [te | g] */
  nn_concat_backward(w->dte, dg, w->dcond, B, sd, c->gdim, 1);
  nn_linear_backward(w->dmz1, G(m->t2w), G(m->t2b), w->dte, w->mz1, P(m->t2w), B, 4 * sd, sd);
  nn_act_backward(w->dz1, w->dmz1, w->z1, Bz * 4 * sd, NN_ACT_MISH);
  nn_linear_backward(NULL, G(m->t0w), G(m->t0b), w->dz1, w->e0, P(m->t0w), B, sd, 4 * sd);
}
