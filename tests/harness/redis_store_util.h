/*
 * redis_store_util.h - helpers shared by the Redis store tests: a limiter
 * on a harness server through the public API, policies in one line, the
 * store's counters.
 */
#ifndef RLT_REDIS_STORE_UTIL_H
#define RLT_REDIS_STORE_UTIL_H

#include <stdio.h>
#include <string.h>

#include "fallback.h"
#include "harness/redis_server.h"
#include "ratelimiter.h"
#include "redis_store.h"

/* "127.0.0.1:<port>" of a server; the buffer lives in the caller. */
typedef struct rlt_addr {
  char text[32];
  const char *list[1];
} rlt_addr;

static inline void rlt_addr_of(rlt_addr *a, const rlt_redis *server) {
  snprintf(a->text, sizeof a->text, "127.0.0.1:%u", (unsigned)server->port);
  a->list[0] = a->text;
}

/* A config on the Redis store of server (a must outlive the config). */
static inline void rlt_redis_config(rl_config *c, rlt_addr *a,
                                    const rlt_redis *server,
                                    const rl_policy *policies, size_t n) {
  rl_config_init(c);
  rlt_addr_of(a, server);
  c->store = RL_STORE_REDIS;
  c->redis.addrs = a->list;
  c->redis.n_addrs = 1;
  c->policies = policies;
  c->n_policies = n;
}

/* A policy of one algorithm with windows given as limit/duration pairs. */
static inline rl_policy rlt_policy(const char *name, rl_algorithm alg, size_t n,
                                   const rl_window *w) {
  rl_policy p;
  rl_policy_init(&p);
  p.name = name;
  p.algorithm = alg;
  p.n_windows = n;
  for (size_t i = 0; i < n; i++) {
    p.windows[i] = w[i];
  }
  return p;
}

static inline rl__redis_store_stats rlt_store_stats(rl_limiter *rl) {
  rl__redis_store_stats s;
  memset(&s, 0, sizeof s);
  rl__redis_store_stats_get(rl__store_fallback_inner(rl__limiter_store(rl)),
                            &s);
  return s;
}

#endif /* RLT_REDIS_STORE_UTIL_H */
