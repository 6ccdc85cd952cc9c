/*
 * test_trace_units.c - the pure parts of ratelimitd's tracing: strict W3C
 * traceparent parsing (a table of valid and invalid values), settings from
 * the configuration and the OTEL_* environment, the samplers' decisions,
 * span attributes, the OTLP JSON text, and a full queue that drops instead
 * of blocking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "trace.h"

static const char *const valid[] = {
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later",
};

static const char *const invalid[] = {
    "",
    "00",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 ",
    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01",
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x",
    "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331_01",
    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
    "00-0af7651916cd43dd8448eb211c8031-9c-b7ad6b7169203331-01",
};

static void test_traceparent(void **state) {
  (void)state;
  rld_span_ctx c;
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    assert_int_equal(rld_traceparent_parse(valid[i], strlen(valid[i]), &c), 0);
    char hex[33];
    rld_hex(c.trace_id, 16, hex);
    assert_string_equal(hex, "0af7651916cd43dd8448eb211c80319c");
    rld_hex(c.span_id, 8, hex);
    assert_string_equal(hex, "b7ad6b7169203331");
  }
  assert_int_equal(c.flags, 1);
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    if (rld_traceparent_parse(invalid[i], strlen(invalid[i]), &c) != -1) {
      fail_msg("accepted '%s'", invalid[i]);
    }
  }
  assert_int_equal(rld_traceparent_parse(NULL, 55, &c), -1);
}

/* A fake environment: NAME=value pairs. */
static const char *const *fake_env;

static const char *env_of(const char *name) {
  size_t n = strlen(name);
  for (const char *const *e = fake_env; *e != NULL; e++) {
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') {
      return *e + n + 1;
    }
  }
  return NULL;
}

static rld_tracing tracing_config(void) {
  rld_tracing t;
  memset(&t, 0, sizeof t);
  t.sample_ratio = 0.5;
  t.queue_size = 100;
  strcpy(t.endpoint, "http://cfg:4318/v1/traces");
  strcpy(t.service_name, "cfg");
  return t;
}

static void test_settings(void **state) {
  (void)state;
  rld_tracing cfg = tracing_config();
  rld_trace_settings s;
  char warn[256];
  static const char *const none[] = {NULL};
  fake_env = none;
  rld_trace_settings_load(&s, &cfg, env_of, warn, sizeof warn);
  assert_false(s.enabled);
  assert_int_equal(s.sampler, RLD_SAMPLER_PARENT_RATIO);
  assert_string_equal(s.endpoint, "http://cfg:4318/v1/traces");
  assert_string_equal(warn, "");
  static const char *const env1[] = {
      "OTEL_EXPORTER_OTLP_ENDPOINT=http://col:4318/",
      "OTEL_TRACES_SAMPLER=traceidratio",
      "OTEL_TRACES_SAMPLER_ARG=0.125",
      "OTEL_SERVICE_NAME=svc",
      "OTEL_BSP_SCHEDULE_DELAY=20",
      "OTEL_BSP_MAX_QUEUE_SIZE=8",
      NULL};
  fake_env = env1;
  rld_trace_settings_load(&s, &cfg, env_of, warn, sizeof warn);
  assert_true(s.enabled);
  assert_string_equal(s.endpoint, "http://col:4318/v1/traces");
  assert_int_equal(s.sampler, RLD_SAMPLER_RATIO);
  assert_true(s.ratio == 0.125);
  assert_string_equal(s.service_name, "svc");
  assert_int_equal(s.delay_ms, 20);
  assert_int_equal(s.queue_max, 8);
  static const char *const env2[] = {
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://t/x",
      "OTEL_EXPORTER_OTLP_ENDPOINT=http://ignored",
      "OTEL_TRACES_SAMPLER=sometimes",
      "OTEL_TRACES_SAMPLER_ARG=2",
      "OTEL_BSP_SCHEDULE_DELAY=-5",
      "OTEL_SDK_DISABLED=TRUE",
      NULL};
  fake_env = env2;
  rld_trace_settings_load(&s, &cfg, env_of, warn, sizeof warn);
  assert_false(s.enabled);
  assert_string_equal(s.endpoint, "http://t/x");
  assert_int_equal(s.sampler, RLD_SAMPLER_PARENT_RATIO);
  assert_true(s.ratio == 0.5);
  assert_int_equal(s.delay_ms, 5000);
  assert_non_null(strstr(warn, "OTEL_TRACES_SAMPLER='sometimes'"));
  assert_non_null(strstr(warn, "OTEL_TRACES_SAMPLER_ARG='2'"));
  assert_non_null(strstr(warn, "OTEL_BSP_SCHEDULE_DELAY='-5'"));
  cfg.enabled = 1;
  static const char *const env3[] = {"OTEL_TRACES_EXPORTER=none", NULL};
  fake_env = env3;
  rld_trace_settings_load(&s, &cfg, env_of, NULL, 0);
  assert_false(s.enabled);
}

