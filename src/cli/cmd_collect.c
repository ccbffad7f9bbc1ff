/* cmd_collect.c: placeholder until its module lands; replaced by the module's owner. */
#include "cli/commands.h"
#include "core/log.h"

int sp_cmd_collect(int argc, char **argv) {
  (void)argc; (void)argv;
  sp_log(SP_LOG_ERROR, "collect: not built yet");
  return 2;
}
