/*
 * resp.c - RESP2 command formatting and reply parsing (see resp.h).
 *
 * Parsing is delegated to hiredis' redisReader (hiredis 0.14.1, parser only:
 * its connection APIs are not used). Its default object functions malloc
 * every reply node; ours place the nodes in an arena that the caller resets
 * after each reply, so a long-lived connection stops allocating once its
 * arena and the reader's input buffer have grown to the working size.
 */
#include "resp.h"

#include <hiredis/read.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimiter.h"

/* ---- rl__buf ------------------------------------------------------------ */

void rl__buf_init(rl__buf *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void rl__buf_close(rl__buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

int rl__buf_reserve(rl__buf *b, size_t extra) {
  if (extra > b->max || b->len > b->max - extra)
    return RL_ERR_NO_MEMORY;
  size_t need = b->len + extra;
  if (need <= b->cap)
    return RL_OK;
  size_t cap = b->cap < 256 ? 256 : b->cap;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > b->max)
    cap = b->max;
  char *p = realloc(b->data, cap);
  if (p == NULL)
    return RL_ERR_NO_MEMORY;
  b->data = p;
  b->cap = cap;
  return RL_OK;
}

int rl__buf_append(rl__buf *b, const void *p, size_t n) {
  int rc = rl__buf_reserve(b, n);
  if (rc != RL_OK)
    return rc;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return RL_OK;
}

void rl__buf_reset(rl__buf *b, size_t keep) {
  b->len = 0;
  if (b->cap > keep)
    rl__buf_close(b);
}

/* ---- command formatting ------------------------------------------------- */

static size_t dec_digits(size_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    n++;
  }
  return n;
}