static rld_trace_settings settings_with(rld_sampler sampler, double ratio) {
  rld_tracing cfg = tracing_config();
  cfg.enabled = 1;
  cfg.sample_ratio = ratio;
  static const char *const none[] = {NULL};
  fake_env = none;
  rld_trace_settings s;
  rld_trace_settings_load(&s, &cfg, env_of, NULL, 0);
  s.sampler = sampler;
  return s;
}

static int sampled_of(const rld_trace_settings *s, const char *tp, int n) {
  int k = 0;
  for (int i = 0; i < n; i++) {
    rld_span span;
    k += rld_trace_sample(s, tp, &span);
  }
  return k;
}

static void test_samplers(void **state) {
  (void)state;
  const char *on = valid[0];
  const char *off = valid[1];
  rld_trace_settings s = settings_with(RLD_SAMPLER_PARENT_RATIO, 0.0);
  assert_int_equal(sampled_of(&s, on, 10), 10);
  assert_int_equal(sampled_of(&s, off, 10), 0);
  assert_int_equal(sampled_of(&s, NULL, 100), 0);
  s = settings_with(RLD_SAMPLER_PARENT_RATIO, 1.0);
  assert_int_equal(sampled_of(&s, NULL, 100), 100);
  assert_int_equal(sampled_of(&s, "garbage", 10), 10); /* new root trace */
  s = settings_with(RLD_SAMPLER_ALWAYS_OFF, 1.0);
  assert_int_equal(sampled_of(&s, on, 10), 0);
  s = settings_with(RLD_SAMPLER_PARENT_ALWAYS_OFF, 1.0);
  assert_int_equal(sampled_of(&s, NULL, 10), 0);
  assert_int_equal(sampled_of(&s, on, 10), 10);
  s = settings_with(RLD_SAMPLER_ALWAYS_ON, 0.0);
  assert_int_equal(sampled_of(&s, off, 10), 10);
  /* traceidratio ignores the parent's flag and decides on its trace id:
   * the id's last 8 bytes (0x8448eb21...) are above 0.5 * 2^64. */
  s = settings_with(RLD_SAMPLER_RATIO, 0.5);
  assert_int_equal(sampled_of(&s, on, 10), 0);
  s = settings_with(RLD_SAMPLER_RATIO, 0.6);
  assert_int_equal(sampled_of(&s, off, 10), 10);
  /* Root traces: about the ratio (binomial, +-6 sd). */
  s = settings_with(RLD_SAMPLER_PARENT_RATIO, 0.1);
  int k = sampled_of(&s, NULL, 20000);
  assert_in_range(k, 2000 - 255, 2000 + 255);
  rld_span span;
  assert_int_equal(rld_trace_sample(NULL, on, &span), 0);
  s.enabled = 0;
  assert_int_equal(rld_trace_sample(&s, on, &span), 0);
}

static void test_span_and_json(void **state) {
  (void)state;
  rld_trace_settings s = settings_with(RLD_SAMPLER_PARENT_ALWAYS_ON, 1.0);
  strcpy(s.service_name, "a\"b\\c\n");
  rld_span span[2];
  assert_int_equal(rld_trace_sample(&s, valid[0], &span[0]), 1);
  assert_int_equal(rld_trace_sample(&s, NULL, &span[1]), 1);
  rl_policy p;
  rl_policy_init(&p);
  rl_policy_add_window(&p, 10, 60000);
  rl_policy_add_window(&p, 100, 5400000);
  rl_decision d;
  memset(&d, 0, sizeof d);
  d.window = 1;
  d.source = RL_SOURCE_REDIS;
  rld_trace_finish(&span[0], "api", &p, &d, RL_OK, 1);
  assert_string_equal(span[0].result, "shadow_denied");
  assert_string_equal(span[0].window, "90m");
  assert_string_equal(span[0].source, "redis");
  rld_trace_finish(&span[1], "api", &p, &d, RL_ERR_TIMEOUT, 0);
  assert_string_equal(span[1].result, "error");
  assert_string_equal(span[1].error, "timeout");
  size_t len = 0;
  char *json = rld_otlp_json(&s, span, 2, &len);
  assert_non_null(json);
  assert_int_equal(strlen(json), len);
  assert_non_null(strstr(json, "{\"resourceSpans\":[{\"resource\":"));
  assert_non_null(strstr(json, "\"stringValue\":\"a\\u0022b\\u005cc\\u000a\""));
  assert_non_null(strstr(json, "\"traceId\":\"0af7651916cd43dd8448eb211c80319c"
                               "\",\"spanId\":\""));
  assert_non_null(strstr(json, "\"parentSpanId\":\"b7ad6b7169203331\""));
  assert_non_null(strstr(json, "\"status\":{\"code\":2,\"message\":"
                               "\"timeout\"}"));
  assert_non_null(strstr(json, "{\"key\":\"ratelimit.window\",\"value\":{"
                               "\"stringValue\":\"90m\"}}"));
  free(json);
  char label[RLD_TRACE_WINDOW_MAX];
  assert_int_equal(rld_duration_label(1500, label), 6);
  assert_string_equal(label, "1500ms");
}

