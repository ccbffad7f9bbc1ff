/* blocks.c: ResBlock, attention block, ConditionalResidualBlock1D and BasicBlock from nn ops. */
#pragma GCC optimize("O3", "no-trapping-math")  // vectorise the elementwise loops
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "nn/nn_blocks.h"

static size_t padd(nn_params *ps, const char *pre, const char *suf, int64_t d0, int64_t d1,
                   int64_t d2, int64_t d3) {
  char name[NN_NAME_MAX];
  int n = snprintf(name, sizeof name, "%s%s%s", pre, *pre ? "." : "", suf);
  SP_ASSERT(n < (int)sizeof name);
  return nn_params_add4(ps, name, d0, d1, d2, d3);
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

static void par_copy(float *dst, const float *src, size_t n) {
  int nt = n > 65536 ? nn_threads() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int t = omp_get_thread_num(), k = omp_get_num_threads();
    size_t lo = n * t / k, hi = n * (t + 1) / k;
    memcpy(dst + lo, src + lo, (hi - lo) * sizeof(float));
  }
}
#define P(off) (ps->data + (off))
#define G(off) (ps->grad + (off))
#define PN(off) ((off) == NN_NONE ? NULL : ps->data + (off))
#define GN_(off) ((off) == NN_NONE ? NULL : ps->grad + (off))

/* ---------------------------------------------------------------------------------------------
 * ResBlock */

void nn_resblock_init(nn_resblock *r, nn_params *ps, const char *pre, int cin, int cout, int tdim,
                      int groups) {
  r->cin = cin;
  r->cout = cout;
  r->tdim = tdim;
  r->groups = groups;
  r->n1w = padd(ps, pre, "n1.weight", cin, 0, 0, 0);
  r->n1b = padd(ps, pre, "n1.bias", cin, 0, 0, 0);
  r->c1w = padd(ps, pre, "c1.weight", cout, cin, 3, 3);
  r->c1b = padd(ps, pre, "c1.bias", cout, 0, 0, 0);
  r->tw = padd(ps, pre, "t.weight", cout, tdim, 0, 0);
  r->tb = padd(ps, pre, "t.bias", cout, 0, 0, 0);
  r->n2w = padd(ps, pre, "n2.weight", cout, 0, 0, 0);
  r->n2b = padd(ps, pre, "n2.bias", cout, 0, 0, 0);
  r->c2w = padd(ps, pre, "c2.weight", cout, cout, 3, 3);
  r->c2b = padd(ps, pre, "c2.bias", cout, 0, 0, 0);
  r->skw = r->skb = NN_NONE;
  if (cin != cout) {
    r->skw = padd(ps, pre, "skip.weight", cout, cin, 1, 1);
    r->skb = padd(ps, pre, "skip.bias", cout, 0, 0, 0);
  }
}

void nn_resblock_act_alloc(nn_resblock_act *a, const nn_resblock *r, nn_arena *ar, int B, int H,
                           int W) {
  size_t S = (size_t)H * W;
  a->B = B;
  a->H = H;
  a->W = W;
  a->m1 = nn_arena_floats(ar, (size_t)B * r->groups);
  a->r1 = nn_arena_floats(ar, (size_t)B * r->groups);
  a->a1 = nn_arena_floats(ar, B * r->cin * S);
  a->e = nn_arena_floats(ar, (size_t)B * r->cout);
  a->h1 = nn_arena_floats(ar, B * r->cout * S);
  a->m2 = nn_arena_floats(ar, (size_t)B * r->groups);
  a->r2 = nn_arena_floats(ar, (size_t)B * r->groups);
  a->a2 = nn_arena_floats(ar, B * r->cout * S);
  a->out = nn_arena_floats(ar, B * r->cout * S);
}

size_t nn_resblock_scratch(const nn_resblock *r, int B, int H, int W) {
  nn_conv2d_dims d1 = nn_conv2d_make(B, r->cin, H, W, r->cout, 3, 1, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B, r->cout, H, W, r->cout, 3, 1, 1);
  nn_conv2d_dims ds = nn_conv2d_make(B, r->cin, H, W, r->cout, 1, 1, 0);
  return zmax(zmax(nn_conv2d_scratch(&d1), nn_conv2d_scratch(&d2)), nn_conv2d_scratch(&ds));
}

