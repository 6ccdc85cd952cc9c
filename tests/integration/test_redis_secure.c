/*
 * test_redis_secure.c - the Redis store behind AUTH, ACL users and TLS,
 * through the public API: the right credentials decide; a wrong password
 * or a wrong CA gives rl_wait_ready() a clear error and decisions fail
 * fast, without a hang; an ACL user limited to the limiter's commands and
 * to ~rl:* is enough, and one without the key pattern is refused with the
 * reason kept.
 */
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_store_util.h"
#include "harness/redis_testutil.h"

static rl_policy policy;

static void base_config(rl_config *c, rlt_addr *addr, const rlt_redis *srv) {
  rl_window w = {5, 60000, 0};
  policy = rlt_policy(NULL, RL_ALG_SLIDING_LOG, 1, &w);
  rlt_redis_config(c, addr, srv, &policy, 1);
  c->redis.timeout_ms = 2000;
}

static rl_limiter *new_limiter(const rl_config *c) {
  rl_limiter *rl = NULL;
  char err[256];
  if (rl_config_check(c, err, sizeof err) != RL_OK) {
    fail_msg("config: %s", err);
  }
  assert_int_equal(rl_new(c, &rl), RL_OK);
  return rl;
}

static void expect_works(rl_limiter *rl) {
  char err[256] = "";
  if (rl_wait_ready(rl, 5000, err, sizeof err) != RL_OK) {
    fail_msg("not ready: %s", err);
  }
  rl_decision d;
  for (int i = 0; i < 6; i++) {
    assert_int_equal(rl_allow(rl, "user", 4, &d), RL_OK);
    assert_int_equal(d.allowed, i < 5);
    assert_int_equal(d.source, RL_SOURCE_REDIS);
  }
}

/* rl_wait_ready says why at once; decisions fail fast. */
static void expect_refused(rl_limiter *rl, const char *why) {
  char err[256] = "";
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rl_wait_ready(rl, 5000, err, sizeof err),
                   RL_ERR_BACKEND_UNAVAILABLE);
  print_message("refused: %s\n", err);
  assert_non_null(strstr(err, why));
  assert_true(rlt_now_ms() - t0 < 500 + rlt_slack_ms());
  for (int i = 0; i < 10; i++) {
    rl_decision d;
    t0 = rlt_now_ms();
    int rc = rl_allow(rl, "user", 4, &d);
    assert_true(rc == RL_ERR_BACKEND_UNAVAILABLE || rc == RL_ERR_TIMEOUT);
    assert_true(rlt_now_ms() - t0 <= 2000 + rlt_slack_ms());
  }
}

static void test_password(void **state) {
  (void)state;
  rlt_redis srv;
  rlt_redis_opts so = {.password = "s3cret"};
  assert_int_equal(rlt_redis_start(&srv, &so), 0);
  rl_config c;
  rlt_addr addr;
  base_config(&c, &addr, &srv);
  c.redis.password = "s3cret";
  rl_limiter *rl = new_limiter(&c);
  expect_works(rl);
  rl_free(rl);
  c.redis.password = "wrong";
  rl = new_limiter(&c);
  expect_refused(rl, "WRONGPASS");
  rl_free(rl);
  c.redis.password = NULL;
  rl = new_limiter(&c);
  /* "NOAUTH Authentication required", or for a bulk string over 16 KB (a
   * script) "Protocol error: unauthenticated bulk length". */
  expect_refused(rl, "uthenticat");
  rl_free(rl);
  rlt_redis_stop(&srv);
}

static void test_acl_user(void **state) {
  (void)state;
  rlt_redis srv;
  /* What the limiter needs: EVALSHA, EVAL (NOSCRIPT retry), SCRIPT LOAD
   * (every connect), and inside the scripts TIME, GET, SET; keys ~rl:*. */
  rlt_redis_opts so = {
      .acl = "user default off\n"
             "user limiter on >pw ~rl:* resetchannels -@all +evalsha +eval "
             "+script|load +time +get +set\n"
             "user elsewhere on >pw ~app:* resetchannels -@all +evalsha "
             "+eval +script|load +time +get +set\n"};
  assert_int_equal(rlt_redis_start(&srv, &so), 0);
  rl_config c;
  rlt_addr addr;
  base_config(&c, &addr, &srv);
  c.redis.username = "limiter";
  c.redis.password = "pw";
  rl_limiter *rl = new_limiter(&c);
  expect_works(rl);
  rl_free(rl);

  c.redis.password = "bad";
  rl = new_limiter(&c);
  expect_refused(rl, "WRONGPASS");
  rl_free(rl);

  c.redis.username = "elsewhere"; /* no access to rl:* keys */
  c.redis.password = "pw";
  rl = new_limiter(&c);
  assert_int_equal(rl_wait_ready(rl, 5000, NULL, 0), RL_OK);
  rl_decision d;
  assert_int_equal(rl_allow(rl, "user", 4, &d), RL_ERR_BACKEND_UNAVAILABLE);
  rl__redis_store_stats s = rlt_store_stats(rl);
  print_message("no key access: %s\n", s.last_error);
  assert_non_null(strstr(s.last_error, "NOPERM"));
  assert_int_equal(s.error_replies, 1);
  rl_free(rl);
  rlt_redis_stop(&srv);
}

static char paths[4][256];

static const char *tls_path(int i, const char *name) {
  snprintf(paths[i], sizeof paths[i], "%s/%s", rlt_tls_dir(), name);
  return paths[i];
}

static void test_tls(void **state) {
  (void)state;
  rlt_redis srv;
  rlt_redis_opts so = {.tls = 1, .tls_auth_clients = 1};
  assert_int_equal(rlt_redis_start(&srv, &so), 0);
  rl_config c;
  rlt_addr addr;
  base_config(&c, &addr, &srv);
  c.redis.tls.enabled = 1;
  c.redis.tls.ca_file = tls_path(0, "ca.crt");
  c.redis.tls.cert_file = tls_path(1, "client.crt");
  c.redis.tls.key_file = tls_path(2, "client.key");
  rl_limiter *rl = new_limiter(&c);
  expect_works(rl);
  rl_free(rl);

  c.redis.tls.ca_file = tls_path(0, "other-ca.crt");
  rl = new_limiter(&c);
  expect_refused(rl, "certificate verification failed");
  rl_free(rl);

  c.redis.tls.ca_file = tls_path(0, "ca.crt");
  c.redis.tls.server_name = "wrong.example.com";
  rl = new_limiter(&c);
  expect_refused(rl, "hostname mismatch");
  rl_free(rl);
  rlt_redis_stop(&srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_password),
      cmocka_unit_test(test_acl_user),
      cmocka_unit_test(test_tls),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  rl__redis_thread_cleanup();
  return rc;
}
