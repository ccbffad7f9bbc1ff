/* plan.c: plan table types, encoding, the strict text parser and the printer. */
#include "plan/plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static const char *const g_action_names[SP_PLAN_NACTION] = {
    "move", "reach", "grasp", "push", "pull", "strike", "slide", "adjust", "rotate", "pad", "release",
};

const char *sp_plan_action_name(int action) {
  return (action >= 0 && action < SP_PLAN_NACTION) ? g_action_names[action] : "?";
}

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

int sp_plan_action_find(const char *word, size_t len) {
  for (int a = 0; a < SP_PLAN_NACTION; a++) {
    const char *n = g_action_names[a];
    if (strlen(n) != len) continue;
    size_t i = 0;
    while (i < len && lower((unsigned char)word[i]) == n[i]) i++;
    if (i == len) return a;
  }
  return -1;
}

int sp_plan_action_id(int action) {
  SP_ASSERT(action >= 0 && action < SP_PLAN_NACTION);
  return action == SP_PLAN_RELEASE ? SP_PLAN_PAD : action;
}

int sp_plan_dir_id(const int dir[3]) {
  for (int i = 0; i < 3; i++)
    if (dir[i] < -1 || dir[i] > 1) return -1;
  return 9 * (dir[0] + 1) + 3 * (dir[1] + 1) + (dir[2] + 1);
}

void sp_plan_dir_from_id(int id, int dir[3]) {
  SP_ASSERT(id >= 0 && id < SP_PLAN_NDIR_ID);
  dir[0] = id / 9 - 1;
  dir[1] = (id / 3) % 3 - 1;
  dir[2] = id % 3 - 1;
}

double sp_plan_round_dist(double metres) { return round(metres * 100.0) / 100.0; }

static void set_pad(sp_plan_step *s) {
  s->action = SP_PLAN_PAD;
  s->dir[0] = s->dir[1] = s->dir[2] = 0;
  s->dist = 0.0;
}

void sp_plan_clear(sp_plan *p) {
  p->n = 0;
  for (int i = 0; i < SP_PLAN_MAX; i++) set_pad(&p->step[i]);
}

int sp_plan_push(sp_plan *p, int action, const int dir[3], double dist, char *err) {
  if (p->n >= SP_PLAN_MAX) return sp_errf(err, "plan is full (%d steps)", SP_PLAN_MAX);
  if (action < 0 || action >= SP_PLAN_NACTION || action == SP_PLAN_PAD)
    return sp_errf(err, "invalid action %d for a plan step", action);
  if (sp_plan_dir_id(dir) < 0) return sp_errf(err, "direction component outside {-1, 0, 1}");
  if (!isfinite(dist) || dist < 0.0) return sp_errf(err, "distance %g is not >= 0", dist);
  sp_plan_step *s = &p->step[p->n++];
  s->action = action;
  for (int i = 0; i < 3; i++) s->dir[i] = dir[i];
  s->dist = sp_plan_round_dist(dist);
  return 0;
}

int sp_plan_equal(const sp_plan *a, const sp_plan *b) {
  if (a->n != b->n) return 0;
  for (int i = 0; i < SP_PLAN_MAX; i++) {
    const sp_plan_step *x = &a->step[i], *y = &b->step[i];
    if (x->action != y->action || x->dist != y->dist) return 0;
    for (int k = 0; k < 3; k++)
      if (x->dir[k] != y->dir[k]) return 0;
  }
  return 1;
}

void sp_plan_encode(const sp_plan *p, sp_plan_enc *out) {
  for (int i = 0; i < SP_PLAN_MAX; i++) {
    const sp_plan_step *s = &p->step[i];
    if (i >= p->n) {
      out->action_id[i] = SP_PLAN_PAD;
      out->dir_id[i] = 13;  // (0, 0, 0)
      out->dist[i] = 0.0f;
      continue;
    }
    out->action_id[i] = sp_plan_action_id(s->action);
    out->dir_id[i] = sp_plan_dir_id(s->dir);
    SP_ASSERT(out->dir_id[i] >= 0);
    out->dist[i] = (float)s->dist;
  }
}

/* ---- parser ---- */

static const char k_header_feedback[] = "=== Feedback Plan ===";
static const char k_header_plan[] = "Plan:";

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* one line as [s, e), blanks trimmed */
typedef struct {
  const char *s, *e;
} span;

static int span_is(span l, const char *lit) {
  size_t n = strlen(lit);
  return (size_t)(l.e - l.s) == n && !memcmp(l.s, lit, n);
}

/* a printable, bounded copy of [s, e) for messages (buf: 32 bytes): at most 24 characters,
 * bytes outside printable ASCII as \xNN, '~' when cut short */
