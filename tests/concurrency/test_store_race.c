/*
 * test_store_race.c - the memory store's lock-free lookups racing every
 * structure change: insertions, growth, CLOCK eviction, sweeps and purges.
 * Run under TSan, ASan and valgrind by scripts/test.sh.
 *
 * The clock stands still in each test, so the capacity of a key is known:
 * every algorithm admits exactly `limit` unit requests at one instant.
 *   - one shared key, every thread also inserting new keys (the tables
 *     grow many times meanwhile): the shared key admits exactly its limit,
 *     the admitted requests saw every remaining value once (no lost update),
 *     and the store holds exactly one node per key (none duplicated);
 *   - distinct keys per thread while another thread inserts, sweeps and
 *     purges keys of other policies: every key admits exactly its limit;
 *   - a small budget under constant eviction, with sweeps and purges: no
 *     crash, the charged bytes never exceed the budget, and once the threads
 *     are gone every unlinked node is freed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"

#include "guard.h"
#include "compiled_policy.h"
#include "memory_store.h"
#include "policy_table.h"

#define THREADS 4
#define NOW 1000000 /* ms: every decision's time */

enum { P_COUNTED = 1, P_SWEPT = 2, P_PURGED = 3 };

static rl__guard g_guard;
static atomic_int g_failures; /* worker threads count, main asserts */

static void check(int ok) {
  if (!ok) {
    atomic_fetch_add(&g_failures, 1);
  }
}

/* One decision of cost 1 inside a read section, as rl_decide makes it. */
static rl_decision decide(rl__memstore *ms, uint16_t policy,
                          const rl__policy *p, const char *key, int64_t now) {
  rl_decision d = {0};
  rl__guard_token token;
  rl__guard_enter(&g_guard, &token);
  int err =
      rl__memstore_decide(ms, policy, &p->shape, key, strlen(key), now, 1, &d);
  rl__guard_exit(&token);
  check(err == RL_OK);
  return d;
}

static void run_threads(void *(*fn)(void *), void *args, size_t arg_size,
                        int n) {
  pthread_t tid[THREADS + 1];
  for (int i = 0; i < n; i++) {
    assert_int_equal(
        pthread_create(&tid[i], NULL, fn, (char *)args + (size_t)i * arg_size),
        0);
  }
  for (int i = 0; i < n; i++) {
    pthread_join(tid[i], NULL);
  }
  assert_int_equal(atomic_load(&g_failures), 0);
}

/* Every unlinked node is freed once no decision is in flight. */
static void assert_all_reclaimed(rl__memstore *ms) {
  size_t pending = 0;
  for (int i = 0; i < 4; i++) { /* each call advances the epoch once */
    pending = rl__memstore_pending(ms);
  }
  assert_int_equal(pending, 0);
}

/* ---- one shared key while the tables grow ---------------------------- */

#define SHARED_LIMIT 3000
#define OWN_KEYS 4000 /* new keys per thread */

typedef struct shared_ctx {
  rl__memstore *ms;
  const rl__policy *p;
  atomic_int *seen; /* per remaining value: admissions that reported it */
  int id;
  int admitted;
} shared_ctx;

static void *shared_main(void *arg) {
  shared_ctx *c = arg;
  char key[32];
  for (int i = 0; i < OWN_KEYS; i++) {
    rl_decision d = decide(c->ms, P_COUNTED, c->p, "shared", NOW);
    if (d.allowed) {
      c->admitted++;
      check(d.remaining < SHARED_LIMIT);
      atomic_fetch_add(&c->seen[d.remaining % SHARED_LIMIT], 1);
    }
    snprintf(key, sizeof key, "t%d:%d", c->id, i);
    check(decide(c->ms, P_COUNTED, c->p, key, NOW).allowed);
    snprintf(key, sizeof key, "t%d:%d", c->id, i / 2); /* known by now */
    decide(c->ms, P_COUNTED, c->p, key, NOW);
  }
  return NULL;
}

