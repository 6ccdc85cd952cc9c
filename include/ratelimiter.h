/*
 * ratelimiter.h - the public API of libratelimiter.
 *
 * libratelimiter answers one question: "may key K spend N units now?", under
 * one or more windows at once (e.g. 100 per minute AND 1000 per hour), with
 * one of four algorithms:
 *
 *   RL_ALG_SLIDING_LOG      exact sliding window (bounded log, see
 *                           docs/Algorithms.md for the representation)
 *   RL_ALG_SLIDING_COUNTER  previous fixed window weighted by overlap +
 *                           current window (approximate, O(1) state)
 *   RL_ALG_TOKEN_BUCKET     GCRA: rate = limit / duration, burst = limit
 *                           unless rl_window.burst says otherwise
 *   RL_ALG_FIXED_WINDOW     counter per aligned window
 *
 * Conventions (they hold for every function below):
 *   - Every exported name starts with rl_ / RL_.
 *   - Functions return an rl_err (RL_OK = 0). A denied request is NOT an
 *     error: rl_allow() returns RL_OK and sets decision->allowed = 0.
 *   - Inputs are borrowed for the duration of the call; whatever the library
 *     keeps, it copies. Result structs belong to the caller.
 *   - rl_free(NULL) is a no-op. The library never aborts on out-of-memory; it
 *     returns RL_ERR_NO_MEMORY.
 *   - A function that fails leaves every piece of limiter state as it was.
 *   - One rl_limiter is meant to be shared by all threads: every function
 *     taking an rl_limiter * is thread-safe, except rl_free().
 *   - Durations and times are milliseconds.
 */
#ifndef RATELIMITER_H
#define RATELIMITER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RL_EXTERN __attribute__((visibility("default")))
#else
#define RL_EXTERN
#endif

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define RL_MAX_WINDOWS 8                 /* windows per policy */
#define RL_MAX_POLICIES 1024             /* policies per limiter */
#define RL_POLICY_NAME_MAX 64            /* bytes, without the NUL */
#define RL_KEY_MAX 4096                  /* hard maximum key length, bytes */
#define RL_KEY_MAX_DEFAULT 1024          /* default rl_config.max_key_len */
#define RL_LIMIT_MAX (UINT64_C(1) << 40) /* units per window (~1.1e12) */
#define RL_LOG_LIMIT_MAX UINT32_MAX      /* units per window, sliding log */
#define RL_COST_MAX RL_LIMIT_MAX         /* units per request */
#define RL_DURATION_MAX_MS (UINT64_C(366) * 24 * 3600 * 1000) /* one year */
#define RL_LOG_DURATION_MAX_MS UINT32_MAX /* sliding log: ~49.7 days */
#define RL_LOG_SLOTS_DEFAULT 32           /* sliding-log entries per window */
#define RL_LOG_SLOTS_MIN 2
#define RL_LOG_SLOTS_MAX 1024
#define RL_MEMORY_MAX_BYTES_DEFAULT ((size_t)100 << 20) /* 100 MiB */
#define RL_MEMORY_MAX_BYTES_MIN ((size_t)64 << 10)      /* 64 KiB */

/* retry_after_ms of a request that can never be admitted (cost > limit). */
#define RL_RETRY_NEVER UINT64_MAX

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * The one list of error codes: X(NAME, label, number, message).
 * Numbers are fixed forever; new codes are only appended.
 * The label is what rl_err_name() returns (stable, usable as a metric label
 * or a JSON error code).
 */
