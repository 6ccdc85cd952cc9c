/*
 * cache.c - the cache layer (rl_config.cache): a store that wraps the
 * Redis store (store.h) and answers what it can in-process.
 *
 * DESIGN (docs/Cache.md has the guarantees and the figures)
 *
 *  - Slots. All memory is one preallocated array of fixed-size slots, sized
 *    from cache.max_bytes at rl_new(): nothing is allocated afterwards, so
 *    the cache can never grow past its budget (1M distinct keys only make
 *    slots change hands). A key (policy id + at most RL_CACHE_KEY_MAX
 *    bytes) hashes to a stripe (own mutex, own counters, own cache lines)
 *    and, inside it, to a set of WAYS slots. A new key takes a free slot of
 *    its set or evicts the coldest one (fewest decisions this second);
 *    hot slots and slots waiting for a lease are never evicted.
 *  - Blocked keys. When Redis denies cost c until T (retry_after), the
 *    slot remembers it and denies any cost >= c locally until T, measured
 *    from before the request was sent (so never later than Redis' T).
 *    Exact: other instances can only add load. A lease returned by another
 *    instance is the one thing that can make such a denial early (counted
 *    as a false denial by the accuracy test).
 *  - Hot keys and leases. Every decision counts in its slot (decisions in
 *    this and the previous second). A key at hot_threshold decisions/s
 *    enters the bounded hot list (hot_keys.h, at most hot_k keys); a hot
 *    key of a leasable algorithm (fixed window, sliding counter, token
 *    bucket) asks Redis with lua/lease.lua instead of the decision script:
 *    one round trip decides the request and reserves extra units, which
 *    later decisions spend from the slot. The batch adapts: at most what
 *    this instance spends in ttl_ms, at most remaining / (8 * peers) where
 *    peers is estimated from how fast the remaining units fell between two
 *    grants, at most lease_max; near the limit it is 0 extra units, i.e.
 *    direct decisions.
 *    A token bucket is leased only while its demand is below its rate,
 *    with its units charged at the lease's end (bucket_lease).
 *  - Returns. Unspent units go back (lua/lease_return.lua) when a lease
 *    expires or cannot serve a request (sweeper thread, every ttl/4, or the
 *    next decision), when the key cools down, on reconfiguration and in
 *    rl_free(); a token bucket's come back as refill instead. Only hot
 *    slots hold leases, so the sweeper only walks the hot list.
 *  - Redis. Lease and return scripts go through the inner store's
 *    script_call / script_send (store.h), i.e. the decision path of the
 *    Redis store; without them (a layer that does not forward them) the
 *    cache only caches denials.
 *
 * The hot path (a cached denial or a lease spend) hashes the key, takes
 * its stripe's mutex and compares at most WAYS slots: no allocation, no
 * global lock, no atomic shared by stripes.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "hash.h"
#include "hot_keys.h"
#include "lease_script.h"
#include "metrics.h"
#include "policy.h"
#include "redis_loop.h"
#include "redis_store.h"

#define WAYS 8
#define MAX_STRIPES 64u
#define NS_PER_MS INT64_C(1000000)
#define EPOCH_NS INT64_C(1000000000) /* rates are decisions per second */
#define SWEEP_MIN_NS (5 * NS_PER_MS)
#define SWEEP_MAX_NS (100 * NS_PER_MS)
#define PEERS_ONE 16 /* peers is fixed point, 1/16ths */
#define PEERS_MAX ((uint64_t)64 * PEERS_ONE)
#define PEERS_FIRST ((uint32_t)8 * PEERS_ONE) /* until measured: many */
/* A lease is at most remaining / (SHARE_DIV * peers): with peers
 * instances spending at similar rates, it is used up while the others take
 * about 1/SHARE_DIV of what is left, so near the limit no units wait in a
 * lease while another instance is denied. Shares of 1/2 did that: 0.5-1.8%
 * false denials over the limit; 1/8: none seen (docs/Accuracy.md). */
#define SHARE_DIV 8
/* a token bucket's shortest lease: shorter ones would hold a unit or two */
#define BUCKET_HOLD_MIN_MS 4
/* a token bucket's lease gives up at most remaining / PUSH_DIV of refill */
#define PUSH_DIV 16
/* a sliding log's shortest lease */
#define LOG_HOLD_MIN_MS 2
/* A calm sliding log's share: remaining / (LOG_SHARE_DIV * peers). It is
 * leased only while at most half used (log_lease), and its leases
 * overstate the window by about 2.3 leases per instance (the unspent
 * units, and the spent ones until W after the lease's end, 4/3 of its
 * spend time), so the instances' leases together hold about 0.6 of what
 * is left: the log stays calm under the demand that made it so. */
#define LOG_SHARE_DIV 4

#define FLAG_HOT 1     /* in the hot list */
#define FLAG_PENDING 2 /* a lease request is in flight */
#define FLAG_REFILL 4  /* asynchronous path: the sweeper is to fetch a lease */
/* a direct decision of a recently denied key is in flight: other threads
 * of this instance wait for it (single flight) */
#define FLAG_FLIGHT 8
#define FLIGHT_WAIT_NS (20 * NS_PER_MS) /* at most, then they go themselves */
/* fixed window: a denial's window end restores the whole limit (a fact
 * about the policy, not a state: such a slot may still be evicted) */
#define FLAG_WINDOW_RESET 16
/* a token bucket of one window (leases may push its TAT: bucket_lease) */
#define FLAG_ONE_BUCKET 32
/* a sliding log of one window (its leases are reservations: log_lease) */
#define FLAG_ONE_LOG 128
/* leased only while calm (calm_of) */
#define FLAG_CALM_TESTED (FLAG_ONE_BUCKET | FLAG_ONE_LOG)
/* FLAG_CALM_TESTED whose demand is well below its limit: CALM_STREAK
 * answers in a row over calm_span found it full (a bucket) or at most half
 * used (a log), and none since found it drained (calm_of) */
#define FLAG_CALM 64
/* facts about the key, not states: such a slot may still be evicted */
#define FLAG_FACTS                                                             \
  (FLAG_WINDOW_RESET | FLAG_ONE_BUCKET | FLAG_ONE_LOG | FLAG_CALM)
#define CALM_STREAK 4
/* ... spanning at least this long: a bucket drained by a demand at 2x its
 * rate can still look full (less a ms of refill) for a few answers in a
 * row, but not for 50 ms (it is then 50 ms of refill below full) */
#define CALM_NS (50 * NS_PER_MS)

typedef struct slot {
  uint64_t hash;   /* 0 = free */
  uint64_t serial; /* policy table the slot's answers belong to */
  uint16_t policy_id;
  uint16_t policy_index; /* in that table */
  uint16_t key_len;
  uint8_t flags;
  uint8_t window;      /* binding window of the last answer */
  uint32_t epoch;      /* second of count */
  uint32_t count;      /* decisions in that second */
  uint32_t prev_count; /* in the second before */
  uint32_t peers;      /* estimated competing instances, 1/16ths */
  uint64_t limit;      /* of the binding window */
  uint64_t remaining;  /* Redis' remaining at the last answer */
  int64_t reset_until; /* mono ns when the binding window is restored */
  /* blocked */
  int64_t blocked_until; /* mono ns; 0 = not blocked */
  uint64_t blocked_cost;
  int64_t over_until;   /* mono ns: leases pause after a denial until then */
  int64_t span_ns;      /* longest window of the policy, plus ttl */
  uint32_t refill_hold; /* FLAG_REFILL: the lease's hold_ms */
  /* FLAG_CALM_TESTED (calm_of) */
  uint32_t full_streak; /* answers in a row found it full */
  int64_t full_since;   /* mono ns of the first of them */
  uint64_t full_at;     /* remaining + cost this high: full */
  uint64_t drained_at;  /* remaining below this: not calm */
  uint64_t window_ms;   /* FLAG_ONE_LOG: its window; else 0 */
  /* lease */
  uint64_t lease_left;
  uint64_t last_taken;  /* units taken at the last grant (cost + lease) */
  int64_t lease_until;  /* mono ns: idle end, ttl after the last spend */
  int64_t lease_end;    /* mono ns: hard end (window end, GCRA hold) */
  int64_t granted_at;   /* Redis ms of the grant */
  uint64_t refill_want; /* FLAG_REFILL: extra units to ask for */
  unsigned char key[RL_CACHE_KEY_MAX];
} slot;

typedef struct stripe {
  pthread_mutex_t lock;
  pthread_cond_t landed; /* a FLAG_FLIGHT decision of this stripe is back */
  uint64_t hits_blocked, hits_lease, misses, evictions;
  uint64_t leases, lease_units, returned_units, redis_calls;
} __attribute__((aligned(64))) stripe;

/* An asynchronous decision that went to Redis: what its answer is to be
 * remembered under (a preallocated pool: nothing allocated per decision). */
typedef struct async_ctx {
  struct cache *c;
  struct async_ctx *next; /* free list */
  rl_decision_cb cb;
  void *ud;
  uint64_t hash, serial, cost;
  int64_t sent;
  uint32_t stripe;
  uint16_t id, key_len;
  unsigned char key[RL_CACHE_KEY_MAX];
} async_ctx;

