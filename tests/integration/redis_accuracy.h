/*
 * redis_accuracy.h - what the Redis accuracy client and its checker share: the
 * policies, the key sets and the log format.
 *
 * Every decision is one log line:
 *
 *     <policy> <key> <allowed> <window> <limit> <remaining> <retry> <now>
 *
 * policy is an index into acc_policies(), key the key's text, now the
 * now_ms Redis' script used (rl__redis_last_now_ms), retry the decision's
 * retry_after_ms (RL_RETRY_NEVER as a number). A failed decision is a
 * line "E <error name>". The client's first line is "T <its
 * CLOCK_REALTIME in ms>" so the checker can see the clock it ran under.
 *
 * All requests cost 1, which makes the order of decisions inside one
 * millisecond recoverable: at a fixed now, requests of cost 1 on one key
 * are identical, admissions come first (remaining strictly decreasing),
 * and once one is denied every later one in that millisecond is too. The
 * checker sorts each key's decisions by (now, admitted first, remaining
 * descending) and replays them through the exact oracle.
 */
#ifndef RL_ACCURACY_H
#define RL_ACCURACY_H

#include <string.h>

#include "ratelimiter.h"

#define ACC_N_POLICIES 3
#define ACC_MANY_KEYS 16

/* fixed window, sliding log with L <= log_slots (exact), token bucket. */
static inline void acc_policies(rl_policy *p) {
  static const struct {
    const char *name;
    rl_algorithm alg;
    uint64_t limit, duration;
  } defs[ACC_N_POLICIES] = {
      {"fw", RL_ALG_FIXED_WINDOW, 20, 200},
      {"sl", RL_ALG_SLIDING_LOG, 10, 150},
      {"tb", RL_ALG_TOKEN_BUCKET, 15, 200},
  };
  for (int i = 0; i < ACC_N_POLICIES; i++) {
    rl_policy_init(&p[i]);
    p[i].name = defs[i].name;
    p[i].algorithm = defs[i].alg;
    rl_policy_add_window(&p[i], defs[i].limit, defs[i].duration);
    p[i].log_slots = 32;
  }
}

#endif /* RL_ACCURACY_H */
