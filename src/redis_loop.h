/*
 * redis_loop.h - the library-owned event-loop thread of the Redis store.
 *
 * One thread runs one libevent event_base. Every socket, timer and reply
 * callback of the nodes attached to the loop runs on that thread. Other
 * threads talk to it in two ways only:
 *
 *   - rl__redis_loop_wake(): "this wakeable has work" (a connection whose
 *     submission queue is no longer empty). Lock-free: a flag per wakeable
 *     and an intrusive list, and at most one eventfd write pending for the
 *     whole loop however many threads submit.
 *   - rl__redis_loop_run(): run a function on the loop thread and wait for
 *     it (attaching or closing a node). Rare; uses a mutex and a condvar.
 *
 * A Redis Cluster router shares one loop between the nodes of all masters.
 */
#ifndef RL_REDIS_LOOP_H
#define RL_REDIS_LOOP_H

#include <stdatomic.h>
#include <stdint.h>

struct event_base;

typedef struct rl__redis_loop rl__redis_loop;

/* Something the loop calls back when woken: embed it in your object. */
typedef struct rl__wakeable {
  struct rl__wakeable *next;          /* loop's ready list; owned by the loop */
  atomic_int pending;                 /* 1 while queued on the ready list */
  void (*fn)(struct rl__wakeable *w); /* runs on the loop thread */
} rl__wakeable;

/* Creates the event base and starts the thread (all signals blocked in it,
 * so SIGPIPE from a dead socket cannot kill the process). Returns RL_OK,
 * RL_ERR_NO_MEMORY or RL_ERR_BACKEND_UNAVAILABLE (thread or eventfd). */
int rl__redis_loop_new(rl__redis_loop **out);

/* Stops the thread and frees the loop. Every node attached to it must have
 * been freed first. NULL is a no-op. */
void rl__redis_loop_free(rl__redis_loop *loop);

/* The event base, for creating events (only the loop thread may add or
 * delete them once the loop runs). */
struct event_base *rl__redis_loop_base(rl__redis_loop *loop);

/* Queues w->fn to run on the loop thread. Any thread; lock-free; coalesces:
 * a wakeable already queued is not queued twice. w->fn runs after
 * w->pending has been cleared, so work queued while it runs wakes it
 * again. */
void rl__redis_loop_wake(rl__redis_loop *loop, rl__wakeable *w);

/* Runs fn(arg) on the loop thread and returns once it has run. Runs it
 * directly when called on the loop thread or after the loop stopped. */
void rl__redis_loop_run(rl__redis_loop *loop, void (*fn)(void *), void *arg);

/* 1 when the caller is the loop thread. */
int rl__redis_loop_on_thread(const rl__redis_loop *loop);

/* 1 when the caller is the thread of any loop (so must never block). */
int rl__redis_loop_on_any_thread(void);

/* A pseudo-random 32-bit number for backoff jitter. Loop thread only. */
uint32_t rl__redis_loop_rand(rl__redis_loop *loop);

/* Monotonic clock in nanoseconds: the clock of every deadline. */
int64_t rl__mono_ns(void);

#endif /* RL_REDIS_LOOP_H */
