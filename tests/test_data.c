/* tests of src/data without rendering: fine-interval sampling on hand-made distance sequences
 * (each parameter's effect), crop windows and intrinsics, the HDF5 round trip of every field,
 * merging, foreign/corrupt files, and the training samplers. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "data/collect.h"
#include "data/dataset.h"
#include "data/fine.h"
#include "data/sampler.h"

/* ---- fine-interval sampling ---- */

#define C 0.01  // close
#define F 0.20  // far

static sp_fine_cfg base_cfg(void) {
  sp_fine_cfg c;
  sp_fine_cfg_default(&c);
  c.consecutive_frames = 2;
  c.recovery_needed_frames = 0;
  c.suppress_single_spike = 0;
  c.max_allowed_anomaly = 0;
  return c;
}

static void expect_flags(const uint8_t *got, const char *want) {
  int n = (int)strlen(want);
  char g[256];
  for (int i = 0; i < n; i++) g[i] = got[i] ? '1' : '0';
  g[n] = 0;
  cr_expect_str_eq(g, want);
}

Test(data_fine, distance_threshold) {
  const double d[15] = {F, F, F, F, F, 0.04, 0.04, 0.04, 0.04, 0.04, F, F, F, F, F};
  sp_fine_cfg c = base_cfg();
  uint8_t fl[15];
  c.distance_threshold = 0.05;
  cr_expect_eq(sp_fine_phases(&c, d, 15, fl), 1);
  expect_flags(fl, "000001111100000");
  c.distance_threshold = 0.03;
  cr_expect_eq(sp_fine_phases(&c, d, 15, fl), 0);
  expect_flags(fl, "000000000000000");
}

Test(data_fine, consecutive_frames) {
  const double d[17] = {F, F, F, C, C, F, F, F, C, C, C, C, F, F, F, F, F};
  sp_fine_cfg c = base_cfg();
  uint8_t fl[17];
  c.consecutive_frames = 3;  // the run of 2 is too short
  cr_expect_eq(sp_fine_phases(&c, d, 17, fl), 1);
  expect_flags(fl, "00000000111100000");
  c.consecutive_frames = 2;
  cr_expect_eq(sp_fine_phases(&c, d, 17, fl), 2);
  expect_flags(fl, "00011000111100000");
  c.consecutive_frames = 5;
  cr_expect_eq(sp_fine_phases(&c, d, 17, fl), 0);
}

Test(data_fine, recovery_needed_frames) {
  const double d[14] = {C, C, C, C, F, F, F, C, C, C, C, F, F, F};
  sp_fine_cfg c = base_cfg();
  uint8_t fl[14];
  c.recovery_needed_frames = 0;
  cr_expect_eq(sp_fine_phases(&c, d, 14, fl), 2);
  expect_flags(fl, "11110001111000");
  /* 3 coarse frames after the first phase: re-entry waits until 5 lie between */
  c.recovery_needed_frames = 5;
  cr_expect_eq(sp_fine_phases(&c, d, 14, fl), 2);
  expect_flags(fl, "11110000011000");
  c.recovery_needed_frames = 20;
  cr_expect_eq(sp_fine_phases(&c, d, 14, fl), 1);
  expect_flags(fl, "11110000000000");
}

Test(data_fine, suppress_single_spike) {
  const double d[16] = {C, C, C, C, C, F, C, C, C, C, C, F, F, F, F, F};
  sp_fine_cfg c = base_cfg();
  uint8_t fl[16];
  c.suppress_single_spike = 1;
  cr_expect_eq(sp_fine_phases(&c, d, 16, fl), 1);
  expect_flags(fl, "1111111111100000");
  c.suppress_single_spike = 0;
  cr_expect_eq(sp_fine_phases(&c, d, 16, fl), 2);
  expect_flags(fl, "1111101111100000");
  /* a spike of two frames is not single: suppression does not apply */
  const double d2[16] = {C, C, C, C, C, F, F, C, C, C, C, F, F, F, F, F};
  c.suppress_single_spike = 1;
  c.recovery_needed_frames = 100;
  cr_expect_eq(sp_fine_phases(&c, d2, 16, fl), 1);
  expect_flags(fl, "1111100000000000");
}

