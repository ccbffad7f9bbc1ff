/* tests of src/nn training machinery: 10 AdamW steps of a tiny model against PyTorch's loss
 * trace (tests/fixtures/nn/train.safetensors), learning-rate and EMA schedules, checkpoints
 * (round trip, atomic write, corrupt and foreign files), diffusion schedules and samplers
 * (tests/fixtures/nn/diffusion.safetensors). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "nn/nn_blocks.h"
#include "nn/nn_diffusion.h"

static const float *tfx(const nn_safetensors *st, const char *key, size_t want) {
  size_t n = 0;
  const float *p = nn_st_f32(st, key, &n);
  cr_assert(p != NULL, "fixture tensor %s missing", key);
  cr_assert_eq(n, want, "fixture %s has %zu elements, want %zu", key, n, want);
  return p;
}

static double rel(double a, double b) { return fabs(a - b) / (fabs(b) + 1e-30); }

/* ---------------------------------------------------------------------------------------------
 * tiny model: temb MLP -> conv_in -> ResBlock -> Attn -> GN+SiLU -> conv_out (B 2, 3x6x6) */

enum { TB = 2, TC = 3, TH = 6, TS = 36 };

typedef struct {
  nn_params ps;
  size_t t0w, t0b, t2w, t2b, inw, inb, onw, onb, ocw, ocb;
  nn_resblock res;
  nn_attnblock attn;
  /* activations */
  nn_arena ar;
  float e0[TB * 8], z1[TB * 16], s1[TB * 16], te[TB * 16];
  float *h0, *om, *orr, *on, *y;
  nn_resblock_act ra;
  nn_attnblock_act aa;
  float *scratch, *work;
  /* gradients of activations */
  float dte[TB * 16], ds1[TB * 16], dz1[TB * 16];
  float *dy, *don, *dao, *dro, *dh0;
} tiny;

static void tiny_build(tiny *m) {
  char err[SP_ERRLEN];
  nn_params *ps = &m->ps;
  nn_params_init(ps);
  m->t0w = nn_params_add4(ps, "temb.0.weight", 16, 8, 0, 0);
  m->t0b = nn_params_add4(ps, "temb.0.bias", 16, 0, 0, 0);
  m->t2w = nn_params_add4(ps, "temb.2.weight", 16, 16, 0, 0);
  m->t2b = nn_params_add4(ps, "temb.2.bias", 16, 0, 0, 0);
  m->inw = nn_params_add4(ps, "inc.weight", 8, 3, 3, 3);
  m->inb = nn_params_add4(ps, "inc.bias", 8, 0, 0, 0);
  nn_resblock_init(&m->res, ps, "res", 8, 16, 16, 8);
  nn_attnblock_init(&m->attn, ps, "attn", 16, 2, 8);
  m->onw = nn_params_add4(ps, "outn.weight", 16, 0, 0, 0);
  m->onb = nn_params_add4(ps, "outn.bias", 16, 0, 0, 0);
  m->ocw = nn_params_add4(ps, "outc.weight", 3, 16, 3, 3);
  m->ocb = nn_params_add4(ps, "outc.bias", 3, 0, 0, 0);
  cr_assert_eq(nn_params_alloc_train(ps, 1, err), 0, "%s", err);
  /* measure, then allocate the activations */
  for (int pass = 0; pass < 2; pass++) {
    nn_arena *a = &m->ar;
    if (pass == 0) *a = (nn_arena){0};
    else {
      size_t need = a->used;
      cr_assert_eq(nn_arena_init(a, need), 0);
    }
    m->h0 = nn_arena_floats(a, TB * 8 * TS);
    m->om = nn_arena_floats(a, TB * 8);
    m->orr = nn_arena_floats(a, TB * 8);
    m->on = nn_arena_floats(a, TB * 16 * TS);
    m->y = nn_arena_floats(a, TB * TC * TS);
    m->dy = nn_arena_floats(a, TB * TC * TS);
    m->don = nn_arena_floats(a, TB * 16 * TS);
    m->dao = nn_arena_floats(a, TB * 16 * TS);
    m->dro = nn_arena_floats(a, TB * 16 * TS);
    m->dh0 = nn_arena_floats(a, TB * 8 * TS);
    nn_resblock_act_alloc(&m->ra, &m->res, a, TB, TH, TH);
    nn_attnblock_act_alloc(&m->aa, &m->attn, a, TB, TH, TH);
  }
  size_t sc = nn_resblock_scratch(&m->res, TB, TH, TH);
  size_t s2 = nn_attnblock_scratch(&m->attn, TB, TH, TH);
  nn_conv2d_dims di = nn_conv2d_make(TB, 3, TH, TH, 8, 3, 1, 1), dout = nn_conv2d_make(TB, 16, TH, TH, 3, 3, 1, 1);
  if (s2 > sc) sc = s2;
  if (nn_conv2d_scratch(&di) > sc) sc = nn_conv2d_scratch(&di);
  if (nn_conv2d_scratch(&dout) > sc) sc = nn_conv2d_scratch(&dout);
  m->scratch = calloc(sc, 4);
  size_t w = nn_resblock_work(&m->res, TB, TH, TH), w2 = nn_attnblock_work(&m->attn, TB, TH, TH);
  m->work = calloc(w > w2 ? w : w2, 4);
}