static const char *quote(const char *s, const char *e, char *buf) {
  int n = 0;
  for (; s < e; s++) {
    unsigned char c = (unsigned char)*s;
    int need = c >= 32 && c < 127 ? 1 : 4;
    if (n + need > 23 && (n + need > 24 || s + 1 < e)) break;
    if (need == 1) buf[n++] = (char)c;
    else n += snprintf(buf + n, 5, "\\x%02x", c);
  }
  if (s < e) buf[n++] = '~';
  buf[n] = 0;
  return buf;
}

static void skip_blank(const char **p, const char *e) {
  while (*p < e && is_blank(**p)) (*p)++;
}

/* one direction component: exactly "-1", "0" or "1" */
static int parse_comp(const char **p, const char *e, int *out) {
  const char *s = *p;
  while (*p < e && (is_digit(**p) || **p == '-' || **p == '+' || **p == '.')) (*p)++;
  size_t n = (size_t)(*p - s);
  if (n == 1 && s[0] == '0') *out = 0;
  else if (n == 1 && s[0] == '1') *out = 1;
  else if (n == 2 && s[0] == '-' && s[1] == '1') *out = -1;
  else return -1;
  return 0;
}

/* parse one step line; returns 0 or -1 with a reason in why (no line prefix) */
static int parse_step(span l, int expect_k, sp_plan_step *st, char *why, size_t cap) {
  const char *p = l.s, *e = l.e;
  char q[32];
  const char *d0 = p;
  while (p < e && is_digit(*p) && p - d0 < 4) p++;
  if (p == d0 || p >= e || *p != '.') {
    snprintf(why, cap, "expected '<k>. <action> [x, y, z] [distance]', got '%s'", quote(l.s, e, q));
    return -1;
  }
  int k = atoi(d0);  // at most 4 digits, cannot overflow
  if (k != expect_k) {
    snprintf(why, cap, "step number %d, expected %d", k, expect_k);
    return -1;
  }
  p++;  // '.'
  if (p >= e || !is_blank(*p)) {
    snprintf(why, cap, "expected a blank after '%d.'", k);
    return -1;
  }
  skip_blank(&p, e);
  const char *w0 = p;
  while (p < e && is_alpha(*p)) p++;
  if (p == w0) {
    snprintf(why, cap, "expected an action word after '%d.'", k);
    return -1;
  }
  int a = sp_plan_action_find(w0, (size_t)(p - w0));
  if (a < 0) {
    snprintf(why, cap, "unknown action '%s'", quote(w0, p, q));
    return -1;
  }
  st->action = a;
  skip_blank(&p, e);
  if (p >= e || *p != '[') {
    snprintf(why, cap, "expected '[' to open the direction after '%s'", sp_plan_action_name(a));
    return -1;
  }
  p++;
  for (int i = 0; i < 3; i++) {
    skip_blank(&p, e);
    const char *c0 = p;
    if (parse_comp(&p, e, &st->dir[i])) {
      const char *c1 = c0;
      while (c1 < e && !is_blank(*c1) && *c1 != ',' && *c1 != ']') c1++;
      snprintf(why, cap, "direction component %d is '%s', must be -1, 0 or 1", i + 1,
               quote(c0, c1 > c0 ? c1 : (c0 < e ? c0 + 1 : c0), q));
      return -1;
    }
    skip_blank(&p, e);
    char want = i < 2 ? ',' : ']';
    if (p >= e || *p != want) {
      snprintf(why, cap, "expected '%c' after direction component %d", want, i + 1);
      return -1;
    }
    p++;
  }
  skip_blank(&p, e);
  if (p >= e || *p != '[') {
    snprintf(why, cap, "expected '[' to open the distance");
    return -1;
  }
  p++;
  skip_blank(&p, e);
  const char *n0 = p;
  int ndot = 0, ndig = 0;
  while (p < e && (is_digit(*p) || *p == '.')) {
    if (*p == '.') ndot++;
    else ndig++;
    p++;
  }
  if (n0 < e && *n0 == '-') {
    snprintf(why, cap, "negative distance");
    return -1;
  }
  if (p == n0 || ndig == 0 || ndot > 1 || p - n0 > 16) {
    const char *n1 = n0;
    while (n1 < e && *n1 != ']') n1++;
    snprintf(why, cap, "distance '%s' is not a non-negative decimal number", quote(n0, n1, q));
    return -1;
  }
  char num[20];
  memcpy(num, n0, (size_t)(p - n0));
  num[p - n0] = 0;
  double v = strtod(num, NULL);
  if (!(v <= SP_PLAN_MAX_DIST)) {
    snprintf(why, cap, "distance %s m is above the limit of %.0f m", num, SP_PLAN_MAX_DIST);
    return -1;
  }
  st->dist = sp_plan_round_dist(v);
  skip_blank(&p, e);
  if (p >= e || *p != ']') {
    snprintf(why, cap, "expected ']' to close the distance");
    return -1;
  }
  p++;
  skip_blank(&p, e);
  if (p < e) {
    snprintf(why, cap, "unexpected text after the step: '%s'", quote(p, e, q));
    return -1;
  }
  return 0;
}

