/*
 * test_redis_keys.c - the Redis key layout (rl:{hash}:policy:key) and the
 * Redis Cluster slot function: the spec's CRC16 vector and hash-tag rules,
 * raw bytes in keys (NUL, braces, colons), the longest key, policy names,
 * and injectivity of (policy, key) -> name over random pairs.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"

#include "redis_keys.h"

static size_t build(const char *policy, const void *key, size_t key_len,
                    char *buf) {
  size_t len = 0;
  assert_int_equal(rl__redis_key(policy, strlen(policy), key, key_len, buf,
                                 RL__REDIS_KEY_MAX, &len),
                   RL_OK);
  return len;
}

/* The 16 hex digits between the braces of a key we built. */
static void tag_of(const char *name, char *tag) {
  memcpy(tag, name + 4, 16);
  tag[16] = '\0';
}

static void test_layout(void **state) {
  (void)state;
  char buf[RL__REDIS_KEY_MAX];
  size_t len = build("api", "user:1", 6, buf);
  assert_int_equal(len, RL__REDIS_KEY_OVERHEAD + 3 + 6);
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx",
           (unsigned long long)rl__redis_key_hash("api", 3, "user:1", 6));
  char want[64];
  int n = snprintf(want, sizeof want, "rl:{%s}:api:user:1", hex);
  assert_int_equal((size_t)n, len);
  assert_memory_equal(buf, want, len);
  /* FNV-1a 64 of the one byte ':' (empty policy, empty key). */
  assert_true(rl__redis_key_hash("", 0, "", 0) ==
              (UINT64_C(0xcbf29ce484222325) ^ ':') * UINT64_C(0x100000001b3));
}

static void test_slot_vectors(void **state) {
  (void)state;
  assert_int_equal(rl__redis_slot("123456789", 9), 12739);
  assert_int_equal(rl__redis_slot("foo", 3), 12182);
  assert_int_equal(rl__redis_slot("bar", 3), 5061);
  assert_int_equal(rl__redis_slot("", 0), 0);
  assert_int_equal(rl__redis_slot("{user1000}.following", 20),
                   rl__redis_slot("{user1000}.followers", 20));
  assert_int_equal(rl__redis_slot("{user1000}.following", 20),
                   rl__redis_slot("user1000", 8));
  /* Empty tag: the whole key. First '{' and first '}' after it. */
  assert_int_not_equal(rl__redis_slot("foo{}{bar}", 10),
                       rl__redis_slot("bar", 3));
  assert_int_equal(rl__redis_slot("foo{{bar}}zap", 13),
                   rl__redis_slot("{bar", 4));
  assert_int_equal(rl__redis_slot("foo{bar}{zap}", 13),
                   rl__redis_slot("bar", 3));
  assert_int_not_equal(rl__redis_slot("foo{bar", 7), rl__redis_slot("bar", 3));
  assert_int_not_equal(rl__redis_slot("a{", 2), rl__redis_slot("", 0));
}

/* The user key cannot move the slot: it is always the slot of our tag. */
static void test_user_braces_do_not_choose_slot(void **state) {
  (void)state;
  const char *keys[] = {"{evil}", "}{", "{", "}", "x{}y", "{a}{b}", "{{}}"};
  char buf[RL__REDIS_KEY_MAX];
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    size_t len = build("p", keys[i], strlen(keys[i]), buf);
    char tag[17];
    tag_of(buf, tag);
    assert_int_equal(rl__redis_slot(buf, len), rl__redis_slot(tag, 16));
  }
}

static void test_raw_bytes(void **state) {
  (void)state;
  char buf[RL__REDIS_KEY_MAX];
  const char key[] = {'a', '\0', 'b', ':', '{', '}', '\0'};
  size_t len = build("pol", key, sizeof key, buf);
  assert_int_equal(len, RL__REDIS_KEY_OVERHEAD + 3 + sizeof key);
  assert_memory_equal(buf + len - sizeof key, key, sizeof key);
  /* A key that is only a NUL differs from one that is two. */
  char b2[RL__REDIS_KEY_MAX];
  size_t l1 = build("pol", "\0\0", 1, buf);
  size_t l2 = build("pol", "\0\0", 2, b2);
  assert_int_not_equal(l1, l2);
}

static void test_longest_key(void **state) {
  (void)state;
  char *key = malloc(RL_KEY_MAX + 1);
  char *buf = malloc(RL__REDIS_KEY_MAX);
  assert_non_null(key);
  assert_non_null(buf);
  memset(key, 'k', RL_KEY_MAX + 1);
  char policy[RL__REDIS_POLICY_PART_MAX + 2];
  memset(policy, 'p', sizeof policy);
  size_t len = 0;
  assert_int_equal(rl__redis_key(policy, RL__REDIS_POLICY_PART_MAX, key,
                                 RL_KEY_MAX, buf, RL__REDIS_KEY_MAX, &len),
                   RL_OK);
  assert_int_equal(len, RL__REDIS_KEY_MAX);
  assert_int_equal(rl__redis_key(policy, 1, key, RL_KEY_MAX + 1, buf,
                                 RL__REDIS_KEY_MAX, &len),
                   RL_ERR_KEY_TOO_LONG);
  assert_int_equal(rl__redis_key(policy, RL__REDIS_POLICY_PART_MAX + 1, key, 1,
                                 buf, RL__REDIS_KEY_MAX, &len),
                   RL_ERR_POLICY_NAME);
  /* One byte short of the buffer it needs. */
  assert_int_equal(
      rl__redis_key(policy, 1, key, 10, buf, RL__REDIS_KEY_OVERHEAD + 10, &len),
      RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      rl__redis_key(policy, 1, key, 10, buf, RL__REDIS_KEY_OVERHEAD + 11, &len),
      RL_OK);
  free(key);
  free(buf);
}

