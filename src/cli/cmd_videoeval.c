/* cmd_videoeval.c: sp videoeval: video checkpoints against the expert's rollout on held-out
 * episodes (eval.h, docs/videoeval.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/scene_args.h"
#include "core/log.h"
#include "eval/eval.h"

#define MAX_LIST 8

/* split "a,b,c" in place into at most cap items; returns the count or -1 */
static int split_list(char *s, const char **out, int cap) {
  int n = 0;
  for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
    if (n == cap) return -1;
    out[n++] = tok;
  }
  return n;
}

int sp_cmd_videoeval(int argc, char **argv) {
  sp_videoeval_config c;
  sp_videoeval_config_default(&c);
  const char *ckpts = NULL, *labels = NULL, *tasks = "all", *cameras = "corner,corner2,corner3", *seeds = "0-24",
             *scenes = NULL;
  double guidance = -1;
  sp_arg rows[] = {
      {"ckpt", SP_ARG_STR, &ckpts, "video checkpoints to compare, comma-separated (sp train video), one row each"},
      {"labels", SP_ARG_STR, &labels, "row names, comma-separated (default: the checkpoints' file names)"},
      {"data", SP_ARG_STR, &c.data, "the gripper locator's dataset (sp collect, the models' frame size; no evaluated seed)"},
      {"tasks", SP_ARG_STR, &tasks, "tasks, comma-separated, or all"},
      {"cameras", SP_ARG_STR, &cameras, "cameras, comma-separated"},
      {"seeds", SP_ARG_STR, &seeds, "episode seeds, e.g. 0-24 (held out: never in a dataset)"},
      {"steps", SP_ARG_INT, &c.steps, "DDIM steps"},
      {"guidance", SP_ARG_DOUBLE, &guidance, "classifier-free guidance w (default: each checkpoint's validation value)"},
      {"knn", SP_ARG_INT, &c.knn, "gripper locator: neighbours averaged"},
      {"out", SP_ARG_STR, &c.out, "output directory: episodes.jsonl, results.md, results.json, strips/"},
      {"resume", SP_ARG_FLAG, &c.resume, "continue the run in --out"},
      {"scenes", SP_ARG_STR, &scenes, "builtin or metaworld (default: builtin unless --assets)"},
      {"assets", SP_ARG_STR, &c.assets, "Meta-World assets_v2 directory (or SP_METAWORLD_ASSETS)"},
      {0}};
  int rc = sp_args_parse("videoeval", "--ckpt A.safetensors[,B...] --data FILE.h5 --out DIR [options]", rows, argc,
                         argv, NULL, 0, NULL);
  if (rc) return rc < 0 ? 2 : 0;
  if (!ckpts || !c.data || !c.out) {
    sp_log(SP_LOG_ERROR, "videoeval: --ckpt, --data and --out are required (see sp videoeval --help)");
    return 2;
  }
  char *cbuf = strdup(ckpts), *lbuf = labels ? strdup(labels) : NULL;
  const char *cl[MAX_LIST], *ll[MAX_LIST];
  long *sv = NULL;
  char err[SP_ERRLEN];
  rc = 2;
  if (!cbuf || (labels && !lbuf)) { sp_log(SP_LOG_ERROR, "videoeval: out of memory"); goto out; }
  if ((c.nckpt = split_list(cbuf, cl, MAX_LIST)) < 1) {
    sp_log(SP_LOG_ERROR, "videoeval: --ckpt takes 1 to %d checkpoints", MAX_LIST);
    goto out;
  }
  if (lbuf && (c.nlabel = split_list(lbuf, ll, MAX_LIST)) != c.nckpt) {
    sp_log(SP_LOG_ERROR, "videoeval: --labels has %d names for %d checkpoints", c.nlabel, c.nckpt);
    goto out;
  }
  c.ckpts = cl;
  c.labels = lbuf ? ll : NULL;
  if (sp_cli_parse_tasks("videoeval", tasks, c.tasks, &c.ntask)) goto out;
  if (sp_cli_parse_cameras("videoeval", cameras, c.cams, &c.ncam)) goto out;
  if ((c.nseed = sp_parse_seeds(seeds, &sv, err)) < 0) { sp_log(SP_LOG_ERROR, "videoeval: --seeds: %s", err); goto out; }
  c.seeds = sv;
  if (guidance != -1 && !(guidance >= 0 && guidance <= 100)) {
    sp_log(SP_LOG_ERROR, "videoeval: --guidance %g outside 0..100", guidance);
    goto out;
  }
  c.guidance = (float)guidance;
  if (sp_cli_scene_source("videoeval", scenes, &c.assets, &c.source)) goto out;
  if (sp_videoeval_run(&c, err)) {
    sp_log(SP_LOG_ERROR, "videoeval: %s", err);
    rc = 1;
    goto out;
  }
  printf("videoeval: %s/results.md (results.json, episodes.jsonl, strips/)\n", c.out);
  rc = 0;
out:
  free(cbuf);
  free(lbuf);
  free(sv);
  return rc;
}
