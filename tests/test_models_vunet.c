/* tests of src/models/vunet: forward, every parameter gradient and 5 AdamW steps against the
 * PyTorch twin (tests/fixtures/models/vunet_<layout>.safetensors, tools/twin_vunet.py) for both
 * layouts and both convolution paths; inference workspaces without gradients; no allocation in
 * forward or backward (malloc interposed in this file); config bounds; text ids; checkpoints.
 *
 * Tolerance, per tensor: max |c - twin| / (max |twin| + 1e-30) <= 1e-4 for the forward output and
 * every gradient, <= 1e-3 for the weights after 5 AdamW steps. AdamW's update lr m/(sqrt(v) + eps)
 * is sign-like where a gradient is near eps = 1e-8, so a rounding-level gradient difference
 * (1e-10) moves such a weight by ~1e-5 (relative 1e-4 of the tensor: seen up to 9.9e-5); the
 * attention's key bias has an exactly zero true gradient (softmax shift invariance) and does so
 * in every element. A real defect in a step (stale state, missing accumulation) moves weights by
 * ~lr = 1e-3, i.e. 1e-2 relative, which 1e-3 still catches.
 * The nn team is 1 thread except in the allocation tests (which must see OpenMP's threads):
 * Criterion runs tests side by side, and 2 x 2 spinning threads on 2 cores run 10x slower. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "models/vunet.h"
#include "sim/env.h"
#include "twin_helpers.h"

/* ---------------------------------------------------------------------------------------------
 * allocation counter: malloc and friends interposed for the whole test binary, forwarding to
 * glibc; they count only while g_count_on, and only calls from the test's thread or from inside
 * an OpenMP region (Criterion's own threads allocate at any time). Calls made by libgomp itself
 * are counted apart: it allocates a team for every parallel region run by one thread (the nn
 * ops' `parallel if (n large)`), which is the OpenMP runtime's business, not the model's.
 * Left out under AddressSanitizer (which owns malloc). */

#if defined(__SANITIZE_ADDRESS__)
#define VU_COUNT_ALLOCS 0
#else
#define VU_COUNT_ALLOCS 1
#include <dlfcn.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static atomic_int g_count_on;
static atomic_long g_allocs, g_gomp_allocs;
static pthread_t g_counted;
static void count(void *caller) {
  if (!atomic_load_explicit(&g_count_on, memory_order_relaxed)) return;
  if (!pthread_equal(pthread_self(), g_counted) && !omp_in_parallel()) return;
  Dl_info di;
  if (dladdr(caller, &di) && di.dli_fname && strstr(di.dli_fname, "libgomp")) atomic_fetch_add(&g_gomp_allocs, 1);
  else atomic_fetch_add(&g_allocs, 1);
}
#define COUNT() count(__builtin_return_address(0))  // the wrappers are noinline: this is their caller
__attribute__((noinline)) void *malloc(size_t n) {
  COUNT();
  return __libc_malloc(n);
}
__attribute__((noinline)) void *calloc(size_t k, size_t n) {
  COUNT();
  return __libc_calloc(k, n);
}
__attribute__((noinline)) void *realloc(void *p, size_t n) {
  COUNT();
  return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
__attribute__((noinline)) void *memalign(size_t a, size_t n) {
  COUNT();
  return __libc_memalign(a, n);
}
__attribute__((noinline)) void *aligned_alloc(size_t a, size_t n) {
  COUNT();
  return __libc_memalign(a, n);
}
__attribute__((noinline)) int posix_memalign(void **p, size_t a, size_t n) {
  COUNT();
  *p = __libc_memalign(a, n);
  return *p ? 0 : 12;  // ENOMEM
}
#endif

/* ---------------------------------------------------------------------------------------------
 * helpers */

static void fill(float *x, size_t n, unsigned seed, float scale) {
  unsigned s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = scale * ((float)(s >> 8) / 16777216.f * 2.f - 1.f);
  }
}

typedef struct {
  sp_vunet m;
  sp_vunet_ws w;
  float *x, *cond, *t, *out, *target, *dy;
  int32_t text[4 * SP_TEXT_WORDS];
  size_t nx, nc;
} rig;

/* a model of cfg and a workspace for maxB, deterministic inputs for B = maxB */
static void rig_make(rig *r, const sp_vunet_cfg *c, int maxB, int train, unsigned seed) {
  char err[SP_ERRLEN];
  memset(r, 0, sizeof *r);
  cr_assert_eq(sp_vunet_init(&r->m, c, seed, err), 0, "%s", err);
  if (train) cr_assert_eq(nn_params_alloc_train(&r->m.ps, 0, err), 0, "%s", err);
  cr_assert_eq(sp_vunet_ws_init(&r->w, &r->m, maxB, train, err), 0, "%s", err);
  size_t S = (size_t)c->res * c->res;
  r->nx = (size_t)maxB * 3 * c->frames * S;
  r->nc = (size_t)maxB * 3 * S;
  r->x = calloc(r->nx, 4);
  r->out = calloc(r->nx, 4);
  r->target = calloc(r->nx, 4);
  r->dy = calloc(r->nx, 4);
  r->cond = calloc(r->nc, 4);
  r->t = calloc((size_t)maxB, 4);
  fill(r->x, r->nx, 1, 1.f);
  fill(r->cond, r->nc, 2, 1.f);
  fill(r->target, r->nx, 3, 1.f);
  const char *texts[4] = {"door-open", "", "button-press-topdown", "hammer"};
  for (int b = 0; b < maxB; b++) {
    r->t[b] = (float)(7 + 31 * b);
    sp_text_ids(texts[b % 4], r->text + b * SP_TEXT_WORDS);
  }
}

static void rig_free(rig *r) {
  sp_vunet_ws_free(&r->w);
  sp_vunet_free(&r->m);
  free(r->x);
  free(r->out);
  free(r->target);
  free(r->dy);
  free(r->cond);
  free(r->t);
}

/* ---------------------------------------------------------------------------------------------
 * twin */

/* layout: the fixture's name after "vunet_" (vunet_<layout>[_<cond>].safetensors). The variants'
 * fixtures hold B = 3 samples, the third null, and the plan ids, distances, 9-d vectors and null
 * flags; the text fixtures B = 2 and the text ids only. */
