/*
 * response.h - writing ratelimitd's answers: a bounded text appender for
 * JSON bodies and header values, and the one function that sends a reply
 * (counting it, and closing the connection while draining).
 */
#ifndef RLD_RESPONSE_H
#define RLD_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "daemon.h"

struct evhttp_request;

/* Appends into a fixed buffer; once full, every later write is dropped
 * and overflow is set. */
typedef struct rld_text {
  char *buf;
  size_t cap;
  size_t len;
  int overflow;
} rld_text;

void rld_text_put(rld_text *t, const char *s, size_t n);
void rld_text_str(rld_text *t, const char *s);
void rld_text_u64(rld_text *t, uint64_t v);
/* A JSON string literal, quotes included, escaping as needed. */
void rld_text_json_string(rld_text *t, const char *s, size_t n);
/* NUL-terminates (dropping the last byte if full); returns buf. */
const char *rld_text_cstr(rld_text *t);

/* Sends status with what the output buffer holds. */
void rld_send(rld_worker *w, struct evhttp_request *req, int status,
              const char *content_type);

/* Sends status with body (len bytes) as application/json. */
void rld_reply(rld_worker *w, struct evhttp_request *req, int status,
               const char *body, size_t len);

/* {"error":code,"message":message} with status. */
void rld_reply_error(rld_worker *w, struct evhttp_request *req, int status,
                     const char *code, const char *message);

#endif /* RLD_RESPONSE_H */
