/*
 * redis_cluster.c - the Redis Cluster router (see redis_cluster.h).
 *
 * DESIGN
 *
 * Threads. Submitters read the slot map under the guard (no lock, no
 * shared write) and hand the command to the slot's node. Everything else
 * runs on the loop thread the nodes share: replies and redirections,
 * delayed retries, refreshes, map replacement and node retirement. The
 * loop thread is the only writer of the map, so it reads it without the
 * guard.
 *
 * Requests. A routed command is copied into a record (argv and bytes)
 * taken from a striped free list (a stripe per thread slot: no global
 * lock); the copy is what a retry sends, long after the caller's buffers
 * may be gone. Records are reused, never freed before the router, so the
 * steady state allocates nothing.
 *
 * Map. 16384 atomic node pointers and the set of nodes they use. A MOVED
 * reply to a node in the set updates one slot in place; anything else
 * (a refresh, a redirection to an unknown node) builds a new map, which is
 * published through the guard. Nodes that left the map go to a graveyard
 * for retire_ms, so that the commands in flight on them still get their
 * replies (usually MOVED) instead of being cut off and sent twice; a node
 * that comes back in the meantime is taken out of the graveyard.
 *
 * Refresh. Single-flight, at most one started per REFRESH_GAP_NS, asked
 * of a master with a ready connection (round robin). The reply is parsed
 * in the node's callback and applied from a separate event, never inside
 * a node callback (applying frees nodes).
 */
#include "redis_cluster.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard.h"
#include "policy.h"
#include "ratelimiter.h"
#include "redis_store.h"

#define STRIPES 16
#define CHUNK 32
#define INLINE_BYTES 512
#define MAX_WANTED 8
#define ADDR_MAX (RL__REDIS_HOST_MAX + 10)
#define MS ((int64_t)1000000)
#define REFRESH_GAP_NS (50 * MS)
#define REFRESH_TIMEOUT_NS (1000 * MS)
#define BACKOFF_MIN_NS (1 * MS)
#define BACKOFF_MAX_NS (50 * MS)
#define IMMEDIATE_REDIRECTS 2 /* later ones wait a backoff first */

typedef struct cmap {
  size_t n;
  rl__redis_node **nodes;
  _Atomic(rl__redis_node *) slot[RL__CLUSTER_SLOTS];
} cmap;

typedef struct rt_req {
  struct rt_req *next; /* free list or delayed list */
  rl__redis_cluster *cl;
  rl__redis_cb cb;
  void *ud;
  uint64_t tag;
  rl__redis_node *node; /* where it was last sent */
  int64_t deadline_ns, due_ns, sent_ns;
  unsigned slot, stripe, redirects, waits;
  int noscript_seen; /* a second NOSCRIPT goes to the caller */
  int argc;
  const char *argv[RL__CLUSTER_MAX_ARGS];
  size_t lens[RL__CLUSTER_MAX_ARGS];
  char *bytes; /* inline_bytes or a heap buffer kept for reuse */
  size_t cap;
  char inline_bytes[INLINE_BYTES];
} rt_req;

typedef struct rt_chunk {
  struct rt_chunk *next;
  rt_req reqs[CHUNK];
} rt_chunk;

typedef struct pool {
  pthread_mutex_t mu;
  rt_req *free;
  rt_chunk *chunks;
} __attribute__((aligned(64))) pool;

typedef struct grave {
  struct grave *next;
  rl__redis_node *node;
  int64_t free_at;
} grave;

/* A SCRIPT LOAD of every script on one node after a NOSCRIPT, with the
 * commands waiting for it (one load per node at a time). */
typedef struct script_load {
  rl__redis_node *node; /* NULL: entry free */
  unsigned pending;     /* SCRIPT LOAD replies still due; 0: idle */
  rt_req *parked;
  int64_t done_ns; /* when the last round ended: a command sent before
                    * then met the flush before the load, and just goes
                    * again */
} script_load;

#define MAX_LOADS 16

typedef struct topo_range {
  unsigned lo, hi;
  size_t addr;
} topo_range;

/* A parsed CLUSTER SLOTS reply. */
typedef struct topo {
  size_t n_addrs, n_ranges;
  char (*addrs)[ADDR_MAX];
  topo_range *ranges;
} topo;

struct rl__redis_cluster {
  pool pools[STRIPES]; /* the cache-line aligned parts first */
  rl__guard guard;     /* publishes the cmap */
  rl__redis_loop *loop;
  rl__wakeable wake;
  atomic_int want_refresh, mode, closing;
  rl__redis_node_opts tmpl; /* strings owned below */
  char *username, *password, *ca_file, *ca_dir, *cert_file, *key_file,
      *server_name;
  rl__redis_node *seed0;
  int auto_detect;
  int64_t refresh_ns, retire_ns;
  char sha[RL__REDIS_MAX_SCRIPTS][RL__REDIS_SHA_LEN + 1];
  const char *scripts[RL__REDIS_MAX_SCRIPTS]; /* sources: borrowed */
  size_t script_lens[RL__REDIS_MAX_SCRIPTS];
  size_t n_scripts;
  /* ---- loop thread only ---- */
  struct event *retry_ev, *tick_ev, *apply_ev, *refresh_ev;
  int64_t retry_at;
  rt_req *delayed;
  int refresh_inflight;
  int64_t refresh_started;
  unsigned rr;
  char refresh_host[RL__REDIS_HOST_MAX];
  topo *pending;
  grave *graves;
  char wanted[MAX_WANTED][ADDR_MAX];
  size_t n_wanted;
  script_load loads[MAX_LOADS];
  /* ---- readiness (mu) ---- */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int topo_ok;
  char errstr[RL__REDIS_ERRSTR_LEN];
  atomic_uint_fast64_t n_moved, n_ask, n_tryagain, n_clusterdown, n_loading,
      n_conn_errors, n_retries, n_gave_up, n_refreshes, n_refresh_failures,
      n_map_changes, n_created, n_freed, n_noscript, n_script_loads;
};

static void rt_cb(int status, const rl__redis_reply *reply, void *ud,
                  uint64_t tag);
static void maybe_refresh(rl__redis_cluster *cl);

static void stat_inc(atomic_uint_fast64_t *s) {
  atomic_fetch_add_explicit(s, 1, memory_order_relaxed);
}

static void set_errstr(rl__redis_cluster *cl, const char *what,
                       const char *detail) {
  pthread_mutex_lock(&cl->mu);
  snprintf(cl->errstr, sizeof cl->errstr, "%s%s", what, detail);
  pthread_cond_broadcast(&cl->cv);
  pthread_mutex_unlock(&cl->mu);
}

