/*
 * memory_store.c - striped, budgeted hash tables of key state with
 * lock-free lookups.
 *
 * DESIGN
 * Workload: millions of keys, most touched rarely, a few touched by many
 * threads at once; an attacker may enumerate keys to exhaust memory. And
 * two cores deciding on distinct keys must not slow each other down: a
 * decision on a known key writes no cache line another key's decision
 * writes. So:
 *
 *  - Stripes. The 64-bit keyed hash of (policy, key) picks a stripe with its
 *    high half and a bucket with its low half. Each stripe has a chained
 *    hash table, a byte budget (max_bytes / stripes), counters, and a mutex
 *    that only serialises structure changes (insert, unlink, grow) and the
 *    counters. The table pointer is on its own cache line, which only a
 *    growth writes.
 *  - One allocation per key: the 24-byte node header, the algorithm state
 *    and the key bytes in one block (as nginx's limit_req does). Blocks of
 *    up to 64 bytes are slots of the stripe's slab, 64-byte aligned. A decision
 *    on a known key allocates nothing.
 *  - Lookups take no lock. A decision loads the stripe's table (mask and
 *    buckets in one object, so they agree), walks the chain comparing the
 *    immutable policy, length and key bytes, then locks the node itself
 *    (node_lock.h) and decides under that lock. A miss, or a node found
 *    DEAD, takes the slow path: the stripe lock, the same search on the now
 *    stable structure, insertion if absent. So there is never a second node
 *    for a (policy, key): only the slow path inserts, and it searches under
 *    the lock every insertion holds. Lock order: stripe, then node; a node
 *    holder never waits for a stripe lock.
 *  - Unlinking (eviction, sweep, purge) happens under the stripe lock: lock
 *    the node (its holder is one short decision), re-check why it goes, mark
 *    it DEAD in the store that unlocks it, unlink it with one store, and
 *    retire it. A decision that locks a node after that sees DEAD and takes
 *    the slow path, so no decision ever spends state that is being thrown
 *    away. The unlinked node keeps its own `next`: a reader standing on it
 *    still reaches the rest of the chain.
 *  - Reclamation is epoch-based, with the limiter's guard (guard.h): every
 *    decision runs inside a read section of it. An unlinked node, or a
 *    table replaced by a larger one, is tagged with the epoch read after the
 *    unlink and freed once the epoch is two further (retire.h: the record
 *    lives in the dead node's state, so retiring never allocates). The slow
 *    path and the sweep try to advance the epoch and free what is ready;
 *    rl__memstore_free frees the rest.
 *  - Eviction is CLOCK (second chance), an approximation of LRU that costs
 *    one bit per node instead of two list pointers: a decision sets the
 *    node's REFERENCED bit; a hand walks the buckets, clearing it, freeing
 *    expired nodes, and choosing an unreferenced live node as the victim
 *    only when reclaiming expired ones did not free enough. Each insertion
 *    moves the hand over a couple of buckets, so expired keys are reclaimed
 *    as the store is used.
 *  - The table doubles when it holds more nodes than buckets, if the budget
 *    allows; otherwise chains grow, still bounded by the budget. Growing
 *    relinks every node into a new table, published when complete; readers
 *    still on the old one may miss a key (and take the slow path) but never
 *    loop: a relinked node points only into the new table's chains, built
 *    from nodes relinked before it.
 *  - Known limit: a lookup reads the nodes ahead of its key in the chain,
 *    and another core may be writing those (their state and lock word share
 *    a line with `next` and the key). With the load factor in (1/2, 1],
 *    about 30% of lookups pass a node; when two cores use distinct keys,
 *    about 15% pass one of the other core's, and each such read costs two
 *    cross-core line transfers. Nodes of up to 64 bytes (the common
 *    sizes: short keys, every algorithm but the log) each have a cache
 *    line of their own (node_slab.h); larger ones come from malloc and
 *    can share a line with a neighbour.
 *
 * Memory ordering. Every link (bucket head, next, the table pointer) is
 * stored with release order and loaded with acquire order, so a reader that
 * reaches a node sees its immutable fields as initialised. The node lock
 * (acquire CAS, release store) orders one decision's state after the
 * previous one's; a new node is linked already locked by its inserter.
 * `expires` is read unlocked by the eviction hand (relaxed, a hint re-
 * checked under the node lock). Why freeing is safe: guard.c proves that a
 * reader of an epoch <= the tag is gone by the time the epoch passes tag + 2,
 * and that a reader of a later epoch starts after the unlink. Such a late
 * reader finds, from the table it loads, only linked nodes (a link store
 * only ever names a node linked at that moment), and from an unlinked node
 * only what that node linked to when it was unlinked: nodes unlinked later
 * (tagged later, so not freed earlier) or still linked.
 *
 * Memory bound. The budget bounds the charged bytes: linked nodes and the
 * current tables. Retired nodes and tables are no longer charged and wait
 * for two epoch advances: an advance waits only for the decisions in flight
 * (~100 ns each), and every slow path tries one, so the extra is what a
 * stripe unlinks during a few decisions, plus the old table after a growth.
 * A thread descheduled inside a decision holds the epoch back until it runs
 * again; retired memory accumulates meanwhile (the price of EBR). Slab
 * pages (node_slab.h) are reused, not returned, until the store is freed:
 * they stay at the stripe's peak of small nodes, rounded up to a page.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "memory_store.h"
#include "node_lock.h"
#include "node_slab.h"
#include "retire.h"

#define INITIAL_BUCKETS 16
#define SWEEP_PER_INSERT 2 /* buckets the hand visits on each insertion */
#define ROOM_SCAN_BUCKETS                                                      \
  32 /* buckets searched for expired nodes before a live one is evicted */

