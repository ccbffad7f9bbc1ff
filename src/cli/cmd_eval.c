/* cmd_eval.c: sp eval: the benchmark harness (and --merge of shard directories). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/scene_args.h"
#include "core/log.h"
#include "eval/eval.h"
#include "sim/render.h"

int sp_cmd_eval(int argc, char **argv) {
  sp_eval_config cfg;
  sp_eval_config_default(&cfg);
  const char *tasks = "all", *cameras = "corner,corner2,corner3", *seeds = "0-24", *shard = NULL;
  const char *scenes = NULL, *assets = NULL;
  int merge = 0, vlm = 0, vlm_retries = 3;
  const char *vlm_url = NULL, *vlm_model = NULL;
  double vlm_timeout = 60;
  const char *render_q = "full", *gif_seeds = NULL, *grasp = "metaworld";
  char agent_help[320];
  snprintf(agent_help, sizeof agent_help, "agent to evaluate: %s (docs/agents.md)", sp_agent_names());
  sp_arg rows[] = {
      {"agent", SP_ARG_STR, &cfg.agent, agent_help},
      {"checkpoint", SP_ARG_STR, &cfg.checkpoint, "the agent's checkpoint (safetensors; default: its committed one under checkpoints/)"},
      {"policy-checkpoint", SP_ARG_STR, &cfg.policy_checkpoint, "sp agents: the policy's checkpoint (default: checkpoints/policy-imagined-cpu.safetensors)"},
      {"tasks", SP_ARG_STR, &tasks, "all or a comma list of task names"},
      {"cameras", SP_ARG_STR, &cameras, "comma list of cameras"},
      {"seeds", SP_ARG_STR, &seeds, "seed list, e.g. 0-24 or 0,3,5-9"},
      {"out", SP_ARG_STR, &cfg.out_dir, "output directory (results.json, results.md, episodes.jsonl)"},
      {"gif", SP_ARG_FLAG, &cfg.gif, "write one GIF per episode under DIR/gifs"},
      {"gif-seeds", SP_ARG_STR, &gif_seeds, "with --gif: only these seeds get GIFs (default all)"},
      {"jobs", SP_ARG_INT, &cfg.jobs, "worker threads"},
      {"resume", SP_ARG_FLAG, &cfg.resume, "continue an interrupted run in --out"},
      {"shard", SP_ARG_STR, &shard, "run the slice I/N of the episode list"},
      {"merge", SP_ARG_FLAG, &merge, "merge the shard directories given as arguments into --out"},
      {"width", SP_ARG_INT, &cfg.width, "render width"},
      {"height", SP_ARG_INT, &cfg.height, "render height"},
      {"render", SP_ARG_STR, &render_q, "render quality: full (shadows, reflections) or fast"},
      {"render-timeout", SP_ARG_DOUBLE, &cfg.render_timeout, "seconds before a stuck render stops the run"},
      {"guidance", SP_ARG_DOUBLE, &cfg.guidance, "sp and avdc agents: classifier-free guidance w of the imagined videos (default: sp the checkpoint's validation value, avdc 0)"},
      {"episode-noise", SP_ARG_FLAG, &cfg.episode_noise, "oracle-policy and sp agents: the policy's chunks all start from one noise draw per plan (default: a new draw per chunk)"},
      {"goal-steps", SP_ARG_INT, &cfg.goal_steps, "oracle-policy and sp agents: steps on one goal frame before the frame matcher moves on without a match (0: its default, 20; paper Appendix F)"},
      {"grasp", SP_ARG_STR, &grasp, "the expert agent's grasp: metaworld or late (sp collect --grasp; oracle-policy takes its policy dataset's)"},
      {"flow-check", SP_ARG_DOUBLE, &cfg.flow_check, "avdc agents: drop points hidden in the next frame from each flow's fit, by a forward-backward round trip missing by more than this many px (default 0: off, AVDC's; docs/baselines.md)"},
      {"action-steps", SP_ARG_INT, &cfg.action_steps, "oracle-policy and sp agents: actions executed of each predicted chunk before the next (0: half the policy's horizon, Diffusion Policy's rule)"},
      {"vlm", SP_ARG_FLAG, &vlm, "sp agents: plan and validate with the VLM of SP_VLM_URL / SP_VLM_MODEL (key: SP_VLM_KEY or OPENAI_API_KEY); the offline rule planner and validator are its fallback"},
      {"vlm-url", SP_ARG_STR, &vlm_url, "with --vlm: the OpenAI-compatible endpoint (instead of SP_VLM_URL)"},
      {"vlm-model", SP_ARG_STR, &vlm_model, "with --vlm: the model name (instead of SP_VLM_MODEL)"},
      {"vlm-timeout", SP_ARG_DOUBLE, &vlm_timeout, "with --vlm: seconds per request"},
      {"vlm-retries", SP_ARG_INT, &vlm_retries, "with --vlm: retries after a failed request"},
      {"scenes", SP_ARG_STR, &scenes, "builtin or metaworld (default: builtin unless --assets)"},
      {"assets", SP_ARG_STR, &assets, "Meta-World assets_v2 directory (or SP_METAWORLD_ASSETS)"},
      {0}};
  const char *pos[256];
  int npos = 0;
  int rc = sp_args_parse("eval", "--agent A --tasks all --cameras C1,C2 --seeds 0-24 --out DIR [options]\n"
                         "       sp eval --merge DIR1 DIR2 ... --out DIR",
                         rows, argc, argv, pos, 256, &npos);
  if (rc) return rc < 0 ? 2 : 0;
  if (!cfg.out_dir) { sp_log(SP_LOG_ERROR, "eval: --out DIR is required"); return 2; }
  char err[SP_ERRLEN];
  if (merge) {
    if (sp_eval_merge(pos, npos, cfg.out_dir, err)) { sp_log(SP_LOG_ERROR, "eval: %s", err); return 1; }
    return 0;
  }
  if (npos) { sp_log(SP_LOG_ERROR, "eval: unexpected argument '%s'", pos[0]); return 2; }
  if (!sp_agent_find(cfg.agent)) {
    sp_log(SP_LOG_ERROR, "eval: unknown agent '%s' (known: %s)", cfg.agent, sp_agent_names());
    return 2;
  }
  sp_vlm_config vc;
  sp_vlm_config_default(&vc);
  if (!vlm && (vlm_url || vlm_model)) { sp_log(SP_LOG_ERROR, "eval: --vlm-url and --vlm-model go with --vlm"); return 2; }
  if (vlm) {
    if (vlm_url) vc.url = vlm_url;
    if (vlm_model) vc.model = vlm_model;
    vc.timeout_s = vlm_timeout;
    vc.max_retries = vlm_retries;
    if (!vc.url || !*vc.url || !vc.model || !*vc.model) {
      sp_log(SP_LOG_ERROR, "eval: --vlm needs an endpoint and a model (--vlm-url/--vlm-model or SP_VLM_URL/SP_VLM_MODEL)");
      return 2;
    }
    if (!(vlm_timeout > 0) || vlm_retries < 0 || vlm_retries > 10) {
      sp_log(SP_LOG_ERROR, "eval: --vlm-timeout must be > 0 and --vlm-retries within 0..10");
      return 2;
    }
    cfg.vlm = &vc;
  }
  sp_render_quality rq;
  if (sp_render_quality_parse(render_q, &rq)) {
    sp_log(SP_LOG_ERROR, "eval: unknown --render '%s' (full or fast)", render_q);
    return 2;
  }
  cfg.render_fast = rq == SP_RENDER_FAST;
  if (sp_grasp_parse(grasp, &cfg.grasp)) {
    sp_log(SP_LOG_ERROR, "eval: unknown --grasp '%s' (known: metaworld, late)", grasp);
    return 2;
  }
  if (sp_cli_parse_tasks("eval", tasks, cfg.tasks, &cfg.ntask)) return 2;
  if (sp_cli_parse_cameras("eval", cameras, cfg.cams, &cfg.ncam)) return 2;
  long *sv;
  cfg.nseed = sp_parse_seeds(seeds, &sv, err);
  if (cfg.nseed < 0) { sp_log(SP_LOG_ERROR, "eval: %s", err); return 2; }
  cfg.seeds = sv;
  long *gv = NULL;
  if (gif_seeds) {
    cfg.ngif_seed = sp_parse_seeds(gif_seeds, &gv, err);
    if (cfg.ngif_seed < 0) { sp_log(SP_LOG_ERROR, "eval: --gif-seeds: %s", err); free(sv); return 2; }
    cfg.gif_seeds = gv;
  }
  if (shard) {
    char tail;
    if (sscanf(shard, "%d/%d%c", &cfg.shard_i, &cfg.shard_n, &tail) != 2 || cfg.shard_n < 1 ||
        cfg.shard_i < 0 || cfg.shard_i >= cfg.shard_n) {
      sp_log(SP_LOG_ERROR, "eval: bad --shard '%s' (expected I/N with 0 <= I < N)", shard);
      free(sv);
      free(gv);
      return 2;
    }
  }
  if (sp_cli_scene_source("eval", scenes, &assets, &cfg.source)) { free(sv); free(gv); return 2; }
  cfg.assets = assets;
  if (sp_eval_config_check(&cfg, err)) {
    sp_log(SP_LOG_ERROR, "eval: %s", err);
    free(sv);
    free(gv);
    return 2;
  }
  rc = sp_eval_run(&cfg, err);
  free(sv);
  free(gv);
  if (rc) { sp_log(SP_LOG_ERROR, "eval: %s", err); return 1; }
  char path[4096];
  snprintf(path, sizeof path, "%s/results.md", cfg.out_dir);
  FILE *f = fopen(path, "r");
  if (f) {
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, k, stdout);
    fclose(f);
  }
  return 0;
}
