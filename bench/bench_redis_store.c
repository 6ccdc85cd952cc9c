/*
 * bench_redis_store.c - the Redis store through the public API against
 * redis-benchmark running the same script with the same arguments, in one
 * run on one machine. One JSON object per line:
 *
 *   {"name", "ns_per_op", "ops_per_sec", "allocs_per_op", "p50_us",
 *    "p99_us", ...}
 *
 * plus ratio lines {"name", "ratio", "target", "pass"}. Cases:
 *   - one synchronous caller (rl_decide) vs `redis-benchmark -c 1 -P 1
 *     EVALSHA <sha> 1 <key> <args>`: target ratio <= 1.15;
 *   - 64 concurrent callers, as 64 threads calling rl_decide, and as
 *     rl_decide_async with 64 x 16 in flight (each callback submits the
 *     next request, as an event-loop server would), vs `redis-benchmark
 *     -c 50 -P 16`: target ratio (decisions/s) >= 0.8;
 *   - a 2-window policy vs a 1-window one, one caller: target <= 1.3;
 *   - allocations per decision in steady state (target 0);
 *   - Redis CPU per decision (INFO cpu deltas, user + sys).
 * The policy admits everything (10^9 per hour; and per minute for the
 * second window), so every call runs the same path (read, decide, SET),
 * with products below 2^53 (the scripts' fast arithmetic; a limit of 2^40
 * would take their exact multi-limb path, ~1.5x the server CPU). Each case runs
 * REPS times, interleaved with redis-benchmark; the median is reported.
 *
 * Usage: bench_redis_store [scale]   (scale multiplies the op counts)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"
#include "harness/redis_server.h"
#include "lua_scripts.h"
#include "ratelimiter.h"
#include "redis_store.h"

#define REPS 3
#define MAX_THREADS 64

static rlt_redis srv;
static long scale = 1;

typedef struct result {
  double ns_per_op, allocs_per_op, p50_us, p99_us, cpu_us_per_op;
} result;

/* ---- helpers ------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void percentiles(uint32_t *lat, size_t n, result *r) {
  qsort(lat, n, sizeof *lat, cmp_u32);
  r->p50_us = lat[n / 2] / 1000.0;
  r->p99_us = lat[n * 99 / 100] / 1000.0;
}

/* Redis' used_cpu_user + used_cpu_sys, in microseconds. */
static double redis_cpu_us(void) {
  char cmd[128], line[256];
  double user = 0, sys = 0;
  snprintf(cmd, sizeof cmd, "redis-cli -p %u INFO cpu 2>/dev/null",
           (unsigned)srv.port);
  FILE *p = popen(cmd, "r");
  while (p != NULL && fgets(line, sizeof line, p) != NULL) {
    sscanf(line, "used_cpu_user:%lf", &user);
    sscanf(line, "used_cpu_sys:%lf", &sys);
  }
  if (p != NULL) {
    pclose(p);
  }
  return (user + sys) * 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v) {
  qsort(v, REPS, sizeof *v, cmp_double);
  return v[REPS / 2];
}

static result median_result(result *rs) {
  double v[5][REPS];
  for (int i = 0; i < REPS; i++) {
    v[0][i] = rs[i].ns_per_op;
    v[1][i] = rs[i].allocs_per_op;
    v[2][i] = rs[i].p50_us;
    v[3][i] = rs[i].p99_us;
    v[4][i] = rs[i].cpu_us_per_op;
  }
  result m = {median(v[0]), median(v[1]), median(v[2]), median(v[3]),
              median(v[4])};
  return m;
}

static void report(const char *name, const result *r, int ours) {
  printf("{\"name\": \"%s\", \"ns_per_op\": %.0f, \"ops_per_sec\": %.0f, "
         "\"allocs_per_op\": ",
         name, r->ns_per_op, 1e9 / r->ns_per_op);
  if (ours && bench_alloc_enabled()) {
    printf("%.4f", r->allocs_per_op);
  } else {
    printf("null");
  }
  printf(", \"p50_us\": %.1f, \"p99_us\": %.1f, \"redis_cpu_us_per_op\": "
         "%.2f, \"reps\": %d}\n",
         r->p50_us, r->p99_us, r->cpu_us_per_op, REPS);
  fflush(stdout);
}

