/*
 * redis_backend.c - one node or the cluster router behind one interface
 * (see redis_backend.h).
 *
 * The mode is fixed at creation, except in auto mode, where the router
 * finds out: commands go through the router (which follows MOVED and ASK)
 * until it reports a standalone server, then straight to its node. The
 * check is one atomic load per command.
 */
#include "redis_backend.h"

#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "redis_keys.h"
#include "redis_store.h"

struct rl__redis_backend {
  rl_redis_mode mode;
  rl__redis_node *node;       /* standalone */
  rl__redis_cluster *cluster; /* auto, cluster */
};

/* The node's circuit breaker (fallback.h), the same for a standalone node
 * and every cluster master: threshold UINT32_MAX = never opens (the node's
 * 0). A lost connection retries at least once per probe interval, so a
 * server that is back is found within about one interval
 * (docs/Degradation.md: back on Redis within 1 s). */
static void node_breaker_opts(rl__redis_node_opts *o, const rl_config *c) {
  uint32_t t = c->fallback.circuit_breaker_threshold;
  uint32_t probe = c->fallback.probe_interval_ms;
  o->breaker_threshold = t == 0            ? RL_BREAKER_THRESHOLD_DEFAULT
                         : t == UINT32_MAX ? 0
                                           : t;
  o->breaker_probe_ms = probe;
  probe = probe != 0 ? probe : RL_BREAKER_PROBE_MS_DEFAULT;
  if (probe < o->backoff_max_ms) {
    o->backoff_max_ms = probe > o->backoff_min_ms ? probe : o->backoff_min_ms;
  }
}

/* The node options of a config (host and port from addrs[0]). */
static int node_opts(const rl_config *c, const char *const *scripts,
                     const size_t *lens, size_t n, rl__redis_node_opts *o,
                     char *host, size_t host_cap) {
  rl__redis_node_opts_init(o);
  if (rl__redis_addr_parse(c->redis.addrs[0], host, host_cap, &o->port) !=
      RL_OK) {
    return RL_ERR_CONFIG_INVALID;
  }
  o->host = host;
  o->scripts = scripts;
  o->script_lens = lens;
  o->n_scripts = n;
  o->pool_size = c->redis.pool_size ? c->redis.pool_size : o->pool_size;
  o->queue_max = c->redis.queue_max ? c->redis.queue_max : o->queue_max;
  if (c->redis.connect_timeout_ms != 0) {
    o->connect_timeout_ms = c->redis.connect_timeout_ms;
  }
  o->username = c->redis.username;
  o->password = c->redis.password;
  o->db = c->redis.db;
  o->tls.enabled = c->redis.tls.enabled;
  o->tls.ca_file = c->redis.tls.ca_file;
  o->tls.ca_dir = c->redis.tls.ca_dir;
  o->tls.cert_file = c->redis.tls.cert_file;
  o->tls.key_file = c->redis.tls.key_file;
  o->tls.server_name = c->redis.tls.server_name;
  node_breaker_opts(o, c);
  return RL_OK;
}

int rl__redis_backend_new(const rl_config *c, const char *const *scripts,
                          const size_t *lens, size_t n_scripts,
                          rl__redis_backend **out, char *errbuf,
                          size_t errlen) {
  char host[RL__REDIS_HOST_MAX];
  rl__redis_node_opts o;
  if (node_opts(c, scripts, lens, n_scripts, &o, host, sizeof host) != RL_OK) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen, "bad address");
  }
  rl__redis_backend *b = calloc(1, sizeof *b);
  if (b == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  b->mode = c->redis.mode;
  int err = RL_OK;
  if (b->mode == RL_REDIS_MODE_STANDALONE) {
    err = rl__redis_node_new(NULL, &o, &b->node, errbuf, errlen);
  } else {
    rl__redis_cluster_opts co;
    memset(&co, 0, sizeof co);
    co.seeds = c->redis.addrs;
    co.n_seeds = c->redis.n_addrs;
    co.node = o;
    co.auto_detect = b->mode == RL_REDIS_MODE_AUTO;
    err = rl__redis_cluster_new(&co, &b->cluster, errbuf, errlen);
  }
  if (err != RL_OK) {
    free(b);
    return err == RL_ERR_INVALID_ARGUMENT ? RL_ERR_CONFIG_INVALID : err;
  }
  *out = b;
  return RL_OK;
}

void rl__redis_backend_free(rl__redis_backend *b) {
  if (b == NULL) {
    return;
  }
  rl__redis_node_free(b->node);
  rl__redis_cluster_free(b->cluster);
  free(b);
}

rl__redis_node *rl__redis_backend_node(rl__redis_backend *b) {
  return b->node != NULL ? b->node : rl__redis_cluster_standalone(b->cluster);
}

rl__redis_cluster *rl__redis_backend_cluster(rl__redis_backend *b) {
  return b->cluster;
}

