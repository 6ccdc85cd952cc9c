/*
 * test_rng.h - the random tests' generator: xorshift64 from a fixed seed,
 * so a failing run replays exactly. The test file defines RND_SEED (its own
 * seed) before including it.
 */
#ifndef RL_TEST_RNG_H
#define RL_TEST_RNG_H

#include <stdint.h>

static uint64_t rng = RND_SEED;

/* Uniform-ish in [0, n). */
static inline uint64_t rnd(uint64_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng % n;
}

/* The clock of a random run, one step on: one step in back_one_in goes
 * back by less than back_ms, the others forward by less than fwd_ms; never
 * below 0. */
static inline int64_t clock_step(int64_t clock, uint64_t back_one_in,
                                 uint64_t back_ms, uint64_t fwd_ms) {
  clock +=
      rnd(back_one_in) == 0 ? -(int64_t)rnd(back_ms) : (int64_t)rnd(fwd_ms);
  return clock < 0 ? 0 : clock;
}

#endif /* RL_TEST_RNG_H */
