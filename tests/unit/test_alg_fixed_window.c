/*
 * test_alg_fixed_window.c - unit tests of the fixed window algorithm
 * (src/alg_fixed_window.c against docs/Algorithms.md). Time is a plain
 * argument, so the "clock" is just the now values passed in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alg_impl.h"

typedef struct alg_state {
  unsigned char b[16];
} alg_state;

#define ALG RL_ALG_FIXED_WINDOW
#include "alg_test_util.h"
#define RND_SEED 0x9e3779b97f4a7c15u
#include "test_rng.h"

static void test_state_size(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(10, 1000);
  assert_int_equal(rl__fixed_window_state_size(&p), 16);
}

static void test_zero_state_at_zero(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(3, 10);
  alg_state s = {{0}};
  assert_int_equal(rl__fixed_window_expiry(&p, s.b), 10);
  expect(decide(&p, &s, 0, 1), 1, 2, 10, 0);
  assert_int_equal(rl__fixed_window_expiry(&p, s.b), 10);
  expect(decide(&p, &s, 9, 2), 1, 0, 1, 0);
  expect(decide(&p, &s, 9, 1), 0, 0, 1, 1);
  expect(decide(&p, &s, 10, 3), 1, 0, 10, 0);
  assert_int_equal(rl__fixed_window_expiry(&p, s.b), 20);
}

/* Windows are aligned: [1000, 1100) whatever the first request's time. */
static void test_window_edges(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(2, 100);
  alg_state s = {{0}};
  expect(decide(&p, &s, 1050, 1), 1, 1, 50, 0);
  expect(decide(&p, &s, 1060, 1), 1, 0, 40, 0);
  expect(decide(&p, &s, 1099, 1), 0, 0, 1, 1);   /* t + W - 1 */
  expect(decide(&p, &s, 1100, 1), 1, 1, 100, 0); /* t + W */
  expect(decide(&p, &s, 1100, 1), 1, 0, 100, 0);
  expect(decide(&p, &s, 1199, 1), 0, 0, 1, 1);
  expect(decide(&p, &s, 1200, 2), 1, 0, 100, 0);
}

static void test_cost_equals_limit(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(5, 1000);
  alg_state s = {{0}};
  expect(decide(&p, &s, 500, 5), 1, 0, 500, 0);
  expect(decide(&p, &s, 999, 1), 0, 0, 1, 1);
  expect(decide(&p, &s, 1000, 5), 1, 0, 1000, 0);
}

/* cost > limit never fits: NEVER, and nothing is spent. A fresh window is
 * already fully restored, so its reset_after is 0. */
static void test_cost_above_limit(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(5, 1000);
  alg_state s = {{0}};
  expect(decide(&p, &s, 200, 6), 0, 5, 0, RL_RETRY_NEVER);
  expect(decide(&p, &s, 200, UINT64_MAX), 0, 5, 0, RL_RETRY_NEVER);
  expect(decide(&p, &s, 300, 1), 1, 4, 700, 0);
  expect(decide(&p, &s, 300, 6), 0, 4, 700, RL_RETRY_NEVER);
  expect(decide(&p, &s, 300, 4), 1, 0, 700, 0);
}

/* A clock that goes back counts against the latest window seen: it can only
 * deny more, and the delays are measured from the real now. */
static void test_clock_backwards(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(2, 100);
  alg_state s = {{0}};
  expect(decide(&p, &s, 250, 1), 1, 1, 50, 0);
  expect(decide(&p, &s, 150, 1), 1, 0, 150, 0); /* counted in [200, 300) */
  alg_state before = s;
  rl__verdict v = decide(&p, &s, 120, 1);
  expect(v, 0, 0, 180, 180);
  assert_memory_equal(&before, &s, sizeof(s));
  check_retry(&p, &before, 120, 1, v);
  expect(decide(&p, &s, 0, 1), 0, 0, 300, 300);
  expect(decide(&p, &s, 299, 1), 0, 0, 1, 1);
  expect(decide(&p, &s, 300, 2), 1, 0, 100, 0);
}

static void test_far_forward(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(2, 1000);
  alg_state s = {{0}};
  expect(decide(&p, &s, 10, 2), 1, 0, 990, 0);
  int64_t far = INT64_MAX;
  int64_t start = far - far % 1000;
  uint64_t left = 1000 - (uint64_t)(far % 1000); /* start + W - far */
  expect(decide(&p, &s, far, 1), 1, 1, left, 0);
  /* start + W is past INT64_MAX: the expiry saturates. */
  assert_true(rl__fixed_window_expiry(&p, s.b) == INT64_MAX);
  expect(decide(&p, &s, far, 2), 0, 1, left, left);
  /* And back to the ordinary present: still the far window. */
  rl__verdict v = decide(&p, &s, 5000, 1);
  assert_true(v.allowed);
  expect(decide(&p, &s, 5000, 1), 0, 0, (uint64_t)(start - 5000) + 1000,
         (uint64_t)(start - 5000) + 1000);
}

