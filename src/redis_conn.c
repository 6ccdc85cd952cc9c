/*
 * redis_conn.c - nodes, their pipelined connections, and the connection
 * state machine run by the loop thread (see redis_conn.h for the API).
 *
 * DESIGN
 *
 * Threads. Submitters (any thread) and the loop thread share exactly one
 * thing per connection: `mu`, which guards the submission side (the
 * formatted-but-untaken bytes `pend`, their request records `submitted`,
 * the record free list, and `accept_rc`, the answer a submission gets
 * right now). Everything else in a connection is owned by the loop thread
 * and touched without a lock. There is no node-wide or global lock on the
 * request path; the node mutex only guards errstr and ready counts.
 *
 * Submission. A submitter locks its connection, takes a record from the
 * preallocated free list (none left: "queue full", immediate error),
 * appends the RESP bytes to `pend` and the record to `submitted`, unlocks,
 * and wakes the loop (rl__redis_loop_wake: at most one wakeup pending).
 * Steady state allocates nothing: records are preallocated, `pend` is
 * reused.
 *
 * Idle fast path. When a plain-TCP connection is READY with nothing
 * unsent and nothing outstanding, the submitter send()s its command itself
 * under `mu` (the loop writes only from `out`, which is then empty, so the
 * byte order holds; the loop clears `direct_ok` under `mu` before it
 * queues bytes or closes the socket). The loop is still woken, to track
 * the deadline, but that wakeup overlaps the round trip instead of
 * preceding it: one thread handoff less for a synchronous caller. A reply
 * that beats the loop to its record is matched after taking `submitted`.
 * A blocking caller (rl__redis_node_submit_lazy) skips even that wakeup
 * when it sent every byte: it enforces its own deadline, the loop finds
 * the record when the reply arrives, and the caller kicks the loop if it
 * gives up, so that the loop then times the record out and its stall
 * detection still sees a server that stopped answering.
 *
 * Caller-read exchange (rl__redis_node_call, plain TCP, breaker closed).
 * Even with the idle fast path, a blocking caller's reply reaches it
 * through two wakeups: the loop's (epoll) and then the caller's (condvar).
 * When the thread's connection is idle (READY, nothing unsent or
 * outstanding, the loop not reading), the caller claims it instead:
 * under `mu` it stores its socket in `self_fd` and checks `loop_reading`
 * (the loop stores `loop_reading` and then checks `self_fd`, both seq_cst:
 * at most one of the two goes on). The claimer sends its command, waits on
 * the socket itself (ppoll to its deadline), parses the one reply with its
 * own reader and gives the connection back: one wakeup, as a client that
 * owns its socket has. While a claim stands the loop neither reads that
 * socket (the read event is edge-triggered, so skipping costs nothing;
 * an edge on an idle connection is met with a peek, not a read, so the
 * next claimer is not turned away) nor takes new submissions (they wait, at
 * most one round trip, and the claimer wakes the loop when it leaves:
 * `self_deferred`), so the claimed command is the only one on the wire. A
 * claimer that gives up (deadline, error) hands the bytes it read and a
 * tombstone record (answered, at the head of `submitted`) to the loop, which
 * then matches the late reply as it does for any abandoned request; a claimer
 * that could not send all of its command asks the loop to reset the connection.
 * A socket the loop closes during a claim is only shut down (the claimer wakes
 * at once) and left to the claimer to close, so its number cannot be reused
 * under it.
 *
 * Pipelining. When woken, the loop takes the whole submission side in one
 * lock: the records move to the in-flight FIFO and the deadline heap, and
 * the bytes move to `out` by swapping buffers (no copy) when `out` is
 * empty, or by appending. Then it writes `out` with one write() (or
 * SSL_write) per loop turn while the kernel accepts it. Whatever was
 * submitted while the loop was busy goes out together in the next write:
 * the more load, the bigger the batches. Replies are matched to the
 * in-flight FIFO in order.
 *
 * Exactly once. Every record is in exactly one place: free list,
 * `submitted`, in-flight FIFO (plus the heap while its callback is owed).
 * The callback fires from exactly one of: the reply (record leaves the
 * FIFO), the deadline timer (record leaves the heap and is marked
 * `answered`; it stays in the FIFO as a tombstone so that its late reply
 * is consumed and dropped), a connection failure or a shutdown (everything
 * in `submitted` and in the FIFO that is not `answered`). Records go back
 * to the free list in batches, one lock per read event.
 *
 * Connection states. DOWN (waiting for the backoff timer; submissions fail
 * at once) -> CONNECTING (non-blocking connect) -> TLS (handshake, if
 * enabled) -> HANDSHAKE (AUTH, SELECT, SCRIPT LOAD pipelined; their replies
 * are checked in order and none reaches a caller) -> READY. From
 * CONNECTING to HANDSHAKE submissions are accepted and queued (their
 * deadlines run); they are written once READY. Any error -> DOWN, with
 * the reason in the node's errstr, every owed callback fired with
 * RL_ERR_BACKEND_UNAVAILABLE, and a reconnect after an exponential backoff
 * (backoff_min_ms doubling to backoff_max_ms, "equal jitter": half fixed,
 * half random). The connect timeout covers CONNECTING..HANDSHAKE. CLOSED is
 * final (node freed).
 */
#include "redis_conn.h"

#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "breaker.h"
#include "ratelimiter.h"

#define NO_DEADLINE INT64_MAX
#define NOT_IN_HEAP UINT32_MAX
#define READ_CHUNK ((size_t)16 * 1024)
/* Idle out/pend memory kept per connection. */
#define OUT_KEEP ((size_t)1024 * 1024)
#define POOL_MAX 64
#define QUEUE_MAX_LIMIT (1u << 20)
/* A SYN unanswered this long is sent again on a fresh socket (then after
 * twice as long, ...) within the connect timeout: the kernel's own first
 * retransmission waits 1 s, then 3 s, which is what a healed network
 * partition would wait for (docs/Degradation.md). */
#define SYN_RETRY_NS ((int64_t)200 * 1000000)

enum conn_state {
  ST_IDLE,
  ST_DOWN,
  ST_CONNECTING,
  ST_TLS,
  ST_HANDSHAKE,
  ST_READY,
  ST_CLOSED
};

enum hs_kind { HS_AUTH, HS_SELECT, HS_SCRIPT };

/* One request: preallocated, recycled through the connection's free list. */
typedef struct rl__req {
  struct rl__req *next; /* free list, `submitted` or the in-flight FIFO */
  rl__redis_cb cb;
  void *ud;
  uint64_t tag;
  int64_t deadline_ns; /* NO_DEADLINE: not in the heap */
  uint32_t heap_idx;   /* index in the deadline heap, or NOT_IN_HEAP */
  uint8_t answered;    /* callback fired early; reply will be dropped */
  uint8_t skip_reply;  /* an ASKING went out just before: its +OK comes
                        * first and is dropped (cluster ASK redirection) */
} rl__req;

typedef struct req_fifo {
  rl__req *head, *tail;
} req_fifo;

typedef struct rl__conn {
  rl__wakeable wake;
  rl__redis_node *node;
  /* ---- submission side: under mu ---- */
  pthread_mutex_t mu;
  int accept_rc;           /* RL_OK: queue; else what submit returns */
  int direct_ok;           /* READY, plain TCP, out empty: an idle connection's
                            * submitter may send() its command itself (written
                            * by the loop only, under mu) */
  rl__buf pend;            /* RESP bytes not yet taken by the loop */
  req_fifo submitted;      /* their records, in order */
  rl__req *free;           /* free records */
  int self_deferred;       /* the loop left submissions to a claimer */
  int self_reset;          /* a claimer asks the loop to reset the connection */
  int self_reread;         /* a claimer gave up: the loop reads the socket */
  int zombie_fd;           /* shut down by the loop during a claim; the
                            * claimer closes it (-1: none) */
  rl__buf handover;        /* bytes a claimer read and gave back */
  atomic_int self_fd;      /* socket claimed by a caller (set under mu),
                            * -1: none; see "Caller-read exchange" */
  atomic_int loop_reading; /* the loop is in conn_read() */
  atomic_int self_note;    /* a claimer left work: take_note() */
  /* ---- the claimer's, one claimer at a time (handed over under mu) ---- */
  rl__buf self_out;        /* its formatted command */
  rl__buf self_in;         /* the bytes it read, kept for a handover */
  rl__resp_reader self_rd; /* its reply parser */
  /* ---- loop thread only ---- */
  enum conn_state state;
  int fd;
  rl__tls_conn *tls;
  struct event *rd_ev, *wr_ev; /* per socket */
  struct event *deadline_ev;   /* earliest request deadline */
  struct event *state_ev;      /* connect timeout or reconnect backoff */
  int wr_armed;
  int read_wants_write; /* TLS: SSL_read asked for writability */
  int write_wants_read; /* TLS: SSL_write asked for readability */
  int pend_left;        /* bytes stayed in pend: out was full */
  rl__buf out;          /* bytes being written */
  size_t out_off;       /* of which already written */
  req_fifo inflight;    /* taken, in write order, awaiting replies */
  rl__req *freed;       /* records to return to `free` in one lock */
  rl__req **heap;       /* min-heap on deadline_ns */
  uint32_t heap_len;
  int64_t timer_at; /* deadline deadline_ev is armed for; NO_DEADLINE */
  rl__resp_reader rd;
  unsigned hs_done;     /* handshake replies received */
  uint32_t backoff_ms;  /* next reconnect delay */
  int64_t connect_ns;   /* CONNECTING: when the first SYN went out */
  int64_t syn_retry_ns; /* CONNECTING: wait before the next fresh SYN */
  int down;             /* node->mu: last attempt failed, counted in n_down */
  rl__req *records;     /* the queue_max records */
  /* counters: written by the loop thread, read by anyone */
  atomic_uint_fast64_t n_commands, n_writes, n_replies, n_timeouts, n_connects,
      n_lost;
  atomic_uint_fast64_t n_direct; /* sends done by submitters */
  atomic_uint outstanding;       /* accepted, reply not yet parsed */
  /* counters of claimed exchanges, added to by claimers */
  atomic_uint_fast64_t n_self, n_self_replies, n_self_timeouts;
} rl__conn;