typedef struct cache {
  rl__store base;
  rl__store *inner;
  rl__guard *policies;
  rl__hash_key hash_key;
  stripe *stripes;
  uint32_t stripe_mask;
  uint32_t sets; /* per stripe */
  slot *slots;   /* stripes * sets * WAYS */
  size_t n_slots;
  size_t bytes, max_bytes;
  int64_t ttl_ns;
  uint64_t ttl_ms, lease_max;
  uint32_t threshold;
  unsigned hot_k;
  int leases;
  rl__hot_keys hot;
  rl__hot_entry *sweep_buf;        /* hot_k entries: the sweeper's copy */
  rl__hot_entry *reconf_buf;       /* hot_k entries: reconfigure and free */
  atomic_uint_fast64_t serial_now; /* table that new leases must be for */
  atomic_uint_fast64_t uncached;   /* keys too long to cache */
  atomic_uint_fast64_t hot_count;
  atomic_uint_fast64_t displaced; /* hot keys displaced by hotter ones */
  /* sweeper */
  pthread_t sweeper;
  int sweeper_started;
  pthread_mutex_t sweep_mu;
  pthread_cond_t sweep_cv;
  int stopping;
  int refill; /* under sweep_mu: a slot has FLAG_REFILL */
  int64_t sweep_ns;
  /* asynchronous decisions (async_ctx) */
  pthread_mutex_t async_mu;
  async_ctx *async_pool, *async_free;
  size_t n_async;
  /* asynchronous lease calls in flight: at most one per hot key (the
   * slot's FLAG_PENDING), so hot_k of them; under async_mu */
  struct lease_op *lease_pool, *lease_free;
  size_t n_lease;
} cache;

static const rl__store_ops cache_ops;

/* ---- slots ----------------------------------------------------------------
 */

static inline uint32_t stripe_of(const cache *c, uint64_t h) {
  return (uint32_t)(h >> 40) & c->stripe_mask;
}

static inline slot *set_of(const cache *c, uint32_t si, uint64_t h) {
  uint32_t set = (uint32_t)(((h & 0xffffffffu) * (uint64_t)c->sets) >> 32);
  return &c->slots[((size_t)si * c->sets + set) * WAYS];
}

static inline uint64_t key_hash(const cache *c, uint16_t id, const void *key,
                                size_t len) {
  return rl__hash(&c->hash_key, id, key, len) | 1; /* 0 marks a free slot */
}

static slot *lookup(slot *set, uint64_t h, uint16_t id, const void *key,
                    size_t len) {
  for (size_t w = 0; w < WAYS; w++) {
    slot *s = &set[w];
    if (s->hash == h && s->policy_id == id && s->key_len == len &&
        memcmp(s->key, key, len) == 0) {
      return s;
    }
  }
  return NULL;
}

static uint32_t epoch_of(int64_t now) {
  return (uint32_t)(now / EPOCH_NS);
}

/* Decisions per second: the last full second, or this one once it is
 * busier. */
static uint64_t rate_of(const slot *s, uint32_t epoch) {
  if (s->epoch == epoch) {
    return s->count > s->prev_count ? s->count : s->prev_count;
  }
  return s->epoch + 1 == epoch ? s->count : 0;
}

static void count_decision(slot *s, uint32_t epoch) {
  if (s->epoch != epoch) {
    s->prev_count = s->epoch + 1 == epoch ? s->count : 0;
    s->count = 0;
    s->epoch = epoch;
  }
  if (s->count < UINT32_MAX) {
    s->count++;
  }
}

/* A free slot of the set, or the coldest evictable one (never a hot or
 * pending one, so never one holding a lease); NULL if every way is hot. */
static slot *victim(stripe *sp, slot *set, uint32_t epoch) {
  slot *best = NULL;
  uint64_t best_rate = UINT64_MAX;
  for (size_t w = 0; w < WAYS; w++) {
    slot *s = &set[w];
    if (s->hash == 0) {
      return s;
    }
    if ((s->flags & (uint8_t)~FLAG_FACTS) != 0) {
      continue; /* hot, pending or in flight */
    }
    uint64_t r = rate_of(s, epoch);
    if (r < best_rate) {
      best = s;
      best_rate = r;
    }
  }
  if (best != NULL) {
    sp->evictions++;
  }
  return best;
}

static slot *find_or_insert(stripe *sp, slot *set, uint64_t h, uint16_t id,
                            const void *key, size_t len,
                            const rl__policy_table *t, size_t index,
                            uint32_t epoch) {
  slot *s = lookup(set, h, id, key, len);
  if (s != NULL) {
    return s;
  }
  s = victim(sp, set, epoch);
  if (s == NULL) {
    return NULL;
  }
  memset(s, 0, offsetof(slot, key));
  s->hash = h;
  s->policy_id = id;
  s->key_len = (uint16_t)len;
  s->serial = t->serial;
  s->policy_index = (uint16_t)index;
  s->peers = PEERS_FIRST;
  s->epoch = epoch;
  memcpy(s->key, key, len);
  return s;
}

/* A slot made under an older policy table: its answers no longer hold. A
 * lease it still holds is the reconfiguration's to return; until then the
 * slot is left alone. Returns 1 if the slot now belongs to t. */
static int adopt(slot *s, const rl__policy_table *t, size_t index) {
  if (s->serial == t->serial) {
    return 1;
  }
  if (s->lease_left > 0 || (s->flags & FLAG_PENDING)) {
    return 0;
  }
  s->serial = t->serial;
  s->policy_index = (uint16_t)index;
  s->blocked_until = 0;
  s->remaining = 0;
  s->peers = PEERS_FIRST;
  s->flags &= (uint8_t)~FLAG_CALM;
  s->full_streak = 0;
  return 1;
}

/* ---- local answers ------------------------------------------------------ */

static uint64_t ms_until(int64_t until, int64_t now) {
  return until > now ? (uint64_t)((until - now + NS_PER_MS - 1) / NS_PER_MS)
                     : 0;
}

/* 1 with out filled if the slot answers the request. */
static int answer_locally(stripe *sp, slot *s, uint64_t cost, int64_t now,
                          int64_t ttl_ns, rl_decision *out) {
  if (s->lease_left >= cost && s->lease_until > now && s->lease_end > now) {
    s->lease_left -= cost;
    s->lease_until = now + ttl_ns; /* idle timeout restarts */
    out->allowed = 1;
    out->window = s->window;
    out->limit = s->limit;
    out->remaining = s->remaining + s->lease_left;
    out->retry_after_ms = 0;
    out->reset_after_ms = ms_until(s->reset_until, now);
    out->source = RL_SOURCE_LEASE;
    sp->hits_lease++;
    return 1;
  }
  if (s->blocked_until > now && cost >= s->blocked_cost) {
    out->allowed = 0;
    out->window = s->window;
    out->limit = s->limit;
    out->remaining = 0;
    out->retry_after_ms = ms_until(s->blocked_until, now);
    out->reset_after_ms = ms_until(s->reset_until, now);
    out->source = RL_SOURCE_CACHE;
    sp->hits_blocked++;
    return 1;
  }
  return 0;
}

/* ---- leases -------------------------------------------------------------- */

/* Extra units to ask for (docs/Cache.md, "Lease size"). */
static uint64_t lease_want(const cache *c, const slot *s, uint64_t cost,
                           uint32_t epoch) {
  uint64_t rate = rate_of(s, epoch);
  /* what this instance spends in a quarter of ttl: a lease outlives its
   * use rarely, and units wait in it at most that long */
  uint64_t demand = rate * c->ttl_ms / 4000 * cost;
  uint64_t want = demand < c->lease_max ? demand : c->lease_max;
  if (s->reset_until != 0) { /* Redis answered this key before */
    uint64_t div = (s->flags & FLAG_ONE_LOG) ? LOG_SHARE_DIV : SHARE_DIV;
    uint64_t share =
        s->remaining * PEERS_ONE / (div * (uint64_t)(s->peers ? s->peers : 1));
    want = share < want ? share : want;
  }
  return want;
}

/* How many instances spend this key, from two consecutive grants: the
 * units that disappeared between them beyond what this instance took. */
static void estimate_peers(slot *s, const rl__lease_reply *r, uint64_t cost) {
  uint64_t now_before = r->d.remaining + r->granted + cost;
  if (s->last_taken > 0 && s->remaining >= now_before) {
    uint64_t others = s->remaining - now_before;
    uint64_t sample = PEERS_ONE + others * PEERS_ONE / s->last_taken;
    if (sample > PEERS_MAX) {
      sample = PEERS_MAX;
    }
    s->peers = (uint32_t)((3 * (uint64_t)s->peers + sample) / 4);
  }
  s->last_taken = cost + r->granted;
}

/* Whether a one-window token bucket's demand is below its rate, from Redis'
 * answers: a bucket found full (all but this request's cost left, less one
 * ms of refill: Redis' clock moves in ms, so decisions within one ms see
 * no refill between them) by CALM_STREAK answers in a row over CALM_NS
 * refills faster than its instances spend; one denied, or found below half
 * its capacity (more than leases and their pushes take, bucket_lease), is
 * not. Answers to lease calls (leased) report the bucket without the
 * refill that leases' pushes hold (lua/lease.lua's push key); direct ones
 * include it. */
/* How long a calm streak must last: CALM_NS, and a sliding log's whole
 * window at least (note_policy says why). */
static int64_t calm_span(const slot *s) {
  int64_t w = (int64_t)s->window_ms * NS_PER_MS;
  return w > CALM_NS ? w : CALM_NS;
}

