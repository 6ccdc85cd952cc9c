/*
 * test_shutdown.c - SIGTERM drains: requests already on accepted
 * connections are answered (with Connection: close), new connections are
 * refused, and ratelimitd exits 0 well within its grace period.
 *
 * usage: test_shutdown PATH/TO/ratelimitd
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define CONNS 16

static const char config[] =
    "server:\n  shutdown_grace: 3s\n  workers: 2\n"
    "rate_limiter:\n  windows: [{max_requests: 1000, duration: 1m}]\n";

static const char req[] = "POST /v1/check HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: 11\r\n\r\n{\"key\":\"a\"}";

int main(int argc, char **argv) {
  H_EXPECT(argc >= 2, "usage: %s PATH/TO/ratelimitd", argv[0]);
  static h_response r;
  h_proc p = h_start_daemon(argv[1], config);
  int fds[CONNS];
  /* Accepted, keep-alive connections: one full exchange each. */
  for (int i = 0; i < CONNS; i++) {
    fds[i] = h_connect(p.port);
    H_CHECK(fds[i] >= 0);
    H_CHECK(send(fds[i], req, sizeof req - 1, MSG_NOSIGNAL) > 0);
    H_CHECK(h_read_response(fds[i], &r) == 0 && r.status == 200);
  }
  /* A second request on each, then SIGTERM before reading the answers. */
  for (int i = 0; i < CONNS; i++) {
    H_CHECK(send(fds[i], req, sizeof req - 1, MSG_NOSIGNAL) > 0);
  }
  uint64_t t0 = h_now_ms();
  kill(p.pid, SIGTERM);
  int answered = 0;
  char v[64];
  for (int i = 0; i < CONNS; i++) {
    if (h_read_response(fds[i], &r) == 0 && r.status == 200) {
      answered++;
      H_EXPECT(h_header(&r, "Connection", v, sizeof v) == NULL ||
                   strcmp(v, "close") == 0 || strcmp(v, "keep-alive") == 0,
               "Connection: %s", v);
    }
    close(fds[i]);
  }
  H_EXPECT(answered == CONNS, "%d of %d in-flight requests answered", answered,
           CONNS);
  int rc = h_stop(&p, 0, 6000); /* signal 0: just wait */
  uint64_t took = h_now_ms() - t0;
  H_EXPECT(rc == 0, "exit status %d after SIGTERM (see %s)", rc, h_tmpdir());
  /* Well inside the 3 s grace when idle; the slack covers a loaded CI. */
  H_EXPECT(took < 4000, "took %llu ms, grace is 3000",
           (unsigned long long)took);
  H_EXPECT(h_connect(p.port) < 0, "still accepting after exit");
  printf("ok: %d in-flight requests answered, exit 0 after %llu ms\n", answered,
         (unsigned long long)took);
  h_cleanup();
  printf("test_shutdown: all passed\n");
  return 0;
}
