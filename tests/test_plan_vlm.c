/* tests of src/plan/vlm.c against a scripted HTTP server on 127.0.0.1 (ephemeral port) run by
 * the test itself in a thread: well-formed, malformed, slow, error (500/429/401) and refused
 * replies. Every test is bounded: at most a few requests, client timeouts of 0.3 s, backoff of
 * 10 ms, server socket waits of 2 s. (No Criterion .timeout: with -j2, two concurrent tests with
 * a .timeout make Criterion 2.4's runner leak 48 bytes, which fails `make asan` runs.) Also: base64 and PNG data URLs (decoded back with libpng), answer parsing, prompts. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <png.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/log.h"
#include "plan/plan.h"
#include "plan/vlm.h"
#include "sim/env.h"

/* ---- the scripted server ---- */

typedef enum {
  R_PLAN,         // 200, a well-formed plan
  R_PLAN_PROSE,   // 200, the plan inside prose and a code fence
  R_PLAN_PARTS,   // 200, content as an array of text parts
  R_ACCEPT,       // 200, "Accept"
  R_REJECT,       // 200, "Reject."
  R_BAD_JSON,     // 200, not JSON
  R_NO_CONTENT,   // 200, JSON without choices
  R_BAD_PLAN,     // 200, a plan with an unknown action
  R_BAD_VERDICT,  // 200, "Maybe"
  R_SLOW,         // never answers (the connection is held open until the server stops)
  R_500,
  R_429,
  R_401,
  R_HANGUP,       // closes the connection without a reply
  R_HUGE,         // 200, 64 KiB of JSON padding
} reply_kind;

static const char k_plan_text[] = "1. move [1, -1, -1] [0.38]\n2. grasp [0, 0, 0] [0.00]\n"
                                  "3. slide [-1, 1, 1] [0.38]\n";

#define MAX_SCRIPT 8
typedef struct {
  int lfd, port;
  pthread_t th;
  reply_kind script[MAX_SCRIPT];
  int nscript;
  volatile int served;  // requests answered (or hung up on)
  volatile int stop;
  char auth[256];       // last Authorization header value
  char path[128];       // last request line's path
  char *body;           // last request body (malloc'd)
  size_t body_len;
  int parked[MAX_SCRIPT];  // connections held open by R_SLOW
  int nparked;
} server;

static int wait_readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, ms) > 0;
}

static void send_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
    if (k <= 0) return;
    s += k;
    n -= (size_t)k;
  }
}

static void send_reply(int fd, int status, const char *extra_hdr, const char *body) {
  char head[512];
  const char *reason = status == 200 ? "OK" : (status == 429 ? "Too Many Requests" : "Error");
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n%s\r\n",
                   status, reason, strlen(body), extra_hdr ? extra_hdr : "");
  send_all(fd, head, (size_t)n);
  send_all(fd, body, strlen(body));
}

static char *completion_json(const char *content, int as_parts) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "object", "chat.completion");
  cJSON *ch = cJSON_AddArrayToObject(root, "choices");
  cJSON *c0 = cJSON_CreateObject();
  cJSON *msg = cJSON_AddObjectToObject(c0, "message");
  cJSON_AddStringToObject(msg, "role", "assistant");
  if (as_parts) {
    cJSON *parts = cJSON_AddArrayToObject(msg, "content");
    const char *half = content + strlen(content) / 2;
    char first[512];
    snprintf(first, sizeof first, "%.*s", (int)(half - content), content);
    const char *texts[2] = {first, half};
    for (int i = 0; i < 2; i++) {
      cJSON *p = cJSON_CreateObject();
      cJSON_AddStringToObject(p, "type", "text");
      cJSON_AddStringToObject(p, "text", texts[i]);
      cJSON_AddItemToArray(parts, p);
    }
  } else {
    cJSON_AddStringToObject(msg, "content", content);
  }
  cJSON_AddStringToObject(c0, "finish_reason", "stop");
  cJSON_AddItemToArray(ch, c0);
  char *s = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return s;
}

