/* vlm.c: OpenAI-compatible chat-completions client for plan generation and video validation.
 *
 * One sp_vlm owns one libcurl easy handle (reused, so keep-alive works); use one per thread.
 * Every call is: build the prompt -> up to 1 + max_retries attempts (HTTP POST, decode the JSON,
 * check the answer), with exponential backoff between attempts -> the answer or the offline
 * fallback. Failures are counted by kind and only the first of each kind is logged. */
#include "plan/vlm.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <png.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "sim/env.h"

struct sp_vlm {
  sp_vlm_config cfg;  // url/model/key point into the owned copies below
  char *url, *model, *key;
  CURL *curl;
  sp_vlm_stats stats;
};

static const char *const g_warn_names[SP_VLM_NWARN] = {
    "transport error", "timeout", "HTTP 429/5xx", "HTTP error", "malformed JSON reply",
    "malformed answer", "fallback used",
};

void sp_vlm_config_default(sp_vlm_config *c) {
  memset(c, 0, sizeof *c);
  c->url = getenv("SP_VLM_URL");
  c->model = getenv("SP_VLM_MODEL");
  c->key = getenv("SP_VLM_KEY");
  if (!c->key || !*c->key) c->key = getenv("OPENAI_API_KEY");
  c->timeout_s = 60.0;
  c->connect_timeout_s = 10.0;
  c->max_retries = 3;
  c->backoff_s = 1.0;
  c->backoff_max_s = 16.0;
  c->max_tokens = 300;
  c->temperature = 0.0;
  c->max_reply_bytes = 4L << 20;
  sp_plan_rule_cfg_default(&c->fallback);
}

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static int g_curl_ok;
static void curl_init_once(void) { g_curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* the full chat-completions URL from a base URL */
static char *full_url(const char *base) {
  size_t n = strlen(base);
  while (n > 0 && base[n - 1] == '/') n--;
  const char *suffix = "/v1/chat/completions";
  const char *cc = "/chat/completions";
  if (n >= strlen(cc) && !memcmp(base + n - strlen(cc), cc, strlen(cc))) suffix = "";
  else if (n >= 3 && !memcmp(base + n - 3, "/v1", 3)) suffix = cc;
  char *u = malloc(n + strlen(suffix) + 1);
  if (!u) return NULL;
  memcpy(u, base, n);
  strcpy(u + n, suffix);
  return u;
}

sp_vlm *sp_vlm_create(const sp_vlm_config *c, char *err) {
  if (!c->url || !*c->url)
    return sp_errf(err, "vlm: no endpoint URL (give --vlm-url or set SP_VLM_URL)"), NULL;
  if (strncmp(c->url, "http://", 7) && strncmp(c->url, "https://", 8))
    return sp_errf(err, "vlm: URL '%.200s' must start with http:// or https://", c->url), NULL;
  if (!c->model || !*c->model)
    return sp_errf(err, "vlm: no model name (give --vlm-model or set SP_VLM_MODEL)"), NULL;
  if (!(c->timeout_s > 0) || !(c->connect_timeout_s > 0) || c->max_retries < 0 ||
      !(c->backoff_s >= 0) || c->max_tokens <= 0 || c->max_reply_bytes <= 0 ||
      !(c->fallback.dead_zone >= 0))
    return sp_errf(err, "vlm: invalid timeout/retry/token settings"), NULL;
  pthread_once(&g_curl_once, curl_init_once);
  if (!g_curl_ok) return sp_errf(err, "vlm: libcurl global init failed"), NULL;
  sp_vlm *v = calloc(1, sizeof *v);
  if (!v) return sp_errf(err, "vlm: out of memory"), NULL;
  v->cfg = *c;
  v->url = full_url(c->url);
  v->model = dup_str(c->model);
  v->key = (c->key && *c->key) ? dup_str(c->key) : NULL;
  v->curl = curl_easy_init();
  if (!v->url || !v->model || (c->key && *c->key && !v->key) || !v->curl) {
    sp_vlm_free(v);
    return sp_errf(err, "vlm: out of memory or curl_easy_init failed"), NULL;
  }
  v->cfg.url = v->url;
  v->cfg.model = v->model;
  v->cfg.key = v->key;
  return v;
}

void sp_vlm_free(sp_vlm *v) {
  if (!v) return;
  if (v->curl) curl_easy_cleanup(v->curl);
  if (v->key) {
    volatile char *k = v->key;
    while (*k) *k++ = 0;
    free(v->key);
  }
  free(v->url);
  free(v->model);
  free(v);
}

const sp_vlm_stats *sp_vlm_get_stats(const sp_vlm *v) { return &v->stats; }

void sp_vlm_log_stats(const sp_vlm *v) {
  const sp_vlm_stats *s = &v->stats;
  char w[512] = "";
  size_t n = 0;
  for (int k = 0; k < SP_VLM_NWARN; k++)
    if (s->warn[k] && n < sizeof w)
      n += (size_t)snprintf(w + n, sizeof w - n, ", %s %ld", g_warn_names[k], s->warn[k]);
  sp_log(SP_LOG_INFO, "vlm %s (%s): %ld calls, %ld attempts, %ld answered, accept %ld, reject %ld%s",
         v->url, v->model, s->calls, s->attempts, s->ok, s->accept, s->reject, w);
}

/* count a failure; log the first of its kind */
static void warn(sp_vlm *v, sp_vlm_warn kind, const char *fmt, ...) {
  if (v->stats.warn[kind]++ > 0) return;
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  sp_log(SP_LOG_WARN, "vlm: %s: %s (further ones are counted, not shown)", g_warn_names[kind], msg);
}

/* ---- base64 and PNG ---- */

char *sp_vlm_base64(const unsigned char *d, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
  if (!out) return NULL;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned x = (unsigned)d[i] << 16 | (unsigned)d[i + 1] << 8 | d[i + 2];
    *o++ = tab[x >> 18];
    *o++ = tab[(x >> 12) & 63];
    *o++ = tab[(x >> 6) & 63];
    *o++ = tab[x & 63];
  }
  if (i < n) {
    unsigned x = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0);
    *o++ = tab[x >> 18];
    *o++ = tab[(x >> 12) & 63];
    *o++ = i + 1 < n ? tab[(x >> 6) & 63] : '=';
    *o++ = '=';
  }
  *o = 0;
  return out;
}

