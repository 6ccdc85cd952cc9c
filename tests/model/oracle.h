/*
 * oracle.h - brute-force reference models for the model test.
 *
 * One om_key is the oracle's view of one (policy, key): for every window, the
 * units the implementation admitted (the history), and what the exact
 * definition of the algorithm answers for a request given that history:
 *
 *   sliding log      units admitted in the trailing window (now - W, now];
 *                    every admitted (time, cost) is kept until the definition
 *                    says it no longer counts; no slot bound, no merging.
 *   fixed window     units admitted in the aligned window [k*W, (k+1)*W).
 *   token bucket     an exact-rational token bucket (capacity B, rate L/W),
 *                    levels scaled by W so that all arithmetic is integer
 *                    (128-bit where products can exceed 64 bits).
 *   sliding counter  the counter's own formula computed from the units of
 *                    the history per aligned window.
 *
 * A second model answers too ("spec"): for the sliding log the bounded log
 * of docs/Algorithms.md (S entries, smallest-gap merging), which the library
 * must match decision for decision; for the sliding counter the exact sliding
 * log fed with the same admissions, which the counter approximates.
 *
 * Clock going backwards: a state only remembers what its data implies (the
 * newest log entry, the current aligned window, the bucket's level line), as
 * docs/Algorithms.md specifies; a smaller now is treated as that remembered
 * time (log, fixed window, counter) or evaluated on the bucket's level line
 * (token bucket: GCRA's max(TAT, now)). The oracle models exactly that, with
 * unbounded exact data behind it.
 *
 * Deciding is two-phase, like the implementation: om_key_decide() applies the
 * spec's per-decision normalisation (expiry, window roll) and answers;
 * om_key_commit() records an admission the implementation made.
 */
#ifndef RL_MODEL_ORACLE_H
#define RL_MODEL_ORACLE_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimiter.h"

#define OM_MAX_WINDOWS 3

typedef enum om_model {
  OM_LOG,     /* exact sliding log */
  OM_FIXED,   /* fixed window */
  OM_COUNTER, /* sliding counter formula */
  OM_TOKEN,   /* exact-rational token bucket */
  OM_BOUNDED, /* bounded sliding log with merging, as specified */
} om_model;

/* Admitted units stamped with a time, stamps strictly increasing (units at
 * the same stamp are merged). Prefix sums give any range in O(log n). */
typedef struct om_events {
  int64_t *t;
  uint64_t *cum; /* units of all events up to and including this one */
  size_t head, len, cap;
  uint64_t dropped; /* cum of the last dropped event (0 if none) */
} om_events;

/* The bounded log of docs/Algorithms.md: at most S entries (t, n). */
typedef struct om_bounded {
  int64_t *t;
  uint64_t *n;
  uint32_t len, slots;
  uint64_t total;
} om_bounded;

typedef struct om_window {
  om_model model;
  uint64_t limit;    /* L */
  uint64_t duration; /* W */
  uint64_t burst;    /* token bucket: B (defaulted to L) */
  om_events ev;      /* log: admission times; fixed/counter: window starts */
  int64_t start;     /* fixed window, counter: current aligned window */
  int64_t t_ref;     /* token bucket: time of the last admission */
  __int128 level;    /* token bucket: level at t_ref, in units * W */
  om_bounded b;      /* bounded log */
} om_window;

typedef struct om_key {
  size_t n;
  om_window w[OM_MAX_WINDOWS]; /* the exact definition */
  om_window x[OM_MAX_WINDOWS]; /* the second model (see above), if any */
  int has_x;
} om_key;

/* What one model answers for one request. */
typedef struct om_result {
  int admit;          /* all windows admit */
  int regressed;      /* the clock was behind the state's remembered time */
  int window;         /* binding window, as docs/Algorithms.md defines it */
  uint64_t limit;     /* of the binding window */
  uint64_t remaining; /* of the binding window (after commit if admit) */
  uint64_t retry;     /* smallest r >= 1 such that the request is admitted at
                         now + r absent other traffic; 0 if admit; NEVER */
} om_result;

/* Sets up an empty key for a policy (burst, log_slots as in rl_policy). */
void om_key_init(om_key *k, const rl_policy *p);
void om_key_free(om_key *k);

/* Decides cost units at now (>= 0) without committing: `exact` is the
 * exact definition's answer, `spec` the second model's (zeroed if none). */
void om_key_decide(om_key *k, int64_t now, uint64_t cost, om_result *exact,
                   om_result *spec);

/* Records an admission of cost units at now, after om_key_decide(k, now). */
void om_key_commit(om_key *k, int64_t now, uint64_t cost);

/* The time from which the key's state equals the all-zero one, as
 * docs/Algorithms.md defines each algorithm's expiry: from then on the store
 * may forget the key (and does so only then). */
int64_t om_key_expiry(const om_key *k);

/* Sliding log: the most distinct admission times live in one window. */
size_t om_key_live_times(const om_key *k);

#endif /* RL_MODEL_ORACLE_H */
