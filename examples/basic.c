/*
 * basic.c - the seed's Go example, in C:
 *
 *   rl, _ := ratelimiter.New(ratelimiter.Config{MaxRequests: 100,
 *                                               Window: time.Minute})
 *   allowed, _ := rl.Allow(ctx, "user:12345")
 */
#include <stdio.h>
#include <string.h>

#include <ratelimiter.h>

int main(void) {
  rl_policy policy;
  rl_policy_init(&policy);
  rl_policy_add_window(&policy, 100, 60 * 1000); /* 100 per minute */

  rl_config config;
  rl_config_init(&config);
  config.policies = &policy;
  config.n_policies = 1;

  rl_limiter *rl = NULL;
  int err = rl_new(&config, &rl);
  if (err != RL_OK) {
    fprintf(stderr, "rl_new: %s\n", rl_strerror(err));
    return 1;
  }

  const char *key = "user:12345";
  rl_decision d;
  err = rl_allow(rl, key, strlen(key), &d);
  if (err != RL_OK) {
    fprintf(stderr, "rl_allow: %s\n", rl_strerror(err));
  } else {
    printf("allowed=%d remaining=%llu\n", d.allowed,
           (unsigned long long)d.remaining);
  }
  rl_free(rl);
  return err == RL_OK ? 0 : 1;
}
