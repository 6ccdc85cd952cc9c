/*
 * test_chaos.c - real faults under load (issue 6; docs/Degradation.md has
 * the figures and bounds, docs/Operations.md the failure table rendered
 * from this test's results).
 *
 * Each scenario runs load threads on one limiter (Redis store, 100 ms
 * deadline, breaker threshold 10, probe interval 200 ms, local share
 * limit / 2) across three policies, one per mode (open, closed, local),
 * injects one fault into a real redis-server, heals it, and checks:
 *   - no decision returns past its deadline + margin + the machine's
 *     scheduling delay, not counting its own run-queue delay during the
 *     call (/proc/thread-self/schedstat) (deadline 100 ms; margin 5 ms,
 *     x4 in sanitizer builds, 250 ms for 1000 callers, CHAOS_MARGIN_MS
 *     overrides; the scheduling delay is the worst oversleep of a monitor
 *     thread's 2 ms sleeps, for a lock holder kept off a CPU); p99.9 and
 *     max lateness are printed with and without the run-queue delay;
 *   - no decision fails: every mode answers, and each policy's sources
 *     are Redis or its own mode's fallback;
 *   - the breaker opens within 1 s of the fault (faults that make Redis
 *     unreachable or silent) and decisions are back on Redis within 1 s
 *     of the recovery;
 *   - in a cluster, keys on the other masters stay on Redis throughout;
 *   - reconciliation is exact: a key driven by the main thread spends
 *     units on Redis before the fault and locally during it; after the
 *     recovery Redis counts exactly their sum (no loss, no double count);
 *   - local mode never admits more than its share during the outage.
 * Faults: kill -9 and restart, SIGSTOP/SIGCONT, CLIENT PAUSE, DEBUG SLEEP,
 * maxmemory + noeviction (OOM error replies), a network partition (network
 * namespace + veth + nftables drop rules; skipped without CAP_NET_ADMIN),
 * kill -9 of a Redis Cluster master (3 masters + 3 replicas), and 1000
 * concurrent callers during a SIGSTOP (threads and memory stay bounded).
 * CHAOS_OUTAGE_MS sets the outage length (default 2000); CHAOS_LOG=FILE
 * logs every decision of the load threads; CHAOS_ONLY=NAME runs one
 * scenario (a cmocka test name pattern); CHAOS_RESULTS=FILE gets one JSON
 * line per scenario (default chaos-results.jsonl).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#include "chaos/fallback_limiter.h"
#include "fallback.h"
#include "harness/redis_cluster.h"
#include "harness/redis_server.h"
#include "ratelimiter.h"
#include "redis_conn.h"
#include "redis_store.h"

#if defined(__SANITIZE_THREAD__)
#define RLT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RLT_TSAN 1
#endif
#endif
#ifndef RLT_TSAN
#define RLT_TSAN 0
#endif

#define N_POLICIES 3 /* open, closed, local */
#define ACCT 3       /* the accounting policy (local) */
#define ACCT_LIMIT 100
#define LOCAL_SHARE 500 /* limit 1000 / local_instances 2 */
/* A decision returns by its deadline + this (x4 under sanitizers) + the
 * scheduling delay the monitor thread measures. */
#define DEADLINE_MARGIN_MS 5
#define BREAKER_THRESHOLD 10 /* the default the limiters use */
#define TIMEOUT_MS 100
#define PROBE_MS 200
#define KEYS_PER_POLICY 64
#define HIST_BINS 20000  /* 10 us each: 0..200 ms */
#define LAT_BINS 10000   /* 1 ms each: 0..10 s */
#define LATE_BINS 100000 /* 10 us each past the deadline: 0..1 s */

/* Which keys the fault touches: every key of a standalone server; in a
 * cluster, the keys of the killed master's slots. */
enum key_class { KEY_AFFECTED, KEY_OTHER_NODE, KEY_UNKNOWN };

static rlt_redis srv;
static const char *const policy_names[] = {"open", "closed", "local", "acct"};

typedef struct load {
  rl_limiter *rl;
  atomic_int stop;
  int pace_us; /* sleep between a thread's decisions */
  atomic_uint_fast64_t n, n_err, n_wrong_source;
  atomic_int last_err;
  int64_t margin_ms; /* late: past TIMEOUT_MS + this + scheduling */
  atomic_uint_fast64_t by_source[N_POLICIES][8];
  atomic_int_fast64_t max_us;
  atomic_int_fast64_t recover_at;  /* ms, 0 = not yet */
  atomic_int_fast64_t first_redis; /* first Redis decision after it */
  atomic_int_fast64_t fault_at;
  atomic_int_fast64_t breaker_at; /* first time the breaker was seen open */
  atomic_uint_fast64_t local_admitted[KEYS_PER_POLICY]; /* during outage */
  /* latency of decisions made while the breaker was open: 10 us bins */
  atomic_uint_fast64_t open_hist[HIST_BINS];
  atomic_uint_fast64_t lat_hist[LAT_BINS]; /* every decision, 1 ms bins */
  atomic_int_fast64_t sched_max_us;        /* worst oversleep of the monitor */
  /* calls that waited their whole deadline: how late they returned */
  atomic_uint_fast64_t late_hist[LATE_BINS];
  /* the same, minus each call's run-queue delay: the library's part */
  atomic_uint_fast64_t own_hist[LATE_BINS];
  atomic_int no_schedstat; /* no run-queue delays: monitor's delay used */
  atomic_uint_fast64_t n_other, n_other_bad; /* keys the fault spares */
  atomic_uint_fast64_t n_other_timeout;      /* of those: deadline passed */
  atomic_uchar key_class[N_POLICIES][KEYS_PER_POLICY]; /* enum key_class */
} load;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int source_ok(int policy, rl_source s) {
  static const rl_source fb[] = {RL_SOURCE_FALLBACK_OPEN,
                                 RL_SOURCE_FALLBACK_CLOSED,
                                 RL_SOURCE_FALLBACK_LOCAL};
  return s == RL_SOURCE_REDIS || s == fb[policy];
}

/* CHAOS_LOG=FILE: every decision, one line each: ms since the start,
 * scenario, policy, key, error, source, allowed, latency in us. */
static FILE *decision_log;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *scenario_name = "";
static int64_t log_t0;

static void log_decision(int policy, unsigned key, int err,
                         const rl_decision *d, int64_t dt_us) {
  if (decision_log == NULL) {
    return;
  }
  pthread_mutex_lock(&log_mu);
  fprintf(decision_log, "%lld %s %s k%u %s %s %d %lld\n",
          (long long)(rlt_now_ms() - log_t0), scenario_name,
          policy_names[policy], key, rl_err_name(err),
          err == RL_OK ? rl_source_name(d->source) : "-",
          err == RL_OK ? d->allowed : 0, (long long)dt_us);
  pthread_mutex_unlock(&log_mu);
}

