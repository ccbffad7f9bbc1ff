/* tests of the policy's networks (src/models/resnet.c, dp1d.c) against their PyTorch twins
 * (tools/twin_policy.py -> tests/fixtures/models/): forward, every parameter gradient, 5 AdamW
 * steps, BatchNorm running statistics and eval mode, inference workspaces, config errors, the
 * torchvision loader. Tolerance: max|a - b| / max|b| <= 1e-4 per tensor. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "models/dp1d.h"
#include "models/resnet.h"
#include "twin_helpers.h"

#define TOL 1e-4

static void init_nn(void) { nn_init(2); }

static double g_worst[4];  // per kind of check: forward, gradients, AdamW, statistics (printed)

static void expect_close(const char *what, const float *got, const float *want, size_t n, int kind) {
  double e = relerr(got, want, n);
  if (!(e <= g_worst[kind])) g_worst[kind] = e;
  cr_expect(e <= TOL, "%s: relative error %.3g > %g", what, e, TOL);
}

/* a parameter's name without the model's prefix ("enc.conv1.weight" -> "conv1.weight") */
static const char *bare(const char *name, const char *prefix) {
  size_t n = strlen(prefix);
  return n && !strncmp(name, prefix, n) && name[n] == '.' ? name + n + 1 : name;
}

/* copy fixture "<tag>.<bare name>" into every parameter of a table; the fixture holds no others */
static void load_table(const nn_safetensors *st, nn_params *ps, float *dst, const char *tag, const char *prefix) {
  char key[256];
  for (int i = 0; i < ps->n; i++) {
    snprintf(key, sizeof key, "%s.%s", tag, bare(ps->p[i].name, prefix));
    memcpy(dst + ps->p[i].offset, fx(st, key, ps->p[i].numel), ps->p[i].numel * sizeof(float));
  }
  int nfix = 0;
  size_t tl = strlen(tag);
  for (int i = 0; i < st->n; i++) nfix += !strncmp(st->t[i].name, tag, tl) && st->t[i].name[tl] == '.';
  cr_expect_eq(nfix, ps->n, "%s: the C model has %d tensors, the PyTorch twin %d", tag, ps->n, nfix);
}

static void check_table(const nn_safetensors *st, const nn_params *ps, const float *got, const char *tag,
                        const char *prefix, int kind) {
  char key[256], what[400];
  for (int i = 0; i < ps->n; i++) {
    snprintf(key, sizeof key, "%s.%s", tag, bare(ps->p[i].name, prefix));
    snprintf(what, sizeof what, "%s (%s)", key, ps->p[i].name);
    expect_close(what, got + ps->p[i].offset, fx(st, key, ps->p[i].numel), ps->p[i].numel, kind);
  }
}

/* weights after AdamW steps: AdamW moves an element by about lr * g / (|g| + eps) whatever the
 * gradient's size, so where the first gradient lies at float32's noise floor (0 < |g| < 1e-5 of
 * the tensor's largest; the C and PyTorch gradients agree to ~1e-5 of the largest) the two
 * trajectories may part by up to a step per step. Those elements are held to that bound
 * (2 steps lr) and counted; every other element to TOL. */
static int g_noisy;
static size_t numel(const nn_params *ps) {
  size_t n = 0;
  for (int i = 0; i < ps->n; i++) n += ps->p[i].numel;
  return n;
}
static void check_final(const nn_safetensors *st, const nn_params *ps, const char *prefix, float lr, int steps) {
  char key[256], what[512];
  for (int i = 0; i < ps->n; i++) {
    const nn_param *p = &ps->p[i];
    snprintf(key, sizeof key, "grad.%s", bare(p->name, prefix));
    const float *g = fx(st, key, p->numel);
    snprintf(key, sizeof key, "final.%s", bare(p->name, prefix));
    const float *want = fx(st, key, p->numel), *got = ps->data + p->offset;
    double gmax = 0, wmax = 0, e = 0, enoisy = 0;
    for (size_t k = 0; k < p->numel; k++) {
      if (fabs(g[k]) > gmax) gmax = fabs(g[k]);
      if (fabs(want[k]) > wmax) wmax = fabs(want[k]);
    }
    int noisy = 0;
    for (size_t k = 0; k < p->numel; k++) {
      double d = fabs((double)got[k] - want[k]);
      if (g[k] != 0 && fabs(g[k]) < 1e-5 * gmax) {
        noisy++;
        if (!(d <= enoisy)) enoisy = d;
      } else if (!(d <= e)) {
        e = d;
      }
    }
    g_noisy += noisy;
    e /= wmax + 1e-30;
    if (!(e <= g_worst[2])) g_worst[2] = e;
    snprintf(what, sizeof what, "%s (%s) after %d AdamW steps", key, p->name, steps);
    cr_expect(e <= TOL, "%s: relative error %.3g > %g", what, e, TOL);
    cr_expect(enoisy <= 2.0 * steps * lr, "%s: an element with a noise-floor gradient moved %.3g from PyTorch's, above 2 steps lr",
              what, enoisy);
  }
}