static struct timeval tv_ns(int64_t ns) {
  if (ns < 0)
    ns = 0;
  struct timeval tv = {(time_t)(ns / 1000000000),
                       (long)(ns % 1000000000) / 1000};
  return tv;
}

/* ---- request records ---------------------------------------------------- */

static atomic_uint next_stripe;
static _Thread_local unsigned stripe_plus1;

static unsigned my_stripe(void) {
  if (stripe_plus1 == 0)
    stripe_plus1 = atomic_fetch_add(&next_stripe, 1) % STRIPES + 1;
  return stripe_plus1 - 1;
}

static rt_req *req_take(rl__redis_cluster *cl) {
  unsigned s = my_stripe();
  pool *p = &cl->pools[s];
  pthread_mutex_lock(&p->mu);
  if (p->free == NULL) {
    rt_chunk *c = calloc(1, sizeof *c);
    if (c != NULL) {
      c->next = p->chunks;
      p->chunks = c;
      for (size_t i = 0; i < CHUNK; i++) {
        c->reqs[i].bytes = c->reqs[i].inline_bytes;
        c->reqs[i].cap = INLINE_BYTES;
        c->reqs[i].stripe = s;
        c->reqs[i].next = p->free;
        p->free = &c->reqs[i];
      }
    }
  }
  rt_req *q = p->free;
  if (q != NULL)
    p->free = q->next;
  pthread_mutex_unlock(&p->mu);
  return q;
}

static void req_give(rl__redis_cluster *cl, rt_req *q) {
  pool *p = &cl->pools[q->stripe];
  pthread_mutex_lock(&p->mu);
  q->next = p->free;
  p->free = q;
  pthread_mutex_unlock(&p->mu);
}

/* Copies the command into the record. */
static int req_copy(rt_req *q, const rl__redis_args *a) {
  size_t total = 0;
  for (int i = 0; i < a->argc; i++) {
    if (a->argv[i] == NULL)
      return RL_ERR_INVALID_ARGUMENT;
    total += a->argvlen[i];
  }
  if (total > q->cap) {
    char *b = malloc(total);
    if (b == NULL)
      return RL_ERR_NO_MEMORY;
    if (q->bytes != q->inline_bytes)
      free(q->bytes);
    q->bytes = b;
    q->cap = total;
  }
  size_t off = 0;
  for (int i = 0; i < a->argc; i++) {
    if (a->argvlen[i] > 0)
      memcpy(q->bytes + off, a->argv[i], a->argvlen[i]);
    q->argv[i] = q->bytes + off;
    q->lens[i] = a->argvlen[i];
    off += a->argvlen[i];
  }
  q->argc = a->argc;
  return RL_OK;
}

static rl__redis_args req_args(const rt_req *q) {
  rl__redis_args a = {q->argc, q->argv, q->lens};
  return a;
}

/* Gives the record back, then answers the caller once. */
static void finish(rt_req *q, int status, const rl__redis_reply *reply) {
  rl__redis_cb cb = q->cb;
  void *ud = q->ud;
  uint64_t tag = q->tag;
  req_give(q->cl, q);
  cb(status, reply, ud, tag);
}

/* ---- the map ------------------------------------------------------------ */

static cmap *map_new(size_t n) {
  cmap *m = calloc(1, sizeof *m);
  if (m == NULL)
    return NULL;
  m->nodes = calloc(n > 0 ? n : 1, sizeof(rl__redis_node *));
  if (m->nodes == NULL) {
    free(m);
    return NULL;
  }
  return m;
}

static void map_free(cmap *m) {
  if (m != NULL)
    free(m->nodes);
  free(m);
}

/* The current map's node serving addr, or NULL. Loop thread. */
static rl__redis_node *find_node(rl__redis_cluster *cl, const char *addr) {
  cmap *m = rl__guard_peek(&cl->guard);
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(rl__redis_node_addr(m->nodes[i]), addr) == 0)
      return m->nodes[i];
  return NULL;
}

static int node_create(rl__redis_cluster *cl, const char *addr,
                       rl__redis_node **out, char *errbuf, size_t errlen) {
  char host[RL__REDIS_HOST_MAX];
  rl__redis_node_opts o = cl->tmpl;
  if (rl__redis_addr_parse(addr, host, sizeof host, &o.port) != RL_OK)
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "bad node address '%.64s'", addr);
  o.host = host;
  int rc = rl__redis_node_new(cl->loop, &o, out, errbuf, errlen);
  if (rc == RL_OK)
    stat_inc(&cl->n_created);
  return rc == RL_ERR_INVALID_ARGUMENT ? RL_ERR_CONFIG_INVALID : rc;
}

/* A node for addr for a new map: the current one, one from the graveyard,
 * or a new one. NULL if it cannot be created. Loop thread. */
static rl__redis_node *node_for(rl__redis_cluster *cl, const char *addr) {
  rl__redis_node *n = find_node(cl, addr);
  if (n != NULL)
    return n;
  for (grave **g = &cl->graves; *g != NULL; g = &(*g)->next) {
    if (strcmp(rl__redis_node_addr((*g)->node), addr) == 0) {
      grave *back = *g;
      *g = back->next;
      n = back->node;
      free(back);
      return n;
    }
  }
  char why[RL__REDIS_ERRSTR_LEN];
  if (node_create(cl, addr, &n, why, sizeof why) != RL_OK) {
    set_errstr(cl, "", why);
    return NULL;
  }
  return n;
}

static int map_has(const cmap *m, const rl__redis_node *n) {
  for (size_t i = 0; i < m->n; i++)
    if (m->nodes[i] == n)
      return 1;
  return 0;
}

static void bury(rl__redis_cluster *cl, rl__redis_node *n) {
  grave *g = malloc(sizeof *g);
  if (g == NULL) { /* cannot wait: free it now (its commands fail over) */
    rl__redis_node_free(n);
    stat_inc(&cl->n_freed);
    return;
  }
  g->node = n;
  /* The first seed lives as long as the router (auto mode's node). */
  g->free_at = n == cl->seed0 ? INT64_MAX : rl__mono_ns() + cl->retire_ns;
  g->next = cl->graves;
  cl->graves = g;
}

static void free_due_graves(rl__redis_cluster *cl, int64_t now) {
  for (grave **g = &cl->graves; *g != NULL;) {
    if ((*g)->free_at <= now) {
      grave *dead = *g;
      *g = dead->next;
      rl__redis_node_free(dead->node); /* its owed callbacks run now */
      stat_inc(&cl->n_freed);
      free(dead);
    } else {
      g = &(*g)->next;
    }
  }
}