/* wait_us: how long the caller was runnable but not running during the
 * call (its run-queue delay, schedstat), or -1 if unknown. */
static void note(load *l, int policy, unsigned key, int err,
                 const rl_decision *d, int64_t dt_us, int64_t wait_us) {
  log_decision(policy, key, err, d, dt_us);
  atomic_fetch_add(&l->n, 1);
  int64_t max = atomic_load(&l->max_us);
  while (dt_us > max && !atomic_compare_exchange_weak(&l->max_us, &max, dt_us))
    ;
  int64_t ms = dt_us / 1000;
  atomic_fetch_add(&l->lat_hist[ms < LAT_BINS ? ms : LAT_BINS - 1], 1);
  if (dt_us >= TIMEOUT_MS * 1000) {
    int64_t bin = (dt_us - TIMEOUT_MS * 1000) / 10;
    atomic_fetch_add(&l->late_hist[bin < LATE_BINS ? bin : LATE_BINS - 1], 1);
    /* the library's own lateness: without the time the kernel kept the
     * caller off a CPU */
    int64_t own = dt_us - TIMEOUT_MS * 1000 - (wait_us > 0 ? wait_us : 0);
    bin = own > 0 ? own / 10 : 0;
    atomic_fetch_add(&l->own_hist[bin < LATE_BINS ? bin : LATE_BINS - 1], 1);
    if (wait_us < 0) {
      atomic_store(&l->no_schedstat, 1);
    }
  }
  int cls =
      atomic_load_explicit(&l->key_class[policy][key], memory_order_relaxed);
  if (cls == KEY_OTHER_NODE) {
    /* another master: the fault must not show. A call that waited out
     * its deadline is the loaded machine's (it happens without a fault);
     * the fault would show as a fast fallback (an open breaker, a lost
     * connection) or an error. */
    atomic_fetch_add(&l->n_other, 1);
    if (err != RL_OK) {
      atomic_fetch_add(&l->n_other_bad, 1);
    } else if (d->source != RL_SOURCE_REDIS) {
      atomic_fetch_add(
          dt_us < TIMEOUT_MS * 1000 ? &l->n_other_bad : &l->n_other_timeout, 1);
    }
  }
  if (atomic_load(&l->breaker_at) != 0 && atomic_load(&l->recover_at) == 0) {
    int64_t bin = dt_us / 10;
    atomic_fetch_add(&l->open_hist[bin < HIST_BINS ? bin : HIST_BINS - 1], 1);
  }
  if (err != RL_OK) {
    atomic_fetch_add(&l->n_err, 1);
    atomic_store(&l->last_err, err);
    return;
  }
  atomic_fetch_add(&l->by_source[policy][d->source & 7], 1);
  if (!source_ok(policy, d->source)) {
    atomic_fetch_add(&l->n_wrong_source, 1);
  }
  if (d->source == RL_SOURCE_FALLBACK_LOCAL && d->allowed) {
    atomic_fetch_add(&l->local_admitted[key], 1);
  }
  int64_t rec = atomic_load(&l->recover_at);
  int64_t zero = 0;
  if (d->source == RL_SOURCE_REDIS && rec != 0 && cls == KEY_AFFECTED) {
    atomic_compare_exchange_strong(&l->first_redis, &zero, rlt_now_ms());
  }
}

/* The calling thread's run-queue delay so far (schedstat's second field,
 * ns), or -1. */
static int64_t run_delay_ns(int fd) {
  char buf[96];
  ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
  long long on_cpu = 0, delay = 0;
  if (n <= 0) {
    return -1;
  }
  buf[n] = '\0';
  return sscanf(buf, "%lld %lld", &on_cpu, &delay) == 2 ? delay : -1;
}

static void *load_thread(void *arg) {
  load *l = arg;
  unsigned seed = (unsigned)(uintptr_t)pthread_self();
  char key[16];
  int sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  for (unsigned i = 0; !atomic_load(&l->stop); i++) {
    int p = (int)(i % N_POLICIES);
    unsigned k = (unsigned)rand_r(&seed) % KEYS_PER_POLICY;
    int len = snprintf(key, sizeof key, "k%u", k);
    rl_request req = {policy_names[p], strlen(policy_names[p]), key,
                      (size_t)len, 1};
    rl_decision d;
    int64_t w0 = run_delay_ns(sched_fd);
    int64_t t0 = now_us();
    int err = rl_decide(l->rl, &req, &d);
    int64_t dt = now_us() - t0;
    int64_t w1 = run_delay_ns(sched_fd);
    note(l, p, k, err, &d, dt, w0 >= 0 && w1 >= 0 ? (w1 - w0) / 1000 : -1);
    if (l->pace_us > 0) {
      usleep((useconds_t)l->pace_us);
    }
  }
  if (sched_fd >= 0) {
    close(sched_fd);
  }
  rl__redis_thread_cleanup();
  return NULL;
}

/* Also measures the machine: how late the monitor wakes from a 2 ms
 * sleep is how late any thread woken at its deadline gets a CPU. */
static void *monitor_thread(void *arg) {
  load *l = arg;
  while (!atomic_load(&l->stop)) {
    int64_t t0 = now_us();
    rlt_sleep_ms(2);
    int64_t over = now_us() - t0 - 2000;
    int64_t max = atomic_load(&l->sched_max_us);
    if (over > max) {
      atomic_store(&l->sched_max_us, over);
    }
    rl_fallback_stats fs;
    rl_fallback_stats_get(l->rl, &fs);
    int64_t zero = 0;
    if (fs.breaker_open && atomic_load(&l->fault_at) != 0) {
      atomic_compare_exchange_strong(&l->breaker_at, &zero, rlt_now_ms());
    }
  }
  return NULL;
}

/* Decisions that returned past the deadline + margin + the worst
 * scheduling delay the monitor saw, not counting the time the kernel kept
 * the caller itself off a CPU (its run-queue delay during the call): the
 * library's own lateness. The monitor's delay stays in the bound for the
 * waits the caller's run-queue delay does not show: a lock held by
 * another thread (the loop thread handing a reply over, the reconciler)
 * that is itself waiting for a CPU. */
static uint64_t count_late(load *l) {
  int64_t limit_us = l->margin_ms * 1000 + atomic_load(&l->sched_max_us);
  uint64_t late = 0;
  for (int64_t i = limit_us / 10 + 1; i < LATE_BINS; i++) {
    late += atomic_load(&l->own_hist[i]);
  }
  return late;
}

static double load_average(void) {
  double avg[1] = {0};
  return getloadavg(avg, 1) == 1 ? avg[0] : -1;
}

/* ---- the limiter ----------------------------------------------------------
 */

static uint32_t probe_ms = PROBE_MS; /* of the limiters made next */

