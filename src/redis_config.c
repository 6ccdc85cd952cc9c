/*
 * redis_config.c - validation of rl_config.redis, and the "host:port"
 * address syntax.
 *
 * Everything a caller can get wrong about the Redis store is caught by
 * rl_config_check(), before rl_new() starts a thread or a connection:
 * address syntax, option ranges, TLS files that cannot be read, and token
 * bucket windows beyond the exact range of the Lua scripts. rl_new() does
 * not connect synchronously, so these checks are the only ones a caller
 * sees at creation (a Redis that is down is not a configuration error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "redis_store.h"

#define POOL_MAX 64u
#define QUEUE_MAX_LIMIT (1u << 20)
/* Token bucket: burst * duration / limit must stay below 2^50 ms so that
 * every time the scripts handle is an exact double (docs/Redis.md). */
#define GCRA_AHEAD_MAX ((unsigned __int128)1 << 50)

/* Parses the port after a ':'. */
static int parse_port(const char *s, uint16_t *port) {
  if (*s == '\0' || strlen(s) > 5) {
    return -1;
  }
  unsigned long v = 0;
  for (const char *p = s; *p != '\0'; p++) {
    if (*p < '0' || *p > '9') {
      return -1;
    }
    v = v * 10 + (unsigned long)(*p - '0');
  }
  if (v == 0 || v > 65535) {
    return -1;
  }
  *port = (uint16_t)v;
  return 0;
}

int rl__redis_addr_parse(const char *addr, char *host, size_t host_cap,
                         uint16_t *port) {
  if (addr == NULL) {
    return RL_ERR_CONFIG_INVALID;
  }
  const char *h = addr, *colon = NULL;
  size_t hlen = 0;
  if (addr[0] == '[') { /* [v6]:port */
    const char *close = strchr(addr, ']');
    if (close == NULL || close[1] != ':') {
      return RL_ERR_CONFIG_INVALID;
    }
    h = addr + 1;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(addr, ':');
    if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr)) != NULL) {
      return RL_ERR_CONFIG_INVALID; /* no port, or a bare IPv6 literal */
    }
    hlen = (size_t)(colon - addr);
  }
  if (hlen == 0 || hlen >= host_cap || parse_port(colon + 1, port) != 0) {
    return RL_ERR_CONFIG_INVALID;
  }
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  return RL_OK;
}

/* A file the library will open later: it must be readable now. */
static int check_file(const char *what, const char *path, int dir, char *errbuf,
                      size_t errlen) {
  struct stat st;
  if (path == NULL) {
    return RL_OK;
  }
  if (stat(path, &st) != 0 || access(path, R_OK) != 0 ||
      (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "redis.tls.%s '%s' is not a readable %s", what, path,
                    dir ? "directory" : "file");
  }
  return RL_OK;
}

static int check_tls(const rl_config *c, char *errbuf, size_t errlen) {
  if (!c->redis.tls.enabled) {
    return RL_OK;
  }
  if ((c->redis.tls.cert_file == NULL) != (c->redis.tls.key_file == NULL)) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "redis.tls.cert_file and key_file go together");
  }
  int err = check_file("ca_file", c->redis.tls.ca_file, 0, errbuf, errlen);
  if (err == RL_OK) {
    err = check_file("ca_dir", c->redis.tls.ca_dir, 1, errbuf, errlen);
  }
  if (err == RL_OK) {
    err = check_file("cert_file", c->redis.tls.cert_file, 0, errbuf, errlen);
  }
  if (err == RL_OK) {
    err = check_file("key_file", c->redis.tls.key_file, 0, errbuf, errlen);
  }
  return err;
}

static int check_addrs(const rl_config *c, char *errbuf, size_t errlen) {
  char host[RL__REDIS_HOST_MAX];
  uint16_t port = 0;
  if (c->redis.addrs == NULL || c->redis.n_addrs == 0) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "redis.addrs: at least one address is needed");
  }
  for (size_t i = 0; i < c->redis.n_addrs; i++) {
    if (rl__redis_addr_parse(c->redis.addrs[i], host, sizeof host, &port) !=
        RL_OK) {
      return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                      "redis.addrs[%zu] '%.64s' is not host:port or "
                      "[v6]:port",
                      i, c->redis.addrs[i] ? c->redis.addrs[i] : "(null)");
    }
  }
  return RL_OK;
}

static int check_ranges(const rl_config *c, char *errbuf, size_t errlen) {
  const char *bad = NULL;
  if (c->redis.pool_size > POOL_MAX) {
    bad = "redis.pool_size must be 1..64";
  } else if (c->redis.queue_max > QUEUE_MAX_LIMIT) {
    bad = "redis.queue_max must be 1..1048576";
  } else if (c->redis.username != NULL && c->redis.password == NULL) {
    bad = "redis.username needs a password";
  } else if (c->redis.db < 0) {
    bad = "redis.db must be >= 0";
  } else if ((unsigned)c->redis.mode > RL_REDIS_MODE_CLUSTER) {
    bad = "redis.mode must be auto, standalone or cluster";
  } else if (c->redis.mode == RL_REDIS_MODE_CLUSTER && c->redis.db != 0) {
    bad = "redis.db must be 0 in cluster mode (Redis Cluster has one "
          "database)";
  }
  if (bad != NULL) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen, "%s", bad);
  }
  return RL_OK;
}

/* The token-bucket windows the scripts accept (see GCRA_AHEAD_MAX). */
static int check_gcra(const rl_config *c, char *errbuf, size_t errlen) {
  for (size_t i = 0; i < c->n_policies; i++) {
    const rl_policy *p = &c->policies[i];
    for (size_t w = 0; p->algorithm == RL_ALG_TOKEN_BUCKET && w < p->n_windows;
         w++) {
      const rl_window *win = &p->windows[w];
      uint64_t burst = win->burst != 0 ? win->burst : win->limit;
      if ((unsigned __int128)burst * win->duration_ms >
          GCRA_AHEAD_MAX * win->limit) {
        return rl__fail(
            RL_ERR_WINDOW_BURST, errbuf, errlen,
            "policy '%s' window %zu: burst * duration_ms / limit is above "
            "2^50 ms, the Redis store's range",
            p->name ? p->name : RL__DEFAULT_POLICY_NAME, w);
      }
    }
  }
  return RL_OK;
}

int rl__redis_config_check(const rl_config *c, char *errbuf, size_t errlen) {
  int err = check_addrs(c, errbuf, errlen);
  if (err == RL_OK) {
    err = check_ranges(c, errbuf, errlen);
  }
  if (err == RL_OK) {
    err = check_tls(c, errbuf, errlen);
  }
  if (err == RL_OK) {
    err = check_gcra(c, errbuf, errlen);
  }
  return err;
}
