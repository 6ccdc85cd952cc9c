/*
 * oracle.c - brute-force reference models for the model test (see oracle.h).
 *
 * Every window is evaluated by a pure "view" at any time t >= the decision's
 * now: the exact definition applied to the kept history. The retry delay of
 * the exact models is not computed from a formula but searched: the smallest
 * r >= 1 whose view at now + r admits (admissibility is monotone in time
 * without traffic). The bounded log is the specification's data structure
 * and uses its formulas.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

typedef __int128 i128;

/* One window's answer at some time. */
typedef struct om_view {
  int64_t eff; /* the time the definition is applied at (clamped now) */
  int admit;
  uint64_t rem_now;   /* remaining without this request */
  uint64_t rem_after; /* remaining after committing it (if admit) */
} om_view;

static void die(const char *what) {
  fprintf(stderr, "oracle: %s\n", what);
  abort();
}

/* ---- events: stamped units with prefix sums ---------------------------- */

static void ev_reserve(om_events *e) {
  if (e->head + e->len < e->cap) {
    return;
  }
  if (e->head > 0 && e->head >= e->cap / 2) {
    memmove(e->t, e->t + e->head, e->len * sizeof *e->t);
    memmove(e->cum, e->cum + e->head, e->len * sizeof *e->cum);
    e->head = 0;
    return;
  }
  size_t cap = e->cap ? e->cap * 2 : 16;
  int64_t *t = realloc(e->t, cap * sizeof *t);
  if (t == NULL) {
    die("out of memory");
  }
  e->t = t;
  uint64_t *cum = realloc(e->cum, cap * sizeof *cum);
  if (cum == NULL) {
    die("out of memory");
  }
  e->cum = cum;
  e->cap = cap;
}

static uint64_t ev_total(const om_events *e) {
  return e->len ? e->cum[e->head + e->len - 1] : e->dropped;
}

static int64_t ev_last(const om_events *e) {
  return e->t[e->head + e->len - 1];
}

static void ev_push(om_events *e, int64_t t, uint64_t c) {
  if (e->len > 0 && ev_last(e) == t) {
    e->cum[e->head + e->len - 1] += c;
    return;
  }
  if (e->len > 0 && ev_last(e) > t) {
    die("events pushed out of order");
  }
  uint64_t total = ev_total(e);
  ev_reserve(e);
  e->t[e->head + e->len] = t;
  e->cum[e->head + e->len] = total + c;
  e->len++;
}

