/*
 * json_request.c - a strict, small JSON reader for exactly one shape of
 * document: an object whose interesting fields are three scalars.
 *
 * Written for the request path and for hostile input: one forward pass,
 * no allocation, no recursion (unknown values are skipped with an explicit
 * depth counter), every read bounds-checked, strings checked for UTF-8 and
 * control characters, numbers for overflow. Errors are short sentences a
 * client can act on; they carry no line or column (a request body is one
 * line, usually).
 */
#include <string.h>

#include "json_request.h"

typedef struct reader {
  const char *p;
  const char *end;
  char *scratch;
  size_t scratch_len;
  size_t scratch_used;
  const char *msg;
  rld_json_err err;
} reader;

static int fail(reader *r, rld_json_err err, const char *msg) {
  if (r->err == RLD_JSON_OK) {
    r->err = err;
    r->msg = msg;
  }
  return -1;
}

static void skip_ws(reader *r) {
  while (r->p < r->end &&
         (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) {
    r->p++;
  }
}

static int expect(reader *r, char c, const char *msg) {
  skip_ws(r);
  if (r->p >= r->end || *r->p != c) {
    return fail(r, RLD_JSON_SYNTAX, msg);
  }
  r->p++;
  return 0;
}

static int hex4(reader *r, unsigned *out) {
  unsigned v = 0;
  if (r->end - r->p < 4) {
    return fail(r, RLD_JSON_SYNTAX, "truncated \\u escape");
  }
  for (int i = 0; i < 4; i++) {
    char c = *r->p++;
    unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                 : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                        : 16u;
    if (d == 16) {
      return fail(r, RLD_JSON_SYNTAX, "invalid \\u escape");
    }
    v = v * 16 + d;
  }
  *out = v;
  return 0;
}

/* A \uXXXX escape (after "\u"), with surrogate pairs, as a code point. */
static int unicode_escape(reader *r, unsigned *cp) {
  unsigned hi = 0;
  if (hex4(r, &hi) != 0) {
    return -1;
  }
  if (hi >= 0xDC00 && hi <= 0xDFFF) {
    return fail(r, RLD_JSON_SYNTAX, "unpaired surrogate in \\u escape");
  }
  if (hi < 0xD800 || hi > 0xDBFF) {
    *cp = hi;
    return 0;
  }
  unsigned lo = 0;
  if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') {
    return fail(r, RLD_JSON_SYNTAX, "unpaired surrogate in \\u escape");
  }
  r->p += 2;
  if (hex4(r, &lo) != 0) {
    return -1;
  }
  if (lo < 0xDC00 || lo > 0xDFFF) {
    return fail(r, RLD_JSON_SYNTAX, "unpaired surrogate in \\u escape");
  }
  *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
  return 0;
}

