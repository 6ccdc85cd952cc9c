/*
 * redis_tls.h - TLS for Redis connections: OpenSSL 3 over our own
 * non-blocking sockets.
 *
 * hiredis 0.14 has no TLS, so the connection layer drives OpenSSL itself:
 * one rl__tls_ctx per node (CA, client certificate, verification policy),
 * one rl__tls_conn per socket. Every operation is non-blocking and reports
 * what it waits for (readable or writable socket) so the event loop can
 * retry it; nothing here blocks, allocates per read/write, or knows about
 * the event loop.
 */
#ifndef RL_REDIS_TLS_H
#define RL_REDIS_TLS_H

#include <stddef.h>
#include <sys/types.h>

/* TLS settings of a node. Strings are borrowed by rl__tls_ctx_new(). */
typedef struct rl__redis_tls_opts {
  int enabled;              /* 0 = plain TCP */
  const char *ca_file;      /* PEM bundle of trusted CAs, or NULL */
  const char *ca_dir;       /* OpenSSL hashed CA directory, or NULL; with
                             * neither, the system's default trust store */
  const char *cert_file;    /* client certificate chain (PEM), or NULL */
  const char *key_file;     /* its private key (PEM); needed with cert_file */
  const char *server_name;  /* name to verify and send as SNI; NULL = the
                             * node's host. An IP literal is verified against
                             * the certificate's IP SANs and sent no SNI. */
  int insecure_skip_verify; /* 1 = no certificate verification (tests) */
} rl__redis_tls_opts;

/* What a non-blocking TLS operation is waiting for. */
enum {
  RL__TLS_WANT_READ = -2,  /* retry when the socket is readable */
  RL__TLS_WANT_WRITE = -3, /* retry when the socket is writable */
  RL__TLS_ERROR = -1,      /* failed: see the errbuf / rl__tls_error() */
};

typedef struct rl__tls_ctx rl__tls_ctx;
typedef struct rl__tls_conn rl__tls_conn;

/* Builds the per-node context: loads the CA locations and the client
 * certificate. Returns RL_OK, or RL_ERR_CONFIG_INVALID / RL_ERR_NO_MEMORY
 * with a message in errbuf (when not NULL). */
int rl__tls_ctx_new(const rl__redis_tls_opts *opts, rl__tls_ctx **out,
                    char *errbuf, size_t errlen);
void rl__tls_ctx_free(rl__tls_ctx *ctx);

/* A TLS client session over the connected socket fd, verifying host (a
 * name or an IP literal; the ctx's server_name wins when set). Returns
 * RL_OK or RL_ERR_NO_MEMORY with a message in errbuf. */
int rl__tls_conn_new(rl__tls_ctx *ctx, int fd, const char *host,
                     rl__tls_conn **out, char *errbuf, size_t errlen);
void rl__tls_conn_free(rl__tls_conn *c);

/* Advances the handshake. Returns 0 when done, RL__TLS_WANT_READ/WRITE, or
 * RL__TLS_ERROR with a message (certificate verification failures say so
 * and why) in errbuf. */
int rl__tls_handshake(rl__tls_conn *c, char *errbuf, size_t errlen);

/* Reads up to len bytes. Returns > 0 bytes read, 0 on a clean close by the
 * peer, or RL__TLS_WANT_READ/WRITE/ERROR (message in errbuf). */
ssize_t rl__tls_read(rl__tls_conn *c, void *buf, size_t len, char *errbuf,
                     size_t errlen);

/* Writes up to len bytes (partial writes allowed). After a WANT_* result
 * the caller must retry with the same bytes at the same or a larger length
 * (the buffer may move). Returns > 0 bytes written or
 * RL__TLS_WANT_READ/WRITE/ERROR (message in errbuf). */
ssize_t rl__tls_write(rl__tls_conn *c, const void *buf, size_t len,
                      char *errbuf, size_t errlen);

#endif /* RL_REDIS_TLS_H */
