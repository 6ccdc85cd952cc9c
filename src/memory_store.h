/*
 * memory_store.h - the in-process store: key state in striped hash tables.
 *
 * The embedded default store, and later the local fallback when Redis is
 * unavailable. Thread-safe without a global lock: a key's hash picks one of
 * N stripes, each with its own table and byte budget; a decision on a known
 * key takes no lock but the key's own (lock-free lookup, memory reclaimed
 * with the caller's epoch guard). Memory is bounded by a byte budget; when a
 * new key does not fit, expired keys are reclaimed first, then the least
 * recently used live keys (CLOCK approximation of LRU, see memory_store.c).
 */
#ifndef RL_MEMORY_STORE_H
#define RL_MEMORY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "algorithm.h"
#include "guard.h"
#include "ratelimiter.h"

typedef struct rl__memstore rl__memstore;

/* Bytes charged for one key whose state is state_size and key key_len. */
size_t rl__memstore_node_bytes(size_t state_size, size_t key_len);

/* Creates a store with a total budget of max_bytes split over `stripes`
 * (a power of two). Unlinked memory is reclaimed with `guard`, whose read
 * sections the decisions run in; it must outlive the store. Returns RL_OK,
 * RL_ERR_NO_MEMORY. */
int rl__memstore_new(size_t max_bytes, unsigned stripes, rl__guard *guard,
                     rl__memstore **out);
void rl__memstore_free(rl__memstore *ms);

/* Decides cost units for (policy_id, key) with the given shape at now, under
 * the key's own lock. The caller must be inside a read section of the
 * store's guard (rl__guard_enter). Returns RL_OK (out filled: allowed,
 * window, limit, remaining, reset/retry) or RL_ERR_NO_MEMORY (state
 * untouched). */
int rl__memstore_decide(rl__memstore *ms, uint16_t policy_id,
                        const rl__policy_shape *shape, const void *key,
                        size_t key_len, int64_t now, uint64_t cost,
                        rl_decision *out);

/* Reclaims every key whose state expired at or before now. Returns how many
 * keys it unlinked (their memory is freed once no decision can hold them). Not
 * needed for correctness (the store reclaims as it goes); useful for tests and
 * an idle maintenance tick. */
size_t rl__memstore_sweep(rl__memstore *ms, int64_t now);

/* Frees every key whose policy id is set in the bit set `ids` (65536 bits).
 * Returns how many. Used when a reconfiguration retires policy ids. */
size_t rl__memstore_purge(rl__memstore *ms, const uint64_t *ids);

void rl__memstore_stats(rl__memstore *ms, rl_memory_stats *out);

/* Frees what readers have left, then returns how many unlinked nodes and
 * tables still wait for readers (not charged to the budget). For tests. */
size_t rl__memstore_pending(rl__memstore *ms);

#endif /* RL_MEMORY_STORE_H */
