/*
 * metrics.c - slots, per-worker counters and the /metrics text.
 */
#include <event2/buffer.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "trace.h"

static const int status_codes[] = {
#define RLD__STATUS(code) code,
    RLD_STATUS_LIST(RLD__STATUS)
#undef RLD__STATUS
};

static const uint64_t latency_bounds_us[RLD_LATENCY_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000};

int rld_metrics_init(rld_metrics *m, size_t n_workers) {
  memset(m, 0, sizeof *m);
  pthread_mutex_init(&m->lock, NULL);
  m->names = calloc(RLD_METRIC_SLOTS, sizeof *m->names);
  m->workers = calloc(n_workers, sizeof *m->workers);
  m->n_workers = n_workers;
  if (m->names == NULL || m->workers == NULL) {
    rld_metrics_close(m);
    return -1;
  }
  snprintf(m->names[RLD_SLOT_OTHER], sizeof m->names[0], "_other");
  atomic_store(&m->n_slots, 1);
  return 0;
}

void rld_metrics_close(rld_metrics *m) {
  free(m->names);
  free(m->workers);
  m->names = NULL;
  m->workers = NULL;
  pthread_mutex_destroy(&m->lock);
}

unsigned rld_metrics_slot(rld_metrics *m, const char *name) {
  pthread_mutex_lock(&m->lock);
  size_t n = atomic_load(&m->n_slots);
  unsigned slot = RLD_SLOT_OTHER;
  for (size_t i = 1; i < n; i++) {
    if (strcmp(m->names[i], name) == 0) {
      slot = (unsigned)i;
    }
  }
  if (slot == RLD_SLOT_OTHER && n < RLD_METRIC_SLOTS) {
    strncpy(m->names[n], name, RL_POLICY_NAME_MAX);
    slot = (unsigned)n;
    atomic_store(&m->n_slots, n + 1);
  }
  pthread_mutex_unlock(&m->lock);
  return slot;
}

void rld_count_status(rld_counters *c, int status) {
  size_t i = 0;
  while (i < RLD_STATUS_SLOTS - 1 && status_codes[i] != status) {
    i++;
  }
  rld_count(&c->status[i], 1);
}

void rld_count_error(rld_counters *c, int err) {
  if (err > 0 && err < RLD_ERR_SLOTS) {
    rld_count(&c->errors[err], 1);
  }
}

void rld_count_latency(rld_counters *c, uint64_t ns) {
  size_t i = 0;
  while (i < RLD_LATENCY_BUCKETS && ns > latency_bounds_us[i] * 1000) {
    i++;
  }
  rld_count(&c->latency[i], 1);
  rld_count(&c->latency_sum_ns, ns);
}

/* Sum over the workers of the counter at byte offset `at` of
 * rld_counters. */
static uint64_t sum_at(const rld_metrics *m, size_t at) {
  uint64_t s = 0;
  for (size_t w = 0; w < m->n_workers; w++) {
    const _Atomic uint64_t *c =
        (const _Atomic uint64_t *)(const void *)((const char *)&m->workers[w] +
                                                 at);
    s += atomic_load_explicit(c, memory_order_relaxed);
  }
  return s;
}

#define SUM(m, field) sum_at((m), offsetof(rld_counters, field))
#define SUM_I(m, field, i)                                                     \
  sum_at((m), offsetof(rld_counters, field) + (i) * sizeof(_Atomic uint64_t))

static void render_decisions(rld_metrics *m, struct evbuffer *out) {
  static const char *const results[] = {"allowed", "denied", "shadow_denied"};
  evbuffer_add_printf(out,
                      "# HELP ratelimitd_decisions_total Decisions by policy "
                      "and result.\n# TYPE ratelimitd_decisions_total "
                      "counter\n");
  pthread_mutex_lock(&m->lock);
  size_t n = atomic_load(&m->n_slots);
  for (size_t slot = 0; slot < n; slot++) {
    for (size_t r = 0; r < RLD_RESULTS; r++) {
      uint64_t v = 0;
      for (size_t w = 0; w < m->n_workers; w++) {
        v += atomic_load_explicit(&m->workers[w].decisions[slot][r],
                                  memory_order_relaxed);
      }
      if (v > 0 || slot > 0) {
        evbuffer_add_printf(
            out,
            "ratelimitd_decisions_total{policy=\"%s\",result=\"%s\"} "
            "%llu\n",
            m->names[slot], results[r], (unsigned long long)v);
      }
    }
  }
  pthread_mutex_unlock(&m->lock);
}

static void render_http(rld_metrics *m, struct evbuffer *out) {
  evbuffer_add_printf(out, "# HELP ratelimitd_http_responses_total HTTP "
                           "responses by status.\n# TYPE "
                           "ratelimitd_http_responses_total counter\n");
  for (size_t i = 0; i < RLD_STATUS_SLOTS; i++) {
    uint64_t v = SUM_I(m, status, i);
    if (i < RLD_STATUS_SLOTS - 1) {
      evbuffer_add_printf(out,
                          "ratelimitd_http_responses_total{code=\"%d\"} "
                          "%llu\n",
                          status_codes[i], (unsigned long long)v);
    } else {
      evbuffer_add_printf(out,
                          "ratelimitd_http_responses_total{code=\"other\"} "
                          "%llu\n",
                          (unsigned long long)v);
    }
  }
  evbuffer_add_printf(out, "# HELP ratelimitd_errors_total Limiter errors by "
                           "code.\n# TYPE ratelimitd_errors_total counter\n");
  for (int e = 1; e < RLD_ERR_SLOTS; e++) {
    uint64_t v = SUM_I(m, errors, (size_t)e);
    if (v > 0) {
      evbuffer_add_printf(out, "ratelimitd_errors_total{error=\"%s\"} %llu\n",
                          rl_err_name(e), (unsigned long long)v);
    }
  }
}

