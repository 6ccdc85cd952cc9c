/*
 * cache.h - the cache layer's settings (rl_config.cache) and its part of
 * rl_config_check(). The layer itself is a store (store.h:
 * rl__store_cache_new); docs/Cache.md describes it.
 */
#ifndef RL_CACHE_H
#define RL_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimiter.h"

/* rl_config.cache with its defaults applied. */
typedef struct rl__cache_settings {
  int enabled;
  uint64_t ttl_ms;
  size_t max_bytes;
  int leases;
  uint64_t lease_max;
  uint32_t hot_threshold;
  unsigned hot_k;
} rl__cache_settings;

void rl__cache_settings_of(const rl_config *config, rl__cache_settings *out);

/* The cache part of rl_config_check(): RL_OK when the cache is off, else
 * RL_ERR_CONFIG_INVALID with a message for a value out of range or a cache
 * on the memory store. */
int rl__cache_config_check(const rl_config *c, char *errbuf, size_t errlen);

#endif /* RL_CACHE_H */