static void shared_key_case(rl_algorithm alg) {
  rl__policy p = compile(alg, SHARED_LIMIT, 3600000);
  rl__memstore *ms = NULL;
  assert_int_equal(rl__memstore_new(256u << 20, 4, &g_guard, &ms), RL_OK);
  static atomic_int seen[SHARED_LIMIT];
  for (int i = 0; i < SHARED_LIMIT; i++) {
    atomic_init(&seen[i], 0);
  }
  shared_ctx ctx[THREADS];
  for (int i = 0; i < THREADS; i++) {
    ctx[i] = (shared_ctx){ms, &p, seen, i, 0};
  }
  run_threads(shared_main, ctx, sizeof ctx[0], THREADS);
  int admitted = 0;
  for (int i = 0; i < THREADS; i++) {
    admitted += ctx[i].admitted;
  }
  assert_int_equal(admitted, SHARED_LIMIT);
  for (int i = 0; i < SHARED_LIMIT; i++) {
    assert_int_equal(atomic_load(&seen[i]), 1);
  }
  rl_memory_stats st;
  rl__memstore_stats(ms, &st);
  assert_int_equal(st.keys, 1 + THREADS * OWN_KEYS); /* none duplicated */
  assert_int_equal(st.evicted_live + st.evicted_expired, 0);
  /* every own key kept its exact count through the growths: i was decided
   * once as new and, if i < OWN_KEYS / 2, twice more as i / 2 */
  char key[32];
  for (int t = 0; t < THREADS; t++) {
    for (int i = 0; i < OWN_KEYS; i += 97) {
      snprintf(key, sizeof key, "t%d:%d", t, i);
      uint64_t spent = 1 + (i < OWN_KEYS / 2 ? 2 : 0);
      assert_int_equal(decide(ms, P_COUNTED, &p, key, NOW).remaining,
                       SHARED_LIMIT - spent - 1);
    }
  }
  assert_all_reclaimed(ms);
  rl__memstore_free(ms);
}

static void test_shared_key_exact_while_growing(void **state) {
  (void)state;
  shared_key_case(RL_ALG_FIXED_WINDOW);
  shared_key_case(RL_ALG_SLIDING_COUNTER);
  shared_key_case(RL_ALG_SLIDING_LOG);
  shared_key_case(RL_ALG_TOKEN_BUCKET);
}

/* ---- distinct keys while other policies are swept and purged -------- */

#define DISTINCT_KEYS 200 /* per thread */
#define DISTINCT_LIMIT 20
#define ROUNDS (DISTINCT_LIMIT + 5)

typedef struct churn_ctx {
  rl__memstore *ms;
  const rl__policy *counted, *fleeting;
  atomic_int *deciders_left;
  int id;
  int admitted[DISTINCT_KEYS];
} churn_ctx;

static void *counted_main(void *arg) {
  churn_ctx *c = arg;
  char key[32];
  for (int r = 0; r < ROUNDS; r++) {
    for (int k = 0; k < DISTINCT_KEYS; k++) {
      snprintf(key, sizeof key, "c%d:%d", c->id, k);
      c->admitted[k] += decide(c->ms, P_COUNTED, c->counted, key, NOW).allowed;
    }
  }
  atomic_fetch_sub(c->deciders_left, 1);
  return NULL;
}

/* Inserts keys of two other policies, then sweeps (they expire 10 ms after
 * NOW) or purges them, until the deciders are done, and at least one round
 * of each (under valgrind's one-thread-at-a-time scheduler the deciders may
 * finish before this thread has run twice). */
static void *churn_main(void *arg) {
  churn_ctx *c = arg;
  uint64_t purge_ids[RL__POLICY_IDS / 64] = {0};
  purge_ids[P_PURGED / 64] |= 1ull << (P_PURGED % 64);
  char key[32];
  for (unsigned round = 0; round < 2 || atomic_load(c->deciders_left) > 0;
       round++) {
    for (int k = 0; k < 300; k++) {
      snprintf(key, sizeof key, "j%u:%d", round, k);
      decide(c->ms, round % 2 ? P_SWEPT : P_PURGED, c->fleeting, key, NOW);
    }
    if (round % 2) {
      rl__memstore_sweep(c->ms, NOW + 100);
    } else {
      rl__memstore_purge(c->ms, purge_ids);
    }
  }
  return NULL;
}

