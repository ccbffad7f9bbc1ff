/* bench_nn.c: the three reference networks of ../shared/bench/torch_baseline.py built from
 * src/nn ops, timed as full training steps (zero grad, forward, MSE, backward, AdamW) and as
 * no-grad inference. Prints one line per case:
 *   <case> c_ms=<median> gflops=<achieved> fwd_gflop=<counted forward GFLOP> loss=<first loss>
 * bench/bench_nn.py runs this and the PyTorch script in one go and adds torch_ms and ratio.
 *
 *   build/bench/bench_nn [threads] [cases: unet32,unet64,resnet18,dp1d] [iters] [train|infer]
 * FLOPs are counted as torch_baseline.py counts them (conv, linear, attention matmuls; 2 per
 * MAC; a training step is 3x the forward). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rng.h"
#include "nn/nn_blocks.h"
#include "nn/nn_diffusion.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, n, sizeof(double), cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void randn(float *x, size_t n, sp_mt19937 *r) {
  for (size_t i = 0; i < n; i++) x[i] = (float)sp_mt_normal(r);
}

static size_t smax(size_t a, size_t b) { return a > b ? a : b; }

/* a model: params, arena of activations, shared scratch and work */
typedef struct {
  nn_params ps;
  nn_arena ar;
  float *scratch, *work;
  size_t scratch_n, work_n;
  double fwd_flops;
} model_base;

#define A(n) nn_arena_floats(&mb->ar, (size_t)(n))
#define PD(o) (mb->ps.data + (o))
#define PG(o) (mb->ps.grad + (o))
#define NEED_S(x) (mb->scratch_n = smax(mb->scratch_n, (x)))
#define NEED_W(x) (mb->work_n = smax(mb->work_n, (x)))

static double conv2d_flops(const nn_conv2d_dims *d) {
  return 2.0 * d->B * d->Cout * d->Ho * d->Wo * (double)d->Cin * d->KH * d->KW;
}

/* =============================================================================================
 * video U-Net (frames stacked in channels) */

enum { VU_RES = 0, VU_DOWN, VU_UP, VU_NONE };
typedef struct {
  int type;
  nn_resblock rb;
  nn_resblock_act ra;
  size_t cw, cb;
  int cin, cout, H;  // input channels (incl. skip for up ResBlocks), output channels, input size
  int skip;          // index into hs for up ResBlocks
  float *cat, *dcat; // up ResBlock input (B, cin, S) and its gradient
  float *upb, *dupb; // upsampled input (B, c, 4S) and gradient
  float *out, *dout; // module output and its gradient (for DOWN/UP; ResBlocks use ra.out)
} vu_mod;

typedef struct {
  model_base mb;
  int B, R, cin, cout, tch, tdim;
  size_t t0w, t0b, t2w, t2b, inw, inb, onw, onb, ocw, ocb;
  vu_mod down[16], up[16];
  int nd, nu;
  nn_resblock mid1, mid2;
  nn_attnblock attn;
  nn_resblock_act m1a, m2a;
  nn_attnblock_act aa;
  /* activations */
  float *x, *cond, *xin, *t, *e0, *z1, *s1, *te, *hin, *on, *om, *orr, *y, *target;
  float *hs[32], *dhs[32];
  int nhs;
  float *dte, *ds1, *dz1, *dmid1, *dattn, *dmid2, *don, *dy, *dlast;
} vunet;

static float *vu_outp(vu_mod *m) { return m->type == VU_RES ? m->ra.out : m->out; }

