/*
 * test_daemon_units.c - the pure pieces of ratelimitd and the middleware,
 * one behaviour per test: units, the JSON and query readers, the YAML
 * loader's errors (file:line:col), keys, trusted proxies, header values,
 * snapshot lookup.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "json_request.h"
#include "metrics.h"
#include "query.h"
#include "rl_mw.h"
#include "snapshot.h"
#include "units.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_durations(void **state) {
  (void)state;
  uint64_t ms = 0;
  assert_int_equal(rld_parse_duration(S("500ms"), &ms), 0);
  assert_int_equal(ms, 500);
  assert_int_equal(rld_parse_duration(S("1m"), &ms), 0);
  assert_int_equal(ms, 60000);
  assert_int_equal(rld_parse_duration(S("1h30m"), &ms), 0);
  assert_int_equal(ms, 5400000);
  assert_int_equal(rld_parse_duration(S("2d"), &ms), 0);
  assert_int_equal(ms, 172800000);
  assert_int_equal(rld_parse_duration(S("0"), &ms), 0);
  assert_int_equal(ms, 0);
  assert_int_equal(rld_parse_duration(S("10"), &ms), -1);
  assert_int_equal(rld_parse_duration(S("1x"), &ms), -1);
  assert_int_equal(rld_parse_duration(S("m"), &ms), -1);
  assert_int_equal(rld_parse_duration(S(""), &ms), -1);
  assert_int_equal(rld_parse_duration(S("99999999999999999999h"), &ms), -1);
  assert_int_equal(rld_parse_duration(S("999999999999999d"), &ms), -1);
}

static void test_sizes(void **state) {
  (void)state;
  uint64_t b = 0;
  assert_int_equal(rld_parse_size(S("100MB"), &b), 0);
  assert_int_equal(b, 100u << 20);
  assert_int_equal(rld_parse_size(S("64KiB"), &b), 0);
  assert_int_equal(b, 65536);
  assert_int_equal(rld_parse_size(S("4096"), &b), 0);
  assert_int_equal(b, 4096);
  assert_int_equal(rld_parse_size(S("1GB"), &b), 0);
  assert_int_equal(b, 1u << 30);
  assert_int_equal(rld_parse_size(S("1 MB"), &b), -1);
  assert_int_equal(rld_parse_size(S("1PB"), &b), -1);
  assert_int_equal(rld_parse_size(S("-1"), &b), -1);
  assert_int_equal(rld_parse_size(S("99999999999TB"), &b), -1);
}

static rld_json_err json(const char *s, rld_check_request *r,
                         const char **msg) {
  static char scratch[RLD_JSON_SCRATCH];
  return rld_json_request_parse(s, strlen(s), scratch, sizeof scratch, r, msg);
}

static void test_json_fields(void **state) {
  (void)state;
  rld_check_request r;
  const char *msg = NULL;
  assert_int_equal(
      json(" {\"policy\":\"api\", \"key\":\"u:1\", \"cost\": 7}\n", &r, &msg),
      RLD_JSON_OK);
  assert_int_equal(r.policy_len, 3);
  assert_memory_equal(r.policy, "api", 3);
  assert_memory_equal(r.key, "u:1", 3);
  assert_int_equal(r.cost, 7);
  assert_int_equal(json("{}", &r, &msg), RLD_JSON_OK);
  assert_null(r.policy);
  assert_null(r.key);
  assert_int_equal(r.cost, 1);
}

static void test_json_escapes_and_unknown_fields(void **state) {
  (void)state;
  rld_check_request r;
  const char *msg = NULL;
  assert_int_equal(json("{\"x\":{\"a\":[1,-2.5e3,true,null,\"s\\\"\"]},"
                        "\"key\":\"a\\u00e9\\ud83d\\ude00\\n\",\"y\":[]}",
                        &r, &msg),
                   RLD_JSON_OK);
  assert_int_equal(r.key_len, 1 + 2 + 4 + 1);
  assert_memory_equal(r.key, "a\xc3\xa9\xf0\x9f\x98\x80\n", 8);
}

static void test_json_errors(void **state) {
  (void)state;
  static const struct {
    const char *in;
    rld_json_err err;
    const char *msg;
  } cases[] = {
      {"", RLD_JSON_SYNTAX, "the body must be a JSON object"},
      {"[]", RLD_JSON_SYNTAX, "the body must be a JSON object"},
      {"{\"key\":\"a\"", RLD_JSON_SYNTAX, "unexpected end of body"},
      {"{\"key\" \"a\"}", RLD_JSON_SYNTAX, "expected ':' after a field name"},
      {"{\"key\":\"a\"} x", RLD_JSON_SYNTAX,
       "unexpected data after the JSON object"},
      {"{\"cost\":1.5}", RLD_JSON_FIELD, "cost must be a whole number"},
      {"{\"cost\":0}", RLD_JSON_FIELD, "cost must be between 1 and 2^40"},
      {"{\"cost\":01}", RLD_JSON_SYNTAX, "numbers may not have leading zeros"},
      {"{\"key\":1}", RLD_JSON_FIELD, "key must be a string"},
      {"{\"key\":\"a\",\"key\":\"b\"}", RLD_JSON_FIELD,
       "a field is given twice"},
      {"{\"key\":\"\\ud800\"}", RLD_JSON_SYNTAX,
       "unpaired surrogate in \\u escape"},
      {"{\"key\":\"\x01\"}", RLD_JSON_SYNTAX, "control character in string"},
      {"{\"key\":\"\xc0\xaf\"}", RLD_JSON_SYNTAX, "invalid UTF-8 in string"},
      {"{\"key\":\"\xed\xa0\x80\"}", RLD_JSON_SYNTAX,
       "invalid UTF-8 in string"},
      {"{\"x\":tru}", RLD_JSON_SYNTAX, "invalid value"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rld_check_request r;
    const char *msg = NULL;
    assert_int_equal(json(cases[i].in, &r, &msg), cases[i].err);
    assert_string_equal(msg, cases[i].msg);
  }
}

static void test_json_limits(void **state) {
  (void)state;
  rld_check_request r;
  const char *msg = NULL;
  char *big = malloc(RL_KEY_MAX + 32);
  assert_non_null(big);
  memcpy(big, "{\"key\":\"", 8);
  memset(big + 8, 'k', RL_KEY_MAX);
  strcpy(big + 8 + RL_KEY_MAX, "\"}");
  assert_int_equal(json(big, &r, &msg), RLD_JSON_OK);
  assert_int_equal(r.key_len, RL_KEY_MAX);
  memset(big + 8, 'k', RL_KEY_MAX);
  strcpy(big + 8 + RL_KEY_MAX, "k\"}");
  assert_int_equal(json(big, &r, &msg), RLD_JSON_KEY_TOO_LONG);
  free(big);
  char deep[200];
  memset(deep, '[', sizeof deep);
  memcpy(deep, "{\"x\":", 5);
  deep[sizeof deep - 1] = '\0';
  assert_int_equal(json(deep, &r, &msg), RLD_JSON_SYNTAX);
  assert_string_equal(msg, "nesting too deep");
}

static void test_query(void **state) {
  (void)state;
  static char scratch[RLD_JSON_SCRATCH];
  rld_check_request r;
  const char *msg = NULL;
  const char q[] = "x=1&policy=api&key=user%3A1+x&cost=12&&";
  assert_int_equal(
      rld_query_parse(q, strlen(q), scratch, sizeof scratch, &r, &msg),
      RLD_JSON_OK);
  assert_memory_equal(r.policy, "api", 3);
  assert_int_equal(r.key_len, 8);
  assert_memory_equal(r.key, "user:1 x", 8);
  assert_int_equal(r.cost, 12);
  assert_int_equal(
      rld_query_parse(S("key=%4"), scratch, sizeof scratch, &r, &msg),
      RLD_JSON_SYNTAX);
  assert_int_equal(
      rld_query_parse(S("cost=0"), scratch, sizeof scratch, &r, &msg),
      RLD_JSON_FIELD);
  assert_int_equal(
      rld_query_parse(S("key=a&key=b"), scratch, sizeof scratch, &r, &msg),
      RLD_JSON_FIELD);
  assert_int_equal(rld_query_parse(NULL, 0, scratch, sizeof scratch, &r, &msg),
                   RLD_JSON_OK);
}

/* Parses text; returns the config or NULL with the error in err. */
static rld_config *parse(const char *text, char *err, size_t errlen) {
  rld_config *c = NULL;
  err[0] = '\0';
  if (rld_config_parse(text, strlen(text), "t.yaml", &c, err, errlen) != 0) {
    return NULL;
  }
  return c;
}

