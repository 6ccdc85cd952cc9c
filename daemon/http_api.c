/*
 * http_api.c - ratelimitd's HTTP API, on evhttp.
 *
 *   POST /v1/check   {"policy","key","cost"} -> 200 or 429, JSON decision
 *   GET  /v1/check   ?policy=&key=&cost=     -> the same
 *   GET  /v1/admin/hot-keys                  -> the cache's hot keys
 *   ANY  /v1/auth    ?policy=&key=&cost=     -> 200 or 403 (nginx
 *                                               auth_request)
 *   GET  /health     liveness: the process answers
 *   GET  /ready      config loaded, store usable, not draining
 *   GET  /metrics    Prometheus text
 *
 * The decision path allocates nothing of its own: the body is read in
 * place, strings are decoded into the worker's scratch, header values come
 * precomputed from the snapshot or are assembled on the stack (evhttp
 * still copies headers and buffers internally). Every bad input gets a 4xx
 * with {"error":..., "message":...}; the client's key is never echoed,
 * logged or used as a metric label.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "key_builder.h"
#include "query.h"
#include "response.h"
#include "trace.h"

typedef enum mode { MODE_JSON, MODE_QUERY, MODE_AUTH } mode;

/* One decision in the making. */
typedef struct check {
  rld_check_request in;
  const rld_snap_policy *policy;
  const char *key;
  size_t key_len;
  rl_decision d;
  int err;
  int shadow_denied;
} check;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t headers_bytes(struct evhttp_request *req) {
  size_t n = 0;
  const struct evkeyvalq *q = evhttp_request_get_input_headers(req);
  for (const struct evkeyval *h = q->tqh_first; h != NULL;
       h = h->next.tqe_next) {
    n += strlen(h->key) + strlen(h->value) + 4;
  }
  return n;
}

static const char *uri_query(struct evhttp_request *req, size_t *len) {
  const char *uri = evhttp_request_get_uri(req);
  const char *q = uri != NULL ? strchr(uri, '?') : NULL;
  if (q == NULL) {
    *len = 0;
    return NULL;
  }
  q++;
  *len = strcspn(q, "#");
  return q;
}

static int json_err_status(rld_json_err e) {
  return e == RLD_JSON_OK ? 200 : 400;
}

static const char *json_err_code(rld_json_err e) {
  return e == RLD_JSON_KEY_TOO_LONG ? "key_too_long"
         : e == RLD_JSON_FIELD      ? "invalid_field"
                                    : "invalid_json";
}

/* Reads the inputs of a check from the body or the query. 0 or -1
 * (answered). */
static int read_input(rld_worker *w, struct evhttp_request *req, mode m,
                      check *c) {
  const char *msg = NULL;
  rld_json_err e;
  if (m == MODE_JSON) {
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    if (len > w->snap->config->server.max_body) {
      rld_reply_error(w, req, 413, "body_too_large",
                      "the request body is larger than server.max_body");
      return -1;
    }
    const char *buf = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
    e = rld_json_request_parse(buf, len, w->scratch, sizeof w->scratch, &c->in,
                               &msg);
  } else {
    size_t qlen = 0;
    const char *q = uri_query(req, &qlen);
    e = rld_query_parse(q, qlen, w->scratch, sizeof w->scratch, &c->in, &msg);
  }
  if (e != RLD_JSON_OK) {
    rld_reply_error(w, req, json_err_status(e), json_err_code(e), msg);
    return -1;
  }
  return 0;
}

static int find_policy(rld_worker *w, struct evhttp_request *req, check *c) {
  c->policy = rld_snapshot_find(w->snap, c->in.policy, c->in.policy_len);
  if (c->policy == NULL) {
    rld_reply_error(w, req, 400, "policy_unknown",
                    "no policy with that name in the configuration");
    return -1;
  }
  return 0;
}

