/* tests of src/plan: encoding, the strict parser (good and bad inputs), the printer, round trips,
 * and the rule planner on synthetic positions. The simulator test is in test_plan_sim.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "plan/plan.h"
#include "sim/env.h"

static int parse_str(const char *s, int flags, sp_plan *p, char *err) {
  return sp_plan_parse(s, strlen(s), flags, p, err);
}

Test(plan_enc, action_ids_match_reference_vocabulary) {
  /* reference encoder: move 0, reach 1, grasp 2, push 3, pull 4, strike 5, slide 6, adjust 7,
   * rotate 8, pad 9; words outside it (release) map to pad */
  const char *ref[10] = {"move", "reach", "grasp", "push", "pull",
                         "strike", "slide", "adjust", "rotate", "pad"};
  for (int i = 0; i < 10; i++) {
    int a = sp_plan_action_find(ref[i], strlen(ref[i]));
    cr_expect_eq(a, i, "%s", ref[i]);
    cr_expect_eq(sp_plan_action_id(a), i, "%s", ref[i]);
    cr_expect_str_eq(sp_plan_action_name(i), ref[i]);
  }
  int r = sp_plan_action_find("release", 7);
  cr_expect_eq(r, SP_PLAN_RELEASE);
  cr_expect_eq(sp_plan_action_id(r), 9);
  cr_expect_eq(sp_plan_action_find("MoVe", 4), SP_PLAN_MOVE);
  cr_expect_eq(sp_plan_action_find("lift", 4), -1);
  cr_expect_eq(sp_plan_action_find("mov", 3), -1);
  cr_expect_eq(sp_plan_action_find("moves", 5), -1);
}

Test(plan_enc, direction_ids) {
  int d[3] = {-1, -1, -1};
  cr_expect_eq(sp_plan_dir_id(d), 0);
  d[0] = d[1] = d[2] = 0;
  cr_expect_eq(sp_plan_dir_id(d), 13);
  d[0] = d[1] = d[2] = 1;
  cr_expect_eq(sp_plan_dir_id(d), 26);
  int e[3] = {1, -1, -1};  // the paper's first step
  cr_expect_eq(sp_plan_dir_id(e), 18);
  int bad[3] = {2, 0, 0};
  cr_expect_eq(sp_plan_dir_id(bad), -1);
  /* all 27 ids round-trip and are distinct */
  for (int id = 0; id < 27; id++) {
    int v[3];
    sp_plan_dir_from_id(id, v);
    cr_expect_eq(sp_plan_dir_id(v), id);
    cr_expect_eq(id, 9 * (v[0] + 1) + 3 * (v[1] + 1) + (v[2] + 1));
  }
}

Test(plan_enc, encode_pads_to_ten) {
  sp_plan p;
  char err[SP_ERRLEN];
  cr_assert_eq(parse_str("1. move [1, -1, -1] [0.07]\n2. grasp [0, 0, 0] [0.00]\n"
                         "3. pull [0, 0, 1] [0.06]\n4. release [0, 0, 0] [0]\n",
                         0, &p, err), 0, "%s", err);
  cr_assert_eq(p.n, 4);
  sp_plan_enc e;
  sp_plan_encode(&p, &e);
  const int want_a[10] = {0, 2, 4, 9, 9, 9, 9, 9, 9, 9};
  const int want_d[10] = {18, 13, 14, 13, 13, 13, 13, 13, 13, 13};
  const float want_x[10] = {0.07f, 0, 0.06f, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 10; i++) {
    cr_expect_eq(e.action_id[i], want_a[i], "row %d", i);
    cr_expect_eq(e.dir_id[i], want_d[i], "row %d", i);
    cr_expect_eq(e.dist[i], want_x[i], "row %d", i);
  }
  /* an empty plan is all padding */
  sp_plan z;
  sp_plan_clear(&z);
  sp_plan_encode(&z, &e);
  for (int i = 0; i < 10; i++) {
    cr_expect_eq(e.action_id[i], 9);
    cr_expect_eq(e.dir_id[i], 13);
    cr_expect_eq(e.dist[i], 0.0f);
  }
}

