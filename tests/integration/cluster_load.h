/*
 * cluster_load.h - load for the Redis Cluster tests: threads deciding as
 * fast as they can through the public API, every decision logged with the
 * time Redis used (rl__redis_last_now_ms) and its own duration, and the
 * check of a log against the exact oracle (as test_redis_accuracy does).
 *
 * Keys: "<prefix>hot" (half of the decisions) and "<prefix>k0".."k15", under
 * the three policies of redis_accuracy.h (fixed window, exact sliding log,
 * token bucket), so the keys spread over the slots of every master while
 * one of them is hot. All costs are 1 (see redis_accuracy.h for why that
 * makes the order inside one millisecond recoverable).
 */
#ifndef RLT_CLUSTER_LOAD_H
#define RLT_CLUSTER_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/redis_server.h"
#include "integration/redis_accuracy.h"
#include "model/oracle.h"
#include "ratelimiter.h"
#include "redis_conn.h"
#include "redis_store.h"

#define CL_MAX_THREADS 8
#define CL_KEYS 17 /* 0 = hot */

typedef struct cl_rec {
  uint8_t policy, key, allowed, window;
  int rc;
  uint64_t limit, remaining, retry;
  int64_t now;          /* Redis' ms */
  int64_t t0_ms, t1_ms; /* monotonic: call start and end */
} cl_rec;

typedef struct cl_worker {
  pthread_t th;
  struct cl_load *load;
  unsigned seed;
  cl_rec *log;
  size_t n, cap;
} cl_worker;

typedef struct cl_load {
  rl_limiter *rl;
  char prefix[8];
  int threads;
  atomic_int stop;
  cl_worker w[CL_MAX_THREADS];
} cl_load;

static inline void cl_key_text(const cl_load *l, unsigned k, char *buf,
                               size_t cap) {
  if (k == 0)
    snprintf(buf, cap, "%shot", l->prefix);
  else
    snprintf(buf, cap, "%sk%u", l->prefix, k - 1);
}

static void *cl_run(void *arg) {
  static const char *const names[ACC_N_POLICIES] = {"fw", "sl", "tb"};
  cl_worker *w = arg;
  cl_load *l = w->load;
  while (!atomic_load(&l->stop) && w->n < w->cap) {
    w->seed = w->seed * 1103515245u + 12345u;
    unsigned p = (w->seed >> 8) % ACC_N_POLICIES;
    unsigned k = (w->seed >> 12) % 2 ? 0 : 1 + (w->seed >> 16) % (CL_KEYS - 1);
    char key[24];
    cl_key_text(l, k, key, sizeof key);
    rl_request req = {names[p], 2, key, strlen(key), 1};
    rl_decision d;
    cl_rec *e = &w->log[w->n++];
    memset(e, 0, sizeof *e);
    e->policy = (uint8_t)p;
    e->key = (uint8_t)k;
    e->t0_ms = rlt_now_ms();
    e->rc = rl_decide(l->rl, &req, &d);
    e->t1_ms = rlt_now_ms();
    if (e->rc == RL_OK) {
      e->allowed = (uint8_t)d.allowed;
      e->window = (uint8_t)d.window;
      e->limit = d.limit;
      e->remaining = d.remaining;
      e->retry = d.retry_after_ms;
      e->now = rl__redis_last_now_ms();
    }
  }
  rl__redis_thread_cleanup();
  return NULL;
}

static inline void cl_load_start(cl_load *l, rl_limiter *rl, int threads,
                                 const char *prefix) {
  memset(l, 0, sizeof *l);
  l->rl = rl;
  l->threads = threads;
  snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
  for (int i = 0; i < threads; i++) {
    cl_worker *w = &l->w[i];
    w->load = l;
    w->seed = 7919u * (unsigned)(i + 1) + (unsigned)prefix[0];
    w->cap = 400000;
    w->log = calloc(w->cap, sizeof *w->log);
    if (w->log == NULL || pthread_create(&w->th, NULL, cl_run, w) != 0)
      abort();
  }
}

static inline void cl_load_stop(cl_load *l) {
  atomic_store(&l->stop, 1);
  for (int i = 0; i < l->threads; i++)
    pthread_join(l->w[i].th, NULL);
}

static inline void cl_load_free(cl_load *l) {
  for (int i = 0; i < l->threads; i++)
    free(l->w[i].log);
}

/* ---- the check ---------------------------------------------------------- */