static int find_key(rld_worker *w, struct evhttp_request *req, check *c) {
  if (c->in.key != NULL) {
    c->key = c->in.key;
    c->key_len = c->in.key_len;
    return 0;
  }
  const char *missing = NULL;
  int err = rld_key_build(&c->policy->cfg->key,
                          &w->snap->config->server.trusted_proxies, req, w->key,
                          sizeof w->key, &c->key_len, &missing);
  if (err == RL_OK) {
    c->key = w->key;
    return 0;
  }
  char msg[RL_MW_ARG_MAX + 96];
  rld_text t = {msg, sizeof msg, 0, 0};
  if (err == RL_ERR_KEY_TOO_LONG) {
    rld_text_str(&t, "the key built for this request is too long");
  } else if (missing != NULL && missing[0] != '\0') {
    rld_text_str(&t, "no key given and the request lacks header ");
    rld_text_str(&t, missing);
  } else {
    rld_text_str(&t, "no key given and none could be built");
  }
  rld_reply_error(w, req, 400, rl_err_name(err), rld_text_cstr(&t));
  return -1;
}

/* rl_decide, tolerating the instant of a reload when the library already
 * has the new policy set and this worker's snapshot is still the old one
 * (the library is reconfigured first, the snapshot published next). */
static void decide(rld_worker *w, check *c) {
  for (int attempt = 0;; attempt++) {
    rl_request r = {c->policy->cfg->name, strlen(c->policy->cfg->name), c->key,
                    c->key_len, c->in.cost};
    uint64_t t0 = now_ns();
    c->err = rl_decide(w->d->rl, &r, &c->d);
    rld_count_latency(w->counters, now_ns() - t0);
    if (c->err != RL_ERR_POLICY_UNKNOWN || attempt >= 1000) {
      return;
    }
    sched_yield();
    w->snap = rld_published_acquire(&w->d->published, w->snap);
    c->policy = rld_snapshot_find(w->snap, c->in.policy, c->in.policy_len);
    if (c->policy == NULL) {
      return; /* the policy is gone in the new configuration */
    }
  }
}

static int error_status(int err) {
  switch (err) {
  case RL_ERR_NO_MEMORY:
  case RL_ERR_BACKEND_UNAVAILABLE:
  case RL_ERR_TIMEOUT:
  case RL_ERR_SHUTDOWN:
    return 503;
  default:
    return 400;
  }
}

static void add_u64_header(struct evkeyvalq *out, const char *name,
                           uint64_t v) {
  char tmp[24];
  tmp[rl_mw_u64(tmp, v)] = '\0';
  evhttp_add_header(out, name, tmp);
}

static uint64_t ceil_s(uint64_t ms) {
  return ms / 1000 + (ms % 1000 != 0);
}

static void add_headers(rld_worker *w, struct evhttp_request *req,
                        const check *c, int denied) {
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  const rld_snap_policy *p = c->policy;
  evhttp_add_header(out, "RateLimit-Policy", p->policy_header);
  if (c->d.window >= 0 && (size_t)c->d.window < p->shape.n_windows) {
    char v[RLD_ITEM_PREFIX_MAX + 48];
    rld_text t = {v, sizeof v, 0, 0};
    rld_text_str(&t, p->item_prefix[c->d.window]);
    rld_text_u64(&t, c->d.remaining);
    rld_text_str(&t, ";t=");
    rld_text_u64(&t, ceil_s(c->d.reset_after_ms));
    evhttp_add_header(out, "RateLimit", rld_text_cstr(&t));
  }
  uint64_t retry = rl_mw_retry_after_s(&c->d);
  if (denied && retry > 0) {
    add_u64_header(out, "Retry-After", retry);
  }
  if (w->snap->config->server.legacy_headers) {
    add_u64_header(out, "X-RateLimit-Limit", c->d.limit);
    add_u64_header(out, "X-RateLimit-Remaining", c->d.remaining);
    add_u64_header(out, "X-RateLimit-Reset", ceil_s(c->d.reset_after_ms));
  }
}

