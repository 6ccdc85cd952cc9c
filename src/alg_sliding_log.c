/*
 * alg_sliding_log.c - the exact sliding window, as a log of admissions
 * bounded to S entries (S = log_slots). Specification: docs/Algorithms.md,
 * "Sliding window log".
 *
 * The state is a header followed by uint32_t dt[S] and uint32_t n[S]: entry
 * i says that n[i] units were admitted at time base + dt[i]. The entries in
 * use are the len from index head on. Expiring entries only moves head, and
 * the array is compacted when an append reaches its end, so the common case
 * moves no memory. Entries are sorted by time, times are distinct, and the
 * newest entry is always the latest admission. Merging two entries only
 * ever moves units later in time, which is why a full log can deny too much
 * but never admit too much.
 */
#include <stdint.h>
#include <string.h>

#include "alg_impl.h"
#include "saturate.h"

typedef struct sl_header {
  int64_t base;   /* the offsets dt[] are relative to it */
  uint32_t total; /* sum of n[] over the entries in use */
  uint16_t head;  /* index of the oldest entry */
  uint16_t len;   /* entries in use: head + len <= S */
} sl_header;

_Static_assert(sizeof(sl_header) == 16, "header must stay 16 bytes");
_Static_assert(RL_LOG_SLOTS_MAX <= UINT16_MAX, "head and len are 16 bits");

typedef struct sl_params {
  uint64_t limit;  /* L <= UINT32_MAX, so totals fit the uint32 counters */
  uint64_t window; /* W <= UINT32_MAX, so live offsets fit in 32 bits */
  uint32_t slots;  /* S */
} sl_params;

/* The state seen as its parts. dt and n point at the oldest entry, so
 * everything but compaction indexes entries from 0 to len - 1. */
typedef struct sl_log {
  sl_header *h;
  uint32_t *dt;
  uint32_t *n;
  uint32_t *dt_all; /* the whole arrays */
  uint32_t *n_all;
} sl_log;

static sl_params sl_clamp(const rl__window_params *p) {
  sl_params k;
  k.limit = rl__clamp_u64(p->limit, 1, RL_LOG_LIMIT_MAX);
  k.window = rl__clamp_u64(p->duration_ms, 1, RL_LOG_DURATION_MAX_MS);
  k.slots =
      (uint32_t)rl__clamp_u64(p->log_slots, RL_LOG_SLOTS_MIN, RL_LOG_SLOTS_MAX);
  return k;
}

static void sl_point(sl_log *g) {
  g->dt = g->dt_all + g->h->head;
  g->n = g->n_all + g->h->head;
}

static sl_log sl_open(void *state, uint32_t slots) {
  sl_log g;
  g.h = state;
  g.dt_all = (uint32_t *)(g.h + 1);
  g.n_all = g.dt_all + slots;
  /* Never index past the arrays, whatever the bytes say. */
  if (g.h->len > slots) {
    g.h->len = (uint16_t)slots;
  }
  if (g.h->head > slots - g.h->len || g.h->len == 0) {
    g.h->head = 0;
  }
  if (g.h->len == 0) {
    g.h->total = 0;
  }
  sl_point(&g);
  return g;
}

static int64_t sl_time(const sl_log *g, uint32_t i) {
  return rl__sat_add_i64(g->h->base, g->dt[i]);
}

/* Step 1: a now before the newest entry is treated as that entry's time. */
static int64_t sl_effective_now(const sl_log *g, int64_t now) {
  if (g->h->len == 0) {
    return now;
  }
  int64_t last = sl_time(g, g->h->len - 1);
  return now < last ? last : now;
}

/* Drops the first k entries holding `units` units. */
static void sl_drop_front(sl_log *g, uint32_t k, uint64_t units) {
  uint32_t keep = g->h->len - k;
  g->h->head = keep ? (uint16_t)(g->h->head + k) : 0;
  g->h->len = (uint16_t)keep;
  g->h->total = keep ? (uint32_t)rl__sat_sub_u64(g->h->total, units) : 0;
  sl_point(g);
}