static void test_config_seed_format(void **state) {
  (void)state;
  char err[512];
  rld_config *c =
      parse("rate_limiter:\n"
            "  redis: {addrs: [], pool_size: 100, timeout: 100ms}\n"
            "  windows:\n"
            "    - max_requests: 100\n      duration: 1m\n"
            "    - max_requests: 1000\n      duration: 1h\n"
            "  cache: {enabled: true, ttl: 500ms, max_size: 100MB}\n"
            "  fallback: {mode: local, circuit_breaker_threshold: "
            "10}\n"
            "  policies:\n"
            "    - name: api\n"
            "      windows: [{max_requests: 5, duration: 1s}]\n"
            "      key: [header:X-Key, path]\n",
            err, sizeof err);
  assert_non_null(c);
  assert_int_equal(c->n_policies, 2);
  assert_string_equal(c->policies[0].name, "default");
  assert_int_equal(c->policies[0].policy.n_windows, 2);
  assert_int_equal(c->policies[0].policy.windows[1].duration_ms, 3600000);
  assert_int_equal(c->policies[1].key.n_parts, 2);
  assert_int_equal(c->policies[1].key.parts[0].kind, RL_MW_PART_HEADER);
  assert_string_equal(c->policies[1].key.parts[0].arg, "X-Key");
  assert_int_equal(c->policies[1].fallback, RLD_FALLBACK_LOCAL);
  assert_int_equal(c->cache.ttl_ms, 500);
  assert_int_equal(c->cache.max_bytes, 100u << 20);
  assert_int_equal(c->redis.pool_size, 100);
  assert_int_equal(c->redis.mode, RL_REDIS_MODE_AUTO);
  rld_config_free(c);
  c = parse("rate_limiter:\n"
            "  redis: {addrs: [\"10.0.0.1:7000\"], mode: cluster}\n"
            "  windows: [{max_requests: 1, duration: 1s}]\n",
            err, sizeof err);
  assert_non_null(c);
  assert_int_equal(c->redis.mode, RL_REDIS_MODE_CLUSTER);
  rld_config_free(c);
}

