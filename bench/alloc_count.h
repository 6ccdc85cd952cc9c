/*
 * alloc_count.h - counts the process's heap allocations, for benchmarks.
 *
 * alloc_count.c defines malloc, calloc, realloc, free, aligned_alloc and
 * posix_memalign in the benchmark executable. Those definitions interpose on
 * glibc's, so calls made by the library (static or shared) and by libc itself
 * are counted too; each counts with a relaxed atomic and forwards to glibc's
 * __libc_* entry points.
 *
 * Under sanitizers (BENCH_NO_ALLOC_COUNT) nothing is interposed and
 * bench_alloc_enabled() returns 0: the counts are then meaningless.
 */
#ifndef BENCH_ALLOC_COUNT_H
#define BENCH_ALLOC_COUNT_H

#include <stdint.h>

/* 1 when allocations are being counted, 0 when not (sanitizer builds). */
int bench_alloc_enabled(void);

/* Allocating calls so far: malloc, calloc, realloc, aligned_alloc,
 * posix_memalign (and memalign). */
uint64_t bench_alloc_count(void);

/* Calls to free with a non-NULL pointer so far. */
uint64_t bench_free_count(void);

#endif /* BENCH_ALLOC_COUNT_H */
