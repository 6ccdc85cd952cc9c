/*
 * test_alg_sliding_counter.c - unit tests of the sliding window counter
 * (src/alg_sliding_counter.c against docs/Algorithms.md): worked examples
 * with exact remaining/reset/retry values, edges, the clock going back and
 * far forward, values near the maximum, and random traffic against the
 * specification transcribed literally (signed 128-bit arithmetic, a
 * division every time).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alg_impl.h"

typedef struct alg_state {
  _Alignas(8) unsigned char b[24];
} alg_state;

#define ALG RL_ALG_SLIDING_COUNTER
#include "alg_test_util.h"
#define RND_SEED 0x853c49e6748fea9bu
#include "test_rng.h"

__extension__ typedef __int128 i128;

static void test_state_size(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(10, 1000);
  assert_int_equal(rl__sliding_counter_state_size(&p), 24);
}

static void test_zero_state_at_zero(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(10, 100);
  alg_state s = {{0}};
  assert_true(rl__sliding_counter_expiry(&p, s.b) == 200);
  expect(decide(&p, &s, 0, 1), 1, 9, 200, 0);
  expect(decide(&p, &s, 99, 9), 1, 0, 101, 0);
  expect(decide(&p, &s, 99, 1), 0, 0, 101, 11); /* fits at 110 */
  assert_true(rl__sliding_counter_expiry(&p, s.b) == 200);
}

/* L = 10, W = 100, ten units in [0, 100). At 100 + e the estimate is
 * 10 * (100 - e) / 100: one more unit fits from e = 10 on. */
static void test_worked_example(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(10, 100);
  alg_state s = {{0}};
  expect(decide(&p, &s, 50, 10), 1, 0, 150, 0);
  expect(decide(&p, &s, 99, 1), 0, 0, 101, 11);
  expect(decide(&p, &s, 100, 1), 0, 0, 100, 10);
  expect(decide(&p, &s, 109, 1), 0, 0, 91, 1);  /* 910 + 100 > 1000 */
  expect(decide(&p, &s, 110, 1), 1, 0, 190, 0); /* 900 + 100 = 1000 */
  expect(decide(&p, &s, 150, 4), 1, 0, 150, 0); /* 500 + 500 = 1000 */
  expect(decide(&p, &s, 150, 1), 0, 0, 150, 10);
  expect(decide(&p, &s, 199, 1), 1, 3, 101, 0);  /* 10 + 600 <= 1000 */
  expect(decide(&p, &s, 300, 10), 1, 0, 200, 0); /* two windows later */
}

/* The denied request fits only in the next window, where prev' = cur = 2
 * weighs 2 * (W - e'') <= (L - c) * W = 3 * W from e'' = 0 on. A literal
 * e'' = W - floor((L - c) * W / cur) would be -500 and the retry 500 ms too
 * early: the specification clamps e'' at 0. */
static void test_next_window_from_its_start(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(10000, 1000);
  alg_state s = {{0}};
  expect(decide(&p, &s, 500, 5000), 1, 5000, 1500, 0);
  expect(decide(&p, &s, 1000, 2), 1, 4998, 2000, 0);
  alg_state before = s;
  rl__verdict v = decide(&p, &s, 1000, 9997);
  expect(v, 0, 4998, 2000, 1000);
  assert_false(probe(&p, &before, 1500, 9997).allowed);
  assert_false(probe(&p, &before, 1999, 9997).allowed);
  assert_true(probe(&p, &before, 2000, 9997).allowed);
  check_retry(&p, &before, 1000, 9997, v);
}

static void test_cost_limits(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(5, 1000);
  alg_state s = {{0}};
  expect(decide(&p, &s, 100, 6), 0, 5, 0, RL_RETRY_NEVER);
  expect(decide(&p, &s, 100, 5), 1, 0, 1900, 0);
  expect(decide(&p, &s, 100, 6), 0, 0, 1900, RL_RETRY_NEVER);
  /* cost = L while cur > 0: only when cur has left prev entirely. */
  expect(decide(&p, &s, 1000, 5), 0, 0, 1000, 1000);
  expect(decide(&p, &s, 1999, 5), 0, 4, 1, 1);
  expect(decide(&p, &s, 2000, 5), 1, 0, 2000, 0);
}

