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
--   token_bucket  valid for min(hold_ms, TAT - now) with the TAT after
--       this request: the bucket cannot refill to its capacity while the
--       lease is out, so spending later than charged changes nothing. A
--       full bucket (TAT <= now + 1 ms) gets no lease.
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
local name = ARGV[1]
local alg, err = args.algorithm(algorithms, 'no lease for algorithm')
if not alg then return args.error(err) end
local want
want, err = args.int(2, 'want', 0, args.COST_MAX)
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
  for i, p in ipairs(windows) do
    alg.commit(states[i], p, now, cost)
  end
  -- how long the lease may be spent: its hold, the end of every aligned
  -- window, and for the token bucket as long as the bucket (without the
  -- lease) stays below its capacity: until its TAT
  valid = hold
  for i, p in ipairs(windows) do
    if alg == gcra then
      valid = math.min(valid, states[i].ms - now)
    else
      valid = math.min(valid, states[i].start + p.window - now - 1)
    end
  end
  granted = valid >= 1 and want or 0
  local probes = {}
  for i, p in ipairs(windows) do
    if granted > 0 then
      local probe = alg.load(alg.dump(states[i], p), 1, p)
      local one = alg.evaluate(probe, p, now, 1)
      granted = one.allowed and math.min(granted, one.remaining + 1) or 0
      probes[i] = probe
    end
  end
  if granted > 0 then
    for i, p in ipairs(windows) do
      alg.commit(probes[i], p, now, granted)
      states[i] = probes[i]
      local left = alg.evaluate(alg.load(alg.dump(probes[i], p), 1, p), p,
        now, 1)
      v[i].remaining = left.allowed and left.remaining + 1 or left.remaining
    end
  end
  policy.write(KEYS[1], alg, windows, states, now)
end
local b = policy.binding(v, allowed)
return {allowed and 1 or 0, b - 1, windows[b].limit, v[b].remaining,
  v[b].reset, v[b].retry, now, granted, granted > 0 and valid or 0}
