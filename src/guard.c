/*
 * guard.c - see guard.h.
 *
 * Why the wait is enough. A reader R registered in parity p = e & 1 only if
 * it read epoch == e *after* its increment, and it loads the pointer after
 * that. All atomics here are sequentially consistent.
 *  - The writer W that moves the epoch from e to e + 1 published its pointer
 *    before the move and waits for parity p after it. If R's check came
 *    before W's move, R's increment precedes W's wait: W waits for R. If
 *    R's check came after, R would have read e + 1: impossible.
 *  - The next writer W' (e + 1 -> e + 2) waits for the other parity, but it
 *    only starts after W finished waiting for R: R is gone by then.
 *  - A reader that read epoch e + 1 loads the pointer after W published it,
 *    so it never holds what W frees.
 */
#include <sched.h>

#include "guard.h"

static _Thread_local unsigned thread_slot = RL__GUARD_SLOTS;
static atomic_uint next_slot;

static unsigned my_slot(void) {
  if (thread_slot == RL__GUARD_SLOTS) {
    thread_slot = atomic_fetch_add(&next_slot, 1) % RL__GUARD_SLOTS;
  }
  return thread_slot;
}

void rl__guard_init(rl__guard *g, void *initial) {
  atomic_init(&g->current, initial);
  atomic_init(&g->epoch, 0);
  for (int i = 0; i < RL__GUARD_SLOTS; i++) {
    atomic_init(&g->slots[i].count[0], 0);
    atomic_init(&g->slots[i].count[1], 0);
  }
}

void *rl__guard_enter(rl__guard *g, rl__guard_token *token) {
  rl__guard_slot *slot = &g->slots[my_slot()];
  for (;;) {
    uint_fast64_t e = atomic_load(&g->epoch);
    atomic_long *counter = &slot->count[e & 1];
    atomic_fetch_add(counter, 1);
    if (atomic_load(&g->epoch) == e) {
      token->counter = counter;
      return atomic_load(&g->current);
    }
    atomic_fetch_sub(counter, 1);
  }
}

void rl__guard_exit(rl__guard_token *token) {
  atomic_fetch_sub(token->counter, 1);
}

static long parity_readers(rl__guard *g, unsigned parity) {
  long sum = 0;
  for (int i = 0; i < RL__GUARD_SLOTS; i++) {
    sum += atomic_load(&g->slots[i].count[parity]);
  }
  return sum;
}

void *rl__guard_replace(rl__guard *g, void *next) {
  void *old = atomic_exchange(&g->current, next);
  uint_fast64_t e = atomic_fetch_add(&g->epoch, 1);
  while (parity_readers(g, (unsigned)(e & 1)) != 0) {
    sched_yield();
  }
  return old;
}

void *rl__guard_peek(rl__guard *g) {
  return atomic_load(&g->current);
}
