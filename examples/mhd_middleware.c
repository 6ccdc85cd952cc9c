/*
 * mhd_middleware.c - a libmicrohttpd server whose access handler is
 * wrapped by the rate-limit middleware (the seed's
 * RateLimitMiddleware(rl, config)(handler), in C): 3 requests per minute
 * per client IP on /api/hello; the 4th gets 429 with RateLimit headers
 * and Retry-After. Admitted responses carry the headers too
 * (rl_mhd_mw_add_headers).
 *
 *   build/examples/mhd_middleware [--port N] [--port-file FILE]
 *   curl -i localhost:8082/api/hello
 */
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ratelimiter.h>

#include "example_setup.h"
#include "rl_mhd.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static enum MHD_Result api_handler(void *cls, struct MHD_Connection *conn,
                                   const char *url, const char *method,
                                   const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls) {
  (void)cls;
  (void)url;
  (void)method;
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)con_cls;
  static const char body[] = "hello from the api\n";
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  rl_mhd_mw_add_headers(resp);
  enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return rc;
}

int main(int argc, char **argv) {
  example ex;
  if (example_init(&ex, argc, argv, 8082) != 0) {
    return 1;
  }
  unsigned port = ex.port;
  rl_mhd_mw *mw = NULL;
  if (rl_mhd_mw_new(ex.rl, &ex.mw_config, api_handler, NULL, &mw) != RL_OK) {
    return 1;
  }
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct MHD_Daemon *d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL,
      NULL, rl_mhd_mw_handle, mw, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END);
  if (d == NULL) {
    fprintf(stderr, "cannot listen on 127.0.0.1:%u\n", port);
    return 1;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  example_write_port(ex.port_file, info != NULL ? (unsigned)info->port : port);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  fprintf(stderr, "mhd_middleware: try curl -i 127.0.0.1:%u/api/hello\n",
          info != NULL ? (unsigned)info->port : port);
  while (!stop) {
    usleep(20000);
  }
  MHD_stop_daemon(d);
  rl_mhd_mw_free(mw);
  rl_free(ex.rl);
  return 0;
}
