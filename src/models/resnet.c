/* resnet.c: the policy's image encoder (contract in resnet.h). */
#include "models/resnet.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define P(off) (ps->data + (off))
#define G(off) (ps->grad + (off))

/* ---------------------------------------------------------------------------------------------
 * config */

static const char *const g_norm_names[] = {"group", "batch", NULL};

#define RF(f) offsetof(sp_resnet_cfg, f)
const sp_cf sp_resnet_fields[] = {
    {"in_ch", SP_CF_INT, RF(in_ch), 1, 64, NULL, 0, 0, "input channels (6: current and goal RGB frames)"},
    {"res", SP_CF_INT, RF(res), 8, 1024, NULL, 0, 0, "input side in pixels"},
    {"width", SP_CF_INT, RF(width), 1, 512, NULL, 0, 0, "stem and first-stage channels (64: ResNet-18)"},
    {"stages", SP_CF_INT, RF(stages), 1, 4, NULL, 0, 0, "stages; features = width << (stages - 1)"},
    {"blocks", SP_CF_INT, RF(blocks), 1, 4, NULL, 0, 0, "BasicBlocks per stage (2: ResNet-18)"},
    {"norm", SP_CF_ENUM, RF(norm), 0, 0, g_norm_names, 0, 0, "group (GroupNorm, Diffusion Policy) or batch (BatchNorm)"},
    {"gn_size", SP_CF_INT, RF(gn_size), 1, 512, NULL, 0, 0, "channels per GroupNorm group (16: Diffusion Policy)"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL}};

void sp_resnet_cfg_preset(sp_resnet_cfg *c, sp_preset p) {
  *c = (sp_resnet_cfg){.in_ch = 6, .res = 96, .width = 64, .stages = 4, .blocks = 2,
                       .norm = SP_RESNET_NORM_GROUP, .gn_size = 16};
  if (p == SP_PRESET_TINY) {
    c->res = 32;
    c->width = 8;
    c->stages = 3;
    c->gn_size = 4;
  } else if (p == SP_PRESET_PAPER) {
    c->res = 128;
  }
}

