/*
 * test_redis_conn.c - the Redis connection layer against real redis-server
 * processes: commands and reply types, exactly-once callbacks under 64
 * threads, pipelining, deadlines (DEBUG SLEEP, CLIENT PAUSE, SIGSTOP),
 * connection loss and reconnect with script reload, queue bounds, shutdown
 * with requests in flight, a shared loop, and a stuck loop.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "test_util.h"

#include "harness/redis_node_fixture.h"

static const char *const incr_script = "return redis.call('INCR', KEYS[1])";

/* A server and a node of pool connections and queue_max (0: default). */
static int setup_node(void **state, unsigned pool, unsigned queue_max) {
  return rlt_node_fixture_setup(state, pool, queue_max, &incr_script, 1);
}

static int setup(void **state) {
  return setup_node(state, 2, 0);
}

static int setup_pool1(void **state) {
  return setup_node(state, 1, 4);
}

static int setup_one_conn(void **state) {
  return setup_node(state, 1, 0);
}

static int teardown(void **state) {
  return rlt_node_fixture_teardown(state);
}

/* ---- an async call whose callback is counted --------------------------- */

typedef struct slot {
  atomic_int calls;
  int status;
  long long value;
  int64_t at_ms;
} slot;

static void slot_cb(int status, const rl__redis_reply *r, void *ud,
                    uint64_t tag) {
  slot *s = ud;
  (void)tag;
  s->status = status;
  s->value = r && r->type == RL__REPLY_INTEGER ? r->integer : -1;
  s->at_ms = rlt_now_ms();
  atomic_fetch_add(&s->calls, 1);
}

static int submit(rl__redis_node *node, slot *s, int64_t deadline_ms, ...) {
  rlt_cmd c;
  va_list ap;
  va_start(ap, deadline_ms);
  rlt_cmd_vmake(&c, ap);
  va_end(ap);
  return rl__redis_node_submit(node, &c.args, rlt_deadline(deadline_ms),
                               slot_cb, s, 0);
}

/* Waits until every slot got its callback; returns how many did. */
static int wait_slots(slot *s, int n, int64_t timeout_ms) {
  int64_t until = rlt_now_ms() + timeout_ms;
  int done = 0;
  while (rlt_now_ms() < until) {
    done = 0;
    for (int i = 0; i < n; i++)
      done += atomic_load(&s[i].calls) > 0;
    if (done == n)
      break;
    rlt_sleep_ms(1);
  }
  return done;
}

static void assert_each_once(slot *s, int n) {
  for (int i = 0; i < n; i++)
    assert_int_equal(atomic_load(&s[i].calls), 1);
}

/* ---- basic commands ----------------------------------------------------- */

