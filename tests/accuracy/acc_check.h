/*
 * acc_check.h - what the accuracy runs share (tests/accuracy/ and
 * tests/integration/test_redis_cache_accuracy.c): the decision log, its
 * offline check against the exact oracle, Redis command counts from INFO
 * commandstats, and a Zipf key distribution.
 *
 * Every decision is one acc_rec stamped with a time on one clock: Redis'
 * now_ms for answers that came from Redis (rl__redis_last_now_ms, the
 * script's TIME), CLOCK_REALTIME in ms read before the call for local ones
 * (cache, lease). Redis and every limiter process run on one host, so both
 * are the same clock. All costs are 1, which makes the order inside one
 * millisecond recoverable (redis_accuracy.h): per key, sort by (now,
 * admitted first, remaining descending) and replay through om_key.
 *
 * Definitions (docs/Accuracy.md): a decision is over-limit when it was
 * admitted although the exact definition of its algorithm, given every
 * unit admitted before it, denies it; a false denial when it was denied
 * although that definition admits it.
 */
#ifndef RL_ACC_CHECK_H
#define RL_ACC_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimiter.h"

typedef struct acc_rec {
  int64_t now;
  uint64_t remaining;
  uint16_t key;
  uint8_t policy, allowed, source;
} acc_rec;

typedef struct acc_verdict {
  long decisions, admitted, local, over, false_denials;
  long late_decisions, late_false_denials; /* at or after half_ms */
  int64_t last_over_ms; /* the time of the last over-limit decision, or 0 */
} acc_verdict;

/* Sorts r and replays each (policy, key) through the exact oracle of
 * pols[policy]; adds to v[group[policy]]. */
void acc_check(acc_rec *r, size_t n, const rl_policy *pols, const int *group,
               acc_verdict *v, int64_t half_ms);

/* EVALSHA + EVAL calls so far on the plain server at 127.0.0.1:port (INFO
 * commandstats); -1 if it cannot be read. */
long long acc_script_calls(uint16_t port);

/* cdf[k] = P(key <= k) for keys 0..n-1 with weight 1 / (k + 1)^s. */
void acc_zipf(double *cdf, int n, double s);
/* The key for a uniform u in [0, 1). */
int acc_zipf_pick(const double *cdf, int n, double u);

/* Milliseconds on CLOCK_REALTIME (the clock Redis' TIME reads). */
int64_t acc_real_ms(void);

#endif /* RL_ACC_CHECK_H */
