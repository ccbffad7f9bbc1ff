/* tests of src/core: MT19937 against NumPy's known values, files, images. */
#include <criterion/criterion.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/image.h"
#include "core/log.h"
#include "core/progress.h"
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

/* write a PNG with libpng's low-level API, as other tools do (no gAMA chunk): colour type
 * type, bit depth depth, samples px (h x w x channels, 16-bit ones big-endian) */
static void write_png_raw(const char *path, int w, int h, int type, int depth, const uint8_t *px) {
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  cr_assert(png && info);
  cr_assert_eq(setjmp(png_jmpbuf(png)), 0, "libpng write failed");
  png_init_io(png, f);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  int ch = type == PNG_COLOR_TYPE_GRAY ? 1 : type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
           : type == PNG_COLOR_TYPE_RGB ? 3 : 4;
  size_t stride = (size_t)w * ch * (depth / 8);
  for (int y = 0; y < h; y++) png_write_row(png, px + y * stride);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  fclose(f);
}

/* the heap under a fresh image buffer: fill freed blocks with a pattern, so a reader that
 * composes onto uninitialised memory gives a different answer each time */
static void dirty_heap(uint8_t v, size_t n) {
  for (int k = 0; k < 4; k++) {
    uint8_t *b = malloc(n);
    memset(b, v, n);
    free(b);
  }
}

/* an alpha channel is dropped: the stored colour comes back whatever the alpha and whatever the
 * heap held (libpng's simplified reader composed onto the uninitialised output buffer) */
Test(core_image, png_with_alpha_reads_the_stored_colour) {
  const int w = 40, h = 30;
  uint8_t *rgba = malloc((size_t)w * h * 4), *ga = malloc((size_t)w * h * 2);
  for (int i = 0; i < w * h; i++) {
    for (int k = 0; k < 3; k++) rgba[4 * i + k] = (uint8_t)(i * (k + 3) + 11 * k);
    rgba[4 * i + 3] = (uint8_t)(i % 5 == 0 ? 0 : i * 13);  // transparent, partial and opaque
    ga[2 * i] = (uint8_t)(i * 7);
    ga[2 * i + 1] = rgba[4 * i + 3];
  }
  const char *p4 = "/tmp/sp_test_png_rgba.png", *p2 = "/tmp/sp_test_png_ga.png";
  write_png_raw(p4, w, h, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba);
  write_png_raw(p2, w, h, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga);
  char err[SP_ERRLEN];
  for (int pass = 0; pass < 2; pass++) {
    dirty_heap(pass ? 0xff : 0x00, (size_t)w * h * 3);
    sp_image im;
    cr_assert_eq(sp_png_read(p4, 3, &im, err), 0, "%s", err);
    int bad = 0;
    for (int i = 0; i < w * h; i++)
      for (int k = 0; k < 3; k++) bad += im.px[3 * i + k] != rgba[4 * i + k];
    cr_expect_eq(bad, 0, "RGBA read as RGB: %d of %d samples differ from the stored colour", bad, 3 * w * h);
    sp_image_free(&im);
    dirty_heap(pass ? 0xff : 0x00, (size_t)w * h);
    cr_assert_eq(sp_png_read(p2, 1, &im, err), 0, "%s", err);
    bad = 0;
    for (int i = 0; i < w * h; i++) bad += im.px[i] != ga[2 * i];
    cr_expect_eq(bad, 0, "gray+alpha read as gray: %d of %d differ", bad, w * h);
    sp_image_free(&im);
    cr_assert_eq(sp_png_read(p2, 3, &im, err), 0, "%s", err);
    bad = 0;
    for (int i = 0; i < w * h; i++)
      for (int k = 0; k < 3; k++) bad += im.px[3 * i + k] != ga[2 * i];
    cr_expect_eq(bad, 0, "gray+alpha read as RGB: %d of %d differ", bad, 3 * w * h);
    sp_image_free(&im);
  }
  unlink(p4);
  unlink(p2);
  free(rgba);
  free(ga);
}

