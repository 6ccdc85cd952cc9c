/*
 * test_daemon_redis.c - ratelimitd on the Redis store: two daemons share one
 * real redis-server, so a limit is global across instances; /ready reports
 * the store; the state lives in Redis keys with a TTL; with
 * rate_limiter.cache a denial is answered from the cache and
 * /v1/admin/hot-keys reports it. With Redis down, the fallback modes take
 * effect through the library: mode none answers 500 and /ready 503; a
 * local policy still decides (source fallback_local); a daemon whose every
 * policy falls back is ready and answers closed (429). An ACL user whose
 * password comes from password_file (a mounted Secret) is accepted, a
 * wrong one is not.
 *
 * usage: test_daemon_redis PATH/TO/ratelimitd
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "redis_server.h"

static rlt_redis redis;

static void stop_redis(void) {
  rlt_redis_stop(&redis);
}

static h_response r;

static int check_policy(uint16_t port, const char *policy, const char *key) {
  char body[128];
  snprintf(body, sizeof body, "{\"policy\":\"%s\",\"key\":\"%s\"}", policy,
           key);
  H_CHECK(h_http(port, "POST", "/v1/check",
                 "Content-Type: application/json\r\n", body, &r) == 0);
  H_EXPECT(r.status == 200 || r.status == 429, "%d\n%s", r.status, r.raw);
  return r.status;
}

static int check(uint16_t port, const char *key) {
  return check_policy(port, "api", key);
}

static rlt_redis acl_redis;

static void stop_acl_redis(void) {
  rlt_redis_stop(&acl_redis);
}

static int wait_ready(uint16_t port, int want, int ms) {
  uint64_t deadline = h_now_ms() + (uint64_t)ms;
  do {
    H_CHECK(h_http(port, "GET", "/ready", "", NULL, &r) == 0);
  } while (r.status != want && h_now_ms() < deadline && (h_sleep_ms(20), 1));
  return r.status;
}

/* rate_limiter.redis.username + password_file against an ACL-only server. */
static void acl_user(const char *ratelimitd) {
  rlt_redis_opts o = {0};
  o.acl = "user default off\n"
          "user limiter on >s3cret-pw ~rl:* +@all\n";
  H_CHECK(rlt_redis_start(&acl_redis, &o) == 0);
  atexit(stop_acl_redis);
  char *pw = h_path("redis-password");
  h_write_file(pw, "s3cret-pw\n");
  char *bad = h_path("redis-password-bad");
  h_write_file(bad, "wrong\n");
  char config[768];
  const char *files[] = {pw, bad};
  for (int i = 0; i < 2; i++) {
    snprintf(config, sizeof config,
             "rate_limiter:\n"
             "  redis: {addrs: [\"127.0.0.1:%u\"], username: limiter, "
             "password_file: \"%s\", timeout: 500ms}\n"
             "  fallback: {mode: none}\n"
             "  windows: [{max_requests: 1000, duration: 1m}]\n"
             "  policies:\n"
             "    - name: api\n"
             "      algorithm: fixed_window\n"
             "      windows: [{max_requests: 2, duration: 1h}]\n"
             "      key: [header:X-Unused]\n",
             (unsigned)acl_redis.port, files[i]);
    h_proc d = h_start_daemon(ratelimitd, config);
    if (i == 0) {
      H_EXPECT(wait_ready(d.port, 200, 5000) == 200, "ACL user not ready");
      H_CHECK(check(d.port, "acl") == 200);
      H_CHECK(check(d.port, "acl") == 200);
      H_CHECK(check(d.port, "acl") == 429);
    } else { /* the wrong password never gets ready */
      H_EXPECT(wait_ready(d.port, 200, 1000) == 503, "wrong password ready");
    }
    H_CHECK(h_stop(&d, 15, 5000) == 0);
  }
  free(pw);
  free(bad);
  printf("ok: redis username + password_file (ACL); a wrong one: 503\n");
}

