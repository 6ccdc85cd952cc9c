/*
 * rl_evhttp.h - rate limiting for libevent evhttp handlers.
 *
 * The C form of the seed's RateLimitMiddleware(rl, config)(handler):
 *
 *   rl_evhttp_mw *mw;
 *   rl_evhttp_mw_new(rl, &config, api_handler, api_arg, &mw);
 *   evhttp_set_cb(http, "/api", rl_evhttp_mw_handle, mw);
 *
 * Each request is decided before the handler runs. Admitted: the RateLimit
 * headers are added to the response and the handler is called. Denied: the
 * wrapper answers 429 with a JSON body, RateLimit-Policy, RateLimit and
 * Retry-After, and the handler is not called.
 */
#ifndef RL_EVHTTP_H
#define RL_EVHTTP_H

#include <event2/http.h>

#include "rl_mw.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rl_evhttp_mw rl_evhttp_mw;
typedef void (*rl_evhttp_handler)(struct evhttp_request *req, void *arg);

/* Wraps handler(req, arg). rl is borrowed and must outlive the wrapper;
 * config is copied. RL_OK, RL_ERR_INVALID_ARGUMENT or RL_ERR_NO_MEMORY. */
int rl_evhttp_mw_new(rl_limiter *rl, const rl_mw_config *config,
                     rl_evhttp_handler handler, void *arg, rl_evhttp_mw **out);
/* rl_evhttp_mw_free(NULL) is a no-op. */
void rl_evhttp_mw_free(rl_evhttp_mw *mw);

/* The evhttp callback: pass it with the wrapper as its argument. */
void rl_evhttp_mw_handle(struct evhttp_request *req, void *mw);

#ifdef __cplusplus
}
#endif

#endif /* RL_EVHTTP_H */
