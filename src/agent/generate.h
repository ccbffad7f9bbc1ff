/* generate.h: `sp generate`: one imagined video of an episode's first frame (paper, "Spatial
 * Conditioned Embodied Video Generation"): the spatial plan table of the reset state (rule
 * planner, or a plan file), the video model's conditions for its variant (task text, plan table,
 * tcp/object/goal vector), DDIM with classifier-free guidance from noise seeded by --seed. */
#ifndef SP_AGENT_GENERATE_H
#define SP_AGENT_GENERATE_H

#include "sim/env.h"

typedef struct {
  const char *ckpt;          // video checkpoint (NULL: the committed one, checkpoints/SP_CKPT_VIDEO)
  int task, cam;
  long seed;                 // the episode's initial state; also seeds the noise and the mask
  sp_scene_source source;
  const char *assets;
  const char *plan;          // "rule" (default), or a plan file in the text format (docs/plan.md)
  int steps;                 // DDIM steps (20)
  float guidance;            // classifier-free guidance w (-1: the checkpoint's validation value)
  double mask;               // 0..0.9: hide a random rectangle of this area fraction of the first frame
  const char *out;           // output directory
} sp_generate_cfg;

void sp_generate_cfg_default(sp_generate_cfg *c);
/* writes OUT/frame_0.png (the condition) .. frame_F.png, OUT/video.gif, OUT/strip.png (the
 * frames side by side, x2), OUT/plan.txt and OUT/index.html (strip, GIF, plan table, settings).
 * 0, or -1 with err. */
int sp_generate_run(const sp_generate_cfg *c, char *err);

#endif
