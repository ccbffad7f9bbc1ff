/* tests of `sp match` (src/cli/cmd_match.c) through the built binary: output, --flow image, and the
 * one-line errors on bad input. The binary is build/sp (`make test` builds it first); when it is
 * missing the tests say so and are skipped. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/image.h"
#include "core/log.h"

#define SP "build/sp"
#define FIX "tests/fixtures/match/"

/* run a command line, capture stdout+stderr into out; returns the exit status */
static int run(const char *cmd, char *out, size_t cap) {
  char full[1024];
  snprintf(full, sizeof full, "%s 2>&1", cmd);
  FILE *p = popen(full, "r");
  cr_assert(p, "popen %s", cmd);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void need_sp(void) {
  if (access(SP, X_OK) != 0) cr_skip_test("%s not built (run make first)", SP);
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

Test(match_cli, prints_components_and_writes_flow_png) {
  need_sp();
  char out[8192], path[] = "/tmp/sp_match_cli_XXXXXX", cmd[512], err[SP_ERRLEN];
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  snprintf(cmd, sizeof cmd, SP " match " FIX "scene_a.png " FIX "scene_b.png --flow %s", path);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  const char *keys[] = {"\nshape ", "\nblock ", "\nssim ", "\nflow ", "\ncomposite "};
  for (int i = 0; i < 5; i++) cr_expect(strstr(out, keys[i]) != NULL, "no '%s' in:\n%s", keys[i] + 1, out);
  sp_image im;
  cr_assert_eq(sp_png_read(path, 3, &im, err), 0, "%s", err);
  cr_expect(im.w == 128 && im.h == 128, "flow image %dx%d", im.w, im.h);
  sp_image_free(&im);
  remove(path);
}

static void expect_error(const char *args, const char *needle) {
  need_sp();
  char out[8192], cmd[512];
  snprintf(cmd, sizeof cmd, SP " match %s", args);
  int rc = run(cmd, out, sizeof out);
  cr_expect_neq(rc, 0, "%s: exit 0", args);
  cr_expect(strstr(out, needle) != NULL, "%s: no '%s' in: %s", args, needle, out);
  cr_expect_eq(count_lines(out), 1, "%s: not one line: %s", args, out);
}

Test(match_cli, different_sizes) { expect_error(FIX "scene_a.png " FIX "gauss_a.png", "differ in size"); }
Test(match_cli, missing_file) { expect_error(FIX "scene_a.png /nonexistent/x.png", "cannot read PNG"); }
Test(match_cli, not_a_png) { expect_error("tests/test_match_cli.c " FIX "scene_a.png", "cannot read PNG"); }
Test(match_cli, empty_file) { expect_error("/dev/null " FIX "scene_a.png", "cannot read PNG"); }
Test(match_cli, one_argument) { expect_error(FIX "scene_a.png", "expects two PNG files"); }
Test(match_cli, bad_weight) { expect_error(FIX "scene_a.png " FIX "scene_b.png --w-ssim -1", "weights"); }

Test(match_cli, tiny_frame) {
  char path[] = "/tmp/sp_match_tiny_XXXXXX", err[SP_ERRLEN], args[256];
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  uint8_t px[4] = {0, 50, 100, 150};
  cr_assert_eq(sp_png_write(path, px, 2, 2, 1, err), 0, "%s", err);
  snprintf(args, sizeof args, "%s %s", path, path);
  expect_error(args, "2x2");
  remove(path);
}
