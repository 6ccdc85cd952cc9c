/*
 * guard.h - read-mostly publication of a pointer with safe reclamation.
 *
 * The policy table is read by every decision and replaced by rare
 * reconfigurations. Readers must not take a shared lock or write a shared
 * cache line; a writer must know when the old table can be freed.
 *
 * This is a small sleepable-RCU: readers increment a counter in one of 64
 * per-thread-ish slots (their own cache line), under the parity of the
 * current epoch, and decrement it when done. A writer publishes the new
 * pointer, advances the epoch, and waits until the previous parity's
 * counters drain; new readers count under the new parity, so a writer never
 * waits for readers that started after it.
 *
 * Why a reader re-checks the epoch after incrementing: a reader that read an
 * epoch, then stalled across a writer's flip, would count under a parity
 * the *next* writer does not wait for. Re-checking makes "the epoch was e
 * after my increment" true, and the wait argument holds (see guard.c).
 */
#ifndef RL_GUARD_H
#define RL_GUARD_H

#include <stdatomic.h>
#include <stdint.h>

#define RL__GUARD_SLOTS 64

typedef struct rl__guard_slot {
  atomic_long count[2];
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

/* Starts a read-side section and returns the published pointer, valid until
 * rl__guard_exit(). Wait-free in practice (retries only when a writer flips
 * the epoch between two loads). */
void *rl__guard_enter(rl__guard *g, rl__guard_token *token);
void rl__guard_exit(rl__guard_token *token);

/* Publishes `next` and returns the previous pointer once no reader can still
 * hold it. Writers must be serialised by the caller. */
void *rl__guard_replace(rl__guard *g, void *next);

/* The published pointer, for the (serialised) writer side only. */
void *rl__guard_peek(rl__guard *g);

#endif /* RL_GUARD_H */
