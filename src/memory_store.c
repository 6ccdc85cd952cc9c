/*
 * memory_store.c - striped, budgeted hash tables of key state.
 *
 * DESIGN
 * Workload: millions of keys, most touched rarely, a few touched by many
 * threads at once; an attacker may enumerate keys to exhaust memory. So:
 *
 *  - Stripes. The 64-bit keyed hash of (policy, key) picks a stripe with its
 *    high half and a bucket with its low half. Each stripe has its own mutex,
 *    chained hash table, byte budget (max_bytes / stripes) and counters, on
 *    its own cache lines. No lock is shared by two stripes.
 *  - One allocation per key: the node header, the algorithm state and the key
 *    bytes live in one block (as nginx's limit_req does). A decision on a
 *    known key allocates nothing.
 *  - Eviction is CLOCK (second chance), an approximation of LRU that costs
 *    one bit per node instead of two list pointers: a decision sets the
 *    node's referenced bit; a hand walks the buckets, clearing referenced
 *    bits, freeing expired nodes, and choosing an unreferenced live node as
 *    the victim only when reclaiming expired ones did not free enough.
 *  - Expired keys are reclaimed as the store is used: each insertion moves
 *    the hand over a couple of buckets, freeing what has expired.
 *  - The table doubles when it holds more nodes than buckets, if the budget
 *    allows; otherwise chains grow, still bounded by the budget.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "memory_store.h"

#define INITIAL_BUCKETS 16
#define SWEEP_PER_INSERT 2 /* buckets the hand visits on each insertion */
#define ROOM_SCAN_BUCKETS                                                      \
  32                        /* buckets searched for expired nodes before a     \
                               live one is evicted */
#define KEY_LEN_MASK 0x7fff /* low bits of key_len: the length */
#define REFERENCED 0x8000   /* high bit of key_len: CLOCK's reference bit */

/* Node header; the state (8-byte aligned) and then the key follow it. */
typedef struct node {
  struct node *next;    /* hash chain */
  int64_t expires;      /* ms; from then on the state equals all-zero */
  uint16_t policy;      /* policy id: the same bytes under two policies are
                           two keys */
  uint16_t key_len;     /* length | REFERENCED */
  uint16_t state_words; /* state size / 8 (the charge is derived from it) */
  uint16_t spare;
  unsigned char data[];
} node;

typedef struct stripe {
  pthread_mutex_t lock;
  node **buckets;
  size_t mask; /* buckets - 1 */
  size_t count;
  size_t bytes; /* nodes and the bucket array, as charged */
  size_t hand;  /* CLOCK hand: the next bucket to visit */
  uint64_t evicted_expired;
  uint64_t evicted_live;
} __attribute__((aligned(64))) stripe;

struct rl__memstore {
  rl__hash_key hash_key;
  size_t budget; /* per stripe */
  size_t max_bytes;
  uint32_t stripe_mask;
  unsigned n_stripes;
  stripe *stripes;
};

size_t rl__memstore_node_bytes(size_t state_size, size_t key_len) {
  /* What glibc's malloc really uses: the request plus an 8-byte header,
   * rounded up to 16. */
  size_t request = sizeof(node) + state_size + key_len;
  return (request + 8 + 15) & ~(size_t)15;
}

static inline size_t key_len_of(const node *n) {
  return n->key_len & KEY_LEN_MASK;
}

static inline size_t state_size_of(const node *n) {
  return (size_t)n->state_words * 8;
}

static inline const unsigned char *key_of(const node *n) {
  return n->data + state_size_of(n);
}

static inline size_t charge_of(const node *n) {
  return rl__memstore_node_bytes(state_size_of(n), key_len_of(n));
}

static inline uint64_t hash_of(const rl__memstore *ms, uint16_t policy,
                               const void *key, size_t len) {
  return rl__hash(&ms->hash_key, policy, key, len);
}

static inline size_t bucket_of(uint64_t h, size_t mask) {
  return (size_t)(uint32_t)h & mask;
}