static void calm_of(slot *s, const rl_decision *d, uint64_t cost, int64_t sent,
                    int leased) {
  if (!(s->flags & FLAG_CALM_TESTED)) {
    return;
  }
  int full = d->allowed && d->remaining + cost >= s->full_at;
  if (!full && !leased && d->allowed && (s->flags & FLAG_HOT) &&
      (s->flags & FLAG_ONE_BUCKET) && s->over_until <= sent) {
    /* a direct answer of a hot key (sent while its lease call was in
     * flight) includes other leases' pushes: it cannot tell. While leases
     * pause after a denial every answer is direct (lease_call_needed),
     * and then a bucket not full breaks the streak: calm again needs 4
     * full answers in a row, as from lease calls */
    return;
  }
  if (!full) {
    s->full_streak = 0;
  } else if (s->full_streak++ == 0) {
    s->full_since = sent;
  }
  if (!d->allowed || d->remaining < s->drained_at) {
    s->flags &= (uint8_t)~FLAG_CALM;
  } else if (s->full_streak >= CALM_STREAK &&
             sent - s->full_since >= calm_span(s)) {
    s->flags |= FLAG_CALM;
  }
}

static void remember_answer(slot *s, const rl_decision *d, uint64_t cost,
                            int64_t sent, int leased) {
  calm_of(s, d, cost, sent, leased);
  s->window = (uint8_t)d->window;
  s->limit = d->limit;
  s->remaining = d->remaining;
  s->reset_until = sent + (int64_t)d->reset_after_ms * NS_PER_MS;
  if (!d->allowed && d->retry_after_ms != RL_RETRY_NEVER &&
      d->retry_after_ms > 0 &&
      d->retry_after_ms < (uint64_t)(INT64_MAX / NS_PER_MS / 2)) {
    /* sent is before Redis' now_ms + 1 ms: unblock 1 ms early so that
     * the local end is never after Redis' now_ms + retry */
    s->blocked_until = sent + ((int64_t)d->retry_after_ms - 1) * NS_PER_MS;
    s->blocked_cost = cost;
  }
  if (!d->allowed) {
    /* Over its limit: units leased now would sit in one instance while
     * the others are denied (false denials). Direct decisions until a
     * whole window has passed without a denial; a fixed window's limit
     * is whole again at its end, and leases restart there. */
    s->over_until = sent + s->span_ns;
    if ((s->flags & FLAG_WINDOW_RESET) && s->reset_until < s->over_until) {
      s->over_until = s->reset_until;
    }
  }
}

static void send_return(cache *c, stripe *sp, rl__lease_cmd *rc,
                        uint64_t units) {
  if (c->inner->ops->script_send(c->inner, &rc->cmd) == RL_OK) {
    pthread_mutex_lock(&sp->lock);
    sp->returned_units += units;
    sp->redis_calls++;
    pthread_mutex_unlock(&sp->lock);
    rl__metrics_lease_returned(c->base.metrics, units);
  }
}

/* Whether unspent units can go back: not a token bucket's (another
 * lease may have pushed its TAT since, lua/lease_return.lua); they come
 * back as refill by the lease's end. */
static int returnable(const rl__policy *p) {
  return p->shape.algorithm != RL_ALG_TOKEN_BUCKET;
}

/* What a decision that misses does after the stripe is unlocked. */
typedef struct plan {
  int lease;          /* ask lease.lua */
  uint64_t want;      /* extra units */
  uint64_t ret_units; /* a lease to give back first */
  int64_t ret_at;     /* its grant time */
  uint64_t serial;    /* table the lease is for */
  int returnable;     /* unspent units may go back */
  int bucket;         /* token bucket */
  uint64_t hold;      /* lease.lua's hold_ms */
  uint64_t extra;     /* units of the decision itself that join the lease
                         (the sweeper's refills: 1) */
} plan;

/* How long lease.lua may let a lease live: the token bucket's and sliding
 * log's ttl_ms (less: bucket_lease, log_lease); the fixed window's and
 * sliding counter's until their window ends (the idle timeout returns it
 * earlier). */
static uint64_t lease_hold(const cache *c, const rl__policy *p) {
  return p->shape.algorithm == RL_ALG_TOKEN_BUCKET ||
                 p->shape.algorithm == RL_ALG_SLIDING_LOG
             ? c->ttl_ms
             : (uint64_t)RL_CACHE_TTL_MS_MAX;
}

/* Decisions per second from the count of this second so far (at least
 * 10 ms of it), or the last full second's if that was busier: unlike
 * rate_of, not low early in a second. */
static uint64_t rate_now(const slot *s, int64_t now) {
  uint32_t epoch = epoch_of(now);
  uint64_t last = s->epoch == epoch       ? s->prev_count
                  : s->epoch + 1 == epoch ? s->count
                                          : 0;
  if (s->epoch != epoch) {
    return last;
  }
  int64_t in = now % EPOCH_NS;
  in = in < EPOCH_NS / 100 ? EPOCH_NS / 100 : in;
  uint64_t cur = (uint64_t)((double)s->count * (double)EPOCH_NS / (double)in);
  return cur > last ? cur : last;
}

/* A token bucket's lease, only while its demand is below its rate
 * (FLAG_CALM; one window). lua/lease.lua charges the units as if spent at
 * the lease's end, so a full bucket gives up the refill of the hold: up to
 * hold * L / W units that no instance gets until the hold is over. The
 * bucket is below its rate, so it catches up with the exact bucket (which
 * stays full) after the hold; a bucket drained meanwhile would keep that
 * gap, which is why the calm test comes first. The push is kept to
 * remaining / PUSH_DIV (pushes do not add up: the TAT goes to the latest
 * lease's end), so it shrinks to nothing near the limit. The units asked
 * for are lease_want's (at most this instance's share) and at most what
 * this instance spends in 3/4 of the hold: they are not returned. */
static void bucket_lease(const slot *s, const rl__policy *p, uint64_t cost,
                         int64_t now, plan *pl) {
  if (!(s->flags & FLAG_CALM) || s->reset_until == 0) {
    pl->want = 0;
    pl->hold = 1; /* lease.lua's least */
    return;
  }
  const rl__window_params *w = &p->shape.windows[0];
  double hold = (double)s->remaining / PUSH_DIV * (double)w->duration_ms /
                (double)w->limit;
  pl->hold = hold < (double)pl->hold ? (uint64_t)hold : pl->hold;
  double spend_per_ms = (double)rate_now(s, now) * (double)cost * 0.75 / 1000;
  uint64_t use = (uint64_t)(spend_per_ms * (double)pl->hold);
  pl->want = use < pl->want ? use : pl->want;
  if (pl->hold < BUCKET_HOLD_MIN_MS) {
    pl->want = 0;
    pl->hold = 1;
  }
}

/* A sliding log's lease, only while it is calm (FLAG_CALM: at most half
 * used; one window). lua/lease.lua keeps its units in a reservation that
 * counts from the grant until W after the lease's end, however early they
 * are spent: the log overstates the window by the units of every lease
 * until W after its end. So the hold is what this instance takes to spend
 * the units (lease_want's: at most its share), and a third more, not
 * ttl: the overstatement then stays near what its instances really spend
 * in a window plus one lease each. A lease shorter than LOG_HOLD_MIN_MS is
 * not worth its call. */
static void log_lease(const slot *s, uint64_t cost, int64_t now, plan *pl) {
  double per_ms = (double)rate_now(s, now) * (double)cost / 1000;
  if (!(s->flags & FLAG_CALM) || s->reset_until == 0 || per_ms <= 0) {
    pl->want = 0;
    pl->hold = 1;
    return;
  }
  double hold = (double)pl->want / per_ms * 4 / 3 + 1;
  pl->hold = hold < (double)pl->hold ? (uint64_t)hold : pl->hold;
  if (pl->hold < LOG_HOLD_MIN_MS || pl->want < 2) {
    pl->want = 0;
    pl->hold = 1;
  }
}

/* estimate_peers for a sliding log, whose units come back as they leave
 * the window, so the drop between two grants says little (it stays at its
 * first guess, many, and leases stay small): the window's use (limit -
 * remaining, reservations included) against this instance's part of it,
 * what it spends in a window plus a hold (its reservations count until W
 * after their end) and the units just granted. */
static void estimate_log_peers(slot *s, const rl__lease_reply *r, uint64_t cost,
                               uint64_t hold_ms, int64_t now) {
  double own = (double)rate_now(s, now) * (double)cost *
                   (double)(s->window_ms + hold_ms) / 1000 +
               (double)(r->granted + cost);
  double used =
      r->d.limit > r->d.remaining ? (double)(r->d.limit - r->d.remaining) : 0;
  double sample = used / own * PEERS_ONE;
  sample = sample < PEERS_ONE ? PEERS_ONE : sample;
  sample = sample > (double)PEERS_MAX ? (double)PEERS_MAX : sample;
  s->peers = (uint32_t)((3 * (double)s->peers + sample) / 4);
}

/* lease.lua's push_ms: a token bucket's lease may push its TAT for its
 * whole hold (bucket_lease sized it for that; no units, no push). */
static uint64_t push_of(const plan *pl) {
  return pl->bucket ? pl->hold : 0;
}

/* Whether a planned lease needs lease.lua: units to ask for, or a token
 * bucket's calm test (its answers must leave out leases' pushes, calm_of;
 * not while its leases pause after a denial). Otherwise the plain decision
 * script does, and costs Redis about a quarter less. */
static int lease_call_needed(const slot *s, const plan *pl, int64_t now) {
  return pl->want > 0 || (pl->bucket && s->over_until <= now);
}

