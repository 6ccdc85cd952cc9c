/*
 * store_fallback.c - the fallback store: graceful degradation around the
 * Redis store (fallback.h; docs/Degradation.md).
 *
 * DESIGN
 *
 * Decisions. Every decision goes to the wrapped store first. Only two of
 * its answers trigger the fallback: RL_ERR_BACKEND_UNAVAILABLE (no
 * connection, the node's breaker is open, the queue is full, Redis
 * answered an error) and RL_ERR_TIMEOUT. Bad input, RL_ERR_NO_MEMORY and
 * RL_ERR_SHUTDOWN pass through. The policy's resolved mode (policy.h)
 * then decides: none (the error), open (admit), closed (deny, retry after
 * one probe interval) or local (the memory store below, on the local
 * share of each limit). Each decision's source says which.
 *
 * The policy table. The wrapped store ends the caller's guard section as
 * soon as it has formatted its command, so that a slow Redis never holds
 * up rl_reconfigure(); the fallback may need the policy after that. So a
 * decision whose policy can fall back copies the policy (and its store
 * id) first: a few hundred bytes on the stack, no allocation.
 *
 * Local state. The local memory store keys a (policy id, key) like the
 * memory store, with the local shape's layout hash in front of the key:
 * a live change of local_instances that changes the local state layout
 * then starts fresh instead of reading old bytes.
 *
 * Reconciliation. A unit admitted locally after Redis refused the
 * decision before running it (RL_ERR_BACKEND_UNAVAILABLE) goes into the
 * pending table (reconcile.h) under its Redis key. After a timeout Redis
 * may have run the decision already (the command went out), so those
 * units are not reconciled: at most once, never counted twice. A
 * reconciler thread wakes every RECONCILE_TICK_MS; while the node's
 * breaker is closed it takes the whole table and sends one reconcile.lua
 * per key. While the breaker is open but a connection is ready it sends a
 * PING, which is the breaker's probe when one is due: an instance without
 * traffic still finds Redis back. An answer adds
 * the units; a refusal before sending puts them back; a lost or timed-out call
 * is not retried (counted as lost); an error reply drops them (counted).
 *
 * Asynchronous decisions keep the copied policy and the key in a record
 * from a free list that only grows (like the Redis store's), so the
 * fallback can decide on the loop thread when the callback reports an
 * error.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fallback.h"
#include "hash.h"
#include "memory_store.h"
#include "metrics.h"
#include "reconcile.h"
#include "redis_keys.h"
#include "redis_loop.h"
#include "redis_store.h"

#define RECONCILE_TICK_MS 20
/* How long a reconciliation without an answer is retried. */
#define RECONCILE_RETRY_MS 60000
#define REQ_CHUNK 32
#define REQ_KEY_INLINE 256
#define LAYOUT_BYTES 4

typedef struct fb_store fb_store;

/* What a decision needs once the guard section has ended. */
typedef struct fb_policy {
  rl__policy p;
  uint16_t id;
  size_t index;
} fb_policy;

/* An asynchronous decision in flight. */
typedef struct fb_req {
  struct fb_req *next; /* free list */
  fb_store *f;
  rl_decision_cb cb;
  void *ud;
  fb_policy pol;
  int64_t cost;
  char *key; /* key_inline or a heap buffer kept for reuse */
  size_t key_len, key_cap;
  char key_inline[REQ_KEY_INLINE];
} fb_req;

typedef struct fb_chunk {
  struct fb_chunk *next;
  fb_req reqs[REQ_CHUNK];
} fb_chunk;

