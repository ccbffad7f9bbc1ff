/* twin_helpers.h: what the tests against PyTorch twins' fixtures share (tests/fixtures/models,
 * written by tools/twin_*.py): opening a fixture, fetching a float32 tensor of a known size, and
 * the relative error every twin comparison uses. */
#ifndef SP_TESTS_TWIN_HELPERS_H
#define SP_TESTS_TWIN_HELPERS_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>

#include "core/log.h"
#include "nn/nn_train.h"

/* tests/fixtures/models/NAME; a missing or unreadable fixture fails the test, saying what writes it */
static inline void st_open(nn_safetensors *st, const char *name) {
  char path[256], err[SP_ERRLEN];
  snprintf(path, sizeof path, "tests/fixtures/models/%s", name);
  cr_assert_eq(nn_st_open(st, path, err), 0, "%s (regenerate with /usr/bin/python3 tools/twin_*.py)", err);
}

/* the float32 tensor KEY of the fixture, which must hold exactly `want` elements */
static inline const float *fx(const nn_safetensors *st, const char *key, size_t want) {
  size_t n = 0;
  const float *p = nn_st_f32(st, key, &n);
  cr_assert(p != NULL, "fixture tensor %s missing", key);
  cr_assert_eq(n, want, "fixture %s has %zu elements, want %zu", key, n, want);
  return p;
}

/* max|got - want| / (max|want| + tiny); a NaN in got makes it NaN */
static inline double relerr(const float *got, const float *want, size_t n) {
  double e = 0, mb = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]);
    if (!(d <= e)) e = d;
    if (fabs(want[i]) > mb) mb = fabs(want[i]);
  }
  return e / (mb + 1e-30);
}

#endif