static void vunet_build(vunet *u, int B, int R) {
  model_base *mb = &u->mb;
  memset(u, 0, sizeof *u);
  u->B = B;
  u->R = R;
  int frames = 8, ch[3] = {32, 64, 128}, nres = 2;
  u->cin = 3 * frames + 3;
  u->cout = 3 * frames;
  u->tch = ch[0];
  u->tdim = 128;
  nn_params *ps = &mb->ps;
  nn_params_init(ps);
  u->t0w = nn_params_add4(ps, "temb.0.weight", u->tdim, ch[0], 0, 0);
  u->t0b = nn_params_add4(ps, "temb.0.bias", u->tdim, 0, 0, 0);
  u->t2w = nn_params_add4(ps, "temb.2.weight", u->tdim, u->tdim, 0, 0);
  u->t2b = nn_params_add4(ps, "temb.2.bias", u->tdim, 0, 0, 0);
  u->inw = nn_params_add4(ps, "inc.weight", ch[0], u->cin, 3, 3);
  u->inb = nn_params_add4(ps, "inc.bias", ch[0], 0, 0, 0);
  int c = ch[0], H = R, skc[32], skh[32], ns = 0;
  skc[ns] = c;
  skh[ns++] = H;
  char name[64];
  for (int li = 0; li < 3; li++) {
    for (int k = 0; k < nres; k++) {
      vu_mod *m = &u->down[u->nd];
      snprintf(name, sizeof name, "down.%d", u->nd++);
      m->type = VU_RES;
      m->cin = c;
      m->cout = ch[li];
      m->H = H;
      nn_resblock_init(&m->rb, ps, name, c, ch[li], u->tdim, 8);
      c = ch[li];
      skc[ns] = c;
      skh[ns++] = H;
    }
    if (li < 2) {
      vu_mod *m = &u->down[u->nd];
      snprintf(name, sizeof name, "down.%d.weight", u->nd);
      m->cw = nn_params_add4(ps, name, c, c, 3, 3);
      snprintf(name, sizeof name, "down.%d.bias", u->nd++);
      m->cb = nn_params_add4(ps, name, c, 0, 0, 0);
      m->type = VU_DOWN;
      m->cin = m->cout = c;
      m->H = H;
      H /= 2;
      skc[ns] = c;
      skh[ns++] = H;
    }
  }
  nn_resblock_init(&u->mid1, ps, "mid1", c, c, u->tdim, 8);
  nn_attnblock_init(&u->attn, ps, "attn", c, 4, 8);
  nn_resblock_init(&u->mid2, ps, "mid2", c, c, u->tdim, 8);
  for (int li = 2; li >= 0; li--) {
    for (int k = 0; k < nres + 1; k++) {
      vu_mod *m = &u->up[u->nu];
      snprintf(name, sizeof name, "up.%d", u->nu++);
      m->type = VU_RES;
      m->skip = --ns;
      m->cin = c + skc[ns];
      m->cout = ch[li];
      m->H = H;
      SP_ASSERT(skh[ns] == H);
      nn_resblock_init(&m->rb, ps, name, m->cin, ch[li], u->tdim, 8);
      c = ch[li];
    }
    if (li > 0) {
      u->up[u->nu++].type = VU_NONE;  // nn.Upsample holds no parameters but takes an index
      vu_mod *m = &u->up[u->nu];
      snprintf(name, sizeof name, "up.%d.weight", u->nu);
      m->cw = nn_params_add4(ps, name, c, c, 3, 3);
      snprintf(name, sizeof name, "up.%d.bias", u->nu++);
      m->cb = nn_params_add4(ps, name, c, 0, 0, 0);
      m->type = VU_UP;
      m->cin = m->cout = c;
      m->H = H;
      H *= 2;
    }
  }
  u->onw = nn_params_add4(ps, "outn.weight", c, 0, 0, 0);
  u->onb = nn_params_add4(ps, "outn.bias", c, 0, 0, 0);
  u->ocw = nn_params_add4(ps, "outc.weight", u->cout, c, 3, 3);
  u->ocb = nn_params_add4(ps, "outc.bias", u->cout, 0, 0, 0);
  char err[SP_ERRLEN];
  if (nn_params_alloc_train(ps, 0, err)) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  nn_params_init_default(ps, 1);

  /* activations: measure, then allocate */
  for (int pass = 0; pass < 2; pass++) {
    if (pass) nn_arena_init(&mb->ar, mb->ar.used);
    size_t S0 = (size_t)R * R;
    u->x = A(B * 24 * S0);
    u->cond = A(B * 3 * S0);
    u->target = A(B * 24 * S0);
    u->t = A(B);
    u->xin = A(B * u->cin * S0);
    u->e0 = A(B * u->tch);
    u->z1 = A(B * u->tdim);
    u->s1 = A(B * u->tdim);
    u->te = A(B * u->tdim);
    u->dte = A(B * u->tdim);
    u->ds1 = A(B * u->tdim);
    u->dz1 = A(B * u->tdim);
    u->hin = A(B * ch[0] * S0);
    u->nhs = 0;
    u->dhs[u->nhs] = A(B * ch[0] * S0);
    u->hs[u->nhs++] = u->hin;
    for (int i = 0; i < u->nd; i++) {
      vu_mod *m = &u->down[i];
      int Ho = m->type == VU_DOWN ? m->H / 2 : m->H;
      if (m->type == VU_RES) nn_resblock_act_alloc(&m->ra, &m->rb, &mb->ar, B, m->H, m->H);
      else m->out = A(B * m->cout * Ho * Ho);
      u->dhs[u->nhs] = A(B * m->cout * Ho * Ho);
      u->hs[u->nhs++] = vu_outp(m);
    }
    int Hm = u->down[u->nd - 1].H, cm = u->down[u->nd - 1].cout;
    nn_resblock_act_alloc(&u->m1a, &u->mid1, &mb->ar, B, Hm, Hm);
    nn_attnblock_act_alloc(&u->aa, &u->attn, &mb->ar, B, Hm, Hm);
    nn_resblock_act_alloc(&u->m2a, &u->mid2, &mb->ar, B, Hm, Hm);
    u->dmid1 = A(B * cm * Hm * Hm);
    u->dattn = A(B * cm * Hm * Hm);
    u->dmid2 = A(B * cm * Hm * Hm);
    for (int i = 0; i < u->nu; i++) {
      vu_mod *m = &u->up[i];
      if (m->type == VU_RES) {
        size_t S = (size_t)m->H * m->H;
        m->cat = A(B * m->cin * S);
        m->dcat = A(B * m->cin * S);
        nn_resblock_act_alloc(&m->ra, &m->rb, &mb->ar, B, m->H, m->H);
        m->dout = A(B * m->cout * S);
      } else if (m->type == VU_UP) {
        size_t S2 = (size_t)4 * m->H * m->H;
        m->upb = A(B * m->cin * S2);
        m->dupb = A(B * m->cin * S2);
        m->out = A(B * m->cout * S2);
        m->dout = A(B * m->cout * S2);
      }
    }
    u->om = A(B * 8);
    u->orr = A(B * 8);
    u->on = A(B * ch[0] * S0);
    u->don = A(B * ch[0] * S0);
    u->y = A(B * u->cout * S0);
    u->dy = A(B * u->cout * S0);
  }
  /* scratch, work and FLOPs */
  mb->fwd_flops = 0;
  nn_conv2d_dims d = nn_conv2d_make(B, u->cin, R, R, ch[0], 3, 1, 1);
  NEED_S(nn_conv2d_scratch(&d));
  mb->fwd_flops += conv2d_flops(&d) + 2.0 * B * (u->tch * u->tdim + u->tdim * u->tdim);
#define RB_COST(rb, H)                                                                            \
  do {                                                                                            \
    NEED_S(nn_resblock_scratch(rb, B, H, H));                                                     \
    NEED_W(nn_resblock_work(rb, B, H, H));                                                        \
    nn_conv2d_dims a1 = nn_conv2d_make(B, (rb)->cin, H, H, (rb)->cout, 3, 1, 1);                 \
    nn_conv2d_dims a2 = nn_conv2d_make(B, (rb)->cout, H, H, (rb)->cout, 3, 1, 1);                \
    mb->fwd_flops += conv2d_flops(&a1) + conv2d_flops(&a2) + 2.0 * B * u->tdim * (rb)->cout;     \
    if ((rb)->cin != (rb)->cout) mb->fwd_flops += 2.0 * B * (rb)->cin * (rb)->cout * (H) * (H);   \
  } while (0)
  for (int i = 0; i < u->nd; i++) {
    vu_mod *m = &u->down[i];
    if (m->type == VU_RES) RB_COST(&m->rb, m->H);
    else {
      nn_conv2d_dims dd = nn_conv2d_make(B, m->cin, m->H, m->H, m->cout, 3, 2, 1);
      NEED_S(nn_conv2d_scratch(&dd));
      mb->fwd_flops += conv2d_flops(&dd);
    }
  }
  int Hm = u->down[u->nd - 1].H, cm = u->down[u->nd - 1].cout;
  RB_COST(&u->mid1, Hm);
  RB_COST(&u->mid2, Hm);
  NEED_S(nn_attnblock_scratch(&u->attn, B, Hm, Hm));
  NEED_W(nn_attnblock_work(&u->attn, B, Hm, Hm));
  mb->fwd_flops += 2.0 * B * Hm * Hm * (3.0 * cm * cm + cm * cm) + 4.0 * B * cm * (double)Hm * Hm * Hm * Hm;
  for (int i = 0; i < u->nu; i++) {
    vu_mod *m = &u->up[i];
    if (m->type == VU_RES) RB_COST(&m->rb, m->H);
    else if (m->type == VU_UP) {
      nn_conv2d_dims du = nn_conv2d_make(B, m->cin, 2 * m->H, 2 * m->H, m->cout, 3, 1, 1);
      NEED_S(nn_conv2d_scratch(&du));
      mb->fwd_flops += conv2d_flops(&du);
    }
  }
  d = nn_conv2d_make(B, ch[0], R, R, u->cout, 3, 1, 1);
  NEED_S(nn_conv2d_scratch(&d));
  mb->fwd_flops += conv2d_flops(&d);
  mb->scratch = aligned_alloc(64, (mb->scratch_n * 4 + 63) / 64 * 64);
  mb->work = aligned_alloc(64, (mb->work_n * 4 + 63) / 64 * 64);
  sp_mt19937 r;
  sp_mt_seed(&r, 0);
  randn(u->x, (size_t)B * 24 * R * R, &r);
  randn(u->cond, (size_t)B * 3 * R * R, &r);
  randn(u->target, (size_t)B * 24 * R * R, &r);
  for (int b = 0; b < B; b++) u->t[b] = (float)(sp_mt_u32(&r) % 1000);
}