size_t nn_resblock_work(const nn_resblock *r, int B, int H, int W) {
  size_t S = (size_t)H * W;
  return B * S * (r->cin + 2 * (size_t)r->cout) + (size_t)B * r->cout + 64;
}

void nn_resblock_forward(const nn_resblock *r, const nn_params *ps, nn_resblock_act *a,
                         const float *x, const float *temb, float *scratch) {
  int B = a->B, H = a->H, W = a->W, S = H * W;
  nn_conv2d_dims d1 = nn_conv2d_make(B, r->cin, H, W, r->cout, 3, 1, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B, r->cout, H, W, r->cout, 3, 1, 1);
  nn_groupnorm_forward(a->a1, a->m1, a->r1, x, P(r->n1w), P(r->n1b), B, r->cin, S, r->groups, 1e-5f,
                       NN_ACT_SILU);
  nn_conv2d_forward(a->h1, a->a1, P(r->c1w), P(r->c1b), &d1, scratch);
  nn_linear_forward(a->e, temb, P(r->tw), P(r->tb), B, r->tdim, r->cout);
  nn_add_bc_forward(a->h1, a->e, B, r->cout, S);
  nn_groupnorm_forward(a->a2, a->m2, a->r2, a->h1, P(r->n2w), P(r->n2b), B, r->cout, S, r->groups,
                       1e-5f, NN_ACT_SILU);
  if (r->skw != NN_NONE) {
    nn_conv2d_dims ds = nn_conv2d_make(B, r->cin, H, W, r->cout, 1, 1, 0);
    nn_conv2d_forward(a->out, x, P(r->skw), P(r->skb), &ds, scratch);
    nn_conv2d_forward_acc(a->out, a->a2, P(r->c2w), P(r->c2b), &d2, scratch);
  } else {
    par_copy(a->out, x, (size_t)B * r->cout * S);
    nn_conv2d_forward_acc(a->out, a->a2, P(r->c2w), P(r->c2b), &d2, scratch);
  }
}

void nn_resblock_backward(const nn_resblock *r, nn_params *ps, const nn_resblock_act *a,
                          float *dx, float *dtemb, const float *dout, const float *x,
                          const float *temb, float *work, float *scratch) {
  int B = a->B, H = a->H, W = a->W, S = H * W;
  size_t nin = (size_t)B * r->cin * S, nout = (size_t)B * r->cout * S;
  float *da1 = work, *dh1 = da1 + nin, *da2 = dh1 + nout, *de = da2 + nout;
  nn_zero(work, (nin + 2 * nout + (size_t)B * r->cout));
  nn_conv2d_dims d1 = nn_conv2d_make(B, r->cin, H, W, r->cout, 3, 1, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B, r->cout, H, W, r->cout, 3, 1, 1);
  if (r->skw != NN_NONE) {
    nn_conv2d_dims ds = nn_conv2d_make(B, r->cin, H, W, r->cout, 1, 1, 0);
    nn_conv2d_backward(dx, G(r->skw), G(r->skb), dout, x, P(r->skw), &ds, scratch);
  } else if (dx) {
    nn_add_backward(dx, NULL, dout, nout);
  }
  nn_conv2d_backward(da2, G(r->c2w), G(r->c2b), dout, a->a2, P(r->c2w), &d2, scratch);
  nn_groupnorm_backward(dh1, G(r->n2w), G(r->n2b), da2, a->h1, a->m2, a->r2, P(r->n2w), P(r->n2b), B,
                        r->cout, S, r->groups, NN_ACT_SILU);
  nn_add_bc_backward(de, dh1, B, r->cout, S);
  nn_linear_backward(dtemb, G(r->tw), G(r->tb), de, temb, P(r->tw), B, r->tdim, r->cout);
  nn_conv2d_backward(da1, G(r->c1w), G(r->c1b), dh1, a->a1, P(r->c1w), &d1, scratch);
  if (dx)
    nn_groupnorm_backward(dx, G(r->n1w), G(r->n1b), da1, x, a->m1, a->r1, P(r->n1w), P(r->n1b), B,
                          r->cin, S, r->groups, NN_ACT_SILU);
  else
    nn_groupnorm_backward(NULL, G(r->n1w), G(r->n1b), da1, x, a->m1, a->r1, P(r->n1w), P(r->n1b), B,
                          r->cin, S, r->groups, NN_ACT_SILU);
}

