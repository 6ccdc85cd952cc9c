/*
 * log.c - stderr lines with an RFC 3339 UTC time. One fprintf per line, so
 * lines from several threads do not interleave.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

static atomic_int min_level = RLD_LOG_INFO;

void rld_log_set_min(rld_log_level min) {
  atomic_store(&min_level, min);
}

void rld_log(rld_log_level level, const char *fmt, ...) {
  static const char *const names[] = {"info", "warn", "error"};
  if ((int)level < atomic_load(&min_level)) {
    return;
  }
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ratelimitd %s: %s\n",
          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
          tm.tm_sec, ts.tv_nsec / 1000000, names[level], msg);
}
