/*
 * config.h - ratelimitd's configuration: what the YAML file says, checked,
 * in plain structs.
 *
 * The `rate_limiter` section is the seed's format (redis, windows, cache,
 * fallback) extended with named policies and shadow mode; the `server`
 * section is the daemon's own (listen address, workers, trusted proxies,
 * limits). docs/Configuration.md describes every key.
 *
 * Ownership: an rld_config is one heap object plus its policies array;
 * rld_config_free() releases both. Nothing in it points into the YAML text.
 */
#ifndef RLD_CONFIG_H
#define RLD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <ratelimiter.h>

#include "../middleware/rl_mw.h"

#define RLD_REDIS_ADDRS_MAX 64
#define RLD_ADDR_MAX 255               /* bytes of host:port */
#define RLD_CONFIG_FILE_MAX (1u << 20) /* bytes of a configuration file */

/* X(NAME, label): what to do when the store is unavailable (none: answer
 * 500 backend_unavailable, as before fallback modes existed). */
#define RLD_FALLBACK_MAP(X)                                                    \
  X(OPEN, open) X(CLOSED, closed) X(LOCAL, local) X(NONE, none)

typedef enum rld_fallback_mode {
#define RLD__FB_ENUM(name, label) RLD_FALLBACK_##name,
  RLD_FALLBACK_MAP(RLD__FB_ENUM)
#undef RLD__FB_ENUM
} rld_fallback_mode;

const char *rld_fallback_name(rld_fallback_mode mode);

typedef struct rld_policy {
  char name[RL_POLICY_NAME_MAX + 1];
  rl_policy policy;   /* algorithm, windows, log_slots; name unset (the
                       * name is the field above: rld_config_to_rl) */
  rl_mw_key_spec key; /* how the key is built when a request gives none */
  rld_fallback_mode fallback; /* per policy; default: rate_limiter.fallback */
  int fallback_explicit;      /* fallback was written for this policy */
  int shadow;                 /* decide and count, never deny */
} rld_policy;

typedef struct rld_server {
  char listen[RLD_ADDR_MAX + 1]; /* "127.0.0.1:8080", "[::1]:8080" */
  unsigned workers;              /* HTTP threads; 0 = one per core */
  rl_mw_proxies trusted_proxies; /* whose X-Forwarded-For is believed */
  size_t max_body;               /* bytes of a /v1/check body */
  size_t max_header_bytes;       /* bytes of all request headers */
  int legacy_headers;            /* also send X-RateLimit-* */
  uint64_t shutdown_grace_ms;    /* SIGTERM: time to finish in flight */
  uint64_t reload_debounce_ms;   /* file change: wait for quiet */
} rld_server;

#define RLD_REDIS_TEXT_MAX 511 /* a user name, password or file path */
typedef struct rld_redis {
  size_t n_addrs; /* 0: the embedded memory store serves */
  char addrs[RLD_REDIS_ADDRS_MAX][RLD_ADDR_MAX + 1];
  unsigned pool_size;  /* connections per node; 0 = the library's default */
  uint64_t timeout_ms; /* per decision; 0 = the library's default */
  rl_redis_mode mode;  /* auto (default), standalone or cluster */
  /* AUTH / ACL and TLS ("" = not set). The password comes from
   * `password` or, better, `password_file` (e.g. a mounted Kubernetes
   * Secret); it is never printed by --check-config or the logs. */
  char username[RLD_REDIS_TEXT_MAX + 1];
  char password[RLD_REDIS_TEXT_MAX + 1];
  struct {
    int enabled;
    char ca_file[RLD_REDIS_TEXT_MAX + 1];
    char ca_dir[RLD_REDIS_TEXT_MAX + 1];
    char cert_file[RLD_REDIS_TEXT_MAX + 1];
    char key_file[RLD_REDIS_TEXT_MAX + 1];
    char server_name[RLD_REDIS_TEXT_MAX + 1];
  } tls;
} rld_redis;

typedef struct rld_cache {
  int enabled;
  uint64_t ttl_ms;
  uint64_t max_bytes;
} rld_cache;

typedef struct rld_fallback {
  rld_fallback_mode mode;
  unsigned circuit_breaker_threshold; /* consecutive failures */
  uint64_t probe_interval_ms;         /* open breaker: one probe per */
  unsigned local_instances;           /* local mode: each admits limit / this */
} rld_fallback;

/* OpenTelemetry traces (daemon/trace.h); read at start, the OTEL_*
 * environment variables override it. */
#define RLD_TRACE_TEXT_MAX 511
typedef struct rld_tracing {
  int enabled;                               /* default off */
  char endpoint[RLD_TRACE_TEXT_MAX + 1];     /* OTLP/HTTP traces URL */
  char service_name[RLD_TRACE_TEXT_MAX + 1]; /* default "ratelimitd" */
  double sample_ratio;                       /* root spans; default 0.01 */
  unsigned queue_size;                       /* spans; default 2048 */
} rld_tracing;

typedef struct rld_config {
  rld_server server;
  rld_tracing tracing;
  rld_redis redis;       /* addrs set: the Redis store */
  rld_cache cache;       /* with Redis: the library's cache layer */
  rld_fallback fallback; /* the library's fallback (docs/Degradation.md) */
  size_t memory_max_bytes;
  size_t max_key_len;
  int shadow; /* every policy in shadow mode */
  size_t n_policies;
  rld_policy *policies; /* the first is the default policy */
} rld_config;

/* A configuration with every default set and no policy; NULL on OOM. */
rld_config *rld_config_new(void);

/* A policy with defaults: no name, sliding log, no window, key = ip. */
void rld_policy_init(rld_policy *p);

/* Splits "host:port", "[v6]:port" or ":port" (len bytes). 0 or -1. */
int rld_split_host_port(const char *text, size_t len, char *host,
                        size_t host_cap, uint16_t *port);

/* Parses and checks a configuration file's text (len bytes, no NUL
 * needed). On success returns 0 and *out (free with rld_config_free). On
 * failure returns -1 and writes "FILE:LINE:COL: what is wrong" to err. */
int rld_config_parse(const char *text, size_t len, const char *filename,
                     rld_config **out, char *err, size_t errlen);

/* Reads and parses a file (at most RLD_CONFIG_FILE_MAX bytes). Same
 * contract as rld_config_parse; *hash (if not NULL) gets a 64-bit hash of
 * the bytes read. */
int rld_config_load(const char *path, rld_config **out, uint64_t *hash,
                    char *err, size_t errlen);

/* Reads a whole file of at most RLD_CONFIG_FILE_MAX bytes into a new
 * buffer (free it). NULL with "PATH: reason" in err on failure. */
char *rld_config_read_file(const char *path, size_t *len, char *err,
                           size_t errlen);

void rld_config_free(rld_config *config);

/* Fills an rl_config for the library from c. policies (c->n_policies
 * entries, caller-owned) receives the policies, named after c's; out points
 * at it and at nothing else, so it is valid as long as policies and c. */
void rld_config_to_rl(const rld_config *c, rl_policy *policies, rl_config *out);

/* Settings that cannot change on a live daemon. 0 if next may replace
 * cur; -1 with a reason in err otherwise. */
int rld_config_live_compatible(const rld_config *cur, const rld_config *next,
                               char *err, size_t errlen);

/* 64-bit FNV-1a: the configuration hash shown in /ready and /metrics. */
uint64_t rld_hash(const void *data, size_t len);

#endif /* RLD_CONFIG_H */
