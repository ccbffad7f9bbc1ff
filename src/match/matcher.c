/* matcher.c: the goal-frame state machine of Appendix F.
 *
 * State: the goal index into the imagined video and the steps spent on it. Each control step
 * brings the composite score of (observation, goal frame):
 *   score >= threshold            -> ADVANCE: goal + 1
 *   else steps_on_goal == max     -> FORCED:  goal + 1 (the hard switch that prevents deadlock)
 *   else                          -> HOLD
 * Once the goal passes the last frame every step reports DONE. Every goal is left after at most
 * max_steps steps, so the machine finishes within (n_frames - first) * max_steps steps. */
#include "core/log.h"
#include "match/match.h"

void sp_matcher_init(sp_matcher *m, int n_frames, int first, double threshold, int max_steps) {
  SP_ASSERT(n_frames >= 0 && first >= 0 && max_steps >= 1);
  m->n_frames = n_frames;
  m->goal = first < n_frames ? first : n_frames;
  m->steps_on_goal = 0;
  m->steps = 0;
  m->n_matched = m->n_forced = 0;
  m->threshold = threshold;
  m->max_steps = max_steps;
}

sp_matcher_event sp_matcher_step(sp_matcher *m, double score) {
  if (m->goal >= m->n_frames) return SP_MATCHER_DONE;
  m->steps++;
  m->steps_on_goal++;
  if (score >= m->threshold) {
    m->goal++;
    m->n_matched++;
    m->steps_on_goal = 0;
    return SP_MATCHER_ADVANCE;
  }
  if (m->steps_on_goal >= m->max_steps) {
    m->goal++;
    m->n_forced++;
    m->steps_on_goal = 0;
    return SP_MATCHER_FORCED;
  }
  return SP_MATCHER_HOLD;
}

const char *sp_matcher_event_name(sp_matcher_event e) {
  switch (e) {
    case SP_MATCHER_HOLD: return "hold";
    case SP_MATCHER_ADVANCE: return "advance";
    case SP_MATCHER_FORCED: return "forced";
    case SP_MATCHER_DONE: return "done";
  }
  return "?";
}
