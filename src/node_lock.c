/*
 * node_lock.c - see node_lock.h.
 */
#include <sched.h>

#include "node_lock.h"

#define SPINS 64 /* pauses before yielding: a decision is a few hundred */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

int rl__node_lock_wait(rl__node_word *word) {
  for (unsigned i = 1;; i++) {
    uint16_t w = atomic_load_explicit(word, memory_order_relaxed);
    if (w & RL__NODE_DEAD) {
      return 0;
    }
    if ((w & RL__NODE_LOCKED) == 0 &&
        atomic_compare_exchange_weak_explicit(
            word, &w, (uint16_t)(w | RL__NODE_LOCKED), memory_order_acquire,
            memory_order_relaxed)) {
      return 1;
    }
    if (i % SPINS == 0) {
      sched_yield();
    } else {
      cpu_relax();
    }
  }
}
