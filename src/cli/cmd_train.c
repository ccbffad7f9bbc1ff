/* cmd_train.c: sp train video: train a model with the shared trainer (docs/training.md).
 *
 * Its options are generated from the config field tables (models/model.h): the trainer's
 * (sp_train_fields), the job's (sp_vdiff_fields) and the model's (sp_vunet_fields). One table
 * row per field gives the option name (underscores as dashes), the help line, the preset's
 * default, the parse and bounds check, and the JSON echoed into checkpoints and logs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/fileio.h"
#include "core/log.h"
#include "models/video_train.h"

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
  g_stop = 1;
  signal(sig, SIG_DFL);  // a second signal ends the process at once
}

enum { MAX_ROWS = 96, NGROUP = 3 };

typedef struct {
  const sp_cf *table;
  void *cfg;
  const char *what;
} cf_group;

/* the value of --name in argv (either form), NULL when absent */
static const char *find_opt(int argc, char **argv, const char *name) {
  size_t n = strlen(name);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) || strncmp(a + 2, name, n)) continue;
    if (a[2 + n] == '=') return a + 3 + n;
    if (!a[2 + n] && i + 1 < argc) return argv[i + 1];
  }
  return NULL;
}

static int has_flag(int argc, char **argv, const char *flag) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], flag)) return 1;
  return 0;
}

static int train_video(int argc, char **argv) {
  const char *usage = "video --data FILE.h5 --preset tiny|cpu|paper --steps N --out DIR [--resume] [options]";
  sp_vunet_cfg mc;
  sp_vdiff_cfg dc;
  sp_train_cfg tc;
  char err[SP_ERRLEN], preset[32] = "cpu", data_buf[1024] = "";
  sp_vdiff_cfg_default(&dc);
  sp_train_cfg_default(&tc);
  /* the base: the resumed run's own settings, else the named preset */
  const char *out_pre = find_opt(argc, argv, "out"), *preset_pre = find_opt(argc, argv, "preset");
  int resuming = has_flag(argc, argv, "--resume") && out_pre;
  char ckpt[1100];
  snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", out_pre ? out_pre : ".");
  if (resuming && sp_file_exists(ckpt)) {
    if (sp_video_run_settings(ckpt, &mc, &dc, &tc, preset, sizeof preset, data_buf, sizeof data_buf, err)) {
      sp_log(SP_LOG_ERROR, "train: %s", err);
      return 2;
    }
  } else {
    sp_preset p = SP_PRESET_CPU;
    if (preset_pre && sp_preset_parse(preset_pre, &p, err)) {
      sp_log(SP_LOG_ERROR, "train: --preset: %s", err);
      return 2;
    }
    snprintf(preset, sizeof preset, "%s", sp_preset_name(p));
    sp_vunet_cfg_preset(&mc, p);
  }
  cf_group groups[NGROUP] = {{sp_train_fields, &tc, "train"}, {sp_vdiff_fields, &dc, "diffusion"},
                             {sp_vunet_fields, &mc, "model"}};
  /* fixed rows, then one row per config field */
  const char *data = data_buf[0] ? data_buf : NULL, *out = NULL, *preset_opt = NULL;
  int resume = 0, oversub = 0;
  sp_arg rows[MAX_ROWS + 8];
  const char *vals[MAX_ROWS] = {0};
  char names[MAX_ROWS][48], helps[MAX_ROWS][256];
  const sp_cf *fields[MAX_ROWS];
  void *cfgs[MAX_ROWS];
  int nr = 0, nf = 0;
  rows[nr++] = (sp_arg){"data", SP_ARG_STR, &data, "dataset from sp collect (FILE.h5), frames at the model's res"};
  rows[nr++] = (sp_arg){"out", SP_ARG_STR, &out, "run directory: checkpoints, train.jsonl, loss.svg"};
  rows[nr++] = (sp_arg){"preset", SP_ARG_STR, &preset_opt, "model preset: tiny, cpu or paper (default cpu)"};
  rows[nr++] = (sp_arg){"resume", SP_ARG_FLAG, &resume, "continue the run in --out (its settings are the defaults)"};
  rows[nr++] = (sp_arg){"oversubscribe", SP_ARG_FLAG, &oversub, "allow --threads above the machine's cores"};
  for (int g = 0; g < NGROUP; g++)
    for (const sp_cf *f = groups[g].table; f->key && nf < MAX_ROWS; f++, nf++) {
      snprintf(names[nf], sizeof names[nf], "%s", f->key);
      for (char *c = names[nf]; *c; c++)
        if (*c == '_') *c = '-';
      char v[128];
      sp_cf_format(f, groups[g].cfg, v, sizeof v);
      snprintf(helps[nf], sizeof helps[nf], "%s: %s (%s %s)", groups[g].what, f->help, resuming ? "run's" : preset, v);
      fields[nf] = f;
      cfgs[nf] = groups[g].cfg;
      rows[nr++] = (sp_arg){names[nf], SP_ARG_STR, &vals[nf], helps[nf]};
    }
  rows[nr] = (sp_arg){0};
  int rc = sp_args_parse("train", usage, rows, argc, argv, NULL, 0, NULL);
  if (rc) return rc < 0 ? 2 : 0;
  for (int i = 0; i < nf; i++)
    if (vals[i] && sp_cf_set(fields[i], cfgs[i], fields[i]->key, vals[i], err)) {  // the row is its own one-row table
      sp_log(SP_LOG_ERROR, "train: --%s: %s", names[i], err);
      return 2;
    }
  if (!out) { sp_log(SP_LOG_ERROR, "train: --out DIR is required"); return 2; }
  if (!data) { sp_log(SP_LOG_ERROR, "train: --data FILE.h5 is required"); return 2; }
  if (resume && preset_opt && strcmp(preset_opt, preset)) {
    sp_log(SP_LOG_ERROR, "train: --preset %s, but the run in %s was started from preset %s", preset_opt, out, preset);
    return 2;
  }
  if (sp_vunet_cfg_check(&mc, err) || sp_cf_check(sp_vdiff_fields, &dc, "diffusion", err) ||
      sp_cf_check(sp_train_fields, &tc, "train", err)) {
    sp_log(SP_LOG_ERROR, "train: %s", err);
    return 2;
  }
  /* the thread budget: nn threads never exceed the cores unless asked */
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores > 0 && tc.threads > cores && !oversub) {
    sp_log(SP_LOG_ERROR, "train: --threads %d exceeds the %ld cores (--oversubscribe to allow)", tc.threads, cores);
    return 2;
  }
  nn_init(tc.threads);
  sp_video_job *job = sp_video_job_open(data, &mc, preset, &dc, &tc, err);
  if (!job) {
    sp_log(SP_LOG_ERROR, "train: %s", err);
    return 1;
  }
  fprintf(stderr, "train: video model, preset %s, %.2f M parameters, data %s\n", preset,
          sp_vunet_nparams(sp_video_job_model(job)) / 1e6, data);
  sp_train_io io = {.out = out, .resume = resume, .stop = &g_stop, .quiet = 0};
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  rc = sp_train_run(&tc, sp_video_job_trainable(job), &io, err);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sp_video_job_close(job);
  if (rc < 0) {
    sp_log(SP_LOG_ERROR, "train: %s", err);
    return 1;
  }
  return rc;
}

int sp_cmd_train(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    printf("usage: sp train video [options]   (sp train video --help)\n\n"
           "  video   the video diffusion U-Net (first frame + task text -> the next frames)\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "video")) return train_video(argc - 1, argv + 1);
  sp_log(SP_LOG_ERROR, "train: unknown model '%s' (known: video)", argv[1]);
  return 2;
}
