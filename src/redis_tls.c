/*
 * redis_tls.c - OpenSSL client sessions over non-blocking sockets (see
 * redis_tls.h).
 *
 * Verification: the peer chain must lead to a CA of ca_file / ca_dir (or
 * the system store), and the leaf must name the host: SSL_set1_host() for a
 * DNS name (also sent as SNI), X509_VERIFY_PARAM_set1_ip_asc() for an IP
 * literal. Errors are turned into one line for the node's errstr.
 */
#include "redis_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimiter.h"

struct rl__tls_ctx {
  SSL_CTX *ssl_ctx;
  char *server_name; /* copy of opts->server_name, or NULL */
  int verify;
};

struct rl__tls_conn {
  SSL *ssl;
};

static void set_err(char *errbuf, size_t errlen, const char *what) {
  if (errbuf == NULL || errlen == 0)
    return;
  unsigned long e = ERR_peek_last_error();
  char detail[96] = "";
  if (e != 0)
    ERR_error_string_n(e, detail, sizeof(detail));
  else if (errno != 0)
    snprintf(detail, sizeof(detail), "%s", strerror(errno));
  snprintf(errbuf, errlen, "%s%s%s", what, detail[0] ? ": " : "", detail);
  ERR_clear_error();
}

static int load_trust(SSL_CTX *ctx, const rl__redis_tls_opts *o, char *errbuf,
                      size_t errlen) {
  int ok = (o->ca_file || o->ca_dir)
               ? SSL_CTX_load_verify_locations(ctx, o->ca_file, o->ca_dir)
               : SSL_CTX_set_default_verify_paths(ctx);
  if (!ok) {
    set_err(errbuf, errlen, "TLS: cannot load CA certificates");
    return RL_ERR_CONFIG_INVALID;
  }
  return RL_OK;
}

static int load_client_cert(SSL_CTX *ctx, const rl__redis_tls_opts *o,
                            char *errbuf, size_t errlen) {
  if (o->cert_file == NULL && o->key_file == NULL)
    return RL_OK;
  if (o->cert_file == NULL || o->key_file == NULL) {
    snprintf(errbuf, errlen, "TLS: cert_file and key_file go together");
    return RL_ERR_CONFIG_INVALID;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    set_err(errbuf, errlen, "TLS: cannot load client certificate/key");
    return RL_ERR_CONFIG_INVALID;
  }
  return RL_OK;
}

static int configure_ctx(rl__tls_ctx *t, const rl__redis_tls_opts *o,
                         char *errbuf, size_t errlen) {
  SSL_CTX *ctx = t->ssl_ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_verify(ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  int rc = t->verify ? load_trust(ctx, o, errbuf, errlen) : RL_OK;
  if (rc == RL_OK)
    rc = load_client_cert(ctx, o, errbuf, errlen);
  return rc;
}

int rl__tls_ctx_new(const rl__redis_tls_opts *opts, rl__tls_ctx **out,
                    char *errbuf, size_t errlen) {
  ERR_clear_error();
  rl__tls_ctx *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return RL_ERR_NO_MEMORY;
  t->verify = !opts->insecure_skip_verify;
  t->ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (opts->server_name != NULL)
    t->server_name = strdup(opts->server_name);
  if (t->ssl_ctx == NULL ||
      (opts->server_name != NULL && t->server_name == NULL)) {
    set_err(errbuf, errlen, "TLS: out of memory");
    rl__tls_ctx_free(t);
    return RL_ERR_NO_MEMORY;
  }
  int rc = configure_ctx(t, opts, errbuf, errlen);
  if (rc != RL_OK) {
    rl__tls_ctx_free(t);
    return rc;
  }
  *out = t;
  return RL_OK;
}

void rl__tls_ctx_free(rl__tls_ctx *ctx) {
  if (ctx == NULL)
    return;
  SSL_CTX_free(ctx->ssl_ctx);
  free(ctx->server_name);
  free(ctx);
}

static int is_ip_literal(const char *host) {
  unsigned char addr[16];
  return inet_pton(AF_INET, host, addr) == 1 ||
         inet_pton(AF_INET6, host, addr) == 1;
}

/* Sets the name or address the certificate must carry, and SNI. */
static int set_peer_identity(SSL *ssl, const char *name) {
  if (is_ip_literal(name))
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
  return SSL_set_tlsext_host_name(ssl, name) == 1 &&
         SSL_set1_host(ssl, name) == 1;
}

int rl__tls_conn_new(rl__tls_ctx *ctx, int fd, const char *host,
                     rl__tls_conn **out, char *errbuf, size_t errlen) {
  ERR_clear_error();
  rl__tls_conn *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return RL_ERR_NO_MEMORY;
  c->ssl = SSL_new(ctx->ssl_ctx);
  const char *name = ctx->server_name ? ctx->server_name : host;
  if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1 ||
      (ctx->verify && !set_peer_identity(c->ssl, name))) {
    set_err(errbuf, errlen, "TLS: cannot create session");
    rl__tls_conn_free(c);
    return RL_ERR_NO_MEMORY;
  }
  SSL_set_connect_state(c->ssl);
  *out = c;
  return RL_OK;
}

