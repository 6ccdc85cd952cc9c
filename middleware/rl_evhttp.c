/*
 * rl_evhttp.c - the evhttp adapter of the middleware: evhttp request ->
 * rl_mw_request, verdict -> response headers or a 429.
 *
 * The client IP comes from the connection's socket address, or from
 * X-Forwarded-For when that address is a configured trusted proxy
 * (rl_mw_wrapper_decide).
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "rl_evhttp.h"
#include "rl_mw_wrapper.h"

struct rl_evhttp_mw {
  rl_mw_wrapper base; /* first: allocated by rl_mw_wrapper_new */
  rl_evhttp_handler handler;
};

int rl_evhttp_mw_new(rl_limiter *rl, const rl_mw_config *config,
                     rl_evhttp_handler handler, void *arg, rl_evhttp_mw **out) {
  rl_mw_wrapper *w = NULL;
  if (handler == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  int err = rl_mw_wrapper_new(rl, config, arg, sizeof(rl_evhttp_mw), &w);
  if (err == RL_OK) {
    *out = (rl_evhttp_mw *)w;
    (*out)->handler = handler;
  }
  return err;
}

void rl_evhttp_mw_free(rl_evhttp_mw *mw) {
  rl_mw_wrapper_free(mw != NULL ? &mw->base : NULL);
}

static const char *find_header(void *ctx, const char *name) {
  return evhttp_find_header(ctx, name);
}

static void add_header(void *ctx, const char *name, const char *value) {
  evhttp_add_header(ctx, name, value);
}

void rl_evhttp_mw_handle(struct evhttp_request *req, void *arg) {
  rl_evhttp_mw *mw = arg;
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  struct evhttp_connection *conn = evhttp_request_get_connection(req);
  rl_mw_verdict v;
  int status = rl_mw_wrapper_decide(
      &mw->base, conn != NULL ? evhttp_connection_get_addr(conn) : NULL,
      evhttp_request_get_uri(req), find_header, in, &v);
  rl_mw_headers(mw->base.core, &v, add_header, out);
  if (status == 0) {
    mw->handler(req, mw->base.arg);
    return;
  }
  evhttp_add_header(out, "Content-Type", "application/json");
  evbuffer_add_printf(evhttp_request_get_output_buffer(req), "%s\n", v.body);
  evhttp_send_reply(req, status,
                    status == 429   ? "Too Many Requests"
                    : status == 400 ? "Bad Request"
                                    : "Service Unavailable",
                    NULL);
}
