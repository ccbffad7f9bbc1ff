/* test_agent_flowplan.c: AVDC's flow -> 3D motion step (agent/flowplan.h) on synthetic scenes whose
 * answer is known: a camera looking at points on a table, moved by a known rigid motion. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/flowplan.h"

/* a camera 1 m in front of the world origin's neighbourhood, looking along +y (world) with image
 * rows going down (-z): camera x = world x, camera y = -world z, camera z = world y - 0.3 */
static void camera(sp_camera_matrix *cm, int side) {
  memset(cm, 0, sizeof *cm);
  double f = 0.5 * side / tan(0.5 * 45.0 * M_PI / 180.0);
  double K[9] = {f, 0, (side - 1) / 2.0, 0, f, (side - 1) / 2.0, 0, 0, 1};
  double R[9] = {1, 0, 0, 0, 0, -1, 0, 1, 0};
  memcpy(cm->K, K, sizeof K);
  memcpy(cm->R, R, sizeof R);
  cm->t[0] = 0;
  cm->t[1] = 0;
  cm->t[2] = -0.3;
}

static void move(const double x[6], const double p[3], double q[3]) {
  double R[9];
  sp_fp_rotation(x[3], x[4], x[5], R);
  for (int i = 0; i < 3; i++) q[i] = R[3 * i] * p[0] + R[3 * i + 1] * p[1] + R[3 * i + 2] * p[2] + x[i];
}

Test(agent_flowplan, backprojection_inverts_projection) {
  sp_camera_matrix cm;
  camera(&cm, 128);
  double p[3] = {0.05, 0.9, 0.12}, u, v, q[3];
  double z = sp_camera_project(&cm, p, &u, &v);
  cr_assert(z > 0);
  sp_fp_backproject(&cm, u, v, z, q);
  for (int i = 0; i < 3; i++) cr_expect(fabs(p[i] - q[i]) < 1e-12, "axis %d: %g against %g", i, q[i], p[i]);
}

Test(agent_flowplan, rotation_is_rx_ry_rz) {
  double R[9];
  sp_fp_rotation(0.3, 0, 0, R);  // Rx alone: y' = cos y - sin z
  cr_expect(fabs(R[4] - cos(0.3)) < 1e-15 && fabs(R[5] + sin(0.3)) < 1e-15);
  sp_fp_rotation(0, 0.3, 0, R);  // Ry alone: x' = cos x + sin z
  cr_expect(fabs(R[0] - cos(0.3)) < 1e-15 && fabs(R[2] - sin(0.3)) < 1e-15);
  sp_fp_rotation(0.1, 0.2, 0.3, R);  // the product's corner: R[0][2] of Rx Ry Rz is sin(pitch)
  cr_expect(fabs(R[2] - sin(0.2)) < 1e-15);
  cr_expect(fabs(R[8] - cos(0.1) * cos(0.2)) < 1e-15);
}

/* 200 points of a 10 cm patch, their pixels after a known motion: the fit from zero finds it */
Test(agent_flowplan, rigid_fit_recovers_a_known_motion) {
  sp_camera_matrix cm;
  camera(&cm, 128);
  sp_mt19937 rng;
  sp_mt_seed(&rng, 7);
  enum { N = 200 };
  double P[3 * N], uv[2 * N], want[6] = {0.02, -0.01, 0.03, 0.04, -0.03, 0.05};
  for (int i = 0; i < N; i++) {
    double p[3] = {sp_mt_uniform(&rng, -0.05, 0.05), sp_mt_uniform(&rng, 0.75, 0.85), sp_mt_uniform(&rng, 0.05, 0.15)};
    memcpy(P + 3 * i, p, sizeof p);
    double q[3];
    move(want, p, q);
    sp_camera_project(&cm, q, &uv[2 * i], &uv[2 * i + 1]);
  }
  double x[6];
  double loss = sp_fp_rigid_fit(P, uv, N, &cm, 5, 1e-3, &rng, x);
  cr_expect(loss < 1e-10, "loss %g", loss);
  for (int k = 0; k < 6; k++) cr_expect(fabs(x[k] - want[k]) < 1e-5, "x[%d] %g, want %g", k, x[k], want[k]);
  cr_expect(fabs(sp_fp_rigid_loss(P, uv, N, &cm, x) - loss) < 1e-15, "the loss reported is the objective's");
  /* the objective's penalty: max(1, |t|) - 1 with nothing to reproject */
  double far[6] = {3, 0, 4, 0, 0, 0};
  cr_expect(fabs(sp_fp_rigid_loss(P, uv, 0, &cm, far) - 4.0) < 1e-12);
}