static float vunet_forward(vunet *u) {
  model_base *mb = &u->mb;
  nn_params *ps = &mb->ps;
  int B = u->B, R = u->R;
  size_t S0 = (size_t)R * R;
  nn_timestep_embedding(u->e0, u->t, B, u->tch, 1, 1);
  nn_linear_forward(u->z1, u->e0, PD(u->t0w), PD(u->t0b), B, u->tch, u->tdim);
  nn_act_forward(u->s1, u->z1, (size_t)B * u->tdim, NN_ACT_SILU);
  nn_linear_forward(u->te, u->s1, PD(u->t2w), PD(u->t2b), B, u->tdim, u->tdim);
  nn_concat_forward(u->xin, u->x, u->cond, B, 24, 3, (int)S0);
  nn_conv2d_dims d = nn_conv2d_make(B, u->cin, R, R, 32, 3, 1, 1);
  nn_conv2d_forward(u->hin, u->xin, PD(u->inw), PD(u->inb), &d, mb->scratch);
  const float *h = u->hin;
  for (int i = 0; i < u->nd; i++) {
    vu_mod *m = &u->down[i];
    if (m->type == VU_RES) nn_resblock_forward(&m->rb, ps, &m->ra, h, u->te, mb->scratch);
    else {
      nn_conv2d_dims dd = nn_conv2d_make(B, m->cin, m->H, m->H, m->cout, 3, 2, 1);
      nn_conv2d_forward(m->out, h, PD(m->cw), PD(m->cb), &dd, mb->scratch);
    }
    h = vu_outp(m);
  }
  nn_resblock_forward(&u->mid1, ps, &u->m1a, h, u->te, mb->scratch);
  nn_attnblock_forward(&u->attn, ps, &u->aa, u->m1a.out, mb->scratch);
  nn_resblock_forward(&u->mid2, ps, &u->m2a, u->aa.out, u->te, mb->scratch);
  h = u->m2a.out;
  int hc = u->mid2.cout;
  for (int i = 0; i < u->nu; i++) {
    vu_mod *m = &u->up[i];
    if (m->type == VU_RES) {
      int S = m->H * m->H;
      nn_concat_forward(m->cat, h, u->hs[m->skip], B, hc, m->cin - hc, S);
      nn_resblock_forward(&m->rb, ps, &m->ra, m->cat, u->te, mb->scratch);
      h = m->ra.out;
      hc = m->cout;
    } else if (m->type == VU_UP) {
      nn_upsample2x_forward(m->upb, h, B * m->cin, m->H, m->H);
      nn_conv2d_dims du = nn_conv2d_make(B, m->cin, 2 * m->H, 2 * m->H, m->cout, 3, 1, 1);
      nn_conv2d_forward(m->out, m->upb, PD(m->cw), PD(m->cb), &du, mb->scratch);
      h = m->out;
    }
  }
  u->dlast = NULL;
  nn_groupnorm_forward(u->on, u->om, u->orr, h, PD(u->onw), PD(u->onb), B, hc, (int)S0, 8, 1e-5f, NN_ACT_SILU);
  d = nn_conv2d_make(B, hc, R, R, u->cout, 3, 1, 1);
  nn_conv2d_forward(u->y, u->on, PD(u->ocw), PD(u->ocb), &d, mb->scratch);
  return nn_mse_forward(u->y, u->target, NULL, 1, (size_t)B * u->cout * S0);
}

static void vunet_backward(vunet *u) {
  model_base *mb = &u->mb;
  nn_params *ps = &mb->ps;
  int B = u->B, R = u->R;
  size_t S0 = (size_t)R * R;
  /* zero the activation gradients that accumulate */
  for (int k = 0; k < u->nhs; k++) {
    size_t n = 0;
    if (k == 0) n = (size_t)B * 32 * S0;
    else {
      vu_mod *m = &u->down[k - 1];
      int Ho = m->type == VU_DOWN ? m->H / 2 : m->H;
      n = (size_t)B * m->cout * Ho * Ho;
    }
    nn_zero(u->dhs[k], n);
  }
  int Hm = u->down[u->nd - 1].H, cm = u->down[u->nd - 1].cout;
  size_t nm = (size_t)B * cm * Hm * Hm;
  nn_zero(u->dmid1, nm);
  nn_zero(u->dattn, nm);
  nn_zero(u->dmid2, nm);
  nn_zero(u->dte, (size_t)B * u->tdim);
  nn_zero(u->ds1, (size_t)B * u->tdim);
  nn_zero(u->dz1, (size_t)B * u->tdim);
  nn_zero(u->don, (size_t)B * 32 * S0);
  for (int i = 0; i < u->nu; i++) {
    vu_mod *m = &u->up[i];
    if (m->type == VU_RES) nn_zero(m->dout, (size_t)B * m->cout * m->H * m->H);
    else if (m->type == VU_UP) nn_zero(m->dout, (size_t)B * m->cout * 4 * m->H * m->H);
  }
  nn_mse_backward(u->dy, u->y, u->target, NULL, 1, (size_t)B * u->cout * S0, 1.f);
  int hc = 32;
  nn_conv2d_dims d = nn_conv2d_make(B, hc, R, R, u->cout, 3, 1, 1);
  nn_conv2d_backward(u->don, PG(u->ocw), PG(u->ocb), u->dy, u->on, PD(u->ocw), &d, mb->scratch);
  /* the last up module's output gradient */
  vu_mod *last = &u->up[u->nu - 1];
  const float *hlast = vu_outp(last);
  nn_groupnorm_backward(last->dout, PG(u->onw), PG(u->onb), u->don, hlast, u->om, u->orr, PD(u->onw), PD(u->onb), B,
                        hc, (int)S0, 8, NN_ACT_SILU);
  for (int i = u->nu - 1; i >= 0; i--) {
    vu_mod *m = &u->up[i];
    if (m->type != VU_RES && m->type != VU_UP) continue;
    /* gradient and value of this module's input h (previous module's output or mid2) */
    int j = i - 1;
    while (j >= 0 && u->up[j].type != VU_RES && u->up[j].type != VU_UP) j--;
    float *dprev = j >= 0 ? u->up[j].dout : u->dmid2;
    const float *prev = j >= 0 ? vu_outp(&u->up[j]) : u->m2a.out;
    int pc = j >= 0 ? u->up[j].cout : cm;
    if (m->type == VU_RES) {
      int S = m->H * m->H;
      nn_zero(m->dcat, (size_t)B * m->cin * S);
      nn_resblock_backward(&m->rb, ps, &m->ra, m->dcat, u->dte, m->dout, m->cat, u->te, mb->work, mb->scratch);
      nn_concat_backward(dprev, u->dhs[m->skip], m->dcat, B, pc, m->cin - pc, S);
    } else {
      size_t S2 = (size_t)4 * m->H * m->H;
      nn_zero(m->dupb, (size_t)B * m->cin * S2);
      nn_conv2d_dims du = nn_conv2d_make(B, m->cin, 2 * m->H, 2 * m->H, m->cout, 3, 1, 1);
      nn_conv2d_backward(m->dupb, PG(m->cw), PG(m->cb), m->dout, m->upb, PD(m->cw), &du, mb->scratch);
      nn_upsample2x_backward(dprev, m->dupb, B * m->cin, m->H, m->H);
    }
    (void)prev;
  }
  nn_resblock_backward(&u->mid2, ps, &u->m2a, u->dattn, u->dte, u->dmid2, u->aa.out, u->te, mb->work, mb->scratch);
  nn_attnblock_backward(&u->attn, ps, &u->aa, u->dmid1, u->dattn, u->m1a.out, mb->work, mb->scratch);
  nn_resblock_backward(&u->mid1, ps, &u->m1a, u->dhs[u->nhs - 1], u->dte, u->dmid1, u->hs[u->nhs - 1], u->te,
                       mb->work, mb->scratch);
  for (int i = u->nd - 1; i >= 0; i--) {
    vu_mod *m = &u->down[i];
    /* input of down[i] is hs[i], its output hs[i+1] */
    if (m->type == VU_RES)
      nn_resblock_backward(&m->rb, ps, &m->ra, u->dhs[i], u->dte, u->dhs[i + 1], u->hs[i], u->te, mb->work,
                           mb->scratch);
    else {
      nn_conv2d_dims dd = nn_conv2d_make(B, m->cin, m->H, m->H, m->cout, 3, 2, 1);
      nn_conv2d_backward(u->dhs[i], PG(m->cw), PG(m->cb), u->dhs[i + 1], u->hs[i], PD(m->cw), &dd, mb->scratch);
    }
  }
  d = nn_conv2d_make(B, u->cin, R, R, 32, 3, 1, 1);
  nn_conv2d_backward(NULL, PG(u->inw), PG(u->inb), u->dhs[0], u->xin, PD(u->inw), &d, mb->scratch);
  nn_linear_backward(u->ds1, PG(u->t2w), PG(u->t2b), u->dte, u->s1, PD(u->t2w), B, u->tdim, u->tdim);
  nn_act_backward(u->dz1, u->ds1, u->z1, (size_t)B * u->tdim, NN_ACT_SILU);
  nn_linear_backward(NULL, PG(u->t0w), PG(u->t0b), u->dz1, u->e0, PD(u->t0w), B, u->tch, u->tdim);
}