char *sp_vlm_png_data_url(const sp_image *img, char *err) {
  if (!img || !img->px || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3 && img->c != 4))
    return sp_errf(err, "vlm: image must be 8-bit gray, RGB or RGBA"), NULL;
  png_image pi;
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  pi.width = (png_uint_32)img->w;
  pi.height = (png_uint_32)img->h;
  pi.format = img->c == 1 ? PNG_FORMAT_GRAY : (img->c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA);
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&pi, NULL, &size, 0, img->px, 0, NULL) || size == 0) {
    sp_errf(err, "vlm: PNG encoding failed: %s", pi.message);
    png_image_free(&pi);
    return NULL;
  }
  unsigned char *png = malloc(size);
  if (!png) return sp_errf(err, "vlm: out of memory for a PNG"), NULL;
  if (!png_image_write_to_memory(&pi, png, &size, 0, img->px, 0, NULL)) {
    sp_errf(err, "vlm: PNG encoding failed: %s", pi.message);
    png_image_free(&pi);
    free(png);
    return NULL;
  }
  char *b64 = sp_vlm_base64(png, size);
  free(png);
  if (!b64) return sp_errf(err, "vlm: out of memory for base64"), NULL;
  static const char prefix[] = "data:image/png;base64,";
  size_t nb = strlen(b64);
  char *url = malloc(sizeof prefix + nb);
  if (url) {
    memcpy(url, prefix, sizeof prefix - 1);
    memcpy(url + sizeof prefix - 1, b64, nb + 1);
  } else {
    sp_errf(err, "vlm: out of memory for a data URL");
  }
  free(b64);
  return url;
}

/* ---- prompts (paper, Appendix E) ---- */

static const char k_sys_plan[] =
    "You are the spatial planner of a robot arm. You answer only with a spatial plan table in the "
    "exact format you are given, with explicit directions and distances.";
static const char k_sys_validate[] =
    "You check generated robot videos before a robot follows them. You answer with exactly one "
    "word: Accept or Reject.";

