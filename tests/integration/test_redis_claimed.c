/*
 * test_redis_claimed.c - the caller-read exchange of blocking calls
 * (redis_conn.c, "Caller-read exchange") against real redis-server
 * processes: an idle connection's caller sends and reads itself; a caller
 * that gives up leaves its late reply to the loop without shifting any
 * later reply; a server killed under a claim fails the call at once and
 * the node reconnects; blocking and pipelined calls mixed on one connection
 * each get their own reply.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_node_fixture.h"

/* pool 1: every thread on one connection */
static int setup(void **state) {
  return rlt_node_fixture_setup(state, 1, 0, NULL, 0);
}

static int teardown(void **state) {
  return rlt_node_fixture_teardown(state);
}

static uint64_t claimed(fixture *f) {
  rl__redis_node_stats st;
  rl__redis_node_stats_get(f->node, &st);
  return st.claimed;
}

static long long incr(fixture *f, const char *key, int64_t ms, int *rc) {
  rlt_reply r;
  memset(&r, 0, sizeof(r));
  *rc = rlt_call(f->node, &r, ms, "INCR", key, NULL);
  return r.integer;
}

/* One thread, one connection: every call is claimed, replies in order. */
static void test_idle_caller_claims(void **state) {
  fixture *f = *state;
  uint64_t before = claimed(f);
  for (long long i = 1; i <= 200; i++) {
    int rc;
    assert_int_equal(incr(f, "claim:seq", 1000, &rc), i);
    assert_int_equal(rc, RL_OK);
  }
  /* a call finding the loop still in its read of the previous edge (a
   * late-scheduled loop thread) takes the usual path: a few may */
  uint64_t n = claimed(f) - before;
  print_message("%llu of 200 calls claimed\n", (unsigned long long)n);
  assert_true(n >= 180);
}

/* A claimed call times out (server stopped); its INCR still runs when the
 * server resumes. The next call must get its own reply (3), not the late
 * one (2), and the connection is kept. */
static void test_late_reply_goes_to_the_loop(void **state) {
  fixture *f = *state;
  int rc;
  assert_int_equal(incr(f, "claim:late", 1000, &rc), 1);
  rl__redis_node_stats st0, st1;
  rlt_sleep_ms(20); /* the loop is done with the last edge: a claim */
  rl__redis_node_stats_get(f->node, &st0);
  rlt_redis_pause(&f->srv);
  int64_t t0 = rlt_now_ms();
  incr(f, "claim:late", 50, &rc);
  int64_t took = rlt_now_ms() - t0;
  assert_int_equal(rc, RL_ERR_TIMEOUT);
  assert_true(took >= 50 && took <= 50 + rlt_slack_ms());
  rlt_redis_resume(&f->srv);
  assert_int_equal(incr(f, "claim:late", 2000, &rc), 3);
  assert_int_equal(rc, RL_OK);
  assert_int_equal(incr(f, "claim:late", 2000, &rc), 4);
  rl__redis_node_stats_get(f->node, &st1);
  assert_int_equal(st1.conn_lost, st0.conn_lost);
  /* the timed-out call was claimed, so its claimer counted the timeout
   * (an unclaimed one is counted by the loop, maybe only later) */
  assert_true(st1.claimed >= st0.claimed + 1);
  assert_true(st1.timeouts >= st0.timeouts + 1);
  print_message("late reply matched by the loop, %llu claimed calls\n",
                (unsigned long long)(st1.claimed - st0.claimed));
}

typedef struct killer {
  rlt_redis *srv;
} killer;

static void *kill_soon(void *arg) {
  killer *k = arg;
  rlt_sleep_ms(100);
  rlt_redis_kill(k->srv);
  return NULL;
}

/* The server dies while a caller waits on its claimed socket: the call
 * fails at once (not at its 5 s deadline) and the node reconnects after a
 * restart. */
