/* cmd_tasks.c: sp tasks: the benchmark tasks and cameras. */
#include <stdio.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "sim/env.h"

int sp_cmd_tasks(int argc, char **argv) {
  sp_arg rows[] = {{0}};
  int rc = sp_args_parse("tasks", "", rows, argc, argv, NULL, 0, NULL);
  if (rc) return rc < 0 ? 2 : 0;
  printf("tasks (Meta-World v2, goal observable; scene file):\n");
  for (int t = 0; t < SP_NTASK; t++) printf("  %-22s %s\n", sp_task_name(t), sp_task_scene_file(t));
  printf("cameras (benchmark: the first three):\n");
  for (int c = 0; c < SP_NCAMERA; c++) printf("  %s\n", sp_camera_name(c));
  return 0;
}
