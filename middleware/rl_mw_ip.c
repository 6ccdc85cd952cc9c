/*
 * rl_mw_ip.c - the client IP of a request, believing X-Forwarded-For only
 * when the TCP peer is a configured trusted proxy.
 *
 * The walk goes right to left: every proxy appends the address it received
 * the request from, so the rightmost entries were written by our own
 * proxies and the first entry that is not one of them is the client as our
 * infrastructure saw it. Entries further left were written by the client
 * and are never believed. No allocation: the header is scanned in place.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "rl_mw.h"

static int fail(char *err, size_t errlen, const char *what, const char *text,
                size_t len) {
  if (err != NULL && errlen > 0) {
    snprintf(err, errlen, "%s: '%.*s'", what, (int)(len > 64 ? 64 : len), text);
  }
  return RL_ERR_CONFIG_INVALID;
}

/* Parses an IPv4 or IPv6 address (len bytes) into family/addr. */
static int parse_ip(const char *text, size_t len, int *family,
                    uint8_t addr[16]) {
  char tmp[RL_MW_IP_MAX];
  if (len == 0 || len >= sizeof tmp) {
    return -1;
  }
  memcpy(tmp, text, len);
  tmp[len] = '\0';
  if (inet_pton(AF_INET, tmp, addr) == 1) {
    *family = AF_INET;
    return 0;
  }
  if (inet_pton(AF_INET6, tmp, addr) == 1) {
    *family = AF_INET6;
    return 0;
  }
  return -1;
}

static unsigned parse_prefix(const char *text, size_t len, unsigned max) {
  unsigned v = 0;
  if (len == 0 || len > 3) {
    return max + 1;
  }
  for (size_t i = 0; i < len; i++) {
    if (text[i] < '0' || text[i] > '9') {
      return max + 1;
    }
    v = v * 10 + (unsigned)(text[i] - '0');
  }
  return v;
}

int rl_mw_proxies_add(rl_mw_proxies *proxies, const char *text, size_t len,
                      char *err, size_t errlen) {
  if (proxies->n >= RL_MW_PROXIES_MAX) {
    return fail(err, errlen, "too many trusted proxies", text, len);
  }
  const char *slash = memchr(text, '/', len);
  size_t ip_len = slash != NULL ? (size_t)(slash - text) : len;
  rl_mw_cidr net;
  memset(&net, 0, sizeof net);
  if (parse_ip(text, ip_len, &net.family, net.addr) != 0) {
    return fail(err, errlen, "not an IP address or network", text, len);
  }
  unsigned max = net.family == AF_INET ? 32 : 128;
  net.prefix_len = max;
  if (slash != NULL) {
    net.prefix_len = parse_prefix(slash + 1, len - ip_len - 1, max);
    if (net.prefix_len > max) {
      return fail(err, errlen, "invalid prefix length", text, len);
    }
  }
  proxies->nets[proxies->n++] = net;
  return RL_OK;
}

static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits) {
  size_t bytes = bits / 8;
  if (memcmp(a, b, bytes) != 0) {
    return 0;
  }
  unsigned rest = bits % 8;
  if (rest == 0) {
    return 1;
  }
  uint8_t mask = (uint8_t)(0xffu << (8 - rest));
  return (a[bytes] & mask) == (b[bytes] & mask);
}

static int contains(const rl_mw_proxies *p, int family, const uint8_t *addr) {
  for (size_t i = 0; p != NULL && i < p->n; i++) {
    if (p->nets[i].family == family &&
        prefix_equal(p->nets[i].addr, addr, p->nets[i].prefix_len)) {
      return 1;
    }
  }
  return 0;
}

/* Family and bytes of a socket address; v4-mapped IPv6 becomes IPv4. */
static int sockaddr_ip(const struct sockaddr *sa, int *family,
                       uint8_t addr[16]) {
  if (sa == NULL) {
    return -1;
  }
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    memcpy(addr, &in->sin_addr, 4);
    *family = AF_INET;
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 =
        (const struct sockaddr_in6 *)(const void *)sa;
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      memcpy(addr, in6->sin6_addr.s6_addr + 12, 4);
      *family = AF_INET;
    } else {
      memcpy(addr, in6->sin6_addr.s6_addr, 16);
      *family = AF_INET6;
    }
    return 0;
  }
  return -1;
}

int rl_mw_proxies_contains(const rl_mw_proxies *proxies,
                           const struct sockaddr *addr) {
  int family = 0;
  uint8_t bytes[16];
  return sockaddr_ip(addr, &family, bytes) == 0 &&
         contains(proxies, family, bytes);
}

static int is_space(char c) {
  return c == ' ' || c == '\t';
}

/* Walks xff from the right; updates family/addr to the client. */
static void walk_xff(const rl_mw_proxies *p, const char *xff, int *family,
                     uint8_t addr[16]) {
  size_t end = strlen(xff);
  while (end > 0 && contains(p, *family, addr)) {
    size_t start = end;
    while (start > 0 && xff[start - 1] != ',') {
      start--;
    }
    size_t a = start;
    size_t b = end;
    while (a < b && is_space(xff[a])) {
      a++;
    }
    while (b > a && is_space(xff[b - 1])) {
      b--;
    }
    int f = 0;
    uint8_t next[16] = {0};
    if (parse_ip(xff + a, b - a, &f, next) != 0) {
      return; /* not an address: the last trusted hop is the client */
    }
    *family = f;
    memcpy(addr, next, 16);
    end = start > 0 ? start - 1 : 0;
  }
}

int rl_mw_client_ip(const rl_mw_proxies *proxies, const struct sockaddr *peer,
                    const char *xff, char out[RL_MW_IP_MAX]) {
  int family = 0;
  uint8_t addr[16];
  if (sockaddr_ip(peer, &family, addr) != 0) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  if (xff != NULL) {
    walk_xff(proxies, xff, &family, addr);
  }
  if (inet_ntop(family, addr, out, RL_MW_IP_MAX) == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  return RL_OK;
}
