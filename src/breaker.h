/*
 * breaker.h - a circuit breaker: stops sending to a backend that keeps
 * failing, and probes it until it answers again.
 *
 * One breaker guards one Redis node (redis_conn.c owns it), so a cluster
 * router that owns one node per master gets one breaker per master.
 *
 *   CLOSED --threshold consecutive failures--> OPEN
 *   OPEN --probe_interval elapsed: one caller passes--> HALF_OPEN
 *   HALF_OPEN --that probe (or any reply) succeeds--> CLOSED
 *   HALF_OPEN --it fails--> OPEN (next probe one interval after the last)
 *
 * While OPEN or HALF_OPEN every caller but the probe is refused at once.
 * Lock-free: a few atomics, any thread. The clock is passed in (mono ns),
 * so the unit test drives it by hand.
 */
#ifndef RL_BREAKER_H
#define RL_BREAKER_H

#include <stdatomic.h>
#include <stdint.h>

#define RL__BREAKER_THRESHOLD_DEFAULT 10
#define RL__BREAKER_PROBE_MS_DEFAULT 200

enum rl__breaker_state {
  RL__BREAKER_CLOSED = 0,
  RL__BREAKER_OPEN = 1,
  RL__BREAKER_HALF_OPEN = 2,
};

typedef struct rl__breaker {
  atomic_int state;               /* enum rl__breaker_state */
  atomic_uint failures;           /* consecutive, while CLOSED */
  atomic_int_fast64_t next_probe; /* mono ns: when OPEN lets one through */
  uint32_t threshold;             /* 0 = disabled: always CLOSED */
  int64_t probe_ns;
  /* counters, for tests and metrics */
  atomic_uint_fast64_t n_opened, n_closed, n_rejected, n_probes;
} rl__breaker;

typedef struct rl__breaker_stats {
  int state;         /* enum rl__breaker_state */
  uint64_t opened;   /* CLOSED -> OPEN transitions */
  uint64_t closed;   /* back to CLOSED */
  uint64_t rejected; /* calls refused at once */
  uint64_t probes;   /* calls let through while open */
} rl__breaker_stats;

/* threshold 0 disables the breaker; probe_ms 0 means the default. */
void rl__breaker_init(rl__breaker *b, uint32_t threshold, uint32_t probe_ms);

/* May a call go to the backend now? 1 = yes (CLOSED, or this caller is
 * the probe), 0 = refused (counted). */
int rl__breaker_allow(rl__breaker *b, int64_t now_ns);

/* The backend answered: closes the breaker. Returns 1 when this call
 * closed it (one caller per recovery). */
int rl__breaker_success(rl__breaker *b);

/* A call failed or timed out: may open the breaker. */
void rl__breaker_failure(rl__breaker *b, int64_t now_ns);

/* A sign of recovery (a new connection completed its handshake): an open
 * breaker probes at the next call instead of waiting for the interval. */
void rl__breaker_probe_soon(rl__breaker *b);

void rl__breaker_stats_get(const rl__breaker *b, rl__breaker_stats *out);

/* "closed", "open", "half_open". */
const char *rl__breaker_state_name(int state);

#endif /* RL_BREAKER_H */
