/*
 * redis_store.c - the Redis store (RL_STORE_REDIS): one EVALSHA of the
 * algorithm's Lua script per decision, on one Redis node or on the node of
 * the key's slot in a Redis Cluster (redis_backend.h).
 *
 * DESIGN
 *
 * Hot path. A decision formats its key (docs/Redis.md) and its arguments
 * into stack buffers (rl__redis_cmd) while it holds the policy table's
 * guard, leaves the guard, and submits through the connection layer, which
 * copies the bytes into the connection's reused buffer. The blocking form
 * waits on the thread's reused waiter (rl__redis_node_call); the
 * asynchronous form keeps its command in a request record taken from a
 * free list that only grows (records are reused, never freed before the
 * store). Steady state allocates nothing.
 *
 * Time. The scripts read Redis' TIME: no client clock is ever sent, so
 * clients with skewed clocks decide identically.
 *
 * Deadline. Each decision gets one absolute deadline, now + timeout_ms,
 * computed once; a NOSCRIPT retry runs against the same deadline, so no
 * caller ever waits longer than timeout_ms.
 *
 * NOSCRIPT. Every (re)connect loads the scripts (the connection layer's
 * handshake), so NOSCRIPT only follows a SCRIPT FLUSH or a server that
 * lost its cache while the connection stayed up. The decision then
 * retries exactly once with EVAL of the full source (which also caches
 * the script again); an EVAL never answers NOSCRIPT, so this cannot loop.
 *
 * Errors. Connection failures, a full queue and error replies are
 * RL_ERR_BACKEND_UNAVAILABLE (the error reply is kept in the stats for
 * diagnostics); the deadline is RL_ERR_TIMEOUT; rl_free() with requests in
 * flight is RL_ERR_SHUTDOWN for each of them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua_scripts.h"
#include "metrics.h"
#include "redis_backend.h"
#include "redis_keys.h"
#include "redis_store.h"

#define NOSCRIPT (-1)        /* internal: the reply was NOSCRIPT */
#define ASYNC_CHUNK 64       /* async records allocated at a time */
#define ASYNC_KEY_INLINE 200 /* Redis key bytes kept inside a record */

typedef struct redis_store redis_store;

/* The reconciler's wait for one reconcile.lua reply (generation-tagged,
 * so a reply after the wait gave up is ignored). */
typedef struct rc_waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t gen;
  int done, result;
} rc_waiter;

/* An asynchronous decision in flight. */
typedef struct async_req {
  struct async_req *next; /* free list */
  redis_store *st;
  rl_decision_cb cb;
  void *ud;
  size_t policy;
  unsigned metric_slot; /* the policy's metrics slot (metrics.h) */
  int64_t deadline_ns;
  size_t script;
  int retried;
  char *key; /* key_inline, or a heap buffer kept for reuse */
  size_t key_cap;
  rl__redis_cmd cmd;
  char key_inline[ASYNC_KEY_INLINE];
} async_req;

typedef struct async_chunk {
  struct async_chunk *next;
  async_req reqs[ASYNC_CHUNK];
} async_chunk;

struct redis_store {
  rl__store base;
  rl__redis_backend *be; /* one node, or the cluster router */
  int64_t timeout_ns;
  char *settings; /* canonical text of the redis settings (live check) */
  size_t settings_len;
  atomic_uint_fast64_t n_decisions, n_noscript, n_retries, n_errors, n_timeouts;
  pthread_mutex_t mu; /* last_error, the async free list and chunks */
  char last_error[RL__REDIS_ERRSTR_LEN];
  async_req *free_reqs;
  async_chunk *chunks;
  rc_waiter rc; /* rl__redis_store_reconcile (one caller at a time) */
};

static void rc_waiter_init(rc_waiter *w);
static void rc_waiter_destroy(rc_waiter *w);

static _Thread_local int64_t last_now_ms = -1;

int64_t rl__redis_last_now_ms(void) {
  return last_now_ms;
}

void rl__redis_note_now_ms(int64_t now_ms) {
  last_now_ms = now_ms;
}

/* ---- commands ----------------------------------------------------------- */

size_t rl__redis_script_index(rl_algorithm alg) {
  return (size_t)(rl__script_for(alg) - rl__scripts);
}

size_t rl__put_u64(char *buf, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (size_t i = 0; i < n; i++) {
    buf[i] = tmp[n - 1 - i];
  }
  buf[n] = '\0';
  return n;
}

static void arg_num(rl__redis_cmd *cmd, size_t slot, uint64_t v) {
  int i = cmd->argc++;
  cmd->lens[i] = rl__put_u64(cmd->nums[slot], v);
  cmd->argv[i] = cmd->nums[slot];
}

