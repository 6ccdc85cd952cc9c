/*
 * test_redis_noscript.c - the script cache going away under a live
 * limiter: SCRIPT FLUSH (NOSCRIPT on a live connection: one EVAL retry
 * per failed call, never a loop, no decision lost) and a Redis restart
 * mid-run (the reconnect reloads the scripts; decisions fail fast while
 * Redis is down and succeed again after).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_store_util.h"
#include "harness/redis_testutil.h"

static rlt_redis srv;

static int setup(void **state) {
  (void)state;
  return rlt_redis_start(&srv, NULL);
}

static int teardown(void **state) {
  (void)state;
  rlt_redis_stop(&srv);
  rl__redis_thread_cleanup();
  return 0;
}

static rl_limiter *limiter(uint32_t timeout_ms) {
  static rl_policy p;
  rl_window w = {1000000, 60000, 0};
  p = rlt_policy(NULL, RL_ALG_TOKEN_BUCKET, 1, &w);
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &srv, &p, 1);
  c.redis.timeout_ms = timeout_ms;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  assert_int_equal(rl_wait_ready(rl, 5000, NULL, 0), RL_OK);
  return rl;
}

static void script_flush(void) {
  char out[64];
  assert_int_equal(
      rlt_redis_cmd(&srv, out, sizeof out, 1, "SCRIPT", "FLUSH", NULL), 0);
  assert_string_equal(out, "+OK");
}

/* One caller: exactly one NOSCRIPT and one retry per flush, and the EVAL
 * re-caches the script so the next call is a plain EVALSHA again. */
static void test_flush_one_retry(void **state) {
  (void)state;
  rl_limiter *rl = limiter(2000);
  rl_decision d;
  assert_int_equal(rl_allow(rl, "k", 1, &d), RL_OK);
  for (int round = 1; round <= 3; round++) {
    script_flush();
    assert_int_equal(rl_allow(rl, "k", 1, &d), RL_OK);
    assert_true(d.allowed);
    rl__redis_store_stats s = rlt_store_stats(rl);
    assert_int_equal(s.noscript, round);
    assert_int_equal(s.script_retries, round);
    assert_int_equal(rl_allow(rl, "k", 1, &d), RL_OK);
    s = rlt_store_stats(rl);
    assert_int_equal(s.noscript, round); /* cached again by the EVAL */
  }
  assert_int_equal(rlt_store_stats(rl).error_replies, 0);
  rl_free(rl);
}

/* ---- traffic while the cache is flushed or Redis restarts -------------- */

#define THREADS 4

typedef struct run {
  rl_limiter *rl;
  atomic_int stop;
  atomic_long ok, failed, other;
  atomic_long async_ok, async_failed, async_pending;
  atomic_long slowest_ms;
  uint32_t timeout_ms;
} run;

static void note_slowest(run *r, long ms) {
  long prev = atomic_load(&r->slowest_ms);
  while (ms > prev && !atomic_compare_exchange_weak(&r->slowest_ms, &prev, ms))
    ;
}

static void on_async(int err, const rl_decision *d, void *ud) {
  run *r = ud;
  (void)d;
  atomic_fetch_add(err == RL_OK ? &r->async_ok : &r->async_failed, 1);
  atomic_fetch_sub(&r->async_pending, 1);
}

/* Blocking decisions, plus a few asynchronous ones, until told to stop. */
static void *traffic(void *arg) {
  run *r = arg;
  char key[16];
  for (unsigned i = 0; !atomic_load(&r->stop); i++) {
    snprintf(key, sizeof key, "k%u", i % 50);
    rl_decision d;
    int64_t t0 = rlt_now_ms();
    int rc = rl_allow(r->rl, key, strlen(key), &d);
    note_slowest(r, (long)(rlt_now_ms() - t0));
    if (rc == RL_OK) {
      atomic_fetch_add(&r->ok, 1);
    } else if (rc == RL_ERR_BACKEND_UNAVAILABLE || rc == RL_ERR_TIMEOUT) {
      atomic_fetch_add(&r->failed, 1);
      rlt_sleep_ms(1);
    } else {
      atomic_fetch_add(&r->other, 1);
    }
    rl_request req = {NULL, 0, key, strlen(key), 1};
    atomic_fetch_add(&r->async_pending, 1);
    if (i % 4 == 0 && rl_decide_async(r->rl, &req, on_async, r) != RL_OK) {
      atomic_fetch_sub(&r->async_pending, 1);
    } else if (i % 4 != 0) {
      atomic_fetch_sub(&r->async_pending, 1);
    }
  }
  rl__redis_thread_cleanup();
  return NULL;
}

