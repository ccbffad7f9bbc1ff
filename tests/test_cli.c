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

/* one exit-code convention (README): 2 when the command line is wrong (nothing is created), 1 when
 * a run fails. Each case below was accepted before (0 episodes and exit 0, or a failure only at
 * the first render), or exited 1 for a bad value. */
Test(cli, bad_values_exit_2_before_anything_is_created, .timeout = 120) {
  if (!sp_file_exists(spbin())) cr_skip_test("%s not built", spbin());
  system("rm -rf /tmp/sp_test_cli_v");
  const struct { const char *args, *want; } cases[] = {
      {"eval --tasks , --out /tmp/sp_test_cli_v", "empty task list"},
      {"eval --cameras , --out /tmp/sp_test_cli_v", "empty camera list"},
      {"eval --tasks button-press --seeds 0 --width 0 --out /tmp/sp_test_cli_v", "--width 0"},
      {"eval --tasks button-press --seeds 0 --width 100000 --out /tmp/sp_test_cli_v", "--width 100000"},
      {"eval --tasks button-press --seeds 0 --height -5 --out /tmp/sp_test_cli_v", "--height -5"},
      {"eval --tasks button-press --seeds 0 --render-timeout 0 --out /tmp/sp_test_cli_v", "--render-timeout 0"},
      {"eval --tasks button-press --seeds 0 --jobs 0 --out /tmp/sp_test_cli_v", "--jobs 0"},
      {"render --task door-open --width 0 --out /tmp/sp_test_cli_v/r.png", "--width 0"},
      {"render --task door-open --height 100000 --out /tmp/sp_test_cli_v/r.png", "--height 100000"},
      {"collect --tasks , --out /tmp/sp_test_cli_v/d.h5", "empty task list"},
      {"collect --tasks button-press --render-width 0 --out /tmp/sp_test_cli_v/d.h5", "--render-width 0"},
      {"collect --tasks button-press --render-height 100000 --out /tmp/sp_test_cli_v/d.h5", "--render-height 100000"},
      {"collect --tasks button-press --jobs 0 --out /tmp/sp_test_cli_v/d.h5", "--jobs 0"},
      {"collect --tasks button-press --size 4 --out /tmp/sp_test_cli_v/d.h5", "--size 4"},
      {"collect --tasks button-press --deflate 10 --out /tmp/sp_test_cli_v/d.h5", "--deflate 10"},
      {"collect --tasks button-press --crop '*/*=0,0,300,300' --out /tmp/sp_test_cli_v/d.h5", "does not fit"},
      {"collect --tasks button-press --crop '*/*=0,0,128,128' --render-crop --out /tmp/sp_test_cli_v/d.h5",
       "centred"},
      {"collect --tasks button-press --seeds 3-5 --out /tmp/sp_test_cli_v/d.h5", "evaluation range"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    /* collect writes into an existing directory: nothing may appear there */
    int collect = !strncmp(cases[i].args, "collect", 7);
    if (collect) system("mkdir -p /tmp/sp_test_cli_v");
    char out[4096];
    int rc = run(cases[i].args, out, sizeof out);
    cr_expect_eq(rc, 2, "sp %s: exit %d (want 2): %s", cases[i].args, rc, out);
    cr_expect(strstr(out, cases[i].want) != NULL, "sp %s: message lacks '%s': %s", cases[i].args,
              cases[i].want, out);
    if (collect)
      cr_expect(!sp_file_exists("/tmp/sp_test_cli_v/d.h5") && !sp_file_exists("/tmp/sp_test_cli_v/d.h5.parts"),
                "sp %s left d.h5 or d.h5.parts", cases[i].args);
    else
      cr_expect(!sp_file_exists("/tmp/sp_test_cli_v"), "sp %s created its output", cases[i].args);
    system("rm -rf /tmp/sp_test_cli_v");
  }
}

static char *slurp(const char *path) {
  char err[512];
  char *s = sp_file_read(path, NULL, err);
  cr_assert(s, "%s", err);
  return s;
}

/* --merge never replaces a finished run; --resume and --merge refuse records that are not the
 * run's (a duplicated line, a seed outside --seeds), which used to be counted (276 episodes of 275) */
Test(cli, merge_and_resume_refuse_foreign_records, .timeout = 300) {
  if (!sp_file_exists(spbin())) cr_skip_test("%s not built", spbin());
  const char *d = "/tmp/sp_test_cli_mr";
  char cmd[1024], out[4096];
  snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", d, d);
  cr_assert_eq(system(cmd), 0);
  const char *base = "eval --agent expert --tasks button-press --cameras corner --seeds 0-3 --scenes builtin";
  snprintf(cmd, sizeof cmd, "%s --out %s/run", base, d);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  for (int s = 0; s < 2; s++) {
    snprintf(cmd, sizeof cmd, "%s --shard %d/2 --out %s/s%d", base, s, d, s);
    cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  }
  char p[512];
  snprintf(p, sizeof p, "%s/run/episodes.jsonl", d);
  char *before = slurp(p);

  /* merge into the finished run: refused, the run untouched */
  snprintf(cmd, sizeof cmd, "eval --merge %s/s0 %s/s1 --out %s/run", d, d, d);
  cr_expect_eq(run(cmd, out, sizeof out), 1, "%s", out);
  cr_expect(strstr(out, "already holds episodes") != NULL, "%s", out);
  char *after = slurp(p);
  cr_expect_str_eq(after, before, "the finished run was changed by --merge");
  free(after);
  /* into a new directory it works */
  snprintf(cmd, sizeof cmd, "eval --merge %s/s0 %s/s1 --out %s/merged", d, d, d);
  cr_expect_eq(run(cmd, out, sizeof out), 0, "%s", out);

  /* a duplicated record: --resume refuses and names the line */
  snprintf(cmd, sizeof cmd, "cp -r %s/run %s/dup && head -1 %s/run/episodes.jsonl >> %s/dup/episodes.jsonl",
           d, d, d, d);
  cr_assert_eq(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s --resume --out %s/dup", base, d);
  cr_expect_eq(run(cmd, out, sizeof out), 1, "%s", out);
  cr_expect(strstr(out, "episodes.jsonl:5: button-press corner seed") != NULL && strstr(out, "twice") != NULL,
            "%s", out);
  /* a record of a seed outside --seeds */
  snprintf(cmd, sizeof cmd, "cp -r %s/run %s/foreign && sed -i '2s/\"seed\":[0-9]*/\"seed\":7/' "
           "%s/foreign/episodes.jsonl", d, d, d);
  cr_assert_eq(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "%s --resume --out %s/foreign", base, d);
  cr_expect_eq(run(cmd, out, sizeof out), 1, "%s", out);
  cr_expect(strstr(out, "episodes.jsonl:2: button-press corner seed 7 is not an episode of this run") != NULL,
            "%s", out);
  /* a shard that holds another shard's record cannot be merged */
  snprintf(cmd, sizeof cmd, "head -1 %s/s1/episodes.jsonl >> %s/s0/episodes.jsonl", d, d);
  cr_assert_eq(system(cmd), 0);
  snprintf(cmd, sizeof cmd, "eval --merge %s/s0 %s/s1 --out %s/merged2", d, d, d);
  cr_expect_eq(run(cmd, out, sizeof out), 1, "%s", out);
  cr_expect(strstr(out, "another shard") != NULL, "%s", out);
  free(before);
  snprintf(cmd, sizeof cmd, "rm -rf %s", d);
  system(cmd);
}

/* sp collect's defaults are AVDC's dataset size with the fast rendering (docs/dataset.md): a change
 * here must come with new timings there */
Test(cli, collect_defaults_are_avdc_sized_and_fast) {
  if (!sp_file_exists(spbin())) cr_skip_test("%s not built", spbin());
  char cmd[1024], out[16384];
  snprintf(cmd, sizeof cmd, "%s collect --help", spbin());
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = 0;
  pclose(p);
  const char *want[] = {"(default all)", "(default corner,corner2,corner3)", "(default 1000-1009)",
                        "keep the first N successful seeds per (task, camera); 0: every seed (default 5)",
                        "(default 128)", "--full-render", "(default 1024)"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    cr_expect(strstr(out, want[i]) != NULL, "sp collect --help lacks '%s'", want[i]);
}