static void twin(const char *layout, int winograd) {
  char err[SP_ERRLEN], path[256], key[256];
  nn_init(1);
  snprintf(path, sizeof path, "tests/fixtures/models/vunet_%s.safetensors", layout);
  nn_safetensors st;
  cr_assert_eq(nn_st_open(&st, path, err), 0, "%s", err);
  sp_vunet_cfg c;
  sp_vunet_cfg_preset(&c, SP_PRESET_TINY);
  const char *json = nn_st_meta(&st, "config");
  cr_assert(json != NULL, "%s: no config metadata", path);
  cr_assert_eq(sp_vunet_cfg_from_json(&c, json, err), 0, "%s", err);
  c.winograd = winograd;
  sp_vunet m;
  cr_assert_eq(sp_vunet_init(&m, &c, 1, err), 0, "%s", err);
  cr_assert_eq(nn_params_alloc_train(&m.ps, 0, err), 0, "%s", err);
  nn_params *ps = &m.ps;
  /* weights by name; the twin has exactly these */
  int nfix = 0;
  for (int i = 0; i < st.n; i++) nfix += !strncmp(st.t[i].name, "param.", 6);
  cr_assert_eq(nfix, ps->n, "C model has %d parameters, twin %d", ps->n, nfix);
  for (int i = 0; i < ps->n; i++) {
    snprintf(key, sizeof key, "param.%s", ps->p[i].name);
    memcpy(ps->data + ps->p[i].offset, fx(&st, key, ps->p[i].numel), ps->p[i].numel * 4);
  }
  int B = nn_st_find(&st, "null") ? 3 : 2, F = c.frames, R = c.res;
  size_t nx = (size_t)B * 3 * F * R * R;
  const float *x = fx(&st, "x", nx), *cond = fx(&st, "cond", (size_t)B * 3 * (c.video_cond ? F : 1) * R * R);
  const float *t = fx(&st, "t", B);
  const float *target = fx(&st, "target", nx);
  size_t ni = 0;
  const int32_t *text = nn_st_i32(&st, "text", &ni);
  cr_assert(text && ni == (size_t)B * SP_TEXT_WORDS, "fixture text ids");
  sp_vcond vc = {.text = text};
  sp_plan_enc plans[3];
  uint8_t null[3];
  if (B == 3) {
    size_t nn = 0;
    const int32_t *nl = nn_st_i32(&st, "null", &nn);
    cr_assert(nl && nn == (size_t)B, "fixture null flags");
    for (int b = 0; b < B; b++) null[b] = (uint8_t)nl[b];
    vc.null = null;
  }
  if (c.text_enc == SP_VUNET_TEXT_CLIP) {
    size_t nr = 0;
    vc.clip = nn_st_i32(&st, "clip_row", &nr);
    cr_assert(vc.clip && nr == (size_t)B, "fixture clip rows");
  }
  if (c.cond != SP_VCOND_TEXT) {
    size_t na = 0, nd = 0;
    const int32_t *pa = nn_st_i32(&st, "plan_act", &na), *pd = nn_st_i32(&st, "plan_dir", &nd);
    cr_assert(pa && pd && na == (size_t)B * SP_PLAN_MAX && nd == na, "fixture plan ids");
    const float *pl = fx(&st, "plan_dist", (size_t)B * SP_PLAN_MAX);
    for (int b = 0; b < B; b++) {
      for (int l = 0; l < SP_PLAN_MAX; l++) {
        plans[b].action_id[l] = pa[b * SP_PLAN_MAX + l];
        plans[b].dir_id[l] = pd[b * SP_PLAN_MAX + l];
        plans[b].dist[l] = pl[b * SP_PLAN_MAX + l];
      }
    }
    vc.plan = plans;
    vc.dvec = fx(&st, "dvec", (size_t)B * SP_VCOND_DVEC);
  }
  /* a workspace larger than the batch */
  sp_vunet_ws w;
  cr_assert_eq(sp_vunet_ws_init(&w, &m, 4, 1, err), 0, "%s", err);
  float *y = malloc(nx * 4), *dy = malloc(nx * 4);
  sp_vunet_forward_c(&m, &w, y, x, cond, t, &vc, B);
  double e = relerr(y, fx(&st, "out", nx), nx);
  cr_expect(e <= 1e-4, "%s wino %d: forward rel err %.3g", layout, winograd, e);
  float loss = nn_mse_forward(y, target, NULL, 1, nx);
  const float *want_loss = fx(&st, "loss", 1);
  cr_expect(fabs(loss - want_loss[0]) <= 1e-5 * want_loss[0], "loss %.8g want %.8g", loss, want_loss[0]);
  nn_params_zero_grad(ps);
  nn_mse_backward(dy, y, target, NULL, 1, nx, 1.f);
  sp_vunet_backward(&m, &w, dy, B);
  double worst = 0;
  const char *wname = "";
  for (int i = 0; i < ps->n; i++) {
    snprintf(key, sizeof key, "grad.%s", ps->p[i].name);
    const float *want = fx(&st, key, ps->p[i].numel);
    double g = relerr(ps->grad + ps->p[i].offset, want, ps->p[i].numel);
    if (strlen(ps->p[i].name) >= 12 && !strcmp(ps->p[i].name + strlen(ps->p[i].name) - 12, "xattn.k.bias")) {
      /* the cross-attention's key bias adds the same score to every key of a query: softmax
       * ignores it, its true gradient is 0 and both sides hold rounding (twin ~1e-11) */
      double a = 0;
      for (size_t k = 0; k < ps->p[i].numel; k++) {
        double d = fabs(ps->grad[ps->p[i].offset + k]) + fabs(want[k]);
        if (d > a) a = d;
      }
      cr_expect(a <= 1e-8, "%s: key-bias gradient %.3g, want ~0", layout, a);
      g = 0;
    }
    cr_expect(g <= 1e-4, "%s wino %d: grad %s rel err %.3g", layout, winograd, ps->p[i].name, g);
    if (!(g <= worst)) worst = g, wname = ps->p[i].name;
  }
  /* 5 AdamW steps on the same batch (the text fixtures; the variants' hold no adamw5.*) */
  int with_adamw = nn_st_f32(&st, "adamw5.outc.bias", NULL) != NULL;
  nn_adamw_cfg ac = nn_adamw_defaults();
  for (int s = 1; s <= 5 && with_adamw; s++) {
    if (s > 1) {
      sp_vunet_forward_c(&m, &w, y, x, cond, t, &vc, B);
      nn_params_zero_grad(ps);
      nn_mse_backward(dy, y, target, NULL, 1, nx, 1.f);
      sp_vunet_backward(&m, &w, dy, B);
    }
    nn_adamw_step(ps, &ac, 1e-3f, s);
  }
  double aworst = 0;
  const char *aname = "";
  for (int i = 0; i < ps->n && with_adamw; i++) {
    snprintf(key, sizeof key, "adamw5.%s", ps->p[i].name);
    double a = relerr(ps->data + ps->p[i].offset, fx(&st, key, ps->p[i].numel), ps->p[i].numel);
    cr_expect(a <= 1e-3, "%s wino %d: weights %s after 5 AdamW steps rel err %.3g", layout, winograd,
              ps->p[i].name, a);
    if (!(a <= aworst)) aworst = a, aname = ps->p[i].name;
  }
  cr_log_info("vunet twin %s winograd %d: forward %.2g, worst grad %.2g (%s), worst AdamW-5 %.2g (%s)", layout,
              winograd, e, worst, wname, aworst, aname);
  free(y);
  free(dy);
  sp_vunet_ws_free(&w);
  sp_vunet_free(&m);
  nn_st_close(&st);
}

