/*
 * units.h - durations ("500ms", "1m", "1h30m") and sizes ("100MB", "64KiB")
 * as written in the YAML configuration. Pure functions over (text, len).
 */
#ifndef RLD_UNITS_H
#define RLD_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* One or more <integer><unit> terms, unit one of ms, s, m, h, d; "0" alone
 * is zero. Returns 0 and sets *ms, or -1 (syntax or overflow). */
int rld_parse_duration(const char *text, size_t len, uint64_t *ms);

/* <integer>[unit], unit one of B, KB, MB, GB, TB (powers of 1024; KiB,
 * MiB, GiB, TiB are the same). Returns 0 and sets *bytes, or -1. */
int rld_parse_size(const char *text, size_t len, uint64_t *bytes);

/* A decimal integer without sign, 0..UINT64_MAX. Returns 0 or -1. */
int rld_parse_u64(const char *text, size_t len, uint64_t *out);

#endif /* RLD_UNITS_H */
