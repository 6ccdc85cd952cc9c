/*
 * main.c - ratelimitd: the sidecar HTTP daemon around libratelimiter.
 *
 *   ratelimitd --config FILE [--listen ADDR] [--workers N]
 *              [--port-file FILE] [--quiet]
 *   ratelimitd --check-config FILE
 *
 * The main thread is the control plane: it loads the configuration,
 * creates the limiter, starts the HTTP workers (server.c), then waits for
 * SIGHUP and file changes (reload.c) and for SIGTERM/SIGINT, on which it
 * drains the workers, runs the store's shutdown hook and exits 0.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "reload.h"
#include "trace.h"
#include "server.h"

typedef struct options {
  const char *config;
  const char *check;
  const char *port_file;
  rld_overrides overrides;
  int quiet;
} options;

static void usage(FILE *to) {
  fprintf(to,
          "usage: ratelimitd --config FILE [--listen HOST:PORT] "
          "[--workers N]\n"
          "                  [--port-file FILE] [--quiet]\n"
          "       ratelimitd --check-config FILE\n"
          "       ratelimitd --version\n"
          "Signals: SIGHUP reloads the configuration (so does changing the\n"
          "file); SIGTERM or SIGINT drain in-flight requests and exit 0.\n");
}

/* Returns 0 to go on, or 1 + exit status. */
static int parse_args(int argc, char **argv, options *o) {
  o->overrides.workers = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i] != NULL ? argv[i] : "";
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int takes = 1;
    if (strcmp(a, "--config") == 0 && v != NULL) {
      o->config = v;
    } else if (strcmp(a, "--check-config") == 0 && v != NULL) {
      o->check = v;
    } else if (strcmp(a, "--listen") == 0 && v != NULL) {
      o->overrides.listen = v;
    } else if (strcmp(a, "--workers") == 0 && v != NULL) {
      o->overrides.workers = strtol(v, NULL, 10);
    } else if (strcmp(a, "--port-file") == 0 && v != NULL) {
      o->port_file = v;
    } else if (strcmp(a, "--quiet") == 0) {
      o->quiet = 1;
      takes = 0;
    } else if (strcmp(a, "--version") == 0) {
      printf("ratelimitd %s\n", rl_version());
      return 1;
    } else {
      usage(strcmp(a, "--help") == 0 ? stdout : stderr);
      return strcmp(a, "--help") == 0 ? 1 : 1 + 2;
    }
    i += takes;
  }
  if (o->config == NULL && o->check == NULL) {
    usage(stderr);
    return 1 + 2;
  }
  return 0;
}

static int check_config(const char *path, const rld_overrides *ov) {
  char err[1024];
  rld_config *c = NULL;
  uint64_t hash = 0;
  if (rld_reload_load(path, ov, &c, &hash, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  printf("%s: ok, %zu policies, hash %016llx, listen %s\n", path, c->n_policies,
         (unsigned long long)hash, c->server.listen);
  for (size_t i = 0; i < c->n_policies; i++) {
    char hdr[RL_MW_VALUE_MAX];
    char key[512];
    rl_policy p = c->policies[i].policy;
    rl_mw_format_policy(c->policies[i].name, &p, hdr, sizeof hdr);
    rl_mw_key_spec_format(&c->policies[i].key, key, sizeof key);
    printf("  %s: %s, key [%s], fallback %s%s\n    RateLimit-Policy: %s\n",
           c->policies[i].name, rl_algorithm_name(p.algorithm), key,
           rld_fallback_name(c->policies[i].fallback),
           c->policies[i].shadow || c->shadow ? ", shadow" : "", hdr);
  }
  rld_config_free(c);
  return 0;
}

static unsigned worker_count(const rld_config *c) {
  if (c->server.workers > 0) {
    return c->server.workers;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 && n < 64 ? (unsigned)n : 2;
}

/* Limiter, metrics, first snapshot. Takes ownership of c. */
static int build(rld_daemon *d, rld_config *c, uint64_t hash) {
  rl_policy *policies = calloc(c->n_policies, sizeof *policies);
  rl_config rc;
  if (policies == NULL) {
    rld_config_free(c);
    return -1;
  }
  rld_config_to_rl(c, policies, &rc);
  int err = rl_new(&rc, &d->rl);
  free(policies);
  if (err == RL_OK && rld_metrics_init(&d->metrics, d->n_workers) != 0) {
    err = RL_ERR_NO_MEMORY;
  }
  if (err != RL_OK) {
    rld_config_free(c);
  }
  rld_snapshot *s = NULL;
  if (err != RL_OK || rld_snapshot_new(c, 1, hash, &d->metrics, &s) != 0) {
    rld_log(RLD_LOG_ERROR, "cannot create the limiter: %s",
            rl_strerror(err != RL_OK ? err : RL_ERR_NO_MEMORY));
    return -1;
  }
  rld_published_init(&d->published, s);
  /* The Redis store answers asynchronously, with the cache too (cached
   * denials and lease hits come back inline from rl_decide_async). */
  d->decide_async = c->redis.n_addrs > 0;
  atomic_store(&d->metrics.config_version, 1);
  atomic_store(&d->metrics.config_hash, hash);
  atomic_store(&d->metrics.last_reload_unix, (int64_t)time(NULL));
  return 0;
}

static const char *env_get(const char *name) {
  return getenv(name);
}

/* Tracing per the configuration and the OTEL_* environment (trace.h); a
 * tracer that cannot start leaves tracing off, with a warning. */
static void start_tracing(rld_daemon *d) {
  const rld_config *c = rld_published_peek(&d->published)->config;
  rld_trace_settings s;
  char msg[512];
  rld_trace_settings_load(&s, &c->tracing, env_get, msg, sizeof msg);
  if (msg[0] != '\0') {
    rld_log(RLD_LOG_WARN, "tracing: %s", msg);
  }
  if (!s.enabled) {
    return;
  }
  if (rld_tracer_start(&s, &d->tracer, msg, sizeof msg) != 0) {
    rld_log(RLD_LOG_WARN, "%s; tracing is off", msg);
    return;
  }
  rld_log(RLD_LOG_INFO, "tracing: sampler %d, ratio %g, to %s (%s)",
          (int)s.sampler, s.ratio, s.endpoint, s.service_name);
}

typedef struct control {
  struct event_base *base;
  rld_reloader reloader;
  int stop_signal;
} control;

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  control *c = arg;
  if (sig == SIGHUP) {
    rld_log(RLD_LOG_INFO, "SIGHUP: reloading %s", c->reloader.path);
    rld_reload(&c->reloader, 1);
    return;
  }
  c->stop_signal = (int)sig;
  event_base_loopbreak(c->base);
}

/* Leases and pending reconciliation go back to the shared store here. The
 * memory store holds neither, so there is nothing to return yet; a store
 * that leases (Redis, issue 4) flushes through this hook. */
static void store_shutdown_hook(rld_daemon *d) {
  rl_memory_stats st;
  if (rl_memory_stats_get(d->rl, &st) == RL_OK) {
    rld_log(RLD_LOG_INFO, "store: memory, %llu keys, nothing to return",
            (unsigned long long)st.keys);
  }
}

static void write_port_file(const char *path, uint16_t port) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f != NULL) {
    fprintf(f, "%u\n", (unsigned)port);
    fclose(f);
    rename(tmp, path);
  }
}