/* read one request: headers, then Content-Length bytes of body; 0 ok */
static int read_request(server *s, int fd) {
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  char *hend = NULL;
  while (!hend) {
    if (!wait_readable(fd, 2000)) goto fail;
    if (len + 1 >= cap) {
      if (cap > (64u << 20)) goto fail;
      cap *= 2;
      buf = realloc(buf, cap);
    }
    ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
    if (k <= 0) goto fail;
    len += (size_t)k;
    buf[len] = 0;
    hend = strstr(buf, "\r\n\r\n");
  }
  size_t hlen = (size_t)(hend - buf) + 4, clen = 0;
  s->auth[0] = 0;
  if (sscanf(buf, "POST %127s HTTP/1.1", s->path) != 1) strcpy(s->path, "?");
  for (char *line = buf; line < hend; line = strstr(line, "\r\n") + 2) {
    if (!strncasecmp(line, "content-length:", 15)) clen = strtoul(line + 15, NULL, 10);
    if (!strncasecmp(line, "authorization:", 14)) {
      const char *v = line + 14;
      while (*v == ' ') v++;
      size_t n = (size_t)(strstr(v, "\r\n") - v);
      if (n >= sizeof s->auth) n = sizeof s->auth - 1;
      memcpy(s->auth, v, n);
      s->auth[n] = 0;
    }
  }
  while (len < hlen + clen) {
    if (len + 1 >= cap) {
      cap = hlen + clen + 1;
      buf = realloc(buf, cap);
    }
    if (!wait_readable(fd, 2000)) goto fail;
    ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
    if (k <= 0) goto fail;
    len += (size_t)k;
  }
  free(s->body);
  s->body = malloc(clen + 1);
  memcpy(s->body, buf + hlen, clen);
  s->body[clen] = 0;
  s->body_len = clen;
  free(buf);
  return 0;
fail:
  free(buf);
  return -1;
}

static void *server_main(void *arg) {
  server *s = arg;
  while (!s->stop) {
    if (!wait_readable(s->lfd, 50)) continue;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) continue;
    if (read_request(s, fd) != 0) {
      close(fd);
      continue;
    }
    int i = s->served < s->nscript ? s->served : s->nscript - 1;
    reply_kind k = s->script[i];
    char *json = NULL;
    switch (k) {
      case R_PLAN: json = completion_json(k_plan_text, 0); break;
      case R_PLAN_PROSE:
        json = completion_json("Sure! Here is the plan:\n```\n=== Feedback Plan ===\nPlan:\n"
                               "1. move [1, -1, -1] [0.38]\n2. grasp [0, 0, 0] [0.00]\n"
                               "3. slide [-1, 1, 1] [0.38]\n```\nGood luck.", 0);
        break;
      case R_PLAN_PARTS: json = completion_json(k_plan_text, 1); break;
      case R_ACCEPT: json = completion_json("Accept", 0); break;
      case R_REJECT: json = completion_json("Reject.", 0); break;
      case R_BAD_PLAN: json = completion_json("1. levitate [0, 0, 1] [0.10]\n", 0); break;
      case R_BAD_VERDICT: json = completion_json("Maybe, the video looks fine.", 0); break;
      default: break;
    }
    s->served++;
    if (k == R_SLOW && s->nparked < MAX_SCRIPT) {
      s->parked[s->nparked++] = fd;  // keep accepting while this one waits forever
      continue;
    }
    switch (k) {
      case R_BAD_JSON: send_reply(fd, 200, NULL, "{\"choices\": [ {\"message\": oops"); break;
      case R_NO_CONTENT: send_reply(fd, 200, NULL, "{\"error\": null, \"choices\": []}"); break;
      case R_500: send_reply(fd, 500, NULL, "{\"error\": \"internal\"}"); break;
      case R_429: send_reply(fd, 429, "Retry-After: 0\r\n", "{\"error\": \"rate limit\"}"); break;
      case R_401: send_reply(fd, 401, NULL, "{\"error\": \"bad key\"}"); break;
      case R_HANGUP: break;
      case R_HUGE: {
        size_t n = 64 << 10;
        char *b = malloc(n + 32);
        strcpy(b, "{\"pad\": \"");
        memset(b + 9, 'x', n);
        strcpy(b + 9 + n, "\"}");
        send_reply(fd, 200, NULL, b);
        free(b);
        break;
      }
      default: send_reply(fd, 200, NULL, json); break;
    }
    free(json);
    close(fd);
  }
  return NULL;
}

static int listen_any(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert(fd >= 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(fd, 8), 0);
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  *port = ntohs(a.sin_port);
  return fd;
}

