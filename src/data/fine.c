/* fine.c: fine-interval phases and sampling (contract and parameter meanings in fine.h). */
#include "data/fine.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

void sp_fine_cfg_default(sp_fine_cfg *c) {
  c->interval = 5;
  c->rate = 5;
  c->distance_threshold = 0.05;
  c->consecutive_frames = 3;
  c->recovery_needed_frames = 5;
  c->suppress_single_spike = 1;
  c->max_allowed_anomaly = 2;
}

int sp_fine_cfg_check(const sp_fine_cfg *c, char *err) {
  if (c->interval < 1 || c->interval > 1000) return sp_errf(err, "fine interval %d outside 1..1000", c->interval);
  if (c->rate < 1 || c->rate > 1000) return sp_errf(err, "fine rate %d outside 1..1000", c->rate);
  if (!(c->distance_threshold >= 0) || !isfinite(c->distance_threshold))
    return sp_errf(err, "fine distance_threshold %g must be a finite number >= 0", c->distance_threshold);
  if (c->consecutive_frames < 1) return sp_errf(err, "fine consecutive_frames %d must be >= 1", c->consecutive_frames);
  if (c->recovery_needed_frames < 0)
    return sp_errf(err, "fine recovery_needed_frames %d must be >= 0", c->recovery_needed_frames);
  if (c->suppress_single_spike != 0 && c->suppress_single_spike != 1)
    return sp_errf(err, "fine suppress_single_spike must be 0 or 1");
  if (c->max_allowed_anomaly < 0) return sp_errf(err, "fine max_allowed_anomaly %d must be >= 0", c->max_allowed_anomaly);
  return 0;
}

void sp_fine_cfg_format(const sp_fine_cfg *c, char *buf, int cap) {
  snprintf(buf, (size_t)cap,
           "interval=%d rate=%d distance_threshold=%g consecutive_frames=%d "
           "recovery_needed_frames=%d suppress_single_spike=%d max_allowed_anomaly=%d",
           c->interval, c->rate, c->distance_threshold, c->consecutive_frames,
           c->recovery_needed_frames, c->suppress_single_spike, c->max_allowed_anomaly);
}

static int is_close(const sp_fine_cfg *c, double d) { return d <= c->distance_threshold; /* NaN: 0 */ }

int sp_fine_phases(const sp_fine_cfg *c, const double *d, int n, uint8_t *flag) {
  memset(flag, 0, (size_t)(n > 0 ? n : 0));
  int nphase = 0, fine = 0, run = 0, start = 0, last_close = 0, anomalies = 0;
  int prev_end = -1;  // last frame of the previous fine phase, -1 when none
  for (int t = 0; t < n; t++) {
    int close = is_close(c, d[t]);
    if (!fine) {
      run = close ? run + 1 : 0;
      if (run >= c->consecutive_frames) {
        int s = t - c->consecutive_frames + 1;  // first frame of the latest qualifying run
        if (prev_end < 0 || s - prev_end - 1 >= c->recovery_needed_frames) {
          fine = 1;
          start = s;
          last_close = t;
          anomalies = 0;
        }
      }
      continue;
    }
    if (close) {
      anomalies = 0;
      last_close = t;
      continue;
    }
    int spike = c->suppress_single_spike && t + 1 < n && is_close(c, d[t - 1]) && is_close(c, d[t + 1]);
    if (!spike) anomalies++;
    if (anomalies > c->max_allowed_anomaly) {
      memset(flag + start, 1, (size_t)(last_close - start + 1));
      nphase++;
      prev_end = last_close;
      fine = 0;
      run = 0;
    }
  }
  if (fine) {
    memset(flag + start, 1, (size_t)(last_close - start + 1));
    nphase++;
  }
  return nphase;
}

int sp_fine_sample(const sp_fine_cfg *c, const uint8_t *flag, int n, int32_t *idx) {
  int fine_step = c->interval / c->rate;
  if (fine_step < 1) fine_step = 1;
  int m = 0;
  for (int t = 0; t < n;) {
    int b = t;
    while (b + 1 < n && flag[b + 1] == flag[t]) b++;
    int step = flag[t] ? fine_step : c->interval;
    for (int k = t; k <= b; k += step) idx[m++] = k;
    t = b + 1;
  }
  if (n > 0 && idx[m - 1] != n - 1) idx[m++] = n - 1;
  return m;
}
