/*
 * test_memory_store.c - the striped store: the byte budget holds, expired
 * keys go before live ones, the CLOCK spares recently used keys, the table
 * grows without losing state, and sweeping reclaims expired keys.
 */
#include <stdio.h>

#include "test_util.h"

#include "compiled_policy.h"
#include "memory_store.h"

/* The guard the stores under test reclaim with; every decision runs in a
 * read section of it, as rl_decide's do. */
static rl__guard g_guard;

static rl__memstore *store_new(size_t max_bytes, unsigned stripes) {
  rl__memstore *ms = NULL;
  assert_int_equal(rl__memstore_new(max_bytes, stripes, &g_guard, &ms), RL_OK);
  return ms;
}

static int decide_bytes(rl__memstore *ms, uint16_t policy, const rl__policy *p,
                        const char *key, size_t len, int64_t now,
                        rl_decision *d) {
  rl__guard_token token;
  rl__guard_enter(&g_guard, &token);
  int err = rl__memstore_decide(ms, policy, &p->shape, key, len, now, 1, d);
  rl__guard_exit(&token);
  return err;
}

static int decide(rl__memstore *ms, const rl__policy *p, unsigned key,
                  int64_t now, rl_decision *d) {
  char buf[32];
  int n = snprintf(buf, sizeof buf, "key:%u", key);
  return decide_bytes(ms, 0, p, buf, (size_t)n, now, d);
}

static void test_budget_is_never_exceeded(void **state) {
  (void)state;
  rl__policy p = compile(RL_ALG_FIXED_WINDOW, 5, 60000);
  size_t budget = 64 << 10;
  rl__memstore *ms = store_new(budget, 4);
  rl_decision d;
  rl_memory_stats st;
  for (unsigned k = 0; k < 20000; k++) {
    assert_int_equal(decide(ms, &p, k, 1000, &d), RL_OK);
    assert_true(d.allowed);
    if (k % 500 == 0) {
      rl__memstore_stats(ms, &st);
      assert_true(st.bytes <= budget);
    }
  }
  rl__memstore_stats(ms, &st);
  assert_true(st.bytes <= budget);
  assert_true(st.keys > 100); /* the budget is used, not wasted */
  assert_true(st.evicted_live > 0);
  assert_int_equal(st.evicted_expired, 0);
  rl__memstore_free(ms);
}

static void test_expired_keys_go_before_live_ones(void **state) {
  (void)state;
  rl__policy shortp = compile(RL_ALG_FIXED_WINDOW, 5, 10);
  rl__memstore *ms = store_new(64 << 10, 1);
  rl_decision d;
  rl_memory_stats st;
  unsigned k = 0;
  do { /* fill the budget with keys that expire at t = 10 */
    assert_int_equal(decide(ms, &shortp, k++, 0, &d), RL_OK);
    rl__memstore_stats(ms, &st);
  } while (st.evicted_live == 0);
  uint64_t live_before = st.evicted_live;
  /* at t = 20 they have all expired: half as many new keys fit without
   * evicting a live one */
  for (unsigned i = 0; i < k / 2; i++) {
    assert_int_equal(decide(ms, &shortp, 1000000 + i, 20, &d), RL_OK);
  }
  rl__memstore_stats(ms, &st);
  assert_int_equal(st.evicted_live, live_before);
  assert_true(st.evicted_expired > 0);
  rl__memstore_free(ms);
}

/* A key used between evictions keeps its referenced bit and survives while
 * idle keys are evicted around it. */
static void test_clock_spares_recently_used_keys(void **state) {
  (void)state;
  rl__policy p = compile(RL_ALG_FIXED_WINDOW, 1000000, 60000);
  rl__memstore *ms = store_new(64 << 10, 1);
  rl_decision d;
  for (unsigned k = 0; k < 5000; k++) {
    assert_int_equal(decide(ms, &p, 7, 0, &d), RL_OK); /* the hot key */
    assert_int_equal(decide(ms, &p, 100 + k, 0, &d), RL_OK);
  }
  assert_int_equal(decide(ms, &p, 7, 0, &d), RL_OK);
  assert_int_equal(d.remaining, 1000000 - 5001); /* never forgotten */
  rl_memory_stats st;
  rl__memstore_stats(ms, &st);
  assert_true(st.evicted_live > 1000);
  rl__memstore_free(ms);
}

static void test_growth_keeps_every_state(void **state) {
  (void)state;
  rl__policy p = compile(RL_ALG_SLIDING_COUNTER, 3, 60000);
  rl__memstore *ms = store_new(64 << 20, 2);
  rl_decision d;
  for (unsigned k = 0; k < 50000; k++) {
    assert_int_equal(decide(ms, &p, k, 5, &d), RL_OK);
  }
  for (unsigned k = 0; k < 50000; k++) {
    assert_int_equal(decide(ms, &p, k, 5, &d), RL_OK);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 1);
  }
  rl_memory_stats st;
  rl__memstore_stats(ms, &st);
  assert_int_equal(st.keys, 50000);
  assert_int_equal(st.evicted_live + st.evicted_expired, 0);
  rl__memstore_free(ms);
}

static void test_sweep_reclaims_expired(void **state) {
  (void)state;
  rl__policy p = compile(RL_ALG_TOKEN_BUCKET, 10, 100);
  rl__memstore *ms = store_new(1 << 20, 8);
  rl_decision d;
  /* one unit of 10 per 100 ms: the state expires 10 ms after it */
  for (unsigned k = 0; k < 1000; k++) {
    assert_int_equal(decide(ms, &p, k, k < 500 ? 0 : 5, &d), RL_OK);
  }
  assert_int_equal(rl__memstore_sweep(ms, 12), 500);
  rl_memory_stats st;
  rl__memstore_stats(ms, &st);
  assert_int_equal(st.keys, 500);
  assert_int_equal(rl__memstore_sweep(ms, 5000), 500);
  rl__memstore_stats(ms, &st);
  assert_int_equal(st.keys, 0);
  assert_int_equal(st.evicted_expired, 1000);
  rl__memstore_free(ms);
}

static void test_same_bytes_under_two_policies(void **state) {
  (void)state;
  rl__policy p = compile(RL_ALG_FIXED_WINDOW, 1, 1000);
  rl__memstore *ms = store_new(1 << 20, 1);
  rl_decision d;
  assert_int_equal(decide_bytes(ms, 0, &p, "k", 1, 0, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(decide_bytes(ms, 1, &p, "k", 1, 0, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(decide_bytes(ms, 0, &p, "k", 1, 0, &d), RL_OK);
  assert_false(d.allowed);
  rl__memstore_free(ms);
}

int main(void) {
  rl__guard_init(&g_guard, NULL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_budget_is_never_exceeded),
      cmocka_unit_test(test_expired_keys_go_before_live_ones),
      cmocka_unit_test(test_clock_spares_recently_used_keys),
      cmocka_unit_test(test_growth_keeps_every_state),
      cmocka_unit_test(test_sweep_reclaims_expired),
      cmocka_unit_test(test_same_bytes_under_two_policies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
