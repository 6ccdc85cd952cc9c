/*
 * json_request.h - the body of POST /v1/check, {"policy":..., "key":...,
 * "cost":...}, read without allocating.
 *
 * A pure function (buf, len) -> request | error: no I/O, no global state,
 * no allocation; strings without escapes point into buf, strings with
 * escapes are decoded into the caller's scratch buffer. Fuzzed by
 * fuzz/fuzz_json_request.c.
 */
#ifndef RLD_JSON_REQUEST_H
#define RLD_JSON_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <ratelimiter.h>

#define RLD_JSON_DEPTH_MAX 32 /* nesting of skipped (unknown) values */
/* Scratch that always suffices: the longest key and policy, decoded. */
#define RLD_JSON_SCRATCH (RL_KEY_MAX + RL_POLICY_NAME_MAX + 8)

typedef enum rld_json_err {
  RLD_JSON_OK = 0,
  RLD_JSON_SYNTAX = 1,      /* not JSON, or not an object */
  RLD_JSON_FIELD = 2,       /* a known field of the wrong type or value */
  RLD_JSON_KEY_TOO_LONG = 3 /* key longer than RL_KEY_MAX bytes decoded */
} rld_json_err;

typedef struct rld_check_request {
  const char *policy; /* NULL when absent or null */
  size_t policy_len;
  const char *key; /* NULL when absent or null */
  size_t key_len;
  int64_t cost; /* 1 when absent */
} rld_check_request;

/* Reads one JSON object from buf (len bytes; surrounding whitespace
 * allowed, nothing else). Fields other than policy, key and cost are
 * skipped; a field given twice is an error. policy must decode to at most
 * RL_POLICY_NAME_MAX bytes and key to at most RL_KEY_MAX; cost is an
 * integer 1..RL_COST_MAX. scratch must hold RLD_JSON_SCRATCH bytes.
 * Returns RLD_JSON_OK, or an error with a static sentence in *message
 * (e.g. "expected ':' after a field name"). */
rld_json_err rld_json_request_parse(const char *buf, size_t len, char *scratch,
                                    size_t scratch_len, rld_check_request *out,
                                    const char **message);

#endif /* RLD_JSON_REQUEST_H */