Test(agent_flowplan, ransac_keeps_the_similarity_and_drops_outliers) {
  enum { N = 130 };
  double a[2 * N], b[2 * N];
  int inl[N];
  sp_mt19937 rng;
  sp_mt_seed(&rng, 3);
  const double s = 1.05, th = 0.2, tx = 3, ty = -2;
  for (int i = 0; i < N; i++) {
    a[2 * i] = sp_mt_uniform(&rng, 20, 100);
    a[2 * i + 1] = sp_mt_uniform(&rng, 20, 100);
    b[2 * i] = s * (cos(th) * a[2 * i] - sin(th) * a[2 * i + 1]) + tx;
    b[2 * i + 1] = s * (sin(th) * a[2 * i] + cos(th) * a[2 * i + 1]) + ty;
    if (i >= 100) b[2 * i] += 5 + i % 7, b[2 * i + 1] -= 3;  // 30 outliers, pixels away
  }
  int m = sp_fp_ransac(a, b, N, 100, 0.5, &rng, inl);
  cr_assert_eq(m, 100, "%d inliers", m);
  for (int k = 0; k < m; k++) cr_expect_eq(inl[k], k);
}

/* the flow tests' scene, allocated: a fronto-parallel plane 0.5 m from the camera (S x S depth)
 * and a 20 x 20 px object patch at x 50-69, y 60-79 (mask) */
static void patch_scene(int S, uint8_t **maskp, float **depthp) {
  uint8_t *mask = *maskp = calloc((size_t)S * S, 1);
  float *depth = *depthp = malloc(sizeof(float) * S * S);
  cr_assert(mask && depth);
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) {
      depth[y * S + x] = 0.5f;
      mask[y * S + x] = (uint8_t)(x >= 50 && x < 70 && y >= 60 && y < 80);
    }
}

/* their flow plan: the defaults with 10 restarts */
static sp_fp_ws *patch_ws(sp_fp_cfg *cfg) {
  char err[256] = "";
  sp_fp_cfg_default(cfg);
  cfg->restarts = 10;
  sp_fp_ws *ws = sp_fp_ws_new(cfg, err);
  cr_assert(ws, "%s", err);
  return ws;
}

/* a 128 px view of a table plane with a 20 x 20 px object patch; every flow moves the patch 2 px
 * right and nothing else: the grasp point lies on the patch at the plane's depth and each subgoal
 * projects 2 px further right */
Test(agent_flowplan, a_translating_patch_gives_translating_subgoals) {
  enum { S = 128, NF = 7 };
  sp_camera_matrix cm;
  camera(&cm, S);
  uint8_t *mask;
  float *depth, *flow = calloc((size_t)S * S * 2, sizeof(float));
  patch_scene(S, &mask, &depth);
  for (int y = 58; y < 82; y++)
    for (int x = 48; x < 96; x++) flow[2 * (y * S + x)] = 2.f;  // the patch, wherever it goes
  const float *flows[NF];
  for (int f = 0; f < NF; f++) flows[f] = flow;
  sp_fp_cfg cfg;
  char err[256] = "";
  sp_fp_ws *ws = patch_ws(&cfg);
  sp_fp_plan p, q;
  cr_assert_eq(sp_fp_run(&cfg, ws, mask, depth, S, S, &cm, flows, NULL, NF, 11, &p, err), 0, "%s", err);
  cr_expect_eq(p.nflow, NF);
  cr_expect(!p.mask_empty);
  double u0, v0;
  double z = sp_camera_project(&cm, p.grasp, &u0, &v0);
  cr_expect(fabs(z - 0.5) < 1e-9, "grasp depth %g", z);
  cr_expect(u0 > 55 && u0 < 65 && v0 > 65 && v0 < 75, "grasp pixel (%g, %g) not at the patch's centre", u0, v0);
  for (int k = 1; k <= NF; k++) {
    double u, v;
    sp_camera_project(&cm, p.sub[k], &u, &v);
    cr_expect(fabs(u - (u0 + 2 * k)) < 0.05 && fabs(v - v0) < 0.05, "subgoal %d at (%g, %g), want (%g, %g)", k, u, v,
              u0 + 2 * k, v0);
    cr_expect(p.inliers[k - 1] == cfg.samples, "flow %d: %d inliers", k - 1, p.inliers[k - 1]);
  }
  /* seeded: the same call gives the same plan */
  cr_assert_eq(sp_fp_run(&cfg, ws, mask, depth, S, S, &cm, flows, NULL, NF, 11, &q, err), 0);
  cr_expect(!memcmp(&p, &q, sizeof p), "two runs with one seed differ");
  /* an empty mask: AVDC samples the background, and says so */
  memset(mask, 0, S * S);
  cr_assert_eq(sp_fp_run(&cfg, ws, mask, depth, S, S, &cm, flows, NULL, 1, 11, &q, err), 0);
  cr_expect(q.mask_empty);
  /* too many flows are refused */
  cr_expect_eq(sp_fp_run(&cfg, ws, mask, depth, S, S, &cm, flows, NULL, SP_FP_MAX_FLOWS + 1, 11, &q, err), -1);
  cr_expect(strstr(err, "flows") != NULL, "%s", err);
  sp_fp_ws_free(ws);
  free(mask);
  free(depth);
  free(flow);
}