struct rl__redis_node {
  rl__redis_loop *loop;
  int owns_loop;
  char *host;
  char addr[300]; /* "host:port" */
  struct sockaddr_storage sa;
  socklen_t salen;
  rl__redis_node_opts o; /* numeric options; pointers not kept */
  rl__tls_ctx *tls;
  rl__buf hs;       /* the handshake, pre-formatted */
  uint8_t *hs_kind; /* enum hs_kind of each handshake command */
  unsigned hs_count;
  size_t n_scripts;
  char (*sha)[RL__REDIS_SHA_LEN + 1];
  unsigned n_conns;
  rl__conn *conns;
  pthread_mutex_t mu; /* errstr, n_ready, n_down */
  pthread_cond_t cv;  /* signalled when n_ready or n_down changes */
  unsigned n_ready;
  unsigned n_down; /* connections whose last attempt failed */
  char errstr[RL__REDIS_ERRSTR_LEN];
  rl__breaker breaker;        /* see breaker_note() and node_submit() */
  int64_t recovered_ns;       /* loop thread: when the breaker last closed */
  atomic_int resetting;       /* set by the loop thread while it resets a stuck
                               * connection; read by breaker_note() anywhere */
  atomic_int recover_pending; /* a claimer closed the breaker: the loop
                               * runs node_recovered() */
  int self_ok; /* claims allowed: plain TCP, edge-triggered reads */
};

static void conn_fail(rl__conn *c, int status, const char *why);
static void conn_write(rl__conn *c);
static void conn_read(rl__conn *c);
static void conn_connect(rl__conn *c);
static void connect_again(rl__conn *c, int64_t left_ns);
static int process_replies(rl__conn *c);
static void take_note(rl__conn *c);

/* Whether a caller holds a claim on the connection's current socket
 * (loop thread). */
static int claimed(rl__conn *c) {
  return c->fd >= 0 && atomic_load(&c->self_fd) == c->fd;
}

/* ---- small helpers ------------------------------------------------------ */

static void stat_inc(atomic_uint_fast64_t *s, uint64_t n) {
  atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

static void fifo_push(req_fifo *f, rl__req *r) {
  r->next = NULL;
  if (f->tail != NULL)
    f->tail->next = r;
  else
    f->head = r;
  f->tail = r;
}

static rl__req *fifo_pop(req_fifo *f) {
  rl__req *r = f->head;
  if (r != NULL) {
    f->head = r->next;
    if (f->head == NULL)
      f->tail = NULL;
  }
  return r;
}

/* dst = a + b, truncated to dstlen (messages may be cut, never overrun). */
static void join(char *dst, size_t dstlen, const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > dstlen - 1)
    la = dstlen - 1;
  if (lb > dstlen - 1 - la)
    lb = dstlen - 1 - la;
  memcpy(dst, a, la);
  memcpy(dst + la, b, lb);
  dst[la + lb] = '\0';
}

static struct timeval tv_from_ns(int64_t ns) {
  if (ns < 0)
    ns = 0;
  struct timeval tv = {(time_t)(ns / 1000000000),
                       (suseconds_t)(ns % 1000000000 / 1000)};
  return tv;
}

/* ---- deadline heap (loop thread) --------------------------------------- */

static void heap_set(rl__conn *c, uint32_t i, rl__req *r) {
  c->heap[i] = r;
  r->heap_idx = i;
}

static void heap_up(rl__conn *c, uint32_t i) {
  rl__req *r = c->heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (c->heap[p]->deadline_ns <= r->deadline_ns)
      break;
    heap_set(c, i, c->heap[p]);
    i = p;
  }
  heap_set(c, i, r);
}

static void heap_down(rl__conn *c, uint32_t i) {
  rl__req *r = c->heap[i];
  for (;;) {
    uint32_t m = 2 * i + 1;
    if (m >= c->heap_len)
      break;
    if (m + 1 < c->heap_len &&
        c->heap[m + 1]->deadline_ns < c->heap[m]->deadline_ns)
      m++;
    if (c->heap[m]->deadline_ns >= r->deadline_ns)
      break;
    heap_set(c, i, c->heap[m]);
    i = m;
  }
  heap_set(c, i, r);
}

static void heap_push(rl__conn *c, rl__req *r) {
  heap_set(c, c->heap_len++, r);
  heap_up(c, c->heap_len - 1);
}

static void heap_remove(rl__conn *c, rl__req *r) {
  uint32_t i = r->heap_idx;
  if (i == NOT_IN_HEAP)
    return;
  r->heap_idx = NOT_IN_HEAP;
  rl__req *last = c->heap[--c->heap_len];
  if (i < c->heap_len) {
    heap_set(c, i, last);
    heap_down(c, i);
    heap_up(c, last->heap_idx);
  }
}

/* When the connection counts as stalled: its oldest request (replies come
 * in order) timed out stall_timeout_ms ago and still has no reply. */
static int64_t stall_at(const rl__conn *c) {
  const rl__req *head = c->inflight.head;
  int64_t stall = (int64_t)c->node->o.stall_timeout_ms * 1000000;
  if (head == NULL || !head->answered || c->state != ST_READY)
    return NO_DEADLINE;
  if (head->deadline_ns < c->node->recovered_ns)
    return c->node->recovered_ns; /* stuck: see node_recovered() */
  if (stall == 0 || head->deadline_ns > NO_DEADLINE - stall)
    return NO_DEADLINE;
  return head->deadline_ns + stall;
}

/* Arms deadline_ev for the earliest deadline (or stall check) unless
 * already armed for it or earlier (a timer firing early just re-arms). */
static void arm_deadline(rl__conn *c) {
  int64_t at = c->heap_len > 0 ? c->heap[0]->deadline_ns : NO_DEADLINE;
  int64_t stall = stall_at(c);
  if (stall < at)
    at = stall;
  if (at == NO_DEADLINE || at >= c->timer_at)
    return;
  struct timeval tv = tv_from_ns(at - rl__mono_ns());
  event_add(c->deadline_ev, &tv);
  c->timer_at = at;
}

/* ---- completing requests (loop thread) --------------------------------- */

static void release(rl__conn *c, rl__req *r) {
  r->next = c->freed;
  c->freed = r;
}

/* Returns the batch of released records to the free list. */
static void flush_freed(rl__conn *c) {
  if (c->freed == NULL)
    return;
  rl__req *last = c->freed;
  while (last->next != NULL)
    last = last->next;
  pthread_mutex_lock(&c->mu);
  last->next = c->free;
  c->free = c->freed;
  pthread_mutex_unlock(&c->mu);
  c->freed = NULL;
}

/* The node's breaker just closed (loop thread): the server answers again.
 * A connection whose oldest request timed out before now, while another
 * connection got its reply, has a stuck path (after a healed network
 * partition it would wait for TCP's next retransmission, seconds): it is
 * reset now (its owed callbacks get RL_ERR_TIMEOUT: their commands may
 * still reach Redis) instead of after stall_timeout_ms. */
static void node_recovered(rl__redis_node *node) {
  node->recovered_ns = rl__mono_ns();
  for (unsigned i = 0; i < node->n_conns; i++)
    arm_deadline(&node->conns[i]);
}

/* Feeds the node's breaker with the outcome of one request. A shutdown
 * says nothing about the server. Successes come only from the loop. */
static void breaker_note(rl__redis_node *node, int status) {
  if (status == RL_OK) {
    if (rl__breaker_success(&node->breaker))
      node_recovered(node);
  } else if (status != RL_ERR_SHUTDOWN &&
             !atomic_load_explicit(&node->resetting, memory_order_relaxed)) {
    rl__breaker_failure(&node->breaker, rl__mono_ns());
  }
}

static void complete(rl__conn *c, rl__req *r, int status,
                     const rl__redis_reply *reply) {
  breaker_note(c->node, status);
  heap_remove(c, r);
  r->answered = 1;
  r->cb(status, reply, r->ud, r->tag);
}

/* The kernel retransmits bytes or a SYN the peer's host never
 * acknowledged: the network, not the server, is silent (a stopped server's
 * kernel still acknowledges; a full receive window is probed, not
 * retransmitted). */
