/*
 * redis_cluster.h - test harness: a real Redis Cluster (masters, each with
 * replicas) of redis-server processes on free 127.0.0.1 ports.
 *
 * Every node is an rlt_redis (redis_server.h: own directory, stopped by
 * PID, killed with the test process) started with cluster-enabled and a
 * short cluster-node-timeout, so that a failover takes about two seconds.
 * `redis-cli --cluster create` assigns the slots and the replicas; start
 * returns once every node reports cluster_state:ok and agrees on the
 * slots. Admin commands go through redis-cli (rlt_cluster_cli).
 *
 * cluster-require-full-coverage is off: while a dead master's replica is
 * being promoted only that master's slots are down, as in a production
 * setup that prefers partial availability.
 */
#ifndef RLT_REDIS_CLUSTER_H
#define RLT_REDIS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "harness/redis_server.h"

#define RLT_CLUSTER_MAX 8

typedef struct rlt_cluster {
  int n; /* nodes */
  rlt_redis node[RLT_CLUSTER_MAX];
  char addr_text[RLT_CLUSTER_MAX][32]; /* "127.0.0.1:<port>" */
  const char *addrs[RLT_CLUSTER_MAX];
} rlt_cluster;

/* Starts masters * (1 + replicas) nodes and creates the cluster. 0 or -1
 * (message on stderr). */
int rlt_cluster_start(rlt_cluster *c, int masters, int replicas,
                      int node_timeout_ms);
/* Stops every node (by PID) and removes their directories. */
void rlt_cluster_stop(rlt_cluster *c);

/* Runs redis-cli against node i with the given arguments (NULL-ended);
 * copies its stdout (truncated) into out. Returns its exit status (0 ok)
 * or -1. */
int rlt_cluster_cli(rlt_cluster *c, int i, char *out, size_t outlen, ...);

/* Waits until every running node says cluster_state:ok and sees every
 * slot served by a reachable master. 0 or -1 on timeout. */
int rlt_cluster_wait_ok(rlt_cluster *c, int64_t timeout_ms);

/* 1 if node i is running and a master (ROLE), else 0. */
int rlt_cluster_is_master(rlt_cluster *c, int i);
/* The running master that owns slot, per node `ask` (or any running node
 * when ask < 0); -1 if none. */
int rlt_cluster_slot_owner(rlt_cluster *c, unsigned slot, int ask);
/* A running replica of master m, or -1. */
int rlt_cluster_replica_of(rlt_cluster *c, int m);
/* Node i's cluster id (40 hex digits) into id[41]. 0 or -1. */
int rlt_cluster_node_id(rlt_cluster *c, int i, char *id);
/* The index of the node with a port, or -1. */
int rlt_cluster_by_port(rlt_cluster *c, unsigned port);

/* Slot migration by hand (the steps of redis-cli --cluster reshard):
 * begin = SETSLOT IMPORTING on `to`, MIGRATING on `from`; keys = MIGRATE
 * of every key of the slot; end = SETSLOT NODE on to, from and the other
 * masters. Each 0 or -1. */
int rlt_cluster_migrate_begin(rlt_cluster *c, unsigned slot, int from, int to);
int rlt_cluster_migrate_keys(rlt_cluster *c, unsigned slot, int from, int to);
int rlt_cluster_migrate_end(rlt_cluster *c, unsigned slot, int from, int to);

#endif /* RLT_REDIS_CLUSTER_H */
