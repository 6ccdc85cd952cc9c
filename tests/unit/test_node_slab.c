/*
 * test_node_slab.c - the memory store's slab of cache-line slots: slots
 * are aligned and disjoint across pages, freed slots are reused before
 * new pages are taken, and the memory store charges one slot per small
 * node.
 */
#include <stdint.h>
#include <stdlib.h>

#include "test_util.h"

#include "memory_store.h"
#include "node_slab.h"

enum { N = 3 * (int)(RL__SLAB_PAGE / RL__SLAB_SLOT) + 7 }; /* > 3 pages */

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a;
  uintptr_t y = (uintptr_t) * (void *const *)b;
  return x < y ? -1 : x > y;
}

static void test_slots_aligned_and_disjoint(void **state) {
  (void)state;
  rl__slab s;
  rl__slab_init(&s);
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = rl__slab_alloc(&s);
    assert_non_null(p[i]);
    assert_int_equal((uintptr_t)p[i] % RL__SLAB_SLOT, 0);
    memset(p[i], 0xab, RL__SLAB_SLOT); /* the whole slot is ours (ASan) */
  }
  qsort(p, N, sizeof(p[0]), cmp_ptr);
  for (int i = 1; i < N; i++)
    assert_true((uintptr_t)p[i] - (uintptr_t)p[i - 1] >= RL__SLAB_SLOT);
  rl__slab_destroy(&s);
}

static void test_freed_slots_reused_first(void **state) {
  (void)state;
  rl__slab s;
  rl__slab_init(&s);
  static void *p[N];
  for (int i = 0; i < N; i++)
    p[i] = rl__slab_alloc(&s);
  void *pages = s.pages;
  for (int i = 0; i < N; i += 2)
    rl__slab_free(&s, p[i]);
  for (int i = 0; i < N; i += 2) {
    void *q = rl__slab_alloc(&s);
    int found = 0;
    for (int j = 0; j < N && !found; j += 2)
      found = q == p[j];
    assert_true(found); /* a freed slot, not a new one */
  }
  assert_ptr_equal(s.pages, pages); /* no page added */
  rl__slab_destroy(&s);
  assert_null(s.pages);
}

static void test_store_charges_a_slot_per_small_node(void **state) {
  (void)state;
  /* 24-byte header + 16-byte state + key: up to 24 key bytes fit a line */
  assert_int_equal(rl__memstore_node_bytes(16, 15), RL__SLAB_SLOT);
  assert_int_equal(rl__memstore_node_bytes(16, 24), RL__SLAB_SLOT);
  assert_int_equal(rl__memstore_node_bytes(24, 16), RL__SLAB_SLOT);
  /* one byte more: malloc's chunk (request + 8, rounded up to 16) */
  assert_int_equal(rl__memstore_node_bytes(16, 25), 80);
  assert_int_equal(rl__memstore_node_bytes(48, 15), 96);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slots_aligned_and_disjoint),
      cmocka_unit_test(test_freed_slots_reused_first),
      cmocka_unit_test(test_store_charges_a_slot_per_small_node),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