Test(models_vunet, twin_stacked_im2col) { twin("stacked", 0); }
Test(models_vunet, twin_stacked_winograd) { twin("stacked", 2); }
Test(models_vunet, twin_factorised_im2col) { twin("factorised", 0); }
Test(models_vunet, twin_factorised_winograd) { twin("factorised", 2); }
Test(models_vunet, twin_distance) { twin("stacked_distance", 1); }
Test(models_vunet, twin_plan) { twin("stacked_plan", 1); }
Test(models_vunet, twin_plan_local_stacked) { twin("stacked_plan-local", 1); }
Test(models_vunet, twin_plan_local_factorised) { twin("factorised_plan-local", 1); }
Test(models_vunet, twin_clip_text) { twin("stacked_clip", 1); }
Test(models_vunet, twin_clip_plan) { twin("stacked_plan_clip", 1); }
/* VideoAgent's refinement input: the condition a video, frame f beside generated frame f */
Test(models_vunet, twin_video_cond_stacked) { twin("stacked_vcond", 1); }
Test(models_vunet, twin_video_cond_factorised) { twin("factorised_vcond", 1); }

/* ---------------------------------------------------------------------------------------------
 * inference workspace, batch sizes */

static void infer_checks(int layout) {
  nn_init(1);
  sp_vunet_cfg c;
  sp_vunet_cfg_preset(&c, SP_PRESET_TINY);
  c.layout = layout;
  rig tr, in;
  rig_make(&in, &c, 2, 0, 5);
  /* weights only */
  cr_assert(in.m.ps.data != NULL);
  cr_assert(in.m.ps.grad == NULL && in.m.ps.m == NULL && in.m.ps.v == NULL && in.m.ps.ema == NULL,
            "sp_vunet_init allocated training state");
  /* no gradient buffers anywhere in an inference workspace */
  sp_vunet_ws *w = &in.w;
  cr_assert(w->base.train == 0 && w->g0 == NULL && w->gn == 0);
  cr_assert(!w->dz1 && !w->ds1 && !w->dtv && !w->demb && !w->dsemb && !w->dm1 && !w->dma && !w->dm2 && !w->don);
  for (int i = 0; i <= in.m.nenc; i++) cr_assert(w->dhs[i] == NULL);
  for (int i = 0; i < in.m.nenc; i++) cr_assert(!w->enc[i].dout && !w->enc[i].dres && !w->enc[i].dattn);
  for (int i = 0; i < in.m.ndec; i++)
    cr_assert(!w->dec[i].dout && !w->dec[i].dres && !w->dec[i].dattn && !w->dec[i].dcat);
  sp_vunet_forward(&in.m, &in.w, in.out, in.x, in.cond, in.t, in.text, 2);
  cr_assert(in.m.ps.grad == NULL);
  for (size_t i = 0; i < in.nx; i++) cr_assert(isfinite(in.out[i]));
  /* the same weights in a train workspace give the same output, bit for bit */
  rig_make(&tr, &c, 2, 1, 5);
  sp_vunet_forward(&tr.m, &tr.w, tr.out, tr.x, tr.cond, tr.t, tr.text, 2);
  cr_expect(memcmp(in.out, tr.out, in.nx * 4) == 0, "inference and train workspaces differ");
  cr_expect(tr.w.gn > 0 && tr.w.base.train == 1);
  cr_expect(in.w.base.ar.cap * 2 < tr.w.base.ar.cap, "inference workspace %zu bytes, train %zu", in.w.base.ar.cap,
            tr.w.base.ar.cap);
  /* B = 1 on a workspace for 2 gives the first sample */
  float *o1 = calloc(in.nx / 2, 4);
  sp_vunet_forward(&in.m, &in.w, o1, in.x, in.cond, in.t, in.text, 1);
  double e = relerr(o1, tr.out, in.nx / 2);
  cr_expect(e <= 1e-5, "B=1 differs from the first of B=2 by %.3g", e);
  /* the text matters, and the null condition differs from a task */
  int32_t keep[SP_TEXT_WORDS];
  memcpy(keep, in.text, sizeof keep);
  for (int j = 0; j < SP_TEXT_WORDS; j++) in.text[j] = -1;
  sp_vunet_forward(&in.m, &in.w, o1, in.x, in.cond, in.t, in.text, 1);
  cr_expect(relerr(o1, tr.out, in.nx / 2) > 1e-6, "the text has no effect");
  free(o1);
  /* FLOPs are linear in B */
  double f1 = sp_vunet_flops(&in.m, 1), f2 = sp_vunet_flops(&in.m, 2);
  cr_expect(f1 > 0 && fabs(f2 - 2 * f1) <= 1e-9 * f2);
  rig_free(&in);
  rig_free(&tr);
}

