/*
 * redis_loop.c - the event-loop thread (see redis_loop.h).
 *
 * Wakeups: a submitter that finds its wakeable idle (pending 0 -> 1) pushes
 * it on an intrusive lock-free stack (push only; the loop takes the whole
 * stack at once, so there is no ABA), then rings the doorbell: an eventfd
 * write, done only when `armed` goes 0 -> 1. The loop clears `armed` before
 * taking the stack, so a push that saw armed == 1 is always picked up by
 * the pass in progress or by the next one.
 */
#include "redis_loop.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ratelimiter.h"

/* A function to run on the loop thread; lives on the caller's stack. */
typedef struct rl__job {
  struct rl__job *next;
  void (*fn)(void *);
  void *arg;
  int done;
} rl__job;

struct rl__redis_loop {
  struct event_base *base;
  struct event *doorbell_ev;
  int efd;                       /* eventfd: the doorbell */
  atomic_int armed;              /* 1 while a doorbell ring is pending */
  _Atomic(rl__wakeable *) ready; /* stack of woken wakeables */
  pthread_t thread;
  atomic_int running; /* 1 from start until the thread leaves the loop */
  pthread_mutex_t mu; /* jobs */
  pthread_cond_t cv;
  rl__job *jobs;
  int stop;     /* set by the stop job */
  uint64_t rng; /* xorshift state, loop thread only */
};

static _Thread_local int on_loop_thread;

int64_t rl__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void ring(rl__redis_loop *loop) {
  if (atomic_exchange(&loop->armed, 1) == 0) {
    uint64_t one = 1;
    ssize_t n = write(loop->efd, &one, sizeof(one));
    (void)n; /* EAGAIN means the counter is already non-zero: awake */
  }
}

void rl__redis_loop_wake(rl__redis_loop *loop, rl__wakeable *w) {
  if (atomic_exchange(&w->pending, 1) != 0)
    return;
  rl__wakeable *head = atomic_load(&loop->ready);
  do
    w->next = head;
  while (!atomic_compare_exchange_weak(&loop->ready, &head, w));
  ring(loop);
}

/* Takes the ready stack, restores submission order, runs each wakeable. */
static void run_ready(rl__redis_loop *loop) {
  rl__wakeable *w = atomic_exchange(&loop->ready, NULL), *fifo = NULL;
  while (w != NULL) {
    rl__wakeable *next = w->next;
    w->next = fifo;
    fifo = w;
    w = next;
  }
  for (w = fifo; w != NULL; w = fifo) {
    fifo = w->next;
    atomic_store(&w->pending, 0);
    w->fn(w);
  }
}

static void run_jobs(rl__redis_loop *loop) {
  pthread_mutex_lock(&loop->mu);
  rl__job *jobs = loop->jobs;
  loop->jobs = NULL;
  pthread_mutex_unlock(&loop->mu);
  for (rl__job *j = jobs, *next; j != NULL; j = next) {
    next = j->next; /* j dies once done is seen */
    j->fn(j->arg);
    run_ready(loop); /* nothing may still point into what fn released */
    pthread_mutex_lock(&loop->mu);
    j->done = 1;
    pthread_cond_broadcast(&loop->cv);
    pthread_mutex_unlock(&loop->mu);
  }
}

static void on_doorbell(evutil_socket_t fd, short what, void *arg) {
  rl__redis_loop *loop = arg;
  uint64_t v;
  (void)what;
  ssize_t n = read(fd, &v, sizeof(v));
  (void)n;
  atomic_store(&loop->armed, 0);
  run_jobs(loop);
  run_ready(loop);
  if (loop->stop)
    event_base_loopbreak(loop->base);
}

static void *loop_main(void *arg) {
  rl__redis_loop *loop = arg;
  on_loop_thread = 1;
  event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
  pthread_mutex_lock(&loop->mu); /* ordered against rl__redis_loop_run() */
  atomic_store(&loop->running, 0);
  pthread_mutex_unlock(&loop->mu);
  run_jobs(loop); /* none may be left waiting */
  return NULL;
}

