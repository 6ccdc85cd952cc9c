/*
 * query.c - application/x-www-form-urlencoded pairs of a request URI,
 * decoded into the caller's scratch. Bounded like the JSON reader: the
 * decoded policy and key never exceed their maxima.
 */
#include <string.h>

#include "query.h"

static int hexval(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* Decodes in[0..len) into out (cap bytes). Returns the decoded length, -1
 * for a bad escape, -2 when it does not fit. */
static long decode(const char *in, size_t len, char *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    if (c == '%') {
      int hi = len - i >= 3 ? hexval(in[i + 1]) : -1;
      int lo = len - i >= 3 ? hexval(in[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return -1;
      }
      c = (char)(hi * 16 + lo);
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (n >= cap) {
      return -2;
    }
    out[n++] = c;
  }
  return (long)n;
}

typedef struct pair {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} pair;

/* The next name=value pair at *at; 0 when none is left. */
static int next_pair(const char *q, size_t len, size_t *at, pair *p) {
  while (*at < len && q[*at] == '&') {
    (*at)++;
  }
  if (*at >= len) {
    return 0;
  }
  size_t start = *at;
  while (*at < len && q[*at] != '&') {
    (*at)++;
  }
  const char *eq = memchr(q + start, '=', *at - start);
  p->name = q + start;
  p->name_len = eq != NULL ? (size_t)(eq - p->name) : *at - start;
  p->value = eq != NULL ? eq + 1 : q + *at;
  p->value_len = eq != NULL ? (size_t)(q + *at - p->value) : 0;
  return 1;
}

static rld_json_err field(const pair *p, char **scratch, size_t *left,
                          size_t max, const char **s, size_t *n,
                          const char **msg) {
  long got =
      decode(p->value, p->value_len, *scratch, max < *left ? max : *left);
  if (got == -1) {
    *msg = "invalid percent escape in the query";
    return RLD_JSON_SYNTAX;
  }
  if (got == -2) {
    *msg = max == RL_KEY_MAX ? "key is longer than 4096 bytes"
                             : "policy name too long";
    return max == RL_KEY_MAX ? RLD_JSON_KEY_TOO_LONG : RLD_JSON_FIELD;
  }
  *s = *scratch;
  *n = (size_t)got;
  *scratch += got;
  *left -= (size_t)got;
  return RLD_JSON_OK;
}

static rld_json_err cost(const pair *p, int64_t *out, const char **msg) {
  uint64_t v = 0;
  *msg = "cost must be between 1 and 2^40";
  if (p->value_len == 0 || p->value_len > 14) {
    return RLD_JSON_FIELD;
  }
  for (size_t i = 0; i < p->value_len; i++) {
    if (p->value[i] < '0' || p->value[i] > '9') {
      *msg = "cost must be a whole number";
      return RLD_JSON_FIELD;
    }
    v = v * 10 + (uint64_t)(p->value[i] - '0');
  }
  if (v == 0 || v > RL_COST_MAX) {
    return RLD_JSON_FIELD;
  }
  *out = (int64_t)v;
  return RLD_JSON_OK;
}

static int is(const pair *p, const char *name) {
  size_t n = strlen(name);
  return p->name_len == n && memcmp(p->name, name, n) == 0;
}

rld_json_err rld_query_parse(const char *query, size_t len, char *scratch,
                             size_t scratch_len, rld_check_request *out,
                             const char **message) {
  memset(out, 0, sizeof *out);
  out->cost = 1;
  size_t at = 0;
  unsigned seen = 0;
  pair p;
  rld_json_err err = RLD_JSON_OK;
  const char *msg = NULL;
  while (err == RLD_JSON_OK && query != NULL &&
         next_pair(query, len, &at, &p)) {
    unsigned bit = is(&p, "policy") ? 1u
                   : is(&p, "key")  ? 2u
                   : is(&p, "cost") ? 4u
                                    : 0u;
    if (bit != 0 && (seen & bit)) {
      msg = "a query parameter is given twice";
      err = RLD_JSON_FIELD;
    } else if (bit == 1) {
      err = field(&p, &scratch, &scratch_len, RL_POLICY_NAME_MAX, &out->policy,
                  &out->policy_len, &msg);
    } else if (bit == 2) {
      err = field(&p, &scratch, &scratch_len, RL_KEY_MAX, &out->key,
                  &out->key_len, &msg);
    } else if (bit == 4) {
      err = cost(&p, &out->cost, &msg);
    }
    seen |= bit;
  }
  if (err != RLD_JSON_OK) {
    memset(out, 0, sizeof *out);
    out->cost = 1;
  }
  if (message != NULL) {
    *message = msg;
  }
  return err;
}