#define RL_ERRNO_MAP(X)                                                        \
  X(OK, ok, 0, "success")                                                      \
  X(INVALID_ARGUMENT, invalid_argument, 1, "invalid argument")                 \
  X(KEY_EMPTY, key_empty, 2, "key is empty")                                   \
  X(KEY_TOO_LONG, key_too_long, 3,                                             \
    "key is longer than the configured maximum")                               \
  X(COST_INVALID, cost_invalid, 4, "cost must be at least 1")                  \
  X(COST_TOO_LARGE, cost_too_large, 5, "cost is above RL_COST_MAX")            \
  X(NO_MEMORY, no_memory, 6, "out of memory")                                  \
  X(POLICY_UNKNOWN, policy_unknown, 7, "no policy with that name")             \
  X(NO_POLICY, no_policy, 8, "configuration has no policy")                    \
  X(TOO_MANY_POLICIES, too_many_policies, 9,                                   \
    "configuration has more than RL_MAX_POLICIES policies")                    \
  X(POLICY_NAME, policy_name, 10,                                              \
    "policy name is empty, too long or used twice")                            \
  X(ALGORITHM_UNKNOWN, algorithm_unknown, 11, "unknown algorithm")             \
  X(NO_WINDOWS, no_windows, 12, "policy has no window")                        \
  X(TOO_MANY_WINDOWS, too_many_windows, 13,                                    \
    "policy has more than RL_MAX_WINDOWS windows")                             \
  X(WINDOW_LIMIT, window_limit, 14,                                            \
    "window limit is 0 or above the maximum for its algorithm")                \
  X(WINDOW_DURATION, window_duration, 15,                                      \
    "window duration is 0 or above the maximum for its algorithm")             \
  X(WINDOW_DUPLICATE, window_duplicate, 16,                                    \
    "two windows of one policy have the same duration")                        \
  X(WINDOW_BURST, window_burst, 17,                                            \
    "window burst is above the maximum or set for a non-GCRA policy")          \
  X(LOG_SLOTS, log_slots, 18,                                                  \
    "log_slots is outside RL_LOG_SLOTS_MIN..RL_LOG_SLOTS_MAX")                 \
  X(CONFIG_INVALID, config_invalid, 19, "invalid configuration value")         \
  X(BACKEND_UNAVAILABLE, backend_unavailable, 20, "backend unavailable")       \
  X(TIMEOUT, timeout, 21, "deadline exceeded")                                 \
  X(SHUTDOWN, shutdown, 22, "limiter is shutting down")

typedef enum rl_err {
#define RL__ERR_ENUM(name, label, num, msg) RL_ERR_##name = (num),
  RL_ERRNO_MAP(RL__ERR_ENUM)
#undef RL__ERR_ENUM
} rl_err;

#define RL_OK RL_ERR_OK

/* A static, human-readable message; "unknown error" for unknown codes. */
RL_EXTERN const char *rl_strerror(int err);
/* A static, stable label such as "key_empty"; "unknown" for unknown codes. */
RL_EXTERN const char *rl_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Policies                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum rl_algorithm {
  RL_ALG_SLIDING_LOG = 0,
  RL_ALG_SLIDING_COUNTER = 1,
  RL_ALG_TOKEN_BUCKET = 2,
  RL_ALG_FIXED_WINDOW = 3,
} rl_algorithm;

/* "sliding_log", "sliding_counter", "token_bucket", "fixed_window";
 * NULL for an unknown value. */
RL_EXTERN const char *rl_algorithm_name(rl_algorithm alg);
/* Parses one of the names above (len bytes, no NUL needed). */
RL_EXTERN int rl_algorithm_parse(const char *name, size_t len,
                                 rl_algorithm *out);

typedef struct rl_window {
  uint64_t limit;       /* units admitted per duration, 1..RL_LIMIT_MAX */
  uint64_t duration_ms; /* window length, 1..RL_DURATION_MAX_MS */
  uint64_t burst;       /* token bucket only: bucket size; 0 = limit */
} rl_window;

/* What a decision does when its store cannot answer: the Redis store is
 * down, too slow (the deadline passed), its circuit breaker is open, or
 * it answered an error (docs/Degradation.md). Bad input never falls back. */
