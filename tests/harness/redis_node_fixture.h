/*
 * redis_node_fixture.h - a cmocka fixture for connection-layer tests: one
 * redis-server (the harness) and one node talking to it, ready.
 */
#ifndef RLT_REDIS_NODE_FIXTURE_H
#define RLT_REDIS_NODE_FIXTURE_H

#include <stdlib.h>

#include "harness/redis_testutil.h"

typedef struct fixture {
  rlt_redis srv;
  rl__redis_node *node;
} fixture;

/* A server and a node of pool connections, queue_max records (0: the
 * default) and the given scripts; 0 once the node is ready. */
static inline int rlt_node_fixture_setup(void **state, unsigned pool,
                                         unsigned queue_max,
                                         const char *const *scripts,
                                         size_t n_scripts) {
  fixture *f = calloc(1, sizeof(*f));
  *state = f;
  if (f == NULL || rlt_redis_start(&f->srv, NULL) != 0)
    return -1;
  rl__redis_node_opts o;
  char err[128];
  rlt_node_opts(&o, &f->srv);
  o.pool_size = pool;
  if (queue_max)
    o.queue_max = queue_max;
  o.scripts = scripts;
  o.n_scripts = n_scripts;
  if (rl__redis_node_new(NULL, &o, &f->node, err, sizeof(err)) != RL_OK) {
    fprintf(stderr, "node_new: %s\n", err);
    return -1;
  }
  return rl__redis_node_wait_ready(f->node, rlt_deadline(5000));
}

static inline int rlt_node_fixture_teardown(void **state) {
  fixture *f = *state;
  rlt_redis_resume(&f->srv);
  rl__redis_node_free(f->node);
  rlt_redis_stop(&f->srv);
  free(f);
  rl__redis_thread_cleanup();
  return 0;
}

#endif /* RLT_REDIS_NODE_FIXTURE_H */
