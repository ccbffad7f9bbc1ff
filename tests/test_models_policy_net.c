/* tests of the whole policy network (src/models/policy.c) against its PyTorch twin
 * (tools/twin_policy.py -> tests/fixtures/models/policy_{net,mlp}.safetensors): forward, every
 * parameter gradient, 5 AdamW steps, DDIM inference (epsilon and x0 targets); the inference
 * workspace, act on rendered frames, config and checkpoints; and `sp train policy` end to end on
 * a tiny dataset (resume after kill -9 bit-identical, held-out action MSE falls).
 * Tolerance: max|a - b| / max|b| <= 1e-4 per tensor. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "data/collect.h"
#include "models/policy.h"
#include "train_helpers.h"
#include "twin_helpers.h"

#define TOL 1e-4

static void init_nn(void) { nn_init(2); }

TestSuite(models_policy, .init = init_nn);

static double g_worst[4];  // forward, gradients, AdamW, inference (printed)

static void expect_close(const char *what, const float *got, const float *want, size_t n, int kind) {
  double e = relerr(got, want, n);
  if (!(e <= g_worst[kind])) g_worst[kind] = e;
  cr_expect(e <= TOL, "%s: relative error %.3g > %g", what, e, TOL);
}

/* fixture "<tag>.<name>" into every parameter; the fixture holds no others */
static void load_table(const nn_safetensors *st, nn_params *ps, float *dst, const char *tag) {
  char key[256];
  for (int i = 0; i < ps->n; i++) {
    snprintf(key, sizeof key, "%s.%s", tag, ps->p[i].name);
    memcpy(dst + ps->p[i].offset, fx(st, key, ps->p[i].numel), ps->p[i].numel * sizeof(float));
  }
  int nfix = 0;
  size_t tl = strlen(tag);
  for (int i = 0; i < st->n; i++) nfix += !strncmp(st->t[i].name, tag, tl) && st->t[i].name[tl] == '.';
  cr_expect_eq(nfix, ps->n, "%s: the C model has %d tensors, the PyTorch twin %d", tag, ps->n, nfix);
}

/* every parameter gradient, per tensor to TOL relative, with a floor: where a tensor's gradient
 * is a difference of nearly cancelling terms (a conv bias in front of a GroupNorm of 2 channels
 * per group: the pair's gradients sum to exactly 0), float32 cannot give it to 1e-4 of its own
 * size: PyTorch's own float32 gradient of unet.up.1.1.b0.b.0.bias is 1.3e-4 off its float64
 * value (C's 4.0e-4; docs/models.md). Such a tensor is held to 1e-5 of the network's largest
 * gradient instead, the level to which the float32 gradients agree, and counted. The floor is
 * at most 1e-2 of any tensor's own largest gradient (asserted), so a wrong gradient still fails. */
static int g_floored;
static void check_grads(const nn_safetensors *st, const nn_params *ps) {
  char key[256];
  double gall = 0;
  for (int i = 0; i < ps->n; i++) {
    snprintf(key, sizeof key, "grad.%s", ps->p[i].name);
    const float *want = fx(st, key, ps->p[i].numel);
    for (size_t k = 0; k < ps->p[i].numel; k++)
      if (fabs(want[k]) > gall) gall = fabs(want[k]);
  }
  for (int i = 0; i < ps->n; i++) {
    const nn_param *p = &ps->p[i];
    snprintf(key, sizeof key, "grad.%s", p->name);
    const float *want = fx(st, key, p->numel), *got = ps->grad + p->offset;
    double e = 0, mb = 0;
    for (size_t k = 0; k < p->numel; k++) {
      double d = fabs((double)got[k] - want[k]);
      if (!(d <= e)) e = d;
      if (fabs(want[k]) > mb) mb = fabs(want[k]);
    }
    cr_expect(mb >= 1e-3 * gall, "%s: largest gradient %.3g below 1e-3 of the network's %.3g: the floor would hide it", key,
              mb, gall);
    double rel = e / (mb + 1e-30);
    if (rel > TOL && e <= 1e-5 * gall) {
      g_floored++;
      fprintf(stderr, "models_policy: %s relative error %.3g, %.3g of the largest gradient (floor)\n", key, rel, e / gall);
      continue;
    }
    if (!(rel <= g_worst[1])) g_worst[1] = rel;
    cr_expect(rel <= TOL, "%s: relative error %.3g > %g (%.3g of the network's largest gradient)", key, rel, TOL, e / gall);
  }
}

/* weights after AdamW steps, with tests/test_models_policy.c's noise-floor rule: AdamW moves an
 * element by about lr * g / (|g| + eps) whatever the gradient's size, so where the first gradient
 * lies at float32's noise floor (|g| < 1e-5 of the tensor's largest; 0 included: a FiLM weight whose
 * input is 0 at the first step gets noise-floor gradients at later ones, and on an AMD EPYC one
 * such element parted by 3e-5 after 5 steps) the two trajectories may part by up to a step per step. Those elements are held to 2 steps lr and counted; every other
 * element to TOL. */
