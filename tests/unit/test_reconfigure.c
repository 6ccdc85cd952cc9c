/*
 * test_reconfigure.c - rl_reconfigure(): which keys keep their state, what
 * is refused, and decisions racing 200 reconfigurations (run under TSan by
 * the test script) never fail and never see a half-built policy set.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "test_util.h"

typedef struct setup {
  fake_clock clock;
  rl_policy policies[3];
  rl_config config;
  rl_limiter *rl;
} setup;

static void configure(setup *s, size_t n) {
  fake_clock_config(&s->config, s->policies, n, &s->clock);
}

static rl_policy policy(const char *name, rl_algorithm alg, uint64_t limit,
                        uint64_t ms) {
  rl_policy p;
  rl_policy_init(&p);
  p.name = name;
  p.algorithm = alg;
  rl_policy_add_window(&p, limit, ms);
  return p;
}

static uint64_t spend(rl_limiter *rl, const char *pol, const char *key,
                      int64_t cost, int *allowed) {
  rl_request req = {pol, strlen(pol), key, strlen(key), cost};
  rl_decision d;
  assert_int_equal(rl_decide(rl, &req, &d), RL_OK);
  *allowed = d.allowed;
  return d.remaining;
}

static void test_compatible_policy_keeps_state(void **state) {
  (void)state;
  setup s = {.clock = {1000}};
  s.policies[0] = policy("api", RL_ALG_FIXED_WINDOW, 10, 60000);
  configure(&s, 1);
  assert_int_equal(rl_new(&s.config, &s.rl), RL_OK);
  int ok = 0;
  assert_int_equal(spend(s.rl, "api", "u", 8, &ok), 2);
  s.policies[0].windows[0].limit = 20; /* raised: same layout */
  assert_int_equal(rl_reconfigure(s.rl, &s.config, NULL, 0), RL_OK);
  assert_int_equal(spend(s.rl, "api", "u", 1, &ok), 11);
  s.policies[0].windows[0].limit = 5; /* lowered below what is spent */
  assert_int_equal(rl_reconfigure(s.rl, &s.config, NULL, 0), RL_OK);
  assert_int_equal(spend(s.rl, "api", "u", 1, &ok), 0);
  assert_false(ok);
  rl_free(s.rl);
}

static void test_changed_layout_starts_fresh(void **state) {
  (void)state;
  setup s = {.clock = {1000}};
  s.policies[0] = policy("api", RL_ALG_SLIDING_LOG, 3, 60000);
  s.policies[1] = policy("gone", RL_ALG_TOKEN_BUCKET, 3, 60000);
  configure(&s, 2);
  assert_int_equal(rl_new(&s.config, &s.rl), RL_OK);
  int ok = 0;
  spend(s.rl, "api", "u", 3, &ok);
  spend(s.rl, "gone", "u", 3, &ok);
  rl_memory_stats st;
  rl_memory_stats_get(s.rl, &st);
  assert_int_equal(st.keys, 2);
  s.policies[0].windows[0].duration_ms = 30000; /* new layout */
  s.policies[1] = policy("new", RL_ALG_TOKEN_BUCKET, 3, 60000);
  assert_int_equal(rl_reconfigure(s.rl, &s.config, NULL, 0), RL_OK);
  rl_memory_stats_get(s.rl, &st);
  assert_int_equal(st.keys, 0); /* both old ids purged */
  assert_int_equal(spend(s.rl, "api", "u", 1, &ok), 2);
  assert_true(ok);
  assert_int_equal(spend(s.rl, "new", "u", 3, &ok), 0);
  assert_true(ok);
  size_t index;
  assert_int_equal(rl_policy_find(s.rl, "gone", 4, &index),
                   RL_ERR_POLICY_UNKNOWN);
  rl_free(s.rl);
}

static void test_token_bucket_limit_change_is_a_new_layout(void **state) {
  (void)state;
  setup s = {.clock = {0}};
  s.policies[0] = policy("tb", RL_ALG_TOKEN_BUCKET, 4, 1000);
  configure(&s, 1);
  assert_int_equal(rl_new(&s.config, &s.rl), RL_OK);
  int ok = 0;
  spend(s.rl, "tb", "u", 4, &ok);
  s.policies[0].windows[0].burst = 2; /* burst alone: state kept */
  assert_int_equal(rl_reconfigure(s.rl, &s.config, NULL, 0), RL_OK);
  spend(s.rl, "tb", "u", 1, &ok);
  assert_false(ok);
  s.policies[0].windows[0].limit = 8; /* rate: fresh state */
  assert_int_equal(rl_reconfigure(s.rl, &s.config, NULL, 0), RL_OK);
  spend(s.rl, "tb", "u", 2, &ok);
  assert_true(ok);
  rl_free(s.rl);
}

