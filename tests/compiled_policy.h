/*
 * compiled_policy.h - a one-window policy compiled as the limiter does it,
 * for the tests that drive the stores through the internal API.
 */
#ifndef RL_TEST_COMPILED_POLICY_H
#define RL_TEST_COMPILED_POLICY_H

#include "policy.h"
#include "test_util.h"

static inline rl__policy compile(rl_algorithm alg, uint64_t limit,
                                 uint64_t ms) {
  rl_policy p = one_window(alg, limit, ms);
  rl__policy out;
  assert_int_equal(rl__policy_compile(&p, 0, &out, NULL, 0), RL_OK);
  return out;
}

#endif /* RL_TEST_COMPILED_POLICY_H */
