/*
 * redis_backend.h - how the Redis store reaches Redis, whatever the mode:
 * "send this command for this key".
 *
 * Standalone: one node (redis_conn.h). Cluster and auto: the router
 * (redis_cluster.h), which routes by the slot of the key; in auto mode,
 * once the server turned out to be standalone, commands go straight to its
 * node, as in standalone mode. Other layers (a circuit breaker, lease
 * scripts) submit their script calls here and need not know the mode.
 *
 * Every function has the contract of its rl__redis_node_* counterpart.
 * `key` is the Redis key the command touches (its hash tag picks the
 * slot); all keys of one command must share that slot.
 */
#ifndef RL_REDIS_BACKEND_H
#define RL_REDIS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimiter.h"
#include "redis_cluster.h"
#include "redis_conn.h"

typedef struct rl__redis_backend rl__redis_backend;

/* Creates the node or the router for a checked config; scripts (borrowed,
 * must outlive the backend) are loaded on every connection. Errors as
 * rl__redis_node_new(), RL_ERR_CONFIG_INVALID for bad options. */
int rl__redis_backend_new(const rl_config *c, const char *const *scripts,
                          const size_t *lens, size_t n_scripts,
                          rl__redis_backend **out, char *errbuf, size_t errlen);

void rl__redis_backend_free(rl__redis_backend *b);

int rl__redis_backend_submit(rl__redis_backend *b, const char *key,
                             size_t key_len, const rl__redis_args *args,
                             int64_t deadline_ns, rl__redis_cb cb, void *ud,
                             uint64_t tag);

int rl__redis_backend_call(rl__redis_backend *b, const char *key,
                           size_t key_len, const rl__redis_args *args,
                           int64_t deadline_ns, rl__redis_consume_fn consume,
                           void *out);

/* rl_wait_ready(): RL_OK, RL_ERR_TIMEOUT or RL_ERR_BACKEND_UNAVAILABLE with
 * a message. */
int rl__redis_backend_wait_ready(rl__redis_backend *b, uint32_t timeout_ms,
                                 char *errbuf, size_t errlen);

/* SHA1 of script i. */
const char *rl__redis_backend_script_sha(const rl__redis_backend *b, size_t i);

/* Connection and breaker counters: the node's, or summed over the
 * cluster's masters (breaker_state: the worst one). Any thread. */
void rl__redis_backend_node_stats(rl__redis_backend *b,
                                  rl__redis_node_stats *out);

/* Calls fn for each node commands go to: the standalone node, or every
 * current cluster master (fn must not block). */
void rl__redis_backend_for_each_node(rl__redis_backend *b,
                                     void (*fn)(rl__redis_node *n, void *ctx),
                                     void *ctx);

/* 1 when no breaker is open (standalone: the node's; cluster: every
 * master's). */
int rl__redis_backend_healthy(rl__redis_backend *b);

/* A PING that serves as an open breaker's probe. Standalone only: in a
 * cluster, the decisions that reach a master probe its breaker (one per
 * probe interval), and this returns RL_OK at once. Blocking. */
int rl__redis_backend_probe(rl__redis_backend *b, int64_t deadline_ns);

/* The router (auto and cluster modes), else NULL: for stats and tests. */
rl__redis_cluster *rl__redis_backend_cluster(rl__redis_backend *b);

/* The node in standalone mode (or auto mode resolved standalone), else
 * NULL. */
rl__redis_node *rl__redis_backend_node(rl__redis_backend *b);

#endif /* RL_REDIS_BACKEND_H */