static void test_basic_commands(void **state) {
  fixture *f = *state;
  rlt_reply r;
  assert_int_equal(rlt_call(f->node, &r, 1000, "PING", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_STATUS);
  assert_string_equal(r.str, "PONG");
  assert_int_equal(rlt_call(f->node, &r, 1000, "SET", "k", "v1", NULL), RL_OK);
  assert_string_equal(r.str, "OK");
  assert_int_equal(rlt_call(f->node, &r, 1000, "GET", "k", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_STRING);
  assert_string_equal(r.str, "v1");
  assert_int_equal(rlt_call(f->node, &r, 1000, "GET", "missing", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_NIL);
  assert_int_equal(rlt_call(f->node, &r, 1000, "INCR", "n", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_INTEGER);
  assert_int_equal(r.integer, 1);
  assert_int_equal(rlt_call(f->node, &r, 1000, "INCR", "k", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_ERROR);
  assert_non_null(strstr(r.str, "not an integer"));
}

static void test_eval_arrays(void **state) {
  fixture *f = *state;
  rlt_reply r;
  assert_int_equal(rlt_call(f->node, &r, 1000, "EVAL",
                            "return {1, 'two', {3, 4, 5}, false, -7}", "0",
                            NULL),
                   RL_OK);
  assert_int_equal(r.type, RL__REPLY_ARRAY);
  assert_int_equal(r.elements, 5);
  assert_int_equal(r.el_type[0], RL__REPLY_INTEGER);
  assert_int_equal(r.el_int[0], 1);
  assert_string_equal(r.el_str[1], "two");
  assert_int_equal(r.el_type[2], RL__REPLY_ARRAY);
  assert_int_equal(r.el_elements[2], 3);
  assert_int_equal(r.el_type[3], RL__REPLY_NIL);
  assert_int_equal(r.el_int[4], -7);
  /* the script loaded by the handshake runs by SHA */
  const char *sha = rl__redis_node_script_sha(f->node, 0);
  assert_non_null(sha);
  assert_int_equal(strlen(sha), 40);
  assert_int_equal(
      rlt_call(f->node, &r, 1000, "EVALSHA", sha, "1", "rl:x", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_INTEGER);
  assert_int_equal(r.integer, 1);
  assert_null(rl__redis_node_script_sha(f->node, 1));
}

static void test_large_values(void **state) {
  fixture *f = *state;
  size_t len = (size_t)1 << 20;
  char *big = malloc(len + 1);
  for (size_t i = 0; i < len; i++)
    big[i] = (char)('a' + i % 26);
  big[len] = '\0';
  rlt_reply r;
  assert_int_equal(rlt_call(f->node, &r, 3000, "SET", "big", big, NULL), RL_OK);
  assert_int_equal(rlt_call(f->node, &r, 3000, "STRLEN", "big", NULL), RL_OK);
  assert_int_equal(r.integer, (long long)len);
  assert_int_equal(rlt_call(f->node, &r, 3000, "GET", "big", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_STRING);
  assert_memory_equal(r.str, big, sizeof(r.str) - 1);
  free(big);
}

/* ---- 64 threads: exactly once, in order, matched ------------------------ */

#define N_THREADS 64
#define N_OPS 300
#define WINDOW 16

typedef struct worker {
  rl__redis_node *node;
  int id;
  atomic_int done;
  atomic_int mismatches;
  atomic_int calls[N_OPS + 1];
  int final_ok;
} worker;

/* tag = the value INCR must return: checks matching and per-thread order */
static void worker_cb(int status, const rl__redis_reply *r, void *ud,
                      uint64_t tag) {
  worker *w = ud;
  if (!rlt_incr_matches(status, r, tag))
    atomic_fetch_add(&w->mismatches, 1);
  atomic_fetch_add(&w->calls[tag], 1);
  atomic_fetch_add(&w->done, 1);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  char key[32];
  snprintf(key, sizeof(key), "rl:t:%d", w->id);
  rlt_cmd c;
  const rl__redis_args *args = rlt_cmd_make(&c, "INCR", key, NULL);
  for (int seq = 1; seq <= N_OPS; seq++) {
    while (seq - 1 - atomic_load(&w->done) >= WINDOW)
      sched_yield();
    int rc = rl__redis_node_submit(w->node, args, rlt_deadline(10000),
                                   worker_cb, w, (uint64_t)seq);
    if (rc != RL_OK)
      atomic_fetch_add(&w->mismatches, 1000);
  }
  while (atomic_load(&w->done) < N_OPS)
    sched_yield();
  rlt_reply r;
  w->final_ok = rlt_call(w->node, &r, 5000, "GET", key, NULL) == RL_OK &&
                atoll(r.str) == N_OPS;
  rl__redis_thread_cleanup();
  return NULL;
}

static void test_threads_exactly_once(void **state) {
  fixture *f = *state;
  static worker workers[N_THREADS];
  pthread_t th[N_THREADS];
  memset(workers, 0, sizeof(workers));
  for (int i = 0; i < N_THREADS; i++) {
    workers[i].node = f->node;
    workers[i].id = i;
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &workers[i]), 0);
  }
  for (int i = 0; i < N_THREADS; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < N_THREADS; i++) {
    assert_int_equal(atomic_load(&workers[i].mismatches), 0);
    assert_int_equal(atomic_load(&workers[i].done), N_OPS);
    for (int s = 1; s <= N_OPS; s++)
      assert_int_equal(atomic_load(&workers[i].calls[s]), 1);
    assert_true(workers[i].final_ok);
  }
}

/* ---- pipelining --------------------------------------------------------- */

static void test_pipelining_coalesces(void **state) {
  fixture *f = *state;
  enum { N = 2000 };
  static slot s[N];
  memset(s, 0, sizeof(s));
  rl__redis_node_stats before, after;
  rl__redis_node_stats_get(f->node, &before);
  for (int i = 0; i < N; i++)
    assert_int_equal(submit(f->node, &s[i], 10000, "PING", NULL), RL_OK);
  assert_int_equal(wait_slots(s, N, 10000), N);
  assert_each_once(s, N);
  rl__redis_node_stats_get(f->node, &after);
  uint64_t cmds = after.commands - before.commands;
  uint64_t writes = after.writes - before.writes;
  print_message("pipelining: %llu commands in %llu write() calls\n",
                (unsigned long long)cmds, (unsigned long long)writes);
  assert_int_equal(cmds, N);
  assert_true(writes * 4 <= cmds);
}

/* ---- deadlines ---------------------------------------------------------- */

/* Submits n async GETs and one blocking call, all with a 50 ms deadline,
 * while the server does not answer; checks each ends in time. */
static void expect_timeouts(fixture *f, const char *cmd, const char *key) {
  enum { N = 20, DEADLINE = 50 };
  slot s[N];
  memset(s, 0, sizeof(s));
  int64_t t0 = rlt_now_ms(), slack = rlt_slack_ms();
  for (int i = 0; i < N; i++)
    assert_int_equal(submit(f->node, &s[i], DEADLINE, cmd, key, NULL), RL_OK);
  int64_t t1 = rlt_now_ms();
  int rc = rlt_call(f->node, NULL, DEADLINE, cmd, key, NULL);
  int64_t blocked = rlt_now_ms() - t1;
  assert_int_equal(rc, RL_ERR_TIMEOUT);
  assert_true(blocked >= DEADLINE - 1 && blocked <= DEADLINE + slack);
  assert_int_equal(wait_slots(s, N, DEADLINE + slack), N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(s[i].status, RL_ERR_TIMEOUT);
    assert_true(s[i].at_ms - t0 >= DEADLINE - 1);
    assert_true(s[i].at_ms - t0 <= DEADLINE + slack);
  }
  rlt_sleep_ms(600); /* the late replies arrive and are dropped */
  assert_each_once(s, N);
}

static void test_deadline_debug_sleep(void **state) {
  fixture *f = *state;
  rlt_reply r;
  assert_int_equal(rlt_call(f->node, &r, 1000, "SET", "k", "v", NULL), RL_OK);
  assert_int_equal(
      rlt_redis_cmd(&f->srv, NULL, 0, 0, "DEBUG", "SLEEP", "0.5", NULL), 0);
  rlt_sleep_ms(20);
  expect_timeouts(f, "GET", "k");
  /* replies are still matched to the right requests afterwards */
  assert_int_equal(rlt_call(f->node, &r, 1000, "GET", "k", NULL), RL_OK);
  assert_string_equal(r.str, "v");
  rl__redis_node_stats st;
  rl__redis_node_stats_get(f->node, &st);
  assert_true(st.timeouts >= 21);
  assert_int_equal(st.conn_lost, 0);
}

static void test_deadline_client_pause(void **state) {
  fixture *f = *state;
  char line[64];
  assert_int_equal(rlt_redis_cmd(&f->srv, line, sizeof(line), 1, "CLIENT",
                                 "PAUSE", "500", "WRITE", NULL),
                   0);
  expect_timeouts(f, "INCR", "paused");
  /* the 21 late INCRs were executed and their replies dropped */
  rlt_reply r;
  assert_int_equal(rlt_call(f->node, &r, 1000, "INCR", "paused", NULL), RL_OK);
  assert_int_equal(r.integer, 22);
}

static void test_deadline_sigstop(void **state) {
  fixture *f = *state;
  rlt_redis_pause(&f->srv);
  expect_timeouts(f, "GET", "k");
  rlt_redis_resume(&f->srv);
  rlt_reply r;
  assert_int_equal(rlt_call(f->node, &r, 2000, "PING", NULL), RL_OK);
  assert_string_equal(r.str, "PONG");
}

/* ---- connection loss ---------------------------------------------------- */

static void test_killed_then_reconnect(void **state) {
  fixture *f = *state;
  rlt_reply r;
  assert_int_equal(rlt_call(f->node, &r, 1000, "PING", NULL), RL_OK);
  rlt_redis_kill(&f->srv);
  int64_t t0 = rlt_now_ms();
  int rc = rlt_call(f->node, &r, 5000, "PING", NULL);
  assert_int_equal(rc, RL_ERR_BACKEND_UNAVAILABLE);
  assert_true(rlt_now_ms() - t0 <= 50 + rlt_slack_ms());
  char err[128];
  rl__redis_node_errstr(f->node, err, sizeof(err));
  print_message("after kill: %s\n", err);
  assert_true(err[0] != '\0');
  assert_int_equal(rlt_redis_restart(&f->srv), 0);
  int64_t t1 = rlt_now_ms();
  while (rlt_call(f->node, &r, 200, "PING", NULL) != RL_OK &&
         rlt_now_ms() - t1 < 5000)
    rlt_sleep_ms(5);
  print_message("reconnected %lld ms after restart\n",
                (long long)(rlt_now_ms() - t1));
  assert_true(rlt_now_ms() - t1 < 2000 + rlt_slack_ms());
  /* a new server process: the handshake loaded the script again */
  const char *sha = rl__redis_node_script_sha(f->node, 0);
  assert_int_equal(
      rlt_call(f->node, &r, 1000, "EVALSHA", sha, "1", "rl:k", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_INTEGER);
}

static void test_script_reloaded_on_reconnect(void **state) {
  fixture *f = *state;
  const char *sha = rl__redis_node_script_sha(f->node, 0);
  rlt_reply r;
  char line[128];
  rl__redis_node_stats st0, st1;
  rl__redis_node_stats_get(f->node, &st0);
  assert_int_equal(
      rlt_redis_cmd(&f->srv, line, sizeof(line), 1, "SCRIPT", "FLUSH", NULL),
      0);
  assert_int_equal(
      rlt_call(f->node, &r, 1000, "EVALSHA", sha, "1", "rl:a", NULL), RL_OK);
  assert_int_equal(r.type, RL__REPLY_ERROR); /* NOSCRIPT */
  assert_non_null(strstr(r.str, "NOSCRIPT"));
  assert_int_equal(rlt_redis_cmd(&f->srv, line, sizeof(line), 1, "CLIENT",
                                 "KILL", "TYPE", "normal", NULL),
                   0);
  int64_t t0 = rlt_now_ms();
  int rc;
  while ((rc = rlt_call(f->node, &r, 500, "EVALSHA", sha, "1", "rl:a", NULL)) !=
             RL_OK ||
         r.type != RL__REPLY_INTEGER) {
    assert_true(rlt_now_ms() - t0 < 3000);
    rlt_sleep_ms(5);
  }
  do { /* both pool connections come back, each with its own SCRIPT LOAD */
    assert_true(rlt_now_ms() - t0 < 3000);
    rlt_sleep_ms(1);
    rl__redis_node_stats_get(f->node, &st1);
  } while (st1.connects < st0.connects + 2);
  assert_true(st1.conn_lost >= st0.conn_lost + 2);
}

/* Scripts larger than max_out_bytes still load, also on a reconnect after
 * traffic (the loop swaps its buffers; each keeps its own cap). */
static void test_big_handshake_after_reconnect(void **state) {
  fixture *f = *state;
  static char big[3000];
  const char *scripts[1] = {big};
  memset(big, ' ', sizeof(big) - 1);
  memcpy(big, "return 7 --", 11);
  big[sizeof(big) - 1] = '\0';
  rl__redis_node_opts o;
  rl__redis_node *node;
  rlt_node_opts(&o, &f->srv);
  o.pool_size = 1;
  o.max_out_bytes = 1024;
  o.scripts = scripts;
  o.n_scripts = 1;
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, NULL, 0), RL_OK);
  rlt_reply r;
  for (int i = 0; i < 3; i++) {
    int64_t t0 = rlt_now_ms();
    while (rlt_call(node, &r, 500, "EVALSHA",
                    rl__redis_node_script_sha(node, 0), "0", NULL) != RL_OK)
      assert_true(rlt_now_ms() - t0 < 3000);
    assert_int_equal(r.integer, 7);
    char line[64];
    assert_int_equal(rlt_redis_cmd(&f->srv, line, sizeof(line), 1, "CLIENT",
                                   "KILL", "TYPE", "normal", NULL),
                     0);
  }
  rl__redis_node_free(node);
}

static void test_refused(void **state) {
  (void)state;
  rl__redis_node_opts o;
  rl__redis_node *node;
  rlt_redis dead;
  assert_int_equal(rlt_redis_start(&dead, NULL), 0);
  rlt_node_opts(&o, &dead);
  rlt_redis_stop(&dead); /* nothing listens on that port now */
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, NULL, 0), RL_OK);
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rl__redis_node_wait_ready(node, rlt_deadline(5000)),
                   RL_ERR_BACKEND_UNAVAILABLE);
  assert_true(rlt_now_ms() - t0 < 100 + rlt_slack_ms());
  char err[128];
  rl__redis_node_errstr(node, err, sizeof(err));
  assert_non_null(strstr(err, "refused"));
  t0 = rlt_now_ms();
  assert_int_equal(rlt_call(node, NULL, 5000, "PING", NULL),
                   RL_ERR_BACKEND_UNAVAILABLE);
  assert_true(rlt_now_ms() - t0 < 50 + rlt_slack_ms());
  rl__redis_node_free(node);
}

static void expect_errstr(rl__redis_node *node, const char *needle) {
  char err[128];
  assert_non_null(
      strstr(rl__redis_node_errstr(node, err, sizeof(err)), needle));
}

/* The paused server answers again: node reconnects within 3 s. Frees
 * node. */
static void resume_and_reconnect(fixture *f, rl__redis_node *node) {
  rlt_redis_resume(&f->srv);
  int64_t t0 = rlt_now_ms();
  while (rlt_call(node, NULL, 200, "PING", NULL) != RL_OK) {
    assert_true(rlt_now_ms() - t0 < 3000);
    rlt_sleep_ms(5);
  }
  rl__redis_node_free(node);
}

static void test_stall_reconnects(void **state) {
  fixture *f = *state;
  rl__redis_node_opts o;
  rl__redis_node *node;
  rlt_node_opts(&o, &f->srv);
  o.pool_size = 1;
  o.stall_timeout_ms = 200;
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, NULL, 0), RL_OK);
  assert_int_equal(rlt_call(node, NULL, 2000, "PING", NULL), RL_OK);
  rlt_redis_pause(&f->srv); /* a hung server: the socket stays open */
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rlt_call(node, NULL, 50, "PING", NULL), RL_ERR_TIMEOUT);
  rl__redis_node_stats st;
  do {
    assert_true(rlt_now_ms() - t0 < 250 + 4 * rlt_slack_ms());
    rlt_sleep_ms(2);
    rl__redis_node_stats_get(node, &st);
  } while (st.conn_lost == 0);
  print_message("stall detected after %lld ms\n",
                (long long)(rlt_now_ms() - t0));
  expect_errstr(node, "stall_timeout");
  resume_and_reconnect(f, node);
}

