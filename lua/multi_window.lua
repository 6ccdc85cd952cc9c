-- multi_window.lua - ratelimiter: one decision of any algorithm, in Redis.
--
-- The same as the per-algorithm scripts (fixed_window.lua, sliding_log.lua,
-- sliding_counter.lua, gcra.lua), with the algorithm as the first argument.
-- All windows (1..8) of one (policy, key) live in the one Redis string
-- KEYS[1]; the request is admitted only if every window admits it, and only
-- then is the cost spent in all of them (docs/Algorithms.md). The clock is
-- Redis TIME: now_ms = sec * 1000 + floor(usec / 1000).
--
-- KEYS[1]  the state key (src/redis_keys.c: rl:{hash}:policy:key)
-- ARGV     algorithm ("sliding_log", "sliding_counter", "token_bucket",
--          "fixed_window"), cost, n_windows, then per window: limit,
--          duration_ms, burst, log_slots (decimal integers; burst 0 =
--          limit, log_slots 0 = 32)
-- Reply    {allowed (0/1), window (binding window, 0-based), limit,
--           remaining, reset_after_ms, retry_after_ms (-1 = never), now_ms}
-- Writes   only when admitted: SET KEYS[1] <state> PX <expiry - now + 1>
-- Errors   bad ARGV: "ERR ratelimiter: <what>", nothing written
--
-- Assembled at build time (cmake/embed_lua.cmake) from lua/lib/.
--@include lib/num.lua
--@include lib/args.lua
--@include lib/alg_sliding_log.lua
--@include lib/alg_sliding_counter.lua
--@include lib/alg_gcra.lua
--@include lib/alg_fixed_window.lua
--@include lib/policy.lua

local algorithms = {
  sliding_log = sliding_log,
  sliding_counter = sliding_counter,
  token_bucket = gcra,
  fixed_window = fixed_window,
}
local alg, err = args.algorithm(algorithms, 'unknown algorithm')
if not alg then
  return args.error(err)
end
local cost, windows = args.parse(2, ARGV[1])
if not cost then
  return args.error(windows)
end
return policy.run(KEYS[1], alg, cost, windows)
