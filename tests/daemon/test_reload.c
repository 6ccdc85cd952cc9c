/*
 * test_reload.c - 100 configuration reloads, valid and invalid
 * alternating, under load: no request may fail, every valid file must come
 * into force (its hash shows in /ready), every invalid one must be refused
 * (ratelimitd_config_reloads_total{result="error"} grows) with the running
 * configuration kept, and a policy whose shape is unchanged must keep its
 * keys' state across all of it.
 *
 * The file is laid out as Kubernetes mounts a ConfigMap (a symlink through
 * ..data to a timestamped directory, swapped by renaming ..data), so the
 * inotify path is the one that must survive symlink swaps. Odd iterations
 * also send SIGHUP.
 *
 * usage: test_reload PATH/TO/ratelimitd
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "reload_util.h"

#define RELOADS 100
#define LOADERS 2

static atomic_int stop;
static atomic_ulong ok_requests;
static atomic_ulong failed_requests;
static uint16_t port;

static void valid_config(char *buf, size_t cap, int i) {
  snprintf(buf, cap,
           "server:\n  reload_debounce: 5ms\n  workers: 2\n"
           "rate_limiter:\n"
           "  windows: [{max_requests: %d, duration: 1m}]\n"
           "  algorithm: sliding_counter\n"
           "  key: ip\n"
           "  policies:\n"
           "    - name: keep\n"
           "      algorithm: sliding_log\n"
           "      windows: [{max_requests: 10, duration: 1h}]\n"
           "    - name: gen%d\n"
           "      windows: [{max_requests: 5, duration: 1s}]\n",
           1000000 + i, i);
}

static const char *const invalid_configs[] = {
    "rate_limiter:\n  windows: [{max_requests: 0, duration: 1m}]\n",
    "rate_limiter:\n  windows: [{max_requests: 10, duration: 1parsec}]\n",
    "rate_limiter: [unclosed\n",
    "rate_limiter:\n  windowz: []\n",
    ("server:\n  workers: 7\nrate_limiter:\n"
     "  windows: [{max_requests: 10, duration: 1m}]\n"),
};

/* Payload n as dir/..v<n>, swapped in (reload_util.h). */
static void publish(const char *dir, int n, const char *text) {
  char name[64];
  snprintf(name, sizeof name, "..v%d", n);
  configmap_publish(dir, name, text);
}

static void *load(void *arg) {
  (void)arg;
  static const char req[] =
      "POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Length: 28\r\n\r\n"
      "{\"key\":\"load\",\"policy\":null}";
  h_response *r = malloc(sizeof *r);
  int fd = -1;
  while (!atomic_load(&stop) && r != NULL) {
    if (fd < 0) {
      fd = h_connect(port);
    }
    if (fd < 0 || send(fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0 ||
        h_read_response(fd, r) != 0 || (r->status != 200 && r->status != 429)) {
      atomic_fetch_add(&failed_requests, 1);
      if (fd >= 0) {
        close(fd);
      }
      fd = -1;
      continue;
    }
    atomic_fetch_add(&ok_requests, 1);
  }
  if (fd >= 0) {
    close(fd);
  }
  free(r);
  return NULL;
}

static void spend_keep(h_response *r, int n, int expect_status) {
  for (int i = 0; i < n; i++) {
    H_CHECK(h_http(port, "POST", "/v1/check", "",
                   "{\"policy\":\"keep\",\"key\":\"k\"}", r) == 0);
    H_EXPECT(r->status == expect_status, "keep: %d\n%s", r->status, r->raw);
  }
}

static void reload_once(h_proc *p, const char *dir, int i, h_response *r) {
  static char text[2048];
  int valid = i % 2 == 0;
  unsigned long failed_before = valid ? 0 : failed_reloads(port, r);
  if (valid) {
    valid_config(text, sizeof text, i);
  } else {
    snprintf(text, sizeof text, "# %d\n%s", i,
             invalid_configs[(i / 2) % (sizeof invalid_configs /
                                        sizeof invalid_configs[0])]);
  }
  publish(dir, i + 1, text);
  if (i % 4 >= 2) {
    kill(p->pid, SIGHUP);
  }
  uint64_t deadline = h_now_ms() + 10000;
  while (valid ? !ready_shows(port, r, text)
               : failed_reloads(port, r) <= failed_before) {
    H_EXPECT(h_now_ms() < deadline, "reload %d (%s) not seen in 10 s", i,
             valid ? "valid" : "invalid");
    h_sleep_ms(2);
  }
}

int main(int argc, char **argv) {
  H_EXPECT(argc >= 2, "usage: %s PATH/TO/ratelimitd", argv[0]);
  static h_response r;
  static char text[2048];
  const char *dir = h_tmpdir();
  valid_config(text, sizeof text, -2);
  publish(dir, 0, text);
  reload_daemon d = reload_daemon_start(argv[1]);
  port = d.proc.port;
  spend_keep(&r, 5, 200);
  pthread_t t[LOADERS];
  for (int i = 0; i < LOADERS; i++) {
    pthread_create(&t[i], NULL, load, NULL);
  }
  uint64_t start = h_now_ms();
  for (int i = 0; i < RELOADS; i++) {
    reload_once(&d.proc, dir, i, &r);
  }
  uint64_t took = h_now_ms() - start;
  atomic_store(&stop, 1);
  for (int i = 0; i < LOADERS; i++) {
    pthread_join(t[i], NULL);
  }
  spend_keep(&r, 5, 200); /* 5 + 5 = the limit of 10: state was kept */
  spend_keep(&r, 1, 429);
  printf("ok: %d reloads in %llu ms, %lu requests, %lu failed\n", RELOADS,
         (unsigned long long)took, atomic_load(&ok_requests),
         atomic_load(&failed_requests));
  H_EXPECT(atomic_load(&failed_requests) == 0, "requests failed");
  H_EXPECT(atomic_load(&ok_requests) > 0, "no load was sent");
  reload_daemon_stop(&d);
  printf("test_reload: all passed\n");
  return 0;
}
