/*
 * bench_redis_conn.c - throughput and allocations of the Redis connection
 * layer against a local redis-server, one JSON object per line:
 *
 *   {"name": ..., "ns_per_op": ..., "ops_per_sec": ..., "allocs_per_op": ...}
 *
 * Cases: one synchronous caller doing EVALSHA of a trivial script; 64
 * synchronous callers at once; one asynchronous caller keeping 128
 * requests in flight. For comparison, redis-benchmark runs the same
 * EVALSHA with -c 1 -P 1 and -c 50 -P 16 (allocs_per_op null: not ours).
 * Run as `bench_redis_conn [scale]` (scale multiplies the op counts).
 *
 * Allocations are counted by interposing malloc/calloc/realloc/free in
 * this executable (forwarding to glibc's __libc_* functions), so every
 * allocation of the process counts, the loop thread's and the libraries'
 * (hiredis, libevent, OpenSSL) included. Thread start-up and warm-up
 * (which create each thread's waiter and grow the buffers once) are
 * outside the measured window.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/redis_server.h"
#include "ratelimiter.h"
#include "redis_conn.h"

/* ---- allocation counting ------------------------------------------------ */

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static atomic_ulong n_allocs;

void *malloc(size_t size) {
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  return __libc_realloc(p, size);
}

void free(void *p) {
  __libc_free(p);
}

/* ---- cases -------------------------------------------------------------- */

static const char *const script = "return 1";

typedef struct bench_ctx {
  rl__redis_node *node;
  rl__redis_args args; /* EVALSHA <sha> 0 */
  const char *argv[3];
  size_t lens[3];
  long ops;   /* per thread */
  int errors; /* atomic enough: checked after join */
} bench_ctx;

static int expect_one(const rl__redis_reply *r, void *out) {
  (void)out;
  return r->type == RL__REPLY_INTEGER && r->integer == 1
             ? RL_OK
             : RL_ERR_BACKEND_UNAVAILABLE;
}

static void report(const char *name, long ops, int64_t ns, double allocs) {
  double ns_per_op = (double)ns / (double)ops;
  printf("{\"name\": \"%s\", \"ns_per_op\": %.1f, \"ops_per_sec\": %.0f, "
         "\"allocs_per_op\": ",
         name, ns_per_op, 1e9 / ns_per_op);
  if (allocs < 0)
    printf("null}\n");
  else
    printf("%.4f}\n", allocs);
  fflush(stdout);
}

static pthread_barrier_t start_line, finish_line;

/* Warms up (its waiter, the buffers), then runs the timed calls between
 * the two barriers. */
static void *sync_caller(void *arg) {
  bench_ctx *c = arg;
  int64_t deadline = rl__mono_ns() + 60000000000LL;
  for (int i = 0; i < 20; i++)
    rl__redis_node_call(c->node, &c->args, deadline, expect_one, NULL);
  pthread_barrier_wait(&start_line);
  for (long i = 0; i < c->ops; i++)
    if (rl__redis_node_call(c->node, &c->args, deadline, expect_one, NULL) !=
        RL_OK)
      c->errors++;
  pthread_barrier_wait(&finish_line);
  rl__redis_thread_cleanup();
  return NULL;
}

/* Runs n_threads synchronous callers of ops calls each; reports. Thread
 * start-up and warm-up are outside the measured window. */
static int run_sync(const char *name, bench_ctx *proto, int n_threads,
                    long ops) {
  bench_ctx ctx[64];
  pthread_t th[64];
  pthread_barrier_init(&start_line, NULL, (unsigned)n_threads + 1);
  pthread_barrier_init(&finish_line, NULL, (unsigned)n_threads + 1);
  for (int i = 0; i < n_threads; i++) {
    ctx[i] = *proto;
    ctx[i].args.argv = ctx[i].argv;
    ctx[i].args.argvlen = ctx[i].lens;
    ctx[i].ops = ops;
    pthread_create(&th[i], NULL, sync_caller, &ctx[i]);
  }
  pthread_barrier_wait(&start_line);
  unsigned long a0 = atomic_load(&n_allocs);
  int64_t t0 = rl__mono_ns();
  pthread_barrier_wait(&finish_line);
  int64_t ns = rl__mono_ns() - t0;
  unsigned long allocs = atomic_load(&n_allocs) - a0;
  int errors = 0;
  for (int i = 0; i < n_threads; i++) {
    pthread_join(th[i], NULL);
    errors += ctx[i].errors;
  }
  pthread_barrier_destroy(&start_line);
  pthread_barrier_destroy(&finish_line);
  long total = ops * n_threads;
  report(name, total, ns, (double)allocs / (double)total);
  return errors;
}

