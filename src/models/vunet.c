/* vunet.c: the video diffusion U-Net (contract and network in vunet.h).
 *
 * Activations live in NCTHW order (B, C, T, H, W), T = F frames in the factorised layout and
 * T = 1 in the stacked one, so GroupNorm, the time-embedding add, skip concatenation, 1x1 convs
 * and the temporal convs work on them directly. The per-frame 2D convs and the per-frame
 * attention need the conv layout (B*T, C, H, W): their inputs are converted
 * (nn_frames_to_batch) and kept for backward, their outputs converted back through one shared
 * transient buffer (tmp). In the stacked layout both orders coincide and nothing is converted. */
#include "models/vunet.h"
#include "models/vunet_internal.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define P(o) (ps->data + (o))
#define G(o) (ps->grad + (o))

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* ---------------------------------------------------------------------------------------------
 * parameters */

static size_t padd(nn_params *ps, const char *pre, const char *suf, int64_t d0, int64_t d1, int64_t d2,
                   int64_t d3) {
  char name[NN_NAME_MAX];
  int n = snprintf(name, sizeof name, "%s%s", pre, suf);
  SP_ASSERT(n < (int)sizeof name);
  return nn_params_add4(ps, name, d0, d1, d2, d3);
}

/* "<name>.weight/.bias" and, factorised, "<name>_t.weight/.bias" */
static void conv_init(sp_vunet_conv *cv, nn_params *ps, const char *name, int cin, int cout, int stride,
                      int fact) {
  cv->cin = cin;
  cv->cout = cout;
  cv->stride = stride;
  cv->w = padd(ps, name, ".weight", cout, cin, 3, 3);
  cv->b = padd(ps, name, ".bias", cout, 0, 0, 0);
  cv->tw = cv->tb = NN_NONE;
  if (fact) {
    cv->tw = padd(ps, name, "_t.weight", cout, cout, 3, 0);
    cv->tb = padd(ps, name, "_t.bias", cout, 0, 0, 0);
  }
}

static void res_init(sp_vunet_res *v, nn_params *ps, const char *pre, int cin, int cout, const sp_vunet_cfg *c,
                     int fact) {
  nn_resblock_init(&v->r, ps, pre, cin, cout, c->tdim, c->groups);
  v->sw = v->sb = NN_NONE;
  if (sp_vunet_cfg_scale_shift(c)) {
    v->sw = padd(ps, pre, ".scale.weight", cout, c->tdim, 0, 0);
    v->sb = padd(ps, pre, ".scale.bias", cout, 0, 0, 0);
  }
  v->tw1 = v->tb1 = v->tw2 = v->tb2 = NN_NONE;
  if (fact) {
    v->tw1 = padd(ps, pre, ".c1_t.weight", cout, cout, 3, 0);
    v->tb1 = padd(ps, pre, ".c1_t.bias", cout, 0, 0, 0);
    v->tw2 = padd(ps, pre, ".c2_t.weight", cout, cout, 3, 0);
    v->tb2 = padd(ps, pre, ".c2_t.bias", cout, 0, 0, 0);
  }
}

static void cond_init(sp_vunet *m, nn_params *ps) {
  const sp_vunet_cfg *c = &m->cfg;
  int P = c->plan_dim, D = c->text_dim, C = m->Cm;
  m->typew = m->lnw = m->lnb = m->dv0w = m->dv0b = m->dv2w = m->dv2b = NN_NONE;
  m->xnw = m->xnb = m->xqw = m->xqb = m->xkw = m->xkb = m->xvw = m->xvb = m->xow = m->xob = m->xal = NN_NONE;
  m->ntok = 0;
  if (c->cond == SP_VCOND_DISTANCE) {
    m->dv0w = nn_params_add4(ps, "dist.0.weight", 4 * P, SP_VCOND_DVEC, 0, 0);
    m->dv0b = nn_params_add4(ps, "dist.0.bias", 4 * P, 0, 0, 0);
    m->dv2w = nn_params_add4(ps, "dist.2.weight", c->tdim, 4 * P, 0, 0);
    m->dv2b = nn_params_add4(ps, "dist.2.bias", c->tdim, 0, 0, 0);
  }
  if (c->cond != SP_VCOND_PLAN && c->cond != SP_VCOND_PLAN_LOCAL) return;
  sp_planenc_init(&m->pe, ps, "plan", P, D);
  if (c->cond == SP_VCOND_PLAN) m->typew = nn_params_add4(ps, "plan.type.weight", 2, D, 0, 0);
  m->lnw = nn_params_add4(ps, "plan.norm.weight", D, 0, 0, 0);
  m->lnb = nn_params_add4(ps, "plan.norm.bias", D, 0, 0, 0);
  m->ntok = c->cond == SP_VCOND_PLAN ? m->ntxt + SP_PLAN_MAX : SP_PLAN_MAX;
  if (c->cond != SP_VCOND_PLAN_LOCAL) return;
  m->xnw = nn_params_add4(ps, "mid.xattn.norm.weight", C, 0, 0, 0);
  m->xnb = nn_params_add4(ps, "mid.xattn.norm.bias", C, 0, 0, 0);
  m->xqw = nn_params_add4(ps, "mid.xattn.q.weight", C, C, 0, 0);
  m->xqb = nn_params_add4(ps, "mid.xattn.q.bias", C, 0, 0, 0);
  m->xkw = nn_params_add4(ps, "mid.xattn.k.weight", C, D, 0, 0);
  m->xkb = nn_params_add4(ps, "mid.xattn.k.bias", C, 0, 0, 0);
  m->xvw = nn_params_add4(ps, "mid.xattn.v.weight", C, D, 0, 0);
  m->xvb = nn_params_add4(ps, "mid.xattn.v.bias", C, 0, 0, 0);
  m->xow = nn_params_add4(ps, "mid.xattn.o.weight", C, C, 0, 0);
  m->xob = nn_params_add4(ps, "mid.xattn.o.bias", C, 0, 0, 0);
  m->xal = nn_params_add4(ps, "mid.xattn.alpha", 1, 0, 0, 0);
}