typedef enum rl_fallback_mode {
  RL_FALLBACK_DEFAULT = 0, /* rl_policy: the limiter's rl_config.fallback.mode;
                            * rl_config: RL_FALLBACK_NONE */
  RL_FALLBACK_NONE = 1,    /* no fallback: the store's error is returned */
  RL_FALLBACK_OPEN = 2,    /* admit (source RL_SOURCE_FALLBACK_OPEN) */
  RL_FALLBACK_CLOSED = 3,  /* deny with retry_after_ms = the breaker's probe
                            * interval (RL_SOURCE_FALLBACK_CLOSED) */
  RL_FALLBACK_LOCAL = 4,   /* decide in process on a share of each limit
                            * (limit / fallback.local_instances, at least
                            * 1); units admitted are added to Redis when it
                            * is back (RL_SOURCE_FALLBACK_LOCAL) */
} rl_fallback_mode;

/* "default", "none", "open", "closed", "local"; NULL for an unknown value. */
RL_EXTERN const char *rl_fallback_mode_name(rl_fallback_mode mode);
/* Parses one of the names above (len bytes, no NUL needed). */
RL_EXTERN int rl_fallback_mode_parse(const char *name, size_t len,
                                     rl_fallback_mode *out);

typedef struct rl_policy {
  const char *name;       /* NUL-terminated, [A-Za-z0-9_.-]{1,64};
                             NULL = "default"; copied */
  rl_algorithm algorithm; /* default RL_ALG_SLIDING_LOG */
  size_t n_windows;       /* 1..RL_MAX_WINDOWS */
  rl_window windows[RL_MAX_WINDOWS];
  uint32_t log_slots; /* sliding log: entries kept per window (0 = default
                       * 32), at most the window's limit; exact when the
                       * limit is at most this (docs/Algorithms.md) */
  rl_fallback_mode fallback; /* Redis store: this policy's fallback mode;
                              * RL_FALLBACK_DEFAULT = rl_config's. May change
                              * live (rl_reconfigure). */
} rl_policy;

/* Fills defaults: name NULL, sliding log, no window. */
RL_EXTERN void rl_policy_init(rl_policy *policy);
/* Appends a window; RL_ERR_TOO_MANY_WINDOWS when full. Values are checked
 * by rl_new(), not here. */
RL_EXTERN int rl_policy_add_window(rl_policy *policy, uint64_t limit,
                                   uint64_t duration_ms);

/* ------------------------------------------------------------------------ */
/* Limiter configuration                                                    */
/* ------------------------------------------------------------------------ */

typedef enum rl_store_type {
  RL_STORE_MEMORY = 0, /* in-process store: the embedded default */
  RL_STORE_REDIS = 1,  /* Redis or Redis Cluster (docs/Redis.md): the state of
                        * every key lives in Redis and each decision is one
                        * atomic Lua script on Redis' clock */
} rl_store_type;

#define RL_REDIS_POOL_SIZE_DEFAULT 4             /* connections */
#define RL_REDIS_TIMEOUT_MS_DEFAULT 100          /* per decision */
#define RL_REDIS_CONNECT_TIMEOUT_MS_DEFAULT 2000 /* TCP + TLS + handshake */
#define RL_REDIS_QUEUE_MAX_DEFAULT 4096 /* pending requests per connection */
#define RL_BREAKER_THRESHOLD_DEFAULT 10 /* consecutive failures */
#define RL_BREAKER_PROBE_MS_DEFAULT 200 /* half-open probe interval */
#define RL_RECONCILE_MAX_KEYS_DEFAULT 65536 /* keys awaiting reconciliation */

/* How the Redis store reaches its addresses (rl_config.redis.mode). */
typedef enum rl_redis_mode {
  RL_REDIS_MODE_AUTO = 0,       /* asks the first address (CLUSTER SLOTS):
                                 * a cluster is routed, a server without
                                 * cluster support is standalone */
  RL_REDIS_MODE_STANDALONE = 1, /* one server: addrs[0] */
  RL_REDIS_MODE_CLUSTER = 2,    /* Redis Cluster: addrs are seeds; keys
                                 * routed by slot, MOVED/ASK followed
                                 * (docs/Redis.md, "Redis Cluster") */
} rl_redis_mode;

/* A clock: returns the current time in milliseconds (>= 0). */
typedef int64_t (*rl_clock_fn)(void *ctx);

