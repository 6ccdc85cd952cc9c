/*
 * config_yaml.c - the YAML configuration file -> rld_config, with errors
 * that name the file, line and column.
 *
 * libyaml loads the text into a node tree (it knows each node's position);
 * this file walks that tree against declarative tables, one per mapping:
 * key name, parser, offset of the destination field (the shape of redis's
 * static_configs[]). Unknown and duplicate keys are errors, not warnings:
 * a misspelt `max_request` must not silently mean "use the default".
 *
 * The walk is bounded: at most RLD_YAML_NODES_MAX nodes are visited, so an
 * alias-heavy document (YAML's "billion laughs") is an error, not a hang.
 * Semantic checks of policies are delegated to the library
 * (rl_config_check) and reported at the policy's position.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config.h"
#include "config_check.h"
#include "units.h"

#define RLD_YAML_NODES_MAX 100000

typedef struct ctx {
  yaml_document_t *doc;
  const char *file;
  char *err;
  size_t errlen;
  size_t budget; /* nodes that may still be visited */
  rld_config *cfg;
  rld_policy def;          /* the seed-format default policy */
  int has_def;             /* rate_limiter.windows was given */
  yaml_node_t *def_node;   /* where rate_limiter.windows is */
  yaml_node_t **pol_nodes; /* position of each named policy */
  size_t pol_cap;
} ctx;

typedef int (*field_fn)(ctx *c, yaml_node_t *n, void *dst);

/* One key of a mapping. For numbers, min..max bounds the value when max is
 * not 0 (checked at the value's position). */
typedef struct field {
  const char *name;
  field_fn parse;
  size_t offset;
  uint64_t min;
  uint64_t max;
} field;