static void server_start(server *s, const reply_kind *script, int n) {
  memset(s, 0, sizeof *s);
  cr_assert(n > 0 && n <= MAX_SCRIPT);
  memcpy(s->script, script, (size_t)n * sizeof *script);
  s->nscript = n;
  s->lfd = listen_any(&s->port);
  cr_assert_eq(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_stop(server *s) {
  s->stop = 1;
  pthread_join(s->th, NULL);
  close(s->lfd);
  for (int i = 0; i < s->nparked; i++) close(s->parked[i]);
  free(s->body);
  s->body = NULL;
}

static double tmo(double s);

/* a client for the server: short timeouts, fast backoff */
static sp_vlm *client(int port, int retries, const char *key) {
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  unsetenv("all_proxy");
  unsetenv("ALL_PROXY");
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
  sp_vlm_config c;
  sp_vlm_config_default(&c);
  c.url = url;
  c.model = "test-model";
  c.key = key;
  c.timeout_s = tmo(0.3);
  c.connect_timeout_s = tmo(0.3);
  c.max_retries = retries;
  c.backoff_s = 0.01;
  c.backoff_max_s = 0.05;
  char err[SP_ERRLEN];
  sp_vlm *v = sp_vlm_create(&c, err);
  cr_assert(v, "%s", err);
  return v;
}

static const double k_hand[3] = {0.0, 0.6, 0.2}, k_obj[3] = {0.05, 0.55, 0.02},
                    k_goal[3] = {0.0, 0.85, 0.3};

static void expect_server_plan(const sp_plan *p) {
  sp_plan want;
  char err[SP_ERRLEN];
  cr_assert_eq(sp_plan_parse(k_plan_text, strlen(k_plan_text), 0, &want, err), 0, "%s", err);
  cr_expect(sp_plan_equal(p, &want), "the VLM's plan is returned");
}

static void expect_rule_plan(const sp_plan *p) {
  sp_plan want;
  char err[SP_ERRLEN];
  cr_assert_eq(sp_plan_rule(SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &want, err), 0);
  cr_expect(sp_plan_equal(p, &want), "the rule planner's plan is the fallback");
}

/* client time-outs in seconds; SP_TEST_SLOW=k multiplies them (use 10 under valgrind) */
static double tmo(double s) {
  const char *f = getenv("SP_TEST_SLOW");
  double k = f ? atof(f) : 1.0;
  return s * (k >= 1.0 ? k : 1.0);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* expected warnings are silenced (each test runs in its own process) */
static void quiet(void) { sp_log_set_level(SP_LOG_ERROR); }

/* capture what is written to fd 2 into a temporary file (plain POSIX, no runner machinery) */
typedef struct {
  FILE *f;
  int saved;
} capture;

static void capture_begin(capture *c) {
  fflush(stderr);
  c->f = tmpfile();
  cr_assert(c->f);
  c->saved = dup(2);
  dup2(fileno(c->f), 2);
}

static size_t capture_end(capture *c, char *buf, size_t cap) {
  fflush(stderr);
  dup2(c->saved, 2);
  close(c->saved);
  rewind(c->f);
  size_t n = fread(buf, 1, cap - 1, c->f);
  buf[n] = 0;
  fclose(c->f);
  return n;
}

/* ---- loopback tests ---- */

Test(plan_vlm, plan_well_formed_with_key_and_image) {
  server s;
  reply_kind sc[] = {R_PLAN};
  server_start(&s, sc, 1);
  sp_vlm *v = client(s.port, 2, "sk-test-123");
  sp_image img;
  char err[SP_ERRLEN];
  cr_assert_eq(sp_image_alloc(&img, 8, 6, 3, err), 0);
  for (int i = 0; i < 8 * 6 * 3; i++) img.px[i] = (uint8_t)(i * 5);
  sp_plan p;
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, &img, &p, err), 0);
  expect_server_plan(&p);
  cr_expect_eq(s.served, 1);
  cr_expect_str_eq(s.auth, "Bearer sk-test-123");
  cr_expect_str_eq(s.path, "/v1/chat/completions");
  cr_assert(s.body);
  cJSON *req = cJSON_Parse(s.body);
  cr_assert(req, "request is JSON");
  cr_expect_str_eq(cJSON_GetObjectItem(req, "model")->valuestring, "test-model");
  cJSON_Delete(req);
  cr_expect(strstr(s.body, "shelf-place") != NULL, "the prompt names the task");
  cr_expect(strstr(s.body, "(0.050, -0.050, -0.180)") != NULL, "the prompt gives the offset");
  cr_expect(strstr(s.body, "data:image/png;base64,iVBORw0KGgo") != NULL, "the image is a PNG");
  const sp_vlm_stats *st = sp_vlm_get_stats(v);
  cr_expect_eq(st->ok, 1);
  cr_expect_eq(st->attempts, 1);
  for (int k = 0; k < SP_VLM_NWARN; k++) cr_expect_eq(st->warn[k], 0, "warning %d", k);
  sp_image_free(&img);
  sp_vlm_free(v);
  server_stop(&s);
}

Test(plan_vlm, plan_in_prose_and_parts_no_key) {
  server s;
  reply_kind sc[] = {R_PLAN_PROSE, R_PLAN_PARTS};
  server_start(&s, sc, 2);
  sp_vlm *v = client(s.port, 0, NULL);
  sp_plan p;
  char err[SP_ERRLEN];
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &p, err), 0);
  expect_server_plan(&p);
  cr_expect_eq(s.auth[0], 0, "no Authorization header without a key");
  cr_expect(strstr(s.body, "image_url") == NULL);
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &p, err), 0);
  expect_server_plan(&p);
  cr_expect_eq(s.served, 2);
  sp_vlm_free(v);
  server_stop(&s);
}

