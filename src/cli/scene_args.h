/* scene_args.h: the --scenes / --assets choice shared by the commands that load tasks. */
#ifndef SP_CLI_SCENE_ARGS_H
#define SP_CLI_SCENE_ARGS_H

#include "sim/env.h"

/* resolve --scenes (builtin|metaworld|NULL) and --assets (or SP_METAWORLD_ASSETS): builtin unless
 * an asset directory is given. Returns 0, or -1 after printing a one-line error. */
int sp_cli_scene_source(const char *cmd, const char *scenes, const char **assets,
                        sp_scene_source *out);
/* parse "a,b,c" of task names ("all" for every task) or camera names */
int sp_cli_parse_tasks(const char *cmd, const char *spec, int *tasks, int *n);
int sp_cli_parse_cameras(const char *cmd, const char *spec, int *cams, int *n);

#endif
