/*
 * test_alg_gcra.c - unit tests of the token bucket as GCRA
 * (src/alg_gcra.c against docs/Algorithms.md): exact values with a
 * rational emission interval, burst above and below the limit, cost above
 * the burst, the clock going back and far forward, values near the maximum,
 * and random traffic against an exact-rational token bucket oracle.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alg_impl.h"

typedef struct alg_state {
  _Alignas(8) unsigned char b[16];
} alg_state;

#define ALG RL_ALG_TOKEN_BUCKET
#include "alg_test_util.h"
#define RND_SEED 0xda942042e4dd58b5u
#include "test_rng.h"

__extension__ typedef __int128 i128;

static rl__window_params params(uint64_t limit, uint64_t duration,
                                uint64_t burst) {
  rl__window_params p = {limit, duration, burst, 0};
  return p;
}

static void test_state_size(void **unused) {
  (void)unused;
  rl__window_params p = params(10, 1000, 10);
  assert_int_equal(rl__gcra_state_size(&p), 16);
}

/* L = 10 per 1000 ms: one unit every 100 ms, ten at once. */
static void test_zero_state_at_zero(void **unused) {
  (void)unused;
  rl__window_params p = params(10, 1000, 10);
  alg_state s = {{0}};
  assert_true(rl__gcra_expiry(&p, s.b) == 0);
  expect(decide(&p, &s, 0, 1), 1, 9, 100, 0);
  assert_true(rl__gcra_expiry(&p, s.b) == 100);
  expect(decide(&p, &s, 0, 9), 1, 0, 1000, 0);
  expect(decide(&p, &s, 0, 1), 0, 0, 1000, 100);
  expect(decide(&p, &s, 99, 1), 0, 0, 901, 1);
  expect(decide(&p, &s, 100, 1), 1, 0, 1000, 0);
  expect(decide(&p, &s, 350, 2), 1, 0, 950, 0); /* 2.5 refilled */
  expect(decide(&p, &s, 350, 1), 0, 0, 950, 50);
  assert_true(rl__gcra_expiry(&p, s.b) == 1300);
}

/* L = 3 per 10 ms: the emission interval 10/3 ms is kept exactly. */
static void test_rational_interval(void **unused) {
  (void)unused;
  rl__window_params p = params(3, 10, 3);
  alg_state s = {{0}};
  expect(decide(&p, &s, 0, 1), 1, 2, 4, 0);  /* TAT 3 + 1/3 */
  expect(decide(&p, &s, 0, 1), 1, 1, 7, 0);  /* TAT 6 + 2/3 */
  expect(decide(&p, &s, 0, 1), 1, 0, 10, 0); /* TAT 10 */
  assert_true(rl__gcra_expiry(&p, s.b) == 10);
  expect(decide(&p, &s, 0, 1), 0, 0, 10, 4); /* fits at 13 1/3 - 10 */
  expect(decide(&p, &s, 3, 1), 0, 0, 7, 1);
  expect(decide(&p, &s, 4, 1), 1, 0, 10, 0); /* TAT 13 + 1/3 */
  /* One request every ms for 30 s: B + 0.3 * t admitted, no drift. */
  alg_state f = {{0}};
  int admitted = 0;
  for (int64_t t = 0; t <= 30000; t++) {
    admitted += decide(&p, &f, t, 1).allowed;
  }
  assert_int_equal(admitted, 3 + 9000);
}

static void test_burst(void **unused) {
  (void)unused;
  rl__window_params big = params(1, 1000, 5); /* B > L */
  alg_state s = {{0}};
  expect(decide(&big, &s, 0, 5), 1, 0, 5000, 0);
  expect(decide(&big, &s, 0, 1), 0, 0, 5000, 1000);
  expect(decide(&big, &s, 0, 6), 0, 0, 5000, RL_RETRY_NEVER);
  rl__window_params small = params(10, 1000, 2); /* B < L */
  alg_state t = {{0}};
  expect(decide(&small, &t, 0, 3), 0, 2, 0, RL_RETRY_NEVER);
  expect(decide(&small, &t, 0, 2), 1, 0, 200, 0);
  expect(decide(&small, &t, 0, 1), 0, 0, 200, 100);
  expect(decide(&small, &t, 100, 1), 1, 0, 200, 0);
}

/* A now before the TAT is simply further from it: stricter, never looser,
 * and the delays are measured from the real now. */
static void test_clock_backwards(void **unused) {
  (void)unused;
  rl__window_params p = params(1, 100, 2);
  alg_state s = {{0}};
  expect(decide(&p, &s, 1000, 2), 1, 0, 200, 0); /* TAT 1200 */
  alg_state before = s;
  rl__verdict v = decide(&p, &s, 900, 1);
  expect(v, 0, 0, 300, 200);
  assert_memory_equal(&before, &s, sizeof(s));
  check_retry(&p, &before, 900, 1, v);
  expect(decide(&p, &s, 1099, 1), 0, 0, 101, 1);
  expect(decide(&p, &s, 1100, 1), 1, 0, 200, 0);
}

static void test_far_forward(void **unused) {
  (void)unused;
  rl__window_params p = params(3, 10, 3);
  alg_state s = {{0}};
  decide(&p, &s, 0, 3);
  int64_t far = (int64_t)1 << 62; /* exact far in the future */
  expect(decide(&p, &s, far, 3), 1, 0, 10, 0);
  expect(decide(&p, &s, far, 1), 0, 0, 10, 4);
  assert_true(rl__gcra_expiry(&p, s.b) == far + 10);
  /* At the end of time the TAT saturates at INT64_MAX, without UB. */
  rl__verdict v = decide(&p, &s, INT64_MAX - 2, 3);
  assert_true(v.allowed);
  assert_int_equal(v.reset_after_ms, 2);
  assert_true(rl__gcra_expiry(&p, s.b) == INT64_MAX);
  v = decide(&p, &s, INT64_MAX, 3);
  assert_true(v.allowed);
}

