/*
 * fallback_limiter.h - the limiter shape test_chaos and bench_fallback
 * share: one policy per fallback mode on the Redis store.
 */
#ifndef RLT_FALLBACK_LIMITER_H
#define RLT_FALLBACK_LIMITER_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimiter.h"

typedef struct rlt_fallback_policy {
  const char *name;
  rl_fallback_mode mode;
  uint64_t limit; /* per window */
} rlt_fallback_policy;

/* Fills p[0..n) (the names are borrowed) and c: the Redis store on
 * addrs, the policies of spec with one window of window_ms each. The
 * caller sets the rest (timeouts, fallback options) and calls rl_new. */
static inline void
rlt_fallback_config(rl_config *c, rl_policy *p, const rlt_fallback_policy *spec,
                    size_t n, rl_algorithm alg, uint64_t window_ms,
                    const char *const *addrs, size_t n_addrs) {
  for (size_t i = 0; i < n; i++) {
    rl_policy_init(&p[i]);
    p[i].name = spec[i].name;
    p[i].algorithm = alg;
    rl_policy_add_window(&p[i], spec[i].limit, window_ms);
    p[i].fallback = spec[i].mode;
  }
  rl_config_init(c);
  c->policies = p;
  c->n_policies = n;
  c->store = RL_STORE_REDIS;
  c->redis.addrs = addrs;
  c->redis.n_addrs = n_addrs;
}

#endif /* RLT_FALLBACK_LIMITER_H */
