/*
 * redis_group.h - one redis-server for a whole cmocka group: pass
 * redis_group_setup and redis_group_teardown to cmocka_run_group_tests;
 * the tests reach the server as srv and empty it with flushall(). Include
 * after test_util.h (cmocka).
 */
#ifndef RLT_REDIS_GROUP_H
#define RLT_REDIS_GROUP_H

#include "harness/redis_server.h"
#include "redis_conn.h"

static rlt_redis srv;

static inline int redis_group_setup(void **state) {
  (void)state;
  return rlt_redis_start(&srv, NULL);
}

/* Stops the server and frees this thread's Redis state in the library. */
static inline int redis_group_teardown(void **state) {
  (void)state;
  rlt_redis_stop(&srv);
  rl__redis_thread_cleanup();
  return 0;
}

static inline void flushall(void) {
  char out[64];
  assert_int_equal(rlt_redis_cmd(&srv, out, sizeof out, 1, "FLUSHALL", NULL),
                   0);
}

#endif /* RLT_REDIS_GROUP_H */