/* Moves the entries to the start of the arrays. */
static void sl_compact(sl_log *g) {
  memmove(g->dt_all, g->dt, g->h->len * sizeof(uint32_t));
  memmove(g->n_all, g->n, g->h->len * sizeof(uint32_t));
  g->h->head = 0;
  sl_point(g);
}

/* Step 2: drops the entries with t <= now - W, i.e. dt <= now - base - W.
 * Needs now >= the newest entry (so now >= base). */
static void sl_expire(sl_log *g, int64_t now, uint64_t window) {
  uint64_t age = rl__dist(now, g->h->base);
  if (g->h->len == 0 || age < window) {
    return;
  }
  uint64_t cut = age - window;
  uint32_t k = 0;
  uint64_t units = 0;
  while (k < g->h->len && g->dt[k] <= cut) {
    units += g->n[k];
    k++;
  }
  if (k > 0) {
    sl_drop_front(g, k, units);
  }
}

/* Clamps now and expires: the normalisation shared by evaluate and commit.
 * Returns the effective now. */
static int64_t sl_normalise(sl_log *g, int64_t now, uint64_t window) {
  int64_t eff = sl_effective_now(g, rl__nonneg(now));
  sl_expire(g, eff, window);
  return eff;
}

/* Step 5, denied with c <= L: the oldest entries must expire until
 * `need` = total + c - L units are gone; the one that completes it expires
 * at t_i + W. */
static uint64_t sl_retry_after(const sl_log *g, uint64_t need, uint64_t window,
                               int64_t now) {
  uint64_t sum = 0;
  uint32_t i = 0;
  for (; i + 1 < g->h->len; i++) {
    sum += g->n[i];
    if (sum >= need) {
      break;
    }
  }
  /* Past the last entry the log is empty; with a consistent total the loop
   * stops before that anyway. */
  return rl__max_u64(1, rl__until(sl_time(g, i), window, now));
}

size_t rl__sliding_log_state_size(const rl__window_params *p) {
  sl_params k = sl_clamp(p);
  return sizeof(sl_header) + 2 * sizeof(uint32_t) * (size_t)k.slots;
}

/* Step 5 for a denial: the state is as it was (after normalising). */
static void sl_report_denied(const sl_log *g, const sl_params *k, int64_t now,
                             uint64_t cost, rl__verdict *out) {
  uint32_t len = g->h->len;
  uint64_t total = g->h->total;
  out->allowed = 0;
  out->remaining = rl__sat_sub_u64(k->limit, total);
  out->reset_after_ms =
      len ? rl__until(sl_time(g, len - 1), k->window, now) : 0;
  if (cost > k->limit || len == 0) {
    out->retry_after_ms = RL_RETRY_NEVER;
  } else {
    out->retry_after_ms =
        sl_retry_after(g, total + cost - k->limit, k->window, now);
  }
}

void rl__sliding_log_evaluate(const rl__window_params *p, void *state,
                              int64_t now, uint64_t cost, rl__verdict *out) {
  sl_params k = sl_clamp(p);
  sl_log g = sl_open(state, k.slots);
  now = rl__nonneg(now);
  int64_t eff = sl_normalise(&g, now, k.window);
  uint64_t room = rl__sat_sub_u64(k.limit, g.h->total);
  if (cost > room) {
    sl_report_denied(&g, &k, now, cost, out);
    return;
  }
  /* The admitted units land at eff, which becomes the newest time. */
  out->allowed = 1;
  out->remaining = room - cost;
  out->reset_after_ms = rl__until(eff, k.window, now);
  out->retry_after_ms = 0;
}

/* Rewrites the offsets relative to the oldest entry. Live entries span less
 * than W <= UINT32_MAX, so now - base fits in 32 bits afterwards. */
static void sl_rebase(sl_log *g) {
  uint32_t shift = g->dt[0];
  for (uint32_t i = 0; i < g->h->len; i++) {
    g->dt[i] -= shift;
  }
  g->h->base = rl__sat_add_i64(g->h->base, shift);
}