/* Publishes next; nodes of the old map not in next go to the graveyard. */
static void publish(rl__redis_cluster *cl, cmap *next) {
  cmap *old = rl__guard_peek(&cl->guard);
  int changed = old->n != next->n;
  for (size_t s = 0; !changed && s < RL__CLUSTER_SLOTS; s++)
    changed = atomic_load_explicit(&old->slot[s], memory_order_relaxed) !=
              atomic_load_explicit(&next->slot[s], memory_order_relaxed);
  if (changed)
    stat_inc(&cl->n_map_changes);
  old = rl__guard_replace(&cl->guard, next); /* no reader holds old now */
  for (size_t i = 0; i < old->n; i++)
    if (!map_has(next, old->nodes[i]))
      bury(cl, old->nodes[i]);
  map_free(old);
}

/* Builds the map of t (plus the nodes redirections asked for). */
static void apply_topo(rl__redis_cluster *cl, const topo *t) {
  cmap *old = rl__guard_peek(&cl->guard);
  cmap *m = map_new(t->n_addrs + cl->n_wanted);
  if (m == NULL)
    return;
  rl__redis_node **by_addr = calloc(t->n_addrs + 1, sizeof(rl__redis_node *));
  if (by_addr == NULL) {
    map_free(m);
    return;
  }
  for (size_t i = 0; i < t->n_addrs; i++) {
    by_addr[i] = node_for(cl, t->addrs[i]);
    if (by_addr[i] != NULL && !map_has(m, by_addr[i]))
      m->nodes[m->n++] = by_addr[i];
  }
  for (size_t i = 0; i < cl->n_wanted; i++) {
    size_t a = 0;
    while (a < t->n_addrs && strcmp(t->addrs[a], cl->wanted[i]) != 0)
      a++;
    if (a < t->n_addrs)
      continue; /* a master of the topology: has its node already */
    rl__redis_node *n = node_for(cl, cl->wanted[i]);
    if (n != NULL && !map_has(m, n))
      m->nodes[m->n++] = n;
  }
  cl->n_wanted = 0;
  if (m->n == 0) {
    free(by_addr);
    map_free(m);
    return;
  }
  /* Uncovered slots keep their node if it stays, else any node (it will
   * answer CLUSTERDOWN or MOVED). */
  for (size_t s = 0; s < RL__CLUSTER_SLOTS; s++) {
    rl__redis_node *n =
        atomic_load_explicit(&old->slot[s], memory_order_relaxed);
    atomic_init(&m->slot[s], map_has(m, n) ? n : m->nodes[0]);
  }
  for (size_t r = 0; r < t->n_ranges; r++) {
    rl__redis_node *n = by_addr[t->ranges[r].addr];
    for (unsigned s = t->ranges[r].lo; n != NULL && s <= t->ranges[r].hi; s++)
      atomic_init(&m->slot[s], n);
  }
  free(by_addr);
  publish(cl, m);
  stat_inc(&cl->n_refreshes);
  atomic_store(&cl->mode, RL__CLUSTER_MODE_CLUSTER);
  pthread_mutex_lock(&cl->mu);
  cl->topo_ok = 1;
  pthread_cond_broadcast(&cl->cv);
  pthread_mutex_unlock(&cl->mu);
}

static void topo_free(topo *t) {
  if (t != NULL) {
    free(t->addrs);
    free(t->ranges);
  }
  free(t);
}

/* "host:port" of a CLUSTER SLOTS node entry; an empty or "?" host is the
 * host that answered. */
static int entry_addr(const rl__redis_reply *e, const char *fallback_host,
                      char *out) {
  if (e->type != RL__REPLY_ARRAY || e->elements < 2 ||
      e->element[0].type != RL__REPLY_STRING ||
      e->element[1].type != RL__REPLY_INTEGER || e->element[1].integer < 1 ||
      e->element[1].integer > 65535)
    return -1;
  const char *host = e->element[0].str;
  if (host[0] == '\0' || strcmp(host, "?") == 0)
    host = fallback_host;
  if (strlen(host) >= RL__REDIS_HOST_MAX)
    return -1;
  snprintf(out, ADDR_MAX, strchr(host, ':') ? "[%s]:%lld" : "%s:%lld", host,
           e->element[1].integer);
  return 0;
}

static topo *parse_slots(const rl__redis_reply *r, const char *host) {
  if (r->type != RL__REPLY_ARRAY || r->elements == 0)
    return NULL;
  topo *t = calloc(1, sizeof *t);
  if (t == NULL)
    return NULL;
  t->addrs = calloc(r->elements, sizeof *t->addrs);
  t->ranges = calloc(r->elements, sizeof *t->ranges);
  if (t->addrs == NULL || t->ranges == NULL) {
    topo_free(t);
    return NULL;
  }
  for (size_t i = 0; i < r->elements; i++) {
    const rl__redis_reply *e = &r->element[i];
    char addr[ADDR_MAX];
    if (e->type != RL__REPLY_ARRAY || e->elements < 3 ||
        e->element[0].type != RL__REPLY_INTEGER ||
        e->element[1].type != RL__REPLY_INTEGER || e->element[0].integer < 0 ||
        e->element[1].integer >= RL__CLUSTER_SLOTS ||
        e->element[0].integer > e->element[1].integer ||
        entry_addr(&e->element[2], host, addr) != 0) {
      topo_free(t);
      return NULL;
    }
    size_t a = 0;
    while (a < t->n_addrs && strcmp(t->addrs[a], addr) != 0)
      a++;
    if (a == t->n_addrs)
      memcpy(t->addrs[t->n_addrs++], addr, ADDR_MAX);
    t->ranges[t->n_ranges++] = (topo_range){(unsigned)e->element[0].integer,
                                            (unsigned)e->element[1].integer, a};
  }
  return t;
}

/* ---- refresh (loop thread) ---------------------------------------------- */

static void arm_refresh_timer(rl__redis_cluster *cl, int64_t delay_ns) {
  struct timeval tv = tv_ns(delay_ns);
  evtimer_add(cl->refresh_ev, &tv);
}

static void refresh_failed(rl__redis_cluster *cl, const char *why,
                           const char *detail) {
  stat_inc(&cl->n_refresh_failures);
  cl->rr++;
  set_errstr(cl, why, detail);
  atomic_store(&cl->want_refresh, 1);
  arm_refresh_timer(cl, REFRESH_GAP_NS);
}

