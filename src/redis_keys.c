/*
 * redis_keys.c - Redis key names for limiter state and the Redis Cluster
 * key-to-slot function. Layout and rationale: redis_keys.h, docs/Redis.md.
 */
#include <stdint.h>
#include <string.h>

#include "redis_keys.h"

#define FNV64_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV64_PRIME UINT64_C(0x100000001b3)
#define CLUSTER_SLOTS 16384u

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t len) {
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= FNV64_PRIME;
  }
  return h;
}

uint64_t rl__redis_key_hash(const char *policy, size_t policy_len,
                            const void *key, size_t key_len) {
  uint64_t h = fnv1a(FNV64_OFFSET, (const unsigned char *)policy, policy_len);
  h = fnv1a(h, (const unsigned char *)":", 1);
  return fnv1a(h, key, key_len);
}

static int check_policy(const char *policy, size_t policy_len) {
  if (policy_len == 0 || policy_len > RL__REDIS_POLICY_PART_MAX ||
      memchr(policy, ':', policy_len) != NULL) {
    return RL_ERR_POLICY_NAME;
  }
  return RL_OK;
}

static int check_key(size_t key_len) {
  if (key_len == 0) {
    return RL_ERR_KEY_EMPTY;
  }
  return key_len > RL_KEY_MAX ? RL_ERR_KEY_TOO_LONG : RL_OK;
}

/* Appends n bytes at *pos. */
static void put(char *buf, size_t *pos, const void *src, size_t n) {
  memcpy(buf + *pos, src, n);
  *pos += n;
}

/* Writes h as 16 lowercase hex digits. */
static void put_hex64(char *buf, size_t *pos, uint64_t h) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--) {
    buf[*pos + (size_t)i] = digits[h & 0xf];
    h >>= 4;
  }
  *pos += 16;
}

size_t rl__redis_policy_part(const char *name, size_t name_len, uint32_t layout,
                             char *buf) {
  static const char digits[] = "0123456789abcdef";
  memcpy(buf, name, name_len);
  buf[name_len] = '@';
  for (int i = 7; i >= 0; i--) {
    buf[name_len + 1 + (size_t)i] = digits[layout & 0xf];
    layout >>= 4;
  }
  return name_len + 9;
}

int rl__redis_key(const char *policy, size_t policy_len, const void *key,
                  size_t key_len, char *buf, size_t cap, size_t *out_len) {
  if (policy == NULL || (key == NULL && key_len > 0) || buf == NULL ||
      out_len == NULL) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  int err = check_policy(policy, policy_len);
  if (err == RL_OK) {
    err = check_key(key_len);
  }
  if (err != RL_OK) {
    return err;
  }
  size_t need = RL__REDIS_KEY_OVERHEAD + policy_len + key_len;
  if (cap < need) {
    return RL_ERR_INVALID_ARGUMENT;
  }
  size_t pos = 0;
  put(buf, &pos, "rl:{", 4);
  put_hex64(buf, &pos, rl__redis_key_hash(policy, policy_len, key, key_len));
  put(buf, &pos, "}:", 2);
  put(buf, &pos, policy, policy_len);
  put(buf, &pos, ":", 1);
  put(buf, &pos, key, key_len);
  *out_len = pos;
  return RL_OK;
}

/* CRC16-CCITT as Redis Cluster uses it (XMODEM: polynomial 0x1021, initial
 * value 0, no reflection, no final xor). Bitwise: keys are short and this
 * runs once per key name, not per byte of traffic. */
static uint16_t crc16_xmodem(const unsigned char *p, size_t len) {
  uint16_t crc = 0;
  for (size_t i = 0; i < len; i++) {
    crc ^= (uint16_t)(p[i] << 8);
    for (int b = 0; b < 8; b++) {
      crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
                           : (uint16_t)(crc << 1);
    }
  }
  return crc;
}

unsigned rl__redis_slot(const void *key, size_t len) {
  const unsigned char *k = key;
  const unsigned char *open = len ? memchr(k, '{', len) : NULL;
  if (open != NULL) {
    size_t start = (size_t)(open - k) + 1;
    const unsigned char *close = memchr(k + start, '}', len - start);
    if (close != NULL && close != k + start) {
      return crc16_xmodem(k + start, (size_t)(close - (k + start))) %
             CLUSTER_SLOTS;
    }
  }
  return crc16_xmodem(k, len) % CLUSTER_SLOTS;
}