static void render_latency(rld_metrics *m, struct evbuffer *out) {
  evbuffer_add_printf(out,
                      "# HELP ratelimitd_decision_duration_seconds Time in "
                      "the limiter per decision.\n# TYPE "
                      "ratelimitd_decision_duration_seconds histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= RLD_LATENCY_BUCKETS; i++) {
    cumulative += SUM_I(m, latency, i);
    if (i < RLD_LATENCY_BUCKETS) {
      evbuffer_add_printf(out,
                          "ratelimitd_decision_duration_seconds_bucket{le=\"%"
                          "g\"} %llu\n",
                          (double)latency_bounds_us[i] / 1e6,
                          (unsigned long long)cumulative);
    } else {
      evbuffer_add_printf(out,
                          "ratelimitd_decision_duration_seconds_bucket{le=\"+"
                          "Inf\"} %llu\n",
                          (unsigned long long)cumulative);
    }
  }
  evbuffer_add_printf(out,
                      "ratelimitd_decision_duration_seconds_sum %.9f\n"
                      "ratelimitd_decision_duration_seconds_count %llu\n",
                      (double)SUM(m, latency_sum_ns) / 1e9,
                      (unsigned long long)cumulative);
}

static void render_config(rld_metrics *m, struct evbuffer *out) {
  evbuffer_add_printf(
      out,
      "# HELP ratelimitd_config_reloads_total Configuration reloads.\n"
      "# TYPE ratelimitd_config_reloads_total counter\n"
      "ratelimitd_config_reloads_total{result=\"ok\"} %llu\n"
      "ratelimitd_config_reloads_total{result=\"error\"} %llu\n"
      "# HELP ratelimitd_config_info The configuration in force.\n"
      "# TYPE ratelimitd_config_info gauge\n"
      "ratelimitd_config_info{version=\"%llu\",hash=\"%016llx\"} 1\n"
      "# HELP ratelimitd_config_last_reload_timestamp_seconds Last "
      "successful load.\n"
      "# TYPE ratelimitd_config_last_reload_timestamp_seconds gauge\n"
      "ratelimitd_config_last_reload_timestamp_seconds %lld\n",
      (unsigned long long)atomic_load(&m->reloads_ok),
      (unsigned long long)atomic_load(&m->reloads_failed),
      (unsigned long long)atomic_load(&m->config_version),
      (unsigned long long)atomic_load(&m->config_hash),
      (long long)atomic_load(&m->last_reload_unix));
}

static void render_memory(struct rl_limiter *rl, struct evbuffer *out) {
  rl_memory_stats st;
  if (rl == NULL || rl_memory_stats_get(rl, &st) != RL_OK) {
    return;
  }
  evbuffer_add_printf(
      out,
      "# HELP ratelimitd_memory_keys Keys held by the memory store.\n"
      "# TYPE ratelimitd_memory_keys gauge\nratelimitd_memory_keys %llu\n"
      "# HELP ratelimitd_memory_bytes Bytes charged to the memory budget.\n"
      "# TYPE ratelimitd_memory_bytes gauge\nratelimitd_memory_bytes %llu\n"
      "# HELP ratelimitd_memory_max_bytes The memory budget.\n"
      "# TYPE ratelimitd_memory_max_bytes gauge\n"
      "ratelimitd_memory_max_bytes %llu\n"
      "# HELP ratelimitd_memory_evictions_total Keys evicted.\n"
      "# TYPE ratelimitd_memory_evictions_total counter\n"
      "ratelimitd_memory_evictions_total{reason=\"expired\"} %llu\n"
      "ratelimitd_memory_evictions_total{reason=\"live\"} %llu\n",
      (unsigned long long)st.keys, (unsigned long long)st.bytes,
      (unsigned long long)st.max_bytes, (unsigned long long)st.evicted_expired,
      (unsigned long long)st.evicted_live);
}

static int append_text(void *ctx, const char *data, size_t len) {
  return evbuffer_add(ctx, data, len);
}

void rld_metrics_render(rld_metrics *m, struct rl_limiter *rl,
                        struct evbuffer *out) {
  if (rl != NULL) { /* the library's families: ratelimiter_* */
    rl_metrics_write(rl, append_text, out);
  }
  render_decisions(m, out);
  render_http(m, out);
  render_latency(m, out);
  render_config(m, out);
  render_memory(rl, out);
}

void rld_metrics_render_traces(const struct rld_tracer *t,
                               struct evbuffer *out) {
  rld_tracer_stats st;
  rld_tracer_stats_get(t, &st);
  evbuffer_add_printf(
      out,
      "# HELP ratelimitd_trace_spans_total Decision spans by outcome: "
      "queued for export, dropped (queue full), exported, failed (export "
      "request failed).\n"
      "# TYPE ratelimitd_trace_spans_total counter\n"
      "ratelimitd_trace_spans_total{outcome=\"queued\"} %llu\n"
      "ratelimitd_trace_spans_total{outcome=\"dropped\"} %llu\n"
      "ratelimitd_trace_spans_total{outcome=\"exported\"} %llu\n"
      "ratelimitd_trace_spans_total{outcome=\"failed\"} %llu\n",
      (unsigned long long)st.queued, (unsigned long long)st.dropped,
      (unsigned long long)st.exported, (unsigned long long)st.failed);
}