typedef struct rl_config {
  const rl_policy *policies; /* 1..RL_MAX_POLICIES; the first is the default */
  size_t n_policies;
  rl_store_type store; /* default RL_STORE_MEMORY */
  size_t max_key_len;  /* 1..RL_KEY_MAX; default RL_KEY_MAX_DEFAULT */
  struct {
    size_t max_bytes; /* memory budget for key state; default 100 MiB */
    unsigned stripes; /* table stripes, power of two; 0 = automatic */
  } memory;
  rl_clock_fn clock; /* NULL = CLOCK_REALTIME; tests pass a fake. The
                      * memory store's clock: Redis decisions use Redis'
                      * TIME and never read it. */
  void *clock_ctx;
  /* store = RL_STORE_REDIS. Every string is borrowed by rl_new() and
   * rl_config_check() and copied; 0 in a numeric field means its default.
   * None of it may change on a live limiter (rl_reconfigure). */
  struct {
    const char *const *addrs; /* "host:port" or "[v6]:port"; standalone
                               * uses addrs[0], cluster mode takes them
                               * as seeds. A host is resolved once, when
                               * its node is created. */
    size_t n_addrs;           /* >= 1 */
    const char *username;     /* ACL user (needs password); NULL = none */
    const char *password;     /* AUTH; NULL = no AUTH */
    unsigned pool_size;       /* connections, 1..64; default 4 */
    uint32_t timeout_ms;      /* per-decision deadline: no caller waits longer
                               * (RL_ERR_TIMEOUT); default 100 */
    uint32_t connect_timeout_ms; /* TCP + TLS + AUTH + script load of one
                                  * connection attempt; default 2000 */
    unsigned queue_max;          /* requests pending per connection, 1..1048576;
                                  * beyond it decisions fail at once with
                                  * RL_ERR_BACKEND_UNAVAILABLE; default 4096 */
    int db;                      /* SELECT db when > 0; default 0
                                  * (cluster mode: must be 0) */
    struct {
      int enabled;             /* 1 = TLS */
      const char *ca_file;     /* PEM bundle of trusted CAs; with neither
                                * ca_file nor ca_dir: the system store */
      const char *ca_dir;      /* OpenSSL hashed CA directory */
      const char *cert_file;   /* client certificate (PEM), with key_file */
      const char *key_file;    /* its private key (PEM) */
      const char *server_name; /* name to verify (and SNI); NULL = host */
    } tls;
    /* Redis Cluster (issue 4). */
    rl_redis_mode mode; /* default RL_REDIS_MODE_AUTO */
  } redis;
  /* Metrics (rl_metrics_write). Counting costs a few ns per decision;
   * disabled = 1 turns it off (the text then shows zeros). May not change
   * on a live limiter: rl_reconfigure() ignores it. */
  struct {
    int disabled;
  } metrics;
  /* Local cache in front of the Redis store (docs/Cache.md): denials are
   * answered in-process until their retry time (exact), and keys hotter
   * than hot_threshold decisions/s get quota leases: batches of units
   * reserved in Redis and spent locally. Redis store only; 0 in a numeric
   * field means its default. Cannot change on a live limiter. */
  struct {
    int enabled;            /* 1 = on; default 0 */
    uint32_t ttl_ms;        /* lifetime of a lease, 1..3600000; default 500 */
    size_t max_bytes;       /* memory of the cache, all of it preallocated,
                             * RL_CACHE_MAX_BYTES_MIN..; default 100 MiB */
    int leases;             /* 1 = lease hot keys (rl_config_init sets it);
                             * 0 = only cache denials */
    uint64_t lease_max;     /* units per lease, 1..RL_LIMIT_MAX; default 1000 */
    uint32_t hot_threshold; /* decisions/s of one key on this instance that
                             * make it hot (leased); default 100 */
    unsigned hot_k;         /* hot keys tracked and listed, 1..1024;
                             * default 32 */
  } cache;
  /* store = RL_STORE_REDIS: graceful degradation (docs/Degradation.md).
   * 0 in a numeric field means its default. mode and local_instances may
   * change live (rl_reconfigure); the breaker settings and
   * reconcile_max_keys may not. */
  struct {
    rl_fallback_mode mode; /* policies' default; RL_FALLBACK_DEFAULT =
                            * RL_FALLBACK_NONE (the store's errors) */
    uint32_t circuit_breaker_threshold; /* consecutive failures (refused,
                                         * timed out, lost) that open a
                                         * node's breaker; default 10;
                                         * UINT32_MAX: never opens */
    uint32_t probe_interval_ms; /* an open breaker lets one decision through
                                 * per interval; default 200 */
    uint32_t local_instances;   /* RL_FALLBACK_LOCAL: each instance admits
                                 * limit / local_instances (at least 1) per
                                 * window; default 1 */
    size_t reconcile_max_keys;  /* keys whose locally admitted units await
                                 * reconciliation, at most; units of further
                                 * keys are dropped and counted; default
                                 * 65536 */
  } fallback;
} rl_config;

