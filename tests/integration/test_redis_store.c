/*
 * test_redis_store.c - the Redis store through the public API, on a real
 * redis-server: configuration errors, a Redis that is down, decisions
 * identical to the memory store's for all four algorithms and multiple
 * windows (the memory store reading Redis' clock), opaque keys, isolated
 * policies, bad input, TTLs, and what a live reconfiguration keeps.
 */
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_group.h"
#include "harness/redis_store_util.h"
#include "harness/redis_testutil.h"
#include "redis_keys.h"

static rl_limiter *redis_limiter(const rl_policy *p, size_t n,
                                 size_t max_key_len) {
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &srv, p, n);
  if (max_key_len != 0) {
    c.max_key_len = max_key_len;
  }
  c.redis.timeout_ms = 2000; /* sanitizer builds on a loaded machine */
  rl_limiter *rl = NULL;
  char err[256];
  if (rl_config_check(&c, err, sizeof err) != RL_OK) {
    fail_msg("config: %s", err);
  }
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  assert_int_equal(rl_wait_ready(rl, 5000, err, sizeof err), RL_OK);
  return rl;
}

/* ---- configuration ------------------------------------------------------ */

static int check_addr(const char *addr) {
  rl_policy p =
      rlt_policy(NULL, RL_ALG_FIXED_WINDOW, 1, (rl_window[]){{10, 1000, 0}});
  rl_config c;
  rl_config_init(&c);
  c.policies = &p;
  c.n_policies = 1;
  c.store = RL_STORE_REDIS;
  c.redis.addrs = &addr;
  c.redis.n_addrs = 1;
  return rl_config_check(&c, NULL, 0);
}

static void test_config_errors(void **state) {
  (void)state;
  static const char *const bad[] = {
      ":6379",     "host", "host:0", "host:65536", "::1:6379",
      "[::1]6379", "[]:1", "h:p",    "h:",         "h:123456"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(check_addr(bad[i]), RL_ERR_CONFIG_INVALID);
  }
  assert_int_equal(check_addr("[::1]:6379"), RL_OK);
  assert_int_equal(check_addr("redis.example.com:6380"), RL_OK);

  rl_policy p = rlt_policy(NULL, RL_ALG_TOKEN_BUCKET, 1,
                           (rl_window[]){{1, RL_DURATION_MAX_MS, 0}});
  const char *addr = "127.0.0.1:1";
  rl_config c;
  char err[256];
  rl_config_init(&c);
  c.policies = &p;
  c.n_policies = 1;
  c.store = RL_STORE_REDIS;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "redis.addrs"));
  c.redis.addrs = &addr;
  c.redis.n_addrs = 1;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_OK);
  p.windows[0].burst = RL_LIMIT_MAX; /* 2^40 * 366 days / 1 > 2^50 ms */
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_WINDOW_BURST);
  assert_non_null(strstr(err, "2^50"));
  c.store = RL_STORE_MEMORY; /* the memory store has no such limit */
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_OK);
  c.store = RL_STORE_REDIS;
  p.windows[0].burst = 0;
  c.redis.tls.enabled = 1;
  c.redis.tls.ca_file = "/nonexistent/ca.crt";
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "ca_file"));
  c.redis.tls.ca_file = NULL;
  c.redis.tls.cert_file = "/etc/hostname";
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.redis.tls.cert_file = NULL;
  c.redis.tls.ca_dir = "/etc/hostname"; /* not a directory */
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.redis.tls.ca_dir = NULL;
  c.redis.username = "u";
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.redis.username = NULL;
  c.redis.pool_size = 65;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.redis.pool_size = 0; /* default */
  c.store = (rl_store_type)7;
  assert_int_equal(rl_config_check(&c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  c.store = RL_STORE_REDIS;
  addr = "no-such-host.invalid:6379"; /* resolved by rl_new */
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_ERR_CONFIG_INVALID);
  assert_null(rl);
}