int sp_vunet_init(sp_vunet *m, const sp_vunet_cfg *c, unsigned seed, char *err) {
  memset(m, 0, sizeof *m);
  nn_params_init(&m->ps);
  if (sp_vunet_cfg_check(c, err)) return -1;
  int clip = c->text_enc == SP_VUNET_TEXT_CLIP;
  if (clip && !c->clip_n)
    return sp_errf(err, "vunet: text_enc clip without a CLIP feature cache (sp train video --clip-file FILE makes it)");
  m->cfg = *c;
  m->cpw = m->cpb = m->cache = NN_NONE;
  m->ntxt = SP_TEXT_WORDS;
  for (int i = 0; clip && i < c->clip_n; i++)
    if (c->clip_len[i] > m->clip_tok) m->clip_tok = c->clip_len[i];
  if (clip) m->ntxt = m->clip_tok;
  int fact = c->layout == SP_VUNET_FACTORISED;
  m->T = fact ? c->frames : 1;
  m->cin = fact ? 6 : 3 * c->frames + (c->video_cond ? 3 * c->frames : 3);
  m->cout = fact ? 3 : 3 * c->frames;
  nn_params *ps = &m->ps;
  char pre[64], nm[96];
  m->t0w = nn_params_add4(ps, "temb.0.weight", c->tdim, c->ch, 0, 0);
  m->t0b = nn_params_add4(ps, "temb.0.bias", c->tdim, 0, 0, 0);
  m->t2w = nn_params_add4(ps, "temb.2.weight", c->tdim, c->tdim, 0, 0);
  m->t2b = nn_params_add4(ps, "temb.2.bias", c->tdim, 0, 0, 0);
  if (clip) {
    m->tew = NN_NONE;
    m->cpw = nn_params_add4(ps, "text.clip.weight", c->text_dim, c->clip_dim, 0, 0);
    m->cpb = nn_params_add4(ps, "text.clip.bias", c->text_dim, 0, 0, 0);
  } else {
    m->tew = nn_params_add4(ps, "text.embed.weight", SP_TEXT_VOCAB, c->text_dim, 0, 0);
  }
  m->tpw = nn_params_add4(ps, "text.proj.weight", c->tdim, c->text_dim, 0, 0);
  m->tpb = nn_params_add4(ps, "text.proj.bias", c->tdim, 0, 0, 0);
  int C0 = c->ch * c->mult[0];
  conv_init(&m->inc, ps, "inc", m->cin, C0, 1, fact);
  /* encoder: skip channels and sides as they are pushed */
  int ch = C0, H = c->res, ds = 1, skc[SP_VUNET_MAXBLK + 1], skh[SP_VUNET_MAXBLK + 1], ns = 0;
  skc[ns] = ch;
  skh[ns++] = H;
  for (int l = 0; l < c->nmult; l++) {
    int co = c->ch * c->mult[l];
    for (int k = 0; k < c->nres; k++) {
      SP_ASSERT(m->nenc < SP_VUNET_MAXBLK);
      sp_vunet_blk *b = &m->enc[m->nenc];
      snprintf(pre, sizeof pre, "down.%d", m->nenc++);
      b->H = H;
      b->cin = ch;
      b->cout = co;
      snprintf(nm, sizeof nm, "%s.res", pre);
      res_init(&b->res, ps, nm, ch, co, c, fact);
      ch = co;
      if (ds >= c->attn_min_ds) {
        b->has_attn = 1;
        snprintf(nm, sizeof nm, "%s.attn", pre);
        nn_attnblock_init(&b->attn, ps, nm, ch, ch / c->head_ch, c->groups);
      }
      skc[ns] = ch;
      skh[ns++] = H;
    }
    if (l < c->nmult - 1) {
      SP_ASSERT(m->nenc < SP_VUNET_MAXBLK);
      sp_vunet_blk *b = &m->enc[m->nenc];
      snprintf(pre, sizeof pre, "down.%d", m->nenc++);
      b->is_down = 1;
      b->H = H;
      b->cin = b->cout = ch;
      snprintf(nm, sizeof nm, "%s.op", pre);
      conv_init(&b->conv, ps, nm, ch, ch, 2, fact);
      H /= 2;
      ds *= 2;
      skc[ns] = ch;
      skh[ns++] = H;
    }
  }
  /* middle */
  m->Hm = H;
  m->Cm = ch;
  res_init(&m->mid1, ps, "mid.res1", ch, ch, c, fact);
  nn_attnblock_init(&m->mida, ps, "mid.attn", ch, ch / c->head_ch, c->groups);
  res_init(&m->mid2, ps, "mid.res2", ch, ch, c, fact);
  /* decoder */
  for (int l = c->nmult - 1; l >= 0; l--) {
    int co = c->ch * c->mult[l];
    for (int k = 0; k <= c->nres; k++) {
      SP_ASSERT(m->ndec < SP_VUNET_MAXBLK && ns > 0);
      sp_vunet_blk *b = &m->dec[m->ndec];
      snprintf(pre, sizeof pre, "up.%d", m->ndec++);
      b->skip = --ns;
      SP_ASSERT(skh[ns] == H);
      b->H = H;
      b->cin = ch + skc[ns];
      b->cout = co;
      snprintf(nm, sizeof nm, "%s.res", pre);
      res_init(&b->res, ps, nm, b->cin, co, c, fact);
      ch = co;
      if (ds >= c->attn_min_ds) {
        b->has_attn = 1;
        snprintf(nm, sizeof nm, "%s.attn", pre);
        nn_attnblock_init(&b->attn, ps, nm, ch, ch / c->head_ch, c->groups);
      }
      if (l > 0 && k == c->nres) {
        b->has_up = 1;
        snprintf(nm, sizeof nm, "%s.conv", pre);
        conv_init(&b->conv, ps, nm, ch, ch, 1, fact);
        H *= 2;
        ds /= 2;
      }
    }
  }
  SP_ASSERT(ns == 0 && H == c->res && ch == C0);
  m->onw = nn_params_add4(ps, "outn.weight", ch, 0, 0, 0);
  m->onb = nn_params_add4(ps, "outn.bias", ch, 0, 0, 0);
  conv_init(&m->outc, ps, "outc", ch, m->cout, 1, fact);
  /* the conditions beyond the text, registered last: the text variant's table, and every
   * earlier parameter's initial value, stay what they were */
  cond_init(m, ps);
  if (clip) m->cache = nn_params_add4(ps, "text.clip_cache", c->clip_n, m->clip_tok, c->clip_dim, 0);
  if (nn_params_alloc(ps, err)) {
    nn_params_free(ps);
    return -1;
  }
  nn_params_init_default(ps, seed);
  /* temporal convs start as the identity (centre tap 1), zero bias */
  for (int i = 0; i < ps->n; i++) {
    const nn_param *p = &ps->p[i];
    size_t len = strlen(p->name);
    if (len < 9 || strcmp(p->name + len - 9, "_t.weight")) continue;
    float *wt = ps->data + p->offset;
    int64_t co = p->shape[0], ci = p->shape[1];
    memset(wt, 0, p->numel * sizeof(float));
    for (int64_t o = 0; o < co && o < ci; o++) wt[(o * ci + o) * 3 + 1] = 1.f;
  }
  if (m->xal != NN_NONE) ps->data[m->xal] = 0.f;  // GLIGEN: the gate starts closed
  if (m->cache != NN_NONE) memset(ps->data + m->cache, 0, sizeof(float) * (size_t)c->clip_n * m->clip_tok * c->clip_dim);
  nn_conv2d_set_winograd(c->winograd);
  return 0;
}

void sp_vunet_free(sp_vunet *m) {
  nn_params_free(&m->ps);
  memset(m, 0, sizeof *m);
}

size_t sp_vunet_nparams(const sp_vunet *m) {
  size_t n = 0;
  for (int i = 0; i < m->ps.n; i++)
    if (m->ps.p[i].offset != m->cache) n += m->ps.p[i].numel;
  return n;
}

void sp_vunet_clip_fill(sp_vunet *m, int row, const float *tokens) {
  const sp_vunet_cfg *c = &m->cfg;
  SP_ASSERT(m->cache != NN_NONE && row >= 0 && row < c->clip_n);
  size_t per = (size_t)m->clip_tok * c->clip_dim, n = (size_t)c->clip_len[row] * c->clip_dim;
  float *dst = m->ps.data + m->cache + (size_t)row * per;
  nn_weights_thaw(dst, per);
  memcpy(dst, tokens, n * sizeof(float));
  memset(dst + n, 0, (per - n) * sizeof(float));
}

/* ---------------------------------------------------------------------------------------------
 * workspace: one walk over the network carves the buffers, run once measuring and once for
 * real. Train: every activation backward needs stays (workspace arena); the gradients of
 * activations come from one region inside it (one nn_zero clears them). Inference: only the
 * outputs of the encoder/decoder entries (the skips and the next entry's input) stay; everything
 * inside an entry (ResBlock and attention internals, concat, converted inputs) comes from a pool
 * region that every entry reuses from its start. */

