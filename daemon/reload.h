/*
 * reload.h - configuration reloads on SIGHUP and on file change.
 *
 * A reload reads and parses the file on the control thread (never on a
 * worker), checks that nothing that cannot change live has changed,
 * builds the new snapshot, reconfigures the limiter (rl_reconfigure: keys
 * of unchanged policies keep their state) and only then publishes the
 * snapshot. Any failure keeps the running configuration and is logged
 * with file, line and column, and counted in
 * ratelimitd_config_reloads_total{result="error"}.
 */
#ifndef RLD_RELOAD_H
#define RLD_RELOAD_H

#include <stdint.h>

#include "config.h"
#include "daemon.h"

struct event_base;
struct event;

/* Command-line settings that override the file, on every load. */
typedef struct rld_overrides {
  const char *listen; /* NULL = the file's */
  long workers;       /* -1 = the file's */
} rld_overrides;

typedef struct rld_reloader {
  rld_daemon *d;
  const char *path;
  rld_overrides overrides;
  uint64_t last_hash; /* bytes of the last file tried */
  int inotify_fd;
  int wd_dir;    /* the directory named in path */
  int wd_target; /* the directory of its resolved target (symlinks) */
  struct event *inotify_ev;
  struct event *debounce_ev;
} rld_reloader;

/* Loads path with the overrides applied: the first load, --check-config
 * and every reload go through here. Same contract as rld_config_parse. */
int rld_reload_load(const char *path, const rld_overrides *o, rld_config **out,
                    uint64_t *hash, char *err, size_t errlen);

/* Starts watching the configuration file's directory (and its symlink
 * target's) on base. 0, or -1 with a reason (then only SIGHUP reloads). */
int rld_reload_watch(rld_reloader *r, struct event_base *base, char *err,
                     size_t errlen);

/* Reloads now. force = 1 (SIGHUP) reloads even an unchanged file; 0 (file
 * change) skips a file whose bytes were already tried. 0 when applied or
 * skipped, -1 when the running configuration was kept. */
int rld_reload(rld_reloader *r, int force);

void rld_reload_close(rld_reloader *r);

#endif /* RLD_RELOAD_H */