static void test_bad_arguments(void **state) {
  (void)state;
  char buf[RL__REDIS_KEY_MAX];
  size_t len = 0;
  size_t cap = sizeof buf;
  assert_int_equal(rl__redis_key("a:b", 3, "k", 1, buf, cap, &len),
                   RL_ERR_POLICY_NAME);
  assert_int_equal(rl__redis_key("", 0, "k", 1, buf, cap, &len),
                   RL_ERR_POLICY_NAME);
  assert_int_equal(rl__redis_key("a", 1, "k", 0, buf, cap, &len),
                   RL_ERR_KEY_EMPTY);
  assert_int_equal(rl__redis_key(NULL, 1, "k", 1, buf, cap, &len),
                   RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl__redis_key("a", 1, NULL, 1, buf, cap, &len),
                   RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl__redis_key("a", 1, "k", 1, NULL, cap, &len),
                   RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl__redis_key("a", 1, "k", 1, buf, cap, NULL),
                   RL_ERR_INVALID_ARGUMENT);
}

static void test_two_policies_same_key(void **state) {
  (void)state;
  char a[RL__REDIS_KEY_MAX];
  char b[RL__REDIS_KEY_MAX];
  size_t la = build("login", "alice", 5, a);
  size_t lb = build("api", "alice", 5, b);
  assert_false(la == lb && memcmp(a, b, la) == 0);
  /* "a" + "b:c" and "a:b" + "c" cannot collide: ':' is refused in names. */
  la = build("a", "b:c", 3, a);
  assert_memory_equal(a + 20, "}:a:b:c", 7);
}

/* Parses a name back: the policy ends at the first ':' after the tag. */
static void parse(const char *name, size_t len, const char **policy,
                  size_t *policy_len, const char **key, size_t *key_len) {
  const char *p = name + 22;
  const char *colon = memchr(p, ':', len - 22);
  assert_non_null(colon);
  *policy = p;
  *policy_len = (size_t)(colon - p);
  *key = colon + 1;
  *key_len = len - (size_t)(*key - name);
}

typedef struct pair {
  char policy[4];
  size_t policy_len;
  char key[6];
  size_t key_len;
  char name[RL__REDIS_KEY_OVERHEAD + 4 + 6];
  size_t name_len;
} pair;

static void random_pair(pair *p, unsigned *seed) {
  static const char alpha[] = {'a', 'b', ':', '{', '}', '\0'};
  static const char palpha[] = {'a', 'b', '{', '}', '\0'};
  p->policy_len = 1 + (size_t)rand_r(seed) % 3;
  for (size_t i = 0; i < p->policy_len; i++) {
    p->policy[i] = palpha[rand_r(seed) % (int)sizeof palpha];
  }
  p->key_len = 1 + (size_t)rand_r(seed) % 5;
  for (size_t i = 0; i < p->key_len; i++) {
    p->key[i] = alpha[rand_r(seed) % (int)sizeof alpha];
  }
  assert_int_equal(rl__redis_key(p->policy, p->policy_len, p->key, p->key_len,
                                 p->name, sizeof p->name, &p->name_len),
                   RL_OK);
}

static int same_pair(const pair *a, const pair *b) {
  return a->policy_len == b->policy_len && a->key_len == b->key_len &&
         memcmp(a->policy, b->policy, a->policy_len) == 0 &&
         memcmp(a->key, b->key, a->key_len) == 0;
}

static void test_injective_random_pairs(void **state) {
  (void)state;
  enum { N = 3000 };
  pair *pairs = calloc(N, sizeof *pairs);
  assert_non_null(pairs);
  unsigned seed = 12345;
  for (size_t i = 0; i < N; i++) {
    random_pair(&pairs[i], &seed);
    const char *pol, *key;
    size_t pl, kl;
    parse(pairs[i].name, pairs[i].name_len, &pol, &pl, &key, &kl);
    assert_int_equal(pl, pairs[i].policy_len);
    assert_int_equal(kl, pairs[i].key_len);
    assert_memory_equal(pol, pairs[i].policy, pl);
    assert_memory_equal(key, pairs[i].key, kl);
  }
  size_t equal_pairs = 0;
  for (size_t i = 0; i < N; i++) {
    for (size_t j = i + 1; j < N; j++) {
      int same_name =
          pairs[i].name_len == pairs[j].name_len &&
          memcmp(pairs[i].name, pairs[j].name, pairs[i].name_len) == 0;
      assert_int_equal(same_name, same_pair(&pairs[i], &pairs[j]));
      equal_pairs += (size_t)same_name;
    }
  }
  /* The alphabet is small enough that equal pairs do occur. */
  assert_true(equal_pairs > 0);
  free(pairs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_slot_vectors),
      cmocka_unit_test(test_user_braces_do_not_choose_slot),
      cmocka_unit_test(test_raw_bytes),
      cmocka_unit_test(test_longest_key),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_two_policies_same_key),
      cmocka_unit_test(test_injective_random_pairs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