static int peer_silent(const rl__conn *c) {
  struct tcp_info ti;
  socklen_t len = sizeof(ti);
  if (c->fd < 0 || getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
    return 0;
  return ti.tcpi_state == TCP_SYN_SENT ||
         (ti.tcpi_unacked > 0 && ti.tcpi_retransmits > 0);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
  rl__conn *c = arg;
  (void)fd;
  (void)what;
  c->timer_at = NO_DEADLINE;
  int64_t now = rl__mono_ns();
  while (c->heap_len > 0 && c->heap[0]->deadline_ns <= now) {
    stat_inc(&c->n_timeouts, 1);
    complete(c, c->heap[0], RL_ERR_TIMEOUT, NULL);
  }
  if (c->state == ST_READY && peer_silent(c)) {
    /* the network drops our bytes: a fresh connection notices the end of
     * a partition at once, this one only at its next retransmission. The
     * owed callbacks get RL_ERR_TIMEOUT: their commands may still reach
     * Redis (never reconciled, so never counted twice). */
    conn_fail(c, RL_ERR_TIMEOUT,
              "timeout with bytes the server's host never acknowledged");
    return;
  }
  if (now >= stall_at(c)) {
    const rl__req *head = c->inflight.head;
    if (head->deadline_ns < c->node->recovered_ns) {
      /* its requests say nothing of the server */
      atomic_store_explicit(&c->node->resetting, 1, memory_order_relaxed);
      conn_fail(c, RL_ERR_TIMEOUT,
                "no reply while the server answered on another connection");
      atomic_store_explicit(&c->node->resetting, 0, memory_order_relaxed);
    } else
      conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE,
                "no reply within stall_timeout_ms");
    return;
  }
  arm_deadline(c);
}

/* Fails every owed callback of the connection with status; recycles all
 * records; empties pend and out. accept_rc becomes `accept` first, so a
 * callback that resubmits is refused instead of re-queued here. */
static void fail_all(rl__conn *c, int status, int accept) {
  pthread_mutex_lock(&c->mu);
  c->accept_rc = accept;
  atomic_store(&c->outstanding, 0); /* every record is dropped below */
  req_fifo queued = c->submitted;
  c->submitted.head = c->submitted.tail = NULL;
  rl__buf_reset(&c->pend, OUT_KEEP);
  c->handover.len = 0; /* a claimer's late bytes: of this connection */
  c->self_reset = c->self_reread = 0;
  pthread_mutex_unlock(&c->mu);
  rl__buf_reset(&c->out, OUT_KEEP);
  c->out_off = 0;
  c->pend_left = 0;
  for (rl__req *r; (r = fifo_pop(&c->inflight)) != NULL; release(c, r))
    if (!r->answered)
      complete(c, r, status, NULL);
  for (rl__req *r; (r = fifo_pop(&queued)) != NULL; release(c, r))
    if (!r->answered) /* a claimer's tombstone is */
      complete(c, r, status, NULL);
  c->heap_len = 0;
  flush_freed(c);
}

/* ---- taking submissions (loop thread) ---------------------------------- */

/* Moves pend into out (swap when out is drained, else append if it fits).
 * Called with mu held. */
static void take_bytes(rl__conn *c) {
  if (c->pend.len == 0)
    return;
  c->direct_ok = 0;               /* out has (or keeps) bytes to write */
  if (c->out_off == c->out.len) { /* swap the memory, keep each cap */
    rl__buf tmp = c->out;
    size_t out_max = c->out.max;
    tmp.len = 0;
    tmp.max = c->pend.max;
    c->out = c->pend;
    c->out.max = out_max;
    c->pend = tmp;
    c->out_off = 0;
    c->pend_left = 0;
  } else if (rl__buf_append(&c->out, c->pend.data, c->pend.len) == RL_OK) {
    c->pend.len = 0;
    c->pend_left = 0;
  } else {
    c->pend_left = 1; /* retried when out drains */
  }
}

/* Takes the submission side: records into the FIFO and heap; bytes too
 * when the connection is READY. Under a claim, leaves it all to after
 * (the claimer wakes the loop when it is done). */
static void take_submitted(rl__conn *c) {
  pthread_mutex_lock(&c->mu);
  if (claimed(c)) {
    c->self_deferred = 1;
    pthread_mutex_unlock(&c->mu);
    return;
  }
  rl__req *r = c->submitted.head;
  c->submitted.head = c->submitted.tail = NULL;
  if (c->state == ST_READY)
    take_bytes(c);
  pthread_mutex_unlock(&c->mu);
  uint64_t n = 0;
  for (rl__req *next; r != NULL; r = next, n++) {
    next = r->next;
    fifo_push(&c->inflight, r);
    if (r->deadline_ns != NO_DEADLINE && !r->answered) /* not tombstones */
      heap_push(c, r);
  }
  stat_inc(&c->n_commands, n);
  arm_deadline(c);
}

static void on_wake(rl__wakeable *w) {
  rl__conn *c = (rl__conn *)((char *)w - offsetof(rl__conn, wake));
  if (atomic_load_explicit(&c->node->recover_pending, memory_order_relaxed) &&
      atomic_exchange(&c->node->recover_pending, 0))
    node_recovered(c->node);
  if (c->state == ST_CLOSED || c->state == ST_DOWN)
    return;
  if (atomic_load_explicit(&c->self_note, memory_order_relaxed)) {
    conn_read(c); /* takes the note first, then reads what the claimer
                   * left in the socket (its edge went by unread) */
    if (c->state != ST_READY)
      return;
  }
  take_submitted(c);
  if (c->state == ST_READY)
    conn_write(c);
}

/* ---- socket I/O (loop thread) ------------------------------------------ */

static void arm_write(rl__conn *c, int on) {
  if (on && !c->wr_armed)
    event_add(c->wr_ev, NULL);
  else if (!on && c->wr_armed)
    event_del(c->wr_ev);
  c->wr_armed = on;
}

/* > 0 bytes, or RL__TLS_WANT_READ/WRITE, 0 (EOF) or RL__TLS_ERROR with a
 * message in errbuf. */
static ssize_t io_read(rl__conn *c, char *buf, size_t len, char *errbuf,
                       size_t errlen) {
  if (c->tls != NULL)
    return rl__tls_read(c->tls, buf, len, errbuf, errlen);
  for (;;) {
    ssize_t n = read(c->fd, buf, len);
    if (n >= 0)
      return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return RL__TLS_WANT_READ;
    if (errno != EINTR) {
      snprintf(errbuf, errlen, "read: %s", strerror(errno));
      return RL__TLS_ERROR;
    }
  }
}

static ssize_t io_write(rl__conn *c, const char *buf, size_t len, char *errbuf,
                        size_t errlen) {
  if (c->tls != NULL)
    return rl__tls_write(c->tls, buf, len, errbuf, errlen);
  for (;;) {
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
      return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return RL__TLS_WANT_WRITE;
    if (errno != EINTR) {
      snprintf(errbuf, errlen, "write: %s", strerror(errno));
      return RL__TLS_ERROR;
    }
  }
}

/* Out is drained: keep memory bounded, pick up bytes left in pend. */
static int out_drained(rl__conn *c) {
  rl__buf_reset(&c->out, OUT_KEEP);
  c->out_off = 0;
  if (c->state != ST_READY || (!c->pend_left && c->direct_ok))
    return 0;
  pthread_mutex_lock(&c->mu);
  if (c->pend_left)
    take_bytes(c);
  c->direct_ok = c->out.len == 0 && c->tls == NULL;
  pthread_mutex_unlock(&c->mu);
  return c->out.len > 0;
}

/* Writes out until drained or the socket is full. */
static void conn_write(rl__conn *c) {
  char err[RL__REDIS_ERRSTR_LEN];
  do {
    while (c->out_off < c->out.len) {
      ssize_t n = io_write(c, c->out.data + c->out_off, c->out.len - c->out_off,
                           err, sizeof(err));
      if (n > 0) {
        c->out_off += (size_t)n;
        stat_inc(&c->n_writes, 1);
        continue;
      }
      if (n == RL__TLS_WANT_WRITE)
        arm_write(c, 1);
      else if (n == RL__TLS_WANT_READ)
        c->write_wants_read = 1;
      else
        conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, err);
      return;
    }
  } while (out_drained(c));
  arm_write(c, c->read_wants_write);
}

/* ---- handshake and replies (loop thread) ------------------------------- */

static void conn_ready(rl__conn *c) {
  rl__redis_node *node = c->node;
  c->state = ST_READY;
  c->backoff_ms = node->o.backoff_min_ms;
  event_del(c->state_ev);
  stat_inc(&c->n_connects, 1);
  pthread_mutex_lock(&node->mu);
  node->n_ready++;
  pthread_cond_broadcast(&node->cv);
  pthread_mutex_unlock(&node->mu);
  rl__breaker_probe_soon(&node->breaker); /* the server answers again */
  take_submitted(c);
  conn_write(c);
}