static char *vformat(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

char *sp_vlm_plan_prompt(int task, const double h[3], const double o[3], const double g[3]) {
  double d[3] = {o[0] - h[0], o[1] - h[1], o[2] - h[2]};
  double len = sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
  return vformat(
      "Task: %s (Meta-World, a Sawyer arm with a two-finger gripper; %s).\n"
      "Coordinates are world-frame metres: +x is to the robot's right, +y is forward (away from "
      "the robot base), +z is up.\n"
      "End-effector: (%.3f, %.3f, %.3f)\nTarget object: (%.3f, %.3f, %.3f)\n"
      "Goal: (%.3f, %.3f, %.3f)\n"
      "Offset from the end-effector to the object: (%.3f, %.3f, %.3f), length %.2f m.\n\n"
      "Write the spatial plan table that completes the task: at most %d steps, one per line, "
      "exactly in the form\n<k>. <action> [<x>, <y>, <z>] [<distance>]\n"
      "where <action> is one of move, reach, grasp, push, pull, strike, slide, adjust, rotate, "
      "release; [<x>, <y>, <z>] is the direction of the motion, each component -1, 0 or 1 (the "
      "sign of the motion along that axis, 0 when it is under 0.01 m); <distance> is the length "
      "of the motion in metres with two decimals (0.00 for grasp and release). Step 1 moves the "
      "end-effector to the object.\nExample:\n1. move [1, -1, -1] [0.07]\n2. grasp [0, 0, 0] "
      "[0.00]\n\nAnswer with the plan lines only, no other text.",
      sp_task_name(task), sp_plan_rule_describe(task), h[0], h[1], h[2], o[0], o[1], o[2], g[0],
      g[1], g[2], d[0], d[1], d[2], len, SP_PLAN_MAX);
}

char *sp_vlm_validate_prompt(int task, int nframes) {
  return vformat(
      "Task: %s.\nThe first image is the current camera view of the robot. The next %d images are "
      "a generated video that should start from it and show the robot carrying out the task.\n"
      "Accept if the task object stays present and complete in every generated frame, the robot "
      "and the scene stay consistent with the first image, and the frames progress towards "
      "completing the task; tolerate minor blur, noise or small visual artifacts.\n"
      "Reject if the object disappears, is duplicated or hallucinated, the scene changes, or the "
      "frames do not progress towards the task.\n"
      "Answer with exactly one word: Accept or Reject.",
      sp_task_name(task), nframes - 1);
}

/* ---- answers ---- */

static int is_sp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

int sp_vlm_parse_plan_answer(const char *answer, sp_plan *out, char *err) {
  sp_plan_clear(out);
  size_t len = strlen(answer);
  char *keep = malloc(len + 1);
  if (!keep) return sp_errf(err, "out of memory");
  size_t n = 0;
  int steps = 0;
  const char *p = answer, *end = answer + len;
  while (p < end) {
    const char *e = memchr(p, '\n', (size_t)(end - p));
    if (!e) e = end;
    const char *s = p;
    while (s < e && is_sp(*s)) s++;
    int is_step = s < e && *s >= '0' && *s <= '9';
    int is_header = (e - s >= 5 && !strncmp(s, "Plan:", 5)) ||
                    (e - s >= 21 && !strncmp(s, "=== Feedback Plan ===", 21));
    if (is_step || is_header) {
      memcpy(keep + n, p, (size_t)(e - p));
      n += (size_t)(e - p);
      keep[n++] = '\n';
      steps += is_step;
    }
    p = e < end ? e + 1 : e;
  }
  keep[n] = 0;
  int rc = 0;
  if (steps == 0) rc = sp_errf(err, "no plan lines in the answer");
  else rc = sp_plan_parse(keep, n, SP_PLAN_PARSE_TRUNCATE, out, err);
  free(keep);
  if (rc == 0 && out->n == 0) rc = sp_errf(err, "the answer's plan has no steps");
  return rc;
}

int sp_vlm_parse_verdict(const char *answer) {
  const char *s = answer, *e = answer + strlen(answer);
  for (;;) {  // strip blanks, quotes, markdown emphasis and a final full stop around the word
    if (s < e && (is_sp(*s) || *s == '"' || *s == '\'' || *s == '`' || *s == '*')) s++;
    else if (e > s && (is_sp(e[-1]) || e[-1] == '"' || e[-1] == '\'' || e[-1] == '`' ||
                       e[-1] == '*' || e[-1] == '.' || e[-1] == '!'))
      e--;
    else break;
  }
  size_t n = (size_t)(e - s);
  if (n == 6 && !strncasecmp(s, "accept", 6)) return 1;
  if (n == 6 && !strncasecmp(s, "reject", 6)) return 0;
  return -1;
}

/* ---- HTTP ---- */

typedef struct {
  char *buf;
  size_t len, cap;
  size_t max;
  long retry_after;  // seconds from a Retry-After header, -1 if none
} reply;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  reply *r = ud;
  size_t n = size * nmemb;
  if (r->len + n > r->max) return 0;  // too long: curl reports CURLE_WRITE_ERROR
  if (r->len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n + 1) cap *= 2;
    char *b = realloc(r->buf, cap);
    if (!b) return 0;
    r->buf = b;
    r->cap = cap;
  }
  memcpy(r->buf + r->len, ptr, n);
  r->len += n;
  r->buf[r->len] = 0;
  return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
  reply *r = ud;
  size_t n = size * nmemb;
  if (n > 12 && !strncasecmp(ptr, "retry-after:", 12)) {
    char tmp[32];
    size_t k = n - 12 < sizeof tmp - 1 ? n - 12 : sizeof tmp - 1;
    memcpy(tmp, ptr + 12, k);
    tmp[k] = 0;
    char *end;
    long s = strtol(tmp, &end, 10);
    if (end != tmp && s >= 0) r->retry_after = s;
  }
  return n;
}

