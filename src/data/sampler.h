/* sampler.h: training samples drawn from a demonstration dataset (dataset.h).
 *
 * - Video clips (AVDC, reference-models.md 2.2): a start frame, then frames evenly spaced from
 *   it to the episode's last frame, inclusive: idx_i = start + floor(i (last - start) / (k - 1)),
 *   NumPy's linspace(start, last, k).astype(int). With use_fine the same rule runs over the
 *   episode's fine-interval indices instead of all frames.
 * - Policy samples: the frame t (with expert_only, one whose action came from the expert, so
 *   recovery perturbations are never targets), a goal frame min(t + k, n - 1) with k uniform in
 *   [goal_min, goal_max] (always ahead of t), the end effector at t, and the next H actions
 *   a[t .. t + H - 1] (past the end: the last action repeated) as the robot executes them
 *   (clipped to [-SP_ACT_LIMIT, SP_ACT_LIMIT]: the expert's raw values reach 20), normalised to
 *   [-1, 1] with the dataset's per-dimension min/max, clipped the same way (Diffusion Policy's
 *   "limits" normaliser: dimensions with a range below 1e-4 get scale 1 and are only shifted).
 *
 * Images are float (C x H x W), or (C x T x H x W) for clips, scaled to [-1, 1] (PyTorch order).
 * Every draw comes from the sampler's own MT19937 seeded at open: same seed, same samples. */
#ifndef SP_DATA_SAMPLER_H
#define SP_DATA_SAMPLER_H

#include <stdint.h>

#include "core/rng.h"
#include "data/dataset.h"

#define SP_CLIP_MAX 64
#define SP_HORIZON_MAX 64

typedef struct {
  int clip_frames;       // frames per clip (8: 1 condition + 7 targets)
  int clip_random_start; // 1: AVDC's random start frame; 0: always the first frame
  int use_fine;          // clips follow the fine-interval indices
  int goal_min, goal_max;  // policy goal offset range in frames (>= 1)
  int horizon;           // H actions per policy sample (4 in SP's figure)
  int include_recovery;  // draw from recovery episodes too
  int expert_only;       // policy samples only at frames whose action came from the expert
  int holdout;           // per (task, camera), the `holdout` demonstrations of highest seed are
                         // held out for validation (recovery episodes follow their seed)
  int split;             // SP_SPLIT_ALL, SP_SPLIT_TRAIN (without the held out) or SP_SPLIT_VAL
} sp_sampler_cfg;

enum { SP_SPLIT_ALL = 0, SP_SPLIT_TRAIN, SP_SPLIT_VAL };

/* 8 frames, random start, no fine, goal 1..16, H 4, recovery episodes included, expert actions
 * only, no holdout, every episode */
void sp_sampler_cfg_default(sp_sampler_cfg *c);

typedef struct sp_sampler sp_sampler;

/* open a dataset for sampling; NULL with err (no usable episode is an error) */
sp_sampler *sp_sampler_open(const char *path, const sp_sampler_cfg *cfg, uint32_t seed, char *err);
void sp_sampler_close(sp_sampler *s);
int sp_sampler_size(const sp_sampler *s);  // image side
const sp_dataset *sp_sampler_dataset(const sp_sampler *s);

/* the usable episodes (after split and filters) */
int sp_sampler_count(const sp_sampler *s);
/* restart the sampler's random stream: a trainer reseeds from (seed, step) so a resumed run
 * draws exactly what the uninterrupted run drew */
void sp_sampler_reseed(sp_sampler *s, uint32_t seed);

/* clip frame indices over a list of `len` candidate frames (cand NULL: 0..len-1) */
void sp_clip_indices(const int32_t *cand, int len, int start, int k, int *idx);

/* a clip: out (3 x k x sz x sz); episode and the k frame indices are reported */
int sp_sampler_clip(sp_sampler *s, float *out, int *episode, int *idx, char *err);
/* the clip of usable episode k (0..count-1) from candidate frame `start` (clamped as the random
 * start is), with no random draw: fixed validation clips */
int sp_sampler_clip_at(sp_sampler *s, int k, int start, float *out, int *episode, int *idx, char *err);
/* the usable index (0..count-1) of dataset episode `episode`, -1 when the split or filters leave it out */
int sp_sampler_index_of(const sp_sampler *s, int episode);
/* the k frames idx[0..k-1] of dataset episode `episode` as a clip (3 x k x sz x sz), no draw */
int sp_sampler_frames(sp_sampler *s, int episode, const int *idx, int k, float *out, char *err);

typedef struct {
  int episode, t, goal;       // frame indices, goal > t
  float ee[3];                // end effector (tcp) at t, metres
  float grip;                 // gripper opening at t (obs[SP_OBS_GRIP])
  float *cur, *goal_img;      // (3 x sz x sz) each, caller's buffers
  float *actions;             // (H x 4) normalised, caller's buffer
  double raw_actions[SP_HORIZON_MAX * SP_ACT_DIM];  // the same, unnormalised (executed, clipped)
} sp_policy_sample;

int sp_sampler_policy(sp_sampler *s, sp_policy_sample *out, char *err);

/* the limits normaliser */
typedef struct {
  double scale[SP_ACT_DIM], offset[SP_ACT_DIM];
} sp_action_norm;
void sp_action_norm_init(sp_action_norm *n, const double amin[SP_ACT_DIM], const double amax[SP_ACT_DIM]);
void sp_action_normalize(const sp_action_norm *n, const double *a, float *out);     // one action
void sp_action_unnormalize(const sp_action_norm *n, const float *x, double *out);   // inverse
const sp_action_norm *sp_sampler_norm(const sp_sampler *s);
/* the limits it was built from: the dataset's action min/max clipped to the executed range */
void sp_sampler_action_limits(const sp_sampler *s, double amin[SP_ACT_DIM], double amax[SP_ACT_DIM]);
/* normalise with other limits from now on (fine-tuning keeps its checkpoint's; they should
 * contain the dataset's) */
void sp_sampler_set_action_limits(sp_sampler *s, const double amin[SP_ACT_DIM], const double amax[SP_ACT_DIM]);
/* an action as the robot executes it: every element clipped to [-SP_ACT_LIMIT, SP_ACT_LIMIT] */
void sp_action_executed(const double *a, double *out);

/* the video model's spatial conditions: read every usable episode's target_pos (object, goal;
 * dataset.h) once (0, or -1 with err); then the positions at a frame of a usable episode (dataset
 * index, as sp_sampler_clip reports it): the end effector (tcp centre, ee_pos), the object and the
 * goal, world frame, metres. -1 before the load, for an episode not loaded or a frame outside. */
int sp_sampler_load_targets(sp_sampler *s, char *err);
int sp_sampler_positions(const sp_sampler *s, int episode, int frame, double ee[3], double obj[3],
                         double goal[3]);

#endif
