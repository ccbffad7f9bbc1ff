/* tests of `sp match` (src/cli/cmd_match.c) through the built binary: output, --flow image, and the
 * one-line errors on bad input. The binary is $SP_BIN (`make test` sets it and builds it first),
 * else build/sp; when it is missing the tests say so and are skipped. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/image.h"
#include "core/log.h"

#define FIX "tests/fixtures/match/"

static const char *sp_bin(void) {
  const char *b = getenv("SP_BIN");
  return b && *b ? b : "build/sp";
}

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
  if (access(sp_bin(), X_OK) != 0) cr_skip_test("%s not built (run make first)", sp_bin());
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
  snprintf(cmd, sizeof cmd, "%s match " FIX "scene_a.png " FIX "scene_b.png --flow %s", sp_bin(), path);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  const char *keys[] = {"\nshape ", "\nblock ", "\nssim ", "\nflow ", "\ncomposite "};
  for (int i = 0; i < 5; i++) cr_expect(strstr(out, keys[i]) != NULL, "no '%s' in:\n%s", keys[i] + 1, out);
  sp_image im;
  cr_assert_eq(sp_png_read(path, 3, &im, err), 0, "%s", err);
  cr_expect(im.w == 128 && im.h == 128, "flow image %dx%d", im.w, im.h);
  sp_image_free(&im);
  remove(path);
}

/* the README's convention: 1 for a file that cannot be used, 2 for a bad command line */
static void expect_error(const char *args, const char *needle, int want_rc) {
  need_sp();
  char out[8192], cmd[512];
  snprintf(cmd, sizeof cmd, "%s match %s", sp_bin(), args);
  int rc = run(cmd, out, sizeof out);
  cr_expect_eq(rc, want_rc, "%s: exit %d, want %d", args, rc, want_rc);
  cr_expect(strstr(out, needle) != NULL, "%s: no '%s' in: %s", args, needle, out);
  cr_expect_eq(count_lines(out), 1, "%s: not one line: %s", args, out);
}

Test(match_cli, different_sizes) { expect_error(FIX "scene_a.png " FIX "gauss_a.png", "differ in size", 1); }
Test(match_cli, missing_file) { expect_error(FIX "scene_a.png /nonexistent/x.png", "cannot read PNG", 1); }
Test(match_cli, not_a_png) { expect_error("tests/test_match_cli.c " FIX "scene_a.png", "cannot read PNG", 1); }
Test(match_cli, empty_file) { expect_error("/dev/null " FIX "scene_a.png", "cannot read PNG", 1); }
Test(match_cli, one_argument) { expect_error(FIX "scene_a.png", "expects two PNG files", 2); }
Test(match_cli, bad_weight) { expect_error(FIX "scene_a.png " FIX "scene_b.png --w-ssim -1", "weights", 2); }

Test(match_cli, tiny_frame) {
  char path[] = "/tmp/sp_match_tiny_XXXXXX", err[SP_ERRLEN], args[256];
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  uint8_t px[4] = {0, 50, 100, 150};
  cr_assert_eq(sp_png_write(path, px, 2, 2, 1, err), 0, "%s", err);
  snprintf(args, sizeof args, "%s %s", path, path);
  expect_error(args, "2x2", 1);
  remove(path);
}

/* the composite line of `sp match A B` */
static void composite_of(const char *a, const char *b, char *line, size_t cap) {
  char out[8192], cmd[1024];
  snprintf(cmd, sizeof cmd, "%s match %s %s --no-config", sp_bin(), a, b);
  cr_assert_eq(run(cmd, out, sizeof out), 0, "%s", out);
  const char *c = strstr(out, "composite ");
  cr_assert(c, "%s", out);
  size_t n = strcspn(c, "\n");
  snprintf(line, cap, "%.*s", (int)(n < cap ? n : cap - 1), c);
}

/* the same picture stored as RGBA (any alpha) or as 16-bit gray scores as the original: the
 * colour under the alpha is read as stored, 16-bit samples by their high byte. Before, RGBA was
 * composed onto uninitialised memory (scores changed from run to run) and 16-bit was taken for
 * linear light (a 16-bit copy scored 0.54 against its original). */
Test(match_cli, rgba_and_16bit_copies_score_as_the_original) {
  need_sp();
  char err[SP_ERRLEN];
  sp_image g;
  cr_assert_eq(sp_png_read(FIX "scene_a.png", 1, &g, err), 0, "%s", err);
  const int n = g.w * g.h;
  uint8_t *rgba = malloc((size_t)n * 4);
  uint16_t *g16 = malloc(sizeof(uint16_t) * (size_t)n);
  for (int i = 0; i < n; i++) {
    for (int k = 0; k < 3; k++) rgba[4 * i + k] = g.px[i];
    rgba[4 * i + 3] = (uint8_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 128 : 255);
    g16[i] = (uint16_t)(g.px[i] * 257);
  }
  const char *p4 = "/tmp/sp_match_cli_rgba.png", *p16 = "/tmp/sp_match_cli_g16.png";
  cr_assert_eq(sp_png_write(p4, rgba, g.w, g.h, 4, err), 0, "%s", err);
  cr_assert_eq(sp_png_write16(p16, g16, g.w, g.h, err), 0, "%s", err);
  char want[256], got[256];
  composite_of(FIX "scene_a.png", FIX "scene_b.png", want, sizeof want);
  for (int rep = 0; rep < 3; rep++) {
    composite_of(p4, FIX "scene_b.png", got, sizeof got);
    cr_expect_str_eq(got, want, "RGBA copy: '%s', original: '%s'", got, want);
  }
  composite_of(p16, FIX "scene_b.png", got, sizeof got);
  cr_expect_str_eq(got, want, "16-bit copy: '%s', original: '%s'", got, want);
  composite_of(FIX "scene_a.png", FIX "scene_a.png", want, sizeof want);
  composite_of(p16, FIX "scene_a.png", got, sizeof got);
  cr_expect_str_eq(got, want, "16-bit copy against its original: '%s', the original against itself: '%s'", got, want);
  unlink(p4);
  unlink(p16);
  free(rgba);
  free(g16);
  sp_image_free(&g);
}