/* The largest validated values: no overflow anywhere (run under UBSan). */
static void test_large_values(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(RL_LIMIT_MAX, RL_DURATION_MAX_MS);
  alg_state s = {{0}};
  int64_t now = (int64_t)RL_DURATION_MAX_MS * 1000 + 7;
  int64_t end = now - 7 + (int64_t)RL_DURATION_MAX_MS;
  expect(decide(&p, &s, now, RL_COST_MAX), 1, 0, (uint64_t)(end - now), 0);
  expect(decide(&p, &s, now, 1), 0, 0, (uint64_t)(end - now),
         (uint64_t)(end - now));
  expect(decide(&p, &s, end, RL_COST_MAX - 1), 1, 1, RL_DURATION_MAX_MS, 0);
  expect(decide(&p, &s, end, RL_COST_MAX + 1), 0, 1, RL_DURATION_MAX_MS,
         RL_RETRY_NEVER);
  assert_true(rl__fixed_window_expiry(&p, s.b) ==
              end + (int64_t)RL_DURATION_MAX_MS);
}

/* Out-of-range parameters and corrupt states are clamped, never UB. */
static void test_out_of_range_inputs(void **unused) {
  (void)unused;
  rl__window_params zero = plain_params(0, 0);
  rl__window_params huge = plain_params(UINT64_MAX, UINT64_MAX);
  alg_state s;
  memset(&s, 0xff, sizeof(s)); /* start = -1, count = UINT64_MAX */
  rl__verdict v = decide(&zero, &s, INT64_MAX, UINT64_MAX);
  assert_false(v.allowed);
  memset(&s, 0xff, sizeof(s));
  v = decide(&huge, &s, -5, 1);
  assert_false(v.allowed);
  (void)rl__fixed_window_expiry(&huge, s.b);
  memset(&s, 0, sizeof(s));
  v = decide(&huge, &s, INT64_MAX, UINT64_MAX);
  assert_false(v.allowed);
  assert_int_equal(v.retry_after_ms, RL_RETRY_NEVER);
}

/* The specification transcribed literally, with the division every time. */
typedef struct ref_fw {
  int64_t start;
  uint64_t count;
} ref_fw;

static rl__verdict ref_decide(ref_fw *r, uint64_t limit, uint64_t w,
                              int64_t now, uint64_t c) {
  int64_t aligned = now - now % (int64_t)w;
  if (aligned > r->start) {
    r->start = aligned;
    r->count = 0;
  }
  rl__verdict v;
  v.allowed = r->count + c <= limit;
  if (v.allowed) {
    r->count += c;
  }
  int64_t end = r->start + (int64_t)w;
  v.remaining = limit - r->count;
  v.reset_after_ms = r->count ? (uint64_t)(end - now) : 0;
  v.retry_after_ms =
      v.allowed ? 0 : (c <= limit ? (uint64_t)(end - now) : RL_RETRY_NEVER);
  return v;
}

/* Random small policies and traffic, with the clock jumping back and
 * forward: every verdict equals the reference, retry_after and
 * reset_after are exact, and no aligned window takes more than L. */
static void test_random_against_reference(void **unused) {
  (void)unused;
  for (int run = 0; run < 400; run++) {
    uint64_t limit = 1 + rnd(6), w = 1 + rnd(40);
    rl__window_params p = plain_params(limit, w);
    alg_state s = {{0}};
    ref_fw r = {0, 0};
    int64_t clock = (int64_t)rnd(50);
    for (int step = 0; step < 200; step++) {
      clock = clock_step(clock, 16, 2 * w, w / 2 + 2);
      uint64_t cost = 1 + rnd(limit + 1);
      rl__verdict v = decide_exact(&p, &s, clock, cost);
      expect_same(v, ref_decide(&r, limit, w, clock, cost));
      assert_true(r.count <= limit);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_size),
      cmocka_unit_test(test_zero_state_at_zero),
      cmocka_unit_test(test_window_edges),
      cmocka_unit_test(test_cost_equals_limit),
      cmocka_unit_test(test_cost_above_limit),
      cmocka_unit_test(test_clock_backwards),
      cmocka_unit_test(test_far_forward),
      cmocka_unit_test(test_large_values),
      cmocka_unit_test(test_out_of_range_inputs),
      cmocka_unit_test(test_random_against_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