// NOLINTNEXTLINE(readability-non-const-parameter): written via rld_text
static size_t decision_json(const check *c, char *buf, size_t cap) {
  const rl_decision *d = &c->d;
  rld_text t = {buf, cap, 0, 0};
  rld_text_str(&t, d->allowed || c->shadow_denied ? "{\"allowed\":true"
                                                  : "{\"allowed\":false");
  rld_text_str(&t, ",\"policy\":\"");
  rld_text_str(&t, c->policy->cfg->name);
  rld_text_str(&t, "\",\"limit\":");
  rld_text_u64(&t, d->limit);
  rld_text_str(&t, ",\"remaining\":");
  rld_text_u64(&t, d->remaining);
  rld_text_str(&t, ",\"reset_after_ms\":");
  rld_text_u64(&t, d->reset_after_ms);
  rld_text_str(&t, ",\"retry_after_ms\":");
  if (d->retry_after_ms == RL_RETRY_NEVER) {
    rld_text_str(&t, "null");
  } else {
    rld_text_u64(&t, d->retry_after_ms);
  }
  rld_text_str(&t, ",\"window\":");
  rld_text_u64(&t, (uint64_t)(d->window >= 0 ? d->window : 0));
  rld_text_str(&t, c->shadow_denied ? ",\"shadow_denied\":true"
                                    : ",\"shadow_denied\":false");
  rld_text_str(&t, ",\"source\":\"");
  rld_text_str(&t, rl_source_name(d->source));
  rld_text_str(&t, "\"}\n");
  return t.len;
}

static void answer_decision(rld_worker *w, struct evhttp_request *req, mode m,
                            check *c) {
  rld_result result = RLD_RESULT_ALLOWED;
  if (!c->d.allowed) {
    c->shadow_denied = c->policy->shadow;
    result = c->shadow_denied ? RLD_RESULT_SHADOW_DENIED : RLD_RESULT_DENIED;
  }
  rld_count(&w->counters->decisions[c->policy->slot][result], 1);
  int denied = result == RLD_RESULT_DENIED;
  add_headers(w, req, c, denied);
  char body[512];
  size_t len = decision_json(c, body, sizeof body);
  int status = !denied ? 200 : m == MODE_AUTH ? 403 : 429;
  rld_reply(w, req, status, body, len);
}

/* Head sampling of this decision's span (trace.h); 1 when sampled. */
static int trace_start(rld_worker *w, struct evhttp_request *req,
                       rld_span *span) {
  const rld_trace_settings *s = rld_tracer_settings(w->d->tracer);
  if (s == NULL || !s->enabled) {
    return 0;
  }
  const char *parent =
      evhttp_find_header(evhttp_request_get_input_headers(req), "traceparent");
  return rld_trace_sample(s, parent, span);
}

static void trace_end(rld_worker *w, rld_span *span, const check *c) {
  const rld_snap_policy *p = c->policy;
  rld_trace_finish(span, p != NULL ? p->cfg->name : "",
                   p != NULL ? &p->cfg->policy : NULL, &c->d,
                   p != NULL ? c->err : RL_ERR_POLICY_UNKNOWN,
                   p != NULL && p->shadow);
  rld_tracer_submit(w->d->tracer, span);
}

/* Answers a decided check: the decision, or its error. */
static void finish_check(rld_worker *w, struct evhttp_request *req, mode m,
                         check *c) {
  if (c->policy == NULL || c->err == RL_ERR_POLICY_UNKNOWN) {
    rld_reply_error(w, req, 400, "policy_unknown",
                    "no policy with that name in the configuration");
    return;
  }
  if (c->err != RL_OK) {
    rld_count_error(w->counters, c->err);
    rld_reply_error(w, req, error_status(c->err), rl_err_name(c->err),
                    rl_strerror(c->err));
    return;
  }
  answer_decision(w, req, m, c);
}

/* ---- asynchronous decisions (Redis store) -------------------------------
 * The request stays with evhttp unanswered while Redis decides; the
 * library's callback (its loop thread, or inline) stores the result in the
 * request's pending slot and posts the slot to the worker's mailbox; the
 * worker answers it on its own loop. Slots come from a per-worker array
 * allocated once; the slot holds a snapshot reference so the policy stays
 * valid across a reload. */