/* ---------------------------------------------------------------------------------------------
 * conditioning variants: inference workspace, the null condition, the conditions matter, no
 * allocation */

/* plans of 2 samples (the rule planner on two made-up states) and 9-d vectors */
static void variant_conds(sp_plan_enc plans[2], float dvec[2 * SP_VCOND_DVEC]) {
  char err[SP_ERRLEN];
  const double hand[2][3] = {{0, 0.6, 0.2}, {0.1, 0.5, 0.15}}, obj[2][3] = {{0.1, 0.8, 0.05}, {-0.2, 0.7, 0.1}},
               goal[2][3] = {{0.1, 0.85, 0.3}, {-0.1, 0.9, 0.25}};
  const int task[2] = {SP_TASK_SHELF_PLACE, SP_TASK_HAMMER};
  for (int b = 0; b < 2; b++) {
    sp_plan p;
    cr_assert_eq(sp_plan_rule(task[b], hand[b], obj[b], goal[b], NULL, &p, err), 0, "%s", err);
    sp_plan_encode(&p, &plans[b]);
    for (int k = 0; k < 3; k++) {
      dvec[b * 9 + k] = (float)hand[b][k];
      dvec[b * 9 + 3 + k] = (float)obj[b][k];
      dvec[b * 9 + 6 + k] = (float)goal[b][k];
    }
  }
}

/* text_enc clip with a cache of 3 texts of width 16 (4, 6 and 3 tokens) */
static void clip_cfg(sp_vunet_cfg *c) {
  static const char *texts[3] = {"door open", "button press topdown", "hammer"};
  static const int len[3] = {4, 6, 3};
  c->text_enc = SP_VUNET_TEXT_CLIP;
  c->clip_n = 3;
  c->clip_dim = 16;
  for (int i = 0; i < 3; i++) {
    snprintf(c->clip_text[i], SP_VUNET_CLIP_TEXT, "%s", texts[i]);
    c->clip_len[i] = len[i];
  }
}

/* random cached features (the same for every seed) */
static void clip_fill_random(sp_vunet *m) {
  float tok[6 * 16];
  for (int r = 0; r < m->cfg.clip_n; r++) {
    fill(tok, (size_t)m->cfg.clip_len[r] * m->cfg.clip_dim, 40 + r, 2.f);
    sp_vunet_clip_fill(m, r, tok);
  }
}

static void variant_checks(int layout, int cond, int clip) {
  nn_init(1);
  sp_vunet_cfg c;
  sp_vunet_cfg_preset(&c, SP_PRESET_TINY);
  c.layout = layout;
  c.cond = cond;
  if (clip) clip_cfg(&c);
  rig in, tr;
  rig_make(&in, &c, 2, 0, 5);
  rig_make(&tr, &c, 2, 1, 5);
  if (clip) {
    clip_fill_random(&in.m);
    clip_fill_random(&tr.m);
  }
  if (in.m.xal != NN_NONE) {
    cr_expect_eq(in.m.ps.data[in.m.xal], 0.f, "the cross-attention gate does not start closed");
    in.m.ps.data[in.m.xal] = tr.m.ps.data[tr.m.xal] = 0.7f;  // open it, or the plan has no effect yet
  }
  sp_plan_enc plans[2];
  float dvec[2 * SP_VCOND_DVEC];
  variant_conds(plans, dvec);
  uint8_t null[2] = {0, 0};
  int32_t rows[2] = {1, 0}, rows2[2] = {2, 0};
  sp_vcond vc = {.text = in.text, .clip = clip ? rows : NULL, .plan = plans, .dvec = dvec, .null = null};
  size_t half = in.nx / 2;
  float *o = calloc(in.nx, 4), *o2 = calloc(in.nx, 4);
  /* inference and train workspaces agree bit for bit */
  sp_vunet_forward_c(&in.m, &in.w, in.out, in.x, in.cond, in.t, &vc, 2);
  sp_vunet_forward_c(&tr.m, &tr.w, tr.out, tr.x, tr.cond, tr.t, &vc, 2);
  cr_expect(memcmp(in.out, tr.out, in.nx * 4) == 0, "%s: inference and train workspaces differ", sp_vcond_name(cond));
  for (size_t i = 0; i < in.nx; i++) cr_assert(isfinite(in.out[i]));
  /* the variant's own condition matters (sample 0 given sample 1's) */
  sp_plan_enc p2[2] = {plans[1], plans[1]};
  float d2[2 * SP_VCOND_DVEC];
  memcpy(d2, dvec + 9, 9 * 4);
  memcpy(d2 + 9, dvec + 9, 9 * 4);
  sp_vcond vc2 = vc;
  vc2.plan = p2;
  vc2.dvec = d2;
  if (cond != SP_VCOND_TEXT) {
    sp_vunet_forward_c(&in.m, &in.w, o, in.x, in.cond, in.t, &vc2, 2);
    cr_expect(relerr(o, in.out, half) > 1e-6, "%s: the plan / distance vector has no effect", sp_vcond_name(cond));
    cr_expect(memcmp(o + half, in.out + half, half * 4) == 0, "%s: samples interact", sp_vcond_name(cond));
  }
  if (clip) {  /* the cached text matters (sample 0 given another row) */
    sp_vcond vc3 = vc;
    vc3.clip = rows2;
    sp_vunet_forward_c(&in.m, &in.w, o, in.x, in.cond, in.t, &vc3, 2);
    cr_expect(relerr(o, in.out, half) > 1e-6, "%s clip: the cached text has no effect", sp_vcond_name(cond));
    cr_expect(memcmp(o + half, in.out + half, half * 4) == 0, "%s clip: samples interact", sp_vcond_name(cond));
    vc2.clip = rows2;
  }
  /* a null sample ignores its text, plan and vector, and equals sp_vunet_forward with no words */
  null[0] = 1;
  sp_vunet_forward_c(&in.m, &in.w, o, in.x, in.cond, in.t, &vc, 2);
  sp_vunet_forward_c(&in.m, &in.w, o2, in.x, in.cond, in.t, &vc2, 2);
  cr_expect(memcmp(o, o2, half * 4) == 0, "%s: a null sample depends on its conditions", sp_vcond_name(cond));
  cr_expect(relerr(o, in.out, half) > 1e-6, "%s: the null condition changes nothing", sp_vcond_name(cond));
  int32_t none[2 * SP_TEXT_WORDS];
  for (int i = 0; i < 2 * SP_TEXT_WORDS; i++) none[i] = -1;
  sp_vunet_forward(&in.m, &in.w, o2, in.x, in.cond, in.t, none, 2);
  cr_expect(memcmp(o, o2, half * 4) == 0, "%s: null differs from no words", sp_vcond_name(cond));
  free(o);
  free(o2);
  rig_free(&in);
  rig_free(&tr);
}