static int fail_at(ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(ctx *c, const yaml_node_t *n, const char *fmt, ...) {
  if (c->err == NULL || c->errlen == 0) {
    return -1;
  }
  int at = snprintf(c->err, c->errlen, "%s:%zu:%zu: ", c->file,
                    (size_t)n->start_mark.line + 1,
                    (size_t)n->start_mark.column + 1);
  if (at >= 0 && (size_t)at < c->errlen) {
    va_list ap;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    vsnprintf(c->err + at, c->errlen - (size_t)at, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static yaml_node_t *node(ctx *c, yaml_node_item_t id) {
  return yaml_document_get_node(c->doc, id);
}

/* The text of a scalar node, or NULL (with an error) for anything else. */
static const char *scalar(ctx *c, yaml_node_t *n, const char *what,
                          size_t *len) {
  if (n->type != YAML_SCALAR_NODE) {
    fail_at(c, n, "%s must be a single value", what);
    return NULL;
  }
  *len = n->data.scalar.length;
  return (const char *)n->data.scalar.value;
}

static int visit(ctx *c, yaml_node_t *n) {
  if (c->budget == 0) {
    return fail_at(c, n, "document too large or too many aliases");
  }
  c->budget--;
  return 0;
}

static int p_uint(ctx *c, yaml_node_t *n, void *dst);
static int p_size_t(ctx *c, yaml_node_t *n, void *dst);
static int p_size_count(ctx *c, yaml_node_t *n, void *dst);

/* The parsed value of a numeric field, for its bounds check. */
static uint64_t field_value(const field *f, const void *dst) {
  if (f->parse == p_uint) {
    return *(const unsigned *)dst;
  }
  if (f->parse == p_size_t || f->parse == p_size_count) {
    return *(const size_t *)dst;
  }
  return *(const uint64_t *)dst;
}

static int check_bounds(ctx *c, yaml_node_t *v, const char *where,
                        const field *f, const void *dst) {
  if (f->max == 0) { /* unbounded, or not a number: nothing to read */
    return 0;
  }
  uint64_t x = field_value(f, dst);
  if (x >= f->min && x <= f->max) {
    return 0;
  }
  return fail_at(c, v, "%s.%s must be between %llu and %llu", where, f->name,
                 (unsigned long long)f->min, (unsigned long long)f->max);
}

static int parse_map(ctx *c, yaml_node_t *n, const char *where,
                     const field *fields, size_t n_fields, void *base) {
  if (n->type != YAML_MAPPING_NODE) {
    return fail_at(c, n, "%s must be a mapping", where);
  }
  uint64_t seen = 0;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
       p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node(c, p->key);
    yaml_node_t *v = node(c, p->value);
    if (k == NULL || v == NULL || visit(c, k) != 0) {
      return k == NULL || v == NULL ? fail_at(c, n, "broken mapping") : -1;
    }
    if (k->type != YAML_SCALAR_NODE) {
      return fail_at(c, k, "keys of %s must be plain names", where);
    }
    const char *name = (const char *)k->data.scalar.value;
    size_t i = 0;
    while (i < n_fields && strcmp(fields[i].name, name) != 0) {
      i++;
    }
    if (i == n_fields) {
      return fail_at(c, k, "unknown key '%.64s' in %s", name, where);
    }
    if (seen & (UINT64_C(1) << i)) {
      return fail_at(c, k, "duplicate key '%s' in %s", name, where);
    }
    seen |= UINT64_C(1) << i;
    void *dst = (char *)base + fields[i].offset;
    if (visit(c, v) != 0 || fields[i].parse(c, v, dst) != 0 ||
        check_bounds(c, v, where, &fields[i], dst) != 0) {
      return -1;
    }
  }
  return 0;
}

/* ---- scalar parsers ---------------------------------------------------- */

static int p_duration(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "a duration", &len);
  if (s == NULL) {
    return -1;
  }
  if (rld_parse_duration(s, len, dst) != 0) {
    return fail_at(c, n,
                   "invalid duration '%.32s' (examples: 500ms, 30s, 1m, 1h, "
                   "1h30m)",
                   s);
  }
  return 0;
}

static int p_size(ctx *c, yaml_node_t *n, uint64_t *v) {
  size_t len = 0;
  const char *s = scalar(c, n, "a size", &len);
  if (s == NULL) {
    return -1;
  }
  if (rld_parse_size(s, len, v) != 0 || *v > SIZE_MAX) {
    return fail_at(
        c, n, "invalid size '%.32s' (examples: 65536, 64KB, 100MB, 1GB)", s);
  }
  return 0;
}

static int p_size_t(ctx *c, yaml_node_t *n, void *dst) {
  uint64_t v = 0;
  if (p_size(c, n, &v) != 0) {
    return -1;
  }
  *(size_t *)dst = (size_t)v;
  return 0;
}

static int p_size_u64(ctx *c, yaml_node_t *n, void *dst) {
  return p_size(c, n, dst);
}

static int p_u64(ctx *c, yaml_node_t *n, uint64_t *v) {
  size_t len = 0;
  const char *s = scalar(c, n, "a number", &len);
  if (s == NULL) {
    return -1;
  }
  if (rld_parse_u64(s, len, v) != 0) {
    return fail_at(c, n, "'%.32s' is not a whole number", s);
  }
  return 0;
}

static int p_uint(ctx *c, yaml_node_t *n, void *dst) {
  uint64_t v = 0;
  if (p_u64(c, n, &v) != 0) {
    return -1;
  }
  if (v > UINT32_MAX) {
    return fail_at(c, n, "%llu is too large", (unsigned long long)v);
  }
  *(unsigned *)dst = (unsigned)v;
  return 0;
}

static int p_size_count(ctx *c, yaml_node_t *n, void *dst) {
  uint64_t v = 0;
  if (p_u64(c, n, &v) != 0) {
    return -1;
  }
  *(size_t *)dst = (size_t)v;
  return 0;
}

static int p_bool(ctx *c, yaml_node_t *n, void *dst) {
  static const char *const yes[] = {"true", "True", "TRUE", "yes", "on"};
  static const char *const no[] = {"false", "False", "FALSE", "no", "off"};
  size_t len = 0;
  const char *s = scalar(c, n, "a boolean", &len);
  for (size_t i = 0; s != NULL && i < 5; i++) {
    if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
      *(int *)dst = strcmp(s, yes[i]) == 0;
      return 0;
    }
  }
  return s == NULL ? -1 : fail_at(c, n, "'%.32s' is not true or false", s);
}

static int p_listen(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "listen", &len);
  char host[RLD_ADDR_MAX + 1];
  uint16_t port = 0;
  if (s == NULL) {
    return -1;
  }
  if (rld_split_host_port(s, len, host, sizeof host, &port) != 0) {
    return fail_at(c, n,
                   "invalid address '%.64s' (expected host:port, e.g. "
                   "127.0.0.1:8080 or [::1]:8080)",
                   s);
  }
  memcpy(dst, s, len + 1);
  return 0;
}

