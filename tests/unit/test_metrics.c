/*
 * test_metrics.c - the library's Prometheus text: decisions counted by
 * policy, binding window and result (exactly, also from many threads and
 * past the owned stripes), errors by code, series that survive a reload,
 * the layers' hooks, rl_metrics_render's snprintf contract, and that a
 * client key never shows up.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"
#include "test_util.h"

#define TEXT_MAX (256 * 1024)

static char *scrape(rl_limiter *rl) {
  char *buf = malloc(TEXT_MAX);
  assert_non_null(buf);
  size_t needed = 0;
  assert_int_equal(rl_metrics_render(rl, buf, TEXT_MAX, &needed), RL_OK);
  assert_true(needed < TEXT_MAX);
  assert_int_equal(strlen(buf), needed);
  return buf;
}

/* The unnamed default policy of both configurations: 2 per minute and 3
 * per hour. */
static void default_policy(rl_policy *p) {
  rl_policy_init(p);
  rl_policy_add_window(p, 2, 60000);
  rl_policy_add_window(p, 3, 3600000);
}

static rl_limiter *two_policies(fake_clock *clock, int disabled) {
  rl_policy p[2];
  default_policy(&p[0]);
  rl_policy_init(&p[1]);
  p[1].name = "api";
  p[1].algorithm = RL_ALG_FIXED_WINDOW;
  rl_policy_add_window(&p[1], 1, 1500);
  rl_config c;
  fake_clock_config(&c, p, 2, clock);
  c.metrics.disabled = disabled;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  return rl;
}

static void decide_n(rl_limiter *rl, const char *policy, const char *key,
                     int n) {
  rl_request req = {policy, policy ? strlen(policy) : 0, key, strlen(key), 1};
  rl_decision d;
  for (int i = 0; i < n; i++) {
    assert_int_equal(rl_decide(rl, &req, &d), RL_OK);
  }
}

#define REQ(policy, window, result)                                            \
  "ratelimiter_requests_total{policy=\"" policy "\",window=\"" window          \
  "\",result=\"" result "\"}"

static void test_decisions_by_policy_window_result(void **state) {
  (void)state;
  fake_clock clock = {1000};
  rl_limiter *rl = two_policies(&clock, 0);
  decide_n(rl, NULL, "secret-key-1", 2); /* 1m binds: 0 left of 2 */
  decide_n(rl, NULL, "secret-key-1", 1); /* denied by 1m */
  clock.now += 61000;
  decide_n(rl, NULL, "secret-key-1", 1); /* 1h binds: 0 left of 3 */
  decide_n(rl, NULL, "secret-key-1", 1); /* denied by 1h */
  decide_n(rl, "api", "secret-key-2", 3);
  rl_decision d;
  assert_int_equal(rl_allow(rl, "", 0, &d), RL_ERR_KEY_EMPTY);
  rl_request unknown = {"nope", 4, "k", 1, 1};
  assert_int_equal(rl_decide(rl, &unknown, &d), RL_ERR_POLICY_UNKNOWN);
  char *t = scrape(rl);
  assert_int_equal(metric_sample(t, REQ("default", "1m", "allowed")), 2);
  assert_int_equal(metric_sample(t, REQ("default", "1m", "denied")), 1);
  assert_int_equal(metric_sample(t, REQ("default", "1h", "allowed")), 1);
  assert_int_equal(metric_sample(t, REQ("default", "1h", "denied")), 1);
  assert_int_equal(metric_sample(t, REQ("api", "1500ms", "allowed")), 1);
  assert_int_equal(metric_sample(t, REQ("api", "1500ms", "denied")), 2);
  assert_int_equal(
      metric_sample(t, "ratelimiter_decision_sources_total{source=\"memory\"}"),
      8);
  assert_int_equal(
      metric_sample(t, "ratelimiter_errors_total{code=\"key_empty\"}"), 1);
  assert_int_equal(
      metric_sample(t, "ratelimiter_errors_total{code=\"policy_unknown\"}"), 1);
  assert_non_null(strstr(t, "ratelimiter_build_info{version=\""));
  assert_non_null(strstr(t, "store=\"memory\"} 1\n"));
  assert_null(strstr(t, "secret"));
  assert_null(strstr(t, "nope"));
  free(t);
  rl_free(rl);
}

static void async_cb(int err, const rl_decision *d, void *ud) {
  assert_int_equal(err, RL_OK);
  *(int *)ud += d->allowed;
}