/* 16-bit samples are the 8-bit ones scaled by 257: they read back as the 8-bit values, with no
 * gamma conversion (the simplified reader took them for linear light: a stored 7 read as 49) */
Test(core_image, png_16bit_reads_its_high_byte) {
  const int w = 16, h = 16;
  uint8_t g16[16 * 16 * 2], rgb16[16 * 16 * 6];
  for (int i = 0; i < w * h; i++) {
    uint16_t v = (uint16_t)(i * 257);  // 0..255 scaled
    g16[2 * i] = (uint8_t)(v >> 8);
    g16[2 * i + 1] = (uint8_t)v;
    for (int k = 0; k < 3; k++) {
      uint16_t c = (uint16_t)(((i + 85 * k) & 255) * 257);
      rgb16[6 * i + 2 * k] = (uint8_t)(c >> 8);
      rgb16[6 * i + 2 * k + 1] = (uint8_t)c;
    }
  }
  const char *pg = "/tmp/sp_test_png_g16.png", *pc = "/tmp/sp_test_png_rgb16.png";
  write_png_raw(pg, w, h, PNG_COLOR_TYPE_GRAY, 16, g16);
  write_png_raw(pc, w, h, PNG_COLOR_TYPE_RGB, 16, rgb16);
  char err[SP_ERRLEN];
  sp_image im;
  cr_assert_eq(sp_png_read(pg, 1, &im, err), 0, "%s", err);
  cr_expect_eq(im.px[7], 7, "a stored 7 * 257 reads as %d", im.px[7]);
  int bad = 0;
  for (int i = 0; i < w * h; i++) bad += im.px[i] != i;
  cr_expect_eq(bad, 0, "16-bit gray: %d of %d differ", bad, w * h);
  sp_image_free(&im);
  cr_assert_eq(sp_png_read(pc, 3, &im, err), 0, "%s", err);
  bad = 0;
  for (int i = 0; i < w * h; i++)
    for (int k = 0; k < 3; k++) bad += im.px[3 * i + k] != ((i + 85 * k) & 255);
  cr_expect_eq(bad, 0, "16-bit RGB: %d of %d differ", bad, 3 * w * h);
  sp_image_free(&im);
  unlink(pg);
  unlink(pc);
}

/* a header that claims 100000 x 100000 pixels: a message that says so, not "out of memory" */
Test(core_image, png_huge_header_is_named) {
  const char *p = "/tmp/sp_test_png_huge.png";
  FILE *f = fopen(p, "wb");
  cr_assert(f);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  cr_assert_eq(setjmp(png_jmpbuf(png)), 0);
  png_init_io(png, f);
  png_set_IHDR(png, info, 100000, 100000, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);  // signature and IHDR only: the rest never comes
  png_destroy_write_struct(&png, &info);
  fclose(f);
  char err[SP_ERRLEN] = "";
  sp_image im;
  cr_expect_eq(sp_png_read(p, 3, &im, err), -1);
  cr_expect(strstr(err, "100000 x 100000") != NULL, "message names the size: %s", err);
  cr_expect(strstr(err, "out of memory") == NULL, "not an out-of-memory message: %s", err);
  cr_expect(strstr(err, p) != NULL, "message names the file: %s", err);
  unlink(p);
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

/* a resumed job's ETA comes from this run's rate: 50 of 100 done before, 10 more in 10 s -> 40 s
 * left (counting the earlier 50 as this run's work gave 6.7 s) */
Test(core_progress, resumed_eta_uses_this_runs_rate) {
  sp_progress p;
  sp_progress_start(&p, "t", 100);
  cr_expect_eq(sp_progress_eta(&p, 5.0), 0.0);
  sp_progress_resume(&p, 50);
  cr_expect_eq(sp_progress_eta(&p, 5.0), 0.0, "no work of this run yet");
  sp_progress_add(&p, 10);
  cr_expect_float_eq(sp_progress_eta(&p, 10.0), 40.0, 1e-9);
  sp_progress_start(&p, "t", 100);
  sp_progress_add(&p, 25);
  cr_expect_float_eq(sp_progress_eta(&p, 10.0), 30.0, 1e-9);
}
