/*
 * test_redis_cache.c - the cache layer (rl_config.cache, docs/Cache.md) on
 * a real redis-server: configuration checks, cached denials, leases and
 * where their units go (spent, returned at rl_free, on reconfiguration and
 * when idle), the hot-key list, the asynchronous path, keys too long to
 * cache, and the memory bound under many distinct keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "test_util.h"

#include "harness/redis_group.h"
#include "harness/redis_store_util.h"

static rlt_addr addr; /* of srv, set once it runs */

static void base_config(rl_config *c, rl_policy *p, size_t n) {
  rl_config_init(c);
  c->policies = p;
  c->n_policies = n;
  c->store = RL_STORE_REDIS;
  c->redis.addrs = addr.list;
  c->redis.n_addrs = 1;
  c->redis.timeout_ms = 5000;
  c->cache.enabled = 1;
  c->cache.max_bytes = 256 << 10;
}

static rl_limiter *open_rl(const rl_config *c) {
  rl_limiter *rl = NULL;
  char err[256] = "";
  int rc = rl_config_check(c, err, sizeof err);
  if (rc != RL_OK) {
    print_message("config: %s\n", err);
  }
  assert_int_equal(rc, RL_OK);
  assert_int_equal(rl_new(c, &rl), RL_OK);
  assert_int_equal(rl_wait_ready(rl, 5000, NULL, 0), RL_OK);
  return rl;
}

static void one_policy(rl_policy *p, const char *name, rl_algorithm alg,
                       uint64_t limit, uint64_t ms) {
  rl_policy_init(p);
  p->name = name;
  p->algorithm = alg;
  rl_policy_add_window(p, limit, ms);
}

static rl_decision decide(rl_limiter *rl, const char *policy, const char *key,
                          int64_t cost) {
  rl_request req = {policy, policy ? strlen(policy) : 0, key, strlen(key),
                    cost};
  rl_decision d;
  memset(&d, 0, sizeof d);
  assert_int_equal(rl_decide(rl, &req, &d), RL_OK);
  return d;
}

/* One policy (window of 10 min) on an empty Redis with the cache on: what
 * most cases start from. c points into p, so a case is never copied. */
typedef struct cache_case {
  rl_policy p;
  rl_config c;
} cache_case;

static void cache_case_init(cache_case *t, const char *name, rl_algorithm alg,
                            uint64_t limit) {
  flushall();
  one_policy(&t->p, name, alg, limit, 600000);
  base_config(&t->c, &t->p, 1);
}

/* A policy "lp" of 100000 units whose keys turn hot (leased) above 5
 * decisions/s, so leases start soon. */
static void hot_case_init(cache_case *t, rl_algorithm alg, uint32_t ttl_ms) {
  cache_case_init(t, "lp", alg, 100000);
  t->c.cache.hot_threshold = 5;
  t->c.cache.ttl_ms = ttl_ms;
}

static rl_cache_stats cache_stats(rl_limiter *rl) {
  rl_cache_stats s;
  assert_int_equal(rl_cache_stats_get(rl, &s), RL_OK);
  return s;
}

/* n decisions of cost 1 on key, each allowed. */
static void spend_allowed(rl_limiter *rl, const char *key, int n) {
  for (int i = 0; i < n; i++) {
    assert_true(decide(rl, NULL, key, 1).allowed);
  }
}

/* Reconfigures rl to t's policy with another limit (same layout, so the
 * same Redis key); q receives that policy and must outlive rl. */
static void reconfigure_limit(rl_limiter *rl, const cache_case *t, rl_policy *q,
                              uint64_t limit) {
  *q = t->p;
  q->windows[0].limit = limit;
  rl_config c2 = t->c;
  c2.policies = q;
  assert_int_equal(rl_reconfigure(rl, &c2, NULL, 0), RL_OK);
}

/* ---- configuration ---------------------------------------------------- */