/* Nobody listens and the exporter sleeps an hour: the queue fills, the
 * rest is dropped, submitting never blocks; stop still exports (fails). */
static void test_full_queue_drops(void **state) {
  (void)state;
  rld_trace_settings s = settings_with(RLD_SAMPLER_ALWAYS_ON, 1.0);
  s.queue_max = 60; /* 64 slots */
  s.delay_ms = 3600000;
  s.timeout_ms = 2000;
  strcpy(s.endpoint, "http://127.0.0.1:1/v1/traces");
  rld_tracer *t = NULL;
  char err[128];
  assert_int_equal(rld_tracer_start(&s, &t, err, sizeof err), 0);
  assert_int_equal(rld_tracer_settings(t)->queue_max, 60);
  rld_span span;
  assert_int_equal(rld_trace_sample(&s, NULL, &span), 1);
  rld_trace_finish(&span, "p", NULL, &(rl_decision){0}, RL_OK, 0);
  for (int i = 0; i < 100; i++) {
    rld_tracer_submit(t, &span);
  }
  rld_tracer_stats st;
  rld_tracer_stats_get(t, &st);
  assert_int_equal(st.queued, 64);
  assert_int_equal(st.dropped, 36);
  rld_tracer_submit(NULL, &span);
  rld_tracer_stop(t);
  rld_tracer_stop(NULL);
  rld_tracer_stats_get(NULL, &st);
  assert_int_equal(st.queued, 0);
}

static void test_config_section(void **state) {
  (void)state;
  static const char ok[] = "tracing:\n"
                           "  enabled: true\n"
                           "  endpoint: http://c:4318/v1/traces\n"
                           "  sample_ratio: 0.25\n"
                           "  service_name: edge\n"
                           "  queue_size: 64\n"
                           "rate_limiter:\n"
                           "  windows: [{max_requests: 1, duration: 1s}]\n";
  rld_config *c = NULL;
  char err[256];
  assert_int_equal(rld_config_parse(ok, strlen(ok), "t", &c, err, sizeof err),
                   0);
  assert_true(c->tracing.enabled);
  assert_string_equal(c->tracing.endpoint, "http://c:4318/v1/traces");
  assert_true(c->tracing.sample_ratio == 0.25);
  assert_string_equal(c->tracing.service_name, "edge");
  assert_int_equal(c->tracing.queue_size, 64);
  rld_config_free(c);
  static const struct {
    const char *text, *error;
  } bad[] = {
      {"tracing: {sample_ratio: 1.5}\n", "sample_ratio must be a number"},
      {"tracing: {sample_ratio: x}\n", "sample_ratio must be a number"},
      {"tracing: {queue_size: 0}\n", "tracing.queue_size must be between"},
      {"tracing: {endpoint: \"\"}\n", "expected 1..511 bytes"},
      {"tracing: {sampler: always_on}\n", "unknown key 'sampler'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char text[256];
    snprintf(text, sizeof text,
             "%srate_limiter:\n  windows: [{max_requests: 1, duration: 1s}]\n",
             bad[i].text);
    c = NULL;
    assert_int_equal(
        rld_config_parse(text, strlen(text), "t", &c, err, sizeof err), -1);
    if (strstr(err, bad[i].error) == NULL) {
      fail_msg("'%s': %s", bad[i].text, err);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_traceparent),
      cmocka_unit_test(test_settings),
      cmocka_unit_test(test_samplers),
      cmocka_unit_test(test_span_and_json),
      cmocka_unit_test(test_full_queue_drops),
      cmocka_unit_test(test_config_section),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
