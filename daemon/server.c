/*
 * server.c - N evhttp event loops, one per thread, one SO_REUSEPORT
 * listening socket each (the kernel spreads connections evenly; one shared
 * socket would let the first thread to wake accept a whole burst).
 *
 * The control thread talks to a worker only by writing to the worker's
 * eventfd; the worker then does everything itself in its own loop, so no
 * libevent or evhttp object is ever touched by two threads, and the worker
 * bases run without libevent's locks (EVENT_BASE_FLAG_NOLOCK) and with the
 * epoll changelist (fewer epoll_ctl calls per request).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "server.h"

#define RLD_EVHTTP_MAX_HEADERS                                                 \
  ((ev_ssize_t)128 * 1024) /* above max_header_bytes' max */
#define RLD_EVHTTP_MAX_BODY                                                    \
  ((ev_ssize_t)2 * 1024 * 1024) /* above max_body's max */
#define RLD_IDLE_TIMEOUT_S 60
#define RLD_DRAIN_QUIET_MS 50

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int open_socket(const struct addrinfo *ai, uint16_t port, char *err,
                       size_t errlen) {
  struct sockaddr_storage addr;
  memset(&addr, 0, sizeof addr);
  memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  if (addr.ss_family == AF_INET) {
    ((struct sockaddr_in *)&addr)->sin_port = htons(port);
  } else {
    ((struct sockaddr_in6 *)&addr)->sin6_port = htons(port);
  }
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      bind(fd, (struct sockaddr *)&addr, ai->ai_addrlen) != 0 ||
      listen(fd, 1024) != 0) {
    snprintf(err, errlen, "cannot listen: %s", strerror(errno));
    if (fd >= 0) {
      close(fd);
    }
    return -1;
  }
  return fd;
}

static uint16_t bound_port(int fd) {
  struct sockaddr_storage addr;
  memset(&addr, 0, sizeof addr);
  socklen_t len = sizeof addr;
  if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
    return 0;
  }
  return addr.ss_family == AF_INET
             ? ntohs(((struct sockaddr_in *)&addr)->sin_port)
             : ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
}

/* Opens n sockets on listen; the first fixes the port when it is 0. */
static int open_sockets(rld_daemon *d, const char *listen_addr, char *err,
                        size_t errlen) {
  char host[RLD_ADDR_MAX + 1];
  uint16_t port = 0;
  if (rld_split_host_port(listen_addr, strlen(listen_addr), host, sizeof host,
                          &port) != 0) {
    snprintf(err, errlen, "invalid listen address '%s'", listen_addr);
    return -1;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  struct addrinfo *ai = NULL;
  int gai = getaddrinfo(host[0] != '\0' ? host : NULL, "0", &hints, &ai);
  if (gai != 0) {
    snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(gai));
    return -1;
  }
  int rc = 0;
  for (size_t i = 0; i < d->n_workers && rc == 0; i++) {
    d->workers[i].fd = open_socket(ai, port, err, errlen);
    rc = d->workers[i].fd < 0 ? -1 : 0;
    if (rc == 0 && port == 0) {
      port = bound_port(d->workers[i].fd);
    }
  }
  freeaddrinfo(ai);
  d->port = port;
  return rc;
}

/* Exits the loop once nothing is in flight and it has been quiet for a
 * moment, or at the end of the grace period. Decisions still waiting on
 * Redis are always answered first: the library calls back by its timeout,
 * and the pending slots must outlive those callbacks. */
static void drain_check(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  rld_worker *w = arg;
  uint64_t now = mono_ms();
  if (!rld_mailbox_idle(&w->mailbox)) {
    return;
  }
  if (now >= w->drain_deadline_ms) {
    if (w->inflight > 0) {
      rld_log(RLD_LOG_WARN,
              "worker %zu: grace period over with %u replies "
              "unsent",
              w->id, w->inflight);
    }
    event_base_loopbreak(w->base);
  } else if (w->inflight == 0 &&
             now - w->last_request_ms >= RLD_DRAIN_QUIET_MS) {
    event_base_loopbreak(w->base);
  }
}