/* Writes "<prefix><v>\r\n" at p; returns the byte after it. */
static char *put_header(char *p, char prefix, size_t v) {
  size_t n = dec_digits(v);
  *p++ = prefix;
  for (size_t i = n; i > 0; i--) {
    p[i - 1] = (char)('0' + v % 10);
    v /= 10;
  }
  p += n;
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

size_t rl__resp_cmd_len(const rl__redis_args *args) {
  size_t total = 3 + dec_digits((size_t)args->argc);
  for (int i = 0; i < args->argc; i++) {
    size_t l = args->argvlen[i];
    total += 3 + dec_digits(l) + l + 2;
  }
  return total;
}

int rl__resp_format(rl__buf *b, const rl__redis_args *args) {
  if (args == NULL || args->argc < 1 || args->argv == NULL ||
      args->argvlen == NULL)
    return RL_ERR_INVALID_ARGUMENT;
  for (int i = 0; i < args->argc; i++)
    if (args->argv[i] == NULL && args->argvlen[i] != 0)
      return RL_ERR_INVALID_ARGUMENT;
  size_t need = rl__resp_cmd_len(args);
  int rc = rl__buf_reserve(b, need);
  if (rc != RL_OK)
    return rc;
  char *p = put_header(b->data + b->len, '*', (size_t)args->argc);
  for (int i = 0; i < args->argc; i++) {
    size_t l = args->argvlen[i];
    p = put_header(p, '$', l);
    if (l > 0)
      memcpy(p, args->argv[i], l);
    p += l;
    *p++ = '\r';
    *p++ = '\n';
  }
  b->len += need;
  return RL_OK;
}

/* ---- the reply arena ---------------------------------------------------- */

#define ARENA_ALIGN 16
#define ARENA_FIRST_CHUNK 4096
/* Chunk bytes kept across releases. */
#define ARENA_RETAIN ((size_t)64 * 1024)
/* hiredis: an idle input buffer above this is freed. */
#define READER_MAXBUF ((size_t)256 * 1024)

struct rl__arena_chunk {
  rl__arena_chunk *next;
  size_t cap;  /* bytes of data */
  size_t used; /* bytes handed out */
  _Alignas(ARENA_ALIGN) unsigned char data[];
};

static rl__arena_chunk *chunk_new(size_t cap) {
  rl__arena_chunk *c = malloc(sizeof(*c) + cap);
  if (c == NULL)
    return NULL;
  c->next = NULL;
  c->cap = cap;
  c->used = 0;
  return c;
}

/* The first chunk at or after from with n free bytes; appends a new one
 * when none has room. NULL on allocation failure. */
static rl__arena_chunk *chunk_with_room(rl__arena_chunk *from, size_t n) {
  rl__arena_chunk *c = from, *last = from;
  if (from == NULL)
    return NULL;
  for (; c != NULL; last = c, c = c->next)
    if (c->cap - c->used >= n)
      return c;
  size_t cap = last->cap * 2;
  if (cap < n)
    cap = n;
  last->next = chunk_new(cap);
  return last->next;
}

/* Zeroed, aligned arena memory; NULL when over max_reply or out of memory. */
static void *arena_alloc(rl__resp_reader *r, size_t n) {
  n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  if (n > r->max_reply || r->used_total > r->max_reply - n) {
    r->too_large = 1;
    return NULL;
  }
  rl__arena_chunk *c = chunk_with_room(r->cur, n);
  if (c == NULL)
    return NULL;
  r->cur = c;
  void *p = c->data + c->used;
  c->used += n;
  r->used_total += n;
  memset(p, 0, n);
  return p;
}

/* Empties every chunk; frees those past the retention budget. */
static void arena_reset(rl__resp_reader *r) {
  size_t kept = 0;
  rl__arena_chunk *prev = NULL;
  for (rl__arena_chunk *c = r->chunks; c != NULL;) {
    rl__arena_chunk *next = c->next;
    if (prev != NULL && kept + c->cap > ARENA_RETAIN) {
      prev->next = next;
      free(c);
    } else {
      c->used = 0;
      kept += c->cap;
      prev = c;
    }
    c = next;
  }
  r->cur = r->chunks;
  r->used_total = 0;
  r->too_large = 0;
}

/* ---- hiredis object functions ------------------------------------------- */

/* The node for a task: inside its parent array, or a new arena node. */
static rl__redis_reply *task_node(const redisReadTask *t) {
  rl__resp_reader *r = t->privdata;
  if (t->parent != NULL) {
    rl__redis_reply *parent = t->parent->obj;
    return &parent->element[t->idx];
  }
  return arena_alloc(r, sizeof(rl__redis_reply));
}

static void *create_string(const redisReadTask *t, char *str, size_t len) {
  rl__resp_reader *r = t->privdata;
  rl__redis_reply *node = task_node(t);
  char *copy = node == NULL ? NULL : arena_alloc(r, len + 1);
  if (copy == NULL)
    return NULL;
  memcpy(copy, str, len);
  copy[len] = '\0';
  node->type = (rl__reply_type)t->type; /* our values are hiredis' */
  node->str = copy;
  node->len = len;
  return node;
}

static void *create_array(const redisReadTask *t, int elements) {
  rl__resp_reader *r = t->privdata;
  rl__redis_reply *node = task_node(t);
  if (node == NULL)
    return NULL;
  node->type = RL__REPLY_ARRAY;
  node->elements = (size_t)elements;
  if (elements > 0) {
    node->element = arena_alloc(r, (size_t)elements * sizeof(*node));
    if (node->element == NULL)
      return NULL;
  }
  return node;
}

static void *create_integer(const redisReadTask *t, long long v) {
  rl__redis_reply *node = task_node(t);
  if (node == NULL)
    return NULL;
  node->type = RL__REPLY_INTEGER;
  node->integer = v;
  return node;
}

static void *create_nil(const redisReadTask *t) {
  rl__redis_reply *node = task_node(t);
  if (node == NULL)
    return NULL;
  node->type = RL__REPLY_NIL;
  return node;
}

static void free_object(void *obj) {
  (void)obj; /* the arena owns it */
}

static redisReplyObjectFunctions arena_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

/* ---- reader ------------------------------------------------------------- */

static int hiredis_reader_new(rl__resp_reader *r) {
  redisReader *hr = redisReaderCreateWithFunctions(&arena_functions);
  if (hr == NULL)
    return RL_ERR_NO_MEMORY;
  hr->maxbuf = READER_MAXBUF;
  hr->privdata = r;
  r->hr = hr;
  return RL_OK;
}

int rl__resp_reader_init(rl__resp_reader *r, size_t max_reply) {
  memset(r, 0, sizeof(*r));
  r->max_reply = max_reply;
  r->chunks = chunk_new(ARENA_FIRST_CHUNK);
  if (r->chunks == NULL)
    return RL_ERR_NO_MEMORY;
  r->cur = r->chunks;
  int rc = hiredis_reader_new(r);
  if (rc != RL_OK) {
    free(r->chunks);
    r->chunks = NULL;
  }
  return rc;
}

void rl__resp_reader_close(rl__resp_reader *r) {
  if (r->hr != NULL)
    redisReaderFree(r->hr);
  r->hr = NULL;
  while (r->chunks != NULL) {
    rl__arena_chunk *next = r->chunks->next;
    free(r->chunks);
    r->chunks = next;
  }
  r->cur = NULL;
}

int rl__resp_reader_reset(rl__resp_reader *r) {
  if (r->hr != NULL)
    redisReaderFree(r->hr);
  r->hr = NULL;
  arena_reset(r);
  r->errstr[0] = '\0';
  return hiredis_reader_new(r);
}

int rl__resp_feed(rl__resp_reader *r, const char *buf, size_t len) {
  if (r->hr == NULL || redisReaderFeed(r->hr, buf, len) != REDIS_OK)
    return RL_ERR_NO_MEMORY;
  return RL_OK;
}

int rl__resp_next(rl__resp_reader *r, const rl__redis_reply **out) {
  void *reply = NULL;
  *out = NULL;
  if (r->hr == NULL || redisReaderGetReply(r->hr, &reply) != REDIS_OK) {
    const char *why = r->too_large ? "reply larger than the configured maximum"
                      : r->hr == NULL ? "reader not initialised"
                                      : ((redisReader *)r->hr)->errstr;
    strncpy(r->errstr, why, sizeof(r->errstr) - 1);
    r->errstr[sizeof(r->errstr) - 1] = '\0';
    return -1;
  }
  if (reply == NULL)
    return 0;
  *out = reply;
  return 1;
}

void rl__resp_release(rl__resp_reader *r) {
  arena_reset(r);
}

size_t rl__resp_buffered(const rl__resp_reader *r) {
  const redisReader *hr = r->hr;
  return hr == NULL || hr->pos >= hr->len ? 0 : hr->len - hr->pos;
}
