/* cmd_train.c: sp train video|policy: train a model with the shared trainer (docs/training.md).
 *
 * Options are generated from the config field tables (models/model.h): the trainer's
 * (sp_train_fields), the job's (sp_vdiff_fields, sp_ptrain_fields) and the model's
 * (sp_vunet_fields, sp_policy_fields). One table
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
#include "models/policy_train.h"
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

/* the options of one job: fixed rows, then one row per field of each group's table */
typedef struct {
  const char *data, *out, *preset_opt, *init, *imagined, *refine;  // preset and init were read before
                                                // (find_opt): the base config depends on them; parsed here to be known
  int resume, oversub;
  int can_init;  // the job offers --init (fine-tuning)
  const char *init_help;  // its help text
  int can_imagine, can_refine;  // the job offers --imagined (policy), --refine (video)
} train_opts;

/* parse argv into the groups' configs (the base already holds the preset's or the resumed run's
 * values) and the fixed options. 0 ok, 1 when --help was printed, -1 on a bad command line
 * (message printed). */
static int parse_options(int argc, char **argv, const char *usage, cf_group *groups, int ngroups, const char *base,
                         int resuming, const char *data_help, const char **clip, train_opts *o) {
  char err[SP_ERRLEN];
  sp_arg rows[MAX_ROWS + 8];
  const char *vals[MAX_ROWS] = {0};
  static char names[MAX_ROWS][48], helps[MAX_ROWS][256];
  const sp_cf *fields[MAX_ROWS];
  void *cfgs[MAX_ROWS];
  int nr = 0, nf = 0;
  rows[nr++] = (sp_arg){"data", SP_ARG_STR, &o->data, data_help};
  rows[nr++] = (sp_arg){"out", SP_ARG_STR, &o->out, "run directory: checkpoints, train.jsonl, loss.svg"};
  rows[nr++] = (sp_arg){"preset", SP_ARG_STR, &o->preset_opt, "model preset: tiny, cpu or paper (default cpu)"};
  rows[nr++] = (sp_arg){"resume", SP_ARG_FLAG, &o->resume, "continue the run in --out (its settings are the defaults)"};
  rows[nr++] = (sp_arg){"oversubscribe", SP_ARG_FLAG, &o->oversub, "allow --threads above the machine's cores"};
  if (o->can_init) rows[nr++] = (sp_arg){"init", SP_ARG_STR, &o->init, o->init_help};
  if (o->can_refine)
    rows[nr++] = (sp_arg){"refine", SP_ARG_STR, &o->refine,
                          "VideoAgent's refinement pairs: an sp imagine goal set of this dataset (made by the base "
                          "video model); --refine-frac of the samples condition on its videos (needs --video-cond 1)"};
  if (o->can_imagine)
    rows[nr++] = (sp_arg){"imagined", SP_ARG_STR, &o->imagined,
                          "an imagined goal set of the dataset (sp imagine): --imagined-frac of the goals are "
                          "imagined frames, as the SP agent's are (docs/training.md)"};
  if (clip)
    rows[nr++] = (sp_arg){"clip-file", SP_ARG_STR, clip,
                          "CLIP ViT-B/32 text tower, one safetensors file (docs/clip.md): with --text-enc clip, every "
                          "task text is encoded once at the start and cached in the model (--clip is the gradient clip)"};
  for (int g = 0; g < ngroups; g++)
    for (const sp_cf *f = groups[g].table; f->key; f++, nf++) {
      SP_ASSERT(nf < MAX_ROWS);
      snprintf(names[nf], sizeof names[nf], "%s", f->key);
      for (char *c = names[nf]; *c; c++)
        if (*c == '_') *c = '-';
      char v[128];
      sp_cf_format(f, groups[g].cfg, v, sizeof v);
      snprintf(helps[nf], sizeof helps[nf], "%s: %s (%s %s)", groups[g].what, f->help, resuming ? "run's" : base, v);
      fields[nf] = f;
      cfgs[nf] = groups[g].cfg;
      rows[nr++] = (sp_arg){names[nf], SP_ARG_STR, &vals[nf], helps[nf]};
    }
  rows[nr] = (sp_arg){0};
  int rc = sp_args_parse("train", usage, rows, argc, argv, NULL, 0, NULL);
  if (rc) return rc;
  for (int i = 0; i < nf; i++)
    if (vals[i] && sp_cf_set(fields[i], cfgs[i], fields[i]->key, vals[i], err)) {  // the row is its own one-row table
      sp_log(SP_LOG_ERROR, "train: --%s: %s", names[i], err);
      return -1;
    }
  if (!o->out) {
    sp_log(SP_LOG_ERROR, "train: --out DIR is required");
    return -1;
  }
  if (!o->data && o->resume && !resuming) {
    sp_log(SP_LOG_ERROR, "train: --resume: %s/last.safetensors does not exist (start a run without --resume, with --data)",
           o->out);
    return -1;
  }
  if (!o->data) {
    sp_log(SP_LOG_ERROR, "train: --data FILE.h5 is required");
    return -1;
  }
  if (o->resume && o->preset_opt && strcmp(o->preset_opt, base)) {
    sp_log(SP_LOG_ERROR, "train: --preset %s, but the run in %s was started from preset %s", o->preset_opt, o->out, base);
    return -1;
  }
  return 0;
}

