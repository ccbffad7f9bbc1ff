/* policy.c: the goal-conditioned diffusion policy network (contract in policy.h). */
#include "models/policy.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "data/sampler.h"

#define P(off) (m->ps.data + (off))
#define G(off) (m->ps.grad + (off))

/* ---------------------------------------------------------------------------------------------
 * config */

static const char *const g_head_names[] = {"diffusion", "mlp", NULL};
static const char *const g_target_names[] = {"epsilon", "x0", NULL};

#define PF(f) offsetof(sp_policy_cfg, f)
const sp_cf sp_policy_fields[] = {
    {"frame", SP_CF_INT, PF(frame), 8, 1024, NULL, 0, 0, "side of the frames the policy takes (the dataset's)"},
    {"crop", SP_CF_INT, PF(enc.res), 8, 1024, NULL, 0, 0, "encoder input side: a crop of the frame (random in training, centre at inference)"},
    {"enc_width", SP_CF_INT, PF(enc.width), 1, 512, NULL, 0, 0, "encoder stem and first-stage channels (64: ResNet-18)"},
    {"enc_stages", SP_CF_INT, PF(enc.stages), 1, 4, NULL, 0, 0, "encoder stages; features = enc_width << (enc_stages - 1)"},
    {"enc_blocks", SP_CF_INT, PF(enc.blocks), 1, 4, NULL, 0, 0, "encoder BasicBlocks per stage (2: ResNet-18)"},
    {"enc_gn_size", SP_CF_INT, PF(enc.gn_size), 1, 512, NULL, 0, 0, "encoder channels per GroupNorm group (16: Diffusion Policy)"},
    {"ee_hidden", SP_CF_INT, PF(ee_hidden), 1, 4096, NULL, 0, 0, "end-effector MLP hidden width"},
    {"ee_dim", SP_CF_INT, PF(ee_dim), 1, 4096, NULL, 0, 0, "end-effector features in the condition"},
    {"ee_grip", SP_CF_INT, PF(ee_grip), 0, 1, NULL, 0, 0, "1: the gripper opening (obs[3]) joins the end-effector input (a deviation from the paper's xyz)"},
    {"head", SP_CF_ENUM, PF(head), 0, 0, g_head_names, 0, 0, "diffusion (1D U-Net denoiser) or mlp (direct regression, an ablation)"},
    {"horizon", SP_CF_INT, PF(unet.horizon), 1, SP_HORIZON_MAX, NULL, 0, 0, "actions per chunk H (divisible by 2^(levels-1))"},
    {"down_dims", SP_CF_INTLIST, PF(unet.down_dims), 1, 8192, NULL, SP_DP1D_MAX_LEVELS, PF(unet.levels), "U-Net channels per level"},
    {"kernel", SP_CF_INT, PF(unet.kernel), 1, 15, NULL, 0, 0, "U-Net conv kernel (odd)"},
    {"groups", SP_CF_INT, PF(unet.groups), 1, 256, NULL, 0, 0, "U-Net GroupNorm groups"},
    {"step_dim", SP_CF_INT, PF(unet.step_dim), 4, 4096, NULL, 0, 0, "U-Net diffusion-step embedding width (even)"},
    {"mlp_hidden", SP_CF_INT, PF(mlp_hidden), 1, 8192, NULL, 0, 0, "mlp head hidden width"},
    {"target", SP_CF_ENUM, PF(target), 0, 0, g_target_names, 0, 0, "diffusion target: epsilon (Diffusion Policy, SP) or x0 (an ablation)"},
    {"diffusion_steps", SP_CF_INT, PF(T), 2, NN_SCHED_MAX_T, NULL, 0, 0, "DDPM steps (squaredcos_cap_v2)"},
    {"ddim_steps", SP_CF_INT, PF(ddim_steps), 1, NN_SCHED_MAX_T, NULL, 0, 0, "DDIM steps at inference"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL}};

void sp_policy_cfg_derive(sp_policy_cfg *c) {
  c->enc.in_ch = SP_POLICY_IN_CH;
  c->enc.norm = SP_RESNET_NORM_GROUP;
  c->unet.adim = SP_POLICY_ADIM;
  int st = c->enc.stages >= 1 && c->enc.stages <= 4 ? c->enc.stages : 1;
  c->unet.gdim = (c->enc.width << (st - 1)) + c->ee_dim;
}

