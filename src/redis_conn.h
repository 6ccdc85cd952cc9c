/*
 * redis_conn.h - pipelined connections to one Redis server ("a node").
 *
 * The layer below the Redis store's Lua scripts. A node is pool_size
 * connections to one host:port, all served by one event-loop thread
 * (redis_loop.h) that it owns or shares. Any thread submits a command with
 * a callback and an absolute deadline; the loop writes everything queued
 * in as few write() calls as it can (automatic pipelining) and matches
 * replies in FIFO order. Before a connection carries traffic it runs its
 * handshake: AUTH, SELECT, then SCRIPT LOAD of the caller's scripts.
 *
 * A Redis Cluster router owns one node per master on one shared loop and
 * routes each command to the node of its slot; nodes can be created and
 * freed while the loop runs.
 *
 * Callback contract (as libuv's): when rl__redis_node_submit() returns an
 * error, the callback will never be called. When it returns RL_OK, the
 * callback is called exactly once, on the loop thread (or, during
 * rl__redis_node_free(), on the thread freeing the node), with one of:
 *   RL_OK                       reply != NULL (may be an ERROR reply)
 *   RL_ERR_TIMEOUT              the deadline passed first; a late reply is
 *                               parsed and dropped
 *   RL_ERR_BACKEND_UNAVAILABLE  the connection failed or was lost
 *   RL_ERR_SHUTDOWN             the node was freed first
 * The reply lives only for the callback. A callback may submit commands,
 * but must not free the node or the loop, and should be short: it runs on
 * the thread that serves every connection of the loop.
 *
 * Deadlines are absolute times of rl__mono_ns() (CLOCK_MONOTONIC, ns).
 */
#ifndef RL_REDIS_CONN_H
#define RL_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "redis_loop.h"
#include "redis_tls.h"
#include "resp.h"

#define RL__REDIS_ERRSTR_LEN 128
#define RL__REDIS_SHA_LEN 40 /* hex digits of a script's SHA1 */
#define RL__REDIS_MAX_SCRIPTS 64

typedef struct rl__redis_node rl__redis_node;

/* status: RL_OK, RL_ERR_TIMEOUT, RL_ERR_BACKEND_UNAVAILABLE or
 * RL_ERR_SHUTDOWN; reply: non-NULL only with RL_OK. ud and tag are the
 * caller's values from the submission, unchanged (a router can keep a slot
 * and an attempt count in tag). */
typedef void (*rl__redis_cb)(int status, const rl__redis_reply *reply, void *ud,
                             uint64_t tag);

/* Node options. Strings and arrays are borrowed by rl__redis_node_new(),
 * which copies what it keeps. */
typedef struct rl__redis_node_opts {
  const char *host;       /* IP literal or name (resolved once, at creation) */
  uint16_t port;          /* default 6379 */
  unsigned pool_size;     /* connections, 1..64; default 2 */
  unsigned queue_max;     /* requests per connection, queued + in flight
                           * (including timed-out ones whose reply has not
                           * arrived), 1..1048576; default 4096 */
  size_t max_out_bytes;   /* per connection: cap on unsent command bytes;
                           * default 64 MiB */
  size_t max_reply_bytes; /* cap on one parsed reply; default 64 MiB */
  uint32_t connect_timeout_ms; /* TCP + TLS + handshake; default 2000 */
  uint32_t stall_timeout_ms;   /* a connection whose oldest request is this
                                * long past its deadline without a reply is
                                * dropped and reconnected (a hung server or
                                * a silent network); 0 = never; default
                                * 5000 */
  uint32_t backoff_min_ms;     /* first reconnect delay; default 10 */
  uint32_t backoff_max_ms;     /* delay cap (doubling); default 1000 */
  const char *username;        /* ACL user; NULL = "AUTH password" form */
  const char *password;        /* NULL = no AUTH */
  int db;                      /* SELECT db when > 0 */
  const char *const *scripts;  /* Lua sources to SCRIPT LOAD on connect */
  const size_t *script_lens;   /* their lengths; NULL = strlen() */
  size_t n_scripts;            /* 0..RL__REDIS_MAX_SCRIPTS */
  rl__redis_tls_opts tls;
  /* Circuit breaker of the node (breaker.h): after this many consecutive
   * failures (refused submissions, timeouts, lost connections) it opens
   * and submissions fail at once with RL_ERR_BACKEND_UNAVAILABLE, except
   * one probe per breaker_probe_ms. 0 = no breaker (the default here; the
   * Redis store sets rl_config.fallback's values). */
  uint32_t breaker_threshold;
  uint32_t breaker_probe_ms; /* 0 = RL__BREAKER_PROBE_MS_DEFAULT */
} rl__redis_node_opts;

