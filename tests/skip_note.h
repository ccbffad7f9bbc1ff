/* skip_note.h: a visible one-line note when a test skips for want of an optional resource (the
 * Meta-World assets, h5dump). Criterion 2.4 prints skip reasons only with --verbose and exits
 * non-zero whenever a warning was logged, so the note goes to stderr directly: the run stays
 * green and the reader still learns what was skipped and how to enable it. */
#ifndef SP_TESTS_SKIP_NOTE_H
#define SP_TESTS_SKIP_NOTE_H

#include <stdio.h>

/* how to get the Meta-World assets, for the skip notes */
#define SP_ASSETS_HINT "set SP_METAWORLD_ASSETS, or fetch them with scripts/get-metaworld-assets.sh"

#define SP_SKIP_NOTE(...) \
  (fprintf(stderr, "sp_tests: SKIPPED: " __VA_ARGS__), fputc('\n', stderr), fflush(stderr))

#endif