static void expect_refused(const rl_config *c, const char *needle) {
  char err[256] = "";
  assert_int_equal(rl_config_check(c, err, sizeof err), RL_ERR_CONFIG_INVALID);
  if (strstr(err, needle) == NULL) {
    fail_msg("'%s' not in '%s'", needle, err);
  }
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(c, &rl), RL_ERR_CONFIG_INVALID);
  assert_null(rl);
}

static void test_config_checks(void **state) {
  (void)state;
  rl_policy p;
  one_policy(&p, "a", RL_ALG_FIXED_WINDOW, 10, 1000);
  rl_config c;
  rl_config_init(&c);
  assert_int_equal(c.cache.enabled, 0);
  assert_int_equal(c.cache.ttl_ms, RL_CACHE_TTL_MS_DEFAULT);
  assert_int_equal(c.cache.max_bytes, RL_CACHE_MAX_BYTES_DEFAULT);
  assert_int_equal(c.cache.leases, 1);
  assert_int_equal(c.cache.hot_k, RL_CACHE_HOT_K_DEFAULT);
  c.policies = &p;
  c.n_policies = 1;
  c.cache.enabled = 1; /* memory store */
  expect_refused(&c, "needs the Redis store");
  base_config(&c, &p, 1);
  c.cache.ttl_ms = RL_CACHE_TTL_MS_MAX + 1;
  expect_refused(&c, "cache.ttl_ms");
  base_config(&c, &p, 1);
  c.cache.max_bytes = RL_CACHE_MAX_BYTES_MIN - 1;
  expect_refused(&c, "cache.max_bytes");
  base_config(&c, &p, 1);
  c.cache.lease_max = RL_LIMIT_MAX + 1;
  expect_refused(&c, "cache.lease_max");
  base_config(&c, &p, 1);
  c.cache.hot_k = RL_CACHE_HOT_K_MAX + 1;
  expect_refused(&c, "cache.hot_k");
  /* zeros mean defaults */
  base_config(&c, &p, 1);
  c.cache.ttl_ms = 0;
  c.cache.max_bytes = 0;
  c.cache.lease_max = 0;
  c.cache.hot_threshold = 0;
  c.cache.hot_k = 0;
  assert_int_equal(rl_config_check(&c, NULL, 0), RL_OK);
  /* the cache cannot change live */
  base_config(&c, &p, 1);
  rl_limiter *rl = open_rl(&c);
  rl_config d = c;
  d.cache.ttl_ms = 100;
  char err[256] = "";
  assert_int_equal(rl_reconfigure(rl, &d, err, sizeof err),
                   RL_ERR_CONFIG_INVALID);
  assert_non_null(strstr(err, "cache settings"));
  assert_int_equal(rl_reconfigure(rl, &c, err, sizeof err), RL_OK);
  rl_cache_stats s = cache_stats(rl);
  assert_true(s.bytes <= s.max_bytes);
  assert_int_equal(s.max_bytes, 256 << 10);
  assert_true(s.slots > 0);
  assert_int_equal(rl_cache_stats_get(NULL, &s), RL_ERR_INVALID_ARGUMENT);
  size_t n = 1;
  assert_int_equal(rl_hot_keys(rl, NULL, 0, &n), RL_OK);
  assert_int_equal(n, 0);
  assert_int_equal(rl_hot_keys(rl, NULL, 1, &n), RL_ERR_INVALID_ARGUMENT);
  rl_free(rl);
}

/* A limiter without a cache reports zeros. */
static void test_no_cache_stats(void **state) {
  (void)state;
  rl_policy p;
  one_policy(&p, "a", RL_ALG_FIXED_WINDOW, 10, 1000);
  rl_config c;
  base_config(&c, &p, 1);
  c.cache.enabled = 0;
  rl_limiter *rl = open_rl(&c);
  assert_int_equal(cache_stats(rl).slots, 0);
  rl_hot_key hk[2];
  size_t n = 9;
  assert_int_equal(rl_hot_keys(rl, hk, 2, &n), RL_OK);
  assert_int_equal(n, 0);
  rl_free(rl);
}

/* ---- cached denials --------------------------------------------------- */

/* The value of one sample line of rl_metrics_render's text ("name value"
 * or "name{labels} value"), or -1 if absent. */
