/*
 * redis_testutil.h - helpers shared by the Redis connection tests: build
 * commands from string literals, copy a reply out of the loop thread, and
 * compute deadlines.
 */
#ifndef RLT_REDIS_TESTUTIL_H
#define RLT_REDIS_TESTUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "harness/redis_server.h"
#include "redis_conn.h"

#define RLT_MAX_ARGS 16

/* A command built from NUL-terminated strings. */
typedef struct rlt_cmd {
  const char *argv[RLT_MAX_ARGS];
  size_t lens[RLT_MAX_ARGS];
  rl__redis_args args;
} rlt_cmd;

/* The command of the strings in ap up to a NULL; returns &c->args. */
static inline const rl__redis_args *rlt_cmd_vmake(rlt_cmd *c, va_list ap) {
  int n = 0;
  const char *a;
  while (n < RLT_MAX_ARGS && (a = va_arg(ap, const char *)) != NULL) {
    c->argv[n] = a;
    c->lens[n] = strlen(a);
    n++;
  }
  c->args.argc = n;
  c->args.argv = c->argv;
  c->args.argvlen = c->lens;
  return &c->args;
}

/* rlt_cmd_make(&c, "SET", "k", "v", NULL): returns &c.args. */
static inline const rl__redis_args *rlt_cmd_make(rlt_cmd *c, ...) {
  va_list ap;
  va_start(ap, c);
  const rl__redis_args *args = rlt_cmd_vmake(c, ap);
  va_end(ap);
  return args;
}

/* A reply copied out of the arena: enough for the tests' checks. */
typedef struct rlt_reply {
  int type;
  long long integer;
  char str[256];
  size_t elements;
  int el_type[8];
  long long el_int[8];
  char el_str[8][64];
  size_t el_elements[8];
} rlt_reply;

static inline int rlt_consume(const rl__redis_reply *r, void *out) {
  rlt_reply *o = out;
  memset(o, 0, sizeof(*o));
  o->type = (int)r->type;
  o->integer = r->integer;
  if (r->str != NULL)
    snprintf(o->str, sizeof(o->str), "%s", r->str);
  o->elements = r->elements;
  for (size_t i = 0; i < r->elements && i < 8; i++) {
    const rl__redis_reply *e = &r->element[i];
    o->el_type[i] = (int)e->type;
    o->el_int[i] = e->integer;
    o->el_elements[i] = e->elements;
    if (e->str != NULL)
      snprintf(o->el_str[i], sizeof(o->el_str[i]), "%s", e->str);
  }
  return 0;
}

/* Whether a callback got the reply an INCR whose tag is the value it
 * must return should get (matching and per-connection order). */
static inline int rlt_incr_matches(int status, const rl__redis_reply *r,
                                   uint64_t tag) {
  return status == RL_OK && r->type == RL__REPLY_INTEGER &&
         (uint64_t)r->integer == tag;
}

static inline int64_t rlt_deadline(int64_t ms) {
  return rl__mono_ns() + ms * 1000000;
}

/* Blocking call with a reply copy; deadline ms from now. */
static inline int rlt_call(rl__redis_node *node, rlt_reply *out, int64_t ms,
                           ...) {
  rlt_cmd c;
  va_list ap;
  va_start(ap, ms);
  rlt_cmd_vmake(&c, ap);
  va_end(ap);
  rlt_reply scratch;
  return rl__redis_node_call(node, &c.args, rlt_deadline(ms), rlt_consume,
                             out ? out : &scratch);
}

/* Options for a node talking to server r (plain, no auth). */
static inline void rlt_node_opts(rl__redis_node_opts *o, const rlt_redis *r) {
  rl__redis_node_opts_init(o);
  o->host = "127.0.0.1";
  o->port = r->port;
}

#endif /* RLT_REDIS_TESTUTIL_H */