/* Counters, for tests, benchmarks and metrics; summed over connections. */
typedef struct rl__redis_node_stats {
  uint64_t commands;  /* commands written */
  uint64_t writes;    /* write()/SSL_write() calls that wrote bytes */
  uint64_t replies;   /* replies parsed (including dropped late ones) */
  uint64_t timeouts;  /* callbacks fired with RL_ERR_TIMEOUT */
  uint64_t connects;  /* handshakes completed */
  uint64_t conn_lost; /* connections failed or lost */
  uint64_t claimed;   /* blocking calls a caller sent and read itself */
  unsigned ready;     /* connections ready now */
  /* the node's circuit breaker (breaker.h) */
  int breaker_state;         /* enum rl__breaker_state */
  uint64_t breaker_opened;   /* times it opened */
  uint64_t breaker_closed;   /* times it closed again */
  uint64_t breaker_rejected; /* submissions refused while open */
} rl__redis_node_stats;

/* Fills defaults (host "127.0.0.1", port 6379, see the fields). */
void rl__redis_node_opts_init(rl__redis_node_opts *opts);

/* Creates a node and starts connecting in the background. loop: the loop
 * to share, or NULL for a private loop the node owns. Submissions may
 * start at once: they queue while the first connection is being made.
 * Returns RL_OK, RL_ERR_INVALID_ARGUMENT / RL_ERR_CONFIG_INVALID (bad
 * options, unresolvable host, unusable TLS files), RL_ERR_NO_MEMORY or
 * RL_ERR_BACKEND_UNAVAILABLE; on error a message is written to errbuf when
 * it is not NULL. */
int rl__redis_node_new(rl__redis_loop *loop, const rl__redis_node_opts *opts,
                       rl__redis_node **out, char *errbuf, size_t errlen);

/* Closes the connections, fails every request not yet answered with
 * RL_ERR_SHUTDOWN (each callback once), and frees the node (and its
 * private loop). No submission may be running or start afterwards; must
 * not be called from a callback. NULL is a no-op. */
void rl__redis_node_free(rl__redis_node *node);

/* Submits one command; any thread. The command bytes are copied. Returns
 * RL_OK (cb will be called exactly once), RL_ERR_INVALID_ARGUMENT,
 * RL_ERR_BACKEND_UNAVAILABLE at once when no connection accepts
 * traffic (down, handshake failed, queue full, byte cap reached; see
 * rl__redis_node_errstr()), or RL_ERR_SHUTDOWN. On error cb is never
 * called. Commands one thread submits to one node are written in
 * submission order while that thread's connection stays up. */
int rl__redis_node_submit(rl__redis_node *node, const rl__redis_args *args,
                          int64_t deadline_ns, rl__redis_cb cb, void *ud,
                          uint64_t tag);

/* As rl__redis_node_submit(), for a caller that enforces the deadline
 * itself (rl__redis_node_call): when the command goes out on an idle
 * connection straight from the calling thread, the loop is not woken; it
 * takes the request when the reply arrives. The loop therefore does not
 * time the request out until rl__redis_node_kick() is called: a caller
 * that gives up must kick. Saves a thread wakeup per blocking call. */
int rl__redis_node_submit_lazy(rl__redis_node *node, const rl__redis_args *args,
                               int64_t deadline_ns, rl__redis_cb cb, void *ud,
                               uint64_t tag);

/* As rl__redis_node_submit(), with "ASKING" written on the same
 * connection right before the command, in the same request (Redis Cluster
 * ASK redirection: ASKING applies to the next command of the connection).
 * The callback sees the command's reply; ASKING's own reply is dropped. */