/* the fixture's config (metadata JSON) must be the tiny preset (with norm as given) */
static void expect_config(const nn_safetensors *st, const sp_cf *fields, const void *preset, void *cfg) {
  char err[SP_ERRLEN];
  const char *json = nn_st_meta(st, "config");
  cr_assert(json, "fixture has no config metadata");
  cr_assert_eq(sp_cf_from_json(fields, cfg, json, err), 0, "%s", err);
  cr_expect_eq(sp_cf_diff(fields, cfg, preset, "fixture vs preset", err), 0, "%s", err);
}

/* =============================================================================================
 * ResNet */

TestSuite(models_resnet, .init = init_nn);

static void resnet_run(const char *file, int batch) {
  nn_safetensors st;
  st_open(&st, file);
  char err[SP_ERRLEN];
  sp_resnet_cfg c, pre;
  sp_resnet_cfg_preset(&pre, SP_PRESET_TINY);
  pre.norm = batch ? SP_RESNET_NORM_BATCH : SP_RESNET_NORM_GROUP;
  c = pre;
  expect_config(&st, sp_resnet_fields, &pre, &c);
  int B = atoi(nn_st_meta(&st, "batch"));
  cr_assert_eq(B, 3);
  nn_params ps;
  nn_params_init(&ps);
  sp_resnet m;
  cr_assert_eq(sp_resnet_init(&m, &c, &ps, "enc", err), 0, "%s", err);
  cr_assert_eq(nn_params_alloc_train(&ps, 0, err), 0, "%s", err);
  load_table(&st, &ps, ps.data, "init", "enc");
  cr_expect_eq(m.stats.n, batch ? 2 * (1 + 2 * 6 + 2) : 0);  // stem, 6 blocks x 2, 2 downsamples
  if (batch) load_table(&st, &m.stats, m.stats.data, "stats0", "enc");

  sp_resnet_ws w;
  cr_assert_eq(sp_resnet_ws_init(&w, &m, B + 2, 1, err), 0, "%s", err);  // a batch below maxB
  cr_expect_eq(w.eval, 0);
  size_t nx = (size_t)B * c.in_ch * c.res * c.res, nf = (size_t)B * m.feat;
  const float *x = fx(&st, "x", nx), *target = fx(&st, "target", nf);
  float *feat = calloc(nf, 4), *dfeat = calloc(nf, 4);
  nn_adamw_cfg oc = nn_adamw_defaults();
  float lr = (float)atof(nn_st_meta(&st, "lr"));
  int steps = atoi(nn_st_meta(&st, "steps"));
  for (int step = 1; step <= steps; step++) {
    nn_params_zero_grad(&ps);
    sp_resnet_forward(&m, &ps, &w, feat, x, B);
    float loss = nn_mse_forward(feat, target, NULL, 1, nf);
    nn_mse_backward(dfeat, feat, target, NULL, 1, nf, 1.f);
    sp_resnet_backward(&m, &ps, &w, dfeat, B);
    if (step == 1) {
      expect_close("resnet features", feat, fx(&st, "out", nf), nf, 0);
      expect_close("resnet loss", &loss, fx(&st, "loss", 1), 1, 0);
      check_table(&st, &ps, ps.grad, "grad", "enc", 1);
      if (batch) {
        check_table(&st, &m.stats, m.stats.data, "stats1", "enc", 3);
        /* eval mode on the training workspace: the running statistics, which stay as they are */
        float *s1 = malloc(m.stats.total * 4), *fe = calloc(nf, 4);
        memcpy(s1, m.stats.data, m.stats.total * 4);
        w.eval = 1;
        sp_resnet_forward(&m, &ps, &w, fe, x, B);
        w.eval = 0;
        expect_close("resnet eval-mode features", fe, fx(&st, "out_eval", nf), nf, 0);
        cr_expect_eq(memcmp(s1, m.stats.data, m.stats.total * 4), 0, "an eval-mode forward changed the running statistics");
        cr_expect(relerr(fe, feat, nf) > 1e-3, "eval and training mode gave the same features: the test cannot tell them apart");
        free(s1);
        free(fe);
      }
    }
    nn_adamw_step(&ps, &oc, lr, step);
  }
  check_final(&st, &ps, "enc", lr, steps);
  if (batch) check_table(&st, &m.stats, m.stats.data, "stats5", "enc", 3);
  fprintf(stderr,
          "models_resnet %s: worst relative error forward %.2g, gradients %.2g, AdamW %.2g, running stats %.2g; "
          "%d of %zu weights with noise-floor gradients\n", file, g_worst[0], g_worst[1], g_worst[2], g_worst[3], g_noisy,
          numel(&ps));
  free(feat);
  free(dfeat);
  sp_resnet_ws_free(&w);
  sp_resnet_free(&m);
  nn_params_free(&ps);
  nn_st_close(&st);
}

