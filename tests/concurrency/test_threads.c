/*
 * test_threads.c - 1000 threads race on one limiter; the admitted counts must
 * be exact.
 *
 * The fake clock stands still during a phase, so the capacity of every key
 * is known in advance. All threads (64 KiB stacks) wait on a start barrier,
 * then each makes 12 requests through the public API, interleaved:
 *   - 3 x cost 1 on the shared key "shared"     (policy "shared"),
 *   - 3 x cost 1 on the key "k<i % 50>"          (policy "per_key"),
 *   - 3 x cost 1 on its own key "t<i>"           (policy "own"),
 *   - 3 x cost 1..5 on the shared key "mixed"   (policy "shared").
 * Checks per phase: "shared" admits exactly its capacity and the reported
 * remaining values of the admissions are exactly {0 .. admitted-1} (every
 * admission saw a distinct count: no lost update); every "k<j>" (20 threads
 * each) and every "t<i>" (1000 keys inserted concurrently) admits exactly its
 * capacity; "mixed" admits at most its capacity in units and every denied
 * cost is larger than what was left. Then the clock moves and the next phase
 * starts from the state the library kept.
 *
 * Every algorithm runs with 1-window policies (777 / 37 / 2 per 1 s) and
 * 2-window ones (adding 1000 / 50 / 3 per 10 s), at t = 1000, 3000 and 30000
 * ms. The expected capacity comes from a small reference model of each
 * algorithm fed with the admissions observed.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimiter.h"

#define N_THREADS 1000
#define STACK_BYTES (64 * 1024)
#define PER_KIND 3 /* requests per thread per key kind */
#define N_DISTINCT 50
#define N_PHASES 3
#define MAX_W 2

enum { KIND_SHARED, KIND_DISTINCT, KIND_OWN, KIND_MIXED, N_KINDS };

/* What one thread saw in the current phase. */
typedef struct result {
  int allowed[N_KINDS][PER_KIND];
  uint64_t remaining[N_KINDS][PER_KIND];
  uint64_t cost[N_KINDS][PER_KIND];
  int err;
} result;

typedef struct shared_state {
  pthread_barrier_t start, done;
  rl_limiter *rl; /* set by main before the start barrier */
  int stop;
  _Atomic int64_t clock;
  result results[N_THREADS];
} shared_state;

static shared_state g;

static int64_t fake_clock(void *ctx) {
  (void)ctx;
  return atomic_load_explicit(&g.clock, memory_order_relaxed);
}

static uint64_t mixed_cost(size_t thread, size_t r) {
  return 1 + (thread + r) % 5;
}

static void one_request(result *res, int kind, size_t r, const char *policy,
                        const char *key, uint64_t cost) {
  rl_request req = {policy, strlen(policy), key, strlen(key), (int64_t)cost};
  rl_decision d;
  int err = rl_decide(g.rl, &req, &d);
  if (err != RL_OK) {
    res->err = err;
    return;
  }
  res->allowed[kind][r] = d.allowed;
  res->remaining[kind][r] = d.remaining;
  res->cost[kind][r] = cost;
}

static void run_phase(size_t id) {
  result *res = &g.results[id];
  char group[16], own[16];
  snprintf(group, sizeof group, "k%zu", id % N_DISTINCT);
  snprintf(own, sizeof own, "t%zu", id);
  memset(res, 0, sizeof *res);
  for (size_t r = 0; r < PER_KIND; r++) {
    one_request(res, KIND_SHARED, r, "shared", "shared", 1);
    one_request(res, KIND_DISTINCT, r, "per_key", group, 1);
    one_request(res, KIND_OWN, r, "own", own, 1);
    one_request(res, KIND_MIXED, r, "shared", "mixed", mixed_cost(id, r));
  }
}

static void *worker(void *arg) {
  size_t id = (size_t)(uintptr_t)arg;
  for (;;) {
    pthread_barrier_wait(&g.start);
    if (g.stop) {
      return NULL;
    }
    run_phase(id);
    pthread_barrier_wait(&g.done);
  }
}

