/*
 * config.c - limiter configuration: defaults and validation.
 *
 * rl_config_check() and rl_new() share this code, so a configuration that
 * checks clean is one rl_new() accepts (out of memory aside).
 */
#include <string.h>

#include "cache.h"
#include "fallback.h"
#include "memory_store.h"
#include "policy.h"
#include "redis_store.h"

#define MAX_AUTO_STRIPES 64u
/* Each stripe must hold this many of the largest possible keys. */
#define MIN_NODES_PER_STRIPE 8u

void rl_config_init(rl_config *config) {
  if (config != NULL) {
    memset(config, 0, sizeof *config);
    config->store = RL_STORE_MEMORY;
    config->max_key_len = RL_KEY_MAX_DEFAULT;
    config->memory.max_bytes = RL_MEMORY_MAX_BYTES_DEFAULT;
    config->redis.pool_size = RL_REDIS_POOL_SIZE_DEFAULT;
    config->redis.timeout_ms = RL_REDIS_TIMEOUT_MS_DEFAULT;
    config->redis.connect_timeout_ms = RL_REDIS_CONNECT_TIMEOUT_MS_DEFAULT;
    config->redis.queue_max = RL_REDIS_QUEUE_MAX_DEFAULT;
    config->cache.ttl_ms = RL_CACHE_TTL_MS_DEFAULT;
    config->cache.max_bytes = RL_CACHE_MAX_BYTES_DEFAULT;
    config->cache.leases = 1;
    config->cache.lease_max = RL_CACHE_LEASE_MAX_DEFAULT;
    config->cache.hot_threshold = RL_CACHE_HOT_THRESHOLD_DEFAULT;
    config->cache.hot_k = RL_CACHE_HOT_K_DEFAULT;
    config->fallback.circuit_breaker_threshold = RL_BREAKER_THRESHOLD_DEFAULT;
    config->fallback.probe_interval_ms = RL_BREAKER_PROBE_MS_DEFAULT;
    config->fallback.local_instances = 1;
    config->fallback.reconcile_max_keys = RL_RECONCILE_MAX_KEYS_DEFAULT;
  }
}

static int check_policies(const rl_config *c, char *errbuf, size_t errlen) {
  if (c->policies == NULL || c->n_policies == 0) {
    return rl__fail(RL_ERR_NO_POLICY, errbuf, errlen, "no policy configured");
  }
  if (c->n_policies > RL_MAX_POLICIES) {
    return rl__fail(RL_ERR_TOO_MANY_POLICIES, errbuf, errlen,
                    "%zu policies, at most %d", c->n_policies, RL_MAX_POLICIES);
  }
  for (size_t i = 0; i < c->n_policies; i++) {
    int err = rl__policy_compile(&c->policies[i], i, NULL, errbuf, errlen);
    if (err != RL_OK) {
      return err;
    }
  }
  for (size_t i = 0; i < c->n_policies; i++) {
    const char *a =
        c->policies[i].name ? c->policies[i].name : RL__DEFAULT_POLICY_NAME;
    for (size_t j = 0; j < i; j++) {
      const char *b =
          c->policies[j].name ? c->policies[j].name : RL__DEFAULT_POLICY_NAME;
      if (strcmp(a, b) == 0) {
        return rl__fail(RL_ERR_POLICY_NAME, errbuf, errlen,
                        "policies %zu and %zu are both named '%s'", j, i, a);
      }
    }
  }
  return RL_OK;
}

/* Bytes of the largest node any request could create. */
static size_t largest_node(const rl_config *c) {
  size_t largest = 0;
  for (size_t i = 0; i < c->n_policies; i++) {
    rl__policy p;
    if (rl__policy_compile(&c->policies[i], i, &p, NULL, 0) == RL_OK) {
      size_t b = rl__memstore_node_bytes(p.shape.state_size, c->max_key_len);
      largest = b > largest ? b : largest;
    }
  }
  return largest;
}

int rl__memory_stripes(const rl_config *c, unsigned *out, char *errbuf,
                       size_t errlen) {
  size_t need = largest_node(c) * MIN_NODES_PER_STRIPE;
  unsigned s = c->memory.stripes != 0 ? c->memory.stripes : MAX_AUTO_STRIPES;
  while (c->memory.stripes == 0 && s > 1 && c->memory.max_bytes / s < need) {
    s /= 2;
  }
  if (c->memory.max_bytes / s < need) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "memory.max_bytes %zu is too small: each of %u stripes "
                    "must hold %u of the largest keys (%zu bytes each)",
                    c->memory.max_bytes, s, MIN_NODES_PER_STRIPE,
                    need / MIN_NODES_PER_STRIPE);
  }
  *out = s;
  return RL_OK;
}

static int check_store(const rl_config *c, char *errbuf, size_t errlen) {
  if (c->store != RL_STORE_MEMORY && c->store != RL_STORE_REDIS) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen, "unknown store %d",
                    (int)c->store);
  }
  if (c->max_key_len == 0 || c->max_key_len > RL_KEY_MAX) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "max_key_len %zu is outside 1..%d", c->max_key_len,
                    RL_KEY_MAX);
  }
  if (c->memory.max_bytes < RL_MEMORY_MAX_BYTES_MIN) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "memory.max_bytes %zu is below %zu", c->memory.max_bytes,
                    RL_MEMORY_MAX_BYTES_MIN);
  }
  unsigned s = c->memory.stripes;
  if (s != 0 && ((s & (s - 1)) != 0 || s > 4096)) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "memory.stripes %u must be a power of two up to 4096", s);
  }
  return RL_OK;
}

int rl_config_check(const rl_config *config, char *errbuf, size_t errlen) {
  if (errbuf != NULL && errlen > 0) {
    errbuf[0] = '\0';
  }
  if (config == NULL) {
    return rl__fail(RL_ERR_INVALID_ARGUMENT, errbuf, errlen, "config is NULL");
  }
  int err = check_policies(config, errbuf, errlen);
  if (err == RL_OK) {
    err = check_store(config, errbuf, errlen);
  }
  unsigned stripes = 0;
  if (err == RL_OK) {
    err = rl__memory_stripes(config, &stripes, errbuf, errlen);
  }
  if (err == RL_OK && config->store == RL_STORE_REDIS) {
    err = rl__redis_config_check(config, errbuf, errlen);
  }
  if (err == RL_OK) {
    err = rl__cache_config_check(config, errbuf, errlen);
  }
  if (err == RL_OK) {
    err = rl__fallback_config_check(config, errbuf, errlen);
  }
  return err;
}