/* Checks one handshake reply. Returns 0 when it failed the connection. */
static int hs_reply(rl__conn *c, const rl__redis_reply *rep) {
  rl__redis_node *node = c->node;
  unsigned i = c->hs_done++;
  char why[RL__REDIS_ERRSTR_LEN];
  static const char *const what[] = {"AUTH", "SELECT", "SCRIPT LOAD"};
  int kind = node->hs_kind[i];
  size_t script = i - (node->hs_count - node->n_scripts);
  if (rep->type == RL__REPLY_ERROR) {
    snprintf(why, sizeof(why), "%s failed: %s", what[kind], rep->str);
  } else if (kind == HS_SCRIPT &&
             (rep->type != RL__REPLY_STRING || rep->len != RL__REDIS_SHA_LEN ||
              memcmp(rep->str, node->sha[script], RL__REDIS_SHA_LEN) != 0)) {
    snprintf(why, sizeof(why), "SCRIPT LOAD %zu: unexpected reply", script);
  } else {
    if (c->hs_done == node->hs_count)
      conn_ready(c); /* writes: may fail the connection */
    return c->fd >= 0;
  }
  conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, why);
  return 0;
}

/* Delivers one reply to the oldest in-flight request. Returns 0 when it
 * failed the connection. */
static int dispatch(rl__conn *c, const rl__redis_reply *rep) {
  if (c->inflight.head == NULL)
    take_submitted(c); /* sent by its submitter, answered before we woke */
  if (c->inflight.head != NULL && c->inflight.head->skip_reply) {
    c->inflight.head->skip_reply = 0; /* ASKING's reply: the command's
                                       * own reply (or error) follows */
    return 1;
  }
  rl__req *r = fifo_pop(&c->inflight);
  if (r == NULL) {
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, "reply without a request");
    return 0;
  }
  atomic_fetch_sub(&c->outstanding, 1);
  if (!r->answered)
    complete(c, r, RL_OK, rep);
  release(c, r);
  return 1;
}

/* Parses and delivers every complete reply. Returns 0 if the connection
 * failed meanwhile. */
static int process_replies(rl__conn *c) {
  for (;;) {
    const rl__redis_reply *rep;
    int rc = rl__resp_next(&c->rd, &rep);
    if (rc == 0)
      return 1;
    if (rc < 0) {
      char why[RL__REDIS_ERRSTR_LEN];
      join(why, sizeof(why), "protocol error: ", c->rd.errstr);
      conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, why);
      return 0;
    }
    stat_inc(&c->n_replies, 1);
    int ok = c->state == ST_HANDSHAKE ? hs_reply(c, rep) : dispatch(c, rep);
    rl__resp_release(&c->rd);
    if (!ok)
      return 0;
  }
}

/* Reads until the socket is drained, delivering replies as they parse. */
static void read_socket(rl__conn *c) {
  char buf[READ_CHUNK], err[RL__REDIS_ERRSTR_LEN];
  for (;;) {
    ssize_t n = io_read(c, buf, sizeof(buf), err, sizeof(err));
    if (n > 0) {
      if (rl__resp_feed(&c->rd, buf, (size_t)n) != RL_OK) {
        conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, "out of memory reading");
        return;
      }
      if (!process_replies(c))
        return;
      if (c->tls == NULL && (size_t)n < sizeof(buf))
        break; /* drained; saves a read() that would say EAGAIN */
      continue;
    }
    if (n == RL__TLS_WANT_READ)
      break;
    if (n == RL__TLS_WANT_WRITE) {
      c->read_wants_write = 1;
      arm_write(c, 1);
      break;
    }
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE,
              n == 0 ? "connection closed by server" : err);
    return;
  }
  flush_freed(c);
}

/* Acts on what a claimer left when it gave up (loop thread): the bytes it
 * read go to the parser ahead of anything read later, and its tombstone
 * (at the head of `submitted`) is matched with the rest of its reply. */
static void take_note(rl__conn *c) {
  pthread_mutex_lock(&c->mu);
  atomic_store(&c->self_note, 0);
  int reset = c->self_reset;
  int rc = RL_OK;
  if (c->handover.len > 0 && c->state == ST_READY)
    rc = rl__resp_feed(&c->rd, c->handover.data, c->handover.len);
  c->handover.len = 0;
  c->self_reset = c->self_reread = 0;
  pthread_mutex_unlock(&c->mu);
  if (c->state != ST_READY)
    return;
  if (reset || rc != RL_OK) {
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE,
              reset ? "a direct exchange was cut short" : "out of memory");
    return;
  }
  take_submitted(c);
  if (process_replies(c))
    flush_freed(c);
}

/* Nothing to read on an idle socket: the edge was a claimer's reply, which
 * it has taken. Checked with a peek, which takes nothing, so that the
 * loop does not hold `loop_reading` (and turn the next claimer away) for
 * a read that would find nothing. */
static int idle_and_empty(rl__conn *c) {
  char b;
  return c->state == ST_READY && c->tls == NULL && c->inflight.head == NULL &&
         atomic_load(&c->outstanding) == 0 &&
         !atomic_load_explicit(&c->self_note, memory_order_relaxed) &&
         recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
         (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The loop's reads: never under a claim (the claimer reads), and after
 * any note a claimer left. */
static void conn_read(rl__conn *c) {
  if (idle_and_empty(c))
    return;
  atomic_store(&c->loop_reading, 1);
  if (!claimed(c)) {
    if (atomic_load_explicit(&c->self_note, memory_order_relaxed))
      take_note(c);
    if (c->fd >= 0)
      read_socket(c);
  }
  atomic_store(&c->loop_reading, 0);
}

/* ---- connection state machine (loop thread) ---------------------------- */

static void start_handshake(rl__conn *c) {
  rl__redis_node *node = c->node;
  c->state = ST_HANDSHAKE;
  c->hs_done = 0;
  if (node->hs_count == 0) {
    conn_ready(c);
    return;
  }
  if (rl__buf_append(&c->out, node->hs.data, node->hs.len) != RL_OK) {
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, "out of memory (handshake)");
    return;
  }
  conn_write(c);
}

static void tls_step(rl__conn *c) {
  char err[RL__REDIS_ERRSTR_LEN];
  int rc = rl__tls_handshake(c->tls, err, sizeof(err));
  if (rc == 0) {
    arm_write(c, 0);
    start_handshake(c);
  } else if (rc == RL__TLS_WANT_READ || rc == RL__TLS_WANT_WRITE) {
    arm_write(c, rc == RL__TLS_WANT_WRITE);
  } else {
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, err);
  }
}

static void tcp_connected(rl__conn *c) {
  char err[RL__REDIS_ERRSTR_LEN];
  arm_write(c, 0);
  event_add(c->rd_ev, NULL);
  if (c->node->tls == NULL) {
    start_handshake(c);
    return;
  }
  c->state = ST_TLS;
  if (rl__tls_conn_new(c->node->tls, c->fd, c->node->host, &c->tls, err,
                       sizeof(err)) != RL_OK) {
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, err);
    return;
  }
  tls_step(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
  rl__conn *c = arg;
  (void)fd;
  (void)what;
  if (c->state == ST_TLS) {
    tls_step(c);
    return;
  }
  if (c->write_wants_read) {
    c->write_wants_read = 0;
    conn_write(c);
    if (c->fd < 0)
      return;
  }
  conn_read(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
  rl__conn *c = arg;
  int err = 0;
  socklen_t len = sizeof(err);
  (void)what;
  if (c->state == ST_CONNECTING) {
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err != 0) {
      char why[RL__REDIS_ERRSTR_LEN];
      snprintf(why, sizeof(why), "connect: %s", strerror(err));
      conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, why);
    } else {
      tcp_connected(c);
    }
  } else if (c->state == ST_TLS) {
    tls_step(c);
  } else {
    if (c->read_wants_write) {
      c->read_wants_write = 0;
      conn_read(c);
      if (c->fd < 0)
        return;
    }
    conn_write(c);
  }
}

/* Timer of the state: reconnect when DOWN; otherwise a fresh SYN if the
 * last one is unanswered, or the connect timeout once it has elapsed
 * (until then the timer is re-armed: it fires early for the SYN retry). */
static void on_state_timer(evutil_socket_t fd, short what, void *arg) {
  rl__conn *c = arg;
  (void)fd;
  (void)what;
  if (c->state == ST_DOWN) {
    conn_connect(c);
    return;
  }
  if (c->state == ST_READY || c->state == ST_CLOSED)
    return;
  int64_t left = c->connect_ns +
                 (int64_t)c->node->o.connect_timeout_ms * 1000000 -
                 rl__mono_ns();
  if (left <= 0) {
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, "connect timeout");
  } else if (c->state == ST_CONNECTING && peer_silent(c)) {
    connect_again(c, left);
  } else {
    struct timeval tv = tv_from_ns(left);
    event_add(c->state_ev, &tv);
  }
}

static void close_socket(rl__conn *c) {
  if (c->rd_ev != NULL)
    event_free(c->rd_ev);
  if (c->wr_ev != NULL)
    event_free(c->wr_ev);
  c->rd_ev = c->wr_ev = NULL;
  c->wr_armed = 0;
  c->read_wants_write = c->write_wants_read = 0;
  rl__tls_conn_free(c->tls);
  c->tls = NULL;
  if (c->fd >= 0) {
    pthread_mutex_lock(&c->mu);
    if (claimed(c)) { /* wakes the claimer; its number stays taken */
      shutdown(c->fd, SHUT_RDWR);
      c->zombie_fd = c->fd;
    } else {
      close(c->fd);
    }
    pthread_mutex_unlock(&c->mu);
  }
  c->fd = -1;
}