/* the preset named by --preset (cpu when absent) into p and its name; -1 on an unknown name */
static int base_preset(int argc, char **argv, sp_preset *p, char *name, size_t cap) {
  char err[SP_ERRLEN];
  const char *pre = find_opt(argc, argv, "preset");
  *p = SP_PRESET_CPU;
  if (pre && sp_preset_parse(pre, p, err)) {
    sp_log(SP_LOG_ERROR, "train: --preset: %s", err);
    return -1;
  }
  snprintf(name, cap, "%s", sp_preset_name(*p));
  return 0;
}

/* the resumable checkpoint of --out when --resume is given and it exists (ckpt filled), else 0 */
static int resuming_run(int argc, char **argv, char *ckpt, size_t cap) {
  const char *out = find_opt(argc, argv, "out");
  snprintf(ckpt, cap, "%s/last.safetensors", out ? out : ".");
  return has_flag(argc, argv, "--resume") && out && sp_file_exists(ckpt);
}

/* the thread budget: nn threads never exceed the cores unless asked */
static int thread_budget(const sp_train_cfg *tc, int oversub) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores > 0 && tc->threads > cores && !oversub) {
    sp_log(SP_LOG_ERROR, "train: --threads %d exceeds the %ld cores (--oversubscribe to allow)", tc->threads, cores);
    return -1;
  }
  nn_init(tc->threads);
  return 0;
}

/* run the trainer with SIGINT/SIGTERM checkpointing: 0 done, 130 interrupted, 1 failed */
static int run_trainer(const sp_train_cfg *tc, sp_trainable *t, const train_opts *o) {
  char err[SP_ERRLEN];
  sp_train_io io = {.out = o->out, .resume = o->resume, .stop = &g_stop, .quiet = 0};
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  int rc = sp_train_run(tc, t, &io, err);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  if (rc < 0) {
    sp_log(SP_LOG_ERROR, "train: %s", err);
    return 1;
  }
  return rc;
}