static long long metric(rl_limiter *rl, const char *sample) {
  static char text[1 << 16];
  size_t needed = 0;
  assert_int_equal(rl_metrics_render(rl, text, sizeof text, &needed), RL_OK);
  assert_true(needed < sizeof text);
  size_t n = strlen(sample);
  for (const char *p = text; p != NULL && *p != '\0';) {
    if (strncmp(p, sample, n) == 0 && p[n] == ' ') {
      return atoll(p + n + 1);
    }
    p = strchr(p, '\n');
    p = p != NULL ? p + 1 : NULL;
  }
  return -1;
}

static void test_denials_are_cached(void **state) {
  (void)state;
  cache_case t;
  cache_case_init(&t, "fw", RL_ALG_FIXED_WINDOW, 3);
  t.c.cache.leases = 0;
  rl_limiter *rl = open_rl(&t.c);
  for (int i = 0; i < 2; i++) {
    rl_decision d = decide(rl, NULL, "u", 1);
    assert_true(d.allowed);
    assert_int_equal(d.source, RL_SOURCE_REDIS);
  }
  rl_decision d = decide(rl, NULL, "u", 2); /* 1 left: denied */
  assert_false(d.allowed);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  uint64_t retry = d.retry_after_ms;
  d = decide(rl, NULL, "u", 2);
  assert_false(d.allowed);
  assert_int_equal(d.source, RL_SOURCE_CACHE);
  assert_true(d.retry_after_ms >= 1 && d.retry_after_ms <= retry);
  assert_int_equal(d.limit, 3);
  d = decide(rl, NULL, "u", 5); /* more is denied too */
  assert_int_equal(d.source, RL_SOURCE_CACHE);
  d = decide(rl, NULL, "u", 1); /* less may fit: asks Redis */
  assert_true(d.allowed);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  d = decide(rl, NULL, "u", 1);
  assert_false(d.allowed);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  d = decide(rl, NULL, "u", 1);
  assert_int_equal(d.source, RL_SOURCE_CACHE);
  /* cost above the limit: never admitted, never cached */
  d = decide(rl, NULL, "v", 4);
  assert_int_equal(d.retry_after_ms, RL_RETRY_NEVER);
  d = decide(rl, NULL, "v", 4);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  rl_cache_stats s = cache_stats(rl);
  assert_int_equal(s.hits_blocked, 3);
  assert_int_equal(s.hits_lease, 0);
  assert_int_equal(s.leases, 0);
  /* the same counts reach the Prometheus text */
  assert_int_equal(metric(rl, "ratelimiter_cache_hits_total"), 3);
  assert_int_equal(metric(rl, "ratelimiter_cache_misses_total"),
                   (long long)s.misses);
  assert_int_equal(metric(rl, "ratelimiter_leases_granted_total"), 0);
  /* a reconfiguration with another limit invalidates cached denials */
  rl_policy q;
  reconfigure_limit(rl, &t, &q, 100);
  d = decide(rl, NULL, "u", 1);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  assert_true(d.allowed);
  rl_free(rl);
}

typedef struct got {
  int calls, err;
  rl_decision d;
} got;

/* May run on the library's loop thread: calls is published last. */
static void on_decision(int err, const rl_decision *d, void *ud) {
  got *g = ud;
  g->err = err;
  if (d != NULL) {
    g->d = *d;
  }
  __atomic_fetch_add(&g->calls, 1, __ATOMIC_RELEASE);
}