/* Where the limiters go: one address, or a cluster's seeds. */
typedef struct target {
  const char *const *addrs;
  size_t n;
  int cluster;
} target;

static rl_limiter *limiter_on(const target *t, uint32_t timeout) {
  static const rlt_fallback_policy spec[] = {
      {"open", RL_FALLBACK_OPEN, 1000},
      {"closed", RL_FALLBACK_CLOSED, 1000},
      {"local", RL_FALLBACK_LOCAL, 1000},
      {"acct", RL_FALLBACK_LOCAL, ACCT_LIMIT}};
  rl_policy p[4];
  rl_config c;
  rlt_fallback_config(&c, p, spec, 4, RL_ALG_SLIDING_LOG, 60000, t->addrs,
                      t->n);
  c.redis.mode = t->cluster ? RL_REDIS_MODE_CLUSTER : RL_REDIS_MODE_AUTO;
  c.redis.timeout_ms = timeout;
  c.fallback.mode = RL_FALLBACK_OPEN;
  c.fallback.probe_interval_ms = probe_ms;
  c.fallback.local_instances = 2;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  char err[256];
  if (rl_wait_ready(rl, 20000, err, sizeof err) != RL_OK) {
    fail_msg("not ready: %s", err);
  }
  return rl;
}

static rl_limiter *chaos_limiter(const char *addr) {
  const char *addrs[1] = {addr};
  target t = {addrs, 1, 0};
  return limiter_on(&t, TIMEOUT_MS);
}

/* The checker's target: the standalone server on 127.0.0.1, or the
 * cluster of the cluster scenario. */
static target checked;

/* Another instance on the same Redis (127.0.0.1) with a 10 s deadline:
 * spends and reads the accounting key exactly, however loaded the machine
 * is (a 100 ms decision that times out may or may not count). */
static rl_limiter *checker(void) {
  if (checked.n > 0) {
    return limiter_on(&checked, 10000);
  }
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)srv.port);
  const char *addrs[1] = {addr};
  target t = {addrs, 1, 0};
  return limiter_on(&t, 10000);
}

static void local_addr(char *buf, size_t len) {
  snprintf(buf, len, "127.0.0.1:%u", (unsigned)srv.port);
}

/* The accounting key: n decisions of cost 1; returns how many were
 * admitted, or -1 (with a message) when one failed or came from another
 * source than `want`. Asserts nothing: load threads may be running. */
static int acct_spend(rl_limiter *rl, int n, rl_source want) {
  int admitted = 0;
  for (int i = 0; i < n; i++) {
    rl_request req = {"acct", 4, "acct", 4, 1};
    rl_decision d;
    int err = rl_decide(rl, &req, &d);
    if (err != RL_OK || d.source != want) {
      fprintf(stderr, "acct decision %d: err %s, source %s (want %s)\n", i,
              rl_err_name(err), rl_source_name(err ? RL_SOURCE_NONE : d.source),
              rl_source_name(want));
      return -1;
    }
    admitted += d.allowed;
  }
  return admitted;
}

/* The accounting key's count in Redis, from one more decision. */
static int acct_count(rl_limiter *rl) {
  rl_request req = {"acct", 4, "acct", 4, 1};
  rl_decision d;
  assert_int_equal(rl_wait_ready(rl, 10000, NULL, 0), RL_OK);
  assert_int_equal(rl_decide(rl, &req, &d), RL_OK);
  if (d.source != RL_SOURCE_REDIS) {
    rl__redis_node_stats ns;
    rl__redis_store_node_stats(rl__store_fallback_inner(rl__limiter_store(rl)),
                               &ns);
    fprintf(stderr,
            "acct_count: source %s; node: ready %u, timeouts %llu, lost %llu, "
            "breaker %d\n",
            rl_source_name(d.source), ns.ready, (unsigned long long)ns.timeouts,
            (unsigned long long)ns.conn_lost, ns.breaker_state);
  }
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  return (int)(ACCT_LIMIT - d.remaining) - 1;
}

/* ---- scenarios ------------------------------------------------------------
 */

typedef struct scenario {
  const char *name;
  void (*fault)(void);
  void (*heal)(void);
  int expect_breaker; /* Redis silent or unreachable: the breaker opens */
  int keeps_state;    /* Redis keeps its data through the fault */
  int n_threads;
  int pace_us;
  int64_t outage_ms;
  int64_t margin_ms; /* past the deadline; 0 = DEADLINE_MARGIN_MS */
  const char *row;   /* of the failure table (docs/Operations.md) */
  /* after the warm-up, before the fault (cluster: which master, keys) */
  void (*prepare)(load *l);
} scenario;

static int64_t outage_ms(void) {
  const char *e = getenv("CHAOS_OUTAGE_MS");
  return e != NULL && atoi(e) > 0 ? atoi(e) : 2000;
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
      rss = 0;
    }
    fclose(f);
  }
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static int n_threads_now(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  int n = 0;
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "Threads: %d", &n) == 1) {
      break;
    }
  }
  if (f != NULL) {
    fclose(f);
  }
  return n;
}

/* The q-quantile of a histogram of `bins` bins of `bin_ms` each, in ms
 * (the upper edge of the bin); -1 if empty. */
static double quantile(atomic_uint_fast64_t *hist, int bins, double bin_ms,
                       double q) {
  uint64_t total = 0, seen = 0;
  for (int i = 0; i < bins; i++) {
    total += atomic_load(&hist[i]);
  }
  for (int i = 0; i < bins && total > 0; i++) {
    seen += atomic_load(&hist[i]);
    if ((double)seen >= q * (double)total) {
      return (double)(i + 1) * bin_ms;
    }
  }
  return -1;
}

static uint64_t hist_total(atomic_uint_fast64_t *hist, int bins) {
  uint64_t total = 0;
  for (int i = 0; i < bins; i++) {
    total += atomic_load(&hist[i]);
  }
  return total;
}

/* What a scenario measured and whether each criterion held. */
typedef struct outcome {
  int64_t breaker_ms, back_ms, within_ms, breaker_within_ms, margin_ms,
      sched_ms;
  uint64_t late, deadline_calls, local_max;
  double late_p999_ms, late_max_ms, own_p999_ms, own_max_ms;
  long rss_kb;
  int threads;
  int acct_expected, acct_counted;
  rl_fallback_stats fs;
  const char *failed; /* the first criterion that failed, or NULL */
} outcome;

