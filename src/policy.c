/*
 * policy.c - policy validation and compilation.
 *
 * Everything a caller can get wrong in a policy is caught here, once, when
 * the limiter is created, with an error code and a sentence that names the
 * policy and window at fault. The decision path then trusts the shape.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

int rl__fail(int err, char *errbuf, size_t errlen, const char *fmt, ...) {
  if (errbuf == NULL || errlen == 0) {
    return err;
  }
  va_list ap;
  va_start(ap, fmt);
  /* clang-analyzer 14 loses va_start here: a known false positive. */
  // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
  return err;
}

void rl_policy_init(rl_policy *policy) {
  if (policy != NULL) {
    memset(policy, 0, sizeof *policy);
    policy->algorithm = RL_ALG_SLIDING_LOG;
  }
}

int rl_policy_add_window(rl_policy *policy, uint64_t limit,
                         uint64_t duration_ms) {
  if (policy == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  if (policy->n_windows >= RL_MAX_WINDOWS) {
    return RL_ERR_TOO_MANY_WINDOWS;
  }
  rl_window *w = &policy->windows[policy->n_windows++];
  w->limit = limit;
  w->duration_ms = duration_ms;
  w->burst = 0;
  return RL_OK;
}

/* Checks one window against the limits of the policy's algorithm. */
static int check_window(const rl_policy *in, const rl_window *w,
                        const char *name, size_t wi, char *errbuf,
                        size_t errlen) {
  int is_log = in->algorithm == RL_ALG_SLIDING_LOG;
  uint64_t max_limit = is_log ? RL_LOG_LIMIT_MAX : RL_LIMIT_MAX;
  uint64_t max_duration = is_log ? RL_LOG_DURATION_MAX_MS : RL_DURATION_MAX_MS;
  if (w->limit == 0 || w->limit > max_limit) {
    return rl__fail(RL_ERR_WINDOW_LIMIT, errbuf, errlen,
                    "policy '%s' window %zu: limit %llu is outside 1..%llu",
                    name, wi, (unsigned long long)w->limit,
                    (unsigned long long)max_limit);
  }
  if (w->duration_ms == 0 || w->duration_ms > max_duration) {
    return rl__fail(
        RL_ERR_WINDOW_DURATION, errbuf, errlen,
        "policy '%s' window %zu: duration %llu ms is outside 1..%llu", name, wi,
        (unsigned long long)w->duration_ms, (unsigned long long)max_duration);
  }
  if (w->burst != 0 &&
      (in->algorithm != RL_ALG_TOKEN_BUCKET || w->burst > RL_LIMIT_MAX)) {
    return rl__fail(RL_ERR_WINDOW_BURST, errbuf, errlen,
                    "policy '%s' window %zu: burst %llu (only token_bucket "
                    "takes a burst, at most %llu)",
                    name, wi, (unsigned long long)w->burst,
                    (unsigned long long)RL_LIMIT_MAX);
  }
  for (size_t j = 0; j < wi; j++) {
    if (in->windows[j].duration_ms == w->duration_ms) {
      return rl__fail(RL_ERR_WINDOW_DUPLICATE, errbuf, errlen,
                      "policy '%s' windows %zu and %zu: same duration %llu ms",
                      name, j, wi, (unsigned long long)w->duration_ms);
    }
  }
  return RL_OK;
}

/* Policy names appear in store keys, metric labels and URLs: letters,
 * digits, '_', '-' and '.' only. */
static int name_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

static int check_name(const rl_policy *in, size_t index, const char **name,
                      char *errbuf, size_t errlen) {
  *name = in->name != NULL ? in->name : RL__DEFAULT_POLICY_NAME;
  size_t len = strnlen(*name, RL_POLICY_NAME_MAX + 1);
  if (len == 0 || len > RL_POLICY_NAME_MAX) {
    return rl__fail(RL_ERR_POLICY_NAME, errbuf, errlen,
                    "policy %zu: name must be 1..%d bytes", index,
                    RL_POLICY_NAME_MAX);
  }
  for (size_t i = 0; i < len; i++) {
    if (!name_char_ok((*name)[i])) {
      return rl__fail(RL_ERR_POLICY_NAME, errbuf, errlen,
                      "policy %zu: name may only hold letters, digits, "
                      "'_', '-' and '.'",
                      index);
    }
  }
  return RL_OK;
}

static int check_shape(const rl_policy *in, const char *name, char *errbuf,
                       size_t errlen) {
  if (rl_algorithm_name(in->algorithm) == NULL) {
    return rl__fail(RL_ERR_ALGORITHM_UNKNOWN, errbuf, errlen,
                    "policy '%s': unknown algorithm %d", name,
                    (int)in->algorithm);
  }
  if (in->n_windows == 0) {
    return rl__fail(RL_ERR_NO_WINDOWS, errbuf, errlen, "policy '%s': no window",
                    name);
  }
  if (in->n_windows > RL_MAX_WINDOWS) {
    return rl__fail(RL_ERR_TOO_MANY_WINDOWS, errbuf, errlen,
                    "policy '%s': %zu windows, at most %d", name, in->n_windows,
                    RL_MAX_WINDOWS);
  }
  if (in->log_slots != 0 &&
      (in->log_slots < RL_LOG_SLOTS_MIN || in->log_slots > RL_LOG_SLOTS_MAX)) {
    return rl__fail(RL_ERR_LOG_SLOTS, errbuf, errlen,
                    "policy '%s': log_slots %u is outside %d..%d", name,
                    in->log_slots, RL_LOG_SLOTS_MIN, RL_LOG_SLOTS_MAX);
  }
  return RL_OK;
}

/* Entries a sliding-log window keeps: the configured number (or the
 * default), but never more than the limit: a log of L entries is already
 * exact for limit L, since at most L admission times can be live. */
static uint32_t log_slots_for(uint32_t configured, uint64_t limit) {
  uint64_t s = configured != 0 ? configured : RL_LOG_SLOTS_DEFAULT;
  if (s > limit) {
    s = limit < RL_LOG_SLOTS_MIN ? RL_LOG_SLOTS_MIN : limit;
  }
  return (uint32_t)s;
}

/* Fills the algorithm's view of the policy: defaults and state offsets. */
static void fill_shape(const rl_policy *in, rl__policy_shape *shape) {
  memset(shape, 0, sizeof *shape);
  shape->algorithm = in->algorithm;
  shape->n_windows = in->n_windows;
  size_t offset = 0;
  for (size_t i = 0; i < in->n_windows; i++) {
    rl__window_params *p = &shape->windows[i];
    p->limit = in->windows[i].limit;
    p->duration_ms = in->windows[i].duration_ms;
    p->burst = in->windows[i].burst != 0 ? in->windows[i].burst : p->limit;
    p->log_slots = in->algorithm == RL_ALG_SLIDING_LOG
                       ? log_slots_for(in->log_slots, p->limit)
                       : 0;
    shape->state_offset[i] = offset;
    offset += rl__alg_state_size(in->algorithm, p);
  }
  shape->state_size = offset;
}

static uint32_t fnv1a32_le(uint32_t h, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; i++) {
    h = (h ^ (uint8_t)(v >> (8 * i))) * UINT32_C(16777619);
  }
  return h;
}