static int g_noisy;
static void check_final(const nn_safetensors *st, const nn_params *ps, float lr, int steps) {
  char key[256];
  for (int i = 0; i < ps->n; i++) {
    const nn_param *p = &ps->p[i];
    snprintf(key, sizeof key, "grad.%s", p->name);
    const float *g = fx(st, key, p->numel);
    snprintf(key, sizeof key, "final.%s", p->name);
    const float *want = fx(st, key, p->numel), *got = ps->data + p->offset;
    double gmax = 0, wmax = 0, e = 0, enoisy = 0;
    for (size_t k = 0; k < p->numel; k++) {
      if (fabs(g[k]) > gmax) gmax = fabs(g[k]);
      if (fabs(want[k]) > wmax) wmax = fabs(want[k]);
    }
    for (size_t k = 0; k < p->numel; k++) {
      double d = fabs((double)got[k] - want[k]);
      if (fabs(g[k]) < 1e-5 * gmax) {
        g_noisy++;
        if (!(d <= enoisy)) enoisy = d;
      } else if (!(d <= e)) {
        e = d;
      }
    }
    e /= wmax + 1e-30;
    if (!(e <= g_worst[2])) g_worst[2] = e;
    cr_expect(e <= TOL, "%s after %d AdamW steps: relative error %.3g > %g", key, steps, e, TOL);
    cr_expect(enoisy <= 2.0 * steps * lr, "%s: an element with a noise-floor gradient moved %.3g from PyTorch's", key,
              enoisy);
  }
}

/* the model of a fixture: its config (must be the tiny preset with the U-Net narrowed to 8, 16,
 * 16, step 8, 4 groups, as twin_policy.py's FIXTURE; head and ee_grip as given), weights "init" */
static void fixture_model(const nn_safetensors *st, sp_policy *m, int head, int grip) {
  char err[SP_ERRLEN];
  sp_policy_cfg pre, c;
  sp_policy_cfg_preset(&pre, SP_PRESET_TINY);
  pre.head = head;
  pre.ee_grip = grip;
  pre.unet.down_dims[0] = 8;
  pre.unet.down_dims[1] = 16;
  pre.unet.down_dims[2] = 16;
  pre.unet.step_dim = 8;
  pre.unet.groups = 4;
  c = pre;
  const char *json = nn_st_meta(st, "config");
  cr_assert(json, "fixture has no config metadata");
  cr_assert_eq(sp_cf_from_json(sp_policy_fields, &c, json, err), 0, "%s", err);
  cr_expect_eq(sp_cf_diff(sp_policy_fields, &c, &pre, "fixture vs preset", err), 0, "%s", err);
  cr_assert_eq(sp_policy_init(m, &c, 1, err), 0, "%s", err);
  load_table(st, &m->ps, m->ps.data, "init");
}

static void twin_case(const char *file, int head, int grip) {
  nn_safetensors st;
  st_open(&st, file);
  char err[SP_ERRLEN];
  sp_policy m;
  fixture_model(&st, &m, head, grip);
  const sp_policy_cfg *c = &m.cfg;
  int B = atoi(nn_st_meta(&st, "batch"));
  cr_assert_eq(B, 3);
  size_t per = (size_t)c->unet.horizon * SP_POLICY_ADIM, na = B * per, R = (size_t)c->enc.res;
  const float *x = fx(&st, "x", na), *t = fx(&st, "t", B), *img = fx(&st, "img", B * 6 * R * R),
              *ee = fx(&st, "ee", (size_t)B * m.nee), *target = fx(&st, "target", na), *noise = fx(&st, "noise", na);
  /* inference with the initial weights, before any step: an inference workspace */
  sp_policy_ws wi;
  cr_assert_eq(sp_policy_ws_init(&wi, &m, B, 0, err), 0, "%s", err);
  float *pred = calloc(na, 4);
  sp_policy_predict(&m, &wi, pred, img, ee, noise, B);
  expect_close("DDIM prediction (epsilon)", pred, fx(&st, "pred", na), na, 3);
  if (head == SP_POLICY_HEAD_DIFFUSION) {
    m.cfg.target = SP_POLICY_TARGET_X0;  // the same network read as an x0 predictor
    sp_policy_predict(&m, &wi, pred, img, ee, noise, B);
    expect_close("DDIM prediction (x0)", pred, fx(&st, "pred_x0", na), na, 3);
    m.cfg.target = SP_POLICY_TARGET_EPS;
  }
  /* training: the twin's batch every step */
  cr_assert_eq(nn_params_alloc_train(&m.ps, 0, err), 0, "%s", err);
  sp_policy_ws w;
  cr_assert_eq(sp_policy_ws_init(&w, &m, B + 1, 1, err), 0, "%s", err);  // a batch below maxB
  float *out = calloc(na, 4), *dout = calloc(na, 4);
  nn_adamw_cfg oc = nn_adamw_defaults();
  float lr = (float)atof(nn_st_meta(&st, "lr"));
  int steps = atoi(nn_st_meta(&st, "steps"));
  for (int step = 1; step <= steps; step++) {
    nn_params_zero_grad(&m.ps);
    sp_policy_forward(&m, &w, out, x, t, img, ee, B);
    float loss = nn_mse_forward(out, target, NULL, 1, na);
    nn_mse_backward(dout, out, target, NULL, 1, na, 1.f);
    sp_policy_backward(&m, &w, dout, B);
    if (step == 1) {
      expect_close("policy output", out, fx(&st, "out", na), na, 0);
      expect_close("policy loss", &loss, fx(&st, "loss", 1), 1, 0);
      check_grads(&st, &m.ps);
    }
    nn_adamw_step(&m.ps, &oc, lr, step);
  }
  check_final(&st, &m.ps, lr, steps);
  fprintf(stderr,
          "models_policy %s: %zu parameters; worst relative error forward %.2g, gradients %.2g, AdamW %.2g, DDIM %.2g; "
          "%d weights with noise-floor gradients, %d gradient tensors at the floor\n",
          file, sp_policy_nparams(&m), g_worst[0], g_worst[1], g_worst[2], g_worst[3], g_noisy, g_floored);
  free(pred);
  free(out);
  free(dout);
  sp_policy_ws_free(&w);
  sp_policy_ws_free(&wi);
  sp_policy_free(&m);
  nn_st_close(&st);
}