Test(models_resnet, group_forward_grads_adamw) { resnet_run("resnet_group.safetensors", 0); }

Test(models_resnet, batch_forward_grads_stats_eval_adamw) {
  resnet_run("resnet_batch.safetensors", 1);
}

/* an inference workspace: no gradient buffers, eval mode, smaller; BatchNorm eval forward with
 * the statistics after the first training forward gives the twin's eval-mode features */
Test(models_resnet, inference_workspace) {
  nn_safetensors st;
  st_open(&st, "resnet_batch.safetensors");
  char err[SP_ERRLEN];
  sp_resnet_cfg c;
  sp_resnet_cfg_preset(&c, SP_PRESET_TINY);
  c.norm = SP_RESNET_NORM_BATCH;
  nn_params ps;
  nn_params_init(&ps);
  sp_resnet m;
  cr_assert_eq(sp_resnet_init(&m, &c, &ps, "", err), 0, "%s", err);
  cr_assert_eq(nn_params_alloc(&ps, err), 0, "%s", err);  // weights only
  cr_expect(ps.grad == NULL && ps.m == NULL);
  load_table(&st, &ps, ps.data, "init", "");
  load_table(&st, &m.stats, m.stats.data, "stats1", "");
  sp_resnet_ws wi, wt;
  cr_assert_eq(sp_resnet_ws_init(&wi, &m, 3, 0, err), 0, "%s", err);
  cr_assert_eq(sp_resnet_ws_init(&wt, &m, 3, 1, err), 0, "%s", err);
  cr_expect_eq(wi.eval, 1);
  cr_expect(wi.dp0 == NULL && wi.da0 == NULL, "inference workspace has stem gradient buffers");
  for (int k = 0; k < m.nblk; k++) cr_expect(wi.dblk[k] == NULL, "inference workspace has block %d's gradient", k);
  cr_expect_eq(wi.base.work_n, 0, "inference workspace has a backward work buffer of %zu floats", wi.base.work_n);
  cr_expect(wi.base.ar.cap < wt.base.ar.cap, "inference arena %zu >= training arena %zu", wi.base.ar.cap, wt.base.ar.cap);
  size_t nf = (size_t)3 * m.feat;
  float *f = calloc(nf, 4);
  sp_resnet_forward(&m, &ps, &wi, f, fx(&st, "x", (size_t)3 * 6 * 32 * 32), 3);
  expect_close("resnet inference features", f, fx(&st, "out_eval", nf), nf, 0);
  free(f);
  sp_resnet_ws_free(&wi);
  sp_resnet_ws_free(&wt);
  sp_resnet_free(&m);
  nn_params_free(&ps);
  nn_st_close(&st);
}