/* Appends one code point as UTF-8 to out (n bytes so far, cap max). */
static int put_utf8(reader *r, char *out, size_t *n, size_t cap, unsigned cp) {
  unsigned char b[4];
  size_t k = 0;
  if (cp < 0x80) {
    b[k++] = (unsigned char)cp;
  } else if (cp < 0x800) {
    b[k++] = (unsigned char)(0xC0 | (cp >> 6));
    b[k++] = (unsigned char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    b[k++] = (unsigned char)(0xE0 | (cp >> 12));
    b[k++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[k++] = (unsigned char)(0x80 | (cp & 0x3F));
  } else {
    b[k++] = (unsigned char)(0xF0 | (cp >> 18));
    b[k++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[k++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[k++] = (unsigned char)(0x80 | (cp & 0x3F));
  }
  if (cap - *n < k) {
    return fail(r, RLD_JSON_FIELD, "string too long");
  }
  memcpy(out + *n, b, k);
  *n += k;
  return 0;
}

/* Length of the UTF-8 sequence at p (bytes left: avail), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF refused). */
static size_t utf8_len(const unsigned char *p, size_t avail) {
  unsigned c = p[0];
  size_t n = c < 0x80             ? 1
             : (c & 0xE0) == 0xC0 ? 2
             : (c & 0xF0) == 0xE0 ? 3
             : (c & 0xF8) == 0xF0 ? 4
                                  : 0;
  if (n == 0 || n > avail || (n == 2 && c < 0xC2) || (n == 4 && c > 0xF4)) {
    return 0;
  }
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) {
      return 0;
    }
  }
  if ((n == 3 && c == 0xE0 && p[1] < 0xA0) ||
      (n == 3 && c == 0xED && p[1] >= 0xA0) ||
      (n == 4 && c == 0xF0 && p[1] < 0x90) ||
      (n == 4 && c == 0xF4 && p[1] >= 0x90)) {
    return 0;
  }
  return n;
}

static int simple_escape(char c, char *out) {
  static const char from[] = "\"\\/bfnrt";
  static const char to[] = "\"\\/\b\f\n\r\t";
  const char *at = c != '\0' ? strchr(from, c) : NULL;
  if (at == NULL) {
    return -1;
  }
  *out = to[at - from];
  return 0;
}

/* One escape after the backslash, appended to out. */
static int escape(reader *r, char *out, size_t *n, size_t cap) {
  if (r->p >= r->end) {
    return fail(r, RLD_JSON_SYNTAX, "unterminated string");
  }
  char c = *r->p++;
  char simple = 0;
  if (c == 'u') {
    unsigned cp = 0;
    return unicode_escape(r, &cp) != 0 ? -1 : put_utf8(r, out, n, cap, cp);
  }
  if (simple_escape(c, &simple) != 0) {
    return fail(r, RLD_JSON_SYNTAX, "invalid escape in string");
  }
  return put_utf8(r, out, n, cap, (unsigned char)simple);
}

/* Reads a string (after the opening quote). Without escapes *s points into
 * the input; with escapes it is decoded into out (cap bytes). cap bounds
 * the decoded length either way. */
static int string(reader *r, char *out, size_t cap, const char **s,
                  size_t *len) {
  const char *start = r->p;
  size_t n = 0;
  int escaped = 0;
  while (r->p < r->end && *r->p != '"') {
    unsigned char c = (unsigned char)*r->p;
    if (c < 0x20) {
      return fail(r, RLD_JSON_SYNTAX, "control character in string");
    }
    if (c == '\\') {
      if (!escaped) {
        size_t before = (size_t)(r->p - start);
        if (before > cap) {
          return fail(r, RLD_JSON_FIELD, "string too long");
        }
        memcpy(out, start, before);
        n = before;
        escaped = 1;
      }
      r->p++;
      if (escape(r, out, &n, cap) != 0) {
        return -1;
      }
      continue;
    }
    size_t k = utf8_len((const unsigned char *)r->p, (size_t)(r->end - r->p));
    if (k == 0) {
      return fail(r, RLD_JSON_SYNTAX, "invalid UTF-8 in string");
    }
    if (escaped) {
      if (cap - n < k) {
        return fail(r, RLD_JSON_FIELD, "string too long");
      }
      memcpy(out + n, r->p, k);
      n += k;
    }
    r->p += k;
  }
  if (r->p >= r->end) {
    return fail(r, RLD_JSON_SYNTAX, "unterminated string");
  }
  size_t raw = (size_t)(r->p - start);
  r->p++;
  if (!escaped && raw > cap) {
    return fail(r, RLD_JSON_FIELD, "string too long");
  }
  *s = escaped ? out : start;
  *len = escaped ? n : raw;
  return 0;
}

/* A JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * Sets *is_int and, for integers that fit, *value. */
static int number(reader *r, int *is_int, uint64_t *value, int *negative) {
  *is_int = 1;
  *negative = 0;
  *value = 0;
  int overflow = 0;
  if (r->p < r->end && *r->p == '-') {
    *negative = 1;
    r->p++;
  }
  if (r->p >= r->end || *r->p < '0' || *r->p > '9') {
    return fail(r, RLD_JSON_SYNTAX, "invalid number");
  }
  if (*r->p == '0' && r->end - r->p > 1 && r->p[1] >= '0' && r->p[1] <= '9') {
    return fail(r, RLD_JSON_SYNTAX, "numbers may not have leading zeros");
  }
  while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
    unsigned d = (unsigned)(*r->p++ - '0');
    overflow |= *value > (UINT64_MAX - d) / 10;
    *value = overflow ? *value : *value * 10 + d;
  }
  if (r->p < r->end && *r->p == '.') {
    r->p++;
    *is_int = 0;
    if (r->p >= r->end || *r->p < '0' || *r->p > '9') {
      return fail(r, RLD_JSON_SYNTAX, "invalid number");
    }
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
      r->p++;
    }
  }
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    r->p++;
    *is_int = 0;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-')) {
      r->p++;
    }
    if (r->p >= r->end || *r->p < '0' || *r->p > '9') {
      return fail(r, RLD_JSON_SYNTAX, "invalid number");
    }
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
      r->p++;
    }
  }
  if (overflow) {
    *value = UINT64_MAX;
  }
  return 0;
}

static int literal(reader *r, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) {
    return fail(r, RLD_JSON_SYNTAX, "invalid value");
  }
  r->p += n;
  return 0;
}

