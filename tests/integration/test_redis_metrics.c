/*
 * test_redis_metrics.c - the library's metrics on the Redis store, against
 * a real redis-server: every blocking and asynchronous decision is one
 * observation of ratelimiter_redis_latency_seconds{operation="allow"} and
 * one count by policy/window/result; the node has a breaker gauge; a Redis
 * that is gone shows up as backend_unavailable errors.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_store_util.h"
#include "harness/redis_testutil.h"

#define TEXT_MAX (256 * 1024)

static rlt_redis srv;

static atomic_int done;

static void on_decision(int err, const rl_decision *d, void *ud) {
  (void)ud;
  assert_int_equal(err, RL_OK);
  assert_int_equal(d->source, RL_SOURCE_REDIS);
  atomic_fetch_add(&done, 1);
}

static void test_latency_and_decisions(void **state) {
  (void)state;
  rl_policy p =
      rlt_policy("api", RL_ALG_FIXED_WINDOW, 1, (rl_window[]){{4, 60000, 0}});
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &srv, &p, 1);
  c.redis.timeout_ms = 2000;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  assert_int_equal(rl_wait_ready(rl, 5000, NULL, 0), RL_OK);
  rl_decision d;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(rl_allow(rl, "user-secret", 11, &d), RL_OK);
  }
  rl_request req = {"api", 3, "user-secret", 11, 1};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(rl_decide_async(rl, &req, on_decision, NULL), RL_OK);
  }
  int64_t deadline = rlt_now_ms() + 10000 + rlt_slack_ms();
  while (atomic_load(&done) < 3 && rlt_now_ms() < deadline) {
    rlt_sleep_ms(5);
  }
  assert_int_equal(atomic_load(&done), 3);
  char *t = malloc(TEXT_MAX);
  assert_non_null(t);
  assert_int_equal(rl_metrics_render(rl, t, TEXT_MAX, NULL), RL_OK);
  assert_int_equal(metric_sample(t, "ratelimiter_redis_latency_seconds_count{"
                                    "operation=\"allow\"}"),
                   6);
  assert_int_equal(metric_sample(t, "ratelimiter_redis_latency_seconds_bucket{"
                                    "operation=\"allow\",le=\"+Inf\"}"),
                   6);
  assert_int_equal(metric_sample(t, "ratelimiter_requests_total{policy=\"api\","
                                    "window=\"1m\",result=\"allowed\"}"),
                   4);
  assert_int_equal(metric_sample(t, "ratelimiter_requests_total{policy=\"api\","
                                    "window=\"1m\",result=\"denied\"}"),
                   2);
  assert_int_equal(
      metric_sample(t, "ratelimiter_decision_sources_total{source=\"redis\"}"),
      6);
  char node[96];
  snprintf(node, sizeof node, "ratelimiter_breaker_state{node=\"%s\"}",
           addr.text);
  assert_int_equal(metric_sample(t, node), 0);
  assert_non_null(strstr(t, "store=\"redis\"} 1\n"));
  assert_null(strstr(t, "secret"));

  /* Redis gone: failures are counted by code, and still timed. */
  rlt_redis_stop(&srv);
  int failed = 0;
  for (int i = 0; i < 3; i++) {
    failed += rl_allow(rl, "user-secret", 11, &d) != RL_OK;
  }
  assert_int_equal(failed, 3);
  assert_int_equal(rl_metrics_render(rl, t, TEXT_MAX, NULL), RL_OK);
  assert_int_equal(
      metric_sample(t,
                    "ratelimiter_errors_total{code=\"backend_unavailable\"}") +
          metric_sample(t, "ratelimiter_errors_total{code=\"timeout\"}"),
      3);
  /* more failures open the node's breaker (threshold 10): the gauge of
   * that node says so (2 = open), read at scrape time */
  for (int i = 0; i < 12; i++) {
    (void)rl_allow(rl, "user-secret", 11, &d);
  }
  assert_int_equal(rl_metrics_render(rl, t, TEXT_MAX, NULL), RL_OK);
  assert_int_equal(metric_sample(t, node), 2);
  free(t);
  rl_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_latency_and_decisions),
  };
  if (rlt_redis_start(&srv, NULL) != 0) {
    return 1;
  }
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  rlt_redis_stop(&srv);
  return rc;
}