static void test_connect_timeout(void **state) {
  fixture *f = *state;
  rl__redis_node_opts o;
  rl__redis_node *node;
  rlt_node_opts(&o, &f->srv);
  o.pool_size = 1;
  o.connect_timeout_ms = 150;
  o.scripts = &incr_script; /* the handshake needs an answer */
  o.n_scripts = 1;
  rlt_redis_pause(&f->srv); /* the kernel accepts, nobody answers */
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, NULL, 0), RL_OK);
  assert_int_equal(rl__redis_node_wait_ready(node, rlt_deadline(5000)),
                   RL_ERR_BACKEND_UNAVAILABLE);
  int64_t took = rlt_now_ms() - t0;
  assert_true(took >= 140 && took <= 150 + rlt_slack_ms());
  expect_errstr(node, "connect timeout");
  resume_and_reconnect(f, node);
}

/* ---- bounds and shutdown ------------------------------------------------ */

static void test_queue_full(void **state) {
  fixture *f = *state; /* pool 1, queue_max 4 */
  slot s[5];
  memset(s, 0, sizeof(s));
  rlt_redis_pause(&f->srv);
  for (int i = 0; i < 4; i++)
    assert_int_equal(submit(f->node, &s[i], 5000, "PING", NULL), RL_OK);
  int64_t t0 = rlt_now_ms();
  assert_int_equal(submit(f->node, &s[4], 5000, "PING", NULL),
                   RL_ERR_BACKEND_UNAVAILABLE);
  assert_true(rlt_now_ms() - t0 <= 5);
  rlt_redis_resume(&f->srv);
  assert_int_equal(wait_slots(s, 4, 3000), 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(s[i].status, RL_OK);
  rlt_sleep_ms(20);
  assert_each_once(s, 4);
  assert_int_equal(atomic_load(&s[4].calls), 0); /* refused: never called */
  assert_int_equal(submit(f->node, &s[4], 5000, "PING", NULL), RL_OK);
  assert_int_equal(wait_slots(&s[4], 1, 3000), 1);
}

/* A server that reads nothing: the kernel buffers fill, writes go partial,
 * bytes queue in out and pend up to max_out_bytes, then submissions are
 * refused; everything accepted completes once the server reads again. */
static void test_backpressure_byte_cap(void **state) {
  fixture *f = *state;
  enum { N = 600, VAL = 64 * 1024 };
  static slot s[N];
  memset(s, 0, sizeof(s));
  rl__redis_node_opts o;
  rl__redis_node *node;
  rlt_node_opts(&o, &f->srv);
  o.pool_size = 1;
  o.max_out_bytes = (size_t)1 << 20;
  o.stall_timeout_ms = 0;
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, NULL, 0), RL_OK);
  assert_int_equal(rl__redis_node_wait_ready(node, rlt_deadline(5000)), RL_OK);
  char *val = malloc(VAL + 1);
  memset(val, 'v', VAL);
  val[VAL] = '\0';
  rlt_redis_pause(&f->srv);
  int accepted = 0, rc = RL_OK;
  for (; accepted < N; accepted++) {
    char key[32];
    snprintf(key, sizeof(key), "rl:bp:%d", accepted);
    rc = submit(node, &s[accepted], 20000, "SET", key, val, NULL);
    if (rc != RL_OK)
      break;
    rlt_sleep_ms(1); /* let the loop write and fill the socket */
  }
  print_message("byte cap reached after %d x 64 KiB\n", accepted);
  assert_int_equal(rc, RL_ERR_BACKEND_UNAVAILABLE);
  assert_true(accepted > 16 && accepted < N);
  rlt_redis_resume(&f->srv);
  assert_int_equal(wait_slots(s, accepted, 10000), accepted);
  for (int i = 0; i < accepted; i++)
    assert_int_equal(s[i].status, RL_OK);
  assert_each_once(s, accepted);
  rlt_reply r;
  char key[32];
  snprintf(key, sizeof(key), "rl:bp:%d", accepted - 1);
  assert_int_equal(rlt_call(node, &r, 2000, "STRLEN", key, NULL), RL_OK);
  assert_int_equal(r.integer, VAL);
  free(val);
  rl__redis_node_free(node);
}

