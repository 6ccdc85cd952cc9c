/*
 * hot_keys.c - the bounded list of hot keys (hot_keys.h): an array under
 * one mutex, kept sorted by rate only when copied out.
 */
#include <stdlib.h>
#include <string.h>

#include "hot_keys.h"

int rl__hot_keys_init(rl__hot_keys *h, size_t cap) {
  memset(h, 0, sizeof *h);
  h->e = calloc(cap, sizeof *h->e);
  if (h->e == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  h->cap = cap;
  pthread_mutex_init(&h->lock, NULL);
  return RL_OK;
}

void rl__hot_keys_destroy(rl__hot_keys *h) {
  if (h->e != NULL) {
    pthread_mutex_destroy(&h->lock);
    free(h->e);
    h->e = NULL;
  }
}

int rl__hot_keys_add(rl__hot_keys *h, const rl__hot_entry *e) {
  pthread_mutex_lock(&h->lock);
  int added = h->n < h->cap;
  if (added) {
    h->e[h->n++] = *e;
  }
  pthread_mutex_unlock(&h->lock);
  return added;
}

int rl__hot_keys_displace(rl__hot_keys *h, uint64_t rate) {
  pthread_mutex_lock(&h->lock);
  size_t coolest = h->n;
  int busy = h->n < h->cap; /* room: nothing to displace */
  for (size_t i = 0; i < h->n && !busy; i++) {
    busy = h->e[i].displaced;
    if (coolest == h->n || h->e[i].rate < h->e[coolest].rate) {
      coolest = i;
    }
  }
  int marked = !busy && coolest < h->n && h->e[coolest].rate < rate / 2;
  if (marked) {
    h->e[coolest].displaced = 1;
  }
  pthread_mutex_unlock(&h->lock);
  return marked;
}

static size_t find(const rl__hot_keys *h, uint32_t stripe, uint32_t slot) {
  for (size_t i = 0; i < h->n; i++) {
    if (h->e[i].stripe == stripe && h->e[i].slot == slot) {
      return i;
    }
  }
  return h->n;
}

void rl__hot_keys_remove(rl__hot_keys *h, uint32_t stripe, uint32_t slot) {
  pthread_mutex_lock(&h->lock);
  size_t i = find(h, stripe, slot);
  if (i < h->n) {
    h->e[i] = h->e[--h->n];
  }
  pthread_mutex_unlock(&h->lock);
}

void rl__hot_keys_update(rl__hot_keys *h, uint32_t stripe, uint32_t slot,
                         uint64_t rate, int leased) {
  pthread_mutex_lock(&h->lock);
  size_t i = find(h, stripe, slot);
  if (i < h->n) {
    h->e[i].rate = rate;
    h->e[i].leased = leased;
  }
  pthread_mutex_unlock(&h->lock);
}

static int hotter_first(const void *a, const void *b) {
  const rl__hot_entry *x = a, *y = b;
  return x->rate < y->rate ? 1 : (x->rate > y->rate ? -1 : 0);
}

size_t rl__hot_keys_copy(rl__hot_keys *h, rl__hot_entry *out, size_t cap) {
  pthread_mutex_lock(&h->lock);
  size_t n = h->n;
  size_t k = n < cap ? n : cap;
  if (k == 0) {
    /* nothing to copy */
  } else if (k == n) {
    memcpy(out, h->e, n * sizeof *out);
  } else { /* the hottest k: sort a private copy first */
    rl__hot_entry *all = malloc(n * sizeof *all);
    if (all == NULL) {
      k = 0;
    } else {
      memcpy(all, h->e, n * sizeof *all);
      qsort(all, n, sizeof *all, hotter_first);
      memcpy(out, all, k * sizeof *out);
      free(all);
    }
  }
  pthread_mutex_unlock(&h->lock);
  if (k > 1) {
    qsort(out, k, sizeof *out, hotter_first);
  }
  return n;
}
