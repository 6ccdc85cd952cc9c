/*
 * acc_commandstats.c - Redis commands run so far, from INFO commandstats on
 * a plain connection (acc_check.h): the accuracy runs and bench_cache
 * count the scripts the limiters sent with it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accuracy/acc_check.h"

static long long stat_calls(const char *info, const char *name) {
  char pat[64];
  size_t len = (size_t)snprintf(pat, sizeof pat, "cmdstat_%s:calls=", name);
  const char *p = strstr(info, pat);
  return p != NULL ? atoll(p + len) : 0;
}

long long acc_script_calls(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    return -1;
  }
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const char cmd[] = "*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n";
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      write(fd, cmd, sizeof cmd - 1) != (ssize_t)(sizeof cmd - 1)) {
    close(fd);
    return -1;
  }
  static char buf[65536];
  size_t n = 0;
  long want = -1; /* bulk length + header, once the header is in */
  while (n < sizeof buf - 1) {
    ssize_t got = read(fd, buf + n, sizeof buf - 1 - n);
    if (got <= 0) {
      break;
    }
    n += (size_t)got;
    buf[n] = '\0';
    char *eol = strstr(buf, "\r\n");
    if (want < 0 && eol != NULL) {
      want = atol(buf + 1) + (long)(eol - buf) + 4;
    }
    if (want >= 0 && (long)n >= want) {
      break;
    }
  }
  close(fd);
  buf[n] = '\0';
  if (want < 0) {
    return -1;
  }
  return stat_calls(buf, "evalsha") + stat_calls(buf, "eval");
}
