/*
 * reload.c - SIGHUP and inotify driven reloads.
 *
 * Watching: Kubernetes mounts a ConfigMap as a symlink chain
 * (cfg.yaml -> ..data/cfg.yaml, ..data -> ..2024_01_01_xx) and updates it
 * by creating a new timestamped directory and renaming a new ..data over
 * the old one; editors write a temporary file and rename it. Watching the
 * file itself misses both, so the directory that holds the path is
 * watched (and, when the path resolves elsewhere, the target's directory),
 * every event re-arms a short debounce timer, and the file's bytes are
 * hashed so that an event that changed nothing reloads nothing.
 */
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "reload.h"
#include "server.h"

#define WATCH_MASK                                                             \
  (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |      \
   IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

static void apply_overrides(rld_config *c, const rld_overrides *o) {
  if (o == NULL) {
    return;
  }
  if (o->listen != NULL) {
    snprintf(c->server.listen, sizeof c->server.listen, "%s", o->listen);
  }
  if (o->workers >= 0) {
    c->server.workers = (unsigned)o->workers;
  }
}

int rld_reload_load(const char *path, const rld_overrides *o, rld_config **out,
                    uint64_t *hash, char *err, size_t errlen) {
  size_t len = 0;
  char *text = rld_config_read_file(path, &len, err, errlen);
  if (text == NULL) {
    return -1;
  }
  *hash = rld_hash(text, len);
  int rc = rld_config_parse(text, len, path, out, err, errlen);
  free(text);
  if (rc == 0) {
    apply_overrides(*out, o);
  }
  return rc;
}

static int reload_failed(rld_reloader *r, const char *why) {
  atomic_fetch_add(&r->d->metrics.reloads_failed, 1);
  rld_log(RLD_LOG_ERROR, "reload failed, keeping configuration v%llu: %s",
          (unsigned long long)rld_published_peek(&r->d->published)->version,
          why);
  return -1;
}

/* Builds the snapshot, reconfigures the limiter, publishes. */
static int apply(rld_reloader *r, rld_config *next, uint64_t hash, char *err,
                 size_t errlen) {
  rld_snapshot *cur = rld_published_peek(&r->d->published);
  rl_policy *policies = calloc(next->n_policies, sizeof *policies);
  rld_snapshot *snap = NULL;
  if (policies == NULL) {
    rld_config_free(next);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  rl_config rc;
  rld_config_to_rl(next, policies, &rc);
  int ok = rld_snapshot_new(next, cur->version + 1, hash, &r->d->metrics,
                            &snap) == 0;
  if (!ok) {
    snprintf(err, errlen, "out of memory");
  } else if (rl_reconfigure(r->d->rl, &rc, err, errlen) != RL_OK) {
    rld_snapshot_unref(snap);
    ok = 0;
  }
  free(policies);
  if (!ok) {
    return -1;
  }
  rld_published_swap(&r->d->published, snap);
  rld_server_wake(r->d);
  return 0;
}

static void record_success(rld_reloader *r, const rld_snapshot *s) {
  rld_metrics *m = &r->d->metrics;
  atomic_fetch_add(&m->reloads_ok, 1);
  atomic_store(&m->config_version, s->version);
  atomic_store(&m->config_hash, s->hash);
  atomic_store(&m->last_reload_unix, (int64_t)time(NULL));
  rld_log(RLD_LOG_INFO, "configuration v%llu (%s) in force: %zu policies",
          (unsigned long long)s->version, s->hash_hex, s->n_policies);
}

int rld_reload(rld_reloader *r, int force) {
  char err[1024];
  rld_config *next = NULL;
  uint64_t hash = 0;
  size_t len = 0;
  char *text = rld_config_read_file(r->path, &len, err, sizeof err);
  if (text == NULL) {
    return reload_failed(r, err);
  }
  hash = rld_hash(text, len);
  if (!force && hash == r->last_hash) {
    free(text);
    return 0;
  }
  r->last_hash = hash;
  int rc = rld_config_parse(text, len, r->path, &next, err, sizeof err);
  free(text);
  if (rc != 0) {
    return reload_failed(r, err);
  }
  apply_overrides(next, &r->overrides);
  rld_snapshot *cur = rld_published_peek(&r->d->published);
  if (rld_config_live_compatible(cur->config, next, err, sizeof err) != 0) {
    rld_config_free(next);
    return reload_failed(r, err);
  }
  if (apply(r, next, hash, err, sizeof err) != 0) {
    return reload_failed(r, err);
  }
  record_success(r, rld_published_peek(&r->d->published));
  return 0;
}

/* ---- watching ----------------------------------------------------------- */

static int add_dir_watch(int fd, const char *file_path) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", file_path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) {
    strcpy(dir, ".");
  } else if (slash == dir) {
    dir[1] = '\0';
  } else {
    *slash = '\0';
  }
  return inotify_add_watch(fd, dir, WATCH_MASK);
}

/* (Re)watches the directory of the path's resolved target, which moves
 * with every ConfigMap update. */
static void rewatch_target(rld_reloader *r) {
  char real[PATH_MAX];
  if (realpath(r->path, real) == NULL) {
    return;
  }
  int wd = add_dir_watch(r->inotify_fd, real);
  if (wd >= 0 && wd != r->wd_target && r->wd_target >= 0 &&
      r->wd_target != r->wd_dir) {
    inotify_rm_watch(r->inotify_fd, r->wd_target);
  }
  r->wd_target = wd;
}

static void on_debounce(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rld_reloader *r = arg;
  rld_reload(r, 0);
  rewatch_target(r);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  rld_reloader *r = arg;
  char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  while (read(fd, buf, sizeof buf) > 0) {
    /* Drain: which file changed does not matter, the hash decides. */
  }
  uint64_t ms =
      rld_published_peek(&r->d->published)->config->server.reload_debounce_ms;
  struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
  event_add(r->debounce_ev, &tv);
}

int rld_reload_watch(rld_reloader *r, struct event_base *base, char *err,
                     size_t errlen) {
  r->wd_dir = -1;
  r->wd_target = -1;
  r->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (r->inotify_fd < 0) {
    snprintf(err, errlen, "inotify unavailable");
    return -1;
  }
  r->wd_dir = add_dir_watch(r->inotify_fd, r->path);
  if (r->wd_dir < 0) {
    snprintf(err, errlen, "cannot watch the directory of %s", r->path);
    return -1;
  }
  rewatch_target(r);
  r->debounce_ev = evtimer_new(base, on_debounce, r);
  r->inotify_ev =
      event_new(base, r->inotify_fd, EV_READ | EV_PERSIST, on_inotify, r);
  if (r->debounce_ev == NULL || r->inotify_ev == NULL ||
      event_add(r->inotify_ev, NULL) != 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  return 0;
}

void rld_reload_close(rld_reloader *r) {
  if (r->inotify_ev != NULL) {
    event_free(r->inotify_ev);
  }
  if (r->debounce_ev != NULL) {
    event_free(r->debounce_ev);
  }
  if (r->inotify_fd >= 0) {
    close(r->inotify_fd);
  }
  r->inotify_ev = NULL;
  r->debounce_ev = NULL;
  r->inotify_fd = -1;
}