static void print_figures(const scenario *s, load *l, const outcome *o) {
  printf("chaos %-16s decisions %6llu, max %5.1f ms, late %llu (margin %lld "
         "ms; monitor's oversleep %.1f ms), errors %llu (%s), breaker open "
         "after %4lld "
         "ms, back on Redis %4lld ms after recovery, rss +%ld KiB, threads "
         "%d\n",
         s->name, (unsigned long long)atomic_load(&l->n),
         (double)atomic_load(&l->max_us) / 1000, (unsigned long long)o->late,
         (long long)o->margin_ms, (double)atomic_load(&l->sched_max_us) / 1000,
         (unsigned long long)atomic_load(&l->n_err),
         rl_err_name(atomic_load(&l->last_err)), (long long)o->breaker_ms,
         (long long)o->back_ms, o->rss_kb, o->threads);
  printf("  past the deadline (%llu calls waited it out): p99.9 <= %.2f ms, "
         "max <= %.2f ms; without their run-queue delay: p99.9 <= %.2f ms, "
         "max <= %.2f ms\n",
         (unsigned long long)o->deadline_calls, o->late_p999_ms, o->late_max_ms,
         o->own_p999_ms, o->own_max_ms);
  printf("  while the breaker was open: p50 <= %.2f ms, p99 <= %.2f ms, "
         "max <= %.2f ms\n",
         quantile(l->open_hist, HIST_BINS, 0.01, 0.5),
         quantile(l->open_hist, HIST_BINS, 0.01, 0.99),
         quantile(l->open_hist, HIST_BINS, 0.01, 1));
  if (atomic_load(&l->n_other) > 0) {
    printf("  keys on the other masters: %llu decisions, %llu fell back "
           "without waiting or failed, %llu timed out (the machine)\n",
           (unsigned long long)atomic_load(&l->n_other),
           (unsigned long long)atomic_load(&l->n_other_bad),
           (unsigned long long)atomic_load(&l->n_other_timeout));
  }
  for (int p = 0; p < N_POLICIES; p++) {
    printf("  %-6s", policy_names[p]);
    for (int k = 0; k < 8; k++) {
      uint64_t v = atomic_load(&l->by_source[p][k]);
      if (v != 0) {
        printf(" %s=%llu", rl_source_name((rl_source)k), (unsigned long long)v);
      }
    }
    printf("\n");
  }
  printf("  reconciliation: %llu units added, %llu lost, %llu dropped; "
         "breaker opened %llu, closed %llu, rejected %llu; accounting key "
         "%d (expected %d)\n",
         (unsigned long long)o->fs.reconciled_units,
         (unsigned long long)o->fs.reconcile_lost_units,
         (unsigned long long)o->fs.reconcile_dropped_units,
         (unsigned long long)o->fs.breaker_opened,
         (unsigned long long)o->fs.breaker_closed,
         (unsigned long long)o->fs.breaker_rejected, o->acct_counted,
         o->acct_expected);
  fflush(stdout);
}

/* CHAOS_RESULTS=FILE (default chaos-results.jsonl in the working
 * directory): one JSON line per scenario, what scripts/chaos_table.sh
 * renders into docs/Operations.md. */
static FILE *results;

static const char *build_name(void) {
  if (RLT_TSAN) {
    return "tsan";
  }
  return rlt_slack_ms() > 25 ? "sanitizer" : "gcc";
}

static void write_result(const scenario *s, load *l, const outcome *o) {
  if (results == NULL) {
    return;
  }
  fprintf(results,
          "{\"scenario\": \"%s\", \"row\": \"%s\", \"build\": \"%s\", "
          "\"pass\": %s, \"failed\": \"%s\", \"threads\": %d, "
          "\"decisions\": %llu, \"errors\": %llu, \"max_ms\": %.1f, "
          "\"deadline_ms\": %d, \"margin_ms\": %lld, \"sched_ms\": %.1f, "
          "\"late\": %llu, \"deadline_calls\": %llu, \"late_p999_ms\": %.2f, "
          "\"late_max_ms\": %.2f, \"own_p999_ms\": %.2f, "
          "\"own_max_ms\": %.2f, \"breaker_ms\": %lld, \"back_ms\": %lld, "
          "\"within_ms\": %lld, \"breaker_within_ms\": %lld, "
          "\"other_node_decisions\": %llu, "
          "\"other_node_bad\": %llu, \"other_node_timeouts\": %llu, "
          "\"local_max\": %llu, \"local_bound\": "
          "%d, \"reconciled\": %llu, \"lost\": %llu, \"dropped\": %llu, "
          "\"acct_expected\": %d, \"acct_counted\": %d, \"rss_kb\": %ld, "
          "\"load\": %.2f}\n",
          s->name, s->row, build_name(), o->failed == NULL ? "true" : "false",
          o->failed != NULL ? o->failed : "", s->n_threads,
          (unsigned long long)atomic_load(&l->n),
          (unsigned long long)atomic_load(&l->n_err),
          (double)atomic_load(&l->max_us) / 1000, TIMEOUT_MS,
          (long long)o->margin_ms, (double)o->sched_ms,
          (unsigned long long)o->late, (unsigned long long)o->deadline_calls,
          o->late_p999_ms, o->late_max_ms, o->own_p999_ms, o->own_max_ms,
          (long long)o->breaker_ms, (long long)o->back_ms,
          (long long)o->within_ms, (long long)o->breaker_within_ms,
          (unsigned long long)atomic_load(&l->n_other),
          (unsigned long long)atomic_load(&l->n_other_bad),
          (unsigned long long)atomic_load(&l->n_other_timeout),
          (unsigned long long)o->local_max, LOCAL_SHARE,
          (unsigned long long)o->fs.reconciled_units,
          (unsigned long long)o->fs.reconcile_lost_units,
          (unsigned long long)o->fs.reconcile_dropped_units, o->acct_expected,
          o->acct_counted, o->rss_kb, load_average());
  fflush(results);
}

static void wait_until(atomic_int_fast64_t *v, int64_t ms) {
  int64_t until = rlt_now_ms() + ms;
  while (atomic_load(v) == 0 && rlt_now_ms() < until) {
    rlt_sleep_ms(2);
  }
}

/* The margin past the deadline: CHAOS_MARGIN_MS, else 5 ms, scaled like
 * rlt_slack_ms() under sanitizers (x4) and RLT_TIME_SCALE. */
static int64_t default_margin_ms(void) {
  const char *e = getenv("CHAOS_MARGIN_MS");
  return e != NULL && atoi(e) > 0 ? atoi(e)
                                  : DEADLINE_MARGIN_MS * rlt_slack_ms() / 25;
}

/* The criteria, in the order they are checked; the first that fails is
 * named in the result line. */