int sp_resnet_cfg_check(const sp_resnet_cfg *c, char *err) {
  if (sp_cf_check(sp_resnet_fields, c, "resnet", err)) return -1;
  if (c->norm == SP_RESNET_NORM_GROUP && c->width % c->gn_size)
    return sp_errf(err, "resnet: width = %d is not a multiple of gn_size = %d (GroupNorm groups must divide the channels)",
                   c->width, c->gn_size);
  if ((size_t)c->width << (c->stages - 1) > 4096)
    return sp_errf(err, "resnet: width = %d with stages = %d gives %d features, above 4096", c->width, c->stages,
                   c->width << (c->stages - 1));
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * model */

static size_t add(nn_params *ps, const char *pre, const char *name, int64_t d0, int64_t d1, int64_t d2,
                  int64_t d3) {
  char full[NN_NAME_MAX];
  int n = snprintf(full, sizeof full, "%s%s%s", pre, *pre ? "." : "", name);
  SP_ASSERT(n < (int)sizeof full);
  return nn_params_add4(ps, full, d0, d1, d2, d3);
}

static int down(int H, int k, int s, int p) { return (H + 2 * p - k) / s + 1; }

int sp_resnet_init(sp_resnet *m, const sp_resnet_cfg *c, nn_params *ps, const char *prefix, char *err) {
  memset(m, 0, sizeof *m);
  nn_params_init(&m->stats);
  if (sp_resnet_cfg_check(c, err)) return -1;
  if (!prefix) prefix = "";
  m->cfg = *c;
  nn_norm_kind kind = c->norm == SP_RESNET_NORM_BATCH ? NN_NORM_BATCH : NN_NORM_GROUP;
  m->p0 = ps->total;
  m->stem_w = add(ps, prefix, "conv1.weight", c->width, c->in_ch, 7, 7);
  char name[NN_NAME_MAX];
  snprintf(name, sizeof name, "%s%sbn1", prefix, *prefix ? "." : "");
  nn_norm2d_init(&m->stem_n, ps, &m->stats, name, kind, c->width, kind == NN_NORM_GROUP ? c->width / c->gn_size : 0);
  m->H0 = down(c->res, 7, 2, 3);
  m->Hp = down(m->H0, 3, 2, 1);
  int cin = c->width, H = m->Hp;
  m->nblk = 0;
  for (int s = 0; s < c->stages; s++) {
    int cout = c->width << s;
    for (int j = 0; j < c->blocks; j++) {
      int stride = (s > 0 && j == 0) ? 2 : 1;
      snprintf(name, sizeof name, "%s%slayer%d.%d", prefix, *prefix ? "." : "", s + 1, j);
      nn_bblock_init(&m->blk[m->nblk], ps, &m->stats, name, cin, cout, stride, kind, c->gn_size);
      m->Hin[m->nblk++] = H;
      H = down(H, 3, stride, 1);
      cin = cout;
    }
  }
  m->feat = cin;
  m->p1 = ps->total;
  if (kind == NN_NORM_BATCH) {
    if (nn_params_alloc(&m->stats, err)) return -1;
    /* running_mean 0, running_var 1, as a fresh nn.BatchNorm2d */
    for (int i = 0; i < m->stats.n; i++) {
      const nn_param *p = &m->stats.p[i];
      size_t len = strlen(p->name);
      float v = len >= 11 && !strcmp(p->name + len - 11, "running_var") ? 1.f : 0.f;
      for (size_t k = 0; k < p->numel; k++) m->stats.data[p->offset + k] = v;
    }
  }
  return 0;
}

void sp_resnet_free(sp_resnet *m) { nn_params_free(&m->stats); }

double sp_resnet_flops(const sp_resnet *m, int B) {
  const sp_resnet_cfg *c = &m->cfg;
  double f = 2.0 * B * c->width * (double)m->H0 * m->H0 * c->in_ch * 49;
  for (int k = 0; k < m->nblk; k++) {
    const nn_bblock *b = &m->blk[k];
    int H = m->Hin[k], Ho = down(H, 3, b->stride, 1);
    double S = (double)Ho * Ho;
    f += 2.0 * B * S * b->cout * 9.0 * (b->cin + b->cout);
    if (b->dw != NN_NONE) f += 2.0 * B * S * b->cout * b->cin;
  }
  return f;
}

/* ---------------------------------------------------------------------------------------------
 * workspace: carve() runs twice, measuring (arena base NULL) then for real */

static void carve(sp_resnet_ws *w, const sp_resnet *m) {
  sp_ws *b = &w->base;
  int B = b->maxB, C = m->cfg.width;
  size_t n0 = (size_t)B * C * m->H0 * m->H0, np = (size_t)B * C * m->Hp * m->Hp;
  size_t ns = nn_norm2d_nstat(&m->stem_n, B);
  w->h0 = sp_ws_floats(b, n0);
  w->m0 = sp_ws_floats(b, ns);
  w->r0 = sp_ws_floats(b, ns);
  w->a0 = sp_ws_floats(b, n0);
  w->p0 = sp_ws_floats(b, np);
  w->arg = (int32_t *)sp_ws_floats(b, np);
  for (int k = 0; k < m->nblk; k++) nn_bblock_act_alloc(&w->ba[k], &m->blk[k], &b->ar, B, m->Hin[k], m->Hin[k]);
  w->dp0 = w->da0 = NULL;
  memset(w->dblk, 0, sizeof w->dblk);
  if (b->train) {
    w->dp0 = sp_ws_floats(b, np);
    w->da0 = sp_ws_floats(b, n0);
    for (int k = 0; k < m->nblk; k++)
      w->dblk[k] = sp_ws_floats(b, (size_t)B * m->blk[k].cout * w->ba[k].Ho * w->ba[k].Wo);
  }
}

int sp_resnet_ws_init(sp_resnet_ws *w, const sp_resnet *m, int maxB, int train, char *err) {
  memset(w, 0, sizeof *w);
  if (maxB < 1) return sp_errf(err, "resnet workspace: batch %d, want >= 1", maxB);
  w->base.maxB = maxB;
  w->base.train = !!train;
  w->eval = !train;
  carve(w, m);
  /* convolution paths (and so scratch sizes) depend on the batch: size for every batch up to maxB */
  const sp_resnet_cfg *c = &m->cfg;
  for (int B = 1; B <= maxB; B++) {
    nn_conv2d_dims d = nn_conv2d_make(B, c->in_ch, c->res, c->res, c->width, 7, 2, 3);
    sp_ws_need_scratch(&w->base, nn_conv2d_scratch(&d));
    for (int k = 0; k < m->nblk; k++) sp_ws_need_scratch(&w->base, nn_bblock_scratch(&m->blk[k], B, m->Hin[k], m->Hin[k]));
  }
  if (train) {
    sp_ws_need_work(&w->base, (size_t)maxB * c->width * m->H0 * m->H0);  // stem norm gradient
    for (int k = 0; k < m->nblk; k++) sp_ws_need_work(&w->base, nn_bblock_work(&m->blk[k], maxB, m->Hin[k], m->Hin[k]));
  }
  if (sp_ws_commit(&w->base, err)) return -1;
  w->base.ar.used = 0;
  carve(w, m);
  return 0;
}

void sp_resnet_ws_free(sp_resnet_ws *w) {
  sp_ws_free(&w->base);
  memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------------------------------------
 * forward and backward */

void sp_resnet_forward(const sp_resnet *m, const nn_params *ps, sp_resnet_ws *w, float *feat, const float *x,
                       int B) {
  /* x (B, in_ch, R, R) -> feat (B, feat) */
  const sp_resnet_cfg *c = &m->cfg;
  SP_ASSERT(B >= 1 && B <= w->base.maxB);
  int train = !w->eval;
  float *run = m->stats.data;  // BatchNorm running statistics (updated in training mode)
  w->B = B;
  w->fwd_train = train;
  w->x = x;
  nn_conv2d_dims d = nn_conv2d_make(B, c->in_ch, c->res, c->res, c->width, 7, 2, 3);
  nn_conv2d_forward(w->h0, x, P(m->stem_w), NULL, &d, w->base.scratch);
  nn_norm2d_forward(&m->stem_n, ps, run, train, w->a0, w->m0, w->r0, w->h0, B, m->H0 * m->H0, NN_ACT_RELU);
  nn_maxpool_forward(w->p0, w->arg, w->a0, B * c->width, m->H0, m->H0, 3, 2, 1, m->Hp, m->Hp);
  const float *h = w->p0;
  for (int k = 0; k < m->nblk; k++) {
    w->ba[k].B = B;
    nn_bblock_forward(&m->blk[k], ps, run, train, &w->ba[k], h, w->base.scratch);
    h = w->ba[k].out;
  }
  const nn_bblock_act *l = &w->ba[m->nblk - 1];
  nn_gap_forward(feat, h, B * m->feat, l->Ho * l->Wo);
}

void sp_resnet_backward(const sp_resnet *m, nn_params *ps, sp_resnet_ws *w, const float *dfeat, int B) {
  /* dfeat (B, feat) -> ps->grad += */
  const sp_resnet_cfg *c = &m->cfg;
  SP_ASSERT(w->base.train);  // a workspace made with train = 1
  SP_ASSERT(w->fwd_train);   // backward follows a training-mode forward
  SP_ASSERT(B == w->B);      // of the same batch
  SP_ASSERT(ps->grad);
  float *scratch = w->base.scratch;
  int L = m->nblk - 1;
  size_t nl = (size_t)B * m->feat * w->ba[L].Ho * w->ba[L].Wo;
  nn_zero(w->dblk[L], nl);
  nn_gap_backward(w->dblk[L], dfeat, B * m->feat, w->ba[L].Ho * w->ba[L].Wo);
  for (int k = L; k >= 0; k--) {
    float *dx = k ? w->dblk[k - 1] : w->dp0;
    const float *x = k ? w->ba[k - 1].out : w->p0;
    size_t nx = (size_t)B * m->blk[k].cin * m->Hin[k] * m->Hin[k];
    nn_zero(dx, nx);
    nn_bblock_backward(&m->blk[k], ps, &w->ba[k], dx, w->dblk[k], x, w->base.work, scratch);
  }
  size_t n0 = (size_t)B * c->width * m->H0 * m->H0;
  nn_zero(w->da0, n0);
  nn_maxpool_backward(w->da0, w->dp0, w->arg, B * c->width, m->H0, m->H0, m->Hp, m->Hp);
  float *dh0 = w->base.work;
  nn_zero(dh0, n0);
  nn_norm2d_backward(&m->stem_n, ps, dh0, w->da0, w->h0, w->m0, w->r0, B, m->H0 * m->H0, NN_ACT_RELU);
  nn_conv2d_dims d = nn_conv2d_make(B, c->in_ch, c->res, c->res, c->width, 7, 2, 3);
  nn_conv2d_backward(NULL, G(m->stem_w), NULL, dh0, w->x, P(m->stem_w), &d, scratch);
}

/* ---------------------------------------------------------------------------------------------
 * torchvision weights */

static int same_shape(const nn_st_tensor *t, const nn_param *p) {
  if (t->ndim != p->ndim) return 0;
  for (int i = 0; i < p->ndim; i++)
    if (t->shape[i] != p->shape[i]) return 0;
  return 1;
}

static char *shape_str(int ndim, const int64_t *shape, char *buf) {
  size_t k = (size_t)snprintf(buf, 64, "(");
  for (int i = 0; i < ndim && k < 48; i++) k += (size_t)snprintf(buf + k, 64 - k, i ? ", %lld" : "%lld", (long long)shape[i]);
  snprintf(buf + k, 64 - k, ")");
  return buf;
}

static const char *strip(const char *name, size_t plen) { return name + plen + (plen ? 1 : 0); }

int sp_resnet_load_torchvision(sp_resnet *m, nn_params *ps, const char *path, char *err) {
  const sp_resnet_cfg *c = &m->cfg;
  if (c->in_ch % 3)
    return sp_errf(err, "%s: the model has in_ch = %d input channels, not a multiple of the stem's 3", path, c->in_ch);
  SP_ASSERT(ps->data);
  nn_safetensors st;
  if (nn_st_open(&st, path, err)) return -1;
  /* the prefix is what precedes "conv1.weight" in the stem's name */
  const nn_param *stem = NULL;
  for (int i = 0; i < ps->n; i++)
    if (ps->p[i].offset == m->stem_w) stem = &ps->p[i];
  SP_ASSERT(stem);
  size_t plen = strlen(stem->name) - strlen("conv1.weight");
  plen = plen ? plen - 1 : 0;
  int rc = -1;
  /* pass 0 checks every tensor, pass 1 copies: a bad file leaves the weights as they were */
  for (int pass = 0; pass < 2; pass++) {
    if (pass) nn_weights_thaw(ps->data + m->p0, m->p1 - m->p0);
    for (int i = 0; i < ps->n; i++) {
      const nn_param *p = &ps->p[i];
      if (p->offset < m->p0 || p->offset >= m->p1) continue;
      const char *key = strip(p->name, plen);
      const nn_st_tensor *t = nn_st_find(&st, key);
      if (!t) {
        sp_errf(err, "%s: no tensor '%s' (want torchvision resnet key names, e.g. layer1.0.conv1.weight)", path, key);
        goto done;
      }
      const float *src = nn_st_f32(&st, key, NULL);
      if (!src) {
        sp_errf(err, "%s: tensor '%s' is %s, want F32", path, key, t->dtype);
        goto done;
      }
      int is_stem = p->offset == m->stem_w;
      if (is_stem ? !(t->ndim == 4 && t->shape[0] == c->width && t->shape[1] == 3 && t->shape[2] == 7 && t->shape[3] == 7)
                  : !same_shape(t, p)) {
        char have[64], want[64];
        shape_str(t->ndim, t->shape, have);
        if (is_stem) snprintf(want, sizeof want, "(%d, 3, 7, 7)", c->width);
        else shape_str(p->ndim, p->shape, want);
        sp_errf(err, "%s: tensor '%s' has shape %s, the model wants %s (another architecture or width)", path, key, have, want);
        goto done;
      }
      if (!pass) continue;
      float *dst = ps->data + p->offset;
      if (is_stem) {
        /* (width, 3, 7, 7) -> (width, in_ch, 7, 7): each group of 3 channels gets a copy / (in_ch / 3) */
        float k = 3.f / (float)c->in_ch;
        for (int o = 0; o < c->width; o++)
          for (int ci = 0; ci < c->in_ch; ci++)
            for (int j = 0; j < 49; j++)
              dst[((size_t)o * c->in_ch + ci) * 49 + j] = src[((size_t)o * 3 + ci % 3) * 49 + j] * k;
      } else {
        memcpy(dst, src, p->numel * sizeof(float));
      }
    }
    for (int i = 0; i < m->stats.n; i++) {
      const nn_param *p = &m->stats.p[i];
      const char *key = strip(p->name, plen);
      size_t n = 0;
      const float *src = nn_st_f32(&st, key, &n);
      if (!src || n != p->numel) {
        sp_errf(err, "%s: no F32 tensor '%s' of %zu elements (BatchNorm running statistics)", path, key, p->numel);
        goto done;
      }
      if (pass) memcpy(m->stats.data + p->offset, src, p->numel * sizeof(float));
    }
  }
  rc = 0;
done:
  nn_st_close(&st);
  return rc;
}
