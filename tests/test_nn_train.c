/* tests of src/nn training machinery: the product video U-Net (src/models/vunet, tiny preset with
 * ch 8) trained a few steps exactly as src/models/trainer.c steps it (zero grad, forward, weighted
 * MSE, backward, gradient clipping, AdamW at the cosine LR, EMA) against PyTorch's run of its twin
 * (tools/nn_fixtures.py -> tests/fixtures/nn/train.safetensors, stacked layout, power EMA;
 * train_factorised.safetensors, factorised layout, fixed EMA); learning-rate and EMA schedules,
 * checkpoints (round trip, atomic write, corrupt and foreign files), diffusion schedules and
 * samplers (tests/fixtures/nn/diffusion.safetensors).
 *
 * Trace tolerances: per step, the loss to 1e-4 relative, the gradient norm before clipping to 1e-3
 * relative (the C gradients are the twin's to ~1e-4, tests/test_models_vunet.c), the LR to 1e-6.
 * At the end every weight and EMA weight to a third of one base LR step, absolute: Adam's update
 * lr m / (sqrt(v) + eps) is sign-like where a gradient is near zero, so float rounding can move
 * such a weight by a fraction of lr (seen: 2.7e-4 with lr 2e-3, factorised, Winograd convs),
 * while a wrong optimizer step (a tensor not updated, clipping after the step instead of before, a
 * stale gradient) moves weights by a whole lr. An EMA update skipped or mistimed shifts every EMA
 * weight by less than lr, so the weights and the EMA are also held, over all tensors, to
 * ||c - twin|| <= 5e-3 ||twin - initial||: rounding, concentrated in those few sign-like weights,
 * gives <= 5e-4, one skipped EMA update >= 4.7e-2. The AdamW moments per tensor to 1e-3 of the
 * tensor's largest magnitude (seen <= 7.4e-5). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "models/vunet.h"
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
 * training traces of the video U-Net */

/* one run; tools/nn_fixtures.py's TRACES holds the same rows and writes the row into the
 * fixture's metadata `run`, which the test compares with its own */
typedef struct {
  const char *file, *layout;
  int steps;
  float lr;
  int warmup, total;  // nn_lr_cosine(lr, step, warmup, total)
  float clip, beta2, wd;
  const char *ema;  // "fixed": nn_ema_fixed_decay(step, every, decay); "power": nn_ema_power_decay
  float decay;
  int every;
  float power;
  int moments;  // the fixture holds the AdamW moments
} trace_case;

static const trace_case g_traces[2] = {
    {"train.safetensors", "stacked", 10, 3e-3f, 3, 12, 0.3f, 0.999f, 1e-2f, "power", 0.9999f, 0, 0.75f, 1},
    {"train_factorised.safetensors", "factorised", 4, 2e-3f, 2, 5, 0.6f, 0.99f, 0.f, "fixed", 0.75f, 2, 0.f, 0},
};

/* buf (a flat buffer of ps) against the fixture tensors <pre>.<name>: the largest |c - twin| (abs),
 * the largest per-tensor max |c - twin| / max |twin| (rel, and that tensor's name) and, over all
 * tensors, ||c - twin|| / ||twin - ref|| (rms; ref: the initial weights, NULL for zero), which
 * rounding amplified in a few elements hardly moves and a defect that shifts every element does */
static void trace_cmp(const nn_params *ps, const float *buf, const nn_safetensors *st, const char *pre,
                      const nn_safetensors *ref, double *abs_worst, double *rel_worst, const char **name,
                      double *rms) {
  char key[256];
  double se = 0, sm = 0;
  *abs_worst = *rel_worst = 0;
  *name = "";
  for (int i = 0; i < ps->n; i++) {
    const nn_param *p = &ps->p[i];
    snprintf(key, sizeof key, "%s.%s", pre, p->name);
    const float *want = tfx(st, key, p->numel), *r0 = NULL;
    if (ref) {
      snprintf(key, sizeof key, "param.%s", p->name);
      r0 = tfx(ref, key, p->numel);
    }
    double m = 0, b = 0;
    for (size_t j = 0; j < p->numel; j++) {
      double d = fabs((double)buf[p->offset + j] - want[j]), mv = (double)want[j] - (r0 ? r0[j] : 0.f);
      if (!(d <= m)) m = d;
      if (fabs(want[j]) > b) b = fabs(want[j]);
      se += d * d;
      sm += mv * mv;
    }
    if (!(m <= *abs_worst)) *abs_worst = m;
    if (!(m / (b + 1e-30) <= *rel_worst)) *rel_worst = m / (b + 1e-30), *name = p->name;
  }
  *rms = sqrt(se) / (sqrt(sm) + 1e-30);
}