static void plan_lease(cache *c, slot *s, const rl__policy *p, uint64_t cost,
                       int64_t now, uint32_t epoch, plan *pl) {
  if (!c->leases || !(s->flags & FLAG_HOT) || (s->flags & FLAG_PENDING)) {
    return;
  }
  if (s->lease_left > 0) { /* expired, or too small for this cost */
    pl->ret_units = returnable(p) ? s->lease_left : 0;
    pl->ret_at = s->granted_at;
    s->lease_left = 0;
  }
  s->flags |= FLAG_PENDING;
  pl->lease = 1;
  pl->returnable = returnable(p);
  pl->bucket = p->shape.algorithm == RL_ALG_TOKEN_BUCKET;
  pl->want = s->over_until > now ? 0 : lease_want(c, s, cost, epoch);
  pl->hold = lease_hold(c, p);
  if (pl->bucket) {
    bucket_lease(s, p, cost, now, pl);
  } else if (s->flags & FLAG_ONE_LOG) {
    log_lease(s, cost, now, pl);
  } else if (p->shape.algorithm == RL_ALG_SLIDING_LOG) {
    pl->want = 0; /* several windows: not leased */
  }
  if (!lease_call_needed(s, pl, now)) { /* the plain script decides */
    s->flags &= (uint8_t)~FLAG_PENDING;
    pl->lease = 0;
  }
}

/* The policy's longest window plus ttl (how long a denial pauses leases). */
static int64_t span_of(const cache *c, const rl__policy *p) {
  uint64_t w = 0;
  for (size_t i = 0; i < p->shape.n_windows; i++) {
    w = p->shape.windows[i].duration_ms > w ? p->shape.windows[i].duration_ms
                                            : w;
  }
  return (int64_t)w * NS_PER_MS + c->ttl_ns;
}

/* What the slot keeps of its policy's shape. */
static void note_policy(const cache *c, slot *s, const rl__policy *p) {
  s->span_ns = span_of(c, p);
  const rl__window_params *w = &p->shape.windows[0];
  uint8_t tested = p->shape.n_windows != 1                     ? 0
                   : p->shape.algorithm == RL_ALG_TOKEN_BUCKET ? FLAG_ONE_BUCKET
                   : p->shape.algorithm == RL_ALG_SLIDING_LOG  ? FLAG_ONE_LOG
                                                               : 0;
  if ((s->flags & FLAG_CALM_TESTED) != tested) { /* a new shape */
    s->flags &= (uint8_t) ~(FLAG_CALM_TESTED | FLAG_CALM);
    s->full_streak = 0;
  }
  if (tested == FLAG_ONE_BUCKET) {
    uint64_t per_ms = (w->limit + w->duration_ms - 1) / w->duration_ms;
    s->flags |= FLAG_ONE_BUCKET;
    s->full_at = w->burst > per_ms ? w->burst - per_ms : 0;
    s->drained_at = w->burst / 2;
    s->window_ms = 0;
  } else if (tested == FLAG_ONE_LOG) {
    /* a log at most half used over a whole window at least: so its
     * demand is at most half its limit (its reservations overstate what
     * its instances spend: log_lease). Over half a window, a demand of
     * 0.85 of the limit passed, and its leases then reached the limit
     * (false denials, 8 starved processes of the accuracy table) */
    s->flags |= FLAG_ONE_LOG;
    s->window_ms = w->duration_ms;
    s->full_at = w->limit / 2;
    s->drained_at = w->limit / 4;
  }
  if (p->shape.algorithm == RL_ALG_FIXED_WINDOW) {
    s->flags |= FLAG_WINDOW_RESET;
  } else {
    s->flags &= (uint8_t)~FLAG_WINDOW_RESET;
  }
}

/* Puts a fresh slot into the hot list when it crosses the threshold. */
static void maybe_promote(cache *c, uint32_t si, slot *s, uint32_t epoch) {
  if ((s->flags & FLAG_HOT) || rate_of(s, epoch) < c->threshold) {
    return;
  }
  rl__hot_entry e;
  memset(&e, 0, sizeof e);
  e.stripe = si;
  e.slot = (uint32_t)(s - c->slots);
  e.hash = s->hash;
  e.policy_id = s->policy_id;
  e.policy_index = s->policy_index;
  e.rate = rate_of(s, epoch);
  e.key_len = s->key_len;
  memcpy(e.key, s->key, s->key_len);
  if (rl__hot_keys_add(&c->hot, &e)) {
    s->flags |= FLAG_HOT;
    uint64_t hot =
        atomic_fetch_add_explicit(&c->hot_count, 1, memory_order_relaxed) + 1;
    rl__metrics_hot_key_detected(c->base.metrics);
    rl__metrics_hot_keys_set(c->base.metrics, hot);
  } else if (rl__hot_keys_displace(&c->hot, e.rate)) {
    /* the sweeper returns the coolest key's lease and frees its place;
     * this key enters at a decision after that */
    atomic_fetch_add_explicit(&c->displaced, 1, memory_order_relaxed);
  }
}

/* ---- deciding ------------------------------------------------------------ */

typedef struct request_ref {
  uint64_t hash;
  uint16_t id;
  uint32_t stripe;
  slot *set;
  const rl_request *req;
} request_ref;

static slot *refind(const request_ref *r) {
  return lookup(r->set, r->hash, r->id, r->req->key, r->req->key_len);
}

/* After a direct decision: remember a denial, and Redis' remaining (d is
 * NULL when it failed). The decision that was the key's flight lands. */
static void after_direct_flight(cache *c, const request_ref *r,
                                const rl_decision *d, int64_t sent,
                                uint64_t serial, int flight) {
  stripe *sp = &c->stripes[r->stripe];
  pthread_mutex_lock(&sp->lock);
  slot *s = refind(r);
  if (s != NULL && d != NULL && !(s->flags & FLAG_PENDING) &&
      s->serial == serial) {
    remember_answer(s, d, (uint64_t)r->req->cost, sent, 0);
  }
  if (flight) {
    if (s != NULL) {
      s->flags &= (uint8_t)~FLAG_FLIGHT;
    }
    pthread_cond_broadcast(&sp->landed);
  }
  pthread_mutex_unlock(&sp->lock);
}

static void after_direct(cache *c, const request_ref *r, const rl_decision *d,
                         int64_t sent, uint64_t serial) {
  after_direct_flight(c, r, d, sent, serial, 0);
}

/* Single flight: a key denied recently whose direct decision another
 * thread of this instance has in flight. Waits (stripe locked, at most
 * FLIGHT_WAIT_NS) for it to land, then tries the local answer again: a
 * denial it brought back answers this request too, exactly as a cached
 * denial does. Returns the slot (refound; NULL if it went) and updates
 * *now; 1 in *hit if out was answered. */
static slot *wait_flight(cache *c, stripe *sp, const request_ref *r, slot *s,
                         int64_t *now, int *hit, rl_decision *out) {
  int64_t until = *now + FLIGHT_WAIT_NS;
  while (s != NULL && (s->flags & FLAG_FLIGHT) && *now < until) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* the condvar's clock */
    int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (until - *now);
    ts.tv_sec = at / 1000000000;
    ts.tv_nsec = at % 1000000000;
    pthread_cond_timedwait(&sp->landed, &sp->lock, &ts);
    *now = rl__mono_ns();
    s = refind(r);
  }
  *hit = s != NULL && !(s->flags & FLAG_FLIGHT) &&
         answer_locally(sp, s, (uint64_t)r->req->cost, *now, c->ttl_ns, out);
  return s;
}

/* After lease.lua: install the grant (or give it straight back). */
static void after_lease(cache *c, const request_ref *r, const plan *pl, int err,
                        const rl__lease_reply *rep, int64_t sent,
                        rl__lease_cmd *lc) {
  stripe *sp = &c->stripes[r->stripe];
  uint64_t cost = (uint64_t)r->req->cost;
  uint64_t unused = 0;
  pthread_mutex_lock(&sp->lock);
  slot *s = refind(r);
  if (s != NULL) {
    s->flags &= (uint8_t)~FLAG_PENDING;
  }
  if (err == RL_OK) {
    sp->redis_calls++;
    if (s != NULL && s->serial != pl->serial) {
      s = NULL; /* reconfigured meanwhile: the answer is the old policy's */
    }
    if (s != NULL && rep->d.allowed && (s->flags & FLAG_ONE_LOG)) {
      estimate_log_peers(s, rep, cost, pl->hold, sent);
    } else if (s != NULL && rep->d.allowed) {
      estimate_peers(s, rep, cost); /* before remaining is overwritten */
    }
    if (s != NULL) {
      remember_answer(s, &rep->d, cost, sent, 1);
    }
    uint64_t units = rep->granted + (rep->d.allowed ? pl->extra : 0);
    if (units > 0) {
      sp->leases += rep->granted > 0;
      sp->lease_units += units;
      rl__metrics_lease_granted(c->base.metrics, units);
      int current = atomic_load(&c->serial_now) == pl->serial;
      if (s != NULL && current && s->serial == pl->serial) {
        s->lease_left = units;
        s->lease_until = sent + c->ttl_ns;
        s->lease_end = sent + (int64_t)rep->valid_ms * NS_PER_MS;
        s->granted_at = rep->now_ms;
      } else {
        unused = units;
      }
    }
  }
  pthread_mutex_unlock(&sp->lock);
  if (unused > 0 && pl->returnable) {
    rl__lease_cmd_to_return(lc, unused, rep->now_ms);
    send_return(c, sp, lc, unused);
  }
}

/* A lease call that Redis refused before it ran (down, breaker open): the
 * decision goes down the ordinary path instead, so the layer below (the
 * fallback store) applies the policy's fallback mode. Only when the policy
 * table is still the lease's (the index is then the same policy); a
 * timeout is not retried (it would cost a second deadline). */
