/*
 * store_memory.c - the memory store behind the store interface (store.h):
 * reads the limiter's clock once per decision and decides in
 * memory_store.c. rl_decide_async() on it decides synchronously and calls
 * the callback before returning.
 */
#include <stdlib.h>
#include <time.h>

#include "memory_store.h"
#include "metrics.h"
#include "policy.h"
#include "store.h"

typedef struct mem_store {
  rl__store base;
  rl__memstore *ms;
  rl_clock_fn clock;
  void *clock_ctx;
  size_t max_bytes;
  unsigned stripes;
} mem_store;

static int64_t realtime_ms(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t now_ms(const mem_store *m) {
  int64_t t = m->clock(m->clock_ctx);
  return t < 0 ? 0 : t;
}

static int mem_decide(rl__store *s, const rl__policy_table *t, size_t index,
                      const rl_request *req, rl_decision *out,
                      rl__guard_token *token) {
  mem_store *m = (mem_store *)s;
  int err = rl__memstore_decide(m->ms, t->ids[index], &t->policies[index].shape,
                                req->key, req->key_len, now_ms(m),
                                (uint64_t)req->cost, out);
  rl__guard_exit(token);
  return err;
}

static int mem_decide_async(rl__store *s, const rl__policy_table *t,
                            size_t index, const rl_request *req,
                            rl_decision_cb cb, void *ud,
                            rl__guard_token *token) {
  rl_decision d;
  unsigned slot = t->metric_slots[index]; /* t is not ours after decide */
  int err = mem_decide(s, t, index, req, &d, token);
  if (err == RL_OK) {
    d.source = RL_SOURCE_MEMORY;
    d.policy = index;
    rl__metrics_decision(s->metrics, slot, &d);
    cb(RL_OK, &d, ud);
  }
  return err;
}

static int mem_wait_ready(rl__store *s, uint32_t timeout_ms, char *errbuf,
                          size_t errlen) {
  (void)s;
  (void)timeout_ms;
  if (errbuf != NULL && errlen > 0) {
    errbuf[0] = '\0';
  }
  return RL_OK;
}

/* The budget, stripes and clock shape the store's state. */
static int mem_check_live_change(rl__store *s, const rl_config *c, char *errbuf,
                                 size_t errlen) {
  const mem_store *m = (const mem_store *)s;
  unsigned stripes = 0;
  rl_clock_fn clock = c->clock != NULL ? c->clock : realtime_ms;
  if (c->memory.max_bytes != m->max_bytes || clock != m->clock ||
      c->clock_ctx != m->clock_ctx ||
      rl__memory_stripes(c, &stripes, NULL, 0) != RL_OK ||
      stripes != m->stripes) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "the store, its memory budget, stripes and clock cannot "
                    "change on a live limiter: create a new one");
  }
  return RL_OK;
}

static void mem_retire(rl__store *s, const uint64_t *retired) {
  rl__memstore_purge(((mem_store *)s)->ms, retired);
}

static void mem_stats(rl__store *s, rl_memory_stats *out) {
  rl__memstore_stats(((mem_store *)s)->ms, out);
}

static void mem_free(rl__store *s) {
  mem_store *m = (mem_store *)s;
  rl__memstore_free(m->ms);
  free(m);
}

static const rl__store_ops mem_ops = {
    mem_decide,     mem_decide_async,
    mem_wait_ready, mem_check_live_change,
    mem_retire,     mem_stats,
    mem_free,       NULL,
    NULL,           NULL, /* no Redis: no cache layer */
    NULL,
};

int rl__store_memory_new(const rl_config *config, rl__guard *guard,
                         rl__store **out) {
  mem_store *m = calloc(1, sizeof *m);
  if (m == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  m->base.ops = &mem_ops;
  m->clock = config->clock != NULL ? config->clock : realtime_ms;
  m->clock_ctx = config->clock_ctx;
  m->max_bytes = config->memory.max_bytes;
  int err = rl__memory_stripes(config, &m->stripes, NULL, 0);
  if (err == RL_OK) {
    err = rl__memstore_new(m->max_bytes, m->stripes, guard, &m->ms);
  }
  if (err != RL_OK) {
    free(m);
    return err;
  }
  *out = &m->base;
  return RL_OK;
}