/* =============================================================================================
 * ResNet-18, 6 input channels, BatchNorm in training mode */

typedef struct {
  model_base mb;
  int B, R;
  size_t stw, sbw, sbb, fcw, fcb;
  nn_basicblock blk[8];
  nn_basicblock_act ba[8];
  float *x, *target, *h0, *bm, *br, *a0, *p0, *gap, *y;
  int32_t *arg;
  float *dy, *dgap, *dp0, *da0, *dblk[8];
  int H0, Hp;
} resnet;

static void resnet_build(resnet *n, int B, int R) {
  model_base *mb = &n->mb;
  memset(n, 0, sizeof *n);
  n->B = B;
  n->R = R;
  nn_params *ps = &mb->ps;
  nn_params_init(ps);
  n->stw = nn_params_add4(ps, "stem.0.weight", 64, 6, 7, 7);
  n->sbw = nn_params_add4(ps, "stem.1.weight", 64, 0, 0, 0);
  n->sbb = nn_params_add4(ps, "stem.1.bias", 64, 0, 0, 0);
  int c = 64, k = 0, cs[4] = {64, 128, 256, 512}, st[4] = {1, 2, 2, 2};
  char name[32];
  for (int s = 0; s < 4; s++)
    for (int j = 0; j < 2; j++) {
      snprintf(name, sizeof name, "layers.%d", k);
      nn_basicblock_init(&n->blk[k++], ps, name, c, cs[s], j ? 1 : st[s]);
      c = cs[s];
    }
  n->fcw = nn_params_add4(ps, "fc.weight", 512, 512, 0, 0);
  n->fcb = nn_params_add4(ps, "fc.bias", 512, 0, 0, 0);
  char err[SP_ERRLEN];
  if (nn_params_alloc_train(ps, 0, err)) exit(1);
  nn_params_init_default(ps, 2);
  nn_conv2d_dims d = nn_conv2d_make(B, 6, R, R, 64, 7, 2, 3);
  n->H0 = d.Ho;
  n->Hp = (d.Ho + 2 - 3) / 2 + 1;
  for (int pass = 0; pass < 2; pass++) {
    if (pass) nn_arena_init(&mb->ar, mb->ar.used);
    n->x = A(B * 6 * R * R);
    n->target = A(B * 512);
    n->h0 = A(B * 64 * n->H0 * n->H0);
    n->bm = A(64);
    n->br = A(64);
    n->a0 = A(B * 64 * n->H0 * n->H0);
    n->da0 = A(B * 64 * n->H0 * n->H0);
    n->p0 = A(B * 64 * n->Hp * n->Hp);
    n->dp0 = A(B * 64 * n->Hp * n->Hp);
    n->arg = (int32_t *)A(B * 64 * n->Hp * n->Hp);
    int H = n->Hp;
    for (k = 0; k < 8; k++) {
      nn_basicblock_act_alloc(&n->ba[k], &n->blk[k], &mb->ar, B, H, H);
      H = n->ba[k].Ho;
      n->dblk[k] = A(B * n->blk[k].cout * H * H);
    }
    n->gap = A(B * 512);
    n->dgap = A(B * 512);
    n->y = A(B * 512);
    n->dy = A(B * 512);
  }
  NEED_S(nn_conv2d_scratch(&d));
  NEED_W((size_t)B * 64 * d.Ho * d.Wo);  // stem BN gradient
  mb->fwd_flops = conv2d_flops(&d) + 2.0 * B * 512 * 512;
  int H = n->Hp;
  for (k = 0; k < 8; k++) {
    nn_basicblock *b = &n->blk[k];
    NEED_S(nn_basicblock_scratch(b, B, H, H));
    NEED_W(nn_basicblock_work(b, B, H, H));
    nn_conv2d_dims d1 = nn_conv2d_make(B, b->cin, H, H, b->cout, 3, b->stride, 1);
    nn_conv2d_dims d2 = nn_conv2d_make(B, b->cout, d1.Ho, d1.Wo, b->cout, 3, 1, 1);
    mb->fwd_flops += conv2d_flops(&d1) + conv2d_flops(&d2);
    if (b->scw != NN_NONE) {
      nn_conv2d_dims ds = nn_conv2d_make(B, b->cin, H, H, b->cout, 1, b->stride, 0);
      mb->fwd_flops += conv2d_flops(&ds);
    }
    H = d1.Ho;
  }
  mb->scratch = aligned_alloc(64, (mb->scratch_n * 4 + 63) / 64 * 64);
  mb->work = aligned_alloc(64, (mb->work_n * 4 + 63) / 64 * 64);
  sp_mt19937 r;
  sp_mt_seed(&r, 1);
  randn(n->x, (size_t)B * 6 * R * R, &r);
  randn(n->target, (size_t)B * 512, &r);
}

static float resnet_forward(resnet *n) {
  model_base *mb = &n->mb;
  nn_params *ps = &mb->ps;
  int B = n->B;
  nn_conv2d_dims d = nn_conv2d_make(B, 6, n->R, n->R, 64, 7, 2, 3);
  nn_conv2d_forward(n->h0, n->x, PD(n->stw), NULL, &d, mb->scratch);
  nn_batchnorm_forward(n->a0, n->bm, n->br, NULL, NULL, n->h0, PD(n->sbw), PD(n->sbb), B, 64, n->H0 * n->H0, 1e-5f,
                       0.1f, NN_ACT_RELU);
  nn_maxpool_forward(n->p0, n->arg, n->a0, B * 64, n->H0, n->H0, 3, 2, 1, n->Hp, n->Hp);
  const float *h = n->p0;
  for (int k = 0; k < 8; k++) {
    nn_basicblock_forward(&n->blk[k], ps, &n->ba[k], h, mb->scratch);
    h = n->ba[k].out;
  }
  int S = n->ba[7].Ho * n->ba[7].Wo;
  nn_gap_forward(n->gap, h, B * 512, S);
  nn_linear_forward(n->y, n->gap, PD(n->fcw), PD(n->fcb), B, 512, 512);
  return nn_mse_forward(n->y, n->target, NULL, 1, (size_t)B * 512);
}