typedef struct {
  sp_ws *ws;
  nn_arena gar;   // gradients of activations (train)
  nn_arena pool;  // entry internals (inference)
  size_t pool_max;
  int train, B, T;
  size_t tmp_n;   // floats of the shared transient
} carver;

static float *ca(carver *k, size_t n) { return sp_ws_floats(k->ws, n); }  // stays
static float *cg(carver *k, size_t n) { return k->train ? nn_arena_floats(&k->gar, n) : NULL; }
static nn_arena *cpool(carver *k) { return k->train ? &k->ws->ar : &k->pool; }
static float *cp(carver *k, size_t n) { return nn_arena_floats(cpool(k), n); }  // entry internal
static float *ckeep(carver *k, size_t n, int final) { return final ? ca(k, n) : cp(k, n); }
static void pool_reset(carver *k) {
  k->pool_max = zmax(k->pool_max, k->pool.used);
  k->pool.used = 0;
}
static void need_tmp(carver *k, size_t n) { k->tmp_n = zmax(k->tmp_n, n); }

static nn_conv2d_dims conv_dims(const sp_vunet_conv *cv, int NB, int Hin) {
  return nn_conv2d_make(NB, cv->cin, Hin, Hin, cv->cout, 3, cv->stride, 1);
}

/* a conv whose conv-layout input the caller provides; Hin its input side; out_alloc 0: the
 * caller's buffer */
static void conv_carve(carver *k, const sp_vunet_conv *cv, sp_vunet_conv_act *a, int Hin, int out_alloc) {
  int B = k->B, T = k->T, Ho = Hin / cv->stride;
  size_t no = (size_t)B * cv->cout * T * Ho * Ho;
  nn_conv2d_dims d = conv_dims(cv, B * T, Hin);
  sp_ws_need_scratch(k->ws, nn_conv2d_scratch(&d));
  a->cf = NULL;
  if (cv->tw != NN_NONE) {
    a->cf = cp(k, no);
    need_tmp(k, no);
    sp_ws_need_scratch(k->ws, nn_tconv_scratch(cv->cout, cv->cout, 3));
    sp_ws_need_work(k->ws, 2 * no + 64);
  }
  a->out = out_alloc ? ca(k, no) : NULL;
}

/* final: the ResBlock's output is its entry's output */
static void res_carve(carver *k, const sp_vunet_res *v, sp_vunet_res_act *ra, int H, int final) {
  const nn_resblock *r = &v->r;
  int B = k->B, T = k->T;
  size_t S = (size_t)H * H, nin = (size_t)B * r->cin * T * S, nout = (size_t)B * r->cout * T * S;
  ra->B = B;
  ra->c1f = ra->c2f = ra->a1b = ra->a2b = ra->esc = ra->g2 = ra->y2 = NULL;
  if (v->tw1 == NN_NONE && v->sw == NN_NONE) {
    nn_resblock_act_alloc(&ra->a, r, cpool(k), B, H, H);
    if (final && !k->train) ra->a.out = ca(k, nout);
    sp_ws_need_scratch(k->ws, nn_resblock_scratch(r, B, H, H));
    sp_ws_need_work(k->ws, nn_resblock_work(r, B, H, H));
    return;
  }
  nn_resblock_act *a = &ra->a;
  memset(a, 0, sizeof *a);
  a->B = B;
  a->H = a->W = H;
  a->m1 = cp(k, (size_t)B * r->groups);
  a->r1 = cp(k, (size_t)B * r->groups);
  a->e = cp(k, (size_t)B * r->cout);
  a->h1 = cp(k, nout);
  a->m2 = cp(k, (size_t)B * r->groups);
  a->r2 = cp(k, (size_t)B * r->groups);
  ra->a1b = cp(k, nin);
  ra->c1f = cp(k, nout);
  ra->a2b = cp(k, nout);
  ra->c2f = cp(k, nout);
  if (v->sw != NN_NONE) {
    ra->esc = cp(k, (size_t)B * r->cout);
    ra->g2 = cp(k, nout);
    ra->y2 = cp(k, nout);
    sp_ws_need_work(k->ws, 3 * zmax(nin, nout) + 2 * (size_t)B * r->cout + 192);
  }
  a->out = ckeep(k, nout, final);
  need_tmp(k, zmax(nin, nout));
  nn_conv2d_dims d1 = nn_conv2d_make(B * T, r->cin, H, H, r->cout, 3, 1, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B * T, r->cout, H, H, r->cout, 3, 1, 1);
  nn_conv2d_dims ds = nn_conv2d_make(B, r->cin, T * H, H, r->cout, 1, 1, 0);
  sp_ws_need_scratch(k->ws, zmax(zmax(nn_conv2d_scratch(&d1), nn_conv2d_scratch(&d2)), nn_conv2d_scratch(&ds)));
  sp_ws_need_scratch(k->ws, nn_tconv_scratch(r->cout, r->cout, 3));
  sp_ws_need_work(k->ws, 2 * zmax(nin, nout) + (size_t)B * r->cout + 128);
}

static void attn_carve(carver *k, const nn_attnblock *b, sp_vunet_attn_act *aa, int H, int final) {
  int B = k->B, T = k->T;
  size_t n = (size_t)B * b->C * T * H * H;
  nn_attnblock_act_alloc(&aa->a, b, cpool(k), B * T, H, H);
  sp_ws_need_scratch(k->ws, nn_attnblock_scratch(b, B * T, H, H));
  if (T > 1) {
    aa->xb = cp(k, n);
    aa->out = ckeep(k, n, final);
    sp_ws_need_work(k->ws, nn_attnblock_work(b, B * T, H, H) + 2 * n + 128);
  } else {
    if (final && !k->train) aa->a.out = ca(k, n);
    aa->xb = NULL;
    aa->out = aa->a.out;
    sp_ws_need_work(k->ws, nn_attnblock_work(b, B * T, H, H));
  }
}

/* the conditions beyond the text: small, all kept */
static void cond_carve(const sp_vunet *m, sp_vunet_ws *w, carver *k) {
  const sp_vunet_cfg *c = &m->cfg;
  int B = k->B, P = c->plan_dim, D = c->text_dim, N = B * SP_PLAN_MAX;
  if (m->cache != NN_NONE) {
    w->crow = (int32_t *)ca(k, (size_t)B);
    if (c->cond != SP_VCOND_PLAN) w->cfm = ca(k, (size_t)B * c->clip_dim);
  }
  if (c->cond == SP_VCOND_TEXT) return;  // the text variant's workspace as it always was
  w->keep = ca(k, (size_t)B);
  if (c->cond == SP_VCOND_DISTANCE) {
    w->dv = ca(k, (size_t)B * SP_VCOND_DVEC);
    w->dz = ca(k, (size_t)B * 4 * P);
    w->dg = ca(k, (size_t)B * 4 * P);
    w->dp = ca(k, (size_t)B * c->tdim);
    w->ddg = cg(k, (size_t)B * 4 * P);
    w->ddz = cg(k, (size_t)B * 4 * P);
  }
  if (!m->ntok) return;
  float *region = ca(k, sp_planenc_act_floats(&m->pe, N, k->train));
  if (region) sp_planenc_act_carve(&w->pa, &m->pe, region, N, k->train);
  w->ptok = ca(k, (size_t)N * D);
  w->tok = ca(k, (size_t)B * m->ntok * D);
  w->tln = ca(k, (size_t)B * m->ntok * D);
  w->lnm = ca(k, (size_t)B * m->ntok);
  w->lnr = ca(k, (size_t)B * m->ntok);
  w->dtok = cg(k, (size_t)B * m->ntok * D);
  w->dtln = cg(k, (size_t)B * m->ntok * D);
  w->dptok = cg(k, (size_t)N * D);
}

