/*
 * test_config.c - every way to get a policy or configuration wrong yields
 * its documented code and a detail naming the culprit; valid ones pass.
 */
#include "test_util.h"

static int check(const rl_policy *p, size_t n, char *err, size_t len) {
  rl_config c;
  memory_config(&c, p, n);
  return rl_config_check(&c, err, len);
}

static void test_defaults(void **state) {
  (void)state;
  rl_config c;
  rl_config_init(&c);
  assert_int_equal(c.store, RL_STORE_MEMORY);
  assert_int_equal(c.max_key_len, RL_KEY_MAX_DEFAULT);
  assert_int_equal(c.memory.max_bytes, RL_MEMORY_MAX_BYTES_DEFAULT);
  rl_policy p;
  rl_policy_init(&p);
  assert_int_equal(p.algorithm, RL_ALG_SLIDING_LOG);
  assert_int_equal(p.n_windows, 0);
  rl_config_init(NULL); /* no-ops */
  rl_policy_init(NULL);
}

static void test_valid_policy(void **state) {
  (void)state;
  char err[128] = "x";
  rl_policy p = one_window(RL_ALG_SLIDING_LOG, 100, 60000);
  assert_int_equal(rl_policy_add_window(&p, 1000, 3600000), RL_OK);
  assert_int_equal(check(&p, 1, err, sizeof err), RL_OK);
  assert_string_equal(err, "");
}

static void test_window_errors(void **state) {
  (void)state;
  char err[160];
  rl_policy p = one_window(RL_ALG_FIXED_WINDOW, 0, 1000);
  p.name = "api";
  assert_int_equal(check(&p, 1, err, sizeof err), RL_ERR_WINDOW_LIMIT);
  assert_non_null(strstr(err, "'api'"));
  assert_non_null(strstr(err, "window 0"));
  p.windows[0].limit = RL_LIMIT_MAX + 1;
  assert_int_equal(check(&p, 1, err, sizeof err), RL_ERR_WINDOW_LIMIT);
  p.windows[0].limit = RL_LIMIT_MAX;
  assert_int_equal(check(&p, 1, err, sizeof err), RL_OK);
  p.windows[0].duration_ms = 0;
  assert_int_equal(check(&p, 1, err, sizeof err), RL_ERR_WINDOW_DURATION);
  p.windows[0].duration_ms = RL_DURATION_MAX_MS + 1;
  assert_int_equal(check(&p, 1, err, sizeof err), RL_ERR_WINDOW_DURATION);
  p.windows[0].duration_ms = 1000;
  rl_policy_add_window(&p, 5, 1000);
  assert_int_equal(check(&p, 1, err, sizeof err), RL_ERR_WINDOW_DUPLICATE);
  assert_non_null(strstr(err, "windows 0 and 1"));
}

static void test_algorithm_specific_limits(void **state) {
  (void)state;
  rl_policy p = one_window(RL_ALG_SLIDING_LOG, RL_LOG_LIMIT_MAX, 1000);
  assert_int_equal(check(&p, 1, NULL, 0), RL_OK);
  p.windows[0].limit = (uint64_t)RL_LOG_LIMIT_MAX + 1;
  assert_int_equal(check(&p, 1, NULL, 0), RL_ERR_WINDOW_LIMIT);
  p.windows[0].limit = 10;
  p.windows[0].duration_ms = (uint64_t)RL_LOG_DURATION_MAX_MS + 1;
  assert_int_equal(check(&p, 1, NULL, 0), RL_ERR_WINDOW_DURATION);
  p.windows[0].duration_ms = 1000;
  p.windows[0].burst = 5; /* burst is a token bucket setting */
  assert_int_equal(check(&p, 1, NULL, 0), RL_ERR_WINDOW_BURST);
  p.algorithm = RL_ALG_TOKEN_BUCKET;
  assert_int_equal(check(&p, 1, NULL, 0), RL_OK);
  p.windows[0].burst = RL_LIMIT_MAX + 1;
  assert_int_equal(check(&p, 1, NULL, 0), RL_ERR_WINDOW_BURST);
}