Test(data_fine, max_allowed_anomaly) {
  const double d[17] = {C, C, C, C, C, F, F, C, C, C, C, C, F, F, F, F, F};
  sp_fine_cfg c = base_cfg();
  uint8_t fl[17];
  c.recovery_needed_frames = 100;  // no re-entry: only the anomaly rule decides
  c.max_allowed_anomaly = 1;
  cr_expect_eq(sp_fine_phases(&c, d, 17, fl), 1);
  expect_flags(fl, "11111000000000000");
  c.max_allowed_anomaly = 2;
  cr_expect_eq(sp_fine_phases(&c, d, 17, fl), 1);
  expect_flags(fl, "11111111111100000");  // ends at the last close frame, not the tail
  /* NaN distances are never close */
  double dn[6] = {C, C, NAN, NAN, NAN, C};
  c.max_allowed_anomaly = 0;
  sp_fine_phases(&c, dn, 6, fl);
  expect_flags(fl, "110000");
}

Test(data_fine, interval_and_rate) {
  uint8_t fl[30] = {0};
  for (int i = 10; i < 20; i++) fl[i] = 1;
  sp_fine_cfg c;
  sp_fine_cfg_default(&c);
  int32_t idx[30];
  int m = sp_fine_sample(&c, fl, 30, idx);
  const int32_t want5[] = {0, 5, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 25, 29};
  cr_assert_eq(m, 15);
  for (int i = 0; i < m; i++) cr_expect_eq(idx[i], want5[i], "i %d", i);
  c.interval = 10;  // fine step 2: still 5x denser
  m = sp_fine_sample(&c, fl, 30, idx);
  const int32_t want10[] = {0, 10, 12, 14, 16, 18, 20, 29};
  cr_assert_eq(m, 8);
  for (int i = 0; i < m; i++) cr_expect_eq(idx[i], want10[i], "i %d", i);
  /* density: 5 fine samples per 10 frames against 1 coarse */
  char err[SP_ERRLEN];
  c.interval = 0;
  cr_expect_eq(sp_fine_cfg_check(&c, err), -1);
  cr_expect(strstr(err, "interval") != NULL);
}

/* ---- crops ---- */

Test(data_crop, avdc_default_and_overrides) {
  sp_crop c = sp_crop_lookup(SP_TASK_HAMMER, 2, 320, 240, NULL, 0);
  cr_expect(c.row == 56 && c.col == 96 && c.h == 128 && c.w == 128);
  c = sp_crop_lookup(SP_TASK_HAMMER, 2, 640, 480, NULL, 0);
  cr_expect(c.row == 112 && c.col == 192 && c.h == 256 && c.w == 256);
  sp_crop over[8];
  char err[SP_ERRLEN];
  int n = sp_crop_parse("*/corner=10,20,100,100;hammer/corner3=0,0,240,240", over, 8, err);
  cr_assert_eq(n, 2, "%s", err);
  c = sp_crop_lookup(SP_TASK_DOOR_OPEN, 0, 320, 240, over, n);
  cr_expect(c.row == 10 && c.col == 20 && c.h == 100);
  c = sp_crop_lookup(SP_TASK_HAMMER, 2, 320, 240, over, n);
  cr_expect(c.row == 0 && c.h == 240);
  c = sp_crop_lookup(SP_TASK_DOOR_OPEN, 2, 320, 240, over, n);
  cr_expect(c.row == 56);
  cr_expect_eq(sp_crop_parse("hammer=1,2,3,4", over, 8, err), -1);
  cr_expect_eq(sp_crop_parse("nope/corner=1,2,3,4", over, 8, err), -1);
  cr_expect(strstr(err, "nope") != NULL);
}