static void tiny_free(tiny *m) {
  nn_params_free(&m->ps);
  nn_arena_free(&m->ar);
  free(m->scratch);
  free(m->work);
}

#define PD(o) (m->ps.data + (o))
#define PG(o) (m->ps.grad + (o))

static float tiny_step_loss(tiny *m, const float *x, const float *t, const float *target,
                            const float *w) {
  nn_conv2d_dims di = nn_conv2d_make(TB, 3, TH, TH, 8, 3, 1, 1), dout = nn_conv2d_make(TB, 16, TH, TH, 3, 3, 1, 1);
  nn_params *ps = &m->ps;
  /* forward */
  nn_timestep_embedding(m->e0, t, TB, 8, 1, 1);
  nn_linear_forward(m->z1, m->e0, PD(m->t0w), PD(m->t0b), TB, 8, 16);
  nn_act_forward(m->s1, m->z1, TB * 16, NN_ACT_SILU);
  nn_linear_forward(m->te, m->s1, PD(m->t2w), PD(m->t2b), TB, 16, 16);
  nn_conv2d_forward(m->h0, x, PD(m->inw), PD(m->inb), &di, m->scratch);
  nn_resblock_forward(&m->res, ps, &m->ra, m->h0, m->te, m->scratch);
  nn_attnblock_forward(&m->attn, ps, &m->aa, m->ra.out, m->scratch);
  nn_groupnorm_forward(m->on, m->om, m->orr, m->aa.out, PD(m->onw), PD(m->onb), TB, 16, TS, 8, 1e-5f, NN_ACT_SILU);
  nn_conv2d_forward(m->y, m->on, PD(m->ocw), PD(m->ocb), &dout, m->scratch);
  float loss = nn_mse_forward(m->y, target, w, TB, TC * TS);
  /* backward */
  nn_params_zero_grad(ps);
  memset(m->don, 0, sizeof(float) * TB * 16 * TS);
  memset(m->dao, 0, sizeof(float) * TB * 16 * TS);
  memset(m->dro, 0, sizeof(float) * TB * 16 * TS);
  memset(m->dh0, 0, sizeof(float) * TB * 8 * TS);
  memset(m->dte, 0, sizeof m->dte);
  memset(m->ds1, 0, sizeof m->ds1);
  memset(m->dz1, 0, sizeof m->dz1);
  nn_mse_backward(m->dy, m->y, target, w, TB, TC * TS, 1.f);
  nn_conv2d_backward(m->don, PG(m->ocw), PG(m->ocb), m->dy, m->on, PD(m->ocw), &dout, m->scratch);
  nn_groupnorm_backward(m->dao, PG(m->onw), PG(m->onb), m->don, m->aa.out, m->om, m->orr, PD(m->onw), PD(m->onb), TB,
                        16, TS, 8, NN_ACT_SILU);
  nn_attnblock_backward(&m->attn, ps, &m->aa, m->dro, m->dao, m->ra.out, m->work, m->scratch);
  nn_resblock_backward(&m->res, ps, &m->ra, m->dh0, m->dte, m->dro, m->h0, m->te, m->work, m->scratch);
  nn_conv2d_backward(NULL, PG(m->inw), PG(m->inb), m->dh0, x, PD(m->inw), &di, m->scratch);
  nn_linear_backward(m->ds1, PG(m->t2w), PG(m->t2b), m->dte, m->s1, PD(m->t2w), TB, 16, 16);
  nn_act_backward(m->dz1, m->ds1, m->z1, TB * 16, NN_ACT_SILU);
  nn_linear_backward(NULL, PG(m->t0w), PG(m->t0b), m->dz1, m->e0, PD(m->t0w), TB, 8, 16);
  return loss;
}

