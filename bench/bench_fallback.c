/*
 * bench_fallback.c - what graceful degradation costs (docs/Degradation.md).
 * One JSON object per line:
 *
 *   {"name", "ns_per_op", "allocs_per_op", "p50_us", "p99_us"}
 *
 * Cases, one thread, on a real redis-server (tests/harness):
 *   - healthy Redis: a policy in mode none vs the same policy in mode
 *     local (the fallback store copies the policy before asking Redis):
 *     ratio line, target <= 1.05;
 *   - Redis killed, breaker open: decisions in mode open, closed and
 *     local (local on 1000 keys already seen: 0 allocations);
 *   - Redis stopped (SIGSTOP), breaker open: local decisions (what a
 *     caller sees while Redis hangs).
 *
 * Usage: bench_fallback [scale]   (scale multiplies the op counts)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc_count.h"
#include "chaos/fallback_limiter.h"
#include "harness/redis_server.h"
#include "ratelimiter.h"

#define N_KEYS 1000

static rlt_redis srv;
static long scale = 1;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static rl_limiter *limiter(void) {
  static const rlt_fallback_policy spec[] = {
      {"none", RL_FALLBACK_NONE, 1000000000},
      {"open", RL_FALLBACK_OPEN, 1000000000},
      {"closed", RL_FALLBACK_CLOSED, 1000000000},
      {"local", RL_FALLBACK_LOCAL, 1000000000}};
  rl_policy p[4];
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)srv.port);
  const char *addrs[1] = {addr};
  rl_config c;
  rlt_fallback_config(&c, p, spec, 4, RL_ALG_SLIDING_COUNTER, 3600000, addrs,
                      1);
  c.fallback.probe_interval_ms = 60000; /* no probe during a case */
  rl_limiter *rl = NULL;
  if (rl_new(&c, &rl) != RL_OK || rl_wait_ready(rl, 5000, NULL, 0) != RL_OK) {
    fprintf(stderr, "bench_fallback: no limiter\n");
    exit(1);
  }
  return rl;
}

/* n decisions of `policy` over N_KEYS keys; prints one line. */
static double run(rl_limiter *rl, const char *name, const char *policy, long n,
                  rl_source want) {
  uint32_t *lat = malloc((size_t)n * sizeof *lat);
  char key[16];
  long wrong = 0;
  uint64_t allocs0 = bench_alloc_count();
  int64_t t0 = now_ns();
  for (long i = 0; i < n; i++) {
    int len = snprintf(key, sizeof key, "k%ld", i % N_KEYS);
    rl_request req = {policy, strlen(policy), key, (size_t)len, 1};
    rl_decision d;
    int64_t a = now_ns();
    int err = rl_decide(rl, &req, &d);
    lat[i] = (uint32_t)(now_ns() - a);
    wrong += err != RL_OK || d.source != want;
  }
  double ns = (double)(now_ns() - t0) / (double)n;
  double allocs = (double)(bench_alloc_count() - allocs0) / (double)n;
  qsort(lat, (size_t)n, sizeof *lat, cmp_u32);
  printf("{\"name\":\"%s\",\"ns_per_op\":%.0f,\"allocs_per_op\":%.3f,"
         "\"p50_us\":%.2f,\"p99_us\":%.2f,\"wrong_source\":%ld}\n",
         name, ns, allocs, lat[n / 2] / 1000.0, lat[n * 99 / 100] / 1000.0,
         wrong);
  fflush(stdout);
  free(lat);
  return ns;
}

static void ratio(const char *name, double value, double target) {
  printf("{\"name\":\"%s\",\"ratio\":%.3f,\"target\":%.2f,\"pass\":%s}\n", name,
         value, target, value <= target ? "true" : "false");
}

/* Spends decisions until the breaker is open (Redis dead or silent). */
static void open_breaker(rl_limiter *rl) {
  for (int i = 0; i < 100; i++) {
    rl_fallback_stats fs;
    rl_fallback_stats_get(rl, &fs);
    if (fs.breaker_open) {
      return;
    }
    rl_request req = {"local", 5, "warm", 4, 1};
    rl_decision d;
    rl_decide(rl, &req, &d);
  }
  fprintf(stderr, "bench_fallback: the breaker did not open\n");
  exit(1);
}

int main(int argc, char **argv) {
  if (argc > 1) {
    scale = atol(argv[1]) > 0 ? atol(argv[1]) : 1;
  }
  if (rlt_redis_start(&srv, NULL) != 0) {
    return 1;
  }
  rl_limiter *rl = limiter();
  long n = 20000 * scale;
  run(rl, "warmup", "none", n / 4, RL_SOURCE_REDIS);
  double none = run(rl, "redis_mode_none", "none", n, RL_SOURCE_REDIS);
  double local = run(rl, "redis_mode_local", "local", n, RL_SOURCE_REDIS);
  double none2 = run(rl, "redis_mode_none_again", "none", n, RL_SOURCE_REDIS);
  ratio("healthy_local_vs_none", 2 * local / (none + none2), 1.05);

  rlt_redis_kill(&srv);
  open_breaker(rl);
  long m = 200000 * scale;
  run(rl, "down_open", "open", m, RL_SOURCE_FALLBACK_OPEN);
  run(rl, "down_closed", "closed", m, RL_SOURCE_FALLBACK_CLOSED);
  run(rl, "down_local_first", "local", N_KEYS, RL_SOURCE_FALLBACK_LOCAL);
  run(rl, "down_local", "local", m, RL_SOURCE_FALLBACK_LOCAL);
  rl_free(rl);

  if (rlt_redis_restart(&srv) != 0) {
    return 1;
  }
  rl = limiter();
  rlt_redis_pause(&srv);
  open_breaker(rl);
  run(rl, "sigstopped_local", "local", m, RL_SOURCE_FALLBACK_LOCAL);
  rlt_redis_resume(&srv);
  rl_free(rl);
  rlt_redis_stop(&srv);
  return 0;
}
