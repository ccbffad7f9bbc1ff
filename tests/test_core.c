/* tests of src/core: MT19937 against NumPy's known values, files, images. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "core/rng.h"

Test(core_rng, numpy_seed0_random_sample) {
  /* numpy.random.seed(0); numpy.random.random_sample(3) */
  const double want[3] = {0.5488135039273248, 0.7151893663724195, 0.6027633760716439};
  sp_mt19937 r;
  sp_mt_seed(&r, 0);
  for (int i = 0; i < 3; i++) cr_expect_eq(sp_mt_double(&r), want[i], "draw %d", i);
}

Test(core_rng, numpy_seed42_random_sample) {
  /* numpy.random.seed(42); numpy.random.random_sample(3) */
  const double want[3] = {0.3745401188473625, 0.9507143064099162, 0.7319939418114051};
  sp_mt19937 r;
  sp_mt_seed(&r, 42);
  for (int i = 0; i < 3; i++) cr_expect_eq(sp_mt_double(&r), want[i], "draw %d", i);
}

Test(core_rng, reference_mt19937_outputs) {
  /* the reference MT19937 (Matsumoto & Nishimura) with seed 5489: 1st output 3499211612 and
   * 10000th output 4123659995 (the value C++ std::mt19937 guarantees) */
  sp_mt19937 r;
  sp_mt_seed(&r, 5489);
  cr_expect_eq(sp_mt_u32(&r), 3499211612u);
  for (int i = 1; i < 9999; i++) sp_mt_u32(&r);
  cr_expect_eq(sp_mt_u32(&r), 4123659995u);
}

Test(core_rng, seed_derive_is_stable_and_distinct) {
  uint32_t a = sp_seed_derive("door-open", "corner", 3, "agent");
  cr_expect_eq(a, sp_seed_derive("door-open", "corner", 3, "agent"));
  cr_expect_neq(a, sp_seed_derive("door-open", "corner", 4, "agent"));
  cr_expect_neq(a, sp_seed_derive("door-open", "corner2", 3, "agent"));
  cr_expect_neq(a, sp_seed_derive("door-open", "corner", 3, "noise"));
}

Test(core_image, png_roundtrip_and_errors) {
  char err[SP_ERRLEN], path[] = "/tmp/sp_test_png_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  uint8_t px[4 * 3 * 3];
  for (int i = 0; i < (int)sizeof px; i++) px[i] = (uint8_t)(i * 7);
  cr_assert_eq(sp_png_write(path, px, 4, 3, 3, err), 0, "%s", err);
  sp_image im;
  cr_assert_eq(sp_png_read(path, 3, &im, err), 0, "%s", err);
  cr_expect_eq(im.w, 4);
  cr_expect_eq(im.h, 3);
  cr_expect_eq(memcmp(im.px, px, sizeof px), 0);
  sp_image_free(&im);
  /* a text file is not a PNG: clear error, no crash */
  FILE *f = fopen(path, "w");
  fputs("not a png", f);
  fclose(f);
  cr_expect_eq(sp_png_read(path, 3, &im, err), -1);
  cr_expect(strstr(err, path) != NULL, "error names the file: %s", err);
  unlink(path);
  cr_expect_eq(sp_png_read("/nonexistent/x.png", 1, &im, err), -1);
}

Test(core_fileio, atomic_write_and_mkdir) {
  char err[SP_ERRLEN];
  cr_assert_eq(sp_mkdir_p("/tmp/sp_test_dir/a/b", err), 0, "%s", err);
  cr_assert_eq(sp_file_write_atomic("/tmp/sp_test_dir/a/b/f.txt", "hello", 5, err), 0, "%s", err);
  size_t n;
  char *s = sp_file_read("/tmp/sp_test_dir/a/b/f.txt", &n, err);
  cr_assert(s);
  cr_expect_eq(n, 5);
  cr_expect_str_eq(s, "hello");
  free(s);
  cr_expect_eq(sp_mkdir_p("/proc/sp_cannot", err), -1);
}
