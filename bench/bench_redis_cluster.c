/*
 * bench_redis_cluster.c - the Redis store on a 3-master Redis Cluster
 * against the same store on one standalone Redis, same script, same keys,
 * same run. One JSON object per line:
 *
 *   {"name", "target", "ns_per_op", "ops_per_sec", "allocs_per_op"}
 *
 * plus ratio lines {"name", "ratio"} (cluster / standalone throughput).
 * Cases, each on 1024 keys (spread over every master's slots):
 *   - sync1: one thread calling rl_decide (latency-bound: the router adds a
 *     record copy and a loop handoff per decision);
 *   - sync16: 16 threads calling rl_decide;
 *   - async: rl_decide_async with 1024 in flight, each callback submitting
 *     the next (an event-loop server's shape).
 * The policy admits everything (10^9 per hour), so every call runs the same
 * path. Each case runs 3 times, alternating targets; the median is shown.
 * On a 2-core machine the three masters share the cores with the client:
 * the cluster's throughput there shows the router's overhead, not the
 * scaling a cluster on separate hosts gives.
 *
 * Usage: bench_redis_cluster [scale]   (scale multiplies the op counts)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "harness/redis_cluster.h"
#include "harness/redis_server.h"
#include "ratelimiter.h"
#include "redis_conn.h"

#define REPS 3
#define KEYS 1024
#define THREADS 16
#define WINDOW 1024

static long scale = 1;
static rl_policy pol;

typedef struct result {
  double ns_per_op, allocs_per_op;
} result;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static result median(result *rs) {
  double ns[REPS], al[REPS];
  for (int i = 0; i < REPS; i++) {
    ns[i] = rs[i].ns_per_op;
    al[i] = rs[i].allocs_per_op;
  }
  qsort(ns, REPS, sizeof *ns, cmp_double);
  qsort(al, REPS, sizeof *al, cmp_double);
  return (result){ns[REPS / 2], al[REPS / 2]};
}

static void key_of(long i, char *buf, size_t cap) {
  snprintf(buf, cap, "bench:%ld", i % KEYS);
}

/* ---- synchronous callers ------------------------------------------------ */

typedef struct caller {
  rl_limiter *rl;
  long ops, first;
  int errors;
  pthread_t th;
} caller;

static pthread_barrier_t start_line, finish_line;

static void *sync_caller(void *arg) {
  caller *c = arg;
  rl_decision d;
  char key[32];
  for (long i = 0; i < 50; i++) { /* warm-up */
    key_of(c->first + i, key, sizeof key);
    rl_allow(c->rl, key, strlen(key), &d);
  }
  pthread_barrier_wait(&start_line);
  for (long i = 0; i < c->ops; i++) {
    key_of(c->first + i, key, sizeof key);
    if (rl_allow(c->rl, key, strlen(key), &d) != RL_OK || !d.allowed)
      c->errors++;
  }
  pthread_barrier_wait(&finish_line);
  rl__redis_thread_cleanup();
  return NULL;
}

static int run_sync(rl_limiter *rl, int n, long ops, result *r) {
  caller cs[THREADS];
  pthread_barrier_init(&start_line, NULL, (unsigned)n + 1);
  pthread_barrier_init(&finish_line, NULL, (unsigned)n + 1);
  for (int i = 0; i < n; i++) {
    cs[i] = (caller){rl, ops, (long)i * 97, 0, 0};
    pthread_create(&cs[i].th, NULL, sync_caller, &cs[i]);
  }
  pthread_barrier_wait(&start_line);
  uint64_t a0 = bench_alloc_count();
  int64_t t0 = rl__mono_ns();
  pthread_barrier_wait(&finish_line);
  int64_t ns = rl__mono_ns() - t0;
  uint64_t allocs = bench_alloc_count() - a0;
  int errors = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(cs[i].th, NULL);
    errors += cs[i].errors;
  }
  pthread_barrier_destroy(&start_line);
  pthread_barrier_destroy(&finish_line);
  double total = (double)n * (double)ops;
  r->ns_per_op = (double)ns / total;
  r->allocs_per_op = (double)allocs / total;
  return errors;
}

/* ---- asynchronous ------------------------------------------------------- */

typedef struct async_run {
  rl_limiter *rl;
  atomic_long next, done, errors;
  long ops;
  char keys[KEYS][16];
} async_run;

static async_run *the_run;

static void on_async(int err, const rl_decision *d, void *ud);

static void async_submit(async_run *r, long i) {
  const char *k = r->keys[i % KEYS];
  rl_request req = {NULL, 0, k, strlen(k), 1};
  if (rl_decide_async(r->rl, &req, on_async, NULL) != RL_OK) {
    atomic_fetch_add(&r->errors, 1);
    atomic_fetch_add(&r->done, 1);
  }
}