static int decide_after_lease_failure(cache *c, const plan *pl, size_t index,
                                      const rl_request *req, int err,
                                      rl_decision *out) {
  if (err != RL_ERR_BACKEND_UNAVAILABLE) {
    return err;
  }
  rl__guard_token token;
  const rl__policy_table *t = rl__guard_enter(c->policies, &token);
  if (t->serial != pl->serial || index >= t->n) {
    rl__guard_exit(&token);
    return err;
  }
  out->source = RL_SOURCE_NONE;
  return c->inner->ops->decide(c->inner, t, index, req, out, &token);
}

static int decide_leased(cache *c, const request_ref *r, const plan *pl,
                         const rl__policy *p, size_t index, int64_t sent,
                         rl_decision *out, rl__guard_token *token) {
  rl__lease_cmd lc, rc;
  const rl_request *req = r->req;
  int err = rl__lease_cmd_build(&lc, p, req->key, req->key_len, pl->want,
                                pl->hold, push_of(pl), (uint64_t)req->cost);
  int ret_err = pl->ret_units > 0
                    ? rl__lease_return_build(&rc, p, req->key, req->key_len,
                                             pl->ret_units, pl->ret_at)
                    : RL_ERR_INVALID_ARGUMENT;
  rl__guard_exit(token);
  if (ret_err == RL_OK) {
    send_return(c, &c->stripes[r->stripe], &rc, pl->ret_units);
  }
  rl__lease_reply rep;
  memset(&rep, 0, sizeof rep);
  if (err == RL_OK) {
    err = c->inner->ops->script_call(c->inner, &lc.cmd, rl__lease_reply_parse,
                                     &rep);
  }
  after_lease(c, r, pl, err, &rep, sent, &lc);
  if (err == RL_OK) {
    *out = rep.d;
    out->source = RL_SOURCE_REDIS;
    rl__redis_note_now_ms(rep.now_ms);
    return RL_OK;
  }
  return decide_after_lease_failure(c, pl, index, req, err, out);
}

static int cache_decide(rl__store *st, const rl__policy_table *t, size_t index,
                        const rl_request *req, rl_decision *out,
                        rl__guard_token *token) {
  cache *c = (cache *)st;
  if (req->key_len > RL_CACHE_KEY_MAX) {
    atomic_fetch_add_explicit(&c->uncached, 1, memory_order_relaxed);
    return c->inner->ops->decide(c->inner, t, index, req, out, token);
  }
  const rl__policy *p = &t->policies[index];
  request_ref r;
  r.id = t->ids[index];
  r.hash = key_hash(c, r.id, req->key, req->key_len);
  r.stripe = stripe_of(c, r.hash);
  r.set = set_of(c, r.stripe, r.hash);
  r.req = req;
  stripe *sp = &c->stripes[r.stripe];
  int64_t now = rl__mono_ns();
  uint32_t epoch = epoch_of(now);
  plan pl;
  memset(&pl, 0, sizeof pl);
  pl.serial = t->serial;
  int flight = 0;
  pthread_mutex_lock(&sp->lock);
  slot *s = find_or_insert(sp, r.set, r.hash, r.id, req->key, req->key_len, t,
                           index, epoch);
  if (s != NULL && adopt(s, t, index)) {
    count_decision(s, epoch);
    int hit = answer_locally(sp, s, (uint64_t)req->cost, now, c->ttl_ns, out);
    if (!hit && (s->flags & FLAG_FLIGHT)) {
      s = wait_flight(c, sp, &r, s, &now, &hit, out);
    }
    if (hit) {
      pthread_mutex_unlock(&sp->lock);
      rl__metrics_cache_hit(c->base.metrics);
      rl__guard_exit(token);
      return RL_OK;
    }
  }
  if (s != NULL && s->serial == t->serial) {
    maybe_promote(c, r.stripe, s, epoch);
    note_policy(c, s, p);
    plan_lease(c, s, p, (uint64_t)req->cost, now, epoch, &pl);
    /* over its limit lately: this decision is the key's flight */
    flight = !pl.lease && !(s->flags & FLAG_FLIGHT) && s->over_until > now;
    if (flight) {
      s->flags |= FLAG_FLIGHT;
    }
  }
  sp->misses++;
  pthread_mutex_unlock(&sp->lock);
  rl__metrics_cache_miss(c->base.metrics);
  if (pl.lease) {
    return decide_leased(c, &r, &pl, p, index, now, out, token);
  }
  if (pl.ret_units > 0) { /* an expired lease, not replaced */
    rl__lease_cmd rc;
    if (rl__lease_return_build(&rc, p, req->key, req->key_len, pl.ret_units,
                               pl.ret_at) == RL_OK) {
      send_return(c, sp, &rc, pl.ret_units);
    }
  }
  int err = c->inner->ops->decide(c->inner, t, index, req, out, token);
  if (err == RL_OK || flight) {
    after_direct_flight(c, &r, err == RL_OK ? out : NULL, now, pl.serial,
                        flight);
  }
  return err;
}

/* ---- asynchronous decisions ---------------------------------------------- */

static async_ctx *async_take(cache *c) {
  pthread_mutex_lock(&c->async_mu);
  async_ctx *a = c->async_free;
  if (a != NULL) {
    c->async_free = a->next;
  }
  pthread_mutex_unlock(&c->async_mu);
  return a;
}

static void async_give(cache *c, async_ctx *a) {
  pthread_mutex_lock(&c->async_mu);
  a->next = c->async_free;
  c->async_free = a;
  pthread_mutex_unlock(&c->async_mu);
}

/* Redis' answer to an asynchronous decision: remembered like a
 * synchronous one (a denial blocks the key), then the caller's callback. */
static void async_done(int err, const rl_decision *d, void *ud) {
  async_ctx *a = ud;
  cache *c = a->c;
  if (err == RL_OK) {
    rl_request req = {NULL, 0, a->key, a->key_len, (int64_t)a->cost};
    request_ref r = {a->hash, a->id, a->stripe, set_of(c, a->stripe, a->hash),
                     &req};
    after_direct(c, &r, d, a->sent, a->serial);
  }
  rl_decision_cb cb = a->cb;
  void *cb_ud = a->ud;
  async_give(c, a);
  cb(err, d, cb_ud);
}

/* The sweeper fetches the lease of a hot key decided asynchronously when
 * no lease call could be sent with the request (lease_op pool empty, no
 * script_async below): wake it now. */
static void wake_sweeper(cache *c) {
  pthread_mutex_lock(&c->sweep_mu);
  c->refill = 1;
  pthread_cond_signal(&c->sweep_cv);
  pthread_mutex_unlock(&c->sweep_mu);
}

/* An asynchronous decision that asks lease.lua (a hot key whose lease ran
 * out): the request and its lease in one script, as on the synchronous
 * path. */
typedef struct lease_op {
  struct lease_op *next; /* free list */
  cache *c;
  rl__script_async op;
  rl__lease_cmd lc;
  rl__lease_reply rep;
  plan pl;
  rl_decision_cb cb;
  void *ud;
  uint64_t hash, cost;
  int64_t sent;
  size_t index;
  uint32_t stripe;
  uint16_t id, key_len;
  unsigned char key[RL_CACHE_KEY_MAX];
} lease_op;

static lease_op *lease_op_take(cache *c) {
  pthread_mutex_lock(&c->async_mu);
  lease_op *l = c->lease_free;
  if (l != NULL) {
    c->lease_free = l->next;
  }
  pthread_mutex_unlock(&c->async_mu);
  return l;
}

static void lease_op_give(cache *c, lease_op *l) {
  pthread_mutex_lock(&c->async_mu);
  l->next = c->lease_free;
  c->lease_free = l;
  pthread_mutex_unlock(&c->async_mu);
}

/* lease.lua's answer, on the loop thread: the grant installed as on the
 * synchronous path, then the caller's callback; a call Redis refused goes
 * down the ordinary path (the fallback store applies the policy's mode). */
static void lease_landed(int err, void *ud) {
  lease_op *l = ud;
  cache *c = l->c;
  rl_request req = {NULL, 0, l->key, l->key_len, (int64_t)l->cost};
  request_ref r = {l->hash, l->id, l->stripe, set_of(c, l->stripe, l->hash),
                   &req};
  after_lease(c, &r, &l->pl, err, &l->rep, l->sent, &l->lc);
  rl_decision_cb cb = l->cb;
  void *cb_ud = l->ud;
  if (err == RL_OK) {
    rl_decision d = l->rep.d;
    d.source = RL_SOURCE_REDIS;
    d.policy = l->index;
    rl__redis_note_now_ms(l->rep.now_ms); /* for this callback (tests) */
    lease_op_give(c, l);
    cb(RL_OK, &d, cb_ud);
    return;
  }
  rl__guard_token token;
  const rl__policy_table *t = rl__guard_enter(c->policies, &token);
  if (err != RL_ERR_BACKEND_UNAVAILABLE || t->serial != l->pl.serial ||
      l->index >= t->n) {
    rl__guard_exit(&token);
    lease_op_give(c, l);
    cb(err, NULL, cb_ud);
    return;
  }
  /* the key is copied into the command at submission: l can go first */
  int rc = c->inner->ops->decide_async(c->inner, t, l->index, &req, cb, cb_ud,
                                       &token);
  lease_op_give(c, l);
  if (rc != RL_OK) {
    cb(rc, NULL, cb_ud);
  }
}

