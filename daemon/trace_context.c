/*
 * trace_context.c - the worker's half of tracing (trace.h): settings from
 * the configuration and the OTEL_* environment, W3C traceparent parsing,
 * head sampling, ids, and a finished span's attributes. No I/O, no
 * allocation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "trace.h"

/* ---- settings ----------------------------------------------------------- */

static void warn_add(char *warn, size_t warnlen, const char *name,
                     const char *value) {
  size_t at = strlen(warn);
  if (at < warnlen) {
    snprintf(warn + at, warnlen - at, "%sinvalid %s='%.64s' ignored",
             at > 0 ? "; " : "", name, value);
  }
}

static int env_true(const char *v) {
  return v != NULL && strcasecmp(v, "true") == 0;
}

/* An unsigned number in lo..hi from the environment; *out unchanged when
 * absent or invalid (then named in warn). */
static void env_num(rld_getenv_fn env, const char *name, uint64_t lo,
                    uint64_t hi, uint64_t *out, char *warn, size_t warnlen) {
  const char *v = env(name);
  if (v == NULL || *v == '\0') {
    return;
  }
  char *end = NULL;
  unsigned long long x = strtoull(v, &end, 10);
  if (*v == '-' || end == v || *end != '\0' || x < lo || x > hi) {
    warn_add(warn, warnlen, name, v);
    return;
  }
  *out = x;
}

static int parse_ratio(const char *v, double *out) {
  char *end = NULL;
  double r = v != NULL ? strtod(v, &end) : -1;
  if (v == NULL || end == v || *end != '\0' || !(r >= 0 && r <= 1)) {
    return -1;
  }
  *out = r;
  return 0;
}

