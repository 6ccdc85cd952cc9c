/*
 * trace_export.c - the exporter half of tracing (trace.h): a bounded
 * lock-free span queue (D. Vyukov's bounded MPMC ring, used with one
 * consumer), a thread that batches spans into OTLP/HTTP JSON and POSTs them
 * with libcurl.
 *
 * Workers only ever try one slot: a full queue drops the span (counted),
 * so a slow or dead collector never slows a decision. Everything the
 * exporter allocates (batch, JSON text, curl handle) is its own.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trace.h"

typedef struct cell {
  atomic_size_t seq;
  rld_span span;
} cell;

struct rld_tracer {
  rld_trace_settings s;
  cell *cells;
  size_t mask;
  atomic_size_t head; /* next slot a worker claims */
  size_t tail;        /* next slot the exporter reads */
  _Atomic uint64_t queued, dropped, exported, failed;
  rld_span *batch; /* batch_max */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stopping; /* under mu */
  CURL *curl;
  struct curl_slist *headers;
};

/* ---- the queue ---------------------------------------------------------- */

void rld_tracer_submit(rld_tracer *t, const rld_span *span) {
  if (t == NULL) {
    return;
  }
  size_t pos = atomic_load_explicit(&t->head, memory_order_relaxed);
  for (;;) {
    cell *c = &t->cells[pos & t->mask];
    size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    intptr_t dif = (intptr_t)seq - (intptr_t)pos;
    if (dif == 0) {
      if (atomic_compare_exchange_weak_explicit(&t->head, &pos, pos + 1,
                                                memory_order_relaxed,
                                                memory_order_relaxed)) {
        c->span = *span;
        atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
        atomic_fetch_add_explicit(&t->queued, 1, memory_order_relaxed);
        return;
      }
    } else if (dif < 0) { /* full */
      atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
      return;
    } else {
      pos = atomic_load_explicit(&t->head, memory_order_relaxed);
    }
  }
}

/* Takes up to max spans into out (exporter thread only). */
static size_t take(rld_tracer *t, rld_span *out, size_t max) {
  size_t n = 0;
  while (n < max) {
    cell *c = &t->cells[t->tail & t->mask];
    size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
    if (seq != t->tail + 1) {
      break;
    }
    out[n++] = c->span;
    atomic_store_explicit(&c->seq, t->tail + t->mask + 1, memory_order_release);
    t->tail++;
  }
  return n;
}

/* ---- OTLP/HTTP JSON ----------------------------------------------------- */

typedef struct text {
  char *buf;
  size_t len, cap;
  int oom;
} text;

/* Makes room for n more bytes and a NUL; 0, or -1 (oom set). */
static int room(text *t, size_t n) {
  if (!t->oom && t->cap - t->len <= n) {
    size_t cap = (t->cap + n + 1) * 2;
    char *b = realloc(t->buf, cap);
    if (b == NULL) {
      t->oom = 1;
    } else {
      t->buf = b;
      t->cap = cap;
    }
  }
  return t->oom ? -1 : 0;
}

__attribute__((format(printf, 2, 3))) static void add(text *t, const char *fmt,
                                                      ...) {
  for (int attempt = 0; attempt < 2 && !t->oom; attempt++) {
    va_list ap;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->oom = 1;
    } else if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    } else {
      room(t, (size_t)n);
    }
  }
}

/* Appends n bytes as they are. */
static void add_raw(text *t, const char *s, size_t n) {
  if (room(t, n) == 0) {
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
  }
}

/* A JSON string (quotes included) of s. */
static void add_str(text *t, const char *s) {
  add_raw(t, "\"", 1);
  for (;;) {
    size_t plain = strcspn(s, "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\t\n"
                              "\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14"
                              "\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e"
                              "\x1f");
    add_raw(t, s, plain);
    s += plain;
    if (*s == '\0') {
      break;
    }
    add(t, "\\u%04x", (unsigned char)*s++);
  }
  add_raw(t, "\"", 1);
}

static void add_cstr(text *t, const char *s) {
  add_raw(t, s, strlen(s));
}

/* Keys are ours (plain ASCII); values are escaped. */
static void add_attr(text *t, const char *key, const char *value, int first) {
  add_cstr(t, first ? "{\"key\":\"" : ",{\"key\":\"");
  add_cstr(t, key);
  add_cstr(t, "\",\"value\":{\"stringValue\":");
  add_str(t, value);
  add_cstr(t, "}}");
}

static void add_span(text *t, const rld_span *sp) {
  char trace[33], span[17], parent[17];
  rld_hex(sp->trace_id, 16, trace);
  rld_hex(sp->span_id, 8, span);
  rld_hex(sp->parent_id, 8, parent);
  add(t, "{\"traceId\":\"%s\",\"spanId\":\"%s\",", trace, span);
  if (sp->has_parent) {
    add(t, "\"parentSpanId\":\"%s\",", parent);
  }
  add(t,
      "\"name\":\"ratelimit.decide\",\"kind\":2,"
      "\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\","
      "\"attributes\":[",
      (unsigned long long)sp->start_unix_ns,
      (unsigned long long)sp->end_unix_ns);
  add_attr(t, "ratelimit.policy", sp->policy, 1);
  add_attr(t, "ratelimit.result", sp->result, 0);
  add_attr(t, "ratelimit.source", sp->source, 0);
  if (sp->window[0] != '\0') {
    add_attr(t, "ratelimit.window", sp->window, 0);
  }
  if (sp->error != NULL) {
    add_attr(t, "ratelimit.error", sp->error, 0);
    add(t, "],\"status\":{\"code\":2,\"message\":\"%s\"}}", sp->error);
  } else {
    add(t, "],\"status\":{\"code\":1}}");
  }
}

