/*
 * test_errors.c - the error list, source and algorithm names.
 */
#include "test_util.h"

static void test_every_code_has_a_distinct_name_and_message(void **state) {
  (void)state;
  static const int codes[] = {
#define CODE(name, label, num, msg) RL_ERR_##name,
      RL_ERRNO_MAP(CODE)
#undef CODE
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(codes[i], (int)i); /* numbered densely, never reused */
    assert_string_not_equal(rl_err_name(codes[i]), "unknown");
    assert_string_not_equal(rl_strerror(codes[i]), "unknown error");
    for (size_t j = 0; j < i; j++) {
      assert_string_not_equal(rl_err_name(codes[i]), rl_err_name(codes[j]));
    }
  }
  assert_string_equal(rl_err_name(RL_OK), "ok");
  assert_string_equal(rl_err_name(RL_ERR_KEY_EMPTY), "key_empty");
  assert_string_equal(rl_err_name(RL_ERR_BACKEND_UNAVAILABLE),
                      "backend_unavailable");
}

static void test_unknown_codes(void **state) {
  (void)state;
  assert_string_equal(rl_err_name(-1), "unknown");
  assert_string_equal(rl_err_name(100000), "unknown");
  assert_string_equal(rl_strerror(-5), "unknown error");
  assert_string_equal(rl_source_name((rl_source)999), "unknown");
}

static void test_source_names(void **state) {
  (void)state;
  assert_string_equal(rl_source_name(RL_SOURCE_MEMORY), "memory");
  assert_string_equal(rl_source_name(RL_SOURCE_REDIS), "redis");
  assert_string_equal(rl_source_name(RL_SOURCE_FALLBACK_LOCAL),
                      "fallback_local");
}

static void test_algorithm_names_round_trip(void **state) {
  (void)state;
  for (int a = RL_ALG_SLIDING_LOG; a <= RL_ALG_FIXED_WINDOW; a++) {
    const char *name = rl_algorithm_name((rl_algorithm)a);
    assert_non_null(name);
    rl_algorithm parsed;
    assert_int_equal(rl_algorithm_parse(name, strlen(name), &parsed), RL_OK);
    assert_int_equal(parsed, a);
  }
  rl_algorithm out = RL_ALG_FIXED_WINDOW;
  assert_null(rl_algorithm_name((rl_algorithm)42));
  assert_int_equal(rl_algorithm_parse("gcra", 4, &out),
                   RL_ERR_ALGORITHM_UNKNOWN);
  assert_int_equal(rl_algorithm_parse("token_bucketX", 12, &out), RL_OK);
  assert_int_equal(out, RL_ALG_TOKEN_BUCKET); /* length-delimited */
  assert_int_equal(rl_algorithm_parse(NULL, 0, &out), RL_ERR_INVALID_ARGUMENT);
  assert_non_null(rl_version());
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_code_has_a_distinct_name_and_message),
      cmocka_unit_test(test_unknown_codes),
      cmocka_unit_test(test_source_names),
      cmocka_unit_test(test_algorithm_names_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
