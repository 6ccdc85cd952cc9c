/*
 * mailbox.c - a multi-producer, single-consumer stack of intrusive items
 * plus an eventfd (mailbox.h). Producers push with a CAS; the consumer
 * takes the whole stack with one exchange, so there is no ABA problem, and
 * reverses it to deliver in posting order.
 */
#include <event2/event.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "mailbox.h"

static void on_mail(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  rld_mailbox *mb = arg;
  uint64_t n = 0;
  /* Read the eventfd before taking the stack: a post after the exchange
   * finds it empty and writes again. */
  while (read(fd, &n, sizeof n) > 0) {
  }
  rld_mail *m = atomic_exchange(&mb->head, NULL);
  rld_mail *in_order = NULL;
  while (m != NULL) {
    rld_mail *next = m->next;
    m->next = in_order;
    in_order = m;
    m = next;
  }
  while (in_order != NULL) {
    rld_mail *next = in_order->next;
    mb->deliver(in_order, mb->arg);
    in_order = next;
  }
}

int rld_mailbox_init(rld_mailbox *mb, struct event_base *base,
                     rld_deliver_fn deliver, void *arg) {
  atomic_init(&mb->head, NULL);
  atomic_init(&mb->expected, 0);
  mb->deliver = deliver;
  mb->arg = arg;
  mb->ev = NULL;
  mb->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (mb->fd < 0) {
    return -1;
  }
  mb->ev = event_new(base, mb->fd, EV_READ | EV_PERSIST, on_mail, mb);
  return mb->ev != NULL && event_add(mb->ev, NULL) == 0 ? 0 : -1;
}

void rld_mailbox_close(rld_mailbox *mb) {
  if (mb->ev != NULL) {
    event_free(mb->ev);
    mb->ev = NULL;
  }
  if (mb->fd >= 0) {
    close(mb->fd);
    mb->fd = -1;
  }
}

void rld_mailbox_expect(rld_mailbox *mb) {
  atomic_fetch_add(&mb->expected, 1);
}

void rld_mailbox_cancel(rld_mailbox *mb) {
  atomic_fetch_sub(&mb->expected, 1);
}

void rld_mailbox_post(rld_mailbox *mb, rld_mail *m) {
  rld_mail *old = atomic_load_explicit(&mb->head, memory_order_relaxed);
  do {
    m->next = old;
  } while (!atomic_compare_exchange_weak_explicit(
      &mb->head, &old, m, memory_order_release, memory_order_relaxed));
  if (old == NULL) {
    const uint64_t one = 1;
    if (write(mb->fd, &one, sizeof one) != sizeof one) {
      rld_log(RLD_LOG_WARN, "cannot wake a worker for a reply");
    }
  }
  atomic_fetch_sub_explicit(&mb->expected, 1, memory_order_release);
}

int rld_mailbox_idle(rld_mailbox *mb) {
  return atomic_load_explicit(&mb->expected, memory_order_acquire) == 0 &&
         atomic_load_explicit(&mb->head, memory_order_acquire) == NULL;
}
