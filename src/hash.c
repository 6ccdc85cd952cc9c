/*
 * hash.c - SipHash-1-3 (Aumasson & Bernstein), the variant Rust and Python
 * use for hash tables: fast on short keys, keyed against flooding.
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

typedef struct sip_state {
  uint64_t v0, v1, v2, v3;
} sip_state;

static inline void sip_round(sip_state *s) {
  s->v0 += s->v1;
  s->v1 = ROTL(s->v1, 13);
  s->v1 ^= s->v0;
  s->v0 = ROTL(s->v0, 32);
  s->v2 += s->v3;
  s->v3 = ROTL(s->v3, 16);
  s->v3 ^= s->v2;
  s->v0 += s->v3;
  s->v3 = ROTL(s->v3, 21);
  s->v3 ^= s->v0;
  s->v2 += s->v1;
  s->v1 = ROTL(s->v1, 17);
  s->v1 ^= s->v2;
  s->v2 = ROTL(s->v2, 32);
}

static inline void sip_absorb(sip_state *s, uint64_t m, int rounds) {
  s->v3 ^= m;
  for (int i = 0; i < rounds; i++) {
    sip_round(s);
  }
  s->v0 ^= m;
}

static inline uint64_t load64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v); /* little-endian hosts; see tests for vectors */
  return v;
}

uint64_t rl__siphash(const rl__hash_key *key, int c_rounds, int d_rounds,
                     const void *data, size_t len) {
  sip_state s = {key->k0 ^ UINT64_C(0x736f6d6570736575),
                 key->k1 ^ UINT64_C(0x646f72616e646f6d),
                 key->k0 ^ UINT64_C(0x6c7967656e657261),
                 key->k1 ^ UINT64_C(0x7465646279746573)};
  const unsigned char *p = data;
  size_t full = len & ~(size_t)7;
  for (size_t i = 0; i < full; i += 8) {
    sip_absorb(&s, load64(p + i), c_rounds);
  }
  uint64_t last = (uint64_t)(len & 0xff) << 56;
  for (size_t i = 0; i < (len & 7); i++) {
    last |= (uint64_t)p[full + i] << (8 * i);
  }
  sip_absorb(&s, last, c_rounds);
  s.v2 ^= 0xff;
  for (int i = 0; i < d_rounds; i++) {
    sip_round(&s);
  }
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t rl__hash(const rl__hash_key *key, uint64_t tag, const void *data,
                  size_t len) {
  /* The tag (policy) selects a member of the keyed family, so equal key bytes
   * under two policies hash independently. */
  rl__hash_key k = {key->k0 ^ (tag * UINT64_C(0x9e3779b97f4a7c15)), key->k1};
  return rl__siphash(&k, 1, 3, data, len);
}

void rl__hash_key_random(rl__hash_key *key) {
  unsigned char buf[16];
  if (getrandom(buf, sizeof buf, GRND_NONBLOCK) != (ssize_t)sizeof buf) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
    uint64_t b = (uint64_t)(uintptr_t)key ^ (uint64_t)(uintptr_t)&ts;
    memcpy(buf, &a, 8);
    memcpy(buf + 8, &b, 8);
  }
  memcpy(&key->k0, buf, 8);
  memcpy(&key->k1, buf + 8, 8);
}