Test(plan_enc, push_validates) {
  sp_plan p;
  char err[SP_ERRLEN];
  sp_plan_clear(&p);
  int d[3] = {1, 0, -1}, bad[3] = {0, 3, 0};
  cr_expect_eq(sp_plan_push(&p, SP_PLAN_MOVE, d, 0.0749, err), 0);
  cr_expect_eq(p.step[0].dist, 0.07);
  cr_expect_eq(sp_plan_push(&p, SP_PLAN_MOVE, bad, 0.1, err), -1);
  cr_expect_eq(sp_plan_push(&p, SP_PLAN_MOVE, d, -0.1, err), -1);
  cr_expect_eq(sp_plan_push(&p, SP_PLAN_MOVE, d, NAN, err), -1);
  cr_expect_eq(sp_plan_push(&p, SP_PLAN_PAD, d, 0.1, err), -1);
  cr_expect_eq(sp_plan_push(&p, 42, d, 0.1, err), -1);
  for (int i = 1; i < SP_PLAN_MAX; i++) cr_expect_eq(sp_plan_push(&p, SP_PLAN_PUSH, d, 0.01 * i, err), 0);
  cr_expect_eq(sp_plan_push(&p, SP_PLAN_PUSH, d, 0.1, err), -1);
  cr_expect(strstr(err, "full") != NULL, "%s", err);
  cr_expect_eq(p.n, SP_PLAN_MAX);
}

Test(plan_text, reference_feedback_file) {
  /* the reference's feedback.txt (assembly, seed 30, corner; Distance Info block shortened) */
  const char *s =
      "=== Distance Info ===\n{\n  \"distances\": [ {\"distance\": 0.0683} ]\n}\n\n"
      "=== Feedback Plan ===\nPlan:\n1. move [1, -1, -1] [0.07]\n2. grasp [0, 0, 0] [0.00]\n"
      "3. pull [0, 0, 1] [0.06]";
  sp_plan p;
  char err[SP_ERRLEN], buf[SP_PLAN_TEXT_MAX];
  cr_assert_eq(parse_str(s, 0, &p, err), 0, "%s", err);
  cr_assert_eq(p.n, 3);
  cr_expect_eq(p.step[0].action, SP_PLAN_MOVE);
  cr_expect_eq(p.step[0].dir[0], 1);
  cr_expect_eq(p.step[0].dir[1], -1);
  cr_expect_eq(p.step[0].dir[2], -1);
  cr_expect_eq(p.step[0].dist, 0.07);
  cr_expect_eq(p.step[2].action, SP_PLAN_PULL);
  cr_expect_eq(p.step[2].dist, 0.06);
  cr_assert(sp_plan_format(&p, 1, buf, sizeof buf) > 0);
  cr_expect_str_eq(buf, "=== Feedback Plan ===\nPlan:\n1. move [1, -1, -1] [0.07]\n"
                        "2. grasp [0, 0, 0] [0.00]\n3. pull [0, 0, 1] [0.06]\n");
}

Test(plan_text, accepted_variants) {
  sp_plan p;
  char err[SP_ERRLEN], buf[SP_PLAN_TEXT_MAX];
  /* CRLF, tabs, no blanks inside brackets, case, blank lines, Plan: header only, trailing pads,
   * integer and long decimal distances (rounded to 0.01) */
  const char *s =
      "\r\n  Plan:\r\n\r\n1.\tMOVE[1,-1,-1][0.068]  \r\n  2. Grasp [ 0 , 0 , 0 ] [ 0 ]\r\n"
      "3. slide [-1, 1, 1] [1.]\n4. pad [0, 0, 0] [0.00]\n5. pad [0, 0, 0] [0]\n";
  cr_assert_eq(parse_str(s, 0, &p, err), 0, "%s", err);
  cr_assert_eq(p.n, 3);
  cr_assert(sp_plan_format(&p, 0, buf, sizeof buf) > 0);
  cr_expect_str_eq(buf, "1. move [1, -1, -1] [0.07]\n2. grasp [0, 0, 0] [0.00]\n"
                        "3. slide [-1, 1, 1] [1.00]\n");
  /* empty text and headers only are the all-padding plan */
  cr_expect_eq(parse_str("", 0, &p, err), 0);
  cr_expect_eq(p.n, 0);
  cr_expect_eq(parse_str("=== Feedback Plan ===\nPlan:\n\n", 0, &p, err), 0, "%s", err);
  cr_expect_eq(p.n, 0);
  cr_expect_eq(sp_plan_format(&p, 0, buf, sizeof buf), 0);
  cr_expect_str_eq(buf, "");
}

