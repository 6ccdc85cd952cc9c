/*
 * policy.h - validated, compiled policies.
 *
 * rl_policy is what callers write; rl__policy is what the limiter keeps: a
 * copy of the name and the shape the algorithms need (per-window parameters
 * with defaults filled in, and where each window's state lies in a key's
 * state block).
 */
#ifndef RL_POLICY_H
#define RL_POLICY_H

#include <stddef.h>

#include "algorithm.h"
#include "ratelimiter.h"

typedef struct rl__policy {
  char name[RL_POLICY_NAME_MAX + 1];
  size_t name_len;
  rl__policy_shape shape;
  uint32_t layout; /* rl__policy_layout_hash(&shape) */
  /* Graceful degradation (fallback.h), filled by rl__fallback_resolve. */
  rl_fallback_mode fallback;    /* resolved: never RL_FALLBACK_DEFAULT */
  rl__policy_shape local_shape; /* RL_FALLBACK_LOCAL: the local share */
  uint32_t local_layout;        /* rl__policy_layout_hash(&local_shape) */
} rl__policy;

/* A fingerprint of the state layout: FNV-1a 32 of the algorithm, the
 * window count, and per window the duration, the resolved log_slots and
 * (token bucket only) the limit, as fixed-width little-endian integers
 * (docs/Redis.md spells out the bytes). Two shapes that
 * rl__policy_state_compatible() accepts have the same fingerprint; the
 * Redis store puts it in key names so that an incompatible change never
 * reads old bytes. */
uint32_t rl__policy_layout_hash(const rl__policy_shape *shape);

/* Validates `in` and fills `out`. On error writes a detail naming the
 * policy (index `index`) and window into errbuf (may be NULL). */
int rl__policy_compile(const rl_policy *in, size_t index, rl__policy *out,
                       char *errbuf, size_t errlen);

#define RL__DEFAULT_POLICY_NAME "default"

/* Writes a formatted detail into errbuf (if not NULL) and returns err. */
__attribute__((format(printf, 4, 5))) int
rl__fail(int err, char *errbuf, size_t errlen, const char *fmt, ...);

/* Lock stripes of the memory store for this (checked) configuration: as many
 * as configured, or up to 64 while each stripe's share of the budget holds
 * several of the largest possible keys. RL_ERR_CONFIG_INVALID with a detail
 * when the budget is too small. */
int rl__memory_stripes(const rl_config *c, unsigned *out, char *errbuf,
                       size_t errlen);

#endif /* RL_POLICY_H */
