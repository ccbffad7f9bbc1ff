/* bench_nn.c: the product networks of src/models timed as full training steps (zero grad,
 * forward, MSE, backward, AdamW) and as no-grad inference, at the shapes of the PyTorch
 * reference networks of ../shared/bench/torch_baseline.py, so bench/bench_nn.py can print the
 * two side by side. Prints one line per case:
 *   <case>_train c_ms=<median> gflops=<achieved> fwd_gflop=<forward GFLOP> params=<M> loss0=<first loss>
 *   <case>_infer c_ms=<median> gflops=<achieved>
 *
 *   build/bench/bench_nn [threads] [cases: unet32,unet64,resnet18,dp1d] [iters] [train|infer]
 *
 * The cases are the models' `cpu` presets with the baseline's shapes where they differ:
 *   unet<R>   video U-Net (stacked layout, 32-64-128 channels), 8 frames and attention in the
 *             middle only (the baseline's network; the product generates 7 frames and the cpu
 *             preset adds attention at the lowest level), batch 8, R x R; inference: one forward
 *             and one DDIM update with frozen weights
 *   resnet18  ResNet-18 trunk, 6 input channels, 96 x 96, batch 32, BatchNorm (the baseline's)
 *   dp1d[<B>] ConditionalUnet1D 256-512-1024, kernel 5, step embedding 256, global condition
 *             1032, horizon 16, batch B (64)
 *   video-cpu the video U-Net's cpu preset exactly (7 frames, 64 x 64, text), batch 8: the network
 *             `sp train video --preset cpu` trains; bench/bench_twin.py times its PyTorch twin
 *   policy-cpu the policy's cpu preset exactly (encoder + end-effector MLP + U-Net, epsilon
 *             target), batch 32 as `sp train policy --preset cpu` trains it (data loading and EMA
 *             not counted); inference: one action chunk, sp_policy_act at B = 1 (encoder once,
 *             10 DDIM steps); bench/bench_policy.py times its PyTorch twin
 * FLOPs are counted as torch_baseline.py counts them (conv, linear, attention matmuls; 2 per
 * MAC; a training step is 3x the forward). SP_NN_WINOGRAD=0|1|2 sets the convolution algorithm
 * (the models' config field `winograd`); SP_BENCH_FREEZE=0 runs inference without frozen weights. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/rng.h"
#include "models/dp1d.h"
#include "models/policy.h"
#include "models/resnet.h"
#include "models/vunet.h"
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

static float *randn(size_t n, sp_mt19937 *r) {
  float *x = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
  for (size_t i = 0; i < n; i++) x[i] = (float)sp_mt_normal(r);
  return x;
}

static void die(const char *what, const char *err) {
  fprintf(stderr, "bench_nn: %s: %s\n", what, err);
  exit(1);
}

/* one case: the model behind three callbacks */
typedef struct {
  nn_params *ps;
  double fwd_flops;
  void *self;
  float (*train_fwd)(void *self);  // forward + loss on the training workspace
  void (*train_bwd)(void *self);   // loss gradient + backward
  void (*infer)(void *self);       // no-grad forward on the inference workspace (+ DDIM update)
  double infer_flops;              // FLOPs of one infer call when it differs from fwd_flops (0: the same)
} bench_case;

static int g_train = 1, g_infer = 1;
static int g_wino = -1;  // SP_NN_WINOGRAD, -1 when unset