/* L = B = 2^40 per 366 days: W / L = 0.0288 ms, products need 128 bits. */
static void test_large_values(void **unused) {
  (void)unused;
  const uint64_t L = RL_LIMIT_MAX, W = RL_DURATION_MAX_MS;
  rl__window_params p = params(L, W, L);
  alg_state s = {{0}};
  int64_t now = 123456789;
  expect(decide(&p, &s, now, L), 1, 0, W, 0); /* TAT now + W exactly */
  alg_state before = s;
  rl__verdict v = decide(&p, &s, now, 1);
  expect(v, 0, 0, W, 1);
  check_retry(&p, &before, now, 1, v);
  /* (new - now') * L = W * L - L + W: floor((L - W) / W) = 33 left. */
  expect(decide(&p, &s, now + 1, 1), 1, (L - W) / W, W, 0);
  expect(decide(&p, &s, now + 1, RL_COST_MAX + 1), 0, (L - W) / W, W,
         RL_RETRY_NEVER);
  expect(decide(&p, &s, now + 1, UINT64_MAX), 0, (L - W) / W, W,
         RL_RETRY_NEVER);
  /* Out-of-range parameters and garbage states: clamped, never UB. */
  rl__window_params bad = params(UINT64_MAX, UINT64_MAX, UINT64_MAX);
  alg_state junk;
  memset(&junk, 0xff, sizeof(junk)); /* TAT -1 ms + a huge fraction */
  (void)decide(&bad, &junk, INT64_MAX, UINT64_MAX);
  (void)decide(&bad, &junk, 0, 1);
  (void)rl__gcra_expiry(&bad, junk.b);
  rl__window_params zero = params(0, 0, 0);
  memset(&junk, 0x7f, sizeof(junk));
  (void)decide(&zero, &junk, -7, 1);
  (void)decide(&zero, &junk, INT64_MAX, 0);
}

/* ---- an exact token bucket: level scaled by W, refilled by L per ms ---- */

typedef struct ref_tb {
  i128 level; /* tokens * W, at most B * W */
  int64_t t0; /* time of the last admission */
} ref_tb;

static i128 ref_level(const ref_tb *r, i128 cap, uint64_t limit, int64_t t) {
  i128 level = r->level + (i128)(t - r->t0) * limit;
  return level > cap ? cap : level;
}

static i128 ceil_div(i128 a, i128 b) {
  return (a + b - 1) / b;
}

/* The oracle at t >= t0: admit iff level >= c * W. */
static rl__verdict ref_eval(const ref_tb *r, const rl__window_params *p,
                            int64_t t, uint64_t c) {
  i128 w = p->duration_ms, cap = (i128)p->burst * w;
  i128 level = ref_level(r, cap, p->limit, t);
  rl__verdict v;
  v.allowed = level >= (i128)c * w;
  i128 after = v.allowed ? level - (i128)c * w : level;
  v.remaining = (uint64_t)(after / w);
  v.reset_after_ms = (uint64_t)ceil_div(cap - after, p->limit);
  v.retry_after_ms = 0;
  if (!v.allowed) {
    v.retry_after_ms = c > p->burst
                           ? RL_RETRY_NEVER
                           : (uint64_t)ceil_div((i128)c * w - level, p->limit);
  }
  return v;
}

static void ref_commit(ref_tb *r, const rl__window_params *p, int64_t t,
                       uint64_t c) {
  i128 cap = (i128)p->burst * p->duration_ms;
  r->level = ref_level(r, cap, p->limit, t) - (i128)c * p->duration_ms;
  r->t0 = t;
}

/* Random small buckets and traffic. With time moving forward every verdict
 * equals the oracle's. When the clock goes back before the last admission,
 * the oracle (clamped to that admission) must admit whatever GCRA admits;
 * it is fed GCRA's admissions, and the two stay in step. */
static void test_random_against_oracle(void **unused) {
  (void)unused;
  for (int run = 0; run < 500; run++) {
    uint64_t limit = 1 + rnd(12), w = 1 + rnd(40), burst = 1 + rnd(12);
    rl__window_params p = params(limit, w, burst);
    alg_state s = {{0}};
    ref_tb r = {(i128)burst * w, 0};
    int64_t clock = (int64_t)rnd(100);
    for (int step = 0; step < 200; step++) {
      clock = clock_step(clock, 10, 3 * w, w / 2 + 2);
      uint64_t cost = 1 + rnd(burst + 1);
      rl__verdict v = decide_exact(&p, &s, clock, cost);
      int64_t t = clock < r.t0 ? r.t0 : clock;
      rl__verdict e = ref_eval(&r, &p, t, cost);
      if (clock >= r.t0) {
        expect_same(v, e);
      }
      assert_true(!v.allowed || e.allowed);
      if (v.allowed) {
        ref_commit(&r, &p, t, cost);
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_size),
      cmocka_unit_test(test_zero_state_at_zero),
      cmocka_unit_test(test_rational_interval),
      cmocka_unit_test(test_burst),
      cmocka_unit_test(test_clock_backwards),
      cmocka_unit_test(test_far_forward),
      cmocka_unit_test(test_large_values),
      cmocka_unit_test(test_random_against_oracle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