static void arg_str(rl__redis_cmd *cmd, const char *s, size_t len) {
  cmd->argv[cmd->argc] = s;
  cmd->lens[cmd->argc++] = len;
}

int rl__redis_cmd_build(rl__redis_cmd *cmd, const char *sha,
                        const rl__policy *p, const void *key, size_t key_len,
                        uint64_t cost, char *keybuf, size_t keycap) {
  char part[RL__REDIS_POLICY_PART_MAX];
  size_t part_len =
      rl__redis_policy_part(p->name, p->name_len, p->layout, part);
  size_t klen = 0;
  int err = rl__redis_key(part, part_len, key, key_len, keybuf, keycap, &klen);
  if (err != RL_OK) {
    return err;
  }
  const rl__policy_shape *s = &p->shape;
  cmd->argc = 0;
  arg_str(cmd, "EVALSHA", 7);
  arg_str(cmd, sha, RL__REDIS_SHA_LEN);
  arg_str(cmd, "1", 1);
  arg_str(cmd, keybuf, klen);
  arg_num(cmd, 0, cost);
  arg_num(cmd, 1, s->n_windows);
  for (size_t i = 0; i < s->n_windows; i++) {
    const rl__window_params *w = &s->windows[i];
    arg_num(cmd, 2 + 4 * i, w->limit);
    arg_num(cmd, 3 + 4 * i, w->duration_ms);
    arg_num(cmd, 4 + 4 * i, w->burst);
    arg_num(cmd, 5 + 4 * i, w->log_slots);
  }
  return RL_OK;
}

/* Turns an EVALSHA command into the EVAL of the same script. */
static void cmd_to_eval(rl__redis_cmd *cmd, size_t script) {
  cmd->argv[0] = "EVAL";
  cmd->lens[0] = 4;
  cmd->argv[1] = rl__scripts[script].source;
  cmd->lens[1] = rl__scripts[script].len;
}

static rl__redis_args args_of(const rl__redis_cmd *cmd) {
  rl__redis_args a = {cmd->argc, cmd->argv, cmd->lens};
  return a;
}

/* ---- replies ------------------------------------------------------------ */

static void stat_inc(atomic_uint_fast64_t *s) {
  atomic_fetch_add_explicit(s, 1, memory_order_relaxed);
}

/* Keeps an error reply's text for diagnostics. */
static void note_error(redis_store *st, const char *what, const char *detail) {
  stat_inc(&st->n_errors);
  pthread_mutex_lock(&st->mu);
  snprintf(st->last_error, sizeof st->last_error, "%s%s", what, detail);
  pthread_mutex_unlock(&st->mu);
}

static int is_noscript(const rl__redis_reply *r) {
  return r->type == RL__REPLY_ERROR && r->len >= 8 &&
         memcmp(r->str, "NOSCRIPT", 8) == 0;
}

/* The 7 integers of docs/Redis.md into d (not source, policy). */
static int fill_decision(const rl__redis_reply *r, rl_decision *d,
                         int64_t *now) {
  if (r->type != RL__REPLY_ARRAY || r->elements != 7) {
    return -1;
  }
  long long v[7];
  for (size_t i = 0; i < 7; i++) {
    if (r->element[i].type != RL__REPLY_INTEGER) {
      return -1;
    }
    v[i] = r->element[i].integer;
  }
  if ((v[0] != 0 && v[0] != 1) || v[1] < 0 || v[1] >= RL_MAX_WINDOWS ||
      v[2] < 1 || v[3] < 0 || v[4] < 0 || v[5] < -1 || v[6] < 0) {
    return -1;
  }
  d->allowed = (int)v[0];
  d->window = (int)v[1];
  d->limit = (uint64_t)v[2];
  d->remaining = (uint64_t)v[3];
  d->reset_after_ms = (uint64_t)v[4];
  d->retry_after_ms = v[5] < 0 ? RL_RETRY_NEVER : (uint64_t)v[5];
  *now = v[6];
  return 0;
}

/* RL_OK with d filled, NOSCRIPT, or RL_ERR_BACKEND_UNAVAILABLE. Runs on
 * the loop thread. */
static int parse_reply(redis_store *st, const rl__redis_reply *r,
                       rl_decision *d, int64_t *now) {
  if (is_noscript(r)) {
    stat_inc(&st->n_noscript);
    return NOSCRIPT;
  }
  if (r->type == RL__REPLY_ERROR) {
    note_error(st, "", r->str);
    return RL_ERR_BACKEND_UNAVAILABLE;
  }
  if (fill_decision(r, d, now) != 0) {
    note_error(st, "unexpected reply to a decision", "");
    return RL_ERR_BACKEND_UNAVAILABLE;
  }
  return RL_OK;
}

