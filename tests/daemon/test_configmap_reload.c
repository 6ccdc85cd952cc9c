/*
 * test_configmap_reload.c - a ConfigMap update as the kubelet performs it,
 * and nothing else (no SIGHUP): ratelimitd must reload from inotify alone.
 *
 * The kubelet's atomic writer keeps, in the mounted directory,
 *   ..2026_11_27_21_00_00.000000001/ratelimiter.yaml   (the payload)
 *   ..data -> ..2026_11_27_21_00_00.000000001
 *   ratelimiter.yaml -> ..data/ratelimiter.yaml
 * and applies an update by writing a new timestamped directory, pointing
 * a new symlink ..data_tmp at it, renaming ..data_tmp over ..data, and
 * then removing the old timestamped directory. The directory ratelimitd
 * resolved at the previous load disappears each time, so this also checks
 * that the watch follows the target.
 *
 * Checks: three valid updates in a row come into force (their hash shows
 * in /ready) and change behaviour (the limit); an invalid update is
 * refused and the last good configuration stays; a later valid update
 * still applies.
 *
 * usage: test_configmap_reload PATH/TO/ratelimitd
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "reload_util.h"

static uint16_t port;

static void config_text(char *buf, size_t cap, int limit) {
  snprintf(buf, cap,
           "server:\n  workers: 1\n"
           "rate_limiter:\n"
           "  windows: [{max_requests: %d, duration: 1h}]\n"
           "  algorithm: fixed_window\n"
           "  key: ip\n",
           limit);
}

/* Removes dir/name and the one file in it (the old payload directory). */
static void remove_payload(const char *dir, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s/ratelimiter.yaml", dir, name);
  H_CHECK(unlink(path) == 0);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  H_CHECK(rmdir(path) == 0);
}

/* One kubelet update: new payload dir, ..data swapped by rename, old
 * payload removed. gen numbers the timestamped directories. */
static void kubelet_update(const char *dir, int gen, const char *text) {
  char name[64];
  char old_name[64];
  char path[1024];
  snprintf(name, sizeof name, "..2026_11_27_21_00_%02d.%09d", gen, gen);
  snprintf(path, sizeof path, "%s/..data", dir);
  ssize_t n = readlink(path, old_name, sizeof old_name - 1);
  configmap_publish(dir, name, text);
  if (n > 0) {
    old_name[n] = '\0';
    remove_payload(dir, old_name);
  }
}

static int hash_in_force(h_response *r, const char *text) {
  return ready_shows(port, r, text) && r->status == 200;
}

static void wait_hash(h_response *r, const char *text, const char *what) {
  uint64_t deadline = h_now_ms() + 15000;
  while (!hash_in_force(r, text)) {
    H_EXPECT(h_now_ms() < deadline, "%s: not in force after 15 s", what);
    h_sleep_ms(20);
  }
}

/* Spends the default policy on a fresh key: how many of limit + 2
 * requests are admitted, i.e. the limit in force. */
static int admitted(h_response *r, int limit, int round) {
  char body[128];
  int ok = 0;
  snprintf(body, sizeof body, "{\"key\":\"cm-%d\"}", round);
  for (int i = 0; i < limit + 2; i++) {
    H_CHECK(h_http(port, "POST", "/v1/check", "", body, r) == 0);
    H_EXPECT(r->status == 200 || r->status == 429, "status %d\n%s", r->status,
             r->raw);
    ok += r->status == 200;
  }
  return ok;
}

int main(int argc, char **argv) {
  H_EXPECT(argc >= 2, "usage: %s PATH/TO/ratelimitd", argv[0]);
  static h_response r;
  static char text[1024];
  const char *dir = h_tmpdir();
  config_text(text, sizeof text, 3);
  kubelet_update(dir, 0, text);
  reload_daemon d = reload_daemon_start(argv[1]);
  port = d.proc.port;
  wait_hash(&r, text, "initial configuration");
  H_EXPECT(admitted(&r, 3, 0) == 3, "initial limit 3 not enforced");

  static const int limits[] = {5, 7, 4};
  for (int i = 0; i < 3; i++) {
    config_text(text, sizeof text, limits[i]);
    kubelet_update(dir, i + 1, text);
    wait_hash(&r, text, "valid update");
    int got = admitted(&r, limits[i], i + 1);
    H_EXPECT(got == limits[i], "update %d: limit %d expected, %d admitted", i,
             limits[i], got);
  }

  unsigned long errors = failed_reloads(port, &r);
  kubelet_update(dir, 10, "rate_limiter:\n  windows: [{max_requests: 0}]\n");
  uint64_t deadline = h_now_ms() + 15000;
  while (failed_reloads(port, &r) <= errors) {
    H_EXPECT(h_now_ms() < deadline, "invalid update not refused in 15 s");
    h_sleep_ms(20);
  }
  H_EXPECT(hash_in_force(&r, text), "the last good configuration was lost");
  H_EXPECT(admitted(&r, 4, 10) == 4, "limit 4 not kept after a bad update");

  config_text(text, sizeof text, 6);
  kubelet_update(dir, 11, text);
  wait_hash(&r, text, "update after a refused one");
  H_EXPECT(admitted(&r, 6, 11) == 6, "limit 6 not enforced");

  reload_daemon_stop(&d);
  printf("test_configmap_reload: all passed\n");
  return 0;
}
