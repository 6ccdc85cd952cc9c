/*
 * test_model.c - model test: seeded random traces through the public API,
 * every decision compared with a brute-force oracle (oracle.h).
 *
 * A scenario is one limiter (fake clock, 1..3 policies of one algorithm with
 * 1..3 windows each, limits 1..50 or 1000+, windows 1 ms .. 1 h, a few keys)
 * and a trace of decisions: time steps of 0..W/3 ms mixed with bursts at the
 * same ms, rare jumps far ahead, rare jumps backwards (the library clamps,
 * the oracle models the clamp); costs around a mean, = limit, > limit, 1.
 * The implementation's admissions are the history; for every decision the
 * oracle says what the exact definition answers given that history:
 *   over-limit    the library admitted, the definition denies;
 *   false denial  the library denied, the definition admits.
 * Where the definition is exact the reported fields are checked too: binding
 * window, limit, remaining, and retry_after_ms (the smallest r >= 1 such that
 * the same request at now + r is admitted absent other traffic, i.e. at
 * now + r admitted and at now + r - 1 denied; NEVER when cost > limit),
 * also when the clock was behind the key's state (docs/Algorithms.md: the
 * state decides at its later time, delays count from the real now).
 *
 * Asserted: sliding log with L <= log_slots, fixed window, token bucket and
 * the sliding counter's own formula are exact (0 over-limit, 0 false denial,
 * 0 field errors); sliding log with L > log_slots (one trace replayed with
 * log_slots 4, 32 and 256) never over-limits and matches the specified
 * bounded log (merging) decision for decision. Measured: the sliding log's
 * false denials with L > S, and the sliding counter against the exact
 * sliding log.
 *
 * Usage: test_model [seed]; env RL_MODEL_SEED (seed; default: time-based),
 * RL_MODEL_DECISIONS (default 4000000). Both are printed with a rerun line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oracle.h"
#include "ratelimiter.h"

#define DEFAULT_DECISIONS 4000000u
#define MAX_POL 3
#define MAX_KEYS 8
#define HIST 24       /* decisions of a key printed on a failure */
#define MAX_REPORTS 5 /* failures printed in full */
#define HOUR_MS 3600000

/* ---- random numbers: xoshiro256** seeded by splitmix64 ------------------ */

typedef struct rng {
  uint64_t s[4];
} rng;

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) {
    r->s[i] = splitmix(&seed);
  }
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s;
  uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

/* Uniform in 0..n-1 (n >= 1; the tiny modulo bias does not matter). */
static uint64_t rnd(rng *r, uint64_t n) {
  return rng_next(r) % n;
}

static uint64_t pick(rng *r, const uint64_t *v, size_t n) {
  return v[rnd(r, n)];
}

/* ---- statistics ---------------------------------------------------------- */

enum {
  ROW_LOG_EXACT,
  ROW_LOG_S4,
  ROW_LOG_S32,
  ROW_LOG_S256,
  ROW_CTR_LOG,
  ROW_CTR_SPEC,
  ROW_TOKEN,
  ROW_FIXED,
  N_ROWS
};

typedef struct row {
  const char *alg, *mode;
  int exact;   /* assert 0 over-limit, 0 false denial, 0 field errors */
  int no_over; /* assert 0 over-limit */
  uint64_t decisions, admitted, over, fdenial, checked, field_err;
  uint64_t admissible; /* decisions the exact definition admits */
  uint64_t regressed, never;
  uint64_t crowded; /* sliding log: decisions with > S live admission times */
} row;

