/*
 * server.h - the HTTP workers: sockets, threads, wake-ups and the drain
 * of a graceful shutdown.
 */
#ifndef RLD_SERVER_H
#define RLD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "daemon.h"

/* Binds cfg->server.listen (port 0 = any free port, stored in d->port)
 * once per worker with SO_REUSEPORT and starts the worker threads.
 * 0, or -1 with a reason in err. */
int rld_server_start(rld_daemon *d, const rld_config *cfg, char *err,
                     size_t errlen);

/* Makes every worker pick up the published snapshot now (so the previous
 * one is freed without waiting for traffic). */
void rld_server_wake(rld_daemon *d);

/* Graceful stop: every worker closes its listening socket, answers what
 * it has in hand with "Connection: close", and exits its loop when it has
 * nothing in flight and has been quiet for a moment, or when grace_ms is
 * over. Blocks until all workers have exited, then frees them. */
void rld_server_stop(rld_daemon *d, uint64_t grace_ms);

#endif /* RLD_SERVER_H */