static int start_thread(rl__redis_loop *loop) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited by the thread */
  atomic_store(&loop->running, 1);
  int rc = pthread_create(&loop->thread, NULL, loop_main, loop);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    atomic_store(&loop->running, 0);
    return RL_ERR_BACKEND_UNAVAILABLE;
  }
  return RL_OK;
}

static int loop_init(rl__redis_loop *loop) {
  struct event_config *cfg = event_config_new();
  if (cfg == NULL)
    return RL_ERR_NO_MEMORY;
  /* No EVENT_BASE_FLAG_PRECISE_TIMER: it costs a timerfd_settime() per
   * dispatch; epoll's millisecond timeouts (rounded up) are enough. */
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  loop->base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (loop->base == NULL)
    return RL_ERR_NO_MEMORY;
  loop->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->efd < 0)
    return RL_ERR_BACKEND_UNAVAILABLE;
  loop->doorbell_ev =
      event_new(loop->base, loop->efd, EV_READ | EV_PERSIST, on_doorbell, loop);
  if (loop->doorbell_ev == NULL || event_add(loop->doorbell_ev, NULL) != 0)
    return RL_ERR_NO_MEMORY;
  return start_thread(loop);
}

static void loop_destroy(rl__redis_loop *loop) {
  if (loop->doorbell_ev != NULL)
    event_free(loop->doorbell_ev);
  if (loop->efd >= 0)
    close(loop->efd);
  if (loop->base != NULL)
    event_base_free(loop->base);
  pthread_cond_destroy(&loop->cv);
  pthread_mutex_destroy(&loop->mu);
  free(loop);
}

int rl__redis_loop_new(rl__redis_loop **out) {
  rl__redis_loop *loop = calloc(1, sizeof(*loop));
  if (loop == NULL)
    return RL_ERR_NO_MEMORY;
  loop->efd = -1;
  loop->rng = (uint64_t)rl__mono_ns() ^ ((uint64_t)getpid() << 32) ^
              (uint64_t)(uintptr_t)loop;
  if (loop->rng == 0)
    loop->rng = 1;
  pthread_mutex_init(&loop->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&loop->cv, &ca);
  pthread_condattr_destroy(&ca);
  int rc = loop_init(loop);
  if (rc != RL_OK) {
    loop_destroy(loop);
    return rc;
  }
  *out = loop;
  return RL_OK;
}

static void stop_job(void *arg) {
  ((rl__redis_loop *)arg)->stop = 1;
}

void rl__redis_loop_free(rl__redis_loop *loop) {
  if (loop == NULL)
    return;
  rl__redis_loop_run(loop, stop_job, loop);
  pthread_join(loop->thread, NULL);
  loop_destroy(loop);
}

struct event_base *rl__redis_loop_base(rl__redis_loop *loop) {
  return loop->base;
}

int rl__redis_loop_on_thread(const rl__redis_loop *loop) {
  return atomic_load(&loop->running) &&
         pthread_equal(pthread_self(), loop->thread);
}

int rl__redis_loop_on_any_thread(void) {
  return on_loop_thread;
}

void rl__redis_loop_run(rl__redis_loop *loop, void (*fn)(void *), void *arg) {
  rl__job job = {NULL, fn, arg, 0};
  pthread_mutex_lock(&loop->mu);
  if (!atomic_load(&loop->running) ||
      pthread_equal(pthread_self(), loop->thread)) {
    pthread_mutex_unlock(&loop->mu);
    fn(arg);
    return;
  }
  job.next = loop->jobs;
  /* cppcheck-suppress autoVariables ; we wait below until it has run */
  loop->jobs = &job;
  pthread_mutex_unlock(&loop->mu);
  ring(loop);
  pthread_mutex_lock(&loop->mu);
  while (!job.done)
    pthread_cond_wait(&loop->cv, &loop->mu);
  pthread_mutex_unlock(&loop->mu);
}

uint32_t rl__redis_loop_rand(rl__redis_loop *loop) {
  uint64_t x = loop->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  loop->rng = x;
  return (uint32_t)(x >> 32);
}
