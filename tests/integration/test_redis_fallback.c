/*
 * test_redis_fallback.c - graceful degradation on a real redis-server:
 * each fallback mode's decisions and sources while Redis is down, bad
 * input that never falls back, the breaker's counters, reconciliation of
 * locally admitted units into Redis with exact totals (no loss, no double
 * count), reconcile.lua for every algorithm, a mode change while Redis is
 * down, and asynchronous decisions that fall back.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_group.h"
#include "harness/redis_store_util.h"
#include "harness/redis_testutil.h"
#include "redis_keys.h"

#define LIMIT 10
#define INSTANCES 2

/* Policies "open", "closed", "local", "none" (explicit modes) and "dflt"
 * (the limiter's mode): sliding log, LIMIT per minute. */
typedef struct fixture {
  rl_policy p[5];
  rl_config c;
  rlt_addr addr;
  rl_limiter *rl;
  uint32_t probe_ms;   /* default 50 */
  uint32_t timeout_ms; /* default 2000 (sanitizers, a loaded machine) */
} fixture;

static void fixture_config(fixture *f, rl_fallback_mode global) {
  static const char *const names[] = {"open", "closed", "local", "none",
                                      "dflt"};
  static const rl_fallback_mode modes[] = {RL_FALLBACK_OPEN, RL_FALLBACK_CLOSED,
                                           RL_FALLBACK_LOCAL, RL_FALLBACK_NONE,
                                           RL_FALLBACK_DEFAULT};
  for (size_t i = 0; i < 5; i++) {
    f->p[i] = rlt_policy(names[i], RL_ALG_SLIDING_LOG, 1,
                         (rl_window[]){{LIMIT, 60000, 0}});
    f->p[i].fallback = modes[i];
  }
  rlt_redis_config(&f->c, &f->addr, &srv, f->p, 5);
  f->c.redis.timeout_ms = f->timeout_ms ? f->timeout_ms : 2000;
  f->c.fallback.mode = global;
  f->c.fallback.local_instances = INSTANCES;
  f->c.fallback.probe_interval_ms = f->probe_ms ? f->probe_ms : 50;
  f->c.fallback.circuit_breaker_threshold = 3;
}

static void fixture_new(fixture *f, rl_fallback_mode global) {
  fixture_config(f, global);
  char err[256];
  assert_int_equal(rl_new(&f->c, &f->rl), RL_OK);
  assert_int_equal(rl_wait_ready(f->rl, 5000, err, sizeof err), RL_OK);
}

static int decide(rl_limiter *rl, const char *policy, const char *key,
                  int64_t cost, rl_decision *d) {
  rl_request req = {policy, strlen(policy), key, strlen(key), cost};
  memset(d, 0xee, sizeof *d);
  return rl_decide(rl, &req, d);
}

/* Waits until a decision of `policy` comes from Redis again. */
static void wait_back_on_redis(rl_limiter *rl, const char *policy) {
  int64_t until = rlt_now_ms() + 5000 + 20 * rlt_slack_ms();
  rl_decision d;
  while (rlt_now_ms() < until) {
    if (decide(rl, policy, "probe", 1, &d) == RL_OK &&
        d.source == RL_SOURCE_REDIS) {
      return;
    }
    rlt_sleep_ms(10);
  }
  fail_msg("decisions did not come back to Redis");
}

/* ---- modes while Redis is down ------------------------------------------ */