/* next line starting at *pos: trimmed span, advances *pos past the '\n' */
static span next_line(const char *text, size_t len, size_t *pos) {
  size_t a = *pos, b = a;
  while (b < len && text[b] != '\n') b++;
  *pos = b < len ? b + 1 : b;
  span l = {text + a, text + b};
  while (l.s < l.e && is_blank(*l.s)) l.s++;
  while (l.e > l.s && is_blank(l.e[-1])) l.e--;
  return l;
}

int sp_plan_parse(const char *text, size_t len, int flags, sp_plan *out, char *err) {
  sp_plan_clear(out);
  if (!text) len = 0;
  /* a UTF-8 byte-order mark (editors on Windows write one) is not part of the text */
  if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) {
    text += 3;
    len -= 3;
  }
  if (len && memchr(text, 0, len)) {
    size_t z = (size_t)((const char *)memchr(text, 0, len) - text);
    int line = 1;
    for (size_t i = 0; i < z; i++) line += text[i] == '\n';
    return sp_errf(err, "line %d: NUL byte in the text", line);
  }

  /* a "=== Feedback Plan ===" line starts the plan; what comes before is ignored */
  size_t pos = 0, start = 0;
  int line = 0, start_line = 0;
  while (pos < len) {
    line++;
    span l = next_line(text, len, &pos);
    if (span_is(l, k_header_feedback)) {
      start = pos;
      start_line = line;
      break;
    }
  }
  int seen_feedback = start_line > 0, seen_plan = 0, rows = 0, pad_from = 0;
  pos = start;
  line = start_line;
  sp_plan p;
  sp_plan_clear(&p);
  char why[256];
  while (pos < len) {
    line++;
    span l = next_line(text, len, &pos);
    if (l.s == l.e) continue;
    if (span_is(l, k_header_feedback)) {
      sp_errf(err, "line %d: repeated header '%s'", line, k_header_feedback);
      return -1;
    }
    if (span_is(l, k_header_plan)) {
      if (rows > 0 || seen_plan)
        return sp_errf(err, "line %d: header '%s' %s", line, k_header_plan,
                       seen_plan ? "repeated" : "after the first step");
      seen_plan = 1;
      continue;
    }
    if (rows == SP_PLAN_MAX) {
      if (flags & SP_PLAN_PARSE_TRUNCATE) break;
      return sp_errf(err, "line %d: more than %d steps (a plan table holds %d)", line, SP_PLAN_MAX,
                     SP_PLAN_MAX);
    }
    sp_plan_step st;
    if (parse_step(l, rows + 1, &st, why, sizeof why)) return sp_errf(err, "line %d: %s", line, why);
    if (st.action == SP_PLAN_PAD) {
      if (st.dir[0] || st.dir[1] || st.dir[2] || st.dist != 0.0)
        return sp_errf(err, "line %d: a pad step must be 'pad [0, 0, 0] [0.00]'", line);
      if (!pad_from) pad_from = rows + 1;
    } else {
      if (pad_from)
        return sp_errf(err, "line %d: '%s' after padding (step %d is pad; only pad may follow)",
                       line, sp_plan_action_name(st.action), pad_from);
      p.step[p.n++] = st;
    }
    rows++;
  }
  (void)seen_feedback;
  *out = p;
  return 0;
}

int sp_plan_format(const sp_plan *p, int header, char *buf, size_t cap) {
  size_t n = 0;
  if (cap == 0) return -1;
  buf[0] = 0;
  if (header) {
    int k = snprintf(buf, cap, "%s\n%s\n", k_header_feedback, k_header_plan);
    if (k < 0 || (size_t)k >= cap) return -1;
    n = (size_t)k;
  }
  SP_ASSERT(p->n >= 0 && p->n <= SP_PLAN_MAX);
  for (int i = 0; i < p->n; i++) {
    const sp_plan_step *s = &p->step[i];
    int k = snprintf(buf + n, cap - n, "%d. %s [%d, %d, %d] [%.2f]\n", i + 1,
                     sp_plan_action_name(s->action), s->dir[0], s->dir[1], s->dir[2], s->dist);
    if (k < 0 || (size_t)k >= cap - n) return -1;
    n += (size_t)k;
  }
  return (int)n;
}
