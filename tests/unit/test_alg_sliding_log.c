/*
 * test_alg_sliding_log.c - unit tests of the bounded sliding window log
 * (src/alg_sliding_log.c against docs/Algorithms.md): exact edges, merging
 * when more than S admission times are live, rebasing of the 32-bit
 * offsets, and random traffic against two references written from the
 * specification: the bounded log itself (every field must match) and the
 * exact, unbounded log (the bounded one may deny more, never admit more).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alg_impl.h"

#define MAX_SLOTS 8
#define STATE_BYTES (16 + 8 * MAX_SLOTS)

typedef struct alg_state {
  _Alignas(8) unsigned char b[STATE_BYTES];
} alg_state;

#define ALG RL_ALG_SLIDING_LOG
#include "alg_test_util.h"
#define RND_SEED 0x2545f4914f6cdd1du
#include "test_rng.h"

static rl__window_params params(uint64_t limit, uint64_t duration,
                                uint32_t slots) {
  rl__window_params p = {limit, duration, limit, slots};
  return p;
}

/* Units left at t, absent other traffic. */
static uint64_t left_at(const rl__window_params *p, const alg_state *s,
                        int64_t t) {
  return probe(p, s, t, 0).remaining;
}

static int64_t state_base(const alg_state *s) {
  int64_t base;
  memcpy(&base, s->b, sizeof(base));
  return base;
}

/* ---- the reference: the specification, literally, on absolute times ---- */

#define REF_MAX 1100

typedef struct ref_log {
  uint32_t slots; /* S; large for the exact, unbounded log */
  size_t len;
  int64_t t[REF_MAX];
  uint64_t n[REF_MAX];
} ref_log;

static int64_t ref_now(const ref_log *r, int64_t now) {
  return r->len && now < r->t[r->len - 1] ? r->t[r->len - 1] : now;
}

static void ref_expire(ref_log *r, int64_t now, uint64_t w) {
  size_t k = 0;
  while (k < r->len && r->t[k] <= now - (int64_t)w) {
    k++;
  }
  memmove(r->t, r->t + k, (r->len - k) * sizeof(r->t[0]));
  memmove(r->n, r->n + k, (r->len - k) * sizeof(r->n[0]));
  r->len -= k;
}

static uint64_t ref_total(const ref_log *r) {
  uint64_t total = 0;
  for (size_t i = 0; i < r->len; i++) {
    total += r->n[i];
  }
  return total;
}

static uint64_t ref_retry(const ref_log *r, uint64_t need, uint64_t w,
                          int64_t now) {
  uint64_t sum = 0;
  for (size_t i = 0; i < r->len; i++) {
    sum += r->n[i];
    if (sum >= need) {
      return (uint64_t)(r->t[i] + (int64_t)w - now);
    }
  }
  fail();
  return 0;
}

static rl__verdict ref_eval(ref_log *r, uint64_t limit, uint64_t w, int64_t now,
                            uint64_t c) {
  int64_t eff = ref_now(r, now);
  ref_expire(r, eff, w);
  uint64_t total = ref_total(r);
  rl__verdict v;
  v.allowed = total + c <= limit;
  v.remaining = limit - total - (v.allowed ? c : 0);
  if (v.allowed) {
    v.reset_after_ms = (uint64_t)(eff + (int64_t)w - now);
  } else {
    v.reset_after_ms =
        r->len ? (uint64_t)(r->t[r->len - 1] + (int64_t)w - now) : 0;
  }
  v.retry_after_ms = 0;
  if (!v.allowed) {
    v.retry_after_ms =
        c > limit ? RL_RETRY_NEVER : ref_retry(r, total + c - limit, w, now);
  }
  return v;
}

/* Appends (now, c); with S + 1 entries, merges the adjacent pair with the
 * smallest gap (ties: the oldest) into the later time. */
static void ref_commit(ref_log *r, uint64_t w, int64_t now, uint64_t c) {
  int64_t eff = ref_now(r, now);
  ref_expire(r, eff, w);
  if (r->len && r->t[r->len - 1] == eff) {
    r->n[r->len - 1] += c;
    return;
  }
  r->t[r->len] = eff;
  r->n[r->len] = c;
  r->len++;
  if (r->len <= r->slots) {
    return;
  }
  size_t best = 0;
  for (size_t i = 1; i + 1 < r->len; i++) {
    if (r->t[i + 1] - r->t[i] < r->t[best + 1] - r->t[best]) {
      best = i;
    }
  }
  r->n[best + 1] += r->n[best];
  memmove(r->t + best, r->t + best + 1, (r->len - best - 1) * sizeof(r->t[0]));
  memmove(r->n + best, r->n + best + 1, (r->len - best - 1) * sizeof(r->n[0]));
  r->len--;
}