static void test_refusals_change_nothing(void **state) {
  (void)state;
  setup s = {.clock = {0}};
  s.policies[0] = policy("api", RL_ALG_FIXED_WINDOW, 2, 1000);
  configure(&s, 1);
  assert_int_equal(rl_new(&s.config, &s.rl), RL_OK);
  int ok = 0;
  spend(s.rl, "api", "u", 1, &ok);
  char err[160];
  rl_config bad = s.config;
  bad.memory.max_bytes *= 2;
  assert_int_equal(rl_reconfigure(s.rl, &bad, err, sizeof err),
                   RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "cannot change"));
  bad = s.config;
  bad.n_policies = 0;
  assert_int_equal(rl_reconfigure(s.rl, &bad, err, sizeof err),
                   RL_ERR_NO_POLICY);
  assert_int_equal(rl_reconfigure(NULL, &s.config, err, sizeof err),
                   RL_ERR_INVALID_ARGUMENT);
  s.policies[0].windows[0].limit = 0;
  assert_int_equal(rl_reconfigure(s.rl, &s.config, err, sizeof err),
                   RL_ERR_WINDOW_LIMIT);
  assert_int_equal(spend(s.rl, "api", "u", 1, &ok), 0); /* state intact */
  assert_true(ok);
  rl_free(s.rl);
}

static void test_max_key_len_changes_live(void **state) {
  (void)state;
  setup s = {.clock = {0}};
  s.policies[0] = policy("api", RL_ALG_FIXED_WINDOW, 2, 1000);
  configure(&s, 1);
  assert_int_equal(rl_new(&s.config, &s.rl), RL_OK);
  rl_decision d;
  assert_int_equal(rl_allow(s.rl, "abcdef", 6, &d), RL_OK);
  s.config.max_key_len = 4;
  assert_int_equal(rl_reconfigure(s.rl, &s.config, NULL, 0), RL_OK);
  assert_int_equal(rl_allow(s.rl, "abcdef", 6, &d), RL_ERR_KEY_TOO_LONG);
  rl_free(s.rl);
}

/* Deciders race a reconfigurer that alternates two policy sets: every
 * decision succeeds and names a policy of one of the sets. */
typedef struct race {
  rl_limiter *rl;
  atomic_int stop;
  atomic_long decisions;
  atomic_long failures;
} race;

static void *decider(void *arg) {
  race *r = arg;
  rl_request req = {"shared", 6, "k", 1, 1};
  while (!atomic_load(&r->stop)) {
    rl_decision d;
    if (rl_decide(r->rl, &req, &d) != RL_OK || d.limit == 0) {
      atomic_fetch_add(&r->failures, 1);
    }
    atomic_fetch_add(&r->decisions, 1);
  }
  return NULL;
}

static void test_decisions_race_reconfigurations(void **state) {
  (void)state;
  setup s = {.clock = {0}};
  s.policies[0] = policy("shared", RL_ALG_SLIDING_LOG, 1000000, 1000);
  s.policies[1] = policy("other", RL_ALG_FIXED_WINDOW, 5, 1000);
  configure(&s, 2);
  assert_int_equal(rl_new(&s.config, &s.rl), RL_OK);
  race r = {.rl = s.rl};
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_create(&threads[i], NULL, decider, &r), 0);
  }
  while (atomic_load(&r.decisions) < 1000) { /* deciders are running */
    sched_yield();
  }
  /* valgrind serialises threads: scripts/valgrind.sh asks for fewer */
  const char *env = getenv("RL_TEST_RECONFIGS");
  int rounds = env != NULL ? atoi(env) : 200;
  for (int i = 0; i < rounds; i++) {
    s.policies[1].windows[0].duration_ms = (i % 2) ? 2000 : 1000;
    s.config.n_policies = (size_t)1 + (i % 2);
    assert_int_equal(rl_reconfigure(s.rl, &s.config, NULL, 0), RL_OK);
  }
  atomic_store(&r.stop, 1);
  for (int i = 0; i < 4; i++) {
    pthread_join(threads[i], NULL);
  }
  assert_int_equal(atomic_load(&r.failures), 0);
  assert_true(atomic_load(&r.decisions) > 0);
  rl_free(s.rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compatible_policy_keeps_state),
      cmocka_unit_test(test_changed_layout_starts_fresh),
      cmocka_unit_test(test_token_bucket_limit_change_is_a_new_layout),
      cmocka_unit_test(test_refusals_change_nothing),
      cmocka_unit_test(test_max_key_len_changes_live),
      cmocka_unit_test(test_decisions_race_reconfigurations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
