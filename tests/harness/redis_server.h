/*
 * redis_server.h - test harness: real redis-server processes on free
 * 127.0.0.1 ports.
 *
 * Each server runs in its own temporary directory (config, log, pid file,
 * ACL file) and is started with persistence off and DEBUG enabled. A port
 * is picked by binding port 0; a start that loses the port to another
 * process is retried on a new one. rlt_redis_start() returns once the
 * server is ready (log line, then PING for plain servers).
 *
 * Nothing leaks, whatever happens to the test: servers get SIGKILL when
 * the test process dies (PR_SET_PDEATHSIG), are stopped by an atexit
 * handler, and a later run kills servers whose owning test process is gone
 * (found through the pid files in /tmp/rlt-redis.<owner-pid>.*).
 *
 * TLS material (a CA, a server certificate for localhost and 127.0.0.1, a
 * client certificate, and an unrelated second CA) is generated once per
 * process with the openssl CLI into a temporary directory.
 */
#ifndef RLT_REDIS_SERVER_H
#define RLT_REDIS_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct rlt_redis_opts {
  const char *password;     /* requirepass, or NULL */
  const char *acl;          /* ACL file contents ("user ... \n"), or NULL */
  int tls;                  /* 1: TLS-only port (plain port disabled) */
  int tls_auth_clients;     /* with tls: 1 = client certificate required */
  const char *const *extra; /* more redis-server arguments, NULL-ended
                             * (e.g. cluster options); or NULL */
} rlt_redis_opts;

typedef struct rlt_redis {
  pid_t pid; /* 0 when not running */
  uint16_t port;
  char dir[128];
  rlt_redis_opts opts; /* copied at start (strings borrowed) */
} rlt_redis;

/* Starts a server. Returns 0, or -1 with a message on stderr. */
int rlt_redis_start(rlt_redis *r, const rlt_redis_opts *opts);
/* Starts it again on the same port after a stop or kill. 0 or -1. */
int rlt_redis_restart(rlt_redis *r);
/* SIGCONT, SIGTERM, then SIGKILL after 3 s; reaps it. Removes its dir. */
void rlt_redis_stop(rlt_redis *r);
/* SIGKILL and reap, keeping the directory for a restart. */
void rlt_redis_kill(rlt_redis *r);
/* SIGSTOP / SIGCONT: a server that accepts nothing and answers nothing. */
void rlt_redis_pause(rlt_redis *r);
void rlt_redis_resume(rlt_redis *r);

/* Sends one command (NULL-terminated argument list) on a fresh plain
 * connection (AUTH with opts.password first if set) and copies the first
 * line of the reply into out. wait = 0 sends without reading a reply (for
 * DEBUG SLEEP); the connection is then closed by the next call or at exit.
 * Returns 0 or -1. Plain servers only. */
int rlt_redis_cmd(rlt_redis *r, char *out, size_t outlen, int wait, ...);

/* Directory holding ca.crt, server.{crt,key}, client.{crt,key} and
 * other-ca.crt; NULL if openssl failed. Generated on first use. */
const char *rlt_tls_dir(void);

/* Timing slack for assertions, in ms: 25 by default, scaled by the
 * environment variable RLT_TIME_SCALE (e.g. 10 under valgrind) and by 4
 * in sanitizer builds. */
int64_t rlt_slack_ms(void);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t rlt_now_ms(void);
void rlt_sleep_ms(int64_t ms);

#endif /* RLT_REDIS_SERVER_H */
