-- gcra.lua - ratelimiter: one decision of the token bucket (GCRA) algorithm, in Redis.
--
-- All windows (1..8) of one (policy, key) live in the one Redis string
-- KEYS[1]; the request is admitted only if every window admits it, and only
-- then is the cost spent in all of them (docs/Algorithms.md). The clock is
-- Redis TIME: now_ms = sec * 1000 + floor(usec / 1000).
--
-- KEYS[1]  the state key (src/redis_keys.c: rl:{hash}:policy:key)
-- ARGV     cost, n_windows, then per window: limit, duration_ms, burst,
--          log_slots (decimal integers; burst 0 = limit, log_slots 0 = 32)
-- Reply    {allowed (0/1), window (binding window, 0-based), limit,
--           remaining, reset_after_ms, retry_after_ms (-1 = never), now_ms}
-- Writes   only when admitted: SET KEYS[1] <state> PX <expiry - now + 1>
-- Errors   bad ARGV: "ERR ratelimiter: <what>", nothing written
--
-- The state format and the arithmetic are in docs/Redis.md. This file is
-- assembled at build time (cmake/embed_lua.cmake): each include line below
-- is replaced by that file of lua/lib/.
--@include lib/num.lua
--@include lib/args.lua
--@include lib/alg_gcra.lua
--@include lib/policy.lua

local cost, windows = args.parse(1, 'token_bucket')
if not cost then
  return args.error(windows)
end
return policy.run(KEYS[1], gcra, cost, windows)
