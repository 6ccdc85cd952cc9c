/*
 * limiter.c - rl_limiter: configuration, request validation and dispatch to
 * the store.
 *
 * The decision path is: enter the policy table's read-side guard (no lock,
 * see guard.h), validate the request (no state touched on error), find the
 * policy, and hand it to the store (store.h: memory or Redis), which ends
 * the guard section as soon as it no longer needs the table (the memory
 * store also reclaims its nodes with this guard, so it decides inside the
 * section). Nothing on it allocates except the first decision of a key in
 * memory.
 *
 * rl_reconfigure() replaces the policy table whole; see policy_table.h for
 * which keys keep their state.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fallback.h"
#include "guard.h"
#include "metrics.h"
#include "policy_table.h"
#include "redis_conn.h"
#include "redis_store.h"
#include "store.h"

struct rl_limiter {
  rl__guard policies;       /* publishes the current rl__policy_table */
  rl__store *store;         /* memory or Redis (store.h) */
  rl_store_type store_type; /* fixed at creation */
  rl__metrics *metrics;     /* counters (metrics.h); fixed at creation */
  rl__store *fallback;      /* the fallback layer in store's chain, or NULL */
  /* Reconfiguration side, under reconfig_lock. */
  pthread_mutex_t reconfig_lock;
  rl__id_pool ids;
  uint64_t retired[RL__POLICY_IDS / 64]; /* scratch for publish() */
};

/* Every layer counts into the limiter's metrics (m may be NULL). */
static int store_new(const rl_config *config, rl__guard *guard, rl__metrics *m,
                     rl__store **out, rl__store **fallback) {
  *fallback = NULL;
  if (config->store == RL_STORE_REDIS) {
    rl__store *redis = NULL;
    int err = rl__store_redis_new(config, &redis, NULL, 0);
    if (err == RL_OK) {
      redis->metrics = m;
      /* graceful degradation wraps the Redis store (fallback.h) */
      err = rl__store_fallback_new(config, redis, out);
    }
    if (err == RL_OK) {
      (*out)->metrics = m;
      *fallback = *out;
    }
    /* cache layer (issue 5): limiter -> cache -> fallback -> Redis */
    if (err == RL_OK && config->cache.enabled) {
      err = rl__store_cache_new(config, *out, guard, out);
      if (err == RL_OK) {
        (*out)->metrics = m;
      }
    }
    return err;
  }
  int err = rl__store_memory_new(config, guard, out);
  if (err == RL_OK) {
    (*out)->metrics = m;
  }
  return err;
}

/* ---- metrics (metrics.h) ---- */

static int metrics_new(rl_limiter *rl, const rl_config *config,
                       rl__policy_table *table) {
  int err =
      rl__metrics_new(!config->metrics.disabled, config->store, &rl->metrics);
  if (err == RL_OK) {
    rl__metrics_assign(rl->metrics, table);
  }
  return err;
}

/* The store counts its Redis round trips; every configured node gets a
 * breaker gauge (closed until the breaker says otherwise). */
static void metrics_attach(rl_limiter *rl, const rl_config *config) {
  rl->store->metrics = rl->metrics;
  for (size_t i = 0;
       config->store == RL_STORE_REDIS && i < config->redis.n_addrs; i++) {
    rl__metrics_node(rl->metrics, config->redis.addrs[i]);
  }
}

rl__metrics *rl__limiter_metrics(rl_limiter *rl) {
  return rl != NULL ? rl->metrics : NULL;
}

rl__store *rl__limiter_fallback(rl_limiter *rl) {
  return rl != NULL ? rl->fallback : NULL;
}

/* One node's breaker into its gauge (labelled by the node's host:port). */
static void node_gauge(struct rl__redis_node *n, void *ctx) {
  rl__metrics *m = ctx;
  int idx = rl__metrics_node(m, rl__redis_node_addr(n));
  if (idx >= 0) {
    rl__metrics_breaker_state(
        m, idx, (rl__breaker_state)rl__redis_node_breaker_gauge(n));
  }
}

/* Gauges read at scrape time: the breaker of every node commands go to
 * (the standalone server, or each current cluster master). */
void rl__limiter_refresh_gauges(rl_limiter *rl) {
  if (rl == NULL || rl->fallback == NULL || rl->metrics == NULL) {
    return;
  }
  rl__redis_store_for_each_node(rl__store_fallback_inner(rl->fallback),
                                node_gauge, rl->metrics);
}