#define RL_CACHE_TTL_MS_DEFAULT 500
#define RL_CACHE_TTL_MS_MAX 3600000
#define RL_CACHE_MAX_BYTES_DEFAULT ((size_t)100 << 20) /* 100 MiB */
#define RL_CACHE_MAX_BYTES_MIN ((size_t)64 << 10)      /* 64 KiB */
#define RL_CACHE_LEASE_MAX_DEFAULT 1000
#define RL_CACHE_HOT_THRESHOLD_DEFAULT 100
#define RL_CACHE_HOT_K_DEFAULT 32
#define RL_CACHE_HOT_K_MAX 1024
#define RL_CACHE_KEY_MAX 64 /* longer keys always go to Redis */

/* Fills defaults (memory store; Redis fields: pool_size 4, timeout_ms 100,
 * connect_timeout_ms 2000, queue_max 4096). The caller then sets policies
 * and n_policies. */
RL_EXTERN void rl_config_init(rl_config *config);

/* Checks a configuration without creating anything. On error, when errbuf is
 * not NULL, writes a NUL-terminated detail such as
 * "policy 'api' window 2: duration 0" (truncated to errlen). With the Redis
 * store it also checks the addresses' syntax, the Redis options' ranges,
 * that the TLS files are readable, and that no token-bucket window has
 * burst * duration_ms / limit above 2^50 ms (the scripts' exact range):
 * RL_ERR_CONFIG_INVALID (or RL_ERR_WINDOW_BURST) with a message. It never
 * connects. */
RL_EXTERN int rl_config_check(const rl_config *config, char *errbuf,
                              size_t errlen);

/* ------------------------------------------------------------------------ */
/* Limiter                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct rl_limiter rl_limiter;

/* Creates a limiter. The configuration is copied; *out is set only on
 * RL_OK. Use rl_config_check() to learn why a configuration was refused.
 * With the Redis store it starts connecting in the background and does not
 * wait: a Redis that is down does not make rl_new() fail (decisions then
 * fail fast with RL_ERR_BACKEND_UNAVAILABLE; see rl_wait_ready()). It fails
 * on configuration errors (RL_ERR_CONFIG_INVALID, also for a host name
 * that does not resolve), RL_ERR_NO_MEMORY, or RL_ERR_BACKEND_UNAVAILABLE
 * when the library's loop thread cannot start. */
RL_EXTERN int rl_new(const rl_config *config, rl_limiter **out);
/* Frees the limiter. No call on it may be running or start afterwards.
 * Every asynchronous decision still pending gets its callback, with
 * RL_ERR_SHUTDOWN, before rl_free() returns (on the calling thread). Must
 * not be called from a decision callback. */
RL_EXTERN void rl_free(rl_limiter *rl);

