/*
 * fuzz_request.c - libFuzzer target for what ratelimitd reads from a
 * request: the JSON body reader, the query-string reader, and the
 * X-Forwarded-For walk. Each must return an answer (value or error) for
 * any bytes, without reading out of bounds, leaking or overflowing.
 *
 * Beyond "no crash", it checks the readers' contracts: on success the
 * strings lie inside the input or the scratch, within their maxima, and
 * the cost is in range.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_request.h"
#include "query.h"
#include "rl_mw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const char *p, size_t n, const char *base, size_t len) {
  return p == NULL || (p >= base && p + n <= base + len);
}

static void check(const rld_check_request *r, const char *in, size_t len,
                  const char *scratch, size_t cap) {
  if ((r->policy != NULL && r->policy_len > RL_POLICY_NAME_MAX) ||
      (r->key != NULL && r->key_len > RL_KEY_MAX) || r->cost < 1 ||
      (uint64_t)r->cost > RL_COST_MAX ||
      !(inside(r->key, r->key_len, in, len) ||
        inside(r->key, r->key_len, scratch, cap)) ||
      !(inside(r->policy, r->policy_len, in, len) ||
        inside(r->policy, r->policy_len, scratch, cap))) {
    abort();
  }
}

static void xff(const char *text) {
  static rl_mw_proxies all;
  if (all.n == 0) {
    rl_mw_proxies_add(&all, "0.0.0.0/0", 9, NULL, 0);
    rl_mw_proxies_add(&all, "::/0", 4, NULL, 0);
  }
  struct sockaddr_in peer;
  memset(&peer, 0, sizeof peer);
  peer.sin_family = AF_INET;
  peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char out[RL_MW_IP_MAX];
  if (rl_mw_client_ip(&all, (struct sockaddr *)&peer, text, out) != RL_OK ||
      memchr(out, '\0', sizeof out) == NULL) {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char scratch[RLD_JSON_SCRATCH];
  const char *in = (const char *)data;
  rld_check_request r;
  const char *msg = NULL;
  if (rld_json_request_parse(in, size, scratch, sizeof scratch, &r, &msg) ==
      RLD_JSON_OK) {
    check(&r, in, size, scratch, sizeof scratch);
  } else if (msg == NULL) {
    abort(); /* every error has a message */
  }
  if (rld_query_parse(in, size, scratch, sizeof scratch, &r, &msg) ==
      RLD_JSON_OK) {
    check(&r, in, size, scratch, sizeof scratch);
  }
  char *text = malloc(size + 1);
  if (text != NULL) {
    memcpy(text, data, size);
    text[size] = '\0';
    xff(text);
    free(text);
  }
  return 0;
}
