/*
 * test_breaker.c - the circuit breaker state machine on a hand-driven
 * clock, the pending-reconciliation table's bound, and the fallback
 * settings' checks.
 */
#include <stdlib.h>

#include "test_util.h"

#include "breaker.h"
#include "fallback.h"
#include "reconcile.h"

#define MS 1000000LL

static void fail_n(rl__breaker *b, int n, int64_t now) {
  for (int i = 0; i < n; i++) {
    rl__breaker_failure(b, now);
  }
}

static void test_opens_after_threshold(void **state) {
  (void)state;
  rl__breaker b;
  rl__breaker_init(&b, 3, 100);
  fail_n(&b, 2, 0);
  assert_true(rl__breaker_allow(&b, 0));
  rl__breaker_success(&b); /* resets the run of failures */
  fail_n(&b, 2, 0);
  assert_true(rl__breaker_allow(&b, 0));
  rl__breaker_failure(&b, 10 * MS);
  rl__breaker_stats st;
  rl__breaker_stats_get(&b, &st);
  assert_int_equal(st.state, RL__BREAKER_OPEN);
  assert_int_equal(st.opened, 1);
  assert_false(rl__breaker_allow(&b, 10 * MS));
  assert_false(rl__breaker_allow(&b, 109 * MS));
  rl__breaker_stats_get(&b, &st);
  assert_int_equal(st.rejected, 2);
  assert_string_equal(rl__breaker_state_name(st.state), "open");
}

static void test_probe_closes_or_reopens(void **state) {
  (void)state;
  rl__breaker b;
  rl__breaker_init(&b, 1, 100);
  rl__breaker_failure(&b, 0);
  /* one probe per interval */
  assert_true(rl__breaker_allow(&b, 100 * MS));
  assert_false(rl__breaker_allow(&b, 100 * MS));
  rl__breaker_stats st;
  rl__breaker_stats_get(&b, &st);
  assert_int_equal(st.state, RL__BREAKER_HALF_OPEN);
  assert_string_equal(rl__breaker_state_name(st.state), "half_open");
  rl__breaker_failure(&b, 150 * MS); /* the probe failed */
  rl__breaker_stats_get(&b, &st);
  assert_int_equal(st.state, RL__BREAKER_OPEN);
  assert_false(rl__breaker_allow(&b, 199 * MS));
  assert_true(rl__breaker_allow(&b, 200 * MS));
  rl__breaker_success(&b);
  rl__breaker_stats_get(&b, &st);
  assert_int_equal(st.state, RL__BREAKER_CLOSED);
  assert_int_equal(st.closed, 1);
  assert_int_equal(st.probes, 2);
  assert_true(rl__breaker_allow(&b, 200 * MS));
}

static void test_probe_soon_and_disabled(void **state) {
  (void)state;
  rl__breaker b;
  rl__breaker_init(&b, 2, 0); /* default interval */
  fail_n(&b, 2, 0);
  assert_false(rl__breaker_allow(&b, 1 * MS));
  rl__breaker_probe_soon(&b);
  assert_true(rl__breaker_allow(&b, 1 * MS));
  rl__breaker_success(&b);
  rl__breaker_probe_soon(&b); /* closed: no effect */
  assert_true(rl__breaker_allow(&b, 1 * MS));
  rl__breaker_init(&b, 0, 0);
  fail_n(&b, 1000, 0);
  assert_true(rl__breaker_allow(&b, 0));
  assert_string_equal(rl__breaker_state_name(7), "unknown");
}

static const rl__policy_shape *some_shape(void) {
  static rl__policy_shape s;
  s.algorithm = RL_ALG_FIXED_WINDOW;
  s.n_windows = 1;
  s.windows[0].limit = 10;
  s.windows[0].duration_ms = 1000;
  return &s;
}

