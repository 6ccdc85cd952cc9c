/*
 * fallback_config.c - the fallback settings: names of the modes, checks,
 * and what each compiled policy keeps (its resolved mode and the shape of
 * its local share).
 */
#include <stdint.h>
#include <string.h>

#include "fallback.h"

#define RECONCILE_MAX_KEYS_LIMIT ((size_t)1 << 24)
#define LOCAL_INSTANCES_MAX 1000000u

static const char *const mode_names[] = {"default", "none", "open", "closed",
                                         "local"};

const char *rl_fallback_mode_name(rl_fallback_mode mode) {
  return (unsigned)mode <= RL_FALLBACK_LOCAL ? mode_names[mode] : NULL;
}

int rl_fallback_mode_parse(const char *name, size_t len,
                           rl_fallback_mode *out) {
  if (name == NULL || out == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  for (unsigned i = 0; i <= RL_FALLBACK_LOCAL; i++) {
    if (strlen(mode_names[i]) == len && memcmp(mode_names[i], name, len) == 0) {
      *out = (rl_fallback_mode)i;
      return RL_OK;
    }
  }
  return RL_ERR_CONFIG_INVALID;
}

int rl__fallback_config_check(const rl_config *c, char *errbuf, size_t errlen) {
  if ((unsigned)c->fallback.mode > RL_FALLBACK_LOCAL) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "fallback.mode %d is unknown", (int)c->fallback.mode);
  }
  for (size_t i = 0; i < c->n_policies; i++) {
    if ((unsigned)c->policies[i].fallback > RL_FALLBACK_LOCAL) {
      return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                      "policy %zu: fallback mode %d is unknown", i,
                      (int)c->policies[i].fallback);
    }
  }
  if (c->fallback.local_instances > LOCAL_INSTANCES_MAX) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "fallback.local_instances %u is above %u",
                    c->fallback.local_instances, LOCAL_INSTANCES_MAX);
  }
  if (c->fallback.reconcile_max_keys > RECONCILE_MAX_KEYS_LIMIT) {
    return rl__fail(RL_ERR_CONFIG_INVALID, errbuf, errlen,
                    "fallback.reconcile_max_keys %zu is above %zu",
                    c->fallback.reconcile_max_keys, RECONCILE_MAX_KEYS_LIMIT);
  }
  return RL_OK;
}

static uint64_t share(uint64_t v, uint32_t instances) {
  uint64_t s = v / instances;
  return s > 0 ? s : 1;
}

void rl__fallback_resolve(rl__policy *out, const rl_policy *in,
                          const rl_config *c) {
  rl_fallback_mode m =
      in->fallback != RL_FALLBACK_DEFAULT ? in->fallback : c->fallback.mode;
  out->fallback = m != RL_FALLBACK_DEFAULT ? m : RL_FALLBACK_NONE;
  out->local_shape = out->shape;
  out->local_layout = out->layout;
  uint32_t n = c->fallback.local_instances;
  if (out->fallback != RL_FALLBACK_LOCAL || n <= 1) {
    return;
  }
  rl_policy scaled = *in;
  for (size_t i = 0; i < in->n_windows && i < RL_MAX_WINDOWS; i++) {
    scaled.windows[i].limit = share(in->windows[i].limit, n);
    if (in->windows[i].burst != 0) {
      scaled.windows[i].burst = share(in->windows[i].burst, n);
    }
  }
  rl__policy p;
  if (rl__policy_compile(&scaled, 0, &p, NULL, 0) == RL_OK) {
    out->local_shape = p.shape; /* else the whole limit: still bounded */
    out->local_layout = p.layout;
  }
}
