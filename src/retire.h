/*
 * retire.h - objects unlinked from a shared structure, waiting until no
 * reader can hold them (the guard.h rule: free once epoch >= tag + 2).
 *
 * The list is intrusive: each retired object lends 16 of its own bytes for
 * the record (memory-store nodes their dead state, bucket tables a header
 * field), so retiring never allocates and so never fails: an eviction or a
 * purge cannot be refused for lack of memory. Records are appended in
 * non-decreasing tag order (one writer, under a lock, tags with epochs it
 * reads one after the other), so the ready ones are a prefix.
 *
 * Not thread-safe: the owner serialises (the memory store: its stripe lock).
 */
#ifndef RL_RETIRE_H
#define RL_RETIRE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rl__retired {
  struct rl__retired *next;
  uint64_t tag; /* guard epoch read after the unlink */
} rl__retired;

typedef struct rl__retire_list {
  rl__retired *head;
  rl__retired *tail; /* valid when head != NULL */
  size_t count;
} rl__retire_list;

static inline void rl__retire_init(rl__retire_list *l) {
  l->head = NULL;
  l->tail = NULL;
  l->count = 0;
}

/* Appends r, not tagged yet (a batch; see rl__retire_splice). */
void rl__retire_push(rl__retire_list *l, rl__retired *r);

/* Tags every record of `batch` with `tag` and moves them to the end of l. */
void rl__retire_splice(rl__retire_list *l, rl__retire_list *batch,
                       uint64_t tag);

/* Detaches the records that may be freed at `epoch` (tag + 2 <= epoch) and
 * returns them as a NULL-terminated chain (NULL if none). */
rl__retired *rl__retire_take_ready(rl__retire_list *l, uint64_t epoch);

/* Detaches every record (when no reader is left at all). */
rl__retired *rl__retire_take_all(rl__retire_list *l);

#endif /* RL_RETIRE_H */