static void test_pending_bounded(void **state) {
  (void)state;
  rl__pending *p = NULL;
  assert_int_equal(rl__pending_new(2, &p), RL_OK);
  assert_true(rl__pending_add(p, "a", 1, some_shape(), 3, 5));
  assert_true(rl__pending_add(p, "a", 1, some_shape(), 2, 4));
  assert_true(rl__pending_add(p, "b", 1, some_shape(), 1, 6));
  assert_false(rl__pending_add(p, "c", 1, some_shape(), 7, 6));
  rl__pending_stats st;
  rl__pending_stats_get(p, &st);
  assert_int_equal(st.keys, 2);
  assert_int_equal(st.units, 6);
  assert_int_equal(st.dropped_units, 7);
  rl__pending_entry *all = rl__pending_take(p);
  uint64_t units = 0;
  int n = 0;
  for (rl__pending_entry *e = all; e != NULL; e = e->next, n++) {
    units += e->units;
    if (e->key[0] == 'a') {
      assert_int_equal(e->last_ms, 5); /* the latest admission */
    }
  }
  assert_int_equal(n, 2);
  assert_int_equal(units, 6);
  rl__pending_stats_get(p, &st);
  assert_int_equal(st.keys, 0);
  /* put back: merged with a newer entry of the same key */
  assert_true(rl__pending_add(p, "a", 1, some_shape(), 1, 9));
  while (all != NULL) {
    rl__pending_entry *next = all->next;
    assert_true(rl__pending_put_back(p, all));
    all = next;
  }
  rl__pending_stats_get(p, &st);
  assert_int_equal(st.keys, 2);
  assert_int_equal(st.units, 7);
  rl__pending_free(p);
  rl__pending_free(NULL);
}

static void test_fallback_settings(void **state) {
  (void)state;
  rl_fallback_mode m;
  assert_string_equal(rl_fallback_mode_name(RL_FALLBACK_LOCAL), "local");
  assert_null(rl_fallback_mode_name((rl_fallback_mode)9));
  assert_int_equal(rl_fallback_mode_parse("closed", 6, &m), RL_OK);
  assert_int_equal(m, RL_FALLBACK_CLOSED);
  assert_int_equal(rl_fallback_mode_parse("clos", 4, &m),
                   RL_ERR_CONFIG_INVALID);
  assert_int_equal(rl_fallback_mode_parse(NULL, 0, &m),
                   RL_ERR_INVALID_ARGUMENT);
  rl_policy p;
  rl_policy_init(&p);
  rl_policy_add_window(&p, 10, 1000);
  rl_config c;
  memory_config(&c, &p, 1);
  assert_int_equal(c.fallback.circuit_breaker_threshold, 10);
  char err[128];
  c.fallback.mode = (rl_fallback_mode)5;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "fallback.mode"));
  c.fallback.mode = RL_FALLBACK_LOCAL;
  p.fallback = (rl_fallback_mode)-1;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "policy 0"));
  p.fallback = RL_FALLBACK_DEFAULT;
  c.fallback.local_instances = 2000000;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.fallback.local_instances = 3;
  c.fallback.reconcile_max_keys = (size_t)1 << 30;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.fallback.reconcile_max_keys = 0;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_OK);
  /* the resolved policy: mode inherited, local share limit / 3 */
  rl__policy out;
  assert_int_equal(rl__policy_compile(&p, 0, &out, NULL, 0), RL_OK);
  rl__fallback_resolve(&out, &p, &c);
  assert_int_equal(out.fallback, RL_FALLBACK_LOCAL);
  assert_int_equal(out.local_shape.windows[0].limit, 3);
  p.fallback = RL_FALLBACK_OPEN;
  rl__fallback_resolve(&out, &p, &c);
  assert_int_equal(out.fallback, RL_FALLBACK_OPEN);
  assert_int_equal(out.local_shape.windows[0].limit, 10);
  c.fallback.mode = RL_FALLBACK_DEFAULT;
  p.fallback = RL_FALLBACK_DEFAULT;
  rl__fallback_resolve(&out, &p, &c);
  assert_int_equal(out.fallback, RL_FALLBACK_NONE);
  /* memory store: no fallback, zero counters */
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  rl_fallback_stats fs;
  memset(&fs, 0xff, sizeof fs);
  assert_int_equal(rl_fallback_stats_get(rl, &fs), RL_OK);
  assert_int_equal(fs.fallback_local + fs.breaker_opened, 0);
  assert_int_equal(rl_fallback_stats_get(NULL, &fs), RL_ERR_INVALID_ARGUMENT);
  rl_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_opens_after_threshold),
      cmocka_unit_test(test_probe_closes_or_reopens),
      cmocka_unit_test(test_probe_soon_and_disabled),
      cmocka_unit_test(test_pending_bounded),
      cmocka_unit_test(test_fallback_settings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