/* Node header; the state (8-byte aligned) and then the key follow it. Only
 * `next`, `expires` and `word` ever change after the node is linked. */
typedef struct node {
  _Atomic(struct node *) next; /* hash chain; frozen once unlinked */
  _Atomic int64_t expires;     /* ms; from then on the state equals all-zero;
                                  written under the node lock */
  uint16_t policy;             /* policy id: the same bytes under two
                                  policies are two keys */
  uint16_t key_len;
  uint16_t state_words; /* state size / 8 (the charge is derived from it) */
  rl__node_word word;   /* LOCKED, DEAD, REFERENCED (node_lock.h) */
  unsigned char data[]; /* state, key; once dead, the retire record */
} node;

_Static_assert(sizeof(node) == 24, "the node header is 24 bytes");

/* A stripe's bucket array, published whole so that mask and buckets agree. */
typedef struct table {
  rl__retired retired; /* once replaced by a larger table */
  size_t mask;         /* buckets - 1 */
  _Atomic(node *) buckets[];
} table;

typedef _Atomic(node *) link_t; /* a bucket head or a node's next */

/* The padding is the point: the table pointer, which every lookup reads,
 * has a line of its own, apart from the lock and counters that structure
 * changes write. */
typedef struct stripe {   // NOLINT(clang-analyzer-optin.performance.Padding)
  _Atomic(table *) table; /* read by every lookup; written by growth */
  _Alignas(64) pthread_mutex_t lock; /* structure changes, fields below */
  size_t count;
  size_t bytes; /* linked nodes and the table, as charged */
  size_t hand;  /* CLOCK hand: the next bucket to visit */
  uint64_t evicted_expired;
  uint64_t evicted_live;
  rl__retire_list dead_nodes;
  rl__retire_list dead_tables;
  rl__slab slab; /* nodes of up to one cache line (node_slab.h) */
} __attribute__((aligned(64))) stripe;

struct rl__memstore {
  rl__hash_key hash_key;
  rl__guard *guard;
  size_t budget; /* per stripe */
  size_t max_bytes;
  uint32_t stripe_mask;
  unsigned n_stripes;
  stripe *stripes;
};

/* What a decision looks for. */
typedef struct key_ref {
  uint64_t hash;
  uint16_t policy;
  size_t len;
  const void *bytes;
} key_ref;

/* The state area holds at least a retire record. */
static inline size_t state_area(size_t state_size) {
  return state_size < sizeof(rl__retired) ? sizeof(rl__retired) : state_size;
}

static inline size_t node_size(size_t state_size, size_t key_len) {
  return sizeof(node) + state_area(state_size) + key_len;
}

/* Nodes that fit a cache line get a slab slot of their own. */
static inline int in_slab(size_t size) {
  return size <= RL__SLAB_SLOT;
}

size_t rl__memstore_node_bytes(size_t state_size, size_t key_len) {
  size_t request = node_size(state_size, key_len);
  if (in_slab(request)) {
    return RL__SLAB_SLOT;
  }
  /* What glibc's malloc really uses: the request plus an 8-byte header,
   * rounded up to 16. */
  return (request + 8 + 15) & ~(size_t)15;
}

