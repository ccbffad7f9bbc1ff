/* vunet.c: the video diffusion U-Net (contract and network in vunet.h).
 *
 * Activations live in NCTHW order (B, C, T, H, W), T = F frames in the factorised layout and
 * T = 1 in the stacked one, so GroupNorm, the time-embedding add, skip concatenation, 1x1 convs
 * and the temporal convs work on them directly. The per-frame 2D convs and the per-frame
 * attention need the conv layout (B*T, C, H, W): their inputs are converted
 * (nn_frames_to_batch) and kept for backward, their outputs converted back through one shared
 * transient buffer (tmp). In the stacked layout both orders coincide and nothing is converted. */
#include "models/vunet.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define P(o) (ps->data + (o))
#define G(o) (ps->grad + (o))

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

/* ---------------------------------------------------------------------------------------------
 * offline text encoder */

static const char *const g_vocab[SP_TEXT_VOCAB] = {
    "<unk>", "door",   "open",   "close",  "basketball", "shelf",  "place",
    "button", "press", "topdown", "faucet", "handle",     "hammer", "assembly"};

const char *sp_text_word(int id) { return id >= 0 && id < SP_TEXT_VOCAB ? g_vocab[id] : NULL; }

static int is_sep(char c) { return c == '-' || c == ' ' || c == '_'; }

int sp_text_ids(const char *text, int32_t ids[SP_TEXT_WORDS]) {
  for (int i = 0; i < SP_TEXT_WORDS; i++) ids[i] = -1;
  const char *p = text ? text : "";
  int n = 0, over = 0;
  while (*p) {
    while (*p && is_sep(*p)) p++;
    if (!*p) break;
    char word[32];
    size_t k = 0;
    int toolong = 0;
    for (; *p && !is_sep(*p); p++) {
      if (k + 1 < sizeof word) word[k++] = (char)tolower((unsigned char)*p);
      else toolong = 1;
    }
    word[k] = 0;
    int id = 0;
    for (int v = 1; v < SP_TEXT_VOCAB && !toolong; v++)
      if (!strcmp(word, g_vocab[v])) id = v;
    if (n < SP_TEXT_WORDS) ids[n++] = id;
    else over = 1;
  }
  return over ? -1 : n;
}

/* ---------------------------------------------------------------------------------------------
 * config */

static const char *const g_layouts[] = {"stacked", "factorised", NULL};

