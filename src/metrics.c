/*
 * metrics.c - striped counters, policy slots and the Prometheus text of the
 * library (metrics.h has the design).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "policy_table.h"

#ifndef RL_VERSION_STRING
#define RL_VERSION_STRING "0.0.0"
#endif

#define N_STRIPES (RL__METRIC_STRIPES + 1) /* the last one is shared */
#define SHARED_STRIPE RL__METRIC_STRIPES
#define N_BUCKETS 14
#define ADDR_MAX 255

/* Upper bounds of the Redis latency buckets, nanoseconds. */
static const int64_t bucket_ns[N_BUCKETS] = {
    50000,    100000,   250000,   500000,    1000000,   2500000,   5000000,
    10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000};

/* Counters that have no policy label, one set per stripe. */
typedef struct stripe {
  _Atomic uint64_t errors[RL__METRIC_ERRS];
  _Atomic uint64_t sources[RL__METRIC_SOURCES];
  _Atomic uint64_t other[2]; /* decisions of slot NONE, by result */
  _Atomic uint64_t redis_bucket[RL__REDIS_OPS][N_BUCKETS + 1];
  _Atomic uint64_t redis_sum_ns[RL__REDIS_OPS];
  _Atomic uint64_t cache_hits, cache_misses;
  _Atomic uint64_t leases_granted, leases_returned;
  _Atomic uint64_t lease_units_granted, lease_units_returned;
  _Atomic uint64_t hot_keys_detected;
  _Atomic uint64_t fallback[RL__FALLBACK_MODES];
} __attribute__((aligned(64))) stripe;

/* What a slot's labels say. */
typedef struct slot_info {
  char policy[RL_POLICY_NAME_MAX + 1];
  size_t n_windows;
  uint64_t duration_ms[RL_MAX_WINDOWS];
} slot_info;

/* Decision counters of RL__METRIC_SLOT_CHUNK slots, per stripe. */
typedef struct slot_stripe {
  _Atomic uint64_t c[RL__METRIC_SLOT_CHUNK][RL_MAX_WINDOWS][2];
} __attribute__((aligned(64))) slot_stripe;

typedef struct chunk {
  slot_stripe stripes[N_STRIPES];
  slot_info info[RL__METRIC_SLOT_CHUNK];
} chunk;

typedef struct node_gauge {
  char addr[ADDR_MAX + 1];
  atomic_int state;
} node_gauge;

struct rl__metrics {
  atomic_int enabled;
  rl_store_type store;
  stripe stripes[N_STRIPES];
  _Atomic(chunk *) chunks[RL__METRIC_CHUNKS];
  atomic_size_t n_slots;     /* slots handed out */
  _Atomic uint64_t hot_keys; /* gauge */
  node_gauge nodes[RL__METRIC_NODES];
  atomic_size_t n_nodes;
  pthread_mutex_t lock; /* slot and node registration */
};

/* ---- stripes ------------------------------------------------------------ */

/* Stripes owned by live threads, process-wide: bit i = stripe i. A thread
 * takes a free one on its first count and gives it back when it exits
 * (pthread key destructor), so short-lived threads do not use up the own
 * stripes. The counts stay in the stripe; its next owner adds to them. */
static atomic_uint_least32_t stripes_owned;
static pthread_key_t stripe_key;
static pthread_once_t stripe_once = PTHREAD_ONCE_INIT;
static _Thread_local unsigned thread_stripe; /* stripe + 1; 0 = none yet */

/* The key's value names the stripe: a pointer into this array (a non-NULL
 * value, so the destructor runs; no integer-to-pointer cast). */
static const char stripe_tags[RL__METRIC_STRIPES];

/* Release: the stripe's counts happen before its next owner's (acquire). */
static void stripe_release(void *arg) {
  unsigned s = (unsigned)((const char *)arg - stripe_tags);
  atomic_fetch_and_explicit(&stripes_owned, ~((uint_least32_t)1 << s),
                            memory_order_release);
}

