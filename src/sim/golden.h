/* golden.h: the pinned conventions of the benchmark images and physics, shared by the tool that
 * writes tests/fixtures/golden (tools/golden.c) and the test that checks them (tests/test_golden.c).
 *
 * Thumbnail: seed 0 after reset, 320x240 render at full quality, AVDC's centre crop (rows 56..183,
 * cols 96..223), box-averaged to 32x32. Trajectory: the expert from seed 0, the first 18 observation
 * values at the listed steps. */
#ifndef SP_SIM_GOLDEN_H
#define SP_SIM_GOLDEN_H

#include <stdint.h>

#include "sim/env.h"

#define SP_GOLDEN_W 320
#define SP_GOLDEN_H 240
#define SP_GOLDEN_CROP_X 96
#define SP_GOLDEN_CROP_Y 56
#define SP_GOLDEN_CROP 128
#define SP_GOLDEN_THUMB 32
#define SP_GOLDEN_NSTEP 4
static const int sp_golden_steps[SP_GOLDEN_NSTEP] = {0, 10, 30, 60};

/* thumb: (32 x 32 x 3); returns 0 or -1 with err */
int sp_golden_thumbnail(const sp_env_model *em, int cam, uint8_t *thumb, char *err);
/* obs18: (SP_GOLDEN_NSTEP x 18) */
int sp_golden_trajectory(const sp_env_model *em, double *obs18, char *err);

#endif
