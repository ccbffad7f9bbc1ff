/* bench_match.c: cost of the composite frame-match score for one 128x128 pair on one core, per
 * component (median of N runs after a warm-up), and the naive references for comparison.
 *   make build/bench/bench_match && build/bench/bench_match [A.png B.png] [reps]
 * Defaults to the committed fixture pair tests/fixtures/match/scene_{a,b}.png. The process pins
 * itself to one CPU; all of src/match is single-threaded. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/image.h"
#include "core/log.h"
#include "match/match.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, n, sizeof *v, cmp);
  return v[n / 2];
}

static double minimum(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
  return m;
}

int main(int argc, char **argv) {
  const char *pa = argc > 2 ? argv[1] : "tests/fixtures/match/scene_a.png";
  const char *pb = argc > 2 ? argv[2] : "tests/fixtures/match/scene_b.png";
  int reps = argc > 3 ? atoi(argv[3]) : argc == 2 ? atoi(argv[1]) : 200;
  if (reps < 1) reps = 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  int pinned = sched_setaffinity(0, sizeof set, &set) == 0;
  char err[SP_ERRLEN];
  sp_image a, b;
  if (sp_png_read(pa, 1, &a, err) || sp_png_read(pb, 1, &b, err)) {
    sp_log(SP_LOG_ERROR, "bench_match: %s", err);
    return 2;
  }
  if (a.w != b.w || a.h != b.h) {
    sp_log(SP_LOG_ERROR, "bench_match: frames differ in size");
    return 2;
  }
  sp_match_cfg cfg;
  sp_match_cfg_default(&cfg);
  printf("bench_match: %s vs %s, %dx%d, %d reps, %s, CPU time of this thread\n", pa, pb, a.w, a.h, reps,
         pinned ? "pinned to cpu 0" : "not pinned");
  sp_match_cfg_print(&cfg, stdout);
  double *ts = malloc(sizeof(double) * reps * 6);
  double *tsh = ts, *tbl = ts + reps, *tss = ts + 2 * reps, *tfl = ts + 3 * reps, *tall = ts + 4 * reps,
         *tobs = ts + 5 * reps;
  /* the default first SIFT octave, then the other two */
  const int octaves[3] = {cfg.sift_first_octave, cfg.sift_first_octave == 0 ? 1 : 0, -1};
  for (int oc = 0; oc < 3; oc++) {
    cfg.sift_first_octave = octaves[oc];
    sp_match_ws *ws = sp_match_ws_new(&cfg, a.w, a.h, err);
    if (!ws) {
      sp_log(SP_LOG_ERROR, "%s", err);
      return 2;
    }
    sp_match_result r;
    sp_match_timing t;
    for (int i = 0; i < 5; i++) sp_match_pair(&cfg, ws, a.px, b.px, &r, NULL, &t);   // warm-up
    for (int i = 0; i < reps; i++) {
      double t0 = now_s();
      sp_match_pair(&cfg, ws, a.px, b.px, &r, NULL, &t);
      tall[i] = now_s() - t0;
      tsh[i] = t.shape;
      tbl[i] = t.block;
      tss[i] = t.ssim;
      tfl[i] = t.flow;
    }
    sp_match_set_goal(&cfg, ws, b.px, NULL);
    for (int i = 0; i < reps; i++) {
      double t0 = now_s();
      sp_match_obs(&cfg, ws, a.px, &r, NULL, &t);
      tobs[i] = now_s() - t0;
    }
    printf("\nsift first octave %d%s: shape %.4f block %.4f ssim %.4f flow %.4f composite %.4f "
           "(%d/%d features, %d matches)\n", octaves[oc], oc == 0 ? " (default)" : "", r.shape, r.block, r.ssim,
           r.flow, r.composite, r.nfeat_a, r.nfeat_b, r.nmatch);
    printf("  ms median (min): shape = 2x SIFT + matching %.3f (%.3f) | block %.3f (%.3f) | ssim %.3f (%.3f) | "
           "flow %.3f (%.3f)\n", 1e3 * median(tsh, reps), 1e3 * minimum(tsh, reps), 1e3 * median(tbl, reps),
           1e3 * minimum(tbl, reps), 1e3 * median(tss, reps), 1e3 * minimum(tss, reps), 1e3 * median(tfl, reps),
           1e3 * minimum(tfl, reps));
    printf("  ms median (min): composite of a pair %.3f (%.3f) | with the goal's features cached (sp_match_obs) "
           "%.3f (%.3f)\n", 1e3 * median(tall, reps), 1e3 * minimum(tall, reps), 1e3 * median(tobs, reps),
           1e3 * minimum(tobs, reps));
    sp_match_ws_free(ws);
  }
  cfg.sift_first_octave = octaves[0];
  /* the naive references, a few runs */
  int nref = reps < 5 ? reps : 5;
  float *fl = malloc(sizeof(float) * 2 * a.w * a.h);
  double *tr = malloc(sizeof(double) * nref * 2);
  volatile double sink = 0;
  for (int i = 0; i < nref; i++) {
    double t0 = now_s();
    sink += sp_ssim_gray_ref(a.px, b.px, a.w, a.h);
    double t1 = now_s();
    if (sp_flow_farneback_ref(&cfg.flow, a.px, b.px, a.w, a.h, fl, err)) return 2;
    tr[i] = t1 - t0;
    tr[nref + i] = now_s() - t1;
  }
  printf("\nnaive references, ms median (min): ssim %.3f (%.3f) | flow %.3f (%.3f)\n", 1e3 * median(tr, nref),
         1e3 * minimum(tr, nref), 1e3 * median(tr + nref, nref), 1e3 * minimum(tr + nref, nref));
  (void)sink;
  free(tr);
  free(fl);
  free(ts);
  sp_image_free(&a);
  sp_image_free(&b);
  return 0;
}