Test(plan_vlm, malformed_then_good_is_retried) {
  server s;
  reply_kind sc[] = {R_BAD_JSON, R_NO_CONTENT, R_BAD_PLAN, R_PLAN};
  server_start(&s, sc, 4);
  sp_vlm *v = client(s.port, 3, "k");
  sp_plan p;
  char err[SP_ERRLEN];
  quiet();
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &p, err), 0);
  expect_server_plan(&p);
  const sp_vlm_stats *st = sp_vlm_get_stats(v);
  cr_expect_eq(s.served, 4);
  cr_expect_eq(st->attempts, 4);
  cr_expect_eq(st->warn[SP_VLM_WARN_BAD_JSON], 2);
  cr_expect_eq(st->warn[SP_VLM_WARN_BAD_ANSWER], 1);
  cr_expect_eq(st->warn[SP_VLM_WARN_FALLBACK], 0);
  sp_vlm_free(v);
  server_stop(&s);
}

Test(plan_vlm, malformed_always_falls_back_and_key_stays_secret) {
  server s;
  reply_kind sc[] = {R_BAD_PLAN};
  server_start(&s, sc, 1);
  const char *key = "sk-SECRET-do-not-print";
  sp_vlm *v = client(s.port, 2, key);
  sp_plan p;
  char err[SP_ERRLEN];
  capture cap;
  capture_begin(&cap);
  sp_log_set_level(SP_LOG_DEBUG);
  for (int i = 0; i < 2; i++) {
    cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &p, err), 1);
    expect_rule_plan(&p);
  }
  sp_vlm_log_stats(v);
  sp_log_set_level(SP_LOG_INFO);
  const sp_vlm_stats *st = sp_vlm_get_stats(v);
  cr_expect_eq(s.served, 6, "1 + 2 retries per call");
  cr_expect_eq(st->warn[SP_VLM_WARN_BAD_ANSWER], 6);
  cr_expect_eq(st->warn[SP_VLM_WARN_FALLBACK], 2);
  cr_expect_eq(st->ok, 0);
  /* the warnings were printed once per kind, and never with the key */
  char log[8192];
  capture_end(&cap, log, sizeof log);
  cr_expect(strstr(log, "levitate") != NULL, "the first malformed answer is reported: %s", log);
  cr_expect(strstr(log, "counted") != NULL, "%s", log);
  cr_expect(strstr(log, key) == NULL, "the key must never be printed");
  cr_expect(strstr(log, "SECRET") == NULL, "the key must never be printed");
  int lines = 0;
  for (char *q = log; (q = strstr(q, "malformed answer")); q++) lines++;
  cr_expect_eq(lines, 2, "one warning line + one stats line, got:\n%s", log);
  sp_vlm_free(v);
  server_stop(&s);
}