static void run_case(const char *name, bench_case *c, int warm, int iters) {
  nn_adamw_cfg cfg = nn_adamw_defaults();
  double ts[64], ti[64];
  float first = 0.f;
  for (int i = 0; g_train && i < warm + iters; i++) {
    double t0 = now_ms();
    nn_params_zero_grad(c->ps);
    float loss = c->train_fwd(c->self);
    c->train_bwd(c->self);
    nn_adamw_step(c->ps, &cfg, 1e-4f, i + 1);
    double t1 = now_ms();
    if (i == 0) first = loss;
    if (!isfinite(loss)) {
      fprintf(stderr, "%s: loss is %g at step %d\n", name, loss, i);
      exit(1);
    }
    if (i >= warm) ts[i - warm] = t1 - t0;
  }
  if (g_train) {
    double med = median(ts, iters);
    printf("%s_train c_ms=%.1f gflops=%.1f fwd_gflop=%.2f params=%.2fM loss0=%.5f\n", name, med,
           3.0 * c->fwd_flops / med / 1e6, c->fwd_flops / 1e9, c->ps->total / 1e6, first);
    fflush(stdout);
  }
  /* inference with frozen weights: transforms built in the warm-up calls are kept; PyTorch's
   * eager no-grad forward has no such cache */
  const char *fz = getenv("SP_BENCH_FREEZE");
  int freeze = g_infer && !(fz && !strcmp(fz, "0"));
  if (freeze) nn_weights_freeze(c->ps->data, c->ps->total);
  for (int i = 0; g_infer && i < warm + iters; i++) {
    double t0 = now_ms();
    c->infer(c->self);
    if (i >= warm) ti[i - warm] = now_ms() - t0;
  }
  if (freeze) nn_weights_thaw(c->ps->data, c->ps->total);
  if (g_infer) {
    double med = median(ti, iters);
    printf("%s_infer c_ms=%.1f gflops=%.1f\n", name, med, (c->infer_flops > 0 ? c->infer_flops : c->fwd_flops) / med / 1e6);
    fflush(stdout);
  }
}

/* =============================================================================================
 * video U-Net */

typedef struct {
  sp_vunet m;
  sp_vunet_ws tw, iw;
  int B;
  size_t n;  // B * 3 * F * R * R
  float *x, *cond, *t, *target, *y, *dy, *buf;
  int32_t ids[8 * SP_TEXT_WORDS];
  nn_sched s;
} vu_case;

static float vu_fwd(void *p) {
  vu_case *v = p;
  sp_vunet_forward(&v->m, &v->tw, v->y, v->x, v->cond, v->t, v->ids, v->B);
  return nn_mse_forward(v->y, v->target, NULL, 1, v->n);
}
static void vu_bwd(void *p) {
  vu_case *v = p;
  nn_mse_backward(v->dy, v->y, v->target, NULL, 1, v->n, 1.f);
  sp_vunet_backward(&v->m, &v->tw, v->dy, v->B);
}
static void vu_infer(void *p) {
  vu_case *v = p;
  sp_vunet_forward(&v->m, &v->iw, v->y, v->x, v->cond, v->t, v->ids, v->B);
  nn_ddim_step(v->buf, v->y, v->x, NULL, &v->s, 50, 45, 0.f, (int)v->n, NN_PRED_V, 1, v->buf + v->n, v->buf + 2 * v->n);
}