static void env_sampler(rld_trace_settings *s, rld_getenv_fn env, char *warn,
                        size_t warnlen) {
  const char *v = env("OTEL_TRACES_SAMPLER");
  if (v != NULL && *v != '\0') {
    int found = 0;
#define RLD__SAMPLER_MATCH(name, label)                                        \
  if (!found && strcmp(v, #label) == 0) {                                      \
    s->sampler = RLD_SAMPLER_##name;                                           \
    found = 1;                                                                 \
  }
    RLD_SAMPLER_MAP(RLD__SAMPLER_MATCH)
#undef RLD__SAMPLER_MATCH
    if (!found) {
      warn_add(warn, warnlen, "OTEL_TRACES_SAMPLER", v);
    }
  }
  const char *arg = env("OTEL_TRACES_SAMPLER_ARG");
  int ratio_sampler =
      s->sampler == RLD_SAMPLER_RATIO || s->sampler == RLD_SAMPLER_PARENT_RATIO;
  if (arg != NULL && *arg != '\0' && ratio_sampler &&
      parse_ratio(arg, &s->ratio) != 0) {
    warn_add(warn, warnlen, "OTEL_TRACES_SAMPLER_ARG", arg);
  }
}

static void env_endpoint(rld_trace_settings *s, rld_getenv_fn env) {
  const char *traces = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const char *base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
  if (traces != NULL && *traces != '\0') {
    snprintf(s->endpoint, sizeof s->endpoint, "%s", traces);
    s->enabled = 1;
  } else if (base != NULL && *base != '\0') {
    size_t n = strlen(base);
    snprintf(s->endpoint, sizeof s->endpoint, "%.*s/v1/traces",
             (int)(n > 0 && base[n - 1] == '/' ? n - 1 : n), base);
    s->enabled = 1;
  }
}

static void env_batching(rld_trace_settings *s, rld_getenv_fn env, char *warn,
                         size_t warnlen) {
  uint64_t v = s->delay_ms;
  env_num(env, "OTEL_BSP_SCHEDULE_DELAY", 1, 3600000, &v, warn, warnlen);
  s->delay_ms = (uint32_t)v;
  v = s->timeout_ms;
  env_num(env, "OTEL_BSP_EXPORT_TIMEOUT", 1, 3600000, &v, warn, warnlen);
  s->timeout_ms = (uint32_t)v;
  v = s->queue_max;
  env_num(env, "OTEL_BSP_MAX_QUEUE_SIZE", 1, 1u << 20, &v, warn, warnlen);
  s->queue_max = (size_t)v;
  v = s->batch_max;
  env_num(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1, 1u << 16, &v, warn,
          warnlen);
  s->batch_max = (size_t)v;
}

void rld_trace_settings_load(rld_trace_settings *s, const rld_tracing *cfg,
                             rld_getenv_fn env, char *warn, size_t warnlen) {
  char scratch[1];
  if (warn == NULL || warnlen == 0) {
    warn = scratch;
    warnlen = sizeof scratch;
  }
  warn[0] = '\0';
  memset(s, 0, sizeof *s);
  s->enabled = cfg->enabled;
  s->sampler = RLD_SAMPLER_PARENT_RATIO;
  s->ratio = cfg->sample_ratio;
  snprintf(s->endpoint, sizeof s->endpoint, "%s", cfg->endpoint);
  snprintf(s->service_name, sizeof s->service_name, "%s", cfg->service_name);
  s->queue_max = cfg->queue_size;
  s->batch_max = 512;
  s->delay_ms = 5000;
  s->timeout_ms = 30000;
  env_sampler(s, env, warn, warnlen);
  env_endpoint(s, env);
  env_batching(s, env, warn, warnlen);
  const char *name = env("OTEL_SERVICE_NAME");
  if (name != NULL && *name != '\0') {
    snprintf(s->service_name, sizeof s->service_name, "%s", name);
  }
  const char *exporter = env("OTEL_TRACES_EXPORTER");
  if (env_true(env("OTEL_SDK_DISABLED")) ||
      (exporter != NULL && strcmp(exporter, "none") == 0)) {
    s->enabled = 0;
  }
  s->threshold = (uint64_t)(s->ratio * (double)(UINT64_C(1) << 53));
}

/* ---- traceparent -------------------------------------------------------- */

static int hex_val(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* n bytes from 2n lowercase hex digits; -1 on anything else. */
static int unhex(const char *s, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int hi = hex_val(s[2 * i]);
    int lo = hex_val(s[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return -1;
    }
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static int all_zero(const uint8_t *b, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) {
    acc |= b[i];
  }
  return acc == 0;
}

int rld_traceparent_parse(const char *s, size_t len, rld_span_ctx *out) {
  uint8_t version;
  if (s == NULL || len < RLD_TRACEPARENT_LEN || s[2] != '-' || s[35] != '-' ||
      s[52] != '-' || unhex(s, &version, 1) != 0 || version == 0xff) {
    return -1;
  }
  if (version == 0 ? len != RLD_TRACEPARENT_LEN
                   : len > RLD_TRACEPARENT_LEN && s[55] != '-') {
    return -1;
  }
  if (unhex(s + 3, out->trace_id, 16) != 0 ||
      unhex(s + 36, out->span_id, 8) != 0 || unhex(s + 53, &out->flags, 1)) {
    return -1;
  }
  return all_zero(out->trace_id, 16) || all_zero(out->span_id, 8) ? -1 : 0;
}

void rld_hex(const uint8_t *bytes, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * n] = '\0';
}

/* ---- ids and sampling --------------------------------------------------- */

static _Thread_local uint64_t rng_state;

static void rng_seed(void) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
    seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&seed;
  }
  rng_state = seed | 1;
}

/* wyrand (one 64x64->128 multiply: the unsampled path's only real work),
 * seeded per thread from getrandom(). Not for secrets: W3C asks ids to be
 * random, not unpredictable. */