static inline size_t state_size_of(const node *n) {
  return (size_t)n->state_words * 8;
}

static inline const unsigned char *key_of(const node *n) {
  return n->data + state_size_of(n);
}

static inline size_t charge_of(const node *n) {
  return rl__memstore_node_bytes(state_size_of(n), n->key_len);
}

static inline rl__retired *record_of_node(node *n) {
  return (rl__retired *)(void *)n->data;
}

static inline node *node_of_record(rl__retired *r) {
  return (node *)(void *)((char *)r - offsetof(node, data));
}

static inline size_t table_bytes(size_t buckets) {
  return sizeof(table) + buckets * sizeof(link_t);
}

static inline uint64_t hash_of(const rl__memstore *ms, uint16_t policy,
                               const void *key, size_t len) {
  return rl__hash(&ms->hash_key, policy, key, len);
}

static inline size_t bucket_of(uint64_t h, size_t mask) {
  return (size_t)(uint32_t)h & mask;
}

static inline node *load_link(link_t *link) {
  return atomic_load_explicit(link, memory_order_acquire);
}

static inline void store_link(link_t *link, node *n) {
  atomic_store_explicit(link, n, memory_order_release);
}

/* The table as its stripe's lock holder sees it. */
static inline table *table_locked(stripe *s) {
  return atomic_load_explicit(&s->table, memory_order_relaxed);
}

/* ---- creation, destruction ------------------------------------------ */

static table *table_new(size_t buckets) {
  table *t = calloc(1, table_bytes(buckets));
  if (t != NULL) {
    t->mask = buckets - 1;
  }
  return t;
}

static void node_free(stripe *s, node *n) {
  if (in_slab(node_size(state_size_of(n), n->key_len))) {
    rl__slab_free(&s->slab, n);
  } else {
    free(n);
  }
}

static void free_nodes(stripe *s, rl__retired *r) {
  while (r != NULL) {
    rl__retired *next = r->next;
    node_free(s, node_of_record(r));
    r = next;
  }
}

static void free_tables(rl__retired *r) {
  while (r != NULL) {
    rl__retired *next = r->next;
    free((char *)r - offsetof(table, retired));
    r = next;
  }
}