/* rl_new succeeds with Redis down; everything then fails fast and says
 * why. */
static void test_redis_down(void **state) {
  (void)state;
  rlt_redis dead;
  assert_int_equal(rlt_redis_start(&dead, NULL), 0);
  rlt_redis_stop(&dead); /* its port now refuses connections */
  rl_policy p =
      rlt_policy(NULL, RL_ALG_FIXED_WINDOW, 1, (rl_window[]){{10, 1000, 0}});
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &dead, &p, 1);
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  char err[256];
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rl_wait_ready(rl, 5000, err, sizeof err),
                   RL_ERR_BACKEND_UNAVAILABLE);
  print_message("down: %s\n", err);
  assert_non_null(strstr(err, "Connection refused"));
  for (int i = 0; i < 20; i++) {
    rl_decision d;
    int rc = rl_allow(rl, "k", 1, &d);
    assert_true(rc == RL_ERR_BACKEND_UNAVAILABLE || rc == RL_ERR_TIMEOUT);
  }
  assert_true(rlt_now_ms() - t0 < 20 * 100 + rlt_slack_ms());
  rl_free(rl);
}

/* redis.pool_size connections, no more. */
static void test_pool_size(void **state) {
  (void)state;
  rl_policy p =
      rlt_policy(NULL, RL_ALG_FIXED_WINDOW, 1, (rl_window[]){{10, 1000, 0}});
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &srv, &p, 1);
  c.redis.pool_size = 3;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  rl__redis_node_opts o;
  rl__redis_node *node = NULL;
  rlt_node_opts(&o, &srv);
  o.pool_size = 1;
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, NULL, 0), RL_OK);
  rlt_reply r;
  const char *want = "connected_clients:4"; /* 3 + the probe's one */
  int64_t until = rlt_now_ms() + 5000;
  do {
    assert_int_equal(rlt_call(node, &r, 2000, "INFO", "clients", NULL), RL_OK);
  } while (strstr(r.str, want) == NULL && rlt_now_ms() < until);
  assert_non_null(strstr(r.str, want));
  rl__redis_node_free(node);
  rl_free(rl);
}

/* ---- decisions equal the memory store's --------------------------------- */

typedef struct diff_case {
  const char *name;
  rl_algorithm alg;
  size_t n;
  rl_window w[3];
  uint32_t log_slots;
} diff_case;

static void assert_same(const rl_decision *r, const rl_decision *m, int i) {
  if (r->allowed != m->allowed || r->window != m->window ||
      r->limit != m->limit || r->remaining != m->remaining ||
      r->reset_after_ms != m->reset_after_ms ||
      r->retry_after_ms != m->retry_after_ms) {
    fail_msg("request %d: redis {%d w%d l%llu r%llu reset%llu retry%llu} vs "
             "memory {%d w%d l%llu r%llu reset%llu retry%llu}",
             i, r->allowed, r->window, (unsigned long long)r->limit,
             (unsigned long long)r->remaining,
             (unsigned long long)r->reset_after_ms,
             (unsigned long long)r->retry_after_ms, m->allowed, m->window,
             (unsigned long long)m->limit, (unsigned long long)m->remaining,
             (unsigned long long)m->reset_after_ms,
             (unsigned long long)m->retry_after_ms);
  }
}

/* Random traffic on 3 keys through both stores; the memory store reads
 * the time Redis used. */
