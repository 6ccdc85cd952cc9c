/*
 * rl_evhttp.c - the evhttp adapter of the middleware: evhttp request ->
 * rl_mw_request, verdict -> response headers or a 429.
 *
 * The client IP comes from the connection's socket address; the
 * X-Forwarded-For header is passed to rl_mw_client_ip(), which believes it
 * only when that address is a configured trusted proxy.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "rl_evhttp.h"

struct rl_evhttp_mw {
  rl_mw *core;
  rl_evhttp_handler handler;
  void *arg;
};

int rl_evhttp_mw_new(rl_limiter *rl, const rl_mw_config *config,
                     rl_evhttp_handler handler, void *arg, rl_evhttp_mw **out) {
  if (handler == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl_evhttp_mw *mw = calloc(1, sizeof *mw);
  if (mw == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  int err = rl_mw_new(rl, config, &mw->core);
  if (err != RL_OK) {
    free(mw);
    return err;
  }
  mw->handler = handler;
  mw->arg = arg;
  *out = mw;
  return RL_OK;
}

void rl_evhttp_mw_free(rl_evhttp_mw *mw) {
  if (mw != NULL) {
    rl_mw_free(mw->core);
    free(mw);
  }
}

static const char *find_header(void *ctx, const char *name) {
  return evhttp_find_header(ctx, name);
}

static void add_header(void *ctx, const char *name, const char *value) {
  evhttp_add_header(ctx, name, value);
}

/* The path of the request URI, without the query (points into the URI). */
static const char *uri_path(struct evhttp_request *req, size_t *len) {
  const char *uri = evhttp_request_get_uri(req);
  if (uri == NULL) {
    *len = 0;
    return NULL;
  }
  *len = strcspn(uri, "?#");
  return uri;
}

void rl_evhttp_mw_handle(struct evhttp_request *req, void *arg) {
  rl_evhttp_mw *mw = arg;
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  struct evhttp_connection *conn = evhttp_request_get_connection(req);
  char ip[RL_MW_IP_MAX];
  rl_mw_request r = {NULL, NULL, 0, find_header, in};
  if (conn != NULL &&
      rl_mw_client_ip(rl_mw_trusted_proxies(mw->core),
                      evhttp_connection_get_addr(conn),
                      evhttp_find_header(in, "X-Forwarded-For"), ip) == RL_OK) {
    r.client_ip = ip;
  }
  r.path = uri_path(req, &r.path_len);
  rl_mw_verdict v;
  int status = rl_mw_decide(mw->core, &r, &v);
  rl_mw_headers(mw->core, &v, add_header, out);
  if (status == 0) {
    mw->handler(req, mw->arg);
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
