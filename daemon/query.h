/*
 * query.h - the query string of GET /v1/check and /v1/auth
 * (?policy=api&key=user%3A1&cost=2), decoded without allocating.
 * A pure function, fuzzed with the JSON reader (fuzz/fuzz_request.c).
 */
#ifndef RLD_QUERY_H
#define RLD_QUERY_H

#include <stddef.h>

#include "json_request.h"

/* Reads policy, key and cost from a query string (len bytes, without the
 * '?'); other parameters are ignored, a known one given twice is an error.
 * Percent escapes and '+' are decoded into scratch (RLD_JSON_SCRATCH
 * bytes). Same result type and error classes as the JSON reader. */
rld_json_err rld_query_parse(const char *query, size_t len, char *scratch,
                             size_t scratch_len, rld_check_request *out,
                             const char **message);

#endif /* RLD_QUERY_H */