char *rld_otlp_json(const rld_trace_settings *s, const rld_span *spans,
                    size_t n, size_t *len) {
  text t = {malloc(4096), 0, 4096, 0};
  t.oom = t.buf == NULL;
  add(&t, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  add_attr(&t, "service.name", s->service_name, 1);
  add_attr(&t, "service.version", rl_version(), 0);
  add(&t, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"ratelimitd\","
          "\"version\":");
  add_str(&t, rl_version());
  add(&t, "},\"spans\":[");
  for (size_t i = 0; i < n; i++) {
    add(&t, "%s", i > 0 ? "," : "");
    add_span(&t, &spans[i]);
  }
  add(&t, "]}]}]}");
  if (t.oom) {
    free(t.buf);
    return NULL;
  }
  *len = t.len;
  return t.buf;
}

/* ---- the exporter thread ------------------------------------------------ */

// NOLINTNEXTLINE(readability-non-const-parameter): curl's signature
static size_t discard(char *data, size_t size, size_t n, void *ud) {
  (void)data;
  (void)ud;
  return size * n;
}

/* POSTs n spans; counts them as exported (2xx) or failed. */
static void export_batch(rld_tracer *t, size_t n) {
  size_t len = 0;
  char *json = rld_otlp_json(&t->s, t->batch, n, &len);
  long code = 0;
  if (json != NULL) {
    curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(t->curl, CURLOPT_POSTFIELDSIZE, (long)len);
    if (curl_easy_perform(t->curl) == CURLE_OK) {
      curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
    }
    free(json);
  }
  atomic_fetch_add(code >= 200 && code < 300 ? &t->exported : &t->failed, n);
}

static void *exporter(void *arg) {
  rld_tracer *t = arg;
  for (;;) {
    pthread_mutex_lock(&t->mu);
    if (!t->stopping) {
      struct timespec until;
      clock_gettime(CLOCK_REALTIME, &until);
      uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)t->s.delay_ms * 1000000;
      until.tv_sec += (time_t)(ns / 1000000000);
      until.tv_nsec = (long)(ns % 1000000000);
      pthread_cond_timedwait(&t->cv, &t->mu, &until);
    }
    int stop = t->stopping;
    pthread_mutex_unlock(&t->mu);
    size_t n;
    while ((n = take(t, t->batch, t->s.batch_max)) > 0) {
      export_batch(t, n);
    }
    if (stop) {
      return NULL;
    }
  }
}

static int setup_curl(rld_tracer *t) {
  t->curl = curl_easy_init();
  t->headers = curl_slist_append(NULL, "Content-Type: application/json");
  /* No "Expect: 100-continue" round trip before large batches. */
  struct curl_slist *more =
      t->headers != NULL ? curl_slist_append(t->headers, "Expect:") : NULL;
  if (t->curl == NULL || more == NULL) {
    return -1;
  }
  t->headers = more;
  curl_easy_setopt(t->curl, CURLOPT_URL, t->s.endpoint);
  curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(t->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(t->curl, CURLOPT_TIMEOUT_MS, (long)t->s.timeout_ms);
  curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, discard);
  return 0;
}

static size_t pow2_at_least(size_t n) {
  size_t p = 2;
  while (p < n) {
    p *= 2;
  }
  return p;
}

static void tracer_free(rld_tracer *t) {
  if (t->curl != NULL) {
    curl_easy_cleanup(t->curl);
  }
  curl_slist_free_all(t->headers);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t->cells);
  free(t->batch);
  free(t);
}

int rld_tracer_start(const rld_trace_settings *s, rld_tracer **out, char *err,
                     size_t errlen) {
  rld_tracer *t = calloc(1, sizeof *t);
  if (t == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    free(t);
    snprintf(err, errlen, "tracing: cannot initialise libcurl");
    return -1;
  }
  t->s = *s;
  size_t n = pow2_at_least(s->queue_max);
  t->mask = n - 1;
  t->cells = calloc(n, sizeof *t->cells);
  t->batch = calloc(s->batch_max, sizeof *t->batch);
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  for (size_t i = 0; t->cells != NULL && i < n; i++) {
    atomic_init(&t->cells[i].seq, i);
  }
  int rc = t->cells == NULL || t->batch == NULL ? ENOMEM : 0;
  rc = rc == 0 && setup_curl(t) != 0 ? ENOMEM : rc;
  rc = rc == 0 ? pthread_create(&t->thread, NULL, exporter, t) : rc;
  if (rc != 0) {
    snprintf(err, errlen, "tracing: cannot start the exporter: %s",
             strerror(rc));
    tracer_free(t);
    return -1;
  }
  *out = t;
  return 0;
}

void rld_tracer_stop(rld_tracer *t) {
  if (t == NULL) {
    return;
  }
  pthread_mutex_lock(&t->mu);
  t->stopping = 1;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  tracer_free(t);
  curl_global_cleanup();
}

const rld_trace_settings *rld_tracer_settings(const rld_tracer *t) {
  return t != NULL ? &t->s : NULL;
}

void rld_tracer_stats_get(const rld_tracer *t, rld_tracer_stats *out) {
  memset(out, 0, sizeof *out);
  if (t != NULL) {
    out->queued = atomic_load(&t->queued);
    out->dropped = atomic_load(&t->dropped);
    out->exported = atomic_load(&t->exported);
    out->failed = atomic_load(&t->failed);
  }
}