/* the text of choices[0].message.content (a string, or an array of {type:text,text}) */
static char *reply_content(const char *body, size_t len) {
  cJSON *root = cJSON_ParseWithLength(body, len);
  if (!root) return NULL;
  char *out = NULL;
  cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
  cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
  cJSON *msg = cJSON_IsObject(c0) ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
  cJSON *content = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
  if (cJSON_IsString(content)) {
    out = dup_str(content->valuestring);
  } else if (cJSON_IsArray(content)) {
    size_t n = 0;
    cJSON *part;
    cJSON_ArrayForEach(part, content) {
      cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
      if (cJSON_IsString(t)) n += strlen(t->valuestring);
    }
    out = malloc(n + 1);
    if (out) {
      out[0] = 0;
      cJSON_ArrayForEach(part, content) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(t)) strcat(out, t->valuestring);
      }
    }
  }
  cJSON_Delete(root);
  return out;
}

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* checks one answer: 0 ok, -1 malformed (ctx gets the result) */
typedef int (*answer_fn)(const char *content, void *ctx, char *why);

/* POST body, retrying; returns 0 when check accepted an answer, -1 when all attempts failed */
static int chat(sp_vlm *v, const char *body, answer_fn check, void *ctx) {
  struct curl_slist *hdr = NULL;
  hdr = curl_slist_append(hdr, "Content-Type: application/json");
  hdr = curl_slist_append(hdr, "Expect:");  // no 100-continue round trip for large bodies
  if (v->key) {
    size_t kn = strlen(v->key) + 32;
    char *auth = malloc(kn);
    if (auth) {
      snprintf(auth, kn, "Authorization: Bearer %s", v->key);
      hdr = curl_slist_append(hdr, auth);
      memset(auth, 0, kn);
      free(auth);
    }
  }
  int rc = -1;
  double wait = v->cfg.backoff_s;
  for (int attempt = 0; attempt <= v->cfg.max_retries; attempt++) {
    reply r = {NULL, 0, 0, (size_t)v->cfg.max_reply_bytes, -1};
    CURL *c = v->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, v->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(v->cfg.timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(v->cfg.connect_timeout_s * 1000));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    v->stats.attempts++;
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    int retry = 1;
    if (cc == CURLE_OPERATION_TIMEDOUT) {
      warn(v, SP_VLM_WARN_TIMEOUT, "no reply within %.1f s from %s", v->cfg.timeout_s, v->url);
    } else if (cc == CURLE_WRITE_ERROR) {
      warn(v, SP_VLM_WARN_BAD_JSON, "reply longer than %ld bytes", v->cfg.max_reply_bytes);
    } else if (cc != CURLE_OK) {
      warn(v, SP_VLM_WARN_TRANSPORT, "%s (%s)", curl_easy_strerror(cc), v->url);
    } else if (status == 429 || status >= 500) {
      warn(v, SP_VLM_WARN_HTTP_RETRY, "HTTP %ld from %s", status, v->url);
      if (r.retry_after > wait) wait = (double)r.retry_after;
    } else if (status != 200) {
      warn(v, SP_VLM_WARN_HTTP_FATAL, "HTTP %ld from %s (not retried)", status, v->url);
      retry = 0;
    } else {
      char *content = r.buf ? reply_content(r.buf, r.len) : NULL;
      char why[SP_ERRLEN] = "";
      if (!content) {
        warn(v, SP_VLM_WARN_BAD_JSON, "no choices[0].message.content text in the reply");
      } else if (check(content, ctx, why) != 0) {
        warn(v, SP_VLM_WARN_BAD_ANSWER, "%s", why);
      } else {
        rc = 0;
      }
      free(content);
    }
    free(r.buf);
    if (rc == 0 || !retry || attempt == v->cfg.max_retries) break;
    sleep_s(wait < v->cfg.backoff_max_s ? wait : v->cfg.backoff_max_s);
    wait *= 2;
  }
  curl_slist_free_all(hdr);
  return rc;
}