/* Waits until the store can decide. Memory store: RL_OK at once. Redis:
 * RL_OK as soon as one connection is ready (connected, authenticated,
 * scripts loaded); RL_ERR_BACKEND_UNAVAILABLE as soon as every connection's
 * last attempt failed, with the reason in errbuf (e.g. "127.0.0.1:6379:
 * AUTH failed: WRONGPASS ...", "...: TLS certificate verification failed:
 * ...", "...: connect: Connection refused"); RL_ERR_TIMEOUT after
 * timeout_ms. errbuf may be NULL. Optional: decisions do not need it. */
RL_EXTERN int rl_wait_ready(rl_limiter *rl, uint32_t timeout_ms, char *errbuf,
                            size_t errlen);

/* Where a decision came from. X(NAME, label). */
#define RL_SOURCE_MAP(X)                                                       \
  X(NONE, none)                                                                \
  X(MEMORY, memory)                                                            \
  X(REDIS, redis)                                                              \
  X(CACHE, cache)                                                              \
  X(LEASE, lease)                                                              \
  X(FALLBACK_OPEN, fallback_open)                                              \
  X(FALLBACK_CLOSED, fallback_closed)                                          \
  X(FALLBACK_LOCAL, fallback_local)

typedef enum rl_source {
#define RL__SOURCE_ENUM(name, label) RL_SOURCE_##name,
  RL_SOURCE_MAP(RL__SOURCE_ENUM)
#undef RL__SOURCE_ENUM
} rl_source;

/* "memory", "redis", ...; "unknown" for an unknown value. */
RL_EXTERN const char *rl_source_name(rl_source source);

typedef struct rl_decision {
  int allowed;             /* 1 = admitted (units spent), 0 = denied */
  int window;              /* index of the binding window: the one that
                            * denied (the one with the latest retry time), or
                            * when allowed the one with the fewest units left */
  uint64_t limit;          /* limit of the binding window */
  uint64_t remaining;      /* units left in the binding window after this
                            * decision */
  uint64_t reset_after_ms; /* until the binding window is fully restored */
  uint64_t retry_after_ms; /* 0 when allowed; when denied, until the same
                            * request would be admitted absent other traffic;
                            * RL_RETRY_NEVER when cost > limit */
  rl_source source;        /* where the decision came from */
  size_t policy;           /* index of the policy that decided */
} rl_decision;

/* A request: which policy, which key, how many units. */
typedef struct rl_request {
  const char *policy; /* policy name (policy_len bytes); NULL = default */
  size_t policy_len;
  const void *key; /* opaque bytes, 1..max_key_len */
  size_t key_len;
  int64_t cost; /* units, 1..RL_COST_MAX */
} rl_request;

/* Decides a request: all windows of the policy admit it, or nothing is
 * spent in any of them. Returns RL_OK for both admission and denial.
 * Blocking. With the Redis store it returns by rl_config.redis.timeout_ms
 * whatever Redis does, and its store errors are
 *   RL_ERR_BACKEND_UNAVAILABLE  no connection (down, refused, handshake
 *                               failed), the pending queue is full, Redis
 *                               answered an error, or a malformed reply
 *   RL_ERR_TIMEOUT              the deadline passed (the request may still
 *                               have been decided by Redis)
 *   RL_ERR_SHUTDOWN             the limiter is being freed
 * Must not be called from a decision callback (RL_ERR_INVALID_ARGUMENT):
 * use rl_decide_async() there. */
RL_EXTERN int rl_decide(rl_limiter *rl, const rl_request *req,
                        rl_decision *out);

/* The callback of rl_decide_async(): err is RL_OK with d set (admitted or
 * denied), or a store error (RL_ERR_TIMEOUT at the deadline,
 * RL_ERR_BACKEND_UNAVAILABLE, RL_ERR_SHUTDOWN from rl_free()) with d NULL.
 * d lives only for the call. */
typedef void (*rl_decision_cb)(int err, const rl_decision *d, void *ud);