int rl__redis_node_submit_asking(rl__redis_node *node,
                                 const rl__redis_args *args,
                                 int64_t deadline_ns, rl__redis_cb cb, void *ud,
                                 uint64_t tag);

/* Wakes the loop for every connection of the node, so that it takes (and
 * times out) requests submitted lazily. Any thread. */
void rl__redis_node_kick(rl__redis_node *node);

/* Runs in the loop thread on a successful reply of rl__redis_node_call();
 * copies what the caller needs into out. Its return value is the call's. */
typedef int (*rl__redis_consume_fn)(const rl__redis_reply *reply, void *out);

/* Blocking call for synchronous callers: submits and waits on the calling
 * thread's waiter (created on its first call, reused after). Returns by
 * the deadline even when the loop is stuck. Returns consume's result (or
 * RL_OK when consume is NULL) after a reply, else the submission error,
 * RL_ERR_TIMEOUT, RL_ERR_BACKEND_UNAVAILABLE or RL_ERR_SHUTDOWN. Once it
 * has returned, consume will never run for this call. Refused with
 * RL_ERR_INVALID_ARGUMENT on a loop thread (i.e. from a callback). */
/* The caller-read form of rl__redis_node_call (redis_conn.c, DESIGN):
 * when the calling thread's connection is idle, the caller sends and reads
 * on the socket itself. Returns 0 when it did not apply (nothing was sent:
 * make the usual call), else 1 with the call's result in *rc. */
int rl__redis_node_call_claimed(rl__redis_node *node,
                                const rl__redis_args *args, int64_t deadline_ns,
                                rl__redis_consume_fn consume, void *out,
                                int *rc);

int rl__redis_node_call(rl__redis_node *node, const rl__redis_args *args,
                        int64_t deadline_ns, rl__redis_consume_fn consume,
                        void *out);

/* A submission function of the rl__redis_node_submit() shape, for
 * rl__redis_call_via(): target is the node, router or backend. */
typedef int (*rl__redis_submit_fn)(void *target, const rl__redis_args *args,
                                   int64_t deadline_ns, rl__redis_cb cb,
                                   void *ud, uint64_t tag);

/* rl__redis_node_call() over any submission function (a cluster router's,
 * say). *abandoned is set to 1 when the call returned RL_ERR_TIMEOUT with
 * its request still owed a callback (a lazy submitter must then kick). */
int rl__redis_call_via(rl__redis_submit_fn submit, void *target,
                       const rl__redis_args *args, int64_t deadline_ns,
                       rl__redis_consume_fn consume, void *out, int *abandoned);

/* Releases the calling thread's waiter now instead of at thread exit.
 * Optional; for tools that check for leaks at exit. */
void rl__redis_thread_cleanup(void);

/* Waits until one connection is ready. Returns RL_OK, or
 * RL_ERR_BACKEND_UNAVAILABLE as soon as every connection is down (its last
 * attempt failed and it waits for its reconnect; errstr says why), or
 * RL_ERR_TIMEOUT. */
int rl__redis_node_wait_ready(rl__redis_node *node, int64_t deadline_ns);

/* Copies the last connection or handshake error ("" if none) into buf
 * (NUL-terminated, truncated to len). Returns buf. Any thread. */
char *rl__redis_node_errstr(rl__redis_node *node, char *buf, size_t len);

/* The SHA1 (40 lowercase hex digits, NUL-terminated) of script i, as
 * computed locally at creation; every handshake checks that SCRIPT LOAD
 * returned the same. Valid for the node's life; NULL if i is out of
 * range. */
const char *rl__redis_node_script_sha(const rl__redis_node *node, size_t i);

/* "host:port" of the node (for a router's MOVED matching and logs). */
const char *rl__redis_node_addr(const rl__redis_node *node);

void rl__redis_node_stats_get(rl__redis_node *node, rl__redis_node_stats *out);

/* 1 when the node's breaker is closed (or there is none): decisions go to
 * Redis as usual. Any thread. */
int rl__redis_node_healthy(rl__redis_node *node);

/* The breaker as the metrics gauge counts it (metrics.h): 0 closed,
 * 1 half-open, 2 open. Any thread. */
int rl__redis_node_breaker_gauge(rl__redis_node *node);

#endif /* RL_REDIS_CONN_H */
