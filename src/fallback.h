/*
 * fallback.h - graceful degradation: the fallback store that wraps the
 * Redis store, its configuration, and the policy fields it reads.
 *
 * The layers, top to bottom: limiter -> (cache/leases) -> fallback ->
 * Redis store -> node (with its circuit breaker, breaker.h). The fallback
 * store passes every decision to the store it wraps; when that store
 * cannot answer (RL_ERR_BACKEND_UNAVAILABLE: down, breaker open, queue
 * full, error reply; RL_ERR_TIMEOUT) it decides by the policy's mode:
 * open, closed, or local (an in-process memory store on a share of each
 * limit, whose admissions are reconciled into Redis later, reconcile.h).
 * docs/Degradation.md has the state machine and the guarantees.
 */
#ifndef RL_FALLBACK_H
#define RL_FALLBACK_H

#include <stddef.h>

#include "policy.h"
#include "ratelimiter.h"
#include "store.h"

/* Checks rl_config.fallback and every policy's fallback mode.
 * RL_ERR_CONFIG_INVALID with a detail. */
int rl__fallback_config_check(const rl_config *c, char *errbuf, size_t errlen);

/* Fills the fallback fields of a compiled policy (out->fallback,
 * out->local_shape) from its source `in` and the limiter config c. */
void rl__fallback_resolve(rl__policy *out, const rl_policy *in,
                          const rl_config *c);

/* Wraps inner (a Redis store, taken over: freed with the wrapper, also on
 * error). RL_OK or RL_ERR_NO_MEMORY / RL_ERR_BACKEND_UNAVAILABLE (no
 * reconciler thread). */
int rl__store_fallback_new(const rl_config *config, rl__store *inner,
                           rl__store **out);

/* The Redis store inside a fallback store (or s itself otherwise). */
rl__store *rl__store_fallback_inner(rl__store *s);

/* Counters; all zero for a store that is not a fallback store. */
void rl__store_fallback_stats(rl__store *s, rl_fallback_stats *out);

/* Waits until nothing awaits reconciliation or timeout_ms passed. RL_OK
 * or RL_ERR_TIMEOUT. For tests and graceful shutdown. */
int rl__store_fallback_drain(rl__store *s, uint32_t timeout_ms);

#endif /* RL_FALLBACK_H */