static void test_shape_errors(void **state) {
  (void)state;
  rl_policy p;
  rl_policy_init(&p);
  assert_int_equal(check(&p, 1, NULL, 0), RL_ERR_NO_WINDOWS);
  for (int i = 0; i < RL_MAX_WINDOWS; i++) {
    assert_int_equal(rl_policy_add_window(&p, 10, 1000 + (uint64_t)i), RL_OK);
  }
  assert_int_equal(rl_policy_add_window(&p, 10, 99999),
                   RL_ERR_TOO_MANY_WINDOWS);
  assert_int_equal(check(&p, 1, NULL, 0), RL_OK);
  p.n_windows = RL_MAX_WINDOWS + 1;
  assert_int_equal(check(&p, 1, NULL, 0), RL_ERR_TOO_MANY_WINDOWS);
  p.n_windows = 1;
  p.algorithm = (rl_algorithm)17;
  assert_int_equal(check(&p, 1, NULL, 0), RL_ERR_ALGORITHM_UNKNOWN);
  p.algorithm = RL_ALG_SLIDING_LOG;
  p.log_slots = 1;
  assert_int_equal(check(&p, 1, NULL, 0), RL_ERR_LOG_SLOTS);
  p.log_slots = RL_LOG_SLOTS_MAX + 1;
  assert_int_equal(check(&p, 1, NULL, 0), RL_ERR_LOG_SLOTS);
  p.log_slots = RL_LOG_SLOTS_MAX;
  assert_int_equal(check(&p, 1, NULL, 0), RL_OK);
  assert_int_equal(rl_policy_add_window(NULL, 1, 1), RL_ERR_INVALID_ARGUMENT);
}

static void test_policy_names(void **state) {
  (void)state;
  char err[160];
  rl_policy p[2] = {one_window(RL_ALG_FIXED_WINDOW, 1, 1000),
                    one_window(RL_ALG_FIXED_WINDOW, 1, 1000)};
  assert_int_equal(check(p, 2, err, sizeof err), RL_ERR_POLICY_NAME);
  assert_non_null(strstr(err, "'default'")); /* two unnamed policies */
  p[0].name = "a";
  assert_int_equal(check(p, 2, err, sizeof err), RL_OK);
  p[1].name = "a";
  assert_int_equal(check(p, 2, err, sizeof err), RL_ERR_POLICY_NAME);
  p[1].name = "";
  assert_int_equal(check(p, 2, err, sizeof err), RL_ERR_POLICY_NAME);
  static const char *const bad[] = {"a:b", "a b", "a{b}", "a/b", "ü"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    p[1].name = bad[i];
    assert_int_equal(check(p, 2, err, sizeof err), RL_ERR_POLICY_NAME);
    assert_non_null(strstr(err, "letters"));
  }
  p[1].name = "Api_v2.read-only";
  assert_int_equal(check(p, 2, err, sizeof err), RL_OK);
  char long_name[RL_POLICY_NAME_MAX + 2];
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  p[1].name = long_name;
  assert_int_equal(check(p, 2, err, sizeof err), RL_ERR_POLICY_NAME);
  long_name[RL_POLICY_NAME_MAX] = '\0'; /* exactly the maximum */
  assert_int_equal(check(p, 2, err, sizeof err), RL_OK);
}

static void test_config_errors(void **state) {
  (void)state;
  char err[160];
  rl_policy p = one_window(RL_ALG_FIXED_WINDOW, 1, 1000);
  rl_config c;
  rl_config_init(&c);
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_NO_POLICY);
  assert_int_equal(rl_config_check(NULL, err, sizeof err),
                   RL_ERR_INVALID_ARGUMENT);
  c.policies = &p;
  c.n_policies = RL_MAX_POLICIES + 1;
  assert_int_equal(rl_config_check(&c, err, sizeof err),
                   RL_ERR_TOO_MANY_POLICIES);
  c.n_policies = 1;
  c.max_key_len = 0;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.max_key_len = RL_KEY_MAX + 1;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.max_key_len = RL_KEY_MAX;
  c.memory.max_bytes = 1000;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "max_bytes"));
  c.memory.max_bytes = RL_MEMORY_MAX_BYTES_DEFAULT;
  c.memory.stripes = 3;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.memory.stripes = 8;
  c.store = (rl_store_type)9;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.store = RL_STORE_MEMORY;
  assert_int_equal(rl_config_check(&c, NULL, 0), RL_OK);
}

static void test_budget_must_hold_the_largest_key(void **state) {
  (void)state;
  char err[160];
  rl_policy p = one_window(RL_ALG_SLIDING_LOG, 100000, 1000);
  p.log_slots = RL_LOG_SLOTS_MAX;
  for (int i = 1; i < RL_MAX_WINDOWS; i++) {
    rl_policy_add_window(&p, 100000, 1000 + (uint64_t)i);
  }
  rl_config c;
  memory_config(&c, &p, 1);
  c.max_key_len = RL_KEY_MAX;
  c.memory.max_bytes = RL_MEMORY_MAX_BYTES_MIN;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "max_bytes"));
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_ERR_CONFIG_INVALID);
  assert_null(rl);
  c.memory.max_bytes = (size_t)64 << 20;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  rl_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_valid_policy),
      cmocka_unit_test(test_window_errors),
      cmocka_unit_test(test_algorithm_specific_limits),
      cmocka_unit_test(test_shape_errors),
      cmocka_unit_test(test_policy_names),
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_budget_must_hold_the_largest_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