static void test_async_cached(void **state) {
  (void)state;
  cache_case t;
  cache_case_init(&t, "fw", RL_ALG_FIXED_WINDOW, 1);
  rl_limiter *rl = open_rl(&t.c);
  (void)decide(rl, NULL, "a", 1);
  (void)decide(rl, NULL, "a", 1); /* denied by Redis, cached */
  got g = {0, -1, {0}};
  rl_request req = {NULL, 0, "a", 1, 1};
  assert_int_equal(rl_decide_async(rl, &req, on_decision, &g), RL_OK);
  assert_int_equal(g.calls, 1); /* synchronously */
  assert_int_equal(g.err, RL_OK);
  assert_false(g.d.allowed);
  assert_int_equal(g.d.source, RL_SOURCE_CACHE);
  /* a miss goes to Redis asynchronously */
  got h = {0, -1, {0}};
  rl_request other = {NULL, 0, "b", 1, 1};
  assert_int_equal(rl_decide_async(rl, &other, on_decision, &h), RL_OK);
  int64_t until = rlt_now_ms() + 5000 + rlt_slack_ms();
  while (__atomic_load_n(&h.calls, __ATOMIC_ACQUIRE) == 0 &&
         rlt_now_ms() < until) {
    rlt_sleep_ms(1);
  }
  rlt_sleep_ms(5);
  assert_int_equal(__atomic_load_n(&h.calls, __ATOMIC_ACQUIRE), 1);
  assert_int_equal(h.err, RL_OK);
  assert_int_equal(h.d.source, RL_SOURCE_REDIS);
  rl_free(rl);
}

/* ---- leases ----------------------------------------------------------- */

/* Units left in Redis for key under p, seen by a limiter without a cache
 * (spends one unit). */
static uint64_t redis_remaining(const rl_policy *p, const char *key) {
  rl_config c;
  base_config(&c, (rl_policy *)p, 1);
  c.cache.enabled = 0;
  rl_limiter *rl = open_rl(&c);
  rl_decision d = decide(rl, NULL, key, 1);
  assert_true(d.allowed);
  rl_free(rl);
  return d.remaining + 1;
}

static void lease_round(rl_algorithm alg) {
  cache_case t;
  int bucket = alg == RL_ALG_TOKEN_BUCKET;
  int log = alg == RL_ALG_SLIDING_LOG;
  hot_case_init(&t, alg, 60000);
  if (bucket || log) {
    /* leased only while calm: 100 units a ms, far above this loop's */
    one_policy(&t.p, "lp", alg, 100000, 1000);
  }
  rl_limiter *rl = open_rl(&t.c);
  int lease_hits = 0, todo = 300, warm = 0;
  if (bucket || log) {
    /* calm first: found full (a bucket) or at most half used (a log) by 4
     * answers in a row over 50 ms (a bucket) or the window (a log) */
    int64_t until = rlt_now_ms() + (bucket ? 60 : 1060);
    while (rlt_now_ms() < until && todo > 200) {
      lease_hits += decide(rl, NULL, "hot", 1).source == RL_SOURCE_LEASE;
      todo--;
      warm++;
      rlt_sleep_ms(bucket ? 5 : 20);
    }
  }
  for (int i = 0; i < todo; i++) {
    rl_decision d = decide(rl, NULL, "hot", 1);
    assert_true(d.allowed);
    assert_int_equal(d.limit, 100000);
    lease_hits += d.source == RL_SOURCE_LEASE;
  }
  assert_true(lease_hits > (bucket || log ? 150 : 200));
  rl_cache_stats s = cache_stats(rl);
  assert_int_equal(s.hot_keys, 1);
  assert_true(s.leases > 0);
  assert_int_equal((int)s.hits_lease, lease_hits);
  assert_int_equal(metric(rl, "ratelimiter_cache_hits_total"), lease_hits);
  assert_int_equal(metric(rl, "ratelimiter_leases_granted_total"),
                   (long long)s.leases);
  assert_int_equal(
      metric(rl, "ratelimiter_lease_units_total{event=\"granted\"}"),
      (long long)s.lease_units);
  assert_int_equal(metric(rl, "ratelimiter_hot_keys"), 1);
  assert_int_equal(metric(rl, "ratelimiter_hot_keys_detected_total"), 1);
  /* a bucket's lease is what this instance spends in its hold: fewer
   * units when decisions are slow (sanitizers) */
  assert_true(s.redis_calls < (bucket || log ? 300 / 2 : 300 / 5));
  rl_hot_key hk[4];
  size_t n = 0;
  assert_int_equal(rl_hot_keys(rl, hk, 4, &n), RL_OK);
  assert_int_equal(n, 1);
  assert_string_equal(hk[0].policy, "lp");
  assert_int_equal(hk[0].key_len, 3);
  assert_memory_equal(hk[0].key, "hot", 3);
  assert_true(hk[0].rate >= 5);
  /* Redis counts leased units as spent until rl_free gives them back; a
   * token bucket's lease also holds the refill until its end (lease.lua),
   * which is more than these 300 units' worth (3 ms at this rate). */
  if (bucket) { /* the lease's push key: rlp:{...}, expiring at its end */
    char out[64];
    assert_int_equal(
        rlt_redis_cmd(&srv, out, sizeof out, 1, "EVAL",
                      "return #redis.call('KEYS', 'rlp:{*}:lp@*:hot')", "0",
                      NULL),
        0);
    assert_string_equal(out, ":1");
  }
  uint64_t during = redis_remaining(&t.p, "hot");
  print_message("%llu units left in Redis during the lease\n",
                (unsigned long long)during);
  if (!bucket) { /* a bucket's push may be over by now (it refills
                  * 300 units in 3 ms): its push key was checked above */
    assert_true(during < 100000 - 300);
  }
  rl_free(rl);
  if (bucket) {
    /* Its units do not go back (lease_return.lua): they and the refill
     * come back by the lease's end (at most 1/16 of the bucket's refill
     * time ahead, 63 ms): full again, nothing lost. */
    assert_int_equal(s.returned_units, 0);
    rlt_sleep_ms(63 + 10);
    assert_int_equal(redis_remaining(&t.p, "hot"), 100000);
  } else if (log) {
    /* the unspent units are back; the warm-up's first units may have left
     * the window by now */
    uint64_t left = redis_remaining(&t.p, "hot");
    assert_true(left >= 100000 - 301 && left <= 100000 - 301 + (uint64_t)warm);
  } else {
    assert_int_equal(redis_remaining(&t.p, "hot"), 100000 - 301);
  }
}