static void test_modes_redis_down(void **state) {
  (void)state;
  flushall();
  fixture f = {0};
  fixture_new(&f, RL_FALLBACK_CLOSED);
  rl_decision d;
  assert_int_equal(decide(f.rl, "open", "k", 1, &d), RL_OK);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  rlt_redis_kill(&srv);

  assert_int_equal(decide(f.rl, "none", "k", 1, &d),
                   RL_ERR_BACKEND_UNAVAILABLE);
  assert_int_equal(decide(f.rl, "open", "k", 1, &d), RL_OK);
  assert_true(d.allowed);
  assert_int_equal(d.source, RL_SOURCE_FALLBACK_OPEN);
  assert_int_equal(d.limit, LIMIT);
  assert_int_equal(d.policy, 0);
  assert_int_equal(decide(f.rl, "closed", "k", 1, &d), RL_OK);
  assert_false(d.allowed);
  assert_int_equal(d.source, RL_SOURCE_FALLBACK_CLOSED);
  assert_int_equal(d.retry_after_ms, 50);
  assert_int_equal(decide(f.rl, "dflt", "k", 1, &d), RL_OK);
  assert_int_equal(d.source, RL_SOURCE_FALLBACK_CLOSED); /* the global */
  /* local: LIMIT / INSTANCES per window, then denied */
  for (int i = 0; i < LIMIT / INSTANCES; i++) {
    assert_int_equal(decide(f.rl, "local", "k", 1, &d), RL_OK);
    assert_true(d.allowed);
    assert_int_equal(d.source, RL_SOURCE_FALLBACK_LOCAL);
    assert_int_equal(d.policy, 2);
  }
  assert_int_equal(decide(f.rl, "local", "k", 1, &d), RL_OK);
  assert_false(d.allowed);
  assert_int_equal(d.source, RL_SOURCE_FALLBACK_LOCAL);
  assert_true(d.retry_after_ms > 0);
  /* bad input never falls back */
  assert_int_equal(decide(f.rl, "open", "k", 0, &d), RL_ERR_COST_INVALID);
  assert_int_equal(decide(f.rl, "open", "", 1, &d), RL_ERR_KEY_EMPTY);
  assert_int_equal(decide(f.rl, "nope", "k", 1, &d), RL_ERR_POLICY_UNKNOWN);

  rl_fallback_stats fs;
  assert_int_equal(rl_fallback_stats_get(f.rl, &fs), RL_OK);
  assert_int_equal(fs.fallback_open, 1);
  assert_int_equal(fs.fallback_closed, 2);
  assert_int_equal(fs.fallback_local, LIMIT / INSTANCES + 1);
  assert_int_equal(fs.store_errors, 1);
  assert_true(fs.breaker_open);
  assert_int_equal(fs.breaker_opened, 1);
  assert_true(fs.breaker_rejected > 0);
  assert_int_equal(fs.reconcile_pending_units, LIMIT / INSTANCES);

  /* Redis comes back empty (no persistence): the local units are all it
   * will count for "k", exactly once. */
  assert_int_equal(rlt_redis_restart(&srv), 0);
  wait_back_on_redis(f.rl, "open");
  assert_int_equal(rl__store_fallback_drain(rl__limiter_store(f.rl), 10000),
                   RL_OK);
  assert_int_equal(rl_fallback_stats_get(f.rl, &fs), RL_OK);
  assert_false(fs.breaker_open);
  assert_true(fs.breaker_closed >= 1);
  assert_int_equal(fs.reconciled_units, LIMIT / INSTANCES);
  assert_int_equal(fs.reconcile_lost_units + fs.reconcile_dropped_units, 0);
  for (int i = 0; i < LIMIT - LIMIT / INSTANCES; i++) {
    assert_int_equal(decide(f.rl, "local", "k", 1, &d), RL_OK);
    assert_true(d.allowed);
    assert_int_equal(d.source, RL_SOURCE_REDIS);
    assert_int_equal(d.remaining,
                     (uint64_t)(LIMIT - LIMIT / INSTANCES - 1 - i));
  }
  assert_int_equal(decide(f.rl, "local", "k", 1, &d), RL_OK);
  assert_false(d.allowed);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  rl_free(f.rl);
}

/* ---- reconcile.lua for every algorithm ----------------------------------- */

/* A ready limiter on srv with the one policy p, and what reconcile.lua
 * needs for key "k" under it: the compiled shape, the Redis key and the
 * Redis store itself. */
typedef struct reconcile_target {
  rl_limiter *rl;
  rl__policy cp;
  char key[RL__REDIS_KEY_MAX];
  size_t klen;
  rl__store *rs;
} reconcile_target;