Test(data_crop, intrinsics_follow_pixels) {
  /* a point at render pixel (u, v) lands at the stored pixel the resize maps it to */
  double K[9] = {289.7, 0, 159.5, 0, 289.7, 119.5, 0, 0, 1}, Ks[9];
  sp_crop c = {0, 0, 56, 96, 128, 128};
  sp_crop_intrinsics(K, &c, 64, Ks);
  /* render pixel centre (96, 56) is crop pixel (0, 0); at half size stored pixel 0 spans crop
   * [-0.5, 1.5], so that centre lies at -0.25 */
  double X = (96 - K[2]) / K[0], Y = (56 - K[5]) / K[4];  // a ray through that pixel (Z = 1)
  cr_expect_float_eq(Ks[2] + Ks[0] * X, -0.25, 1e-9);
  cr_expect_float_eq(Ks[5] + Ks[4] * Y, -0.25, 1e-9);
  sp_crop_intrinsics(K, &c, 128, Ks);
  cr_expect_float_eq(Ks[2], 63.5, 1e-9);
  cr_expect_float_eq(Ks[0], 289.7, 1e-9);
}

Test(data_crop, resize_area_and_nearest) {
  /* 8 x 4 image, crop 4 x 4 at col 2, resize to 2: each output is the mean of a 2 x 2 block */
  uint8_t src[4 * 8 * 3];
  float fsrc[4 * 8];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 8; j++) {
      for (int k = 0; k < 3; k++) src[(i * 8 + j) * 3 + k] = (uint8_t)(10 * i + j + k);
      fsrc[i * 8 + j] = (float)(10 * i + j);
    }
  sp_crop c = {0, 0, 0, 2, 4, 4};
  uint8_t out[2 * 2 * 3];
  sp_crop_resize_rgb(src, 8, &c, 2, out);
  /* block rows 0-1, cols 2-3: mean of 2,3,12,13 = 7.5 -> 8 (rounded) */
  cr_expect_eq(out[0], 8);
  cr_expect_eq(out[3 * 3], (uint8_t)((24 + 25 + 34 + 35 + 2) / 4));  // rows 2-3, cols 4-5
  float fo[4];
  sp_crop_resize_f32(fsrc, 8, &c, 2, fo);
  cr_expect_float_eq(fo[0], 13.0f, 0);  // centre of block 0 falls on source (1, 3)
  cr_expect_float_eq(fo[3], 35.0f, 0);
  /* an identity crop copies */
  sp_crop id = {0, 0, 1, 2, 2, 2};
  sp_crop_resize_rgb(src, 8, &id, 2, out);
  cr_expect_eq(out[0], src[(1 * 8 + 2) * 3]);
  cr_expect_eq(out[3 * 3 + 2], src[(2 * 8 + 3) * 3 + 2]);
}

/* ---- HDF5 round trip, merge, foreign files ---- */

static void tmp_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "/tmp/sp_test_data_%d_%s", (int)getpid(), name);
}