static int p_algorithm(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "algorithm", &len);
  if (s != NULL && rl_algorithm_parse(s, len, dst) != RL_OK) {
    return fail_at(c, n,
                   "unknown algorithm '%.32s' (sliding_log, sliding_counter, "
                   "token_bucket, fixed_window)",
                   s);
  }
  return s == NULL ? -1 : 0;
}

static int p_fallback_mode(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "fallback mode", &len);
#define RLD__FB_MATCH(name, label)                                             \
  if (s != NULL && strcmp(s, #label) == 0) {                                   \
    *(rld_fallback_mode *)dst = RLD_FALLBACK_##name;                           \
    return 0;                                                                  \
  }
  RLD_FALLBACK_MAP(RLD__FB_MATCH)
#undef RLD__FB_MATCH
  return s == NULL ? -1
                   : fail_at(c, n,
                             "unknown fallback mode '%.32s' (open, closed, "
                             "local, none)",
                             s);
}

/* Calls each(c, item, dst) for every item of a sequence node; a scalar is
 * taken as a sequence of one when allow_scalar. */
static int each_item(ctx *c, yaml_node_t *n, const char *what, int allow_scalar,
                     field_fn each, void *dst) {
  if (n->type == YAML_SCALAR_NODE && allow_scalar) {
    return each(c, n, dst);
  }
  if (n->type != YAML_SEQUENCE_NODE) {
    return fail_at(c, n, "%s must be a list", what);
  }
  for (yaml_node_item_t *i = n->data.sequence.items.start;
       i < n->data.sequence.items.top; i++) {
    yaml_node_t *item = node(c, *i);
    if (item == NULL) {
      return fail_at(c, n, "broken list");
    }
    if (visit(c, item) != 0 || each(c, item, dst) != 0) {
      return -1;
    }
  }
  return 0;
}

static int p_proxy(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "a trusted proxy", &len);
  char why[160];
  if (s != NULL && rl_mw_proxies_add(dst, s, len, why, sizeof why) != RL_OK) {
    return fail_at(c, n, "%s", why);
  }
  return s == NULL ? -1 : 0;
}

static int p_proxies(ctx *c, yaml_node_t *n, void *dst) {
  return each_item(c, n, "trusted_proxies", 1, p_proxy, dst);
}

static int p_key_part(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "a key part", &len);
  char why[200];
  if (s != NULL && rl_mw_key_spec_add(dst, s, len, why, sizeof why) != RL_OK) {
    return fail_at(c, n, "%s", why);
  }
  return s == NULL ? -1 : 0;
}

static int p_key(ctx *c, yaml_node_t *n, void *dst) {
  rl_mw_key_spec *spec = dst;
  spec->n_parts = 0;
  return each_item(c, n, "key", 1, p_key_part, dst);
}

/* ---- redis, cache, fallback, memory, server ---------------------------- */

static int p_redis_addr(ctx *c, yaml_node_t *n, void *dst) {
  rld_redis *r = dst;
  size_t len = 0;
  const char *s = scalar(c, n, "a Redis address", &len);
  char host[RLD_ADDR_MAX + 1];
  uint16_t port = 0;
  if (s == NULL) {
    return -1;
  }
  if (rld_split_host_port(s, len, host, sizeof host, &port) != 0 || port == 0 ||
      host[0] == '\0') {
    return fail_at(c, n, "invalid Redis address '%.64s' (expected host:port)",
                   s);
  }
  if (r->n_addrs >= RLD_REDIS_ADDRS_MAX) {
    return fail_at(c, n, "at most %d Redis addresses", RLD_REDIS_ADDRS_MAX);
  }
  memcpy(r->addrs[r->n_addrs++], s, len + 1);
  return 0;
}

