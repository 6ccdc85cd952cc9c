/*
 * node_lock.h - the 16-bit word of a memory-store node: a spin lock plus
 * two flags.
 *
 *   LOCKED      held by one thread deciding on (or unlinking) the node: its
 *               state and expiry are read and written only under it.
 *   DEAD        unlinked, or about to be: set once, by the thread holding
 *               the stripe lock and the node lock, in the store that
 *               releases the node lock. A dead node is never locked again.
 *   REFERENCED  CLOCK's reference bit: set by every decision's unlock,
 *               cleared by the eviction hand.
 *
 * Lock holders never wait for anything else (a decision is ~100 ns), so
 * waiters spin briefly and then yield the CPU. Acquiring is a CAS with
 * acquire order, releasing a store with release order: what one holder
 * wrote, the next one reads.
 */
#ifndef RL_NODE_LOCK_H
#define RL_NODE_LOCK_H

#include <stdatomic.h>
#include <stdint.h>

#define RL__NODE_LOCKED 1u
#define RL__NODE_DEAD 2u
#define RL__NODE_REFERENCED 4u

typedef _Atomic uint16_t rl__node_word;

/* The contended case of rl__node_lock(). */
int rl__node_lock_wait(rl__node_word *word);

/* Locks the node: 1, or 0 when it is DEAD (not locked then). */
static inline int rl__node_lock(rl__node_word *word) {
  uint16_t w = atomic_load_explicit(word, memory_order_relaxed);
  if ((w & (RL__NODE_LOCKED | RL__NODE_DEAD)) == 0 &&
      atomic_compare_exchange_weak_explicit(
          word, &w, (uint16_t)(w | RL__NODE_LOCKED), memory_order_acquire,
          memory_order_relaxed)) {
    return 1;
  }
  return rl__node_lock_wait(word);
}

/* Unlocks, leaving exactly `flags` (RL__NODE_REFERENCED after a decision,
 * RL__NODE_DEAD to kill the node). Only the holder may change the other
 * bits while it holds the lock, except the eviction hand clearing
 * REFERENCED, which a decision's unlock may overwrite: the node was just
 * used. */
static inline void rl__node_unlock(rl__node_word *word, uint16_t flags) {
  atomic_store_explicit(word, flags, memory_order_release);
}

/* Unlocks, leaving the flags as they are. */
static inline void rl__node_unlock_unchanged(rl__node_word *word) {
  atomic_fetch_and_explicit(word, (uint16_t)~RL__NODE_LOCKED,
                            memory_order_release);
}

#endif /* RL_NODE_LOCK_H */
