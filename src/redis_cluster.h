/*
 * redis_cluster.h - the Redis Cluster router: one rl__redis_node per
 * master on one shared loop, each command routed by its key's slot.
 *
 * Topology comes from CLUSTER SLOTS, asked of the seeds first and of the
 * known masters after. The slot -> node map is published through a guard
 * (guard.h): submitters read it without a lock; only the loop thread
 * replaces it. Redirections and failures are handled on the loop thread,
 * inside the per-request deadline (docs/Redis.md, "Redis Cluster"):
 *
 *   MOVED        the slot now points at the named node; the command goes
 *                there; a refresh is scheduled (single-flight).
 *   ASK          ASKING + the command on the named node, pipelined on one
 *                connection; the map is not changed.
 *   TRYAGAIN     retried after a short backoff.
 *   CLUSTERDOWN, LOADING, a lost connection
 *                refresh scheduled, retried after a backoff.
 *   NOSCRIPT     (scripts flushed, or a new master that lost them) the
 *                node gets one SCRIPT LOAD round of every script, single-
 *                flight, and the commands that met NOSCRIPT wait for it and
 *                go again; a second NOSCRIPT reaches the caller (the Redis
 *                store then retries with EVAL).
 *   other errors and replies go to the caller unchanged.
 *
 * Every retry is bounded by the request's deadline (a retry that cannot
 * start before it is not made); redirections after the first one are
 * spaced by a growing delay, so a disagreement between two nodes never
 * turns into a hot loop. A command the node refused at once (its
 * connections are down) fails at once on the submitting thread, so that
 * callers see a dead master fast.
 *
 * Auto mode: a seed that answers CLUSTER SLOTS with an error (cluster
 * support disabled, or no permission) makes the router standalone: every
 * slot on that seed, no refresh; rl__redis_cluster_standalone() then
 * returns the node so that callers may skip the router.
 */
#ifndef RL_REDIS_CLUSTER_H
#define RL_REDIS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "redis_conn.h"

#define RL__CLUSTER_SLOTS 16384
#define RL__CLUSTER_MAX_ARGS 64 /* arguments of one routed command */

typedef struct rl__redis_cluster rl__redis_cluster;

typedef struct rl__redis_cluster_opts {
  const char *const *seeds; /* "host:port" or "[v6]:port"; borrowed */
  size_t n_seeds;           /* >= 1 */
  rl__redis_node_opts node; /* every node's options; host and port are
                             * ignored; strings are copied; scripts are
                             * borrowed and must outlive the router */
  int auto_detect;          /* 1: fall back to standalone (see above) */
  uint32_t refresh_ms;      /* periodic refresh; 0 = 1000 */
  uint32_t retire_ms;       /* a node that left the map is freed this long
                             * after (its in-flight commands still get
                             * their replies); 0 = 5000 */
} rl__redis_cluster_opts;

enum {
  RL__CLUSTER_MODE_UNKNOWN = 0,
  RL__CLUSTER_MODE_STANDALONE = 1,
  RL__CLUSTER_MODE_CLUSTER = 2
};

/* Counters (atomics; any thread). */
typedef struct rl__redis_cluster_stats {
  uint64_t moved;       /* MOVED replies */
  uint64_t ask;         /* ASK replies (each answered with ASKING) */
  uint64_t tryagain;    /* TRYAGAIN replies */
  uint64_t clusterdown; /* CLUSTERDOWN replies */
  uint64_t loading;     /* LOADING replies */
  uint64_t conn_errors; /* commands that lost their connection */
  uint64_t retries;     /* commands sent again (any reason) */
  uint64_t gave_up;     /* retries not made: the deadline was too near */
  uint64_t refreshes;   /* CLUSTER SLOTS replies applied */
  uint64_t refresh_failures;
  uint64_t map_changes; /* published maps that differ from the last */
  uint64_t nodes_created, nodes_freed;
  uint64_t noscript;     /* NOSCRIPT replies met by the router */
  uint64_t script_loads; /* SCRIPT LOAD rounds they caused (one per node
                          * at a time, all scripts) */
  unsigned masters;      /* nodes in the current map */
  int mode;              /* RL__CLUSTER_MODE_* */
} rl__redis_cluster_stats;

/* Creates the loop, a node per seed, and starts discovery. RL_OK,
 * RL_ERR_CONFIG_INVALID (bad seed address, bad node options),
 * RL_ERR_NO_MEMORY or RL_ERR_BACKEND_UNAVAILABLE; errbuf says why. */
int rl__redis_cluster_new(const rl__redis_cluster_opts *o,
                          rl__redis_cluster **out, char *errbuf, size_t errlen);

/* Fails what is in flight with RL_ERR_SHUTDOWN and frees everything. Not
 * from a callback. NULL is a no-op. */
void rl__redis_cluster_free(rl__redis_cluster *cl);

/* Routes a command by slot (rl__redis_slot of its key). The contract of
 * rl__redis_node_submit(): RL_OK means cb runs exactly once (loop thread).
 * The arguments are copied (at most RL__CLUSTER_MAX_ARGS). */
int rl__redis_cluster_submit(rl__redis_cluster *cl, unsigned slot,
                             const rl__redis_args *args, int64_t deadline_ns,
                             rl__redis_cb cb, void *ud, uint64_t tag);

/* Blocking form (rl__redis_node_call's contract). */
int rl__redis_cluster_call(rl__redis_cluster *cl, unsigned slot,
                           const rl__redis_args *args, int64_t deadline_ns,
                           rl__redis_consume_fn consume, void *out);

/* Waits until the mode is known and, in cluster mode, every slot has a
 * master with a ready connection. RL_OK, RL_ERR_TIMEOUT or
 * RL_ERR_BACKEND_UNAVAILABLE; errbuf says why. */
int rl__redis_cluster_wait_ready(rl__redis_cluster *cl, int64_t deadline_ns,
                                 char *errbuf, size_t errlen);

/* The seed node once auto mode found a standalone server, else NULL. */
rl__redis_node *rl__redis_cluster_standalone(rl__redis_cluster *cl);

/* The node of the first seed (alive as long as the router; in cluster
 * mode it may have left the map). */
rl__redis_node *rl__redis_cluster_seed(rl__redis_cluster *cl);

/* SHA1 of script i (the same on every node). */
const char *rl__redis_cluster_script_sha(const rl__redis_cluster *cl, size_t i);

/* Asks for an asynchronous refresh (single-flight). Any thread. */
void rl__redis_cluster_refresh(rl__redis_cluster *cl);

/* Calls fn for every current master's node, under the map's read guard
 * (fn must not block). Any thread. */
void rl__redis_cluster_for_each_master(rl__redis_cluster *cl,
                                       void (*fn)(rl__redis_node *n, void *ctx),
                                       void *ctx);

void rl__redis_cluster_stats_get(rl__redis_cluster *cl,
                                 rl__redis_cluster_stats *out);

/* Sums the connection counters of the current masters (connects counts
 * handshakes, i.e. script loads on connect); breaker_state is the worst of
 * their breakers'. Any thread. */
void rl__redis_cluster_node_stats_sum(rl__redis_cluster *cl,
                                      rl__redis_node_stats *out);

#endif /* RL_REDIS_CLUSTER_H */