/* each bad input must fail on the given line with a reason containing the given words */
static const struct {
  const char *text;
  int line;
  const char *why;
} g_bad[] = {
    {"1. lift [0, 0, 1] [0.10]\n", 1, "unknown action 'lift'"},
    {"1. move [1, -1, -1] [0.07]\n2. move [2, 0, 0] [0.1]\n", 2, "component 1 is '2'"},
    {"1. move [1, -1, 0.5] [0.1]\n", 1, "component 3 is '0.5'"},
    {"1. move [1, +1, 0] [0.1]\n", 1, "component 2"},
    {"1. move [1, -1, -1] [-0.07]\n", 1, "negative distance"},
    {"1. move [1, -1, -1] [abc]\n", 1, "not a non-negative decimal"},
    {"1. move [1, -1, -1] [1e3]\n", 1, "expected ']'"},
    {"1. move [1, -1, -1] [nan]\n", 1, "not a non-negative decimal"},
    {"1. move [1, -1, -1] [.]\n", 1, "not a non-negative decimal"},
    {"1. move [1, -1, -1] [0.1.2]\n", 1, "not a non-negative decimal"},
    {"1. move [1, -1, -1] [12.5]\n", 1, "above the limit"},
    {"1. move [1, -1, -1] []\n", 1, "not a non-negative decimal"},
    {"1. move [1, -1, -1]\n", 1, "to open the distance"},
    {"1. move [1, -1] [0.1]\n", 1, "after direction component 2"},
    {"1. move [1, -1, -1, 0] [0.1]\n", 1, "after direction component 3"},
    {"1. move [1, -1, -1] [0.1] extra\n", 1, "unexpected text"},
    {"\n\n2. move [1, -1, -1] [0.1]\n", 3, "step number 2, expected 1"},
    {"1. move [1, 0, 0] [0.1]\n1. move [1, 0, 0] [0.1]\n", 2, "step number 1, expected 2"},
    {"move [1, 0, 0] [0.1]\n", 1, "expected '<k>."},
    {"1 move [1, 0, 0] [0.1]\n", 1, "expected '<k>."},
    {"1.move [1, 0, 0] [0.1]\n", 1, "expected a blank"},
    {"1. [1, 0, 0] [0.1]\n", 1, "expected an action word"},
    {"1. pad [1, 0, 0] [0.1]\n", 1, "pad step must be"},
    {"1. pad [0, 0, 0] [0]\n2. move [1, 0, 0] [0.1]\n", 2, "after padding"},
    {"1. move [1, 0, 0] [0.1]\nPlan:\n", 2, "after the first step"},
    {"Plan:\nPlan:\n", 2, "repeated"},
    {"=== Feedback Plan ===\n=== Feedback Plan ===\n", 2, "repeated header"},
    {"Here is the plan:\n1. move [1, 0, 0] [0.1]\n", 1, "expected '<k>."},
};

Test(plan_text, bad_inputs_name_line_and_reason) {
  sp_plan p;
  char err[SP_ERRLEN];
  for (size_t i = 0; i < sizeof g_bad / sizeof g_bad[0]; i++) {
    err[0] = 0;
    int rc = parse_str(g_bad[i].text, 0, &p, err);
    cr_expect_eq(rc, -1, "case %zu must fail: %s", i, g_bad[i].text);
    char want[32];
    snprintf(want, sizeof want, "line %d: ", g_bad[i].line);
    cr_expect(strncmp(err, want, strlen(want)) == 0, "case %zu: '%s' should start with '%s'", i,
              err, want);
    cr_expect(strstr(err, g_bad[i].why) != NULL, "case %zu: '%s' should say '%s'", i, err,
              g_bad[i].why);
    cr_expect_eq(p.n, 0, "a failed parse leaves an empty plan");
  }
}

/* a file saved with a UTF-8 byte-order mark parses as without it; other bytes outside printable
 * ASCII are shown as \xNN in messages (they were '?', so a BOM read as '???') */
Test(plan_text, utf8_bom_and_non_ascii_bytes) {
  sp_plan p;
  char err[SP_ERRLEN], buf[SP_PLAN_TEXT_MAX];
  cr_assert_eq(parse_str("\xef\xbb\xbf" "1. move [-1, 1, -1] [0.45]\n", 0, &p, err), 0, "%s", err);
  cr_assert_eq(p.n, 1);
  cr_assert(sp_plan_format(&p, 0, buf, sizeof buf) > 0);
  cr_expect_str_eq(buf, "1. move [-1, 1, -1] [0.45]\n");
  cr_expect_eq(parse_str("\xef\xbb\xbf" "=== Feedback Plan ===\n1. grasp [0, 0, 0] [0]\n", 0, &p, err), 0,
               "%s", err);
  cr_expect_eq(p.n, 1);
  /* a BOM anywhere else is an error that shows its bytes */
  cr_expect_eq(parse_str("1. move [1, 0, 0] [0.1]\n\xef\xbb\xbf" "2. grasp [0, 0, 0] [0]\n", 0, &p, err), -1);
  cr_expect(strstr(err, "line 2: ") == err && strstr(err, "'\\xef\\xbb\\xbf2. grasp") != NULL, "%s", err);
  cr_expect_eq(parse_str("\xc3\xa9tape 1. move [1, 0, 0] [0.1]\n", 0, &p, err), -1);
  cr_expect(strstr(err, "got '\\xc3\\xa9tape 1. move [1~'") != NULL, "%s", err);
  cr_expect(strchr(err, '?') == NULL, "no '?' stands for a byte: %s", err);
}