static void resnet_backward(resnet *n) {
  model_base *mb = &n->mb;
  nn_params *ps = &mb->ps;
  int B = n->B;
  nn_mse_backward(n->dy, n->y, n->target, NULL, 1, (size_t)B * 512, 1.f);
  nn_zero(n->dgap, (size_t)B * 512);
  nn_linear_backward(n->dgap, PG(n->fcw), PG(n->fcb), n->dy, n->gap, PD(n->fcw), B, 512, 512);
  int S = n->ba[7].Ho * n->ba[7].Wo;
  nn_zero(n->dblk[7], (size_t)B * 512 * S);
  nn_gap_backward(n->dblk[7], n->dgap, B * 512, S);
  for (int k = 7; k >= 0; k--) {
    float *dx = k ? n->dblk[k - 1] : n->dp0;
    const float *x = k ? n->ba[k - 1].out : n->p0;
    size_t nx = k ? (size_t)B * n->blk[k - 1].cout * n->ba[k - 1].Ho * n->ba[k - 1].Wo : (size_t)B * 64 * n->Hp * n->Hp;
    nn_zero(dx, nx);
    nn_basicblock_backward(&n->blk[k], ps, &n->ba[k], dx, n->dblk[k], x, mb->work, mb->scratch);
  }
  nn_zero(n->da0, (size_t)B * 64 * n->H0 * n->H0);
  nn_maxpool_backward(n->da0, n->dp0, n->arg, B * 64, n->H0, n->H0, n->Hp, n->Hp);
  /* BN+ReLU backward into a temporary (reuse h0's gradient slot: dp0 is free now is too small) */
  float *dh0 = mb->work;
  nn_zero(dh0, (size_t)B * 64 * n->H0 * n->H0);
  nn_batchnorm_backward(dh0, PG(n->sbw), PG(n->sbb), n->da0, n->h0, n->bm, n->br, PD(n->sbw), PD(n->sbb), B, 64,
                        n->H0 * n->H0, NN_ACT_RELU);
  nn_conv2d_dims d = nn_conv2d_make(B, 6, n->R, n->R, 64, 7, 2, 3);
  nn_conv2d_backward(NULL, PG(n->stw), NULL, dh0, n->x, PD(n->stw), &d, mb->scratch);
}

/* =============================================================================================
 * Diffusion Policy ConditionalUnet1D: down dims (256, 512, 1024), kernel 5, 8 groups, step
 * embedding 256, global cond 1032, horizon 16, action dim 4 */

typedef struct {
  nn_crb1d r1, r2;
  nn_crb1d_act a1, a2;
  size_t sw, sb;  // down conv / up convT (NN_NONE if absent)
  int T, c;       // time length at this level's blocks, their output channels
  float *sout, *dsout;  // resampler output and gradient
  float *cat, *dcat;    // up: concat input
  float *d1, *d2;       // gradients of r1 and r2 outputs
} dp_level;

typedef struct {
  model_base mb;
  int B, T, adim, gdim, dsed, cdim;
  size_t t0w, t0b, t2w, t2b, f0w, f0b, fgw, fgb, f1w, f1b;
  dp_level down[3], up[2];
  nn_crb1d mid[2];
  nn_crb1d_act ma[2];
  float *x, *xt, *t, *gc, *target, *e0, *z1, *mz1, *te, *cond, *f0, *fm, *fr, *fa, *y, *yt;
  float *dyt, *dy, *dfa, *df0, *dcond, *dte, *dmz1, *dz1, *dmid[2];
} dpunet;