/* plan-local: the cross-attention's buffers on the middle activations (B, Cm, T, Hm, Hm) */
static void xattn_carve(const sp_vunet *m, sp_vunet_ws *w, carver *k) {
  int B = k->B, C = m->Cm, L = SP_PLAN_MAX, G = m->cfg.groups;
  size_t TS = (size_t)k->T * m->Hm * m->Hm, n = (size_t)B * C * TS;
  w->xn = cp(k, n);
  w->xm = cp(k, (size_t)B * G);
  w->xr = cp(k, (size_t)B * G);
  w->xq = cp(k, n);
  w->xk = cp(k, (size_t)B * C * L);
  w->xv = cp(k, (size_t)B * C * L);
  w->xo = cp(k, n);
  w->xp = cp(k, n);
  w->xprob = cp(k, (size_t)B * TS * L);
  w->xout = cp(k, n);
  w->dxa = cg(k, n);
  w->dxn = cg(k, n);
  w->dxq = cg(k, n);
  w->dxk = cg(k, (size_t)B * C * L);
  w->dxv = cg(k, (size_t)B * C * L);
  w->dxo = cg(k, n);
  w->dxp = cg(k, n);
  nn_conv2d_dims d = nn_conv2d_make(B, C, (int)TS, 1, C, 1, 1, 0);
  sp_ws_need_scratch(k->ws, nn_conv2d_scratch(&d));
  nn_attn_dims ad = {.B = B, .nh = 1, .hd = C, .Nq = (int)TS, .Nk = L};
  sp_ws_need_scratch(k->ws, nn_attention_scratch(&ad));
}

static void carve(const sp_vunet *m, sp_vunet_ws *w, carver *k) {
  const sp_vunet_cfg *c = &m->cfg;
  int B = k->B, T = k->T, R = c->res, C0 = c->ch * c->mult[0];
  size_t S0 = (size_t)R * R;
  /* time and text */
  w->e0 = ca(k, (size_t)B * c->ch);
  w->z1 = ca(k, (size_t)B * c->tdim);
  w->s1 = ca(k, (size_t)B * c->tdim);
  w->te = ca(k, (size_t)B * c->tdim);
  w->tv = ca(k, (size_t)B * c->text_dim);
  w->tp = ca(k, (size_t)B * c->tdim);
  w->emb = ca(k, (size_t)B * c->tdim);
  w->semb = ca(k, (size_t)B * c->tdim);
  w->ids = (int32_t *)ca(k, (size_t)B * SP_TEXT_WORDS);
  w->dz1 = cg(k, (size_t)B * c->tdim);
  w->ds1 = cg(k, (size_t)B * c->tdim);
  w->dtv = cg(k, (size_t)B * c->text_dim);
  w->demb = cg(k, (size_t)B * c->tdim);
  w->dsemb = cg(k, (size_t)B * c->tdim);
  cond_carve(m, w, k);
  /* input conv */
  pool_reset(k);
  w->xin = cp(k, (size_t)B * T * m->cin * S0);
  conv_carve(k, &m->inc, &w->inc, R, 1);
  w->hs[0] = w->inc.out;
  w->dhs[0] = cg(k, (size_t)B * C0 * T * S0);
  /* encoder */
  for (int i = 0; i < m->nenc; i++) {
    const sp_vunet_blk *b = &m->enc[i];
    sp_vunet_blk_act *a = &w->enc[i];
    memset(a, 0, sizeof *a);
    size_t S = (size_t)b->H * b->H;
    pool_reset(k);
    if (b->is_down) {
      size_t nin = (size_t)B * b->cin * T * S, nout = nin / 4;
      if (T > 1) a->ca.xb = cp(k, nin);
      conv_carve(k, &b->conv, &a->ca, b->H, 1);
      a->out = a->ca.out;
      a->dout = cg(k, nout);
      if (T > 1) sp_ws_need_work(k->ws, 2 * nout + nin + 128);
    } else {
      size_t nout = (size_t)B * b->cout * T * S;
      res_carve(k, &b->res, &a->ra, b->H, !b->has_attn);
      a->out = a->ra.a.out;
      if (b->has_attn) {
        attn_carve(k, &b->attn, &a->aa, b->H, 1);
        a->dres = cg(k, nout);
        a->out = a->aa.out;
      }
      a->dout = cg(k, nout);
    }
    w->hs[i + 1] = a->out;
    w->dhs[i + 1] = a->dout;
  }
  /* middle */
  size_t nm = (size_t)B * m->Cm * T * m->Hm * m->Hm;
  pool_reset(k);
  res_carve(k, &m->mid1, &w->m1a, m->Hm, 0);
  attn_carve(k, &m->mida, &w->maa, m->Hm, 0);
  if (m->xal != NN_NONE) xattn_carve(m, w, k);
  res_carve(k, &m->mid2, &w->m2a, m->Hm, 1);
  w->dm1 = cg(k, nm);
  w->dma = cg(k, nm);
  w->dm2 = cg(k, nm);
  /* decoder */
  for (int i = 0; i < m->ndec; i++) {
    const sp_vunet_blk *b = &m->dec[i];
    sp_vunet_blk_act *a = &w->dec[i];
    memset(a, 0, sizeof *a);
    size_t S = (size_t)b->H * b->H, nout = (size_t)B * b->cout * T * S;
    pool_reset(k);
    a->cat = cp(k, (size_t)B * b->cin * T * S);
    a->dcat = cg(k, (size_t)B * b->cin * T * S);
    res_carve(k, &b->res, &a->ra, b->H, !b->has_attn && !b->has_up);
    a->out = a->ra.a.out;
    if (b->has_attn) {
      attn_carve(k, &b->attn, &a->aa, b->H, !b->has_up);
      a->dres = cg(k, nout);
      a->out = a->aa.out;
    }
    if (b->has_up) {
      size_t nup = 4 * nout;
      if (b->has_attn) a->dattn = cg(k, nout);
      else a->dres = cg(k, nout);
      a->upb = cp(k, nup);
      if (T > 1) need_tmp(k, nup);
      conv_carve(k, &b->conv, &a->ca, 2 * b->H, 1);
      a->out = a->ca.out;
      a->dout = cg(k, nup);
      sp_ws_need_work(k->ws, 2 * nup + 2 * nup + 128);
    } else {
      a->dout = cg(k, nout);
    }
  }
  /* out */
  pool_reset(k);
  w->om = cp(k, (size_t)B * c->groups);
  w->orr = cp(k, (size_t)B * c->groups);
  w->on = cp(k, (size_t)B * T * C0 * S0);
  w->don = cg(k, (size_t)B * T * C0 * S0);
  need_tmp(k, (size_t)B * T * C0 * S0);
  conv_carve(k, &m->outc, &w->outc, R, 0);
  pool_reset(k);
  w->tmp = ca(k, k->tmp_n ? k->tmp_n : 1);
}