struct fb_store {
  rl__store base;
  rl__store *inner; /* the Redis store */
  rl__memstore *local;
  rl__guard *local_guard; /* the local store's reclamation (memory_store.h):
                           * local decisions run in its read sections; its
                           * own allocation (cache-line aligned slots) */
  rl__pending *pending;
  rl_clock_fn clock;
  void *clock_ctx;
  uint32_t probe_ms;
  uint32_t threshold;
  size_t reconcile_max_keys;
  atomic_uint_fast64_t n_open, n_closed, n_local, n_errors;
  atomic_uint_fast64_t n_reconciled, n_rc_dropped, n_rc_lost;
  atomic_uint_fast64_t rc_keys, rc_units; /* taken by the reconciler now */
  atomic_uint_fast64_t rc_seq_take;       /* odd while rc_take() runs */
  /* reconciler thread only */
  uint64_t rc_instance;     /* random: this limiter's reconciliation ids */
  uint64_t rc_seq;          /* the last id handed out */
  rl__pending_entry *retry; /* sent, no answer yet: same id next tick */
  /* reconciler thread */
  pthread_t thread;
  int thread_started;
  pthread_mutex_t mu; /* stop, the request free list and chunks */
  pthread_cond_t cv;
  int stop;
  fb_req *free_reqs;
  fb_chunk *chunks;
};

