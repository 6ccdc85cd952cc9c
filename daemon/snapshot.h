/*
 * snapshot.h - what one request needs to know about the configuration,
 * precomputed, immutable, and published atomically.
 *
 * A reload builds a new snapshot off the hot path (policy lookup table,
 * RateLimit-Policy header values, RateLimit item prefixes, metric slots)
 * and publishes it. Each worker keeps one reference to the snapshot it
 * uses; it checks for a newer one at the start of every request with one
 * atomic load, and takes a lock only when the pointer changed. A snapshot
 * is freed by whoever drops its last reference, so requests in flight
 * finish on the configuration they started with.
 */
#ifndef RLD_SNAPSHOT_H
#define RLD_SNAPSHOT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

/* Room for '"' name '-' duration '";r=' */
#define RLD_ITEM_PREFIX_MAX (RL_POLICY_NAME_MAX + 40)

typedef struct rld_snap_policy {
  const rld_policy *cfg; /* in the snapshot's config */
  rl_policy shape;       /* named; for the headers */
  int shadow;            /* effective: the policy's or the global flag */
  unsigned slot;         /* metrics slot of this policy name */
  size_t policy_header_len;
  char policy_header[RL_MW_VALUE_MAX]; /* RateLimit-Policy value */
  /* '"api-1m";r=' for each window: the start of the RateLimit value. */
  char item_prefix[RL_MAX_WINDOWS][RLD_ITEM_PREFIX_MAX];
} rld_snap_policy;

typedef struct rld_snapshot {
  atomic_uint refs;
  uint64_t version; /* 1 for the first configuration, +1 per reload */
  uint64_t hash;    /* of the file's bytes */
  char hash_hex[17];
  rld_config *config; /* owned */
  size_t n_policies;
  rld_snap_policy *policies; /* same order as config->policies */
  uint32_t *index;           /* open addressing: policy index + 1, 0 free */
  size_t index_mask;
} rld_snapshot;

struct rld_metrics;

/* Builds a snapshot that owns config (freed with the snapshot, or here on
 * failure). One reference, the caller's. 0 or -1 (out of memory). */
int rld_snapshot_new(rld_config *config, uint64_t version, uint64_t hash,
                     struct rld_metrics *metrics, rld_snapshot **out);

/* The policy called name (len bytes); name NULL = the default policy.
 * NULL if there is none. */
const rld_snap_policy *rld_snapshot_find(const rld_snapshot *s,
                                         const char *name, size_t len);

void rld_snapshot_ref(rld_snapshot *s);
/* Drops a reference; frees the snapshot with the last one. NULL is a
 * no-op. */
void rld_snapshot_unref(rld_snapshot *s);

/* The current snapshot, for readers. */
typedef struct rld_published {
  _Atomic(rld_snapshot *) current;
  pthread_mutex_t lock; /* serialises a reader's ref with a swap */
} rld_published;

void rld_published_init(rld_published *p, rld_snapshot *first);
/* Releases the current snapshot's published reference. */
void rld_published_close(rld_published *p);

/* Returns the current snapshot with a reference held by the caller, given
 * the one it holds now (NULL at first): on the fast path that is the same
 * pointer, returned as is. The old reference is dropped when it changes. */
rld_snapshot *rld_published_acquire(rld_published *p, rld_snapshot *held);

/* Publishes next (its creation reference becomes the published one) and
 * drops the published reference of the previous snapshot. */
void rld_published_swap(rld_published *p, rld_snapshot *next);

/* The current snapshot without a reference: only for the thread that
 * swaps (nothing can free it under that thread). */
rld_snapshot *rld_published_peek(rld_published *p);

#endif /* RLD_SNAPSHOT_H */
