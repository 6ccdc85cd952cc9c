/*
 * test_http_api.c - ratelimitd's HTTP API end to end: a real daemon on a
 * free loopback port, raw HTTP/1.1, every endpoint, the RateLimit headers,
 * key building and trusted proxies, shadow mode, and a table of bad inputs
 * that must each get a 4xx JSON error and leave the daemon healthy.
 *
 * usage: test_http_api PATH/TO/ratelimitd
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static const char *daemon_path;

static const char config[] =
    "server:\n"
    "  trusted_proxies: [127.0.0.1]\n"
    "  legacy_headers: true\n"
    "rate_limiter:\n"
    "  windows: [{max_requests: 1000, duration: 1m}]\n"
    "  policies:\n"
    "    - name: api\n"
    "      algorithm: sliding_counter\n"
    "      windows: [{max_requests: 3, duration: 1m}, "
    "{max_requests: 100, duration: 1h}]\n"
    "      key: [header:X-API-Key]\n"
    "    - name: byip\n"
    "      algorithm: sliding_log\n"
    "      windows: [{max_requests: 2, duration: 1h}]\n"
    "      key: ip\n"
    "    - name: shadowed\n"
    "      windows: [{max_requests: 1, duration: 1h}]\n"
    "      shadow: true\n";

static void expect_status(const h_response *r, int status, const char *what) {
  H_EXPECT(r->status == status, "%s: expected %d, got %d\n%s", what, status,
           r->status, r->raw);
}

static void expect_json_error(const h_response *r, int status, const char *code,
                              const char *what) {
  char ct[128];
  char want[96];
  expect_status(r, status, what);
  H_EXPECT(h_header(r, "Content-Type", ct, sizeof ct) != NULL &&
               strcmp(ct, "application/json") == 0,
           "%s: not JSON:\n%s", what, r->raw);
  snprintf(want, sizeof want, "{\"error\":\"%s\"", code);
  H_EXPECT(r->body != NULL && strncmp(r->body, want, strlen(want)) == 0,
           "%s: expected error %s:\n%s", what, code, r->raw);
}

static void post(uint16_t port, const char *body, h_response *r) {
  H_CHECK(h_http(port, "POST", "/v1/check", "", body, r) == 0);
}

static void test_allow_then_deny(uint16_t port, h_response *r) {
  char v[256];
  for (int i = 0; i < 3; i++) {
    post(port, "{\"policy\":\"api\",\"key\":\"user:1\"}", r);
    expect_status(r, 200, "allowed");
  }
  H_CHECK(strstr(r->body, "\"allowed\":true") != NULL);
  H_CHECK(strstr(r->body, "\"remaining\":0") != NULL);
  H_CHECK(strcmp(h_header(r, "RateLimit-Policy", v, sizeof v),
                 "\"api-1m\";q=3;w=60, \"api-1h\";q=100;w=3600") == 0);
  H_CHECK(strncmp(h_header(r, "RateLimit", v, sizeof v),
                  "\"api-1m\";r=0;t=", 15) == 0);
  H_CHECK(h_header(r, "Retry-After", v, sizeof v) == NULL);
  H_CHECK(strcmp(h_header(r, "X-RateLimit-Limit", v, sizeof v), "3") == 0);
  post(port, "{\"policy\":\"api\",\"key\":\"user:1\"}", r);
  expect_status(r, 429, "denied");
  H_CHECK(strstr(r->body, "\"allowed\":false") != NULL);
  H_EXPECT(h_header(r, "Retry-After", v, sizeof v) != NULL && atoi(v) >= 1 &&
               atoi(v) <= 120,
           "Retry-After: %s\n%s", v, r->raw);
  H_CHECK(h_header(r, "RateLimit", v, sizeof v) != NULL);
  /* Another key has its own budget; cost counts. */
  post(port, "{\"policy\":\"api\",\"key\":\"user:2\",\"cost\":3}", r);
  expect_status(r, 200, "cost 3");
  post(port, "{\"key\":\"user:2\",\"policy\":\"api\",\"cost\":1}", r);
  expect_status(r, 429, "cost spent");
  /* A request that can never pass: no Retry-After, retry_after_ms null. */
  post(port, "{\"policy\":\"api\",\"key\":\"user:3\",\"cost\":4}", r);
  expect_status(r, 429, "cost above limit");
  H_CHECK(h_header(r, "Retry-After", v, sizeof v) == NULL);
  H_CHECK(strstr(r->body, "\"retry_after_ms\":null") != NULL);
  printf("ok: allow, deny, headers, cost\n");
}