Test(models_policy, twin_diffusion_head) { twin_case("policy_net.safetensors", SP_POLICY_HEAD_DIFFUSION, 0); }
Test(models_policy, twin_mlp_head) { twin_case("policy_mlp.safetensors", SP_POLICY_HEAD_MLP, 0); }
/* the gripper opening as a fourth end-effector input (ee_grip 1) */
Test(models_policy, twin_gripper_input) { twin_case("policy_grip.safetensors", SP_POLICY_HEAD_MLP, 1); }

/* an inference workspace has no gradient buffers; one sample alone gives its row of a batch;
 * act on uint8 frames = predict on their centre crop with act's noise, unnormalised */
Test(models_policy, inference_and_act) {
  nn_safetensors st;
  st_open(&st, "policy_net.safetensors");
  char err[SP_ERRLEN];
  sp_policy m;
  fixture_model(&st, &m, SP_POLICY_HEAD_DIFFUSION, 0);
  const sp_policy_cfg *c = &m.cfg;
  sp_policy_ws wi, wt;
  cr_assert_eq(sp_policy_ws_init(&wi, &m, 3, 0, err), 0, "%s", err);
  cr_assert_eq(sp_policy_ws_init(&wt, &m, 3, 1, err), 0, "%s", err);
  cr_expect(wi.dg == NULL && wi.dfeat == NULL && wi.dee == NULL && wi.dez == NULL && wi.dezm == NULL,
            "inference workspace has gradient buffers");
  cr_expect(wi.enc.dp0 == NULL && wi.unet.dcond == NULL, "inference sub-workspaces have gradient buffers");
  cr_expect(wi.base.ar.cap + wi.enc.base.ar.cap + wi.unet.base.ar.cap <
                wt.base.ar.cap + wt.enc.base.ar.cap + wt.unet.base.ar.cap,
            "inference arenas are not smaller than training ones");
  int H = c->unet.horizon, R = c->enc.res, F = c->frame;
  size_t per = (size_t)H * 4, nimg = (size_t)6 * R * R;
  const float *img = fx(&st, "img", 3 * nimg), *ee = fx(&st, "ee", 9), *noise = fx(&st, "noise", 3 * per);
  const float *want = fx(&st, "pred", 3 * per);
  float out[3 * 64];
  for (int b = 0; b < 3; b++) {
    sp_policy_predict(&m, &wi, out, img + b * nimg, ee + 3 * b, noise + b * per, 1);
    expect_close("DDIM prediction, batch of one", out, want + b * per, per, 3);
  }
  /* act: frames of a pattern, limits that are not the identity */
  sp_policy_limits lim = {{-0.5, -1, -2, -1}, {0.5, 1, 4, 1}, {-0.5, 0.4, 0.05}, {0.5, 0.9, 0.3}};
  sp_policy_set_limits(&m, &lim);
  uint8_t *cur = malloc((size_t)F * F * 3), *goal = malloc((size_t)F * F * 3);
  for (int i = 0; i < F * F * 3; i++) {
    cur[i] = (uint8_t)((i * 37) % 251);
    goal[i] = (uint8_t)((i * 91 + 7) % 253);
  }
  double eem[SP_POLICY_EE_MAX] = {0.1, 0.6, 0.2, 0.5}, acts[64], acts2[64];
  sp_policy_act(&m, &wi, cur, goal, eem, 99, acts);
  /* by hand: the centre crop as floats, normalised ee, the same noise */
  float *fc = malloc(sizeof(float) * 3 * F * F), *fg = malloc(sizeof(float) * 3 * F * F), *im = malloc(nimg * 4);
  for (int y = 0; y < F * F; y++)
    for (int k = 0; k < 3; k++) {
      fc[k * F * F + y] = cur[3 * y + k] / 127.5f - 1.f;
      fg[k * F * F + y] = goal[3 * y + k] / 127.5f - 1.f;
    }
  sp_policy_stack(&m, fc, fg, (F - R) / 2, (F - R) / 2, im);
  float en[3], nz[64], y[64];
  sp_policy_norm_ee(&m, eem, en);
  cr_expect(fabsf(en[1] - (2.f * (0.6f - 0.4f) / 0.5f - 1.f)) < 1e-6, "ee y normalised to %g", en[1]);
  sp_mt19937 r;
  sp_mt_seed(&r, 99);
  for (size_t i = 0; i < per; i++) nz[i] = (float)sp_mt_normal(&r);
  sp_policy_predict(&m, &wi, y, im, en, nz, 1);
  sp_policy_unnorm_actions(&m, y, acts2);
  cr_expect(!memcmp(acts, acts2, per * sizeof(double)), "act differs from predict on the centre crop");
  /* the unnormalised gripper and z live in their limits' ranges ([-1, 1] -> [-2, 4] for z) */
  for (int h = 0; h < H; h++) cr_expect(acts[h * 4 + 2] >= -2 - 1e-9 && acts[h * 4 + 2] <= 4 + 1e-9);
  sp_policy_act(&m, &wi, cur, goal, eem, 100, acts2);
  cr_expect(memcmp(acts, acts2, per * sizeof(double)) != 0, "another seed gave the same chunk");
  free(cur);
  free(goal);
  free(fc);
  free(fg);
  free(im);
  sp_policy_ws_free(&wi);
  sp_policy_ws_free(&wt);
  sp_policy_free(&m);
  nn_st_close(&st);
}

static void expect_cfg_error(const sp_policy_cfg *c, const char *field) {
  char err[SP_ERRLEN] = "";
  cr_expect_eq(sp_policy_cfg_check(c, err), -1, "a bad %s was accepted", field);
  cr_expect(strstr(err, field) != NULL, "error does not name %s: %s", field, err);
}