#define OFF(f) offsetof(sp_vunet_cfg, f)
const sp_cf sp_vunet_fields[] = {
    {"layout", SP_CF_ENUM, OFF(layout), 0, 1, g_layouts, 0, 0,
     "stacked: frames in channels, 2D U-Net; factorised: AVDC's per-frame 2D + temporal convs"},
    {"res", SP_CF_INT, OFF(res), 8, 1024, NULL, 0, 0, "image side in pixels"},
    {"frames", SP_CF_INT, OFF(frames), 1, 64, NULL, 0, 0, "generated frames"},
    {"ch", SP_CF_INT, OFF(ch), 2, 1024, NULL, 0, 0, "base channels"},
    {"mult", SP_CF_INTLIST, OFF(mult), 1, 16, NULL, SP_VUNET_MAXLEV, OFF(nmult),
     "channel multiplier per level"},
    {"nres", SP_CF_INT, OFF(nres), 1, 8, NULL, 0, 0, "ResBlocks per encoder level (decoder: nres+1)"},
    {"attn_min_ds", SP_CF_INT, OFF(attn_min_ds), 1, 1024, NULL, 0, 0,
     "attention at levels whose downsample factor >= this (always in the middle)"},
    {"head_ch", SP_CF_INT, OFF(head_ch), 1, 1024, NULL, 0, 0, "channels per attention head"},
    {"groups", SP_CF_INT, OFF(groups), 1, 256, NULL, 0, 0, "GroupNorm groups"},
    {"tdim", SP_CF_INT, OFF(tdim), 2, 8192, NULL, 0, 0, "time-embedding width"},
    {"text_dim", SP_CF_INT, OFF(text_dim), 1, 8192, NULL, 0, 0, "word-embedding width"},
    {"winograd", SP_CF_INT, OFF(winograd), 0, 2, NULL, 0, 0,
     "3x3 convs by Winograd: 0 never, 1 where it pays, 2 always"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};
#undef OFF

void sp_vunet_cfg_preset(sp_vunet_cfg *c, sp_preset p) {
  switch (p) {
    case SP_PRESET_TINY:
      *c = (sp_vunet_cfg){.layout = SP_VUNET_STACKED, .res = 16, .frames = 7, .ch = 16, .mult = {1, 2},
                          .nmult = 2, .nres = 1, .attn_min_ds = 2, .head_ch = 8, .groups = 4, .tdim = 32,
                          .text_dim = 8, .winograd = 1};
      break;
    case SP_PRESET_CPU:  // bench_nn's unet64 plus text and attention at 16x16
      *c = (sp_vunet_cfg){.layout = SP_VUNET_STACKED, .res = 64, .frames = 7, .ch = 32, .mult = {1, 2, 4},
                          .nmult = 3, .nres = 2, .attn_min_ds = 4, .head_ch = 32, .groups = 8, .tdim = 128,
                          .text_dim = 64, .winograd = 1};
      break;
    default:  // paper: AVDC's Meta-World U-Net
      *c = (sp_vunet_cfg){.layout = SP_VUNET_FACTORISED, .res = 128, .frames = 7, .ch = 128,
                          .mult = {1, 2, 3, 4, 5}, .nmult = 5, .nres = 2, .attn_min_ds = 8, .head_ch = 32,
                          .groups = 32, .tdim = 512, .text_dim = 512, .winograd = 1};
      break;
  }
}

int sp_vunet_cfg_check(const sp_vunet_cfg *c, char *err) {
  if (sp_cf_check(sp_vunet_fields, c, "vunet", err)) return -1;
  int down = 1 << (c->nmult - 1);
  if (c->res % down)
    return sp_errf(err, "vunet: res = %d is not divisible by 2^(levels-1) = %d (mult has %d levels)", c->res,
                   down, c->nmult);
  if (c->ch % 2) return sp_errf(err, "vunet: ch = %d must be even (sinusoidal time embedding)", c->ch);
  for (int l = 0, ds = 1; l < c->nmult; l++, ds *= 2) {
    int C = c->ch * c->mult[l];
    if (C % c->groups)
      return sp_errf(err, "vunet: groups = %d does not divide the %d channels of level %d (ch * mult[%d])",
                     c->groups, C, l, l);
    int attn = ds >= c->attn_min_ds || l == c->nmult - 1;  // the last level feeds the middle
    if (attn && C % c->head_ch)
      return sp_errf(err, "vunet: head_ch = %d does not divide the %d channels of level %d (attention there)",
                     c->head_ch, C, l);
  }
  return 0;
}

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
  v->tw1 = v->tb1 = v->tw2 = v->tb2 = NN_NONE;
  if (fact) {
    v->tw1 = padd(ps, pre, ".c1_t.weight", cout, cout, 3, 0);
    v->tb1 = padd(ps, pre, ".c1_t.bias", cout, 0, 0, 0);
    v->tw2 = padd(ps, pre, ".c2_t.weight", cout, cout, 3, 0);
    v->tb2 = padd(ps, pre, ".c2_t.bias", cout, 0, 0, 0);
  }
}

