/*
 * saturate.h - integer helpers for the decision algorithms.
 *
 * The algorithms must never overflow (signed overflow is UB, unsigned
 * wrap-around would be a wrong decision), whatever the state bytes, the time
 * or the cost. These helpers clamp at the type's range instead, and compute
 * products that can exceed 64 bits in 128 bits. Divisions by a 64-bit value
 * take a 64-bit fast path when the dividend fits, which is the common case
 * and several times cheaper than a 128-bit division.
 */
#ifndef RL_SATURATE_H
#define RL_SATURATE_H

#include <stdint.h>

/* GCC and clang both provide it; __extension__ keeps -Wpedantic quiet. */
__extension__ typedef unsigned __int128 rl__u128;

/* Callers guarantee now >= 0; this keeps a negative one harmless. */
static inline int64_t rl__nonneg(int64_t t) {
  return t < 0 ? 0 : t;
}

static inline uint64_t rl__min_u64(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

static inline uint64_t rl__max_u64(uint64_t a, uint64_t b) {
  return a > b ? a : b;
}

/* a clamped to [lo, hi] (lo <= hi). */
static inline uint64_t rl__clamp_u64(uint64_t a, uint64_t lo, uint64_t hi) {
  return a < lo ? lo : (a > hi ? hi : a);
}

static inline uint64_t rl__sat_add_u64(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* a - b, or 0 when b > a. */
static inline uint64_t rl__sat_sub_u64(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

static inline uint64_t rl__sat_mul_u64(uint64_t a, uint64_t b) {
  rl__u128 p = (rl__u128)a * b;
  return (p >> 64) ? UINT64_MAX : (uint64_t)p;
}

/* a + b for a 32-bit counter, clamped at UINT32_MAX. */
static inline uint32_t rl__sat_add_u32(uint32_t a, uint64_t b) {
  uint64_t s = rl__sat_add_u64(a, b);
  return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* a + b on a time, clamped at INT64_MAX. The overflow builtins compute in
 * infinite precision, so mixing int64_t and uint64_t is exact (and no
 * intermediate wraps, which keeps -fsanitize=integer quiet too). */
static inline int64_t rl__sat_add_i64(int64_t a, uint64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

/* hi - lo as a distance: exact when hi >= lo (it always fits in 64 bits
 * unsigned), else 0. */
static inline uint64_t rl__dist(int64_t hi, int64_t lo) {
  uint64_t r;
  return __builtin_sub_overflow(hi, lo, &r) ? 0 : r;
}

/* The delay from now until time base + add, or 0 if that is not later than
 * now; saturating. Works for any base and now, so callers can express every
 * delay as "absolute target minus the real now". */
static inline uint64_t rl__until(int64_t base, uint64_t add, int64_t now) {
  if (base >= now) {
    return rl__sat_add_u64(rl__dist(base, now), add);
  }
  return rl__sat_sub_u64(add, rl__dist(now, base));
}

static inline rl__u128 rl__mul_wide(uint64_t a, uint64_t b) {
  return (rl__u128)a * b;
}

/* floor(n / d), clamped at UINT64_MAX; d == 0 gives UINT64_MAX. */
static inline uint64_t rl__div_wide(rl__u128 n, uint64_t d) {
  if (d == 0) {
    return UINT64_MAX;
  }
  if ((n >> 64) == 0) {
    return (uint64_t)n / d;
  }
  rl__u128 q = n / d;
  return (q >> 64) ? UINT64_MAX : (uint64_t)q;
}

/* ceil(n / d), clamped at UINT64_MAX; d == 0 gives UINT64_MAX. */
static inline uint64_t rl__ceil_div_wide(rl__u128 n, uint64_t d) {
  uint64_t q = rl__div_wide(n, d);
  if (q == UINT64_MAX || d == 0) {
    return q;
  }
  return (rl__u128)q * d < n ? q + 1 : q;
}

/* floor(a * b / d) with a 128-bit intermediate, clamped at UINT64_MAX. */
static inline uint64_t rl__muldiv_u64(uint64_t a, uint64_t b, uint64_t d) {
  return rl__div_wide(rl__mul_wide(a, b), d);
}

/* ceil(a / d) on 64 bits; d == 0 gives UINT64_MAX. */
static inline uint64_t rl__ceil_div_u64(uint64_t a, uint64_t d) {
  if (d == 0) {
    return UINT64_MAX;
  }
  return a / d + (a % d != 0);
}

#endif /* RL_SATURATE_H */
