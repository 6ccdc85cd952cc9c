/*
 * store.h - the interface between the limiter and a store of key state.
 *
 * limiter.c validates requests, finds the policy and owns the policy table;
 * a store decides. Two stores implement this vtable: the in-process memory
 * store (store_memory.c over memory_store.c) and Redis (redis_store.c). A
 * later fallback layer will wrap one in the other through the same calls.
 *
 * The policy table is read under the guard (guard.h). A store's decide
 * functions receive the caller's guard token and must end the read-side
 * section (rl__guard_exit) exactly once, as soon as they no longer need
 * the table: the memory store after deciding, Redis once the command is
 * formatted, so that a slow Redis never holds up rl_reconfigure().
 */
#ifndef RL_STORE_H
#define RL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "guard.h"
#include "policy_table.h"
#include "ratelimiter.h"

typedef struct rl__store rl__store;

/* One EVALSHA of an embedded script (lua_scripts.h) on one key, built by a
 * layer above the store (the cache's lease and return scripts). argv[0]
 * and argv[1] ("EVALSHA", the sha) are set by the store that sends it;
 * argv[2] is "1", argv[3] the Redis key. */
#define RL__SCRIPT_ARGS_MAX 48
typedef struct rl__script_cmd {
  size_t script; /* index into rl__scripts[] */
  int argc;
  const char *argv[RL__SCRIPT_ARGS_MAX];
  size_t lens[RL__SCRIPT_ARGS_MAX];
  char nums[RL__SCRIPT_ARGS_MAX][24];
} rl__script_cmd;

/* Runs on a script's reply (on the loop thread); its result is the call's.
 * The reply type is redis_conn.h's. */
struct rl__redis_reply;
typedef int (*rl__script_consume_fn)(const struct rl__redis_reply *reply,
                                     void *out);

/* One asynchronous script call (script_async). */
typedef struct rl__script_async {
  rl__script_cmd *cmd;
  rl__script_consume_fn consume;
  void *out;
  void (*done)(int err, void *ud);
  void *ud;
  /* the store's own */
  void *store;
  int64_t deadline_ns;
  int retried;
} rl__script_async;

typedef struct rl__store_ops {
  /* Decides req (already validated) under policy `index` of t. Fills out
   * except source and policy on RL_OK. Ends the guard section. */
  int (*decide)(rl__store *s, const rl__policy_table *t, size_t index,
                const rl_request *req, rl_decision *out,
                rl__guard_token *token);
  /* The same without blocking (rl_decide_async's contract). Ends the guard
   * section before any callback runs on the calling thread. */
  int (*decide_async)(rl__store *s, const rl__policy_table *t, size_t index,
                      const rl_request *req, rl_decision_cb cb, void *ud,
                      rl__guard_token *token);
  /* rl_wait_ready(). */
  int (*wait_ready)(rl__store *s, uint32_t timeout_ms, char *errbuf,
                    size_t errlen);
  /* RL_OK if config may replace the one the store was made with (only its
   * policies may differ); else RL_ERR_CONFIG_INVALID with a reason. */
  int (*check_live_change)(rl__store *s, const rl_config *config, char *errbuf,
                           size_t errlen);
  /* Forgets the state of the policy ids set in `retired` (a
   * RL__POLICY_IDS-bit set), after a reconfiguration. */
  void (*retire)(rl__store *s, const uint64_t *retired);
  void (*memory_stats)(rl__store *s, rl_memory_stats *out);
  void (*free)(rl__store *s);
  /* ---- cache layer (issue 5) ---- */
  /* Optional, NULL when no Redis is below: sends cmd the way decisions go
   * (one key, its node) and waits for the reply until the store's decision
   * timeout; consume's result is returned. A NOSCRIPT is retried once as
   * EVAL. */
  int (*script_call)(rl__store *s, rl__script_cmd *cmd,
                     rl__script_consume_fn consume, void *out);
  /* Optional: sends cmd without waiting; the reply is dropped. */
  int (*script_send)(rl__store *s, rl__script_cmd *cmd);
  /* Optional: the policy table changed (old is still valid during the
   * call, nothing decides on it any more). */
  void (*reconfigured)(rl__store *s, const rl__policy_table *old);
  /* Optional: script_call without waiting. op->done runs once, on the
   * loop thread, with consume's result or the error; op, its cmd and its
   * out belong to the caller until then. RL_OK if sent; any other result
   * means op->done will not run. */
  int (*script_async)(rl__store *s, struct rl__script_async *op);
} rl__store_ops;

struct rl__metrics;

/* Every store starts with this. */
struct rl__store {
  const rl__store_ops *ops;
  struct rl__metrics *metrics; /* set by the limiter after creation; the
                                * store feeds it (metrics.h), may be NULL */
};

/* The memory store for a checked config (its budget, stripes and clock).
 * RL_OK or RL_ERR_NO_MEMORY. */
int rl__store_memory_new(const rl_config *config, rl__guard *guard,
                         rl__store **out);

/* The Redis store for a checked config: starts connecting in the
 * background. RL_OK, RL_ERR_CONFIG_INVALID (unresolvable host, unusable
 * TLS files), RL_ERR_NO_MEMORY or RL_ERR_BACKEND_UNAVAILABLE (no loop
 * thread); errbuf (may be NULL) says why. */
int rl__store_redis_new(const rl_config *config, rl__store **out, char *errbuf,
                        size_t errlen);

/* The cache layer (cache.c) over inner for a checked config with
 * cache.enabled; it owns inner from then on (also on error). policies is
 * the limiter's guard of its policy table (for returning leases).
 * RL_OK or RL_ERR_NO_MEMORY. */
int rl__store_cache_new(const rl_config *config, rl__store *inner,
                        rl__guard *policies, rl__store **out);

#endif /* RL_STORE_H */
