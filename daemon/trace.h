/*
 * trace.h - OpenTelemetry traces of ratelimitd: one span per decision.
 *
 * DESIGN
 *
 * Head sampling on the worker (trace_context.c): the W3C traceparent of the
 * request, parsed strictly (an invalid one starts a new trace), and the
 * sampler chosen by OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (or the
 * configuration's sample_ratio, parent-based): an unsampled decision costs
 * a header lookup and a random trace id, nothing else. A sampled decision
 * fills a fixed-size rld_span (ids, times, policy, result, source, window,
 * error; never the client key) and queues it.
 *
 * Export (trace_export.c): a bounded lock-free queue (many workers, one
 * exporter); a full queue drops the span and counts it, so the decision
 * path never blocks. The exporter thread wakes every schedule delay
 * (OTEL_BSP_SCHEDULE_DELAY), turns up to a batch of spans into OTLP/HTTP
 * JSON and POSTs it with libcurl to the traces endpoint.
 */
#ifndef RLD_TRACE_H
#define RLD_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <ratelimiter.h>

#include "config.h"

#define RLD_TRACEPARENT_LEN 55 /* version 00 */
#define RLD_TRACE_WINDOW_MAX 24

/* X(NAME, env value) */
#define RLD_SAMPLER_MAP(X)                                                     \
  X(ALWAYS_ON, always_on)                                                      \
  X(ALWAYS_OFF, always_off)                                                    \
  X(RATIO, traceidratio)                                                       \
  X(PARENT_ALWAYS_ON, parentbased_always_on)                                   \
  X(PARENT_ALWAYS_OFF, parentbased_always_off)                                 \
  X(PARENT_RATIO, parentbased_traceidratio)

typedef enum rld_sampler {
#define RLD__SAMPLER_ENUM(name, label) RLD_SAMPLER_##name,
  RLD_SAMPLER_MAP(RLD__SAMPLER_ENUM)
#undef RLD__SAMPLER_ENUM
} rld_sampler;

typedef struct rld_trace_settings {
  int enabled;
  rld_sampler sampler;
  double ratio;       /* of the ratio samplers, 0..1 */
  uint64_t threshold; /* ratio * 2^53: sampled when id bits < threshold */
  char endpoint[RLD_TRACE_TEXT_MAX + 1];
  char service_name[RLD_TRACE_TEXT_MAX + 1];
  size_t queue_max;    /* spans waiting for export (rounded to 2^k) */
  size_t batch_max;    /* spans per export request */
  uint32_t delay_ms;   /* between two exports */
  uint32_t timeout_ms; /* of one export request */
} rld_trace_settings;

typedef const char *(*rld_getenv_fn)(const char *name);

/* The settings from the configuration, overridden by the standard
 * environment: OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER (otlp|none),
 * OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG,
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT (+
 * "/v1/traces"), OTEL_SERVICE_NAME, OTEL_BSP_SCHEDULE_DELAY,
 * OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
 * OTEL_BSP_EXPORT_TIMEOUT. Tracing is on when the configuration enables it
 * or a traces endpoint is set in the environment, unless disabled there.
 * An invalid environment value is ignored and named in warn (may be NULL;
 * "" when none). */
void rld_trace_settings_load(rld_trace_settings *s, const rld_tracing *cfg,
                             rld_getenv_fn env, char *warn, size_t warnlen);

/* A span context: what a traceparent carries. */
typedef struct rld_span_ctx {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t flags; /* bit 0: sampled */
} rld_span_ctx;

/* Parses a traceparent header value (len bytes) strictly per W3C Trace
 * Context: lowercase hex, non-zero ids, version 00 exactly 55 bytes, a
 * later version at least that with '-' after, version ff invalid. 0 or
 * -1. */
int rld_traceparent_parse(const char *s, size_t len, rld_span_ctx *out);

/* One decision's span, filled by rld_trace_sample and rld_trace_finish. */
typedef struct rld_span {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t parent_id[8];
  int has_parent;
  uint64_t start_unix_ns;
  uint64_t end_unix_ns;
  char policy[RL_POLICY_NAME_MAX + 1];
  char window[RLD_TRACE_WINDOW_MAX]; /* "1m"; "" when none */
  const char *result;                /* static: allowed, denied, ... */
  const char *source;                /* static: rl_source_name() */
  const char *error;                 /* static rl_err_name(), or NULL */
} rld_span;

/* Head sampling: 1 when this decision is sampled (span ids, parent and
 * start time set), 0 when not. traceparent may be NULL (no header). Never
 * allocates or blocks. */
int rld_trace_sample(const rld_trace_settings *s, const char *traceparent,
                     rld_span *span);

/* Ends span: end time and attributes from the decision. policy (its
 * config), d and err as rl_decide returned them; shadow: the policy never
 * denies. */
void rld_trace_finish(rld_span *span, const char *policy, const rl_policy *cfg,
                      const rl_decision *d, int err, int shadow);

/* "1m", "1h", "1500ms": a window duration as the metrics write it. */
size_t rld_duration_label(uint64_t ms, char out[RLD_TRACE_WINDOW_MAX]);

/* Lowercase hex of n bytes into out (2n + 1 bytes with the NUL). */
void rld_hex(const uint8_t *bytes, size_t n, char *out);

/* ---- export -------------------------------------------------------------- */

typedef struct rld_tracer rld_tracer;

typedef struct rld_tracer_stats {
  uint64_t queued;   /* spans accepted by the queue */
  uint64_t dropped;  /* spans refused: queue full */
  uint64_t exported; /* spans the collector accepted (2xx) */
  uint64_t failed;   /* spans in requests that failed */
} rld_tracer_stats;

/* Starts the exporter thread. 0, or -1 with a reason in err. */
int rld_tracer_start(const rld_trace_settings *s, rld_tracer **out, char *err,
                     size_t errlen);
/* Exports what is queued, stops the thread, frees. NULL is a no-op. */
void rld_tracer_stop(rld_tracer *t);
/* Queues a finished span (copied); never blocks: a full queue drops it. */
void rld_tracer_submit(rld_tracer *t, const rld_span *span);
const rld_trace_settings *rld_tracer_settings(const rld_tracer *t);
void rld_tracer_stats_get(const rld_tracer *t, rld_tracer_stats *out);

/* The OTLP/HTTP JSON request of n spans, NUL-terminated, malloc'd (NULL
 * when out of memory); *len gets its length. */
char *rld_otlp_json(const rld_trace_settings *s, const rld_span *spans,
                    size_t n, size_t *len);

#endif /* RLD_TRACE_H */