static void refresh_cb(int status, const rl__redis_reply *reply, void *ud,
                       uint64_t tag) {
  rl__redis_cluster *cl = ud;
  (void)tag;
  cl->refresh_inflight = 0;
  if (atomic_load(&cl->closing))
    return;
  if (status != RL_OK) {
    refresh_failed(cl, "CLUSTER SLOTS: ", rl_err_name(status));
    return;
  }
  if (reply->type == RL__REPLY_ERROR) {
    if (cl->auto_detect && atomic_load(&cl->mode) == RL__CLUSTER_MODE_UNKNOWN) {
      atomic_store(&cl->mode, RL__CLUSTER_MODE_STANDALONE);
      set_errstr(cl, "", "");
      return;
    }
    refresh_failed(cl, "CLUSTER SLOTS: ", reply->str);
    return;
  }
  topo *t = parse_slots(reply, cl->refresh_host);
  if (t == NULL) {
    refresh_failed(cl, "CLUSTER SLOTS: ", "unexpected reply");
    return;
  }
  topo_free(cl->pending);
  cl->pending = t;
  event_active(cl->apply_ev, EV_TIMEOUT, 0); /* not inside a callback */
}

/* A master to ask: round robin, preferring a ready connection. */
static rl__redis_node *refresh_target(rl__redis_cluster *cl) {
  cmap *m = rl__guard_peek(&cl->guard);
  if (m->n == 0)
    return NULL; /* cannot happen: a map always has a node */
  for (size_t k = 0; k < m->n; k++) {
    rl__redis_node *n = m->nodes[(cl->rr + k) % m->n];
    rl__redis_node_stats s;
    rl__redis_node_stats_get(n, &s);
    if (s.ready > 0) {
      cl->rr += (unsigned)k;
      return n;
    }
  }
  return m->nodes[cl->rr % m->n];
}

static void maybe_refresh(rl__redis_cluster *cl) {
  if (atomic_load(&cl->closing) || cl->refresh_inflight ||
      atomic_load(&cl->mode) == RL__CLUSTER_MODE_STANDALONE ||
      !atomic_load(&cl->want_refresh))
    return;
  int64_t now = rl__mono_ns();
  if (cl->refresh_started != 0 && now - cl->refresh_started < REFRESH_GAP_NS) {
    arm_refresh_timer(cl, cl->refresh_started + REFRESH_GAP_NS - now);
    return;
  }
  atomic_store(&cl->want_refresh, 0);
  rl__redis_node *n = refresh_target(cl);
  if (n == NULL)
    return;
  static const char *const argv[] = {"CLUSTER", "SLOTS"};
  static const size_t lens[] = {7, 5};
  rl__redis_args a = {2, argv, lens};
  uint16_t port = 0;
  if (rl__redis_addr_parse(rl__redis_node_addr(n), cl->refresh_host,
                           sizeof cl->refresh_host, &port) != RL_OK)
    cl->refresh_host[0] = '\0';
  cl->refresh_started = now;
  int rc =
      rl__redis_node_submit(n, &a, now + REFRESH_TIMEOUT_NS, refresh_cb, cl, 0);
  if (rc == RL_OK)
    cl->refresh_inflight = 1;
  else
    refresh_failed(cl, "CLUSTER SLOTS: ", rl_err_name(rc));
}

void rl__redis_cluster_refresh(rl__redis_cluster *cl) {
  if (atomic_load_explicit(&cl->want_refresh, memory_order_relaxed) == 0)
    atomic_store(&cl->want_refresh, 1);
  rl__redis_loop_wake(cl->loop, &cl->wake);
}

static void on_wake(rl__wakeable *w) {
  rl__redis_cluster *cl =
      (rl__redis_cluster *)((char *)w - offsetof(rl__redis_cluster, wake));
  maybe_refresh(cl);
}

static void on_refresh_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  maybe_refresh(arg);
}

static void on_apply(evutil_socket_t fd, short what, void *arg) {
  rl__redis_cluster *cl = arg;
  (void)fd;
  (void)what;
  topo *t = cl->pending;
  cl->pending = NULL;
  if (t != NULL && !atomic_load(&cl->closing))
    apply_topo(cl, t);
  topo_free(t);
  maybe_refresh(cl); /* asked for again meanwhile */
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  rl__redis_cluster *cl = arg;
  (void)fd;
  (void)what;
  free_due_graves(cl, rl__mono_ns());
  if (atomic_load(&cl->mode) != RL__CLUSTER_MODE_STANDALONE) {
    atomic_store(&cl->want_refresh, 1);
    maybe_refresh(cl);
  }
}

/* ---- retries (loop thread) ---------------------------------------------- */

/* Arms the retry timer for the earliest delayed command (one scan, after
 * the due ones were taken). */
static void arm_retry(rl__redis_cluster *cl) {
  int64_t first = INT64_MAX;
  for (rt_req *q = cl->delayed; q != NULL; q = q->next)
    if (q->due_ns < first)
      first = q->due_ns;
  if (first == INT64_MAX) {
    evtimer_del(cl->retry_ev);
    cl->retry_at = 0;
    return;
  }
  cl->retry_at = first;
  struct timeval tv = tv_ns(first - rl__mono_ns());
  evtimer_add(cl->retry_ev, &tv);
}

static void send_to(rt_req *q, rl__redis_node *n, int asking);

/* Sends q to its slot's node per the current map. */
static void route_now(rt_req *q) {
  cmap *m = rl__guard_peek(&q->cl->guard);
  send_to(q, atomic_load_explicit(&m->slot[q->slot], memory_order_relaxed), 0);
}

/* Retries q after a backoff if its deadline leaves room; else answers
 * with what it has (status, and the reply when inside its callback). */
static void wait_retry(rt_req *q, int status, const rl__redis_reply *reply) {
  rl__redis_cluster *cl = q->cl;
  int64_t delay = BACKOFF_MIN_NS << (q->waits < 6 ? q->waits : 6);
  if (delay > BACKOFF_MAX_NS)
    delay = BACKOFF_MAX_NS;
  q->waits++;
  int64_t due = rl__mono_ns() + delay;
  if (atomic_load(&cl->closing)) {
    finish(q, RL_ERR_SHUTDOWN, NULL);
    return;
  }
  if (due >= q->deadline_ns) {
    stat_inc(&cl->n_gave_up);
    finish(q, status, reply);
    return;
  }
  q->due_ns = due;
  q->next = cl->delayed;
  cl->delayed = q;
  if (cl->retry_at == 0 || due < cl->retry_at) { /* O(1): no list scan */
    cl->retry_at = due;
    struct timeval tv = tv_ns(delay);
    evtimer_add(cl->retry_ev, &tv);
  }
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  rl__redis_cluster *cl = arg;
  (void)fd;
  (void)what;
  cl->retry_at = 0;
  int64_t now = rl__mono_ns();
  rt_req *due = NULL;
  for (rt_req **p = &cl->delayed; *p != NULL;) {
    if ((*p)->due_ns <= now) {
      rt_req *q = *p;
      *p = q->next;
      q->next = due;
      due = q;
    } else {
      p = &(*p)->next;
    }
  }
  arm_retry(cl);
  for (rt_req *q = due, *next; q != NULL; q = next) {
    next = q->next;
    route_now(q);
  }
}