int main(int argc, char **argv) {
  H_EXPECT(argc >= 2, "usage: %s PATH/TO/ratelimitd", argv[0]);
  H_CHECK(rlt_redis_start(&redis, NULL) == 0);
  atexit(stop_redis);
  char config[1024];
  snprintf(config, sizeof config,
           "rate_limiter:\n"
           "  redis: {addrs: [\"127.0.0.1:%u\"], pool_size: 100, "
           "timeout: 500ms}\n"
           "  fallback: {mode: none, probe_interval: 100ms, "
           "local_instances: 2}\n"
           "  windows: [{max_requests: 1000, duration: 1m}]\n"
           "  policies:\n"
           "    - name: api\n"
           "      algorithm: fixed_window\n"
           "      windows: [{max_requests: 5, duration: 1h}]\n"
           "      key: [header:X-Unused]\n"
           "    - name: lcl\n"
           "      fallback: local\n"
           "      windows: [{max_requests: 4, duration: 1h}]\n"
           "      key: [header:X-Unused]\n",
           (unsigned)redis.port);
  h_proc a = h_start_daemon(argv[1], config);
  h_proc b = h_start_daemon(argv[1], config);
  uint64_t deadline = h_now_ms() + 5000;
  do { /* ready once a Redis connection is */
    H_CHECK(h_http(a.port, "GET", "/ready", "", NULL, &r) == 0);
  } while (r.status != 200 && h_now_ms() < deadline && (h_sleep_ms(20), 1));
  H_EXPECT(r.status == 200 && strstr(r.raw, "\"store\":\"redis\""), "%s",
           r.raw);
  /* 5 per hour for one key, shared by both instances. */
  int admitted = 0;
  for (int i = 0; i < 10; i++) {
    admitted += check(i % 2 ? a.port : b.port, "user-1") == 200;
  }
  H_EXPECT(admitted == 5, "admitted %d of 10 across two daemons", admitted);
  H_CHECK(check(a.port, "user-2") == 200); /* another key: its own quota */
  char out[256];
  H_CHECK(rlt_redis_cmd(&redis, out, sizeof out, 1, "DBSIZE", NULL) == 0);
  H_EXPECT(strcmp(out, ":2") == 0, "DBSIZE %s", out);
  printf("ok: two daemons share one Redis limit (5 of 10 admitted)\n");
  { /* rate_limiter.cache takes effect: the denial is then cached */
    char cached[1200];
    snprintf(cached, sizeof cached,
             "%s  cache: {enabled: true, ttl: 500ms, max_size: 1MB}\n", config);
    h_proc c = h_start_daemon(argv[1], cached);
    H_CHECK(check(c.port, "user-1") == 429); /* Redis: over the limit */
    H_CHECK(check(c.port, "user-1") == 429); /* the cache */
    H_CHECK(h_http(c.port, "GET", "/v1/admin/hot-keys", "", NULL, &r) == 0);
    H_EXPECT(r.status == 200 && strstr(r.raw, "\"hot_keys\":0") &&
                 strstr(r.raw, "\"hits_blocked\":1"),
             "%s", r.raw);
    H_CHECK(h_http(a.port, "GET", "/v1/admin/hot-keys", "", NULL, &r) == 0);
    H_EXPECT(r.status == 200 && strstr(r.raw, "\"hot_keys\":0"), "%s", r.raw);
    H_CHECK(h_stop(&c, 15, 5000) == 0);
    printf("ok: rate_limiter.cache caches a denial; /v1/admin/hot-keys\n");
  }
  /* Redis gone: decisions fail fast, /ready says so, /health does not. */
  rlt_redis_stop(&redis);
  H_CHECK(h_http(a.port, "GET", "/health", "", NULL, &r) == 0);
  H_CHECK(r.status == 200);
  uint64_t t0 = h_now_ms();
  H_CHECK(h_http(a.port, "POST", "/v1/check", "",
                 "{\"policy\":\"api\",\"key\":\"user-3\"}", &r) == 0);
  int down_status = r.status;
  H_EXPECT(down_status >= 500 && h_now_ms() - t0 < 2000, "%d after %llu ms\n%s",
           down_status, (unsigned long long)(h_now_ms() - t0), r.raw);
  deadline = h_now_ms() + 3000;
  do {
    H_CHECK(h_http(a.port, "GET", "/ready", "", NULL, &r) == 0);
  } while (r.status != 503 && h_now_ms() < deadline && (h_sleep_ms(20), 1));
  H_EXPECT(r.status == 503, "/ready with Redis down: %d", r.status);
  printf("ok: Redis down -> %d on check, 503 on /ready, 200 on /health\n", 500);
  /* a policy in local mode: the local share (4 / 2) of its limit */
  int local_ok = 0;
  for (int i = 0; i < 3; i++) {
    local_ok += check_policy(a.port, "lcl", "user-4") == 200;
    H_EXPECT(strstr(r.raw, "\"source\":\"fallback_local\""), "%s", r.raw);
  }
  H_EXPECT(local_ok == 2, "local fallback admitted %d of 3", local_ok);
  printf("ok: Redis down -> local fallback admits the local share (2 of 3)\n");
  H_CHECK(h_stop(&a, 15, 5000) == 0);
  H_CHECK(h_stop(&b, 15, 5000) == 0);
  /* every policy closed: ready while Redis is down, denials with a retry */
  char closed[512];
  snprintf(closed, sizeof closed,
           "rate_limiter:\n"
           "  redis: {addrs: [\"127.0.0.1:%u\"], timeout: 500ms}\n"
           "  fallback: {mode: closed}\n"
           "  policies:\n"
           "    - name: api\n"
           "      windows: [{max_requests: 5, duration: 1h}]\n"
           "      key: [header:X-Unused]\n",
           (unsigned)redis.port);
  h_proc c = h_start_daemon(argv[1], closed);
  H_CHECK(h_http(c.port, "GET", "/ready", "", NULL, &r) == 0);
  H_EXPECT(r.status == 200 && strstr(r.raw, "\"serving\":\"fallback\""),
           "/ready with every policy closed: %d\n%s", r.status, r.raw);
  t0 = h_now_ms();
  H_CHECK(check(c.port, "user-5") == 429);
  H_EXPECT(strstr(r.raw, "\"source\":\"fallback_closed\"") &&
               h_now_ms() - t0 < 2000,
           "%s", r.raw);
  printf("ok: mode closed -> 200 on /ready, 429 from the fallback\n");
  H_CHECK(h_stop(&c, 15, 5000) == 0);
  acl_user(argv[1]);
  return 0;
}