static uint64_t rng_next(void) {
  if (__builtin_expect(rng_state == 0, 0)) {
    rng_seed();
  }
  rng_state += UINT64_C(0xa0761d6478bd642f);
  __uint128_t t =
      (__uint128_t)rng_state * (rng_state ^ UINT64_C(0xe7037ed1a0b428db));
  return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

/* n random bytes, not all zero (n is 8 or 16). */
static void random_id(uint8_t *out, size_t n) {
  do {
    for (size_t i = 0; i < n; i += 8) {
      uint64_t r = rng_next();
      memcpy(out + i, &r, 8);
    }
  } while (all_zero(out, n));
}

/* The trace id's last 8 bytes, big-endian: what the ratio samplers use. */
static uint64_t id_bits(const uint8_t *trace_id) {
  uint64_t v = 0;
  for (int i = 8; i < 16; i++) {
    v = v << 8 | trace_id[i];
  }
  return v;
}

/* The root sampler's decision for a trace whose id ends in `bits`. */
static int root_decision(const rld_trace_settings *s, uint64_t bits) {
  switch (s->sampler) {
  case RLD_SAMPLER_ALWAYS_ON:
  case RLD_SAMPLER_PARENT_ALWAYS_ON:
    return 1;
  case RLD_SAMPLER_RATIO:
  case RLD_SAMPLER_PARENT_RATIO:
    return (bits >> 11) < s->threshold;
  default:
    return 0;
  }
}

static void put_be64(uint8_t *out, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    out[i] = (uint8_t)v;
    v >>= 8;
  }
}

static uint64_t unix_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int rld_trace_sample(const rld_trace_settings *s, const char *traceparent,
                     rld_span *span) {
  if (s == NULL || !s->enabled) {
    return 0;
  }
  rld_span_ctx parent;
  int has_parent =
      traceparent != NULL &&
      rld_traceparent_parse(traceparent, strlen(traceparent), &parent) == 0;
  int sampled;
  if (has_parent) {
    int parent_based = s->sampler >= RLD_SAMPLER_PARENT_ALWAYS_ON;
    sampled = parent_based ? (parent.flags & 1)
                           : root_decision(s, id_bits(parent.trace_id));
    memcpy(span->trace_id, parent.trace_id, 16);
    memcpy(span->parent_id, parent.span_id, 8);
  } else {
    /* The sampler reads the id's last 8 bytes: draw those first and
     * write the id only for a sampled trace (the unsampled path is one
     * random number and a compare). */
    uint64_t low = rng_next();
    sampled = root_decision(s, low);
    if (sampled) {
      put_be64(span->trace_id + 8, low);
      do {
        put_be64(span->trace_id, rng_next());
      } while (all_zero(span->trace_id, 16));
    }
  }
  if (!sampled) {
    return 0;
  }
  span->has_parent = has_parent;
  random_id(span->span_id, 8);
  span->start_unix_ns = unix_ns();
  return 1;
}

size_t rld_duration_label(uint64_t ms, char out[RLD_TRACE_WINDOW_MAX]) {
  static const struct {
    uint64_t ms;
    const char *unit;
  } units[] = {
      {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
  size_t i = 0;
  while (units[i].ms > 1 && (ms < units[i].ms || ms % units[i].ms != 0)) {
    i++;
  }
  char digits[24];
  size_t n = 0;
  uint64_t v = ms / units[i].ms;
  do { /* no snprintf: this runs per span */
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  for (size_t k = 0; k < n; k++) {
    out[k] = digits[n - 1 - k];
  }
  size_t ulen = strlen(units[i].unit);
  memcpy(out + n, units[i].unit, ulen + 1);
  return n + ulen;
}

void rld_trace_finish(rld_span *span, const char *policy, const rl_policy *cfg,
                      const rl_decision *d, int err, int shadow) {
  span->end_unix_ns = unix_ns();
  size_t n = strnlen(policy, sizeof span->policy - 1);
  memcpy(span->policy, policy, n); /* no snprintf: this runs per span */
  span->policy[n] = '\0';
  span->window[0] = '\0';
  span->error = NULL;
  span->source = "none";
  if (err != RL_OK) {
    span->result = "error";
    span->error = rl_err_name(err);
    return;
  }
  span->result = d->allowed ? "allowed" : shadow ? "shadow_denied" : "denied";
  span->source = rl_source_name(d->source);
  if (cfg != NULL && d->window >= 0 && (size_t)d->window < cfg->n_windows) {
    rld_duration_label(cfg->windows[d->window].duration_ms, span->window);
  }
}