Test(models_policy, config) {
  char err[SP_ERRLEN];
  sp_policy_cfg c, b;
  for (int p = 0; p < SP_PRESET_N; p++) {
    sp_policy_cfg_preset(&c, (sp_preset)p);
    cr_expect_eq(sp_policy_cfg_check(&c, err), 0, "preset %s: %s", sp_preset_name((sp_preset)p), err);
  }
  sp_policy_cfg_preset(&c, SP_PRESET_TINY);
  b = c; b.enc.res = 20;
  expect_cfg_error(&b, "crop");
  b = c; b.enc.width = 6;
  expect_cfg_error(&b, "gn_size");
  b = c; b.unet.horizon = 6;
  expect_cfg_error(&b, "horizon");
  b = c; b.ddim_steps = 101;
  expect_cfg_error(&b, "ddim_steps");
  b = c; b.head = 2;
  expect_cfg_error(&b, "head");
  b = c; b.target = 2;
  expect_cfg_error(&b, "target");
  b = c; b.unet.groups = 5;
  expect_cfg_error(&b, "groups");
  b = c; b.unet.horizon = 6; b.head = SP_POLICY_HEAD_MLP;  // the mlp head takes any horizon
  cr_expect_eq(sp_policy_cfg_check(&b, err), 0, "%s", err);
  /* a refused config leaves nothing to free */
  sp_policy m;
  b = c; b.ee_dim = 0;
  cr_expect_eq(sp_policy_init(&m, &b, 1, err), -1);
  cr_expect(strstr(err, "ee_dim"), "%s", err);
  /* config JSON: the table plus the limits, read back exactly; one without limits is refused */
  sp_policy_cfg_preset(&c, SP_PRESET_TINY);
  c.head = SP_POLICY_HEAD_MLP;
  c.target = SP_POLICY_TARGET_X0;
  cr_assert_eq(sp_policy_init(&m, &c, 3, err), 0, "%s", err);
  sp_policy_limits lim = {{-0.1, -0.2, -0.3, -1}, {0.1, 0.2, 0.3 + 1e-17, 1}, {-0.5, 0.4, 0.05}, {0.5, 0.9, 0.3}}, back;
  lim.act_max[0] = 1.0 / 3.0;
  sp_policy_set_limits(&m, &lim);
  char *js = sp_policy_config_json(&m);
  sp_policy_cfg c2;
  sp_policy_cfg_preset(&c2, SP_PRESET_PAPER);
  cr_assert_eq(sp_policy_config_parse(js, &c2, &back, err), 0, "%s", err);
  cr_expect_eq(sp_cf_diff(sp_policy_fields, &c2, &m.cfg, "policy", err), 0, "%s", err);
  cr_expect(!memcmp(&back, &lim, sizeof lim), "limits did not read back exactly: %s", js);
  cr_expect(strstr(js, "\"head\":\"mlp\"") && strstr(js, "\"target\":\"x0\""), "%s", js);
  free(js);
  cr_expect_eq(sp_policy_config_parse("{\"frame\":16}", &c2, &back, err), -1);
  cr_expect(strstr(err, "limits"), "%s", err);
  sp_policy_free(&m);
  /* parameter counts equal the twin's (twin_policy.py --count PRESET) */
  size_t want[SP_PRESET_N] = {573388, 4490212, 275439812};
  for (int p = 0; p < SP_PRESET_N; p++) {
    sp_policy_cfg_preset(&c, (sp_preset)p);
    if (p == SP_PRESET_PAPER) {  // register only: 1.1 GB of weights is not for a unit test
      nn_params ps;
      nn_params_init(&ps);
      sp_resnet r;
      sp_dp1d u;
      sp_policy_cfg_derive(&c);
      cr_assert_eq(sp_resnet_init(&r, &c.enc, &ps, "enc", err), 0, "%s", err);
      cr_assert_eq(sp_dp1d_init(&u, &c.unet, &ps, "unet", err), 0, "%s", err);
      size_t n = (size_t)(3 + 1) * c.ee_hidden + (size_t)(c.ee_hidden + 1) * c.ee_dim;
      for (int i = 0; i < ps.n; i++) n += ps.p[i].numel;
      cr_expect_eq(n, want[p], "preset paper: %zu parameters, the twin %zu", n, want[p]);
      sp_resnet_free(&r);
      nn_params_free(&ps);
      continue;
    }
    cr_assert_eq(sp_policy_init(&m, &c, 1, err), 0, "%s", err);
    cr_expect_eq(sp_policy_nparams(&m), want[p], "preset %s: %zu parameters, the twin %zu",
                 sp_preset_name((sp_preset)p), sp_policy_nparams(&m), want[p]);
    sp_policy_free(&m);
  }
}

/* ---------------------------------------------------------------------------------------------
 * checkpoints: save, load as a whole policy, the same outputs. With SP_POLICY_TWIN_DIR set the
 * checkpoint and its inputs/outputs (FILE.io.safetensors) stay there for
 * tools/twin_policy.py --check-ckpt FILE. */