static void test_server_killed_under_claim(void **state) {
  fixture *f = *state;
  int rc;
  assert_int_equal(incr(f, "claim:kill", 1000, &rc), 1);
  rlt_redis_pause(&f->srv);
  killer k = {&f->srv};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, kill_soon, &k), 0);
  rlt_sleep_ms(20); /* the loop is done with the last edge: a claim */
  uint64_t before = claimed(f);
  int64_t t0 = rlt_now_ms();
  incr(f, "claim:kill", 5000, &rc);
  int64_t took = rlt_now_ms() - t0;
  pthread_join(th, NULL);
  assert_int_equal(rc, RL_ERR_BACKEND_UNAVAILABLE);
  assert_int_equal(claimed(f) - before, 1);
  assert_true(took < 1000 + rlt_slack_ms());
  char err[128];
  rl__redis_node_errstr(f->node, err, sizeof(err));
  print_message("failed after %lld ms: %s\n", (long long)took, err);
  /* FIN, or RST when the dead server had unread bytes */
  assert_true(strstr(err, "closed by server") != NULL ||
              strstr(err, "reset by peer") != NULL);
  assert_int_equal(rlt_redis_restart(&f->srv), 0);
  int64_t t1 = rlt_now_ms();
  while (incr(f, "claim:kill", 200, &rc),
         rc != RL_OK && rlt_now_ms() - t1 < 5000)
    rlt_sleep_ms(5);
  assert_int_equal(rc, RL_OK);
}

/* ---- blocking and pipelined calls mixed on one connection --------------- */

enum { N_SYNC = 4, N_CALLS = 1500, N_ASYNC = 3000 };

typedef struct sync_worker {
  rl__redis_node *node;
  int id;
  int mismatches;
} sync_worker;

static void *sync_main(void *arg) {
  sync_worker *w = arg;
  char key[32];
  snprintf(key, sizeof(key), "claim:mix:%d", w->id);
  for (long long i = 1; i <= N_CALLS; i++) {
    rlt_reply r;
    if (rlt_call(w->node, &r, 10000, "INCR", key, NULL) != RL_OK ||
        r.integer != i)
      w->mismatches++;
  }
  rl__redis_thread_cleanup();
  return NULL;
}

typedef struct async_state {
  atomic_int done, mismatches;
} async_state;

/* tag = the value INCR must return */
static void async_cb(int status, const rl__redis_reply *r, void *ud,
                     uint64_t tag) {
  async_state *a = ud;
  if (!rlt_incr_matches(status, r, tag))
    atomic_fetch_add(&a->mismatches, 1);
  atomic_fetch_add(&a->done, 1);
}

static void test_mixed_with_pipelined_calls(void **state) {
  fixture *f = *state;
  sync_worker w[N_SYNC];
  pthread_t th[N_SYNC];
  async_state a;
  atomic_init(&a.done, 0);
  atomic_init(&a.mismatches, 0);
  uint64_t before = claimed(f);
  for (int i = 0; i < N_SYNC; i++) {
    w[i] = (sync_worker){f->node, i, 0};
    assert_int_equal(pthread_create(&th[i], NULL, sync_main, &w[i]), 0);
  }
  rlt_cmd c;
  const rl__redis_args *args = rlt_cmd_make(&c, "INCR", "claim:mix:a", NULL);
  for (int seq = 1; seq <= N_ASYNC; seq++) {
    while (seq - 1 - atomic_load(&a.done) >= 8)
      sched_yield();
    assert_int_equal(rl__redis_node_submit(f->node, args, rlt_deadline(10000),
                                           async_cb, &a, (uint64_t)seq),
                     RL_OK);
  }
  for (int i = 0; i < N_SYNC; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(w[i].mismatches, 0);
  }
  while (atomic_load(&a.done) < N_ASYNC)
    rlt_sleep_ms(1);
  assert_int_equal(atomic_load(&a.mismatches), 0);
  uint64_t n = claimed(f) - before;
  print_message("%llu of %d blocking calls claimed\n", (unsigned long long)n,
                N_SYNC * N_CALLS);
  assert_true(n > 0);
  assert_true(n < (uint64_t)N_SYNC * N_CALLS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_idle_caller_claims, setup, teardown),
      cmocka_unit_test_setup_teardown(test_late_reply_goes_to_the_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_server_killed_under_claim, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_mixed_with_pipelined_calls, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