int sp_vunet_ws_init(sp_vunet_ws *w, const sp_vunet *m, int maxB, int train, char *err) {
  memset(w, 0, sizeof *w);
  if (maxB < 1) return sp_errf(err, "vunet workspace: batch %d, want >= 1", maxB);
  carver k = {.ws = &w->base, .train = train ? 1 : 0, .B = maxB, .T = m->T};
  /* measure; then the gradient (train) or pool (inference) region */
  carve(m, w, &k);
  size_t gn = k.gar.used / sizeof(float), pn = k.pool_max / sizeof(float);
  if (k.train) sp_ws_floats(&w->base, gn);
  else sp_ws_floats(&w->base, pn);
  if (sp_ws_commit(&w->base, err)) return -1;
  /* carve for real, the region first (each size rounds on its own, so the order does not matter) */
  k.tmp_n = 0;
  k.pool_max = 0;
  if (k.train) {
    float *g = sp_ws_floats(&w->base, gn);
    k.gar = (nn_arena){.base = (char *)g, .cap = gn * sizeof(float), .used = 0};
    w->g0 = g;
    w->gn = gn;
  } else {
    float *p = sp_ws_floats(&w->base, pn);
    k.pool = (nn_arena){.base = (char *)p, .cap = pn * sizeof(float), .used = 0};
  }
  carve(m, w, &k);
  SP_ASSERT(w->base.ar.used == w->base.ar.cap);
  w->base.maxB = maxB;
  w->base.train = k.train;
  w->nthreads = nn_threads();
  return 0;
}

