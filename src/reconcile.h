/*
 * reconcile.h - units admitted locally during an outage, waiting to be
 * added to Redis (reconcile.lua) once it answers again.
 *
 * One entry per Redis key: the units admitted since the last
 * reconciliation, the policy's windows (the script's arguments) and when
 * the last unit was admitted. Bounded: at most max_keys entries; units of
 * a key that finds the table full are dropped and counted. Thread-safe:
 * striped mutexes (the table is only touched on the fallback path, never
 * on a healthy decision).
 */
#ifndef RL_RECONCILE_H
#define RL_RECONCILE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "algorithm.h"

typedef struct rl__pending rl__pending;

/* One entry, detached from the table (rl__pending_take). */
typedef struct rl__pending_entry {
  struct rl__pending_entry *next;
  uint64_t hash;
  uint64_t units;
  int64_t last_ms; /* mono ms of the last admission */
  /* Set by the reconciler when it first sends the entry: the id that
   * makes a retry after a lost reply apply at most once. */
  uint64_t rc_id;
  int64_t first_sent_ms;
  rl__policy_shape shape;
  size_t key_len;
  char key[]; /* the Redis key */
} rl__pending_entry;

int rl__pending_new(size_t max_keys, rl__pending **out);
void rl__pending_free(rl__pending *p);

/* Adds units to key's entry (creating it). 1 if kept, 0 if dropped (table
 * full or out of memory; counted). */
int rl__pending_add(rl__pending *p, const char *key, size_t key_len,
                    const rl__policy_shape *shape, uint64_t units,
                    int64_t now_ms);

/* Detaches every entry: a list the caller owns (free each with free()). */
rl__pending_entry *rl__pending_take(rl__pending *p);

/* Puts an entry taken earlier back (merging with a newer one of the same
 * key); frees it. 0 if dropped (full; counted). */
int rl__pending_put_back(rl__pending *p, rl__pending_entry *e);

typedef struct rl__pending_stats {
  uint64_t keys, units;   /* waiting now */
  uint64_t dropped_units; /* table full or out of memory */
} rl__pending_stats;

void rl__pending_stats_get(rl__pending *p, rl__pending_stats *out);

#endif /* RL_RECONCILE_H */
