/* fine.h: fine-interval sampling of a demonstration (SP paper, Appendix D).
 *
 * From the per-frame gripper-target distance d[t] (metres) the frames are split into coarse and
 * fine (close-contact) phases, and frames are sampled every `interval` frames in coarse phases and
 * every max(1, interval / rate) frames in fine phases (rate 5: "5x the rate of coarse intervals").
 * The paper names the six parameters but not their semantics or values; ours (docs/dataset.md):
 *
 * - a frame is *close* when d[t] <= distance_threshold (a NaN distance is never close);
 * - a fine phase is entered at the first frame of a run of consecutive_frames close frames, and
 *   only when at least recovery_needed_frames coarse frames separate that run from the end of the
 *   previous fine phase (the first phase of an episode needs no recovery);
 * - inside a fine phase, a far frame is an *anomaly*. With suppress_single_spike, a single far
 *   frame whose both neighbours are close is not an anomaly. The phase ends when more than
 *   max_allowed_anomaly anomalies occur in a row; it then ends at its last close frame and the
 *   anomalous frames are coarse;
 * - sampled frames: in each phase segment [a, b] the frames a, a + step, ... <= b, plus the last
 *   frame of the episode; sorted, without duplicates. Raw frames are always kept as well. */
#ifndef SP_DATA_FINE_H
#define SP_DATA_FINE_H

#include <stdint.h>

typedef struct {
  int interval;                // coarse sampling interval (frames), >= 1
  int rate;                    // fine phases are sampled this many times denser (5)
  double distance_threshold;   // metres: a frame is close when d <= this
  int consecutive_frames;      // close frames in a row needed to enter a fine phase, >= 1
  int recovery_needed_frames;  // coarse frames needed after a fine phase before the next, >= 0
  int suppress_single_spike;   // 1: one far frame between two close frames is not an anomaly
  int max_allowed_anomaly;     // anomalies in a row tolerated inside a fine phase, >= 0
} sp_fine_cfg;

/* interval 5, rate 5, threshold 0.05 m, consecutive 3, recovery 5, suppress 1, anomaly 2 */
void sp_fine_cfg_default(sp_fine_cfg *c);
/* 0, or -1 with err naming the bad parameter */
int sp_fine_cfg_check(const sp_fine_cfg *c, char *err);
/* one line "interval=5 rate=5 distance_threshold=0.05 ..." into buf */
void sp_fine_cfg_format(const sp_fine_cfg *c, char *buf, int cap);

/* phases: flag[t] = 1 for frames inside a fine phase, else 0 (n entries). Returns the number of
 * fine phases. */
int sp_fine_phases(const sp_fine_cfg *c, const double *d, int n, uint8_t *flag);

/* sampled frame indices (at most n, ascending) from the phase flags; returns their count */
int sp_fine_sample(const sp_fine_cfg *c, const uint8_t *flag, int n, int32_t *idx);

#endif
