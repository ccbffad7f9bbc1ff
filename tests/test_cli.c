/* tests of the sp command's handling of bad input: a one-line error naming the problem and a
 * non-zero exit, never a crash. Runs $SP_BIN (make test sets it) or build/sp. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/fileio.h"

static const char *spbin(void) {
  const char *b = getenv("SP_BIN");
  return b && *b ? b : "build/sp";
}

/* run `sp ARGS`, capture stderr; returns the exit status (128+sig on a signal) */
static int run(const char *args, char *out, size_t outsz) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s %s 2>&1 >/dev/null", spbin(), args);
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  size_t n = fread(out, 1, outsz - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(cli, bad_input_gives_one_line_and_nonzero_exit, .timeout = 120) {
  if (!sp_file_exists(spbin())) cr_skip_test("%s not built", spbin());
  system("mkdir -p /tmp/sp_test_cli_bad/sawyer_xyz && echo '<mujoco><worldbody><body' > "
         "/tmp/sp_test_cli_bad/sawyer_xyz/sawyer_door_pull.xml");
  const struct { const char *args, *want; } cases[] = {
      {"frobnicate", "unknown command 'frobnicate'"},
      {"eval --tasks dooor --out /tmp/sp_test_cli_x", "unknown task 'dooor'"},
      {"eval --cameras corner9 --out /tmp/sp_test_cli_x", "unknown camera 'corner9'"},
      {"eval --seeds 5-3 --out /tmp/sp_test_cli_x", "bad seed list '5-3'"},
      {"eval --seeds 0 --tasks door-open --out /proc/sp_nope", "/proc/sp_nope"},
      {"eval --seeds 0 --tasks door-open --assets /nonexistent --out /tmp/sp_test_cli_x", "/nonexistent/sawyer_xyz"},
      {"eval --seeds 0 --tasks door-open --assets /tmp/sp_test_cli_bad --out /tmp/sp_test_cli_x", "XML parse error"},
      {"eval --shard 3/2 --out /tmp/sp_test_cli_x", "bad --shard"},
      {"eval --agent nobody --out /tmp/sp_test_cli_x", "unknown agent 'nobody'"},
      {"eval --bogus", "unknown option '--bogus'"},
      {"render --task door-open", "--out are required"},
      {"render --task door-open --camera nope --out /tmp/x.png", "unknown camera 'nope'"},
      {"render --task door-open --seed x --out /tmp/x.png", "expects an integer"},
      {"render --task door-open --out /nonexistent/dir/a.png", "/nonexistent/dir/a.png"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[4096];
    int rc = run(cases[i].args, out, sizeof out);
    cr_expect(rc == 1 || rc == 2, "sp %s: exit %d (want 1 or 2)", cases[i].args, rc);
    cr_expect(strstr(out, cases[i].want) != NULL, "sp %s: message lacks '%s': %s", cases[i].args,
              cases[i].want, out);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, 1, "sp %s: %d lines of error output: %s", cases[i].args, lines, out);
  }
}