/* timeout_ms 0: the default Redis timeout. */
static void reconcile_target_open(reconcile_target *t, const rl_policy *p,
                                  uint32_t timeout_ms) {
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &srv, p, 1);
  if (timeout_ms != 0) {
    c.redis.timeout_ms = timeout_ms;
  }
  t->rl = NULL;
  assert_int_equal(rl_new(&c, &t->rl), RL_OK);
  assert_int_equal(rl_wait_ready(t->rl, 5000, NULL, 0), RL_OK);
  assert_int_equal(rl__policy_compile(p, 0, &t->cp, NULL, 0), RL_OK);
  char part[RL__REDIS_POLICY_PART_MAX];
  size_t part_len =
      rl__redis_policy_part(p->name, strlen(p->name), t->cp.layout, part);
  t->klen = 0;
  assert_int_equal(
      rl__redis_key(part, part_len, "k", 1, t->key, sizeof t->key, &t->klen),
      RL_OK);
  t->rs = rl__store_fallback_inner(rl__limiter_store(t->rl));
}

/* Reconciles units admitted locally age_ms ago into key "k" (id makes a
 * retry idempotent). */
static int reconcile(reconcile_target *t, const char *id, uint64_t units,
                     uint64_t age_ms) {
  return rl__redis_store_reconcile(t->rs, t->key, t->klen, id, &t->cp.shape,
                                   units, age_ms);
}

static void reconcile_alg(rl_algorithm alg, uint64_t burst) {
  rl_policy p = rlt_policy(
      "rc", alg, 2, (rl_window[]){{100, 60000, burst}, {1000, 3600000, 0}});
  reconcile_target t;
  reconcile_target_open(&t, &p, 2000);
  rl_decision d;
  assert_int_equal(decide(t.rl, "rc", "k", 5, &d), RL_OK); /* some state */
  assert_int_equal(reconcile(&t, "id-1", 30, 0), RL_OK);
  /* the same reconciliation again (a lost reply retried): applied once */
  assert_int_equal(reconcile(&t, "id-1", 30, 0), RL_OK);
  /* capped at the limit: a full window is full */
  assert_int_equal(decide(t.rl, "rc", "k", 1, &d), RL_OK);
  assert_true(d.allowed);
  /* 5 + 30 + 1 spent of 100 (the token bucket refills a little) */
  assert_true(d.remaining <= 64 && d.remaining >= 63);
  assert_int_equal(reconcile(&t, "id-2", 1000000, 0), RL_OK);
  assert_int_equal(decide(t.rl, "rc", "k", 1, &d), RL_OK);
  assert_false(d.allowed);
  rl_free(t.rl);
}

static void test_reconcile_script(void **state) {
  (void)state;
  flushall();
  reconcile_alg(RL_ALG_SLIDING_LOG, 0);
  reconcile_alg(RL_ALG_SLIDING_COUNTER, 0);
  reconcile_alg(RL_ALG_TOKEN_BUCKET, 0);
  reconcile_alg(RL_ALG_FIXED_WINDOW, 0);
  /* a fixed window that began after the admissions gets nothing */
  flushall();
  rl_policy p =
      rlt_policy("fw", RL_ALG_FIXED_WINDOW, 1, (rl_window[]){{100, 1000, 0}});
  reconcile_target t;
  reconcile_target_open(&t, &p, 0);
  assert_int_equal(reconcile(&t, "id-3", 50, 1500), RL_OK);
  rl_decision d;
  assert_int_equal(decide(t.rl, "fw", "k", 1, &d), RL_OK);
  assert_int_equal(d.remaining, 99);
  /* a refused script (bad arguments) is an error reply */
  t.cp.shape.windows[0].limit = 0;
  assert_int_equal(reconcile(&t, "id-4", 1, 0), RL__REDIS_ERROR_REPLY);
  rl_free(t.rl);
}

/* ---- a mode change while Redis is down ---------------------------------- */