static void inc(atomic_uint_fast64_t *c, uint64_t n) {
  atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static int64_t realtime_ms(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void) {
  return rl__mono_ns() / 1000000;
}

/* Errors after which a decision falls back. */
static int falls_back(int err) {
  return err == RL_ERR_BACKEND_UNAVAILABLE || err == RL_ERR_TIMEOUT;
}

/* ---- the fallback decision ---------------------------------------------- */

static void decide_open(const fb_policy *fp, rl_decision *out) {
  memset(out, 0, sizeof *out);
  out->allowed = 1;
  out->limit = fp->p.shape.windows[0].limit;
  out->remaining = out->limit; /* unknown: nothing was counted */
  out->source = RL_SOURCE_FALLBACK_OPEN;
}

static void decide_closed(const fb_store *f, const fb_policy *fp,
                          rl_decision *out) {
  memset(out, 0, sizeof *out);
  out->limit = fp->p.shape.windows[0].limit;
  out->retry_after_ms = f->probe_ms; /* when Redis may be asked again */
  out->reset_after_ms = f->probe_ms;
  out->source = RL_SOURCE_FALLBACK_CLOSED;
}

/* Remembers units admitted locally under their Redis key. */
static void remember(fb_store *f, const fb_policy *fp, const void *key,
                     size_t key_len, uint64_t units) {
  char part[RL__REDIS_POLICY_PART_MAX];
  char rkey[RL__REDIS_KEY_MAX];
  size_t part_len =
      rl__redis_policy_part(fp->p.name, fp->p.name_len, fp->p.layout, part);
  size_t rlen = 0;
  if (rl__redis_key(part, part_len, key, key_len, rkey, sizeof rkey, &rlen) ==
      RL_OK) {
    rl__pending_add(f->pending, rkey, rlen, &fp->p.shape, units, mono_ms());
  }
}

static int decide_local(fb_store *f, const fb_policy *fp, const void *key,
                        size_t key_len, int64_t cost, int reconcile,
                        rl_decision *out) {
  char lkey[LAYOUT_BYTES + RL_KEY_MAX];
  uint32_t layout = fp->p.local_layout;
  memcpy(lkey, &layout, LAYOUT_BYTES);
  memcpy(lkey + LAYOUT_BYTES, key, key_len);
  int64_t now = f->clock(f->clock_ctx);
  rl__guard_token token;
  rl__guard_enter(f->local_guard, &token);
  int err = rl__memstore_decide(f->local, fp->id, &fp->p.local_shape, lkey,
                                LAYOUT_BYTES + key_len, now < 0 ? 0 : now,
                                (uint64_t)cost, out);
  rl__guard_exit(&token);
  if (err == RL_OK) {
    out->source = RL_SOURCE_FALLBACK_LOCAL;
    if (out->allowed && reconcile) {
      remember(f, fp, key, key_len, (uint64_t)cost);
    }
  }
  return err;
}

/* Decides after the wrapped store answered err (one that falls back). */
static int fall_back(fb_store *f, const fb_policy *fp, const void *key,
                     size_t key_len, int64_t cost, int err, rl_decision *out) {
  int rc = RL_OK;
  switch (fp->p.fallback) {
  case RL_FALLBACK_OPEN:
    decide_open(fp, out);
    inc(&f->n_open, 1);
    rl__metrics_fallback(f->base.metrics, RL__FALLBACK_OPEN);
    break;
  case RL_FALLBACK_CLOSED:
    decide_closed(f, fp, out);
    inc(&f->n_closed, 1);
    rl__metrics_fallback(f->base.metrics, RL__FALLBACK_CLOSED);
    break;
  case RL_FALLBACK_LOCAL:
    rc = decide_local(f, fp, key, key_len, cost,
                      err == RL_ERR_BACKEND_UNAVAILABLE, out);
    inc(&f->n_local, 1);
    rl__metrics_fallback(f->base.metrics, RL__FALLBACK_LOCAL);
    break;
  default:
    inc(&f->n_errors, 1);
    return err;
  }
  out->policy = fp->index;
  return rc;
}

static void copy_policy(fb_policy *fp, const rl__policy_table *t,
                        size_t index) {
  fp->p = t->policies[index];
  fp->id = t->ids[index];
  fp->index = index;
}

/* ---- blocking decisions ------------------------------------------------- */

static int fb_decide(rl__store *s, const rl__policy_table *t, size_t index,
                     const rl_request *req, rl_decision *out,
                     rl__guard_token *token) {
  fb_store *f = (fb_store *)s;
  if (t->policies[index].fallback == RL_FALLBACK_NONE) {
    int err = f->inner->ops->decide(f->inner, t, index, req, out, token);
    if (falls_back(err)) {
      inc(&f->n_errors, 1);
    }
    return err;
  }
  fb_policy fp;
  copy_policy(&fp, t, index);
  int err = f->inner->ops->decide(f->inner, t, index, req, out, token);
  if (err == RL_OK) {
    out->source = RL_SOURCE_REDIS;
  } else if (falls_back(err)) {
    err = fall_back(f, &fp, req->key, req->key_len, req->cost, err, out);
  }
  return err;
}

/* ---- asynchronous decisions --------------------------------------------- */

static fb_req *req_take(fb_store *f) {
  pthread_mutex_lock(&f->mu);
  if (f->free_reqs == NULL) {
    fb_chunk *c = calloc(1, sizeof *c);
    if (c != NULL) {
      c->next = f->chunks;
      f->chunks = c;
      for (size_t i = 0; i < REQ_CHUNK; i++) {
        c->reqs[i].key = c->reqs[i].key_inline;
        c->reqs[i].key_cap = REQ_KEY_INLINE;
        c->reqs[i].next = f->free_reqs;
        f->free_reqs = &c->reqs[i];
      }
    }
  }
  fb_req *r = f->free_reqs;
  if (r != NULL) {
    f->free_reqs = r->next;
  }
  pthread_mutex_unlock(&f->mu);
  return r;
}

static void req_give(fb_store *f, fb_req *r) {
  pthread_mutex_lock(&f->mu);
  r->next = f->free_reqs;
  f->free_reqs = r;
  pthread_mutex_unlock(&f->mu);
}

static int req_fill(fb_req *r, const rl__policy_table *t, size_t index,
                    const rl_request *req) {
  if (req->key_len > r->key_cap) {
    char *k = malloc(req->key_len);
    if (k == NULL) {
      return RL_ERR_NO_MEMORY;
    }
    if (r->key != r->key_inline) {
      free(r->key);
    }
    r->key = k;
    r->key_cap = req->key_len;
  }
  memcpy(r->key, req->key, req->key_len);
  r->key_len = req->key_len;
  r->cost = req->cost;
  copy_policy(&r->pol, t, index);
  return RL_OK;
}

/* The wrapped store's callback (loop thread, or the caller's thread from
 * rl_free with RL_ERR_SHUTDOWN). */
static void fb_async_cb(int err, const rl_decision *d, void *ud) {
  fb_req *r = ud;
  fb_store *f = r->f;
  rl_decision_cb cb = r->cb;
  void *cb_ud = r->ud;
  rl_decision local;
  if (falls_back(err)) {
    err = fall_back(f, &r->pol, r->key, r->key_len, r->cost, err, &local);
    d = &local;
  }
  req_give(f, r);
  cb(err, err == RL_OK ? d : NULL, cb_ud);
}

static int fb_decide_async(rl__store *s, const rl__policy_table *t,
                           size_t index, const rl_request *req,
                           rl_decision_cb cb, void *ud,
                           rl__guard_token *token) {
  fb_store *f = (fb_store *)s;
  if (t->policies[index].fallback == RL_FALLBACK_NONE) {
    return f->inner->ops->decide_async(f->inner, t, index, req, cb, ud, token);
  }
  fb_req *r = req_take(f);
  int err = r != NULL ? req_fill(r, t, index, req) : RL_ERR_NO_MEMORY;
  if (err != RL_OK) {
    rl__guard_exit(token);
    if (r != NULL) {
      req_give(f, r);
    }
    return err;
  }
  r->f = f;
  r->cb = cb;
  r->ud = ud;
  err = f->inner->ops->decide_async(f->inner, t, index, req, fb_async_cb, r,
                                    token);
  if (err == RL_OK) {
    return RL_OK; /* fb_async_cb comes once */
  }
  rl_decision d;
  if (falls_back(err)) { /* refused at once: decide now, call back now */
    err = fall_back(f, &r->pol, r->key, r->key_len, r->cost, err, &d);
  }
  req_give(f, r);
  if (err == RL_OK) {
    cb(RL_OK, &d, ud);
  }
  return err;
}

/* ---- reconciliation ----------------------------------------------------- */

/* The reconciler is done with e (sent, dropped or put back). */
static void rc_done(fb_store *f, uint64_t units) {
  atomic_fetch_sub(&f->rc_units, units);
  atomic_fetch_sub(&f->rc_keys, 1);
}

/* Puts e back into the table, then stops counting it as in flight (in
 * that order, so a drain never sees it nowhere). */
static void rc_put_back(fb_store *f, rl__pending_entry *e) {
  uint64_t units = e->units;
  rl__pending_put_back(f->pending, e);
  rc_done(f, units);
}

/* Takes the whole table, counting it as in flight. rc_seq_take is odd
 * meanwhile: the entries are then neither in the table nor counted, and
 * rl__store_fallback_drain() must not take that for empty. */
static rl__pending_entry *rc_take(fb_store *f) {
  atomic_fetch_add(&f->rc_seq_take, 1);
  rl__pending_entry *all = rl__pending_take(f->pending);
  for (rl__pending_entry *e = all; e != NULL; e = e->next) {
    atomic_fetch_add(&f->rc_keys, 1);
    atomic_fetch_add(&f->rc_units, e->units);
  }
  atomic_fetch_add(&f->rc_seq_take, 1);
  return all;
}

/* Keeps e for a later tick: an entry that went out once keeps its id and
 * its units (a retry must be the same reconciliation); one never sent
 * merges back into the table. */
static void rc_keep(fb_store *f, rl__pending_entry *e) {
  if (e->rc_id == 0) {
    rc_put_back(f, e);
    return;
  }
  e->next = f->retry;
  f->retry = e;
}

static void rc_finish(fb_store *f, rl__pending_entry *e,
                      atomic_uint_fast64_t *counter) {
  inc(counter, e->units);
  rc_done(f, e->units);
  free(e);
}

/* Sends one entry (with its id, so that Redis applies it at most once);
 * frees it or keeps it. Returns 0 when it did not get through (the rest
 * of the batch then waits for the next tick). */
static int reconcile_one(fb_store *f, rl__pending_entry *e) {
  int64_t now = mono_ms();
  if (e->rc_id == 0) {
    e->rc_id = ++f->rc_seq;
    e->first_sent_ms = now;
  }
  char id[RL__REDIS_RC_ID_LEN + 1];
  snprintf(id, sizeof id, "%016llx%016llx", (unsigned long long)f->rc_instance,
           (unsigned long long)e->rc_id);
  int64_t age = now - e->last_ms;
  int rc =
      rl__redis_store_reconcile(f->inner, e->key, e->key_len, id, &e->shape,
                                e->units, age > 0 ? (uint64_t)age : 0);
  if (rc == RL_OK) {
    rc_finish(f, e, &f->n_reconciled);
    return 1;
  }
  if (rc == RL__REDIS_ERROR_REPLY) {
    rc_finish(f, e, &f->n_rc_dropped);
    return 1;
  }
  if (rc != RL_ERR_BACKEND_UNAVAILABLE &&
      now - e->first_sent_ms > RECONCILE_RETRY_MS) {
    rc_finish(f, e, &f->n_rc_lost); /* no answer for a minute: give up */
    return 1;
  }
  rc_keep(f, e); /* not run, or no answer yet: the same call next tick */
  return 0;
}

static int should_stop(fb_store *f, int wait) {
  pthread_mutex_lock(&f->mu);
  if (wait && !f->stop) {
    int64_t at = rl__mono_ns() + (int64_t)RECONCILE_TICK_MS * 1000000;
    struct timespec ts = {(time_t)(at / 1000000000), (long)(at % 1000000000)};
    pthread_cond_timedwait(&f->cv, &f->mu, &ts);
  }
  int stop = f->stop;
  pthread_mutex_unlock(&f->mu);
  return stop;
}

/* One pass: the entries being retried first, then the whole table. */
static void reconcile_all(fb_store *f) {
  rl__pending_entry *e = f->retry;
  f->retry = NULL;
  rl__pending_entry **tail = &e;
  while (*tail != NULL) {
    tail = &(*tail)->next;
  }
  *tail = rc_take(f);
  int go = 1;
  while (e != NULL) {
    rl__pending_entry *next = e->next;
    if (go && !should_stop(f, 0)) {
      go = reconcile_one(f, e);
    } else {
      go = 0;
      rc_keep(f, e); /* at rl_free: freed with the table or the list */
    }
    e = next;
  }
}

static void *reconciler(void *arg) {
  fb_store *f = arg;
  while (!should_stop(f, 1)) {
    rl__pending_stats ps;
    rl__pending_stats_get(f->pending, &ps);
    if ((ps.keys == 0 && f->retry == NULL) ||
        !rl__redis_store_connected(f->inner)) {
      continue;
    }
    if (!rl__redis_store_healthy(f->inner)) {
      /* breaker open: a PING is its probe when one is due */
      rl__redis_store_probe(f->inner);
      continue;
    }
    reconcile_all(f);
  }
  rl__redis_thread_cleanup();
  return NULL;
}

/* ---- the rest of the store interface ------------------------------------ */

static int fb_wait_ready(rl__store *s, uint32_t timeout_ms, char *errbuf,
                         size_t errlen) {
  fb_store *f = (fb_store *)s;
  return f->inner->ops->wait_ready(f->inner, timeout_ms, errbuf, errlen);
}

static int fb_check_live_change(rl__store *s, const rl_config *c, char *errbuf,
                                size_t errlen) {
  fb_store *f = (fb_store *)s;
  uint32_t threshold = c->fallback.circuit_breaker_threshold;
  uint32_t probe = c->fallback.probe_interval_ms;
  size_t max_keys = c->fallback.reconcile_max_keys;
  if ((threshold ? threshold : RL_BREAKER_THRESHOLD_DEFAULT) != f->threshold ||
      (probe ? probe : RL_BREAKER_PROBE_MS_DEFAULT) != f->probe_ms ||
      (max_keys ? max_keys : RL_RECONCILE_MAX_KEYS_DEFAULT) !=
          f->reconcile_max_keys) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "fallback.circuit_breaker_threshold, probe_interval_ms "
                    "and reconcile_max_keys cannot change on a live limiter: "
                    "create a new one");
  }
  return f->inner->ops->check_live_change(f->inner, c, errbuf, errlen);
}

