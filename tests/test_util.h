/*
 * test_util.h - helpers shared by the cmocka tests: a fake clock and a
 * one-call way to build a limiter around one policy.
 */
#ifndef RL_TEST_UTIL_H
#define RL_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimiter.h"

typedef struct fake_clock {
  int64_t now; /* ms */
} fake_clock;

static inline int64_t fake_clock_read(void *ctx) {
  return ((fake_clock *)ctx)->now;
}

/* A config of n policies on the memory store (defaults otherwise). */
static inline void memory_config(rl_config *c, const rl_policy *p, size_t n) {
  rl_config_init(c);
  c->policies = p;
  c->n_policies = n;
}

/* The same, reading clock. */
static inline void fake_clock_config(rl_config *c, const rl_policy *p, size_t n,
                                     fake_clock *clock) {
  memory_config(c, p, n);
  c->clock = fake_clock_read;
  c->clock_ctx = clock;
}

/* A policy of one window: limit units per ms milliseconds. */
static inline rl_policy one_window(rl_algorithm alg, uint64_t limit,
                                   uint64_t ms) {
  rl_policy p;
  rl_policy_init(&p);
  p.algorithm = alg;
  rl_policy_add_window(&p, limit, ms);
  return p;
}

/* A limiter with one policy (algorithm, windows as limit/duration pairs) on
 * the memory store, reading `clock`. */
static inline rl_limiter *limiter_with(rl_algorithm alg, fake_clock *clock,
                                       size_t n_windows,
                                       const rl_window *windows) {
  rl_policy p;
  rl_policy_init(&p);
  p.algorithm = alg;
  for (size_t i = 0; i < n_windows; i++) {
    p.windows[i] = windows[i];
  }
  p.n_windows = n_windows;
  rl_config c;
  fake_clock_config(&c, &p, 1, clock);
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  return rl;
}

static inline int allow_str(rl_limiter *rl, const char *key, int64_t cost,
                            rl_decision *d) {
  return rl_allow_n(rl, key, strlen(key), cost, d);
}

/* The value of the Prometheus sample whose name and labels are exactly
 * `series` in text; fails the test when absent. */
static inline unsigned long long metric_sample(const char *text,
                                               const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; (p = strstr(p, series)) != NULL; p += n) {
    if ((p == text || p[-1] == '\n') && p[n] == ' ') {
      return strtoull(p + n + 1, NULL, 10);
    }
  }
  fail_msg("no sample %s in:\n%s", series, text);
  return 0;
}

#endif /* RL_TEST_UTIL_H */