static void test_reconfigure_during_outage(void **state) {
  (void)state;
  flushall();
  fixture f = {0};
  fixture_new(&f, RL_FALLBACK_OPEN);
  rlt_redis_kill(&srv);
  rl_decision d;
  assert_int_equal(decide(f.rl, "dflt", "k", 1, &d), RL_OK);
  assert_int_equal(d.source, RL_SOURCE_FALLBACK_OPEN);
  fixture_config(&f, RL_FALLBACK_CLOSED);
  char err[256];
  assert_int_equal(rl_reconfigure(f.rl, &f.c, err, sizeof err), RL_OK);
  assert_int_equal(decide(f.rl, "dflt", "k", 1, &d), RL_OK);
  assert_int_equal(d.source, RL_SOURCE_FALLBACK_CLOSED);
  f.p[4].fallback = RL_FALLBACK_LOCAL; /* per policy */
  assert_int_equal(rl_reconfigure(f.rl, &f.c, err, sizeof err), RL_OK);
  assert_int_equal(decide(f.rl, "dflt", "k", 1, &d), RL_OK);
  assert_int_equal(d.source, RL_SOURCE_FALLBACK_LOCAL);
  assert_true(d.allowed);
  /* the breaker settings cannot change live */
  f.c.fallback.circuit_breaker_threshold = 7;
  assert_int_equal(rl_reconfigure(f.rl, &f.c, err, sizeof err),
                   RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "circuit_breaker_threshold"));
  rl_memory_stats ms;
  assert_int_equal(rl_memory_stats_get(f.rl, &ms), RL_OK);
  assert_int_equal(ms.keys, 1); /* the local fallback's key */
  rl_free(f.rl);
  assert_int_equal(rlt_redis_restart(&srv), 0);
}

/* ---- asynchronous decisions --------------------------------------------- */

typedef struct async_box {
  atomic_int calls;
  int err;
  rl_decision d;
} async_box;

static void async_cb(int err, const rl_decision *d, void *ud) {
  async_box *b = ud;
  b->err = err;
  if (d != NULL) {
    b->d = *d;
  }
  atomic_fetch_add(&b->calls, 1);
}

static void wait_calls(async_box *b, int n) {
  int64_t until = rlt_now_ms() + 5000 + 20 * rlt_slack_ms();
  while (atomic_load(&b->calls) < n && rlt_now_ms() < until) {
    rlt_sleep_ms(1);
  }
  assert_int_equal(atomic_load(&b->calls), n);
}

static void test_async_fallback(void **state) {
  (void)state;
  flushall();
  fixture f = {.probe_ms = 60000, .timeout_ms = 500}; /* no probe */
  fixture_new(&f, RL_FALLBACK_LOCAL);
  async_box b = {0};
  rl_request req = {"dflt", 4, "ak", 2, 1};
  assert_int_equal(rl_decide_async(f.rl, &req, async_cb, &b), RL_OK);
  wait_calls(&b, 1);
  assert_int_equal(b.err, RL_OK);
  assert_int_equal(b.d.source, RL_SOURCE_REDIS);
  /* a hung server: the callback comes at the deadline, decided locally */
  rlt_redis_pause(&srv);
  char big[600];
  memset(big, 'x', sizeof big);
  rl_request long_req = {"dflt", 4, big, sizeof big, 1};
  assert_int_equal(rl_decide_async(f.rl, &long_req, async_cb, &b), RL_OK);
  wait_calls(&b, 2);
  assert_int_equal(b.err, RL_OK);
  assert_int_equal(b.d.source, RL_SOURCE_FALLBACK_LOCAL);
  assert_true(b.d.allowed);
  /* open the breaker (threshold 3), then refusals decide at once */
  rl_decision d;
  for (int i = 0; i < 3; i++) {
    decide(f.rl, "dflt", "sync", 1, &d);
  }
  rl_fallback_stats fs;
  assert_int_equal(rl_fallback_stats_get(f.rl, &fs), RL_OK);
  assert_true(fs.breaker_open);
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rl_decide_async(f.rl, &req, async_cb, &b), RL_OK);
  assert_int_equal(atomic_load(&b.calls), 3); /* before it returned */
  assert_true(rlt_now_ms() - t0 < 100 + rlt_slack_ms());
  assert_int_equal(b.d.source, RL_SOURCE_FALLBACK_LOCAL);
  /* none: the refusal is the caller's error, no callback */
  rl_request none = {"none", 4, "ak", 2, 1};
  assert_int_equal(rl_decide_async(f.rl, &none, async_cb, &b),
                   RL_ERR_BACKEND_UNAVAILABLE);
  rlt_redis_resume(&srv);
  rl_free(f.rl);
  assert_int_equal(atomic_load(&b.calls), 3);
}