static void run_diff(const diff_case *dc, unsigned seed) {
  rl_policy p = rlt_policy(dc->name, dc->alg, dc->n, dc->w);
  p.log_slots = dc->log_slots;
  rl_limiter *rr = redis_limiter(&p, 1, 0);
  fake_clock clock = {0};
  rl_config mc;
  rl_config_init(&mc);
  mc.policies = &p;
  mc.n_policies = 1;
  mc.clock = fake_clock_read;
  mc.clock_ctx = &clock;
  rl_limiter *mr = NULL;
  assert_int_equal(rl_new(&mc, &mr), RL_OK);
  int admitted = 0;
  for (int i = 0; i < 300; i++) {
    char key[8];
    snprintf(key, sizeof key, "k%u", (seed = seed * 1103515245u + 12345u) % 3);
    int64_t cost = 1 + (int64_t)((seed >> 8) % 4);
    rl_decision r, m;
    assert_int_equal(allow_str(rr, key, cost, &r), RL_OK);
    assert_int_equal(r.source, RL_SOURCE_REDIS);
    clock.now = rl__redis_last_now_ms();
    assert_true(clock.now > 0);
    assert_int_equal(allow_str(mr, key, cost, &m), RL_OK);
    assert_same(&r, &m, i);
    admitted += r.allowed;
    if ((seed >> 16) % 8 == 0) {
      rlt_sleep_ms((seed >> 20) % 15);
    }
  }
  print_message("%s: %d of 300 admitted\n", dc->name, admitted);
  assert_true(admitted > 0 && admitted < 300);
  rl_free(rr);
  rl_free(mr);
}

static void test_same_as_memory(void **state) {
  (void)state;
  static const diff_case cases[] = {
      {"fixed", RL_ALG_FIXED_WINDOW, 1, {{20, 50, 0}}, 0},
      {"counter", RL_ALG_SLIDING_COUNTER, 1, {{20, 60, 0}}, 0},
      {"gcra", RL_ALG_TOKEN_BUCKET, 1, {{20, 80, 0}}, 0},
      {"gcra_burst", RL_ALG_TOKEN_BUCKET, 1, {{20, 80, 5}}, 0},
      {"log", RL_ALG_SLIDING_LOG, 1, {{20, 70, 0}}, 0},
      {"log_merged", RL_ALG_SLIDING_LOG, 1, {{40, 70, 0}}, 4},
      {"fixed_multi", RL_ALG_FIXED_WINDOW, 2, {{8, 20, 0}, {30, 150, 0}}, 0},
      {"counter_multi",
       RL_ALG_SLIDING_COUNTER,
       3,
       {{8, 20, 0}, {30, 150, 0}, {50, 400, 0}},
       0},
      {"gcra_multi", RL_ALG_TOKEN_BUCKET, 2, {{8, 20, 0}, {30, 150, 0}}, 0},
      {"log_multi", RL_ALG_SLIDING_LOG, 2, {{8, 20, 0}, {30, 150, 0}}, 8},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run_diff(&cases[i], 7u + (unsigned)i);
  }
}

/* ---- keys and policies -------------------------------------------------- */

static int64_t pttl(rl__redis_node *node, const char *key, size_t len) {
  const char *argv[2] = {"PTTL", key};
  size_t lens[2] = {4, len};
  rl__redis_args a = {2, argv, lens};
  rlt_reply r;
  assert_int_equal(
      rl__redis_node_call(node, &a, rlt_deadline(2000), rlt_consume, &r),
      RL_OK);
  assert_int_equal(r.type, RL__REPLY_INTEGER);
  return r.integer;
}

/* The Redis key of (policy 0 of rl, key). */
static size_t key_of(const rl_policy *p, const void *key, size_t len,
                     char *buf) {
  rl__policy cp;
  size_t out = 0;
  assert_int_equal(rl__policy_compile(p, 0, &cp, NULL, 0), RL_OK);
  char part[RL__REDIS_POLICY_PART_MAX];
  size_t plen = rl__redis_policy_part(cp.name, cp.name_len, cp.layout, part);
  assert_int_equal(
      rl__redis_key(part, plen, key, len, buf, RL__REDIS_KEY_MAX, &out), RL_OK);
  return out;
}