/* ---- reference model: capacity of a key at a time ---------------------- */

typedef struct ref_window {
  uint64_t limit, duration;
} ref_window;

typedef struct ref_key {
  int64_t t[N_PHASES]; /* phase times and units admitted then */
  uint64_t units[N_PHASES];
  size_t n;
} ref_key;

/* Units of `k` admitted in [lo, hi). */
static uint64_t units_in(const ref_key *k, int64_t lo, int64_t hi) {
  uint64_t sum = 0;
  for (size_t i = 0; i < k->n; i++) {
    sum += k->t[i] >= lo && k->t[i] < hi ? k->units[i] : 0;
  }
  return sum;
}

static uint64_t sub0(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

/* Token bucket (burst = limit) level in whole units, exact: the level is
 * kept in units * W, a ms refills L of those. */
static uint64_t bucket_level(const ref_window *w, const ref_key *k,
                             int64_t now) {
  uint64_t full = w->limit * w->duration, level = full;
  int64_t last = 0;
  for (size_t i = 0; i <= k->n; i++) {
    int64_t t = i < k->n ? k->t[i] : now;
    level += (uint64_t)(t - last) * w->limit;
    level = level > full ? full : level;
    if (i == k->n) {
      break;
    }
    level -= k->units[i] * w->duration;
    last = t;
  }
  return level / w->duration;
}

static uint64_t window_capacity(rl_algorithm alg, const ref_window *w,
                                const ref_key *k, int64_t now) {
  int64_t W = (int64_t)w->duration, start = now - now % W;
  switch (alg) {
  case RL_ALG_SLIDING_LOG:
    return sub0(w->limit, units_in(k, now - W + 1, now + 1));
  case RL_ALG_FIXED_WINDOW:
    return sub0(w->limit, units_in(k, start, start + W));
  case RL_ALG_SLIDING_COUNTER: {
    uint64_t prev = units_in(k, start - W, start);
    uint64_t cur = units_in(k, start, start + W);
    uint64_t e = (uint64_t)(now - start), lw = w->limit * w->duration;
    uint64_t used = prev * (w->duration - e) + cur * w->duration;
    return used >= lw ? 0 : (lw - used) / w->duration;
  }
  case RL_ALG_TOKEN_BUCKET:
    return bucket_level(w, k, now);
  }
  return 0;
}

static uint64_t capacity(rl_algorithm alg, const ref_window *w, size_t n_w,
                         const ref_key *k, int64_t now) {
  uint64_t cap = UINT64_MAX;
  for (size_t j = 0; j < n_w; j++) {
    uint64_t c = window_capacity(alg, &w[j], k, now);
    cap = c < cap ? c : cap;
  }
  return cap;
}

static void ref_add(ref_key *k, int64_t now, uint64_t units) {
  k->t[k->n] = now;
  k->units[k->n++] = units;
}

/* ---- checks ------------------------------------------------------------ */

typedef struct phase_ctx {
  rl_algorithm alg;
  size_t n_w;
  ref_window shared_w[MAX_W], key_w[MAX_W], own_w[MAX_W];
  ref_key shared, mixed, keys[N_DISTINCT], own[N_THREADS];
  int64_t now;
  int failures;
} phase_ctx;

static void fail(phase_ctx *c, const char *what, uint64_t got, uint64_t want) {
  fprintf(stderr,
          "FAIL %s, %zu window(s), t=%" PRId64 ": %s: got %" PRIu64
          ", expected %" PRIu64 "\n",
          rl_algorithm_name(c->alg), c->n_w, c->now, what, got, want);
  c->failures++;
}

/* "shared": exactly cap admitted, their remaining values a permutation. */
static void check_shared(phase_ctx *c) {
  uint64_t cap = capacity(c->alg, c->shared_w, c->n_w, &c->shared, c->now);
  static unsigned char seen[N_THREADS * PER_KIND];
  uint64_t admitted = 0, bad = 0;
  memset(seen, 0, sizeof seen);
  for (size_t i = 0; i < N_THREADS; i++) {
    for (size_t r = 0; r < PER_KIND; r++) {
      if (!g.results[i].allowed[KIND_SHARED][r]) {
        continue;
      }
      uint64_t rem = g.results[i].remaining[KIND_SHARED][r];
      admitted++;
      if (rem >= N_THREADS * PER_KIND || seen[rem]++) {
        bad++;
      }
    }
  }
  for (uint64_t v = admitted; v < N_THREADS * PER_KIND; v++) {
    bad += seen[v]; /* remaining values must be exactly 0..admitted-1 */
  }
  if (admitted != cap) {
    fail(c, "shared key: admitted", admitted, cap);
  }
  if (bad != 0) {
    fail(c, "shared key: remaining values not a permutation of 0..n-1", bad, 0);
  }
  ref_add(&c->shared, c->now, admitted);
}

static void check_distinct(phase_ctx *c) {
  uint64_t admitted[N_DISTINCT] = {0};
  for (size_t i = 0; i < N_THREADS; i++) {
    for (size_t r = 0; r < PER_KIND; r++) {
      admitted[i % N_DISTINCT] += g.results[i].allowed[KIND_DISTINCT][r] != 0;
    }
  }
  for (size_t j = 0; j < N_DISTINCT; j++) {
    uint64_t cap = capacity(c->alg, c->key_w, c->n_w, &c->keys[j], c->now);
    if (admitted[j] != cap) {
      fail(c, "distinct key: admitted", admitted[j], cap);
    }
    ref_add(&c->keys[j], c->now, admitted[j]);
  }
}

/* "t<i>": one thread each, no contention on the key, 1000 keys inserted
 * concurrently; each admits exactly its capacity. */
static void check_own(phase_ctx *c) {
  for (size_t i = 0; i < N_THREADS; i++) {
    uint64_t admitted = 0;
    for (size_t r = 0; r < PER_KIND; r++) {
      admitted += g.results[i].allowed[KIND_OWN][r] != 0;
    }
    uint64_t cap = capacity(c->alg, c->own_w, c->n_w, &c->own[i], c->now);
    if (admitted != cap) {
      fail(c, "own key: admitted", admitted, cap);
    }
    ref_add(&c->own[i], c->now, admitted);
  }
}

/* "mixed": units <= cap, and every denied cost > cap - units. */
static void check_mixed(phase_ctx *c) {
  uint64_t cap = capacity(c->alg, c->shared_w, c->n_w, &c->mixed, c->now);
  uint64_t units = 0, min_denied = UINT64_MAX;
  for (size_t i = 0; i < N_THREADS; i++) {
    for (size_t r = 0; r < PER_KIND; r++) {
      uint64_t cost = g.results[i].cost[KIND_MIXED][r];
      if (g.results[i].allowed[KIND_MIXED][r]) {
        units += cost;
      } else if (cost < min_denied) {
        min_denied = cost;
      }
    }
  }
  if (units > cap) {
    fail(c, "mixed costs: units admitted above capacity", units, cap);
  }
  if (min_denied != UINT64_MAX && min_denied <= sub0(cap, units)) {
    fail(c, "mixed costs: a cost that fit was denied", min_denied,
         sub0(cap, units));
  }
  ref_add(&c->mixed, c->now, units);
}

static void check_errors(phase_ctx *c) {
  for (size_t i = 0; i < N_THREADS; i++) {
    if (g.results[i].err != RL_OK) {
      fail(c, "rl_decide error", (uint64_t)g.results[i].err, RL_OK);
      return;
    }
  }
}

/* ---- driver ------------------------------------------------------------ */

static void add_policy(rl_policy *p, const char *name, rl_algorithm alg,
                       const ref_window *w, size_t n_w) {
  rl_policy_init(p);
  p->name = name;
  p->algorithm = alg;
  for (size_t j = 0; j < n_w; j++) {
    rl_policy_add_window(p, w[j].limit, w[j].duration);
  }
}

static int open_limiter(phase_ctx *c) {
  rl_policy pols[3];
  add_policy(&pols[0], "shared", c->alg, c->shared_w, c->n_w);
  add_policy(&pols[1], "per_key", c->alg, c->key_w, c->n_w);
  add_policy(&pols[2], "own", c->alg, c->own_w, c->n_w);
  rl_config cfg;
  rl_config_init(&cfg);
  cfg.policies = pols;
  cfg.n_policies = 3;
  cfg.clock = fake_clock;
  int err = rl_new(&cfg, &g.rl);
  if (err != RL_OK) {
    fprintf(stderr, "FAIL rl_new: %s\n", rl_strerror(err));
  }
  return err;
}

static int run_config(rl_algorithm alg, size_t n_w) {
  static const int64_t times[N_PHASES] = {1000, 3000, 30000};
  static phase_ctx c;
  memset(&c, 0, sizeof c);
  c.alg = alg;
  c.n_w = n_w;
  c.shared_w[0] = (ref_window){777, 1000};
  c.shared_w[1] = (ref_window){1000, 10000};
  c.key_w[0] = (ref_window){37, 1000};
  c.key_w[1] = (ref_window){50, 10000};
  c.own_w[0] = (ref_window){2, 1000};
  c.own_w[1] = (ref_window){3, 10000};
  if (open_limiter(&c) != RL_OK) {
    return 1;
  }
  for (size_t ph = 0; ph < N_PHASES; ph++) {
    c.now = times[ph];
    atomic_store(&g.clock, c.now);
    pthread_barrier_wait(&g.start); /* the threads race from here */
    pthread_barrier_wait(&g.done);
    check_errors(&c);
    check_shared(&c);
    check_distinct(&c);
    check_own(&c);
    check_mixed(&c);
    printf("  %-15s %zu window(s) t=%5" PRId64 ": shared %" PRIu64
           ", per key %" PRIu64 ", own key %" PRIu64 ", mixed %" PRIu64
           " units\n",
           rl_algorithm_name(alg), n_w, c.now, c.shared.units[ph],
           c.keys[0].units[ph], c.own[0].units[ph], c.mixed.units[ph]);
  }
  rl_free(g.rl);
  g.rl = NULL;
  return c.failures;
}

static int start_threads(pthread_t *tids) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, STACK_BYTES);
  for (size_t i = 0; i < N_THREADS; i++) {
    int err = pthread_create(&tids[i], &attr, worker, (void *)(uintptr_t)i);
    if (err != 0) {
      fprintf(stderr, "pthread_create %zu: %s\n", i, strerror(err));
      abort(); /* the others wait on a barrier that can no longer fill */
    }
  }
  pthread_attr_destroy(&attr);
  return 0;
}

int main(void) {
  static pthread_t tids[N_THREADS];
  pthread_barrier_init(&g.start, NULL, N_THREADS + 1);
  pthread_barrier_init(&g.done, NULL, N_THREADS + 1);
  start_threads(tids);
  printf("test_threads: %d threads, %d requests each per phase\n", N_THREADS,
         PER_KIND * N_KINDS);
  static const rl_algorithm algs[] = {RL_ALG_SLIDING_LOG,
                                      RL_ALG_SLIDING_COUNTER,
                                      RL_ALG_TOKEN_BUCKET, RL_ALG_FIXED_WINDOW};
  int failures = 0;
  for (size_t a = 0; a < 4; a++) {
    for (size_t n_w = 1; n_w <= MAX_W; n_w++) {
      failures += run_config(algs[a], n_w);
    }
  }
  g.stop = 1;
  pthread_barrier_wait(&g.start);
  for (size_t i = 0; i < N_THREADS; i++) {
    pthread_join(tids[i], NULL);
  }
  pthread_barrier_destroy(&g.start);
  pthread_barrier_destroy(&g.done);
  printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