static const char *first_failure(const scenario *s, load *l, const outcome *o,
                                 int started, int threads_before, long rss_peak,
                                 long rss_before, int drained, int before,
                                 int during) {
  if (started != s->n_threads) {
    return "threads not started";
  }
  if (s->expect_breaker &&
      (o->breaker_ms < 0 || o->breaker_ms > o->breaker_within_ms)) {
    return "breaker open within 1 s";
  }
  if (atomic_load(&l->first_redis) == 0 || o->back_ms > o->within_ms) {
    return "back on Redis within 1 s";
  }
  if (atomic_load(&l->n_err) != 0 || atomic_load(&l->n_wrong_source) != 0) {
    return "every decision answered by Redis or its mode";
  }
  if (atomic_load(&l->n_other_bad) != 0) {
    return "other masters' keys unaffected";
  }
  if (o->late != 0) {
    return "no call past deadline + margin";
  }
  if (o->local_max > LOCAL_SHARE) {
    return "local admissions within the share";
  }
  /* threads: the callers, the monitor, the loop, the reconciler */
  if (o->threads - threads_before > s->n_threads + 1) {
    return "threads bounded";
  }
  /* no pile-up (TSan's shadow memory grows with every thread's accesses:
   * its RSS says nothing about the library) */
  if (!RLT_TSAN && rss_peak - rss_before >= 64 * 1024) {
    return "memory bounded";
  }
  if (before != 10 || during != 20 || drained != RL_OK ||
      o->fs.reconcile_dropped_units + o->fs.reconcile_lost_units != 0 ||
      o->acct_counted != o->acct_expected) {
    return "reconciliation exact";
  }
  return NULL;
}

static void run(const scenario *s, rl_limiter *rl) {
  static load l; /* large; one scenario at a time */
  memset(&l, 0, sizeof l);
  scenario_name = s->name;
  l.rl = rl;
  l.pace_us = s->pace_us;
  l.margin_ms = s->margin_ms > 0 ? s->margin_ms * rlt_slack_ms() / 25
                                 : default_margin_ms();
  pthread_t *th = calloc((size_t)s->n_threads, sizeof *th);
  pthread_t mon;
  /* before the load: on a quiet limiter every one is decided by Redis */
  rl_limiter *chk = checker();
  int before = acct_spend(chk, 10, RL_SOURCE_REDIS);
  long rss_start = rss_kb();
  int threads_before = n_threads_now();
  int started = 0;
  while (started < s->n_threads &&
         pthread_create(&th[started], NULL, load_thread, &l) == 0) {
    started++;
  }
  pthread_create(&mon, NULL, monitor_thread, &l);
  rlt_sleep_ms(300);
  if (s->prepare != NULL) {
    s->prepare(&l);
  }
  /* what the outage adds, beyond the callers' own stacks */
  long rss_before = rss_kb();
  printf("  rss: %ld KiB with the callers running (+%ld KiB for %d threads)\n",
         rss_before, rss_before - rss_start, started);

  /* The outage starts when the fault is in place: fault() returns once
   * the process is killed or stopped, or once nft has loaded the drop rules
   * (a shell, ip netns exec and nft: on a busy machine that alone took over
   * a second, during which Redis kept answering). Decisions logged before
   * then count as "during the fault" all the same. */
  int64_t fault_started = rlt_now_ms();
  atomic_store(&l.fault_at, fault_started);
  s->fault();
  atomic_store(&l.fault_at, rlt_now_ms());
  if (rlt_now_ms() - fault_started > 100) {
    printf("  the fault took %lld ms to put in place\n",
           (long long)(rlt_now_ms() - fault_started));
  }
  int64_t slack = rlt_slack_ms();
  if (s->expect_breaker) {
    wait_until(&l.breaker_at, 1000 + 4 * slack);
  } else {
    rlt_sleep_ms(50);
  }
  /* the outage's own units: decided locally, reconciled later */
  int during = acct_spend(rl, 20, RL_SOURCE_FALLBACK_LOCAL);
  int64_t left = atomic_load(&l.fault_at) + s->outage_ms - rlt_now_ms();
  long rss_peak = rss_kb();
  int threads_peak = n_threads_now();
  if (left > 0) {
    rlt_sleep_ms(left);
  }
  rss_peak = rss_kb() > rss_peak ? rss_kb() : rss_peak;
  s->heal();
  atomic_store(&l.recover_at, rlt_now_ms());
  wait_until(&l.first_redis, 1000 + 20 * slack);
  rlt_sleep_ms(300);
  atomic_store(&l.stop, 1);
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
  }
  pthread_join(mon, NULL);
  free(th);

  outcome o = {0};
  int64_t brk = atomic_load(&l.breaker_at);
  int64_t in_place = atomic_load(&l.fault_at);
  /* 0 when it opened while the fault was still being put in place */
  o.breaker_ms = brk == 0 ? -1 : brk > in_place ? brk - in_place : 0;
  o.back_ms = atomic_load(&l.first_redis) - atomic_load(&l.recover_at);
  /* within 1 s, plus what the machine's scheduling added */
  o.sched_ms = (atomic_load(&l.sched_max_us) + 999) / 1000;
  o.within_ms = 1000 + slack + o.sched_ms;
  /* the breaker opens at the 10th failure in a row: with 4 callers, their
   * third round of calls, each round's start delayed by the machine */
  o.breaker_within_ms =
      1000 + slack +
      o.sched_ms * ((BREAKER_THRESHOLD + s->n_threads - 1) / s->n_threads);
  o.margin_ms = l.margin_ms;
  o.late = count_late(&l);
  o.deadline_calls = hist_total(l.late_hist, LATE_BINS);
  o.late_p999_ms = quantile(l.late_hist, LATE_BINS, 0.01, 0.999);
  o.late_max_ms = quantile(l.late_hist, LATE_BINS, 0.01, 1);
  o.own_p999_ms = quantile(l.own_hist, LATE_BINS, 0.01, 0.999);
  o.own_max_ms = quantile(l.own_hist, LATE_BINS, 0.01, 1);
  for (int k = 0; k < KEYS_PER_POLICY; k++) {
    uint64_t a = atomic_load(&l.local_admitted[k]);
    o.local_max = a > o.local_max ? a : o.local_max;
  }
  o.rss_kb = rss_peak - rss_before;
  o.threads = threads_peak;
  int drained = rl__store_fallback_drain(rl__limiter_store(rl), 10000);
  rl_fallback_stats_get(rl, &o.fs);
  o.acct_expected = (s->keeps_state ? before : 0) + during;
  o.acct_counted = acct_count(chk);
  rl_free(chk);
  o.failed = first_failure(s, &l, &o, started, threads_before, rss_peak,
                           rss_before, drained, before, during);
  print_figures(s, &l, &o);
  write_result(s, &l, &o);
  if (o.failed != NULL) {
    fail_msg("chaos %s: %s", s->name, o.failed);
  }
}

/* ---- faults ----------------------------------------------------------------
 */

static void redis_cmd(const char *a, const char *b, const char *c,
                      const char *d) {
  char out[128];
  assert_int_equal(rlt_redis_cmd(&srv, out, sizeof out, 1, a, b, c, d, NULL),
                   0);
}

