/* flowplan.h: AVDC's step from an imagined video to 3D object motion (Ko et al. 2023; facts from
 * ../shared/spec/reference-models.md 2.4 and AVDC_experiments' get_transforms):
 *
 *   1. points: `samples` pixels of the task object's mask in the current view, jittered by +-0.5 px;
 *      the grasp point is the sample with the smallest summed distance to all others, at the
 *      median depth of the samples within `grasp_r` px, back-projected to the world;
 *   2. per flow (frame k -> k + 1 of the video): the points moved by the flow (bilinear lookup);
 *      RANSAC of a 2-point similarity (`ransac_tries` trials, `ransac_px` px) keeps the inliers;
 *      a rigid motion (x, y, z, roll, pitch, yaw; R = Rx Ry Rz, about the world origin) is fitted
 *      to the inliers' reprojection error (mean of squares over both coordinates, plus
 *      max(1, |t|) - 1), from zero and, when that leaves `restart_loss` or more, from `restarts`
 *      N(0, 1) starts, the best kept (AVDC: BFGS; here Levenberg-Marquardt with the exact
 *      Jacobian); the inliers' 3D points move by it and are projected again for the next flow;
 *   3. subgoals: the grasp point pushed through the motions one after another (nflow + 1 points).
 *
 * Optional, not AVDC's (fb_px > 0, with the backward flows): an occlusion test before step 2's
 * RANSAC. A point whose round trip (forward flow, then the backward flow at where it landed)
 * misses its start by more than fb_px is taken as hidden in the next frame (the arm passing over
 * the object, whose flow it would otherwise carry): it sits out that flow's RANSAC and fit and is
 * moved by the fitted motion like the rest of the rigid object, so it counts again once visible.
 * With fewer than 2 visible points the object is taken to stay where it is for that flow.
 *
 * Pixels are those of the view the mask, depth and flows share (w x h, camera cm); AVDC works on
 * the 320 x 240 render, whose 128-pixel crop the agents render directly at 128, so its pixel
 * thresholds carry over unchanged. Deterministic for a seed. */
#ifndef SP_AGENT_FLOWPLAN_H
#define SP_AGENT_FLOWPLAN_H

#include <stdint.h>

#include "core/rng.h"
#include "sim/render.h"

#define SP_FP_MAX_FLOWS 16

typedef struct {
  int samples;          // mask points (500)
  double grasp_r;       // px around the grasp point whose depths give its median depth (5)
  int ransac_tries;     // 100
  double ransac_px;     // inlier threshold of the similarity (0.5 px)
  int restarts;         // random starts of the rigid fit (50)
  double restart_loss;  // the fit from zero is kept below this loss (1e-3)
  double fb_px;         // the occlusion test's round-trip tolerance in px (0: off, AVDC's)
} sp_fp_cfg;

void sp_fp_cfg_default(sp_fp_cfg *c);

typedef struct {
  double grasp[3];                     // world (m)
  double sub[SP_FP_MAX_FLOWS + 1][3];  // subgoals: sub[0] = grasp, sub[k + 1] = T_k sub[k]
  double x[SP_FP_MAX_FLOWS][6];        // each flow's motion (x, y, z, roll, pitch, yaw)
  double loss[SP_FP_MAX_FLOWS];        // its fit's loss (px^2)
  int inliers[SP_FP_MAX_FLOWS];        // points left after its RANSAC (the fit's points)
  int hidden[SP_FP_MAX_FLOWS];         // points the occlusion test kept out of it (fb_px > 0)
  int nflow;
  int mask_empty;                      // the mask had no pixel: AVDC samples the background instead
} sp_fp_plan;

typedef struct sp_fp_ws sp_fp_ws;
sp_fp_ws *sp_fp_ws_new(const sp_fp_cfg *cfg, char *err);
void sp_fp_ws_free(sp_fp_ws *ws);

/* the plan from mask (h x w, nonzero = object), depth (h x w, metres along the camera axis), the
 * view's camera and flows[0..nflow-1] (h x w x 2 each, pixels; flows[k]: frame k -> k + 1);
 * bflows[k] (frame k + 1 -> k) for the occlusion test, required when cfg->fb_px > 0, else
 * unused (NULL); 0 or -1 with err */
int sp_fp_run(const sp_fp_cfg *cfg, sp_fp_ws *ws, const uint8_t *mask, const float *depth, int w, int h,
              const sp_camera_matrix *cm, const float *const *flows, const float *const *bflows, int nflow,
              uint32_t seed, sp_fp_plan *out, char *err);

/* the pieces, for tests */
/* world point of pixel (u, v) at depth z */
void sp_fp_backproject(const sp_camera_matrix *cm, double u, double v, double z, double p[3]);
/* RANSAC of a similarity mapping a[i] -> b[i] (n points, xy pairs) through 2-point samples; the
 * indices of the best sample's inliers go to inl; returns their count */
int sp_fp_ransac(const double *a, const double *b, int n, int tries, double thresh, sp_mt19937 *rng, int *inl);
/* R (row-major 3 x 3) of (roll, pitch, yaw) = Rx(roll) Ry(pitch) Rz(yaw) */
void sp_fp_rotation(double roll, double pitch, double yaw, double R[9]);
/* the rigid fit of world points P (n x 3) to pixels uv (n x 2) under cm (see above); returns the
 * loss, the motion in x */
double sp_fp_rigid_fit(const double *P, const double *uv, int n, const sp_camera_matrix *cm, int restarts,
                       double restart_loss, sp_mt19937 *rng, double x[6]);
/* the loss of motion x on those points (the fit's objective) */
double sp_fp_rigid_loss(const double *P, const double *uv, int n, const sp_camera_matrix *cm, const double x[6]);

#endif