Test(models_vunet, variant_distance) { variant_checks(SP_VUNET_STACKED, SP_VCOND_DISTANCE, 0); }
Test(models_vunet, variant_plan) { variant_checks(SP_VUNET_STACKED, SP_VCOND_PLAN, 0); }
Test(models_vunet, variant_plan_local_stacked) { variant_checks(SP_VUNET_STACKED, SP_VCOND_PLAN_LOCAL, 0); }
Test(models_vunet, variant_plan_local_factorised) { variant_checks(SP_VUNET_FACTORISED, SP_VCOND_PLAN_LOCAL, 0); }
Test(models_vunet, variant_clip_text) { variant_checks(SP_VUNET_STACKED, SP_VCOND_TEXT, 1); }
Test(models_vunet, variant_clip_plan) { variant_checks(SP_VUNET_STACKED, SP_VCOND_PLAN, 1); }
Test(models_vunet, variant_clip_plan_local_factorised) { variant_checks(SP_VUNET_FACTORISED, SP_VCOND_PLAN_LOCAL, 1); }

Test(models_vunet, inference_workspace_stacked) { infer_checks(SP_VUNET_STACKED); }
Test(models_vunet, inference_workspace_factorised) { infer_checks(SP_VUNET_FACTORISED); }

/* ---------------------------------------------------------------------------------------------
 * no allocation in forward and backward */

static void no_alloc(int layout, int cond, int clip) {
#if VU_COUNT_ALLOCS
  nn_init(2);
  sp_vunet_cfg c;
  sp_vunet_cfg_preset(&c, SP_PRESET_TINY);
  c.layout = layout;
  c.winograd = 1;
  c.cond = cond;
  if (clip) clip_cfg(&c);
  rig r;
  rig_make(&r, &c, 2, 1, 3);
  if (clip) clip_fill_random(&r.m);
  sp_plan_enc plans[2];
  float dvec[2 * SP_VCOND_DVEC];
  variant_conds(plans, dvec);
  uint8_t null[2] = {0, 1};
  int32_t rows[2] = {1, 2};
  sp_vcond vc = {.text = r.text, .clip = clip ? rows : NULL, .plan = plans, .dvec = dvec, .null = null};
  /* the counter itself works, in this thread and in an OpenMP team */
  g_counted = pthread_self();
#pragma omp parallel num_threads(2)
  {  // the team starts (libgomp sets it up once)
    void *volatile q = malloc(16);
    free(q);
  }
  atomic_store(&g_allocs, 0);
  atomic_store(&g_count_on, 1);
  void *volatile probe = malloc(16);
  free(probe);
#pragma omp parallel num_threads(2)
  {
    void *volatile q = malloc(16);
    free(q);
  }
  atomic_store(&g_count_on, 0);
  cr_assert_eq(atomic_load(&g_allocs), 3, "the malloc counter counts %ld of 3", atomic_load(&g_allocs));
  /* warm up (OpenMP and OpenBLAS set up their threads), then count */
  for (int k = 0; k < 2; k++) {
    sp_vunet_forward_c(&r.m, &r.w, r.out, r.x, r.cond, r.t, &vc, 2);
    nn_mse_backward(r.dy, r.out, r.target, NULL, 1, r.nx, 1.f);
    sp_vunet_backward(&r.m, &r.w, r.dy, 2);
  }
  atomic_store(&g_allocs, 0);
  atomic_store(&g_gomp_allocs, 0);
  atomic_store(&g_count_on, 1);
  sp_vunet_forward_c(&r.m, &r.w, r.out, r.x, r.cond, r.t, &vc, 2);
  long nf = atomic_load(&g_allocs);
  sp_vunet_backward(&r.m, &r.w, r.dy, 2);
  sp_vunet_forward_c(&r.m, &r.w, r.out, r.x, r.cond, r.t, &vc, 1);
  atomic_store(&g_count_on, 0);
  long nb = atomic_load(&g_allocs) - nf;
  cr_expect_eq(nf, 0, "forward allocated %ld times", nf);
  cr_expect_eq(nb, 0, "backward (or a smaller batch) allocated %ld times", nb);
  cr_log_info("vunet layout %d cond %s: forward+backward+forward: libgomp allocated %ld teams", layout,
              sp_vcond_name(cond), atomic_load(&g_gomp_allocs));
  rig_free(&r);
#else
  (void)layout;
  (void)cond;
  (void)clip;
  cr_skip_test("malloc is AddressSanitizer's in this build");
#endif
}

/* one test for both layouts: it runs 2 threads, and Criterion runs tests side by side */
Test(models_vunet, forward_backward_do_not_allocate) {
  no_alloc(SP_VUNET_STACKED, SP_VCOND_TEXT, 0);
  no_alloc(SP_VUNET_FACTORISED, SP_VCOND_TEXT, 0);
  no_alloc(SP_VUNET_STACKED, SP_VCOND_DISTANCE, 0);
  no_alloc(SP_VUNET_STACKED, SP_VCOND_PLAN, 0);
  no_alloc(SP_VUNET_FACTORISED, SP_VCOND_PLAN_LOCAL, 0);
  no_alloc(SP_VUNET_STACKED, SP_VCOND_TEXT, 1);
  no_alloc(SP_VUNET_STACKED, SP_VCOND_PLAN, 1);
}