static void bench_unet(const char *name, int R, int frames, int warm, int iters) {
  char err[SP_ERRLEN];
  vu_case *v = calloc(1, sizeof *v);
  sp_vunet_cfg c;
  sp_vunet_cfg_preset(&c, SP_PRESET_CPU);
  c.res = R;
  c.frames = frames;
  if (frames == 8) c.attn_min_ds = 8;  // the baseline's network: attention in the middle only
  if (g_wino >= 0) c.winograd = g_wino;
  v->B = 8;
  if (sp_vunet_init(&v->m, &c, 1, err)) die(name, err);
  if (nn_params_alloc_train(&v->m.ps, 0, err)) die(name, err);
  if (sp_vunet_ws_init(&v->tw, &v->m, v->B, 1, err) || sp_vunet_ws_init(&v->iw, &v->m, v->B, 0, err)) die(name, err);
  v->n = (size_t)v->B * 3 * c.frames * R * R;
  sp_mt19937 r;
  sp_mt_seed(&r, 0);
  v->x = randn(v->n, &r);
  v->cond = randn((size_t)v->B * 3 * R * R, &r);
  v->target = randn(v->n, &r);
  v->y = randn(v->n, &r);
  v->dy = randn(v->n, &r);
  v->buf = randn(3 * v->n, &r);
  v->t = randn((size_t)v->B, &r);
  for (int b = 0; b < v->B; b++) {
    v->t[b] = (float)(sp_mt_u32(&r) % 100);
    sp_text_ids("door-open", v->ids + b * SP_TEXT_WORDS);
  }
  nn_sched_init(&v->s, NN_SCHED_COSINE, 100, 0, 0, NULL);
  bench_case bc = {&v->m.ps, sp_vunet_flops(&v->m, v->B), v, vu_fwd, vu_bwd, vu_infer, 0};
  run_case(name, &bc, warm, iters);
  sp_vunet_ws_free(&v->tw);
  sp_vunet_ws_free(&v->iw);
  sp_vunet_free(&v->m);
  free(v->x), free(v->cond), free(v->target), free(v->y), free(v->dy), free(v->buf), free(v->t);
  free(v);
}

/* =============================================================================================
 * ResNet-18 trunk */

typedef struct {
  sp_resnet m;
  nn_params ps;
  sp_resnet_ws tw, iw;
  int B;
  float *x, *target, *y, *dy;
} rn_case;

static float rn_fwd(void *p) {
  rn_case *v = p;
  sp_resnet_forward(&v->m, &v->ps, &v->tw, v->y, v->x, v->B);
  return nn_mse_forward(v->y, v->target, NULL, 1, (size_t)v->B * v->m.feat);
}
static void rn_bwd(void *p) {
  rn_case *v = p;
  nn_mse_backward(v->dy, v->y, v->target, NULL, 1, (size_t)v->B * v->m.feat, 1.f);
  sp_resnet_backward(&v->m, &v->ps, &v->tw, v->dy, v->B);
}
static void rn_infer(void *p) {
  rn_case *v = p;
  sp_resnet_forward(&v->m, &v->ps, &v->iw, v->y, v->x, v->B);
}

static void bench_resnet(const char *name, int warm, int iters) {
  char err[SP_ERRLEN];
  rn_case *v = calloc(1, sizeof *v);
  sp_resnet_cfg c;
  sp_resnet_cfg_preset(&c, SP_PRESET_CPU);
  c.norm = SP_RESNET_NORM_BATCH;
  v->B = 32;
  nn_params_init(&v->ps);
  if (sp_resnet_init(&v->m, &c, &v->ps, "", err) || nn_params_alloc_train(&v->ps, 0, err)) die(name, err);
  nn_params_init_default(&v->ps, 2);
  if (sp_resnet_ws_init(&v->tw, &v->m, v->B, 1, err) || sp_resnet_ws_init(&v->iw, &v->m, v->B, 0, err)) die(name, err);
  sp_mt19937 r;
  sp_mt_seed(&r, 1);
  v->x = randn((size_t)v->B * c.in_ch * c.res * c.res, &r);
  v->target = randn((size_t)v->B * v->m.feat, &r);
  v->y = randn((size_t)v->B * v->m.feat, &r);
  v->dy = randn((size_t)v->B * v->m.feat, &r);
  bench_case bc = {&v->ps, sp_resnet_flops(&v->m, v->B), v, rn_fwd, rn_bwd, rn_infer, 0};
  run_case(name, &bc, warm, iters);
  sp_resnet_ws_free(&v->tw);
  sp_resnet_ws_free(&v->iw);
  sp_resnet_free(&v->m);
  nn_params_free(&v->ps);
  free(v->x), free(v->target), free(v->y), free(v->dy);
  free(v);
}

/* =============================================================================================
 * Diffusion Policy's ConditionalUnet1D */

typedef struct {
  sp_dp1d m;
  nn_params ps;
  sp_dp1d_ws tw, iw;
  int B;
  size_t n;
  float *x, *t, *g, *target, *y, *dy;
} dp_case;