static void test_opaque_keys(void **state) {
  (void)state;
  flushall();
  rl_policy p =
      rlt_policy("one", RL_ALG_FIXED_WINDOW, 1, (rl_window[]){{1, 60000, 0}});
  rl_limiter *rl = redis_limiter(&p, 1, RL_KEY_MAX);
  static char big[RL_KEY_MAX], big2[RL_KEY_MAX];
  memset(big, 'k', sizeof big);
  memset(big2, 'k', sizeof big2);
  big2[RL_KEY_MAX - 1] = 'j';
  struct {
    const char *k;
    size_t len;
  } keys[] = {{"a\0b", 3}, {"a\0c", 3}, {"a", 1},          {"a\0", 2},
              {"{x}", 3},  {"{x}y", 4}, {"x:y", 3},        {"x", 1},
              {"}{", 2},   {":", 1},    {big, RL_KEY_MAX}, {big2, RL_KEY_MAX}};
  size_t n = sizeof keys / sizeof keys[0];
  rl_decision d;
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(rl_allow(rl, keys[i].k, keys[i].len, &d), RL_OK);
    assert_true(d.allowed); /* no other key's unit was spent */
  }
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(rl_allow(rl, keys[i].k, keys[i].len, &d), RL_OK);
    assert_false(d.allowed);
  }
  char out[64];
  assert_int_equal(rlt_redis_cmd(&srv, out, sizeof out, 1, "DBSIZE", NULL), 0);
  assert_int_equal(atoi(out + 1), (int)n);
  /* Every key has a TTL: until the end of its aligned 60 s window. */
  rl__redis_node_opts o;
  rl__redis_node *node = NULL;
  rlt_node_opts(&o, &srv);
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, NULL, 0), RL_OK);
  char *name = malloc(RL__REDIS_KEY_MAX);
  assert_non_null(name);
  for (size_t i = 0; i < n; i++) {
    size_t len = key_of(&p, keys[i].k, keys[i].len, name);
    int64_t ttl = pttl(node, name, len);
    assert_true(ttl > 0 && ttl <= 60001);
  }
  free(name);
  rl__redis_node_free(node);
  rl_free(rl);
}

