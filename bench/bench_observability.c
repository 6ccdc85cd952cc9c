/*
 * bench_observability.c - what metrics and tracing add to a decision.
 *
 * One process, one limiter, one key set (BENCH_KEYS distinct keys,
 * decided round-robin on the memory store, one policy of 1m + 1h windows
 * that admits them all), five modes, interleaved in short repetitions so
 * that machine noise hits them alike:
 *
 *   off              rl_decide with counting turned off
 *                    (rl__metrics_enable(m, 0): same limiter, same memory)
 *   metrics          rl_decide counting
 *   metrics_trace_1pct    + ratelimitd's per-decision tracing (trace.h):
 *                    head sampling with parentbased_traceidratio 0.01, and
 *                    for sampled decisions the span's end and its queueing
 *                    to a running exporter thread
 *   metrics_trace_100pct  the same, every decision sampled
 *   trace_1pct       tracing at 1% on the limiter without metrics
 *
 * and, since a 5% difference drowns in the noise of a shared 2-core box,
 * the instrumentation alone (no rl_decide: one decision's counting plus
 * 1% head sampling, span and queueing), whose CPU ns/op over off's is an
 * estimate of the overhead that noise does not move much.
 *
 * That is the decision path of ratelimitd's /v1/check minus HTTP. The
 * exporter posts to a closed local port (refused at once): its work runs on
 * its own thread; the queue is large enough not to drop at these rates.
 *
 * Prints one JSON object per mode: median wall ns/op and median CPU ns/op
 * of the deciding thread (CLOCK_THREAD_CPUTIME_ID: what other processes
 * on a shared box do not inflate) over BENCH_REPS repetitions of
 * BENCH_REP_MS ms, allocations per op counted process-wide by
 * alloc_count.c (so they include the exporter thread's); and a summary
 * with the CPU overhead of metrics + 1% tracing against off (target <=
 * 5%). Targets are reported, never asserted. Environment: BENCH_REP_MS
 * (20), BENCH_REPS (101), BENCH_KEYS (4096, a power of two).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc_count.h"
#include "metrics.h"
#include "ratelimiter.h"
#include "trace.h"

#define MAX_REPS 1001
#define CHUNK 256
#define TARGET_OVERHEAD_PCT 5.0

enum { OFF, METRICS, TRACE_1, TRACE_100, TRACE_1_ONLY, MODES };
static const char *const mode_names[MODES] = {
    "off", "metrics", "metrics_trace_1pct", "metrics_trace_100pct",
    "trace_1pct"};

typedef struct bench {
  rl_limiter *rl;
  rl_policy policy;
  char (*keys)[32];
  size_t n_keys; /* power of two */
  rld_trace_settings trace_1, trace_100;
  rld_tracer *tracer;
  size_t next; /* round-robin position */
  uint64_t sampled;
} bench;

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void) {
  return clock_ns(CLOCK_MONOTONIC);
}

static long env_long(const char *name, long def, long lo, long hi) {
  const char *s = getenv(name);
  long v = s != NULL && *s != '\0' ? strtol(s, NULL, 10) : def;
  return v < lo ? lo : v > hi ? hi : v;
}

static void die(const char *what, int err) {
  fprintf(stderr, "bench_observability: %s: %s\n", what, rl_strerror(err));
  exit(1);
}

static rl_limiter *limiter(const rl_policy *p) {
  rl_config c;
  rl_config_init(&c);
  c.policies = p;
  c.n_policies = 1;
  rl_limiter *rl = NULL;
  int err = rl_new(&c, &rl);
  if (err != RL_OK) {
    die("rl_new", err);
  }
  return rl;
}

static const char *no_env(const char *name) {
  (void)name;
  return NULL;
}

static rld_trace_settings trace_settings(double ratio) {
  rld_tracing cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.enabled = 1;
  cfg.sample_ratio = ratio;
  cfg.queue_size = 1u << 16;
  strcpy(cfg.endpoint, "http://127.0.0.1:1/v1/traces");
  strcpy(cfg.service_name, "bench");
  rld_trace_settings s;
  rld_trace_settings_load(&s, &cfg, no_env, NULL, 0);
  s.delay_ms = 20;
  s.timeout_ms = 1000;
  return s;
}