int sp_vunet_init(sp_vunet *m, const sp_vunet_cfg *c, unsigned seed, char *err) {
  memset(m, 0, sizeof *m);
  nn_params_init(&m->ps);
  if (sp_vunet_cfg_check(c, err)) return -1;
  m->cfg = *c;
  int fact = c->layout == SP_VUNET_FACTORISED;
  m->T = fact ? c->frames : 1;
  m->cin = fact ? 6 : 3 * c->frames + 3;
  m->cout = fact ? 3 : 3 * c->frames;
  nn_params *ps = &m->ps;
  char pre[64], nm[96];
  m->t0w = nn_params_add4(ps, "temb.0.weight", c->tdim, c->ch, 0, 0);
  m->t0b = nn_params_add4(ps, "temb.0.bias", c->tdim, 0, 0, 0);
  m->t2w = nn_params_add4(ps, "temb.2.weight", c->tdim, c->tdim, 0, 0);
  m->t2b = nn_params_add4(ps, "temb.2.bias", c->tdim, 0, 0, 0);
  m->tew = nn_params_add4(ps, "text.embed.weight", SP_TEXT_VOCAB, c->text_dim, 0, 0);
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
  nn_conv2d_set_winograd(c->winograd);
  return 0;
}

void sp_vunet_free(sp_vunet *m) {
  nn_params_free(&m->ps);
  memset(m, 0, sizeof *m);
}

