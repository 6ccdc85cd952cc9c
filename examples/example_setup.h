/*
 * example_setup.h - what the middleware examples (evhttp_middleware.c,
 * mhd_middleware.c) share: their command line, the limiter and middleware
 * config of the seed's example (3 requests per minute per client IP), and
 * the port file the tests read.
 */
#ifndef RL_EXAMPLE_SETUP_H
#define RL_EXAMPLE_SETUP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ratelimiter.h>

#include "rl_mw.h"

/* [--port N] [--port-file FILE] */
typedef struct example_args {
  unsigned port;
  const char *port_file; /* NULL: none */
} example_args;

static inline example_args example_args_parse(int argc, char **argv,
                                              unsigned default_port) {
  example_args a = {default_port, NULL};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) {
      a.port = (unsigned)atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "--port-file") == 0) {
      a.port_file = argv[i + 1];
    }
  }
  return a;
}

/* The limiter: one policy "api", 3 per minute (policy must outlive it).
 * The middleware: that policy, keyed by client IP (the default). NULL if
 * the limiter cannot be made. */
static inline rl_limiter *example_limiter(rl_policy *policy,
                                          rl_mw_config *mw_config) {
  rl_policy_init(policy);
  policy->name = "api";
  rl_policy_add_window(policy, 3, 60 * 1000);
  rl_config config;
  rl_config_init(&config);
  config.policies = policy;
  config.n_policies = 1;
  rl_limiter *rl = NULL;
  if (rl_new(&config, &rl) != RL_OK) {
    return NULL;
  }
  rl_mw_config_init(mw_config);
  mw_config->policy_name = "api";
  mw_config->policy = policy;
  return rl;
}

/* Writes the port the server listens on into path (if not NULL). */
static inline void example_write_port(const char *path, unsigned port) {
  FILE *f = path != NULL ? fopen(path, "w") : NULL;
  if (f != NULL) {
    fprintf(f, "%u\n", port);
    fclose(f);
  }
}

#endif /* RL_EXAMPLE_SETUP_H */