/* ---- blocking decisions ------------------------------------------------- */

typedef struct sync_out {
  redis_store *st;
  rl_decision *d;
  int64_t now;
} sync_out;

static int sync_consume(const rl__redis_reply *r, void *out) {
  sync_out *o = out;
  return parse_reply(o->st, r, o->d, &o->now);
}

/* The Redis key of a built command (it picks the cluster slot). */
#define CMD_KEY(cmd) (cmd)->argv[3], (cmd)->lens[3]

/* Sends cmd; after a NOSCRIPT, once more as EVAL (same deadline). */
static int sync_call(redis_store *st, rl__redis_cmd *cmd, size_t script,
                     rl_decision *out) {
  int64_t start = rl__mono_ns();
  int64_t deadline = start + st->timeout_ns;
  sync_out o = {st, out, -1};
  rl__redis_args a = args_of(cmd);
  stat_inc(&st->n_decisions);
  int err = rl__redis_backend_call(st->be, CMD_KEY(cmd), &a, deadline,
                                   sync_consume, &o);
  if (err == NOSCRIPT) {
    stat_inc(&st->n_retries);
    cmd_to_eval(cmd, script);
    a = args_of(cmd);
    err = rl__redis_backend_call(st->be, CMD_KEY(cmd), &a, deadline,
                                 sync_consume, &o);
    if (err == NOSCRIPT) { /* cannot happen with EVAL; never loop */
      err = RL_ERR_BACKEND_UNAVAILABLE;
    }
  }
  if (err == RL_ERR_TIMEOUT) {
    stat_inc(&st->n_timeouts);
  } else if (err == RL_OK) {
    last_now_ms = o.now;
  }
  rl__metrics_redis_latency(st->base.metrics, RL__REDIS_OP_ALLOW,
                            rl__mono_ns() - start);
  return err;
}

static int rs_decide(rl__store *s, const rl__policy_table *t, size_t index,
                     const rl_request *req, rl_decision *out,
                     rl__guard_token *token) {
  redis_store *st = (redis_store *)s;
  const rl__policy *p = &t->policies[index];
  size_t script = rl__redis_script_index(p->shape.algorithm);
  char key[RL__REDIS_KEY_MAX];
  rl__redis_cmd cmd;
  int err = rl__redis_cmd_build(
      &cmd, rl__redis_backend_script_sha(st->be, script), p, req->key,
      req->key_len, (uint64_t)req->cost, key, sizeof key);
  rl__guard_exit(token);
  if (err != RL_OK) {
    return err;
  }
  return sync_call(st, &cmd, script, out);
}

/* ---- asynchronous decisions --------------------------------------------- */

/* A free record, growing the pool by a chunk when it is empty. */
static async_req *req_take(redis_store *st) {
  pthread_mutex_lock(&st->mu);
  if (st->free_reqs == NULL) {
    async_chunk *c = calloc(1, sizeof *c);
    if (c != NULL) {
      c->next = st->chunks;
      st->chunks = c;
      for (size_t i = 0; i < ASYNC_CHUNK; i++) {
        c->reqs[i].key = c->reqs[i].key_inline;
        c->reqs[i].key_cap = ASYNC_KEY_INLINE;
        c->reqs[i].next = st->free_reqs;
        st->free_reqs = &c->reqs[i];
      }
    }
  }
  async_req *a = st->free_reqs;
  if (a != NULL) {
    st->free_reqs = a->next;
  }
  pthread_mutex_unlock(&st->mu);
  return a;
}

static void req_give(redis_store *st, async_req *a) {
  pthread_mutex_lock(&st->mu);
  a->next = st->free_reqs;
  st->free_reqs = a;
  pthread_mutex_unlock(&st->mu);
}