static void dp_build(dpunet *u, int B) {
  model_base *mb = &u->mb;
  memset(u, 0, sizeof *u);
  u->B = B;
  u->T = 16;
  u->adim = 4;
  u->gdim = 1032;
  u->dsed = 256;
  u->cdim = u->dsed + u->gdim;
  int dims[4] = {4, 256, 512, 1024}, K = 5, G = 8;
  nn_params *ps = &mb->ps;
  nn_params_init(ps);
  u->t0w = nn_params_add4(ps, "temb.0.weight", 4 * u->dsed, u->dsed, 0, 0);
  u->t0b = nn_params_add4(ps, "temb.0.bias", 4 * u->dsed, 0, 0, 0);
  u->t2w = nn_params_add4(ps, "temb.2.weight", u->dsed, 4 * u->dsed, 0, 0);
  u->t2b = nn_params_add4(ps, "temb.2.bias", u->dsed, 0, 0, 0);
  char name[64];
  int T = u->T;
  for (int i = 0; i < 3; i++) {
    dp_level *l = &u->down[i];
    snprintf(name, sizeof name, "down.%d.0", i);
    nn_crb1d_init(&l->r1, ps, name, dims[i], dims[i + 1], u->cdim, K, G);
    snprintf(name, sizeof name, "down.%d.1", i);
    nn_crb1d_init(&l->r2, ps, name, dims[i + 1], dims[i + 1], u->cdim, K, G);
    l->T = T;
    l->c = dims[i + 1];
    l->sw = l->sb = NN_NONE;
    if (i < 2) {
      snprintf(name, sizeof name, "down.%d.2.weight", i);
      l->sw = nn_params_add4(ps, name, l->c, l->c, 3, 0);
      snprintf(name, sizeof name, "down.%d.2.bias", i);
      l->sb = nn_params_add4(ps, name, l->c, 0, 0, 0);
      T /= 2;
    }
  }
  for (int i = 0; i < 2; i++) {
    snprintf(name, sizeof name, "mid.%d", i);
    nn_crb1d_init(&u->mid[i], ps, name, 1024, 1024, u->cdim, K, G);
  }
  for (int i = 0; i < 2; i++) {
    dp_level *l = &u->up[i];
    int a = dims[2 - i], b = dims[3 - i];  // reversed(io[1:]): (512,1024), (256,512)
    snprintf(name, sizeof name, "up.%d.0", i);
    nn_crb1d_init(&l->r1, ps, name, 2 * b, a, u->cdim, K, G);
    snprintf(name, sizeof name, "up.%d.1", i);
    nn_crb1d_init(&l->r2, ps, name, a, a, u->cdim, K, G);
    snprintf(name, sizeof name, "up.%d.2.weight", i);
    l->sw = nn_params_add4(ps, name, a, a, 4, 0);
    snprintf(name, sizeof name, "up.%d.2.bias", i);
    l->sb = nn_params_add4(ps, name, a, 0, 0, 0);
    l->T = T;
    l->c = a;
    T *= 2;
  }
  u->f0w = nn_params_add4(ps, "final.0.b.0.weight", 256, 256, K, 0);
  u->f0b = nn_params_add4(ps, "final.0.b.0.bias", 256, 0, 0, 0);
  u->fgw = nn_params_add4(ps, "final.0.b.1.weight", 256, 0, 0, 0);
  u->fgb = nn_params_add4(ps, "final.0.b.1.bias", 256, 0, 0, 0);
  u->f1w = nn_params_add4(ps, "final.1.weight", u->adim, 256, 1, 0);
  u->f1b = nn_params_add4(ps, "final.1.bias", u->adim, 0, 0, 0);
  char err[SP_ERRLEN];
  if (nn_params_alloc_train(ps, 0, err)) exit(1);
  nn_params_init_default(ps, 3);
  for (int pass = 0; pass < 2; pass++) {
    if (pass) nn_arena_init(&mb->ar, mb->ar.used);
    u->x = A(B * 16 * 4);
    u->xt = A(B * 4 * 16);
    u->t = A(B);
    u->gc = A(B * u->gdim);
    u->target = A(B * 16 * 4);
    u->e0 = A(B * u->dsed);
    u->z1 = A(B * 4 * u->dsed);
    u->mz1 = A(B * 4 * u->dsed);
    u->dz1 = A(B * 4 * u->dsed);
    u->dmz1 = A(B * 4 * u->dsed);
    u->te = A(B * u->dsed);
    u->dte = A(B * u->dsed);
    u->cond = A(B * u->cdim);
    u->dcond = A(B * u->cdim);
    for (int i = 0; i < 3; i++) {
      dp_level *l = &u->down[i];
      nn_crb1d_act_alloc(&l->a1, &l->r1, &mb->ar, B, l->T);
      nn_crb1d_act_alloc(&l->a2, &l->r2, &mb->ar, B, l->T);
      l->d1 = A(B * l->c * l->T);
      l->d2 = A(B * l->c * l->T);
      if (l->sw != NN_NONE) {
        l->sout = A(B * l->c * l->T / 2);
        l->dsout = A(B * l->c * l->T / 2);
      }
    }
    for (int i = 0; i < 2; i++) {
      nn_crb1d_act_alloc(&u->ma[i], &u->mid[i], &mb->ar, B, 4);
      u->dmid[i] = A(B * 1024 * 4);
    }
    for (int i = 0; i < 2; i++) {
      dp_level *l = &u->up[i];
      l->cat = A(B * l->r1.cin * l->T);
      l->dcat = A(B * l->r1.cin * l->T);
      nn_crb1d_act_alloc(&l->a1, &l->r1, &mb->ar, B, l->T);
      nn_crb1d_act_alloc(&l->a2, &l->r2, &mb->ar, B, l->T);
      l->d1 = A(B * l->c * l->T);
      l->d2 = A(B * l->c * l->T);
      l->sout = A(B * l->c * l->T * 2);
      l->dsout = A(B * l->c * l->T * 2);
    }
    u->f0 = A(B * 256 * 16);
    u->df0 = A(B * 256 * 16);
    u->fm = A(B * 8);
    u->fr = A(B * 8);
    u->fa = A(B * 256 * 16);
    u->dfa = A(B * 256 * 16);
    u->y = A(B * 4 * 16);
    u->dy = A(B * 4 * 16);
    u->yt = A(B * 16 * 4);
    u->dyt = A(B * 16 * 4);
  }
  /* scratch, work, FLOPs */
  mb->fwd_flops = 2.0 * B * (u->dsed * 4.0 * u->dsed * 2);
#define CRB_COST(r, T)                                                                            \
  do {                                                                                            \
    NEED_S(nn_crb1d_scratch(r, B, T));                                                            \
    NEED_W(nn_crb1d_work(r, B, T));                                                               \
    mb->fwd_flops += 2.0 * B * (T) * (double)(r)->K * (r)->cout * ((r)->cin + (r)->cout) +        \
                     2.0 * B * (r)->cdim * 2.0 * (r)->cout;                                       \
    if ((r)->cin != (r)->cout) mb->fwd_flops += 2.0 * B * (T) * (double)(r)->cin * (r)->cout;    \
  } while (0)
  for (int i = 0; i < 3; i++) {
    dp_level *l = &u->down[i];
    CRB_COST(&l->r1, l->T);
    CRB_COST(&l->r2, l->T);
    if (l->sw != NN_NONE) {
      nn_conv1d_dims d = nn_conv1d_make(B, l->c, l->T, l->c, 3, 2, 1);
      NEED_S(nn_conv1d_scratch(&d));
      mb->fwd_flops += 2.0 * B * d.To * (double)l->c * l->c * 3;
    }
  }
  CRB_COST(&u->mid[0], 4);
  CRB_COST(&u->mid[1], 4);
  for (int i = 0; i < 2; i++) {
    dp_level *l = &u->up[i];
    CRB_COST(&l->r1, l->T);
    CRB_COST(&l->r2, l->T);
    nn_conv1d_dims d = nn_convt1d_make(B, l->c, l->T, l->c, 4, 2, 1);
    NEED_S(nn_convt1d_scratch(&d));
    mb->fwd_flops += 2.0 * B * l->T * (double)l->c * l->c * 4;
  }
  nn_conv1d_dims d0 = nn_conv1d_make(B, 256, 16, 256, K, 1, K / 2), d1 = nn_conv1d_make(B, 256, 16, 4, 1, 1, 0);
  NEED_S(nn_conv1d_scratch(&d0));
  NEED_S(nn_conv1d_scratch(&d1));
  mb->fwd_flops += 2.0 * B * 16 * 256.0 * 256 * K + 2.0 * B * 16 * 256 * 4;
  NEED_W((size_t)B * 256 * 16 * 2);
  mb->scratch = aligned_alloc(64, (mb->scratch_n * 4 + 63) / 64 * 64);
  mb->work = aligned_alloc(64, (mb->work_n * 4 + 63) / 64 * 64);
  sp_mt19937 r;
  sp_mt_seed(&r, 2);
  randn(u->x, (size_t)B * 64, &r);
  randn(u->gc, (size_t)B * u->gdim, &r);
  randn(u->target, (size_t)B * 64, &r);
  for (int b = 0; b < B; b++) u->t[b] = (float)(sp_mt_u32(&r) % 100);
}

static void transpose_btc(float *out, const float *in, int B, int T, int C) {  // (B,T,C)->(B,C,T)
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) out[((size_t)b * C + c) * T + t] = in[((size_t)b * T + t) * C + c];
}