typedef struct rld_pending {
  rld_mail mail; /* first: the mailbox hands back this address */
  rld_worker *w;
  struct evhttp_request *req;
  rld_snapshot *snap; /* keeps c.policy alive */
  mode m;
  int traced;
  uint64_t t0;
  check c;
  rld_span span;
} pending;

/* The slot whose rl_decide_async call this worker thread is inside: a
 * callback for it on this thread came inline (cached denial, lease hit,
 * immediate error) and is answered when the call returns, without the
 * mailbox's eventfd round trip. */
static _Thread_local pending *submitting;
static _Thread_local int answered_inline;

static void on_decided(int err, const rl_decision *d, void *ud) {
  pending *p = ud;
  p->c.err = err;
  if (err == RL_OK) {
    p->c.d = *d;
  }
  if (p == submitting) {
    answered_inline = 1;
    return;
  }
  rld_mailbox_post(&p->w->mailbox, &p->mail);
}

static void give_slot(rld_worker *w, pending *p) {
  rld_snapshot_unref(p->snap);
  p->snap = NULL;
  p->mail.next = (rld_mail *)w->free_pending;
  w->free_pending = p;
}

static void deliver(rld_mail *m, void *arg) {
  rld_worker *w = arg;
  pending *p = (pending *)m;
  rld_count_latency(w->counters, now_ns() - p->t0);
  if (p->traced) {
    trace_end(w, &p->span, &p->c);
  }
  if (evhttp_request_get_connection(p->req) == NULL) {
    evhttp_request_free(p->req); /* the client has gone: no one to answer */
  } else {
    finish_check(w, p->req, p->m, &p->c);
  }
  give_slot(w, p);
}

/* Hands the check to rl_decide_async. 0: answered later by deliver();
 * -1: not taken (no free slot, or refused at submission), decide it
 * synchronously. */
static int submit(rld_worker *w, struct evhttp_request *req, mode m,
                  const check *c, const rld_span *span, int traced) {
  pending *p = w->free_pending;
  if (p == NULL) {
    return -1;
  }
  w->free_pending = (pending *)p->mail.next;
  p->req = req;
  p->m = m;
  p->c = *c;
  p->traced = traced;
  if (traced) {
    p->span = *span;
  }
  p->snap = w->snap;
  rld_snapshot_ref(p->snap);
  rl_request r = {c->policy->cfg->name, strlen(c->policy->cfg->name), c->key,
                  c->key_len, c->in.cost};
  rld_mailbox_expect(&w->mailbox);
  p->t0 = now_ns();
  submitting = p;
  answered_inline = 0;
  int rc = rl_decide_async(w->d->rl, &r, on_decided, p);
  submitting = NULL;
  if (rc != RL_OK || answered_inline) {
    rld_mailbox_cancel(&w->mailbox); /* no post will come */
    if (rc != RL_OK) {
      give_slot(w, p);
      return -1;
    }
    deliver(&p->mail, w); /* answered inline */
  }
  return 0;
}

int rld_api_worker_init(rld_worker *w) {
  w->pending_slots = calloc(RLD_PENDING_MAX, sizeof(pending));
  if (w->pending_slots == NULL) {
    return -1;
  }
  for (size_t i = RLD_PENDING_MAX; i-- > 0;) {
    w->pending_slots[i].w = w;
    give_slot(w, &w->pending_slots[i]);
  }
  return rld_mailbox_init(&w->mailbox, w->base, deliver, w);
}

void rld_api_worker_close(rld_worker *w) {
  rld_mailbox_close(&w->mailbox);
  free(w->pending_slots);
  w->pending_slots = NULL;
  w->free_pending = NULL;
}

static void handle_check(rld_worker *w, struct evhttp_request *req, mode m) {
  check c;
  memset(&c, 0, sizeof c);
  if (read_input(w, req, m, &c) != 0 || find_policy(w, req, &c) != 0 ||
      find_key(w, req, &c) != 0) {
    return;
  }
  rld_span span;
  int traced = trace_start(w, req, &span);
  if (w->d->decide_async && submit(w, req, m, &c, &span, traced) == 0) {
    return;
  }
  decide(w, &c);
  if (traced) {
    trace_end(w, &span, &c);
  }
  finish_check(w, req, m, &c);
}