/* ---------------------------------------------------------------------------------------------
 * attention block */

void nn_attnblock_init(nn_attnblock *b, nn_params *ps, const char *pre, int C, int heads,
                       int groups) {
  b->C = C;
  b->heads = heads;
  b->groups = groups;
  b->nw = padd(ps, pre, "n.weight", C, 0, 0, 0);
  b->nb = padd(ps, pre, "n.bias", C, 0, 0, 0);
  b->qkvw = padd(ps, pre, "qkv.weight", 3 * C, C, 1, 1);
  b->qkvb = padd(ps, pre, "qkv.bias", 3 * C, 0, 0, 0);
  b->ow = padd(ps, pre, "o.weight", C, C, 1, 1);
  b->ob = padd(ps, pre, "o.bias", C, 0, 0, 0);
}

void nn_attnblock_act_alloc(nn_attnblock_act *a, const nn_attnblock *b, nn_arena *ar, int B, int H,
                            int W) {
  size_t S = (size_t)H * W;
  a->B = B;
  a->H = H;
  a->W = W;
  a->m = nn_arena_floats(ar, (size_t)B * b->groups);
  a->r = nn_arena_floats(ar, (size_t)B * b->groups);
  a->hn = nn_arena_floats(ar, B * b->C * S);
  a->qkv = nn_arena_floats(ar, 3 * B * b->C * S);
  a->prob = nn_arena_floats(ar, (size_t)B * b->heads * S * S);
  a->y = nn_arena_floats(ar, B * b->C * S);
  a->out = nn_arena_floats(ar, B * b->C * S);
}

static nn_attn_dims attn_dims(const nn_attnblock *b, int B, int S) {
  int hd = b->C / b->heads;
  size_t bs = (size_t)3 * b->C * S;
  return (nn_attn_dims){B, b->heads, hd, S, S, bs, bs, bs, 1.f / sqrtf((float)hd)};
}

size_t nn_attnblock_scratch(const nn_attnblock *b, int B, int H, int W) {
  nn_attn_dims d = attn_dims(b, B, H * W);
  nn_conv2d_dims q = nn_conv2d_make(B, b->C, H, W, 3 * b->C, 1, 1, 0);
  return zmax(nn_attention_scratch(&d), nn_conv2d_scratch(&q));
}

size_t nn_attnblock_work(const nn_attnblock *b, int B, int H, int W) {
  return (size_t)5 * B * b->C * H * W + 64;
}

void nn_attnblock_forward(const nn_attnblock *b, const nn_params *ps, nn_attnblock_act *a,
                          const float *x, float *scratch) {
  int B = a->B, S = a->H * a->W, C = b->C;
  nn_conv2d_dims dq = nn_conv2d_make(B, C, a->H, a->W, 3 * C, 1, 1, 0);
  nn_conv2d_dims dout = nn_conv2d_make(B, C, a->H, a->W, C, 1, 1, 0);
  nn_attn_dims ad = attn_dims(b, B, S);
  nn_groupnorm_forward(a->hn, a->m, a->r, x, P(b->nw), P(b->nb), B, C, S, b->groups, 1e-5f, NN_ACT_NONE);
  nn_conv2d_forward(a->qkv, a->hn, P(b->qkvw), P(b->qkvb), &dq, scratch);
  nn_attention_forward(a->y, a->prob, a->qkv, a->qkv + (size_t)C * S, a->qkv + (size_t)2 * C * S, &ad);
  par_copy(a->out, x, (size_t)B * C * S);
  nn_conv2d_forward_acc(a->out, a->y, P(b->ow), P(b->ob), &dout, scratch);
}