/* With addresses the library's Redis store serves (standalone: the first
 * address); without, the embedded memory store. */
static int p_redis_addrs(ctx *c, yaml_node_t *n, void *dst) {
  return each_item(c, n, "redis.addrs", 0, p_redis_addr, dst);
}

/* redis.mode: auto | standalone | cluster (docs/Redis.md). */
static int p_redis_mode(ctx *c, yaml_node_t *n, void *dst) {
  static const char *const names[] = {"auto", "standalone", "cluster"};
  size_t len = 0;
  const char *s = scalar(c, n, "redis mode", &len);
  for (size_t i = 0; s != NULL && i < 3; i++) {
    if (strcmp(s, names[i]) == 0) {
      *(rl_redis_mode *)dst = (rl_redis_mode)i;
      return 0;
    }
  }
  return s == NULL ? -1
                   : fail_at(c, n,
                             "unknown redis mode '%.32s' (auto, standalone, "
                             "cluster)",
                             s);
}

/* A user name, password or path: 1..RLD_REDIS_TEXT_MAX bytes, no NUL. */
static int p_redis_text(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "text", &len);
  if (s == NULL) {
    return -1;
  }
  if (len == 0 || len > RLD_REDIS_TEXT_MAX || memchr(s, '\0', len) != NULL) {
    return fail_at(c, n, "expected 1..%d bytes of text", RLD_REDIS_TEXT_MAX);
  }
  memcpy(dst, s, len);
  ((char *)dst)[len] = '\0';
  return 0;
}

/* password_file: the password is the file's content up to its first line
 * end (a mounted Secret), read when the configuration is loaded. */
static int p_redis_password(ctx *c, yaml_node_t *n, void *dst) {
  if (((char *)dst)[0] != '\0') {
    return fail_at(c, n, "set password or password_file, not both");
  }
  return p_redis_text(c, n, dst);
}

static int p_redis_password_file(ctx *c, yaml_node_t *n, void *dst) {
  if (((char *)dst)[0] != '\0') {
    return fail_at(c, n, "set password or password_file, not both");
  }
  char path[RLD_REDIS_TEXT_MAX + 1];
  if (p_redis_text(c, n, path) != 0) {
    return -1;
  }
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    return fail_at(c, n, "cannot read password_file '%.200s': %s", path,
                   strerror(errno));
  }
  char *pw = dst;
  size_t len = fread(pw, 1, RLD_REDIS_TEXT_MAX + 1, f);
  int err = ferror(f);
  fclose(f);
  if (err) {
    return fail_at(c, n, "cannot read password_file '%.200s'", path);
  }
  char *end = memchr(pw, '\n', len);
  len = end != NULL ? (size_t)(end - pw) : len;
  if (len > 0 && pw[len - 1] == '\r') {
    len--;
  }
  if (len == 0 || len > RLD_REDIS_TEXT_MAX || memchr(pw, '\0', len) != NULL) {
    return fail_at(c, n, "password_file '%.200s' must hold 1..%d bytes", path,
                   RLD_REDIS_TEXT_MAX);
  }
  pw[len] = '\0';
  return 0;
}

static int p_redis_tls(ctx *c, yaml_node_t *n, void *dst) {
#define RLD_TLS_AT(field)                                                      \
  (offsetof(rld_redis, tls.field) - offsetof(rld_redis, tls))
  static const field f[] = {
      {"enabled", p_bool, RLD_TLS_AT(enabled), 0, 0},
      {"ca_file", p_redis_text, RLD_TLS_AT(ca_file), 0, 0},
      {"ca_dir", p_redis_text, RLD_TLS_AT(ca_dir), 0, 0},
      {"cert_file", p_redis_text, RLD_TLS_AT(cert_file), 0, 0},
      {"key_file", p_redis_text, RLD_TLS_AT(key_file), 0, 0},
      {"server_name", p_redis_text, RLD_TLS_AT(server_name), 0, 0},
  };
#undef RLD_TLS_AT
  return parse_map(c, n, "rate_limiter.redis.tls", f, sizeof f / sizeof f[0],
                   dst);
}

