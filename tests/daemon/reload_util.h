/*
 * reload_util.h - what the reload tests (test_reload.c,
 * test_configmap_reload.c) share: the configuration file laid out as
 * Kubernetes mounts a ConfigMap, ratelimitd started on it, and what
 * /ready and /metrics tell about reloads.
 *
 * The ConfigMap layout in dir:
 *   ratelimiter.yaml -> ..data/ratelimiter.yaml
 *   ..data -> <payload directory>
 * An update writes a new payload directory, points a new symlink
 * ..data_tmp at it and renames ..data_tmp over ..data (atomic).
 */
#ifndef RLD_TEST_RELOAD_UTIL_H
#define RLD_TEST_RELOAD_UTIL_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

/* The hash /ready shows for a configuration text (64-bit FNV-1a). */
static inline uint64_t config_hash(const char *s) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (; *s != '\0'; s++) {
    h ^= (unsigned char)*s;
    h *= UINT64_C(1099511628211);
  }
  return h;
}

/* 1 if /ready answered and shows text's hash (r holds the answer). */
static inline int ready_shows(uint16_t port, h_response *r, const char *text) {
  char want[64];
  snprintf(want, sizeof want, "\"config_hash\":\"%016llx\"",
           (unsigned long long)config_hash(text));
  return h_http(port, "GET", "/ready", "", NULL, r) == 0 &&
         strstr(r->body, want) != NULL;
}

/* ratelimitd_config_reloads_total{result="error"}: the refused reloads. */
static inline unsigned long failed_reloads(uint16_t port, h_response *r) {
  static const char series[] =
      "ratelimitd_config_reloads_total{result=\"error\"} ";
  H_CHECK(h_http(port, "GET", "/metrics", "", NULL, r) == 0);
  const char *p = strstr(r->body, series);
  H_EXPECT(p != NULL, "no %s in /metrics", series);
  return strtoul(p + strlen(series), NULL, 10);
}

/* Writes text as payload directory dir/name and swaps ..data to it. */
static inline void configmap_publish(const char *dir, const char *name,
                                     const char *text) {
  char path[1024];
  char tmp_link[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  H_CHECK(mkdir(path, 0755) == 0);
  snprintf(path, sizeof path, "%s/%s/ratelimiter.yaml", dir, name);
  h_write_file(path, text);
  snprintf(tmp_link, sizeof tmp_link, "%s/..data_tmp", dir);
  H_CHECK(symlink(name, tmp_link) == 0);
  snprintf(path, sizeof path, "%s/..data", dir);
  H_CHECK(rename(tmp_link, path) == 0);
}

/* ratelimitd reading h_tmpdir()/ratelimiter.yaml, a link through ..data
 * (publish the first payload before starting it). */
typedef struct reload_daemon {
  h_proc proc;
  char *cfg;       /* the configuration's path (the top symlink) */
  char *port_file; /* where ratelimitd writes its port */
} reload_daemon;

static inline reload_daemon reload_daemon_start(char *ratelimitd) {
  reload_daemon d;
  d.cfg = h_path("ratelimiter.yaml");
  d.port_file = h_path("port");
  H_CHECK(symlink("..data/ratelimiter.yaml", d.cfg) == 0);
  char *args[] = {ratelimitd,    "--config",    d.cfg,       "--listen",
                  "127.0.0.1:0", "--port-file", d.port_file, NULL};
  d.proc = h_start(args, d.port_file, "ratelimitd.log");
  return d;
}

/* SIGTERM: ratelimitd must exit 0; then the tmpdir goes. */
static inline void reload_daemon_stop(reload_daemon *d) {
  int rc = h_stop(&d->proc, SIGTERM, 10000);
  H_EXPECT(rc == 0, "ratelimitd exit status %d (see %s)", rc, h_tmpdir());
  free(d->cfg);
  free(d->port_file);
  h_cleanup();
}

#endif /* RLD_TEST_RELOAD_UTIL_H */