static void kill_fault(void) {
  rlt_redis_kill(&srv);
}
static void kill_heal(void) {
  assert_int_equal(rlt_redis_restart(&srv), 0);
}
static void stop_fault(void) {
  rlt_redis_pause(&srv);
}
static void stop_heal(void) {
  rlt_redis_resume(&srv);
}
static void client_pause_fault(void) {
  char ms[32];
  snprintf(ms, sizeof ms, "%lld", (long long)outage_ms());
  redis_cmd("CLIENT", "PAUSE", ms, "ALL");
}
static void debug_sleep_fault(void) {
  char out[64], s[32];
  snprintf(s, sizeof s, "%.3f", (double)outage_ms() / 1000);
  assert_int_equal(
      rlt_redis_cmd(&srv, out, sizeof out, 0, "DEBUG", "SLEEP", s, NULL), 0);
}
static void wait_ping(void) { /* the pause or sleep is over */
  char out[64];
  int64_t until = rlt_now_ms() + 10000;
  while (rlt_now_ms() < until &&
         (rlt_redis_cmd(&srv, out, sizeof out, 1, "PING", NULL) != 0 ||
          strstr(out, "PONG") == NULL)) {
    rlt_sleep_ms(5);
  }
}
static void oom_fault(void) {
  redis_cmd("CONFIG", "SET", "maxmemory-policy", "noeviction");
  redis_cmd("CONFIG", "SET", "maxmemory", "1");
}
static void oom_heal(void) {
  redis_cmd("CONFIG", "SET", "maxmemory", "0");
}

static void flushall(void) {
  char out[64];
  assert_int_equal(rlt_redis_cmd(&srv, out, sizeof out, 1, "FLUSHALL", NULL),
                   0);
}

static void scenario_on_localhost(const scenario *s) {
  flushall();
  char addr[64];
  local_addr(addr, sizeof addr);
  rl_limiter *rl = chaos_limiter(addr);
  run(s, rl);
  rl_fallback_stats fs;
  rl_fallback_stats_get(rl, &fs);
  if (s->expect_breaker) {
    /* opened and closed again (an overloaded machine may open it again
     * afterwards: 1000 callers on a sanitizer build) */
    assert_true(fs.breaker_opened >= 1);
    assert_true(fs.breaker_closed >= 1);
  }
  rl_free(rl);
}

/* 4 callers, one decision each 500 us, an outage of outage_ms(); Redis
 * goes silent or away (the breaker opens) and keeps its data. */
static scenario standard(const char *name, const char *row, void (*fault)(void),
                         void (*heal)(void)) {
  scenario s = {.name = name,
                .fault = fault,
                .heal = heal,
                .expect_breaker = 1,
                .keeps_state = 1,
                .n_threads = 4,
                .pace_us = 500,
                .outage_ms = outage_ms(),
                .row = row};
  return s;
}

static void test_kill_and_restart(void **state) {
  (void)state;
  scenario s = standard("kill -9/restart", "Redis down", kill_fault, kill_heal);
  s.keeps_state = 0;
  scenario_on_localhost(&s);
}

static void test_sigstop(void **state) {
  (void)state;
  scenario s =
      standard("SIGSTOP/SIGCONT", "Redis slow (>100ms)", stop_fault, stop_heal);
  scenario_on_localhost(&s);
}

static void test_client_pause(void **state) {
  (void)state;
  scenario s = standard("CLIENT PAUSE", "Redis slow (>100ms)",
                        client_pause_fault, wait_ping);
  scenario_on_localhost(&s);
}

static void test_debug_sleep(void **state) {
  (void)state;
  scenario s = standard("DEBUG SLEEP", "Redis slow (>100ms)", debug_sleep_fault,
                        wait_ping);
  scenario_on_localhost(&s);
}

static void test_oom(void **state) {
  (void)state;
  /* error replies are answers: the breaker stays closed, every decision
   * asks Redis and falls back on its refusal */
  scenario s =
      standard("OOM noeviction", "Redis out of memory", oom_fault, oom_heal);
  s.expect_breaker = 0;
  scenario_on_localhost(&s);
}

/* 1000 callers time out together when Redis stops: 1000 runnable threads
 * on 2 CPUs. Each call's own run-queue delay is taken out of its lateness,
 * but not the time it waits for a lock held by another thread that is
 * itself waiting for a CPU among the 1000 (the loop thread handing a reply
 * over, the reconciler): measured at load 40, p99.9 0.24 ms but one call
 * in 2129 over 100 ms. The margin is 250 ms (1 s under sanitizers), not
 * 5 ms; the figures print the tail (docs/Degradation.md). */
static void test_1000_callers(void **state) {
  (void)state;
  scenario s = standard("1000 callers", "1000 concurrent goroutines",
                        stop_fault, stop_heal);
  s.n_threads = 1000;
  s.pace_us = 20000;
  s.margin_ms = 250;
  scenario_on_localhost(&s);
}

/* Two instances (two limiters, local_instances 2) spend one key of the
 * accounting policy (100 per minute): 60 on Redis, then Redis dies and each
 * admits its local share (50), then Redis returns. Over the window the key
 * admitted 60 + 100 = 160: the documented bound for local mode is limit +
 * local_instances x share = 2 x limit. Redis then counts all of them
 * (capped at the limit), so the key stays denied for the rest of the
 * window. */