static void stripe_key_make(void) {
  pthread_key_create(&stripe_key, stripe_release);
}

/* The calling thread's stripe: a free own one while fewer than
 * RL__METRIC_STRIPES threads hold one, else the shared one. */
static unsigned my_stripe(void) {
  if (thread_stripe == 0) {
    pthread_once(&stripe_once, stripe_key_make);
    uint_least32_t owned =
        atomic_load_explicit(&stripes_owned, memory_order_relaxed);
    unsigned s = SHARED_STRIPE;
    for (;;) {
      uint_least32_t free_bits =
          ~owned & (((uint_least32_t)1 << RL__METRIC_STRIPES) - 1);
      if (free_bits == 0) {
        break;
      }
      unsigned i = (unsigned)__builtin_ctz(free_bits);
      if (atomic_compare_exchange_weak_explicit(
              &stripes_owned, &owned, owned | ((uint_least32_t)1 << i),
              memory_order_acquire, memory_order_relaxed)) {
        s = i;
        pthread_setspecific(stripe_key, &stripe_tags[s]);
        break;
      }
    }
    thread_stripe = s + 1;
  }
  return thread_stripe - 1;
}

/* Adds n: a plain store for the stripe's only writer, a fetch-add on the
 * shared stripe. */
static void bump(_Atomic uint64_t *c, unsigned s, uint64_t n) {
  if (s != SHARED_STRIPE) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
  } else {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
  }
}

/* The calling thread's stripe of m, or NULL when nothing is counted. */
static stripe *my(rl__metrics *m, unsigned *s) {
  if (m == NULL || !atomic_load_explicit(&m->enabled, memory_order_relaxed)) {
    return NULL;
  }
  *s = my_stripe();
  return &m->stripes[*s];
}

/* Sum over the stripes of the counter at byte offset `at` of a stripe. */
static uint64_t sum_at(const rl__metrics *m, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < N_STRIPES; i++) {
    const char *base = (const char *)&m->stripes[i];
    v += atomic_load_explicit(
        (const _Atomic uint64_t *)(const void *)(base + at),
        memory_order_relaxed);
  }
  return v;
}

#define SUM(m, field) sum_at((m), offsetof(stripe, field))

/* ---- lifetime and slots ------------------------------------------------- */