static int stripe_init(stripe *s) {
  table *t = table_new(INITIAL_BUCKETS);
  if (t == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  atomic_init(&s->table, t);
  pthread_mutex_init(&s->lock, NULL);
  rl__slab_init(&s->slab);
  s->bytes = table_bytes(INITIAL_BUCKETS);
  rl__retire_init(&s->dead_nodes);
  rl__retire_init(&s->dead_tables);
  return RL_OK;
}

/* No reader is left: frees everything, linked or retired. */
static void stripe_destroy(stripe *s) {
  table *t = table_locked(s);
  for (size_t b = 0; b <= t->mask; b++) {
    node *n = atomic_load_explicit(&t->buckets[b], memory_order_relaxed);
    while (n != NULL) {
      node *next = atomic_load_explicit(&n->next, memory_order_relaxed);
      node_free(s, n);
      n = next;
    }
  }
  free(t);
  free_nodes(s, rl__retire_take_all(&s->dead_nodes));
  free_tables(rl__retire_take_all(&s->dead_tables));
  rl__slab_destroy(&s->slab);
  pthread_mutex_destroy(&s->lock);
}

int rl__memstore_new(size_t max_bytes, unsigned stripes, rl__guard *guard,
                     rl__memstore **out) {
  rl__memstore *ms = calloc(1, sizeof *ms);
  if (ms == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  ms->stripes = aligned_alloc(_Alignof(stripe), sizeof(stripe) * stripes);
  if (ms->stripes == NULL) {
    free(ms);
    return RL_ERR_NO_MEMORY;
  }
  memset(ms->stripes, 0, sizeof(stripe) * stripes);
  rl__hash_key_random(&ms->hash_key);
  ms->guard = guard;
  ms->max_bytes = max_bytes;
  ms->budget = max_bytes / stripes;
  ms->stripe_mask = stripes - 1;
  for (unsigned i = 0; i < stripes; i++) {
    if (stripe_init(&ms->stripes[i]) != RL_OK) {
      rl__memstore_free(ms);
      return RL_ERR_NO_MEMORY;
    }
    ms->n_stripes = i + 1;
  }
  *out = ms;
  return RL_OK;
}

void rl__memstore_free(rl__memstore *ms) {
  if (ms == NULL) {
    return;
  }
  for (unsigned i = 0; i < ms->n_stripes; i++) {
    stripe_destroy(&ms->stripes[i]);
  }
  free(ms->stripes);
  free(ms);
}

/* ---- retiring and reclaiming (under the stripe lock) ---------------- */

/* Tags a batch of nodes unlinked from s and queues them. */
static void retire_nodes(rl__memstore *ms, stripe *s, rl__retire_list *batch) {
  if (batch->head != NULL) {
    rl__retire_splice(&s->dead_nodes, batch, rl__guard_retire_epoch(ms->guard));
  }
}

static void retire_table(rl__memstore *ms, stripe *s, table *t) {
  rl__retire_list one;
  rl__retire_init(&one);
  rl__retire_push(&one, &t->retired);
  rl__retire_splice(&s->dead_tables, &one, rl__guard_retire_epoch(ms->guard));
}

/* Frees what no reader can hold any more, advancing the epoch if it can. */
static void reclaim(rl__memstore *ms, stripe *s) {
  if (s->dead_nodes.head == NULL && s->dead_tables.head == NULL) {
    return;
  }
  uint64_t epoch = rl__guard_try_advance(ms->guard);
  free_nodes(s, rl__retire_take_ready(&s->dead_nodes, epoch));
  free_tables(rl__retire_take_ready(&s->dead_tables, epoch));
}

/* ---- unlinking (under the stripe lock) ------------------------------ */

/* n is *link and locked by the caller: kills it, unlinks it, uncharges it
 * and adds it to batch. */
static void unlink_locked(stripe *s, link_t *link, node *n,
                          rl__retire_list *batch) {
  rl__node_unlock(&n->word, RL__NODE_DEAD);
  store_link(link, atomic_load_explicit(&n->next, memory_order_relaxed));
  s->bytes -= charge_of(n);
  s->count--;
  /* The state is ours now: nobody locks a dead node. */
  rl__retire_push(batch, record_of_node(n));
}

typedef int (*node_pred)(const node *n, const void *arg);

/* Locks n if pred holds, checked without and then under the node lock. A
 * linked node cannot be dead here: only the stripe lock holder kills. */
static int lock_if(node *n, node_pred pred, const void *arg) {
  if (!pred(n, arg)) {
    return 0;
  }
  rl__node_lock(&n->word);
  if (pred(n, arg)) {
    return 1;
  }
  rl__node_unlock_unchanged(&n->word);
  return 0;
}

static int expired_at(const node *n, const void *now) {
  return atomic_load_explicit(&n->expires, memory_order_relaxed) <=
         *(const int64_t *)now;
}

static int policy_in(const node *n, const void *ids) {
  const uint64_t *set = ids;
  return (set[n->policy / 64] >> (n->policy % 64)) & 1;
}

/* ---- CLOCK eviction (under the stripe lock) ------------------------- */

/* The hand visits one bucket: unlinks expired nodes, gives referenced ones
 * a second chance. Returns through *victim the link of a live node when
 * asked (victim != NULL) and none was chosen yet: an unreferenced one, or
 * any one if `any`. */
static void clock_visit(stripe *s, int64_t now, link_t **victim, int any,
                        rl__retire_list *batch) {
  link_t *link = &table_locked(s)->buckets[s->hand];
  node *n;
  while ((n = atomic_load_explicit(link, memory_order_relaxed)) != NULL) {
    if (lock_if(n, expired_at, &now)) {
      unlink_locked(s, link, n, batch);
      s->evicted_expired++;
      continue;
    }
    int referenced = atomic_load_explicit(&n->word, memory_order_relaxed) &
                     RL__NODE_REFERENCED;
    if (referenced) {
      atomic_fetch_and_explicit(&n->word, (uint16_t)~RL__NODE_REFERENCED,
                                memory_order_relaxed);
    }
    if (victim != NULL && *victim == NULL && (!referenced || any)) {
      *victim = link;
    }
    link = &n->next;
  }
}

static inline void hand_step(stripe *s) {
  s->hand = (s->hand + 1) & table_locked(s)->mask;
}

/* Frees space until `need` more bytes fit in the stripe's budget. Each
 * round moves the hand over up to ROOM_SCAN_BUCKETS buckets unlinking
 * expired nodes; only when that was not enough does it evict the first
 * unreferenced live node it passed (the victim's link stays valid: nodes
 * before it were not expired, and the round does not come back to its
 * bucket). Decisions may set reference bits as fast as the hand clears
 * them: after a whole turn of the hand, any live node will do. */
static void make_room(rl__memstore *ms, stripe *s, size_t need, int64_t now,
                      rl__retire_list *batch) {
  size_t visited = 0;
  while (s->count > 0 && s->bytes + need > ms->budget) {
    link_t *victim = NULL;
    size_t buckets = table_locked(s)->mask + 1;
    size_t scan = buckets < ROOM_SCAN_BUCKETS ? buckets : ROOM_SCAN_BUCKETS;
    int any = visited >= buckets;
    for (size_t i = 0; i < scan && s->bytes + need > ms->budget; i++) {
      clock_visit(s, now, &victim, any, batch);
      hand_step(s);
      visited++;
    }
    if (s->bytes + need > ms->budget && victim != NULL) {
      node *n = atomic_load_explicit(victim, memory_order_relaxed);
      rl__node_lock(&n->word);
      unlink_locked(s, victim, n, batch);
      s->evicted_live++;
    }
  }
}

/* ---- growth (under the stripe lock) --------------------------------- */

/* Moves every node of `from` into `to` (not yet published). Readers on
 * `from` may follow a moved node into `to`'s chains and miss their key;
 * the chains they follow only lead to nodes moved earlier, so they end. */
static void relink_all(const rl__memstore *ms, table *from, table *to) {
  for (size_t b = 0; b <= from->mask; b++) {
    node *n = atomic_load_explicit(&from->buckets[b], memory_order_relaxed);
    while (n != NULL) {
      node *next = atomic_load_explicit(&n->next, memory_order_relaxed);
      uint64_t h = hash_of(ms, n->policy, key_of(n), n->key_len);
      link_t *head = &to->buckets[bucket_of(h, to->mask)];
      store_link(&n->next, atomic_load_explicit(head, memory_order_relaxed));
      atomic_store_explicit(head, n, memory_order_relaxed);
      n = next;
    }
  }
}

/* Doubles the bucket array when the load passes 1 and the budget allows.
 * Failing to grow is harmless: chains get longer. */
static void maybe_grow(rl__memstore *ms, stripe *s) {
  table *old = table_locked(s);
  size_t n_old = old->mask + 1;
  size_t extra = table_bytes(n_old * 2) - table_bytes(n_old);
  if (s->count < n_old || s->bytes + extra > ms->budget) {
    return;
  }
  table *fresh = table_new(n_old * 2);
  if (fresh == NULL) {
    return;
  }
  relink_all(ms, old, fresh);
  atomic_store_explicit(&s->table, fresh, memory_order_release);
  retire_table(ms, s, old);
  s->hand &= fresh->mask;
  s->bytes += extra;
}

/* ---- lookup and insertion ------------------------------------------- */

static inline int matches(const node *n, const key_ref *k) {
  return n->policy == k->policy && n->key_len == k->len &&
         memcmp(key_of(n), k->bytes, k->len) == 0;
}

/* Lock-free search; inside a read section (or under the stripe lock). */
static node *lookup(stripe *s, const key_ref *k) {
  table *t = atomic_load_explicit(&s->table, memory_order_acquire);
  node *n = load_link(&t->buckets[bucket_of(k->hash, t->mask)]);
  while (n != NULL && !matches(n, k)) {
    n = load_link(&n->next);
  }
  return n;
}

/* A new node with an all-zero state, locked by its creator. */
static node *node_new(stripe *s, const key_ref *k, size_t state_size) {
  size_t area = state_area(state_size);
  size_t size = node_size(state_size, k->len);
  node *n = in_slab(size) ? rl__slab_alloc(&s->slab) : malloc(size);
  if (n == NULL) {
    return NULL;
  }
  memset(n, 0, sizeof(node) + area);
  n->policy = k->policy;
  n->key_len = (uint16_t)k->len;
  n->state_words = (uint16_t)(area / 8);
  atomic_init(&n->word, RL__NODE_LOCKED);
  memcpy(n->data + area, k->bytes, k->len);
  return n;
}

/* Adds a node for k, locked. NULL when malloc fails. */
static node *insert(rl__memstore *ms, stripe *s, const key_ref *k,
                    size_t state_size, int64_t now) {
  size_t charge = rl__memstore_node_bytes(state_size, k->len);
  rl__retire_list batch;
  rl__retire_init(&batch);
  for (int i = 0; i < SWEEP_PER_INSERT; i++) {
    clock_visit(s, now, NULL, 0, &batch);
    hand_step(s);
  }
  make_room(ms, s, charge, now, &batch);
  retire_nodes(ms, s, &batch);
  maybe_grow(ms, s);
  node *n = node_new(s, k, state_size);
  if (n == NULL) {
    return NULL;
  }
  table *t = table_locked(s);
  link_t *head = &t->buckets[bucket_of(k->hash, t->mask)];
  atomic_init(&n->next, atomic_load_explicit(head, memory_order_relaxed));
  store_link(head, n);
  s->count++;
  s->bytes += charge;
  return n;
}

/* The slow path: under the stripe lock, finds or inserts k's node and
 * returns it locked (NULL when malloc fails). */
static node *find_or_insert(rl__memstore *ms, stripe *s, const key_ref *k,
                            size_t state_size, int64_t now) {
  pthread_mutex_lock(&s->lock);
  node *n = lookup(s, k);
  if (n != NULL) {
    rl__node_lock(&n->word); /* linked, so not dead */
  } else {
    n = insert(ms, s, k, state_size, now);
  }
  reclaim(ms, s);
  pthread_mutex_unlock(&s->lock);
  return n;
}

int rl__memstore_decide(rl__memstore *ms, uint16_t policy_id,
                        const rl__policy_shape *shape, const void *key,
                        size_t key_len, int64_t now, uint64_t cost,
                        rl_decision *out) {
  key_ref k = {hash_of(ms, policy_id, key, key_len), policy_id, key_len, key};
  stripe *s = &ms->stripes[(uint32_t)(k.hash >> 32) & ms->stripe_mask];
  node *n = lookup(s, &k);
  if (n == NULL || !rl__node_lock(&n->word)) {
    n = find_or_insert(ms, s, &k, shape->state_size, now);
    if (n == NULL) {
      return RL_ERR_NO_MEMORY;
    }
  }
  int64_t expires = rl__policy_decide(shape, n->data, now, cost, out);
  atomic_store_explicit(&n->expires, expires, memory_order_relaxed);
  rl__node_unlock(&n->word, RL__NODE_REFERENCED);
  return RL_OK;
}

/* ---- sweep, purge, stats -------------------------------------------- */

/* Unlinks, in every stripe, the nodes for which pred is true. Returns how
 * many. */
static size_t purge_where(rl__memstore *ms, node_pred pred, const void *arg,
                          int count_as_expired) {
  size_t freed = 0;
  for (unsigned i = 0; i < ms->n_stripes; i++) {
    stripe *s = &ms->stripes[i];
    rl__retire_list batch;
    rl__retire_init(&batch);
    pthread_mutex_lock(&s->lock);
    table *t = table_locked(s);
    for (size_t b = 0; b <= t->mask; b++) {
      link_t *link = &t->buckets[b];
      node *n;
      while ((n = atomic_load_explicit(link, memory_order_relaxed)) != NULL) {
        if (lock_if(n, pred, arg)) {
          unlink_locked(s, link, n, &batch);
        } else {
          link = &n->next;
        }
      }
    }
    if (count_as_expired) {
      s->evicted_expired += batch.count;
    }
    freed += batch.count;
    retire_nodes(ms, s, &batch);
    reclaim(ms, s);
    pthread_mutex_unlock(&s->lock);
  }
  return freed;
}

size_t rl__memstore_sweep(rl__memstore *ms, int64_t now) {
  return purge_where(ms, expired_at, &now, 1);
}

size_t rl__memstore_purge(rl__memstore *ms, const uint64_t *ids) {
  return purge_where(ms, policy_in, ids, 0);
}

size_t rl__memstore_pending(rl__memstore *ms) {
  size_t pending = 0;
  for (unsigned i = 0; i < ms->n_stripes; i++) {
    stripe *s = &ms->stripes[i];
    pthread_mutex_lock(&s->lock);
    reclaim(ms, s);
    pending += s->dead_nodes.count + s->dead_tables.count;
    pthread_mutex_unlock(&s->lock);
  }
  return pending;
}

void rl__memstore_stats(rl__memstore *ms, rl_memory_stats *out) {
  memset(out, 0, sizeof *out);
  out->max_bytes = ms->max_bytes;
  for (unsigned i = 0; i < ms->n_stripes; i++) {
    stripe *s = &ms->stripes[i];
    pthread_mutex_lock(&s->lock);
    out->keys += s->count;
    out->bytes += s->bytes;
    out->evicted_expired += s->evicted_expired;
    out->evicted_live += s->evicted_live;
    pthread_mutex_unlock(&s->lock);
  }
}
