/* cmd_collect.c: sp collect: expert demonstrations (or an agent's rollouts, --agent) into an HDF5
 * dataset (docs/dataset.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/scene_args.h"
#include "agent/agent.h"
#include "core/log.h"
#include "data/collect.h"
#include "eval/eval.h"

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
  g_stop = 1;
  signal(sig, SIG_DFL);  // a second signal ends the process at once
}

int sp_cmd_collect(int argc, char **argv) {
  sp_collect_config cfg;
  sp_collect_config_default(&cfg);
  const char *tasks = "all", *cameras = "corner,corner2,corner3", *seeds = "1000-1009";
  int full_render = 0, legacy_render_crop = 0;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  cfg.jobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
  const char *scenes = NULL, *assets = NULL, *crops = NULL;
  const char *agent = NULL, *agent_ckpt = NULL, *policy_ckpt = NULL, *grasp = "metaworld";
  const char *takeover = NULL;
  char agent_help[320];
  snprintf(agent_help, sizeof agent_help, "record this agent's rollouts instead of the scripted expert's: %s "
           "(with --demos 0; successes kept unless --keep-failures)", sp_agent_names());
  sp_arg rows[] = {
      {"tasks", SP_ARG_STR, &tasks, "all or a comma list of task names"},
      {"cameras", SP_ARG_STR, &cameras, "comma list of cameras"},
      {"seeds", SP_ARG_STR, &seeds, "demonstration seeds (never the eval seeds 0-24); --demos picks among them"},
      {"out", SP_ARG_STR, &cfg.out, "dataset file (FILE.h5)"},
      {"scenes", SP_ARG_STR, &scenes, "builtin or metaworld (default: builtin unless --assets)"},
      {"assets", SP_ARG_STR, &assets, "Meta-World assets_v2 directory (or SP_METAWORLD_ASSETS)"},
      {"size", SP_ARG_INT, &cfg.size, "stored image side in pixels"},
      {"crop", SP_ARG_STR, &crops, "crop windows TASK/CAMERA=ROW,COL,H,W;... ('*' any; default AVDC 56,96,128,128)"},
      {"full-render", SP_ARG_FLAG, &full_render, "render the full --render-width x --render-height frame, then crop it (AVDC's way, slower; default: the centred crop window rendered directly at --size)"},
      {"render-crop", SP_ARG_FLAG, &legacy_render_crop, "the default now (render the crop window directly); kept for old command lines"},
      {"shadow-size", SP_ARG_INT, &cfg.shadow_size, "shadow map size (0: the scene's 4096, AVDC's, slower)"},
      {"msaa", SP_ARG_INT, &cfg.msaa, "offscreen MSAA samples override (-1: keep sp's 0, no multisampling)"},
      {"render-width", SP_ARG_INT, &cfg.render_w, "render width"},
      {"render-height", SP_ARG_INT, &cfg.render_h, "render height"},
      {"demos", SP_ARG_INT, &cfg.demos, "keep the first N successful seeds per (task, camera); 0: every seed"},
      {"recovery", SP_ARG_INT, &cfg.recovery, "perturbed recovery episodes per (task, camera)"},
      {"recovery-tries", SP_ARG_INT, &cfg.recovery_tries, "attempts per kept recovery episode"},
      {"jobs", SP_ARG_INT, &cfg.jobs, "worker threads"},
      {"resume", SP_ARG_FLAG, &cfg.resume, "continue an interrupted run (or extend a dataset)"},
      {"deflate", SP_ARG_INT, &cfg.deflate, "HDF5 deflate level 0..9"},
      {"checkpoint", SP_ARG_DOUBLE, &cfg.checkpoint_s, "seconds between rebuilds of --out from the parts (0: end only)"},
      {"max-steps", SP_ARG_INT, &cfg.max_steps, "cap on env steps per episode (0: AVDC's 500-frame rule)"},
      {"keep-failures", SP_ARG_FLAG, &cfg.keep_failures, "keep expert episodes that failed (success 0)"},
      {"allow-eval-seeds", SP_ARG_FLAG, &cfg.allow_eval_seeds, "permit seeds 0-24 (contaminates evaluation)"},
      {"grasp", SP_ARG_STR, &grasp, "the experts' grasp: metaworld (Meta-World's scripts: the grip closes while descending) or late (closes at the object, holds until the fingers settle)"},
      {"agent", SP_ARG_STR, &agent, agent_help},
      {"agent-checkpoint", SP_ARG_STR, &agent_ckpt, "--agent: its checkpoint (default: its committed one)"},
      {"policy-checkpoint", SP_ARG_STR, &policy_ckpt, "--agent sp*: the policy's checkpoint (default: the committed one)"},
      {"takeover", SP_ARG_STR, &takeover, "--agent: A-B, the scripted expert takes over at a step drawn per episode in A..B and finishes it; training reads the expert's steps alone (DAgger-style recovery from the agent's own states)"},
      {"fine-interval", SP_ARG_INT, &cfg.fine.interval, "fine sampling: coarse interval (frames)"},
      {"fine-rate", SP_ARG_INT, &cfg.fine.rate, "fine sampling: fine phases this many times denser"},
      {"distance-threshold", SP_ARG_DOUBLE, &cfg.fine.distance_threshold, "fine sampling: close when distance <= this (m)"},
      {"consecutive-frames", SP_ARG_INT, &cfg.fine.consecutive_frames, "fine sampling: close frames to enter a fine phase"},
      {"recovery-needed-frames", SP_ARG_INT, &cfg.fine.recovery_needed_frames, "fine sampling: coarse frames before re-entering"},
      {"suppress-single-spike", SP_ARG_INT, &cfg.fine.suppress_single_spike, "fine sampling: ignore one-frame spikes (0/1)"},
      {"max-allowed-anomaly", SP_ARG_INT, &cfg.fine.max_allowed_anomaly, "fine sampling: far frames tolerated in a fine phase"},
      {0}};
  int rc = sp_args_parse("collect", "--out FILE.h5 [options]   (defaults: AVDC's 11 tasks x 3 cameras x 5 demonstrations)",
                         rows, argc, argv, NULL, 0, NULL);
  if (rc) return rc < 0 ? 2 : 0;
  if (full_render && legacy_render_crop) {
    sp_log(SP_LOG_ERROR, "collect: --full-render and --render-crop exclude each other");
    return 2;
  }
  if (full_render) cfg.render_crop = 0;
  if (!cfg.out) { sp_log(SP_LOG_ERROR, "collect: --out FILE.h5 is required"); return 2; }
  if (sp_grasp_parse(grasp, &cfg.grasp)) {
    sp_log(SP_LOG_ERROR, "collect: unknown --grasp '%s' (known: metaworld, late)", grasp);
    return 2;
  }
  if (sp_cli_parse_tasks("collect", tasks, cfg.tasks, &cfg.ntask)) return 2;
  if (sp_cli_parse_cameras("collect", cameras, cfg.cams, &cfg.ncam)) return 2;
  char err[SP_ERRLEN];
  if (crops) {
    cfg.ncrop = sp_crop_parse(crops, cfg.crops, SP_COLLECT_MAX_CROPS, err);
    if (cfg.ncrop < 0) { sp_log(SP_LOG_ERROR, "collect: %s", err); return 2; }
  }
  long *sv;
  cfg.nseed = sp_parse_seeds(seeds, &sv, err);
  if (cfg.nseed < 0) { sp_log(SP_LOG_ERROR, "collect: %s", err); return 2; }
  cfg.seeds = sv;
  if (sp_cli_scene_source("collect", scenes, &assets, &cfg.source)) { free(sv); return 2; }
  cfg.assets = assets;
  const sp_agent_api *ag = NULL;
  sp_collect_policy pol;
  memset(&pol, 0, sizeof pol);
  if (agent) {
    if (!(ag = sp_agent_find(agent))) {
      sp_log(SP_LOG_ERROR, "collect: unknown agent '%s' (known: %s)", agent, sp_agent_names());
      free(sv);
      return 2;
    }
    pol.name = ag->name;  // for the check below; the agent is loaded after it
    cfg.policy = &pol;
  } else if (agent_ckpt || policy_ckpt) {
    sp_log(SP_LOG_ERROR, "collect: --agent-checkpoint and --policy-checkpoint go with --agent");
    free(sv);
    return 2;
  }
  if (takeover) {
    char tail;
    if (sscanf(takeover, "%d-%d%c", &cfg.takeover_min, &cfg.takeover_max, &tail) != 2 || cfg.takeover_min < 1) {
      sp_log(SP_LOG_ERROR, "collect: --takeover '%s': expected A-B, 1 <= A <= B, the steps between which the expert takes over",
             takeover);
      free(sv);
      return 2;
    }
  }
  if (sp_collect_config_check(&cfg, err)) {
    sp_log(SP_LOG_ERROR, "collect: %s", err);
    free(sv);
    return 2;
  }
  if (ag) {
    static char buf[4096], pbuf[4096];
    const char *ck, *pck;
    sp_agent_opts ao = {.guidance = -1, .grasp = cfg.grasp};
    if (sp_agent_checkpoints(ag, agent_ckpt, policy_ckpt, buf, pbuf, sizeof buf, &ck, &pck, err) ||
        (ao.checkpoint = ck, ao.policy_checkpoint = pck, sp_agent_collect_policy(ag, &ao, &pol, err))) {
      sp_log(SP_LOG_ERROR, "collect: --agent %s: %s", ag->name, err);
      free(sv);
      return 2;
    }
  }
  cfg.stop = &g_stop;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  sp_collect_stats st = {0};
  rc = sp_collect_run(&cfg, &st, err);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  free(sv);
  if (ag) sp_agent_collect_policy_free(&pol);
  struct stat sb;
  double mb = stat(cfg.out, &sb) == 0 ? sb.st_size / 1048576.0 : 0;
  if (st.frames || st.skipped_resume || !rc)
    fprintf(stderr,
          "collect: %d demonstrations (%d expert failures skipped, %d already present), %d recovery "
          "kept of %d tries, %ld frames in %.1f s (render %.1f s = %.1f ms/frame, physics %.1f s, "
          "write %.1f s); %s %.1f MB\n",
          st.episodes_done, st.episodes_failed, st.skipped_resume, st.recovery_kept, st.recovery_tries,
          st.frames, st.seconds, st.render_s, st.frames ? 1e3 * st.render_s / (double)st.frames : 0.0,
          st.physics_s, st.write_s, cfg.out, mb);
  if (rc) { sp_log(SP_LOG_ERROR, "collect: %s", err); return 1; }
  if (st.interrupted) {
    sp_log(SP_LOG_WARN, "collect: interrupted; %s holds the finished episodes, continue with --resume", cfg.out);
    return 130;
  }
  return 0;
}
