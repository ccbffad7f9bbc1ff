/* train_helpers.h: what the end-to-end training tests share (tests/test_models_train.c,
 * tests/test_models_policy_net.c): the sp binary under test, a tiny dataset made once per test
 * process, shell helpers, and a byte-for-byte comparison of two safetensors files. */
#ifndef SP_TESTS_TRAIN_HELPERS_H
#define SP_TESTS_TRAIN_HELPERS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "data/collect.h"
#include "nn/nn_train.h"

static inline const char *sp_test_bin(void) {
  const char *b = getenv("SP_BIN");
  return b && *b ? b : "build/sp";
}

/* /tmp/sp_test_<tag>_<pid>.h5: 2 tasks x 1 camera x 3 seeds (1000-1002) at 16x16, 24 steps each,
 * built-in scenes; made on first use in each test process */
static inline const char *sp_test_tiny_dataset(const char *tag) {
  static char path[256];
  if (path[0]) return path;
  snprintf(path, sizeof path, "/tmp/sp_test_%s_%d.h5", tag, (int)getpid());
  static long seeds[3] = {1000, 1001, 1002};
  sp_collect_config c;
  sp_collect_config_default(&c);
  c.tasks[0] = SP_TASK_BUTTON_PRESS;
  c.tasks[1] = SP_TASK_DOOR_OPEN;
  c.ntask = 2;
  c.cams[0] = 0;
  c.ncam = 1;
  c.seeds = seeds;
  c.nseed = 3;
  c.out = path;
  c.source = SP_SCENES_BUILTIN;
  c.size = 16;
  c.render_crop = 1;
  c.max_steps = 24;
  c.keep_failures = 1;
  c.shadow_size = 256;
  c.checkpoint_s = 0;
  c.jobs = 1;
  sp_collect_stats st = {0};
  char err[SP_ERRLEN];
  if (sp_collect_run(&c, &st, err)) cr_assert_fail("collect: %s", err);
  return path;
}

static inline void sp_test_rm_rf(const char *p) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
  if (system(cmd)) {}
}

/* a shell command's exit status (128 + signal when killed) */
static inline int sp_test_run(const char *cmd) {
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* run cmd through sh (start it with exec so the kill reaches the program) and SIGKILL it as soon
 * as DIR/last.safetensors exists, waiting at most 120 s: the wait status, and in *waited the
 * seconds waited (120 or more: no checkpoint appeared) */
static inline int sp_test_kill_at_checkpoint(const char *cmd, const char *dir, double *waited) {
  char path[1024];
  snprintf(path, sizeof path, "%s/last.safetensors", dir);
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  *waited = 0;
  while (access(path, F_OK) != 0 && *waited < 120) {
    usleep(500);
    *waited += 0.0005;
  }
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  return status;
}

/* every tensor of two safetensors files byte-equal */
static inline void sp_test_same_tensors(const char *a, const char *b) {
  nn_safetensors x, y;
  char err[SP_ERRLEN];
  cr_assert_eq(nn_st_open(&x, a, err), 0, "%s", err);
  cr_assert_eq(nn_st_open(&y, b, err), 0, "%s", err);
  cr_assert_eq(x.n, y.n);
  for (int i = 0; i < x.n; i++) {
    const nn_st_tensor *t = nn_st_find(&y, x.t[i].name);
    cr_assert(t, "%s missing in %s", x.t[i].name, b);
    cr_assert_eq(t->end - t->begin, x.t[i].end - x.t[i].begin);
    cr_expect(!memcmp(x.buf + x.data_off + x.t[i].begin, y.buf + y.data_off + t->begin, t->end - t->begin),
              "tensor %s differs between the runs", x.t[i].name);
  }
  nn_st_close(&x);
  nn_st_close(&y);
}

#endif