typedef struct cl_verdict {
  long decisions, admitted, failed, over, false_denials, field_errors;
  long by_err[64];
  int64_t max_ms;       /* longest call */
  int64_t last_fail_ms; /* end of the last failed call; 0 if none */
} cl_verdict;

static int cl_by_key_then_order(const void *a, const void *b) {
  const cl_rec *x = a, *y = b;
  int c = (int)x->policy - (int)y->policy;
  if (c == 0)
    c = (int)x->key - (int)y->key;
  if (c == 0 && x->now != y->now)
    c = x->now < y->now ? -1 : 1;
  if (c == 0)
    c = (int)y->allowed - (int)x->allowed;
  if (c == 0 && x->remaining != y->remaining)
    c = x->remaining > y->remaining ? -1 : 1;
  return c;
}

static inline void cl_compare(cl_verdict *v, const cl_rec *r,
                              const om_result *o, int quiet) {
  const char *what = NULL;
  if (r->allowed && !o->admit) {
    v->over++;
    what = "over-limit";
  } else if (!r->allowed && o->admit) {
    v->false_denials++;
    what = "false denial";
  } else if (r->window != o->window || r->limit != o->limit ||
             r->remaining != o->remaining || r->retry != o->retry) {
    v->field_errors++;
    what = "field mismatch";
  }
  if (what != NULL && !quiet &&
      v->over + v->false_denials + v->field_errors <= 5)
    fprintf(stderr,
            "%s: policy %u key %u now %lld: got allowed %u rem %llu retry "
            "%llu, oracle %d rem %llu retry %llu\n",
            what, r->policy, r->key, (long long)r->now, r->allowed,
            (unsigned long long)r->remaining, (unsigned long long)r->retry,
            o->admit, (unsigned long long)o->remaining,
            (unsigned long long)o->retry);
}

/* Merges the threads' logs and replays every key through the oracle.
 * quiet: do not print mismatches (the kill test expects some). */
static inline cl_verdict cl_check(cl_load *l, int quiet) {
  cl_verdict v;
  memset(&v, 0, sizeof v);
  size_t total = 0;
  for (int i = 0; i < l->threads; i++)
    total += l->w[i].n;
  cl_rec *all = calloc(total + 1, sizeof *all);
  size_t n = 0;
  for (int i = 0; i < l->threads; i++) {
    for (size_t j = 0; j < l->w[i].n; j++) {
      const cl_rec *r = &l->w[i].log[j];
      int64_t took = r->t1_ms - r->t0_ms;
      if (took > v.max_ms)
        v.max_ms = took;
      if (r->rc != RL_OK) {
        v.failed++;
        v.by_err[r->rc > 0 && r->rc < 64 ? r->rc : 63]++;
        if (r->t1_ms > v.last_fail_ms)
          v.last_fail_ms = r->t1_ms;
        continue;
      }
      all[n++] = *r;
    }
  }
  rl_policy pols[ACC_N_POLICIES];
  acc_policies(pols);
  qsort(all, n, sizeof *all, cl_by_key_then_order);
  for (size_t i = 0; i < n;) {
    om_key k;
    const cl_rec *first = &all[i];
    om_key_init(&k, &pols[first->policy]);
    for (; i < n && all[i].policy == first->policy && all[i].key == first->key;
         i++) {
      om_result exact, spec;
      om_key_decide(&k, all[i].now, 1, &exact, &spec);
      v.decisions++;
      v.admitted += all[i].allowed;
      cl_compare(&v, &all[i], &exact, quiet);
      if (all[i].allowed)
        om_key_commit(&k, all[i].now, 1);
    }
    om_key_free(&k);
  }
  free(all);
  return v;
}

static inline void cl_print(const char *what, const cl_verdict *v,
                            double seconds) {
  fprintf(stderr,
          "%s: %ld decisions (%.0f/s), %ld admitted, %ld failed, %ld "
          "over-limit, %ld false denials, %ld field mismatches, longest call "
          "%lld ms\n",
          what, v->decisions + v->failed,
          seconds > 0 ? (double)(v->decisions + v->failed) / seconds : 0.0,
          v->admitted, v->failed, v->over, v->false_denials, v->field_errors,
          (long long)v->max_ms);
  for (int e = 0; e < 64; e++)
    if (v->by_err[e] != 0)
      fprintf(stderr, "  %ld x %s\n", v->by_err[e], rl_err_name(e));
}

#endif /* RLT_CLUSTER_LOAD_H */
