#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void sp_args_help(const char *cmd, const char *usage, const sp_arg *rows) {
  printf("usage: sp %s %s\n\noptions:\n", cmd, usage);
  for (const sp_arg *r = rows; r->name; r++) {
    char def[128] = "";
    if (r->kind == SP_ARG_STR && *(const char **)r->dst)
      snprintf(def, sizeof def, " (default %s)", *(const char **)r->dst);
    else if (r->kind == SP_ARG_INT)
      snprintf(def, sizeof def, " (default %d)", *(int *)r->dst);
    else if (r->kind == SP_ARG_DOUBLE)
      snprintf(def, sizeof def, " (default %g)", *(double *)r->dst);
    char lhs[64];
    snprintf(lhs, sizeof lhs, "--%s%s", r->name, r->kind == SP_ARG_FLAG ? "" : " X");
    printf("  %-22s %s%s\n", lhs, r->help, def);
  }
  printf("  %-22s %s\n", "--help", "show this help");
}

static int set_value(const char *cmd, const sp_arg *r, const char *v) {
  char *end;
  switch (r->kind) {
    case SP_ARG_STR: *(const char **)r->dst = v; return 0;
    case SP_ARG_INT: {
      errno = 0;
      long x = strtol(v, &end, 10);
      if (errno || *end || end == v || x < -2147483647L || x > 2147483647L) {
        sp_log(SP_LOG_ERROR, "%s: --%s expects an integer, got '%s'", cmd, r->name, v);
        return -1;
      }
      *(int *)r->dst = (int)x;
      return 0;
    }
    case SP_ARG_DOUBLE: {
      errno = 0;
      double x = strtod(v, &end);
      if (errno || *end || end == v || x != x) {
        sp_log(SP_LOG_ERROR, "%s: --%s expects a number, got '%s'", cmd, r->name, v);
        return -1;
      }
      *(double *)r->dst = x;
      return 0;
    }
    case SP_ARG_FLAG: *(int *)r->dst = 1; return 0;
  }
  return -1;
}

int sp_args_parse(const char *cmd, const char *usage, const sp_arg *rows, int argc, char **argv,
                  const char **pos, int maxpos, int *npos) {
  if (npos) *npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      sp_args_help(cmd, usage, rows);
      return 1;
    }
    if (strncmp(a, "--", 2) != 0) {
      if (!pos || !npos || *npos >= maxpos) {
        sp_log(SP_LOG_ERROR, "%s: unexpected argument '%s' (see sp %s --help)", cmd, a, cmd);
        return -1;
      }
      pos[(*npos)++] = a;
      continue;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const sp_arg *r = rows;
    for (; r->name; r++)
      if (strlen(r->name) == nlen && !strncmp(r->name, name, nlen)) break;
    if (!r->name) {
      sp_log(SP_LOG_ERROR, "%s: unknown option '%s' (see sp %s --help)", cmd, a, cmd);
      return -1;
    }
    if (r->kind == SP_ARG_FLAG) {
      if (eq) {
        sp_log(SP_LOG_ERROR, "%s: --%s takes no value", cmd, r->name);
        return -1;
      }
      *(int *)r->dst = 1;
      continue;
    }
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!v) {
      sp_log(SP_LOG_ERROR, "%s: --%s needs a value", cmd, r->name);
      return -1;
    }
    if (set_value(cmd, r, v)) return -1;
  }
  return 0;
}