/* Skips a string without keeping it (still checked). */
static int skip_string(reader *r) {
  char tmp[8]; /* one escape at a time: at most 4 bytes of UTF-8 */
  while (r->p < r->end && *r->p != '"') {
    unsigned char c = (unsigned char)*r->p;
    if (c < 0x20) {
      return fail(r, RLD_JSON_SYNTAX, "control character in string");
    }
    if (c == '\\') {
      size_t n = 0;
      r->p++;
      if (escape(r, tmp, &n, sizeof tmp) != 0) {
        return -1;
      }
      continue;
    }
    size_t k = utf8_len((const unsigned char *)r->p, (size_t)(r->end - r->p));
    if (k == 0) {
      return fail(r, RLD_JSON_SYNTAX, "invalid UTF-8 in string");
    }
    r->p += k;
  }
  return r->p < r->end ? (r->p++, 0)
                       : fail(r, RLD_JSON_SYNTAX, "unterminated string");
}

/* Skips one scalar value (string, number, true, false, null). */
static int skip_scalar(reader *r) {
  int is_int = 0;
  int neg = 0;
  uint64_t v = 0;
  char c = *r->p;
  if (c == '"') {
    r->p++;
    return skip_string(r);
  }
  if (c == '-' || (c >= '0' && c <= '9')) {
    return number(r, &is_int, &v, &neg);
  }
  return literal(r, c == 't' ? "true" : c == 'f' ? "false" : "null");
}

/* After a value inside a container: ',' (more) or the closer. Returns 1
 * if the container goes on, 0 if it closed, -1 on error. */
static int after_value(reader *r, const char *stack, int *depth) {
  skip_ws(r);
  if (r->p >= r->end) {
    return fail(r, RLD_JSON_SYNTAX, "unexpected end of body");
  }
  char c = *r->p++;
  if (c == ',') {
    return 1;
  }
  if (c != stack[*depth - 1]) {
    return fail(r, RLD_JSON_SYNTAX, "expected ',' or a closing bracket");
  }
  (*depth)--;
  return 0;
}

/* Reads `"name":` inside an object being skipped. */
static int skip_member_name(reader *r) {
  if (expect(r, '"', "expected a field name") != 0 || skip_string(r) != 0) {
    return -1;
  }
  return expect(r, ':', "expected ':' after a field name");
}

/* Opens a container at r->p; 1 if it opened and is non-empty, 0 if it was
 * empty ({} or []), -1 on error. */
static int open_container(reader *r, char *stack, int *depth) {
  char c = *r->p++;
  if (*depth >= RLD_JSON_DEPTH_MAX) {
    return fail(r, RLD_JSON_SYNTAX, "nesting too deep");
  }
  stack[(*depth)++] = c == '{' ? '}' : ']';
  skip_ws(r);
  if (r->p < r->end && *r->p == stack[*depth - 1]) {
    r->p++;
    (*depth)--;
    return 0;
  }
  return 1;
}

/* Skips any JSON value, iteratively, at most RLD_JSON_DEPTH_MAX deep. */
static int skip_value(reader *r) {
  char stack[RLD_JSON_DEPTH_MAX];
  int depth = 0;
  do {
    skip_ws(r);
    if (r->p >= r->end) {
      return fail(r, RLD_JSON_SYNTAX, "unexpected end of body");
    }
    if (depth > 0 && stack[depth - 1] == '}' && skip_member_name(r) != 0) {
      return -1;
    }
    skip_ws(r);
    if (r->p >= r->end) {
      return fail(r, RLD_JSON_SYNTAX, "unexpected end of body");
    }
    int more = 1;
    if (*r->p == '{' || *r->p == '[') {
      more = open_container(r, stack, &depth);
      if (more < 0) {
        return -1;
      }
      if (more == 1) {
        continue; /* read the first member */
      }
    } else if (skip_scalar(r) != 0) {
      return -1;
    }
    while (depth > 0 && (more = after_value(r, stack, &depth)) == 0) {
    }
    if (more < 0) {
      return -1;
    }
  } while (depth > 0);
  return 0;
}

typedef enum field_id { F_POLICY, F_KEY, F_COST, F_OTHER } field_id;

static field_id field_of(const char *s, size_t len) {
  if (len == 6 && memcmp(s, "policy", 6) == 0) {
    return F_POLICY;
  }
  if (len == 3 && memcmp(s, "key", 3) == 0) {
    return F_KEY;
  }
  if (len == 4 && memcmp(s, "cost", 4) == 0) {
    return F_COST;
  }
  return F_OTHER;
}

/* A string field or null; out gets the decoded bytes (cap bounds them). */
static int string_field(reader *r, size_t cap, const char **s, size_t *len,
                        const char *type_msg) {
  skip_ws(r);
  if (r->p >= r->end) {
    return fail(r, RLD_JSON_SYNTAX, "unexpected end of body");
  }
  if (*r->p == 'n') {
    *s = NULL;
    *len = 0;
    return literal(r, "null");
  }
  if (*r->p != '"') {
    return fail(r, RLD_JSON_FIELD, type_msg);
  }
  r->p++;
  char *out = r->scratch + r->scratch_used;
  if (string(r, out, cap, s, len) != 0) {
    return -1;
  }
  if (*s == out) {
    r->scratch_used += *len;
  }
  return 0;
}