static void report_ratio(const char *name, double ratio, const char *op,
                         double target) {
  int pass = op[0] == '<' ? ratio <= target : ratio >= target;
  printf("{\"name\": \"%s\", \"ratio\": %.3f, \"target\": \"%s %.2f\", "
         "\"pass\": %s}\n",
         name, ratio, op, target, pass ? "true" : "false");
  fflush(stdout);
}

/* ---- our side ----------------------------------------------------------- */

typedef struct caller {
  rl_limiter *rl;
  const char *policy;
  char key[32];
  long ops;
  uint32_t *lat;
  int errors;
} caller;

static pthread_barrier_t start_line, finish_line;

static void *sync_caller(void *arg) {
  caller *c = arg;
  rl_request req = {c->policy, strlen(c->policy), c->key, strlen(c->key), 1};
  rl_decision d;
  for (int i = 0; i < 50; i++) { /* warm-up: waiter, buffers */
    rl_decide(c->rl, &req, &d);
  }
  pthread_barrier_wait(&start_line);
  for (long i = 0; i < c->ops; i++) {
    int64_t t0 = rl__mono_ns();
    if (rl_decide(c->rl, &req, &d) != RL_OK || !d.allowed) {
      c->errors++;
    }
    c->lat[i] = (uint32_t)(rl__mono_ns() - t0);
  }
  pthread_barrier_wait(&finish_line);
  rl__redis_thread_cleanup();
  return NULL;
}

/* n threads of ops blocking decisions each; hot = all on one key. */
static int run_sync(rl_limiter *rl, const char *policy, int n, long ops,
                    int hot, result *r) {
  static caller cs[MAX_THREADS];
  pthread_t th[MAX_THREADS];
  uint32_t *lat = malloc(sizeof(uint32_t) * (size_t)(n * ops));
  pthread_barrier_init(&start_line, NULL, (unsigned)n + 1);
  pthread_barrier_init(&finish_line, NULL, (unsigned)n + 1);
  for (int i = 0; i < n; i++) {
    cs[i] = (caller){rl, policy, "", ops, lat + (size_t)i * (size_t)ops, 0};
    snprintf(cs[i].key, sizeof cs[i].key, hot ? "bench:hot" : "bench:%d", i);
    pthread_create(&th[i], NULL, sync_caller, &cs[i]);
  }
  pthread_barrier_wait(&start_line);
  double cpu0 = redis_cpu_us();
  uint64_t a0 = bench_alloc_count();
  int64_t t0 = rl__mono_ns();
  pthread_barrier_wait(&finish_line);
  int64_t ns = rl__mono_ns() - t0;
  uint64_t allocs = bench_alloc_count() - a0;
  double total = (double)n * (double)ops;
  r->cpu_us_per_op = (redis_cpu_us() - cpu0) / total;
  int errors = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    errors += cs[i].errors;
  }
  pthread_barrier_destroy(&start_line);
  pthread_barrier_destroy(&finish_line);
  r->ns_per_op = (double)ns / total;
  r->allocs_per_op = (double)allocs / total;
  percentiles(lat, (size_t)(n * ops), r);
  free(lat);
  return errors;
}

typedef struct async_run {
  rl_limiter *rl;
  atomic_long next, done, errors;
  long ops;
  int64_t *sent_at; /* per request */
  uint32_t *lat;
  long *ids;
} async_run;

static void on_async(int err, const rl_decision *d, void *ud);

/* Submits request i (any thread; from a callback: the loop thread). */
static void async_submit(async_run *r, long i) {
  static const rl_request req = {"one", 3, "bench:hot", 9, 1};
  r->ids[i] = i;
  r->sent_at[i] = rl__mono_ns();
  if (rl_decide_async(r->rl, &req, on_async, &r->ids[i]) != RL_OK) {
    atomic_fetch_add(&r->errors, 1); /* refused: counted as done, failed */
    atomic_fetch_add(&r->done, 1);
  }
}

static async_run *the_run;

/* Each completion submits the next request: an event-loop server's shape,
 * with `window` decisions in flight and no thread waiting on any. */
static void on_async(int err, const rl_decision *d, void *ud) {
  async_run *r = the_run;
  long i = *(long *)ud;
  if (err != RL_OK || !d->allowed) {
    atomic_fetch_add(&r->errors, 1);
  }
  r->lat[i] = (uint32_t)(rl__mono_ns() - r->sent_at[i]);
  long next = atomic_fetch_add(&r->next, 1);
  if (next < r->ops) {
    async_submit(r, next);
  }
  atomic_fetch_add(&r->done, 1);
}