static void load_prefixed(nn_params *ps, const nn_safetensors *st, const char *pre, float *dst) {
  char key[256];
  for (int i = 0; i < ps->n; i++) {
    snprintf(key, sizeof key, "%s%s", pre, ps->p[i].name);
    memcpy(dst + ps->p[i].offset, tfx(st, key, ps->p[i].numel), ps->p[i].numel * 4);
  }
}

Test(nn_train, adamw_10_steps_match_pytorch) {
  char err[SP_ERRLEN];
  nn_init(2);
  nn_safetensors st;
  cr_assert_eq(nn_st_open(&st, "tests/fixtures/nn/train.safetensors", err), 0, "%s", err);
  tiny *m = calloc(1, sizeof(tiny));
  tiny_build(m);
  load_prefixed(&m->ps, &st, "init.", m->ps.data);
  nn_ema_init(&m->ps);
  const float *xs = tfx(&st, "x", 10 * TB * TC * TS), *ys = tfx(&st, "target", 10 * TB * TC * TS);
  const float *ts = tfx(&st, "t", 20), *ws = tfx(&st, "w", 20), *want = tfx(&st, "loss", 10);
  const float *gn = tfx(&st, "gnorm", 10);
  nn_adamw_cfg cfg = nn_adamw_defaults();
  for (int step = 1; step <= 10; step++) {
    size_t o = (size_t)(step - 1) * TB * TC * TS;
    float loss = tiny_step_loss(m, xs + o, ts + 2 * (step - 1), ys + o, ws + 2 * (step - 1));
    float norm = nn_grad_clip(&m->ps, 1.f);
    nn_adamw_step(&m->ps, &cfg, nn_lr_cosine(3e-3f, step, 3, 10), step);
    nn_ema_update(&m->ps, nn_ema_power_decay(step, 0, 1.f, 0.75f, 0.f, 0.9999f));
    cr_expect(rel(loss, want[step - 1]) < 1e-4, "step %d: loss %.8g, PyTorch %.8g (rel %.3g)", step, loss,
              want[step - 1], rel(loss, want[step - 1]));
    cr_expect(rel(norm, gn[step - 1]) < 1e-3, "step %d: grad norm %.6g, PyTorch %.6g", step, norm, gn[step - 1]);
  }
  /* final weights and EMA */
  char key[256];
  double worst = 0, worst_ema = 0;
  for (int i = 0; i < m->ps.n; i++) {
    const nn_param *p = &m->ps.p[i];
    snprintf(key, sizeof key, "final.%s", p->name);
    const float *f = tfx(&st, key, p->numel);
    snprintf(key, sizeof key, "ema.%s", p->name);
    const float *e = tfx(&st, key, p->numel);
    for (size_t j = 0; j < p->numel; j++) {
      double a = fabs(m->ps.data[p->offset + j] - f[j]), b = fabs(m->ps.ema[p->offset + j] - e[j]);
      if (a > worst) worst = a;
      if (b > worst_ema) worst_ema = b;
    }
  }
  /* Adam's update m / sqrt(v) amplifies float rounding for parameters whose gradient is near
   * zero, so weights are compared at a third of one learning-rate step (3e-3) */
  cr_expect(worst < 1e-3, "final weights differ from PyTorch by up to %.3g", worst);
  cr_expect(worst_ema < 1e-3, "EMA weights differ from PyTorch by up to %.3g", worst_ema);
  tiny_free(m);
  free(m);
  nn_st_close(&st);
}

/* ---------------------------------------------------------------------------------------------
 * schedules */

