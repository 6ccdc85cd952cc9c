/*
 * rl_mw_headers.c - RateLimit-Policy and RateLimit header values as in
 * draft-ietf-httpapi-ratelimit-headers (structured-field lists):
 *
 *   RateLimit-Policy: "api-1m";q=100;w=60, "api-1h";q=1000;w=3600
 *   RateLimit: "api-1m";r=42;t=17
 *
 * Each window of a policy is one quota policy item named
 * "<policy>-<duration>". RateLimit reports the binding window of the
 * decision (the one that denied, or the one with the fewest units left).
 * Integer formatting is done by hand: these run on every request.
 */
#include <string.h>

#include "rl_mw.h"

size_t rl_mw_u64(char *buf, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  for (size_t i = 0; i < n; i++) {
    buf[i] = tmp[n - 1 - i];
  }
  return n;
}

/* A bounded appender: every write checks the room left. */
typedef struct out {
  char *buf;
  size_t cap;
  size_t len;
  int overflow;
} out;

static void put(out *o, const char *s, size_t n) {
  if (o->overflow || n >= o->cap - o->len) {
    o->overflow = 1;
    return;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
}

static void put_str(out *o, const char *s) {
  put(o, s, strlen(s));
}

static void put_u64(out *o, uint64_t v) {
  char tmp[21];
  size_t n = rl_mw_u64(tmp, v);
  put(o, tmp, n);
}

static int finish(out *o) {
  if (o->overflow || o->cap == 0) {
    return -1;
  }
  o->buf[o->len] = '\0';
  return (int)o->len;
}

static uint64_t ceil_seconds(uint64_t ms) {
  return ms / 1000 + (ms % 1000 != 0 ? 1 : 0);
}

/* The buffers below are written through an `out`, which clang-tidy does
 * not follow. */
// NOLINTBEGIN(readability-non-const-parameter)
int rl_mw_format_duration(uint64_t ms, char *buf, size_t cap) {
  static const struct {
    uint64_t ms;
    const char *unit;
  } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
  out o = {buf, cap, 0, 0};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (ms > 0 && ms % units[i].ms == 0) {
      put_u64(&o, ms / units[i].ms);
      put_str(&o, units[i].unit);
      return finish(&o);
    }
  }
  put_u64(&o, ms);
  put_str(&o, "ms");
  return finish(&o);
}

static void put_window_name(out *o, const char *policy_name,
                            const rl_window *w) {
  char dur[32];
  put_str(o, policy_name != NULL ? policy_name : "default");
  put_str(o, "-");
  if (rl_mw_format_duration(w->duration_ms, dur, sizeof dur) < 0) {
    o->overflow = 1;
    return;
  }
  put_str(o, dur);
}

int rl_mw_window_name(const char *policy_name, const rl_window *w, char *buf,
                      size_t cap) {
  out o = {buf, cap, 0, 0};
  put_window_name(&o, policy_name, w);
  return finish(&o);
}

int rl_mw_format_policy(const char *policy_name, const rl_policy *policy,
                        char *buf, size_t cap) {
  out o = {buf, cap, 0, 0};
  for (size_t i = 0; i < policy->n_windows && i < RL_MAX_WINDOWS; i++) {
    const rl_window *w = &policy->windows[i];
    put_str(&o, i > 0 ? ", \"" : "\"");
    put_window_name(&o, policy_name, w);
    put_str(&o, "\";q=");
    put_u64(&o, w->limit);
    put_str(&o, ";w=");
    uint64_t s = ceil_seconds(w->duration_ms);
    put_u64(&o, s > 0 ? s : 1);
  }
  return finish(&o);
}

int rl_mw_format_ratelimit(const char *policy_name, const rl_policy *policy,
                           const rl_decision *d, char *buf, size_t cap) {
  out o = {buf, cap, 0, 0};
  size_t i = d->window >= 0 ? (size_t)d->window : 0;
  if (i >= policy->n_windows || i >= RL_MAX_WINDOWS) {
    return -1;
  }
  put_str(&o, "\"");
  put_window_name(&o, policy_name, &policy->windows[i]);
  put_str(&o, "\";r=");
  put_u64(&o, d->remaining);
  put_str(&o, ";t=");
  put_u64(&o, ceil_seconds(d->reset_after_ms));
  return finish(&o);
}

// NOLINTEND(readability-non-const-parameter)

uint64_t rl_mw_retry_after_s(const rl_decision *d) {
  if (d->allowed || d->retry_after_ms == RL_RETRY_NEVER) {
    return 0;
  }
  uint64_t s = ceil_seconds(d->retry_after_ms);
  return s > 0 ? s : 1;
}