static float dp_fwd(void *p) {
  dp_case *v = p;
  sp_dp1d_forward(&v->m, &v->ps, &v->tw, v->y, v->x, v->t, v->g, v->B);
  return nn_mse_forward(v->y, v->target, NULL, 1, v->n);
}
static void dp_bwd(void *p) {
  dp_case *v = p;
  nn_mse_backward(v->dy, v->y, v->target, NULL, 1, v->n, 1.f);
  sp_dp1d_backward(&v->m, &v->ps, &v->tw, NULL, v->dy, v->B);
}
static void dp_infer(void *p) {
  dp_case *v = p;
  sp_dp1d_forward(&v->m, &v->ps, &v->iw, v->y, v->x, v->t, v->g, v->B);
}

static void bench_dp(const char *name, int B, int warm, int iters) {
  char err[SP_ERRLEN];
  dp_case *v = calloc(1, sizeof *v);
  sp_dp1d_cfg c;
  sp_dp1d_cfg_preset(&c, SP_PRESET_CPU);
  c.horizon = 16;
  c.step_dim = 256;
  c.gdim = 1032;
  v->B = B;
  nn_params_init(&v->ps);
  if (sp_dp1d_init(&v->m, &c, &v->ps, "", err) || nn_params_alloc_train(&v->ps, 0, err)) die(name, err);
  nn_params_init_default(&v->ps, 3);
  if (sp_dp1d_ws_init(&v->tw, &v->m, B, 1, err) || sp_dp1d_ws_init(&v->iw, &v->m, B, 0, err)) die(name, err);
  v->n = (size_t)B * c.horizon * c.adim;
  sp_mt19937 r;
  sp_mt_seed(&r, 2);
  v->x = randn(v->n, &r);
  v->g = randn((size_t)B * c.gdim, &r);
  v->target = randn(v->n, &r);
  v->y = randn(v->n, &r);
  v->dy = randn(v->n, &r);
  v->t = randn((size_t)B, &r);
  for (int b = 0; b < B; b++) v->t[b] = (float)(sp_mt_u32(&r) % 100);
  bench_case bc = {&v->ps, sp_dp1d_flops(&v->m, B), v, dp_fwd, dp_bwd, dp_infer, 0};
  run_case(name, &bc, warm, iters);
  sp_dp1d_ws_free(&v->tw);
  sp_dp1d_ws_free(&v->iw);
  nn_params_free(&v->ps);
  free(v->x), free(v->g), free(v->target), free(v->y), free(v->dy), free(v->t);
  free(v);
}

/* =============================================================================================
 * the whole policy network, its cpu preset */

typedef struct {
  sp_policy m;
  sp_policy_ws tw, iw;
  int B;
  size_t n;
  float *x, *t, *img, *ee, *target, *y, *dy;
  uint8_t *cur, *goal;
  double acts[256];  // (H x 4), H <= 64
  unsigned seed;
} pol_case;

static float pol_fwd(void *p) {
  pol_case *v = p;
  sp_policy_forward(&v->m, &v->tw, v->y, v->x, v->t, v->img, v->ee, v->B);
  return nn_mse_forward(v->y, v->target, NULL, 1, v->n);
}
static void pol_bwd(void *p) {
  pol_case *v = p;
  nn_mse_backward(v->dy, v->y, v->target, NULL, 1, v->n, 1.f);
  sp_policy_backward(&v->m, &v->tw, v->dy, v->B);
}
static void pol_infer(void *p) {
  pol_case *v = p;
  double ee[SP_POLICY_EE_MAX] = {0.0, 0.6, 0.2, 1.0};
  sp_policy_act(&v->m, &v->iw, v->cur, v->goal, ee, v->seed++, v->acts);
}