/* the request JSON: a system message and one user message with text and optional images */
static char *request_json(const sp_vlm *v, const char *sys, const char *prompt, char **urls,
                          int nurl) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "model", v->model);
  cJSON_AddNumberToObject(root, "temperature", v->cfg.temperature);
  cJSON_AddNumberToObject(root, "max_tokens", v->cfg.max_tokens);
  cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "system");
  cJSON_AddStringToObject(m, "content", sys);
  cJSON_AddItemToArray(msgs, m);
  m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "user");
  if (nurl == 0) {
    cJSON_AddStringToObject(m, "content", prompt);
  } else {
    cJSON *parts = cJSON_AddArrayToObject(m, "content");
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "text");
    cJSON_AddStringToObject(t, "text", prompt);
    cJSON_AddItemToArray(parts, t);
    for (int i = 0; i < nurl; i++) {
      cJSON *im = cJSON_CreateObject();
      cJSON_AddStringToObject(im, "type", "image_url");
      cJSON *iu = cJSON_AddObjectToObject(im, "image_url");
      cJSON_AddStringToObject(iu, "url", urls[i]);
      cJSON_AddItemToArray(parts, im);
    }
  }
  cJSON_AddItemToArray(msgs, m);
  char *s = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return s;
}

static int check_plan(const char *content, void *ctx, char *why) {
  return sp_vlm_parse_plan_answer(content, ctx, why);
}

static int check_verdict(const char *content, void *ctx, char *why) {
  int r = sp_vlm_parse_verdict(content);
  if (r < 0) {
    char q[48];
    snprintf(q, sizeof q, "%.40s", content);
    for (char *p = q; *p; p++)
      if (*p < 32 || *p > 126) *p = '?';
    return sp_errf(why, "answer '%s' is not exactly Accept or Reject", q);
  }
  *(int *)ctx = r;
  return 0;
}

int sp_vlm_plan(sp_vlm *v, int task, const double hand[3], const double obj[3],
                const double goal[3], const sp_image *img, sp_plan *out, char *err) {
  sp_plan_clear(out);
  sp_plan fallback;
  if (sp_plan_rule(task, hand, obj, goal, &v->cfg.fallback, &fallback, err)) return -1;
  v->stats.calls++;
  char *prompt = sp_vlm_plan_prompt(task, hand, obj, goal);
  char *url = NULL, e2[SP_ERRLEN];
  if (img && !(url = sp_vlm_png_data_url(img, e2)))
    warn(v, SP_VLM_WARN_BAD_ANSWER, "image not attached: %s", e2);
  char *body = prompt ? request_json(v, k_sys_plan, prompt, &url, url ? 1 : 0) : NULL;
  int rc = body ? chat(v, body, check_plan, out) : -1;
  free(body);
  free(prompt);
  free(url);
  if (rc == 0) {
    v->stats.ok++;
    return 0;
  }
  warn(v, SP_VLM_WARN_FALLBACK, "no usable plan for %s after %d attempts: using the rule planner",
       sp_task_name(task), v->cfg.max_retries + 1);
  *out = fallback;
  return 1;
}

int sp_vlm_validate(sp_vlm *v, int task, const sp_image *frames, int n, int *accept) {
  v->stats.calls++;
  *accept = 1;
  char **urls = n > 0 ? calloc((size_t)n, sizeof *urls) : NULL;
  char e2[SP_ERRLEN];
  int ok = n >= 2 && urls != NULL;
  for (int i = 0; ok && i < n; i++)
    if (!(urls[i] = sp_vlm_png_data_url(&frames[i], e2))) ok = 0;
  int rc = -1, verdict = 1;
  if (ok) {
    char *prompt = sp_vlm_validate_prompt(task, n);
    char *body = prompt ? request_json(v, k_sys_validate, prompt, urls, n) : NULL;
    rc = body ? chat(v, body, check_verdict, &verdict) : -1;
    free(body);
    free(prompt);
  } else {
    warn(v, SP_VLM_WARN_BAD_ANSWER, "validation needs the first frame and >= 1 generated frame%s%s",
         n >= 2 ? ": " : "", n >= 2 ? e2 : "");
  }
  for (int i = 0; urls && i < n; i++) free(urls[i]);
  free(urls);
  if (rc == 0) {
    v->stats.ok++;
    *accept = verdict;
    if (verdict) v->stats.accept++;
    else v->stats.reject++;
    return 0;
  }
  warn(v, SP_VLM_WARN_FALLBACK, "no verdict for %s: accepting the video", sp_task_name(task));
  v->stats.accept++;
  return 1;
}
