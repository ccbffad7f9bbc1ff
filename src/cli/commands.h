/* commands.h: the sp subcommands; each lives in its own cmd_<name>.c and returns the exit status. */
#ifndef SP_CLI_COMMANDS_H
#define SP_CLI_COMMANDS_H

int sp_cmd_tasks(int argc, char **argv);
int sp_cmd_render(int argc, char **argv);
int sp_cmd_eval(int argc, char **argv);
int sp_cmd_collect(int argc, char **argv);
int sp_cmd_plan(int argc, char **argv);
int sp_cmd_match(int argc, char **argv);
int sp_cmd_train(int argc, char **argv);
int sp_cmd_report(int argc, char **argv);
int sp_cmd_generate(int argc, char **argv);
int sp_cmd_videoeval(int argc, char **argv);
int sp_cmd_export(int argc, char **argv);
int sp_cmd_imagine(int argc, char **argv);

#endif
