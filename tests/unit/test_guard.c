/*
 * test_guard.c - the epoch rule of guard.h (a reader of epoch f holds the
 * epoch at f + 1 at most; an object tagged t is safe from t + 2), the
 * retire list's ready prefix, and rl__guard_replace racing readers.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test_util.h"

#include "guard.h"
#include "retire.h"

static rl__guard g;

static void test_reader_holds_the_epoch_back(void **state) {
  (void)state;
  rl__guard_init(&g, NULL);
  assert_int_equal(rl__guard_try_advance(&g), 1); /* no reader at all */
  rl__guard_token token;
  rl__guard_enter(&g, &token); /* a reader of epoch 1 */
  assert_int_equal(rl__guard_try_advance(&g), 2);
  assert_int_equal(rl__guard_try_advance(&g), 2); /* 3 needs it gone */
  assert_int_equal(rl__guard_try_advance(&g), 2);
  rl__guard_exit(&token);
  assert_int_equal(rl__guard_try_advance(&g), 3);
  assert_int_equal(rl__guard_try_advance(&g), 4);
}

static void test_retire_tag_is_safe_two_epochs_later(void **state) {
  (void)state;
  rl__guard_init(&g, NULL);
  rl__guard_token token;
  rl__guard_enter(&g, &token); /* reader of 0: may hold the object */
  uint64_t tag = rl__guard_retire_epoch(&g);
  assert_int_equal(tag, 0);
  uint64_t e = rl__guard_try_advance(&g);
  assert_false(rl__guard_safe(tag, e));
  e = rl__guard_try_advance(&g);
  assert_int_equal(e, 1);
  assert_false(rl__guard_safe(tag, e));
  rl__guard_exit(&token);
  e = rl__guard_try_advance(&g);
  assert_int_equal(e, 2);
  assert_true(rl__guard_safe(tag, e));
}

typedef struct item {
  uint64_t payload;
  rl__retired rec;
} item;

static void test_retire_list_frees_a_ready_prefix(void **state) {
  (void)state;
  item items[5];
  rl__retire_list list, batch;
  rl__retire_init(&list);
  rl__retire_init(&batch);
  assert_null(rl__retire_take_ready(&list, 100));
  for (int i = 0; i < 5; i++) {
    rl__retire_push(&batch, &items[i].rec);
    if (i == 1 || i == 3 || i == 4) { /* tags 10, 11, 11 */
      rl__retire_splice(&list, &batch, i == 1 ? 10 : 11);
    }
  }
  assert_int_equal(list.count, 5);
  assert_null(batch.head);
  rl__retire_splice(&list, &batch, 12); /* empty batch: nothing */
  assert_int_equal(list.count, 5);
  assert_null(rl__retire_take_ready(&list, 11)); /* 10 + 2 > 11 */
  rl__retired *r = rl__retire_take_ready(&list, 12);
  assert_ptr_equal(r, &items[0].rec);
  assert_ptr_equal(r->next, &items[1].rec);
  assert_null(r->next->next);
  assert_int_equal(list.count, 3);
  r = rl__retire_take_all(&list);
  assert_ptr_equal(r, &items[2].rec);
  assert_int_equal(list.count, 0);
  assert_null(list.head);
}

/* Readers check that the published value is never one the writer already
 * reclaimed (the writer poisons what replace() returns). */
#define GENERATIONS 100
#define READERS 2

typedef struct boxed {
  atomic_int alive;
  int generation;
} boxed;

static boxed boxes[GENERATIONS + 1];
static atomic_int stop_readers;
static atomic_long bad_reads;

static void *reader_main(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_readers)) {
    rl__guard_token token;
    boxed *b = rl__guard_enter(&g, &token);
    for (int i = 0; i < 50; i++) {
      if (!atomic_load_explicit(&b->alive, memory_order_relaxed)) {
        atomic_fetch_add(&bad_reads, 1);
      }
    }
    rl__guard_exit(&token);
  }
  return NULL;
}

static void test_replace_waits_for_readers(void **state) {
  (void)state;
  for (int i = 0; i <= GENERATIONS; i++) {
    atomic_init(&boxes[i].alive, 1);
    boxes[i].generation = i;
  }
  rl__guard_init(&g, &boxes[0]);
  atomic_store(&stop_readers, 0);
  pthread_t tid[READERS];
  for (int i = 0; i < READERS; i++) {
    assert_int_equal(pthread_create(&tid[i], NULL, reader_main, NULL), 0);
  }
  for (int i = 1; i <= GENERATIONS; i++) {
    boxed *old = rl__guard_replace(&g, &boxes[i]);
    assert_int_equal(old->generation, i - 1);
    atomic_store_explicit(&old->alive, 0, memory_order_relaxed);
    if (i % 3 == 0) { /* a concurrent advancer must not break the rule */
      rl__guard_try_advance(&g);
    }
  }
  atomic_store(&stop_readers, 1);
  for (int i = 0; i < READERS; i++) {
    pthread_join(tid[i], NULL);
  }
  assert_int_equal(atomic_load(&bad_reads), 0);
  assert_ptr_equal(rl__guard_peek(&g), &boxes[GENERATIONS]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reader_holds_the_epoch_back),
      cmocka_unit_test(test_retire_tag_is_safe_two_epochs_later),
      cmocka_unit_test(test_retire_list_frees_a_ready_prefix),
      cmocka_unit_test(test_replace_waits_for_readers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