Test(models_policy, checkpoint_round_trip) {
  char err[SP_ERRLEN], path[512];
  const char *dir = getenv("SP_POLICY_TWIN_DIR");
  snprintf(path, sizeof path, "%s/policy_%d.ckpt", dir ? dir : "/tmp", dir ? 0 : (int)getpid());
  sp_policy_cfg c;
  sp_policy_cfg_preset(&c, SP_PRESET_TINY);
  sp_policy a, b;
  cr_assert_eq(sp_policy_init(&a, &c, 11, err), 0, "%s", err);
  sp_policy_limits lim = {{-0.7, -0.9, -1, -1}, {0.8, 1, 0.6, 1}, {-0.4, 0.35, 0.02}, {0.45, 0.95, 0.31}};
  sp_policy_set_limits(&a, &lim);
  char *js = sp_policy_config_json(&a);
  sp_ckpt_meta meta = {.model = "policy", .preset = "tiny", .config = js, .data = "", .step = 7};
  cr_assert_eq(sp_model_save(path, &a.ps, &meta, 0, NULL, err), 0, "%s", err);
  free(js);
  cr_assert_eq(sp_policy_load(&b, path, err), 0, "%s", err);
  cr_expect(!memcmp(&b.lim, &lim, sizeof lim), "limits changed in the checkpoint");
  cr_expect_eq(sp_cf_diff(sp_policy_fields, &b.cfg, &a.cfg, "policy", err), 0, "%s", err);
  /* the same forward, prediction and unnormalised chunk */
  int B = 2, H = c.unet.horizon, R = c.enc.res;
  size_t per = (size_t)H * 4, nimg = (size_t)6 * R * R;
  float *img = malloc(B * nimg * 4), x[2 * 16], t[2] = {4.f, 77.f}, ee[6], nz[2 * 16];
  for (size_t i = 0; i < B * nimg; i++) img[i] = sinf(0.37f * (float)i);
  for (size_t i = 0; i < B * per; i++) {
    x[i] = cosf(1.3f * (float)i);
    nz[i] = sinf(2.1f * (float)i + 1.f);
  }
  for (int i = 0; i < 6; i++) ee[i] = 0.3f * (float)i - 0.7f;
  sp_policy_ws wa, wb;
  cr_assert_eq(sp_policy_ws_init(&wa, &a, B, 0, err), 0, "%s", err);
  cr_assert_eq(sp_policy_ws_init(&wb, &b, B, 0, err), 0, "%s", err);
  float oa[32], ob[32], pa[32], pb[32];
  sp_policy_forward(&a, &wa, oa, x, t, img, ee, B);
  sp_policy_forward(&b, &wb, ob, x, t, img, ee, B);
  cr_expect(!memcmp(oa, ob, B * per * 4), "the loaded policy computes differently");
  sp_policy_predict(&a, &wa, pa, img, ee, nz, B);
  sp_policy_predict(&b, &wb, pb, img, ee, nz, B);
  cr_expect(!memcmp(pa, pb, B * per * 4), "the loaded policy predicts differently");
  /* refusals: another model kind, a missing file */
  cr_expect_eq(sp_model_load(path, &b.ps, "vunet", NULL, err), -1);
  sp_policy z;
  cr_expect_eq(sp_policy_load(&z, "/nonexistent/policy.safetensors", err), -1);
  if (dir) {
    nn_params io;
    nn_params_init(&io);
    size_t oi = nn_params_add4(&io, "img", B, 6, R, R), oe = nn_params_add4(&io, "ee", B, 3, 0, 0);
    size_t ox = nn_params_add4(&io, "x", B, H, 4, 0), ot = nn_params_add4(&io, "t", B, 0, 0, 0);
    size_t oo = nn_params_add4(&io, "out", B, H, 4, 0), on = nn_params_add4(&io, "noise", B, H, 4, 0);
    size_t op = nn_params_add4(&io, "pred", B, H, 4, 0), oa2 = nn_params_add4(&io, "actions", B, H, 4, 0);
    size_t opx = nn_params_add4(&io, "pred_x0", B, H, 4, 0);  // interior values (epsilon's clip to +-1 untrained)
    cr_assert_eq(nn_params_alloc(&io, err), 0, "%s", err);
    memcpy(io.data + oi, img, B * nimg * 4);
    memcpy(io.data + oe, ee, sizeof ee);
    memcpy(io.data + ox, x, B * per * 4);
    memcpy(io.data + ot, t, sizeof t);
    memcpy(io.data + oo, oa, B * per * 4);
    memcpy(io.data + on, nz, B * per * 4);
    memcpy(io.data + op, pa, B * per * 4);
    a.cfg.target = SP_POLICY_TARGET_X0;
    sp_policy_predict(&a, &wa, io.data + opx, img, ee, nz, B);
    a.cfg.target = SP_POLICY_TARGET_EPS;
    for (int k = 0; k < B; k++) {
      double u[16];
      sp_policy_unnorm_actions(&a, pa + k * per, u);
      for (size_t i = 0; i < per; i++) io.data[oa2 + k * per + i] = (float)u[i];
    }
    char iop[600];
    snprintf(iop, sizeof iop, "%s.io.safetensors", path);
    cr_assert_eq(nn_checkpoint_save(iop, &io, "{}", 0, 0, err), 0, "%s", err);
    nn_params_free(&io);
    cr_log_info("kept %s and %s", path, iop);
  } else {
    unlink(path);
  }
  free(img);
  sp_policy_ws_free(&wa);
  sp_policy_ws_free(&wb);
  sp_policy_free(&a);
  sp_policy_free(&b);
}

/* ---------------------------------------------------------------------------------------------
 * `sp train policy` end to end (tests/test_models_train.c's approach, its own dataset) */

#define POLICY_ARGS \
  "--preset tiny --steps 40 --batch 4 --warmup 2 --lr 1e-3 --ckpt-steps 2 --ckpt-minutes 0 " \
  "--val-every 10 --val-samples 4 --log-every 1 --threads 1"