/* Decides a request without blocking, for event-loop servers. The contract
 * is libuv's: when it returns an error, cb is never called; when it
 * returns RL_OK, cb is called exactly once:
 *   - memory store, and a cached denial or lease hit of the cache
 *     (rl_config.cache): synchronously, before rl_decide_async() returns;
 *   - Redis: on the library's loop thread when the reply comes, with
 *     RL_ERR_TIMEOUT at the deadline (timeout_ms), or with RL_ERR_SHUTDOWN
 *     from rl_free() (on the thread calling it).
 * The request is copied; ud is passed through. Errors at submission: those
 * of rl_decide() for bad requests, and RL_ERR_BACKEND_UNAVAILABLE when no
 * connection accepts the request now (down, queue full). A callback must
 * be short (it runs on the thread serving every Redis connection); it may
 * call rl_decide_async() but not rl_decide() or rl_free(). Nothing is
 * allocated per decision in steady state. */
RL_EXTERN int rl_decide_async(rl_limiter *rl, const rl_request *req,
                              rl_decision_cb cb, void *ud);

/* One unit of the default policy. */
RL_EXTERN int rl_allow(rl_limiter *rl, const void *key, size_t key_len,
                       rl_decision *out);
/* cost units of the default policy. */
RL_EXTERN int rl_allow_n(rl_limiter *rl, const void *key, size_t key_len,
                         int64_t cost, rl_decision *out);

/* Index of a policy by name; RL_ERR_POLICY_UNKNOWN if none. The index is
 * valid until the next rl_reconfigure(). */
RL_EXTERN int rl_policy_find(rl_limiter *rl, const char *name, size_t name_len,
                             size_t *index);

/* Replaces the policies (and max_key_len) of a live limiter atomically:
 * every decision sees either the old or the new set, none waits on a lock,
 * and in-flight decisions finish on the set they started with. A policy
 * that keeps its name and its state layout (same algorithm, same window
 * durations and log_slots, and for the token bucket the same limits) keeps
 * every key's state; any other policy starts fresh, and the state of
 * policies that are gone is freed. The store, memory budget, stripes and
 * clock cannot change live (RL_ERR_CONFIG_INVALID). On error nothing
 * changes and errbuf (may be NULL) says why. Reconfigurations are
 * serialised; the call returns once the old set is no longer in use. On the
 * Redis store the same rule holds through the key names (a policy whose
 * layout changes gets new keys; the old ones expire by their TTL), and the
 * redis settings cannot change live either (RL_ERR_CONFIG_INVALID). */
RL_EXTERN int rl_reconfigure(rl_limiter *rl, const rl_config *config,
                             char *errbuf, size_t errlen);

/* Counters of the memory store, for tests, benchmarks and metrics. A
 * limiter on the Redis store has no memory store: all zero. */
typedef struct rl_memory_stats {
  uint64_t keys;            /* keys tracked now */
  uint64_t bytes;           /* bytes charged against memory.max_bytes */
  uint64_t max_bytes;       /* the budget */
  uint64_t evicted_expired; /* keys reclaimed because their state expired */
  uint64_t evicted_live;    /* live keys evicted under memory pressure */
} rl_memory_stats;

RL_EXTERN int rl_memory_stats_get(rl_limiter *rl, rl_memory_stats *out);

/* ------------------------------------------------------------------------ */
/* Metrics (docs/Observability.md)                                          */
/* ------------------------------------------------------------------------ */

/* Receives len bytes of text (not NUL-terminated); returns 0, or non-zero
 * to stop the rendering. */
typedef int (*rl_write_fn)(void *ctx, const char *data, size_t len);

/* Writes the limiter's metrics in the Prometheus text format (0.0.4)
 * through write, in pieces: ratelimiter_requests_total{policy,window,
 * result}, ratelimiter_errors_total{code},
 * ratelimiter_redis_latency_seconds{operation} (histogram), cache, lease,
 * hot-key, fallback and breaker families, and ratelimiter_build_info.
 * Labels come from the configuration and fixed lists, never from a key.
 * RL_OK, RL_ERR_INVALID_ARGUMENT, or RL_ERR_NO_MEMORY when write returned
 * non-zero. Thread-safe; never blocks decisions. */