static void test_async_and_disabled(void **state) {
  (void)state;
  fake_clock clock = {1000};
  rl_limiter *on = two_policies(&clock, 0);
  rl_limiter *off = two_policies(&clock, 1);
  int allowed = 0;
  rl_request req = {"api", 3, "k", 1, 1};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(rl_decide_async(on, &req, async_cb, &allowed), RL_OK);
    assert_int_equal(rl_decide_async(off, &req, async_cb, &allowed), RL_OK);
  }
  rl_request bad = {"api", 3, "k", 1, 0};
  assert_int_equal(rl_decide_async(on, &bad, async_cb, &allowed),
                   RL_ERR_COST_INVALID);
  assert_int_equal(allowed, 2);
  char *t = scrape(on);
  assert_int_equal(metric_sample(t, REQ("api", "1500ms", "allowed")), 1);
  assert_int_equal(metric_sample(t, REQ("api", "1500ms", "denied")), 1);
  assert_int_equal(
      metric_sample(t, "ratelimiter_errors_total{code=\"cost_invalid\"}"), 1);
  free(t);
  decide_n(off, NULL, "k", 5);
  t = scrape(off);
  assert_int_equal(metric_sample(t, REQ("api", "1500ms", "allowed")), 0);
  assert_int_equal(metric_sample(t, REQ("default", "1m", "allowed")), 0);
  free(t);
  /* Turned on live, then off again: only the decisions in between. */
  rl__metrics_enable(rl__limiter_metrics(off), 1);
  decide_n(off, NULL, "k2", 1);
  rl__metrics_enable(rl__limiter_metrics(off), 0);
  rl__metrics_enable(NULL, 1);
  decide_n(off, NULL, "k2", 1);
  t = scrape(off);
  assert_int_equal(metric_sample(t, REQ("default", "1m", "allowed")), 1);
  free(t);
  rl_free(on);
  rl_free(off);
}

/* A reload that keeps a policy's name and windows keeps its series; one
 * that changes the windows starts new series and keeps the old ones. */
static void test_series_survive_reload(void **state) {
  (void)state;
  fake_clock clock = {1000};
  rl_limiter *rl = two_policies(&clock, 0);
  decide_n(rl, "api", "k", 1);
  rl_policy p[2];
  default_policy(&p[0]);
  rl_policy_init(&p[1]);
  p[1].name = "api";
  rl_policy_add_window(&p[1], 5, 2000);
  rl_config c;
  fake_clock_config(&c, p, 2, &clock);
  decide_n(rl, NULL, "k", 1);
  assert_int_equal(rl_reconfigure(rl, &c, NULL, 0), RL_OK);
  decide_n(rl, NULL, "k", 1);
  decide_n(rl, "api", "k", 2);
  char *t = scrape(rl);
  assert_int_equal(metric_sample(t, REQ("default", "1m", "allowed")), 2);
  assert_int_equal(metric_sample(t, REQ("api", "1500ms", "allowed")), 1);
  assert_int_equal(metric_sample(t, REQ("api", "2s", "allowed")), 2);
  free(t);
  rl_free(rl);
}

typedef struct worker_arg {
  rl_limiter *rl;
  int n;
} worker_arg;

static void *worker(void *p) {
  worker_arg *a = p;
  char key[32];
  snprintf(key, sizeof key, "k%p", (void *)&key);
  decide_n(a->rl, NULL, key, a->n);
  return NULL;
}

/* More threads than owned stripes: the shared stripe counts exactly too. */
static void test_many_threads_count_exactly(void **state) {
  (void)state;
  rl_policy p = one_window(RL_ALG_SLIDING_LOG, 1000000, 60000);
  rl_config c;
  memory_config(&c, &p, 1);
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  enum { THREADS = RL__METRIC_STRIPES + 4, EACH = 2000 };
  pthread_t th[THREADS];
  worker_arg a = {rl, EACH};
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < THREADS; i++) {
      assert_int_equal(pthread_create(&th[i], NULL, worker, &a), 0);
    }
    for (int i = 0; i < THREADS; i++) {
      pthread_join(th[i], NULL);
    }
  }
  char *t = scrape(rl);
  assert_int_equal(metric_sample(t, REQ("default", "1m", "allowed")),
                   2 * THREADS * EACH);
  free(t);
  rl_free(rl);
}