static void test_config_errors_have_positions(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *err;
  } cases[] = {
      {"rate_limiter:\n  windowz: []\n",
       "t.yaml:2:3: unknown key 'windowz' in rate_limiter"},
      {"rate_limiter:\n  windows:\n    - max_requests: 1\n"
       "      duration: 5parsecs\n",
       "t.yaml:4:17: invalid duration '5parsecs'"},
      {"rate_limiter:\n  redis: {addrs: [\"r1\"]}\n",
       "t.yaml:2:19: invalid Redis address 'r1'"},
      {"rate_limiter: [\n", "t.yaml:2:1: "},
      {"", "t.yaml:1:1: the configuration is empty"},
      {"rate_limiter: {}\n", "t.yaml:1:1: no policy"},
      {"rate_limiter:\n  policies:\n    - name: a\n"
       "      windows: [{max_requests: 1, duration: 1s}]\n"
       "    - name: a\n      windows: [{max_requests: 1, duration: 1s}]\n",
       "t.yaml:5:7: policy 'a' is defined twice"},
      {"rate_limiter:\n  policies:\n    - name: \"a b\"\n",
       "t.yaml:3:13: policy name 'a b'"},
      {"server:\n  max_body: 10\nrate_limiter:\n"
       "  windows: [{max_requests: 1, duration: 1s}]\n",
       "t.yaml:2:13: server.max_body must be between 64 and 1048576"},
      {"rate_limiter:\n  policies:\n    - name: x\n      algorithm: "
       "token_bucket\n"
       "      windows: [{max_requests: 10, duration: 1m, burst: 1}]\n"
       "      fallback: sideways\n",
       "t.yaml:6:17: unknown fallback mode 'sideways'"},
      {"rate_limiter:\n  redis: {addrs: [\"a:1\"], mode: sharded}\n",
       "t.yaml:2:33: unknown redis mode 'sharded'"},
      {"rate_limiter:\n  redis: {addrs: [\"a:1\"], password: x, "
       "password_file: /nonexistent}\n",
       "t.yaml:2:55: set password or password_file, not both"},
      {"rate_limiter:\n  redis: {addrs: [\"a:1\"], "
       "password_file: /nonexistent/pw}\n",
       "t.yaml:2:42: cannot read password_file '/nonexistent/pw'"},
      {"rate_limiter:\n  redis: {addrs: [\"a:1\"], tls: {enabled: true, "
       "ca: x}}\n",
       "t.yaml:2:48: unknown key 'ca' in rate_limiter.redis.tls"},
      {"rate_limiter:\n  redis: {addrs: [\"a:1\"], username: \"\"}\n",
       "t.yaml:2:37: expected 1..511 bytes of text"},
      {"rate_limiter:\n  policies:\n    - name: x\n      key: [ip, cookie]\n",
       "t.yaml:4:17: unknown key part 'cookie'"},
      {"rate_limiter:\n  windows: [{max_requests: 1, duration: 1m}, "
       "{max_requests: 2, duration: 1m}]\n",
       "t.yaml:2:12: policy 'default': "},
      {"a: &a [*a]\n", "t.yaml:1:"},
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[512];
    assert_null(parse(cases[i].text, err, sizeof err));
    if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0) {
      print_error("case %zu: got \"%s\", want \"%s...\"\n", i, err,
                  cases[i].err);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
}