static void trace(const trace_case *c) {
  char err[SP_ERRLEN], path[256], key[256], run[512];
  nn_init(1);  // Criterion runs tests side by side on 2 cores
  snprintf(path, sizeof path, "tests/fixtures/nn/%s", c->file);
  nn_safetensors st, ini;
  cr_assert_eq(nn_st_open(&st, path, err), 0, "%s", err);
  snprintf(run, sizeof run,
           "layout=%s steps=%d lr=%g warmup=%d total=%d clip=%g beta2=%g wd=%g ema=%s decay=%g every=%d power=%g",
           c->layout, c->steps, c->lr, c->warmup, c->total, c->clip, c->beta2, c->wd, c->ema, c->decay, c->every,
           c->power);
  const char *frun = nn_st_meta(&st, "run");
  cr_assert(frun && !strcmp(frun, run),
            "%s holds the run '%s', this test runs '%s': regenerate it with tools/nn_fixtures.py", path,
            frun ? frun : "(none)", run);
  /* the model and its batch: the twin fixture the trace started from */
  const char *ipath = nn_st_meta(&st, "init");
  cr_assert(ipath != NULL, "%s: no init metadata", path);
  cr_assert_eq(nn_st_open(&ini, ipath, err), 0, "%s", err);
  sp_vunet_cfg cfg;
  sp_vunet_cfg_preset(&cfg, SP_PRESET_TINY);
  const char *json = nn_st_meta(&ini, "config");
  cr_assert(json != NULL, "%s: no config metadata", ipath);
  cr_assert_eq(sp_cf_from_json(sp_vunet_fields, &cfg, json, err), 0, "%s", err);
  cr_assert_eq(cfg.layout, strcmp(c->layout, "stacked") ? SP_VUNET_FACTORISED : SP_VUNET_STACKED);
  sp_vunet m;
  cr_assert_eq(sp_vunet_init(&m, &cfg, 1, err), 0, "%s", err);
  nn_params *ps = &m.ps;
  cr_assert_eq(nn_params_alloc_train(ps, 1, err), 0, "%s", err);
  for (int i = 0; i < ps->n; i++) {
    snprintf(key, sizeof key, "param.%s", ps->p[i].name);
    memcpy(ps->data + ps->p[i].offset, tfx(&ini, key, ps->p[i].numel), ps->p[i].numel * 4);
  }
  nn_ema_init(ps);
  sp_vunet_ws w;
  cr_assert_eq(sp_vunet_ws_init(&w, &m, 2, 1, err), 0, "%s", err);
  enum { B = 2 };
  int n = c->steps;
  size_t per = (size_t)3 * cfg.frames * cfg.res * cfg.res;
  const float *x = tfx(&ini, "x", B * per), *cond = tfx(&ini, "cond", (size_t)B * 3 * cfg.res * cfg.res);
  const float *target = tfx(&ini, "target", B * per);
  const float *ts = tfx(&st, "t", n * B), *ws = tfx(&st, "w", n * B), *want = tfx(&st, "loss", n);
  const float *gn = tfx(&st, "gnorm", n), *lrs = tfx(&st, "lr", n);
  size_t ni = 0;
  const int32_t *text = nn_st_i32(&st, "text", &ni);
  cr_assert(text && ni == (size_t)n * B * SP_TEXT_WORDS, "%s: text ids", path);
  /* the case exercises both branches of the clip */
  int clipped = 0;
  for (int k = 0; k < n; k++) clipped += gn[k] > c->clip;
  cr_assert(clipped > 0 && clipped < n, "clip %g clips %d of %d steps in %s", c->clip, clipped, n, path);
  float *y = malloc(B * per * 4), *dy = malloc(B * per * 4);
  nn_adamw_cfg ac = {0.9f, c->beta2, 1e-8f, c->wd};
  double wl = 0, wn = 0;
  for (int step = 1; step <= n; step++) {
    int k = step - 1;
    float lr = nn_lr_cosine(c->lr, step, c->warmup, c->total);
    nn_params_zero_grad(ps);
    sp_vunet_forward(&m, &w, y, x, cond, ts + k * B, text + k * B * SP_TEXT_WORDS, B);
    float loss = nn_mse_forward(y, target, ws + k * B, B, per);
    nn_mse_backward(dy, y, target, ws + k * B, B, per, 1.f);
    sp_vunet_backward(&m, &w, dy, B);
    float norm = nn_grad_clip(ps, c->clip);
    nn_adamw_step(ps, &ac, lr, step);
    if (!strcmp(c->ema, "fixed")) {
      float d = nn_ema_fixed_decay(step, c->every, c->decay);
      if (d >= 0) nn_ema_update(ps, d);
    } else {
      nn_ema_update(ps, nn_ema_power_decay(step, 0, 1.f, c->power, 0.f, c->decay));
    }
    cr_expect(rel(lr, lrs[k]) <= 1e-6, "%s step %d: lr %.8g, PyTorch %.8g", c->layout, step, lr, lrs[k]);
    cr_expect(rel(loss, want[k]) <= 1e-4, "%s step %d: loss %.8g, PyTorch %.8g (rel %.3g)", c->layout, step, loss,
              want[k], rel(loss, want[k]));
    cr_expect(rel(norm, gn[k]) <= 1e-3, "%s step %d: grad norm %.6g, PyTorch %.6g (rel %.3g)", c->layout, step, norm,
              gn[k], rel(norm, gn[k]));
    if (!(rel(loss, want[k]) <= wl)) wl = rel(loss, want[k]);
    if (!(rel(norm, gn[k]) <= wn)) wn = rel(norm, gn[k]);
  }
  /* the final state */
  double wa, wr, wsn, ea, er, es, ma, mr = 0, ms = 0, va, vr = 0, vs = 0;
  const char *wname, *ename, *mname = "-", *vname = "-";
  trace_cmp(ps, ps->data, &st, "final", &ini, &wa, &wr, &wname, &wsn);
  trace_cmp(ps, ps->ema, &st, "ema", &ini, &ea, &er, &ename, &es);
  double tol = c->lr / 3;
  cr_expect(wa <= tol, "%s: final weights differ from PyTorch by up to %.3g (> %.3g)", c->layout, wa, tol);
  cr_expect(ea <= tol, "%s: EMA weights differ from PyTorch by up to %.3g (> %.3g)", c->layout, ea, tol);
  cr_expect(wsn <= 5e-3, "%s: final weights: ||c - PyTorch|| / ||PyTorch - initial|| = %.3g", c->layout, wsn);
  cr_expect(es <= 5e-3, "%s: EMA weights: ||c - PyTorch|| / ||PyTorch - initial|| = %.3g", c->layout, es);
  if (c->moments) {
    trace_cmp(ps, ps->m, &st, "exp_avg", NULL, &ma, &mr, &mname, &ms);
    trace_cmp(ps, ps->v, &st, "exp_avg_sq", NULL, &va, &vr, &vname, &vs);
    cr_expect(mr <= 1e-3, "%s: AdamW exp_avg of %s rel err %.3g", c->layout, mname, mr);
    cr_expect(vr <= 1e-3, "%s: AdamW exp_avg_sq of %s rel err %.3g", c->layout, vname, vr);
  }
  cr_log_info("nn_train trace %s, %d steps (%d clipped): loss rel %.2g, grad norm rel %.2g; final weights abs %.2g "
              "(norm %.2g, rel %.2g %s), EMA abs %.2g (norm %.2g, rel %.2g %s), exp_avg rel %.2g (%s, norm %.2g), "
              "exp_avg_sq rel %.2g (%s, norm %.2g)",
              c->layout, n, clipped, wl, wn, wa, wsn, wr, wname, ea, es, er, ename, mr, mname, ms, vr, vname, vs);
  free(y);
  free(dy);
  sp_vunet_ws_free(&w);
  sp_vunet_free(&m);
  nn_st_close(&ini);
  nn_st_close(&st);
}

