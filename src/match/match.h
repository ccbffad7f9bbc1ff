/* match.h: image similarity and goal-frame matching (paper, Appendix F).
 *
 * Four similarities between two grayscale frames of equal size, each in [0, 1]:
 *   shape  SIFT keypoints + descriptors (VLFeat), ratio-test + mutual matches   (shape.c)
 *   block  block-wise intensity means/variances and centre-of-mass shift         (block.c)
 *   ssim   Wang et al. 2004, Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03   (ssim.c)
 *   flow   inverse magnitude of Farneback dense optical flow                     (flow.c)
 * and their weighted sum, the composite score S. The frame matcher (matcher.c) walks the frames of
 * an imagined video: it advances the goal index when S >= threshold and forces a switch after
 * max_steps steps on one goal, so it can never deadlock. docs/match.md has the definitions.
 *
 * Frames are 8-bit gray, row-major, top row first: (h x w). Flow fields are float (h x w x 2) with
 * (dx, dy) per pixel such that prev(y, x) ~ next(y + dy, x + dx), as OpenCV writes them.
 *
 * Constant configs (plain structs with defaults and a printer) are separate from mutable
 * workspaces, which are allocated once for one frame size; the per-frame calls never allocate. */
#ifndef SP_MATCH_H
#define SP_MATCH_H

#include <stdint.h>
#include <stdio.h>

/* ---- SSIM ---- */

typedef struct sp_ssim_ws sp_ssim_ws;

/* workspace for w x h frames (w, h >= 11); NULL with err on bad size or no memory */
sp_ssim_ws *sp_ssim_ws_new(int w, int h, char *err);
void sp_ssim_ws_free(sp_ssim_ws *ws);
/* mean SSIM over the pixels whose 11x11 window lies inside the frame (Wang's 'valid' mean;
 * equals scikit-image with gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
 * data_range=255). The frame size must be the workspace's. */
double sp_ssim_gray(sp_ssim_ws *ws, const uint8_t *a, const uint8_t *b);
/* naive reference: direct 11x11 windows in double, allocates nothing; for tests */
double sp_ssim_gray_ref(const uint8_t *a, const uint8_t *b, int w, int h);

/* ---- Farneback dense optical flow ---- */

typedef struct {
  double pyr_scale;   // image scale between pyramid levels, in (0, 1)
  int levels;         // extra pyramid levels above the original (OpenCV's numbering)
  int winsize;        // averaging window (odd is usual)
  int iterations;     // iterations per level
  int poly_n;         // half-size of the polynomial expansion neighbourhood (5 or 7 usual)
  double poly_sigma;  // sigma of the applicability Gaussian (1.1-1.2 for 5, 1.5 for 7)
  int gaussian;       // 1: Gaussian averaging window (OPTFLOW_FARNEBACK_GAUSSIAN), 0: box
} sp_flow_cfg;

/* the OpenCV tutorial values: 0.5, 3, 15, 3, 5, 1.2, box */
void sp_flow_cfg_default(sp_flow_cfg *c);
/* 0 or -1 with err naming the bad field */
int sp_flow_cfg_check(const sp_flow_cfg *c, char *err);

typedef struct sp_flow_ws sp_flow_ws;

/* workspace for w x h frames under cfg (w, h >= 8) */
sp_flow_ws *sp_flow_ws_new(const sp_flow_cfg *cfg, int w, int h, char *err);
void sp_flow_ws_free(sp_flow_ws *ws);
/* dense flow from prev to next, written to flow (h x w x 2); cfg must be the workspace's */
void sp_flow_farneback(const sp_flow_cfg *cfg, sp_flow_ws *ws, const uint8_t *prev,
                       const uint8_t *next, float *flow);
/* naive reference of the same method (direct sums, double, allocates); 0 or -1 with err */
int sp_flow_farneback_ref(const sp_flow_cfg *cfg, const uint8_t *prev, const uint8_t *next, int w,
                          int h, float *flow, char *err);
/* mean endpoint magnitude |(dx, dy)| over all pixels, in pixels */
double sp_flow_mean_mag(const float *flow, int w, int h);
/* Middlebury colour-wheel visualisation (Baker et al. 2011) into rgb (h x w x 3); vectors are
 * divided by max_mag (<= 0: the field's largest magnitude) and saturate at 1 */
void sp_flow_to_rgb(const float *flow, int w, int h, double max_mag, uint8_t *rgb);

/* ---- shape: SIFT features (VLFeat) ---- */

#define SP_SHAPE_DESC 128

typedef struct {
  int n, cap;       // features held, capacity
  float *xy;        // (cap x 2) keypoint position in pixels
  float *desc;      // (cap x 128) L2-normalised SIFT descriptors
} sp_shape_feats;

typedef struct sp_shape_ws sp_shape_ws;

/* workspace for w x h frames and at most max_feats features per frame */
/* first_octave: VLFeat's o_min, -1 (upsampled x2), 0 (full resolution) or 1 (half resolution) */
sp_shape_ws *sp_shape_ws_new(int w, int h, int first_octave, int max_feats, double peak_thresh,
                             double edge_thresh, char *err);
void sp_shape_ws_free(sp_shape_ws *ws);
int sp_shape_feats_alloc(sp_shape_feats *f, int cap, char *err);
void sp_shape_feats_free(sp_shape_feats *f);
/* detect keypoints (all orientations) and describe them; keeps the strongest max_feats */
void sp_shape_extract(sp_shape_ws *ws, const uint8_t *img, sp_shape_feats *out);
/* matches: i in a to j in b where j is i's nearest neighbour, d1 < ratio * d2 (Lowe's test), and
 * i is j's nearest neighbour (mutual). score = 2 * matches / (na + nb); 1 when both are empty,
 * 0 when only one is. nmatch may be NULL. */