Test(plan_vlm, http_errors_retry_or_not) {
  server s;
  reply_kind sc[] = {R_500, R_429, R_PLAN};
  server_start(&s, sc, 3);
  sp_vlm *v = client(s.port, 3, "k");
  sp_plan p;
  char err[SP_ERRLEN];
  quiet();
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &p, err), 0);
  expect_server_plan(&p);
  cr_expect_eq(s.served, 3);
  cr_expect_eq(sp_vlm_get_stats(v)->warn[SP_VLM_WARN_HTTP_RETRY], 2);
  sp_vlm_free(v);
  server_stop(&s);
  /* 401 is not retried */
  reply_kind sc2[] = {R_401, R_PLAN};
  server_start(&s, sc2, 2);
  v = client(s.port, 3, "k");
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &p, err), 1);
  expect_rule_plan(&p);
  cr_expect_eq(s.served, 1);
  cr_expect_eq(sp_vlm_get_stats(v)->warn[SP_VLM_WARN_HTTP_FATAL], 1);
  sp_vlm_free(v);
  server_stop(&s);
}

Test(plan_vlm, slow_hangup_and_huge_replies) {
  server s;
  reply_kind sc[] = {R_SLOW, R_HANGUP, R_HUGE, R_PLAN};
  server_start(&s, sc, 4);
  sp_plan p;
  char err[SP_ERRLEN];
  quiet();
  double t0 = now_s();
  /* a client whose reply cap (16 KiB) is below the 64 KiB reply */
  sp_vlm_config c;
  sp_vlm_config_default(&c);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);  // "/v1/chat/completions" appended
  c.url = url;
  c.model = "m";
  c.key = NULL;
  c.timeout_s = tmo(0.3);
  c.connect_timeout_s = tmo(0.3);
  c.max_retries = 3;
  c.backoff_s = 0.01;
  c.backoff_max_s = 0.05;
  c.max_reply_bytes = 16 << 10;
  sp_vlm *v = sp_vlm_create(&c, err);
  cr_assert(v, "%s", err);
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &p, err), 0);
  double dt = now_s() - t0;
  expect_server_plan(&p);
  cr_expect_str_eq(s.path, "/v1/chat/completions");
  const sp_vlm_stats *st = sp_vlm_get_stats(v);
  cr_expect_eq(st->attempts, 4);
  cr_expect_eq(st->warn[SP_VLM_WARN_TIMEOUT], 1);
  cr_expect_eq(st->warn[SP_VLM_WARN_TRANSPORT], 1, "hang-up");
  cr_expect_eq(st->warn[SP_VLM_WARN_BAD_JSON], 1, "reply above the cap");
  cr_expect(dt < tmo(3.0), "bounded: %.2f s", dt);
  sp_vlm_free(v);
  server_stop(&s);
}

Test(plan_vlm, refused_connection_falls_back) {
  int port;
  int fd = listen_any(&port);
  close(fd);  // nothing listens there now
  sp_vlm *v = client(port, 1, "k");
  sp_plan p;
  char err[SP_ERRLEN];
  quiet();
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &p, err), 1);
  expect_rule_plan(&p);
  int accept = 0;
  sp_image fr[2];
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(sp_image_alloc(&fr[i], 4, 4, 3, err), 0);
    memset(fr[i].px, 100, 4 * 4 * 3);
  }
  cr_expect_eq(sp_vlm_validate(v, SP_TASK_SHELF_PLACE, fr, 2, &accept), 1);
  cr_expect_eq(accept, 1, "validation falls back to Accept");
  const sp_vlm_stats *st = sp_vlm_get_stats(v);
  cr_expect_eq(st->warn[SP_VLM_WARN_TRANSPORT], 4);
  cr_expect_eq(st->warn[SP_VLM_WARN_FALLBACK], 2);
  /* invalid input is an error, not a fallback */
  double bad[3] = {0, 0, 1.0 / 0.0};
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, bad, k_goal, NULL, &p, err), -1);
  for (int i = 0; i < 2; i++) sp_image_free(&fr[i]);
  sp_vlm_free(v);
  /* the fallback uses the configured dead zone */
  sp_vlm_config c;
  sp_vlm_config_default(&c);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
  c.url = url;
  c.model = "m";
  c.max_retries = 0;
  c.fallback.dead_zone = 0.2;
  v = sp_vlm_create(&c, err);
  cr_assert(v, "%s", err);
  cr_expect_eq(sp_vlm_plan(v, SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, NULL, &p, err), 1);
  sp_plan want;
  cr_assert_eq(sp_plan_rule(SP_TASK_SHELF_PLACE, k_hand, k_obj, k_goal, &c.fallback, &want, err), 0);
  cr_expect(sp_plan_equal(&p, &want));
  cr_expect_eq(p.step[0].dir[1], 0, "offset -0.05 is inside a 0.2 m dead zone");
  sp_vlm_free(v);
}