static int open_socket(rl__conn *c, char *why, size_t whylen) {
  rl__redis_node *node = c->node;
  struct event_base *base = rl__redis_loop_base(node->loop);
  int one = 1;
  c->fd =
      socket(node->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    snprintf(why, whylen, "socket: %s", strerror(errno));
    return -1;
  }
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
#ifdef TCP_THIN_LINEAR_TIMEOUTS
  /* Few packets in flight: retransmit at a linear, not exponential, pace
   * for the first retries, so a healed network partition is noticed
   * within a few hundred ms instead of the next doubled timeout (seconds;
   * docs/Degradation.md). */
  setsockopt(c->fd, IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, &one, sizeof(one));
#endif
  /* Edge-triggered where claims are allowed: the loop skips reads under a
   * claim without being woken again and again. */
  short rd_flags = EV_READ | EV_PERSIST | (node->self_ok ? EV_ET : 0);
  c->rd_ev = event_new(base, c->fd, rd_flags, on_readable, c);
  c->wr_ev = event_new(base, c->fd, EV_WRITE | EV_PERSIST, on_writable, c);
  if (c->rd_ev == NULL || c->wr_ev == NULL) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  return 0;
}

/* Opens the socket and starts connecting; arms the state timer for the
 * next fresh SYN or the connect timeout, whichever comes first. */
static void start_connect(rl__conn *c, int64_t left_ns) {
  rl__redis_node *node = c->node;
  char why[RL__REDIS_ERRSTR_LEN];
  int64_t wait = c->syn_retry_ns < left_ns ? c->syn_retry_ns : left_ns;
  c->syn_retry_ns *= 2;
  struct timeval tv = tv_from_ns(wait);
  event_add(c->state_ev, &tv);
  if (open_socket(c, why, sizeof(why)) != 0) {
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, why);
    return;
  }
  if (connect(c->fd, (struct sockaddr *)&node->sa, node->salen) == 0) {
    tcp_connected(c);
  } else if (errno == EINPROGRESS) {
    arm_write(c, 1);
  } else {
    snprintf(why, sizeof(why), "connect: %s", strerror(errno));
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, why);
  }
}

/* The SYN is still unanswered: a fresh socket sends a new one now. */
static void connect_again(rl__conn *c, int64_t left_ns) {
  close_socket(c);
  start_connect(c, left_ns);
}

static void conn_connect(rl__conn *c) {
  rl__redis_node *node = c->node;
  c->state = ST_CONNECTING;
  pthread_mutex_lock(&c->mu);
  c->accept_rc = RL_OK;
  pthread_mutex_unlock(&c->mu);
  pthread_mutex_lock(&node->mu);
  node->n_down -= (unsigned)c->down; /* trying again */
  c->down = 0;
  pthread_mutex_unlock(&node->mu);
  if (rl__resp_reader_reset(&c->rd) != RL_OK) {
    conn_fail(c, RL_ERR_BACKEND_UNAVAILABLE, "out of memory");
    return;
  }
  c->connect_ns = rl__mono_ns();
  c->syn_retry_ns = SYN_RETRY_NS;
  start_connect(c, (int64_t)node->o.connect_timeout_ms * 1000000);
}

static uint32_t next_backoff(rl__conn *c) {
  uint32_t base = c->backoff_ms;
  uint32_t max = c->node->o.backoff_max_ms;
  c->backoff_ms = base >= max / 2 ? max : base * 2;
  uint32_t half = base / 2;
  return base - half + rl__redis_loop_rand(c->node->loop) % (half + 1);
}

/* node->errstr = "addr: why"; node->mu held. */
static void set_errstr(rl__redis_node *node, const char *why) {
  char prefix[sizeof(node->addr) + 2];
  join(prefix, sizeof(prefix), node->addr, ": ");
  join(node->errstr, sizeof(node->errstr), prefix, why);
}

static void note_failure(rl__conn *c, int was_ready, const char *why) {
  rl__redis_node *node = c->node;
  pthread_mutex_lock(&node->mu);
  set_errstr(node, why);
  if (was_ready)
    node->n_ready--;
  if (!c->down) {
    c->down = 1;
    node->n_down++;
  }
  pthread_cond_broadcast(&node->cv);
  pthread_mutex_unlock(&node->mu);
}

/* Tears the connection down: why goes to the node's errstr, owed
 * callbacks get status; then DOWN with a reconnect timer, or CLOSED for
 * RL_ERR_SHUTDOWN. */
static void conn_fail(rl__conn *c, int status, const char *why) {
  int was_ready = c->state == ST_READY;
  pthread_mutex_lock(&c->mu); /* no submitter may send() on a closing fd */
  c->direct_ok = 0;
  pthread_mutex_unlock(&c->mu);
  if (status != RL_ERR_SHUTDOWN) {
    note_failure(c, was_ready, why);
    stat_inc(&c->n_lost, 1);
  } else if (was_ready) {
    pthread_mutex_lock(&c->node->mu);
    c->node->n_ready--;
    pthread_mutex_unlock(&c->node->mu);
  }
  close_socket(c);
  c->state = status == RL_ERR_SHUTDOWN ? ST_CLOSED : ST_DOWN;
  event_del(c->state_ev);
  fail_all(c, status,
           status == RL_ERR_SHUTDOWN ? RL_ERR_SHUTDOWN
                                     : RL_ERR_BACKEND_UNAVAILABLE);
  if (c->state == ST_DOWN) {
    struct timeval tv = tv_from_ns((int64_t)next_backoff(c) * 1000000);
    event_add(c->state_ev, &tv);
  }
}

/* ---- node setup -------------------------------------------------------- */

void rl__redis_node_opts_init(rl__redis_node_opts *o) {
  memset(o, 0, sizeof(*o));
  o->host = "127.0.0.1";
  o->port = 6379;
  o->pool_size = 2;
  o->queue_max = 4096;
  o->max_out_bytes = (size_t)64 << 20;
  o->max_reply_bytes = (size_t)64 << 20;
  o->connect_timeout_ms = 2000;
  o->stall_timeout_ms = 5000;
  o->backoff_min_ms = 10;
  o->backoff_max_ms = 1000;
}

static int check_opts(const rl__redis_node_opts *o, char *errbuf,
                      size_t errlen) {
  const char *bad = NULL;
  if (o->host == NULL || o->host[0] == '\0' || o->port == 0)
    bad = "host and port are required";
  else if (o->pool_size < 1 || o->pool_size > POOL_MAX)
    bad = "pool_size must be 1..64";
  else if (o->queue_max < 1 || o->queue_max > QUEUE_MAX_LIMIT)
    bad = "queue_max must be 1..1048576";
  else if (o->n_scripts > RL__REDIS_MAX_SCRIPTS ||
           (o->n_scripts > 0 && o->scripts == NULL))
    bad = "too many scripts, or scripts is NULL";
  else if (o->backoff_min_ms < 1 || o->backoff_max_ms < o->backoff_min_ms)
    bad = "backoff must satisfy 1 <= min <= max";
  else if (o->max_out_bytes < 1024 || o->max_reply_bytes < 1024 ||
           o->connect_timeout_ms < 1)
    bad = "buffer caps (>= 1024) and connect_timeout_ms (>= 1) required";
  else if (o->username != NULL && o->password == NULL)
    bad = "username needs a password";
  if (bad != NULL && errbuf != NULL)
    snprintf(errbuf, errlen, "%s", bad);
  return bad != NULL ? RL_ERR_INVALID_ARGUMENT : RL_OK;
}

static int resolve(rl__redis_node *node, char *errbuf, size_t errlen) {
  struct addrinfo hints, *res = NULL;
  char port[8];
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  snprintf(port, sizeof(port), "%u", (unsigned)node->o.port);
  int rc = getaddrinfo(node->host, port, &hints, &res);
  if (rc != 0 || res == NULL) {
    if (errbuf != NULL)
      snprintf(errbuf, errlen, "cannot resolve %s: %s", node->host,
               gai_strerror(rc));
    return RL_ERR_CONFIG_INVALID;
  }
  memcpy(&node->sa, res->ai_addr, res->ai_addrlen);
  node->salen = res->ai_addrlen;
  freeaddrinfo(res);
  return RL_OK;
}

static int script_sha(const char *src, size_t len, char *hex) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(src, len, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
    return RL_ERR_NO_MEMORY;
  for (unsigned i = 0; i < mdlen; i++)
    snprintf(hex + (size_t)2 * i, 3, "%02x", md[i]);
  return RL_OK;
}

static int hs_add(rl__redis_node *node, enum hs_kind kind, int argc,
                  const char *const *argv, const size_t *lens) {
  rl__redis_args a = {argc, argv, lens};
  int rc = rl__resp_format(&node->hs, &a);
  if (rc == RL_OK)
    node->hs_kind[node->hs_count++] = (uint8_t)kind;
  return rc;
}

