/*
 * retire.c - see retire.h.
 */
#include "retire.h"
#include "guard.h"

void rl__retire_push(rl__retire_list *l, rl__retired *r) {
  r->next = NULL;
  r->tag = 0;
  if (l->head == NULL) {
    l->head = r;
  } else {
    l->tail->next = r;
  }
  l->tail = r;
  l->count++;
}

void rl__retire_splice(rl__retire_list *l, rl__retire_list *batch,
                       uint64_t tag) {
  if (batch->head == NULL) {
    return;
  }
  for (rl__retired *r = batch->head; r != NULL; r = r->next) {
    r->tag = tag;
  }
  if (l->head == NULL) {
    l->head = batch->head;
  } else {
    l->tail->next = batch->head;
  }
  l->tail = batch->tail;
  l->count += batch->count;
  rl__retire_init(batch);
}

rl__retired *rl__retire_take_ready(rl__retire_list *l, uint64_t epoch) {
  rl__retired *first = l->head, *last = NULL;
  for (rl__retired *r = first; r != NULL && rl__guard_safe(r->tag, epoch);
       r = r->next) {
    last = r;
    l->count--;
  }
  if (last == NULL) {
    return NULL;
  }
  l->head = last->next;
  last->next = NULL;
  return first;
}

rl__retired *rl__retire_take_all(rl__retire_list *l) {
  rl__retired *first = l->head;
  rl__retire_init(l);
  return first;
}
