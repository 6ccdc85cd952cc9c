/*
 * test_redis_async.c - rl_decide_async(): its callback fires exactly once
 * per accepted request, with the decision, with RL_ERR_TIMEOUT at the
 * deadline (server paused by CLIENT PAUSE), or with RL_ERR_SHUTDOWN from
 * rl_free() with requests in flight; never after a submission error. On
 * the memory store it fires before rl_decide_async() returns.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_store_util.h"
#include "harness/redis_testutil.h"

#define MAX_REQS 4000

static rlt_redis srv;

/* One record per request: how many callbacks, with what. */
typedef struct tally {
  atomic_int calls[MAX_REQS];
  atomic_int err[MAX_REQS];
  atomic_int allowed;
  atomic_int done;
  atomic_int bad;      /* callbacks whose arguments broke the contract */
  atomic_long late_ms; /* latest callback, ms after its submission */
  int64_t submitted_at[MAX_REQS];
} tally;

typedef struct slot {
  tally *t;
  int i;
} slot;

static slot slots[MAX_REQS];

static void on_decision(int err, const rl_decision *d, void *ud) {
  slot *s = ud;
  tally *t = s->t;
  atomic_fetch_add(&t->calls[s->i], 1);
  atomic_store(&t->err[s->i], err);
  /* No cmocka assertion here: this runs on the library's loop thread. */
  if (err == RL_OK && d != NULL && d->source == RL_SOURCE_REDIS) {
    atomic_fetch_add(&t->allowed, d->allowed);
  } else if (err == RL_OK || d != NULL) {
    atomic_fetch_add(&t->bad, 1);
  }
  long late = (long)(rlt_now_ms() - t->submitted_at[s->i]);
  long prev = atomic_load(&t->late_ms);
  while (late > prev && !atomic_compare_exchange_weak(&t->late_ms, &prev, late))
    ;
  atomic_fetch_add(&t->done, 1);
}

static tally *tally_new(void) {
  tally *t = calloc(1, sizeof *t);
  assert_non_null(t);
  for (int i = 0; i < MAX_REQS; i++) {
    slots[i].t = t;
    slots[i].i = i;
  }
  return t;
}

/* Submits n requests on key; returns how many were accepted (RL_OK). */
static int submit(rl_limiter *rl, tally *t, int n, const char *key) {
  int accepted = 0;
  for (int i = 0; i < n; i++) {
    rl_request req = {NULL, 0, key, strlen(key), 1};
    t->submitted_at[i] = rlt_now_ms();
    int rc = rl_decide_async(rl, &req, on_decision, &slots[i]);
    if (rc == RL_OK) {
      accepted++;
    } else {
      atomic_store(&t->calls[i], -1000); /* must stay: no callback */
    }
  }
  return accepted;
}

static void wait_done(tally *t, int n, int64_t ms) {
  int64_t until = rlt_now_ms() + ms;
  while (atomic_load(&t->done) < n && rlt_now_ms() < until) {
    rlt_sleep_ms(1);
  }
  assert_int_equal(atomic_load(&t->done), n);
}

static void assert_once(tally *t, int n) {
  assert_int_equal(atomic_load(&t->bad), 0);
  for (int i = 0; i < n; i++) {
    int c = atomic_load(&t->calls[i]);
    if (c != 1 && c != -1000) {
      fail_msg("request %d: %d callbacks", i, c);
    }
  }
}

static rl_limiter *limiter(uint64_t limit, uint32_t timeout_ms) {
  rl_window w = {limit, 60000, 0};
  static rl_policy p;
  p = rlt_policy(NULL, RL_ALG_FIXED_WINDOW, 1, &w);
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &srv, &p, 1);
  c.redis.timeout_ms = timeout_ms;
  c.redis.pool_size = 2;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  assert_int_equal(rl_wait_ready(rl, 5000, NULL, 0), RL_OK);
  return rl;
}

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

static void flushall(void) {
  assert_int_equal(rlt_redis_cmd(&srv, NULL, 0, 1, "FLUSHALL", NULL), 0);
}

/* ---- memory store ------------------------------------------------------- */

typedef struct sync_seen {
  int calls;
  int allowed;
} sync_seen;

static void on_memory(int err, const rl_decision *d, void *ud) {
  sync_seen *s = ud;
  assert_int_equal(err, RL_OK);
  assert_int_equal(d->source, RL_SOURCE_MEMORY);
  s->calls++;
  s->allowed += d->allowed;
}

