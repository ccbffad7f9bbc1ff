/* fuzz_plan_parse.c: libFuzzer harness for the plan text parser (see tests/fuzz/README.md).
 *
 * Properties checked on every input: the parser never crashes or reads out of bounds (ASan,
 * UBSan); a rejected input leaves an empty plan and a "line N: ..." message; an accepted plan is
 * valid (n <= 10, known actions, components in {-1,0,1}, 0 <= dist <= 10 m on the 0.01 grid,
 * padding after n) and survives format -> parse -> format unchanged. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "plan/plan.h"

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) {                                                                \
      fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

static void check_valid(const sp_plan *p) {
  CHECK(p->n >= 0 && p->n <= SP_PLAN_MAX);
  for (int i = 0; i < SP_PLAN_MAX; i++) {
    const sp_plan_step *s = &p->step[i];
    if (i >= p->n) {
      CHECK(s->action == SP_PLAN_PAD && s->dist == 0.0);
      CHECK(s->dir[0] == 0 && s->dir[1] == 0 && s->dir[2] == 0);
      continue;
    }
    CHECK(s->action >= 0 && s->action < SP_PLAN_NACTION && s->action != SP_PLAN_PAD);
    CHECK(sp_plan_dir_id(s->dir) >= 0);
    CHECK(s->dist >= 0.0 && s->dist <= SP_PLAN_MAX_DIST);
    CHECK(s->dist == sp_plan_round_dist(s->dist));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[SP_ERRLEN], buf[SP_PLAN_TEXT_MAX], buf2[SP_PLAN_TEXT_MAX];
  for (int flags = 0; flags <= SP_PLAN_PARSE_TRUNCATE; flags++) {
    sp_plan p, q;
    err[0] = 0;
    if (sp_plan_parse((const char *)data, size, flags, &p, err) != 0) {
      CHECK(p.n == 0);
      CHECK(strncmp(err, "line ", 5) == 0);
      CHECK(strlen(err) < SP_ERRLEN);
      continue;
    }
    check_valid(&p);
    int len = sp_plan_format(&p, flags, buf, sizeof buf);
    CHECK(len >= 0 && (size_t)len == strlen(buf));
    CHECK(sp_plan_parse(buf, (size_t)len, 0, &q, err) == 0);
    CHECK(sp_plan_equal(&p, &q));
    CHECK(sp_plan_format(&q, flags, buf2, sizeof buf2) == len);
    CHECK(memcmp(buf, buf2, (size_t)len) == 0);
    sp_plan_enc e;
    sp_plan_encode(&p, &e);
    for (int i = 0; i < SP_PLAN_MAX; i++) {
      CHECK(e.action_id[i] >= 0 && e.action_id[i] < SP_PLAN_NACTION_ID);
      CHECK(e.dir_id[i] >= 0 && e.dir_id[i] < SP_PLAN_NDIR_ID);
    }
  }
  return 0;
}
