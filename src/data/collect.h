/* collect.h: expert (and perturbed) rollouts of the benchmark tasks into an HDF5 dataset.
 *
 * A physics-only dry run per (task, seed) plans the run first (which seeds succeed, how many
 * frames); failed episodes are never rendered. Each episode: reset with AVDC's seeding, the
 * scripted expert under AVDC's loop (a frame at reset and after every step; after the first
 * success, until 10 successful steps or the first later failure; success iff <= 500 frames), a
 * render of every frame (RGB, metric depth, segmentation) cropped to the task's window and
 * resized to sz, and the spatial annotations of dataset.h.
 *
 * Interruption: finished episodes go to OUT.parts/ as single-episode files (atomic renames); the
 * dataset OUT is rebuilt from them at checkpoints and at the end (atomic rename), then the parts
 * are removed. `resume` continues a run from OUT and OUT.parts. Every random draw comes from
 * generators seeded with sp_seed_derive(task, camera, seed, purpose). */
#ifndef SP_DATA_COLLECT_H
#define SP_DATA_COLLECT_H

#include <signal.h>
#include <stdint.h>

#include "data/dataset.h"
#include "data/fine.h"
#include "sim/env.h"
#include "sim/render.h"

#define SP_COLLECT_MAX_CROPS 64
#define SP_EVAL_SEED_LAST 24   // evaluation seeds are 0..24 (AVDC); demonstrations never use them

/* a crop window of the render; task or cam -1 matches any */
typedef struct {
  int task, cam;
  int row, col, h, w;
} sp_crop;

/* AVDC's centre crop of the 320 x 240 render: rows 56..183, cols 96..223 */
#define SP_CROP_AVDC_ROW 56
#define SP_CROP_AVDC_COL 96
#define SP_CROP_AVDC_SIZE 128

/* the crop window for (task, cam): the last matching override, else the built-in table (AVDC's
 * centre crop for every task and camera, scaled to the render size) */
sp_crop sp_crop_lookup(int task, int cam, int render_w, int render_h, const sp_crop *over, int nover);
/* parse "TASK/CAMERA=ROW,COL,H,W;..." (TASK or CAMERA may be '*'); returns count or -1 with err */
int sp_crop_parse(const char *spec, sp_crop *out, int cap, char *err);

/* crop (row, col, h, w) of a w0-wide image and resize to sz x sz. rgb: area average; depth and
 * mask: the source pixel under each target pixel centre (no blending across edges) */
void sp_crop_resize_rgb(const uint8_t *src, int w0, const sp_crop *c, int sz, uint8_t *dst);
void sp_crop_resize_f32(const float *src, int w0, const sp_crop *c, int sz, float *dst);
void sp_crop_resize_u8(const uint8_t *src, int w0, const sp_crop *c, int sz, uint8_t *dst);

/* the fovy (degrees) of camera cam that renders the centred square crop window c of a
 * render_h-high view directly: the same pinhole camera with a narrower field (a sz x sz render
 * then equals the crop resized) */
double sp_crop_fovy(const sp_env_model *em, int cam, const sp_crop *c, int render_h);

/* intrinsics of the stored image from the render's K: crop then scale about pixel centres */
void sp_crop_intrinsics(const double K[9], const sp_crop *c, int sz, double out[9]);

/* the bodies whose geoms (their subtrees, groups 0-2) make up a task's mask, e.g. "door_link" */
const char *sp_mask_bodies(int task);

/* a policy other than the scripted expert, whose rollouts `sp collect --agent` records (the agent
 * layer makes one from an agent: agent/agent.h). One state per worker, made by `create`; `begin`
 * after each reset, `act` per step. Its actions are flagged as the expert's only when `expert` is
 * set (policy training reads those alone). */
typedef struct {
  const char *name;
  int expert;
  void *ctx;
  void *(*create)(void *ctx, char *err);
  void (*destroy)(void *state);
  int (*begin)(void *state, const sp_env *e, int cam, long seed, char *err);
  int (*act)(void *state, const sp_env *e, const double obs[SP_OBS_DIM], double action[SP_ACT_DIM], char *err);
} sp_collect_policy;

