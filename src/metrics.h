/*
 * metrics.h - the library's counters, and the internal calls that feed them.
 *
 * DESIGN
 *
 * Hot path. Every counter lives in stripes: a thread takes a process-wide
 * index on its first count. While fewer than RL__METRIC_STRIPES threads
 * hold one, a thread owns a stripe and counts with a relaxed load + store
 * (single writer: no locked instruction, no shared cache line); it gives
 * the stripe back when it exits. Threads beyond that share one extra stripe
 * and count with a relaxed fetch-add. A scrape sums the stripes. Nothing on
 * the counting path allocates or locks.
 *
 * Labels. Decisions are counted per (policy, window, result), where the
 * policy part is a "slot": a policy name with its window durations,
 * allocated when a configuration is published (control path) and never
 * reused, so a series keeps counting across reloads that keep the policy
 * and never changes meaning. The window label is the window's duration
 * ("1m", "1h"). Slots past RL__METRIC_SLOTS count under policy "_other".
 * Nothing from a request (its key) ever becomes a label.
 *
 * Other layers (cache, leases, hot keys, fallback, breaker) call the
 * rl__metrics_* functions below; each takes a possibly NULL rl__metrics
 * and does nothing then.
 */
#ifndef RL_METRICS_H
#define RL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimiter.h"

struct rl__policy_table;

#define RL__METRIC_STRIPES 16    /* threads with a stripe of their own */
#define RL__METRIC_SLOT_CHUNK 16 /* slots allocated at a time */
#define RL__METRIC_CHUNKS 256    /* at most 4096 slots per limiter */
#define RL__METRIC_SLOTS ((size_t)RL__METRIC_SLOT_CHUNK * RL__METRIC_CHUNKS)
#define RL__METRIC_SLOT_NONE 0xFFFFu /* counted as policy "_other" */
#define RL__METRIC_NODES 256         /* Redis nodes with a breaker gauge */
#define RL__METRIC_ERRS 64           /* rl_err codes counted */
#define RL__METRIC_SOURCES 16        /* rl_source values counted */

/* Operations whose Redis round trip is timed (operation label). */
#define RL__REDIS_OP_MAP(X) X(ALLOW, allow) X(LEASE, lease) X(SYNC, sync)
typedef enum rl__redis_op {
#define RL__OP_ENUM(name, label) RL__REDIS_OP_##name,
  RL__REDIS_OP_MAP(RL__OP_ENUM)
#undef RL__OP_ENUM
      RL__REDIS_OPS
} rl__redis_op;

/* Fallback modes (mode label of ratelimiter_fallback_events_total). */
#define RL__FALLBACK_MAP(X) X(OPEN, open) X(CLOSED, closed) X(LOCAL, local)
typedef enum rl__fallback_mode {
#define RL__FB_ENUM(name, label) RL__FALLBACK_##name,
  RL__FALLBACK_MAP(RL__FB_ENUM)
#undef RL__FB_ENUM
      RL__FALLBACK_MODES
} rl__fallback_mode;

/* Circuit breaker states; the gauge's value is the number. */
typedef enum rl__breaker_state {
  RL__BREAKER_CLOSED = 0,
  RL__BREAKER_HALF_OPEN = 1,
  RL__BREAKER_OPEN = 2,
} rl__breaker_state;

typedef struct rl__metrics rl__metrics;

/* A registry; enabled = 0 makes every count a no-op (build info and the
 * gauges set by other layers still render). RL_OK or RL_ERR_NO_MEMORY. */
int rl__metrics_new(int enabled, rl_store_type store, rl__metrics **out);
void rl__metrics_free(rl__metrics *m);
/* Turns counting on or off on a live registry (benchmarks compare both on
 * one limiter). */
void rl__metrics_enable(rl__metrics *m, int on);

/* Control path: fills t->metric_slots, allocating a slot for every policy
 * (name + window durations) not seen before. When the slots run out (or
 * memory does) a policy gets RL__METRIC_SLOT_NONE and counts as "_other":
 * metrics never make a configuration fail. m may be NULL. */
void rl__metrics_assign(rl__metrics *m, struct rl__policy_table *t);

/* ---- counted on the decision path --------------------------------------- */

/* One decision (allowed or denied) of the policy in slot. */
void rl__metrics_decision(rl__metrics *m, unsigned slot, const rl_decision *d);
/* One failed decision (err != RL_OK). */
void rl__metrics_error(rl__metrics *m, int err);
/* A Redis round trip of ns nanoseconds (reply or failure). */
void rl__metrics_redis_latency(rl__metrics *m, rl__redis_op op, int64_t ns);

/* ---- fed by the cache, lease, hot-key and fallback layers --------------- */

void rl__metrics_cache_hit(rl__metrics *m);
void rl__metrics_cache_miss(rl__metrics *m);
void rl__metrics_lease_granted(rl__metrics *m, uint64_t units);
void rl__metrics_lease_returned(rl__metrics *m, uint64_t units);
/* A key became hot (counter), and how many keys are hot now (gauge). */
void rl__metrics_hot_key_detected(rl__metrics *m);
void rl__metrics_hot_keys_set(rl__metrics *m, uint64_t n);
/* A decision answered by the fallback in mode (store unavailable). */
void rl__metrics_fallback(rl__metrics *m, rl__fallback_mode mode);

/* The index of a Redis node "host:port" for the breaker gauge, registered
 * on first use (control path, takes a lock); -1 when the table is full. */
int rl__metrics_node(rl__metrics *m, const char *addr);
/* Sets node's breaker state (any thread, lock-free). */
void rl__metrics_breaker_state(rl__metrics *m, int node, rl__breaker_state s);

/* ---- rendering ---------------------------------------------------------- */

/* The limiter's registry (limiter.c); NULL for NULL. */
rl__metrics *rl__limiter_metrics(rl_limiter *rl);

/* Writes the Prometheus text exposition (version 0.0.4) through write.
 * Stops at the first non-zero return of write and returns RL_ERR_NO_MEMORY
 * then; RL_OK otherwise. */
int rl__metrics_write(rl__metrics *m, rl_write_fn write, void *ctx);

/* "1m", "1h", "30s", "1500ms", "1d": a duration as a label. Returns the
 * length written (out holds at least 24 bytes). */
size_t rl__metrics_duration_label(uint64_t ms, char *out);

#endif /* RL_METRICS_H */