static void start_drain(rld_worker *w, uint64_t grace_ms) {
  static const struct timeval tick = {0, 5000};
  w->draining = 1;
  if (w->bound != NULL) {
    evhttp_del_accept_socket(w->http, w->bound); /* closes the socket */
    w->bound = NULL;
    w->fd = -1;
  }
  w->drain_deadline_ms = mono_ms() + grace_ms;
  w->last_request_ms = mono_ms();
  w->drain_timer = event_new(w->base, -1, EV_PERSIST, drain_check, w);
  if (w->drain_timer != NULL) {
    event_add(w->drain_timer, &tick);
  } else {
    event_base_loopbreak(w->base);
  }
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  rld_worker *w = arg;
  uint64_t n = 0;
  while (read(fd, &n, sizeof n) > 0) {
    /* drain: one wake-up covers every write so far */
  }
  w->snap = rld_published_acquire(&w->d->published, w->snap);
  if (atomic_load(&w->d->draining) && !w->draining) {
    start_drain(w, w->d->grace_ms);
  }
}

static void *worker_main(void *arg) {
  rld_worker *w = arg;
  event_base_dispatch(w->base);
  return NULL;
}

static int setup_worker(rld_daemon *d, rld_worker *w, char *err,
                        size_t errlen) {
  w->d = d;
  w->counters = &d->metrics.workers[w->id];
  w->snap = rld_published_acquire(&d->published, NULL);
  struct event_config *ec = event_config_new();
  if (ec != NULL) {
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK |
                                  EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
  }
  w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  w->http = w->base != NULL ? evhttp_new(w->base) : NULL;
  w->wake =
      w->base != NULL && w->wake_fd >= 0
          ? event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w)
          : NULL;
  if (w->http == NULL || w->wake == NULL || event_add(w->wake, NULL) != 0 ||
      rld_api_worker_init(w) != 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  evhttp_set_gencb(w->http, rld_api_handle, w);
  evhttp_set_allowed_methods(
      w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  evhttp_set_max_headers_size(w->http, RLD_EVHTTP_MAX_HEADERS);
  evhttp_set_max_body_size(w->http, RLD_EVHTTP_MAX_BODY);
  evhttp_set_timeout(w->http, RLD_IDLE_TIMEOUT_S);
  w->bound = evhttp_accept_socket_with_handle(w->http, w->fd);
  if (w->bound == NULL) {
    snprintf(err, errlen, "cannot accept on the listening socket");
    return -1;
  }
  return 0;
}

int rld_server_start(rld_daemon *d, const rld_config *cfg, char *err,
                     size_t errlen) {
  d->workers = calloc(d->n_workers, sizeof *d->workers);
  if (d->workers == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < d->n_workers; i++) {
    d->workers[i].fd = -1;
    d->workers[i].wake_fd = -1;
    d->workers[i].mailbox.fd = -1;
    d->workers[i].id = i;
  }
  if (open_sockets(d, cfg->server.listen, err, errlen) != 0) {
    return -1;
  }
  for (size_t i = 0; i < d->n_workers; i++) {
    if (setup_worker(d, &d->workers[i], err, errlen) != 0) {
      return -1;
    }
  }
  for (size_t i = 0; i < d->n_workers; i++) {
    if (pthread_create(&d->workers[i].thread, NULL, worker_main,
                       &d->workers[i]) != 0) {
      snprintf(err, errlen, "cannot start worker threads");
      d->n_started = i;
      return -1;
    }
  }
  d->n_started = d->n_workers;
  return 0;
}

void rld_server_wake(rld_daemon *d) {
  const uint64_t one = 1;
  for (size_t i = 0; i < d->n_started; i++) {
    if (write(d->workers[i].wake_fd, &one, sizeof one) != sizeof one) {
      rld_log(RLD_LOG_WARN, "cannot wake worker %zu", i);
    }
  }
}

static void free_worker(rld_worker *w) {
  if (w->drain_timer != NULL) {
    event_free(w->drain_timer);
  }
  if (w->wake != NULL) {
    event_free(w->wake);
  }
  rld_api_worker_close(w);
  if (w->http != NULL) {
    evhttp_free(w->http); /* closes the connections left, and the socket */
  } else if (w->fd >= 0) {
    close(w->fd);
  }
  if (w->base != NULL) {
    event_base_free(w->base);
  }
  if (w->wake_fd >= 0) {
    close(w->wake_fd);
  }
  rld_snapshot_unref(w->snap);
}

void rld_server_stop(rld_daemon *d, uint64_t grace_ms) {
  d->grace_ms = grace_ms;
  atomic_store(&d->draining, 1);
  rld_server_wake(d);
  for (size_t i = 0; i < d->n_started; i++) {
    pthread_join(d->workers[i].thread, NULL);
  }
  for (size_t i = 0; d->workers != NULL && i < d->n_workers; i++) {
    free_worker(&d->workers[i]);
  }
  free(d->workers);
  d->workers = NULL;
  d->n_started = 0;
}
