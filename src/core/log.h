/* log.h: one place for messages, expected errors and bug asserts.
 *
 * Two kinds of failure (STYLE.md): a bug hits SP_ASSERT, which prints file:line:function and aborts;
 * an expected failure returns a status and writes a one-line message into a caller's buffer of
 * SP_ERRLEN bytes with sp_errf, which the caller reports once through sp_log. */
#ifndef SP_CORE_LOG_H
#define SP_CORE_LOG_H

#include <stddef.h>

#define SP_ERRLEN 512

typedef enum {
  SP_LOG_ERROR = 0,
  SP_LOG_WARN,
  SP_LOG_INFO,
  SP_LOG_DEBUG,
} sp_log_level;

void sp_log_set_level(sp_log_level level);
sp_log_level sp_log_get_level(void);

/* print "sp: <level>: message" to stderr when level is enabled (thread-safe, one line) */
void sp_log(sp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* format into err (SP_ERRLEN bytes, may be NULL); always returns -1 so callers can
 * `return sp_errf(err, "...")` */
int sp_errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void sp_assert_fail(const char *expr, const char *file, int line, const char *func)
    __attribute__((noreturn));

#define SP_ASSERT(cond) \
  ((cond) ? (void)0 : sp_assert_fail(#cond, __FILE__, __LINE__, __func__))

#endif