void nn_attnblock_backward(const nn_attnblock *b, nn_params *ps, const nn_attnblock_act *a,
                           float *dx, const float *dout, const float *x, float *work,
                           float *scratch) {
  int B = a->B, S = a->H * a->W, C = b->C;
  size_t n = (size_t)B * C * S;
  float *dy = work, *dqkv = dy + n, *dhn = dqkv + 3 * n;
  nn_zero(work, 5 * n);
  nn_conv2d_dims dq = nn_conv2d_make(B, C, a->H, a->W, 3 * C, 1, 1, 0);
  nn_conv2d_dims dot = nn_conv2d_make(B, C, a->H, a->W, C, 1, 1, 0);
  nn_attn_dims ad = attn_dims(b, B, S);
  if (dx) nn_add_backward(dx, NULL, dout, n);
  nn_conv2d_backward(dy, G(b->ow), G(b->ob), dout, a->y, P(b->ow), &dot, scratch);
  nn_attention_backward(dqkv, dqkv + (size_t)C * S, dqkv + (size_t)2 * C * S, dy, a->prob, a->qkv,
                        a->qkv + (size_t)C * S, a->qkv + (size_t)2 * C * S, &ad, scratch);
  nn_conv2d_backward(dhn, G(b->qkvw), G(b->qkvb), dqkv, a->hn, P(b->qkvw), &dq, scratch);
  nn_groupnorm_backward(dx, G(b->nw), G(b->nb), dhn, x, a->m, a->r, P(b->nw), P(b->nb), B, C, S,
                        b->groups, NN_ACT_NONE);
}

/* ---------------------------------------------------------------------------------------------
 * ConditionalResidualBlock1D */

void nn_crb1d_init(nn_crb1d *r, nn_params *ps, const char *pre, int cin, int cout, int cdim,
                   int K, int groups) {
  r->cin = cin;
  r->cout = cout;
  r->cdim = cdim;
  r->K = K;
  r->groups = groups;
  r->c0w = padd(ps, pre, "b0.b.0.weight", cout, cin, K, 0);
  r->c0b = padd(ps, pre, "b0.b.0.bias", cout, 0, 0, 0);
  r->g0w = padd(ps, pre, "b0.b.1.weight", cout, 0, 0, 0);
  r->g0b = padd(ps, pre, "b0.b.1.bias", cout, 0, 0, 0);
  r->c1w = padd(ps, pre, "b1.b.0.weight", cout, cout, K, 0);
  r->c1b = padd(ps, pre, "b1.b.0.bias", cout, 0, 0, 0);
  r->g1w = padd(ps, pre, "b1.b.1.weight", cout, 0, 0, 0);
  r->g1b = padd(ps, pre, "b1.b.1.bias", cout, 0, 0, 0);
  r->lw = padd(ps, pre, "cond.1.weight", 2 * cout, cdim, 0, 0);
  r->lb = padd(ps, pre, "cond.1.bias", 2 * cout, 0, 0, 0);
  r->rw = r->rb = NN_NONE;
  if (cin != cout) {
    r->rw = padd(ps, pre, "res.weight", cout, cin, 1, 0);
    r->rb = padd(ps, pre, "res.bias", cout, 0, 0, 0);
  }
}

void nn_crb1d_act_alloc(nn_crb1d_act *a, const nn_crb1d *r, nn_arena *ar, int B, int T) {
  size_t n = (size_t)B * r->cout * T;
  a->B = B;
  a->T = T;
  a->h0 = nn_arena_floats(ar, n);
  a->m0 = nn_arena_floats(ar, (size_t)B * r->groups);
  a->r0 = nn_arena_floats(ar, (size_t)B * r->groups);
  a->a0 = nn_arena_floats(ar, n);
  a->mc = nn_arena_floats(ar, (size_t)B * r->cdim);
  a->sb = nn_arena_floats(ar, (size_t)B * 2 * r->cout);
  a->f = nn_arena_floats(ar, n);
  a->h1 = nn_arena_floats(ar, n);
  a->m1 = nn_arena_floats(ar, (size_t)B * r->groups);
  a->r1 = nn_arena_floats(ar, (size_t)B * r->groups);
  a->out = nn_arena_floats(ar, n);
}

size_t nn_crb1d_scratch(const nn_crb1d *r, int B, int T) {
  nn_conv1d_dims d0 = nn_conv1d_make(B, r->cin, T, r->cout, r->K, 1, r->K / 2);
  nn_conv1d_dims d1 = nn_conv1d_make(B, r->cout, T, r->cout, r->K, 1, r->K / 2);
  nn_conv1d_dims dr = nn_conv1d_make(B, r->cin, T, r->cout, 1, 1, 0);
  return zmax(zmax(nn_conv1d_scratch(&d0), nn_conv1d_scratch(&d1)), nn_conv1d_scratch(&dr));
}