static void handle_health(rld_worker *w, struct evhttp_request *req) {
  static const char body[] = "{\"status\":\"ok\"}\n";
  rld_reply(w, req, 200, body, sizeof body - 1);
}

/* Every policy falls back when the store cannot answer (no policy is in
 * mode none): decisions are then served without the store. */
static int fallback_usable(const rld_config *c) {
  for (size_t i = 0; i < c->n_policies; i++) {
    if (c->policies[i].fallback == RLD_FALLBACK_NONE) {
      return 0;
    }
  }
  return c->n_policies > 0;
}

/* Ready: a configuration is loaded, not draining, and the store answers or
 * every policy's fallback can answer for it (docs/Degradation.md). */
static void handle_ready(rld_worker *w, struct evhttp_request *req) {
  /* Non-blocking: a Redis store is ready when a connection is. */
  int store_ok = rl_wait_ready(w->d->rl, 0, NULL, 0) == RL_OK;
  int draining = atomic_load(&w->d->draining);
  int fb_ok = w->snap != NULL && fallback_usable(w->snap->config);
  int ready = (store_ok || fb_ok) && !draining && w->snap != NULL;
  int redis = w->snap != NULL && w->snap->config->redis.n_addrs > 0;
  char buf[320];
  rld_text t = {buf, sizeof buf, 0, 0};
  rld_text_str(&t, ready ? "{\"ready\":true" : "{\"ready\":false");
  rld_text_str(&t, redis ? ",\"store\":\"redis\"" : ",\"store\":\"memory\"");
  rld_text_str(&t,
               store_ok ? ",\"store_ready\":true" : ",\"store_ready\":false");
  if (redis && !store_ok && fb_ok) {
    rld_text_str(&t, ",\"serving\":\"fallback\"");
  }
  rld_text_str(&t, ",\"draining\":");
  rld_text_str(&t, draining ? "true" : "false");
  rld_text_str(&t, ",\"config_version\":");
  rld_text_u64(&t, w->snap->version);
  rld_text_str(&t, ",\"config_hash\":\"");
  rld_text_str(&t, w->snap->hash_hex);
  rld_text_str(&t, "\",\"policies\":");
  rld_text_u64(&t, w->snap->n_policies);
  rld_text_str(&t, "}\n");
  rld_reply(w, req, ready ? 200 : 503, buf, t.len);
}

static void handle_metrics(rld_worker *w, struct evhttp_request *req) {
  struct evbuffer *out = evhttp_request_get_output_buffer(req);
  rld_metrics_render(&w->d->metrics, w->d->rl, out);
  rld_metrics_render_traces(w->d->tracer, out);
  rld_send(w, req, 200, "text/plain; version=0.0.4");
}

/* GET /v1/admin/hot-keys: the cache's hot keys (rl_hot_keys), hottest
 * first, and its counters. Key bytes appear here only, never in metric
 * labels. {"hot_keys":N,"keys":[{"policy","key","rate","leased"}],
 * "cache":{...}}; N is 0 without a cache. */