/* GroupNorm makes samples independent: one sample alone gives its row of a batch of three */
Test(models_resnet, batch_of_one) {
  nn_safetensors st;
  st_open(&st, "resnet_group.safetensors");
  char err[SP_ERRLEN];
  sp_resnet_cfg c;
  sp_resnet_cfg_preset(&c, SP_PRESET_TINY);
  nn_params ps;
  nn_params_init(&ps);
  sp_resnet m;
  cr_assert_eq(sp_resnet_init(&m, &c, &ps, "", err), 0, "%s", err);
  cr_assert_eq(nn_params_alloc(&ps, err), 0, "%s", err);
  load_table(&st, &ps, ps.data, "init", "");
  sp_resnet_ws w;
  cr_assert_eq(sp_resnet_ws_init(&w, &m, 3, 0, err), 0, "%s", err);
  size_t nx1 = (size_t)6 * 32 * 32;
  const float *x = fx(&st, "x", 3 * nx1), *want = fx(&st, "out", (size_t)3 * m.feat);
  float f[64];
  for (int b = 0; b < 3; b++) {
    sp_resnet_forward(&m, &ps, &w, f, x + b * nx1, 1);
    expect_close("resnet batch of one", f, want + (size_t)b * m.feat, (size_t)m.feat, 0);
  }
  sp_resnet_ws_free(&w);
  sp_resnet_free(&m);
  nn_params_free(&ps);
  nn_st_close(&st);
}

/* torchvision layout: 3-channel stem copied into both halves and halved, BatchNorm affine and
 * running statistics, fc and num_batches_tracked ignored; [x, x] through the 6-channel model
 * gives the 3-channel network's features */
Test(models_resnet, torchvision_loader) {
  nn_safetensors st;
  st_open(&st, "resnet_tv.safetensors");
  const char *path = "tests/fixtures/models/resnet_tv.safetensors";
  char err[SP_ERRLEN];
  sp_resnet_cfg c;
  sp_resnet_cfg_preset(&c, SP_PRESET_TINY);
  c.norm = SP_RESNET_NORM_BATCH;
  nn_params ps;
  nn_params_init(&ps);
  sp_resnet m;
  cr_assert_eq(sp_resnet_init(&m, &c, &ps, "enc", err), 0, "%s", err);
  cr_assert_eq(nn_params_alloc(&ps, err), 0, "%s", err);
  cr_assert_eq(sp_resnet_load_torchvision(&m, &ps, path, err), 0, "%s", err);
  /* stem: (8, 6, 7, 7) = halves of (8, 3, 7, 7) */
  const float *w3 = fx(&st, "conv1.weight", (size_t)8 * 3 * 49), *w6 = ps.data + m.stem_w;
  int bad = 0;
  for (int o = 0; o < 8; o++)
    for (int ci = 0; ci < 6; ci++)
      for (int j = 0; j < 49; j++) bad += w6[(o * 6 + ci) * 49 + j] != 0.5f * w3[(o * 3 + ci % 3) * 49 + j];
  cr_expect_eq(bad, 0, "%d stem weights are not half the torchvision ones", bad);
  for (int i = 1; i < ps.n; i++) {
    const nn_param *p = &ps.p[i];
    cr_expect_eq(memcmp(ps.data + p->offset, fx(&st, bare(p->name, "enc"), p->numel), p->numel * 4), 0, "%s not copied",
                 p->name);
  }
  for (int i = 0; i < m.stats.n; i++) {
    const nn_param *p = &m.stats.p[i];
    cr_expect_eq(memcmp(m.stats.data + p->offset, fx(&st, bare(p->name, "enc"), p->numel), p->numel * 4), 0,
                 "%s not copied", p->name);
  }
  /* the function: features of [x, x] (6 channels) = features of x (3 channels) */
  int B = 3;
  size_t n3 = (size_t)3 * 32 * 32, nf = (size_t)B * m.feat;
  const float *x3 = fx(&st, "x3", B * n3);
  float *x6 = malloc(2 * B * n3 * 4), *f = calloc(nf, 4);
  for (int b = 0; b < B; b++) {
    memcpy(x6 + (2 * b) * n3, x3 + b * n3, n3 * 4);
    memcpy(x6 + (2 * b + 1) * n3, x3 + b * n3, n3 * 4);
  }
  sp_resnet_ws w;
  cr_assert_eq(sp_resnet_ws_init(&w, &m, B, 0, err), 0, "%s", err);
  sp_resnet_forward(&m, &ps, &w, f, x6, B);
  expect_close("torchvision features of [x, x]", f, fx(&st, "out_eval", nf), nf, 0);
  sp_resnet_ws_free(&w);
  free(x6);
  free(f);

  /* GroupNorm model: same parameter names, no running statistics to fill */
  sp_resnet mg;
  nn_params pg;
  nn_params_init(&pg);
  c.norm = SP_RESNET_NORM_GROUP;
  cr_assert_eq(sp_resnet_init(&mg, &c, &pg, "", err), 0, "%s", err);
  cr_assert_eq(nn_params_alloc(&pg, err), 0, "%s", err);
  cr_expect_eq(sp_resnet_load_torchvision(&mg, &pg, path, err), 0, "%s", err);
  cr_expect_eq(mg.stats.n, 0);
  cr_expect_eq(memcmp(pg.data + mg.stem_w, w6, (size_t)8 * 6 * 49 * 4), 0);
  sp_resnet_free(&mg);
  nn_params_free(&pg);

  /* failures: bad in_ch, wider model (names the key, weights untouched), missing file */
  sp_resnet_cfg c2 = c;
  c2.in_ch = 4;
  nn_params_init(&pg);
  cr_assert_eq(sp_resnet_init(&mg, &c2, &pg, "", err), 0, "%s", err);
  cr_assert_eq(nn_params_alloc(&pg, err), 0, "%s", err);
  cr_expect_eq(sp_resnet_load_torchvision(&mg, &pg, path, err), -1);
  cr_expect(strstr(err, "in_ch"), "error does not name in_ch: %s", err);
  sp_resnet_free(&mg);
  nn_params_free(&pg);
  c2 = c;
  c2.width = 16;
  nn_params_init(&pg);
  cr_assert_eq(sp_resnet_init(&mg, &c2, &pg, "", err), 0, "%s", err);
  cr_assert_eq(nn_params_alloc(&pg, err), 0, "%s", err);
  for (size_t i = 0; i < pg.total; i++) pg.data[i] = 7.f;
  cr_expect_eq(sp_resnet_load_torchvision(&mg, &pg, path, err), -1);
  cr_expect(strstr(err, "conv1.weight") && strstr(err, "(8, 3, 7, 7)"), "error does not name the tensor and shape: %s", err);
  int touched = 0;
  for (size_t i = 0; i < pg.total; i++) touched += pg.data[i] != 7.f;
  cr_expect_eq(touched, 0, "a failed load changed %d weights", touched);
  cr_expect_eq(sp_resnet_load_torchvision(&mg, &pg, "tests/fixtures/models/none.safetensors", err), -1);
  sp_resnet_free(&mg);
  nn_params_free(&pg);

  sp_resnet_free(&m);
  nn_params_free(&ps);
  nn_st_close(&st);
}