size_t nn_crb1d_work(const nn_crb1d *r, int B, int T) {
  return (size_t)B * r->cout * T * 4 + (size_t)B * (2 * r->cout + r->cdim) + 64;
}

void nn_crb1d_forward(const nn_crb1d *r, const nn_params *ps, nn_crb1d_act *a, const float *x,
                      const float *cond, float *scratch) {
  int B = a->B, T = a->T;
  nn_conv1d_dims d0 = nn_conv1d_make(B, r->cin, T, r->cout, r->K, 1, r->K / 2);
  nn_conv1d_dims d1 = nn_conv1d_make(B, r->cout, T, r->cout, r->K, 1, r->K / 2);
  nn_conv1d_forward(a->h0, x, P(r->c0w), P(r->c0b), &d0, scratch);
  nn_groupnorm_forward(a->a0, a->m0, a->r0, a->h0, P(r->g0w), P(r->g0b), B, r->cout, T, r->groups,
                       1e-5f, NN_ACT_MISH);
  nn_act_forward(a->mc, cond, (size_t)B * r->cdim, NN_ACT_MISH);
  nn_linear_forward(a->sb, a->mc, P(r->lw), P(r->lb), B, r->cdim, 2 * r->cout);
  nn_film_forward(a->f, a->a0, a->sb, B, r->cout, T);
  nn_conv1d_forward(a->h1, a->f, P(r->c1w), P(r->c1b), &d1, scratch);
  nn_groupnorm_forward(a->out, a->m1, a->r1, a->h1, P(r->g1w), P(r->g1b), B, r->cout, T, r->groups,
                       1e-5f, NN_ACT_MISH);
  if (r->rw != NN_NONE) {
    nn_conv1d_dims dr = nn_conv1d_make(B, r->cin, T, r->cout, 1, 1, 0);
    nn_conv1d_forward_acc(a->out, x, P(r->rw), P(r->rb), &dr, scratch);
  } else {
    nn_add_forward(a->out, a->out, x, (size_t)B * r->cout * T);
  }
}

void nn_crb1d_backward(const nn_crb1d *r, nn_params *ps, const nn_crb1d_act *a, float *dx,
                       float *dcond, const float *dout, const float *x, const float *cond,
                       float *work, float *scratch) {
  int B = a->B, T = a->T;
  size_t n = (size_t)B * r->cout * T;
  float *dh1 = work, *df = dh1 + n, *da0 = df + n, *dh0 = da0 + n, *dsb = dh0 + n,
        *dmc = dsb + (size_t)B * 2 * r->cout;
  nn_zero(work, (4 * n + (size_t)B * (2 * r->cout + r->cdim)));
  nn_conv1d_dims d0 = nn_conv1d_make(B, r->cin, T, r->cout, r->K, 1, r->K / 2);
  nn_conv1d_dims d1 = nn_conv1d_make(B, r->cout, T, r->cout, r->K, 1, r->K / 2);
  if (r->rw != NN_NONE) {
    nn_conv1d_dims dr = nn_conv1d_make(B, r->cin, T, r->cout, 1, 1, 0);
    nn_conv1d_backward(dx, G(r->rw), G(r->rb), dout, x, P(r->rw), &dr, scratch);
  } else if (dx) {
    nn_add_backward(dx, NULL, dout, n);
  }
  nn_groupnorm_backward(dh1, G(r->g1w), G(r->g1b), dout, a->h1, a->m1, a->r1, P(r->g1w), P(r->g1b), B,
                        r->cout, T, r->groups, NN_ACT_MISH);
  nn_conv1d_backward(df, G(r->c1w), G(r->c1b), dh1, a->f, P(r->c1w), &d1, scratch);
  nn_film_backward(da0, dsb, df, a->a0, a->sb, B, r->cout, T);
  nn_linear_backward(dmc, G(r->lw), G(r->lb), dsb, a->mc, P(r->lw), B, r->cdim, 2 * r->cout);
  if (dcond) nn_act_backward(dcond, dmc, cond, (size_t)B * r->cdim, NN_ACT_MISH);
  nn_groupnorm_backward(dh0, G(r->g0w), G(r->g0b), da0, a->h0, a->m0, a->r0, P(r->g0w), P(r->g0b), B,
                        r->cout, T, r->groups, NN_ACT_MISH);
  nn_conv1d_backward(dx, G(r->c0w), G(r->c0b), dh0, x, P(r->c0w), &d0, scratch);
}

