/*
 * redis_keys.h - the names of the Redis keys that hold limiter state, and
 * the Redis Cluster slot of a key.
 *
 * All windows of one (policy, user key) live in one Redis string (see
 * docs/Redis.md). Its name is
 *
 *     rl:{<16 hex digits>}:<policy name>:<user key bytes, raw>
 *
 * where the hex digits are FNV-1a 64 of "<policy name>:<user key>". The hash
 * tag is ours and comes first, so Redis Cluster places the key by it and the
 * braces a user key may contain cannot choose the slot. The rest of the name
 * is the full identity: a policy name never contains ':', so the name ends
 * at the first ':' after the tag and everything after the next ':' is the
 * user key, byte for byte (NUL, '{', '}', ':' included). Distinct (policy,
 * key) pairs therefore always get distinct Redis keys.
 *
 * The hash is unkeyed on purpose: every process of a deployment, in any
 * language, must compute the same name.
 */
#ifndef RL_REDIS_KEYS_H
#define RL_REDIS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimiter.h"

/* "rl:{" + 16 hex + "}:" + policy + ":" + key */
#define RL__REDIS_KEY_OVERHEAD 23
/* The policy part of a key: "<policy name>@<8 hex digits of the policy's
 * state layout>" (rl__redis_policy_part), so that a reconfiguration that
 * changes the layout never reads the old bytes. */
#define RL__REDIS_POLICY_PART_MAX (RL_POLICY_NAME_MAX + 9)
/* The longest key rl__redis_key() can write. */
#define RL__REDIS_KEY_MAX                                                      \
  (RL__REDIS_KEY_OVERHEAD + RL__REDIS_POLICY_PART_MAX + RL_KEY_MAX)

/* FNV-1a 64 of policy ':' key: the hash in the key's tag. */
uint64_t rl__redis_key_hash(const char *policy, size_t policy_len,
                            const void *key, size_t key_len);

/* Writes "<name>@<layout as 8 lowercase hex digits>" into buf (at least
 * RL__REDIS_POLICY_PART_MAX bytes, no NUL written); returns its length.
 * name_len must be at most RL_POLICY_NAME_MAX. */
size_t rl__redis_policy_part(const char *name, size_t name_len, uint32_t layout,
                             char *buf);

/* Writes the Redis key of (policy, key) into buf (cap bytes, no NUL
 * written) and its length into *out_len. policy is the policy part (a
 * policy name, or rl__redis_policy_part()). Errors, with buf untouched:
 *   RL_ERR_POLICY_NAME   policy empty, longer than
 *                        RL__REDIS_POLICY_PART_MAX or containing ':'
 *   RL_ERR_KEY_EMPTY     key_len == 0
 *   RL_ERR_KEY_TOO_LONG  key_len > RL_KEY_MAX
 *   RL_ERR_INVALID_ARGUMENT  a NULL pointer, or cap too small (a buffer of
 *                        RL__REDIS_KEY_MAX bytes always fits) */
int rl__redis_key(const char *policy, size_t policy_len, const void *key,
                  size_t key_len, char *buf, size_t cap, size_t *out_len);

/* The Redis Cluster slot (0..16383) of a key: CRC16-XMODEM of the key, or of
 * its hash tag (the bytes between the first '{' and the first '}' after it,
 * when that is not empty), modulo 16384. */
unsigned rl__redis_slot(const void *key, size_t len);

#endif /* RL_REDIS_KEYS_H */