static void test_lease_fixed_window(void **state) {
  (void)state;
  lease_round(RL_ALG_FIXED_WINDOW);
}

static void test_lease_sliding_counter(void **state) {
  (void)state;
  lease_round(RL_ALG_SLIDING_COUNTER);
}

static void test_lease_sliding_log(void **state) {
  (void)state;
  lease_round(RL_ALG_SLIDING_LOG);
}

static void test_lease_token_bucket(void **state) {
  (void)state;
  lease_round(RL_ALG_TOKEN_BUCKET);
}

/* A token bucket drained faster than it refills is hot but never calm,
 * so never leased (a lease's push would leave Redis' bucket behind the
 * exact one for as long as it stays drained: docs/Cache.md); each
 * decision is Redis'. */
static void test_bucket_over_rate_not_leased(void **state) {
  (void)state;
  cache_case t;
  hot_case_init(&t, RL_ALG_TOKEN_BUCKET, 60000);
  one_policy(&t.p, "lp", RL_ALG_TOKEN_BUCKET, 100, 1000); /* 1 a 10 ms */
  rl_limiter *rl = open_rl(&t.c);
  int64_t until = rlt_now_ms() + 150;
  int n = 0;
  while (rlt_now_ms() < until) {
    rl_decision d = decide(rl, NULL, "hot", 1);
    assert_int_not_equal(d.source, RL_SOURCE_LEASE);
    n++;
  }
  rl_cache_stats s = cache_stats(rl);
  print_message("%d decisions in 150 ms, %llu Redis calls\n", n,
                (unsigned long long)s.redis_calls);
  assert_int_equal(s.hot_keys, 1);
  assert_true(n > 30); /* at least twice its rate */
  assert_int_equal(s.leases, 0);
  assert_int_equal(s.lease_units, 0);
  rl_free(rl);
}

/* A sliding log more than half used is hot-listed but not leased (its
 * reservations would overstate the window near its limit: cache.c,
 * log_lease); nor is one of several windows. */
