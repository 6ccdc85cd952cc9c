-- lib/alg_fixed_window.lua - the fixed window algorithm
-- (docs/Algorithms.md, "Fixed window"; mirrors src/alg_fixed_window.c).
--
-- State, 16 bytes little-endian: int64 start (start of the current aligned
-- window), uint64 count (units spent in it).
local fixed_window = {name = 'fixed_window'}

local FORMAT = '<i8I8'

function fixed_window.size()
  return 16
end

function fixed_window.load(blob, pos)
  local start, count = struct.unpack(FORMAT, blob, pos)
  return {start = start, count = count}
end

function fixed_window.dump(st)
  return struct.pack(FORMAT, st.start, st.count)
end

-- Step 2: moves the state to now's window; a clock that went back
-- (now < start) leaves it alone.
local function roll(st, window, now)
  if now >= st.start and now - st.start >= window then
    st.start = now - num.mod(now, window)
    st.count = 0
  end
end

function fixed_window.evaluate(st, p, now, cost)
  roll(st, p.window, now)
  local room = math.max(0, p.limit - st.count)
  local allowed = cost <= room
  local used = allowed and st.count + cost or st.count
  local until_end = num.delay(st.start, p.window, now)
  local v = {allowed = allowed, retry = 0}
  v.remaining = allowed and room - cost or room
  -- Restored at the window's end, or already when nothing is in it.
  v.reset = used > 0 and until_end or 0
  if not allowed then
    v.retry = cost <= p.limit and until_end or -1
  end
  return v
end

function fixed_window.commit(st, p, now, cost)
  roll(st, p.window, now)
  st.count = st.count + cost
end

function fixed_window.expiry(st, p)
  return st.start + p.window
end