static int hs_add_auth_select(rl__redis_node *node,
                              const rl__redis_node_opts *o) {
  int rc = RL_OK;
  if (o->password != NULL) {
    const char *argv[3] = {"AUTH", o->username, o->password};
    size_t lens[3] = {4, o->username ? strlen(o->username) : 0,
                      strlen(o->password)};
    if (o->username == NULL) {
      argv[1] = o->password;
      lens[1] = lens[2];
    }
    rc = hs_add(node, HS_AUTH, o->username ? 3 : 2, argv, lens);
  }
  if (rc == RL_OK && o->db > 0) {
    char db[16];
    snprintf(db, sizeof(db), "%d", o->db);
    const char *argv[2] = {"SELECT", db};
    size_t lens[2] = {6, strlen(db)};
    rc = hs_add(node, HS_SELECT, 2, argv, lens);
  }
  return rc;
}

/* Pre-formats the handshake and computes the script SHAs. */
static int build_handshake(rl__redis_node *node, const rl__redis_node_opts *o) {
  rl__buf_init(&node->hs, SIZE_MAX);
  node->n_scripts = o->n_scripts;
  node->hs_kind = calloc(o->n_scripts + 2, 1);
  node->sha = calloc(o->n_scripts + 1, sizeof(*node->sha));
  if (node->hs_kind == NULL || node->sha == NULL)
    return RL_ERR_NO_MEMORY;
  int rc = hs_add_auth_select(node, o);
  for (size_t i = 0; rc == RL_OK && i < o->n_scripts; i++) {
    size_t len = o->script_lens ? o->script_lens[i] : strlen(o->scripts[i]);
    const char *argv[3] = {"SCRIPT", "LOAD", o->scripts[i]};
    size_t lens[3] = {6, 4, len};
    rc = script_sha(o->scripts[i], len, node->sha[i]);
    if (rc == RL_OK)
      rc = hs_add(node, HS_SCRIPT, 3, argv, lens);
  }
  return rc;
}

static int conn_init(rl__redis_node *node, rl__conn *c) {
  const rl__redis_node_opts *o = &node->o;
  c->node = node;
  c->wake.fn = on_wake;
  c->fd = -1;
  c->state = ST_IDLE;
  c->timer_at = NO_DEADLINE;
  c->backoff_ms = o->backoff_min_ms;
  c->zombie_fd = -1;
  atomic_init(&c->self_fd, -1);
  pthread_mutex_init(&c->mu, NULL);
  rl__buf_init(&c->pend, o->max_out_bytes);
  rl__buf_init(&c->self_out, o->max_out_bytes);
  rl__buf_init(&c->self_in, o->max_reply_bytes);
  rl__buf_init(&c->handover, o->max_reply_bytes);
  rl__buf_init(&c->out, o->max_out_bytes + node->hs.len);
  c->records = calloc(o->queue_max, sizeof(rl__req));
  c->heap = calloc(o->queue_max, sizeof(rl__req *));
  if (c->records == NULL || c->heap == NULL)
    return RL_ERR_NO_MEMORY;
  for (unsigned i = o->queue_max; i-- > 0;) {
    c->records[i].next = c->free;
    c->free = &c->records[i];
  }
  int rc = rl__resp_reader_init(&c->rd, o->max_reply_bytes);
  return rc == RL_OK ? rl__resp_reader_init(&c->self_rd, o->max_reply_bytes)
                     : rc;
}

static void conn_destroy(rl__conn *c) {
  if (c->node == NULL)
    return; /* never initialised */
  rl__resp_reader_close(&c->rd);
  rl__resp_reader_close(&c->self_rd);
  rl__buf_close(&c->self_out);
  rl__buf_close(&c->self_in);
  rl__buf_close(&c->handover);
  rl__buf_close(&c->pend);
  rl__buf_close(&c->out);
  free(c->records);
  free(c->heap);
  pthread_mutex_destroy(&c->mu);
}

static void node_destroy(rl__redis_node *node) {
  for (unsigned i = 0; node->conns != NULL && i < node->n_conns; i++)
    conn_destroy(&node->conns[i]);
  free(node->conns);
  rl__tls_ctx_free(node->tls);
  rl__buf_close(&node->hs);
  free(node->hs_kind);
  free(node->sha);
  free(node->host);
  pthread_cond_destroy(&node->cv);
  pthread_mutex_destroy(&node->mu);
  if (node->owns_loop)
    rl__redis_loop_free(node->loop);
  free(node);
}

/* Loop thread: creates the timers and starts connecting. */
static void start_job(void *arg) {
  rl__redis_node *node = arg;
  struct event_base *base = rl__redis_loop_base(node->loop);
  for (unsigned i = 0; i < node->n_conns; i++) {
    rl__conn *c = &node->conns[i];
    c->deadline_ev = evtimer_new(base, on_deadline, c);
    c->state_ev = evtimer_new(base, on_state_timer, c);
    if (c->deadline_ev == NULL || c->state_ev == NULL) {
      note_failure(c, 0, "out of memory");
      c->state = ST_DOWN;
      pthread_mutex_lock(&c->mu);
      c->accept_rc = RL_ERR_BACKEND_UNAVAILABLE;
      pthread_mutex_unlock(&c->mu);
      continue;
    }
    conn_connect(c);
  }
}

/* Loop thread: fails everything with RL_ERR_SHUTDOWN, frees the events. */
static void close_job(void *arg) {
  rl__redis_node *node = arg;
  for (unsigned i = 0; i < node->n_conns; i++) {
    rl__conn *c = &node->conns[i];
    if (c->state_ev != NULL && c->deadline_ev != NULL)
      conn_fail(c, RL_ERR_SHUTDOWN, "node freed");
    if (c->deadline_ev != NULL)
      event_free(c->deadline_ev);
    if (c->state_ev != NULL)
      event_free(c->state_ev);
    c->deadline_ev = c->state_ev = NULL;
    c->state = ST_CLOSED;
    pthread_mutex_lock(&c->mu);
    c->accept_rc = RL_ERR_SHUTDOWN;
    pthread_mutex_unlock(&c->mu);
  }
}

static int node_alloc(const rl__redis_node_opts *o, rl__redis_node **out) {
  rl__redis_node *node = calloc(1, sizeof(*node));
  if (node == NULL)
    return RL_ERR_NO_MEMORY;
  pthread_mutex_init(&node->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&node->cv, &ca);
  pthread_condattr_destroy(&ca);
  node->o = *o;
  rl__breaker_init(&node->breaker, o->breaker_threshold, o->breaker_probe_ms);
  node->o.host = NULL;
  node->o.username = node->o.password = NULL;
  node->o.scripts = NULL;
  node->o.script_lens = NULL;
  memset(&node->o.tls, 0, sizeof(node->o.tls));
  node->n_conns = o->pool_size;
  node->host = strdup(o->host);
  node->conns = calloc(o->pool_size, sizeof(rl__conn));
  *out = node;
  if (node->host == NULL || node->conns == NULL)
    return RL_ERR_NO_MEMORY;
  if (strchr(o->host, ':') != NULL) /* IPv6 literal */
    snprintf(node->addr, sizeof(node->addr), "[%s]:%u", o->host,
             (unsigned)o->port);
  else
    snprintf(node->addr, sizeof(node->addr), "%s:%u", o->host,
             (unsigned)o->port);
  return RL_OK;
}

static int node_setup(rl__redis_node *node, rl__redis_loop *loop,
                      const rl__redis_node_opts *o, char *errbuf,
                      size_t errlen) {
  int rc = resolve(node, errbuf, errlen);
  if (rc == RL_OK && o->tls.enabled)
    rc = rl__tls_ctx_new(&o->tls, &node->tls, errbuf, errlen);
  if (rc == RL_OK)
    rc = build_handshake(node, o);
  for (unsigned i = 0; rc == RL_OK && i < node->n_conns; i++)
    rc = conn_init(node, &node->conns[i]);
  if (rc == RL_OK && loop == NULL) {
    rc = rl__redis_loop_new(&node->loop);
    node->owns_loop = rc == RL_OK;
  } else {
    node->loop = loop;
  }
  if (rc == RL_OK)
    node->self_ok = node->tls == NULL &&
                    (event_base_get_features(rl__redis_loop_base(node->loop)) &
                     EV_FEATURE_ET) != 0;
  return rc;
}

int rl__redis_node_new(rl__redis_loop *loop, const rl__redis_node_opts *opts,
                       rl__redis_node **out, char *errbuf, size_t errlen) {
  if (errbuf != NULL && errlen > 0)
    errbuf[0] = '\0';
  if (opts == NULL || out == NULL)
    return RL_ERR_INVALID_ARGUMENT;
  int rc = check_opts(opts, errbuf, errlen);
  if (rc != RL_OK)
    return rc;
  rl__redis_node *node = NULL;
  rc = node_alloc(opts, &node);
  if (rc == RL_OK)
    rc = node_setup(node, loop, opts, errbuf, errlen);
  if (rc != RL_OK) {
    if (rc == RL_ERR_NO_MEMORY && errbuf != NULL && errbuf[0] == '\0')
      snprintf(errbuf, errlen, "out of memory");
    if (node != NULL)
      node_destroy(node);
    return rc;
  }
  rl__redis_loop_run(node->loop, start_job, node);
  *out = node;
  return RL_OK;
}

