#include "cli/scene_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int sp_cli_scene_source(const char *cmd, const char *scenes, const char **assets,
                        sp_scene_source *out) {
  if (!*assets || !**assets) {
    const char *env = getenv("SP_METAWORLD_ASSETS");
    if (env && *env && (!scenes || !strcmp(scenes, "metaworld"))) *assets = env;
  }
  if (!scenes) {
    *out = *assets && **assets ? SP_SCENES_METAWORLD : SP_SCENES_BUILTIN;
    return 0;
  }
  if (!strcmp(scenes, "builtin")) { *out = SP_SCENES_BUILTIN; return 0; }
  if (!strcmp(scenes, "metaworld")) {
    if (!*assets || !**assets) {
      sp_log(SP_LOG_ERROR, "%s: --scenes metaworld needs --assets DIR (Meta-World's assets_v2) "
             "or SP_METAWORLD_ASSETS", cmd);
      return -1;
    }
    *out = SP_SCENES_METAWORLD;
    return 0;
  }
  sp_log(SP_LOG_ERROR, "%s: unknown --scenes '%s' (builtin or metaworld)", cmd, scenes);
  return -1;
}

static int parse_list(const char *cmd, const char *what, const char *spec, int *ids, int *n, int max,
                      int (*find)(const char *), const char *(*name)(int), int nall) {
  *n = 0;
  if (!spec || !*spec) {
    sp_log(SP_LOG_ERROR, "%s: empty %s list", cmd, what);
    return -1;
  }
  if (!strcmp(spec, "all")) {
    for (int i = 0; i < nall; i++) ids[(*n)++] = i;
    return 0;
  }
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", spec);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int id = find(tok);
    if (id < 0) {
      sp_log(SP_LOG_ERROR, "%s: unknown %s '%s' (see sp tasks)", cmd, what, tok);
      return -1;
    }
    for (int i = 0; i < *n; i++)
      if (ids[i] == id) {
        sp_log(SP_LOG_ERROR, "%s: %s '%s' listed twice", cmd, what, name(id));
        return -1;
      }
    if (*n >= max) {
      sp_log(SP_LOG_ERROR, "%s: too many %ss", cmd, what);
      return -1;
    }
    ids[(*n)++] = id;
  }
  if (*n == 0) {
    sp_log(SP_LOG_ERROR, "%s: empty %s list '%s'", cmd, what, spec);
    return -1;
  }
  return 0;
}

int sp_cli_parse_tasks(const char *cmd, const char *spec, int *tasks, int *n) {
  return parse_list(cmd, "task", spec, tasks, n, SP_NTASK, sp_task_find, sp_task_name, SP_NTASK);
}

int sp_cli_parse_cameras(const char *cmd, const char *spec, int *cams, int *n) {
  return parse_list(cmd, "camera", spec, cams, n, SP_NCAMERA, sp_camera_find, sp_camera_name, 3);
}
