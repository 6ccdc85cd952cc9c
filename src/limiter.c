/*
 * limiter.c - rl_limiter: configuration, request validation and dispatch to
 * the store.
 *
 * The decision path is: enter the policy table's read-side guard (no lock,
 * see guard.h), validate the request (no state touched on error), find the
 * policy, read the clock once, let the store decide under the key's stripe
 * lock. Nothing on it allocates except the first decision of a key.
 *
 * rl_reconfigure() replaces the policy table whole; see policy_table.h for
 * which keys keep their state.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard.h"
#include "memory_store.h"
#include "policy_table.h"

struct rl_limiter {
  rl__guard policies; /* publishes the current rl__policy_table */
  rl_clock_fn clock;
  void *clock_ctx;
  rl__memstore *memory;
  /* Fixed at creation: a reconfiguration may not change them. */
  rl_store_type store;
  size_t memory_max_bytes;
  unsigned memory_stripes;
  /* Reconfiguration side, under reconfig_lock. */
  pthread_mutex_t reconfig_lock;
  rl__id_pool ids;
  uint64_t retired[RL__POLICY_IDS / 64]; /* scratch for publish() */
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
  pthread_mutex_init(&rl->reconfig_lock, NULL);
  rl->clock = config->clock != NULL ? config->clock : realtime_ms;
  rl->clock_ctx = config->clock_ctx;
  rl->store = config->store;
  rl->memory_max_bytes = config->memory.max_bytes;
  rl__policy_table *table = NULL;
  err = rl__policy_table_new(config, NULL, &rl->ids, &table);
  rl__guard_init(&rl->policies, table);
  if (err == RL_OK) {
    err = rl__memory_stripes(config, &rl->memory_stripes, NULL, 0);
  }
  if (err == RL_OK) {
    err = rl__memstore_new(config->memory.max_bytes, rl->memory_stripes,
                           &rl->memory);
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
  rl__policy_table_free(rl__guard_peek(&rl->policies));
  pthread_mutex_destroy(&rl->reconfig_lock);
  free(rl);
}

/* Settings that shape the store cannot change while it holds state. */
static int check_live_change(const rl_limiter *rl, const rl_config *c,
                             char *errbuf, size_t errlen) {
  unsigned stripes = 0;
  rl_clock_fn clock = c->clock != NULL ? c->clock : realtime_ms;
  if (c->store != rl->store || c->memory.max_bytes != rl->memory_max_bytes ||
      clock != rl->clock || c->clock_ctx != rl->clock_ctx ||
      rl__memory_stripes(c, &stripes, NULL, 0) != RL_OK ||
      stripes != rl->memory_stripes) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "the store, its memory budget, stripes and clock cannot "
                    "change on a live limiter: create a new one");
  }
  return RL_OK;
}

/* Publishes next, waits until no decision uses the old table, purges the
 * keys of the policy ids no longer used and frees their ids. */
static void publish(rl_limiter *rl, rl__policy_table *next) {
  rl__policy_table *old = rl__guard_replace(&rl->policies, next);
  if (rl__policy_table_retired(old, next, rl->retired) > 0) {
    rl__memstore_purge(rl->memory, rl->retired);
    rl__id_pool_release(&rl->ids, rl->retired);
  }
  rl__policy_table_free(old);
}

int rl_reconfigure(rl_limiter *rl, const rl_config *config, char *errbuf,
                   size_t errlen) {
  if (rl == NULL) {
    return rl__fail(RL_ERR_INVALID_ARGUMENT, errbuf, errlen, "rl is NULL");
  }
  int err = rl_config_check(config, errbuf, errlen);
  if (err != RL_OK) {
    return err;
  }
  pthread_mutex_lock(&rl->reconfig_lock);
  err = check_live_change(rl, config, errbuf, errlen);
  rl__policy_table *next = NULL;
  if (err == RL_OK) {
    err = rl__policy_table_new(config, rl__guard_peek(&rl->policies), &rl->ids,
                               &next);
  }
  if (err == RL_OK) {
    publish(rl, next);
  }
  pthread_mutex_unlock(&rl->reconfig_lock);
  return err;
}

int rl_policy_find(rl_limiter *rl, const char *name, size_t name_len,
                   size_t *index) {
  if (rl == NULL || name == NULL || index == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl__guard_token token;
  const rl__policy_table *t = rl__guard_enter(&rl->policies, &token);
  int err = rl__policy_table_find(t, name, name_len, index);
  rl__guard_exit(&token);
  return err;
}

static int check_request(const rl__policy_table *t, const rl_request *req) {
  if (req->key == NULL && req->key_len > 0) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  if (req->key_len == 0) {
    return RL_ERR_KEY_EMPTY;
  }
  if (req->key_len > t->max_key_len) {
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
  rl__guard_token token;
  const rl__policy_table *t = rl__guard_enter(&rl->policies, &token);
  int err = check_request(t, req);
  size_t index = 0;
  if (err == RL_OK && req->policy != NULL) {
    err = rl__policy_table_find(t, req->policy, req->policy_len, &index);
  }
  if (err == RL_OK) {
    err = rl__memstore_decide(rl->memory, t->ids[index],
                              &t->policies[index].shape, req->key, req->key_len,
                              now_ms(rl), (uint64_t)req->cost, out);
  }
  rl__guard_exit(&token);
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