Test(models_policy, train_resume_after_kill_is_bit_identical) {
  const char *ds = sp_test_tiny_dataset("policy");
  if (!sp_file_exists(sp_test_bin())) cr_skip_test("%s not built", sp_test_bin());
  char a[256], b[256], cmd[2048], path[512], err[SP_ERRLEN];
  snprintf(a, sizeof a, "/tmp/sp_test_policy_%d_a", (int)getpid());
  snprintf(b, sizeof b, "/tmp/sp_test_policy_%d_b", (int)getpid());
  sp_test_rm_rf(a);
  sp_test_rm_rf(b);
  snprintf(cmd, sizeof cmd, "%s train policy --data %s --out %s " POLICY_ARGS " > /dev/null 2>&1", sp_test_bin(), ds, a);
  cr_assert_eq(sp_test_run(cmd), 0, "uninterrupted run failed: %s", cmd);
  /* the same run, killed with SIGKILL once a checkpoint exists, then resumed */
  snprintf(cmd, sizeof cmd, "exec %s train policy --data %s --out %s " POLICY_ARGS " > /dev/null 2>&1", sp_test_bin(), ds,
           b);
  snprintf(path, sizeof path, "%s/last.safetensors", b);
  double waited;
  int status = sp_test_kill_at_checkpoint(cmd, b, &waited);
  cr_assert(waited < 120, "no checkpoint appeared");
  char mpath[512];
  snprintf(mpath, sizeof mpath, "%s/model.safetensors", b);
  cr_assert(WIFSIGNALED(status) && !sp_file_exists(mpath), "the kill did not land mid-run (status %d)", status);
  sp_ckpt_info info;
  cr_assert_eq(sp_ckpt_info_read(path, &info, err), 0, "%s", err);
  long killed_at = info.step;
  sp_ckpt_info_free(&info);
  snprintf(cmd, sizeof cmd, "%s train policy --out %s --resume > /dev/null 2>&1", sp_test_bin(), b);
  cr_assert_eq(sp_test_run(cmd), 0, "resume failed: %s", cmd);
  char pa[512], pb[512];
  snprintf(pa, sizeof pa, "%s/last.safetensors", a);
  snprintf(pb, sizeof pb, "%s/last.safetensors", b);
  sp_test_same_tensors(pa, pb);  // weights, AdamW moments and EMA
  snprintf(pa, sizeof pa, "%s/model.safetensors", a);
  snprintf(pb, sizeof pb, "%s/model.safetensors", b);
  sp_test_same_tensors(pa, pb);
  fprintf(stderr, "models_policy: killed at the checkpoint of step %ld of 40, resumed: identical tensors\n", killed_at);
  /* the log holds each step once and the validations (the same metrics in both runs) */
  snprintf(pa, sizeof pa, "%s/train.jsonl", a);
  snprintf(pb, sizeof pb, "%s/train.jsonl", b);
  size_t la, lb;
  char *loga = sp_file_read(pa, &la, err), *logb = sp_file_read(pb, &lb, err);
  cr_assert(loga && logb, "%s", err);
  const char *va = strstr(loga, "{\"step\":40,\"metric\""), *vb = strstr(logb, "{\"step\":40,\"metric\"");
  cr_assert(va && vb, "the final validation was not logged");
  cr_expect(!strncmp(va, vb, (size_t)(strstr(va, "\"val_s\"") - va)), "the final validations differ:\n%.200s\n%.200s", va, vb);
  cr_expect(strstr(logb, "\"mse\"") && strstr(logb, "\"mid_mse\""), "validation metrics missing");
  int ones = 0;
  for (const char *p = logb; (p = strstr(p, "{\"step\":1,\"loss\"")); p++) ones++;
  cr_expect_eq(ones, 1, "step 1 logged %d times", ones);
  free(loga);
  free(logb);
  /* the trained policy loads as a whole and acts */
  sp_policy m;
  cr_assert_eq(sp_policy_load(&m, mpath, err), 0, "%s", err);
  cr_expect(m.lim.act_max[0] > m.lim.act_min[0] && m.lim.ee_max[1] > m.lim.ee_min[1], "limits not from the dataset");
  sp_policy_ws w;
  cr_assert_eq(sp_policy_ws_init(&w, &m, 1, 0, err), 0, "%s", err);
  uint8_t frame[16 * 16 * 3];
  memset(frame, 128, sizeof frame);
  double ee[SP_POLICY_EE_MAX] = {0, 0.6, 0.2, 1}, acts[16];
  sp_policy_act(&m, &w, frame, frame, ee, 1, acts);
  for (int i = 0; i < 16; i++)
    cr_expect(acts[i] >= m.lim.act_min[i % 4] - 1e-6 && acts[i] <= m.lim.act_max[i % 4] + 1e-6,
              "action %d = %g outside the dataset's limits", i, acts[i]);
  sp_policy_ws_free(&w);
  sp_policy_free(&m);
  /* refusals: an occupied --out, a changed setting on --resume, a video checkpoint */
  snprintf(cmd, sizeof cmd, "%s train policy --data %s --out %s " POLICY_ARGS " 2>&1 | grep -q 'already holds a run'",
           sp_test_bin(), ds, a);
  cr_expect_eq(sp_test_run(cmd), 0, "a second run into the same --out was not refused");
  snprintf(cmd, sizeof cmd, "%s train policy --out %s --resume --steps 44 --goal-max 20 2>&1 | grep -q 'goal_max'",
           sp_test_bin(), a);
  cr_expect_eq(sp_test_run(cmd), 0, "a changed job setting on --resume was not named");
  snprintf(cmd, sizeof cmd, "%s train policy --out %s --resume --steps 44 --ddim-steps 5 2>&1 | grep -q 'ddim_steps'",
           sp_test_bin(), a);
  cr_expect_eq(sp_test_run(cmd), 0, "a changed model setting on --resume was not named");
  snprintf(cmd, sizeof cmd, "%s train video --out %s --resume 2>&1 | grep -q 'not a video model'", sp_test_bin(), a);
  cr_expect_eq(sp_test_run(cmd), 0, "sp train video resumed a policy run");
  snprintf(cmd, sizeof cmd, "%s train policy --data %s --out %s_c --preset tiny --frame 32 --crop 28 2>&1 | grep -q 'collect with --size 32'",
           sp_test_bin(), ds, a);
  cr_expect_eq(sp_test_run(cmd), 0, "a dataset of another frame size was not named");
  snprintf(cmd, sizeof cmd, "%s train policy --data %s --out %s_c --preset tiny --goal-min 5 --goal-max 3 > /dev/null 2>&1",
           sp_test_bin(), ds, a);
  cr_expect_eq(sp_test_run(cmd), 2, "goal_max below goal_min was not a command-line error");
  sp_test_rm_rf(a);
  sp_test_rm_rf(b);
  snprintf(path, sizeof path, "%s_c", a);
  sp_test_rm_rf(path);
  unlink(ds);
}

