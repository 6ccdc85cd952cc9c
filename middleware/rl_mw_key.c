/*
 * rl_mw_key.c - rate-limit keys built from a request: the parts of a key
 * spec ("ip", "path", "header:NAME", "const:VALUE") joined by '|'.
 *
 * Written for the request path: the builder only copies bytes into the
 * caller's buffer, checks the bound before every copy, and never allocates.
 * A missing header is an error rather than an empty part, so that requests
 * without an API key do not all share one anonymous bucket by accident
 * (a deployment that wants that says so with a "const:" part).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rl_mw.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return RL_ERR_CONFIG_INVALID;
}

/* RFC 9110 token characters: what a header name may contain. */
static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static int starts_with(const char *text, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(text, prefix, n) == 0;
}

static int set_arg(rl_mw_key_part *part, const char *arg, size_t len, char *err,
                   size_t errlen) {
  if (len == 0 || len > RL_MW_ARG_MAX) {
    return fail(err, errlen, "key part argument must be 1..%d bytes",
                RL_MW_ARG_MAX);
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)arg[i];
    if (part->kind == RL_MW_PART_HEADER ? !is_tchar(c)
                                        : (c < 0x20 || c == 0x7f)) {
      return fail(err, errlen, "invalid character in key part '%.*s'", (int)len,
                  arg);
    }
  }
  memcpy(part->arg, arg, len);
  part->arg[len] = '\0';
  return RL_OK;
}

int rl_mw_key_spec_add(rl_mw_key_spec *spec, const char *text, size_t len,
                       char *err, size_t errlen) {
  if (spec == NULL || text == NULL) {
    return fail(err, errlen, "no key spec");
  }
  if (spec->n_parts >= RL_MW_KEY_PARTS_MAX) {
    return fail(err, errlen, "a key has at most %d parts", RL_MW_KEY_PARTS_MAX);
  }
  rl_mw_key_part part;
  memset(&part, 0, sizeof part);
  int rc = RL_OK;
  if (len == 2 && memcmp(text, "ip", 2) == 0) {
    part.kind = RL_MW_PART_IP;
  } else if (len == 4 && memcmp(text, "path", 4) == 0) {
    part.kind = RL_MW_PART_PATH;
  } else if (starts_with(text, len, "header:")) {
    part.kind = RL_MW_PART_HEADER;
    rc = set_arg(&part, text + 7, len - 7, err, errlen);
  } else if (starts_with(text, len, "const:")) {
    part.kind = RL_MW_PART_CONST;
    rc = set_arg(&part, text + 6, len - 6, err, errlen);
  } else {
    return fail(err, errlen,
                "unknown key part '%.*s' (expected ip, path, header:NAME or "
                "const:VALUE)",
                (int)(len > 64 ? 64 : len), text);
  }
  if (rc == RL_OK) {
    spec->parts[spec->n_parts++] = part;
  }
  return rc;
}

static const char *part_prefix(rl_mw_part_kind kind) {
  switch (kind) {
  case RL_MW_PART_IP:
    return "ip";
  case RL_MW_PART_PATH:
    return "path";
  case RL_MW_PART_HEADER:
    return "header:";
  default:
    return "const:";
  }
}

int rl_mw_key_spec_format(const rl_mw_key_spec *spec, char *buf, size_t cap) {
  size_t at = 0;
  for (size_t i = 0; i < spec->n_parts; i++) {
    int n = snprintf(buf + at, cap - at, "%s%s%s", i > 0 ? ", " : "",
                     part_prefix(spec->parts[i].kind), spec->parts[i].arg);
    if (n < 0 || (size_t)n >= cap - at) {
      return -1;
    }
    at += (size_t)n;
  }
  if (at == 0 && cap > 0) {
    buf[0] = '\0';
  }
  return cap == 0 ? -1 : (int)at;
}

/* The value of one part, or NULL when a header is missing or empty. */
static const char *part_value(const rl_mw_key_part *part,
                              const rl_mw_request *req, size_t *len) {
  const char *v = NULL;
  switch (part->kind) {
  case RL_MW_PART_IP:
    v = req->client_ip;
    break;
  case RL_MW_PART_PATH:
    if (req->path == NULL || req->path_len == 0) {
      *len = 1;
      return "/";
    }
    *len = req->path_len;
    return req->path;
  case RL_MW_PART_HEADER:
    v = req->header != NULL ? req->header(req->header_ctx, part->arg) : NULL;
    break;
  default:
    v = part->arg;
    break;
  }
  *len = v != NULL ? strlen(v) : 0;
  return *len > 0 ? v : NULL;
}

int rl_mw_key_build(const rl_mw_key_spec *spec, const rl_mw_request *req,
                    char *buf, size_t cap, size_t *len, const char **missing) {
  size_t at = 0;
  for (size_t i = 0; i < spec->n_parts; i++) {
    size_t n = 0;
    const char *v = part_value(&spec->parts[i], req, &n);
    if (v == NULL) {
      if (missing != NULL) {
        *missing = spec->parts[i].arg;
      }
      return RL_ERR_KEY_EMPTY;
    }
    size_t need = n + (i > 0 ? 1 : 0);
    if (need > cap - at) {
      return RL_ERR_KEY_TOO_LONG;
    }
    if (i > 0) {
      buf[at++] = RL_MW_KEY_SEP;
    }
    memcpy(buf + at, v, n);
    at += n;
  }
  *len = at;
  return at == 0 ? RL_ERR_KEY_EMPTY : RL_OK;
}