uint32_t rl__policy_layout_hash(const rl__policy_shape *shape) {
  uint32_t h = UINT32_C(2166136261);
  h = fnv1a32_le(h, (uint64_t)shape->algorithm, 1);
  h = fnv1a32_le(h, shape->n_windows, 1);
  for (size_t i = 0; i < shape->n_windows; i++) {
    const rl__window_params *p = &shape->windows[i];
    h = fnv1a32_le(h, p->duration_ms, 8);
    h = fnv1a32_le(h, p->log_slots, 4);
    h = fnv1a32_le(h, shape->algorithm == RL_ALG_TOKEN_BUCKET ? p->limit : 0,
                   8);
  }
  return h;
}

int rl__policy_compile(const rl_policy *in, size_t index, rl__policy *out,
                       char *errbuf, size_t errlen) {
  const char *name = NULL;
  int err = check_name(in, index, &name, errbuf, errlen);
  if (err == RL_OK) {
    err = check_shape(in, name, errbuf, errlen);
  }
  for (size_t i = 0; err == RL_OK && i < in->n_windows; i++) {
    err = check_window(in, &in->windows[i], name, i, errbuf, errlen);
  }
  if (err != RL_OK || out == NULL) {
    return err;
  }
  memset(out, 0, sizeof *out);
  out->name_len = strlen(name);
  memcpy(out->name, name, out->name_len);
  fill_shape(in, &out->shape);
  out->layout = rl__policy_layout_hash(&out->shape);
  return RL_OK;
}