/* the policy learns: after 600 steps of the tiny preset the held-out action MSE (DDIM from fixed
 * noise, unnormalised, EMA weights) lies below 0.75 of the trivial chunk's (the limits' middle).
 * The x0 target: on this 16 px set the epsilon target stays above the middle for the first 600
 * steps (1.24 -> 1.03 against 0.65; x0 0.29 -> 0.28), see docs/training.md */
Test(models_policy, heldout_action_beats_the_middle) {
  const char *ds = sp_test_tiny_dataset("policy");
  if (!sp_file_exists(sp_test_bin())) cr_skip_test("%s not built", sp_test_bin());
  char a[256], cmd[2048], path[512], err[SP_ERRLEN];
  snprintf(a, sizeof a, "/tmp/sp_test_policy_%d_mse", (int)getpid());
  sp_test_rm_rf(a);
  snprintf(cmd, sizeof cmd,
           "%s train policy --data %s --out %s --preset tiny --steps 600 --batch 16 --warmup 10 --lr 2e-3 --target x0 "
           "--val-every 100 --val-samples 32 --log-every 100 --ckpt-minutes 0 --threads 1 > /dev/null 2>&1",
           sp_test_bin(), ds, a);
  cr_assert_eq(sp_test_run(cmd), 0, "run failed: %s", cmd);
  snprintf(path, sizeof path, "%s/train.jsonl", a);
  size_t len;
  char *log = sp_file_read(path, &len, err);
  cr_assert(log, "%s", err);
  double mse[16], mid = 0;
  int n = 0;
  for (const char *p = log; n < 16 && (p = strstr(p, "\"mse\":")); p++) {
    mse[n++] = atof(p + 6);
    const char *q = strstr(p, "\"mid_mse\":");
    if (q) mid = atof(q + 10);
  }
  cr_assert_eq(n, 6, "%d validations logged, want 6", n);
  fprintf(stderr, "models_policy: held-out action MSE %.3g at step 100 -> %.3g at step 600 (the limits' middle: %.3g)\n",
          mse[0], mse[n - 1], mid);
  cr_expect(mse[n - 1] < 0.75 * mid, "held-out action MSE %g not below 0.75 of the limits' middle %g", mse[n - 1], mid);
  free(log);
  sp_test_rm_rf(a);
  unlink(ds);
}

/* fine-tuning: `--init` starts from a checkpoint's weights, limits and model config. With lr 0
 * and no EMA the run leaves the weights as they came, so its model equals the init's tensor for
 * tensor; the provenance names the init, a resume keeps it, and a contradicting --preset or a
 * missing file is a one-line command-line error. */
