/*
 * rl_mhd.h - rate limiting for libmicrohttpd access handlers.
 *
 * The C form of the seed's RateLimitMiddleware(rl, config)(handler):
 *
 *   rl_mhd_mw *mw;
 *   rl_mhd_mw_new(rl, &config, my_handler, my_cls, &mw);
 *   MHD_start_daemon(flags, port, NULL, NULL, rl_mhd_mw_handle, mw, ...);
 *
 * The first call of a request (*con_cls == NULL) is decided. Denied: the
 * wrapper queues a 429 with a JSON body and the RateLimit headers, and the
 * handler never sees the request. Admitted: the handler is called for this
 * and every later call of the request. libmicrohttpd has the handler build
 * its own response, so a handler that wants the RateLimit headers on its
 * 2xx answers calls rl_mhd_mw_add_headers() on the response it builds
 * (during the call: the verdict is kept per thread).
 *
 * Contract for the wrapped handler, as for any MHD handler: a handler that
 * returns without queueing a response sets *con_cls to non-NULL (the usual
 * MHD idiom). The wrapper never writes *con_cls itself, so a completion
 * callback only ever sees what the handler put there; a handler that leaves
 * it NULL gets its next call decided again.
 */
#ifndef RL_MHD_H
#define RL_MHD_H

#include <microhttpd.h>

#include "rl_mw.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rl_mhd_mw rl_mhd_mw;

/* Wraps handler(cls, ...). rl is borrowed and must outlive the wrapper;
 * config is copied. RL_OK, RL_ERR_INVALID_ARGUMENT or RL_ERR_NO_MEMORY. */
int rl_mhd_mw_new(rl_limiter *rl, const rl_mw_config *config,
                  MHD_AccessHandlerCallback handler, void *cls,
                  rl_mhd_mw **out);
/* rl_mhd_mw_free(NULL) is a no-op. */
void rl_mhd_mw_free(rl_mhd_mw *mw);

/* The access handler: pass it to MHD_start_daemon with the wrapper as its
 * closure. */
enum MHD_Result rl_mhd_mw_handle(void *mw, struct MHD_Connection *connection,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls);

/* Adds the RateLimit headers of the request being handled on this thread
 * to response. Call it from inside the wrapped handler; elsewhere it adds
 * nothing. */
void rl_mhd_mw_add_headers(struct MHD_Response *response);

#ifdef __cplusplus
}
#endif

#endif /* RL_MHD_H */