/* A hot key's asynchronous lease call (lease.lua sent with the request):
 * leases are granted and spent while Redis answers; with the breaker open
 * the lease call cannot be sent, and the request is decided by the
 * fallback store at once, inline. */
static void test_async_lease_fallback(void **state) {
  (void)state;
  flushall();
  rl_policy p = rlt_policy("fw", RL_ALG_FIXED_WINDOW, 1,
                           (rl_window[]){{100000, 60000, 0}});
  p.fallback = RL_FALLBACK_LOCAL;
  rlt_addr a;
  rl_config c;
  rlt_redis_config(&c, &a, &srv, &p, 1);
  c.redis.timeout_ms = 500;
  c.fallback.local_instances = INSTANCES;
  c.fallback.probe_interval_ms = 60000; /* no probe */
  c.fallback.circuit_breaker_threshold = 3;
  c.cache.enabled = 1;
  c.cache.leases = 1;
  c.cache.hot_threshold = 5;
  c.cache.ttl_ms = 2000;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  assert_int_equal(rl_wait_ready(rl, 5000, NULL, 0), RL_OK);
  async_box b = {0};
  rl_request req = {"fw", 2, "hk", 2, 1};
  int leased = 0, redis = 0;
  for (int i = 0; i < 400; i++) {
    assert_int_equal(rl_decide_async(rl, &req, async_cb, &b), RL_OK);
    wait_calls(&b, i + 1);
    assert_int_equal(b.err, RL_OK);
    assert_true(b.d.allowed);
    leased += b.d.source == RL_SOURCE_LEASE;
    redis += b.d.source == RL_SOURCE_REDIS;
    rlt_sleep_ms(1);
  }
  rl_cache_stats cs;
  assert_int_equal(rl_cache_stats_get(rl, &cs), RL_OK);
  print_message("async: %d lease hits, %d Redis, %llu leases, %llu sent\n",
                leased, redis, (unsigned long long)cs.leases,
                (unsigned long long)cs.redis_calls);
  assert_true(cs.leases > 0);
  assert_true(leased > 300);
  /* Redis hangs; synchronous decisions time out until the breaker opens
   * (threshold 3; the third timeout may be counted just after its call) */
  rlt_redis_pause(&srv);
  rl_decision d;
  rl_request other = {"fw", 2, "cold", 4, 1};
  rl_fallback_stats fs;
  memset(&fs, 0, sizeof fs);
  for (int i = 0; i < 8 && !fs.breaker_open; i++) {
    assert_int_equal(rl_decide(rl, &other, &d), RL_OK);
    assert_int_equal(d.source, RL_SOURCE_FALLBACK_LOCAL);
    assert_int_equal(rl_fallback_stats_get(rl, &fs), RL_OK);
  }
  assert_true(fs.breaker_open);
  /* the hot key spends what its lease has left, then falls back inline */
  int local = 0;
  for (int i = 0; i < 2000 && local == 0; i++) {
    int before = atomic_load(&b.calls);
    assert_int_equal(rl_decide_async(rl, &req, async_cb, &b), RL_OK);
    assert_int_equal(atomic_load(&b.calls), before + 1); /* inline */
    assert_int_equal(b.err, RL_OK);
    assert_true(b.d.allowed);
    local += b.d.source == RL_SOURCE_FALLBACK_LOCAL;
  }
  assert_int_equal(local, 1);
  rlt_redis_resume(&srv);
  rl_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_modes_redis_down),
      cmocka_unit_test(test_reconcile_script),
      cmocka_unit_test(test_reconfigure_during_outage),
      cmocka_unit_test(test_async_fallback),
      cmocka_unit_test(test_async_lease_fallback),
  };
  return cmocka_run_group_tests(tests, redis_group_setup, redis_group_teardown);
}