/* Makes room for a Redis key of need bytes (kept for later reuse). */
static int req_key_room(async_req *a, size_t need) {
  if (need <= a->key_cap) {
    return RL_OK;
  }
  char *k = malloc(need);
  if (k == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  if (a->key != a->key_inline) {
    free(a->key);
  }
  a->key = k;
  a->key_cap = need;
  return RL_OK;
}

/* Gives the record back, then calls the caller's callback once. */
static void async_finish(async_req *a, int err, rl_decision *d) {
  rl_decision_cb cb = a->cb;
  void *ud = a->ud;
  rl__metrics *m = a->st->base.metrics;
  d->source = RL_SOURCE_REDIS;
  d->policy = a->policy;
  if (err == RL_ERR_TIMEOUT) {
    stat_inc(&a->st->n_timeouts);
  }
  if (err != RL_ERR_SHUTDOWN) {
    rl__metrics_redis_latency(m, RL__REDIS_OP_ALLOW,
                              rl__mono_ns() -
                                  (a->deadline_ns - a->st->timeout_ns));
  }
  if (err == RL_OK) {
    rl__metrics_decision(m, a->metric_slot, d);
  } else {
    rl__metrics_error(m, err);
  }
  req_give(a->st, a);
  cb(err, err == RL_OK ? d : NULL, ud);
}

static void async_cb(int status, const rl__redis_reply *reply, void *ud,
                     uint64_t tag) {
  async_req *a = ud;
  rl_decision d;
  int64_t now = 0;
  (void)tag;
  memset(&d, 0, sizeof d);
  int err = status == RL_OK ? parse_reply(a->st, reply, &d, &now) : status;
  if (err == NOSCRIPT && !a->retried) {
    a->retried = 1;
    stat_inc(&a->st->n_retries);
    cmd_to_eval(&a->cmd, a->script);
    rl__redis_args args = args_of(&a->cmd);
    err = rl__redis_backend_submit(a->st->be, CMD_KEY(&a->cmd), &args,
                                   a->deadline_ns, async_cb, a, 0);
    if (err == RL_OK) {
      return; /* this callback comes again, once */
    }
  } else if (err == NOSCRIPT) {
    err = RL_ERR_BACKEND_UNAVAILABLE;
  }
  if (err == RL_OK) {
    last_now_ms = now; /* for the callback, which runs on this thread */
  }
  async_finish(a, err, &d);
}

static int async_prepare(redis_store *st, async_req *a,
                         const rl__policy_table *t, size_t index,
                         const rl_request *req) {
  const rl__policy *p = &t->policies[index];
  a->st = st;
  a->policy = index;
  a->metric_slot = t->metric_slots[index];
  a->retried = 0;
  a->script = rl__redis_script_index(p->shape.algorithm);
  int err = req_key_room(a, RL__REDIS_KEY_OVERHEAD + RL__REDIS_POLICY_PART_MAX +
                                req->key_len);
  if (err == RL_OK) {
    err = rl__redis_cmd_build(
        &a->cmd, rl__redis_backend_script_sha(st->be, a->script), p, req->key,
        req->key_len, (uint64_t)req->cost, a->key, a->key_cap);
  }
  return err;
}

static int rs_decide_async(rl__store *s, const rl__policy_table *t,
                           size_t index, const rl_request *req,
                           rl_decision_cb cb, void *ud,
                           rl__guard_token *token) {
  redis_store *st = (redis_store *)s;
  async_req *a = req_take(st);
  int err = a != NULL ? async_prepare(st, a, t, index, req) : RL_ERR_NO_MEMORY;
  rl__guard_exit(token);
  if (err == RL_OK) {
    a->cb = cb;
    a->ud = ud;
    a->deadline_ns = rl__mono_ns() + st->timeout_ns;
    rl__redis_args args = args_of(&a->cmd);
    stat_inc(&st->n_decisions);
    err = rl__redis_backend_submit(st->be, CMD_KEY(&a->cmd), &args,
                                   a->deadline_ns, async_cb, a, 0);
  }
  if (err != RL_OK && a != NULL) {
    req_give(st, a);
  }
  return err;
}

/* ---- the rest of the store interface ------------------------------------ */

static int rs_wait_ready(rl__store *s, uint32_t timeout_ms, char *errbuf,
                         size_t errlen) {
  redis_store *st = (redis_store *)s;
  return rl__redis_backend_wait_ready(st->be, timeout_ms, errbuf, errlen);
}

/* Appends s and its NUL (a NULL string as "\001"). */
static void put_str(char *out, size_t *n, const char *s) {
  s = s != NULL ? s : "\001";
  size_t len = strlen(s) + 1;
  memcpy(out + *n, s, len);
  *n += len;
}

static uint64_t or_default(uint64_t v, uint64_t dflt) {
  return v != 0 ? v : dflt;
}

/* The Redis settings as one canonical byte string, defaults applied:
 * equal strings mean equal settings. NULL when out of memory. */
static char *settings_text(const rl_config *c, size_t *len) {
  const char *strs[7 + 1] = {c->redis.username,       c->redis.password,
                             c->redis.tls.ca_file,    c->redis.tls.ca_dir,
                             c->redis.tls.cert_file,  c->redis.tls.key_file,
                             c->redis.tls.server_name};
  char num[160];
  snprintf(num, sizeof num, "%zu %llu %llu %llu %llu %d %d %d",
           c->redis.n_addrs,
           (unsigned long long)or_default(c->redis.pool_size,
                                          RL_REDIS_POOL_SIZE_DEFAULT),
           (unsigned long long)or_default(c->redis.timeout_ms,
                                          RL_REDIS_TIMEOUT_MS_DEFAULT),
           (unsigned long long)or_default(c->redis.connect_timeout_ms,
                                          RL_REDIS_CONNECT_TIMEOUT_MS_DEFAULT),
           (unsigned long long)or_default(c->redis.queue_max,
                                          RL_REDIS_QUEUE_MAX_DEFAULT),
           c->redis.db, c->redis.tls.enabled != 0, (int)c->redis.mode);
  strs[7] = num;
  size_t cap = 0, n = 0;
  for (size_t i = 0; i < c->redis.n_addrs; i++) {
    cap += strlen(c->redis.addrs[i]) + 1;
  }
  for (size_t i = 0; i < 8; i++) {
    cap += (strs[i] != NULL ? strlen(strs[i]) : 1) + 1;
  }
  char *out = malloc(cap);
  if (out == NULL) {
    return NULL;
  }
  for (size_t i = 0; i < c->redis.n_addrs; i++) {
    put_str(out, &n, c->redis.addrs[i]);
  }
  for (size_t i = 0; i < 8; i++) {
    put_str(out, &n, strs[i]);
  }
  *len = n;
  return out;
}

static int rs_check_live_change(rl__store *s, const rl_config *c, char *errbuf,
                                size_t errlen) {
  redis_store *st = (redis_store *)s;
  size_t len = 0;
  char *now = settings_text(c, &len);
  if (now == NULL) {
    return rl__fail(RL_ERR_NO_MEMORY, errbuf, errlen, "out of memory");
  }
  int same = len == st->settings_len && memcmp(now, st->settings, len) == 0;
  free(now);
  if (!same) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "the redis settings cannot change on a live limiter: "
                    "create a new one");
  }
  return RL_OK;
}