/* ---------------------------------------------------------------------------------------------
 * default init */

void nn_params_init_default(nn_params *ps, unsigned seed) {
  nn_weights_thaw(ps->data, ps->total);
  sp_mt19937 rng;
  sp_mt_seed(&rng, seed);
  for (int i = 0; i < ps->n; i++) {
    const nn_param *p = &ps->p[i];
    float *d = ps->data + p->offset;
    size_t len = strlen(p->name);
    int is_bias = len >= 5 && !strcmp(p->name + len - 5, ".bias");
    if (p->ndim >= 2) {
      double bound = 1.0 / sqrt((double)(p->numel / (size_t)p->shape[0]));
      for (size_t j = 0; j < p->numel; j++) d[j] = (float)sp_mt_uniform(&rng, -bound, bound);
    } else {
      for (size_t j = 0; j < p->numel; j++) d[j] = is_bias ? 0.f : 1.f;
    }
  }
}

/* ---------------------------------------------------------------------------------------------
 * ResNet norm layer (GroupNorm or BatchNorm with running statistics) and BasicBlock */

void nn_norm2d_init(nn_norm2d *n, nn_params *ps, nn_params *stats, const char *name,
                    nn_norm_kind kind, int C, int groups) {
  SP_ASSERT(kind == NN_NORM_GROUP || kind == NN_NORM_BATCH);
  SP_ASSERT(kind == NN_NORM_BATCH || (groups > 0 && C % groups == 0));
  n->kind = kind;
  n->C = C;
  n->groups = kind == NN_NORM_GROUP ? groups : 0;
  n->w = padd(ps, name, "weight", C, 0, 0, 0);
  n->b = padd(ps, name, "bias", C, 0, 0, 0);
  n->rm = n->rv = NN_NONE;
  if (kind == NN_NORM_BATCH) {
    SP_ASSERT(stats);
    n->rm = padd(stats, name, "running_mean", C, 0, 0, 0);
    n->rv = padd(stats, name, "running_var", C, 0, 0, 0);
  }
}

size_t nn_norm2d_nstat(const nn_norm2d *n, int B) {
  return n->kind == NN_NORM_GROUP ? (size_t)B * n->groups : (size_t)n->C;
}

/* BatchNorm in eval mode: out = act((x - rm) / sqrt(rv + eps) * g + b); mean/rstd get the
 * running values */
static void bn_eval_forward(float *out, float *mean, float *rstd, const float *x, const float *g,
                            const float *bt, const float *rm, const float *rv, int B, int C,
                            int S, float eps, nn_act act) {
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if ((size_t)B * C * S > 16384)
  for (int c = 0; c < C; c++) {
    float r = 1.f / sqrtf(rv[c] + eps), sc = r * g[c], sh = bt[c] - rm[c] * sc;
    mean[c] = rm[c];
    rstd[c] = r;
    for (int b = 0; b < B; b++) {
      const float *xi = x + ((size_t)b * C + c) * S;
      float *o = out + ((size_t)b * C + c) * S;
      if (act == NN_ACT_RELU)
        for (int i = 0; i < S; i++) {
          float v = xi[i] * sc + sh;
          o[i] = v > 0.f ? v : 0.f;
        }
      else if (act == NN_ACT_NONE)
        for (int i = 0; i < S; i++) o[i] = xi[i] * sc + sh;
      else
        for (int i = 0; i < S; i++) o[i] = nn_act_value(xi[i] * sc + sh, act);
    }
  }
}

void nn_norm2d_forward(const nn_norm2d *n, const nn_params *ps, float *run, int train,
                       float *out, float *mean, float *rstd, const float *x, int B, int S,
                       nn_act act) {
  if (n->kind == NN_NORM_GROUP) {
    nn_groupnorm_forward(out, mean, rstd, x, P(n->w), P(n->b), B, n->C, S, n->groups, 1e-5f, act);
  } else if (train) {
    nn_batchnorm_forward(out, mean, rstd, run ? run + n->rm : NULL, run ? run + n->rv : NULL, x,
                         P(n->w), P(n->b), B, n->C, S, 1e-5f, 0.1f, act);
  } else {
    SP_ASSERT(run);  // eval mode needs the running statistics
    bn_eval_forward(out, mean, rstd, x, P(n->w), P(n->b), run + n->rm, run + n->rv, B, n->C, S,
                    1e-5f, act);
  }
}