static int run_async(rl_limiter *rl, long ops, long window, result *r) {
  async_run ar = {.rl = rl, .ops = ops};
  atomic_init(&ar.next, window);
  atomic_init(&ar.done, 0);
  atomic_init(&ar.errors, 0);
  ar.sent_at = calloc((size_t)ops, sizeof *ar.sent_at);
  ar.lat = calloc((size_t)ops, sizeof *ar.lat);
  ar.ids = calloc((size_t)ops, sizeof *ar.ids);
  the_run = &ar;
  double cpu0 = redis_cpu_us();
  uint64_t a0 = bench_alloc_count();
  int64_t t0 = rl__mono_ns();
  for (long i = 0; i < window && i < ops; i++) {
    async_submit(&ar, i);
  }
  while (atomic_load(&ar.done) < ops) {
    rlt_sleep_ms(1);
  }
  int64_t ns = rl__mono_ns() - t0;
  r->allocs_per_op = (double)(bench_alloc_count() - a0) / (double)ops;
  r->cpu_us_per_op = (redis_cpu_us() - cpu0) / (double)ops;
  r->ns_per_op = (double)ns / (double)ops;
  percentiles(ar.lat, (size_t)ops, r);
  free(ar.sent_at);
  free(ar.lat);
  free(ar.ids);
  return (int)atomic_load(&ar.errors);
}

/* ---- redis-benchmark ---------------------------------------------------- */

/* The exact command our library sends for (policy p, key), as shell
 * words. */
static void command_words(const rl_policy *p, const char *key, char *out,
                          size_t cap) {
  rl__policy cp;
  rl__redis_cmd cmd;
  char keybuf[256];
  rl__policy_compile(p, 0, &cp, NULL, 0);
  size_t script = rl__redis_script_index(cp.shape.algorithm);
  rl__redis_cmd_build(&cmd, rl__scripts[script].sha1, &cp, key, strlen(key), 1,
                      keybuf, sizeof keybuf);
  size_t n = 0;
  for (int i = 0; i < cmd.argc && n < cap; i++) {
    n += (size_t)snprintf(out + n, cap - n, " '%.*s'", (int)cmd.lens[i],
                          cmd.argv[i]);
  }
}

static void run_redis_benchmark(const char *words, int clients, int pipeline,
                                long n, result *r) {
  char cmd[2048], line[1024];
  snprintf(cmd, sizeof cmd,
           "redis-benchmark -h 127.0.0.1 -p %u -c %d -P %d -n %ld -q%s "
           "2>/dev/null | tr '\\r' '\\n'",
           (unsigned)srv.port, clients, pipeline, n, words);
  double cpu0 = redis_cpu_us();
  FILE *p = popen(cmd, "r");
  double rps = 0, p50 = 0;
  while (p != NULL && fgets(line, sizeof line, p) != NULL) {
    char *at = strstr(line, "requests per second");
    if (at == NULL) {
      continue;
    }
    char *num = at;
    while (num > line && (num[-1] == ' ' || num[-1] == '.' ||
                          (num[-1] >= '0' && num[-1] <= '9'))) {
      num--;
    }
    rps = atof(num);
    char *q = strstr(at, "p50=");
    p50 = q != NULL ? atof(q + 4) * 1000 : 0;
  }
  if (p != NULL) {
    pclose(p);
  }
  memset(r, 0, sizeof *r);
  r->ns_per_op = rps > 0 ? 1e9 / rps : 0;
  r->p50_us = p50;
  r->cpu_us_per_op = (redis_cpu_us() - cpu0) / (double)n;
}

/* ---- main --------------------------------------------------------------- */

static rl_limiter *open_limiter(rl_policy *pols, size_t n, unsigned pool) {
  static char addr[32];
  static const char *addrs[1] = {addr};
  snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)srv.port);
  rl_config c;
  rl_config_init(&c);
  c.policies = pols;
  c.n_policies = n;
  c.store = RL_STORE_REDIS;
  c.redis.addrs = addrs;
  c.redis.n_addrs = 1;
  c.redis.pool_size = pool;
  c.redis.timeout_ms = 10000;
  rl_limiter *rl = NULL;
  char err[256] = "";
  if (rl_new(&c, &rl) != RL_OK || rl_wait_ready(rl, 5000, err, sizeof err)) {
    fprintf(stderr, "bench: no limiter: %s\n", err);
    exit(1);
  }
  return rl;
}

