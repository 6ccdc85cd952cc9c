/*
 * test_alg_multi_window.c - unit tests of the dispatch and of
 * rl__policy_decide (src/algorithm.c against docs/Algorithms.md,
 * "Multi-window"): all-or-nothing, the binding window, retry_after as the
 * maximum over the denying windows, the expiry, and for all four
 * algorithms a random property check: retry_after is exact, a denial
 * commits nothing, and from the expiry on a state decides like a new one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "algorithm.h"

#define RND_SEED 0x6a09e667f3bcc909u
#include "test_rng.h"

#define STATE_MAX 1024

typedef struct pstate {
  _Alignas(8) unsigned char b[STATE_MAX];
} pstate;

/* A policy of n windows {limit, duration}; burst = limit unless given. */
static rl__policy_shape shape_of(rl_algorithm alg, size_t n,
                                 const uint64_t (*lw)[2], uint32_t slots) {
  rl__policy_shape sh;
  memset(&sh, 0, sizeof(sh));
  sh.algorithm = alg;
  sh.n_windows = n;
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    rl__window_params p = {lw[i][0], lw[i][1], lw[i][0], slots};
    sh.windows[i] = p;
    sh.state_offset[i] = off;
    off += rl__alg_state_size(alg, &p);
  }
  sh.state_size = off;
  assert_true(off <= STATE_MAX);
  return sh;
}

static rl_decision decide(const rl__policy_shape *sh, pstate *s, int64_t now,
                          uint64_t cost) {
  rl_decision d;
  memset(&d, 0, sizeof(d));
  (void)rl__policy_decide(sh, s->b, now, cost, &d);
  return d;
}

static rl_decision probe(const rl__policy_shape *sh, const pstate *s,
                         int64_t now, uint64_t cost) {
  pstate copy = *s;
  return decide(sh, &copy, now, cost);
}

static void expect(rl_decision d, int allowed, int window, uint64_t limit,
                   uint64_t remaining, uint64_t reset, uint64_t retry) {
  assert_int_equal(d.allowed, allowed);
  assert_int_equal(d.window, window);
  assert_int_equal(d.limit, limit);
  assert_int_equal(d.remaining, remaining);
  assert_int_equal(d.reset_after_ms, reset);
  assert_int_equal(d.retry_after_ms, retry);
}

static const rl_algorithm all_algs[4] = {
    RL_ALG_SLIDING_LOG, RL_ALG_SLIDING_COUNTER, RL_ALG_TOKEN_BUCKET,
    RL_ALG_FIXED_WINDOW};

static void test_dispatch(void **unused) {
  (void)unused;
  rl__window_params p = {10, 1000, 10, 4};
  assert_int_equal(rl__alg_state_size(RL_ALG_SLIDING_LOG, &p), 16 + 8 * 4);
  assert_int_equal(rl__alg_state_size(RL_ALG_SLIDING_COUNTER, &p), 24);
  assert_int_equal(rl__alg_state_size(RL_ALG_TOKEN_BUCKET, &p), 16);
  assert_int_equal(rl__alg_state_size(RL_ALG_FIXED_WINDOW, &p), 16);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(rl__alg_state_size(all_algs[i], &p) % 8, 0);
  }
  /* An unknown algorithm has no state, denies and commits nothing. */
  rl_algorithm bogus = (rl_algorithm)42;
  pstate s = {{0}};
  rl__verdict v;
  assert_int_equal(rl__alg_state_size(bogus, &p), 0);
  rl__alg_evaluate(bogus, &p, s.b, 5, 1, &v);
  assert_false(v.allowed);
  assert_int_equal(v.retry_after_ms, RL_RETRY_NEVER);
  rl__alg_commit(bogus, &p, s.b, 5, 1);
  assert_true(rl__alg_expiry(bogus, &p, s.b) == 0);
}

/* One window denies, so nothing is spent anywhere: the bytes do not move,
 * for every algorithm. */