/* A connection error in cluster mode: refresh, retry; else answer. */
static void conn_error(rt_req *q, int status) {
  rl__redis_cluster *cl = q->cl;
  if (atomic_load(&cl->mode) != RL__CLUSTER_MODE_CLUSTER ||
      atomic_load(&cl->closing)) {
    finish(q, status, NULL);
    return;
  }
  stat_inc(&cl->n_conn_errors);
  atomic_store(&cl->want_refresh, 1);
  maybe_refresh(cl);
  wait_retry(q, status, NULL);
}

static void send_to(rt_req *q, rl__redis_node *n, int asking) {
  rl__redis_args a = req_args(q);
  stat_inc(&q->cl->n_retries);
  q->node = n;
  q->sent_ns = rl__mono_ns();
  int rc =
      asking ? rl__redis_node_submit_asking(n, &a, q->deadline_ns, rt_cb, q, 0)
             : rl__redis_node_submit(n, &a, q->deadline_ns, rt_cb, q, 0);
  if (rc != RL_OK)
    conn_error(q, rc);
}

/* "MOVED 3999 127.0.0.1:6381" -> slot 3999, addr "127.0.0.1:6381"; an
 * empty host is the host of the node that answered. */
static int parse_redirect(const char *text, const rl__redis_node *from,
                          unsigned *slot, char *addr) {
  const char *p = strchr(text, ' ');
  char *end = NULL;
  if (p == NULL)
    return -1;
  unsigned long s = strtoul(p + 1, &end, 10);
  if (end == p + 1 || *end != ' ' || s >= RL__CLUSTER_SLOTS)
    return -1;
  const char *target = end + 1;
  if (strlen(target) >= ADDR_MAX - RL__REDIS_HOST_MAX / 2)
    return -1;
  if (target[0] == ':') {
    const char *fa = rl__redis_node_addr(from);
    const char *colon = strrchr(fa, ':');
    snprintf(addr, ADDR_MAX, "%.*s%s", (int)(colon - fa), fa, target);
  } else {
    snprintf(addr, ADDR_MAX, "%s", target);
  }
  *slot = (unsigned)s;
  return 0;
}

static int starts(const rl__redis_reply *r, const char *word) {
  size_t n = strlen(word);
  return r->len >= n && memcmp(r->str, word, n) == 0 &&
         (r->len == n || r->str[n] == ' ');
}

static void want_node(rl__redis_cluster *cl, const char *addr) {
  for (size_t i = 0; i < cl->n_wanted; i++)
    if (strcmp(cl->wanted[i], addr) == 0)
      return;
  if (cl->n_wanted < MAX_WANTED)
    memcpy(cl->wanted[cl->n_wanted++], addr, ADDR_MAX);
}

/* MOVED or ASK. Returns 0 when the reply is not a usable redirection. */
static int redirect(rt_req *q, const rl__redis_reply *r, int ask) {
  rl__redis_cluster *cl = q->cl;
  char addr[ADDR_MAX];
  unsigned slot = 0;
  if (parse_redirect(r->str, q->node, &slot, addr) != 0)
    return 0;
  stat_inc(ask ? &cl->n_ask : &cl->n_moved);
  int expected = RL__CLUSTER_MODE_UNKNOWN;
  atomic_compare_exchange_strong(&cl->mode, &expected,
                                 RL__CLUSTER_MODE_CLUSTER);
  rl__redis_node *n = find_node(cl, addr);
  if (!ask || n == NULL) {
    if (n != NULL && slot == q->slot) {
      cmap *m = rl__guard_peek(&cl->guard);
      atomic_store_explicit(&m->slot[slot], n, memory_order_relaxed);
    } else if (n == NULL) {
      want_node(cl, addr);
    }
    atomic_store(&cl->want_refresh, 1);
    maybe_refresh(cl);
  }
  if (n != NULL && q->redirects++ < IMMEDIATE_REDIRECTS) {
    send_to(q, n, ask);
    return 1;
  }
  wait_retry(q, RL_OK, r); /* unknown node, or redirected over and over */
  return 1;
}

/* ---- NOSCRIPT (loop thread) --------------------------------------------- */

static void load_cb(int status, const rl__redis_reply *reply, void *ud,
                    uint64_t tag) {
  rl__redis_cluster *cl = ud;
  script_load *e = &cl->loads[tag];
  (void)status;
  (void)reply;
  if (--e->pending > 0)
    return;
  rt_req *q = e->parked;
  e->parked = NULL;
  e->done_ns = rl__mono_ns();
  for (rt_req *next; q != NULL; q = next) { /* loaded or not: send again;
                                             * a second NOSCRIPT goes to
                                             * the caller */
    next = q->next;
    if (atomic_load(&cl->closing))
      finish(q, RL_ERR_SHUTDOWN, NULL);
    else
      route_now(q);
  }
}

/* Parks q behind a single-flight SCRIPT LOAD of every script on its node.
 * Returns 0 when that cannot be done (q untouched). */
static int park_for_scripts(rt_req *q) {
  rl__redis_cluster *cl = q->cl;
  script_load *e = NULL, *free_e = NULL;
  for (size_t i = 0; i < MAX_LOADS && e == NULL; i++) {
    if (cl->loads[i].node == q->node)
      e = &cl->loads[i];
    else if (cl->loads[i].pending == 0 &&
             (free_e == NULL || cl->loads[i].done_ns < free_e->done_ns))
      free_e = &cl->loads[i]; /* the oldest idle entry */
  }
  if (e != NULL && e->pending == 0 && q->sent_ns < e->done_ns) {
    route_now(q); /* sent before the last round ended */
    return 1;
  }
  if (e == NULL || e->pending == 0) {
    e = e != NULL ? e : free_e;
    if (e == NULL || cl->n_scripts == 0)
      return 0;
    e->node = q->node;
    e->pending = 1; /* held while submitting */
    stat_inc(&cl->n_script_loads);
    for (size_t i = 0; i < cl->n_scripts; i++) {
      const char *argv[] = {"SCRIPT", "LOAD", cl->scripts[i]};
      size_t lens[] = {6, 4, cl->script_lens[i]};
      rl__redis_args a = {3, argv, lens};
      if (rl__redis_node_submit(e->node, &a, q->deadline_ns, load_cb, cl,
                                (uint64_t)(e - cl->loads)) == RL_OK)
        e->pending++;
    }
    e->pending--;
    if (e->pending == 0) { /* nothing went out */
      e->node = NULL;
      e->done_ns = 0;
      return 0;
    }
  }
  q->next = e->parked;
  e->parked = q;
  return 1;
}