static void test_two_instances_over_admission(void **state) {
  (void)state;
  flushall();
  char addr[64];
  local_addr(addr, sizeof addr);
  /* no probe during the outage: a probe that times out is admitted
   * locally but not reconciled (Redis may have run it), which would make
   * the count below inexact; a restarted Redis still gets a probe at once
   * (a new connection's handshake) */
  probe_ms = 60000;
  rl_limiter *a = chaos_limiter(addr), *b = chaos_limiter(addr);
  probe_ms = PROBE_MS;
  rl_limiter *chk = checker();
  int before = acct_spend(chk, 60, RL_SOURCE_REDIS);
  rlt_redis_kill(&srv);
  /* until both breakers are open, so that every local admission below was
   * refused by Redis at once (reconciled), none timed out (not) */
  rl_limiter *both[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    rl_fallback_stats fs = {0};
    int64_t give_up = rlt_now_ms() + 5000;
    while (!fs.breaker_open && rlt_now_ms() < give_up) {
      rl_request warm = {"open", 4, "warm", 4, 1};
      rl_decision wd;
      rl_decide(both[i], &warm, &wd);
      rl_fallback_stats_get(both[i], &fs);
    }
    assert_true(fs.breaker_open);
  }
  int during = 0;
  for (int i = 0; i < 2 * ACCT_LIMIT; i++) {
    during += acct_spend(i % 2 ? a : b, 1, RL_SOURCE_FALLBACK_LOCAL);
  }
  assert_int_equal(during, ACCT_LIMIT); /* 2 x the local share */
  assert_int_equal(rlt_redis_restart(&srv), 0);
  int64_t until = rlt_now_ms() + 5000;
  rl_request req = {"acct", 4, "acct", 4, 1};
  rl_decision d;
  do { /* until a is back on Redis */
    assert_int_equal(rl_decide(a, &req, &d), RL_OK);
    rlt_sleep_ms(5);
  } while (d.source != RL_SOURCE_REDIS && rlt_now_ms() < until);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  assert_int_equal(rl__store_fallback_drain(rl__limiter_store(a), 10000),
                   RL_OK);
  assert_int_equal(rl__store_fallback_drain(rl__limiter_store(b), 10000),
                   RL_OK);
  rl_fallback_stats fa, fb;
  rl_fallback_stats_get(a, &fa);
  rl_fallback_stats_get(b, &fb);
  printf("  reconciled %llu + %llu, lost %llu + %llu, dropped %llu + %llu\n",
         (unsigned long long)fa.reconciled_units,
         (unsigned long long)fb.reconciled_units,
         (unsigned long long)fa.reconcile_lost_units,
         (unsigned long long)fb.reconcile_lost_units,
         (unsigned long long)fa.reconcile_dropped_units,
         (unsigned long long)fb.reconcile_dropped_units);
  assert_int_equal(fa.reconciled_units + fb.reconciled_units, during);
  assert_int_equal(rl_wait_ready(chk, 10000, NULL, 0), RL_OK);
  assert_int_equal(rl_decide(chk, &req, &d), RL_OK);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  printf("  after recovery: allowed %d, remaining %llu\n", d.allowed,
         (unsigned long long)d.remaining);
  assert_false(d.allowed);
  assert_int_equal(d.remaining, 0);
  rl_free(chk);
  printf("chaos two instances: limit %d, admitted %d on Redis + %d locally "
         "during the outage = %d in the window (bound %d); Redis counts "
         "them all after recovery (denied until the window ends)\n",
         ACCT_LIMIT, before, during, before + during, 2 * ACCT_LIMIT);
  rl_free(a);
  rl_free(b);
}

/* ---- cluster master killed -------------------------------------------------
 */

static rlt_cluster cluster;
static int victim = -1, heir = -1; /* the killed master, its replica */
static rl_limiter *cluster_rl;     /* freed by cluster_down, even on failure */

/* The running master that holds a key matching pattern, or -1. */
static int master_with(const char *pattern) {
  char out[256];
  for (int i = 0; i < cluster.n; i++) {
    if (cluster.node[i].pid > 0 && rlt_cluster_is_master(&cluster, i) &&
        rlt_cluster_cli(&cluster, i, out, sizeof out, "KEYS", pattern, NULL) ==
            0 &&
        strstr(out, "rl:") != NULL) {
      return i;
    }
  }
  return -1;
}

/* "<field>:<number>" of INFO replication on node i, or -1. */
static long long repl_offset(int i, const char *field) {
  char out[4096];
  if (rlt_cluster_cli(&cluster, i, out, sizeof out, "INFO", "replication",
                      NULL) != 0) {
    return -1;
  }
  const char *p = strstr(out, field);
  return p != NULL ? atoll(p + strlen(field)) : -1;
}

/* Sorts the load's keys by master: KEY_AFFECTED on the victim, else
 * KEY_OTHER_NODE; keys not written yet stay KEY_UNKNOWN. Key names are
 * "rl:{<hash>}:<policy>@<layout>:<key>" (redis_keys.h). */
static void classify_keys(load *l) {
  static char out[1 << 16];
  for (int p = 0; p < N_POLICIES; p++) {
    for (int k = 0; k < KEYS_PER_POLICY; k++) {
      atomic_store(&l->key_class[p][k], KEY_UNKNOWN);
    }
  }
  for (int i = 0; i < cluster.n; i++) {
    if (cluster.node[i].pid <= 0 || !rlt_cluster_is_master(&cluster, i) ||
        rlt_cluster_cli(&cluster, i, out, sizeof out, "KEYS", "rl:*", NULL) !=
            0) {
      continue;
    }
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
      char *pol = strstr(line, "}:");
      char *at = pol != NULL ? strchr(pol, '@') : NULL;
      char *colon = at != NULL ? strchr(at, ':') : NULL;
      unsigned k = 0;
      if (colon == NULL || sscanf(colon + 1, "k%u", &k) != 1 ||
          k >= KEYS_PER_POLICY) {
        continue;
      }
      pol += 2;
      for (int p = 0; p < N_POLICIES; p++) {
        if (strlen(policy_names[p]) == (size_t)(at - pol) &&
            strncmp(pol, policy_names[p], (size_t)(at - pol)) == 0) {
          atomic_store(&l->key_class[p][k],
                       i == victim ? KEY_AFFECTED : KEY_OTHER_NODE);
        }
      }
    }
  }
}

/* After the warm-up: the victim is the master of the accounting key; its
 * replica has every write the master had then (so the units spent before
 * the fault survive the failover). */
static void cluster_prepare(load *l) {
  victim = master_with("rl:*:acct@*:acct");
  assert_true(victim >= 0);
  heir = rlt_cluster_replica_of(&cluster, victim);
  assert_true(heir >= 0);
  long long at = repl_offset(victim, "master_repl_offset:");
  int64_t until = rlt_now_ms() + 5000;
  while (repl_offset(heir, "slave_repl_offset:") < at && rlt_now_ms() < until) {
    rlt_sleep_ms(5);
  }
  classify_keys(l);
  int n[3] = {0};
  for (int p = 0; p < N_POLICIES; p++) {
    for (int k = 0; k < KEYS_PER_POLICY; k++) {
      n[atomic_load(&l->key_class[p][k])]++;
    }
  }
  printf("  killing master :%u (replica :%u); keys on it %d, on the other "
         "masters %d, not seen %d\n",
         (unsigned)cluster.node[victim].port, (unsigned)cluster.node[heir].port,
         n[KEY_AFFECTED], n[KEY_OTHER_NODE], n[KEY_UNKNOWN]);
  assert_true(n[KEY_AFFECTED] > 0 && n[KEY_OTHER_NODE] > 0);
}

static void master_kill_fault(void) {
  rlt_redis_kill(&cluster.node[victim]);
}

/* Recovery is the replica's promotion (cluster-node-timeout 1 s plus the
 * election): polled every few ms. */
static void wait_promotion(void) {
  int64_t until = rlt_now_ms() + 20000;
  while (!rlt_cluster_is_master(&cluster, heir) && rlt_now_ms() < until) {
    rlt_sleep_ms(2);
  }
  assert_true(rlt_cluster_is_master(&cluster, heir));
}

/* kill -9 of the master that holds the accounting key, under load on keys
 * of every master: its breaker opens, its keys fall back, the other
 * masters' keys stay on Redis; after the replica's promotion the keys are
 * back on Redis (the router refreshes its map) and the local units are
 * reconciled into the new master. */
