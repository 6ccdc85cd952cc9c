/*
 * evhttp_middleware.c - an evhttp server whose /api/hello handler is
 * wrapped by the rate-limit middleware: the C form of the seed's
 *
 *   mux.Handle("/api/", ratelimiter.RateLimitMiddleware(rl,
 * config)(apiHandler))
 *
 * 3 requests per minute per client IP; the 4th gets 429 with RateLimit
 * headers and Retry-After.
 *
 *   build/examples/evhttp_middleware [--port N] [--port-file FILE]
 *   curl -i localhost:8081/api/hello
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>

#include <ratelimiter.h>

#include "example_setup.h"
#include "rl_evhttp.h"

static void api_handler(struct evhttp_request *req, void *arg) {
  (void)arg;
  evbuffer_add_printf(evhttp_request_get_output_buffer(req),
                      "hello from the api\n");
  evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *base) {
  (void)sig;
  (void)what;
  event_base_loopbreak(base);
}

/* The port s listens on (0 if unknown). */
static unsigned bound_port(struct evhttp_bound_socket *s) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss,
                  &len) != 0) {
    return 0;
  }
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int main(int argc, char **argv) {
  example ex;
  if (example_init(&ex, argc, argv, 8081) != 0) {
    return 1;
  }
  unsigned port = ex.port;
  rl_evhttp_mw *mw = NULL;
  if (rl_evhttp_mw_new(ex.rl, &ex.mw_config, api_handler, NULL, &mw) != RL_OK) {
    return 1;
  }
  struct event_base *base = event_base_new();
  struct evhttp *http = evhttp_new(base);
  evhttp_set_cb(http, "/api/hello", rl_evhttp_mw_handle, mw);
  struct evhttp_bound_socket *s =
      evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port);
  if (s == NULL) {
    fprintf(stderr, "cannot listen on 127.0.0.1:%u\n", port);
    return 1;
  }
  unsigned bound = bound_port(s);
  if (bound != 0) {
    example_write_port(ex.port_file, bound);
  }
  struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
  struct event *intr = evsignal_new(base, SIGINT, on_signal, base);
  event_add(term, NULL);
  event_add(intr, NULL);
  fprintf(stderr, "evhttp_middleware: try curl -i 127.0.0.1:%u/api/hello\n",
          port);
  event_base_dispatch(base);
  event_free(term);
  event_free(intr);
  evhttp_free(http);
  event_base_free(base);
  rl_evhttp_mw_free(mw);
  rl_free(ex.rl);
  return 0;
}
