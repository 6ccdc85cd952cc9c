/*
 * hash.h - keyed hashing of user keys.
 *
 * Keys come from the network, so the hash is SipHash-1-3 keyed with a random
 * secret chosen when the limiter is created: an attacker who picks keys
 * cannot aim them at one hash chain (hash flooding).
 */
#ifndef RL_HASH_H
#define RL_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct rl__hash_key {
  uint64_t k0, k1;
} rl__hash_key;

/* Fills key with random bytes (getrandom; falls back to time and address
 * entropy if the kernel has none to give). */
void rl__hash_key_random(rl__hash_key *key);

/* SipHash-c-d of data[0..len) (c = 2, d = 4 is the reference SipHash-2-4;
 * exposed so tests can check published vectors). */
uint64_t rl__siphash(const rl__hash_key *key, int c_rounds, int d_rounds,
                     const void *data, size_t len);

/* SipHash-1-3 of data[0..len) under a key derived from key and tag. */
uint64_t rl__hash(const rl__hash_key *key, uint64_t tag, const void *data,
                  size_t len);

#endif /* RL_HASH_H */
