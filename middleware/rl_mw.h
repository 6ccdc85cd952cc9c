/*
 * rl_mw.h - the server-independent core of the HTTP middleware, shared by
 * the evhttp and libmicrohttpd wrappers (rl_evhttp.h, rl_mhd.h) and by
 * ratelimitd itself.
 *
 * Everything here is a pure function over caller-owned buffers: building a
 * rate-limit key from a request (client IP, path, a header, a constant, or
 * a combination), finding the client IP behind trusted proxies, and writing
 * the IETF RateLimit-Policy / RateLimit header values
 * (draft-ietf-httpapi-ratelimit-headers). Nothing allocates, so a server can
 * call it on every request.
 *
 * Built only on the public libratelimiter header.
 */
#ifndef RL_MW_H
#define RL_MW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ratelimiter.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RL_MW_KEY_PARTS_MAX 8 /* parts of one key spec */
#define RL_MW_ARG_MAX 127     /* bytes of a header name or constant */
#define RL_MW_PROXIES_MAX 64  /* trusted proxy networks */
#define RL_MW_IP_MAX 46       /* INET6_ADDRSTRLEN, with the NUL */
#define RL_MW_KEY_SEP '|'     /* joins the parts of a key */

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

typedef enum rl_mw_part_kind {
  RL_MW_PART_IP = 0,     /* the client IP (see rl_mw_client_ip) */
  RL_MW_PART_PATH = 1,   /* the request path, without the query */
  RL_MW_PART_HEADER = 2, /* a request header's value (arg = its name) */
  RL_MW_PART_CONST = 3,  /* a constant (arg): one bucket for everyone */
} rl_mw_part_kind;

typedef struct rl_mw_key_part {
  rl_mw_part_kind kind;
  char arg[RL_MW_ARG_MAX + 1]; /* NUL-terminated; "" for ip and path */
} rl_mw_key_part;

/* How a key is built: the parts' values joined by RL_MW_KEY_SEP. An
 * all-zero struct is an empty spec. */
typedef struct rl_mw_key_spec {
  size_t n_parts;
  rl_mw_key_part parts[RL_MW_KEY_PARTS_MAX];
} rl_mw_key_spec;

/* Appends one part written as "ip", "path", "header:NAME" or "const:VALUE"
 * (len bytes, no NUL needed). Returns RL_OK, or RL_ERR_CONFIG_INVALID with a
 * NUL-terminated reason in err (may be NULL). */
int rl_mw_key_spec_add(rl_mw_key_spec *spec, const char *text, size_t len,
                       char *err, size_t errlen);

/* Writes the spec back in the form rl_mw_key_spec_add reads, parts joined by
 * ", ". Returns the length, or -1 if cap is too small. */
int rl_mw_key_spec_format(const rl_mw_key_spec *spec, char *buf, size_t cap);

/* What the key builder needs to know about a request. */
typedef struct rl_mw_request {
  const char *client_ip; /* NUL-terminated */
  const char *path;      /* path_len bytes */
  size_t path_len;
  /* NUL-terminated value of a header (case-insensitive name), or NULL. */
  const char *(*header)(void *ctx, const char *name);
  void *header_ctx;
} rl_mw_request;

/* Builds the key of req into buf (cap bytes, no NUL written).
 * Returns RL_OK with *len set; RL_ERR_KEY_EMPTY when a header part is
 * missing or empty (*missing, if not NULL, names the header) or the key
 * would be empty; RL_ERR_KEY_TOO_LONG when it does not fit in cap. */
int rl_mw_key_build(const rl_mw_key_spec *spec, const rl_mw_request *req,
                    char *buf, size_t cap, size_t *len, const char **missing);

/* ------------------------------------------------------------------------ */
/* Client IP behind trusted proxies                                         */
/* ------------------------------------------------------------------------ */

typedef struct rl_mw_cidr {
  int family;          /* AF_INET or AF_INET6 */
  uint8_t addr[16];    /* network bytes (4 used for AF_INET) */
  unsigned prefix_len; /* 0..32 or 0..128 */
} rl_mw_cidr;

/* The proxies whose X-Forwarded-For is believed. All-zero = none. */
typedef struct rl_mw_proxies {
  size_t n;
  rl_mw_cidr nets[RL_MW_PROXIES_MAX];
} rl_mw_proxies;

/* Adds "10.0.0.0/8", "127.0.0.1", "::1" or "fd00::/8" (len bytes).
 * RL_OK or RL_ERR_CONFIG_INVALID with a reason in err. */
int rl_mw_proxies_add(rl_mw_proxies *proxies, const char *text, size_t len,
                      char *err, size_t errlen);

/* 1 if addr (AF_INET/AF_INET6 sockaddr; v4-mapped v6 counts as v4) lies in
 * one of the trusted networks. */
int rl_mw_proxies_contains(const rl_mw_proxies *proxies,
                           const struct sockaddr *addr);