static void expect_cfg_error(int rc, const char *err, const char *field) {
  cr_expect_eq(rc, -1, "a bad %s was accepted", field);
  cr_expect(strstr(err, field) != NULL, "error does not name %s: %s", field, err);
}

Test(models_resnet, config) {
  char err[SP_ERRLEN];
  sp_resnet_cfg c, b;
  for (int p = 0; p < SP_PRESET_N; p++) {
    sp_resnet_cfg_preset(&c, (sp_preset)p);
    cr_expect_eq(sp_resnet_cfg_check(&c, err), 0, "preset %s: %s", sp_preset_name((sp_preset)p), err);
  }
  sp_resnet_cfg_preset(&c, SP_PRESET_CPU);
  b = c; b.width = 0;
  expect_cfg_error(sp_resnet_cfg_check(&b, err), err, "width");
  b = c; b.stages = 5;
  expect_cfg_error(sp_resnet_cfg_check(&b, err), err, "stages");
  b = c; b.in_ch = 0;
  expect_cfg_error(sp_resnet_cfg_check(&b, err), err, "in_ch");
  b = c; b.res = 4;
  expect_cfg_error(sp_resnet_cfg_check(&b, err), err, "res");
  b = c; b.norm = 2;
  expect_cfg_error(sp_resnet_cfg_check(&b, err), err, "norm");
  b = c; b.gn_size = 24;
  expect_cfg_error(sp_resnet_cfg_check(&b, err), err, "gn_size");
  b.norm = SP_RESNET_NORM_BATCH;  // gn_size does not matter to BatchNorm
  cr_expect_eq(sp_resnet_cfg_check(&b, err), 0, "%s", err);
  nn_params ps;
  nn_params_init(&ps);
  sp_resnet m;
  b = c; b.blocks = 0;
  expect_cfg_error(sp_resnet_init(&m, &b, &ps, "", err), err, "blocks");
  cr_expect_eq(ps.n, 0, "a refused config registered parameters");
  /* parameter counts: ResNet-18 without fc is 11,176,512 with a 3-channel stem; 6 channels
   * add 64 x 3 x 49 */
  cr_assert_eq(sp_resnet_init(&m, &c, &ps, "", err), 0, "%s", err);
  size_t np = 0;
  for (int i = 0; i < ps.n; i++) np += ps.p[i].numel;
  cr_expect_eq(np, 11176512 + 9408, "cpu preset has %zu parameters", np);
  cr_expect_eq(m.feat, 512);
  cr_expect_eq(m.nblk, 8);
  /* FLOPs of the cpu preset at B 1: the convolutions of ResNet-18 at 96 x 96 (6-channel stem) */
  double f = sp_resnet_flops(&m, 1);
  cr_expect(f > 0.65e9 && f < 0.75e9, "cpu preset: %.3g FLOPs per image", f);
  sp_resnet_free(&m);
  nn_params_free(&ps);
}

