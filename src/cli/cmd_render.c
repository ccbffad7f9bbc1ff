/* cmd_render.c: placeholder until the sim module lands. */
#include "cli/commands.h"
#include "core/log.h"

int sp_cmd_render(int argc, char **argv) {
  (void)argc; (void)argv;
  sp_log(SP_LOG_ERROR, "render: not built yet");
  return 2;
}