static int p_redis(ctx *c, yaml_node_t *n, void *dst) {
  static const field f[] = {
      {"addrs", p_redis_addrs, 0, 0, 0},
      {"pool_size", p_uint, offsetof(rld_redis, pool_size), 1, 10000},
      {"timeout", p_duration, offsetof(rld_redis, timeout_ms), 1, 60000},
      {"mode", p_redis_mode, offsetof(rld_redis, mode), 0, 0},
      {"username", p_redis_text, offsetof(rld_redis, username), 0, 0},
      {"password", p_redis_password, offsetof(rld_redis, password), 0, 0},
      {"password_file", p_redis_password_file, offsetof(rld_redis, password), 0,
       0},
      {"tls", p_redis_tls, offsetof(rld_redis, tls), 0, 0},
  };
  return parse_map(c, n, "rate_limiter.redis", f, sizeof f / sizeof f[0], dst);
}

static int p_cache(ctx *c, yaml_node_t *n, void *dst) {
  static const field f[] = {
      {"enabled", p_bool, offsetof(rld_cache, enabled), 0, 0},
      {"ttl", p_duration, offsetof(rld_cache, ttl_ms), 1, 3600000},
      {"max_size", p_size_u64, offsetof(rld_cache, max_bytes), 1,
       UINT64_C(1) << 40},
  };
  return parse_map(c, n, "rate_limiter.cache", f, 3, dst);
}

static int p_fallback(ctx *c, yaml_node_t *n, void *dst) {
  static const field f[] = {
      {"mode", p_fallback_mode, offsetof(rld_fallback, mode), 0, 0},
      {"circuit_breaker_threshold", p_uint,
       offsetof(rld_fallback, circuit_breaker_threshold), 1, 1000000},
      {"probe_interval", p_duration, offsetof(rld_fallback, probe_interval_ms),
       1, 60000},
      {"local_instances", p_uint, offsetof(rld_fallback, local_instances), 1,
       1000000},
  };
  return parse_map(c, n, "rate_limiter.fallback", f, 4, dst);
}

static int p_memory(ctx *c, yaml_node_t *n, void *dst) {
  static const field f[] = {
      {"max_size", p_size_t, 0, RL_MEMORY_MAX_BYTES_MIN, UINT64_C(1) << 40}};
  return parse_map(c, n, "rate_limiter.memory", f, 1, dst);
}

static int p_server(ctx *c, yaml_node_t *n, void *dst) {
  static const field f[] = {
      {"listen", p_listen, offsetof(rld_server, listen), 0, 0},
      {"workers", p_uint, offsetof(rld_server, workers), 0, 256},
      {"trusted_proxies", p_proxies, offsetof(rld_server, trusted_proxies), 0,
       0},
      {"max_body", p_size_t, offsetof(rld_server, max_body), 64, 1 << 20},
      {"max_header_bytes", p_size_t, offsetof(rld_server, max_header_bytes),
       1024, 65536},
      {"legacy_headers", p_bool, offsetof(rld_server, legacy_headers), 0, 0},
      {"shutdown_grace", p_duration, offsetof(rld_server, shutdown_grace_ms), 0,
       600000},
      {"reload_debounce", p_duration, offsetof(rld_server, reload_debounce_ms),
       0, 10000},
  };
  return parse_map(c, n, "server", f, sizeof f / sizeof f[0], dst);
}

/* ---- windows and policies ---------------------------------------------- */

