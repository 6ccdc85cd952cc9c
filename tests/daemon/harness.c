/*
 * harness.c - process control and a raw HTTP client for the integration
 * tests. See harness.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static char tmpdir[512];
static pid_t children[16]; /* killed by h_fail, so no test leaves one */

void h_adopt(pid_t pid) {
  for (size_t i = 0; i < sizeof children / sizeof children[0]; i++) {
    if (children[i] == 0) {
      children[i] = pid;
      return;
    }
  }
}

static void forget(pid_t pid) {
  for (size_t i = 0; i < sizeof children / sizeof children[0]; i++) {
    if (children[i] == pid) {
      children[i] = 0;
    }
  }
}

void h_fail(const char *fmt, ...) {
  for (size_t i = 0; i < sizeof children / sizeof children[0]; i++) {
    if (children[i] > 0) {
      kill(children[i], SIGKILL);
      waitpid(children[i], NULL, 0);
    }
  }
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  exit(1);
}

uint64_t h_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void h_sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

const char *h_tmpdir(void) {
  if (tmpdir[0] == '\0') {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/rld-test-XXXXXX",
             base != NULL ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
      h_fail("mkdtemp: %s", strerror(errno));
    }
  }
  return tmpdir;
}

char *h_path(const char *name) {
  size_t n = strlen(h_tmpdir()) + strlen(name) + 2;
  char *p = malloc(n);
  if (p == NULL) {
    h_fail("out of memory");
  }
  snprintf(p, n, "%s/%s", h_tmpdir(), name);
  return p;
}

void h_write_file(const char *path, const char *text) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
  FILE *f = fopen(tmp, "w");
  if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 ||
      rename(tmp, path) != 0) {
    h_fail("cannot write %s: %s", path, strerror(errno));
  }
}

void h_cleanup(void) {
  if (tmpdir[0] != '\0') {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
      fprintf(stderr, "cannot remove %s\n", tmpdir);
    }
    tmpdir[0] = '\0';
  }
}

static uint16_t read_port(const char *port_file) {
  FILE *f = fopen(port_file, "r");
  unsigned port = 0;
  if (f == NULL) {
    return 0;
  }
  if (fscanf(f, "%u", &port) != 1) {
    port = 0;
  }
  fclose(f);
  return (uint16_t)port;
}

h_proc h_start(char *const argv[], const char *port_file, const char *log) {
  h_proc p = {0, 0};
  unlink(port_file);
  char *log_path = h_path(log);
  p.pid = fork();
  if (p.pid == 0) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
    }
    execv(argv[0], argv);
    _exit(127);
  }
  free(log_path);
  h_adopt(p.pid);
  uint64_t deadline = h_now_ms() + 10000;
  while (h_now_ms() < deadline) {
    p.port = read_port(port_file);
    int st = 0;
    if (p.port != 0) {
      return p;
    }
    if (waitpid(p.pid, &st, WNOHANG) == p.pid) {
      h_fail("%s exited before listening (see %s/%s)", argv[0], h_tmpdir(),
             log);
    }
    h_sleep_ms(10);
  }
  kill(p.pid, SIGKILL);
  h_fail("%s did not start within 10 s", argv[0]);
}

int h_stop(h_proc *p, int sig, int timeout_ms) {
  if (p->pid <= 0) {
    return -1;
  }
  kill(p->pid, sig);
  uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
  int st = 0;
  while (h_now_ms() < deadline) {
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
      forget(p->pid);
      p->pid = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    h_sleep_ms(5);
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, &st, 0);
  forget(p->pid);
  p->pid = 0;
  return -1;
}

h_proc h_start_daemon(const char *ratelimitd, const char *config_text) {
  char *cfg = h_path("ratelimiter.yaml");
  char *port = h_path("port");
  h_write_file(cfg, config_text);
  char *argv[] = {(char *)ratelimitd, "--config",    cfg,  "--listen",
                  "127.0.0.1:0",      "--port-file", port, NULL};
  h_proc p = h_start(argv, port, "ratelimitd.log");
  free(cfg);
  free(port);
  return p;
}

int h_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    if (fd >= 0) {
      close(fd);
    }
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static int send_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n <= 0) {
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Content-Length of the head, or -1. */
static long content_length(const char *head) {
  const char *p = head;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, "Content-Length:", 15) == 0) {
      return strtol(p + 15, NULL, 10);
    }
  }
  return -1;
}

/* Splits raw into head and body once the head is complete. */
static int parse_head(h_response *r) {
  char *end = memmem(r->raw, r->raw_len, "\r\n\r\n", 4);
  if (end == NULL) {
    return 0;
  }
  size_t head_len = (size_t)(end - r->raw);
  if (head_len >= sizeof r->head) {
    head_len = sizeof r->head - 1;
  }
  memcpy(r->head, r->raw, head_len);
  r->head[head_len] = '\0';
  r->body = end + 4;
  r->body_len = r->raw_len - (size_t)(r->body - r->raw);
  r->status = 0;
  sscanf(r->head, "HTTP/1.%*d %d", &r->status);
  return 1;
}

int h_read_response(int fd, h_response *r) {
  r->raw_len = 0;
  r->status = 0;
  r->body = NULL;
  r->body_len = 0;
  uint64_t deadline = h_now_ms() + 10000;
  while (r->raw_len < sizeof r->raw - 1 && h_now_ms() < deadline) {
    if (parse_head(r)) {
      long cl = content_length(r->head);
      if (cl >= 0 && r->body_len >= (size_t)cl) {
        r->body_len = (size_t)cl;
        break;
      }
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 100) <= 0) {
      continue;
    }
    ssize_t n =
        recv(fd, r->raw + r->raw_len, sizeof r->raw - 1 - r->raw_len, 0);
    if (n <= 0) {
      break;
    }
    r->raw_len += (size_t)n;
  }
  r->raw[r->raw_len] = '\0';
  return parse_head(r) ? 0 : -1;
}

int h_raw(uint16_t port, const char *request, size_t len, h_response *r) {
  int fd = h_connect(port);
  if (fd < 0) {
    return -1;
  }
  int rc = send_all(fd, request, len) == 0 ? h_read_response(fd, r) : -1;
  if (rc != 0 && r->raw_len == 0) {
    /* The server may have answered and closed before reading it all. */
    rc = h_read_response(fd, r);
  }
  close(fd);
  return rc;
}

int h_http(uint16_t port, const char *method, const char *target,
           const char *extra_headers, const char *body, h_response *r) {
  size_t blen = body != NULL ? strlen(body) : 0;
  size_t cap = strlen(target) + strlen(extra_headers) + blen + 256;
  char *req = malloc(cap);
  if (req == NULL) {
    return -1;
  }
  int n = snprintf(req, cap,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   "%s%s%zu\r\n\r\n%s",
                   method, target, extra_headers,
                   body != NULL ? "Content-Length: " : "Content-Length: ", blen,
                   body != NULL ? body : "");
  int rc = h_raw(port, req, (size_t)n, r);
  free(req);
  return rc;
}

const char *h_header(const h_response *r, const char *name, char *out,
                     size_t cap) {
  size_t n = strlen(name);
  const char *p = r->head;
  while ((p = strchr(p, '\n')) != NULL) {
    p++;
    if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      while (*v == ' ') {
        v++;
      }
      size_t len = strcspn(v, "\r\n");
      if (len >= cap) {
        len = cap - 1;
      }
      memcpy(out, v, len);
      out[len] = '\0';
      return out;
    }
  }
  return NULL;
}
