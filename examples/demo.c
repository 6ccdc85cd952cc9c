/*
 * demo.c - what `make run` shows until ratelimitd lands: the library
 * deciding, live, for each algorithm, under a two-window policy
 * (5 per second and 12 per 5 seconds), as a client sends bursts.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <ratelimiter.h>

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int run(rl_algorithm alg) {
  rl_policy policy;
  rl_policy_init(&policy);
  policy.name = "demo";
  policy.algorithm = alg;
  rl_policy_add_window(&policy, 5, 1000);  /* 5 per second */
  rl_policy_add_window(&policy, 12, 5000); /* and 12 per 5 seconds */
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
  printf("\n%s: 5/s and 12/5s, bursts of 8 requests every 700 ms\n",
         rl_algorithm_name(alg));
  for (int burst = 0; burst < 4; burst++) {
    printf("  t=%4d ms  ", burst * 700);
    for (int i = 0; i < 8; i++) {
      rl_decision d;
      err = rl_allow(rl, "user:12345", strlen("user:12345"), &d);
      if (err != RL_OK) {
        break;
      }
      if (d.allowed) {
        printf(" ok(%llu)", (unsigned long long)d.remaining);
      } else {
        printf(" DENY[w%d,%llums]", d.window,
               (unsigned long long)d.retry_after_ms);
      }
    }
    printf("\n");
    sleep_ms(700);
  }
  rl_free(rl);
  return err == RL_OK ? 0 : 1;
}

int main(void) {
  printf("libratelimiter %s demo: ok(n) = admitted, n left in the tightest "
         "window;\nDENY[wI,Tms] = denied by window I, retry after T ms\n",
         rl_version());
  int rc = 0;
  rc |= run(RL_ALG_SLIDING_LOG);
  rc |= run(RL_ALG_SLIDING_COUNTER);
  rc |= run(RL_ALG_TOKEN_BUCKET);
  rc |= run(RL_ALG_FIXED_WINDOW);
  return rc;
}
