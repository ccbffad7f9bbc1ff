/* cmd_report.c: sp report RUN_DIR... [--train-log DIR]... --out report.html: evaluation runs and
 * training logs as one self-contained HTML page (src/eval/page.c, docs/report.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/log.h"
#include "eval/eval.h"

#define MAX_RUNS 64
#define MAX_LOGS 16

/* split "a,b,c" into at most cap parts (pointers into s, which is modified) */
static int split_commas(char *s, const char **out, int cap) {
  int n = 0;
  for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok && n < cap; tok = strtok_r(NULL, ",", &save))
    out[n++] = tok;
  return n;
}

int sp_cmd_report(int argc, char **argv) {
  sp_report_config cfg;
  sp_report_config_default(&cfg);
  const char *labels = NULL, *log_help = NULL;  // --train-log is taken out below; its row is for --help
  int gif_seed = -1;
  /* --train-log may repeat: take those out first, the table parser sees the rest */
  const char *logs[MAX_LOGS];
  int nlog = 0;
  char **rest = malloc(sizeof(char *) * (size_t)(argc + 1));
  if (!rest) { sp_log(SP_LOG_ERROR, "report: out of memory"); return 1; }
  int nrest = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (i > 0 && !strncmp(a, "--train-log=", 12)) v = a + 12;
    else if (i > 0 && !strcmp(a, "--train-log")) {
      if (i + 1 >= argc) { sp_log(SP_LOG_ERROR, "report: --train-log needs a value"); free(rest); return 2; }
      v = argv[++i];
    }
    if (!v) { rest[nrest++] = argv[i]; continue; }
    if (nlog == MAX_LOGS) { sp_log(SP_LOG_ERROR, "report: more than %d --train-log", MAX_LOGS); free(rest); return 2; }
    logs[nlog++] = v;
  }
  rest[nrest] = NULL;
  sp_arg rows[] = {
      {"out", SP_ARG_STR, &cfg.out, "the page to write (report.html)"},
      {"train-log", SP_ARG_STR, &log_help, "an sp train output directory (or its train.jsonl); repeat for several"},
      {"labels", SP_ARG_STR, &labels, "row names of the runs, comma-separated (default: directory names)"},
      {"title", SP_ARG_STR, &cfg.title, "page title"},
      {"gif-seed", SP_ARG_INT, &gif_seed, "the seed whose GIFs are shown (-1: each run's smallest seed with GIFs)"},
      {"gif-step", SP_ARG_INT, &cfg.gif_step, "thumbnails keep every N-th frame"},
      {"gif-scale", SP_ARG_INT, &cfg.gif_scale, "thumbnails at 1/N of the GIF's size"},
      {0}};
  const char *pos[MAX_RUNS + 1];
  int npos = 0;
  int rc = sp_args_parse("report", "RUN_DIR... [--train-log DIR]... --out report.html [options]", rows, nrest, rest,
                         pos, MAX_RUNS + 1, &npos);
  free(rest);
  if (rc) return rc < 0 ? 2 : 0;
  if (!cfg.out) { sp_log(SP_LOG_ERROR, "report: --out report.html is required"); return 2; }
  if (npos < 1) { sp_log(SP_LOG_ERROR, "report: no run directories (sp eval --out DIRs) given"); return 2; }
  if (npos > MAX_RUNS) { sp_log(SP_LOG_ERROR, "report: more than %d run directories", MAX_RUNS); return 2; }
  if (gif_seed < -1) { sp_log(SP_LOG_ERROR, "report: --gif-seed %d must be >= -1", gif_seed); return 2; }
  if (cfg.gif_step < 1 || cfg.gif_step > 100) { sp_log(SP_LOG_ERROR, "report: --gif-step %d outside 1..100", cfg.gif_step); return 2; }
  if (cfg.gif_scale < 1 || cfg.gif_scale > 16) { sp_log(SP_LOG_ERROR, "report: --gif-scale %d outside 1..16", cfg.gif_scale); return 2; }
  char *lab = labels ? strdup(labels) : NULL;
  const char *labv[MAX_RUNS];
  cfg.nlabel = lab ? split_commas(lab, labv, MAX_RUNS) : 0;
  cfg.labels = labv;
  cfg.runs = pos;
  cfg.nrun = npos;
  cfg.train_logs = logs;
  cfg.ntrain = nlog;
  cfg.gif_seed = gif_seed;
  char err[SP_ERRLEN];
  rc = sp_report_write(&cfg, err);
  free(lab);
  if (rc) { sp_log(SP_LOG_ERROR, "report: %s", err); return 1; }
  fprintf(stderr, "report: %s (%d run%s, %d training log%s)\n", cfg.out, npos, npos > 1 ? "s" : "", nlog,
          nlog == 1 ? "" : "s");
  return 0;
}