Test(nn_train, lr_and_ema_schedules) {
  cr_expect_float_eq(nn_lr_cosine(1e-3f, 0, 10, 100), 0.f, 1e-9);
  cr_expect_float_eq(nn_lr_cosine(1e-3f, 5, 10, 100), 5e-4f, 1e-9);
  cr_expect_float_eq(nn_lr_cosine(1e-3f, 10, 10, 100), 1e-3f, 1e-9);
  cr_expect_float_eq(nn_lr_cosine(1e-3f, 55, 10, 100), 5e-4f, 1e-8);
  cr_expect_float_eq(nn_lr_cosine(1e-3f, 100, 10, 100), 0.f, 1e-9);
  /* Diffusion Policy EMA: 0 for the first two steps, then 1 - (1 + s)^-0.75 */
  cr_expect_eq(nn_ema_power_decay(1, 0, 1.f, 0.75f, 0.f, 0.9999f), 0.f);
  cr_expect_float_eq(nn_ema_power_decay(2, 0, 1.f, 0.75f, 0.f, 0.9999f), 1.f - powf(2.f, -0.75f), 1e-6);
  cr_expect_float_eq(nn_ema_power_decay(100000000, 0, 1.f, 0.75f, 0.f, 0.9999f), 0.9999f, 1e-7);
  cr_expect_float_eq(nn_ema_fixed_decay(20, 10, 0.999f), 0.999f, 1e-9);
  cr_expect_lt(nn_ema_fixed_decay(21, 10, 0.999f), 0.f);
}

Test(nn_train, grad_clip_and_adamw_by_hand) {
  char err[SP_ERRLEN];
  nn_params ps;
  nn_params_init(&ps);
  size_t o = nn_params_add4(&ps, "w", 2, 0, 0, 0);
  cr_assert_eq(nn_params_alloc_train(&ps, 0, err), 0);
  ps.data[o] = 1.f;
  ps.data[o + 1] = -2.f;
  ps.grad[o] = 3.f;
  ps.grad[o + 1] = 4.f;
  cr_expect_float_eq(nn_grad_clip(&ps, 1.f), 5.f, 1e-6);
  cr_expect_float_eq(ps.grad[o], 0.6f, 1e-6);
  /* first AdamW step moves each weight by lr * sign(g) (bias-corrected), after decay */
  nn_adamw_cfg c = nn_adamw_defaults();
  nn_adamw_step(&ps, &c, 0.1f, 1);
  cr_expect_float_eq(ps.data[o], 1.f * (1.f - 0.1f * 0.01f) - 0.1f, 1e-5);
  cr_expect_float_eq(ps.data[o + 1], -2.f * (1.f - 0.1f * 0.01f) - 0.1f, 1e-5);
  nn_params_free(&ps);
}

/* ---------------------------------------------------------------------------------------------
 * checkpoints */

static void fill(nn_params *ps, float base) {
  for (size_t i = 0; i < ps->total; i++) {
    ps->data[i] = base + 0.001f * i;
    ps->m[i] = -0.5f * i;
    ps->v[i] = 0.25f * i;
    if (ps->ema) ps->ema[i] = 7.f + i;
  }
}

/* equal over the registered tensors (the alignment padding between them is not saved) */
static int same_params(const nn_params *a, const nn_params *b, const float *x, const float *y) {
  (void)b;
  for (int i = 0; i < a->n; i++)
    if (memcmp(x + a->p[i].offset, y + a->p[i].offset, a->p[i].numel * 4)) return 0;
  return 1;
}

static void make_params(nn_params *ps, int cout) {
  char err[SP_ERRLEN];
  nn_params_init(ps);
  nn_params_add4(ps, "conv.weight", cout, 3, 3, 3);
  nn_params_add4(ps, "conv.bias", cout, 0, 0, 0);
  nn_params_add4(ps, "norm.weight", 5, 0, 0, 0);
  cr_assert_eq(nn_params_alloc_train(ps, 1, err), 0);
}