static void start(run *r, pthread_t *th, uint32_t timeout_ms) {
  memset(r, 0, sizeof *r);
  r->timeout_ms = timeout_ms;
  r->rl = limiter(timeout_ms);
  for (int i = 0; i < THREADS; i++) {
    assert_int_equal(pthread_create(&th[i], NULL, traffic, r), 0);
  }
}

static void finish(run *r, pthread_t *th) {
  atomic_store(&r->stop, 1);
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
  }
  int64_t until = rlt_now_ms() + 5000;
  while (atomic_load(&r->async_pending) > 0 && rlt_now_ms() < until) {
    rlt_sleep_ms(1);
  }
  assert_int_equal(atomic_load(&r->async_pending), 0);
  assert_int_equal(atomic_load(&r->other), 0);
  assert_true(atomic_load(&r->slowest_ms) <
              (long)r->timeout_ms + rlt_slack_ms());
}

static void test_flush_mid_run(void **state) {
  (void)state;
  run r;
  pthread_t th[THREADS];
  start(&r, th, 1000);
  for (int i = 0; i < 10; i++) {
    rlt_sleep_ms(30);
    script_flush();
  }
  rlt_sleep_ms(30);
  finish(&r, th);
  rl__redis_store_stats s = rlt_store_stats(r.rl);
  print_message(
      "flush mid-run: %ld ok, %ld failed, async %ld/%ld; "
      "noscript %llu, retries %llu of %llu decisions\n",
      atomic_load(&r.ok), atomic_load(&r.failed), atomic_load(&r.async_ok),
      atomic_load(&r.async_failed), (unsigned long long)s.noscript,
      (unsigned long long)s.script_retries, (unsigned long long)s.decisions);
  assert_int_equal(atomic_load(&r.failed), 0);
  assert_int_equal(atomic_load(&r.async_failed), 0);
  assert_true(s.noscript >= 1);
  assert_int_equal(s.noscript, s.script_retries); /* one retry each */
  assert_true(s.script_retries < s.decisions);
  assert_int_equal(s.error_replies, 0);
  rl_free(r.rl);
}

/* Kill Redis and start it again on the same port while traffic runs: no
 * hang (every call within its deadline), clear errors meanwhile, full
 * service after the reconnect, which reloads the scripts. */
static void test_restart_mid_run(void **state) {
  (void)state;
  run r;
  pthread_t th[THREADS];
  start(&r, th, 200);
  rlt_sleep_ms(100);
  long before = atomic_load(&r.ok);
  rlt_redis_kill(&srv);
  rlt_sleep_ms(200);
  assert_int_equal(rlt_redis_restart(&srv), 0); /* new, empty script cache */
  int64_t until = rlt_now_ms() + 5000; /* reconnects after its backoff */
  while (rl_wait_ready(r.rl, 100, NULL, 0) != RL_OK && rlt_now_ms() < until) {
    rlt_sleep_ms(5);
  }
  assert_int_equal(rl_wait_ready(r.rl, 0, NULL, 0), RL_OK);
  rlt_sleep_ms(300);
  long after_restart = atomic_load(&r.ok);
  finish(&r, th);
  rl__redis_store_stats s = rlt_store_stats(r.rl);
  print_message("restart mid-run: %ld ok before, %ld ok in all, %ld failed; "
                "noscript %llu, retries %llu\n",
                before, atomic_load(&r.ok), atomic_load(&r.failed),
                (unsigned long long)s.noscript,
                (unsigned long long)s.script_retries);
  assert_true(before > 0);
  assert_true(atomic_load(&r.failed) > 0);
  assert_true(atomic_load(&r.ok) > after_restart); /* served again */
  assert_int_equal(s.noscript, s.script_retries);
  assert_int_equal(s.error_replies, 0);
  rl_decision d;
  assert_int_equal(rl_allow(r.rl, "after", 5, &d), RL_OK);
  rl_free(r.rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flush_one_retry),
      cmocka_unit_test(test_flush_mid_run),
      cmocka_unit_test(test_restart_mid_run),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