Test(plan_vlm, validation_verdicts) {
  server s;
  reply_kind sc[] = {R_ACCEPT, R_REJECT, R_BAD_VERDICT};
  server_start(&s, sc, 3);
  sp_vlm *v = client(s.port, 1, "k");
  char err[SP_ERRLEN];
  sp_image fr[3];
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(sp_image_alloc(&fr[i], 16, 16, 3, err), 0);
    memset(fr[i].px, 40 * i, 16 * 16 * 3);
  }
  int accept = -1;
  cr_expect_eq(sp_vlm_validate(v, SP_TASK_DOOR_OPEN, fr, 3, &accept), 0);
  cr_expect_eq(accept, 1);
  int nimg = 0;
  for (char *q = s.body; (q = strstr(q, "data:image/png;base64,")); q++) nimg++;
  cr_expect_eq(nimg, 3, "first frame + 2 generated frames");
  cr_expect(strstr(s.body, "door-open") && strstr(s.body, "Accept or Reject"));
  cr_expect_eq(sp_vlm_validate(v, SP_TASK_DOOR_OPEN, fr, 3, &accept), 0);
  cr_expect_eq(accept, 0);
  quiet();
  cr_expect_eq(sp_vlm_validate(v, SP_TASK_DOOR_OPEN, fr, 3, &accept), 1);
  cr_expect_eq(accept, 1, "an unclear verdict falls back to Accept");
  cr_expect_eq(s.served, 4);
  const sp_vlm_stats *st = sp_vlm_get_stats(v);
  cr_expect_eq(st->accept, 2);
  cr_expect_eq(st->reject, 1);
  cr_expect_eq(st->warn[SP_VLM_WARN_BAD_ANSWER], 2);
  /* a single frame cannot be validated: fallback without a request */
  cr_expect_eq(sp_vlm_validate(v, SP_TASK_DOOR_OPEN, fr, 1, &accept), 1);
  cr_expect_eq(s.served, 4);
  for (int i = 0; i < 3; i++) sp_image_free(&fr[i]);
  sp_vlm_free(v);
  server_stop(&s);
}

/* ---- building blocks ---- */

Test(plan_vlm_unit, config_errors) {
  sp_vlm_config c;
  char err[SP_ERRLEN];
  sp_vlm_config_default(&c);
  c.url = NULL;
  c.model = "m";
  cr_expect_null(sp_vlm_create(&c, err));
  cr_expect(strstr(err, "SP_VLM_URL") != NULL, "%s", err);
  c.url = "ftp://x";
  cr_expect_null(sp_vlm_create(&c, err));
  c.url = "http://127.0.0.1:1/v1";
  c.model = "";
  cr_expect_null(sp_vlm_create(&c, err));
  cr_expect(strstr(err, "SP_VLM_MODEL") != NULL, "%s", err);
  /* environment */
  setenv("SP_VLM_URL", "http://e/v1", 1);
  setenv("SP_VLM_MODEL", "em", 1);
  unsetenv("SP_VLM_KEY");
  setenv("OPENAI_API_KEY", "ok", 1);
  sp_vlm_config_default(&c);
  cr_expect_str_eq(c.url, "http://e/v1");
  cr_expect_str_eq(c.model, "em");
  cr_expect_str_eq(c.key, "ok");
  setenv("SP_VLM_KEY", "sk", 1);
  sp_vlm_config_default(&c);
  cr_expect_str_eq(c.key, "sk");
  unsetenv("SP_VLM_URL");
  unsetenv("SP_VLM_MODEL");
  unsetenv("SP_VLM_KEY");
  unsetenv("OPENAI_API_KEY");
}

Test(plan_vlm_unit, base64_rfc4648_vectors) {
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    char *s = sp_vlm_base64((const unsigned char *)in[i], strlen(in[i]));
    cr_expect_str_eq(s, out[i]);
    free(s);
  }
}

static int b64val(char c) {
  const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *p = strchr(t, c);
  return p && c ? (int)(p - t) : -1;
}

