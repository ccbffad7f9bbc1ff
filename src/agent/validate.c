/* validate.c: the offline video validator (contract in validate.h). */
#include "agent/validate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int sp_validator_init(sp_validator *v, int R, char *err) {
  memset(v, 0, sizeof *v);
  v->R = R;
  sp_flow_cfg_default(&v->fcfg);
  v->fcfg.levels = 2;  // 64 px frames: pyramid levels of 32 and 16
  v->g0 = malloc((size_t)R * R);
  v->g1 = malloc((size_t)R * R);
  v->flow = malloc(sizeof(float) * 2 * (size_t)R * R);
  if (!v->g0 || !v->g1 || !v->flow) {
    sp_validator_free(v);
    return sp_errf(err, "out of memory");
  }
  if (!(v->fws = sp_flow_ws_new(&v->fcfg, R, R, err))) {
    sp_validator_free(v);
    return -1;
  }
  return 0;
}

void sp_validator_free(sp_validator *v) {
  sp_flow_ws_free(v->fws);
  free(v->g0);
  free(v->g1);
  free(v->flow);
  memset(v, 0, sizeof *v);
}

void sp_validator_plan(sp_validator *v, const sp_agent_sense *s, const sp_collect_config *view, const double tcp[3],
                       const sp_plan *plan) {
  v->plan_judged = 0;
  if (plan->n < 1) return;
  const int *d = plan->step[0].dir;
  double n = sqrt((double)(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]));
  if (n == 0) return;
  sp_camera_matrix cm;
  sp_sense_camera(s, view, &cm);
  double p[3];
  for (int k = 0; k < 3; k++) p[k] = tcp[k] + SP_VALID_PROBE * d[k] / n;
  if (sp_camera_project(&cm, tcp, &v->tcp_px[0], &v->tcp_px[1]) <= 0 ||
      sp_camera_project(&cm, p, &v->plan_px[0], &v->plan_px[1]) <= 0)
    return;
  double du = v->plan_px[0] - v->tcp_px[0], dv = v->plan_px[1] - v->tcp_px[1];
  v->plan_judged = hypot(du, dv) >= SP_VALID_MIN_PX;
}

/* the imagined arm's first motion against the plan's (see SP_VALID_FLOW_FRAME) */
static int flow_agrees(sp_validator *v, const uint8_t *frames, int nframes) {
  if (!v->plan_judged || nframes <= SP_VALID_FLOW_FRAME) return 1;
  const int R = v->R;
  const size_t n = (size_t)R * R * 3;
  sp_match_rgb_to_gray(frames, R, R, v->g0);
  sp_match_rgb_to_gray(frames + n * SP_VALID_FLOW_FRAME, R, R, v->g1);
  sp_flow_farneback(&v->fcfg, v->fws, v->g0, v->g1, v->flow);
  double fu = 0, fv = 0;
  int cnt = 0;
  const int cu = (int)lround(v->tcp_px[0]), cv = (int)lround(v->tcp_px[1]);
  for (int y = cv - SP_VALID_RADIUS; y <= cv + SP_VALID_RADIUS; y++)
    for (int x = cu - SP_VALID_RADIUS; x <= cu + SP_VALID_RADIUS; x++) {
      if (x < 0 || y < 0 || x >= R || y >= R) continue;
      if ((x - cu) * (x - cu) + (y - cv) * (y - cv) > SP_VALID_RADIUS * SP_VALID_RADIUS) continue;
      fu += v->flow[2 * ((size_t)y * R + x)];
      fv += v->flow[2 * ((size_t)y * R + x) + 1];
      cnt++;
    }
  if (!cnt) return 1;  // the tcp is outside the frame
  return fu * (v->plan_px[0] - v->tcp_px[0]) + fv * (v->plan_px[1] - v->tcp_px[1]) > 0;
}

int sp_validator_judge(sp_validator *v, const uint8_t *frames, int nframes) {
  const size_t n = (size_t)v->R * v->R * 3;
  for (int f = 1; f < nframes; f++) {
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += frames[(size_t)f * n + i];
    mean /= (double)n;
    if (mean < 8 || mean > 247) return 0;
  }
  double diff = 0;
  const uint8_t *first = frames, *last = frames + (size_t)(nframes - 1) * n;
  for (size_t i = 0; i < n; i++) diff += abs((int)first[i] - (int)last[i]);
  return diff / (double)n >= SP_VALID_MIN_DIFF && flow_agrees(v, frames, nframes);
}

int sp_validator_verdict(sp_validator *v, sp_vlm *vlm, int task, const uint8_t *frames, int nframes,
                         int *vlm_failures) {
  if (vlm) {
    sp_image fr[SP_VALID_MAX_FRAMES];
    const int n = nframes < SP_VALID_MAX_FRAMES ? nframes : SP_VALID_MAX_FRAMES;
    for (int f = 0; f < n; f++) fr[f] = (sp_image){v->R, v->R, 3, (uint8_t *)frames + (size_t)v->R * v->R * 3 * f};
    int accept = 1;
    if (sp_vlm_validate(vlm, task, fr, n, &accept) != 1) return accept;
    (*vlm_failures)++;
  }
  return sp_validator_judge(v, frames, nframes);
}
