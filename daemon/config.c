/*
 * config.c - the life of an rld_config: defaults, loading a file, the
 * library's view of it, and what may change on a live daemon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

const char *rld_fallback_name(rld_fallback_mode mode) {
  switch (mode) {
#define RLD__FB_NAME(name, label)                                              \
  case RLD_FALLBACK_##name:                                                    \
    return #label;
    RLD_FALLBACK_MAP(RLD__FB_NAME)
#undef RLD__FB_NAME
  default:
    return "unknown";
  }
}

void rld_policy_init(rld_policy *p) {
  memset(p, 0, sizeof *p);
  rl_policy_init(&p->policy);
  p->key.n_parts = 1;
  p->key.parts[0].kind = RL_MW_PART_IP;
}

rld_config *rld_config_new(void) {
  rld_config *c = calloc(1, sizeof *c);
  if (c == NULL) {
    return NULL;
  }
  strcpy(c->server.listen, "127.0.0.1:8080");
  c->server.max_body = (size_t)64 * 1024;
  c->server.max_header_bytes = (size_t)8 * 1024;
  c->server.shutdown_grace_ms = 5000;
  c->server.reload_debounce_ms = 100;
  c->redis.pool_size = 10;
  c->redis.timeout_ms = 100;
  c->cache.ttl_ms = 500;
  c->cache.max_bytes = 100u << 20;
  c->fallback.mode = RLD_FALLBACK_OPEN;
  c->fallback.circuit_breaker_threshold = 10;
  c->fallback.probe_interval_ms = RL_BREAKER_PROBE_MS_DEFAULT;
  c->fallback.local_instances = 1;
  c->memory_max_bytes = RL_MEMORY_MAX_BYTES_DEFAULT;
  c->max_key_len = RL_KEY_MAX_DEFAULT;
  c->tracing.sample_ratio = 0.01;
  c->tracing.queue_size = 2048;
  strcpy(c->tracing.service_name, "ratelimitd");
  strcpy(c->tracing.endpoint, "http://localhost:4318/v1/traces");
  return c;
}

void rld_config_free(rld_config *config) {
  if (config != NULL) {
    free(config->policies);
    free(config);
  }
}

static rl_fallback_mode fallback_mode(rld_fallback_mode m) {
  switch (m) {
  case RLD_FALLBACK_OPEN:
    return RL_FALLBACK_OPEN;
  case RLD_FALLBACK_CLOSED:
    return RL_FALLBACK_CLOSED;
  case RLD_FALLBACK_LOCAL:
    return RL_FALLBACK_LOCAL;
  default:
    return RL_FALLBACK_NONE;
  }
}

/* The fallback section and each policy's mode (already defaulted to the
 * section's by the parser) as the library's settings. */
static void fallback_to_rl(const rld_config *c, rl_policy *policies,
                           rl_config *out) {
  out->fallback.mode = fallback_mode(c->fallback.mode);
  out->fallback.circuit_breaker_threshold =
      c->fallback.circuit_breaker_threshold;
  out->fallback.probe_interval_ms = (uint32_t)c->fallback.probe_interval_ms;
  out->fallback.local_instances = c->fallback.local_instances;
  for (size_t i = 0; i < c->n_policies; i++) {
    policies[i].fallback = fallback_mode(c->policies[i].fallback);
  }
}

void rld_config_to_rl(const rld_config *c, rl_policy *policies,
                      rl_config *out) {
  rl_config_init(out);
  for (size_t i = 0; i < c->n_policies; i++) {
    policies[i] = c->policies[i].policy;
    policies[i].name = c->policies[i].name;
  }
  out->policies = policies;
  out->n_policies = c->n_policies;
  out->max_key_len = c->max_key_len;
  out->memory.max_bytes = c->memory_max_bytes;
  if (c->redis.n_addrs > 0) {
    /* rl_config borrows the addresses; c outlives every use of out. */
    static _Thread_local const char *addrs[RLD_REDIS_ADDRS_MAX];
    for (size_t i = 0; i < c->redis.n_addrs; i++) {
      addrs[i] = c->redis.addrs[i];
    }
    out->store = RL_STORE_REDIS;
    out->redis.addrs = addrs;
    out->redis.n_addrs = c->redis.n_addrs;
    /* Connections are pipelined: past 64 more of them buy nothing, so the
     * seed's pool_size: 100 is honoured as the library's maximum. */
    out->redis.pool_size = c->redis.pool_size > 64 ? 64 : c->redis.pool_size;
    out->redis.timeout_ms = (uint32_t)c->redis.timeout_ms;
    out->redis.mode = c->redis.mode;
    out->redis.username = c->redis.username[0] ? c->redis.username : NULL;
    out->redis.password = c->redis.password[0] ? c->redis.password : NULL;
    out->redis.tls.enabled = c->redis.tls.enabled;
#define RLD_TLS_TEXT(f) (c->redis.tls.f[0] ? c->redis.tls.f : NULL)
    out->redis.tls.ca_file = RLD_TLS_TEXT(ca_file);
    out->redis.tls.ca_dir = RLD_TLS_TEXT(ca_dir);
    out->redis.tls.cert_file = RLD_TLS_TEXT(cert_file);
    out->redis.tls.key_file = RLD_TLS_TEXT(key_file);
    out->redis.tls.server_name = RLD_TLS_TEXT(server_name);
#undef RLD_TLS_TEXT
    /* rate_limiter.cache: in front of Redis only (docs/Cache.md) */
    out->cache.enabled = c->cache.enabled;
    out->cache.ttl_ms = (uint32_t)c->cache.ttl_ms;
    out->cache.max_bytes = (size_t)c->cache.max_bytes;
  }
  fallback_to_rl(c, policies, out);
}

