/*
 * bench_cache.c - the cache layer (docs/Cache.md) through the public API on
 * its own redis-server. One JSON object per line:
 *
 *   {"name", "ns_per_op", "ops_per_sec", "allocs_per_op", ...}
 *
 * plus target lines {"name", "value", "target", "pass"}. Cases, all on one
 * hot key, one caller thread:
 *   - cache_hit: a denied key answered from the cache (fixed window, limit
 *     1 per hour): target <= 100 ns/op, 0 allocs/op;
 *   - lease_hit: an admitted key spending leased units (fixed window, 10^9
 *     per hour, leases of up to 10^5 units): target <= 100 ns/op, 0
 *     allocs/op; the lease refills (one Redis call per lease) included;
 *   - direct: the same decision without the cache (the ratio is printed);
 *   - redis_commands_per_decision: 4 limiters (instances) x 1 thread on one
 *     hot key under its limit, INFO commandstats (EVALSHA + EVAL, leases
 *     and returns included) over decisions: target <= 0.05.
 * Each timing case runs REPS times; the median is reported.
 *
 * Usage: bench_cache [scale]   (scale multiplies the op counts)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "accuracy/acc_check.h"
#include "alloc_count.h"
#include "harness/redis_server.h"
#include "ratelimiter.h"
#include "redis_conn.h"

#define REPS 5
#define INSTANCES 4

static rlt_redis srv;
static char addr[64];
static const char *addrs[1] = {addr};
static long scale = 1;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static rl_limiter *open_rl_alg(rl_algorithm alg, uint64_t limit,
                               uint64_t duration_ms, int cache) {
  static rl_policy p;
  rl_policy_init(&p);
  p.name = "b";
  p.algorithm = alg;
  rl_policy_add_window(&p, limit, duration_ms);
  rl_config c;
  rl_config_init(&c);
  c.policies = &p;
  c.n_policies = 1;
  c.store = RL_STORE_REDIS;
  c.redis.addrs = addrs;
  c.redis.n_addrs = 1;
  c.redis.timeout_ms = 5000;
  c.cache.enabled = cache;
  c.cache.max_bytes = 1 << 20;
  c.cache.hot_threshold = 10;
  c.cache.lease_max = 100000;
  c.cache.ttl_ms = 2000;
  rl_limiter *rl = NULL;
  if (rl_new(&c, &rl) != RL_OK || rl_wait_ready(rl, 5000, NULL, 0) != RL_OK) {
    fprintf(stderr, "bench_cache: no limiter\n");
    exit(1);
  }
  return rl;
}

static rl_limiter *open_rl(uint64_t limit, int cache) {
  return open_rl_alg(RL_ALG_FIXED_WINDOW, limit, 3600000, cache);
}

typedef struct result {
  double ns_per_op, allocs_per_op;
  rl_source source;
} result;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* n decisions on "hot"; the median of REPS runs. */
static result time_case(rl_limiter *rl, long n) {
  double ns[REPS], allocs[REPS];
  rl_decision d;
  memset(&d, 0, sizeof d);
  for (int r = 0; r < REPS; r++) {
    uint64_t a0 = bench_alloc_count();
    int64_t t0 = mono_ns();
    for (long i = 0; i < n; i++) {
      if (rl_allow(rl, "hot", 3, &d) != RL_OK) {
        fprintf(stderr, "bench_cache: decision failed\n");
        exit(1);
      }
    }
    ns[r] = (double)(mono_ns() - t0) / (double)n;
    allocs[r] = (double)(bench_alloc_count() - a0) / (double)n;
  }
  qsort(ns, REPS, sizeof *ns, cmp_double);
  qsort(allocs, REPS, sizeof *allocs, cmp_double);
  result res = {ns[REPS / 2], allocs[REPS / 2], d.source};
  return res;
}

static void print_case(const char *name, const result *r) {
  printf("{\"name\": \"%s\", \"ns_per_op\": %.1f, \"ops_per_sec\": %.0f, "
         "\"allocs_per_op\": %.4f, \"source\": \"%s\", \"allocs_counted\": "
         "%s}\n",
         name, r->ns_per_op, 1e9 / r->ns_per_op, r->allocs_per_op,
         rl_source_name(r->source), bench_alloc_enabled() ? "true" : "false");
}

static void print_target(const char *name, double v, const char *op,
                         double target) {
  int pass = op[0] == '<' ? v <= target : v >= target;
  printf("{\"name\": \"%s\", \"value\": %.4f, \"target\": \"%s %g\", "
         "\"pass\": %s}\n",
         name, v, op, target, pass ? "true" : "false");
}

/* EVALSHA + EVAL calls so far (tests/accuracy/acc_check.h). */
static long long script_calls(void) {
  long long n = acc_script_calls(srv.port);
  if (n < 0) {
    exit(1);
  }
  return n;
}

typedef struct instance {
  pthread_t th;
  rl_limiter *rl;
  long n, admitted;
} instance;

static void *instance_main(void *arg) {
  instance *in = arg;
  rl_decision d;
  for (long i = 0; i < in->n; i++) {
    if (rl_allow(in->rl, "hot", 3, &d) == RL_OK) {
      in->admitted += d.allowed;
    }
  }
  rl__redis_thread_cleanup();
  return NULL;
}