static float dp_forward(dpunet *u) {
  model_base *mb = &u->mb;
  nn_params *ps = &mb->ps;
  int B = u->B;
  transpose_btc(u->xt, u->x, B, 16, 4);
  nn_timestep_embedding(u->e0, u->t, B, u->dsed, 1, 1);
  nn_linear_forward(u->z1, u->e0, PD(u->t0w), PD(u->t0b), B, u->dsed, 4 * u->dsed);
  nn_act_forward(u->mz1, u->z1, (size_t)B * 4 * u->dsed, NN_ACT_MISH);
  nn_linear_forward(u->te, u->mz1, PD(u->t2w), PD(u->t2b), B, 4 * u->dsed, u->dsed);
  nn_concat_forward(u->cond, u->te, u->gc, B, u->dsed, u->gdim, 1);
  const float *h = u->xt;
  for (int i = 0; i < 3; i++) {
    dp_level *l = &u->down[i];
    nn_crb1d_forward(&l->r1, ps, &l->a1, h, u->cond, mb->scratch);
    nn_crb1d_forward(&l->r2, ps, &l->a2, l->a1.out, u->cond, mb->scratch);
    h = l->a2.out;
    if (l->sw != NN_NONE) {
      nn_conv1d_dims d = nn_conv1d_make(B, l->c, l->T, l->c, 3, 2, 1);
      nn_conv1d_forward(l->sout, h, PD(l->sw), PD(l->sb), &d, mb->scratch);
      h = l->sout;
    }
  }
  for (int i = 0; i < 2; i++) {
    nn_crb1d_forward(&u->mid[i], ps, &u->ma[i], h, u->cond, mb->scratch);
    h = u->ma[i].out;
  }
  int hc = 1024;
  for (int i = 0; i < 2; i++) {
    dp_level *l = &u->up[i], *sk = &u->down[2 - i];
    nn_concat_forward(l->cat, h, sk->a2.out, B, hc, sk->c, l->T);
    nn_crb1d_forward(&l->r1, ps, &l->a1, l->cat, u->cond, mb->scratch);
    nn_crb1d_forward(&l->r2, ps, &l->a2, l->a1.out, u->cond, mb->scratch);
    nn_conv1d_dims d = nn_convt1d_make(B, l->c, l->T, l->c, 4, 2, 1);
    nn_convt1d_forward(l->sout, l->a2.out, PD(l->sw), PD(l->sb), &d, mb->scratch);
    h = l->sout;
    hc = l->c;
  }
  nn_conv1d_dims d0 = nn_conv1d_make(B, 256, 16, 256, 5, 1, 2), d1 = nn_conv1d_make(B, 256, 16, 4, 1, 1, 0);
  nn_conv1d_forward(u->f0, h, PD(u->f0w), PD(u->f0b), &d0, mb->scratch);
  nn_groupnorm_forward(u->fa, u->fm, u->fr, u->f0, PD(u->fgw), PD(u->fgb), B, 256, 16, 8, 1e-5f, NN_ACT_MISH);
  nn_conv1d_forward(u->y, u->fa, PD(u->f1w), PD(u->f1b), &d1, mb->scratch);
  transpose_btc(u->yt, u->y, B, 4, 16);  // (B, 4, 16) -> (B, 16, 4)
  return nn_mse_forward(u->yt, u->target, NULL, 1, (size_t)B * 64);
}

static void dp_backward(dpunet *u) {
  model_base *mb = &u->mb;
  nn_params *ps = &mb->ps;
  int B = u->B;
  nn_mse_backward(u->dyt, u->yt, u->target, NULL, 1, (size_t)B * 64, 1.f);
  transpose_btc(u->dy, u->dyt, B, 16, 4);
  nn_zero(u->dfa, (size_t)B * 256 * 16);
  nn_zero(u->df0, (size_t)B * 256 * 16);
  nn_zero(u->dcond, (size_t)B * u->cdim);
  nn_conv1d_dims d0 = nn_conv1d_make(B, 256, 16, 256, 5, 1, 2), d1 = nn_conv1d_make(B, 256, 16, 4, 1, 1, 0);
  nn_conv1d_backward(u->dfa, PG(u->f1w), PG(u->f1b), u->dy, u->fa, PD(u->f1w), &d1, mb->scratch);
  nn_groupnorm_backward(u->df0, PG(u->fgw), PG(u->fgb), u->dfa, u->f0, u->fm, u->fr, PD(u->fgw), PD(u->fgb), B, 256,
                        16, 8, NN_ACT_MISH);
  dp_level *lu = &u->up[1];
  nn_zero(lu->dsout, (size_t)B * lu->c * lu->T * 2);
  nn_conv1d_backward(lu->dsout, PG(u->f0w), PG(u->f0b), u->df0, lu->sout, PD(u->f0w), &d0, mb->scratch);
  for (int i = 0; i < 3; i++) {
    dp_level *l = &u->down[i];
    nn_zero(l->d1, (size_t)B * l->c * l->T);
    nn_zero(l->d2, (size_t)B * l->c * l->T);
    if (l->sw != NN_NONE) nn_zero(l->dsout, (size_t)B * l->c * l->T / 2);
  }
  nn_zero(u->up[0].dsout, (size_t)B * u->up[0].c * u->up[0].T * 2);
  nn_zero(u->dmid[0], (size_t)B * 4096);
  nn_zero(u->dmid[1], (size_t)B * 4096);
  for (int i = 1; i >= 0; i--) {
    dp_level *l = &u->up[i], *sk = &u->down[2 - i];
    float *dprev = i ? u->up[0].dsout : u->dmid[1];
    int pc = i ? u->up[0].c : 1024;
    nn_zero(l->d1, (size_t)B * l->c * l->T);
    nn_zero(l->d2, (size_t)B * l->c * l->T);
    nn_zero(l->dcat, (size_t)B * l->r1.cin * l->T);
    nn_conv1d_dims d = nn_convt1d_make(B, l->c, l->T, l->c, 4, 2, 1);
    nn_convt1d_backward(l->d2, PG(l->sw), PG(l->sb), l->dsout, l->a2.out, PD(l->sw), &d, mb->scratch);
    nn_crb1d_backward(&l->r2, ps, &l->a2, l->d1, u->dcond, l->d2, l->a1.out, u->cond, mb->work, mb->scratch);
    nn_crb1d_backward(&l->r1, ps, &l->a1, l->dcat, u->dcond, l->d1, l->cat, u->cond, mb->work, mb->scratch);
    nn_concat_backward(dprev, sk->d2, l->dcat, B, pc, sk->c, l->T);
  }
  nn_crb1d_backward(&u->mid[1], ps, &u->ma[1], u->dmid[0], u->dcond, u->dmid[1], u->ma[0].out, u->cond, mb->work,
                    mb->scratch);
  float *dh = u->down[2].d2;  // mid[0] input is down[2]'s r2 output (no resampler at the last level)
  nn_crb1d_backward(&u->mid[0], ps, &u->ma[0], dh, u->dcond, u->dmid[0], u->down[2].a2.out, u->cond, mb->work,
                    mb->scratch);
  for (int i = 2; i >= 0; i--) {
    dp_level *l = &u->down[i];
    if (l->sw != NN_NONE) {
      /* the next level's r1 backward wrote into this level's dsout */
      nn_conv1d_dims d = nn_conv1d_make(B, l->c, l->T, l->c, 3, 2, 1);
      nn_conv1d_backward(l->d2, PG(l->sw), PG(l->sb), l->dsout, l->a2.out, PD(l->sw), &d, mb->scratch);
    }
    nn_crb1d_backward(&l->r2, ps, &l->a2, l->d1, u->dcond, l->d2, l->a1.out, u->cond, mb->work, mb->scratch);
    float *dx = i ? u->down[i - 1].dsout : NULL;
    const float *x = i ? u->down[i - 1].sout : u->xt;
    nn_crb1d_backward(&l->r1, ps, &l->a1, dx, u->dcond, l->d1, x, u->cond, mb->work, mb->scratch);
  }
  /* cond = [te | gc]: only te has parameters behind it */
  nn_zero(u->dte, (size_t)B * u->dsed);
  nn_zero(u->dmz1, (size_t)B * 4 * u->dsed);
  nn_zero(u->dz1, (size_t)B * 4 * u->dsed);
  nn_concat_backward(u->dte, NULL, u->dcond, B, u->dsed, u->gdim, 1);
  nn_linear_backward(u->dmz1, PG(u->t2w), PG(u->t2b), u->dte, u->mz1, PD(u->t2w), B, 4 * u->dsed, u->dsed);
  nn_act_backward(u->dz1, u->dmz1, u->z1, (size_t)B * 4 * u->dsed, NN_ACT_MISH);
  nn_linear_backward(NULL, PG(u->t0w), PG(u->t0b), u->dz1, u->e0, PD(u->t0w), B, u->dsed, 4 * u->dsed);
}