int rld_config_live_compatible(const rld_config *cur, const rld_config *next,
                               char *err, size_t errlen) {
  const char *what = NULL;
  if (strcmp(cur->server.listen, next->server.listen) != 0) {
    what = "server.listen";
  } else if (cur->server.workers != next->server.workers) {
    what = "server.workers";
  } else if (cur->memory_max_bytes != next->memory_max_bytes) {
    what = "rate_limiter.memory.max_size";
  } else if (cur->redis.n_addrs > 0 &&
             (cur->cache.enabled != next->cache.enabled ||
              cur->cache.ttl_ms != next->cache.ttl_ms ||
              cur->cache.max_bytes != next->cache.max_bytes)) {
    what = "rate_limiter.cache";
  } else if (cur->fallback.circuit_breaker_threshold !=
                 next->fallback.circuit_breaker_threshold ||
             cur->fallback.probe_interval_ms !=
                 next->fallback.probe_interval_ms) {
    what = "rate_limiter.fallback.circuit_breaker_threshold/probe_interval";
  }
  if (what == NULL) {
    return 0;
  }
  snprintf(err, errlen, "%s cannot change on a running daemon: restart it",
           what);
  return -1;
}

uint64_t rld_hash(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = UINT64_C(14695981039346656037);
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= UINT64_C(1099511628211);
  }
  return h;
}

static int parse_port(const char *text, size_t len, uint16_t *port) {
  unsigned v = 0;
  if (len == 0 || len > 5) {
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    if (text[i] < '0' || text[i] > '9') {
      return -1;
    }
    v = v * 10 + (unsigned)(text[i] - '0');
  }
  if (v > 65535) {
    return -1;
  }
  *port = (uint16_t)v;
  return 0;
}

int rld_split_host_port(const char *text, size_t len, char *host,
                        size_t host_cap, uint16_t *port) {
  const char *colon = NULL;
  size_t hs = 0;
  size_t he = 0;
  if (len > 0 && text[0] == '[') {
    const char *close = memchr(text, ']', len);
    if (close == NULL || (size_t)(close - text) + 1 >= len || close[1] != ':') {
      return -1;
    }
    hs = 1;
    he = (size_t)(close - text);
    colon = close + 1;
  } else {
    for (size_t i = 0; i < len; i++) {
      if (text[i] == ':') {
        colon = text + i;
      }
    }
    if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL) {
      return -1;
    }
    he = (size_t)(colon - text);
  }
  if (he - hs >= host_cap || memchr(text, '\0', len) != NULL) {
    return -1;
  }
  memcpy(host, text + hs, he - hs);
  host[he - hs] = '\0';
  return parse_port(colon + 1, len - (size_t)(colon + 1 - text), port);
}

char *rld_config_read_file(const char *path, size_t *len, char *err,
                           size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(RLD_CONFIG_FILE_MAX + 1);
  size_t n = buf != NULL ? fread(buf, 1, RLD_CONFIG_FILE_MAX + 1, f) : 0;
  int bad = ferror(f);
  fclose(f);
  if (buf == NULL || bad || n > RLD_CONFIG_FILE_MAX) {
    snprintf(err, errlen, "%s: %s", path,
             buf == NULL ? "out of memory"
             : bad       ? "read error"
                         : "larger than 1 MiB");
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

int rld_config_load(const char *path, rld_config **out, uint64_t *hash,
                    char *err, size_t errlen) {
  size_t len = 0;
  char *text = rld_config_read_file(path, &len, err, errlen);
  if (text == NULL) {
    return -1;
  }
  if (hash != NULL) {
    *hash = rld_hash(text, len);
  }
  int rc = rld_config_parse(text, len, path, out, err, errlen);
  free(text);
  return rc;
}
