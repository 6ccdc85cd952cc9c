/*
 * alg_gcra.c - the token bucket, as the generic cell rate algorithm (GCRA):
 * the state is one theoretical arrival time (TAT), the time at which the
 * bucket would be full again. Specification: docs/Algorithms.md, "Token
 * bucket (GCRA)".
 *
 * The emission interval W / L is rational, so a TAT is kept exactly as
 * ms + frac / L with 0 <= frac < L; a quantity "ahead" of now is then
 * (ms - now) * L + frac, an integer in units of 1 / L ms.
 */
#include <stdint.h>

#include "alg_impl.h"
#include "saturate.h"

typedef struct gc_state {
  int64_t tat_ms;    /* TAT, whole milliseconds */
  uint64_t tat_frac; /* TAT, the fraction in units of 1 / L ms */
} gc_state;

_Static_assert(sizeof(gc_state) % 8 == 0, "state size must be a multiple of 8");

typedef struct gc_params {
  uint64_t limit;  /* L */
  uint64_t window; /* W */
  uint64_t burst;  /* B */
} gc_params;

/* A time as ms + frac / L. */
typedef struct gc_time {
  int64_t ms;
  uint64_t frac;
} gc_time;

static gc_params gc_clamp(const rl__window_params *p) {
  gc_params k;
  k.limit = rl__clamp_u64(p->limit, 1, RL_LIMIT_MAX);
  k.window = rl__clamp_u64(p->duration_ms, 1, RL_DURATION_MAX_MS);
  k.burst = rl__min_u64(p->burst, RL_LIMIT_MAX);
  return k;
}

/* The stored TAT. A fraction >= L cannot come from this code; rounding it
 * up keeps such a state from ever admitting more. */
static gc_time gc_tat(const gc_state *s, uint64_t limit) {
  gc_time t = {s->tat_ms, s->tat_frac};
  if (t.frac >= limit) {
    t.ms = rl__sat_add_i64(t.ms, 1);
    t.frac = 0;
  }
  return t;
}

/* Step 1: base = max(TAT, now). */
static gc_time gc_base(gc_time tat, int64_t now) {
  if (tat.ms > now || (tat.ms == now && tat.frac > 0)) {
    return tat;
  }
  gc_time t = {now, 0};
  return t;
}

/* Step 2: t + c * W / L, carrying the fraction into the milliseconds. */
static gc_time gc_add(gc_time t, uint64_t cost, const gc_params *k) {
  rl__u128 x = rl__mul_wide(cost, k->window);
  uint64_t q = rl__div_wide(x, k->limit);
  uint64_t r = (uint64_t)(x % k->limit);
  t.ms = rl__sat_add_i64(t.ms, q);
  t.frac += r; /* both < L <= 2^40: no wrap */
  if (t.frac >= k->limit) {
    t.frac -= k->limit;
    t.ms = rl__sat_add_i64(t.ms, 1);
  }
  return t;
}

/* (t - now) * L for t >= now, in units of 1 / L ms. */
static rl__u128 gc_ahead(gc_time t, int64_t now, uint64_t limit) {
  return rl__mul_wide(rl__dist(t.ms, now), limit) + t.frac;
}

/* Step 5: floor((B * W - ahead) / W), or 0 when negative. */
static uint64_t gc_remaining(rl__u128 ahead, const gc_params *k) {
  rl__u128 bw = rl__mul_wide(k->burst, k->window);
  if (ahead >= bw) {
    return 0;
  }
  return k->burst - rl__ceil_div_wide(ahead, k->window);
}

/* Step 5: ceil(t - now), for t >= now. */
static uint64_t gc_until(gc_time t, int64_t now) {
  return rl__sat_add_u64(rl__dist(t.ms, now), t.frac > 0);
}

static void gc_report(gc_time tx, int64_t now, const gc_params *k,
                      rl__verdict *out) {
  out->remaining = gc_remaining(gc_ahead(tx, now, k->limit), k);
  out->reset_after_ms = gc_until(tx, now);
}

size_t rl__gcra_state_size(const rl__window_params *p) {
  (void)p;
  return sizeof(gc_state);
}

void rl__gcra_evaluate(const rl__window_params *p, void *state, int64_t now,
                       uint64_t cost, rl__verdict *out) {
  gc_params k = gc_clamp(p);
  now = rl__nonneg(now);
  gc_time base = gc_base(gc_tat(state, k.limit), now);
  gc_time next = gc_add(base, cost, &k);
  rl__u128 ahead = gc_ahead(next, now, k.limit);
  rl__u128 bw = rl__mul_wide(k.burst, k.window);
  out->allowed = cost <= k.burst && ahead <= bw;
  if (out->allowed) {
    gc_report(next, now, &k, out);
    out->retry_after_ms = 0;
    return;
  }
  gc_report(base, now, &k, out);
  if (cost > k.burst) {
    out->retry_after_ms = RL_RETRY_NEVER;
  } else {
    /* ceil(new - B * W / L - now) = ceil((ahead - B * W) / L). */
    uint64_t d = rl__ceil_div_wide(ahead - bw, k.limit);
    out->retry_after_ms = rl__max_u64(1, d);
  }
}

void rl__gcra_commit(const rl__window_params *p, void *state, int64_t now,
                     uint64_t cost) {
  gc_params k = gc_clamp(p);
  gc_state *s = state;
  gc_time base = gc_base(gc_tat(s, k.limit), rl__nonneg(now));
  gc_time next = gc_add(base, cost, &k);
  s->tat_ms = next.ms;
  s->tat_frac = next.frac;
}

int64_t rl__gcra_expiry(const rl__window_params *p, const void *state) {
  (void)p;
  const gc_state *s = state;
  return rl__sat_add_i64(s->tat_ms, s->tat_frac > 0);
}