static void test_get_and_auth(uint16_t port, h_response *r) {
  char v[128];
  H_CHECK(h_http(port, "GET", "/v1/check?policy=api&key=g%3A1&cost=3", "", NULL,
                 r) == 0);
  expect_status(r, 200, "GET form");
  H_CHECK(h_http(port, "GET", "/v1/check?policy=api&key=g%3A1", "", NULL, r) ==
          0);
  expect_status(r, 429, "GET form denied");
  /* auth_request form: key from the header, 403 on denial. */
  for (int i = 0; i < 3; i++) {
    H_CHECK(h_http(port, "GET", "/v1/auth?policy=api", "X-API-Key: k-auth\r\n",
                   NULL, r) == 0);
    expect_status(r, 200, "auth allowed");
  }
  H_CHECK(h_http(port, "POST", "/v1/auth?policy=api", "X-API-Key: k-auth\r\n",
                 NULL, r) == 0);
  expect_status(r, 403, "auth denied");
  H_CHECK(h_header(r, "Retry-After", v, sizeof v) != NULL);
  H_CHECK(h_http(port, "GET", "/v1/auth?policy=api", "", NULL, r) == 0);
  expect_json_error(r, 400, "key_empty", "auth without the key header");
  H_CHECK(strstr(r->body, "X-API-Key") != NULL);
  printf("ok: GET form and auth_request form\n");
}

/* With 127.0.0.1 trusted, X-Forwarded-For names the client. */
static void test_forwarded_for(uint16_t port, h_response *r) {
  for (int i = 0; i < 2; i++) {
    H_CHECK(h_http(port, "POST", "/v1/check",
                   "X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n",
                   "{\"policy\":\"byip\"}", r) == 0);
    expect_status(r, 200, "xff client 1");
  }
  H_CHECK(h_http(port, "POST", "/v1/check", "X-Forwarded-For: 203.0.113.7\r\n",
                 "{\"policy\":\"byip\"}", r) == 0);
  expect_status(r, 429, "xff client 1 spent");
  H_CHECK(h_http(port, "POST", "/v1/check", "X-Forwarded-For: 203.0.113.8\r\n",
                 "{\"policy\":\"byip\"}", r) == 0);
  expect_status(r, 200, "xff client 2");
  printf("ok: X-Forwarded-For from a trusted proxy\n");
}

static void test_shadow(uint16_t port, h_response *r) {
  post(port, "{\"policy\":\"shadowed\",\"key\":\"s\"}", r);
  expect_status(r, 200, "shadow first");
  post(port, "{\"policy\":\"shadowed\",\"key\":\"s\"}", r);
  expect_status(r, 200, "shadow over the limit");
  H_CHECK(strstr(r->body, "\"shadow_denied\":true") != NULL);
  printf("ok: shadow mode never denies\n");
}

static void test_probes(uint16_t port, h_response *r) {
  H_CHECK(h_http(port, "GET", "/health", "", NULL, r) == 0);
  expect_status(r, 200, "health");
  H_CHECK(h_http(port, "GET", "/ready", "", NULL, r) == 0);
  expect_status(r, 200, "ready");
  H_CHECK(strstr(r->body, "\"config_version\":1") != NULL);
  H_CHECK(h_http(port, "GET", "/metrics", "", NULL, r) == 0);
  expect_status(r, 200, "metrics");
  H_CHECK(strstr(r->body, "ratelimitd_decisions_total{policy=\"api\","
                          "result=\"denied\"}") != NULL);
  H_CHECK(strstr(r->body, "ratelimitd_decisions_total{policy=\"shadowed\","
                          "result=\"shadow_denied\"} 1") != NULL);
  H_CHECK(strstr(r->body, "ratelimitd_config_info{version=\"1\"") != NULL);
  /* Client keys never become labels. */
  H_CHECK(strstr(r->body, "user:1") == NULL);
  H_CHECK(strstr(r->body, "203.0.113") == NULL);
  H_CHECK(strstr(r->body, "nosuchpolicy") == NULL);
  printf("ok: /health, /ready, /metrics\n");
}

typedef struct bad {
  const char *what;
  const char *method;
  const char *target;
  const char *body;
  int status;
  const char *code;
} bad;