/* =============================================================================================
 * ConditionalUnet1D */

TestSuite(models_dp1d, .init = init_nn);

static void dp1d_setup(nn_safetensors *st, sp_dp1d *m, nn_params *ps, const char *prefix, int train) {
  char err[SP_ERRLEN];
  st_open(st, "dp1d.safetensors");
  sp_dp1d_cfg c, pre;
  sp_dp1d_cfg_preset(&pre, SP_PRESET_TINY);
  c = pre;
  expect_config(st, sp_dp1d_fields, &pre, &c);
  nn_params_init(ps);
  cr_assert_eq(sp_dp1d_init(m, &c, ps, prefix, err), 0, "%s", err);
  cr_assert_eq(train ? nn_params_alloc_train(ps, 0, err) : nn_params_alloc(ps, err), 0, "%s", err);
  load_table(st, ps, ps->data, "init", prefix);
}

Test(models_dp1d, forward_grads_adamw) {
  nn_safetensors st;
  sp_dp1d m;
  nn_params ps;
  char err[SP_ERRLEN];
  dp1d_setup(&st, &m, &ps, "pol", 1);
  const sp_dp1d_cfg *c = &m.cfg;
  int B = atoi(nn_st_meta(&st, "batch"));
  cr_assert_eq(B, 3);
  sp_dp1d_ws w;
  cr_assert_eq(sp_dp1d_ws_init(&w, &m, B + 1, 1, err), 0, "%s", err);
  size_t na = (size_t)B * c->horizon * c->adim, ng = (size_t)B * c->gdim;
  const float *x = fx(&st, "x", na), *t = fx(&st, "t", B), *g = fx(&st, "g", ng), *target = fx(&st, "target", na);
  float *out = calloc(na, 4), *dout = calloc(na, 4), *dg = calloc(ng, 4);
  nn_adamw_cfg oc = nn_adamw_defaults();
  float lr = (float)atof(nn_st_meta(&st, "lr"));
  int steps = atoi(nn_st_meta(&st, "steps"));
  for (int step = 1; step <= steps; step++) {
    nn_params_zero_grad(&ps);
    sp_dp1d_forward(&m, &ps, &w, out, x, t, g, B);
    float loss = nn_mse_forward(out, target, NULL, 1, na);
    nn_mse_backward(dout, out, target, NULL, 1, na, 1.f);
    sp_dp1d_backward(&m, &ps, &w, step == 1 ? dg : NULL, dout, B);
    if (step == 1) {
      expect_close("dp1d output", out, fx(&st, "out", na), na, 0);
      expect_close("dp1d loss", &loss, fx(&st, "loss", 1), 1, 0);
      check_table(&st, &ps, ps.grad, "grad", "pol", 1);
      expect_close("dp1d global-condition gradient", dg, fx(&st, "dg", ng), ng, 1);
    }
    nn_adamw_step(&ps, &oc, lr, step);
  }
  check_final(&st, &ps, "pol", lr, steps);
  fprintf(stderr, "models_dp1d: worst relative error forward %.2g, gradients %.2g, AdamW %.2g; %d of %zu weights with noise-floor gradients\n",
          g_worst[0], g_worst[1], g_worst[2], g_noisy, numel(&ps));
  free(out);
  free(dout);
  free(dg);
  sp_dp1d_ws_free(&w);
  nn_params_free(&ps);
  nn_st_close(&st);
}

