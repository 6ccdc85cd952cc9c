/*
 * units.c - durations and sizes of the configuration file.
 *
 * Every number is checked for overflow before it is multiplied or added, so
 * that "99999999999999999999h" is an error and not a small number.
 */
#include <string.h>

#include "units.h"

/* Reads digits at text[*at]; -1 if none or on overflow. */
static int read_u64(const char *text, size_t len, size_t *at, uint64_t *out) {
  uint64_t v = 0;
  size_t start = *at;
  while (*at < len && text[*at] >= '0' && text[*at] <= '9') {
    unsigned d = (unsigned)(text[*at] - '0');
    if (v > (UINT64_MAX - d) / 10) {
      return -1;
    }
    v = v * 10 + d;
    (*at)++;
  }
  *out = v;
  return *at > start ? 0 : -1;
}

int rld_parse_u64(const char *text, size_t len, uint64_t *out) {
  size_t at = 0;
  return read_u64(text, len, &at, out) == 0 && at == len ? 0 : -1;
}

static int mul_add(uint64_t *acc, uint64_t v, uint64_t unit) {
  if (v > UINT64_MAX / unit || *acc > UINT64_MAX - v * unit) {
    return -1;
  }
  *acc += v * unit;
  return 0;
}

/* Matches the longest unit name at text[*at] in the table. */
static int read_unit(const char *text, size_t len, size_t *at,
                     const char *const *names, const uint64_t *values, size_t n,
                     uint64_t *unit) {
  size_t best = 0;
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(names[i]);
    if (l > best && len - *at >= l && memcmp(text + *at, names[i], l) == 0) {
      best = l;
      *unit = values[i];
    }
  }
  *at += best;
  return best > 0 ? 0 : -1;
}

int rld_parse_duration(const char *text, size_t len, uint64_t *ms) {
  static const char *const names[] = {"ms", "s", "m", "h", "d"};
  static const uint64_t values[] = {1, 1000, 60000, 3600000, 86400000};
  if (len == 1 && text[0] == '0') {
    *ms = 0;
    return 0;
  }
  uint64_t acc = 0;
  size_t at = 0;
  do {
    uint64_t v = 0;
    uint64_t unit = 0;
    if (read_u64(text, len, &at, &v) != 0 ||
        read_unit(text, len, &at, names, values, 5, &unit) != 0 ||
        mul_add(&acc, v, unit) != 0) {
      return -1;
    }
  } while (at < len);
  *ms = acc;
  return 0;
}

int rld_parse_size(const char *text, size_t len, uint64_t *bytes) {
  static const char *const names[] = {"B",   "KB",  "MB",  "GB", "TB",
                                      "KiB", "MiB", "GiB", "TiB"};
#define RLD_K UINT64_C(1024)
  static const uint64_t values[] = {1,
                                    RLD_K,
                                    RLD_K * RLD_K,
                                    RLD_K * RLD_K * RLD_K,
                                    RLD_K * RLD_K * RLD_K * RLD_K,
                                    RLD_K,
                                    RLD_K * RLD_K,
                                    RLD_K * RLD_K * RLD_K,
                                    RLD_K * RLD_K * RLD_K * RLD_K};
#undef RLD_K
  size_t at = 0;
  uint64_t v = 0;
  uint64_t unit = 1;
  if (read_u64(text, len, &at, &v) != 0) {
    return -1;
  }
  if (at < len && read_unit(text, len, &at, names, values, 9, &unit) != 0) {
    return -1;
  }
  *bytes = 0;
  return at == len ? mul_add(bytes, v, unit) : -1;
}