static int p_window(ctx *c, yaml_node_t *n, void *dst) {
  static const field f[] = {
      {"max_requests", p_size_u64, offsetof(rl_window, limit), 0, 0},
      {"duration", p_duration, offsetof(rl_window, duration_ms), 0, 0},
      {"burst", p_size_u64, offsetof(rl_window, burst), 0, 0},
  };
  rl_policy *p = dst;
  rl_window w = {0, 0, 0};
  if (p->n_windows >= RL_MAX_WINDOWS) {
    return fail_at(c, n, "a policy has at most %d windows", RL_MAX_WINDOWS);
  }
  if (parse_map(c, n, "a window", f, 3, &w) != 0) {
    return -1;
  }
  if (w.limit == 0 || w.duration_ms == 0) {
    return fail_at(c, n, "a window needs max_requests and duration above 0");
  }
  p->windows[p->n_windows++] = w;
  return 0;
}

static int p_windows(ctx *c, yaml_node_t *n, void *dst) {
  return each_item(c, n, "windows", 0, p_window, dst);
}

static int p_log_slots(ctx *c, yaml_node_t *n, void *dst) {
  if (p_uint(c, n, dst) != 0) {
    return -1;
  }
  unsigned v = *(unsigned *)dst;
  if (v < RL_LOG_SLOTS_MIN || v > RL_LOG_SLOTS_MAX) {
    return fail_at(c, n, "log_slots must be between %d and %d",
                   RL_LOG_SLOTS_MIN, RL_LOG_SLOTS_MAX);
  }
  return 0;
}

static int p_name(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "name", &len);
  if (s == NULL) {
    return -1;
  }
  if (rld_check_policy_name(s, len) != 0) {
    return fail_at(c, n,
                   "policy name '%.64s' must be 1..%d characters among "
                   "A-Z a-z 0-9 _ . -",
                   s, RL_POLICY_NAME_MAX);
  }
  memcpy(dst, s, len + 1);
  return 0;
}

/* dst is the policy: an explicit mode is remembered as such, so that the
 * others can take rate_limiter.fallback.mode, wherever that is written. */
static int p_policy_fallback(ctx *c, yaml_node_t *n, void *dst) {
  rld_policy *p = dst;
  p->fallback_explicit = 1;
  return p_fallback_mode(c, n, &p->fallback);
}

static int grow_policies(ctx *c, yaml_node_t *n) {
  rld_config *cfg = c->cfg;
  if (cfg->n_policies < c->pol_cap) {
    return 0;
  }
  if (c->pol_cap >= RL_MAX_POLICIES) {
    return fail_at(c, n, "at most %d policies", RL_MAX_POLICIES);
  }
  size_t cap = c->pol_cap == 0 ? 8 : c->pol_cap * 2;
  rld_policy *p = realloc(cfg->policies, cap * sizeof *p);
  yaml_node_t **pn =
      p != NULL ? realloc(c->pol_nodes, cap * sizeof(yaml_node_t *)) : NULL;
  if (p != NULL) {
    cfg->policies = p;
  }
  if (pn == NULL) {
    return fail_at(c, n, "out of memory");
  }
  c->pol_nodes = pn;
  c->pol_cap = cap;
  return 0;
}

static int p_policy(ctx *c, yaml_node_t *n, void *dst) {
  static const field f[] = {
      {"name", p_name, offsetof(rld_policy, name), 0, 0},
      {"algorithm", p_algorithm, offsetof(rld_policy, policy.algorithm), 0, 0},
      {"windows", p_windows, offsetof(rld_policy, policy), 0, 0},
      {"log_slots", p_log_slots, offsetof(rld_policy, policy.log_slots), 0, 0},
      {"key", p_key, offsetof(rld_policy, key), 0, 0},
      {"fallback", p_policy_fallback, 0, 0, 0},
      {"shadow", p_bool, offsetof(rld_policy, shadow), 0, 0},
  };
  (void)dst;
  if (grow_policies(c, n) != 0) {
    return -1;
  }
  rld_policy *p = &c->cfg->policies[c->cfg->n_policies];
  rld_policy_init(p);
  if (parse_map(c, n, "a policy", f, sizeof f / sizeof f[0], p) != 0) {
    return -1;
  }
  if (p->name[0] == '\0') {
    return fail_at(c, n, "a policy needs a name");
  }
  c->pol_nodes[c->cfg->n_policies++] = n;
  return 0;
}

