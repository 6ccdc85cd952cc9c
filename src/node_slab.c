/*
 * node_slab.c - see node_slab.h.
 */
#include "node_slab.h"

#include <stdlib.h>

void rl__slab_init(rl__slab *s) {
  s->free = NULL;
  s->bump = s->end = NULL;
  s->pages = NULL;
}

void *rl__slab_alloc(rl__slab *s) {
  if (s->free != NULL) {
    void *slot = s->free;
    s->free = *(void **)slot;
    return slot;
  }
  if (s->bump == s->end) {
    char *page = aligned_alloc(RL__SLAB_SLOT, RL__SLAB_PAGE);
    if (page == NULL) {
      return NULL;
    }
    *(void **)(void *)page = s->pages;
    s->pages = page;
    s->bump = page + RL__SLAB_SLOT; /* slot 0 links the pages */
    s->end = page + RL__SLAB_PAGE;
  }
  void *slot = s->bump;
  s->bump += RL__SLAB_SLOT;
  return slot;
}

void rl__slab_free(rl__slab *s, void *slot) {
  *(void **)slot = s->free;
  s->free = slot;
}

void rl__slab_destroy(rl__slab *s) {
  while (s->pages != NULL) {
    void *next = *(void **)s->pages;
    free(s->pages);
    s->pages = next;
  }
  rl__slab_init(s);
}
