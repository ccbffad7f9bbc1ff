/* args.h: table-driven option parsing for the sp subcommands.
 *
 * Each command declares one table of rows (name, kind, destination, help); the same table drives
 * parsing, validation and `--help`, so they cannot drift apart. Options are `--name value` or
 * `--name=value`; flags take no value. Unknown options and missing values are one-line errors. */
#ifndef SP_CLI_ARGS_H
#define SP_CLI_ARGS_H

typedef enum { SP_ARG_STR, SP_ARG_INT, SP_ARG_DOUBLE, SP_ARG_FLAG } sp_arg_kind;

typedef struct {
  const char *name;   // without the leading "--"
  sp_arg_kind kind;
  void *dst;          // const char **, int *, double *, int * (flag set to 1)
  const char *help;   // one line; "(default ...)" is appended from the initial value
} sp_arg;

/* parse argv[1..] of a subcommand. Positional arguments are collected into pos (up to maxpos).
 * Returns 0 ok, 1 when --help was printed, -1 on error (message already printed). */
int sp_args_parse(const char *cmd, const char *usage, const sp_arg *rows, int argc, char **argv,
                  const char **pos, int maxpos, int *npos);
void sp_args_help(const char *cmd, const char *usage, const sp_arg *rows);

#endif