size_t sp_vunet_nparams(const sp_vunet *m) {
  size_t n = 0;
  for (int i = 0; i < m->ps.n; i++) n += m->ps.p[i].numel;
  return n;
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
  ra->c1f = ra->c2f = ra->a1b = ra->a2b = NULL;
  if (v->tw1 == NN_NONE) {
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

/* ResBlock: x (B, cin, T, H, H), semb (B, tdim) -> ra->a.out (B, cout, T, H, H) */
static void res_forward(const sp_vunet *m, const sp_vunet_res *v, sp_vunet_res_act *ra, const float *x,
                        const float *semb, int B, int H, float *tmp, float *scratch) {
  const nn_params *ps = &m->ps;
  const nn_resblock *r = &v->r;
  nn_resblock_act *a = &ra->a;
  a->B = B;
  if (v->tw1 == NN_NONE) {
    nn_resblock_forward(r, ps, a, x, semb, scratch);
    return;
  }
  int T = m->T, S = H * H, TS = T * S;
  nn_conv2d_dims d1 = nn_conv2d_make(B * T, r->cin, H, H, r->cout, 3, 1, 1);
  nn_conv2d_dims d2 = nn_conv2d_make(B * T, r->cout, H, H, r->cout, 3, 1, 1);
  nn_groupnorm_forward(tmp, a->m1, a->r1, x, P(r->n1w), P(r->n1b), B, r->cin, TS, r->groups, 1e-5f,
                       NN_ACT_SILU);
  nn_frames_to_batch(ra->a1b, tmp, B, r->cin, T, S);
  nn_conv2d_forward(tmp, ra->a1b, P(r->c1w), P(r->c1b), &d1, scratch);
  nn_batch_to_frames(ra->c1f, tmp, B, r->cout, T, S);
  nn_tconv_forward(a->h1, ra->c1f, P(v->tw1), P(v->tb1), B, r->cout, T, S, r->cout, 3, scratch);
  nn_linear_forward(a->e, semb, P(r->tw), P(r->tb), B, r->tdim, r->cout);
  nn_add_bc_forward(a->h1, a->e, B, r->cout, TS);
  nn_groupnorm_forward(tmp, a->m2, a->r2, a->h1, P(r->n2w), P(r->n2b), B, r->cout, TS, r->groups, 1e-5f,
                       NN_ACT_SILU);
  nn_frames_to_batch(ra->a2b, tmp, B, r->cout, T, S);
  nn_conv2d_forward(tmp, ra->a2b, P(r->c2w), P(r->c2b), &d2, scratch);
  nn_batch_to_frames(ra->c2f, tmp, B, r->cout, T, S);
  nn_tconv_forward(a->out, ra->c2f, P(v->tw2), P(v->tb2), B, r->cout, T, S, r->cout, 3, scratch);
  if (r->skw != NN_NONE) {
    nn_conv2d_dims ds = nn_conv2d_make(B, r->cin, T * H, H, r->cout, 1, 1, 0);
    nn_conv2d_forward_acc(a->out, x, P(r->skw), P(r->skb), &ds, scratch);
  } else {
    nn_add_forward(a->out, a->out, x, (size_t)B * r->cout * TS);
  }
}

/* dx (+=, may be NULL), dsemb (+=) from dout; work: 2 * B*max(cin,cout)*T*S + B*cout */
static void res_backward(const sp_vunet *m, const sp_vunet_res *v, const sp_vunet_res_act *ra, float *dx,
                         float *dsemb, const float *dout, const float *x, const float *semb, int B, int H,
                         float *work, float *scratch) {
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  const nn_resblock *r = &v->r;
  const nn_resblock_act *a = &ra->a;
  SP_ASSERT(a->B == B);
  if (v->tw1 == NN_NONE) {
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
  nn_zero(w1, nout);
  nn_tconv_backward(w1, G(v->tw2), G(v->tb2), dout, ra->c2f, P(v->tw2), B, r->cout, T, S, r->cout, 3, scratch);
  nn_frames_to_batch(w2, w1, B, r->cout, T, S);
  nn_zero(w1, nout);
  nn_conv2d_backward(w1, G(r->c2w), G(r->c2b), w2, ra->a2b, P(r->c2w), &d2, scratch);
  nn_batch_to_frames(w2, w1, B, r->cout, T, S);
  nn_zero(w1, nout);
  nn_groupnorm_backward(w1, G(r->n2w), G(r->n2b), w2, a->h1, a->m2, a->r2, P(r->n2w), P(r->n2b), B, r->cout, TS,
                        r->groups, NN_ACT_SILU);
  /* time embedding (w1 = dh1) */
  nn_zero(de, (size_t)B * r->cout);
  nn_add_bc_backward(de, w1, B, r->cout, TS);
  nn_linear_backward(dsemb, G(r->tw), G(r->tb), de, semb, P(r->tw), B, r->tdim, r->cout);
  /* first conv: temporal, spatial, then GN1 */
  nn_zero(w2, nout);
  nn_tconv_backward(w2, G(v->tw1), G(v->tb1), w1, ra->c1f, P(v->tw1), B, r->cout, T, S, r->cout, 3, scratch);
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
 * time and text embedding */

static void embed_forward(const sp_vunet *m, sp_vunet_ws *w, const float *t, const int32_t *text, int B) {
  const nn_params *ps = &m->ps;
  const sp_vunet_cfg *c = &m->cfg;
  int D = c->text_dim, E = c->tdim;
  nn_timestep_embedding(w->e0, t, B, c->ch, 0, 0);
  nn_linear_forward(w->z1, w->e0, P(m->t0w), P(m->t0b), B, c->ch, E);
  nn_act_forward(w->s1, w->z1, (size_t)B * E, NN_ACT_SILU);
  nn_linear_forward(w->te, w->s1, P(m->t2w), P(m->t2b), B, E, E);
  /* text: mean of the word embeddings (no words: zeros), then the projection */
  memcpy(w->ids, text, (size_t)B * SP_TEXT_WORDS * sizeof(int32_t));
  const float *tab = P(m->tew);
  for (int b = 0; b < B; b++) {
    float *v = w->tv + (size_t)b * D;
    int cnt = 0;
    memset(v, 0, (size_t)D * sizeof(float));
    for (int j = 0; j < SP_TEXT_WORDS; j++) {
      int id = text[b * SP_TEXT_WORDS + j];
      SP_ASSERT(id >= -1 && id < SP_TEXT_VOCAB);
      if (id < 0) continue;
      cnt++;
      for (int d = 0; d < D; d++) v[d] += tab[(size_t)id * D + d];
    }
    if (cnt)
      for (int d = 0; d < D; d++) v[d] /= (float)cnt;
  }
  nn_linear_forward(w->tp, w->tv, P(m->tpw), P(m->tpb), B, D, E);
  nn_add_forward(w->emb, w->te, w->tp, (size_t)B * E);
  nn_act_forward(w->semb, w->emb, (size_t)B * E, NN_ACT_SILU);
}

static void embed_backward(const sp_vunet *m, sp_vunet_ws *w, int B) {
  nn_params *ps = (nn_params *)&m->ps;  // backward writes ps->grad only
  const sp_vunet_cfg *c = &m->cfg;
  int D = c->text_dim, E = c->tdim;
  nn_act_backward(w->demb, w->dsemb, w->emb, (size_t)B * E, NN_ACT_SILU);
  /* dtv = demb @ W by hand: OpenBLAS's small no-transpose sgemm kernel mallocs a buffer for shapes
   * like this one (N = text_dim not a multiple of 16, K >= 32; seen with 0.3.21) */
  nn_linear_backward(NULL, G(m->tpw), G(m->tpb), w->demb, w->tv, P(m->tpw), B, D, E);
  const float *wp = P(m->tpw);
  for (int b = 0; b < B; b++) {
    float *g = w->dtv + (size_t)b * D;
    for (int e = 0; e < E; e++) {
      float de = w->demb[(size_t)b * E + e];
      for (int d = 0; d < D; d++) g[d] += de * wp[(size_t)e * D + d];
    }
  }
  float *gtab = G(m->tew);
  for (int b = 0; b < B; b++) {
    const int32_t *ids = w->ids + (size_t)b * SP_TEXT_WORDS;
    int cnt = 0;
    for (int j = 0; j < SP_TEXT_WORDS; j++) cnt += ids[j] >= 0;
    const float *g = w->dtv + (size_t)b * D;
    for (int j = 0; j < SP_TEXT_WORDS; j++) {
      if (ids[j] < 0) continue;
      for (int d = 0; d < D; d++) gtab[(size_t)ids[j] * D + d] += g[d] / (float)cnt;
    }
  }
  nn_linear_backward(w->ds1, G(m->t2w), G(m->t2b), w->demb, w->s1, P(m->t2w), B, E, E);
  nn_act_backward(w->dz1, w->ds1, w->z1, (size_t)B * E, NN_ACT_SILU);
  nn_linear_backward(NULL, G(m->t0w), G(m->t0b), w->dz1, w->e0, P(m->t0w), B, c->ch, E);
}

/* ---------------------------------------------------------------------------------------------
 * forward and backward */

void sp_vunet_forward(const sp_vunet *m, sp_vunet_ws *w, float *out, const float *x, const float *cond,
                      const float *t, const int32_t *text, int B) {
  SP_ASSERT(B >= 1 && B <= w->base.maxB);
  SP_ASSERT(nn_threads() <= w->nthreads);  // the scratch was sized for this many threads
  const nn_params *ps = &m->ps;
  const sp_vunet_cfg *c = &m->cfg;
  int T = m->T, R = c->res, F = c->frames, C0 = c->ch * c->mult[0];
  size_t S0 = (size_t)R * R;
  float *sc = w->base.scratch, *tmp = w->tmp;
  w->B = B;
  embed_forward(m, w, t, text, B);
  /* input in conv layout: stacked (B, 3F+3, S) = [x viewed as (B, 3F, S), cond];
   * factorised (B*F, 6, S) = [x frame f, cond] per frame */
  if (T == 1) {
    nn_concat_forward(w->xin, x, cond, B, 3 * F, 3, (int)S0);
  } else {
    for (int b = 0; b < B; b++)
      for (int f = 0; f < T; f++)
        for (int ci = 0; ci < 6; ci++) {
          const float *src = ci < 3 ? x + (((size_t)b * 3 + ci) * F + f) * S0 : cond + ((size_t)b * 3 + ci - 3) * S0;
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
  res_forward(m, &m->mid2, &w->m2a, w->maa.out, w->semb, B, m->Hm, tmp, sc);
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
  res_backward(m, &m->mid2, &w->m2a, w->dma, w->dsemb, w->dm2, w->maa.out, w->semb, B, m->Hm, wk, sc);
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
  embed_backward(m, w, B);
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
  for (int i = 0; i < m->ndec; i++) {
    const sp_vunet_blk *b = &m->dec[i];
    f += res_flops(&b->res, B, T, b->H) + (b->has_attn ? attn_flops(&b->attn, B, T, b->H) : 0);
    if (b->has_up) f += conv_flops(&b->conv, B, T, 2 * b->H);
  }
  return f;
}
