/*
 * node_slab.h - cache-line slots for the memory store's small nodes.
 *
 * Why: a decision writes its key's node (lock word, state, expiry). With
 * nodes from malloc (16-byte aligned, 64 B chunks for the common sizes)
 * one cache line often holds parts of two keys' nodes, so two cores
 * deciding on distinct keys write the same lines whenever those keys sit
 * side by side in memory (docs/Performance.md, "false sharing between
 * nodes"). A slab hands out 64-byte slots aligned to 64 bytes: one node,
 * one line, no neighbour. It costs no memory for nodes of up to 64 bytes
 * (glibc's chunk for them is 64 bytes too, header included); larger nodes
 * stay with malloc.
 *
 * Slots come from pages of RL__SLAB_PAGE bytes (the first slot links the
 * pages) and freed slots are reused first, so the pages a slab holds never
 * exceed its peak of live slots, rounded up to a page. Pages go back to
 * the system only with the slab.
 *
 * Not thread-safe: the owner serialises (the memory store: its stripe
 * lock, under which every node is created and freed).
 */
#ifndef RL_NODE_SLAB_H
#define RL_NODE_SLAB_H

#include <stddef.h>

#define RL__SLAB_SLOT 64
#define RL__SLAB_PAGE ((size_t)16384)

typedef struct rl__slab {
  void *free;       /* freed slots, linked through their first word */
  char *bump, *end; /* the newest page's slots not handed out yet */
  void *pages;      /* every page, linked through its first slot */
} rl__slab;

void rl__slab_init(rl__slab *s);
/* One RL__SLAB_SLOT-byte slot aligned to RL__SLAB_SLOT, or NULL when out
 * of memory. */
void *rl__slab_alloc(rl__slab *s);
void rl__slab_free(rl__slab *s, void *slot);
/* Frees every page (slots handed out included). */
void rl__slab_destroy(rl__slab *s);

#endif /* RL_NODE_SLAB_H */