/* One decision in mode m: ratelimitd's handle_check minus HTTP. */
static void decide(bench *b, int m) {
  const char *key = b->keys[b->next++ & (b->n_keys - 1)];
  rl_request req = {NULL, 0, key, strlen(key), 1};
  rl_limiter *rl = b->rl;
  rl_decision d;
  const rld_trace_settings *s = m == TRACE_100 ? &b->trace_100
                                : m >= TRACE_1 ? &b->trace_1
                                               : NULL;
  rld_span span;
  if (s != NULL && rld_trace_sample(s, NULL, &span)) {
    int err = rl_decide(rl, &req, &d);
    rld_trace_finish(&span, "default", &b->policy, &d, err, 0);
    rld_tracer_submit(b->tracer, &span);
    b->sampled++;
    return;
  }
  int err = rl_decide(rl, &req, &d);
  if (err != RL_OK || !d.allowed) {
    die("rl_decide (or denied)", err != RL_OK ? err : RL_ERR_INVALID_ARGUMENT);
  }
}

/* Counting + 1% tracing of one decision, without the decision. */
static double instrumentation_cpu_ns(bench *b, uint64_t n) {
  rl__metrics *m = rl__limiter_metrics(b->rl);
  rl__metrics_enable(m, 1);
  rl_decision d;
  memset(&d, 0, sizeof d);
  d.allowed = 1;
  d.source = RL_SOURCE_MEMORY;
  uint64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  for (uint64_t i = 0; i < n; i++) {
    rld_span span;
    if (rld_trace_sample(&b->trace_1, NULL, &span)) {
      rld_trace_finish(&span, "default", &b->policy, &d, RL_OK, 0);
      rld_tracer_submit(b->tracer, &span);
    }
    rl__metrics_decision(m, 0, &d);
  }
  return (double)(clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / (double)n;
}

typedef struct result {
  double ns_per_op;     /* wall time */
  double cpu_ns_per_op; /* the deciding thread's CPU time */
  double allocs_per_op;
} result;

static result run(bench *b, int m, double rep_ns) {
  rl__metrics_enable(rl__limiter_metrics(b->rl), m != OFF && m != TRACE_1_ONLY);
  uint64_t ops = 0;
  uint64_t a0 = bench_alloc_count();
  uint64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  uint64_t t0 = now_ns();
  uint64_t t = t0;
  while ((double)(t - t0) < rep_ns) {
    for (int i = 0; i < CHUNK; i++) {
      decide(b, m);
    }
    ops += CHUNK;
    t = now_ns();
  }
  result r = {(double)(t - t0) / (double)ops,
              (double)(clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0) / (double)ops,
              (double)(bench_alloc_count() - a0) / (double)ops};
  return r;
}

/* Waits (5 s at most) until the exporter has sent everything queued. */
static void drain(bench *b) {
  uint64_t until = now_ns() + UINT64_C(5000000000);
  rld_tracer_stats st;
  do {
    struct timespec pause = {0, 10000000};
    nanosleep(&pause, NULL);
    rld_tracer_stats_get(b->tracer, &st);
  } while (st.exported + st.failed < st.queued && now_ns() < until);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void setup(bench *b) {
  rl_policy_init(&b->policy);
  rl_policy_add_window(&b->policy, UINT32_MAX, 60000);
  rl_policy_add_window(&b->policy, UINT32_MAX, 3600000);
  b->rl = limiter(&b->policy);
  b->keys = calloc(b->n_keys, sizeof *b->keys);
  if (b->keys == NULL) {
    die("keys", RL_ERR_NO_MEMORY);
  }
  for (size_t i = 0; i < b->n_keys; i++) {
    snprintf(b->keys[i], sizeof b->keys[i], "user:%06zu", i);
  }
  b->trace_1 = trace_settings(0.01);
  b->trace_100 = trace_settings(1.0);
  char err[128];
  if (rld_tracer_start(&b->trace_1, &b->tracer, err, sizeof err) != 0) {
    fprintf(stderr, "bench_observability: %s\n", err);
    exit(1);
  }
  for (size_t i = 0; i < b->n_keys * 2; i++) { /* every key exists */
    decide(b, OFF);
  }
}

int main(void) {
  double rep_ns = (double)env_long("BENCH_REP_MS", 20, 1, 60000) * 1e6;
  int reps = (int)env_long("BENCH_REPS", 101, 1, MAX_REPS);
  bench b;
  memset(&b, 0, sizeof b);
  b.n_keys = 1;
  while (b.n_keys < (size_t)env_long("BENCH_KEYS", 4096, 1, 1 << 22)) {
    b.n_keys *= 2;
  }
  setup(&b);
  static double ns[MODES][MAX_REPS], cpu[MODES][MAX_REPS];
  static double allocs[MODES][MAX_REPS];
  static const int light[] = {OFF, METRICS, TRACE_1, TRACE_1_ONLY};
  for (int r = 0; r < reps; r++) {
    /* The light modes in rotating order, then 100% tracing, whose backlog
     * the exporter works off before the next repetition. */
    for (int k = 0; k <= 4; k++) {
      int m = k < 4 ? light[(k + r) % 4] : TRACE_100;
      result res = run(&b, m, rep_ns);
      ns[m][r] = res.ns_per_op;
      cpu[m][r] = res.cpu_ns_per_op;
      allocs[m][r] = res.allocs_per_op;
    }
    drain(&b);
  }
  double med[MODES], med_cpu[MODES];
  for (int m = 0; m < MODES; m++) {
    med[m] = median(ns[m], reps);
    med_cpu[m] = median(cpu[m], reps);
    printf("{\"bench\":\"observability\",\"case\":\"%s\",\"ns_per_op\":%.1f,"
           "\"cpu_ns_per_op\":%.1f,\"ops_per_sec\":%.0f,"
           "\"allocs_per_op\":%.4f,\"overhead_pct\":%.2f,"
           "\"cpu_overhead_pct\":%.2f,\"reps\":%d,\"keys\":%zu,"
           "\"alloc_counting\":%s}\n",
           mode_names[m], med[m], med_cpu[m], 1e9 / med[m],
           median(allocs[m], reps), (med[m] / med[OFF] - 1) * 100,
           (med_cpu[m] / med_cpu[OFF] - 1) * 100, reps, b.n_keys,
           bench_alloc_enabled() ? "true" : "false");
  }
  double instr[MAX_REPS];
  for (int r = 0; r < reps; r++) {
    instr[r] = instrumentation_cpu_ns(&b, 200000);
  }
  double instr_ns = median(instr, reps);
  printf("{\"bench\":\"observability\",\"case\":\"instrumentation_only\","
         "\"cpu_ns_per_op\":%.2f,\"estimated_overhead_pct\":%.2f}\n",
         instr_ns, instr_ns / med_cpu[OFF] * 100);
  rld_tracer_stats st;
  rld_tracer_stats_get(b.tracer, &st);
  rld_tracer_stop(b.tracer);
  double overhead = (med[TRACE_1] / med[OFF] - 1) * 100;
  double cpu_overhead = (med_cpu[TRACE_1] / med_cpu[OFF] - 1) * 100;
  double loadavg[1] = {0};
  if (getloadavg(loadavg, 1) != 1) {
    loadavg[0] = -1;
  }
  printf("{\"bench\":\"observability\",\"case\":\"summary\","
         "\"metrics_trace_1pct_overhead_pct\":%.2f,"
         "\"metrics_trace_1pct_cpu_overhead_pct\":%.2f,\"target_pct\":%.1f,"
         "\"pass\":%s,\"spans_queued\":%llu,\"spans_dropped\":%llu,"
         "\"loadavg_1m\":%.2f}\n",
         overhead, cpu_overhead, TARGET_OVERHEAD_PCT,
         cpu_overhead <= TARGET_OVERHEAD_PCT ? "true" : "false",
         (unsigned long long)st.queued, (unsigned long long)st.dropped,
         loadavg[0]);
  rl_free(b.rl);
  free(b.keys);
  return 0;
}