static void test_config_live_changes(void **state) {
  (void)state;
  char err[256];
  rld_config *a = parse("rate_limiter: {windows: [{max_requests: 1, "
                        "duration: 1s}]}\n",
                        err, sizeof err);
  rld_config *b = parse("server: {listen: \"127.0.0.1:9\"}\nrate_limiter: "
                        "{windows: [{max_requests: 2, duration: 1s}]}\n",
                        err, sizeof err);
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(rld_config_live_compatible(a, a, err, sizeof err), 0);
  assert_int_equal(rld_config_live_compatible(a, b, err, sizeof err), -1);
  assert_non_null(strstr(err, "server.listen"));
  rld_config_free(a);
  rld_config_free(b);
}

static const char *hdr(void *ctx, const char *name) {
  (void)ctx;
  return strcmp(name, "X-Key") == 0 ? "k1" : NULL;
}

static void test_keys(void **state) {
  (void)state;
  rl_mw_key_spec spec;
  memset(&spec, 0, sizeof spec);
  char err[128];
  assert_int_equal(rl_mw_key_spec_add(&spec, S("ip"), err, sizeof err), RL_OK);
  assert_int_equal(
      rl_mw_key_spec_add(&spec, S("header:X-Key"), err, sizeof err), RL_OK);
  assert_int_equal(rl_mw_key_spec_add(&spec, S("path"), err, sizeof err),
                   RL_OK);
  assert_int_equal(rl_mw_key_spec_add(&spec, S("const:v1"), err, sizeof err),
                   RL_OK);
  assert_int_equal(
      rl_mw_key_spec_add(&spec, S("header:bad name"), err, sizeof err),
      RL_ERR_CONFIG_INVALID);
  rl_mw_request req = {"10.0.0.1", "/a/b", 4, hdr, NULL};
  char key[64];
  size_t len = 0;
  assert_int_equal(rl_mw_key_build(&spec, &req, key, sizeof key, &len, NULL),
                   RL_OK);
  assert_int_equal(len, strlen("10.0.0.1|k1|/a/b|v1"));
  assert_memory_equal(key, "10.0.0.1|k1|/a/b|v1", len);
  assert_int_equal(rl_mw_key_build(&spec, &req, key, 10, &len, NULL),
                   RL_ERR_KEY_TOO_LONG);
  rl_mw_key_spec h;
  memset(&h, 0, sizeof h);
  rl_mw_key_spec_add(&h, S("header:X-Other"), NULL, 0);
  const char *missing = NULL;
  assert_int_equal(rl_mw_key_build(&h, &req, key, sizeof key, &len, &missing),
                   RL_ERR_KEY_EMPTY);
  assert_string_equal(missing, "X-Other");
  char text[128];
  assert_true(rl_mw_key_spec_format(&spec, text, sizeof text) > 0);
  assert_string_equal(text, "ip, header:X-Key, path, const:v1");
}

static void client_ip(const rl_mw_proxies *p, const char *peer, const char *xff,
                      const char *want) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  inet_pton(AF_INET, peer, &a.sin_addr);
  char out[RL_MW_IP_MAX];
  assert_int_equal(rl_mw_client_ip(p, (struct sockaddr *)&a, xff, out), RL_OK);
  assert_string_equal(out, want);
}

