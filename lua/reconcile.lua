-- reconcile.lua - ratelimiter: adds units that were admitted locally while
-- Redis was unreachable (docs/Degradation.md, "Reconciliation").
--
-- The fallback layer admitted `units` units of one (policy, key) in
-- process during an outage; this script spends them in the key's Redis
-- state as one commit per window, without evaluating: they were admitted
-- already, so the global window must count them even past its limit. A
-- window's share is capped at its limit (its burst for the token bucket):
-- a full window is full, and the cap keeps every number in the scripts'
-- exact range.
--
-- The units are committed at Redis' now (they happened up to age_ms
-- earlier, so they expire up to age_ms late: conservative), except in a
-- fixed window that began after the last of them was admitted: that
-- window never saw them, and theirs is over, so nothing is added there.
--
-- Idempotent: KEYS[2] is a marker unique to this reconciliation (the
-- state key, ":rc:" and an id); the units are added only if the marker
-- does not exist yet, and the marker is written with them, so a caller
-- whose reply was lost may send the same call again and Redis applies it
-- once. The marker lives 10 minutes.
--
-- KEYS[1]  the state key, as the decision scripts use it
-- KEYS[2]  the marker
-- ARGV     algorithm ("sliding_log", "sliding_counter", "token_bucket",
--          "fixed_window"), units, age_ms (since the last local
--          admission), n_windows, then per window: limit, duration_ms,
--          burst, log_slots
-- Reply    {units committed in the first window (-1: applied before),
--           now_ms}
-- Writes   SET KEYS[1] <state> PX <expiry - now + 1>
-- Errors   bad ARGV: "ERR ratelimiter: <what>", nothing written
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
local age = tonumber(ARGV[3] or '')
if not age or age < 0 or age > args.DURATION_MAX then
  return args.error('age_ms is not a number of ms')
end
local marker = KEYS[2]
if not marker or #KEYS ~= 2 then
  return args.error('expected 2 keys, got ' .. #KEYS)
end
-- args.parse reads one key, then cost (our units), n_windows and the
-- windows; the marker and ARGV[3] (age) are not part of that layout.
KEYS[2] = nil
table.remove(ARGV, 3)
local units, windows = args.parse(2, ARGV[1])
if not units then
  return args.error(windows)
end
if redis.call('EXISTS', marker) == 1 then
  return {-1, policy.now()}
end
local reply = policy.reconcile(KEYS[1], alg, units, age, windows)
redis.call('SET', marker, '1', 'PX', 600000) -- only once the units are in
return reply
