/*
 * test_limiter.c - the public decision API on the memory store: bad input
 * gets its code and spends nothing, policies are found by name, keys are
 * opaque bytes, decisions report their source and policy.
 */
#include "test_util.h"

static const rl_window ten_per_second = {10, 1000, 0};

static void test_new_and_free_arguments(void **state) {
  (void)state;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(NULL, &rl), RL_ERR_INVALID_ARGUMENT);
  rl_config c;
  rl_config_init(&c);
  assert_int_equal(rl_new(&c, NULL), RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl_new(&c, &rl), RL_ERR_NO_POLICY);
  assert_null(rl);
  rl_free(NULL);
}

/* Spends all but one unit, then throws bad requests at the limiter: each
 * gets its code, and the last unit is still there afterwards. */
static void test_bad_input_spends_nothing(void **state) {
  (void)state;
  fake_clock clock = {1000};
  rl_limiter *rl = limiter_with(RL_ALG_SLIDING_LOG, &clock, 1, &ten_per_second);
  rl_decision d;
  assert_int_equal(allow_str(rl, "k", 9, &d), RL_OK);
  assert_true(d.allowed);
  char big[RL_KEY_MAX_DEFAULT + 1];
  memset(big, 'k', sizeof big);
  rl_request req = {NULL, 0, "k", 1, 1};
  assert_int_equal(rl_allow(NULL, "k", 1, &d), RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl_allow(rl, "k", 1, NULL), RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl_allow(rl, NULL, 1, &d), RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl_allow(rl, NULL, 0, &d), RL_ERR_KEY_EMPTY);
  assert_int_equal(rl_allow(rl, "", 0, &d), RL_ERR_KEY_EMPTY);
  assert_int_equal(rl_allow(rl, big, sizeof big, &d), RL_ERR_KEY_TOO_LONG);
  assert_int_equal(allow_str(rl, "k", 0, &d), RL_ERR_COST_INVALID);
  assert_int_equal(allow_str(rl, "k", -5, &d), RL_ERR_COST_INVALID);
  assert_int_equal(allow_str(rl, "k", INT64_MIN, &d), RL_ERR_COST_INVALID);
  assert_int_equal(allow_str(rl, "k", (int64_t)RL_COST_MAX + 1, &d),
                   RL_ERR_COST_TOO_LARGE);
  assert_int_equal(allow_str(rl, "k", INT64_MAX, &d), RL_ERR_COST_TOO_LARGE);
  req.policy = "nope";
  req.policy_len = 4;
  assert_int_equal(rl_decide(rl, &req, &d), RL_ERR_POLICY_UNKNOWN);
  assert_int_equal(rl_decide(rl, NULL, &d), RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(allow_str(rl, "k", 1, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(d.remaining, 0);
  assert_int_equal(allow_str(rl, "k", 1, &d), RL_OK);
  assert_false(d.allowed);
  rl_free(rl);
}

static void test_key_length_bounds(void **state) {
  (void)state;
  fake_clock clock = {0};
  rl_policy p;
  rl_policy_init(&p);
  rl_policy_add_window(&p, 1, 1000);
  rl_config c;
  fake_clock_config(&c, &p, 1, &clock);
  c.max_key_len = RL_KEY_MAX;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  static char key[RL_KEY_MAX + 1];
  memset(key, 0xff, sizeof key);
  rl_decision d;
  assert_int_equal(rl_allow(rl, key, RL_KEY_MAX, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(rl_allow(rl, key, RL_KEY_MAX, &d), RL_OK);
  assert_false(d.allowed);
  key[RL_KEY_MAX - 1] = 0; /* differs in the last byte: another key */
  assert_int_equal(rl_allow(rl, key, RL_KEY_MAX, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(rl_allow(rl, key, RL_KEY_MAX + 1, &d), RL_ERR_KEY_TOO_LONG);
  rl_free(rl);
}

/* Keys are bytes: NUL, braces and colons are ordinary, prefixes differ. */
static void test_keys_are_opaque_bytes(void **state) {
  (void)state;
  fake_clock clock = {0};
  rl_window one = {1, 1000, 0};
  rl_limiter *rl = limiter_with(RL_ALG_FIXED_WINDOW, &clock, 1, &one);
  static const char *const keys[] = {"a", "a\0", "\0a", "{a}", "a:", ":a", "A"};
  static const size_t lens[] = {1, 2, 2, 3, 2, 2, 1};
  rl_decision d;
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    assert_int_equal(rl_allow(rl, keys[i], lens[i], &d), RL_OK);
    assert_true(d.allowed);
  }
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    assert_int_equal(rl_allow(rl, keys[i], lens[i], &d), RL_OK);
    assert_false(d.allowed);
  }
  rl_free(rl);
}

static void test_policies_by_name_are_independent(void **state) {
  (void)state;
  fake_clock clock = {0};
  rl_policy p[2];
  rl_policy_init(&p[0]);
  rl_policy_init(&p[1]);
  p[0].name = "login";
  p[1].name = "api";
  p[1].algorithm = RL_ALG_TOKEN_BUCKET;
  rl_policy_add_window(&p[0], 1, 60000);
  rl_policy_add_window(&p[1], 3, 1000);
  rl_config c;
  fake_clock_config(&c, p, 2, &clock);
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  size_t index = 99;
  assert_int_equal(rl_policy_find(rl, "api", 3, &index), RL_OK);
  assert_int_equal(index, 1);
  assert_int_equal(rl_policy_find(rl, "ap", 2, &index), RL_ERR_POLICY_UNKNOWN);
  assert_int_equal(rl_policy_find(NULL, "api", 3, &index),
                   RL_ERR_INVALID_ARGUMENT);
  rl_decision d;
  rl_request req = {"api", 3, "u", 1, 3};
  assert_int_equal(rl_decide(rl, &req, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(d.policy, 1);
  assert_int_equal(d.source, RL_SOURCE_MEMORY);
  assert_int_equal(d.limit, 3);
  assert_int_equal(rl_allow(rl, "u", 1, &d), RL_OK); /* default: login */
  assert_true(d.allowed);
  assert_int_equal(d.policy, 0);
  assert_int_equal(rl_allow(rl, "u", 1, &d), RL_OK);
  assert_false(d.allowed);
  assert_int_equal(d.retry_after_ms, 60000);
  req.cost = 1;
  assert_int_equal(rl_decide(rl, &req, &d), RL_OK); /* api: bucket empty */
  assert_false(d.allowed);
  rl_free(rl);
}

/* The clock the limiter reads is the one configured; negative readings
 * are treated as 0. */
static void test_clock_drives_windows(void **state) {
  (void)state;
  fake_clock clock = {-50};
  rl_window w = {2, 100, 0};
  rl_limiter *rl = limiter_with(RL_ALG_SLIDING_LOG, &clock, 1, &w);
  rl_decision d;
  assert_int_equal(allow_str(rl, "k", 2, &d), RL_OK);
  assert_true(d.allowed);
  clock.now = 99;
  assert_int_equal(allow_str(rl, "k", 1, &d), RL_OK);
  assert_false(d.allowed);
  assert_int_equal(d.retry_after_ms, 1);
  clock.now = 100;
  assert_int_equal(allow_str(rl, "k", 2, &d), RL_OK);
  assert_true(d.allowed);
  rl_free(rl);
}

static void test_stats(void **state) {
  (void)state;
  fake_clock clock = {0};
  rl_limiter *rl =
      limiter_with(RL_ALG_TOKEN_BUCKET, &clock, 1, &ten_per_second);
  rl_memory_stats st;
  assert_int_equal(rl_memory_stats_get(rl, &st), RL_OK);
  assert_int_equal(st.keys, 0);
  assert_int_equal(st.max_bytes, RL_MEMORY_MAX_BYTES_DEFAULT);
  uint64_t empty_bytes = st.bytes;
  rl_decision d;
  allow_str(rl, "a", 1, &d);
  allow_str(rl, "b", 1, &d);
  allow_str(rl, "a", 1, &d);
  assert_int_equal(rl_memory_stats_get(rl, &st), RL_OK);
  assert_int_equal(st.keys, 2);
  assert_true(st.bytes > empty_bytes);
  assert_int_equal(rl_memory_stats_get(NULL, &st), RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl_memory_stats_get(rl, NULL), RL_ERR_INVALID_ARGUMENT);
  rl_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_and_free_arguments),
      cmocka_unit_test(test_bad_input_spends_nothing),
      cmocka_unit_test(test_key_length_bounds),
      cmocka_unit_test(test_keys_are_opaque_bytes),
      cmocka_unit_test(test_policies_by_name_are_independent),
      cmocka_unit_test(test_clock_drives_windows),
      cmocka_unit_test(test_stats),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
