/*
 * algorithm.c - dispatch from rl_algorithm to the four implementations
 * (alg_*.c), and the all-or-nothing decision over a policy's windows
 * (docs/Algorithms.md, "Multi-window").
 *
 * An unknown algorithm value cannot pass policy validation; should one
 * arrive anyway, it has no state, denies everything and commits nothing.
 */
#include <stddef.h>
#include <stdint.h>

#include "alg_impl.h"
#include "algorithm.h"

size_t rl__alg_state_size(rl_algorithm alg, const rl__window_params *p) {
  switch (alg) {
  case RL_ALG_SLIDING_LOG:
    return rl__sliding_log_state_size(p);
  case RL_ALG_SLIDING_COUNTER:
    return rl__sliding_counter_state_size(p);
  case RL_ALG_TOKEN_BUCKET:
    return rl__gcra_state_size(p);
  case RL_ALG_FIXED_WINDOW:
    return rl__fixed_window_state_size(p);
  }
  return 0;
}

static void deny_never(rl__verdict *out) {
  out->allowed = 0;
  out->remaining = 0;
  out->reset_after_ms = 0;
  out->retry_after_ms = RL_RETRY_NEVER;
}

void rl__alg_evaluate(rl_algorithm alg, const rl__window_params *p, void *state,
                      int64_t now, uint64_t cost, rl__verdict *out) {
  switch (alg) {
  case RL_ALG_SLIDING_LOG:
    rl__sliding_log_evaluate(p, state, now, cost, out);
    return;
  case RL_ALG_SLIDING_COUNTER:
    rl__sliding_counter_evaluate(p, state, now, cost, out);
    return;
  case RL_ALG_TOKEN_BUCKET:
    rl__gcra_evaluate(p, state, now, cost, out);
    return;
  case RL_ALG_FIXED_WINDOW:
    rl__fixed_window_evaluate(p, state, now, cost, out);
    return;
  }
  deny_never(out);
}

void rl__alg_commit(rl_algorithm alg, const rl__window_params *p, void *state,
                    int64_t now, uint64_t cost) {
  switch (alg) {
  case RL_ALG_SLIDING_LOG:
    rl__sliding_log_commit(p, state, now, cost);
    return;
  case RL_ALG_SLIDING_COUNTER:
    rl__sliding_counter_commit(p, state, now, cost);
    return;
  case RL_ALG_TOKEN_BUCKET:
    rl__gcra_commit(p, state, now, cost);
    return;
  case RL_ALG_FIXED_WINDOW:
    rl__fixed_window_commit(p, state, now, cost);
    return;
  }
}

int64_t rl__alg_expiry(rl_algorithm alg, const rl__window_params *p,
                       const void *state) {
  switch (alg) {
  case RL_ALG_SLIDING_LOG:
    return rl__sliding_log_expiry(p, state);
  case RL_ALG_SLIDING_COUNTER:
    return rl__sliding_counter_expiry(p, state);
  case RL_ALG_TOKEN_BUCKET:
    return rl__gcra_expiry(p, state);
  case RL_ALG_FIXED_WINDOW:
    return rl__fixed_window_expiry(p, state);
  }
  return 0;
}

/* The binding window. Denied: the denying window with the largest
 * retry_after (ties: lowest index); the request fits in every window exactly
 * then, since each window's admissibility only grows with time absent
 * traffic. Allowed: the window with the fewest units left (ties: lowest). */
static size_t binding_window(const rl__verdict *v, size_t n, int allowed) {
  size_t best = 0;
  for (size_t i = 0; i < n; i++) {
    if (allowed) {
      if (v[i].remaining < v[best].remaining) {
        best = i;
      }
    } else if (!v[i].allowed &&
               (v[best].allowed ||
                v[i].retry_after_ms > v[best].retry_after_ms)) {
      best = i;
    }
  }
  return best;
}

static void *window_state(const rl__policy_shape *shape, void *state,
                          size_t i) {
  return (unsigned char *)state + shape->state_offset[i];
}

/* Phase 1 on every window; 1 if all of them admit. */
static int evaluate_all(const rl__policy_shape *shape, size_t n, void *state,
                        int64_t now, uint64_t cost, rl__verdict *v) {
  int allowed = 1;
  for (size_t i = 0; i < n; i++) {
    rl__alg_evaluate(shape->algorithm, &shape->windows[i],
                     window_state(shape, state, i), now, cost, &v[i]);
    allowed &= v[i].allowed;
  }
  return allowed;
}

/* Phase 2 on every window when all admitted; returns the latest expiry. */
static int64_t commit_all(const rl__policy_shape *shape, size_t n, void *state,
                          int64_t now, uint64_t cost, int allowed) {
  int64_t expiry = 0;
  for (size_t i = 0; i < n; i++) {
    void *st = window_state(shape, state, i);
    if (allowed) {
      rl__alg_commit(shape->algorithm, &shape->windows[i], st, now, cost);
    }
    int64_t e = rl__alg_expiry(shape->algorithm, &shape->windows[i], st);
    expiry = e > expiry ? e : expiry;
  }
  return expiry;
}

int64_t rl__policy_decide(const rl__policy_shape *shape, void *state,
                          int64_t now, uint64_t cost, rl_decision *out) {
  size_t n =
      shape->n_windows < RL_MAX_WINDOWS ? shape->n_windows : RL_MAX_WINDOWS;
  rl__verdict v[RL_MAX_WINDOWS];
  int allowed = evaluate_all(shape, n, state, now, cost, v);
  int64_t expiry = commit_all(shape, n, state, now, cost, allowed);
  out->allowed = allowed;
  out->window = 0;
  out->limit = 0;
  out->remaining = 0;
  out->reset_after_ms = 0;
  out->retry_after_ms = 0;
  if (n > 0) {
    size_t b = binding_window(v, n, allowed);
    out->window = (int)b;
    out->limit = shape->windows[b].limit;
    out->remaining = v[b].remaining;
    out->reset_after_ms = v[b].reset_after_ms;
    out->retry_after_ms = v[b].retry_after_ms;
  }
  return expiry;
}