static rl__verdict ref_decide(ref_log *r, uint64_t limit, uint64_t w,
                              int64_t now, uint64_t c) {
  rl__verdict v = ref_eval(r, limit, w, now, c);
  if (v.allowed) {
    ref_commit(r, w, now, c);
  }
  return v;
}

/* ---- fixed cases ---- */

static void test_state_size(void **unused) {
  (void)unused;
  rl__window_params p = params(10, 1000, 2);
  assert_int_equal(rl__sliding_log_state_size(&p), 32);
  p.log_slots = RL_LOG_SLOTS_DEFAULT;
  assert_int_equal(rl__sliding_log_state_size(&p), 16 + 8 * 32);
  p.log_slots = RL_LOG_SLOTS_MAX;
  assert_int_equal(rl__sliding_log_state_size(&p), 16 + 8 * 1024);
  p.log_slots = 0; /* clamped like every parameter */
  assert_int_equal(rl__sliding_log_state_size(&p), 32);
  p.log_slots = UINT32_MAX;
  assert_int_equal(rl__sliding_log_state_size(&p), 16 + 8 * 1024);
}

static void test_zero_state_at_zero(void **unused) {
  (void)unused;
  rl__window_params p = params(3, 10, 4);
  alg_state s = {{0}};
  assert_true(rl__sliding_log_expiry(&p, s.b) == 0);
  expect(decide(&p, &s, 0, 1), 1, 2, 10, 0);
  assert_true(rl__sliding_log_expiry(&p, s.b) == 10);
  expect(decide(&p, &s, 0, 2), 1, 0, 10, 0);
  expect(decide(&p, &s, 9, 1), 0, 0, 1, 1);
  expect(decide(&p, &s, 10, 3), 1, 0, 10, 0);
  assert_true(rl__sliding_log_expiry(&p, s.b) == 20);
}

/* A unit admitted at t counts during [t, t + W). */
static void test_window_edges(void **unused) {
  (void)unused;
  rl__window_params p = params(3, 100, 4);
  alg_state s = {{0}};
  expect(decide(&p, &s, 1010, 1), 1, 2, 100, 0);
  expect(decide(&p, &s, 1020, 1), 1, 1, 100, 0);
  expect(decide(&p, &s, 1030, 1), 1, 0, 100, 0);
  expect(decide(&p, &s, 1109, 1), 0, 0, 21, 1);  /* t + W - 1 */
  expect(decide(&p, &s, 1110, 1), 1, 0, 100, 0); /* t + W */
  expect(decide(&p, &s, 1111, 2), 0, 0, 99, 19); /* 1020 and 1030 go */
  expect(decide(&p, &s, 1130, 2), 1, 0, 100, 0);
}

static void test_cost_limits(void **unused) {
  (void)unused;
  rl__window_params p = params(5, 1000, 4);
  alg_state s = {{0}};
  expect(decide(&p, &s, 100, 6), 0, 5, 0, RL_RETRY_NEVER);
  expect(decide(&p, &s, 100, 5), 1, 0, 1000, 0);
  expect(decide(&p, &s, 100, 6), 0, 0, 1000, RL_RETRY_NEVER);
  expect(decide(&p, &s, 600, 5), 0, 0, 500, 500);
  expect(decide(&p, &s, 1100, 5), 1, 0, 1000, 0);
}

/* A now before the newest entry is treated as that entry's time: the
 * units land there, and the delays are measured from the real now. */
static void test_clock_backwards(void **unused) {
  (void)unused;
  rl__window_params p = params(2, 100, 4);
  alg_state s = {{0}};
  expect(decide(&p, &s, 1000, 1), 1, 1, 100, 0);
  expect(decide(&p, &s, 900, 1), 1, 0, 200, 0);
  alg_state before = s;
  rl__verdict v = decide(&p, &s, 950, 1);
  expect(v, 0, 0, 150, 150);
  assert_memory_equal(&before, &s, sizeof(s));
  check_retry(&p, &before, 950, 1, v);
  expect(decide(&p, &s, 1099, 1), 0, 0, 1, 1);
  expect(decide(&p, &s, 1100, 2), 1, 0, 100, 0);
}

