#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sp_log_level g_level = SP_LOG_INFO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *g_names[] = {"error", "warning", "info", "debug"};

void sp_log_set_level(sp_log_level level) { g_level = level; }
sp_log_level sp_log_get_level(void) { return g_level; }

void sp_log(sp_log_level level, const char *fmt, ...) {
  if (level > g_level) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&g_lock);
  fprintf(stderr, "sp: %s: %s\n", g_names[level], buf);
  pthread_mutex_unlock(&g_lock);
}

int sp_errf(char *err, const char *fmt, ...) {
  if (!err) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, SP_ERRLEN, fmt, ap);
  va_end(ap);
  /* one line: fold newlines (MuJoCo's parser messages have them) and trim the end */
  for (char *p = err; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  for (size_t n = strlen(err); n > 0 && err[n - 1] == ' '; n--) err[n - 1] = 0;
  return -1;
}

void sp_assert_fail(const char *expr, const char *file, int line, const char *func) {
  fprintf(stderr, "sp: bug: assertion '%s' failed at %s:%d in %s()\n", expr, file, line, func);
  abort();
}