static void rs_retire(rl__store *s, const uint64_t *retired) {
  (void)s; /* the keys of retired policies expire by their TTL */
  (void)retired;
}

static void rs_memory_stats(rl__store *s, rl_memory_stats *out) {
  (void)s;
  memset(out, 0, sizeof *out);
}

static void rs_free(rl__store *s) {
  redis_store *st = (redis_store *)s;
  rl__redis_backend_free(st->be); /* every async callback has run */
  for (async_chunk *c = st->chunks, *next; c != NULL; c = next) {
    next = c->next;
    for (size_t i = 0; i < ASYNC_CHUNK; i++) {
      if (c->reqs[i].key != c->reqs[i].key_inline) {
        free(c->reqs[i].key);
      }
    }
    free(c);
  }
  pthread_mutex_destroy(&st->mu);
  rc_waiter_destroy(&st->rc);
  free(st->settings);
  free(st);
}

/* ---- scripts of the cache layer (lease.lua, lease_return.lua) -------- */

typedef struct script_out {
  redis_store *st;
  rl__script_consume_fn consume;
  void *out;
} script_out;

/* NOSCRIPT and error replies here; the rest to the caller's consume. */
static int script_consume(const rl__redis_reply *r, void *out) {
  script_out *o = out;
  if (is_noscript(r)) {
    stat_inc(&o->st->n_noscript);
    return NOSCRIPT;
  }
  if (r->type == RL__REPLY_ERROR) {
    note_error(o->st, "", r->str);
    return RL_ERR_BACKEND_UNAVAILABLE;
  }
  return o->consume(r, o->out);
}

/* The one place the cache's scripts reach Redis: the same backend call (and
 * NOSCRIPT retry) as a decision, routed by the key in argv[3] (standalone
 * node or cluster router). */
static int script_node_call(redis_store *st, rl__script_cmd *cmd,
                            rl__script_consume_fn consume, void *out) {
  int64_t deadline = rl__mono_ns() + st->timeout_ns;
  script_out o = {st, consume, out};
  cmd->argv[0] = "EVALSHA";
  cmd->lens[0] = 7;
  cmd->argv[1] = rl__redis_backend_script_sha(st->be, cmd->script);
  cmd->lens[1] = RL__REDIS_SHA_LEN;
  rl__redis_args a = {cmd->argc, cmd->argv, cmd->lens};
  int err = rl__redis_backend_call(st->be, CMD_KEY(cmd), &a, deadline,
                                   script_consume, &o);
  if (err == NOSCRIPT) {
    stat_inc(&st->n_retries);
    cmd->argv[0] = "EVAL";
    cmd->lens[0] = 4;
    cmd->argv[1] = rl__scripts[cmd->script].source;
    cmd->lens[1] = rl__scripts[cmd->script].len;
    err = rl__redis_backend_call(st->be, CMD_KEY(cmd), &a, deadline,
                                 script_consume, &o);
    if (err == NOSCRIPT) {
      err = RL_ERR_BACKEND_UNAVAILABLE;
    }
  }
  if (err == RL_ERR_TIMEOUT) {
    stat_inc(&st->n_timeouts);
  }
  return err;
}