void nn_norm2d_backward(const nn_norm2d *n, nn_params *ps, float *dx, const float *dout,
                        const float *x, const float *mean, const float *rstd, int B, int S,
                        nn_act act) {
  if (n->kind == NN_NORM_GROUP)
    nn_groupnorm_backward(dx, G(n->w), G(n->b), dout, x, mean, rstd, P(n->w), P(n->b), B, n->C, S,
                          n->groups, act);
  else
    nn_batchnorm_backward(dx, G(n->w), G(n->b), dout, x, mean, rstd, P(n->w), P(n->b), B, n->C, S,
                          act);
}

void nn_bblock_init(nn_bblock *b, nn_params *ps, nn_params *stats, const char *pre, int cin,
                    int cout, int stride, nn_norm_kind kind, int gsize) {
  char name[NN_NAME_MAX];
  int groups = kind == NN_NORM_GROUP ? cout / gsize : 0;
  SP_ASSERT(kind == NN_NORM_BATCH || (gsize > 0 && cout % gsize == 0));
  b->cin = cin;
  b->cout = cout;
  b->stride = stride;
  b->c1w = padd(ps, pre, "conv1.weight", cout, cin, 3, 3);
  snprintf(name, sizeof name, "%s%sbn1", pre, *pre ? "." : "");
  nn_norm2d_init(&b->n1, ps, stats, name, kind, cout, groups);
  b->c2w = padd(ps, pre, "conv2.weight", cout, cout, 3, 3);
  snprintf(name, sizeof name, "%s%sbn2", pre, *pre ? "." : "");
  nn_norm2d_init(&b->n2, ps, stats, name, kind, cout, groups);
  b->dw = NN_NONE;
  memset(&b->nd, 0, sizeof b->nd);
  if (stride != 1 || cin != cout) {
    b->dw = padd(ps, pre, "downsample.0.weight", cout, cin, 1, 1);
    snprintf(name, sizeof name, "%s%sdownsample.1", pre, *pre ? "." : "");
    nn_norm2d_init(&b->nd, ps, stats, name, kind, cout, groups);
  }
}

void nn_bblock_act_alloc(nn_bblock_act *a, const nn_bblock *b, nn_arena *ar, int B, int H, int W) {
  nn_conv2d_dims d = nn_conv2d_make(B, b->cin, H, W, b->cout, 3, b->stride, 1);
  size_t n = (size_t)B * b->cout * d.Ho * d.Wo, ns = nn_norm2d_nstat(&b->n1, B);
  a->B = B;
  a->H = H;
  a->W = W;
  a->Ho = d.Ho;
  a->Wo = d.Wo;
  a->h1 = nn_arena_floats(ar, n);
  a->m1 = nn_arena_floats(ar, ns);
  a->r1 = nn_arena_floats(ar, ns);
  a->a1 = nn_arena_floats(ar, n);
  a->h2 = nn_arena_floats(ar, n);
  a->m2 = nn_arena_floats(ar, ns);
  a->r2 = nn_arena_floats(ar, ns);
  a->hs = a->zs = a->ms = a->rs = NULL;
  if (b->dw != NN_NONE) {
    a->hs = nn_arena_floats(ar, n);
    a->ms = nn_arena_floats(ar, ns);
    a->rs = nn_arena_floats(ar, ns);
    a->zs = nn_arena_floats(ar, n);
  }
  a->out = nn_arena_floats(ar, n);
}

size_t nn_bblock_scratch(const nn_bblock *b, int B, int H, int W) {
  nn_conv2d_dims d1 = nn_conv2d_make(B, b->cin, H, W, b->cout, 3, b->stride, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B, b->cout, d1.Ho, d1.Wo, b->cout, 3, 1, 1);
  nn_conv2d_dims ds = nn_conv2d_make(B, b->cin, H, W, b->cout, 1, b->stride, 0);
  return zmax(zmax(nn_conv2d_scratch(&d1), nn_conv2d_scratch(&d2)), nn_conv2d_scratch(&ds));
}

