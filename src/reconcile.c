/*
 * reconcile.c - the table of units awaiting reconciliation (reconcile.h).
 *
 * 16 stripes, each a mutex and a chained hash table of fixed size; the
 * entry count is one atomic shared by all stripes, reserved before an
 * insert so the bound holds under concurrency. An entry is one allocation
 * (header, shape and key bytes), made when a key first falls back.
 */
#include "reconcile.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define STRIPES 16

typedef struct stripe {
  pthread_mutex_t mu;
  rl__pending_entry **buckets;
} stripe;

struct rl__pending {
  rl__hash_key hkey; /* keys come from the network: keyed hash */
  size_t max_keys;
  size_t mask; /* buckets per stripe - 1 */
  atomic_size_t keys;
  atomic_uint_fast64_t units, dropped;
  stripe stripes[STRIPES];
};

int rl__pending_new(size_t max_keys, rl__pending **out) {
  rl__pending *p = calloc(1, sizeof *p);
  if (p == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  size_t per = 16;
  while (per < max_keys / STRIPES && per < ((size_t)1 << 20)) {
    per *= 2;
  }
  rl__hash_key_random(&p->hkey);
  p->max_keys = max_keys;
  p->mask = per - 1;
  for (size_t i = 0; i < STRIPES; i++) {
    pthread_mutex_init(&p->stripes[i].mu, NULL);
    p->stripes[i].buckets = calloc(per, sizeof(rl__pending_entry *));
    if (p->stripes[i].buckets == NULL) {
      rl__pending_free(p);
      return RL_ERR_NO_MEMORY;
    }
  }
  *out = p;
  return RL_OK;
}

static void free_list(rl__pending_entry *e) {
  for (rl__pending_entry *next; e != NULL; e = next) {
    next = e->next;
    free(e);
  }
}

void rl__pending_free(rl__pending *p) {
  if (p == NULL) {
    return;
  }
  free_list(rl__pending_take(p));
  for (size_t i = 0; i < STRIPES; i++) {
    pthread_mutex_destroy(&p->stripes[i].mu);
    free(p->stripes[i].buckets);
  }
  free(p);
}

static void drop(rl__pending *p, uint64_t units) {
  atomic_fetch_add(&p->dropped, units);
}

/* The entry of key in stripe s (locked), or NULL. */
static rl__pending_entry **find(rl__pending *p, stripe *s, uint64_t h,
                                const char *key, size_t len) {
  rl__pending_entry **slot = &s->buckets[(h / STRIPES) & p->mask];
  for (; *slot != NULL; slot = &(*slot)->next) {
    rl__pending_entry *e = *slot;
    if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) {
      return slot;
    }
  }
  return slot; /* the end of the chain: *slot == NULL */
}

static rl__pending_entry *entry_new(rl__pending *p, uint64_t h, const char *key,
                                    size_t len) {
  if (atomic_fetch_add(&p->keys, 1) >= p->max_keys) {
    atomic_fetch_sub(&p->keys, 1);
    return NULL;
  }
  rl__pending_entry *e = calloc(1, sizeof *e + len);
  if (e == NULL) {
    atomic_fetch_sub(&p->keys, 1);
    return NULL;
  }
  e->hash = h;
  e->key_len = len;
  memcpy(e->key, key, len);
  return e;
}

int rl__pending_add(rl__pending *p, const char *key, size_t key_len,
                    const rl__policy_shape *shape, uint64_t units,
                    int64_t now_ms) {
  uint64_t h = rl__hash(&p->hkey, 0, key, key_len);
  stripe *s = &p->stripes[h % STRIPES];
  pthread_mutex_lock(&s->mu);
  rl__pending_entry **slot = find(p, s, h, key, key_len);
  rl__pending_entry *e = *slot;
  if (e == NULL && (e = entry_new(p, h, key, key_len)) != NULL) {
    *slot = e;
  }
  if (e != NULL) {
    e->units += units;
    e->shape = *shape; /* the latest limits win */
    e->last_ms = now_ms > e->last_ms ? now_ms : e->last_ms;
    atomic_fetch_add(&p->units, units);
  }
  pthread_mutex_unlock(&s->mu);
  if (e == NULL) {
    drop(p, units);
  }
  return e != NULL;
}

rl__pending_entry *rl__pending_take(rl__pending *p) {
  rl__pending_entry *all = NULL;
  for (size_t i = 0; i < STRIPES; i++) {
    stripe *s = &p->stripes[i];
    size_t n = 0;
    uint64_t units = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t b = 0; b <= p->mask; b++) {
      for (rl__pending_entry *e = s->buckets[b], *next; e != NULL; e = next) {
        next = e->next;
        e->next = all;
        all = e;
        n++;
        units += e->units;
      }
      s->buckets[b] = NULL;
    }
    atomic_fetch_sub(&p->keys, n);
    atomic_fetch_sub(&p->units, units);
    pthread_mutex_unlock(&s->mu);
  }
  return all;
}

int rl__pending_put_back(rl__pending *p, rl__pending_entry *e) {
  int kept =
      rl__pending_add(p, e->key, e->key_len, &e->shape, e->units, e->last_ms);
  free(e);
  return kept;
}

void rl__pending_stats_get(rl__pending *p, rl__pending_stats *out) {
  out->keys = atomic_load(&p->keys);
  out->units = atomic_load(&p->units);
  out->dropped_units = atomic_load(&p->dropped);
}
