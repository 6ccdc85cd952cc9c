/*
 * resp.h - RESP2 command formatting and reply parsing for the Redis store.
 *
 * Shaped by one workload: a connection that pipelines many small commands
 * (EVALSHA with a handful of arguments) and reads as many small replies,
 * forever. Both directions therefore reuse memory:
 *
 *   - Commands are appended to an rl__buf: a growable byte buffer with a
 *     hard cap (like curl's dynbuf). It grows while a burst needs it and is
 *     then reused; steady state does not allocate.
 *   - Replies are parsed by hiredis' redisReader (the I/O-free parser of
 *     hiredis 0.14) with our own object functions, which build the reply
 *     tree in an arena owned by the reader. The arena is reset after each
 *     reply has been consumed; its chunks are kept (up to a retention
 *     limit), so steady state does not allocate either.
 *
 * Nothing here does I/O or takes a lock: one reader belongs to one
 * connection and is used by one thread at a time.
 */
#ifndef RL_RESP_H
#define RL_RESP_H

#include <stddef.h>
#include <stdint.h>

/* ---- growable byte buffer with a hard cap ------------------------------ */

typedef struct rl__buf {
  char *data; /* NULL until the first append */
  size_t len; /* bytes in use */
  size_t cap; /* bytes allocated */
  size_t max; /* hard cap on len; appends beyond it fail */
} rl__buf;

/* An empty buffer that may grow to max bytes. Allocates nothing. */
void rl__buf_init(rl__buf *b, size_t max);
/* Frees the memory; the buffer is then empty (and may be reused). */
void rl__buf_close(rl__buf *b);
/* Makes room for extra more bytes. Returns RL_OK, or RL_ERR_NO_MEMORY when
 * the cap would be exceeded or allocation fails (b unchanged). */
int rl__buf_reserve(rl__buf *b, size_t extra);
/* Appends n bytes. Same errors as rl__buf_reserve; b unchanged on error. */
int rl__buf_append(rl__buf *b, const void *p, size_t n);
/* Drops everything; frees the memory if it grew above keep bytes (so one
 * huge burst does not pin memory forever). */
void rl__buf_reset(rl__buf *b, size_t keep);

/* ---- command formatting ------------------------------------------------- */

/* A command: argc arguments, each argv[i] of argvlen[i] bytes (binary safe).
 * Borrowed for the duration of the call that takes it. */
typedef struct rl__redis_args {
  int argc;
  const char *const *argv;
  const size_t *argvlen;
} rl__redis_args;

/* Bytes the RESP encoding of args takes ("*<argc>\r\n" then "$<len>\r\n"
 * "<bytes>\r\n" per argument). */
size_t rl__resp_cmd_len(const rl__redis_args *args);
/* Appends the RESP encoding of args to b. Returns RL_OK,
 * RL_ERR_INVALID_ARGUMENT (argc < 1 or a NULL argument), or
 * RL_ERR_NO_MEMORY (cap or allocation); b is unchanged on error. */
int rl__resp_format(rl__buf *b, const rl__redis_args *args);

/* ---- replies ------------------------------------------------------------ */

typedef enum rl__reply_type {
  RL__REPLY_STRING = 1, /* bulk string: str, len */
  RL__REPLY_ARRAY = 2,  /* element[0..elements-1] */
  RL__REPLY_INTEGER = 3,
  RL__REPLY_NIL = 4, /* null bulk string or null array */
  RL__REPLY_STATUS = 5,
  RL__REPLY_ERROR = 6, /* "-ERR ..." : str is the text without the '-' */
} rl__reply_type;

/* One reply. Lives in the reader's arena: valid only until the reply is
 * released (for a callback: until the callback returns). */
typedef struct rl__redis_reply {
  rl__reply_type type;
  long long integer;               /* INTEGER */
  size_t len;                      /* STRING, STATUS, ERROR: bytes */
  const char *str;                 /* ... NUL-terminated for convenience */
  size_t elements;                 /* ARRAY */
  struct rl__redis_reply *element; /* ARRAY: contiguous, elements long */
} rl__redis_reply;

/* Arena chunk; internal to resp.c. */
typedef struct rl__arena_chunk rl__arena_chunk;

/* A reply reader: hiredis' parser + the arena the replies are built in. */
typedef struct rl__resp_reader {
  void *hr;                /* redisReader * */
  rl__arena_chunk *chunks; /* first chunk; kept across resets */
  rl__arena_chunk *cur;    /* chunk being filled */
  size_t used_total;       /* bytes handed out since the last release */
  size_t max_reply;        /* cap on one reply's arena bytes */
  int too_large;           /* the current reply hit max_reply */
  char errstr[128];        /* why rl__resp_next() failed */
} rl__resp_reader;

/* Prepares a reader whose replies may take up to max_reply bytes of arena.
 * Returns RL_OK or RL_ERR_NO_MEMORY (nothing to close then). */
int rl__resp_reader_init(rl__resp_reader *r, size_t max_reply);
/* Frees everything the reader holds. */
void rl__resp_reader_close(rl__resp_reader *r);
/* Forgets all buffered bytes and any error: for a new connection. */
int rl__resp_reader_reset(rl__resp_reader *r);
/* Copies len bytes of input into the parser. Returns RL_OK, or
 * RL_ERR_NO_MEMORY. */
int rl__resp_feed(rl__resp_reader *r, const char *buf, size_t len);
/* Parses the next complete reply. Returns 1 and sets *out (valid until
 * rl__resp_release()), 0 when more input is needed, or -1 on a protocol
 * error or a reply over max_reply (r->errstr says which; the reader is then
 * unusable until rl__resp_reader_reset()). */
int rl__resp_next(rl__resp_reader *r, const rl__redis_reply **out);
/* Releases the last reply: resets the arena (keeps its memory). */
void rl__resp_release(rl__resp_reader *r);
/* Input bytes fed but not yet parsed into a reply. */
size_t rl__resp_buffered(const rl__resp_reader *r);

#endif /* RL_RESP_H */