static void test_shutdown_in_flight(void **state) {
  fixture *f = *state;
  enum { N = 200 };
  static slot s[N];
  memset(s, 0, sizeof(s));
  rlt_redis_pause(&f->srv);
  for (int i = 0; i < N; i++)
    assert_int_equal(submit(f->node, &s[i], 60000, "PING", NULL), RL_OK);
  rl__redis_node_free(f->node);
  f->node = NULL;
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&s[i].calls), 1);
    assert_int_equal(s[i].status, RL_ERR_SHUTDOWN);
  }
}

/* ---- shared loop, stuck loop ------------------------------------------- */

static void test_shared_loop_two_nodes(void **state) {
  fixture *f = *state;
  rl__redis_loop *loop;
  rl__redis_node *a, *b;
  rl__redis_node_opts o;
  rlt_redis other;
  assert_int_equal(rlt_redis_start(&other, NULL), 0);
  assert_int_equal(rl__redis_loop_new(&loop), RL_OK);
  rlt_node_opts(&o, &f->srv);
  assert_int_equal(rl__redis_node_new(loop, &o, &a, NULL, 0), RL_OK);
  rlt_node_opts(&o, &other);
  assert_int_equal(rl__redis_node_new(loop, &o, &b, NULL, 0), RL_OK);
  rlt_reply r;
  assert_int_equal(rlt_call(a, &r, 2000, "SET", "where", "a", NULL), RL_OK);
  assert_int_equal(rlt_call(b, &r, 2000, "SET", "where", "b", NULL), RL_OK);
  rl__redis_node_free(a); /* the other node keeps working */
  assert_int_equal(rlt_call(b, &r, 2000, "GET", "where", NULL), RL_OK);
  assert_string_equal(r.str, "b");
  assert_int_equal(rlt_call(f->node, &r, 2000, "GET", "where", NULL), RL_OK);
  assert_string_equal(r.str, "a");
  rl__redis_node_free(b);
  rl__redis_loop_free(loop);
  rlt_redis_stop(&other);
}

