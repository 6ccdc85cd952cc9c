/*
 * key_builder.c - evhttp request -> rl_mw_request -> key. The client IP
 * is formatted only when the spec has an "ip" part.
 */
#include <event2/http.h>
#include <string.h>

#include "key_builder.h"

static const char *find_header(void *ctx, const char *name) {
  return evhttp_find_header(ctx, name);
}

static int needs_ip(const rl_mw_key_spec *spec) {
  for (size_t i = 0; i < spec->n_parts; i++) {
    if (spec->parts[i].kind == RL_MW_PART_IP) {
      return 1;
    }
  }
  return 0;
}

/* The path the key is about: X-Original-URI (nginx auth_request) or the
 * request's own, without the query either way. */
static const char *request_path(struct evhttp_request *req,
                                struct evkeyvalq *in, size_t *len) {
  const char *uri = evhttp_find_header(in, "X-Original-URI");
  if (uri == NULL) {
    uri = evhttp_request_get_uri(req);
  }
  *len = uri != NULL ? strcspn(uri, "?#") : 0;
  return uri;
}

int rld_key_build(const rl_mw_key_spec *spec, const rl_mw_proxies *proxies,
                  struct evhttp_request *req, char *buf, size_t cap,
                  size_t *len, const char **missing) {
  struct evkeyvalq *in = evhttp_request_get_input_headers(req);
  char ip[RL_MW_IP_MAX];
  rl_mw_request r = {NULL, NULL, 0, find_header, in};
  if (needs_ip(spec)) {
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn != NULL &&
        rl_mw_client_ip(proxies, evhttp_connection_get_addr(conn),
                        evhttp_find_header(in, "X-Forwarded-For"),
                        ip) == RL_OK) {
      r.client_ip = ip;
    }
  }
  r.path = request_path(req, in, &r.path_len);
  return rl_mw_key_build(spec, &r, buf, cap, len, missing);
}