/* The client IP of a request that arrived from `peer`: the peer itself
 * unless it is a trusted proxy; then the rightmost X-Forwarded-For entry
 * that is not a trusted proxy (xff may be NULL). An entry that is not an IP
 * address stops the walk: the last trusted hop is the client then. Writes a
 * NUL-terminated address into out (RL_MW_IP_MAX bytes). Returns RL_OK or
 * RL_ERR_INVALID_ARGUMENT when peer is not an IP socket address. */
int rl_mw_client_ip(const rl_mw_proxies *proxies, const struct sockaddr *peer,
                    const char *xff, char out[RL_MW_IP_MAX]);

/* ------------------------------------------------------------------------ */
/* RateLimit headers (draft-ietf-httpapi-ratelimit-headers)                 */
/* ------------------------------------------------------------------------ */

/* "1h", "1m", "90s", "500ms", "1d": the shortest exact form. Returns the
 * length or -1 if cap is too small. */
int rl_mw_format_duration(uint64_t ms, char *buf, size_t cap);

/* The name of window i of a policy in the headers: "<policy>-<duration>",
 * e.g. "api-1m". Returns the length or -1. */
int rl_mw_window_name(const char *policy_name, const rl_window *w, char *buf,
                      size_t cap);

/* RateLimit-Policy value: one item per window,
 * "api-1m";q=100;w=60, "api-1h";q=1000;w=3600
 * (w in seconds, rounded up, at least 1). Returns the length or -1. */
int rl_mw_format_policy(const char *policy_name, const rl_policy *policy,
                        char *buf, size_t cap);

/* RateLimit value for a decision, on its binding window:
 * "api-1m";r=42;t=17 (t = seconds until the window is fully restored,
 * rounded up). Returns the length or -1. */
int rl_mw_format_ratelimit(const char *policy_name, const rl_policy *policy,
                           const rl_decision *d, char *buf, size_t cap);

/* Retry-After seconds of a denied decision: retry_after_ms rounded up, at
 * least 1; 0 when the request can never be admitted (RL_RETRY_NEVER) and no
 * Retry-After should be sent. */
uint64_t rl_mw_retry_after_s(const rl_decision *d);

/* Writes v in decimal at buf (at least 21 bytes); returns the length. */
size_t rl_mw_u64(char *buf, uint64_t v);

/* ------------------------------------------------------------------------ */
/* The middleware object: one policy, one key spec, decisions as verdicts   */
/* ------------------------------------------------------------------------ */

#define RL_MW_VALUE_MAX 1024 /* bytes of one generated header value */

/* The seed's RateLimitMiddleware(rl, config): which policy, how keys are
 * built, whom to believe for X-Forwarded-For. */
typedef struct rl_mw_config {
  const char *policy_name; /* NULL = the limiter's default policy; copied */
  const rl_policy *policy; /* its shape, for the headers; required; copied */
  rl_mw_key_spec key;      /* empty = the client IP */
  rl_mw_proxies trusted_proxies; /* empty = never believe X-Forwarded-For */
  int64_t cost;                  /* units per request; default 1 */
  int legacy_headers;            /* also X-RateLimit-Limit/-Remaining/-Reset */
  int fail_open; /* limiter error (not a denial): 1 = serve, 0 = 503 */
  int shadow;    /* decide and count, never deny */
} rl_mw_config;

/* Defaults: default policy, key = client IP, cost 1, fail closed. */
void rl_mw_config_init(rl_mw_config *config);

typedef struct rl_mw rl_mw;

/* Creates a middleware core over rl (borrowed: it must outlive the
 * middleware). RL_OK, RL_ERR_INVALID_ARGUMENT or RL_ERR_NO_MEMORY. */
int rl_mw_new(rl_limiter *rl, const rl_mw_config *config, rl_mw **out);
/* rl_mw_free(NULL) is a no-op. */
void rl_mw_free(rl_mw *mw);

/* What to do with one request. */
typedef struct rl_mw_verdict {
  int status;        /* 0 = pass it to the handler; else answer with this status
                      * (429 denied, 400 no key, 503 limiter error) */
  int err;           /* rl_err of the decision: RL_OK for admitted and denied */
  int shadow_denied; /* denied, but let through in shadow mode */
  rl_decision decision;            /* valid when err == RL_OK */
  const char *body;                /* JSON body when status != 0 (static) */
  char ratelimit[RL_MW_VALUE_MAX]; /* RateLimit value, "" if none */
  char retry_after[24];            /* Retry-After seconds, "" if none */
} rl_mw_verdict;

/* Decides req (thread-safe; no allocation). Returns v->status. */
int rl_mw_decide(const rl_mw *mw, const rl_mw_request *req, rl_mw_verdict *v);

/* Calls add(ctx, name, value) for each header the verdict's response should
 * carry: RateLimit-Policy, RateLimit, Retry-After and, when configured,
 * the X-RateLimit-* trio. */
void rl_mw_headers(const rl_mw *mw, const rl_mw_verdict *v,
                   void (*add)(void *ctx, const char *name, const char *value),
                   void *ctx);

/* The proxies and key spec of a middleware (for the wrappers). */
const rl_mw_proxies *rl_mw_trusted_proxies(const rl_mw *mw);

#ifdef __cplusplus
}
#endif

#endif /* RL_MW_H */
