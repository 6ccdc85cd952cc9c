-- lease.lua - ratelimiter: one decision plus a quota lease, in Redis.
--
-- Decides `cost` units exactly as the per-algorithm scripts do
-- (docs/Algorithms.md). When they are admitted it also reserves up to `want`
-- extra units for the calling instance to spend locally (docs/Cache.md):
-- they are committed to the state now, so every other instance sees them as
-- spent and the window can never admit more than its limit. The grant is
-- the largest k <= want that every window still admits, and 0 when the
-- lease could not be spent safely:
--   fixed_window, sliding_counter  valid until the end of the current
--       aligned window of every window (minus 1 ms), at most hold_ms; units
--       spent in the window they were counted in.
--   token_bucket  valid for hold_ms. Units leased while the bucket
--       refills to its capacity can exceed it (docs/Cache.md states the
--       bound).
--   sliding_log   never leased (a unit counted at the grant would be
--       released W after the grant, before W after its real use).
--
-- KEYS[1]  the state key (src/redis_keys.c)
-- ARGV     algorithm, want, hold_ms, cost, n_windows, then per window:
--          limit, duration_ms, burst, log_slots
-- Reply    {allowed, window, limit, remaining, reset_after_ms,
--           retry_after_ms (-1 = never), now_ms, granted, valid_ms}
--          remaining is after the request and the granted units.
-- Errors   bad ARGV: "ERR ratelimiter: <what>", nothing written
--@include lib/num.lua
--@include lib/args.lua
--@include lib/alg_sliding_counter.lua
--@include lib/alg_gcra.lua
--@include lib/alg_fixed_window.lua
--@include lib/policy.lua

local algorithms = {
  sliding_counter = sliding_counter,
  token_bucket = gcra,
  fixed_window = fixed_window,
}
local name = ARGV[1] or ''
local alg = algorithms[name]
if not alg then
  return args.error('no lease for algorithm "' ..
    (string.find(name, '^[%w_]*$') and #name <= 32 and name or '?') .. '"')
end
local want, err = args.int(2, 'want', 0, args.COST_MAX)
if not want then return args.error(err) end
local hold
hold, err = args.int(3, 'hold_ms', 1, args.DURATION_MAX)
if not hold then return args.error(err) end
local cost, windows = args.parse(4, name)
if not cost then return args.error(windows) end

local now = policy.now()
local states = policy.read(KEYS[1], alg, windows, now)
local v, allowed = {}, true
for i, p in ipairs(windows) do
  v[i] = alg.evaluate(states[i], p, now, cost)
  allowed = allowed and v[i].allowed
end
local granted, valid = 0, 0
if allowed then
  granted, valid = want, hold
  for i, p in ipairs(windows) do
    granted = math.min(granted, v[i].remaining)
    if alg ~= gcra then
      -- states[i].start is now's aligned window after evaluate
      valid = math.min(valid, states[i].start + p.window - now - 1)
    end
  end
  if valid < 1 then
    granted = 0
  end
  if granted > 0 then
    for i, p in ipairs(windows) do
      local probe = alg.load(alg.dump(states[i], p), 1, p)
      if not alg.evaluate(probe, p, now, cost + granted).allowed then
        granted = 0
      end
    end
  end
  for i, p in ipairs(windows) do
    alg.commit(states[i], p, now, cost + granted)
    v[i].remaining = v[i].remaining - granted
  end
  policy.write(KEYS[1], alg, windows, states, now)
end
local b = policy.binding(v, allowed)
return {allowed and 1 or 0, b - 1, windows[b].limit, v[b].remaining,
  v[b].reset, v[b].retry, now, granted, granted > 0 and valid or 0}