/* Sends lease.lua for req with l (taken); RL_OK if l is in flight. */
static int send_lease(cache *c, lease_op *l, const rl__policy *p,
                      const rl_request *req) {
  int err =
      rl__lease_cmd_build(&l->lc, p, req->key, req->key_len, l->pl.want,
                          l->pl.hold, push_of(&l->pl), (uint64_t)req->cost);
  if (err != RL_OK) {
    return err;
  }
  memset(&l->rep, 0, sizeof l->rep);
  l->op = (rl__script_async){.cmd = &l->lc.cmd,
                             .consume = rl__lease_reply_parse,
                             .out = &l->rep,
                             .done = lease_landed,
                             .ud = l};
  return c->inner->ops->script_async(c->inner, &l->op);
}

/* Cached denials and lease hits are answered inline (the callback runs
 * before this returns); a hot key whose lease ran out asks lease.lua for
 * the request and a new lease in one call (lease_landed), or, when no
 * lease call can be sent, gets its lease from the sweeper thread while
 * this request goes to Redis as it is. */
static int cache_decide_async(rl__store *st, const rl__policy_table *t,
                              size_t index, const rl_request *req,
                              rl_decision_cb cb, void *ud,
                              rl__guard_token *token) {
  cache *c = (cache *)st;
  if (req->key_len > RL_CACHE_KEY_MAX) {
    atomic_fetch_add_explicit(&c->uncached, 1, memory_order_relaxed);
    return c->inner->ops->decide_async(c->inner, t, index, req, cb, ud, token);
  }
  const rl__policy *p = &t->policies[index];
  uint16_t id = t->ids[index];
  uint64_t h = key_hash(c, id, req->key, req->key_len);
  uint32_t si = stripe_of(c, h);
  stripe *sp = &c->stripes[si];
  int64_t now = rl__mono_ns();
  uint32_t epoch = epoch_of(now);
  plan pl;
  memset(&pl, 0, sizeof pl);
  pl.serial = t->serial;
  rl_decision d;
  int hit = 0;
  lease_op *lop = NULL;
  pthread_mutex_lock(&sp->lock);
  slot *s = find_or_insert(sp, set_of(c, si, h), h, id, req->key, req->key_len,
                           t, index, epoch);
  if (s != NULL && adopt(s, t, index)) {
    count_decision(s, epoch);
    hit = answer_locally(sp, s, (uint64_t)req->cost, now, c->ttl_ns, &d);
    if (!hit) {
      maybe_promote(c, si, s, epoch);
      note_policy(c, s, p);
      plan_lease(c, s, p, (uint64_t)req->cost, now, epoch, &pl);
    }
    if (pl.lease && c->inner->ops->script_async != NULL &&
        (lop = lease_op_take(c)) != NULL) {
      /* FLAG_PENDING until lease_landed (or the send fails, below) */
    } else if (pl.lease && pl.want > 0) {
      s->flags |= FLAG_REFILL; /* FLAG_PENDING until the sweeper is done */
      s->refill_want = pl.want;
      s->refill_hold = (uint32_t)pl.hold;
    } else if (pl.lease) {
      s->flags &= (uint8_t)~FLAG_PENDING; /* nothing to lease: direct */
    }
  }
  if (!hit) {
    sp->misses++;
  }
  pthread_mutex_unlock(&sp->lock);
  if (hit) {
    rl__metrics_cache_hit(c->base.metrics);
    rl__guard_exit(token);
    d.policy = index;
    cb(RL_OK, &d, ud);
    return RL_OK;
  }
  rl__metrics_cache_miss(c->base.metrics);
  rl__lease_cmd rc;
  int ret = pl.ret_units > 0 &&
            rl__lease_return_build(&rc, p, req->key, req->key_len, pl.ret_units,
                                   pl.ret_at) == RL_OK;
  if (lop != NULL) {
    *lop = (lease_op){.c = c,
                      .pl = pl,
                      .cb = cb,
                      .ud = ud,
                      .hash = h,
                      .cost = (uint64_t)req->cost,
                      .sent = now,
                      .index = index,
                      .stripe = si,
                      .id = id,
                      .key_len = (uint16_t)req->key_len};
    memcpy(lop->key, req->key, req->key_len);
    int sent = send_lease(c, lop, p, req);
    if (ret) {
      send_return(c, sp, &rc, pl.ret_units);
      ret = 0;
    }
    if (sent == RL_OK) {
      rl__guard_exit(token);
      return RL_OK;
    }
    /* not sent: the slot is no longer pending; decide as it is */
    pthread_mutex_lock(&sp->lock);
    request_ref rr = {h, id, si, set_of(c, si, h), req};
    slot *ps = refind(&rr);
    if (ps != NULL) {
      ps->flags &= (uint8_t)~FLAG_PENDING;
    }
    pthread_mutex_unlock(&sp->lock);
    lease_op_give(c, lop);
    pl.want = 0;
  }
  async_ctx *a = async_take(c);
  if (a != NULL) {
    *a = (async_ctx){.c = c,
                     .cb = cb,
                     .ud = ud,
                     .hash = h,
                     .serial = t->serial,
                     .cost = (uint64_t)req->cost,
                     .sent = now,
                     .stripe = si,
                     .id = id,
                     .key_len = (uint16_t)req->key_len};
    memcpy(a->key, req->key, req->key_len);
  }
  int err = a != NULL ? c->inner->ops->decide_async(c->inner, t, index, req,
                                                    async_done, a, token)
                      : c->inner->ops->decide_async(c->inner, t, index, req, cb,
                                                    ud, token);
  if (err != RL_OK && a != NULL) {
    async_give(c, a);
  }
  if (ret) {
    send_return(c, sp, &rc, pl.ret_units);
  }
  if (pl.lease && pl.want > 0) {
    wake_sweeper(c);
  }
  return err;
}

/* The sweeper's half of FLAG_REFILL: lease.lua for one unit plus the
 * wanted extra, all of it spent from the slot afterwards (plan.extra). */
static void refill_one(cache *c, const rl__hot_entry *e) {
  rl__guard_token token;
  const rl__policy_table *t = rl__guard_enter(c->policies, &token);
  stripe *sp = &c->stripes[e->stripe];
  unsigned char key[RL_CACHE_KEY_MAX];
  plan pl;
  memset(&pl, 0, sizeof pl);
  pthread_mutex_lock(&sp->lock);
  slot *s = &c->slots[e->slot];
  int go = s->hash == e->hash && s->policy_id == e->policy_id &&
           (s->flags & FLAG_REFILL) && s->serial == t->serial &&
           s->policy_index < t->n;
  size_t len = s->key_len, index = s->policy_index;
  if (go) {
    s->flags &= (uint8_t)~FLAG_REFILL;
    pl.want = s->refill_want;
    pl.hold = s->refill_hold;
    memcpy(key, s->key, len);
  } else if (s->hash == e->hash && (s->flags & FLAG_REFILL)) {
    s->flags &= (uint8_t) ~(FLAG_REFILL | FLAG_PENDING); /* table changed */
  }
  pthread_mutex_unlock(&sp->lock);
  if (!go) {
    rl__guard_exit(&token);
    return;
  }
  const rl__policy *p = &t->policies[index];
  pl.lease = 1;
  pl.serial = t->serial;
  pl.returnable = returnable(p);
  pl.bucket = p->shape.algorithm == RL_ALG_TOKEN_BUCKET;
  pl.extra = 1;
  rl_request req = {NULL, 0, key, len, 1};
  request_ref r = {e->hash, e->policy_id, e->stripe,
                   set_of(c, e->stripe, e->hash), &req};
  rl__lease_cmd lc;
  rl__lease_reply rep;
  memset(&rep, 0, sizeof rep);
  int64_t sent = rl__mono_ns();
  int err =
      rl__lease_cmd_build(&lc, p, key, len, pl.want, pl.hold, push_of(&pl), 1);
  rl__guard_exit(&token); /* a slow Redis must not hold up reconfiguring */
  if (err == RL_OK) {
    err = c->inner->ops->script_call(c->inner, &lc.cmd, rl__lease_reply_parse,
                                     &rep);
  }
  after_lease(c, &r, &pl, err, &rep, sent, &lc);
}

static void refill_leases(cache *c) {
  size_t n = rl__hot_keys_copy(&c->hot, c->sweep_buf, c->hot_k);
  n = n < c->hot_k ? n : c->hot_k;
  for (size_t i = 0; i < n; i++) {
    refill_one(c, &c->sweep_buf[i]);
  }
}

/* ---- returning leases ---------------------------------------------------- */

static int ignore_reply(const struct rl__redis_reply *r, void *out) {
  (void)r;
  (void)out;
  return RL_OK;
}

/* Takes the lease of the hot slot e if `take` says so; builds its return
 * under table t (which the slot must belong to). 1 if rc is to be sent. */
typedef int (*take_fn)(const cache *c, const slot *s, int64_t now,
                       uint32_t epoch);

static int take_lease(cache *c, const rl__hot_entry *e,
                      const rl__policy_table *t, take_fn take, int64_t now,
                      rl__lease_cmd *rc, uint64_t *units) {
  stripe *sp = &c->stripes[e->stripe];
  uint32_t epoch = epoch_of(now);
  int built = 0;
  pthread_mutex_lock(&sp->lock);
  slot *s = &c->slots[e->slot];
  if (s->hash == e->hash && s->policy_id == e->policy_id &&
      s->serial == t->serial && s->lease_left > 0 && s->policy_index < t->n &&
      take(c, s, now, epoch)) {
    const rl__policy *p = &t->policies[s->policy_index];
    *units = s->lease_left;
    built = returnable(p) &&
            rl__lease_return_build(rc, p, s->key, s->key_len, s->lease_left,
                                   s->granted_at) == RL_OK;
    s->lease_left = 0;
  }
  pthread_mutex_unlock(&sp->lock);
  return built;
}

