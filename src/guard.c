/*
 * guard.c - see guard.h.
 *
 * Why an object tagged t may be freed once the epoch is >= t + 2.
 *
 * Operations. A reader R: C = fetch_add(count[f & 1]), L = load(epoch)
 * reading f (else it undoes C and retries), its section, D =
 * fetch_sub(count[f & 1]). An advance A (try_advance): load(epoch) reading
 * e, load every count[(e + 1) & 1], all zero, then CAS(epoch, e, e + 1).
 * A writer W: unlinks the object (store U), then E = fetch_add(epoch, 0)
 * reading t. All of these are seq_cst; S is their total order. Every
 * modification of the epoch is a read-modify-write, so each one heads a
 * release sequence holding all later ones: an acquire load of the epoch
 * synchronises with every modification before the one it reads.
 *
 * 1. While R (epoch f) is inside, no advance to f + 2 happens: the advance
 *    from f + 1 loaded f + 1, written after the value f that L read, so
 *    C <S L <S (the write of f + 1) <S A's load <S A's count loads. Every
 *    count modification being seq_cst, A's load of R's slot reads C or a
 *    later value: one that still counts R (nonzero: A gives up), or D or a
 *    later one (D synchronises with A: R's section happens before the
 *    advance).
 * 2. A reader that registers in an epoch f > t cannot reach the object: L
 *    read a value written after E (t), so E synchronises with L and U
 *    happens before everything R loads. R finds the structure without the
 *    object (what it may still reach through other unlinked objects is the
 *    caller's matter: memory_store.c).
 * 3. So a reader that can hold the object registered in f <= t, and by (1)
 *    the epoch reaches f + 2 <= t + 2 only after R left. The freeing thread
 *    read epoch >= t + 2 with acquire order: it synchronises with the
 *    advance to f + 2, which R's section happens before.
 *
 * A reader's undone registration (the epoch moved between its two loads)
 * only delays an advance. Concurrent advances are serialised by the CAS; the
 * 64-bit epoch does not wrap. rl__guard_replace is the same rule applied to
 * the published pointer: store U is the exchange.
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
    /* The first load only picks the parity; the proof rests on the second
     * (seq_cst, after the seq_cst increment). */
    uint_fast64_t e = atomic_load_explicit(&g->epoch, memory_order_relaxed);
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

uint64_t rl__guard_retire_epoch(rl__guard *g) {
  return atomic_fetch_add(&g->epoch, 0);
}

/* Whether some reader is registered under this parity (or is undoing a
 * registration there). */
static int parity_busy(rl__guard *g, unsigned parity) {
  for (int i = 0; i < RL__GUARD_SLOTS; i++) {
    if (atomic_load(&g->slots[i].count[parity]) != 0) {
      return 1;
    }
  }
  return 0;
}

uint64_t rl__guard_try_advance(rl__guard *g) {
  uint_fast64_t e = atomic_load(&g->epoch);
  if (parity_busy(g, (unsigned)((e + 1) & 1))) {
    return e;
  }
  /* On failure e is the epoch another thread moved to: as good. */
  if (atomic_compare_exchange_strong(&g->epoch, &e, e + 1)) {
    return e + 1;
  }
  return e;
}

void *rl__guard_replace(rl__guard *g, void *next) {
  void *old = atomic_exchange(&g->current, next);
  uint64_t tag = rl__guard_retire_epoch(g);
  while (!rl__guard_safe(tag, rl__guard_try_advance(g))) {
    sched_yield();
  }
  return old;
}

void *rl__guard_peek(rl__guard *g) {
  return atomic_load(&g->current);
}