static int train_video(int argc, char **argv) {
  const char *usage = "video --data FILE.h5 --preset tiny|cpu|paper --steps N --out DIR [--resume] [options]";
  sp_vunet_cfg mc;
  sp_vdiff_cfg dc;
  sp_train_cfg tc;
  char err[SP_ERRLEN], preset[32] = "cpu", data_buf[1024] = "", ckpt[1100];
  sp_vdiff_cfg_default(&dc);
  sp_train_cfg_default(&tc);
  /* the base: the resumed run's own settings, else the --init checkpoint's network and diffusion
   * settings, else the named preset */
  int resuming = resuming_run(argc, argv, ckpt, sizeof ckpt);
  const char *init = find_opt(argc, argv, "init");
  char run_init[1024] = "", run_refine[1024] = "";
  if (resuming) {
    if (sp_video_run_settings(ckpt, &mc, &dc, &tc, preset, sizeof preset, data_buf, sizeof data_buf, err) ||
        sp_video_run_files(ckpt, run_init, sizeof run_init, run_refine, sizeof run_refine, err)) {
      sp_log(SP_LOG_ERROR, "train: %s", err);
      return 2;
    }
    if (init && strcmp(init, run_init)) {
      sp_log(SP_LOG_ERROR, "train: --init %s, but the run in %s was started from %s", init, find_opt(argc, argv, "out"),
             run_init[0] ? run_init : "fresh weights");
      return 2;
    }
  } else if (init) {
    sp_train_cfg t0;
    char d0[1024];
    if (find_opt(argc, argv, "preset")) {
      sp_log(SP_LOG_ERROR, "train: --init takes the model and its preset from %s; drop --preset", init);
      return 2;
    }
    if (sp_video_run_settings(init, &mc, &dc, &t0, preset, sizeof preset, d0, sizeof d0, err)) {
      sp_log(SP_LOG_ERROR, "train: --init: %s", err);
      return 2;
    }
  } else {
    sp_preset p;
    if (base_preset(argc, argv, &p, preset, sizeof preset)) return 2;
    sp_vunet_cfg_preset(&mc, p);
  }
  cf_group groups[NGROUP] = {{sp_train_fields, &tc, "train"}, {sp_vdiff_fields, &dc, "diffusion"},
                             {sp_vunet_fields, &mc, "model"}};
  train_opts o = {.data = data_buf[0] ? data_buf : NULL, .can_init = 1, .can_refine = 1,
                  .init_help = "start from this video checkpoint's weights, network and diffusion settings (with "
                               "--video-cond 1: VideoAgent's refinement model from its base)",
                  .refine = run_refine[0] ? run_refine : NULL};
  const char *clip = NULL;
  int rc = parse_options(argc, argv, usage, groups, NGROUP, preset, resuming,
                         "dataset from sp collect (FILE.h5), frames at the model's res", &clip, &o);
  if (rc) return rc < 0 ? 2 : 0;
  if (sp_vunet_cfg_check(&mc, err) || sp_cf_check(sp_vdiff_fields, &dc, "diffusion", err) ||
      sp_cf_check(sp_train_fields, &tc, "train", err)) {
    sp_log(SP_LOG_ERROR, "train: %s", err);
    return 2;
  }
  int use_clip = mc.text_enc == SP_VUNET_TEXT_CLIP;
  if (resuming && !use_clip && mc.clip_n) {  // the description came from the checkpoint
    sp_log(SP_LOG_ERROR, "train: --text-enc words, but the run in %s was started with the clip text encoder", o.out);
    return 2;
  }
  if (clip && !use_clip) {
    sp_log(SP_LOG_ERROR, "train: --clip-file %s is for --text-enc clip (the %s model's text encoder is words)", clip,
           resuming ? "resumed" : "new");
    return 2;
  }
  if (use_clip && resuming && clip) {
    sp_log(SP_LOG_WARN, "train: --clip-file %s ignored: the resumed run keeps the CLIP cache of its checkpoint", clip);
    clip = NULL;
  }
  if (use_clip && !resuming && !clip && !init) {  // an --init model brings its cache
    sp_log(SP_LOG_ERROR, "train: --text-enc clip needs --clip-file FILE, CLIP ViT-B/32's text tower as one safetensors "
                         "file (tools/clip_to_safetensors.py, docs/clip.md)");
    return 2;
  }
  if (resuming && strcmp(o.refine ? o.refine : "", run_refine)) {
    sp_log(SP_LOG_ERROR, "train: --refine %s, but the run in %s was started with %s", o.refine ? o.refine : "(none)",
           o.out, run_refine[0] ? run_refine : "no refinement set");
    return 2;
  }
  if (o.refine && !mc.video_cond) {
    sp_log(SP_LOG_ERROR, "train: --refine %s needs a model conditioned on a video (--video-cond 1)", o.refine);
    return 2;
  }
  if (thread_budget(&tc, o.oversub)) return 2;
  sp_video_job *job = sp_video_job_open_clip(o.data, &mc, preset, &dc, &tc, clip, err);
  if (!job) {
    sp_log(SP_LOG_ERROR, "train: %s", err);
    return 1;
  }
  if (resuming && run_init[0]) sp_video_job_note_init(job, run_init);
  if ((!resuming && init && sp_video_job_init_from(job, init, err)) || (o.refine && sp_video_job_set_refine(job, o.refine, err))) {
    sp_log(SP_LOG_ERROR, "train: %s", err);
    sp_video_job_close(job);
    return 2;
  }
  fprintf(stderr, "train: video model, preset %s, %.2f M parameters, text encoder %s, data %s\n", preset,
          sp_vunet_nparams(sp_video_job_model(job)) / 1e6, use_clip ? "clip (cached)" : "words", o.data);
  rc = run_trainer(&tc, sp_video_job_trainable(job), &o);
  sp_video_job_close(job);
  return rc;
}

