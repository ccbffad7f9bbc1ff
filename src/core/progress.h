/* progress.h: a one-line progress bar with rate and ETA on stderr, only when stderr is a terminal. */
#ifndef SP_CORE_PROGRESS_H
#define SP_CORE_PROGRESS_H

typedef struct {
  const char *label;
  long total, done;
  double t0, last_draw;  // seconds (monotonic)
  int enabled;           // stderr is a tty
} sp_progress;

double sp_time_now(void);  // monotonic seconds
void sp_progress_start(sp_progress *p, const char *label, long total);
void sp_progress_add(sp_progress *p, long n);  // thread-safe
void sp_progress_finish(sp_progress *p);

#endif