/* the occlusion test (fb_px > 0): an "arm" covers 60 % of a still patch in the next frame and
 * carries those points' forward flow (-6, +4) px, while the backward flow is zero everywhere (the
 * arm's pixels in the next frame come from the background). Without the test RANSAC keeps the
 * arm's motion, the majority; with it those points sit out the fit, the patch stays, and they
 * count again in the next flow, where nothing moves */
Test(agent_flowplan, the_occlusion_test_keeps_a_passing_arm_out_of_the_fit) {
  enum { S = 128, NF = 2 };
  sp_camera_matrix cm;
  camera(&cm, S);
  uint8_t *mask;
  float *depth, *arm = calloc((size_t)S * S * 2, sizeof(float)), *still = calloc((size_t)S * S * 2, sizeof(float));
  patch_scene(S, &mask, &depth);
  for (int y = 59; y < 81; y++)
    for (int x = 49; x < 62; x++) arm[2 * (y * S + x)] = -6.f, arm[2 * (y * S + x) + 1] = 4.f;
  const float *flows[NF] = {arm, still}, *back[NF] = {still, still};
  sp_fp_cfg cfg;
  char err[256] = "";
  sp_fp_ws *ws = patch_ws(&cfg);
  sp_fp_plan p, q;
  double u0, v0, u, v;
  /* AVDC's: the arm's motion wins */
  cr_assert_eq(sp_fp_run(&cfg, ws, mask, depth, S, S, &cm, flows, NULL, NF, 5, &p, err), 0, "%s", err);
  sp_camera_project(&cm, p.grasp, &u0, &v0);
  sp_camera_project(&cm, p.sub[1], &u, &v);
  cr_expect(fabs(u - u0 + 6) < 0.1 && fabs(v - v0 - 4) < 0.1, "without the test: subgoal 1 moved (%g, %g) px",
            u - u0, v - v0);
  cr_expect_eq(p.hidden[0], 0);
  /* with the test the patch stays, and the hidden points rejoin */
  cfg.fb_px = 1;
  cr_assert_eq(sp_fp_run(&cfg, ws, mask, depth, S, S, &cm, flows, back, NF, 5, &q, err), 0, "%s", err);
  for (int k = 1; k <= NF; k++) {
    sp_camera_project(&cm, q.sub[k], &u, &v);
    cr_expect(fabs(u - u0) < 0.05 && fabs(v - v0) < 0.05, "with the test: subgoal %d moved (%g, %g) px", k, u - u0,
              v - v0);
  }
  cr_expect(q.hidden[0] > cfg.samples / 2 && q.hidden[0] < cfg.samples * 3 / 4, "%d hidden", q.hidden[0]);
  /* a few visible points at the arm's edge took part of its flow and are RANSAC outliers */
  cr_expect(q.inliers[0] <= cfg.samples - q.hidden[0] && q.inliers[0] > cfg.samples - q.hidden[0] - 10, "%d fit",
            q.inliers[0]);
  cr_expect_eq(q.hidden[1], 0);
  cr_expect_eq(q.inliers[1], q.inliers[0] + q.hidden[0], "flow 1: %d points fit", q.inliers[1]);
  /* every point hidden: the object stays, nothing is dropped */
  const float *all_arm[NF] = {arm, arm};
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) arm[2 * (y * S + x)] = -6.f, arm[2 * (y * S + x) + 1] = 4.f;
  cr_assert_eq(sp_fp_run(&cfg, ws, mask, depth, S, S, &cm, all_arm, back, NF, 5, &q, err), 0, "%s", err);
  cr_expect_eq(q.hidden[0], cfg.samples);
  cr_expect_eq(q.inliers[0], 0);
  cr_expect(!memcmp(q.sub[2], q.grasp, sizeof q.grasp), "the object moved with every point hidden");
  /* the test needs the backward flows */
  cr_expect_eq(sp_fp_run(&cfg, ws, mask, depth, S, S, &cm, flows, NULL, NF, 5, &q, err), -1);
  cr_expect(strstr(err, "backward") != NULL, "%s", err);
  sp_fp_ws_free(ws);
  free(mask);
  free(depth);
  free(arm);
  free(still);
}
