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

/* What a middleware example runs on: its command line
 * ([--port N] [--port-file FILE]), the limiter (one policy "api", 3 per
 * minute) and the middleware config for it (keyed by client IP, the
 * default). mw_config points at policy: an example is never copied. */
typedef struct example {
  unsigned port;
  const char *port_file; /* NULL: none */
  rl_policy policy;
  rl_mw_config mw_config;
  rl_limiter *rl;
} example;

/* Returns 0, or -1 if the limiter cannot be made. */
static inline int example_init(example *e, int argc, char **argv,
                               unsigned default_port) {
  e->port = default_port;
  e->port_file = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) {
      e->port = (unsigned)atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "--port-file") == 0) {
      e->port_file = argv[i + 1];
    }
  }
  rl_policy_init(&e->policy);
  e->policy.name = "api";
  rl_policy_add_window(&e->policy, 3, 60 * 1000);
  rl_config config;
  rl_config_init(&config);
  config.policies = &e->policy;
  config.n_policies = 1;
  e->rl = NULL;
  if (rl_new(&config, &e->rl) != RL_OK) {
    return -1;
  }
  rl_mw_config_init(&e->mw_config);
  e->mw_config.policy_name = "api";
  e->mw_config.policy = &e->policy;
  return 0;
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
