/*
 * rl_mhd.c - the libmicrohttpd adapter of the middleware.
 *
 * MHD calls an access handler several times per request (headers, then
 * each piece of the upload, then once more); the request is decided on the
 * first call only. The verdict of the request being handled is kept in a
 * thread-local so that the wrapped handler can decorate the response it
 * builds (rl_mhd_mw_add_headers) without any allocation per request.
 */
#include <string.h>

#include "rl_mhd.h"
#include "rl_mw_wrapper.h"

struct rl_mhd_mw {
  rl_mw_wrapper base; /* first: allocated by rl_mw_wrapper_new */
  MHD_AccessHandlerCallback handler;
};

/* The request in the wrapped handler's hands on this thread. */
static _Thread_local const rl_mw_verdict *current_verdict;
static _Thread_local const rl_mw *current_core;

int rl_mhd_mw_new(rl_limiter *rl, const rl_mw_config *config,
                  MHD_AccessHandlerCallback handler, void *cls,
                  rl_mhd_mw **out) {
  rl_mw_wrapper *w = NULL;
  if (handler == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  int err = rl_mw_wrapper_new(rl, config, cls, sizeof(rl_mhd_mw), &w);
  if (err == RL_OK) {
    *out = (rl_mhd_mw *)w;
    (*out)->handler = handler;
  }
  return err;
}

void rl_mhd_mw_free(rl_mhd_mw *mw) {
  rl_mw_wrapper_free(mw != NULL ? &mw->base : NULL);
}

static const char *find_header(void *ctx, const char *name) {
  return MHD_lookup_connection_value(ctx, MHD_HEADER_KIND, name);
}

static void add_header(void *ctx, const char *name, const char *value) {
  MHD_add_response_header(ctx, name, value);
}

void rl_mhd_mw_add_headers(struct MHD_Response *response) {
  if (current_verdict != NULL && response != NULL) {
    rl_mw_headers(current_core, current_verdict, add_header, response);
  }
}

static int decide(const rl_mhd_mw *mw, struct MHD_Connection *connection,
                  const char *url, rl_mw_verdict *v) {
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  return rl_mw_wrapper_decide(&mw->base,
                              info != NULL ? info->client_addr : NULL, url,
                              find_header, connection, v);
}

static enum MHD_Result reject(const rl_mhd_mw *mw,
                              struct MHD_Connection *connection,
                              const rl_mw_verdict *v) {
  void *body = NULL; /* MHD wants void *; PERSISTENT: never written */
  memcpy(&body, &v->body, sizeof body);
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      strlen(v->body), body, MHD_RESPMEM_PERSISTENT);
  if (resp == NULL) {
    return MHD_NO;
  }
  rl_mw_headers(mw->base.core, v, add_header, resp);
  MHD_add_response_header(resp, "Content-Type", "application/json");
  enum MHD_Result rc =
      MHD_queue_response(connection, (unsigned)v->status, resp);
  MHD_destroy_response(resp);
  return rc;
}

enum MHD_Result rl_mhd_mw_handle(void *cls, struct MHD_Connection *connection,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
  rl_mhd_mw *mw = cls;
  rl_mw_verdict v;
  const rl_mw_verdict *verdict = NULL;
  if (*con_cls == NULL) {
    if (decide(mw, connection, url, &v) != 0) {
      return reject(mw, connection, &v);
    }
    verdict = &v;
  }
  current_verdict = verdict;
  current_core = mw->base.core;
  enum MHD_Result rc =
      mw->handler(mw->base.arg, connection, url, method, version, upload_data,
                  upload_data_size, con_cls);
  current_verdict = NULL;
  return rc;
}