static void test_sliding_log_busy_not_leased(void **state) {
  (void)state;
  cache_case t;
  cache_case_init(&t, "sl", RL_ALG_SLIDING_LOG, 1000);
  one_policy(&t.p, "sl", RL_ALG_SLIDING_LOG, 1000, 250);
  t.c.cache.hot_threshold = 5;
  rl_limiter *rl = open_rl(&t.c);
  /* 600 of 1000 used at once, then 10 more over 200 ms (more than the 4
   * answers over 250 ms that make a log at most half used calm, if
   * these were) */
  for (int i = 0; i < 610; i++) {
    assert_true(decide(rl, NULL, "k", 1).allowed);
    if (i >= 600) {
      rlt_sleep_ms(30);
    }
  }
  rl_cache_stats s = cache_stats(rl);
  assert_int_equal(s.hot_keys, 1);
  assert_int_equal(s.leases, 0);
  rl_free(rl);
  /* a steady demand of 0.7 of the limit: at most half used for half a
   * window from empty, but not for a whole one: not leased */
  cache_case_init(&t, "sl7", RL_ALG_SLIDING_LOG, 1000);
  one_policy(&t.p, "sl7", RL_ALG_SLIDING_LOG, 1000, 400);
  t.c.cache.hot_threshold = 5;
  rl = open_rl(&t.c);
  int64_t start = rlt_now_ms();
  int n = 0;
  while (rlt_now_ms() - start < 500) {
    while (n < (rlt_now_ms() - start) * 7 / 4) { /* 1.75 a ms */
      assert_true(decide(rl, NULL, "k", 1).allowed);
      n++;
    }
    rlt_sleep_ms(1);
  }
  s = cache_stats(rl);
  print_message("0.7 of the limit: %d decisions in 500 ms, %llu leases\n", n,
                (unsigned long long)s.leases);
  assert_true(n >= 800); /* the pace held: more than half used by 300 ms */
  assert_int_equal(s.leases, 0);
  rl_free(rl);
  /* two windows, calm: never leased */
  cache_case_init(&t, "sl2", RL_ALG_SLIDING_LOG, 100000);
  rl_policy_add_window(&t.p, 1000000, 1200000);
  t.c.cache.hot_threshold = 5;
  rl = open_rl(&t.c);
  for (int i = 0; i < 100; i++) {
    assert_int_equal(decide(rl, NULL, "k", 1).source, RL_SOURCE_REDIS);
    rlt_sleep_ms(i < 10 ? 60 : 0);
  }
  assert_int_equal(cache_stats(rl).leases, 0);
  rl_free(rl);
}

/* A fixed-window hot case whose key "hot" spent 100 units, leased. */
static rl_limiter *open_leased(cache_case *t, uint32_t ttl_ms) {
  hot_case_init(t, RL_ALG_FIXED_WINDOW, ttl_ms);
  rl_limiter *rl = open_rl(&t->c);
  spend_allowed(rl, "hot", 100);
  assert_true(cache_stats(rl).lease_units > 0);
  return rl;
}

/* CPU time of the whole process, ms. */
static int64_t process_cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An idle limiter with leases (a hot key leased, then nothing) costs next
 * to no CPU: its sweeper sleeps between sweeps. Its condition variable
 * once ran on the default clock while its deadline was on
 * CLOCK_MONOTONIC, so every wait returned at once and the sweeper spun a
 * whole core (about 300 ms of CPU in these 300 ms). */
static void test_sweeper_sleeps(void **state) {
  (void)state;
  cache_case t;
  rl_limiter *rl = open_leased(&t, 500);
  int64_t before = process_cpu_ms();
  rlt_sleep_ms(300);
  int64_t used = process_cpu_ms() - before;
  print_message("idle 300 ms: %lld ms of CPU\n", (long long)used);
  assert_true(used < 100);
  rl_free(rl);
}

