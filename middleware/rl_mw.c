/*
 * rl_mw.c - the middleware object: a policy, a key spec and the trusted
 * proxies, turned into a verdict per request.
 *
 * The wrappers for evhttp and libmicrohttpd only adapt their server's
 * request to rl_mw_request and the verdict to a response; every decision
 * about status codes and headers is made here once. The RateLimit-Policy
 * value is computed when the middleware is created, not per request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl_mw.h"

struct rl_mw {
  rl_limiter *rl;
  rl_mw_config config;
  rl_policy policy; /* copy of config.policy; config.policy points here */
  char name[RL_POLICY_NAME_MAX + 1];
  int has_name;
  char policy_header[RL_MW_VALUE_MAX];
};

static const char body_denied[] = "{\"error\":\"rate_limited\","
                                  "\"message\":\"too many requests\"}";
static const char body_no_key[] =
    "{\"error\":\"key_empty\",\"message\":\"the request lacks what the "
    "rate-limit key is built from\"}";
static const char body_key_long[] =
    "{\"error\":\"key_too_long\",\"message\":\"the rate-limit key is too "
    "long\"}";
static const char body_unavailable[] =
    "{\"error\":\"rate_limiter_unavailable\",\"message\":\"the rate limiter "
    "failed; try again\"}";

void rl_mw_config_init(rl_mw_config *config) {
  memset(config, 0, sizeof *config);
  config->cost = 1;
}

int rl_mw_new(rl_limiter *rl, const rl_mw_config *config, rl_mw **out) {
  if (rl == NULL || config == NULL || config->policy == NULL || out == NULL ||
      config->policy->n_windows == 0 ||
      config->policy->n_windows > RL_MAX_WINDOWS ||
      (config->policy_name != NULL &&
       strlen(config->policy_name) > RL_POLICY_NAME_MAX)) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  rl_mw *mw = calloc(1, sizeof *mw);
  if (mw == NULL) {
    return RL_ERR_NO_MEMORY;
  }
  mw->rl = rl;
  mw->config = *config;
  mw->policy = *config->policy;
  mw->config.policy = &mw->policy;
  mw->has_name = config->policy_name != NULL;
  snprintf(mw->name, sizeof mw->name, "%s",
           mw->has_name ? config->policy_name : "default");
  mw->config.policy_name = mw->has_name ? mw->name : NULL;
  mw->policy.name = mw->name;
  if (mw->config.cost < 1) {
    mw->config.cost = 1;
  }
  if (rl_mw_format_policy(mw->name, &mw->policy, mw->policy_header,
                          sizeof mw->policy_header) < 0) {
    free(mw);
    return RL_ERR_INVALID_ARGUMENT;
  }
  *out = mw;
  return RL_OK;
}

void rl_mw_free(rl_mw *mw) {
  free(mw);
}

const rl_mw_proxies *rl_mw_trusted_proxies(const rl_mw *mw) {
  return &mw->config.trusted_proxies;
}

static const rl_mw_key_spec *key_spec(const rl_mw *mw) {
  static const rl_mw_key_spec by_ip = {1, {{RL_MW_PART_IP, ""}}};
  return mw->config.key.n_parts > 0 ? &mw->config.key : &by_ip;
}

static int answer(rl_mw_verdict *v, int status, const char *body) {
  v->status = status;
  v->body = body;
  return status;
}

/* A limiter error (not a denial): fail open or closed as configured. */
static int limiter_error(const rl_mw *mw, rl_mw_verdict *v) {
  if (v->err == RL_ERR_KEY_EMPTY) {
    return answer(v, 400, body_no_key);
  }
  if (v->err == RL_ERR_KEY_TOO_LONG) {
    return answer(v, 400, body_key_long);
  }
  return mw->config.fail_open ? answer(v, 0, NULL)
                              : answer(v, 503, body_unavailable);
}

static void fill_values(const rl_mw *mw, rl_mw_verdict *v) {
  if (rl_mw_format_ratelimit(mw->name, &mw->policy, &v->decision, v->ratelimit,
                             sizeof v->ratelimit) < 0) {
    v->ratelimit[0] = '\0';
  }
  uint64_t retry = rl_mw_retry_after_s(&v->decision);
  if (retry > 0) {
    v->retry_after[rl_mw_u64(v->retry_after, retry)] = '\0';
  }
}

int rl_mw_decide(const rl_mw *mw, const rl_mw_request *req, rl_mw_verdict *v) {
  char key[RL_KEY_MAX];
  size_t key_len = 0;
  memset(v, 0, offsetof(rl_mw_verdict, ratelimit));
  v->ratelimit[0] = '\0';
  v->retry_after[0] = '\0';
  v->err = rl_mw_key_build(key_spec(mw), req, key, sizeof key, &key_len, NULL);
  if (v->err == RL_OK) {
    rl_request r = {mw->config.policy_name, mw->has_name ? strlen(mw->name) : 0,
                    key, key_len, mw->config.cost};
    v->err = rl_decide(mw->rl, &r, &v->decision);
  }
  if (v->err != RL_OK) {
    return limiter_error(mw, v);
  }
  fill_values(mw, v);
  if (v->decision.allowed) {
    return answer(v, 0, NULL);
  }
  if (mw->config.shadow) {
    v->shadow_denied = 1;
    v->retry_after[0] = '\0';
    return answer(v, 0, NULL);
  }
  return answer(v, 429, body_denied);
}

static void add_u64(void (*add)(void *, const char *, const char *), void *ctx,
                    const char *name, uint64_t value) {
  char tmp[24];
  tmp[rl_mw_u64(tmp, value)] = '\0';
  add(ctx, name, tmp);
}

void rl_mw_headers(const rl_mw *mw, const rl_mw_verdict *v,
                   void (*add)(void *ctx, const char *name, const char *value),
                   void *ctx) {
  if (v->err != RL_OK) {
    return;
  }
  add(ctx, "RateLimit-Policy", mw->policy_header);
  if (v->ratelimit[0] != '\0') {
    add(ctx, "RateLimit", v->ratelimit);
  }
  if (v->retry_after[0] != '\0') {
    add(ctx, "Retry-After", v->retry_after);
  }
  if (mw->config.legacy_headers) {
    const rl_decision *d = &v->decision;
    add_u64(add, ctx, "X-RateLimit-Limit", d->limit);
    add_u64(add, ctx, "X-RateLimit-Remaining", d->remaining);
    add_u64(add, ctx, "X-RateLimit-Reset",
            d->reset_after_ms / 1000 + (d->reset_after_ms % 1000 != 0));
  }
}
