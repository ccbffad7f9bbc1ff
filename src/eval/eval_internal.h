/* eval_internal.h: shared between the files of src/eval. */
#ifndef SP_EVAL_INTERNAL_H
#define SP_EVAL_INTERNAL_H

#include <cjson/cJSON.h>
#include <unistd.h>

#include "eval/eval.h"

char *sp_episode_to_json(const sp_episode *ep, const char *agent, const sp_env_model *em,
                         const char *checkpoint_hash);
int sp_episode_from_json(const char *line, sp_episode *ep);
/* the parts of a record that results.json repeats: the episode (task .. goal) and its health
 * (nan_count, mujoco_warnings, error), added to o */
void sp_episode_json_head(cJSON *o, const sp_episode *ep);
void sp_episode_json_health(cJSON *o, const sp_episode *ep);
/* every field of tm (SP_AGENT_TIMES) added to o */
void sp_timing_json(cJSON *o, const sp_agent_timing *tm);
int sp_episodes_load(const char *path, sp_episode **out, int repair, char *err);

/* write a JSON object, pretty-printed with a final newline, atomically to DIR/NAME */
int sp_json_write(const char *dir, const char *name, const cJSON *o, char *err);

/* canonical order: task index, camera index, seed (as listed in the config) */
int sp_episode_cmp(const void *a, const void *b);

/* Wilson score interval for k successes in n trials at 95 % ([0, 1] when n is 0) */
void sp_wilson95(int k, int n, double *lo, double *hi);

/* results.json + results.md from a config object (owned by caller) and the episodes */
int sp_eval_write_results(const char *dir, const cJSON *config, sp_episode *eps, int n,
                          const char *gl_renderer, char *err);

#endif