static void test_distinct_keys_exact_while_swept_and_purged(void **state) {
  (void)state;
  rl__policy counted = compile(RL_ALG_SLIDING_LOG, DISTINCT_LIMIT, 3600000);
  rl__policy fleeting = compile(RL_ALG_FIXED_WINDOW, 1000, 10);
  rl__memstore *ms = NULL;
  assert_int_equal(rl__memstore_new(64u << 20, 2, &g_guard, &ms), RL_OK);
  atomic_int left = THREADS - 1;
  static churn_ctx ctx[THREADS];
  for (int i = 0; i < THREADS; i++) {
    memset(&ctx[i], 0, sizeof ctx[i]);
    ctx[i] = (churn_ctx){.ms = ms,
                         .counted = &counted,
                         .fleeting = &fleeting,
                         .deciders_left = &left,
                         .id = i};
  }
  pthread_t churn;
  assert_int_equal(pthread_create(&churn, NULL, churn_main, &ctx[THREADS - 1]),
                   0);
  run_threads(counted_main, ctx, sizeof ctx[0], THREADS - 1);
  pthread_join(churn, NULL);
  for (int i = 0; i < THREADS - 1; i++) {
    for (int k = 0; k < DISTINCT_KEYS; k++) {
      assert_int_equal(ctx[i].admitted[k], DISTINCT_LIMIT);
    }
  }
  rl_memory_stats st;
  rl__memstore_stats(ms, &st);
  assert_int_equal(st.evicted_live, 0);
  assert_true(st.evicted_expired > 0);
  /* what is left of the other policies: at most the last round's keys */
  assert_true(st.keys >= (THREADS - 1) * DISTINCT_KEYS);
  assert_true(st.keys <= (THREADS - 1) * DISTINCT_KEYS + 300);
  assert_all_reclaimed(ms);
  rl__memstore_free(ms);
}

/* ---- constant eviction ---------------------------------------------- */

#define SMALL_BUDGET (48u << 10)
#define EVICT_OPS 6000

typedef struct evict_ctx {
  rl__memstore *ms;
  const rl__policy *p;
  atomic_int *running;
  int id;
  int over_budget;
} evict_ctx;

static void *evict_main(void *arg) {
  evict_ctx *c = arg;
  char key[32];
  for (int i = 0; i < EVICT_OPS; i++) {
    decide(c->ms, P_COUNTED, c->p, "hot", NOW);
    snprintf(key, sizeof key, "e%d:%d", c->id, i); /* new: evicts */
    decide(c->ms, i % 3 ? P_COUNTED : P_PURGED, c->p, key, NOW + (i % 2) * 50);
    snprintf(key, sizeof key, "e%d:%d", c->id, i / 4); /* maybe evicted */
    decide(c->ms, P_COUNTED, c->p, key, NOW);
  }
  atomic_fetch_sub(c->running, 1);
  return NULL;
}

static void *maintain_main(void *arg) {
  evict_ctx *c = arg;
  uint64_t purge_ids[RL__POLICY_IDS / 64] = {0};
  purge_ids[P_PURGED / 64] |= 1ull << (P_PURGED % 64);
  for (unsigned round = 0; atomic_load(c->running) > 0; round++) {
    rl_memory_stats st;
    rl__memstore_stats(c->ms, &st);
    c->over_budget += st.bytes > st.max_bytes;
    if (round % 2) {
      rl__memstore_sweep(c->ms, NOW + 20);
    } else {
      rl__memstore_purge(c->ms, purge_ids);
    }
  }
  return NULL;
}

static void test_eviction_storm(void **state) {
  (void)state;
  /* 10 per 20 ms: a key decided at NOW expires at NOW + 20 at the latest */
  rl__policy p = compile(RL_ALG_TOKEN_BUCKET, 10, 20);
  rl__memstore *ms = NULL;
  assert_int_equal(rl__memstore_new(SMALL_BUDGET, 2, &g_guard, &ms), RL_OK);
  atomic_int running = THREADS - 1;
  evict_ctx ctx[THREADS];
  for (int i = 0; i < THREADS; i++) {
    ctx[i] = (evict_ctx){ms, &p, &running, i, 0};
  }
  pthread_t maint;
  assert_int_equal(
      pthread_create(&maint, NULL, maintain_main, &ctx[THREADS - 1]), 0);
  run_threads(evict_main, ctx, sizeof ctx[0], THREADS - 1);
  pthread_join(maint, NULL);
  assert_int_equal(ctx[THREADS - 1].over_budget, 0);
  rl_memory_stats st;
  rl__memstore_stats(ms, &st);
  assert_true(st.bytes <= SMALL_BUDGET);
  assert_true(st.evicted_live > 0);
  assert_all_reclaimed(ms);
  rl__memstore_free(ms);
}

int main(void) {
  rl__guard_init(&g_guard, NULL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared_key_exact_while_growing),
      cmocka_unit_test(test_distinct_keys_exact_while_swept_and_purged),
      cmocka_unit_test(test_eviction_storm),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
