/*
 * alg_fixed_window.c - the fixed window algorithm: one counter per window,
 * windows aligned to multiples of W since the epoch. Specification:
 * docs/Algorithms.md, "Fixed window".
 */
#include <stdint.h>

#include "alg_impl.h"
#include "saturate.h"

typedef struct fw_state {
  int64_t start;  /* start of the current aligned window */
  uint64_t count; /* units spent in it */
} fw_state;

_Static_assert(sizeof(fw_state) % 8 == 0, "state size must be a multiple of 8");

typedef struct fw_params {
  uint64_t limit;  /* L */
  uint64_t window; /* W */
} fw_params;

static fw_params fw_clamp(const rl__window_params *p) {
  fw_params k;
  k.limit = rl__clamp_u64(p->limit, 1, RL_LIMIT_MAX);
  k.window = rl__clamp_u64(p->duration_ms, 1, RL_DURATION_MAX_MS);
  return k;
}

/* Step 2: moves the state to now's window. A clock that went back
 * (now < start) leaves it as it is: the rules then use start as the time,
 * which here only shows in the delays, and those are computed from the
 * window's end anyway. */
static void fw_roll(fw_state *s, uint64_t window, int64_t now) {
  /* States written here have an aligned start, so a now in
   * [start, start + W) is in start's window and needs no division. */
  if (now >= s->start && rl__dist(now, s->start) >= window) {
    s->start = now - (int64_t)((uint64_t)now % window);
    s->count = 0;
  }
}

size_t rl__fixed_window_state_size(const rl__window_params *p) {
  (void)p;
  return sizeof(fw_state);
}

void rl__fixed_window_evaluate(const rl__window_params *p, void *state,
                               int64_t now, uint64_t cost, rl__verdict *out) {
  fw_params k = fw_clamp(p);
  fw_state *s = state;
  now = rl__nonneg(now);
  fw_roll(s, k.window, now);
  uint64_t room = rl__sat_sub_u64(k.limit, s->count);
  int allowed = cost <= room;
  /* The window is restored at its end, or already if nothing is in it. */
  uint64_t used = allowed ? rl__sat_add_u64(s->count, cost) : s->count;
  uint64_t until_end = rl__until(s->start, k.window, now);
  out->allowed = allowed;
  out->remaining = allowed ? room - cost : room;
  out->reset_after_ms = used ? until_end : 0;
  if (allowed) {
    out->retry_after_ms = 0;
  } else {
    out->retry_after_ms = cost <= k.limit ? until_end : RL_RETRY_NEVER;
  }
}

void rl__fixed_window_commit(const rl__window_params *p, void *state,
                             int64_t now, uint64_t cost) {
  fw_params k = fw_clamp(p);
  fw_state *s = state;
  fw_roll(s, k.window, rl__nonneg(now));
  s->count = rl__sat_add_u64(s->count, cost);
}

int64_t rl__fixed_window_expiry(const rl__window_params *p, const void *state) {
  fw_params k = fw_clamp(p);
  const fw_state *s = state;
  return rl__sat_add_i64(s->start, k.window);
}