#define ADMIN_HOT_KEYS_MAX 64
static void handle_hot_keys(rld_worker *w, struct evhttp_request *req) {
  rl_hot_key keys[ADMIN_HOT_KEYS_MAX];
  size_t n = 0;
  rl_cache_stats s;
  if (rl_hot_keys(w->d->rl, keys, ADMIN_HOT_KEYS_MAX, &n) != RL_OK ||
      rl_cache_stats_get(w->d->rl, &s) != RL_OK) {
    rld_reply_error(w, req, 500, "internal", "cannot read the cache");
    return;
  }
  static _Thread_local char buf[ADMIN_HOT_KEYS_MAX * (RL_CACHE_KEY_MAX * 6 +
                                                      RL_POLICY_NAME_MAX + 96) +
                                512];
  rld_text t = {buf, sizeof buf, 0, 0};
  rld_text_str(&t, "{\"hot_keys\":");
  rld_text_u64(&t, n);
  rld_text_str(&t, ",\"keys\":[");
  for (size_t i = 0; i < n && i < ADMIN_HOT_KEYS_MAX; i++) {
    rld_text_str(&t, i ? ",{\"policy\":" : "{\"policy\":");
    rld_text_json_string(&t, keys[i].policy, strlen(keys[i].policy));
    rld_text_str(&t, ",\"key\":");
    rld_text_json_string(&t, (const char *)keys[i].key, keys[i].key_len);
    rld_text_str(&t, ",\"rate\":");
    rld_text_u64(&t, keys[i].rate);
    rld_text_str(&t,
                 keys[i].leased ? ",\"leased\":true}" : ",\"leased\":false}");
  }
  rld_text_str(&t, "],\"cache\":{\"hits_blocked\":");
  rld_text_u64(&t, s.hits_blocked);
  rld_text_str(&t, ",\"hits_lease\":");
  rld_text_u64(&t, s.hits_lease);
  rld_text_str(&t, ",\"misses\":");
  rld_text_u64(&t, s.misses);
  rld_text_str(&t, ",\"leases\":");
  rld_text_u64(&t, s.leases);
  rld_text_str(&t, ",\"bytes\":");
  rld_text_u64(&t, s.bytes);
  rld_text_str(&t, "}}\n");
  rld_reply(w, req, 200, buf, t.len);
}

typedef struct route {
  const char *path;
  int methods; /* EVHTTP_REQ_* mask; 0 = any */
  int kind;
} route;

enum { R_CHECK, R_AUTH, R_HEALTH, R_READY, R_METRICS, R_HOT_KEYS };

static const route routes[] = {
    {"/v1/check", EVHTTP_REQ_POST | EVHTTP_REQ_GET, R_CHECK},
    {"/v1/auth", 0, R_AUTH},
    {"/health", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, R_HEALTH},
    {"/ready", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, R_READY},
    {"/metrics", EVHTTP_REQ_GET, R_METRICS},
    {"/v1/admin/hot-keys", EVHTTP_REQ_GET, R_HOT_KEYS},
};

static const route *find_route(struct evhttp_request *req) {
  const char *uri = evhttp_request_get_uri(req);
  if (uri == NULL) {
    return NULL;
  }
  size_t len = strcspn(uri, "?#");
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (strlen(routes[i].path) == len &&
        memcmp(routes[i].path, uri, len) == 0) {
      return &routes[i];
    }
  }
  return NULL;
}

static void dispatch(rld_worker *w, struct evhttp_request *req,
                     const route *r) {
  enum evhttp_cmd_type method = evhttp_request_get_command(req);
  switch (r->kind) {
  case R_CHECK:
    handle_check(w, req, method == EVHTTP_REQ_POST ? MODE_JSON : MODE_QUERY);
    break;
  case R_AUTH:
    handle_check(w, req, MODE_AUTH);
    break;
  case R_HEALTH:
    handle_health(w, req);
    break;
  case R_READY:
    handle_ready(w, req);
    break;
  case R_HOT_KEYS:
    handle_hot_keys(w, req);
    break;
  default:
    handle_metrics(w, req);
    break;
  }
}

void rld_api_handle(struct evhttp_request *req, void *arg) {
  rld_worker *w = arg;
  w->snap = rld_published_acquire(&w->d->published, w->snap);
  if (w->draining) {
    w->last_request_ms = now_ns() / 1000000;
  }
  const route *r = find_route(req);
  if (headers_bytes(req) > w->snap->config->server.max_header_bytes) {
    rld_reply_error(w, req, 431, "headers_too_large",
                    "the request headers are larger than "
                    "server.max_header_bytes");
  } else if (r == NULL) {
    rld_reply_error(w, req, 404, "not_found",
                    "no such endpoint (try POST /v1/check)");
  } else if (r->methods != 0 &&
             !(evhttp_request_get_command(req) & (unsigned)r->methods)) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                      r->kind == R_CHECK ? "GET, POST" : "GET");
    rld_reply_error(w, req, 405, "method_not_allowed",
                    "this endpoint does not take that method");
  } else {
    dispatch(w, req, r);
  }
}
