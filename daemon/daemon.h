/*
 * daemon.h - the state ratelimitd shares between its threads.
 *
 * Threads: one control thread (main: signals, config file watch, reload,
 * shutdown) and N HTTP workers, each with its own event loop, listening
 * socket (SO_REUSEPORT) and counters. Workers read the published snapshot
 * and decide through the one shared rl_limiter; only the control thread
 * writes anything shared.
 */
#ifndef RLD_DAEMON_H
#define RLD_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <ratelimiter.h>

#include "json_request.h"
#include "mailbox.h"
#include "metrics.h"
#include "snapshot.h"

struct rld_worker;
struct rld_pending;
struct evhttp_request;

typedef struct rld_daemon {
  rl_limiter *rl;
  rld_published published;
  rld_metrics metrics;
  struct rld_tracer *tracer; /* NULL: tracing off (trace.h) */
  atomic_int draining;       /* SIGTERM received: /ready says no */
  int decide_async;          /* the Redis store: rl_decide_async (cached denials
                              * and lease hits answer inline) */
  size_t n_workers;
  size_t n_started; /* worker threads running */
  struct rld_worker *workers;
  uint16_t port;     /* the port actually bound */
  uint64_t grace_ms; /* of the shutdown in progress */
} rld_daemon;

/* One HTTP worker thread. */
typedef struct rld_worker {
  rld_daemon *d;
  size_t id;
  pthread_t thread;
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *bound;
  int wake_fd;        /* eventfd: control thread -> worker */
  struct event *wake; /* reads wake_fd: refresh the snapshot or drain */
  struct event *drain_timer;
  int fd;             /* listening socket */
  rld_snapshot *snap; /* the snapshot this worker holds a reference to */
  rld_counters *counters;
  unsigned inflight; /* replies handed to evhttp, not yet written */
  int draining;      /* worker side of d->draining */
  uint64_t drain_deadline_ms;
  uint64_t last_request_ms;          /* monotonic, while draining */
  rld_mailbox mailbox;               /* asynchronous decisions coming back */
  struct rld_pending *pending_slots; /* RLD_PENDING_MAX, allocated once */
  struct rld_pending *free_pending;
  char scratch[RLD_JSON_SCRATCH]; /* decoded strings of one request */
  char key[RL_KEY_MAX];           /* key built for one request */
} rld_worker;

/* Asynchronous decisions a worker may have waiting on Redis; past that a
 * request is decided synchronously (back-pressure, no allocation). */
#define RLD_PENDING_MAX 2048

/* The HTTP API: the evhttp callback, with the worker as its argument. */
void rld_api_handle(struct evhttp_request *req, void *worker);
/* The worker's part of asynchronous decisions (its mailbox and pending
 * slots), on its base. 0 or -1 (out of memory). */
int rld_api_worker_init(struct rld_worker *w);
/* Only once rld_mailbox_idle(&w->mailbox). */
void rld_api_worker_close(struct rld_worker *w);

#endif /* RLD_DAEMON_H */