static void test_trusted_proxies(void **state) {
  (void)state;
  rl_mw_proxies p;
  memset(&p, 0, sizeof p);
  assert_int_equal(rl_mw_proxies_add(&p, S("10.0.0.0/8"), NULL, 0), RL_OK);
  assert_int_equal(rl_mw_proxies_add(&p, S("192.168.1.1"), NULL, 0), RL_OK);
  assert_int_equal(rl_mw_proxies_add(&p, S("fd00::/8"), NULL, 0), RL_OK);
  assert_int_equal(rl_mw_proxies_add(&p, S("10.0.0.0/33"), NULL, 0),
                   RL_ERR_CONFIG_INVALID);
  assert_int_equal(rl_mw_proxies_add(&p, S("nonsense"), NULL, 0),
                   RL_ERR_CONFIG_INVALID);
  /* Untrusted peer: X-Forwarded-For ignored. */
  client_ip(&p, "203.0.113.9", "1.2.3.4", "203.0.113.9");
  /* Trusted peer: rightmost untrusted entry. */
  client_ip(&p, "10.1.2.3", "6.6.6.6, 1.2.3.4, 10.9.9.9", "1.2.3.4");
  /* All trusted: the leftmost. */
  client_ip(&p, "10.1.2.3", "192.168.1.1", "192.168.1.1");
  /* Garbage stops the walk at the last trusted hop. */
  client_ip(&p, "10.1.2.3", "1.2.3.4, junk", "10.1.2.3");
  client_ip(&p, "10.1.2.3", NULL, "10.1.2.3");
  client_ip(&p, "10.1.2.3", " 2001:db8::1 ", "2001:db8::1");
}

static void test_header_values(void **state) {
  (void)state;
  rl_policy p;
  rl_policy_init(&p);
  rl_policy_add_window(&p, 100, 60000);
  rl_policy_add_window(&p, 1000, 3600000);
  rl_policy_add_window(&p, 5, 500);
  char buf[256];
  assert_true(rl_mw_format_policy("api", &p, buf, sizeof buf) > 0);
  assert_string_equal(buf, "\"api-1m\";q=100;w=60, \"api-1h\";q=1000;w=3600, "
                           "\"api-500ms\";q=5;w=1");
  rl_decision d;
  memset(&d, 0, sizeof d);
  d.window = 1;
  d.remaining = 42;
  d.reset_after_ms = 16001;
  assert_true(rl_mw_format_ratelimit("api", &p, &d, buf, sizeof buf) > 0);
  assert_string_equal(buf, "\"api-1h\";r=42;t=17");
  assert_int_equal(rl_mw_format_policy("api", &p, buf, 10), -1);
  d.allowed = 0;
  d.retry_after_ms = 1;
  assert_int_equal(rl_mw_retry_after_s(&d), 1);
  d.retry_after_ms = RL_RETRY_NEVER;
  assert_int_equal(rl_mw_retry_after_s(&d), 0);
  assert_true(rl_mw_format_duration(90000, buf, sizeof buf) > 0);
  assert_string_equal(buf, "90s");
  assert_true(rl_mw_format_duration(86400000, buf, sizeof buf) > 0);
  assert_string_equal(buf, "1d");
}

static void test_snapshot_lookup(void **state) {
  (void)state;
  char err[256];
  rld_config *c = parse("rate_limiter:\n"
                        "  windows: [{max_requests: 1, duration: 1s}]\n"
                        "  policies:\n"
                        "    - {name: a, windows: [{max_requests: 1, duration: "
                        "1s}]}\n"
                        "    - {name: bb, windows: [{max_requests: 1, "
                        "duration: 1s}], shadow: true}\n",
                        err, sizeof err);
  assert_non_null(c);
  rld_metrics m;
  assert_int_equal(rld_metrics_init(&m, 1), 0);
  rld_snapshot *s = NULL;
  assert_int_equal(rld_snapshot_new(c, 1, 42, &m, &s), 0);
  assert_string_equal(rld_snapshot_find(s, NULL, 0)->cfg->name, "default");
  assert_string_equal(rld_snapshot_find(s, "bb", 2)->cfg->name, "bb");
  assert_true(rld_snapshot_find(s, "bb", 2)->shadow);
  assert_null(rld_snapshot_find(s, "b", 1));
  assert_null(rld_snapshot_find(s, "a\0", 2));
  assert_string_equal(s->hash_hex, "000000000000002a");
  rld_published pub;
  rld_published_init(&pub, s);
  rld_snapshot *held = rld_published_acquire(&pub, NULL);
  assert_ptr_equal(held, s);
  assert_ptr_equal(rld_published_acquire(&pub, held), held);
  rld_snapshot_unref(held);
  rld_published_close(&pub);
  rld_metrics_close(&m);
}

