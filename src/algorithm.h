/*
 * algorithm.h - the four decision algorithms as pure functions.
 *
 * Each algorithm keeps a fixed-size state per (key, window). The functions
 * here take that state, the current time and a cost, and decide. They do no
 * I/O, read no clock, allocate nothing, and use integer arithmetic that
 * saturates instead of overflowing. The full specification, shared with the
 * Lua scripts of the Redis store, is docs/Algorithms.md.
 *
 * Common rules:
 *   - now is in milliseconds and >= 0 (callers clamp); an all-zero state is
 *     the valid "never seen" state of every algorithm.
 *   - A clock that goes backwards is clamped: each state remembers the latest
 *     time it has seen (implicitly: window start, newest log entry, TAT) and
 *     a smaller now is treated as that time.
 *   - Deciding is two-phase so that a multi-window policy is all-or-nothing:
 *     rl__alg_evaluate() on every window, then rl__alg_commit() on every
 *     window only if all of them admitted. Evaluate may normalise the state
 *     (drop expired log entries, roll windows forward), which never changes
 *     any later decision.
 */
#ifndef RL_ALGORITHM_H
#define RL_ALGORITHM_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimiter.h"

/* One window's parameters, validated by policy.c. */
typedef struct rl__window_params {
  uint64_t limit;       /* L: units per window */
  uint64_t duration_ms; /* W */
  uint64_t burst;       /* token bucket: B (already defaulted to L) */
  uint32_t log_slots;   /* sliding log: S entries kept */
} rl__window_params;

/* The outcome for one window. */
typedef struct rl__verdict {
  int allowed;
  uint64_t remaining;      /* after this request if allowed, else now */
  uint64_t reset_after_ms; /* until the window is fully restored (after this
                              request if allowed) */
  uint64_t retry_after_ms; /* 0 if allowed; RL_RETRY_NEVER if cost can
                              never fit */
} rl__verdict;

/* Bytes of state one window of this algorithm needs (a multiple of 8). */
size_t rl__alg_state_size(rl_algorithm alg, const rl__window_params *p);

/* Phase 1: would this window admit cost units at now? */
void rl__alg_evaluate(rl_algorithm alg, const rl__window_params *p, void *state,
                      int64_t now, uint64_t cost, rl__verdict *out);

/* Phase 2: spend cost units at now. Only after an admitting evaluate at the
 * same now on the same state. */
void rl__alg_commit(rl_algorithm alg, const rl__window_params *p, void *state,
                    int64_t now, uint64_t cost);

/* The time from which this state is equivalent to the all-zero state (it can
 * then be forgotten). */
int64_t rl__alg_expiry(rl_algorithm alg, const rl__window_params *p,
                       const void *state);

/* A whole policy: n windows whose states lie back to back in `state`
 * (offsets from rl__alg_state_size). Evaluates every window, commits all of
 * them only if all admit, and fills the decision (allowed, window, limit,
 * remaining, reset_after_ms, retry_after_ms; not source or policy).
 * Returns the state's new expiry time. */
typedef struct rl__policy_shape {
  rl_algorithm algorithm;
  size_t n_windows;
  rl__window_params windows[RL_MAX_WINDOWS];
  size_t state_offset[RL_MAX_WINDOWS];
  size_t state_size; /* all windows */
} rl__policy_shape;

int64_t rl__policy_decide(const rl__policy_shape *shape, void *state,
                          int64_t now, uint64_t cost, rl_decision *out);

#endif /* RL_ALGORITHM_H */
