/* dataset.h: demonstration datasets in HDF5 (layout: docs/dataset.md).
 *
 * A file holds episodes at /episodes/<task>/<camera>/<name> (name seed_<seed> for expert
 * demonstrations, recovery_<attempt> for perturbed ones). Each episode group holds the arrays of
 * SP_DEMO_ARRAYS below plus fine_indices, and attributes (identity, camera, crop, plan text).
 * The root carries format "sp-dataset", format_version, the collection config (JSON), the seeds
 * it holds and the action statistics used to normalise actions.
 *
 * Model vs data: sp_demo is one episode in memory, one buffer carved into the named arrays by
 * the X-macro table, so allocation, writing, reading and checking cannot drift apart. */
#ifndef SP_DATA_DATASET_H
#define SP_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "plan/plan.h"
#include "sim/env.h"

#define SP_DATA_FORMAT "sp-dataset"
#define SP_DATA_VERSION 1
#define SP_DATA_NTARGET 2   // target points: 0 the object (obs[4:7]), 1 the goal (obs[36:39])
#define SP_DATA_NGRIP 3     // gripper points: 0 tcp centre, 1 right pad, 2 left pad
#define SP_DATA_MAX_SIZE 512

/* the per-episode arrays: X(name, C type, HDF5 kind, rows, d1, d2, d3, description).
 * rows: F = frames (n), S = steps (n - 1). Extra dims (0 = none) may use sz (image side). */
#define SP_DEMO_ARRAYS(X)                                                                       \
  X(rgb, uint8_t, SP_H5_U8, F, sz, sz, 3, "RGB frames, cropped and resized (n x sz x sz x 3)") \
  X(depth, float, SP_H5_F32, F, sz, sz, 0, "metric depth in metres along the optical axis")    \
  X(mask, uint8_t, SP_H5_U8, F, sz, sz, 0, "255 on the task-relevant object, else 0")           \
  X(obs, double, SP_H5_F64, F, SP_OBS_DIM, 0, 0, "the 39-value Meta-World observation")         \
  X(actions, double, SP_H5_F64, S, SP_ACT_DIM, 0, 0, "action taken at frame t (raw, unclipped)") \
  X(expert, uint8_t, SP_H5_U8, S, 0, 0, 0, "1 when actions[t] came from the expert")           \
  X(ee_pos, double, SP_H5_F64, F, 3, 0, 0, "end effector (tcp centre) in the world, metres")    \
  X(finger_pos, double, SP_H5_F64, F, 2, 3, 0, "right and left finger pads in the world")       \
  X(target_pos, double, SP_H5_F64, F, SP_DATA_NTARGET, 3, 0, "object and goal in the world")    \
  X(target_px, float, SP_H5_F32, F, SP_DATA_NTARGET, 2, 0, "targets in the stored image (u, v)") \
  X(gripper_px, float, SP_H5_F32, F, SP_DATA_NGRIP, 2, 0, "tcp, right, left pad in the image")   \
  X(distance, float, SP_H5_F32, F, SP_DATA_NGRIP, SP_DATA_NTARGET, 0, "gripper-target metres")  \
  X(fine_distance, double, SP_H5_F64, F, 0, 0, 0, "min gripper-target distance (fine)")          \
  X(success, uint8_t, SP_H5_U8, F, 0, 0, 0, "the task's success flag at each frame")            \
  X(fine_flag, uint8_t, SP_H5_U8, F, 0, 0, 0, "1 inside a fine (close-contact) phase")

enum { SP_H5_U8 = 0, SP_H5_F32, SP_H5_F64, SP_H5_I32 };

/* one episode */
typedef struct {
  /* identity */
  int task, cam;
  long seed;          // initial-state seed (AVDC seeding)
  int recovery;       // 1 for a perturbed (recovery) episode
  int attempt;        // recovery attempt index; -1 for expert demonstrations
  int n;              // frames (1 at reset + 1 per step); steps = n - 1
  int size;           // stored image side (sz)
  int ep_success;     // the AVDC rule on the whole episode (attribute 'success')
  int nfine;          // fine sample count
  /* camera of the stored image: pixel = K (R p + t) (sim/render.h conventions) */
  double K[9], R[9], tvec[3], cam_pos[3];
  int crop[4];        // row, col, height, width of the crop window in the render
  int render_w, render_h;
  int render_crop;    // 1: the crop window was rendered directly at sz x sz
  char plan[SP_PLAN_TEXT_MAX];   // spatial plan table text ("" when none)
  char perturb[160];  // how a recovery episode was perturbed ("" for demonstrations)
  /* arrays, one allocation sized for cap frames */
#define SP_DEMO_FIELD(name, ctype, kind, rows, d1, d2, d3, doc) ctype *name;
  SP_DEMO_ARRAYS(SP_DEMO_FIELD)
#undef SP_DEMO_FIELD
  int32_t *fine_idx;  // (nfine)
  int cap;            // frames the buffer holds
  void *buf;
} sp_demo;