static void sleepy_cb(int status, const rl__redis_reply *r, void *ud,
                      uint64_t tag) {
  slot_cb(status, r, ud, tag);
  rlt_sleep_ms(300); /* blocks the loop thread */
}

static void test_blocking_call_with_stuck_loop(void **state) {
  fixture *f = *state; /* pool 1 */
  slot s;
  memset(&s, 0, sizeof(s));
  rlt_cmd c;
  assert_int_equal(rl__redis_node_submit(f->node,
                                         rlt_cmd_make(&c, "PING", NULL),
                                         rlt_deadline(1000), sleepy_cb, &s, 0),
                   RL_OK);
  while (atomic_load(&s.calls) == 0)
    rlt_sleep_ms(1);
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rlt_call(f->node, NULL, 50, "PING", NULL), RL_ERR_TIMEOUT);
  int64_t took = rlt_now_ms() - t0;
  assert_true(took >= 49 && took <= 50 + rlt_slack_ms());
  rlt_sleep_ms(350);
  rlt_reply r;
  assert_int_equal(rlt_call(f->node, &r, 1000, "PING", NULL), RL_OK);
}

static void call_from_cb(int status, const rl__redis_reply *r, void *ud,
                         uint64_t tag) {
  slot *s = ud; /* tag carries the node */
  (void)r;
  (void)status;
  s->value =
      rlt_call((rl__redis_node *)(uintptr_t)tag, NULL, 1000, "PING", NULL);
  atomic_fetch_add(&s->calls, 1);
}

