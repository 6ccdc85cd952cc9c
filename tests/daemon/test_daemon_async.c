/*
 * test_daemon_async.c - ratelimitd's Redis path on rl_decide_async (issue
 * 7 item 9): the worker keeps serving while a decision waits on Redis.
 *
 *   - 200 connections each send a check at once, twice (keep-alive), for a
 *     key allowed 250 per hour: exactly 250 answers are 200 and 150 are
 *     429, and /metrics counts the same decisions;
 *   - one worker, Redis paused (SIGSTOP): /health is answered while a
 *     check waits, and the check then gets 503 timeout (fallback none) or
 *     429 from the fallback (mode closed);
 *   - a client that hangs up while its check waits does no harm;
 *   - SIGTERM with checks waiting on the paused Redis: every one is
 *     answered and the daemon exits 0.
 *
 * usage: test_daemon_async PATH/TO/ratelimitd
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "redis_server.h"

#define CONNS 200
#define LIMIT 250
#define WAITING 20

static rlt_redis redis;
static h_response r;

static void stop_redis(void) {
  rlt_redis_stop(&redis);
}

static void send_check(int fd, const char *policy, const char *key) {
  char body[128];
  int blen = snprintf(body, sizeof body, "{\"policy\":\"%s\",\"key\":\"%s\"}",
                      policy, key);
  char req[512];
  int n = snprintf(req, sizeof req,
                   "POST /v1/check HTTP/1.1\r\nHost: t\r\n"
                   "Content-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s",
                   blen, body);
  H_CHECK(send(fd, req, (size_t)n, MSG_NOSIGNAL) == n);
}

static uint64_t metric(uint16_t port, const char *series) {
  H_CHECK(h_http(port, "GET", "/metrics", "", NULL, &r) == 0);
  const char *at = strstr(r.raw, series);
  H_EXPECT(at != NULL, "no %s in\n%s", series, r.raw);
  return strtoull(at + strlen(series), NULL, 10);
}

/* CONNS concurrent checks, two rounds on the same connections. */
static void concurrent(const char *ratelimitd) {
  char config[512];
  snprintf(config, sizeof config,
           "server: {workers: 2}\n"
           "rate_limiter:\n"
           "  redis: {addrs: [\"127.0.0.1:%u\"], pool_size: 4, "
           "timeout: 2s}\n"
           "  fallback: {mode: none}\n"
           "  policies:\n"
           "    - name: api\n"
           "      algorithm: fixed_window\n"
           "      windows: [{max_requests: %d, duration: 1h}]\n"
           "      key: [header:X-Unused]\n",
           (unsigned)redis.port, LIMIT);
  h_proc d = h_start_daemon(ratelimitd, config);
  static int fds[CONNS];
  for (int i = 0; i < CONNS; i++) {
    fds[i] = h_connect(d.port);
    H_CHECK(fds[i] >= 0);
  }
  int ok = 0;
  int denied = 0;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < CONNS; i++) {
      send_check(fds[i], "api", "shared");
    }
    for (int i = 0; i < CONNS; i++) {
      H_CHECK(h_read_response(fds[i], &r) == 0);
      H_EXPECT(r.status == 200 || r.status == 429, "%d\n%s", r.status, r.raw);
      H_EXPECT(strstr(r.raw, "\"source\":\"redis\""), "%s", r.raw);
      ok += r.status == 200;
      denied += r.status == 429;
    }
  }
  for (int i = 0; i < CONNS; i++) {
    close(fds[i]);
  }
  H_EXPECT(ok == LIMIT && denied == 2 * CONNS - LIMIT,
           "%d admitted, %d denied; want %d and %d", ok, denied, LIMIT,
           2 * CONNS - LIMIT);
  uint64_t m_ok = metric(
      d.port, "ratelimitd_decisions_total{policy=\"api\",result=\"allowed\"} ");
  uint64_t m_denied = metric(
      d.port, "ratelimitd_decisions_total{policy=\"api\",result=\"denied\"} ");
  H_EXPECT(m_ok == LIMIT && m_denied == 2 * CONNS - LIMIT,
           "metrics: %llu allowed, %llu denied", (unsigned long long)m_ok,
           (unsigned long long)m_denied);
  H_CHECK(h_stop(&d, 15, 10000) == 0);
  printf("ok: %d concurrent connections x 2: %d admitted, %d denied "
         "(limit %d), metrics agree\n",
         CONNS, ok, denied, LIMIT);
}