Test(plan_text, nul_byte_and_length_bound) {
  sp_plan p;
  char err[SP_ERRLEN];
  const char s[] = "1. move [1, 0, 0] [0.1]\n2. gr\0sp [0, 0, 0] [0]\n";
  cr_expect_eq(sp_plan_parse(s, sizeof s - 1, 0, &p, err), -1);
  cr_expect(strstr(err, "line 2: NUL") != NULL, "%s", err);
  /* only len bytes are read: the prefix is a valid one-step plan */
  cr_expect_eq(sp_plan_parse(s, 24, 0, &p, err), 0, "%s", err);
  cr_expect_eq(p.n, 1);
  cr_expect_eq(sp_plan_parse(NULL, 0, 0, &p, err), 0);
}

Test(plan_text, more_than_ten_steps) {
  char text[2048] = "";
  for (int i = 1; i <= 12; i++) {
    char line[64];
    snprintf(line, sizeof line, "%d. move [0, 0, 1] [0.%02d]\n", i, i);
    strcat(text, line);
  }
  sp_plan p;
  char err[SP_ERRLEN];
  cr_expect_eq(parse_str(text, 0, &p, err), -1);
  cr_expect(strstr(err, "line 11: more than 10 steps") != NULL, "%s", err);
  cr_expect_eq(parse_str(text, SP_PLAN_PARSE_TRUNCATE, &p, err), 0, "%s", err);
  cr_expect_eq(p.n, 10);
  cr_expect_eq(p.step[9].dist, 0.10);
  /* ten steps plus trailing padding beyond ten rows is still too many rows */
}

Test(plan_text, random_round_trip) {
  /* printer -> parser gives the same plan, for 2000 random plans (distances up to 10 m) */
  sp_mt19937 r;
  sp_mt_seed(&r, 7);
  char buf[SP_PLAN_TEXT_MAX], err[SP_ERRLEN];
  for (int it = 0; it < 2000; it++) {
    sp_plan p, q;
    sp_plan_clear(&p);
    int n = (int)(sp_mt_u32(&r) % (SP_PLAN_MAX + 1));
    for (int i = 0; i < n; i++) {
      int a = (int)(sp_mt_u32(&r) % SP_PLAN_NACTION);
      if (a == SP_PLAN_PAD) a = SP_PLAN_RELEASE;
      int d[3];
      sp_plan_dir_from_id((int)(sp_mt_u32(&r) % 27), d);
      double dist = sp_mt_double(&r) * (it % 2 ? 10.0 : 0.5);
      cr_assert_eq(sp_plan_push(&p, a, d, dist, err), 0, "%s", err);
    }
    int len = sp_plan_format(&p, it % 3 == 0, buf, sizeof buf);
    cr_assert(len >= 0);
    cr_assert_eq(sp_plan_parse(buf, (size_t)len, 0, &q, err), 0, "%s\n%s", err, buf);
    cr_assert(sp_plan_equal(&p, &q), "round trip differs:\n%s", buf);
    char buf2[SP_PLAN_TEXT_MAX];
    sp_plan_format(&q, it % 3 == 0, buf2, sizeof buf2);
    cr_assert_str_eq(buf, buf2);
  }
  /* the worst case fits SP_PLAN_TEXT_MAX; a short buffer is refused */
  sp_plan p;
  sp_plan_clear(&p);
  int d[3] = {-1, -1, -1};
  for (int i = 0; i < SP_PLAN_MAX; i++) sp_plan_push(&p, SP_PLAN_RELEASE, d, 10.0, err);
  cr_expect(sp_plan_format(&p, 1, buf, sizeof buf) > 0);
  cr_expect_eq(sp_plan_format(&p, 1, buf, 40), -1);
}

/* ---- rule planner on synthetic positions ---- */