void rl__tls_conn_free(rl__tls_conn *c) {
  if (c == NULL)
    return;
  SSL_free(c->ssl);
  free(c);
}

/* Maps a failed SSL_* call to a want code, 0 (clean EOF) or an error. */
static int map_error(rl__tls_conn *c, int ret, const char *op, char *errbuf,
                     size_t errlen) {
  int e = SSL_get_error(c->ssl, ret);
  if (e == SSL_ERROR_WANT_READ)
    return RL__TLS_WANT_READ;
  if (e == SSL_ERROR_WANT_WRITE)
    return RL__TLS_WANT_WRITE;
  if (e == SSL_ERROR_ZERO_RETURN)
    return 0;
  long vr = SSL_get_verify_result(c->ssl);
  if (vr != X509_V_OK) {
    snprintf(errbuf, errlen, "TLS certificate verification failed: %s",
             X509_verify_cert_error_string(vr));
    ERR_clear_error();
  } else if (e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0) {
    snprintf(errbuf, errlen, "TLS %s: %s", op,
             errno ? strerror(errno) : "connection closed by peer");
  } else {
    char what[48];
    snprintf(what, sizeof(what), "TLS %s failed", op);
    set_err(errbuf, errlen, what);
  }
  return RL__TLS_ERROR;
}

int rl__tls_handshake(rl__tls_conn *c, char *errbuf, size_t errlen) {
  ERR_clear_error();
  errno = 0;
  int ret = SSL_do_handshake(c->ssl);
  if (ret == 1)
    return 0;
  int rc = map_error(c, ret, "handshake", errbuf, errlen);
  if (rc == 0) { /* closed during the handshake */
    snprintf(errbuf, errlen, "TLS handshake: connection closed by peer");
    rc = RL__TLS_ERROR;
  }
  return rc;
}

ssize_t rl__tls_read(rl__tls_conn *c, void *buf, size_t len, char *errbuf,
                     size_t errlen) {
  ERR_clear_error();
  errno = 0;
  int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
  if (n > 0)
    return n;
  return map_error(c, n, "read", errbuf, errlen);
}

ssize_t rl__tls_write(rl__tls_conn *c, const void *buf, size_t len,
                      char *errbuf, size_t errlen) {
  ERR_clear_error();
  errno = 0;
  int n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
  if (n > 0)
    return n;
  int rc = map_error(c, n, "write", errbuf, errlen);
  if (rc == 0) {
    snprintf(errbuf, errlen, "TLS write: connection closed by peer");
    rc = RL__TLS_ERROR;
  }
  return rc;
}