static int take_always(const cache *c, const slot *s, int64_t now,
                       uint32_t epoch) {
  (void)c, (void)s, (void)now, (void)epoch;
  return 1;
}

/* Expired, or the key cooled down. */
static int take_stale(const cache *c, const slot *s, int64_t now,
                      uint32_t epoch) {
  return s->lease_until <= now || s->lease_end <= now ||
         rate_of(s, epoch) < c->threshold / 2;
}

/* Demotes the entry's slot when it has cooled down (after its lease went
 * back); else refreshes its rate in the list. */
static void sweep_rate(cache *c, const rl__hot_entry *e, int64_t now) {
  stripe *sp = &c->stripes[e->stripe];
  uint32_t epoch = epoch_of(now);
  pthread_mutex_lock(&sp->lock);
  slot *s = &c->slots[e->slot];
  uint64_t rate = rate_of(s, epoch);
  int cold = rate < c->threshold / 2 || rate == 0 || e->displaced;
  if (s->hash != e->hash || s->policy_id != e->policy_id) {
    cold = 1; /* cannot happen: hot slots are never evicted */
  } else if (cold && (s->lease_left > 0 || (s->flags & FLAG_PENDING))) {
    cold = 0; /* next sweep, once its lease is back */
  }
  if (cold) {
    s->flags &= (uint8_t)~FLAG_HOT;
    uint64_t hot =
        atomic_fetch_sub_explicit(&c->hot_count, 1, memory_order_relaxed) - 1;
    rl__metrics_hot_keys_set(c->base.metrics, hot);
    rl__hot_keys_remove(&c->hot, e->stripe, e->slot);
  } else {
    rl__hot_keys_update(&c->hot, e->stripe, e->slot, rate,
                        s->lease_left > 0 && s->lease_until > now &&
                            s->lease_end > now);
  }
  pthread_mutex_unlock(&sp->lock);
}

/* Returns the leases take() picks among the hot keys, under table t:
 * asynchronously, or waiting for each reply when sync (rl_free). */
static void return_leases(cache *c, rl__hot_entry *buf,
                          const rl__policy_table *t, take_fn take, int sync,
                          int demote) {
  size_t n = rl__hot_keys_copy(&c->hot, buf, c->hot_k);
  n = n < c->hot_k ? n : c->hot_k;
  int64_t now = rl__mono_ns();
  for (size_t i = 0; i < n; i++) {
    const rl__hot_entry *e = &buf[i];
    rl__lease_cmd rc;
    uint64_t units = 0;
    if (take_lease(c, e, t, demote && e->displaced ? take_always : take, now,
                   &rc, &units)) {
      stripe *sp = &c->stripes[e->stripe];
      if (sync) {
        if (c->inner->ops->script_call(c->inner, &rc.cmd, ignore_reply, NULL) ==
            RL_OK) {
          pthread_mutex_lock(&sp->lock);
          sp->returned_units += units;
          sp->redis_calls++;
          pthread_mutex_unlock(&sp->lock);
          rl__metrics_lease_returned(c->base.metrics, units);
        }
      } else {
        send_return(c, sp, &rc, units);
      }
    }
    if (demote) {
      sweep_rate(c, e, now);
    }
  }
}

static void *sweeper_main(void *arg) {
  cache *c = arg;
  pthread_mutex_lock(&c->sweep_mu);
  while (!c->stopping) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + c->sweep_ns;
    ts.tv_sec = at / 1000000000;
    ts.tv_nsec = at % 1000000000;
    if (!c->refill) {
      pthread_cond_timedwait(&c->sweep_cv, &c->sweep_mu, &ts);
    }
    if (c->stopping) {
      break;
    }
    int refill = c->refill;
    c->refill = 0;
    pthread_mutex_unlock(&c->sweep_mu);
    if (refill) {
      refill_leases(c);
    }
    rl__guard_token token;
    const rl__policy_table *t = rl__guard_enter(c->policies, &token);
    return_leases(c, c->sweep_buf, t, take_stale, 0, 1);
    rl__guard_exit(&token);
    pthread_mutex_lock(&c->sweep_mu);
  }
  pthread_mutex_unlock(&c->sweep_mu);
  return NULL;
}

/* ---- the rest of the store interface ------------------------------------ */

static int cache_wait_ready(rl__store *s, uint32_t timeout_ms, char *errbuf,
                            size_t errlen) {
  cache *c = (cache *)s;
  return c->inner->ops->wait_ready(c->inner, timeout_ms, errbuf, errlen);
}

static int cache_check_live_change(rl__store *s, const rl_config *config,
                                   char *errbuf, size_t errlen) {
  cache *c = (cache *)s;
  rl__cache_settings now, was;
  rl__cache_settings_of(config, &now);
  was.enabled = 1;
  was.ttl_ms = c->ttl_ms;
  was.max_bytes = c->max_bytes;
  was.leases = c->leases || (now.leases && !c->inner->ops->script_call);
  was.lease_max = c->lease_max;
  was.hot_threshold = c->threshold;
  was.hot_k = c->hot_k;
  if (now.ttl_ms != was.ttl_ms || now.max_bytes != was.max_bytes ||
      now.leases != was.leases || now.lease_max != was.lease_max ||
      now.hot_threshold != was.hot_threshold || now.hot_k != was.hot_k ||
      !now.enabled) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "the cache settings cannot change on a live limiter: "
                    "create a new one");
  }
  return c->inner->ops->check_live_change(c->inner, config, errbuf, errlen);
}

static void cache_retire(rl__store *s, const uint64_t *retired) {
  cache *c = (cache *)s;
  c->inner->ops->retire(c->inner, retired);
}

static void cache_memory_stats(rl__store *s, rl_memory_stats *out) {
  cache *c = (cache *)s;
  c->inner->ops->memory_stats(c->inner, out);
}

static int cache_script_call(rl__store *s, rl__script_cmd *cmd,
                             rl__script_consume_fn consume, void *out) {
  cache *c = (cache *)s;
  return c->inner->ops->script_call(c->inner, cmd, consume, out);
}

static int cache_script_send(rl__store *s, rl__script_cmd *cmd) {
  cache *c = (cache *)s;
  return c->inner->ops->script_send(c->inner, cmd);
}

/* New leases are for the new table from now on; the old table's go back. */
static void cache_reconfigured(rl__store *s, const rl__policy_table *old) {
  cache *c = (cache *)s;
  const rl__policy_table *next = rl__guard_peek(c->policies);
  atomic_store(&c->serial_now, next->serial);
  if (c->leases) {
    return_leases(c, c->reconf_buf, old, take_always, 0, 0);
  }
  if (c->inner->ops->reconfigured != NULL) {
    c->inner->ops->reconfigured(c->inner, old);
  }
}

/* What every cache has, whether or not it got as far as its stripes'
 * locks and its sweeper: the sweeper's and the async pool's sync objects,
 * the hot-key sketch, the arrays, the cache itself. */
static void free_cache(cache *c) {
  pthread_cond_destroy(&c->sweep_cv);
  pthread_mutex_destroy(&c->sweep_mu);
  pthread_mutex_destroy(&c->async_mu);
  rl__hot_keys_destroy(&c->hot);
  free(c->async_pool);
  free(c->lease_pool);
  free(c->sweep_buf);
  free(c->reconf_buf);
  free(c->stripes);
  free(c->slots);
  free(c);
}

static void cache_free(rl__store *s) {
  cache *c = (cache *)s;
  if (c->sweeper_started) {
    pthread_mutex_lock(&c->sweep_mu);
    c->stopping = 1;
    pthread_cond_signal(&c->sweep_cv);
    pthread_mutex_unlock(&c->sweep_mu);
    pthread_join(c->sweeper, NULL);
  }
  if (c->leases) {
    return_leases(c, c->reconf_buf, rl__guard_peek(c->policies), take_always, 1,
                  0);
  }
  if (c->inner != NULL) {
    c->inner->ops->free(c->inner);
  }
  for (uint32_t i = 0; i <= c->stripe_mask; i++) {
    pthread_mutex_destroy(&c->stripes[i].lock);
    pthread_cond_destroy(&c->stripes[i].landed);
  }
  free_cache(c);
}

static const rl__store_ops cache_ops = {
    cache_decide,
    cache_decide_async,
    cache_wait_ready,
    cache_check_live_change,
    cache_retire,
    cache_memory_stats,
    cache_free,
    cache_script_call,
    cache_script_send,
    cache_reconfigured,
    NULL, /* nothing above the cache sends scripts */
};

/* ---- creation ------------------------------------------------------------ */

void rl__cache_settings_of(const rl_config *config, rl__cache_settings *out) {
  memset(out, 0, sizeof *out);
  out->enabled = config->cache.enabled != 0;
  out->ttl_ms =
      config->cache.ttl_ms ? config->cache.ttl_ms : RL_CACHE_TTL_MS_DEFAULT;
  out->max_bytes = config->cache.max_bytes ? config->cache.max_bytes
                                           : RL_CACHE_MAX_BYTES_DEFAULT;
  out->leases = config->cache.leases != 0;
  out->lease_max = config->cache.lease_max ? config->cache.lease_max
                                           : RL_CACHE_LEASE_MAX_DEFAULT;
  out->hot_threshold = config->cache.hot_threshold
                           ? config->cache.hot_threshold
                           : RL_CACHE_HOT_THRESHOLD_DEFAULT;
  out->hot_k =
      config->cache.hot_k ? config->cache.hot_k : RL_CACHE_HOT_K_DEFAULT;
}