static const bad bad_inputs[] = {
    {"malformed JSON", "POST", "/v1/check", "{\"policy\":", 400,
     "invalid_json"},
    {"not an object", "POST", "/v1/check", "[1,2]", 400, "invalid_json"},
    {"empty body", "POST", "/v1/check", "", 400, "invalid_json"},
    {"trailing data", "POST", "/v1/check", "{} {}", 400, "invalid_json"},
    {"bad escape", "POST", "/v1/check", "{\"key\":\"\\q\"}", 400,
     "invalid_json"},
    {"invalid UTF-8", "POST", "/v1/check", "{\"key\":\"\xff\"}", 400,
     "invalid_json"},
    {"lone surrogate", "POST", "/v1/check", "{\"key\":\"\\ud800\"}", 400,
     "invalid_json"},
    {"cost 0", "POST", "/v1/check", "{\"key\":\"a\",\"cost\":0}", 400,
     "invalid_field"},
    {"cost negative", "POST", "/v1/check", "{\"key\":\"a\",\"cost\":-1}", 400,
     "invalid_field"},
    {"cost fraction", "POST", "/v1/check", "{\"key\":\"a\",\"cost\":1.5}", 400,
     "invalid_field"},
    {"cost string", "POST", "/v1/check", "{\"key\":\"a\",\"cost\":\"2\"}", 400,
     "invalid_field"},
    {"cost huge", "POST", "/v1/check",
     "{\"key\":\"a\",\"cost\":99999999999999999999999}", 400, "invalid_field"},
    {"key number", "POST", "/v1/check", "{\"key\":5}", 400, "invalid_field"},
    {"key empty", "POST", "/v1/check", "{\"key\":\"\"}", 400, "key_empty"},
    {"field twice", "POST", "/v1/check", "{\"key\":\"a\",\"key\":\"b\"}", 400,
     "invalid_field"},
    {"unknown policy", "POST", "/v1/check",
     "{\"policy\":\"nosuchpolicy\",\"key\":\"a\"}", 400, "policy_unknown"},
    {"policy too long", "POST", "/v1/check",
     "{\"policy\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaa\",\"key\":\"a\"}",
     400, "invalid_field"},
    {"wrong method", "PUT", "/v1/check", "{}", 405, "method_not_allowed"},
    {"wrong method health", "POST", "/health", "", 405, "method_not_allowed"},
    {"unknown path", "GET", "/v2/nothing", NULL, 404, "not_found"},
    {"bad query escape", "GET", "/v1/check?key=%zz", NULL, 400, "invalid_json"},
    {"query cost", "GET", "/v1/check?key=a&cost=abc", NULL, 400,
     "invalid_field"},
};

static void test_bad_inputs(uint16_t port, h_response *r) {
  for (size_t i = 0; i < sizeof bad_inputs / sizeof bad_inputs[0]; i++) {
    const bad *b = &bad_inputs[i];
    H_CHECK(h_http(port, b->method, b->target, "", b->body, r) == 0);
    expect_json_error(r, b->status, b->code, b->what);
  }
  printf("ok: %zu malformed requests answered with 4xx JSON\n",
         sizeof bad_inputs / sizeof bad_inputs[0]);
}

static char *repeat(char c, size_t n, const char *prefix, const char *suffix) {
  size_t pl = strlen(prefix);
  size_t sl = strlen(suffix);
  char *s = malloc(pl + n + sl + 1);
  H_CHECK(s != NULL);
  memcpy(s, prefix, pl);
  memset(s + pl, c, n);
  memcpy(s + pl + n, suffix, sl + 1);
  return s;
}

/* An oversized request: n copies of c between prefix and suffix, sent as
 * the body of POST /v1/check, as a header line of it, or as the target of
 * a GET. */
typedef enum { AS_BODY, AS_HEADER, AS_TARGET } placement;

typedef struct oversized {
  const char *what;
  char c;
  size_t n;
  const char *prefix, *suffix;
  placement as;
  int status;
  const char *code;
} oversized;

static const oversized oversized_inputs[] = {
    {"key above 4096 bytes", 'k', 5000, "{\"key\":\"", "\"}", AS_BODY, 400,
     "key_too_long"},
    {"key above max_key_len", 'k', 2000, "{\"key\":\"", "\"}", AS_BODY, 400,
     "key_too_long"},
    {"200 KB body", ' ', 200000, "{\"key\":\"a\"", "}", AS_BODY, 413,
     "body_too_large"},
    {"deep nesting, large", '[', 100000, "{\"x\":", "", AS_BODY, 413,
     "body_too_large"},
    {"deep nesting", '[', 1000, "{\"x\":", "", AS_BODY, 400, "invalid_json"},
    {"20 KB header", 'h', 20000, "X-Big: ", "\r\n", AS_HEADER, 431,
     "headers_too_large"},
    {"key in query above 4096", 'q', 6000, "/v1/check?key=", "", AS_TARGET, 400,
     "key_too_long"},
};

static void test_oversized(uint16_t port, h_response *r) {
  for (size_t i = 0; i < sizeof oversized_inputs / sizeof oversized_inputs[0];
       i++) {
    const oversized *o = &oversized_inputs[i];
    char *big = repeat(o->c, o->n, o->prefix, o->suffix);
    if (o->as == AS_BODY) {
      post(port, big, r);
    } else if (o->as == AS_HEADER) {
      H_CHECK(h_http(port, "POST", "/v1/check", big, "{\"key\":\"a\"}", r) ==
              0);
    } else {
      H_CHECK(h_http(port, "GET", big, "", NULL, r) == 0);
    }
    expect_json_error(r, o->status, o->code, o->what);
    free(big);
  }
  printf("ok: oversized keys, bodies, headers\n");
}