int rl__redis_backend_submit(rl__redis_backend *b, const char *key,
                             size_t key_len, const rl__redis_args *args,
                             int64_t deadline_ns, rl__redis_cb cb, void *ud,
                             uint64_t tag) {
  rl__redis_node *n = rl__redis_backend_node(b);
  if (n != NULL) {
    return rl__redis_node_submit(n, args, deadline_ns, cb, ud, tag);
  }
  return rl__redis_cluster_submit(b->cluster, rl__redis_slot(key, key_len),
                                  args, deadline_ns, cb, ud, tag);
}

int rl__redis_backend_call(rl__redis_backend *b, const char *key,
                           size_t key_len, const rl__redis_args *args,
                           int64_t deadline_ns, rl__redis_consume_fn consume,
                           void *out) {
  rl__redis_node *n = rl__redis_backend_node(b);
  if (n != NULL) {
    return rl__redis_node_call(n, args, deadline_ns, consume, out);
  }
  return rl__redis_cluster_call(b->cluster, rl__redis_slot(key, key_len), args,
                                deadline_ns, consume, out);
}

/* A node's readiness, with the standalone store's messages. */
static int node_ready(rl__redis_node *n, int64_t deadline, uint32_t timeout_ms,
                      char *errbuf, size_t errlen) {
  char why[RL__REDIS_ERRSTR_LEN];
  int err = rl__redis_node_wait_ready(n, deadline);
  rl__redis_node_errstr(n, why, sizeof why);
  if (err == RL_ERR_BACKEND_UNAVAILABLE) {
    return rl__fail(err, errbuf, errlen, "%s", why);
  }
  if (err == RL_ERR_TIMEOUT) {
    return rl__fail(err, errbuf, errlen,
                    "%s: no connection ready within %u ms%s%s",
                    rl__redis_node_addr(n), timeout_ms,
                    why[0] ? "; last error: " : "", why);
  }
  return rl__fail(err, errbuf, errlen, "%s", "");
}

int rl__redis_backend_wait_ready(rl__redis_backend *b, uint32_t timeout_ms,
                                 char *errbuf, size_t errlen) {
  int64_t deadline = rl__mono_ns() + (int64_t)timeout_ms * 1000000;
  if (b->node != NULL) {
    return node_ready(b->node, deadline, timeout_ms, errbuf, errlen);
  }
  if (b->mode == RL_REDIS_MODE_AUTO) { /* a down server fails fast */
    int err = node_ready(rl__redis_cluster_seed(b->cluster), deadline,
                         timeout_ms, errbuf, errlen);
    if (err != RL_OK) {
      return err;
    }
  }
  return rl__redis_cluster_wait_ready(b->cluster, deadline, errbuf, errlen);
}

const char *rl__redis_backend_script_sha(const rl__redis_backend *b, size_t i) {
  return b->node != NULL ? rl__redis_node_script_sha(b->node, i)
                         : rl__redis_cluster_script_sha(b->cluster, i);
}

/* ---- health, for the fallback store ------------------------------------- */

/* The node commands go to when the backend is (or turned out) standalone,
 * else NULL. */
static rl__redis_node *direct_node(rl__redis_backend *b) {
  if (b->node != NULL) {
    return b->node;
  }
  return b->cluster != NULL ? rl__redis_cluster_standalone(b->cluster) : NULL;
}

void rl__redis_backend_node_stats(rl__redis_backend *b,
                                  rl__redis_node_stats *out) {
  rl__redis_node *n = direct_node(b);
  if (n != NULL) {
    rl__redis_node_stats_get(n, out);
  } else {
    rl__redis_cluster_node_stats_sum(b->cluster, out);
  }
}

int rl__redis_backend_healthy(rl__redis_backend *b) {
  rl__redis_node *n = direct_node(b);
  if (n != NULL) {
    return rl__redis_node_healthy(n);
  }
  rl__redis_node_stats s;
  rl__redis_cluster_node_stats_sum(b->cluster, &s);
  return s.breaker_state == 0;
}

int rl__redis_backend_probe(rl__redis_backend *b, int64_t deadline_ns) {
  rl__redis_node *n = direct_node(b);
  if (n == NULL) {
    return RL_OK;
  }
  const char *argv[1] = {"PING"};
  size_t lens[1] = {4};
  rl__redis_args a = {1, argv, lens};
  return rl__redis_node_call(n, &a, deadline_ns, NULL, NULL);
}

void rl__redis_backend_for_each_node(rl__redis_backend *b,
                                     void (*fn)(rl__redis_node *n, void *ctx),
                                     void *ctx) {
  rl__redis_node *n = direct_node(b);
  if (n != NULL) {
    fn(n, ctx);
  } else if (b->cluster != NULL) {
    rl__redis_cluster_for_each_master(b->cluster, fn, ctx);
  }
}