static void test_policies_isolated(void **state) {
  (void)state;
  flushall();
  rl_window w = {2, 60000, 0};
  rl_policy ps[2] = {rlt_policy("a", RL_ALG_FIXED_WINDOW, 1, &w),
                     rlt_policy("b", RL_ALG_FIXED_WINDOW, 1, &w)};
  rl_limiter *rl = redis_limiter(ps, 2, 0);
  rl_request ra = {"a", 1, "key", 3, 2}, rb = {"b", 1, "key", 3, 1};
  rl_decision d;
  assert_int_equal(rl_decide(rl, &ra, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(d.policy, 0);
  assert_int_equal(rl_decide(rl, &ra, &d), RL_OK);
  assert_false(d.allowed);
  assert_int_equal(rl_decide(rl, &rb, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(d.remaining, 1);
  assert_int_equal(d.policy, 1);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  rl_free(rl);
}

static void test_bad_input(void **state) {
  (void)state;
  flushall();
  rl_policy p =
      rlt_policy(NULL, RL_ALG_SLIDING_LOG, 1, (rl_window[]){{10, 60000, 0}});
  rl_limiter *rl = redis_limiter(&p, 1, 0);
  rl_decision d;
  char big[RL_KEY_MAX_DEFAULT + 1];
  memset(big, 'k', sizeof big);
  assert_int_equal(allow_str(rl, "k", 9, &d), RL_OK);
  assert_int_equal(rl_allow(rl, NULL, 1, &d), RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl_allow(rl, "", 0, &d), RL_ERR_KEY_EMPTY);
  assert_int_equal(rl_allow(rl, big, sizeof big, &d), RL_ERR_KEY_TOO_LONG);
  assert_int_equal(allow_str(rl, "k", 0, &d), RL_ERR_COST_INVALID);
  assert_int_equal(allow_str(rl, "k", (int64_t)RL_COST_MAX + 1, &d),
                   RL_ERR_COST_TOO_LARGE);
  rl_request req = {"nope", 4, "k", 1, 1};
  assert_int_equal(rl_decide(rl, &req, &d), RL_ERR_POLICY_UNKNOWN);
  assert_int_equal(allow_str(rl, "k", 11, &d), RL_OK); /* cost > limit */
  assert_false(d.allowed);
  assert_int_equal(d.retry_after_ms, RL_RETRY_NEVER);
  assert_int_equal(allow_str(rl, "k", 1, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(d.remaining, 0);
  rl_memory_stats ms;
  assert_int_equal(rl_memory_stats_get(rl, &ms), RL_OK);
  assert_int_equal(ms.keys, 0);
  rl_free(rl);
}

/* A compatible change keeps the key's state; a new layout starts fresh;
 * the Redis settings cannot change. */
static void test_reconfigure(void **state) {
  (void)state;
  flushall();
  rl_policy p =
      rlt_policy("p", RL_ALG_FIXED_WINDOW, 1, (rl_window[]){{3, 60000, 0}});
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &srv, &p, 1);
  c.redis.timeout_ms = 2000;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  rl_decision d;
  assert_int_equal(allow_str(rl, "k", 3, &d), RL_OK);
  assert_true(d.allowed);
  p.windows[0].limit = 4; /* same layout: one unit left */
  char err[256];
  assert_int_equal(rl_reconfigure(rl, &c, err, sizeof err), RL_OK);
  assert_int_equal(allow_str(rl, "k", 1, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(d.remaining, 0);
  p.windows[0].duration_ms = 50000; /* new layout: a fresh key */
  assert_int_equal(rl_reconfigure(rl, &c, err, sizeof err), RL_OK);
  assert_int_equal(allow_str(rl, "k", 1, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(d.remaining, 3);
  p.algorithm = RL_ALG_SLIDING_COUNTER; /* 16 vs 24 bytes, new key too */
  assert_int_equal(rl_reconfigure(rl, &c, err, sizeof err), RL_OK);
  assert_int_equal(allow_str(rl, "k", 1, &d), RL_OK);
  assert_int_equal(d.remaining, 3);
  c.redis.pool_size = 2;
  assert_int_equal(rl_reconfigure(rl, &c, err, sizeof err),
                   RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "redis settings"));
  c.redis.pool_size = 0; /* = the default 4: the same settings */
  c.redis.timeout_ms = 2000;
  assert_int_equal(rl_reconfigure(rl, &c, err, sizeof err), RL_OK);
  c.store = RL_STORE_MEMORY;
  assert_int_equal(rl_reconfigure(rl, &c, err, sizeof err),
                   RL_ERR_CONFIG_INVALID);
  rl_free(rl);
}

/* Token bucket: the limit is part of the layout (TAT counts 1/limit ms). */
static void test_layout_names(void **state) {
  (void)state;
  rl_policy a =
      rlt_policy("p", RL_ALG_TOKEN_BUCKET, 1, (rl_window[]){{3, 60000, 0}});
  rl_policy b = a;
  char ka[RL__REDIS_KEY_MAX], kb[RL__REDIS_KEY_MAX];
  b.windows[0].burst = 7; /* compatible */
  size_t la = key_of(&a, "k", 1, ka), lb = key_of(&b, "k", 1, kb);
  assert_int_equal(la, lb);
  assert_memory_equal(ka, kb, la);
  b.windows[0].limit = 4;
  lb = key_of(&b, "k", 1, kb);
  assert_true(la != lb || memcmp(ka, kb, la) != 0);
  assert_non_null(memchr(ka, '@', la));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_errors),
      cmocka_unit_test(test_redis_down),
      cmocka_unit_test(test_pool_size),
      cmocka_unit_test(test_same_as_memory),
      cmocka_unit_test(test_opaque_keys),
      cmocka_unit_test(test_policies_isolated),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_reconfigure),
      cmocka_unit_test(test_layout_names),
  };
  return cmocka_run_group_tests(tests, redis_group_setup, redis_group_teardown);
}
