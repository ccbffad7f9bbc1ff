/* goalgen.h: `sp imagine`: an imagined goal set (models/goalset.h) from a dataset: for each
 * training demonstration (the policy job's split: the highest seed of each task and camera held
 * out, recovery episodes left out), per_demo videos of the video model, each from a demonstration
 * frame with the conditions the SP agent gives the model at that state (the rule plan and the
 * tcp/object/goal vector from the dataset's stored positions, the task text): the first from the
 * episode's first frame, the others from random starts, the clip indices the video job would use
 * (models/video_train.h). The policy job can then draw its goal frames from these videos
 * (`sp train policy --imagined`), which is what the policy meets in the SP loop.
 *
 * Noise and starts are seeded from (seed, episode, video): the file is the same for any jobs. */
#ifndef SP_AGENT_GOALGEN_H
#define SP_AGENT_GOALGEN_H

#include <stdint.h>

typedef struct {
  const char *data;    // the dataset (sp collect), frames of the video model's side
  const char *ckpt;    // video checkpoint (NULL: the committed one)
  const char *out;     // the goal set file (safetensors)
  int per_demo;        // videos per demonstration (2)
  int holdout;         // held-out demonstrations per (task, camera), as the policy job's (1)
  int steps;           // DDIM steps (20, as the agents)
  float guidance;      // classifier-free guidance (-1: the checkpoint's validation value)
  uint32_t seed;       // starts and noise (0)
  int jobs;            // worker threads (2)
  int limit;           // at most this many demonstrations (0: all)
} sp_goalgen_cfg;

void sp_goalgen_cfg_default(sp_goalgen_cfg *c);
/* 0, or -1 with err (a missing or foreign file, frames of another size than the model's) */
int sp_goalgen_run(const sp_goalgen_cfg *c, char *err);

#endif