Test(nn_train, vunet_stacked_10_steps_match_pytorch) { trace(&g_traces[0]); }
Test(nn_train, vunet_factorised_4_steps_match_pytorch) { trace(&g_traces[1]); }

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

/* binary16: NumPy's np.float16 values (round to nearest even, subnormals, overflow) and an exact
 * round trip of every non-NaN half */
Test(nn_train, half_conversion_matches_ieee_binary16) {
  const struct { float x; uint16_t h; } v[] = {
      {1.f, 0x3C00}, {-2.f, 0xC000}, {0.f, 0x0000}, {-0.f, 0x8000}, {65504.f, 0x7BFF}, {65520.f, 0x7C00},
      {0.1f, 0x2E66}, {5.9604645e-08f, 0x0001}, {2.9802322e-08f, 0x0000}, {8.940697e-08f, 0x0002},
      {1.00048828125f, 0x3C00}, {1.00146484375f, 0x3C02}, {6.1035156e-05f, 0x0400}, {-1e9f, 0xFC00},
      {3.14159265f, 0x4248}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    cr_expect_eq(nn_half_from_float(v[i].x), v[i].h, "%g -> 0x%04x, want 0x%04x", v[i].x, nn_half_from_float(v[i].x),
                 v[i].h);
  for (uint32_t h = 0; h < 0x10000u; h++) {
    if ((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu)) continue;  // NaN
    uint16_t back = nn_half_from_float(nn_float_from_half((uint16_t)h));
    if (back != h) cr_assert_fail("half 0x%04x -> %g -> 0x%04x", h, nn_float_from_half((uint16_t)h), back);
  }
  cr_expect(isnan(nn_float_from_half(0x7E00)));
}

/* a checkpoint stored as F16: half the bytes, no training state, loads back within half precision */
Test(nn_train, checkpoint_f16_export_loads_within_half_precision) {
  char err[SP_ERRLEN], path[] = "/tmp/sp_nn_f16_XXXXXX", out[64];
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  snprintf(out, sizeof out, "%s.f16", path);
  nn_params a, b;
  make_params(&a, 4);
  make_params(&b, 4);
  fill(&a, 1.f);
  cr_assert_eq(nn_checkpoint_save(path, &a, "{\"model\":\"tiny\"}", 7, 1, err), 0, "%s", err);
  cr_assert_eq(nn_checkpoint_to_f16(path, out, err), 0, "%s", err);
  nn_safetensors st;
  cr_assert_eq(nn_st_open(&st, out, err), 0, "%s", err);
  cr_expect(nn_st_find(&st, "conv.weight") && !strcmp(nn_st_find(&st, "conv.weight")->dtype, "F16"));
  cr_expect(!nn_st_find(&st, "optim.exp_avg.conv.weight") && !nn_st_find(&st, "ema.conv.weight"));
  cr_expect_str_eq(nn_st_meta(&st, "config"), "{\"model\":\"tiny\"}");
  nn_st_close(&st);
  long step = 0;
  cr_assert_eq(nn_checkpoint_load(out, &b, &step, NULL, err), 0, "%s", err);
  cr_expect_eq(step, 7);
  for (int k = 0; k < a.n; k++)
    for (size_t i = a.p[k].offset; i < a.p[k].offset + a.p[k].numel; i++)
      cr_expect(fabsf(a.data[i] - b.data[i]) <= fabsf(a.data[i]) * 0x1p-11f + 0x1p-24f, "%s %zu: %g vs %g",
                a.p[k].name, i, a.data[i], b.data[i]);
  /* a value beyond the half range is refused, naming the tensor */
  a.data[3] = 1e6f;
  cr_assert_eq(nn_checkpoint_save(path, &a, "{}", 0, 0, err), 0, "%s", err);
  cr_expect_eq(nn_checkpoint_to_f16(path, out, err), -1);
  cr_expect(strstr(err, "conv.weight") != NULL, "%s", err);
  unlink(path);
  unlink(out);
  nn_params_free(&a);
  nn_params_free(&b);
}

/* nn_st_save: tensors of any dtype and string metadata come back as written; the file appears
 * only whole (PATH.tmp renamed) */
Test(nn_train, safetensors_save_round_trip) {
  char path[256], err[SP_ERRLEN];
  snprintf(path, sizeof path, "/tmp/sp_test_st_%d.safetensors", (int)getpid());
  int32_t ids[3] = {7, -2, 40000};
  uint8_t px[2][3][2];
  for (int i = 0; i < 12; i++) ((uint8_t *)px)[i] = (uint8_t)(i * 21);
  float w[2] = {1.5f, -0.25f};
  nn_st_out t[3] = {{.name = "ids", .dtype = "I32", .ndim = 1, .shape = {3}, .data = ids},
                    {.name = "px", .dtype = "U8", .ndim = 3, .shape = {2, 3, 2}, .data = px},
                    {.name = "w", .dtype = "F32", .ndim = 1, .shape = {2}, .data = w}};
  const char *meta[] = {"format", "test", "note", "a \"quoted\" value", NULL};
  cr_assert_eq(nn_st_save(path, t, 3, meta, err), 0, "%s", err);
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  cr_expect(access(tmp, F_OK) != 0, "PATH.tmp left behind");
  nn_safetensors st;
  cr_assert_eq(nn_st_open(&st, path, err), 0, "%s", err);
  size_t n = 0;
  const int32_t *ri = nn_st_i32(&st, "ids", &n);
  cr_assert(ri && n == 3 && !memcmp(ri, ids, sizeof ids));
  const uint8_t *rp = nn_st_u8(&st, "px", &n);
  cr_assert(rp && n == 12 && !memcmp(rp, px, sizeof px));
  const nn_st_tensor *tp = nn_st_find(&st, "px");
  cr_expect(tp->ndim == 3 && tp->shape[0] == 2 && tp->shape[1] == 3 && tp->shape[2] == 2);
  const float *rw = nn_st_f32(&st, "w", &n);
  cr_assert(rw && n == 2 && rw[0] == 1.5f && rw[1] == -0.25f);
  cr_expect(!nn_st_u8(&st, "w", NULL), "a F32 tensor read as U8");
  cr_expect_str_eq(nn_st_meta(&st, "note"), "a \"quoted\" value");
  cr_expect_str_eq(nn_st_meta(&st, "format"), "test");
  nn_st_close(&st);
  unlink(path);
}