typedef struct async_state {
  atomic_long done;
  atomic_int errors;
} async_state;

static void async_cb(int status, const rl__redis_reply *r, void *ud,
                     uint64_t tag) {
  async_state *s = ud;
  (void)tag;
  if (status != RL_OK || r->type != RL__REPLY_INTEGER)
    atomic_fetch_add(&s->errors, 1);
  atomic_fetch_add(&s->done, 1);
}

static int run_async(const char *name, bench_ctx *c, long ops, long window) {
  async_state s;
  atomic_init(&s.done, 0);
  atomic_init(&s.errors, 0);
  unsigned long a0 = atomic_load(&n_allocs);
  int64_t t0 = rl__mono_ns();
  for (long i = 0; i < ops; i++) {
    while (i - atomic_load(&s.done) >= window)
      sched_yield(); /* 2 cores: leave them to the loop and the server */
    if (rl__redis_node_submit(c->node, &c->args, rl__mono_ns() + 2000000000LL,
                              async_cb, &s, 0) != RL_OK)
      return 1;
  }
  while (atomic_load(&s.done) < ops)
    sched_yield();
  int64_t ns = rl__mono_ns() - t0;
  report(name, ops, ns, (double)(atomic_load(&n_allocs) - a0) / (double)ops);
  return atomic_load(&s.errors);
}

/* redis-benchmark with the same command; prints its requests/second. */
static void run_redis_benchmark(const rlt_redis *srv, const char *sha,
                                const char *name, int clients, int pipeline,
                                long n) {
  char cmd[512], line[512];
  snprintf(cmd, sizeof(cmd),
           "redis-benchmark -h 127.0.0.1 -p %u -c %d -P %d -n %ld -q "
           "EVALSHA %s 0 2>/dev/null | tr '\\r' '\\n'",
           (unsigned)srv->port, clients, pipeline, n, sha);
  FILE *p = popen(cmd, "r");
  double rps = 0;
  while (p != NULL && fgets(line, sizeof(line), p) != NULL) {
    char *at = strstr(line, "requests per second");
    if (at == NULL)
      continue;
    while (at > line && at[-1] == ' ')
      at--;
    while (at > line && (at[-1] == '.' || (at[-1] >= '0' && at[-1] <= '9')))
      at--;
    rps = atof(at);
  }
  if (p != NULL)
    pclose(p);
  if (rps > 0)
    report(name, 1, (int64_t)(1e9 / rps), -1);
}

static int setup(rlt_redis *srv, bench_ctx *c, unsigned pool) {
  rl__redis_node_opts o;
  char err[128];
  rl__redis_node_opts_init(&o);
  o.port = srv->port;
  o.pool_size = pool;
  o.scripts = &script;
  o.n_scripts = 1;
  memset(c, 0, sizeof(*c));
  if (rl__redis_node_new(NULL, &o, &c->node, err, sizeof(err)) != RL_OK ||
      rl__redis_node_wait_ready(c->node, rl__mono_ns() + 5000000000LL) !=
          RL_OK) {
    fprintf(stderr, "bench: cannot connect: %s\n", err);
    return -1;
  }
  c->argv[0] = "EVALSHA";
  c->argv[1] = rl__redis_node_script_sha(c->node, 0);
  c->argv[2] = "0";
  c->lens[0] = 7;
  c->lens[1] = RL__REDIS_SHA_LEN;
  c->lens[2] = 1;
  c->args = (rl__redis_args){3, c->argv, c->lens};
  return 0;
}

int main(int argc, char **argv) {
  long scale = argc > 1 ? atol(argv[1]) : 1; /* bench_redis_conn [scale] */
  rlt_redis srv;
  bench_ctx c;
  if (scale < 1)
    scale = 1;
  if (rlt_redis_start(&srv, NULL) != 0 || setup(&srv, &c, 2) != 0)
    return 1;
  int errors =
      run_sync("redis_conn_evalsha_sync_1_caller", &c, 1, 20000 * scale);
  errors +=
      run_sync("redis_conn_evalsha_sync_64_callers", &c, 64, 1000 * scale);
  errors += run_async("redis_conn_evalsha_async_1_caller_128_in_flight", &c,
                      200000 * scale, 128);
  run_redis_benchmark(&srv, c.argv[1], "redis_benchmark_evalsha_c1_P1", 1, 1,
                      20000 * scale);
  run_redis_benchmark(&srv, c.argv[1], "redis_benchmark_evalsha_c50_P16", 50,
                      16, 400000 * scale);
  rl__redis_node_free(c.node);
  rl__redis_thread_cleanup();
  rlt_redis_stop(&srv);
  if (errors != 0)
    fprintf(stderr, "bench: %d calls failed\n", errors);
  return errors != 0;
}
