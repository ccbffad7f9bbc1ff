/* main.c: the `sp` command: dispatch to a subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/log.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *help;
} sp_command;

static const sp_command g_commands[] = {
    {"tasks", sp_cmd_tasks, "list the benchmark tasks and cameras"},
    {"render", sp_cmd_render, "render one camera image (RGB, depth, segmentation) of an episode"},
    {"eval", sp_cmd_eval, "run an agent over tasks x cameras x seeds; success table, GIFs"},
    {"collect", sp_cmd_collect, "collect expert demonstrations into an HDF5 dataset"},
    {"plan", sp_cmd_plan, "print the spatial plan table of an episode, or parse a plan file"},
    {"match", sp_cmd_match, "compare two frames (SSIM, flow, shape, blocks, composite score)"},
    {"train", sp_cmd_train, "train a model (video diffusion U-Net, policy) on a collected dataset"},
    {"generate", sp_cmd_generate, "imagine the video of an episode's first frame (plan table, DDIM, guidance)"},
    {"imagine", sp_cmd_imagine, "imagined goal frames for a dataset's demonstrations (sp train policy --imagined)"},
    {"videoeval", sp_cmd_videoeval, "score video checkpoints against the expert on held-out episodes (PSNR, SSIM, gripper error)"},
    {"export", sp_cmd_export, "store a checkpoint's weights as float16 (for committing)"},
    {"report", sp_cmd_report, "evaluation runs and training logs as one self-contained HTML page"},
    {NULL, NULL, NULL},
};

static void usage(void) {
  printf("sp: Spatial Policy for Meta-World, in C\n\nusage: sp <command> [options]   (sp <command> --help)\n\ncommands:\n");
  for (const sp_command *c = g_commands; c->name; c++) printf("  %-10s %s\n", c->name, c->help);
  printf("\nenvironment: SP_LOG=debug prints the agents' decisions (e.g. the AVDC agents' subgoals)\n");
}

int main(int argc, char **argv) {
  const char *lv = getenv("SP_LOG");
  if (lv && !strcmp(lv, "debug")) sp_log_set_level(SP_LOG_DEBUG);
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  for (const sp_command *c = g_commands; c->name; c++)
    if (!strcmp(argv[1], c->name)) return c->run(argc - 1, argv + 1);
  sp_log(SP_LOG_ERROR, "unknown command '%s' (see sp --help)", argv[1]);
  return 2;
}