void rl__redis_node_free(rl__redis_node *node) {
  if (node == NULL)
    return;
  rl__redis_loop_run(node->loop, close_job, node);
  /* A claimer still inside a call (rl_free racing a call is the
   * caller's bug, but cheap to survive): its socket was shut down, so it
   * leaves at once. */
  for (unsigned i = 0; i < node->n_conns; i++)
    while (atomic_load(&node->conns[i].self_fd) >= 0)
      sched_yield();
  node_destroy(node);
}

/* ---- submission (any thread) ------------------------------------------- */

static atomic_uint next_thread_slot;
static _Thread_local unsigned thread_slot_plus1;

/* A per-thread connection preference: keeps one thread's commands on one
 * connection (so in order), and spreads threads over the pool. */
static unsigned thread_slot(void) {
  if (thread_slot_plus1 == 0)
    thread_slot_plus1 = atomic_fetch_add(&next_thread_slot, 1) + 1;
  return thread_slot_plus1 - 1;
}

/* The idle-connection fast path (mu held): the command is alone in pend,
 * the loop has nothing unsent and nothing is outstanding, so the
 * submitter sends it at once; the loop, woken as usual, tracks its
 * deadline meanwhile. Saves a thread handoff on the latency path of
 * synchronous callers; busy connections keep batching in the loop. What
 * send() does not take stays in pend for the loop. */
static void direct_send(rl__conn *c) {
  ssize_t n =
      send(c->fd, c->pend.data, c->pend.len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n <= 0)
    return; /* the loop writes it, or meets the error */
  memmove(c->pend.data, c->pend.data + n, c->pend.len - (size_t)n);
  c->pend.len -= (size_t)n;
  atomic_fetch_add_explicit(&c->n_direct, 1, memory_order_relaxed);
}

/* "ASKING", sent in front of a command redirected by an ASK. */
static const char asking_resp[] = "*1\r\n$6\r\nASKING\r\n";

