/*
 * test_redis_auth.c - the on-connect handshake: AUTH with a password, ACL
 * users, SELECT, SCRIPT LOAD; and that a failing handshake gives a clear
 * error at once instead of a hang.
 */
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_testutil.h"

static const char *const script = "return redis.call('INCR', KEYS[1])";

static rl__redis_node *node_for(const rlt_redis *srv, const char *user,
                                const char *pass, int db) {
  rl__redis_node_opts o;
  rl__redis_node *node = NULL;
  char err[128];
  rlt_node_opts(&o, srv);
  o.username = user;
  o.password = pass;
  o.db = db;
  o.scripts = &script;
  o.n_scripts = 1;
  if (rl__redis_node_new(NULL, &o, &node, err, sizeof(err)) != RL_OK)
    fail_msg("node_new: %s", err);
  return node;
}

/* The handshake fails: fast, with `expect` in errstr, calls fail fast. */
static void expect_handshake_error(rl__redis_node *node, const char *expect) {
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rl__redis_node_wait_ready(node, rlt_deadline(5000)),
                   RL_ERR_BACKEND_UNAVAILABLE);
  assert_true(rlt_now_ms() - t0 < 200 + rlt_slack_ms());
  char err[128];
  rl__redis_node_errstr(node, err, sizeof(err));
  print_message("handshake error: %s\n", err);
  assert_non_null(strstr(err, expect));
  t0 = rlt_now_ms();
  assert_int_equal(rlt_call(node, NULL, 5000, "PING", NULL),
                   RL_ERR_BACKEND_UNAVAILABLE);
  assert_true(rlt_now_ms() - t0 < 200 + rlt_slack_ms());
}

static void test_password(void **state) {
  (void)state;
  rlt_redis srv;
  rlt_redis_opts so = {.password = "s3cret"};
  assert_int_equal(rlt_redis_start(&srv, &so), 0);
  rl__redis_node *node = node_for(&srv, NULL, "s3cret", 0);
  assert_int_equal(rl__redis_node_wait_ready(node, rlt_deadline(5000)), RL_OK);
  rlt_reply r;
  assert_int_equal(rlt_call(node, &r, 1000, "PING", NULL), RL_OK);
  assert_string_equal(r.str, "PONG");
  rl__redis_node_free(node);

  node = node_for(&srv, NULL, "wrong", 0);
  expect_handshake_error(node, "WRONGPASS");
  rl__redis_node_free(node);

  node = node_for(&srv, NULL, NULL, 0); /* SCRIPT LOAD without AUTH */
  expect_handshake_error(node, "NOAUTH");
  rl__redis_node_free(node);
  rlt_redis_stop(&srv);
}

static void test_acl_user(void **state) {
  (void)state;
  rlt_redis srv;
  rlt_redis_opts so = {
      .acl = "user default off\n"
             "user limiter on >pw ~rl:* +@scripting +ping +auth +get +incr\n"};
  assert_int_equal(rlt_redis_start(&srv, &so), 0);
  rl__redis_node *node = node_for(&srv, "limiter", "pw", 0);
  assert_int_equal(rl__redis_node_wait_ready(node, rlt_deadline(5000)), RL_OK);
  rlt_reply r;
  const char *sha = rl__redis_node_script_sha(node, 0);
  assert_int_equal(
      rlt_call(node, &r, 1000, "EVALSHA", sha, "1", "rl:u:1", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_INTEGER);
  assert_int_equal(r.integer, 1);
  assert_int_equal(rlt_call(node, &r, 1000, "GET", "other", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_ERROR); /* key outside ~rl:* */
  assert_non_null(strstr(r.str, "NOPERM"));
  rl__redis_node_free(node);

  node = node_for(&srv, "limiter", "bad", 0);
  expect_handshake_error(node, "WRONGPASS");
  rl__redis_node_free(node);
  rlt_redis_stop(&srv);
}

static void test_select_db(void **state) {
  (void)state;
  rlt_redis srv;
  assert_int_equal(rlt_redis_start(&srv, NULL), 0);
  rl__redis_node *db3 = node_for(&srv, NULL, NULL, 3);
  rl__redis_node *db0 = node_for(&srv, NULL, NULL, 0);
  rlt_reply r;
  assert_int_equal(rlt_call(db3, &r, 2000, "SET", "k", "in3", NULL), RL_OK);
  assert_int_equal(rlt_call(db0, &r, 2000, "GET", "k", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_NIL);
  assert_int_equal(rlt_call(db3, &r, 2000, "GET", "k", NULL), RL_OK);
  assert_string_equal(r.str, "in3");
  rl__redis_node_free(db3);
  rl__redis_node_free(db0);
  rlt_redis_stop(&srv);
}

static void test_bad_script_is_a_handshake_error(void **state) {
  (void)state;
  rlt_redis srv;
  assert_int_equal(rlt_redis_start(&srv, NULL), 0);
  rl__redis_node_opts o;
  rl__redis_node *node;
  const char *bad = "this is not lua";
  rlt_node_opts(&o, &srv);
  o.scripts = &bad;
  o.n_scripts = 1;
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, NULL, 0), RL_OK);
  expect_handshake_error(node, "SCRIPT LOAD failed");
  rl__redis_node_free(node);
  rlt_redis_stop(&srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_password),
      cmocka_unit_test(test_acl_user),
      cmocka_unit_test(test_select_db),
      cmocka_unit_test(test_bad_script_is_a_handshake_error),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  rl__redis_thread_cleanup();
  return rc;
}