/* A now in an earlier window counts as the start of the latest one; a now
 * earlier in the same window sees more of prev. Either way it can only
 * deny more, and delays are measured from the real now. */
static void test_clock_backwards(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(10, 100);
  alg_state s = {{0}};
  expect(decide(&p, &s, 150, 10), 1, 0, 150, 0);
  expect(decide(&p, &s, 250, 5), 1, 0, 150, 0);
  alg_state before = s;
  rl__verdict v = decide(&p, &s, 210, 1);
  expect(v, 0, 0, 190, 50); /* share 9 > room 4; fits at e' = 60 */
  assert_memory_equal(&before, &s, sizeof(s));
  check_retry(&p, &before, 210, 1, v);
  v = decide(&p, &s, 120, 1);
  expect(v, 0, 0, 280, 140);
  check_retry(&p, &before, 120, 1, v);
  expect(decide(&p, &s, 0, 1), 0, 0, 400, 260);
  expect(decide(&p, &s, 260, 1), 1, 0, 140, 0);
}

static void test_far_forward(void **unused) {
  (void)unused;
  rl__window_params p = plain_params(3, 1000);
  alg_state s = {{0}};
  expect(decide(&p, &s, 10, 3), 1, 0, 1990, 0);
  int64_t far = INT64_MAX;
  int64_t start = far - far % 1000;
  uint64_t left = 1000 - (uint64_t)(far % 1000); /* start + W - far */
  expect(decide(&p, &s, far, 3), 1, 0, left + 1000, 0);
  assert_true(rl__sliding_counter_expiry(&p, s.b) == INT64_MAX);
  /* Next window: 3 * (W - e'') <= 2 * W from e'' = 334 on. */
  expect(decide(&p, &s, far, 1), 0, 0, left + 1000, left + 334);
  uint64_t back = (uint64_t)(start - 77);
  expect(decide(&p, &s, 77, 1), 0, 0, back + 2000, back + 1334);
}

/* L = 2^40 and W = 366 days: the products need 128 bits. */
static void test_large_values(void **unused) {
  (void)unused;
  const uint64_t L = RL_LIMIT_MAX, W = RL_DURATION_MAX_MS;
  rl__window_params p = plain_params(L, W);
  alg_state s = {{0}};
  int64_t t0 = (int64_t)W * 3;
  expect(decide(&p, &s, t0, L), 1, 0, 2 * W, 0);
  int64_t mid = t0 + (int64_t)(W + W / 2);
  expect(decide(&p, &s, mid, L / 2), 1, 0, W + W / 2, 0);
  alg_state before = s;
  rl__verdict v = decide(&p, &s, mid, 1);
  expect(v, 0, 0, W + W / 2, 1);
  check_retry(&p, &before, mid, 1, v);
  /* share = ceil(L * (W / 2 - 1) / W) = L / 2 - 34, as L / W = 34.77 */
  expect(decide(&p, &s, mid + 1, 1), 1, 33, W + W / 2 - 1, 0);
  expect(decide(&p, &s, mid, RL_COST_MAX + 1), 0, 0, W + W / 2 - 0,
         RL_RETRY_NEVER);
  /* Out-of-range parameters and garbage states: clamped, never UB. */
  rl__window_params bad = plain_params(UINT64_MAX, UINT64_MAX);
  alg_state junk;
  memset(&junk, 0xff, sizeof(junk));
  (void)decide(&bad, &junk, INT64_MAX, UINT64_MAX);
  memset(&junk, 0xff, sizeof(junk));
  (void)decide(&bad, &junk, 5, 1);
  (void)rl__sliding_counter_expiry(&bad, junk.b);
  rl__window_params zero = plain_params(0, 0);
  memset(&junk, 0x7f, sizeof(junk));
  (void)decide(&zero, &junk, -3, 1);
  (void)decide(&zero, &junk, INT64_MAX, 0);
}