double sp_shape_score(sp_shape_ws *ws, const sp_shape_feats *a, const sp_shape_feats *b,
                      double ratio, int *nmatch);

/* ---- block statistics ---- */

typedef struct {
  double mean, var, com;  // the three parts, each in [0, 1]
  double mean_diff;       // mean |difference| of the block means relative to the frame means, gray levels
  double com_shift_px;    // shift of the intensity centre of mass, mean brightness matched, pixels
} sp_block_parts;

/* grid x grid blocks (1..64, at most min(w, h)); mean_scale (gray levels) and com_scale_px > 0.
 * mean = exp(-mean_diff / mean_scale), var = SSIM's contrast term per block, averaged,
 * com = exp(-com_shift_px / com_scale_px); both are invariant to a global brightness offset.
 * Returns the mean of the three parts. */
double sp_block_score(const uint8_t *a, const uint8_t *b, int w, int h, int grid, double mean_scale,
                      double com_scale_px, sp_block_parts *parts);

/* ---- composite score (Appendix F) ---- */

typedef struct {
  double w_shape, w_block, w_ssim, w_flow;  // weights of eq. (7)
  double threshold;                          // match when S >= threshold, eq. (8)
  int max_steps;                             // forced switch after this many steps on one goal
  sp_flow_cfg flow;
  double flow_scale_px;                      // s_flow = 1 / (1 + mean |flow| / flow_scale_px)
  int block_grid;                            // blocks per side
  double block_mean_scale;                   // s_mean = exp(-mean |block mean diff| / this), gray levels
  double com_scale_px;                       // s_com = exp(-shift / com_scale_px)
  double sift_ratio;                         // Lowe's ratio test
  double sift_peak_thresh, sift_edge_thresh; // VLFeat detector thresholds (0-255 intensities)
  int sift_max_feats;                        // features kept per frame (detection order)
  int sift_first_octave;                     // VLFeat o_min: -1 upsampled, 0 full, 1 half resolution
} sp_match_cfg;

void sp_match_cfg_default(sp_match_cfg *c);
int sp_match_cfg_check(const sp_match_cfg *c, char *err);
void sp_match_cfg_print(const sp_match_cfg *c, FILE *f);

typedef struct {
  double shape, block, ssim, flow;  // the four similarities, [0, 1]
  double composite;                 // the weighted sum, eq. (7)
  int matched;                      // composite >= threshold
  double flow_mean_px;              // mean flow magnitude, pixels
  double com_shift_px;              // centre-of-mass shift, pixels
  sp_block_parts block_parts;       // the three parts of the block score
  int nfeat_a, nfeat_b, nmatch;     // SIFT features and matches
} sp_match_result;

/* per-component CPU time (this thread) of the last sp_match_pair call, seconds: the cost on one
 * core, unaffected by other processes competing for the CPU (for the benchmark) */
typedef struct {
  double shape, block, ssim, flow;
} sp_match_timing;

typedef struct sp_match_ws sp_match_ws;

sp_match_ws *sp_match_ws_new(const sp_match_cfg *cfg, int w, int h, char *err);
void sp_match_ws_free(sp_match_ws *ws);
/* score frame a (the observation) against b (the goal); a and b are (h x w) of the workspace's size.
 * flow (h x w x 2) may be NULL; when given it receives the a -> b flow. timing may be NULL.
 * Same as sp_match_set_goal(b) followed by sp_match_obs(a). */
void sp_match_pair(const sp_match_cfg *cfg, sp_match_ws *ws, const uint8_t *a, const uint8_t *b,
                   sp_match_result *out, float *flow, sp_match_timing *timing);
/* the closed loop compares many observations with one goal frame: set_goal keeps a pointer to goal
 * (which must stay valid and unchanged until the next set_goal) and its SIFT features; obs then
 * scores an observation against it, extracting features of the observation only. timing->shape
 * of set_goal is the goal's extraction time (may be NULL). */
void sp_match_set_goal(const sp_match_cfg *cfg, sp_match_ws *ws, const uint8_t *goal, sp_match_timing *timing);
void sp_match_obs(const sp_match_cfg *cfg, sp_match_ws *ws, const uint8_t *obs, sp_match_result *out,
                  float *flow, sp_match_timing *timing);

/* RGB (h x w x 3) to gray with OpenCV's BT.601 integer weights (cvtColor RGB2GRAY) */
void sp_match_rgb_to_gray(const uint8_t *rgb, int w, int h, uint8_t *gray);

/* ---- the frame matcher ---- */

typedef enum {
  SP_MATCHER_HOLD = 0,      // not matched, keep the goal
  SP_MATCHER_ADVANCE,       // matched: goal index moved on
  SP_MATCHER_FORCED,        // max_steps reached: goal index moved on anyway
  SP_MATCHER_DONE,          // past the last frame (every later step also says DONE)
} sp_matcher_event;

typedef struct {
  int n_frames;        // frames in the imagined video
  int goal;            // current goal frame index; n_frames once done
  int steps_on_goal;   // steps spent on the current goal
  int steps;           // total steps
  int n_matched, n_forced;
  double threshold;
  int max_steps;
} sp_matcher;

/* start at goal frame first (usually 1: frame 0 is the start observation) */
void sp_matcher_init(sp_matcher *m, int n_frames, int first, double threshold, int max_steps);
/* one control step with the composite score of (observation, current goal) */
sp_matcher_event sp_matcher_step(sp_matcher *m, double score);
const char *sp_matcher_event_name(sp_matcher_event e);

#endif
