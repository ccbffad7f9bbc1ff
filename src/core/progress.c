#include "core/progress.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

double sp_time_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_dur(char *buf, size_t n, double s) {
  if (s < 0) s = 0;
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

double sp_progress_eta(const sp_progress *p, double el) {
  long n = p->done - p->done0;
  return n > 0 ? el * (double)(p->total - p->done) / (double)n : 0;
}

/* a log line (stderr not a terminal: a job run under nohup or in CI), at most once a minute */
static void log_line(sp_progress *p) {
  double el = sp_time_now() - p->t0;
  char eta[32], ela[32];
  fmt_dur(ela, sizeof ela, el);
  fmt_dur(eta, sizeof eta, sp_progress_eta(p, el));
  fprintf(stderr, "%s: %ld/%ld %.0f%% %s elapsed, ETA %s\n", p->label, p->done, p->total,
          p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 100.0, ela, p->done > p->done0 ? eta : "?");
  fflush(stderr);
}

static void draw(sp_progress *p, int final) {
  double el = sp_time_now() - p->t0;
  double frac = p->total > 0 ? (double)p->done / (double)p->total : 1.0;
  int width = 30, fill = (int)(frac * width);
  char bar[64], eta[32], ela[32];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = 0;
  fmt_dur(ela, sizeof ela, el);
  fmt_dur(eta, sizeof eta, sp_progress_eta(p, el));
  fprintf(stderr, "\r%s [%s] %ld/%ld %3.0f%% %s elapsed, ETA %s ", p->label, bar, p->done, p->total,
          100.0 * frac, ela, p->done > p->done0 ? eta : "?");
  if (final) fputc('\n', stderr);
  fflush(stderr);
}

void sp_progress_start(sp_progress *p, const char *label, long total) {
  p->label = label;
  p->total = total;
  p->done = p->done0 = 0;
  p->t0 = sp_time_now();
  p->enabled = isatty(2);
  p->last_draw = p->enabled ? 0 : p->t0;
  if (p->enabled) draw(p, 0);
}

void sp_progress_resume(sp_progress *p, long done) {
  p->done = p->done0 = done;
}

void sp_progress_add(sp_progress *p, long n) {
  pthread_mutex_lock(&g_lock);
  p->done += n;
  double now = sp_time_now();
  if (p->enabled && (now - p->last_draw > 0.2 || p->done >= p->total)) {
    p->last_draw = now;
    draw(p, 0);
  } else if (!p->enabled && now - p->last_draw >= SP_PROGRESS_LOG_S && p->done < p->total) {
    p->last_draw = now;
    log_line(p);
  }
  pthread_mutex_unlock(&g_lock);
}

void sp_progress_finish(sp_progress *p) {
  if (p->enabled) draw(p, 1);
}