/* ---- the specification, literally ---- */

typedef struct ref_sc {
  int64_t start;
  uint64_t prev, cur;
} ref_sc;

static void ref_roll(ref_sc *r, int64_t w, int64_t now) {
  int64_t aligned = now - now % w;
  if (aligned == r->start + w) {
    r->prev = r->cur;
    r->cur = 0;
    r->start = aligned;
  } else if (aligned > r->start + w) {
    r->prev = r->cur = 0;
    r->start = aligned;
  }
}

static uint64_t ref_retry(const ref_sc *r, i128 lim, i128 w, int64_t now,
                          uint64_t c) {
  i128 room = lim - (i128)r->cur - c;
  if (room >= 0 && r->prev > 0) {
    i128 e1 = w - room * w / r->prev;
    if (e1 < w) {
      i128 d = r->start + e1 - now;
      return (uint64_t)(d < 1 ? 1 : d);
    }
  }
  i128 e2 = 0;
  if (r->cur > 0) {
    e2 = w - (lim - c) * w / r->cur;
    e2 = e2 < 0 ? 0 : e2;
  }
  return (uint64_t)(r->start + w + e2 - now);
}

static rl__verdict ref_decide(ref_sc *r, uint64_t limit, uint64_t window,
                              int64_t now, uint64_t c) {
  i128 lim = limit, w = window;
  ref_roll(r, (int64_t)window, now);
  i128 e = (now < r->start ? r->start : now) - r->start;
  rl__verdict v;
  v.allowed = r->prev * (w - e) + (r->cur + c) * w <= lim * w;
  if (v.allowed) {
    r->cur += c;
  }
  i128 rem = lim * w - r->prev * (w - e) - r->cur * w;
  v.remaining = rem < 0 ? 0 : (uint64_t)(rem / w);
  i128 reset = r->cur > 0 ? r->start + 2 * w - now
                          : (r->prev > 0 ? r->start + w - now : 0);
  v.reset_after_ms = (uint64_t)reset;
  v.retry_after_ms = 0;
  if (!v.allowed) {
    v.retry_after_ms =
        c > limit ? RL_RETRY_NEVER : ref_retry(r, lim, w, now, c);
  }
  return v;
}

/* Random small policies and traffic, the clock jumping back and forward:
 * every verdict equals the reference, retry_after and reset_after are
 * exact, and the estimate never exceeds L after an admission. */
static void test_random_against_reference(void **unused) {
  (void)unused;
  for (int run = 0; run < 500; run++) {
    uint64_t limit = 1 + rnd(12), w = 1 + rnd(40);
    rl__window_params p = plain_params(limit, w);
    alg_state s = {{0}};
    ref_sc r = {0, 0, 0};
    int64_t clock = (int64_t)rnd(100);
    for (int step = 0; step < 200; step++) {
      uint64_t roll = rnd(16);
      clock += roll == 0   ? -(int64_t)rnd(3 * w)
               : roll == 1 ? (int64_t)rnd(4 * w)
                           : (int64_t)rnd(w / 3 + 2);
      clock = clock < 0 ? 0 : clock;
      uint64_t cost = 1 + rnd(limit + 1);
      rl__verdict v = decide_exact(&p, &s, clock, cost);
      expect_same(v, ref_decide(&r, limit, w, clock, cost));
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_size),
      cmocka_unit_test(test_zero_state_at_zero),
      cmocka_unit_test(test_worked_example),
      cmocka_unit_test(test_next_window_from_its_start),
      cmocka_unit_test(test_cost_limits),
      cmocka_unit_test(test_clock_backwards),
      cmocka_unit_test(test_far_forward),
      cmocka_unit_test(test_large_values),
      cmocka_unit_test(test_random_against_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