/* ---------------------------------------------------------------------------------------------
 * config */

static void expect_bad(const sp_vunet_cfg *c, const char *field) {
  char err[SP_ERRLEN] = "";
  cr_expect_eq(sp_vunet_cfg_check(c, err), -1, "config with bad %s accepted", field);
  cr_expect(strstr(err, field) != NULL, "error '%s' does not name %s", err, field);
  sp_vunet m;
  err[0] = 0;
  cr_expect_eq(sp_vunet_init(&m, c, 1, err), -1, "sp_vunet_init accepted bad %s", field);
  cr_expect(strstr(err, field) != NULL, "init error '%s' does not name %s", err, field);
}

Test(models_vunet, config_presets_bounds_and_json) {
  char err[SP_ERRLEN];
  for (int p = 0; p < SP_PRESET_N; p++) {
    sp_vunet_cfg c, d;
    sp_vunet_cfg_preset(&c, (sp_preset)p);
    cr_expect_eq(sp_vunet_cfg_check(&c, err), 0, "preset %s: %s", sp_preset_name(p), err);
    char *js = sp_cf_to_json(sp_vunet_fields, &c);
    sp_vunet_cfg_preset(&d, SP_PRESET_TINY);
    d.nmult = 1;
    cr_assert_eq(sp_cf_from_json(sp_vunet_fields, &d, js, err), 0, "%s", err);
    cr_expect_eq(sp_cf_diff(sp_vunet_fields, &c, &d, "vunet", err), 0, "%s", err);
    free(js);
  }
  sp_vunet_cfg c0, c;
  sp_vunet_cfg_preset(&c0, SP_PRESET_TINY);
  c = c0, c.res = 4, expect_bad(&c, "res");
  c = c0, c.res = 18, c.mult[2] = 2, c.nmult = 3, expect_bad(&c, "res");
  c = c0, c.layout = 7, expect_bad(&c, "layout");
  c = c0, c.mult[1] = 0, expect_bad(&c, "mult");
  c = c0, c.nmult = 0, expect_bad(&c, "mult");
  c = c0, c.groups = 3, expect_bad(&c, "groups");
  c = c0, c.head_ch = 12, expect_bad(&c, "head_ch");
  c = c0, c.ch = 15, c.groups = 1, c.head_ch = 1, expect_bad(&c, "ch");
  c = c0, c.winograd = 3, expect_bad(&c, "winograd");
  c = c0, c.nres = 0, expect_bad(&c, "nres");
  c = c0, c.frames = 0, expect_bad(&c, "frames");
  c = c0, c.tdim = 0, expect_bad(&c, "tdim");
  c = c0, c.text_dim = 0, expect_bad(&c, "text_dim");
  c = c0, c.cond = 4, expect_bad(&c, "cond");
  c = c0, c.plan_dim = 0, expect_bad(&c, "plan_dim");
  c = c0, c.scale_shift = 3, expect_bad(&c, "scale_shift");
  /* a config JSON from before the variants (no cond, no plan_dim) reads as the text variant */
  c = c0;
  c.cond = SP_VCOND_PLAN;
  sp_vunet_cfg_preset(&c, SP_PRESET_TINY);
  cr_expect_eq(sp_cf_from_json(sp_vunet_fields, &c, "{\"ch\": 16}", err), 0, "%s", err);
  cr_expect_eq(c.cond, SP_VCOND_TEXT);
  cr_expect_eq(sp_cf_set(sp_vunet_fields, &c, "cond", "plan-local", err), 0, "%s", err);
  cr_expect_eq(c.cond, SP_VCOND_PLAN_LOCAL);
  cr_expect_str_eq(sp_vcond_name(c.cond), "plan-local");
  /* unknown JSON keys are refused by name */
  c = c0;
  cr_expect_eq(sp_cf_from_json(sp_vunet_fields, &c, "{\"chanels\": 3}", err), -1);
  cr_expect(strstr(err, "chanels") != NULL, "%s", err);
}

Test(models_vunet, preset_parameter_counts) {
  /* the twin's counts (tools/twin_vunet.py --count PRESET LAYOUT) */
  static const size_t want[2][2] = {{173157, 208401}, {3961013, 4875329}};
  char err[SP_ERRLEN];
  for (int p = 0; p < 2; p++)
    for (int l = 0; l < 2; l++) {
      sp_vunet_cfg c;
      sp_vunet_cfg_preset(&c, (sp_preset)p);
      c.layout = l;
      sp_vunet m;
      cr_assert_eq(sp_vunet_init(&m, &c, 1, err), 0, "%s", err);
      cr_expect_eq(sp_vunet_nparams(&m), want[p][l], "%s layout %d: %zu parameters, twin %zu", sp_preset_name(p),
                   l, sp_vunet_nparams(&m), want[p][l]);
      sp_vunet_free(&m);
    }
  /* the variants, stacked (scale_shift auto: on; and off), the twin's counts */
  static const size_t wv[2][2][3] = {{{174533, 174637, 177374}, {181397, 181501, 184238}},
                                     {{3978805, 3984245, 4034038}, {4156309, 4161749, 4211542}}};
  for (int p = 0; p < 2; p++)
    for (int ss = 0; ss < 2; ss++)
      for (int k = 0; k < 3; k++) {
        sp_vunet_cfg c;
        sp_vunet_cfg_preset(&c, (sp_preset)p);
        c.cond = SP_VCOND_DISTANCE + k;
        c.scale_shift = ss ? SP_VUNET_SS_AUTO : SP_VUNET_SS_OFF;
        sp_vunet m;
        cr_assert_eq(sp_vunet_init(&m, &c, 1, err), 0, "%s", err);
        cr_expect_eq(sp_vunet_nparams(&m), wv[p][ss][k], "%s %s scale-shift %d: %zu parameters, twin %zu",
                     sp_preset_name(p), sp_vcond_name(c.cond), ss, sp_vunet_nparams(&m), wv[p][ss][k]);
        sp_vunet_free(&m);
      }
}

/* ---------------------------------------------------------------------------------------------
 * text ids */