static void on_async(int err, const rl_decision *d, void *ud) {
  async_run *r = the_run;
  (void)ud;
  if (err != RL_OK || !d->allowed)
    atomic_fetch_add(&r->errors, 1);
  long next = atomic_fetch_add(&r->next, 1);
  if (next < r->ops)
    async_submit(r, next);
  atomic_fetch_add(&r->done, 1);
}

static int run_async(rl_limiter *rl, long ops, result *r) {
  static async_run ar;
  ar.rl = rl;
  ar.ops = ops;
  atomic_store(&ar.next, WINDOW);
  atomic_store(&ar.done, 0);
  atomic_store(&ar.errors, 0);
  for (long i = 0; i < KEYS; i++)
    key_of(i, ar.keys[i], sizeof ar.keys[i]);
  the_run = &ar;
  uint64_t a0 = bench_alloc_count();
  int64_t t0 = rl__mono_ns();
  for (long i = 0; i < WINDOW && i < ops; i++)
    async_submit(&ar, i);
  while (atomic_load(&ar.done) < ops)
    rlt_sleep_ms(1);
  int64_t ns = rl__mono_ns() - t0;
  r->allocs_per_op = (double)(bench_alloc_count() - a0) / (double)ops;
  r->ns_per_op = (double)ns / (double)ops;
  return (int)atomic_load(&ar.errors);
}

/* ---- main --------------------------------------------------------------- */

static rl_limiter *open_limiter(const char *const *addrs, size_t n,
                                rl_redis_mode mode) {
  rl_config c;
  rl_config_init(&c);
  c.policies = &pol;
  c.n_policies = 1;
  c.store = RL_STORE_REDIS;
  c.redis.addrs = addrs;
  c.redis.n_addrs = n;
  c.redis.mode = mode;
  c.redis.timeout_ms = 10000;
  rl_limiter *rl = NULL;
  char err[256] = "";
  if (rl_new(&c, &rl) != RL_OK || rl_wait_ready(rl, 20000, err, sizeof err)) {
    fprintf(stderr, "bench: no limiter: %s\n", err);
    exit(1);
  }
  return rl;
}

static void report(const char *name, const char *target, result r) {
  printf("{\"name\":\"%s\",\"target\":\"%s\",\"ns_per_op\":%.0f,"
         "\"ops_per_sec\":%.0f,\"allocs_per_op\":%.3f}\n",
         name, target, r.ns_per_op, 1e9 / r.ns_per_op,
         bench_alloc_enabled() ? r.allocs_per_op : -1.0);
}

int main(int argc, char **argv) {
  if (argc > 1)
    scale = atol(argv[1]) > 0 ? atol(argv[1]) : 1;
  rl_policy_init(&pol);
  pol.name = "one";
  pol.algorithm = RL_ALG_FIXED_WINDOW;
  rl_policy_add_window(&pol, 1000000000, 3600000);
  rlt_cluster cl;
  rlt_redis solo;
  if (rlt_cluster_start(&cl, 3, 0, 5000) != 0 ||
      rlt_redis_start(&solo, NULL) != 0)
    return 1;
  char solo_addr[32];
  snprintf(solo_addr, sizeof solo_addr, "127.0.0.1:%u", (unsigned)solo.port);
  const char *solo_addrs[1] = {solo_addr};
  rl_limiter *rls[2] = {open_limiter(cl.addrs, 3, RL_REDIS_MODE_CLUSTER),
                        open_limiter(solo_addrs, 1, RL_REDIS_MODE_STANDALONE)};
  static const char *const targets[2] = {"cluster3", "standalone"};
  static const char *const names[3] = {"sync1", "sync16", "async1024"};
  result rs[3][2][REPS];
  int errors = 0;
  for (int rep = 0; rep < REPS; rep++) {
    for (int t = 0; t < 2; t++) {
      errors += run_sync(rls[t], 1, 3000 * scale, &rs[0][t][rep]);
      errors += run_sync(rls[t], THREADS, 1500 * scale, &rs[1][t][rep]);
      errors += run_async(rls[t], 40000 * scale, &rs[2][t][rep]);
    }
  }
  for (int c = 0; c < 3; c++) {
    result m[2];
    for (int t = 0; t < 2; t++) {
      m[t] = median(rs[c][t]);
      report(names[c], targets[t], m[t]);
    }
    printf("{\"name\":\"%s cluster3/standalone decisions/s\",\"ratio\":%.2f}\n",
           names[c], m[1].ns_per_op / m[0].ns_per_op);
  }
  rl_free(rls[0]);
  rl_free(rls[1]);
  rlt_cluster_stop(&cl);
  rlt_redis_stop(&solo);
  if (errors != 0)
    fprintf(stderr, "bench: %d failed or denied decisions\n", errors);
  return errors != 0;
}