void sp_policy_cfg_preset(sp_policy_cfg *c, sp_preset p) {
  memset(c, 0, sizeof *c);
  sp_resnet_cfg_preset(&c->enc, p == SP_PRESET_TINY ? SP_PRESET_TINY : SP_PRESET_CPU);
  sp_dp1d_cfg_preset(&c->unet, p == SP_PRESET_TINY ? SP_PRESET_TINY : SP_PRESET_PAPER);
  c->head = SP_POLICY_HEAD_DIFFUSION;
  c->target = SP_POLICY_TARGET_EPS;
  c->T = 100;
  if (p == SP_PRESET_TINY) {
    /* a training test of seconds that still learns (the twin's fixture narrows the U-Net to
     * 8, 16, 16 to stay under 1 MB) */
    c->frame = 16;
    c->enc.res = 14;
    c->enc.width = 8;
    c->enc.stages = 3;
    c->enc.blocks = 1;
    c->enc.gn_size = 4;
    c->ee_hidden = 16;
    c->ee_dim = 8;
    c->unet.down_dims[0] = 32;
    c->unet.down_dims[1] = 64;
    c->unet.down_dims[2] = 64;
    c->unet.levels = 3;
    c->unet.groups = 8;
    c->unet.step_dim = 32;
    c->mlp_hidden = 32;
    c->ddim_steps = 4;
  } else if (p == SP_PRESET_CPU) {
    /* chosen by measurement on this 2-core machine (docs/models.md, "Policy"): one chunk within
     * 15 ms at B = 1 */
    c->frame = 64;
    c->enc.res = 56;
    c->enc.width = 32;
    c->enc.stages = 4;
    c->enc.blocks = 2;
    c->enc.gn_size = 16;
    c->ee_hidden = 64;
    c->ee_dim = 64;
    c->unet.down_dims[0] = 32;
    c->unet.down_dims[1] = 64;
    c->unet.down_dims[2] = 128;
    c->unet.levels = 3;
    c->unet.kernel = 5;
    c->unet.groups = 8;
    c->unet.step_dim = 64;
    c->mlp_hidden = 256;
    c->ddim_steps = 10;
  } else {
    /* ResNet-18 (Diffusion Policy's plain encoder; the paper's is a ResNet-50) at 112 of 128 px
     * (Diffusion Policy's crop ratio), its image U-Net (512, 1024, 2048, kernel 5, step 128),
     * 100 inference steps as its DDPM */
    c->frame = 128;
    c->enc.res = 112;
    c->ee_hidden = 64;
    c->ee_dim = 64;
    c->mlp_hidden = 1024;
    c->ddim_steps = 100;
  }
  c->unet.horizon = 4;
  sp_policy_cfg_derive(c);
}

