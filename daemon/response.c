/*
 * response.c - replies: JSON text without allocation, status counting,
 * the in-flight count that graceful shutdown waits on.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

#include "../middleware/rl_mw.h"
#include "response.h"

void rld_text_put(rld_text *t, const char *s, size_t n) {
  if (t->overflow || n > t->cap - t->len) {
    t->overflow = 1;
    return;
  }
  memcpy(t->buf + t->len, s, n);
  t->len += n;
}

void rld_text_str(rld_text *t, const char *s) {
  rld_text_put(t, s, strlen(s));
}

void rld_text_u64(rld_text *t, uint64_t v) {
  char tmp[24];
  size_t n = rl_mw_u64(tmp, v);
  rld_text_put(t, tmp, n);
}

void rld_text_json_string(rld_text *t, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  rld_text_put(t, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      rld_text_put(t, esc, 2);
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      rld_text_put(t, esc, 6);
    } else {
      rld_text_put(t, (const char *)&c, 1);
    }
  }
  rld_text_put(t, "\"", 1);
}

const char *rld_text_cstr(rld_text *t) {
  size_t at = t->len < t->cap ? t->len : t->cap - 1;
  t->buf[at] = '\0';
  return t->buf;
}

static const char *reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 413:
    return "Content Too Large";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 503:
    return "Service Unavailable";
  default:
    return "Internal Server Error";
  }
}

static void on_complete(struct evhttp_request *req, void *arg) {
  (void)req;
  rld_worker *w = arg;
  if (w->inflight > 0) {
    w->inflight--;
  }
}

void rld_send(rld_worker *w, struct evhttp_request *req, int status,
              const char *content_type) {
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", content_type);
  if (w->draining) {
    evhttp_add_header(out, "Connection", "close");
  }
  rld_count_status(w->counters, status);
  w->inflight++;
  evhttp_request_set_on_complete_cb(req, on_complete, w);
  evhttp_send_reply(req, status, reason(status), NULL);
}

void rld_reply(rld_worker *w, struct evhttp_request *req, int status,
               const char *body, size_t len) {
  evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
  rld_send(w, req, status, "application/json");
}

void rld_reply_error(rld_worker *w, struct evhttp_request *req, int status,
                     const char *code, const char *message) {
  char buf[512];
  rld_text t = {buf, sizeof buf, 0, 0};
  rld_text_str(&t, "{\"error\":");
  rld_text_json_string(&t, code, strlen(code));
  rld_text_str(&t, ",\"message\":");
  rld_text_json_string(&t, message, strlen(message));
  rld_text_str(&t, "}\n");
  rld_reply(w, req, status, buf, t.len);
}