static int readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

/* Redis paused: the worker serves on, checks time out, SIGTERM drains. */
static void paused(const char *ratelimitd) {
  int64_t timeout_ms = 2000 + 40 * rlt_slack_ms(); /* /health must beat it */
  char config[768];
  snprintf(config, sizeof config,
           "server: {workers: 1, shutdown_grace: 30s}\n"
           "rate_limiter:\n"
           "  redis: {addrs: [\"127.0.0.1:%u\"], timeout: %lldms}\n"
           "  fallback: {mode: none}\n"
           "  policies:\n"
           "    - name: strict\n"
           "      windows: [{max_requests: 5, duration: 1h}]\n"
           "      key: [header:X-Unused]\n"
           "    - name: shut\n"
           "      fallback: closed\n"
           "      windows: [{max_requests: 5, duration: 1h}]\n"
           "      key: [header:X-Unused]\n",
           (unsigned)redis.port, (long long)timeout_ms);
  h_proc d = h_start_daemon(ratelimitd, config);
  uint64_t deadline = h_now_ms() + 5000;
  do { /* ready once a Redis connection is */
    H_CHECK(h_http(d.port, "GET", "/ready", "", NULL, &r) == 0);
  } while (r.status != 200 && h_now_ms() < deadline && (h_sleep_ms(20), 1));
  H_EXPECT(r.status == 200, "not ready: %s", r.raw);
  rlt_redis_pause(&redis);
  int a = h_connect(d.port);
  int b = h_connect(d.port);
  H_CHECK(a >= 0 && b >= 0);
  send_check(a, "strict", "k1");
  send_check(b, "shut", "k1");
  /* The only worker is free while both wait on Redis. */
  H_CHECK(h_http(d.port, "GET", "/health", "", NULL, &r) == 0);
  H_EXPECT(r.status == 200 && !readable(a) && !readable(b),
           "/health %d; a check answered before its Redis timeout", r.status);
  H_CHECK(h_read_response(a, &r) == 0);
  H_EXPECT(r.status == 503 && strstr(r.raw, "\"error\":\"timeout\""),
           "fallback none: %d\n%s", r.status, r.raw);
  H_CHECK(h_read_response(b, &r) == 0);
  H_EXPECT(r.status == 429 && strstr(r.raw, "\"source\":\"fallback_closed\""),
           "fallback closed: %d\n%s", r.status, r.raw);
  close(a);
  close(b);
  printf("ok: Redis paused: /health answered meanwhile; timeout -> 503, "
         "fallback closed -> 429\n");
  int gone = h_connect(d.port); /* hangs up before its answer */
  H_CHECK(gone >= 0);
  send_check(gone, "strict", "k2");
  int fds[WAITING];
  for (int i = 0; i < WAITING; i++) {
    fds[i] = h_connect(d.port);
    H_CHECK(fds[i] >= 0);
    send_check(fds[i], i % 2 ? "strict" : "shut", "k3");
  }
  /* every check read by the worker (it answers in order) */
  H_CHECK(h_http(d.port, "GET", "/health", "", NULL, &r) == 0);
  h_sleep_ms((unsigned)(4 * rlt_slack_ms()));
  close(gone);
  H_CHECK(kill(d.pid, SIGTERM) == 0);
  for (int i = 0; i < WAITING; i++) {
    H_CHECK(h_read_response(fds[i], &r) == 0);
    H_EXPECT(r.status == (i % 2 ? 503 : 429), "waiting check %d: %d\n%s", i,
             r.status, r.raw);
    close(fds[i]);
  }
  H_CHECK(h_stop(&d, 0, 10000) == 0);
  rlt_redis_resume(&redis);
  printf("ok: SIGTERM with %d checks waiting on Redis: all answered, exit 0\n",
         WAITING);
}

int main(int argc, char **argv) {
  H_EXPECT(argc >= 2, "usage: %s PATH/TO/ratelimitd", argv[0]);
  H_CHECK(rlt_redis_start(&redis, NULL) == 0);
  atexit(stop_redis);
  concurrent(argv[1]);
  paused(argv[1]);
  return 0;
}