/* Number of live events with a stamp <= x. */
static size_t ev_count_upto(const om_events *e, int64_t x) {
  size_t lo = 0, hi = e->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (e->t[e->head + mid] <= x) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

/* Dropped units plus the live units stamped <= x. */
static uint64_t ev_prefix(const om_events *e, int64_t x) {
  size_t n = ev_count_upto(e, x);
  return n ? e->cum[e->head + n - 1] : e->dropped;
}

/* Live units stamped in (lo, hi]. */
static uint64_t ev_range(const om_events *e, int64_t lo, int64_t hi) {
  return hi <= lo ? 0 : ev_prefix(e, hi) - ev_prefix(e, lo);
}

static void ev_drop_upto(om_events *e, int64_t x) {
  size_t n = ev_count_upto(e, x);
  if (n > 0) {
    e->dropped = e->cum[e->head + n - 1];
    e->head += n;
    e->len -= n;
  }
  if (e->len == 0) {
    e->head = 0;
  }
}

/* ---- per-algorithm views (pure) ---------------------------------------- */

static int64_t aligned(int64_t t, uint64_t w) {
  return t - t % (int64_t)w;
}

static uint64_t sub_or_zero(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

static void count_view(const om_window *w, uint64_t used, uint64_t c,
                       om_view *v) {
  v->admit = c <= w->limit && used <= w->limit - c;
  v->rem_now = sub_or_zero(w->limit, used);
  v->rem_after = v->admit ? w->limit - used - c : v->rem_now;
}

static void log_view(const om_window *w, int64_t t, uint64_t c, om_view *v) {
  int live = w->ev.len > 0;
  v->eff = live && t < ev_last(&w->ev) ? ev_last(&w->ev) : t;
  uint64_t used = ev_range(&w->ev, v->eff - (int64_t)w->duration, v->eff);
  count_view(w, used, c, v);
}

static uint64_t units_at(const om_window *w, int64_t start) {
  return ev_range(&w->ev, start - 1, start);
}

static void fixed_view(const om_window *w, int64_t t, uint64_t c, om_view *v) {
  int64_t a = aligned(t, w->duration);
  v->eff = a < w->start ? w->start : t;
  count_view(w, a > w->start ? 0 : units_at(w, w->start), c, v);
}

static uint64_t counter_rem(const om_window *w, uint64_t prev, uint64_t cur,
                            int64_t e) {
  i128 W = (i128)w->duration;
  i128 room = (i128)w->limit * W - (i128)prev * (W - e) - (i128)cur * W;
  return room <= 0 ? 0 : (uint64_t)(room / W);
}

static void counter_view(const om_window *w, int64_t t, uint64_t c,
                         om_view *v) {
  int64_t W = (int64_t)w->duration, a = aligned(t, w->duration);
  uint64_t prev = 0, cur = 0;
  int64_t e = t - a;
  v->eff = t;
  if (a <= w->start) {
    prev = units_at(w, w->start - W);
    cur = units_at(w, w->start);
    if (a < w->start) {
      v->eff = w->start;
      e = 0;
    }
  } else if (a == w->start + W) {
    prev = units_at(w, w->start);
  }
  i128 lhs = (i128)prev * (W - e) + ((i128)cur + c) * W;
  v->admit = lhs <= (i128)w->limit * W;
  v->rem_now = counter_rem(w, prev, cur, e);
  v->rem_after = v->admit ? counter_rem(w, prev, cur + c, e) : v->rem_now;
}

/* The bucket's level at t, uncapped (the level line through t_ref). */
static i128 token_line(const om_window *w, int64_t t) {
  return w->level + (i128)(t - w->t_ref) * (i128)w->limit;
}

static i128 token_level(const om_window *w, int64_t t) {
  i128 full = (i128)w->burst * (i128)w->duration;
  i128 lvl = token_line(w, t);
  return lvl < full ? lvl : full;
}

static uint64_t token_units(const om_window *w, i128 lvl) {
  return lvl <= 0 ? 0 : (uint64_t)(lvl / (i128)w->duration);
}

static void token_view(const om_window *w, int64_t t, uint64_t c, om_view *v) {
  i128 lvl = token_level(w, t), need = (i128)c * (i128)w->duration;
  v->eff = t;
  v->admit = lvl >= need;
  v->rem_now = token_units(w, lvl);
  v->rem_after = v->admit ? token_units(w, lvl - need) : v->rem_now;
}

/* ---- the bounded log of the specification ------------------------------ */

static void bounded_view(const om_window *w, int64_t t, uint64_t c,
                         om_view *v) {
  const om_bounded *b = &w->b;
  v->eff = b->len && t < b->t[b->len - 1] ? b->t[b->len - 1] : t;
  uint64_t used = b->total;
  for (uint32_t i = 0; i < b->len && b->t[i] <= v->eff - (int64_t)w->duration;
       i++) {
    used -= b->n[i];
  }
  count_view(w, used, c, v);
}

static void bounded_touch(om_window *w, int64_t now) {
  om_bounded *b = &w->b;
  om_view v;
  bounded_view(w, now, 1, &v);
  uint32_t k = 0;
  while (k < b->len && b->t[k] <= v.eff - (int64_t)w->duration) {
    b->total -= b->n[k++];
  }
  memmove(b->t, b->t + k, (b->len - k) * sizeof *b->t);
  memmove(b->n, b->n + k, (b->len - k) * sizeof *b->n);
  b->len -= k;
}

/* Full log: merges the adjacent pair with the smallest gap (ties: the
 * oldest) among the S entries and the new one into the later time. */
static void bounded_merge_append(om_bounded *b, int64_t t, uint64_t c) {
  uint32_t s = b->len, best = 0;
  for (uint32_t i = 1; i < s; i++) {
    int64_t next = i + 1 < s ? b->t[i + 1] : t;
    if (next - b->t[i] < (best + 1 < s ? b->t[best + 1] : t) - b->t[best]) {
      best = i;
    }
  }
  if (best == s - 1) {
    b->t[s - 1] = t;
    b->n[s - 1] += c;
    return;
  }
  b->n[best + 1] += b->n[best];
  memmove(b->t + best, b->t + best + 1, (s - 1 - best) * sizeof *b->t);
  memmove(b->n + best, b->n + best + 1, (s - 1 - best) * sizeof *b->n);
  b->t[s - 1] = t;
  b->n[s - 1] = c;
}

static void bounded_commit(om_window *w, int64_t now, uint64_t c) {
  om_bounded *b = &w->b;
  om_view v;
  bounded_view(w, now, c, &v);
  if (b->len && b->t[b->len - 1] == v.eff) {
    b->n[b->len - 1] += c;
  } else if (b->len < b->slots) {
    b->t[b->len] = v.eff;
    b->n[b->len++] = c;
  } else {
    bounded_merge_append(b, v.eff, c);
  }
  b->total += c;
}

/* Walks from the oldest entry until enough units would have expired. */
static uint64_t bounded_retry(const om_window *w, int64_t now, uint64_t c) {
  const om_bounded *b = &w->b;
  uint64_t need = b->total + c - w->limit, sum = 0;
  uint32_t i = 0;
  for (; i + 1 < b->len; i++) {
    sum += b->n[i];
    if (sum >= need) {
      break;
    }
  }
  int64_t r = b->t[i] + (int64_t)w->duration - now;
  return r < 1 ? 1 : (uint64_t)r;
}

/* ---- dispatch ---------------------------------------------------------- */

static void view(const om_window *w, int64_t t, uint64_t c, om_view *v) {
  memset(v, 0, sizeof *v);
  switch (w->model) {
  case OM_LOG:
    log_view(w, t, c, v);
    break;
  case OM_FIXED:
    fixed_view(w, t, c, v);
    break;
  case OM_COUNTER:
    counter_view(w, t, c, v);
    break;
  case OM_TOKEN:
    token_view(w, t, c, v);
    break;
  case OM_BOUNDED:
    bounded_view(w, t, c, v);
    break;
  }
}

/* The specification's per-decision normalisation: expiry, window roll. */
static void touch(om_window *w, int64_t now) {
  om_view v;
  int64_t a = aligned(now, w->duration);
  switch (w->model) {
  case OM_LOG:
    log_view(w, now, 1, &v);
    ev_drop_upto(&w->ev, v.eff - (int64_t)w->duration);
    break;
  case OM_FIXED:
  case OM_COUNTER:
    if (a > w->start) {
      w->start = a;
    }
    /* only the current (and for the counter the previous) window count */
    ev_drop_upto(&w->ev, w->start - (int64_t)w->duration - 1);
    break;
  case OM_TOKEN:
    break;
  case OM_BOUNDED:
    bounded_touch(w, now);
    break;
  }
}

static void commit(om_window *w, int64_t now, uint64_t c) {
  om_view v;
  switch (w->model) {
  case OM_LOG:
    log_view(w, now, c, &v);
    ev_push(&w->ev, v.eff, c);
    break;
  case OM_FIXED:
  case OM_COUNTER:
    ev_push(&w->ev, w->start, c);
    break;
  case OM_TOKEN:
    w->level = token_level(w, now) - (i128)c * (i128)w->duration;
    w->t_ref = now;
    break;
  case OM_BOUNDED:
    bounded_commit(w, now, c);
    break;
  }
}

/* ---- retry: searched, not computed ------------------------------------- */

static int never_fits(const om_window *w, uint64_t c) {
  return c > (w->model == OM_TOKEN ? w->burst : w->limit);
}

/* A delay after which this window surely admits c (c fits at all). */
static int64_t horizon(const om_window *w, int64_t now, uint64_t c) {
  if (w->model == OM_TOKEN) {
    i128 need = (i128)c * (i128)w->duration - token_line(w, now);
    return (int64_t)(need / (i128)w->limit) + 2;
  }
  om_view v;
  view(w, now, c, &v);
  return (v.eff - now) + 2 * (int64_t)w->duration + 1;
}

static uint64_t window_retry(const om_window *w, int64_t now, uint64_t c) {
  if (never_fits(w, c)) {
    return RL_RETRY_NEVER;
  }
  if (w->model == OM_BOUNDED) {
    return bounded_retry(w, now, c);
  }
  int64_t lo = 1, hi = horizon(w, now, c);
  om_view v;
  view(w, now + hi, c, &v);
  if (!v.admit) {
    die("no admission within the horizon");
  }
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    view(w, now + mid, c, &v);
    if (v.admit) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return (uint64_t)lo;
}

/* ---- keys ---------------------------------------------------------------- */

static void window_init(om_window *w, om_model model, const rl_window *in,
                        uint32_t slots) {
  memset(w, 0, sizeof *w);
  w->model = model;
  w->limit = in->limit;
  w->duration = in->duration_ms;
  w->burst = in->burst ? in->burst : in->limit;
  if (model == OM_TOKEN) {
    w->level = (i128)w->burst * (i128)w->duration; /* full from t = 0 */
  }
  if (model == OM_BOUNDED) {
    w->b.slots = slots ? slots : RL_LOG_SLOTS_DEFAULT;
    w->b.t = calloc(w->b.slots, sizeof *w->b.t);
    w->b.n = calloc(w->b.slots, sizeof *w->b.n);
    if (w->b.t == NULL || w->b.n == NULL) {
      die("out of memory");
    }
  }
}

static void window_free(om_window *w) {
  free(w->ev.t);
  free(w->ev.cum);
  free(w->b.t);
  free(w->b.n);
}

void om_key_init(om_key *k, const rl_policy *p) {
  static const om_model main_model[] = {OM_LOG, OM_COUNTER, OM_TOKEN, OM_FIXED};
  memset(k, 0, sizeof *k);
  if (p->n_windows > OM_MAX_WINDOWS || (unsigned)p->algorithm > 3) {
    die("unsupported policy");
  }
  k->n = p->n_windows;
  k->has_x = p->algorithm == RL_ALG_SLIDING_LOG ||
             p->algorithm == RL_ALG_SLIDING_COUNTER;
  om_model second = p->algorithm == RL_ALG_SLIDING_LOG ? OM_BOUNDED : OM_LOG;
  for (size_t j = 0; j < k->n; j++) {
    window_init(&k->w[j], main_model[p->algorithm], &p->windows[j], 0);
    if (k->has_x) {
      window_init(&k->x[j], second, &p->windows[j], p->log_slots);
    }
  }
}

void om_key_free(om_key *k) {
  for (size_t j = 0; j < k->n; j++) {
    window_free(&k->w[j]);
    window_free(&k->x[j]);
  }
  memset(k, 0, sizeof *k);
}

/* Binding window of an admitted request: fewest remaining, lowest index. */
static void bind_admitted(size_t n, const om_view *v, om_result *r) {
  size_t b = 0;
  for (size_t j = 1; j < n; j++) {
    if (v[j].rem_after < v[b].rem_after) {
      b = j;
    }
  }
  r->window = (int)b;
  r->remaining = v[b].rem_after;
  r->retry = 0;
}

/* Binding window of a denied request: largest retry, lowest index. */
static void bind_denied(const om_window *ws, size_t n, const om_view *v,
                        const int64_t *at, uint64_t c, om_result *r) {
  int b = -1;
  uint64_t best = 0;
  for (size_t j = 0; j < n; j++) {
    if (v[j].admit) {
      continue;
    }
    uint64_t retry = window_retry(&ws[j], at[j], c);
    if (b < 0 || retry > best) {
      b = (int)j;
      best = retry;
    }
  }
  r->window = b;
  r->remaining = v[b].rem_now;
  r->retry = best;
}

/* Decides c on windows ws[0..n), window j at time at[j]. */
static void decide_set(om_window *ws, size_t n, const int64_t *at, uint64_t c,
                       om_view *v, om_result *r) {
  memset(r, 0, sizeof *r);
  r->admit = 1;
  for (size_t j = 0; j < n; j++) {
    touch(&ws[j], at[j]);
    view(&ws[j], at[j], c, &v[j]);
    r->admit &= v[j].admit;
    r->regressed |= v[j].eff != at[j];
  }
  if (r->admit) {
    bind_admitted(n, v, r);
  } else {
    bind_denied(ws, n, v, at, c, r);
  }
  r->limit = ws[r->window].limit;
}

void om_key_decide(om_key *k, int64_t now, uint64_t cost, om_result *exact,
                   om_result *spec) {
  om_view v[OM_MAX_WINDOWS], vx[OM_MAX_WINDOWS];
  int64_t at[OM_MAX_WINDOWS];
  memset(v, 0, sizeof v);
  for (size_t j = 0; j < k->n; j++) {
    at[j] = now;
  }
  decide_set(k->w, k->n, at, cost, v, exact);
  memset(spec, 0, sizeof *spec);
  if (!k->has_x) {
    return;
  }
  for (size_t j = 0; j < k->n; j++) {
    /* the counter's exact log sees the counter's (clamped) times */
    at[j] = k->w[j].model == OM_COUNTER ? v[j].eff : now;
  }
  decide_set(k->x, k->n, at, cost, vx, spec);
}

void om_key_commit(om_key *k, int64_t now, uint64_t cost) {
  for (size_t j = 0; j < k->n; j++) {
    if (k->has_x) {
      om_view v;
      view(&k->w[j], now, cost, &v);
      commit(&k->x[j], k->w[j].model == OM_COUNTER ? v.eff : now, cost);
    }
    commit(&k->w[j], now, cost);
  }
}

/* docs/Algorithms.md "Expiry" of one window, from the oracle's data. */
static int64_t window_expiry(const om_window *w) {
  int64_t W = (int64_t)w->duration;
  switch (w->model) {
  case OM_LOG:
    return w->ev.len ? ev_last(&w->ev) + W : 0;
  case OM_FIXED:
    return w->start + W;
  case OM_COUNTER:
    return w->start + 2 * W;
  case OM_TOKEN: {
    i128 missing = (i128)w->burst * (i128)w->duration - w->level;
    i128 l = (i128)w->limit;
    return w->t_ref + (int64_t)(missing <= 0 ? 0 : (missing + l - 1) / l);
  }
  case OM_BOUNDED:
    return w->b.len ? w->b.t[w->b.len - 1] + W : 0;
  }
  return 0;
}

int64_t om_key_expiry(const om_key *k) {
  int64_t e = 0;
  for (size_t j = 0; j < k->n; j++) {
    int64_t x = window_expiry(&k->w[j]);
    e = x > e ? x : e;
  }
  return e;
}

size_t om_key_live_times(const om_key *k) {
  size_t most = 0;
  for (size_t j = 0; j < k->n; j++) {
    most = k->w[j].ev.len > most ? k->w[j].ev.len : most;
  }
  return most;
}