static int p_policies(ctx *c, yaml_node_t *n, void *dst) {
  return each_item(c, n, "policies", 0, p_policy, dst);
}

static int p_def_windows(ctx *c, yaml_node_t *n, void *dst) {
  (void)dst;
  c->has_def = 1;
  c->def_node = n;
  return p_windows(c, n, &c->def.policy);
}

static int p_def_algorithm(ctx *c, yaml_node_t *n, void *dst) {
  (void)dst;
  return p_algorithm(c, n, &c->def.policy.algorithm);
}

static int p_def_key(ctx *c, yaml_node_t *n, void *dst) {
  (void)dst;
  return p_key(c, n, &c->def.key);
}

static int p_def_log_slots(ctx *c, yaml_node_t *n, void *dst) {
  (void)dst;
  return p_log_slots(c, n, &c->def.policy.log_slots);
}

static int p_rate_limiter(ctx *c, yaml_node_t *n, void *dst) {
  static const field f[] = {
      {"redis", p_redis, offsetof(rld_config, redis), 0, 0},
      {"windows", p_def_windows, 0, 0, 0},
      {"algorithm", p_def_algorithm, 0, 0, 0},
      {"key", p_def_key, 0, 0, 0},
      {"log_slots", p_def_log_slots, 0, 0, 0},
      {"cache", p_cache, offsetof(rld_config, cache), 0, 0},
      {"fallback", p_fallback, offsetof(rld_config, fallback), 0, 0},
      {"memory", p_memory, offsetof(rld_config, memory_max_bytes), 0, 0},
      {"max_key_len", p_size_count, offsetof(rld_config, max_key_len), 1,
       RL_KEY_MAX},
      {"shadow", p_bool, offsetof(rld_config, shadow), 0, 0},
      {"policies", p_policies, 0, 0, 0},
  };
  return parse_map(c, n, "rate_limiter", f, sizeof f / sizeof f[0], dst);
}

/* ---- tracing (OpenTelemetry) ------------------------------------------- */

static int p_trace_text(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "text", &len);
  if (s == NULL) {
    return -1;
  }
  if (len == 0 || len > RLD_TRACE_TEXT_MAX || memchr(s, '\0', len) != NULL) {
    return fail_at(c, n, "expected 1..%d bytes of text", RLD_TRACE_TEXT_MAX);
  }
  memcpy(dst, s, len);
  ((char *)dst)[len] = '\0';
  return 0;
}

static int p_ratio(ctx *c, yaml_node_t *n, void *dst) {
  size_t len = 0;
  const char *s = scalar(c, n, "ratio", &len);
  char buf[32];
  char *end = NULL;
  if (s == NULL) {
    return -1;
  }
  snprintf(buf, sizeof buf, "%.*s", (int)len, s);
  double v = len < sizeof buf ? strtod(buf, &end) : -1;
  if (end == NULL || end == buf || *end != '\0' || !(v >= 0 && v <= 1)) {
    return fail_at(c, n, "sample_ratio must be a number in 0..1, not '%.32s'",
                   s);
  }
  *(double *)dst = v;
  return 0;
}

static int p_tracing(ctx *c, yaml_node_t *n, void *dst) {
  static const field f[] = {
      {"enabled", p_bool, offsetof(rld_tracing, enabled), 0, 0},
      {"endpoint", p_trace_text, offsetof(rld_tracing, endpoint), 0, 0},
      {"service_name", p_trace_text, offsetof(rld_tracing, service_name), 0, 0},
      {"sample_ratio", p_ratio, offsetof(rld_tracing, sample_ratio), 0, 0},
      {"queue_size", p_uint, offsetof(rld_tracing, queue_size), 1, 1u << 20},
  };
  return parse_map(c, n, "tracing", f, sizeof f / sizeof f[0], dst);
}

static int p_root(ctx *c, yaml_node_t *n) {
  static const field f[] = {
      {"rate_limiter", p_rate_limiter, 0, 0, 0},
      {"server", p_server, offsetof(rld_config, server), 0, 0},
      {"tracing", p_tracing, offsetof(rld_config, tracing), 0, 0},
  };
  return parse_map(c, n, "the top level", f, sizeof f / sizeof f[0], c->cfg);
}