static void count(rl_limiter *rl, int err, unsigned slot,
                  const rl_decision *d) {
  if (err == RL_OK) {
    rl__metrics_decision(rl->metrics, slot, d);
  } else {
    rl__metrics_error(rl->metrics, err);
  }
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
  rl->store_type = config->store;
  rl__policy_table *table = NULL;
  err = rl__policy_table_new(config, NULL, &rl->ids, &table);
  rl__guard_init(&rl->policies, table);
  if (err == RL_OK) {
    err = metrics_new(rl, config, table);
  }
  if (err == RL_OK) {
    err = store_new(config, &rl->policies, rl->metrics, &rl->store,
                    &rl->fallback);
  }
  if (err == RL_OK) {
    metrics_attach(rl, config);
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
  if (rl->store != NULL) {
    rl->store->ops->free(rl->store);
  }
  rl__policy_table_free(rl__guard_peek(&rl->policies));
  rl__metrics_free(rl->metrics);
  pthread_mutex_destroy(&rl->reconfig_lock);
  free(rl);
}

rl__store *rl__limiter_store(rl_limiter *rl) {
  return rl != NULL ? rl->store : NULL;
}

int rl_wait_ready(rl_limiter *rl, uint32_t timeout_ms, char *errbuf,
                  size_t errlen) {
  if (rl == NULL) {
    return rl__fail(RL_ERR_INVALID_ARGUMENT, errbuf, errlen, "rl is NULL");
  }
  return rl->store->ops->wait_ready(rl->store, timeout_ms, errbuf, errlen);
}

/* Settings that shape the store cannot change while it holds state. */
static int check_live_change(const rl_limiter *rl, const rl_config *c,
                             char *errbuf, size_t errlen) {
  if (c->store != rl->store_type) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "the store cannot change on a live limiter: create a "
                    "new one");
  }
  return rl->store->ops->check_live_change(rl->store, c, errbuf, errlen);
}

/* Publishes next, waits until no decision uses the old table, purges the
 * keys of the policy ids no longer used and frees their ids. */
static void publish(rl_limiter *rl, rl__policy_table *next) {
  rl__policy_table *old = rl__guard_replace(&rl->policies, next);
  if (rl->store->ops->reconfigured != NULL) { /* cache: leases go back */
    rl->store->ops->reconfigured(rl->store, old);
  }
  if (rl__policy_table_retired(old, next, rl->retired) > 0) {
    rl->store->ops->retire(rl->store, rl->retired);
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
    rl__metrics_assign(rl->metrics, next);
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

/* Enters the guard, validates req and finds its policy. On RL_OK the
 * guard section is open (the store ends it); on error it is closed. */
static int begin(rl_limiter *rl, const rl_request *req,
                 const rl__policy_table **t, size_t *index,
                 rl__guard_token *token) {
  *t = rl__guard_enter(&rl->policies, token);
  int err = check_request(*t, req);
  *index = 0;
  if (err == RL_OK && req->policy != NULL) {
    err = rl__policy_table_find(*t, req->policy, req->policy_len, index);
  }
  if (err != RL_OK) {
    rl__guard_exit(token);
  }
  return err;
}

int rl_decide(rl_limiter *rl, const rl_request *req, rl_decision *out) {
  if (rl == NULL || req == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl__guard_token token;
  const rl__policy_table *t = NULL;
  size_t index = 0;
  int err = begin(rl, req, &t, &index, &token);
  unsigned slot = RL__METRIC_SLOT_NONE;
  if (err == RL_OK) {
    slot = t->metric_slots[index]; /* t is not ours after decide */
    out->source = RL_SOURCE_NONE;  /* a layer (cache) may set it */
    err = rl->store->ops->decide(rl->store, t, index, req, out, &token);
  }
  if (err == RL_OK) {
    if (out->source == RL_SOURCE_NONE) {
      out->source =
          rl->store_type == RL_STORE_REDIS ? RL_SOURCE_REDIS : RL_SOURCE_MEMORY;
    }
    out->policy = index;
  }
  count(rl, err, slot, out);
  return err;
}

int rl_decide_async(rl_limiter *rl, const rl_request *req, rl_decision_cb cb,
                    void *ud) {
  if (rl == NULL || req == NULL || cb == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl__guard_token token;
  const rl__policy_table *t = NULL;
  size_t index = 0;
  int err = begin(rl, req, &t, &index, &token);
  if (err == RL_OK) {
    err =
        rl->store->ops->decide_async(rl->store, t, index, req, cb, ud, &token);
  }
  if (err != RL_OK) { /* the store counts what reaches a callback */
    rl__metrics_error(rl->metrics, err);
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
  rl->store->ops->memory_stats(rl->store, out);
  return RL_OK;
}
