/*
 * key_builder.h - the rate-limit key of a ratelimitd request that names
 * none: built from the policy's key spec (ip, path, header:NAME,
 * const:VALUE) over what evhttp knows of the request.
 *
 * Under nginx auth_request the request ratelimitd sees is nginx's
 * subrequest: the client IP then comes from X-Forwarded-For (believed only
 * from server.trusted_proxies) and the path from X-Original-URI.
 */
#ifndef RLD_KEY_BUILDER_H
#define RLD_KEY_BUILDER_H

#include <stddef.h>

#include "config.h"

struct evhttp_request;

/* Builds the key of req per spec into buf (cap bytes). Returns RL_OK with
 * *len set, or RL_ERR_KEY_EMPTY (*missing names a missing header, "" for
 * no client IP) or RL_ERR_KEY_TOO_LONG. */
int rld_key_build(const rl_mw_key_spec *spec, const rl_mw_proxies *proxies,
                  struct evhttp_request *req, char *buf, size_t cap,
                  size_t *len, const char **missing);

#endif /* RLD_KEY_BUILDER_H */