static void test_blocking_call_refused_in_callback(void **state) {
  fixture *f = *state;
  slot s;
  memset(&s, 0, sizeof(s));
  rlt_cmd c;
  int64_t t0 = rlt_now_ms();
  assert_int_equal(rl__redis_node_submit(f->node,
                                         rlt_cmd_make(&c, "PING", NULL),
                                         rlt_deadline(1000), call_from_cb, &s,
                                         (uint64_t)(uintptr_t)f->node),
                   RL_OK);
  assert_int_equal(wait_slots(&s, 1, 2000), 1);
  assert_int_equal(s.value, RL_ERR_INVALID_ARGUMENT);
  assert_true(rlt_now_ms() - t0 < 100 + rlt_slack_ms()); /* no stall */
}

static void test_invalid_arguments(void **state) {
  fixture *f = *state;
  rl__redis_node_opts o;
  rl__redis_node *node = NULL;
  char err[128];
  static const struct {
    const char *field; /* set to an invalid value, named in the error */
  } bad[] = {{"host"},    {"pool_size"}, {"queue_max"},          {"scripts"},
             {"backoff"}, {"buffer"},    {"connect_timeout_ms"}, {"username"}};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    rl__redis_node_opts_init(&o);
    if (i == 0)
      o.host = "";
    o.pool_size = i == 1 ? 65 : o.pool_size;
    o.queue_max = i == 2 ? 0 : o.queue_max;
    o.n_scripts = i == 3 ? RL__REDIS_MAX_SCRIPTS + 1 : 0;
    o.backoff_min_ms = i == 4 ? 2000 : o.backoff_min_ms;
    o.max_out_bytes = i == 5 ? 10 : o.max_out_bytes;
    o.connect_timeout_ms = i == 6 ? 0 : o.connect_timeout_ms;
    o.username = i == 7 ? "user" : NULL;
    assert_int_equal(rl__redis_node_new(NULL, &o, &node, err, sizeof(err)),
                     RL_ERR_INVALID_ARGUMENT);
    if (strstr(err, bad[i].field) == NULL)
      fail_msg("case %zu: '%s' does not name %s", i, err, bad[i].field);
  }
  assert_int_equal(rl__redis_node_new(NULL, NULL, &node, err, sizeof(err)),
                   RL_ERR_INVALID_ARGUMENT);
  rl__redis_node_opts_init(&o);
  o.host = "no-such-host.invalid";
  assert_int_equal(rl__redis_node_new(NULL, &o, &node, err, sizeof(err)),
                   RL_ERR_CONFIG_INVALID);
  assert_null(node);
  rl__redis_args none = {0, NULL, NULL};
  slot s;
  assert_int_equal(
      rl__redis_node_submit(f->node, &none, rlt_deadline(10), slot_cb, &s, 0),
      RL_ERR_INVALID_ARGUMENT);
  rl__redis_node_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_basic_commands, setup, teardown),
      cmocka_unit_test_setup_teardown(test_eval_arrays, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_threads_exactly_once, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_pipelining_coalesces, setup_one_conn,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_deadline_debug_sleep, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_deadline_client_pause, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_deadline_sigstop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_killed_then_reconnect, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_script_reloaded_on_reconnect, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_big_handshake_after_reconnect, setup,
                                      teardown),
      cmocka_unit_test(test_refused),
      cmocka_unit_test_setup_teardown(test_stall_reconnects, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_queue_full, setup_pool1, teardown),
      cmocka_unit_test_setup_teardown(test_backpressure_byte_cap, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shared_loop_two_nodes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_blocking_call_with_stuck_loop,
                                      setup_one_conn, teardown),
      cmocka_unit_test_setup_teardown(test_blocking_call_refused_in_callback,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