static void fb_retire(rl__store *s, const uint64_t *retired) {
  fb_store *f = (fb_store *)s;
  rl__memstore_purge(f->local, retired);
  f->inner->ops->retire(f->inner, retired);
}

static void fb_memory_stats(rl__store *s, rl_memory_stats *out) {
  rl__memstore_stats(((fb_store *)s)->local, out);
}

#define FLUSH_AT_FREE_MS 2000

static void fb_free(rl__store *s) {
  fb_store *f = (fb_store *)s;
  /* Shutdown flushes what awaits reconciliation while Redis answers, for
   * at most FLUSH_AT_FREE_MS (ratelimitd's SIGTERM path); what is left is
   * dropped (the stats counted it as pending). */
  if (f->thread_started && rl__redis_store_healthy(f->inner) &&
      rl__redis_store_connected(f->inner)) {
    (void)rl__store_fallback_drain(s, FLUSH_AT_FREE_MS);
  }
  if (f->thread_started) {
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
  }
  if (f->inner != NULL) {
    f->inner->ops->free(f->inner); /* every async callback has run */
  }
  for (rl__pending_entry *e = f->retry, *next; e != NULL; e = next) {
    next = e->next;
    free(e);
  }
  rl__pending_free(f->pending);
  rl__memstore_free(f->local);
  free(f->local_guard); /* after the store it reclaims for */
  for (fb_chunk *c = f->chunks, *next; c != NULL; c = next) {
    next = c->next;
    for (size_t i = 0; i < REQ_CHUNK; i++) {
      if (c->reqs[i].key != c->reqs[i].key_inline) {
        free(c->reqs[i].key);
      }
    }
    free(c);
  }
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

/* The cache layer above sends its lease scripts through here to Redis;
 * they do not fall back themselves (the cache then decides through
 * fb_decide, which does). */
static int fb_script_call(rl__store *s, rl__script_cmd *cmd,
                          rl__script_consume_fn consume, void *out) {
  rl__store *inner = ((fb_store *)s)->inner;
  return inner->ops->script_call != NULL
             ? inner->ops->script_call(inner, cmd, consume, out)
             : RL_ERR_BACKEND_UNAVAILABLE;
}

static int fb_script_send(rl__store *s, rl__script_cmd *cmd) {
  rl__store *inner = ((fb_store *)s)->inner;
  return inner->ops->script_send != NULL ? inner->ops->script_send(inner, cmd)
                                         : RL_ERR_BACKEND_UNAVAILABLE;
}

static int fb_script_async(rl__store *s, rl__script_async *op) {
  rl__store *inner = ((fb_store *)s)->inner;
  return inner->ops->script_async != NULL ? inner->ops->script_async(inner, op)
                                          : RL_ERR_BACKEND_UNAVAILABLE;
}

static void fb_reconfigured(rl__store *s, const rl__policy_table *old) {
  rl__store *inner = ((fb_store *)s)->inner;
  if (inner->ops->reconfigured != NULL) {
    inner->ops->reconfigured(inner, old);
  }
}

static const rl__store_ops fallback_ops = {
    fb_decide,      fb_decide_async, fb_wait_ready,   fb_check_live_change,
    fb_retire,      fb_memory_stats, fb_free,         fb_script_call,
    fb_script_send, fb_reconfigured, fb_script_async,
};

/* ---- creation and queries ----------------------------------------------- */

static void fb_settings(fb_store *f, const rl_config *c) {
  uint32_t t = c->fallback.circuit_breaker_threshold;
  uint32_t p = c->fallback.probe_interval_ms;
  size_t k = c->fallback.reconcile_max_keys;
  f->threshold = t ? t : RL_BREAKER_THRESHOLD_DEFAULT;
  f->probe_ms = p ? p : RL_BREAKER_PROBE_MS_DEFAULT;
  f->reconcile_max_keys = k ? k : RL_RECONCILE_MAX_KEYS_DEFAULT;
  f->clock = c->clock != NULL ? c->clock : realtime_ms;
  f->clock_ctx = c->clock_ctx;
}

int rl__store_fallback_new(const rl_config *config, rl__store *inner,
                           rl__store **out) {
  fb_store *f = calloc(1, sizeof *f);
  if (f == NULL) {
    inner->ops->free(inner);
    return RL_ERR_NO_MEMORY;
  }
  f->base.ops = &fallback_ops;
  f->inner = inner;
  pthread_mutex_init(&f->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  fb_settings(f, config);
  rl__hash_key rnd;
  rl__hash_key_random(&rnd);
  f->rc_instance = rnd.k0 ^ rnd.k1;
  unsigned stripes = 0;
  int err = rl__memory_stripes(config, &stripes, NULL, 0);
  if (err == RL_OK) {
    f->local_guard = aligned_alloc(64, sizeof *f->local_guard);
    err = f->local_guard != NULL ? RL_OK : RL_ERR_NO_MEMORY;
  }
  if (err == RL_OK) {
    rl__guard_init(f->local_guard, NULL);
    err = rl__memstore_new(config->memory.max_bytes, stripes, f->local_guard,
                           &f->local);
  }
  if (err == RL_OK) {
    err = rl__pending_new(f->reconcile_max_keys, &f->pending);
  }
  if (err == RL_OK) {
    f->thread_started = pthread_create(&f->thread, NULL, reconciler, f) == 0;
    err = f->thread_started ? RL_OK : RL_ERR_BACKEND_UNAVAILABLE;
  }
  if (err != RL_OK) {
    fb_free(&f->base);
    return err;
  }
  *out = &f->base;
  return RL_OK;
}

rl__store *rl__store_fallback_inner(rl__store *s) {
  return s != NULL && s->ops == &fallback_ops ? ((fb_store *)s)->inner : s;
}

void rl__store_fallback_stats(rl__store *s, rl_fallback_stats *out) {
  memset(out, 0, sizeof *out);
  if (s == NULL || s->ops != &fallback_ops) {
    return;
  }
  fb_store *f = (fb_store *)s;
  out->fallback_open = atomic_load(&f->n_open);
  out->fallback_closed = atomic_load(&f->n_closed);
  out->fallback_local = atomic_load(&f->n_local);
  out->store_errors = atomic_load(&f->n_errors);
  rl__redis_node_stats ns;
  rl__redis_store_node_stats(f->inner, &ns);
  out->breaker_open = ns.breaker_state != 0;
  out->breaker_opened = ns.breaker_opened;
  out->breaker_closed = ns.breaker_closed;
  out->breaker_rejected = ns.breaker_rejected;
  rl__pending_stats ps;
  rl__pending_stats_get(f->pending, &ps);
  out->reconcile_pending_keys = ps.keys + atomic_load(&f->rc_keys);
  out->reconcile_pending_units = ps.units + atomic_load(&f->rc_units);
  out->reconciled_units = atomic_load(&f->n_reconciled);
  out->reconcile_dropped_units =
      ps.dropped_units + atomic_load(&f->n_rc_dropped);
  out->reconcile_lost_units = atomic_load(&f->n_rc_lost);
}

/* Nothing awaits reconciliation: checked between two equal, even values
 * of rc_seq_take, so not in the middle of a take. */
static int drained(rl__store *s) {
  if (s == NULL || s->ops != &fallback_ops) {
    return 1;
  }
  fb_store *f = (fb_store *)s;
  uint64_t seq = atomic_load(&f->rc_seq_take);
  rl_fallback_stats st;
  rl__store_fallback_stats(s, &st);
  return seq % 2 == 0 && st.reconcile_pending_keys == 0 &&
         atomic_load(&f->rc_seq_take) == seq;
}

int rl__store_fallback_drain(rl__store *s, uint32_t timeout_ms) {
  int64_t until = mono_ms() + timeout_ms;
  for (;;) {
    if (drained(s)) {
      return RL_OK;
    }
    if (mono_ms() >= until) {
      return RL_ERR_TIMEOUT;
    }
    struct timespec ts = {0, 5L * 1000000};
    nanosleep(&ts, NULL);
  }
}

int rl_fallback_stats_get(rl_limiter *rl, rl_fallback_stats *out) {
  if (rl == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl__store_fallback_stats(rl__limiter_fallback(rl), out);
  return RL_OK;
}