static int conn_submit(rl__conn *c, const rl__redis_args *args,
                       int64_t deadline_ns, rl__redis_cb cb, void *ud,
                       uint64_t tag, int lazy, int asking) {
  int sent_all = 0;
  pthread_mutex_lock(&c->mu);
  int rc = c->accept_rc;
  rl__req *r = c->free;
  size_t queued_bytes = c->pend.len;
  if (rc == RL_OK && r == NULL)
    rc = RL_ERR_BACKEND_UNAVAILABLE; /* queue full */
  if (rc == RL_OK && asking)
    rc = rl__buf_append(&c->pend, asking_resp, sizeof(asking_resp) - 1);
  if (rc == RL_OK)
    rc = rl__resp_format(&c->pend, args);
  if (rc == RL_ERR_NO_MEMORY) {
    c->pend.len = queued_bytes;      /* drop a lone ASKING */
    rc = RL_ERR_BACKEND_UNAVAILABLE; /* byte cap reached */
  }
  if (rc == RL_OK) {
    c->free = r->next;
    r->cb = cb;
    r->ud = ud;
    r->tag = tag;
    r->deadline_ns = deadline_ns;
    r->heap_idx = NOT_IN_HEAP;
    r->answered = 0;
    r->skip_reply = (uint8_t)(asking != 0);
    fifo_push(&c->submitted, r);
    unsigned busy = atomic_fetch_add(&c->outstanding, 1);
    if (queued_bytes == 0 && busy == 0 && c->direct_ok) {
      direct_send(c);
      sent_all = lazy && c->pend.len == 0;
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (rc == RL_OK && !sent_all)
    rl__redis_loop_wake(c->node->loop, &c->wake);
  return rc;
}

static int node_submit(rl__redis_node *node, const rl__redis_args *args,
                       int64_t deadline_ns, rl__redis_cb cb, void *ud,
                       uint64_t tag, int lazy, int asking) {
  if (node == NULL || args == NULL || cb == NULL || args->argc < 1)
    return RL_ERR_INVALID_ARGUMENT;
  if (!rl__breaker_allow(&node->breaker, rl__mono_ns()))
    return RL_ERR_BACKEND_UNAVAILABLE; /* open: nobody waits on Redis */
  unsigned first = thread_slot() % node->n_conns;
  int rc = RL_ERR_BACKEND_UNAVAILABLE;
  for (unsigned k = 0; k < node->n_conns; k++) {
    rl__conn *c = &node->conns[(first + k) % node->n_conns];
    rc = conn_submit(c, args, deadline_ns, cb, ud, tag, lazy, asking);
    if (rc != RL_ERR_BACKEND_UNAVAILABLE)
      return rc;
  }
  breaker_note(node, rc); /* refused by every connection: a failure */
  return rc;
}

int rl__redis_node_submit(rl__redis_node *node, const rl__redis_args *args,
                          int64_t deadline_ns, rl__redis_cb cb, void *ud,
                          uint64_t tag) {
  return node_submit(node, args, deadline_ns, cb, ud, tag, 0, 0);
}

int rl__redis_node_submit_asking(rl__redis_node *node,
                                 const rl__redis_args *args,
                                 int64_t deadline_ns, rl__redis_cb cb, void *ud,
                                 uint64_t tag) {
  return node_submit(node, args, deadline_ns, cb, ud, tag, 0, 1);
}

int rl__redis_node_submit_lazy(rl__redis_node *node, const rl__redis_args *args,
                               int64_t deadline_ns, rl__redis_cb cb, void *ud,
                               uint64_t tag) {
  return node_submit(node, args, deadline_ns, cb, ud, tag, 1, 0);
}

/* ---- caller-read exchange (see DESIGN) --------------------------------- */

enum claim_end {
  CLAIM_DONE,     /* reply parsed by the claimer, nothing else read */
  CLAIM_HANDOVER, /* the loop matches the rest: tombstone + bytes read */
  CLAIM_RESET     /* the stream is unusable: the loop resets it */
};

/* Claims c's socket for one exchange if the connection is idle and the
 * loop is not reading it; returns the record a tombstone would need (NULL:
 * not claimed) and the socket. */
static rl__req *claim(rl__conn *c, int *fd) {
  rl__req *r = NULL;
  pthread_mutex_lock(&c->mu);
  if (c->accept_rc == RL_OK && c->direct_ok && c->pend.len == 0 &&
      c->free != NULL && atomic_load(&c->outstanding) == 0 &&
      !atomic_load(&c->self_note) && c->zombie_fd < 0 &&
      atomic_load(&c->self_fd) < 0) { /* an earlier claimer of a socket
                                       * since torn down may still be
                                       * inside: one claim at a time */
    atomic_store(&c->self_fd, c->fd);
    if (atomic_load(&c->loop_reading) == 0) {
      r = c->free;
      c->free = r->next;
      atomic_fetch_add(&c->outstanding, 1);
      *fd = c->fd;
    } else {
      atomic_store(&c->self_fd, -1); /* the loop reads: the usual path */
    }
  }
  pthread_mutex_unlock(&c->mu);
  return r;
}

/* Gives the connection back to the loop, with what `end` says. */
static void unclaim(rl__conn *c, rl__req *r, int fd, enum claim_end end,
                    int64_t deadline_ns) {
  pthread_mutex_lock(&c->mu);
  if (c->zombie_fd == fd) { /* the loop dropped the connection meanwhile:
                             * fail_all() zeroed `outstanding` */
    close(fd);
    c->zombie_fd = -1;
    end = CLAIM_DONE;
  } else {
    if (end == CLAIM_HANDOVER &&
        rl__buf_append(&c->handover, c->self_in.data, c->self_in.len) != RL_OK)
      end = CLAIM_RESET;
    if (end == CLAIM_HANDOVER) { /* its reply is next: the tombstone too */
      r->cb = NULL;
      r->answered = 1;
      r->skip_reply = 0;
      r->deadline_ns = deadline_ns; /* for the stall check */
      r->heap_idx = NOT_IN_HEAP;
      r->next = c->submitted.head;
      c->submitted.head = r;
      if (c->submitted.tail == NULL)
        c->submitted.tail = r;
      c->self_reread = 1;
      r = NULL;
    } else {
      atomic_fetch_sub(&c->outstanding, 1);
      c->self_reset = end == CLAIM_RESET;
    }
  }
  if (r != NULL) {
    r->next = c->free;
    c->free = r;
  }
  if (end != CLAIM_DONE)
    atomic_store(&c->self_note, 1);
  int wake = c->self_deferred || end != CLAIM_DONE;
  c->self_deferred = 0;
  atomic_store(&c->self_fd, -1);
  pthread_mutex_unlock(&c->mu);
  if (wake)
    rl__redis_loop_wake(c->node->loop, &c->wake);
}

/* Waits until fd is ready for `events` (or in error) or the deadline. */
static int wait_socket(int fd, short events, int64_t deadline_ns) {
  for (;;) {
    int64_t left = deadline_ns - rl__mono_ns();
    if (left <= 0)
      return RL_ERR_TIMEOUT;
    struct pollfd p = {.fd = fd, .events = events};
    struct timespec ts = {(time_t)(left / 1000000000),
                          (long)(left % 1000000000)};
    int n = ppoll(&p, 1, &ts, NULL);
    if (n > 0)
      return RL_OK;
    if (n < 0 && errno != EINTR)
      return RL_ERR_BACKEND_UNAVAILABLE;
  }
}

/* A claimer met a socket error: the node says why at once (the loop's
 * own account follows when it takes the connection back). */
static void claim_error(rl__redis_node *node, const char *what, int err) {
  char why[RL__REDIS_ERRSTR_LEN];
  if (err == 0)
    snprintf(why, sizeof(why), "connection closed by server");
  else
    snprintf(why, sizeof(why), "%s: %s", what, strerror(err));
  pthread_mutex_lock(&node->mu);
  set_errstr(node, why);
  pthread_mutex_unlock(&node->mu);
}

static int send_all(rl__redis_node *node, int fd, const rl__buf *b,
                    int64_t deadline_ns) {
  size_t off = 0;
  while (off < b->len) {
    ssize_t n =
        send(fd, b->data + off, b->len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int rc = wait_socket(fd, POLLOUT, deadline_ns);
      if (rc != RL_OK)
        return rc;
    } else {
      claim_error(node, "write", n < 0 ? errno : EPIPE);
      return RL_ERR_BACKEND_UNAVAILABLE;
    }
  }
  return RL_OK;
}

/* Reads until one reply parses. On failure *end says what the loop must
 * do: match the rest (deadline, connection lost) or reset (bad stream). */
static int read_reply(rl__conn *c, int fd, int64_t deadline_ns,
                      const rl__redis_reply **rep, enum claim_end *end) {
  char buf[4096];
  *end = CLAIM_HANDOVER;
  for (;;) {
    int rc = wait_socket(fd, POLLIN, deadline_ns);
    if (rc != RL_OK)
      return rc;
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
      continue;
    if (n <= 0) { /* the loop takes the connection down */
      claim_error(c->node, "read", n < 0 ? errno : 0);
      return RL_ERR_BACKEND_UNAVAILABLE;
    }
    if (rl__buf_append(&c->self_in, buf, (size_t)n) != RL_OK ||
        rl__resp_feed(&c->self_rd, buf, (size_t)n) != RL_OK) {
      *end = CLAIM_RESET;
      return RL_ERR_BACKEND_UNAVAILABLE;
    }
    int got = rl__resp_next(&c->self_rd, rep);
    if (got == 1)
      return RL_OK;
    if (got < 0) {
      *end = CLAIM_RESET;
      return RL_ERR_BACKEND_UNAVAILABLE;
    }
  }
}

/* One exchange on a claimed socket; *rc is the call's result. */
static void claimed_exchange(rl__conn *c, rl__req *r, int fd,
                             int64_t deadline_ns, rl__redis_consume_fn consume,
                             void *out, int *rc) {
  rl__redis_node *node = c->node;
  enum claim_end end = CLAIM_RESET;
  const rl__redis_reply *rep = NULL;
  c->self_in.len = 0;
  atomic_fetch_add_explicit(&c->n_self, 1, memory_order_relaxed);
  *rc = send_all(node, fd, &c->self_out, deadline_ns);
  if (*rc == RL_OK)
    *rc = read_reply(c, fd, deadline_ns, &rep, &end);
  if (*rc != RL_OK) {
    if (*rc == RL_ERR_TIMEOUT)
      atomic_fetch_add_explicit(&c->n_self_timeouts, 1, memory_order_relaxed);
    rl__resp_reader_reset(&c->self_rd);
    breaker_note(node, *rc);
    unclaim(c, r, fd, end, deadline_ns);
    return;
  }
  atomic_fetch_add_explicit(&c->n_self_replies, 1, memory_order_relaxed);
  *rc = consume != NULL ? consume(rep, out) : RL_OK;
  /* Bytes past the reply: the server sent something unasked for; the loop
   * gets them all behind a tombstone and fails the connection on them. */
  end = rl__resp_buffered(&c->self_rd) > 0 ? CLAIM_HANDOVER : CLAIM_DONE;
  rl__resp_release(&c->self_rd);
  if (end != CLAIM_DONE)
    rl__resp_reader_reset(&c->self_rd);
  int recovered = rl__breaker_success(&node->breaker);
  if (recovered) /* node_recovered() is the loop's: it runs it when woken */
    atomic_store(&node->recover_pending, 1);
  unclaim(c, r, fd, end, deadline_ns);
  if (recovered)
    rl__redis_loop_wake(node->loop, &c->wake);
}

int rl__redis_node_call_claimed(rl__redis_node *node,
                                const rl__redis_args *args, int64_t deadline_ns,
                                rl__redis_consume_fn consume, void *out,
                                int *rc) {
  if (node == NULL || !node->self_ok || args == NULL || args->argc < 1 ||
      !rl__redis_node_healthy(node) || rl__redis_loop_on_any_thread())
    return 0;
  rl__conn *c = &node->conns[thread_slot() % node->n_conns];
  int fd = -1;
  rl__req *r = claim(c, &fd);
  if (r == NULL)
    return 0;
  c->self_out.len = 0;
  if (rl__resp_format(&c->self_out, args) != RL_OK) {
    unclaim(c, r, fd, CLAIM_DONE, deadline_ns); /* nothing sent: the usual
                                                 * path reports it */
    return 0;
  }
  claimed_exchange(c, r, fd, deadline_ns, consume, out, rc);
  return 1;
}

void rl__redis_node_kick(rl__redis_node *node) {
  for (unsigned i = 0; i < node->n_conns; i++)
    rl__redis_loop_wake(node->loop, &node->conns[i].wake);
}

/* ---- queries ----------------------------------------------------------- */

int rl__redis_node_wait_ready(rl__redis_node *node, int64_t deadline_ns) {
  struct timespec ts = {(time_t)(deadline_ns / 1000000000),
                        (long)(deadline_ns % 1000000000)};
  int rc = RL_OK;
  pthread_mutex_lock(&node->mu);
  while (node->n_ready == 0) {
    if (node->n_down == node->n_conns) {
      rc = RL_ERR_BACKEND_UNAVAILABLE;
      break;
    }
    if (pthread_cond_timedwait(&node->cv, &node->mu, &ts) == ETIMEDOUT &&
        node->n_ready == 0) {
      rc = RL_ERR_TIMEOUT;
      break;
    }
  }
  pthread_mutex_unlock(&node->mu);
  return rc;
}

char *rl__redis_node_errstr(rl__redis_node *node, char *buf, size_t len) {
  if (len == 0)
    return buf;
  pthread_mutex_lock(&node->mu);
  snprintf(buf, len, "%s", node->errstr);
  pthread_mutex_unlock(&node->mu);
  return buf;
}

const char *rl__redis_node_script_sha(const rl__redis_node *node, size_t i) {
  return i < node->n_scripts ? node->sha[i] : NULL;
}

const char *rl__redis_node_addr(const rl__redis_node *node) {
  return node->addr;
}

void rl__redis_node_stats_get(rl__redis_node *node, rl__redis_node_stats *out) {
  memset(out, 0, sizeof(*out));
  for (unsigned i = 0; i < node->n_conns; i++) {
    rl__conn *c = &node->conns[i];
    uint64_t self = atomic_load_explicit(&c->n_self, memory_order_relaxed);
    out->commands +=
        atomic_load_explicit(&c->n_commands, memory_order_relaxed) + self;
    out->writes += atomic_load_explicit(&c->n_writes, memory_order_relaxed) +
                   atomic_load_explicit(&c->n_direct, memory_order_relaxed) +
                   self;
    out->replies +=
        atomic_load_explicit(&c->n_replies, memory_order_relaxed) +
        atomic_load_explicit(&c->n_self_replies, memory_order_relaxed);
    out->timeouts +=
        atomic_load_explicit(&c->n_timeouts, memory_order_relaxed) +
        atomic_load_explicit(&c->n_self_timeouts, memory_order_relaxed);
    out->connects += atomic_load_explicit(&c->n_connects, memory_order_relaxed);
    out->conn_lost += atomic_load_explicit(&c->n_lost, memory_order_relaxed);
    out->claimed += self;
  }
  pthread_mutex_lock(&node->mu);
  out->ready = node->n_ready;
  pthread_mutex_unlock(&node->mu);
  rl__breaker_stats bs;
  rl__breaker_stats_get(&node->breaker, &bs);
  out->breaker_state = bs.state;
  out->breaker_opened = bs.opened;
  out->breaker_closed = bs.closed;
  out->breaker_rejected = bs.rejected;
}

int rl__redis_node_healthy(rl__redis_node *node) {
  return atomic_load(&node->breaker.state) == RL__BREAKER_CLOSED;
}

int rl__redis_node_breaker_gauge(rl__redis_node *node) {
  switch (atomic_load(&node->breaker.state)) {
  case RL__BREAKER_OPEN:
    return 2;
  case RL__BREAKER_HALF_OPEN:
    return 1;
  default:
    return 0;
  }
}