typedef struct {
  int tasks[SP_NTASK], ntask;
  int cams[SP_NCAMERA], ncam;
  const long *seeds;
  int nseed;
  const char *out;               // FILE.h5
  sp_scene_source source;
  const char *assets;
  int size;                      // stored image side (128)
  int render_w, render_h;        // 320 x 240
  int render_crop;               // 1 (default): render the (centred, square) crop window directly
                                 // at size; 0: render render_w x render_h, then crop and resize
  int shadow_size;               // > 0: override the scene's shadow map size (4096); default 1024
  int msaa;                      // >= 0: override the scene's offscreen samples (4); -1 keeps it
  int rgb_only;                  // 1: render RGB only, depth and mask left zero (sp_collect_episode
                                 // for agents that need the frames alone; never a dataset)
  sp_crop crops[SP_COLLECT_MAX_CROPS];
  int ncrop;
  int demos;                     // > 0: keep the first N successful seeds per (task, camera)
                                 // (default 5, AVDC's); 0 or more than the seeds: every seed
  int recovery;                  // recovery episodes per (task, camera)
  int recovery_tries;            // attempts per kept recovery episode before giving up (3)
  int jobs;
  int resume;
  int deflate;                   // 0..9
  double checkpoint_s;           // rebuild OUT from the parts this often (seconds; 0: only at the end)
  int max_steps;                 // cap on env steps per episode (0: AVDC's 500-frame rule)
  int keep_failures;             // keep expert episodes that failed (flagged success 0)
  int allow_eval_seeds;          // permit seeds 0..24 (with a warning)
  sp_grasp grasp;                // the expert's grasp (sim/env.h; stored in the dataset's provenance,
                                 // so oracle-policy rolls out its goals with the same expert)
  sp_fine_cfg fine;
  const sp_collect_policy *policy;  // NULL: the scripted expert. Else every (task, camera, seed) is
                                    // rolled out once, rendered (no dry run: the outcome depends on
                                    // the camera), and kept when it succeeds (or --keep-failures);
                                    // --demos must be 0 and --recovery 0
  int takeover_min, takeover_max;   // with policy, > 0: the scripted expert takes over from the
                                    // policy at a step drawn per episode uniformly in [min, max]
                                    // (the episode's own generator) and finishes the episode; the
                                    // policy's steps are flagged as not the expert's, so training
                                    // reads the expert's recovery from the states the policy drove
                                    // into (DAgger's data, HG-DAgger's intervention). 0: never
  volatile sig_atomic_t *stop;   // when set (e.g. by SIGINT): finish running episodes, checkpoint, return
} sp_collect_config;

void sp_collect_config_default(sp_collect_config *c);
/* the values alone, before any file is touched: sizes, counts, ranges, every crop window of the
 * run fitting the render (centred squares when rendered directly), seeds outside the evaluation
 * range unless allowed. Returns 0, or -1 with err naming the option. */
int sp_collect_config_check(const sp_collect_config *c, char *err);

/* summary of a run */
typedef struct {
  int episodes_done;     // kept this run
  int episodes_failed;   // expert failures skipped
  int recovery_kept, recovery_tries;
  int skipped_resume;    // already present
  long frames;
  double seconds, render_s, physics_s, write_s;
  int interrupted;
} sp_collect_stats;

/* run the collection; 0, or -1 with err (finished episodes are kept: see above) */
int sp_collect_run(const sp_collect_config *cfg, sp_collect_stats *st, char *err);

/* the view a model was trained on: the render settings (and the expert's grasp) of its dataset
 * from a checkpoint's data provenance JSON ("collect": {"compat": ...}), into v (collect's
 * defaults elsewhere, size = frame). 1 found, 0 absent (defaults, with a warning naming `what`),
 * -1 with err when the model cannot be served by rendering the crop window directly
 * (--full-render or --crop data), the frame size differs, or the grasp is unknown. */
int sp_collect_view_from_json(const char *data_json, int frame, const char *what, sp_collect_config *v, char *err);
/* render e's camera as a dataset of config v records it: the crop window at v->size (the
 * camera's field narrowed for the call and restored); any of rgb, depth, seg may be NULL (as
 * sp_render) */
struct sp_renderer;
int sp_collect_render_view(struct sp_renderer *r, const sp_env *e, int cam, const sp_collect_config *v, uint8_t *rgb,
                           float *depth, int32_t *seg, char *err);

/* the pinhole camera of that view (the crop window rendered directly at v->size): pixel = K (R p + t) */
void sp_collect_view_camera(const sp_env *e, int cam, const sp_collect_config *v, sp_camera_matrix *cm);

/* roll out one episode into d (allocated for SP_MAX_PATH + 1 frames by the caller); exposed for
 * tests. rend may be NULL to skip images (they are left zero). attempt < 0: expert demonstration;
 * else recovery attempt number (perturbed). Returns 0 or -1 with err. */
struct sp_renderer;
int sp_collect_episode(const sp_collect_config *cfg, sp_env *e, struct sp_renderer *rend,
                       const int *mask_geoms, int nmask, int cam, long seed, int attempt,
                       sp_demo *d, double *t_render, char *err);
/* the same acting by cfg->policy with its worker state pstate (cfg->policy NULL: the expert) */
int sp_collect_episode_by(const sp_collect_config *cfg, sp_env *e, struct sp_renderer *rend,
                          const int *mask_geoms, int nmask, int cam, long seed, int attempt, void *pstate,
                          sp_demo *d, double *t_render, char *err);

/* the expert from start's current state on (copied into e, an env of the same scene:
 * sp_env_copy_state) until the episode's end by AVDC's rule, counting start's frames: frame 0 of
 * d is start's state. The frames oracle-policy-r replans with. */
int sp_collect_episode_from(const sp_collect_config *cfg, sp_env *e, struct sp_renderer *rend, int cam,
                            const sp_env *start, sp_demo *d, double *t_render, char *err);

/* the geom ids of the task's mask in this scene (returns count or -1 with err); ids[] holds
 * up to cap */
int sp_mask_geoms(const sp_env_model *em, int *ids, int cap, char *err);

#endif
