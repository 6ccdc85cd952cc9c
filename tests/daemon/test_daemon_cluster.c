/*
 * test_daemon_cluster.c - ratelimitd on a real Redis Cluster (3 masters, 3
 * replicas; tests/harness/redis_cluster.h) with rate_limiter.redis.mode:
 * cluster and one seed address: /ready once the topology is known, exact
 * limits on keys spread over every master, the state in keys with a TTL
 * on the masters that own their slots.
 *
 * usage: test_daemon_cluster PATH/TO/ratelimitd
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "redis_cluster.h"

#define KEYS 24

static rlt_cluster cluster;

static void stop_cluster(void) {
  rlt_cluster_stop(&cluster);
}

static int check(const h_proc *d, const char *key) {
  static h_response r;
  char body[128];
  snprintf(body, sizeof body, "{\"policy\":\"api\",\"key\":\"%s\"}", key);
  errno = 0;
  int rc = h_http(d->port, "POST", "/v1/check",
                  "Content-Type: application/json\r\n", body, &r);
  /* (seen once under TSan on a loaded box, not reproduced: say what the
   * daemon was doing) */
  H_EXPECT(rc == 0,
           "no HTTP answer to /v1/check for %s (errno %d, %zu bytes read, "
           "daemon pid %d %s)",
           key, errno, r.raw_len, (int)d->pid,
           kill(d->pid, 0) == 0 ? "alive" : "gone");
  H_EXPECT(r.status == 200 || r.status == 429, "%d\n%s", r.status, r.raw);
  return r.status;
}

int main(int argc, char **argv) {
  H_EXPECT(argc >= 2, "usage: %s PATH/TO/ratelimitd", argv[0]);
  H_CHECK(rlt_cluster_start(&cluster, 3, 1, 1000) == 0);
  atexit(stop_cluster);
  char config[768];
  snprintf(config, sizeof config,
           "rate_limiter:\n"
           "  redis: {addrs: [\"%s\"], mode: cluster, pool_size: 4, "
           "timeout: 2s}\n"
           "  windows: [{max_requests: 1000, duration: 1m}]\n"
           "  policies:\n"
           "    - name: api\n"
           "      algorithm: fixed_window\n"
           "      windows: [{max_requests: 5, duration: 1h}]\n"
           "      key: [header:X-Unused]\n",
           cluster.addr_text[0]);
  h_proc d = h_start_daemon(argv[1], config);
  static h_response r;
  uint64_t deadline = h_now_ms() + 20000;
  do { /* ready once the topology is known and every master connected */
    H_CHECK(h_http(d.port, "GET", "/ready", "", NULL, &r) == 0);
  } while (r.status != 200 && h_now_ms() < deadline && (h_sleep_ms(20), 1));
  H_EXPECT(r.status == 200 && strstr(r.raw, "\"store\":\"redis\""), "%s",
           r.raw);
  /* 5 per hour per key, 7 requests on each of 24 keys. */
  for (int k = 0; k < KEYS; k++) {
    char key[32];
    snprintf(key, sizeof key, "user-%d", k);
    int admitted = 0;
    for (int i = 0; i < 7; i++) {
      admitted += check(&d, key) == 200;
    }
    H_EXPECT(admitted == 5, "key %s: admitted %d of 7", key, admitted);
  }
  /* The keys live on the masters of their slots: all of them, spread. */
  int total = 0, masters_with_keys = 0;
  for (int i = 0; i < cluster.n; i++) {
    char out[64];
    if (!rlt_cluster_is_master(&cluster, i)) {
      continue;
    }
    H_CHECK(rlt_cluster_cli(&cluster, i, out, sizeof out, "DBSIZE", NULL) == 0);
    total += atoi(out);
    masters_with_keys += atoi(out) > 0;
  }
  H_EXPECT(total == KEYS, "%d keys on the masters, expected %d", total, KEYS);
  H_EXPECT(masters_with_keys == 3, "keys on %d masters", masters_with_keys);
  printf("ok: ratelimitd on a 3-master cluster: 5 of 7 admitted on each of "
         "%d keys, spread over %d masters\n",
         KEYS, masters_with_keys);
  H_CHECK(h_stop(&d, 15, 5000) == 0);
  return 0;
}