/* inference workspace: no gradient buffers; one sample alone gives its row of the batch */
Test(models_dp1d, inference_workspace) {
  nn_safetensors st;
  sp_dp1d m;
  nn_params ps;
  char err[SP_ERRLEN];
  dp1d_setup(&st, &m, &ps, "", 0);
  const sp_dp1d_cfg *c = &m.cfg;
  sp_dp1d_ws w, wt;
  cr_assert_eq(sp_dp1d_ws_init(&w, &m, 3, 0, err), 0, "%s", err);
  cr_assert_eq(sp_dp1d_ws_init(&wt, &m, 3, 1, err), 0, "%s", err);
  cr_expect(w.dy == NULL && w.dcond == NULL && w.dmid[0] == NULL && w.dmid[1] == NULL && w.dfa == NULL,
            "inference workspace has gradient buffers");
  for (int i = 0; i < c->levels; i++) cr_expect(w.down[i].d1 == NULL && w.down[i].d2 == NULL && w.down[i].dsout == NULL);
  for (int j = 0; j < c->levels - 1; j++) cr_expect(w.up[j].dcat == NULL && w.up[j].dsout == NULL);
  cr_expect_eq(w.base.work_n, 0);
  cr_expect(w.base.ar.cap < wt.base.ar.cap, "inference arena %zu >= training arena %zu", w.base.ar.cap, wt.base.ar.cap);
  size_t per = (size_t)c->horizon * c->adim;
  const float *x = fx(&st, "x", 3 * per), *t = fx(&st, "t", 3), *g = fx(&st, "g", (size_t)3 * c->gdim);
  const float *want = fx(&st, "out", 3 * per);
  float out[3 * 64];
  sp_dp1d_forward(&m, &ps, &w, out, x, t, g, 3);
  expect_close("dp1d inference output", out, want, 3 * per, 0);
  for (int b = 0; b < 3; b++) {
    sp_dp1d_forward(&m, &ps, &w, out, x + b * per, t + b, g + (size_t)b * c->gdim, 1);
    expect_close("dp1d batch of one", out, want + b * per, per, 0);
  }
  sp_dp1d_ws_free(&w);
  sp_dp1d_ws_free(&wt);
  nn_params_free(&ps);
  nn_st_close(&st);
}

Test(models_dp1d, config) {
  char err[SP_ERRLEN];
  sp_dp1d_cfg c, b;
  for (int p = 0; p < SP_PRESET_N; p++) {
    sp_dp1d_cfg_preset(&c, (sp_preset)p);
    cr_expect_eq(sp_dp1d_cfg_check(&c, err), 0, "preset %s: %s", sp_preset_name((sp_preset)p), err);
  }
  sp_dp1d_cfg_preset(&c, SP_PRESET_TINY);
  b = c; b.horizon = 6;
  expect_cfg_error(sp_dp1d_cfg_check(&b, err), err, "horizon");
  b = c; b.kernel = 4;
  expect_cfg_error(sp_dp1d_cfg_check(&b, err), err, "kernel");
  b = c; b.step_dim = 17;
  expect_cfg_error(sp_dp1d_cfg_check(&b, err), err, "step_dim");
  b = c; b.groups = 3;
  expect_cfg_error(sp_dp1d_cfg_check(&b, err), err, "groups");
  b = c; b.levels = 0;
  expect_cfg_error(sp_dp1d_cfg_check(&b, err), err, "down_dims");
  b = c; b.levels = 5;
  expect_cfg_error(sp_dp1d_cfg_check(&b, err), err, "down_dims");
  b = c; b.down_dims[1] = 0;
  expect_cfg_error(sp_dp1d_cfg_check(&b, err), err, "down_dims");
  b = c; b.adim = 0;
  expect_cfg_error(sp_dp1d_cfg_check(&b, err), err, "adim");
  b = c; b.gdim = -1;
  expect_cfg_error(sp_dp1d_cfg_check(&b, err), err, "gdim");
  nn_params ps;
  nn_params_init(&ps);
  sp_dp1d m;
  b = c; b.horizon = 2;
  expect_cfg_error(sp_dp1d_init(&m, &b, &ps, "", err), err, "horizon");
  cr_expect_eq(ps.n, 0, "a refused config registered parameters");
  /* other shapes build: one level (no decoder), two levels with horizon 16 */
  b = c; b.levels = 1;
  cr_expect_eq(sp_dp1d_init(&m, &b, &ps, "", err), 0, "%s", err);
  nn_params_free(&ps);
  nn_params_init(&ps);
  b = c; b.levels = 2; b.horizon = 16;
  cr_expect_eq(sp_dp1d_init(&m, &b, &ps, "", err), 0, "%s", err);
  nn_params_free(&ps);
}