/* Reconfiguration gives the leases back; the new policy starts clean. */
static void test_reconfigure_returns_leases(void **state) {
  (void)state;
  cache_case t;
  rl_limiter *rl = open_leased(&t, 60000);
  rl_policy q;
  reconfigure_limit(rl, &t, &q, 200000);
  /* The return is asynchronous; each probe spends one unit itself. */
  int64_t until = rlt_now_ms() + 5000 + rlt_slack_ms();
  uint64_t probes = 0, left = 0;
  while ((left = redis_remaining(&q, "hot")) != 200000 - 100 - probes &&
         rlt_now_ms() < until) {
    probes++;
    rlt_sleep_ms(5);
  }
  assert_int_equal(left, 200000 - 100 - probes);
  assert_true(cache_stats(rl).returned_units > 0);
  rl_decision d = decide(rl, NULL, "hot", 1);
  assert_int_equal(d.limit, 200000);
  rl_free(rl);
}

/* An idle lease goes back after ttl; a cold key leaves the hot list. */
static void test_idle_lease_returns_and_cools(void **state) {
  (void)state;
  cache_case t;
  hot_case_init(&t, RL_ALG_FIXED_WINDOW, 2000); /* leases: rate*ttl/4 units */
  rl_limiter *rl = open_rl(&t.c);
  spend_allowed(rl, "hot", 100);
  rl_cache_stats s = cache_stats(rl);
  print_message("leases %llu units %llu hot %llu lease hits %llu\n",
                (unsigned long long)s.leases, (unsigned long long)s.lease_units,
                (unsigned long long)s.hot_keys,
                (unsigned long long)s.hits_lease);
  assert_true(s.lease_units > 0);
  int64_t until = rlt_now_ms() + 8000 + rlt_slack_ms();
  do {
    rlt_sleep_ms(20);
    s = cache_stats(rl);
  } while (
      (s.returned_units + s.hits_lease != s.lease_units || s.hot_keys > 0) &&
      rlt_now_ms() < until);
  assert_true(s.returned_units > 0);
  assert_int_equal(s.returned_units + s.hits_lease, s.lease_units);
  assert_int_equal(s.hot_keys, 0);
  size_t n = 9;
  assert_int_equal(rl_hot_keys(rl, NULL, 0, &n), RL_OK);
  assert_int_equal(n, 0);
  /* all units but the 100 spent are back in Redis */
  assert_int_equal(redis_remaining(&t.p, "hot"), 100000 - 100);
  rl_free(rl);
}

/* hot_k = 1: a key at least twice as hot as the listed one displaces it;
 * the displaced key's lease goes back to Redis. */
static void test_hotter_key_displaces(void **state) {
  (void)state;
  cache_case t;
  hot_case_init(&t, RL_ALG_FIXED_WINDOW, 400); /* sweeps every 100 ms */
  t.c.cache.hot_k = 1;
  rl_limiter *rl = open_rl(&t.c);
  int spent_cool = 0;
  for (int i = 0; i < 40; i++) { /* about 40/s: hot, alone in the list */
    spend_allowed(rl, "cool", 1);
    spent_cool++;
    rlt_sleep_ms(25);
  }
  rl_hot_key hk[2];
  size_t n = 0;
  assert_int_equal(rl_hot_keys(rl, hk, 2, &n), RL_OK);
  assert_int_equal(n, 1);
  assert_memory_equal(hk[0].key, "cool", 4);
  /* "hot" at about 10x that rate; "cool" goes on at 20/s, which alone
   * would keep it listed (cooling is below threshold / 2) */
  int64_t until = rlt_now_ms() + 6000 + rlt_slack_ms();
  int moved = 0;
  for (int i = 0; !moved && rlt_now_ms() < until; i++) {
    spend_allowed(rl, "hot", 1);
    if (i % 20 == 0) {
      spend_allowed(rl, "cool", 1);
      spent_cool++;
    }
    rlt_sleep_ms(2);
    assert_int_equal(rl_hot_keys(rl, hk, 2, &n), RL_OK);
    moved = n == 1 && hk[0].key_len == 3 && memcmp(hk[0].key, "hot", 3) == 0;
  }
  assert_true(moved);
  rl_cache_stats s = cache_stats(rl);
  print_message("displaced %llu, returned units %llu\n",
                (unsigned long long)s.hot_displaced,
                (unsigned long long)s.returned_units);
  assert_true(s.hot_displaced >= 1);
  assert_int_equal(s.hot_keys, 1);
  /* the displaced key holds no lease: Redis has exactly what it spent */
  assert_int_equal(redis_remaining(&t.p, "cool"), 100000 - spent_cool);
  rl_free(rl);
}

