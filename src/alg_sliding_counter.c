/*
 * alg_sliding_counter.c - the sliding window counter: the previous aligned
 * window's count, weighted by how much of it the sliding window still
 * overlaps, plus the current window's count. Specification:
 * docs/Algorithms.md, "Sliding window counter".
 *
 * Every comparison is exact: the estimate prev * (W - e) / W + cur is never
 * rounded, both sides are multiplied by W in 128 bits instead.
 */
#include <stdint.h>

#include "alg_impl.h"
#include "saturate.h"

typedef struct sc_state {
  int64_t start; /* start of the current aligned window */
  uint64_t prev; /* units spent in the window before it */
  uint64_t cur;  /* units spent in it */
} sc_state;

_Static_assert(sizeof(sc_state) % 8 == 0, "state size must be a multiple of 8");

typedef struct sc_params {
  uint64_t limit;  /* L */
  uint64_t window; /* W */
} sc_params;

static sc_params sc_clamp(const rl__window_params *p) {
  sc_params k;
  k.limit = rl__clamp_u64(p->limit, 1, RL_LIMIT_MAX);
  k.window = rl__clamp_u64(p->duration_ms, 1, RL_DURATION_MAX_MS);
  return k;
}

/* Step 1: moves the state to now's window; a clock that went back leaves it
 * alone (the rules then use start as the time). States written here have an
 * aligned start, so the next two windows need no division. */
static void sc_roll(sc_state *s, uint64_t window, int64_t now) {
  if (now < s->start) {
    return;
  }
  uint64_t d = rl__dist(now, s->start);
  if (d < window) {
    return;
  }
  if (d < 2 * window) {
    s->prev = s->cur;
    s->start = rl__sat_add_i64(s->start, window);
  } else {
    s->prev = 0;
    s->start = now - (int64_t)((uint64_t)now % window);
  }
  s->cur = 0;
}

/* Elapsed time in the current window, 0 <= e < W. */
static uint64_t sc_elapsed(const sc_state *s, int64_t now) {
  return rl__dist(now, s->start);
}

/* ceil(prev * (W - e) / W): the previous window's units still counted, in
 * whole units. The two cheap cases avoid a division. */
static uint64_t sc_prev_share(uint64_t prev, uint64_t e, uint64_t window) {
  if (prev == 0 || e == 0) {
    return prev;
  }
  return rl__ceil_div_wide(rl__mul_wide(prev, window - e), window);
}

/* Step 2: prev * (W - e) + (cur + c) * W <= L * W, without overflow. */
static int sc_admits(const sc_state *s, const sc_params *k, uint64_t e,
                     uint64_t cost) {
  if (cost > k->limit || s->cur > k->limit - cost) {
    return 0;
  }
  uint64_t room = k->limit - cost - s->cur;
  return rl__mul_wide(s->prev, k->window - e) <= rl__mul_wide(room, k->window);
}

/* Step 4, denied with c <= L: the earliest admitting time, as an offset
 * from start. Admissibility only grows with time absent traffic. */
static uint64_t sc_retry_offset(const sc_state *s, const sc_params *k,
                                uint64_t cost) {
  uint64_t w = k->window;
  if (s->cur <= k->limit - cost && s->prev > 0) {
    /* This window: the earliest e' with prev * (W - e') <= room * W. */
    uint64_t q = rl__muldiv_u64(k->limit - cost - s->cur, w, s->prev);
    if (q > 0) {
      return w - rl__min_u64(q, w);
    }
  }
  /* The next window, where prev' = cur and cur' = 0. The min() makes
   * e'' >= 0 when (L - c) * W / cur exceeds W (see the spec). */
  uint64_t e2 = 0;
  if (s->cur > 0) {
    e2 = w - rl__min_u64(rl__muldiv_u64(k->limit - cost, w, s->cur), w);
  }
  return w + e2;
}

/* Step 4: until the estimate is back to 0. */
static uint64_t sc_reset_after(const sc_state *s, uint64_t cur, uint64_t window,
                               int64_t now) {
  if (cur > 0) {
    return rl__until(s->start, 2 * window, now);
  }
  return s->prev > 0 ? rl__until(s->start, window, now) : 0;
}

size_t rl__sliding_counter_state_size(const rl__window_params *p) {
  (void)p;
  return sizeof(sc_state);
}

/* Step 4 for a denial, with share = ceil(prev * (W - e) / W). */
static void sc_report_denied(const sc_state *s, const sc_params *k,
                             uint64_t share, int64_t now, uint64_t cost,
                             rl__verdict *out) {
  out->allowed = 0;
  out->remaining = rl__sat_sub_u64(rl__sat_sub_u64(k->limit, s->cur), share);
  out->reset_after_ms = sc_reset_after(s, s->cur, k->window, now);
  if (cost > k->limit) {
    out->retry_after_ms = RL_RETRY_NEVER;
  } else {
    uint64_t off = sc_retry_offset(s, k, cost);
    out->retry_after_ms = rl__max_u64(1, rl__until(s->start, off, now));
  }
}

void rl__sliding_counter_evaluate(const rl__window_params *p, void *state,
                                  int64_t now, uint64_t cost,
                                  rl__verdict *out) {
  sc_params k = sc_clamp(p);
  sc_state *s = state;
  now = rl__nonneg(now);
  sc_roll(s, k.window, now);
  uint64_t e = sc_elapsed(s, now);
  uint64_t share = sc_prev_share(s->prev, e, k.window);
  if (!sc_admits(s, &k, e, cost)) {
    sc_report_denied(s, &k, share, now, cost, out);
    return;
  }
  /* Admitted, so share <= L - c - cur. */
  out->allowed = 1;
  out->remaining = k.limit - cost - s->cur - share;
  out->reset_after_ms = sc_reset_after(s, s->cur + cost, k.window, now);
  out->retry_after_ms = 0;
}

void rl__sliding_counter_commit(const rl__window_params *p, void *state,
                                int64_t now, uint64_t cost) {
  sc_params k = sc_clamp(p);
  sc_state *s = state;
  sc_roll(s, k.window, rl__nonneg(now));
  s->cur = rl__sat_add_u64(s->cur, cost);
}

int64_t rl__sliding_counter_expiry(const rl__window_params *p,
                                   const void *state) {
  sc_params k = sc_clamp(p);
  const sc_state *s = state;
  return rl__sat_add_i64(s->start, 2 * k.window);
}
