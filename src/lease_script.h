/*
 * lease_script.h - the commands of lua/lease.lua and lua/lease_return.lua
 * and the lease reply, for the cache layer (cache.c).
 *
 * A command lives in one rl__lease_cmd: argv points into its own number
 * buffers and Redis key, so it is built and sent without allocating (and
 * must not be copied by value once built).
 */
#ifndef RL_LEASE_SCRIPT_H
#define RL_LEASE_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "ratelimiter.h"
#include "redis_keys.h"
#include "store.h"

#define RL__LEASE_KEY_MAX                                                      \
  (RL__REDIS_KEY_OVERHEAD + RL__REDIS_POLICY_PART_MAX + RL_CACHE_KEY_MAX)

typedef struct rl__lease_cmd {
  rl__script_cmd cmd;
  char key[RL__LEASE_KEY_MAX];
  char push_key[RL__LEASE_KEY_MAX + 1]; /* token bucket: "rlp" + key[2..] */
} rl__lease_cmd;

/* What lease.lua answers. */
typedef struct rl__lease_reply {
  rl_decision d;     /* all but source and policy */
  int64_t now_ms;    /* Redis' time of the decision */
  uint64_t granted;  /* units leased beyond the request's cost */
  uint64_t valid_ms; /* how long they may be spent, from now_ms */
} rl__lease_reply;

/* lease.lua for cost units of (p, key) plus up to want more, held at most
 * hold_ms; a token bucket's lease may push its TAT push_ms ahead (0: none;
 * lua/lease.lua). Errors of rl__redis_key(); the key must be at most
 * RL_CACHE_KEY_MAX bytes. */
int rl__lease_cmd_build(rl__lease_cmd *c, const rl__policy *p, const void *key,
                        size_t key_len, uint64_t want, uint64_t hold_ms,
                        uint64_t push_ms, uint64_t cost);

/* lease_return.lua giving back units of (p, key) leased at granted_at. */
int rl__lease_return_build(rl__lease_cmd *c, const rl__policy *p,
                           const void *key, size_t key_len, uint64_t units,
                           int64_t granted_at);

/* Turns a built lease command into the return of units granted at
 * granted_at for the same key and policy (not a token bucket's: those are
 * not returned, and their lease names a second key). */
void rl__lease_cmd_to_return(rl__lease_cmd *c, uint64_t units,
                             int64_t granted_at);

/* An rl__script_consume_fn filling an rl__lease_reply; RL_OK or
 * RL_ERR_BACKEND_UNAVAILABLE for a reply of the wrong shape. */
int rl__lease_reply_parse(const struct rl__redis_reply *r, void *out);

#endif /* RL_LEASE_SCRIPT_H */
