/*
 * test_hash.c - SipHash against the reference vectors (SipHash-2-4, key
 * 00..0f, message 00..len-1), and the keyed family's independence.
 */
#include "test_util.h"

#include "hash.h"

static void test_reference_vectors(void **state) {
  (void)state;
  rl__hash_key key = {UINT64_C(0x0706050403020100),
                      UINT64_C(0x0f0e0d0c0b0a0908)};
  unsigned char msg[16];
  for (int i = 0; i < 16; i++) {
    msg[i] = (unsigned char)i;
  }
  assert_true(rl__siphash(&key, 2, 4, msg, 0) == UINT64_C(0x726fdb47dd0e0e31));
  assert_true(rl__siphash(&key, 2, 4, msg, 1) == UINT64_C(0x74f839c593dc67fd));
  assert_true(rl__siphash(&key, 2, 4, msg, 2) == UINT64_C(0x0d6c8009d9a94f5a));
  assert_true(rl__siphash(&key, 2, 4, msg, 3) == UINT64_C(0x85676696d7fb7e2d));
  assert_true(rl__siphash(&key, 2, 4, msg, 8) == UINT64_C(0x93f5f5799a932462));
}

static void test_tag_and_key_change_the_hash(void **state) {
  (void)state;
  rl__hash_key a, b;
  rl__hash_key_random(&a);
  rl__hash_key_random(&b);
  assert_false(a.k0 == b.k0 && a.k1 == b.k1);
  const char *k = "user:1";
  assert_true(rl__hash(&a, 0, k, 6) == rl__hash(&a, 0, k, 6));
  assert_true(rl__hash(&a, 0, k, 6) != rl__hash(&a, 1, k, 6));
  assert_true(rl__hash(&a, 0, k, 6) != rl__hash(&b, 0, k, 6));
  assert_true(rl__hash(&a, 0, k, 6) != rl__hash(&a, 0, k, 5));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reference_vectors),
      cmocka_unit_test(test_tag_and_key_change_the_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