/* allocate for up to cap frames of sz x sz images; 0 or -1 with err */
int sp_demo_alloc(sp_demo *d, int cap, int sz, char *err);
void sp_demo_free(sp_demo *d);
/* "seed_1000" or "recovery_3" */
void sp_demo_name(const sp_demo *d, char *buf, size_t cap);

/* ---- writing ---- */

/* root metadata written by sp_dataset_merge */
typedef struct {
  const char *config_json;  // the collection config (compared on --resume)
  const char *scene_source; // "builtin" or "metaworld"
  int size;
} sp_dataset_meta;

/* write one episode as a single-episode part file: PATH.tmp, then rename. deflate 0..9 */
int sp_demo_save_part(const char *path, const sp_demo *d, const sp_dataset_meta *meta, int deflate,
                      char *err);

/* build OUT from the episodes of `old` (an existing dataset, may be NULL) and the part files,
 * part episodes replacing old ones of the same name: write OUT.tmp, fsync, rename. Root
 * attributes: meta, the demonstration seeds held, the recovery count, action min/max. */
int sp_dataset_merge(const char *out, const char *old, const char **parts, int nparts,
                     const sp_dataset_meta *meta, char *err);

/* ---- reading ---- */

typedef struct sp_dataset sp_dataset;

/* the small per-episode arrays, read at open */
typedef struct {
  int task, cam, recovery, attempt, n, success, nfine;
  long seed;
  char path[256];      // "/episodes/<task>/<camera>/<name>"
  double *actions;     // (n - 1 x 4)
  double *ee_pos;      // (n x 3)
  double *grip;        // (n) the gripper opening, obs[SP_OBS_GRIP]
  uint8_t *expert;     // (n - 1) 1 where the action came from the expert
  int32_t *fine_idx;   // (nfine)
} sp_dataset_ep;

/* open and check format and version; a foreign or corrupt file is a clear error. NULL on error. */
sp_dataset *sp_dataset_open(const char *path, char *err);
void sp_dataset_close(sp_dataset *ds);
int sp_dataset_count(const sp_dataset *ds);
int sp_dataset_size(const sp_dataset *ds);       // image side
const sp_dataset_ep *sp_dataset_episode(const sp_dataset *ds, int i);
const char *sp_dataset_config_json(const sp_dataset *ds);
/* action statistics stored in the file (min, max per dimension) */
void sp_dataset_action_stats(const sp_dataset *ds, double amin[SP_ACT_DIM], double amax[SP_ACT_DIM]);
/* the initial-state seeds of the episodes held (ascending); returns the count */
int sp_dataset_seeds(const sp_dataset *ds, const long **seeds);
/* index of an episode, or -1 */
int sp_dataset_find(const sp_dataset *ds, int task, int cam, const char *name);
/* read everything of episode i into d (allocated here; sp_demo_free it) */
int sp_dataset_load(sp_dataset *ds, int i, sp_demo *d, char *err);
/* read k frames (indices idx) of episode i; any output may be NULL.
 * rgb (k x sz x sz x 3), depth (k x sz x sz), mask (k x sz x sz) */
int sp_dataset_read_frames(sp_dataset *ds, int i, const int *idx, int k, uint8_t *rgb, float *depth,
                           uint8_t *mask, char *err);

/* the collection config (JSON text) recorded in a part file; 0 or -1 with err */
int sp_dataset_part_config(const char *path, char *buf, size_t cap, char *err);

/* read every array of a dataset or part file back, so that a damaged compressed block is found
 * before the file is reused (sp collect --resume copies blocks without inflating them); 0, or -1
 * with err naming the file and the array */
int sp_dataset_verify(const char *path, char *err);

/* is PATH an sp dataset of this version? 1 yes, 0 no (err says why) */
int sp_dataset_check(const char *path, char *err);

#endif
