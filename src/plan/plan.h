/* plan.h: the spatial plan table (SP paper, "Spatial Plan Table" and Appendix E).
 *
 * A plan is up to SP_PLAN_MAX steps; each step is an atomic action, a direction with every
 * component in {-1, 0, 1} and a distance in metres. Directions are world-frame Meta-World axes
 * (+x right, +y forward / away from the robot base, +z up; docs/plan.md), the same everywhere in sp.
 *
 * Text format (one line per step, optional header lines before the first step):
 *
 *   === Feedback Plan ===
 *   Plan:
 *   1. move [1, -1, -1] [0.07]
 *   2. grasp [0, 0, 0] [0.00]
 *
 * Encoding for the video model (reference encoder, ../shared/spec/reference-models.md 1.2-1.3):
 * 10 action ids (move 0 .. rotate 8, pad 9), 27 direction ids 9(x+1)+3(y+1)+(z+1), distance as a
 * float; always SP_PLAN_MAX rows, padded with (pad, (0,0,0), 0). `release` is a real action in
 * the types and the text format but encodes as pad (id 9), exactly as the reference encoder maps
 * every word outside its vocabulary, so released checkpoints and ours agree. */
#ifndef SP_PLAN_PLAN_H
#define SP_PLAN_PLAN_H

#include <stddef.h>

#define SP_PLAN_MAX 10          // steps in a plan table (reference: fixed length 10)
#define SP_PLAN_NACTION_ID 10   // action ids the encoder knows (Embedding(10, 64))
#define SP_PLAN_NDIR_ID 27      // direction ids (Embedding(27, 64))
#define SP_PLAN_MAX_DIST 10.0   // metres; a parsed distance above this is rejected
#define SP_PLAN_TEXT_MAX 1024   // enough for the header and SP_PLAN_MAX printed steps

/* action words; values 0..9 are the encoder ids, release has its own value but encodes as pad */
typedef enum {
  SP_PLAN_MOVE = 0,
  SP_PLAN_REACH,
  SP_PLAN_GRASP,
  SP_PLAN_PUSH,
  SP_PLAN_PULL,
  SP_PLAN_STRIKE,
  SP_PLAN_SLIDE,
  SP_PLAN_ADJUST,
  SP_PLAN_ROTATE,
  SP_PLAN_PAD,
  SP_PLAN_RELEASE,
  SP_PLAN_NACTION
} sp_plan_action;

typedef struct {
  int action;      // sp_plan_action
  int dir[3];      // each in {-1, 0, 1}, world-frame x, y, z
  double dist;     // metres, >= 0, on the 0.01 m grid
} sp_plan_step;

/* n real steps, then padding rows up to SP_PLAN_MAX (always filled, so step[] can be encoded
 * directly); a plan with n == 0 is all padding */
typedef struct {
  int n;
  sp_plan_step step[SP_PLAN_MAX];
} sp_plan;

const char *sp_plan_action_name(int action);    // "move", ...; "?" when out of range
int sp_plan_action_find(const char *word, size_t len);  // case-insensitive; -1 if unknown
/* encoder id of an action: its value for move..pad, SP_PLAN_PAD for release */
int sp_plan_action_id(int action);
int sp_plan_dir_id(const int dir[3]);            // 0..26; -1 if a component is outside {-1,0,1}
void sp_plan_dir_from_id(int id, int dir[3]);    // inverse of sp_plan_dir_id (id in 0..26)
double sp_plan_round_dist(double metres);        // to the 0.01 m grid (half away from zero)

/* an empty plan (n = 0, all padding) */
void sp_plan_clear(sp_plan *p);
/* append a step; the distance is rounded to 0.01 m. Returns 0, or -1 with err when the plan is
 * full or the step is invalid (pad, a component outside {-1,0,1}, a negative/non-finite distance) */
int sp_plan_push(sp_plan *p, int action, const int dir[3], double dist, char *err);
/* 1 when both plans have the same steps (padding included) */
int sp_plan_equal(const sp_plan *a, const sp_plan *b);

/* fixed-length encoding: SP_PLAN_MAX rows of (action id, direction id, distance) */
typedef struct {
  int action_id[SP_PLAN_MAX];
  int dir_id[SP_PLAN_MAX];
  float dist[SP_PLAN_MAX];
} sp_plan_enc;
void sp_plan_encode(const sp_plan *p, sp_plan_enc *out);

/* ---- text format ---- */

#define SP_PLAN_PARSE_TRUNCATE 1  // keep the first SP_PLAN_MAX steps instead of rejecting more

/* parse len bytes of text (need not be NUL-terminated). Rules (docs/plan.md):
 * - a leading UTF-8 byte-order mark is skipped;
 * - blank lines are skipped; leading/trailing blanks and a trailing '\r' are ignored;
 * - when a line "=== Feedback Plan ===" is present, everything before it is ignored (the
 *   reference's feedback.txt puts a "=== Distance Info ===" block there); an optional "Plan:"
 *   line may follow it; both only before the first step;
 * - a step is `<k>. <action> [<x>, <y>, <z>] [<dist>]` with k = 1, 2, ... in order, action a word
 *   of the vocabulary (any case), components exactly -1, 0 or 1, dist digits with at most one '.'
 *   (no sign, exponent, nan or inf), <= SP_PLAN_MAX_DIST, rounded to 0.01 m;
 * - `pad` rows must be (0,0,0) and 0 and may only be followed by pad rows (trailing padding);
 * - more than SP_PLAN_MAX rows is an error unless flags has SP_PLAN_PARSE_TRUNCATE.
 * Returns 0, or -1 with err = "line N: reason" and *out left as an empty plan. */
int sp_plan_parse(const char *text, size_t len, int flags, sp_plan *out, char *err);

/* print the n real steps in the text format, one per line, each ending in '\n'; with header,
 * first "=== Feedback Plan ===\nPlan:\n". Returns the length written (NUL-terminated), or -1
 * when cap is too small (SP_PLAN_TEXT_MAX always suffices). parse(format(p)) == p. */
int sp_plan_format(const sp_plan *p, int header, char *buf, size_t cap);

/* ---- rule planner (the offline default) ---- */

typedef struct {
  double dead_zone;  // metres; an offset component with |c| <= dead_zone gets direction 0
} sp_plan_rule_cfg;
void sp_plan_rule_cfg_default(sp_plan_rule_cfg *c);  // dead_zone 0.01

/* the per-task template (task = sp_task value, src/sim/env.h) instantiated from world-frame
 * positions: hand = obs[0:3], obj = obs[4:7], goal = obs[36:39]. The first step always goes from
 * the hand to the object (action move). Each motion step's direction is the component-wise sign
 * of its offset (dead zone cfg->dead_zone), its distance the offset's length rounded to 0.01 m.
 * Deterministic. cfg may be NULL (defaults). Returns 0, or -1 with err for an unknown task or
 * non-finite input. */
int sp_plan_rule(int task, const double hand[3], const double obj[3], const double goal[3],
                 const sp_plan_rule_cfg *cfg, sp_plan *out, char *err);

/* direction of one offset with a dead zone (the rule planner's per-step rule) */
void sp_plan_dir_of(const double off[3], double dead_zone, int dir[3]);

/* number of tasks the rule planner has templates for (== SP_NTASK) and the template's
 * one-line description, e.g. "move to the handle, pull it to the goal" */
int sp_plan_rule_ntask(void);
const char *sp_plan_rule_describe(int task);

#endif
