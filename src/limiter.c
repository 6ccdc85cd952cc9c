/*
 * limiter.c - rl_limiter: configuration, request validation and dispatch to
 * the store.
 *
 * The decision path is: validate the request (no state touched on error),
 * find the policy, read the clock once, let the store decide under the key's
 * stripe lock. Nothing on it allocates except the first decision of a key.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memory_store.h"
#include "policy.h"

struct rl_limiter {
  rl__policy *policies;
  size_t n_policies;
  size_t max_key_len;
  rl_clock_fn clock;
  void *clock_ctx;
  rl__memstore *memory;
};

static int64_t realtime_ms(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t now_ms(const rl_limiter *rl) {
  int64_t t = rl->clock(rl->clock_ctx);
  return t < 0 ? 0 : t;
}

static int compile_policies(const rl_config *c, rl_limiter *rl) {
  rl->policies = calloc(c->n_policies, sizeof *rl->policies);
  if (rl->policies == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  rl->n_policies = c->n_policies;
  for (size_t i = 0; i < c->n_policies; i++) {
    int err = rl__policy_compile(&c->policies[i], i, &rl->policies[i], NULL, 0);
    if (err != RL_OK) {
      return err;
    }
  }
  return RL_OK;
}

int rl_new(const rl_config *config, rl_limiter **out) {
  if (out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  int err = rl_config_check(config, NULL, 0);
  if (err != RL_OK) {
    return err;
  }
  rl_limiter *rl = calloc(1, sizeof *rl);
  if (rl == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  rl->max_key_len = config->max_key_len;
  rl->clock = config->clock != NULL ? config->clock : realtime_ms;
  rl->clock_ctx = config->clock_ctx;
  unsigned stripes = 0;
  err = compile_policies(config, rl);
  if (err == RL_OK) {
    err = rl__memory_stripes(config, &stripes, NULL, 0);
  }
  if (err == RL_OK) {
    err = rl__memstore_new(config->memory.max_bytes, stripes, &rl->memory);
  }
  if (err != RL_OK) {
    rl_free(rl);
    return err;
  }
  *out = rl;
  return RL_OK;
}

void rl_free(rl_limiter *rl) {
  if (rl == NULL) {
    return;
  }
  rl__memstore_free(rl->memory);
  free(rl->policies);
  free(rl);
}

int rl_policy_find(const rl_limiter *rl, const char *name, size_t name_len,
                   size_t *index) {
  if (rl == NULL || name == NULL || index == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < rl->n_policies; i++) {
    const rl__policy *p = &rl->policies[i];
    if (p->name_len == name_len && memcmp(p->name, name, name_len) == 0) {
      *index = i;
      return RL_OK;
    }
  }
  return RL_ERR_POLICY_UNKNOWN;
}

static int check_request(const rl_limiter *rl, const rl_request *req) {
  if (req->key == NULL && req->key_len > 0) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  if (req->key_len == 0) {
    return RL_ERR_KEY_EMPTY;
  }
  if (req->key_len > rl->max_key_len) {
    return RL_ERR_KEY_TOO_LONG;
  }
  if (req->cost < 1) {
    return RL_ERR_COST_INVALID;
  }
  if ((uint64_t)req->cost > RL_COST_MAX) {
    return RL_ERR_COST_TOO_LARGE;
  }
  return RL_OK;
}

int rl_decide(rl_limiter *rl, const rl_request *req, rl_decision *out) {
  if (rl == NULL || req == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  int err = check_request(rl, req);
  size_t index = 0;
  if (err == RL_OK && req->policy != NULL) {
    err = rl_policy_find(rl, req->policy, req->policy_len, &index);
  }
  if (err != RL_OK) {
    return err;
  }
  const rl__policy *p = &rl->policies[index];
  err = rl__memstore_decide(rl->memory, (uint16_t)index, &p->shape, req->key,
                            req->key_len, now_ms(rl), (uint64_t)req->cost, out);
  if (err == RL_OK) {
    out->source = RL_SOURCE_MEMORY;
    out->policy = index;
  }
  return err;
}

int rl_allow_n(rl_limiter *rl, const void *key, size_t key_len, int64_t cost,
               rl_decision *out) {
  rl_request req = {NULL, 0, key, key_len, cost};
  return rl_decide(rl, &req, out);
}

int rl_allow(rl_limiter *rl, const void *key, size_t key_len,
             rl_decision *out) {
  return rl_allow_n(rl, key, key_len, 1, out);
}

int rl_memory_stats_get(rl_limiter *rl, rl_memory_stats *out) {
  if (rl == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl__memstore_stats(rl->memory, out);
  return RL_OK;
}