Test(models_policy, fine_tune_starts_from_the_init) {
  const char *ds = sp_test_tiny_dataset("policy");
  if (!sp_file_exists(sp_test_bin())) cr_skip_test("%s not built", sp_test_bin());
  char a[256], b[256], cmd[2048], pa[512], pb[512], err[SP_ERRLEN];
  snprintf(a, sizeof a, "/tmp/sp_test_policy_%d_init", (int)getpid());
  snprintf(b, sizeof b, "/tmp/sp_test_policy_%d_tune", (int)getpid());
  sp_test_rm_rf(a);
  sp_test_rm_rf(b);
  snprintf(cmd, sizeof cmd,
           "%s train policy --data %s --out %s --preset tiny --steps 6 --batch 4 --warmup 0 --lr 1e-3 --target x0 "
           "--val-every 0 --val-samples 4 --ckpt-minutes 0 --threads 1 > /dev/null 2>&1",
           sp_test_bin(), ds, a);
  cr_assert_eq(sp_test_run(cmd), 0, "run failed: %s", cmd);
  snprintf(pa, sizeof pa, "%s/model.safetensors", a);
  snprintf(cmd, sizeof cmd,
           "%s train policy --data %s --out %s --init %s --steps 2 --batch 4 --warmup 0 --lr 0 --weight-decay 0 --ema none "
           "--val-every 0 --val-samples 4 --ckpt-minutes 0 --threads 1 > /dev/null 2>&1",
           sp_test_bin(), ds, b, pa);
  cr_assert_eq(sp_test_run(cmd), 0, "fine-tuning failed: %s", cmd);
  snprintf(pb, sizeof pb, "%s/model.safetensors", b);
  sp_test_same_tensors(pa, pb);
  sp_policy ma, mb;
  cr_assert_eq(sp_policy_load(&ma, pa, err), 0, "%s", err);
  cr_assert_eq(sp_policy_load(&mb, pb, err), 0, "%s", err);
  cr_expect_eq(mb.cfg.target, SP_POLICY_TARGET_X0, "the model config did not come from the init");
  cr_expect(!memcmp(&ma.lim, &mb.lim, sizeof ma.lim), "the limits did not come from the init");
  sp_policy_free(&ma);
  sp_policy_free(&mb);
  sp_ckpt_info info;
  cr_assert_eq(sp_ckpt_info_read(pb, &info, err), 0, "%s", err);
  cr_expect(strstr(info.data, "\"init\"") && strstr(info.data, a), "the provenance does not name the init: %s", info.data);
  sp_ckpt_info_free(&info);
  /* a resume keeps the run's init and limits */
  snprintf(cmd, sizeof cmd, "%s train policy --out %s --resume --steps 4 > /dev/null 2>&1", sp_test_bin(), b);
  cr_assert_eq(sp_test_run(cmd), 0, "resume failed: %s", cmd);
  sp_test_same_tensors(pa, pb);
  cr_assert_eq(sp_ckpt_info_read(pb, &info, err), 0, "%s", err);
  cr_expect(strstr(info.data, "\"init\"") && info.step == 4, "resumed: step %ld, provenance %s", info.step, info.data);
  sp_ckpt_info_free(&info);
  /* the gripper input added in fine-tuning (--ee-grip 1): ee.0.weight gains a zero column, so the
   * widened policy acts as its init did whatever the opening; the opening's limits come from the
   * dataset. A policy without the input cannot start from one with it. */
  char c[256], pc[512];
  snprintf(c, sizeof c, "/tmp/sp_test_policy_%d_grip", (int)getpid());
  sp_test_rm_rf(c);
  snprintf(cmd, sizeof cmd,
           "%s train policy --data %s --out %s --init %s --ee-grip 1 --steps 1 --batch 4 --warmup 0 --lr 0 "
           "--weight-decay 0 --ema none --val-every 0 --val-samples 4 --ckpt-minutes 0 --threads 1 > /dev/null 2>&1",
           sp_test_bin(), ds, c, pa);
  cr_assert_eq(sp_test_run(cmd), 0, "widening failed: %s", cmd);
  snprintf(pc, sizeof pc, "%s/model.safetensors", c);
  sp_policy mc;
  cr_assert_eq(sp_policy_load(&ma, pa, err), 0, "%s", err);
  cr_assert_eq(sp_policy_load(&mc, pc, err), 0, "%s", err);
  cr_expect(mc.cfg.ee_grip == 1 && mc.nee == 4, "ee_grip %d, %d inputs", mc.cfg.ee_grip, mc.nee);
  cr_expect(!memcmp(ma.lim.ee_min, mc.lim.ee_min, 3 * sizeof(double)), "the xyz limits did not come from the init");
  cr_expect(mc.lim.ee_min[3] >= 0 && mc.lim.ee_max[3] <= 1 && mc.lim.ee_max[3] > mc.lim.ee_min[3],
            "the opening's limits [%g, %g] are not the dataset's", mc.lim.ee_min[3], mc.lim.ee_max[3]);
  sp_policy_ws wa, wc;
  cr_assert_eq(sp_policy_ws_init(&wa, &ma, 1, 0, err), 0, "%s", err);
  cr_assert_eq(sp_policy_ws_init(&wc, &mc, 1, 0, err), 0, "%s", err);
  uint8_t fr[16 * 16 * 3], fg[16 * 16 * 3];
  for (int i = 0; i < (int)sizeof fr; i++) fr[i] = (uint8_t)(i * 7), fg[i] = (uint8_t)(i * 13 + 5);
  double ee0[SP_POLICY_EE_MAX] = {0.05, 0.6, 0.15, 0.1}, ee1[SP_POLICY_EE_MAX] = {0.05, 0.6, 0.15, 0.9};
  double aa[64], ac0[64], ac1[64];  // tiny: horizon 4
  sp_policy_act(&ma, &wa, fr, fg, ee0, 5, aa);
  sp_policy_act(&mc, &wc, fr, fg, ee0, 5, ac0);
  sp_policy_act(&mc, &wc, fr, fg, ee1, 5, ac1);
  for (int i = 0; i < ma.cfg.unet.horizon * 4; i++)
    cr_expect(fabs(aa[i] - ac0[i]) < 1e-6 && fabs(aa[i] - ac1[i]) < 1e-6, "action %d: %g, widened %g / %g", i, aa[i],
              ac0[i], ac1[i]);
  sp_policy_ws_free(&wa);
  sp_policy_ws_free(&wc);
  sp_policy_free(&ma);
  sp_policy_free(&mc);
  snprintf(cmd, sizeof cmd, "%s train policy --data %s --out %s_x --init %s --ee-grip 0 2>&1 | grep -q 'ee-grip 1'",
           sp_test_bin(), ds, b, pc);
  cr_expect_eq(sp_test_run(cmd), 0, "narrowing a gripper policy was not refused");
  sp_test_rm_rf(c);
  /* refusals */
  snprintf(cmd, sizeof cmd, "%s train policy --data %s --out %s_x --init %s --preset tiny 2>&1 | grep -q 'drop --preset'",
           sp_test_bin(), ds, b, pa);
  cr_expect_eq(sp_test_run(cmd), 0, "--init with --preset was not refused");
  snprintf(cmd, sizeof cmd, "%s train policy --data %s --out %s_x --init %s/nope.safetensors > /dev/null 2>&1",
           sp_test_bin(), ds, b, a);
  cr_expect_eq(sp_test_run(cmd), 2, "a missing --init was not a command-line error");
  snprintf(pb, sizeof pb, "%s_x", b);
  cr_expect(!sp_file_exists(pb), "a refused run left %s", pb);
  sp_test_rm_rf(a);
  sp_test_rm_rf(b);
  unlink(ds);
}