Test(nn_train, checkpoint_round_trip_and_errors) {
  char err[SP_ERRLEN], path[] = "/tmp/sp_nn_ckpt_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  nn_params a, b;
  make_params(&a, 4);
  make_params(&b, 4);
  fill(&a, 1.f);
  cr_assert_eq(nn_checkpoint_save(path, &a, "{\"model\":\"tiny\",\"lr\":0.0001}", 1234, 1, err), 0, "%s", err);
  cr_expect(!sp_file_exists("/tmp/x.tmp") || 1);
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  cr_expect(!sp_file_exists(tmp), "temporary file left behind");
  long step = 0;
  char *cfg = NULL;
  cr_assert_eq(nn_checkpoint_load(path, &b, &step, &cfg, err), 0, "%s", err);
  cr_expect_eq(step, 1234);
  cr_expect_str_eq(cfg, "{\"model\":\"tiny\",\"lr\":0.0001}");
  free(cfg);
  cr_expect(same_params(&a, &b, a.data, b.data) && same_params(&a, &b, a.m, b.m) &&
            same_params(&a, &b, a.v, b.v) && same_params(&a, &b, a.ema, b.ema));

  /* a reader sees plain safetensors with PyTorch names */
  nn_safetensors st;
  cr_assert_eq(nn_st_open(&st, path, err), 0, "%s", err);
  const nn_st_tensor *t = nn_st_find(&st, "conv.weight");
  cr_assert(t);
  cr_expect(t->ndim == 4 && t->shape[0] == 4 && t->shape[3] == 3 && !strcmp(t->dtype, "F32"));
  cr_expect(nn_st_find(&st, "optim.exp_avg.conv.bias") && nn_st_find(&st, "ema.norm.weight"));
  cr_expect_str_eq(nn_st_meta(&st, "format"), NN_CKPT_FORMAT);
  size_t hdr = 0;
  for (int i = 7; i >= 0; i--) hdr = (hdr << 8) | (unsigned char)st.buf[i];
  cr_expect_eq(hdr % 8, 0);
  nn_st_close(&st);

  /* shape mismatch (different config) */
  nn_params c;
  make_params(&c, 5);
  cr_expect_eq(nn_checkpoint_load(path, &c, NULL, NULL, err), -1);
  cr_expect(strstr(err, "conv.weight") && strstr(err, "mismatch"), "message: %s", err);
  nn_params_free(&c);

  /* truncated file */
  size_t len;
  char *buf = sp_file_read(path, &len, err);
  cr_assert(buf);
  cr_assert_eq(sp_file_write_atomic(path, buf, len - 9, err), 0);
  cr_expect_eq(nn_checkpoint_load(path, &b, NULL, NULL, err), -1);
  cr_expect(strstr(err, "corrupt") || strstr(err, "truncated"), "message: %s", err);
  /* garbage header */
  char junk[64] = {40, 0, 0, 0, 0, 0, 0, 0, 'n', 'o', 't', ' ', 'j', 's', 'o', 'n'};
  cr_assert_eq(sp_file_write_atomic(path, junk, sizeof junk, err), 0);
  cr_expect_eq(nn_checkpoint_load(path, &b, NULL, NULL, err), -1);
  cr_expect(strstr(err, "JSON"), "message: %s", err);
  /* not a safetensors file at all */
  cr_assert_eq(sp_file_write_atomic(path, "hello", 5, err), 0);
  cr_expect_eq(nn_checkpoint_load(path, &b, NULL, NULL, err), -1);
  cr_expect(strstr(err, "not a safetensors"), "message: %s", err);
  /* a safetensors file that is not an sp checkpoint (the op fixtures) */
  cr_expect_eq(nn_checkpoint_load("tests/fixtures/nn/ops.safetensors", &b, NULL, NULL, err), -1);
  cr_expect(strstr(err, "not an sp checkpoint"), "message: %s", err);
  /* missing file */
  cr_expect_eq(nn_checkpoint_load("/nonexistent/ckpt.safetensors", &b, NULL, NULL, err), -1);
  cr_expect(strstr(err, "cannot read"), "message: %s", err);
  /* the failed loads above left b intact */
  cr_expect(same_params(&a, &b, a.data, b.data));
  free(buf);
  unlink(path);
  nn_params_free(&a);
  nn_params_free(&b);
}

/* ---------------------------------------------------------------------------------------------
 * diffusion */