static void test_memory_store_calls_back_before_returning(void **state) {
  (void)state;
  fake_clock clock = {1000};
  rl_window w = {2, 1000, 0};
  rl_limiter *rl = limiter_with(RL_ALG_FIXED_WINDOW, &clock, 1, &w);
  sync_seen seen = {0, 0};
  rl_request req = {NULL, 0, "k", 1, 1};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(rl_decide_async(rl, &req, on_memory, &seen), RL_OK);
    assert_int_equal(seen.calls, i + 1);
  }
  assert_int_equal(seen.allowed, 2);
  req.cost = 0;
  assert_int_equal(rl_decide_async(rl, &req, on_memory, &seen),
                   RL_ERR_COST_INVALID);
  assert_int_equal(rl_decide_async(rl, &req, NULL, &seen),
                   RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(rl_decide_async(NULL, &req, on_memory, &seen),
                   RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(seen.calls, 3);
  assert_int_equal(rl_wait_ready(rl, 0, NULL, 0), RL_OK);
  rl_free(rl);
}

/* ---- Redis -------------------------------------------------------------- */

static void test_exactly_once(void **state) {
  (void)state;
  flushall();
  rl_limiter *rl = limiter(1000, 5000);
  tally *t = tally_new();
  int accepted = submit(rl, t, MAX_REQS, "hot");
  assert_int_equal(accepted, MAX_REQS);
  wait_done(t, accepted, 20000);
  assert_once(t, MAX_REQS);
  assert_int_equal(atomic_load(&t->allowed), 1000); /* exact, no more */
  for (int i = 0; i < MAX_REQS; i++) {
    assert_int_equal(atomic_load(&t->err[i]), RL_OK);
  }
  rl_request bad = {NULL, 0, "", 0, 1};
  assert_int_equal(rl_decide_async(rl, &bad, on_decision, &slots[0]),
                   RL_ERR_KEY_EMPTY);
  rl_free(rl);
  assert_once(t, MAX_REQS);
  free(t);
}

/* A callback may chain another asynchronous decision, but a blocking one
 * is refused (it would stall the loop it waits for). */
typedef struct chain {
  rl_limiter *rl;
  atomic_int steps;
  atomic_int sync_rc;
  atomic_int bad;
} chain;

static void on_chain(int err, const rl_decision *d, void *ud) {
  chain *c = ud;
  (void)d;
  rl_decision sd;
  atomic_store(&c->sync_rc, rl_allow(c->rl, "x", 1, &sd));
  if (err != RL_OK) {
    atomic_fetch_add(&c->bad, 1);
  } else if (atomic_fetch_add(&c->steps, 1) < 9) {
    rl_request req = {NULL, 0, "x", 1, 1};
    if (rl_decide_async(c->rl, &req, on_chain, c) != RL_OK) {
      atomic_fetch_add(&c->bad, 1);
    }
  }
}

static void test_chained_from_callback(void **state) {
  (void)state;
  rl_limiter *rl = limiter(1000, 5000);
  chain c = {rl, 0, -1, 0};
  rl_request req = {NULL, 0, "x", 1, 1};
  assert_int_equal(rl_decide_async(rl, &req, on_chain, &c), RL_OK);
  int64_t until = rlt_now_ms() + 10000;
  while (atomic_load(&c.steps) < 10 && rlt_now_ms() < until) {
    rlt_sleep_ms(1);
  }
  assert_int_equal(atomic_load(&c.steps), 10);
  assert_int_equal(atomic_load(&c.sync_rc), RL_ERR_INVALID_ARGUMENT);
  assert_int_equal(atomic_load(&c.bad), 0);
  rl_free(rl);
}

/* CLIENT PAUSE holds every reply: each callback fires with RL_ERR_TIMEOUT
 * at its deadline, once; the late replies are dropped. The blocking call
 * returns by its deadline too. */
static void test_timeout(void **state) {
  (void)state;
  rl_limiter *rl = limiter(100000, 100);
  tally *t = tally_new();
  char out[64];
  assert_int_equal(
      rlt_redis_cmd(&srv, out, sizeof out, 1, "CLIENT", "PAUSE", "600", NULL),
      0);
  int64_t t0 = rlt_now_ms();
  rl_decision d;
  assert_int_equal(rl_allow(rl, "paused", 6, &d), RL_ERR_TIMEOUT);
  int64_t took = rlt_now_ms() - t0;
  assert_true(took >= 95 && took < 100 + rlt_slack_ms());
  int accepted = submit(rl, t, 200, "paused");
  assert_int_equal(accepted, 200);
  wait_done(t, accepted, 2000);
  assert_true(atomic_load(&t->late_ms) < 100 + rlt_slack_ms());
  for (int i = 0; i < accepted; i++) {
    assert_int_equal(atomic_load(&t->err[i]), RL_ERR_TIMEOUT);
  }
  rlt_sleep_ms(700); /* the pause ends; the late replies arrive */
  assert_int_equal(rl_allow(rl, "paused", 6, &d), RL_OK);
  assert_once(t, accepted);
  rl__redis_store_stats st = rlt_store_stats(rl);
  assert_true(st.timeouts >= 201);
  rl_free(rl);
  assert_once(t, accepted);
  free(t);
}

/* rl_free() with requests in flight on a stopped server: every callback
 * fires once with RL_ERR_SHUTDOWN before rl_free() returns. */
static void test_shutdown_in_flight(void **state) {
  (void)state;
  rl_limiter *rl = limiter(100000, 10000);
  tally *t = tally_new();
  rlt_redis_pause(&srv);
  int accepted = submit(rl, t, 1000, "stopped");
  assert_int_equal(accepted, 1000);
  rlt_sleep_ms(20);
  assert_int_equal(atomic_load(&t->done), 0);
  int64_t t0 = rlt_now_ms();
  rl_free(rl);
  assert_true(rlt_now_ms() - t0 < 1000);
  assert_int_equal(atomic_load(&t->done), accepted);
  assert_once(t, accepted);
  for (int i = 0; i < accepted; i++) {
    assert_int_equal(atomic_load(&t->err[i]), RL_ERR_SHUTDOWN);
  }
  rlt_redis_resume(&srv);
  free(t);
}

/* Keys too long for a request record's inline buffer get a buffer of
 * their own, kept for reuse; the decisions are those of short keys. */
static void test_long_keys(void **state) {
  (void)state;
  flushall();
  rl_window w = {2, 60000, 0};
  static rl_policy p;
  p = rlt_policy(NULL, RL_ALG_FIXED_WINDOW, 1, &w);
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &srv, &p, 1);
  c.max_key_len = RL_KEY_MAX;
  c.redis.timeout_ms = 5000;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  tally *t = tally_new();
  static char key[RL_KEY_MAX];
  memset(key, 'x', sizeof key);
  int n = 0;
  for (size_t len = 100; len <= RL_KEY_MAX; len *= 2, n++) {
    for (int j = 0; j < 3; j++) { /* 2 admitted, 1 denied per key */
      rl_request req = {NULL, 0, key, len, 1};
      t->submitted_at[3 * n + j] = rlt_now_ms();
      assert_int_equal(
          rl_decide_async(rl, &req, on_decision, &slots[3 * n + j]), RL_OK);
    }
  }
  wait_done(t, 3 * n, 10000);
  assert_once(t, 3 * n);
  assert_int_equal(atomic_load(&t->allowed), 2 * n);
  rl_free(rl);
  free(t);
}