int sp_policy_cfg_check(const sp_policy_cfg *c0, char *err) {
  if (sp_cf_check(sp_policy_fields, c0, "policy", err)) return -1;
  sp_policy_cfg c = *c0;
  sp_policy_cfg_derive(&c);
  char sub[SP_ERRLEN];
  if (sp_resnet_cfg_check(&c.enc, sub))
    return sp_errf(err, "policy encoder (the enc_ and crop options): %s", sub);
  if (c.enc.res > c.frame)
    return sp_errf(err, "policy: crop = %d is larger than frame = %d (the crop is a window of the frame)", c.enc.res,
                   c.frame);
  if (c.ddim_steps > c.T)
    return sp_errf(err, "policy: ddim_steps = %d exceeds diffusion_steps = %d", c.ddim_steps, c.T);
  if (c.head == SP_POLICY_HEAD_DIFFUSION && sp_dp1d_cfg_check(&c.unet, sub))
    return sp_errf(err, "policy U-Net: %s", sub);
  if (c.head == SP_POLICY_HEAD_MLP && c.unet.horizon * SP_POLICY_ADIM > 8192)
    return sp_errf(err, "policy: horizon = %d is too long for the mlp head", c.unet.horizon);
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * model */

static void limits_to(double *scale, double *off, const double *lo, const double *hi, int n) {
  for (int j = 0; j < n; j++) {  // data/sampler.c's sp_action_norm_init, for any n
    double range = hi[j] - lo[j];
    scale[j] = range < 1e-4 ? 1.0 : 2.0 / range;
    off[j] = -1.0 - scale[j] * lo[j];
  }
}

void sp_policy_set_limits(sp_policy *m, const sp_policy_limits *lim) {
  m->lim = *lim;
  limits_to(m->a_scale, m->a_off, lim->act_min, lim->act_max, SP_POLICY_ADIM);
  limits_to(m->e_scale, m->e_off, lim->ee_min, lim->ee_max, SP_POLICY_EE_MAX);
}

int sp_policy_init(sp_policy *m, const sp_policy_cfg *c, unsigned seed, char *err) {
  memset(m, 0, sizeof *m);
  nn_params_init(&m->ps);
  if (sp_policy_cfg_check(c, err)) return -1;
  m->cfg = *c;
  sp_policy_cfg_derive(&m->cfg);
  const sp_policy_cfg *k = &m->cfg;
  nn_params *ps = &m->ps;
  if (sp_resnet_init(&m->enc, &k->enc, ps, "enc", err)) goto fail;
  m->feat = m->enc.feat;
  m->gdim = m->feat + k->ee_dim;
  m->nee = 3 + k->ee_grip;
  SP_ASSERT(m->gdim == k->unet.gdim);
  m->e0w = nn_params_add4(ps, "ee.0.weight", k->ee_hidden, m->nee, 0, 0);
  m->e0b = nn_params_add4(ps, "ee.0.bias", k->ee_hidden, 0, 0, 0);
  m->e2w = nn_params_add4(ps, "ee.2.weight", k->ee_dim, k->ee_hidden, 0, 0);
  m->e2b = nn_params_add4(ps, "ee.2.bias", k->ee_dim, 0, 0, 0);
  m->h0w = m->h0b = m->h2w = m->h2b = m->h4w = m->h4b = NN_NONE;
  if (k->head == SP_POLICY_HEAD_DIFFUSION) {
    if (sp_dp1d_init(&m->unet, &k->unet, ps, "unet", err)) goto fail;
  } else {
    int mh = k->mlp_hidden;
    m->h0w = nn_params_add4(ps, "head.0.weight", mh, m->gdim, 0, 0);
    m->h0b = nn_params_add4(ps, "head.0.bias", mh, 0, 0, 0);
    m->h2w = nn_params_add4(ps, "head.2.weight", mh, mh, 0, 0);
    m->h2b = nn_params_add4(ps, "head.2.bias", mh, 0, 0, 0);
    m->h4w = nn_params_add4(ps, "head.4.weight", k->unet.horizon * SP_POLICY_ADIM, mh, 0, 0);
    m->h4b = nn_params_add4(ps, "head.4.bias", k->unet.horizon * SP_POLICY_ADIM, 0, 0, 0);
  }
  if (nn_sched_init(&m->sched, NN_SCHED_SQUAREDCOS_CAP_V2, k->T, 0, 0, err)) goto fail;
  if (nn_params_alloc(ps, err)) goto fail;
  nn_params_init_default(ps, seed);
  sp_policy_limits id;
  for (int j = 0; j < SP_POLICY_ADIM; j++) id.act_min[j] = -1, id.act_max[j] = 1;
  for (int j = 0; j < SP_POLICY_EE_MAX; j++) id.ee_min[j] = -1, id.ee_max[j] = 1;
  sp_policy_set_limits(m, &id);
  return 0;
fail:
  sp_policy_free(m);
  return -1;
}

void sp_policy_free(sp_policy *m) {
  sp_resnet_free(&m->enc);
  nn_params_free(&m->ps);
}

size_t sp_policy_nparams(const sp_policy *m) {
  size_t n = 0;
  for (int i = 0; i < m->ps.n; i++) n += m->ps.p[i].numel;
  return n;
}

double sp_policy_act_flops(const sp_policy *m) {
  const sp_policy_cfg *c = &m->cfg;
  double f = sp_resnet_flops(&m->enc, 1) + 2.0 * (m->nee * c->ee_hidden + c->ee_hidden * c->ee_dim);
  if (c->head == SP_POLICY_HEAD_DIFFUSION) return f + c->ddim_steps * sp_dp1d_flops(&m->unet, 1);
  int mh = c->mlp_hidden;
  return f + 2.0 * ((double)m->gdim * mh + (double)mh * mh + (double)mh * c->unet.horizon * SP_POLICY_ADIM);
}

/* ---------------------------------------------------------------------------------------------
 * config JSON with the limits */

static void add_array(cJSON *o, const char *key, const double *v, int n) {
  cJSON *a = cJSON_AddArrayToObject(o, key);
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
}

char *sp_policy_config_json(const sp_policy *m) {
  char *base = sp_cf_to_json(sp_policy_fields, &m->cfg);
  cJSON *o = cJSON_Parse(base);
  free(base);
  SP_ASSERT(o);
  cJSON *l = cJSON_AddObjectToObject(o, "limits");
  add_array(l, "act_min", m->lim.act_min, SP_POLICY_ADIM);
  add_array(l, "act_max", m->lim.act_max, SP_POLICY_ADIM);
  add_array(l, "ee_min", m->lim.ee_min, m->nee);
  add_array(l, "ee_max", m->lim.ee_max, m->nee);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static int get_array(const cJSON *l, const char *key, double *v, int n, char *err) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(l, key);
  if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
    return sp_errf(err, "policy config: limits.%s is not an array of %d numbers", key, n);
  for (int i = 0; i < n; i++) {
    const cJSON *x = cJSON_GetArrayItem(a, i);
    if (!cJSON_IsNumber(x)) return sp_errf(err, "policy config: limits.%s[%d] is not a number", key, i);
    v[i] = x->valuedouble;
  }
  return 0;
}

int sp_policy_config_parse(const char *json, sp_policy_cfg *c, sp_policy_limits *lim, char *err) {
  cJSON *o = cJSON_Parse(json ? json : "");
  if (!o || !cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return sp_errf(err, "policy config: not a JSON object");
  }
  cJSON *l = cJSON_DetachItemFromObjectCaseSensitive(o, "limits");
  int rc = 0;
  if (!l) rc = sp_errf(err, "policy config: no limits (the action normaliser; not written by sp train policy?)");
  if (!rc) rc = get_array(l, "act_min", lim->act_min, SP_POLICY_ADIM, err);
  if (!rc) rc = get_array(l, "act_max", lim->act_max, SP_POLICY_ADIM, err);
  if (!rc) {  // the fields first: ee_grip says how many end-effector limits there are
    char *rest = cJSON_PrintUnformatted(o);
    rc = sp_cf_from_json(sp_policy_fields, c, rest, err);
    free(rest);
  }
  for (int j = 3; j < SP_POLICY_EE_MAX; j++) lim->ee_min[j] = lim->ee_max[j] = 0;  // unused without ee_grip
  int nee = 3 + (c->ee_grip == 1);
  if (!rc) rc = get_array(l, "ee_min", lim->ee_min, nee, err);
  if (!rc) rc = get_array(l, "ee_max", lim->ee_max, nee, err);
  cJSON_Delete(l);
  cJSON_Delete(o);
  return rc;
}

int sp_policy_load(sp_policy *m, const char *path, char *err) {
  memset(m, 0, sizeof *m);
  sp_ckpt_info info;
  if (sp_ckpt_info_read(path, &info, err)) return -1;
  int rc = 0;
  sp_policy_cfg c;
  sp_policy_limits lim;
  sp_policy_cfg_preset(&c, SP_PRESET_CPU);
  if (strcmp(info.model, "policy")) rc = sp_errf(err, "%s holds a '%s' model, not a policy", path, info.model);
  if (!rc && sp_policy_config_parse(info.config, &c, &lim, err)) rc = -1;
  sp_ckpt_info_free(&info);
  if (rc) return -1;
  char sub[SP_ERRLEN];
  if (sp_policy_init(m, &c, 0, sub)) return sp_errf(err, "%s: %s", path, sub);
  sp_policy_set_limits(m, &lim);
  if (sp_model_load(path, &m->ps, "policy", NULL, err)) {
    sp_policy_free(m);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------------
 * workspace: carve() runs twice, measuring (arena base NULL) then for real */

static void carve(sp_policy_ws *w, const sp_policy *m) {
  const sp_policy_cfg *c = &m->cfg;
  sp_ws *b = &w->base;
  size_t B = (size_t)b->maxB, eh = (size_t)c->ee_hidden, ed = (size_t)c->ee_dim, mh = (size_t)c->mlp_hidden;
  size_t per = (size_t)c->unet.horizon * SP_POLICY_ADIM, R = (size_t)c->enc.res;
  int mlp = c->head == SP_POLICY_HEAD_MLP, tr = b->train;
  w->feat = sp_ws_floats(b, B * m->feat);
  w->ez = sp_ws_floats(b, B * eh);
  w->ezm = sp_ws_floats(b, B * eh);
  w->ee = sp_ws_floats(b, B * ed);
  w->g = sp_ws_floats(b, B * m->gdim);
  w->hz1 = mlp ? sp_ws_floats(b, B * mh) : NULL;
  w->hm1 = mlp ? sp_ws_floats(b, B * mh) : NULL;
  w->hz2 = mlp ? sp_ws_floats(b, B * mh) : NULL;
  w->hm2 = mlp ? sp_ws_floats(b, B * mh) : NULL;
  w->dg = tr ? sp_ws_floats(b, B * m->gdim) : NULL;
  w->dfeat = tr ? sp_ws_floats(b, B * m->feat) : NULL;
  w->dee = tr ? sp_ws_floats(b, B * ed) : NULL;
  w->dezm = tr ? sp_ws_floats(b, B * eh) : NULL;
  w->dez = tr ? sp_ws_floats(b, B * eh) : NULL;
  w->dhm1 = tr && mlp ? sp_ws_floats(b, B * mh) : NULL;
  w->dhz1 = tr && mlp ? sp_ws_floats(b, B * mh) : NULL;
  w->dhm2 = tr && mlp ? sp_ws_floats(b, B * mh) : NULL;
  w->dhz2 = tr && mlp ? sp_ws_floats(b, B * mh) : NULL;
  w->img = sp_ws_floats(b, B * SP_POLICY_IN_CH * R * R);
  w->een = sp_ws_floats(b, B * m->nee);
  w->x = sp_ws_floats(b, B * per);
  w->mo = sp_ws_floats(b, B * per);
  w->x0 = sp_ws_floats(b, B * per);
  w->eps = sp_ws_floats(b, B * per);
  w->nz = sp_ws_floats(b, B * per);
  w->y = sp_ws_floats(b, B * per);
  w->tb = sp_ws_floats(b, B);
}

int sp_policy_ws_init(sp_policy_ws *w, const sp_policy *m, int maxB, int train, char *err) {
  memset(w, 0, sizeof *w);
  if (maxB < 1) return sp_errf(err, "policy workspace: batch %d, want >= 1", maxB);
  if (sp_resnet_ws_init(&w->enc, &m->enc, maxB, train, err)) return -1;
  if (m->cfg.head == SP_POLICY_HEAD_DIFFUSION && sp_dp1d_ws_init(&w->unet, &m->unet, maxB, train, err)) {
    sp_policy_ws_free(w);
    return -1;
  }
  w->base.maxB = maxB;
  w->base.train = !!train;
  carve(w, m);
  if (sp_ws_commit(&w->base, err)) {
    sp_policy_ws_free(w);
    return -1;
  }
  w->base.ar.used = 0;
  carve(w, m);
  return 0;
}

void sp_policy_ws_free(sp_policy_ws *w) {
  sp_resnet_ws_free(&w->enc);
  sp_dp1d_ws_free(&w->unet);
  sp_ws_free(&w->base);
  memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------------------------------------
 * forward and backward */

void sp_policy_encode(const sp_policy *m, sp_policy_ws *w, const float *img, const float *ee, int B) {
  /* img (B, 6, R, R), ee (B, nee) -> g (B, gdim) = [resnet(img) | mlp(ee)] */
  const sp_policy_cfg *c = &m->cfg;
  SP_ASSERT(B >= 1 && B <= w->base.maxB);
  w->B = B;
  w->ee_in = ee;
  sp_resnet_forward(&m->enc, &m->ps, &w->enc, w->feat, img, B);
  nn_linear_forward(w->ez, ee, P(m->e0w), P(m->e0b), B, m->nee, c->ee_hidden);
  nn_act_forward(w->ezm, w->ez, (size_t)B * c->ee_hidden, NN_ACT_MISH);
  nn_linear_forward(w->ee, w->ezm, P(m->e2w), P(m->e2b), B, c->ee_hidden, c->ee_dim);
  nn_concat_forward(w->g, w->feat, w->ee, B, m->feat, c->ee_dim, 1);
}

/* the mlp head: g (B, gdim) -> out (B, H * 4) */
static void mlp_forward(const sp_policy *m, sp_policy_ws *w, float *out, int B) {
  const sp_policy_cfg *c = &m->cfg;
  int mh = c->mlp_hidden;
  size_t n = (size_t)B * mh;
  nn_linear_forward(w->hz1, w->g, P(m->h0w), P(m->h0b), B, m->gdim, mh);
  nn_act_forward(w->hm1, w->hz1, n, NN_ACT_MISH);
  nn_linear_forward(w->hz2, w->hm1, P(m->h2w), P(m->h2b), B, mh, mh);
  nn_act_forward(w->hm2, w->hz2, n, NN_ACT_MISH);
  nn_linear_forward(out, w->hm2, P(m->h4w), P(m->h4b), B, mh, c->unet.horizon * SP_POLICY_ADIM);
}

void sp_policy_forward(const sp_policy *m, sp_policy_ws *w, float *out, const float *x, const float *t,
                       const float *img, const float *ee, int B) {
  /* x (B, H, 4), t (B), img (B, 6, R, R), ee (B, nee) -> out (B, H, 4) */
  sp_policy_encode(m, w, img, ee, B);
  if (m->cfg.head == SP_POLICY_HEAD_DIFFUSION) sp_dp1d_forward(&m->unet, &m->ps, &w->unet, out, x, t, w->g, B);
  else mlp_forward(m, w, out, B);
}

void sp_policy_backward(sp_policy *m, sp_policy_ws *w, const float *dout, int B) {
  /* dout (B, H, 4) -> ps.grad += */
  const sp_policy_cfg *c = &m->cfg;
  SP_ASSERT(w->base.train);  // a workspace made with train = 1
  SP_ASSERT(B == w->B);      // after a forward of the same batch
  SP_ASSERT(m->ps.grad);
  nn_params *ps = &m->ps;
  size_t Bz = (size_t)B;
  int eh = c->ee_hidden, ed = c->ee_dim;
  nn_zero(w->dg, Bz * m->gdim);
  if (c->head == SP_POLICY_HEAD_DIFFUSION) {
    sp_dp1d_backward(&m->unet, ps, &w->unet, w->dg, dout, B);
  } else {
    int mh = c->mlp_hidden;
    size_t n = Bz * mh;
    nn_zero(w->dhm2, n);
    nn_zero(w->dhz2, n);
    nn_zero(w->dhm1, n);
    nn_zero(w->dhz1, n);
    nn_linear_backward(w->dhm2, G(m->h4w), G(m->h4b), dout, w->hm2, P(m->h4w), B, mh, c->unet.horizon * SP_POLICY_ADIM);
    nn_act_backward(w->dhz2, w->dhm2, w->hz2, n, NN_ACT_MISH);
    nn_linear_backward(w->dhm1, G(m->h2w), G(m->h2b), w->dhz2, w->hm1, P(m->h2w), B, mh, mh);
    nn_act_backward(w->dhz1, w->dhm1, w->hz1, n, NN_ACT_MISH);
    nn_linear_backward(w->dg, G(m->h0w), G(m->h0b), w->dhz1, w->g, P(m->h0w), B, m->gdim, mh);
  }
  /* g = [feat | ee] */
  nn_zero(w->dfeat, Bz * m->feat);
  nn_zero(w->dee, Bz * ed);
  nn_concat_backward(w->dfeat, w->dee, w->dg, B, m->feat, ed, 1);
  nn_zero(w->dezm, Bz * eh);
  nn_zero(w->dez, Bz * eh);
  nn_linear_backward(w->dezm, G(m->e2w), G(m->e2b), w->dee, w->ezm, P(m->e2w), B, eh, ed);
  nn_act_backward(w->dez, w->dezm, w->ez, Bz * eh, NN_ACT_MISH);
  nn_linear_backward(NULL, G(m->e0w), G(m->e0b), w->dez, w->ee_in, P(m->e0w), B, m->nee, eh);
  sp_resnet_backward(&m->enc, ps, &w->enc, w->dfeat, B);
}

/* ---------------------------------------------------------------------------------------------
 * inference */

void sp_policy_predict(const sp_policy *m, sp_policy_ws *w, float *out, const float *img, const float *ee,
                      const float *noise, int B) {
  /* img (B, 6, R, R), ee (B, nee), noise (B, H, 4) -> out (B, H, 4) normalised */
  const sp_policy_cfg *c = &m->cfg;
  sp_policy_encode(m, w, img, ee, B);
  if (c->head == SP_POLICY_HEAD_MLP) {
    mlp_forward(m, w, out, B);
    return;
  }
  int n = B * c->unet.horizon * SP_POLICY_ADIM, S = c->ddim_steps;
  nn_pred pred = c->target == SP_POLICY_TARGET_X0 ? NN_PRED_X0 : NN_PRED_EPS;
  memcpy(w->x, noise, (size_t)n * sizeof(float));
  int ts[NN_SCHED_MAX_T + 1];
  nn_ddim_timesteps(ts, S, m->sched.T);
  for (int i = 0; i < S; i++) {
    for (int b = 0; b < B; b++) w->tb[b] = (float)ts[i];
    sp_dp1d_forward(&m->unet, &m->ps, &w->unet, w->mo, w->x, w->tb, w->g, B);
    float *dst = i + 1 == S ? out : w->x;
    nn_ddim_step(dst, w->mo, w->x, NULL, &m->sched, ts[i], ts[i + 1], 0.f, n, pred, 1, w->x0, w->eps);
  }
}

void sp_policy_stack(const sp_policy *m, const float *cur, const float *goal, int y0, int x0, float *img) {
  /* cur, goal (3, F, F) -> img (6, R, R), the window at (y0, x0) */
  const int F = m->cfg.frame, R = m->cfg.enc.res;
  SP_ASSERT(y0 >= 0 && x0 >= 0 && y0 + R <= F && x0 + R <= F);
  for (int k = 0; k < SP_POLICY_IN_CH; k++) {
    const float *src = (k < 3 ? cur : goal) + (size_t)(k % 3) * F * F;
    for (int y = 0; y < R; y++)
      memcpy(img + ((size_t)k * R + y) * R, src + (size_t)(y0 + y) * F + x0, (size_t)R * sizeof(float));
  }
}

void sp_policy_norm_ee(const sp_policy *m, const double ee[SP_POLICY_EE_MAX], float *out) {
  for (int j = 0; j < m->nee; j++) out[j] = (float)(ee[j] * m->e_scale[j] + m->e_off[j]);
}

void sp_policy_unnorm_actions(const sp_policy *m, const float *x, double *out) {
  int n = m->cfg.unet.horizon;
  for (int h = 0; h < n; h++)
    for (int j = 0; j < SP_POLICY_ADIM; j++)
      out[h * SP_POLICY_ADIM + j] = ((double)x[h * SP_POLICY_ADIM + j] - m->a_off[j]) / m->a_scale[j];
}

void sp_policy_act(const sp_policy *m, sp_policy_ws *w, const uint8_t *cur_rgb, const uint8_t *goal_rgb,
                   const double ee[SP_POLICY_EE_MAX], unsigned seed, double *actions) {
  /* cur, goal (F, F, 3) uint8 -> actions (H, 4) */
  const int F = m->cfg.frame, R = m->cfg.enc.res, o = (F - R) / 2;
  for (int k = 0; k < SP_POLICY_IN_CH; k++) {
    const uint8_t *src = k < 3 ? cur_rgb : goal_rgb;
    float *dst = w->img + (size_t)k * R * R;
    for (int y = 0; y < R; y++)
      for (int x = 0; x < R; x++) dst[y * R + x] = src[((size_t)(o + y) * F + o + x) * 3 + k % 3] / 127.5f - 1.0f;
  }
  sp_policy_norm_ee(m, ee, w->een);
  int n = m->cfg.unet.horizon * SP_POLICY_ADIM;
  sp_mt19937 r;
  sp_mt_seed(&r, seed);
  for (int i = 0; i < n; i++) w->nz[i] = (float)sp_mt_normal(&r);
  sp_policy_predict(m, w, w->y, w->img, w->een, w->nz, 1);
  sp_policy_unnorm_actions(m, w->y, actions);
}