static void redis_load(void) {
  char out[64];
  rlt_redis_cmd(&srv, out, sizeof out, 1, "FLUSHALL", NULL);
  rlt_redis_cmd(&srv, out, sizeof out, 1, "CONFIG", "RESETSTAT", NULL);
  instance in[INSTANCES];
  for (int i = 0; i < INSTANCES; i++) {
    in[i] = (instance){.rl = open_rl(1000000000, 1), .n = 200000 * scale};
  }
  int64_t t0 = mono_ns();
  for (int i = 0; i < INSTANCES; i++) {
    pthread_create(&in[i].th, NULL, instance_main, &in[i]);
  }
  long total = 0;
  for (int i = 0; i < INSTANCES; i++) {
    pthread_join(in[i].th, NULL);
    total += in[i].n;
  }
  double secs = (double)(mono_ns() - t0) / 1e9;
  rl_cache_stats s, sum;
  memset(&sum, 0, sizeof sum);
  for (int i = 0; i < INSTANCES; i++) {
    rl_cache_stats_get(in[i].rl, &s);
    sum.hits_lease += s.hits_lease;
    sum.leases += s.leases;
    rl_free(in[i].rl);
  }
  long long calls = script_calls();
  printf("{\"name\": \"hot_key_%d_instances\", \"decisions\": %ld, "
         "\"decisions_per_sec\": %.0f, \"redis_commands\": %lld, "
         "\"lease_hits\": %llu, \"leases\": %llu}\n",
         INSTANCES, total, (double)total / secs, calls,
         (unsigned long long)sum.hits_lease, (unsigned long long)sum.leases);
  print_target("redis_commands_per_decision_hot_key", (double)calls / total,
               "<=", 0.05);
}

/* One instance, BLOCKED_THREADS threads on one token-bucket key far over
 * its limit (100/s), cached denials only: each freed unit is asked for by
 * the threads whose cached denial ran out, one Redis call per key in
 * flight (single flight, docs/Cache.md). */
#define BLOCKED_THREADS 8

static void *blocked_main(void *arg) {
  instance *in = arg;
  rl_decision d;
  int64_t until = mono_ns() + (int64_t)1000000000 * scale;
  struct timespec pace = {0, 100000};
  while (mono_ns() < until) {
    if (rl_allow(in->rl, "blocked", 7, &d) == RL_OK) {
      in->admitted += d.allowed;
      in->n++;
    }
    nanosleep(&pace, NULL);
  }
  rl__redis_thread_cleanup();
  return NULL;
}

static void blocked_key_threads(void) {
  rl_limiter *rl = open_rl_alg(RL_ALG_TOKEN_BUCKET, 100, 1000, 1);
  instance in[BLOCKED_THREADS];
  long long before = script_calls();
  for (int i = 0; i < BLOCKED_THREADS; i++) {
    in[i] = (instance){.rl = rl};
    pthread_create(&in[i].th, NULL, blocked_main, &in[i]);
  }
  long total = 0, admitted = 0;
  for (int i = 0; i < BLOCKED_THREADS; i++) {
    pthread_join(in[i].th, NULL);
    total += in[i].n;
    admitted += in[i].admitted;
  }
  rl_free(rl);
  long long calls = script_calls() - before;
  printf("{\"name\": \"blocked_token_bucket_%d_threads\", \"decisions\": "
         "%ld, \"admitted\": %ld, \"redis_commands\": %lld, "
         "\"redis_commands_per_decision\": %.4f}\n",
         BLOCKED_THREADS, total, admitted, calls,
         (double)calls / (double)(total ? total : 1));
}

int main(int argc, char **argv) {
  if (argc > 1) {
    scale = atol(argv[1]) > 0 ? atol(argv[1]) : 1;
  }
  if (rlt_redis_start(&srv, NULL) != 0) {
    fprintf(stderr, "bench_cache: no redis-server\n");
    return 1;
  }
  snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)srv.port);
  long n = 1000000 * scale;

  /* cached denial */
  rl_limiter *rl = open_rl(1, 1);
  rl_decision d;
  rl_allow(rl, "hot", 3, &d);
  rl_allow(rl, "hot", 3, &d); /* denied by Redis: cached from now on */
  result hit = time_case(rl, n);
  rl_free(rl);
  print_case("cache_hit_denied", &hit);

  /* leased admission */
  char out[64];
  rlt_redis_cmd(&srv, out, sizeof out, 1, "FLUSHALL", NULL);
  rl = open_rl(1000000000, 1);
  time_case(rl, 20000); /* warm up: the key turns hot, leases grow */
  result lease = time_case(rl, n);
  rl_free(rl);
  print_case("lease_hit_admitted", &lease);

  /* direct, for the ratio */
  rl = open_rl(1000000000, 0);
  result direct = time_case(rl, 20000 * scale);
  rl_free(rl);
  print_case("direct_redis", &direct);

  /* the memory store's hot key: the same API path, for scale on this
   * machine (docs/Performance.md) */
  {
    static rl_policy mp;
    rl_policy_init(&mp);
    rl_policy_add_window(&mp, 1000000000, 3600000);
    mp.algorithm = RL_ALG_FIXED_WINDOW;
    rl_config mc;
    rl_config_init(&mc);
    mc.policies = &mp;
    mc.n_policies = 1;
    rl_new(&mc, &rl);
    result mem = time_case(rl, n);
    rl_free(rl);
    print_case("memory_store_hot_key", &mem);
  }
  print_target("cache_hit_ns_per_op", hit.ns_per_op, "<=", 100);
  print_target("lease_hit_ns_per_op", lease.ns_per_op, "<=", 100);
  if (bench_alloc_enabled()) {
    print_target("cache_hit_allocs_per_op", hit.allocs_per_op, "<=", 0);
    print_target("lease_hit_allocs_per_op", lease.allocs_per_op, "<=", 0);
  }
  print_target("direct_over_lease_ratio", direct.ns_per_op / lease.ns_per_op,
               ">=", 20);
  redis_load();
  blocked_key_threads();
  rl__redis_thread_cleanup();
  rlt_redis_stop(&srv);
  return 0;
}