size_t nn_bblock_work(const nn_bblock *b, int B, int H, int W) {
  nn_conv2d_dims d1 = nn_conv2d_make(B, b->cin, H, W, b->cout, 3, b->stride, 1);
  return (size_t)B * b->cout * d1.Ho * d1.Wo * 5 + 64;
}

void nn_bblock_forward(const nn_bblock *b, const nn_params *ps, float *run, int train,
                       nn_bblock_act *a, const float *x, float *scratch) {
  int B = a->B;
  nn_conv2d_dims d1 = nn_conv2d_make(B, b->cin, a->H, a->W, b->cout, 3, b->stride, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B, b->cout, d1.Ho, d1.Wo, b->cout, 3, 1, 1);
  int S = d1.Ho * d1.Wo;
  size_t n = (size_t)B * b->cout * S;
  nn_conv2d_forward(a->h1, x, P(b->c1w), NULL, &d1, scratch);
  nn_norm2d_forward(&b->n1, ps, run, train, a->a1, a->m1, a->r1, a->h1, B, S, NN_ACT_RELU);
  nn_conv2d_forward(a->h2, a->a1, P(b->c2w), NULL, &d2, scratch);
  nn_norm2d_forward(&b->n2, ps, run, train, a->out, a->m2, a->r2, a->h2, B, S, NN_ACT_NONE);
  const float *sc = x;
  if (b->dw != NN_NONE) {
    nn_conv2d_dims ds = nn_conv2d_make(B, b->cin, a->H, a->W, b->cout, 1, b->stride, 0);
    nn_conv2d_forward(a->hs, x, P(b->dw), NULL, &ds, scratch);
    nn_norm2d_forward(&b->nd, ps, run, train, a->zs, a->ms, a->rs, a->hs, B, S, NN_ACT_NONE);
    sc = a->zs;
  }
  float *o = a->out;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n > 32768)
  for (size_t i = 0; i < n; i++) {
    float v = o[i] + sc[i];
    o[i] = v > 0.f ? v : 0.f;
  }
}

void nn_bblock_backward(const nn_bblock *b, nn_params *ps, const nn_bblock_act *a, float *dx,
                        const float *dout, const float *x, float *work, float *scratch) {
  int B = a->B;
  nn_conv2d_dims d1 = nn_conv2d_make(B, b->cin, a->H, a->W, b->cout, 3, b->stride, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B, b->cout, d1.Ho, d1.Wo, b->cout, 3, 1, 1);
  int S = d1.Ho * d1.Wo;
  size_t n = (size_t)B * b->cout * S;
  float *dpre = work, *dh2 = dpre + n, *da1 = dh2 + n, *dh1 = da1 + n, *dhs = dh1 + n;
  nn_zero(dh2, 4 * n);
  const float *o = a->out;
#pragma omp parallel for schedule(static) num_threads(nn_threads()) if (n > 32768)
  for (size_t i = 0; i < n; i++) dpre[i] = o[i] > 0.f ? dout[i] : 0.f;
  if (b->dw != NN_NONE) {
    nn_conv2d_dims ds = nn_conv2d_make(B, b->cin, a->H, a->W, b->cout, 1, b->stride, 0);
    nn_norm2d_backward(&b->nd, ps, dhs, dpre, a->hs, a->ms, a->rs, B, S, NN_ACT_NONE);
    nn_conv2d_backward(dx, G(b->dw), NULL, dhs, x, P(b->dw), &ds, scratch);
  } else if (dx) {
    nn_add_backward(dx, NULL, dpre, n);
  }
  nn_norm2d_backward(&b->n2, ps, dh2, dpre, a->h2, a->m2, a->r2, B, S, NN_ACT_NONE);
  nn_conv2d_backward(da1, G(b->c2w), NULL, dh2, a->a1, P(b->c2w), &d2, scratch);
  nn_norm2d_backward(&b->n1, ps, dh1, da1, a->h1, a->m1, a->r1, B, S, NN_ACT_RELU);
  nn_conv2d_backward(dx, G(b->c1w), NULL, dh1, x, P(b->c1w), &d1, scratch);
}