int rl__metrics_new(int enabled, rl_store_type store, rl__metrics **out) {
  rl__metrics *m = aligned_alloc(64, sizeof *m);
  if (m == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  memset(m, 0, sizeof *m);
  atomic_init(&m->enabled, enabled);
  m->store = store;
  pthread_mutex_init(&m->lock, NULL);
  *out = m;
  return RL_OK;
}

void rl__metrics_free(rl__metrics *m) {
  if (m == NULL) {
    return;
  }
  for (size_t i = 0; i < RL__METRIC_CHUNKS; i++) {
    free(atomic_load(&m->chunks[i]));
  }
  pthread_mutex_destroy(&m->lock);
  free(m);
}

void rl__metrics_enable(rl__metrics *m, int on) {
  if (m != NULL) {
    atomic_store_explicit(&m->enabled, on != 0, memory_order_relaxed);
  }
}

static const slot_info *info_of(rl__metrics *m, size_t slot) {
  chunk *c = atomic_load_explicit(&m->chunks[slot / RL__METRIC_SLOT_CHUNK],
                                  memory_order_acquire);
  return &c->info[slot % RL__METRIC_SLOT_CHUNK];
}

static void info_fill(slot_info *in, const rl__policy *p) {
  memcpy(in->policy, p->name, p->name_len);
  in->policy[p->name_len] = '\0';
  in->n_windows = p->shape.n_windows;
  for (size_t w = 0; w < p->shape.n_windows; w++) {
    in->duration_ms[w] = p->shape.windows[w].duration_ms;
  }
}

static int info_equal(const slot_info *a, const slot_info *b) {
  if (strcmp(a->policy, b->policy) != 0 || a->n_windows != b->n_windows) {
    return 0;
  }
  return memcmp(a->duration_ms, b->duration_ms,
                a->n_windows * sizeof a->duration_ms[0]) == 0;
}

/* The slot of `want`, allocated if new; RL__METRIC_SLOT_NONE when full or
 * out of memory. Under m->lock. */
static unsigned slot_for(rl__metrics *m, const slot_info *want) {
  size_t n = atomic_load(&m->n_slots);
  for (size_t i = 0; i < n; i++) {
    if (info_equal(info_of(m, i), want)) {
      return (unsigned)i;
    }
  }
  if (n >= RL__METRIC_SLOTS) {
    return RL__METRIC_SLOT_NONE;
  }
  size_t ci = n / RL__METRIC_SLOT_CHUNK;
  if (atomic_load(&m->chunks[ci]) == NULL) {
    chunk *c = aligned_alloc(64, sizeof *c);
    if (c == NULL) {
      return RL__METRIC_SLOT_NONE;
    }
    memset(c, 0, sizeof *c);
    atomic_store_explicit(&m->chunks[ci], c, memory_order_release);
  }
  chunk *c = atomic_load(&m->chunks[ci]);
  c->info[n % RL__METRIC_SLOT_CHUNK] = *want;
  atomic_store_explicit(&m->n_slots, n + 1, memory_order_release);
  return (unsigned)n;
}

void rl__metrics_assign(rl__metrics *m, rl__policy_table *t) {
  if (m == NULL) {
    for (size_t i = 0; i < t->n; i++) {
      t->metric_slots[i] = RL__METRIC_SLOT_NONE;
    }
    return;
  }
  pthread_mutex_lock(&m->lock);
  for (size_t i = 0; i < t->n; i++) {
    slot_info want;
    memset(&want, 0, sizeof want);
    info_fill(&want, &t->policies[i]);
    t->metric_slots[i] = (uint16_t)slot_for(m, &want);
  }
  pthread_mutex_unlock(&m->lock);
}

/* ---- counting ----------------------------------------------------------- */

void rl__metrics_decision(rl__metrics *m, unsigned slot, const rl_decision *d) {
  unsigned s;
  stripe *st = my(m, &s);
  if (st == NULL) {
    return;
  }
  unsigned result = d->allowed ? 0 : 1;
  if ((unsigned)d->source < RL__METRIC_SOURCES) {
    bump(&st->sources[d->source], s, 1);
  }
  if (slot >= RL__METRIC_SLOTS) {
    bump(&st->other[result], s, 1);
    return;
  }
  chunk *c = atomic_load_explicit(&m->chunks[slot / RL__METRIC_SLOT_CHUNK],
                                  memory_order_acquire);
  unsigned w =
      d->window > 0 && d->window < RL_MAX_WINDOWS ? (unsigned)d->window : 0;
  bump(&c->stripes[s].c[slot % RL__METRIC_SLOT_CHUNK][w][result], s, 1);
}

void rl__metrics_error(rl__metrics *m, int err) {
  unsigned s;
  stripe *st = my(m, &s);
  if (st != NULL && err > 0 && err < RL__METRIC_ERRS) {
    bump(&st->errors[err], s, 1);
  }
}

void rl__metrics_redis_latency(rl__metrics *m, rl__redis_op op, int64_t ns) {
  unsigned s;
  stripe *st = my(m, &s);
  if (st == NULL || (unsigned)op >= RL__REDIS_OPS) {
    return;
  }
  ns = ns < 0 ? 0 : ns;
  size_t b = 0;
  while (b < N_BUCKETS && ns > bucket_ns[b]) {
    b++;
  }
  bump(&st->redis_bucket[op][b], s, 1);
  bump(&st->redis_sum_ns[op], s, (uint64_t)ns);
}

/* One of the plain counters of a stripe, by byte offset. */
static void bump_field(rl__metrics *m, size_t at, uint64_t n) {
  unsigned s;
  stripe *st = my(m, &s);
  if (st != NULL) {
    bump((_Atomic uint64_t *)(void *)((char *)st + at), s, n);
  }
}

#define BUMP(m, field, n) bump_field((m), offsetof(stripe, field), (n))

void rl__metrics_cache_hit(rl__metrics *m) {
  BUMP(m, cache_hits, 1);
}

void rl__metrics_cache_miss(rl__metrics *m) {
  BUMP(m, cache_misses, 1);
}

void rl__metrics_lease_granted(rl__metrics *m, uint64_t units) {
  BUMP(m, leases_granted, 1);
  BUMP(m, lease_units_granted, units);
}

void rl__metrics_lease_returned(rl__metrics *m, uint64_t units) {
  BUMP(m, leases_returned, 1);
  BUMP(m, lease_units_returned, units);
}

void rl__metrics_hot_key_detected(rl__metrics *m) {
  BUMP(m, hot_keys_detected, 1);
}

void rl__metrics_hot_keys_set(rl__metrics *m, uint64_t n) {
  if (m != NULL) {
    atomic_store_explicit(&m->hot_keys, n, memory_order_relaxed);
  }
}

void rl__metrics_fallback(rl__metrics *m, rl__fallback_mode mode) {
  if ((unsigned)mode < RL__FALLBACK_MODES) {
    BUMP(m, fallback[mode], 1);
  }
}

int rl__metrics_node(rl__metrics *m, const char *addr) {
  if (m == NULL || addr == NULL) {
    return -1;
  }
  pthread_mutex_lock(&m->lock);
  size_t n = atomic_load(&m->n_nodes);
  int found = -1;
  for (size_t i = 0; i < n && found < 0; i++) {
    if (strcmp(m->nodes[i].addr, addr) == 0) {
      found = (int)i;
    }
  }
  if (found < 0 && n < RL__METRIC_NODES) {
    snprintf(m->nodes[n].addr, sizeof m->nodes[n].addr, "%s", addr);
    for (char *ch = m->nodes[n].addr; *ch != '\0'; ch++) {
      *ch = *ch == '"' || *ch == '\\' || *ch == '\n' ? '_' : *ch;
    }
    atomic_store(&m->nodes[n].state, RL__BREAKER_CLOSED);
    atomic_store_explicit(&m->n_nodes, n + 1, memory_order_release);
    found = (int)n;
  }
  pthread_mutex_unlock(&m->lock);
  return found;
}

void rl__metrics_breaker_state(rl__metrics *m, int node, rl__breaker_state s) {
  if (m != NULL && node >= 0 && (size_t)node < atomic_load(&m->n_nodes)) {
    atomic_store_explicit(&m->nodes[node].state, (int)s, memory_order_relaxed);
  }
}

/* ---- rendering ---------------------------------------------------------- */

size_t rl__metrics_duration_label(uint64_t ms, char *out) {
  static const struct {
    uint64_t ms;
    const char *unit;
  } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (ms >= units[i].ms && ms % units[i].ms == 0) {
      return (size_t)sprintf(
          out, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
    }
  }
  return (size_t)sprintf(out, "%llums", (unsigned long long)ms);
}

/* A writer that remembers its first failure. */
typedef struct out {
  rl_write_fn write;
  void *ctx;
  int failed;
} out;

__attribute__((format(printf, 2, 3))) static void put(out *o, const char *fmt,
                                                      ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (!o->failed && n > 0) {
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    o->failed = o->write(o->ctx, line, len) != 0;
  }
}

static void family(out *o, const char *name, const char *type,
                   const char *help) {
  put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_build(rl__metrics *m, out *o) {
  family(o, "ratelimiter_build_info", "gauge",
         "Library version and store; always 1.");
  put(o, "ratelimiter_build_info{version=\"%s\",store=\"%s\"} 1\n",
      RL_VERSION_STRING, m->store == RL_STORE_REDIS ? "redis" : "memory");
}

static uint64_t slot_count(const chunk *c, size_t in_chunk, size_t w,
                           size_t r) {
  uint64_t v = 0;
  for (size_t s = 0; s < N_STRIPES; s++) {
    v += atomic_load_explicit(&c->stripes[s].c[in_chunk][w][r],
                              memory_order_relaxed);
  }
  return v;
}

static void render_requests(rl__metrics *m, out *o) {
  static const char *const results[] = {"allowed", "denied"};
  family(o, "ratelimiter_requests_total", "counter",
         "Decisions by policy, binding window and result.");
  size_t n = atomic_load_explicit(&m->n_slots, memory_order_acquire);
  for (size_t slot = 0; slot < n; slot++) {
    const chunk *c = atomic_load_explicit(
        &m->chunks[slot / RL__METRIC_SLOT_CHUNK], memory_order_acquire);
    const slot_info *in = &c->info[slot % RL__METRIC_SLOT_CHUNK];
    for (size_t w = 0; w < in->n_windows; w++) {
      char win[24];
      rl__metrics_duration_label(in->duration_ms[w], win);
      for (size_t r = 0; r < 2; r++) {
        put(o,
            "ratelimiter_requests_total{policy=\"%s\",window=\"%s\","
            "result=\"%s\"} %llu\n",
            in->policy, win, results[r],
            (unsigned long long)slot_count(c, slot % RL__METRIC_SLOT_CHUNK, w,
                                           r));
      }
    }
  }
  for (size_t r = 0; r < 2; r++) {
    uint64_t v = SUM(m, other[r]);
    if (v > 0) {
      put(o,
          "ratelimiter_requests_total{policy=\"_other\",window=\"_other\","
          "result=\"%s\"} %llu\n",
          results[r], (unsigned long long)v);
    }
  }
}

static void render_sources(rl__metrics *m, out *o) {
  family(o, "ratelimiter_decision_sources_total", "counter",
         "Decisions by where they came from.");
#define RL__SOURCE_LINE(name, label)                                           \
  if (RL_SOURCE_##name != RL_SOURCE_NONE) {                                    \
    put(o, "ratelimiter_decision_sources_total{source=\"%s\"} %llu\n", #label, \
        (unsigned long long)SUM(m, sources[RL_SOURCE_##name]));                \
  }
  RL_SOURCE_MAP(RL__SOURCE_LINE)
#undef RL__SOURCE_LINE
}

static void render_errors(rl__metrics *m, out *o) {
  family(o, "ratelimiter_errors_total", "counter",
         "Decisions that failed, by error code.");
#define RL__ERR_LINE(name, label, num, msg)                                    \
  if ((num) > 0 && (num) < RL__METRIC_ERRS) {                                  \
    put(o, "ratelimiter_errors_total{code=\"%s\"} %llu\n", #label,             \
        (unsigned long long)SUM(m, errors[(num) % RL__METRIC_ERRS]));          \
  }
  RL_ERRNO_MAP(RL__ERR_LINE)
#undef RL__ERR_LINE
}

static void render_latency_op(rl__metrics *m, out *o, size_t op,
                              const char *label) {
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= N_BUCKETS; b++) {
    cumulative += SUM(m, redis_bucket[op][b]);
    if (b < N_BUCKETS) {
      put(o,
          "ratelimiter_redis_latency_seconds_bucket{operation=\"%s\","
          "le=\"%g\"} %llu\n",
          label, (double)bucket_ns[b] / 1e9, (unsigned long long)cumulative);
    } else {
      put(o,
          "ratelimiter_redis_latency_seconds_bucket{operation=\"%s\","
          "le=\"+Inf\"} %llu\n",
          label, (unsigned long long)cumulative);
    }
  }
  put(o,
      "ratelimiter_redis_latency_seconds_sum{operation=\"%s\"} %.9f\n"
      "ratelimiter_redis_latency_seconds_count{operation=\"%s\"} %llu\n",
      label, (double)SUM(m, redis_sum_ns[op]) / 1e9, label,
      (unsigned long long)cumulative);
}

static void render_latency(rl__metrics *m, out *o) {
  family(o, "ratelimiter_redis_latency_seconds", "histogram",
         "Redis round trips by operation (reply, error or deadline).");
#define RL__OP_RENDER(name, label)                                             \
  render_latency_op(m, o, RL__REDIS_OP_##name, #label);
  RL__REDIS_OP_MAP(RL__OP_RENDER)
#undef RL__OP_RENDER
}

static void counter(rl__metrics *m, out *o, const char *name, const char *help,
                    size_t at) {
  family(o, name, "counter", help);
  put(o, "%s %llu\n", name, (unsigned long long)sum_at(m, at));
}

static void render_layers(rl__metrics *m, out *o) {
  counter(m, o, "ratelimiter_cache_hits_total",
          "Decisions answered by the local blocked-key cache.",
          offsetof(stripe, cache_hits));
  counter(m, o, "ratelimiter_cache_misses_total",
          "Cache lookups that went on to the store.",
          offsetof(stripe, cache_misses));
  counter(m, o, "ratelimiter_leases_granted_total",
          "Quota leases taken from the store.",
          offsetof(stripe, leases_granted));
  counter(m, o, "ratelimiter_leases_returned_total",
          "Quota leases given back to the store.",
          offsetof(stripe, leases_returned));
  family(o, "ratelimiter_lease_units_total", "counter",
         "Units moved by quota leases.");
  put(o,
      "ratelimiter_lease_units_total{event=\"granted\"} %llu\n"
      "ratelimiter_lease_units_total{event=\"returned\"} %llu\n",
      (unsigned long long)SUM(m, lease_units_granted),
      (unsigned long long)SUM(m, lease_units_returned));
  counter(m, o, "ratelimiter_hot_keys_detected_total", "Keys that became hot.",
          offsetof(stripe, hot_keys_detected));
  family(o, "ratelimiter_hot_keys", "gauge", "Keys considered hot now.");
  put(o, "ratelimiter_hot_keys %llu\n",
      (unsigned long long)atomic_load(&m->hot_keys));
}

static void render_fallback(rl__metrics *m, out *o) {
  family(o, "ratelimiter_fallback_events_total", "counter",
         "Decisions made by the fallback while the store was unavailable.");
#define RL__FB_LINE(name, label)                                               \
  put(o, "ratelimiter_fallback_events_total{mode=\"%s\"} %llu\n", #label,      \
      (unsigned long long)SUM(m, fallback[RL__FALLBACK_##name]));
  RL__FALLBACK_MAP(RL__FB_LINE)
#undef RL__FB_LINE
  family(o, "ratelimiter_breaker_state", "gauge",
         "Circuit breaker per Redis node: 0 closed, 1 half-open, 2 open.");
  size_t n = atomic_load_explicit(&m->n_nodes, memory_order_acquire);
  for (size_t i = 0; i < n; i++) {
    put(o, "ratelimiter_breaker_state{node=\"%s\"} %d\n", m->nodes[i].addr,
        atomic_load_explicit(&m->nodes[i].state, memory_order_relaxed));
  }
}

int rl__metrics_write(rl__metrics *m, rl_write_fn write, void *ctx) {
  out o = {write, ctx, 0};
  render_build(m, &o);
  render_requests(m, &o);
  render_sources(m, &o);
  render_errors(m, &o);
  render_latency(m, &o);
  render_layers(m, &o);
  render_fallback(m, &o);
  return o.failed ? RL_ERR_NO_MEMORY : RL_OK;
}
