/*
 * guard.h - epoch-based reclamation (EBR): readers that take no shared lock
 * and write no shared cache line; writers that know when an object they
 * unlinked can be freed.
 *
 * Two users share one guard per limiter: the policy table (read by every
 * decision, replaced by rare reconfigurations, rl__guard_replace) and the
 * memory store (lock-free lookups; nodes and bucket tables unlinked by
 * eviction, purge and growth, see memory_store.c).
 *
 * Readers increment a counter in one of 64 per-thread-ish slots (each its
 * own cache line), under the parity of the epoch they read, re-check that
 * the epoch did not move, and decrement the counter when done. The epoch
 * advances from e to e + 1 only when no reader is registered under parity
 * (e + 1) & 1, that is no reader of epoch e - 1 is left. So while a reader
 * of epoch f is inside, the epoch stays <= f + 1.
 *
 * Reclamation rule. A writer unlinks an object (no reader that starts later
 * can reach it), then reads the epoch with rl__guard_retire_epoch(): e. The
 * object may be freed once the epoch is >= e + 2 (rl__guard_safe). Proof in
 * guard.c.
 */
#ifndef RL_GUARD_H
#define RL_GUARD_H

#include <stdatomic.h>
#include <stdint.h>

#define RL__GUARD_SLOTS 64

typedef struct rl__guard_slot {
  atomic_long count[2]; /* readers registered under parity 0 and 1 */
} __attribute__((aligned(64))) rl__guard_slot;

typedef struct rl__guard {
  _Atomic(void *) current;
  atomic_uint_fast64_t epoch;
  rl__guard_slot slots[RL__GUARD_SLOTS];
} rl__guard;

typedef struct rl__guard_token {
  atomic_long *counter;
} rl__guard_token;

void rl__guard_init(rl__guard *g, void *initial);

/* Starts a read-side section and returns the published pointer. Every
 * object reached inside the section (the published pointer, memory-store
 * nodes) stays allocated until rl__guard_exit(). Wait-free in practice
 * (retries only when the epoch moves between two loads). Sections must not
 * nest, and must not wait for an epoch (rl__guard_replace). */
void *rl__guard_enter(rl__guard *g, rl__guard_token *token);
void rl__guard_exit(rl__guard_token *token);

/* The epoch to tag an object with, to be called *after* unlinking it. It is
 * a read-modify-write of the epoch (adding 0), not a load: the unlinking
 * then happens before every reader that registers in a later epoch (see
 * guard.c). Not for the read path. */
uint64_t rl__guard_retire_epoch(rl__guard *g);

/* Advances the epoch by one if no reader of the epoch before the current one
 * is left; never waits. Any thread may call it at any time, inside a read
 * section or not; concurrent callers are safe (compare-and-swap). Returns
 * the epoch it saw last (acquire): an object tagged e with e + 2 <= that
 * value may be freed. */
uint64_t rl__guard_try_advance(rl__guard *g);

/* Whether an object tagged `tag` may be freed, given an epoch read with
 * acquire order (rl__guard_try_advance's result). */
static inline int rl__guard_safe(uint64_t tag, uint64_t epoch) {
  return epoch >= tag + 2;
}

/* Publishes `next` and returns the previous pointer once no reader can still
 * hold it (waits, yielding the CPU, while readers of older epochs finish).
 * Writers must be serialised by the caller; never call it inside a read
 * section (it would wait for itself). */
void *rl__guard_replace(rl__guard *g, void *next);

/* The published pointer, for the (serialised) writer side only. */
void *rl__guard_peek(rl__guard *g);

#endif /* RL_GUARD_H */