static void test_layer_hooks(void **state) {
  (void)state;
  fake_clock clock = {1000};
  rl_limiter *rl = two_policies(&clock, 0);
  rl__metrics *m = rl__limiter_metrics(rl);
  rl__metrics_cache_hit(m);
  rl__metrics_cache_hit(m);
  rl__metrics_cache_miss(m);
  rl__metrics_lease_granted(m, 10);
  rl__metrics_lease_returned(m, 4);
  rl__metrics_hot_key_detected(m);
  rl__metrics_hot_keys_set(m, 7);
  rl__metrics_fallback(m, RL__FALLBACK_LOCAL);
  rl__metrics_fallback(m, RL__FALLBACK_MODES); /* ignored */
  rl__metrics_redis_latency(m, RL__REDIS_OP_LEASE, 300000);
  rl__metrics_redis_latency(m, RL__REDIS_OP_LEASE, 5000000000);
  int n1 = rl__metrics_node(m, "10.0.0.1:6379");
  int n2 = rl__metrics_node(m, "[::1]:7000\"");
  assert_int_equal(rl__metrics_node(m, "10.0.0.1:6379"), n1);
  rl__metrics_breaker_state(m, n2, RL__BREAKER_OPEN);
  rl__metrics_breaker_state(m, 99, RL__BREAKER_OPEN); /* ignored */
  rl__metrics_cache_hit(NULL);                        /* no-ops */
  rl__metrics_breaker_state(NULL, 0, RL__BREAKER_OPEN);
  assert_int_equal(rl__metrics_node(NULL, "x"), -1);
  char *t = scrape(rl);
  assert_int_equal(metric_sample(t, "ratelimiter_cache_hits_total"), 2);
  assert_int_equal(metric_sample(t, "ratelimiter_cache_misses_total"), 1);
  assert_int_equal(metric_sample(t, "ratelimiter_leases_granted_total"), 1);
  assert_int_equal(metric_sample(t, "ratelimiter_leases_returned_total"), 1);
  assert_int_equal(
      metric_sample(t, "ratelimiter_lease_units_total{event=\"granted\"}"), 10);
  assert_int_equal(metric_sample(t, "ratelimiter_hot_keys"), 7);
  assert_int_equal(metric_sample(t, "ratelimiter_hot_keys_detected_total"), 1);
  assert_int_equal(
      metric_sample(t, "ratelimiter_fallback_events_total{mode=\"local\"}"), 1);
  assert_int_equal(
      metric_sample(t, "ratelimiter_fallback_events_total{mode=\"open\"}"), 0);
  assert_int_equal(
      metric_sample(t, "ratelimiter_breaker_state{node=\"10.0.0.1:6379\"}"), 0);
  assert_int_equal(
      metric_sample(t, "ratelimiter_breaker_state{node=\"[::1]:7000_\"}"), 2);
  assert_int_equal(metric_sample(t, "ratelimiter_redis_latency_seconds_bucket{"
                                    "operation=\"lease\",le=\"0.0005\"}"),
                   1);
  assert_int_equal(metric_sample(t, "ratelimiter_redis_latency_seconds_bucket{"
                                    "operation=\"lease\",le=\"+Inf\"}"),
                   2);
  assert_int_equal(metric_sample(t, "ratelimiter_redis_latency_seconds_count{"
                                    "operation=\"allow\"}"),
                   0);
  free(t);
  rl_free(rl);
}

static int refuse(void *ctx, const char *data, size_t len) {
  (void)data;
  (void)len;
  return --*(int *)ctx <= 0;
}

static void test_render_contract(void **state) {
  (void)state;
  fake_clock clock = {1000};
  rl_limiter *rl = two_policies(&clock, 0);
  size_t needed = 0;
  assert_int_equal(rl_metrics_render(rl, NULL, 0, &needed), RL_OK);
  assert_true(needed > 1000);
  char small[16];
  size_t again = 0;
  assert_int_equal(rl_metrics_render(rl, small, sizeof small, &again), RL_OK);
  assert_int_equal(again, needed);
  assert_int_equal(strlen(small), sizeof small - 1);
  assert_memory_equal(small, "# HELP ratelimi", 15);
  assert_int_equal(rl_metrics_render(NULL, small, sizeof small, NULL),
                   RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl_metrics_render(rl, NULL, 5, NULL),
                   RL_ERR_INVALID_ARGUMENT);
  int budget = 3;
  assert_int_equal(rl_metrics_write(rl, refuse, &budget), RL_ERR_NO_MEMORY);
  assert_int_equal(rl_metrics_write(rl, NULL, NULL), RL_ERR_INVALID_ARGUMENT);
  rl_free(rl);
}

static void test_duration_labels(void **state) {
  (void)state;
  static const struct {
    uint64_t ms;
    const char *label;
  } cases[] = {{1, "1ms"},       {999, "999ms"},   {1000, "1s"},
               {1500, "1500ms"}, {60000, "1m"},    {90000, "90s"},
               {3600000, "1h"},  {86400000, "1d"}, {5400000, "90m"},
               {172800000, "2d"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[24];
    size_t n = rl__metrics_duration_label(cases[i].ms, out);
    assert_string_equal(out, cases[i].label);
    assert_int_equal(n, strlen(cases[i].label));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decisions_by_policy_window_result),
      cmocka_unit_test(test_async_and_disabled),
      cmocka_unit_test(test_series_survive_reload),
      cmocka_unit_test(test_many_threads_count_exactly),
      cmocka_unit_test(test_layer_hooks),
      cmocka_unit_test(test_render_contract),
      cmocka_unit_test(test_duration_labels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