static int serve(rld_daemon *d, control *c, const options *o) {
  char err[512];
  rld_snapshot *s = rld_published_peek(&d->published);
  if (rld_server_start(d, s->config, err, sizeof err) != 0) {
    rld_log(RLD_LOG_ERROR, "%s: %s", s->config->server.listen, err);
    return -1;
  }
  if (rld_reload_watch(&c->reloader, c->base, err, sizeof err) != 0) {
    rld_log(RLD_LOG_WARN, "%s; reload with SIGHUP", err);
  }
  rld_log(RLD_LOG_INFO,
          "listening on %s (port %u), %zu workers, configuration v1 (%s), "
          "%zu policies, memory store",
          s->config->server.listen, (unsigned)d->port, d->n_workers,
          s->hash_hex, s->n_policies);
  if (o->port_file != NULL) {
    write_port_file(o->port_file, d->port);
  }
  struct event *sig[3];
  const int signals[3] = {SIGHUP, SIGTERM, SIGINT};
  for (int i = 0; i < 3; i++) {
    sig[i] = evsignal_new(c->base, signals[i], on_signal, c);
    event_add(sig[i], NULL);
  }
  event_base_dispatch(c->base);
  uint64_t grace =
      rld_published_peek(&d->published)->config->server.shutdown_grace_ms;
  rld_log(RLD_LOG_INFO, "%s: draining (grace %llu ms)",
          c->stop_signal == SIGINT ? "SIGINT" : "SIGTERM",
          (unsigned long long)grace);
  rld_server_stop(d, grace);
  for (int i = 0; i < 3; i++) {
    event_free(sig[i]);
  }
  return 0;
}

static void teardown(rld_daemon *d, control *c) {
  rld_reload_close(&c->reloader);
  if (d->n_started > 0 || d->workers != NULL) {
    rld_server_stop(d, 0);
  }
  rld_tracer_stop(d->tracer); /* exports what is queued */
  d->tracer = NULL;
  if (rld_published_peek(&d->published) != NULL) {
    rld_published_close(&d->published);
  }
  if (d->metrics.names != NULL) {
    rld_metrics_close(&d->metrics);
  }
  rl_free(d->rl);
  if (c->base != NULL) {
    event_base_free(c->base);
  }
}

static int run(const options *o) {
  char err[1024];
  rld_config *cfg = NULL;
  uint64_t hash = 0;
  if (rld_reload_load(o->config, &o->overrides, &cfg, &hash, err, sizeof err) !=
      0) {
    rld_log(RLD_LOG_ERROR, "%s", err);
    return 2;
  }
  static rld_daemon d;
  static control c;
  d.n_workers = worker_count(cfg);
  c.reloader.d = &d;
  c.reloader.path = o->config;
  c.reloader.overrides = o->overrides;
  c.reloader.last_hash = hash;
  c.reloader.inotify_fd = -1;
  c.base = event_base_new();
  int rc = c.base != NULL && build(&d, cfg, hash) == 0 ? 0 : -1;
  if (rc == 0) {
    start_tracing(&d);
    rc = serve(&d, &c, o);
  }
  if (rc == 0) {
    store_shutdown_hook(&d);
  }
  teardown(&d, &c);
  rld_log(RLD_LOG_INFO, rc == 0 ? "stopped" : "failed to start");
  return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  options o;
  memset(&o, 0, sizeof o);
  int rc = parse_args(argc, argv, &o);
  if (rc != 0) {
    return rc - 1;
  }
  if (o.check != NULL) {
    return check_config(o.check, &o.overrides);
  }
  if (o.quiet) {
    rld_log_set_min(RLD_LOG_WARN);
  }
  signal(SIGPIPE, SIG_IGN);
  if (evthread_use_pthreads() != 0) {
    fprintf(stderr, "ratelimitd: libevent without thread support\n");
    return 1;
  }
  return run(&o);
}