void sp_vunet_ws_free(sp_vunet_ws *w) {
  sp_ws_free(&w->base);
  memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------------------------------------
 * layers */

/* xb (B*T, cin, Hin, Hin) conv layout -> out (B, cout, T, Ho, Ho); factorised: the spatial conv
 * into tmp, to frames layout in a->cf, then the temporal conv */
static void conv_forward(const sp_vunet *m, const sp_vunet_conv *cv, sp_vunet_conv_act *a, float *out,
                         const float *xb, int B, int Hin, float *tmp, float *scratch) {
  const nn_params *ps = &m->ps;
  int T = m->T, Ho = Hin / cv->stride;
  nn_conv2d_dims d = conv_dims(cv, B * T, Hin);
  if (cv->tw == NN_NONE) {
    nn_conv2d_forward(out, xb, P(cv->w), P(cv->b), &d, scratch);
    return;
  }
  nn_conv2d_forward(tmp, xb, P(cv->w), P(cv->b), &d, scratch);
  nn_batch_to_frames(a->cf, tmp, B, cv->cout, T, Ho * Ho);
  nn_tconv_forward(out, a->cf, P(cv->tw), P(cv->tb), B, cv->cout, T, Ho * Ho, cv->cout, 3, scratch);
}

/* dout (B, cout, T, Ho, Ho) -> dxb (conv layout, += ; may be NULL); work: 2 * B*cout*T*Ho^2 */
static void conv_backward(const sp_vunet *m, const sp_vunet_conv *cv, const sp_vunet_conv_act *a,
                          float *dxb, const float *dout, const float *xb, int B, int Hin, float *work,
                          float *scratch) {
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  int T = m->T, Ho = Hin / cv->stride;
  nn_conv2d_dims d = conv_dims(cv, B * T, Hin);
  if (cv->tw == NN_NONE) {
    nn_conv2d_backward(dxb, G(cv->w), G(cv->b), dout, xb, P(cv->w), &d, scratch);
    return;
  }
  size_t n = (size_t)B * cv->cout * T * Ho * Ho;
  float *dcf = work, *dcb = work + n;
  nn_zero(dcf, n);
  nn_tconv_backward(dcf, G(cv->tw), G(cv->tb), dout, a->cf, P(cv->tw), B, cv->cout, T, Ho * Ho, cv->cout, 3,
                    scratch);
  nn_frames_to_batch(dcb, dcf, B, cv->cout, T, Ho * Ho);
  nn_conv2d_backward(dxb, G(cv->w), G(cv->b), dcb, xb, P(cv->w), &d, scratch);
}

/* ResBlock: x (B, cin, T, H, H), semb (B, tdim) -> ra->a.out (B, cout, T, H, H). Stacked with
 * bias conditioning: nn_resblock. Otherwise by hand: per-frame 2D convs, each followed by its
 * temporal conv (factorised) or not (stacked), and the condition as a bias after the first conv or
 * as GroupNorm scale and shift before the second. */
static void res_forward(const sp_vunet *m, const sp_vunet_res *v, sp_vunet_res_act *ra, const float *x,
                        const float *semb, int B, int H, float *tmp, float *scratch) {
  const nn_params *ps = &m->ps;
  const nn_resblock *r = &v->r;
  nn_resblock_act *a = &ra->a;
  a->B = B;
  if (v->tw1 == NN_NONE && v->sw == NN_NONE) {
    nn_resblock_forward(r, ps, a, x, semb, scratch);
    return;
  }
  int T = m->T, S = H * H, TS = T * S;
  size_t nout = (size_t)B * r->cout * TS;
  nn_conv2d_dims d1 = nn_conv2d_make(B * T, r->cin, H, H, r->cout, 3, 1, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B * T, r->cout, H, H, r->cout, 3, 1, 1);
  nn_groupnorm_forward(tmp, a->m1, a->r1, x, P(r->n1w), P(r->n1b), B, r->cin, TS, r->groups, 1e-5f,
                       NN_ACT_SILU);
  nn_frames_to_batch(ra->a1b, tmp, B, r->cin, T, S);
  nn_conv2d_forward(tmp, ra->a1b, P(r->c1w), P(r->c1b), &d1, scratch);
  nn_batch_to_frames(ra->c1f, tmp, B, r->cout, T, S);
  if (v->tw1 != NN_NONE)
    nn_tconv_forward(a->h1, ra->c1f, P(v->tw1), P(v->tb1), B, r->cout, T, S, r->cout, 3, scratch);
  else
    memcpy(a->h1, ra->c1f, nout * sizeof(float));
  nn_linear_forward(a->e, semb, P(r->tw), P(r->tb), B, r->tdim, r->cout);
  if (v->sw == NN_NONE) {
    nn_add_bc_forward(a->h1, a->e, B, r->cout, TS);
    nn_groupnorm_forward(tmp, a->m2, a->r2, a->h1, P(r->n2w), P(r->n2b), B, r->cout, TS, r->groups, 1e-5f,
                         NN_ACT_SILU);
  } else {
    /* y2 = GN2(h1) * (1 + scale) + shift, shift = a->e */
    nn_linear_forward(ra->esc, semb, P(v->sw), P(v->sb), B, r->tdim, r->cout);
    nn_groupnorm_forward(ra->g2, a->m2, a->r2, a->h1, P(r->n2w), P(r->n2b), B, r->cout, TS, r->groups, 1e-5f,
                         NN_ACT_NONE);
    for (int b = 0; b < B; b++)
      for (int c = 0; c < r->cout; c++) {
        size_t o = ((size_t)b * r->cout + c) * TS;
        float sc = 1.f + ra->esc[b * r->cout + c], sh = a->e[b * r->cout + c];
        for (int i = 0; i < TS; i++) ra->y2[o + i] = ra->g2[o + i] * sc + sh;
      }
    nn_act_forward(tmp, ra->y2, nout, NN_ACT_SILU);
  }
  nn_frames_to_batch(ra->a2b, tmp, B, r->cout, T, S);
  nn_conv2d_forward(tmp, ra->a2b, P(r->c2w), P(r->c2b), &d2, scratch);
  nn_batch_to_frames(ra->c2f, tmp, B, r->cout, T, S);
  if (v->tw2 != NN_NONE)
    nn_tconv_forward(a->out, ra->c2f, P(v->tw2), P(v->tb2), B, r->cout, T, S, r->cout, 3, scratch);
  else
    memcpy(a->out, ra->c2f, nout * sizeof(float));
  if (r->skw != NN_NONE) {
    nn_conv2d_dims ds = nn_conv2d_make(B, r->cin, T * H, H, r->cout, 1, 1, 0);
    nn_conv2d_forward_acc(a->out, x, P(r->skw), P(r->skb), &ds, scratch);
  } else {
    nn_add_forward(a->out, a->out, x, (size_t)B * r->cout * TS);
  }
}

/* dx (+=, may be NULL), dsemb (+=) from dout; work: 2 * B*max(cin,cout)*T*S + B*cout (scale-shift:
 * 3 * ... + 2 B*cout) */
static void res_backward(const sp_vunet *m, const sp_vunet_res *v, const sp_vunet_res_act *ra, float *dx,
                         float *dsemb, const float *dout, const float *x, const float *semb, int B, int H,
                         float *work, float *scratch) {
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  const nn_resblock *r = &v->r;
  const nn_resblock_act *a = &ra->a;
  SP_ASSERT(a->B == B);
  if (v->tw1 == NN_NONE && v->sw == NN_NONE) {
    nn_resblock_backward(r, ps, a, dx, dsemb, dout, x, semb, work, scratch);
    return;
  }
  int T = m->T, S = H * H, TS = T * S;
  size_t nin = (size_t)B * r->cin * TS, nout = (size_t)B * r->cout * TS, nmax = zmax(nin, nout);
  float *w1 = work, *w2 = work + nmax, *de = w2 + nmax;
  nn_conv2d_dims d1 = nn_conv2d_make(B * T, r->cin, H, H, r->cout, 3, 1, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B * T, r->cout, H, H, r->cout, 3, 1, 1);
  if (r->skw != NN_NONE) {
    nn_conv2d_dims ds = nn_conv2d_make(B, r->cin, T * H, H, r->cout, 1, 1, 0);
    nn_conv2d_backward(dx, G(r->skw), G(r->skb), dout, x, P(r->skw), &ds, scratch);
  } else if (dx) {
    nn_add_backward(dx, NULL, dout, nout);
  }
  /* second conv: temporal, spatial, then GN2 */
  if (v->tw2 != NN_NONE) {
    nn_zero(w1, nout);
    nn_tconv_backward(w1, G(v->tw2), G(v->tb2), dout, ra->c2f, P(v->tw2), B, r->cout, T, S, r->cout, 3, scratch);
  } else {
    memcpy(w1, dout, nout * sizeof(float));
  }
  nn_frames_to_batch(w2, w1, B, r->cout, T, S);
  nn_zero(w1, nout);
  nn_conv2d_backward(w1, G(r->c2w), G(r->c2b), w2, ra->a2b, P(r->c2w), &d2, scratch);
  nn_batch_to_frames(w2, w1, B, r->cout, T, S);
  nn_zero(w1, nout);
  if (v->sw == NN_NONE) {
    nn_groupnorm_backward(w1, G(r->n2w), G(r->n2b), w2, a->h1, a->m2, a->r2, P(r->n2w), P(r->n2b), B, r->cout,
                          TS, r->groups, NN_ACT_SILU);
    /* time embedding (w1 = dh1) */
    nn_zero(de, (size_t)B * r->cout);
    nn_add_bc_backward(de, w1, B, r->cout, TS);
    nn_linear_backward(dsemb, G(r->tw), G(r->tb), de, semb, P(r->tw), B, r->tdim, r->cout);
  } else {
    /* w3 = dy2 = SiLU'(y2) w2; shift: de = sum dy2; scale: dsc = sum dy2 g2; dg2 = dy2 (1 + scale) */
    float *w3 = w2 + nmax, *dsc;
    de = w3 + nmax;
    dsc = de + (size_t)B * r->cout;
    nn_zero(w3, nout);
    nn_act_backward(w3, w2, ra->y2, nout, NN_ACT_SILU);
    for (int b = 0; b < B; b++)
      for (int c = 0; c < r->cout; c++) {
        size_t o = ((size_t)b * r->cout + c) * TS;
        float sc = 1.f + ra->esc[b * r->cout + c];
        double sd = 0, sg = 0;
        for (int i = 0; i < TS; i++) {
          sd += w3[o + i];
          sg += (double)w3[o + i] * ra->g2[o + i];
          w3[o + i] *= sc;
        }
        de[b * r->cout + c] = (float)sd;
        dsc[b * r->cout + c] = (float)sg;
      }
    nn_groupnorm_backward(w1, G(r->n2w), G(r->n2b), w3, a->h1, a->m2, a->r2, P(r->n2w), P(r->n2b), B, r->cout,
                          TS, r->groups, NN_ACT_NONE);
    nn_linear_backward(dsemb, G(r->tw), G(r->tb), de, semb, P(r->tw), B, r->tdim, r->cout);
    nn_linear_backward(dsemb, G(v->sw), G(v->sb), dsc, semb, P(v->sw), B, r->tdim, r->cout);
  }
  /* first conv: temporal, spatial, then GN1 (w1 = dh1) */
  if (v->tw1 != NN_NONE) {
    nn_zero(w2, nout);
    nn_tconv_backward(w2, G(v->tw1), G(v->tb1), w1, ra->c1f, P(v->tw1), B, r->cout, T, S, r->cout, 3, scratch);
  } else {
    memcpy(w2, w1, nout * sizeof(float));
  }
  nn_frames_to_batch(w1, w2, B, r->cout, T, S);
  nn_zero(w2, nin);
  nn_conv2d_backward(w2, G(r->c1w), G(r->c1b), w1, ra->a1b, P(r->c1w), &d1, scratch);
  nn_batch_to_frames(w1, w2, B, r->cin, T, S);
  nn_groupnorm_backward(dx, G(r->n1w), G(r->n1b), w1, x, a->m1, a->r1, P(r->n1w), P(r->n1b), B, r->cin, TS,
                        r->groups, NN_ACT_SILU);
}

/* attention, per frame: x (B, C, T, H, H) -> aa->out */
static void attn_forward(const sp_vunet *m, const nn_attnblock *b, sp_vunet_attn_act *aa, const float *x, int B,
                         int H, float *scratch) {
  int T = m->T, S = H * H;
  aa->a.B = B * T;
  if (T == 1) {
    nn_attnblock_forward(b, &m->ps, &aa->a, x, scratch);
    return;
  }
  nn_frames_to_batch(aa->xb, x, B, b->C, T, S);
  nn_attnblock_forward(b, &m->ps, &aa->a, aa->xb, scratch);
  nn_batch_to_frames(aa->out, aa->a.out, B, b->C, T, S);
}

static void attn_backward(const sp_vunet *m, const nn_attnblock *b, const sp_vunet_attn_act *aa, float *dx,
                          const float *dout, const float *x, int B, int H, float *work, float *scratch) {
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  int T = m->T, S = H * H;
  SP_ASSERT(aa->a.B == B * T);
  if (T == 1) {
    nn_attnblock_backward(b, ps, &aa->a, dx, dout, x, work, scratch);
    return;
  }
  size_t n = (size_t)B * b->C * T * S, nw = nn_attnblock_work(b, B * T, H, H);
  float *doutb = work + nw, *dxb = doutb + n;
  nn_frames_to_batch(doutb, dout, B, b->C, T, S);
  nn_zero(dxb, n);
  nn_attnblock_backward(b, ps, &aa->a, dxb, doutb, aa->xb, work, scratch);
  nn_batch_to_frames_acc(dx, dxb, B, b->C, T, S);
}

/* ---------------------------------------------------------------------------------------------
 * forward and backward */

void sp_vunet_forward(const sp_vunet *m, sp_vunet_ws *w, float *out, const float *x, const float *cond,
                      const float *t, const int32_t *text, int B) {
  sp_vcond vc = {.text = text};
  uint8_t null[B];
  if (m->cfg.cond != SP_VCOND_TEXT || m->cache != NN_NONE) {
    for (int b = 0; b < B; b++) {
      null[b] = 1;
      for (int j = 0; j < SP_TEXT_WORDS; j++) null[b] &= text[b * SP_TEXT_WORDS + j] < 0;
      SP_ASSERT(null[b]);  // a sample with a condition needs sp_vunet_forward_c
    }
    vc.null = null;
  }
  sp_vunet_forward_c(m, w, out, x, cond, t, &vc, B);
}

void sp_vunet_forward_c(const sp_vunet *m, sp_vunet_ws *w, float *out, const float *x, const float *cond,
                        const float *t, const sp_vcond *vc, int B) {
  SP_ASSERT(B >= 1 && B <= w->base.maxB);
  SP_ASSERT(nn_threads() <= w->nthreads);  // the scratch was sized for this many threads
  const nn_params *ps = &m->ps;
  const sp_vunet_cfg *c = &m->cfg;
  int T = m->T, R = c->res, F = c->frames, C0 = c->ch * c->mult[0];
  size_t S0 = (size_t)R * R;
  float *sc = w->base.scratch, *tmp = w->tmp;
  w->B = B;
  vunet_embed_forward(m, w, t, vc, B);
  /* input in conv layout: stacked (B, 3F+3, S) = [x viewed as (B, 3F, S), cond] (video_cond:
   * (B, 6F, S), cond viewed as x is); factorised (B*F, 6, S) = [x frame f, cond] per frame
   * (video_cond: cond's frame f) */
  const int vcd = c->video_cond;
  if (T == 1) {
    nn_concat_forward(w->xin, x, cond, B, 3 * F, vcd ? 3 * F : 3, (int)S0);
  } else {
    for (int b = 0; b < B; b++)
      for (int f = 0; f < T; f++)
        for (int ci = 0; ci < 6; ci++) {
          const float *src = ci < 3 ? x + (((size_t)b * 3 + ci) * F + f) * S0
                             : vcd  ? cond + (((size_t)b * 3 + ci - 3) * F + f) * S0
                                    : cond + ((size_t)b * 3 + ci - 3) * S0;
          memcpy(w->xin + (((size_t)b * T + f) * 6 + ci) * S0, src, S0 * sizeof(float));
        }
  }
  conv_forward(m, &m->inc, &w->inc, w->inc.out, w->xin, B, R, tmp, sc);
  /* encoder */
  for (int i = 0; i < m->nenc; i++) {
    const sp_vunet_blk *b = &m->enc[i];
    sp_vunet_blk_act *a = &w->enc[i];
    const float *h = w->hs[i];
    if (b->is_down) {
      const float *xb = h;
      if (T > 1) {
        nn_frames_to_batch(a->ca.xb, h, B, b->cin, T, b->H * b->H);
        xb = a->ca.xb;
      }
      conv_forward(m, &b->conv, &a->ca, a->ca.out, xb, B, b->H, tmp, sc);
      continue;
    }
    res_forward(m, &b->res, &a->ra, h, w->semb, B, b->H, tmp, sc);
    if (b->has_attn) attn_forward(m, &b->attn, &a->aa, a->ra.a.out, B, b->H, sc);
  }
  /* middle */
  res_forward(m, &m->mid1, &w->m1a, w->hs[m->nenc], w->semb, B, m->Hm, tmp, sc);
  attn_forward(m, &m->mida, &w->maa, w->m1a.a.out, B, m->Hm, sc);
  const float *mh = w->maa.out;
  if (m->xal != NN_NONE) {
    vunet_xattn_forward(m, w, mh, B, sc);
    mh = w->xout;
  }
  res_forward(m, &m->mid2, &w->m2a, mh, w->semb, B, m->Hm, tmp, sc);
  /* decoder */
  const float *h = w->m2a.a.out;
  int hc = m->Cm;
  for (int i = 0; i < m->ndec; i++) {
    const sp_vunet_blk *b = &m->dec[i];
    sp_vunet_blk_act *a = &w->dec[i];
    int S = b->H * b->H;
    nn_concat_forward(a->cat, h, w->hs[b->skip], B, hc, b->cin - hc, T * S);
    res_forward(m, &b->res, &a->ra, a->cat, w->semb, B, b->H, tmp, sc);
    h = a->ra.a.out;
    if (b->has_attn) {
      attn_forward(m, &b->attn, &a->aa, h, B, b->H, sc);
      h = a->aa.out;
    }
    if (b->has_up) {
      if (T == 1) {
        nn_upsample2x_forward(a->upb, h, B * b->cout, b->H, b->H);
      } else {
        nn_upsample2x_forward(tmp, h, B * b->cout * T, b->H, b->H);
        nn_frames_to_batch(a->upb, tmp, B, b->cout, T, 4 * S);
      }
      conv_forward(m, &b->conv, &a->ca, a->ca.out, a->upb, B, 2 * b->H, tmp, sc);
      h = a->ca.out;
    }
    hc = b->cout;
  }
  SP_ASSERT(h == w->dec[m->ndec - 1].out && hc == C0);
  /* out: GroupNorm + SiLU, conv */
  if (T == 1) {
    nn_groupnorm_forward(w->on, w->om, w->orr, h, P(m->onw), P(m->onb), B, C0, (int)S0, c->groups, 1e-5f,
                         NN_ACT_SILU);
  } else {
    nn_groupnorm_forward(tmp, w->om, w->orr, h, P(m->onw), P(m->onb), B, C0, T * (int)S0, c->groups, 1e-5f,
                         NN_ACT_SILU);
    nn_frames_to_batch(w->on, tmp, B, C0, T, (int)S0);
  }
  conv_forward(m, &m->outc, &w->outc, out, w->on, B, R, tmp, sc);
}

void sp_vunet_backward(const sp_vunet *m, sp_vunet_ws *w, const float *dout, int B) {
  SP_ASSERT(w->base.train && m->ps.grad && B == w->B);
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  const sp_vunet_cfg *c = &m->cfg;
  int T = m->T, R = c->res, C0 = c->ch * c->mult[0];
  size_t S0 = (size_t)R * R;
  float *sc = w->base.scratch, *wk = w->base.work, *tmp = w->tmp;
  nn_zero(w->g0, w->gn);
  /* out conv, GroupNorm */
  conv_backward(m, &m->outc, &w->outc, w->don, dout, w->on, B, R, wk, sc);
  const float *dgn = w->don;
  if (T > 1) {
    nn_batch_to_frames(tmp, w->don, B, C0, T, (int)S0);
    dgn = tmp;
  }
  const sp_vunet_blk_act *last = &w->dec[m->ndec - 1];
  nn_groupnorm_backward(last->dout, G(m->onw), G(m->onb), dgn, last->out, w->om, w->orr, P(m->onw), P(m->onb), B,
                        C0, T * (int)S0, c->groups, NN_ACT_SILU);
  /* decoder */
  for (int i = m->ndec - 1; i >= 0; i--) {
    const sp_vunet_blk *b = &m->dec[i];
    sp_vunet_blk_act *a = &w->dec[i];
    int S = b->H * b->H;
    float *dhin = i ? w->dec[i - 1].dout : w->dm2;
    int hc = i ? m->dec[i - 1].cout : m->Cm;
    const float *g = a->dout;
    if (b->has_up) {
      /* work: [conv backward 2n | dupb n | dup frames n], n = B*C*T*4S */
      size_t n = (size_t)B * b->cout * T * 4 * S;
      float *dupb = wk + 2 * n, *dupf = dupb + n;
      float *dprev = b->has_attn ? a->dattn : a->dres;
      nn_zero(dupb, n);
      conv_backward(m, &b->conv, &a->ca, dupb, g, a->upb, B, 2 * b->H, wk, sc);
      if (T > 1) {
        nn_batch_to_frames(dupf, dupb, B, b->cout, T, 4 * S);
        nn_upsample2x_backward(dprev, dupf, B * b->cout * T, b->H, b->H);
      } else {
        nn_upsample2x_backward(dprev, dupb, B * b->cout, b->H, b->H);
      }
      g = dprev;
    }
    if (b->has_attn) {
      attn_backward(m, &b->attn, &a->aa, a->dres, g, a->ra.a.out, B, b->H, wk, sc);
      g = a->dres;
    }
    res_backward(m, &b->res, &a->ra, a->dcat, w->dsemb, g, a->cat, w->semb, B, b->H, wk, sc);
    nn_concat_backward(dhin, w->dhs[b->skip], a->dcat, B, hc, b->cin - hc, T * S);
  }
  /* middle */
  if (m->xal != NN_NONE) {
    res_backward(m, &m->mid2, &w->m2a, w->dxa, w->dsemb, w->dm2, w->xout, w->semb, B, m->Hm, wk, sc);
    vunet_xattn_backward(m, w, w->dma, w->dxa, w->maa.out, B, sc);
  } else {
    res_backward(m, &m->mid2, &w->m2a, w->dma, w->dsemb, w->dm2, w->maa.out, w->semb, B, m->Hm, wk, sc);
  }
  attn_backward(m, &m->mida, &w->maa, w->dm1, w->dma, w->m1a.a.out, B, m->Hm, wk, sc);
  res_backward(m, &m->mid1, &w->m1a, w->dhs[m->nenc], w->dsemb, w->dm1, w->hs[m->nenc], w->semb, B, m->Hm, wk,
               sc);
  /* encoder */
  for (int i = m->nenc - 1; i >= 0; i--) {
    const sp_vunet_blk *b = &m->enc[i];
    sp_vunet_blk_act *a = &w->enc[i];
    if (b->is_down) {
      if (T == 1) {
        conv_backward(m, &b->conv, &a->ca, w->dhs[i], w->dhs[i + 1], w->hs[i], B, b->H, wk, sc);
      } else {
        size_t no = (size_t)B * b->cout * T * (b->H / 2) * (b->H / 2), ni = (size_t)B * b->cin * T * b->H * b->H;
        float *dxb = wk + 2 * no;
        nn_zero(dxb, ni);
        conv_backward(m, &b->conv, &a->ca, dxb, w->dhs[i + 1], a->ca.xb, B, b->H, wk, sc);
        nn_batch_to_frames_acc(w->dhs[i], dxb, B, b->cin, T, b->H * b->H);
      }
      continue;
    }
    const float *g = w->dhs[i + 1];
    if (b->has_attn) {
      attn_backward(m, &b->attn, &a->aa, a->dres, g, a->ra.a.out, B, b->H, wk, sc);
      g = a->dres;
    }
    res_backward(m, &b->res, &a->ra, w->dhs[i], w->dsemb, g, w->hs[i], w->semb, B, b->H, wk, sc);
  }
  conv_backward(m, &m->inc, &w->inc, NULL, w->dhs[0], w->xin, B, R, wk, sc);
  vunet_embed_backward(m, w, B);
}

/* ---------------------------------------------------------------------------------------------
 * FLOPs */

static double conv_flops(const sp_vunet_conv *cv, int B, int T, int Hin) {
  int Ho = Hin / cv->stride;
  double f = 2.0 * B * T * (double)Ho * Ho * cv->cout * cv->cin * 9;
  if (cv->tw != NN_NONE) f += 2.0 * B * T * (double)Ho * Ho * cv->cout * cv->cout * 3;
  return f;
}

static double res_flops(const sp_vunet_res *v, int B, int T, int H) {
  const nn_resblock *r = &v->r;
  double S = (double)H * H;
  double f = 2.0 * B * T * S * 9 * r->cout * (r->cin + (double)r->cout) + 2.0 * B * r->tdim * r->cout;
  if (v->tw1 != NN_NONE) f += 2 * 2.0 * B * T * S * 3 * r->cout * r->cout;
  if (v->sw != NN_NONE) f += 2.0 * B * r->tdim * r->cout;
  if (r->skw != NN_NONE) f += 2.0 * B * T * S * r->cin * r->cout;
  return f;
}

static double attn_flops(const nn_attnblock *b, int B, int T, int H) {
  double S = (double)H * H, C = b->C;
  return 2.0 * B * T * S * 4 * C * C + 4.0 * B * T * C * S * S;
}

double sp_vunet_flops(const sp_vunet *m, int B) {
  const sp_vunet_cfg *c = &m->cfg;
  int T = m->T;
  double f = 2.0 * B * ((double)c->ch * c->tdim + (double)c->tdim * c->tdim + (double)c->text_dim * c->tdim);
  f += conv_flops(&m->inc, B, T, c->res) + conv_flops(&m->outc, B, T, c->res);
  for (int i = 0; i < m->nenc; i++) {
    const sp_vunet_blk *b = &m->enc[i];
    if (b->is_down) f += conv_flops(&b->conv, B, T, b->H);
    else f += res_flops(&b->res, B, T, b->H) + (b->has_attn ? attn_flops(&b->attn, B, T, b->H) : 0);
  }
  f += res_flops(&m->mid1, B, T, m->Hm) + attn_flops(&m->mida, B, T, m->Hm) + res_flops(&m->mid2, B, T, m->Hm);
  if (m->ntok) f += sp_planenc_flops(&m->pe, B * SP_PLAN_MAX);
  if (m->cache != NN_NONE)  // text.clip: once per sample (text global) or per text slot (plan)
    f += 2.0 * B * (c->cond == SP_VCOND_PLAN ? m->ntxt : 1) * c->clip_dim * c->text_dim;
  if (c->cond == SP_VCOND_DISTANCE) f += 2.0 * B * 4 * c->plan_dim * (SP_VCOND_DVEC + (double)c->tdim);
  if (m->xal != NN_NONE) {
    double TS = (double)T * m->Hm * m->Hm, C = m->Cm, L = SP_PLAN_MAX;
    f += 2.0 * B * (2 * TS * C * C + 2 * L * C * c->text_dim + 2 * TS * L * C);
  }
  for (int i = 0; i < m->ndec; i++) {
    const sp_vunet_blk *b = &m->dec[i];
    f += res_flops(&b->res, B, T, b->H) + (b->has_attn ? attn_flops(&b->attn, B, T, b->H) : 0);
    if (b->has_up) f += conv_flops(&b->conv, B, T, 2 * b->H);
  }
  return f;
}