Test(models_vunet, text_ids) {
  int32_t ids[SP_TEXT_WORDS];
  cr_expect_eq(sp_text_ids("door-open", ids), 2);
  cr_expect(ids[0] == 1 && ids[1] == 2 && ids[2] == -1 && ids[7] == -1);
  cr_expect_eq(sp_text_ids("button-press-topdown", ids), 3);
  cr_expect(ids[0] == 7 && ids[1] == 8 && ids[2] == 9 && ids[3] == -1);
  cr_expect_eq(sp_text_ids(" Door  OPEN_", ids), 2);
  cr_expect(ids[0] == 1 && ids[1] == 2 && ids[2] == -1);
  cr_expect_eq(sp_text_ids("door_close", ids), 2);
  cr_expect(ids[0] == 1 && ids[1] == 3);
  cr_expect_eq(sp_text_ids("open the door", ids), 3);
  cr_expect(ids[0] == 2 && ids[1] == 0 && ids[2] == 1, "unknown words are 0");
  cr_expect_eq(sp_text_ids("doorknob", ids), 1);
  cr_expect_eq(ids[0], 0);
  cr_expect_eq(sp_text_ids("", ids), 0);
  for (int j = 0; j < SP_TEXT_WORDS; j++) cr_expect_eq(ids[j], -1);
  cr_expect_eq(sp_text_ids(NULL, ids), 0);
  cr_expect_eq(sp_text_ids("--", ids), 0);
  cr_expect_eq(sp_text_ids("a-b-c-d-e-f-g-h", ids), 8);
  cr_expect_eq(sp_text_ids("a-b-c-d-e-f-g-h-door", ids), -1, "more than 8 words is an error");
  cr_expect(ids[7] == 0);
  /* every Meta-World task maps to known words only */
  static const char *tasks[11] = {"door-open",   "door-close",   "basketball",   "shelf-place",
                                  "button-press", "button-press-topdown", "faucet-close", "faucet-open",
                                  "handle-press", "hammer",       "assembly"};
  for (int k = 0; k < 11; k++) {
    int n = sp_text_ids(tasks[k], ids);
    cr_expect(n >= 1 && n <= 3, "%s", tasks[k]);
    for (int j = 0; j < n; j++) cr_expect(ids[j] > 0, "%s has an unknown word", tasks[k]);
  }
  cr_expect_str_eq(sp_text_word(13), "assembly");
  cr_expect(sp_text_word(14) == NULL && sp_text_word(-1) == NULL);
}

/* the CLIP cache's texts: normalised as sp_text_ids splits, found whatever the separators */
Test(models_vunet, clip_texts_and_config) {
  char t[16], err[SP_ERRLEN];
  cr_expect_eq(sp_text_normalize("button-press-topdown", t, sizeof t), -1, "too long for 16 bytes");
  cr_expect_str_eq(t, "button press to");
  char u[SP_VUNET_CLIP_TEXT];
  cr_expect_eq(sp_text_normalize(" Door--OPEN_", u, sizeof u), 9);
  cr_expect_str_eq(u, "door open");
  cr_expect_eq(sp_text_normalize(NULL, u, sizeof u), 0);
  cr_expect_str_eq(u, "");
  sp_vunet_cfg c, d;
  sp_vunet_cfg_preset(&c, SP_PRESET_TINY);
  cr_expect_eq(sp_vunet_clip_find(&c, "door-open"), -1, "words: no cache");
  clip_cfg(&c);
  cr_expect_eq(sp_vunet_clip_find(&c, "door-open"), 0);
  cr_expect_eq(sp_vunet_clip_find(&c, "Button_Press topdown"), 1);
  cr_expect_eq(sp_vunet_clip_find(&c, "hammer"), 2);
  cr_expect_eq(sp_vunet_clip_find(&c, "door-close"), -1);
  /* JSON round trip, the description included; a words config has no "clip" */
  char *js = sp_vunet_cfg_to_json(&c);
  cr_expect(strstr(js, "\"text_enc\":\"clip\"") && strstr(js, "\"texts\":[\"door open\""), "%s", js);
  sp_vunet_cfg_preset(&d, SP_PRESET_TINY);
  cr_assert_eq(sp_vunet_cfg_from_json(&d, js, err), 0, "%s", err);
  cr_expect_eq(sp_vunet_cfg_diff(&d, &c, "vunet", err), 0, "%s", err);
  free(js);
  d.clip_len[2] = 5;
  cr_expect_eq(sp_vunet_cfg_diff(&d, &c, "vunet", err), -1);
  cr_expect(strstr(err, "hammer"), "%s", err);
  sp_vunet_cfg_preset(&d, SP_PRESET_TINY);
  js = sp_vunet_cfg_to_json(&d);
  cr_expect(!strstr(js, "\"clip\""), "%s", js);
  free(js);
  /* checks: a clip model needs its cache; bad descriptions are named */
  sp_vunet m;
  d.text_enc = SP_VUNET_TEXT_CLIP;
  cr_expect_eq(sp_vunet_cfg_check(&d, err), 0, "%s", err);
  cr_expect_eq(sp_vunet_init(&m, &d, 1, err), -1);
  cr_expect(strstr(err, "--clip"), "%s", err);
  d = c;
  d.clip_len[1] = 1;
  cr_expect_eq(sp_vunet_cfg_check(&d, err), -1);
  cr_expect(strstr(err, "button press topdown"), "%s", err);
  d = c;
  snprintf(d.clip_text[2], SP_VUNET_CLIP_TEXT, "door open");
  cr_expect_eq(sp_vunet_cfg_check(&d, err), -1);
  cr_expect(strstr(err, "twice"), "%s", err);
  cr_expect_eq(sp_vunet_cfg_from_json(&d, "{\"clip\": {\"dim\": 16, \"texts\": [\"a\"]}}", err), -1);
  cr_expect(strstr(err, "clip"), "%s", err);
  /* the model: text.clip replaces text.embed; the cache is a zeroed constant, not counted */
  cr_assert_eq(sp_vunet_init(&m, &c, 1, err), 0, "%s", err);
  cr_expect_eq(m.tew, NN_NONE);
  cr_expect_eq(m.clip_tok, 6);
  cr_expect_eq(m.ntxt, 6);
  int ic = nn_params_find(&m.ps, "text.clip_cache");
  cr_assert(ic >= 0 && nn_params_find(&m.ps, "text.clip.weight") >= 0 && nn_params_find(&m.ps, "text.embed.weight") < 0);
  cr_expect(m.ps.p[ic].shape[0] == 3 && m.ps.p[ic].shape[1] == 6 && m.ps.p[ic].shape[2] == 16);
  for (size_t i = 0; i < m.ps.p[ic].numel; i++) cr_assert_eq(m.ps.data[m.cache + i], 0.f);
  sp_vunet_cfg w;
  sp_vunet_cfg_preset(&w, SP_PRESET_TINY);
  sp_vunet mw;
  cr_assert_eq(sp_vunet_init(&mw, &w, 1, err), 0, "%s", err);
  cr_expect_eq(sp_vunet_nparams(&m), sp_vunet_nparams(&mw) - SP_TEXT_VOCAB * 8 + 16 * 8 + 8);
  float tok[3 * 16];
  fill(tok, 3 * 16, 9, 1.f);
  sp_vunet_clip_fill(&m, 2, tok);
  cr_expect(!memcmp(m.ps.data + m.cache + 2 * 6 * 16, tok, sizeof tok));
  cr_expect_eq(m.ps.data[m.cache + 2 * 6 * 16 + 3 * 16], 0.f, "rows past the text are zero");
  sp_vunet_free(&m);
  sp_vunet_free(&mw);
}