/* A server that accepts connections but answers nothing: rl_wait_ready()
 * times out with a message. */
static void test_wait_ready_timeout(void **state) {
  (void)state;
  rlt_redis_pause(&srv);
  rl_window w = {2, 60000, 0};
  rl_policy p = rlt_policy(NULL, RL_ALG_FIXED_WINDOW, 1, &w);
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &srv, &p, 1);
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  char err[256];
  assert_int_equal(rl_wait_ready(rl, 100, err, sizeof err), RL_ERR_TIMEOUT);
  print_message("paused: %s\n", err);
  assert_non_null(strstr(err, "no connection ready within 100 ms"));
  rlt_redis_resume(&srv);
  assert_int_equal(rl_wait_ready(rl, 5000, err, sizeof err), RL_OK);
  rl_free(rl);
}

/* Redis down: a request is either refused at once (no callback) or
 * accepted and answered once with an error. */
static void test_down(void **state) {
  (void)state;
  rlt_redis dead;
  assert_int_equal(rlt_redis_start(&dead, NULL), 0);
  rlt_redis_stop(&dead);
  rl_window w = {10, 1000, 0};
  rl_policy p = rlt_policy(NULL, RL_ALG_FIXED_WINDOW, 1, &w);
  rl_config c;
  rlt_addr addr;
  rlt_redis_config(&c, &addr, &dead, &p, 1);
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  tally *t = tally_new();
  int accepted = submit(rl, t, 500, "k");
  wait_done(t, accepted, 2000);
  print_message("down: %d of 500 accepted, then failed\n", accepted);
  for (int i = 0; i < 500; i++) {
    int calls = atomic_load(&t->calls[i]);
    assert_true(calls == -1000 ||
                (calls == 1 && atomic_load(&t->err[i]) != RL_OK));
  }
  rl_free(rl);
  assert_once(t, 500);
  free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_memory_store_calls_back_before_returning),
      cmocka_unit_test(test_exactly_once),
      cmocka_unit_test(test_chained_from_callback),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_shutdown_in_flight),
      cmocka_unit_test(test_long_keys),
      cmocka_unit_test(test_wait_ready_timeout),
      cmocka_unit_test(test_down),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
