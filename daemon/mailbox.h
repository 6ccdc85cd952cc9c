/*
 * mailbox.h - hands work finished on another thread back to one worker's
 * event loop (evhttp is not thread-safe: a reply must be sent from the
 * worker that owns the request).
 *
 * Any thread posts a caller-owned item (intrusive: nothing is allocated);
 * the worker takes every posted item at once and delivers each on its own
 * loop. An eventfd wakes the worker, written only when the mailbox goes
 * from empty to non-empty, so a burst of replies costs one wake-up.
 *
 * Lifetime: the worker calls rld_mailbox_expect() before handing an item's
 * address to another thread; the posting thread's last access to the
 * mailbox is the decrement at the end of rld_mailbox_post(), so once
 * rld_mailbox_idle() is true no other thread touches the mailbox and it
 * may be closed.
 */
#ifndef RLD_MAILBOX_H
#define RLD_MAILBOX_H

#include <stdatomic.h>

struct event_base;
struct event;

typedef struct rld_mail {
  struct rld_mail *next;
} rld_mail;

typedef void (*rld_deliver_fn)(rld_mail *m, void *arg);

typedef struct rld_mailbox {
  _Atomic(rld_mail *) head; /* posted, newest first */
  atomic_uint expected;     /* posts announced and not yet completed */
  int fd;                   /* eventfd, -1 when closed */
  struct event *ev;
  rld_deliver_fn deliver;
  void *arg;
} rld_mailbox;

/* Registers the mailbox on base (the worker's loop). 0 or -1. */
int rld_mailbox_init(rld_mailbox *mb, struct event_base *base,
                     rld_deliver_fn deliver, void *arg);
/* Frees the event and the eventfd; only once rld_mailbox_idle(). */
void rld_mailbox_close(rld_mailbox *mb);

/* Worker thread: one post will come (or rld_mailbox_cancel()). */
void rld_mailbox_expect(rld_mailbox *mb);
/* Worker thread: the announced post will not come after all. */
void rld_mailbox_cancel(rld_mailbox *mb);
/* Any thread: delivers m on the worker's loop. */
void rld_mailbox_post(rld_mailbox *mb, rld_mail *m);
/* Worker thread: nothing announced is still to come or to deliver. */
int rld_mailbox_idle(rld_mailbox *mb);

#endif /* RLD_MAILBOX_H */
