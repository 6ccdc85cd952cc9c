/*
 * breaker.c - the circuit breaker state machine (see breaker.h).
 *
 * Every transition is one compare-and-swap, so concurrent callers agree on
 * who opened the breaker (counted once) and who is the probe (one per
 * interval: the caller whose CAS moved next_probe forward). A success
 * from any call closes it: a reply that arrives in time is as good a
 * proof of health as the probe's.
 */
#include "breaker.h"

#include <stddef.h>

static void inc(atomic_uint_fast64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void rl__breaker_init(rl__breaker *b, uint32_t threshold, uint32_t probe_ms) {
  atomic_init(&b->state, RL__BREAKER_CLOSED);
  atomic_init(&b->failures, 0);
  atomic_init(&b->next_probe, 0);
  b->threshold = threshold;
  b->probe_ns =
      (int64_t)(probe_ms != 0 ? probe_ms : RL__BREAKER_PROBE_MS_DEFAULT) *
      1000000;
  atomic_init(&b->n_opened, 0);
  atomic_init(&b->n_closed, 0);
  atomic_init(&b->n_rejected, 0);
  atomic_init(&b->n_probes, 0);
}

int rl__breaker_allow(rl__breaker *b, int64_t now_ns) {
  if (atomic_load_explicit(&b->state, memory_order_acquire) ==
      RL__BREAKER_CLOSED) {
    return 1;
  }
  int_fast64_t at = atomic_load(&b->next_probe);
  if (now_ns >= at && atomic_compare_exchange_strong(&b->next_probe, &at,
                                                     now_ns + b->probe_ns)) {
    int open = RL__BREAKER_OPEN;
    atomic_compare_exchange_strong(&b->state, &open, RL__BREAKER_HALF_OPEN);
    inc(&b->n_probes);
    return 1;
  }
  inc(&b->n_rejected);
  return 0;
}

int rl__breaker_success(rl__breaker *b) {
  if (atomic_load_explicit(&b->failures, memory_order_relaxed) != 0) {
    atomic_store_explicit(&b->failures, 0, memory_order_relaxed);
  }
  if (atomic_load_explicit(&b->state, memory_order_relaxed) !=
          RL__BREAKER_CLOSED &&
      atomic_exchange(&b->state, RL__BREAKER_CLOSED) != RL__BREAKER_CLOSED) {
    inc(&b->n_closed);
    return 1;
  }
  return 0;
}

void rl__breaker_failure(rl__breaker *b, int64_t now_ns) {
  if (b->threshold == 0) {
    return;
  }
  int st = atomic_load(&b->state);
  if (st == RL__BREAKER_HALF_OPEN) {
    atomic_compare_exchange_strong(&b->state, &st, RL__BREAKER_OPEN);
    return;
  }
  if (st != RL__BREAKER_CLOSED ||
      atomic_fetch_add(&b->failures, 1) + 1 < b->threshold) {
    return;
  }
  /* next_probe first, so no caller sees OPEN with a stale probe time. */
  atomic_store(&b->next_probe, now_ns + b->probe_ns);
  if (atomic_compare_exchange_strong(&b->state, &st, RL__BREAKER_OPEN)) {
    atomic_store(&b->failures, 0);
    inc(&b->n_opened);
  }
}

void rl__breaker_probe_soon(rl__breaker *b) {
  if (atomic_load(&b->state) != RL__BREAKER_CLOSED) {
    atomic_store(&b->next_probe, 0);
  }
}

void rl__breaker_stats_get(const rl__breaker *b, rl__breaker_stats *out) {
  out->state = atomic_load(&b->state);
  out->opened = atomic_load(&b->n_opened);
  out->closed = atomic_load(&b->n_closed);
  out->rejected = atomic_load(&b->n_rejected);
  out->probes = atomic_load(&b->n_probes);
}

const char *rl__breaker_state_name(int state) {
  static const char *const names[] = {"closed", "open", "half_open"};
  return state >= 0 && state <= 2 ? names[state] : "unknown";
}
