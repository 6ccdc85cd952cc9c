/*
 * alg_impl.h - the per-algorithm entry points behind algorithm.h.
 *
 * algorithm.c dispatches on rl_algorithm to these; unit tests may call them
 * directly. Each algorithm has the same four functions, with the meaning of
 * the matching rl__alg_* function in algorithm.h, and follows
 * docs/Algorithms.md exactly.
 *
 * Shared rules:
 *   - state points to state_size() bytes, 8-byte aligned; all zero is the
 *     "never seen" state.
 *   - Parameters are clamped into their validated range (limit and duration
 *     >= 1, at most the algorithm's maximum; log_slots in
 *     RL_LOG_SLOTS_MIN..RL_LOG_SLOTS_MAX) and a negative now counts as 0, so
 *     no input, not even corrupt state bytes, can cause undefined behaviour
 *     or an out-of-bounds access. Decisions are only specified for validated
 *     parameters and for states these functions produced with the same
 *     parameters.
 *   - Every reported delay (reset_after_ms, retry_after_ms) is measured from
 *     the real now, also when the state clamps a clock that went back.
 */
#ifndef RL_ALG_IMPL_H
#define RL_ALG_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "algorithm.h"

/* Fixed window (alg_fixed_window.c). */
size_t rl__fixed_window_state_size(const rl__window_params *p);
void rl__fixed_window_evaluate(const rl__window_params *p, void *state,
                               int64_t now, uint64_t cost, rl__verdict *out);
void rl__fixed_window_commit(const rl__window_params *p, void *state,
                             int64_t now, uint64_t cost);
int64_t rl__fixed_window_expiry(const rl__window_params *p, const void *state);

/* Sliding window log (alg_sliding_log.c). */
size_t rl__sliding_log_state_size(const rl__window_params *p);
void rl__sliding_log_evaluate(const rl__window_params *p, void *state,
                              int64_t now, uint64_t cost, rl__verdict *out);
void rl__sliding_log_commit(const rl__window_params *p, void *state,
                            int64_t now, uint64_t cost);
int64_t rl__sliding_log_expiry(const rl__window_params *p, const void *state);

/* Sliding window counter (alg_sliding_counter.c). */
size_t rl__sliding_counter_state_size(const rl__window_params *p);
void rl__sliding_counter_evaluate(const rl__window_params *p, void *state,
                                  int64_t now, uint64_t cost, rl__verdict *out);
void rl__sliding_counter_commit(const rl__window_params *p, void *state,
                                int64_t now, uint64_t cost);
int64_t rl__sliding_counter_expiry(const rl__window_params *p,
                                   const void *state);

/* Token bucket as GCRA (alg_gcra.c). */
size_t rl__gcra_state_size(const rl__window_params *p);
void rl__gcra_evaluate(const rl__window_params *p, void *state, int64_t now,
                       uint64_t cost, rl__verdict *out);
void rl__gcra_commit(const rl__window_params *p, void *state, int64_t now,
                     uint64_t cost);
int64_t rl__gcra_expiry(const rl__window_params *p, const void *state);

#endif /* RL_ALG_IMPL_H */