/* shapes the fixture does not cover (one level: no decoder; two levels, horizon 8): gradients of
 * L = sum(out * r) against central differences, parameters and the global condition */
typedef struct {
  sp_dp1d m;
  nn_params ps;
  sp_dp1d_ws w;
  float *x, *t, *g, *out, *r;
  size_t na;
  int B;
} dpfd;

static double dpfd_loss(dpfd *c) {
  sp_dp1d_forward(&c->m, &c->ps, &c->w, c->out, c->x, c->t, c->g, c->B);
  double s = 0;
  for (size_t i = 0; i < c->na; i++) s += (double)c->out[i] * c->r[i];
  return s;
}

static void fd_check(const char *what, dpfd *c, float *buf, const float *grad, size_t n, int samples) {
  int bad = 0;
  double worst = 0;
  for (int k = 0; k < samples; k++) {
    size_t i = ((size_t)k * 7919 + 3) % n;
    float v = buf[i];
    buf[i] = v + 1e-2f;
    double lp = dpfd_loss(c);
    buf[i] = v - 1e-2f;
    double lm = dpfd_loss(c);
    buf[i] = v;
    double num = (lp - lm) / 2e-2, e = fabs(num - grad[i]) / (1 + fabs(grad[i]));
    if (e > worst) worst = e;
    bad += e > 1e-2;
  }
  cr_expect_eq(bad, 0, "%s: %d of %d finite differences off by more than 1e-2 (worst %.3g)", what, bad, samples, worst);
}

static void dp1d_fd(int levels, int horizon) {
  dpfd c;
  char err[SP_ERRLEN];
  sp_dp1d_cfg cfg;
  sp_dp1d_cfg_preset(&cfg, SP_PRESET_TINY);
  cfg.levels = levels;
  cfg.horizon = horizon;
  cfg.gdim = 6;
  nn_params_init(&c.ps);
  cr_assert_eq(sp_dp1d_init(&c.m, &cfg, &c.ps, "", err), 0, "%s", err);
  cr_assert_eq(nn_params_alloc_train(&c.ps, 0, err), 0, "%s", err);
  nn_params_init_default(&c.ps, 5);
  c.B = 2;
  cr_assert_eq(sp_dp1d_ws_init(&c.w, &c.m, c.B, 1, err), 0, "%s", err);
  c.na = (size_t)c.B * horizon * cfg.adim;
  size_t ng = (size_t)c.B * cfg.gdim;
  c.x = malloc(c.na * 4);
  c.r = malloc(c.na * 4);
  c.out = malloc(c.na * 4);
  c.g = malloc(ng * 4);
  float t[2] = {5.f, 80.f}, *dg = calloc(ng, 4);
  c.t = t;
  for (size_t i = 0; i < c.na; i++) {
    c.x[i] = sinf(0.7f * i + 0.3f);
    c.r[i] = cosf(1.3f * i);
  }
  for (size_t i = 0; i < ng; i++) c.g[i] = sinf(2.1f * i);
  nn_params_zero_grad(&c.ps);
  dpfd_loss(&c);
  sp_dp1d_backward(&c.m, &c.ps, &c.w, dg, c.r, c.B);
  char what[64];
  snprintf(what, sizeof what, "dp1d %d levels: parameters", levels);
  fd_check(what, &c, c.ps.data, c.ps.grad, c.ps.total, 48);
  snprintf(what, sizeof what, "dp1d %d levels: global condition", levels);
  fd_check(what, &c, c.g, dg, ng, 12);
  free(c.x);
  free(c.r);
  free(c.out);
  free(c.g);
  free(dg);
  sp_dp1d_ws_free(&c.w);
  nn_params_free(&c.ps);
}

Test(models_dp1d, other_shapes_finite_differences) {
  dp1d_fd(1, 4);
  dp1d_fd(2, 8);
}