/* S = 2 and three admission times: the closest pair merges into its later
 * time, which releases units late, never early. */
static void test_merge_smallest_gap(void **unused) {
  (void)unused;
  rl__window_params p = params(10, 100, 2);
  alg_state s = {{0}};
  decide(&p, &s, 0, 1);
  decide(&p, &s, 10, 1);
  decide(&p, &s, 11, 1); /* (10, 1) + (11, 1) -> (11, 2) */
  assert_int_equal(left_at(&p, &s, 99), 7);
  assert_int_equal(left_at(&p, &s, 100), 8);
  assert_int_equal(left_at(&p, &s, 110), 8); /* exact: 9 */
  assert_int_equal(left_at(&p, &s, 111), 10);
}

static void test_merge_tie_goes_to_oldest(void **unused) {
  (void)unused;
  rl__window_params p = params(10, 100, 2);
  alg_state s = {{0}};
  decide(&p, &s, 0, 1);
  decide(&p, &s, 5, 1);
  decide(&p, &s, 10, 1); /* gaps 5 and 5: (0, 1) + (5, 1) -> (5, 2) */
  assert_int_equal(left_at(&p, &s, 100), 7); /* exact: 8 */
  assert_int_equal(left_at(&p, &s, 105), 9);
  assert_int_equal(left_at(&p, &s, 110), 10);
}

static void test_merge_with_new_entry(void **unused) {
  (void)unused;
  rl__window_params p = params(10, 100, 2);
  alg_state s = {{0}};
  decide(&p, &s, 0, 1);
  decide(&p, &s, 50, 1);
  decide(&p, &s, 51, 3); /* gaps 50 and 1: (50, 1) + new -> (51, 4) */
  assert_int_equal(left_at(&p, &s, 100), 6);
  assert_int_equal(left_at(&p, &s, 150), 6); /* exact: 7 */
  assert_int_equal(left_at(&p, &s, 151), 10);
  rl__verdict v = decide(&p, &s, 120, 7);
  expect(v, 0, 6, 31, 31);
}

/* The largest validated values and then some: no overflow (UBSan). */
static void test_large_values(void **unused) {
  (void)unused;
  uint64_t w = RL_LOG_DURATION_MAX_MS;
  rl__window_params p = params(RL_LOG_LIMIT_MAX, w, 2);
  alg_state s = {{0}};
  expect(decide(&p, &s, 5, UINT32_MAX - 1), 1, 1, w, 0);
  expect(decide(&p, &s, 6, 1), 1, 0, w, 0);
  expect(decide(&p, &s, 7, 1), 0, 0, w - 1, w - 2);
  expect(decide(&p, &s, 7, (uint64_t)UINT32_MAX + 1), 0, 0, w - 1,
         RL_RETRY_NEVER);
  expect(decide(&p, &s, (int64_t)w + 5, 1), 1, UINT32_MAX - 2, w, 0);
  int64_t far = INT64_MAX - 3;
  expect(decide(&p, &s, far, UINT32_MAX), 1, 0, w, 0);
  assert_true(rl__sliding_log_expiry(&p, s.b) == INT64_MAX);
  expect(decide(&p, &s, INT64_MAX, 1), 0, 0, w - 3, w - 3);
  /* Out-of-range parameters and garbage states: clamped, never UB. */
  rl__window_params bad = params(UINT64_MAX, UINT64_MAX, UINT32_MAX);
  alg_state junk;
  memset(&junk, 0xff, sizeof(junk));
  bad.log_slots = MAX_SLOTS;
  (void)decide(&bad, &junk, INT64_MAX, UINT64_MAX);
  (void)decide(&bad, &junk, 0, 1);
  (void)rl__sliding_log_expiry(&bad, junk.b);
  rl__window_params zero = params(0, 0, 0);
  memset(&junk, 0x7f, sizeof(junk));
  (void)decide(&zero, &junk, -1, 0);
  (void)decide(&zero, &junk, 1, 1);
}

/* ---- random traffic ---- */

/* One random run against the bounded reference (all fields equal) and the
 * exact one fed with the same admissions (never admits more). */