static void policies(rl_policy *pols) {
  rl_policy_init(&pols[0]);
  pols[0].name = "one";
  pols[0].algorithm = RL_ALG_FIXED_WINDOW;
  rl_policy_add_window(&pols[0], 1000000000, 3600000);
  pols[1] = pols[0];
  pols[1].name = "two";
  rl_policy_add_window(&pols[1], 1000000000, 60000);
}

typedef struct cases {
  result sync1[REPS], sync2[REPS], rb1[REPS], t64[REPS], a64[REPS], rb50[REPS];
} cases;

static int run_all(rl_limiter *rl, const char *words, cases *cs) {
  int errors = 0;
  for (int i = 0; i < REPS; i++) {
    errors += run_sync(rl, "one", 1, 20000 * scale, 1, &cs->sync1[i]);
    run_redis_benchmark(words, 1, 1, 20000 * scale, &cs->rb1[i]);
    errors += run_sync(rl, "two", 1, 20000 * scale, 1, &cs->sync2[i]);
    errors += run_sync(rl, "one", 64, 1000 * scale, 1, &cs->t64[i]);
    errors += run_async(rl, 200000 * scale, 64 * 16, &cs->a64[i]);
    run_redis_benchmark(words, 50, 16, 400000 * scale, &cs->rb50[i]);
  }
  return errors;
}

static void report_all(cases *cs) {
  result s1 = median_result(cs->sync1), s2 = median_result(cs->sync2);
  result b1 = median_result(cs->rb1), t64 = median_result(cs->t64);
  result a64 = median_result(cs->a64), b50 = median_result(cs->rb50);
  report("redis_store_sync_1_caller_1_window", &s1, 1);
  report("redis_benchmark_evalsha_c1_P1", &b1, 0);
  report_ratio("ratio_sync_1_caller_vs_redis_benchmark_c1_P1",
               s1.ns_per_op / b1.ns_per_op, "<=", 1.15);
  report("redis_store_sync_1_caller_2_windows", &s2, 1);
  report_ratio("ratio_2_windows_vs_1_window", s2.ns_per_op / s1.ns_per_op,
               "<=", 1.3);
  report("redis_store_sync_64_threads", &t64, 1);
  report("redis_store_async_64x16_in_flight", &a64, 1);
  report("redis_benchmark_evalsha_c50_P16", &b50, 0);
  report_ratio("ratio_64_threads_vs_redis_benchmark_c50_P16",
               b50.ns_per_op / t64.ns_per_op, ">=", 0.8);
  report_ratio("ratio_async_64x16_vs_redis_benchmark_c50_P16",
               b50.ns_per_op / a64.ns_per_op, ">=", 0.8);
  double allocs = s1.allocs_per_op + s2.allocs_per_op + t64.allocs_per_op +
                  a64.allocs_per_op;
  printf("{\"name\": \"allocs_per_decision_steady_state\", \"value\": %.4f, "
         "\"target\": 0, \"pass\": %s}\n",
         allocs, !bench_alloc_enabled() || allocs < 0.001 ? "true" : "false");
}

int main(int argc, char **argv) {
  scale = argc > 1 && atol(argv[1]) > 0 ? atol(argv[1]) : 1;
  if (rlt_redis_start(&srv, NULL) != 0) {
    return 1;
  }
  rl_policy pols[2];
  policies(pols);
  rl_limiter *rl = open_limiter(pols, 2, RL_REDIS_POOL_SIZE_DEFAULT);
  static char words[1024];
  command_words(&pols[0], "bench:hot", words, sizeof words);
  fprintf(stderr, "bench: redis-benchmark command:%s\n", words);
  cases *cs = calloc(1, sizeof *cs);
  int errors = run_all(rl, words, cs);
  report_all(cs);
  free(cs);
  rl_free(rl);
  rl__redis_thread_cleanup();
  rlt_redis_stop(&srv);
  if (errors != 0) {
    fprintf(stderr, "bench: %d decisions failed\n", errors);
  }
  return errors != 0;
}
