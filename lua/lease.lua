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
--   token_bucket  valid for min(hold_ms, max(TAT - now, push)) with the
--       TAT after this request, push = min(push_ms, (B - granted) * W / L).
--       The granted units must be available now (granted <= remaining) and
--       are charged as if spent at the lease's end: TAT = max(TAT, now +
--       valid) + granted * W / L. That is the latest they can be spent, and
--       GCRA's TAT only grows when an arrival comes later, so Redis' TAT is
--       never behind the TAT of the units' real times. Up to TAT - now
--       this is the plain charge (the bucket cannot refill to its capacity
--       while the lease is out); beyond it, `push`, the bucket gives up the
--       refill until the lease's end, which the caller keeps small against
--       what is left (src/cache.c, bucket_lease) and asks for only while
--       the key's demand is below its rate. push_ms 0: no lease from a
--       full bucket (TAT <= now + 1 ms).
--   sliding_log   valid for hold_ms. The units go into a reservation
--       beside the log (lib/alg_sliding_log.lua), not into the log: a unit
--       logged at the grant would leave the window W after the grant,
--       before W after its real use. A reservation counts in every window
--       from the grant until W after the lease's end, the latest a unit of
--       it can be spent; lease_return.lua takes back what was not spent.
--       At most sliding_log.RSV_MAX reservations at a time (else 0).
--
-- KEYS[1]  the state key (src/redis_keys.c)
-- KEYS[2]  token bucket, optional: its push key (rlp:{...}:..., in
--          KEYS[1]'s slot, docs/Redis.md): the latest lease end a lease
--          pushed the TAT to (ms; expires then)
-- ARGV     algorithm, want, hold_ms, push_ms, cost, n_windows, then per
--          window: limit, duration_ms, burst, log_slots
-- Reply    {allowed, window, limit, remaining, reset_after_ms,
--           retry_after_ms (-1 = never), now_ms, granted, valid_ms}
--          remaining is after the request and the granted units, as if
--          they were spent now (token bucket: without the refill that
--          this or an earlier lease gives up until its end, KEYS[2]: the
--          bucket as its instances' spending left it, which is what
--          callers size leases by and tell a calm bucket from).
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
local name = ARGV[1]
local alg, err = args.algorithm(algorithms, 'no lease for algorithm')
if not alg then return args.error(err) end
local want
want, err = args.int(2, 'want', 0, args.COST_MAX)
if not want then return args.error(err) end
local hold
hold, err = args.int(3, 'hold_ms', 1, args.DURATION_MAX)
if not hold then return args.error(err) end
local push
push, err = args.int(4, 'push_ms', 0, args.DURATION_MAX)
if not push then return args.error(err) end
local cost, windows = args.parse(5, name, alg == gcra and 2 or 1)
if not cost then return args.error(windows) end

local now = policy.now()
local states = policy.read(KEYS[1], alg, windows, now)
local pushed = 0 -- ms an earlier lease's push still holds
if alg == gcra and KEYS[2] then
  local until_ms = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  pushed = math.max(0, until_ms - now)
end
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
  -- how long the lease may be spent: its hold, and the end of every
  -- aligned window
  valid = hold
  for i, p in ipairs(windows) do
    if alg == fixed_window or alg == sliding_counter then
      valid = math.min(valid, states[i].start + p.window - now - 1)
    end
  end
  if alg == sliding_log then
    valid = math.min(valid, 4294967295) -- a reservation's uint32
  end
  granted = valid >= 1 and want or 0
  local probes = {}
  for i, p in ipairs(windows) do
    if granted > 0 then
      local probe = alg.load(alg.dump(states[i], p), 1, p)
      probe.rsv = states[i].rsv -- a sliding log's reservations
      local one = alg.evaluate(probe, p, now, 1)
      granted = one.allowed and math.min(granted, one.remaining + 1) or 0
      probes[i] = probe
    end
  end
  -- token bucket: until the TAT, or pushed to now + push, which must not
  -- put the TAT more than the burst ahead: push + granted * W / L <=
  -- B * W / L
  for i, p in ipairs(windows) do
    if alg == gcra and granted > 0 then
      local room = num.muldiv(p.burst - granted, p.window, p.limit, hold)
      valid = math.min(valid, math.max(math.min(push, room),
        states[i].ms - now))
    end
  end
  if valid < 1 then
    granted = 0
  end
  local reservation = alg == sliding_log and granted > 0 and
    sliding_log.reserve(states, windows, now, valid)
  if alg == sliding_log and not reservation then
    granted = 0 -- the reservation list is full
  end
  -- whether the lease goes past the TAT (a push) in some window
  local pushes = false
  for i = 1, #windows do
    pushes = pushes or (alg == gcra and granted > 0 and
      valid > states[i].ms - now)
  end
  if granted > 0 then
    for i, p in ipairs(windows) do
      -- remaining as if the units were charged now: the refill a token
      -- bucket's lease gives up comes back at its end, and callers size
      -- their leases by what the instances spend
      local now_state = alg.load(alg.dump(probes[i], p), 1, p)
      now_state.rsv = probes[i].rsv
      alg.commit(now_state, p, now, granted)
      local left = alg.evaluate(now_state, p, now, 1)
      v[i].remaining = left.allowed and left.remaining + 1 or left.remaining
      if alg ~= sliding_log then
        alg.commit(probes[i], p, alg == gcra and now + valid or now, granted)
        states[i] = probes[i]
      end
    end
    if reservation then
      reservation.units = granted
    end
    if pushes and KEYS[2] and valid > pushed then
      redis.call('SET', KEYS[2], string.format('%.0f', now + valid), 'PX',
        string.format('%.0f', valid + 1))
    end
  end
  policy.write(KEYS[1], alg, windows, states, now)
  if pushed > 0 then
    for i, p in ipairs(windows) do
      v[i].remaining = math.min(p.burst, v[i].remaining +
        num.muldiv(pushed, p.limit, p.window, p.burst))
    end
  end
end
local b = policy.binding(v, allowed)
return {allowed and 1 or 0, b - 1, windows[b].limit, v[b].remaining,
  v[b].reset, v[b].retry, now, granted, granted > 0 and valid or 0}
