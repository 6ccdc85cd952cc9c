/*
 * acc_check.c - the offline check of logged decisions, INFO commandstats
 * and the Zipf distribution (acc_check.h).
 */
#include "accuracy/acc_check.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "model/oracle.h"

int64_t acc_real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int by_key_then_order(const void *a, const void *b) {
  const acc_rec *x = a, *y = b;
  if (x->policy != y->policy) {
    return x->policy - y->policy;
  }
  if (x->key != y->key) {
    return x->key - y->key;
  }
  if (x->now != y->now) {
    return x->now < y->now ? -1 : 1;
  }
  if (x->allowed != y->allowed) {
    return y->allowed - x->allowed;
  }
  return x->remaining > y->remaining ? -1 : (x->remaining < y->remaining);
}

void acc_check(acc_rec *r, size_t n, const rl_policy *pols, const int *group,
               acc_verdict *v, int64_t half_ms) {
  qsort(r, n, sizeof *r, by_key_then_order);
  for (size_t i = 0; i < n;) {
    om_key k;
    const acc_rec *first = &r[i];
    om_key_init(&k, &pols[first->policy]);
    for (; i < n && r[i].policy == first->policy && r[i].key == first->key;
         i++) {
      acc_verdict *pv = &v[group[r[i].policy]];
      om_result exact, spec;
      om_key_decide(&k, r[i].now, 1, &exact, &spec);
      pv->decisions++;
      pv->late_decisions += r[i].now >= half_ms;
      pv->admitted += r[i].allowed;
      pv->local += r[i].source != RL_SOURCE_REDIS;
      if (r[i].allowed && !exact.admit) {
        pv->over++;
      } else if (!r[i].allowed && exact.admit) {
        pv->false_denials++;
        pv->late_false_denials += r[i].now >= half_ms;
      }
      if (r[i].allowed) {
        om_key_commit(&k, r[i].now, 1);
      }
    }
    om_key_free(&k);
  }
}

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

void acc_zipf(double *cdf, int n, double s) {
  double sum = 0;
  for (int k = 0; k < n; k++) {
    sum += 1.0 / pow(k + 1, s);
    cdf[k] = sum;
  }
  for (int k = 0; k < n; k++) {
    cdf[k] /= sum;
  }
}

int acc_zipf_pick(const double *cdf, int n, double u) {
  int k = 0;
  while (k + 1 < n && cdf[k] < u) {
    k++;
  }
  return k;
}
