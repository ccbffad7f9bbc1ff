/* eval.h: the benchmark harness: run an agent over tasks x cameras x seeds with AVDC's protocol.
 *
 * Protocol (AVDC, experiment/benchmark_mw.py): a frame is rendered at reset and after every step;
 * once the task reports success the loop continues until 10 successful steps or the first later
 * non-success step; an episode succeeds iff it produced <= 500 frames.
 *
 * Trust (docs/evaluation.md): every random draw of an episode comes from generators seeded from
 * (task, camera, seed, purpose); records are appended to DIR/episodes.jsonl as episodes finish, so
 * a run can be resumed (--resume), sharded (--shard I/N) and merged (sp eval --merge). */
#ifndef SP_EVAL_EVAL_H
#define SP_EVAL_EVAL_H

#include <stdint.h>

#include "agent/agent.h"
#include "sim/env.h"

#define SP_EVAL_MAX_SEEDS 100000


typedef struct {
  const char *agent;
  const char *checkpoint;       // NULL: the agent's committed default (sp_agent_api.default_ckpt), if any
  const char *policy_checkpoint;  // agents with a video model and a policy: the policy (NULL: default)
  const sp_vlm_config *vlm;     // agents that use one: the VLM (NULL: offline)
  double guidance;              // agents with a video model: its classifier-free guidance (< 0: theirs)
  int action_steps;             // agents with a policy: actions executed per chunk (0: theirs, H / 2)
  int goal_steps;               // agents with a policy: the matcher's hard switch (0: its default, 20)
  int episode_noise;            // agents with a policy: one DDIM noise draw for every chunk of a plan
  sp_grasp grasp;               // the expert agent's grasp (sim/env.h)
  double flow_check;            // the AVDC agents: the occlusion test's tolerance, px (0: off, AVDC's)
  int tasks[SP_NTASK], ntask;
  int cams[SP_NCAMERA], ncam;
  long *seeds;                  // (nseed)
  int nseed;
  const char *out_dir;
  sp_scene_source source;
  const char *assets;
  int width, height;            // render size (320 x 240)
  int gif;                      // write DIR/gifs/<task>_<camera>_<seed>.gif
  long *gif_seeds;              // (ngif_seed) seeds that get a GIF; NULL: every seed
  int ngif_seed;
  int render_fast;              // shadows and reflections off (sp_render_quality)
  int jobs;
  int resume;
  int shard_i, shard_n;         // run episodes with index % n == i
  double render_timeout;        // seconds; a render that takes longer fails the episode
} sp_eval_config;

void sp_eval_config_default(sp_eval_config *c);
/* the values alone, before anything is loaded or created: a known agent, something to run, jobs
 * 1..64, a valid shard, a render size the renderer takes (even when nothing will be rendered) and
 * a positive render timeout. Returns 0, or -1 with err naming the option. */
int sp_eval_config_check(const sp_eval_config *c, char *err);

/* one finished episode */
typedef struct {
  int task, cam;
  long seed;
  int success, steps, frames;
  double hand_init[3], obj_init[3], goal[3];
  double rand_vec[6];
  int rand_vec_len;
  int nan_count, warn_count;
  char error[256];              // empty when the episode ran to its end
  sp_agent_timing time;
  sp_agent_events events;
} sp_episode;

/* run the evaluation into cfg->out_dir; returns 0, or -1 with err. An out_dir that holds
 * episodes is refused unless cfg->resume, and then every record there must belong to this
 * configuration (its tasks, cameras, seeds and shard) and appear once. */
int sp_eval_run(const sp_eval_config *cfg, char *err);
/* merge shard directories into out_dir; refuses shards of different configurations, records
 * outside their shard or twice, and an out_dir that already holds episodes */
int sp_eval_merge(const char **dirs, int ndir, const char *out_dir, char *err);

/* sp report: evaluation runs (and training logs) as one self-contained HTML page (docs/report.md) */
typedef struct {
  const char **runs;            // (nrun) sp eval output directories
  int nrun;
  const char **labels;          // (nlabel) row names; missing ones: the directory's name
  int nlabel;
  const char **train_logs;      // (ntrain) sp train output directories or their train.jsonl
  int ntrain;
  const char *out;              // report.html
  long gif_seed;                // the episodes shown; -1: each run's smallest seed with a GIF
  int gif_step, gif_scale;      // thumbnails: every gif_step-th frame, 1/gif_scale size (4, 2)
  const char *title;
} sp_report_config;

void sp_report_config_default(sp_report_config *c);
/* read the runs and logs and write c->out atomically; 0, or -1 with err naming what was wrong */
int sp_report_write(const sp_report_config *c, char *err);

/* sp videoeval: video checkpoints against the expert's own rollout on held-out episodes
 * (docs/videoeval.md). Per episode (task, camera, seed): the scripted expert's rollout from the
 * reset state, recorded as the models' dataset records a demonstration, is the ground truth; its
 * frames at the clip indices of the video job (NumPy's linspace(0, n - 1, F + 1)) are the true
 * video. Each checkpoint imagines F frames from frame 0 with the rule plan of the reset state and
 * noise seeded as `sp generate` seeds it (same command, same video). Scores per frame 1..F: PSNR
 * (RGB, 8 bit) and SSIM (grey); the gripper error: the tcp's pixel position found by the gripper
 * locator in a generated frame against its true projection in the expert's frame. The locator is
 * k-nearest-neighbour regression over the frames of a dataset (same task and camera, the frames'
 * recorded tcp pixels, whole-frame squared difference); its own error on the true frames is
 * reported beside it. */
typedef struct {
  const char **ckpts;           // (nckpt) video checkpoints, one row each
  int nckpt;
  const char **labels;          // (nlabel) row names; missing ones: the checkpoint's file name
  int nlabel;
  const char *data;             // the locator's dataset (sp collect, the models' frame size)
  int tasks[SP_NTASK], ntask;
  int cams[SP_NCAMERA], ncam;
  long *seeds;
  int nseed;
  sp_scene_source source;
  const char *assets;
  int steps;                    // DDIM steps (20)
  float guidance;               // -1: each checkpoint's validation value
  int knn;                      // locator neighbours (5)
  int resume;
  const char *out;              // directory: episodes.jsonl, results.json, results.md, strips/
} sp_videoeval_config;

void sp_videoeval_config_default(sp_videoeval_config *c);
int sp_videoeval_run(const sp_videoeval_config *c, char *err);

/* parse "0-24", "3", "0-4,10,12-13" into seeds (malloc'd); returns count or -1 */
int sp_parse_seeds(const char *spec, long **out, char *err);

#endif
