/*
 * rl_mw_wrapper.h - what the server wrappers (rl_evhttp.c, rl_mhd.c) share:
 * the core with the wrapped handler's argument, and deciding a request
 * from what every server knows about it (peer address, URI, headers).
 * Internal to the middleware; not installed.
 */
#ifndef RL_MW_WRAPPER_H
#define RL_MW_WRAPPER_H

#include <stddef.h>
#include <sys/socket.h>

#include "rl_mw.h"

/* The server-independent part of a wrapper. A wrapper struct holds it as
 * its first member and adds its own handler after it. */
typedef struct rl_mw_wrapper {
  rl_mw *core;
  void *arg; /* the wrapped handler's argument */
} rl_mw_wrapper;

/* Allocates a wrapper of `size` bytes (zeroed; size >= sizeof
 * (rl_mw_wrapper)) and makes its core from rl (borrowed) and config
 * (copied). RL_OK, RL_ERR_INVALID_ARGUMENT, or RL_ERR_NO_MEMORY with *out
 * untouched. */
int rl_mw_wrapper_new(rl_limiter *rl, const rl_mw_config *config, void *arg,
                      size_t size, rl_mw_wrapper **out);
/* rl_mw_wrapper_free(NULL) is a no-op. */
void rl_mw_wrapper_free(rl_mw_wrapper *w);

/* Decides one request: the client IP is peer's (NULL: unknown), or the
 * X-Forwarded-For client when peer is a trusted proxy; the path is uri up
 * to '?' or '#' (uri may be NULL); header(ctx, name) looks headers up.
 * Returns v->status (0 = pass to the handler). */
int rl_mw_wrapper_decide(const rl_mw_wrapper *w, const struct sockaddr *peer,
                         const char *uri,
                         const char *(*header)(void *ctx, const char *name),
                         void *ctx, rl_mw_verdict *v);

#endif /* RL_MW_WRAPPER_H */