static void test_denial_commits_nothing(void **unused) {
  (void)unused;
  const uint64_t lw[2][2] = {{100, 1000}, {3, 100}};
  for (int a = 0; a < 4; a++) {
    rl__policy_shape sh = shape_of(all_algs[a], 2, lw, 4);
    pstate s = {{0}};
    assert_true(decide(&sh, &s, 10, 3).allowed);
    pstate before = s;
    rl_decision d = decide(&sh, &s, 10, 1);
    assert_false(d.allowed);
    assert_int_equal(d.window, 1);
    assert_memory_equal(&before, &s, sizeof(s));
    /* Window 0 was charged 3, not 4. */
    rl__verdict v;
    rl__alg_evaluate(sh.algorithm, &sh.windows[0], s.b + sh.state_offset[0], 10,
                     0, &v);
    assert_int_equal(v.remaining, 97);
  }
}

static void test_binding_when_allowed(void **unused) {
  (void)unused;
  /* Fixed windows: after one unit 9, 4 and 4 are left: the first 4. */
  const uint64_t lw[3][2] = {{10, 1000}, {5, 100}, {5, 200}};
  rl__policy_shape sh = shape_of(RL_ALG_FIXED_WINDOW, 3, lw, 0);
  pstate s = {{0}};
  expect(decide(&sh, &s, 50, 1), 1, 1, 5, 4, 50, 0);
  expect(decide(&sh, &s, 150, 1), 1, 2, 5, 3, 50, 0);
  expect(decide(&sh, &s, 1050, 3), 1, 1, 5, 2, 50, 0);
}

/* The denying window with the largest retry_after binds (ties: lowest
 * index); an admitting window never does. */
static void test_binding_when_denied(void **unused) {
  (void)unused;
  const uint64_t lw[4][2] = {{100, 10000}, {1, 100}, {1, 50}, {1, 100}};
  rl__policy_shape sh = shape_of(RL_ALG_FIXED_WINDOW, 4, lw, 0);
  pstate s = {{0}};
  assert_true(decide(&sh, &s, 0, 1).allowed);
  expect(decide(&sh, &s, 10, 1), 0, 1, 1, 0, 90, 90);
  expect(decide(&sh, &s, 60, 1), 0, 1, 1, 0, 40, 40); /* window 2 is new */
  assert_true(decide(&sh, &s, 100, 1).allowed);
  /* Sliding log: window 1 denies at 1, window 2 at 101. */
  const uint64_t lw2[3][2] = {{100, 10000}, {2, 100}, {3, 150}};
  rl__policy_shape sl = shape_of(RL_ALG_SLIDING_LOG, 3, lw2, 4);
  pstate t = {{0}};
  assert_true(decide(&sl, &t, 0, 2).allowed);
  expect(decide(&sl, &t, 1, 1), 0, 1, 2, 0, 99, 99);
  assert_true(decide(&sl, &t, 100, 1).allowed);
  expect(decide(&sl, &t, 101, 1), 0, 2, 3, 0, 149, 49);
  expect(decide(&sl, &t, 150, 1), 1, 1, 2, 0, 100, 0);
}

static void test_untouched_fields_and_expiry(void **unused) {
  (void)unused;
  const uint64_t lw[2][2] = {{5, 100}, {10, 1000}};
  rl__policy_shape sh = shape_of(RL_ALG_FIXED_WINDOW, 2, lw, 0);
  pstate s = {{0}};
  rl_decision d;
  d.source = RL_SOURCE_REDIS;
  d.policy = 77;
  int64_t exp = rl__policy_decide(&sh, s.b, 1234, 1, &d);
  assert_int_equal(d.source, RL_SOURCE_REDIS);
  assert_int_equal(d.policy, 77);
  assert_true(exp == 2000); /* max(1300, 2000) */
  /* No window at all: trivially allowed, nothing reported. */
  rl__policy_shape none = sh;
  none.n_windows = 0;
  assert_true(rl__policy_decide(&none, s.b, 1234, 1, &d) == 0);
  assert_true(d.allowed);
  assert_int_equal(d.retry_after_ms, 0);
}

/* ---- random multi-window traffic, all four algorithms ---- */