/* =============================================================================================
 * harness */

typedef float (*fwd_fn)(void *m);
typedef void (*bwd_fn)(void *m);

static int g_train = 1, g_infer = 1;  // which halves to run

static void run_case(const char *name, void *m, model_base *mb, fwd_fn fwd, bwd_fn bwd, int warm, int iters,
                     int infer_ddim, int B, size_t per) {
  nn_adamw_cfg cfg = nn_adamw_defaults();
  double ts[64], ti[64];
  float first = 0.f;
  for (int i = 0; g_train && i < warm + iters; i++) {
    double t0 = now_ms();
    nn_params_zero_grad(&mb->ps);
    float loss = fwd(m);
    bwd(m);
    nn_adamw_step(&mb->ps, &cfg, 1e-4f, i + 1);
    double t1 = now_ms();
    if (i == 0) first = loss;
    if (!isfinite(loss)) {
      fprintf(stderr, "%s: loss is %g at step %d\n", name, loss, i);
      exit(1);
    }
    if (i >= warm) ts[i - warm] = t1 - t0;
  }
  double med = median(ts, iters), step_flops = 3.0 * mb->fwd_flops;
  if (g_train)
    printf("%s_train c_ms=%.1f gflops=%.1f fwd_gflop=%.2f params=%.2fM loss0=%.5f arena_mb=%.0f\n", name, med,
         step_flops / med / 1e6, mb->fwd_flops / 1e9, mb->ps.total / 1e6, first, mb->ar.cap / 1048576.0);
  fflush(stdout);
  /* no-grad inference: one forward (plus one DDIM update for the video model) */
  nn_sched *s = malloc(sizeof *s);
  nn_sched_init(s, NN_SCHED_COSINE, 100, 0, 0, NULL);
  float *buf = infer_ddim ? malloc((size_t)B * per * 3 * 4) : NULL;
  /* inference weights are frozen (SP_BENCH_FREEZE=0 turns it off): transforms built in the
   * warm-up calls are kept; PyTorch's eager no-grad forward has no such cache */
  const char *fz = getenv("SP_BENCH_FREEZE");
  int freeze = g_infer && !(fz && !strcmp(fz, "0"));
  if (freeze) nn_weights_freeze(mb->ps.data, mb->ps.total);
  for (int i = 0; g_infer && i < warm + iters; i++) {
    double t0 = now_ms();
    fwd(m);
    if (infer_ddim) {
      vunet *u = m;
      size_t n = (size_t)B * per;
      nn_ddim_step(buf, u->y, u->x, NULL, s, 50, 45, 0.f, (int)n, NN_PRED_V, 1, buf + n, buf + 2 * n);
    }
    double t1 = now_ms();
    if (i >= warm) ti[i - warm] = t1 - t0;
  }
  if (freeze) nn_weights_thaw(mb->ps.data, mb->ps.total);
  med = median(ti, iters);
  if (g_infer)
    printf("%s_infer c_ms=%.1f gflops=%.1f\n", name, med, mb->fwd_flops / med / 1e6);
  fflush(stdout);
  free(s);
  free(buf);
}

static float vu_fwd(void *m) { return vunet_forward(m); }
static void vu_bwd(void *m) { vunet_backward(m); }
static float rn_fwd(void *m) { return resnet_forward(m); }
static void rn_bwd(void *m) { resnet_backward(m); }
static float dp_fwd(void *m) { return dp_forward(m); }
static void dp_bwd(void *m) { dp_backward(m); }

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  const char *cases = argc > 2 ? argv[2] : "unet32,unet64,resnet18,dp1d";
  int iters = argc > 3 ? atoi(argv[3]) : 10, warm = 3;
  if (iters < 1 || iters > 64) iters = 10;
  if (argc > 4) {
    g_train = strcmp(argv[4], "infer") != 0;
    g_infer = strcmp(argv[4], "train") != 0;
  }
  nn_init(threads);
  /* SP_NN_WINOGRAD=0|1|2: the convolution algorithms (the models' config field `winograd`) */
  const char *wm = getenv("SP_NN_WINOGRAD");
  if (wm && *wm) {
    if ((wm[0] != '0' && wm[0] != '1' && wm[0] != '2') || wm[1]) {
      fprintf(stderr, "bench_nn: SP_NN_WINOGRAD=%s: expected 0 (off), 1 (default) or 2 (always)\n", wm);
      return 2;
    }
    nn_conv2d_set_winograd(wm[0] - '0');
    nn_conv1d_set_winograd(wm[0] - '0');
  }
  printf("# bench_nn threads=%d iters=%d warm=%d\n", nn_threads(), iters, warm);
  char buf[256];
  snprintf(buf, sizeof buf, "%s", cases);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (!strncmp(tok, "unet", 4)) {
      int R = atoi(tok + 4);
      if (R < 8 || R > 256 || R % 4) {
        fprintf(stderr, "bench_nn: case %s: the video U-Net needs a resolution that is a multiple of 4 "
                        "in [8, 256], e.g. unet32\n", tok);
        return 2;
      }
      vunet *u = calloc(1, sizeof *u);
      vunet_build(u, 8, R);
      run_case(tok, u, &u->mb, vu_fwd, vu_bwd, warm, iters, 1, 8, (size_t)24 * R * R);
      nn_params_free(&u->mb.ps);
      nn_arena_free(&u->mb.ar);
      free(u->mb.scratch);
      free(u->mb.work);
      free(u);
    } else if (!strcmp(tok, "resnet18")) {
      resnet *n = calloc(1, sizeof *n);
      resnet_build(n, 32, 96);
      run_case(tok, n, &n->mb, rn_fwd, rn_bwd, warm, iters, 0, 32, 512);
      nn_params_free(&n->mb.ps);
      nn_arena_free(&n->mb.ar);
      free(n->mb.scratch);
      free(n->mb.work);
      free(n);
    } else if (!strncmp(tok, "dp1d", 4)) {
      int B = tok[4] ? atoi(tok + 4) : 64;
      if (B < 1 || B > 1024) {
        fprintf(stderr, "bench_nn: case %s: the policy network's batch must be in [1, 1024], e.g. dp1d64\n", tok);
        return 2;
      }
      dpunet *u = calloc(1, sizeof *u);
      dp_build(u, B);
      run_case(tok, u, &u->mb, dp_fwd, dp_bwd, warm, iters, 0, B, 64);
      nn_params_free(&u->mb.ps);
      nn_arena_free(&u->mb.ar);
      free(u->mb.scratch);
      free(u->mb.work);
      free(u);
    } else {
      fprintf(stderr, "bench_nn: unknown case '%s' (known: unet<R>, resnet18, dp1d[<B>])\n", tok);
      return 2;
    }
  }
  return 0;
}