/* ---- after the walk: default policy, library checks -------------------- */

/* Puts the seed-format default policy first. */
static int place_default(ctx *c, yaml_node_t *root) {
  if (!c->has_def) {
    return c->cfg->n_policies > 0
               ? 0
               : fail_at(c, root,
                         "no policy: set rate_limiter.windows or "
                         "rate_limiter.policies");
  }
  if (grow_policies(c, root) != 0) {
    return -1;
  }
  rld_config *cfg = c->cfg;
  memmove(cfg->policies + 1, cfg->policies,
          cfg->n_policies * sizeof *cfg->policies);
  memmove(c->pol_nodes + 1, c->pol_nodes,
          cfg->n_policies * sizeof(yaml_node_t *));
  cfg->policies[0] = c->def;
  c->pol_nodes[0] = c->def_node;
  cfg->n_policies++;
  return 0;
}

static int check_policies(ctx *c) {
  rld_config *cfg = c->cfg;
  char why[256];
  for (size_t i = 0; i < cfg->n_policies; i++) {
    rld_policy *p = &cfg->policies[i];
    if (!p->fallback_explicit) {
      p->fallback = cfg->fallback.mode;
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(cfg->policies[j].name, p->name) == 0) {
        return fail_at(c, c->pol_nodes[i], "policy '%s' is defined twice",
                       p->name);
      }
    }
    if (rld_check_policy(cfg, p, why, sizeof why) != 0) {
      return fail_at(c, c->pol_nodes[i], "%s", why);
    }
  }
  return 0;
}

static int load_document(ctx *c, const char *text, size_t len,
                         yaml_node_t **root) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    snprintf(c->err, c->errlen, "%s: out of memory", c->file);
    return -1;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int ok = yaml_parser_load(&parser, c->doc);
  if (!ok) {
    snprintf(c->err, c->errlen, "%s:%zu:%zu: %s%s%s", c->file,
             (size_t)parser.problem_mark.line + 1,
             (size_t)parser.problem_mark.column + 1,
             parser.problem != NULL ? parser.problem : "invalid YAML",
             parser.context != NULL ? " " : "",
             parser.context != NULL ? parser.context : "");
  }
  yaml_parser_delete(&parser);
  if (!ok) {
    return -1;
  }
  *root = yaml_document_get_root_node(c->doc);
  if (*root == NULL) {
    yaml_document_delete(c->doc); /* an empty document still owns memory */
    snprintf(c->err, c->errlen, "%s:1:1: the configuration is empty", c->file);
    return -1;
  }
  return 0;
}

int rld_config_parse(const char *text, size_t len, const char *filename,
                     rld_config **out, char *err, size_t errlen) {
  char scratch[1];
  yaml_document_t doc;
  ctx c;
  memset(&c, 0, sizeof c);
  c.doc = &doc;
  c.file = filename != NULL ? filename : "<config>";
  c.err = err != NULL && errlen > 0 ? err : scratch;
  c.errlen = err != NULL && errlen > 0 ? errlen : sizeof scratch;
  c.budget = RLD_YAML_NODES_MAX;
  c.cfg = rld_config_new();
  rld_policy_init(&c.def);
  strcpy(c.def.name, "default");
  yaml_node_t *root = NULL;
  if (c.cfg == NULL) {
    snprintf(c.err, c.errlen, "%s: out of memory", c.file);
    return -1;
  }
  int rc = load_document(&c, text, len, &root);
  if (rc == 0) {
    rc = p_root(&c, root);
    rc = rc != 0 ? rc : place_default(&c, root);
    rc = rc != 0 ? rc : check_policies(&c);
    rc = rc != 0 ? rc
                 : rld_check_config(c.cfg, root->start_mark.line + 1, c.file,
                                    c.err, c.errlen);
    yaml_document_delete(&doc);
  }
  free(c.pol_nodes);
  if (rc != 0) {
    rld_config_free(c.cfg);
    return -1;
  }
  *out = c.cfg;
  return 0;
}