static rl__policy_shape random_shape(rl_algorithm alg) {
  uint64_t lw[RL_MAX_WINDOWS][2];
  size_t n = 1 + rnd(4);
  for (size_t i = 0; i < n; i++) {
    lw[i][0] = 1 + rnd(8);
    lw[i][1] = 1 + rnd(40);
  }
  rl__policy_shape sh = shape_of(alg, n, lw, 2 + (uint32_t)rnd(3));
  for (size_t i = 0; alg == RL_ALG_TOKEN_BUCKET && i < n; i++) {
    sh.windows[i].burst = 1 + rnd(10);
  }
  return sh;
}

/* The decision must follow from the windows' own verdicts. */
static void check_binding(const rl__policy_shape *sh, const pstate *before,
                          int64_t now, uint64_t cost, rl_decision d) {
  pstate copy = *before;
  rl__verdict v[RL_MAX_WINDOWS];
  int all = 1;
  size_t b = 0;
  for (size_t i = 0; i < sh->n_windows; i++) {
    rl__alg_evaluate(sh->algorithm, &sh->windows[i],
                     copy.b + sh->state_offset[i], now, cost, &v[i]);
    all &= v[i].allowed;
  }
  for (size_t i = 1; i < sh->n_windows; i++) {
    if (all ? v[i].remaining < v[b].remaining
            : !v[i].allowed &&
                  (v[b].allowed || v[i].retry_after_ms > v[b].retry_after_ms)) {
      b = i;
    }
  }
  assert_int_equal(d.allowed, all);
  assert_int_equal(d.window, b);
  assert_int_equal(d.remaining, v[b].remaining);
  assert_int_equal(d.reset_after_ms, v[b].reset_after_ms);
  assert_int_equal(d.retry_after_ms, v[b].retry_after_ms);
}

static void check_retry(const rl__policy_shape *sh, const pstate *before,
                        int64_t now, uint64_t cost, rl_decision d) {
  if (d.allowed || d.retry_after_ms == RL_RETRY_NEVER) {
    return;
  }
  int64_t r = (int64_t)d.retry_after_ms;
  assert_true(probe(sh, before, now + r, cost).allowed);
  assert_false(probe(sh, before, now + r - 1, cost).allowed);
}

/* From the expiry on, the state decides like the all-zero state. */
static void check_expiry(const rl__policy_shape *sh, const pstate *after,
                         int64_t expiry, int64_t now) {
  static const pstate zero;
  int64_t t = (expiry > now ? expiry : now) + (int64_t)rnd(5);
  uint64_t cost = 1 + rnd(4);
  rl_decision a = probe(sh, after, t, cost), z = probe(sh, &zero, t, cost);
  expect(a, z.allowed, z.window, z.limit, z.remaining, z.reset_after_ms,
         z.retry_after_ms);
}

static void random_policy_run(rl_algorithm alg) {
  rl__policy_shape sh = random_shape(alg);
  pstate s = {{0}};
  int64_t clock = (int64_t)rnd(60);
  for (int step = 0; step < 150; step++) {
    clock = clock_step(clock, 12, 60, 12);
    uint64_t cost = 1 + rnd(5);
    pstate before = s;
    rl_decision d;
    int64_t expiry = rl__policy_decide(&sh, s.b, clock, cost, &d);
    check_binding(&sh, &before, clock, cost, d);
    check_retry(&sh, &before, clock, cost, d);
    check_expiry(&sh, &s, expiry, clock);
    if (!d.allowed) {
      /* Nothing spent: the bytes are those of a mere evaluation. */
      pstate evaluated = before;
      rl__verdict v;
      for (size_t i = 0; i < sh.n_windows; i++) {
        rl__alg_evaluate(alg, &sh.windows[i], evaluated.b + sh.state_offset[i],
                         clock, cost, &v);
      }
      assert_memory_equal(&evaluated, &s, sizeof(s));
    }
  }
}

static void test_random_policies(void **unused) {
  (void)unused;
  for (int a = 0; a < 4; a++) {
    for (int run = 0; run < 300; run++) {
      random_policy_run(all_algs[a]);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dispatch),
      cmocka_unit_test(test_denial_commits_nothing),
      cmocka_unit_test(test_binding_when_allowed),
      cmocka_unit_test(test_binding_when_denied),
      cmocka_unit_test(test_untouched_fields_and_expiry),
      cmocka_unit_test(test_random_policies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
