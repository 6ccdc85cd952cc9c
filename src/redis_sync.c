/*
 * redis_sync.c - the blocking call for synchronous callers
 * (rl__redis_node_call, see redis_conn.h).
 *
 * Each calling thread gets one waiter (mutex + condvar on CLOCK_MONOTONIC),
 * created on its first call and reused by every later call, so a call
 * allocates nothing. The caller waits with a timeout, so it returns by its
 * deadline even if the loop thread is stuck.
 *
 * A call that times out on the caller's side leaves its request behind;
 * its callback still comes later. Two things make that safe:
 *   - generations: each call bumps waiter->gen and submits with tag = gen;
 *     the callback acts only if its tag is the current generation and the
 *     call is still waiting, so a late reply never touches a later call's
 *     output, and consume never runs after the call returned;
 *   - a reference count: the thread holds one reference and every
 *     submitted request one more, so a thread that exits while a callback
 *     is owed leaves the waiter alive until that callback has run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "ratelimiter.h"
#include "redis_conn.h"

typedef struct rl__waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_uint refs; /* thread + requests whose callback is owed */
  uint64_t gen;     /* generation of the call in progress (under mu) */
  int waiting;      /* the current call still waits (under mu) */
  int result;       /* its result, once waiting is 0 */
  rl__redis_consume_fn consume;
  void *out;
} rl__waiter;

static pthread_key_t waiter_key;
static pthread_once_t waiter_once = PTHREAD_ONCE_INIT;
static _Thread_local rl__waiter *thread_waiter;

static void waiter_unref(rl__waiter *w) {
  if (atomic_fetch_sub(&w->refs, 1) != 1)
    return;
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

static void waiter_thread_exit(void *arg) {
  waiter_unref(arg);
}

static void make_key(void) {
  pthread_key_create(&waiter_key, waiter_thread_exit);
}

/* The calling thread's waiter; NULL when out of memory. */
static rl__waiter *get_waiter(void) {
  if (thread_waiter != NULL)
    return thread_waiter;
  pthread_once(&waiter_once, make_key);
  rl__waiter *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return NULL;
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&w->refs, 1);
  pthread_setspecific(waiter_key, w);
  thread_waiter = w;
  return w;
}

void rl__redis_thread_cleanup(void) {
  rl__waiter *w = thread_waiter;
  if (w == NULL)
    return;
  pthread_setspecific(waiter_key, NULL);
  thread_waiter = NULL;
  waiter_unref(w);
}

static void sync_cb(int status, const rl__redis_reply *reply, void *ud,
                    uint64_t tag) {
  rl__waiter *w = ud;
  pthread_mutex_lock(&w->mu);
  if (w->waiting && w->gen == tag) {
    if (status == RL_OK && w->consume != NULL)
      status = w->consume(reply, w->out);
    w->result = status;
    w->waiting = 0;
    pthread_cond_signal(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  waiter_unref(w);
}

/* Waits for the callback or the deadline; w->mu is held. */
static int wait_result(rl__waiter *w, int64_t deadline_ns) {
  struct timespec ts = {(time_t)(deadline_ns / 1000000000),
                        (long)(deadline_ns % 1000000000)};
  while (w->waiting) {
    if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT &&
        w->waiting) {
      w->waiting = 0; /* abandoned: the late callback will see that */
      return RL_ERR_TIMEOUT;
    }
  }
  return w->result;
}

int rl__redis_call_via(rl__redis_submit_fn submit, void *target,
                       const rl__redis_args *args, int64_t deadline_ns,
                       rl__redis_consume_fn consume, void *out,
                       int *abandoned) {
  *abandoned = 0;
  if (rl__redis_loop_on_any_thread())
    return RL_ERR_INVALID_ARGUMENT; /* would stall the loop it waits for */
  rl__waiter *w = get_waiter();
  if (w == NULL)
    return RL_ERR_NO_MEMORY;
  pthread_mutex_lock(&w->mu);
  uint64_t gen = ++w->gen;
  w->waiting = 1;
  w->consume = consume;
  w->out = out;
  pthread_mutex_unlock(&w->mu);
  atomic_fetch_add(&w->refs, 1);
  int rc = submit(target, args, deadline_ns, sync_cb, w, gen);
  if (rc != RL_OK) /* no callback will come; the thread's ref remains */
    atomic_fetch_sub(&w->refs, 1);
  int submitted = rc == RL_OK;
  pthread_mutex_lock(&w->mu);
  if (submitted)
    rc = wait_result(w, deadline_ns);
  w->waiting = 0;
  pthread_mutex_unlock(&w->mu);
  *abandoned = submitted && rc == RL_ERR_TIMEOUT;
  return rc;
}

static int submit_node_lazy(void *target, const rl__redis_args *args,
                            int64_t deadline_ns, rl__redis_cb cb, void *ud,
                            uint64_t tag) {
  return rl__redis_node_submit_lazy(target, args, deadline_ns, cb, ud, tag);
}

int rl__redis_node_call(rl__redis_node *node, const rl__redis_args *args,
                        int64_t deadline_ns, rl__redis_consume_fn consume,
                        void *out) {
  int rc;
  /* The waiter is made on a thread's first call even when that call is
   * claimed, so that a later unclaimed one does not allocate. */
  if (get_waiter() == NULL)
    return RL_ERR_NO_MEMORY;
  if (rl__redis_node_call_claimed(node, args, deadline_ns, consume, out, &rc))
    return rc;
  int abandoned = 0;
  rc = rl__redis_call_via(submit_node_lazy, node, args, deadline_ns, consume,
                          out, &abandoned);
  if (abandoned)
    rl__redis_node_kick(node); /* the loop may not know the request yet */
  return rc;
}