/* Raw garbage on the socket: the daemon answers 4xx or closes; it must
 * stay up either way. */
static void test_garbage(uint16_t port, h_response *r) {
  static const char *const garbage[] = {
      "\x00\x01\x02\x03\r\n\r\n",
      "GET\r\n\r\n",
      "POST /v1/check HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
      "POST /v1/check HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
      "POST /v1/check HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET /health HTTP/9.9\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
    if (h_raw(port, garbage[i], strlen(garbage[i]) + (i == 0 ? 8 : 0), r) ==
        0) {
      H_EXPECT(r->status >= 400 && r->status < 500,
               "garbage %zu: status %d\n%s", i, r->status, r->raw);
    }
  }
  H_CHECK(h_http(port, "GET", "/health", "", NULL, r) == 0);
  expect_status(r, 200, "alive after garbage");
  printf("ok: raw garbage does not hurt the daemon\n");
}

static void test_untrusted_proxy(h_response *r) {
  h_proc p = h_start_daemon(daemon_path,
                            "rate_limiter:\n"
                            "  windows: [{max_requests: 1, duration: 1h}]\n"
                            "  key: ip\n");
  H_CHECK(h_http(p.port, "POST", "/v1/check",
                 "X-Forwarded-For: 198.51.100.1\r\n", "{}", r) == 0);
  expect_status(r, 200, "untrusted 1");
  H_CHECK(h_http(p.port, "POST", "/v1/check",
                 "X-Forwarded-For: 198.51.100.2\r\n", "{}", r) == 0);
  expect_status(r, 429, "X-Forwarded-For ignored from an untrusted peer");
  H_CHECK(h_stop(&p, SIGTERM, 10000) == 0);
  printf("ok: X-Forwarded-For ignored from untrusted peers\n");
}

/* Runs ratelimitd --check-config on text; returns the exit status and the
 * output (stdout and stderr) in out. */
static int check_config(const char *text, char *out, size_t cap) {
  char *path = h_path("check.yaml");
  char cmd[2048];
  h_write_file(path, text);
  snprintf(cmd, sizeof cmd, "'%s' --check-config '%s' 2>&1", daemon_path, path);
  free(path);
  FILE *p = popen(cmd, "r");
  H_CHECK(p != NULL);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_check_config(void) {
  static char out[8192];
  H_EXPECT(check_config(config, out, sizeof out) == 0, "%s", out);
  H_CHECK(strstr(out, ": ok, 4 policies") != NULL);
  H_CHECK(strstr(out, "RateLimit-Policy: \"api-1m\";q=3;w=60") != NULL);
  H_EXPECT(check_config("rate_limiter:\n  windows: [{max_requests: 1, "
                        "duration: 1m}]\n  redis:\n    addrs: "
                        "[\"127.0.0.1:6379\"]\n",
                        out, sizeof out) == 0,
           "%s", out); /* checked, not connected */
  H_EXPECT(check_config("rate_limiter:\n  windows: [{max_requests: 1, "
                        "duration: 1m}]\n  redis:\n    addrs: "
                        "[\"127.0.0.1:0\"]\n",
                        out, sizeof out) == 1,
           "%s", out);
  H_CHECK(check_config("rate_limiter:\n  windows: 5\n", out, sizeof out) == 1);
  H_EXPECT(strstr(out, "check.yaml:2:12: windows must be a list") != NULL, "%s",
           out);
  printf("ok: --check-config\n");
}

int main(int argc, char **argv) {
  H_EXPECT(argc >= 2, "usage: %s PATH/TO/ratelimitd", argv[0]);
  daemon_path = argv[1];
  static h_response r;
  h_proc p = h_start_daemon(daemon_path, config);
  test_allow_then_deny(p.port, &r);
  test_get_and_auth(p.port, &r);
  test_forwarded_for(p.port, &r);
  test_shadow(p.port, &r);
  test_bad_inputs(p.port, &r);
  test_oversized(p.port, &r);
  test_garbage(p.port, &r);
  test_probes(p.port, &r);
  int rc = h_stop(&p, SIGTERM, 10000);
  H_EXPECT(rc == 0, "ratelimitd exit status %d (see %s)", rc, h_tmpdir());
  test_untrusted_proxy(&r);
  test_check_config();
  h_cleanup();
  printf("test_http_api: all passed\n");
  return 0;
}
