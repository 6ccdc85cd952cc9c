/*
 * rl_mw_wrapper.c - the part of the evhttp and libmicrohttpd wrappers that
 * does not depend on the server (see rl_mw_wrapper.h).
 */
#include <stdlib.h>
#include <string.h>

#include "rl_mw_wrapper.h"

int rl_mw_wrapper_new(rl_limiter *rl, const rl_mw_config *config, void *arg,
                      size_t size, rl_mw_wrapper **out) {
  if (size < sizeof(rl_mw_wrapper) || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl_mw_wrapper *w = calloc(1, size);
  if (w == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  int err = rl_mw_new(rl, config, &w->core);
  if (err != RL_OK) {
    free(w);
    return err;
  }
  w->arg = arg;
  *out = w;
  return RL_OK;
}

void rl_mw_wrapper_free(rl_mw_wrapper *w) {
  if (w != NULL) {
    rl_mw_free(w->core);
    free(w);
  }
}

int rl_mw_wrapper_decide(const rl_mw_wrapper *w, const struct sockaddr *peer,
                         const char *uri,
                         const char *(*header)(void *ctx, const char *name),
                         void *ctx, rl_mw_verdict *v) {
  char ip[RL_MW_IP_MAX];
  rl_mw_request r = {NULL, uri, uri != NULL ? strcspn(uri, "?#") : 0, header,
                     ctx};
  if (peer != NULL &&
      rl_mw_client_ip(rl_mw_trusted_proxies(w->core), peer,
                      header(ctx, "X-Forwarded-For"), ip) == RL_OK) {
    r.client_ip = ip;
  }
  return rl_mw_decide(w->core, &r, v);
}