static void random_run(uint64_t limit, uint64_t w, uint32_t slots, int steps,
                       int64_t jump_max) {
  rl__window_params p = params(limit, w, slots);
  alg_state s = {{0}};
  static ref_log bounded, exact;
  memset(&bounded, 0, sizeof(bounded));
  memset(&exact, 0, sizeof(exact));
  bounded.slots = slots;
  exact.slots = REF_MAX - 1;
  int64_t clock = (int64_t)rnd(50);
  for (int step = 0; step < steps; step++) {
    clock = clock_step(clock, 16, 2 * w, (uint64_t)jump_max);
    uint64_t cost = 1 + rnd(limit + 1);
    rl__verdict v = decide_exact(&p, &s, clock, cost);
    expect_same(v, ref_decide(&bounded, limit, w, clock, cost));
    rl__verdict x = ref_eval(&exact, limit, w, clock, cost);
    assert_true(!v.allowed || x.allowed);
    if (v.allowed) {
      ref_commit(&exact, w, clock, cost);
    }
    assert_true(ref_total(&exact) <= limit);
  }
}

/* L <= S: the log never merges, so it is the exact sliding window. */
static void test_random_exact_when_limit_fits(void **unused) {
  (void)unused;
  for (int run = 0; run < 300; run++) {
    uint32_t slots = 2 + (uint32_t)rnd(MAX_SLOTS - 1);
    uint64_t limit = 1 + rnd(slots);
    uint64_t w = 1 + rnd(40);
    rl__window_params p = params(limit, w, slots);
    alg_state s = {{0}};
    static ref_log exact;
    memset(&exact, 0, sizeof(exact));
    exact.slots = REF_MAX - 1;
    int64_t clock = (int64_t)rnd(50);
    for (int step = 0; step < 200; step++) {
      clock = clock_step(clock, 16, 2 * w, w / 3 + 2);
      uint64_t cost = 1 + rnd(limit + 1);
      rl__verdict v = decide(&p, &s, clock, cost);
      expect_same(v, ref_decide(&exact, limit, w, clock, cost));
    }
  }
}

/* L > S: more admission times than slots, so merges happen all the time. */
static void test_random_merging(void **unused) {
  (void)unused;
  for (int run = 0; run < 400; run++) {
    uint32_t slots = 2 + (uint32_t)rnd(3);
    uint64_t limit = slots + 1 + rnd(10);
    uint64_t w = 1 + rnd(60);
    random_run(limit, w, slots, 200, (int64_t)(w / 4 + 2));
  }
}

/* Steady traffic for more than 2^32 ms: the offsets must be rebased, and
 * the log must go on deciding exactly like the reference. */
static void steady_run(uint64_t limit, uint64_t w, uint32_t slots,
                       int64_t step_ms, int64_t until) {
  rl__window_params p = params(limit, w, slots);
  alg_state s = {{0}};
  static ref_log bounded;
  memset(&bounded, 0, sizeof(bounded));
  bounded.slots = slots;
  int64_t first = 0;
  int64_t t = 12345;
  for (long i = 0; t < until; i++, t += step_ms + (int64_t)rnd(3)) {
    rl__verdict v = decide(&p, &s, t, 1);
    expect_same(v, ref_decide(&bounded, limit, w, t, 1));
    if (i == 0) {
      first = state_base(&s);
    }
  }
  assert_true(first == 12345);
  /* The log never emptied, so only a rebase can have moved the base. */
  assert_true(state_base(&s) > first + (int64_t)UINT32_MAX);
  assert_true(rl__sliding_log_expiry(&p, s.b) > until);
}

static void test_rebase_offsets(void **unused) {
  (void)unused;
  int64_t until = (int64_t)3 * UINT32_MAX;
  steady_run(4, 100000, 4, 24989, until);
  steady_run(9, 100000, 4, 11111, until); /* full log: merges too */
  steady_run(3, RL_LOG_DURATION_MAX_MS, 4, (int64_t)1 << 30, 20 * until);
  steady_run(8, (uint64_t)1 << 31, 3, ((int64_t)1 << 28) + 7, until);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_size),
      cmocka_unit_test(test_zero_state_at_zero),
      cmocka_unit_test(test_window_edges),
      cmocka_unit_test(test_cost_limits),
      cmocka_unit_test(test_clock_backwards),
      cmocka_unit_test(test_merge_smallest_gap),
      cmocka_unit_test(test_merge_tie_goes_to_oldest),
      cmocka_unit_test(test_merge_with_new_entry),
      cmocka_unit_test(test_large_values),
      cmocka_unit_test(test_random_exact_when_limit_fits),
      cmocka_unit_test(test_random_merging),
      cmocka_unit_test(test_rebase_offsets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
