/* cmd_tasks.c: placeholder until the sim module lands. */
#include "cli/commands.h"
#include "core/log.h"

int sp_cmd_tasks(int argc, char **argv) {
  (void)argc; (void)argv;
  sp_log(SP_LOG_ERROR, "tasks: not built yet");
  return 2;
}
