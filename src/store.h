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
} rl__store_ops;

/* Every store starts with this. */
struct rl__store {
  const rl__store_ops *ops;
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

#endif /* RL_STORE_H */
