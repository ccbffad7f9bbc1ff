/* task.h (internal to src/sim): the per-task facts of Meta-World v2 as AVDC ran it.
 * Numbers are from ../shared/spec/metaworld-tasks.md, section 2. */
#ifndef SP_SIM_TASK_H
#define SP_SIM_TASK_H

typedef struct {
  const char *name;          // "door-open"
  const char *scene;         // top-level MJCF file
  double hand_base[3];       // float32 in Meta-World
  double noise_lo[3], noise_hi[3];  // AVDC hand noise (one draw per axis)
  int noise_extra;           // further draws discarded (door-close 3, assembly 2)
  int rv_len;                // length of the random reset vector
  double rv_lo[6], rv_hi[6]; // _random_reset_space (float32-rounded when drawn)
  double hand_low[3], hand_high[3];
  const char *target_site;   // site whose site_xpos is overwritten with the target each step
  const char *target_site2;  // faucet: the other goal site, parked at (10,10,10)
} sp_task_spec;

extern const sp_task_spec sp_task_specs[];

#endif
