/*
 * metrics.h - Prometheus counters of ratelimitd.
 *
 * Counters live per worker thread and are written only by that thread
 * (relaxed atomic load + store, no read-modify-write, no shared cache
 * line), and summed when /metrics is scraped. Labels come from the
 * configuration (policy names, checked to be label-safe), from fixed lists
 * (results, status codes, rl_err names), never from a request: a client's
 * key or an unknown policy name never becomes a label.
 *
 * Policy names map to slots that are never reused, so a counter survives
 * reloads that keep the policy and a removed policy keeps its totals.
 */
#ifndef RLD_METRICS_H
#define RLD_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <ratelimiter.h>

#define RLD_METRIC_SLOTS 2048 /* policy names over the daemon's life */
#define RLD_SLOT_OTHER 0      /* names past RLD_METRIC_SLOTS - 1 */

typedef enum rld_result {
  RLD_RESULT_ALLOWED = 0,
  RLD_RESULT_DENIED = 1,
  RLD_RESULT_SHADOW_DENIED = 2,
  RLD_RESULTS = 3
} rld_result;

/* HTTP statuses counted by code; anything else goes to "other". */
#define RLD_STATUS_LIST(X)                                                     \
  X(200) X(400) X(403) X(404) X(405) X(413) X(429) X(431) X(500) X(503)
#define RLD_STATUS_SLOTS 11

#define RLD_ERR_SLOTS 64 /* rl_err codes counted (RL_ERRNO_MAP) */

/* Latency buckets of a decision, microseconds (upper bounds). */
#define RLD_LATENCY_BUCKETS 10

typedef struct rld_counters {
  _Atomic uint64_t decisions[RLD_METRIC_SLOTS][RLD_RESULTS];
  _Atomic uint64_t status[RLD_STATUS_SLOTS];
  _Atomic uint64_t errors[RLD_ERR_SLOTS];
  _Atomic uint64_t latency[RLD_LATENCY_BUCKETS + 1]; /* last: +Inf */
  _Atomic uint64_t latency_sum_ns;
} rld_counters;

typedef struct rld_metrics {
  pthread_mutex_t lock; /* guards names and n_slots */
  char (*names)[RL_POLICY_NAME_MAX + 1];
  atomic_size_t n_slots;
  size_t n_workers;
  rld_counters *workers; /* one per worker */
  _Atomic uint64_t reloads_ok;
  _Atomic uint64_t reloads_failed;
  _Atomic uint64_t config_version;
  _Atomic uint64_t config_hash;
  _Atomic int64_t last_reload_unix;
} rld_metrics;

/* 0 or -1 (out of memory). */
int rld_metrics_init(rld_metrics *m, size_t n_workers);
void rld_metrics_close(rld_metrics *m);

/* The slot of a policy name, allocated on first use (control thread). */
unsigned rld_metrics_slot(rld_metrics *m, const char *name);

/* Single-writer increments: only the owning worker calls these. */
static inline void rld_count(_Atomic uint64_t *c, uint64_t n) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

void rld_count_status(rld_counters *c, int status);
void rld_count_error(rld_counters *c, int err);
void rld_count_latency(rld_counters *c, uint64_t ns);

struct evbuffer;
/* Appends the tracer's counters (ratelimitd_trace_spans_total{outcome});
 * t may be NULL (tracing off: zeros). */
struct rld_tracer;
void rld_metrics_render_traces(const struct rld_tracer *t,
                               struct evbuffer *out);

/* Appends the Prometheus text exposition to out (an evbuffer). */
struct evbuffer;
struct rl_limiter;
void rld_metrics_render(rld_metrics *m, struct rl_limiter *rl,
                        struct evbuffer *out);

#endif /* RLD_METRICS_H */
