/*
 * alg_test_util.h - helpers shared by the per-algorithm unit tests: one
 * request, a probe on a copy of the state, and the exactness checks of
 * retry_after and reset_after. Each test file defines, before including it,
 * ALG (the rl_algorithm under test) and alg_state (a struct holding the
 * state bytes in a field b, 8-byte aligned).
 */
#ifndef RL_ALG_TEST_UTIL_H
#define RL_ALG_TEST_UTIL_H

#include "algorithm.h"

/* Parameters of a window with burst = limit and no log slots (the fixed
 * window's and the sliding counter's). */
static inline rl__window_params plain_params(uint64_t limit,
                                             uint64_t duration) {
  rl__window_params p = {limit, duration, limit, 0};
  return p;
}

/* evaluate + commit when admitted: one request. */
static rl__verdict decide(const rl__window_params *p, alg_state *s, int64_t now,
                          uint64_t cost) {
  rl__verdict v;
  rl__alg_evaluate(ALG, p, s->b, now, cost, &v);
  if (v.allowed) {
    rl__alg_commit(ALG, p, s->b, now, cost);
  }
  return v;
}

/* The verdict at t on a copy: what would happen absent other traffic. */
static rl__verdict probe(const rl__window_params *p, const alg_state *s,
                         int64_t t, uint64_t cost) {
  alg_state copy = *s;
  rl__verdict v;
  rl__alg_evaluate(ALG, p, copy.b, t, cost, &v);
  return v;
}

static void expect(rl__verdict v, int allowed, uint64_t remaining,
                   uint64_t reset, uint64_t retry) {
  assert_int_equal(v.allowed, allowed);
  assert_int_equal(v.remaining, remaining);
  assert_int_equal(v.reset_after_ms, reset);
  assert_int_equal(v.retry_after_ms, retry);
}

/* retry_after is exact: denied until now + retry, admitted then. `before`
 * is the state as it was before the denied evaluate. */
static void check_retry(const rl__window_params *p, const alg_state *before,
                        int64_t now, uint64_t cost, rl__verdict v) {
  if (v.allowed || v.retry_after_ms == RL_RETRY_NEVER) {
    return;
  }
  int64_t r = (int64_t)v.retry_after_ms;
  assert_true(r >= 1);
  assert_true(probe(p, before, now + r, cost).allowed);
  assert_false(probe(p, before, now + r - 1, cost).allowed);
  for (int64_t d = 0; d < r && r <= 300; d++) {
    assert_false(probe(p, before, now + d, cost).allowed);
  }
}

/* reset_after is exact: full again (burst units left; burst = limit except
 * for the token bucket) at now + reset, not one ms before. */
static void check_reset(const rl__window_params *p, const alg_state *after,
                        int64_t now, rl__verdict v) {
  int64_t r = (int64_t)v.reset_after_ms;
  assert_int_equal(probe(p, after, now + r, 0).remaining, p->burst);
  if (r > 0) {
    assert_true(probe(p, after, now + r - 1, 0).remaining < p->burst);
  }
}

/* v equals the reference's verdict e in all four fields. */
static void expect_same(rl__verdict v, rl__verdict e) {
  expect(v, e.allowed, e.remaining, e.reset_after_ms, e.retry_after_ms);
}

/* One request of a random run: decides, then checks that its retry_after
 * and reset_after are exact. */
static rl__verdict decide_exact(const rl__window_params *p, alg_state *s,
                                int64_t now, uint64_t cost) {
  alg_state before = *s;
  rl__verdict v = decide(p, s, now, cost);
  check_retry(p, &before, now, cost, v);
  check_reset(p, s, now, v);
  return v;
}

#endif /* RL_ALG_TEST_UTIL_H */