static int cost_field(reader *r, int64_t *cost) {
  skip_ws(r);
  if (r->p >= r->end) {
    return fail(r, RLD_JSON_SYNTAX, "unexpected end of body");
  }
  if (*r->p != '-' && (*r->p < '0' || *r->p > '9')) {
    return fail(r, RLD_JSON_FIELD, "cost must be a whole number");
  }
  int is_int = 0;
  int neg = 0;
  uint64_t v = 0;
  if (number(r, &is_int, &v, &neg) != 0) {
    return -1;
  }
  if (!is_int) {
    return fail(r, RLD_JSON_FIELD, "cost must be a whole number");
  }
  if (neg || v == 0 || v > RL_COST_MAX) {
    return fail(r, RLD_JSON_FIELD, "cost must be between 1 and 2^40");
  }
  *cost = (int64_t)v;
  return 0;
}

static int member(reader *r, rld_check_request *out, unsigned *seen) {
  char name_buf[16];
  const char *name = NULL;
  size_t name_len = 0;
  if (expect(r, '"', "expected a field name") != 0) {
    return -1;
  }
  /* Names of interest are short; longer names are skipped as unknown. */
  const char *before = r->p;
  if (string(r, name_buf, sizeof name_buf, &name, &name_len) != 0) {
    if (r->err != RLD_JSON_FIELD) {
      return -1;
    }
    r->err = RLD_JSON_OK; /* too long for us: an unknown field */
    r->p = before;
    name = "";
    name_len = 0;
    if (skip_string(r) != 0) {
      return -1;
    }
  }
  if (expect(r, ':', "expected ':' after a field name") != 0) {
    return -1;
  }
  field_id id = field_of(name, name_len);
  if (id != F_OTHER && (*seen & (1u << id))) {
    return fail(r, RLD_JSON_FIELD, "a field is given twice");
  }
  *seen |= 1u << id;
  switch (id) {
  case F_POLICY:
    return string_field(r, RL_POLICY_NAME_MAX, &out->policy, &out->policy_len,
                        "policy must be a string");
  case F_KEY:
    if (string_field(r, RL_KEY_MAX, &out->key, &out->key_len,
                     "key must be a string") != 0) {
      if (r->err == RLD_JSON_FIELD && strcmp(r->msg, "string too long") == 0) {
        r->err = RLD_JSON_KEY_TOO_LONG;
        r->msg = "key is longer than 4096 bytes";
      }
      return -1;
    }
    return 0;
  case F_COST:
    return cost_field(r, &out->cost);
  default:
    return skip_value(r);
  }
}

static int object(reader *r, rld_check_request *out) {
  unsigned seen = 0;
  if (expect(r, '{', "the body must be a JSON object") != 0) {
    return -1;
  }
  skip_ws(r);
  if (r->p < r->end && *r->p == '}') {
    r->p++;
    return 0;
  }
  for (;;) {
    if (member(r, out, &seen) != 0) {
      return -1;
    }
    skip_ws(r);
    if (r->p >= r->end) {
      return fail(r, RLD_JSON_SYNTAX, "unexpected end of body");
    }
    char c = *r->p++;
    if (c == '}') {
      return 0;
    }
    if (c != ',') {
      return fail(r, RLD_JSON_SYNTAX, "expected ',' or '}' after a field");
    }
  }
}

// NOLINTNEXTLINE(readability-non-const-parameter): scratch is written
rld_json_err rld_json_request_parse(const char *buf, size_t len, char *scratch,
                                    size_t scratch_len, rld_check_request *out,
                                    const char **message) {
  static const char empty[1] = {0};
  const char *in = buf != NULL ? buf : empty;
  reader r = {
      in,         in + (buf != NULL ? len : 0), scratch, scratch_len, 0, NULL,
      RLD_JSON_OK};
  memset(out, 0, sizeof *out);
  out->cost = 1;
  if (scratch == NULL || scratch_len < RLD_JSON_SCRATCH) {
    fail(&r, RLD_JSON_SYNTAX, "no room to decode the body");
  } else if (object(&r, out) == 0) {
    skip_ws(&r);
    if (r.p != r.end) {
      fail(&r, RLD_JSON_SYNTAX, "unexpected data after the JSON object");
    }
  }
  if (r.err != RLD_JSON_OK) {
    memset(out, 0, sizeof *out);
    out->cost = 1;
  }
  if (message != NULL) {
    *message = r.msg;
  }
  return r.err;
}