int rl__cache_config_check(const rl_config *c, char *errbuf, size_t errlen) {
  if (!c->cache.enabled) {
    return RL_OK;
  }
  if (c->store != RL_STORE_REDIS) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "cache.enabled needs the Redis store (the memory store "
                    "is already in-process)");
  }
  rl__cache_settings s;
  rl__cache_settings_of(c, &s);
  if (s.ttl_ms > RL_CACHE_TTL_MS_MAX) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "cache.ttl_ms %llu is outside 1..%d",
                    (unsigned long long)s.ttl_ms, RL_CACHE_TTL_MS_MAX);
  }
  if (s.max_bytes < RL_CACHE_MAX_BYTES_MIN) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "cache.max_bytes %zu is below %zu", s.max_bytes,
                    RL_CACHE_MAX_BYTES_MIN);
  }
  if (s.lease_max > RL_LIMIT_MAX) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "cache.lease_max %llu is above RL_LIMIT_MAX",
                    (unsigned long long)s.lease_max);
  }
  if (s.hot_k > RL_CACHE_HOT_K_MAX) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "cache.hot_k %u is outside 1..%d", s.hot_k,
                    RL_CACHE_HOT_K_MAX);
  }
  return RL_OK;
}

/* Stripes and sets for a budget: as many stripes (up to MAX_STRIPES) as
 * leave each at least 4 sets. */
static void geometry(cache *c, size_t budget) {
  size_t fixed = sizeof *c + (size_t)c->hot_k * 2 * sizeof(rl__hot_entry);
  size_t room = budget > fixed ? budget - fixed : 0;
  uint32_t stripes = MAX_STRIPES;
  while (stripes > 1 && room / (stripes * (sizeof(stripe) +
                                           (size_t)4 * WAYS * sizeof(slot))) ==
                            0) {
    stripes /= 2;
  }
  size_t per_stripe = room / stripes;
  size_t sets = per_stripe > sizeof(stripe)
                    ? (per_stripe - sizeof(stripe)) / (WAYS * sizeof(slot))
                    : 0;
  c->stripe_mask = stripes - 1;
  c->sets = (uint32_t)(sets > 0 ? (sets < UINT32_MAX ? sets : UINT32_MAX) : 1);
  c->n_slots = (size_t)stripes * c->sets * WAYS;
  c->bytes = fixed + stripes * sizeof(stripe) + c->n_slots * sizeof(slot);
}

int rl__store_cache_new(const rl_config *config, rl__store *inner,
                        rl__guard *policies, rl__store **out) {
  rl__cache_settings set;
  rl__cache_settings_of(config, &set);
  cache *c = calloc(1, sizeof *c);
  if (c == NULL) {
    inner->ops->free(inner);
    return RL_ERR_NO_MEMORY;
  }
  c->base.ops = &cache_ops;
  c->inner = inner;
  c->policies = policies;
  rl__hash_key_random(&c->hash_key);
  c->ttl_ms = set.ttl_ms;
  c->ttl_ns = (int64_t)set.ttl_ms * NS_PER_MS;
  c->lease_max = set.lease_max;
  c->threshold = set.hot_threshold;
  c->hot_k = set.hot_k;
  c->max_bytes = set.max_bytes;
  c->leases = set.leases && inner->ops->script_call != NULL &&
              inner->ops->script_send != NULL;
  pthread_mutex_init(&c->sweep_mu, NULL);
  /* the sweeper's deadline is on CLOCK_MONOTONIC (sweeper_main): with the
   * default clock it lay decades in the past and the sweeper spun a core */
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->sweep_cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&c->async_mu, NULL);
  atomic_store(&c->serial_now,
               ((rl__policy_table *)rl__guard_peek(policies))->serial);
  /* asynchronous decisions in flight whose answers are remembered: 1/64
   * of the budget (more in flight are decided without it) */
  c->n_async = set.max_bytes / 64 / sizeof(async_ctx);
  c->n_async = c->n_async < 16 ? 16 : (c->n_async > 4096 ? 4096 : c->n_async);
  /* asynchronous lease calls in flight: one per hot key at most, within
   * 1/64 of the budget too (beyond that the sweeper fetches the leases) */
  c->n_lease = set.max_bytes / 64 / sizeof(lease_op);
  c->n_lease =
      c->n_lease < 1 ? 1 : (c->n_lease > c->hot_k ? c->hot_k : c->n_lease);
  size_t pools = c->n_async * sizeof(async_ctx) + c->n_lease * sizeof(lease_op);
  geometry(c, set.max_bytes - pools);
  c->bytes += pools;
  int err = rl__hot_keys_init(&c->hot, c->hot_k);
  if (err == RL_OK) {
    c->async_pool = calloc(c->n_async, sizeof *c->async_pool);
    c->lease_pool = calloc(c->n_lease, sizeof *c->lease_pool);
    c->stripes = calloc((size_t)c->stripe_mask + 1, sizeof *c->stripes);
    c->slots = calloc(c->n_slots, sizeof *c->slots);
    c->sweep_buf = calloc(c->hot_k, sizeof *c->sweep_buf);
    c->reconf_buf = calloc(c->hot_k, sizeof *c->reconf_buf);
    if (c->stripes == NULL || c->slots == NULL || c->sweep_buf == NULL ||
        c->reconf_buf == NULL || c->async_pool == NULL ||
        c->lease_pool == NULL) {
      err = RL_ERR_NO_MEMORY;
    }
  }
  for (size_t i = 0; err == RL_OK && i < c->n_async; i++) {
    c->async_pool[i].next = c->async_free;
    c->async_free = &c->async_pool[i];
  }
  for (size_t i = 0; err == RL_OK && i < c->n_lease; i++) {
    c->lease_pool[i].next = c->lease_free;
    c->lease_free = &c->lease_pool[i];
  }
  if (err != RL_OK) {
    c->inner = NULL;
    inner->ops->free(inner);
    free_cache(c);
    return err;
  }
  for (uint32_t i = 0; i <= c->stripe_mask; i++) {
    pthread_mutex_init(&c->stripes[i].lock, NULL);
    pthread_cond_init(&c->stripes[i].landed, NULL);
  }
  if (err == RL_OK && c->leases) {
    int64_t sweep = c->ttl_ns / 4;
    c->sweep_ns = sweep < SWEEP_MIN_NS
                      ? SWEEP_MIN_NS
                      : (sweep > SWEEP_MAX_NS ? SWEEP_MAX_NS : sweep);
    if (pthread_create(&c->sweeper, NULL, sweeper_main, c) == 0) {
      c->sweeper_started = 1;
    } else {
      err = RL_ERR_NO_MEMORY;
    }
  }
  if (err != RL_OK) {
    c->leases = 0;
    cache_free(&c->base);
    return err;
  }
  *out = &c->base;
  return RL_OK;
}

/* ---- public: stats and hot keys ----------------------------------------- */

static cache *cache_of(rl_limiter *rl) {
  rl__store *s = rl__limiter_store(rl);
  return s != NULL && s->ops == &cache_ops ? (cache *)s : NULL;
}

int rl_cache_stats_get(rl_limiter *rl, rl_cache_stats *out) {
  if (rl == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  memset(out, 0, sizeof *out);
  cache *c = cache_of(rl);
  if (c == NULL) {
    return RL_OK;
  }
  for (uint32_t i = 0; i <= c->stripe_mask; i++) {
    stripe *sp = &c->stripes[i];
    pthread_mutex_lock(&sp->lock);
    out->hits_blocked += sp->hits_blocked;
    out->hits_lease += sp->hits_lease;
    out->misses += sp->misses;
    out->evictions += sp->evictions;
    out->leases += sp->leases;
    out->lease_units += sp->lease_units;
    out->returned_units += sp->returned_units;
    out->redis_calls += sp->redis_calls;
    pthread_mutex_unlock(&sp->lock);
  }
  out->misses += atomic_load(&c->uncached);
  out->bytes = c->bytes;
  out->max_bytes = c->max_bytes;
  out->slots = c->n_slots;
  out->hot_keys = atomic_load(&c->hot_count);
  out->hot_displaced = atomic_load(&c->displaced);
  return RL_OK;
}

int rl_hot_keys(rl_limiter *rl, rl_hot_key *buf, size_t cap, size_t *n) {
  if (rl == NULL || n == NULL || (buf == NULL && cap > 0)) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  *n = 0;
  cache *c = cache_of(rl);
  if (c == NULL) {
    return RL_OK;
  }
  rl__hot_entry *tmp = calloc(c->hot_k, sizeof *tmp);
  if (tmp == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  size_t total = rl__hot_keys_copy(&c->hot, tmp, c->hot_k);
  size_t k = total < cap ? total : cap;
  k = k < c->hot_k ? k : c->hot_k;
  rl__guard_token token;
  const rl__policy_table *t = rl__guard_enter(c->policies, &token);
  for (size_t i = 0; i < k; i++) {
    rl_hot_key *h = &buf[i];
    memset(h, 0, sizeof *h);
    for (size_t j = 0; j < t->n; j++) {
      if (t->ids[j] == tmp[i].policy_id) {
        memcpy(h->policy, t->policies[j].name, t->policies[j].name_len);
        break;
      }
    }
    memcpy(h->key, tmp[i].key, tmp[i].key_len);
    h->key_len = tmp[i].key_len;
    h->rate = tmp[i].rate;
    h->leased = tmp[i].leased;
  }
  rl__guard_exit(&token);
  free(tmp);
  *n = total;
  return RL_OK;
}
