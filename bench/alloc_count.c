/*
 * alloc_count.c - allocation counter interposed on glibc's malloc family.
 *
 * The executable's definitions win over libc's at dynamic link time and,
 * for the static library, at static link time. Each function bumps a
 * relaxed atomic counter and forwards to the glibc implementation through
 * its exported __libc_* alias, so there is no recursion and no dlsym.
 * Counting costs one uncontended atomic add per call; the benchmarks only
 * compare counts taken before and after a measured loop.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "alloc_count.h"

#ifdef BENCH_NO_ALLOC_COUNT

int bench_alloc_enabled(void) {
  return 0;
}
uint64_t bench_alloc_count(void) {
  return 0;
}
uint64_t bench_free_count(void) {
  return 0;
}

#else

/* glibc's own implementations (exported, undeclared in its headers). */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_memalign(size_t alignment, size_t size);

/* memalign is a glibc extension declared in <malloc.h>; declared here so
 * that <malloc.h> (which declares the __libc_* names differently on some
 * versions) is not needed. */
void *memalign(size_t alignment, size_t size);

static atomic_uint_fast64_t n_allocs;
static atomic_uint_fast64_t n_frees;

static inline void count_alloc(void) {
  atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
}

int bench_alloc_enabled(void) {
  return 1;
}

uint64_t bench_alloc_count(void) {
  return atomic_load_explicit(&n_allocs, memory_order_relaxed);
}

uint64_t bench_free_count(void) {
  return atomic_load_explicit(&n_frees, memory_order_relaxed);
}

void *malloc(size_t size) {
  count_alloc();
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
  count_alloc();
  return __libc_calloc(n, size);
}

void *realloc(void *ptr, size_t size) {
  count_alloc();
  return __libc_realloc(ptr, size);
}

void free(void *ptr) {
  if (ptr != NULL) {
    atomic_fetch_add_explicit(&n_frees, 1, memory_order_relaxed);
  }
  __libc_free(ptr);
}

void *memalign(size_t alignment, size_t size) {
  count_alloc();
  return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
  count_alloc();
  return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
  if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) {
    return EINVAL;
  }
  count_alloc();
  void *p = __libc_memalign(alignment, size);
  if (p == NULL && size != 0) {
    return ENOMEM;
  }
  *out = p;
  return 0;
}

#endif /* BENCH_NO_ALLOC_COUNT */