Test(nn_train, diffusion_schedules_and_steps) {
  char err[SP_ERRLEN];
  nn_safetensors st;
  cr_assert_eq(nn_st_open(&st, "tests/fixtures/nn/diffusion.safetensors", err), 0, "%s", err);
  nn_sched *s = malloc(sizeof *s);
  const char *names[3] = {"linear", "cosine", "sqcos"};
  nn_sched_kind kinds[3] = {NN_SCHED_LINEAR, NN_SCHED_COSINE, NN_SCHED_SQUAREDCOS_CAP_V2};
  int Ts[3] = {1000, 100, 100};
  char key[64];
  for (int k = 0; k < 3; k++) {
    cr_assert_eq(nn_sched_init(s, kinds[k], Ts[k], 1e-4, 0.02, err), 0);
    snprintf(key, sizeof key, "%s.betas", names[k]);
    const float *b = tfx(&st, key, Ts[k]);
    snprintf(key, sizeof key, "%s.ac", names[k]);
    const float *ac = tfx(&st, key, Ts[k]);
    for (int i = 0; i < Ts[k]; i++) {
      cr_expect(rel(s->betas[i], b[i]) < 1e-5, "%s beta[%d] %.9g want %.9g", names[k], i, s->betas[i], b[i]);
      cr_expect(rel(s->alphas_cumprod[i], ac[i]) < 1e-5 || fabs(s->alphas_cumprod[i] - ac[i]) < 1e-9,
                "%s alpha_bar[%d] %.9g want %.9g", names[k], i, s->alphas_cumprod[i], ac[i]);
    }
  }
  cr_expect_eq(nn_sched_init(s, NN_SCHED_LINEAR, 5000, 1e-4, 0.02, err), -1);
  nn_sched_init(s, NN_SCHED_COSINE, 100, 0, 0, err);
  size_t n;
  const int32_t *t = nn_st_i32(&st, "t", &n);
  cr_assert(t && n == 2);
  const float *x0 = tfx(&st, "x0", 24), *eps = tfx(&st, "eps", 24);
  float xt[24], tv[24];
  nn_q_sample(xt, x0, eps, s, t, 2, 12);
  for (int i = 0; i < 24; i++) cr_expect(fabsf(xt[i] - tfx(&st, "xt", 24)[i]) < 1e-5f, "xt[%d]", i);
  nn_diffusion_target(tv, x0, eps, s, t, 2, 12, NN_PRED_V);
  for (int i = 0; i < 24; i++) cr_expect(fabsf(tv[i] - tfx(&st, "target_v", 24)[i]) < 1e-5f, "v[%d]", i);
  const float *wv = tfx(&st, "minsnr_v", 100), *we = tfx(&st, "minsnr_eps", 100);
  for (int i = 0; i < 100; i++) {
    cr_expect(rel(nn_min_snr_weight(s, i, NN_PRED_V, 5.f), wv[i]) < 1e-5, "min-snr v %d", i);
    cr_expect(rel(nn_min_snr_weight(s, i, NN_PRED_EPS, 5.f), we[i]) < 1e-5, "min-snr eps %d", i);
  }
  const float *mo = tfx(&st, "model_out", 12), *nz = tfx(&st, "noise", 12);
  float out[12], w0[12], w1[12];
  nn_ddpm_step(out, mo, xt + 12, nz, s, 71, 12, NN_PRED_V, 1, w0, w1);
  const float *want = tfx(&st, "ddpm", 12);
  for (int i = 0; i < 12; i++) cr_expect(fabsf(out[i] - want[i]) < 1e-5f, "ddpm[%d] %g want %g", i, out[i], want[i]);
  nn_ddim_step(out, mo, xt + 12, NULL, s, 71, 40, 0.f, 12, NN_PRED_V, 1, w0, w1);
  want = tfx(&st, "ddim", 12);
  for (int i = 0; i < 12; i++) cr_expect(fabsf(out[i] - want[i]) < 1e-5f, "ddim[%d] %g want %g", i, out[i], want[i]);
  int ts[21];
  nn_ddim_timesteps(ts, 20, 100);
  const int32_t *wts = nn_st_i32(&st, "ddim_ts", &n);
  cr_assert(wts && n == 21);
  for (int i = 0; i < 21; i++) cr_expect_eq(ts[i], wts[i], "ddim grid %d: %d want %d", i, ts[i], wts[i]);
  /* guidance: w = 0 is the conditional output, (1 + w) c - w u otherwise */
  float c[2] = {1.f, 2.f}, u[2] = {0.5f, -1.f}, g[2];
  nn_cfg_combine(g, c, u, 0.f, 2);
  cr_expect(g[0] == 1.f && g[1] == 2.f);
  nn_cfg_combine(g, c, u, 2.f, 2);
  cr_expect(g[0] == 2.f && g[1] == 8.f);
  /* an eps-prediction round trip: the exact eps reproduces x0 through DDIM to t_prev = -1 */
  nn_ddim_step(out, eps, xt, NULL, s, t[0], -1, 0.f, 12, NN_PRED_EPS, 0, w0, w1);
  for (int i = 0; i < 12; i++) cr_expect(fabsf(out[i] - x0[i]) < 1e-4f, "eps round trip %d", i);
  free(s);
  nn_st_close(&st);
}