static int train_policy(int argc, char **argv) {
  const char *usage = "policy --data FILE.h5 --preset tiny|cpu|paper --steps N --out DIR [--resume] [options]";
  sp_policy_cfg mc;
  sp_ptrain_cfg jc;
  sp_train_cfg tc;
  sp_policy_limits lim;
  char err[SP_ERRLEN], ckpt[1100];
  sp_policy_run_files run = {.preset = "cpu"};
  char *preset = run.preset;
  const size_t pcap = sizeof run.preset;
  sp_ptrain_cfg_default(&jc);
  sp_policy_train_defaults(&tc);
  int resuming = resuming_run(argc, argv, ckpt, sizeof ckpt);
  const char *init = find_opt(argc, argv, "init");
  sp_policy_start st = {0};
  if (resuming) {
    if (sp_policy_run_settings(ckpt, &mc, &jc, &tc, &lim, &run, err)) {
      sp_log(SP_LOG_ERROR, "train: %s", err);
      return 2;
    }
    if (init && strcmp(init, run.init)) {
      sp_log(SP_LOG_ERROR, "train: --init %s, but the run in %s was started from %s", init,
             find_opt(argc, argv, "out"), run.init[0] ? run.init : "fresh weights");
      return 2;
    }
    st = (sp_policy_start){.init = run.init[0] ? run.init : NULL, .load = 0, .lim = &lim};
  } else if (init) {  // fine-tuning: the checkpoint's model, limits and preset are the base
    if (sp_policy_ckpt_settings(init, &mc, &lim, preset, pcap, err)) {
      sp_log(SP_LOG_ERROR, "train: --init: %s", err);
      return 2;
    }
    st = (sp_policy_start){.init = init, .load = 1, .lim = &lim};
  } else {
    sp_preset p;
    if (base_preset(argc, argv, &p, preset, pcap)) return 2;
    sp_policy_cfg_preset(&mc, p);
  }
  if (init && !resuming && find_opt(argc, argv, "preset")) {
    sp_log(SP_LOG_ERROR, "train: --init takes the model and its preset from %s; drop --preset", init);
    return 2;
  }
  cf_group groups[NGROUP] = {{sp_train_fields, &tc, "train"}, {sp_ptrain_fields, &jc, "job"},
                             {sp_policy_fields, &mc, "model"}};
  train_opts o = {.data = run.data[0] ? run.data : NULL, .can_init = 1, .can_imagine = 1,
                  .init_help = "fine-tune: start from this policy checkpoint's weights, limits and model config "
                               "(model.safetensors of a run or a committed one)",
                  .imagined = run.imagined[0] ? run.imagined : NULL};
  int rc = parse_options(argc, argv, usage, groups, NGROUP, preset, resuming,
                         "dataset from sp collect (FILE.h5), frames of the policy's --frame side", NULL, &o);
  if (rc) return rc < 0 ? 2 : 0;
  if (resuming && strcmp(o.imagined ? o.imagined : "", run.imagined)) {
    sp_log(SP_LOG_ERROR, "train: --imagined %s, but the run in %s was started with %s", o.imagined ? o.imagined : "(none)",
           o.out, run.imagined[0] ? run.imagined : "no imagined goals");
    return 2;
  }
  st.imagined = o.imagined;
  if (sp_policy_cfg_check(&mc, err) || sp_cf_check(sp_ptrain_fields, &jc, "job", err) ||
      sp_cf_check(sp_train_fields, &tc, "train", err)) {
    sp_log(SP_LOG_ERROR, "train: %s", err);
    return 2;
  }
  if (jc.goal_max < jc.goal_min) {
    sp_log(SP_LOG_ERROR, "train: --goal-max %d is below --goal-min %d", jc.goal_max, jc.goal_min);
    return 2;
  }
  if (thread_budget(&tc, o.oversub)) return 2;
  sp_policy_job *job = sp_policy_job_open(o.data, &mc, preset, &jc, &tc, &st, err);
  if (!job) {
    sp_log(SP_LOG_ERROR, "train: %s", err);
    return 1;
  }
  fprintf(stderr, "train: policy, preset %s, %.2f M parameters, head %s, data %s%s%s\n", preset,
          sp_policy_nparams(sp_policy_job_model(job)) / 1e6, mc.head == SP_POLICY_HEAD_MLP ? "mlp" : "diffusion",
          o.data, st.init ? ", fine-tuning " : "", st.init ? st.init : "");
  rc = run_trainer(&tc, sp_policy_job_trainable(job), &o);
  sp_policy_job_close(job);
  return rc;
}

int sp_cmd_train(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    printf("usage: sp train video|policy [options]   (sp train video --help, sp train policy --help)\n\n"
           "  video    the video diffusion U-Net (first frame + task text -> the next frames)\n"
           "  policy   the goal-conditioned diffusion policy (current + goal frame, end effector -> actions)\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "video")) return train_video(argc - 1, argv + 1);
  if (!strcmp(argv[1], "policy")) return train_policy(argc - 1, argv + 1);
  sp_log(SP_LOG_ERROR, "train: unknown model '%s' (known: video, policy)", argv[1]);
  return 2;
}
