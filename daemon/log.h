/*
 * log.h - one line per event on stderr: time, level, message. Never a
 * client key: the callers log policy names, counts and errors only.
 */
#ifndef RLD_LOG_H
#define RLD_LOG_H

typedef enum rld_log_level {
  RLD_LOG_INFO = 0,
  RLD_LOG_WARN = 1,
  RLD_LOG_ERROR = 2
} rld_log_level;

/* Messages below min are dropped (--quiet raises it to WARN). */
void rld_log_set_min(rld_log_level min);

void rld_log(rld_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* RLD_LOG_H */
