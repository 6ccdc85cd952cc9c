/*
 * policy_table.c - see policy_table.h.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "policy_table.h"

#include "fallback.h"

static uint64_t name_hash(const char *name, size_t len) {
  uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a: names are ours */
  for (size_t i = 0; i < len; i++) {
    h = (h ^ (unsigned char)name[i]) * UINT64_C(0x100000001b3);
  }
  return h;
}

int rl__policy_state_compatible(const rl__policy *a, const rl__policy *b) {
  const rl__policy_shape *x = &a->shape, *y = &b->shape;
  if (x->algorithm != y->algorithm || x->n_windows != y->n_windows ||
      x->state_size != y->state_size) {
    return 0;
  }
  for (size_t i = 0; i < x->n_windows; i++) {
    const rl__window_params *p = &x->windows[i], *q = &y->windows[i];
    if (p->duration_ms != q->duration_ms || p->log_slots != q->log_slots ||
        (x->algorithm == RL_ALG_TOKEN_BUCKET && p->limit != q->limit)) {
      return 0;
    }
  }
  return 1;
}

static int id_take(rl__id_pool *pool, uint16_t *out) {
  for (size_t w = 0; w < RL__POLICY_IDS / 64; w++) {
    if (pool->used[w] != UINT64_MAX) {
      unsigned bit = (unsigned)__builtin_ctzll(~pool->used[w]);
      pool->used[w] |= UINT64_C(1) << bit;
      *out = (uint16_t)(w * 64 + bit);
      return RL_OK;
    }
  }
  return RL_ERR_NO_MEMORY; /* unreachable: at most 2 x RL_MAX_POLICIES */
}

void rl__id_pool_release(rl__id_pool *pool, const uint64_t *retired) {
  for (size_t w = 0; w < RL__POLICY_IDS / 64; w++) {
    pool->used[w] &= ~retired[w];
  }
}

static void index_names(rl__policy_table *t) {
  for (size_t i = 0; i < t->n; i++) {
    const rl__policy *p = &t->policies[i];
    size_t s = name_hash(p->name, p->name_len) & t->slot_mask;
    while (t->slots[s] != 0) {
      s = (s + 1) & t->slot_mask;
    }
    t->slots[s] = (uint16_t)(i + 1);
  }
}

int rl__policy_table_find(const rl__policy_table *t, const char *name,
                          size_t len, size_t *index) {
  size_t s = name_hash(name, len) & t->slot_mask;
  for (; t->slots[s] != 0; s = (s + 1) & t->slot_mask) {
    const rl__policy *p = &t->policies[t->slots[s] - 1];
    if (p->name_len == len && memcmp(p->name, name, len) == 0) {
      *index = t->slots[s] - 1u;
      return RL_OK;
    }
  }
  return RL_ERR_POLICY_UNKNOWN;
}

static int allocate(rl__policy_table **out, size_t n) {
  rl__policy_table *t = calloc(1, sizeof *t);
  size_t slots = 4;
  while (slots < 2 * n) {
    slots *= 2;
  }
  if (t != NULL) {
    t->n = n;
    t->slot_mask = slots - 1;
    t->policies = calloc(n, sizeof *t->policies);
    t->ids = calloc(n, sizeof *t->ids);
    t->metric_slots = calloc(n, sizeof *t->metric_slots);
    t->slots = calloc(slots, sizeof *t->slots);
  }
  if (t == NULL || !t->policies || !t->ids || !t->slots || !t->metric_slots) {
    rl__policy_table_free(t);
    return RL_ERR_NO_MEMORY;
  }
  *out = t;
  return RL_OK;
}

/* The id policy p had in prev, if it may keep it. */
static int inherited_id(const rl__policy_table *prev, const rl__policy *p,
                        uint16_t *id) {
  size_t j = 0;
  if (prev == NULL ||
      rl__policy_table_find(prev, p->name, p->name_len, &j) != RL_OK ||
      !rl__policy_state_compatible(&prev->policies[j], p)) {
    return 0;
  }
  *id = prev->ids[j];
  return 1;
}

int rl__policy_table_new(const rl_config *c, const rl__policy_table *prev,
                         rl__id_pool *pool, rl__policy_table **out) {
  rl__policy_table *t = NULL;
  if (allocate(&t, c->n_policies) != RL_OK) {
    return RL_ERR_NO_MEMORY;
  }
  t->max_key_len = c->max_key_len;
  rl__id_pool saved = *pool;
  int err = RL_OK;
  for (size_t i = 0; err == RL_OK && i < t->n; i++) {
    err = rl__policy_compile(&c->policies[i], i, &t->policies[i], NULL, 0);
    if (err == RL_OK) {
      rl__fallback_resolve(&t->policies[i], &c->policies[i], c);
    }
    if (err == RL_OK && !inherited_id(prev, &t->policies[i], &t->ids[i])) {
      err = id_take(pool, &t->ids[i]);
    }
  }
  if (err != RL_OK) {
    *pool = saved;
    rl__policy_table_free(t);
    return err;
  }
  index_names(t);
  static atomic_uint_fast64_t serials;
  t->serial = atomic_fetch_add(&serials, 1) + 1;
  *out = t;
  return RL_OK;
}

size_t rl__policy_table_retired(const rl__policy_table *old,
                                const rl__policy_table *next,
                                uint64_t *retired) {
  memset(retired, 0, RL__POLICY_IDS / 8);
  size_t n = 0;
  for (size_t i = 0; i < old->n; i++) {
    retired[old->ids[i] / 64] |= UINT64_C(1) << (old->ids[i] % 64);
  }
  for (size_t i = 0; i < next->n; i++) {
    retired[next->ids[i] / 64] &= ~(UINT64_C(1) << (next->ids[i] % 64));
  }
  for (size_t w = 0; w < RL__POLICY_IDS / 64; w++) {
    n += (size_t)__builtin_popcountll(retired[w]);
  }
  return n;
}

void rl__policy_table_free(rl__policy_table *t) {
  if (t != NULL) {
    free(t->policies);
    free(t->ids);
    free(t->metric_slots);
    free(t->slots);
    free(t);
  }
}