/* ---- bounds ----------------------------------------------------------- */

/* Keys longer than RL_CACHE_KEY_MAX always go to Redis. */
static void test_long_keys_uncached(void **state) {
  (void)state;
  cache_case t;
  cache_case_init(&t, "fw", RL_ALG_FIXED_WINDOW, 1);
  rl_limiter *rl = open_rl(&t.c);
  char key[RL_CACHE_KEY_MAX + 2];
  memset(key, 'x', sizeof key - 1);
  key[sizeof key - 1] = '\0';
  (void)decide(rl, NULL, key, 1);
  for (int i = 0; i < 3; i++) {
    rl_decision d = decide(rl, NULL, key, 1);
    assert_false(d.allowed);
    assert_int_equal(d.source, RL_SOURCE_REDIS);
  }
  rl_cache_stats s = cache_stats(rl);
  assert_int_equal(s.misses, 4);
  assert_int_equal(s.hits_blocked, 0);
  rl_free(rl);
}

/* Many distinct keys (an enumeration): the cache's memory is fixed at
 * rl_new, slots change hands, hot keys stay. */
static void test_many_keys_bounded(void **state) {
  (void)state;
  cache_case t;
  cache_case_init(&t, "fw", RL_ALG_FIXED_WINDOW, 1);
  t.c.cache.max_bytes = RL_CACHE_MAX_BYTES_MIN;
  t.c.cache.leases = 0;
  rl_limiter *rl = open_rl(&t.c);
  rl_cache_stats s0 = cache_stats(rl);
  assert_true(s0.bytes <= RL_CACHE_MAX_BYTES_MIN);
  (void)decide(rl, NULL, "victim", 1);
  (void)decide(rl, NULL, "victim", 1); /* denied, cached */
  const char *env = getenv("RL_CACHE_KEYS");
  long n = env != NULL && atol(env) > 0 ? atol(env) : 20000;
  char key[32];
  for (long i = 0; i < n; i++) {
    snprintf(key, sizeof key, "enum-%ld", i);
    (void)decide(rl, NULL, key, 1);
    if (i % 64 == 0) { /* the victim stays busy: it keeps its slot */
      (void)decide(rl, NULL, "victim", 1);
    }
  }
  rl_cache_stats s = cache_stats(rl);
  print_message("%ld keys: %llu slots, %llu bytes (max %llu), %llu "
                "evictions\n",
                n, (unsigned long long)s.slots, (unsigned long long)s.bytes,
                (unsigned long long)s.max_bytes,
                (unsigned long long)s.evictions);
  assert_int_equal(s.bytes, s0.bytes);
  assert_true(s.bytes <= s.max_bytes);
  assert_true(s.evictions >= (uint64_t)n - s.slots);
  rl_free(rl);
}

static int setup(void **state) {
  int rc = redis_group_setup(state);
  rlt_addr_of(&addr, &srv);
  return rc;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_checks),
      cmocka_unit_test(test_no_cache_stats),
      cmocka_unit_test(test_denials_are_cached),
      cmocka_unit_test(test_async_cached),
      cmocka_unit_test(test_lease_fixed_window),
      cmocka_unit_test(test_lease_sliding_counter),
      cmocka_unit_test(test_lease_token_bucket),
      cmocka_unit_test(test_bucket_over_rate_not_leased),
      cmocka_unit_test(test_lease_sliding_log),
      cmocka_unit_test(test_sliding_log_busy_not_leased),
      cmocka_unit_test(test_sweeper_sleeps),
      cmocka_unit_test(test_reconfigure_returns_leases),
      cmocka_unit_test(test_idle_lease_returns_and_cools),
      cmocka_unit_test(test_hotter_key_displaces),
      cmocka_unit_test(test_long_keys_uncached),
      cmocka_unit_test(test_many_keys_bounded),
  };
  return cmocka_run_group_tests(tests, setup, redis_group_teardown);
}