static void bench_policy(const char *name, int B, int warm, int iters) {
  char err[SP_ERRLEN];
  pol_case *v = calloc(1, sizeof *v);
  sp_policy_cfg c;
  sp_policy_cfg_preset(&c, SP_PRESET_CPU);
  v->B = B;
  if (sp_policy_init(&v->m, &c, 3, err) || nn_params_alloc_train(&v->m.ps, 0, err)) die(name, err);
  if (sp_policy_ws_init(&v->tw, &v->m, B, 1, err) || sp_policy_ws_init(&v->iw, &v->m, 1, 0, err)) die(name, err);
  int R = c.enc.res, F = c.frame;
  v->n = (size_t)B * c.unet.horizon * SP_POLICY_ADIM;
  sp_mt19937 r;
  sp_mt_seed(&r, 2);
  v->x = randn(v->n, &r);
  v->img = randn((size_t)B * SP_POLICY_IN_CH * R * R, &r);
  v->ee = randn((size_t)B * 3, &r);
  v->target = randn(v->n, &r);
  v->y = randn(v->n, &r);
  v->dy = randn(v->n, &r);
  v->t = randn((size_t)B, &r);
  for (int b = 0; b < B; b++) v->t[b] = (float)(sp_mt_u32(&r) % 100);
  v->cur = malloc((size_t)F * F * 3);
  v->goal = malloc((size_t)F * F * 3);
  for (int i = 0; i < F * F * 3; i++) v->cur[i] = (uint8_t)sp_mt_u32(&r), v->goal[i] = (uint8_t)sp_mt_u32(&r);
  double fwd = sp_resnet_flops(&v->m.enc, B) + sp_dp1d_flops(&v->m.unet, B);
  bench_case bc = {&v->m.ps, fwd, v, pol_fwd, pol_bwd, pol_infer, sp_policy_act_flops(&v->m)};
  run_case(name, &bc, warm, iters);
  sp_policy_ws_free(&v->tw);
  sp_policy_ws_free(&v->iw);
  sp_policy_free(&v->m);
  free(v->x), free(v->img), free(v->ee), free(v->target), free(v->y), free(v->dy), free(v->t);
  free(v->cur), free(v->goal);
  free(v);
}

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
    g_wino = wm[0] - '0';
    nn_conv2d_set_winograd(g_wino);
    nn_conv1d_set_winograd(g_wino);
  }
  printf("# bench_nn threads=%d iters=%d warm=%d (product models of src/models)\n", nn_threads(), iters, warm);
  char buf[256];
  snprintf(buf, sizeof buf, "%s", cases);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    if (!strcmp(tok, "video-cpu")) {
      bench_unet(tok, 64, 7, warm, iters);  // the cpu preset exactly, as sp train video runs it
    } else if (!strncmp(tok, "unet", 4)) {
      int R = atoi(tok + 4);
      if (R < 8 || R > 256 || R % 4) {
        fprintf(stderr, "bench_nn: case %s: the video U-Net needs a resolution that is a multiple of 4 "
                        "in [8, 256], e.g. unet32\n", tok);
        return 2;
      }
      bench_unet(tok, R, 8, warm, iters);
    } else if (!strcmp(tok, "policy-cpu")) {
      bench_policy(tok, 32, warm, iters);  // the cpu preset as sp train policy runs it
    } else if (!strcmp(tok, "resnet18")) {
      bench_resnet(tok, warm, iters);
    } else if (!strncmp(tok, "dp1d", 4)) {
      int B = tok[4] ? atoi(tok + 4) : 64;
      if (B < 1 || B > 1024) {
        fprintf(stderr, "bench_nn: case %s: the policy network's batch must be in [1, 1024], e.g. dp1d64\n", tok);
        return 2;
      }
      bench_dp(tok, B, warm, iters);
    } else {
      fprintf(stderr, "bench_nn: unknown case '%s' (known: unet<R>, resnet18, dp1d[<B>], video-cpu, policy-cpu)\n", tok);
      return 2;
    }
  }
  return 0;
}