static void collect(void *ctx, const char *name, const char *value) {
  char *buf = ctx;
  size_t at = strlen(buf);
  snprintf(buf + at, 1024 - at, "%s: %s\n", name, value);
}

static void test_middleware_core(void **state) {
  (void)state;
  rl_policy p;
  rl_policy_init(&p);
  p.name = "mw";
  rl_policy_add_window(&p, 2, 60000);
  rl_config c;
  rl_config_init(&c);
  c.policies = &p;
  c.n_policies = 1;
  rl_limiter *rl = NULL;
  assert_int_equal(rl_new(&c, &rl), RL_OK);
  rl_mw_config mc;
  rl_mw_config_init(&mc);
  mc.policy_name = "mw";
  mc.policy = &p;
  mc.legacy_headers = 1;
  assert_int_equal(rl_mw_key_spec_add(&mc.key, S("header:X-Key"), NULL, 0),
                   RL_OK);
  rl_mw *mw = NULL;
  assert_int_equal(rl_mw_new(rl, &mc, &mw), RL_OK);
  rl_mw_request req = {"10.0.0.1", "/", 1, hdr, NULL};
  rl_mw_verdict v;
  char headers[1024];
  assert_int_equal(rl_mw_decide(mw, &req, &v), 0);
  assert_int_equal(rl_mw_decide(mw, &req, &v), 0);
  assert_int_equal(rl_mw_decide(mw, &req, &v), 429);
  headers[0] = '\0';
  rl_mw_headers(mw, &v, collect, headers);
  assert_non_null(strstr(headers, "RateLimit-Policy: \"mw-1m\";q=2;w=60\n"));
  assert_non_null(strstr(headers, "Retry-After: "));
  assert_non_null(strstr(headers, "X-RateLimit-Limit: 2\n"));
  assert_non_null(strstr(headers, "X-RateLimit-Remaining: 0\n"));
  /* A missing key header: 400, no headers. */
  rl_mw_request anon = {"10.0.0.1", "/", 1, NULL, NULL};
  assert_int_equal(rl_mw_decide(mw, &anon, &v), 400);
  headers[0] = '\0';
  rl_mw_headers(mw, &v, collect, headers);
  assert_string_equal(headers, "");
  rl_mw_free(mw);
  /* Shadow: never denies; fail open: a limiter error lets the request
   * through. */
  mc.shadow = 1;
  assert_int_equal(rl_mw_new(rl, &mc, &mw), RL_OK);
  assert_int_equal(rl_mw_decide(mw, &req, &v), 0);
  assert_true(v.shadow_denied);
  rl_mw_free(mw);
  mc.shadow = 0;
  mc.fail_open = 1;
  mc.policy_name = "gone"; /* unknown to the limiter: an error */
  assert_int_equal(rl_mw_new(rl, &mc, &mw), RL_OK);
  assert_int_equal(rl_mw_decide(mw, &req, &v), 0);
  assert_int_equal(v.err, RL_ERR_POLICY_UNKNOWN);
  rl_mw_free(mw);
  mc.fail_open = 0;
  assert_int_equal(rl_mw_new(rl, &mc, &mw), RL_OK);
  assert_int_equal(rl_mw_decide(mw, &req, &v), 503);
  rl_mw_free(mw);
  mc.policy = NULL;
  assert_int_equal(rl_mw_new(rl, &mc, &mw), RL_ERR_INVALID_ARGUMENT);
  rl_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_json_fields),
      cmocka_unit_test(test_json_escapes_and_unknown_fields),
      cmocka_unit_test(test_json_errors),
      cmocka_unit_test(test_json_limits),
      cmocka_unit_test(test_query),
      cmocka_unit_test(test_config_seed_format),
      cmocka_unit_test(test_config_errors_have_positions),
      cmocka_unit_test(test_config_live_changes),
      cmocka_unit_test(test_keys),
      cmocka_unit_test(test_trusted_proxies),
      cmocka_unit_test(test_header_values),
      cmocka_unit_test(test_snapshot_lookup),
      cmocka_unit_test(test_middleware_core),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