/* ---------------------------------------------------------------------------------------------
 * checkpoints: save, load into a fresh model, identical forward. With SP_VUNET_TWIN_DIR set the
 * checkpoint and its inputs/outputs (FILE.io.safetensors) stay there for
 * tools/twin_vunet.py --check-ckpt FILE. */

static void write_io(const char *path, const rig *r, int B, const sp_vunet_cfg *c) {
  char err[SP_ERRLEN];
  nn_params io;
  nn_params_init(&io);
  int F = c->frames, R = c->res;
  size_t ox = nn_params_add4(&io, "x", B, 3, F, R * R);
  size_t oc = nn_params_add4(&io, "cond", B, 3, R, R);
  size_t ot = nn_params_add4(&io, "t", B, 0, 0, 0);
  size_t oi = nn_params_add4(&io, "text", B, SP_TEXT_WORDS, 0, 0);
  size_t oo = nn_params_add4(&io, "out", B, 3, F, R * R);
  cr_assert_eq(nn_params_alloc(&io, err), 0, "%s", err);
  memcpy(io.data + ox, r->x, (size_t)B * 3 * F * R * R * 4);
  memcpy(io.data + oc, r->cond, (size_t)B * 3 * R * R * 4);
  memcpy(io.data + ot, r->t, (size_t)B * 4);
  for (int i = 0; i < B * SP_TEXT_WORDS; i++) io.data[oi + i] = (float)r->text[i];
  memcpy(io.data + oo, r->out, (size_t)B * 3 * F * R * R * 4);
  cr_assert_eq(nn_checkpoint_save(path, &io, "{}", 0, 0, err), 0, "%s", err);
  nn_params_free(&io);
}

static void ckpt_round_trip(int layout) {
  char err[SP_ERRLEN], path[512];
  nn_init(1);
  sp_vunet_cfg c;
  sp_vunet_cfg_preset(&c, SP_PRESET_TINY);
  c.layout = layout;
  const char *dir = getenv("SP_VUNET_TWIN_DIR");
  snprintf(path, sizeof path, "%s/vunet_%s_%d.ckpt", dir ? dir : "/tmp", layout ? "factorised" : "stacked",
           dir ? 0 : (int)getpid());
  rig a, b;
  rig_make(&a, &c, 2, 0, 11);
  rig_make(&b, &c, 2, 0, 12);
  sp_vunet_forward(&a.m, &a.w, a.out, a.x, a.cond, a.t, a.text, 2);
  sp_vunet_forward(&b.m, &b.w, b.out, b.x, b.cond, b.t, b.text, 2);
  cr_assert(memcmp(a.out, b.out, a.nx * 4) != 0, "two seeds gave the same network");
  char *js = sp_cf_to_json(sp_vunet_fields, &c);
  sp_ckpt_meta meta = {.model = "vunet", .preset = "tiny", .config = js, .data = "", .step = 42};
  cr_assert_eq(sp_model_save(path, &a.m.ps, &meta, 0, NULL, err), 0, "%s", err);
  free(js);
  /* the config read back equals the model's */
  sp_ckpt_info info;
  cr_assert_eq(sp_ckpt_info_read(path, &info, err), 0, "%s", err);
  sp_vunet_cfg back;
  sp_vunet_cfg_preset(&back, SP_PRESET_PAPER);
  cr_assert_eq(sp_cf_from_json(sp_vunet_fields, &back, info.config, err), 0, "%s", err);
  cr_expect_eq(sp_cf_diff(sp_vunet_fields, &back, &c, "vunet", err), 0, "%s", err);
  sp_ckpt_info_free(&info);
  /* a model of another kind refuses it; the fresh model loads it and computes the same */
  cr_expect_eq(sp_model_load(path, &b.m.ps, "resnet", NULL, err), -1);
  long step = 0;
  cr_assert_eq(sp_model_load(path, &b.m.ps, "vunet", &step, err), 0, "%s", err);
  cr_expect_eq(step, 42);
  sp_vunet_forward(&b.m, &b.w, b.out, b.x, b.cond, b.t, b.text, 2);
  cr_expect(memcmp(a.out, b.out, a.nx * 4) == 0, "loaded model computes differently");
  if (dir) {
    char io[600];
    snprintf(io, sizeof io, "%s.io.safetensors", path);
    write_io(io, &a, 2, &c);
    cr_log_info("kept %s and %s", path, io);
  } else {
    unlink(path);
  }
  rig_free(&a);
  rig_free(&b);
}

Test(models_vunet, checkpoint_round_trip_stacked) { ckpt_round_trip(SP_VUNET_STACKED); }
Test(models_vunet, checkpoint_round_trip_factorised) { ckpt_round_trip(SP_VUNET_FACTORISED); }