int rl__memstore_new(size_t max_bytes, unsigned stripes, rl__memstore **out) {
  rl__memstore *ms = calloc(1, sizeof *ms);
  if (ms == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  ms->stripes = aligned_alloc(64, sizeof(stripe) * stripes);
  if (ms->stripes == NULL) {
    free(ms);
    return RL_ERR_NO_MEMORY;
  }
  memset(ms->stripes, 0, sizeof(stripe) * stripes);
  rl__hash_key_random(&ms->hash_key);
  ms->max_bytes = max_bytes;
  ms->budget = max_bytes / stripes;
  ms->stripe_mask = stripes - 1;
  for (unsigned i = 0; i < stripes; i++) {
    stripe *s = &ms->stripes[i];
    ms->n_stripes = i + 1;
    pthread_mutex_init(&s->lock, NULL);
    s->buckets = calloc(INITIAL_BUCKETS, sizeof(node *));
    if (s->buckets == NULL) {
      rl__memstore_free(ms);
      return RL_ERR_NO_MEMORY;
    }
    s->mask = INITIAL_BUCKETS - 1;
    s->bytes = INITIAL_BUCKETS * sizeof(node *);
  }
  *out = ms;
  return RL_OK;
}

void rl__memstore_free(rl__memstore *ms) {
  if (ms == NULL) {
    return;
  }
  for (unsigned i = 0; i < ms->n_stripes; i++) {
    stripe *s = &ms->stripes[i];
    for (size_t b = 0; s->buckets != NULL && b <= s->mask; b++) {
      node *n = s->buckets[b];
      while (n != NULL) {
        node *next = n->next;
        free(n);
        n = next;
      }
    }
    free(s->buckets);
    pthread_mutex_destroy(&s->lock);
  }
  free(ms->stripes);
  free(ms);
}

/* Unlinks *link (a node in s) and frees it. */
static void drop(stripe *s, node **link) {
  node *n = *link;
  *link = n->next;
  s->bytes -= charge_of(n);
  s->count--;
  free(n);
}

/* The hand visits one bucket: frees expired nodes, gives referenced ones a
 * second chance. Returns through *victim the link of an unreferenced live
 * node when asked (victim != NULL) and none was chosen yet. */
static void clock_visit(stripe *s, int64_t now, node ***victim) {
  node **link = &s->buckets[s->hand];
  while (*link != NULL) {
    node *n = *link;
    if (n->expires <= now) {
      drop(s, link);
      s->evicted_expired++;
      continue;
    }
    if (n->key_len & REFERENCED) {
      n->key_len &= KEY_LEN_MASK;
    } else if (victim != NULL && *victim == NULL) {
      *victim = link;
    }
    link = &n->next;
  }
}

/* Frees space until `need` more bytes fit in the stripe's budget. Each
 * round moves the hand over up to ROOM_SCAN_BUCKETS buckets freeing expired
 * nodes; only when that was not enough does it evict the first unreferenced
 * live node it passed (the victim's link stays valid: nodes before it were
 * neither expired nor are they freed later in the same round). */
static void make_room(rl__memstore *ms, stripe *s, size_t need, int64_t now) {
  while (s->count > 0 && s->bytes + need > ms->budget) {
    node **victim = NULL;
    size_t scan =
        s->mask + 1 < ROOM_SCAN_BUCKETS ? s->mask + 1 : ROOM_SCAN_BUCKETS;
    for (size_t i = 0; i < scan && s->bytes + need > ms->budget; i++) {
      clock_visit(s, now, &victim);
      s->hand = (s->hand + 1) & s->mask;
    }
    if (s->bytes + need > ms->budget && victim != NULL) {
      drop(s, victim);
      s->evicted_live++;
    }
  }
}

/* Doubles the bucket array when the load passes 1 and the budget allows.
 * Failing to grow is harmless: chains get longer. */
static void maybe_grow(rl__memstore *ms, stripe *s) {
  size_t n_old = s->mask + 1;
  if (s->count < n_old || s->bytes + n_old * sizeof(node *) > ms->budget) {
    return;
  }
  node **fresh = calloc(n_old * 2, sizeof(node *));
  if (fresh == NULL) {
    return;
  }
  size_t mask = n_old * 2 - 1;
  for (size_t b = 0; b < n_old; b++) {
    node *n = s->buckets[b];
    while (n != NULL) {
      node *next = n->next;
      uint64_t h = hash_of(ms, n->policy, key_of(n), key_len_of(n));
      n->next = fresh[bucket_of(h, mask)];
      fresh[bucket_of(h, mask)] = n;
      n = next;
    }
  }
  free(s->buckets);
  s->buckets = fresh;
  s->mask = mask;
  s->hand &= mask;
  s->bytes += n_old * sizeof(node *);
}

static node *find(stripe *s, uint64_t h, uint16_t policy, const void *key,
                  size_t len) {
  for (node *n = s->buckets[bucket_of(h, s->mask)]; n != NULL; n = n->next) {
    if (n->policy == policy && key_len_of(n) == len &&
        memcmp(key_of(n), key, len) == 0) {
      return n;
    }
  }
  return NULL;
}

/* Adds a node with an all-zero state. NULL when malloc fails. */
static node *insert(rl__memstore *ms, stripe *s, uint64_t h, uint16_t policy,
                    const void *key, size_t len, size_t state_size,
                    int64_t now) {
  size_t charge = rl__memstore_node_bytes(state_size, len);
  for (int i = 0; i < SWEEP_PER_INSERT; i++) {
    clock_visit(s, now, NULL);
    s->hand = (s->hand + 1) & s->mask;
  }
  make_room(ms, s, charge, now);
  maybe_grow(ms, s);
  node *n = malloc(sizeof(node) + state_size + len);
  if (n == NULL) {
    return NULL;
  }
  memset(n, 0, sizeof(node) + state_size);
  n->policy = policy;
  n->key_len = (uint16_t)len;
  n->state_words = (uint16_t)(state_size / 8);
  memcpy(n->data + state_size, key, len);
  size_t b = bucket_of(h, s->mask);
  n->next = s->buckets[b];
  s->buckets[b] = n;
  s->count++;
  s->bytes += charge;
  return n;
}

int rl__memstore_decide(rl__memstore *ms, uint16_t policy_id,
                        const rl__policy_shape *shape, const void *key,
                        size_t key_len, int64_t now, uint64_t cost,
                        rl_decision *out) {
  uint64_t h = hash_of(ms, policy_id, key, key_len);
  stripe *s = &ms->stripes[(uint32_t)(h >> 32) & ms->stripe_mask];
  pthread_mutex_lock(&s->lock);
  node *n = find(s, h, policy_id, key, key_len);
  if (n == NULL) {
    n = insert(ms, s, h, policy_id, key, key_len, shape->state_size, now);
    if (n == NULL) {
      pthread_mutex_unlock(&s->lock);
      return RL_ERR_NO_MEMORY;
    }
  }
  n->expires = rl__policy_decide(shape, n->data, now, cost, out);
  n->key_len |= REFERENCED;
  pthread_mutex_unlock(&s->lock);
  return RL_OK;
}

/* Frees, in every stripe, the nodes for which drop_if() is true. */
static size_t purge_where(rl__memstore *ms,
                          int (*drop_if)(const node *, const void *),
                          const void *arg, int count_as_expired) {
  size_t freed = 0;
  for (unsigned i = 0; i < ms->n_stripes; i++) {
    stripe *s = &ms->stripes[i];
    pthread_mutex_lock(&s->lock);
    size_t before = s->count;
    for (size_t b = 0; b <= s->mask; b++) {
      node **link = &s->buckets[b];
      while (*link != NULL) {
        if (drop_if(*link, arg)) {
          drop(s, link);
        } else {
          link = &(*link)->next;
        }
      }
    }
    if (count_as_expired) {
      s->evicted_expired += before - s->count;
    }
    freed += before - s->count;
    pthread_mutex_unlock(&s->lock);
  }
  return freed;
}

static int expired_at(const node *n, const void *now) {
  return n->expires <= *(const int64_t *)now;
}

static int policy_in(const node *n, const void *ids) {
  const uint64_t *set = ids;
  return (set[n->policy / 64] >> (n->policy % 64)) & 1;
}

size_t rl__memstore_sweep(rl__memstore *ms, int64_t now) {
  return purge_where(ms, expired_at, &now, 1);
}

size_t rl__memstore_purge(rl__memstore *ms, const uint64_t *ids) {
  return purge_where(ms, policy_in, ids, 0);
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