RL_EXTERN int rl_metrics_write(rl_limiter *rl, rl_write_fn write, void *ctx);

/* The same text into buf, like snprintf: *needed (if not NULL) gets the
 * full length without the NUL; buf (len > 0) is always NUL-terminated. The
 * text did not fit when *needed >= len (then call again with more room:
 * counters move, so leave some slack). RL_OK or RL_ERR_INVALID_ARGUMENT. */
RL_EXTERN int rl_metrics_render(rl_limiter *rl, char *buf, size_t len,
                                size_t *needed);
/* Counters of the local cache (rl_config.cache); all zero when it is off. */
typedef struct rl_cache_stats {
  uint64_t hits_blocked;   /* denials answered from the cache */
  uint64_t hits_lease;     /* admissions spent from a lease */
  uint64_t misses;         /* decisions that went to Redis */
  uint64_t bytes;          /* memory of the cache (fixed at rl_new) */
  uint64_t max_bytes;      /* cache.max_bytes */
  uint64_t slots;          /* keys it can hold */
  uint64_t evictions;      /* keys dropped to make room */
  uint64_t hot_keys;       /* keys hot now (leased) */
  uint64_t leases;         /* leases granted with at least one unit */
  uint64_t lease_units;    /* units granted by leases */
  uint64_t returned_units; /* unspent units sent back to Redis */
  uint64_t redis_calls;    /* lease and return scripts sent */
  uint64_t hot_displaced;  /* hot keys that left the full list for a key
                              at least twice as hot (cache.hot_k) */
} rl_cache_stats;

RL_EXTERN int rl_cache_stats_get(rl_limiter *rl, rl_cache_stats *out);

/* One hot key (rl_hot_keys). Key bytes are copied as they are: they are
 * data, never a metric label. */
typedef struct rl_hot_key {
  char policy[RL_POLICY_NAME_MAX + 1]; /* NUL-terminated */
  unsigned char key[RL_CACHE_KEY_MAX];
  int leased;     /* 1 = decided from leases now */
  size_t key_len; /* bytes of key */
  uint64_t rate;  /* decisions/s on this instance, last full second */
} rl_hot_key;

/* The hot keys, hottest first: writes at most cap of them to buf and their
 * number to *n (buf may be NULL when cap is 0). RL_OK; 0 keys when the
 * cache is off. */
RL_EXTERN int rl_hot_keys(rl_limiter *rl, rl_hot_key *buf, size_t cap,
                          size_t *n);
/* Counters of graceful degradation (docs/Degradation.md). All zero on the
 * memory store. Counters only grow. */
typedef struct rl_fallback_stats {
  uint64_t fallback_open;    /* decisions admitted by RL_FALLBACK_OPEN */
  uint64_t fallback_closed;  /* decisions denied by RL_FALLBACK_CLOSED */
  uint64_t fallback_local;   /* decisions made locally (RL_FALLBACK_LOCAL) */
  uint64_t store_errors;     /* store errors returned (RL_FALLBACK_NONE) */
  int breaker_open;          /* 1 while the breaker is open or half-open */
  uint64_t breaker_opened;   /* times the breaker opened */
  uint64_t breaker_closed;   /* times it closed again */
  uint64_t breaker_rejected; /* decisions refused at once while open */
  uint64_t reconcile_pending_keys;  /* keys waiting now */
  uint64_t reconcile_pending_units; /* their units */
  uint64_t reconciled_units;        /* units added to Redis */
  uint64_t reconcile_dropped_units; /* units never added: table full, or
                                     * Redis refused the reconciliation */
  uint64_t reconcile_lost_units;    /* units whose reconciliation timed out
                                     * (maybe added, never retried) */
} rl_fallback_stats;

RL_EXTERN int rl_fallback_stats_get(rl_limiter *rl, rl_fallback_stats *out);

/* Library version, e.g. "0.1.0". */
RL_EXTERN const char *rl_version(void);

#ifdef __cplusplus
}
#endif

#endif /* RATELIMITER_H */