static void rt_cb(int status, const rl__redis_reply *reply, void *ud,
                  uint64_t tag) {
  rt_req *q = ud;
  rl__redis_cluster *cl = q->cl;
  (void)tag;
  if (status == RL_ERR_SHUTDOWN && !atomic_load(&cl->closing)) {
    route_now(q); /* its node was retired */
    return;
  }
  if (status != RL_OK) {
    if (status == RL_ERR_BACKEND_UNAVAILABLE)
      conn_error(q, status);
    else
      finish(q, status, NULL);
    return;
  }
  if (reply->type != RL__REPLY_ERROR || reply->str == NULL) {
    finish(q, RL_OK, reply);
    return;
  }
  if (starts(reply, "MOVED") || starts(reply, "ASK")) {
    if (redirect(q, reply, starts(reply, "ASK")))
      return;
  } else if (starts(reply, "NOSCRIPT") && !q->noscript_seen) {
    q->noscript_seen = 1;
    stat_inc(&cl->n_noscript);
    if (park_for_scripts(q))
      return;
  } else if (starts(reply, "TRYAGAIN")) {
    stat_inc(&cl->n_tryagain);
    wait_retry(q, RL_OK, reply);
    return;
  } else if (atomic_load(&cl->mode) == RL__CLUSTER_MODE_CLUSTER &&
             (starts(reply, "CLUSTERDOWN") || starts(reply, "LOADING") ||
              starts(reply, "MASTERDOWN") || starts(reply, "READONLY"))) {
    stat_inc(starts(reply, "LOADING") ? &cl->n_loading : &cl->n_clusterdown);
    atomic_store(&cl->want_refresh, 1);
    maybe_refresh(cl);
    wait_retry(q, RL_OK, reply);
    return;
  }
  finish(q, RL_OK, reply);
}

/* ---- submission (any thread) -------------------------------------------- */

/* lazy: rl__redis_node_submit_lazy() for the first send (a blocking
 * caller that kicks the node if it gives up). */
static int cluster_submit(rl__redis_cluster *cl, unsigned slot,
                          const rl__redis_args *args, int64_t deadline_ns,
                          rl__redis_cb cb, void *ud, uint64_t tag, int lazy) {
  if (cl == NULL || args == NULL || cb == NULL || args->argc < 1 ||
      args->argc > RL__CLUSTER_MAX_ARGS || slot >= RL__CLUSTER_SLOTS)
    return RL_ERR_INVALID_ARGUMENT;
  rt_req *q = req_take(cl);
  if (q == NULL)
    return RL_ERR_NO_MEMORY;
  int rc = req_copy(q, args);
  if (rc != RL_OK) {
    req_give(cl, q);
    return rc;
  }
  q->cl = cl;
  q->cb = cb;
  q->ud = ud;
  q->tag = tag;
  q->deadline_ns = deadline_ns;
  q->slot = slot;
  q->redirects = q->waits = 0;
  q->noscript_seen = 0;
  rl__guard_token token;
  cmap *m = rl__guard_enter(&cl->guard, &token);
  rl__redis_node *n =
      atomic_load_explicit(&m->slot[slot], memory_order_relaxed);
  q->node = n;
  q->sent_ns = rl__mono_ns();
  rc = lazy ? rl__redis_node_submit_lazy(n, args, deadline_ns, rt_cb, q, 0)
            : rl__redis_node_submit(n, args, deadline_ns, rt_cb, q, 0);
  rl__guard_exit(&token);
  if (rc != RL_OK) {
    req_give(cl, q);
    if (rc == RL_ERR_BACKEND_UNAVAILABLE &&
        atomic_load(&cl->mode) == RL__CLUSTER_MODE_CLUSTER)
      rl__redis_cluster_refresh(cl); /* the master may have moved */
  }
  return rc;
}

int rl__redis_cluster_submit(rl__redis_cluster *cl, unsigned slot,
                             const rl__redis_args *args, int64_t deadline_ns,
                             rl__redis_cb cb, void *ud, uint64_t tag) {
  return cluster_submit(cl, slot, args, deadline_ns, cb, ud, tag, 0);
}

typedef struct slot_target {
  rl__redis_cluster *cl;
  unsigned slot;
} slot_target;

static int submit_slot_lazy(void *target, const rl__redis_args *args,
                            int64_t deadline_ns, rl__redis_cb cb, void *ud,
                            uint64_t tag) {
  slot_target *t = target;
  return cluster_submit(t->cl, t->slot, args, deadline_ns, cb, ud, tag, 1);
}

int rl__redis_cluster_call(rl__redis_cluster *cl, unsigned slot,
                           const rl__redis_args *args, int64_t deadline_ns,
                           rl__redis_consume_fn consume, void *out) {
  slot_target t = {cl, slot};
  int abandoned = 0;
  int rc = rl__redis_call_via(submit_slot_lazy, &t, args, deadline_ns, consume,
                              out, &abandoned);
  if (abandoned) { /* the loop may not know the first send yet; it went to
                    * a node of the map (rare: kick them all) */
    rl__guard_token token;
    cmap *m = rl__guard_enter(&cl->guard, &token);
    for (size_t i = 0; i < m->n; i++)
      rl__redis_node_kick(m->nodes[i]);
    rl__guard_exit(&token);
  }
  return rc;
}

/* ---- queries ------------------------------------------------------------ */

rl__redis_node *rl__redis_cluster_standalone(rl__redis_cluster *cl) {
  return atomic_load_explicit(&cl->mode, memory_order_acquire) ==
                 RL__CLUSTER_MODE_STANDALONE
             ? cl->seed0
             : NULL;
}

rl__redis_node *rl__redis_cluster_seed(rl__redis_cluster *cl) {
  return cl->seed0;
}

const char *rl__redis_cluster_script_sha(const rl__redis_cluster *cl,
                                         size_t i) {
  return i < cl->n_scripts ? cl->sha[i] : NULL;
}

