/*
 * test_redis_tls.c - TLS connections to a TLS-only redis-server: the right
 * CA (by IP and by name), a wrong CA, a wrong name, client certificates,
 * concurrent traffic over TLS, and bad TLS files at creation.
 */
#include <pthread.h>
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_testutil.h"

static const char *const script = "return redis.call('INCR', KEYS[1])";
static char path_buf[8][256];

static const char *tls_file(int slot, const char *name) {
  snprintf(path_buf[slot], sizeof(path_buf[slot]), "%s/%s", rlt_tls_dir(),
           name);
  return path_buf[slot];
}

static void tls_opts(rl__redis_node_opts *o, const rlt_redis *srv,
                     const char *host, const char *ca) {
  rlt_node_opts(o, srv);
  o->host = host;
  o->scripts = &script;
  o->n_scripts = 1;
  o->tls.enabled = 1;
  o->tls.ca_file = tls_file(0, ca);
}

static rl__redis_node *new_node(const rl__redis_node_opts *o) {
  rl__redis_node *node = NULL;
  char err[128];
  if (rl__redis_node_new(NULL, o, &node, err, sizeof(err)) != RL_OK)
    fail_msg("node_new: %s", err);
  return node;
}

static void expect_error(rl__redis_node *node, const char *expect) {
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rl__redis_node_wait_ready(node, rlt_deadline(5000)),
                   RL_ERR_BACKEND_UNAVAILABLE);
  assert_true(rlt_now_ms() - t0 < 500 + rlt_slack_ms());
  char err[128];
  rl__redis_node_errstr(node, err, sizeof(err));
  print_message("TLS error: %s\n", err);
  assert_non_null(strstr(err, expect));
  t0 = rlt_now_ms();
  int rc = rlt_call(node, NULL, 5000, "PING", NULL);
  assert_int_equal(rc, RL_ERR_BACKEND_UNAVAILABLE);
  assert_true(rlt_now_ms() - t0 < 500 + rlt_slack_ms());
}

static int setup(void **state) {
  rlt_redis *srv = calloc(1, sizeof(*srv));
  rlt_redis_opts so = {.tls = 1};
  *state = srv;
  return rlt_redis_start(srv, &so);
}

static int setup_client_auth(void **state) {
  rlt_redis *srv = calloc(1, sizeof(*srv));
  rlt_redis_opts so = {.tls = 1, .tls_auth_clients = 1};
  *state = srv;
  return rlt_redis_start(srv, &so);
}

static int teardown(void **state) {
  rlt_redis_stop(*state);
  free(*state);
  rl__redis_thread_cleanup();
  return 0;
}

static void test_right_ca(void **state) {
  rl__redis_node_opts o;
  rlt_reply r;
  const char *hosts[] = {"127.0.0.1", "localhost"}; /* IP SAN, DNS SAN+SNI */
  for (int i = 0; i < 2; i++) {
    tls_opts(&o, *state, hosts[i], "ca.crt");
    rl__redis_node *node = new_node(&o);
    assert_int_equal(rl__redis_node_wait_ready(node, rlt_deadline(5000)),
                     RL_OK);
    assert_int_equal(rlt_call(node, &r, 2000, "PING", NULL), RL_OK);
    assert_string_equal(r.str, "PONG");
    assert_int_equal(rlt_call(node, &r, 2000, "EVALSHA",
                              rl__redis_node_script_sha(node, 0), "1", "rl:t",
                              NULL),
                     RL_OK);
    assert_int_equal(r.integer, i + 1);
    rl__redis_node_free(node);
  }
}

static void test_wrong_ca(void **state) {
  rl__redis_node_opts o;
  tls_opts(&o, *state, "127.0.0.1", "other-ca.crt");
  rl__redis_node *node = new_node(&o);
  expect_error(node, "certificate verification failed");
  rl__redis_node_free(node);
}

static void test_wrong_name(void **state) {
  rl__redis_node_opts o;
  tls_opts(&o, *state, "127.0.0.1", "ca.crt");
  o.tls.server_name = "wrong.example.com";
  rl__redis_node *node = new_node(&o);
  expect_error(node, "hostname mismatch");
  rl__redis_node_free(node);
}

static void test_client_cert(void **state) {
  rl__redis_node_opts o;
  rlt_reply r;
  tls_opts(&o, *state, "127.0.0.1", "ca.crt");
  o.tls.cert_file = tls_file(1, "client.crt");
  o.tls.key_file = tls_file(2, "client.key");
  rl__redis_node *node = new_node(&o);
  assert_int_equal(rl__redis_node_wait_ready(node, rlt_deadline(5000)), RL_OK);
  assert_int_equal(rlt_call(node, &r, 2000, "PING", NULL), RL_OK);
  rl__redis_node_free(node);

  tls_opts(&o, *state, "127.0.0.1", "ca.crt"); /* no client certificate */
  node = new_node(&o);
  expect_error(node, "TLS");
  rl__redis_node_free(node);
}

typedef struct tls_worker {
  rl__redis_node *node;
  int id;
  int ok;
} tls_worker;

static void *tls_worker_main(void *arg) {
  tls_worker *w = arg;
  char key[32];
  rlt_reply r;
  snprintf(key, sizeof(key), "rl:tls:%d", w->id);
  w->ok = 1;
  for (long long i = 1; i <= 200; i++)
    if (rlt_call(w->node, &r, 5000, "INCR", key, NULL) != RL_OK ||
        r.integer != i)
      w->ok = 0;
  rl__redis_thread_cleanup();
  return NULL;
}

static void test_concurrent_over_tls(void **state) {
  rl__redis_node_opts o;
  tls_opts(&o, *state, "127.0.0.1", "ca.crt");
  rl__redis_node *node = new_node(&o);
  enum { N = 8 };
  tls_worker w[N];
  pthread_t th[N];
  for (int i = 0; i < N; i++) {
    w[i] = (tls_worker){node, i, 0};
    pthread_create(&th[i], NULL, tls_worker_main, &w[i]);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    assert_true(w[i].ok);
  }
  rl__redis_node_free(node);
}

static void test_bad_tls_files(void **state) {
  (void)state;
  rl__redis_node_opts o;
  rl__redis_node *node = NULL;
  char err[128];
  rl__redis_node_opts_init(&o);
  o.tls.enabled = 1;
  o.tls.ca_file = "/nonexistent/ca.crt";
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, err, sizeof(err)),
                   RL_ERR_CONFIG_INVALID);
  print_message("bad CA file: %s\n", err);
  assert_non_null(strstr(err, "CA"));
  o.tls.ca_file = NULL;
  o.tls.cert_file = "/nonexistent/client.crt";
  o.tls.key_file = "/nonexistent/client.key";
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, err, sizeof(err)),
                   RL_ERR_CONFIG_INVALID);
  assert_null(node);
}

int main(void) {
  if (rlt_tls_dir() == NULL)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_right_ca, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_ca, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_name, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_cert, setup_client_auth,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_over_tls, setup,
                                      teardown),
      cmocka_unit_test(test_bad_tls_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