/* Index i of the adjacent pair (i, i + 1) with the smallest gap among the
 * stored entries followed by a new one at offset d; ties go to the oldest
 * pair. Index len - 1 is the pair (newest stored, new). */
static uint32_t sl_smallest_gap(const sl_log *g, uint32_t d) {
  uint32_t len = g->h->len;
  uint32_t best = 0;
  uint32_t gap = UINT32_MAX;
  /* Strictly smaller only: of equal gaps the oldest stays. */
  for (uint32_t i = 0; i + 1 < len; i++) {
    uint32_t gi = g->dt[i + 1] - g->dt[i];
    if (gi < gap) {
      gap = gi;
      best = i;
    }
  }
  return d - g->dt[len - 1] < gap ? len - 1 : best;
}

/* Step 4 with a full log: merges the pair with the smallest gap into its
 * later time, which makes room for (d, c) at the end. */
static void sl_merge_append(sl_log *g, uint32_t d, uint64_t cost) {
  uint32_t len = g->h->len;
  uint32_t i = sl_smallest_gap(g, d);
  if (i == len - 1) {
    g->dt[i] = d;
    g->n[i] = rl__sat_add_u32(g->n[i], cost);
    return;
  }
  g->n[i + 1] = rl__sat_add_u32(g->n[i + 1], g->n[i]);
  memmove(g->dt + i, g->dt + i + 1, (len - 1 - i) * sizeof(uint32_t));
  memmove(g->n + i, g->n + i + 1, (len - 1 - i) * sizeof(uint32_t));
  g->dt[len - 1] = d;
  g->n[len - 1] = (uint32_t)rl__min_u64(cost, UINT32_MAX);
}

/* Step 4 for a time later than every entry: appends (now, c), merging first
 * when the log is full. */
static void sl_append(sl_log *g, int64_t now, uint64_t cost, uint32_t slots) {
  if (g->h->len == 0) {
    g->h->base = now;
  } else if (rl__dist(now, g->h->base) > UINT32_MAX) {
    sl_rebase(g);
  }
  /* Fits after a rebase (see above); the clamp only guards corrupt state. */
  uint32_t d = (uint32_t)rl__min_u64(rl__dist(now, g->h->base), UINT32_MAX);
  if (g->h->len == slots) { /* so head == 0 */
    sl_merge_append(g, d, cost);
    return;
  }
  if (g->h->head + g->h->len == slots) {
    sl_compact(g);
  }
  g->dt[g->h->len] = d;
  g->n[g->h->len] = (uint32_t)rl__min_u64(cost, UINT32_MAX);
  g->h->len++;
}

void rl__sliding_log_commit(const rl__window_params *p, void *state,
                            int64_t now, uint64_t cost) {
  sl_params k = sl_clamp(p);
  sl_log g = sl_open(state, k.slots);
  /* Zero units change no decision; an entry for them would waste a slot. */
  if (cost == 0) {
    return;
  }
  int64_t eff = sl_normalise(&g, now, k.window);
  uint32_t len = g.h->len;
  if (len > 0 && sl_time(&g, len - 1) == eff) {
    g.n[len - 1] = rl__sat_add_u32(g.n[len - 1], cost);
  } else {
    sl_append(&g, eff, cost, k.slots);
  }
  g.h->total = rl__sat_add_u32(g.h->total, cost);
}

int64_t rl__sliding_log_expiry(const rl__window_params *p, const void *state) {
  sl_params k = sl_clamp(p);
  const sl_header *h = state;
  if (h->len == 0) {
    return 0;
  }
  const uint32_t *dt = (const uint32_t *)(h + 1);
  uint32_t last = (uint32_t)h->head + h->len - 1;
  last = last < k.slots ? last : k.slots - 1; /* corrupt bytes */
  return rl__sat_add_i64(rl__sat_add_i64(h->base, dt[last]), k.window);
}
