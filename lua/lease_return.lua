-- lease_return.lua - ratelimiter: gives back the unspent units of a lease
-- (lease.lua) so that other instances can use them (docs/Cache.md).
--
--   fixed_window     count -= units, if the state is still in the aligned
--                    window of the grant
--   sliding_counter  cur -= units in the grant's window, or prev -= units
--                    in the window after it
--   sliding_log      the reservation of the grant (lease.lua) holds
--                    units fewer
--   token_bucket     nothing: another instance's lease may since have
--                    pushed the TAT to its own end (lease.lua), after which
--                    the TAT is no longer a sum that these units are part
--                    of, and taking them off could put it behind the real
--                    one. They come back as refill by the lease's end plus
--                    their emission time.
-- Anything else (the window moved on, the key expired) has nothing to give
-- back. Never below zero; the state is written only when it changed.
--
-- KEYS[1]  the state key (src/redis_keys.c)
-- ARGV     algorithm, units, granted_at (now_ms of the grant), cost (any
--          valid value; unused), n_windows, then per window: limit,
--          duration_ms, burst, log_slots
-- Reply    1 if units went back, else 0
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
local units
units, err = args.int(2, 'units', 1, args.COST_MAX)
if not units then return args.error(err) end
local granted_at
granted_at, err = args.int(3, 'granted_at', 0, 9007199254740991)
if not granted_at then return args.error(err) end
local ok, windows = args.parse(4, name)
if not ok then return args.error(windows) end

if alg == gcra then
  return 0
end
local now = policy.now()
local blob = redis.call('GET', KEYS[1])
if not blob then
  return 0
end
local states = policy.read(KEYS[1], alg, windows, now)
local changed = alg == sliding_log and
  sliding_log.unreserve(states, granted_at, units)
for i, p in ipairs(windows) do
  local st = states[i]
  local start = granted_at - num.mod(granted_at, p.window)
  if alg == fixed_window then
    if st.start == start and st.count > 0 then
      st.count = math.max(0, st.count - units)
      changed = true
    end
  elseif alg == sliding_counter then
    if st.start == start and st.cur > 0 then
      st.cur = math.max(0, st.cur - units)
      changed = true
    elseif st.start == start + p.window and st.prev > 0 then
      st.prev = math.max(0, st.prev - units)
      changed = true
    end
  end
end
if not changed then
  return 0
end
policy.write(KEYS[1], alg, windows, states, now)
return 1
