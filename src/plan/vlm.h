/* vlm.h: a client for an OpenAI-compatible /v1/chat/completions endpoint (the paper's GPT-4o),
 * for the two prompts of the paper's Appendix E: (a) spatial plan table generation and (b) video
 * validation (strict Accept / Reject).
 *
 * The run never stops for a VLM: a failed, slow or malformed reply is retried a bounded number of
 * times with exponential backoff, then replaced by the offline fallback (the rule planner for
 * plans, Accept for validation). Each kind of failure is counted; the first of each kind is
 * logged once as a warning, the counts are in sp_vlm_stats. The API key is sent only in the
 * Authorization header and is never printed or logged.
 *
 * Configuration (flags override the environment): SP_VLM_URL (base URL, e.g.
 * https://api.openai.com/v1, or the full .../chat/completions URL), SP_VLM_MODEL, SP_VLM_KEY or
 * else OPENAI_API_KEY. */
#ifndef SP_PLAN_VLM_H
#define SP_PLAN_VLM_H

#include "core/image.h"
#include "plan/plan.h"

typedef struct {
  const char *url;          // base URL or full chat-completions URL (required)
  const char *model;        // model name (required)
  const char *key;          // bearer key, may be NULL (local servers)
  double timeout_s;         // whole request, per attempt (default 60)
  double connect_timeout_s; // default 10
  int max_retries;          // retries after the first attempt (default 3)
  double backoff_s;         // first wait before a retry, doubled each time (default 1)
  double backoff_max_s;     // cap of one wait (default 16)
  int max_tokens;           // reply budget (default 300)
  double temperature;       // default 0
  long max_reply_bytes;     // a longer HTTP body is a malformed reply (default 4 MiB)
  sp_plan_rule_cfg fallback; // rule planner settings for the fallback plan (default dead zone)
} sp_vlm_config;

/* defaults, with url/model/key taken from the environment (NULL where unset) */
void sp_vlm_config_default(sp_vlm_config *c);

/* the failure kinds that are counted */
typedef enum {
  SP_VLM_WARN_TRANSPORT = 0,  // connection refused/reset, DNS, TLS, ...
  SP_VLM_WARN_TIMEOUT,        // no complete reply within timeout_s
  SP_VLM_WARN_HTTP_RETRY,     // HTTP 429 or 5xx (retried)
  SP_VLM_WARN_HTTP_FATAL,     // other HTTP status (not retried: 400, 401, 403, 404, ...)
  SP_VLM_WARN_BAD_JSON,       // body is not a chat-completions JSON with a text message
  SP_VLM_WARN_BAD_ANSWER,     // the message is not a plan / not exactly Accept or Reject
  SP_VLM_WARN_FALLBACK,       // a call gave up and used the offline fallback
  SP_VLM_NWARN
} sp_vlm_warn;

typedef struct {
  long calls;                 // sp_vlm_plan + sp_vlm_validate calls
  long attempts;              // HTTP requests sent
  long ok;                    // calls answered by the VLM
  long accept, reject;        // validation answers (fallbacks count as accept)
  long warn[SP_VLM_NWARN];    // failures by kind
} sp_vlm_stats;

typedef struct sp_vlm sp_vlm;

/* checks the configuration (url and model set, http(s) URL) and prepares the HTTP handle.
 * Returns NULL with err when it cannot be used. */
sp_vlm *sp_vlm_create(const sp_vlm_config *c, char *err);
void sp_vlm_free(sp_vlm *v);
const sp_vlm_stats *sp_vlm_get_stats(const sp_vlm *v);
/* one INFO line with the counts (and the endpoint and model, never the key) */
void sp_vlm_log_stats(const sp_vlm *v);

/* (a) plan generation: the prompt gives the task, the hand, object and goal positions and the
 * hand-to-object offset (world frame, docs/plan.md); img (RGB, may be NULL) is attached as a
 * base64 PNG. The answer is parsed with sp_plan_parse (truncating to SP_PLAN_MAX). Returns 0 when
 * *out is the VLM's plan, 1 when it is the rule planner's fallback; -1 only for invalid input
 * (unknown task, non-finite positions), with err. */
int sp_vlm_plan(sp_vlm *v, int task, const double hand[3], const double obj[3],
                const double goal[3], const sp_image *img, sp_plan *out, char *err);

/* (b) video validation: frames[0] is the current observation, frames[1..n-1] the generated video
 * (RGB). *accept = 1 or 0 from the VLM (return 0), or 1 as the fallback (return 1). */
int sp_vlm_validate(sp_vlm *v, int task, const sp_image *frames, int n, int *accept);

/* building blocks, exposed for tests */
/* base64 (RFC 4648, with padding) of n bytes; returns a malloc'd NUL-terminated string */
char *sp_vlm_base64(const unsigned char *data, size_t n);
/* PNG of an 8-bit image in memory as a data URL "data:image/png;base64,..."; NULL with err */
char *sp_vlm_png_data_url(const sp_image *img, char *err);
/* the two prompt texts (malloc'd), so they can be inspected and logged */
char *sp_vlm_plan_prompt(int task, const double hand[3], const double obj[3], const double goal[3]);
char *sp_vlm_validate_prompt(int task, int nframes);
/* extract the plan lines of a free-form answer (code fences and prose around them removed) and
 * parse them; returns 0 or -1 with err */
int sp_vlm_parse_plan_answer(const char *answer, sp_plan *out, char *err);
/* 1 Accept, 0 Reject, -1 anything else (case-insensitive, blanks, quotes, '*' and a final '.'
 * around the single word allowed) */
int sp_vlm_parse_verdict(const char *answer);

#endif