/* 1 when every node of the map has a ready connection. */
static int all_ready(rl__redis_cluster *cl, char *why, size_t whylen) {
  rl__guard_token token;
  cmap *m = rl__guard_enter(&cl->guard, &token);
  int ok = 1;
  for (size_t i = 0; ok && i < m->n; i++) {
    rl__redis_node_stats s;
    rl__redis_node_stats_get(m->nodes[i], &s);
    if (s.ready == 0) {
      char e[RL__REDIS_ERRSTR_LEN];
      snprintf(why, whylen, "%s: %s", rl__redis_node_addr(m->nodes[i]),
               rl__redis_node_errstr(m->nodes[i], e, sizeof e));
      ok = 0;
    }
  }
  rl__guard_exit(&token);
  return ok;
}

int rl__redis_cluster_wait_ready(rl__redis_cluster *cl, int64_t deadline_ns,
                                 char *errbuf, size_t errlen) {
  char why[RL__REDIS_ERRSTR_LEN * 2] = "";
  for (;;) {
    int mode = atomic_load(&cl->mode);
    if (mode == RL__CLUSTER_MODE_STANDALONE)
      return rl__fail(RL_OK, errbuf, errlen, "%s", "");
    pthread_mutex_lock(&cl->mu);
    int ok = cl->topo_ok;
    if (!ok && cl->errstr[0] != '\0')
      snprintf(why, sizeof why, "%s", cl->errstr);
    pthread_mutex_unlock(&cl->mu);
    if (ok && all_ready(cl, why, sizeof why))
      return rl__fail(RL_OK, errbuf, errlen, "%s", "");
    int64_t now = rl__mono_ns();
    if (now >= deadline_ns)
      return rl__fail(RL_ERR_TIMEOUT, errbuf, errlen,
                      "redis cluster not ready%s%s", why[0] ? ": " : "", why);
    int64_t until = now + 5 * MS < deadline_ns ? now + 5 * MS : deadline_ns;
    struct timespec ts = {(time_t)(until / 1000000000),
                          (long)(until % 1000000000)};
    pthread_mutex_lock(&cl->mu);
    pthread_cond_timedwait(&cl->cv, &cl->mu, &ts);
    pthread_mutex_unlock(&cl->mu);
  }
}

void rl__redis_cluster_stats_get(rl__redis_cluster *cl,
                                 rl__redis_cluster_stats *out) {
  memset(out, 0, sizeof *out);
  out->moved = atomic_load(&cl->n_moved);
  out->ask = atomic_load(&cl->n_ask);
  out->tryagain = atomic_load(&cl->n_tryagain);
  out->clusterdown = atomic_load(&cl->n_clusterdown);
  out->loading = atomic_load(&cl->n_loading);
  out->conn_errors = atomic_load(&cl->n_conn_errors);
  out->retries = atomic_load(&cl->n_retries);
  out->gave_up = atomic_load(&cl->n_gave_up);
  out->refreshes = atomic_load(&cl->n_refreshes);
  out->refresh_failures = atomic_load(&cl->n_refresh_failures);
  out->map_changes = atomic_load(&cl->n_map_changes);
  out->nodes_created = atomic_load(&cl->n_created);
  out->nodes_freed = atomic_load(&cl->n_freed);
  out->noscript = atomic_load(&cl->n_noscript);
  out->script_loads = atomic_load(&cl->n_script_loads);
  out->mode = atomic_load(&cl->mode);
  rl__guard_token token;
  cmap *m = rl__guard_enter(&cl->guard, &token);
  out->masters = (unsigned)m->n;
  rl__guard_exit(&token);
}

void rl__redis_cluster_for_each_master(rl__redis_cluster *cl,
                                       void (*fn)(rl__redis_node *n, void *ctx),
                                       void *ctx) {
  rl__guard_token token;
  cmap *m = rl__guard_enter(&cl->guard, &token);
  for (size_t i = 0; i < m->n; i++) {
    fn(m->nodes[i], ctx);
  }
  rl__guard_exit(&token);
}

void rl__redis_cluster_node_stats_sum(rl__redis_cluster *cl,
                                      rl__redis_node_stats *out) {
  memset(out, 0, sizeof *out);
  rl__guard_token token;
  cmap *m = rl__guard_enter(&cl->guard, &token);
  for (size_t i = 0; i < m->n; i++) {
    rl__redis_node_stats s;
    rl__redis_node_stats_get(m->nodes[i], &s);
    out->commands += s.commands;
    out->writes += s.writes;
    out->replies += s.replies;
    out->timeouts += s.timeouts;
    out->connects += s.connects;
    out->conn_lost += s.conn_lost;
    out->ready += s.ready;
    /* breakers: the worst state of any master, events summed */
    if (s.breaker_state > out->breaker_state) {
      out->breaker_state = s.breaker_state;
    }
    out->breaker_opened += s.breaker_opened;
    out->breaker_closed += s.breaker_closed;
    out->breaker_rejected += s.breaker_rejected;
  }
  rl__guard_exit(&token);
}

/* ---- creation and teardown ---------------------------------------------- */

static void start_job(void *arg) {
  rl__redis_cluster *cl = arg;
  struct event_base *base = rl__redis_loop_base(cl->loop);
  cl->retry_ev = evtimer_new(base, on_retry, cl);
  cl->refresh_ev = evtimer_new(base, on_refresh_timer, cl);
  cl->apply_ev = evtimer_new(base, on_apply, cl);
  cl->tick_ev = event_new(base, -1, EV_PERSIST, on_tick, cl);
  if (cl->retry_ev == NULL || cl->refresh_ev == NULL || cl->apply_ev == NULL ||
      cl->tick_ev == NULL)
    return; /* checked by the creator */
  struct timeval tv = tv_ns(cl->refresh_ns);
  event_add(cl->tick_ev, &tv);
  atomic_store(&cl->want_refresh, 1);
  maybe_refresh(cl);
}

static void close_job(void *arg) {
  rl__redis_cluster *cl = arg;
  atomic_store(&cl->closing, 1);
  struct event **evs[] = {&cl->retry_ev, &cl->refresh_ev, &cl->apply_ev,
                          &cl->tick_ev};
  for (size_t i = 0; i < 4; i++) {
    if (*evs[i] != NULL)
      event_free(*evs[i]);
    *evs[i] = NULL;
  }
  rt_req *q = cl->delayed;
  cl->delayed = NULL;
  for (rt_req *next; q != NULL; q = next) {
    next = q->next;
    finish(q, RL_ERR_SHUTDOWN, NULL);
  }
  topo_free(cl->pending);
  cl->pending = NULL;
  for (size_t i = 0; i < MAX_LOADS; i++) { /* their loads end on free */
    rt_req *p = cl->loads[i].parked;
    cl->loads[i].parked = NULL;
    for (rt_req *next; p != NULL; p = next) {
      next = p->next;
      finish(p, RL_ERR_SHUTDOWN, NULL);
    }
  }
}