static int cluster_up(void **state) {
  (void)state;
  if (rlt_cluster_start(&cluster, 3, 1, 1000) != 0) {
    return -1;
  }
  checked = (target){cluster.addrs, 2, 1};
  return 0;
}

/* Runs even when the test failed: later scenarios check the standalone
 * server again. */
static int cluster_down(void **state) {
  (void)state;
  rl_free(cluster_rl);
  cluster_rl = NULL;
  checked.n = 0;
  rlt_cluster_stop(&cluster);
  return 0;
}

static void test_cluster_master_killed(void **state) {
  (void)state;
  rl_limiter *rl = cluster_rl = limiter_on(&checked, TIMEOUT_MS);
  scenario s = standard("cluster master", "Cluster master killed",
                        master_kill_fault, wait_promotion);
  s.outage_ms = 0; /* until the promotion */
  s.prepare = cluster_prepare;
  run(&s, rl);
}

/* ---- network partition ----------------------------------------------------
 */

static char ns_name[32], veth_host[16], veth_ns[16];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
  char cmd[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void ns_cleanup(void) {
  if (ns_name[0] != '\0') {
    sh("ip netns del %s 2>/dev/null", ns_name);
    ns_name[0] = '\0';
  }
}

/* A namespace with a veth pair to the host: host 10.213.0.1, ns .2. */
static int ns_setup(void) {
  unsigned id = (unsigned)getpid() % 100000;
  snprintf(ns_name, sizeof ns_name, "rltchaos%u", id);
  snprintf(veth_host, sizeof veth_host, "rlh%u", id);
  snprintf(veth_ns, sizeof veth_ns, "rln%u", id);
  atexit(ns_cleanup);
  return sh("ip netns add %s", ns_name) != 0 ||
                 sh("ip link add %s type veth peer name %s", veth_host,
                    veth_ns) != 0 ||
                 sh("ip link set %s netns %s", veth_ns, ns_name) != 0 ||
                 sh("ip addr add 10.213.0.1/30 dev %s", veth_host) != 0 ||
                 sh("ip link set %s up", veth_host) != 0 ||
                 sh("ip netns exec %s ip addr add 10.213.0.2/30 dev %s",
                    ns_name, veth_ns) != 0 ||
                 sh("ip netns exec %s ip link set %s up", ns_name, veth_ns) !=
                     0 ||
                 sh("ip netns exec %s ip link set lo up", ns_name) != 0
             ? -1
             : 0;
}

static void partition_fault(void) {
  assert_int_equal(
      sh("printf 'table inet rltchaos {\\n chain o {\\n  type filter hook "
         "output priority 0; policy accept;\\n  ip daddr 10.213.0.1 drop\\n "
         "}\\n chain i {\\n  type filter hook input priority 0; policy "
         "accept;\\n  ip saddr 10.213.0.1 drop\\n }\\n}\\n' | ip netns exec "
         "%s nft -f -",
         ns_name),
      0);
}

static void partition_heal(void) {
  assert_int_equal(
      sh("ip netns exec %s nft delete table inet rltchaos", ns_name), 0);
}

/* rl_new on a thread inside the namespace: the library's loop thread is
 * born there and opens its sockets there. */
static rl_limiter *limiter_in_ns(const char *addr) {
  char path[128];
  snprintf(path, sizeof path, "/var/run/netns/%s", ns_name);
  int home = open("/proc/thread-self/ns/net", O_RDONLY);
  int ns = open(path, O_RDONLY);
  assert_true(home >= 0 && ns >= 0);
  assert_int_equal(setns(ns, CLONE_NEWNET), 0);
  rl_limiter *rl = chaos_limiter(addr);
  assert_int_equal(setns(home, CLONE_NEWNET), 0);
  close(ns);
  close(home);
  return rl;
}

static void test_network_partition(void **state) {
  (void)state;
  if (geteuid() != 0 || sh("command -v nft >/dev/null && command -v ip "
                           ">/dev/null") != 0) {
    print_message("network partition: needs root, ip (iproute2) and nft "
                  "(nftables): skipped\n");
    skip();
  }
  if (ns_setup() != 0) {
    ns_cleanup();
    print_message("network partition: cannot create a network namespace "
                  "and veth pair (no CAP_NET_ADMIN?): skipped\n");
    skip();
  }
  flushall();
  char out[128];
  assert_int_equal(rlt_redis_cmd(&srv, out, sizeof out, 1, "CONFIG", "SET",
                                 "bind", "127.0.0.1 10.213.0.1", NULL),
                   0);
  char addr[64];
  snprintf(addr, sizeof addr, "10.213.0.1:%u", (unsigned)srv.port);
  rl_limiter *rl = limiter_in_ns(addr);
  /* Back on Redis within 1 s: a connection whose bytes go unacknowledged
   * past a deadline is replaced, and an unanswered SYN is sent again on a
   * fresh socket after 200 ms (redis_conn.c), instead of waiting for the
   * kernel's doubling retransmissions (up to 1.4 s after a 2 s partition
   * before); see Degradation.md. */
  scenario s = standard("partition", "Network partition", partition_fault,
                        partition_heal);
  run(&s, rl);
  rl_free(rl);
  ns_cleanup();
  rlt_redis_cmd(&srv, out, sizeof out, 1, "CONFIG", "SET", "bind", "127.0.0.1",
                NULL);
}

static int setup(void **state) {
  (void)state;
  const char *path = getenv("CHAOS_LOG");
  if (path != NULL && path[0] != '\0') {
    decision_log = fopen(path, "w");
    log_t0 = rlt_now_ms();
  }
  const char *res = getenv("CHAOS_RESULTS");
  results =
      fopen(res != NULL && res[0] != '\0' ? res : "chaos-results.jsonl", "w");
  return rlt_redis_start(&srv, NULL);
}

static int teardown(void **state) {
  (void)state;
  rlt_redis_stop(&srv);
  ns_cleanup();
  rl__redis_thread_cleanup();
  if (decision_log != NULL) {
    fclose(decision_log);
  }
  if (results != NULL) {
    fclose(results);
  }
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kill_and_restart),
      cmocka_unit_test(test_sigstop),
      cmocka_unit_test(test_client_pause),
      cmocka_unit_test(test_debug_sleep),
      cmocka_unit_test(test_oom),
      cmocka_unit_test(test_two_instances_over_admission),
      cmocka_unit_test(test_network_partition),
      cmocka_unit_test_setup_teardown(test_cluster_master_killed, cluster_up,
                                      cluster_down),
      cmocka_unit_test(test_1000_callers),
  };
  const char *only = getenv("CHAOS_ONLY"); /* e.g. "test_sigstop" */
  if (only != NULL && only[0] != '\0') {
    cmocka_set_test_filter(only);
  }
  return cmocka_run_group_tests(tests, setup, teardown);
}