/* a synthetic episode: every array filled with a pattern that encodes its position */
static void make_demo(sp_demo *d, int task, int cam, long seed, int attempt, int n, int sz) {
  char err[SP_ERRLEN];
  cr_assert_eq(sp_demo_alloc(d, n, sz, err), 0, "%s", err);
  d->task = task; d->cam = cam; d->seed = seed; d->attempt = attempt; d->recovery = attempt >= 0;
  d->n = n; d->ep_success = 1;
  for (int i = 0; i < 9; i++) { d->K[i] = 1.5 * i; d->R[i] = -0.25 * i; }
  for (int i = 0; i < 3; i++) { d->tvec[i] = 0.1 * i; d->cam_pos[i] = 2.0 + i; }
  d->crop[0] = 56; d->crop[1] = 96; d->crop[2] = 128; d->crop[3] = 128;
  d->render_w = 320; d->render_h = 240;
  snprintf(d->plan, sizeof d->plan, "1. move [1, 0, -1] [0.12]\n2. grasp [0, 0, 0] [0.00]\n");
  snprintf(d->perturb, sizeof d->perturb, "%s", attempt >= 0 ? "random actions for steps 3..9" : "");
  uint32_t h = (uint32_t)seed * 2654435761u + (uint32_t)attempt;
  const int F_ = n, S_ = n - 1;
#define FILL(name, ctype, kind, rows, d1, d2, d3, doc)                                     \
  {                                                                                         \
    size_t cnt = (size_t)(#rows[0] == 'F' ? F_ : S_) * (size_t)((d1) ? (d1) : 1) *          \
                 (size_t)((d2) ? (d2) : 1) * (size_t)((d3) ? (d3) : 1);                      \
    for (size_t q = 0; q < cnt; q++) {                                                      \
      h = h * 1664525u + 1013904223u;                                                       \
      d->name[q] = (ctype)(kind == SP_H5_U8 ? (h >> 24) : (double)(h >> 8) / 65536.0 - 100.0); \
    }                                                                                       \
  }
  SP_DEMO_ARRAYS(FILL)
#undef FILL
  /* frames identify themselves: every rgb byte of frame t is t, actions are known */
  size_t px = (size_t)sz * sz;
  for (int t = 0; t < n; t++) memset(d->rgb + px * 3 * t, t & 255, px * 3);
  for (int t = 0; t < n - 1; t++)
    for (int j = 0; j < 4; j++) d->actions[4 * t + j] = (j + 1) * sin(0.3 * t + seed) * (j == 3 ? 0 : 1) + (j == 3);
  for (int t = 0; t < n - 1; t++) d->expert[t] = attempt < 0 || t < 3 || t > 6;  // a perturbation
  for (int t = 0; t < n; t++) d->fine_flag[t] = t >= n / 3 && t < n / 2;
  sp_fine_cfg fc;
  sp_fine_cfg_default(&fc);
  d->nfine = sp_fine_sample(&fc, d->fine_flag, n, d->fine_idx);
}

static const sp_dataset_meta k_meta = {"{\"compat\":{\"size\":16},\"run\":{}}", "builtin", 16};

static void write_dataset(const char *out, sp_demo *demos, int nd) {
  char err[SP_ERRLEN], (*parts)[512] = malloc((size_t)nd * 512);
  const char *pp[16];
  for (int i = 0; i < nd; i++) {
    snprintf(parts[i], 512, "%s.part%d.h5", out, i);
    cr_assert_eq(sp_demo_save_part(parts[i], &demos[i], &k_meta, 4, err), 0, "%s", err);
    pp[i] = parts[i];
  }
  cr_assert_eq(sp_dataset_merge(out, NULL, pp, nd, &k_meta, err), 0, "%s", err);
  for (int i = 0; i < nd; i++) unlink(parts[i]);
  free(parts);
}

Test(data_io, roundtrip_every_field) {
  char path[512], err[SP_ERRLEN];
  tmp_path(path, sizeof path, "rt.h5");
  sp_demo d[2];
  make_demo(&d[0], SP_TASK_HAMMER, 2, 1000, -1, 23, 16);
  make_demo(&d[1], SP_TASK_DOOR_OPEN, 0, 1001, 4, 17, 16);
  write_dataset(path, d, 2);
  cr_assert_eq(sp_dataset_check(path, err), 1, "%s", err);
  sp_dataset *ds = sp_dataset_open(path, err);
  cr_assert(ds, "%s", err);
  cr_assert_eq(sp_dataset_count(ds), 2);
  cr_expect_eq(sp_dataset_size(ds), 16);
  const long *seeds;
  cr_assert_eq(sp_dataset_seeds(ds, &seeds), 2);
  cr_expect(seeds[0] == 1000 && seeds[1] == 1001);
  for (int k = 0; k < 2; k++) {
    int i = sp_dataset_find(ds, d[k].task, d[k].cam, k ? "recovery_4" : "seed_1000");
    cr_assert(i >= 0);
    sp_demo r;
    cr_assert_eq(sp_dataset_load(ds, i, &r, err), 0, "%s", err);
    cr_expect_eq(r.task, d[k].task);
    cr_expect_eq(r.cam, d[k].cam);
    cr_expect_eq(r.seed, d[k].seed);
    cr_expect_eq(r.recovery, d[k].recovery);
    cr_expect_eq(r.attempt, d[k].attempt);
    cr_expect_eq(r.n, d[k].n);
    cr_expect_eq(r.ep_success, 1);
    cr_expect_eq(r.render_w, 320);
    cr_expect_eq(r.render_h, 240);
    cr_expect_eq(memcmp(r.K, d[k].K, sizeof r.K), 0);
    cr_expect_eq(memcmp(r.R, d[k].R, sizeof r.R), 0);
    cr_expect_eq(memcmp(r.tvec, d[k].tvec, sizeof r.tvec), 0);
    cr_expect_eq(memcmp(r.cam_pos, d[k].cam_pos, sizeof r.cam_pos), 0);
    cr_expect_eq(memcmp(r.crop, d[k].crop, sizeof r.crop), 0);
    cr_expect_str_eq(r.plan, d[k].plan);
    cr_expect_str_eq(r.perturb, d[k].perturb);
    const int sz = 16, F_ = r.n, S_ = r.n - 1;
#define CMP(name, ctype, kind, rows, d1, d2, d3, doc)                                            \
    {                                                                                             \
      size_t cnt = (size_t)(#rows[0] == 'F' ? F_ : S_) * (size_t)((d1) ? (d1) : 1) *               \
                   (size_t)((d2) ? (d2) : 1) * (size_t)((d3) ? (d3) : 1);                           \
      cr_expect_eq(memcmp(r.name, d[k].name, cnt * sizeof(ctype)), 0, "array " #name " differs"); \
    }
    SP_DEMO_ARRAYS(CMP)
#undef CMP
    (void)sz;
    cr_expect_eq(r.nfine, d[k].nfine);
    cr_expect_eq(memcmp(r.fine_idx, d[k].fine_idx, sizeof(int32_t) * (size_t)r.nfine), 0);
    /* frame reads pick the right rows */
    int idx[2] = {r.n - 1, 2};
    uint8_t rgb[2 * 16 * 16 * 3];
    float dep[2 * 16 * 16];
    cr_assert_eq(sp_dataset_read_frames(ds, i, idx, 2, rgb, dep, NULL, err), 0, "%s", err);
    cr_expect_eq(rgb[0], (uint8_t)(r.n - 1));
    cr_expect_eq(rgb[16 * 16 * 3 + 5], 2);
    cr_expect_eq(memcmp(dep, r.depth + (size_t)(r.n - 1) * 256, 256 * sizeof(float)), 0);
    sp_demo_free(&r);
  }
  /* the action statistics are the true min/max over both episodes */
  double amin[4], amax[4];
  sp_dataset_action_stats(ds, amin, amax);
  for (int j = 0; j < 4; j++) {
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < 2; k++)
      for (int t = 0; t < d[k].n - 1; t++) {
        lo = fmin(lo, d[k].actions[4 * t + j]);
        hi = fmax(hi, d[k].actions[4 * t + j]);
      }
    cr_expect_float_eq(amin[j], lo, 0);
    cr_expect_float_eq(amax[j], hi, 0);
  }
  sp_dataset_close(ds);
  sp_demo_free(&d[0]);
  sp_demo_free(&d[1]);
  unlink(path);
}

Test(data_io, merge_keeps_old_and_replaces) {
  char path[400], part[512], err[SP_ERRLEN];
  tmp_path(path, sizeof path, "merge.h5");
  sp_demo d[2];
  make_demo(&d[0], SP_TASK_HAMMER, 0, 1000, -1, 10, 16);
  make_demo(&d[1], SP_TASK_HAMMER, 0, 1001, -1, 12, 16);
  write_dataset(path, d, 1);
  /* a new part with seed 1001 and a replacement of seed 1000 with another length */
  sp_demo r;
  make_demo(&r, SP_TASK_HAMMER, 0, 1000, -1, 14, 16);
  char p2[512];
  snprintf(part, sizeof part, "%s.a.h5", path);
  snprintf(p2, sizeof p2, "%s.b.h5", path);
  cr_assert_eq(sp_demo_save_part(part, &d[1], &k_meta, 1, err), 0, "%s", err);
  cr_assert_eq(sp_demo_save_part(p2, &r, &k_meta, 1, err), 0, "%s", err);
  const char *pp[2] = {part, p2};
  cr_assert_eq(sp_dataset_merge(path, path, pp, 2, &k_meta, err), 0, "%s", err);
  sp_dataset *ds = sp_dataset_open(path, err);
  cr_assert(ds, "%s", err);
  cr_expect_eq(sp_dataset_count(ds), 2);
  int i = sp_dataset_find(ds, SP_TASK_HAMMER, 0, "seed_1000");
  cr_assert(i >= 0);
  cr_expect_eq(sp_dataset_episode(ds, i)->n, 14);
  sp_dataset_close(ds);
  /* a part file is not a dataset */
  cr_expect_eq(sp_dataset_check(part, err), 0);
  cr_expect(strstr(err, "part file") != NULL, "%s", err);
  unlink(part); unlink(p2); unlink(path);
  sp_demo_free(&d[0]); sp_demo_free(&d[1]); sp_demo_free(&r);
}

Test(data_io, foreign_corrupt_and_versioned_files) {
  char path[512], err[SP_ERRLEN];
  /* not HDF5 at all */
  tmp_path(path, sizeof path, "foreign.h5");
  FILE *f = fopen(path, "wb");
  fputs("PK\x03\x04 this is a zip file, not a dataset", f);
  fclose(f);
  cr_expect_null(sp_dataset_open(path, err));
  cr_expect(strstr(err, "not an HDF5 file") != NULL, "%s", err);
  /* HDF5 without our format attribute */
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t h = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5Fclose(h);
  cr_expect_null(sp_dataset_open(path, err));
  cr_expect(strstr(err, "not an sp-dataset") != NULL, "%s", err);
  /* a valid dataset cut short (as a kill during a non-atomic write would leave it) */
  sp_demo d;
  make_demo(&d, SP_TASK_HAMMER, 0, 1000, -1, 20, 16);
  write_dataset(path, &d, 1);
  sp_demo_free(&d);
  FILE *g = fopen(path, "rb");
  fseek(g, 0, SEEK_END);
  long len = ftell(g);
  fclose(g);
  cr_assert_eq(truncate(path, len / 2), 0);
  sp_dataset *ds = sp_dataset_open(path, err);
  cr_expect_null(ds);
  cr_expect(strstr(err, "corrupt") != NULL || strstr(err, "not an HDF5") != NULL, "%s", err);
  sp_dataset_close(ds);
  /* a newer format version */
  make_demo(&d, SP_TASK_HAMMER, 0, 1000, -1, 5, 16);
  write_dataset(path, &d, 1);
  sp_demo_free(&d);
  h = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  long long v = SP_DATA_VERSION + 1;
  hid_t a = H5Aopen(h, "format_version", H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_LLONG, &v);
  H5Aclose(a);
  H5Fclose(h);
  cr_expect_null(sp_dataset_open(path, err));
  cr_expect(strstr(err, "version") != NULL, "%s", err);
  /* missing file */
  cr_expect_null(sp_dataset_open("/nonexistent/x.h5", err));
  cr_expect(strstr(err, "/nonexistent/x.h5") != NULL);
  unlink(path);
}

/* ---- samplers ---- */

static void sampler_file(char *path, size_t cap) {
  tmp_path(path, cap, "sampler.h5");
  sp_demo d[4];
  make_demo(&d[0], SP_TASK_HAMMER, 0, 1000, -1, 20, 16);
  make_demo(&d[1], SP_TASK_HAMMER, 1, 1001, -1, 35, 16);
  make_demo(&d[2], SP_TASK_ASSEMBLY, 2, 1002, -1, 50, 16);
  make_demo(&d[3], SP_TASK_ASSEMBLY, 2, 1002, 0, 9, 16);
  write_dataset(path, d, 4);
  for (int i = 0; i < 4; i++) sp_demo_free(&d[i]);
}

Test(data_sampler, clip_indices_match_numpy_linspace) {
  int idx[8];
  sp_clip_indices(NULL, 50, 3, 8, idx);  // np.linspace(3, 49, 8).astype(int)
  const int want[8] = {3, 9, 16, 22, 29, 35, 42, 49};
  for (int i = 0; i < 8; i++) cr_expect_eq(idx[i], want[i], "i %d", i);
  const int32_t cand[10] = {0, 5, 10, 11, 12, 13, 14, 20, 25, 29};
  sp_clip_indices(cand, 10, 0, 4, idx);  // positions 0, 3, 6, 9
  cr_expect(idx[0] == 0 && idx[1] == 11 && idx[2] == 14 && idx[3] == 29);
}

Test(data_sampler, clips_shapes_ranges_and_frames) {
  char path[512], err[SP_ERRLEN];
  sampler_file(path, sizeof path);
  sp_sampler_cfg c;
  sp_sampler_cfg_default(&c);
  sp_sampler *s = sp_sampler_open(path, &c, 7, err);
  cr_assert(s, "%s", err);
  const int sz = sp_sampler_size(s), k = 8;
  cr_assert_eq(sz, 16);
  float *clip = malloc(sizeof(float) * 3 * k * sz * sz);
  for (int rep = 0; rep < 20; rep++) {
    int ep, idx[8];
    cr_assert_eq(sp_sampler_clip(s, clip, &ep, idx, err), 0, "%s", err);
    const sp_dataset_ep *e = sp_dataset_episode(sp_sampler_dataset(s), ep);
    cr_expect_eq(idx[k - 1], e->n - 1, "clips end at the last frame");
    for (int t = 0; t < k; t++) {
      if (t) cr_expect(idx[t] >= idx[t - 1]);
      if (t && e->n >= k) cr_expect(idx[t] > idx[t - 1], "no repeats when the episode is long enough");
      /* every channel plane of frame t holds the frame index, scaled to [-1, 1] */
      for (int ch = 0; ch < 3; ch++) {
        float v = clip[((size_t)ch * k + t) * sz * sz + 17];
        cr_expect_float_eq(v, idx[t] / 127.5f - 1.0f, 1e-6);
        cr_expect(v >= -1.0f && v <= 1.0f);
      }
    }
  }
  sp_sampler_close(s);
  /* fine mode: every index is one of the episode's fine indices */
  c.use_fine = 1;
  s = sp_sampler_open(path, &c, 8, err);
  cr_assert(s);
  for (int rep = 0; rep < 10; rep++) {
    int ep, idx[8];
    cr_assert_eq(sp_sampler_clip(s, clip, &ep, idx, err), 0, "%s", err);
    const sp_dataset_ep *e = sp_dataset_episode(sp_sampler_dataset(s), ep);
    for (int t = 0; t < k; t++) {
      int found = 0;
      for (int q = 0; q < e->nfine && !found; q++) found = e->fine_idx[q] == idx[t];
      cr_expect(found, "clip frame %d is not a fine index", idx[t]);
    }
  }
  sp_sampler_close(s);
  free(clip);
  unlink(path);
}

Test(data_sampler, policy_samples_and_determinism) {
  char path[512], err[SP_ERRLEN];
  sampler_file(path, sizeof path);
  sp_sampler_cfg c;
  sp_sampler_cfg_default(&c);
  c.goal_min = 2;
  c.goal_max = 6;
  c.horizon = 4;
  sp_sampler *s = sp_sampler_open(path, &c, 11, err), *s2 = sp_sampler_open(path, &c, 11, err),
             *s3 = sp_sampler_open(path, &c, 12, err);
  cr_assert(s && s2 && s3, "%s", err);
  const int sz = 16;
  float cur[3 * 256], goal[3 * 256], act[16], act2[16];
  int differs = 0, seen_recovery = 0;
  for (int rep = 0; rep < 50; rep++) {
    sp_policy_sample o = {.cur = cur, .goal_img = goal, .actions = act}, o2 = {.actions = act2}, o3 = {0};
    cr_assert_eq(sp_sampler_policy(s, &o, err), 0, "%s", err);
    cr_assert_eq(sp_sampler_policy(s2, &o2, err), 0, "%s", err);
    cr_assert_eq(sp_sampler_policy(s3, &o3, err), 0, "%s", err);
    cr_expect(o.episode == o2.episode && o.t == o2.t && o.goal == o2.goal, "same seed, same sample");
    cr_expect_eq(memcmp(act, act2, sizeof act), 0);
    differs += o.episode != o3.episode || o.t != o3.t || o.goal != o3.goal;
    const sp_dataset_ep *e = sp_dataset_episode(sp_sampler_dataset(s), o.episode);
    seen_recovery |= e->recovery;
    cr_expect(o.goal > o.t, "goal %d must lie ahead of %d", o.goal, o.t);
    cr_expect(o.goal <= e->n - 1);
    cr_expect(o.goal - o.t <= c.goal_max);
    cr_expect(o.goal - o.t >= c.goal_min || o.goal == e->n - 1);
    cr_expect(o.t >= 0 && o.t <= e->n - 2);
    cr_expect_eq(e->expert[o.t], 1, "policy samples start at expert actions only (t %d)", o.t);
    for (int j = 0; j < 3; j++) cr_expect_float_eq(o.ee[j], (float)e->ee_pos[3 * o.t + j], 1e-6);
    cr_expect_float_eq(cur[5], o.t / 127.5f - 1.0f, 1e-6);
    cr_expect_float_eq(goal[2 * sz * sz + 5], o.goal / 127.5f - 1.0f, 1e-6);
    for (int h = 0; h < c.horizon; h++) {
      int a = o.t + h < e->n - 1 ? o.t + h : e->n - 2;
      double back[4];
      sp_action_unnormalize(sp_sampler_norm(s), act + 4 * h, back);
      for (int j = 0; j < 4; j++) {
        cr_expect(act[4 * h + j] >= -1.0f - 1e-6f && act[4 * h + j] <= 1.0f + 1e-6f,
                  "normalised action %g outside [-1, 1]", act[4 * h + j]);
        double exec = fmax(-SP_ACT_LIMIT, fmin(SP_ACT_LIMIT, e->actions[4 * a + j]));
        cr_expect_float_eq(o.raw_actions[4 * h + j], exec, 0);
        cr_expect_float_eq(back[j], exec, 1e-5);
      }
    }
  }
  cr_expect(differs > 0, "another seed must give other samples");
  cr_expect(seen_recovery, "recovery episodes are drawn too");
  /* the constant gripper dimension (always 1) is only shifted: maps to -1 */
  sp_policy_sample o = {.actions = act};
  sp_sampler_policy(s, &o, err);
  cr_expect_float_eq(act[3], -1.0f, 1e-6);
  sp_sampler_close(s);
  sp_sampler_close(s2);
  sp_sampler_close(s3);
  c.goal_min = 0;
  cr_expect_null(sp_sampler_open(path, &c, 1, err));
  unlink(path);
}
