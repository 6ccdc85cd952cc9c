/*
 * redis_store.h - the Redis store: decisions as EVALSHA of the embedded Lua
 * scripts over the pipelined connection layer (redis_conn.h).
 *
 * The public entry points are the store interface (store.h:
 * rl__store_redis_new) and rl_config_check() (rl__redis_config_check). The
 * rest is here for the store's own tests and benchmarks: the command a
 * decision sends, counters, and a test hook for Redis' clock.
 */
#ifndef RL_REDIS_STORE_H
#define RL_REDIS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "ratelimiter.h"
#include "redis_conn.h"
#include "store.h"

#define RL__REDIS_HOST_MAX 256

/* EVALSHA sha 1 key cost n_windows, then 4 values per window. */
#define RL__REDIS_CMD_NUMS (2 + 4 * RL_MAX_WINDOWS)
#define RL__REDIS_CMD_ARGS (4 + RL__REDIS_CMD_NUMS)

/* One decision's command. argv points into nums and into the key buffer
 * the builder was given; nothing is allocated. */
typedef struct rl__redis_cmd {
  int argc;
  const char *argv[RL__REDIS_CMD_ARGS];
  size_t lens[RL__REDIS_CMD_ARGS];
  char nums[RL__REDIS_CMD_NUMS][24];
} rl__redis_cmd;

/* Parses "host:port" or "[v6]:port" (port 1..65535, host not empty and
 * shorter than host_cap). RL_OK or RL_ERR_CONFIG_INVALID. */
int rl__redis_addr_parse(const char *addr, char *host, size_t host_cap,
                         uint16_t *port);

/* The Redis part of rl_config_check() (config.c calls it for
 * store = RL_STORE_REDIS, after the policies checked clean). */
int rl__redis_config_check(const rl_config *c, char *errbuf, size_t errlen);

/* Builds `EVALSHA sha 1 <key> <cost> <n> (<limit> <duration_ms> <burst>
 * <log_slots>) x n` for policy p into cmd, the Redis key (docs/Redis.md)
 * into keybuf (RL__REDIS_KEY_MAX bytes always fit). Errors of
 * rl__redis_key(). */
int rl__redis_cmd_build(rl__redis_cmd *cmd, const char *sha,
                        const rl__policy *p, const void *key, size_t key_len,
                        uint64_t cost, char *keybuf, size_t keycap);

/* The script (index into rl__scripts[]) of an algorithm. */
size_t rl__redis_script_index(rl_algorithm alg);

/* Counters of one Redis store, for tests and metrics. */
typedef struct rl__redis_store_stats {
  uint64_t decisions;      /* decisions sent to Redis (sync + async) */
  uint64_t noscript;       /* NOSCRIPT replies to an EVALSHA */
  uint64_t script_retries; /* EVAL retries after a NOSCRIPT (one each) */
  uint64_t error_replies;  /* other Redis error replies, bad replies */
  uint64_t timeouts;       /* decisions that ended with RL_ERR_TIMEOUT */
  char last_error[RL__REDIS_ERRSTR_LEN]; /* last error reply, "" if none */
} rl__redis_store_stats;

/* The store of a limiter (any store type). */
/* Writes v in decimal into buf (at least 21 bytes, NUL-terminated);
 * returns the length. Shared by every script command builder. */
size_t rl__put_u64(char *buf, uint64_t v);

rl__store *rl__limiter_store(rl_limiter *rl);
/* The fallback layer (fallback.h) of a Redis limiter, wherever it sits in
 * the chain of stores (below the cache), else NULL. */
rl__store *rl__limiter_fallback(rl_limiter *rl);
/* Calls fn for each Redis node of a Redis store s (redis_backend.h). */
struct rl__redis_node;
void rl__redis_store_for_each_node(
    rl__store *s, void (*fn)(struct rl__redis_node *n, void *ctx), void *ctx);
/* Updates the gauges that are read, not counted (breaker state). */
void rl__limiter_refresh_gauges(rl_limiter *rl);

/* The backend of a Redis store (the node or cluster router its commands
 * go through), for layers that send their own scripts, and for tests;
 * NULL if s is not a Redis store. */
struct rl__redis_backend *rl__redis_store_backend(rl__store *s);

/* Fills out; RL_ERR_INVALID_ARGUMENT if s is not a Redis store. */
int rl__redis_store_stats_get(rl__store *s, rl__redis_store_stats *out);

/* Test hook: Redis' now_ms (the script's TIME) of the calling thread's last
 * successful synchronous Redis decision, or, inside an asynchronous
 * decision's callback, of that decision; -1 before the first. */
int64_t rl__redis_last_now_ms(void);
/* The same for a decision made by another script (the cache's lease.lua). */
void rl__redis_note_now_ms(int64_t now_ms);

/* ---- for the fallback store (fallback.h) ---- */

/* The store's node counters, breaker included (s: a Redis store). */
void rl__redis_store_node_stats(rl__store *s, rl__redis_node_stats *out);

/* 1 when a connection is ready. The breaker may still be open: a call then
 * is its probe, or is refused at once. */
int rl__redis_store_connected(rl__store *s);

/* 1 when the node's breaker is closed: decisions go to Redis. */
int rl__redis_store_healthy(rl__store *s);

/* A PING through the node's breaker (blocking, the decision deadline):
 * while the breaker is open it is refused at once unless a probe is due,
 * and then its reply closes the breaker. RL_OK or the call's error. */
int rl__redis_store_probe(rl__store *s);

/* reconcile.lua refused its arguments: the units were not added. */
#define RL__REDIS_ERROR_REPLY (-2)

/* Adds units admitted elsewhere to the Redis key `key` (reconcile.lua),
 * age_ms after the last of them. id (RL__REDIS_RC_ID_LEN characters,
 * NUL-terminated, unique per reconciliation) makes it idempotent: Redis
 * applies one id at most once (a marker key next to `key`, kept 10
 * minutes), so a call whose reply was lost may be sent again with the
 * same id and units. One caller at a time (the reconciler thread).
 * Returns RL_OK (added now or already), RL_ERR_BACKEND_UNAVAILABLE when
 * it was refused before anything was sent or Redis refused to run the
 * script (OOM, BUSY...), RL_ERR_TIMEOUT, RL_ERR_SHUTDOWN or RL__REDIS_LOST
 * when it went out and no reply came (maybe added), or
 * RL__REDIS_ERROR_REPLY when the script refused its arguments. */
#define RL__REDIS_LOST (-3)
#define RL__REDIS_RC_ID_LEN 32
int rl__redis_store_reconcile(rl__store *s, const char *key, size_t key_len,
                              const char *id, const rl__policy_shape *shape,
                              uint64_t units, uint64_t age_ms);

#endif /* RL_REDIS_STORE_H */
