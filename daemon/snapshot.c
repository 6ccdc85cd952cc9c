/*
 * snapshot.c - building, finding in and publishing configuration
 * snapshots. See snapshot.h for the reclamation scheme.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "snapshot.h"

static size_t name_hash(const char *s, size_t len) {
  return (size_t)rld_hash(s, len);
}

static void fill_policy(rld_snap_policy *sp, const rld_config *c, size_t i,
                        struct rld_metrics *metrics) {
  const rld_policy *p = &c->policies[i];
  sp->cfg = p;
  sp->shape = p->policy;
  sp->shape.name = p->name;
  sp->shadow = p->shadow || c->shadow;
  sp->slot = rld_metrics_slot(metrics, p->name);
  int n = rl_mw_format_policy(p->name, &sp->shape, sp->policy_header,
                              sizeof sp->policy_header);
  sp->policy_header_len = n > 0 ? (size_t)n : 0;
  for (size_t w = 0; w < p->policy.n_windows; w++) {
    char name[RLD_ITEM_PREFIX_MAX];
    if (rl_mw_window_name(p->name, &p->policy.windows[w], name, sizeof name) <
        0) {
      name[0] = '\0';
    }
    snprintf(sp->item_prefix[w], sizeof sp->item_prefix[w],
             "\"%.*s\";r=", (int)(sizeof name - 8), name);
  }
}

static int build_index(rld_snapshot *s) {
  size_t cap = 4;
  while (cap < s->n_policies * 2) {
    cap *= 2;
  }
  s->index = calloc(cap, sizeof *s->index);
  if (s->index == NULL) {
    return -1;
  }
  s->index_mask = cap - 1;
  for (size_t i = 0; i < s->n_policies; i++) {
    const char *name = s->config->policies[i].name;
    size_t h = name_hash(name, strlen(name)) & s->index_mask;
    while (s->index[h] != 0) {
      h = (h + 1) & s->index_mask;
    }
    s->index[h] = (uint32_t)(i + 1);
  }
  return 0;
}

static void snapshot_free(rld_snapshot *s) {
  rld_config_free(s->config);
  free(s->policies);
  free(s->index);
  free(s);
}

int rld_snapshot_new(rld_config *config, uint64_t version, uint64_t hash,
                     struct rld_metrics *metrics, rld_snapshot **out) {
  rld_snapshot *s = calloc(1, sizeof *s);
  if (s == NULL) {
    rld_config_free(config);
    return -1;
  }
  atomic_init(&s->refs, 1);
  s->version = version;
  s->hash = hash;
  snprintf(s->hash_hex, sizeof s->hash_hex, "%016llx",
           (unsigned long long)hash);
  s->config = config;
  s->n_policies = config->n_policies;
  s->policies = calloc(config->n_policies, sizeof *s->policies);
  if (s->policies == NULL || build_index(s) != 0) {
    snapshot_free(s);
    return -1;
  }
  for (size_t i = 0; i < s->n_policies; i++) {
    fill_policy(&s->policies[i], config, i, metrics);
  }
  *out = s;
  return 0;
}

const rld_snap_policy *rld_snapshot_find(const rld_snapshot *s,
                                         const char *name, size_t len) {
  if (name == NULL) {
    return &s->policies[0];
  }
  size_t h = name_hash(name, len) & s->index_mask;
  while (s->index[h] != 0) {
    const rld_snap_policy *p = &s->policies[s->index[h] - 1];
    if (strncmp(p->cfg->name, name, len) == 0 && p->cfg->name[len] == '\0' &&
        memchr(name, '\0', len) == NULL) {
      return p;
    }
    h = (h + 1) & s->index_mask;
  }
  return NULL;
}

void rld_snapshot_ref(rld_snapshot *s) {
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void rld_snapshot_unref(rld_snapshot *s) {
  if (s != NULL &&
      atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
    snapshot_free(s);
  }
}

void rld_published_init(rld_published *p, rld_snapshot *first) {
  atomic_init(&p->current, first);
  pthread_mutex_init(&p->lock, NULL);
}

void rld_published_close(rld_published *p) {
  rld_snapshot_unref(atomic_load(&p->current));
  atomic_store(&p->current, NULL);
  pthread_mutex_destroy(&p->lock);
}

rld_snapshot *rld_published_acquire(rld_published *p, rld_snapshot *held) {
  rld_snapshot *cur = atomic_load_explicit(&p->current, memory_order_acquire);
  if (cur == held) {
    return held;
  }
  pthread_mutex_lock(&p->lock);
  cur = atomic_load_explicit(&p->current, memory_order_acquire);
  rld_snapshot_ref(cur);
  pthread_mutex_unlock(&p->lock);
  rld_snapshot_unref(held);
  return cur;
}

void rld_published_swap(rld_published *p, rld_snapshot *next) {
  pthread_mutex_lock(&p->lock);
  rld_snapshot *old = atomic_load_explicit(&p->current, memory_order_relaxed);
  atomic_store_explicit(&p->current, next, memory_order_release);
  pthread_mutex_unlock(&p->lock);
  rld_snapshot_unref(old);
}

rld_snapshot *rld_published_peek(rld_published *p) {
  return atomic_load_explicit(&p->current, memory_order_acquire);
}
