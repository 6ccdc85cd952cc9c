/*
 * hot_keys.h - the bounded list of hot keys of the cache layer.
 *
 * At most K keys, each found again through its cache slot (stripe, slot
 * index, hash, policy id). A key enters when its rate crosses the
 * threshold and the list has room, and leaves when it cools down or is
 * displaced (both by the cache's sweeper, after its lease went back);
 * there is no other way in or out, so a slot's HOT flag and its membership
 * always agree. A key that crosses the threshold while the list is full
 * displaces the coolest entry if that one runs at less than half its rate:
 * the list keeps the hottest keys (a top-K), and the factor 2 keeps two
 * keys of similar rates from taking turns. The list is small and touched only
 * on those transitions and by the sweeper and rl_hot_keys(), never by a
 * decision that hits the cache.
 */
#ifndef RL_HOT_KEYS_H
#define RL_HOT_KEYS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ratelimiter.h"

typedef struct rl__hot_entry {
  uint32_t stripe, slot; /* where the key lives in the cache */
  uint64_t hash;
  uint16_t policy_id;
  uint16_t policy_index; /* in the table of the key's serial */
  uint64_t rate;         /* decisions/s, as of the last sweep */
  int leased;
  int displaced; /* to leave the list at the next sweep */
  size_t key_len;
  unsigned char key[RL_CACHE_KEY_MAX];
} rl__hot_entry;

typedef struct rl__hot_keys {
  pthread_mutex_t lock;
  size_t n, cap;
  rl__hot_entry *e;
} rl__hot_keys;

/* RL_OK or RL_ERR_NO_MEMORY. */
int rl__hot_keys_init(rl__hot_keys *h, size_t cap);
void rl__hot_keys_destroy(rl__hot_keys *h);

/* Adds e; 0 when the list is full. */
int rl__hot_keys_add(rl__hot_keys *h, const rl__hot_entry *e);
/* The list is full: marks the coolest entry displaced when its rate (as
 * of the last sweep) is below rate / 2 and no entry is displaced already.
 * 1 if it marked one. */
int rl__hot_keys_displace(rl__hot_keys *h, uint64_t rate);
/* Removes the entry of (stripe, slot). */
void rl__hot_keys_remove(rl__hot_keys *h, uint32_t stripe, uint32_t slot);
/* Sets rate and leased of the entry of (stripe, slot). */
void rl__hot_keys_update(rl__hot_keys *h, uint32_t stripe, uint32_t slot,
                         uint64_t rate, int leased);
/* Copies up to cap entries, hottest first; returns how many there are. */
size_t rl__hot_keys_copy(rl__hot_keys *h, rl__hot_entry *out, size_t cap);

#endif /* RL_HOT_KEYS_H */