static row rows[N_ROWS] = {
    {"sliding_log", "exact L<=S", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sliding_log", "merged S=4", 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sliding_log", "merged S=32", 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sliding_log", "merged S=256", 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sliding_counter", "vs exact log", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"sliding_counter", "own formula", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"token_bucket", "exact-rational", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    {"fixed_window", "aligned", 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
};

static unsigned reports;          /* failures printed so far */
static rl_memory_stats store_sum; /* summed over all limiters */

/* ---- scenarios ---------------------------------------------------- */

enum { K_LOG_EXACT, K_LOG_MERGED, K_COUNTER, K_TOKEN, K_FIXED, N_KINDS };

typedef struct gen_policy {
  rl_policy p;
  char name[8];
  uint64_t mean_cost; /* of ordinary requests */
  uint64_t fit;       /* the largest cost that can ever be admitted */
} gen_policy;

typedef struct scenario {
  int kind;
  unsigned index;
  rl_algorithm alg;
  size_t n_pol, n_keys;
  gen_policy pol[MAX_POL];
  unsigned stripes;
  int64_t start, step_max, wmin, wmax;
  unsigned p_burst, p_back, p_big; /* per mille */
  size_t n;                        /* decisions */
  uint64_t trace_seed;
} scenario;

static const uint64_t durations[] = {
    1, 2, 3, 5, 10, 16, 60, 100, 250, 997, 1000, 5000, 60000, 600000, HOUR_MS};
static const uint64_t long_durations[] = {997,   1000,   5000,
                                          60000, 600000, HOUR_MS};
static const uint64_t ratios[] = {2, 3, 4, 10, 60};
static const uint64_t exact_slots[] = {2, 3, 4, 8, 16, 0, 64, 256, 1024};

static uint64_t first_limit(rng *r, int kind, uint32_t slots) {
  if (kind == K_LOG_EXACT) {
    return 1 + rnd(r, slots ? slots : RL_LOG_SLOTS_DEFAULT);
  }
  if (kind == K_LOG_MERGED) {
    return 300 + rnd(r, 4700);
  }
  return rnd(r, 2) ? 1 + rnd(r, 50) : 1000 + rnd(r, 19000);
}

static void gen_windows(rng *r, int kind, gen_policy *g) {
  rl_policy *p = &g->p;
  size_t n_w = 1 + rnd(r, 3);
  uint32_t slots = p->log_slots ? p->log_slots : RL_LOG_SLOTS_DEFAULT;
  uint64_t w = kind == K_LOG_MERGED ? pick(r, long_durations, 6)
                                    : pick(r, durations, 15);
  uint64_t l = first_limit(r, kind, p->log_slots);
  rl_policy_add_window(p, l, w);
  while (p->n_windows < n_w) {
    uint64_t ratio = pick(r, ratios, 5);
    if (w * ratio > HOUR_MS) {
      break;
    }
    w *= ratio;
    l += rnd(r, l * ((ratio < 4 ? ratio : 4) - 1) + 1);
    if (kind == K_LOG_EXACT && l > slots) {
      l = slots;
    }
    rl_policy_add_window(p, l, w);
  }
}

static void gen_policy_of(rng *r, scenario *s, size_t i) {
  gen_policy *g = &s->pol[i];
  rl_policy_init(&g->p);
  snprintf(g->name, sizeof g->name, "p%zu", i);
  g->p.name = g->name;
  g->p.algorithm = s->alg;
  if (s->kind == K_LOG_EXACT) {
    g->p.log_slots = (uint32_t)pick(r, exact_slots, 9);
  }
  gen_windows(r, s->kind, g);
  g->fit = UINT64_MAX;
  for (size_t j = 0; j < g->p.n_windows; j++) {
    rl_window *w = &g->p.windows[j];
    if (s->alg == RL_ALG_TOKEN_BUCKET && rnd(r, 10) < 3) {
      w->burst = 1 + rnd(r, 3 * w->limit);
    }
    uint64_t fit = w->burst ? w->burst : w->limit;
    g->fit = fit < g->fit ? fit : g->fit;
  }
}

/* Mean cost so that the demand on a key is rho % of its first window. */
static void gen_costs(rng *r, scenario *s) {
  static const uint64_t rhos[] = {50, 100, 200, 400};
  /* merged logs: dense, many distinct admission times per window */
  uint64_t rho = s->kind == K_LOG_MERGED ? 100 + rnd(r, 200) : pick(r, rhos, 4);
  uint64_t active = 1000 - s->p_burst - s->p_back - s->p_big;
  uint64_t mean_dt_milli = active * (uint64_t)s->step_max / 2;
  mean_dt_milli = mean_dt_milli < 500 ? 500 : mean_dt_milli;
  for (size_t i = 0; i < s->n_pol; i++) {
    gen_policy *g = &s->pol[i];
    uint64_t w = g->p.windows[0].duration_ms, l = g->p.windows[0].limit;
    uint64_t per_window = w * 1000 / mean_dt_milli / (s->n_pol * s->n_keys);
    uint64_t mean = rho * l / (100 * (per_window ? per_window : 1));
    g->mean_cost = mean < 1 ? 1 : mean > l ? l : mean;
  }
}

static void gen_clock(rng *r, scenario *s) {
  static const uint64_t bursts[] = {100, 300, 600};
  s->wmin = INT64_MAX;
  s->wmax = 0;
  for (size_t i = 0; i < s->n_pol; i++) {
    const rl_policy *p = &s->pol[i].p;
    int64_t lo = (int64_t)p->windows[0].duration_ms;
    int64_t hi = (int64_t)p->windows[p->n_windows - 1].duration_ms;
    s->wmin = lo < s->wmin ? lo : s->wmin;
    s->wmax = hi > s->wmax ? hi : s->wmax;
  }
  if (s->kind == K_LOG_MERGED) {
    /* 300..1500 requests per window: many distinct admission times */
    s->step_max = 2 * s->wmin / (int64_t)(300 + rnd(r, 1200));
  } else {
    s->step_max = (s->wmin / 3) >> rnd(r, 6);
  }
  s->step_max = s->step_max < 1 ? 1 : s->step_max;
  s->p_burst = s->kind == K_LOG_MERGED ? 50 : (unsigned)pick(r, bursts, 3);
  s->p_back = s->kind == K_LOG_MERGED ? 1 : 5;
  s->p_big = s->kind == K_LOG_MERGED ? 0 : 2;
  s->start = rnd(r, 4) == 0 ? 0 : (int64_t)rnd(r, UINT64_C(1) << 33);
}

static void gen_scenario(rng *r, int kind, unsigned index, size_t n,
                         scenario *s) {
  static const rl_algorithm algs[N_KINDS] = {
      RL_ALG_SLIDING_LOG, RL_ALG_SLIDING_LOG, RL_ALG_SLIDING_COUNTER,
      RL_ALG_TOKEN_BUCKET, RL_ALG_FIXED_WINDOW};
  static const uint64_t keys[] = {1, 2, 3, 5, 8};
  static const uint64_t stripes[] = {0, 1, 4};
  memset(s, 0, sizeof *s);
  s->kind = kind;
  s->index = index;
  s->alg = algs[kind];
  s->n_pol = kind == K_LOG_MERGED ? 1 : 1 + rnd(r, MAX_POL);
  s->n_keys = kind == K_LOG_MERGED ? 1 : pick(r, keys, 5);
  s->stripes = (unsigned)pick(r, stripes, 3);
  for (size_t i = 0; i < s->n_pol; i++) {
    gen_policy_of(r, s, i);
  }
  gen_clock(r, s);
  gen_costs(r, s);
  s->n = n;
  s->trace_seed = rng_next(r);
}

/* ---- replay ------------------------------------------------------- */

typedef struct hist_entry {
  int64_t clock;
  uint64_t cost;
  int allowed;
} hist_entry;

typedef struct key_track {
  om_key oracle;
  int seen;
  int64_t expiry; /* om_key_expiry() after the last decision */
  hist_entry hist[HIST];
  size_t n_hist;
} key_track;

typedef struct replay {
  const scenario *s;
  uint32_t slots; /* log_slots override, 0 = none */
  int row;        /* the row of the decisions (counter: the formula row) */
  rl_limiter *rl;
  int64_t clock;   /* the fake clock's current value */
  int64_t highest; /* the highest now the limiter has seen */
  rng r;
  key_track keys[MAX_POL][MAX_KEYS];
} replay;

static int64_t fake_clock(void *ctx) {
  return ((const replay *)ctx)->clock;
}

static void print_policy(const rl_policy *p) {
  fprintf(stderr, "  policy %s: %s log_slots=%u windows:", p->name,
          rl_algorithm_name(p->algorithm), p->log_slots);
  for (size_t j = 0; j < p->n_windows; j++) {
    fprintf(stderr, " [L=%" PRIu64 " W=%" PRIu64 "ms B=%" PRIu64 "]",
            p->windows[j].limit, p->windows[j].duration_ms,
            p->windows[j].burst);
  }
  fprintf(stderr, "\n");
}

static void print_history(const key_track *t) {
  size_t n = t->n_hist < HIST ? t->n_hist : HIST;
  fprintf(stderr, "  last %zu decisions on this key (clock, cost, allowed):\n",
          n);
  for (size_t i = t->n_hist - n; i < t->n_hist; i++) {
    const hist_entry *h = &t->hist[i % HIST];
    fprintf(stderr, "    #%zu clock=%" PRId64 " cost=%" PRIu64 " -> %s\n", i,
            h->clock, h->cost, h->allowed ? "allowed" : "denied");
  }
}

static void print_ret(const char *who, int allowed, int window, uint64_t limit,
                      uint64_t remaining, uint64_t retry) {
  fprintf(stderr,
          "  %-8s allowed=%d window=%d limit=%" PRIu64 " remaining=%" PRIu64
          " retry=%" PRIu64 "%s\n",
          who, allowed, window, limit, remaining, retry,
          retry == RL_RETRY_NEVER ? " (NEVER)" : "");
}

/* Prints one failure in full (the first MAX_REPORTS of them). */
static void report(const replay *rp, int ri, const char *what, size_t i,
                   size_t p, size_t k, int64_t now, uint64_t cost,
                   const rl_decision *d, const char *who, const om_result *o) {
  if (reports++ >= MAX_REPORTS) {
    return;
  }
  const scenario *s = rp->s;
  const key_track *t = &rp->keys[p][k];
  fprintf(stderr,
          "FAIL %s (%s %s): scenario %u, decision %zu, policy p%zu key k%zu, "
          "clock=%" PRId64 " now=%" PRId64 " cost=%" PRIu64 "\n",
          what, rows[ri].alg, rows[ri].mode, s->index, i, p, k, rp->clock, now,
          cost);
  fprintf(stderr, "  stripes=%u log_slots override=%u\n", s->stripes,
          rp->slots);
  print_policy(&s->pol[p].p);
  print_ret("library", d->allowed, d->window, d->limit, d->remaining,
            d->retry_after_ms);
  print_ret(who, o->admit, o->window, o->limit, o->remaining, o->retry);
  print_history(t);
}

/* Moves the fake clock for the next decision on (p, k). */
static void step_clock(replay *rp, size_t p, size_t k) {
  const scenario *s = rp->s;
  uint64_t u = rnd(&rp->r, 1000);
  if (u < s->p_burst) {
    /* same ms */
  } else if (u < s->p_burst + s->p_back) {
    uint64_t v = rnd(&rp->r, 32);
    int64_t back = v == 0 ? s->wmax : v < 4 ? s->wmin : 2 * s->step_max;
    rp->clock -= 1 + (int64_t)rnd(&rp->r, (uint64_t)back * 2);
  } else if (u < s->p_burst + s->p_back + s->p_big) {
    rp->clock += s->wmax + (int64_t)rnd(&rp->r, 2 * (uint64_t)s->wmax);
  } else {
    rp->clock += (int64_t)rnd(&rp->r, (uint64_t)s->step_max + 1);
  }
  /* From its expiry on, the store may forget a key (its state restarts
   * from zero). Whether it did is invisible, and it matters only to a clock
   * that then goes back below that expiry: the clock stops there. */
  const key_track *t = &rp->keys[p][k];
  if (t->seen && t->expiry <= rp->highest && rp->clock < t->expiry) {
    rp->clock = t->expiry;
  }
}

/* Mostly ordinary costs around the mean; in 1 of `rare` requests a cost
 * that fills the tightest window, one that can never fit, a window's limit
 * (which may exceed another's), or 1. */
static uint64_t gen_cost(rng *r, const gen_policy *g, uint64_t rare) {
  const rl_policy *p = &g->p;
  if (rnd(r, rare) != 0) {
    return 1 + rnd(r, 2 * g->mean_cost - 1);
  }
  switch (rnd(r, 4)) {
  case 0:
    return g->fit;
  case 1:
    return g->fit + 1 + rnd(r, g->fit);
  case 2:
    return p->windows[rnd(r, p->n_windows)].limit;
  default:
    return 1;
  }
}

static int fields_equal(const rl_decision *d, const om_result *o) {
  return d->window == o->window && d->limit == o->limit &&
         d->remaining == o->remaining && d->retry_after_ms == o->retry;
}

/* Where a decision is reported: row, position in the trace, request. */
typedef struct at_decision {
  int row;
  size_t i, p, k;
  int64_t now;
  uint64_t cost;
} at_decision;

/* Counts one decision against the exact definition `o` in its row. */
static void account(replay *rp, const at_decision *a, int check_fields,
                    const rl_decision *d, const om_result *o) {
  row *w = &rows[a->row];
  w->decisions++;
  w->admitted += d->allowed != 0;
  w->admissible += o->admit != 0;
  w->regressed += o->regressed;
  w->never += o->retry == RL_RETRY_NEVER;
  const char *what = NULL;
  if (d->allowed && !o->admit) {
    w->over++;
    what = w->no_over ? "over-limit" : NULL;
  } else if (!d->allowed && o->admit) {
    w->fdenial++;
    what = w->exact ? "false denial" : NULL;
  } else if (check_fields) {
    w->checked++;
    if (!fields_equal(d, o)) {
      w->field_err++;
      what = "field mismatch";
    }
  }
  if (what != NULL) {
    report(rp, a->row, what, a->i, a->p, a->k, a->now, a->cost, d, "oracle", o);
  }
}

/* Compares a decision with the bounded log of the specification. */
static void spec_check(replay *rp, const at_decision *a, const rl_decision *d,
                       const om_result *o) {
  row *w = &rows[a->row];
  w->checked++;
  if (d->allowed != o->admit || !fields_equal(d, o)) {
    w->field_err++;
    report(rp, a->row, "differs from the specified bounded log", a->i, a->p,
           a->k, a->now, a->cost, d, "spec", o);
  }
}

static void remember(key_track *t, int64_t clock, uint64_t cost, int allowed) {
  hist_entry *h = &t->hist[t->n_hist++ % HIST];
  h->clock = clock;
  h->cost = cost;
  h->allowed = allowed;
}

static int decide_one(replay *rp, size_t i) {
  const scenario *s = rp->s;
  size_t p = rnd(&rp->r, s->n_pol);
  size_t k = rnd(&rp->r, 2) ? 0 : rnd(&rp->r, s->n_keys);
  uint64_t cost =
      gen_cost(&rp->r, &s->pol[p], s->kind == K_LOG_MERGED ? 50 : 5);
  step_clock(rp, p, k);
  int64_t now = rp->clock < 0 ? 0 : rp->clock;
  key_track *t = &rp->keys[p][k];
  char key[4] = {'k', (char)('0' + k), 0, 0};
  rl_request req = {s->pol[p].name, strlen(s->pol[p].name), key, 2,
                    (int64_t)cost};
  rl_decision d;
  om_result o, o2;
  om_key_decide(&t->oracle, now, cost, &o, &o2);
  int err = rl_decide(rp->rl, &req, &d);
  if (err != RL_OK) {
    fprintf(stderr, "FAIL rl_decide: %s\n", rl_strerror(err));
    return -1;
  }
  remember(t, rp->clock, cost, d.allowed);
  at_decision a = {rp->row, i, p, k, now, cost};
  account(rp, &a, s->kind != K_LOG_MERGED, &d, &o);
  if (s->alg == RL_ALG_SLIDING_LOG) {
    spec_check(rp, &a, &d, &o2);
  } else if (s->kind == K_COUNTER) {
    a.row = ROW_CTR_LOG;
    account(rp, &a, 0, &d, &o2);
  }
  if (d.allowed) {
    om_key_commit(&t->oracle, now, cost);
  }
  if (rp->slots && om_key_live_times(&t->oracle) > rp->slots) {
    rows[rp->row].crowded++;
  }
  t->seen = 1;
  t->expiry = om_key_expiry(&t->oracle);
  rp->highest = now > rp->highest ? now : rp->highest;
  return 0;
}

static int open_limiter(replay *rp) {
  const scenario *s = rp->s;
  rl_policy pols[MAX_POL];
  for (size_t i = 0; i < s->n_pol; i++) {
    pols[i] = s->pol[i].p;
    if (rp->slots) {
      pols[i].log_slots = rp->slots;
    }
  }
  rl_config cfg;
  rl_config_init(&cfg);
  cfg.policies = pols;
  cfg.n_policies = s->n_pol;
  cfg.memory.stripes = s->stripes;
  cfg.clock = fake_clock;
  cfg.clock_ctx = rp;
  char err[160] = "";
  int rc = rl_config_check(&cfg, err, sizeof err);
  if (rc == RL_OK) {
    rc = rl_new(&cfg, &rp->rl);
  }
  if (rc != RL_OK) {
    fprintf(stderr, "FAIL rl_new: %s (%s)\n", rl_strerror(rc), err);
    for (size_t i = 0; i < s->n_pol; i++) {
      print_policy(&pols[i]);
    }
  }
  return rc;
}

/* Replays scenario s (with log_slots `slots` if not 0) into row `ri`. */
static int run_scenario(const scenario *s, uint32_t slots, int ri) {
  replay *rp = calloc(1, sizeof *rp);
  if (rp == NULL) {
    return -1;
  }
  rp->s = s;
  rp->slots = slots;
  rp->row = ri;
  rp->clock = s->start;
  rng_seed(&rp->r, s->trace_seed);
  int rc = open_limiter(rp);
  for (size_t p = 0; p < s->n_pol; p++) {
    for (size_t k = 0; k < MAX_KEYS; k++) {
      rl_policy eff = s->pol[p].p;
      eff.log_slots = slots ? slots : eff.log_slots;
      om_key_init(&rp->keys[p][k].oracle, &eff);
    }
  }
  for (size_t i = 0; rc == RL_OK && i < s->n; i++) {
    rc = decide_one(rp, i);
  }
  for (size_t p = 0; p < s->n_pol; p++) {
    for (size_t k = 0; k < MAX_KEYS; k++) {
      om_key_free(&rp->keys[p][k].oracle);
    }
  }
  rl_memory_stats ms;
  if (rp->rl != NULL && rl_memory_stats_get(rp->rl, &ms) == RL_OK) {
    store_sum.evicted_expired += ms.evicted_expired;
    store_sum.evicted_live += ms.evicted_live;
  }
  rl_free(rp->rl);
  free(rp);
  return rc;
}

/* ---- driver ------------------------------------------------------- */

static const int kind_row[N_KINDS] = {ROW_LOG_EXACT, ROW_LOG_S4, ROW_CTR_SPEC,
                                      ROW_TOKEN, ROW_FIXED};
/* Share of the decisions per kind, per mille (merged: 3 replays). */
static const unsigned kind_share[N_KINDS] = {240, 300, 150, 155, 155};

static int run_kind(rng *master, int kind, size_t budget, unsigned *index) {
  static const uint32_t merged_slots[] = {4, 32, 256};
  static const int merged_rows[] = {ROW_LOG_S4, ROW_LOG_S32, ROW_LOG_S256};
  size_t per_run = kind == K_LOG_MERGED ? 3 : 1;
  while (budget >= per_run) {
    /* merged logs: long enough to cover several windows */
    size_t n = kind == K_LOG_MERGED ? 12000 + rnd(master, 8000)
                                    : 1000 + rnd(master, 15000);
    n = n * per_run > budget ? budget / per_run : n;
    budget -= n * per_run;
    scenario s;
    gen_scenario(master, kind, (*index)++, n, &s);
    for (size_t i = 0; i < per_run; i++) {
      uint32_t slots = kind == K_LOG_MERGED ? merged_slots[i] : 0;
      int ri = kind == K_LOG_MERGED ? merged_rows[i] : kind_row[kind];
      if (run_scenario(&s, slots, ri) != 0) {
        return -1;
      }
    }
  }
  return 0;
}

static double pct(uint64_t part, uint64_t whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

static void print_table(void) {
  printf("\n%-16s %-14s %9s %9s %11s %13s %9s %8s %6s %9s %7s\n", "algorithm",
         "mode", "decisions", "admitted", "over-limit%", "false-denial%",
         "fd%/admis", "checked", "f.errs", "regressed", "never");
  for (int i = 0; i < N_ROWS; i++) {
    const row *w = &rows[i];
    printf("%-16s %-14s %9" PRIu64 " %9" PRIu64 " %11.4f %13.4f %9.4f %8" PRIu64
           " %6" PRIu64 " %9" PRIu64 " %7" PRIu64 "\n",
           w->alg, w->mode, w->decisions, w->admitted,
           pct(w->over, w->decisions), pct(w->fdenial, w->decisions),
           pct(w->fdenial, w->admissible), w->checked, w->field_err,
           w->regressed, w->never);
  }
  printf("memory store: %" PRIu64 " expired keys reclaimed, %" PRIu64
         " live keys evicted\n",
         store_sum.evicted_expired, store_sum.evicted_live);
  for (int i = ROW_LOG_S4; i <= ROW_LOG_S256; i++) {
    printf("%s %s: %.2f%% of the decisions had more than S admission times "
           "live in a window (merging)\n",
           rows[i].alg, rows[i].mode, pct(rows[i].crowded, rows[i].decisions));
  }
  printf("over-limit%% and false-denial%%: of all decisions of the row; "
         "fd%%/admis: false denials among the decisions the exact definition "
         "admits; checked: comparisons of window, limit, remaining and retry "
         "(sliding log: with the exact oracle and with the specified bounded "
         "log); regressed: clock behind the key's state; never: the "
         "cost could never fit.\n");
}

/* The assertions on the accumulated rows. */
static int verdict(void) {
  int ok = 1;
  if (store_sum.evicted_live != 0) {
    fprintf(stderr, "FAIL the store evicted live keys: the model is void\n");
    ok = 0;
  }
  for (int i = 0; i < N_ROWS; i++) {
    const row *w = &rows[i];
    int checks =
        w->exact || i == ROW_LOG_S4 || i == ROW_LOG_S32 || i == ROW_LOG_S256;
    int bad = w->decisions == 0 || w->admitted == 0 ||
              w->admitted == w->decisions || (w->no_over && w->over) ||
              w->field_err || (checks && w->checked == 0) ||
              (w->exact && (w->fdenial || w->never == 0));
    if (bad) {
      fprintf(stderr, "FAIL row %s / %s\n", w->alg, w->mode);
      ok = 0;
    }
  }
  return ok;
}

static uint64_t choose_seed(int argc, char **argv) {
  const char *env = getenv("RL_MODEL_SEED");
  if (argc > 1) {
    return strtoull(argv[1], NULL, 0);
  }
  if (env != NULL && *env) {
    return strtoull(env, NULL, 0);
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_sec * 1000000007u + (uint64_t)ts.tv_nsec;
  return splitmix(&x) ^ (uint64_t)getpid();
}

static size_t choose_decisions(void) {
  const char *env = getenv("RL_MODEL_DECISIONS");
  size_t n = env != NULL && *env ? (size_t)strtoull(env, NULL, 0) : 0;
  return n ? n : DEFAULT_DECISIONS;
}

static double elapsed_s(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) +
         (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int main(int argc, char **argv) {
  uint64_t seed = choose_seed(argc, argv);
  size_t total = choose_decisions();
  printf("test_model: seed %" PRIu64 " (rerun: RL_MODEL_SEED=%" PRIu64
         " %s, or %s %" PRIu64 "), %zu decisions\n",
         seed, seed, argv[0], argv[0], seed, total);
  fflush(stdout);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rng master;
  rng_seed(&master, seed);
  unsigned index = 0;
  int rc = 0;
  for (int kind = 0; rc == 0 && kind < N_KINDS; kind++) {
    rc = run_kind(&master, kind, total / 1000 * kind_share[kind], &index);
  }
  print_table();
  int ok = rc == 0 && verdict();
  printf("%s: %u scenarios, %.1f s; seed %" PRIu64
         " (rerun: RL_MODEL_SEED=%" PRIu64 " %s)\n",
         ok ? "PASS" : "FAIL", index, elapsed_s(&t0), seed, seed, argv[0]);
  return ok ? 0 : 1;
}
