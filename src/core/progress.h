/* progress.h: a one-line progress bar with rate and ETA on stderr when it is a terminal; else (a
 * job under nohup, a CI log) a plain line with the count and ETA every SP_PROGRESS_LOG_S seconds. */
#ifndef SP_CORE_PROGRESS_H
#define SP_CORE_PROGRESS_H

#define SP_PROGRESS_LOG_S 60

typedef struct {
  const char *label;
  long total, done;
  long done0;            // done before this run (a resumed job): the ETA uses this run's rate only
  double t0, last_draw;  // seconds (monotonic)
  int enabled;           // stderr is a tty
} sp_progress;

double sp_time_now(void);  // monotonic seconds
void sp_progress_start(sp_progress *p, const char *label, long total);
/* a resumed job: `done` of the total were done by an earlier run */
void sp_progress_resume(sp_progress *p, long done);
/* seconds left at this run's rate after `elapsed` seconds of it (0 before any of its work) */
double sp_progress_eta(const sp_progress *p, double elapsed);
void sp_progress_add(sp_progress *p, long n);  // thread-safe
void sp_progress_finish(sp_progress *p);

#endif