Test(plan_vlm_unit, png_data_url_decodes_to_the_image) {
  sp_image img;
  char err[SP_ERRLEN];
  cr_assert_eq(sp_image_alloc(&img, 7, 5, 3, err), 0);
  for (int i = 0; i < 7 * 5 * 3; i++) img.px[i] = (uint8_t)(i * 13 + 1);
  char *url = sp_vlm_png_data_url(&img, err);
  cr_assert(url, "%s", err);
  const char *b = url + strlen("data:image/png;base64,");
  cr_assert(!strncmp(url, "data:image/png;base64,", 22));
  /* decode base64 independently, then read the PNG with libpng */
  size_t n = strlen(b), m = 0;
  unsigned char *png = malloc(n);
  for (size_t i = 0; i + 4 <= n; i += 4) {
    int v[4];
    for (int k = 0; k < 4; k++) v[k] = b[i + k] == '=' ? 0 : b64val(b[i + k]);
    cr_assert(v[0] >= 0 && v[1] >= 0 && v[2] >= 0 && v[3] >= 0);
    unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
    png[m++] = (unsigned char)(x >> 16);
    if (b[i + 2] != '=') png[m++] = (unsigned char)(x >> 8);
    if (b[i + 3] != '=') png[m++] = (unsigned char)x;
  }
  png_image pi;
  memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  cr_assert(png_image_begin_read_from_memory(&pi, png, m), "%s", pi.message);
  cr_expect_eq(pi.width, 7);
  cr_expect_eq(pi.height, 5);
  pi.format = PNG_FORMAT_RGB;
  unsigned char px[7 * 5 * 3];
  cr_assert(png_image_finish_read(&pi, NULL, px, 0, NULL), "%s", pi.message);
  cr_expect_eq(memcmp(px, img.px, sizeof px), 0);
  free(png);
  free(url);
  sp_image_free(&img);
  sp_image bad = {0, 0, 3, NULL};
  cr_expect_null(sp_vlm_png_data_url(&bad, err));
}

Test(plan_vlm_unit, verdict_parsing_is_strict) {
  cr_expect_eq(sp_vlm_parse_verdict("Accept"), 1);
  cr_expect_eq(sp_vlm_parse_verdict("  accept.\n"), 1);
  cr_expect_eq(sp_vlm_parse_verdict("**Reject**"), 0);
  cr_expect_eq(sp_vlm_parse_verdict("\"REJECT\""), 0);
  cr_expect_eq(sp_vlm_parse_verdict("Accept or Reject"), -1);
  cr_expect_eq(sp_vlm_parse_verdict("Accepted"), -1);
  cr_expect_eq(sp_vlm_parse_verdict("Reject. The ball disappears."), -1);
  cr_expect_eq(sp_vlm_parse_verdict(""), -1);
  cr_expect_eq(sp_vlm_parse_verdict("..."), -1);
}

Test(plan_vlm_unit, plan_answer_extraction) {
  sp_plan p;
  char err[SP_ERRLEN];
  cr_expect_eq(sp_vlm_parse_plan_answer("```text\n1. move [0, 0, 1] [0.10]\n```\n", &p, err), 0,
               "%s", err);
  cr_expect_eq(p.n, 1);
  cr_expect_eq(sp_vlm_parse_plan_answer("I cannot help with that.", &p, err), -1);
  cr_expect(strstr(err, "no plan lines") != NULL, "%s", err);
  cr_expect_eq(sp_vlm_parse_plan_answer("1. pad [0, 0, 0] [0]\n", &p, err), -1);
  cr_expect_eq(sp_vlm_parse_plan_answer("1. move [0, 0, 1] [0.10]\n3. grasp [0, 0, 0] [0]\n", &p,
                                        err), -1);
  cr_expect(strstr(err, "expected 2") != NULL, "%s", err);
  /* prompts name the task and the offset; the validation prompt asks for one word */
  char *s = sp_vlm_plan_prompt(SP_TASK_HAMMER, k_hand, k_obj, k_goal);
  cr_expect(strstr(s, "hammer") && strstr(s, "(0.050, -0.050, -0.180)") && strstr(s, "0.19 m"),
            "%s", s);
  free(s);
  s = sp_vlm_validate_prompt(SP_TASK_BASKETBALL, 8);
  cr_expect(strstr(s, "basketball") && strstr(s, "next 7 images") && strstr(s, "Accept or Reject"),
            "%s", s);
  free(s);
}
