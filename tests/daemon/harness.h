/*
 * harness.h - what the daemon's integration tests share: temporary
 * directories and files, starting ratelimitd (or any server binary that
 * writes its port to a file) on a free 127.0.0.1 port, and a small raw
 * HTTP/1.1 client that can also send what a polite client never would
 * (oversized headers, broken bodies).
 *
 * Everything is bounded in time: a test that hangs fails instead.
 */
#ifndef RLD_TEST_HARNESS_H
#define RLD_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H_MAX_RESPONSE (256 * 1024)

/* Fails the test with a message (prints, exits 1). */
void h_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
#define H_CHECK(cond)                                                          \
  do {                                                                         \
    if (!(cond)) {                                                             \
      h_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);            \
    }                                                                          \
  } while (0)
#define H_EXPECT(cond, ...)                                                    \
  do {                                                                         \
    if (!(cond)) {                                                             \
      h_fail(__VA_ARGS__);                                                     \
    }                                                                          \
  } while (0)

/* A fresh directory under $TMPDIR, removed by h_cleanup(). */
const char *h_tmpdir(void);
/* Writes text to dir/name atomically (temp file + rename); returns the
 * path (static storage per call site is not kept: copy it). */
void h_write_file(const char *path, const char *text);
char *h_path(const char *name); /* h_tmpdir()/name, malloc'd */

typedef struct h_proc {
  pid_t pid;
  uint16_t port;
} h_proc;

/* Kills pid (SIGKILL) if the test fails. */
void h_adopt(pid_t pid);

/* Starts argv[0] with argv, stderr to dir/<log>, and waits (5 s at most)
 * for port_file to appear. */
h_proc h_start(char *const argv[], const char *port_file, const char *log);
/* Sends sig and waits (timeout_ms) for the exit; returns the exit status
 * (128 + signal if killed), or -1 on timeout (then SIGKILLs). */
int h_stop(h_proc *p, int sig, int timeout_ms);
/* Starts ratelimitd (path from $RATELIMITD or argv of the test) with
 * config text written to a file in the tmpdir. */
h_proc h_start_daemon(const char *ratelimitd, const char *config_text);

typedef struct h_response {
  int status;
  char head[16384]; /* status line and headers */
  char *body;       /* into raw */
  size_t body_len;
  char raw[H_MAX_RESPONSE];
  size_t raw_len;
} h_response;

/* Connects to 127.0.0.1:port; -1 on failure. */
int h_connect(uint16_t port);
/* Sends raw bytes on a new connection, reads one response (until the
 * connection closes or Content-Length is satisfied). 0 or -1. */
int h_raw(uint16_t port, const char *request, size_t len, h_response *r);
/* A request with Connection: close; extra_headers is "" or lines ending
 * in \r\n. */
int h_http(uint16_t port, const char *method, const char *target,
           const char *extra_headers, const char *body, h_response *r);
/* The value of a response header (case-insensitive), into out; NULL if
 * absent. */
const char *h_header(const h_response *r, const char *name, char *out,
                     size_t cap);

/* Reads one response from an open keep-alive connection. 0 or -1. */
int h_read_response(int fd, h_response *r);

uint64_t h_now_ms(void);
void h_sleep_ms(unsigned ms);

/* Removes the tmpdir. */
void h_cleanup(void);

#endif /* RLD_TEST_HARNESS_H */