static void script_sent(int status, const rl__redis_reply *reply, void *ud,
                        uint64_t tag) {
  (void)reply; /* a lost return only leaves units to expire with the key */
  (void)tag;
  if (status != RL_OK) {
    stat_inc(&((redis_store *)ud)->n_errors);
  }
}

static int script_node_send(redis_store *st, rl__script_cmd *cmd) {
  cmd->argv[0] = "EVALSHA";
  cmd->lens[0] = 7;
  cmd->argv[1] = rl__redis_backend_script_sha(st->be, cmd->script);
  cmd->lens[1] = RL__REDIS_SHA_LEN;
  rl__redis_args a = {cmd->argc, cmd->argv, cmd->lens};
  return rl__redis_backend_submit(st->be, CMD_KEY(cmd), &a,
                                  rl__mono_ns() + st->timeout_ns, script_sent,
                                  st, 0);
}

static void set_evalsha(redis_store *st, rl__script_cmd *cmd) {
  cmd->argv[0] = "EVALSHA";
  cmd->lens[0] = 7;
  cmd->argv[1] = rl__redis_backend_script_sha(st->be, cmd->script);
  cmd->lens[1] = RL__REDIS_SHA_LEN;
}

static void script_async_cb(int status, const rl__redis_reply *reply, void *ud,
                            uint64_t tag) {
  rl__script_async *op = ud;
  redis_store *st = op->store;
  (void)tag;
  int err = status;
  if (status == RL_OK) {
    script_out o = {st, op->consume, op->out};
    err = script_consume(reply, &o);
  }
  if (err == NOSCRIPT && !op->retried) {
    op->retried = 1;
    stat_inc(&st->n_retries);
    rl__script_cmd *cmd = op->cmd;
    cmd->argv[0] = "EVAL";
    cmd->lens[0] = 4;
    cmd->argv[1] = rl__scripts[cmd->script].source;
    cmd->lens[1] = rl__scripts[cmd->script].len;
    rl__redis_args a = {cmd->argc, cmd->argv, cmd->lens};
    err = rl__redis_backend_submit(st->be, CMD_KEY(cmd), &a, op->deadline_ns,
                                   script_async_cb, op, 0);
    if (err == RL_OK) {
      return; /* this callback comes again, once */
    }
  } else if (err == NOSCRIPT) {
    err = RL_ERR_BACKEND_UNAVAILABLE;
  }
  if (err == RL_ERR_TIMEOUT) {
    stat_inc(&st->n_timeouts);
  }
  op->done(err, op->ud);
}

static int rs_script_async(rl__store *s, rl__script_async *op) {
  redis_store *st = (redis_store *)s;
  op->store = st;
  op->retried = 0;
  op->deadline_ns = rl__mono_ns() + st->timeout_ns;
  set_evalsha(st, op->cmd);
  rl__redis_args a = {op->cmd->argc, op->cmd->argv, op->cmd->lens};
  return rl__redis_backend_submit(st->be, CMD_KEY(op->cmd), &a, op->deadline_ns,
                                  script_async_cb, op, 0);
}

static int rs_script_call(rl__store *s, rl__script_cmd *cmd,
                          rl__script_consume_fn consume, void *out) {
  return script_node_call((redis_store *)s, cmd, consume, out);
}

static int rs_script_send(rl__store *s, rl__script_cmd *cmd) {
  return script_node_send((redis_store *)s, cmd);
}

static const rl__store_ops redis_ops = {
    rs_decide,       rs_decide_async,
    rs_wait_ready,   rs_check_live_change,
    rs_retire,       rs_memory_stats,
    rs_free,         rs_script_call,
    rs_script_send,  NULL,
    rs_script_async,
};

/* ---- creation ----------------------------------------------------------- */

static int backend_create(redis_store *st, const rl_config *c, char *errbuf,
                          size_t errlen) {
  const char *scripts[RL__REDIS_MAX_SCRIPTS];
  size_t lens[RL__REDIS_MAX_SCRIPTS];
  /* The scripts in rl__scripts[] order, so a script's index is its slot;
   * only the per-algorithm ones are used, but all are loaded. */
  for (size_t i = 0; i < rl__n_scripts; i++) {
    scripts[i] = rl__scripts[i].source;
    lens[i] = rl__scripts[i].len;
  }
  return rl__redis_backend_new(c, scripts, lens, rl__n_scripts, &st->be, errbuf,
                               errlen);
}