Test(plan_rule, every_task_starts_with_move_to_object) {
  sp_mt19937 r;
  sp_mt_seed(&r, 3);
  char err[SP_ERRLEN];
  cr_assert_eq(sp_plan_rule_ntask(), SP_NTASK);
  for (int task = 0; task < SP_NTASK; task++) {
    for (int it = 0; it < 200; it++) {
      double h[3], o[3], g[3];
      for (int i = 0; i < 3; i++) {
        h[i] = sp_mt_double(&r) - 0.5;
        o[i] = sp_mt_double(&r) - 0.5;
        g[i] = sp_mt_double(&r) - 0.5;
      }
      sp_plan p;
      cr_assert_eq(sp_plan_rule(task, h, o, g, NULL, &p, err), 0, "%s", err);
      cr_assert(p.n >= 2 && p.n <= SP_PLAN_MAX);
      cr_expect_eq(p.step[0].action, SP_PLAN_MOVE);
      double off[3] = {o[0] - h[0], o[1] - h[1], o[2] - h[2]};
      double len = sqrt(off[0] * off[0] + off[1] * off[1] + off[2] * off[2]);
      cr_expect(fabs(p.step[0].dist - len) <= 0.005 + 1e-12, "task %d dist %.4f vs %.4f", task,
                p.step[0].dist, len);
      for (int i = 0; i < 3; i++) {
        int want = off[i] > 0.01 ? 1 : (off[i] < -0.01 ? -1 : 0);
        cr_expect_eq(p.step[0].dir[i], want, "task %d axis %d off %.4f", task, i, off[i]);
      }
      /* deterministic */
      sp_plan q;
      sp_plan_rule(task, h, o, g, NULL, &q, err);
      cr_expect(sp_plan_equal(&p, &q));
    }
  }
}

Test(plan_rule, templates_and_dead_zone) {
  char err[SP_ERRLEN], buf[SP_PLAN_TEXT_MAX];
  sp_plan p;
  /* shelf-place: hand above the block, goal on the shelf behind it */
  double h[3] = {0.0, 0.6, 0.2}, o[3] = {0.005, 0.55, 0.02}, g[3] = {0.05, 0.85, 0.3};
  cr_assert_eq(sp_plan_rule(SP_TASK_SHELF_PLACE, h, o, g, NULL, &p, err), 0, "%s", err);
  sp_plan_format(&p, 0, buf, sizeof buf);
  /* hand->block (0.005, -0.05, -0.18): |x| within the dead zone; block->goal (0.045, 0.3, 0.28) */
  cr_expect_str_eq(buf, "1. move [0, -1, -1] [0.19]\n2. grasp [0, 0, 0] [0.00]\n"
                        "3. slide [1, 1, 1] [0.41]\n");
  /* door-open: move then pull */
  cr_assert_eq(sp_plan_rule(SP_TASK_DOOR_OPEN, h, o, g, NULL, &p, err), 0);
  cr_expect_eq(p.n, 2);
  cr_expect_eq(p.step[1].action, SP_PLAN_PULL);
  /* button-press-topdown: move, push down */
  double bo[3] = {0.0, 0.8, 0.3}, bg[3] = {0.0, 0.8, 0.2};
  cr_assert_eq(sp_plan_rule(SP_TASK_BUTTON_PRESS_TOPDOWN, h, bo, bg, NULL, &p, err), 0);
  sp_plan_format(&p, 0, buf, sizeof buf);
  cr_expect_str_eq(buf, "1. move [0, 1, 1] [0.22]\n2. push [0, 0, -1] [0.10]\n");
  /* a larger dead zone zeroes the small components */
  sp_plan_rule_cfg c = {.dead_zone = 0.1};
  cr_assert_eq(sp_plan_rule(SP_TASK_BUTTON_PRESS_TOPDOWN, h, bo, bg, &c, &p, err), 0);
  cr_expect_eq(p.step[0].dir[1], 1);
  cr_expect_eq(p.step[0].dir[2], 0);
  /* every task has a description; bad input is an error, not a crash */
  for (int t = 0; t < SP_NTASK; t++) cr_expect(strlen(sp_plan_rule_describe(t)) > 10);
  cr_expect_eq(sp_plan_rule(SP_NTASK, h, o, g, NULL, &p, err), -1);
  cr_expect_eq(sp_plan_rule(-1, h, o, g, NULL, &p, err), -1);
  double bad[3] = {0, NAN, 0};
  cr_expect_eq(sp_plan_rule(0, h, bad, g, NULL, &p, err), -1);
  cr_expect(strstr(err, "non-finite") != NULL, "%s", err);
}
