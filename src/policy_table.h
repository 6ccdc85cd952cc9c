/*
 * policy_table.h - the set of policies a limiter serves, as one immutable
 * object that a reconfiguration replaces whole.
 *
 * Each policy carries a store id: the memory store keys state by (id, key
 * bytes). An id always means one state layout. A reconfiguration keeps the
 * id (and so every key's state) of a policy whose name stays and whose
 * state layout is compatible; any other policy gets a fresh id, and the ids
 * that no policy uses any more are retired: their keys are purged before
 * the id is handed out again.
 */
#ifndef RL_POLICY_TABLE_H
#define RL_POLICY_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define RL__POLICY_IDS 65536 /* ids are uint16_t */

/* Which ids are taken (by a live policy or by keys not yet purged). */
typedef struct rl__id_pool {
  uint64_t used[RL__POLICY_IDS / 64];
} rl__id_pool;

typedef struct rl__policy_table {
  size_t n;
  size_t max_key_len;
  rl__policy *policies;   /* n; the first is the default */
  uint16_t *ids;          /* n; store id of each policy */
  uint16_t *metric_slots; /* n; rl__metrics slot of each policy (metrics.h),
                           * set by the limiter before publishing */
  uint16_t *slots;        /* name hash index: policy index + 1, 0 = empty */
  size_t slot_mask;
  uint64_t serial; /* unique per table made by this process (the cache
                      layer tells which table an entry was made under) */
} rl__policy_table;

/* Builds the table for a checked config. Policies whose name exists in prev
 * (may be NULL) with a compatible state layout keep their id; the others
 * take fresh ids from pool. RL_ERR_NO_MEMORY leaves pool unchanged. */
int rl__policy_table_new(const rl_config *c, const rl__policy_table *prev,
                         rl__id_pool *pool, rl__policy_table **out);
void rl__policy_table_free(rl__policy_table *t);

/* Index of the policy named name[0..len), or RL_ERR_POLICY_UNKNOWN. */
int rl__policy_table_find(const rl__policy_table *t, const char *name,
                          size_t len, size_t *index);

/* Marks in `retired` (a RL__POLICY_IDS-bit set) every id of old that next
 * does not use; returns how many. */
size_t rl__policy_table_retired(const rl__policy_table *old,
                                const rl__policy_table *next,
                                uint64_t *retired);

/* Gives the ids in `retired` back to the pool. */
void rl__id_pool_release(rl__id_pool *pool, const uint64_t *retired);

/* Same state layout: the same algorithm, windows of the same durations and
 * log slots, and for the token bucket the same limits (its state counts in
 * 1/limit ms). */
int rl__policy_state_compatible(const rl__policy *a, const rl__policy *b);

#endif /* RL_POLICY_TABLE_H */
