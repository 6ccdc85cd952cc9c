/*
 * redis_accuracy_client.c - one process of the Redis accuracy test
 * (test_redis_accuracy.c): several threads decide as fast as they can on
 * one Redis through the public API and log every decision with the time
 * Redis used (format: redis_accuracy.h). Run several at once, some under
 * faketime, and check the merged logs against the exact oracle.
 *
 * Usage: redis_accuracy_client PORT THREADS MS MAX_OPS hot|many LOG SEED
 *   runs each thread for MS milliseconds or MAX_OPS decisions, whichever
 *   ends first; exits 0 if every decision succeeded.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ratelimiter.h"
#include "redis_accuracy.h"
#include "redis_conn.h"
#include "redis_store.h"

#define MAX_THREADS 16

typedef struct entry {
  uint8_t policy, allowed, window;
  uint16_t key;
  uint64_t limit, remaining, retry;
  int64_t now; /* -1: the decision failed with error `limit` */
} entry;

typedef struct worker {
  pthread_t th;
  rl_limiter *rl;
  int many;
  long max_ops;
  int64_t until_ms;
  unsigned seed;
  entry *log;
  long n;
} worker;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void key_text(const worker *w, unsigned k, char *buf, size_t cap) {
  if (w->many) {
    snprintf(buf, cap, "k%u", k);
  } else {
    snprintf(buf, cap, "hot");
  }
}

static void one(worker *w) {
  static const char *const names[ACC_N_POLICIES] = {"fw", "sl", "tb"};
  w->seed = w->seed * 1103515245u + 12345u;
  unsigned p = (w->seed >> 8) % ACC_N_POLICIES;
  unsigned k = (w->seed >> 16) % ACC_MANY_KEYS;
  char key[16];
  key_text(w, k, key, sizeof key);
  rl_request req = {names[p], 2, key, strlen(key), 1};
  rl_decision d;
  entry *e = &w->log[w->n++];
  memset(e, 0, sizeof *e);
  e->policy = (uint8_t)p;
  e->key = (uint16_t)(w->many ? k : 0);
  int rc = rl_decide(w->rl, &req, &d);
  if (rc != RL_OK) {
    e->now = -1;
    e->limit = (uint64_t)rc;
    return;
  }
  e->allowed = (uint8_t)d.allowed;
  e->window = (uint8_t)d.window;
  e->limit = d.limit;
  e->remaining = d.remaining;
  e->retry = d.retry_after_ms;
  e->now = rl__redis_last_now_ms();
}

static void *run(void *arg) {
  worker *w = arg;
  while (w->n < w->max_ops && mono_ms() < w->until_ms) {
    one(w);
  }
  rl__redis_thread_cleanup();
  return NULL;
}

static int write_log(const char *path, worker *ws, int n, int64_t started) {
  FILE *f = fopen(path, "w");
  int failed = 0;
  if (f == NULL) {
    perror(path);
    return -1;
  }
  fprintf(f, "T %lld\n", (long long)started);
  for (int t = 0; t < n; t++) {
    for (long i = 0; i < ws[t].n; i++) {
      const entry *e = &ws[t].log[i];
      char key[16];
      key_text(&ws[t], e->key, key, sizeof key);
      if (e->now < 0) {
        fprintf(f, "E %s\n", rl_err_name((int)e->limit));
        failed++;
        continue;
      }
      fprintf(f, "%u %s %u %u %llu %llu %llu %lld\n", e->policy, key,
              e->allowed, e->window, (unsigned long long)e->limit,
              (unsigned long long)e->remaining, (unsigned long long)e->retry,
              (long long)e->now);
    }
  }
  return fclose(f) != 0 || failed ? -1 : 0;
}

static rl_limiter *open_limiter(const char *port) {
  static rl_policy pols[ACC_N_POLICIES];
  static char addr[64];
  static const char *addrs[1] = {addr};
  acc_policies(pols);
  snprintf(addr, sizeof addr, "127.0.0.1:%s", port);
  rl_config c;
  rl_config_init(&c);
  c.policies = pols;
  c.n_policies = ACC_N_POLICIES;
  c.store = RL_STORE_REDIS;
  c.redis.addrs = addrs;
  c.redis.n_addrs = 1;
  c.redis.timeout_ms = 10000; /* an unknown outcome would spoil the check */
  rl_limiter *rl = NULL;
  char err[256] = "";
  if (rl_new(&c, &rl) != RL_OK ||
      rl_wait_ready(rl, 10000, err, sizeof err) != RL_OK) {
    fprintf(stderr, "accuracy client: no limiter: %s\n", err);
    rl_free(rl);
    return NULL;
  }
  return rl;
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: %s PORT THREADS MS MAX_OPS hot|many LOG SEED\n",
            argv[0]);
    return 2;
  }
  int n = atoi(argv[2]);
  long ms = atol(argv[3]), max_ops = atol(argv[4]);
  if (n < 1 || n > MAX_THREADS || ms < 1 || max_ops < 1) {
    return 2;
  }
  int64_t started = real_ms(); /* the clock this process runs under */
  rl_limiter *rl = open_limiter(argv[1]);
  if (rl == NULL) {
    return 1;
  }
  worker ws[MAX_THREADS];
  int64_t until = mono_ms() + ms;
  for (int i = 0; i < n; i++) {
    ws[i] = (worker){.rl = rl,
                     .many = strcmp(argv[5], "many") == 0,
                     .max_ops = max_ops,
                     .until_ms = until,
                     .seed = (unsigned)atoi(argv[7]) * 7919u + (unsigned)i};
    ws[i].log = calloc((size_t)max_ops, sizeof(entry));
    if (ws[i].log == NULL || pthread_create(&ws[i].th, NULL, run, &ws[i])) {
      return 1;
    }
  }
  for (int i = 0; i < n; i++) {
    pthread_join(ws[i].th, NULL);
  }
  rl_free(rl);
  int rc = write_log(argv[6], ws, n, started);
  for (int i = 0; i < n; i++) {
    free(ws[i].log);
  }
  return rc == 0 ? 0 : 1;
}