int rl__store_redis_new(const rl_config *config, rl__store **out, char *errbuf,
                        size_t errlen) {
  redis_store *st = calloc(1, sizeof *st);
  if (st == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  st->base.ops = &redis_ops;
  pthread_mutex_init(&st->mu, NULL);
  rc_waiter_init(&st->rc);
  uint32_t timeout = config->redis.timeout_ms ? config->redis.timeout_ms
                                              : RL_REDIS_TIMEOUT_MS_DEFAULT;
  st->timeout_ns = (int64_t)timeout * 1000000;
  st->settings = settings_text(config, &st->settings_len);
  int err = st->settings != NULL ? backend_create(st, config, errbuf, errlen)
                                 : RL_ERR_NO_MEMORY;
  if (err != RL_OK) {
    pthread_mutex_destroy(&st->mu);
    rc_waiter_destroy(&st->rc);
    free(st->settings);
    free(st);
    return err;
  }
  *out = &st->base;
  return RL_OK;
}

struct rl__redis_backend *rl__redis_store_backend(rl__store *s) {
  return s != NULL && s->ops == &redis_ops ? ((redis_store *)s)->be : NULL;
}

int rl__redis_store_stats_get(rl__store *s, rl__redis_store_stats *out) {
  if (s == NULL || out == NULL || s->ops != &redis_ops) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  redis_store *st = (redis_store *)s;
  memset(out, 0, sizeof *out);
  out->decisions = atomic_load(&st->n_decisions);
  out->noscript = atomic_load(&st->n_noscript);
  out->script_retries = atomic_load(&st->n_retries);
  out->error_replies = atomic_load(&st->n_errors);
  out->timeouts = atomic_load(&st->n_timeouts);
  pthread_mutex_lock(&st->mu);
  memcpy(out->last_error, st->last_error, sizeof out->last_error);
  pthread_mutex_unlock(&st->mu);
  return RL_OK;
}

/* ---- for the fallback store: health and reconciliation ------------------- */

void rl__redis_store_node_stats(rl__store *s, rl__redis_node_stats *out) {
  rl__redis_backend_node_stats(((redis_store *)s)->be, out);
}

int rl__redis_store_connected(rl__store *s) {
  rl__redis_node_stats ns;
  rl__redis_backend_node_stats(((redis_store *)s)->be, &ns);
  return ns.ready > 0;
}

int rl__redis_store_healthy(rl__store *s) {
  return rl__redis_backend_healthy(((redis_store *)s)->be);
}

int rl__redis_store_probe(rl__store *s) {
  redis_store *st = (redis_store *)s;
  return rl__redis_backend_probe(st->be, rl__mono_ns() + st->timeout_ns);
}

static void rc_waiter_init(rc_waiter *w) {
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
}

static void rc_waiter_destroy(rc_waiter *w) {
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
}

/* Runs on the loop thread: the reply of reconcile.lua. */
static void rc_cb(int status, const rl__redis_reply *r, void *ud,
                  uint64_t tag) {
  rc_waiter *w = ud;
  int result = status == RL_OK                        ? RL_OK
               : status == RL_ERR_BACKEND_UNAVAILABLE ? RL__REDIS_LOST
                                                      : status;
  if (status == RL_OK && r->type == RL__REPLY_ERROR) {
    /* the script refused its arguments (permanent), or Redis refused to
     * run it (OOM, BUSY, LOADING...: it did not run, so retry later) */
    result = r->len >= 15 && memcmp(r->str, "ERR ratelimiter", 15) == 0
                 ? RL__REDIS_ERROR_REPLY
                 : RL_ERR_BACKEND_UNAVAILABLE;
  } else if (status == RL_OK &&
             (r->type != RL__REPLY_ARRAY || r->elements != 2)) {
    result = RL__REDIS_ERROR_REPLY;
  }
  pthread_mutex_lock(&w->mu);
  if (tag == w->gen) {
    w->result = result;
    w->done = 1;
    pthread_cond_signal(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
}

/* `EVALSHA sha 2 key marker alg units age n (limit duration burst slots)
 * x n`: two strings and three numbers more than a decision's command. */
#define RC_NUMS (3 + 4 * RL_MAX_WINDOWS)
#define RC_STRS 6
#define RC_MARKER_TAG ":rc:"
/* A reconciliation's least deadline. */
#define RC_MIN_NS ((int64_t)1000000000)

typedef struct rc_cmd {
  int argc;
  const char *argv[RC_STRS + RC_NUMS];
  size_t lens[RC_STRS + RC_NUMS];
  char nums[RC_NUMS][24];
  char marker[RL__REDIS_KEY_MAX + sizeof RC_MARKER_TAG + RL__REDIS_RC_ID_LEN];
} rc_cmd;

static void rc_str(rc_cmd *c, const char *s, size_t len) {
  c->argv[c->argc] = s;
  c->lens[c->argc++] = len;
}

static void rc_num(rc_cmd *c, uint64_t v) {
  char *buf = c->nums[c->argc - RC_STRS];
  rc_str(c, buf, rl__put_u64(buf, v));
}

/* The marker of one reconciliation: the key (so the same hash slot), the
 * tag and the id. */
static size_t rc_marker(rc_cmd *c, const char *key, size_t key_len,
                        const char *id) {
  size_t tag = sizeof RC_MARKER_TAG - 1;
  size_t id_len = strnlen(id, RL__REDIS_RC_ID_LEN);
  memcpy(c->marker, key, key_len);
  memcpy(c->marker + key_len, RC_MARKER_TAG, tag);
  memcpy(c->marker + key_len + tag, id, id_len);
  return key_len + tag + id_len;
}

static void rc_build(rc_cmd *c, const char *sha, const char *key,
                     size_t key_len, const char *id,
                     const rl__policy_shape *shape, uint64_t units,
                     uint64_t age_ms) {
  const char *alg = rl_algorithm_name(shape->algorithm);
  c->argc = 0;
  rc_str(c, "EVALSHA", 7);
  rc_str(c, sha, RL__REDIS_SHA_LEN);
  rc_str(c, "2", 1);
  rc_str(c, key, key_len);
  rc_str(c, c->marker, rc_marker(c, key, key_len, id));
  rc_str(c, alg, strlen(alg));
  rc_num(c, units);
  rc_num(c, age_ms);
  rc_num(c, shape->n_windows);
  for (size_t i = 0; i < shape->n_windows; i++) {
    const rl__window_params *w = &shape->windows[i];
    rc_num(c, w->limit);
    rc_num(c, w->duration_ms);
    rc_num(c, w->burst);
    rc_num(c, w->log_slots);
  }
}

int rl__redis_store_reconcile(rl__store *s, const char *key, size_t key_len,
                              const char *id, const rl__policy_shape *shape,
                              uint64_t units, uint64_t age_ms) {
  redis_store *st = (redis_store *)s;
  const rl__script *sc = rl__script_find("reconcile");
  size_t script = (size_t)(sc - rl__scripts);
  rc_cmd cmd;
  if (key_len > RL__REDIS_KEY_MAX) {
    return RL__REDIS_ERROR_REPLY;
  }
  rc_build(&cmd, rl__redis_backend_script_sha(st->be, script), key, key_len, id,
           shape, units, age_ms);
  rl__redis_args a = {cmd.argc, cmd.argv, cmd.lens};
  rc_waiter *w = &st->rc;
  pthread_mutex_lock(&w->mu);
  uint64_t gen = ++w->gen;
  w->done = 0;
  pthread_mutex_unlock(&w->mu);
  /* Nobody waits on a reconciliation: a long deadline makes a lost (maybe
   * applied, never retried) reply rare on a busy server. */
  int64_t budget = 10 * st->timeout_ns;
  int64_t deadline = rl__mono_ns() + (budget > RC_MIN_NS ? budget : RC_MIN_NS);
  /* routed by the state key; its marker shares the hash tag */
  int err = rl__redis_backend_submit(st->be, key, key_len, &a, deadline, rc_cb,
                                     w, gen);
  if (err != RL_OK) {
    return err; /* nothing was sent */
  }
  /* The loop answers by the deadline; the extra second only guards
   * against a loop that cannot run at all. */
  int64_t until = deadline + 1000000000;
  struct timespec ts = {(time_t)(until / 1000000000),
                        (long)(until % 1000000000)};
  pthread_mutex_lock(&w->mu);
  while (!w->done && pthread_cond_timedwait(&w->cv, &w->mu, &ts) != ETIMEDOUT) {
  }
  err = w->done ? w->result : RL_ERR_TIMEOUT;
  w->gen++; /* a late reply finds another generation */
  pthread_mutex_unlock(&w->mu);
  return err;
}

void rl__redis_store_for_each_node(
    rl__store *s, void (*fn)(struct rl__redis_node *n, void *ctx), void *ctx) {
  if (s != NULL && s->ops == &redis_ops) {
    rl__redis_backend_for_each_node(((redis_store *)s)->be, fn, ctx);
  }
}
