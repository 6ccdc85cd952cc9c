/*
 * rl_mhd.c - the libmicrohttpd adapter of the middleware.
 *
 * MHD calls an access handler several times per request (headers, then
 * each piece of the upload, then once more); the request is decided on the
 * first call only. The verdict of the request being handled is kept in a
 * thread-local so that the wrapped handler can decorate the response it
 * builds (rl_mhd_mw_add_headers) without any allocation per request.
 */
#include <stdlib.h>
#include <string.h>

#include "rl_mhd.h"

struct rl_mhd_mw {
  rl_mw *core;
  MHD_AccessHandlerCallback handler;
  void *cls;
};

/* The request in the wrapped handler's hands on this thread. */
static _Thread_local const rl_mw_verdict *current_verdict;
static _Thread_local const rl_mw *current_core;

int rl_mhd_mw_new(rl_limiter *rl, const rl_mw_config *config,
                  MHD_AccessHandlerCallback handler, void *cls,
                  rl_mhd_mw **out) {
  if (handler == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl_mhd_mw *mw = calloc(1, sizeof *mw);
  if (mw == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  int err = rl_mw_new(rl, config, &mw->core);
  if (err != RL_OK) {
    free(mw);
    return err;
  }
  mw->handler = handler;
  mw->cls = cls;
  *out = mw;
  return RL_OK;
}

void rl_mhd_mw_free(rl_mhd_mw *mw) {
  if (mw != NULL) {
    rl_mw_free(mw->core);
    free(mw);
  }
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
  char ip[RL_MW_IP_MAX];
  rl_mw_request r = {NULL, url, url != NULL ? strcspn(url, "?#") : 0,
                     find_header, connection};
  if (info != NULL &&
      rl_mw_client_ip(rl_mw_trusted_proxies(mw->core), info->client_addr,
                      find_header(connection, "X-Forwarded-For"),
                      ip) == RL_OK) {
    r.client_ip = ip;
  }
  return rl_mw_decide(mw->core, &r, v);
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
  rl_mw_headers(mw->core, v, add_header, resp);
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
  current_core = mw->core;
  enum MHD_Result rc = mw->handler(mw->cls, connection, url, method, version,
                                   upload_data, upload_data_size, con_cls);
  current_verdict = NULL;
  return rc;
}