static char *dup_or_null(const char *s, int *oom) {
  if (s == NULL)
    return NULL;
  char *d = strdup(s);
  if (d == NULL)
    *oom = 1;
  return d;
}

static void free_strings(rl__redis_cluster *cl) {
  free(cl->username);
  free(cl->password);
  free(cl->ca_file);
  free(cl->ca_dir);
  free(cl->cert_file);
  free(cl->key_file);
  free(cl->server_name);
}

static int copy_template(rl__redis_cluster *cl, const rl__redis_node_opts *o) {
  int oom = 0;
  cl->tmpl = *o;
  for (size_t i = 0; i < o->n_scripts; i++) { /* the arrays may be the
                                               * caller's stack */
    cl->scripts[i] = o->scripts[i];
    cl->script_lens[i] =
        o->script_lens != NULL ? o->script_lens[i] : strlen(o->scripts[i]);
  }
  cl->tmpl.scripts = cl->scripts;
  cl->tmpl.script_lens = cl->script_lens;
  cl->tmpl.username = cl->username = dup_or_null(o->username, &oom);
  cl->tmpl.password = cl->password = dup_or_null(o->password, &oom);
  cl->tmpl.tls.ca_file = cl->ca_file = dup_or_null(o->tls.ca_file, &oom);
  cl->tmpl.tls.ca_dir = cl->ca_dir = dup_or_null(o->tls.ca_dir, &oom);
  cl->tmpl.tls.cert_file = cl->cert_file = dup_or_null(o->tls.cert_file, &oom);
  cl->tmpl.tls.key_file = cl->key_file = dup_or_null(o->tls.key_file, &oom);
  cl->tmpl.tls.server_name = cl->server_name =
      dup_or_null(o->tls.server_name, &oom);
  return oom ? RL_ERR_NO_MEMORY : RL_OK;
}

static void cluster_destroy(rl__redis_cluster *cl) {
  cmap *m = rl__guard_peek(&cl->guard);
  for (size_t i = 0; m != NULL && i < m->n; i++) {
    rl__redis_node_free(m->nodes[i]);
    stat_inc(&cl->n_freed);
  }
  for (grave *g = cl->graves, *next; g != NULL; g = next) {
    next = g->next;
    rl__redis_node_free(g->node);
    free(g);
  }
  cl->graves = NULL;
  rl__redis_loop_free(cl->loop);
  map_free(m);
  for (size_t s = 0; s < STRIPES; s++) {
    for (rt_chunk *c = cl->pools[s].chunks, *next; c != NULL; c = next) {
      next = c->next;
      for (size_t i = 0; i < CHUNK; i++)
        if (c->reqs[i].bytes != c->reqs[i].inline_bytes)
          free(c->reqs[i].bytes);
      free(c);
    }
    pthread_mutex_destroy(&cl->pools[s].mu);
  }
  pthread_cond_destroy(&cl->cv);
  pthread_mutex_destroy(&cl->mu);
  free_strings(cl);
  free(cl);
}

static rl__redis_cluster *cluster_alloc(void) {
  rl__redis_cluster *cl = calloc(1, sizeof *cl);
  if (cl == NULL)
    return NULL;
  pthread_mutex_init(&cl->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&cl->cv, &ca);
  pthread_condattr_destroy(&ca);
  for (size_t s = 0; s < STRIPES; s++)
    pthread_mutex_init(&cl->pools[s].mu, NULL);
  cl->wake.fn = on_wake;
  return cl;
}

/* The first map: every seed, every slot on the first one. */
static int seed_map(rl__redis_cluster *cl, const rl__redis_cluster_opts *o,
                    char *errbuf, size_t errlen) {
  cmap *m = map_new(o->n_seeds);
  if (m == NULL)
    return RL_ERR_NO_MEMORY;
  rl__guard_init(&cl->guard, m);
  for (size_t i = 0; i < o->n_seeds; i++) {
    rl__redis_node *n = NULL;
    int rc = node_create(cl, o->seeds[i], &n, errbuf, errlen);
    if (rc != RL_OK)
      return rc;
    m->nodes[m->n++] = n;
  }
  cl->seed0 = m->nodes[0];
  for (size_t s = 0; s < RL__CLUSTER_SLOTS; s++)
    atomic_init(&m->slot[s], cl->seed0);
  for (size_t i = 0; i < cl->n_scripts; i++)
    memcpy(cl->sha[i], rl__redis_node_script_sha(cl->seed0, i),
           RL__REDIS_SHA_LEN + 1);
  return RL_OK;
}

int rl__redis_cluster_new(const rl__redis_cluster_opts *o,
                          rl__redis_cluster **out, char *errbuf,
                          size_t errlen) {
  if (o == NULL || out == NULL || o->seeds == NULL || o->n_seeds == 0 ||
      o->node.n_scripts > RL__REDIS_MAX_SCRIPTS)
    return rl__fail(RL_ERR_INVALID_ARGUMENT, errbuf, errlen,
                    "cluster: no seed address");
  rl__redis_cluster *cl = cluster_alloc();
  if (cl == NULL)
    return RL_ERR_NO_MEMORY;
  cl->auto_detect = o->auto_detect;
  cl->refresh_ns = (int64_t)(o->refresh_ms ? o->refresh_ms : 1000) * MS;
  cl->retire_ns = (int64_t)(o->retire_ms ? o->retire_ms : 5000) * MS;
  cl->n_scripts = o->node.n_scripts;
  int rc = copy_template(cl, &o->node);
  if (rc == RL_OK)
    rc = rl__redis_loop_new(&cl->loop);
  if (rc == RL_OK)
    rc = seed_map(cl, o, errbuf, errlen);
  if (rc == RL_OK) {
    rl__redis_loop_run(cl->loop, start_job, cl);
    if (cl->tick_ev == NULL || cl->retry_ev == NULL || cl->refresh_ev == NULL ||
        cl->apply_ev == NULL)
      rc = RL_ERR_NO_MEMORY;
  }
  if (rc != RL_OK) {
    if (cl->loop != NULL)
      rl__redis_loop_run(cl->loop, close_job, cl);
    cluster_destroy(cl);
    return rc;
  }
  *out = cl;
  return RL_OK;
}

void rl__redis_cluster_free(rl__redis_cluster *cl) {
  if (cl == NULL)
    return;
  rl__redis_loop_run(cl->loop, close_job, cl);
  cluster_destroy(cl); /* nodes fail what they hold with RL_ERR_SHUTDOWN */
}
